/* SPDX-License-Identifier: MIT */
/* store: batches of samples, committed entities and the commit that swaps
 * them (see store.h). A committed entity is immutable and reference
 * counted: a commit swaps one pointer under the store lock, and a snapshot
 * takes references, so the body assembled from it (body.c) is built outside
 * the lock and scrapes of /metrics never hold up the read callbacks. */
#include "store.h"
#include "families.h"
#include "htable.h"
#include "store_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Strings of a batch live in a chain of blocks freed together. */
typedef struct arena_block_s {
  struct arena_block_s *next;
  size_t used, size;
  char data[];
} arena_block_t;

struct usage_batch_s {
  char *source;
  char *entity;
  usage_sample_t *samples;
  uint64_t (*lfp)[2]; /* per sample: what its line is (family, labels, value) */
  size_t num, alloc;
  arena_block_t *arena;
  /* Label names and values repeat (source, rate plan, zone, direction):
   * each distinct string is stored once per batch. Open addressing. */
  usage_htable_t intern_idx; /* positions in intern */
  const char **intern;       /* the batch's distinct label strings */
  size_t intern_num, intern_alloc;
  /* What the samples are, in order (families, values' bits, label strings'
   * hashes): a commit that matches the stored entity's keeps it. */
  uint64_t fp[2];
  /* The labels of the last sample added (the batch's copies) and their
   * hashes: the next sample with the same labels (every family of one
   * label set, added in a row) shares them instead of interning again. */
  const char **last;
  unsigned last_n;
  uint64_t last_h[2 * USAGE_MAX_LABELS];
};

/* arena_alloc returns n bytes aligned for pointers that live as long as
 * the batch (blocks never move). NULL on ENOMEM. */
static void *arena_alloc(usage_batch_t *b, size_t n) {
  const size_t align = sizeof(void *);
  arena_block_t *blk = b->arena;
  size_t at = blk ? (blk->used + align - 1) & ~(align - 1) : 0;
  if (blk == NULL || at > blk->size || blk->size - at < n) {
    size_t size = n > 16384 ? n : 16384;
    blk = malloc(sizeof(*blk) + size);
    if (blk == NULL)
      return NULL;
    blk->size = size;
    blk->used = 0;
    blk->next = b->arena;
    b->arena = blk;
    at = 0;
  }
  blk->used = at + n;
  return blk->data + at;
}

static char *arena_copy(usage_batch_t *b, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = arena_alloc(b, n);
  if (p != NULL)
    memcpy(p, s, n);
  return p;
}

static int intern_eq(const void *ctx, size_t pos, const void *key) {
  const usage_batch_t *b = ctx;
  return strcmp(b->intern[pos], key) == 0;
}

/* arena_strdup returns the batch's copy of s, shared with every earlier
 * use of the same string, and its hash in *hash. NULL on ENOMEM. */
static const char *arena_strdup(usage_batch_t *b, const char *s,
                                uint64_t *hash) {
  uint64_t h = usage_hash_bytes(s, strlen(s));
  *hash = h;
  size_t pos = usage_htable_find(&b->intern_idx, h, intern_eq, b, s);
  if (pos != USAGE_HTABLE_NONE)
    return b->intern[pos];
  if (b->intern_num == b->intern_alloc) {
    size_t n = b->intern_alloc ? 2 * b->intern_alloc : 256;
    const char **p = realloc(b->intern, n * sizeof(*p));
    if (p == NULL)
      return NULL;
    b->intern = p;
    b->intern_alloc = n;
  }
  if (usage_htable_reserve(&b->intern_idx, b->intern_num + 1) != 0)
    return NULL;
  char *copy = arena_copy(b, s);
  if (copy == NULL)
    return NULL;
  b->intern[b->intern_num] = copy;
  usage_htable_insert(&b->intern_idx, h, b->intern_num); /* reserved */
  b->intern_num++;
  return copy;
}

usage_batch_t *usage_batch_create(const char *source, const char *entity) {
  usage_batch_t *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return NULL;
  b->source = strdup(source ? source : "");
  b->entity = strdup(entity ? entity : "");
  if (b->source == NULL || b->entity == NULL) {
    usage_batch_destroy(b);
    return NULL;
  }
  return b;
}

void usage_batch_destroy(usage_batch_t *b) {
  if (b == NULL)
    return;
  while (b->arena != NULL) {
    arena_block_t *next = b->arena->next;
    free(b->arena);
    b->arena = next;
  }
  usage_htable_free(&b->intern_idx);
  free(b->intern);
  free(b->samples);
  free(b->lfp);
  free(b->source);
  free(b->entity);
  free(b);
}

/* fp_mix folds x into a fingerprint: two lanes with unrelated mixing, so
 * that a match stands for 128 bits, not 64. */
static void fp_mix(uint64_t fp[2], uint64_t x) {
  fp[0] = usage_hash_u64(fp[0] + x + 0x9e3779b97f4a7c15ULL);
  fp[1] = (fp[1] ^ x) * 0xff51afd7ed558ccdULL;
  fp[1] ^= fp[1] >> 29;
}

int usage_batch_addv(usage_batch_t *b, int family, double value,
                     unsigned nlabels, const char *const *labels) {
  if (b == NULL || family < 0 || family >= FAM_COUNT ||
      nlabels > USAGE_MAX_LABELS)
    return EINVAL;
  for (unsigned i = 0; i < 2 * nlabels; i++)
    if (labels[i] == NULL)
      return EINVAL;
  if (b->num == b->alloc) {
    size_t alloc = b->alloc ? 2 * b->alloc : 16;
    usage_sample_t *p = realloc(b->samples, alloc * sizeof(*p));
    if (p == NULL)
      return ENOMEM;
    b->samples = p;
    uint64_t(*q)[2] = realloc(b->lfp, alloc * sizeof(*q));
    if (q == NULL)
      return ENOMEM;
    b->lfp = q;
    b->alloc = alloc;
  }
  usage_sample_t *s = &b->samples[b->num];
  memset(s, 0, sizeof(*s));
  s->family = family;
  s->value = value;
  s->nlabels = nlabels;
  /* The line's own fingerprint, then the batch's over the lines'. */
  uint64_t lfp[2] = {0, 0}, bits;
  memcpy(&bits, &value, sizeof(bits));
  fp_mix(lfp, (uint64_t)family << 32 | nlabels);
  fp_mix(lfp, bits);
  unsigned same = b->last != NULL && b->last_n == nlabels;
  for (unsigned i = 0; same && i < 2 * nlabels; i++)
    same = strcmp(labels[i], b->last[i]) == 0;
  if (same) {
    for (unsigned i = 0; i < 2 * nlabels; i++)
      fp_mix(lfp, b->last_h[i]);
    s->labels = b->last;
  } else {
    const char **copy = arena_alloc(b, (2 * nlabels + 1) * sizeof(*copy));
    if (copy == NULL)
      return ENOMEM;
    b->last = NULL; /* until every label is in */
    for (unsigned i = 0; i < 2 * nlabels; i++) {
      copy[i] = arena_strdup(b, labels[i], &b->last_h[i]);
      if (copy[i] == NULL)
        return ENOMEM;
      fp_mix(lfp, b->last_h[i]);
    }
    b->last = copy;
    b->last_n = nlabels;
    s->labels = copy;
  }
  b->lfp[b->num][0] = lfp[0];
  b->lfp[b->num][1] = lfp[1];
  b->num++;
  fp_mix(b->fp, lfp[0]);
  fp_mix(b->fp, lfp[1]);
  return 0;
}

int usage_batch_add(usage_batch_t *b, int family, double value, ...) {
  const char *labels[2 * USAGE_MAX_LABELS + 1];
  unsigned n = 0;
  va_list ap;
  va_start(ap, value);
  for (;;) {
    const char *name = va_arg(ap, const char *);
    if (name == NULL)
      break;
    if (n >= 2 * USAGE_MAX_LABELS) {
      va_end(ap);
      return EINVAL;
    }
    labels[n++] = name;
    labels[n++] = va_arg(ap, const char *);
  }
  va_end(ap);
  return usage_batch_addv(b, family, value, n / 2, labels);
}

size_t usage_batch_size(const usage_batch_t *b) { return b ? b->num : 0; }
const usage_sample_t *usage_batch_sample(const usage_batch_t *b, size_t i) {
  return (b != NULL && i < b->num) ? &b->samples[i] : NULL;
}
const char *usage_batch_source(const usage_batch_t *b) { return b->source; }
const char *usage_batch_entity(const usage_batch_t *b) { return b->entity; }

/* Committed entities (store_impl.h). */

void usage_store_entity_unref(store_entity_t *e) {
  if (e == NULL || __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  free(e->source);
  free(e->entity);
  free(e->text);
  free(e->chunks);
  free(e->lfp);
  free(e->lend);
  usage_store_gz_free(e->gz);
  free(e);
}

/* Lines of the previous commit of an entity, found by fingerprint when
 * the samples moved (some added or removed). */
typedef struct {
  const store_entity_t *old;
  usage_htable_t idx; /* positions in old->lfp; built on first need */
  int built;
  size_t misses; /* lines not at their old position */
  int moved;     /* the batch has more or fewer lines than old */
} reuse_t;

static int lfp_eq(const void *ctx, size_t pos, const void *key) {
  const store_entity_t *old = ctx;
  const uint64_t *k = key;
  return old->lfp[pos][0] == k[0] && old->lfp[pos][1] == k[1];
}

/* reuse_find returns the position in the old entity of the line whose
 * fingerprint is fp (its i-th line first), or SIZE_MAX: then it is
 * rendered. The index of old's lines is built only when lines moved: the
 * count changed, or many lines are not where they were (changed values
 * alone keep every line in place). */
static size_t reuse_find(reuse_t *r, size_t i, const uint64_t fp[2]) {
  const store_entity_t *old = r->old;
  if (old == NULL)
    return SIZE_MAX;
  if (i < old->nseries && lfp_eq(old, i, fp))
    return i;
  if (!r->built && !r->moved && ++r->misses <= 64 + old->nseries / 8)
    return SIZE_MAX;
  if (!r->built) {
    r->built = 1;
    if (usage_htable_reserve(&r->idx, old->nseries) != 0) {
      r->old = NULL; /* no memory for the index: render everything */
      return SIZE_MAX;
    }
    for (size_t k = 0; k < old->nseries; k++)
      if (usage_htable_find(&r->idx, old->lfp[k][0], lfp_eq, old,
                            old->lfp[k]) == USAGE_HTABLE_NONE)
        usage_htable_insert(&r->idx, old->lfp[k][0], k); /* reserved */
  }
  size_t k = usage_htable_find(&r->idx, fp[0], lfp_eq, old, fp);
  return k == USAGE_HTABLE_NONE ? SIZE_MAX : k;
}

/* entity_from_batch renders the batch's samples grouped by family (in the
 * batch's order within a family). A line whose fingerprint matches one of
 * old (the entity's previous commit, or NULL) is copied from old's text,
 * runs of neighbours in one go; the others are rendered. */
static store_entity_t *entity_from_batch(const usage_batch_t *b,
                                         const store_entity_t *old) {
  store_entity_t *e = calloc(1, sizeof(*e));
  size_t *order = malloc((b->num + 1) * sizeof(*order));
  reuse_t reuse = {.old = old, .moved = old != NULL && old->nseries != b->num};
  usage_htable_init(&reuse.idx);
  usage_buf_t text;
  usage_buf_init(&text, 0);
  /* A hint: the old size with room to grow, so that re-rendering an entity
   * of about the same size never doubles the buffer. Doubling past
   * malloc's mmap threshold (128 KiB) would leave the text in a mapping of
   * its own, unmapped when the entity goes, on the thread of whichever
   * scrape or commit drops it last (a TLB shootdown on every thread of
   * the process). */
  if (old != NULL) {
    size_t was = old->lend[old->nseries - 1];
    (void)usage_buf_reserve(&text, was + was / 8 + 4096);
  }
  if (e == NULL || order == NULL)
    goto fail;
  e->refs = 1;
  e->source = strdup(b->source);
  e->entity = strdup(b->entity);
  e->chunks = calloc(b->num + 1, sizeof(*e->chunks));
  e->lfp = malloc((b->num + 1) * sizeof(*e->lfp)); /* all written below */
  e->lend = malloc((b->num + 1) * sizeof(*e->lend));
  if (e->source == NULL || e->entity == NULL || e->chunks == NULL ||
      e->lfp == NULL || e->lend == NULL)
    goto fail;
  /* Grouped by family, stable: a counting sort. */
  size_t at[FAM_COUNT + 1] = {0};
  for (size_t i = 0; i < b->num; i++)
    at[b->samples[i].family + 1]++;
  for (int f = 0; f < FAM_COUNT; f++)
    at[f + 1] += at[f];
  for (size_t i = 0; i < b->num; i++)
    order[at[b->samples[i].family]++] = i;
  const char *source = b->source[0] ? b->source : NULL;
  size_t run_from = 0, run_to = 0; /* old text still to copy */
  for (size_t i = 0; i < b->num; i++) {
    const usage_sample_t *s = &b->samples[order[i]];
    const uint64_t *fp = b->lfp[order[i]];
    if (e->nchunks == 0 || e->chunks[e->nchunks - 1].family != s->family) {
      usage_buf_append(&text, old ? old->text + run_from : "", run_to - run_from);
      run_from = run_to = 0;
      e->chunks[e->nchunks].family = s->family;
      e->chunks[e->nchunks].off = usage_buf_len(&text);
      e->nchunks++;
    }
    size_t k = reuse_find(&reuse, i, fp);
    if (k != SIZE_MAX) {
      size_t from = k > 0 ? old->lend[k - 1] : 0;
      if (from != run_to) {
        usage_buf_append(&text, old->text + run_from, run_to - run_from);
        run_from = from;
      }
      run_to = old->lend[k];
    } else {
      usage_buf_append(&text, old ? old->text + run_from : "", run_to - run_from);
      run_from = run_to = 0;
      expfmt_sample(&text, s->family, source, s->nlabels, s->labels, s->value);
    }
    e->lfp[i][0] = fp[0];
    e->lfp[i][1] = fp[1];
    e->lend[i] = usage_buf_len(&text) + (run_to - run_from);
    e->chunks[e->nchunks - 1].len =
        e->lend[i] - e->chunks[e->nchunks - 1].off;
  }
  usage_buf_append(&text, old ? old->text + run_from : "", run_to - run_from);
  if (usage_buf_failed(&text))
    goto fail;
  e->nseries = b->num;
  e->fp[0] = b->fp[0];
  e->fp[1] = b->fp[1];
  size_t len;
  e->text = usage_buf_steal(&text, &len); /* a large text: a copy */
  if (e->text == NULL)
    goto fail;
  char *fit = realloc(e->text, len + 1); /* kept for long: no slack */
  if (fit != NULL)
    e->text = fit;
  store_chunk_t *chunks = realloc(e->chunks, (e->nchunks + 1) * sizeof(*chunks));
  if (chunks != NULL)
    e->chunks = chunks;
  usage_htable_free(&reuse.idx);
  free(order);
  return e;

fail:
  usage_htable_free(&reuse.idx);
  usage_buf_free(&text);
  free(order);
  if (e != NULL) {
    e->refs = 1;
    usage_store_entity_unref(e);
  }
  return NULL;
}

static unsigned entity_hash(const char *source, const char *entity) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const char *p = source; *p; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  h = (h ^ 0xff) * 16777619u;
  for (const char *p = entity; *p; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  return h % STORE_BUCKETS;
}

usage_store_t *usage_store_create(void) {
  usage_store_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->render_lock, NULL);
  return s;
}

void usage_store_destroy(usage_store_t *s) {
  if (s == NULL)
    return;
  for (size_t i = 0; i < STORE_BUCKETS; i++) {
    while (s->table[i] != NULL) {
      store_entity_t *next = s->table[i]->next;
      usage_store_entity_unref(s->table[i]);
      s->table[i] = next;
    }
  }
  usage_store_cache_clear(s);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->render_lock);
  free(s);
}

/* store_find returns the link that points at (source, entity) in its hash
 * chain, or the chain's NULL end. Under the store lock. */
static store_entity_t **store_find(usage_store_t *s, unsigned h,
                                   const char *source, const char *entity) {
  store_entity_t **pp = &s->table[h];
  while (*pp != NULL && !(strcmp((*pp)->source, source) == 0 &&
                          strcmp((*pp)->entity, entity) == 0))
    pp = &(*pp)->next;
  return pp;
}

/* usage_store_commit keeps the stored entity, its rendered text and the
 * cached bodies when the batch is the same samples in the same order (same
 * fingerprint and count): no sort, no render, no new generation. */
int usage_store_commit(usage_store_t *s, usage_batch_t *b) {
  unsigned h = entity_hash(b->source, b->entity);
  pthread_mutex_lock(&s->lock);
  store_entity_t *cur = *store_find(s, h, b->source, b->entity);
  int same = cur != NULL && cur->nseries == b->num && cur->fp[0] == b->fp[0] &&
             cur->fp[1] == b->fp[1];
  if (cur != NULL && !same && cur->nseries > 0)
    __atomic_add_fetch(&cur->refs, 1, __ATOMIC_RELAXED); /* for its lines */
  else
    cur = NULL;
  pthread_mutex_unlock(&s->lock);
  if (same) {
    usage_batch_destroy(b);
    return 0;
  }
  store_entity_t *e = entity_from_batch(b, cur);
  usage_store_entity_unref(cur);
  usage_batch_destroy(b);
  if (e == NULL)
    return ENOMEM;
  store_entity_t *old = NULL;
  pthread_mutex_lock(&s->lock);
  store_entity_t **pp = store_find(s, h, e->source, e->entity);
  if (*pp != NULL) {
    old = *pp;
    e->next = old->next;
  } else {
    s->count++;
  }
  *pp = e;
  s->generation++;
  pthread_mutex_unlock(&s->lock);
  usage_store_entity_unref(old);
  usage_store_cache_drop_stale(s);
  return 0;
}

void usage_store_remove(usage_store_t *s, const char *source,
                        const char *prefix) {
  size_t plen = strlen(prefix);
  store_entity_t *dead = NULL;
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < STORE_BUCKETS; i++) {
    store_entity_t **pp = &s->table[i];
    while (*pp != NULL) {
      store_entity_t *e = *pp;
      if (strcmp(e->source, source) == 0 &&
          strncmp(e->entity, prefix, plen) == 0) {
        *pp = e->next;
        e->next = dead;
        dead = e;
        s->count--;
        s->generation++;
      } else {
        pp = &e->next;
      }
    }
  }
  pthread_mutex_unlock(&s->lock);
  if (dead != NULL)
    usage_store_cache_drop_stale(s);
  while (dead != NULL) {
    store_entity_t *next = dead->next;
    usage_store_entity_unref(dead);
    dead = next;
  }
}

uint64_t usage_store_generation(usage_store_t *s) {
  pthread_mutex_lock(&s->lock);
  uint64_t g = s->generation;
  pthread_mutex_unlock(&s->lock);
  return g;
}

size_t usage_store_series(usage_store_t *s, const char *source) {
  size_t n = 0;
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < STORE_BUCKETS; i++)
    for (store_entity_t *e = s->table[i]; e != NULL; e = e->next)
      if (source == NULL || strcmp(e->source, source) == 0)
        n += e->nseries;
  pthread_mutex_unlock(&s->lock);
  return n;
}

static int entity_cmp(const void *a, const void *b) {
  const store_entity_t *x = *(const store_entity_t *const *)a;
  const store_entity_t *y = *(const store_entity_t *const *)b;
  int c = strcmp(x->source, y->source);
  return c != 0 ? c : strcmp(x->entity, y->entity);
}

int usage_store_snapshot(usage_store_t *s, store_entity_t ***out, size_t *n,
                         uint64_t *generation) {
  pthread_mutex_lock(&s->lock);
  size_t count = s->count;
  *generation = s->generation;
  store_entity_t **snap = calloc(count + 1, sizeof(*snap));
  if (snap == NULL) {
    pthread_mutex_unlock(&s->lock);
    return ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < STORE_BUCKETS; i++)
    for (store_entity_t *e = s->table[i]; e != NULL; e = e->next) {
      __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
      snap[k++] = e;
    }
  pthread_mutex_unlock(&s->lock);
  qsort(snap, k, sizeof(*snap), entity_cmp);
  *out = snap;
  *n = k;
  return 0;
}
