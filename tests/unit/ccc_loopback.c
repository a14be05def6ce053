/* SPDX-License-Identifier: MIT */
/* ccc_loopback: what the CCC scrape tests share: a loopback
 * libmicrohttpd server serving canned status-change pages by Page=N, a
 * service usage and a user usage body; a fake sink (a store, the log, the
 * last "changes" batch); a CCC source pointed at the server; checks. */
#include "ccc_loopback.h"
#include "families.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "test_util.h"

const char *const states[] = {
    "Blocked",      "AccountCancelled", "AccountSuspended", "Provisioning",
    "TrialExpired", "TrialActive",      "DemoAccount",      "CertifiedSecure"};

/* label returns the value of label `name` of a sample, or NULL. */
static const char *label(const usage_sample_t *s, const char *name) {
  for (unsigned i = 0; i < s->nlabels; i++)
    if (strcmp(s->labels[2 * i], name) == 0)
      return s->labels[2 * i + 1];
  return NULL;
}

/* ---- whole scrapes against a canned server ---- */

/* The server: /api/services/SVC/serviceusage answers a good body;
 * /api/services/status answers pages[Page-1], or `beyond` past the last
 * one, or pages[0] for every Page when `repeat`. */
static const char service_body[] =
    "{\"serviceGuid\":\"" SVC "\",\"name\":\"Acme\",\"status\":\"TrialActive\","
    "\"totalUserCount\":12}";
const char *service_text;
char page_buf[8][16384];
const char *pages[8];
size_t pages_num;
const char *beyond = "{\"results\":[]}";
int repeat;
const char *user_body;
unsigned user_status = 200;
unsigned status_hits;
char queries[16][512]; /* the status requests, decoded */
static pthread_mutex_t server_lock = PTHREAD_MUTEX_INITIALIZER;

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_size, void **req_cls) {
  (void)cls, (void)method, (void)version, (void)upload_data, (void)upload_size;
  if (tu_http_first_call(req_cls))
    return MHD_YES;
  const char *body = "{}";
  unsigned status = 404;
  pthread_mutex_lock(&server_lock);
  if (strcmp(url, "/api/services/" SVC "/serviceusage") == 0) {
    body = service_text ? service_text : service_body;
    status = 200;
  } else if (strcmp(url, "/api/services/" SVC "/users/" USR "/usage") == 0 &&
             user_body != NULL) {
    body = user_body;
    status = user_status;
  } else if (strcmp(url, "/api/services/status") == 0) {
    if (status_hits < 16) {
      tu_http_query(conn, queries[status_hits], sizeof(queries[0]));
    }
    status_hits++;
    const char *p =
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "Page");
    long n = p ? atol(p) : 1;
    if (repeat)
      body = pages[0];
    else if (n >= 1 && (size_t)n <= pages_num)
      body = pages[n - 1];
    else
      body = beyond;
    status = 200;
  }
  pthread_mutex_unlock(&server_lock);
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/json");
  enum MHD_Result ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static struct MHD_Daemon *server;
static unsigned server_port;

void server_start(void) {
  status_hits = 0;
  repeat = 0;
  pages_num = 0;
  beyond = "{\"results\":[]}";
  user_body = NULL;
  user_status = 200;
  service_text = NULL;
  server = tu_http_start(handler, NULL, &server_port);
}

void server_stop(void) {
  MHD_stop_daemon(server);
  server = NULL;
}

/* page_set fills pages[slot] with items [first, first + count): change GUID
 * from the number (dashed when `dashed`), status states[n % 8], ChangedOn
 * base + 60 n. total_pages < 0 leaves the paging fields out. */
double items_base;

void page_set(size_t slot, int first, int count, int page_size, int total_pages,
              int dashed) {
  char *out = page_buf[slot];
  size_t cap = sizeof(page_buf[slot]), n = 0;
  if (total_pages >= 0)
    n += (size_t)snprintf(out + n, cap - n,
                          "{\"pageSize\":%d,\"totalPages\":%d,"
                          "\"currentPage\":%zu,\"results\":[",
                          page_size, total_pages, slot + 1);
  else
    n += (size_t)snprintf(out + n, cap - n, "{\"results\":[");
  for (int i = first; i < first + count; i++) {
    char when[32];
    time_t t = (time_t)(items_base + 60.0 * i);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    char guid[40];
    if (dashed)
      snprintf(guid, sizeof(guid), "C0000000-0000-0000-0000-%012d", i);
    else
      snprintf(guid, sizeof(guid), "c%031d", i);
    n += (size_t)snprintf(
        out + n, cap - n,
        "%s{\"serviceGuid\":\"%s\",\"serviceStatusChangeGuid\":\"%s\","
        "\"status\":\"%s\",\"changedOn\":\"%s\",\"changedByUserGuid\":"
        "\"99999999999999999999999999999999\"}",
        i > first ? "," : "", SVC, guid, states[i % NSTATES], when);
  }
  snprintf(out + n, cap - n, "]}");
  assert_true(n + 2 < cap);
  pages[slot] = out;
  if (pages_num < slot + 1)
    pages_num = slot + 1;
}

/* expect_counts adds the states of items [first, first + count). */
void expect_counts(uint64_t want[NSTATES], int first, int count) {
  for (int i = first; i < first + count; i++)
    want[i % NSTATES]++;
}

/* The fake sink: a store, the log, and the last "changes" batch. */
usage_store_t *store;
char log_text[65536];
size_t log_len;
unsigned changes_commits;
static double changes_values[NSTATES]; /* SVC's counters, -1 = absent */
size_t changes_samples;
double last_change_ts; /* -1 = absent */
char status_on[32];    /* the state set to 1 by "status:SVC" */

static void sink_log(void *ud, int level, const char *msg) {
  (void)ud;
  tu_log_add(log_text, sizeof(log_text), &log_len, level, msg);
}

static int sink_commit(void *ud, usage_batch_t *b) {
  (void)ud;
  if (strcmp(usage_batch_entity(b), "changes") == 0) {
    changes_commits++;
    changes_samples = usage_batch_size(b);
    last_change_ts = -1;
    for (size_t i = 0; i < NSTATES; i++)
      changes_values[i] = -1;
    for (size_t i = 0; i < usage_batch_size(b); i++) {
      const usage_sample_t *s = usage_batch_sample(b, i);
      if (strcmp(label(s, "service"), SVC) != 0)
        continue;
      if (s->family == FAM_CCC_SERVICE_LAST_STATUS_CHANGE)
        last_change_ts = s->value;
      if (s->family != FAM_CCC_STATUS_CHANGES)
        continue;
      for (size_t k = 0; k < NSTATES; k++)
        if (strcmp(label(s, "status"), states[k]) == 0)
          changes_values[k] = s->value;
    }
  }
  if (strcmp(usage_batch_entity(b), "status:" SVC) == 0)
    for (size_t i = 0; i < usage_batch_size(b); i++) {
      const usage_sample_t *s = usage_batch_sample(b, i);
      if (s->value == 1)
        snprintf(status_on, sizeof(status_on), "%s", label(s, "status"));
    }
  return usage_store_commit(store, b);
}

void sink_reset(void) {
  log_len = 0;
  log_text[0] = 0;
  changes_commits = 0;
  changes_samples = 0;
  status_on[0] = 0;
}

double fake_time = 1714600000; /* 2024-05-01T21:46:40Z */
static double fake_now(void) { return fake_time; }

usage_source_t *make_source(const opts_t *o) {
  usage_source_conf_t *c = calloc(1, sizeof(*c));
  c->name = strdup("acme");
  c->kind = USAGE_KIND_CCC;
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", server_port);
  c->http.url = strdup(url);
  c->http.bearer.value = strdup(TOKEN);
  c->http.verify_peer = c->http.verify_host = 1;
  c->http.timeout_ms = 5000;
  c->http.max_body = 1 << 20;
  c->max_concurrent = 1;
  c->kind_conf = usage_ccc_vendor.conf_create();
  usage_ccc_conf_t *cc = c->kind_conf;
  cc->status_changes = 1;
  if (o->page_size)
    cc->page_size = o->page_size;
  if (o->max_pages)
    cc->max_pages = o->max_pages;
  if (o->overlap >= 0)
    cc->overlap = o->overlap;
  if (o->state_file)
    cc->state_file = strdup(o->state_file);
  if (o->reseller) {
    cc->reseller = strdup(o->reseller);
  } else {
    cc->services = calloc(1, sizeof(*cc->services));
    memcpy(cc->services[0].guid, SVC, 33);
    cc->services_num = 1;
    if (o->user) {
      cc->services[0].users = calloc(1, sizeof(*cc->services[0].users));
      memcpy(cc->services[0].users[0], USR, 33);
      cc->services[0].users_num = 1;
    }
  }
  usage_sink_t sink = {.log = sink_log, .commit = sink_commit};
  usage_source_t *s = usage_source_create(c, &sink);
  assert_non_null(s);
  return s;
}

static double metric(const char *text, const char *series) {
  const char *p = strstr(text, series);
  if (p == NULL)
    return -1;
  return strtod(p + strlen(series), NULL);
}

double errors_of(const char *reason) {
  char *text = tu_store_text(store);
  char series[128];
  snprintf(series, sizeof(series),
           "usage_scrape_errors_total{source=\"acme\",reason=\"%s\"} ", reason);
  double v = metric(text, series);
  free(text);
  return v;
}

int source_up(void) {
  char *text = tu_store_text(store);
  double v = metric(text, "usage_source_up{source=\"acme\",kind=\"ccc\"} ");
  free(text);
  return (int)v;
}

void check_counts(const char *name, const uint64_t want[NSTATES]) {
  for (size_t k = 0; k < NSTATES; k++)
    if (changes_values[k] != (double)want[k])
      fail_msg("%s: %s counted %g, want %llu", name, states[k],
               changes_values[k], (unsigned long long)want[k]);
  char *text = tu_store_text(store);
  for (size_t k = 0; k < NSTATES; k++) {
    char series[256];
    snprintf(series, sizeof(series),
             "usage_ccc_status_changes_total{source=\"acme\",service=\"" SVC
             "\",status=\"%s\"} %llu\n",
             states[k], (unsigned long long)want[k]);
    tu_expect_line(text, series, 1);
  }
  free(text);
}

int setup(void **state) {
  (void)state;
  usage_now = fake_now;
  store = usage_store_create();
  sink_reset();
  return 0;
}

int teardown(void **state) {
  (void)state;
  usage_store_destroy(store);
  return 0;
}
