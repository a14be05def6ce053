/* SPDX-License-Identifier: MIT */
/* test_ccc_paging: whole CCC scrapes against the loopback server
 * (ccc_loopback.c): paging edge cases, scrape after scrape with the
 * watermark, a reseller-wide stream, per-user usage, error reasons. */
#include "ccc_loopback.h"
#include "families.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

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

/* A service usage body or a user usage body with an invalid value (a string
 * where a number belongs, a number too large) fails its entity whole: none
 * of its figures are committed, the last ones stay, the source is down and
 * invalid_value is counted once per entity. */
static void test_invalid_value(void **state) {
  (void)state;
  server_start();
  pages[0] = "{\"results\":[]}";
  pages_num = 1;
  user_body = "{\"periodType\":\"Daily\",\"usage\":{\"status\":\"Active\","
              "\"totalMessagesSent\":42,\"totalMessagesReceived\":7}}";
  usage_store_remove(store, "acme", "");
  sink_reset();
  opts_t o = {.overlap = -1, .user = 1};
  usage_source_t *s = make_source(&o);
  usage_source_read(s);
  assert_int_equal(source_up(), 1);
  const char *users =
      "usage_ccc_service_users{source=\"acme\",service=\"" SVC "\"} 12\n";
  const char *sent =
      "usage_ccc_user_messages_sent{source=\"acme\",service=\"" SVC
      "\",user=\"" USR "\",period=\"daily\"} 42\n";
  const char *received =
      "usage_ccc_user_messages_received{source=\"acme\",service=\"" SVC
      "\",user=\"" USR "\",period=\"daily\"} 7\n";
  const char *on = "usage_ccc_service_status{source=\"acme\",service=\"" SVC
                   "\",status=\"TrialActive\"} 1\n";
  char *text = tu_store_text(store);
  tu_expect_line(text, users, 1);
  tu_expect_line(text, sent, 1);
  tu_expect_line(text, on, 1);
  free(text);

  service_text = "{\"ServiceGuid\":\"" SVC "\",\"Name\":\"Acme\","
                 "\"Status\":\"Blocked\",\"TotalUserCount\":\"abc\","
                 "\"ProUserCount\":3}";
  user_body = "{\"periodType\":\"Daily\",\"usage\":{\"status\":\"Active\","
              "\"totalMessagesSent\":1e30,\"totalMessagesReceived\":8}}";
  fake_time += 300;
  usage_source_read(s);
  text = tu_store_text(store);
  tu_expect_line(text, users, 1); /* the last figures stay */
  tu_expect_line(text, "usage_ccc_service_pro_users", 0); /* none new */
  tu_expect_line(text, on, 1); /* nor the state of that body */
  tu_expect_line(text, sent, 1);
  tu_expect_line(text, received, 1); /* not 8: the user fails whole */
  tu_expect_line(text, "usage_source_up{source=\"acme\",kind=\"ccc\"} 0\n", 1);
  tu_expect_line(
      text,
      "usage_scrape_errors_total{source=\"acme\",reason=\"invalid_value\"} 2\n",
      1);
  free(text);
  tu_expect_line(log_text, "totalUserCount: wrong type", 1);
  tu_expect_line(log_text, "totalMessagesSent: out of range", 1);
  usage_source_destroy(s);
  server_stop();
}

/* A proxy's HTML page where the service usage belongs: one log line that
 * says so, reason parse, the source down. */
static void test_proxy_page(void **state) {
  (void)state;
  server_start();
  pages[0] = "{\"results\":[]}";
  pages_num = 1;
  service_text = "<html><body>502 Bad Gateway\n</body></html>";
  usage_store_remove(store, "acme", "");
  sink_reset();
  opts_t o = {.overlap = -1};
  usage_source_t *s = make_source(&o);
  usage_source_read(s);
  assert_int_equal(source_up(), 0);
  assert_true(errors_of("parse") == 1);
  const char *line = strstr(log_text, "an HTML or XML page");
  assert_non_null(line);
  assert_null(strstr(line + 1, "an HTML or XML page")); /* one line */
  tu_expect_line(log_text, "service " SVC, 1);
  tu_expect_line(log_text, "Bad Gateway", 0);
  usage_source_destroy(s);
  server_stop();
}

int main(void) {
  usage_http_global_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_paging),
      cmocka_unit_test(test_paging_bad_result),
      cmocka_unit_test(test_scrapes_in_a_row),
      cmocka_unit_test(test_reseller_wide),
      cmocka_unit_test(test_user_scrape),
      cmocka_unit_test(test_invalid_value),
      cmocka_unit_test(test_proxy_page),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
