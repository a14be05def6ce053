/* SPDX-License-Identifier: MIT */
/* expfmt: Prometheus text 0.0.4 / OpenMetrics 1.0.0 rendering (see
 * expfmt.h). The two formats share sample lines; they differ in the family
 * name of counters and info families, the # UNIT line and the # EOF end. */
#include "expfmt.h"
#include "families.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* expfmt_family_name writes the family name as the format wants it: the
 * OpenMetrics name of a counter drops "_total", of an info family "_info". */
static int expfmt_family_name(usage_buf_t *b, const usage_family_t *f,
                              usage_format_t fmt) {
  size_t len = strlen(f->name);
  if (fmt == USAGE_FMT_OPENMETRICS) {
    if (f->type == USAGE_COUNTER && len > 6 &&
        strcmp(f->name + len - 6, "_total") == 0)
      len -= 6;
    else if (f->is_info && len > 5 && strcmp(f->name + len - 5, "_info") == 0)
      len -= 5;
  }
  return usage_buf_append(b, f->name, len);
}

static int expfmt_help(usage_buf_t *b, const char *s, usage_format_t fmt) {
  for (; *s; s++) {
    int status;
    if (*s == '\\')
      status = usage_buf_puts(b, "\\\\");
    else if (*s == '\n')
      status = usage_buf_puts(b, "\\n");
    else if (*s == '"' && fmt == USAGE_FMT_OPENMETRICS)
      status = usage_buf_puts(b, "\\\"");
    else
      status = usage_buf_putc(b, *s);
    if (status != 0)
      return status;
  }
  return 0;
}

int expfmt_header(usage_buf_t *b, int family, usage_format_t fmt) {
  const usage_family_t *f = &usage_families[family];
  const char *type = "gauge";
  if (f->type == USAGE_COUNTER)
    type = "counter";
  else if (f->is_info && fmt == USAGE_FMT_OPENMETRICS)
    type = "info";

  usage_buf_puts(b, "# HELP ");
  expfmt_family_name(b, f, fmt);
  usage_buf_putc(b, ' ');
  expfmt_help(b, f->help, fmt);
  usage_buf_puts(b, "\n# TYPE ");
  expfmt_family_name(b, f, fmt);
  usage_buf_printf(b, " %s\n", type);
  if (fmt == USAGE_FMT_OPENMETRICS && f->unit != NULL) {
    usage_buf_puts(b, "# UNIT ");
    expfmt_family_name(b, f, fmt);
    usage_buf_printf(b, " %s\n", f->unit);
  }
  return usage_buf_failed(b);
}

int expfmt_label_value(usage_buf_t *b, const char *s) {
  const char *run = s;
  for (; *s; s++) {
    const char *esc = NULL;
    if (*s == '\\')
      esc = "\\\\";
    else if (*s == '"')
      esc = "\\\"";
    else if (*s == '\n')
      esc = "\\n";
    if (esc == NULL)
      continue;
    usage_buf_append(b, run, (size_t)(s - run));
    usage_buf_puts(b, esc);
    run = s + 1;
  }
  usage_buf_append(b, run, (size_t)(s - run));
  return usage_buf_failed(b);
}

/* put_u64 writes the decimal digits of u ending at end; returns where they
 * start. */
static char *put_u64(char *end, uint64_t u) {
  do {
    *--end = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  return end;
}

/* expfmt_decimal writes v as digits with a decimal point when v is exactly
 * the double nearest m / 10^k for a whole m below 10^15 and some k in
 * 1..15, v at least 1e-4 in magnitude (where %g would use an exponent).
 * Then m's digits are the 15-digit rounding of v, so the text is what
 * "%.15g" prints. 1 when it wrote (or the buffer failed), 0 when v is
 * not such a number. */
static int expfmt_decimal(usage_buf_t *b, double v) {
  static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  double a = fabs(v);
  if (a < 1e-4 || a >= 1e14)
    return 0;
  for (int k = 1; k <= 15; k++) {
    double m = a * pow10[k]; /* powers of ten up to 1e22 are exact */
    if (m >= 1e15)
      return 0;
    if (m != floor(m))
      continue;
    if (m / pow10[k] != a) /* both exact: a correctly rounded quotient */
      continue;
    uint64_t u = (uint64_t)m;
    while (u % 10 == 0 && k > 1) { /* 0.50 -> 0.5 */
      u /= 10;
      k--;
    }
    char tmp[48], *end = tmp + sizeof(tmp);
    char *p = put_u64(end, u);
    int ndig = (int)(end - p);
    if (ndig <= k) { /* 0.00ddd */
      while (ndig < k) {
        *--p = '0';
        ndig++;
      }
      *--p = '.';
      *--p = '0';
    } else { /* ddd.ddd: move the integer digits one left */
      memmove(p - 1, p, (size_t)(ndig - k));
      p--;
      end[-k - 1] = '.';
    }
    if (v < 0)
      *--p = '-';
    usage_buf_append(b, p, (size_t)(end - p));
    return 1;
  }
  return 0;
}

/* expfmt_value: whole numbers below 2^53 and decimals of up to 15 digits
 * (the common figures) without printf; other values with "%.Ng" for the
 * smallest N of 15, 16, 17 that reads back (strtod). */
int expfmt_value(usage_buf_t *b, double v) {
  if (isnan(v))
    return usage_buf_puts(b, "NaN");
  if (isinf(v))
    return usage_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    char tmp[24], *end = tmp + sizeof(tmp);
    char *p = put_u64(end, (uint64_t)fabs(v));
    if (signbit(v)) /* -0 too, as printf spells it */
      *--p = '-';
    return usage_buf_append(b, p, (size_t)(end - p));
  }
  if (expfmt_decimal(b, v))
    return usage_buf_failed(b);
  char tmp[32];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
    if (strtod(tmp, NULL) == v)
      break;
  }
  return usage_buf_puts(b, tmp);
}

int expfmt_sample(usage_buf_t *b, int family, const char *source,
                  unsigned nlabels, const char *const *labels, double value) {
  const usage_family_t *f = &usage_families[family];
  usage_buf_puts(b, f->name);
  if (source != NULL || nlabels > 0) {
    usage_buf_putc(b, '{');
    const char *sep = "";
    if (source != NULL) {
      usage_buf_puts(b, "source=\"");
      expfmt_label_value(b, source);
      usage_buf_putc(b, '"');
      sep = ",";
    }
    for (unsigned i = 0; i < nlabels; i++) {
      usage_buf_puts(b, sep);
      usage_buf_puts(b, labels[2 * i]);
      usage_buf_puts(b, "=\"");
      expfmt_label_value(b, labels[2 * i + 1]);
      usage_buf_putc(b, '"');
      sep = ",";
    }
    usage_buf_putc(b, '}');
  }
  usage_buf_putc(b, ' ');
  expfmt_value(b, value);
  usage_buf_putc(b, '\n');
  return usage_buf_failed(b);
}

int expfmt_footer(usage_buf_t *b, usage_format_t fmt) {
  if (fmt == USAGE_FMT_OPENMETRICS)
    return usage_buf_puts(b, "# EOF\n");
  return usage_buf_failed(b);
}
