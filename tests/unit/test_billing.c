/* SPDX-License-Identifier: MIT */
/* test_billing: the billing parser and aggregator: golden pages (the spec
 * sample among them), filter and unit validation, exactly-once counting
 * across overlapping windows, MaxSeries, the state body, and pages that
 * must not commit anything. */
#include "api/billing/billing.h"
#include "families.h"
#include "htable.h"
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

#include "test_util.h"

/* 2024-05-01T12:00:00Z */
#define T0 1714564800LL

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
    {"spec sample", "billing/spec_sample.json", "billing/spec_sample.gold", 1,
     1, 0, 0},
    /* id 13's dataQuantity "abc": held back (not counted), refused once */
    {"mixed page", "billing/page_golden.json", "billing/page_golden.gold", 6, 4,
     1, 1},
    /* as servers send it: ids and customerId as strings or numbers (id 20
     * in both forms: counted once), zero amounts as 0E-4 or 0.0, eventDate
     * with fractional seconds and offsets */
    {"quirks", "billing/quirks.json", "billing/quirks.gold", 4, 3, 1, 0},
};

static void test_golden(void **state) {
  for (size_t i = 0; i < sizeof(golden) / sizeof(*golden); i++) {
    usage_billing_conf_t *c = conf_new();
    size_t len;
    char *body = tu_read_fixture(golden[i].json, &len);
    char *gold = tu_read_fixture(golden[i].gold, NULL);
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
    if (getenv("BILLING_GOLDEN_WRITE") != NULL) { /* regenerate, then review */
      char path[512];
      snprintf(path, sizeof(path), "%s/%s", FIXTURES, golden[i].gold);
      FILE *f = fopen(path, "w");
      assert_non_null(f);
      fputs(got, f);
      fclose(f);
    } else if (strcmp(got, gold) != 0)
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
  /* the records past MaxSeries: in their own families, no GroupBy labels */
  assert_true(value_of(b, FAM_BILLING_RECORDS, "other,other,other") == -1);
  assert_true(value_of(b, FAM_BILLING_OVERFLOW_SELL_PRICE, "") == 2);
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
    /* format 3: "ids N", then N packed lines (id delta 1, event date
     * delta, label set + 1, quantities) */
    {"label set past the groups",
     "billing-state 3\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\nids 1\n125\nend 0 1\n"},
    {"fewer id lines than said",
     "billing-state 3\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\nids 2\n100\nend 0 1\n"},
    {"not a packed digit",
     "billing-state 3\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\nids 1\n1 0 0\nend 0 1\n"},
    {"id delta 0",
     "billing-state 3\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\nids 2\n100\n000\nend 0 2\n"},
    {"format 2 id line in format 3",
     "billing-state 3\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\nid 1 7\nend 0 1\n"},
    {"format 2 group line in format 3",
     "billing-state 3\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\ngroup 0 1 2 3 4 5 =a =b =c\nend 1 0\n"},
    {"quantity past 2^63 units",
     "billing-state 3\ngroupby customerId,callClass,usageDirection\n"
     "window_start 5\ngroup 0 1 0 0 0 0 0 0 0 0 0 =a =b =c\n"
     "scale 30 0 0 0\nids 1\n101_______0000\nend 1 1\n"},
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
  char *trunc = tu_read_fixture("billing/truncated.json", &len);
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
  char *full = tu_read_fixture("billing/page_golden.json", &len);
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

/* ---- refused records ---- */

/* recj builds one record's JSON with the id and dataQuantity as given. */
static void recj(usage_buf_t *b, const char *id, long long ev, const char *cust,
                 const char *data) {
  char ts[32];
  time_t t = (time_t)ev;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
  usage_buf_printf(b,
                   "%s{\"id\":%s,\"customerId\":%s,\"eventDate\":\"%s\","
                   "\"callClass\":\"DATA\",\"usageDirection\":\"OUTBOUND\","
                   "%s%s%s\"durationQuantity\":1,\"sellPrice\":0.25,"
                   "\"buyPrice\":0.5}",
                   usage_buf_len(b) > 1 ? "," : "", id, cust, ts,
                   data ? "\"dataQuantity\":" : "", data ? data : "",
                   data ? "," : "");
}

static int page_str(usage_billing_t *b, usage_buf_t *body,
                    usage_billing_page_t *res) {
  return usage_billing_page(b, usage_buf_str(body), usage_buf_len(body), res);
}

static double invalid_of(const usage_billing_t *b, const char *reason) {
  return value_of(b, FAM_BILLING_INVALID_RECORDS, reason);
}

/* Ids that an int64 cannot hold exactly, or that are negative, are refused
 * on every scrape and counted once each in the invalid family, never in the
 * totals nor in the state. */
static void test_corrupt_ids(void **state) {
  static const char *const bad[] = {"-1",
                                    "9223372036854775808",
                                    "12345678901234567890",
                                    "1.5",
                                    "\"abc\"",
                                    "\"-7\"",
                                    "1e3",
                                    "9223372036854775807.0"};
  const size_t nbad = sizeof(bad) / sizeof(*bad);
  usage_billing_conf_t *c = conf_new();
  usage_billing_t *b = usage_billing_create(c);
  usage_buf_t body;
  usage_buf_init(&body, 0);
  usage_buf_puts(&body, "[");
  recj(&body, "1", T0, "1001", "1");
  recj(&body, "\"9223372036854775807\"", T0, "1001", "1"); /* INT64_MAX */
  for (size_t i = 0; i < nbad; i++)
    recj(&body, bad[i], T0, "1001", "1");
  usage_buf_puts(&body, "]");
  for (int scrape = 0; scrape < 3; scrape++) {
    usage_billing_page_t res;
    usage_billing_begin(b, (double)T0 + 60 * scrape);
    assert_int_equal(page_str(b, &body, &res), 0);
    assert_int_equal(res.counted, scrape == 0 ? 2 : 0);
    assert_int_equal(res.invalid, nbad);
    assert_int_equal(usage_billing_commit(b), scrape == 0 ? nbad : 0);
    assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == 2);
    assert_true(value_of(b, FAM_BILLING_DATA_BYTES, "1001,DATA,OUTBOUND") ==
                2e6);
    assert_true(invalid_of(b, "id") == (double)nbad);
    assert_int_equal(usage_billing_window_ids(b), 2);
  }
  /* the invalid count survives a restart; no refused id is in the state */
  usage_buf_t st;
  usage_buf_init(&st, 0);
  assert_int_equal(usage_billing_serialize(b, &st), 0);
  assert_null(strstr(usage_buf_str(&st), " -"));
  usage_billing_t *r = usage_billing_create(c);
  int dropped;
  char err[256];
  assert_int_equal(usage_billing_restore(r, usage_buf_str(&st),
                                         usage_buf_len(&st), &dropped, err,
                                         sizeof(err)),
                   0);
  assert_true(invalid_of(r, "id") == (double)nbad);
  assert_true(value_of(r, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == 2);
  usage_buf_free(&st);
  usage_buf_free(&body);
  usage_billing_destroy(r);
  usage_billing_destroy(b);
  conf_free(c);
}

/* A record whose quantity or price is null, missing or of the wrong type is
 * held back: when the vendor sends it corrected, it is counted once, whole. */
static const struct {
  const char *name, *bad_data; /* NULL: the member is left out */
  int bad_sell;
} held_cases[] = {
    {"dataQuantity null", "null", 0},      {"dataQuantity missing", NULL, 0},
    {"dataQuantity a string", "\"2\"", 0}, {"dataQuantity negative", "-2", 0},
    {"sellPrice an object", "2", 1},
};

static void test_held_back_record(void **state) {
  for (size_t i = 0; i < sizeof(held_cases) / sizeof(*held_cases); i++) {
    usage_billing_conf_t *c = conf_new();
    usage_billing_t *b = usage_billing_create(c);
    usage_billing_page_t res;
    usage_buf_t p1, p2;
    usage_buf_init(&p1, 0);
    usage_buf_init(&p2, 0);
    usage_buf_puts(&p1, "[");
    recj(&p1, "8", T0 - 10, "1001", "1");
    if (held_cases[i].bad_sell) {
      usage_buf_printf(&p1,
                       ",{\"id\":7,\"customerId\":1001,\"eventDate\":"
                       "\"2024-05-01T11:59:00Z\",\"callClass\":\"DATA\","
                       "\"usageDirection\":\"OUTBOUND\",\"dataQuantity\":2,"
                       "\"durationQuantity\":1,\"sellPrice\":{\"v\":1},"
                       "\"buyPrice\":0.5}");
    } else {
      recj(&p1, "7", T0 - 60, "1001", held_cases[i].bad_data);
    }
    usage_buf_puts(&p1, "]");
    usage_buf_puts(&p2, "[");
    recj(&p2, "8", T0 - 10, "1001", "1");
    recj(&p2, "7", T0 - 60, "1001", "2");
    usage_buf_puts(&p2, "]");

    /* twice with the bad copy: refused, counted once as invalid */
    for (int scrape = 0; scrape < 2; scrape++) {
      usage_billing_begin(b, (double)T0 + scrape);
      assert_int_equal(page_str(b, &p1, &res), 0);
      assert_int_equal(res.counted, scrape == 0 ? 1 : 0);
      assert_int_equal(res.invalid, 1);
      usage_billing_commit(b);
      if (value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") != 1)
        fail_msg("%s: the held-back record was counted", held_cases[i].name);
      assert_true(invalid_of(b, "quantity") == 1);
    }
    /* the corrected copy: counted once with its full value */
    for (int scrape = 2; scrape < 4; scrape++) {
      usage_billing_begin(b, (double)T0 + scrape);
      assert_int_equal(page_str(b, &p2, &res), 0);
      assert_int_equal(res.counted, scrape == 2 ? 1 : 0);
      usage_billing_commit(b);
      if (value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") != 2 ||
          value_of(b, FAM_BILLING_DATA_BYTES, "1001,DATA,OUTBOUND") != 3e6 ||
          value_of(b, FAM_BILLING_SELL_PRICE, "1001,DATA,OUTBOUND") != 0.5)
        fail_msg("%s: the corrected record was not counted once, whole",
                 held_cases[i].name);
    }
    assert_true(invalid_of(b, "quantity") == 1);
    usage_buf_free(&p1);
    usage_buf_free(&p2);
    usage_billing_destroy(b);
    conf_free(c);
  }
}

/* A real label set whose values are "other" is not the MaxSeries overflow:
 * two distinct series, exact figures. */
static void test_overflow_not_confused(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->max_series = 1;
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_begin(b, 0);
  usage_buf_t body;
  usage_buf_init(&body, 0);
  usage_buf_puts(&body, "[");
  usage_buf_puts(&body, "{\"id\":1,\"customerId\":\"other\",\"eventDate\":"
                        "\"2024-05-01T12:00:00Z\",\"callClass\":\"other\","
                        "\"usageDirection\":\"other\",\"dataQuantity\":1,"
                        "\"durationQuantity\":1,\"sellPrice\":1,"
                        "\"buyPrice\":1}");
  rec(&body, 2, T0, "2", "A", 3, 5);
  rec(&body, 3, T0, "3", "A", 3, 5);
  usage_buf_puts(&body, "]");
  usage_billing_page_t res;
  assert_int_equal(page_str(b, &body, &res), 0);
  usage_billing_commit(b);
  usage_batch_t *batch = usage_batch_create("t", "billing");
  assert_int_equal(usage_billing_samples(b, batch), 0);
  size_t n_records = 0;
  for (size_t i = 0; i < usage_batch_size(batch); i++)
    n_records += usage_batch_sample(batch, i)->family == FAM_BILLING_RECORDS;
  usage_batch_destroy(batch);
  assert_int_equal(n_records, 1); /* the real "other" only */
  assert_true(value_of(b, FAM_BILLING_RECORDS, "other,other,other") == 1);
  assert_true(value_of(b, FAM_BILLING_SELL_PRICE, "other,other,other") == 1);
  assert_true(value_of(b, FAM_BILLING_DATA_BYTES, "other,other,other") == 1e6);
  assert_true(value_of(b, FAM_BILLING_OVERFLOW_RECORDS, "") == 2);
  assert_true(value_of(b, FAM_BILLING_OVERFLOW_SELL_PRICE, "") == 10);
  assert_true(value_of(b, FAM_BILLING_OVERFLOW_DATA_BYTES, "") == 6e6);
  assert_true(value_of(b, FAM_BILLING_OVERFLOW_BUY_PRICE, "") == 1);
  assert_true(value_of(b, FAM_BILLING_OVERFLOW_DURATION_SECONDS, "") == 2);
  usage_buf_free(&body);
  usage_billing_destroy(b);
  conf_free(c);
}

/* ---- arithmetic and allocation failures ---- */

/* A sum that would reach 2^63 units refuses the scrape (ERANGE): nothing
 * of it is counted, nothing wraps. */
static void test_sum_overflow(void **state) {
  usage_billing_conf_t *c = conf_new(); /* MB: 5e12 MB = 5e18 bytes */
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;
  usage_buf_t p1, p2;
  usage_buf_init(&p1, 0);
  usage_buf_init(&p2, 0);
  usage_buf_puts(&p1, "[");
  recj(&p1, "1", T0, "1001", "5e12");
  usage_buf_puts(&p1, "]");
  usage_buf_puts(&p2, "[");
  recj(&p2, "2", T0, "1001", "1");
  recj(&p2, "3", T0, "1001", "5e12"); /* 1e19 in all: past 2^63 */
  usage_buf_puts(&p2, "]");
  usage_billing_begin(b, (double)T0);
  assert_int_equal(page_str(b, &p1, &res), 0);
  usage_billing_commit(b);
  assert_true(value_of(b, FAM_BILLING_DATA_BYTES, "1001,DATA,OUTBOUND") ==
              5e18);
  for (int i = 0; i < 2; i++) {
    usage_billing_begin(b, (double)T0 + 1);
    assert_int_equal(page_str(b, &p2, &res), ERANGE);
    assert_non_null(strstr(res.error, "dataQuantity"));
    usage_billing_abort(b);
    assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == 1);
    assert_true(value_of(b, FAM_BILLING_DATA_BYTES, "1001,DATA,OUTBOUND") ==
                5e18);
  }
  /* the largest sum allowed is below 2^63 as the double collectd gets */
  usage_buf_reset(&p1);
  usage_buf_puts(&p1, "[");
  recj(&p1, "5", T0, "1001", "4223372036854.709");
  usage_buf_puts(&p1, "]");
  usage_billing_begin(b, (double)T0 + 1);
  assert_int_equal(page_str(b, &p1, &res), 0);
  usage_billing_commit(b);
  double top = value_of(b, FAM_BILLING_DATA_BYTES, "1001,DATA,OUTBOUND");
  assert_true(top > 9.2e18 && top < 9223372036854775808.0);
  /* a single record past the limit is refused the same way */
  usage_buf_reset(&p1);
  usage_buf_puts(&p1, "[");
  recj(&p1, "4", T0, "1002", "1e13");
  usage_buf_puts(&p1, "]");
  usage_billing_begin(b, (double)T0 + 2);
  assert_int_equal(page_str(b, &p1, &res), ERANGE);
  usage_billing_abort(b);
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1002,DATA,OUTBOUND") == -1);
  usage_buf_free(&p1);
  usage_buf_free(&p2);
  usage_billing_destroy(b);
  conf_free(c);
}

static int calloc_budget = -1; /* successful calls left; -1 = unlimited */
static void *(*real_calloc)(size_t, size_t);

static void *failing_calloc(size_t n, size_t size) {
  if (calloc_budget == 0)
    return NULL;
  if (calloc_budget > 0)
    calloc_budget--;
  return real_calloc(n, size);
}

/* An id that cannot be inserted is not counted, in the page or in the
 * commit, and is counted exactly once on a later scrape. */
static void test_alloc_failure_no_double_count(void **state) {
  usage_billing_conf_t *c = conf_new();
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;
  long ids[300];
  long long evs[300];
  for (int i = 0; i < 300; i++) {
    ids[i] = 1000 + i;
    evs[i] = -i;
  }
  real_calloc = usage_htable_calloc;
  usage_htable_calloc = failing_calloc;

  /* 1: the id table cannot grow while the page is parsed */
  usage_billing_begin(b, (double)T0);
  calloc_budget = 0;
  assert_int_equal(feed(b, ids, evs, 300, &res), ENOMEM);
  usage_billing_abort(b);
  calloc_budget = -1;
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == -1);

  /* 2: the page parses, the commit cannot build the next id set */
  usage_billing_begin(b, (double)T0);
  assert_int_equal(feed(b, ids, evs, 300, &res), 0);
  assert_int_equal(res.counted, 300);
  calloc_budget = 0;
  usage_billing_commit(b);
  calloc_budget = -1;
  double after = value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND");
  assert_true(after == -1 || after == 300);

  /* 3: the same records again, twice: 300 in all, never more */
  for (int scrape = 0; scrape < 2; scrape++) {
    usage_billing_begin(b, (double)T0 + 1 + scrape);
    assert_int_equal(feed(b, ids, evs, 300, &res), 0);
    usage_billing_commit(b);
    assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == 300);
    assert_int_equal(usage_billing_window_ids(b), 300);
  }
  usage_htable_calloc = real_calloc;
  usage_billing_destroy(b);
  conf_free(c);
}

/* ---- re-ratings ---- */

/* one_scrape runs a scrape at now of one page of records given as
 * "id cust class data sell" tuples (event date T0 - 60, duration 1, buy
 * 0.5) and commits it; res gets the page's figures. */
typedef struct {
  long id;
  const char *cust, *cls;
  double data, sell;
} rr_t;

static void rr_body(usage_buf_t *body, const rr_t *r, size_t n) {
  usage_buf_reset(body);
  usage_buf_puts(body, "[");
  for (size_t i = 0; i < n; i++)
    rec(body, r[i].id, T0 - 60, r[i].cust, r[i].cls, r[i].data, r[i].sell);
  usage_buf_puts(body, "]");
}

static void one_scrape(usage_billing_t *b, double now, const rr_t *r, size_t n,
                       usage_billing_page_t *res) {
  usage_buf_t body;
  usage_buf_init(&body, 0);
  rr_body(&body, r, n);
  usage_billing_begin(b, now);
  assert_int_equal(page_str(b, &body, res), 0);
  usage_billing_commit(b);
  usage_buf_free(&body);
}

#define V(fam, set) value_of(b, fam, set)
#define A1001 "1001,DATA,OUTBOUND"
#define A1002 "1002,VOICE,OUTBOUND"

/* the current total of a family: counter minus its adjustment */
static double net(const usage_billing_t *b, int fam, int adj, const char *s) {
  return value_of(b, fam, s) - value_of(b, adj, s);
}

/* A record re-rated up counts the increase in the counter; re-rated down,
 * the decrease goes to the adjustment family: counter - adjustment is the
 * sum of the current figures, and no counter goes down. */
static void test_rerate_up_down(void **state) {
  usage_billing_conf_t *c = conf_new();
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;
  rr_t s1[] = {{1, "1001", "DATA", 2, 0.5}, {2, "1001", "DATA", 1, 0.25}};
  one_scrape(b, (double)T0, s1, 2, &res);
  assert_int_equal(res.counted, 2);
  assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 3e6);

  /* up: id 1 from 2 MB to 5 MB, same prices */
  rr_t s2[] = {{1, "1001", "DATA", 5, 0.5}, {2, "1001", "DATA", 1, 0.25}};
  one_scrape(b, (double)T0 + 60, s2, 2, &res);
  assert_int_equal(res.counted, 0);
  assert_int_equal(res.rerated, 1);
  assert_int_equal(res.duplicates, 1);
  assert_true(V(FAM_BILLING_RECORDS, A1001) == 2);
  assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 6e6);
  assert_true(V(FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 0);
  assert_true(V(FAM_BILLING_SELL_PRICE, A1001) == 0.75);
  assert_true(V(FAM_BILLING_RERATED_RECORDS, "") == 1);

  /* down: id 1 to 1 MB and a sell price of 0.25 */
  rr_t s3[] = {{1, "1001", "DATA", 1, 0.25}, {2, "1001", "DATA", 1, 0.25}};
  for (int again = 0; again < 2; again++) {
    one_scrape(b, (double)T0 + 120 + again, s3, 2, &res);
    assert_int_equal(res.rerated, again ? 0 : 1);
    assert_int_equal(res.duplicates, again ? 2 : 1);
    assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 6e6); /* never down */
    assert_true(V(FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 4e6);
    assert_true(net(b, FAM_BILLING_DATA_BYTES,
                    FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 2e6);
    assert_true(V(FAM_BILLING_SELL_PRICE, A1001) == 0.75);
    assert_true(V(FAM_BILLING_ADJUSTMENT_SELL_PRICE, A1001) == 0.25);
    assert_true(V(FAM_BILLING_ADJUSTMENT_BUY_PRICE, A1001) == 0);
    assert_true(V(FAM_BILLING_RECORDS, A1001) == 2);
    assert_true(V(FAM_BILLING_ADJUSTMENT_RECORDS, A1001) == 0);
    assert_true(V(FAM_BILLING_RERATED_RECORDS, "") == 2);
  }

  /* within one scrape: 9 MB on one page, back to 1 MB on the next: the
   * scrape commits the last copy, nothing changes */
  usage_buf_t body;
  usage_buf_init(&body, 0);
  usage_billing_begin(b, (double)T0 + 180);
  rr_t p1[] = {{1, "1001", "DATA", 9, 0.25}};
  rr_body(&body, p1, 1);
  assert_int_equal(page_str(b, &body, &res), 0);
  assert_int_equal(res.rerated, 1);
  rr_body(&body, s3, 2);
  assert_int_equal(page_str(b, &body, &res), 0);
  assert_int_equal(res.rerated, 1);
  usage_billing_commit(b);
  assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 6e6);
  assert_true(V(FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 4e6);
  assert_true(V(FAM_BILLING_RERATED_RECORDS, "") == 2);

  /* an aborted scrape's re-rating is not counted */
  usage_billing_begin(b, (double)T0 + 240);
  rr_body(&body, p1, 1);
  assert_int_equal(page_str(b, &body, &res), 0);
  usage_billing_abort(b);
  assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 6e6);
  /* an invalid copy of a counted record changes nothing */
  usage_buf_reset(&body);
  usage_buf_puts(&body, "[");
  recj(&body, "1", T0 - 60, "1001", "null");
  usage_buf_puts(&body, "]");
  usage_billing_begin(b, (double)T0 + 300);
  assert_int_equal(page_str(b, &body, &res), 0);
  assert_int_equal(res.duplicates, 1);
  assert_int_equal(res.invalid, 0);
  usage_billing_commit(b);
  assert_true(net(b, FAM_BILLING_DATA_BYTES, FAM_BILLING_ADJUSTMENT_DATA_BYTES,
                  A1001) == 2e6);
  usage_buf_free(&body);
  usage_billing_destroy(b);
  conf_free(c);
}

/* A record re-rated into another label set leaves the old one (its
 * adjustment families count the record and its figures) and is counted
 * whole in the new one; past MaxSeries, in the overflow families. */
static void test_rerate_group_move(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->max_series = 2;
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;
  rr_t s1[] = {{1, "1001", "DATA", 2, 0.5}, {2, "1001", "DATA", 1, 0.25}};
  one_scrape(b, (double)T0, s1, 2, &res);
  rr_t s2[] = {{1, "1002", "VOICE", 3, 0.5}, {2, "1001", "DATA", 1, 0.25}};
  one_scrape(b, (double)T0 + 60, s2, 2, &res);
  assert_int_equal(res.rerated, 1);
  assert_true(V(FAM_BILLING_RECORDS, A1001) == 2);
  assert_true(V(FAM_BILLING_ADJUSTMENT_RECORDS, A1001) == 1);
  assert_true(V(FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 2e6);
  assert_true(V(FAM_BILLING_ADJUSTMENT_SELL_PRICE, A1001) == 0.5);
  assert_true(V(FAM_BILLING_ADJUSTMENT_DURATION_SECONDS, A1001) == 1);
  assert_true(V(FAM_BILLING_ADJUSTMENT_BUY_PRICE, A1001) == 0.5);
  assert_true(V(FAM_BILLING_RECORDS, A1002) == 1);
  assert_true(V(FAM_BILLING_DATA_BYTES, A1002) == 3e6);
  assert_true(V(FAM_BILLING_ADJUSTMENT_RECORDS, A1002) == 0);
  assert_true(
      net(b, FAM_BILLING_RECORDS, FAM_BILLING_ADJUSTMENT_RECORDS, A1001) == 1);

  /* to a third label set: past MaxSeries 2, into the overflow families */
  rr_t s3[] = {{1, "1003", "SMS", 4, 0.5}, {2, "1001", "DATA", 1, 0.25}};
  one_scrape(b, (double)T0 + 120, s3, 2, &res);
  assert_true(V(FAM_BILLING_ADJUSTMENT_RECORDS, A1002) == 1);
  assert_true(V(FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1002) == 3e6);
  assert_true(V(FAM_BILLING_OVERFLOW_RECORDS, "") == 1);
  assert_true(V(FAM_BILLING_OVERFLOW_DATA_BYTES, "") == 4e6);
  /* and back: the overflow adjustments take it out again */
  one_scrape(b, (double)T0 + 180, s1, 2, &res);
  assert_true(V(FAM_BILLING_OVERFLOW_ADJUSTMENT_RECORDS, "") == 1);
  assert_true(V(FAM_BILLING_OVERFLOW_ADJUSTMENT_DATA_BYTES, "") == 4e6);
  assert_true(V(FAM_BILLING_RECORDS, A1001) == 3);
  assert_true(
      net(b, FAM_BILLING_RECORDS, FAM_BILLING_ADJUSTMENT_RECORDS, A1001) == 2);
  assert_true(net(b, FAM_BILLING_DATA_BYTES, FAM_BILLING_ADJUSTMENT_DATA_BYTES,
                  A1001) == 3e6);
  assert_true(V(FAM_BILLING_RERATED_RECORDS, "") == 3);
  usage_billing_destroy(b);
  conf_free(c);
}

static usage_billing_t *restored(const usage_billing_conf_t *c,
                                 const char *body, size_t len) {
  usage_billing_t *r = usage_billing_create(c);
  int dropped = -1;
  char err[256] = "";
  if (usage_billing_restore(r, body, len, &dropped, err, sizeof(err)) != 0)
    fail_msg("restore: %s", err);
  assert_int_equal(dropped, 0);
  return r;
}

/* The figures each id was counted with survive a restart: a re-rating
 * after it counts the difference; a crash between the StateFile holding a
 * re-rating and the commit counts it once. */
static void test_rerate_restart(void **state) {
  usage_billing_conf_t *c = conf_new();
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;
  usage_buf_t st, body;
  usage_buf_init(&st, 0);
  usage_buf_init(&body, 0);
  rr_t s1[] = {{1, "1001", "DATA", 2.5, 0.5}, {2, "1001", "DATA", 1, 0.25}};
  one_scrape(b, (double)T0, s1, 2, &res);
  assert_int_equal(usage_billing_serialize(b, &st), 0);
  usage_billing_destroy(b);
  b = restored(c, usage_buf_str(&st), usage_buf_len(&st));
  assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 3.5e6);

  /* re-rated down after the restart */
  rr_t s2[] = {{1, "1001", "DATA", 0.5, 0.5}, {2, "1001", "DATA", 1, 0.25}};
  rr_body(&body, s2, 2);
  usage_billing_begin(b, (double)T0 + 60);
  assert_int_equal(page_str(b, &body, &res), 0);
  assert_int_equal(res.rerated, 1);
  /* the state as written before the commit; then a crash */
  usage_buf_reset(&st);
  assert_int_equal(usage_billing_prepare(b), 0);
  assert_int_equal(usage_billing_serialize(b, &st), 0);
  usage_billing_destroy(b);
  b = restored(c, usage_buf_str(&st), usage_buf_len(&st));
  assert_true(V(FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 2e6);
  /* the same copy again: a duplicate, nothing counted twice */
  for (int i = 0; i < 2; i++) {
    usage_billing_begin(b, (double)T0 + 120 + i);
    assert_int_equal(page_str(b, &body, &res), 0);
    assert_int_equal(res.rerated, 0);
    assert_int_equal(res.duplicates, 2);
    usage_billing_commit(b);
    assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 3.5e6);
    assert_true(V(FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 2e6);
    assert_true(V(FAM_BILLING_RERATED_RECORDS, "") == 1);
  }
  /* up again, through one more restart: the reference is 0.5 MB */
  usage_buf_reset(&st);
  assert_int_equal(usage_billing_serialize(b, &st), 0);
  usage_billing_destroy(b);
  b = restored(c, usage_buf_str(&st), usage_buf_len(&st));
  rr_t s3[] = {{1, "1001", "DATA", 1.75, 0.5}, {2, "1001", "DATA", 1, 0.25}};
  one_scrape(b, (double)T0 + 180, s3, 2, &res);
  assert_int_equal(res.rerated, 1);
  assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 4.75e6);
  assert_true(net(b, FAM_BILLING_DATA_BYTES, FAM_BILLING_ADJUSTMENT_DATA_BYTES,
                  A1001) == 2.75e6);
  usage_buf_free(&st);
  usage_buf_free(&body);
  usage_billing_destroy(b);
  conf_free(c);
}

/* A state of format 2 keeps no figures: its ids count as counted; the
 * first copy seen after the upgrade is the reference (not a re-rating),
 * a change after it is counted. The state written then is format 3. */
static void test_rerate_old_state(void **state) {
  usage_billing_conf_t *c = conf_new();
  char old[512];
  snprintf(old, sizeof(old),
           "billing-state 2\ngroupby customerId,callClass,usageDirection\n"
           "window_start %lld\noverflow 0\n"
           "group 0 2 3000000000000000 2000000000 750000000 1000000000 "
           "=1001 =DATA =OUTBOUND\ninvalid 0 0 0\nid 1 %lld\nd 1 0\n"
           "end 1 2\n",
           T0 - 3600, T0 - 60);
  usage_billing_t *b = restored(c, old, strlen(old));
  assert_int_equal(usage_billing_window_ids(b), 2);
  assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 3e6);
  usage_billing_page_t res;
  /* id 1 was counted as 2 MB; it is now 5 MB, which cannot be known */
  rr_t s1[] = {{1, "1001", "DATA", 5, 0.5}, {2, "1001", "DATA", 1, 0.25}};
  one_scrape(b, (double)T0, s1, 2, &res);
  assert_int_equal(res.counted, 0);
  assert_int_equal(res.rerated, 0);
  assert_int_equal(res.duplicates, 2);
  assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 3e6);
  assert_true(V(FAM_BILLING_RERATED_RECORDS, "") == 0);
  /* from the reference on, a re-rating is counted */
  rr_t s2[] = {{1, "1001", "DATA", 4, 0.5}, {2, "1001", "DATA", 1, 0.25}};
  one_scrape(b, (double)T0 + 60, s2, 2, &res);
  assert_int_equal(res.rerated, 1);
  assert_true(V(FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 1e6);
  usage_buf_t st;
  usage_buf_init(&st, 0);
  assert_int_equal(usage_billing_serialize(b, &st), 0);
  assert_non_null(strstr(usage_buf_str(&st), "billing-state 3\n"));
  usage_billing_t *r = restored(c, usage_buf_str(&st), usage_buf_len(&st));
  one_scrape(r, (double)T0 + 120, s2, 2, &res);
  assert_int_equal(res.duplicates, 2);
  assert_true(value_of(r, FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 1e6);
  usage_buf_free(&st);
  usage_billing_destroy(r);
  usage_billing_destroy(b);
  conf_free(c);
}

/* A re-rating that would take a sum past 2^63 units refuses the scrape
 * (reason overflow), as a new record would. */
static void test_rerate_overflow(void **state) {
  usage_billing_conf_t *c = conf_new();
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;
  rr_t s1[] = {{1, "1001", "DATA", 5e12, 0.5}, {2, "1001", "DATA", 0, 0}};
  one_scrape(b, (double)T0, s1, 2, &res);
  rr_t s2[] = {{1, "1001", "DATA", 0, 0.5}, {2, "1001", "DATA", 0, 0}};
  one_scrape(b, (double)T0 + 60, s2, 2, &res);
  assert_true(V(FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 5e18);
  usage_buf_t body;
  usage_buf_init(&body, 0);
  rr_t s3[] = {{1, "1001", "DATA", 5e12, 0.5}, {2, "1001", "DATA", 0, 0}};
  rr_body(&body, s3, 2);
  usage_billing_begin(b, (double)T0 + 120);
  assert_int_equal(page_str(b, &body, &res), ERANGE);
  assert_non_null(strstr(res.error, "dataQuantity"));
  usage_billing_abort(b);
  assert_true(V(FAM_BILLING_DATA_BYTES, A1001) == 5e18);
  assert_true(V(FAM_BILLING_ADJUSTMENT_DATA_BYTES, A1001) == 5e18);
  usage_buf_free(&body);
  usage_billing_destroy(b);
  conf_free(c);
}

/* ---- a large window through the state file ---- */

#define BIG_N 1000000
#define BIG_PAGE 10000

/* big_page writes records [first, first + BIG_PAGE) of the large window:
 * ids with gaps, one event a second from 2024-04-01 (all in April), 1000
 * customers, figures as a rating engine writes them (MB with 3 decimals,
 * whole seconds, prices with 4 decimals). */
#define BIG_D0 1711929600LL /* 2024-04-01T00:00:00Z */
static void big_page(usage_buf_t *body, long first) {
  usage_buf_reset(body);
  usage_buf_puts(body, "[");
  for (long i = first; i < first + BIG_PAGE; i++) {
    long s = i + i % 7, sell = i * 31 % 1000000;
    usage_buf_printf(body,
                     "%s{\"id\":%ld,\"customerId\":%ld,\"eventDate\":\"2024-04-"
                     "%02ldT%02ld:%02ld:%02ldZ\",\"dataQuantity\":%ld.%03ld,"
                     "\"durationQuantity\":%ld,\"sellPrice\":%ld.%04ld,"
                     "\"buyPrice\":%ld.%04ld}",
                     i > first ? "," : "", 5000000000L + 3 * i, 1000 + i % 1000,
                     1 + s / 86400, s / 3600 % 24, s / 60 % 60, s % 60,
                     i * 7919 % 10000000 / 1000, i * 7919 % 1000, i % 3600,
                     sell / 10000, sell % 10000, sell * 6 / 10 / 10000,
                     sell * 6 / 10 % 10000);
  }
  usage_buf_puts(body, "]");
}

/* total_of: a family summed over its label sets */
static double total_of(const usage_billing_t *b, int family) {
  usage_batch_t *batch = usage_batch_create("t", "billing");
  assert_int_equal(usage_billing_samples(b, batch), 0);
  double v = 0;
  for (size_t i = 0; i < usage_batch_size(batch); i++)
    if (usage_batch_sample(batch, i)->family == family)
      v += usage_batch_sample(batch, i)->value;
  usage_batch_destroy(batch);
  return v;
}

static void test_state_large_window(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->lookback = 2000000;
  usage_billing_t *b = usage_billing_create(c);
  usage_billing_page_t res;
  usage_buf_t body, st;
  usage_buf_init(&body, 0);
  usage_buf_init(&st, 0);
  usage_billing_begin(b, (double)T0 + 60);
  for (long first = 0; first < BIG_N; first += BIG_PAGE) {
    big_page(&body, first);
    assert_int_equal(page_str(b, &body, &res), 0);
    assert_int_equal(res.counted, BIG_PAGE);
  }
  assert_int_equal(usage_billing_serialize(b, &st), 0);
  usage_billing_commit(b);
  assert_int_equal(usage_billing_window_ids(b), BIG_N);
  size_t len = usage_buf_len(&st);
  print_message("state of %d ids with their figures: %zu bytes, %.2f bytes "
                "per id; 10 million ids: %.0f MiB of %zu MiB allowed\n",
                BIG_N, len, (double)len / BIG_N, len * 10.0 / 1048576,
                USAGE_STATE_MAX / 1048576);
  /* ten million ids per window fit in what a load accepts */
  assert_true(len * 10 < USAGE_STATE_MAX);

  /* through the file and back */
  char dir[] = "/tmp/test_billing.XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[300], err[512];
  snprintf(path, sizeof(path), "%s/state", dir);
  assert_int_equal(usage_state_save(path, "billing", "big", usage_buf_str(&st),
                                    len, err, sizeof(err)),
                   0);
  char *data = NULL;
  size_t dlen = 0;
  assert_int_equal(
      usage_state_load(path, "billing", "big", &data, &dlen, err, sizeof(err)),
      0);
  usage_billing_t *r = usage_billing_create(c);
  int dropped;
  assert_int_equal(usage_billing_restore(r, data, dlen, &dropped, err, 512), 0);
  free(data);
  assert_int_equal(usage_billing_window_ids(r), BIG_N);
  assert_true(total_of(r, FAM_BILLING_RECORDS) == BIG_N);
  double bytes = total_of(r, FAM_BILLING_DATA_BYTES);
  assert_true(bytes == total_of(b, FAM_BILLING_DATA_BYTES) && bytes > 0);

  /* every record of the window is a duplicate after the restart */
  usage_billing_begin(r, (double)T0 + 120);
  size_t dups = 0;
  for (long first = 0; first < BIG_N; first += BIG_PAGE) {
    big_page(&body, first);
    assert_int_equal(page_str(r, &body, &res), 0);
    assert_int_equal(res.counted, 0);
    dups += res.duplicates;
  }
  assert_int_equal(dups, BIG_N);
  usage_billing_commit(r);
  assert_true(total_of(r, FAM_BILLING_RECORDS) == BIG_N);
  assert_true(total_of(r, FAM_BILLING_DATA_BYTES) == bytes);
  assert_true(total_of(r, FAM_BILLING_RERATED_RECORDS) == 0);

  /* a body over the limit the load accepts is not written (the old file
   * stays): calloc'd pages are never touched */
  char *huge = calloc(USAGE_STATE_MAX + 1, 1);
  assert_non_null(huge);
  assert_int_equal(usage_state_save(path, "billing", "big", huge,
                                    USAGE_STATE_MAX + 1, err, sizeof(err)),
                   EFBIG);
  assert_non_null(strstr(err, "over the limit"));
  free(huge);
  assert_int_equal(
      usage_state_load(path, "billing", "big", &data, &dlen, err, sizeof(err)),
      0);
  assert_int_equal(dlen, len);
  free(data);

  char cmd[400];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  usage_buf_free(&body);
  usage_buf_free(&st);
  usage_billing_destroy(r);
  usage_billing_destroy(b);
  conf_free(c);
}

/* A format 1 state (one "id" line each; a negative id an older version
 * counted) is still read. */
static void test_state_format_1(void **state) {
  usage_billing_conf_t *c = conf_new();
  usage_billing_t *b = usage_billing_create(c);
  const char *body =
      "billing-state 1\ngroupby customerId,callClass,usageDirection\n"
      "window_start 5\nid 3 7\nid -1 7\nid 1 6\nend 0 3\n";
  int dropped;
  char err[256] = "";
  assert_int_equal(
      usage_billing_restore(b, body, strlen(body), &dropped, err, sizeof(err)),
      0);
  assert_int_equal(usage_billing_window_ids(b), 2);
  usage_billing_destroy(b);
  conf_free(c);
}

/* ---- a backlog larger than MaxPages ---- */

/* The vendor in miniature: n records sorted by eventDate,id, 4 a second
 * (so chunks cut seconds), served page by page from eventDateFrom. */
#define BL_PAGE 10
#define BL_MAX_PAGES 3
#define BL_N (5 * BL_MAX_PAGES * BL_PAGE)
static long long bl_ev(long i) { return -20000 + i / 4; }

/* bl_scrape runs one scrape as scrape.c does (pages up to MaxPages, a
 * prefix committed when the last one is full). With save, the StateFile
 * body as written before the commit goes there. Returns the pages read,
 * or -1 when the scrape was aborted. */
static int bl_scrape(usage_billing_t *b, double now, usage_buf_t *save) {
  int64_t from = usage_billing_begin(b, now);
  long first = 0;
  while (first < BL_N && T0 + bl_ev(first) < from)
    first++;
  for (int page = 1; page <= BL_MAX_PAGES; page++) {
    long ids[BL_PAGE];
    long long evs[BL_PAGE];
    size_t n = 0;
    for (long i = first + (page - 1) * BL_PAGE; i < BL_N && n < BL_PAGE; i++) {
      ids[n] = 1000 + i;
      evs[n++] = bl_ev(i);
    }
    usage_billing_page_t res;
    assert_int_equal(feed(b, ids, evs, n, &res), 0);
    if (n < BL_PAGE)
      goto commit;
  }
  if (usage_billing_more(b) != 0) {
    usage_billing_abort(b);
    return -1;
  }
commit:
  if (save != NULL) {
    usage_buf_reset(save);
    assert_int_equal(usage_billing_serialize(b, save), 0);
  }
  usage_billing_commit(b);
  return 0;
}

static usage_billing_t *bl_restore(const usage_billing_conf_t *c,
                                   usage_buf_t *saved) {
  usage_billing_t *r = usage_billing_create(c);
  int dropped;
  char err[256];
  assert_int_equal(usage_billing_restore(r, usage_buf_str(saved),
                                         usage_buf_len(saved), &dropped, err,
                                         sizeof(err)),
                   0);
  return r;
}

/* A backlog of 5 x MaxPages pages inside the Lookback: each scrape commits
 * a chunk and moves the cursor, so it catches up (one scrape more than 5:
 * the records of each chunk's last, cut second are read again, as
 * duplicates); every record is counted exactly once, and scrapes after it
 * count nothing new. */
static void test_backlog_catches_up(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->page_size = BL_PAGE;
  c->max_pages = BL_MAX_PAGES;
  usage_billing_t *b = usage_billing_create(c);
  double now = (double)T0;
  int64_t cursor, prev = INT64_MIN;
  int scrapes = 0;
  do {
    assert_int_equal(bl_scrape(b, now += 60, NULL), 0);
    scrapes++;
    double got = value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND");
    assert_true(got > 0 && got <= BL_N);
    if (usage_billing_cursor(b, &cursor)) {
      assert_true(cursor > prev); /* the watermark advances */
      prev = cursor;
    }
    assert_true(scrapes <= 6);
  } while (usage_billing_cursor(b, &cursor));
  assert_true(scrapes >= 5);
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == BL_N);
  assert_true(value_of(b, FAM_BILLING_DATA_BYTES, "1001,DATA,OUTBOUND") ==
              BL_N * 1e6);
  /* caught up: the Lookback is read again (in chunks), nothing counted */
  for (int i = 0; i < 8; i++) {
    assert_int_equal(bl_scrape(b, now += 60, NULL), 0);
    assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == BL_N);
  }
  usage_billing_destroy(b);
  conf_free(c);
}

/* A restart in the middle of the catching up, after the state was saved
 * (crash after the save) and before (the save of the scrape lost): nothing
 * lost, nothing doubled. */
static void test_backlog_restart(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->page_size = BL_PAGE;
  c->max_pages = BL_MAX_PAGES;
  for (int before_save = 0; before_save < 2; before_save++) {
    usage_billing_t *b = usage_billing_create(c);
    usage_buf_t saved, older;
    usage_buf_init(&saved, 0);
    usage_buf_init(&older, 0);
    double now = (double)T0;
    for (int i = 0; i < 3; i++) {
      usage_buf_reset(&older);
      if (usage_buf_len(&saved) > 0)
        usage_buf_puts(&older, usage_buf_str(&saved));
      assert_int_equal(bl_scrape(b, now += 60, &saved), 0);
    }
    int64_t cursor;
    assert_true(usage_billing_cursor(b, &cursor)); /* mid-backlog */
    usage_billing_destroy(b);
    b = bl_restore(c, before_save ? &older : &saved);
    int scrapes = 0;
    do {
      assert_int_equal(bl_scrape(b, now += 60, &saved), 0);
      assert_true(++scrapes <= 10);
    } while (usage_billing_cursor(b, &cursor));
    assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == BL_N);
    /* the state after catching up holds the same */
    usage_billing_t *r = bl_restore(c, &saved);
    assert_true(value_of(r, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == BL_N);
    usage_billing_destroy(r);
    usage_billing_destroy(b);
    usage_buf_free(&saved);
    usage_buf_free(&older);
  }
  conf_free(c);
}

/* More than MaxPages pages of one eventDate second: no cursor can be
 * committed, the scrape is dropped (as before: an error, not a loop). */
static void test_backlog_one_second(void **state) {
  usage_billing_conf_t *c = conf_new();
  c->page_size = 2;
  c->max_pages = 1;
  usage_billing_t *b = usage_billing_create(c);
  int64_t from = usage_billing_begin(b, (double)T0);
  long ids[] = {1, 2};
  long long evs[] = {(long long)(from - T0), (long long)(from - T0)};
  usage_billing_page_t res;
  assert_int_equal(feed(b, ids, evs, 2, &res), 0);
  assert_int_equal(usage_billing_more(b), EDEADLK);
  usage_billing_abort(b);
  assert_true(value_of(b, FAM_BILLING_RECORDS, "1001,DATA,OUTBOUND") == -1);
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
      cmocka_unit_test(test_corrupt_ids),
      cmocka_unit_test(test_held_back_record),
      cmocka_unit_test(test_overflow_not_confused),
      cmocka_unit_test(test_sum_overflow),
      cmocka_unit_test(test_alloc_failure_no_double_count),
      cmocka_unit_test(test_rerate_up_down),
      cmocka_unit_test(test_rerate_group_move),
      cmocka_unit_test(test_rerate_restart),
      cmocka_unit_test(test_rerate_old_state),
      cmocka_unit_test(test_rerate_overflow),
      cmocka_unit_test(test_state_large_window),
      cmocka_unit_test(test_state_format_1),
      cmocka_unit_test(test_backlog_catches_up),
      cmocka_unit_test(test_backlog_restart),
      cmocka_unit_test(test_backlog_one_second),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
