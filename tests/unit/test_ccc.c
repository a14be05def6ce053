/* SPDX-License-Identifier: MIT */
/* test_ccc: GetServiceUsage parsing over golden fixture pairs
 * (tests/fixtures/ccc/NAME.json beside NAME.prom), bad bodies, GUIDs, the
 * status set and API error extraction. */
#include "api/ccc/ccc.h"
#include "families.h"
#include "json.h"
#include "store.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#define SVC "2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a"

static void test_fixtures(void **state) {
  static const struct {
    const char *name;
    unsigned bad_fields;
    const char *bad_field;
  } cases[] = {
      {"service_usage_spec", 0, ""},
      {"service_usage_realistic", 0, ""},
      {"service_usage_pascal", 0, ""},
      {"service_usage_dashed", 0, ""},
      {"service_usage_status_number", 0, ""},
      {"service_usage_wrong_types", 7, "proUserCount: wrong type"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char file[256];
    size_t len;
    snprintf(file, sizeof(file), "ccc/%s.json", cases[i].name);
    char *body = tu_read_fixture(file, &len);
    snprintf(file, sizeof(file), "ccc/%s.prom", cases[i].name);
    char *want = tu_read_fixture(file, NULL);

    usage_batch_t *b = usage_batch_create("acme", "service:" SVC);
    usage_parse_result_t res;
    int st = usage_ccc_parse_service_usage(body, len, SVC, b, &res);
    if (st != 0)
      fail_msg("%s: status %d: %s", cases[i].name, st, res.error);
    if (res.bad_fields != cases[i].bad_fields)
      fail_msg("%s: %u bad fields (%s), want %u", cases[i].name, res.bad_fields,
               res.bad_field, cases[i].bad_fields);
    assert_string_equal(res.bad_field, cases[i].bad_field);
    /* the state, as the scrape adds it (string or number) */
    char err[128];
    usage_json_t *root = usage_json_parse(body, len, 0, err, sizeof(err));
    const char *status = usage_json_text(root, "status");
    if (status != NULL)
      assert_int_equal(usage_ccc_add_status(b, SVC, status), 0);
    usage_json_free(root);

    char *got = tu_render_batch(b);
    if (strcmp(got, want) != 0)
      fail_msg("%s: got\n%s\nwant\n%s", cases[i].name, got, want);
    free(got);
    free(want);
    free(body);
  }
}

static void test_bad_bodies(void **state) {
  static const struct {
    const char *name;
    const char *body;
    const char *err;
  } cases[] = {
      {"truncated", "{\"name\":\"x\",\"totalUserCount\":", "truncated"},
      {"empty", "", "empty body"},
      {"array", "[1,2,3]", "not a JSON object"},
      {"string", "\"hello\"", "not a JSON object"},
      {"number", "42", "not a JSON object"},
      {"null", "null", "not a JSON object"},
      {"html", "<!DOCTYPE html><html><body>Service Unavailable</body></html>",
       "invalid JSON"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_batch_t *b = usage_batch_create("acme", "service:" SVC);
    usage_parse_result_t res;
    int st = usage_ccc_parse_service_usage(cases[i].body, strlen(cases[i].body),
                                           SVC, b, &res);
    if (st != EINVAL)
      fail_msg("%s: status %d, want EINVAL", cases[i].name, st);
    if (strstr(res.error, cases[i].err) == NULL)
      fail_msg("%s: error \"%s\", want \"%s\"", cases[i].name, res.error,
               cases[i].err);
    assert_int_equal(usage_batch_size(b), 0);
    usage_batch_destroy(b);
  }
}

/* One field at a time: left out and counted, the others kept. */
static void test_field_values(void **state) {
  static const struct {
    const char *json; /* the value of totalUserCount */
    int kept;
    double value;
    const char *bad; /* bad_field text, "" when fine */
  } cases[] = {
      {"17", 1, 17, ""},
      {"17.0", 1, 17, ""},
      {"0", 1, 0, ""},
      {"1e3", 1, 1000, ""},
      {"9223372036854775807", 1, 9223372036854775807.0, ""},
      {"null", 0, 0, ""},
      {"\"17\"", 0, 0, "totalUserCount: wrong type"},
      {"17.5", 0, 0, "totalUserCount: wrong type"},
      {"true", 0, 0, "totalUserCount: wrong type"},
      {"[]", 0, 0, "totalUserCount: wrong type"},
      {"{}", 0, 0, "totalUserCount: wrong type"},
      {"-1", 0, 0, "totalUserCount: out of range"},
      {"1e400", 0, 0, "totalUserCount: out of range"},
      {"99999999999999999999", 0, 0, "totalUserCount: out of range"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char body[256];
    snprintf(body, sizeof(body),
             "{\"TotalUserCount\": %s, \"proUserCount\": 4}", cases[i].json);
    usage_batch_t *b = usage_batch_create("acme", "e");
    usage_parse_result_t res;
    assert_int_equal(
        usage_ccc_parse_service_usage(body, strlen(body), SVC, b, &res), 0);
    int users = -1, pro = -1;
    for (size_t k = 0; k < usage_batch_size(b); k++) {
      const usage_sample_t *s = usage_batch_sample(b, k);
      if (s->family == FAM_CCC_SERVICE_USERS) {
        users = (int)k;
        if (s->value != cases[i].value)
          fail_msg("%s: value %g, want %g", cases[i].json, s->value,
                   cases[i].value);
      }
      if (s->family == FAM_CCC_SERVICE_PRO_USERS)
        pro = (int)k;
    }
    if ((users >= 0) != cases[i].kept)
      fail_msg("%s: kept %d, want %d", cases[i].json, users >= 0,
               cases[i].kept);
    if (pro < 0)
      fail_msg("%s: the good field was lost", cases[i].json);
    assert_int_equal(res.bad_fields, cases[i].bad[0] ? 1 : 0);
    assert_string_equal(res.bad_field, cases[i].bad);
    /* info + pro (+ users) */
    assert_int_equal(usage_batch_size(b), 2 + (size_t)cases[i].kept);
    usage_batch_destroy(b);
  }
}

static void test_missing_fields(void **state) {
  (void)state;
  usage_batch_t *b = usage_batch_create("acme", "e");
  usage_parse_result_t res;
  assert_int_equal(usage_ccc_parse_service_usage("{}", 2, SVC, b, &res), 0);
  assert_int_equal(res.bad_fields, 0);
  /* only the info sample, with empty descriptions */
  assert_int_equal(usage_batch_size(b), 1);
  const usage_sample_t *s = usage_batch_sample(b, 0);
  assert_int_equal(s->family, FAM_CCC_SERVICE_INFO);
  assert_int_equal(s->nlabels, 4);
  assert_string_equal(s->labels[1], SVC);
  assert_string_equal(s->labels[3], "");
  usage_batch_destroy(b);
}

static void test_guid(void **state) {
  static const struct {
    const char *in;
    int want;
    const char *out;
  } cases[] = {
      {"2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a", 0, SVC},
      {"2F1C0A0E9D7B4C6E8A5F3B2D1C0E9F8A", 0, SVC},
      {"2f1c0a0e-9d7b-4c6e-8a5f-3b2d1c0e9f8a", 0, SVC},
      {"{2F1C0A0E-9D7B-4C6E-8A5F-3B2D1C0E9F8A}", 0, SVC},
      {"{2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a}", 0, SVC},
      {"", EINVAL, NULL},
      {"2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8", EINVAL, NULL},   /* 31 */
      {"2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a0", EINVAL, NULL}, /* 33 */
      {"2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8g", EINVAL, NULL},
      {"{2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a", EINVAL, NULL},
      {"2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a}", EINVAL, NULL},
      {"{2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a}x", EINVAL, NULL},
      {"2f1c0a0e 9d7b4c6e8a5f3b2d1c0e9f8a", EINVAL, NULL},
      {"acme", EINVAL, NULL},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char out[33] = "";
    int st = usage_ccc_guid_normalize(cases[i].in, out);
    if (st != cases[i].want)
      fail_msg("guid \"%s\": status %d, want %d", cases[i].in, st,
               cases[i].want);
    if (st == 0)
      assert_string_equal(out, cases[i].out);
  }
}

static void test_status(void **state) {
  static const char *const names[] = {"Blocked",          "AccountCancelled",
                                      "AccountSuspended", "Provisioning",
                                      "TrialExpired",     "TrialActive",
                                      "DemoAccount",      "CertifiedSecure"};
  static const struct {
    const char *in;
    int on;            /* index of the state set to 1, -1 none */
    const char *extra; /* a ninth sample's status label, or NULL */
  } cases[] = {
      {"Blocked", 0, NULL},
      {"AccountCancelled", 1, NULL},
      {"AccountSuspended", 2, NULL},
      {"Provisioning", 3, NULL},
      {"TrialExpired", 4, NULL},
      {"TrialActive", 5, NULL},
      {"DemoAccount", 6, NULL},
      {"CertifiedSecure", 7, NULL},
      {"trialactive", 5, NULL},
      {"0", 0, NULL},
      {"3", 3, NULL},
      {"7", 7, NULL},
      {"8", -1, "8"},
      {"-1", -1, "-1"},
      {"Archived", -1, "Archived"},
      {"", -1, ""},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_batch_t *b = usage_batch_create("acme", "status:" SVC);
    assert_int_equal(usage_ccc_add_status(b, SVC, cases[i].in), 0);
    size_t want_n = 8 + (cases[i].extra ? 1 : 0);
    if (usage_batch_size(b) != want_n)
      fail_msg("status \"%s\": %zu samples, want %zu", cases[i].in,
               usage_batch_size(b), want_n);
    for (size_t k = 0; k < 8; k++) {
      const usage_sample_t *s = usage_batch_sample(b, k);
      assert_int_equal(s->family, FAM_CCC_SERVICE_STATUS);
      assert_string_equal(s->labels[0], "service");
      assert_string_equal(s->labels[1], SVC);
      assert_string_equal(s->labels[2], "status");
      assert_string_equal(s->labels[3], names[k]);
      if (s->value != ((int)k == cases[i].on ? 1 : 0))
        fail_msg("status \"%s\": %s = %g", cases[i].in, names[k], s->value);
    }
    if (cases[i].extra != NULL) {
      const usage_sample_t *s = usage_batch_sample(b, 8);
      assert_string_equal(s->labels[3], cases[i].extra);
      assert_true(s->value == 1);
    }
    usage_batch_destroy(b);
  }
}

static void test_api_error(void **state) {
  static const struct {
    const char *name;
    const char *body;
    const char *code, *message;
  } cases[] = {
      {"full",
       "{\"responseStatus\":{\"errorCode\":\"ServiceBlocked\",\"message\":"
       "\"The service is blocked\",\"stackTrace\":\"at Secret.Stack() "
       "password=hunter2\",\"errors\":[]}}",
       "ServiceBlocked", "The service is blocked"},
      {"PascalCase",
       "{\"ResponseStatus\":{\"ErrorCode\":\"Provisioning\",\"Message\":"
       "\"wait\\nplease\",\"StackTrace\":\"SECRET\"}}",
       "Provisioning", "wait please"},
      {"number code", "{\"responseStatus\":{\"errorCode\":404}}", "404", ""},
      {"stack trace only",
       "{\"responseStatus\":{\"stackTrace\":\"SECRET trace\"}}", "", ""},
      {"no status", "{\"name\":\"x\"}", "", ""},
      {"html", "<html>SECRET</html>", "", ""},
      {"empty", "", "", ""},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char code[64] = "junk", message[256] = "junk";
    usage_ccc_api_error(cases[i].body, strlen(cases[i].body), code,
                        sizeof(code), message, sizeof(message));
    if (strcmp(code, cases[i].code) != 0 ||
        strcmp(message, cases[i].message) != 0)
      fail_msg("%s: code \"%s\" message \"%s\"", cases[i].name, code, message);
    assert_null(strstr(code, "SECRET"));
    assert_null(strstr(message, "SECRET"));
    assert_null(strstr(message, "hunter2"));
  }
  /* a message longer than the buffer is cut, not overflowed */
  char body[1024];
  char longmsg[600];
  memset(longmsg, 'm', sizeof(longmsg) - 1);
  longmsg[sizeof(longmsg) - 1] = 0;
  snprintf(body, sizeof(body),
           "{\"responseStatus\":{\"errorCode\":\"E\",\"message\":\"%s\"}}",
           longmsg);
  char code[8], message[16];
  usage_ccc_api_error(body, strlen(body), code, sizeof(code), message,
                      sizeof(message));
  assert_string_equal(code, "E");
  assert_int_equal(strlen(message), 15);
}

/* Quirks of real CCC answers, from fixtures: the error envelope in either
 * casing with the reason only in its Errors array, and an HTML page from a
 * proxy where JSON belongs (one clear error text, no markup in it). */
static void test_quirk_fixtures(void **state) {
  (void)state;
  static const struct {
    const char *file, *code, *message;
  } errs[] = {
      {"ccc/error_errors_pascal.json", "NotEmpty",
       "'Service Guid' must not be empty."},
      {"ccc/error_errors_camel.json", "ValidationException",
       "Validation failed"},
      {"ccc/proxy_page.html", "", ""},
  };
  for (size_t i = 0; i < sizeof(errs) / sizeof(*errs); i++) {
    size_t len;
    char *body = tu_read_fixture(errs[i].file, &len);
    char code[64], message[256];
    usage_ccc_api_error(body, len, code, sizeof(code), message,
                        sizeof(message));
    if (strcmp(code, errs[i].code) != 0 ||
        strcmp(message, errs[i].message) != 0)
      fail_msg("%s: code \"%s\" message \"%s\"", errs[i].file, code, message);
    free(body);
  }
  size_t len;
  char *html = tu_read_fixture("ccc/proxy_page.html", &len);
  usage_batch_t *b = usage_batch_create("acme", "service:" SVC);
  usage_parse_result_t res;
  assert_int_equal(usage_ccc_parse_service_usage(html, len, SVC, b, &res),
                   EINVAL);
  assert_non_null(strstr(res.error, "invalid JSON: an HTML or XML page"));
  assert_null(strchr(res.error, '\n'));
  assert_null(strstr(res.error, "Bad Gateway"));
  assert_int_equal(usage_batch_size(b), 0);
  usage_batch_destroy(b);
  free(html);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixtures),
      cmocka_unit_test(test_bad_bodies),
      cmocka_unit_test(test_field_values),
      cmocka_unit_test(test_missing_fields),
      cmocka_unit_test(test_guid),
      cmocka_unit_test(test_status),
      cmocka_unit_test(test_api_error),
      cmocka_unit_test(test_quirk_fixtures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
