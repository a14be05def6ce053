/* SPDX-License-Identifier: MIT */
/* test_ccc_changes: GetServiceUserUsage parsing over golden fixture pairs,
 * SearchServiceStatusChanges pages, the exactly-once merge of status
 * changes, and whole scrapes against a loopback libmicrohttpd server that
 * serves canned pages by Page=N: paging edge cases, the "changes" entity,
 * error reasons and the StateFile across a restart of the source. */
#include "api/ccc.h"
#include "families.h"
#include "json.h"
#include "source.h"
#include "store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#define SVC "2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a"
#define SVC2 "7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1"
#define USR "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
#define RESELLER "11112222333344445555666677778888"
#define TOKEN "tok-SECRET-changes"

static const char *const states[] = {
    "Blocked",      "AccountCancelled", "AccountSuspended", "Provisioning",
    "TrialExpired", "TrialActive",      "DemoAccount",      "CertifiedSecure"};
#define NSTATES 8

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

/* ---- SearchServiceStatusChanges pages ---- */

#define CHG1 "c1000000000000000000000000000001"
#define CHG2 "c2000000000000000000000000000002"

static void test_changes_page(void **state) {
  static const struct {
    const char *name;
    const char *body; /* NULL: the fixture changes_spec.json */
    int rc;
    size_t num;
    unsigned bad_fields;
    const char *bad_field;
    long page_size, total_pages, total_items, current_page;
  } cases[] = {
      {"spec sample", NULL, 0, 0, 1, "changedOn: missing", 0, 0, 0, 0},
      {"results missing", "{\"pageSize\":25,\"totalPages\":0}", 0, 0, 0, "", 25,
       0, -1, -1},
      {"results null", "{\"results\":null,\"currentPage\":1}", 0, 0, 0, "", -1,
       -1, -1, 1},
      {"results empty",
       "{\"pageSize\":25,\"totalPages\":0,\"totalItems\":0,\"currentPage\":1,"
       "\"results\":[]}",
       0, 0, 0, "", 25, 0, 0, 1},
      {"one good",
       "{\"results\":[{\"serviceGuid\":\"" SVC "\",\"serviceStatusChangeGuid\":"
       "\"" CHG1 "\",\"status\":\"TrialActive\",\"changedOn\":"
       "\"2024-05-01T12:00:00Z\"}]}",
       0, 1, 0, "", -1, -1, -1, -1},
      {"no change GUID",
       "{\"results\":[{\"serviceGuid\":\"" SVC "\",\"status\":\"Blocked\","
       "\"changedOn\":\"2024-05-01T12:00:00Z\"},{\"serviceGuid\":\"" SVC
       "\",\"serviceStatusChangeGuid\":\"" CHG1 "\",\"status\":\"Blocked\","
       "\"changedOn\":\"2024-05-01T12:00:00Z\"}]}",
       0, 1, 1, "serviceStatusChangeGuid: missing", -1, -1, -1, -1},
      {"bad change GUID",
       "{\"results\":[{\"serviceGuid\":\"" SVC "\",\"serviceStatusChangeGuid\":"
       "\"nope\",\"status\":\"Blocked\",\"changedOn\":"
       "\"2024-05-01T12:00:00Z\"}]}",
       0, 0, 1, "serviceStatusChangeGuid: wrong type", -1, -1, -1, -1},
      {"no date and never",
       "{\"results\":[{\"serviceGuid\":\"" SVC "\",\"serviceStatusChangeGuid\":"
       "\"" CHG1 "\",\"status\":\"Blocked\"},{\"serviceGuid\":\"" SVC "\","
       "\"serviceStatusChangeGuid\":\"" CHG2 "\",\"status\":\"Blocked\","
       "\"changedOn\":\"0001-01-01T00:00:00Z\"}]}",
       0, 0, 2, "changedOn: missing", -1, -1, -1, -1},
      {"date of the wrong type",
       "{\"results\":[{\"serviceGuid\":\"" SVC "\",\"serviceStatusChangeGuid\":"
       "\"" CHG1 "\",\"status\":\"Blocked\",\"changedOn\":1714564800}]}",
       0, 0, 1, "changedOn: wrong type", -1, -1, -1, -1},
      {"no service",
       "{\"results\":[{\"serviceStatusChangeGuid\":\"" CHG1 "\",\"status\":"
       "\"Blocked\",\"changedOn\":\"2024-05-01T12:00:00Z\"}]}",
       0, 0, 1, "serviceGuid: missing", -1, -1, -1, -1},
      {"no status",
       "{\"results\":[{\"serviceGuid\":\"" SVC "\",\"serviceStatusChangeGuid\":"
       "\"" CHG1 "\",\"changedOn\":\"2024-05-01T12:00:00Z\"}]}",
       0, 0, 1, "status: missing", -1, -1, -1, -1},
      {"results of the wrong type inside", "{\"results\":[1,\"x\",null,[]]}", 0,
       0, 4, "serviceGuid: missing", -1, -1, -1, -1},
      {"results an object", "{\"results\":{\"a\":1}}", EINVAL, 0, 0, "", -1, -1,
       -1, -1},
      {"results a string", "{\"results\":\"none\"}", EINVAL, 0, 0, "", -1, -1,
       -1, -1},
      {"array root", "[]", EINVAL, 0, 0, "", -1, -1, -1, -1},
      {"truncated", "{\"results\":[{\"serviceGuid\":\"" SVC "\"", EINVAL, 0, 0,
       "", -1, -1, -1, -1},
      {"negative paging numbers",
       "{\"pageSize\":-1,\"totalPages\":-5,\"totalItems\":\"7\","
       "\"currentPage\":1.5,\"results\":[]}",
       0, 0, 0, "", -1, -1, -1, -1},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    size_t len;
    char *body = cases[i].body ? strdup(cases[i].body)
                               : tu_read_fixture("ccc/changes_spec.json", &len);
    if (cases[i].body)
      len = strlen(body);
    usage_ccc_changes_page_t page;
    usage_parse_result_t res;
    int rc = usage_ccc_parse_changes_page(body, len, &page, &res);
    if (rc != cases[i].rc)
      fail_msg("%s: status %d, want %d (%s)", cases[i].name, rc, cases[i].rc,
               res.error);
    if (rc != 0) {
      if (res.error[0] == 0)
        fail_msg("%s: no error text", cases[i].name);
      assert_int_equal(page.num, 0);
    } else {
      if (page.num != cases[i].num || res.bad_fields != cases[i].bad_fields)
        fail_msg("%s: %zu items, %u bad (%s); want %zu, %u", cases[i].name,
                 page.num, res.bad_fields, res.bad_field, cases[i].num,
                 cases[i].bad_fields);
      assert_string_equal(res.bad_field, cases[i].bad_field);
      if (page.page_size != cases[i].page_size ||
          page.total_pages != cases[i].total_pages ||
          page.total_items != cases[i].total_items ||
          page.current_page != cases[i].current_page)
        fail_msg("%s: paging %ld %ld %ld %ld", cases[i].name, page.page_size,
                 page.total_pages, page.total_items, page.current_page);
    }
    usage_ccc_changes_page_clear(&page);
    assert_null(page.items);
    free(body);
  }
}

/* The items as stored: GUIDs normalised, enum numbers named, times. */
static void test_changes_items(void **state) {
  (void)state;
  static const char body[] =
      "{\"PageSize\":3,\"TotalPages\":1,\"TotalItems\":3,\"CurrentPage\":1,"
      "\"Results\":["
      "{\"ServiceGuid\":\"2F1C0A0E-9D7B-4C6E-8A5F-3B2D1C0E9F8A\","
      "\"ServiceStatusChangeGuid\":\"{C1000000-0000-0000-0000-000000000001}\","
      "\"Status\":\"AccountSuspended\",\"ChangedOn\":\"2024-05-01T12:00:00Z\","
      "\"ChangedByUserGuid\":\"99999999999999999999999999999999\"},"
      "{\"serviceGuid\":\"" SVC2 "\",\"serviceStatusChangeGuid\":\"" CHG2 "\","
      "\"status\":5,\"changedOn\":\"2024-05-01T12:00:01.500Z\","
      "\"changedByUserGuid\":{\"email\":\"admin@example.com\"}},"
      "{\"serviceGuid\":\"" SVC "\",\"serviceStatusChangeGuid\":"
      "\"c3000000000000000000000000000003\",\"status\":\"Weird state!\","
      "\"changedOn\":\"2024-05-01T14:00:00+02:00\"}]}";
  usage_ccc_changes_page_t page;
  usage_parse_result_t res;
  assert_int_equal(
      usage_ccc_parse_changes_page(body, strlen(body), &page, &res), 0);
  assert_int_equal(page.num, 3);
  assert_int_equal(res.bad_fields, 0);
  assert_int_equal(page.page_size, 3);
  assert_int_equal(page.total_pages, 1);
  assert_string_equal(page.items[0].service, SVC);
  assert_string_equal(page.items[0].change, CHG1);
  assert_string_equal(page.items[0].status, "AccountSuspended");
  assert_true(page.items[0].changed_on == 1714564800);
  assert_string_equal(page.items[1].service, SVC2);
  assert_string_equal(page.items[1].status, "TrialActive"); /* 5 */
  assert_true(page.items[1].changed_on == 1714564801.5);
  /* an unknown state is kept, made safe as a label value and a word */
  assert_string_equal(page.items[2].status, "Weird_state_");
  assert_true(page.items[2].changed_on == 1714564800);
  usage_ccc_changes_page_clear(&page);
}

/* A realistic page (PascalCase, dashed and braced GUIDs, numeric states,
 * the same change twice in two spellings, a "never" date) merged into a
 * reseller-wide stream, against its golden samples. */
static void test_changes_fixture(void **state) {
  (void)state;
  size_t len;
  char *body = tu_read_fixture("ccc/changes_realistic.json", &len);
  char *want = tu_read_fixture("ccc/changes_realistic.prom", NULL);
  usage_ccc_changes_page_t page;
  usage_parse_result_t res;
  assert_int_equal(usage_ccc_parse_changes_page(body, len, &page, &res), 0);
  assert_int_equal(page.num, 4);
  assert_int_equal(res.bad_fields, 1);
  assert_string_equal(res.bad_field, "changedOn: missing");
  assert_int_equal(page.page_size, 25);
  assert_int_equal(page.total_items, 5);
  usage_ccc_changes_t c = {0};
  size_t added;
  assert_int_equal(
      usage_ccc_changes_merge(&c, "all", page.items, page.num, 300, &added), 0);
  assert_int_equal(added, 3);
  usage_batch_t *b = usage_batch_create("acme", "changes");
  assert_int_equal(usage_ccc_changes_add_samples(&c, b), 0);
  char *got = tu_render_batch(b);
  if (strcmp(got, want) != 0)
    fail_msg("got\n%s\nwant\n%s", got, want);
  free(got);
  usage_ccc_changes_clear(&c);
  usage_ccc_changes_page_clear(&page);
  free(want);
  free(body);
}

/* ---- merge ---- */

static usage_ccc_change_t chg(int n, const char *service, const char *status,
                              double t) {
  usage_ccc_change_t c;
  memset(&c, 0, sizeof(c));
  snprintf(c.service, sizeof(c.service), "%s", service);
  snprintf(c.change, sizeof(c.change), "c%031d", n);
  snprintf(c.status, sizeof(c.status), "%s", status);
  c.changed_on = t;
  return c;
}

static uint64_t count_of(const usage_ccc_changes_t *c, const char *service,
                         const char *status) {
  for (size_t i = 0; i < c->counts_num; i++)
    if (strcmp(c->counts[i].service, service) == 0 &&
        strcmp(c->counts[i].status, status) == 0)
      return c->counts[i].count;
  return UINT64_MAX; /* no such counter */
}

static uint64_t total_of(const usage_ccc_changes_t *c) {
  uint64_t n = 0;
  for (size_t i = 0; i < c->counts_num; i++)
    n += c->counts[i].count;
  return n;
}

#define T0 1714564800.0 /* 2024-05-01T12:00:00Z */

static void test_merge_exactly_once(void **state) {
  (void)state;
  usage_ccc_changes_t c = {0};
  size_t added;
  /* query 1: A B C */
  usage_ccc_change_t q1[] = {chg(1, SVC, "TrialActive", T0),
                             chg(2, SVC, "Blocked", T0 + 60),
                             chg(3, SVC, "TrialActive", T0 + 120)};
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q1, 3, 300, &added), 0);
  assert_int_equal(added, 3);
  assert_true(usage_ccc_stream(&c, SVC)->watermark == T0 + 120);
  /* query 2 from watermark - overlap returns them all again, plus D */
  usage_ccc_change_t q2[] = {chg(1, SVC, "TrialActive", T0),
                             chg(2, SVC, "Blocked", T0 + 60),
                             chg(3, SVC, "TrialActive", T0 + 120),
                             chg(4, SVC, "CertifiedSecure", T0 + 180)};
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q2, 4, 300, &added), 0);
  assert_int_equal(added, 1);
  /* the same query once more: nothing new */
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q2, 4, 300, &added), 0);
  assert_int_equal(added, 0);
  assert_int_equal(count_of(&c, SVC, "TrialActive"), 2);
  assert_int_equal(count_of(&c, SVC, "Blocked"), 1);
  assert_int_equal(count_of(&c, SVC, "CertifiedSecure"), 1);
  assert_int_equal(total_of(&c), 4);
  /* all 8 states exist, the unseen ones at 0 */
  assert_int_equal(c.counts_num, NSTATES);
  for (size_t i = 0; i < NSTATES; i++)
    assert_true(count_of(&c, SVC, states[i]) != UINT64_MAX);
  assert_int_equal(count_of(&c, SVC, "DemoAccount"), 0);
  /* last change: the newest */
  assert_int_equal(c.lasts_num, 1);
  assert_string_equal(c.lasts[0].service, SVC);
  assert_string_equal(c.lasts[0].status, "CertifiedSecure");
  assert_true(c.lasts[0].changed_on == T0 + 180);
  assert_true(usage_ccc_stream(&c, SVC)->watermark == T0 + 180);
  usage_ccc_changes_clear(&c);
  assert_null(c.counts);
  assert_int_equal(c.streams_num, 0);
}

static void test_merge_duplicates_in_one_set(void **state) {
  (void)state;
  usage_ccc_changes_t c = {0};
  size_t added;
  /* a page set where the server shifted an item onto the next page */
  usage_ccc_change_t q[] = {
      chg(1, SVC, "Provisioning", T0), chg(2, SVC, "TrialActive", T0 + 10),
      chg(2, SVC, "TrialActive", T0 + 10), chg(3, SVC, "Blocked", T0 + 20),
      chg(1, SVC, "Provisioning", T0)};
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q, 5, 300, &added), 0);
  assert_int_equal(added, 3);
  assert_int_equal(count_of(&c, SVC, "Provisioning"), 1);
  assert_int_equal(count_of(&c, SVC, "TrialActive"), 1);
  assert_int_equal(count_of(&c, SVC, "Blocked"), 1);
  assert_int_equal(total_of(&c), 3);
  /* newest by ChangedOn, not by position */
  assert_string_equal(c.lasts[0].status, "Blocked");
  usage_ccc_changes_clear(&c);
}

static void test_merge_window(void **state) {
  (void)state;
  usage_ccc_changes_t c = {0};
  size_t added;
  usage_ccc_change_t q1[] = {chg(1, SVC, "TrialActive", T0 + 1000)};
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q1, 1, 300, &added), 0);
  usage_ccc_stream_t *st = usage_ccc_stream(&c, SVC);
  assert_true(st->watermark == T0 + 1000);
  /* older than watermark - overlap (700): ignored, new GUID or not */
  usage_ccc_change_t old[] = {chg(5, SVC, "Blocked", T0 + 699),
                              chg(6, SVC, "Blocked", T0)};
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, old, 2, 300, &added), 0);
  assert_int_equal(added, 0);
  assert_int_equal(count_of(&c, SVC, "Blocked"), 0);
  /* late inside the window (loaded late upstream): counted once */
  usage_ccc_change_t late[] = {chg(7, SVC, "AccountSuspended", T0 + 700),
                               chg(8, SVC, "DemoAccount", T0 + 900)};
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, late, 2, 300, &added), 0);
  assert_int_equal(added, 2);
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, late, 2, 300, &added), 0);
  assert_int_equal(added, 0);
  assert_int_equal(count_of(&c, SVC, "AccountSuspended"), 1);
  assert_int_equal(count_of(&c, SVC, "DemoAccount"), 1);
  /* a late change does not move the watermark back, nor the last status */
  st = usage_ccc_stream(&c, SVC);
  assert_true(st->watermark == T0 + 1000);
  assert_string_equal(c.lasts[0].status, "TrialActive");
  assert_true(c.lasts[0].changed_on == T0 + 1000);
  /* overlap 0: only changes at or after the watermark count */
  usage_ccc_change_t edge[] = {chg(9, SVC, "TrialExpired", T0 + 999.999),
                               chg(10, SVC, "TrialExpired", T0 + 1000)};
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, edge, 2, 0, &added), 0);
  assert_int_equal(added, 1);
  assert_int_equal(count_of(&c, SVC, "TrialExpired"), 1);
  usage_ccc_changes_clear(&c);
}

static void test_merge_pruned(void **state) {
  (void)state;
  usage_ccc_changes_t c = {0};
  size_t added;
  /* 2000 changes, one a minute: the seen set keeps only the last window */
  enum { N = 2000 };
  usage_ccc_change_t *q = calloc(N, sizeof(*q));
  for (int i = 0; i < N; i++)
    q[i] = chg(i, SVC, states[i % NSTATES], T0 + 60.0 * i);
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q, N, 300, &added), 0);
  assert_int_equal(added, N);
  usage_ccc_stream_t *st = usage_ccc_stream(&c, SVC);
  assert_true(st->watermark == T0 + 60.0 * (N - 1));
  /* watermark - 300 s: the last 6 (at -300, -240, ... 0) */
  assert_int_equal(st->seen_num, 6);
  for (size_t i = 0; i < st->seen_num; i++)
    assert_true(st->seen[i].changed_on >= st->watermark - 300);
  for (size_t i = 0; i < NSTATES; i++)
    assert_int_equal(count_of(&c, SVC, states[i]), N / NSTATES);
  /* the next query, from watermark - overlap, returns those 6 again plus
   * 100 new ones, repeatedly: the set stays bounded */
  for (int round = 0; round < 20; round++) {
    int first = N - 6 + round * 100;
    usage_ccc_change_t *r = calloc(106, sizeof(*r));
    for (int k = 0; k < 106; k++)
      r[k] = chg(first + k, SVC, "TrialActive", T0 + 60.0 * (first + k));
    assert_int_equal(usage_ccc_changes_merge(&c, SVC, r, 106, 300, &added), 0);
    free(r);
    if (added != 100)
      fail_msg("round %d: %zu added, want 100", round, added);
    st = usage_ccc_stream(&c, SVC);
    if (st->seen_num != 6)
      fail_msg("round %d: %zu seen, want 6", round, st->seen_num);
  }
  assert_int_equal(total_of(&c), N + 20 * 100);
  free(q);
  usage_ccc_changes_clear(&c);
}

/* Streams are separate; a reseller-wide stream feeds many services. */
static void test_merge_streams(void **state) {
  (void)state;
  usage_ccc_changes_t c = {0};
  size_t added;
  usage_ccc_change_t a[] = {chg(1, SVC, "Blocked", T0),
                            chg(2, SVC2, "TrialActive", T0 + 5)};
  assert_int_equal(usage_ccc_changes_merge(&c, "all", a, 2, 300, &added), 0);
  assert_int_equal(added, 2);
  assert_int_equal(c.streams_num, 1);
  assert_int_equal(c.counts_num, 2 * NSTATES);
  assert_int_equal(c.lasts_num, 2);
  assert_int_equal(count_of(&c, SVC, "Blocked"), 1);
  assert_int_equal(count_of(&c, SVC2, "TrialActive"), 1);
  /* an unknown state gets a counter of its own */
  usage_ccc_change_t u[] = {chg(3, SVC, "Archived", T0 + 10)};
  assert_int_equal(usage_ccc_changes_merge(&c, "all", u, 1, 300, &added), 0);
  assert_int_equal(count_of(&c, SVC, "Archived"), 1);
  assert_int_equal(c.counts_num, 2 * NSTATES + 1);
  /* merging nothing creates the stream and changes nothing else */
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, NULL, 0, 300, &added), 0);
  assert_int_equal(added, 0);
  assert_int_equal(c.streams_num, 2);
  assert_true(usage_ccc_stream(&c, SVC)->watermark == 0);
  assert_int_equal(total_of(&c), 3);
  usage_ccc_changes_clear(&c);
}

static void test_add_samples(void **state) {
  (void)state;
  usage_ccc_changes_t c = {0};
  size_t added;
  usage_ccc_change_t q[] = {chg(1, SVC, "Provisioning", T0),
                            chg(2, SVC, "TrialActive", T0 + 30),
                            chg(3, SVC, "TrialActive", T0 + 20)};
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q, 3, 300, &added), 0);
  /* a service without changes yet: counters at 0, no timestamp */
  assert_int_equal(usage_ccc_changes_merge(&c, SVC2, NULL, 0, 300, &added), 0);
  usage_batch_t *b = usage_batch_create("acme", "changes");
  assert_int_equal(usage_ccc_changes_add_samples(&c, b), 0);
  char *got = tu_render_batch(b);
  char want[4096];
  size_t n = (size_t)snprintf(want, sizeof(want),
                              "# HELP usage_ccc_status_changes_total %s\n"
                              "# TYPE usage_ccc_status_changes_total counter\n",
                              usage_families[FAM_CCC_STATUS_CHANGES].help);
  for (size_t i = 0; i < NSTATES; i++)
    n += (size_t)snprintf(
        want + n, sizeof(want) - n,
        "usage_ccc_status_changes_total{source=\"acme\",service=\"" SVC
        "\",status=\"%s\"} %d\n",
        states[i],
        strcmp(states[i], "TrialActive") == 0    ? 2
        : strcmp(states[i], "Provisioning") == 0 ? 1
                                                 : 0);
  n += (size_t)snprintf(
      want + n, sizeof(want) - n,
      "# HELP usage_ccc_service_last_status_change_timestamp_seconds %s\n"
      "# TYPE usage_ccc_service_last_status_change_timestamp_seconds gauge\n"
      "usage_ccc_service_last_status_change_timestamp_seconds{source="
      "\"acme\",service=\"" SVC "\"} 1714564830\n",
      usage_families[FAM_CCC_SERVICE_LAST_STATUS_CHANGE].help);
  /* SVC2 has no counters: merge of nothing only makes its stream */
  if (strcmp(got, want) != 0)
    fail_msg("got\n%s\nwant\n%s", got, want);
  free(got);
  usage_ccc_changes_clear(&c);
}

/* ---- whole scrapes against a canned server ---- */

/* The server: /api/services/SVC/serviceusage answers a good body;
 * /api/services/status answers pages[Page-1], or `beyond` past the last
 * one, or pages[0] for every Page when `repeat`. */
static const char service_body[] =
    "{\"serviceGuid\":\"" SVC "\",\"name\":\"Acme\",\"status\":\"TrialActive\","
    "\"totalUserCount\":12}";
static char page_buf[8][16384];
static const char *pages[8];
static size_t pages_num;
static const char *beyond = "{\"results\":[]}";
static int repeat;
static const char *user_body;
static unsigned user_status = 200;
static unsigned status_hits;
static char queries[16][512]; /* the status requests, decoded */
static pthread_mutex_t server_lock = PTHREAD_MUTEX_INITIALIZER;

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value) {
  (void)kind;
  char *q = cls;
  size_t n = strlen(q);
  snprintf(q + n, 512 - n, "%s%s=%s", n ? "&" : "", key, value ? value : "");
  return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_size, void **req_cls) {
  (void)cls, (void)method, (void)version, (void)upload_data, (void)upload_size;
  static int first;
  if (*req_cls == NULL) {
    *req_cls = &first;
    return MHD_YES;
  }
  const char *body = "{}";
  unsigned status = 404;
  pthread_mutex_lock(&server_lock);
  if (strcmp(url, "/api/services/" SVC "/serviceusage") == 0) {
    body = service_body;
    status = 200;
  } else if (strcmp(url, "/api/services/" SVC "/users/" USR "/usage") == 0 &&
             user_body != NULL) {
    body = user_body;
    status = user_status;
  } else if (strcmp(url, "/api/services/status") == 0) {
    if (status_hits < 16) {
      queries[status_hits][0] = 0;
      MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_arg,
                                queries[status_hits]);
    }
    status_hits++;
    const char *p =
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "Page");
    long n = p ? atol(p) : 1;
    if (repeat)
      body = pages[0];
    else if (n >= 1 && (size_t)n <= pages_num)
      body = pages[n - 1];
    else
      body = beyond;
    status = 200;
  }
  pthread_mutex_unlock(&server_lock);
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/json");
  enum MHD_Result ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static struct MHD_Daemon *server;
static unsigned server_port;

static void server_start(void) {
  status_hits = 0;
  repeat = 0;
  pages_num = 0;
  beyond = "{\"results\":[]}";
  user_body = NULL;
  user_status = 200;
  server = tu_http_start(handler, NULL, &server_port);
}

static void server_stop(void) {
  MHD_stop_daemon(server);
  server = NULL;
}

/* page_set fills pages[slot] with items [first, first + count): change GUID
 * from the number (dashed when `dashed`), status states[n % 8], ChangedOn
 * base + 60 n. total_pages < 0 leaves the paging fields out. */
static double items_base;

static void page_set(size_t slot, int first, int count, int page_size,
                     int total_pages, int dashed) {
  char *out = page_buf[slot];
  size_t cap = sizeof(page_buf[slot]), n = 0;
  if (total_pages >= 0)
    n += (size_t)snprintf(out + n, cap - n,
                          "{\"pageSize\":%d,\"totalPages\":%d,"
                          "\"currentPage\":%zu,\"results\":[",
                          page_size, total_pages, slot + 1);
  else
    n += (size_t)snprintf(out + n, cap - n, "{\"results\":[");
  for (int i = first; i < first + count; i++) {
    char when[32];
    time_t t = (time_t)(items_base + 60.0 * i);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    char guid[40];
    if (dashed)
      snprintf(guid, sizeof(guid), "C0000000-0000-0000-0000-%012d", i);
    else
      snprintf(guid, sizeof(guid), "c%031d", i);
    n += (size_t)snprintf(
        out + n, cap - n,
        "%s{\"serviceGuid\":\"%s\",\"serviceStatusChangeGuid\":\"%s\","
        "\"status\":\"%s\",\"changedOn\":\"%s\",\"changedByUserGuid\":"
        "\"99999999999999999999999999999999\"}",
        i > first ? "," : "", SVC, guid, states[i % NSTATES], when);
  }
  snprintf(out + n, cap - n, "]}");
  assert_true(n + 2 < cap);
  pages[slot] = out;
  if (pages_num < slot + 1)
    pages_num = slot + 1;
}

/* expect_counts adds the states of items [first, first + count). */
static void expect_counts(uint64_t want[NSTATES], int first, int count) {
  for (int i = first; i < first + count; i++)
    want[i % NSTATES]++;
}

/* The fake sink: a store, the log, and the last "changes" batch. */
static usage_store_t *store;
static char log_text[65536];
static size_t log_len;
static unsigned changes_commits;
static double changes_values[NSTATES]; /* SVC's counters, -1 = absent */
static size_t changes_samples;
static double last_change_ts; /* -1 = absent */
static char status_on[32];    /* the state set to 1 by "status:SVC" */

static void sink_log(void *ud, int level, const char *msg) {
  (void)ud;
  int n = snprintf(log_text + log_len, sizeof(log_text) - log_len, "%d %s\n",
                   level, msg);
  if (n > 0 && log_len + (size_t)n < sizeof(log_text))
    log_len += (size_t)n;
}

static int sink_commit(void *ud, usage_batch_t *b) {
  (void)ud;
  if (strcmp(usage_batch_entity(b), "changes") == 0) {
    changes_commits++;
    changes_samples = usage_batch_size(b);
    last_change_ts = -1;
    for (size_t i = 0; i < NSTATES; i++)
      changes_values[i] = -1;
    for (size_t i = 0; i < usage_batch_size(b); i++) {
      const usage_sample_t *s = usage_batch_sample(b, i);
      if (strcmp(label(s, "service"), SVC) != 0)
        continue;
      if (s->family == FAM_CCC_SERVICE_LAST_STATUS_CHANGE)
        last_change_ts = s->value;
      if (s->family != FAM_CCC_STATUS_CHANGES)
        continue;
      for (size_t k = 0; k < NSTATES; k++)
        if (strcmp(label(s, "status"), states[k]) == 0)
          changes_values[k] = s->value;
    }
  }
  if (strcmp(usage_batch_entity(b), "status:" SVC) == 0)
    for (size_t i = 0; i < usage_batch_size(b); i++) {
      const usage_sample_t *s = usage_batch_sample(b, i);
      if (s->value == 1)
        snprintf(status_on, sizeof(status_on), "%s", label(s, "status"));
    }
  return usage_store_commit(store, b);
}

static void sink_reset(void) {
  log_len = 0;
  log_text[0] = 0;
  changes_commits = 0;
  changes_samples = 0;
  status_on[0] = 0;
}

static double fake_time = 1714600000; /* 2024-05-01T21:46:40Z */
static double fake_now(void) { return fake_time; }

typedef struct {
  int page_size, max_pages;
  double overlap;
  const char *state_file;
  const char *reseller;
  int user; /* one UserGuid under the service */
} opts_t;

static usage_source_t *make_source(const opts_t *o) {
  usage_source_conf_t *c = calloc(1, sizeof(*c));
  c->name = strdup("acme");
  c->kind = USAGE_KIND_CCC;
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", server_port);
  c->http.url = strdup(url);
  c->http.bearer.value = strdup(TOKEN);
  c->http.verify_peer = c->http.verify_host = 1;
  c->http.timeout_ms = 5000;
  c->http.max_body = 1 << 20;
  c->max_concurrent = 1;
  c->kind_conf = usage_ccc_vendor.conf_create();
  usage_ccc_conf_t *cc = c->kind_conf;
  cc->status_changes = 1;
  if (o->page_size)
    cc->page_size = o->page_size;
  if (o->max_pages)
    cc->max_pages = o->max_pages;
  if (o->overlap >= 0)
    cc->overlap = o->overlap;
  if (o->state_file)
    cc->state_file = strdup(o->state_file);
  if (o->reseller) {
    cc->reseller = strdup(o->reseller);
  } else {
    cc->services = calloc(1, sizeof(*cc->services));
    memcpy(cc->services[0].guid, SVC, 33);
    cc->services_num = 1;
    if (o->user) {
      cc->services[0].users = calloc(1, sizeof(*cc->services[0].users));
      memcpy(cc->services[0].users[0], USR, 33);
      cc->services[0].users_num = 1;
    }
  }
  usage_sink_t sink = {.log = sink_log, .commit = sink_commit};
  usage_source_t *s = usage_source_create(c, &sink);
  assert_non_null(s);
  return s;
}

static double metric(const char *text, const char *series) {
  const char *p = strstr(text, series);
  if (p == NULL)
    return -1;
  return strtod(p + strlen(series), NULL);
}

static double errors_of(const char *reason) {
  char *text = tu_store_text(store);
  char series[128];
  snprintf(series, sizeof(series),
           "usage_scrape_errors_total{source=\"acme\",reason=\"%s\"} ", reason);
  double v = metric(text, series);
  free(text);
  return v;
}

static int source_up(void) {
  char *text = tu_store_text(store);
  double v = metric(text, "usage_source_up{source=\"acme\",kind=\"ccc\"} ");
  free(text);
  return (int)v;
}

static void check_counts(const char *name, const uint64_t want[NSTATES]) {
  for (size_t k = 0; k < NSTATES; k++)
    if (changes_values[k] != (double)want[k])
      fail_msg("%s: %s counted %g, want %llu", name, states[k],
               changes_values[k], (unsigned long long)want[k]);
  char *text = tu_store_text(store);
  for (size_t k = 0; k < NSTATES; k++) {
    char series[256];
    snprintf(series, sizeof(series),
             "usage_ccc_status_changes_total{source=\"acme\",service=\"" SVC
             "\",status=\"%s\"} %llu\n",
             states[k], (unsigned long long)want[k]);
    tu_expect_line(text, series, 1);
  }
  free(text);
}

static int setup(void **state) {
  (void)state;
  usage_now = fake_now;
  store = usage_store_create();
  sink_reset();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  usage_store_destroy(store);
  return 0;
}

/* One scrape of a fresh source; PageSize 3. */
static void test_paging(void **state) {
  enum { MAXP = 6 };
  static const struct {
    const char *name;
    /* pages: {first item, count, totalPages}; count < 0 ends the list */
    struct {
      int first, count, total;
    } pages[MAXP];
    const char *beyond; /* NULL: an empty results array */
    int repeat, max_pages;
    unsigned requests;
    int counted_first, counted_num; /* the items counted */
    const char *reason;             /* error counted, or NULL */
    unsigned bad_results;           /* invalid_value */
  } cases[] = {
      {"empty result", {{0, 0, 0}, {0, -1, 0}}, NULL, 0, 0, 1, 0, 0, NULL, 0},
      {"one short page", {{0, 2, 1}, {0, -1, 0}}, NULL, 0, 0, 1, 0, 2, NULL, 0},
      {"exactly a multiple of PageSize",
       {{0, 3, 2}, {3, 3, 2}, {0, -1, 0}},
       NULL,
       0,
       0,
       3,
       0,
       6,
       NULL,
       0},
      {"no paging fields, full pages",
       {{0, 3, -1}, {3, 3, -1}, {6, 1, -1}, {0, -1, 0}},
       NULL,
       0,
       0,
       3,
       0,
       7,
       NULL,
       0},
      {"TotalPages lies low",
       {{0, 3, 1}, {3, 3, 1}, {6, 1, 1}, {0, -1, 0}},
       NULL,
       0,
       0,
       3,
       0,
       7,
       NULL,
       0},
      {"TotalPages lies high",
       {{0, 3, 9}, {0, -1, 0}},
       NULL,
       0,
       0,
       2,
       0,
       3,
       NULL,
       0},
      {"TotalPages says more after a short page",
       {{0, 2, 2}, {2, 2, 2}, {0, -1, 0}},
       NULL,
       0,
       0,
       2,
       0,
       4,
       NULL,
       0},
      {"server repeats the page",
       {{0, 3, 5}, {0, -1, 0}},
       NULL,
       1,
       0,
       2,
       0,
       0,
       "pagination",
       0},
      {"MaxPages cap hit",
       {{0, 3, 4}, {3, 3, 4}, {6, 3, 4}, {9, 1, 4}, {0, -1, 0}},
       NULL,
       0,
       2,
       2,
       0,
       0,
       "pagination",
       0},
      {"MaxPages exactly enough",
       {{0, 3, 2}, {3, 1, 2}, {0, -1, 0}},
       NULL,
       0,
       2,
       2,
       0,
       4,
       NULL,
       0},
      {"malformed page 2",
       {{0, 3, 2}, {0, -1, 0}},
       "{\"results\":[{\"serviceGuid\":",
       0,
       0,
       2,
       0,
       0,
       "parse",
       0},
      {"page 2 not a page",
       {{0, 3, 2}, {0, -1, 0}},
       "{\"results\":\"later\"}",
       0,
       0,
       2,
       0,
       0,
       "parse",
       0},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    server_start();
    items_base = fake_time - 86400;
    for (size_t p = 0; p < MAXP && cases[i].pages[p].count >= 0; p++)
      page_set(p, cases[i].pages[p].first, cases[i].pages[p].count, 3,
               cases[i].pages[p].total, p % 2);
    if (cases[i].beyond)
      beyond = cases[i].beyond;
    repeat = cases[i].repeat;
    usage_store_remove(store, "acme", "");
    sink_reset();
    opts_t o = {.page_size = 3, .max_pages = cases[i].max_pages, .overlap = -1};
    usage_source_t *s = make_source(&o);
    usage_source_read(s);

    if (status_hits != cases[i].requests)
      fail_msg("%s: %u requests, want %u:\n%s", cases[i].name, status_hits,
               cases[i].requests, log_text);
    for (unsigned r = 0; r < status_hits && r < 16; r++) {
      char want[64];
      snprintf(want, sizeof(want), "Page=%u&PageSize=3", r + 1);
      if (strstr(queries[r], want) == NULL ||
          strstr(queries[r], "ServiceGuid=" SVC) == NULL)
        fail_msg("%s: request %u: %s", cases[i].name, r + 1, queries[r]);
    }
    /* the "changes" entity is committed in every case, with all 8
     * counters: unchanged (0) when the page set failed */
    if (changes_commits != 1)
      fail_msg("%s: %u changes commits", cases[i].name, changes_commits);
    uint64_t want[NSTATES] = {0};
    expect_counts(want, cases[i].counted_first, cases[i].counted_num);
    check_counts(cases[i].name, want);
    if (cases[i].counted_num > 0) {
      double newest = items_base + 60.0 * (cases[i].counted_first +
                                           cases[i].counted_num - 1);
      if (last_change_ts != newest)
        fail_msg("%s: last change %f, want %f", cases[i].name, last_change_ts,
                 newest);
      assert_string_equal(
          status_on,
          states[(cases[i].counted_first + cases[i].counted_num - 1) %
                 NSTATES]);
    } else {
      if (last_change_ts != -1)
        fail_msg("%s: a last change time without changes", cases[i].name);
      /* the state comes from the service usage alone */
      assert_string_equal(status_on, "TrialActive");
    }
    static const char *const reasons[] = {"pagination", "parse",
                                          "invalid_value"};
    for (size_t r = 0; r < 3; r++) {
      double want_n =
          cases[i].reason && strcmp(cases[i].reason, reasons[r]) == 0 ? 1 : 0;
      if (strcmp(reasons[r], "invalid_value") == 0)
        want_n = cases[i].bad_results;
      if (errors_of(reasons[r]) != want_n)
        fail_msg("%s: errors{%s} %g, want %g:\n%s", cases[i].name, reasons[r],
                 errors_of(reasons[r]), want_n, log_text);
    }
    if (source_up() != (cases[i].reason ? 0 : 1))
      fail_msg("%s: up %d", cases[i].name, source_up());
    if (cases[i].reason) {
      tu_expect_line(log_text, "usage plugin: CCC \"acme\": ", 1);
      tu_expect_line(log_text, "status changes of " SVC, 1);
    }
    tu_expect_line(log_text, TOKEN, 0);
    usage_source_destroy(s);
    server_stop();
  }
}

/* A page of PageSize results, one of them unusable: still a full page, so
 * the next page is read even without TotalPages. */
static void test_paging_bad_result(void **state) {
  (void)state;
  server_start();
  items_base = fake_time - 86400;
  page_set(0, 0, 3, 3, -1, 0);
  page_set(1, 3, 2, 3, -1, 0);
  /* break the date of item 1 on page 1 */
  char *p = strstr(page_buf[0], "\"changedOn\":\"");
  p = strstr(p + 1, "\"changedOn\":\"");
  memcpy(p + 13, "0001-01-01T00:00:00Z", 20);
  usage_store_remove(store, "acme", "");
  sink_reset();
  opts_t o = {.page_size = 3, .overlap = -1};
  usage_source_t *s = make_source(&o);
  usage_source_read(s);
  assert_int_equal(status_hits, 2);
  uint64_t want[NSTATES] = {0};
  expect_counts(want, 0, 1);
  expect_counts(want, 2, 3);
  check_counts("bad result", want);
  assert_true(errors_of("invalid_value") == 1);
  assert_int_equal(source_up(), 1); /* a bad record is not a failed scrape */
  tu_expect_line(log_text, "1 result(s) left out, first changedOn: missing", 1);
  usage_source_destroy(s);
  server_stop();
}

/* Scrape after scrape: the query moves with the watermark, overlapping
 * answers are counted once, a failed page set keeps the counters and the
 * next scrape recovers. */
static void test_scrapes_in_a_row(void **state) {
  (void)state;
  server_start();
  fake_time = 1714600000;
  items_base = fake_time - 3600;
  usage_store_remove(store, "acme", "");
  sink_reset();
  opts_t o = {.page_size = 3, .overlap = 300};
  usage_source_t *s = make_source(&o);

  /* 1: items 0..4, from now - 30 days */
  page_set(0, 0, 3, 3, 2, 0);
  page_set(1, 3, 2, 3, 2, 1);
  usage_source_read(s);
  assert_int_equal(status_hits, 2);
  tu_expect_line(queries[0], "ChangedAfterDateTime=2024-04-01T21:46:40Z", 1);
  uint64_t want[NSTATES] = {0};
  expect_counts(want, 0, 5);
  check_counts("scrape 1", want);
  assert_int_equal(source_up(), 1);

  /* 2: from watermark - overlap (item 4 at base + 240 s, minus 300 s);
   * the server answers items 3..7: 3 and 4 again (dashed the first time,
   * plain now: the same GUIDs) */
  fake_time += 300;
  status_hits = 0;
  page_set(0, 3, 3, 3, 2, 0);
  page_set(1, 6, 2, 3, 2, 0);
  usage_source_read(s);
  assert_int_equal(status_hits, 2);
  tu_expect_line(queries[0], "ChangedAfterDateTime=2024-05-01T20:45:40Z", 1);
  expect_counts(want, 5, 3);
  check_counts("scrape 2", want);
  assert_true(last_change_ts == items_base + 60 * 7);
  assert_string_equal(status_on, states[7]);

  /* 3: the server repeats its page: nothing counted, counters kept */
  fake_time += 300;
  status_hits = 0;
  page_set(0, 8, 3, 3, 3, 0);
  repeat = 1;
  usage_source_read(s);
  assert_int_equal(status_hits, 2);
  check_counts("scrape 3", want);
  assert_true(errors_of("pagination") == 1);
  assert_int_equal(source_up(), 0);
  tu_expect_line(log_text, "page 2 repeats page 1", 1);

  /* 4: it works again; the failed scrape did not move the watermark */
  fake_time += 300;
  status_hits = 0;
  repeat = 0;
  pages_num = 0;
  page_set(0, 6, 3, 3, 2, 0);
  page_set(1, 9, 2, 3, 2, 0);
  usage_source_read(s);
  tu_expect_line(queries[0], "ChangedAfterDateTime=2024-05-01T20:48:40Z", 1);
  expect_counts(want, 8, 3);
  check_counts("scrape 4", want);
  assert_true(errors_of("pagination") == 1);
  assert_int_equal(source_up(), 1);
  tu_expect_line(log_text, "working again", 1);
  assert_int_equal(changes_commits, 4);
  usage_source_destroy(s);
  server_stop();
}

/* A reseller-wide query: no service blocks, one "all" stream, counters
 * for every service that appears. */
static void test_reseller_wide(void **state) {
  (void)state;
  server_start();
  items_base = fake_time - 3600;
  page_set(0, 0, 2, 3, 1, 0);
  /* the second item belongs to another service */
  char *p = strstr(page_buf[0], "},{");
  p = strstr(p, SVC);
  memcpy(p, SVC2, 32);
  usage_store_remove(store, "acme", "");
  sink_reset();
  opts_t o = {.page_size = 3, .overlap = -1, .reseller = RESELLER};
  usage_source_t *s = make_source(&o);
  usage_source_read(s);
  assert_int_equal(status_hits, 1);
  tu_expect_line(queries[0], "ResellerGuid=" RESELLER, 1);
  tu_expect_line(queries[0], "ServiceGuid", 0);
  char *text = tu_store_text(store);
  tu_expect_line(text,
                 "usage_ccc_status_changes_total{source=\"acme\",service=\"" SVC
                 "\",status=\"Blocked\"} 1\n",
                 1);
  tu_expect_line(
      text,
      "usage_ccc_status_changes_total{source=\"acme\",service=\"" SVC2
      "\",status=\"AccountCancelled\"} 1\n",
      1);
  tu_expect_line(
      text,
      "usage_ccc_status_changes_total{source=\"acme\",service=\"" SVC2
      "\",status=\"CertifiedSecure\"} 0\n",
      1);
  tu_expect_line(text, "usage_source_up{source=\"acme\",kind=\"ccc\"} 1\n", 1);
  free(text);
  assert_int_equal(changes_samples, 2 * NSTATES + 2);
  usage_source_destroy(s);
  server_stop();
}

/* Per-user usage through a scrape: the request and the entity. */
static void test_user_scrape(void **state) {
  (void)state;
  static const struct {
    const char *name;
    unsigned status;
    const char *body;
    const char *reason; /* NULL: committed */
  } cases[] = {
      {"good", 200,
       "{\"periodType\":\"Daily\",\"usage\":{\"status\":\"Active\","
       "\"groupName\":\"Sales\",\"groupType\":\"Professional\","
       "\"emailAddress\":\"ann@example.com\",\"totalMessagesSent\":42}}",
       NULL},
      {"unknown user", 404,
       "{\"responseStatus\":{\"errorCode\":\"NotFound\",\"message\":\"User "
       "not found\",\"stackTrace\":\"SECRET\"}}",
       "user_unknown"},
      {"no usage object", 200, "{\"periodType\":\"Daily\"}", "parse"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    server_start();
    pages[0] = "{\"results\":[]}";
    pages_num = 1;
    user_body = cases[i].body;
    user_status = cases[i].status;
    usage_store_remove(store, "acme", "");
    sink_reset();
    opts_t o = {.overlap = -1, .user = 1};
    usage_source_t *s = make_source(&o);
    usage_source_read(s);
    char *text = tu_store_text(store);
    if (cases[i].reason == NULL) {
      tu_expect_line(
          text,
          "usage_ccc_user_messages_sent{source=\"acme\",service=\"" SVC
          "\",user=\"" USR "\",period=\"daily\"} 42\n",
          1);
      tu_expect_line(text, "ann@example.com", 0); /* ExportUserDetails false */
      tu_expect_line(text, "usage_source_up{source=\"acme\",kind=\"ccc\"} 1\n",
                     1);
    } else {
      tu_expect_line(text, "usage_ccc_user_messages_sent", 0);
      char series[128];
      snprintf(series, sizeof(series),
               "usage_scrape_errors_total{source=\"acme\",reason=\"%s\"} 1\n",
               cases[i].reason);
      tu_expect_line(text, series, 1);
      tu_expect_line(text, "usage_source_up{source=\"acme\",kind=\"ccc\"} 0\n",
                     1);
      tu_expect_line(log_text, "user " USR, 1);
      tu_expect_line(log_text, "SECRET", 0);
    }
    free(text);
    usage_source_destroy(s);
    server_stop();
  }
}

/* ---- the StateFile through scrapes ---- */

static char scratch[256];

static void scratch_path(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s", scratch, name);
}

static void remove_scratch(void) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
  assert_int_equal(system(cmd), 0);
}

static int count_aside(const char *name) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c '^%s\\.corrupt-' >/dev/null",
           scratch, name);
  return system(cmd) == 0;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *data = calloc(1, 1 << 16);
  size_t n = fread(data, 1, (1 << 16) - 1, f);
  (void)n;
  fclose(f);
  return data;
}

static void test_state_restart(void **state) {
  (void)state;
  snprintf(scratch, sizeof(scratch), "/tmp/usage-test-ccc-state-XXXXXX");
  assert_non_null(mkdtemp(scratch));
  char path[512];
  scratch_path(path, sizeof(path), "ccc.state");
  server_start();
  fake_time = 1714600000;
  items_base = fake_time - 3600;
  usage_store_remove(store, "acme", "");
  sink_reset();
  opts_t o = {.page_size = 3, .overlap = 300, .state_file = path};

  /* first life: items 0..3 */
  usage_source_t *s = make_source(&o);
  tu_expect_line(log_text, "state loaded", 0); /* no file yet: quiet */
  assert_int_equal(log_len, 0);
  page_set(0, 0, 3, 3, 2, 0);
  page_set(1, 3, 1, 3, 2, 0);
  usage_source_read(s);
  uint64_t want[NSTATES] = {0};
  expect_counts(want, 0, 4);
  check_counts("first life", want);
  usage_source_destroy(s);
  char *saved = slurp(path);
  assert_non_null(saved);
  tu_expect_line(saved, "usage-state 1 ccc 4:acme ", 1);
  tu_expect_line(saved, "\nstream " SVC " 1714596580.000\n", 1);
  tu_expect_line(saved, "\ncount " SVC " Blocked 1\n", 1);
  tu_expect_line(saved, "\nlast " SVC " 1714596580.000 Provisioning\n", 1);
  free(saved);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);

  /* second life: the counters come back before any request, and the
   * overlapping answer (items 2..6) counts only 4..6 */
  sink_reset();
  usage_store_remove(store, "acme", "");
  s = make_source(&o);
  tu_expect_line(log_text, "state loaded from", 1);
  fake_time += 600;
  status_hits = 0;
  pages_num = 0;
  page_set(0, 2, 3, 3, 2, 0);
  page_set(1, 5, 2, 3, 2, 0);
  usage_source_read(s);
  /* from the saved watermark (item 3, base + 180 s) - 300 s */
  tu_expect_line(queries[0], "ChangedAfterDateTime=2024-05-01T20:44:40Z", 1);
  expect_counts(want, 4, 3);
  check_counts("second life", want);
  usage_source_destroy(s);

  /* third life, nothing new upstream: counters as saved, file unchanged */
  saved = slurp(path);
  sink_reset();
  usage_store_remove(store, "acme", "");
  s = make_source(&o);
  status_hits = 0;
  pages_num = 0;
  page_set(0, 5, 2, 3, 1, 0);
  usage_source_read(s);
  check_counts("third life", want);
  char *again = slurp(path);
  assert_string_equal(saved, again);
  free(saved);
  free(again);
  usage_source_destroy(s);
  server_stop();
  remove_scratch();
}

/* A state file that is not ours is set aside; the source starts afresh
 * from the lookback and says so. */
static void test_state_foreign(void **state) {
  (void)state;
  static const struct {
    const char *name;
    const char *content;
    const char *log;
  } cases[] = {
      {"another source", "usage-state 1 ccc 5:other 0\n",
       "belongs to another source"},
      {"another kind", "usage-state 1 billing 4:acme 0\n",
       "belongs to another source"},
      {"garbage", "hello world\n", "is not a usage plugin state file"},
      {"malformed record",
       "usage-state 1 ccc 4:acme 49\ncount " SVC " Blocked x\n",
       "has a malformed record"},
      {"truncated", "usage-state 1 ccc 4:acme 100\nstream all 1.000\n",
       "is truncated"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    snprintf(scratch, sizeof(scratch), "/tmp/usage-test-ccc-state-XXXXXX");
    assert_non_null(mkdtemp(scratch));
    char path[512];
    scratch_path(path, sizeof(path), "ccc.state");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(cases[i].content, f);
    fclose(f);
    server_start();
    items_base = fake_time - 3600;
    page_set(0, 0, 2, 3, 1, 0);
    sink_reset();
    usage_store_remove(store, "acme", "");
    opts_t o = {.page_size = 3, .overlap = 300, .state_file = path};
    usage_source_t *s = make_source(&o);
    if (strstr(log_text, cases[i].log) == NULL ||
        strstr(log_text, "4 usage plugin: CCC \"acme\": ") == NULL)
      fail_msg("%s: log:\n%s", cases[i].name, log_text);
    if (!count_aside("ccc.state"))
      fail_msg("%s: not set aside", cases[i].name);
    usage_source_read(s);
    tu_expect_line(queries[0], "ChangedAfterDateTime=2024-04-01T", 1);
    uint64_t want[NSTATES] = {0};
    expect_counts(want, 0, 2);
    check_counts(cases[i].name, want);
    /* a fresh file replaced it */
    char *saved = slurp(path);
    assert_non_null(saved);
    tu_expect_line(saved, "usage-state 1 ccc 4:acme ", 1);
    free(saved);
    usage_source_destroy(s);
    server_stop();
    remove_scratch();
  }
}

/* The directory of the StateFile does not exist: the scrape goes on, the
 * failure is counted and logged with the path and the cause. */
static void test_state_missing_dir(void **state) {
  (void)state;
  snprintf(scratch, sizeof(scratch), "/tmp/usage-test-ccc-state-XXXXXX");
  assert_non_null(mkdtemp(scratch));
  char path[512];
  scratch_path(path, sizeof(path), "no/such/dir/ccc.state");
  server_start();
  items_base = fake_time - 3600;
  page_set(0, 0, 2, 3, 1, 0);
  sink_reset();
  usage_store_remove(store, "acme", "");
  opts_t o = {.page_size = 3, .overlap = 300, .state_file = path};
  usage_source_t *s = make_source(&o);
  assert_int_equal(log_len, 0); /* ENOENT on load: a first start */
  usage_source_read(s);
  uint64_t want[NSTATES] = {0};
  expect_counts(want, 0, 2);
  check_counts("missing dir", want);
  assert_true(errors_of("state_file") == 1);
  tu_expect_line(log_text, path, 1);
  tu_expect_line(log_text, "No such file or directory", 1);
  /* the next scrape, with nothing new, tries again (the state in memory
   * is not on disk yet) */
  status_hits = 0;
  fake_time += 60;
  usage_source_read(s);
  check_counts("missing dir, again", want);
  assert_true(errors_of("state_file") == 2);
  assert_int_equal(source_up(), 1); /* reported, but the figures are good */
  /* the directory appears: saved at the next scrape */
  char sub[512];
  scratch_path(sub, sizeof(sub), "no");
  assert_int_equal(mkdir(sub, 0700), 0);
  scratch_path(sub, sizeof(sub), "no/such");
  assert_int_equal(mkdir(sub, 0700), 0);
  scratch_path(sub, sizeof(sub), "no/such/dir");
  assert_int_equal(mkdir(sub, 0700), 0);
  fake_time += 60;
  usage_source_read(s);
  assert_true(errors_of("state_file") == 2);
  char *saved = slurp(path);
  assert_non_null(saved);
  tu_expect_line(saved, "\ncount " SVC " Blocked 1\n", 1);
  tu_expect_line(saved, "\ncount " SVC " AccountCancelled 1\n", 1);
  free(saved);
  tu_expect_line(log_text, "working again", 1);
  /* and not rewritten while nothing changes */
  struct stat sb1, sb2;
  assert_int_equal(stat(path, &sb1), 0);
  assert_int_equal(unlink(path), 0);
  fake_time += 60;
  usage_source_read(s);
  assert_int_equal(stat(path, &sb2), -1);
  usage_source_destroy(s);
  server_stop();
  remove_scratch();
}

int main(void) {
  usage_http_global_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_user_fixtures),
      cmocka_unit_test(test_user_field_values),
      cmocka_unit_test(test_user_enums),
      cmocka_unit_test(test_user_bad_bodies),
      cmocka_unit_test(test_changes_page),
      cmocka_unit_test(test_changes_items),
      cmocka_unit_test(test_changes_fixture),
      cmocka_unit_test(test_merge_exactly_once),
      cmocka_unit_test(test_merge_duplicates_in_one_set),
      cmocka_unit_test(test_merge_window),
      cmocka_unit_test(test_merge_pruned),
      cmocka_unit_test(test_merge_streams),
      cmocka_unit_test(test_add_samples),
      cmocka_unit_test(test_paging),
      cmocka_unit_test(test_paging_bad_result),
      cmocka_unit_test(test_scrapes_in_a_row),
      cmocka_unit_test(test_reseller_wide),
      cmocka_unit_test(test_user_scrape),
      cmocka_unit_test(test_state_restart),
      cmocka_unit_test(test_state_foreign),
      cmocka_unit_test(test_state_missing_dir),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
