/* SPDX-License-Identifier: MIT */
/* body: the /metrics body assembled from the committed entities' pieces
 * (family headers, the entities' lines, the footer), the cache of it per
 * format, its flat copy on demand and its gzip form (see store.h). */
#include "families.h"
#include "store.h"
#include "store_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

/* A flat body or a gzip body of many megabytes is written once and then
 * only read (by send, a page at a time). From malloc it is a mapping of
 * 4 KiB pages: tens of thousands of page faults to fill it (at 1M series
 * the flat body cost the first scrape after each commit more CPU than
 * the scrapes of a whole day), and a TLB entry per page for every send.
 * big_alloc maps it in huge pages where the kernel offers them
 * (transparent huge pages in "madvise" or "always" mode) and falls back
 * to malloc. Its size is kept in front of it. */
#define BIG_MIN (4u << 20)
#define BIG_ALIGN ((size_t)2 << 20)

static char *big_alloc(size_t n) {
  if (n < BIG_MIN)
    return malloc(n);
  size_t map = (n + 64 + BIG_ALIGN - 1) & ~(BIG_ALIGN - 1); /* + the size */
  /* one huge page more, to start on a huge page boundary */
  char *raw = mmap(NULL, map + BIG_ALIGN, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    return NULL;
  char *base = (char *)(((uintptr_t)raw + BIG_ALIGN - 1) & ~(BIG_ALIGN - 1));
  if (base > raw)
    munmap(raw, (size_t)(base - raw));
  if (base + map < raw + map + BIG_ALIGN)
    munmap(base + map, (size_t)(raw + map + BIG_ALIGN - (base + map)));
#ifdef MADV_HUGEPAGE
  (void)madvise(base, map, MADV_HUGEPAGE);
#endif
  memcpy(base, &map, sizeof(map));
  return base + 64; /* aligned for anything */
}

static void big_free(char *p, size_t n) {
  if (p == NULL)
    return;
  if (n < BIG_MIN) {
    free(p);
    return;
  }
  size_t map;
  memcpy(&map, p - 64, sizeof(map));
  munmap(p - 64, map);
}

typedef struct body_s {
  usage_body_t pub;
  int refs;              /* atomic */
  char *data;            /* contiguous copy, or the gzip bytes (big_alloc) */
  store_entity_t **snap; /* the entities whose text the pieces point into */
  size_t nsnap;
  char *heads; /* family headers and footer */
  usage_iov_t *iov;
  size_t *piece_ent;       /* per piece: index into snap, or SIZE_MAX (heads) */
  size_t *piece_chunk;     /* per piece: chunk of that entity */
  pthread_mutex_t gz_lock; /* gz and data */
  struct body_s *gz;       /* gzip form, made on first demand; owned */
} body_t;

/* body_render assembles a body from a snapshot of the entities: for each
 * family its header, then the entities' lines of that family, in the order
 * of source and entity; the footer last. The pieces point into the
 * entities' text, which the body keeps referenced. */
static body_t *body_render(usage_store_t *s, usage_format_t fmt) {
  body_t *body = calloc(1, sizeof(*body));
  if (body == NULL)
    return NULL;
  body->refs = 1;
  pthread_mutex_init(&body->gz_lock, NULL);

  if (usage_store_snapshot(s, &body->snap, &body->nsnap,
                           &body->pub.generation) != 0) {
    usage_body_release(&body->pub);
    return NULL;
  }
  store_entity_t **snap = body->snap;
  size_t n = body->nsnap;

  /* Pieces: one per chunk, a header per family present, the footer. */
  size_t npieces = FAM_COUNT + 1;
  for (size_t i = 0; i < n; i++)
    npieces += snap[i]->nchunks;
  body->iov = calloc(npieces, sizeof(*body->iov));
  body->piece_ent = calloc(npieces, sizeof(*body->piece_ent));
  body->piece_chunk = calloc(npieces, sizeof(*body->piece_chunk));
  size_t *cursor = calloc(n + 1, sizeof(*cursor));
  /* Header pieces hold offsets into heads until it stops moving. */
  unsigned char *is_head = calloc(npieces, 1);
  usage_buf_t heads;
  usage_buf_init(&heads, 0);
  if (body->iov == NULL || body->piece_ent == NULL ||
      body->piece_chunk == NULL || cursor == NULL || is_head == NULL)
    usage_buf_fail(&heads, ENOMEM);
  size_t k = 0;
  for (int fam = 0; fam < FAM_COUNT && !usage_buf_failed(&heads); fam++) {
    int header = 0;
    for (size_t i = 0; i < n; i++) {
      store_entity_t *e = snap[i];
      if (cursor[i] >= e->nchunks || e->chunks[cursor[i]].family != fam)
        continue;
      if (!header) {
        size_t at = usage_buf_len(&heads);
        expfmt_header(&heads, fam, fmt);
        is_head[k] = 1;
        body->piece_ent[k] = SIZE_MAX;
        body->iov[k++] = (usage_iov_t){(const void *)(uintptr_t)at,
                                       usage_buf_len(&heads) - at};
        header = 1;
      }
      body->piece_ent[k] = i;
      body->piece_chunk[k] = cursor[i];
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
      body->piece_ent[k] = SIZE_MAX;
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
    char *p = big_alloc(body->pub.len + 1);
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

int usage_body_flatten(usage_body_t *pub) {
  return body_flatten((body_t *)pub);
}

usage_body_t *usage_store_body_iov(usage_store_t *s, usage_format_t fmt) {
  uint64_t generation = usage_store_generation(s);
  pthread_mutex_lock(&s->render_lock);
  body_t *body = s->cache[fmt];
  if (body == NULL || body->pub.generation != generation) {
    body_t *fresh = body_render(s, fmt);
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
    usage_store_entity_unref(body->snap[i]);
  free(body->snap);
  free(body->iov);
  free(body->piece_ent);
  free(body->piece_chunk);
  free(body->heads);
  big_free(body->data, body->pub.len + 1);
  free(body);
}

/* The gzip body is one gzip member whose deflate data is a run of
 * segments, each compressed on its own (no match reaches into an earlier
 * one) and ended by a sync flush (byte aligned, not final), then an empty
 * final block. An entity's chunks are compressed once, on the first gzip
 * body that holds them, and kept with the entity (immutable like its text),
 * so a commit to one entity recompresses only that entity and the family
 * headers. Any gzip reader sees an ordinary single-member stream. */
typedef struct {
  unsigned char *data; /* raw deflate, ends with a sync flush */
  size_t len;
  uint32_t crc;  /* crc32 of the text */
  size_t rawlen; /* length of the text */
} gz_seg_t;

struct store_gz_s {
  size_t n;
  gz_seg_t seg[]; /* one per chunk */
};

void usage_store_gz_free(struct store_gz_s *gz) {
  if (gz == NULL)
    return;
  for (size_t i = 0; i < gz->n; i++)
    free(gz->seg[i].data);
  free(gz);
}

/* Two deflate states: hash tables sized for short and for long texts, since
 * each segment starts from a reset state, which clears the hash table. */
typedef struct {
  z_stream small, big;
  int small_ok, big_ok;
} gz_ctx_t;

static void gz_ctx_end(gz_ctx_t *c) {
  if (c->small_ok)
    deflateEnd(&c->small);
  if (c->big_ok)
    deflateEnd(&c->big);
}

/* gz_segment compresses text[0, len) into a fresh segment. 0 or ENOMEM. */
static int gz_segment(gz_ctx_t *c, const char *text, size_t len,
                      gz_seg_t *seg) {
  int big = len > 16384;
  z_stream *z = big ? &c->big : &c->small;
  int *ok = big ? &c->big_ok : &c->small_ok;
  if (!*ok) {
    if (deflateInit2(z, Z_BEST_SPEED, Z_DEFLATED, -15, big ? 8 : 3,
                     Z_DEFAULT_STRATEGY) != Z_OK)
      return ENOMEM;
    *ok = 1;
  } else if (deflateReset(z) != Z_OK) {
    return ENOMEM;
  }
  seg->rawlen = len;
  seg->crc = 0;
  seg->len = 0;
  seg->data = NULL;
  size_t in_done = 0;
  do { /* avail_* are 32 bits: feed at most 1 GiB per call */
    size_t n = len - in_done > (1u << 30) ? (1u << 30) : len - in_done;
    uLong crc = crc32(seg->crc, (const Bytef *)text + in_done, (uInt)n);
    seg->crc = (uint32_t)crc;
    size_t cap = deflateBound(z, n) + 16;
    unsigned char *p = realloc(seg->data, seg->len + cap);
    if (p == NULL) {
      free(seg->data);
      seg->data = NULL;
      return ENOMEM;
    }
    seg->data = p;
    z->next_in = (Bytef *)text + in_done;
    z->avail_in = (uInt)n;
    z->next_out = seg->data + seg->len;
    z->avail_out = (uInt)cap;
    int rc = deflate(z, Z_SYNC_FLUSH);
    if ((rc != Z_OK && rc != Z_BUF_ERROR) || z->avail_in != 0) {
      free(seg->data);
      seg->data = NULL;
      return ENOMEM;
    }
    seg->len += cap - z->avail_out;
    in_done += n;
  } while (in_done < len);
  /* kept as long as the entity: no slack (the bound is about the text's
   * size, the deflate data a tenth of it) */
  unsigned char *fit = realloc(seg->data, seg->len ? seg->len : 1);
  if (fit != NULL)
    seg->data = fit;
  return 0;
}

/* entity_gz returns the entity's compressed chunks, made on first demand;
 * NULL on ENOMEM. Racing makers agree on one. */
static struct store_gz_s *entity_gz(gz_ctx_t *c, store_entity_t *e) {
  struct store_gz_s *gz = __atomic_load_n(&e->gz, __ATOMIC_ACQUIRE);
  if (gz != NULL)
    return gz;
  gz = calloc(1, sizeof(*gz) + (e->nchunks + 1) * sizeof(gz->seg[0]));
  if (gz == NULL)
    return NULL;
  for (size_t i = 0; i < e->nchunks; i++, gz->n++)
    if (gz_segment(c, e->text + e->chunks[i].off, e->chunks[i].len,
                   &gz->seg[i]) != 0) {
      usage_store_gz_free(gz);
      return NULL;
    }
  struct store_gz_s *none = NULL;
  if (!__atomic_compare_exchange_n(&e->gz, &none, gz, 0, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    usage_store_gz_free(gz);
    return none;
  }
  return gz;
}

static void put_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* body_gzip makes the gzip form of plain: header, each piece's segment
 * (the entities' kept ones, the headers' made here), an empty final block,
 * the CRC and length of the whole. */
static body_t *body_gzip(const body_t *plain) {
  static const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3};
  static const unsigned char last[2] = {0x03, 0x00}; /* empty final block */
  body_t *gz = calloc(1, sizeof(*gz));
  size_t n = plain->pub.iovcnt;
  gz_seg_t *own = calloc(n + 1, sizeof(*own)); /* headers' segments */
  const gz_seg_t **seg = calloc(n + 1, sizeof(*seg));
  gz_ctx_t c = {0};
  size_t total = sizeof(head) + sizeof(last) + 8;
  if (gz == NULL || own == NULL || seg == NULL)
    goto fail;
  for (size_t i = 0; i < n; i++) {
    if (plain->piece_ent[i] == SIZE_MAX) {
      if (gz_segment(&c, plain->iov[i].base, plain->iov[i].len, &own[i]) != 0)
        goto fail;
      seg[i] = &own[i];
    } else {
      struct store_gz_s *eg = entity_gz(&c, plain->snap[plain->piece_ent[i]]);
      if (eg == NULL)
        goto fail;
      seg[i] = &eg->seg[plain->piece_chunk[i]];
    }
    total += seg[i]->len;
  }
  gz->data = big_alloc(total + 1);
  gz->iov = malloc(sizeof(*gz->iov));
  if (gz->data == NULL || gz->iov == NULL)
    goto fail;
  unsigned char *p = (unsigned char *)gz->data;
  memcpy(p, head, sizeof(head));
  p += sizeof(head);
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t i = 0; i < n; i++) {
    memcpy(p, seg[i]->data, seg[i]->len);
    p += seg[i]->len;
    crc = crc32_combine(crc, seg[i]->crc, (z_off_t)seg[i]->rawlen);
  }
  memcpy(p, last, sizeof(last));
  p += sizeof(last);
  put_le32(p, (uint32_t)crc);
  put_le32(p + 4, (uint32_t)plain->pub.len); /* ISIZE: length mod 2^32 */
  gz_ctx_end(&c);
  for (size_t i = 0; i < n; i++)
    free(own[i].data);
  free(own);
  free(seg);
  gz->refs = 1;
  pthread_mutex_init(&gz->gz_lock, NULL);
  gz->pub.generation = plain->pub.generation;
  gz->pub.data = gz->data;
  gz->pub.len = total;
  gz->iov[0] = (usage_iov_t){gz->data, gz->pub.len};
  gz->pub.iov = gz->iov;
  gz->pub.iovcnt = 1;
  return gz;

fail:
  gz_ctx_end(&c);
  for (size_t i = 0; own != NULL && i < n; i++)
    free(own[i].data);
  free(own);
  free(seg);
  if (gz != NULL) {
    big_free(gz->data, total + 1);
    free(gz->iov);
  }
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

void usage_store_cache_drop_stale(usage_store_t *s) {
  uint64_t generation = usage_store_generation(s);
  body_t *stale[2] = {NULL, NULL};
  pthread_mutex_lock(&s->render_lock);
  for (size_t i = 0; i < 2; i++)
    if (s->cache[i] != NULL && s->cache[i]->pub.generation != generation) {
      stale[i] = s->cache[i];
      s->cache[i] = NULL;
    }
  pthread_mutex_unlock(&s->render_lock);
  for (size_t i = 0; i < 2; i++)
    usage_body_release(stale[i] ? &stale[i]->pub : NULL);
}

void usage_store_cache_clear(usage_store_t *s) {
  for (size_t i = 0; i < 2; i++) {
    usage_body_release(s->cache[i] ? &s->cache[i]->pub : NULL);
    s->cache[i] = NULL;
  }
}
