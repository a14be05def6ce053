/* SPDX-License-Identifier: MIT */
/* model_util: what the model-based tests (test_billing_model.c,
 * test_jasper_model.c, test_ccc_model.c) share: a seeded random number
 * generator that replays a history exactly, and the loop over the seeds
 * that the environment asks for. Include after <cmocka.h>. */
#ifndef USAGE_MODEL_UTIL_H
#define USAGE_MODEL_UTIL_H 1

#include <stddef.h>
#include <stdint.h>

/* mu_seed starts the generator for one history: the same seed gives the
 * same numbers. mu_rnd is the next 64-bit number (splitmix64), mu_below a
 * number in [0, n) (0 when n is 0), mu_chance 1 with the given percent. */
void mu_seed(unsigned long seed);
uint64_t mu_rnd(void);
uint64_t mu_below(uint64_t n);
int mu_chance(unsigned percent);

/* mu_history_fn runs the history of seed: 0, or -1 with a reason in err. */
typedef int (*mu_history_fn)(unsigned long seed, char *err, size_t errlen);

/* mu_run_seeds runs history over 2000 seeds from 0, or over PREFIX_SEEDS
 * of them, or over the one seed PREFIX_SEED (env_prefix is "BILLING_MODEL"
 * for instance). The first failure prints the seed's reason and the
 * command that replays it ("NAME model: seed ... failed", "replay:
 * PREFIX_SEED=k ./PROGRAM") and fails the test. Returns the wall time the
 * seeds took, in seconds. */
double mu_run_seeds(const char *name, const char *env_prefix,
                    const char *program, mu_history_fn history);

#endif
