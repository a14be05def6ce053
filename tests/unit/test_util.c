/* SPDX-License-Identifier: MIT */
/* test_util: helpers shared by the unit tests (see test_util.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "test_util.h"

#include "buf.h"
#include "families.h"

char *tu_read_fixture(const char *name, size_t *len) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", FIXTURES, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    fail_msg("cannot open %s", path);
  size_t cap = 65536, n = 0, got;
  char *data = malloc(cap + 1);
  while (data != NULL && (got = fread(data + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      char *p = realloc(data, 2 * cap + 1);
      if (p == NULL) {
        free(data);
        data = NULL;
        break;
      }
      data = p;
      cap *= 2;
    }
  }
  fclose(f);
  if (data == NULL)
    fail_msg("out of memory reading %s", path);
  data[n] = 0;
  if (len != NULL)
    *len = n;
  return data;
}

char *tu_store_text(usage_store_t *s) {
  usage_body_t *body = usage_store_body(s, USAGE_FMT_TEXT);
  if (body == NULL)
    fail_msg("cannot render the store");
  char *text = strdup(body->data);
  usage_body_release(body);
  return text;
}

char *tu_render_batch(usage_batch_t *b) {
  usage_store_t *s = usage_store_create();
  assert_int_equal(usage_store_commit(s, b), 0);
  char *text = tu_store_text(s);
  usage_store_destroy(s);
  return text;
}

char *tu_batch_lines(const usage_batch_t *b) {
  usage_buf_t out;
  usage_buf_init(&out, 0);
  for (size_t i = 0; i < usage_batch_size(b); i++) {
    const usage_sample_t *s = usage_batch_sample(b, i);
    usage_buf_puts(&out, usage_families[s->family].name);
    for (unsigned k = 0; k < s->nlabels; k++)
      usage_buf_printf(&out, "%s%s=\"%s\"", k ? "," : "{", s->labels[2 * k],
                       s->labels[2 * k + 1]);
    usage_buf_printf(&out, "%s %.17g\n", s->nlabels ? "}" : "", s->value);
  }
  char *text = usage_buf_steal(&out, NULL);
  return text ? text : strdup("");
}

void tu_expect_line(const char *text, const char *line, int present) {
  if ((strstr(text, line) != NULL) != present)
    fail_msg("%s \"%s\" in:\n%s", present ? "missing" : "unexpected", line,
             text);
}

void tu_log_add(char *text, size_t cap, size_t *len, int level,
                const char *msg) {
  int n = snprintf(text + *len, cap - *len, "%d %s\n", level, msg);
  if (n > 0 && *len + (size_t)n < cap)
    *len += (size_t)n;
}

struct MHD_Daemon *tu_http_start(MHD_AccessHandlerCallback handler, void *cls,
                                 unsigned *port) {
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
      NULL, handler, cls, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
      MHD_OPTION_END);
  if (d == NULL)
    fail_msg("cannot start the test HTTP server");
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  if (info == NULL || info->port == 0)
    fail_msg("the test HTTP server has no port");
  *port = info->port;
  return d;
}

int tu_http_first_call(void **req_cls) {
  static int marker;
  if (*req_cls != NULL)
    return 0;
  *req_cls = &marker;
  return 1;
}

typedef struct {
  char *out;
  size_t cap, len;
} query_t;

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value) {
  (void)kind;
  query_t *q = cls;
  int n = snprintf(q->out + q->len, q->cap - q->len, "%s%s=%s",
                   q->len ? "&" : "", key, value ? value : "");
  if (n > 0)
    q->len += (size_t)n < q->cap - q->len ? (size_t)n : q->cap - q->len - 1;
  return MHD_YES;
}

void tu_http_query(struct MHD_Connection *conn, char *out, size_t cap) {
  query_t q = {out, cap, 0};
  out[0] = 0;
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg, &q);
}
