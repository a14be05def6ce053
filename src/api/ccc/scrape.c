/* SPDX-License-Identifier: MIT */
/* ccc/scrape: the CCC vendor glue (I/O). Entities: "service:GUID" (service
 * info and usage, GetServiceUsage), "status:GUID" (the 0/1 state set, from
 * the service usage or the newest status change), "user:SERVICE:USER" (one
 * user's usage, GetServiceUserUsage) and "changes" (status-change counters,
 * SearchServiceStatusChanges, paged, with the StateFile). A service the API
 * refuses to report on (Blocked or Provisioning) still shows its state while
 * its last figures stay; one user's failure leaves the other users' figures
 * of the scrape. Conf create/destroy, init and shutdown, usage_ccc_vendor. */
#include "api/ccc/internal.h"
#include "statefile.h"
#include "timeutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ccc_commit_status commits the 0/1 state set of a service (entity
 * "status:GUID"); on ENOMEM the set keeps its last figures. */
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
    const char *reason;
    const char *state = usage_ccc_refusal(resp.status, code, message, &reason);
    int refusal = state != NULL;
    if (reason == NULL)
      reason = usage_source_http_reason(0, resp.status);
    if (state != NULL)
      ccc_commit_status(s, guid, state);
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
  if (res.bad_fields > 0) { /* an entity that cannot be read fails whole */
    usage_batch_destroy(b);
    usage_source_error(s, "invalid_value", 0, key,
                       "service %s: GET %s%s: %u field(s) with an invalid "
                       "value, first %s; the service keeps its last figures",
                       guid, url, path, res.bad_fields, res.bad_field);
    return;
  }
  char state[64];
  int have_state =
      usage_ccc_service_status(resp.body, resp.len, state, sizeof(state));
  usage_source_commit(s, b);
  if (have_state)
    ccc_commit_status(s, guid, state);
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
  if (res.bad_fields > 0) { /* an entity that cannot be read fails whole */
    usage_batch_destroy(b);
    usage_source_error(s, "invalid_value", 0, key,
                       "%s: GET %s%s: %u field(s) with an invalid value, "
                       "first %s; the user keeps its last figures",
                       what, usage_source_conf(s)->http.url, path,
                       res.bad_fields, res.bad_field);
    return;
  }
  usage_source_commit(s, b);
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
  int dirty; /* a save failed: write the state at the next scrape */
} ccc_state_t;

static void append_param(usage_buf_t *b, const char *name, const char *value) {
  if (value == NULL)
    return;
  usage_buf_printf(b, "%s%s=", strchr(usage_buf_str(b), '?') ? "&" : "?", name);
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
    if (usage_buf_failed(&path)) {
      ret = ENOMEM;
      usage_source_error(s, "parse", 0, ekey, "%s: out of memory", what);
      break;
    }

    usage_http_resp_t resp;
    int rc = usage_source_get(s, usage_buf_str(&path), &resp);
    if (rc != 0) {
      usage_source_error(s, usage_source_http_reason(rc, 0), 0, ekey,
                         "%s: GET %s%s failed: %s", what,
                         usage_source_conf(s)->http.url, usage_buf_str(&path),
                         resp.error);
      ret = EIO;
      break;
    }
    if (resp.status != 200) {
      ccc_fail_answer(s, what, ekey, usage_buf_str(&path), &resp, NULL);
      ret = EIO;
      break;
    }
    usage_ccc_changes_page_t page;
    usage_parse_result_t res;
    if (usage_ccc_parse_changes_page(resp.body, resp.len, &page, &res) != 0) {
      usage_ccc_changes_page_clear(&page);
      usage_source_error(s, "parse", 0, ekey,
                         "%s: GET %s%s: HTTP 200 with an unusable body: %s",
                         what, usage_source_conf(s)->http.url,
                         usage_buf_str(&path), res.error);
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

/* ccc_save_state writes the status-change state as it will be after this
 * scrape. 0, or an errno after reporting the failure (the source is down:
 * the scrape's changes are not committed and will be fetched again). */
static int ccc_save_state(usage_source_t *s, const ccc_state_t *st) {
  usage_ccc_conf_t *c = usage_source_conf(s)->kind_conf;
  usage_buf_t body;
  char err[512];
  usage_buf_init(&body, 0);
  int rc = usage_ccc_changes_format(&st->changes, &body);
  if (rc == 0)
    rc = usage_state_save(c->state_file, "ccc", usage_source_conf(s)->name,
                          usage_buf_str(&body), usage_buf_len(&body), err,
                          sizeof(err));
  else
    snprintf(err, sizeof(err), "out of memory");
  usage_buf_free(&body);
  if (rc != 0) {
    usage_source_error(s, "state_file", 0, "state file",
                       "cannot write the state file %s (%s): the status "
                       "changes of this scrape are not committed and will be "
                       "fetched again",
                       c->state_file, err);
    return rc;
  }
  usage_source_ok(s, "state file");
  return 0;
}

/* ccc_scrape_changes: fetch and merge every stream into a copy of the
 * state, then (1) write that copy to the StateFile, (2) make it the state
 * in memory, (3) publish the counters and the newest states. When (1)
 * fails, the state in memory and on disk stays as before this scrape, and
 * the last published figures stay: the next scrape asks from the old
 * watermark and counts the same changes once. */
static void ccc_scrape_changes(usage_source_t *s) {
  usage_ccc_conf_t *c = usage_source_conf(s)->kind_conf;
  ccc_state_t *st = usage_source_state(s);
  int wide = c->reseller != NULL || c->partner != NULL;
  size_t nstreams = wide ? 1 : c->services_num;
  double now = usage_source_now(s);
  int changed = 0;
  ccc_state_t next = {0};
  if (usage_ccc_changes_copy(&next.changes, &st->changes) != 0) {
    usage_source_error(s, "parse", 0, "status changes",
                       "status changes: out of memory");
    return;
  }
  for (size_t i = 0; i < nstreams; i++) {
    const char *key = wide ? "all" : c->services[i].guid;
    usage_ccc_stream_t *stream = usage_ccc_stream(&next.changes, key);
    if (stream == NULL)
      continue;
    double from = stream->watermark > 0 ? stream->watermark - c->overlap
                                        : now - c->lookback;
    usage_ccc_change_t *items;
    size_t num;
    if (ccc_fetch_changes(s, key, wide ? NULL : key, from, &items, &num) != 0)
      continue; /* reported; this stream keeps its counters */
    size_t added = 0;
    if (usage_ccc_changes_merge(&next.changes, key, items, num, c->overlap, now,
                                &added) != 0)
      usage_source_error(s, "parse", 0, "status changes",
                         "status changes: out of memory");
    changed |= added > 0;
    free(items);
  }
  /* Save first: after a crash between the two, the restart publishes the
   * saved counters; nothing is counted twice. */
  if (c->state_file != NULL && (changed || st->dirty) &&
      ccc_save_state(s, &next) != 0) {
    st->dirty = 1; /* tried again at the next scrape, even with nothing new */
    usage_ccc_changes_clear(&next.changes);
    return; /* the last published figures stay */
  }
  next.dirty = 0;
  /* the newest state of each service whose newest change moved */
  for (size_t k = 0; k < next.changes.lasts_num; k++) {
    const usage_ccc_last_t *l = &next.changes.lasts[k];
    const usage_ccc_last_t *was = NULL;
    for (size_t j = 0; j < st->changes.lasts_num; j++)
      if (strcmp(st->changes.lasts[j].service, l->service) == 0)
        was = &st->changes.lasts[j];
    if (l->status[0] && (was == NULL || l->changed_on > was->changed_on))
      ccc_commit_status(s, l->service, l->status);
  }
  usage_ccc_changes_clear(&st->changes);
  *st = next;
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
    if (usage_ccc_ensure_service(&st->changes, c->services[i].guid) != 0)
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
