/* SPDX-License-Identifier: MIT */
/* test_json: document parsing limits and the checked getters. */
#include "json.h"
#include "timeutil.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yajl/yajl_parse.h>

static usage_json_t *parse(const char *text) {
  char err[256] = "";
  usage_json_t *root =
      usage_json_parse(text, strlen(text), 0, err, sizeof(err));
  if (root == NULL)
    fail_msg("parse of %s failed: %s", text, err);
  return root;
}

static const char doc[] =
    "{\"int\":5,\"intf\":5.0,\"frac\":5.5,\"str\":\"5\",\"obj\":{},"
    "\"bool\":true,\"null\":null,\"huge\":1e400,\"big\":99999999999999999999,"
    "\"neg\":-42,\"exp\":1e3,\"arr\":[],\"min\":-9223372036854775808,"
    "\"max\":9223372036854775807,\"over\":9223372036854775808,"
    "\"negf\":-0.25,\"TotalUserCount\":7,\"text\":1.50,\"bad\":false}";

static void test_int64(void **state) {
  static const struct {
    const char *key;
    int want;
    int64_t value;
  } cases[] = {
      {"int", 0, 5},
      {"intf", 0, 5},
      {"frac", EINVAL, 0},
      {"str", EINVAL, 0},
      {"obj", EINVAL, 0},
      {"arr", EINVAL, 0},
      {"bool", EINVAL, 0},
      {"null", ENOENT, 0},
      {"missing", ENOENT, 0},
      {"huge", ERANGE, 0},
      {"big", ERANGE, 0},
      {"over", ERANGE, 0},
      {"neg", 0, -42},
      {"exp", 0, 1000},
      {"min", 0, INT64_MIN},
      {"max", 0, INT64_MAX},
      {"totalusercount", 0, 7}, /* keys match case-insensitively */
      {"TOTALUSERCOUNT", 0, 7},
  };
  (void)state;
  usage_json_t *root = parse(doc);
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    int64_t v = 12345;
    int status = usage_json_int64(root, cases[i].key, &v);
    if (status != cases[i].want)
      fail_msg("int64 %s: status %d (%s), want %d", cases[i].key, status,
               usage_json_errstr(status), cases[i].want);
    if (status == 0 && v != cases[i].value)
      fail_msg("int64 %s: %lld, want %lld", cases[i].key, (long long)v,
               (long long)cases[i].value);
    if (status != 0 && v != 12345)
      fail_msg("int64 %s: output touched on error", cases[i].key);
  }
  usage_json_free(root);
}

static void test_double(void **state) {
  static const struct {
    const char *key;
    int want;
    double value;
  } cases[] = {
      {"int", 0, 5},       {"frac", 0, 5.5},         {"negf", 0, -0.25},
      {"big", 0, 1e20},    {"huge", ERANGE, 0},      {"str", EINVAL, 0},
      {"obj", EINVAL, 0},  {"bool", EINVAL, 0},      {"null", ENOENT, 0},
      {"nope", ENOENT, 0}, {"TotalUserCOUNT", 0, 7},
  };
  (void)state;
  usage_json_t *root = parse(doc);
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    double v = -1;
    int status = usage_json_double(root, cases[i].key, &v);
    if (status != cases[i].want)
      fail_msg("double %s: status %d, want %d", cases[i].key, status,
               cases[i].want);
    if (status == 0 && v != cases[i].value)
      fail_msg("double %s: %g, want %g", cases[i].key, v, cases[i].value);
    if (status != 0 && v != -1)
      fail_msg("double %s: output touched on error", cases[i].key);
  }
  usage_json_free(root);
}

static void test_bool_str_text(void **state) {
  (void)state;
  usage_json_t *root = parse(doc);
  int b = -1;
  assert_int_equal(usage_json_bool(root, "bool", &b), 0);
  assert_int_equal(b, 1);
  assert_int_equal(usage_json_bool(root, "bad", &b), 0);
  assert_int_equal(b, 0);
  assert_int_equal(usage_json_bool(root, "str", &b), EINVAL);
  assert_int_equal(usage_json_bool(root, "int", &b), EINVAL);
  assert_int_equal(usage_json_bool(root, "null", &b), ENOENT);
  assert_int_equal(usage_json_bool(root, "absent", &b), ENOENT);

  assert_string_equal(usage_json_str(root, "str"), "5");
  assert_null(usage_json_str(root, "int"));
  assert_null(usage_json_str(root, "null"));
  assert_null(usage_json_str(root, "absent"));
  assert_string_equal(usage_json_text(root, "text"), "1.50"); /* as sent */
  assert_string_equal(usage_json_text(root, "STR"), "5");
  assert_null(usage_json_text(root, "obj"));
  assert_null(usage_json_text(root, "bool"));

  assert_int_equal(usage_json_type(root), USAGE_JSON_OBJECT);
  assert_int_equal(usage_json_type(usage_json_get(root, "arr")),
                   USAGE_JSON_ARRAY);
  assert_int_equal(usage_json_type(usage_json_get(root, "null")),
                   USAGE_JSON_NULL);
  assert_int_equal(usage_json_len(root), 19);
  assert_int_equal(usage_json_len(usage_json_get(root, "int")), 0);
  assert_null(usage_json_at(usage_json_get(root, "arr"), 0));
  usage_json_free(root);
  usage_json_free(NULL);
}

static void test_path_array(void **state) {
  (void)state;
  usage_json_t *root = parse(
      "{\"ResponseStatus\":{\"ErrorCode\":\"E1\",\"Errors\":[{\"a\":1},2]},"
      "\"list\":[10,20,30]}");
  const usage_json_t *code =
      usage_json_path(root, "responseStatus", "errorCode", NULL);
  assert_string_equal(usage_json_str(code, NULL), "E1");
  assert_null(usage_json_path(root, "responseStatus", "nope", NULL));
  assert_null(usage_json_path(root, "list", "x", NULL));
  const usage_json_t *list = usage_json_get(root, "list");
  assert_int_equal(usage_json_len(list), 3);
  int64_t v = 0;
  assert_int_equal(usage_json_int64(usage_json_at(list, 2), NULL, &v), 0);
  assert_int_equal(v, 30);
  assert_null(usage_json_at(list, 3));
  const usage_json_t *errs =
      usage_json_path(root, "responseStatus", "errors", NULL);
  assert_int_equal(usage_json_len(errs), 2);
  assert_int_equal(usage_json_int64(usage_json_at(errs, 0), "A", &v), 0);
  assert_int_equal(v, 1);
  usage_json_free(root);
}

static void test_bad_documents(void **state) {
  static const struct {
    const char *name;
    const char *body;
    size_t len;      /* 0 = strlen */
    const char *err; /* substring of the error */
  } cases[] = {
      {"truncated object", "{\"a\": 1", 0, "truncated"},
      {"truncated string", "{\"a\": \"xy", 0, "truncated"},
      {"empty body", "", 0, "empty"},
      {"garbage", "{\"a\": nope}", 0, "invalid JSON at byte"},
      {"trailing garbage", "{} x", 0, "invalid JSON"},
      {"html", "<html><body>502 Bad Gateway</body></html>", 0, "invalid JSON"},
      {"latin-1 byte", "{\"name\": \"caf\xe9\"}", 0, "invalid JSON"},
      {"invalid utf-8", "{\"name\": \"\xc3\x28\"}", 0, "invalid JSON"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char err[256] = "";
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].body);
    usage_json_t *root =
        usage_json_parse(cases[i].body, len, 0, err, sizeof(err));
    if (root != NULL)
      fail_msg("%s: parsed", cases[i].name);
    if (strstr(err, cases[i].err) == NULL)
      fail_msg("%s: error \"%s\", want \"%s\"", cases[i].name, err,
               cases[i].err);
    for (const char *p = err; *p; p++) /* one log line */
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        fail_msg("%s: control character in \"%s\"", cases[i].name, err);
  }
  /* yajl's own text ends in a newline; the helper makes it one line */
  yajl_handle h = yajl_alloc(NULL, NULL, NULL);
  assert_non_null(h);
  assert_int_not_equal(
      yajl_parse(h, (const unsigned char *)"{\"a\": nope}", 11),
      yajl_status_ok);
  unsigned char *raw = yajl_get_error(h, 0, NULL, 0);
  assert_non_null(strchr((char *)raw, '\n'));
  yajl_free_error(h, raw);
  char line[256];
  usage_json_yajl_error(h, line, sizeof(line));
  assert_null(strchr(line, '\n'));
  assert_non_null(strstr(line, "error")); /* yajl: "lexical error: ..." */
  assert_int_not_equal(line[strlen(line) - 1], ' ');
  yajl_free(h);
  usage_json_yajl_error(NULL, line, sizeof(line));
  assert_string_equal(line, "syntax error");
  /* valid UTF-8 passes through unchanged */
  usage_json_t *root = parse("{\"name\": \"caf\xc3\xa9 \\u00e9\"}");
  assert_string_equal(usage_json_str(root, "name"), "caf\xc3\xa9 \xc3\xa9");
  usage_json_free(root);
}

static void test_depth(void **state) {
  (void)state;
  size_t n = 200000;
  char *deep = malloc(2 * n + 1);
  memset(deep, '[', n);
  memset(deep + n, ']', n);
  deep[2 * n] = 0;
  char err[256] = "";
  assert_null(usage_json_parse(deep, 2 * n, 0, err, sizeof(err)));
  assert_non_null(strstr(err, "nested deeper than 64 levels"));

  /* object nesting too, truncated at the end */
  size_t m = 0;
  for (size_t i = 0; i < n / 8; i++) {
    memcpy(deep + m, "{\"a\":", 5);
    m += 5;
  }
  err[0] = 0;
  assert_null(usage_json_parse(deep, m, 0, err, sizeof(err)));
  assert_non_null(strstr(err, "nested deeper"));
  free(deep);

  /* a caller's lower limit */
  usage_json_t *root = usage_json_parse("[[[1]]]", 7, 3, err, sizeof(err));
  assert_non_null(root);
  usage_json_free(root);
  assert_null(usage_json_parse("[[[[1]]]]", 9, 3, err, sizeof(err)));
  assert_non_null(strstr(err, "nested deeper than 3 levels"));
  /* exactly the default limit is fine */
  char ok[2 * USAGE_JSON_MAX_DEPTH + 1];
  memset(ok, '[', USAGE_JSON_MAX_DEPTH);
  memset(ok + USAGE_JSON_MAX_DEPTH, ']', USAGE_JSON_MAX_DEPTH);
  root = usage_json_parse(ok, 2 * USAGE_JSON_MAX_DEPTH, 0, err, sizeof(err));
  assert_non_null(root);
  usage_json_free(root);
}

static void test_time(void **state) {
  static const struct {
    const char *in;
    int want;
    double value;
  } cases[] = {
      {"2024-05-01T12:00:00Z", 0, 1714564800},
      {"2024-05-01T12:00:00z", 0, 1714564800},
      {"2024-05-01T12:00:00.5Z", 0, 1714564800.5},
      {"2024-05-01T12:00:00.125Z", 0, 1714564800.125},
      {"2024-05-01T14:00:00+02:00", 0, 1714564800},
      {"2024-05-01T07:30:00-04:30", 0, 1714564800},
      {"2024-05-01T07:30:00-0430", 0, 1714564800},
      {"2024-05-01T12:00:00", EINVAL, 0}, /* no zone: refused */
      {"2024-05-01 12:00:00Z", 0, 1714564800},
      {"2024-05-01", 0, 1714521600},
      {"1970-01-01T00:00:00Z", 0, 0},
      {"2000-02-29T00:00:00Z", 0, 951782400},
      {"0001-01-01T00:00:00Z", ENOENT, 0},
      {"0001-01-01T00:00:00", ENOENT, 0},
      {"/Date(1714564800000)/", 0, 1714564800},
      {"/Date(1714564800500+0000)/", 0, 1714564800.5},
      {"/Date(-62135596800000)/", ENOENT, 0},
      {"", ENOENT, 0},
      {"garbage", EINVAL, 0},
      {"2024-13-01T00:00:00Z", EINVAL, 0},
      {"2024-05-01T25:00:00Z", EINVAL, 0},
      {"2024-05-01T12:00:00Zjunk", EINVAL, 0},
      {"2024-5-1", EINVAL, 0},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    double v = -1;
    int status = usage_parse_time(cases[i].in, &v);
    if (status != cases[i].want)
      fail_msg("time \"%s\": status %d, want %d", cases[i].in, status,
               cases[i].want);
    if (status == 0 && fabs(v - cases[i].value) > 1e-6)
      fail_msg("time \"%s\": %.3f, want %.3f", cases[i].in, v, cases[i].value);
  }
  usage_json_t *root =
      parse("{\"LastLogin\":\"2024-05-01T12:00:00Z\",\"never\":"
            "\"0001-01-01T00:00:00Z\",\"num\":5,\"null\":null}");
  double t = 0;
  assert_int_equal(usage_json_time(root, "lastLogin", &t), 0);
  assert_true(t == 1714564800);
  assert_int_equal(usage_json_time(root, "never", &t), ENOENT);
  assert_int_equal(usage_json_time(root, "num", &t), EINVAL);
  assert_int_equal(usage_json_time(root, "null", &t), ENOENT);
  assert_int_equal(usage_json_time(root, "absent", &t), ENOENT);
  usage_json_free(root);
}

static void test_errstr(void **state) {
  (void)state;
  assert_string_equal(usage_json_errstr(0), "ok");
  assert_string_equal(usage_json_errstr(ENOENT), "missing");
  assert_string_equal(usage_json_errstr(EINVAL), "wrong type");
  assert_string_equal(usage_json_errstr(ERANGE), "out of range");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_int64),         cmocka_unit_test(test_double),
      cmocka_unit_test(test_bool_str_text), cmocka_unit_test(test_path_array),
      cmocka_unit_test(test_bad_documents), cmocka_unit_test(test_depth),
      cmocka_unit_test(test_time),          cmocka_unit_test(test_errstr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
