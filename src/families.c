/* SPDX-License-Identifier: MIT */
/* families: the metric family table (see families.h and CONTRACT.md). */
#include "families.h"

#include <stdio.h>
#include <string.h>

#define G USAGE_GAUGE
#define C USAGE_COUNTER

const usage_family_t usage_families[FAM_COUNT] = {
    [FAM_CCC_SERVICE_INFO] = {"usage_ccc_service_info",
                              "CCC service description (always 1).", G, NULL,
                              "gauge", 1, 1},
    [FAM_CCC_SERVICE_STATUS] =
        {"usage_ccc_service_status",
         "CCC service state: 1 for the current state, 0 for the others.", G,
         NULL, "gauge", 0},
    [FAM_CCC_SERVICE_USERS] = {"usage_ccc_service_users",
                               "Users of the CCC service (TotalUserCount).", G,
                               NULL, "users", 0},
    [FAM_CCC_SERVICE_PRO_USERS] =
        {"usage_ccc_service_pro_users",
         "Professional users of the CCC service (ProUserCount).", G, NULL,
         "users", 0},
    [FAM_CCC_SERVICE_GUEST_USERS] =
        {"usage_ccc_service_guest_users",
         "Guest users of the CCC service (GuestUserCount).", G, NULL, "users",
         0},
    [FAM_CCC_SERVICE_DISABLED_USERS] =
        {"usage_ccc_service_disabled_users",
         "Disabled users of the CCC service (DisabledUserCount).", G, NULL,
         "users", 0},
    [FAM_CCC_SERVICE_UNREGISTERED_USERS] =
        {"usage_ccc_service_unregistered_users",
         "Unregistered users of the CCC service (UnregisteredUserCount).", G,
         NULL, "users", 0},
    [FAM_CCC_SERVICE_FEATURE_USAGE] =
        {"usage_ccc_service_feature_usage",
         "Use of an optional feature of the CCC service (FeatureUsage*).", G,
         NULL, "count", 0},
    [FAM_CCC_SERVICE_MESSAGES] =
        {"usage_ccc_service_messages",
         "Messages of the CCC service (TotalMessageCount).", G, NULL, "count",
         0},
    [FAM_CCC_SERVICE_ATTACHMENTS] =
        {"usage_ccc_service_attachments",
         "Attachments of the CCC service (TotalAttachmentCount).", G, NULL,
         "count", 0},
    [FAM_CCC_SERVICE_ATTACHMENT_STORAGE_BYTES] =
        {"usage_ccc_service_attachment_storage_bytes",
         "Attachment storage used by the CCC service (AttachmentStorageUsage).",
         G, "bytes", "bytes", 0},
    [FAM_CCC_USER_INFO] = {"usage_ccc_user_info",
                           "CCC user description (always 1).", G, NULL, "gauge",
                           1, 2},
    [FAM_CCC_USER_MESSAGES_SENT] = {"usage_ccc_user_messages_sent",
                                    "Messages sent by the user in the period.",
                                    G, NULL, "count", 0},
    [FAM_CCC_USER_MESSAGES_RECEIVED] =
        {"usage_ccc_user_messages_received",
         "Messages received by the user in the period.", G, NULL, "count", 0},
    [FAM_CCC_USER_ATTACHMENTS] = {"usage_ccc_user_attachments",
                                  "Attachments sent by the user in the period.",
                                  G, NULL, "count", 0},
    [FAM_CCC_USER_ATTACHMENT_BYTES] =
        {"usage_ccc_user_attachment_bytes",
         "Size of the user's attachments in the period.", G, "bytes", "bytes",
         0},
    [FAM_CCC_USER_INVITATIONS_SENT] =
        {"usage_ccc_user_invitations_sent",
         "Invitations sent by the user in the period.", G, NULL, "count", 0},
    [FAM_CCC_USER_INVITATIONS_ACCEPTED] =
        {"usage_ccc_user_invitations_accepted",
         "Invitations of the user accepted in the period.", G, NULL, "count",
         0},
    [FAM_CCC_USER_LAST_ACTIVITY] =
        {"usage_ccc_user_last_activity_timestamp_seconds",
         "Time of the user's last activity (Unix seconds).", G, "seconds",
         "timestamp", 0},
    [FAM_CCC_USER_LAST_LOGIN] =
        {"usage_ccc_user_last_login_timestamp_seconds",
         "Time of the user's last login (Unix seconds).", G, "seconds",
         "timestamp", 0},
    [FAM_CCC_STATUS_CHANGES] =
        {"usage_ccc_status_changes_total",
         "CCC service status changes seen, by new status.", C, NULL, "derive",
         0},
    [FAM_CCC_SERVICE_LAST_STATUS_CHANGE] =
        {"usage_ccc_service_last_status_change_timestamp_seconds",
         "Time of the newest status change of the CCC service (Unix seconds).",
         G, "seconds", "timestamp", 0},
    [FAM_BILLING_RECORDS] = {"usage_billing_records_total",
                             "Billed usage records counted.", C, NULL, "derive",
                             0},
    [FAM_BILLING_DATA_BYTES] = {"usage_billing_data_bytes_total",
                                "Data volume of billed usage records.", C,
                                "bytes", "total_bytes", 0},
    [FAM_BILLING_DURATION_SECONDS] = {"usage_billing_duration_seconds_total",
                                      "Duration of billed usage records.", C,
                                      "seconds", "derive", 0},
    [FAM_BILLING_SELL_PRICE] = {"usage_billing_sell_price_total",
                                "Sell price of billed usage records.", C, NULL,
                                "gauge", 0},
    [FAM_BILLING_BUY_PRICE] = {"usage_billing_buy_price_total",
                               "Buy price of billed usage records.", C, NULL,
                               "gauge", 0},
    [FAM_BILLING_OVERFLOW_RECORDS] =
        {"usage_billing_overflow_records_total",
         "Records past MaxSeries: counted here, in no GroupBy label set.", C,
         NULL, "derive", 0},
    [FAM_BILLING_OVERFLOW_DATA_BYTES] =
        {"usage_billing_overflow_data_bytes_total",
         "Data volume of the records past MaxSeries.", C, "bytes",
         "total_bytes", 0},
    [FAM_BILLING_OVERFLOW_DURATION_SECONDS] =
        {"usage_billing_overflow_duration_seconds_total",
         "Duration of the records past MaxSeries.", C, "seconds", "derive", 0},
    [FAM_BILLING_OVERFLOW_SELL_PRICE] =
        {"usage_billing_overflow_sell_price_total",
         "Sell price of the records past MaxSeries.", C, NULL, "gauge", 0},
    [FAM_BILLING_OVERFLOW_BUY_PRICE] =
        {"usage_billing_overflow_buy_price_total",
         "Buy price of the records past MaxSeries.", C, NULL, "gauge", 0},
    [FAM_BILLING_INVALID_RECORDS] =
        {"usage_billing_invalid_records_total",
         "Records refused (not counted anywhere else), once per record of the "
         "window, by reason.",
         C, NULL, "derive", 0},
    [FAM_BILLING_ADJUSTMENT_RECORDS] =
        {"usage_billing_adjustment_records_total",
         "Records that left the label set (re-rated into another); "
         "records_total minus this is the current count.",
         C, NULL, "derive", 0},
    [FAM_BILLING_ADJUSTMENT_DATA_BYTES] =
        {"usage_billing_adjustment_data_bytes_total",
         "Downward corrections of the data volume (re-ratings); "
         "data_bytes_total minus this is the current total.",
         C, "bytes", "total_bytes", 0},
    [FAM_BILLING_ADJUSTMENT_DURATION_SECONDS] =
        {"usage_billing_adjustment_duration_seconds_total",
         "Downward corrections of the duration (re-ratings).", C, "seconds",
         "derive", 0},
    [FAM_BILLING_ADJUSTMENT_SELL_PRICE] =
        {"usage_billing_adjustment_sell_price_total",
         "Downward corrections of the sell price (re-ratings).", C, NULL,
         "gauge", 0},
    [FAM_BILLING_ADJUSTMENT_BUY_PRICE] =
        {"usage_billing_adjustment_buy_price_total",
         "Downward corrections of the buy price (re-ratings).", C, NULL,
         "gauge", 0},
    [FAM_BILLING_OVERFLOW_ADJUSTMENT_RECORDS] =
        {"usage_billing_overflow_adjustment_records_total",
         "Records that left the label sets past MaxSeries (re-rated).", C, NULL,
         "derive", 0},
    [FAM_BILLING_OVERFLOW_ADJUSTMENT_DATA_BYTES] =
        {"usage_billing_overflow_adjustment_data_bytes_total",
         "Downward corrections of the data volume past MaxSeries.", C, "bytes",
         "total_bytes", 0},
    [FAM_BILLING_OVERFLOW_ADJUSTMENT_DURATION_SECONDS] =
        {"usage_billing_overflow_adjustment_duration_seconds_total",
         "Downward corrections of the duration past MaxSeries.", C, "seconds",
         "derive", 0},
    [FAM_BILLING_OVERFLOW_ADJUSTMENT_SELL_PRICE] =
        {"usage_billing_overflow_adjustment_sell_price_total",
         "Downward corrections of the sell price past MaxSeries.", C, NULL,
         "gauge", 0},
    [FAM_BILLING_OVERFLOW_ADJUSTMENT_BUY_PRICE] =
        {"usage_billing_overflow_adjustment_buy_price_total",
         "Downward corrections of the buy price past MaxSeries.", C, NULL,
         "gauge", 0},
    [FAM_BILLING_RERATED_RECORDS] =
        {"usage_billing_rerated_records_total",
         "Records of the window the vendor sent again with other figures or "
         "another label set (re-ratings), counted as differences.",
         C, NULL, "derive", 0},
    [FAM_JASPER_RATE_PLAN_INFO] = {"usage_jasper_rate_plan_info",
                                   "Jasper rate plan description (always 1).",
                                   G, NULL, "gauge", 1, 2},
    [FAM_JASPER_ZONE_DEVICES] = {"usage_jasper_zone_devices",
                                 "Devices with usage in the zone this cycle.",
                                 G, NULL, "count", 0},
    [FAM_JASPER_ZONE_DATA_BYTES] = {"usage_jasper_zone_data_bytes_total",
                                    "Cycle-to-date data volume of the zone.", C,
                                    "bytes", "total_bytes", 0},
    [FAM_JASPER_ZONE_SMS] = {"usage_jasper_zone_sms_total",
                             "Cycle-to-date SMS of the zone, by direction.", C,
                             NULL, "derive", 0},
    [FAM_JASPER_ZONE_VOICE_SECONDS] =
        {"usage_jasper_zone_voice_seconds_total",
         "Cycle-to-date voice seconds of the zone, by direction.", C, "seconds",
         "derive", 0},
    [FAM_JASPER_DEVICE_DATA_BYTES] =
        {"usage_jasper_device_data_bytes_total",
         "Cycle-to-date data volume of the device in the zone.", C, "bytes",
         "total_bytes", 0},
    [FAM_JASPER_DEVICE_SMS] =
        {"usage_jasper_device_sms_total",
         "Cycle-to-date SMS of the device in the zone, by direction.", C, NULL,
         "derive", 0},
    [FAM_JASPER_DEVICE_VOICE_SECONDS] =
        {"usage_jasper_device_voice_seconds_total",
         "Cycle-to-date voice seconds of the device in the zone, by direction.",
         C, "seconds", "derive", 0},
    [FAM_JASPER_DEVICES_OMITTED] = {"usage_jasper_devices_omitted",
                                    "Devices left out of the per-device series "
                                    "because MaxDevices was reached.",
                                    G, NULL, "count", 0},
    [FAM_SOURCE_UP] =
        {"usage_source_up",
         "1 if the last scrape of the source succeeded, 0 otherwise.", G, NULL,
         "gauge", 0},
    [FAM_SCRAPE_DURATION] = {"usage_scrape_duration_seconds",
                             "Duration of the last scrape of the source.", G,
                             "seconds", "duration", 0},
    [FAM_LAST_SUCCESS] =
        {"usage_last_success_timestamp_seconds",
         "End of the last fully successful scrape (Unix seconds).", G,
         "seconds", "timestamp", 0},
    [FAM_SCRAPE_REQUESTS] = {"usage_scrape_requests_total",
                             "Upstream HTTP requests answered, by status code.",
                             C, NULL, "total_requests", 0},
    [FAM_SCRAPE_ERRORS] = {"usage_scrape_errors_total",
                           "Failed or refused scrape entities, by cause.", C,
                           NULL, "derive", 0},
    [FAM_LOGIN_TOTAL] = {"usage_login_total",
                         "Sign-ins of a source with <Login>, by result.", C,
                         NULL, "derive", 0},
    [FAM_LOGIN_TOKEN_EXPIRY] = {"usage_login_token_expiry_seconds",
                                "Seconds until the token of a source with "
                                "<Login> expires.",
                                G, "seconds", "duration", 0},
    [FAM_SOURCE_BACKOFF] = {"usage_source_backoff_seconds",
                            "Current backoff delay of the source's requests "
                            "after failures (0 when healthy).",
                            G, "seconds", "duration", 0},
    [FAM_EXPORTER_BUILD_INFO] = {"usage_exporter_build_info",
                                 "Build of the usage plugin (always 1).", G,
                                 NULL, "gauge", 1, 2},
    [FAM_SHARD_INFO] = {"usage_shard_info",
                        "This instance's shard and the number of shards "
                        "(always 1).",
                        G, NULL, "gauge", 1, 3},
    [FAM_SHARD_SOURCE_INFO] = {"usage_shard_source_info",
                               "A source block this instance owns and "
                               "scrapes (always 1).",
                               G, NULL, "gauge", 1, 1},
};

const char *usage_family_short(int fam, char *buf, unsigned size) {
  const char *name = usage_families[fam].name;
  if (strncmp(name, "usage_", 6) == 0)
    name += 6;
  size_t len = strlen(name);
  if (usage_families[fam].type == USAGE_COUNTER && len > 6 &&
      strcmp(name + len - 6, "_total") == 0)
    len -= 6;
  snprintf(buf, size, "%.*s", (int)len, name);
  return buf;
}
