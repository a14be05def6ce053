/* SPDX-License-Identifier: MIT */
/* ccc/users: GetServiceUserUsage bodies into usage_ccc_user_* samples:
 * the counters of the period, the last activity and login times, and the
 * user_info set (personal fields only with ExportUserDetails). Pure. */
#include "api/ccc/internal.h"
#include "families.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* GetServiceUserUsage "usage" fields and the family each one feeds. */
static const struct {
  const char *field;
  int family;
} user_fields[] = {
    {"totalMessagesSent", FAM_CCC_USER_MESSAGES_SENT},
    {"totalMessagesReceived", FAM_CCC_USER_MESSAGES_RECEIVED},
    {"totalAttachmentsCount", FAM_CCC_USER_ATTACHMENTS},
    {"totalAttachmentsSize", FAM_CCC_USER_ATTACHMENT_BYTES},
    {"totalInvitationsSent", FAM_CCC_USER_INVITATIONS_SENT},
    {"totalInvitationsAccepted", FAM_CCC_USER_INVITATIONS_ACCEPTED},
};

static const struct {
  const char *field;
  int family;
} user_times[] = {
    {"lastActivity", FAM_CCC_USER_LAST_ACTIVITY},
    {"lastLogin", FAM_CCC_USER_LAST_LOGIN},
};

int usage_ccc_parse_user_usage(const char *body, size_t len,
                               const char *service, const char *user,
                               const char *period_type, int details,
                               usage_batch_t *b, usage_parse_result_t *res) {
  static const char *const user_states[] = {"Active", "Disabled"};
  static const char *const group_types[] = {"Professional", "Guest"};
  memset(res, 0, sizeof(*res));
  usage_json_t *root =
      usage_json_parse(body, len, 0, res->error, sizeof(res->error));
  if (root == NULL)
    return EINVAL;
  int ret = 0;
  const usage_json_t *u = usage_json_get(root, "usage");
  if (usage_json_type(root) != USAGE_JSON_OBJECT ||
      usage_json_type(u) != USAGE_JSON_OBJECT) {
    snprintf(res->error, sizeof(res->error), "body has no \"usage\" object");
    ret = EINVAL;
    goto out;
  }
  const char *pt = usage_json_text(root, "periodType");
  if (pt == NULL || *pt == 0)
    pt = period_type;
  if (strcmp(pt, "1") == 0 || strcasecmp(pt, "Monthly") == 0)
    pt = "monthly";
  else
    pt = "daily";

  const char *group = usage_json_str(u, "groupName");
  const char *gtype = usage_json_text(u, "groupType");
  const char *status = usage_json_text(u, "status");
  gtype = gtype ? usage_ccc_enum_name(gtype, group_types, 2) : "";
  status = status ? usage_ccc_enum_name(status, user_states, 2) : "";
  int rc;
  if (details) {
    const char *email = usage_json_str(u, "emailAddress");
    const char *first = usage_json_str(u, "firstName");
    const char *last = usage_json_str(u, "lastName");
    rc = usage_batch_add(b, FAM_CCC_USER_INFO, 1, "service", service, "user",
                         user, "group", group ? group : "", "group_type", gtype,
                         "status", status, "email", email ? email : "",
                         "first_name", first ? first : "", "last_name",
                         last ? last : "", NULL);
  } else {
    rc = usage_batch_add(b, FAM_CCC_USER_INFO, 1, "service", service, "user",
                         user, "group", group ? group : "", "group_type", gtype,
                         "status", status, NULL);
  }
  if (rc != 0)
    goto nomem;

  for (size_t i = 0; i < sizeof(user_fields) / sizeof(*user_fields); i++) {
    int64_t v;
    int st = usage_json_int64(u, user_fields[i].field, &v);
    if (st == ENOENT)
      continue;
    if (st == 0 && v < 0)
      st = ERANGE;
    if (st != 0) {
      usage_ccc_bad_field(res, user_fields[i].field, st);
      continue;
    }
    if (usage_batch_add(b, user_fields[i].family, (double)v, "service", service,
                        "user", user, "period", pt, NULL) != 0)
      goto nomem;
  }
  for (size_t i = 0; i < sizeof(user_times) / sizeof(*user_times); i++) {
    double t;
    int st = usage_json_time(u, user_times[i].field, &t);
    if (st == ENOENT)
      continue; /* absent, null or 0001-01-01: never */
    if (st != 0) {
      usage_ccc_bad_field(res, user_times[i].field, st);
      continue;
    }
    if (usage_batch_add(b, user_times[i].family, t, "service", service, "user",
                        user, NULL) != 0)
      goto nomem;
  }
  goto out;

nomem:
  snprintf(res->error, sizeof(res->error), "out of memory");
  ret = ENOMEM;
out:
  usage_json_free(root);
  return ret;
}
