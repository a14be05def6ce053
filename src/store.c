/* SPDX-License-Identifier: MIT */
/* store: batches of samples, committed entities, and the rendered body the
 * exporter serves (see store.h). A committed entity is immutable and
 * reference counted: a commit swaps one pointer under the store lock, and a
 * render takes references to a snapshot and works outside the lock, so
 * scrapes of /metrics never hold up the read callbacks for long. */
#include "store.h"
#include "families.h"
#include "htable.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

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
  size_t num, alloc;
  arena_block_t *arena;
  /* Label names and values repeat (source, rate plan, zone, direction):
   * each distinct string is stored once per batch. Open addressing. */
  usage_htable_t intern_idx; /* positions in intern */
  const char **intern;       /* the batch's distinct label strings */
  size_t intern_num, intern_alloc;
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
 * use of the same string. NULL on ENOMEM. */
static const char *arena_strdup(usage_batch_t *b, const char *s) {
  uint64_t h = usage_hash_bytes(s, strlen(s));
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
  free(b->source);
  free(b->entity);
  free(b);
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
    b->alloc = alloc;
  }
  usage_sample_t *s = &b->samples[b->num];
  memset(s, 0, sizeof(*s));
  s->family = family;
  s->value = value;
  s->nlabels = nlabels;
  const char **copy = arena_alloc(b, (2 * nlabels + 1) * sizeof(*copy));
  if (copy == NULL)
    return ENOMEM;
  for (unsigned i = 0; i < 2 * nlabels; i++) {
    copy[i] = arena_strdup(b, labels[i]);
    if (copy[i] == NULL)
      return ENOMEM;
  }
  s->labels = copy;
  b->num++;
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

/* A committed entity: its sample lines rendered once, grouped by family. */
typedef struct {
  int family;
  size_t off, len;
} chunk_t;

typedef struct entity_s entity_t;

struct entity_s {
  int refs; /* atomic */
  char *source;
  char *entity;
  char *text;
  chunk_t *chunks; /* ascending family */
  size_t nchunks;
  size_t nseries;
  struct entity_s *next; /* hash chain */
};

static void entity_unref(entity_t *e) {
  if (e == NULL || __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  free(e->source);
  free(e->entity);
  free(e->text);
  free(e->chunks);
  free(e);
}

static int sample_cmp(const void *a, const void *b) {
  const usage_sample_t *x = *(const usage_sample_t *const *)a;
  const usage_sample_t *y = *(const usage_sample_t *const *)b;
  if (x->family != y->family)
    return x->family < y->family ? -1 : 1;
  return x < y ? -1 : (x > y); /* stable: keep the batch's order */
}

static entity_t *entity_from_batch(const usage_batch_t *b) {
  entity_t *e = calloc(1, sizeof(*e));
  const usage_sample_t **order = calloc(b->num + 1, sizeof(*order));
  usage_buf_t text;
  usage_buf_init(&text, 0);
  if (e == NULL || order == NULL)
    goto fail;
  e->refs = 1;
  e->source = strdup(b->source);
  e->entity = strdup(b->entity);
  e->chunks = calloc(b->num + 1, sizeof(*e->chunks));
  if (e->source == NULL || e->entity == NULL || e->chunks == NULL)
    goto fail;
  for (size_t i = 0; i < b->num; i++)
    order[i] = &b->samples[i];
  qsort(order, b->num, sizeof(*order), sample_cmp);
  const char *source = b->source[0] ? b->source : NULL;
  for (size_t i = 0; i < b->num; i++) {
    const usage_sample_t *s = order[i];
    if (e->nchunks == 0 || e->chunks[e->nchunks - 1].family != s->family) {
      e->chunks[e->nchunks].family = s->family;
      e->chunks[e->nchunks].off = usage_buf_len(&text);
      e->nchunks++;
    }
    expfmt_sample(&text, s->family, source, s->nlabels, s->labels, s->value);
    e->chunks[e->nchunks - 1].len =
        usage_buf_len(&text) - e->chunks[e->nchunks - 1].off;
  }
  if (usage_buf_failed(&text))
    goto fail;
  e->nseries = b->num;
  size_t len;
  e->text = usage_buf_steal(&text, &len);
  char *fit = realloc(e->text, len + 1); /* kept for long: no slack */
  if (fit != NULL)
    e->text = fit;
  free(order);
  return e;

fail:
  usage_buf_free(&text);
  free(order);
  if (e != NULL) {
    e->refs = 1;
    entity_unref(e);
  }
  return NULL;
}

#define STORE_BUCKETS 4096

typedef struct body_s {
  usage_body_t pub;
  int refs;        /* atomic */
  char *data;      /* contiguous copy, or the gzip bytes */
  entity_t **snap; /* the entities whose text the pieces point into */
  size_t nsnap;
  char *heads; /* family headers and footer */
  usage_iov_t *iov;
  pthread_mutex_t gz_lock; /* gz and data */
  struct body_s *gz;       /* gzip form, made on first demand; owned */
} body_t;

struct usage_store_s {
  pthread_mutex_t lock; /* table, count, generation */
  entity_t *table[STORE_BUCKETS];
  size_t count;
  uint64_t generation;

  pthread_mutex_t render_lock; /* cache */
  body_t *cache[2];
};

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
      entity_t *next = s->table[i]->next;
      entity_unref(s->table[i]);
      s->table[i] = next;
    }
  }
  for (size_t i = 0; i < 2; i++)
    usage_body_release(s->cache[i] ? &s->cache[i]->pub : NULL);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->render_lock);
  free(s);
}

int usage_store_commit(usage_store_t *s, usage_batch_t *b) {
  entity_t *e = entity_from_batch(b);
  usage_batch_destroy(b);
  if (e == NULL)
    return ENOMEM;
  unsigned h = entity_hash(e->source, e->entity);
  entity_t *old = NULL;
  pthread_mutex_lock(&s->lock);
  entity_t **pp = &s->table[h];
  while (*pp != NULL && !(strcmp((*pp)->source, e->source) == 0 &&
                          strcmp((*pp)->entity, e->entity) == 0))
    pp = &(*pp)->next;
  if (*pp != NULL) {
    old = *pp;
    e->next = old->next;
  } else {
    s->count++;
  }
  *pp = e;
  s->generation++;
  pthread_mutex_unlock(&s->lock);
  entity_unref(old);
  return 0;
}

void usage_store_remove(usage_store_t *s, const char *source,
                        const char *prefix) {
  size_t plen = strlen(prefix);
  entity_t *dead = NULL;
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < STORE_BUCKETS; i++) {
    entity_t **pp = &s->table[i];
    while (*pp != NULL) {
      entity_t *e = *pp;
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
  while (dead != NULL) {
    entity_t *next = dead->next;
    entity_unref(dead);
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
    for (entity_t *e = s->table[i]; e != NULL; e = e->next)
      if (source == NULL || strcmp(e->source, source) == 0)
        n += e->nseries;
  pthread_mutex_unlock(&s->lock);
  return n;
}

static int entity_cmp(const void *a, const void *b) {
  const entity_t *x = *(const entity_t *const *)a;
  const entity_t *y = *(const entity_t *const *)b;
  int c = strcmp(x->source, y->source);
  return c != 0 ? c : strcmp(x->entity, y->entity);
}

/* store_render assembles a body from a snapshot of the entities: for each
 * family its header, then the entities' lines of that family, in the order
 * of source and entity; the footer last. The pieces point into the
 * entities' text, which the body keeps referenced. */
static body_t *store_render(usage_store_t *s, usage_format_t fmt) {
  body_t *body = calloc(1, sizeof(*body));
  if (body == NULL)
    return NULL;
  body->refs = 1;
  pthread_mutex_init(&body->gz_lock, NULL);

  pthread_mutex_lock(&s->lock);
  size_t n = s->count;
  body->pub.generation = s->generation;
  body->snap = calloc(n + 1, sizeof(*body->snap));
  if (body->snap == NULL) {
    pthread_mutex_unlock(&s->lock);
    usage_body_release(&body->pub);
    return NULL;
  }
  for (size_t i = 0; i < STORE_BUCKETS; i++)
    for (entity_t *e = s->table[i]; e != NULL; e = e->next) {
      __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
      body->snap[body->nsnap++] = e;
    }
  pthread_mutex_unlock(&s->lock);
  entity_t **snap = body->snap;
  qsort(snap, n, sizeof(*snap), entity_cmp);

  /* Pieces: one per chunk, a header per family present, the footer. */
  size_t npieces = FAM_COUNT + 1;
  for (size_t i = 0; i < n; i++)
    npieces += snap[i]->nchunks;
  body->iov = calloc(npieces, sizeof(*body->iov));
  size_t *cursor = calloc(n + 1, sizeof(*cursor));
  /* Header pieces hold offsets into heads until it stops moving. */
  unsigned char *is_head = calloc(npieces, 1);
  usage_buf_t heads;
  usage_buf_init(&heads, 0);
  if (body->iov == NULL || cursor == NULL || is_head == NULL)
    usage_buf_fail(&heads, ENOMEM);
  size_t k = 0;
  for (int fam = 0; fam < FAM_COUNT && !usage_buf_failed(&heads); fam++) {
    int header = 0;
    for (size_t i = 0; i < n; i++) {
      entity_t *e = snap[i];
      if (cursor[i] >= e->nchunks || e->chunks[cursor[i]].family != fam)
        continue;
      if (!header) {
        size_t at = usage_buf_len(&heads);
        expfmt_header(&heads, fam, fmt);
        is_head[k] = 1;
        body->iov[k++] = (usage_iov_t){(const void *)(uintptr_t)at,
                                       usage_buf_len(&heads) - at};
        header = 1;
      }
      body->iov[k++] = (usage_iov_t){e->text + e->chunks[cursor[i]].off,
                                     e->chunks[cursor[i]].len};
      cursor[i]++;
    }
  }
  if (!usage_buf_failed(&heads)) {
    size_t at = usage_buf_len(&heads);
    expfmt_footer(&heads, fmt);
    if (usage_buf_len(&heads) > at) {
      is_head[k] = 1;
      body->iov[k++] = (usage_iov_t){(const void *)(uintptr_t)at,
                                     usage_buf_len(&heads) - at};
    }
  }
  free(cursor);
  if (usage_buf_failed(&heads)) {
    free(is_head);
    usage_buf_free(&heads);
    usage_body_release(&body->pub);
    return NULL;
  }
  body->heads = usage_buf_steal(&heads, NULL);
  for (size_t i = 0; i < k; i++) {
    if (is_head[i])
      body->iov[i].base = body->heads + (uintptr_t)body->iov[i].base;
    body->pub.len += body->iov[i].len;
  }
  free(is_head);
  body->pub.iov = body->iov;
  body->pub.iovcnt = k;
  return body;
}

/* body_flatten gives the body its bytes in one block (once). */
static int body_flatten(body_t *body) {
  int ret = 0;
  pthread_mutex_lock(&body->gz_lock);
  if (body->data == NULL) {
    char *p = malloc(body->pub.len + 1);
    if (p == NULL) {
      ret = ENOMEM;
    } else {
      size_t at = 0;
      for (size_t i = 0; i < body->pub.iovcnt; i++) {
        memcpy(p + at, body->iov[i].base, body->iov[i].len);
        at += body->iov[i].len;
      }
      p[at] = 0;
      body->data = p;
      __atomic_store_n(&body->pub.data, p, __ATOMIC_RELEASE);
    }
  }
  pthread_mutex_unlock(&body->gz_lock);
  return ret;
}

usage_body_t *usage_store_body_iov(usage_store_t *s, usage_format_t fmt) {
  uint64_t generation = usage_store_generation(s);
  pthread_mutex_lock(&s->render_lock);
  body_t *body = s->cache[fmt];
  if (body == NULL || body->pub.generation != generation) {
    body_t *fresh = store_render(s, fmt);
    if (fresh != NULL) {
      usage_body_release(body ? &body->pub : NULL);
      s->cache[fmt] = body = fresh;
    }
  }
  if (body != NULL)
    __atomic_add_fetch(&body->refs, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&s->render_lock);
  return body ? &body->pub : NULL;
}

usage_body_t *usage_store_body(usage_store_t *s, usage_format_t fmt) {
  usage_body_t *pub = usage_store_body_iov(s, fmt);
  if (pub != NULL && body_flatten((body_t *)pub) != 0) {
    usage_body_release(pub);
    return NULL;
  }
  return pub;
}

void usage_body_release(usage_body_t *pub) {
  if (pub == NULL)
    return;
  body_t *body = (body_t *)pub;
  if (__atomic_sub_fetch(&body->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  usage_body_release(body->gz ? &body->gz->pub : NULL);
  pthread_mutex_destroy(&body->gz_lock);
  for (size_t i = 0; i < body->nsnap; i++)
    entity_unref(body->snap[i]);
  free(body->snap);
  free(body->iov);
  free(body->heads);
  free(body->data);
  free(body);
}

/* body_gzip compresses plain into a new body (gzip wrapper, fastest level:
 * a scrape of a changed store should not wait long for it). */
static body_t *body_gzip(const body_t *plain) {
  body_t *gz = calloc(1, sizeof(*gz));
  z_stream z = {0};
  if (gz == NULL || deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8,
                                 Z_DEFAULT_STRATEGY) != Z_OK) {
    free(gz);
    return NULL;
  }
  size_t cap = deflateBound(&z, plain->pub.len) + 64;
  gz->data = malloc(cap);
  if (gz->data == NULL)
    goto fail;
  z.next_out = (Bytef *)gz->data;
  size_t out_left = cap;
  int rc = Z_OK;
  for (size_t i = 0; i <= plain->pub.iovcnt && rc == Z_OK; i++) {
    int last = i == plain->pub.iovcnt;
    const char *in = last ? "" : plain->iov[i].base;
    size_t in_left = last ? 0 : plain->iov[i].len;
    do { /* avail_* are 32 bits: feed at most 1 GiB per call */
      uInt n = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
      uInt o = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
      z.next_in = (Bytef *)in;
      z.avail_in = n;
      z.avail_out = o;
      rc = deflate(&z, last ? Z_FINISH : Z_NO_FLUSH);
      in += n - z.avail_in;
      in_left -= n - z.avail_in;
      out_left -= o - z.avail_out;
    } while (rc == Z_OK && (in_left > 0 || (last && out_left > 0)));
    if (rc == Z_BUF_ERROR && !last)
      rc = Z_OK; /* nothing to do for an empty piece */
  }
  if (rc != Z_STREAM_END)
    goto fail;
  deflateEnd(&z);
  gz->refs = 1;
  pthread_mutex_init(&gz->gz_lock, NULL);
  gz->pub.generation = plain->pub.generation;
  gz->pub.data = gz->data;
  gz->pub.len = cap - out_left;
  gz->iov = malloc(sizeof(*gz->iov));
  if (gz->iov == NULL)
    goto fail;
  gz->iov[0] = (usage_iov_t){gz->data, gz->pub.len};
  gz->pub.iov = gz->iov;
  gz->pub.iovcnt = 1;
  return gz;

fail:
  deflateEnd(&z);
  free(gz->data);
  free(gz);
  return NULL;
}

usage_body_t *usage_store_body_gzip(usage_store_t *s, usage_format_t fmt) {
  usage_body_t *pub = usage_store_body_iov(s, fmt);
  if (pub == NULL)
    return NULL;
  body_t *plain = (body_t *)pub;
  pthread_mutex_lock(&plain->gz_lock);
  if (plain->gz == NULL)
    plain->gz = body_gzip(plain);
  body_t *gz = plain->gz;
  if (gz != NULL)
    __atomic_add_fetch(&gz->refs, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&plain->gz_lock);
  usage_body_release(pub);
  return gz ? &gz->pub : NULL;
}
