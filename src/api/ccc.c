/* SPDX-License-Identifier: MIT */
/* ccc: CCC secure-messaging API v8.4, GetServiceUsage
 * (GET {URL}/api/services/{ServiceGuid}/serviceusage). One entity per
 * service ("service:GUID": info and usage figures) and one for its state
 * ("status:GUID"), so a service the API refuses to report on (Blocked or
 * Provisioning) still shows its state while its last figures stay. */
#include "api/ccc.h"
#include "families.h"
#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The ServiceStatus enum, in the API's order (numbers index it). */
static const char *const service_states[] = {
    "Blocked",      "AccountCancelled", "AccountSuspended", "Provisioning",
    "TrialExpired", "TrialActive",      "DemoAccount",      "CertifiedSecure"};
#define NSTATES (sizeof(service_states) / sizeof(*service_states))

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

int usage_guid_normalize(const char *in, char out[33]) {
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

static void bad_field(usage_parse_result_t *res, const char *field,
                      int status) {
  if (res->bad_fields++ == 0)
    snprintf(res->bad_field, sizeof(res->bad_field), "%s: %s", field,
             usage_json_errstr(status));
}

int usage_ccc_add_status(usage_batch_t *b, const char *service,
                         const char *status) {
  const char *current = status;
  char *end;
  long idx = strtol(status, &end, 10);
  if (*status && *end == 0 && idx >= 0 && (size_t)idx < NSTATES)
    current = service_states[idx];
  int known = 0;
  for (size_t i = 0; i < NSTATES; i++) {
    int on = strcasecmp(current, service_states[i]) == 0;
    known |= on;
    int rc = usage_batch_add(b, FAM_CCC_SERVICE_STATUS, on ? 1 : 0, "service",
                             service, "status", service_states[i], NULL);
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

  const char *name = usage_json_str(root, "name");
  const char *code = usage_json_str(root, "serviceCode");
  const char *domain = usage_json_str(root, "primaryDomain");
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
      bad_field(res, service_fields[i].field, st);
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

/* clean_text copies s, replacing control characters, for a log line. */
static void clean_text(char *dst, size_t size, const char *s) {
  size_t n = 0;
  for (; s && *s && n + 1 < size; s++)
    dst[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
  dst[n] = 0;
}

void usage_ccc_api_error(const char *body, size_t len, char *code,
                         size_t code_size, char *message, size_t msg_size) {
  char err[64];
  code[0] = message[0] = 0;
  usage_json_t *root = usage_json_parse(body, len, 0, err, sizeof(err));
  if (root == NULL)
    return;
  const usage_json_t *rs = usage_json_get(root, "responseStatus");
  clean_text(code, code_size, usage_json_text(rs, "errorCode"));
  clean_text(message, msg_size, usage_json_str(rs, "message"));
  usage_json_free(root);
}

/* ccc_status_of reads the "status" of a GetServiceUsage body. */
static int ccc_status_of(const char *body, size_t len, char *out, size_t size) {
  char err[64];
  usage_json_t *root = usage_json_parse(body, len, 0, err, sizeof(err));
  const char *st = usage_json_text(root, "status");
  int ok = st != NULL && *st;
  if (ok)
    clean_text(out, size, st);
  usage_json_free(root);
  return ok;
}

static int contains_ci(const char *hay, const char *needle) {
  return hay && strcasestr(hay, needle) != NULL;
}

static void ccc_scrape_service(usage_source_t *s, const char *guid) {
  char path[128], key[64], entity[64];
  snprintf(path, sizeof(path), "/api/services/%s/serviceusage", guid);
  snprintf(key, sizeof(key), "service %s", guid);
  const char *url = s->conf->http.url;

  usage_http_resp_t resp;
  int rc = usage_source_get(s, path, &resp);
  if (rc != 0) {
    usage_source_error(s, usage_source_http_reason(rc, 0), 0, key,
                       "service %s: GET %s%s failed: %s", guid, url, path,
                       resp.error);
    return;
  }
  if (resp.status != 200) {
    char code[64], message[256];
    usage_ccc_api_error(resp.body, resp.len, code, sizeof(code), message,
                        sizeof(message));
    const char *reason = usage_source_http_reason(0, resp.status);
    int refusal = 0;
    const char *state = NULL;
    if (resp.status >= 400 && resp.status < 500 && resp.status != 401 &&
        resp.status != 403 && resp.status != 429) {
      if (contains_ci(code, "block") || contains_ci(message, "block")) {
        reason = "service_blocked";
        state = "Blocked";
        refusal = 1;
      } else if (contains_ci(code, "provision") ||
                 contains_ci(message, "provision")) {
        reason = "service_provisioning";
        state = "Provisioning";
        refusal = 1;
      } else if (resp.status == 404) {
        reason = "service_unknown";
      }
    }
    if (state != NULL) {
      usage_batch_t *b;
      snprintf(entity, sizeof(entity), "status:%s", guid);
      if ((b = usage_source_batch(s, entity)) != NULL &&
          usage_ccc_add_status(b, guid, state) == 0)
        usage_source_commit(s, b);
      else
        usage_batch_destroy(b);
    }
    usage_source_error(
        s, reason, refusal, key, "service %s: GET %s%s: HTTP %ld%s%s%s%s%s",
        guid, url, path, resp.status, code[0] ? ", errorCode " : "", code,
        message[0] ? ", message \"" : "", message, message[0] ? "\"" : "");
    return;
  }

  snprintf(entity, sizeof(entity), "service:%s", guid);
  usage_batch_t *b = usage_source_batch(s, entity);
  usage_parse_result_t res;
  if (b == NULL ||
      usage_ccc_parse_service_usage(resp.body, resp.len, guid, b, &res) != 0) {
    usage_batch_destroy(b);
    usage_source_error(s, "parse", 0, key,
                       "service %s: GET %s%s: HTTP 200 with an unusable body: "
                       "%s",
                       guid, url, path, b ? res.error : "out of memory");
    return;
  }
  char state[64];
  int have_state = ccc_status_of(resp.body, resp.len, state, sizeof(state));
  if (res.bad_fields > 0)
    usage_source_error(s, "invalid_value", 1, key,
                       "service %s: GET %s%s: %u field(s) left out, first %s",
                       guid, url, path, res.bad_fields, res.bad_field);
  usage_source_commit(s, b);
  if (have_state) {
    snprintf(entity, sizeof(entity), "status:%s", guid);
    usage_batch_t *sb = usage_source_batch(s, entity);
    if (sb != NULL && usage_ccc_add_status(sb, guid, state) == 0)
      usage_source_commit(s, sb);
    else
      usage_batch_destroy(sb);
  }
  if (res.bad_fields == 0)
    usage_source_ok(s, key);
}

static void ccc_scrape(usage_source_t *s) {
  usage_ccc_conf_t *c = s->conf->kind_conf;
  for (size_t i = 0; i < c->services_num; i++)
    ccc_scrape_service(s, c->services[i].guid);
}

static void *ccc_conf_create(void) {
  return calloc(1, sizeof(usage_ccc_conf_t));
}

static void ccc_conf_destroy(void *p) {
  usage_ccc_conf_t *c = p;
  if (c == NULL)
    return;
  free(c->services);
  free(c);
}

const usage_vendor_t usage_ccc_vendor = {
    .kind = USAGE_KIND_CCC,
    .conf_create = ccc_conf_create,
    .conf_destroy = ccc_conf_destroy,
    .scrape = ccc_scrape,
};
