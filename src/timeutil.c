/* SPDX-License-Identifier: MIT */
/* timeutil: upstream timestamps to Unix seconds and back (see timeutil.h). */
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t usage_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return 0;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 1;
}

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int y, int m) {
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* parse_dotnet reads "/Date(ms)/" or "/Date(ms+hhmm)/" (ms since the epoch
 * in UTC; the offset only says where it was written and must be well
 * formed). 0, ENOENT for DateTime.MinValue, EINVAL. */
static int parse_dotnet(const char *s, double *out) {
  const char *p = s + 6; /* after "/Date(" */
  int neg = *p == '-';
  p += neg;
  long long ms = 0;
  int n = 0;
  for (; *p >= '0' && *p <= '9'; p++, n++) {
    if (n >= 17)
      return EINVAL; /* beyond any date a vendor sends */
    ms = ms * 10 + (*p - '0');
  }
  if (n == 0)
    return EINVAL;
  if (*p == '+' || *p == '-') {
    int oh, om;
    if (!digits(p + 1, 2, &oh) || !digits(p + 3, 2, &om) || oh > 23 || om > 59)
      return EINVAL;
    p += 5;
  }
  if (p[0] != ')' || p[1] != '/' || p[2] != 0)
    return EINVAL;
  if (neg)
    ms = -ms;
  if (ms <= -62135596800000LL)
    return ENOENT; /* DateTime.MinValue: never */
  *out = (double)ms / 1000.0;
  return 0;
}

int usage_parse_time(const char *s, double *out) {
  if (s == NULL || *s == 0)
    return ENOENT;
  if (strncmp(s, "/Date(", 6) == 0)
    return parse_dotnet(s, out);
  int y, mo, d, h = 0, mi = 0, se = 0;
  double frac = 0;
  if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
      s[7] != '-' || !digits(s + 8, 2, &d) || mo < 1 || mo > 12 || d < 1 ||
      d > days_in_month(y, mo))
    return EINVAL;
  const char *p = s + 10;
  int has_time = *p == 'T' || *p == 't' || *p == ' ';
  if (has_time) {
    if (!digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) ||
        p[6] != ':' || !digits(p + 7, 2, &se) || h > 23 || mi > 59 || se > 60)
      return EINVAL;
    p += 9;
    if (*p == '.') {
      double scale = 0.1;
      int n = 0;
      for (p++; *p >= '0' && *p <= '9'; p++, n++, scale /= 10)
        frac += (*p - '0') * scale;
      if (n == 0 || n > 9)
        return EINVAL;
    }
  }
  long offset = 0;
  int has_zone = 1;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    const char *q = p + 1;
    if (!digits(q, 2, &oh))
      return EINVAL;
    q += 2;
    if (*q == ':')
      q++;
    if (!digits(q, 2, &om) || oh > 23 || om > 59)
      return EINVAL;
    offset = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
    p = q + 2;
  } else {
    has_zone = 0;
  }
  if (*p != 0)
    return EINVAL;
  if (y <= 1)
    return ENOENT; /* 0001-01-01T00:00:00Z, with or without a zone: never */
  if (has_time && !has_zone)
    return EINVAL; /* local time of an unknown place */
  *out = (double)usage_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400.0 +
         h * 3600.0 + mi * 60.0 + se + frac - (double)offset;
  return 0;
}

int usage_parse_time_exact(const char *s, size_t len, int64_t *out) {
  int y, mo, d, h, mi, se;
  if (len != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != 'Z' || !digits(s, 4, &y) ||
      !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
      !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) ||
      !digits(s + 17, 2, &se) || mo < 1 || mo > 12 || d < 1 || d > 31 ||
      h > 23 || mi > 59 || se > 60)
    return EINVAL;
  *out = usage_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
         h * 3600 + mi * 60 + se;
  return 0;
}

void usage_format_time(int64_t t, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (gmtime_r(&tt, &tm) == NULL ||
      strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(out, 32, "1970-01-01T00:00:00Z");
}
