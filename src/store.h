/* SPDX-License-Identifier: MIT */
/* store: labelled samples grouped into entities, and the figures the
 * exporter serves. A vendor parser fills a batch (the samples of one entity:
 * one service's usage, one rate plan's page set, ...); the batch is then
 * committed whole, replacing that entity's previous figures, or destroyed,
 * leaving them untouched. The store renders the exposition body once per
 * change and hands out shared, immutable copies of it. Thread-safe. */
#ifndef USAGE_STORE_H
#define USAGE_STORE_H 1

#include "expfmt.h"

#include <stddef.h>
#include <stdint.h>

#define USAGE_MAX_LABELS 10

typedef struct {
  int family; /* index into usage_families */
  double value;
  unsigned nlabels;          /* name/value pairs in labels, without "source" */
  const char *const *labels; /* 2 * nlabels: name, value, ...; batch-owned */
} usage_sample_t;

typedef struct usage_batch_s usage_batch_t;

/* usage_batch_create starts an empty batch for entity `entity` of source
 * `source` (both copied). NULL on ENOMEM. */
usage_batch_t *usage_batch_create(const char *source, const char *entity);
void usage_batch_destroy(usage_batch_t *b); /* accepts NULL */
/* usage_batch_add appends a sample; the variadic part is label name/value
 * string pairs ended by NULL. Strings are copied. 0, EINVAL (too many labels,
 * NULL value) or ENOMEM; on error the batch is unchanged. */
int usage_batch_add(usage_batch_t *b, int family, double value, ...);
int usage_batch_addv(usage_batch_t *b, int family, double value,
                     unsigned nlabels, const char *const *labels);
size_t usage_batch_size(const usage_batch_t *b);
const usage_sample_t *usage_batch_sample(const usage_batch_t *b, size_t i);
const char *usage_batch_source(const usage_batch_t *b);
const char *usage_batch_entity(const usage_batch_t *b);

typedef struct usage_store_s usage_store_t;

usage_store_t *usage_store_create(void);
void usage_store_destroy(usage_store_t *s); /* accepts NULL */

/* usage_store_commit renders the batch's samples and makes them the figures
 * of (source, entity), replacing what was there. A batch of the same samples
 * in the same order as the stored ones (families, labels, values' bits) is
 * no change: the stored entity and the cached bodies stay, the generation
 * does not move. It takes ownership of the batch in every case. 0 or ENOMEM
 * (then the old figures stay). */
int usage_store_commit(usage_store_t *s, usage_batch_t *b);
/* usage_store_remove forgets every entity of a source whose name starts with
 * prefix ("" = all of them). */
void usage_store_remove(usage_store_t *s, const char *source,
                        const char *prefix);
/* usage_store_generation grows by one with every change (a commit of
 * unchanged samples is none). */
uint64_t usage_store_generation(usage_store_t *s);
/* usage_store_series counts the samples held for a source (NULL = all). */
size_t usage_store_series(usage_store_t *s, const char *source);

/* One piece of a body (laid out like struct iovec and libmicrohttpd's
 * struct MHD_IoVec). */
typedef struct {
  const void *base;
  size_t len;
} usage_iov_t;

/* A rendered exposition body, immutable and shared; release when done. It
 * is a list of pieces: the family headers and the sample lines each
 * committed entity rendered once, so a body costs a pointer per piece, not
 * a second copy of every line. data is the same bytes in one block, made
 * only for those who ask for it (usage_store_body). */
typedef struct usage_body_s {
  const char *data;
  size_t len;
  uint64_t generation;
  const usage_iov_t *iov;
  size_t iovcnt;
} usage_body_t;

/* usage_store_body_iov returns the body of every committed figure in the
 * given format as pieces (data may be NULL), assembled once per change of
 * the store. NULL on ENOMEM. */
usage_body_t *usage_store_body_iov(usage_store_t *s, usage_format_t fmt);
/* usage_store_body is usage_store_body_iov with data set. */
usage_body_t *usage_store_body(usage_store_t *s, usage_format_t fmt);
/* usage_store_body_gzip returns the gzip form of usage_store_body(s, fmt),
 * compressed once per rendered body. NULL on ENOMEM. */
usage_body_t *usage_store_body_gzip(usage_store_t *s, usage_format_t fmt);
/* usage_body_flatten sets data on a body from usage_store_body_iov: its
 * bytes in one block, made once and kept with the body (a second copy of
 * the text for as long as the body is cached). 0 or ENOMEM. */
int usage_body_flatten(usage_body_t *body);
void usage_body_release(usage_body_t *body); /* accepts NULL */

#endif
