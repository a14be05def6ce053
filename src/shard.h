/* SPDX-License-Identifier: MIT */
/* shard: which source blocks this instance scrapes when one configuration
 * is deployed on several hosts (Shard M N, USAGE_SHARD="M/N"), and how the
 * blocks that reach one vendor account share its request budget, so that
 * all shards together stay within MaxRequestsPerSecond. Pure functions. */
#ifndef USAGE_SHARD_H
#define USAGE_SHARD_H 1

#include "source.h"

#include <stddef.h>

#define USAGE_SHARD_MAX 1000

/* usage_shard_parse reads "M/N" (1 <= M <= N <= USAGE_SHARD_MAX). 0 or
 * EINVAL. */
int usage_shard_parse(const char *text, unsigned *shard, unsigned *shards);

/* usage_shard_of is the shard (1..shards) of a block by name: FNV-1a (64
 * bit) of the name's bytes, modulo shards, plus one. Stable across
 * versions and hosts: it is documented in usage(5). */
unsigned usage_shard_of(const char *name, unsigned shards);

/* usage_shard_owner: the block's own Shard option when set, else its hash
 * shard. 0 when the block names a shard above shards. */
unsigned usage_shard_owner(const usage_source_conf_t *c, unsigned shards);

/* usage_shard_account_key writes the account a block reaches: its Account
 * option, else kind, URL and the user or token file (never a secret). */
void usage_shard_account_key(const usage_source_conf_t *c, char *out,
                             size_t size);

/* usage_shard_budget divides each account's MaxRequestsPerSecond among all
 * the blocks (of every shard) that reach it: a block's limit becomes the
 * smallest limit of its account divided by the account's number of blocks.
 * Accounts without a limit are left alone. Sets account_blocks,
 * account_rps (the account's limit) and account_index (the block's turn,
 * by name) for source.c's request slots. */
void usage_shard_budget(usage_source_conf_t **srcs, size_t n);

/* usage_shard_replicas makes replica r (1-based) of `replicas` instances
 * that scrape the same blocks take turns with the others: each account's
 * budget is divided once more by replicas, and the turns interleave. Call
 * after usage_shard_budget. */
void usage_shard_replicas(usage_source_conf_t **srcs, size_t n, unsigned r,
                          unsigned replicas);

#endif
