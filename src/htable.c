/* SPDX-License-Identifier: MIT */
/* htable: open-addressing index of caller-owned positions (see htable.h).
 * Slots hold the position plus one, so 0 marks an empty slot, and the high
 * 32 bits of the key's hash, so growth rehashes without asking the caller
 * and most failed probes are settled without calling eq. */
#include "htable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void *(*usage_htable_calloc)(size_t n, size_t size) = calloc;

#define MIN_CAP 16

static uint32_t frag(uint64_t hash) { return (uint32_t)(hash >> 32); }

/* home: the first slot to probe. The low bits of the fragment, stirred, so
 * that a table of up to 2^32 slots spreads well from 32 stored bits. */
static size_t home(uint32_t f, size_t mask) {
  uint64_t x = (uint64_t)f * 0x9e3779b97f4a7c15ULL;
  return (size_t)(x >> 32 ^ x) & mask;
}

void usage_htable_init(usage_htable_t *t) { memset(t, 0, sizeof(*t)); }

void usage_htable_free(usage_htable_t *t) {
  free(t->slot);
  memset(t, 0, sizeof(*t));
}

void usage_htable_clear(usage_htable_t *t) {
  if (t->slot != NULL)
    memset(t->slot, 0, t->cap * sizeof(*t->slot));
  t->n = 0;
}

size_t usage_htable_count(const usage_htable_t *t) { return t->n; }

static void place(uint64_t *slot, size_t mask, uint64_t v) {
  size_t i = home((uint32_t)(v >> 32), mask);
  while (slot[i] != 0)
    i = (i + 1) & mask;
  slot[i] = v;
}

/* fits: whether n entries stay within the 7/10 load of cap slots. */
static int fits(size_t n, size_t cap) {
  return n <= cap / 10 * 7 + cap % 10 * 7 / 10;
}

int usage_htable_reserve(usage_htable_t *t, size_t n) {
  if (t->cap != 0 && fits(n, t->cap))
    return 0;
  size_t cap = t->cap ? t->cap : MIN_CAP;
  while (!fits(n, cap)) {
    if (cap > SIZE_MAX / 2 / sizeof(*t->slot))
      return ENOMEM;
    cap *= 2;
  }
  uint64_t *slot = usage_htable_calloc(cap, sizeof(*slot));
  if (slot == NULL)
    return ENOMEM;
  for (size_t i = 0; i < t->cap; i++)
    if (t->slot[i] != 0)
      place(slot, cap - 1, t->slot[i]);
  free(t->slot);
  t->slot = slot;
  t->cap = cap;
  return 0;
}

size_t usage_htable_find(const usage_htable_t *t, uint64_t hash,
                         usage_htable_eq_t eq, const void *ctx,
                         const void *key) {
  if (t->n == 0)
    return USAGE_HTABLE_NONE;
  uint32_t f = frag(hash);
  size_t mask = t->cap - 1;
  for (size_t i = home(f, mask); t->slot[i] != 0; i = (i + 1) & mask) {
    uint64_t v = t->slot[i];
    if ((uint32_t)(v >> 32) != f)
      continue;
    size_t pos = (size_t)(uint32_t)v - 1;
    if (eq(ctx, pos, key))
      return pos;
  }
  return USAGE_HTABLE_NONE;
}

int usage_htable_insert(usage_htable_t *t, uint64_t hash, size_t pos) {
  if (pos > USAGE_HTABLE_MAX_POS)
    return ERANGE;
  if (t->n == SIZE_MAX || usage_htable_reserve(t, t->n + 1) != 0)
    return ENOMEM;
  place(t->slot, t->cap - 1, (uint64_t)frag(hash) << 32 | (uint64_t)(pos + 1));
  t->n++;
  return 0;
}

uint64_t usage_hash_u64(uint64_t x) {
  /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

uint64_t usage_hash_bytes(const void *p, size_t n) {
  /* Eight bytes at a time (multiply and fold), the tail zero-padded, the
   * length mixed in; finished with the integer mix so that the high bits
   * (the stored fragment) depend on every byte. In-memory only: the value
   * is never stored on disk, so byte order does not matter. */
  const unsigned char *s = p;
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, s, n);
  h = (h ^ w) * 0x94d049bb133111ebULL;
  return usage_hash_u64(h);
}
