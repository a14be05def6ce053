/* SPDX-License-Identifier: MIT */
/* test_source: a CCC source scraping a loopback libmicrohttpd server with
 * canned answers per service, through a fake sink (commits go to a store,
 * log lines to a buffer): entity commits, accounting, refusals, timeouts,
 * size caps, throttled logging, secret rotation and Retry-After; the
 * scrape thread's loop and stopping it in a transfer or a sleep. */
#include "api/ccc/ccc.h"
#include "families.h"
#include "source.h"
#include "store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "login.h"
#include "test_util.h"

#define G1 "2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a"
#define G2 "7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1"
#define TOKEN "tok-SECRET-1"
#define STACK "SECRET-STACK-TRACE"

/* The canned server */

typedef struct {
  const char *guid;
  unsigned status;
  const char *body; /* NULL: a generated body of body_len bytes */
  size_t body_len;
  unsigned delay_ms;
  unsigned fail_first; /* answer 429 + Retry-After this many times */
  const char *content_type;
  int fault; /* FAULT_DROP or FAULT_CUT: the body is not answered whole */
} route_t;

/* FAULT_DROP closes the connection without any answer; FAULT_CUT sends
 * the status, the headers with the full Content-Length and half the body,
 * then closes. */
enum { FAULT_NONE = 0, FAULT_DROP, FAULT_CUT };

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  const route_t *r = cls;
  size_t half = strlen(r->body) / 2;
  if (pos >= half)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  size_t n = half - (size_t)pos < max ? half - (size_t)pos : max;
  memcpy(buf, r->body + pos, n);
  return (ssize_t)n;
}

static route_t routes[4];
static size_t routes_num;
static unsigned hits[4];
static double arrived[4][8]; /* monotonic: when route i's hits came in */
static char last_auth[256];
static char last_key[256]; /* the X-Api-Key header (HeaderFile) */
static pthread_mutex_t server_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t server_cond = PTHREAD_COND_INITIALIZER;
static int server_stopping;        /* ends every delay (server_hold) */
static unsigned retry_after_s = 1; /* the Retry-After of fail_first */

/* server_hold delays an answer by ms, less when the server stops. */
static void server_hold(unsigned ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&server_lock);
  while (!server_stopping &&
         pthread_cond_timedwait(&server_cond, &server_lock, &until) == 0)
    ;
  pthread_mutex_unlock(&server_lock);
}

/* route i's fail_first answers: fail_status[i] instead of 429, with
 * fail_retry_after[i] instead of Retry-After: 1 ("" = none); server_stop
 * resets them */
static unsigned fail_status[4];
static const char *fail_retry_after[4];
static unsigned hang_ms; /* every request waits this long first */

/* wait_ms sleeps ms milliseconds, or until server_stop. */
static void wait_ms(unsigned ms) {
  if (ms)
    server_hold(ms);
}

static const char good_body[] =
    "{\"serviceGuid\":\"" G1 "\",\"name\":\"Acme\",\"status\":\"TrialActive\","
    "\"serviceCode\":\"A1\",\"primaryDomain\":\"acme.example\","
    "\"totalUserCount\":12,\"proUserCount\":10,\"guestUserCount\":2}";

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_size, void **req_cls) {
  (void)cls, (void)method, (void)version, (void)upload_data, (void)upload_size;
  if (tu_http_first_call(req_cls))
    return MHD_YES;
  const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_AUTHORIZATION);
  const route_t *r = NULL;
  unsigned hit = 0, fstatus = 0;
  const char *fra = NULL;
  wait_ms(hang_ms);
  pthread_mutex_lock(&server_lock);
  snprintf(last_auth, sizeof(last_auth), "%s", auth ? auth : "");
  const char *key =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Api-Key");
  snprintf(last_key, sizeof(last_key), "%s", key ? key : "");
  for (size_t i = 0; i < routes_num; i++) {
    char path[128];
    snprintf(path, sizeof(path), "/api/services/%s/serviceusage",
             routes[i].guid);
    if (strcmp(url, path) == 0) {
      r = &routes[i];
      hit = hits[i]++;
      if (hit < 8) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        arrived[i][hit] = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
      }
      fstatus = fail_status[i];
      fra = fail_retry_after[i];
    }
  }
  pthread_mutex_unlock(&server_lock);
  struct MHD_Response *resp;
  unsigned status;
  if (r == NULL) {
    resp = MHD_create_response_from_buffer(2, "{}", MHD_RESPMEM_PERSISTENT);
    status = 404;
  } else if (hit < r->fail_first) {
    resp = MHD_create_response_from_buffer(2, "{}", MHD_RESPMEM_PERSISTENT);
    char rab[16];
    snprintf(rab, sizeof(rab), "%u", retry_after_s);
    const char *ra = fra ? fra : rab;
    if (ra[0])
      MHD_add_response_header(resp, "Retry-After", ra);
    status = fstatus ? fstatus : 429;
  } else if (r->fault == FAULT_DROP) {
    return MHD_NO; /* closes the connection, nothing sent */
  } else {
    wait_ms(r->delay_ms);
    if (r->fault == FAULT_CUT) {
      resp = MHD_create_response_from_callback(strlen(r->body), 64, cut_reader,
                                               (void *)r, NULL);
    } else if (r->body != NULL) {
      resp = MHD_create_response_from_buffer(strlen(r->body), (void *)r->body,
                                             MHD_RESPMEM_PERSISTENT);
    } else {
      char *big = malloc(r->body_len);
      memset(big, ' ', r->body_len);
      big[0] = '{';
      big[r->body_len - 1] = '}';
      resp = MHD_create_response_from_buffer(r->body_len, big,
                                             MHD_RESPMEM_MUST_FREE);
    }
    status = r->status;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          r && r->content_type ? r->content_type
                                               : "application/json");
  enum MHD_Result ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static struct MHD_Daemon *server;
static unsigned server_port;

static void server_start(void) {
  server_stopping = 0;
  memset(hits, 0, sizeof(hits));
  last_auth[0] = 0;
  server = tu_http_start(handler, NULL, &server_port);
}

static void server_stop(void) {
  pthread_mutex_lock(&server_lock);
  server_stopping = 1;
  pthread_cond_broadcast(&server_cond);
  pthread_mutex_unlock(&server_lock);
  MHD_stop_daemon(server);
  hang_ms = 0;
  memset(fail_status, 0, sizeof(fail_status));
  memset(fail_retry_after, 0, sizeof(fail_retry_after));
  server = NULL;
}

/* The fake sink */

static usage_store_t *store;
static char log_text[65536];
static size_t log_len;
static char committed[64][80];
static size_t committed_num;

static void sink_log(void *ud, int level, const char *msg) {
  (void)ud;
  tu_log_add(log_text, sizeof(log_text), &log_len, level, msg);
}

static int sink_commit(void *ud, usage_batch_t *b) {
  (void)ud;
  if (committed_num < 64)
    snprintf(committed[committed_num++], sizeof(committed[0]), "%s",
             usage_batch_entity(b));
  return usage_store_commit(store, b);
}

static int was_committed(const char *entity) {
  for (size_t i = 0; i < committed_num; i++)
    if (strcmp(committed[i], entity) == 0)
      return 1;
  return 0;
}

static int log_lines(int level) {
  int n = 0;
  for (const char *p = log_text; *p;) {
    if (atoi(p) == level)
      n++;
    p = strchr(p, '\n');
    if (p == NULL)
      break;
    p++;
  }
  return n;
}

static void sink_reset(void) {
  log_len = 0;
  log_text[0] = 0;
  committed_num = 0;
}

/* serve_one starts the server with route r alone, the sink reset. */
static void serve_one(route_t r) {
  routes[0] = r;
  routes_num = 1;
  server_start();
  sink_reset();
}

static double fake_time = 1700000000;
static double fake_now(void) { return fake_time; }

/* make_source's ScrapeTimeout (0 = the default), users under G1 and
 * MaxConcurrentRequests (0 = 1), for the next call */
static double next_scrape_timeout;
static size_t next_users;
static int next_workers;

static usage_source_t *make_source(const char *token_file, long timeout_ms,
                                   size_t max_body, int two) {
  usage_source_conf_t *c = calloc(1, sizeof(*c));
  c->name = strdup("acme");
  c->kind = USAGE_KIND_CCC;
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", server_port);
  c->http.url = strdup(url);
  if (token_file != NULL)
    c->http.bearer.file = strdup(token_file);
  else
    c->http.bearer.value = strdup(TOKEN);
  c->http.verify_peer = c->http.verify_host = 1;
  c->http.timeout_ms = timeout_ms;
  c->http.max_body = max_body;
  c->max_concurrent = 1;
  c->kind_conf = usage_ccc_vendor.conf_create();
  usage_ccc_conf_t *cc = c->kind_conf;
  cc->services = calloc(2, sizeof(*cc->services));
  memcpy(cc->services[0].guid, G1, 33);
  memcpy(cc->services[1].guid, G2, 33);
  cc->services_num = two ? 2 : 1;
  c->scrape_timeout = next_scrape_timeout;
  c->max_concurrent = next_workers > 0 ? next_workers : 1;
  if (next_users > 0) {
    cc->services[0].users = calloc(next_users, sizeof(*cc->services[0].users));
    for (size_t u = 0; u < next_users; u++)
      snprintf(cc->services[0].users[u], 33, "%032zx", u + 1);
    cc->services[0].users_num = next_users;
  }
  next_scrape_timeout = 0;
  next_users = 0;
  next_workers = 0;
  usage_sink_t sink = {.log = sink_log, .commit = sink_commit};
  usage_source_t *s = usage_source_create(c, &sink);
  assert_non_null(s);
  return s;
}

static int setup(void **state) {
  (void)state;
  usage_now = fake_now;
  usage_backoff_base = 0.02; /* retries after 5xx and timeouts come fast */
  store = usage_store_create();
  sink_reset();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  usage_store_destroy(store);
  return 0;
}

/* One scrape of G1 (good) and G2 (as the case says). */
static void test_failures(void **state) {
  static const struct {
    const char *name;
    route_t g2;
    long timeout_ms;
    size_t max_body;
    const char *reason;
    int up;
    const char *code;    /* the code counted for G2, or NULL */
    const char *log_has; /* in the log line */
    int level;           /* of the log line */
    const char *entity;  /* committed for G2, or NULL */
  } cases[] = {
      {"HTTP 500",
       {G2, 500,
        "{\"responseStatus\":{\"errorCode\":\"ServerError\",\"message\":"
        "\"Something broke\",\"stackTrace\":\"" STACK "\"}}",
        0, 0, 0, NULL},
       2000,
       1 << 20,
       "http_5xx",
       0,
       "500",
       "HTTP 500",
       3,
       NULL},
      {"blocked",
       {G2, 400,
        "{\"responseStatus\":{\"errorCode\":\"ServiceBlocked\",\"message\":"
        "\"The service is blocked\",\"stackTrace\":\"" STACK "\"}}",
        0, 0, 0, NULL},
       2000,
       1 << 20,
       "service_blocked",
       1,
       "400",
       "ServiceBlocked",
       5,
       "status:" G2},
      {"provisioning",
       {G2, 400,
        "{\"responseStatus\":{\"errorCode\":\"InvalidOperation\",\"message\":"
        "\"Service is still Provisioning\"}}",
        0, 0, 0, NULL},
       2000,
       1 << 20,
       "service_provisioning",
       1,
       "400",
       "Provisioning",
       5,
       "status:" G2},
      {"blocked_as_403",
       {G2, 403,
        "{\"responseStatus\":{\"errorCode\":\"Forbidden\",\"message\":"
        "\"Service is in Blocked state\"}}",
        0, 0, 0, NULL},
       2000,
       1 << 20,
       "service_blocked",
       1,
       "403",
       "Blocked state",
       5,
       "status:" G2},
      {"provisioning_as_500",
       {G2, 500,
        "{\"responseStatus\":{\"errorCode\":\"InvalidOperationException\","
        "\"message\":\"Service is Provisioning\"}}",
        0, 0, 0, NULL},
       2000,
       1 << 20,
       "service_provisioning",
       1,
       "500",
       "Provisioning",
       5,
       "status:" G2},
      {"unauthorized",
       {G2, 401,
        "{\"responseStatus\":{\"errorCode\":\"Unauthorized\",\"message\":"
        "\"Invalid token\"}}",
        0, 0, 0, NULL},
       2000,
       1 << 20,
       "auth",
       0,
       "401",
       "HTTP 401",
       3,
       NULL},
      {"malformed JSON",
       {G2, 200, "{\"totalUserCount\": 1", 0, 0, 0, NULL},
       2000,
       1 << 20,
       "parse",
       0,
       "200",
       "truncated",
       3,
       NULL},
      {"HTML body",
       {G2, 200, "<html>oops</html>", 0, 0, 0, "text/html"},
       2000,
       1 << 20,
       "parse",
       0,
       "200",
       "invalid JSON",
       3,
       NULL},
      {"timeout",
       {G2, 200, "{}", 0, 1000, 0, NULL},
       200,
       1 << 20,
       "timeout",
       0,
       NULL,
       "/api/services/" G2 "/serviceusage",
       3,
       NULL},
      {"too large",
       {G2, 200, NULL, 5000, 0, 0, NULL},
       2000,
       2048,
       "too_large",
       0,
       NULL,
       "MaxResponseSize",
       3,
       NULL},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    routes[0] = (route_t){G1, 200, good_body, 0, 0, 0, NULL};
    routes[1] = cases[i].g2;
    routes_num = 2;
    server_start();
    usage_store_remove(store, "acme", "");
    sink_reset();
    usage_source_t *s =
        make_source(NULL, cases[i].timeout_ms, cases[i].max_body, 1);
    usage_source_read(s);

    if (!was_committed("service:" G1) || !was_committed("self"))
      fail_msg("%s: good entity or self not committed", cases[i].name);
    if (was_committed("service:" G2))
      fail_msg("%s: failing entity committed", cases[i].name);
    if (cases[i].entity != NULL && !was_committed(cases[i].entity))
      fail_msg("%s: %s not committed", cases[i].name, cases[i].entity);
    assert_string_equal(last_auth, "Bearer " TOKEN);

    char *text = tu_store_text(store);
    char line[256];
    snprintf(line, sizeof(line),
             "usage_source_up{source=\"acme\",kind=\"ccc\"} %d\n", cases[i].up);
    tu_expect_line(text, line, 1);
    snprintf(line, sizeof(line),
             "usage_scrape_errors_total{source=\"acme\",reason=\"%s\"} 1\n",
             cases[i].reason);
    tu_expect_line(text, line, 1);
    if (strcmp(cases[i].reason, "http_5xx") != 0)
      tu_expect_line(
          text,
          "usage_scrape_errors_total{source=\"acme\",reason=\"http_5xx\"} "
          "0\n",
          1);
    if (cases[i].code != NULL && strcmp(cases[i].code, "200") == 0) {
      tu_expect_line(
          text, "usage_scrape_requests_total{source=\"acme\",code=\"200\"} 2\n",
          1);
    } else {
      tu_expect_line(
          text, "usage_scrape_requests_total{source=\"acme\",code=\"200\"} 1\n",
          1);
      if (cases[i].code != NULL) {
        /* a 5xx answer is retried USAGE_RETRY_MAX times */
        snprintf(line, sizeof(line),
                 "usage_scrape_requests_total{source=\"acme\",code=\"%s\"} "
                 "%d\n",
                 cases[i].code,
                 atoi(cases[i].code) >= 500 ? 1 + USAGE_RETRY_MAX : 1);
        tu_expect_line(text, line, 1);
      }
    }
    tu_expect_line(
        text,
        "usage_ccc_service_users{source=\"acme\",service=\"" G1 "\"} 12\n", 1);
    if (cases[i].up)
      tu_expect_line(text, "usage_last_success_timestamp_seconds", 1);
    free(text);

    if (getenv("TEST_VERBOSE") != NULL)
      fprintf(stderr, "%s:\n%s", cases[i].name, log_text);
    /* one log line: source, URL, status, API error; never secrets */
    if (log_lines(cases[i].level) != 1)
      fail_msg("%s: want one line of level %d:\n%s", cases[i].name,
               cases[i].level, log_text);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/services/" G2,
             server_port);
    tu_expect_line(log_text, "usage plugin: CCC \"acme\": ", 1);
    tu_expect_line(log_text, url, 1);
    tu_expect_line(log_text, cases[i].log_has, 1);
    tu_expect_line(log_text, TOKEN, 0);
    tu_expect_line(log_text, STACK, 0);
    if (strcmp(cases[i].name, "HTTP 500") == 0) {
      tu_expect_line(log_text, "ServerError", 1);
      tu_expect_line(log_text, "Something broke", 1);
    }
    usage_source_status_t st;
    usage_source_get_status(s, &st);
    assert_int_equal(st.up, cases[i].up);
    assert_null(strstr(st.last_error, TOKEN));
    usage_source_destroy(s);
    server_stop();
  }
}

static void test_throttle(void **state) {
  (void)state;
  serve_one((route_t){G1, 503, "{}", 0, 0, 0, NULL});
  next_scrape_timeout = 0.5; /* the retries' backoff grows past it */
  usage_source_t *s = make_source(NULL, 2000, 1 << 20, 0);
  usage_source_read(s);
  assert_int_equal(log_lines(3), 1);
  fake_time += 5; /* within the first pause (the interval, 10 s) */
  usage_source_read(s);
  assert_int_equal(log_lines(3), 1);
  fake_time += 6;
  usage_source_read(s);
  assert_int_equal(log_lines(3), 2);
  tu_expect_line(log_text, "repeated 1 times", 1);
  fake_time += 11; /* the pause doubled: 20 s */
  usage_source_read(s);
  assert_int_equal(log_lines(3), 2);
  char *text = tu_store_text(store);
  tu_expect_line(
      text,
      "usage_scrape_errors_total{source=\"acme\",reason=\"http_5xx\"} "
      "4\n",
      1);
  free(text);
  /* recovery is told once */
  routes[0].status = 200;
  routes[0].body = good_body;
  usage_source_read(s);
  assert_int_equal(log_lines(5), 1);
  tu_expect_line(log_text, "working again", 1);
  usage_source_destroy(s);
  server_stop();
}

/* MaxRequestsPerSecond 5 (turns 0.24 s apart) against a server that
 * begins its answers 0.4 s after a request arrives: past the 0.2 s the
 * turns leave room for, each request may have arrived late as far as the
 * plugin can tell, so the next one arrives a second after it at the
 * earliest; without the delay the turns alone space them. */
static void test_politeness_late(void **state) {
  (void)state;
  routes[0] = (route_t){G1, 200, good_body, 0, 400, 0, NULL, 0};
  routes_num = 1;
  server_start();
  sink_reset();
  usage_source_t *s = make_source(NULL, 5000, 1 << 20, 0);
  ((usage_source_conf_t *)usage_source_conf(s))->max_rps = 5;
  usage_http_resp_t resp;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(
        usage_source_get(s, "/api/services/" G1 "/serviceusage", &resp), 0);
    assert_int_equal(resp.status, 200);
  }
  pthread_mutex_lock(&server_lock);
  assert_int_equal(hits[0], 3);
  double gap1 = arrived[0][1] - arrived[0][0];
  double gap2 = arrived[0][2] - arrived[0][1];
  pthread_mutex_unlock(&server_lock);
  if (gap1 < 1.0 || gap2 < 1.0)
    fail_msg("requests arrived %.3f s and %.3f s apart, want 1 s at least",
             gap1, gap2);
  usage_source_destroy(s);
  server_stop();
}

static void write_token(const char *path, const char *token) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "%s\n", token);
  fclose(f);
}

/* temp_token makes a file from the template path (ending in XXXXXX) that
 * holds token. */
static void temp_token(char *path, const char *token) {
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  write_token(path, token);
}

static void test_secret_rotation(void **state) {
  (void)state;
  char path[] = "/tmp/usage-test-token-XXXXXX";
  temp_token(path, "tok-A");
  serve_one((route_t){G1, 200, good_body, 0, 0, 0, NULL});
  usage_source_t *s = make_source(path, 2000, 1 << 20, 0);
  usage_source_read(s);
  assert_string_equal(last_auth, "Bearer tok-A");
  write_token(path, "tok-BB"); /* rotated by another program */
  usage_source_read(s);
  assert_string_equal(last_auth, "Bearer tok-BB");
  /* the file vanishes: a secret error, the token never logged */
  unlink(path);
  usage_source_read(s);
  char *text = tu_store_text(store);
  tu_expect_line(
      text, "usage_scrape_errors_total{source=\"acme\",reason=\"secret\"} 1\n",
      1);
  tu_expect_line(text, "usage_source_up{source=\"acme\",kind=\"ccc\"} 0\n", 1);
  free(text);
  tu_expect_line(log_text, path, 1);
  tu_expect_line(log_text, "tok-", 0);
  usage_source_destroy(s);
  server_stop();
}

/* HeaderFile: the header reaches the server with the file's value, read
 * again when the file changes; never logged. */
static void test_header_file(void **state) {
  (void)state;
  char path[] = "/tmp/usage-test-hdr-XXXXXX";
  temp_token(path, "key-A");
  serve_one((route_t){G1, 200, good_body, 0, 0, 0, NULL});
  usage_source_t *s = make_source(NULL, 2000, 1 << 20, 0);
  usage_http_conf_t *h = &((usage_source_conf_t *)usage_source_conf(s))->http;
  h->header_files = calloc(1, sizeof(*h->header_files));
  h->header_files[0].name = strdup("X-Api-Key");
  h->header_files[0].value.file = strdup(path);
  h->header_files_num = 1;
  usage_source_read(s);
  assert_string_equal(last_key, "key-A");
  assert_string_equal(last_auth, "Bearer " TOKEN);
  write_token(path, "key-BBB"); /* rotated by another program */
  usage_source_read(s);
  assert_string_equal(last_key, "key-BBB");
  unlink(path);
  usage_source_read(s);
  tu_expect_line(log_text, path, 1);
  tu_expect_line(log_text, "key-", 0);
  usage_source_destroy(s);
  server_stop();
}

static void test_retry_after(void **state) {
  (void)state;
  serve_one((route_t){G1, 200, good_body, 0, 0, 1, NULL});
  usage_source_t *s = make_source(NULL, 2000, 1 << 20, 0);
  usage_source_read(s);
  assert_int_equal(hits[0], 2); /* 429, then the retry */
  assert_true(was_committed("service:" G1));
  char *text = tu_store_text(store);
  tu_expect_line(
      text, "usage_scrape_requests_total{source=\"acme\",code=\"429\"} 1\n", 1);
  tu_expect_line(
      text, "usage_scrape_requests_total{source=\"acme\",code=\"200\"} 1\n", 1);
  tu_expect_line(text, "usage_source_up{source=\"acme\",kind=\"ccc\"} 1\n", 1);
  free(text);
  assert_int_equal(log_lines(3), 0);
  usage_source_destroy(s);
  server_stop();
}

static void test_reasons(void **state) {
  static const struct {
    int err;
    long status;
    const char *reason;
  } cases[] = {
      {USAGE_HTTP_TIMEOUT, 0, "timeout"},
      {USAGE_HTTP_CONNECT, 0, "connect"},
      {USAGE_HTTP_REFUSED, 0, "connection_refused"},
      {USAGE_HTTP_DROPPED, 0, "connection_dropped"},
      {USAGE_HTTP_TRUNCATED, 200, "body_truncated"},
      {USAGE_HTTP_TLS, 0, "tls"},
      {USAGE_HTTP_TOO_LARGE, 0, "too_large"},
      {USAGE_HTTP_SECRET, 0, "secret"},
      {USAGE_HTTP_LOGIN, 0, "login"},
      {USAGE_HTTP_LOGIN_AUTH, 0, "auth"},
      {USAGE_HTTP_OK, 401, "auth"},
      {USAGE_HTTP_OK, 403, "auth"},
      {USAGE_HTTP_OK, 429, "rate_limited"},
      {USAGE_HTTP_OK, 500, "http_5xx"},
      {USAGE_HTTP_OK, 503, "http_5xx"},
      {USAGE_HTTP_OK, 404, "http_4xx"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
    assert_string_equal(usage_source_http_reason(cases[i].err, cases[i].status),
                        cases[i].reason);
}

/* closed_port: a loopback port nobody listens on (bound, then closed). */
static unsigned closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

/* A connection refused, a connection closed before any answer and a body
 * cut off half-way: three reasons, the source down, and a log line that
 * says which in words. */
static void test_transport_reasons(void **state) {
  static const struct {
    const char *name;
    int fault; /* -1: nobody listens on the port */
    const char *reason;
    const char *log_has;
  } cases[] = {
      {"refused", -1, "connection_refused", "connection refused"},
      {"dropped", FAULT_DROP, "connection_dropped",
       "connection closed by the server before any answer"},
      {"cut off", FAULT_CUT, "body_truncated", "answer cut off: HTTP 200, "},
  };
  static const char *const all[] = {"connection_refused",
                                    "connection_dropped",
                                    "body_truncated",
                                    "connect",
                                    "timeout",
                                    "parse"};
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    routes[0] = (route_t){G1, 200, good_body, 0, 0, 0, NULL, 0};
    routes[0].fault = cases[i].fault > 0 ? cases[i].fault : FAULT_NONE;
    routes_num = 1;
    server_start();
    if (cases[i].fault < 0) {
      server_stop();
      server_port = closed_port();
    }
    usage_store_remove(store, "acme", "");
    sink_reset();
    usage_source_t *s = make_source(NULL, 3000, 1 << 20, 0);
    usage_source_read(s);
    assert_false(was_committed("service:" G1));
    char *text = tu_store_text(store);
    tu_expect_line(text, "usage_source_up{source=\"acme\",kind=\"ccc\"} 0\n",
                   1);
    for (size_t k = 0; k < sizeof(all) / sizeof(*all); k++) {
      char line[160];
      snprintf(line, sizeof(line),
               "usage_scrape_errors_total{source=\"acme\",reason=\"%s\"} %d\n",
               all[k], strcmp(all[k], cases[i].reason) == 0);
      if (strstr(text, line) == NULL)
        fail_msg("%s: no line %s in\n%s\nlog: %s", cases[i].name, line, text,
                 log_text);
    }
    free(text);
    if (log_lines(3) != 1 || strstr(log_text, cases[i].log_has) == NULL)
      fail_msg("%s: want one line with \"%s\":\n%s", cases[i].name,
               cases[i].log_has, log_text);
    if (getenv("TEST_VERBOSE") != NULL)
      fprintf(stderr, "%s: %s", cases[i].name, log_text);
    usage_source_destroy(s);
    if (cases[i].fault >= 0)
      server_stop();
  }
}

/* <Login>: a login endpoint and a data endpoint that wants its token. */
static unsigned login_hits, login_refuse, data_hits;
static int login_down; /* 1: the login endpoint answers 503; 2: it drops */
static char login_valid[64], login_body[512];
/* a request to /held waits until held_release (a request delayed on its
 * way): its token is checked when it arrives */
static int held_waiting, held_release;

static enum MHD_Result login_handler(void *cls, struct MHD_Connection *conn,
                                     const char *url, const char *method,
                                     const char *version,
                                     const char *upload_data,
                                     size_t *upload_size, void **req_cls) {
  (void)cls, (void)method, (void)version;
  if (tu_http_first_call(req_cls)) {
    login_body[0] = 0;
    return MHD_YES;
  }
  if (*upload_size > 0) {
    strncat(login_body, upload_data,
            *upload_size < sizeof(login_body) - strlen(login_body) - 1
                ? *upload_size
                : sizeof(login_body) - strlen(login_body) - 1);
    *upload_size = 0;
    return MHD_YES;
  }
  char body[512] = "{}";
  unsigned status = 200;
  pthread_mutex_lock(&server_lock);
  if (strcmp(url, "/held") == 0) {
    held_waiting = 1;
    for (int i = 0; i < 1000 && !held_release; i++) {
      pthread_mutex_unlock(&server_lock);
      usleep(10000);
      pthread_mutex_lock(&server_lock);
    }
    held_waiting = 0;
  }
  if (strcmp(url, "/api/login") == 0) {
    login_hits++;
    if (login_down == 2) {
      pthread_mutex_unlock(&server_lock);
      return MHD_NO; /* closes the connection, nothing sent */
    }
    if (login_down)
      status = 503;
    else if (login_refuse ||
             strstr(login_body, "\"Password\":\"pw-SECRET\"") == NULL)
      status = 401;
    else {
      snprintf(login_valid, sizeof(login_valid), "sess-SECRET-%u", login_hits);
      snprintf(body, sizeof(body), "{\"SessionToken\":\"%s\"}", login_valid);
    }
  } else {
    data_hits++;
    const char *tok = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                  "x-sm-session-token");
    if (tok == NULL || strcmp(tok, login_valid) != 0)
      status = 401;
    else
      snprintf(body, sizeof(body), "%s", good_body);
  }
  pthread_mutex_unlock(&server_lock);
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      strlen(body), body, MHD_RESPMEM_MUST_COPY);
  enum MHD_Result ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* login_source_with: a CCC source "acme" on the login server at port
 * that signs in as "monitor" with the password pw-SECRET, read from pwfile
 * (NULL: given in the configuration), with the service G1 when
 * `service`, the request timeout timeout_ms and `workers` requests at
 * once; the sink is reset. login_source: 5 s and one worker. */
static usage_source_t *login_source_with(unsigned port, const char *pwfile,
                                         int service, long timeout_ms,
                                         int workers) {
  usage_source_conf_t *c = calloc(1, sizeof(*c));
  c->name = strdup("acme");
  c->kind = USAGE_KIND_CCC;
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
  c->http.url = strdup(url);
  c->http.verify_peer = c->http.verify_host = 1;
  c->http.timeout_ms = timeout_ms;
  c->http.max_body = 65536;
  c->max_concurrent = workers;
  c->kind_conf = usage_ccc_vendor.conf_create();
  if (service) {
    usage_ccc_conf_t *cc = c->kind_conf;
    cc->services = calloc(1, sizeof(*cc->services));
    memcpy(cc->services[0].guid, G1, 33);
    cc->services_num = 1;
  }
  c->login = usage_login_conf_create();
  c->login->preset = USAGE_LOGIN_PRESET_CCC;
  c->login->user = strdup("monitor");
  if (pwfile != NULL)
    c->login->password.file = strdup(pwfile);
  else
    c->login->password.value = strdup("pw-SECRET");
  c->login->ttl = 100;
  const char *option;
  char err[256];
  assert_int_equal(
      usage_login_conf_finish(c->login, url, &option, err, sizeof(err)), 0);
  sink_reset();
  usage_sink_t sink = {.log = sink_log, .commit = sink_commit};
  usage_source_t *s = usage_source_create(c, &sink);
  assert_non_null(s);
  return s;
}

static usage_source_t *login_source(unsigned port, const char *pwfile,
                                    int service) {
  return login_source_with(port, pwfile, service, 5000, 1);
}

static void test_login(void **state) {
  (void)state;
  char pwfile[] = "/tmp/test_source_pw.XXXXXX";
  temp_token(pwfile, "pw-SECRET");
  unsigned port;
  struct MHD_Daemon *d = tu_http_start(login_handler, NULL, &port);
  usage_source_t *s = login_source(port, pwfile, 0);
  usage_http_resp_t resp;
  static const struct {
    const char *name;
    double advance;
    int revoke, refuse;
    int rc;
    long status;
    unsigned logins, data;
    const char *page; /* the status page's sign-in column, a prefix */
  } steps[] = {
      {"first request signs in", 0, 0, 0, 0, 200, 1, 1,
       "signed in, expires in 100 s"},
      {"the token is reused", 10, 0, 0, 0, 200, 1, 2,
       "signed in, expires in 90 s"},
      {"renewed at 80% of its lifetime", 71, 0, 0, 0, 200, 2, 3,
       "signed in, expires in 100 s"},
      {"revoked: one sign-in, one retry", 1, 1, 0, 0, 200, 3, 5,
       "signed in, expires in 100 s"},
      {"refused sign-in: no loop", 0, 1, 1, USAGE_HTTP_LOGIN_AUTH, 0, 4, 6,
       "sign-in failed, next attempt in "},
      {"backoff: no attempt yet", 0.1, 0, 1, USAGE_HTTP_LOGIN_AUTH, 0, 4, 6,
       "sign-in failed, next attempt in "},
      {"after the backoff", 2, 0, 0, 0, 200, 5, 7,
       "signed in, expires in 100 s"},
  };
  char page[96];
  usage_source_login_text(s, fake_time, page, sizeof(page));
  assert_string_equal(page, "not signed in");
  for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
    fake_time += steps[i].advance;
    pthread_mutex_lock(&server_lock);
    if (steps[i].revoke)
      snprintf(login_valid, sizeof(login_valid), "revoked");
    login_refuse = (unsigned)steps[i].refuse;
    pthread_mutex_unlock(&server_lock);
    int rc = usage_source_get(s, "/data", &resp);
    if (rc != steps[i].rc || (rc == 0 && resp.status != steps[i].status) ||
        login_hits != steps[i].logins || data_hits != steps[i].data)
      fail_msg("%s: rc %d status %ld logins %u data %u (%s)", steps[i].name, rc,
               resp.status, login_hits, data_hits, resp.error);
    if (rc != 0)
      assert_string_equal(usage_source_http_reason(rc, 0), "auth");
    usage_source_login_text(s, fake_time, page, sizeof(page));
    if (strncmp(page, steps[i].page, strlen(steps[i].page)) != 0)
      fail_msg("%s: status page \"%s\", want \"%s\"", steps[i].name, page,
               steps[i].page);
    pthread_mutex_lock(&server_lock);
    if (login_valid[0] && strstr(page, login_valid) != NULL)
      fail_msg("%s: the status page shows the token", steps[i].name);
    pthread_mutex_unlock(&server_lock);
  }
  usage_source_read(s); /* commits the self figures */
  assert_null(strstr(log_text, "SECRET"));
  assert_non_null(strstr(log_text, "HTTP 401"));
  usage_source_destroy(s);
  MHD_stop_daemon(d);
  unlink(pwfile);
}

/* A request refused (401) after another worker renewed the token while it
 * waited for its answer: the renewed token is used only while it is fresh.
 * With the login endpoint down, a renewed token past its refresh point is
 * not sent (the server would refuse it as expired: reason auth); the
 * request fails with reason login, as every request does while the block
 * cannot sign in. */
typedef struct {
  usage_source_t *s;
  usage_http_t *http; /* a worker's own handle */
  int rc;
  usage_http_resp_t resp;
} held_req_t;

static void *held_thread(void *p) {
  held_req_t *h = p;
  h->rc = usage_source_get_with(h->s, h->http, "/held", &h->resp);
  return NULL;
}

static void test_login_renewed_meanwhile(void **state) {
  (void)state;
  unsigned port;
  struct MHD_Daemon *d = tu_http_start(login_handler, NULL, &port);
  usage_source_t *s = login_source_with(port, NULL, 0, 15000, 2);
  pthread_mutex_lock(&server_lock);
  login_hits = data_hits = 0;
  login_refuse = 0;
  login_down = 0;
  held_waiting = held_release = 0;
  pthread_mutex_unlock(&server_lock);
  usage_http_resp_t resp;
  /* for each case: the first token (generation 1) goes with a request that
   * is held; meanwhile the token is renewed (81 s on) and then `later` s
   * pass with the login endpoint down; the held request arrives when its
   * token and the renewed one are no longer valid (the server has issued
   * a third it never hands out) */
  static const struct {
    const char *name;
    double later;
    int rc;             /* of the held request */
    unsigned logins;    /* sign-in attempts in all */
    const char *reason; /* of the held request */
  } cases[] = {
      {"renewed token still fresh: used, refused, reason auth", 10, 0, 2,
       "auth"},
      {"renewed token past its refresh point: not sent, reason login", 85,
       USAGE_HTTP_LOGIN, 3, "login"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    pthread_mutex_lock(&server_lock);
    login_hits = 0;
    login_down = 0;
    held_release = 0;
    pthread_mutex_unlock(&server_lock);
    /* a fresh first token: 200 s on, every earlier one is past its time */
    fake_time += 200;
    assert_int_equal(usage_source_get(s, "/data", &resp), 0);
    assert_int_equal(resp.status, 200);
    held_req_t h = {.s = s,
                    .http = usage_http_create(&usage_source_conf(s)->http)};
    assert_non_null(h.http);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, held_thread, &h), 0);
    int waiting = 0;
    for (int k = 0; k < 500 && !waiting; k++) {
      pthread_mutex_lock(&server_lock);
      waiting = held_waiting;
      pthread_mutex_unlock(&server_lock);
      if (!waiting)
        usleep(10000);
    }
    assert_true(waiting);
    fake_time += 81; /* another worker renews the token */
    assert_int_equal(usage_source_get(s, "/data", &resp), 0);
    assert_int_equal(resp.status, 200);
    fake_time += cases[i].later;
    pthread_mutex_lock(&server_lock);
    login_down = 1;
    snprintf(login_valid, sizeof(login_valid), "never-handed-out");
    held_release = 1;
    pthread_mutex_unlock(&server_lock);
    pthread_join(t, NULL);
    usage_http_destroy(h.http);
    const char *reason = usage_source_http_reason(h.rc, h.resp.status);
    if (h.rc != cases[i].rc || strcmp(reason, cases[i].reason) != 0 ||
        login_hits != cases[i].logins)
      fail_msg("%s: rc %d status %ld reason %s, %u sign-ins (%s)",
               cases[i].name, h.rc, h.resp.status, reason, login_hits,
               h.resp.error);
  }
  pthread_mutex_lock(&server_lock);
  login_down = 0;
  pthread_mutex_unlock(&server_lock);
  usage_source_destroy(s);
  MHD_stop_daemon(d);
}

/* Scrapes on a thread of the source's own, and stopping them */

static void *loop_thread(void *p) {
  usage_source_loop(p);
  return NULL;
}

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned hits_of(size_t i) {
  pthread_mutex_lock(&server_lock);
  unsigned n = hits[i];
  pthread_mutex_unlock(&server_lock);
  return n;
}

/* wait_hits waits (5 s at most) until route i was asked n times. */
static void wait_hits(size_t i, unsigned n) {
  for (int k = 0; k < 500 && hits_of(i) < n; k++)
    usleep(10000);
  assert_true(hits_of(i) >= n);
}

/* A trigger waits for its scrape; triggers while one runs make one more
 * start after it, never two at once, and the first is logged. */
static void test_loop(void **state) {
  (void)state;
  serve_one((route_t){G1, 200, good_body, 0, 300, 0, NULL});
  usage_source_t *s = make_source(NULL, 5000, 1 << 20, 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, loop_thread, s), 0);
  assert_int_equal(usage_source_trigger(s, 10), 1);
  assert_int_equal(hits_of(0), 1);
  assert_true(was_committed("service:" G1));
  assert_true(was_committed("self"));
  assert_int_equal(log_lines(4), 0);

  assert_int_equal(usage_source_trigger(s, 0), 0); /* scrape 2 starts */
  wait_hits(0, 2);
  assert_int_equal(usage_source_trigger(s, 0), 0);  /* busy: 3 waits */
  assert_int_equal(usage_source_trigger(s, 10), 1); /* busy: still 3 */
  assert_int_equal(hits_of(0), 3);
  assert_int_equal(log_lines(4), 1); /* "still running at its next turn" */
  assert_non_null(strstr(log_text, "still running at its next turn"));
  assert_int_equal(usage_source_trigger(s, 10), 1); /* idle again */
  assert_int_equal(hits_of(0), 4);
  assert_non_null(strstr(log_text, "within their interval again"));
  assert_int_equal(log_lines(3), 0);

  double t0 = mono();
  usage_source_stop(s);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_true(mono() - t0 < 1);
  assert_int_equal(usage_source_trigger(s, 10), 0); /* stopped: at once */
  assert_int_equal(hits_of(0), 4);
  usage_source_destroy(s);
  server_stop();
}

/* The scrape's deadline and the backoff of the data requests. */

/* expect_self fails the test unless the self figure `family{labels}` of
 * "acme" is want (to 1e-9). */
static void expect_self(const char *family, const char *labels, double want) {
  char *text = tu_store_text(store);
  char prefix[256];
  snprintf(prefix, sizeof(prefix), "\n%s{source=\"acme\"%s%s} ", family,
           labels[0] ? "," : "", labels);
  const char *p = strstr(text, prefix);
  if (p == NULL || fabs(strtod(p + strlen(prefix), NULL) - want) > 1e-9)
    fail_msg("want %s%.17g in:\n%s", prefix + 1, want, text);
  free(text);
}

/* A server that never answers: one CCC scrape of two services and eight
 * users on four workers, with Timeout 3 s, ends at its deadline of 1 s
 * (plus slack for a busy machine): every request shares it. */
static void test_deadline_hang(void **state) {
  (void)state;
  routes[0] = (route_t){G1, 200, good_body, 0, 0, 0, NULL};
  routes[1] = (route_t){G2, 200, good_body, 0, 0, 0, NULL};
  routes_num = 2;
  server_start();
  hang_ms = 60000;
  usage_store_remove(store, "acme", "");
  sink_reset();
  next_scrape_timeout = 1.0;
  next_users = 8;
  next_workers = 4;
  usage_source_t *s = make_source(NULL, 3000, 1 << 20, 1);
  double t0 = mono();
  usage_source_read(s);
  double took = mono() - t0;
  if (took < 0.9 || took > 1.8)
    fail_msg("the scrape took %.2f s, its deadline is 1 s", took);
  expect_self("usage_source_up", "kind=\"ccc\"", 0);
  expect_self("usage_scrape_errors_total", "reason=\"deadline\"", 1);
  expect_self("usage_scrape_errors_total", "reason=\"timeout\"", 0);
  expect_self("usage_source_backoff_seconds", "kind=\"ccc\"", 0);
  /* one line naming the block and how far the scrape got */
  if (log_lines(3) != 1)
    fail_msg("want one error line:\n%s", log_text);
  tu_expect_line(log_text,
                 "usage plugin: CCC \"acme\": the scrape ran out of "
                 "its deadline (ScrapeTimeout 1 s)",
                 1);
  tu_expect_line(log_text,
                 "1 request(s) sent, 0 answered, 10 entities left with their "
                 "last figures (first: no answer)",
                 1);
  usage_source_status_t st;
  usage_source_get_status(s, &st);
  assert_int_equal(st.up, 0);
  assert_non_null(strstr(st.last_error, "deadline"));
  usage_source_destroy(s);
  server_stop();
}

/* A stop ends a scrape at once wherever it waits: in a transfer the
 * server holds for 30 s, in a Retry-After sleep of 30 s (straight, and
 * through the request spacing of MaxRequestsPerSecond). Nothing of the
 * scrape is published, no error is counted or logged, the stop is. */
static void test_stop(void **state) {
  (void)state;
  static const struct {
    const char *name;
    route_t route;
    double max_rps;
  } cases[] = {
      {"transfer", {G1, 200, good_body, 0, 30000, 0, NULL}, 0},
      {"retry-after", {G1, 200, good_body, 0, 0, 1, NULL}, 0},
      {"retry-after, spaced", {G1, 200, good_body, 0, 0, 1, NULL}, 1},
  };
  retry_after_s = 30;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    serve_one(cases[i].route);
    next_scrape_timeout = 120; /* the 30 s waits fit in the deadline */
    usage_source_t *s = make_source(NULL, 60000, 1 << 20, 0);
    ((usage_source_conf_t *)usage_source_conf(s))->max_rps = cases[i].max_rps;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, loop_thread, s), 0);
    assert_int_equal(usage_source_trigger(s, 0.2), 0);
    wait_hits(0, 1);
    usleep(100000); /* into the wait (a stop before it ends it as well) */
    double t0 = mono();
    usage_source_stop(s);
    assert_int_equal(pthread_join(t, NULL), 0);
    double took = mono() - t0;
    if (took > 0.5)
      fail_msg("%s: the stop took %.3f s", cases[i].name, took);
    assert_int_equal(hits_of(0), 1); /* no retry sent */
    if (committed_num != 0)
      fail_msg("%s: %s committed after the stop", cases[i].name, committed[0]);
    assert_int_equal(log_lines(3), 0);
    assert_non_null(strstr(log_text, "stopped "));
    assert_non_null(strstr(log_text, "into a scrape"));
    assert_int_equal(usage_source_reason_count(s, "connect"), 0);
    assert_int_equal(usage_source_reason_count(s, "timeout"), 0);
    assert_int_equal(usage_source_reason_count(s, "stopped"), UINT64_MAX);
    /* a read of a stopped source sends nothing */
    usage_source_read(s);
    assert_int_equal(hits_of(0), 1);
    usage_source_destroy(s);
    server_stop();
  }
  retry_after_s = 1;
}

/* The login endpoint down (503, then the connection dropped): the source is
 * down with reason login, sign-ins back off, and the block recovers by
 * itself once the endpoint is back. */
static void test_login_down(void **state) {
  (void)state;
  unsigned port;
  struct MHD_Daemon *d = tu_http_start(login_handler, NULL, &port);
  usage_store_remove(store, "acme", "");
  usage_source_t *s = login_source(port, NULL, 1);
  pthread_mutex_lock(&server_lock);
  login_hits = data_hits = 0;
  login_refuse = 0;
  pthread_mutex_unlock(&server_lock);
  static const struct {
    const char *name;
    double advance;
    int down;
    unsigned failed, ok; /* usage_login_total by result */
    int up;
    uint64_t login_errors; /* usage_scrape_errors_total{reason="login"} */
    const char *log_has;
  } steps[] = {
      {"503: down, reason login", 0, 1, 1, 0, 0, 1, "HTTP 503"},
      {"within the backoff: no attempt", 0.2, 1, 1, 0, 0, 2, NULL},
      {"dropped: down, reason login", 1.0, 2, 2, 0, 0, 3,
       "connection closed by the server before any answer"},
      {"within the longer backoff: no attempt", 0.4, 2, 2, 0, 0, 4, NULL},
      {"back: recovers by itself", 2.0, 0, 2, 1, 1, 4, "signed in again"},
  };
  for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
    fake_time += steps[i].advance;
    pthread_mutex_lock(&server_lock);
    login_down = steps[i].down;
    pthread_mutex_unlock(&server_lock);
    sink_reset();
    usage_source_read(s);
    usage_source_status_t st;
    usage_source_get_status(s, &st);
    char *text = tu_store_text(store);
    char want[2][128];
    snprintf(want[0], sizeof(want[0]),
             "usage_login_total{source=\"acme\",result=\"failed\"} %u\n",
             steps[i].failed);
    snprintf(want[1], sizeof(want[1]),
             "usage_login_total{source=\"acme\",result=\"ok\"} %u\n",
             steps[i].ok);
    int counted =
        strstr(text, want[0]) != NULL && strstr(text, want[1]) != NULL;
    free(text);
    if (!counted || st.up != steps[i].up ||
        usage_source_reason_count(s, "login") != steps[i].login_errors ||
        usage_source_reason_count(s, "auth") != 0)
      fail_msg("%s: logins %u up %d login errors %llu auth %llu\n%s",
               steps[i].name, login_hits, st.up,
               (unsigned long long)usage_source_reason_count(s, "login"),
               (unsigned long long)usage_source_reason_count(s, "auth"),
               log_text);
    if (steps[i].log_has != NULL && strstr(log_text, steps[i].log_has) == NULL)
      fail_msg("%s: log lacks \"%s\":\n%s", steps[i].name, steps[i].log_has,
               log_text);
    assert_null(strstr(log_text, "SECRET"));
  }
  assert_true(was_committed("service:" G1));
  pthread_mutex_lock(&server_lock);
  login_down = 0;
  pthread_mutex_unlock(&server_lock);
  usage_source_destroy(s);
  MHD_stop_daemon(d);
}

/* failing_source: a source of G1 on a fresh server, store and sink whose
 * first `fails` answers are HTTP status with Retry-After retry_after (""
 * = none), with a ScrapeTimeout of scrape_timeout s. */
static usage_source_t *failing_source(unsigned fails, unsigned status,
                                      const char *retry_after,
                                      double scrape_timeout) {
  fail_status[0] = status;
  fail_retry_after[0] = retry_after;
  serve_one((route_t){G1, 200, good_body, 0, 0, fails, NULL});
  usage_store_remove(store, "acme", "");
  next_scrape_timeout = scrape_timeout;
  return make_source(NULL, 2000, 1 << 20, 0);
}

/* 503 with a Retry-After longer than the deadline: no sleep, the scrape
 * fails at once, and the next scrape asks again on schedule. */
static void test_deadline_retry_after(void **state) {
  (void)state;
  usage_source_t *s = failing_source(1000, 503, "30", 5);
  for (unsigned scrape = 1; scrape <= 2; scrape++) {
    double t0 = mono();
    usage_source_read(s);
    double took = mono() - t0;
    if (took > 1.0)
      fail_msg("scrape %u took %.2f s", scrape, took);
    assert_int_equal(hits[0], scrape); /* not retried, not skipped */
    expect_self("usage_source_up", "kind=\"ccc\"", 0);
    expect_self("usage_scrape_errors_total", "reason=\"http_5xx\"", scrape);
    expect_self("usage_scrape_errors_total", "reason=\"deadline\"", 0);
    /* the server's delay stands in for the computed one */
    expect_self("usage_source_backoff_seconds", "kind=\"ccc\"", 30);
  }
  usage_source_destroy(s);
  server_stop();
}

/* 5xx twice, then an answer: the retries come after a growing backoff,
 * the scrape succeeds, the backoff is reset. */
static void test_backoff_recovery(void **state) {
  (void)state;
  usage_backoff_base = 0.2;
  usage_source_t *s = failing_source(2, 500, "", 5);
  double t0 = mono();
  usage_source_read(s);
  double took = mono() - t0;
  /* equal jitter: at least 0.1 + 0.2 s, at most 0.2 + 0.4 s (+ slack) */
  if (took < 0.3 || took > 2.0)
    fail_msg("the scrape took %.2f s", took);
  assert_int_equal(hits[0], 3);
  assert_true(was_committed("service:" G1));
  expect_self("usage_source_up", "kind=\"ccc\"", 1);
  expect_self("usage_scrape_requests_total", "code=\"500\"", 2);
  expect_self("usage_scrape_requests_total", "code=\"200\"", 1);
  expect_self("usage_scrape_errors_total", "reason=\"http_5xx\"", 0);
  expect_self("usage_source_backoff_seconds", "kind=\"ccc\"", 0);
  assert_true(usage_source_backoff(s) == 0);
  assert_int_equal(log_lines(3), 0);
  usage_source_destroy(s);
  server_stop();
  usage_backoff_base = 0.02;
}

/* Failures in a row: every scrape still asks (once: the backoff passes its
 * deadline), the delay doubles within equal-jitter bounds up to the cap
 * and is random within them; an answer resets it. */
static void test_backoff_growth(void **state) {
  (void)state;
  usage_backoff_base = 1;
  usage_source_t *s = failing_source(1000, 502, "", 0.4);
  double lo_frac = 1, hi_frac = 0;
  for (unsigned k = 1; k <= 9; k++) {
    double t0 = mono();
    usage_source_read(s);
    if (mono() - t0 > 1.0)
      fail_msg("scrape %u took %.2f s", k, mono() - t0);
    assert_int_equal(hits[0], k);
    double d = fmin(USAGE_BACKOFF_MAX, ldexp(1.0, (int)k - 1));
    double b = usage_source_backoff(s);
    if (b < d / 2 || b > d)
      fail_msg("failure %u: backoff %.3f s, want [%.1f, %.1f]", k, b, d / 2, d);
    expect_self("usage_source_backoff_seconds", "kind=\"ccc\"", b);
    expect_self("usage_source_up", "kind=\"ccc\"", 0);
    lo_frac = fmin(lo_frac, b / d);
    hi_frac = fmax(hi_frac, b / d);
  }
  if (hi_frac - lo_frac < 1e-6)
    fail_msg("no jitter: every delay was %.6f of its bound", lo_frac);
  pthread_mutex_lock(&server_lock);
  routes[0].fail_first = 0;
  pthread_mutex_unlock(&server_lock);
  usage_source_read(s);
  expect_self("usage_source_up", "kind=\"ccc\"", 1);
  expect_self("usage_source_backoff_seconds", "kind=\"ccc\"", 0);
  usage_source_destroy(s);
  server_stop();
  usage_backoff_base = 0.02;
}

/* Retry-After wins over the computed backoff: with a base of 20 s the
 * backoff would pass the deadline, the server's 1 s does not. */
static void test_backoff_retry_after_wins(void **state) {
  (void)state;
  usage_backoff_base = 20;
  usage_source_t *s = failing_source(1, 503, "1", 4);
  double t0 = mono();
  usage_source_read(s);
  double took = mono() - t0;
  if (took < 0.9 || took > 3.0)
    fail_msg("the scrape took %.2f s, want about 1 s", took);
  assert_int_equal(hits[0], 2);
  expect_self("usage_source_up", "kind=\"ccc\"", 1);
  expect_self("usage_scrape_requests_total", "code=\"503\"", 1);
  expect_self("usage_source_backoff_seconds", "kind=\"ccc\"", 0);
  usage_source_destroy(s);
  server_stop();
  usage_backoff_base = 0.02;
}

int main(void) {
  usage_http_global_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reasons),
      cmocka_unit_test(test_failures),
      cmocka_unit_test(test_transport_reasons),
      cmocka_unit_test(test_throttle),
      cmocka_unit_test(test_politeness_late),
      cmocka_unit_test(test_secret_rotation),
      cmocka_unit_test(test_retry_after),
      cmocka_unit_test(test_header_file),
      cmocka_unit_test(test_login),
      cmocka_unit_test(test_login_renewed_meanwhile),
      cmocka_unit_test(test_loop),
      cmocka_unit_test(test_stop),
      cmocka_unit_test(test_login_down),
      cmocka_unit_test(test_deadline_hang),
      cmocka_unit_test(test_deadline_retry_after),
      cmocka_unit_test(test_backoff_recovery),
      cmocka_unit_test(test_backoff_growth),
      cmocka_unit_test(test_backoff_retry_after_wins),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
