/* SPDX-License-Identifier: MIT */
/* bench_store: cost of committing one entity of N series (CCC user
 * figures) to the store, as a source does on every read. Not a test:
 * numbers only. Each round builds a fresh batch and commits it; the commit
 * alone is timed. Run under `valgrind --tool=callgrind
 * --toggle-collect=usage_store_commit` for instruction counts.
 *
 *   bench_store [N [ROUNDS [changed|changed1]]]
 *                                        changed: every round has new
 *                                        values; changed1: 1% of them
 *                                        change; default: the same ones
 *   bench_store mem N                    heap bytes per series the store
 *                                        keeps beyond the body's text
 *   bench_store gzip N ROUNDS            N series in entities of 500; each
 *                                        round changes one entity and
 *                                        times the gzip body after it
 *                                        (callgrind: --toggle-collect=
 *                                        usage_store_body_gzip) */
#include "families.h"
#include "store.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int one_percent; /* build: only every 100th value changes */

static usage_batch_t *build(long n, int round) {
  usage_batch_t *b = usage_batch_create("acme", "users");
  char svc[32], user[32];
  for (long i = 0; i < n; i++) {
    snprintf(svc, sizeof(svc), "svc%04ld", i / 1000);
    snprintf(user, sizeof(user), "user%08lx", (unsigned long)i * 2654435761u);
    usage_batch_add(
        b, (int)(i % 2) ? FAM_CCC_USER_MESSAGES_SENT : FAM_CCC_SERVICE_USERS,
        (double)(i * 7 % 100003) +
            (one_percent && (i + round) % 100 != 0 ? 0 : round * 0.25),
        "service", svc, "user", user, "period", "daily", NULL);
  }
  return b;
}

static int run_gzip(long n, int rounds) {
  usage_store_t *s = usage_store_create();
  char ent[32], svc[32], user[32];
  for (int r = 0; r <= rounds; r++) {
    for (long i = 0; i < n; i += 500) {
      if (r > 0 && i / 500 != r % (n / 500 + 1))
        continue;
      snprintf(ent, sizeof(ent), "users:%06ld", i / 500);
      usage_batch_t *b = usage_batch_create("acme", ent);
      for (long k = i; k < i + 500 && k < n; k++) {
        snprintf(svc, sizeof(svc), "svc%04ld", k / 1000);
        snprintf(user, sizeof(user), "user%08lx",
                 (unsigned long)k * 2654435761u);
        usage_batch_add(b, FAM_CCC_USER_MESSAGES_SENT,
                        (double)(k * 7 % 100003 + r), "service", svc, "user",
                        user, "period", "daily", NULL);
      }
      usage_store_commit(s, b);
    }
    double t0 = now_s();
    usage_body_t *gz = usage_store_body_gzip(s, USAGE_FMT_TEXT);
    double t = now_s() - t0;
    if (r == rounds)
      printf("bench_store gzip series=%ld rounds=%d gzip_ms=%.2f "
             "gzip_bytes=%zu\n",
             n, rounds, t * 1e3, gz->len);
    usage_body_release(gz);
  }
  usage_store_destroy(s);
  return 0;
}

/* run_mem: heap in use (arena and mmapped blocks) after two commits of one entity (the second
 * changed), less the text of its lines, per series. */
static int run_mem(long n) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  usage_store_t *s = usage_store_create();
  struct mallinfo2 a = mallinfo2();
  size_t m0 = a.uordblks + a.hblkhd;
  usage_store_commit(s, build(n, 0));
  one_percent = 1;
  usage_store_commit(s, build(n, 1));
  a = mallinfo2();
  size_t m1 = a.uordblks + a.hblkhd;
  usage_body_t *body = usage_store_body_iov(s, USAGE_FMT_TEXT);
  size_t text = body->len;
  usage_body_release(body);
  printf("bench_store mem series=%ld heap_bytes=%zu text_bytes=%zu "
         "bytes_per_series_beyond_text=%.1f\n",
         n, m1 - m0, text, (double)(m1 - m0 - text) / (double)n);
  usage_store_destroy(s);
  return 0;
#else
  (void)n;
  fprintf(stderr, "bench_store mem: needs glibc >= 2.33 (mallinfo2)\n");
  return 1;
#endif
}

int main(int argc, char **argv) {
  if (argc > 3 && strcmp(argv[1], "gzip") == 0)
    return run_gzip(atol(argv[2]), atoi(argv[3]));
  if (argc > 2 && strcmp(argv[1], "mem") == 0)
    return run_mem(atol(argv[2]));
  long n = argc > 1 ? atol(argv[1]) : 100000;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  int changed = argc > 3 && strncmp(argv[3], "changed", 7) == 0;
  one_percent = argc > 3 && strcmp(argv[3], "changed1") == 0;
  usage_store_t *s = usage_store_create();
  usage_store_commit(s, build(n, 0));
  usage_body_release(usage_store_body_gzip(s, USAGE_FMT_TEXT));
  double total = 0;
  for (int r = 1; r <= rounds; r++) {
    usage_batch_t *b = build(n, changed ? r : 0);
    double t0 = now_s();
    usage_store_commit(s, b);
    total += now_s() - t0;
    usage_body_release(usage_store_body_gzip(s, USAGE_FMT_TEXT));
  }
  printf("bench_store series=%ld rounds=%d %s commit_ms=%.2f\n", n, rounds,
         one_percent ? "changed1" : changed ? "changed" : "unchanged",
         total * 1e3 / rounds);
  usage_store_destroy(s);
  return 0;
}
