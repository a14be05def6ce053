/* SPDX-License-Identifier: MIT */
/* collectd_stubs: the collectd functions the glue calls, for unit tests
 * that link src/config.c, src/api/ccc/conf.c or src/dispatch.c without the
 * daemon. Log lines and dispatched value lists are captured for the tests
 * to inspect; oconfig_item_t trees are built with a few helpers. */
#ifndef USAGE_COLLECTD_STUBS_H
#define USAGE_COLLECTD_STUBS_H 1

#include "liboconfig/oconfig.h"

#include <stddef.h>

/* Captured log lines, "LEVEL message\n" each (LEVEL = syslog number). */
void stub_log_reset(void);
const char *stub_log_text(void);
/* stub_log_count counts the lines of one level (-1 = all). */
int stub_log_count(int level);

/* A dispatched value list, copied. */
typedef struct {
  char host[128], plugin[128], plugin_instance[128], type[128],
      type_instance[128];
  size_t values_len;
  double interval;  /* seconds */
  double gauge;     /* values[0] read as gauge */
  long long derive; /* values[0] read as derive (same bits, other view) */
  char meta[512];   /* "key=value;" pairs of string meta data */
  int has_meta;     /* vl->meta was set (an empty object counts) */
} stub_vl_t;

void stub_values_reset(void);
size_t stub_values_num(void);
const stub_vl_t *stub_value(size_t i);
/* stub_dispatch_fail makes plugin_dispatch_values fail (non-zero). */
void stub_dispatch_fail(int fail);

/* oconfig builders. Values are given as a type string: "s" string, "n"
 * number, "b" boolean, then the values: oc_item("URL", "s", "http://x").
 * oc_add appends child to parent (copied, the child's storage is taken). */
oconfig_item_t *oc_item(const char *key, const char *types, ...);
oconfig_item_t *oc_add(oconfig_item_t *parent, oconfig_item_t *child);
void oc_free(oconfig_item_t *ci);
/* oc_parse reads collectd.conf syntax (one option a line, <Block "arg">
 * ... </Block>, "strings", numbers, true/false) into a <Plugin "usage">
 * item. NULL on a syntax error. */
oconfig_item_t *oc_parse(const char *text);

#endif
