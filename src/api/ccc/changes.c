/* SPDX-License-Identifier: MIT */
/* ccc/changes: SearchServiceStatusChanges pages into change records, and
 * the status-change streams: counting each change GUID exactly once (the
 * seen set near the watermark), the per-service counters and newest state,
 * and their samples. Pure. */
#include "api/ccc/internal.h"
#include "families.h"
#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (svc == NULL || usage_ccc_guid_normalize(svc, it->service) != 0) {
      usage_ccc_bad_field(res, "serviceGuid", svc ? EINVAL : ENOENT);
      continue;
    }
    if (chg == NULL || usage_ccc_guid_normalize(chg, it->change) != 0) {
      usage_ccc_bad_field(res, "serviceStatusChangeGuid",
                          chg ? EINVAL : ENOENT);
      continue;
    }
    if (st == NULL || *st == 0) {
      usage_ccc_bad_field(res, "status", ENOENT);
      continue;
    }
    if (tst != 0) {
      usage_ccc_bad_field(res, "changedOn", tst);
      continue;
    }
    snprintf(it->status, sizeof(it->status), "%s",
             usage_ccc_enum_name(st, usage_ccc_states, USAGE_CCC_NSTATES));
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

usage_ccc_count_t *usage_ccc_count_slot(usage_ccc_changes_t *c,
                                        const char *service,
                                        const char *status) {
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

usage_ccc_last_t *usage_ccc_last_slot(usage_ccc_changes_t *c,
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

int usage_ccc_ensure_service(usage_ccc_changes_t *c, const char *service) {
  for (size_t i = 0; i < USAGE_CCC_NSTATES; i++)
    if (usage_ccc_count_slot(c, service, usage_ccc_states[i]) == NULL)
      return ENOMEM;
  return usage_ccc_last_slot(c, service) ? 0 : ENOMEM;
}

int usage_ccc_changes_merge(usage_ccc_changes_t *c, const char *key,
                            const usage_ccc_change_t *items, size_t num,
                            double overlap, double now, size_t *added) {
  *added = 0;
  usage_ccc_stream_t *st = usage_ccc_stream(c, key);
  if (st == NULL)
    return ENOMEM;
  /* Reserve everything first so that nothing is half merged on ENOMEM. */
  for (size_t i = 0; i < num; i++)
    if (usage_ccc_ensure_service(c, items[i].service) != 0 ||
        usage_ccc_count_slot(c, items[i].service, items[i].status) == NULL)
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
    usage_ccc_count_slot(c, it->service, it->status)->count++;
    usage_ccc_last_t *last = usage_ccc_last_slot(c, it->service);
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
  /* The watermark never passes now: a change dated in the future would
   * otherwise move ChangedAfterDateTime past every real change to come.
   * Such a change stays in the seen set (it is newer than the watermark),
   * so the next queries, which return it again, do not count it twice. */
  for (size_t i = 0; i < st->seen_num; i++) {
    double t = st->seen[i].changed_on < now ? st->seen[i].changed_on : now;
    if (t > st->watermark)
      st->watermark = t;
  }
  /* Keep only what the next query (from watermark - overlap) can return. */
  size_t keep = 0;
  for (size_t i = 0; i < st->seen_num; i++)
    if (st->seen[i].changed_on >= st->watermark - overlap)
      st->seen[keep++] = st->seen[i];
  st->seen_num = keep;
  return 0;
}

int usage_ccc_changes_copy(usage_ccc_changes_t *dst,
                           const usage_ccc_changes_t *src) {
  memset(dst, 0, sizeof(*dst));
  dst->streams = calloc(src->streams_num + 1, sizeof(*dst->streams));
  dst->counts = calloc(src->counts_num + 1, sizeof(*dst->counts));
  dst->lasts = calloc(src->lasts_num + 1, sizeof(*dst->lasts));
  if (dst->streams == NULL || dst->counts == NULL || dst->lasts == NULL)
    goto fail;
  for (size_t i = 0; i < src->streams_num; i++) {
    const usage_ccc_stream_t *from = &src->streams[i];
    usage_ccc_stream_t *to = &dst->streams[i];
    *to = *from;
    to->seen = calloc(from->seen_num + 1, sizeof(*to->seen));
    if (to->seen == NULL) {
      to->seen_num = 0;
      goto fail;
    }
    if (from->seen_num > 0)
      memcpy(to->seen, from->seen, from->seen_num * sizeof(*to->seen));
    dst->streams_num++;
  }
  if (src->counts_num > 0)
    memcpy(dst->counts, src->counts, src->counts_num * sizeof(*dst->counts));
  dst->counts_num = src->counts_num;
  if (src->lasts_num > 0)
    memcpy(dst->lasts, src->lasts, src->lasts_num * sizeof(*dst->lasts));
  dst->lasts_num = src->lasts_num;
  return 0;
fail:
  usage_ccc_changes_clear(dst);
  return ENOMEM;
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
