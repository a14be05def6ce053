/* SPDX-License-Identifier: MIT */
/* test_dispatch: the collectd identifier mapping of committed samples
 * (src/dispatch.c) against the stub plugin_dispatch_values. */
#include "collectd.h"
#include "plugin.h"

#include "collectd_stubs.h"
#include "dispatch.h"
#include "families.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* dispatch: a batch through a dispatcher of its own (nothing kept from an
 * earlier commit), interval 300 s. */
static int dispatch(const usage_batch_t *b) {
  usage_dispatch_t *d = usage_dispatch_create(TIME_T_TO_CDTIME_T(300), NULL);
  assert_non_null(d);
  int failed = usage_dispatch_batch(d, b);
  usage_dispatch_destroy(d);
  return failed;
}

/* commit: b (taken) through d as one commit, the stub's value lists
 * forgotten first; the failed count. */
static int commit(usage_dispatch_t *d, usage_batch_t *b) {
  stub_values_reset();
  int failed = usage_dispatch_batch(d, b);
  usage_batch_destroy(b);
  return failed;
}

static void test_mapping(void **state) {
  static const struct {
    const char *name;
    int family;
    double value;
    const char *labels[4]; /* up to two pairs */
    const char *type, *type_instance;
    int derive;
    double gauge;
    long long derived;
    const char *meta;
  } cases[] = {
      {"gauge with a label",
       FAM_CCC_SERVICE_USERS,
       1250,
       {"service", "abc"},
       "users",
       "ccc_service_users-abc",
       0,
       1250,
       0,
       "label:service=abc;"},
      {"two labels",
       FAM_CCC_SERVICE_FEATURE_USAGE,
       3,
       {"service", "abc", "feature", "secure_forms"},
       "count",
       "ccc_service_feature_usage-abc-secure_forms",
       0,
       3,
       0,
       "label:service=abc;label:feature=secure_forms;"},
      {"counter of a derive type",
       FAM_SCRAPE_REQUESTS,
       12,
       {"code", "200"},
       "total_requests",
       "scrape_requests-200",
       1,
       0,
       12,
       "label:code=200;"},
      {"derive rounds",
       FAM_SCRAPE_ERRORS,
       2.6,
       {"reason", "http_5xx"},
       "derive",
       "scrape_errors-http_5xx",
       1,
       0,
       3,
       "label:reason=http_5xx;"},
      {"total_bytes counter",
       FAM_BILLING_DATA_BYTES,
       1e12,
       {"customer_id", "7"},
       "total_bytes",
       "billing_data_bytes-7",
       1,
       0,
       1000000000000LL,
       "label:customer_id=7;"},
      {"counter of a gauge type",
       FAM_BILLING_SELL_PRICE,
       1.25,
       {"customer_id", "7"},
       "gauge",
       "billing_sell_price-7",
       0,
       1.25,
       0,
       "label:customer_id=7;"},
      {"no labels",
       FAM_SCRAPE_DURATION,
       0.5,
       {NULL},
       "duration",
       "scrape_duration_seconds",
       0,
       0.5,
       0,
       ""},
      {"timestamp",
       FAM_LAST_SUCCESS,
       1714564800,
       {NULL},
       "timestamp",
       "last_success_timestamp_seconds",
       0,
       1714564800,
       0,
       ""},
      {"slash and control characters",
       FAM_CCC_SERVICE_INFO,
       1,
       {"name", "a/b\nc"},
       "gauge",
       "ccc_service_info-a_b_c",
       0,
       1,
       0,
       "label:name=a/b\nc;"},
      {"empty label value",
       FAM_SOURCE_UP,
       1,
       {"kind", ""},
       "gauge",
       "source_up-",
       0,
       1,
       0,
       "label:kind=;"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_batch_t *b = usage_batch_create("acme", "e");
    unsigned n = 0;
    while (n < 2 && cases[i].labels[2 * n] != NULL)
      n++;
    assert_int_equal(usage_batch_addv(b, cases[i].family, cases[i].value, n,
                                      cases[i].labels),
                     0);
    stub_values_reset();
    assert_int_equal(dispatch(b), 0);
    usage_batch_destroy(b);
    if (stub_values_num() != 1)
      fail_msg("%s: %zu value lists", cases[i].name, stub_values_num());
    const stub_vl_t *v = stub_value(0);
    assert_string_equal(v->host, "stubhost");
    assert_string_equal(v->plugin, "usage");
    assert_string_equal(v->plugin_instance, "acme");
    if (strcmp(v->type, cases[i].type) != 0 ||
        strcmp(v->type_instance, cases[i].type_instance) != 0)
      fail_msg("%s: %s/%s, want %s/%s", cases[i].name, v->type,
               v->type_instance, cases[i].type, cases[i].type_instance);
    assert_int_equal(v->values_len, 1);
    assert_true(v->interval == 300); /* the source's, given by the caller */
    if (cases[i].derive && v->derive != cases[i].derived)
      fail_msg("%s: derive %lld, want %lld", cases[i].name, v->derive,
               cases[i].derived);
    if (!cases[i].derive && v->gauge != cases[i].gauge)
      fail_msg("%s: gauge %g, want %g", cases[i].name, v->gauge,
               cases[i].gauge);
    assert_string_equal(v->meta, cases[i].meta);
  }
}

static void test_no_source(void **state) {
  (void)state;
  usage_batch_t *b = usage_batch_create("", "build");
  usage_batch_add(b, FAM_EXPORTER_BUILD_INFO, 1, "version", "1.0", NULL);
  stub_values_reset();
  assert_int_equal(dispatch(b), 0);
  assert_int_equal(stub_values_num(), 0);
  usage_batch_destroy(b);
}

static void test_long_identifier(void **state) {
  (void)state;
  char a[200], c[200];
  memset(a, 'x', 150);
  a[150] = 0;
  memcpy(c, a, 151);
  c[149] = 'y'; /* differs only past what fits */
  usage_batch_t *b = usage_batch_create("acme", "e");
  usage_batch_add(b, FAM_CCC_USER_INFO, 1, "user", a, NULL);
  usage_batch_add(b, FAM_CCC_USER_INFO, 1, "user", c, NULL);
  usage_batch_add(b, FAM_CCC_USER_INFO, 1, "user", a, NULL);
  stub_values_reset();
  assert_int_equal(dispatch(b), 0);
  assert_int_equal(stub_values_num(), 3);
  const char *t0 = stub_value(0)->type_instance;
  const char *t1 = stub_value(1)->type_instance;
  const char *t2 = stub_value(2)->type_instance;
  assert_true(strlen(t0) < DATA_MAX_NAME_LEN);
  assert_int_equal(strlen(t0), DATA_MAX_NAME_LEN - 1);
  if (strncmp(t0, "ccc_user_info-xxxx", 18) != 0)
    fail_msg("type instance %s", t0);
  const char *tilde = strrchr(t0, '~');
  assert_non_null(tilde);
  assert_int_equal(strlen(tilde), 9); /* ~ and 8 hex digits */
  assert_string_not_equal(t0, t1);    /* the hash tells them apart */
  assert_string_equal(t0, t2);        /* and is stable */

  /* the function itself, into a small buffer */
  char out[32];
  usage_dispatch_type_instance(usage_batch_sample(b, 0), out, sizeof(out));
  assert_int_equal(strlen(out), 31);
  assert_int_equal(strncmp(out, "ccc_user_info-xxxxxxxx~", 23), 0);
  usage_batch_destroy(b);

  /* exactly fitting: no hash */
  char fit[128];
  size_t stem = strlen("ccc_user_info-");
  memset(fit, 'z', DATA_MAX_NAME_LEN - 1 - stem);
  fit[DATA_MAX_NAME_LEN - 1 - stem] = 0;
  b = usage_batch_create("acme", "e");
  usage_batch_add(b, FAM_CCC_USER_INFO, 1, "user", fit, NULL);
  stub_values_reset();
  dispatch(b);
  assert_null(strchr(stub_value(0)->type_instance, '~'));
  assert_int_equal(strlen(stub_value(0)->type_instance), DATA_MAX_NAME_LEN - 1);
  usage_batch_destroy(b);
}

static void test_failures_counted(void **state) {
  (void)state;
  usage_batch_t *b = usage_batch_create("acme", "e");
  usage_batch_add(b, FAM_SOURCE_UP, 1, "kind", "ccc", NULL);
  usage_batch_add(b, FAM_SCRAPE_DURATION, 1, NULL);
  stub_values_reset();
  stub_dispatch_fail(1);
  assert_int_equal(dispatch(b), 2);
  stub_dispatch_fail(0);
  usage_batch_destroy(b);
}

/* A DERIVE value with no int64 (NaN, infinite, 2^63 and above, below
 * -2^63) is skipped, never wrapped: one log line names the series; the
 * next ones within the hour are throttled. Gauges still carry any value. */
static void test_derive_out_of_range(void **state) {
  static const struct {
    const char *name;
    double value;
  } bad[] = {
      {"2^63", 9223372036854775808.0},
      {"1e19", 1e19},
      {"NaN", NAN},
      {"+Inf", INFINITY},
      {"-Inf", -INFINITY},
      {"below -2^63", -1e19},
  };
  (void)state;
  stub_log_reset();
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    usage_batch_t *b = usage_batch_create("acme", "e");
    usage_batch_add(b, FAM_BILLING_DATA_BYTES, bad[i].value, "customer_id", "7",
                    NULL);
    usage_batch_add(b, FAM_BILLING_RECORDS, 5, "customer_id", "7", NULL);
    usage_batch_add(b, FAM_BILLING_SELL_PRICE, bad[i].value, "customer_id", "7",
                    NULL); /* a gauge: dispatched as it is */
    stub_values_reset();
    int failed = dispatch(b);
    usage_batch_destroy(b);
    if (failed != 1 || stub_values_num() != 2)
      fail_msg("%s: %d skipped, %zu dispatched", bad[i].name, failed,
               stub_values_num());
    for (size_t k = 0; k < stub_values_num(); k++)
      if (strncmp(stub_value(k)->type_instance, "billing_data_bytes", 18) == 0)
        fail_msg("%s: dispatched as %lld", bad[i].name, stub_value(k)->derive);
    assert_int_equal(stub_value(0)->derive, 5);
  }
  /* one line for all of them, naming the first series */
  assert_int_equal(stub_log_count(-1), 1);
  if (strstr(stub_log_text(), "usage-acme/total_bytes-billing_data_bytes-7") ==
      NULL)
    fail_msg("log: %s", stub_log_text());

  /* the largest double below 2^63 is still a DERIVE */
  usage_batch_t *b = usage_batch_create("acme", "e");
  usage_batch_add(b, FAM_BILLING_DATA_BYTES, 9223372036854774784.0,
                  "customer_id", "7", NULL);
  stub_values_reset();
  assert_int_equal(dispatch(b), 0);
  assert_int_equal(stub_values_num(), 1);
  assert_true(stub_value(0)->derive == 9223372036854774784LL);
  usage_batch_destroy(b);
}

/* Every family maps to a stock types.db type. */
static void test_every_family_type(void **state) {
  static const char *const stock[] = {
      "gauge",       "users",     "count",    "bytes",         "derive",
      "total_bytes", "timestamp", "duration", "total_requests"};
  (void)state;
  for (int fam = 0; fam < FAM_COUNT; fam++) {
    int ok = 0;
    for (size_t k = 0; k < sizeof(stock) / sizeof(*stock); k++)
      ok |= strcmp(usage_families[fam].ds_type, stock[k]) == 0;
    if (!ok)
      fail_msg("%s: type %s", usage_families[fam].name,
               usage_families[fam].ds_type);
  }
}

/* find: the value list dispatched with type instance ti, or NULL. */
static const stub_vl_t *find(const char *ti) {
  for (size_t i = 0; i < stub_values_num(); i++)
    if (strcmp(stub_value(i)->type_instance, ti) == 0)
      return stub_value(i);
  return NULL;
}

/* A dispatcher keeps each series' type instance and meta data from one
 * commit of an entity to the next: values always come from the new
 * commit, a changed label is another series with its own meta data, a
 * series no longer committed is forgotten, and entities are apart. */
static void test_kept_across_commits(void **state) {
  (void)state;
  usage_dispatch_t *d = usage_dispatch_create(TIME_T_TO_CDTIME_T(60), NULL);
  assert_non_null(d);

  usage_batch_t *b = usage_batch_create("acme", "billing");
  usage_batch_add(b, FAM_BILLING_RECORDS, 10, "customer_id", "7", "call_class",
                  "DATA", NULL);
  usage_batch_add(b, FAM_BILLING_RECORDS, 20, "customer_id", "8", "call_class",
                  "DATA", NULL);
  usage_batch_add(b, FAM_BILLING_SELL_PRICE, 1.5, "customer_id", "7",
                  "call_class", "DATA", NULL);
  assert_int_equal(commit(d, b), 0);
  assert_int_equal(stub_values_num(), 3);
  assert_int_equal(usage_dispatch_kept(d), 3);
  assert_int_equal(find("billing_records-7-DATA")->derive, 10);
  assert_int_equal(find("billing_records-8-DATA")->derive, 20);
  assert_true(find("billing_records-8-DATA")->interval == 60);

  /* new values, one label changed (8 -> 9), the order changed */
  b = usage_batch_create("acme", "billing");
  usage_batch_add(b, FAM_BILLING_SELL_PRICE, 2.25, "customer_id", "7",
                  "call_class", "DATA", NULL);
  usage_batch_add(b, FAM_BILLING_RECORDS, 21, "customer_id", "9", "call_class",
                  "DATA", NULL);
  usage_batch_add(b, FAM_BILLING_RECORDS, 11, "customer_id", "7", "call_class",
                  "DATA", NULL);
  assert_int_equal(commit(d, b), 0);
  assert_int_equal(stub_values_num(), 3);
  assert_int_equal(usage_dispatch_kept(d), 3); /* 8 forgotten, 9 kept */
  const stub_vl_t *v = find("billing_records-7-DATA");
  assert_non_null(v);
  assert_int_equal(v->derive, 11);
  assert_string_equal(v->meta, "label:customer_id=7;label:call_class=DATA;");
  v = find("billing_records-9-DATA");
  assert_non_null(v);
  assert_int_equal(v->derive, 21);
  assert_string_equal(v->meta, "label:customer_id=9;label:call_class=DATA;");
  assert_null(find("billing_records-8-DATA"));
  v = find("billing_sell_price-7-DATA");
  assert_true(v->gauge == 2.25);
  assert_string_equal(v->type, "gauge");

  /* a label value that changes but keeps the type instance (an info
   * family is identified by its first label): fresh meta data */
  b = usage_batch_create("acme", "service:s1");
  usage_batch_add(b, FAM_CCC_SERVICE_INFO, 1, "service", "s1", "name", "Old",
                  NULL);
  commit(d, b);
  assert_string_equal(stub_value(0)->meta, "label:service=s1;label:name=Old;");
  b = usage_batch_create("acme", "service:s1");
  usage_batch_add(b, FAM_CCC_SERVICE_INFO, 1, "service", "s1", "name", "New",
                  NULL);
  commit(d, b);
  assert_string_equal(stub_value(0)->type_instance, "ccc_service_info-s1");
  assert_string_equal(stub_value(0)->meta, "label:service=s1;label:name=New;");
  assert_int_equal(usage_dispatch_kept(d), 4); /* 3 billing, 1 service */

  /* a label name that changes, same values: another series too */
  b = usage_batch_create("acme", "service:s1");
  usage_batch_add(b, FAM_CCC_SERVICE_INFO, 1, "service", "s1", "code", "New",
                  NULL);
  commit(d, b);
  assert_string_equal(stub_value(0)->meta, "label:service=s1;label:code=New;");

  /* the same series twice in one commit: two value lists, one kept */
  b = usage_batch_create("acme", "billing");
  usage_batch_add(b, FAM_BILLING_RECORDS, 1, "customer_id", "7", "call_class",
                  "DATA", NULL);
  usage_batch_add(b, FAM_BILLING_RECORDS, 2, "customer_id", "7", "call_class",
                  "DATA", NULL);
  assert_int_equal(commit(d, b), 0);
  assert_int_equal(stub_values_num(), 2);
  assert_int_equal(stub_value(0)->derive, 1);
  assert_int_equal(stub_value(1)->derive, 2);
  assert_string_equal(stub_value(1)->type_instance, "billing_records-7-DATA");
  assert_int_equal(usage_dispatch_kept(d), 2);

  /* an empty commit forgets the entity's series */
  b = usage_batch_create("acme", "billing");
  assert_int_equal(commit(d, b), 0);
  assert_int_equal(stub_values_num(), 0);
  assert_int_equal(usage_dispatch_kept(d), 1);
  usage_dispatch_destroy(d);
}

/* DispatchMetaData false: the same value lists without meta data, kept or
 * not. */
static void test_no_meta_data(void **state) {
  (void)state;
  usage_dispatch_t *d = usage_dispatch_create(TIME_T_TO_CDTIME_T(60), NULL);
  usage_dispatch_set_meta_data(d, 0);
  for (int round = 0; round < 2; round++) {
    usage_batch_t *b = usage_batch_create("acme", "billing");
    usage_batch_add(b, FAM_BILLING_RECORDS, 10 + round, "customer_id", "7",
                    NULL);
    assert_int_equal(commit(d, b), 0);
    assert_int_equal(stub_values_num(), 1);
    assert_string_equal(stub_value(0)->type_instance, "billing_records-7");
    assert_int_equal(stub_value(0)->derive, 10 + round);
    assert_string_equal(stub_value(0)->meta, "");
    assert_int_equal(stub_value(0)->has_meta, 0);
  }
  assert_int_equal(usage_dispatch_kept(d), 1);
  usage_dispatch_destroy(d);
}

/* With meta data on, a series without labels (besides the source) goes
 * without a meta data object: collectd's JSON writers would print an empty
 * one as '"meta":}'. */
static void test_meta_data_only_with_labels(void **state) {
  (void)state;
  usage_dispatch_t *d = usage_dispatch_create(TIME_T_TO_CDTIME_T(60), NULL);
  for (int round = 0; round < 2; round++) { /* new, then kept series */
    usage_batch_t *b = usage_batch_create("acme", "billing");
    usage_batch_add(b, FAM_BILLING_OVERFLOW_RECORDS, 0, NULL);
    usage_batch_add(b, FAM_BILLING_RECORDS, 3, "customer_id", "7", NULL);
    assert_int_equal(commit(d, b), 0);
    assert_int_equal(stub_values_num(), 2);
    const stub_vl_t *v = find("billing_overflow_records");
    assert_non_null(v);
    assert_int_equal(v->has_meta, 0);
    v = find("billing_records-7");
    assert_non_null(v);
    assert_int_equal(v->has_meta, 1);
    assert_string_equal(v->meta, "label:customer_id=7;");
  }
  usage_dispatch_destroy(d);
}

/* A failed dispatch is counted every time, kept series or not. */
static void test_kept_failures(void **state) {
  (void)state;
  usage_dispatch_t *d = usage_dispatch_create(TIME_T_TO_CDTIME_T(60), NULL);
  for (int round = 0; round < 3; round++) {
    usage_batch_t *b = usage_batch_create("acme", "e");
    usage_batch_add(b, FAM_SOURCE_UP, 1, "kind", "ccc", NULL);
    usage_batch_add(b, FAM_BILLING_DATA_BYTES, round == 1 ? NAN : 5,
                    "customer_id", "7", NULL);
    stub_values_reset();
    stub_dispatch_fail(round == 2);
    int failed = usage_dispatch_batch(d, b);
    stub_dispatch_fail(0);
    usage_batch_destroy(b);
    assert_int_equal(failed, round == 0 ? 0 : round == 1 ? 1 : 2);
    assert_int_equal(usage_dispatch_kept(d), 2);
  }
  usage_dispatch_destroy(d);
}

/* Skipped families (the per-device ones left to the exporter) are not
 * dispatched nor kept; the zone series of the same commit are. An entity
 * above USAGE_DISPATCH_KEEP_MAX samples is dispatched without being kept. */
static void test_skip_and_large(void **state) {
  (void)state;
  unsigned char skip[FAM_COUNT] = {0};
  skip[FAM_JASPER_DEVICE_DATA_BYTES] = 1;
  skip[FAM_JASPER_DEVICE_SMS] = 1;
  skip[FAM_JASPER_DEVICE_VOICE_SECONDS] = 1;
  usage_dispatch_t *d = usage_dispatch_create(TIME_T_TO_CDTIME_T(900), skip);
  usage_batch_t *b = usage_batch_create("iot", "plan:P");
  usage_batch_add(b, FAM_JASPER_ZONE_DATA_BYTES, 3000, "rate_plan", "P", "zone",
                  "Zone A", NULL);
  char iccid[32];
  for (int i = 0; i < USAGE_DISPATCH_KEEP_MAX; i++) {
    snprintf(iccid, sizeof(iccid), "8988%015d", i);
    usage_batch_add(b, FAM_JASPER_DEVICE_DATA_BYTES, i, "rate_plan", "P",
                    "zone", "Zone A", "iccid", iccid, NULL);
  }
  usage_batch_add(b, FAM_JASPER_ZONE_SMS, 4, "rate_plan", "P", "zone", "Zone A",
                  "direction", "mo", NULL);
  assert_int_equal(commit(d, b), 0);
  assert_int_equal(stub_values_num(), 2);
  assert_int_equal(find("jasper_zone_data_bytes-P-Zone A")->derive, 3000);
  assert_int_equal(find("jasper_zone_sms-P-Zone A-mo")->derive, 4);
  assert_int_equal(usage_dispatch_kept(d), 0); /* too large to keep */

  b = usage_batch_create("iot", "plan:P");
  usage_batch_add(b, FAM_JASPER_ZONE_DATA_BYTES, 3100, "rate_plan", "P", "zone",
                  "Zone A", NULL);
  usage_batch_add(b, FAM_JASPER_DEVICE_DATA_BYTES, 7, "rate_plan", "P", "zone",
                  "Zone A", "iccid", "89880000000000000001", NULL);
  assert_int_equal(commit(d, b), 0);
  assert_int_equal(stub_values_num(), 1);
  assert_int_equal(stub_value(0)->derive, 3100);
  assert_int_equal(usage_dispatch_kept(d), 1);
  usage_dispatch_destroy(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mapping),
      cmocka_unit_test(test_no_source),
      cmocka_unit_test(test_long_identifier),
      cmocka_unit_test(test_failures_counted),
      cmocka_unit_test(test_every_family_type),
      cmocka_unit_test(test_derive_out_of_range),
      cmocka_unit_test(test_kept_across_commits),
      cmocka_unit_test(test_kept_failures),
      cmocka_unit_test(test_no_meta_data),
      cmocka_unit_test(test_meta_data_only_with_labels),
      cmocka_unit_test(test_skip_and_large),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
