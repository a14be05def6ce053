/* SPDX-License-Identifier: MIT */
/* jasper: Cisco IoT Control Center, Get Usage by Rate Plan
 * (GET {URL}/rws/api/v1/usages). One entity per configured rate plan
 * ("rate_plan:NAME[:VERSION]"): all its pages are parsed as streams into a
 * running aggregation and committed together, or not at all. */
#include "api/jasper.h"
#include "families.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <yajl/yajl_parse.h>

/* The usage fields of a device, in this order everywhere. */
enum { V_DATA = 0, V_SMO, V_SMT, V_VMO, V_VMT, NV };

const char *usage_jasper_type_name(usage_jasper_type_t t) {
  static const char *const names[] = {NULL, "DATA", "SMS", "VOICE"};
  return (unsigned)t < 4 ? names[t] : NULL;
}

int usage_jasper_valid_date(const char *s) {
  if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
    return 0;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
      return 0;
  int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
    return 0;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return !(m == 2 && d == 29 && !leap);
}

/* ---- error codes ---------------------------------------------------- */

static const usage_jasper_error_t jasper_errors[] = {
    {"10000001", "auth", 0,
     "invalid credentials or IP address not allowed (check User, the API key "
     "in Password/PasswordFile, and the account's allowed IP range)"},
    {"10000006", "bad_request", 0, "invalid pageSize"},
    {"10000007", "bad_request", 0,
     "invalid pageNumber (the rate plan shrank while it was paged?)"},
    {"10000012", "bad_cycle_start_date", 0,
     "invalid date format in CycleStartDate"},
    {"10000013", "rate_plan_unknown", 1,
     "no such rate plan (or not visible to this user)"},
    {"10000024", "bad_request", 0, "invalid apiVersion"},
    {"10000030", "access_denied", 1,
     "the user's role does not have access to this API function"},
    {"10000062", "access_denied", 1, "access denied"},
    {"10000441", "rate_plan_version", 1, "invalid rate plan version"},
    {"10000442", "rate_plan_ambiguous", 1,
     "more than one rate plan has this name: add the version as the second "
     "value, e.g. RatePlan \"NAME\" 2"},
    {"10000443", "bad_cycle_start_date", 0,
     "CycleStartDate does not start a valid billing cycle"},
    {"20000058", "rate_plan_shared", 1,
     "shared rate plans cannot be queried by this API"},
    {"30000001", "http_5xx", 0, "unknown server error"},
    {"30000003", "bad_request", 0, "invalid usage type"},
};

const char *const usage_jasper_reasons[] = {
    "rate_plan_unknown",    "rate_plan_ambiguous",
    "rate_plan_shared",     "rate_plan_version",
    "bad_cycle_start_date", "access_denied",
    "bad_request",          NULL};

const usage_jasper_error_t *usage_jasper_error_lookup(const char *code) {
  if (code == NULL)
    return NULL;
  for (size_t i = 0; i < sizeof(jasper_errors) / sizeof(*jasper_errors); i++)
    if (strcmp(jasper_errors[i].code, code) == 0)
      return &jasper_errors[i];
  return NULL;
}

/* clean_copy copies n bytes of s for a log line: control characters become
 * spaces, bytes outside ASCII (ISO-8859-1 or broken UTF-8) become '?'. */
static void clean_copy(char *dst, size_t size, const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < size; i++) {
    unsigned char c = (unsigned char)s[i];
    dst[k++] = c < 0x20 || c == 0x7f ? ' ' : c >= 0x80 ? '?' : (char)c;
  }
  if (size > 0)
    dst[k] = 0;
}

/* label_copy copies n bytes of valid UTF-8 (yajl checked it) for a label
 * value: control characters become spaces, and a cut never splits a
 * character. */
static void label_copy(char *dst, size_t size, const char *s, size_t n) {
  if (n >= size) {
    n = size - 1;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
      n--; /* s[n] starts a character (or is the end) */
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    dst[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
  }
  dst[n] = 0;
}

typedef struct {
  int depth;
  int key; /* 1 errorCode, 2 errorMessage */
  char *code, *msg;
  size_t code_size, msg_size;
} errparse_t;

static int ep_scalar(errparse_t *e, const char *s, size_t n) {
  if (e->depth == 1 && e->key == 1)
    clean_copy(e->code, e->code_size, s, n);
  else if (e->depth == 1 && e->key == 2)
    clean_copy(e->msg, e->msg_size, s, n);
  e->key = 0;
  return 1;
}
static int ep_null(void *c) { return ep_scalar(c, "", 0); }
static int ep_bool(void *c, int b) { return ep_scalar(c, "", 0); }
static int ep_number(void *c, const char *s, size_t n) {
  return ep_scalar(c, s, n);
}
static int ep_string(void *c, const unsigned char *s, size_t n) {
  return ep_scalar(c, (const char *)s, n);
}
static int ep_start(void *c) {
  errparse_t *e = c;
  e->key = 0;
  return ++e->depth <= 32;
}
static int ep_end(void *c) {
  ((errparse_t *)c)->depth--;
  return 1;
}
static int ep_key(void *c, const unsigned char *k, size_t n) {
  errparse_t *e = c;
  e->key = 0;
  if (n == 9 && strncasecmp((const char *)k, "errorCode", 9) == 0)
    e->key = 1;
  else if (n == 12 && strncasecmp((const char *)k, "errorMessage", 12) == 0)
    e->key = 2;
  return 1;
}

void usage_jasper_api_error(const char *body, size_t len, char *code,
                            size_t code_size, char *message, size_t msg_size) {
  static const yajl_callbacks cb = {ep_null,   ep_bool,   NULL,     NULL,
                                    ep_number, ep_string, ep_start, ep_key,
                                    ep_end,    ep_start,  ep_end};
  code[0] = message[0] = 0;
  errparse_t e = {.code = code,
                  .msg = message,
                  .code_size = code_size,
                  .msg_size = msg_size};
  yajl_handle h = yajl_alloc(&cb, NULL, &e);
  if (h == NULL || body == NULL || len == 0) {
    if (h != NULL)
      yajl_free(h);
    return;
  }
  /* ISO-8859-1 messages are not UTF-8: take the bytes, clean them later. */
  yajl_config(h, yajl_dont_validate_strings, 1);
  if (yajl_parse(h, (const unsigned char *)body, len) != yajl_status_ok ||
      yajl_complete_parse(h) != yajl_status_ok) {
    /* Not JSON (an HTML error page, a truncated body): no code. */
    code[0] = message[0] = 0;
  }
  yajl_free(h);
}

/* ---- the aggregation -------------------------------------------------- */

typedef struct {
  char *name;
  uint64_t devices;
  uint64_t v[NV];
} zone_t;

typedef struct {
  char iccid[USAGE_JASPER_ICCID_MAX + 1];
  uint32_t zone;
  uint64_t v[NV];
} jdev_t;

/* A device of the zone object being parsed (the zone name may come after
 * its devices in the object). */
typedef struct {
  char iccid[USAGE_JASPER_ICCID_MAX + 1];
  int id_state; /* 0 absent, 1 ok, 2 unusable */
  uint64_t v[NV];
} pend_t;

/* An open-addressing index of uint32 positions (0 = empty slot). */
typedef struct {
  uint32_t *slot;
  size_t cap; /* a power of two, or 0 */
  size_t used;
} itab_t;

/* A deviceId seen on the current page. */
typedef struct {
  char iccid[USAGE_JASPER_ICCID_MAX + 1];
  int omitted; /* already counted in devices_omitted */
} pageid_t;

/* Parser contexts. */
enum { C_ROOT, C_ZONES, C_ZONE, C_DEVICES, C_DEVICE, C_USAGE, C_SKIP };
enum {
  K_NONE = 0,
  K_OTHER,
  K_ACCOUNT_ID,
  K_ACCOUNT_NAME,
  K_PLAN_NAME,
  K_PLAN_VERSION,
  K_ZONES,
  K_PAGE_NUMBER,
  K_LAST_PAGE,
  K_ERROR_CODE,
  K_ZONE,
  K_DEVICES,
  K_DEVICE_ID,
  K_USAGE,
  K_DATA, /* K_DATA + V_x */
  K_SMO,
  K_SMT,
  K_VMO,
  K_VMT
};
#define MAX_DEPTH 64

struct usage_jasper_agg_s {
  int per_device;
  size_t max_devices;

  char account_id[32];
  char account_name[256];
  char plan_name[256];
  char version[32];

  zone_t *zones;
  size_t zones_num, zones_alloc;

  jdev_t *devs;
  size_t devs_num, devs_alloc;
  itab_t by_entry;  /* (zone, iccid) -> devs */
  itab_t by_device; /* iccid -> first devs entry of a kept device */
  size_t kept, omitted;

  /* per page, memory reused */
  pend_t *pend;
  size_t pend_num, pend_alloc;
  pageid_t *pids;
  size_t pids_num, pids_alloc;
  itab_t by_pageid;

  /* parser state */
  usage_jasper_page_t *page;
  unsigned char ctx[MAX_DEPTH];
  int depth;
  int key;
  char zone[256];
  int have_zone;
  int nomem;
};

static uint32_t hash_str(const char *s, uint32_t seed) {
  uint32_t h = 2166136261u ^ seed;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h ^ (h >> 15);
}

/* itab_find returns the slot holding a position p (1-based) for which
 * eq(ctx, p - 1) holds, or the empty slot where it belongs. */
static uint32_t *itab_find(itab_t *t, uint32_t hash,
                           int (*eq)(const void *ctx, uint32_t i),
                           const void *ctx) {
  size_t mask = t->cap - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    if (t->slot[i] == 0 || eq(ctx, t->slot[i] - 1))
      return &t->slot[i];
  }
}

/* itab_grow keeps the load under 1/2, rehashing with hash_of. */
static int itab_grow(itab_t *t, uint32_t (*hash_of)(const void *ctx, uint32_t),
                     const void *ctx) {
  if (t->cap != 0 && (t->used + 1) * 2 <= t->cap)
    return 0;
  size_t cap = t->cap ? t->cap * 2 : 64;
  uint32_t *slot = calloc(cap, sizeof(*slot));
  if (slot == NULL)
    return ENOMEM;
  for (size_t i = 0; i < t->cap; i++) {
    if (t->slot[i] == 0)
      continue;
    size_t j = hash_of(ctx, t->slot[i] - 1) & (cap - 1);
    while (slot[j] != 0)
      j = (j + 1) & (cap - 1);
    slot[j] = t->slot[i];
  }
  free(t->slot);
  t->slot = slot;
  t->cap = cap;
  return 0;
}

static void itab_clear(itab_t *t) {
  if (t->slot != NULL)
    memset(t->slot, 0, t->cap * sizeof(*t->slot));
  t->used = 0;
}

static void itab_free(itab_t *t) {
  free(t->slot);
  memset(t, 0, sizeof(*t));
}

/* Keys of the indexes. */
typedef struct {
  const usage_jasper_agg_t *a;
  const char *iccid;
  uint32_t zone;
} probe_t;

static uint32_t entry_hash(const char *iccid, uint32_t zone) {
  return hash_str(iccid, zone * 0x9e3779b9u);
}
static uint32_t entry_hash_at(const void *ctx, uint32_t i) {
  const jdev_t *d = &((const usage_jasper_agg_t *)ctx)->devs[i];
  return entry_hash(d->iccid, d->zone);
}
static int entry_eq(const void *ctx, uint32_t i) {
  const probe_t *p = ctx;
  const jdev_t *d = &p->a->devs[i];
  return d->zone == p->zone && strcmp(d->iccid, p->iccid) == 0;
}
static uint32_t device_hash_at(const void *ctx, uint32_t i) {
  return hash_str(((const usage_jasper_agg_t *)ctx)->devs[i].iccid, 0);
}
static int device_eq(const void *ctx, uint32_t i) {
  const probe_t *p = ctx;
  return strcmp(p->a->devs[i].iccid, p->iccid) == 0;
}
static uint32_t pageid_hash_at(const void *ctx, uint32_t i) {
  return hash_str(((const usage_jasper_agg_t *)ctx)->pids[i].iccid, 0);
}
static int pageid_eq(const void *ctx, uint32_t i) {
  const probe_t *p = ctx;
  return strcmp(p->a->pids[i].iccid, p->iccid) == 0;
}

/* grow_array makes room for one more element of size sz. */
static int grow_array(void **p, size_t *alloc, size_t num, size_t sz) {
  if (num < *alloc)
    return 0;
  size_t n = *alloc ? *alloc * 2 : 16;
  void *q = realloc(*p, n * sz);
  if (q == NULL)
    return ENOMEM;
  *p = q;
  *alloc = n;
  return 0;
}

usage_jasper_agg_t *usage_jasper_agg_create(int per_device,
                                            size_t max_devices) {
  usage_jasper_agg_t *a = calloc(1, sizeof(*a));
  if (a == NULL)
    return NULL;
  a->per_device = per_device;
  a->max_devices = max_devices;
  return a;
}

void usage_jasper_agg_reset(usage_jasper_agg_t *a) {
  for (size_t i = 0; i < a->zones_num; i++)
    free(a->zones[i].name);
  a->zones_num = 0;
  a->devs_num = 0;
  itab_clear(&a->by_entry);
  itab_clear(&a->by_device);
  a->kept = a->omitted = 0;
  a->account_id[0] = a->account_name[0] = a->plan_name[0] = 0;
  a->version[0] = 0;
}

void usage_jasper_agg_destroy(usage_jasper_agg_t *a) {
  if (a == NULL)
    return;
  usage_jasper_agg_reset(a);
  free(a->zones);
  free(a->devs);
  free(a->pend);
  free(a->pids);
  itab_free(&a->by_entry);
  itab_free(&a->by_device);
  itab_free(&a->by_pageid);
  free(a);
}

size_t usage_jasper_agg_zones(const usage_jasper_agg_t *a) {
  return a->zones_num;
}
size_t usage_jasper_agg_devices_kept(const usage_jasper_agg_t *a) {
  return a->kept;
}
size_t usage_jasper_agg_devices_omitted(const usage_jasper_agg_t *a) {
  return a->omitted;
}

static int zone_index(usage_jasper_agg_t *a, const char *name, uint32_t *out) {
  for (size_t i = 0; i < a->zones_num; i++)
    if (strcmp(a->zones[i].name, name) == 0) {
      *out = (uint32_t)i;
      return 0;
    }
  if (a->zones_num >= USAGE_JASPER_MAX_ZONES)
    return E2BIG;
  if (grow_array((void **)&a->zones, &a->zones_alloc, a->zones_num,
                 sizeof(*a->zones)) != 0)
    return ENOMEM;
  zone_t *z = &a->zones[a->zones_num];
  memset(z, 0, sizeof(*z));
  if ((z->name = strdup(name)) == NULL)
    return ENOMEM;
  *out = (uint32_t)a->zones_num++;
  return 0;
}

/* page_id notes a deviceId seen on the page; returns its record. */
static pageid_t *page_id(usage_jasper_agg_t *a, const char *iccid) {
  probe_t pr = {.a = a, .iccid = iccid};
  if (itab_grow(&a->by_pageid, pageid_hash_at, a) != 0)
    return NULL;
  uint32_t *slot = itab_find(&a->by_pageid, hash_str(iccid, 0), pageid_eq, &pr);
  if (*slot != 0)
    return &a->pids[*slot - 1];
  if (grow_array((void **)&a->pids, &a->pids_alloc, a->pids_num,
                 sizeof(*a->pids)) != 0)
    return NULL;
  pageid_t *p = &a->pids[a->pids_num];
  memcpy(p->iccid, iccid, sizeof(p->iccid));
  p->omitted = 0;
  *slot = (uint32_t)++a->pids_num;
  a->by_pageid.used++;
  a->page->devices++;
  return p;
}

/* add_device keeps the per-device figures of one device in one zone. */
static int add_device(usage_jasper_agg_t *a, uint32_t zone, const pend_t *d,
                      pageid_t *pid) {
  probe_t pr = {.a = a, .iccid = d->iccid, .zone = zone};
  if (itab_grow(&a->by_entry, entry_hash_at, a) != 0 ||
      itab_grow(&a->by_device, device_hash_at, a) != 0)
    return ENOMEM;
  uint32_t *es =
      itab_find(&a->by_entry, entry_hash(d->iccid, zone), entry_eq, &pr);
  if (*es != 0) { /* listed twice in the zone: add up, like the zone total */
    jdev_t *e = &a->devs[*es - 1];
    for (int k = 0; k < NV; k++)
      e->v[k] += d->v[k];
    return 0;
  }
  uint32_t *ds =
      itab_find(&a->by_device, hash_str(d->iccid, 0), device_eq, &pr);
  if (*ds == 0 && a->kept >= a->max_devices) {
    if (!pid->omitted) {
      pid->omitted = 1;
      a->omitted++;
    }
    return 0;
  }
  if (grow_array((void **)&a->devs, &a->devs_alloc, a->devs_num,
                 sizeof(*a->devs)) != 0)
    return ENOMEM;
  jdev_t *e = &a->devs[a->devs_num];
  memcpy(e->iccid, d->iccid, sizeof(e->iccid));
  e->zone = zone;
  memcpy(e->v, d->v, sizeof(e->v));
  uint32_t pos = (uint32_t)++a->devs_num;
  *es = pos;
  a->by_entry.used++;
  if (*ds == 0) {
    *ds = pos;
    a->by_device.used++;
    a->kept++;
  }
  return 0;
}

/* ---- the streaming page parser --------------------------------------- */

static int fail(usage_jasper_agg_t *a, const char *fmt, const char *what) {
  if (a->page->error[0] == 0)
    snprintf(a->page->error, sizeof(a->page->error), fmt, what);
  return 0; /* stops yajl */
}

static const char *key_name(int key) {
  static const char *const names[] = {[K_ACCOUNT_ID] = "accountId",
                                      [K_ACCOUNT_NAME] = "accountName",
                                      [K_PLAN_NAME] = "ratePlanName",
                                      [K_PLAN_VERSION] = "ratePlanVersion",
                                      [K_ZONES] = "zones",
                                      [K_PAGE_NUMBER] = "pageNumber",
                                      [K_LAST_PAGE] = "lastPage",
                                      [K_ERROR_CODE] = "errorCode",
                                      [K_ZONE] = "zone",
                                      [K_DEVICES] = "devices",
                                      [K_DEVICE_ID] = "deviceId",
                                      [K_USAGE] = "usage",
                                      [K_DATA] = "dataUsage",
                                      [K_SMO] = "smsMOUsage",
                                      [K_SMT] = "smsMTUsage",
                                      [K_VMO] = "voiceMOUsage",
                                      [K_VMT] = "voiceMTUsage"};
  return key > K_OTHER && key <= K_VMT && names[key] ? names[key] : "value";
}

/* parse_count reads a non-negative integer given as a JSON number or a
 * numeric string. 0, EINVAL or ERANGE. */
static int parse_count(const char *s, size_t n, uint64_t *out) {
  if (n == 0 || n > 40)
    return EINVAL;
  uint64_t v = 0;
  size_t i = 0;
  for (; i < n && isdigit((unsigned char)s[i]); i++) {
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return ERANGE;
    v = v * 10 + d;
  }
  if (i == n) {
    *out = v;
    return 0;
  }
  /* 1.5e3, 12.0, -3: through strtod */
  char tmp[48];
  memcpy(tmp, s, n);
  tmp[n] = 0;
  char *end;
  double d = strtod(tmp, &end);
  if (*end != 0 || end == tmp)
    return EINVAL;
  if (!isfinite(d) || d < 0 || d >= 18446744073709551616.0)
    return ERANGE;
  *out = (uint64_t)llround(d);
  return 0;
}

static int on_text(usage_jasper_agg_t *a, const char *s, size_t n, int is_str,
                   int is_num) {
  int ctx = a->ctx[a->depth - 1];
  int key = a->key;
  a->key = K_NONE;
  switch (ctx) {
  case C_SKIP:
    return 1;
  case C_ZONES:
    return fail(a, "%s: expected zone objects", "zones");
  case C_DEVICES:
    return fail(a, "%s: expected device objects", "devices");
  case C_ROOT:
    switch (key) {
    case K_ACCOUNT_ID:
      label_copy(a->account_id, sizeof(a->account_id), s, n);
      return 1;
    case K_ACCOUNT_NAME:
      label_copy(a->account_name, sizeof(a->account_name), s, n);
      return 1;
    case K_PLAN_NAME:
      label_copy(a->plan_name, sizeof(a->plan_name), s, n);
      return 1;
    case K_PLAN_VERSION:
      label_copy(a->version, sizeof(a->version), s, n);
      return 1;
    case K_ERROR_CODE:
      clean_copy(a->page->error_code, sizeof(a->page->error_code), s, n);
      return 1;
    case K_PAGE_NUMBER: {
      uint64_t v;
      if (!is_num && !is_str)
        return 1; /* null */
      if (parse_count(s, n, &v) != 0 || v > 100000000)
        return fail(a, "%s: not a page number", "pageNumber");
      a->page->page_number = (long)v;
      return 1;
    }
    case K_ZONES:
      if (is_str || is_num)
        return fail(a, "%s: wrong type (expected an array)", "zones");
      return 1; /* null: no zones */
    default:
      return 1;
    }
  case C_ZONE:
    if (key == K_ZONE && is_str) {
      label_copy(a->zone, sizeof(a->zone), s, n);
      a->have_zone = 1;
    } else if (key == K_ZONE && is_num) {
      return fail(a, "%s: wrong type (expected a string)", "zone");
    } else if (key == K_DEVICES && (is_str || is_num)) {
      return fail(a, "%s: wrong type (expected an array)", "devices");
    }
    return 1;
  case C_DEVICE: {
    pend_t *d = &a->pend[a->pend_num - 1];
    if (key == K_DEVICE_ID) {
      if ((is_str || is_num) && n > 0 && n <= USAGE_JASPER_ICCID_MAX &&
          memchr(s, 0, n) == NULL) {
        label_copy(d->iccid, sizeof(d->iccid), s, n);
        d->id_state = 1;
      } else {
        d->id_state = 2;
      }
    } else if (key == K_USAGE && (is_str || is_num)) {
      return fail(a, "%s: wrong type (expected an object)", "usage");
    }
    return 1;
  }
  case C_USAGE:
    if (key >= K_DATA && key <= K_VMT) {
      uint64_t v = 0;
      if (!is_str && !is_num)
        return 1; /* null: no usage of that type */
      int st = parse_count(s, n, &v);
      if (st != 0)
        return fail(a,
                    st == ERANGE ? "%s: negative or out of range"
                                 : "%s: wrong type (expected a number)",
                    key_name(key));
      a->pend[a->pend_num - 1].v[key - K_DATA] = v;
    }
    return 1;
  }
  return 1;
}

static int cb_null(void *c) { return on_text(c, "", 0, 0, 0); }
static int cb_bool(void *c, int b) {
  usage_jasper_agg_t *a = c;
  if (a->ctx[a->depth - 1] == C_ROOT && a->key == K_LAST_PAGE) {
    a->page->has_last_page = 1;
    a->page->last_page = b;
    a->key = K_NONE;
    return 1;
  }
  if (a->ctx[a->depth - 1] == C_USAGE && a->key >= K_DATA)
    return fail(a, "%s: wrong type (expected a number)", key_name(a->key));
  return on_text(c, "", 0, 0, 0);
}
static int cb_number(void *c, const char *s, size_t n) {
  return on_text(c, s, n, 0, 1);
}
static int cb_string(void *c, const unsigned char *s, size_t n) {
  usage_jasper_agg_t *a = c;
  if (a->ctx[a->depth - 1] == C_ROOT && a->key == K_LAST_PAGE) {
    a->key = K_NONE;
    if (n == 4 && strncasecmp((const char *)s, "true", 4) == 0)
      a->page->has_last_page = a->page->last_page = 1;
    else if (n == 5 && strncasecmp((const char *)s, "false", 5) == 0) {
      a->page->has_last_page = 1;
      a->page->last_page = 0;
    } else
      return fail(a, "%s: expected true or false", "lastPage");
    return 1;
  }
  return on_text(c, (const char *)s, n, 1, 0);
}

static int cb_key(void *c, const unsigned char *k, size_t n) {
  usage_jasper_agg_t *a = c;
  static const struct {
    int ctx, key;
    const char *name;
  } keys[] = {
      {C_ROOT, K_ACCOUNT_ID, "accountId"},
      {C_ROOT, K_ACCOUNT_NAME, "accountName"},
      {C_ROOT, K_PLAN_NAME, "ratePlanName"},
      {C_ROOT, K_PLAN_VERSION, "ratePlanVersion"},
      {C_ROOT, K_ZONES, "zones"},
      {C_ROOT, K_PAGE_NUMBER, "pageNumber"},
      {C_ROOT, K_LAST_PAGE, "lastPage"},
      {C_ROOT, K_ERROR_CODE, "errorCode"},
      {C_ZONE, K_ZONE, "zone"},
      {C_ZONE, K_DEVICES, "devices"},
      {C_DEVICE, K_DEVICE_ID, "deviceId"},
      {C_DEVICE, K_USAGE, "usage"},
      {C_USAGE, K_DATA, "dataUsage"},
      {C_USAGE, K_SMO, "smsMOUsage"},
      {C_USAGE, K_SMT, "smsMTUsage"},
      {C_USAGE, K_VMO, "voiceMOUsage"},
      {C_USAGE, K_VMT, "voiceMTUsage"},
  };
  int ctx = a->ctx[a->depth - 1];
  a->key = K_OTHER;
  for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
    if (keys[i].ctx == ctx && strlen(keys[i].name) == n &&
        strncasecmp(keys[i].name, (const char *)k, n) == 0) {
      a->key = keys[i].key;
      break;
    }
  return 1;
}

static int push(usage_jasper_agg_t *a, int ctx) {
  if (a->depth >= MAX_DEPTH)
    return fail(a, "%s: nested too deeply", "body");
  a->ctx[a->depth++] = (unsigned char)ctx;
  a->key = K_NONE;
  return 1;
}

static int cb_start_map(void *c) {
  usage_jasper_agg_t *a = c;
  if (a->depth == 0)
    return push(a, C_ROOT);
  int ctx = a->ctx[a->depth - 1], key = a->key;
  if (ctx == C_SKIP)
    return push(a, C_SKIP);
  if (ctx == C_ZONES) {
    a->have_zone = 0;
    a->zone[0] = 0;
    a->pend_num = 0;
    return push(a, C_ZONE);
  }
  if (ctx == C_DEVICES) {
    if (grow_array((void **)&a->pend, &a->pend_alloc, a->pend_num,
                   sizeof(*a->pend)) != 0) {
      a->nomem = 1;
      return fail(a, "%s", "out of memory");
    }
    memset(&a->pend[a->pend_num++], 0, sizeof(*a->pend));
    return push(a, C_DEVICE);
  }
  if (ctx == C_DEVICE && key == K_USAGE)
    return push(a, C_USAGE);
  if (ctx == C_DEVICE && key == K_DEVICE_ID) {
    a->pend[a->pend_num - 1].id_state = 2;
    return push(a, C_SKIP);
  }
  if (key > K_OTHER)
    return fail(a, "%s: wrong type (an object)", key_name(key));
  return push(a, C_SKIP);
}

static int cb_start_array(void *c) {
  usage_jasper_agg_t *a = c;
  if (a->depth == 0)
    return fail(a, "%s is not a JSON object", "body");
  int ctx = a->ctx[a->depth - 1], key = a->key;
  if (ctx == C_SKIP)
    return push(a, C_SKIP);
  if (ctx == C_ROOT && key == K_ZONES)
    return push(a, C_ZONES);
  if (ctx == C_ZONE && key == K_DEVICES)
    return push(a, C_DEVICES);
  if (ctx == C_DEVICE && key == K_DEVICE_ID) {
    a->pend[a->pend_num - 1].id_state = 2;
    return push(a, C_SKIP);
  }
  if (ctx == C_ZONES || ctx == C_DEVICES || key > K_OTHER)
    return fail(a, "%s: wrong type (an array)", key_name(key));
  return push(a, C_SKIP);
}

/* zone_done folds the devices of a finished zone object into the totals. */
static int zone_done(usage_jasper_agg_t *a) {
  if (!a->have_zone)
    return a->pend_num == 0 ? 1 : fail(a, "%s", "a zone without a name");
  uint32_t zi;
  int rc = zone_index(a, a->zone, &zi);
  if (rc != 0) {
    a->nomem = rc == ENOMEM;
    return fail(a, "%s", rc == ENOMEM ? "out of memory" : "too many zones");
  }
  zone_t *z = &a->zones[zi];
  for (size_t i = 0; i < a->pend_num; i++) {
    const pend_t *d = &a->pend[i];
    z->devices++;
    for (int k = 0; k < NV; k++)
      z->v[k] += d->v[k];
    if (d->id_state != 1) {
      if (a->page->bad_fields++ == 0)
        snprintf(a->page->bad_field, sizeof(a->page->bad_field),
                 "zone \"%.80s\": a device without a usable deviceId (counted "
                 "in the zone only)",
                 a->zone);
      continue;
    }
    pageid_t *pid = page_id(a, d->iccid);
    if (pid == NULL || (a->per_device && add_device(a, zi, d, pid) != 0)) {
      a->nomem = 1;
      return fail(a, "%s", "out of memory");
    }
  }
  a->pend_num = 0;
  return 1;
}

static int cb_end(void *c) {
  usage_jasper_agg_t *a = c;
  int ctx = a->ctx[--a->depth];
  a->key = K_NONE;
  if (ctx == C_ZONE)
    return zone_done(a);
  return 1;
}

int usage_jasper_parse_page(usage_jasper_agg_t *a, const char *body, size_t len,
                            usage_jasper_page_t *page) {
  static const yajl_callbacks cb = {
      cb_null,      cb_bool, NULL,   NULL,           cb_number, cb_string,
      cb_start_map, cb_key,  cb_end, cb_start_array, cb_end};
  memset(page, 0, sizeof(*page));
  page->page_number = -1;
  a->page = page;
  a->depth = 0;
  a->key = K_NONE;
  a->pend_num = 0;
  a->pids_num = 0;
  a->nomem = 0;
  itab_clear(&a->by_pageid);
  if (body == NULL || len == 0) {
    snprintf(page->error, sizeof(page->error), "empty body");
    return EINVAL;
  }
  yajl_handle h = yajl_alloc(&cb, NULL, a);
  if (h == NULL)
    return ENOMEM;
  yajl_status st = yajl_parse(h, (const unsigned char *)body, len);
  if (st == yajl_status_ok)
    st = yajl_complete_parse(h);
  int ret = 0;
  if (st != yajl_status_ok) {
    if (page->error[0] == 0) {
      unsigned char *e = yajl_get_error(h, 0, NULL, 0);
      snprintf(
          page->error, sizeof(page->error), "invalid JSON: %s (at byte %zu)",
          e ? (const char *)e : "syntax error", yajl_get_bytes_consumed(h));
      if (e)
        yajl_free_error(h, e);
    }
    ret = a->nomem ? ENOMEM : EINVAL;
  } else if (page->error_code[0] != 0) {
    snprintf(page->error, sizeof(page->error), "the body carries errorCode %s",
             page->error_code);
    ret = EINVAL;
  }
  yajl_free(h);
  a->page = NULL;
  return ret;
}

/* ---- samples ---------------------------------------------------------- */

static int emit_set(usage_batch_t *b, int fam_data, int fam_sms, int fam_voice,
                    const uint64_t v[NV], usage_jasper_type_t type, unsigned nl,
                    const char **labels) {
  int rc = 0;
  const char *l[2 * USAGE_MAX_LABELS];
  memcpy(l, labels, 2 * nl * sizeof(*l));
  if (type == USAGE_JASPER_ALL || type == USAGE_JASPER_DATA)
    rc |= usage_batch_addv(b, fam_data, (double)v[V_DATA], nl, l);
  l[2 * nl] = "direction";
  if (type == USAGE_JASPER_ALL || type == USAGE_JASPER_SMS) {
    l[2 * nl + 1] = "mo";
    rc |= usage_batch_addv(b, fam_sms, (double)v[V_SMO], nl + 1, l);
    l[2 * nl + 1] = "mt";
    rc |= usage_batch_addv(b, fam_sms, (double)v[V_SMT], nl + 1, l);
  }
  if (type == USAGE_JASPER_ALL || type == USAGE_JASPER_VOICE) {
    l[2 * nl + 1] = "mo";
    rc |= usage_batch_addv(b, fam_voice, (double)v[V_VMO], nl + 1, l);
    l[2 * nl + 1] = "mt";
    rc |= usage_batch_addv(b, fam_voice, (double)v[V_VMT], nl + 1, l);
  }
  return rc ? ENOMEM : 0;
}

int usage_jasper_agg_emit(const usage_jasper_agg_t *a, const char *rate_plan,
                          usage_jasper_type_t type, usage_batch_t *b) {
  if (usage_batch_add(b, FAM_JASPER_RATE_PLAN_INFO, 1, "rate_plan", rate_plan,
                      "version", a->version, "account_id", a->account_id,
                      "account_name", a->account_name, NULL) != 0)
    return ENOMEM;
  for (size_t i = 0; i < a->zones_num; i++) {
    const zone_t *z = &a->zones[i];
    const char *l[] = {"rate_plan", rate_plan, "zone", z->name};
    if (usage_batch_addv(b, FAM_JASPER_ZONE_DEVICES, (double)z->devices, 2,
                         l) != 0 ||
        emit_set(b, FAM_JASPER_ZONE_DATA_BYTES, FAM_JASPER_ZONE_SMS,
                 FAM_JASPER_ZONE_VOICE_SECONDS, z->v, type, 2, l) != 0)
      return ENOMEM;
  }
  if (!a->per_device)
    return 0;
  for (size_t i = 0; i < a->devs_num; i++) {
    const jdev_t *d = &a->devs[i];
    const char *l[] = {"rate_plan", rate_plan, "zone", a->zones[d->zone].name,
                       "iccid",     d->iccid};
    if (emit_set(b, FAM_JASPER_DEVICE_DATA_BYTES, FAM_JASPER_DEVICE_SMS,
                 FAM_JASPER_DEVICE_VOICE_SECONDS, d->v, type, 3, l) != 0)
      return ENOMEM;
  }
  return usage_batch_add(b, FAM_JASPER_DEVICES_OMITTED, (double)a->omitted,
                         "rate_plan", rate_plan, NULL);
}

/* ---- the scrape ------------------------------------------------------- */

typedef struct {
  usage_jasper_agg_t *agg;
  usage_buf_t query;
  int warned;
} jasper_state_t;

static int build_query(usage_buf_t *q, const usage_jasper_conf_t *c,
                       const usage_jasper_plan_t *p, long page) {
  usage_buf_reset(q);
  usage_buf_puts(q, "/rws/api/v1/usages?ratePlanName=");
  usage_http_escape(q, p->name);
  if (p->version != NULL)
    usage_buf_printf(q, "&ratePlanVersion=%s", p->version);
  if (c->cycle_start[0] != 0)
    usage_buf_printf(q, "&cycleStartDate=%s", c->cycle_start);
  if (c->usage_type != USAGE_JASPER_ALL)
    usage_buf_printf(q, "&usageType=%s", usage_jasper_type_name(c->usage_type));
  usage_buf_printf(q, "&pageNumber=%ld&pageSize=%d", page, c->page_size);
  return q->failed;
}

/* http_failure reports a page that came back with an error status. */
static void http_failure(usage_source_t *s, const char *key, const char *what,
                         const usage_http_resp_t *resp) {
  char code[32], message[256];
  usage_jasper_api_error(resp->body, resp->len, code, sizeof(code), message,
                         sizeof(message));
  const usage_jasper_error_t *e = usage_jasper_error_lookup(code);
  if (e != NULL) {
    usage_source_error(s, e->reason, e->refusal, key,
                       "%s: HTTP %ld, errorCode %s (\"%s\"): %s", what,
                       resp->status, code, message, e->text);
    return;
  }
  const char *reason = usage_source_http_reason(0, resp->status);
  if (code[0] != 0) {
    usage_source_error(s, reason, 0, key, "%s: HTTP %ld, errorCode %s (\"%s\")",
                       what, resp->status, code, message);
    return;
  }
  char ctype[96];
  clean_copy(ctype, sizeof(ctype), resp->content_type,
             strlen(resp->content_type));
  usage_source_error(s, reason, 0, key,
                     "%s: HTTP %ld with a %s body of %zu bytes and no error "
                     "code",
                     what, resp->status, ctype[0] ? ctype : "untyped",
                     resp->len);
}

/* jasper_plan scrapes the page set of one rate plan; the number of pages
 * fetched goes to *pages. */
static void jasper_plan(usage_source_t *s, jasper_state_t *st,
                        const usage_jasper_plan_t *p, long *pages) {
  const usage_jasper_conf_t *c = usage_source_conf(s)->kind_conf;
  char key[320], entity[320], what[512];
  snprintf(key, sizeof(key), "rate plan \"%s\"%s%s", p->name,
           p->version ? " version " : "", p->version ? p->version : "");
  snprintf(entity, sizeof(entity), "rate_plan:%s%s%s", p->name,
           p->version ? ":" : "", p->version ? p->version : "");
  usage_jasper_agg_reset(st->agg);

  unsigned bad = 0; /* devices without a usable deviceId */
  for (long page = 1;; page++) {
    if (build_query(&st->query, c, p, page) != 0) {
      usage_source_error(s, "invalid_value", 0, key, "%s: request too long",
                         key);
      return;
    }
    snprintf(what, sizeof(what), "%s: GET %s%s", key,
             usage_source_conf(s)->http.url, st->query.data);
    usage_http_resp_t resp;
    (*pages)++;
    int rc = usage_source_get(s, st->query.data, &resp);
    if (rc != 0) {
      usage_source_error(s, usage_source_http_reason(rc, 0), 0, key,
                         "%s failed: %s", what, resp.error);
      return;
    }
    if (resp.status != 200) {
      http_failure(s, key, what, &resp);
      return;
    }
    usage_jasper_page_t pg;
    rc = usage_jasper_parse_page(st->agg, resp.body, resp.len, &pg);
    if (rc != 0) {
      const usage_jasper_error_t *e = usage_jasper_error_lookup(pg.error_code);
      if (e != NULL)
        usage_source_error(s, e->reason, e->refusal, key,
                           "%s: HTTP 200 with errorCode %s: %s", what,
                           pg.error_code, e->text);
      else
        usage_source_error(s, "parse", 0, key,
                           "%s: HTTP 200 with an unusable body: %s", what,
                           pg.error);
      return;
    }
    bad += pg.bad_fields;
    if (pg.bad_fields > 0)
      usage_source_error(s, "invalid_value", 1, key, "%s: %u device(s): %s",
                         what, pg.bad_fields, pg.bad_field);
    if (pg.page_number >= 0 && pg.page_number != page) {
      usage_source_error(s, "pagination", 0, key,
                         "%s: asked for page %ld, got page %ld", what, page,
                         pg.page_number);
      return;
    }
    /* Without lastPage, a short page is the last one. */
    int last =
        pg.has_last_page ? pg.last_page : pg.devices < (size_t)c->page_size;
    if (last)
      break;
    if (page >= c->max_pages) {
      usage_source_error(s, "pagination", 0, key,
                         "%s: still not the last page after %ld pages "
                         "(MaxPages); figures not updated",
                         what, page);
      return;
    }
  }

  usage_batch_t *b = usage_source_batch(s, entity);
  if (b == NULL || usage_jasper_agg_emit(st->agg, p->name, c->usage_type, b)) {
    usage_batch_destroy(b);
    usage_source_error(s, "parse", 0, key, "%s: out of memory", key);
    return;
  }
  usage_source_commit(s, b);
  if (bad == 0)
    usage_source_ok(s, key);
}

static void jasper_scrape(usage_source_t *s) {
  jasper_state_t *st = usage_source_state(s);
  usage_jasper_conf_t *c = usage_source_conf(s)->kind_conf;
  long pages = 0;
  for (size_t i = 0; i < c->plans_num; i++)
    jasper_plan(s, st, &c->plans[i], &pages);

  /* Once, after the first scrape told how many pages there are: can a
   * scrape finish within its interval at the configured rate? */
  if (st->warned || usage_source_conf(s)->max_rps <= 0)
    return;
  st->warned = 1;
  double need = (double)pages * usage_source_request_spacing(s);
  double interval =
      usage_source_conf(s)->interval > 0 ? usage_source_conf(s)->interval : 10;
  if (need > interval)
    usage_source_log(
        s, USAGE_LOG_WARNING,
        "a scrape needs %ld requests; at MaxRequestsPerSecond %g (with its "
        "safety margin) that takes at least %.3g s, longer than the interval "
        "of %g s%s. Scrapes of "
        "this source will run back to back (collectd never runs two at "
        "once) and figures will be older than the interval; set Interval "
        "to at least %.0f",
        pages, usage_source_conf(s)->max_rps, need, interval,
        usage_source_conf(s)->interval > 0 ? "" : " (collectd's default)",
        ceil(need));
}

static int jasper_init(usage_source_t *s) {
  usage_jasper_conf_t *c = usage_source_conf(s)->kind_conf;
  jasper_state_t *st = calloc(1, sizeof(*st));
  if (st == NULL)
    return ENOMEM;
  usage_buf_init(&st->query, 64 * 1024);
  st->agg = usage_jasper_agg_create(c->per_device, c->max_devices);
  if (st->agg == NULL) {
    free(st);
    return ENOMEM;
  }
  usage_source_set_state(s, st);
  return 0;
}

static void jasper_shutdown(usage_source_t *s) {
  jasper_state_t *st = usage_source_state(s);
  if (st == NULL)
    return;
  usage_jasper_agg_destroy(st->agg);
  usage_buf_free(&st->query);
  free(st);
  usage_source_set_state(s, NULL);
}

static void *jasper_conf_create(void) {
  usage_jasper_conf_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->page_size = USAGE_JASPER_MAX_PAGE_SIZE;
  c->max_pages = USAGE_JASPER_DEFAULT_MAX_PAGES;
  c->max_devices = USAGE_JASPER_DEFAULT_MAX_DEVICES;
  return c;
}

static void jasper_conf_destroy(void *p) {
  usage_jasper_conf_t *c = p;
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->plans_num; i++) {
    free(c->plans[i].name);
    free(c->plans[i].version);
  }
  free(c->plans);
  free(c);
}

const usage_vendor_t usage_jasper_vendor = {
    .kind = USAGE_KIND_JASPER,
    .conf_create = jasper_conf_create,
    .conf_destroy = jasper_conf_destroy,
    .init = jasper_init,
    .scrape = jasper_scrape,
    .shutdown = jasper_shutdown,
    .reasons = usage_jasper_reasons,
};
