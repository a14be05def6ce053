/* SPDX-License-Identifier: MIT */
/* billing: telecom billing platform, customer usage data
 * (GET {URL}/customer-usage-data, bearer auth, paged). One entity, the
 * billing window: every page of a scrape is parsed with a streaming yajl
 * parser into pending per-group sums, which move into the committed
 * counters only when the whole page set arrived and parsed (and, with a
 * StateFile, after the new state is on disk). See billing.h. */
#include "api/billing.h"
#include "families.h"
#include "json.h"
#include "statefile.h"
#include "text.h"
#include "timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_parse.h>

typedef __int128 nano_t; /* 1e-9 units */

/* The quantities summed per group, in the order of the families. */
enum { Q_DATA = 0, Q_DURATION, Q_SELL, Q_BUY, NQ };
static const struct {
  const char *field;
  int family;
} quantities[NQ] = {
    {"dataQuantity", FAM_BILLING_DATA_BYTES},
    {"durationQuantity", FAM_BILLING_DURATION_SECONDS},
    {"sellPrice", FAM_BILLING_SELL_PRICE},
    {"buyPrice", FAM_BILLING_BUY_PRICE},
};

/* Record fields that may become labels, with their label names. */
static const struct {
  const char *field;
  const char *label;
} groupable[] = {
    {"customerId", "customer_id"},
    {"siteId", "site_id"},
    {"billRunId", "bill_run_id"},
    {"productReference", "product_reference"},
    {"serviceId", "service_id"},
    {"destination", "destination"},
    {"chargeGroupId", "charge_group_id"},
    {"callClass", "call_class"},
    {"timeBand", "time_band"},
    {"usageProductId", "usage_product_id"},
    {"usageDirection", "usage_direction"},
    {"isdn", "isdn"},
    {"supplierAccountId", "supplier_account_id"},
    {"fileName", "file_name"},
    {"parserName", "parser_name"},
    {"fileType", "file_type"},
    {"loadedDate", "loaded_date"},
};
#define NGROUPABLE (sizeof(groupable) / sizeof(*groupable))

static const char *const default_group_by[] = {"customerId", "callClass",
                                               "usageDirection"};

/* Documented filters and their value syntax. */
enum { FT_ID, FT_STRING, FT_DATE };
static const struct {
  const char *name;
  int type;
} filters[] = {
    {"customerId", FT_ID},      {"siteId", FT_ID},
    {"billRunId", FT_ID},       {"productReference", FT_STRING},
    {"serviceId", FT_STRING},   {"destination", FT_STRING},
    {"eventDateFrom", FT_DATE}, {"eventDateTo", FT_DATE},
};

static const struct {
  const char *name;
  uint64_t factor;
} units[] = {
    {"B", 1},      {"kB", 1000},     {"MB", 1000000},     {"GB", 1000000000},
    {"KiB", 1024}, {"MiB", 1048576}, {"GiB", 1073741824},
};

#define STATE_FORMAT "billing-state 1"
#define MAX_DEPTH 64
#define MAX_NANO ((nano_t)1000000000000000000LL * 1000000) /* 1e15 units */
#define ID_NONE INT64_MIN

/* ---- configuration helpers ---- */

int usage_billing_conf_default(usage_billing_conf_t *c) {
  memset(c, 0, sizeof(*c));
  c->page_size = USAGE_BILLING_DEFAULT_PAGE_SIZE;
  c->max_pages = USAGE_BILLING_DEFAULT_MAX_PAGES;
  c->lookback = USAGE_BILLING_DEFAULT_LOOKBACK;
  c->initial_lookback = USAGE_BILLING_DEFAULT_INITIAL_LOOKBACK;
  c->data_factor = 1000000;
  c->max_series = USAGE_BILLING_DEFAULT_MAX_SERIES;
  for (size_t i = 0; i < 3; i++) {
    c->group_by[i] = strdup(default_group_by[i]);
    if (c->group_by[i] == NULL) {
      usage_billing_conf_clear(c);
      return ENOMEM;
    }
    c->group_by_num++;
  }
  return 0;
}

void usage_billing_conf_clear(usage_billing_conf_t *c) {
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->filters_num; i++) {
    free(c->filter_names[i]);
    free(c->filter_values[i]);
  }
  free(c->filter_names);
  free(c->filter_values);
  for (size_t i = 0; i < c->group_by_num; i++)
    free(c->group_by[i]);
  free(c->state_file);
  memset(c, 0, sizeof(*c));
}

static int check_id_list(const char *v) {
  if (*v == 0)
    return EINVAL;
  for (const char *p = v; *p;) {
    const char *start = p;
    while (*p >= '0' && *p <= '9')
      p++;
    if (p == start || (p - start) > 18 || (*p != ',' && *p != 0))
      return EINVAL;
    if (*p == ',' && *++p == 0)
      return EINVAL;
  }
  return 0;
}

int usage_billing_filter_check(const char *name, const char *value,
                               const char **canonical, char *err,
                               size_t errlen) {
  if (strcasecmp(name, "excludeZeroValueRecords") == 0) {
    snprintf(err, errlen, "use the option ExcludeZeroValueRecords");
    return EINVAL;
  }
  if (strcasecmp(name, "page") == 0 || strcasecmp(name, "pageSize") == 0 ||
      strcasecmp(name, "sort") == 0 || strcasecmp(name, "fields") == 0) {
    snprintf(err, errlen,
             "\"%s\" is set by the plugin (paging, sorting and fields "
             "drive the exactly-once counting)",
             name);
    return EINVAL;
  }
  size_t i;
  for (i = 0; i < sizeof(filters) / sizeof(*filters); i++)
    if (strcasecmp(name, filters[i].name) == 0)
      break;
  if (i == sizeof(filters) / sizeof(*filters)) {
    snprintf(err, errlen,
             "unknown filter \"%s\" (expected customerId, siteId, billRunId, "
             "productReference, serviceId, destination, eventDateFrom or "
             "eventDateTo)",
             name);
    return EINVAL;
  }
  *canonical = filters[i].name;
  int64_t t;
  switch (filters[i].type) {
  case FT_ID:
    if (check_id_list(strncmp(value, "in:", 3) == 0 ? value + 3 : value)) {
      snprintf(err, errlen,
               "%s: expected an id or in:id,id,... (digits), got \"%s\"",
               filters[i].name, value);
      return EINVAL;
    }
    return 0;
  case FT_STRING: {
    const char *v = value;
    if (strncmp(v, "in:", 3) == 0)
      v += 3;
    else if (strncmp(v, "like:", 5) == 0)
      v += 5;
    if (*v == 0) {
      snprintf(err, errlen, "%s: expected x, in:x,y or like:x, got \"%s\"",
               filters[i].name, value);
      return EINVAL;
    }
    if (strncmp(value, "in:", 3) == 0 &&
        (strstr(value, ",,") || value[strlen(value) - 1] == ',' ||
         value[3] == ',')) {
      snprintf(err, errlen, "%s: empty value in \"%s\"", filters[i].name,
               value);
      return EINVAL;
    }
    return 0;
  }
  default: {
    const char *v = value;
    int lt = strncmp(v, "lt:", 3) == 0, gt = strncmp(v, "gt:", 3) == 0;
    if (lt || gt)
      v += 3;
    if (usage_parse_time_exact(v, strlen(v), &t) != 0) {
      snprintf(err, errlen,
               "%s: expected yyyy-MM-ddTHH:mm:ssZ, lt:yyyy-MM-ddTHH:mm:ssZ or "
               "gt:yyyy-MM-ddTHH:mm:ssZ, got \"%s\"",
               filters[i].name, value);
      return EINVAL;
    }
    if (lt && i == 6) {
      snprintf(err, errlen,
               "eventDateFrom: lt: cannot be combined with the incremental "
               "window (use eventDateTo)");
      return EINVAL;
    }
    return 0;
  }
  }
}

int usage_billing_unit_factor(const char *unit, uint64_t *factor) {
  for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++)
    if (strcmp(unit, units[i].name) == 0) {
      *factor = units[i].factor;
      return 0;
    }
  return EINVAL;
}

int usage_billing_groupby_label(const char *field, char *out, size_t size) {
  for (size_t i = 0; i < NGROUPABLE; i++)
    if (strcmp(field, groupable[i].field) == 0) {
      snprintf(out, size, "%s", groupable[i].label);
      return 0;
    }
  return EINVAL;
}

int usage_billing_query(const usage_billing_conf_t *c, int64_t from,
                        unsigned page, usage_buf_t *out) {
  usage_buf_printf(out,
                   "/customer-usage-data?page=%u&pageSize=%u"
                   "&sort=eventDate%%2Cid",
                   page, c->page_size);
  /* The window's lower bound, unless a configured eventDateFrom is later. */
  const char *user_from = NULL;
  for (size_t i = 0; i < c->filters_num; i++)
    if (strcmp(c->filter_names[i], "eventDateFrom") == 0) {
      const char *v = c->filter_values[i];
      int64_t t;
      if (usage_parse_time_exact(
              v + (strncmp(v, "gt:", 3) == 0 ? 3 : 0),
              strlen(v) - (strncmp(v, "gt:", 3) == 0 ? 3 : 0), &t) == 0 &&
          t >= from)
        user_from = v;
    }
  usage_buf_puts(out, "&eventDateFrom=");
  if (user_from != NULL) {
    usage_http_escape(out, user_from);
  } else {
    char ts[32];
    usage_format_time(from, ts);
    usage_buf_puts(out, ts);
  }
  for (size_t i = 0; i < c->filters_num; i++) {
    if (strcmp(c->filter_names[i], "eventDateFrom") == 0)
      continue;
    usage_buf_printf(out, "&%s=", c->filter_names[i]);
    usage_http_escape(out, c->filter_values[i]);
  }
  if (c->exclude_zero)
    usage_buf_puts(out, "&excludeZeroValueRecords=true");
  return out->failed;
}

/* ---- numbers ---- */

int usage_billing_parse_nano(const char *s, size_t len, nano_t *out) {
  size_t i = 0;
  int neg = 0, any = 0, sig = 0;
  int exp10 = 0;
  nano_t mant = 0;
  if (i < len && s[i] == '-') {
    neg = 1;
    i++;
  }
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
    any = 1;
    if (mant == 0 && s[i] == '0')
      continue;
    if (sig < 30) {
      mant = mant * 10 + (s[i] - '0');
      sig++;
    } else {
      exp10++;
    }
  }
  if (i < len && s[i] == '.') {
    i++;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
      any = 1;
      if (sig < 30) {
        if (mant != 0 || s[i] != '0')
          sig++;
        mant = mant * 10 + (s[i] - '0');
        exp10--;
      }
    }
  }
  if (!any)
    return EINVAL;
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    int eneg = 0, e = 0, edig = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
      eneg = s[i++] == '-';
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, edig++)
      if (e < 10000)
        e = e * 10 + (s[i] - '0');
    if (!edig)
      return EINVAL;
    exp10 += eneg ? -e : e;
  }
  if (i != len)
    return EINVAL;
  if (mant == 0) {
    *out = 0;
    return 0;
  }
  if (neg)
    return ERANGE;
  int shift = exp10 + 9;
  for (; shift > 0; shift--) {
    if (mant > MAX_NANO / 10)
      return ERANGE;
    mant *= 10;
  }
  for (; shift < 0 && mant != 0; shift++)
    mant /= 10;
  if (mant > MAX_NANO)
    return ERANGE;
  *out = mant;
  return 0;
}

/* parse_id reads an integer id from a number's or a string's text. */
static int parse_id(const char *s, size_t len, int64_t *out) {
  if (len == 0 || len > 19)
    return EINVAL;
  int neg = s[0] == '-';
  if (neg && len == 1)
    return EINVAL;
  int64_t v = 0;
  for (size_t i = neg; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return EINVAL;
    v = v * 10 + (s[i] - '0');
  }
  *out = neg ? -v : v;
  return 0;
}

static void nano_text(nano_t v, char *out, size_t size) {
  char tmp[48];
  size_t n = 0;
  int neg = v < 0;
  if (neg)
    v = -v;
  do {
    tmp[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v != 0 && n < sizeof(tmp));
  size_t k = 0;
  if (neg && k + 1 < size)
    out[k++] = '-';
  while (n > 0 && k + 1 < size)
    out[k++] = tmp[--n];
  out[k] = 0;
}

static int nano_parse_int(const char *s, nano_t *out) {
  if (*s == 0)
    return EINVAL;
  nano_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > ((nano_t)1 << 120))
      return EINVAL;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return 0;
}

/* ---- id sets: open addressing, id -> eventDate ---- */

typedef struct {
  int64_t id, ev;
} ident_t;

typedef struct {
  ident_t *slots;
  size_t cap, n; /* cap: 0 or a power of two */
} idset_t;

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

static ident_t *idset_find(const idset_t *s, int64_t id) {
  if (s->n == 0)
    return NULL;
  size_t mask = s->cap - 1;
  for (size_t i = mix64((uint64_t)id) & mask;; i = (i + 1) & mask) {
    if (s->slots[i].id == id)
      return &s->slots[i];
    if (s->slots[i].id == ID_NONE)
      return NULL;
  }
}

static int idset_init(idset_t *s, size_t cap) {
  size_t c = 64;
  while (c < cap)
    c *= 2;
  ident_t *p = malloc(c * sizeof(*p));
  if (p == NULL)
    return ENOMEM;
  for (size_t i = 0; i < c; i++)
    p[i].id = ID_NONE;
  free(s->slots);
  s->slots = p;
  s->cap = c;
  s->n = 0;
  return 0;
}

static void idset_insert_new(idset_t *s, int64_t id, int64_t ev) {
  size_t mask = s->cap - 1;
  size_t i = mix64((uint64_t)id) & mask;
  while (s->slots[i].id != ID_NONE)
    i = (i + 1) & mask;
  s->slots[i].id = id;
  s->slots[i].ev = ev;
  s->n++;
}

/* idset_put adds id (known to be absent). 0 or ENOMEM. */
static int idset_put(idset_t *s, int64_t id, int64_t ev) {
  if ((s->n + 1) * 10 > s->cap * 7) {
    idset_t bigger = {0};
    if (idset_init(&bigger, s->cap ? s->cap * 2 : 64) != 0)
      return ENOMEM;
    for (size_t i = 0; i < s->cap; i++)
      if (s->slots[i].id != ID_NONE)
        idset_insert_new(&bigger, s->slots[i].id, s->slots[i].ev);
    free(s->slots);
    *s = bigger;
  }
  idset_insert_new(s, id, ev);
  return 0;
}

static void idset_free(idset_t *s) {
  free(s->slots);
  memset(s, 0, sizeof(*s));
}

/* ---- the aggregator ---- */

typedef struct {
  char *key; /* label values, each NUL-terminated, concatenated */
  size_t keylen;
  uint64_t hash;
  uint64_t records, precords;
  nano_t sum[NQ], psum[NQ];
  int other; /* the overflow label set */
} group_t;

/* Slots a record field may feed. */
enum { F_ID = 0, F_EVENT, F_Q0, F_G0 = F_Q0 + NQ };

typedef struct {
  const char *name;
  size_t len;
  int slot;
} field_t;

struct usage_billing_s {
  const usage_billing_conf_t *conf;
  char labels[USAGE_BILLING_MAX_GROUPBY][48];
  field_t fields[2 + NQ + USAGE_BILLING_MAX_GROUPBY];
  size_t nfields;

  group_t *groups; /* [0, ncommitted) committed, then pending new ones */
  size_t ngroups, agroups, ncommitted;
  uint32_t *gmap; /* index + 1, 0 = empty */
  size_t gcap;
  long other_idx; /* -1: none */

  idset_t ids;  /* committed, eventDate >= window_start */
  idset_t pids; /* pending */
  int have_window;
  int64_t window_start;
  int have_newest;
  int64_t newest;
  uint64_t overflow, poverflow;
  uint64_t pinvalid;
  int have_pnewest;
  int64_t pnewest;
  double now;

  usage_buf_t vals, key; /* the record being parsed */
};

static uint64_t hash_bytes(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
  return h;
}

usage_billing_t *usage_billing_create(const usage_billing_conf_t *conf) {
  usage_billing_t *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return NULL;
  b->conf = conf;
  b->other_idx = -1;
  b->fields[b->nfields++] = (field_t){"id", 2, F_ID};
  b->fields[b->nfields++] = (field_t){"eventDate", 9, F_EVENT};
  for (int q = 0; q < NQ; q++)
    b->fields[b->nfields++] =
        (field_t){quantities[q].field, strlen(quantities[q].field), F_Q0 + q};
  for (size_t g = 0; g < conf->group_by_num; g++) {
    b->fields[b->nfields++] =
        (field_t){conf->group_by[g], strlen(conf->group_by[g]), F_G0 + (int)g};
    if (usage_billing_groupby_label(conf->group_by[g], b->labels[g],
                                    sizeof(b->labels[g])) != 0)
      snprintf(b->labels[g], sizeof(b->labels[g]), "%s", conf->group_by[g]);
  }
  usage_buf_init(&b->vals, 1 << 20);
  usage_buf_init(&b->key, 1 << 20);
  if (idset_init(&b->ids, 64) != 0 || idset_init(&b->pids, 64) != 0) {
    usage_billing_destroy(b);
    return NULL;
  }
  return b;
}

static void groups_free(usage_billing_t *b) {
  for (size_t i = 0; i < b->ngroups; i++)
    free(b->groups[i].key);
  free(b->groups);
  free(b->gmap);
  b->groups = NULL;
  b->gmap = NULL;
  b->ngroups = b->agroups = b->ncommitted = b->gcap = 0;
  b->other_idx = -1;
}

void usage_billing_destroy(usage_billing_t *b) {
  if (b == NULL)
    return;
  groups_free(b);
  idset_free(&b->ids);
  idset_free(&b->pids);
  usage_buf_free(&b->vals);
  usage_buf_free(&b->key);
  free(b);
}

static void gmap_insert(usage_billing_t *b, size_t idx) {
  size_t mask = b->gcap - 1;
  size_t i = b->groups[idx].hash & mask;
  while (b->gmap[i] != 0)
    i = (i + 1) & mask;
  b->gmap[i] = (uint32_t)idx + 1;
}

static int gmap_rebuild(usage_billing_t *b, size_t cap) {
  size_t c = 64;
  while (c < cap)
    c *= 2;
  uint32_t *m = calloc(c, sizeof(*m));
  if (m == NULL)
    return ENOMEM;
  free(b->gmap);
  b->gmap = m;
  b->gcap = c;
  for (size_t i = 0; i < b->ngroups; i++)
    if (!b->groups[i].other)
      gmap_insert(b, i);
  return 0;
}

/* group_add appends a label set (key copied). Its index, or -1 (ENOMEM). */
static long group_add(usage_billing_t *b, const char *key, size_t keylen,
                      uint64_t hash, int other) {
  if (b->ngroups == b->agroups) {
    size_t n = b->agroups ? b->agroups * 2 : 16;
    group_t *p = realloc(b->groups, n * sizeof(*p));
    if (p == NULL)
      return -1;
    b->groups = p;
    b->agroups = n;
  }
  if ((b->ngroups + 1) * 2 > b->gcap && gmap_rebuild(b, b->gcap * 2) != 0)
    return -1;
  group_t *g = &b->groups[b->ngroups];
  memset(g, 0, sizeof(*g));
  g->key = malloc(keylen ? keylen : 1);
  if (g->key == NULL)
    return -1;
  memcpy(g->key, key, keylen);
  g->keylen = keylen;
  g->hash = hash;
  g->other = other;
  long idx = (long)b->ngroups++;
  if (other)
    b->other_idx = idx;
  else
    gmap_insert(b, (size_t)idx);
  return idx;
}

static long group_find(const usage_billing_t *b, const char *key, size_t keylen,
                       uint64_t hash) {
  if (b->gcap == 0)
    return -1;
  size_t mask = b->gcap - 1;
  for (size_t i = hash & mask; b->gmap[i] != 0; i = (i + 1) & mask) {
    const group_t *g = &b->groups[b->gmap[i] - 1];
    if (g->hash == hash && g->keylen == keylen &&
        memcmp(g->key, key, keylen) == 0)
      return (long)b->gmap[i] - 1;
  }
  return -1;
}

/* group_for returns the label set of a record, creating it (or falling
 * back to "other" past MaxSeries). -1 on ENOMEM. */
static long group_for(usage_billing_t *b, const char *key, size_t keylen) {
  uint64_t h = hash_bytes(key, keylen);
  long idx = group_find(b, key, keylen, h);
  if (idx >= 0)
    return idx;
  size_t real = b->ngroups - (b->other_idx >= 0 ? 1 : 0);
  if (real < b->conf->max_series)
    return group_add(b, key, keylen, h, 0);
  b->poverflow++;
  if (b->other_idx >= 0)
    return b->other_idx;
  char other[USAGE_BILLING_MAX_GROUPBY * 6];
  size_t n = 0;
  for (size_t i = 0; i < b->conf->group_by_num; i++) {
    memcpy(other + n, "other", 6);
    n += 6;
  }
  return group_add(b, other, n, 0, 1);
}

int64_t usage_billing_begin(usage_billing_t *b, double now) {
  usage_billing_abort(b);
  b->now = now;
  if (!b->have_window) {
    b->window_start = (int64_t)now - b->conf->initial_lookback;
    b->have_window = 1;
  }
  return b->window_start;
}

void usage_billing_abort(usage_billing_t *b) {
  for (size_t i = b->ncommitted; i < b->ngroups; i++)
    free(b->groups[i].key);
  int dropped = b->ngroups != b->ncommitted;
  b->ngroups = b->ncommitted;
  if (b->other_idx >= (long)b->ngroups)
    b->other_idx = -1;
  for (size_t i = 0; i < b->ngroups; i++) {
    b->groups[i].precords = 0;
    memset(b->groups[i].psum, 0, sizeof(b->groups[i].psum));
  }
  if (dropped)
    gmap_rebuild(b, b->gcap);
  if (b->pids.n > 0)
    idset_init(&b->pids, 64);
  b->poverflow = 0;
  b->pinvalid = 0;
  b->have_pnewest = 0;
}

/* next_window computes the window after a commit of the pending figures. */
static void next_window(const usage_billing_t *b, int64_t *ws, int *have_newest,
                        int64_t *newest) {
  *have_newest = b->have_newest;
  *newest = b->newest;
  if (b->have_pnewest && (!*have_newest || b->pnewest > *newest)) {
    *newest = b->pnewest;
    *have_newest = 1;
  }
  *ws = b->window_start;
  if (*have_newest) {
    /* A record dated in the future must not move the window past now. */
    int64_t top = *newest;
    if (b->now > 0 && top > (int64_t)b->now)
      top = (int64_t)b->now;
    if (top - b->conf->lookback > *ws)
      *ws = top - b->conf->lookback;
  }
}

uint64_t usage_billing_commit(usage_billing_t *b) {
  int64_t ws, newest;
  int have_newest;
  next_window(b, &ws, &have_newest, &newest);
  for (size_t i = 0; i < b->ngroups; i++) {
    group_t *g = &b->groups[i];
    g->records += g->precords;
    for (int q = 0; q < NQ; q++)
      g->sum[q] += g->psum[q];
    g->precords = 0;
    memset(g->psum, 0, sizeof(g->psum));
  }
  b->ncommitted = b->ngroups;
  b->overflow += b->poverflow;
  /* Keep the ids the next window can still return, and only those. */
  size_t keep = 0;
  for (size_t i = 0; i < b->ids.cap; i++)
    keep += b->ids.slots[i].id != ID_NONE && b->ids.slots[i].ev >= ws;
  for (size_t i = 0; i < b->pids.cap; i++)
    keep += b->pids.slots[i].id != ID_NONE && b->pids.slots[i].ev >= ws;
  idset_t fresh = {0};
  if (idset_init(&fresh, keep * 2) == 0) {
    for (size_t i = 0; i < b->ids.cap; i++)
      if (b->ids.slots[i].id != ID_NONE && b->ids.slots[i].ev >= ws)
        idset_insert_new(&fresh, b->ids.slots[i].id, b->ids.slots[i].ev);
    for (size_t i = 0; i < b->pids.cap; i++)
      if (b->pids.slots[i].id != ID_NONE && b->pids.slots[i].ev >= ws)
        idset_insert_new(&fresh, b->pids.slots[i].id, b->pids.slots[i].ev);
    idset_free(&b->ids);
    b->ids = fresh;
  } else {
    /* Out of memory: keep every id (never count one twice). */
    for (size_t i = 0; i < b->pids.cap; i++)
      if (b->pids.slots[i].id != ID_NONE)
        idset_put(&b->ids, b->pids.slots[i].id, b->pids.slots[i].ev);
  }
  idset_init(&b->pids, 64);
  b->window_start = ws;
  b->have_window = 1;
  b->have_newest = have_newest;
  b->newest = newest;
  uint64_t invalid = b->pinvalid;
  b->poverflow = 0;
  b->pinvalid = 0;
  b->have_pnewest = 0;
  return invalid;
}

size_t usage_billing_groups(const usage_billing_t *b) { return b->ncommitted; }
size_t usage_billing_window_ids(const usage_billing_t *b) { return b->ids.n; }
int64_t usage_billing_window_start(const usage_billing_t *b) {
  return b->window_start;
}

/* ---- the streaming page parser ---- */

typedef struct {
  usage_billing_t *b;
  usage_billing_page_t *res;
  unsigned depth;
  int top_seen, top_done;
  int field; /* slot of the current member at depth 2, -1 = ignored */
  /* the record being read: 0 missing, 1 ok, 2 invalid */
  int id_state, ev_state, q_state[NQ];
  int64_t id, ev;
  nano_t q[NQ];
  size_t goff[USAGE_BILLING_MAX_GROUPBY], glen[USAGE_BILLING_MAX_GROUPBY];
  int gset[USAGE_BILLING_MAX_GROUPBY];
  unsigned ginvalid;
} pctx_t;

static int fail(pctx_t *p, const char *msg) {
  if (p->res->error[0] == 0)
    snprintf(p->res->error, sizeof(p->res->error), "%s", msg);
  return 0;
}

static int set_group(pctx_t *p, int g, const char *s, size_t len) {
  usage_buf_t *v = &p->b->vals;
  p->goff[g] = v->len;
  p->glen[g] = len;
  p->gset[g] = 1;
  if (usage_buf_append(v, s, len) != 0)
    return fail(p, "record field too large or out of memory");
  return 1;
}

/* value_bad marks the current member invalid (wrong type). */
static int value_bad(pctx_t *p) {
  int f = p->field;
  if (f == F_ID)
    p->id_state = 2;
  else if (f == F_EVENT)
    p->ev_state = 2;
  else if (f >= F_Q0 && f < F_G0)
    p->q_state[f - F_Q0] = 2;
  else if (f >= F_G0) {
    p->ginvalid++;
    return set_group(p, f - F_G0, "", 0);
  }
  return 1;
}

static int scalar_at_top(pctx_t *p) {
  if (p->depth == 0)
    return fail(p, "body is not a JSON array of records");
  return fail(p, "a record is not a JSON object");
}

static int cb_null(void *ctx) {
  pctx_t *p = ctx;
  if (p->depth < 2)
    return scalar_at_top(p);
  if (p->depth > 2 || p->field < 0)
    return 1;
  if (p->field >= F_G0)
    return set_group(p, p->field - F_G0, "", 0);
  return 1; /* null = missing */
}

static int cb_boolean(void *ctx, int v) {
  pctx_t *p = ctx;
  if (p->depth < 2)
    return scalar_at_top(p);
  if (p->depth > 2 || p->field < 0)
    return 1;
  if (p->field >= F_G0)
    return set_group(p, p->field - F_G0, v ? "true" : "false", v ? 4 : 5);
  return value_bad(p);
}

static int cb_number(void *ctx, const char *s, size_t len) {
  pctx_t *p = ctx;
  if (p->depth < 2)
    return scalar_at_top(p);
  if (p->depth > 2 || p->field < 0)
    return 1;
  int f = p->field;
  if (f == F_ID) {
    p->id_state = parse_id(s, len, &p->id) == 0 && p->id != ID_NONE ? 1 : 2;
  } else if (f >= F_Q0 && f < F_G0) {
    p->q_state[f - F_Q0] =
        usage_billing_parse_nano(s, len, &p->q[f - F_Q0]) == 0 ? 1 : 2;
  } else if (f >= F_G0) {
    return set_group(p, f - F_G0, s, len);
  } else {
    return value_bad(p);
  }
  return 1;
}

static int cb_string(void *ctx, const unsigned char *us, size_t len) {
  pctx_t *p = ctx;
  const char *s = (const char *)us;
  if (p->depth < 2)
    return scalar_at_top(p);
  if (p->depth > 2 || p->field < 0)
    return 1;
  int f = p->field;
  if (f == F_ID) {
    p->id_state = parse_id(s, len, &p->id) == 0 && p->id != ID_NONE ? 1 : 2;
  } else if (f == F_EVENT) {
    if (usage_parse_time_exact(s, len, &p->ev) == 0) {
      p->ev_state = 1;
    } else {
      char tmp[64];
      double t;
      p->ev_state = 2;
      if (len < sizeof(tmp)) {
        memcpy(tmp, s, len);
        tmp[len] = 0;
        if (usage_parse_time(tmp, &t) == 0 && t > -1e15 && t < 1e15) {
          p->ev = (int64_t)t - (t < (double)(int64_t)t);
          p->ev_state = 1;
        }
      }
    }
  } else if (f >= F_G0) {
    return set_group(p, f - F_G0, s, len);
  } else {
    return value_bad(p); /* a quantity sent as a string */
  }
  return 1;
}

static void record_reset(pctx_t *p) {
  p->id_state = p->ev_state = 0;
  memset(p->q_state, 0, sizeof(p->q_state));
  memset(p->gset, 0, sizeof(p->gset));
  p->ginvalid = 0;
  p->field = -1;
  usage_buf_reset(&p->b->vals);
}

static int cb_start_map(void *ctx) {
  pctx_t *p = ctx;
  if (p->depth == 0)
    return scalar_at_top(p);
  if (p->depth == 1)
    record_reset(p);
  else if (p->depth == 2 && p->field >= 0 && !value_bad(p))
    return 0;
  if (++p->depth > MAX_DEPTH)
    return fail(p, "nesting too deep");
  return 1;
}

static int cb_map_key(void *ctx, const unsigned char *key, size_t len) {
  pctx_t *p = ctx;
  if (p->depth != 2)
    return 1;
  p->field = -1;
  const field_t *f = p->b->fields;
  for (size_t i = 0; i < p->b->nfields; i++)
    if (f[i].len == len && memcmp(f[i].name, key, len) == 0) {
      p->field = f[i].slot;
      break;
    }
  return 1;
}

/* finish_record aggregates the record just closed into the pending sums. */
static int finish_record(pctx_t *p) {
  usage_billing_t *b = p->b;
  usage_billing_page_t *res = p->res;
  res->records++;
  res->ids_hash =
      mix64(res->ids_hash ^ (uint64_t)(p->id_state == 1 ? p->id : -1));
  if (p->id_state != 1 || p->ev_state != 1) {
    res->invalid++;
    b->pinvalid++;
    return 1;
  }
  if (p->ev < b->window_start)
    return 1; /* outside the window: counted before it moved, or never */
  if (idset_find(&b->ids, p->id) != NULL ||
      idset_find(&b->pids, p->id) != NULL) {
    res->duplicates++;
    return 1;
  }
  usage_buf_t *k = &b->key;
  usage_buf_reset(k);
  for (size_t g = 0; g < b->conf->group_by_num; g++) {
    if (p->gset[g])
      usage_buf_append(k, b->vals.data + p->goff[g], p->glen[g]);
    usage_buf_putc(k, 0);
  }
  if (k->failed)
    return fail(p, "out of memory");
  long gi = group_for(b, k->data ? k->data : "", k->len);
  if (gi < 0 || idset_put(&b->pids, p->id, p->ev) != 0)
    return fail(p, "out of memory");
  group_t *g = &b->groups[gi];
  g->precords++;
  unsigned invalid = p->ginvalid;
  for (int q = 0; q < NQ; q++) {
    if (p->q_state[q] != 1) {
      invalid++;
      continue;
    }
    g->psum[q] +=
        q == Q_DATA ? p->q[q] * (nano_t)b->conf->data_factor : p->q[q];
  }
  res->invalid += invalid;
  b->pinvalid += invalid;
  if (!b->have_pnewest || p->ev > b->pnewest) {
    b->pnewest = p->ev;
    b->have_pnewest = 1;
  }
  res->counted++;
  return 1;
}

static int cb_end_map(void *ctx) {
  pctx_t *p = ctx;
  p->depth--;
  if (p->depth == 1)
    return finish_record(p);
  return 1;
}

static int cb_start_array(void *ctx) {
  pctx_t *p = ctx;
  if (p->depth == 0) {
    if (p->top_seen)
      return fail(p, "more than one JSON value");
    p->top_seen = 1;
  } else if (p->depth == 1) {
    return scalar_at_top(p);
  } else if (p->depth == 2 && p->field >= 0 && !value_bad(p)) {
    return 0;
  }
  if (++p->depth > MAX_DEPTH)
    return fail(p, "nesting too deep");
  return 1;
}

static int cb_end_array(void *ctx) {
  pctx_t *p = ctx;
  if (--p->depth == 0)
    p->top_done = 1;
  return 1;
}

static const yajl_callbacks page_callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end_map,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end_array,
};

int usage_billing_page(usage_billing_t *b, const char *body, size_t len,
                       usage_billing_page_t *res) {
  memset(res, 0, sizeof(*res));
  pctx_t p = {.b = b, .res = res, .field = -1};
  yajl_handle h = yajl_alloc(&page_callbacks, NULL, &p);
  if (h == NULL) {
    snprintf(res->error, sizeof(res->error), "out of memory");
    return ENOMEM;
  }
  yajl_status st = yajl_parse(h, (const unsigned char *)body, len);
  int at_end = 0;
  if (st == yajl_status_ok) {
    at_end = 1;
    st = yajl_complete_parse(h);
  }
  int ret = 0;
  if (st != yajl_status_ok && at_end && res->error[0] == 0) {
    snprintf(res->error, sizeof(res->error),
             "truncated body (%zu bytes end inside the JSON value)", len);
    ret = EINVAL;
  } else if (st != yajl_status_ok) {
    if (res->error[0] == 0) {
      unsigned char *msg =
          yajl_get_error(h, 0, (const unsigned char *)body, len);
      char *nl = msg ? strchr((char *)msg, '\n') : NULL;
      if (nl)
        *nl = 0;
      snprintf(
          res->error, sizeof(res->error), "invalid JSON at byte %zu of %zu: %s",
          yajl_get_bytes_consumed(h), len, msg ? (char *)msg : "parse error");
      if (msg)
        yajl_free_error(h, msg);
    }
    ret = strcmp(res->error, "out of memory") == 0 ? ENOMEM : EINVAL;
  } else if (!p.top_done) {
    snprintf(res->error, sizeof(res->error),
             len == 0 ? "empty body" : "truncated body (%zu bytes)", len);
    ret = EINVAL;
  }
  yajl_free(h);
  return ret;
}

/* ---- state ---- */

/* put_value writes a label value as "=" and percent-encoded bytes. */
static void put_value(usage_buf_t *out, const char *v) {
  usage_buf_putc(out, ' ');
  usage_buf_putc(out, '=');
  for (; *v; v++) {
    unsigned char c = (unsigned char)*v;
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':')
      usage_buf_putc(out, (char)c);
    else
      usage_buf_printf(out, "%%%02X", c);
  }
}

int usage_billing_serialize(const usage_billing_t *b, usage_buf_t *out) {
  int64_t ws, newest;
  int have_newest;
  next_window(b, &ws, &have_newest, &newest);
  usage_buf_printf(out, STATE_FORMAT "\ngroupby");
  for (size_t g = 0; g < b->conf->group_by_num; g++)
    usage_buf_printf(out, "%s%s", g ? "," : " ", b->conf->group_by[g]);
  usage_buf_printf(out, "\nwindow_start %" PRId64 "\n", ws);
  if (have_newest)
    usage_buf_printf(out, "newest %" PRId64 "\n", newest);
  usage_buf_printf(out, "overflow %" PRIu64 "\n", b->overflow + b->poverflow);
  for (size_t i = 0; i < b->ngroups; i++) {
    const group_t *g = &b->groups[i];
    usage_buf_printf(out, "group %d %" PRIu64, g->other,
                     g->records + g->precords);
    for (int q = 0; q < NQ; q++) {
      char num[64];
      nano_text(g->sum[q] + g->psum[q], num, sizeof(num));
      usage_buf_printf(out, " %s", num);
    }
    const char *v = g->key;
    for (size_t k = 0; k < b->conf->group_by_num; k++) {
      put_value(out, v);
      v += strlen(v) + 1;
    }
    usage_buf_putc(out, '\n');
  }
  size_t nids = 0;
  const idset_t *sets[2] = {&b->ids, &b->pids};
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; i < sets[s]->cap; i++)
      if (sets[s]->slots[i].id != ID_NONE && sets[s]->slots[i].ev >= ws) {
        usage_buf_printf(out, "id %" PRId64 " %" PRId64 "\n",
                         sets[s]->slots[i].id, sets[s]->slots[i].ev);
        nids++;
      }
  usage_buf_printf(out, "end %zu %zu\n", b->ngroups, nids);
  return out->failed;
}

static int parse_i64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*s == 0 || *end != 0 || errno != 0 || v == LLONG_MIN)
    return EINVAL;
  *out = v;
  return 0;
}

static int unescape_value(const char *s, usage_buf_t *out) {
  if (*s != '=')
    return EINVAL;
  for (s++; *s; s++) {
    if (*s == '%') {
      int hi, lo;
      if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
        return EINVAL;
      hi = isdigit((unsigned char)s[1])
               ? s[1] - '0'
               : tolower((unsigned char)s[1]) - 'a' + 10;
      lo = isdigit((unsigned char)s[2])
               ? s[2] - '0'
               : tolower((unsigned char)s[2]) - 'a' + 10;
      if (hi * 16 + lo == 0)
        return EINVAL;
      usage_buf_putc(out, (char)(hi * 16 + lo));
      s += 2;
    } else {
      usage_buf_putc(out, *s);
    }
  }
  usage_buf_putc(out, 0);
  return out->failed ? ENOMEM : 0;
}

/* restore_line applies one line of a state body to the fresh aggregator t. */
static int restore_line(usage_billing_t *t, char *line, int *seen_groupby,
                        int *groups_ok, int *have_ws, size_t *ngroups,
                        size_t *nids, int *ended, char *err, size_t errlen) {
  char *words[4 + NQ + USAGE_BILLING_MAX_GROUPBY];
  size_t n = 0;
  const size_t max = sizeof(words) / sizeof(*words);
  for (char *save = NULL, *w = strtok_r(line, " ", &save); w != NULL;
       w = strtok_r(NULL, " ", &save)) {
    if (n == max) {
      snprintf(err, errlen, "too many words");
      return EINVAL;
    }
    words[n++] = w;
  }
  if (n == 0 || *ended) {
    snprintf(err, errlen, *ended ? "data after the end line" : "empty line");
    return EINVAL;
  }
  const char *k = words[0];
  int64_t a, c;
  if (strcmp(k, "groupby") == 0) {
    if (*seen_groupby || n > 2) {
      snprintf(err, errlen, "bad groupby line");
      return EINVAL;
    }
    *seen_groupby = 1;
    char want[1024] = "";
    size_t len = 0;
    for (size_t g = 0; g < t->conf->group_by_num && len < sizeof(want); g++)
      len += (size_t)snprintf(want + len, sizeof(want) - len, "%s%s",
                              g ? "," : "", t->conf->group_by[g]);
    *groups_ok = strcmp(n == 2 ? words[1] : "", want) == 0;
    return 0;
  }
  if (strcmp(k, "window_start") == 0 && n == 2 && !*have_ws &&
      parse_i64(words[1], &a) == 0) {
    t->window_start = a;
    t->have_window = *have_ws = 1;
    return 0;
  }
  if (strcmp(k, "newest") == 0 && n == 2 && !t->have_newest &&
      parse_i64(words[1], &a) == 0) {
    t->newest = a;
    t->have_newest = 1;
    return 0;
  }
  if (strcmp(k, "overflow") == 0 && n == 2 && parse_i64(words[1], &a) == 0 &&
      a >= 0) {
    t->overflow = (uint64_t)a;
    return 0;
  }
  if (strcmp(k, "group") == 0 && *seen_groupby) {
    (*ngroups)++;
    if (!*groups_ok)
      return 0;
    nano_t sums[NQ];
    int64_t other, records;
    if (n != 3 + NQ + t->conf->group_by_num ||
        parse_i64(words[1], &other) != 0 || other < 0 || other > 1 ||
        parse_i64(words[2], &records) != 0 || records < 0) {
      snprintf(err, errlen, "bad group line");
      return EINVAL;
    }
    for (int q = 0; q < NQ; q++)
      if (nano_parse_int(words[3 + q], &sums[q]) != 0) {
        snprintf(err, errlen, "bad number in a group line");
        return EINVAL;
      }
    usage_buf_t *key = &t->key;
    usage_buf_reset(key);
    for (size_t g = 0; g < t->conf->group_by_num; g++)
      if (unescape_value(words[3 + NQ + g], key) != 0) {
        snprintf(err, errlen, "bad label value in a group line");
        return EINVAL;
      }
    const char *kd = key->data ? key->data : "";
    uint64_t h = other ? 0 : hash_bytes(kd, key->len);
    if ((other && t->other_idx >= 0) ||
        (!other && group_find(t, kd, key->len, h) >= 0)) {
      snprintf(err, errlen, "label set given twice");
      return EINVAL;
    }
    long gi = group_add(t, kd, key->len, h, (int)other);
    if (gi < 0) {
      snprintf(err, errlen, "out of memory");
      return ENOMEM;
    }
    t->groups[gi].records = (uint64_t)records;
    memcpy(t->groups[gi].sum, sums, sizeof(sums));
    t->ncommitted = t->ngroups;
    return 0;
  }
  if (strcmp(k, "id") == 0 && n == 3 && parse_i64(words[1], &a) == 0 &&
      parse_i64(words[2], &c) == 0) {
    if (idset_find(&t->ids, a) != NULL) {
      snprintf(err, errlen, "id %" PRId64 " given twice", a);
      return EINVAL;
    }
    if (idset_put(&t->ids, a, c) != 0) {
      snprintf(err, errlen, "out of memory");
      return ENOMEM;
    }
    (*nids)++;
    return 0;
  }
  if (strcmp(k, "end") == 0 && n == 3 && parse_i64(words[1], &a) == 0 &&
      parse_i64(words[2], &c) == 0) {
    if ((size_t)a != *ngroups || (size_t)c != *nids) {
      snprintf(err, errlen, "the end line does not match the contents");
      return EINVAL;
    }
    *ended = 1;
    return 0;
  }
  snprintf(err, errlen, "unexpected \"%.40s\" line", k);
  return EINVAL;
}

int usage_billing_restore(usage_billing_t *b, const char *data, size_t len,
                          int *groups_dropped, char *err, size_t errlen) {
  *groups_dropped = 0;
  usage_billing_t *t = usage_billing_create(b->conf);
  char *copy = malloc(len + 1);
  if (t == NULL || copy == NULL) {
    usage_billing_destroy(t);
    free(copy);
    snprintf(err, errlen, "out of memory");
    return ENOMEM;
  }
  memcpy(copy, data, len);
  copy[len] = 0;
  int ret = 0, seen_groupby = 0, groups_ok = 0, have_ws = 0, ended = 0;
  size_t ngroups = 0, nids = 0, lineno = 1;
  char *p = copy;
  char *nl = strchr(p, '\n');
  if (memchr(copy, 0, len) != NULL || nl == NULL ||
      (size_t)(nl - p) != strlen(STATE_FORMAT) ||
      strncmp(p, STATE_FORMAT, strlen(STATE_FORMAT)) != 0) {
    snprintf(err, errlen, "not a billing state of format 1");
    ret = EINVAL;
    goto out;
  }
  p = nl + 1;
  char lerr[128] = "";
  while (*p) {
    lineno++;
    nl = strchr(p, '\n');
    if (nl == NULL) {
      snprintf(err, errlen, "line %zu: unterminated (truncated file)", lineno);
      ret = EINVAL;
      goto out;
    }
    *nl = 0;
    ret = restore_line(t, p, &seen_groupby, &groups_ok, &have_ws, &ngroups,
                       &nids, &ended, lerr, sizeof(lerr));
    if (ret != 0) {
      snprintf(err, errlen, "line %zu: %s", lineno, lerr);
      goto out;
    }
    p = nl + 1;
  }
  if (!ended || !have_ws || !seen_groupby) {
    snprintf(err, errlen, "incomplete state (no end line)");
    ret = EINVAL;
    goto out;
  }
  *groups_dropped = !groups_ok && ngroups > 0;
  /* Swap: b takes t's contents, t takes b's old ones and is destroyed. */
  usage_billing_t tmp = *b;
  *b = *t;
  *t = tmp;
out:
  usage_billing_destroy(t);
  free(copy);
  return ret;
}

int usage_billing_samples(const usage_billing_t *b, usage_batch_t *batch) {
  const char *labels[2 * USAGE_MAX_LABELS];
  size_t nl = b->conf->group_by_num;
  for (size_t i = 0; i < b->ncommitted; i++) {
    const group_t *g = &b->groups[i];
    const char *v = g->key;
    for (size_t k = 0; k < nl; k++) {
      labels[2 * k] = b->labels[k];
      labels[2 * k + 1] = v;
      v += strlen(v) + 1;
    }
    int rc = usage_batch_addv(batch, FAM_BILLING_RECORDS, (double)g->records,
                              (unsigned)nl, labels);
    for (int q = 0; q < NQ && rc == 0; q++)
      rc = usage_batch_addv(batch, quantities[q].family,
                            (double)g->sum[q] / 1e9, (unsigned)nl, labels);
    if (rc != 0)
      return rc;
  }
  return usage_batch_add(batch, FAM_BILLING_OVERFLOW_RECORDS,
                         (double)b->overflow, NULL);
}

/* ---- the vendor ---- */

typedef struct {
  usage_billing_t *agg;
  usage_buf_t query;
  usage_buf_t state;
} billing_state_t;

static void *billing_conf_create(void) {
  usage_billing_conf_t *c = calloc(1, sizeof(*c));
  if (c != NULL && usage_billing_conf_default(c) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

static void billing_conf_destroy(void *p) {
  usage_billing_conf_clear(p);
  free(p);
}

/* count_more adds n - 1 to a reason usage_source_error has just counted
 * once (one log line for many invalid values). */
static void count_more(usage_source_t *s, const char *reason, uint64_t n) {
  if (n > 1)
    usage_source_count(s, reason, n - 1);
}

static void billing_shutdown(usage_source_t *s);

/* billing_load_state restores the StateFile. A missing or corrupt file
 * means a fresh start; a file that exists but cannot be read fails the
 * source (counting the window again would count records twice). */
static int billing_load_state(usage_source_t *s, billing_state_t *st) {
  usage_billing_conf_t *c = usage_source_conf(s)->kind_conf;
  char *data = NULL;
  size_t len = 0;
  char err[512];
  int rc =
      usage_state_load(c->state_file, "billing", usage_source_conf(s)->name,
                       &data, &len, err, sizeof(err));
  if (rc == ENOENT) {
    usage_source_log(
        s, USAGE_LOG_INFO,
        "no state file %s yet: the first scrape looks back %" PRId64 " s",
        c->state_file, c->initial_lookback);
    return 0;
  }
  if (rc == EINVAL) {
    usage_source_log(s, USAGE_LOG_ERR, "state file: %s; starting fresh", err);
    return 0;
  }
  if (rc != 0) {
    usage_source_log(s, USAGE_LOG_ERR,
                     "state file %s cannot be read (%s): not starting, so "
                     "that no record is counted twice",
                     c->state_file, err);
    return rc;
  }
  int dropped = 0;
  char why[256];
  rc = usage_billing_restore(st->agg, data, len, &dropped, why, sizeof(why));
  free(data);
  if (rc != 0) {
    char what[300];
    snprintf(what, sizeof(what), "malformed billing state (%s)", why);
    usage_state_set_aside(c->state_file, what, err, sizeof(err));
    usage_source_log(s, USAGE_LOG_ERR, "state file: %s; starting fresh", err);
    return 0;
  }
  if (dropped)
    usage_source_log(s, USAGE_LOG_WARNING,
                     "state file %s was written with another GroupBy: the "
                     "counters restart, the de-duplication window is kept",
                     c->state_file);
  usage_source_log(s, USAGE_LOG_INFO,
                   "state restored from %s: %zu label sets, %zu ids in the "
                   "window",
                   c->state_file, usage_billing_groups(st->agg),
                   usage_billing_window_ids(st->agg));
  return 0;
}

static int billing_init(usage_source_t *s) {
  usage_billing_conf_t *c = usage_source_conf(s)->kind_conf;
  billing_state_t *st = calloc(1, sizeof(*st));
  if (st == NULL)
    return ENOMEM;
  st->agg = usage_billing_create(c);
  if (st->agg == NULL) {
    free(st);
    return ENOMEM;
  }
  usage_buf_init(&st->query, 64 * 1024);
  usage_buf_init(&st->state, 0);
  usage_source_set_state(s, st);
  int rc = c->state_file != NULL ? billing_load_state(s, st) : 0;
  if (rc != 0) {
    billing_shutdown(s);
    return rc;
  }
  return 0;
}

static void billing_shutdown(usage_source_t *s) {
  billing_state_t *st = usage_source_state(s);
  if (st == NULL)
    return;
  usage_billing_destroy(st->agg);
  usage_buf_free(&st->query);
  usage_buf_free(&st->state);
  free(st);
  usage_source_set_state(s, NULL);
}

static void api_message(const usage_http_resp_t *resp, char *out, size_t size) {
  char err[64];
  out[0] = 0;
  usage_json_t *root =
      usage_json_parse(resp->body, resp->len, 0, err, sizeof(err));
  const char *m = usage_json_str(root, "message");
  if (m == NULL)
    m = usage_json_str(root, "error");
  usage_text_clean(out, size, m);
  usage_json_free(root);
}

#define WINDOW_KEY "billing window"

/* billing_fetch requests and parses every page of the window into the
 * pending figures. 0, or -1 after reporting the failure. */
static int billing_fetch(usage_source_t *s, billing_state_t *st, int64_t from,
                         size_t *records) {
  usage_billing_conf_t *c = usage_source_conf(s)->kind_conf;
  const char *url = usage_source_conf(s)->http.url;
  uint64_t prev_hash = 0;
  size_t prev_n = 0;
  *records = 0;
  for (unsigned page = 1; page <= c->max_pages; page++) {
    usage_buf_reset(&st->query);
    if (usage_billing_query(c, from, page, &st->query) != 0) {
      usage_source_error(s, "parse", 0, WINDOW_KEY,
                         "cannot build the request: out of memory");
      return -1;
    }
    const char *path = st->query.data;
    usage_http_resp_t resp;
    int rc = usage_source_get(s, path, &resp);
    if (rc != 0) {
      usage_source_error(s, usage_source_http_reason(rc, 0), 0, WINDOW_KEY,
                         "GET %s%s failed: %s", url, path, resp.error);
      return -1;
    }
    if (resp.status != 200) {
      char msg[256];
      api_message(&resp, msg, sizeof(msg));
      const char *reason = usage_source_http_reason(0, resp.status);
      if (resp.status == 401 || resp.status == 403)
        usage_source_error(s, reason, 0, WINDOW_KEY,
                           "GET %s%s: HTTP %ld: the bearer token was refused "
                           "(expired or wrong? check BearerToken/"
                           "BearerTokenFile)",
                           url, path, resp.status);
      else
        usage_source_error(s, reason, 0, WINDOW_KEY, "GET %s%s: HTTP %ld%s%s%s",
                           url, path, resp.status, msg[0] ? ": \"" : "", msg,
                           msg[0] ? "\"" : "");
      return -1;
    }
    usage_billing_page_t res;
    if (usage_billing_page(st->agg, resp.body, resp.len, &res) != 0) {
      usage_source_error(s, "parse", 0, WINDOW_KEY,
                         "GET %s%s: HTTP 200 with an unusable page (nothing "
                         "of this scrape is counted): %s",
                         url, path, res.error);
      return -1;
    }
    if (page > 1 && res.records > 0 && res.records == prev_n &&
        res.ids_hash == prev_hash) {
      usage_source_error(s, "pagination", 0, WINDOW_KEY,
                         "GET %s%s: page %u repeats page %u (the server "
                         "ignores paging?); nothing of this scrape is counted",
                         url, path, page, page - 1);
      return -1;
    }
    prev_hash = res.ids_hash;
    prev_n = res.records;
    *records += res.records;
    if (res.records < c->page_size)
      return 0;
  }
  usage_source_error(s, "pagination", 0, WINDOW_KEY,
                     "GET %s/customer-usage-data: still full pages after %u "
                     "pages (MaxPages); nothing of this scrape is counted",
                     url, c->max_pages);
  return -1;
}

/* billing_scrape: fetch the window, then (1) write the state as it will be
 * after the commit, (2) commit in memory, (3) publish. A crash before (1)
 * completes leaves the old state: the next start fetches the same records
 * again and counts them once. A crash after (1) restarts from the new state,
 * whose counters and ids already hold the records: none is counted twice,
 * none is lost, and counters never go backwards. */
static void billing_scrape(usage_source_t *s) {
  billing_state_t *st = usage_source_state(s);
  usage_billing_conf_t *c = usage_source_conf(s)->kind_conf;
  int64_t from = usage_billing_begin(st->agg, usage_source_now(s));
  size_t records;
  if (billing_fetch(s, st, from, &records) != 0) {
    usage_billing_abort(st->agg);
    goto publish;
  }
  if (c->state_file != NULL) {
    char err[512];
    usage_buf_reset(&st->state);
    int rc = usage_billing_serialize(st->agg, &st->state);
    if (rc == 0)
      rc =
          usage_state_save(c->state_file, "billing", usage_source_conf(s)->name,
                           st->state.data, st->state.len, err, sizeof(err));
    else
      snprintf(err, sizeof(err), "out of memory");
    if (rc != 0) {
      usage_billing_abort(st->agg);
      usage_source_error(s, "state_file", 0, "state file",
                         "cannot write the state file %s (%s): the window is "
                         "not committed and will be fetched again",
                         c->state_file, err);
      goto publish;
    }
    usage_source_ok(s, "state file");
  }
  uint64_t invalid = usage_billing_commit(st->agg);
  if (invalid > 0) {
    usage_source_error(s, "invalid_value", 1, "billing invalid values",
                       "%" PRIu64 " record field(s) were missing or not a "
                       "non-negative number and were left out",
                       invalid);
    count_more(s, "invalid_value", invalid);
  }
  usage_source_ok(s, WINDOW_KEY);
publish:;
  usage_batch_t *b = usage_source_batch(s, "billing");
  if (b == NULL || usage_billing_samples(st->agg, b) != 0) {
    usage_batch_destroy(b);
    usage_source_error(s, "parse", 0, WINDOW_KEY, "out of memory");
    return;
  }
  usage_source_commit(s, b);
}

static const char *const billing_reasons[] = {"state_file", NULL};

const usage_vendor_t usage_billing_vendor = {
    .kind = USAGE_KIND_BILLING,
    .conf_create = billing_conf_create,
    .conf_destroy = billing_conf_destroy,
    .init = billing_init,
    .scrape = billing_scrape,
    .shutdown = billing_shutdown,
    .reasons = billing_reasons,
};
