/* SPDX-License-Identifier: MIT */
/* dispatch: the collectd side of a commit (see dispatch.h). Gauges go out
 * as GAUGE, counters as DERIVE where the type allows it, so collectd's own
 * threshold plugin can watch their rate; every label also travels as meta
 * data ("label:NAME") for writers that keep it. plugin_dispatch_values
 * copies the value list and its meta data (collectd 5.12
 * plugin_value_list_clone), so one meta data object per series serves every
 * commit; it is built again only when a label changes, which makes it
 * another series. */
#include "collectd.h"
#include "plugin.h"
#include "utils/common/common.h"
#include "utils/metadata/meta_data.h"

#include "dispatch.h"
#include "families.h"
#include "htable.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The throttle of the "not a representable DERIVE" line: the first such
 * series is logged, then at most one line per DERIVE_LOG_INTERVAL seconds
 * (process-wide, all sources), which counts the value lists skipped
 * meanwhile. */
#define DERIVE_LOG_INTERVAL 3600
static pthread_mutex_t derive_lock = PTHREAD_MUTEX_INITIALIZER;
static time_t derive_logged;
static int derive_ever;
static unsigned long long derive_skipped;

static int is_derive(const char *ds_type) {
  return strcmp(ds_type, "derive") == 0 ||
         strcmp(ds_type, "total_bytes") == 0 ||
         strcmp(ds_type, "total_requests") == 0;
}

/* derive_ok tells whether v rounds to an int64 (llround is undefined for
 * NaN, the infinities and values outside [-2^63, 2^63)). */
static int derive_ok(double v) {
  return isfinite(v) && v < 0x1p63 && v >= -0x1p63;
}

/* derive_refused logs, throttled, that the series source/type/ti was not
 * dispatched because its value v has no DERIVE representation. */
static void derive_refused(const char *source, const char *type, const char *ti,
                           double v) {
  pthread_mutex_lock(&derive_lock);
  derive_skipped++;
  time_t now = time(NULL);
  if (derive_ever && now - derive_logged < DERIVE_LOG_INTERVAL) {
    pthread_mutex_unlock(&derive_lock);
    return;
  }
  unsigned long long n = derive_skipped;
  derive_skipped = 0;
  derive_ever = 1;
  derive_logged = now;
  pthread_mutex_unlock(&derive_lock);
  ERROR("usage: series usage-%s/%s-%s: value %g is not a 64-bit DERIVE (NaN, "
        "infinite or at least 2^63): this value list is not dispatched "
        "(%llu skipped since the last such line; next line in at most %d s)",
        source, type, ti, v, n, DERIVE_LOG_INTERVAL);
}

void usage_dispatch_type_instance(const usage_sample_t *s, char *out,
                                  size_t size) {
  char stem[128];
  char full[2048];
  usage_family_short(s->family, stem, sizeof(stem));
  size_t n = (size_t)snprintf(full, sizeof(full), "%s", stem);
  /* An info family is identified by its first labels (service; service and
   * user; rate plan and version); the descriptive ones travel as meta data
   * only. */
  unsigned nlabels = s->nlabels;
  if (usage_families[s->family].id_labels > 0 &&
      usage_families[s->family].id_labels < nlabels)
    nlabels = usage_families[s->family].id_labels;
  for (unsigned i = 0; i < nlabels && n < sizeof(full); i++)
    n += (size_t)snprintf(full + n, sizeof(full) - n, "-%s",
                          s->labels[2 * i + 1]);
  for (char *p = full; *p; p++)
    if (*p == '/' || (unsigned char)*p < 0x20)
      *p = '_';
  if (strlen(full) < size) {
    snprintf(out, size, "%s", full);
    return;
  }
  /* Too long for collectd: keep the start and add a hash of the whole. */
  uint32_t h = 2166136261u;
  for (const char *p = full; *p; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  snprintf(out, size, "%.*s~%08x", (int)(size - 10), full, h);
}

/* A series kept from one commit to the next: its key (the family and every
 * label name and value, NUL-separated), type instance and meta data. */
typedef struct {
  meta_data_t *md; /* NULL when it could not be built */
  uint64_t hash;   /* of the key */
  size_t keylen;
  char *ti;    /* in data, after the key */
  char data[]; /* key, then the type instance */
} series_t;

/* The series of one entity at its last commit, indexed by key. */
typedef struct {
  char *name;
  series_t **s;
  size_t n;
  usage_htable_t idx;
} entity_t;

struct usage_dispatch_s {
  pthread_mutex_t lock;
  cdtime_t interval;
  unsigned char skip[FAM_COUNT];
  int meta_data; /* labels as meta data */
  entity_t **ents;
  size_t ents_num;
  usage_htable_t ents_idx;
  size_t kept;
};

#define KEY_MAX 2048

/* sample_key writes the key of s into key (KEY_MAX bytes); its length, or
 * 0 when it does not fit (such a series is not kept). */
static size_t sample_key(const usage_sample_t *s, char *key) {
  size_t n = sizeof(int);
  memcpy(key, &s->family, sizeof(int));
  for (unsigned i = 0; i < 2 * s->nlabels; i++) {
    size_t l = strlen(s->labels[i]) + 1;
    if (n + l > KEY_MAX)
      return 0;
    memcpy(key + n, s->labels[i], l);
    n += l;
  }
  return n;
}

typedef struct {
  const char *key;
  size_t len;
} key_t_;

/* series_matches tells whether s has the key of se, without building it. */
static int series_matches(const series_t *se, const usage_sample_t *s) {
  const char *p = se->data, *end = se->data + se->keylen;
  if (se->keylen < sizeof(int) || memcmp(p, &s->family, sizeof(int)) != 0)
    return 0;
  p += sizeof(int);
  for (unsigned i = 0; i < 2 * s->nlabels; i++) {
    size_t l = strlen(s->labels[i]) + 1; /* with its NUL */
    if ((size_t)(end - p) < l || memcmp(p, s->labels[i], l) != 0)
      return 0;
    p += l;
  }
  return p == end;
}

static int series_eq(const void *ctx, size_t pos, const void *k) {
  series_t *const *arr = ctx;
  const key_t_ *key = k;
  const series_t *se = arr[pos];
  return se != NULL && se->keylen == key->len &&
         memcmp(se->data, key->key, key->len) == 0;
}

/* meta_build: the meta data of s, one string "label:NAME" per label; NULL
 * for a sample without labels (collectd's JSON writers print an empty meta
 * object as invalid JSON) and when collectd could not allocate it (the
 * series then goes without). */
static meta_data_t *meta_build(const usage_dispatch_t *d,
                               const usage_sample_t *s) {
  if (!d->meta_data || s->nlabels == 0)
    return NULL;
  meta_data_t *md = meta_data_create();
  if (md == NULL)
    return NULL;
  for (unsigned k = 0; k < s->nlabels; k++) {
    char mkey[64] = "label:";
    sstrncpy(mkey + 6, s->labels[2 * k], sizeof(mkey) - 6);
    if (meta_data_add_string(md, mkey, s->labels[2 * k + 1]) != 0) {
      meta_data_destroy(md);
      return NULL;
    }
  }
  return md;
}

static series_t *series_new(const usage_dispatch_t *d, const usage_sample_t *s,
                            const char *key, size_t keylen, uint64_t hash) {
  char ti[DATA_MAX_NAME_LEN];
  usage_dispatch_type_instance(s, ti, sizeof(ti));
  size_t tl = strlen(ti) + 1;
  series_t *se = malloc(sizeof(*se) + keylen + tl);
  if (se == NULL)
    return NULL;
  se->keylen = keylen;
  se->hash = hash;
  memcpy(se->data, key, keylen);
  se->ti = se->data + keylen;
  memcpy(se->ti, ti, tl);
  se->md = meta_build(d, s);
  return se;
}

static void series_free(series_t *se) {
  if (se == NULL)
    return;
  meta_data_destroy(se->md);
  free(se);
}

/* entity_forget frees the series kept for e (e stays, empty); the ones
 * moved elsewhere are NULL. */
static void entity_forget(entity_t *e) {
  for (size_t i = 0; i < e->n; i++)
    series_free(e->s[i]);
  free(e->s);
  e->s = NULL;
  e->n = 0;
  usage_htable_free(&e->idx);
}

static int entity_eq(const void *ctx, size_t pos, const void *key) {
  const usage_dispatch_t *d = ctx;
  return strcmp(d->ents[pos]->name, key) == 0;
}

/* entity_get finds or adds the entity called name; NULL on ENOMEM. */
static entity_t *entity_get(usage_dispatch_t *d, const char *name) {
  uint64_t h = usage_hash_bytes(name, strlen(name));
  size_t pos = usage_htable_find(&d->ents_idx, h, entity_eq, d, name);
  if (pos != USAGE_HTABLE_NONE)
    return d->ents[pos];
  entity_t **a = realloc(d->ents, (d->ents_num + 1) * sizeof(*a));
  if (a == NULL)
    return NULL;
  d->ents = a;
  entity_t *e = calloc(1, sizeof(*e));
  if (e == NULL || (e->name = strdup(name)) == NULL ||
      usage_htable_insert(&d->ents_idx, h, d->ents_num) != 0) {
    if (e != NULL)
      free(e->name);
    free(e);
    return NULL;
  }
  usage_htable_init(&e->idx);
  d->ents[d->ents_num++] = e;
  return e;
}

usage_dispatch_t *usage_dispatch_create(cdtime_t interval,
                                        const unsigned char *skip) {
  usage_dispatch_t *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return NULL;
  pthread_mutex_init(&d->lock, NULL);
  d->interval = interval;
  d->meta_data = 1;
  if (skip != NULL)
    memcpy(d->skip, skip, sizeof(d->skip));
  usage_htable_init(&d->ents_idx);
  return d;
}

void usage_dispatch_destroy(usage_dispatch_t *d) {
  if (d == NULL)
    return;
  for (size_t i = 0; i < d->ents_num; i++) {
    entity_forget(d->ents[i]);
    free(d->ents[i]->name);
    free(d->ents[i]);
  }
  free(d->ents);
  usage_htable_free(&d->ents_idx);
  pthread_mutex_destroy(&d->lock);
  free(d);
}

void usage_dispatch_set_meta_data(usage_dispatch_t *d, int on) {
  d->meta_data = on;
}

size_t usage_dispatch_kept(usage_dispatch_t *d) {
  pthread_mutex_lock(&d->lock);
  size_t n = d->kept;
  pthread_mutex_unlock(&d->lock);
  return n;
}

/* dispatch_one hands one value list to collectd; vl holds the source's
 * fields, the rest is filled here. 0, or 1 when it failed or was skipped. */
static int dispatch_one(value_list_t *vl, const char *source,
                        const usage_sample_t *s, const char *ti,
                        meta_data_t *md) {
  const usage_family_t *f = &usage_families[s->family];
  value_t value;
  if (is_derive(f->ds_type)) {
    if (!derive_ok(s->value)) {
      /* Never a wrapped, plausible wrong figure: the series is missing
       * from collectd instead. */
      derive_refused(source, f->ds_type, ti, s->value);
      return 1;
    }
    value.derive = (derive_t)llround(s->value);
  } else {
    value.gauge = s->value;
  }
  vl->values = &value;
  vl->values_len = 1;
  /* both fit (types.db names; ti is built within DATA_MAX_NAME_LEN): a
   * copy of the bytes, not sstrncpy's padding of the whole field */
  memcpy(vl->type, f->ds_type, strlen(f->ds_type) + 1);
  memcpy(vl->type_instance, ti, strlen(ti) + 1);
  vl->meta = md;
  int failed = plugin_dispatch_values(vl) != 0;
  vl->values = NULL;
  vl->meta = NULL;
  return failed;
}

/* dispatch_unkept dispatches s with a type instance and meta data of its
 * own, freed afterwards. */
static int dispatch_unkept(const usage_dispatch_t *d, value_list_t *vl,
                           const char *source, const usage_sample_t *s) {
  char ti[DATA_MAX_NAME_LEN];
  usage_dispatch_type_instance(s, ti, sizeof(ti));
  meta_data_t *md = meta_build(d, s);
  int failed = dispatch_one(vl, source, s, ti, md);
  meta_data_destroy(md);
  return failed;
}

int usage_dispatch_batch(usage_dispatch_t *d, const usage_batch_t *b) {
  const char *source = usage_batch_source(b);
  if (source[0] == 0)
    return 0;
  value_list_t vl = VALUE_LIST_INIT;
  vl.interval = d->interval; /* workers have no plugin context to ask */
  sstrncpy(vl.plugin, "usage", sizeof(vl.plugin));
  sstrncpy(vl.plugin_instance, source, sizeof(vl.plugin_instance));

  size_t n = usage_batch_size(b);
  int failed = 0;
  pthread_mutex_lock(&d->lock);
  entity_t *e = entity_get(d, usage_batch_entity(b));
  series_t **keep = NULL;
  size_t kept = 0;
  usage_htable_t idx;
  usage_htable_init(&idx);
  if (e != NULL) {
    d->kept -= e->n;
    /* out of memory or too large: nothing kept this time */
    if (n > 0 && n <= USAGE_DISPATCH_KEEP_MAX &&
        (keep = calloc(n, sizeof(*keep))) != NULL &&
        usage_htable_reserve(&idx, n) != 0) {
      free(keep);
      keep = NULL;
    }
  }
  for (size_t i = 0; i < n; i++) {
    const usage_sample_t *s = usage_batch_sample(b, i);
    if (d->skip[s->family])
      continue;
    if (keep == NULL) {
      failed += dispatch_unkept(d, &vl, source, s);
      continue;
    }
    series_t *se = NULL;
    /* the usual case: the previous commit had the same series at the same
     * place (nothing to build or hash) */
    if (kept < e->n && e->s[kept] != NULL && series_matches(e->s[kept], s)) {
      se = e->s[kept];
      e->s[kept] = NULL; /* moved to this commit's set */
      keep[kept] = se;
      usage_htable_insert(&idx, se->hash, kept); /* reserved: cannot fail */
      kept++;
      failed += dispatch_one(&vl, source, s, se->ti, se->md);
      continue;
    }
    char key[KEY_MAX];
    size_t klen = sample_key(s, key);
    if (klen == 0) {
      failed += dispatch_unkept(d, &vl, source, s);
      continue;
    }
    key_t_ k = {key, klen};
    uint64_t h = usage_hash_bytes(key, klen);
    /* the same series twice in one batch: the same value list twice */
    size_t pos = usage_htable_find(&idx, h, series_eq, keep, &k);
    if (pos != USAGE_HTABLE_NONE) {
      se = keep[pos];
      failed += dispatch_one(&vl, source, s, se->ti, se->md);
      continue;
    }
    pos = usage_htable_find(&e->idx, h, series_eq, e->s, &k);
    if (pos != USAGE_HTABLE_NONE) {
      se = e->s[pos];
      e->s[pos] = NULL; /* moved to this commit's set */
    } else if ((se = series_new(d, s, key, klen, h)) == NULL) {
      failed += dispatch_unkept(d, &vl, source, s);
      continue;
    }
    keep[kept] = se;
    usage_htable_insert(&idx, h, kept); /* reserved: cannot fail */
    kept++;
    failed += dispatch_one(&vl, source, s, se->ti, se->md);
  }
  if (e != NULL) {
    /* what the previous commit had and this one has not: forgotten */
    entity_forget(e);
    if (keep != NULL && kept > 0) {
      e->s = keep;
      e->n = kept;
      e->idx = idx;
      d->kept += kept;
      keep = NULL;
    }
  }
  if (keep != NULL) {
    free(keep);
    usage_htable_free(&idx);
  }
  pthread_mutex_unlock(&d->lock);
  return failed;
}
