/* SPDX-License-Identifier: MIT */
/* billing/query.c: the API's vocabulary. The record fields the plugin sums
 * or may group by, the configuration defaults, the documented filter
 * syntax, DataQuantityUnit factors, and the page request's path and query.
 * Pure: no I/O. */
#include "api/billing/internal.h"
#include "families.h"
#include "http.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const usage_billing_quantity_t usage_billing_quantities[USAGE_BILLING_NQ] = {
    {"dataQuantity", FAM_BILLING_DATA_BYTES},
    {"durationQuantity", FAM_BILLING_DURATION_SECONDS},
    {"sellPrice", FAM_BILLING_SELL_PRICE},
    {"buyPrice", FAM_BILLING_BUY_PRICE},
};

/* Record fields that may become labels, with their label names. */
static const struct {
  const char *field;
  const char *label;
} groupable[] = {
    {"customerId", "customer_id"},
    {"siteId", "site_id"},
    {"billRunId", "bill_run_id"},
    {"productReference", "product_reference"},
    {"serviceId", "service_id"},
    {"destination", "destination"},
    {"chargeGroupId", "charge_group_id"},
    {"callClass", "call_class"},
    {"timeBand", "time_band"},
    {"usageProductId", "usage_product_id"},
    {"usageDirection", "usage_direction"},
    {"isdn", "isdn"},
    {"supplierAccountId", "supplier_account_id"},
    {"fileName", "file_name"},
    {"parserName", "parser_name"},
    {"fileType", "file_type"},
    {"loadedDate", "loaded_date"},
};
#define NGROUPABLE (sizeof(groupable) / sizeof(*groupable))

static const char *const default_group_by[] = {"customerId", "callClass",
                                               "usageDirection"};

/* Documented filters and their value syntax. */
enum { FT_ID, FT_STRING, FT_DATE };
static const struct {
  const char *name;
  int type;
} filters[] = {
    {"customerId", FT_ID},      {"siteId", FT_ID},
    {"billRunId", FT_ID},       {"productReference", FT_STRING},
    {"serviceId", FT_STRING},   {"destination", FT_STRING},
    {"eventDateFrom", FT_DATE}, {"eventDateTo", FT_DATE},
};

static const struct {
  const char *name;
  uint64_t factor;
} units[] = {
    {"B", 1},      {"kB", 1000},     {"MB", 1000000},     {"GB", 1000000000},
    {"KiB", 1024}, {"MiB", 1048576}, {"GiB", 1073741824},
};

int usage_billing_conf_default(usage_billing_conf_t *c) {
  memset(c, 0, sizeof(*c));
  c->page_size = USAGE_BILLING_DEFAULT_PAGE_SIZE;
  c->max_pages = USAGE_BILLING_DEFAULT_MAX_PAGES;
  c->lookback = USAGE_BILLING_DEFAULT_LOOKBACK;
  c->initial_lookback = USAGE_BILLING_DEFAULT_INITIAL_LOOKBACK;
  c->data_factor = 1000000;
  c->max_series = USAGE_BILLING_DEFAULT_MAX_SERIES;
  for (size_t i = 0; i < 3; i++) {
    c->group_by[i] = strdup(default_group_by[i]);
    if (c->group_by[i] == NULL) {
      usage_billing_conf_clear(c);
      return ENOMEM;
    }
    c->group_by_num++;
  }
  return 0;
}

void usage_billing_conf_clear(usage_billing_conf_t *c) {
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->filters_num; i++) {
    free(c->filter_names[i]);
    free(c->filter_values[i]);
  }
  free(c->filter_names);
  free(c->filter_values);
  for (size_t i = 0; i < c->group_by_num; i++)
    free(c->group_by[i]);
  free(c->state_file);
  memset(c, 0, sizeof(*c));
}

static int check_id_list(const char *v) {
  if (*v == 0)
    return EINVAL;
  for (const char *p = v; *p;) {
    const char *start = p;
    while (*p >= '0' && *p <= '9')
      p++;
    if (p == start || (p - start) > 18 || (*p != ',' && *p != 0))
      return EINVAL;
    if (*p == ',' && *++p == 0)
      return EINVAL;
  }
  return 0;
}

int usage_billing_filter_check(const char *name, const char *value,
                               const char **canonical, char *err,
                               size_t errlen) {
  if (strcasecmp(name, "excludeZeroValueRecords") == 0) {
    snprintf(err, errlen, "use the option ExcludeZeroValueRecords");
    return EINVAL;
  }
  if (strcasecmp(name, "page") == 0 || strcasecmp(name, "pageSize") == 0 ||
      strcasecmp(name, "sort") == 0 || strcasecmp(name, "fields") == 0) {
    snprintf(err, errlen,
             "\"%s\" is set by the plugin (paging, sorting and fields "
             "drive the exactly-once counting)",
             name);
    return EINVAL;
  }
  size_t i;
  for (i = 0; i < sizeof(filters) / sizeof(*filters); i++)
    if (strcasecmp(name, filters[i].name) == 0)
      break;
  if (i == sizeof(filters) / sizeof(*filters)) {
    snprintf(err, errlen,
             "unknown filter \"%s\" (expected customerId, siteId, billRunId, "
             "productReference, serviceId, destination, eventDateFrom or "
             "eventDateTo)",
             name);
    return EINVAL;
  }
  *canonical = filters[i].name;
  int64_t t;
  switch (filters[i].type) {
  case FT_ID:
    if (check_id_list(strncmp(value, "in:", 3) == 0 ? value + 3 : value)) {
      snprintf(err, errlen,
               "%s: expected an id or in:id,id,... (digits), got \"%s\"",
               filters[i].name, value);
      return EINVAL;
    }
    return 0;
  case FT_STRING: {
    const char *v = value;
    if (strncmp(v, "in:", 3) == 0)
      v += 3;
    else if (strncmp(v, "like:", 5) == 0)
      v += 5;
    if (*v == 0) {
      snprintf(err, errlen, "%s: expected x, in:x,y or like:x, got \"%s\"",
               filters[i].name, value);
      return EINVAL;
    }
    if (strncmp(value, "in:", 3) == 0 &&
        (strstr(value, ",,") || value[strlen(value) - 1] == ',' ||
         value[3] == ',')) {
      snprintf(err, errlen, "%s: empty value in \"%s\"", filters[i].name,
               value);
      return EINVAL;
    }
    return 0;
  }
  default: {
    const char *v = value;
    int lt = strncmp(v, "lt:", 3) == 0, gt = strncmp(v, "gt:", 3) == 0;
    if (lt || gt)
      v += 3;
    if (usage_parse_time_exact(v, strlen(v), &t) != 0) {
      snprintf(err, errlen,
               "%s: expected yyyy-MM-ddTHH:mm:ssZ, lt:yyyy-MM-ddTHH:mm:ssZ or "
               "gt:yyyy-MM-ddTHH:mm:ssZ, got \"%s\"",
               filters[i].name, value);
      return EINVAL;
    }
    if (lt && i == 6) {
      snprintf(err, errlen,
               "eventDateFrom: lt: cannot be combined with the incremental "
               "window (use eventDateTo)");
      return EINVAL;
    }
    return 0;
  }
  }
}

int usage_billing_unit_factor(const char *unit, uint64_t *factor) {
  for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++)
    if (strcmp(unit, units[i].name) == 0) {
      *factor = units[i].factor;
      return 0;
    }
  return EINVAL;
}

int usage_billing_groupby_label(const char *field, char *out, size_t size) {
  for (size_t i = 0; i < NGROUPABLE; i++)
    if (strcmp(field, groupable[i].field) == 0) {
      snprintf(out, size, "%s", groupable[i].label);
      return 0;
    }
  return EINVAL;
}

int usage_billing_query(const usage_billing_conf_t *c, int64_t from,
                        unsigned page, usage_buf_t *out) {
  usage_buf_printf(out,
                   "/customer-usage-data?page=%u&pageSize=%u"
                   "&sort=eventDate%%2Cid",
                   page, c->page_size);
  /* The window's lower bound, unless a configured eventDateFrom is later. */
  const char *user_from = NULL;
  for (size_t i = 0; i < c->filters_num; i++)
    if (strcmp(c->filter_names[i], "eventDateFrom") == 0) {
      const char *v = c->filter_values[i];
      int64_t t;
      if (usage_parse_time_exact(
              v + (strncmp(v, "gt:", 3) == 0 ? 3 : 0),
              strlen(v) - (strncmp(v, "gt:", 3) == 0 ? 3 : 0), &t) == 0 &&
          t >= from)
        user_from = v;
    }
  usage_buf_puts(out, "&eventDateFrom=");
  if (user_from != NULL) {
    usage_http_escape(out, user_from);
  } else {
    char ts[32];
    usage_format_time(from, ts);
    usage_buf_puts(out, ts);
  }
  for (size_t i = 0; i < c->filters_num; i++) {
    if (strcmp(c->filter_names[i], "eventDateFrom") == 0)
      continue;
    usage_buf_printf(out, "&%s=", c->filter_names[i]);
    usage_http_escape(out, c->filter_values[i]);
  }
  if (c->exclude_zero)
    usage_buf_puts(out, "&excludeZeroValueRecords=true");
  return usage_buf_failed(out);
}
