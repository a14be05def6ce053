/* SPDX-License-Identifier: MIT */
/* test_buf: the capped byte buffer: cap enforcement, growth, steal/reset. */
#include "buf.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void test_cap(void **state) {
  static const struct {
    const char *name;
    size_t max;
    const char *first;  /* appended first, must fit */
    const char *second; /* appended next */
    int want;           /* status of the second write */
    const char *result;
  } cases[] = {
      {"fits exactly", 8, "abcd", "efgh", 0, "abcdefgh"},
      {"one byte over", 8, "abcd", "efghi", EFBIG, "abcd"},
      {"empty write at cap", 4, "abcd", "", 0, "abcd"},
      {"over from empty", 3, "", "abcd", EFBIG, ""},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_buf_t b;
    usage_buf_init(&b, cases[i].max);
    assert_int_equal(usage_buf_puts(&b, cases[i].first), 0);
    int status = usage_buf_puts(&b, cases[i].second);
    if (status != cases[i].want)
      fail_msg("%s: status %d, want %d", cases[i].name, status, cases[i].want);
    assert_int_equal(b.failed, cases[i].want);
    assert_int_equal(b.len, strlen(cases[i].result));
    if (b.len > 0)
      assert_string_equal(b.data, cases[i].result);
    /* once failed, every later write fails, even a small one */
    if (cases[i].want != 0) {
      assert_int_equal(usage_buf_putc(&b, 'x'), EFBIG);
      assert_int_equal(usage_buf_printf(&b, "%d", 1), EFBIG);
      assert_int_equal(b.len, strlen(cases[i].result));
    }
    usage_buf_free(&b);
  }
}

static void test_printf_growth(void **state) {
  (void)state;
  usage_buf_t b;
  usage_buf_init(&b, 0);
  char big[5000];
  memset(big, 'y', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  assert_int_equal(usage_buf_printf(&b, "<%s>%d", big, 42), 0);
  assert_int_equal(b.len, 4999 + 4);
  assert_int_equal(b.data[0], '<');
  assert_int_equal(b.data[5000], '>');
  assert_string_equal(b.data + 5001, "42");
  for (int i = 0; i < 1000; i++)
    assert_int_equal(usage_buf_printf(&b, "%04d", i), 0);
  assert_int_equal(b.len, 5003 + 4000);
  assert_memory_equal(b.data + b.len - 4, "0999", 4);
  assert_true(b.alloc > b.len);
  assert_int_equal(b.data[b.len], 0);
  usage_buf_free(&b);
}

static void test_printf_over_cap(void **state) {
  (void)state;
  usage_buf_t b;
  usage_buf_init(&b, 300);
  char big[400];
  memset(big, 'z', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  assert_int_equal(usage_buf_printf(&b, "%s", "ok"), 0);
  assert_int_equal(usage_buf_printf(&b, "%s", big), EFBIG);
  assert_int_equal(b.failed, EFBIG);
  assert_int_equal(b.len, 2);
  assert_string_equal(b.data, "ok");
  usage_buf_free(&b);
}

static void test_steal_reset(void **state) {
  (void)state;
  usage_buf_t b;
  usage_buf_init(&b, 10);
  assert_int_equal(usage_buf_puts(&b, "hello"), 0);
  size_t len = 0;
  char *p = usage_buf_steal(&b, &len);
  assert_int_equal(len, 5);
  assert_string_equal(p, "hello");
  free(p);
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.max, 10); /* the cap survives a steal */

  /* steal of an empty buffer: an empty string, not NULL */
  p = usage_buf_steal(&b, &len);
  assert_non_null(p);
  assert_int_equal(len, 0);
  assert_string_equal(p, "");
  free(p);

  /* reset clears the failure and keeps memory */
  assert_int_equal(usage_buf_puts(&b, "0123456789A"), EFBIG);
  usage_buf_reset(&b);
  assert_int_equal(b.failed, 0);
  assert_int_equal(usage_buf_puts(&b, "abc"), 0);
  char *mem = b.data;
  usage_buf_reset(&b);
  assert_ptr_equal(b.data, mem);
  assert_int_equal(b.len, 0);
  assert_string_equal(b.data, "");
  assert_int_equal(usage_buf_append(&b, "xy", 2), 0);
  assert_string_equal(b.data, "xy");
  usage_buf_free(&b);
  usage_buf_free(NULL);
}

/* A buffer reused for response bodies gives back what a large or refused
 * body took, keeps a small one, and keeps its cap. */
static void test_shrink(void **state) {
  (void)state;
  usage_buf_t b;
  usage_buf_init(&b, 3 * 1024 * 1024);
  static char big[2 * 1024 * 1024];
  memset(big, 'x', sizeof(big));
  assert_int_equal(usage_buf_append(&b, big, sizeof(big)), 0);
  usage_buf_shrink(&b, 1024 * 1024);
  assert_null(b.data);
  assert_int_equal(b.alloc, 0);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.max, 3 * 1024 * 1024);
  assert_int_equal(usage_buf_append(&b, "small", 5), 0);
  char *kept = b.data;
  usage_buf_shrink(&b, 1024 * 1024);
  assert_ptr_equal(b.data, kept); /* kept for reuse, emptied */
  assert_int_equal(b.len, 0);
  assert_string_equal(b.data, "");
  /* refused: over the cap */
  assert_int_equal(usage_buf_append(&b, big, sizeof(big)), 0);
  assert_int_equal(usage_buf_append(&b, big, sizeof(big)), EFBIG);
  usage_buf_shrink(&b, 1024 * 1024);
  assert_null(b.data);
  assert_int_equal(usage_buf_failed(&b), 0);
  assert_int_equal(usage_buf_append(&b, "again", 5), 0);
  usage_buf_free(&b);
}

static void test_binary(void **state) {
  (void)state;
  usage_buf_t b;
  usage_buf_init(&b, 0);
  assert_int_equal(usage_buf_append(&b, "a\0b", 3), 0);
  assert_int_equal(b.len, 3);
  assert_memory_equal(b.data, "a\0b", 3);
  usage_buf_free(&b);
  /* reserved but never written: still an empty string, also when stolen */
  usage_buf_init(&b, 0);
  assert_int_equal(usage_buf_reserve(&b, 100000), 0);
  assert_string_equal(b.data, "");
  size_t len = 1;
  char *p = usage_buf_steal(&b, &len);
  assert_int_equal(len, 0);
  assert_string_equal(p, "");
  free(p);
  assert_int_equal(usage_buf_reserve(&b, SIZE_MAX), EFBIG);
  usage_buf_free(&b);
}

/* rss_kb: this process's resident memory, from /proc/self/statm. */
static long rss_kb(void) {
  long size = 0, resident = -1;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL)
    return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Past USAGE_BUF_MAP_MIN the memory is mapped pages: the content survives
 * the moves from malloc to the mapping and within it, a steal hands out
 * memory free() takes, and a large body freed leaves nothing resident. */
static void test_mapped(void **state) {
  (void)state;
  usage_buf_t b;
  usage_buf_init(&b, 64 * 1024 * 1024);
  size_t n = 0;
  char line[32];
  while (n < 4 * USAGE_BUF_MAP_MIN) {
    int k = snprintf(line, sizeof(line), "%zu,", n);
    assert_int_equal(usage_buf_append(&b, line, (size_t)k), 0);
    n += (size_t)k;
    if (n + 1 <= USAGE_BUF_MAP_MIN / 2) /* allocated: a power of two */
      assert_false(b.mapped);
  }
  assert_true(b.mapped);
  assert_int_equal(b.len, n);
  assert_int_equal(b.data[n], 0);
  size_t at = 0;
  for (size_t i = 0; at < n; i++) { /* every number where it belongs */
    int k = snprintf(line, sizeof(line), "%zu,", at);
    assert_memory_equal(b.data + at, line, (size_t)k);
    at += (size_t)k;
  }
  usage_buf_reset(&b); /* kept: still mapped, empty */
  assert_true(b.mapped);
  assert_string_equal(b.data, "");
  assert_int_equal(usage_buf_printf(&b, "%s", "after reset"), 0);
  size_t len = 0;
  char *p = usage_buf_steal(&b, &len);
  assert_non_null(p);
  assert_int_equal(len, 11);
  assert_string_equal(p, "after reset");
  free(p);
  assert_null(b.data);
  assert_false(b.mapped);

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  /* A 12 MiB body freed (from malloc, this raised glibc's thresholds: later
   * bodies came from the heap), then a 6 MiB one with a small allocation
   * after it, shrunk like a refused body: its memory is not resident any
   * more (from the heap it stayed, below the small allocation). */
  static char chunk[65536];
  memset(chunk, 'x', sizeof(chunk));
  long base = rss_kb();
  for (int i = 0; i < 192; i++)
    assert_int_equal(usage_buf_append(&b, chunk, sizeof(chunk)), 0);
  usage_buf_free(&b);
  long freed = rss_kb();
  for (int i = 0; i < 96; i++)
    assert_int_equal(usage_buf_append(&b, chunk, sizeof(chunk)), 0);
  char *pin = malloc(64);
  assert_non_null(pin);
  long during = rss_kb();
  usage_buf_shrink(&b, 1024 * 1024);
  long after = rss_kb();
  free(pin);
  if (base > 0 && (during - base < 4 * 1024 || freed - base > 2 * 1024 ||
                   after - base > 2 * 1024))
    fail_msg("RSS %ld kB at first, %ld kB after a 12 MiB body, %ld kB with a "
             "6 MiB body, %ld kB after it",
             base, freed, during, after);
#endif
  usage_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cap),
      cmocka_unit_test(test_printf_growth),
      cmocka_unit_test(test_printf_over_cap),
      cmocka_unit_test(test_steal_reset),
      cmocka_unit_test(test_binary),
      cmocka_unit_test(test_shrink),
      cmocka_unit_test(test_mapped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
