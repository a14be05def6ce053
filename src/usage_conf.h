/* SPDX-License-Identifier: MIT */
/* usage_conf: <Plugin usage> (oconfig_item_t) -> source descriptions and the
 * exporter's settings, with defaults and validation. Every problem is one
 * log line naming the block, the option and the cause. */
#ifndef USAGE_CONF_H
#define USAGE_CONF_H 1

#include "exporter.h"
#include "source.h"

#include "liboconfig/oconfig.h"

#include <stddef.h>

typedef struct {
  char *address;                                         /* default 127.0.0.1 */
  char *port;                                            /* default 19813 */
  unsigned threads, max_conns, max_per_ip, idle_timeout; /* 0 = default */
  size_t memory_limit;                                   /* 0 = default */
  unsigned request_timeout;                              /* 0 = default */
  char *tls_cert_file, *tls_key_file, *tls_client_ca_file; /* or NULL */
  usage_exporter_user_t *users; /* BasicAuthUser "name" "bcrypt hash" */
  size_t users_num;
} usage_exporter_conf_t;

typedef struct {
  usage_source_conf_t **sources;
  size_t sources_num;
  usage_exporter_conf_t *exporter; /* NULL: no <Exporter> block */
  unsigned shard, shards;          /* Shard M N; 0 0 = not given (1 of 1) */
  unsigned replica, replicas;      /* Replica M N; 0 0 = not given */
} usage_conf_t;

#define USAGE_DEFAULT_PORT "19813"
#define USAGE_DEFAULT_TIMEOUT_MS 10000
#define USAGE_DEFAULT_MAX_RESPONSE (16 * 1024 * 1024)

/* usage_config_parse reads the children of <Plugin usage> into conf (which
 * must be zeroed). 0, or EINVAL after logging every problem found; conf
 * then holds nothing (usage_conf_clear has run). */
int usage_config_parse(const oconfig_item_t *ci, usage_conf_t *conf);
void usage_conf_clear(usage_conf_t *conf);

#endif
