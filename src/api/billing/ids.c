/* SPDX-License-Identifier: MIT */
/* billing/ids.c: the id sets of the window. Each id with its event date and
 * the figures it was counted with (label set and quantities), packed into
 * one arena per set so that a window of ten million ids stays a few
 * hundred MB; building the set that survives a commit. Pure: no I/O. */
#include "api/billing/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- packed figures ---- */

typedef unsigned __int128 u128_t;

static size_t put_leb(unsigned char *out, u128_t v) {
  size_t n = 0;
  do {
    unsigned char c = (unsigned char)(v & 0x7f);
    v >>= 7;
    out[n++] = (unsigned char)(c | (v ? 0x80 : 0));
  } while (v);
  return n;
}

static const unsigned char *get_leb(const unsigned char *p, u128_t *v) {
  u128_t x = 0;
  unsigned shift = 0;
  for (;;) {
    unsigned char c = *p++;
    if (shift < 128)
      x |= (u128_t)(c & 0x7f) << shift;
    shift += 7;
    if (!(c & 0x80))
      break;
  }
  *v = x;
  return p;
}

/* Quantities are decimal (1e-9 units, data times a power of ten or two):
 * m * 10^e with the largest e makes their numbers short. e < 40 covers
 * every value below 2^128. */
#define DEC_BASE 40

u128_t usage_billing_dec_pack(usage_billing_nano_t v) {
  u128_t m = (u128_t)v;
  unsigned e = 0;
  while (m != 0 && m % 10 == 0 && e + 1 < DEC_BASE) {
    m /= 10;
    e++;
  }
  return m * DEC_BASE + e;
}

int usage_billing_dec_unpack(u128_t n, usage_billing_nano_t limit,
                             usage_billing_nano_t *out) {
  u128_t m = n / DEC_BASE;
  unsigned e = (unsigned)(n % DEC_BASE);
  for (; e > 0 && m != 0; e--) {
    if (m > (u128_t)limit / 10)
      return ERANGE;
    m *= 10;
  }
  if (m > (u128_t)limit)
    return ERANGE;
  *out = (usage_billing_nano_t)m;
  return 0;
}

size_t usage_billing_fig_pack(const usage_billing_fig_t *f,
                              unsigned char *out) {
  size_t n = put_leb(out, (u128_t)f->group);
  for (int q = 0; q < USAGE_BILLING_NQ; q++)
    n += put_leb(out + n, usage_billing_dec_pack(f->q[q]));
  return n;
}

void usage_billing_fig_unpack(const unsigned char *p, usage_billing_fig_t *f) {
  u128_t v;
  p = get_leb(p, &v);
  f->group = (long)v;
  for (int q = 0; q < USAGE_BILLING_NQ; q++) {
    p = get_leb(p, &v);
    /* packed from a value below USAGE_BILLING_SUM_MAX: cannot fail */
    if (usage_billing_dec_unpack(v, USAGE_BILLING_SUM_MAX, &f->q[q]) != 0)
      f->q[q] = 0;
  }
}

/* ---- id sets ---- */

static int ident_eq(const void *ctx, size_t pos, const void *key) {
  const usage_billing_ids_t *s = ctx;
  return s->e[pos].id == *(const int64_t *)key;
}

usage_billing_ident_t *usage_billing_ids_get(const usage_billing_ids_t *s,
                                             int64_t id) {
  size_t pos = usage_htable_find(&s->idx, usage_hash_u64((uint64_t)id),
                                 ident_eq, s, &id);
  return pos == USAGE_HTABLE_NONE ? NULL : &s->e[pos];
}

int usage_billing_ids_find(const usage_billing_ids_t *s, int64_t id) {
  return usage_billing_ids_get(s, id) != NULL;
}

const unsigned char *usage_billing_ids_fig(const usage_billing_ids_t *s,
                                           const usage_billing_ident_t *e) {
  return e->fig ? s->arena + (e->fig - 1) : NULL;
}

/* arena_reserve makes room for len more bytes of figures. 0 or ENOMEM. */
static int arena_reserve(usage_billing_ids_t *s, size_t len) {
  if (s->aalloc - s->alen >= len)
    return 0;
  size_t a = s->aalloc ? s->aalloc : 1024;
  while (a - s->alen < len) {
    if (a > SIZE_MAX / 2)
      return ENOMEM;
    a *= 2;
  }
  unsigned char *p = realloc(s->arena, a);
  if (p == NULL)
    return ENOMEM;
  s->arena = p;
  s->aalloc = a;
  return 0;
}

int usage_billing_ids_reserve(usage_billing_ids_t *s, size_t n,
                              size_t figbytes) {
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
  if (arena_reserve(s, figbytes) != 0)
    return ENOMEM;
  return usage_htable_reserve(&s->idx, n);
}

int usage_billing_ids_setfig(usage_billing_ids_t *s, usage_billing_ident_t *e,
                             const unsigned char *fig, size_t len) {
  if (fig == NULL) {
    e->fig = 0;
    return 0;
  }
  size_t pos = (size_t)(e - s->e);
  if (arena_reserve(s, len) != 0)
    return ENOMEM;
  e = &s->e[pos];
  memcpy(s->arena + s->alen, fig, len);
  e->fig = s->alen + 1;
  s->alen += len;
  return 0;
}

int usage_billing_ids_put(usage_billing_ids_t *s, int64_t id, int64_t ev,
                          const unsigned char *fig, size_t len) {
  if (usage_billing_ids_reserve(s, s->n + 1, fig ? len : 0) != 0 ||
      usage_htable_insert(&s->idx, usage_hash_u64((uint64_t)id), s->n) != 0)
    return ENOMEM;
  usage_billing_ident_t *e = &s->e[s->n++];
  *e = (usage_billing_ident_t){id, ev, 0};
  usage_billing_ids_setfig(s, e, fig, len); /* reserved: cannot fail */
  return 0;
}

void usage_billing_ids_free(usage_billing_ids_t *s) {
  free(s->e);
  free(s->arena);
  usage_htable_free(&s->idx);
  memset(s, 0, sizeof(*s));
}

/* fig_len: the length of the packed figures at p. */
static size_t fig_len(const unsigned char *p) {
  const unsigned char *q = p;
  for (int k = 0; k < 1 + USAGE_BILLING_NQ; k++)
    while (*q++ & 0x80)
      ;
  return (size_t)(q - p);
}

/* kept: whether entry i of set s goes into the window from ws on (an entry
 * of a that c holds too was superseded by c's). */
static int kept(const usage_billing_ids_t *s, size_t i,
                const usage_billing_ids_t *over, int64_t ws) {
  return s->e[i].ev >= ws && (over == NULL || over->n == 0 ||
                              !usage_billing_ids_find(over, s->e[i].id));
}

int usage_billing_ids_window(usage_billing_ids_t *out,
                             const usage_billing_ids_t *a,
                             const usage_billing_ids_t *c, int64_t ws) {
  const usage_billing_ids_t *sets[2] = {a, c};
  const usage_billing_ids_t *over[2] = {c, NULL};
  size_t keep = 0, bytes = 0;
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; i < sets[s]->n; i++)
      if (kept(sets[s], i, over[s], ws)) {
        const unsigned char *f = usage_billing_ids_fig(sets[s], &sets[s]->e[i]);
        keep++;
        bytes += f ? fig_len(f) : 0;
      }
  usage_billing_ids_free(out);
  if (usage_billing_ids_reserve(out, keep, bytes) != 0) {
    usage_billing_ids_free(out);
    return ENOMEM;
  }
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; i < sets[s]->n; i++)
      if (kept(sets[s], i, over[s], ws)) { /* reserved: cannot fail */
        const usage_billing_ident_t *e = &sets[s]->e[i];
        const unsigned char *f = usage_billing_ids_fig(sets[s], e);
        usage_billing_ids_put(out, e->id, e->ev, f, f ? fig_len(f) : 0);
      }
  return 0;
}
