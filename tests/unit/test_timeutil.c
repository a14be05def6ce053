/* SPDX-License-Identifier: MIT */
/* test_timeutil: usage_parse_time, the one date parser every vendor uses:
 * what the vendors really send is read, anything else is refused (an
 * impossible date, hour 24, "nan" seconds, a time without a zone). */
#include "timeutil.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define T0 1714564800.0 /* 2024-05-01T12:00:00Z */
#define D0 1714521600.0 /* 2024-05-01T00:00:00Z */

static const struct {
  const char *in;
  int want;
  double value;
} cases[] = {
    /* what the vendors send */
    {"2024-05-01T12:00:00Z", 0, T0},
    {"2024-05-01T12:00:00z", 0, T0},
    {"2024-05-01t12:00:00Z", 0, T0},
    {"2024-05-01 12:00:00Z", 0, T0},
    {"2024-05-01T12:00:00.5Z", 0, T0 + 0.5},
    {"2024-05-01T12:00:00.1234567Z", 0, T0 + 0.1234567}, /* .NET ticks */
    {"2024-05-01T14:00:00+02:00", 0, T0},
    {"2024-05-01T14:00:00+0200", 0, T0},
    {"2024-05-01T07:30:00-04:30", 0, T0},
    {"2024-05-01T12:00:00.250+00:00", 0, T0 + 0.25},
    {"2024-05-01", 0, D0},  /* a date alone: Billing loadedDate, Period */
    {"2024-05-01Z", 0, D0}, /* Jasper cycleStartDate */
    {"2024-05-01+02:00", 0, D0 - 7200},
    {"/Date(1543536000000)/", 0, 1543536000},
    {"/Date(1543536000000+0000)/", 0, 1543536000},
    {"/Date(1543536000500-0500)/", 0, 1543536000.5},
    {"/Date(-1000)/", 0, -1},
    /* ServiceStack's other forms (the simulator's quirks mode sends them) */
    {"2024-05-01T07:00:00.000-05:00", 0, T0},
    {"2024-05-01T12:00:00.0000000+00:00", 0, T0},
    {"/Date(1714564800000-0000)/", 0, T0},
    /* edges that are valid */
    {"2024-02-29T00:00:00Z", 0, 1709164800},
    {"2000-02-29T00:00:00Z", 0, 951782400},
    {"2024-12-31T23:59:59Z", 0, 1735689599},
    {"2016-12-31T23:59:60Z", 0, 1483228800}, /* a leap second */
    {"1970-01-01T00:00:00Z", 0, 0},
    /* never */
    {"", ENOENT, 0},
    {"0001-01-01T00:00:00Z", ENOENT, 0},
    {"0001-01-01T00:00:00", ENOENT, 0},
    {"0001-01-01", ENOENT, 0},
    {"/Date(-62135596800000)/", ENOENT, 0},
    {"/Date(-62135596800000-0000)/", ENOENT, 0},
    {"0001-01-01T00:00:00.0000000", ENOENT, 0},
    /* impossible dates and times */
    {"2024-02-30T00:00:00Z", EINVAL, 0},
    {"2024-02-31", EINVAL, 0},
    {"2023-02-29T00:00:00Z", EINVAL, 0},
    {"1900-02-29T00:00:00Z", EINVAL, 0},
    {"2024-04-31T00:00:00Z", EINVAL, 0},
    {"2024-00-10T00:00:00Z", EINVAL, 0},
    {"2024-13-01T00:00:00Z", EINVAL, 0},
    {"2024-05-00T00:00:00Z", EINVAL, 0},
    {"2024-05-01T24:00:00Z", EINVAL, 0},
    {"2024-05-01T25:00:00Z", EINVAL, 0},
    {"2024-05-01T12:60:00Z", EINVAL, 0},
    {"2024-05-01T12:00:61Z", EINVAL, 0},
    /* not digits where digits belong */
    {"2024-05-01T12:00:nanZ", EINVAL, 0},
    {"2024-05-01T12:00:infZ", EINVAL, 0},
    {"2024-05-01T12:00:1e1Z", EINVAL, 0},
    {"2024-05-01T12:00:+1Z", EINVAL, 0},
    {"2024-05-01T12:00: 1Z", EINVAL, 0},
    {"2024-05-01T12:00:00.Z", EINVAL, 0},
    {"2024-05-01T12:00:00.1234567890Z", EINVAL, 0},
    {"2024-05-01T1:00:00Z", EINVAL, 0},
    {"2024-05-01T12:00Z", EINVAL, 0},
    {"2024-5-1", EINVAL, 0},
    {"+2024-05-01", EINVAL, 0},
    {"garbage", EINVAL, 0},
    /* a zone is required with a time, and must be well formed */
    {"2024-05-01T12:00:00", EINVAL, 0},
    {"2024-05-01T12:00:00.5", EINVAL, 0},
    {"2024-05-01T12:00:00+02", EINVAL, 0},
    {"2024-05-01T12:00:00+2:00", EINVAL, 0},
    {"2024-05-01T12:00:00+24:00", EINVAL, 0},
    {"2024-05-01T12:00:00+02:60", EINVAL, 0},
    {"2024-05-01T12:00:00ZZ", EINVAL, 0},
    {"2024-05-01T12:00:00Zjunk", EINVAL, 0},
    {"2024-05-01T12:00:00Z ", EINVAL, 0},
    {"2024-05-01X", EINVAL, 0},
    /* .NET dates, strictly */
    {"/Date()/", EINVAL, 0},
    {"/Date(abc)/", EINVAL, 0},
    {"/Date(1543536000000)", EINVAL, 0},
    {"/Date(1543536000000)/x", EINVAL, 0},
    {"/Date(1543536000000+00)/", EINVAL, 0},
    {"/Date(1543536000000x)/", EINVAL, 0},
    {"/Date(99999999999999999999)/", EINVAL, 0},
};

static void test_parse_time(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    double v = -12345;
    int status = usage_parse_time(cases[i].in, &v);
    if (status != cases[i].want)
      fail_msg("\"%s\": status %d, want %d", cases[i].in, status,
               cases[i].want);
    if (status == 0 && fabs(v - cases[i].value) > 1e-6)
      fail_msg("\"%s\": %.6f, want %.6f", cases[i].in, v, cases[i].value);
    if (status != 0 && v != -12345)
      fail_msg("\"%s\": output written on error", cases[i].in);
  }
  double v;
  assert_int_equal(usage_parse_time(NULL, &v), ENOENT);
}

/* usage_format_time's output reads back as the same second. */
static void test_round_trip(void **state) {
  (void)state;
  static const int64_t t[] = {0,          951782400,  1709164800,
                              1714564800, 1735689599, 4102444799};
  for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
    char buf[32];
    usage_format_time(t[i], buf);
    double v;
    assert_int_equal(usage_parse_time(buf, &v), 0);
    assert_true(v == (double)t[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_time),
      cmocka_unit_test(test_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
