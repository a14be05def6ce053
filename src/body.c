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
#include <zlib.h>

typedef struct body_s {
  usage_body_t pub;
  int refs;              /* atomic */
  char *data;            /* contiguous copy, or the gzip bytes */
  store_entity_t **snap; /* the entities whose text the pieces point into */
  size_t nsnap;
  char *heads; /* family headers and footer */
  usage_iov_t *iov;
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
      store_entity_t *e = snap[i];
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

void usage_store_cache_clear(usage_store_t *s) {
  for (size_t i = 0; i < 2; i++) {
    usage_body_release(s->cache[i] ? &s->cache[i]->pub : NULL);
    s->cache[i] = NULL;
  }
}
