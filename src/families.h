/* SPDX-License-Identifier: MIT */
/* families: the table of every metric family the plugin publishes, with its
 * help text, type, unit and the stock collectd type it is dispatched as.
 * Adding a metric is one line here (and one enum value). */
#ifndef USAGE_FAMILIES_H
#define USAGE_FAMILIES_H 1

typedef enum { USAGE_GAUGE = 0, USAGE_COUNTER = 1 } usage_mtype_t;

typedef struct {
  const char *name; /* sample name as exposed; counters end in _total */
  const char *help;
  usage_mtype_t type;
  const char *unit;    /* OpenMetrics unit ("bytes", "seconds") or NULL */
  const char *ds_type; /* collectd types.db type, see usage(5) */
  int is_info;         /* constant 1 carrying labels (OpenMetrics info) */
  unsigned id_labels;  /* labels that identify a series in collectd; 0 = all */
} usage_family_t;

enum {
  FAM_CCC_SERVICE_INFO = 0,
  FAM_CCC_SERVICE_STATUS,
  FAM_CCC_SERVICE_USERS,
  FAM_CCC_SERVICE_PRO_USERS,
  FAM_CCC_SERVICE_GUEST_USERS,
  FAM_CCC_SERVICE_DISABLED_USERS,
  FAM_CCC_SERVICE_UNREGISTERED_USERS,
  FAM_CCC_SERVICE_FEATURE_USAGE,
  FAM_CCC_SERVICE_MESSAGES,
  FAM_CCC_SERVICE_ATTACHMENTS,
  FAM_CCC_SERVICE_ATTACHMENT_STORAGE_BYTES,
  FAM_CCC_USER_INFO,
  FAM_CCC_USER_MESSAGES_SENT,
  FAM_CCC_USER_MESSAGES_RECEIVED,
  FAM_CCC_USER_ATTACHMENTS,
  FAM_CCC_USER_ATTACHMENT_BYTES,
  FAM_CCC_USER_INVITATIONS_SENT,
  FAM_CCC_USER_INVITATIONS_ACCEPTED,
  FAM_CCC_USER_LAST_ACTIVITY,
  FAM_CCC_USER_LAST_LOGIN,
  FAM_CCC_STATUS_CHANGES,
  FAM_CCC_SERVICE_LAST_STATUS_CHANGE,
  FAM_BILLING_RECORDS,
  FAM_BILLING_DATA_BYTES,
  FAM_BILLING_DURATION_SECONDS,
  FAM_BILLING_SELL_PRICE,
  FAM_BILLING_BUY_PRICE,
  FAM_BILLING_OVERFLOW_RECORDS,
  FAM_BILLING_OVERFLOW_DATA_BYTES,
  FAM_BILLING_OVERFLOW_DURATION_SECONDS,
  FAM_BILLING_OVERFLOW_SELL_PRICE,
  FAM_BILLING_OVERFLOW_BUY_PRICE,
  FAM_BILLING_INVALID_RECORDS,
  FAM_JASPER_RATE_PLAN_INFO,
  FAM_JASPER_ZONE_DEVICES,
  FAM_JASPER_ZONE_DATA_BYTES,
  FAM_JASPER_ZONE_SMS,
  FAM_JASPER_ZONE_VOICE_SECONDS,
  FAM_JASPER_DEVICE_DATA_BYTES,
  FAM_JASPER_DEVICE_SMS,
  FAM_JASPER_DEVICE_VOICE_SECONDS,
  FAM_JASPER_DEVICES_OMITTED,
  FAM_SOURCE_UP,
  FAM_SCRAPE_DURATION,
  FAM_LAST_SUCCESS,
  FAM_SCRAPE_REQUESTS,
  FAM_SCRAPE_ERRORS,
  FAM_LOGIN_TOTAL,
  FAM_LOGIN_TOKEN_EXPIRY,
  FAM_SOURCE_BACKOFF,
  FAM_EXPORTER_BUILD_INFO,
  FAM_SHARD_INFO,
  FAM_SHARD_SOURCE_INFO,
  FAM_COUNT
};

extern const usage_family_t usage_families[FAM_COUNT];

/* usage_family_short returns the family name without the "usage_" prefix
 * and the "_total" suffix into buf (the collectd type instance stem). */
const char *usage_family_short(int fam, char *buf, unsigned size);

#endif
