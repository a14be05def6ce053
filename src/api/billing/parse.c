/* SPDX-License-Identifier: MIT */
/* billing/parse.c: the streaming (yajl, no tree) parser of one page of
 * customer usage records: fixed-point quantities, ids, event dates and the
 * GroupBy values of each record, handed to the window (window.c) record by
 * record. Pure: no I/O. */
#include "api/billing/internal.h"
#include "json.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define MAX_DEPTH 64
#define MAX_NANO                                                               \
  ((usage_billing_nano_t)1000000000000000000LL * 1000000) /* 1e15 units */

/* ---- numbers ---- */

int usage_billing_parse_nano(const char *s, size_t len,
                             usage_billing_nano_t *out) {
  size_t i = 0;
  int neg = 0, any = 0, sig = 0;
  int exp10 = 0;
  usage_billing_nano_t mant = 0;
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

/* parse_id reads a record id from a number's or a string's text. Only the
 * decimal text of a non-negative integer that an int64 holds exactly is an
 * id: a sign, a fraction, an exponent or a value past INT64_MAX is refused
 * (EINVAL), never rounded or wrapped into another record's id. */
static int parse_id(const char *s, size_t len, int64_t *out) {
  if (len == 0 || len > 19)
    return EINVAL;
  int64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return EINVAL;
    int d = s[i] - '0';
    if (v > (INT64_MAX - d) / 10)
      return EINVAL;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

/* id_text_fp fingerprints the text of an id that parse_id refused, so that
 * the same refused record is counted as invalid once, not on every scrape
 * (never 0: 0 means "no fingerprint"). */
static uint64_t id_text_fp(const char *s, size_t len) {
  uint64_t h = usage_hash_bytes(s, len);
  return h ? h : 1;
}
/* Slots a record field may feed. */
enum { F_ID = 0, F_EVENT, F_Q0, F_G0 = F_Q0 + USAGE_BILLING_NQ };

typedef struct {
  const char *name;
  size_t len;
  int slot;
} field_t;

#define MAX_FIELDS (2 + USAGE_BILLING_NQ + USAGE_BILLING_MAX_GROUPBY)

typedef struct {
  usage_billing_t *b;
  usage_billing_page_t *res;
  field_t fields[MAX_FIELDS]; /* the record members the parser reads */
  size_t nfields;
  /* a quick no for the other members: the lengths (< 64) and first bytes
   * that some field has */
  uint64_t lens;
  uint64_t firsts[4];
  unsigned depth;
  int top_seen, top_done;
  int field; /* slot of the current member at depth 2, -1 = ignored */
  /* the record being read: 0 missing, 1 ok, 2 invalid */
  int id_state, ev_state, q_state[USAGE_BILLING_NQ];
  int64_t id, ev;
  uint64_t id_fp; /* of a refused id's text, 0 = none */
  usage_billing_nano_t q[USAGE_BILLING_NQ];
  /* GroupBy values: offsets and lengths in b->vals */
  size_t goff[USAGE_BILLING_MAX_GROUPBY], glen[USAGE_BILLING_MAX_GROUPBY];
  int gset[USAGE_BILLING_MAX_GROUPBY];
  unsigned ginvalid;
  int range; /* a sum would have overflowed (ERANGE) */
} pctx_t;

/* fields_init lists the members read from each record: id, eventDate, the
 * quantities and the configured GroupBy fields. */
static void fields_init(pctx_t *p, const usage_billing_conf_t *c) {
  p->fields[p->nfields++] = (field_t){"id", 2, F_ID};
  p->fields[p->nfields++] = (field_t){"eventDate", 9, F_EVENT};
  for (int q = 0; q < USAGE_BILLING_NQ; q++) {
    const char *name = usage_billing_quantities[q].field;
    p->fields[p->nfields++] = (field_t){name, strlen(name), F_Q0 + q};
  }
  for (size_t g = 0; g < c->group_by_num; g++)
    p->fields[p->nfields++] =
        (field_t){c->group_by[g], strlen(c->group_by[g]), F_G0 + (int)g};
  for (size_t i = 0; i < p->nfields; i++) {
    const field_t *f = &p->fields[i];
    p->lens |= f->len < 64 ? 1ULL << f->len : 1ULL << 63;
    unsigned char c0 = f->len > 0 ? (unsigned char)f->name[0] : 0;
    p->firsts[c0 >> 6] |= 1ULL << (c0 & 63);
  }
}

static int fail(pctx_t *p, const char *msg) {
  if (p->res->error[0] == 0)
    snprintf(p->res->error, sizeof(p->res->error), "%s", msg);
  return 0;
}

static int set_group(pctx_t *p, int g, const char *s, size_t len) {
  usage_buf_t *v = &p->b->vals;
  p->goff[g] = usage_buf_len(v);
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
    p->id_state = parse_id(s, len, &p->id) == 0 ? 1 : 2;
    p->id_fp = p->id_state == 1 ? 0 : id_text_fp(s, len);
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
    p->id_state = parse_id(s, len, &p->id) == 0 ? 1 : 2;
    p->id_fp = p->id_state == 1 ? 0 : id_text_fp(s, len);
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
  p->id_fp = 0;
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
  /* most members are none of ours: told apart by length and first byte
   * (a length of 63 or more always takes the long way) */
  unsigned char c0 = len > 0 ? key[0] : 0;
  if (!(p->lens & (len < 63 ? 1ULL << len : 1ULL << 63)) ||
      !(p->firsts[c0 >> 6] & 1ULL << (c0 & 63)))
    return 1;
  const field_t *f = p->fields;
  for (size_t i = 0; i < p->nfields; i++)
    if (f[i].len == len && memcmp(f[i].name, key, len) == 0) {
      p->field = f[i].slot;
      break;
    }
  return 1;
}

/* finish_record hands the record just closed to the window, which counts
 * it into the pending figures unless it is invalid, old or a duplicate. */
static int finish_record(pctx_t *p) {
  usage_billing_t *b = p->b;
  usage_billing_page_t *res = p->res;
  res->records++;
  res->ids_hash =
      usage_hash_u64(res->ids_hash ^ (uint64_t)(p->id_state == 1 ? p->id : -1));
  usage_billing_record_t r = {.id_ok = p->id_state == 1,
                              .ev_ok = p->ev_state == 1,
                              .id = p->id,
                              .id_fp = p->id_state == 2 ? p->id_fp : 0,
                              .ev = p->ev,
                              .ginvalid = p->ginvalid};
  for (int q = 0; q < USAGE_BILLING_NQ; q++) {
    r.q_ok[q] = p->q_state[q] == 1;
    r.q[q] = p->q[q];
  }
  if (!usage_billing_admit(b, &r, res))
    return 1;
  usage_buf_t *k = &b->key;
  usage_buf_reset(k);
  const char *vals = usage_buf_str(&b->vals);
  for (size_t g = 0; g < b->conf->group_by_num; g++) {
    if (p->gset[g])
      usage_buf_append(k, vals + p->goff[g], p->glen[g]);
    usage_buf_putc(k, 0);
  }
  if (usage_buf_failed(k))
    return fail(p, "out of memory");
  int rc = usage_billing_add(b, &r, usage_buf_str(k), usage_buf_len(k), res);
  if (rc == ERANGE) {
    p->range = 1; /* res->error says which sum */
    return 0;
  }
  if (rc != 0)
    return fail(p, "out of memory");
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
  fields_init(&p, b->conf);
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
      char msg[128];
      usage_json_yajl_error(h, msg, sizeof(msg));
      snprintf(res->error, sizeof(res->error),
               "invalid JSON at byte %zu of %zu: %s",
               yajl_get_bytes_consumed(h), len, msg);
    }
    ret = p.range                                    ? ERANGE
          : strcmp(res->error, "out of memory") == 0 ? ENOMEM
                                                     : EINVAL;
  } else if (!p.top_done) {
    snprintf(res->error, sizeof(res->error),
             len == 0 ? "empty body" : "truncated body (%zu bytes)", len);
    ret = EINVAL;
  }
  yajl_free(h);
  return ret;
}
