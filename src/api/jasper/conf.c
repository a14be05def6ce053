/* SPDX-License-Identifier: MIT */
/* jasper/conf.c: the options of <Jasper> blocks (see usage(5)): rate
 * plans, billing cycle, usage type, paging limits, per-device figures, and
 * the vendor's politeness defaults. collectd glue (oconfig_item_t). */
#include "collectd.h"
#include "configfile.h"
#include "plugin.h"

#include "api/jasper/jasper.h"
#include "conf_get.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* STR spells a numeric macro as a string literal, for range texts. */
#define STR_(x) #x
#define STR(x) STR_(x)

/* jasper_rate_plan: RatePlan "name" [version] */
static int jasper_rate_plan(usage_source_conf_t *src,
                            const oconfig_item_t *ci) {
  usage_jasper_conf_t *c = src->kind_conf;
  if (ci->values_num < 1 || ci->values_num > 2 ||
      ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[0].value.string[0] == 0) {
    usage_conf_err(src, "RatePlan",
                   "expected the rate plan name and optionally its version, "
                   "e.g. RatePlan \"Monthly-Flexible-Pool\" 2");
    return EINVAL;
  }
  char version[32] = "";
  if (ci->values_num == 2) {
    const oconfig_value_t *v = &ci->values[1];
    if (v->type == OCONFIG_TYPE_NUMBER && v->value.number >= 1 &&
        v->value.number <= 1e9 && v->value.number == floor(v->value.number))
      snprintf(version, sizeof(version), "%.0f", v->value.number);
    else if (v->type == OCONFIG_TYPE_STRING && v->value.string[0] != 0 &&
             strlen(v->value.string) < 10 &&
             strspn(v->value.string, "0123456789") == strlen(v->value.string) &&
             atol(v->value.string) >= 1)
      snprintf(version, sizeof(version), "%ld", atol(v->value.string));
    else {
      usage_conf_err(src, "RatePlan",
                     "rate plan \"%s\": the version must be a whole number "
                     "from 1",
                     ci->values[0].value.string);
      return EINVAL;
    }
  }
  const char *name = ci->values[0].value.string;
  /* One name once per block: two versions of a plan would publish the same
   * label set (rate_plan, zone[, iccid]) twice, with different figures. */
  for (size_t i = 0; i < c->plans_num; i++)
    if (strcmp(c->plans[i].name, name) == 0) {
      const char *v1 = c->plans[i].version, *v2 = version[0] ? version : NULL;
      usage_conf_err(src, "RatePlan",
                     "rate plan \"%s\" is configured twice (%s%s and %s%s); "
                     "a plan may appear once per block: use a second <Jasper> "
                     "block (its name is the source label) for another "
                     "version",
                     name, v1 ? "version " : "the most recent version",
                     v1 ? v1 : "", v2 ? "version " : "the most recent version",
                     v2 ? v2 : "");
      return EINVAL;
    }
  usage_jasper_plan_t *p = realloc(c->plans, (c->plans_num + 1) * sizeof(*p));
  if (p == NULL)
    return ENOMEM;
  c->plans = p;
  p = &c->plans[c->plans_num];
  p->name = strdup(name);
  p->version = version[0] ? strdup(version) : NULL;
  if (p->name == NULL || (version[0] && p->version == NULL)) {
    free(p->name);
    free(p->version);
    return ENOMEM;
  }
  c->plans_num++;
  return 0;
}

int usage_conf_jasper_option(usage_source_conf_t *src,
                             const oconfig_item_t *ci) {
  usage_jasper_conf_t *c = src->kind_conf;
  const char *k = ci->key;
  double d;
  int status;
  if (strcasecmp(k, "RatePlan") == 0)
    return jasper_rate_plan(src, ci);
  if (strcasecmp(k, "CycleStartDate") == 0) {
    char *s = NULL;
    if ((status = usage_get_string(src, ci, &s)) != 0)
      return status;
    int ok = usage_jasper_valid_date(s);
    if (ok)
      snprintf(c->cycle_start, sizeof(c->cycle_start), "%s", s);
    else
      usage_conf_err(src, k, "\"%s\" is not a date as yyyy-MM-dd", s);
    free(s);
    return ok ? 0 : EINVAL;
  }
  if (strcasecmp(k, "UsageType") == 0) {
    char *s = NULL;
    if ((status = usage_get_string(src, ci, &s)) != 0)
      return status;
    status = 0;
    if (strcasecmp(s, "DATA") == 0)
      c->usage_type = USAGE_JASPER_DATA;
    else if (strcasecmp(s, "SMS") == 0)
      c->usage_type = USAGE_JASPER_SMS;
    else if (strcasecmp(s, "VOICE") == 0)
      c->usage_type = USAGE_JASPER_VOICE;
    else {
      usage_conf_err(src, k, "expected DATA, SMS or VOICE, not \"%s\"", s);
      status = EINVAL;
    }
    free(s);
    return status;
  }
  if (strcasecmp(k, "PageSize") == 0) {
    status = usage_get_whole(
        src, ci, 1, USAGE_JASPER_MAX_PAGE_SIZE,
        "a whole number from 1 to " STR(USAGE_JASPER_MAX_PAGE_SIZE), &d);
    if (status == 0)
      c->page_size = (int)d;
    return status;
  }
  if (strcasecmp(k, "MaxPages") == 0) {
    status = usage_get_whole(src, ci, 1, 1000000,
                             "a whole number from 1 to 1000000", &d);
    if (status == 0)
      c->max_pages = (long)d;
    return status;
  }
  if (strcasecmp(k, "PerDevice") == 0)
    return usage_get_bool(src, ci, &c->per_device);
  if (strcasecmp(k, "DispatchPerDevice") == 0)
    return usage_get_bool(src, ci, &c->dispatch_per_device);
  if (strcasecmp(k, "MaxDevices") == 0) {
    status = usage_get_whole(src, ci, 0, 10000000,
                             "a whole number from 0 to 10000000", &d);
    if (status == 0)
      c->max_devices = (size_t)d;
    return status;
  }
  return ENOENT;
}

int usage_conf_jasper_check(usage_source_conf_t *src) {
  usage_jasper_conf_t *c = src->kind_conf;
  if (c->plans_num == 0) {
    usage_conf_err(src, NULL, "no RatePlan option: nothing to scrape");
    return EINVAL;
  }
  if (src->http.user == NULL) {
    usage_conf_err(src, "User",
                   "missing (required: the API uses HTTP Basic with the user "
                   "name and the API key in Password or PasswordFile)");
    return EINVAL;
  }
  /* The vendor's published limit: about 5 calls per second, one in flight
   * per account. */
  if (src->max_rps < 0)
    src->max_rps = USAGE_JASPER_DEFAULT_RPS;
  return 0;
}
