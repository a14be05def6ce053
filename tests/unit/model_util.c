/* SPDX-License-Identifier: MIT */
/* model_util: the seeded generator and the seed loop of the model-based
 * tests (see model_util.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "model_util.h"

static uint64_t rng_state;

void mu_seed(unsigned long seed) {
  rng_state = seed * 0x2545f4914f6cdd1dULL + 1;
}

uint64_t mu_rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t mu_below(uint64_t n) { return n ? mu_rnd() % n : 0; }

int mu_chance(unsigned percent) { return mu_below(100) < percent; }

double mu_run_seeds(const char *name, const char *env_prefix,
                    const char *program, mu_history_fn history) {
  char var[64];
  unsigned long first = 0, n = 2000;
  snprintf(var, sizeof(var), "%s_SEED", env_prefix);
  const char *one = getenv(var);
  snprintf(var, sizeof(var), "%s_SEEDS", env_prefix);
  const char *many = getenv(var);
  if (one != NULL && *one) {
    first = strtoul(one, NULL, 10);
    n = 1;
  } else if (many != NULL && *many) {
    n = strtoul(many, NULL, 10);
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (unsigned long seed = first; seed < first + n; seed++) {
    char err[1200];
    if (history(seed, err, sizeof(err)) != 0) {
      fprintf(stderr,
              "%s model: seed %lu failed: %s\n"
              "replay: %s_SEED=%lu ./%s\n",
              name, seed, err, env_prefix, seed, program);
      fail_msg("seed %lu: %s", seed, err);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}
