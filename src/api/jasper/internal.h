/* SPDX-License-Identifier: MIT */
/* jasper/internal.h: what the Jasper files share privately: the
 * aggregation's layout (aggregate.c owns it, parse.c fills it), the
 * request builder, and the text copier for labels and log lines. Nothing
 * here is for use outside src/api/jasper/. */
#ifndef USAGE_API_JASPER_INTERNAL_H
#define USAGE_API_JASPER_INTERNAL_H 1

#include "api/jasper/jasper.h"
#include "buf.h"
#include "htable.h"

#include <stddef.h>
#include <stdint.h>

/* The usage fields of a device, in this order everywhere. */
enum { V_DATA = 0, V_SMO, V_SMT, V_VMO, V_VMT, NV };

/* The deepest JSON nesting the page parser follows. */
#define USAGE_JASPER_MAX_DEPTH 64

typedef struct {
  char *name;
  uint64_t devices;
  uint64_t v[NV];
} usage_jasper_zone_t;

/* A device's figures in one zone (a device listed in two zones has two).
 * Every device with a usable id has its entries, so that a device repeated
 * on a later page counts once; only the kept ones get series. */
typedef struct {
  char iccid[USAGE_JASPER_ICCID_MAX + 1];
  uint32_t zone;
  uint32_t page; /* the page (a->page_index) that last listed it */
  int kept;      /* the device has per-device series */
  uint64_t v[NV];
} usage_jasper_dev_t;

/* A device of the zone object being parsed (the zone name may come after
 * its devices in the object). */
typedef struct {
  char iccid[USAGE_JASPER_ICCID_MAX + 1];
  int id_state; /* 0 absent, 1 ok, 2 unusable */
  int known;    /* a usage field was named (null counts) */
  uint64_t v[NV];
} usage_jasper_pend_t;

/* A deviceId seen on the current page. */
typedef struct {
  char iccid[USAGE_JASPER_ICCID_MAX + 1];
} usage_jasper_pageid_t;

struct usage_jasper_agg_s {
  int per_device;
  size_t max_devices;

  char account_id[32];
  char account_name[256];
  char plan_name[256];
  char version[32];
  char cycle[32]; /* cycleStartDate of the answer, "" = none */

  usage_jasper_zone_t *zones;
  size_t zones_num, zones_alloc;

  usage_jasper_dev_t *devs;
  size_t devs_num, devs_alloc;
  usage_htable_t by_entry;  /* (zone, iccid) -> devs */
  usage_htable_t by_device; /* iccid -> first devs entry of a device */
  size_t kept, omitted;
  uint32_t page_index; /* pages parsed since the reset, 1 = the first */

  /* per page, memory reused */
  usage_jasper_pend_t *pend;
  size_t pend_num, pend_alloc;
  usage_jasper_pageid_t *pids;
  size_t pids_num, pids_alloc;
  usage_htable_t by_pageid; /* iccid -> pids */

  /* parser state (parse.c) */
  usage_jasper_page_t *page;
  unsigned char ctx[USAGE_JASPER_MAX_DEPTH];
  int depth;
  int key;
  char zone[256];
  int have_zone;
  int nomem;
  int overflow;        /* a sum would pass 2^64 - 1 */
  size_t root_keys;    /* keys of the page's top object */
  size_t root_known;   /* of them, the ones the parser knows */
  size_t known_entries; /* device entries naming a usage field */
};

/* usage_jasper_grow_array makes room for one more element of size sz in
 * *p (num used of *alloc). 0, or ENOMEM with *p and *alloc unchanged. */
int usage_jasper_grow_array(void **p, size_t *alloc, size_t num, size_t sz);

/* usage_jasper_zone_index finds or adds the zone `name`: 0, E2BIG (more
 * than USAGE_JASPER_MAX_ZONES) or ENOMEM, the zones unchanged on error. */
int usage_jasper_zone_index(usage_jasper_agg_t *a, const char *name,
                            uint32_t *out);

/* usage_jasper_page_id notes a deviceId seen on the current page (counting
 * a new one in a->page->devices) and returns its record; NULL on ENOMEM,
 * the page's ids unchanged. */
usage_jasper_pageid_t *usage_jasper_page_id(usage_jasper_agg_t *a,
                                            const char *iccid);

/* usage_jasper_add_device folds the figures of d into zone and its total:
 * a new (zone, device) entry is added, one listed again on the same page
 * adds up, one listed on an earlier page keeps the larger figures. With
 * per_device, a new device gets series, or past max_devices is counted as
 * omitted. 0, ENOMEM or ERANGE (a sum would pass 2^64 - 1), with the
 * figures, the devices and their indexes unchanged. */
int usage_jasper_add_device(usage_jasper_agg_t *a, uint32_t zone,
                            const usage_jasper_pend_t *d);

/* usage_jasper_add_sum adds y to the n figures of x, or returns ERANGE
 * with x unchanged when one would pass 2^64 - 1. */
int usage_jasper_add_sum(uint64_t *x, const uint64_t *y, int n);

/* usage_jasper_build_query writes the path and query of page `page` of
 * rate plan p into q (reset first). 0, or the buffer's error (EFBIG). */
int usage_jasper_build_query(usage_buf_t *q, const usage_jasper_conf_t *c,
                             const usage_jasper_plan_t *p, long page);

/* usage_jasper_text_copy copies n bytes of s (NUL bytes allowed) into dst
 * of size bytes through usage_text_clean, so control characters become
 * spaces. ascii: bytes outside ASCII become '?' (error bodies may be
 * ISO-8859-1 or broken UTF-8); otherwise s is valid UTF-8 (yajl checked
 * it) and a cut never splits a character (label values). */
void usage_jasper_text_copy(char *dst, size_t size, const char *s, size_t n,
                            int ascii);

#endif
