/* SPDX-License-Identifier: MIT */
/* jasper/scrape.c: the vendor's glue to the source (I/O). One entity per
 * configured rate plan ("rate_plan:NAME[:VERSION]"): its pages are fetched
 * in turn, parsed as streams into a running aggregation and committed
 * together, or not at all. Also the vendor's options' lifetime, run-time
 * state, the once-only politeness warning, and its usage_vendor_t entry. */
#include "api/jasper/internal.h"
#include "families.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A source's run-time state (usage_source_state): the aggregation and the
 * request buffer, reused from scrape to scrape. */
typedef struct {
  usage_jasper_agg_t *agg;
  usage_jasper_hold_t **holds; /* per configured rate plan */
  size_t holds_num;
  usage_buf_t query;
  int warned; /* the politeness warning was considered */
} jasper_state_t;

/* next_attempt tells when a rate plan refused with 429 is asked for
 * again: at the next scrape, and not before the Retry-After that came with
 * the refusal (the source's next request waits for it). */
static void next_attempt(usage_source_t *s, long retry_after, char *out,
                         size_t len) {
  double interval = usage_source_conf(s)->interval;
  double in = interval > 0 ? usage_source_now(s) + interval - usage_now() : -1;
  if (retry_after >= 0 && retry_after > in)
    snprintf(out, len, "; next attempt in %ld s (Retry-After)", retry_after);
  else if (in >= 0)
    snprintf(out, len, "; next attempt at the next scrape, in %.0f s", in);
  else
    snprintf(out, len, "; next attempt at the next scrape");
}

/* http_failure reports a page that came back with an error status. */
static void http_failure(usage_source_t *s, const char *key, const char *what,
                         const usage_http_resp_t *resp) {
  char code[32], message[256], next[96] = "";
  usage_jasper_api_error(resp->body, resp->len, code, sizeof(code), message,
                         sizeof(message));
  if (resp->status == 429)
    next_attempt(s, resp->retry_after, next, sizeof(next));
  const usage_jasper_error_t *e = usage_jasper_error_lookup(code);
  if (e != NULL) {
    const char *text;
    const char *reason = usage_jasper_error_reason(e, resp->status, &text);
    usage_source_error(s, reason, e->refusal, key,
                       "%s: HTTP %ld, errorCode %s (\"%s\"): %s%s", what,
                       resp->status, code, message, text, next);
    return;
  }
  const char *reason = usage_source_http_reason(0, resp->status);
  if (code[0] != 0) {
    usage_source_error(
        s, reason, 0, key, "%s: HTTP %ld, errorCode %s (\"%s\")%s%s", what,
        resp->status, code, message,
        resp->status == 429 ? ": rate limited by the vendor" : "", next);
    return;
  }
  char ctype[96];
  usage_jasper_text_copy(ctype, sizeof(ctype), resp->content_type,
                         strlen(resp->content_type), 1);
  usage_source_error(
      s, reason, 0, key,
      "%s: HTTP %ld with a %s body of %zu bytes and no error "
      "code%s%s",
      what, resp->status, ctype[0] ? ctype : "untyped", resp->len,
      resp->status == 429 ? ": rate limited by the vendor" : "", next);
}

/* jasper_plan scrapes the page set of one rate plan; the number of pages
 * fetched goes to *pages. */
static void jasper_plan(usage_source_t *s, jasper_state_t *st,
                        const usage_jasper_plan_t *p, usage_jasper_hold_t *hold,
                        long *pages) {
  const usage_jasper_conf_t *c = usage_source_conf(s)->kind_conf;
  char key[320], entity[320], what[512];
  snprintf(key, sizeof(key), "rate plan \"%s\"%s%s", p->name,
           p->version ? " version " : "", p->version ? p->version : "");
  snprintf(entity, sizeof(entity), "rate_plan:%s%s%s", p->name,
           p->version ? ":" : "", p->version ? p->version : "");
  usage_jasper_agg_reset(st->agg);

  unsigned bad = 0; /* devices without a usable deviceId */
  for (long page = 1;; page++) {
    if (usage_jasper_build_query(&st->query, c, p, page) != 0) {
      usage_source_error(s, "invalid_value", 0, key, "%s: request too long",
                         key);
      return;
    }
    snprintf(what, sizeof(what), "%s: GET %s%s", key,
             usage_source_conf(s)->http.url, usage_buf_str(&st->query));
    usage_http_resp_t resp;
    (*pages)++;
    int rc = usage_source_get(s, usage_buf_str(&st->query), &resp);
    if (rc != 0) {
      usage_source_error(s, usage_source_http_reason(rc, 0), 0, key,
                         "%s failed: %s", what, resp.error);
      return;
    }
    if (resp.status != 200) {
      http_failure(s, key, what, &resp);
      return;
    }
    usage_jasper_page_t pg;
    rc = usage_jasper_parse_page(st->agg, resp.body, resp.len, &pg);
    if (rc != 0) {
      const usage_jasper_error_t *e = usage_jasper_error_lookup(pg.error_code);
      if (rc == ERANGE)
        usage_source_error(s, "overflow", 0, key, "%s: %s; figures not updated",
                           what, pg.error);
      else if (e != NULL) {
        const char *text;
        usage_source_error(
            s, usage_jasper_error_reason(e, 200, &text), e->refusal, key,
            "%s: HTTP 200 with errorCode %s: %s", what, pg.error_code, text);
      } else
        usage_source_error(s, "parse", 0, key,
                           "%s: HTTP 200 with an unusable body: %s", what,
                           pg.error);
      return;
    }
    bad += pg.bad_fields;
    if (pg.bad_fields > 0)
      usage_source_error(s, "invalid_value", 1, key, "%s: %u device(s): %s",
                         what, pg.bad_fields, pg.bad_field);
    if (pg.page_number >= 0 && pg.page_number != page) {
      usage_source_error(s, "pagination", 0, key,
                         "%s: asked for page %ld, got page %ld", what, page,
                         pg.page_number);
      return;
    }
    /* Without lastPage, a short page is the last one: its length is its
     * entries, usable devices or not. */
    int last =
        pg.has_last_page ? pg.last_page : pg.entries < (size_t)c->page_size;
    if (last)
      break;
    if (page >= c->max_pages) {
      usage_source_error(s, "pagination", 0, key,
                         "%s: still not the last page after %ld pages "
                         "(MaxPages); figures not updated",
                         what, page);
      return;
    }
  }

  /* Cycle-to-date counters never go down inside one cycle: the answer's
   * cycleStartDate, or the configured one, names it. */
  const char *cycle = usage_jasper_agg_cycle(st->agg);
  if (cycle[0] == 0)
    cycle = c->cycle_start;
  uint64_t held = 0;
  if (usage_jasper_agg_hold(st->agg, hold, cycle, &held) != 0) {
    usage_source_error(s, "parse", 0, key, "%s: out of memory", key);
    return;
  }
  if (held > 0) {
    usage_source_count(s, "decrease_held", 1);
    usage_source_log(s, USAGE_LOG_WARNING,
                     "%s: %llu figure(s) lower than published before in the "
                     "billing cycle of %s (devices missing from the answer?); "
                     "the published figures are kept",
                     key, (unsigned long long)held, cycle);
  }

  usage_batch_t *b = usage_source_batch(s, entity);
  if (b == NULL || usage_jasper_agg_emit(st->agg, p->name, c->usage_type, b)) {
    usage_batch_destroy(b);
    usage_source_error(s, "parse", 0, key, "%s: out of memory", key);
    return;
  }
  usage_source_commit(s, b);
  if (bad == 0)
    usage_source_ok(s, key);
}

static void jasper_scrape(usage_source_t *s) {
  jasper_state_t *st = usage_source_state(s);
  usage_jasper_conf_t *c = usage_source_conf(s)->kind_conf;
  long pages = 0;
  for (size_t i = 0; i < c->plans_num; i++)
    jasper_plan(s, st, &c->plans[i], st->holds[i], &pages);

  /* Once, after the first scrape told how many pages there are: can a
   * scrape finish within its interval at the configured rate? */
  if (st->warned || usage_source_conf(s)->max_rps <= 0)
    return;
  st->warned = 1;
  double need = (double)pages * usage_source_request_spacing(s);
  double interval =
      usage_source_conf(s)->interval > 0 ? usage_source_conf(s)->interval : 10;
  if (need > interval)
    usage_source_log(
        s, USAGE_LOG_WARNING,
        "a scrape needs %ld requests; at MaxRequestsPerSecond %g (with its "
        "safety margin) that takes at least %.3g s, longer than the interval "
        "of %g s%s. Scrapes of "
        "this source will run back to back (collectd never runs two at "
        "once) and figures will be older than the interval; set Interval "
        "to at least %.0f",
        pages, usage_source_conf(s)->max_rps, need, interval,
        usage_source_conf(s)->interval > 0 ? "" : " (collectd's default)",
        ceil(need));
}

static int jasper_init(usage_source_t *s) {
  usage_jasper_conf_t *c = usage_source_conf(s)->kind_conf;
  jasper_state_t *st = calloc(1, sizeof(*st));
  if (st == NULL)
    return ENOMEM;
  usage_buf_init(&st->query, 64 * 1024);
  st->agg = usage_jasper_agg_create(c->per_device, c->max_devices);
  st->holds = calloc(c->plans_num ? c->plans_num : 1, sizeof(*st->holds));
  int nomem = st->agg == NULL || st->holds == NULL;
  for (size_t i = 0; !nomem && i < c->plans_num; i++) {
    st->holds[i] = usage_jasper_hold_create();
    nomem = st->holds[i] == NULL;
    st->holds_num += !nomem;
  }
  if (nomem) {
    for (size_t i = 0; i < st->holds_num; i++)
      usage_jasper_hold_destroy(st->holds[i]);
    free(st->holds);
    usage_jasper_agg_destroy(st->agg);
    usage_buf_free(&st->query);
    free(st);
    return ENOMEM;
  }
  usage_source_set_state(s, st);
  return 0;
}

static void jasper_shutdown(usage_source_t *s) {
  jasper_state_t *st = usage_source_state(s);
  if (st == NULL)
    return;
  usage_jasper_agg_destroy(st->agg);
  for (size_t i = 0; i < st->holds_num; i++)
    usage_jasper_hold_destroy(st->holds[i]);
  free(st->holds);
  usage_buf_free(&st->query);
  free(st);
  usage_source_set_state(s, NULL);
}

int usage_jasper_dispatched(const usage_source_conf_t *src, int fam,
                            int exporter) {
  const usage_jasper_conf_t *c = src->kind_conf;
  if (!c->per_device ||
      (fam != FAM_JASPER_DEVICE_DATA_BYTES && fam != FAM_JASPER_DEVICE_SMS &&
       fam != FAM_JASPER_DEVICE_VOICE_SECONDS))
    return 1;
  /* Each device is about five value lists that collectd keeps (about 1 KB
   * each in its cache) and handles every interval: with an exporter, the
   * default leaves them to it. */
  return c->dispatch_per_device >= 0 ? c->dispatch_per_device : !exporter;
}

static void *jasper_conf_create(void) {
  usage_jasper_conf_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->page_size = USAGE_JASPER_MAX_PAGE_SIZE;
  c->max_pages = USAGE_JASPER_DEFAULT_MAX_PAGES;
  c->max_devices = USAGE_JASPER_DEFAULT_MAX_DEVICES;
  c->dispatch_per_device = -1;
  return c;
}

static void jasper_conf_destroy(void *p) {
  usage_jasper_conf_t *c = p;
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->plans_num; i++) {
    free(c->plans[i].name);
    free(c->plans[i].version);
  }
  free(c->plans);
  free(c);
}

const usage_vendor_t usage_jasper_vendor = {
    .kind = USAGE_KIND_JASPER,
    .conf_create = jasper_conf_create,
    .conf_destroy = jasper_conf_destroy,
    .init = jasper_init,
    .scrape = jasper_scrape,
    .shutdown = jasper_shutdown,
    .reasons = usage_jasper_reasons,
    .dispatched = usage_jasper_dispatched,
};
