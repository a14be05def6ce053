/* SPDX-License-Identifier: MIT */
/* test_jasper: the Jasper error-code table, CycleStartDate dates, the
 * <Jasper> options, and whole scrapes against a canned HTTP server on
 * loopback (pagination, page cap, every error code, entities committed
 * whole). The parser over fixtures is in test_jasper_parse.c. */
#include "api/jasper/jasper.h"
#include "collectd_stubs.h"
#include "families.h"
#include "source.h"
#include "store.h"
#include "usage_conf.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "test_util.h"
#include <microhttpd.h>

/* collectd's logger, provided by the stubs (which capture the lines) */
void plugin_log(int level, const char *format, ...);

static char *read_fixture(const char *name, size_t *len) {
  char path[256];
  snprintf(path, sizeof(path), "jasper/%s", name);
  return tu_read_fixture(path, len);
}

/* ---- error codes and error bodies ----------------------------------- */

static const struct {
  const char *code;
  long http;
  const char *reason;
  int refusal;
  const char *text; /* substring of the explanation */
} error_cases[] = {
    {"10000001", 401, "auth", 0, "invalid credentials or IP address"},
    {"10000006", 400, "bad_request", 0, "pageSize"},
    {"10000007", 400, "bad_request", 0, "pageNumber"},
    {"10000012", 400, "bad_cycle_start_date", 0, "date format"},
    {"10000013", 404, "rate_plan_unknown", 1, "no such rate plan"},
    {"10000024", 400, "bad_request", 0, "apiVersion"},
    {"10000030", 400, "access_denied", 1, "role"},
    {"10000062", 400, "access_denied", 1, "access denied"},
    {"10000441", 400, "rate_plan_version", 1, "version"},
    {"10000442", 400, "rate_plan_ambiguous", 1, "RatePlan \"NAME\" 2"},
    {"10000443", 400, "bad_cycle_start_date", 0, "billing cycle"},
    {"20000058", 400, "rate_plan_shared", 1, "shared"},
    {"30000001", 500, "http_5xx", 0, "server error"},
    /* the catch-all code counts by the HTTP status it came with */
    {"30000001", 401, "auth", 0, "credentials were refused"},
    {"30000001", 403, "auth", 0, "credentials were refused"},
    {"30000001", 404, "http_4xx", 0, "not found"},
    {"30000001", 429, "rate_limited", 0, "rate limited by the vendor"},
    {"30000001", 400, "http_4xx", 0, "request refused"},
    {"30000001", 503, "http_5xx", 0, "server error"},
    {"30000003", 400, "bad_request", 0, "usage type"},
};
#define NERRORS (sizeof(error_cases) / sizeof(*error_cases))

static void test_error_table(void **state) {
  (void)state;
  for (size_t i = 0; i < NERRORS; i++) {
    const usage_jasper_error_t *e =
        usage_jasper_error_lookup(error_cases[i].code);
    if (e == NULL)
      fail_msg("code %s not in the table", error_cases[i].code);
    const char *text = NULL;
    const char *reason =
        usage_jasper_error_reason(e, error_cases[i].http, &text);
    if (strcmp(reason, error_cases[i].reason) != 0)
      fail_msg("code %s with HTTP %ld: reason %s, want %s", e->code,
               error_cases[i].http, reason, error_cases[i].reason);
    assert_int_equal(e->refusal, error_cases[i].refusal);
    if (strstr(text, error_cases[i].text) == NULL)
      fail_msg("code %s: \"%s\" lacks \"%s\"", e->code, text,
               error_cases[i].text);
  }
  assert_null(usage_jasper_error_lookup("99999999"));
  assert_null(usage_jasper_error_lookup(""));
  assert_null(usage_jasper_error_lookup(NULL));
}

static void test_dates(void **state) {
  (void)state;
  static const struct {
    const char *s;
    int ok;
  } cases[] = {{"2024-05-01", 1}, {"2024-02-29", 1},  {"2023-02-29", 0},
               {"2024-13-01", 0}, {"2024-04-31", 0},  {"2024-5-01", 0},
               {"20240501", 0},   {"2024-05-01T", 0}, {"", 0},
               {"1900-02-28", 0}, {"2000-02-29", 1}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
    if (usage_jasper_valid_date(cases[i].s) != cases[i].ok)
      fail_msg("date \"%s\": want %d", cases[i].s, cases[i].ok);
}

/* ---- configuration --------------------------------------------------- */

static void test_config(void **state) {
  (void)state;
  static const struct {
    const char *name;
    const char *conf;  /* inside <Jasper "iot"> */
    const char *error; /* NULL: accepted */
  } cases[] = {
      {"minimal", "RatePlan \"A\"\n", NULL},
      {"version as number and as text",
       "RatePlan \"A\" 2\nRatePlan \"C\" \"3\"\nRatePlan \"B\"\n", NULL},
      {"all options",
       "RatePlan \"A\"\nCycleStartDate \"2024-05-01\"\nUsageType \"sms\"\n"
       "PageSize 10\nMaxPages 5\nPerDevice true\nMaxDevices 0\n",
       NULL},
      {"no rate plan", "PerDevice true\n", "no RatePlan option"},
      {"rate plan twice", "RatePlan \"A\" 1\nRatePlan \"A\" 1\n",
       "configured twice"},
      {"one plan, two versions", "RatePlan \"A\" 1\nRatePlan \"A\" 2\n",
       "rate plan \"A\" is configured twice (version 1 and version 2)"},
      {"one plan, latest and pinned", "RatePlan \"A\"\nRatePlan \"A\" \"2\"\n",
       "(the most recent version and version 2)"},
      {"one plan, pinned and latest", "RatePlan \"A\" 2\nRatePlan \"A\"\n",
       "(version 2 and the most recent version)"},
      {"bad version", "RatePlan \"A\" 1.5\n", "whole number from 1"},
      {"bad version text", "RatePlan \"A\" \"v2\"\n", "whole number from 1"},
      {"empty name", "RatePlan \"\"\n", "expected the rate plan name"},
      {"bad date", "RatePlan \"A\"\nCycleStartDate \"2024-02-30\"\n",
       "option \"CycleStartDate\": \"2024-02-30\" is not a date"},
      {"bad usage type", "RatePlan \"A\"\nUsageType \"MMS\"\n",
       "expected DATA, SMS or VOICE"},
      {"page size too big", "RatePlan \"A\"\nPageSize 51\n",
       "option \"PageSize\": expected a whole number from 1 to 50"},
      {"page size zero", "RatePlan \"A\"\nPageSize 0\n", "from 1 to 50"},
      {"max pages", "RatePlan \"A\"\nMaxPages 2.5\n", "option \"MaxPages\""},
      {"dispatch per device",
       "RatePlan \"A\"\nPerDevice true\n"
       "DispatchPerDevice true\n",
       NULL},
      {"dispatch per device, not a boolean",
       "RatePlan \"A\"\nDispatchPerDevice \"both\"\n",
       "option \"DispatchPerDevice\""},
      {"unknown option", "RatePlan \"A\"\nRatePlans \"B\"\n",
       "option \"RatePlans\": unknown option"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char text[1024];
    snprintf(text, sizeof(text),
             "<Jasper \"iot\">\nURL \"http://127.0.0.1:1\"\nUser \"u\"\n"
             "Password \"k\"\n%s</Jasper>\n",
             cases[i].conf);
    oconfig_item_t *ci = oc_parse(text);
    assert_non_null(ci);
    usage_conf_t conf = {0};
    stub_log_reset();
    int rc = usage_config_parse(ci, &conf);
    if (cases[i].error == NULL) {
      if (rc != 0)
        fail_msg("%s: refused: %s", cases[i].name, stub_log_text());
    } else {
      if (rc == 0)
        fail_msg("%s: accepted", cases[i].name);
      if (strstr(stub_log_text(), cases[i].error) == NULL ||
          strstr(stub_log_text(), "Jasper \"iot\"") == NULL)
        fail_msg("%s: log \"%s\" lacks \"%s\"", cases[i].name, stub_log_text(),
                 cases[i].error);
    }
    usage_conf_clear(&conf);
    oc_free(ci);
  }
}

static usage_source_conf_t *parse_one(const char *inner) {
  char text[2048];
  snprintf(text, sizeof(text), "<Jasper \"iot\">\n%s</Jasper>\n", inner);
  oconfig_item_t *ci = oc_parse(text);
  assert_non_null(ci);
  usage_conf_t conf = {0};
  stub_log_reset();
  if (usage_config_parse(ci, &conf) != 0)
    fail_msg("refused: %s", stub_log_text());
  oc_free(ci);
  assert_int_equal(conf.sources_num, 1);
  usage_source_conf_t *src = conf.sources[0];
  conf.sources_num = 0;
  usage_conf_clear(&conf);
  return src;
}

static void test_config_defaults(void **state) {
  (void)state;
  usage_source_conf_t *src =
      parse_one("URL \"http://x\"\nUser \"u\"\nPassword \"k\"\n"
                "RatePlan \"A\" 2\nRatePlan \"B\"\n");
  usage_jasper_conf_t *c = src->kind_conf;
  assert_true(src->max_rps == 5.0);
  assert_int_equal(src->max_concurrent, 1);
  assert_int_equal(c->page_size, 50);
  assert_int_equal(c->max_pages, 10000);
  assert_int_equal(c->max_devices, 10000);
  assert_int_equal(c->per_device, 0);
  assert_int_equal(c->dispatch_per_device, -1);
  assert_int_equal(c->usage_type, USAGE_JASPER_ALL);
  assert_string_equal(c->cycle_start, "");
  assert_int_equal(c->plans_num, 2);
  assert_string_equal(c->plans[0].name, "A");
  assert_string_equal(c->plans[0].version, "2");
  assert_null(c->plans[1].version);
  usage_source_conf_free(src);

  src = parse_one("URL \"http://x\"\nUser \"u\"\nPassword \"k\"\n"
                  "RatePlan \"A\"\nMaxRequestsPerSecond 0\nUsageType \"Voice\""
                  "\nCycleStartDate \"2024-02-29\"\n");
  c = src->kind_conf;
  assert_true(src->max_rps == 0);
  assert_int_equal(c->usage_type, USAGE_JASPER_VOICE);
  assert_string_equal(c->cycle_start, "2024-02-29");
  usage_source_conf_free(src);
}

/* DispatchPerDevice: the per-device families go to collectd when it says
 * so; without it, only when there is no exporter to publish them. Zone and
 * rate plan families always do. The vendor table carries the rule. */
static void test_dispatched(void **state) {
  (void)state;
  static const struct {
    const char *conf;
    int exporter;
    int device; /* per-device families dispatched */
  } cases[] = {
      {"PerDevice true\n", 1, 0},
      {"PerDevice true\n", 0, 1},
      {"PerDevice true\nDispatchPerDevice true\n", 1, 1},
      {"PerDevice true\nDispatchPerDevice false\n", 1, 0},
      {"PerDevice true\nDispatchPerDevice false\n", 0, 0},
      {"PerDevice false\n", 1, 1}, /* nothing per device to leave out */
  };
  const usage_vendor_t *v = usage_vendor(USAGE_KIND_JASPER);
  assert_non_null(v->dispatched);
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char inner[512];
    snprintf(inner, sizeof(inner),
             "URL \"http://x\"\nUser \"u\"\nPassword \"k\"\nRatePlan \"A\"\n%s",
             cases[i].conf);
    usage_source_conf_t *src = parse_one(inner);
    for (int fam = 0; fam < FAM_COUNT; fam++) {
      int device = fam == FAM_JASPER_DEVICE_DATA_BYTES ||
                   fam == FAM_JASPER_DEVICE_SMS ||
                   fam == FAM_JASPER_DEVICE_VOICE_SECONDS;
      int want = device ? cases[i].device : 1;
      if (v->dispatched(src, fam, cases[i].exporter) != want)
        fail_msg("%s(exporter %d): %s: want %d", cases[i].conf,
                 cases[i].exporter, usage_families[fam].name, want);
    }
    usage_source_conf_free(src);
  }
}

static void test_config_needs_user(void **state) {
  (void)state;
  oconfig_item_t *ci =
      oc_parse("<Jasper \"iot\">\nURL \"http://x\"\nRatePlan \"A\"\n"
               "</Jasper>\n");
  usage_conf_t conf = {0};
  stub_log_reset();
  assert_int_not_equal(usage_config_parse(ci, &conf), 0);
  assert_non_null(strstr(stub_log_text(), "option \"User\": missing"));
  oc_free(ci);
}

/* ---- whole scrapes against a canned server --------------------------- */

typedef struct {
  long status;
  const char *ctype;
  const char *body; /* "@file" reads a fixture */
} canned_t;

static struct {
  canned_t pages[8]; /* by pageNumber (1-based); [0] answers any other */
  int requests;
  char last_query[1024];
} srv;

static enum MHD_Result handler(void *cls, struct MHD_Connection *con,
                               const char *url, const char *method,
                               const char *version, const char *upload,
                               size_t *upload_size, void **ptr) {
  if (tu_http_first_call(ptr))
    return MHD_YES;
  srv.requests++;
  tu_http_query(con, srv.last_query, sizeof(srv.last_query));
  const char *pn =
      MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "pageNumber");
  int page = pn ? atoi(pn) : 0;
  const canned_t *c = page > 0 && page < 8 && srv.pages[page].body
                          ? &srv.pages[page]
                          : &srv.pages[0];
  char *body;
  size_t len;
  if (c->body[0] == '@')
    body = read_fixture(c->body + 1, &len);
  else {
    body = strdup(c->body);
    len = strlen(body);
  }
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header(r, "Content-Type", c->ctype);
  enum MHD_Result ret = MHD_queue_response(con, (unsigned)c->status, r);
  MHD_destroy_response(r);
  return ret;
}

typedef struct {
  usage_batch_t *committed[8];
  int commits;
} capture_t;

static void cap_log(void *ud, int level, const char *msg) {
  (void)ud;
  plugin_log(level, "%s", msg);
}

static int cap_commit(void *ud, usage_batch_t *b) {
  capture_t *c = ud;
  if (strcmp(usage_batch_entity(b), "self") == 0 || c->commits >= 8) {
    usage_batch_destroy(b);
    return 0;
  }
  c->committed[c->commits++] = b;
  return 0;
}

static void capture_clear(capture_t *c) {
  for (int i = 0; i < c->commits; i++)
    usage_batch_destroy(c->committed[i]);
  c->commits = 0;
}

static int source_up(usage_source_t *s) {
  usage_source_status_t st;
  usage_source_get_status(s, &st);
  return st.up;
}

static uint64_t reason_count(usage_source_t *s, const char *reason) {
  return usage_source_reason_count(s, reason); /* UINT64_MAX: not published */
}

static struct MHD_Daemon *start_server(int *port) {
  unsigned p;
  struct MHD_Daemon *d = tu_http_start(handler, NULL, &p);
  *port = (int)p;
  return d;
}

static usage_source_t *make_source(int port, const char *extra,
                                   capture_t *cap) {
  char inner[1024];
  snprintf(inner, sizeof(inner),
           "URL \"http://127.0.0.1:%d\"\nUser \"u\"\nPassword \"k\"\n"
           "MaxRequestsPerSecond 0\nTimeout 5000\n%s",
           port, extra);
  usage_source_conf_t *src = parse_one(inner);
  usage_sink_t sink = {.log = cap_log, .commit = cap_commit, .ud = cap};
  usage_source_t *s = usage_source_create(src, &sink);
  assert_non_null(s);
  return s;
}

#define OK_LAST                                                                \
  "{\"accountId\":1,\"accountName\":\"A\",\"ratePlanVersion\":1,"              \
  "\"zones\":[{\"zone\":\"Z\",\"devices\":[{\"deviceId\":\"3\",\"usage\":"     \
  "{\"dataUsage\":30,\"smsMOUsage\":0,\"smsMTUsage\":0,\"voiceMOUsage\":0,"    \
  "\"voiceMTUsage\":0}}]}],\"lastPage\":true}"
#define OK_MORE                                                                \
  "{\"accountId\":1,\"accountName\":\"A\",\"ratePlanVersion\":1,"              \
  "\"zones\":[{\"zone\":\"Z\",\"devices\":[{\"deviceId\":\"1\",\"usage\":"     \
  "{\"dataUsage\":10}},{\"deviceId\":\"2\",\"usage\":{\"dataUsage\":20}}]}],"  \
  "\"lastPage\":false}"
#define OK_MORE_NOLAST                                                         \
  "{\"zones\":[{\"zone\":\"Z\",\"devices\":[{\"deviceId\":\"1\",\"usage\":"    \
  "{\"dataUsage\":10}},{\"deviceId\":\"2\",\"usage\":{\"dataUsage\":20}}]}]}"
#define OK_LAST_NOLAST                                                         \
  "{\"zones\":[{\"zone\":\"Z\",\"devices\":[{\"deviceId\":\"3\",\"usage\":"    \
  "{\"dataUsage\":30}}]}]}"
#define JSON "application/json"

static void test_scrape_paging(void **state) {
  (void)state;
  int port;
  struct MHD_Daemon *d = start_server(&port);
  static const struct {
    const char *name;
    const char *options;
    canned_t pages[4];
    int requests;
    int up;
    int committed;
    const char *reason; /* counted once, or NULL */
    const char *query;  /* substring of the last request's query */
    const char *sample; /* substring of the committed samples */
  } cases[] = {
      {"two pages",
       "RatePlan \"Monthly Pool/1\"\n",
       {{0}, {200, JSON, OK_MORE}, {200, JSON, OK_LAST}},
       2,
       1,
       1,
       NULL,
       "ratePlanName=Monthly Pool/1&pageNumber=2&pageSize=50",
       "usage_jasper_zone_data_bytes_total{rate_plan=\"Monthly Pool/1\","
       "zone=\"Z\"} 60\n"},
      {"lastPage missing: a short page ends the set",
       "RatePlan \"P\"\nPageSize 2\n",
       {{0}, {200, JSON, OK_MORE_NOLAST}, {200, JSON, OK_LAST_NOLAST}},
       2,
       1,
       1,
       NULL,
       "pageNumber=2&pageSize=2",
       "usage_jasper_zone_devices{rate_plan=\"P\",zone=\"Z\"} 3\n"},
      {"lastPage missing: a full page with an unusable entry is not the last",
       "RatePlan \"P\"\nPageSize 2\n",
       {{0},
        {200, JSON,
         "{\"zones\":[{\"zone\":\"Z\",\"devices\":[{\"usage\":{\"dataUsage\":"
         "5}},{\"deviceId\":\"1\",\"usage\":{\"dataUsage\":10}}]}]}"},
        {200, JSON, OK_MORE_NOLAST},
        {200, JSON, OK_LAST_NOLAST}},
       3,
       1,
       1,
       NULL,
       "pageNumber=3&pageSize=2",
       "usage_jasper_zone_data_bytes_total{rate_plan=\"P\",zone=\"Z\"} 65\n"},
      {"a sum past 2^64 - 1: the rate plan is refused, nothing committed",
       "RatePlan \"P\"\n",
       {{0},
        {200, JSON,
         "{\"zones\":[{\"zone\":\"Z\",\"devices\":[{\"deviceId\":\"1\","
         "\"usage\":{\"dataUsage\":18000000000000000000}},{\"deviceId\":"
         "\"2\",\"usage\":{\"dataUsage\":18000000000000000000}}]}],"
         "\"lastPage\":true}"}},
       1,
       0,
       0,
       "overflow",
       "pageNumber=1",
       NULL},
      {"page cap",
       "RatePlan \"P\"\nMaxPages 3\n",
       {{200, JSON, "{\"zones\":[],\"lastPage\":false}"}},
       3,
       0,
       0,
       "pagination",
       "pageNumber=3",
       NULL},
      {"second page fails (retried twice): nothing committed",
       "RatePlan \"P\"\n",
       {{500, JSON, "{\"errorCode\":\"30000001\",\"errorMessage\":\"x\"}"},
        {200, JSON, OK_MORE}},
       2 + USAGE_RETRY_MAX,
       0,
       0,
       "http_5xx",
       "pageNumber=2",
       NULL},
      {"wrong page number",
       "RatePlan \"P\"\n",
       {{200, JSON, "{\"pageNumber\":1,\"lastPage\":false}"}},
       2,
       0,
       0,
       "pagination",
       "pageNumber=2",
       NULL},
      {"options in the query, usageType DATA publishes data only",
       "RatePlan \"P\" 2\nCycleStartDate \"2024-05-01\"\nUsageType \"DATA\"\n"
       "PerDevice true\n",
       {{0}, {200, JSON, OK_MORE}, {200, JSON, OK_LAST}},
       2,
       1,
       1,
       NULL,
       "ratePlanName=P&ratePlanVersion=2&cycleStartDate=2024-05-01&usageType="
       "DATA&pageNumber=2",
       "usage_jasper_device_data_bytes_total{rate_plan=\"P\",zone=\"Z\","
       "iccid=\"3\"} 30\n"},
      {"HTML error page (retried twice)",
       "RatePlan \"P\"\n",
       {{502, "text/html", "@error_html.html"}},
       1 + USAGE_RETRY_MAX,
       0,
       0,
       "http_5xx",
       "pageNumber=1",
       NULL},
      {"Latin-1 error body",
       "RatePlan \"P\"\n",
       {{400, "application/json; charset=ISO-8859-1", "@error_latin1.json"}},
       1,
       0,
       0,
       "http_4xx", /* the catch-all code counts by the status */
       "pageNumber=1",
       NULL},
      {"unparseable 200",
       "RatePlan \"P\"\n",
       {{200, JSON, "{\"zones\":[{"}},
       1,
       0,
       0,
       "parse",
       "pageNumber=1",
       NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    memset(&srv, 0, sizeof(srv));
    memcpy(srv.pages, cases[i].pages, sizeof(cases[i].pages));
    capture_t cap = {0};
    usage_source_t *s = make_source(port, cases[i].options, &cap);
    stub_log_reset();
    usage_source_read(s);
    if (srv.requests != cases[i].requests)
      fail_msg("%s: %d requests, want %d (%s)", cases[i].name, srv.requests,
               cases[i].requests, stub_log_text());
    if (source_up(s) != cases[i].up)
      fail_msg("%s: up %d (%s)", cases[i].name, source_up(s), stub_log_text());
    assert_int_equal(cap.commits, cases[i].committed);
    if (strstr(srv.last_query, cases[i].query) == NULL)
      fail_msg("%s: query %s", cases[i].name, srv.last_query);
    if (cases[i].reason != NULL)
      assert_int_equal(reason_count(s, cases[i].reason), 1);
    if (cases[i].sample != NULL) {
      char *got = tu_batch_lines(cap.committed[0]);
      if (strstr(got, cases[i].sample) == NULL)
        fail_msg("%s: samples\n%s", cases[i].name, got);
      if (strstr(cases[i].name, "usageType DATA") &&
          (strstr(got, "sms") || strstr(got, "voice")))
        fail_msg("%s: other usage types published\n%s", cases[i].name, got);
      free(got);
    }
    /* never a credential in a log line */
    assert_null(strstr(stub_log_text(), "Password"));
    assert_null(strstr(stub_log_text(), "dTpr")); /* base64 of "u:k" */
    capture_clear(&cap);
    usage_source_destroy(s);
  }
  MHD_stop_daemon(d);
}

#define CYCLE_PAGE(cycle, d1, d2)                                              \
  "{\"cycleStartDate\":\"" cycle                                               \
  "\",\"zones\":[{\"zone\":\"Z\",\"devices\":[{"                               \
  "\"deviceId\":\"1\",\"usage\":{\"dataUsage\":" d1 "}},{\"deviceId\":\"2\","  \
  "\"usage\":{\"dataUsage\":" d2 "}}]}],\"lastPage\":true}"

/* Whole scrapes: a lower sum inside the cycle the answer names keeps the
 * published figures (counted as decrease_held, source up); a new cycle
 * publishes the lower ones. */
static void test_scrape_hold(void **state) {
  (void)state;
  int port;
  struct MHD_Daemon *d = start_server(&port);
  static const struct {
    const char *body;
    const char *zone, *device2; /* published figures */
    uint64_t held;              /* decrease_held so far */
  } steps[] = {
      {CYCLE_PAGE("2024-05-01Z", "100", "50"), "150", "50", 0},
      {CYCLE_PAGE("2024-05-01Z", "100", "20"), "150", "50", 1},
      {CYCLE_PAGE("2024-05-01Z", "110", "60"), "170", "60", 1},
      {CYCLE_PAGE("2024-06-01Z", "1", "2"), "3", "2", 1},
  };
  memset(&srv, 0, sizeof(srv));
  capture_t cap = {0};
  usage_source_t *s =
      make_source(port, "RatePlan \"P\"\nPerDevice true\n", &cap);
  for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
    srv.pages[0] = (canned_t){200, JSON, steps[i].body};
    stub_log_reset();
    usage_source_read(s);
    assert_int_equal(cap.commits, 1);
    assert_int_equal(source_up(s), 1);
    char *got = tu_batch_lines(cap.committed[0]);
    char want[256];
    snprintf(want, sizeof(want),
             "usage_jasper_zone_data_bytes_total{rate_plan=\"P\",zone=\"Z\"} "
             "%s\n",
             steps[i].zone);
    if (strstr(got, want) == NULL)
      fail_msg("step %zu: want %s in\n%s", i, want, got);
    snprintf(want, sizeof(want),
             "usage_jasper_device_data_bytes_total{rate_plan=\"P\",zone=\"Z\","
             "iccid=\"2\"} %s\n",
             steps[i].device2);
    if (strstr(got, want) == NULL)
      fail_msg("step %zu: want %s in\n%s", i, want, got);
    free(got);
    assert_int_equal(reason_count(s, "decrease_held"), steps[i].held);
    if (i == 1 && strstr(stub_log_text(), "kept") == NULL)
      fail_msg("step 1: log %s", stub_log_text());
    capture_clear(&cap);
  }
  usage_source_destroy(s);
  MHD_stop_daemon(d);
}

/* Every documented error code: its reason, whether the source stays up,
 * a log line naming the rate plan, and the last figures untouched. */
static void test_scrape_errors(void **state) {
  (void)state;
  int port;
  struct MHD_Daemon *d = start_server(&port);
  for (size_t i = 0; i < NERRORS; i++) {
    char body[256];
    snprintf(body, sizeof(body),
             "{\"errorMessage\":\"message %zu\",\"errorCode\":\"%s\"}", i,
             error_cases[i].code);
    memset(&srv, 0, sizeof(srv));
    srv.pages[0] = (canned_t){error_cases[i].http, JSON, body};
    capture_t cap = {0};
    usage_source_t *s = make_source(port, "RatePlan \"P\"\n", &cap);
    /* every reason is published before it happens */
    assert_int_equal(reason_count(s, error_cases[i].reason), 0);
    stub_log_reset();
    usage_source_read(s);
    assert_int_equal(cap.commits, 0);
    assert_int_equal(reason_count(s, error_cases[i].reason), 1);
    if (source_up(s) != error_cases[i].refusal)
      fail_msg("code %s: up %d", error_cases[i].code, source_up(s));
    const char *log = stub_log_text();
    if (strstr(log, "rate plan \"P\"") == NULL ||
        strstr(log, error_cases[i].code) == NULL ||
        strstr(log, error_cases[i].text) == NULL)
      fail_msg("code %s: log %s", error_cases[i].code, log);
    /* a 429 says when the rate plan is asked for again */
    if ((error_cases[i].http == 429) !=
        (strstr(log, "; next attempt at the next scrape") != NULL))
      fail_msg("code %s, HTTP %ld: log %s", error_cases[i].code,
               error_cases[i].http, log);
    /* the catch-all code is no unknown server error with 401, 404, 429 */
    if (error_cases[i].http < 500 &&
        strstr(log, "unknown server error") != NULL)
      fail_msg("code %s, HTTP %ld: log %s", error_cases[i].code,
               error_cases[i].http, log);
    usage_source_destroy(s);
  }
  MHD_stop_daemon(d);
}

/* A scrape that cannot finish within its interval at the configured rate
 * is warned about once, after the first scrape, with the arithmetic. */
static void test_interval_warning(void **state) {
  (void)state;
  int port;
  struct MHD_Daemon *d = start_server(&port);
  memset(&srv, 0, sizeof(srv));
  srv.pages[1] = (canned_t){200, JSON, OK_MORE};
  srv.pages[2] = (canned_t){200, JSON, OK_LAST};
  capture_t cap = {0};
  usage_source_t *s =
      make_source(port,
                  "RatePlan \"P\"\nMaxRequestsPerSecond 20\nInterval 0.05\n"
                  "ScrapeTimeout 2\n",
                  &cap);
  stub_log_reset();
  usage_source_read(s);
  assert_int_equal(srv.requests, 2);
  const char *want = "a scrape needs 2 requests; at MaxRequestsPerSecond 20 "
                     "(with its safety margin) that takes at least 0.12 s, "
                     "longer than the interval of 0.05 s.";
  if (strstr(stub_log_text(), want) == NULL)
    fail_msg("log: %s", stub_log_text());
  assert_int_equal(stub_log_count(USAGE_LOG_WARNING), 1);
  stub_log_reset();
  usage_source_read(s);
  assert_int_equal(srv.requests, 4);
  assert_int_equal(stub_log_count(USAGE_LOG_WARNING), 0); /* once */
  assert_int_equal(cap.commits, 2);
  capture_clear(&cap);
  usage_source_destroy(s);

  /* within the interval: no warning */
  memset(&srv, 0, sizeof(srv));
  srv.pages[0] = (canned_t){200, JSON, OK_LAST};
  s = make_source(port, "RatePlan \"P\"\nMaxRequestsPerSecond 20\nInterval 5\n",
                  &cap);
  stub_log_reset();
  usage_source_read(s);
  assert_int_equal(stub_log_count(USAGE_LOG_WARNING), 0);
  capture_clear(&cap);
  usage_source_destroy(s);
  MHD_stop_daemon(d);
}

int main(void) {
  usage_backoff_base = 0.01; /* retries after 5xx come fast */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_table),
      cmocka_unit_test(test_dates),
      cmocka_unit_test(test_config),
      cmocka_unit_test(test_config_defaults),
      cmocka_unit_test(test_dispatched),
      cmocka_unit_test(test_config_needs_user),
      cmocka_unit_test(test_scrape_paging),
      cmocka_unit_test(test_scrape_errors),
      cmocka_unit_test(test_scrape_hold),
      cmocka_unit_test(test_interval_warning),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
