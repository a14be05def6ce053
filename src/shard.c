/* SPDX-License-Identifier: MIT */
/* shard: block ownership by a stable name hash and the per-account request
 * budget (see shard.h). */
#include "shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int usage_shard_parse(const char *text, unsigned *shard, unsigned *shards) {
  if (text == NULL)
    return EINVAL;
  char *end;
  errno = 0;
  unsigned long m = strtoul(text, &end, 10);
  if (end == text || *end != '/' || text[0] < '0' || text[0] > '9')
    return EINVAL;
  const char *p = end + 1;
  if (*p < '0' || *p > '9')
    return EINVAL;
  unsigned long n = strtoul(p, &end, 10);
  if (*end != 0 || errno != 0 || m < 1 || n < 1 || m > n || n > USAGE_SHARD_MAX)
    return EINVAL;
  *shard = (unsigned)m;
  *shards = (unsigned)n;
  return 0;
}

unsigned usage_shard_of(const char *name, unsigned shards) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    h = (h ^ *p) * 0x100000001b3ULL;
  return shards ? (unsigned)(h % shards) + 1 : 1;
}

unsigned usage_shard_owner(const usage_source_conf_t *c, unsigned shards) {
  if (c->shard == 0)
    return usage_shard_of(c->name, shards);
  return c->shard <= shards ? c->shard : 0;
}

void usage_shard_account_key(const usage_source_conf_t *c, char *out,
                             size_t size) {
  if (c->account != NULL) {
    snprintf(out, size, "account %s", c->account);
    return;
  }
  const char *who = c->http.user           ? c->http.user
                    : c->http.bearer.file  ? c->http.bearer.file
                    : c->http.bearer.value ? "(inline token)"
                                           : "";
  snprintf(out, size, "%s %s %s", usage_kind_name(c->kind),
           c->http.url ? c->http.url : "", who);
}

/* usage_shard_budget: the blocks of one account share its limit (the
 * smallest MaxRequestsPerSecond among them) and take turns numbered by
 * block name, so that every shard numbers them alike. All figures are
 * computed from the configured limits first, then assigned. */
void usage_shard_budget(usage_source_conf_t **srcs, size_t n) {
  typedef struct {
    char key[1024];
    unsigned members, index;
    double limit;
  } acct_t;
  acct_t *a = calloc(n ? n : 1, sizeof(*a));
  if (a == NULL)
    return; /* each block keeps its own limit */
  for (size_t i = 0; i < n; i++)
    usage_shard_account_key(srcs[i], a[i].key, sizeof(a[i].key));
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      if (strcmp(a[i].key, a[j].key) != 0)
        continue;
      a[i].members++;
      double l = srcs[j]->max_rps;
      if (l > 0 && (a[i].limit == 0 || l < a[i].limit))
        a[i].limit = l;
      if (j != i && strcmp(srcs[j]->name, srcs[i]->name) < 0)
        a[i].index++;
    }
  for (size_t i = 0; i < n; i++) {
    srcs[i]->account_blocks = a[i].members;
    srcs[i]->account_rps = a[i].limit;
    srcs[i]->account_index = a[i].index;
    if (a[i].limit > 0)
      srcs[i]->max_rps = a[i].limit / (double)a[i].members;
  }
  free(a);
}

void usage_shard_replicas(usage_source_conf_t **srcs, size_t n, unsigned r,
                          unsigned replicas) {
  if (replicas <= 1 || r < 1 || r > replicas)
    return;
  for (size_t i = 0; i < n; i++) {
    usage_source_conf_t *c = srcs[i];
    if (c->account_blocks == 0)
      c->account_blocks = 1;
    c->account_index = c->account_index * replicas + (r - 1);
    c->account_blocks *= replicas;
    if (c->account_rps > 0)
      c->max_rps = c->account_rps / (double)c->account_blocks;
  }
}
