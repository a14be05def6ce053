/* SPDX-License-Identifier: MIT */
/* billing/scrape.c: the vendor glue. Conf create/destroy for config.c,
 * init (StateFile restore), the scrape (fetch every page of the window,
 * save the state, commit, publish) and shutdown, and the usage_vendor_t
 * entry. The only billing file that does I/O. */
#include "api/billing/billing.h"
#include "json.h"
#include "statefile.h"
#include "text.h"
#include "timeutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  usage_billing_t *agg;
  usage_buf_t query;
  usage_buf_t state;
} billing_state_t;

static void *billing_conf_create(void) {
  usage_billing_conf_t *c = calloc(1, sizeof(*c));
  if (c != NULL && usage_billing_conf_default(c) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

static void billing_conf_destroy(void *p) {
  usage_billing_conf_clear(p);
  free(p);
}

/* count_more adds n - 1 to a reason usage_source_error has just counted
 * once (one log line for many invalid values). */
static void count_more(usage_source_t *s, const char *reason, uint64_t n) {
  if (n > 1)
    usage_source_count(s, reason, n - 1);
}

static void billing_shutdown(usage_source_t *s);

/* billing_load_state restores the StateFile. A missing or corrupt file
 * means a fresh start; a file that exists but cannot be read fails the
 * source (counting the window again would count records twice). */
static int billing_load_state(usage_source_t *s, billing_state_t *st) {
  usage_billing_conf_t *c = usage_source_conf(s)->kind_conf;
  char *data = NULL;
  size_t len = 0;
  char err[512];
  int rc =
      usage_state_load(c->state_file, "billing", usage_source_conf(s)->name,
                       &data, &len, err, sizeof(err));
  if (rc == ENOENT) {
    usage_source_log(
        s, USAGE_LOG_INFO,
        "no state file %s yet: the first scrape looks back %" PRId64 " s",
        c->state_file, c->initial_lookback);
    return 0;
  }
  if (rc == EINVAL) {
    usage_source_log(s, USAGE_LOG_ERR, "state file: %s; starting fresh", err);
    return 0;
  }
  if (rc != 0) {
    usage_source_log(s, USAGE_LOG_ERR,
                     "state file %s cannot be read (%s): not starting, so "
                     "that no record is counted twice",
                     c->state_file, err);
    return rc;
  }
  int dropped = 0;
  char why[256];
  rc = usage_billing_restore(st->agg, data, len, &dropped, why, sizeof(why));
  free(data);
  if (rc != 0) {
    char what[300];
    snprintf(what, sizeof(what), "malformed billing state (%s)", why);
    usage_state_set_aside(c->state_file, what, err, sizeof(err));
    usage_source_log(s, USAGE_LOG_ERR, "state file: %s; starting fresh", err);
    return 0;
  }
  if (dropped)
    usage_source_log(s, USAGE_LOG_WARNING,
                     "state file %s was written with another GroupBy: the "
                     "counters restart, the de-duplication window is kept",
                     c->state_file);
  usage_source_log(s, USAGE_LOG_INFO,
                   "state restored from %s: %zu label sets, %zu ids in the "
                   "window",
                   c->state_file, usage_billing_groups(st->agg),
                   usage_billing_window_ids(st->agg));
  return 0;
}

static int billing_init(usage_source_t *s) {
  usage_billing_conf_t *c = usage_source_conf(s)->kind_conf;
  billing_state_t *st = calloc(1, sizeof(*st));
  if (st == NULL)
    return ENOMEM;
  st->agg = usage_billing_create(c);
  if (st->agg == NULL) {
    free(st);
    return ENOMEM;
  }
  usage_buf_init(&st->query, 64 * 1024);
  usage_buf_init(&st->state, 0);
  usage_source_set_state(s, st);
  int rc = c->state_file != NULL ? billing_load_state(s, st) : 0;
  if (rc != 0) {
    billing_shutdown(s);
    return rc;
  }
  return 0;
}

static void billing_shutdown(usage_source_t *s) {
  billing_state_t *st = usage_source_state(s);
  if (st == NULL)
    return;
  usage_billing_destroy(st->agg);
  usage_buf_free(&st->query);
  usage_buf_free(&st->state);
  free(st);
  usage_source_set_state(s, NULL);
}

static void api_message(const usage_http_resp_t *resp, char *out, size_t size) {
  char err[64];
  out[0] = 0;
  usage_json_t *root =
      usage_json_parse(resp->body, resp->len, 0, err, sizeof(err));
  const char *m = usage_json_str(root, "message");
  if (m == NULL)
    m = usage_json_str(root, "error");
  usage_text_clean(out, size, m);
  usage_json_free(root);
}

#define WINDOW_KEY "billing window"

/* billing_fetch requests and parses every page of the window into the
 * pending figures, MaxPages at most. 0 (all pages read), 1 (MaxPages full
 * pages read: a prefix of a backlog, see usage_billing_more), or -1 after
 * reporting the failure. */
static int billing_fetch(usage_source_t *s, billing_state_t *st, int64_t from,
                         size_t *records) {
  usage_billing_conf_t *c = usage_source_conf(s)->kind_conf;
  const char *url = usage_source_conf(s)->http.url;
  uint64_t prev_hash = 0;
  size_t prev_n = 0;
  *records = 0;
  for (unsigned page = 1; page <= c->max_pages; page++) {
    usage_buf_reset(&st->query);
    if (usage_billing_query(c, from, page, &st->query) != 0) {
      usage_source_error(s, "parse", 0, WINDOW_KEY,
                         "cannot build the request: out of memory");
      return -1;
    }
    const char *path = usage_buf_str(&st->query);
    usage_http_resp_t resp;
    int rc = usage_source_get(s, path, &resp);
    if (rc != 0) {
      usage_source_error(s, usage_source_http_reason(rc, 0), 0, WINDOW_KEY,
                         "GET %s%s failed: %s", url, path, resp.error);
      return -1;
    }
    if (resp.status != 200) {
      char msg[256];
      api_message(&resp, msg, sizeof(msg));
      const char *reason = usage_source_http_reason(0, resp.status);
      if (resp.status == 401 || resp.status == 403)
        usage_source_error(s, reason, 0, WINDOW_KEY,
                           "GET %s%s: HTTP %ld: the bearer token was refused "
                           "(expired or wrong? check BearerToken/"
                           "BearerTokenFile)",
                           url, path, resp.status);
      else
        usage_source_error(s, reason, 0, WINDOW_KEY, "GET %s%s: HTTP %ld%s%s%s",
                           url, path, resp.status, msg[0] ? ": \"" : "", msg,
                           msg[0] ? "\"" : "");
      return -1;
    }
    usage_billing_page_t res;
    rc = usage_billing_page(st->agg, resp.body, resp.len, &res);
    if (rc == ERANGE) {
      usage_source_error(s, "overflow", 0, WINDOW_KEY,
                         "GET %s%s: %s; nothing of this scrape is counted "
                         "rather than a wrapped figure",
                         url, path, res.error);
      return -1;
    }
    if (rc != 0) {
      usage_source_error(s, "parse", 0, WINDOW_KEY,
                         "GET %s%s: HTTP 200 with an unusable page (nothing "
                         "of this scrape is counted): %s",
                         url, path, res.error);
      return -1;
    }
    if (page > 1 && res.records > 0 && res.records == prev_n &&
        res.ids_hash == prev_hash) {
      usage_source_error(s, "pagination", 0, WINDOW_KEY,
                         "GET %s%s: page %u repeats page %u (the server "
                         "ignores paging?); nothing of this scrape is counted",
                         url, path, page, page - 1);
      return -1;
    }
    prev_hash = res.ids_hash;
    prev_n = res.records;
    *records += res.records;
    if (res.records < c->page_size)
      return 0;
  }
  return 1;
}

/* billing_backlog makes a scrape that stopped at MaxPages a prefix to
 * commit (the next scrape continues from its last eventDate). 0, or -1
 * after reporting why it cannot be (the scrape is then aborted). */
static int billing_backlog(usage_source_t *s, billing_state_t *st) {
  usage_billing_conf_t *c = usage_source_conf(s)->kind_conf;
  const char *url = usage_source_conf(s)->http.url;
  if (usage_billing_more(st->agg) != 0) {
    usage_source_error(s, "pagination", 0, WINDOW_KEY,
                       "GET %s/customer-usage-data: still full pages after "
                       "%u pages (MaxPages) within one eventDate second; "
                       "nothing of this scrape is counted (raise MaxPages)",
                       url, c->max_pages);
    return -1;
  }
  return 0;
}

/* billing_scrape: fetch the window (or, when it holds more than MaxPages
 * pages, a prefix of it up to a complete eventDate: a backlog is committed
 * chunk by chunk, one per scrape, so memory stays bounded by one chunk and
 * the watermark advances), then (1) write the state as it will be
 * after the commit, (2) commit in memory, (3) publish. A crash before (1)
 * completes leaves the old state: the next start fetches the same records
 * again and counts them once. A crash after (1) restarts from the new state,
 * whose counters and ids already hold the records: none is counted twice,
 * none is lost, and counters never go backwards. */
static void billing_scrape(usage_source_t *s) {
  billing_state_t *st = usage_source_state(s);
  usage_billing_conf_t *c = usage_source_conf(s)->kind_conf;
  int64_t from = usage_billing_begin(st->agg, usage_source_now(s));
  size_t records;
  int more = billing_fetch(s, st, from, &records);
  if (more < 0 || (more > 0 && billing_backlog(s, st) != 0)) {
    usage_billing_abort(st->agg);
    goto publish;
  }
  if (usage_billing_prepare(st->agg) != 0) {
    usage_billing_abort(st->agg);
    usage_source_error(s, "parse", 0, WINDOW_KEY,
                       "out of memory committing the window: nothing of this "
                       "scrape is counted; it is fetched again");
    goto publish;
  }
  if (c->state_file != NULL) {
    char err[512];
    usage_buf_reset(&st->state);
    int rc = usage_billing_serialize(st->agg, &st->state);
    if (rc == 0)
      rc =
          usage_state_save(c->state_file, "billing", usage_source_conf(s)->name,
                           usage_buf_str(&st->state), usage_buf_len(&st->state),
                           err, sizeof(err));
    else
      snprintf(err, sizeof(err), "out of memory");
    if (rc != 0) {
      usage_billing_abort(st->agg);
      usage_source_error(s, "state_file", 0, "state file",
                         "cannot write the state file %s (%s): the window is "
                         "not committed and will be fetched again",
                         c->state_file, err);
      goto publish;
    }
    usage_source_ok(s, "state file");
  }
  uint64_t invalid = usage_billing_commit(st->agg);
  if (invalid > 0) {
    usage_source_error(s, "invalid_value", 1, "billing invalid values",
                       "%" PRIu64 " record(s) refused (an id that is not a "
                       "non-negative 64-bit integer, no valid eventDate, or "
                       "a quantity or price missing, null or not a "
                       "non-negative number: held back until the vendor "
                       "sends it valid) or GroupBy value(s) left out",
                       invalid);
    count_more(s, "invalid_value", invalid);
  }
  int64_t cursor;
  if (usage_billing_cursor(st->agg, &cursor)) {
    char when[32];
    usage_format_time(cursor, when);
    usage_source_log(s, USAGE_LOG_WARNING,
                     "backlog: %u pages (MaxPages) read and committed up to "
                     "eventDate %s; more pages left: the next scrape "
                     "continues from there",
                     c->max_pages, when);
  }
  usage_source_ok(s, WINDOW_KEY);
publish:;
  usage_batch_t *b = usage_source_batch(s, "billing");
  if (b == NULL || usage_billing_samples(st->agg, b) != 0) {
    usage_batch_destroy(b);
    usage_source_error(s, "parse", 0, WINDOW_KEY, "out of memory");
    return;
  }
  usage_source_commit(s, b);
}

static const char *const billing_reasons[] = {"state_file", "overflow", NULL};

const usage_vendor_t usage_billing_vendor = {
    .kind = USAGE_KIND_BILLING,
    .conf_create = billing_conf_create,
    .conf_destroy = billing_conf_destroy,
    .init = billing_init,
    .scrape = billing_scrape,
    .shutdown = billing_shutdown,
    .reasons = billing_reasons,
};
