/* SPDX-License-Identifier: MIT */
/* jasper/aggregate.c: one rate plan's page set folded into zone totals and
 * per-device figures (capped at max_devices, the rest counted as omitted),
 * the indexes over them, and the samples they emit. Pure. */
#include "api/jasper/internal.h"
#include "families.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- the indexes: positions in devs and pids (htable.h) -------------- */

/* The key of a lookup: an ICCID, and for by_entry its zone too. */
typedef struct {
  const char *iccid;
  uint32_t zone;
} probe_t;

static uint64_t device_hash(const char *iccid) {
  return usage_hash_bytes(iccid, strlen(iccid));
}
static uint64_t entry_hash(const char *iccid, uint32_t zone) {
  return device_hash(iccid) ^ usage_hash_u64(zone);
}
static int entry_eq(const void *ctx, size_t pos, const void *key) {
  const usage_jasper_dev_t *d = &((const usage_jasper_agg_t *)ctx)->devs[pos];
  const probe_t *p = key;
  return d->zone == p->zone && strcmp(d->iccid, p->iccid) == 0;
}
static int device_eq(const void *ctx, size_t pos, const void *key) {
  const usage_jasper_agg_t *a = ctx;
  return strcmp(a->devs[pos].iccid, ((const probe_t *)key)->iccid) == 0;
}
static int pageid_eq(const void *ctx, size_t pos, const void *key) {
  const usage_jasper_agg_t *a = ctx;
  return strcmp(a->pids[pos].iccid, ((const probe_t *)key)->iccid) == 0;
}

int usage_jasper_grow_array(void **p, size_t *alloc, size_t num, size_t sz) {
  if (num < *alloc)
    return 0;
  size_t n = *alloc ? *alloc * 2 : 16;
  void *q = realloc(*p, n * sz);
  if (q == NULL)
    return ENOMEM;
  *p = q;
  *alloc = n;
  return 0;
}

/* ---- create, reset, destroy -------------------------------------------- */

usage_jasper_agg_t *usage_jasper_agg_create(int per_device,
                                            size_t max_devices) {
  usage_jasper_agg_t *a = calloc(1, sizeof(*a));
  if (a == NULL)
    return NULL;
  a->per_device = per_device;
  a->max_devices = max_devices;
  usage_htable_init(&a->by_entry);
  usage_htable_init(&a->by_device);
  usage_htable_init(&a->by_pageid);
  return a;
}

void usage_jasper_agg_reset(usage_jasper_agg_t *a) {
  for (size_t i = 0; i < a->zones_num; i++)
    free(a->zones[i].name);
  a->zones_num = 0;
  a->devs_num = 0;
  usage_htable_clear(&a->by_entry);
  usage_htable_clear(&a->by_device);
  a->kept = a->omitted = 0;
  a->account_id[0] = a->account_name[0] = a->plan_name[0] = 0;
  a->version[0] = a->cycle[0] = 0;
  a->page_index = 0;
}

void usage_jasper_agg_destroy(usage_jasper_agg_t *a) {
  if (a == NULL)
    return;
  usage_jasper_agg_reset(a);
  free(a->zones);
  free(a->devs);
  free(a->pend);
  free(a->pids);
  usage_htable_free(&a->by_entry);
  usage_htable_free(&a->by_device);
  usage_htable_free(&a->by_pageid);
  free(a);
}

size_t usage_jasper_agg_zones(const usage_jasper_agg_t *a) {
  return a->zones_num;
}
size_t usage_jasper_agg_devices_kept(const usage_jasper_agg_t *a) {
  return a->kept;
}
size_t usage_jasper_agg_devices_omitted(const usage_jasper_agg_t *a) {
  return a->omitted;
}
const char *usage_jasper_agg_cycle(const usage_jasper_agg_t *a) {
  return a->cycle;
}

/* ---- folding devices in ----------------------------------------------- */

/* Zones are few (USAGE_JASPER_MAX_ZONES at most, a handful in practice):
 * a linear search keeps them in first-seen order without an index. */
int usage_jasper_zone_index(usage_jasper_agg_t *a, const char *name,
                            uint32_t *out) {
  for (size_t i = 0; i < a->zones_num; i++)
    if (strcmp(a->zones[i].name, name) == 0) {
      *out = (uint32_t)i;
      return 0;
    }
  if (a->zones_num >= USAGE_JASPER_MAX_ZONES)
    return E2BIG;
  if (usage_jasper_grow_array((void **)&a->zones, &a->zones_alloc, a->zones_num,
                              sizeof(*a->zones)) != 0)
    return ENOMEM;
  usage_jasper_zone_t *z = &a->zones[a->zones_num];
  memset(z, 0, sizeof(*z));
  if ((z->name = strdup(name)) == NULL)
    return ENOMEM;
  *out = (uint32_t)a->zones_num++;
  return 0;
}

usage_jasper_pageid_t *usage_jasper_page_id(usage_jasper_agg_t *a,
                                            const char *iccid) {
  probe_t pr = {.iccid = iccid};
  uint64_t h = device_hash(iccid);
  size_t pos = usage_htable_find(&a->by_pageid, h, pageid_eq, a, &pr);
  if (pos != USAGE_HTABLE_NONE)
    return &a->pids[pos];
  if (usage_htable_reserve(&a->by_pageid, a->pids_num + 1) != 0 ||
      usage_jasper_grow_array((void **)&a->pids, &a->pids_alloc, a->pids_num,
                              sizeof(*a->pids)) != 0)
    return NULL;
  usage_jasper_pageid_t *p = &a->pids[a->pids_num];
  memcpy(p->iccid, iccid, sizeof(p->iccid));
  usage_htable_insert(&a->by_pageid, h, a->pids_num); /* reserved */
  a->pids_num++;
  a->page->devices++;
  return p;
}

int usage_jasper_add_sum(uint64_t *x, const uint64_t *y, int n) {
  for (int k = 0; k < n; k++)
    if (x[k] > UINT64_MAX - y[k])
      return ERANGE;
  for (int k = 0; k < n; k++)
    x[k] += y[k];
  return 0;
}

int usage_jasper_add_device(usage_jasper_agg_t *a, uint32_t zone,
                            const usage_jasper_pend_t *d) {
  usage_jasper_zone_t *z = &a->zones[zone];
  probe_t pr = {.iccid = d->iccid, .zone = zone};
  uint64_t eh = entry_hash(d->iccid, zone), dh = device_hash(d->iccid);
  size_t es = usage_htable_find(&a->by_entry, eh, entry_eq, a, &pr);
  if (es != USAGE_HTABLE_NONE) {
    usage_jasper_dev_t *e = &a->devs[es];
    uint64_t zt[NV], et[NV];
    memcpy(zt, z->v, sizeof(zt));
    memcpy(et, e->v, sizeof(et));
    if (e->page == a->page_index) {
      /* listed twice on one page: add up, like the zone total */
      if (usage_jasper_add_sum(zt, d->v, NV) != 0 ||
          usage_jasper_add_sum(et, d->v, NV) != 0)
        return ERANGE;
      z->devices++;
    } else {
      /* listed again on a later page (the list moved under the offset):
       * the same device, counted once with its larger figures */
      for (int k = 0; k < NV; k++)
        if (d->v[k] > et[k]) {
          uint64_t up = d->v[k] - et[k];
          if (zt[k] > UINT64_MAX - up)
            return ERANGE;
          zt[k] += up;
          et[k] = d->v[k];
        }
      e->page = a->page_index;
    }
    memcpy(z->v, zt, sizeof(zt));
    memcpy(e->v, et, sizeof(et));
    return 0;
  }
  uint64_t zt[NV];
  memcpy(zt, z->v, sizeof(zt));
  if (usage_jasper_add_sum(zt, d->v, NV) != 0)
    return ERANGE;
  size_t ds = usage_htable_find(&a->by_device, dh, device_eq, a, &pr);
  int kept = ds != USAGE_HTABLE_NONE
                 ? a->devs[ds].kept
                 : a->per_device && a->kept < a->max_devices;
  /* Room in both indexes and the array first: past this point nothing
   * fails, so an error leaves all three as they were. */
  if (usage_htable_reserve(&a->by_entry, a->devs_num + 1) != 0 ||
      usage_htable_reserve(&a->by_device,
                           usage_htable_count(&a->by_device) + 1) != 0 ||
      usage_jasper_grow_array((void **)&a->devs, &a->devs_alloc, a->devs_num,
                              sizeof(*a->devs)) != 0)
    return ENOMEM;
  usage_jasper_dev_t *e = &a->devs[a->devs_num];
  memcpy(e->iccid, d->iccid, sizeof(e->iccid));
  e->zone = zone;
  e->page = a->page_index;
  e->kept = kept;
  memcpy(e->v, d->v, sizeof(e->v));
  usage_htable_insert(&a->by_entry, eh, a->devs_num); /* reserved */
  if (ds == USAGE_HTABLE_NONE) {
    usage_htable_insert(&a->by_device, dh, a->devs_num); /* reserved */
    if (kept)
      a->kept++;
    else if (a->per_device)
      a->omitted++;
  }
  a->devs_num++;
  memcpy(z->v, zt, sizeof(zt));
  z->devices++;
  return 0;
}

/* ---- samples ---------------------------------------------------------- */

/* emit_set adds the figures v of one zone or device, labelled with the nl
 * label pairs, to the families of type. 0 or ENOMEM. */
static int emit_set(usage_batch_t *b, int fam_data, int fam_sms, int fam_voice,
                    const uint64_t v[NV], usage_jasper_type_t type, unsigned nl,
                    const char **labels) {
  int rc = 0;
  const char *l[2 * USAGE_MAX_LABELS];
  memcpy(l, labels, 2 * nl * sizeof(*l));
  if (type == USAGE_JASPER_ALL || type == USAGE_JASPER_DATA)
    rc |= usage_batch_addv(b, fam_data, (double)v[V_DATA], nl, l);
  l[2 * nl] = "direction";
  if (type == USAGE_JASPER_ALL || type == USAGE_JASPER_SMS) {
    l[2 * nl + 1] = "mo";
    rc |= usage_batch_addv(b, fam_sms, (double)v[V_SMO], nl + 1, l);
    l[2 * nl + 1] = "mt";
    rc |= usage_batch_addv(b, fam_sms, (double)v[V_SMT], nl + 1, l);
  }
  if (type == USAGE_JASPER_ALL || type == USAGE_JASPER_VOICE) {
    l[2 * nl + 1] = "mo";
    rc |= usage_batch_addv(b, fam_voice, (double)v[V_VMO], nl + 1, l);
    l[2 * nl + 1] = "mt";
    rc |= usage_batch_addv(b, fam_voice, (double)v[V_VMT], nl + 1, l);
  }
  return rc ? ENOMEM : 0;
}

int usage_jasper_agg_emit(const usage_jasper_agg_t *a, const char *rate_plan,
                          usage_jasper_type_t type, usage_batch_t *b) {
  if (usage_batch_add(b, FAM_JASPER_RATE_PLAN_INFO, 1, "rate_plan", rate_plan,
                      "version", a->version, "account_id", a->account_id,
                      "account_name", a->account_name, NULL) != 0)
    return ENOMEM;
  for (size_t i = 0; i < a->zones_num; i++) {
    const usage_jasper_zone_t *z = &a->zones[i];
    const char *l[] = {"rate_plan", rate_plan, "zone", z->name};
    if (usage_batch_addv(b, FAM_JASPER_ZONE_DEVICES, (double)z->devices, 2,
                         l) != 0 ||
        emit_set(b, FAM_JASPER_ZONE_DATA_BYTES, FAM_JASPER_ZONE_SMS,
                 FAM_JASPER_ZONE_VOICE_SECONDS, z->v, type, 2, l) != 0)
      return ENOMEM;
  }
  if (!a->per_device)
    return 0;
  for (size_t i = 0; i < a->devs_num; i++) {
    const usage_jasper_dev_t *d = &a->devs[i];
    if (!d->kept)
      continue;
    const char *l[] = {"rate_plan", rate_plan, "zone", a->zones[d->zone].name,
                       "iccid",     d->iccid};
    if (emit_set(b, FAM_JASPER_DEVICE_DATA_BYTES, FAM_JASPER_DEVICE_SMS,
                 FAM_JASPER_DEVICE_VOICE_SECONDS, d->v, type, 3, l) != 0)
      return ENOMEM;
  }
  return usage_batch_add(b, FAM_JASPER_DEVICES_OMITTED, (double)a->omitted,
                         "rate_plan", rate_plan, NULL);
}
