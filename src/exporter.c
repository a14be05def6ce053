/* SPDX-License-Identifier: MIT */
/* exporter: libmicrohttpd server for /metrics and / (see exporter.h). The
 * body comes from the store's render cache and is handed to libmicrohttpd
 * without a copy; the reference is dropped when the response is freed. */
#include "exporter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct usage_exporter_s {
  struct MHD_Daemon *mhd;
  usage_store_t *store;
  usage_exporter_opts_t opts;
};

int usage_html_escape(usage_buf_t *b, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '&':
      usage_buf_puts(b, "&amp;");
      break;
    case '<':
      usage_buf_puts(b, "&lt;");
      break;
    case '>':
      usage_buf_puts(b, "&gt;");
      break;
    case '"':
      usage_buf_puts(b, "&quot;");
      break;
    case '\'':
      usage_buf_puts(b, "&#39;");
      break;
    default:
      usage_buf_putc(b, *s);
    }
  }
  return b->failed;
}

usage_format_t usage_exporter_negotiate(const char *accept) {
  if (accept == NULL)
    return USAGE_FMT_TEXT;
  double q_om = 0, q_text = 0;
  int om_first = 0, seen = 0;
  const char *p = accept;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[256];
    snprintf(item, sizeof(item), "%.*s", (int)(len < 255 ? len : 255), p);
    p += len + (end ? 1 : 0);

    char *save = NULL;
    char *type = strtok_r(item, ";", &save);
    if (type == NULL)
      continue;
    while (*type == ' ' || *type == '\t')
      type++;
    size_t tl = strlen(type);
    while (tl > 0 && (type[tl - 1] == ' ' || type[tl - 1] == '\t'))
      type[--tl] = 0;
    double q = 1;
    for (char *param; (param = strtok_r(NULL, ";", &save)) != NULL;) {
      while (*param == ' ' || *param == '\t')
        param++;
      if (strncasecmp(param, "q=", 2) == 0)
        q = strtod(param + 2, NULL);
    }
    if (!(q > 0))
      continue;
    if (strcasecmp(type, "application/openmetrics-text") == 0) {
      if (q > q_om)
        q_om = q;
      if (!seen)
        om_first = 1;
      seen = 1;
    } else if (strcasecmp(type, "text/plain") == 0 ||
               strcasecmp(type, "text/*") == 0 ||
               strcasecmp(type, "*/*") == 0) {
      if (q > q_text)
        q_text = q;
      seen = 1;
    }
  }
  if (q_om > q_text || (q_om > 0 && q_om == q_text && om_first))
    return USAGE_FMT_OPENMETRICS;
  return USAGE_FMT_TEXT;
}

static void release_body(void *cls) { usage_body_release(cls); }

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status,
                                  const char *ct, const char *text) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ct);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result serve_metrics(usage_exporter_t *e,
                                     struct MHD_Connection *conn) {
  const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_ACCEPT);
  usage_format_t fmt = usage_exporter_negotiate(accept);
  usage_body_t *body = usage_store_body(e->store, fmt);
  if (body == NULL)
    return queue_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
                      "out of memory\n");
  struct MHD_Response *r =
      MHD_create_response_from_buffer_with_free_callback_cls(
          body->len, (void *)body->data, release_body, body);
  if (r == NULL) {
    usage_body_release(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          fmt == USAGE_FMT_OPENMETRICS ? USAGE_CT_OPENMETRICS
                                                       : USAGE_CT_TEXT);
  MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result serve_page(usage_exporter_t *e,
                                  struct MHD_Connection *conn) {
  usage_buf_t b;
  usage_buf_init(&b, 4 * 1024 * 1024);
  usage_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
                     "<meta charset=\"utf-8\">\n"
                     "<title>collectd usage plugin</title>\n</head>\n<body>\n"
                     "<h1>collectd usage plugin</h1>\n"
                     "<p><a href=\"/metrics\">Metrics</a></p>\n");
  if (e->opts.page != NULL)
    e->opts.page(e->opts.page_ud, &b);
  usage_buf_puts(&b, "</body>\n</html>\n");
  if (b.failed) {
    usage_buf_free(&b);
    return queue_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
                      "out of memory\n");
  }
  size_t len;
  char *data = usage_buf_steal(&b, &len);
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(data);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/html; charset=utf-8");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_size, void **req_cls) {
  usage_exporter_t *e = cls;
  (void)version;
  (void)upload_data;
  if (*req_cls == NULL) { /* first call: headers only */
    *req_cls = e;
    return MHD_YES;
  }
  if (*upload_size != 0) { /* ignore any request body */
    *upload_size = 0;
    return MHD_YES;
  }
  int known = strcmp(url, "/metrics") == 0 || strcmp(url, "/") == 0;
  if (!known)
    return queue_text(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
                      "404 not found: try /metrics\n");
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return queue_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                      "text/plain; charset=utf-8", "405 method not allowed\n");
  if (strcmp(url, "/metrics") == 0)
    return serve_metrics(e, conn);
  return serve_page(e, conn);
}

usage_exporter_t *usage_exporter_start(const usage_exporter_opts_t *opts,
                                       usage_store_t *store, char *err,
                                       size_t errlen) {
  struct addrinfo hints = {.ai_flags =
                               AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                           .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  int rc = getaddrinfo(opts->address, opts->port, &hints, &ai);
  if (rc != 0) {
    snprintf(err, errlen, "cannot use address \"%s\" port \"%s\": %s",
             opts->address, opts->port, gai_strerror(rc));
    return NULL;
  }
  usage_exporter_t *e = calloc(1, sizeof(*e));
  if (e == NULL) {
    freeaddrinfo(ai);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  e->store = store;
  e->opts = *opts;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
  if (ai->ai_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  e->mhd = MHD_start_daemon(
      flags, 0, NULL, NULL, handler, e, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
      MHD_OPTION_THREAD_POOL_SIZE, opts->threads ? opts->threads : 2,
      MHD_OPTION_CONNECTION_LIMIT, opts->max_conns ? opts->max_conns : 128,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      opts->max_per_ip ? opts->max_per_ip : 32, MHD_OPTION_CONNECTION_TIMEOUT,
      opts->timeout_s ? opts->timeout_s : 10,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
  freeaddrinfo(ai);
  if (e->mhd == NULL) {
    snprintf(err, errlen,
             "cannot listen on %s port %s (address in use or not local?)",
             opts->address, opts->port);
    free(e);
    return NULL;
  }
  return e;
}

void usage_exporter_stop(usage_exporter_t *e) {
  if (e == NULL)
    return;
  MHD_stop_daemon(e->mhd);
  free(e);
}
