/* SPDX-License-Identifier: MIT */
/* billing/conf.c: the options of <Billing> blocks (see usage(5)): paging,
 * filters checked against the API's documented syntax, GroupBy, the
 * window and the StateFile. collectd glue: linked into usage.so and the
 * config tests, not into libusagecore. */
#include "collectd.h"
#include "configfile.h"
#include "plugin.h"

#include "api/billing/billing.h"
#include "conf_get.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int billing_filter(usage_source_conf_t *src, const oconfig_item_t *ci) {
  usage_billing_conf_t *c = src->kind_conf;
  if (ci->values_num != 2 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[1].type != OCONFIG_TYPE_STRING) {
    usage_conf_err(src, "Filter", "expected two strings: \"name\" \"value\"");
    return EINVAL;
  }
  const char *name = ci->values[0].value.string;
  const char *value = ci->values[1].value.string;
  const char *canonical = NULL;
  char err[256];
  if (usage_billing_filter_check(name, value, &canonical, err, sizeof(err)) !=
      0) {
    usage_conf_err(src, "Filter", "%s", err);
    return EINVAL;
  }
  for (size_t i = 0; i < c->filters_num; i++)
    if (strcmp(c->filter_names[i], canonical) == 0) {
      usage_conf_err(src, "Filter", "%s is given twice (use in:x,y)",
                     canonical);
      return EINVAL;
    }
  char **n = realloc(c->filter_names, (c->filters_num + 1) * sizeof(*n));
  if (n == NULL)
    return ENOMEM;
  c->filter_names = n;
  char **v = realloc(c->filter_values, (c->filters_num + 1) * sizeof(*v));
  if (v == NULL)
    return ENOMEM;
  c->filter_values = v;
  n[c->filters_num] = strdup(canonical);
  v[c->filters_num] = strdup(value);
  c->filters_num++;
  if (n[c->filters_num - 1] == NULL || v[c->filters_num - 1] == NULL)
    return ENOMEM;
  return 0;
}

static int billing_group_by(usage_source_conf_t *src,
                            const oconfig_item_t *ci) {
  usage_billing_conf_t *c = src->kind_conf;
  if (c->group_by_set) {
    usage_conf_err(src, "GroupBy",
                   "given twice (list every field in one "
                   "GroupBy line)");
    return EINVAL;
  }
  if (ci->values_num > USAGE_BILLING_MAX_GROUPBY) {
    usage_conf_err(src, "GroupBy", "at most %d fields",
                   USAGE_BILLING_MAX_GROUPBY);
    return EINVAL;
  }
  for (int i = 0; i < ci->values_num; i++) {
    char label[64];
    if (ci->values[i].type != OCONFIG_TYPE_STRING) {
      usage_conf_err(src, "GroupBy", "expected record field names (strings)");
      return EINVAL;
    }
    const char *f = ci->values[i].value.string;
    if (usage_billing_groupby_label(f, label, sizeof(label)) != 0) {
      usage_conf_err(src, "GroupBy",
                     "\"%s\" cannot be a label (expected customerId, siteId, "
                     "billRunId, productReference, serviceId, destination, "
                     "chargeGroupId, callClass, timeBand, usageProductId, "
                     "usageDirection, isdn, supplierAccountId, fileName, "
                     "parserName, fileType or loadedDate)",
                     f);
      return EINVAL;
    }
    for (int j = 0; j < i; j++)
      if (strcmp(ci->values[j].value.string, f) == 0) {
        usage_conf_err(src, "GroupBy", "\"%s\" is given twice", f);
        return EINVAL;
      }
  }
  for (size_t i = 0; i < c->group_by_num; i++) {
    free(c->group_by[i]);
    c->group_by[i] = NULL;
  }
  c->group_by_num = 0;
  c->group_by_set = 1;
  for (int i = 0; i < ci->values_num; i++) {
    c->group_by[i] = strdup(ci->values[i].value.string);
    if (c->group_by[i] == NULL)
      return ENOMEM;
    c->group_by_num++;
  }
  return 0;
}

int usage_conf_billing_option(usage_source_conf_t *src,
                              const oconfig_item_t *ci) {
  usage_billing_conf_t *c = src->kind_conf;
  const char *k = ci->key;
  double d;
  int status;
  if (strcasecmp(k, "Filter") == 0)
    return billing_filter(src, ci);
  if (strcasecmp(k, "GroupBy") == 0)
    return billing_group_by(src, ci);
  if (strcasecmp(k, "ExcludeZeroValueRecords") == 0)
    return usage_get_bool(src, ci, &c->exclude_zero);
  if (strcasecmp(k, "StateFile") == 0) {
    status = usage_get_string(src, ci, &c->state_file);
    if (status == 0 && c->state_file[0] == 0) {
      usage_conf_err(src, k, "must not be empty");
      return EINVAL;
    }
    return status;
  }
  if (strcasecmp(k, "DataQuantityUnit") == 0) {
    if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING ||
        usage_billing_unit_factor(ci->values[0].value.string,
                                  &c->data_factor) != 0) {
      usage_conf_err(src, k, "expected B, kB, MB, GB, KiB, MiB or GiB");
      return EINVAL;
    }
    return 0;
  }
  if (strcasecmp(k, "PageSize") == 0) {
    status =
        usage_get_whole(src, ci, 1, 1000, "a whole number from 1 to 1000", &d);
    if (status == 0)
      c->page_size = (unsigned)d;
    return status;
  }
  if (strcasecmp(k, "MaxPages") == 0) {
    status = usage_get_whole(src, ci, 1, 1000000,
                             "a whole number from 1 to 1000000", &d);
    if (status == 0)
      c->max_pages = (unsigned)d;
    return status;
  }
  if (strcasecmp(k, "MaxSeries") == 0) {
    status = usage_get_whole(src, ci, 1, 1000000,
                             "a whole number from 1 to 1000000", &d);
    if (status == 0)
      c->max_series = (size_t)d;
    return status;
  }
  if (strcasecmp(k, "Lookback") == 0) {
    status = usage_get_whole(src, ci, 0, 31622400,
                             "whole seconds from 0 to 31622400 (366 days)", &d);
    if (status == 0)
      c->lookback = (int64_t)d;
    return status;
  }
  if (strcasecmp(k, "InitialLookback") == 0) {
    status =
        usage_get_whole(src, ci, 0, 316224000,
                        "whole seconds from 0 to 316224000 (10 years)", &d);
    if (status == 0)
      c->initial_lookback = (int64_t)d;
    return status;
  }
  return ENOENT;
}

int usage_conf_billing_check(usage_source_conf_t *src) {
  usage_billing_conf_t *c = src->kind_conf;
  src->state_file = c->state_file;
  int has_auth = src->http.bearer.value != NULL ||
                 src->http.bearer.file != NULL || src->login != NULL;
  for (size_t i = 0; i < src->http.headers_num && !has_auth; i++)
    has_auth = strncasecmp(src->http.headers[i], "Authorization:", 14) == 0;
  if (!has_auth) {
    usage_conf_err(src, "BearerTokenFile",
                   "missing: the billing API needs BearerToken or "
                   "BearerTokenFile");
    return EINVAL;
  }
  /* The StateFile's directory is not checked here: missing, read-only or
   * full, it is a run-time problem of this block (source down, reason
   * state_file, retried every scrape), not one that stops collectd. */
  return 0;
}
