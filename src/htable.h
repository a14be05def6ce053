/* SPDX-License-Identifier: MIT */
/* htable: the plugin's one hash table. An open-addressing index (linear
 * probing, load at most 7/10, doubling growth) of positions into an array
 * that the caller owns: the table keeps a position and a 32-bit fragment of
 * its key's hash, the caller keeps the entries and says how to compare them.
 * Store interning, billing groups and ids, and Jasper's devices all use it.
 *
 * Failure contract: an allocation that fails while the table grows leaves
 * the table exactly as it was (same entries, same memory) and returns
 * ENOMEM; nothing is ever half inserted. The struct may be embedded; its
 * fields are private to htable.c. */
#ifndef USAGE_HTABLE_H
#define USAGE_HTABLE_H 1

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t *slot; /* (hash fragment << 32) | (position + 1); 0 = empty */
  size_t cap;     /* 0 or a power of two */
  size_t n;
} usage_htable_t;

/* Returned by usage_htable_find when no entry matches. */
#define USAGE_HTABLE_NONE SIZE_MAX
/* Positions must be below this. */
#define USAGE_HTABLE_MAX_POS ((size_t)UINT32_MAX - 1)

/* eq: whether the caller's entry at pos equals key. */
typedef int (*usage_htable_eq_t)(const void *ctx, size_t pos, const void *key);

void usage_htable_init(usage_htable_t *t);
/* usage_htable_free releases the memory; the table may be used again. */
void usage_htable_free(usage_htable_t *t);
/* usage_htable_clear forgets every entry and keeps the memory. */
void usage_htable_clear(usage_htable_t *t);
size_t usage_htable_count(const usage_htable_t *t);

/* usage_htable_reserve makes room for n entries in all, so that inserting up
 * to n cannot fail. 0, or ENOMEM with the table unchanged. */
int usage_htable_reserve(usage_htable_t *t, size_t n);

/* usage_htable_find returns the position of the entry under hash for which
 * eq(ctx, position, key) holds, or USAGE_HTABLE_NONE. */
size_t usage_htable_find(const usage_htable_t *t, uint64_t hash,
                         usage_htable_eq_t eq, const void *ctx,
                         const void *key);

/* usage_htable_insert adds pos under hash; the caller has checked that no
 * equal entry is present. Grows the table first when needed. 0, ENOMEM or
 * ERANGE (pos too large), the table unchanged on failure. */
int usage_htable_insert(usage_htable_t *t, uint64_t hash, size_t pos);

/* Hash functions for keys: bytes (a label set, an ICCID) and integers. */
uint64_t usage_hash_bytes(const void *p, size_t n);
uint64_t usage_hash_u64(uint64_t x);

/* usage_htable_calloc is how the table allocates; tests replace it to make
 * growth fail. */
extern void *(*usage_htable_calloc)(size_t n, size_t size);

#endif
