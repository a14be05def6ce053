/* SPDX-License-Identifier: MIT */
/* test_jasper_model: a model-based randomized test of the Jasper page
 * parser, aggregation and hold. Each seed generates the history of one
 * rate plan's devices over scrapes: per-zone usage growing within a
 * billing cycle, pages fetched by offset while the device list changes
 * between pages (a device listed twice or skipped), pages served twice,
 * failed pages, cycle changes, null usage fields. The real parse, hold and
 * emit code runs the pages the way the scrape (scrape.c) does, and a plain
 * reference model checks after every scrape: no published cycle-to-date
 * counter goes down inside a cycle; a device listed on two pages counts
 * once; when a scrape saw every device, the zone figures are the model's
 * sums; a failed scrape publishes nothing. JASPER_MODEL_SEEDS sets the
 * number of histories; JASPER_MODEL_SEED=k replays one. */
#include "api/jasper/internal.h"
#include "families.h"
#include "store.h"

#include <errno.h>
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

#define NZ 3
#define MAXD 40
#define MAXPAGES 200

static const char *const zone_names[NZ] = {"USA", "Europe", "Rest of World"};
static const char *const vkeys[NV] = {"dataUsage", "smsMOUsage", "smsMTUsage",
                                      "voiceMOUsage", "voiceMTUsage"};

/* ---- the vendor's side: devices, their order, their usage ---- */

typedef struct {
  int zone;
  uint64_t v[NV]; /* cycle to date */
} mdev_t;

typedef struct {
  unsigned long histories, scrapes, failed, pages, repeats, shifts,
      complete, dup_listings, skipped, cycles, held;
} stats_t;

static stats_t stats;
static int verbose; /* JASPER_MODEL_VERBOSE: each scrape's figures */

/* The reference model of one history. */
typedef struct {
  mdev_t dev[MAXD];
  int ndev;          /* devices ever created */
  int list[MAXD];    /* the rate plan's devices, in the vendor's order */
  int nlist;
  int cycle;         /* 0, 1, ...: "2024-05-01", "2024-06-01", ... */
  int left[NZ];      /* a device of the zone left the plan in this cycle */
  /* what was published last, and the highest ever in this cycle */
  int pub_have[NZ];
  uint64_t pub[NZ][NV], pub_dev_max[MAXD][NV];
  char err[1024];
} hist_t;

static void grow(hist_t *h, int d) {
  for (int k = 0; k < NV; k++)
    if (mu_chance(40))
      h->dev[d].v[k] += k == V_DATA ? mu_below(5000000) : mu_below(30);
}

static void insert_device(hist_t *h) {
  if (h->ndev >= MAXD || h->nlist >= MAXD)
    return;
  int d = h->ndev++;
  memset(&h->dev[d], 0, sizeof(h->dev[d]));
  h->dev[d].zone = (int)mu_below(NZ);
  if (mu_chance(50))
    grow(h, d);
  int at = (int)mu_below((uint64_t)h->nlist + 1);
  memmove(&h->list[at + 1], &h->list[at],
          (size_t)(h->nlist - at) * sizeof(int));
  h->list[at] = d;
  h->nlist++;
}

static int take_device(hist_t *h, int at) {
  int d = h->list[at];
  memmove(&h->list[at], &h->list[at + 1],
          (size_t)(h->nlist - at - 1) * sizeof(int));
  h->nlist--;
  return d;
}

/* mutate: the list changes (between pages or between scrapes). */
static void mutate(hist_t *h) {
  unsigned u = (unsigned)mu_below(100);
  if (u < 35) {
    insert_device(h);
  } else if (u < 55 && h->nlist > 1) { /* a device leaves the plan */
    int d = take_device(h, (int)mu_below((uint64_t)h->nlist));
    h->left[h->dev[d].zone] = 1;
  } else if (h->nlist > 1) { /* a device moves in the order */
    int d = take_device(h, (int)mu_below((uint64_t)h->nlist));
    int at = (int)mu_below((uint64_t)h->nlist + 1);
    memmove(&h->list[at + 1], &h->list[at],
            (size_t)(h->nlist - at) * sizeof(int));
    h->list[at] = d;
    h->nlist++;
  }
}

static void iccid(char *out, size_t n, int d) {
  snprintf(out, n, "89010000000000%05d", d);
}

static int iccid_index(const char *s) {
  if (strlen(s) != 19 || strncmp(s, "89010000000000", 14) != 0)
    return -1;
  return atoi(s + 14);
}

/* ---- pages ---- */

typedef struct {
  int devs[MAXD];
  uint64_t v[MAXD][NV];
  int n;
} slice_t;

/* page_body writes the page of slice s: devices grouped by zone in the
 * order of their first listing, usage fields as numbers, numeric strings,
 * null (zero usage) or absent (zero usage). */
static void page_body(hist_t *h, usage_buf_t *b, const slice_t *s, long page,
                      int last, int with_number, int with_last) {
  usage_buf_reset(b);
  usage_buf_printf(b, "{\"accountId\":\"100\",\"ratePlanName\":\"P\","
                      "\"cycleStartDate\":\"%04d-%02d-01\"",
                   2024 + (4 + h->cycle) / 12, (4 + h->cycle) % 12 + 1);
  if (with_number)
    usage_buf_printf(b, ",\"pageNumber\":%ld", page);
  if (with_last)
    usage_buf_printf(b, ",\"lastPage\":%s", last ? "true" : "false");
  usage_buf_puts(b, ",\"zones\":[");
  int done[NZ] = {0}, nz = 0;
  for (int i = 0; i < s->n; i++) {
    int z = h->dev[s->devs[i]].zone;
    if (done[z])
      continue;
    done[z] = 1;
    int name_first = mu_chance(50);
    usage_buf_printf(b, "%s{", nz++ ? "," : "");
    if (name_first)
      usage_buf_printf(b, "\"zone\":\"%s\",", zone_names[z]);
    usage_buf_puts(b, "\"devices\":[");
    int nd = 0;
    for (int j = i; j < s->n; j++) {
      if (h->dev[s->devs[j]].zone != z)
        continue;
      char id[32];
      iccid(id, sizeof(id), s->devs[j]);
      usage_buf_printf(b, "%s{\"deviceId\":\"%s\",\"usage\":{", nd++ ? "," : "",
                       id);
      int nf = 0;
      for (int k = 0; k < NV; k++) {
        uint64_t v = s->v[j][k];
        if (v == 0 && mu_chance(20))
          continue; /* absent */
        usage_buf_printf(b, "%s\"%s\":", nf++ ? "," : "", vkeys[k]);
        if (v == 0 && mu_chance(30))
          usage_buf_puts(b, "null");
        else if (mu_chance(15))
          usage_buf_printf(b, "\"%llu\"", (unsigned long long)v);
        else
          usage_buf_printf(b, "%llu", (unsigned long long)v);
      }
      if (nf == 0) /* every figure zero: one present, so the entry shows usage */
        usage_buf_printf(b, "\"%s\":null", vkeys[mu_below(NV)]);
      usage_buf_puts(b, "}}");
    }
    usage_buf_puts(b, "]");
    if (!name_first)
      usage_buf_printf(b, ",\"zone\":\"%s\"", zone_names[z]);
    usage_buf_puts(b, "}");
  }
  usage_buf_puts(b, "]}");
}

/* failed_body: a page the parser must refuse. */
static void failed_body(usage_buf_t *b, const char *good) {
  usage_buf_reset(b);
  switch (mu_below(4)) {
  case 0: /* cut short */
    usage_buf_append(b, good, strlen(good) / 2);
    break;
  case 1:
    usage_buf_puts(b, "{\"errorCode\":\"10000024\",\"errorMessage\":\"x\"}");
    break;
  case 2:
    usage_buf_puts(b, "{\"zones\":[{\"zone\":\"USA\",\"devices\":[{\"deviceId\":"
                      "\"89010000000000000\",\"usage\":{\"dataUsage\":-5}}]}]}");
    break;
  default: /* entries without a single known usage field */
    usage_buf_puts(b, "{\"zones\":[{\"zone\":\"USA\",\"devices\":[{\"deviceId\":"
                      "\"89010000000000000\",\"usage\":{\"data_usage\":5}}]}]}");
    break;
  }
}

/* ---- one scrape, as scrape.c runs it ---- */

static int scrape(hist_t *h, usage_jasper_agg_t *a, usage_jasper_hold_t *hold) {
  stats.scrapes++;
  int page_size = 1 + (int)mu_below(6);
  int fail_pct = mu_chance(20) ? 10 : 0;
  int seen[MAXD] = {0};
  uint64_t seen_v[MAXD][NV];
  memset(seen_v, 0, sizeof(seen_v));
  int shifted = 0, repeated = 0;
  usage_buf_t body, prev;
  usage_buf_init(&body, 0);
  usage_buf_init(&prev, 0);
  slice_t s, ps;
  memset(&ps, 0, sizeof(ps));
  int rc = 0, failed = 0;
  usage_jasper_agg_reset(a);
  for (long page = 1;; page++) {
    if (page > 1 && mu_chance(15)) { /* the list changes under the offset */
      mutate(h);
      shifted = 1;
    }
    if (page > 1 && mu_chance(10)) /* usage grows between pages */
      for (int i = 0; i < h->nlist; i++)
        grow(h, h->list[i]);
    int with_number = mu_chance(70);
    if (page > 1 && mu_chance(4)) { /* the previous page served again */
      repeated = 1;
      stats.repeats++;
      s = ps;
      usage_buf_reset(&body);
      usage_buf_puts(&body, usage_buf_str(&prev));
    } else {
      long off = (page - 1) * page_size;
      memset(&s, 0, sizeof(s));
      for (long i = off; i < h->nlist && i < off + page_size; i++) {
        s.devs[s.n] = h->list[i];
        memcpy(s.v[s.n], h->dev[h->list[i]].v, sizeof(s.v[0]));
        s.n++;
      }
      int last = off + page_size >= h->nlist;
      page_body(h, &body, &s, with_number ? page : -1, last, with_number,
                mu_chance(80) || page >= MAXPAGES);
    }
    stats.pages++;
    usage_jasper_page_t pg;
    if (mu_chance(fail_pct)) {
      usage_buf_t bad;
      usage_buf_init(&bad, 0);
      failed_body(&bad, usage_buf_str(&body));
      rc = usage_jasper_parse_page(a, usage_buf_str(&bad), usage_buf_len(&bad),
                                   &pg);
      if (rc == 0)
        snprintf(h->err, sizeof(h->err), "page %ld: a bad page taken: %s", page,
                 usage_buf_str(&bad));
      usage_buf_free(&bad);
      if (rc == 0) {
        rc = -1;
        goto out;
      }
      failed = 1;
      break;
    }
    rc = usage_jasper_parse_page(a, usage_buf_str(&body), usage_buf_len(&body),
                                 &pg);
    if (rc != 0) {
      snprintf(h->err, sizeof(h->err), "page %ld refused (%s): %s", page,
               pg.error, usage_buf_str(&body));
      rc = -1;
      goto out;
    }
    if (pg.page_number >= 0 && pg.page_number != page) {
      failed = 1; /* a repeated page caught by its number */
      break;
    }
    for (int i = 0; i < s.n; i++) {
      int d = s.devs[i];
      stats.dup_listings += seen[d] > 0;
      seen[d]++;
      for (int k = 0; k < NV; k++)
        if (s.v[i][k] > seen_v[d][k])
          seen_v[d][k] = s.v[i][k];
    }
    ps = s;
    usage_buf_reset(&prev);
    usage_buf_puts(&prev, usage_buf_str(&body));
    int last = pg.has_last_page ? pg.last_page
                                : pg.entries < (size_t)page_size;
    if (last)
      break;
    if (page >= MAXPAGES) {
      failed = 1;
      break;
    }
  }
  rc = 0;
  if (failed) {
    /* nothing is published: the model's published figures stay */
    stats.failed++;
    goto out;
  }
  uint64_t held = 0;
  const char *cycle = usage_jasper_agg_cycle(a);
  if (usage_jasper_agg_hold(a, hold, cycle, &held) != 0) {
    snprintf(h->err, sizeof(h->err), "hold failed");
    rc = -1;
    goto out;
  }
  stats.held += held > 0;
  usage_batch_t *b = usage_batch_create("iot", "e");
  if (usage_jasper_agg_emit(a, "P", USAGE_JASPER_ALL, b) != 0) {
    snprintf(h->err, sizeof(h->err), "emit failed");
    usage_batch_destroy(b);
    rc = -1;
    goto out;
  }
  usage_batch_destroy(b);

  /* the model's view of what this scrape saw */
  int complete = !repeated;
  uint64_t expect[NZ][NV];
  uint64_t distinct[NZ] = {0};
  memset(expect, 0, sizeof(expect));
  for (int d = 0; d < h->ndev; d++)
    if (seen[d]) {
      distinct[h->dev[d].zone]++;
      for (int k = 0; k < NV; k++)
        expect[h->dev[d].zone][k] += seen_v[d][k];
    }
  for (int i = 0; i < h->nlist; i++)
    if (!seen[h->list[i]]) {
      complete = 0;
      stats.skipped++;
    }
  for (int d = 0; d < h->ndev; d++) {
    int in_list = 0;
    for (int i = 0; i < h->nlist; i++)
      in_list |= h->list[i] == d;
    if (seen[d] && !in_list)
      complete = 0; /* listed, then left during the scrape */
  }
  stats.complete += complete;
  stats.shifts += shifted;

  int published[NZ] = {0};
  for (size_t zi = 0; zi < a->zones_num; zi++) {
    const usage_jasper_zone_t *z = &a->zones[zi];
    int zn = -1;
    for (int k = 0; k < NZ; k++)
      if (strcmp(z->name, zone_names[k]) == 0)
        zn = k;
    if (zn < 0) {
      snprintf(h->err, sizeof(h->err), "unknown zone \"%s\"", z->name);
      rc = -1;
      goto out;
    }
    published[zn] = 1;
    if (verbose)
      fprintf(stderr, "  cycle %d zone %s: %llu devices, data %llu, voice mo "
                      "%llu (complete %d, left %d)\n",
              h->cycle, z->name, (unsigned long long)z->devices,
              (unsigned long long)z->v[V_DATA],
              (unsigned long long)z->v[V_VMO], complete, h->left[zn]);
    if (z->devices != distinct[zn]) {
      snprintf(h->err, sizeof(h->err),
               "zone %s: %llu devices published, %llu distinct listed",
               z->name, (unsigned long long)z->devices,
               (unsigned long long)distinct[zn]);
      rc = -1;
      goto out;
    }
    for (int k = 0; k < NV; k++) {
      if (h->pub_have[zn] && z->v[k] < h->pub[zn][k]) {
        snprintf(h->err, sizeof(h->err),
                 "zone %s %s went down inside cycle %d: %llu after %llu",
                 z->name, vkeys[k], h->cycle, (unsigned long long)z->v[k],
                 (unsigned long long)h->pub[zn][k]);
        rc = -1;
        goto out;
      }
      /* every device seen: the sum of their figures, or the figure
       * published before in the cycle when a device left since */
      uint64_t want = expect[zn][k];
      if (h->pub_have[zn] && h->pub[zn][k] > want)
        want = h->pub[zn][k];
      if (complete && z->v[k] != want) {
        snprintf(h->err, sizeof(h->err),
                 "zone %s %s: %llu published, the model %llu (every device "
                 "seen, sum %llu, left %d)",
                 z->name, vkeys[k], (unsigned long long)z->v[k],
                 (unsigned long long)want, (unsigned long long)expect[zn][k],
                 h->left[zn]);
        rc = -1;
        goto out;
      }
    }
    memcpy(h->pub[zn], z->v, sizeof(h->pub[zn]));
    h->pub_have[zn] = 1;
  }
  for (int zn = 0; zn < NZ; zn++)
    if (complete && !published[zn] && distinct[zn] > 0) {
      snprintf(h->err, sizeof(h->err), "zone %s seen but not published",
               zone_names[zn]);
      rc = -1;
      goto out;
    }
  for (size_t i = 0; i < a->devs_num; i++) {
    const usage_jasper_dev_t *e = &a->devs[i];
    int d = iccid_index(e->iccid);
    if (d < 0 || d >= h->ndev || !seen[d]) {
      snprintf(h->err, sizeof(h->err), "device %s published, never listed",
               e->iccid);
      rc = -1;
      goto out;
    }
    for (int k = 0; k < NV; k++) {
      if (e->kept && e->v[k] < h->pub_dev_max[d][k]) {
        snprintf(h->err, sizeof(h->err),
                 "device %s %s went down inside cycle %d: %llu after %llu",
                 e->iccid, vkeys[k], h->cycle, (unsigned long long)e->v[k],
                 (unsigned long long)h->pub_dev_max[d][k]);
        rc = -1;
        goto out;
      }
      uint64_t want = seen_v[d][k] > h->pub_dev_max[d][k]
                          ? seen_v[d][k]
                          : h->pub_dev_max[d][k];
      if (e->kept && e->v[k] != want) {
        snprintf(h->err, sizeof(h->err),
                 "device %s %s: %llu published, the model %llu", e->iccid,
                 vkeys[k], (unsigned long long)e->v[k],
                 (unsigned long long)want);
        rc = -1;
        goto out;
      }
      if (e->kept)
        h->pub_dev_max[d][k] = e->v[k];
    }
  }
out:
  usage_buf_free(&body);
  usage_buf_free(&prev);
  return rc;
}

/* history: one seed's devices and scrapes. 0, or -1 with err set. */
static int history(unsigned long seed, char *err, size_t errlen) {
  hist_t *h = calloc(1, sizeof(*h));
  assert_non_null(h);
  mu_seed(seed);
  unsigned ndev = 1 + (unsigned)mu_below(25);
  for (unsigned i = 0; i < ndev; i++)
    insert_device(h);
  usage_jasper_agg_t *a = usage_jasper_agg_create(1, MAXD);
  usage_jasper_hold_t *hold = usage_jasper_hold_create();
  unsigned nscrapes = 5 + (unsigned)mu_below(20);
  int rc = 0;
  for (unsigned k = 0; k < nscrapes && rc == 0; k++) {
    if (k > 0 && mu_chance(12)) { /* a new billing cycle: usage resets */
      h->cycle++;
      stats.cycles++;
      for (int d = 0; d < h->ndev; d++)
        memset(h->dev[d].v, 0, sizeof(h->dev[d].v));
      memset(h->left, 0, sizeof(h->left));
      memset(h->pub_have, 0, sizeof(h->pub_have));
      memset(h->pub, 0, sizeof(h->pub));
      memset(h->pub_dev_max, 0, sizeof(h->pub_dev_max));
    }
    for (int i = 0; i < h->nlist; i++)
      grow(h, h->list[i]);
    for (unsigned m = (unsigned)mu_below(3); m > 0; m--)
      mutate(h);
    if (verbose)
      fprintf(stderr, "scrape %u: %d devices listed\n", k, h->nlist);
    rc = scrape(h, a, hold);
    if (rc != 0)
      snprintf(err, errlen, "scrape %u: %s", k, h->err);
  }
  usage_jasper_agg_destroy(a);
  usage_jasper_hold_destroy(hold);
  free(h);
  stats.histories++;
  return rc;
}

static void test_model(void **state) {
  (void)state;
  verbose = getenv("JASPER_MODEL_VERBOSE") != NULL;
  double s =
      mu_run_seeds("jasper", "JASPER_MODEL", "test_jasper_model", history);
  printf("jasper model: %lu histories, %lu scrapes (%lu failed, %lu complete, "
         "%lu with the list shifting), %lu pages (%lu served twice), %lu "
         "devices listed twice, %lu skipped, %lu cycle changes, %lu scrapes "
         "with figures held, %.1f s\n",
         stats.histories, stats.scrapes, stats.failed, stats.complete,
         stats.shifts, stats.pages, stats.repeats, stats.dup_listings,
         stats.skipped, stats.cycles, stats.held, s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
