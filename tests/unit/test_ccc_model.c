/* SPDX-License-Identifier: MIT */
/* test_ccc_model: a model-based randomized test of the CCC status-change
 * streams. Each seed generates the status changes of a few services (some
 * arriving late, some dated in the future), scrapes that page through
 * them by offset while new changes arrive between pages (a change listed
 * twice or skipped), pages served twice, failed fetches, and restarts
 * through the StateFile body at random points (also between a merge and
 * its save). The real merge, copy, format and parse code runs them the
 * way ccc_scrape_changes does; a plain reference model checks after every
 * scrape that no watermark passes the scrape's start and no change is
 * counted twice (a counter never exceeds the distinct changes served),
 * and at the end that every change a complete scrape served in time
 * (within Overlap of its date) was counted. CCC_MODEL_SEEDS sets the
 * number of histories; CCC_MODEL_SEED=k replays one. */
#include "api/ccc/ccc.h"
#include "buf.h"

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
#define OVERLAP 300
#define LOOKBACK 3600
#define INTERVAL 60
#define NSVC 3
#define NSTAT 8
#define MAXCHG 200

static const char *const states[NSTAT] = {
    "Blocked",      "AccountCancelled", "AccountSuspended", "Provisioning",
    "TrialExpired", "TrialActive",      "DemoAccount",      "CertifiedSecure"};

/* ---- the vendor's changes ---- */

typedef struct {
  int svc, status;
  int64_t on, arrive; /* ChangedOn; served from arrive on */
} mchg_t;

typedef struct {
  unsigned long histories, scrapes, restarts, crashes, failed, complete,
      served, listed_twice, late, future, counted, safe;
} stats_t;

static stats_t stats;

typedef struct {
  mchg_t chg[MAXCHG];
  int nchg;
  int wide; /* one "all" stream, or one stream per service */
  usage_ccc_changes_t st; /* the state in memory */
  usage_buf_t saved;      /* the StateFile body */
  int have_saved;
  /* the model */
  unsigned char served[MAXCHG]; /* served on a committed merge */
  int64_t complete_at[NSVC + 1][64]; /* complete committed scrapes */
  int ncomplete[NSVC + 1];
  char err[1024];
} hist_t;

static void svc_guid(char *out, int s) {
  snprintf(out, 33, "%032x", 0x5e000 + s);
}
static void chg_guid(char *out, int i) {
  snprintf(out, 33, "c%031x", 0xc0000 + i);
}

static int stream_of(const hist_t *h, int svc) { return h->wide ? NSVC : svc; }

/* visible: the changes of stream k the vendor serves at time t for a query
 * from `from` (ChangedAfterDateTime, whole seconds), by ChangedOn. */
static int visible(const hist_t *h, int k, int64_t t, int64_t from, int *out) {
  int n = 0;
  for (int i = 0; i < h->nchg; i++) {
    const mchg_t *c = &h->chg[i];
    if (stream_of(h, c->svc) == k && c->arrive <= t && c->on > from)
      out[n++] = i;
  }
  /* insertion sort by (on, index) */
  for (int i = 1; i < n; i++) {
    int x = out[i], j = i;
    while (j > 0 && (h->chg[out[j - 1]].on > h->chg[x].on ||
                     (h->chg[out[j - 1]].on == h->chg[x].on && out[j - 1] > x))) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = x;
  }
  return n;
}

static int restart(hist_t *h) {
  stats.restarts++;
  usage_ccc_changes_clear(&h->st);
  memset(&h->st, 0, sizeof(h->st));
  if (!h->have_saved)
    return 0;
  if (usage_ccc_changes_parse(usage_buf_str(&h->saved), usage_buf_len(&h->saved),
                              &h->st) != 0) {
    snprintf(h->err, sizeof(h->err), "the saved state does not parse: %s",
             usage_buf_str(&h->saved));
    return -1;
  }
  return 0;
}

/* check: the counters against the changes served, and the watermarks. */
static int check(hist_t *h, int64_t now) {
  for (size_t i = 0; i < h->st.streams_num; i++)
    if (h->st.streams[i].watermark > (double)now) {
      snprintf(h->err, sizeof(h->err),
               "stream %s: watermark %.0f passes the scrape's start %lld",
               h->st.streams[i].key, h->st.streams[i].watermark,
               (long long)now);
      return -1;
    }
  for (int s = 0; s < NSVC; s++) {
    char g[33];
    svc_guid(g, s);
    for (int q = 0; q < NSTAT; q++) {
      uint64_t distinct = 0, got = 0;
      for (int i = 0; i < h->nchg; i++)
        distinct += h->served[i] && h->chg[i].svc == s && h->chg[i].status == q;
      for (size_t k = 0; k < h->st.counts_num; k++)
        if (strcmp(h->st.counts[k].service, g) == 0 &&
            strcmp(h->st.counts[k].status, states[q]) == 0)
          got += h->st.counts[k].count;
      if (got > distinct) {
        snprintf(h->err, sizeof(h->err),
                 "service %d %s: counted %llu, only %llu distinct changes "
                 "served",
                 s, states[q], (unsigned long long)got,
                 (unsigned long long)distinct);
        return -1;
      }
    }
  }
  return 0;
}

/* scrape: one ccc_scrape_changes at time now. */
static int scrape(hist_t *h, int64_t now) {
  stats.scrapes++;
  usage_ccc_changes_t next;
  if (usage_ccc_changes_copy(&next, &h->st) != 0) {
    snprintf(h->err, sizeof(h->err), "copy failed");
    return -1;
  }
  int nstreams = h->wide ? 1 : NSVC;
  int complete[NSVC + 1] = {0};
  unsigned char served_now[MAXCHG] = {0};
  int page_size = 1 + (int)mu_below(8);
  size_t counted = 0;
  for (int si = 0; si < nstreams; si++) {
    int k = h->wide ? NSVC : si;
    char key[40];
    if (h->wide)
      snprintf(key, sizeof(key), "all");
    else
      svc_guid(key, si);
    usage_ccc_stream_t *stream = usage_ccc_stream(&next, key);
    assert_non_null(stream);
    double fromd = stream->watermark > 0 ? stream->watermark - OVERLAP
                                         : (double)(now - LOOKBACK);
    int64_t from = (int64_t)fromd; /* the query's whole seconds */
    if (fromd < (double)from)
      from--;
    usage_ccc_change_t items[MAXCHG * 4];
    size_t num = 0;
    int list[MAXCHG], prev[MAXCHG], nprev = 0, first_n = -1, clean = 1,
        failed = 0, done = 0;
    for (int page = 0; page < 100; page++) {
      int64_t t = now + 2 * page; /* new changes arrive between pages */
      int n = visible(h, k, t, from, list);
      if (first_n < 0)
        first_n = n;
      clean &= n == first_n;
      if (mu_chance(3)) {
        failed = 1; /* the stream keeps its counters */
        break;
      }
      int *pg = list + (size_t)page * page_size, m;
      if (page > 0 && mu_chance(4)) { /* the previous page served again */
        pg = prev;
        m = nprev;
        clean = 0;
      } else {
        m = n - page * page_size;
        if (m < 0)
          m = 0;
        if (m > page_size)
          m = page_size;
      }
      for (int j = 0; j < m && num < sizeof(items) / sizeof(*items); j++) {
        const mchg_t *c = &h->chg[pg[j]];
        usage_ccc_change_t *it = &items[num++];
        memset(it, 0, sizeof(*it));
        svc_guid(it->service, c->svc);
        chg_guid(it->change, pg[j]);
        snprintf(it->status, sizeof(it->status), "%s", states[c->status]);
        it->changed_on = (double)c->on;
        stats.listed_twice += served_now[pg[j]];
        served_now[pg[j]] = 1;
      }
      if (pg != prev) {
        memcpy(prev, pg, (size_t)m * sizeof(int));
        nprev = m;
      }
      if ((page + 1) * page_size >= n) {
        done = 1;
        break;
      }
    }
    if (failed) {
      stats.failed++;
      for (int i = 0; i < h->nchg; i++)
        if (stream_of(h, h->chg[i].svc) == k)
          served_now[i] = 0;
      continue;
    }
    size_t added;
    if (usage_ccc_changes_merge(&next, key, items, num, OVERLAP, (double)now,
                                &added) != 0) {
      snprintf(h->err, sizeof(h->err), "merge failed");
      usage_ccc_changes_clear(&next);
      return -1;
    }
    counted += added;
    complete[k] = clean && done;
  }
  if (mu_chance(4)) { /* a crash before the StateFile is written */
    stats.crashes++;
    usage_ccc_changes_clear(&next);
    return restart(h);
  }
  usage_buf_reset(&h->saved);
  if (usage_ccc_changes_format(&next, &h->saved) != 0) {
    snprintf(h->err, sizeof(h->err), "format failed");
    usage_ccc_changes_clear(&next);
    return -1;
  }
  h->have_saved = 1;
  stats.counted += counted;
  usage_ccc_changes_clear(&h->st);
  h->st = next;
  for (int i = 0; i < h->nchg; i++)
    h->served[i] |= served_now[i];
  for (int k = 0; k <= NSVC; k++)
    if (complete[k] && h->ncomplete[k] < 64) {
      h->complete_at[k][h->ncomplete[k]++] = now;
      stats.complete++;
    }
  return check(h, now);
}

static int final_check(hist_t *h) {
  for (int s = 0; s < NSVC; s++) {
    char g[33];
    svc_guid(g, s);
    for (int q = 0; q < NSTAT; q++) {
      uint64_t safe = 0, got = 0;
      for (int i = 0; i < h->nchg; i++) {
        const mchg_t *c = &h->chg[i];
        if (c->svc != s || c->status != q)
          continue;
        int k = stream_of(h, s), ok = 0;
        /* a complete scrape served it no later than Overlap after its
         * date: nothing can have moved the window past it */
        for (int j = 0; j < h->ncomplete[k]; j++)
          ok |= h->complete_at[k][j] >= c->arrive &&
                h->complete_at[k][j] <= c->on + OVERLAP - 1;
        safe += ok;
      }
      for (size_t k = 0; k < h->st.counts_num; k++)
        if (strcmp(h->st.counts[k].service, g) == 0 &&
            strcmp(h->st.counts[k].status, states[q]) == 0)
          got += h->st.counts[k].count;
      stats.safe += safe;
      if (got < safe) {
        snprintf(h->err, sizeof(h->err),
                 "service %d %s: counted %llu, but %llu changes were served "
                 "complete and in time",
                 s, states[q], (unsigned long long)got,
                 (unsigned long long)safe);
        return -1;
      }
    }
  }
  return 0;
}

static int history(unsigned long seed, char *err, size_t errlen) {
  hist_t *h = calloc(1, sizeof(*h));
  assert_non_null(h);
  mu_seed(seed);
  usage_buf_init(&h->saved, 0);
  h->wide = mu_chance(50);
  unsigned nscrapes = 5 + (unsigned)mu_below(40);
  int64_t span = (int64_t)nscrapes * INTERVAL;
  h->nchg = 5 + (int)mu_below(MAXCHG - 5);
  for (int i = 0; i < h->nchg; i++) {
    mchg_t *c = &h->chg[i];
    c->svc = (int)mu_below(NSVC);
    c->status = (int)mu_below(NSTAT);
    c->on = T0 - 600 + (int64_t)mu_below((uint64_t)span + 600);
    if (mu_chance(10)) /* several changes in one second */
      c->on = h->chg[mu_below((uint64_t)i + 1)].on;
    unsigned u = (unsigned)mu_below(100);
    int64_t late = u < 60   ? 0
                   : u < 85 ? (int64_t)mu_below(OVERLAP / 2)
                   : u < 95 ? (int64_t)mu_below(OVERLAP)
                            : OVERLAP + (int64_t)mu_below(2 * OVERLAP);
    stats.late += late > 0;
    c->arrive = c->on + late;
    if (mu_chance(3)) { /* dated in the future (the vendor's clock ahead) */
      c->arrive = c->on - 1 - (int64_t)mu_below(4 * INTERVAL);
      stats.future++;
    }
  }
  int rc = 0;
  for (unsigned k = 0; k < nscrapes && rc == 0; k++) {
    if (mu_chance(5))
      rc = restart(h);
    if (rc == 0)
      rc = scrape(h,
                  T0 + (int64_t)k * INTERVAL + (int64_t)mu_below(INTERVAL / 2));
    if (rc != 0)
      snprintf(err, errlen, "scrape %u: %s", k, h->err);
  }
  if (rc == 0 && (rc = final_check(h)) != 0)
    snprintf(err, errlen, "at the end: %s", h->err);
  for (int i = 0; i < h->nchg; i++)
    stats.served += h->served[i];
  usage_ccc_changes_clear(&h->st);
  usage_buf_free(&h->saved);
  free(h);
  stats.histories++;
  return rc;
}

static void test_model(void **state) {
  (void)state;
  double s = mu_run_seeds("ccc", "CCC_MODEL", "test_ccc_model", history);
  printf("ccc model: %lu histories, %lu scrapes (%lu restarts, %lu crashes "
         "before a save, %lu failed fetches, %lu complete streams), %lu "
         "changes served (%lu late, %lu future-dated, %lu listed twice), %lu "
         "counted, %lu required, %.1f s\n",
         stats.histories, stats.scrapes, stats.restarts, stats.crashes,
         stats.failed, stats.complete, stats.served, stats.late, stats.future,
         stats.listed_twice, stats.counted, stats.safe, s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
