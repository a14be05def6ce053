/* SPDX-License-Identifier: MIT */
/* test_exporter: the HTTP server over loopback with libcurl (status codes,
 * content types, bodies, methods) and the Accept negotiation table. */
#include "exporter.h"
#include "families.h"
#include "store.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define PROMETHEUS_ACCEPT                                                      \
  "application/openmetrics-text;version=1.0.0,application/"                    \
  "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/"    \
  "*;q=0.1"

static void test_negotiate(void **state) {
  static const struct {
    const char *accept;
    usage_format_t want;
  } cases[] = {
      {NULL, USAGE_FMT_TEXT},
      {"", USAGE_FMT_TEXT},
      {"text/plain", USAGE_FMT_TEXT},
      {"text/plain;version=0.0.4", USAGE_FMT_TEXT},
      {PROMETHEUS_ACCEPT, USAGE_FMT_OPENMETRICS},
      {"application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;"
       "q=0.5,*/*;q=0.1",
       USAGE_FMT_OPENMETRICS},
      {"application/openmetrics-text", USAGE_FMT_OPENMETRICS},
      {"APPLICATION/OpenMetrics-Text", USAGE_FMT_OPENMETRICS},
      {"application/openmetrics-text;q=0", USAGE_FMT_TEXT},
      {"application/openmetrics-text;q=0.0,text/plain", USAGE_FMT_TEXT},
      {"application/openmetrics-text; version=1.0.0; q=0.9, text/plain; q=0",
       USAGE_FMT_OPENMETRICS},
      {"text/plain;q=0.5,application/openmetrics-text;q=0.6",
       USAGE_FMT_OPENMETRICS},
      {"text/plain;q=0.9,application/openmetrics-text;q=0.5", USAGE_FMT_TEXT},
      {"text/plain,application/openmetrics-text", USAGE_FMT_TEXT},
      {"application/openmetrics-text,text/plain", USAGE_FMT_OPENMETRICS},
      {"*/*", USAGE_FMT_TEXT},
      {"application/json", USAGE_FMT_TEXT},
      {"text/html,application/xhtml+xml,*/*;q=0.8", USAGE_FMT_TEXT},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_format_t got = usage_exporter_negotiate(cases[i].accept);
    if (got != cases[i].want)
      fail_msg("Accept \"%s\": format %d, want %d",
               cases[i].accept ? cases[i].accept : "(none)", got,
               cases[i].want);
  }
}

static void test_html_escape(void **state) {
  (void)state;
  usage_buf_t b;
  usage_buf_init(&b, 0);
  assert_int_equal(usage_html_escape(&b, "<a href=\"x\">Tom & Jerry's</a>"), 0);
  assert_string_equal(
      b.data, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
  usage_buf_free(&b);
}

/* A free loopback port: bind to port 0, read it back, close. */
static char port[16];
static void free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  socklen_t len = sizeof(sa);
  getsockname(fd, (struct sockaddr *)&sa, &len);
  snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));
  close(fd);
}

static void page(void *ud, usage_buf_t *out) {
  usage_buf_puts(out, "<p>source ");
  usage_html_escape(out, ud);
  usage_buf_puts(out, "</p>\n");
}

static size_t collect(char *p, size_t size, size_t n, void *ud) {
  usage_buf_append(ud, p, size * n);
  return size * n;
}

typedef struct {
  long status;
  usage_buf_t body, headers;
} reply_t;

static void request(const char *method, const char *path, const char *accept,
                    reply_t *r) {
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%s%s", port, path);
  usage_buf_init(&r->body, 0);
  usage_buf_init(&r->headers, 0);
  usage_buf_puts(&r->body, "");
  CURL *c = curl_easy_init();
  struct curl_slist *h = NULL;
  if (accept != NULL) {
    char line[512];
    snprintf(line, sizeof(line), "Accept: %s", accept);
    h = curl_slist_append(h, line);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "POST") == 0)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
  else if (strcmp(method, "GET") != 0)
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK)
    fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
}

static void reply_free(reply_t *r) {
  usage_buf_free(&r->body);
  usage_buf_free(&r->headers);
}

static const char *header(reply_t *r, const char *name) {
  static char value[256];
  const char *p = r->headers.data;
  size_t n = strlen(name);
  while (p != NULL && *p) {
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1;
      while (*v == ' ')
        v++;
      size_t len = strcspn(v, "\r\n");
      snprintf(value, sizeof(value), "%.*s", (int)len, v);
      return value;
    }
    p = strchr(p, '\n');
    if (p != NULL)
      p++;
  }
  return NULL;
}

static void test_server(void **state) {
  (void)state;
  usage_store_t *store = usage_store_create();
  usage_batch_t *b = usage_batch_create("acme", "self");
  usage_batch_add(b, FAM_SOURCE_UP, 1, "kind", "ccc", NULL);
  usage_batch_add(b, FAM_SCRAPE_REQUESTS, 3, "code", "200", NULL);
  usage_store_commit(store, b);

  free_port();
  usage_exporter_opts_t opts = {.address = "127.0.0.1",
                                .port = port,
                                .page = page,
                                .page_ud = "<b>a&b's \"x\"</b>"};
  char err[256] = "";
  usage_exporter_t *e = usage_exporter_start(&opts, store, err, sizeof(err));
  if (e == NULL)
    fail_msg("start: %s", err);

  usage_body_t *text = usage_store_body(store, USAGE_FMT_TEXT);
  usage_body_t *om = usage_store_body(store, USAGE_FMT_OPENMETRICS);

  reply_t r;
  request("GET", "/metrics", NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(header(&r, "Content-Type"),
                      "text/plain; version=0.0.4; charset=utf-8");
  assert_int_equal(r.body.len, text->len);
  assert_string_equal(r.body.data, text->data);
  assert_non_null(strstr(r.body.data, "usage_source_up{source=\"acme\""));
  reply_free(&r);

  request("GET", "/metrics", PROMETHEUS_ACCEPT, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(
      header(&r, "Content-Type"),
      "application/openmetrics-text; version=1.0.0; charset=utf-8");
  assert_string_equal(r.body.data, om->data);
  assert_non_null(strstr(r.body.data, "# TYPE usage_scrape_requests counter"));
  assert_int_equal(strcmp(r.body.data + r.body.len - 6, "# EOF\n"), 0);
  reply_free(&r);

  request("HEAD", "/metrics", NULL, &r);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body.len, 0);
  assert_string_equal(header(&r, "Content-Type"),
                      "text/plain; version=0.0.4; charset=utf-8");
  char len[32];
  snprintf(len, sizeof(len), "%zu", text->len);
  assert_string_equal(header(&r, "Content-Length"), len);
  reply_free(&r);

  request("GET", "/", NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(header(&r, "Content-Type"), "text/html; charset=utf-8");
  assert_non_null(strstr(r.body.data, "href=\"/metrics\""));
  assert_non_null(
      strstr(r.body.data, "&lt;b&gt;a&amp;b&#39;s &quot;x&quot;&lt;/b&gt;"));
  assert_null(strstr(r.body.data, "<b>a&b"));
  reply_free(&r);

  static const struct {
    const char *method, *path;
    long status;
    const char *allow;
  } errors[] = {
      {"GET", "/nope", 404, NULL},     {"GET", "/metrics/", 404, NULL},
      {"GET", "/metricsx", 404, NULL}, {"POST", "/metrics", 405, "GET, HEAD"},
      {"PUT", "/", 405, "GET, HEAD"},  {"DELETE", "/metrics", 405, "GET, HEAD"},
  };
  for (size_t i = 0; i < sizeof(errors) / sizeof(*errors); i++) {
    request(errors[i].method, errors[i].path, NULL, &r);
    if (r.status != errors[i].status)
      fail_msg("%s %s: %ld, want %ld", errors[i].method, errors[i].path,
               r.status, errors[i].status);
    if (errors[i].allow != NULL) {
      const char *allow = header(&r, "Allow");
      if (allow == NULL || strcmp(allow, errors[i].allow) != 0)
        fail_msg("%s %s: Allow %s", errors[i].method, errors[i].path,
                 allow ? allow : "(none)");
    }
    reply_free(&r);
  }

  /* a commit shows on the next scrape */
  b = usage_batch_create("acme", "self");
  usage_batch_add(b, FAM_SOURCE_UP, 0, "kind", "ccc", NULL);
  usage_store_commit(store, b);
  request("GET", "/metrics", "text/plain", &r);
  assert_non_null(
      strstr(r.body.data, "usage_source_up{source=\"acme\",kind=\"ccc\"} 0\n"));
  assert_null(strstr(r.body.data, "usage_scrape_requests_total"));
  reply_free(&r);

  usage_body_release(text);
  usage_body_release(om);
  usage_exporter_stop(e);
  usage_exporter_stop(NULL);

  /* a port in use: a clear error, no crash */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(fd, 1), 0);
  socklen_t sl = sizeof(sa);
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));
  err[0] = 0;
  assert_null(usage_exporter_start(&opts, store, err, sizeof(err)));
  assert_non_null(strstr(err, port));
  close(fd);
  /* an address that is not numeric */
  opts.address = "localhost";
  err[0] = 0;
  assert_null(usage_exporter_start(&opts, store, err, sizeof(err)));
  assert_non_null(strstr(err, "localhost"));
  usage_store_destroy(store);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_ALL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_negotiate),
      cmocka_unit_test(test_html_escape),
      cmocka_unit_test(test_server),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return rc;
}
