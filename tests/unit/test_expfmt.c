/* SPDX-License-Identifier: MIT */
/* test_expfmt: whole-text golden bodies in both formats, escaping, value
 * formatting. */
#include "expfmt.h"
#include "families.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

/* The family set of the golden files: one row a sample, in order. */
static const struct {
  int family;
  const char *source;
  unsigned nlabels;
  const char *labels[8];
  double value;
} rows[] = {
    {FAM_SOURCE_UP, "acme", 1, {"kind", "ccc"}, 1},
    {FAM_SCRAPE_DURATION, "acme", 0, {NULL}, 0.25},
    {FAM_SCRAPE_REQUESTS, "acme", 1, {"code", "200"}, 12},
    {FAM_SCRAPE_REQUESTS, "acme", 1, {"code", "500"}, 1},
    {FAM_BILLING_OVERFLOW_RECORDS, "b\\ill\"ing\nx", 0, {NULL}, 3},
    {FAM_CCC_SERVICE_INFO,
     "acme",
     4,
     {"service", "2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a", "name",
      "Caf\xc3\xa9 \"Z\xc3\xbcrich\" \xe2\x9c\x93", "code", "C\\1",
      "primary_domain", "a\nb"},
     1},
    {FAM_EXPORTER_BUILD_INFO, NULL, 1, {"version", "1.2.3"}, 1},
};

static void render(usage_buf_t *b, usage_format_t fmt) {
  int last = -1;
  for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
    if (rows[i].family != last)
      assert_int_equal(expfmt_header(b, rows[i].family, fmt), 0);
    last = rows[i].family;
    assert_int_equal(expfmt_sample(b, rows[i].family, rows[i].source,
                                   rows[i].nlabels, rows[i].labels,
                                   rows[i].value),
                     0);
  }
  assert_int_equal(expfmt_footer(b, fmt), 0);
}

static void test_golden(void **state) {
  static const struct {
    const char *name;
    usage_format_t fmt;
    const char *file;
  } cases[] = {
      {"text 0.0.4", USAGE_FMT_TEXT, "expfmt/families.prom"},
      {"OpenMetrics 1.0.0", USAGE_FMT_OPENMETRICS, "expfmt/families.om"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_buf_t b;
    usage_buf_init(&b, 0);
    render(&b, cases[i].fmt);
    char *want = tu_read_fixture(cases[i].file, NULL);
    if (strcmp(b.data, want) != 0)
      fail_msg("%s: got\n%s\nwant\n%s", cases[i].name, b.data, want);
    free(want);
    usage_buf_free(&b);
  }
}

static void test_label_escape(void **state) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"plain", "plain"},
      {"", ""},
      {"a\\b", "a\\\\b"},
      {"say \"hi\"", "say \\\"hi\\\""},
      {"l1\nl2\n", "l1\\nl2\\n"},
      {"tab\there", "tab\there"},
      {"\xc3\xa9\xe2\x82\xac", "\xc3\xa9\xe2\x82\xac"},
      {"\\\"\n", "\\\\\\\"\\n"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_buf_t b;
    usage_buf_init(&b, 0);
    assert_int_equal(expfmt_label_value(&b, cases[i].in), 0);
    const char *got = b.data ? b.data : "";
    if (strcmp(got, cases[i].out) != 0)
      fail_msg("escape \"%s\": \"%s\", want \"%s\"", cases[i].in, got,
               cases[i].out);
    usage_buf_free(&b);
  }
}

static void test_values(void **state) {
  static const struct {
    const char *name;
    double v;
    const char *out;
  } cases[] = {
      {"zero", 0, "0"},
      {"negative zero", -0.0, "-0"},
      {"integer", 42, "42"},
      {"negative integer", -7, "-7"},
      {"large integer", 123456789012, "123456789012"},
      {"2^53", 9007199254740992.0, "9007199254740992"},
      {"one tenth", 0.1, "0.1"},
      {"quarter", 0.25, "0.25"},
      {"third", 1.0 / 3, "0.3333333333333333"},
      {"nano", 1e-9, "1e-09"},
      {"1e21", 1e21, "1e+21"},
      {"negative fraction", -1.5, "-1.5"},
      {"NaN", NAN, "NaN"},
      {"+Inf", INFINITY, "+Inf"},
      {"-Inf", -INFINITY, "-Inf"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_buf_t b;
    usage_buf_init(&b, 0);
    assert_int_equal(expfmt_value(&b, cases[i].v), 0);
    if (strcmp(b.data, cases[i].out) != 0)
      fail_msg("%s: \"%s\", want \"%s\"", cases[i].name, b.data, cases[i].out);
    /* every finite value reads back to the same double */
    if (isfinite(cases[i].v) && strtod(b.data, NULL) != cases[i].v)
      fail_msg("%s: \"%s\" does not read back", cases[i].name, b.data);
    usage_buf_free(&b);
  }
}

/* value_ref is expfmt_value as it was with printf alone: the fast paths
 * must print the same text. */
static void value_ref(char *out, size_t size, double v) {
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(out, size, "%.0f", v);
    return;
  }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, size, "%.*g", prec, v);
    if (strtod(out, NULL) == v)
      break;
  }
}

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* 1,000,000 doubles of several kinds: each reads back (strtod) to the same
 * bits, and the text is the printf-only text. */
static void test_values_random(void **state) {
  (void)state;
  static const double pow10[] = {1,   1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  static const char *const kinds[] = {"bit pattern", "integer",
                                      "decimal",     "uniform",
                                      "scaled",      "neighbour of a decimal"};
  uint64_t seed = 42;
  usage_buf_t b;
  usage_buf_init(&b, 0);
  for (int i = 0; i < 1000000; i++) {
    int kind = i % 6;
    uint64_t r = splitmix(&seed);
    double v;
    switch (kind) {
    case 0: /* any finite double */
      memcpy(&v, &r, sizeof(v));
      if (!isfinite(v))
        v = 0;
      break;
    case 1: /* whole numbers around 2^53 and below */
      v = (double)(int64_t)(r >> (int)(splitmix(&seed) % 64)) *
          ((r & 1) ? -1 : 1);
      break;
    case 2: /* up to 17 digits with up to 15 after the point */
      v = (double)(r % 100000000000000000ULL >> (r % 40)) / pow10[r % 16];
      break;
    case 3: /* [0, 1) */
      v = (double)(r >> 11) / 9007199254740992.0;
      break;
    case 4: /* [0, 1) times 1e-10 .. 1e20 */
      v = (double)(r >> 11) / 9007199254740992.0 *
          pow(10, (double)((int)(r % 31) - 10));
      break;
    default: { /* one ulp off a short decimal */
      double d = (double)(r % 100000) / pow10[r % 8];
      v = nextafter(d, (r & 2) ? INFINITY : -INFINITY);
      break;
    }
    }
    if (r & 4)
      v = -v;
    usage_buf_reset(&b);
    assert_int_equal(expfmt_value(&b, v), 0);
    char want[64];
    value_ref(want, sizeof(want), v);
    if (strcmp(b.data, want) != 0)
      fail_msg("%s %.17g: \"%s\", want \"%s\"", kinds[kind], v, b.data, want);
    double back = strtod(b.data, NULL);
    if (memcmp(&back, &v, sizeof(v)) != 0)
      fail_msg("%s %.17g: \"%s\" reads back as %.17g", kinds[kind], v, b.data,
               back);
  }
  usage_buf_free(&b);
}

static void test_sample_no_labels(void **state) {
  (void)state;
  usage_buf_t b;
  usage_buf_init(&b, 0);
  expfmt_sample(&b, FAM_SOURCE_UP, NULL, 0, NULL, 0);
  assert_string_equal(b.data, "usage_source_up 0\n");
  usage_buf_free(&b);
}

static void test_cap(void **state) {
  (void)state;
  usage_buf_t b;
  usage_buf_init(&b, 60); /* a header does not fit, one sample line does */
  const char *labels[] = {"kind", "ccc"};
  assert_int_not_equal(expfmt_header(&b, FAM_SOURCE_UP, USAGE_FMT_TEXT), 0);
  assert_int_equal(b.failed, EFBIG);
  usage_buf_reset(&b);
  assert_int_equal(expfmt_sample(&b, FAM_SOURCE_UP, "a", 1, labels, 1), 0);
  assert_int_equal(b.len, 41);
  assert_int_equal(expfmt_sample(&b, FAM_SOURCE_UP, "a", 1, labels, 1), EFBIG);
  assert_true(b.len <= 60);
  usage_buf_free(&b);
}

/* Every family of the table renders a valid header in both formats. */
static void test_every_family(void **state) {
  (void)state;
  for (int fam = 0; fam < FAM_COUNT; fam++) {
    const usage_family_t *f = &usage_families[fam];
    assert_non_null(f->name);
    assert_non_null(f->help);
    assert_non_null(f->ds_type);
    size_t len = strlen(f->name);
    int total = len > 6 && strcmp(f->name + len - 6, "_total") == 0;
    if ((f->type == USAGE_COUNTER) != total)
      fail_msg("%s: counters (and only they) end in _total", f->name);
    if (f->unit != NULL && strstr(f->name, f->unit) == NULL)
      fail_msg("%s: unit %s not in the name", f->name, f->unit);
    usage_buf_t b;
    usage_buf_init(&b, 0);
    assert_int_equal(expfmt_header(&b, fam, USAGE_FMT_OPENMETRICS), 0);
    assert_non_null(strstr(b.data, "# HELP "));
    assert_non_null(strstr(b.data, "# TYPE "));
    usage_buf_free(&b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden),
      cmocka_unit_test(test_label_escape),
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_values_random),
      cmocka_unit_test(test_sample_no_labels),
      cmocka_unit_test(test_cap),
      cmocka_unit_test(test_every_family),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
