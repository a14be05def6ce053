/* SPDX-License-Identifier: MIT */
/* test_exporter: the HTTP server over loopback with libcurl (status codes,
 * content types, bodies, methods, gzip, golden bodies of both formats,
 * oversized requests, Basic auth, TLS with client certificates, connection
 * limits, the idle timeout and the request deadline, the cap closing the
 * oldest waiting connection, the open-file limit, per-address login
 * limits, status page redaction, IPv6 and host name addresses) and the
 * Accept/Accept-Encoding tables. */
#include "exporter.h"
#include "families.h"
#include "store.h"
#include "text.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <crypt.h>
#include <pthread.h>
#include <time.h>
#include <zlib.h>

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

/* A last error as the status page would show it. */
#define PAGE_ERROR "filter \"customerId\" value 'in:1001' for alice@example.com"

static void page(void *ud, int redact, usage_buf_t *out) {
  usage_buf_puts(out, "<p>source ");
  usage_html_escape(out, ud);
  usage_buf_puts(out, "</p>\n<p>error ");
  char text[256];
  if (redact)
    usage_text_redact(text, sizeof(text), PAGE_ERROR);
  else
    snprintf(text, sizeof(text), "%s", PAGE_ERROR);
  usage_html_escape(out, text);
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
  /* a host name that does not resolve (test_addresses: one that does) */
  opts.address = "no-such-host.invalid";
  err[0] = 0;
  assert_null(usage_exporter_start(&opts, store, err, sizeof(err)));
  assert_non_null(strstr(err, "no-such-host.invalid"));
  usage_store_destroy(store);
}

/* ---- the hardened exporter ---- */

static void test_wants_gzip(void **state) {
  static const struct {
    const char *ae;
    int want;
  } cases[] = {
      {NULL, 0},
      {"", 0},
      {"gzip", 1},
      {"GZIP", 1},
      {"x-gzip", 1},
      {"identity", 0},
      {"deflate, gzip;q=0.5", 1},
      {"gzip;q=0", 0},
      {"gzip; q=0.0, identity", 0},
      {"*", 1},
      {"*;q=0", 0},
      {"*, gzip;q=0", 0},
      {"br, deflate", 0},
      {"gzip, deflate, br", 1},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
    if (usage_exporter_wants_gzip(cases[i].ae) != cases[i].want)
      fail_msg("Accept-Encoding \"%s\": want %d",
               cases[i].ae ? cases[i].ae : "(none)", cases[i].want);
}

/* make_hash: a bcrypt hash of pass ($2y$, as htpasswd -B writes). */
static void make_hash(const char *pass, unsigned long cost, char *out,
                      size_t size) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  assert_non_null(
      crypt_gensalt_rn("$2y$", cost, NULL, 0, setting, sizeof(setting)));
  struct crypt_data cd;
  memset(&cd, 0, sizeof(cd));
  const char *h = crypt_rn(pass, setting, &cd, sizeof(cd));
  assert_non_null(h);
  snprintf(out, size, "%s", h);
}

static void test_check_hash(void **state) {
  (void)state;
  char good[128];
  make_hash("secret", 4, good, sizeof(good));
  static const struct {
    const char *name, *hash;
    int want;
  } cases[] = {
      /* htpasswd -nBC 10 prometheus (password "prometheus") */
      {"htpasswd",
       "$2y$10$WQsLVpSIjqCwRouDJPvNyOovgDFCT6GU8fDmSOP33t/U68bM.Tq5K", 0},
      {"2b", "$2b$10$WQsLVpSIjqCwRouDJPvNyOovgDFCT6GU8fDmSOP33t/U68bM.Tq5K", 0},
      {"empty", "", EINVAL},
      {"plain", "prometheus", EINVAL},
      {"md5", "$1$abcdefgh$0123456789012345678901", EINVAL},
      {"short", "$2y$10$WQsLVpSIjqCwRouDJPvNyOovgDFCT6GU8fDmSOP33t/U68bM.",
       EINVAL},
      {"bad cost",
       "$2y$99$WQsLVpSIjqCwRouDJPvNyOovgDFCT6GU8fDmSOP33t/U68bM.Tq5K", EINVAL},
  };
  assert_int_equal(usage_exporter_check_hash(good), 0);
  assert_int_equal(usage_exporter_check_hash(NULL), EINVAL);
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
    if (usage_exporter_check_hash(cases[i].hash) != cases[i].want)
      fail_msg("%s: want %d", cases[i].name, cases[i].want);
}

typedef struct {
  const char *method, *path;
  const char *accept, *accept_encoding; /* raw, not decoded by curl */
  const char *user, *pass;
  const char *extra_header;
  const char *cert, *key; /* TLS client certificate */
  int tls;
  long url_pad;     /* append this many 'a' to the path */
  const char *host; /* default 127.0.0.1 */
  const char *from; /* source address (CURLOPT_INTERFACE), or NULL */
} req_t;

/* fetch performs one request; 0 or the curl error code. */
static int fetch(const req_t *q, reply_t *r) {
  usage_buf_t url;
  usage_buf_init(&url, 0);
  usage_buf_printf(&url, "%s://%s:%s%s", q->tls ? "https" : "http",
                   q->host ? q->host : "127.0.0.1", port,
                   q->path ? q->path : "/metrics");
  for (long i = 0; i < q->url_pad; i++)
    usage_buf_putc(&url, 'a');
  usage_buf_init(&r->body, 0);
  usage_buf_init(&r->headers, 0);
  usage_buf_puts(&r->body, "");
  CURL *c = curl_easy_init();
  struct curl_slist *h = NULL;
  char line[512];
  if (q->accept != NULL) {
    snprintf(line, sizeof(line), "Accept: %s", q->accept);
    h = curl_slist_append(h, line);
  }
  if (q->accept_encoding != NULL) {
    snprintf(line, sizeof(line), "Accept-Encoding: %s", q->accept_encoding);
    h = curl_slist_append(h, line);
  }
  if (q->extra_header != NULL)
    h = curl_slist_append(h, q->extra_header);
  curl_easy_setopt(c, CURLOPT_URL, url.data);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  if (q->from != NULL)
    curl_easy_setopt(c, CURLOPT_INTERFACE, q->from);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
  if (q->user != NULL) {
    curl_easy_setopt(c, CURLOPT_USERNAME, q->user);
    curl_easy_setopt(c, CURLOPT_PASSWORD, q->pass);
  }
  if (q->tls) {
    curl_easy_setopt(c, CURLOPT_CAINFO, FIXTURES "/exporter/ca.pem");
    if (q->cert != NULL) {
      curl_easy_setopt(c, CURLOPT_SSLCERT, q->cert);
      curl_easy_setopt(c, CURLOPT_SSLKEY, q->key);
    }
  }
  const char *method = q->method ? q->method : "GET";
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0)
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  CURLcode rc = curl_easy_perform(c);
  r->status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  usage_buf_free(&url);
  return (int)rc;
}

static usage_exporter_t *start(usage_exporter_opts_t *opts,
                               usage_store_t *store) {
  free_port();
  opts->address = "127.0.0.1";
  opts->port = port;
  char err[256] = "";
  usage_exporter_t *e = usage_exporter_start(opts, store, err, sizeof(err));
  if (e == NULL)
    fail_msg("start: %s", err);
  return e;
}

/* gunzip inflates a gzip body into out: every member of it (RFC 1952 2.2;
 * what Go's compress/gzip reads by default). */
static void gunzip(const char *data, size_t len, usage_buf_t *out) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = (Bytef *)data;
  z.avail_in = (uInt)len;
  char chunk[65536];
  int rc;
  do {
    z.next_out = (Bytef *)chunk;
    z.avail_out = sizeof(chunk);
    rc = inflate(&z, Z_NO_FLUSH);
    assert_true(rc == Z_OK || rc == Z_STREAM_END);
    usage_buf_append(out, chunk, sizeof(chunk) - z.avail_out);
    if (rc == Z_STREAM_END && z.avail_in > 0) {
      assert_int_equal(inflateReset(&z), Z_OK); /* the next member */
      rc = Z_OK;
    }
  } while (rc != Z_STREAM_END);
  assert_int_equal(z.avail_in, 0);
  inflateEnd(&z);
}

static usage_store_t *golden_store(void) {
  usage_store_t *store = usage_store_create();
  usage_batch_t *b = usage_batch_create("acme \"eu\"", "svc");
  usage_batch_add(b, FAM_CCC_SERVICE_INFO, 1, "service", "s1", "name",
                  "Caf\xc3\xa9 \"Z\xc3\xbcrich\"\nline2", "code", "C\\1",
                  "primary_domain", "b\xc3\xbc\xe2\x9c\x93.example", NULL);
  usage_batch_add(b, FAM_CCC_SERVICE_STATUS, 1, "service", "s1", "status",
                  "TrialActive", NULL);
  usage_batch_add(b, FAM_CCC_STATUS_CHANGES, 7, "service", "s1", "status",
                  "Blocked", NULL);
  usage_batch_add(b, FAM_CCC_SERVICE_ATTACHMENT_STORAGE_BYTES, 1.5e9, "service",
                  "s1", NULL);
  usage_store_commit(store, b);
  b = usage_batch_create("", "build");
  usage_batch_add(b, FAM_EXPORTER_BUILD_INFO, 1, "version", "1.2.3", NULL);
  usage_store_commit(store, b);
  return store;
}

/* expect_golden compares with a golden file; UPDATE_GOLDEN=1 rewrites it
 * (then review the diff). */
static void expect_golden(const char *got, const char *path) {
  if (getenv("UPDATE_GOLDEN") != NULL) {
    FILE *w = fopen(path, "w");
    assert_non_null(w);
    fputs(got, w);
    fclose(w);
  }
  FILE *f = fopen(path, "r");
  if (f == NULL)
    fail_msg("cannot open %s", path);
  static char want[65536];
  size_t n = fread(want, 1, sizeof(want) - 1, f);
  want[n] = 0;
  fclose(f);
  if (strcmp(got, want) != 0)
    fail_msg("%s differs; got:\n%s", path, got);
}

/* Golden bodies of both formats through the server, plain and gzip: label
 * escaping of \, " and newline, UTF-8 kept as is, counters and info
 * families named per format, # UNIT and # EOF in OpenMetrics only. */
static void test_golden_gzip(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  usage_exporter_opts_t opts = {0};
  usage_exporter_t *e = start(&opts, store);
  static const struct {
    const char *name, *accept, *golden, *ct;
  } cases[] = {
      {"text", NULL, FIXTURES "/exporter/golden.prom", USAGE_CT_TEXT},
      {"openmetrics", PROMETHEUS_ACCEPT, FIXTURES "/exporter/golden.om",
       USAGE_CT_OPENMETRICS},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    reply_t plain, gz;
    req_t q = {.accept = cases[i].accept};
    assert_int_equal(fetch(&q, &plain), 0);
    assert_int_equal(plain.status, 200);
    assert_string_equal(header(&plain, "Content-Type"), cases[i].ct);
    assert_null(header(&plain, "Content-Encoding"));
    expect_golden(plain.body.data, cases[i].golden);

    q.accept_encoding = "gzip, deflate";
    assert_int_equal(fetch(&q, &gz), 0);
    assert_int_equal(gz.status, 200);
    assert_string_equal(header(&gz, "Content-Encoding"), "gzip");
    assert_string_equal(header(&gz, "Content-Type"), cases[i].ct);
    assert_string_equal(header(&gz, "Vary"), "Accept, Accept-Encoding");
    assert_true(gz.body.len > 18 && (unsigned char)gz.body.data[0] == 0x1f &&
                (unsigned char)gz.body.data[1] == 0x8b);
    usage_buf_t out;
    usage_buf_init(&out, 0);
    gunzip(gz.body.data, gz.body.len, &out);
    assert_int_equal(out.len, plain.body.len);
    assert_memory_equal(out.data, plain.body.data, out.len);
    usage_buf_free(&out);
    reply_free(&gz);

    /* HEAD: the headers of GET, no body */
    q.method = "HEAD";
    assert_int_equal(fetch(&q, &gz), 0);
    assert_int_equal(gz.status, 200);
    assert_int_equal(gz.body.len, 0);
    assert_string_equal(header(&gz, "Content-Encoding"), "gzip");
    reply_free(&gz);
    reply_free(&plain);
  }
  /* the gzip form is cached per rendered body and follows commits */
  usage_body_t *g1 = usage_store_body_gzip(store, USAGE_FMT_TEXT);
  usage_body_t *g2 = usage_store_body_gzip(store, USAGE_FMT_TEXT);
  assert_ptr_equal(g1, g2);
  usage_batch_t *b = usage_batch_create("acme", "x");
  usage_batch_add(b, FAM_SOURCE_UP, 0, "kind", "ccc", NULL);
  usage_store_commit(store, b);
  usage_body_t *g3 = usage_store_body_gzip(store, USAGE_FMT_TEXT);
  assert_ptr_not_equal(g1, g3);
  assert_true(g3->generation > g1->generation);
  usage_buf_t out;
  usage_buf_init(&out, 0);
  gunzip(g3->data, g3->len, &out);
  assert_non_null(strstr(out.data, "usage_source_up{source=\"acme\""));
  usage_buf_free(&out);
  usage_body_release(g1);
  usage_body_release(g2);
  usage_body_release(g3);
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

/* Requests that are too big or not allowed, answered with the right code. */
static void test_bad_requests(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  usage_exporter_opts_t opts = {0};
  usage_exporter_t *e = start(&opts, store);
  static char big_header[40000];
  memset(big_header, 'x', sizeof(big_header) - 1);
  memcpy(big_header, "X-Big: ", 7);
  static const struct {
    const char *name;
    req_t q;
    long want;
    const char *allow;
  } cases[] = {
      {"long URL", {.path = "/metrics?", .url_pad = 40000}, 414, NULL},
      {"big header", {.extra_header = big_header}, 431, NULL},
      {"404", {.path = "/metrics.txt"}, 404, NULL},
      {"404 traversal", {.path = "/../metrics"}, 404, NULL},
      {"405 POST", {.method = "POST"}, 405, "GET, HEAD"},
      {"405 OPTIONS", {.method = "OPTIONS", .path = "/"}, 405, "GET, HEAD"},
      {"405 before 404", {.method = "PUT", .path = "/nope"}, 404, NULL},
      {"query ok", {.path = "/metrics?x=1"}, 200, NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    reply_t r;
    int rc = fetch(&cases[i].q, &r);
    if (rc != 0 || r.status != cases[i].want)
      fail_msg("%s: curl %d, status %ld, want %ld", cases[i].name, rc, r.status,
               cases[i].want);
    if (cases[i].allow != NULL &&
        (header(&r, "Allow") == NULL ||
         strcmp(header(&r, "Allow"), cases[i].allow) != 0))
      fail_msg("%s: no Allow header", cases[i].name);
    reply_free(&r);
  }
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_basic_auth(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  char h1[128], h2[128];
  make_hash("s3cret:with colon", 8, h1, sizeof(h1));
  make_hash("other", 8, h2, sizeof(h2));
  usage_exporter_user_t users[] = {{"prometheus", h1}, {"grafana", h2}};
  usage_exporter_opts_t opts = {.users = users, .users_num = 2};
  usage_exporter_t *e = start(&opts, store);
  static const struct {
    const char *name, *user, *pass, *path;
    long want;
  } cases[] = {
      {"no credentials", NULL, NULL, "/metrics", 401},
      {"no credentials /", NULL, NULL, "/", 401},
      {"no credentials 404", NULL, NULL, "/nope", 401},
      {"right", "prometheus", "s3cret:with colon", "/metrics", 200},
      {"right again (cached)", "prometheus", "s3cret:with colon", "/", 200},
      {"second user", "grafana", "other", "/metrics", 200},
      {"wrong password", "prometheus", "s3cret", "/metrics", 401},
      {"other user's password", "grafana", "s3cret:with colon", "/metrics",
       401},
      {"unknown user", "nobody", "s3cret:with colon", "/metrics", 401},
      {"empty", "", "", "/metrics", 401},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    reply_t r;
    req_t q = {
        .path = cases[i].path, .user = cases[i].user, .pass = cases[i].pass};
    assert_int_equal(fetch(&q, &r), 0);
    if (r.status != cases[i].want)
      fail_msg("%s: %ld, want %ld", cases[i].name, r.status, cases[i].want);
    if (r.status == 401) {
      const char *www = header(&r, "WWW-Authenticate");
      assert_non_null(www);
      assert_non_null(strstr(www, "Basic realm="));
      assert_null(strstr(r.body.data, "usage_"));
    }
    reply_free(&r);
  }

  /* An unknown user costs about what a known one with a wrong password
   * costs (both run bcrypt at the configured cost once): the quickest of
   * three tries each, from addresses of their own (their own buckets), so
   * that scheduling noise on a busy machine does not decide. */
  double t0, t_known = 1e9, t_unknown = 1e9;
  reply_t r;
  req_t q;
  for (int i = 0; i < 3; i++) {
    static const char *from[] = {"127.0.0.4", "127.0.0.5", "127.0.0.6"};
    char pass[32];
    snprintf(pass, sizeof(pass), "wrong-known-%d", i);
    t0 = now_s();
    q = (req_t){.user = "prometheus", .pass = pass, .from = from[i]};
    fetch(&q, &r);
    reply_free(&r);
    if (now_s() - t0 < t_known)
      t_known = now_s() - t0;
    snprintf(pass, sizeof(pass), "wrong-unknown-%d", i);
    t0 = now_s();
    q = (req_t){.user = "nobody", .pass = pass, .from = from[i]};
    fetch(&q, &r);
    reply_free(&r);
    if (now_s() - t0 < t_unknown)
      t_unknown = now_s() - t0;
  }
  if (t_unknown < 0.3 * t_known || t_known < 0.3 * t_unknown)
    fail_msg("known user %.4f s, unknown user %.4f s", t_known, t_unknown);

  /* A burst of distinct bad passwords: bcrypt runs are rate limited, so
   * most get 429 quickly, and a cached good login still works. */
  int n401 = 0, n429 = 0;
  t0 = now_s();
  for (int i = 0; i < 40; i++) {
    char pass[32];
    snprintf(pass, sizeof(pass), "guess-%d", i);
    q = (req_t){.user = "prometheus", .pass = pass};
    assert_int_equal(fetch(&q, &r), 0);
    n401 += r.status == 401;
    n429 += r.status == 429;
    if (r.status == 429)
      assert_non_null(header(&r, "Retry-After"));
    reply_free(&r);
  }
  double burst = now_s() - t0;
  /* one address may run 8 checks at once and 4 a second after that; on
   * a busy machine the burst is slower, so more of it is let through */
  double allowed = 8.0 + 4.0 * burst + 1.0;
  if (n401 + n429 != 40 || n401 > allowed)
    fail_msg("burst: %d x 401, %d x 429 in %.3f s (at most %.0f x 401)", n401,
             n429, burst, allowed);
  q = (req_t){.user = "prometheus", .pass = "s3cret:with colon"};
  assert_int_equal(fetch(&q, &r), 0);
  assert_int_equal(r.status, 200);
  reply_free(&r);
  usage_exporter_stop(e);

  /* a hash libcrypt cannot use is refused at start */
  usage_exporter_user_t bad[] = {{"x", "$2y$10$short"}};
  opts = (usage_exporter_opts_t){
      .address = "127.0.0.1", .port = port, .users = bad, .users_num = 1};
  char err[256] = "";
  assert_null(usage_exporter_start(&opts, store, err, sizeof(err)));
  assert_non_null(strstr(err, "bcrypt"));
  usage_store_destroy(store);
}

static void test_tls(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  usage_exporter_opts_t opts = {
      .tls_cert_file = FIXTURES "/exporter/server.pem",
      .tls_key_file = FIXTURES "/exporter/server.key"};
  usage_exporter_t *e = start(&opts, store);
  reply_t r;
  req_t q = {.tls = 1, .accept_encoding = "gzip"};
  assert_int_equal(fetch(&q, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(header(&r, "Content-Encoding"), "gzip");
  reply_free(&r);
  q.tls = 0; /* plain HTTP to a TLS port gets no answer */
  assert_int_not_equal(fetch(&q, &r), 0);
  reply_free(&r);
  usage_exporter_stop(e);

  opts.tls_client_ca_file = FIXTURES "/exporter/ca.pem";
  e = start(&opts, store);
  static const struct {
    const char *name, *cert, *key;
    long want; /* 0: the handshake or the request fails */
  } cases[] = {
      {"client cert", FIXTURES "/exporter/client.pem",
       FIXTURES "/exporter/client.key", 200},
      {"no client cert", NULL, NULL, 403},
      {"rogue client cert", FIXTURES "/exporter/rogue.pem",
       FIXTURES "/exporter/rogue.key", 403},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    q = (req_t){.tls = 1, .cert = cases[i].cert, .key = cases[i].key};
    int rc = fetch(&q, &r);
    long got = rc == 0 ? r.status : 0;
    if (cases[i].want == 200 ? got != 200 : got == 200)
      fail_msg("%s: curl %d, status %ld", cases[i].name, rc, r.status);
    if (rc == 0 && cases[i].want == 403)
      assert_int_equal(r.status, 403);
    reply_free(&r);
  }
  usage_exporter_stop(e);

  /* a key without a certificate, a missing file: clear errors */
  char err[256] = "";
  opts =
      (usage_exporter_opts_t){.address = "127.0.0.1",
                              .port = port,
                              .tls_key_file = FIXTURES "/exporter/server.key"};
  assert_null(usage_exporter_start(&opts, store, err, sizeof(err)));
  assert_non_null(strstr(err, "TLSCertFile"));
  opts.tls_cert_file = FIXTURES "/exporter/missing.pem";
  assert_null(usage_exporter_start(&opts, store, err, sizeof(err)));
  assert_non_null(strstr(err, "missing.pem"));
  usage_store_destroy(store);
}

static int connect_lo(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)atoi(port)),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  return fd;
}

/* closed_within waits until the server closes fd: 1, or 0 after limit s. */
static int closed_within(int fd, double limit) {
  struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  double t0 = now_s();
  char buf[512];
  while (now_s() - t0 < limit) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
      return 1;
  }
  return 0;
}

/* The per-IP limit refuses connections beyond it; a half-sent request is
 * closed after the idle timeout; a normal scrape still works meanwhile. */
static void test_limits(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  usage_exporter_opts_t opts = {.max_per_ip = 4, .timeout_s = 3};
  usage_exporter_t *e = start(&opts, store);
  int fds[4];
  double t0 = now_s();
  for (int i = 0; i < 3; i++) {
    fds[i] = connect_lo();
    assert_int_equal(send(fds[i], "GET /metrics HTTP/1.1\r\nHo", 25, 0), 25);
  }
  reply_t r;
  req_t q = {0};
  assert_int_equal(fetch(&q, &r), 0); /* the 4th connection from here */
  assert_int_equal(r.status, 200);
  reply_free(&r);
  /* curl has closed its connection: the next one is the 4th, or the 5th
   * if the server has not seen curl's close yet; either way the one after
   * it is beyond the limit */
  fds[3] = connect_lo();
  int extra = connect_lo();
  /* accepted by the kernel and closed by the server at once: well before
   * the idle timeout of 3 s (the bound leaves room for a busy machine) */
  assert_true(closed_within(extra, 2.0));
  close(extra);
  for (int i = 0; i < 4; i++)
    assert_true(closed_within(fds[i], 10.0));
  double waited = now_s() - t0;
  if (waited < 2.9 || waited > 10.0)
    fail_msg("idle connections closed after %.2f s (timeout 3 s)", waited);
  for (int i = 0; i < 4; i++)
    close(fds[i]);
  assert_int_equal(fetch(&q, &r), 0);
  assert_int_equal(r.status, 200);
  reply_free(&r);
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

/* A request that trickles in a byte a second is closed at the request
 * deadline (not the idle timeout, which each byte resets), while a normal
 * scrape is answered meanwhile. */
static void test_request_deadline(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  usage_exporter_opts_t opts = {.timeout_s = 30, .request_timeout_s = 2};
  usage_exporter_t *e = start(&opts, store);
  enum { SLOW = 3 };
  int fds[SLOW];
  double closed_at[SLOW];
  double t0 = now_s();
  for (int i = 0; i < SLOW; i++) {
    fds[i] = connect_lo();
    closed_at[i] = 0;
    assert_int_equal(send(fds[i], "GET /metrics HTTP/1.1\r\nX-Slow: ", 31, 0),
                     31);
  }
  int open_left = SLOW, scraped = 0;
  while (open_left > 0 && now_s() - t0 < 10) {
    for (int i = 0; i < SLOW; i++) {
      if (closed_at[i] > 0)
        continue;
      char buf[256];
      ssize_t n = recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
          send(fds[i], "a", 1, MSG_NOSIGNAL) != 1) {
        closed_at[i] = now_s() - t0;
        open_left--;
      }
    }
    if (!scraped) {
      reply_t r;
      req_t q = {0};
      assert_int_equal(fetch(&q, &r), 0);
      assert_int_equal(r.status, 200);
      reply_free(&r);
      scraped = 1;
    }
    usleep(1000000);
  }
  for (int i = 0; i < SLOW; i++) {
    if (closed_at[i] < 1.5 || closed_at[i] > 6)
      fail_msg("slow connection %d closed after %.2f s (deadline 2 s)", i,
               closed_at[i]);
    close(fds[i]);
  }
  reply_t r;
  req_t q = {0};
  assert_int_equal(fetch(&q, &r), 0);
  assert_int_equal(r.status, 200);
  reply_free(&r);
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

/* The cap within the open-file limit: kept when it fits with its slack
 * and the reserve, else the largest that does, never below the floor. */
static void test_fd_cap(void **state) {
  (void)state;
  static const struct {
    unsigned want;
    unsigned long nofile;
    unsigned cap;
  } cases[] = {
      {512, ULONG_MAX, 512}, /* no limit */
      {512, 1024, 512},      /* systemd's default soft limit */
      {512, 704, 512},       /* 512 + 64 slack + 128 reserve, exactly */
      {512, 703, 511},       /* one short: 511 + 63 + 128 = 702 */
      {3000, 1024, 797},     /* 797 + 99 + 128 = 1024 */
      {100, 200, 56},        /* 56 + 16 + 128 = 200 */
      {100, 100, USAGE_EXPORTER_MIN_CONNS}, /* below the reserve */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    unsigned got = usage_exporter_fd_cap(cases[i].want, cases[i].nofile);
    if (got != cases[i].cap)
      fail_msg("want %u within %lu: %u, expected %u", cases[i].want,
               cases[i].nofile, got, cases[i].cap);
  }
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[2048];
static void log_line(void *ud, const char *msg) {
  (void)ud;
  pthread_mutex_lock(&log_lock);
  size_t n = strlen(log_text);
  snprintf(log_text + n, sizeof(log_text) - n, "%s\n", msg);
  pthread_mutex_unlock(&log_lock);
}

/* open_half opens a connection that sends half a request. */
static int open_half(void) {
  int fd = connect_lo();
  assert_int_equal(send(fd, "GET /metrics HTTP/1.1\r\nX-Slow: ", 31, 0), 31);
  return fd;
}

/* At the cap a new connection is taken and the oldest one that has not
 * sent a whole request is closed; a prompt scrape is answered at once, the
 * newer waiting connections stay; the log says so in one line. */
static void test_cap_closes_oldest(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  log_text[0] = 0;
  /* one worker: connections are listed in the order they were accepted
   * (with several, two accepted together may be listed either way) */
  usage_exporter_opts_t opts = {.max_conns = 4,
                                .threads = 1,
                                .timeout_s = 60,
                                .request_timeout_s = 60,
                                .log = log_line};
  usage_exporter_t *e = start(&opts, store);
  enum { N = 7 };
  int half[N];
  for (int i = 0; i < 4; i++)
    half[i] = open_half(); /* 4 open: the cap */
  assert_false(closed_within(half[0], 0.3));
  half[4] = open_half(); /* the 5th closes the oldest: half[0] */
  assert_true(closed_within(half[0], 5.0));
  double t0 = now_s();
  reply_t r;
  req_t q = {0};
  assert_int_equal(fetch(&q, &r), 0); /* closes half[1] */
  assert_int_equal(r.status, 200);
  reply_free(&r);
  double took = now_s() - t0;
  if (took > 1.0)
    fail_msg("a scrape at the cap took %.2f s", took);
  assert_true(closed_within(half[1], 5.0));
  usleep(200000);        /* curl's connection is gone by now */
  half[5] = open_half(); /* 4 open again */
  assert_false(closed_within(half[2], 0.3));
  half[6] = open_half(); /* closes half[2] */
  assert_true(closed_within(half[2], 5.0));
  for (int i = 3; i < N; i++)
    if (closed_within(half[i], 0.1))
      fail_msg("connection %d, newer than the closed ones, was closed", i);
  t0 = now_s();
  int seen = 0;
  while (!seen && now_s() - t0 < 3) {
    pthread_mutex_lock(&log_lock);
    seen = strstr(log_text, "MaxConnections") != NULL;
    pthread_mutex_unlock(&log_lock);
    usleep(50000);
  }
  pthread_mutex_lock(&log_lock);
  if (strstr(log_text, "4 connections open (MaxConnections): closed the ") ==
          NULL ||
      strchr(log_text, '\n') != log_text + strlen(log_text) - 1)
    fail_msg("log: %s", log_text);
  pthread_mutex_unlock(&log_lock);
  for (int i = 0; i < N; i++)
    close(half[i]);
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

/* connect_slow opens a slow reader: a small receive buffer, set before
 * the connection so that the window stays small, and a whole request. */
static int connect_slow(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)atoi(port)),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  assert_int_equal(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
  return fd;
}

/* read_head reads the start of a response (at least its headers) within
 * limit s: the bytes of the whole response (headers and Content-Length),
 * or -1. What was read is counted in *got. */
static long read_head(int fd, double limit, long *got) {
  struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char head[4096];
  size_t n = 0;
  double t0 = now_s();
  while (n < sizeof(head) - 1 && now_s() - t0 < limit) {
    ssize_t k = recv(fd, head + n, sizeof(head) - 1 - n, 0);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
      break;
    if (k > 0)
      n += (size_t)k;
    head[n] = 0;
    const char *end = strstr(head, "\r\n\r\n");
    const char *cl = strcasestr(head, "\r\nContent-Length: ");
    if (end != NULL && cl != NULL && cl < end &&
        strncmp(head, "HTTP/1.1 200 ", 13) == 0) {
      *got = (long)n;
      return (long)(end + 4 - head) + atol(cl + 18);
    }
  }
  *got = (long)n;
  return -1;
}

/* read_rest reads a response to its end (total bytes, got read so far)
 * within limit s: 1 if all arrived. */
static int read_rest(int fd, long total, long got, double limit) {
  static char buf[65536];
  double t0 = now_s();
  while (got < total && now_s() - t0 < limit) {
    ssize_t k = recv(fd, buf, sizeof(buf), 0);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
      break;
    if (k > 0)
      got += k;
  }
  return got == total;
}

/* refused_within: the server closes fd within limit s without a byte of
 * answer (1), or answers or keeps it open (0). */
static int refused_within(int fd, double limit) {
  struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  double t0 = now_s();
  char buf[512];
  while (now_s() - t0 < limit) {
    ssize_t k = recv(fd, buf, sizeof(buf), 0);
    if (k > 0)
      return 0;
    if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
      return 1;
  }
  return 0;
}

static int log_has(const char *what, double limit) {
  double t0 = now_s();
  for (;;) {
    pthread_mutex_lock(&log_lock);
    int seen = strstr(log_text, what) != NULL;
    pthread_mutex_unlock(&log_lock);
    if (seen || now_s() - t0 >= limit)
      return seen;
    usleep(50000);
  }
}

/* At the cap with every open connection answering (slow readers of a
 * large body, each far from its end), a new connection is closed at once
 * without an answer, not queued, and the ones answering go on; once one
 * has its whole answer a scrape is answered again. With one of the open
 * connections still waiting for its request, a whole request sent
 * promptly is answered and the waiting one is closed instead. */
static void test_cap_all_busy(void **state) {
  (void)state;
  /* a body of about 12 MB: more than the kernel buffers of a connection
   * whose reader does not read (send buffer up to 4 MB by default) */
  usage_store_t *store = usage_store_create();
  usage_batch_t *b = usage_batch_create("acme", "big");
  static char svc[1024];
  for (int i = 0; i < 12000; i++) {
    memset(svc, 'a' + i % 26, sizeof(svc) - 1);
    snprintf(svc, 16, "s%05d-", i);
    svc[strlen(svc)] = 'x';
    assert_int_equal(
        usage_batch_add(b, FAM_CCC_SERVICE_USERS, i, "service", svc, NULL), 0);
  }
  assert_int_equal(usage_store_commit(store, b), 0);
  usage_body_t *body = usage_store_body(store, USAGE_FMT_TEXT);
  assert_non_null(body);
  assert_true(body->len > 12000000);
  usage_body_release(body);
  log_text[0] = 0;
  usage_exporter_opts_t opts = {.max_conns = 4,
                                .threads = 1,
                                .timeout_s = 60,
                                .request_timeout_s = 60,
                                .log = log_line};
  usage_exporter_t *e = start(&opts, store);
  enum { CAP = 4 };
  int slow[CAP];
  long total[CAP], got[CAP];
  for (int i = 0; i < CAP; i++) {
    slow[i] = connect_slow();
    total[i] = read_head(slow[i], 5.0, &got[i]);
    if (total[i] < 12000000)
      fail_msg("slow reader %d: no answer to read (%ld bytes)", i, got[i]);
  }
  /* every one of the 4 is answering: a 5th is refused, promptly */
  double t0 = now_s();
  int extra = connect_slow();
  if (!refused_within(extra, 3.0))
    fail_msg("a connection over the cap, all answering: not closed without "
             "an answer within 3 s");
  close(extra);
  double took = now_s() - t0;
  if (!log_has("4 connections open (MaxConnections): closed the 0 oldest "
               "that were waiting for a request and refused 1 new ones",
               3.0))
    fail_msg("log: %s", log_text);
  /* the ones answering were left alone: one reads its answer to the end */
  if (!read_rest(slow[0], total[0], got[0], 30.0))
    fail_msg("slow reader 0 did not get its whole answer");
  close(slow[0]);
  /* recovered: three answering and a scrape of the status page */
  reply_t r;
  req_t q = {.path = "/"};
  double t1 = now_s();
  int ok = 0;
  while (!ok && now_s() - t1 < 5.0) { /* the server sees slow[0] go */
    ok = fetch(&q, &r) == 0 && r.status == 200;
    reply_free(&r);
    if (!ok)
      usleep(100000);
  }
  if (!ok)
    fail_msg("no answer after a slow reader finished");
  /* three answering, one waiting for its request: a prompt request is
   * answered at once, and the waiting one is closed for it */
  usleep(200000); /* curl's connection is gone by now */
  int half = open_half();
  assert_false(closed_within(half, 0.3));
  t1 = now_s();
  assert_int_equal(fetch(&q, &r), 0);
  assert_int_equal(r.status, 200);
  reply_free(&r);
  double prompt = now_s() - t1;
  if (prompt > 1.0)
    fail_msg("a prompt request with one connection waiting took %.2f s",
             prompt);
  assert_true(closed_within(half, 5.0));
  close(half);
  /* and the three still answering get their whole answers */
  for (int i = 1; i < CAP; i++) {
    if (!read_rest(slow[i], total[i], got[i], 30.0))
      fail_msg("slow reader %d did not get its whole answer", i);
    close(slow[i]);
  }
  print_message("refused in %.3f s; prompt request answered in %.3f s\n", took,
                prompt);
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

/* A cap above what the open-file limit allows is lowered, with one line. */
static void test_cap_nofile(void **state) {
  (void)state;
  struct rlimit old, low;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  low = old;
  low.rlim_cur = 200;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  usage_store_t *store = golden_store();
  log_text[0] = 0;
  usage_exporter_opts_t opts = {.max_conns = 100, .log = log_line};
  usage_exporter_t *e = start(&opts, store);
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
  if (strstr(log_text, "MaxConnections 100 does not fit the open-file limit "
                       "of 200 (RLIMIT_NOFILE, 128 of them kept for the rest "
                       "of collectd): at most 56 connections at once") == NULL)
    fail_msg("log: %s", log_text);
  reply_t r;
  req_t q = {0};
  assert_int_equal(fetch(&q, &r), 0);
  assert_int_equal(r.status, 200);
  reply_free(&r);
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

/* A flood of wrong passwords from one address gets 429 there, while the
 * right password from another address is let in every time, and so is a
 * first login (credentials not yet checked: a bcrypt run) from there after
 * the flood has used up its own address's runs. */
static void test_auth_per_address(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  char h[128], h2[128];
  make_hash("right", 8, h, sizeof(h));
  make_hash("second", 8, h2, sizeof(h2));
  usage_exporter_user_t users[] = {{"prometheus", h}, {"grafana", h2}};
  usage_exporter_opts_t opts = {.users = users, .users_num = 2};
  usage_exporter_t *e = start(&opts, store);
  int n401 = 0, n429 = 0, good = 0;
  double t0 = now_s();
  for (int i = 0; i < 60 && now_s() - t0 < 30; i++) {
    char pass[32];
    snprintf(pass, sizeof(pass), "guess-%d", i);
    reply_t r;
    req_t q = {.user = "prometheus", .pass = pass, .from = "127.0.0.2"};
    assert_int_equal(fetch(&q, &r), 0);
    n401 += r.status == 401;
    n429 += r.status == 429;
    reply_free(&r);
    if (i % 6 == 5) {
      q = (req_t){.user = "prometheus", .pass = "right", .from = "127.0.0.1"};
      assert_int_equal(fetch(&q, &r), 0);
      if (r.status != 200)
        fail_msg("good login %d during the flood: %ld", good, r.status);
      good++;
      reply_free(&r);
    }
  }
  if (n429 < 30 || n401 + n429 != 60 || good != 10)
    fail_msg("flood: %d x 401, %d x 429, %d good logins", n401, n429, good);
  reply_t r;
  req_t q = {.user = "grafana", .pass = "second", .from = "127.0.0.1"};
  assert_int_equal(fetch(&q, &r), 0);
  if (r.status != 200)
    fail_msg("a first login after the flood from another address: %ld",
             r.status);
  reply_free(&r);
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

typedef struct {
  int n401;
} wrong_t;

static void *wrong_logins(void *arg) {
  wrong_t *w = arg;
  reply_t r;
  req_t q = {.user = "prometheus", .pass = "wrong", .from = "127.0.0.3"};
  if (fetch(&q, &r) == 0 && r.status == 401)
    w->n401++;
  reply_free(&r);
  return NULL;
}

/* bcrypt runs outside the server's event loop: with one worker thread and
 * wrong passwords keeping bcrypt busy, a client whose credentials were
 * found good is answered sooner than one bcrypt run takes. */
static void test_auth_off_loop(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  char h[128];
  make_hash("right", 12, h, sizeof(h));
  struct crypt_data cd;
  memset(&cd, 0, sizeof(cd));
  double t0 = now_s();
  assert_non_null(crypt_rn("wrong", h, &cd, sizeof(cd)));
  double bcrypt_s = now_s() - t0;
  usage_exporter_user_t users[] = {{"prometheus", h}};
  usage_exporter_opts_t opts = {.users = users, .users_num = 1, .threads = 1};
  usage_exporter_t *e = start(&opts, store);
  reply_t r;
  req_t good = {.user = "prometheus", .pass = "right"};
  assert_int_equal(fetch(&good, &r), 0); /* one bcrypt run, then cached */
  assert_int_equal(r.status, 200);
  reply_free(&r);
  enum { WRONG = 3 };
  pthread_t th[WRONG];
  wrong_t w[WRONG];
  memset(w, 0, sizeof(w));
  for (int i = 0; i < WRONG; i++)
    assert_int_equal(pthread_create(&th[i], NULL, wrong_logins, &w[i]), 0);
  usleep(100000); /* the wrong ones are being checked */
  double worst = 0;
  for (int i = 0; i < 3; i++) {
    t0 = now_s();
    assert_int_equal(fetch(&good, &r), 0);
    assert_int_equal(r.status, 200);
    reply_free(&r);
    if (now_s() - t0 > worst)
      worst = now_s() - t0;
  }
  int n401 = 0;
  for (int i = 0; i < WRONG; i++) {
    pthread_join(th[i], NULL);
    n401 += w[i].n401;
  }
  assert_int_equal(n401, WRONG);
  if (worst >= bcrypt_s)
    fail_msg("a cached login took %.3f s while bcrypt ran (one run: %.3f s)",
             worst, bcrypt_s);
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

/* Stopping while checks are queued answers them (503) and does not hang. */
static void test_auth_stop_pending(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  char h[128];
  make_hash("right", 12, h, sizeof(h));
  usage_exporter_user_t users[] = {{"prometheus", h}};
  usage_exporter_opts_t opts = {.users = users, .users_num = 1};
  usage_exporter_t *e = start(&opts, store);
  enum { WRONG = 4 };
  pthread_t th[WRONG];
  wrong_t w[WRONG];
  memset(w, 0, sizeof(w));
  for (int i = 0; i < WRONG; i++)
    assert_int_equal(pthread_create(&th[i], NULL, wrong_logins, &w[i]), 0);
  usleep(200000);
  double t0 = now_s();
  usage_exporter_stop(e);
  double took = now_s() - t0;
  for (int i = 0; i < WRONG; i++)
    pthread_join(th[i], NULL);
  if (took > 5)
    fail_msg("stop took %.2f s with checks queued", took);
  usage_store_destroy(store);
}

static void test_redact(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } cases[] = {
      {NULL, ""},
      {"plain text", "plain text"},
      {"HTTP 500 from https://api.example.net/x",
       "HTTP 500 from https://api.example.net/x"},
      {"user alice@example.com unknown", "user \xe2\x80\xa6 unknown"},
      {"<bob.smith+x@mail.example.org>", "<\xe2\x80\xa6>"},
      {"a @ b, x@ y, @z", "a @ b, x@ y, @z"},
      {"filter \"customerId\" bad", "filter \"\xe2\x80\xa6\" bad"},
      {"value 'in:1001' refused", "value '\xe2\x80\xa6' refused"},
      {"can't parse", "can't parse"},
      {"unclosed \"secret rest", "unclosed \"\xe2\x80\xa6"},
      {"line\nbreak", "line break"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char out[128];
    usage_text_redact(out, sizeof(out), cases[i].in);
    if (strcmp(out, cases[i].want) != 0)
      fail_msg("\"%s\": \"%s\", want \"%s\"", cases[i].in ? cases[i].in : "",
               out, cases[i].want);
  }
  char small[8]; /* never cut inside the ellipsis */
  usage_text_redact(small, sizeof(small), "ab \"cd\"");
  assert_string_equal(small, "ab \"\xe2\x80\xa6");
}

/* The status page shows error texts whole only to authenticated readers. */
static void test_page_redaction(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  usage_exporter_opts_t opts = {.page = page, .page_ud = "acme"};
  usage_exporter_t *e = start(&opts, store);
  reply_t r;
  req_t q = {.path = "/"};
  assert_int_equal(fetch(&q, &r), 0);
  assert_int_equal(r.status, 200);
  assert_null(strstr(r.body.data, "alice"));
  assert_null(strstr(r.body.data, "customerId"));
  assert_null(strstr(r.body.data, "in:1001"));
  assert_non_null(strstr(r.body.data, "\xe2\x80\xa6"));
  reply_free(&r);
  usage_exporter_stop(e);

  char h[128];
  make_hash("right", 4, h, sizeof(h));
  usage_exporter_user_t users[] = {{"prometheus", h}};
  opts = (usage_exporter_opts_t){
      .page = page, .page_ud = "acme", .users = users, .users_num = 1};
  e = start(&opts, store);
  q = (req_t){.path = "/", .user = "prometheus", .pass = "right"};
  assert_int_equal(fetch(&q, &r), 0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body.data, "alice@example.com"));
  reply_free(&r);
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

/* IPv6 addresses and a host name. */
static void test_addresses(void **state) {
  (void)state;
  usage_store_t *store = golden_store();
  static const struct {
    const char *address, *connect;
  } cases[] = {
      {"::1", "[::1]"},
      {"::", "[::1]"},
      {"localhost", NULL}, /* whichever loopback it resolves to first */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    free_port();
    usage_exporter_opts_t opts = {.address = cases[i].address, .port = port};
    char err[256] = "";
    usage_exporter_t *e = usage_exporter_start(&opts, store, err, sizeof(err));
    if (e == NULL)
      fail_msg("%s: %s", cases[i].address, err);
    const char *hosts[] = {cases[i].connect ? cases[i].connect : "127.0.0.1",
                           cases[i].connect ? NULL : "[::1]"};
    int ok = 0;
    for (size_t j = 0; j < 2 && !ok; j++) {
      if (hosts[j] == NULL)
        continue;
      reply_t r;
      req_t q = {.host = hosts[j]};
      ok = fetch(&q, &r) == 0 && r.status == 200;
      reply_free(&r);
    }
    if (!ok)
      fail_msg("%s: no answer", cases[i].address);
    usage_exporter_stop(e);
  }
  usage_exporter_opts_t opts = {.address = "no-such-host.invalid",
                                .port = port};
  char err[256] = "";
  assert_null(usage_exporter_start(&opts, store, err, sizeof(err)));
  assert_non_null(strstr(err, "no-such-host.invalid"));
  usage_store_destroy(store);
}

/* A body of more pieces than libmicrohttpd takes as I/O vectors (1,500
 * entities, a piece each and more) is served whole and byte for byte on
 * every scrape, and again after commits change some entities. */
static void test_many_pieces(void **state) {
  (void)state;
  usage_store_t *store = usage_store_create();
  usage_exporter_opts_t opts = {0};
  usage_exporter_t *e = start(&opts, store);
  char ent[32], svc[32];
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 1500; i++) {
      if (round == 1 && i % 100 != 7)
        continue;
      snprintf(ent, sizeof(ent), "svc:%04d", i);
      snprintf(svc, sizeof(svc), "s%d", i);
      usage_batch_t *b = usage_batch_create("acme", ent);
      usage_batch_add(b, FAM_CCC_SERVICE_USERS, i + round * 0.5, "service",
                      svc, NULL);
      assert_int_equal(usage_store_commit(store, b), 0);
    }
    usage_body_t *want = usage_store_body(store, USAGE_FMT_TEXT);
    assert_non_null(want);
    assert_true(want->iovcnt > 1500);
    for (int k = 0; k < 3; k++) {
      reply_t r;
      req_t q = {0};
      assert_int_equal(fetch(&q, &r), 0);
      assert_int_equal(r.status, 200);
      assert_int_equal(r.body.len, want->len);
      assert_memory_equal(r.body.data, want->data, want->len);
      reply_free(&r);
    }
    usage_body_release(want);
  }
  usage_exporter_stop(e);
  usage_store_destroy(store);
}

/* libmicrohttpd copies an I/O vector into the connection's memory pool: a
 * body of more pieces than fit there (a small ConnectionMemoryLimit, or a
 * request with long headers) must still be sent whole, and the process
 * must not abort when the response is destroyed. */
static void test_iov_pool(void **state) {
  (void)state;
  usage_store_t *store = usage_store_create();
  char ent[32], svc[32];
  for (int i = 0; i < 900; i++) {
    snprintf(ent, sizeof(ent), "svc:%04d", i);
    snprintf(svc, sizeof(svc), "s%d", i);
    usage_batch_t *b = usage_batch_create("acme", ent);
    usage_batch_add(b, FAM_CCC_SERVICE_USERS, i, "service", svc, NULL);
    assert_int_equal(usage_store_commit(store, b), 0);
  }
  usage_body_t *want = usage_store_body_iov(store, USAGE_FMT_TEXT);
  assert_non_null(want);
  assert_true(want->iovcnt > 300 && want->iovcnt <= 1000);
  usage_buf_t flat;
  usage_buf_init(&flat, 0);
  for (size_t i = 0; i < want->iovcnt; i++)
    usage_buf_append(&flat, want->iov[i].base, want->iov[i].len);
  usage_body_release(want);
  static char pad[20000];
  memcpy(pad, "X-Pad: ", 7);
  memset(pad + 7, 'a', sizeof(pad) - 8);
  const size_t limits[] = {4096, 8192, 0};
  for (size_t l = 0; l < 3; l++) {
    usage_exporter_opts_t opts = {.mem_limit = limits[l]};
    usage_exporter_t *e = start(&opts, store);
    for (int k = 0; k < 2; k++) {
      reply_t r;
      req_t q = {.extra_header = limits[l] == 0 ? pad : NULL};
      if (k == 1)
        q.extra_header = "X-Short: 1";
      assert_int_equal(fetch(&q, &r), 0);
      assert_int_equal(r.status, 200);
      assert_int_equal(r.body.len, flat.len);
      assert_memory_equal(r.body.data, flat.data, flat.len);
      reply_free(&r);
    }
    usage_exporter_stop(e);
  }
  usage_buf_free(&flat);
  usage_store_destroy(store);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_ALL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_negotiate),
      cmocka_unit_test(test_html_escape),
      cmocka_unit_test(test_server),
      cmocka_unit_test(test_wants_gzip),
      cmocka_unit_test(test_check_hash),
      cmocka_unit_test(test_golden_gzip),
      cmocka_unit_test(test_bad_requests),
      cmocka_unit_test(test_basic_auth),
      cmocka_unit_test(test_tls),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_request_deadline),
      cmocka_unit_test(test_fd_cap),
      cmocka_unit_test(test_cap_closes_oldest),
      cmocka_unit_test(test_cap_all_busy),
      cmocka_unit_test(test_cap_nofile),
      cmocka_unit_test(test_auth_per_address),
      cmocka_unit_test(test_auth_off_loop),
      cmocka_unit_test(test_auth_stop_pending),
      cmocka_unit_test(test_redact),
      cmocka_unit_test(test_page_redaction),
      cmocka_unit_test(test_addresses),
      cmocka_unit_test(test_many_pieces),
      cmocka_unit_test(test_iov_pool),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return rc;
}
