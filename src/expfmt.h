/* SPDX-License-Identifier: MIT */
/* expfmt: the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0.0,
 * written by hand: family headers, sample lines, label and HELP escaping,
 * number formatting. Pure functions over a capped buffer. */
#ifndef USAGE_EXPFMT_H
#define USAGE_EXPFMT_H 1

#include "buf.h"

typedef enum { USAGE_FMT_TEXT = 0, USAGE_FMT_OPENMETRICS = 1 } usage_format_t;

#define USAGE_CT_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define USAGE_CT_OPENMETRICS                                                   \
  "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* expfmt_header writes the # HELP / # TYPE (/ # UNIT) lines of a family. */
int expfmt_header(usage_buf_t *b, int family, usage_format_t fmt);
/* expfmt_sample writes one sample line: the family's sample name, the label
 * source="..." first when source is not NULL, then the sample's labels. The
 * line is the same in both formats. */
int expfmt_sample(usage_buf_t *b, int family, const char *source,
                  unsigned nlabels, const char *const *labels, double value);
/* expfmt_footer writes what ends a body (# EOF for OpenMetrics). */
int expfmt_footer(usage_buf_t *b, usage_format_t fmt);
/* expfmt_label_value escapes \, " and newline. */
int expfmt_label_value(usage_buf_t *b, const char *s);
/* expfmt_value formats a sample value the shortest way that reads back to
 * the same double (integers without exponent, NaN, +Inf, -Inf). */
int expfmt_value(usage_buf_t *b, double v);

#endif
