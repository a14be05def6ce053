/* SPDX-License-Identifier: MIT */
/* ccc/service: GetServiceUsage bodies into usage_ccc_service_* samples,
 * the ServiceStatus enum and its 0/1 state set, and what every CCC parser
 * shares: GUID normalisation, enum numbers to names, bad-field notes. Pure:
 * no I/O, no collectd. */
#include "api/ccc/internal.h"
#include "families.h"
#include "json.h"
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The ServiceStatus enum, in the API's order (numbers index it). */
const char *const usage_ccc_states[USAGE_CCC_NSTATES] = {
    "Blocked",      "AccountCancelled", "AccountSuspended", "Provisioning",
    "TrialExpired", "TrialActive",      "DemoAccount",      "CertifiedSecure"};

/* GetServiceUsage fields and the family each one feeds. */
static const struct {
  const char *field;
  int family;
  const char *feature; /* value of the `feature` label, or NULL */
} service_fields[] = {
    {"totalUserCount", FAM_CCC_SERVICE_USERS, NULL},
    {"proUserCount", FAM_CCC_SERVICE_PRO_USERS, NULL},
    {"guestUserCount", FAM_CCC_SERVICE_GUEST_USERS, NULL},
    {"disabledUserCount", FAM_CCC_SERVICE_DISABLED_USERS, NULL},
    {"unregisteredUserCount", FAM_CCC_SERVICE_UNREGISTERED_USERS, NULL},
    {"featureUsageSecureMessagingGateway", FAM_CCC_SERVICE_FEATURE_USAGE,
     "secure_messaging_gateway"},
    {"featureUsageSecureMessagingPlus", FAM_CCC_SERVICE_FEATURE_USAGE,
     "secure_messaging_plus"},
    {"featureUsageDataLeakPrevention", FAM_CCC_SERVICE_FEATURE_USAGE,
     "data_leak_prevention"},
    {"featureUsageSecureLargeFiles", FAM_CCC_SERVICE_FEATURE_USAGE,
     "secure_large_files"},
    {"featureUsageSecureForms", FAM_CCC_SERVICE_FEATURE_USAGE, "secure_forms"},
    {"totalMessageCount", FAM_CCC_SERVICE_MESSAGES, NULL},
    {"totalAttachmentCount", FAM_CCC_SERVICE_ATTACHMENTS, NULL},
    {"attachmentStorageUsage", FAM_CCC_SERVICE_ATTACHMENT_STORAGE_BYTES, NULL},
};

int usage_ccc_guid_normalize(const char *in, char out[33]) {
  size_t n = 0;
  const char *p = in;
  if (*p == '{')
    p++;
  for (; *p && *p != '}'; p++) {
    if (*p == '-')
      continue;
    if (!isxdigit((unsigned char)*p) || n >= 32)
      return EINVAL;
    out[n++] = (char)tolower((unsigned char)*p);
  }
  if (n != 32 || (*p == '}' && (in[0] != '{' || p[1] != 0)) ||
      (*p != '}' && in[0] == '{'))
    return EINVAL;
  out[32] = 0;
  return 0;
}

void usage_ccc_bad_field(usage_parse_result_t *res, const char *field,
                         int status) {
  if (res->bad_fields++ == 0)
    snprintf(res->bad_field, sizeof(res->bad_field), "%s: %s", field,
             usage_json_errstr(status));
}

const char *usage_ccc_enum_name(const char *v, const char *const *names,
                                size_t n) {
  char *end;
  long idx = strtol(v, &end, 10);
  if (*v && *end == 0 && idx >= 0 && (size_t)idx < n)
    return names[idx];
  return v;
}

int usage_ccc_add_status(usage_batch_t *b, const char *service,
                         const char *status) {
  const char *current = status;
  char *end;
  long idx = strtol(status, &end, 10);
  if (*status && *end == 0 && idx >= 0 && (size_t)idx < USAGE_CCC_NSTATES)
    current = usage_ccc_states[idx];
  int known = 0;
  for (size_t i = 0; i < USAGE_CCC_NSTATES; i++) {
    int on = strcasecmp(current, usage_ccc_states[i]) == 0;
    known |= on;
    int rc = usage_batch_add(b, FAM_CCC_SERVICE_STATUS, on ? 1 : 0, "service",
                             service, "status", usage_ccc_states[i], NULL);
    if (rc != 0)
      return rc;
  }
  if (!known) /* a state this plugin does not know yet: show it as sent */
    return usage_batch_add(b, FAM_CCC_SERVICE_STATUS, 1, "service", service,
                           "status", current, NULL);
  return 0;
}

int usage_ccc_parse_service_usage(const char *body, size_t len,
                                  const char *service, usage_batch_t *b,
                                  usage_parse_result_t *res) {
  memset(res, 0, sizeof(*res));
  usage_json_t *root =
      usage_json_parse(body, len, 0, res->error, sizeof(res->error));
  if (root == NULL)
    return EINVAL;
  int ret = 0;
  if (usage_json_type(root) != USAGE_JSON_OBJECT) {
    snprintf(res->error, sizeof(res->error), "body is not a JSON object");
    ret = EINVAL;
    goto out;
  }

  const char *name = usage_json_text(root, "name");
  const char *code = usage_json_text(root, "serviceCode");
  const char *domain = usage_json_text(root, "primaryDomain");
  if (usage_batch_add(b, FAM_CCC_SERVICE_INFO, 1, "service", service, "name",
                      name ? name : "", "code", code ? code : "",
                      "primary_domain", domain ? domain : "", NULL) != 0)
    goto nomem;

  for (size_t i = 0; i < sizeof(service_fields) / sizeof(*service_fields);
       i++) {
    int64_t v;
    int st = usage_json_int64(root, service_fields[i].field, &v);
    if (st == ENOENT)
      continue; /* optional in the API: no sample */
    if (st == 0 && v < 0)
      st = ERANGE;
    if (st != 0) {
      usage_ccc_bad_field(res, service_fields[i].field, st);
      continue;
    }
    int rc = service_fields[i].feature
                 ? usage_batch_add(b, service_fields[i].family, (double)v,
                                   "service", service, "feature",
                                   service_fields[i].feature, NULL)
                 : usage_batch_add(b, service_fields[i].family, (double)v,
                                   "service", service, NULL);
    if (rc != 0)
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

int usage_ccc_service_status(const char *body, size_t len, char *out,
                             size_t size) {
  char err[64];
  usage_json_t *root = usage_json_parse(body, len, 0, err, sizeof(err));
  const char *st = usage_json_text(root, "status");
  int ok = st != NULL && *st;
  if (ok)
    usage_text_clean(out, size, st);
  usage_json_free(root);
  return ok;
}
