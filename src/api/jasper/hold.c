/* SPDX-License-Identifier: MIT */
/* jasper/hold.c: cycle-to-date counters that never go down inside one
 * billing cycle. What a rate plan published in the cycle (its zone and
 * device counters, including those missing from the last answer) is
 * remembered from scrape to scrape; a lower figure in the same cycle (a
 * device the offset paging skipped, a zone whose devices left) is raised
 * to the remembered one. Pure. */
#include "api/jasper/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A remembered counter set: a zone's (iccid "") or a device's in a zone. */
typedef struct {
  char *zone;
  char iccid[USAGE_JASPER_ICCID_MAX + 1];
  uint64_t v[NV];
} hold_entry_t;

struct usage_jasper_hold_s {
  char cycle[32];
  hold_entry_t *e;
  size_t num, alloc;
  usage_htable_t index; /* (zone, iccid) -> e */
};

typedef struct {
  const char *zone, *iccid;
} hold_key_t;

static uint64_t hold_hash(const char *zone, const char *iccid) {
  return usage_hash_bytes(zone, strlen(zone)) ^
         usage_hash_u64(usage_hash_bytes(iccid, strlen(iccid)));
}

static int hold_eq(const void *ctx, size_t pos, const void *key) {
  const hold_entry_t *e = &((const usage_jasper_hold_t *)ctx)->e[pos];
  const hold_key_t *k = key;
  return strcmp(e->zone, k->zone) == 0 && strcmp(e->iccid, k->iccid) == 0;
}

usage_jasper_hold_t *usage_jasper_hold_create(void) {
  usage_jasper_hold_t *h = calloc(1, sizeof(*h));
  if (h != NULL)
    usage_htable_init(&h->index);
  return h;
}

static void hold_clear(usage_jasper_hold_t *h) {
  for (size_t i = 0; i < h->num; i++)
    free(h->e[i].zone);
  h->num = 0;
  usage_htable_clear(&h->index);
}

void usage_jasper_hold_destroy(usage_jasper_hold_t *h) {
  if (h == NULL)
    return;
  hold_clear(h);
  free(h->e);
  usage_htable_free(&h->index);
  free(h);
}

/* hold_find: the remembered figures of (zone, iccid), or NULL. */
static const uint64_t *hold_find(const usage_jasper_hold_t *h, const char *zone,
                                 const char *iccid) {
  hold_key_t k = {zone, iccid};
  size_t pos =
      usage_htable_find(&h->index, hold_hash(zone, iccid), hold_eq, h, &k);
  return pos == USAGE_HTABLE_NONE ? NULL : h->e[pos].v;
}

/* hold_add remembers v for (zone, iccid) in n, a fresh set. 0 or ENOMEM. */
static int hold_add(usage_jasper_hold_t *n, const char *zone, const char *iccid,
                    const uint64_t v[NV]) {
  if (usage_htable_reserve(&n->index, n->num + 1) != 0 ||
      usage_jasper_grow_array((void **)&n->e, &n->alloc, n->num,
                              sizeof(*n->e)) != 0)
    return ENOMEM;
  hold_entry_t *e = &n->e[n->num];
  if ((e->zone = strdup(zone)) == NULL)
    return ENOMEM;
  snprintf(e->iccid, sizeof(e->iccid), "%s", iccid);
  memcpy(e->v, v, sizeof(e->v));
  usage_htable_insert(&n->index, hold_hash(zone, iccid), n->num);
  n->num++;
  return 0;
}

/* hold_raise lifts v to old where old is higher; the figures raised are
 * counted in *held. */
static void hold_raise(uint64_t v[NV], const uint64_t *old, uint64_t *held) {
  if (old == NULL)
    return;
  for (int k = 0; k < NV; k++)
    if (v[k] < old[k]) {
      v[k] = old[k];
      (*held)++;
    }
}

int usage_jasper_agg_hold(usage_jasper_agg_t *a, usage_jasper_hold_t *h,
                          const char *cycle, uint64_t *held) {
  *held = 0;
  int same = cycle[0] != 0 && strcmp(h->cycle, cycle) == 0;
  /* The new memory is built aside, so that ENOMEM changes nothing. */
  usage_jasper_hold_t *n = usage_jasper_hold_create();
  if (n == NULL)
    return ENOMEM;
  uint64_t count = 0;
  for (size_t i = 0; i < a->zones_num; i++) {
    usage_jasper_zone_t *z = &a->zones[i];
    uint64_t v[NV];
    memcpy(v, z->v, sizeof(v));
    if (same)
      hold_raise(v, hold_find(h, z->name, ""), &count);
    if (hold_add(n, z->name, "", v) != 0)
      goto fail;
  }
  for (size_t i = 0; i < a->devs_num; i++) {
    usage_jasper_dev_t *d = &a->devs[i];
    if (!d->kept)
      continue;
    uint64_t v[NV];
    memcpy(v, d->v, sizeof(v));
    if (same)
      hold_raise(v, hold_find(h, a->zones[d->zone].name, d->iccid), &count);
    if (hold_add(n, a->zones[d->zone].name, d->iccid, v) != 0)
      goto fail;
  }
  /* A zone or device missing from this answer (every device of the zone
   * left the plan, or the paging skipped it) stays remembered for the
   * cycle: when it comes back lower, it is raised too. */
  for (size_t i = 0; same && i < h->num; i++) {
    const hold_entry_t *e = &h->e[i];
    hold_key_t k = {e->zone, e->iccid};
    if (usage_htable_find(&n->index, hold_hash(e->zone, e->iccid), hold_eq, n,
                          &k) == USAGE_HTABLE_NONE &&
        hold_add(n, e->zone, e->iccid, e->v) != 0)
      goto fail;
  }
  /* Nothing fails past here: publish the raised figures (n holds the
   * zones, then the kept devices, in a's order, then the ones carried
   * over), and keep them. */
  size_t pos = 0;
  for (size_t i = 0; i < a->zones_num; i++)
    memcpy(a->zones[i].v, n->e[pos++].v, sizeof(a->zones[i].v));
  for (size_t i = 0; i < a->devs_num; i++)
    if (a->devs[i].kept)
      memcpy(a->devs[i].v, n->e[pos++].v, sizeof(a->devs[i].v));
  hold_clear(h);
  free(h->e);
  usage_htable_free(&h->index);
  h->e = n->e;
  h->num = n->num;
  h->alloc = n->alloc;
  h->index = n->index;
  snprintf(h->cycle, sizeof(h->cycle), "%s", cycle);
  free(n);
  *held = count;
  return 0;
fail:
  usage_jasper_hold_destroy(n);
  return ENOMEM;
}
