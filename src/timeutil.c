/* SPDX-License-Identifier: MIT */
/* timeutil: upstream timestamps to Unix seconds and back (see timeutil.h). */
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

int64_t usage_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

int usage_parse_time(const char *s, double *out) {
  if (s == NULL || *s == 0)
    return ENOENT;
  long long ms;
  char tail[8];
  if (sscanf(s, "/Date(%lld%7s", &ms, tail) == 2) { /* .NET JSON date */
    *out = (double)ms / 1000.0;
    return ms <= -62135596800000LL ? ENOENT : 0;
  }
  int y, mo, d, h = 0, mi = 0, n = 0;
  double sec = 0;
  if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
    return EINVAL;
  const char *p = s + n;
  if (*p == 'T' || *p == ' ') {
    int m2 = 0;
    if (sscanf(p + 1, "%2d:%2d:%lf%n", &h, &mi, &sec, &m2) != 3)
      return EINVAL;
    p += 1 + m2;
  }
  long offset = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh = 0, om = 0, m3 = 0;
    if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m3) < 2 &&
        sscanf(p + 1, "%2d%2d%n", &oh, &om, &m3) < 2)
      return EINVAL;
    offset = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
    p += 1 + m3;
  }
  if (*p != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
      sec < 0 || sec >= 61)
    return EINVAL;
  if (y <= 1)
    return ENOENT; /* 0001-01-01T00:00:00Z: never */
  double t =
      (double)usage_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400.0 +
      h * 3600.0 + mi * 60.0 + sec - (double)offset;
  *out = t;
  return 0;
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
