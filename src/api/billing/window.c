/* SPDX-License-Identifier: MIT */
/* billing/window.c: the aggregator and its exactly-once logic. Label sets
 * with committed and pending sums, the ids of the event-date window that
 * were counted already, and the scrape cycle begin / abort / commit that
 * moves pending figures into committed ones whole or not at all; the
 * samples of the committed figures. Pure: no I/O. */
#include "api/billing/internal.h"
#include "families.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const usage_billing_invalid_reasons[USAGE_BILLING_NINV] = {
    "id", "event_date", "quantity"};

/* ---- id sets ---- */

static int ident_eq(const void *ctx, size_t pos, const void *key) {
  const usage_billing_ids_t *s = ctx;
  return s->e[pos].id == *(const int64_t *)key;
}

int usage_billing_ids_find(const usage_billing_ids_t *s, int64_t id) {
  return usage_htable_find(&s->idx, usage_hash_u64((uint64_t)id), ident_eq, s,
                           &id) != USAGE_HTABLE_NONE;
}

/* ids_reserve makes room for n ids in all, so that adding up to n cannot
 * fail. 0, or ENOMEM (the set keeps its contents). */
static int ids_reserve(usage_billing_ids_t *s, size_t n) {
  if (n > s->alloc) {
    size_t a = s->alloc ? s->alloc : 64;
    while (a < n) {
      if (a > SIZE_MAX / 2 / sizeof(*s->e))
        return ENOMEM;
      a *= 2;
    }
    usage_billing_ident_t *e = realloc(s->e, a * sizeof(*e));
    if (e == NULL)
      return ENOMEM;
    s->e = e;
    s->alloc = a;
  }
  return usage_htable_reserve(&s->idx, n);
}

int usage_billing_ids_put(usage_billing_ids_t *s, int64_t id, int64_t ev) {
  if (ids_reserve(s, s->n + 1) != 0 ||
      usage_htable_insert(&s->idx, usage_hash_u64((uint64_t)id), s->n) != 0)
    return ENOMEM;
  s->e[s->n++] = (usage_billing_ident_t){id, ev};
  return 0;
}

/* ids_free releases the memory; the set is then empty and usable. */
static void ids_free(usage_billing_ids_t *s) {
  free(s->e);
  usage_htable_free(&s->idx);
  memset(s, 0, sizeof(*s));
}

/* ---- label sets ---- */

typedef struct {
  const char *key;
  size_t len;
} gkey_t;

static int group_eq(const void *ctx, size_t pos, const void *key) {
  const usage_billing_group_t *g = &((const usage_billing_t *)ctx)->groups[pos];
  const gkey_t *k = key;
  return g->keylen == k->len && memcmp(g->key, k->key, k->len) == 0;
}

long usage_billing_group_find(const usage_billing_t *b, const char *key,
                              size_t keylen, uint64_t hash) {
  gkey_t k = {key, keylen};
  size_t pos = usage_htable_find(&b->gidx, hash, group_eq, b, &k);
  return pos == USAGE_HTABLE_NONE ? -1 : (long)pos;
}

long usage_billing_group_add(usage_billing_t *b, const char *key, size_t keylen,
                             uint64_t hash, int other) {
  if (b->ngroups == b->agroups) {
    size_t n = b->agroups ? b->agroups * 2 : 16;
    usage_billing_group_t *p = realloc(b->groups, n * sizeof(*p));
    if (p == NULL)
      return -1;
    b->groups = p;
    b->agroups = n;
  }
  if (!other &&
      usage_htable_reserve(&b->gidx, usage_htable_count(&b->gidx) + 1) != 0)
    return -1;
  usage_billing_group_t *g = &b->groups[b->ngroups];
  memset(g, 0, sizeof(*g));
  g->key = malloc(keylen ? keylen : 1);
  if (g->key == NULL)
    return -1;
  memcpy(g->key, key, keylen);
  g->keylen = keylen;
  g->hash = hash;
  g->other = other;
  long idx = (long)b->ngroups;
  if (other) {
    b->other_idx = idx;
  } else if (usage_htable_insert(&b->gidx, hash, (size_t)idx) != 0) {
    free(g->key); /* ERANGE: more groups than positions */
    return -1;
  }
  b->ngroups++;
  return idx;
}

/* group_for returns the label set of a record, creating it (or falling
 * back to "other" past MaxSeries). -1 on ENOMEM. */
static long group_for(usage_billing_t *b, const char *key, size_t keylen) {
  uint64_t h = usage_hash_bytes(key, keylen);
  long idx = usage_billing_group_find(b, key, keylen, h);
  if (idx >= 0)
    return idx;
  size_t real = b->ngroups - (b->other_idx >= 0 ? 1 : 0);
  if (real < b->conf->max_series)
    return usage_billing_group_add(b, key, keylen, h, 0);
  b->poverflow++;
  if (b->other_idx >= 0)
    return b->other_idx;
  char other[USAGE_BILLING_MAX_GROUPBY * 6];
  size_t n = 0;
  for (size_t i = 0; i < b->conf->group_by_num; i++) {
    memcpy(other + n, "other", 6);
    n += 6;
  }
  return usage_billing_group_add(b, other, n, 0, 1);
}

/* ---- the aggregator ---- */

usage_billing_t *usage_billing_create(const usage_billing_conf_t *conf) {
  usage_billing_t *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return NULL;
  b->conf = conf;
  b->other_idx = -1;
  usage_htable_init(&b->gidx);
  usage_htable_init(&b->ids.idx);
  usage_htable_init(&b->pids.idx);
  usage_htable_init(&b->refused.idx);
  usage_htable_init(&b->prefused.idx);
  usage_htable_init(&b->next.idx);
  for (size_t g = 0; g < conf->group_by_num; g++)
    if (usage_billing_groupby_label(conf->group_by[g], b->labels[g],
                                    sizeof(b->labels[g])) != 0)
      snprintf(b->labels[g], sizeof(b->labels[g]), "%s", conf->group_by[g]);
  usage_buf_init(&b->vals, 1 << 20);
  usage_buf_init(&b->key, 1 << 20);
  return b;
}

void usage_billing_destroy(usage_billing_t *b) {
  if (b == NULL)
    return;
  for (size_t i = 0; i < b->ngroups; i++)
    free(b->groups[i].key);
  free(b->groups);
  usage_htable_free(&b->gidx);
  ids_free(&b->ids);
  ids_free(&b->pids);
  ids_free(&b->refused);
  ids_free(&b->prefused);
  ids_free(&b->next);
  usage_buf_free(&b->vals);
  usage_buf_free(&b->key);
  free(b);
}

int64_t usage_billing_begin(usage_billing_t *b, double now) {
  usage_billing_abort(b);
  b->now = now;
  if (!b->have_window) {
    b->window_start = (int64_t)now - b->conf->initial_lookback;
    b->have_window = 1;
  }
  b->pfrom = b->window_start;
  if (b->have_cursor && b->cursor > b->window_start)
    b->pfrom = b->cursor;
  return b->pfrom;
}

int usage_billing_more(usage_billing_t *b) {
  if (!b->have_plast || b->plast <= b->pfrom)
    return EDEADLK;
  b->pmore = 1;
  return 0;
}

int usage_billing_cursor(const usage_billing_t *b, int64_t *cursor) {
  *cursor = b->cursor;
  return b->have_cursor;
}

/* unprepare forgets what usage_billing_prepare built (the pending figures
 * changed, or the scrape was dropped). */
static void unprepare(usage_billing_t *b) {
  if (b->prepared || b->next.e != NULL)
    ids_free(&b->next);
  b->prepared = 0;
}

void usage_billing_abort(usage_billing_t *b) {
  for (size_t i = b->ncommitted; i < b->ngroups; i++)
    free(b->groups[i].key);
  int dropped = b->ngroups != b->ncommitted;
  b->ngroups = b->ncommitted;
  if (b->other_idx >= (long)b->ngroups)
    b->other_idx = -1;
  for (size_t i = 0; i < b->ngroups; i++) {
    b->groups[i].precords = 0;
    memset(b->groups[i].psum, 0, sizeof(b->groups[i].psum));
  }
  if (dropped) {
    /* Re-index the committed groups: fewer than the table held, so no
     * insertion grows it and none can fail. */
    usage_htable_clear(&b->gidx);
    for (size_t i = 0; i < b->ngroups; i++)
      if (!b->groups[i].other)
        usage_htable_insert(&b->gidx, b->groups[i].hash, i);
  }
  ids_free(&b->pids);
  ids_free(&b->prefused);
  unprepare(b);
  b->poverflow = 0;
  b->pinvalid = 0;
  memset(b->pinv, 0, sizeof(b->pinv));
  b->have_pnewest = 0;
  b->have_plast = 0;
  b->pmore = 0;
}

void usage_billing_next_window(const usage_billing_t *b, int64_t *ws,
                               int *have_newest, int64_t *newest) {
  *have_newest = b->have_newest;
  *newest = b->newest;
  if (b->have_pnewest && (!*have_newest || b->pnewest > *newest)) {
    *newest = b->pnewest;
    *have_newest = 1;
  }
  *ws = b->window_start;
  if (*have_newest) {
    /* A record dated in the future must not move the window past now. */
    int64_t top = *newest;
    if (b->now > 0 && top > (int64_t)b->now)
      top = (int64_t)b->now;
    if (top - b->conf->lookback > *ws)
      *ws = top - b->conf->lookback;
  }
  /* A prefix keeps the ids from its cursor on: the next scrape reads that
   * second again. */
  if (b->pmore && b->plast < *ws)
    *ws = b->plast;
}

/* ids_window builds into out the ids of the sets dated >= ws. 0, or ENOMEM
 * with out empty. */
static int ids_window(usage_billing_ids_t *out, const usage_billing_ids_t *a,
                      const usage_billing_ids_t *c, int64_t ws) {
  const usage_billing_ids_t *sets[2] = {a, c};
  size_t keep = 0;
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; i < sets[s]->n; i++)
      keep += sets[s]->e[i].ev >= ws;
  ids_free(out);
  if (ids_reserve(out, keep) != 0) {
    ids_free(out);
    return ENOMEM;
  }
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; i < sets[s]->n; i++)
      if (sets[s]->e[i].ev >= ws) /* reserved: cannot fail */
        usage_billing_ids_put(out, sets[s]->e[i].id, sets[s]->e[i].ev);
  return 0;
}

int usage_billing_prepare(usage_billing_t *b) {
  int64_t ws, newest;
  int have_newest;
  usage_billing_next_window(b, &ws, &have_newest, &newest);
  unprepare(b);
  if (ids_window(&b->next, &b->ids, &b->pids, ws) != 0)
    return ENOMEM;
  b->prepared = 1;
  return 0;
}

uint64_t usage_billing_commit(usage_billing_t *b) {
  /* Everything that can fail comes first: a commit that merged counters but
   * lost the ids would count the same records again next time. */
  if (!b->prepared && usage_billing_prepare(b) != 0) {
    usage_billing_abort(b);
    return 0;
  }
  int64_t ws, newest;
  int have_newest;
  usage_billing_next_window(b, &ws, &have_newest, &newest);
  for (size_t i = 0; i < b->ngroups; i++) {
    usage_billing_group_t *g = &b->groups[i];
    g->records += g->precords;
    for (int q = 0; q < USAGE_BILLING_NQ; q++)
      g->sum[q] += g->psum[q];
    g->precords = 0;
    memset(g->psum, 0, sizeof(g->psum));
  }
  b->ncommitted = b->ngroups;
  b->overflow += b->poverflow;
  for (int k = 0; k < USAGE_BILLING_NINV; k++)
    b->inv[k] += b->pinv[k];
  ids_free(&b->ids);
  b->ids = b->next;
  memset(&b->next, 0, sizeof(b->next));
  usage_htable_init(&b->next.idx);
  b->prepared = 0;
  ids_free(&b->pids);
  /* The refused fingerprints only keep the invalid counter from counting a
   * record twice: out of memory they are forgotten (counted again). */
  usage_billing_ids_t fresh;
  memset(&fresh, 0, sizeof(fresh));
  usage_htable_init(&fresh.idx);
  ids_window(&fresh, &b->refused, &b->prefused, ws);
  ids_free(&b->refused);
  ids_free(&b->prefused);
  b->refused = fresh;
  b->window_start = ws;
  b->have_window = 1;
  b->have_newest = have_newest;
  b->newest = newest;
  uint64_t invalid = b->pinvalid;
  b->poverflow = 0;
  b->pinvalid = 0;
  memset(b->pinv, 0, sizeof(b->pinv));
  b->have_pnewest = 0;
  b->have_cursor = b->pmore;
  b->cursor = b->pmore ? b->plast : 0;
  b->have_plast = 0;
  b->pmore = 0;
  return invalid;
}

/* ---- records ---- */

/* refuse counts a refused record in the pending invalid figures, once per
 * record of the window when it can be told apart (a valid id, or the text
 * of a refused id), else once per scrape. */
static void refuse(usage_billing_t *b, const usage_billing_record_t *r,
                   int reason) {
  int64_t key;
  if (r->id_ok)
    key = r->id;
  else if (r->id_fp != 0) /* negative: never a valid id */
    key = (int64_t)(r->id_fp | ((uint64_t)1 << 63));
  else
    goto count;
  if (usage_billing_ids_find(&b->refused, key) ||
      usage_billing_ids_find(&b->prefused, key))
    return;
  /* out of memory it is counted again next time: only this counter */
  usage_billing_ids_put(&b->prefused, key, r->ev_ok ? r->ev : b->window_start);
count:
  b->pinv[reason]++;
  b->pinvalid++;
}

int usage_billing_admit(usage_billing_t *b, const usage_billing_record_t *r,
                        usage_billing_page_t *res) {
  if (r->ev_ok && (!b->have_plast || r->ev > b->plast)) {
    b->plast = r->ev; /* sorted: the eventDate reached so far */
    b->have_plast = 1;
  }
  if (r->ev_ok && r->ev < b->window_start)
    return 0; /* outside the window: counted before it moved, or never */
  if (r->id_ok && (usage_billing_ids_find(&b->ids, r->id) ||
                   usage_billing_ids_find(&b->pids, r->id))) {
    res->duplicates++;
    return 0;
  }
  int reason = -1;
  if (!r->id_ok)
    reason = USAGE_BILLING_INV_ID;
  else if (!r->ev_ok)
    reason = USAGE_BILLING_INV_EVENT_DATE;
  else
    for (int q = 0; q < USAGE_BILLING_NQ; q++)
      if (!r->q_ok[q])
        reason = USAGE_BILLING_INV_QUANTITY;
  if (reason >= 0) {
    /* Held back: the id is not marked seen, so the corrected copy the
     * vendor sends later is counted then, once. */
    res->invalid++;
    refuse(b, r, reason);
    return 0;
  }
  return 1;
}

int usage_billing_add(usage_billing_t *b, const usage_billing_record_t *r,
                      const char *key, size_t keylen,
                      usage_billing_page_t *res) {
  unprepare(b);
  long gi = group_for(b, key, keylen);
  if (gi < 0)
    return ENOMEM;
  usage_billing_group_t *g = &b->groups[gi];
  usage_billing_nano_t v[USAGE_BILLING_NQ];
  for (int q = 0; q < USAGE_BILLING_NQ; q++) {
    v[q] = q == USAGE_BILLING_Q_DATA
               ? r->q[q] * (usage_billing_nano_t)b->conf->data_factor
               : r->q[q];
    if (v[q] > USAGE_BILLING_SUM_MAX - g->sum[q] - g->psum[q]) {
      snprintf(res->error, sizeof(res->error),
               "record %" PRId64 ": the %s sum of its label set would pass "
               "2^63 units",
               r->id, usage_billing_quantities[q].field);
      return ERANGE;
    }
  }
  if (usage_billing_ids_put(&b->pids, r->id, r->ev) != 0)
    return ENOMEM;
  g->precords++;
  for (int q = 0; q < USAGE_BILLING_NQ; q++)
    g->psum[q] += v[q];
  res->invalid += r->ginvalid;
  b->pinvalid += r->ginvalid;
  if (!b->have_pnewest || r->ev > b->pnewest) {
    b->pnewest = r->ev;
    b->have_pnewest = 1;
  }
  res->counted++;
  return 0;
}

/* ---- what the committed figures show ---- */

size_t usage_billing_groups(const usage_billing_t *b) { return b->ncommitted; }
size_t usage_billing_window_ids(const usage_billing_t *b) { return b->ids.n; }
int64_t usage_billing_window_start(const usage_billing_t *b) {
  return b->window_start;
}

int usage_billing_samples(const usage_billing_t *b, usage_batch_t *batch) {
  static const int overflow_fam[USAGE_BILLING_NQ] = {
      FAM_BILLING_OVERFLOW_DATA_BYTES, FAM_BILLING_OVERFLOW_DURATION_SECONDS,
      FAM_BILLING_OVERFLOW_SELL_PRICE, FAM_BILLING_OVERFLOW_BUY_PRICE};
  const char *labels[2 * USAGE_MAX_LABELS];
  size_t nl = b->conf->group_by_num;
  usage_billing_nano_t osum[USAGE_BILLING_NQ] = {0};
  for (size_t i = 0; i < b->ncommitted; i++) {
    const usage_billing_group_t *g = &b->groups[i];
    if (g->other) { /* past MaxSeries: in no GroupBy label set */
      memcpy(osum, g->sum, sizeof(osum));
      continue;
    }
    const char *v = g->key;
    for (size_t k = 0; k < nl; k++) {
      labels[2 * k] = b->labels[k];
      labels[2 * k + 1] = v;
      v += strlen(v) + 1;
    }
    int rc = usage_batch_addv(batch, FAM_BILLING_RECORDS, (double)g->records,
                              (unsigned)nl, labels);
    for (int q = 0; q < USAGE_BILLING_NQ && rc == 0; q++)
      rc = usage_batch_addv(batch, usage_billing_quantities[q].family,
                            (double)g->sum[q] / 1e9, (unsigned)nl, labels);
    if (rc != 0)
      return rc;
  }
  int rc = usage_batch_add(batch, FAM_BILLING_OVERFLOW_RECORDS,
                           (double)b->overflow, NULL);
  for (int q = 0; q < USAGE_BILLING_NQ && rc == 0; q++)
    rc = usage_batch_add(batch, overflow_fam[q], (double)osum[q] / 1e9, NULL);
  for (int k = 0; k < USAGE_BILLING_NINV && rc == 0; k++) {
    const char *l[2] = {"reason", usage_billing_invalid_reasons[k]};
    rc = usage_batch_addv(batch, FAM_BILLING_INVALID_RECORDS, (double)b->inv[k],
                          1, l);
  }
  return rc;
}
