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

void usage_shard_budget(usage_source_conf_t **srcs, size_t n) {
  char a[1024], b[1024];
  unsigned char *done = calloc(n ? n : 1, 1);
  if (done == NULL)
    return; /* each block keeps its own limit */
  for (size_t i = 0; i < n; i++) {
    if (done[i])
      continue;
    usage_shard_account_key(srcs[i], a, sizeof(a));
    size_t members = 0;
    double limit = 0;
    for (size_t j = i; j < n; j++) {
      if (done[j])
        continue;
      usage_shard_account_key(srcs[j], b, sizeof(b));
      if (strcmp(a, b) != 0)
        continue;
      members++;
      double l = srcs[j]->max_rps;
      if (l > 0 && (limit == 0 || l < limit))
        limit = l;
    }
    for (size_t j = i; j < n; j++) {
      if (done[j])
        continue;
      usage_shard_account_key(srcs[j], b, sizeof(b));
      if (strcmp(a, b) != 0)
        continue;
      done[j] = 1;
      srcs[j]->account_blocks = (unsigned)members;
      srcs[j]->account_rps = limit;
      srcs[j]->account_index = 0;
      if (limit > 0)
        srcs[j]->max_rps = limit / (double)members;
    }
    /* Turns go by name, so that every shard numbers them alike. */
    for (size_t j = i; j < n; j++) {
      if (srcs[j]->account_blocks != members || srcs[j]->account_rps != limit)
        continue;
      usage_shard_account_key(srcs[j], b, sizeof(b));
      if (strcmp(a, b) != 0)
        continue;
      for (size_t k = i; k < n; k++) {
        if (k == j)
          continue;
        char c[1024];
        usage_shard_account_key(srcs[k], c, sizeof(c));
        if (strcmp(a, c) == 0 && strcmp(srcs[k]->name, srcs[j]->name) < 0)
          srcs[j]->account_index++;
      }
    }
  }
  free(done);
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
