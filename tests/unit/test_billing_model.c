/* SPDX-License-Identifier: MIT */
/* test_billing_model: a model-based randomized test of the billing
 * aggregator. Each seed generates a history (late, duplicated, shifted and
 * reordered pages, failing pages, held-back invalid copies, re-ratings of
 * counted records (other quantities, prices or label set, also between
 * two pages of one scrape), restarts through the StateFile body) that the
 * real parser, window and state code
 * run, and a plain reference model of the documented counting rules
 * (usage(5), Billing) checks every family of every label set after each
 * committed scrape. BILLING_MODEL_SEEDS sets the number of histories;
 * BILLING_MODEL_SEED=k replays one. */
#include "api/billing/billing.h"
#include "families.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "model_util.h"

/* 2024-05-01T12:00:00Z */
#define T0 1714564800LL
#define LOOKBACK 3600
#define INITIAL_LOOKBACK 86400
#define INTERVAL 300

#define NCUST 3
#define NCLASS 3
#define NDIR 2
#define NGROUPS (NCUST * NCLASS * NDIR)
#define NQ 4 /* data, duration, sell, buy */

static const char *const customers[NCUST] = {"1001", "1002", "1003"};
static const char *const classes[NCLASS] = {"DATA", "VOICE", "SMS"};
static const char *const directions[NDIR] = {"INBOUND", "OUTBOUND"};
static const char *const qfields[NQ] = {"dataQuantity", "durationQuantity",
                                        "sellPrice", "buyPrice"};

/* ---- the history ---- */

/* The rated figures of a record: label set and quantities in 1e-3 units
 * ("%d.%03d"). */
typedef struct {
  int group;
  int64_t milli[NQ];
} mfig_t;

#define MAXVER 3

/* A record of the vendor: served from arrive on (late when arrive > ev),
 * as an invalid copy (a quantity null) before valid_from; re-rated to
 * version k from ver_from[k] on (version 0 from arrive). */
typedef struct {
  int64_t id, ev, arrive, valid_from;
  int nver;
  int64_t ver_from[MAXVER];
  mfig_t ver[MAXVER];
  int null_q; /* the quantity the invalid copy leaves null */
} mrec_t;

/* One occurrence of a record on a page, as served. */
typedef struct {
  size_t rec;
  int valid, ver;
} occ_t;

/* version_at: the version of r the vendor serves at t. */
static int version_at(const mrec_t *r, int64_t t) {
  int v = 0;
  for (int k = 1; k < r->nver; k++)
    if (t >= r->ver_from[k])
      v = k;
  return v;
}

static int fig_eq(const mfig_t *a, const mfig_t *b) {
  return a->group == b->group &&
         memcmp(a->milli, b->milli, sizeof(a->milli)) == 0;
}

/* The reference model: what usage(5) promises. A record is counted once,
 * when it is first served valid on a committed scrape with an event date
 * inside the window; when a committed scrape last served it (valid, in the
 * window) with other figures than it was counted with, the difference is
 * counted: increases in the counters, decreases in the adjustments, a
 * move of label set as the whole record out of one (adjustments) and into
 * the other (counters). The window starts InitialLookback before the first
 * scrape without saved state, and after each commit at most Lookback
 * before the newest event date counted. That date is capped at the
 * scrape's time, so a record dated in the future does not move the window
 * past the records on time (test_billing's
 * test_future_date_does_not_move_window; usage(5) does not say it). */
typedef struct {
  int have_window;
  int64_t ws;
  int have_newest;
  int64_t newest;
  unsigned char *counted, *pcounted; /* has committed / pending figures */
  mfig_t *cfig, *pfig;               /* what each record was counted with */
  int have_pnewest;
  int64_t pnewest;
  uint64_t records[NGROUPS], adjrec[NGROUPS], rerated;
  int64_t micro[NGROUPS][NQ], adj[NGROUPS][NQ]; /* data: bytes */
} model_t;

typedef struct {
  unsigned long histories, scrapes, aborted, restarts, records_fed, counted,
      late_counted, invalid_fed, held_then_counted, stale, rerated, moved,
      lowered;
} stats_t;

static stats_t stats;

typedef struct {
  const usage_billing_conf_t *conf;
  usage_billing_t *b;
  usage_buf_t state; /* the StateFile body of the last committed scrape */
  int have_state;
  mrec_t *recs;
  size_t nrecs;
  unsigned char *was_invalid; /* served invalid before (statistics) */
  model_t m;
  char err[1024];
} hist_t;

static void model_discard(model_t *m, size_t n) {
  memset(m->pcounted, 0, n);
  m->have_pnewest = 0;
}

/* model_commit: each record served in the scrape counts the difference
 * between its last copy and what it was counted with. */
static void model_commit(model_t *m, size_t n, int64_t now) {
  for (size_t i = 0; i < n; i++) {
    if (!m->pcounted[i])
      continue;
    const mfig_t *p = &m->pfig[i], *c = &m->cfig[i];
    if (!m->counted[i]) {
      m->records[p->group]++;
      for (int q = 0; q < NQ; q++)
        m->micro[p->group][q] += p->milli[q] * 1000;
    } else if (c->group != p->group) {
      m->adjrec[c->group]++;
      m->records[p->group]++;
      for (int q = 0; q < NQ; q++) {
        m->adj[c->group][q] += c->milli[q] * 1000;
        m->micro[p->group][q] += p->milli[q] * 1000;
      }
      m->rerated++;
      stats.moved++;
    } else if (!fig_eq(c, p)) {
      for (int q = 0; q < NQ; q++) {
        int64_t d = (p->milli[q] - c->milli[q]) * 1000;
        if (d > 0)
          m->micro[p->group][q] += d;
        else
          m->adj[p->group][q] -= d;
        stats.lowered += d < 0;
      }
      m->rerated++;
    }
    m->cfig[i] = *p;
    m->counted[i] = 1;
  }
  if (m->have_pnewest && (!m->have_newest || m->pnewest > m->newest)) {
    m->newest = m->pnewest;
    m->have_newest = 1;
  }
  if (m->have_newest) {
    int64_t top = m->newest < now ? m->newest : now;
    if (top - LOOKBACK > m->ws)
      m->ws = top - LOOKBACK;
  }
  model_discard(m, n);
}

/* model_page: what the page's occurrences change; the counted, duplicate
 * and re-rated figures the page must report. */
static void model_page(hist_t *h, const occ_t *o, size_t n, size_t *counted,
                       size_t *dups, size_t *rerated) {
  model_t *m = &h->m;
  *counted = *dups = *rerated = 0;
  for (size_t i = 0; i < n; i++) {
    size_t k = o[i].rec;
    const mrec_t *r = &h->recs[k];
    const mfig_t *f = &r->ver[o[i].ver];
    if (r->ev < m->ws)
      continue; /* before the window: counted earlier or never */
    if (m->counted[k] || m->pcounted[k]) {
      /* an invalid copy changes nothing; a valid one is compared with the
       * figures of the last copy taken */
      const mfig_t *cur = m->pcounted[k] ? &m->pfig[k] : &m->cfig[k];
      if (!o[i].valid || fig_eq(cur, f)) {
        (*dups)++;
        continue;
      }
      (*rerated)++;
    } else if (!o[i].valid) {
      continue; /* held back until a valid copy comes */
    } else {
      (*counted)++;
    }
    m->pcounted[k] = 1;
    m->pfig[k] = *f;
    if (!m->have_pnewest || r->ev > m->pnewest) {
      m->pnewest = r->ev;
      m->have_pnewest = 1;
    }
  }
}

/* ---- pages ---- */

static void put_record(usage_buf_t *out, const mrec_t *r, int valid, int ver,
                       int first) {
  const mfig_t *f = &r->ver[ver];
  char ts[32];
  time_t t = (time_t)r->ev;
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
  int c = f->group / (NCLASS * NDIR), k = f->group / NDIR % NCLASS,
      d = f->group % NDIR;
  usage_buf_printf(out,
                   "%s{\"id\":%lld,\"customerId\":%s,\"eventDate\":\"%s\","
                   "\"callClass\":\"%s\",\"usageDirection\":\"%s\"",
                   first ? "" : ",", (long long)r->id, customers[c], ts,
                   classes[k], directions[d]);
  for (int q = 0; q < NQ; q++) {
    if (!valid && q == r->null_q)
      usage_buf_printf(out, ",\"%s\":null", qfields[q]);
    else
      usage_buf_printf(out, ",\"%s\":%lld.%03lld", qfields[q],
                       (long long)(f->milli[q] / 1000),
                       (long long)(f->milli[q] % 1000));
  }
  usage_buf_puts(out, "}");
}

static void page_body(const hist_t *h, const occ_t *o, size_t n,
                      usage_buf_t *out) {
  usage_buf_puts(out, "[");
  for (size_t i = 0; i < n; i++)
    put_record(out, &h->recs[o[i].rec], o[i].valid, o[i].ver, i == 0);
  usage_buf_puts(out, "]");
}

/* ---- comparison ---- */

static long long round_ll(double x) {
  return (long long)(x < 0 ? x - 0.5 : x + 0.5);
}

static int group_of(const usage_sample_t *s) {
  int idx[3] = {-1, -1, -1};
  const char *const *sets[3] = {customers, classes, directions};
  const int sizes[3] = {NCUST, NCLASS, NDIR};
  if (s->nlabels != 3)
    return -1;
  for (int l = 0; l < 3; l++)
    for (int v = 0; v < sizes[l]; v++)
      if (strcmp(s->labels[2 * l + 1], sets[l][v]) == 0)
        idx[l] = v;
  if (idx[0] < 0 || idx[1] < 0 || idx[2] < 0)
    return -1;
  return (idx[0] * NCLASS + idx[1]) * NDIR + idx[2];
}

/* compare: every family of every label set equals the model's committed
 * sums: records exactly, the quantities as integers (bytes; micro-units of
 * a second or a price: llround of the double collectd gets, exact at these
 * magnitudes). */
static int compare(hist_t *h, const char *when) {
  static const int fams[2 * (1 + NQ)] = {
      FAM_BILLING_RECORDS,
      FAM_BILLING_DATA_BYTES,
      FAM_BILLING_DURATION_SECONDS,
      FAM_BILLING_SELL_PRICE,
      FAM_BILLING_BUY_PRICE,
      FAM_BILLING_ADJUSTMENT_RECORDS,
      FAM_BILLING_ADJUSTMENT_DATA_BYTES,
      FAM_BILLING_ADJUSTMENT_DURATION_SECONDS,
      FAM_BILLING_ADJUSTMENT_SELL_PRICE,
      FAM_BILLING_ADJUSTMENT_BUY_PRICE};
  int seen[NGROUPS][2 * (1 + NQ)];
  memset(seen, 0, sizeof(seen));
  usage_batch_t *batch = usage_batch_create("t", "billing");
  int rc = usage_billing_samples(h->b, batch);
  if (rc != 0) {
    snprintf(h->err, sizeof(h->err), "%s: samples failed (%d)", when, rc);
    goto fail;
  }
  for (size_t i = 0; i < usage_batch_size(batch); i++) {
    const usage_sample_t *s = usage_batch_sample(batch, i);
    int f = -1;
    for (int k = 0; k < 2 * (1 + NQ); k++)
      if (s->family == fams[k])
        f = k;
    if (s->family == FAM_BILLING_RERATED_RECORDS &&
        s->value != (double)h->m.rerated) {
      snprintf(h->err, sizeof(h->err),
               "%s: %g re-rated records, the model "
               "says %llu",
               when, s->value, (unsigned long long)h->m.rerated);
      goto fail;
    }
    if (f < 0) {
      if (s->family != FAM_BILLING_INVALID_RECORDS &&
          s->family != FAM_BILLING_RERATED_RECORDS && s->value != 0) {
        snprintf(h->err, sizeof(h->err), "%s: %s is %g", when,
                 usage_families[s->family].name, s->value);
        goto fail;
      }
      continue;
    }
    int g = group_of(s);
    if (g < 0 || seen[g][f]) {
      snprintf(h->err, sizeof(h->err), "%s: unexpected or repeated label set",
               when);
      goto fail;
    }
    seen[g][f] = 1;
    long long got, want;
    int a = f > NQ; /* an adjustment family */
    int k = f - a * (1 + NQ);
    if (k == 0) {
      got = (long long)s->value;
      want = (long long)(a ? h->m.adjrec[g] : h->m.records[g]);
    } else if (k == 1) {
      got = round_ll(s->value);
      want = a ? h->m.adj[g][0] : h->m.micro[g][0]; /* micro-MB are bytes */
    } else {
      got = round_ll(s->value * 1e6);
      want = a ? h->m.adj[g][k - 1] : h->m.micro[g][k - 1];
    }
    if (got != want) {
      snprintf(h->err, sizeof(h->err),
               "%s: %s{customer_id=%s,call_class=%s,usage_direction=%s} is "
               "%lld, the model says %lld",
               when, usage_families[s->family].name,
               customers[g / (NCLASS * NDIR)], classes[g / NDIR % NCLASS],
               directions[g % NDIR], got, want);
      goto fail;
    }
  }
  for (int g = 0; g < NGROUPS; g++)
    for (int f = 0; f < 2 * (1 + NQ); f++)
      if (!seen[g][f] && h->m.records[g] != 0) {
        snprintf(h->err, sizeof(h->err),
                 "%s: label set %d missing; the model has %llu records", when,
                 g, (unsigned long long)h->m.records[g]);
        goto fail;
      }
  usage_batch_destroy(batch);
  return 0;
fail:
  usage_batch_destroy(batch);
  return -1;
}

/* ---- the plugin side ---- */

/* restart: what a collectd restart does with a StateFile: the aggregator
 * is destroyed and a new one restores the last body written (none before
 * the first commit: the next scrape starts a fresh window). */
static int restart(hist_t *h) {
  stats.restarts++;
  usage_billing_destroy(h->b);
  h->b = usage_billing_create(h->conf);
  model_discard(&h->m, h->nrecs);
  if (!h->have_state) {
    h->m.have_window = 0;
    return 0;
  }
  int dropped = -1;
  char why[256];
  if (usage_billing_restore(h->b, usage_buf_str(&h->state),
                            usage_buf_len(&h->state), &dropped, why,
                            sizeof(why)) != 0 ||
      dropped != 0) {
    snprintf(h->err, sizeof(h->err), "restore failed: %s", why);
    return -1;
  }
  return compare(h, "after a restart");
}

typedef struct {
  occ_t *o;
  size_t n;
} page_t;

static int cmp_occ(const void *a, const void *b, void *ctx) {
  const mrec_t *recs = ctx;
  const mrec_t *x = &recs[((const occ_t *)a)->rec],
               *y = &recs[((const occ_t *)b)->rec];
  if (x->ev != y->ev)
    return x->ev < y->ev ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* build_pages: the window the vendor serves at now from the event date
 * from on, sorted by eventDate,id and paged, with pages that overlap
 * (records inserted while paging: a record on two pages, corrected in
 * between), skip a record (counted on a later scrape), come twice or in
 * another order, or list a record twice. */
static size_t build_pages(hist_t *h, int64_t now, int64_t from,
                          page_t **pages_out) {
  occ_t *all = calloc(h->nrecs + 1, sizeof(*all));
  size_t n = 0;
  int64_t lo = mu_chance(5) ? from - LOOKBACK : from; /* a sloppy vendor */
  for (size_t i = 0; i < h->nrecs; i++)
    if (h->recs[i].arrive <= now && h->recs[i].ev >= lo) {
      int v = version_at(&h->recs[i], now);
      all[n++] = (occ_t){i, v > 0 || now >= h->recs[i].valid_from, v};
    }
  qsort_r(all, n, sizeof(*all), cmp_occ, h->recs);
  size_t psize = 1 + mu_below(8), np = 0, ap = 4;
  page_t *pages = calloc(ap, sizeof(*pages));
  size_t pos = 0;
  do {
    size_t len = n - pos < psize ? n - pos : psize;
    if (np + 2 >= ap) {
      ap *= 2;
      pages = realloc(pages, ap * sizeof(*pages));
    }
    page_t *p = &pages[np++];
    p->o = calloc(len + 1, sizeof(*p->o));
    memcpy(p->o, all + pos, len * sizeof(*p->o));
    p->n = len;
    if (len > 0 && mu_chance(3)) /* one record listed twice */
      p->o[p->n++] = p->o[mu_below(len)];
    size_t next = pos + len;
    if (next < n && len > 1 && mu_chance(10)) {
      next -= 1 + mu_below(len - 1 < 2 ? len - 1 : 2);
      /* the repeated copy may have been corrected or re-rated in between */
      for (size_t i = next; i < pos + len; i++) {
        const mrec_t *r = &h->recs[all[i].rec];
        all[i].ver = version_at(r, now + INTERVAL / 2);
        all[i].valid |= all[i].ver > 0 || now + INTERVAL / 2 >= r->valid_from;
      }
    } else if (next < n && mu_chance(3)) {
      next++;
    }
    pos = next;
  } while (pos < n);
  if (np > 1 && mu_chance(10)) {
    size_t a = mu_below(np), b = mu_below(np);
    page_t t = pages[a];
    pages[a] = pages[b];
    pages[b] = t;
  }
  if (np > 0 && mu_chance(5)) { /* a page served again */
    const page_t *src = &pages[mu_below(np)];
    page_t *p = &pages[np++];
    p->o = calloc(src->n + 1, sizeof(*p->o));
    memcpy(p->o, src->o, src->n * sizeof(*p->o));
    p->n = src->n;
  }
  free(all);
  *pages_out = pages;
  return np;
}

static void free_pages(page_t *pages, size_t np) {
  for (size_t i = 0; i < np; i++)
    free(pages[i].o);
  free(pages);
}

/* scrape: one scrape at now, as billing_scrape runs it: begin, every page
 * (one may fail: the scrape is aborted; a restart may cut it short),
 * prepare, the StateFile body, commit (or a crash just before it). */
static int scrape(hist_t *h, int64_t now) {
  model_t *m = &h->m;
  int rc = -1;
  stats.scrapes++;
  if (!m->have_window) {
    m->ws = now - INITIAL_LOOKBACK;
    m->have_window = 1;
  }
  int64_t from = usage_billing_begin(h->b, (double)now);
  if (from != m->ws) {
    snprintf(h->err, sizeof(h->err),
             "scrape at %lld asks from %lld, the model from %lld",
             (long long)now, (long long)from, (long long)m->ws);
    return -1;
  }
  page_t *pages;
  size_t np = build_pages(h, now, from, &pages);
  long fail_at = mu_chance(8) ? (long)mu_below(np) : -1;
  long restart_at = mu_chance(3) ? (long)mu_below(np) : -1;
  usage_buf_t body;
  usage_buf_init(&body, 0);
  for (size_t j = 0; j < np; j++) {
    usage_billing_page_t res;
    usage_buf_reset(&body);
    page_body(h, pages[j].o, pages[j].n, &body);
    if ((long)j == fail_at) {
      stats.aborted++;
      if (mu_chance(50)) { /* a truncated body: the page must be refused */
        size_t cut = 1 + mu_below(usage_buf_len(&body) - 1);
        if (usage_billing_page(h->b, usage_buf_str(&body), cut, &res) == 0) {
          snprintf(h->err, sizeof(h->err), "a page cut at %zu accepted: %.*s",
                   cut, (int)cut, usage_buf_str(&body));
          goto out;
        }
      }
      usage_billing_abort(h->b); /* or a transport error: nothing fed */
      model_discard(m, h->nrecs);
      rc = compare(h, "after an aborted scrape");
      goto out;
    }
    if ((long)j == restart_at) {
      rc = restart(h);
      goto out;
    }
    if (usage_billing_page(h->b, usage_buf_str(&body), usage_buf_len(&body),
                           &res) != 0) {
      snprintf(h->err, sizeof(h->err), "page refused: %s", res.error);
      goto out;
    }
    size_t counted, dups, rerated;
    model_page(h, pages[j].o, pages[j].n, &counted, &dups, &rerated);
    for (size_t i = 0; i < pages[j].n; i++) {
      size_t r = pages[j].o[i].rec;
      stats.records_fed++;
      if (!pages[j].o[i].valid) {
        stats.invalid_fed++;
        h->was_invalid[r] = 1;
      }
    }
    if (res.records != pages[j].n || res.counted != counted ||
        res.duplicates != dups || res.rerated != rerated) {
      snprintf(h->err, sizeof(h->err),
               "scrape at %lld, page %zu: %zu records, %zu counted, %zu "
               "duplicates, %zu re-rated; the model says %zu, %zu, %zu, %zu",
               (long long)now, j, res.records, res.counted, res.duplicates,
               res.rerated, pages[j].n, counted, dups, rerated);
      goto out;
    }
  }
  if (usage_billing_prepare(h->b) != 0) {
    snprintf(h->err, sizeof(h->err), "prepare failed");
    goto out;
  }
  usage_buf_reset(&h->state);
  if (usage_billing_serialize(h->b, &h->state) != 0) {
    snprintf(h->err, sizeof(h->err), "serialize failed");
    goto out;
  }
  h->have_state = 1;
  for (size_t i = 0; i < h->nrecs; i++)
    if (m->pcounted[i] && !m->counted[i]) {
      stats.counted++;
      stats.late_counted += h->recs[i].arrive > h->recs[i].ev;
      stats.held_then_counted += h->was_invalid[i];
    } else if (m->pcounted[i] && !fig_eq(&m->cfig[i], &m->pfig[i])) {
      stats.rerated++;
    }
  model_commit(m, h->nrecs, now);
  if (mu_chance(4)) { /* a crash between the StateFile and the commit */
    rc = restart(h);
    goto out;
  }
  usage_billing_commit(h->b);
  if (usage_billing_window_start(h->b) != m->ws) {
    snprintf(h->err, sizeof(h->err), "window starts at %lld, the model %lld",
             (long long)usage_billing_window_start(h->b), (long long)m->ws);
    goto out;
  }
  rc = compare(h, "after a commit");
out:
  if (rc != 0 && strstr(h->err, "scrape at") == NULL) {
    char tmp[sizeof(h->err)];
    snprintf(tmp, sizeof(tmp), "scrape at %lld: %s", (long long)now, h->err);
    memcpy(h->err, tmp, sizeof(tmp));
  }
  usage_buf_free(&body);
  free_pages(pages, np);
  return rc;
}

/* history: one seed's records and scrapes. 0, or -1 with err set. */
static int history(unsigned long seed, char *err, size_t errlen) {
  usage_billing_conf_t conf;
  hist_t h;
  memset(&h, 0, sizeof(h));
  assert_int_equal(usage_billing_conf_default(&conf), 0);
  conf.lookback = LOOKBACK;
  conf.initial_lookback = INITIAL_LOOKBACK;
  h.conf = &conf;
  mu_seed(seed);
  unsigned nscrapes = 8 + (unsigned)mu_below(25);
  int64_t span = (int64_t)nscrapes * INTERVAL;
  h.nrecs = 20 + mu_below(120);
  h.recs = calloc(h.nrecs, sizeof(*h.recs));
  h.was_invalid = calloc(h.nrecs, 1);
  h.m.counted = calloc(h.nrecs, 1);
  h.m.pcounted = calloc(h.nrecs, 1);
  h.m.cfig = calloc(h.nrecs, sizeof(*h.m.cfig));
  h.m.pfig = calloc(h.nrecs, sizeof(*h.m.pfig));
  for (size_t i = 0; i < h.nrecs; i++) {
    mrec_t *r = &h.recs[i];
    r->id = mu_chance(5) ? INT64_MAX - (int64_t)i
                         : (int64_t)mu_below(1000000) * 1000 + (int64_t)i;
    r->ev = T0 - 1800 + (int64_t)mu_below((uint64_t)span + 1800);
    unsigned u = (unsigned)mu_below(100);
    int64_t late = u < 60   ? 0
                   : u < 85 ? (int64_t)mu_below(600)
                   : u < 95 ? (int64_t)mu_below(LOOKBACK - INTERVAL)
                            : LOOKBACK + (int64_t)mu_below(LOOKBACK);
    stats.stale += u >= 95;
    r->arrive = r->ev + late;
    if (mu_chance(2)) /* dated in the future (a vendor's clock ahead) */
      r->arrive = r->ev - 1 - (int64_t)mu_below(2 * LOOKBACK);
    r->valid_from =
        mu_chance(8) ? r->arrive + (int64_t)mu_below(3 * INTERVAL) : r->arrive;
    r->ver[0].group = (int)mu_below(NGROUPS);
    for (int q = 0; q < NQ; q++)
      r->ver[0].milli[q] =
          mu_chance(15) ? 0 : (int64_t)mu_below(q == 0 ? 2000000 : 5000);
    r->null_q = (int)mu_below(NQ);
    /* re-ratings: other quantities or prices (up or down, some back to
     * an earlier figure), sometimes another label set */
    r->nver = 1;
    r->ver_from[0] = r->arrive;
    while (r->nver < MAXVER && mu_chance(r->nver == 1 ? 20 : 30)) {
      int k = r->nver++;
      r->ver[k] = r->ver[k - 1];
      r->ver_from[k] = r->ver_from[k - 1] + 1 + (int64_t)mu_below(4 * INTERVAL);
      if (mu_chance(25))
        r->ver[k].group = (int)mu_below(NGROUPS);
      for (int q = 0; q < NQ; q++)
        if (mu_chance(50))
          r->ver[k].milli[q] =
              mu_chance(10) ? 0 : (int64_t)mu_below(q == 0 ? 2000000 : 5000);
      if (mu_chance(10))
        r->ver[k] = r->ver[0];
    }
  }
  usage_buf_init(&h.state, 0);
  h.b = usage_billing_create(&conf);
  int rc = 0;
  for (unsigned k = 0; k < nscrapes && rc == 0; k++) {
    if (mu_chance(5))
      rc = restart(&h);
    if (rc == 0)
      rc = scrape(&h, T0 + (int64_t)k * INTERVAL);
  }
  if (rc != 0)
    snprintf(err, errlen, "%s", h.err);
  usage_billing_destroy(h.b);
  usage_buf_free(&h.state);
  free(h.recs);
  free(h.was_invalid);
  free(h.m.counted);
  free(h.m.pcounted);
  free(h.m.cfig);
  free(h.m.pfig);
  usage_billing_conf_clear(&conf);
  stats.histories++;
  return rc;
}

static void test_model(void **state) {
  (void)state;
  double s =
      mu_run_seeds("billing", "BILLING_MODEL", "test_billing_model", history);
  double cpu = (double)clock() / CLOCKS_PER_SEC;
  printf("billing model: %lu histories, %lu scrapes (%lu aborted, %lu "
         "restarts), %lu records fed, %lu counted (%lu late, %lu after an "
         "invalid copy), %lu re-ratings committed (%lu moves of label set, "
         "%lu quantities lowered), %lu invalid copies, %lu stale records, "
         "%.1f s (%.1f s CPU)\n",
         stats.histories, stats.scrapes, stats.aborted, stats.restarts,
         stats.records_fed, stats.counted, stats.late_counted,
         stats.held_then_counted, stats.rerated, stats.moved, stats.lowered,
         stats.invalid_fed, stats.stale, s, cpu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
