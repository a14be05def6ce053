/* SPDX-License-Identifier: MIT */
/* dispatch: the collectd side of a commit (see dispatch.h). Gauges go out
 * as GAUGE, counters as DERIVE where the type allows it, so collectd's own
 * threshold plugin can watch their rate; every label also travels as meta
 * data ("label:NAME") for writers that keep it. */
#include "collectd.h"
#include "plugin.h"
#include "utils/common/common.h"
#include "utils/metadata/meta_data.h"

#include "dispatch.h"
#include "families.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
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

int usage_dispatch_batch(const usage_batch_t *b, cdtime_t interval) {
  const char *source = usage_batch_source(b);
  if (source[0] == 0)
    return 0;
  int failed = 0;
  for (size_t i = 0; i < usage_batch_size(b); i++) {
    const usage_sample_t *s = usage_batch_sample(b, i);
    const usage_family_t *f = &usage_families[s->family];
    value_t value;
    value_list_t vl = VALUE_LIST_INIT;
    if (is_derive(f->ds_type)) {
      if (!derive_ok(s->value)) {
        /* Never a wrapped, plausible wrong figure: the series is missing
         * from collectd instead. */
        usage_dispatch_type_instance(s, vl.type_instance,
                                     sizeof(vl.type_instance));
        derive_refused(source, f->ds_type, vl.type_instance, s->value);
        failed++;
        continue;
      }
      value.derive = (derive_t)llround(s->value);
    } else {
      value.gauge = s->value;
    }
    vl.values = &value;
    vl.values_len = 1;
    vl.interval = interval; /* workers have no plugin context to ask */
    sstrncpy(vl.plugin, "usage", sizeof(vl.plugin));
    sstrncpy(vl.plugin_instance, source, sizeof(vl.plugin_instance));
    sstrncpy(vl.type, f->ds_type, sizeof(vl.type));
    usage_dispatch_type_instance(s, vl.type_instance, sizeof(vl.type_instance));
    meta_data_t *md = meta_data_create();
    if (md != NULL) {
      for (unsigned k = 0; k < s->nlabels; k++) {
        char key[64];
        snprintf(key, sizeof(key), "label:%s", s->labels[2 * k]);
        meta_data_add_string(md, key, s->labels[2 * k + 1]);
      }
      vl.meta = md;
    }
    if (plugin_dispatch_values(&vl) != 0)
      failed++;
    meta_data_destroy(md);
  }
  return failed;
}
