/* SPDX-License-Identifier: MIT */
/* jasper/parse.c: the streaming yajl parser of one usages page. It follows
 * the body's nesting (root, zones, zone, devices, device, usage), checks
 * types, and folds each finished zone object into the aggregation
 * (aggregate.c); the page's own facts go to usage_jasper_page_t. Pure. */
#include "api/jasper/internal.h"
#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_parse.h>

/* Parser contexts (a->ctx) and the keys they know (a->key). */
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
  K_CYCLE_START,
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

/* fail records why the page is rejected (the first reason only) and
 * returns 0, which stops yajl. */
static int fail(usage_jasper_agg_t *a, const char *fmt, const char *what) {
  if (a->page->error[0] == 0)
    snprintf(a->page->error, sizeof(a->page->error), fmt, what);
  return 0; /* stops yajl */
}

/* key_name: the JSON name of a known key, for error texts. */
static const char *key_name(int key) {
  static const char *const names[] = {[K_ACCOUNT_ID] = "accountId",
                                      [K_ACCOUNT_NAME] = "accountName",
                                      [K_PLAN_NAME] = "ratePlanName",
                                      [K_PLAN_VERSION] = "ratePlanVersion",
                                      [K_ZONES] = "zones",
                                      [K_PAGE_NUMBER] = "pageNumber",
                                      [K_LAST_PAGE] = "lastPage",
                                      [K_ERROR_CODE] = "errorCode",
                                      [K_CYCLE_START] = "cycleStartDate",
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

/* cycle_start keeps the answer's cycleStartDate: yyyy-MM-dd, yyyy-MM-ddZ
 * or a timestamp become the date they start with; anything else is kept
 * as sent (it still tells one cycle from the next); null is no date. */
static void cycle_start(usage_jasper_agg_t *a, const char *s, size_t n) {
  char date[11];
  if (n >= 10) {
    memcpy(date, s, 10);
    date[10] = 0;
    if (usage_jasper_valid_date(date) &&
        (n == 10 || s[10] == 'Z' || s[10] == 'T' || s[10] == 't' ||
         s[10] == ' ' || s[10] == '+' || s[10] == '-')) {
      memcpy(a->cycle, date, sizeof(date));
      return;
    }
  }
  usage_jasper_text_copy(a->cycle, sizeof(a->cycle), s, n, 0);
}

/* on_text handles a scalar (string, number, or null when neither is_str
 * nor is_num) under the current context and key. 1 goes on, 0 stops. */
static int on_text(usage_jasper_agg_t *a, const char *s, size_t n, int is_str,
                   int is_num) {
  if (a->depth == 0) /* a bare top-level value: there is no context yet */
    return fail(a, "%s is not a JSON object", "body");
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
      usage_jasper_text_copy(a->account_id, sizeof(a->account_id), s, n, 0);
      return 1;
    case K_ACCOUNT_NAME:
      usage_jasper_text_copy(a->account_name, sizeof(a->account_name), s, n, 0);
      return 1;
    case K_PLAN_NAME:
      usage_jasper_text_copy(a->plan_name, sizeof(a->plan_name), s, n, 0);
      return 1;
    case K_PLAN_VERSION:
      usage_jasper_text_copy(a->version, sizeof(a->version), s, n, 0);
      return 1;
    case K_ERROR_CODE:
      usage_jasper_text_copy(a->page->error_code, sizeof(a->page->error_code),
                             s, n, 1);
      return 1;
    case K_CYCLE_START:
      cycle_start(a, s, n);
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
      usage_jasper_text_copy(a->zone, sizeof(a->zone), s, n, 0);
      a->have_zone = 1;
    } else if (key == K_ZONE && is_num) {
      return fail(a, "%s: wrong type (expected a string)", "zone");
    } else if (key == K_DEVICES && (is_str || is_num)) {
      return fail(a, "%s: wrong type (expected an array)", "devices");
    }
    return 1;
  case C_DEVICE: {
    usage_jasper_pend_t *d = &a->pend[a->pend_num - 1];
    if (key == K_DEVICE_ID) {
      if ((is_str || is_num) && n > 0 && n <= USAGE_JASPER_ICCID_MAX &&
          memchr(s, 0, n) == NULL) {
        usage_jasper_text_copy(d->iccid, sizeof(d->iccid), s, n, 0);
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
  if (a->depth == 0)
    return on_text(a, "", 0, 0, 0);
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
  if (a->depth == 0)
    return on_text(a, (const char *)s, n, 1, 0);
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
      {C_ROOT, K_CYCLE_START, "cycleStartDate"},
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
  if (ctx == C_ROOT) {
    a->root_keys++;
    a->root_known += a->key != K_OTHER;
  } else if (ctx == C_USAGE && a->key >= K_DATA && a->key <= K_VMT &&
             !a->pend[a->pend_num - 1].known) {
    a->pend[a->pend_num - 1].known = 1;
    a->known_entries++;
  }
  return 1;
}

/* push enters a nested object or array of kind ctx. */
static int push(usage_jasper_agg_t *a, int ctx) {
  if (a->depth >= USAGE_JASPER_MAX_DEPTH)
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
    a->page->entries++;
    if (usage_jasper_grow_array((void **)&a->pend, &a->pend_alloc, a->pend_num,
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

/* overflow rejects a page whose sums would pass 2^64 - 1: no wrapped
 * figure is ever published. */
static int overflow(usage_jasper_agg_t *a) {
  a->overflow = 1;
  return fail(a,
              "zone \"%.80s\": a sum of the rate plan's usage passes "
              "2^64 - 1; the rate plan is refused",
              a->zone);
}

/* zone_done folds the devices of a finished zone object into the totals. */
static int zone_done(usage_jasper_agg_t *a) {
  if (!a->have_zone)
    return a->pend_num == 0 ? 1 : fail(a, "%s", "a zone without a name");
  uint32_t zi;
  int rc = usage_jasper_zone_index(a, a->zone, &zi);
  if (rc != 0) {
    a->nomem = rc == ENOMEM;
    return fail(a, "%s", rc == ENOMEM ? "out of memory" : "too many zones");
  }
  usage_jasper_zone_t *z = &a->zones[zi];
  for (size_t i = 0; i < a->pend_num; i++) {
    const usage_jasper_pend_t *d = &a->pend[i];
    if (d->id_state != 1) {
      if (usage_jasper_add_sum(z->v, d->v, NV) != 0)
        return overflow(a);
      z->devices++;
      if (a->page->bad_fields++ == 0)
        snprintf(a->page->bad_field, sizeof(a->page->bad_field),
                 "zone \"%.80s\": a device without a usable deviceId (counted "
                 "in the zone only)",
                 a->zone);
      continue;
    }
    if (usage_jasper_page_id(a, d->iccid) == NULL) {
      a->nomem = 1;
      return fail(a, "%s", "out of memory");
    }
    rc = usage_jasper_add_device(a, zi, d);
    if (rc == ERANGE)
      return overflow(a);
    if (rc != 0) {
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
  a->nomem = a->overflow = 0;
  a->root_keys = a->root_known = a->known_entries = 0;
  a->page_index++;
  usage_htable_clear(&a->by_pageid);
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
      char e[128];
      usage_json_yajl_error(h, e, sizeof(e));
      snprintf(page->error, sizeof(page->error),
               "invalid JSON: %s (at byte %zu)", e, yajl_get_bytes_consumed(h));
    }
    ret = a->nomem ? ENOMEM : a->overflow ? ERANGE : EINVAL;
  } else if (page->error_code[0] != 0) {
    snprintf(page->error, sizeof(page->error), "the body carries errorCode %s",
             page->error_code);
    ret = EINVAL;
  } else if (a->root_keys > 0 && a->root_known == 0) {
    /* not an empty rate plan: an answer the parser cannot read */
    snprintf(page->error, sizeof(page->error),
             "body: none of the known fields (zones, lastPage, pageNumber, "
             "ratePlanName, ...)");
    ret = EINVAL;
  } else if (page->entries > 0 && a->known_entries == 0) {
    /* devices listed without a single usage field a figure could come
     * from: zero figures would be wrong ones */
    snprintf(page->error, sizeof(page->error),
             "devices: no entry names a usage field (dataUsage, smsMOUsage, "
             "smsMTUsage, voiceMOUsage, voiceMTUsage)");
    ret = EINVAL;
  }
  yajl_free(h);
  a->page = NULL;
  return ret;
}
