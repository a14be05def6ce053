/* SPDX-License-Identifier: MIT */
/* test_shard: "M/N" parsing, the stable name hash (fixed values, so that a
 * change that would move blocks between hosts fails here), ownership with
 * and without a block's own Shard, and the per-account request budget. */
#include "shard.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_parse(void **state) {
  static const struct {
    const char *in;
    int ok;
    unsigned m, n;
  } cases[] = {
      {"1/1", 1, 1, 1},  {"2/3", 1, 2, 3},  {"1000/1000", 1, 1000, 1000},
      {"0/3", 0, 0, 0},  {"4/3", 0, 0, 0},  {"1/1001", 0, 0, 0},
      {"2", 0, 0, 0},    {"2/", 0, 0, 0},   {"/3", 0, 0, 0},
      {"2/3x", 0, 0, 0}, {"-1/3", 0, 0, 0}, {"2/-3", 0, 0, 0},
      {" 2/3", 0, 0, 0}, {"", 0, 0, 0},     {"99999999999999999999/3", 0, 0, 0},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    unsigned m = 0, n = 0;
    int rc = usage_shard_parse(cases[i].in, &m, &n);
    if ((rc == 0) != cases[i].ok)
      fail_msg("\"%s\": rc %d", cases[i].in, rc);
    if (cases[i].ok && (m != cases[i].m || n != cases[i].n))
      fail_msg("\"%s\": %u/%u", cases[i].in, m, n);
  }
  assert_int_not_equal(usage_shard_parse(NULL, NULL, NULL), 0);
}

static void test_hash_stable(void **state) {
  (void)state;
  /* FNV-1a 64 of the name, mod N, plus 1: fixed figures (usage(5)). */
  assert_int_equal(usage_shard_of("", 3), 0xcbf29ce484222325ULL % 3 + 1);
  assert_int_equal(usage_shard_of("a", 1000), 0xaf63dc4c8601ec8cULL % 1000 + 1);
  assert_int_equal(usage_shard_of("acme", 1), 1);
  /* spread: 3,000 names over 3 shards, each gets a fair share */
  unsigned count[4] = {0};
  char name[32];
  for (int i = 0; i < 3000; i++) {
    snprintf(name, sizeof(name), "account-%d", i);
    unsigned s = usage_shard_of(name, 3);
    assert_true(s >= 1 && s <= 3);
    count[s]++;
  }
  for (int s = 1; s <= 3; s++)
    assert_true(count[s] > 850 && count[s] < 1150);
}

static void test_owner(void **state) {
  (void)state;
  usage_source_conf_t c = {.name = "acme", .kind = USAGE_KIND_CCC};
  assert_int_equal(usage_shard_owner(&c, 3), usage_shard_of("acme", 3));
  c.shard = 2;
  assert_int_equal(usage_shard_owner(&c, 3), 2);
  c.shard = 4;
  assert_int_equal(usage_shard_owner(&c, 3), 0);
}

static void test_budget(void **state) {
  (void)state;
  usage_source_conf_t
      a = {.name = "plans-1", .kind = USAGE_KIND_JASPER, .max_rps = 5},
      b = {.name = "plans-2", .kind = USAGE_KIND_JASPER, .max_rps = 5},
      c = {.name = "plans-3", .kind = USAGE_KIND_JASPER, .max_rps = 4},
      d = {.name = "other", .kind = USAGE_KIND_JASPER, .max_rps = 5},
      e = {.name = "ccc", .kind = USAGE_KIND_CCC, .max_rps = 0},
      f = {.name = "ccc2", .kind = USAGE_KIND_CCC, .max_rps = 0};
  a.http.url = b.http.url = c.http.url = "http://127.0.0.1:1";
  a.http.user = b.http.user = c.http.user = "api";
  d.http.url = "http://127.0.0.1:1";
  d.http.user = "someone-else";
  e.http.url = f.http.url = "http://127.0.0.1:2";
  usage_source_conf_t *all[] = {&a, &d, &b, &e, &c, &f};
  usage_shard_budget(all, 6);
  /* one account of three blocks: the smallest limit, divided by three */
  assert_true(a.max_rps > 1.3333 && a.max_rps < 1.3334);
  assert_true(b.max_rps == a.max_rps && c.max_rps == a.max_rps);
  assert_int_equal(a.account_blocks, 3);
  /* turns by name, the same on every shard */
  assert_int_equal(a.account_index, 0);
  assert_int_equal(b.account_index, 1);
  assert_int_equal(c.account_index, 2);
  assert_true(a.account_rps == 4);
  assert_int_equal(d.account_index, 0);
  /* another user is another account */
  assert_true(d.max_rps == 5);
  assert_int_equal(d.account_blocks, 1);
  /* no limit stays no limit */
  assert_true(e.max_rps == 0 && f.max_rps == 0);
  assert_int_equal(e.account_blocks, 2);

  /* Account names group blocks whatever their URL */
  usage_source_conf_t g = {.name = "g",
                           .kind = USAGE_KIND_BILLING,
                           .max_rps = 10,
                           .account = "acme"},
                      h = {.name = "h",
                           .kind = USAGE_KIND_BILLING,
                           .max_rps = 10,
                           .account = "acme"};
  g.http.url = "http://127.0.0.1:3";
  h.http.url = "http://127.0.0.1:4";
  usage_source_conf_t *two[] = {&g, &h};
  usage_shard_budget(two, 2);
  assert_true(g.max_rps == 5 && h.max_rps == 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_hash_stable),
      cmocka_unit_test(test_owner),
      cmocka_unit_test(test_budget),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
