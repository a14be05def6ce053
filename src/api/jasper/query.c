/* SPDX-License-Identifier: MIT */
/* jasper/query.c: the request of one page of a rate plan
 * (/rws/api/v1/usages?ratePlanName=...), and the option values that go
 * into it: usage type names and CycleStartDate dates. Pure. */
#include "api/jasper/internal.h"
#include "http.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>

const char *usage_jasper_type_name(usage_jasper_type_t t) {
  static const char *const names[] = {NULL, "DATA", "SMS", "VOICE"};
  return (unsigned)t < 4 ? names[t] : NULL;
}

/* A date is valid when it reads as midnight UTC no earlier than 1970 and
 * formats back to itself (2023-02-29 does not). */
int usage_jasper_valid_date(const char *s) {
  if (s == NULL || strlen(s) != 10)
    return 0;
  char stamp[32];
  int64_t t;
  snprintf(stamp, sizeof(stamp), "%sT00:00:00Z", s);
  if (usage_parse_time_exact(stamp, strlen(stamp), &t) != 0 || t < 0)
    return 0;
  char back[32];
  usage_format_time(t, back);
  return strncmp(back, s, 10) == 0;
}

int usage_jasper_build_query(usage_buf_t *q, const usage_jasper_conf_t *c,
                             const usage_jasper_plan_t *p, long page) {
  usage_buf_reset(q);
  usage_buf_puts(q, "/rws/api/v1/usages?ratePlanName=");
  usage_http_escape(q, p->name);
  if (p->version != NULL)
    usage_buf_printf(q, "&ratePlanVersion=%s", p->version);
  if (c->cycle_start[0] != 0)
    usage_buf_printf(q, "&cycleStartDate=%s", c->cycle_start);
  if (c->usage_type != USAGE_JASPER_ALL)
    usage_buf_printf(q, "&usageType=%s", usage_jasper_type_name(c->usage_type));
  usage_buf_printf(q, "&pageNumber=%ld&pageSize=%d", page, c->page_size);
  return usage_buf_failed(q);
}
