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
      cmocka_unit_test(test_state_restart),
      cmocka_unit_test(test_state_foreign),
      cmocka_unit_test(test_state_missing_dir),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
