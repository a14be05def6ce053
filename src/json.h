/* SPDX-License-Identifier: MIT */
/* json: a small JSON document tree built with yajl, with the limits yajl
 * lacks (nesting depth), and checked getters: a missing field, a null, a
 * value of the wrong type and a number out of range are told apart, so a
 * parser can skip one bad field instead of failing or crashing. Object keys
 * match case-insensitively (CCC servers send camelCase or PascalCase). */
#ifndef USAGE_JSON_H
#define USAGE_JSON_H 1

#include <stddef.h>
#include <stdint.h>

typedef enum {
  USAGE_JSON_NULL = 0,
  USAGE_JSON_BOOL,
  USAGE_JSON_NUMBER,
  USAGE_JSON_STRING,
  USAGE_JSON_ARRAY,
  USAGE_JSON_OBJECT
} usage_json_type_t;

typedef struct usage_json_s usage_json_t;

#define USAGE_JSON_MAX_DEPTH 64

/* usage_json_parse parses a whole document. NULL on error, with the cause
 * (syntax error and offset, truncated body, nesting too deep, ENOMEM) in
 * err. The caller frees the tree with usage_json_free. */
usage_json_t *usage_json_parse(const char *buf, size_t len, unsigned max_depth,
                               char *err, size_t errlen);
void usage_json_free(usage_json_t *root); /* accepts NULL */

/* usage_json_yajl_error writes the error of a yajl handle (a yajl_handle)
 * into dst as one line: yajl ends its texts with a newline, and control
 * characters are replaced (usage_text_clean). "syntax error" when yajl has
 * none. Every use of yajl_get_error goes through here. */
struct yajl_handle_t;
void usage_json_yajl_error(struct yajl_handle_t *h, char *dst, size_t size);

usage_json_type_t usage_json_type(const usage_json_t *v);
/* usage_json_get returns the member `key` of an object, or NULL. */
const usage_json_t *usage_json_get(const usage_json_t *obj, const char *key);
/* usage_json_path follows keys, e.g. ("responseStatus", "errorCode", NULL). */
const usage_json_t *usage_json_path(const usage_json_t *v, ...);
size_t usage_json_len(const usage_json_t *array_or_object);
const usage_json_t *usage_json_at(const usage_json_t *array, size_t i);

/* Getters: 0 on success; ENOENT when absent or null; EINVAL when of another
 * type (a string where a number belongs, an object, ...); ERANGE when the
 * number does not fit. The output is untouched on error. */
int usage_json_int64(const usage_json_t *obj, const char *key, int64_t *out);
int usage_json_double(const usage_json_t *obj, const char *key, double *out);
int usage_json_bool(const usage_json_t *obj, const char *key, int *out);
/* usage_json_str: the string member, or NULL (absent, null or not a string). */
const char *usage_json_str(const usage_json_t *obj, const char *key);
/* usage_json_text: a string or number member as text (numbers as sent). */
const char *usage_json_text(const usage_json_t *obj, const char *key);

/* usage_json_errstr names a getter status for a log line. */
const char *usage_json_errstr(int status);

/* usage_json_time parses an ISO 8601 UTC timestamp ("2024-05-01T12:00:00Z",
 * fractions and offsets accepted; .NET "/Date(ms)/" too) into Unix seconds
 * (usage_parse_time of timeutil.h). ENOENT also for 0001-01-01T00:00:00Z,
 * which the APIs use for "never". */
int usage_json_time(const usage_json_t *obj, const char *key, double *out);

#endif
