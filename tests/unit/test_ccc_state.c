/* SPDX-License-Identifier: MIT */
/* test_ccc_state: the StateFile through CCC scrapes against the loopback
 * server (ccc_loopback.c): counters across a restart of the source, a
 * foreign file set aside, a StateFile directory that does not exist. */
#include "ccc_loopback.h"

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

/* The directory of the StateFile does not exist: the source is down with
 * reason state_file, nothing of the scrape's changes is published, and the
 * failure is logged with the path and the cause. */
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
  assert_int_equal(changes_commits, 0); /* not saved: not published */
  assert_true(errors_of("state_file") == 1);
  assert_int_equal(source_up(), 0);
  tu_expect_line(log_text, path, 1);
  tu_expect_line(log_text, "No such file or directory", 1);
  /* the next scrape fetches the same changes and tries again */
  status_hits = 0;
  fake_time += 60;
  usage_source_read(s);
  assert_int_equal(changes_commits, 0);
  assert_true(errors_of("state_file") == 2);
  assert_int_equal(source_up(), 0);
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
  assert_int_equal(source_up(), 1);
  check_counts("missing dir, saved", want); /* each change once */
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

/* ---- a change dated in the future; a StateFile directory that goes ---- */

/* change_page: a one-page answer with the changes {guid number, state
 * index, ChangedOn} of list (n of them), into page slot 0. */
typedef struct {
  int num, state;
  double when;
} change_t;

static void change_page(const change_t *list, size_t n) {
  char *out = page_buf[0];
  size_t cap = sizeof(page_buf[0]), len = 0;
  len += (size_t)snprintf(out, cap,
                          "{\"pageSize\":50,\"totalPages\":1,\"currentPage\":1,"
                          "\"results\":[");
  for (size_t i = 0; i < n; i++) {
    char when[32];
    time_t t = (time_t)list[i].when;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    len += (size_t)snprintf(
        out + len, cap - len,
        "%s{\"serviceGuid\":\"%s\",\"serviceStatusChangeGuid\":\"f%031d\","
        "\"status\":\"%s\",\"changedOn\":\"%s\"}",
        i ? "," : "", SVC, list[i].num, states[list[i].state], when);
  }
  snprintf(out + len, cap - len, "]}");
  assert_true(len + 2 < cap);
  pages[0] = out;
  pages_num = 1;
}

/* no_watermark_beyond fails unless every "stream" line of the StateFile
 * holds a watermark <= now. */
static void no_watermark_beyond(const char *path, double now) {
  char *saved = slurp(path);
  assert_non_null(saved);
  int streams = 0;
  for (char *p = strstr(saved, "\nstream "); p;
       p = strstr(p + 1, "\nstream ")) {
    char key[64];
    double wm;
    assert_int_equal(sscanf(p, "\nstream %63s %lf", key, &wm), 2);
    if (wm > now)
      fail_msg("watermark %.3f of %s is beyond now %.3f", wm, key, now);
    streams++;
  }
  assert_true(streams > 0);
  free(saved);
}

/* One change dated a day ahead must not move ChangedAfterDateTime past the
 * real changes that follow: each change is counted exactly once, and the
 * StateFile never holds a watermark beyond now. */
static void test_future_change(void **state) {
  (void)state;
  snprintf(scratch, sizeof(scratch), "/tmp/usage-test-ccc-state-XXXXXX");
  assert_non_null(mkdtemp(scratch));
  char path[512];
  scratch_path(path, sizeof(path), "ccc.state");
  server_start();
  double t0 = 1714600000;
  fake_time = t0;
  sink_reset();
  usage_store_remove(store, "acme", "");
  opts_t o = {.overlap = 300, .state_file = path};
  usage_source_t *s = make_source(&o);
  uint64_t want[NSTATES] = {0};

  /* scrape 1: the future change (TrialActive, a day ahead) and a real one */
  change_t one[] = {{900, 5, t0 + 86400}, {1, 0, t0 - 600}};
  change_page(one, 2);
  usage_source_read(s);
  want[5]++, want[0]++;
  check_counts("future, scrape 1", want);
  no_watermark_beyond(path, fake_time);

  /* scrapes 2..4: the server answers the future change again, with the
   * real changes since; each real change is counted once */
  change_t later[] = {{900, 5, t0 + 86400},
                      {1, 0, t0 - 600},
                      {2, 1, t0 + 100},
                      {3, 2, t0 + 400},
                      {4, 7, t0 + 700}};
  for (size_t k = 2; k <= 4; k++) {
    fake_time = t0 + 300.0 * (double)(k - 1) + 50;
    status_hits = 0;
    change_page(later, k + 1);
    usage_source_read(s);
    want[later[k].state]++;
    char name[32];
    snprintf(name, sizeof(name), "future, scrape %zu", k);
    check_counts(name, want);
    no_watermark_beyond(path, fake_time);
    /* asked from at most now - overlap, so the real changes come back */
    char after[64];
    time_t t = (time_t)(fake_time - 300);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(after, sizeof(after), "ChangedAfterDateTime=%Y-%m-%dT", &tm);
    tu_expect_line(queries[0], after, 1);
  }
  assert_int_equal(source_up(), 1);
  usage_source_destroy(s);

  /* a restart from the StateFile: the future change is still not counted
   * again */
  sink_reset();
  usage_store_remove(store, "acme", "");
  s = make_source(&o);
  fake_time += 300;
  change_page(later, 5);
  usage_source_read(s);
  check_counts("future, after a restart", want);
  usage_source_destroy(s);
  server_stop();
  remove_scratch();
}

/* The StateFile's directory disappears after a good save: the source goes
 * down (state_file), nothing of that scrape is published (counters and
 * newest state stay), and once the directory is back the same changes are
 * counted exactly once. */
static void test_state_dir_gone(void **state) {
  (void)state;
  snprintf(scratch, sizeof(scratch), "/tmp/usage-test-ccc-state-XXXXXX");
  assert_non_null(mkdtemp(scratch));
  char dir[512], path[512];
  scratch_path(dir, sizeof(dir), "sub");
  assert_int_equal(mkdir(dir, 0700), 0);
  scratch_path(path, sizeof(path), "sub/ccc.state");
  server_start();
  fake_time = 1714600000;
  items_base = fake_time - 3600;
  sink_reset();
  usage_store_remove(store, "acme", "");
  opts_t o = {.page_size = 10, .overlap = 300, .state_file = path};
  usage_source_t *s = make_source(&o);
  page_set(0, 0, 2, 10, 1, 0);
  usage_source_read(s);
  uint64_t want[NSTATES] = {0};
  expect_counts(want, 0, 2);
  check_counts("dir gone, saved", want);
  assert_int_equal(source_up(), 1);
  char was_on[32];
  snprintf(was_on, sizeof(was_on), "%s", status_on);
  assert_string_equal(was_on, states[1]);

  /* the directory goes; two new changes arrive */
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  unsigned commits = changes_commits;
  fake_time += 300;
  page_set(0, 0, 4, 10, 1, 0);
  usage_source_read(s);
  assert_int_equal(source_up(), 0);
  assert_true(errors_of("state_file") == 1);
  assert_int_equal(changes_commits, commits); /* nothing published */
  check_counts("dir gone, not saved", want);  /* the last figures stay */
  /* the state set comes from the service usage alone */
  assert_string_equal(status_on, "TrialActive");
  tu_expect_line(log_text, "are not committed", 1);

  /* it comes back: the two new changes are counted once */
  assert_int_equal(mkdir(dir, 0700), 0);
  fake_time += 300;
  usage_source_read(s);
  expect_counts(want, 2, 2);
  check_counts("dir back", want);
  assert_int_equal(source_up(), 1);
  assert_string_equal(status_on, states[3]);
  assert_true(errors_of("state_file") == 1);
  usage_source_destroy(s);
  server_stop();
  remove_scratch();
}

int main(void) {
  usage_http_global_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_restart),
      cmocka_unit_test(test_state_foreign),
      cmocka_unit_test(test_state_missing_dir),
      cmocka_unit_test(test_future_change),
      cmocka_unit_test(test_state_dir_gone),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
