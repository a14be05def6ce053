/* SPDX-License-Identifier: MIT */
/* test_ccc_users: GetServiceUserUsage parsing (src/api/ccc/users.c) over
 * golden fixture pairs: field values left out and counted, enums as names
 * or numbers, the period label, bodies that are not usable. */
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
#define SVC2 "7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1"
#define USR "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
#define RESELLER "11112222333344445555666677778888"
#define TOKEN "tok-SECRET-changes"

/* label returns the value of label `name` of a sample, or NULL. */
static const char *label(const usage_sample_t *s, const char *name) {
  for (unsigned i = 0; i < s->nlabels; i++)
    if (strcmp(s->labels[2 * i], name) == 0)
      return s->labels[2 * i + 1];
  return NULL;
}

/* ---- GetServiceUserUsage ---- */

static void test_user_fixtures(void **state) {
  static const struct {
    const char *json, *prom;
    const char *period_type; /* the configured PeriodType */
    int details;
    unsigned bad_fields;
    const char *bad_field;
  } cases[] = {
      {"user_usage_spec", "user_usage_spec", "Daily", 0, 0, ""},
      {"user_usage_spec", "user_usage_spec_details", "Daily", 1, 0, ""},
      {"user_usage_realistic", "user_usage_realistic", "Daily", 0, 0, ""},
      {"user_usage_realistic", "user_usage_realistic_details", "Daily", 1, 0,
       ""},
      {"user_usage_never", "user_usage_never", "Daily", 0, 0, ""},
      {"user_usage_pascal", "user_usage_pascal", "Daily", 1, 0, ""},
      /* as ServiceStack servers send it: enums as integers (PeriodType 1 is
       * Monthly whatever is configured), nested PascalCase, dashed GUIDs,
       * \/Date(ms-0000)\/, a local time with its offset, "never" as
       * DateTime.MinValue without a zone */
      {"user_usage_servicestack", "user_usage_servicestack", "Daily", 0, 0,
       ""},
      /* no periodType in the body: the configured one labels the figures */
      {"user_usage_no_period", "user_usage_no_period", "Monthly", 0, 0, ""},
      {"user_usage_wrong_types", "user_usage_wrong_types", "Daily", 0, 5,
       "totalMessagesSent: wrong type"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char file[256];
    size_t len;
    snprintf(file, sizeof(file), "ccc/%s.json", cases[i].json);
    char *body = tu_read_fixture(file, &len);
    snprintf(file, sizeof(file), "ccc/%s.prom", cases[i].prom);
    char *want = tu_read_fixture(file, NULL);

    usage_batch_t *b = usage_batch_create("acme", "user:" SVC ":" USR);
    usage_parse_result_t res;
    int st = usage_ccc_parse_user_usage(
        body, len, SVC, USR, cases[i].period_type, cases[i].details, b, &res);
    if (st != 0)
      fail_msg("%s: status %d: %s", cases[i].prom, st, res.error);
    if (res.bad_fields != cases[i].bad_fields)
      fail_msg("%s: %u bad fields (%s), want %u", cases[i].prom, res.bad_fields,
               res.bad_field, cases[i].bad_fields);
    assert_string_equal(res.bad_field, cases[i].bad_field);
    char *got = tu_render_batch(b);
    if (strcmp(got, want) != 0)
      fail_msg("%s: got\n%s\nwant\n%s", cases[i].prom, got, want);
    /* personal data only with ExportUserDetails */
    if (!cases[i].details &&
        (strstr(got, "email=") != NULL || strstr(got, "first_name=") != NULL))
      fail_msg("%s: personal data without ExportUserDetails", cases[i].prom);
    free(got);
    free(want);
    free(body);
  }
}

/* One field at a time: left out and counted, the others kept. */
static void test_user_field_values(void **state) {
  static const struct {
    const char *field;
    const char *json;
    int family;
    int kept;
    double value;
    const char *bad;
  } cases[] = {
      {"totalMessagesSent", "17", FAM_CCC_USER_MESSAGES_SENT, 1, 17, ""},
      {"totalMessagesSent", "0", FAM_CCC_USER_MESSAGES_SENT, 1, 0, ""},
      {"totalMessagesSent", "null", FAM_CCC_USER_MESSAGES_SENT, 0, 0, ""},
      {"totalMessagesSent", "\"17\"", FAM_CCC_USER_MESSAGES_SENT, 0, 0,
       "totalMessagesSent: wrong type"},
      {"totalMessagesSent", "1.5", FAM_CCC_USER_MESSAGES_SENT, 0, 0,
       "totalMessagesSent: wrong type"},
      {"totalMessagesSent", "-3", FAM_CCC_USER_MESSAGES_SENT, 0, 0,
       "totalMessagesSent: out of range"},
      {"totalAttachmentsSize", "5368709120", FAM_CCC_USER_ATTACHMENT_BYTES, 1,
       5368709120.0, ""},
      {"totalAttachmentsSize", "true", FAM_CCC_USER_ATTACHMENT_BYTES, 0, 0,
       "totalAttachmentsSize: wrong type"},
      {"totalInvitationsAccepted", "{}", FAM_CCC_USER_INVITATIONS_ACCEPTED, 0,
       0, "totalInvitationsAccepted: wrong type"},
      {"totalInvitationsSent", "1e400", FAM_CCC_USER_INVITATIONS_SENT, 0, 0,
       "totalInvitationsSent: out of range"},
      {"lastLogin", "\"2024-05-01T12:00:00Z\"", FAM_CCC_USER_LAST_LOGIN, 1,
       1714564800, ""},
      {"lastLogin", "\"2024-05-01T14:00:00+02:00\"", FAM_CCC_USER_LAST_LOGIN, 1,
       1714564800, ""},
      {"lastLogin", "\"2024-05-01T12:00:00.250Z\"", FAM_CCC_USER_LAST_LOGIN, 1,
       1714564800.25, ""},
      {"lastLogin", "\"/Date(1714564800000)/\"", FAM_CCC_USER_LAST_LOGIN, 1,
       1714564800, ""},
      {"lastLogin", "\"0001-01-01T00:00:00Z\"", FAM_CCC_USER_LAST_LOGIN, 0, 0,
       ""},
      {"lastLogin", "\"0001-01-01T00:00:00\"", FAM_CCC_USER_LAST_LOGIN, 0, 0,
       ""},
      {"lastLogin", "null", FAM_CCC_USER_LAST_LOGIN, 0, 0, ""},
      {"lastLogin", "\"\"", FAM_CCC_USER_LAST_LOGIN, 0, 0, ""},
      {"lastLogin", "1714564800", FAM_CCC_USER_LAST_LOGIN, 0, 0,
       "lastLogin: wrong type"},
      {"lastLogin", "\"yesterday\"", FAM_CCC_USER_LAST_LOGIN, 0, 0,
       "lastLogin: wrong type"},
      {"lastActivity", "\"2024-13-01T00:00:00Z\"", FAM_CCC_USER_LAST_ACTIVITY,
       0, 0, "lastActivity: wrong type"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char body[512];
    /* totalMessagesReceived is the good field that must stay */
    snprintf(body, sizeof(body),
             "{\"periodType\":\"Daily\",\"usage\":{\"%s\": %s, "
             "\"totalMessagesReceived\": 4}}",
             cases[i].field, cases[i].json);
    usage_batch_t *b = usage_batch_create("acme", "e");
    usage_parse_result_t res;
    assert_int_equal(usage_ccc_parse_user_usage(body, strlen(body), SVC, USR,
                                                "Daily", 0, b, &res),
                     0);
    int found = 0, good = 0;
    for (size_t k = 0; k < usage_batch_size(b); k++) {
      const usage_sample_t *s = usage_batch_sample(b, k);
      if (s->family == cases[i].family) {
        found = 1;
        if (s->value != cases[i].value)
          fail_msg("%s %s: value %.3f, want %.3f", cases[i].field,
                   cases[i].json, s->value, cases[i].value);
      }
      if (s->family == FAM_CCC_USER_MESSAGES_RECEIVED && s->value == 4)
        good = 1;
    }
    if (found != cases[i].kept)
      fail_msg("%s %s: kept %d, want %d", cases[i].field, cases[i].json, found,
               cases[i].kept);
    if (!good)
      fail_msg("%s %s: the good field was lost", cases[i].field, cases[i].json);
    if (res.bad_fields != (cases[i].bad[0] ? 1u : 0u))
      fail_msg("%s %s: %u bad fields", cases[i].field, cases[i].json,
               res.bad_fields);
    assert_string_equal(res.bad_field, cases[i].bad);
    /* info + received (+ the field) */
    assert_int_equal(usage_batch_size(b), 2 + (size_t)cases[i].kept);
    usage_batch_destroy(b);
  }
}

/* The enums as names or numbers, and the period label. */
static void test_user_enums(void **state) {
  static const struct {
    const char *status, *group_type, *period_type;
    const char *want_status, *want_group_type, *want_period;
  } cases[] = {
      {"\"0\"", "\"Professional\"", "\"Daily\"", "Active", "Professional",
       "daily"},
      {"\"1\"", "\"Guest\"", "\"Monthly\"", "Disabled", "Guest", "monthly"},
      {"0", "0", "0", "Active", "Professional", "daily"},
      {"1", "1", "1", "Disabled", "Guest", "monthly"},
      {"\"Active\"", "1", "\"monthly\"", "Active", "Guest", "monthly"},
      {"\"Disabled\"", "\"0\"", "\"1\"", "Disabled", "Professional", "monthly"},
      /* unknown values are shown as sent */
      {"\"Suspended\"", "7", "null", "Suspended", "7", "daily"},
      {"null", "null", "\"\"", "", "", "daily"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char body[512];
    snprintf(body, sizeof(body),
             "{\"periodType\":%s,\"usage\":{\"status\":%s,\"groupType\":%s,"
             "\"groupName\":\"Sales\",\"totalMessagesSent\":3}}",
             cases[i].period_type, cases[i].status, cases[i].group_type);
    usage_batch_t *b = usage_batch_create("acme", "e");
    usage_parse_result_t res;
    assert_int_equal(usage_ccc_parse_user_usage(body, strlen(body), SVC, USR,
                                                "Daily", 0, b, &res),
                     0);
    assert_int_equal(usage_batch_size(b), 2);
    const usage_sample_t *info = usage_batch_sample(b, 0);
    assert_int_equal(info->family, FAM_CCC_USER_INFO);
    if (strcmp(label(info, "status"), cases[i].want_status) != 0 ||
        strcmp(label(info, "group_type"), cases[i].want_group_type) != 0)
      fail_msg("case %zu: status \"%s\" group_type \"%s\"", i,
               label(info, "status"), label(info, "group_type"));
    assert_string_equal(label(info, "group"), "Sales");
    assert_string_equal(label(info, "service"), SVC);
    assert_string_equal(label(info, "user"), USR);
    const usage_sample_t *sent = usage_batch_sample(b, 1);
    assert_int_equal(sent->family, FAM_CCC_USER_MESSAGES_SENT);
    if (strcmp(label(sent, "period"), cases[i].want_period) != 0)
      fail_msg("case %zu: period \"%s\", want \"%s\"", i, label(sent, "period"),
               cases[i].want_period);
    usage_batch_destroy(b);
  }
}

static void test_user_bad_bodies(void **state) {
  static const struct {
    const char *name;
    const char *body;
    const char *err;
  } cases[] = {
      {"missing usage",
       "{\"serviceGuid\":\"" SVC "\",\"periodType\":\"Daily\"}",
       "no \"usage\" object"},
      {"usage null", "{\"usage\":null}", "no \"usage\" object"},
      {"usage array", "{\"usage\":[{\"totalMessagesSent\":1}]}",
       "no \"usage\" object"},
      {"usage string", "{\"usage\":\"none\"}", "no \"usage\" object"},
      {"error only",
       "{\"responseStatus\":{\"errorCode\":\"NotFound\",\"message\":\"x\"}}",
       "no \"usage\" object"},
      {"array root", "[{\"usage\":{}}]", "no \"usage\" object"},
      {"truncated", "{\"usage\":{\"totalMessagesSent\":1,", "truncated"},
      {"truncated inside a string", "{\"usage\":{\"groupName\":\"Sal",
       "truncated"},
      {"empty", "", "empty body"},
      {"html", "<html><body>502 Bad Gateway</body></html>", "invalid JSON"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_batch_t *b = usage_batch_create("acme", "e");
    usage_parse_result_t res;
    int st = usage_ccc_parse_user_usage(cases[i].body, strlen(cases[i].body),
                                        SVC, USR, "Daily", 1, b, &res);
    if (st != EINVAL)
      fail_msg("%s: status %d, want EINVAL", cases[i].name, st);
    if (strstr(res.error, cases[i].err) == NULL)
      fail_msg("%s: error \"%s\", want \"%s\"", cases[i].name, res.error,
               cases[i].err);
    assert_int_equal(usage_batch_size(b), 0);
    usage_batch_destroy(b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_user_fixtures),
      cmocka_unit_test(test_user_field_values),
      cmocka_unit_test(test_user_enums),
      cmocka_unit_test(test_user_bad_bodies),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
