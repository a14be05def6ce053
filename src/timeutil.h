/* SPDX-License-Identifier: MIT */
/* timeutil: the plugin's one date parser and formatter. Upstream
 * timestamps (ISO 8601 with a zone, .NET "/Date(ms)/") to Unix seconds, and
 * Unix seconds to the "yyyy-MM-ddTHH:mm:ssZ" that query strings use. */
#ifndef USAGE_TIMEUTIL_H
#define USAGE_TIMEUTIL_H 1

#include <stddef.h>
#include <stdint.h>

/* usage_days_from_civil: days since 1970-01-01 of a proleptic Gregorian
 * date (month 1..12, day 1..31). */
int64_t usage_days_from_civil(int64_t y, unsigned m, unsigned d);

/* usage_parse_time reads an upstream timestamp into Unix seconds, strictly:
 * yyyy-MM-ddTHH:mm:ss (T, t or a space), a valid calendar date, hours
 * 00-23, minutes 00-59, seconds 00-60 as two digits with an optional
 * fraction of 1-9 digits, then a zone (Z, +hh:mm or +hhmm) that is
 * required; a date alone (yyyy-MM-dd, zone optional: Jasper sends
 * yyyy-MM-ddZ) is midnight; .NET "/Date(ms)/" and "/Date(ms+hhmm)/".
 * 0, ENOENT for an empty string or 0001-01-01 and DateTime.MinValue
 * ("never"), EINVAL for anything else. */
int usage_parse_time(const char *s, double *out);

/* usage_parse_time_exact reads exactly yyyy-MM-ddTHH:mm:ssZ (len bytes, no
 * NUL needed) into whole seconds. 0 or EINVAL. */
int usage_parse_time_exact(const char *s, size_t len, int64_t *out);

/* usage_format_time writes t as yyyy-MM-ddTHH:mm:ssZ (UTC) into out. */
void usage_format_time(int64_t t, char out[32]);

#endif
