/* SPDX-License-Identifier: MIT */
/* test_ccc_changes: SearchServiceStatusChanges pages (parsing, GUIDs
 * normalised, enum numbers named) and the exactly-once merge of status
 * changes into streams, counters and samples (src/api/ccc/changes.c). */
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

static const char *const states[] = {
    "Blocked",      "AccountCancelled", "AccountSuspended", "Provisioning",
    "TrialExpired", "TrialActive",      "DemoAccount",      "CertifiedSecure"};
#define NSTATES 8
/* now for usage_ccc_changes_merge where the cap is not under test */
#define NO_CAP 4102444800.0 /* 2100-01-01 */

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
  assert_int_equal(usage_ccc_changes_merge(&c, "all", page.items, page.num, 300,
                                           NO_CAP, &added),
                   0);
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
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q1, 3, 300, NO_CAP, &added),
                   0);
  assert_int_equal(added, 3);
  assert_true(usage_ccc_stream(&c, SVC)->watermark == T0 + 120);
  /* query 2 from watermark - overlap returns them all again, plus D */
  usage_ccc_change_t q2[] = {chg(1, SVC, "TrialActive", T0),
                             chg(2, SVC, "Blocked", T0 + 60),
                             chg(3, SVC, "TrialActive", T0 + 120),
                             chg(4, SVC, "CertifiedSecure", T0 + 180)};
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q2, 4, 300, NO_CAP, &added),
                   0);
  assert_int_equal(added, 1);
  /* the same query once more: nothing new */
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q2, 4, 300, NO_CAP, &added),
                   0);
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
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q, 5, 300, NO_CAP, &added),
                   0);
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
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q1, 1, 300, NO_CAP, &added),
                   0);
  usage_ccc_stream_t *st = usage_ccc_stream(&c, SVC);
  assert_true(st->watermark == T0 + 1000);
  /* older than watermark - overlap (700): ignored, new GUID or not */
  usage_ccc_change_t old[] = {chg(5, SVC, "Blocked", T0 + 699),
                              chg(6, SVC, "Blocked", T0)};
  assert_int_equal(
      usage_ccc_changes_merge(&c, SVC, old, 2, 300, NO_CAP, &added), 0);
  assert_int_equal(added, 0);
  assert_int_equal(count_of(&c, SVC, "Blocked"), 0);
  /* late inside the window (loaded late upstream): counted once */
  usage_ccc_change_t late[] = {chg(7, SVC, "AccountSuspended", T0 + 700),
                               chg(8, SVC, "DemoAccount", T0 + 900)};
  assert_int_equal(
      usage_ccc_changes_merge(&c, SVC, late, 2, 300, NO_CAP, &added), 0);
  assert_int_equal(added, 2);
  assert_int_equal(
      usage_ccc_changes_merge(&c, SVC, late, 2, 300, NO_CAP, &added), 0);
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
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, edge, 2, 0, NO_CAP, &added),
                   0);
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
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q, N, 300, NO_CAP, &added),
                   0);
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
    assert_int_equal(
        usage_ccc_changes_merge(&c, SVC, r, 106, 300, NO_CAP, &added), 0);
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
  assert_int_equal(
      usage_ccc_changes_merge(&c, "all", a, 2, 300, NO_CAP, &added), 0);
  assert_int_equal(added, 2);
  assert_int_equal(c.streams_num, 1);
  assert_int_equal(c.counts_num, 2 * NSTATES);
  assert_int_equal(c.lasts_num, 2);
  assert_int_equal(count_of(&c, SVC, "Blocked"), 1);
  assert_int_equal(count_of(&c, SVC2, "TrialActive"), 1);
  /* an unknown state gets a counter of its own */
  usage_ccc_change_t u[] = {chg(3, SVC, "Archived", T0 + 10)};
  assert_int_equal(
      usage_ccc_changes_merge(&c, "all", u, 1, 300, NO_CAP, &added), 0);
  assert_int_equal(count_of(&c, SVC, "Archived"), 1);
  assert_int_equal(c.counts_num, 2 * NSTATES + 1);
  /* merging nothing creates the stream and changes nothing else */
  assert_int_equal(
      usage_ccc_changes_merge(&c, SVC, NULL, 0, 300, NO_CAP, &added), 0);
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
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, q, 3, 300, NO_CAP, &added),
                   0);
  /* a service without changes yet: counters at 0, no timestamp */
  assert_int_equal(
      usage_ccc_changes_merge(&c, SVC2, NULL, 0, 300, NO_CAP, &added), 0);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_changes_page),
      cmocka_unit_test(test_changes_items),
      cmocka_unit_test(test_changes_fixture),
      cmocka_unit_test(test_merge_exactly_once),
      cmocka_unit_test(test_merge_duplicates_in_one_set),
      cmocka_unit_test(test_merge_window),
      cmocka_unit_test(test_merge_pruned),
      cmocka_unit_test(test_merge_streams),
      cmocka_unit_test(test_add_samples),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
