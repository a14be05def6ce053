/* SPDX-License-Identifier: MIT */
/* test_billing: the billing parser and aggregator: golden pages (the spec
 * sample among them), filter and unit validation, exactly-once counting
 * across overlapping windows, MaxSeries, the state body, and pages that
 * must not commit anything. */
#include "api/billing/billing.h"
#include "families.h"
#include "statefile.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* 2024-05-01T12:00:00Z */
#define T0 1714564800LL

static char *slurp(const char *name, size_t *len) {
  char path[512];
  snprintf(path, sizeof(path), "%s/billing/%s", FIXTURES, name);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  char *buf = malloc(1 << 20);
  assert_non_null(buf);
  size_t n = fread(buf, 1, (1 << 20) - 1, f);
  fclose(f);
  buf[n] = 0;
  if (len)
    *len = n;
  return buf;
}

static int cmp_lines(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* render prints the committed samples, one sorted line each. */
static char *render(const usage_billing_t *b) {
  usage_batch_t *batch = usage_batch_create("t", "billing");
  assert_int_equal(usage_billing_samples(b, batch), 0);
  size_t n = usage_batch_size(batch);
  char **lines = calloc(n, sizeof(*lines));
  for (size_t i = 0; i < n; i++) {
    const usage_sample_t *s = usage_batch_sample(batch, i);
    char buf[1024];
    size_t k = (size_t)snprintf(buf, sizeof(buf), "%s{",
                                usage_families[s->family].name);
    for (unsigned l = 0; l < s->nlabels; l++)
      k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s%s=\"%s\"",
                            l ? "," : "", s->labels[2 * l],
                            s->labels[2 * l + 1]);
    snprintf(buf + k, sizeof(buf) - k, "} %.10g\n", s->value);
    lines[i] = strdup(buf);
  }
  qsort(lines, n, sizeof(*lines), cmp_lines);
  usage_buf_t out;
  usage_buf_init(&out, 0);
  usage_buf_puts(&out, "");
  for (size_t i = 0; i < n; i++) {
    usage_buf_puts(&out, lines[i]);
    free(lines[i]);
  }
  free(lines);
  usage_batch_destroy(batch);
  return usage_buf_steal(&out, NULL);
}

/* value of one family for a label set given as "v1,v2,v3" */
static double value_of(const usage_billing_t *b, int family,
                       const char *values) {
  usage_batch_t *batch = usage_batch_create("t", "billing");
  assert_int_equal(usage_billing_samples(b, batch), 0);
  double v = -1;
  for (size_t i = 0; i < usage_batch_size(batch); i++) {
    const usage_sample_t *s = usage_batch_sample(batch, i);
    if (s->family != family)
      continue;
    char buf[512] = "";
    size_t k = 0;
    for (unsigned l = 0; l < s->nlabels; l++)
      k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s%s", l ? "," : "",
                            s->labels[2 * l + 1]);
    if (strcmp(buf, values) == 0)
      v = s->value;
  }
  usage_batch_destroy(batch);
  return v;
}

static usage_billing_conf_t *conf_new(void) {
  usage_billing_conf_t *c = calloc(1, sizeof(*c));
  assert_int_equal(usage_billing_conf_default(c), 0);
  return c;
}

static void conf_free(usage_billing_conf_t *c) {
  usage_billing_conf_clear(c);
  free(c);
}

/* rec builds one record's JSON. */
static void rec(usage_buf_t *b, long id, long long ev, const char *cust,
                const char *cls, double data, double sell) {
  char ts[32];
  time_t t = (time_t)ev;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
  usage_buf_printf(b,
                   "%s{\"id\":%ld,\"customerId\":%s,\"eventDate\":\"%s\","
                   "\"callClass\":\"%s\",\"usageDirection\":\"OUTBOUND\","
                   "\"dataQuantity\":%g,\"durationQuantity\":1,"
                   "\"sellPrice\":%g,\"buyPrice\":0.5}",
                   usage_buf_len(b) > 1 ? "," : "", id, cust, ts, cls, data,
                   sell);
}

/* page_of parses a page made of records (id, ev offset from T0). */
static int feed(usage_billing_t *b, const long *ids, const long long *evs,
                size_t n, usage_billing_page_t *res) {
  usage_buf_t body;
  usage_buf_init(&body, 0);
  usage_buf_puts(&body, "[");
  for (size_t i = 0; i < n; i++)
    rec(&body, ids[i], T0 + evs[i], "1001", "DATA", 1, 0.25);
  usage_buf_puts(&body, "]");
  int rc =
      usage_billing_page(b, usage_buf_str(&body), usage_buf_len(&body), res);
  usage_buf_free(&body);
  return rc;
}

/* ---- golden pages ---- */

static const struct {
  const char *name, *json, *gold;
  size_t records, counted, duplicates, invalid;
} golden[] = {
    {"spec sample", "spec_sample.json", "spec_sample.gold", 1, 1, 0, 0},
    {"mixed page", "page_golden.json", "page_golden.gold", 6, 5, 1, 1},
};

static void test_golden(void **state) {
  for (size_t i = 0; i < sizeof(golden) / sizeof(*golden); i++) {
    usage_billing_conf_t *c = conf_new();
    size_t len;
    char *body = slurp(golden[i].json, &len);
    char *gold = slurp(golden[i].gold, NULL);
    usage_billing_page_t res;
    usage_billing_t *fresh = usage_billing_create(c);
    /* the spec sample is dated 2019: start the window before it */
    usage_billing_begin(fresh, 1500000000.0);
    int rc = usage_billing_page(fresh, body, len, &res);
    if (rc != 0)
      fail_msg("%s: %s", golden[i].name, res.error);
    assert_int_equal(res.records, golden[i].records);
    assert_int_equal(res.counted, golden[i].counted);
    assert_int_equal(res.duplicates, golden[i].duplicates);
    assert_int_equal(res.invalid, golden[i].invalid);
    assert_int_equal(usage_billing_commit(fresh), golden[i].invalid);
    char *got = render(fresh);
    if (strcmp(got, gold) != 0)
      fail_msg("%s: got\n%s\nexpected\n%s", golden[i].name, got, gold);
    free(got);
    free(body);
    free(gold);
    usage_billing_destroy(fresh);
    conf_free(c);
  }
}

/* ---- configuration helpers ---- */

static const struct {
  const char *name, *value;
  int ok;
  const char *canonical;
} filter_cases[] = {
    {"customerId", "1001", 1, "customerId"},
    {"customerid", "in:1001,1002", 1, "customerId"},
    {"customerId", "in:1001,", 0, NULL},
    {"customerId", "like:10", 0, NULL},
    {"customerId", "abc", 0, NULL},
    {"siteId", "0", 1, "siteId"},
    {"billRunId", "in:", 0, NULL},
    {"productReference", "xyz", 1, "productReference"},
    {"productReference", "in:x,y", 1, "productReference"},
    {"productReference", "like:DATA", 1, "productReference"},
    {"productReference", "like:", 0, NULL},
    {"serviceId", "in:a,,b", 0, NULL},
    {"destination", "United Kingdom - Mobile", 1, "destination"},
    {"eventDateFrom", "2024-05-01T00:00:00Z", 1, "eventDateFrom"},
    {"eventDateFrom", "gt:2024-05-01T00:00:00Z", 1, "eventDateFrom"},
    {"eventDateFrom", "lt:2024-05-01T00:00:00Z", 0, NULL},
    {"eventDateTo", "lt:2024-05-01T00:00:00Z", 1, "eventDateTo"},
    {"eventDateTo", "2024-05-01", 0, NULL},
    {"eventDateTo", "2024-13-01T00:00:00Z", 0, NULL},
    {"excludeZeroValueRecords", "true", 0, NULL},
    {"page", "2", 0, NULL},
    {"sort", "id", 0, NULL},
    {"callClass", "DATA", 0, NULL},
};

static void test_filters(void **state) {
  for (size_t i = 0; i < sizeof(filter_cases) / sizeof(*filter_cases); i++) {
    const char *canon = NULL;
    char err[256] = "";
    int rc = usage_billing_filter_check(
        filter_cases[i].name, filter_cases[i].value, &canon, err, sizeof(err));
    if ((rc == 0) != filter_cases[i].ok)
      fail_msg("case %zu (%s=%s): rc %d, %s", i, filter_cases[i].name,
               filter_cases[i].value, rc, err);
    if (rc == 0)
      assert_string_equal(canon, filter_cases[i].canonical);
    else
      assert_true(err[0] != 0);
  }
}

static const struct {
  const char *unit;
  int ok;
  uint64_t factor;
  double bytes_of_1_5; /* dataQuantity 1.5 in that unit */
} unit_cases[] = {
    {"B", 1, 1, 1.5},
    {"kB", 1, 1000, 1500},
    {"MB", 1, 1000000, 1500000},
    {"GB", 1, 1000000000, 1.5e9},
    {"KiB", 1, 1024, 1536},
    {"MiB", 1, 1048576, 1572864},
    {"GiB", 1, 1073741824, 1610612736},
    {"mb", 0, 0, 0},
    {"TB", 0, 0, 0},
};

static void test_units(void **state) {
  for (size_t i = 0; i < sizeof(unit_cases) / sizeof(*unit_cases); i++) {
    uint64_t f = 0;
    int rc = usage_billing_unit_factor(unit_cases[i].unit, &f);
    assert_int_equal(rc == 0, unit_cases[i].ok);
    if (rc != 0)
      continue;
    assert_int_equal(f, unit_cases[i].factor);
    usage_billing_conf_t *c = conf_new();
    c->data_factor = f;
    usage_billing_t *b = usage_billing_create(c);
    usage_billing_begin(b, 0);
    const char *page =
        "[{\"id\":1,\"customerId\":1,\"eventDate\":\"2024-05-01T00:00:00Z\","
        "\"callClass\":\"D\",\"usageDirection\":\"OUTBOUND\","
        "\"dataQuantity\":1.5,\"durationQuantity\":0,\"sellPrice\":0,"
        "\"buyPrice\":0}]";
    usage_billing_page_t res;
    assert_int_equal(usage_billing_page(b, page, strlen(page), &res), 0);
    usage_billing_commit(b);
    assert_true(value_of(b, FAM_BILLING_DATA_BYTES, "1,D,OUTBOUND") ==
                unit_cases[i].bytes_of_1_5);
    usage_billing_destroy(b);
    conf_free(c);
  }
}

static const struct {
  const char *text;
  int rc;
  long long nano;
} nano_cases[] = {
    {"0", 0, 0},
    {"1", 0, 1000000000},
    {"1.5", 0, 1500000000},
    {"0.0001", 0, 100000},
    {"12.3456789012", 0, 12345678901},
    {"1e3", 0, 1000000000000LL},
    {"2.5E-3", 0, 2500000},
    {"-0", 0, 0},
    {"-1", ERANGE, 0},
    {"abc", EINVAL, 0},
    {"1e400", ERANGE, 0},
    {"", EINVAL, 0},
    {"1.", 0, 1000000000},
};

static void test_numbers(void **state) {
  for (size_t i = 0; i < sizeof(nano_cases) / sizeof(*nano_cases); i++) {
    __int128 v = -7;
    int rc = usage_billing_parse_nano(nano_cases[i].text,
                                      strlen(nano_cases[i].text), &v);
    if (rc != nano_cases[i].rc)
      fail_msg("\"%s\": rc %d", nano_cases[i].text, rc);
    if (rc == 0 && v != nano_cases[i].nano)
      fail_msg("\"%s\": %lld", nano_cases[i].text, (long long)v);
  }
}

static void test_groupby_labels(void **state) {
  char out[64];
  assert_int_equal(usage_billing_groupby_label("customerId", out, 64), 0);
  assert_string_equal(out, "customer_id");
  assert_int_equal(usage_billing_groupby_label("usageProductId", out, 64), 0);
  assert_string_equal(out, "usage_product_id");
  assert_int_equal(usage_billing_groupby_label("sellPrice", out, 64), EINVAL);
  assert_int_equal(usage_billing_groupby_label("id", out, 64), EINVAL);
}

static void test_query(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->page_size = 500;
  c->exclude_zero = 1;
  c->filters_num = 2;
  c->filter_names = calloc(2, sizeof(char *));
  c->filter_values = calloc(2, sizeof(char *));
  c->filter_names[0] = strdup("customerId");
  c->filter_values[0] = strdup("in:1001,1002");
  c->filter_names[1] = strdup("destination");
  c->filter_values[1] = strdup("like:United Kingdom");
  usage_buf_t q;
  usage_buf_init(&q, 0);
  assert_int_equal(usage_billing_query(c, T0, 3, &q), 0);
  assert_string_equal(
      usage_buf_str(&q),
      "/customer-usage-data?page=3&pageSize=500&sort=eventDate%2Cid"
      "&eventDateFrom=2024-05-01T12:00:00Z&customerId=in%3A1001%2C1002"
      "&destination=like%3AUnited%20Kingdom"
      "&excludeZeroValueRecords=true");
  usage_buf_free(&q);
  conf_free(c);
}

/* ---- exactly once ---- */

static void test_overlapping_windows(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->lookback = 3600;
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;

  /* first scrape: ids 1..3, the newest at T0 */
  int64_t from = usage_billing_begin(b, (double)T0 + 60);
  assert_int_equal(from, T0 + 60 - USAGE_BILLING_DEFAULT_INITIAL_LOOKBACK);
  long ids1[] = {1, 2, 3};
  long long ev1[] = {-600, -300, 0};
  assert_int_equal(feed(b, ids1, ev1, 3, &res), 0);
  assert_int_equal(res.counted, 3);
  usage_billing_commit(b);
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == 3);
  assert_int_equal(usage_billing_window_start(b), T0 - 3600);

  /* second scrape: the window overlaps (2, 3 again), 4 is new and 5 was
   * loaded late with an old eventDate inside the window; 6 is older than
   * the window (it cannot be told from a counted record: left out) */
  from = usage_billing_begin(b, (double)T0 + 120);
  assert_int_equal(from, T0 - 3600);
  long ids2[] = {6, 5, 2, 3, 4};
  long long ev2[] = {-3601, -1800, -300, 0, 60};
  assert_int_equal(feed(b, ids2, ev2, 5, &res), 0);
  assert_int_equal(res.counted, 2);
  assert_int_equal(res.duplicates, 2);
  /* nothing moves before the commit */
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == 3);
  usage_billing_commit(b);
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == 5);
  assert_true(value_of(b, FAM_BILLING_DATA_BYTES, "1001,DATA,OUTBOUND") == 5e6);
  assert_true(value_of(b, FAM_BILLING_SELL_PRICE, "1001,DATA,OUTBOUND") ==
              1.25);

  /* the same page again: nothing new */
  usage_billing_begin(b, (double)T0 + 180);
  assert_int_equal(feed(b, ids2, ev2, 5, &res), 0);
  assert_int_equal(res.counted, 0);
  usage_billing_commit(b);
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == 5);
  usage_billing_destroy(b);
  conf_free(c);
}

static void test_window_bounded(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->lookback = 100;
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;
  long id = 1;
  for (int scrape = 0; scrape < 50; scrape++) {
    usage_billing_begin(b, (double)T0 + scrape * 50 + 50);
    long ids[50];
    long long evs[50];
    for (int i = 0; i < 50; i++) {
      ids[i] = id++;
      evs[i] = scrape * 50 + i; /* one record a second */
    }
    assert_int_equal(feed(b, ids, evs, 50, &res), 0);
    assert_int_equal(res.counted, 50);
    usage_billing_commit(b);
    assert_true(usage_billing_window_ids(b) <= 101);
  }
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == 2500);
  usage_billing_destroy(b);
  conf_free(c);
}

static void test_future_date_does_not_move_window(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->lookback = 100;
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;
  usage_billing_begin(b, (double)T0);
  long ids[] = {1};
  long long evs[] = {86400 * 365};
  assert_int_equal(feed(b, ids, evs, 1, &res), 0);
  usage_billing_commit(b);
  assert_int_equal(usage_billing_window_start(b), T0 - 100);
  usage_billing_destroy(b);
  conf_free(c);
}

/* ---- MaxSeries ---- */

static void test_max_series(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->max_series = 2;
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_begin(b, 0);
  usage_buf_t body;
  usage_buf_init(&body, 0);
  usage_buf_puts(&body, "[");
  rec(&body, 1, T0, "1", "A", 1, 1);
  rec(&body, 2, T0, "2", "A", 1, 1);
  rec(&body, 3, T0, "3", "A", 1, 1);
  rec(&body, 4, T0, "4", "A", 1, 1);
  rec(&body, 5, T0, "1", "A", 1, 1);
  usage_buf_puts(&body, "]");
  usage_billing_page_t res;
  assert_int_equal(
      usage_billing_page(b, usage_buf_str(&body), usage_buf_len(&body), &res),
      0);
  usage_billing_commit(b);
  assert_int_equal(usage_billing_groups(b), 3);
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1,A,OUTBOUND") == 2);
  assert_true(value_of(b, FAM_BILLING_RECORDS, "2,A,OUTBOUND") == 1);
  assert_true(value_of(b, FAM_BILLING_RECORDS, "other,other,other") == 2);
  assert_true(value_of(b, FAM_BILLING_SELL_PRICE, "other,other,other") == 2);
  assert_true(value_of(b, FAM_BILLING_OVERFLOW_RECORDS, "") == 2);
  usage_buf_free(&body);
  usage_billing_destroy(b);
  conf_free(c);
}

/* ---- state ---- */

static void test_state_round_trip(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->lookback = 3600;
  c->max_series = 1;
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_begin(b, (double)T0);
  usage_buf_t body;
  usage_buf_init(&body, 0);
  usage_buf_puts(&body, "[");
  rec(&body, 1, T0 - 10, "1001", "DATA %/=x", 1.5, 0.1234);
  rec(&body, 2, T0 - 5, "1002", "DATA", 2, 0.5);
  usage_buf_puts(&body, "]");
  usage_billing_page_t res;
  assert_int_equal(
      usage_billing_page(b, usage_buf_str(&body), usage_buf_len(&body), &res),
      0);

  /* the body written before the commit equals the one after it */
  usage_buf_t pre, post;
  usage_buf_init(&pre, 0);
  usage_buf_init(&post, 0);
  assert_int_equal(usage_billing_serialize(b, &pre), 0);
  usage_billing_commit(b);
  assert_int_equal(usage_billing_serialize(b, &post), 0);
  assert_string_equal(usage_buf_str(&pre), usage_buf_str(&post));

  usage_billing_t *r = usage_billing_create(c);
  int dropped = -1;
  char err[256];
  assert_int_equal(usage_billing_restore(r, usage_buf_str(&post),
                                         usage_buf_len(&post), &dropped, err,
                                         256),
                   0);
  assert_int_equal(dropped, 0);
  char *x = render(b), *y = render(r);
  assert_string_equal(x, y);
  assert_non_null(strstr(x, "call_class=\"DATA %/=x\""));
  free(x);
  free(y);
  assert_int_equal(usage_billing_window_start(r),
                   usage_billing_window_start(b));
  assert_int_equal(usage_billing_window_ids(r), 2);

  /* after the restart the same records are not counted again */
  usage_billing_begin(r, (double)T0 + 60);
  assert_int_equal(
      usage_billing_page(r, usage_buf_str(&body), usage_buf_len(&body), &res),
      0);
  assert_int_equal(res.counted, 0);
  assert_int_equal(res.duplicates, 2);

  /* another GroupBy: the counters restart, the ids stay */
  usage_billing_conf_t *c2 = conf_new();
  free(c2->group_by[2]);
  c2->group_by_num = 2;
  usage_billing_t *r2 = usage_billing_create(c2);
  assert_int_equal(usage_billing_restore(r2, usage_buf_str(&post),
                                         usage_buf_len(&post), &dropped, err,
                                         256),
                   0);
  assert_int_equal(dropped, 1);
  assert_int_equal(usage_billing_groups(r2), 0);
  assert_int_equal(usage_billing_window_ids(r2), 2);

  usage_billing_destroy(r2);
  conf_free(c2);
  usage_buf_free(&pre);
  usage_buf_free(&post);
  usage_buf_free(&body);
  usage_billing_destroy(r);
  usage_billing_destroy(b);
  conf_free(c);
}

static const struct {
  const char *name, *body;
} corrupt_cases[] = {
    {"empty", ""},
    {"other format", "billing-state 2\n"},
    {"no end line", "billing-state 1\ngroupby customerId,callClass,"
                    "usageDirection\nwindow_start 5\n"},
    {"end count mismatch",
     "billing-state 1\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\nid 1 7\nend 0 2\n"},
    {"bad number", "billing-state 1\ngroupby customerId,callClass,"
                   "usageDirection\nwindow_start x\nend 0 0\n"},
    {"bad group",
     "billing-state 1\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\ngroup 0 1 2 3 4 5 =a =b\nend 1 0\n"},
    {"unterminated", "billing-state 1\ngroupby customerId,callClass,"
                     "usageDirection\nwindow_start 5\nend 0 0"},
    {"duplicate id",
     "billing-state 1\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\nid 1 7\nid 1 7\nend 0 2\n"},
    {"unknown line", "billing-state 1\ngroupby customerId,callClass,"
                     "usageDirection\nwindow_start 5\nfoo 1\nend 0 0\n"},
    {"bad escape",
     "billing-state 1\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\ngroup 0 1 2 3 4 5 =a =b =%zz\nend 1 0\n"},
};

static void test_corrupt_state(void **state) {
  usage_billing_conf_t *c = conf_new();
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_begin(b, 0);
  long ids[] = {1};
  long long evs[] = {0};
  usage_billing_page_t res;
  assert_int_equal(feed(b, ids, evs, 1, &res), 0);
  usage_billing_commit(b);
  char *before = render(b);
  for (size_t i = 0; i < sizeof(corrupt_cases) / sizeof(*corrupt_cases); i++) {
    int dropped;
    char err[256] = "";
    int rc = usage_billing_restore(b, corrupt_cases[i].body,
                                   strlen(corrupt_cases[i].body), &dropped, err,
                                   sizeof(err));
    if (rc != EINVAL)
      fail_msg("%s: rc %d", corrupt_cases[i].name, rc);
    assert_true(err[0] != 0);
    char *after = render(b);
    assert_string_equal(before, after); /* unchanged */
    free(after);
  }
  free(before);
  usage_billing_destroy(b);
  conf_free(c);
}

/* A file of another source or kind is set aside by the state layer. */
static void test_foreign_state_file(void **state) {
  char dir[] = "/tmp/test_billing.XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[300];
  snprintf(path, sizeof(path), "%s/state", dir);
  char err[512];
  const char *body = "billing-state 1\ngroupby customerId,callClass,"
                     "usageDirection\nwindow_start 5\nend 0 0\n";
  assert_int_equal(usage_state_save(path, "billing", "other-source", body,
                                    strlen(body), err, sizeof(err)),
                   0);
  char *data = NULL;
  size_t len = 0;
  assert_int_equal(
      usage_state_load(path, "billing", "mine", &data, &len, err, sizeof(err)),
      EINVAL);
  assert_int_equal(access(path, F_OK), -1); /* renamed aside */
  assert_int_equal(usage_state_save(path, "billing", "mine", body, strlen(body),
                                    err, sizeof(err)),
                   0);
  assert_int_equal(
      usage_state_load(path, "billing", "mine", &data, &len, err, sizeof(err)),
      0);
  usage_billing_conf_t *c = conf_new();
  usage_billing_t *b = usage_billing_create(c);
  int dropped;
  assert_int_equal(usage_billing_restore(b, data, len, &dropped, err, 512), 0);
  assert_int_equal(usage_billing_window_start(b), 5);
  free(data);
  usage_billing_destroy(b);
  conf_free(c);
  char cmd[400];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* ---- pages that must not commit ---- */

static const struct {
  const char *name, *body;
} bad_pages[] = {
    {"object, not array", "{\"message\":\"x\"}"},
    {"array of numbers", "[1,2]"},
    {"not JSON", "<html>502</html>"},
    {"empty", ""},
    {"two values", "[] []"},
    {"truncated record", "[{\"id\":1,\"eventDate\":\"2024-05-01T00:00:00Z\""},
};

static void test_truncated_page_aborts(void **state) {
  usage_billing_conf_t *c = conf_new();
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;

  /* a good first page, then the truncated fixture: abort */
  usage_billing_begin(b, 0);
  long ids[] = {100, 101};
  long long evs[] = {0, 1};
  assert_int_equal(feed(b, ids, evs, 2, &res), 0);
  size_t len;
  char *trunc = slurp("truncated.json", &len);
  assert_int_equal(usage_billing_page(b, trunc, len, &res), EINVAL);
  assert_non_null(strstr(res.error, "truncated"));
  usage_billing_abort(b);
  assert_int_equal(usage_billing_groups(b), 0);
  assert_true(value_of(b, FAM_BILLING_OVERFLOW_RECORDS, "") == 0);

  for (size_t i = 0; i < sizeof(bad_pages) / sizeof(*bad_pages); i++) {
    usage_billing_begin(b, 0);
    if (usage_billing_page(b, bad_pages[i].body, strlen(bad_pages[i].body),
                           &res) != EINVAL)
      fail_msg("%s: accepted", bad_pages[i].name);
    assert_true(res.error[0] != 0);
    usage_billing_abort(b);
  }

  /* the retry from the same window counts the records once */
  assert_int_equal(usage_billing_begin(b, 0), usage_billing_window_start(b));
  assert_int_equal(feed(b, ids, evs, 2, &res), 0);
  char *full = slurp("page_golden.json", &len);
  assert_int_equal(usage_billing_page(b, full, len, &res), 0);
  usage_billing_commit(b);
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == 4);
  free(full);
  free(trunc);
  usage_billing_destroy(b);
  conf_free(c);
}

static void test_repeated_page_hash(void **state) {
  usage_billing_conf_t *c = conf_new();
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_begin(b, 0);
  usage_billing_page_t r1, r2, r3;
  long ids[] = {1, 2};
  long ids2[] = {2, 3};
  long long evs[] = {0, 1};
  assert_int_equal(feed(b, ids, evs, 2, &r1), 0);
  assert_int_equal(feed(b, ids, evs, 2, &r2), 0);
  assert_int_equal(feed(b, ids2, evs, 2, &r3), 0);
  assert_true(r1.ids_hash == r2.ids_hash);
  assert_true(r1.ids_hash != r3.ids_hash);
  usage_billing_destroy(b);
  conf_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden),
      cmocka_unit_test(test_filters),
      cmocka_unit_test(test_units),
      cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_groupby_labels),
      cmocka_unit_test(test_query),
      cmocka_unit_test(test_overlapping_windows),
      cmocka_unit_test(test_window_bounded),
      cmocka_unit_test(test_future_date_does_not_move_window),
      cmocka_unit_test(test_max_series),
      cmocka_unit_test(test_state_round_trip),
      cmocka_unit_test(test_corrupt_state),
      cmocka_unit_test(test_foreign_state_file),
      cmocka_unit_test(test_truncated_page_aborts),
      cmocka_unit_test(test_repeated_page_hash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
