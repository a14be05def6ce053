/* SPDX-License-Identifier: MIT */
/* store_impl: the insides of the store, shared by store.c (batches,
 * entities, commit) and body.c (the rendered body and its cache) and by no
 * other file. */
#ifndef USAGE_STORE_IMPL_H
#define USAGE_STORE_IMPL_H 1

#include "store.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct store_gz_s; /* an entity's chunks compressed (body.c) */

/* A committed entity's lines of one family: text[off, off + len). */
typedef struct {
  int family;
  size_t off, len;
} store_chunk_t;

/* A committed entity: its sample lines rendered once, grouped by family.
 * Immutable once committed and reference counted: the store holds one
 * reference, every body that points into text holds another. */
typedef struct store_entity_s {
  int refs; /* atomic */
  char *source;
  char *entity;
  char *text;
  store_chunk_t *chunks; /* ascending family */
  size_t nchunks;
  size_t nseries;
  /* Per sample line, in text order: its fingerprint (family, labels,
   * value's bits) and where it ends in text (it starts where the one before
   * ends), so that a changed batch re-renders only its changed lines. */
  uint64_t (*lfp)[2];
  size_t *lend;
  uint64_t fp[2];              /* the batch's fingerprint (store.c) */
  struct store_gz_s *gz;       /* its chunks compressed (body.c); set once */
  struct store_entity_s *next; /* hash chain */
} store_entity_t;

#define STORE_BUCKETS 4096

struct body_s; /* body.c */

struct usage_store_s {
  pthread_mutex_t lock; /* table, count, generation */
  store_entity_t *table[STORE_BUCKETS];
  size_t count;
  uint64_t generation;

  pthread_mutex_t render_lock; /* cache (body.c) */
  struct body_s *cache[2];
};

/* usage_store_entity_unref drops a reference; the last one frees. Accepts
 * NULL. */
void usage_store_entity_unref(store_entity_t *e);

/* usage_store_snapshot takes a reference to every committed entity and
 * returns them in *out (calloc'd, one spare slot; the caller unrefs each and
 * frees the array), sorted by source and entity, with the generation they
 * make up. 0 or ENOMEM (then nothing is referenced). */
int usage_store_snapshot(usage_store_t *s, store_entity_t ***out, size_t *n,
                         uint64_t *generation);

/* usage_store_gz_free frees an entity's compressed chunks (body.c).
 * Accepts NULL. */
void usage_store_gz_free(struct store_gz_s *gz);

/* usage_store_cache_drop_stale releases the cached bodies of an older
 * generation (body.c): a commit calls it, so that the scrape after it does
 * not free the previous body and the entities only it still held. */
void usage_store_cache_drop_stale(usage_store_t *s);

/* usage_store_cache_clear releases the rendered bodies the store caches
 * (body.c); for usage_store_destroy. */
void usage_store_cache_clear(usage_store_t *s);

#endif
