/* SPDX-License-Identifier: MIT */
/* billing/window.c: the aggregator and its exactly-once logic. Label sets
 * with committed and pending sums and adjustments, the ids of the
 * event-date window that were counted already (ids.c) with the figures
 * they were counted with, re-ratings counted as differences, and the
 * scrape cycle begin / abort / commit that moves pending figures into
 * committed ones whole or not at all; the samples of the committed
 * figures. Pure: no I/O. */
#include "api/billing/internal.h"
#include "families.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const usage_billing_invalid_reasons[USAGE_BILLING_NINV] = {
    "id", "event_date", "quantity"};

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
  usage_billing_ids_free(&b->ids);
  usage_billing_ids_free(&b->pids);
  usage_billing_ids_free(&b->refused);
  usage_billing_ids_free(&b->prefused);
  usage_billing_ids_free(&b->next);
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
    usage_billing_ids_free(&b->next);
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
    b->groups[i].precords = b->groups[i].padjrec = 0;
    memset(b->groups[i].psum, 0, sizeof(b->groups[i].psum));
    memset(b->groups[i].padj, 0, sizeof(b->groups[i].padj));
  }
  if (dropped) {
    /* Re-index the committed groups: fewer than the table held, so no
     * insertion grows it and none can fail. */
    usage_htable_clear(&b->gidx);
    for (size_t i = 0; i < b->ngroups; i++)
      if (!b->groups[i].other)
        usage_htable_insert(&b->gidx, b->groups[i].hash, i);
  }
  usage_billing_ids_free(&b->pids);
  usage_billing_ids_free(&b->prefused);
  unprepare(b);
  b->poverflow = 0;
  b->prerated = 0;
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

int usage_billing_prepare(usage_billing_t *b) {
  int64_t ws, newest;
  int have_newest;
  usage_billing_next_window(b, &ws, &have_newest, &newest);
  unprepare(b);
  if (usage_billing_ids_window(&b->next, &b->ids, &b->pids, ws) != 0)
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
    g->adjrec += g->padjrec;
    for (int q = 0; q < USAGE_BILLING_NQ; q++) {
      g->sum[q] += g->psum[q];
      g->adj[q] += g->padj[q];
    }
    g->precords = g->padjrec = 0;
    memset(g->psum, 0, sizeof(g->psum));
    memset(g->padj, 0, sizeof(g->padj));
  }
  b->ncommitted = b->ngroups;
  b->overflow += b->poverflow;
  b->rerated += b->prerated;
  b->prerated = 0;
  for (int k = 0; k < USAGE_BILLING_NINV; k++)
    b->inv[k] += b->pinv[k];
  usage_billing_ids_free(&b->ids);
  b->ids = b->next;
  memset(&b->next, 0, sizeof(b->next));
  usage_htable_init(&b->next.idx);
  b->prepared = 0;
  usage_billing_ids_free(&b->pids);
  /* The refused fingerprints only keep the invalid counter from counting a
   * record twice: out of memory they are forgotten (counted again). */
  usage_billing_ids_t fresh;
  memset(&fresh, 0, sizeof(fresh));
  usage_htable_init(&fresh.idx);
  usage_billing_ids_window(&fresh, &b->refused, &b->prefused, ws);
  usage_billing_ids_free(&b->refused);
  usage_billing_ids_free(&b->prefused);
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
  usage_billing_ids_put(&b->prefused, key, r->ev_ok ? r->ev : b->window_start,
                        NULL, 0);
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
  int reason = -1;
  if (!r->id_ok)
    reason = USAGE_BILLING_INV_ID;
  else if (!r->ev_ok)
    reason = USAGE_BILLING_INV_EVENT_DATE;
  else
    for (int q = 0; q < USAGE_BILLING_NQ; q++)
      if (!r->q_ok[q])
        reason = USAGE_BILLING_INV_QUANTITY;
  if (r->id_ok && (usage_billing_ids_find(&b->ids, r->id) ||
                   usage_billing_ids_find(&b->pids, r->id))) {
    /* A copy of a counted record: compared with what was counted unless
     * it is invalid (or a GroupBy value has the wrong type, which would
     * move it to the empty label): then what was counted stands. */
    if (reason >= 0 || r->ginvalid) {
      res->duplicates++;
      return 0;
    }
    return 1;
  }
  if (reason >= 0) {
    /* Held back: the id is not marked seen, so the corrected copy the
     * vendor sends later is counted then, once. */
    res->invalid++;
    refuse(b, r, reason);
    return 0;
  }
  return 1;
}

/* What one id adds to the pending figures: its new figures counted into a
 * label set (up: a new record, the increases of a re-rating, or the whole
 * record in the label set it moved to), and the adjustments of one (down:
 * the decreases of a re-rating, or the whole record as it was counted in
 * the label set it left). g = -1: no such part. */
typedef struct {
  long g;
  uint64_t rec;
  usage_billing_nano_t q[USAGE_BILLING_NQ];
} part_t;

typedef struct {
  part_t up, down;
  uint64_t rerated;
} contrib_t;

/* contrib: the difference between what an id was counted with (was; NULL
 * for a new id; known = 0 when a state of format 1 or 2 did not keep it:
 * then nothing is counted and the figures seen become the reference) and
 * its current figures now. The pending figures always hold, for each id
 * of pids, the contribution of its committed entry to its pending one, so
 * that the commit makes counter - adjustment equal the sum of the current
 * figures of every record counted. */
static contrib_t contrib(const usage_billing_fig_t *was, int known,
                         const usage_billing_fig_t *now) {
  contrib_t c;
  memset(&c, 0, sizeof(c));
  c.up.g = c.down.g = -1;
  if (was != NULL && !known)
    return c;
  if (was == NULL || was->group != now->group) {
    c.up.g = now->group;
    c.up.rec = 1;
    memcpy(c.up.q, now->q, sizeof(c.up.q));
    if (was != NULL) {
      c.down.g = was->group;
      c.down.rec = 1;
      memcpy(c.down.q, was->q, sizeof(c.down.q));
      c.rerated = 1;
    }
    return c;
  }
  c.up.g = c.down.g = now->group;
  for (int q = 0; q < USAGE_BILLING_NQ; q++) {
    if (now->q[q] > was->q[q])
      c.up.q[q] = now->q[q] - was->q[q];
    else
      c.down.q[q] = was->q[q] - now->q[q];
    c.rerated |= now->q[q] != was->q[q];
  }
  return c;
}

/* contrib_fits: whether adding c keeps every sum and adjustment of its
 * label sets within USAGE_BILLING_SUM_MAX; else the quantity that would
 * not (its index + 1 in *which). */
static int contrib_fits(const usage_billing_t *b, const contrib_t *c,
                        int *which) {
  for (int q = 0; q < USAGE_BILLING_NQ; q++) {
    if (c->up.g >= 0) {
      const usage_billing_group_t *g = &b->groups[c->up.g];
      if (c->up.q[q] > USAGE_BILLING_SUM_MAX - g->sum[q] - g->psum[q]) {
        *which = q + 1;
        return 0;
      }
    }
    if (c->down.g >= 0) {
      const usage_billing_group_t *g = &b->groups[c->down.g];
      if (c->down.q[q] > USAGE_BILLING_SUM_MAX - g->adj[q] - g->padj[q]) {
        *which = q + 1;
        return 0;
      }
    }
  }
  return 1;
}

/* contrib_apply adds c to the pending figures (sign 1) or takes back what
 * an earlier contrib_apply added (sign -1). */
static void contrib_apply(usage_billing_t *b, const contrib_t *c, int sign) {
  if (c->up.g >= 0) {
    usage_billing_group_t *g = &b->groups[c->up.g];
    g->precords += (uint64_t)sign * c->up.rec;
    if (g->other)
      b->poverflow += (uint64_t)sign * c->up.rec;
    for (int q = 0; q < USAGE_BILLING_NQ; q++)
      g->psum[q] += sign * c->up.q[q];
  }
  if (c->down.g >= 0) {
    usage_billing_group_t *g = &b->groups[c->down.g];
    g->padjrec += (uint64_t)sign * c->down.rec;
    for (int q = 0; q < USAGE_BILLING_NQ; q++)
      g->padj[q] += sign * c->down.q[q];
  }
  b->prerated += (uint64_t)sign * c->rerated;
}

static int fig_eq(const usage_billing_fig_t *x, const usage_billing_fig_t *y) {
  if (x->group != y->group)
    return 0;
  for (int q = 0; q < USAGE_BILLING_NQ; q++)
    if (x->q[q] != y->q[q])
      return 0;
  return 1;
}

int usage_billing_add(usage_billing_t *b, const usage_billing_record_t *r,
                      const char *key, size_t keylen,
                      usage_billing_page_t *res) {
  unprepare(b);
  usage_billing_ident_t *pc = usage_billing_ids_get(&b->ids, r->id);
  usage_billing_ident_t *pp = usage_billing_ids_get(&b->pids, r->id);
  long gi = group_for(b, key, keylen);
  if (gi < 0)
    return ENOMEM;
  usage_billing_fig_t now, was, cur;
  now.group = gi;
  for (int q = 0; q < USAGE_BILLING_NQ; q++)
    now.q[q] = q == USAGE_BILLING_Q_DATA
                   ? r->q[q] * (usage_billing_nano_t)b->conf->data_factor
                   : r->q[q];
  const unsigned char *fc = pc ? usage_billing_ids_fig(&b->ids, pc) : NULL;
  const unsigned char *fp = pp ? usage_billing_ids_fig(&b->pids, pp) : NULL;
  if (fc != NULL)
    usage_billing_fig_unpack(fc, &was);
  /* the figures the id has now: its pending copy's, else its committed */
  int have_cur = fp != NULL || fc != NULL;
  if (fp != NULL)
    usage_billing_fig_unpack(fp, &cur);
  else if (fc != NULL)
    cur = was;
  int64_t ev = r->ev;
  if (pp != NULL && pp->ev > ev)
    ev = pp->ev;
  if (pc != NULL && pc->ev > ev)
    ev = pc->ev; /* kept while any copy of it is in the window */
  int changed = have_cur && !fig_eq(&cur, &now);
  if ((pc != NULL || pp != NULL) && have_cur && !changed &&
      ev == (pp ? pp->ev : pc->ev)) {
    res->duplicates++;
    return 0;
  }
  /* New, re-rated, first seen since a state without figures, or its
   * event date moved on: the pending entry takes the new figures. */
  contrib_t old, c;
  int have_old = pp != NULL;
  if (have_old) {
    old = contrib(pc ? &was : NULL, fc != NULL, &cur);
    contrib_apply(b, &old, -1);
  }
  c = contrib(pc ? &was : NULL, fc != NULL, &now);
  int which = 0, rc = 0;
  if (!contrib_fits(b, &c, &which)) {
    snprintf(res->error, sizeof(res->error),
             "record %" PRId64 ": the %s sum of its label set would pass "
             "2^63 units",
             r->id, usage_billing_quantities[which - 1].field);
    rc = ERANGE;
  } else {
    unsigned char packed[USAGE_BILLING_FIG_MAX];
    size_t len = usage_billing_fig_pack(&now, packed);
    if (pp != NULL) {
      rc = usage_billing_ids_setfig(&b->pids, pp, packed, len);
      if (rc == 0)
        pp->ev = ev;
    } else {
      rc = usage_billing_ids_put(&b->pids, r->id, ev, packed, len);
    }
  }
  if (rc != 0) {
    if (have_old)
      contrib_apply(b, &old, 1);
    return rc;
  }
  contrib_apply(b, &c, 1);
  if (pc == NULL && pp == NULL) {
    res->invalid += r->ginvalid;
    b->pinvalid += r->ginvalid;
    res->counted++;
  } else if (changed) {
    res->rerated++;
  } else {
    res->duplicates++;
  }
  if (!b->have_pnewest || r->ev > b->pnewest) {
    b->pnewest = r->ev;
    b->have_pnewest = 1;
  }
  return 0;
}

/* ---- what the committed figures show ---- */

size_t usage_billing_groups(const usage_billing_t *b) { return b->ncommitted; }
size_t usage_billing_window_ids(const usage_billing_t *b) { return b->ids.n; }
int64_t usage_billing_window_start(const usage_billing_t *b) {
  return b->window_start;
}

int usage_billing_samples(const usage_billing_t *b, usage_batch_t *batch) {
  static const int adj_fam[1 + USAGE_BILLING_NQ] = {
      FAM_BILLING_ADJUSTMENT_RECORDS, FAM_BILLING_ADJUSTMENT_DATA_BYTES,
      FAM_BILLING_ADJUSTMENT_DURATION_SECONDS,
      FAM_BILLING_ADJUSTMENT_SELL_PRICE, FAM_BILLING_ADJUSTMENT_BUY_PRICE};
  static const int overflow_fam[1 + USAGE_BILLING_NQ] = {
      FAM_BILLING_OVERFLOW_RECORDS, FAM_BILLING_OVERFLOW_DATA_BYTES,
      FAM_BILLING_OVERFLOW_DURATION_SECONDS, FAM_BILLING_OVERFLOW_SELL_PRICE,
      FAM_BILLING_OVERFLOW_BUY_PRICE};
  static const int overflow_adj_fam[1 + USAGE_BILLING_NQ] = {
      FAM_BILLING_OVERFLOW_ADJUSTMENT_RECORDS,
      FAM_BILLING_OVERFLOW_ADJUSTMENT_DATA_BYTES,
      FAM_BILLING_OVERFLOW_ADJUSTMENT_DURATION_SECONDS,
      FAM_BILLING_OVERFLOW_ADJUSTMENT_SELL_PRICE,
      FAM_BILLING_OVERFLOW_ADJUSTMENT_BUY_PRICE};
  const char *labels[2 * USAGE_MAX_LABELS];
  size_t nl = b->conf->group_by_num;
  const usage_billing_group_t *other = NULL;
  int rc = 0;
  for (size_t i = 0; i < b->ncommitted && rc == 0; i++) {
    const usage_billing_group_t *g = &b->groups[i];
    if (g->other) { /* past MaxSeries: in no GroupBy label set */
      other = g;
      continue;
    }
    const char *v = g->key;
    for (size_t k = 0; k < nl; k++) {
      labels[2 * k] = b->labels[k];
      labels[2 * k + 1] = v;
      v += strlen(v) + 1;
    }
    rc = usage_batch_addv(batch, FAM_BILLING_RECORDS, (double)g->records,
                          (unsigned)nl, labels);
    for (int q = 0; q < USAGE_BILLING_NQ && rc == 0; q++)
      rc = usage_batch_addv(batch, usage_billing_quantities[q].family,
                            (double)g->sum[q] / 1e9, (unsigned)nl, labels);
    if (rc == 0)
      rc = usage_batch_addv(batch, adj_fam[0], (double)g->adjrec, (unsigned)nl,
                            labels);
    for (int q = 0; q < USAGE_BILLING_NQ && rc == 0; q++)
      rc = usage_batch_addv(batch, adj_fam[1 + q], (double)g->adj[q] / 1e9,
                            (unsigned)nl, labels);
  }
  if (rc == 0)
    rc = usage_batch_add(batch, overflow_fam[0], (double)b->overflow, NULL);
  if (rc == 0)
    rc = usage_batch_add(batch, overflow_adj_fam[0],
                         other ? (double)other->adjrec : 0, NULL);
  for (int q = 0; q < USAGE_BILLING_NQ && rc == 0; q++) {
    rc = usage_batch_add(batch, overflow_fam[1 + q],
                         other ? (double)other->sum[q] / 1e9 : 0, NULL);
    if (rc == 0)
      rc = usage_batch_add(batch, overflow_adj_fam[1 + q],
                           other ? (double)other->adj[q] / 1e9 : 0, NULL);
  }
  if (rc == 0)
    rc = usage_batch_add(batch, FAM_BILLING_RERATED_RECORDS, (double)b->rerated,
                         NULL);
  for (int k = 0; k < USAGE_BILLING_NINV && rc == 0; k++) {
    const char *l[2] = {"reason", usage_billing_invalid_reasons[k]};
    rc = usage_batch_addv(batch, FAM_BILLING_INVALID_RECORDS, (double)b->inv[k],
                          1, l);
  }
  return rc;
}
