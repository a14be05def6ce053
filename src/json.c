/* SPDX-License-Identifier: MIT */
/* json: yajl-built document trees with a depth cap and checked getters
 * (see json.h). Numbers are kept as the text sent and converted on access,
 * so a huge or fractional number is an error of that field alone. */
#include "json.h"
#include "text.h"
#include "timeutil.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_parse.h>

struct usage_json_s {
  usage_json_type_t type;
  int boolean;
  char *key;  /* member name inside an object */
  char *text; /* string, or number as sent */
  usage_json_t **items;
  size_t n, alloc;
};

typedef struct {
  usage_json_t *root;
  usage_json_t *stack[USAGE_JSON_MAX_DEPTH + 1];
  unsigned depth, max_depth;
  char *key;
  int too_deep;
  int nomem;
} builder_t;

void usage_json_free(usage_json_t *v) {
  if (v == NULL)
    return;
  for (size_t i = 0; i < v->n; i++)
    usage_json_free(v->items[i]);
  free(v->items);
  free(v->key);
  free(v->text);
  free(v);
}

static int bld_add(builder_t *b, usage_json_t *v) {
  if (v == NULL) {
    b->nomem = 1;
    return 0;
  }
  if (b->depth == 0) {
    if (b->root != NULL) { /* yajl rejects trailing values; be safe */
      usage_json_free(v);
      return 0;
    }
    b->root = v;
    return 1;
  }
  usage_json_t *parent = b->stack[b->depth - 1];
  if (parent->type == USAGE_JSON_OBJECT) {
    v->key = b->key;
    b->key = NULL;
  }
  if (parent->n == parent->alloc) {
    size_t alloc = parent->alloc ? 2 * parent->alloc : 8;
    usage_json_t **p = realloc(parent->items, alloc * sizeof(*p));
    if (p == NULL) {
      usage_json_free(v);
      b->nomem = 1;
      return 0;
    }
    parent->items = p;
    parent->alloc = alloc;
  }
  parent->items[parent->n++] = v;
  return 1;
}

static usage_json_t *node(usage_json_type_t type) {
  usage_json_t *v = calloc(1, sizeof(*v));
  if (v != NULL)
    v->type = type;
  return v;
}

static usage_json_t *node_text(usage_json_type_t type, const unsigned char *s,
                               size_t len) {
  usage_json_t *v = node(type);
  if (v == NULL)
    return NULL;
  v->text = malloc(len + 1);
  if (v->text == NULL) {
    free(v);
    return NULL;
  }
  memcpy(v->text, s, len);
  v->text[len] = 0;
  return v;
}

static int cb_null(void *ctx) { return bld_add(ctx, node(USAGE_JSON_NULL)); }
static int cb_bool(void *ctx, int val) {
  usage_json_t *v = node(USAGE_JSON_BOOL);
  if (v != NULL)
    v->boolean = val;
  return bld_add(ctx, v);
}
static int cb_number(void *ctx, const char *s, size_t len) {
  return bld_add(ctx,
                 node_text(USAGE_JSON_NUMBER, (const unsigned char *)s, len));
}
static int cb_string(void *ctx, const unsigned char *s, size_t len) {
  return bld_add(ctx, node_text(USAGE_JSON_STRING, s, len));
}
static int cb_open(builder_t *b, usage_json_type_t type) {
  if (b->depth >= b->max_depth) {
    b->too_deep = 1;
    return 0;
  }
  usage_json_t *v = node(type);
  if (!bld_add(b, v))
    return 0;
  b->stack[b->depth++] = v;
  return 1;
}
static int cb_start_map(void *ctx) { return cb_open(ctx, USAGE_JSON_OBJECT); }
static int cb_start_array(void *ctx) { return cb_open(ctx, USAGE_JSON_ARRAY); }
static int cb_close(void *ctx) {
  builder_t *b = ctx;
  if (b->depth > 0)
    b->depth--;
  return 1;
}
static int cb_key(void *ctx, const unsigned char *s, size_t len) {
  builder_t *b = ctx;
  free(b->key);
  b->key = malloc(len + 1);
  if (b->key == NULL) {
    b->nomem = 1;
    return 0;
  }
  memcpy(b->key, s, len);
  b->key[len] = 0;
  return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_bool,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_key,
    .yajl_end_map = cb_close,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_close,
};

/* looks_like_markup: the body starts, after blanks, with '<' (a proxy's
 * error page, a login form), which no JSON document can. */
static int looks_like_markup(const char *buf, size_t len) {
  size_t i = 0;
  while (i < len &&
         (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
    i++;
  return i < len && buf[i] == '<';
}

void usage_json_yajl_error(struct yajl_handle_t *h, char *dst, size_t size) {
  unsigned char *msg = h ? yajl_get_error(h, 0, NULL, 0) : NULL;
  usage_text_clean(dst, size, msg && msg[0] ? (char *)msg : "syntax error");
  if (msg != NULL)
    yajl_free_error(h, msg);
  size_t n = strlen(dst);
  while (n > 0 && dst[n - 1] == ' ')
    dst[--n] = 0;
}

usage_json_t *usage_json_parse(const char *buf, size_t len, unsigned max_depth,
                               char *err, size_t errlen) {
  builder_t b = {.max_depth = max_depth};
  if (b.max_depth == 0 || b.max_depth > USAGE_JSON_MAX_DEPTH)
    b.max_depth = USAGE_JSON_MAX_DEPTH;
  yajl_handle h = yajl_alloc(&callbacks, NULL, &b);
  if (h == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  yajl_status st = yajl_parse(h, (const unsigned char *)buf, len);
  /* the offset of a syntax error; yajl_complete_parse resets it */
  size_t off = yajl_get_bytes_consumed(h);
  int whole = st == yajl_status_ok; /* every byte read: a failure is EOF */
  if (st == yajl_status_ok)
    st = yajl_complete_parse(h);
  if (st != yajl_status_ok || b.root == NULL) {
    if (b.too_deep)
      snprintf(err, errlen, "JSON nested deeper than %u levels", b.max_depth);
    else if (b.nomem)
      snprintf(err, errlen, "out of memory");
    else if (len == 0)
      snprintf(err, errlen, "empty body");
    else if (looks_like_markup(buf, len))
      snprintf(err, errlen,
               "invalid JSON: an HTML or XML page, not the API's answer (from "
               "a proxy or a login page?)");
    else {
      char msg[256];
      usage_json_yajl_error(h, msg, sizeof(msg));
      if (st == yajl_status_ok || whole)
        snprintf(err, errlen, "truncated JSON (%s)", msg);
      else
        snprintf(err, errlen, "invalid JSON at byte %zu (%s)", off, msg);
    }
    yajl_free(h);
    free(b.key);
    usage_json_free(b.root);
    return NULL;
  }
  yajl_free(h);
  free(b.key);
  return b.root;
}

usage_json_type_t usage_json_type(const usage_json_t *v) {
  return v ? v->type : USAGE_JSON_NULL;
}

const usage_json_t *usage_json_get(const usage_json_t *obj, const char *key) {
  if (obj == NULL || obj->type != USAGE_JSON_OBJECT)
    return NULL;
  for (size_t i = 0; i < obj->n; i++)
    if (obj->items[i]->key != NULL && strcasecmp(obj->items[i]->key, key) == 0)
      return obj->items[i];
  return NULL;
}

const usage_json_t *usage_json_path(const usage_json_t *v, ...) {
  va_list ap;
  va_start(ap, v);
  const char *key;
  while (v != NULL && (key = va_arg(ap, const char *)) != NULL)
    v = usage_json_get(v, key);
  va_end(ap);
  return v;
}

size_t usage_json_len(const usage_json_t *v) {
  return (v && (v->type == USAGE_JSON_ARRAY || v->type == USAGE_JSON_OBJECT))
             ? v->n
             : 0;
}

const usage_json_t *usage_json_at(const usage_json_t *v, size_t i) {
  if (v == NULL ||
      (v->type != USAGE_JSON_ARRAY && v->type != USAGE_JSON_OBJECT) ||
      i >= v->n)
    return NULL;
  return v->items[i];
}

static const usage_json_t *member(const usage_json_t *obj, const char *key,
                                  int *status) {
  const usage_json_t *v = key ? usage_json_get(obj, key) : obj;
  *status = (v == NULL || v->type == USAGE_JSON_NULL) ? ENOENT : 0;
  return *status ? NULL : v;
}

int usage_json_int64(const usage_json_t *obj, const char *key, int64_t *out) {
  int status;
  const usage_json_t *v = member(obj, key, &status);
  if (v == NULL)
    return status;
  if (v->type != USAGE_JSON_NUMBER)
    return EINVAL;
  char *end;
  errno = 0;
  long long n = strtoll(v->text, &end, 10);
  if (*end != 0) { /* 1.0 or 1e3: accept when integral and in range */
    double d = strtod(v->text, &end);
    if (*end != 0)
      return EINVAL;
    if (!isfinite(d))
      return ERANGE;
    if (d != floor(d))
      return EINVAL;
    if (d < -9.2e18 || d > 9.2e18)
      return ERANGE;
    n = (long long)d;
  } else if (errno == ERANGE) {
    return ERANGE;
  }
  *out = (int64_t)n;
  return 0;
}

int usage_json_double(const usage_json_t *obj, const char *key, double *out) {
  int status;
  const usage_json_t *v = member(obj, key, &status);
  if (v == NULL)
    return status;
  if (v->type != USAGE_JSON_NUMBER)
    return EINVAL;
  char *end;
  double d = strtod(v->text, &end);
  if (*end != 0)
    return EINVAL;
  if (!isfinite(d))
    return ERANGE;
  *out = d;
  return 0;
}

int usage_json_bool(const usage_json_t *obj, const char *key, int *out) {
  int status;
  const usage_json_t *v = member(obj, key, &status);
  if (v == NULL)
    return status;
  if (v->type != USAGE_JSON_BOOL)
    return EINVAL;
  *out = v->boolean;
  return 0;
}

const char *usage_json_str(const usage_json_t *obj, const char *key) {
  const usage_json_t *v = key ? usage_json_get(obj, key) : obj;
  return (v && v->type == USAGE_JSON_STRING) ? v->text : NULL;
}

const char *usage_json_text(const usage_json_t *obj, const char *key) {
  const usage_json_t *v = key ? usage_json_get(obj, key) : obj;
  return (v && (v->type == USAGE_JSON_STRING || v->type == USAGE_JSON_NUMBER))
             ? v->text
             : NULL;
}

int usage_json_time(const usage_json_t *obj, const char *key, double *out) {
  int status;
  const usage_json_t *v = member(obj, key, &status);
  if (v == NULL)
    return status;
  if (v->type != USAGE_JSON_STRING)
    return EINVAL;
  return usage_parse_time(v->text, out);
}

const char *usage_json_errstr(int status) {
  switch (status) {
  case 0:
    return "ok";
  case ENOENT:
    return "missing";
  case EINVAL:
    return "wrong type";
  case ERANGE:
    return "out of range";
  default:
    return "error";
  }
}
