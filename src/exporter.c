/* SPDX-License-Identifier: MIT */
/* exporter: libmicrohttpd server for /metrics and / (see exporter.h):
 * start and stop, routing, content negotiation and the responses. The body
 * comes from the store's render cache (plain or gzip) and is handed to
 * libmicrohttpd without a copy where it can take I/O vectors; the reference
 * is dropped when the response is freed. Every request is answered in the
 * first handler call, so a request body is never read. A request must
 * arrive whole within RequestTimeout of the connection (or of the previous
 * response), however slowly it trickles in: a reaper thread shuts down the
 * sockets of those that do not. At MaxConnections a new connection is
 * taken and the oldest one that has not sent a whole request is closed
 * instead, so a flood of idle or slow connections cannot keep a prompt
 * scraper out. Who may connect is exporter_auth.c's. */
#include "exporter.h"
#include "exporter_auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "compat.h" /* after the library headers it adapts */

/* One open connection, for the request deadline and the cap (its socket
 * context). The list runs from the oldest connection to the newest. */
typedef struct conn_s {
  struct conn_s *prev, *next;
  int fd;
  double start; /* when the deadline of the next request began */
  int busy;     /* a request is being answered: no deadline */
  int killed;   /* shut down by the reaper or for a newer connection */
} conn_t;

/* Connections over the cap that libmicrohttpd may hold while the closed
 * ones are being released (their sockets are shut down, not yet closed). */
#define SLACK(cap) ((cap) / 8 < 16 ? 16 : (cap) / 8)
#define LOG_EVERY 60.0 /* seconds between two lines about the cap */

struct usage_exporter_s {
  struct MHD_Daemon *mhd;
  usage_store_t *store;
  usage_exporter_opts_t opts;
  usage_exporter_tls_t tls;
  usage_exporter_auth_t *auth;
  /* the request deadline and the cap: open connections, the reaper */
  pthread_mutex_t lock;
  pthread_cond_t wake;
  conn_t *conns, *conns_tail;
  unsigned live;   /* listed and not shut down */
  unsigned cap;    /* MaxConnections, within the open-file limit */
  double deadline; /* seconds */
  /* since the last log line: connections closed for a newer one, and new
   * ones refused because every open one was answering */
  unsigned long evicted, refused;
  double logged; /* when the last line about the cap was logged */
  int stopping, reaper_running, lock_ready;
  pthread_t reaper;
};

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void exporter_log(usage_exporter_t *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void exporter_log(usage_exporter_t *e, const char *fmt, ...) {
  if (e->opts.log == NULL)
    return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  e->opts.log(e->opts.log_ud, msg);
}

/* conn_kill shuts down c's socket: libmicrohttpd then sees the end of the
 * stream and closes the connection. Under the lock. */
static void conn_kill(usage_exporter_t *e, conn_t *c) {
  shutdown(c->fd, SHUT_RDWR);
  c->killed = 1;
  e->live--;
}

/* make_room runs when a new connection (fresh) takes the open ones over
 * the cap: it closes the oldest one that is still waiting for its request
 * or, when every other one is being answered, the new one. (A connection
 * carries one request: libmicrohttpd closes it after a response queued in
 * the first handler call, so none waits idle after an answer.) Under the
 * lock. */
static void make_room(usage_exporter_t *e, conn_t *fresh) {
  conn_t *c = e->conns;
  while (c != NULL && (c == fresh || c->busy || c->killed))
    c = c->next;
  conn_kill(e, c != NULL ? c : fresh);
  if (c != NULL)
    e->evicted++;
  else
    e->refused++;
}

/* notify_connection keeps the list of open connections for the reaper and
 * the cap. libmicrohttpd reports CLOSED before it closes the socket, so
 * under the lock a listed fd is still this connection's. */
static void notify_connection(void *cls, struct MHD_Connection *conn,
                              void **socket_context,
                              enum MHD_ConnectionNotificationCode toe) {
  usage_exporter_t *e = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL || ci == NULL) {
      free(c); /* without an entry the idle timeout alone applies */
      return;
    }
    c->fd = ci->connect_fd;
    c->start = mono_now();
    pthread_mutex_lock(&e->lock);
    c->prev = e->conns_tail;
    if (e->conns_tail != NULL)
      e->conns_tail->next = c;
    else
      e->conns = c;
    e->conns_tail = c;
    if (++e->live > e->cap)
      make_room(e, c);
    pthread_mutex_unlock(&e->lock);
    *socket_context = c;
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
    conn_t *c = *socket_context;
    pthread_mutex_lock(&e->lock);
    if (c->prev != NULL)
      c->prev->next = c->next;
    else
      e->conns = c->next;
    if (c->next != NULL)
      c->next->prev = c->prev;
    else
      e->conns_tail = c->prev;
    if (!c->killed)
      e->live--;
    pthread_mutex_unlock(&e->lock);
    free(c);
    *socket_context = NULL;
  }
}

/* conn_mark: a request arrived whole (busy 1) or its response is done
 * (busy 0: the deadline of the next request on this connection starts). */
static void conn_mark(usage_exporter_t *e, struct MHD_Connection *conn,
                      int busy) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  if (ci == NULL || ci->socket_context == NULL)
    return;
  conn_t *c = ci->socket_context;
  pthread_mutex_lock(&e->lock);
  c->busy = busy;
  c->start = mono_now();
  pthread_mutex_unlock(&e->lock);
}

/* request_completed also frees a credential check whose connection was
 * closed after its resume without another handler call (the server
 * stopping): the auth thread is done with it by then. */
static void request_completed(void *cls, struct MHD_Connection *conn,
                              void **req_cls,
                              enum MHD_RequestTerminationCode toe) {
  (void)toe;
  if (*req_cls != NULL) {
    usage_exporter_auth_finish(*req_cls);
    *req_cls = NULL;
  }
  conn_mark(cls, conn, 0);
}

/* reaper shuts down the sockets of connections whose request is overdue,
 * and says at most once a minute that the cap was reached. */
static void *reaper(void *arg) {
  usage_exporter_t *e = arg;
  pthread_mutex_lock(&e->lock);
  while (!e->stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 200 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&e->wake, &e->lock, &ts);
    double now = mono_now();
    for (conn_t *c = e->conns; c != NULL; c = c->next)
      if (!c->busy && !c->killed && now - c->start > e->deadline)
        conn_kill(e, c);
    if ((e->evicted > 0 || e->refused > 0) && now - e->logged >= LOG_EVERY) {
      unsigned long evicted = e->evicted, refused = e->refused;
      e->evicted = e->refused = 0;
      e->logged = now;
      pthread_mutex_unlock(&e->lock);
      exporter_log(e,
                   "%u connections open (MaxConnections): closed the %lu "
                   "oldest that were waiting for a request and refused %lu "
                   "new ones while all were answering, since the last such "
                   "line; a flood of connections?",
                   e->cap, evicted, refused);
      pthread_mutex_lock(&e->lock);
    }
  }
  pthread_mutex_unlock(&e->lock);
  return NULL;
}

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
  return usage_buf_failed(b);
}

/* next_item splits a comma-separated header into the media/coding token and
 * its q value. Returns the rest of the list, or NULL at the end. */
static const char *next_item(const char *p, char *token, size_t size,
                             double *q) {
  if (p == NULL || *p == 0)
    return NULL;
  const char *end = strchr(p, ',');
  size_t len = end ? (size_t)(end - p) : strlen(p);
  char item[256];
  snprintf(item, sizeof(item), "%.*s", (int)(len < 255 ? len : 255), p);
  char *save = NULL;
  char *type = strtok_r(item, ";", &save);
  token[0] = 0;
  *q = 1;
  if (type != NULL) {
    while (*type == ' ' || *type == '\t')
      type++;
    size_t tl = strlen(type);
    while (tl > 0 && (type[tl - 1] == ' ' || type[tl - 1] == '\t'))
      type[--tl] = 0;
    snprintf(token, size, "%s", type);
    for (char *param; (param = strtok_r(NULL, ";", &save)) != NULL;) {
      while (*param == ' ' || *param == '\t')
        param++;
      if (strncasecmp(param, "q=", 2) == 0)
        *q = strtod(param + 2, NULL);
    }
  }
  return p + len + (end ? 1 : 0);
}

usage_format_t usage_exporter_negotiate(const char *accept) {
  double q_om = 0, q_text = 0, q;
  int om_first = 0, seen = 0;
  char type[128];
  for (const char *p = accept; (p = next_item(p, type, sizeof(type), &q));) {
    if (type[0] == 0 || !(q > 0))
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

int usage_exporter_wants_gzip(const char *accept_encoding) {
  double q, q_gzip = -1, q_star = -1;
  char coding[64];
  for (const char *p = accept_encoding;
       (p = next_item(p, coding, sizeof(coding), &q));) {
    if (strcasecmp(coding, "gzip") == 0 || strcasecmp(coding, "x-gzip") == 0)
      q_gzip = q;
    else if (strcmp(coding, "*") == 0)
      q_star = q;
  }
  if (q_gzip >= 0)
    return q_gzip > 0;
  return q_star > 0;
}

/* ---- responses ---- */

static void release_body(void *cls) { usage_body_release(cls); }

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status,
                                  const char *text) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/plain; charset=utf-8");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  /* a refused or wrong request frees its connection for someone else */
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  if (status == MHD_HTTP_UNAUTHORIZED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                            "Basic realm=\"usage\", charset=\"UTF-8\"");
  if (status == MHD_HTTP_TOO_MANY_REQUESTS)
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  enum MHD_Result ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* A body of many pieces is sent from its flat copy, made once per body and
 * kept with it (libmicrohttpd 0.9.75 sends a truncated body past about
 * 1,000 pieces), or, where libmicrohttpd takes neither I/O vectors nor a
 * buffer with a free callback of its own (0.9.72, compat.h), copied out in
 * blocks by a reader on every scrape.
 *
 * libmicrohttpd copies an I/O vector into the connection's memory pool
 * (ConnectionMemoryLimit), which also holds the request and the response
 * headers. When the copy does not fit it closes the connection after a
 * 200 with no body, and (0.9.73 to 0.9.77) unlocks a mutex it never
 * locked, so destroying the response aborts the process. An I/O vector is
 * therefore used only when it fits in half of what the pool has left
 * after twice the request and IOV_RESERVE bytes of response headers; a
 * client sending long headers gets the same bytes through a reader. */
#define IOV_PIECES_MAX 1000
#define IOV_RESERVE 2048
#define READER_BLOCK (256 * 1024)

static enum MHD_Result add_len(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value) {
  (void)kind;
  *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
  return MHD_YES;
}

/* iov_room: how many pieces an I/O vector may have for this request. */
static size_t iov_room(const usage_exporter_t *e, struct MHD_Connection *conn,
                       const char *url) {
  size_t pool = e->opts.mem_limit ? e->opts.mem_limit
                                  : USAGE_EXPORTER_MEMORY_LIMIT;
  size_t req = strlen(url) + 64; /* request line */
  MHD_get_connection_values(conn, MHD_HEADER_KIND, add_len, &req);
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_len, &req);
  if (pool <= 2 * req + IOV_RESERVE)
    return 0;
  size_t room = (pool - 2 * req - IOV_RESERVE) / 2 / sizeof(usage_iov_t);
  return room < IOV_PIECES_MAX ? room : IOV_PIECES_MAX;
}

typedef struct {
  usage_body_t *body;
  size_t piece, off; /* where the next byte comes from */
  uint64_t pos;      /* and its offset in the body */
} body_reader_t;

static ssize_t body_read(void *cls, uint64_t pos, char *buf, size_t max) {
  body_reader_t *r = cls;
  if (pos != r->pos) { /* not sequential: find the piece again */
    r->piece = 0;
    r->pos = 0;
    while (r->piece < r->body->iovcnt &&
           r->pos + r->body->iov[r->piece].len <= pos)
      r->pos += r->body->iov[r->piece++].len;
    r->off = (size_t)(pos - r->pos);
    r->pos = pos;
  }
  size_t n = 0;
  while (n < max && r->piece < r->body->iovcnt) {
    const usage_iov_t *v = &r->body->iov[r->piece];
    size_t take = v->len - r->off;
    if (take > max - n)
      take = max - n;
    memcpy(buf + n, (const char *)v->base + r->off, take);
    n += take;
    r->off += take;
    if (r->off == v->len) {
      r->piece++;
      r->off = 0;
    }
  }
  r->pos += n;
  return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void body_reader_free(void *cls) {
  body_reader_t *r = cls;
  usage_body_release(r->body);
  free(r);
}

/* body_response hands the body to libmicrohttpd without copying it: as its
 * pieces when they fit (room, iov_room), else as its flat copy (made once
 * per body, when it has more pieces than any request has room for);
 * through a reader (one copy per scrape, in blocks) otherwise and where
 * libmicrohttpd offers neither. An empty body keeps no reference. The
 * body's reference goes with the response, also on failure. */
static struct MHD_Response *body_response(usage_body_t *body, size_t room) {
  struct MHD_Response *r = NULL;
  if (body->iovcnt == 0) {
    usage_body_release(body);
    return MHD_create_response_from_buffer(0, (void *)"",
                                           MHD_RESPMEM_PERSISTENT);
  } else if (USAGE_MHD_HAVE_IOVEC && body->iovcnt <= room) {
    r = usage_mhd_response_from_iov(body->iov, body->iovcnt, release_body,
                                    body);
  } else if (USAGE_MHD_HAVE_DATA_CLS &&
             (body->iovcnt > IOV_PIECES_MAX ||
              __atomic_load_n(&body->data, __ATOMIC_ACQUIRE) != NULL) &&
             usage_body_flatten(body) == 0) {
    r = usage_mhd_response_from_data(body->data, body->len, release_body,
                                     body);
  } else {
    body_reader_t *rd = calloc(1, sizeof(*rd));
    if (rd != NULL) {
      rd->body = body;
      r = MHD_create_response_from_callback(body->len, READER_BLOCK, body_read,
                                            rd, body_reader_free);
      if (r == NULL)
        free(rd);
    }
  }
  if (r == NULL)
    usage_body_release(body);
  return r;
}

static enum MHD_Result serve_metrics(usage_exporter_t *e,
                                     struct MHD_Connection *conn) {
  const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_ACCEPT);
  const char *encoding = MHD_lookup_connection_value(
      conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
  usage_format_t fmt = usage_exporter_negotiate(accept);
  int gzip = usage_exporter_wants_gzip(encoding);
  usage_body_t *body = gzip ? usage_store_body_gzip(e->store, fmt)
                            : usage_store_body_iov(e->store, fmt);
  if (body == NULL)
    return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
  struct MHD_Response *r = body_response(body, iov_room(e, conn, "/metrics"));
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          fmt == USAGE_FMT_OPENMETRICS ? USAGE_CT_OPENMETRICS
                                                       : USAGE_CT_TEXT);
  if (gzip)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
  MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept, Accept-Encoding");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
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
                     "<title>collectd usage plugin</title>\n"
                     "<style>table{border-collapse:collapse}"
                     "td,th{border:1px solid #999;padding:2px 6px;"
                     "text-align:left}</style>\n"
                     "</head>\n<body>\n"
                     "<h1>collectd usage plugin</h1>\n"
                     "<p><a href=\"/metrics\">Metrics</a></p>\n");
  if (e->opts.page != NULL)
    e->opts.page(e->opts.page_ud, e->auth == NULL && e->tls.ca == NULL, &b);
  usage_buf_puts(&b, "</body>\n</html>\n");
  if (usage_buf_failed(&b)) {
    usage_buf_free(&b);
    return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
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
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "Content-Security-Policy",
                          "default-src 'none'; style-src 'unsafe-inline'");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

/* resume: a credential check is done; the handler is called again. */
static void resume(void *ud) { MHD_resume_connection(ud); }

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_size, void **req_cls) {
  usage_exporter_t *e = cls;
  (void)version;
  (void)upload_data;
  (void)upload_size;
  /* Everything is decided on the headers: the first call answers (or the
   * call after a credential check, which libmicrohttpd makes in the same
   * state), and a request body is never read (libmicrohttpd closes such a
   * connection). */
  conn_mark(e, conn, 1);
  if (!usage_exporter_tls_client_ok(&e->tls, conn))
    return queue_text(conn, MHD_HTTP_FORBIDDEN,
                      "403 a valid client certificate is required\n");
  if (e->auth != NULL) {
    unsigned code;
    if (*req_cls != NULL) { /* resumed: the bcrypt thread has decided */
      code = usage_exporter_auth_finish(*req_cls);
      *req_cls = NULL;
    } else {
      usage_exporter_auth_job_t *job = NULL;
      code = usage_exporter_auth_begin(e->auth, conn, &job);
      if (code == USAGE_EXPORTER_AUTH_PENDING) {
        /* suspended first, so the resume cannot come before it */
        *req_cls = job;
        MHD_suspend_connection(conn);
        usage_exporter_auth_submit(e->auth, job, resume, conn);
        return MHD_YES;
      }
    }
    if (code == MHD_HTTP_UNAUTHORIZED)
      return queue_text(conn, code, "401 authentication required\n");
    if (code == MHD_HTTP_TOO_MANY_REQUESTS)
      return queue_text(conn, code, "429 too many login attempts\n");
    if (code != 0)
      return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                        "503 stopping or out of memory\n");
  }
  int metrics = strcmp(url, "/metrics") == 0;
  if (!metrics && strcmp(url, "/") != 0)
    return queue_text(conn, MHD_HTTP_NOT_FOUND,
                      "404 not found: try /metrics\n");
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return queue_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                      "405 method not allowed\n");
  return metrics ? serve_metrics(e, conn) : serve_page(e, conn);
}

/* resolve: the address as a number first, then as a host name. */
static int resolve(const usage_exporter_opts_t *opts, struct addrinfo **ai,
                   char *err, size_t errlen) {
  struct addrinfo hints = {.ai_flags =
                               AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                           .ai_socktype = SOCK_STREAM};
  int rc = getaddrinfo(opts->address, opts->port, &hints, ai);
  if (rc == EAI_NONAME) {
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    rc = getaddrinfo(opts->address, opts->port, &hints, ai);
  }
  if (rc != 0) {
    snprintf(err, errlen, "cannot use address \"%s\" port \"%s\": %s",
             opts->address, opts->port,
             rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    return EINVAL;
  }
  return 0;
}

/* start_mhd starts libmicrohttpd on one resolved address. epoll (or poll
 * where the library lacks it), never select: select cannot watch a socket
 * numbered FD_SETSIZE (1024) or above. libmicrohttpd's own cap is ours
 * plus the slack for connections shut down and not yet closed; ours is
 * kept by make_room. */
static struct MHD_Daemon *start_mhd(usage_exporter_t *e,
                                    const usage_exporter_opts_t *opts,
                                    const struct addrinfo *ai) {
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME;
  flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES
               ? MHD_USE_EPOLL
               : MHD_USE_POLL;
  if (ai->ai_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  struct MHD_OptionItem o[20];
  size_t n = 0;
#define OPT(opt, v, p) o[n++] = (struct MHD_OptionItem){(opt), (v), (p)}
  OPT(MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr);
  OPT(MHD_OPTION_THREAD_POOL_SIZE,
      opts->threads ? opts->threads : USAGE_EXPORTER_THREADS, NULL);
  OPT(MHD_OPTION_CONNECTION_LIMIT, e->cap + SLACK(e->cap), NULL);
  OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      opts->max_per_ip ? opts->max_per_ip : USAGE_EXPORTER_MAX_PER_IP, NULL);
  OPT(MHD_OPTION_CONNECTION_TIMEOUT,
      opts->timeout_s ? opts->timeout_s : USAGE_EXPORTER_IDLE_TIMEOUT, NULL);
  OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (intptr_t)(opts->mem_limit ? opts->mem_limit
                                 : USAGE_EXPORTER_MEMORY_LIMIT),
      NULL);
  /* a burst of connections waits in the kernel instead of losing its SYN
   * (a client would wait a second or more to send it again) */
  OPT(MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL);
  OPT(MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_connection, e);
  OPT(MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)request_completed, e);
  if (e->tls.cert != NULL) {
    flags |= MHD_USE_TLS;
    OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, e->tls.cert);
    OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, e->tls.key);
    OPT(MHD_OPTION_HTTPS_PRIORITIES, 0,
        "NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1");
    if (e->tls.ca != NULL)
      OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, e->tls.ca);
  }
  OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
  return MHD_start_daemon(flags, 0, NULL, NULL, handler, e, MHD_OPTION_ARRAY, o,
                          MHD_OPTION_END);
}

unsigned usage_exporter_fd_cap(unsigned want, unsigned long nofile) {
  unsigned long avail = nofile > USAGE_EXPORTER_FD_RESERVE
                            ? nofile - USAGE_EXPORTER_FD_RESERVE
                            : 0;
  if ((unsigned long)want + SLACK(want) <= avail)
    return want;
  /* the largest cap whose slack still fits */
  unsigned cap = (unsigned)(avail * 8 / 9); /* near it, below want */
  while ((unsigned long)cap + 1 + SLACK(cap + 1) <= avail)
    cap++;
  while (cap > 0 && (unsigned long)cap + SLACK(cap) > avail)
    cap--;
  return cap < USAGE_EXPORTER_MIN_CONNS ? USAGE_EXPORTER_MIN_CONNS : cap;
}

usage_exporter_t *usage_exporter_start(const usage_exporter_opts_t *opts,
                                       usage_store_t *store, char *err,
                                       size_t errlen) {
  struct addrinfo *ai = NULL;
  if (resolve(opts, &ai, err, errlen) != 0)
    return NULL;
  usage_exporter_t *e = calloc(1, sizeof(*e));
  if (e == NULL) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  e->store = store;
  e->opts = *opts;
  e->deadline = opts->request_timeout_s ? opts->request_timeout_s
                                        : USAGE_EXPORTER_REQUEST_TIMEOUT;
  e->logged = -LOG_EVERY;
  unsigned want = opts->max_conns ? opts->max_conns : USAGE_EXPORTER_MAX_CONNS;
  struct rlimit rl;
  unsigned long nofile = ULONG_MAX;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < ULONG_MAX)
    nofile = (unsigned long)rl.rlim_cur;
  e->cap = usage_exporter_fd_cap(want, nofile);
  if (e->cap < want)
    exporter_log(e,
                 "MaxConnections %u does not fit the open-file limit of "
                 "%lu (RLIMIT_NOFILE, %u of them kept for the rest of "
                 "collectd): at most %u connections at once; raise the "
                 "limit (LimitNOFILE= in the service unit, or ulimit -n) "
                 "to allow more",
                 want, nofile, USAGE_EXPORTER_FD_RESERVE, e->cap);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&e->wake, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&e->lock, NULL);
  e->lock_ready = 1;
  if (usage_exporter_tls_load(&e->tls, opts, err, errlen) != 0)
    goto fail;
  if (opts->users_num > 0 &&
      (e->auth = usage_exporter_auth_create(opts, err, errlen)) == NULL)
    goto fail;
  /* a host name may resolve to several addresses: the first that works */
  for (const struct addrinfo *p = ai; p != NULL && e->mhd == NULL;
       p = p->ai_next)
    e->mhd = start_mhd(e, opts, p);
  if (e->mhd == NULL) {
    snprintf(err, errlen,
             "cannot listen on %s port %s (address in use or not local, "
             "or a bad TLS certificate or key?)",
             opts->address, opts->port);
    goto fail;
  }
  if (pthread_create(&e->reaper, NULL, reaper, e) != 0) {
    snprintf(err, errlen, "cannot start a thread");
    goto fail;
  }
  e->reaper_running = 1;
  freeaddrinfo(ai);
  return e;

fail:
  freeaddrinfo(ai);
  usage_exporter_stop(e);
  return NULL;
}

void usage_exporter_stop(usage_exporter_t *e) {
  if (e == NULL)
    return;
  if (e->reaper_running) {
    pthread_mutex_lock(&e->lock);
    e->stopping = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->reaper, NULL);
  }
  /* no connection may be suspended when libmicrohttpd stops */
  usage_exporter_auth_drain(e->auth);
  if (e->mhd != NULL)
    MHD_stop_daemon(e->mhd); /* reports every connection CLOSED */
  if (e->lock_ready) {
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
  }
  usage_exporter_auth_destroy(e->auth);
  usage_exporter_tls_clear(&e->tls);
  free(e);
}
