/* SPDX-License-Identifier: MIT */
/* ccc: CCC secure-messaging API v8.4. Entities: "service:GUID" (service
 * info and usage, GetServiceUsage), "status:GUID" (the 0/1 state set, from
 * the service usage or the newest status change), "user:SERVICE:USER" (one
 * user's usage, GetServiceUserUsage) and "changes" (status-change counters,
 * SearchServiceStatusChanges). A service the API refuses to report on
 * (Blocked or Provisioning) still shows its state while its last figures
 * stay; one user's failure leaves the other users' figures of the scrape. */
#include "api/ccc.h"
#include "families.h"
#include "json.h"
#include "statefile.h"
#include "text.h"
#include "timeutil.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <time.h>

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

/* enum_name maps an enum sent as its number to its name. */
static const char *enum_name(const char *v, const char *const *names,
                             size_t n) {
  char *end;
  long idx = strtol(v, &end, 10);
  if (*v && *end == 0 && idx >= 0 && (size_t)idx < n)
    return names[idx];
  return v;
}

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
  gtype = gtype ? enum_name(gtype, group_types, 2) : "";
  status = status ? enum_name(status, user_states, 2) : "";
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
      bad_field(res, user_fields[i].field, st);
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
      bad_field(res, user_times[i].field, st);
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

void usage_ccc_changes_page_clear(usage_ccc_changes_page_t *page) {
  free(page->items);
  memset(page, 0, sizeof(*page));
}

static long page_number(const usage_json_t *root, const char *key) {
  int64_t v;
  return usage_json_int64(root, key, &v) == 0 && v >= 0 && v < LONG_MAX
             ? (long)v
             : -1;
}

int usage_ccc_parse_changes_page(const char *body, size_t len,
                                 usage_ccc_changes_page_t *page,
                                 usage_parse_result_t *res) {
  memset(res, 0, sizeof(*res));
  memset(page, 0, sizeof(*page));
  usage_json_t *root =
      usage_json_parse(body, len, 0, res->error, sizeof(res->error));
  if (root == NULL)
    return EINVAL;
  int ret = 0;
  const usage_json_t *results = usage_json_get(root, "results");
  if (usage_json_type(root) != USAGE_JSON_OBJECT ||
      (results != NULL && usage_json_type(results) != USAGE_JSON_ARRAY &&
       usage_json_type(results) != USAGE_JSON_NULL)) {
    snprintf(res->error, sizeof(res->error),
             "body is not a status-change page (no \"results\" array)");
    ret = EINVAL;
    goto out;
  }
  page->page_size = page_number(root, "pageSize");
  page->total_pages = page_number(root, "totalPages");
  page->total_items = page_number(root, "totalItems");
  page->current_page = page_number(root, "currentPage");
  size_t n = usage_json_len(results);
  page->items = calloc(n + 1, sizeof(*page->items));
  if (page->items == NULL) {
    snprintf(res->error, sizeof(res->error), "out of memory");
    ret = ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    const usage_json_t *r = usage_json_at(results, i);
    usage_ccc_change_t *it = &page->items[page->num];
    const char *svc = usage_json_str(r, "serviceGuid");
    const char *chg = usage_json_str(r, "serviceStatusChangeGuid");
    const char *st = usage_json_text(r, "status");
    int tst = usage_json_time(r, "changedOn", &it->changed_on);
    if (svc == NULL || usage_guid_normalize(svc, it->service) != 0) {
      bad_field(res, "serviceGuid", svc ? EINVAL : ENOENT);
      continue;
    }
    if (chg == NULL || usage_guid_normalize(chg, it->change) != 0) {
      bad_field(res, "serviceStatusChangeGuid", chg ? EINVAL : ENOENT);
      continue;
    }
    if (st == NULL || *st == 0) {
      bad_field(res, "status", ENOENT);
      continue;
    }
    if (tst != 0) {
      bad_field(res, "changedOn", tst);
      continue;
    }
    snprintf(it->status, sizeof(it->status), "%s",
             enum_name(st, service_states, NSTATES));
    for (char *q = it->status; *q; q++) /* a label value and a state word */
      if (!isalnum((unsigned char)*q) && *q != '_' && *q != '-')
        *q = '_';
    page->num++;
  }
out:
  usage_json_free(root);
  return ret;
}

void usage_ccc_changes_clear(usage_ccc_changes_t *c) {
  for (size_t i = 0; i < c->streams_num; i++)
    free(c->streams[i].seen);
  free(c->streams);
  free(c->counts);
  free(c->lasts);
  memset(c, 0, sizeof(*c));
}

usage_ccc_stream_t *usage_ccc_stream(usage_ccc_changes_t *c, const char *key) {
  for (size_t i = 0; i < c->streams_num; i++)
    if (strcmp(c->streams[i].key, key) == 0)
      return &c->streams[i];
  usage_ccc_stream_t *p =
      realloc(c->streams, (c->streams_num + 1) * sizeof(*p));
  if (p == NULL)
    return NULL;
  c->streams = p;
  p = &c->streams[c->streams_num++];
  memset(p, 0, sizeof(*p));
  snprintf(p->key, sizeof(p->key), "%s", key);
  return p;
}

static usage_ccc_count_t *count_slot(usage_ccc_changes_t *c,
                                     const char *service, const char *status) {
  for (size_t i = 0; i < c->counts_num; i++)
    if (strcmp(c->counts[i].service, service) == 0 &&
        strcmp(c->counts[i].status, status) == 0)
      return &c->counts[i];
  usage_ccc_count_t *p = realloc(c->counts, (c->counts_num + 1) * sizeof(*p));
  if (p == NULL)
    return NULL;
  c->counts = p;
  p = &c->counts[c->counts_num++];
  memset(p, 0, sizeof(*p));
  snprintf(p->service, sizeof(p->service), "%s", service);
  snprintf(p->status, sizeof(p->status), "%s", status);
  return p;
}

static usage_ccc_last_t *last_slot(usage_ccc_changes_t *c,
                                   const char *service) {
  for (size_t i = 0; i < c->lasts_num; i++)
    if (strcmp(c->lasts[i].service, service) == 0)
      return &c->lasts[i];
  usage_ccc_last_t *p = realloc(c->lasts, (c->lasts_num + 1) * sizeof(*p));
  if (p == NULL)
    return NULL;
  c->lasts = p;
  p = &c->lasts[c->lasts_num++];
  memset(p, 0, sizeof(*p));
  snprintf(p->service, sizeof(p->service), "%s", service);
  return p;
}

static int seen_in(const usage_ccc_stream_t *st, const char *change) {
  for (size_t i = 0; i < st->seen_num; i++)
    if (strcmp(st->seen[i].change, change) == 0)
      return 1;
  return 0;
}

/* changes_ensure_service makes the 8 counters and the last slot of a
 * service exist, so its counters are published from 0. */
static int changes_ensure_service(usage_ccc_changes_t *c, const char *service) {
  for (size_t i = 0; i < NSTATES; i++)
    if (count_slot(c, service, service_states[i]) == NULL)
      return ENOMEM;
  return last_slot(c, service) ? 0 : ENOMEM;
}

int usage_ccc_changes_merge(usage_ccc_changes_t *c, const char *key,
                            const usage_ccc_change_t *items, size_t num,
                            double overlap, size_t *added) {
  *added = 0;
  usage_ccc_stream_t *st = usage_ccc_stream(c, key);
  if (st == NULL)
    return ENOMEM;
  /* Reserve everything first so that nothing is half merged on ENOMEM. */
  for (size_t i = 0; i < num; i++)
    if (changes_ensure_service(c, items[i].service) != 0 ||
        count_slot(c, items[i].service, items[i].status) == NULL)
      return ENOMEM;
  usage_ccc_seen_t *seen =
      realloc(st->seen, (st->seen_num + num + 1) * sizeof(*seen));
  if (seen == NULL)
    return ENOMEM;
  st->seen = seen;

  for (size_t i = 0; i < num; i++) {
    const usage_ccc_change_t *it = &items[i];
    if (seen_in(st, it->change))
      continue; /* counted before, or twice on these pages */
    if (st->watermark > 0 && it->changed_on < st->watermark - overlap)
      continue; /* older than the window: counted by an earlier scrape */
    count_slot(c, it->service, it->status)->count++;
    usage_ccc_last_t *last = last_slot(c, it->service);
    if (it->changed_on >= last->changed_on) {
      last->changed_on = it->changed_on;
      snprintf(last->status, sizeof(last->status), "%s", it->status);
    }
    snprintf(st->seen[st->seen_num].change, sizeof(st->seen->change), "%s",
             it->change);
    st->seen[st->seen_num].changed_on = it->changed_on;
    st->seen_num++;
    (*added)++;
  }
  for (size_t i = 0; i < st->seen_num; i++)
    if (st->seen[i].changed_on > st->watermark)
      st->watermark = st->seen[i].changed_on;
  /* Keep only what the next query (from watermark - overlap) can return. */
  size_t keep = 0;
  for (size_t i = 0; i < st->seen_num; i++)
    if (st->seen[i].changed_on >= st->watermark - overlap)
      st->seen[keep++] = st->seen[i];
  st->seen_num = keep;
  return 0;
}

int usage_ccc_changes_add_samples(const usage_ccc_changes_t *c,
                                  usage_batch_t *b) {
  for (size_t i = 0; i < c->counts_num; i++)
    if (usage_batch_add(b, FAM_CCC_STATUS_CHANGES, (double)c->counts[i].count,
                        "service", c->counts[i].service, "status",
                        c->counts[i].status, NULL) != 0)
      return ENOMEM;
  for (size_t i = 0; i < c->lasts_num; i++)
    if (c->lasts[i].changed_on > 0 &&
        usage_batch_add(b, FAM_CCC_SERVICE_LAST_STATUS_CHANGE,
                        c->lasts[i].changed_on, "service", c->lasts[i].service,
                        NULL) != 0)
      return ENOMEM;
  return 0;
}

/* State file body, one record a line:
 *   stream KEY WATERMARK
 *   seen KEY CHANGE-GUID CHANGED-ON
 *   count SERVICE STATUS N
 *   last SERVICE CHANGED-ON STATUS|-
 * Times are Unix seconds with milliseconds. */
int usage_ccc_changes_format(const usage_ccc_changes_t *c, usage_buf_t *out) {
  for (size_t i = 0; i < c->streams_num; i++) {
    const usage_ccc_stream_t *st = &c->streams[i];
    usage_buf_printf(out, "stream %s %.3f\n", st->key, st->watermark);
    for (size_t k = 0; k < st->seen_num; k++)
      usage_buf_printf(out, "seen %s %s %.3f\n", st->key, st->seen[k].change,
                       st->seen[k].changed_on);
  }
  for (size_t i = 0; i < c->counts_num; i++)
    usage_buf_printf(out, "count %s %s %" PRIu64 "\n", c->counts[i].service,
                     c->counts[i].status, c->counts[i].count);
  for (size_t i = 0; i < c->lasts_num; i++)
    usage_buf_printf(out, "last %s %.3f %s\n", c->lasts[i].service,
                     c->lasts[i].changed_on,
                     c->lasts[i].status[0] ? c->lasts[i].status : "-");
  return out->failed;
}

static int valid_key(const char *k) {
  char g[33];
  return strcmp(k, "all") == 0 ||
         (strlen(k) == 32 && usage_guid_normalize(k, g) == 0 &&
          strcmp(g, k) == 0);
}

static int valid_word(const char *w) {
  if (*w == 0 || strlen(w) >= 32)
    return 0;
  for (; *w; w++)
    if (!isalnum((unsigned char)*w) && *w != '_' && *w != '-')
      return 0;
  return 1;
}

/* state_time and state_count read a whole field as a number (sscanf
 * would take "12abc" for 12, and an overflowing count for ULLONG_MAX). */
static int state_time(const char *s, double *t) {
  char *end;
  errno = 0;
  *t = strtod(s, &end);
  return end != s && *end == 0 && errno == 0 && isfinite(*t);
}

static int state_count(const char *s, unsigned long long *n) {
  char *end;
  errno = 0;
  *n = strtoull(s, &end, 10);
  return isdigit((unsigned char)*s) && *end == 0 && errno == 0;
}

int usage_ccc_changes_parse(const char *data, size_t len,
                            usage_ccc_changes_t *c) {
  memset(c, 0, sizeof(*c));
  char *copy = malloc(len + 1);
  if (copy == NULL)
    return ENOMEM;
  memcpy(copy, data, len);
  copy[len] = 0;
  int ret = 0;
  char *save = NULL;
  if (memchr(copy, 0, len) != NULL || (len > 0 && copy[len - 1] != '\n'))
    ret = EINVAL;
  for (char *line = strtok_r(copy, "\n", &save); line != NULL && ret == 0;
       line = strtok_r(NULL, "\n", &save)) {
    char a[64] = "", b2[64] = "", c3[64] = "", d[64] = "", extra[2];
    double t;
    unsigned long long n;
    int fields = sscanf(line, "%63s %63s %63s %63s %1s", a, b2, c3, d, extra);
    if (strcmp(a, "stream") == 0 && fields == 3 && valid_key(b2) &&
        state_time(c3, &t) && t >= 0) {
      usage_ccc_stream_t *st = usage_ccc_stream(c, b2);
      if (st == NULL)
        ret = ENOMEM;
      else
        st->watermark = t;
    } else if (strcmp(a, "seen") == 0 && strlen(c3) == 32 && fields == 4 &&
               valid_key(b2) && valid_key(c3) && strcmp(c3, "all") != 0 &&
               state_time(d, &t)) {
      usage_ccc_stream_t *st = usage_ccc_stream(c, b2);
      usage_ccc_seen_t *p =
          st ? realloc(st->seen, (st->seen_num + 1) * sizeof(*p)) : NULL;
      if (p == NULL) {
        ret = ENOMEM;
        break;
      }
      st->seen = p;
      snprintf(p[st->seen_num].change, sizeof(p->change), "%.32s", c3);
      p[st->seen_num++].changed_on = t;
    } else if (strcmp(a, "count") == 0 && fields == 4 && valid_key(b2) &&
               strcmp(b2, "all") != 0 && valid_word(c3) && state_count(d, &n)) {
      usage_ccc_count_t *slot = count_slot(c, b2, c3);
      if (slot == NULL)
        ret = ENOMEM;
      else
        slot->count = n;
    } else if (strcmp(a, "last") == 0 && fields == 4 && valid_key(b2) &&
               strcmp(b2, "all") != 0 && state_time(c3, &t) && strlen(d) < 32 &&
               (strcmp(d, "-") == 0 || valid_word(d))) {
      usage_ccc_last_t *slot = last_slot(c, b2);
      if (slot == NULL) {
        ret = ENOMEM;
      } else {
        slot->changed_on = t;
        snprintf(slot->status, sizeof(slot->status), "%.31s",
                 strcmp(d, "-") == 0 ? "" : d);
      }
    } else {
      ret = EINVAL;
    }
  }
  free(copy);
  if (ret != 0)
    usage_ccc_changes_clear(c);
  return ret;
}

void usage_ccc_api_error(const char *body, size_t len, char *code,
                         size_t code_size, char *message, size_t msg_size) {
  char err[64];
  code[0] = message[0] = 0;
  usage_json_t *root = usage_json_parse(body, len, 0, err, sizeof(err));
  if (root == NULL)
    return;
  const usage_json_t *rs = usage_json_get(root, "responseStatus");
  usage_text_clean(code, code_size, usage_json_text(rs, "errorCode"));
  usage_text_clean(message, msg_size, usage_json_str(rs, "message"));
  usage_json_free(root);
}

/* ccc_status_of reads the "status" of a GetServiceUsage body. */
static int ccc_status_of(const char *body, size_t len, char *out, size_t size) {
  char err[64];
  usage_json_t *root = usage_json_parse(body, len, 0, err, sizeof(err));
  const char *st = usage_json_text(root, "status");
  int ok = st != NULL && *st;
  if (ok)
    usage_text_clean(out, size, st);
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
  const char *url = usage_source_conf(s)->http.url;

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
    /* The API documents that the report fails for a Blocked or
     * Provisioning service, not with which status: recognise the state
     * in the error's code or message, whatever the status (a 401 or 429
     * is about the client, never the service). */
    if (resp.status >= 400 && resp.status != 401 && resp.status != 429) {
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

/* ccc_fail_answer reports a non-200 answer for an entity: the reason from
 * the HTTP status, the API's errorCode and message in the log line. */
static void ccc_fail_answer(usage_source_t *s, const char *what,
                            const char *key, const char *path,
                            const usage_http_resp_t *resp,
                            const char *not_found_reason) {
  char code[64], message[256];
  usage_ccc_api_error(resp->body, resp->len, code, sizeof(code), message,
                      sizeof(message));
  const char *reason = usage_source_http_reason(0, resp->status);
  if (resp->status == 404 && not_found_reason != NULL)
    reason = not_found_reason;
  usage_source_error(s, reason, 0, key, "%s: GET %s%s: HTTP %ld%s%s%s%s%s",
                     what, usage_source_conf(s)->http.url, path, resp->status,
                     code[0] ? ", errorCode " : "", code,
                     message[0] ? ", message \"" : "", message,
                     message[0] ? "\"" : "");
}

/* Per-user usage: one job per (service, user), run on the source's
 * workers (MaxConcurrentRequests). */
typedef struct {
  usage_source_t *s;
  const char *service;
  const char *user;
} user_job_t;

static void ccc_user_job(void *ctx, size_t i, usage_http_t *http) {
  user_job_t *job = &((user_job_t *)ctx)[i];
  usage_source_t *s = job->s;
  usage_ccc_conf_t *c = usage_source_conf(s)->kind_conf;
  const char *period_type = c->monthly ? "Monthly" : "Daily";
  char path[256], key[80], what[128], entity[80];
  snprintf(path, sizeof(path),
           "/api/services/%s/users/%s/usage?PeriodType=%s%s%s", job->service,
           job->user, period_type, c->period ? "&Period=" : "",
           c->period ? c->period : "");
  snprintf(key, sizeof(key), "user %s", job->user);
  snprintf(what, sizeof(what), "service %s user %s", job->service, job->user);

  usage_http_resp_t resp;
  int rc = usage_source_get_with(s, http, path, &resp);
  if (rc != 0) {
    usage_source_error(s, usage_source_http_reason(rc, 0), 0, key,
                       "%s: GET %s%s failed: %s", what,
                       usage_source_conf(s)->http.url, path, resp.error);
    return;
  }
  if (resp.status != 200) {
    ccc_fail_answer(s, what, key, path, &resp, "user_unknown");
    return;
  }
  snprintf(entity, sizeof(entity), "user:%s:%s", job->service, job->user);
  usage_batch_t *b = usage_source_batch(s, entity);
  usage_parse_result_t res;
  if (b == NULL || usage_ccc_parse_user_usage(
                       resp.body, resp.len, job->service, job->user,
                       period_type, c->export_user_details, b, &res) != 0) {
    usage_batch_destroy(b);
    usage_source_error(s, "parse", 0, key,
                       "%s: GET %s%s: HTTP 200 with an unusable body: %s", what,
                       usage_source_conf(s)->http.url, path,
                       b ? res.error : "out of memory");
    return;
  }
  if (res.bad_fields > 0)
    usage_source_error(s, "invalid_value", 1, key,
                       "%s: GET %s%s: %u field(s) left out, first %s", what,
                       usage_source_conf(s)->http.url, path, res.bad_fields,
                       res.bad_field);
  usage_source_commit(s, b);
  if (res.bad_fields == 0)
    usage_source_ok(s, key);
}

static void ccc_scrape_users(usage_source_t *s) {
  usage_ccc_conf_t *c = usage_source_conf(s)->kind_conf;
  size_t n = 0;
  for (size_t i = 0; i < c->services_num; i++)
    n += c->services[i].users_num;
  if (n == 0)
    return;
  user_job_t *jobs = calloc(n, sizeof(*jobs));
  if (jobs == NULL) {
    usage_source_error(s, "parse", 0, "users", "users: out of memory");
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < c->services_num; i++)
    for (size_t u = 0; u < c->services[i].users_num; u++)
      jobs[k++] = (user_job_t){s, c->services[i].guid, c->services[i].users[u]};
  usage_source_run(s, n, ccc_user_job, jobs);
  free(jobs);
}

/* Status changes. */

typedef struct {
  usage_ccc_changes_t changes;
  int dirty; /* counted changes not yet in the StateFile */
} ccc_state_t;

static void append_param(usage_buf_t *b, const char *name, const char *value) {
  if (value == NULL)
    return;
  usage_buf_printf(b, "%s%s=", memchr(b->data, '?', b->len) ? "&" : "?", name);
  usage_http_escape(b, value);
}

/* ccc_fetch_changes reads every page of one stream's query into items.
 * 0, or an errno after reporting the failure (nothing is to be counted). */
static int ccc_fetch_changes(usage_source_t *s, const char *key,
                             const char *service, double from,
                             usage_ccc_change_t **items, size_t *num) {
  usage_ccc_conf_t *c = usage_source_conf(s)->kind_conf;
  char ekey[64], what[96], after[32], num_buf[24];
  snprintf(ekey, sizeof(ekey), "status changes %s", key);
  snprintf(what, sizeof(what), "status changes of %s",
           strcmp(key, "all") == 0 ? "all services" : key);
  usage_format_time((int64_t)floor(from), after);

  usage_buf_t path;
  usage_buf_init(&path, 8192);
  char prev_first[33] = "";
  size_t prev_num = 0;
  int ret = 0;
  *items = NULL;
  *num = 0;
  for (int p = 1;; p++) {
    usage_buf_reset(&path);
    usage_buf_puts(&path, "/api/services/status");
    append_param(&path, "ServiceGuid", service);
    append_param(&path, "ResellerGuid", c->reseller);
    append_param(&path, "PartnerGuid", c->partner);
    append_param(&path, "ChangedByUserGuid", c->changed_by_user);
    append_param(&path, "ChangedByUserEmail", c->changed_by_email);
    append_param(&path, "ChangedAfterDateTime", after);
    snprintf(num_buf, sizeof(num_buf), "%d", p);
    append_param(&path, "Page", num_buf);
    snprintf(num_buf, sizeof(num_buf), "%d", c->page_size);
    append_param(&path, "PageSize", num_buf);
    if (path.failed) {
      ret = ENOMEM;
      usage_source_error(s, "parse", 0, ekey, "%s: out of memory", what);
      break;
    }

    usage_http_resp_t resp;
    int rc = usage_source_get(s, path.data, &resp);
    if (rc != 0) {
      usage_source_error(s, usage_source_http_reason(rc, 0), 0, ekey,
                         "%s: GET %s%s failed: %s", what,
                         usage_source_conf(s)->http.url, path.data, resp.error);
      ret = EIO;
      break;
    }
    if (resp.status != 200) {
      ccc_fail_answer(s, what, ekey, path.data, &resp, NULL);
      ret = EIO;
      break;
    }
    usage_ccc_changes_page_t page;
    usage_parse_result_t res;
    if (usage_ccc_parse_changes_page(resp.body, resp.len, &page, &res) != 0) {
      usage_ccc_changes_page_clear(&page);
      usage_source_error(s, "parse", 0, ekey,
                         "%s: GET %s%s: HTTP 200 with an unusable body: %s",
                         what, usage_source_conf(s)->http.url, path.data,
                         res.error);
      ret = EINVAL;
      break;
    }
    if (res.bad_fields > 0)
      usage_source_error(s, "invalid_value", 1, ekey,
                         "%s: page %d: %u result(s) left out, first %s", what,
                         p, res.bad_fields, res.bad_field);
    if (p > 1 && page.num > 0 && page.num == prev_num &&
        strcmp(page.items[0].change, prev_first) == 0) {
      usage_ccc_changes_page_clear(&page);
      usage_source_error(s, "pagination", 0, ekey,
                         "%s: page %d repeats page %d; giving up on this "
                         "page set",
                         what, p, p - 1);
      ret = EPROTO;
      break;
    }
    usage_ccc_change_t *grown =
        realloc(*items, (*num + page.num + 1) * sizeof(**items));
    if (grown == NULL) {
      usage_ccc_changes_page_clear(&page);
      usage_source_error(s, "parse", 0, ekey, "%s: out of memory", what);
      ret = ENOMEM;
      break;
    }
    *items = grown;
    memcpy(*items + *num, page.items, page.num * sizeof(**items));
    *num += page.num;
    prev_num = page.num;
    if (page.num > 0)
      memcpy(prev_first, page.items[0].change, sizeof(prev_first));
    long size = page.page_size > 0 ? page.page_size : c->page_size;
    /* results on the page, the left-out ones included: a full page of
     * which one result was unusable is still full */
    size_t got = page.num + res.bad_fields;
    int full = got > 0 && (long)got >= size;
    int more = got > 0 &&
               (full || (page.total_pages > 0 && (long)p < page.total_pages));
    usage_ccc_changes_page_clear(&page);
    if (!more)
      break;
    if (p >= c->max_pages) {
      usage_source_error(s, "pagination", 0, ekey,
                         "%s: more than %d pages (StatusChangesMaxPages); "
                         "giving up on this page set",
                         what, c->max_pages);
      ret = EPROTO;
      break;
    }
  }
  usage_buf_free(&path);
  if (ret != 0) {
    free(*items);
    *items = NULL;
    *num = 0;
  } else {
    usage_source_ok(s, ekey);
  }
  return ret;
}

static void ccc_commit_status(usage_source_t *s, const char *service,
                              const char *status) {
  char entity[64];
  snprintf(entity, sizeof(entity), "status:%s", service);
  usage_batch_t *b = usage_source_batch(s, entity);
  if (b != NULL && usage_ccc_add_status(b, service, status) == 0)
    usage_source_commit(s, b);
  else
    usage_batch_destroy(b);
}

static void ccc_save_state(usage_source_t *s, ccc_state_t *st) {
  usage_ccc_conf_t *c = usage_source_conf(s)->kind_conf;
  if (c->state_file == NULL)
    return;
  usage_buf_t body;
  char err[512];
  usage_buf_init(&body, 0);
  int rc = usage_ccc_changes_format(&st->changes, &body);
  if (rc == 0)
    rc = usage_state_save(c->state_file, "ccc", usage_source_conf(s)->name,
                          body.data ? body.data : "", body.len, err,
                          sizeof(err));
  else
    snprintf(err, sizeof(err), "out of memory");
  usage_buf_free(&body);
  if (rc != 0) {
    usage_source_error(s, "state_file", 1, "state file", "%s", err);
  } else {
    st->dirty = 0;
    usage_source_ok(s, "state file");
  }
}

static void ccc_scrape_changes(usage_source_t *s) {
  usage_ccc_conf_t *c = usage_source_conf(s)->kind_conf;
  ccc_state_t *st = usage_source_state(s);
  int wide = c->reseller != NULL || c->partner != NULL;
  size_t nstreams = wide ? 1 : c->services_num;
  int changed = 0;
  for (size_t i = 0; i < nstreams; i++) {
    const char *key = wide ? "all" : c->services[i].guid;
    usage_ccc_stream_t *stream = usage_ccc_stream(&st->changes, key);
    if (stream == NULL)
      continue;
    double from = stream->watermark > 0 ? stream->watermark - c->overlap
                                        : usage_source_now(s) - c->lookback;
    usage_ccc_change_t *items;
    size_t num;
    if (ccc_fetch_changes(s, key, wide ? NULL : key, from, &items, &num) != 0)
      continue; /* reported; this stream keeps its counters */

    size_t nlast = st->changes.lasts_num;
    usage_ccc_last_t *before = calloc(nlast + 1, sizeof(*before));
    size_t added = 0;
    if (before != NULL && nlast > 0) /* lasts is NULL until a service */
      memcpy(before, st->changes.lasts, nlast * sizeof(*before));
    if (before == NULL || usage_ccc_changes_merge(&st->changes, key, items, num,
                                                  c->overlap, &added) != 0) {
      usage_source_error(s, "parse", 0, "status changes",
                         "status changes: out of memory");
    } else {
      changed |= added > 0;
      for (size_t k = 0; k < st->changes.lasts_num; k++) {
        usage_ccc_last_t *l = &st->changes.lasts[k];
        if (l->status[0] &&
            (k >= nlast || l->changed_on > before[k].changed_on))
          ccc_commit_status(s, l->service, l->status);
      }
    }
    free(before);
    free(items);
  }
  /* Save first: after a crash between the two, the restart publishes the
   * saved counters; nothing is counted twice. */
  st->dirty |= changed; /* a failed save is tried again next scrape */
  if (st->dirty)
    ccc_save_state(s, st);
  usage_batch_t *b = usage_source_batch(s, "changes");
  if (b != NULL && usage_ccc_changes_add_samples(&st->changes, b) == 0)
    usage_source_commit(s, b);
  else
    usage_batch_destroy(b);
}

static void ccc_scrape(usage_source_t *s) {
  usage_ccc_conf_t *c = usage_source_conf(s)->kind_conf;
  for (size_t i = 0; i < c->services_num; i++)
    ccc_scrape_service(s, c->services[i].guid);
  ccc_scrape_users(s);
  if (c->status_changes)
    ccc_scrape_changes(s);
}

static int ccc_init(usage_source_t *s) {
  usage_ccc_conf_t *c = usage_source_conf(s)->kind_conf;
  ccc_state_t *st = calloc(1, sizeof(*st));
  if (st == NULL)
    return ENOMEM;
  usage_source_set_state(s, st);
  if (!c->status_changes)
    return 0;
  if (c->state_file != NULL) {
    char *data = NULL, err[512];
    size_t len = 0;
    int rc = usage_state_load(c->state_file, "ccc", usage_source_conf(s)->name,
                              &data, &len, err, sizeof(err));
    if (rc == 0 && usage_ccc_changes_parse(data, len, &st->changes) != 0) {
      usage_state_set_aside(c->state_file, "has a malformed record", err,
                            sizeof(err));
      rc = EINVAL;
    }
    free(data);
    if (rc == 0)
      usage_source_log(s, USAGE_LOG_INFO, "state loaded from \"%s\"",
                       c->state_file);
    else if (rc != ENOENT)
      usage_source_log(s, USAGE_LOG_WARNING, "%s", err);
  }
  for (size_t i = 0; i < c->services_num; i++)
    if (changes_ensure_service(&st->changes, c->services[i].guid) != 0)
      return ENOMEM;
  return 0;
}

static void ccc_shutdown(usage_source_t *s) {
  ccc_state_t *st = usage_source_state(s);
  usage_ccc_changes_clear(&st->changes);
  free(st);
  usage_source_set_state(s, NULL);
}

static void *ccc_conf_create(void) {
  usage_ccc_conf_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->lookback = USAGE_CCC_DEFAULT_LOOKBACK;
  c->overlap = USAGE_CCC_DEFAULT_OVERLAP;
  c->page_size = USAGE_CCC_DEFAULT_PAGE_SIZE;
  c->max_pages = USAGE_CCC_DEFAULT_MAX_PAGES;
  return c;
}

static void ccc_conf_destroy(void *p) {
  usage_ccc_conf_t *c = p;
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->services_num; i++)
    free(c->services[i].users);
  free(c->services);
  free(c->period);
  free(c->reseller);
  free(c->partner);
  free(c->changed_by_user);
  free(c->changed_by_email);
  free(c->state_file);
  free(c);
}

static const char *const ccc_reasons[] = {
    "service_blocked", "service_provisioning", "service_unknown",
    "user_unknown",    "state_file",           NULL};

const usage_vendor_t usage_ccc_vendor = {
    .kind = USAGE_KIND_CCC,
    .conf_create = ccc_conf_create,
    .conf_destroy = ccc_conf_destroy,
    .init = ccc_init,
    .scrape = ccc_scrape,
    .shutdown = ccc_shutdown,
    .reasons = ccc_reasons,
};
