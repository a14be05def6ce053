/* SPDX-License-Identifier: MIT */
/* fuzz_json: usage_json_parse on the whole input, then every getter on
 * every object of the tree (arrays and objects walked to the depth limit),
 * usage_json_time on a few keys of every object, and usage_parse_time and
 * usage_parse_time_exact on the raw input as a string. */
#include "fuzz_common.h"
#include "json.h"
#include "timeutil.h"

static const char *const keys[] = {"id",   "ID",        "errorCode",
                                   "date", "eventDate", ""};

static void walk(const usage_json_t *v, int depth) {
  if (v == NULL || depth > USAGE_JSON_MAX_DEPTH + 2)
    return;
  usage_json_type_t t = usage_json_type(v);
  if (t != USAGE_JSON_ARRAY && t != USAGE_JSON_OBJECT)
    return;
  size_t n = usage_json_len(v);
  for (size_t i = 0; i < n; i++)
    walk(usage_json_at(v, i), depth + 1);
  usage_json_at(v, n);
  if (t != USAGE_JSON_OBJECT)
    return;
  for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
    int64_t i64;
    double d;
    int bo;
    usage_json_errstr(usage_json_int64(v, keys[k], &i64));
    usage_json_double(v, keys[k], &d);
    usage_json_bool(v, keys[k], &bo);
    usage_json_str(v, keys[k]);
    usage_json_text(v, keys[k]);
    usage_json_time(v, keys[k], &d);
  }
  usage_json_path(v, "responseStatus", "errorCode", (const char *)NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *body = fuzz_copy(data, size);
  char *s = fuzz_cstr(data, size);
  if (body != NULL) {
    char err[256];
    usage_json_t *root =
        usage_json_parse(body, size, USAGE_JSON_MAX_DEPTH, err, sizeof(err));
    walk(root, 0);
    usage_json_free(root);
  }
  if (s != NULL) {
    double t;
    int64_t whole;
    usage_parse_time(s, &t);
    if (usage_parse_time_exact(body, size, &whole) == 0) {
      char out[32];
      usage_format_time(whole, out);
    }
  }
  free(s);
  free(body);
  return 0;
}
