/* SPDX-License-Identifier: MIT */
/* conf_get: what config.c shares with the per-kind option parsers
 * (src/api/ccc/conf.c, ...): typed getters that log one line per problem naming
 * the block and the option, and the per-kind entry points. */
#ifndef USAGE_CONF_GET_H
#define USAGE_CONF_GET_H 1

#include "usage_conf.h"

/* usage_conf_err logs "usage plugin: KIND "name": option "X": message". */
void usage_conf_err(const usage_source_conf_t *src, const char *option,
                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Getters: 0, or EINVAL after logging what was expected. */
int usage_get_string(const usage_source_conf_t *src, const oconfig_item_t *ci,
                     char **out);
int usage_get_bool(const usage_source_conf_t *src, const oconfig_item_t *ci,
                   int *out);
int usage_get_number(const usage_source_conf_t *src, const oconfig_item_t *ci,
                     double min, double max, const char *what, double *out);
/* usage_get_whole is usage_get_number for whole numbers: what says the
 * range in words ("a whole number from 1 to 1000"). */
int usage_get_whole(const usage_source_conf_t *src, const oconfig_item_t *ci,
                    double min, double max, const char *what, double *out);

/* usage_conf_exporter reads the <Exporter> block (config_exporter.c). 0, or
 * EINVAL/ENOMEM after logging. */
int usage_conf_exporter(const oconfig_item_t *ci, usage_conf_t *conf);

/* usage_conf_login reads a <Login> block into src->login;
 * usage_conf_login_check applies its preset and defaults and checks it once
 * the block's URL is known (config_login.c). 0, or EINVAL after logging. */
int usage_conf_login(usage_source_conf_t *src, const oconfig_item_t *ci);
int usage_conf_login_check(usage_source_conf_t *src);

/* Per kind: option() handles one child of the block (ENOENT = not one of
 * its options); check() validates the block after all options were read. */
int usage_conf_ccc_option(usage_source_conf_t *src, const oconfig_item_t *ci);
int usage_conf_ccc_check(usage_source_conf_t *src);
int usage_conf_billing_option(usage_source_conf_t *src,
                              const oconfig_item_t *ci);
int usage_conf_billing_check(usage_source_conf_t *src);
int usage_conf_jasper_option(usage_source_conf_t *src,
                             const oconfig_item_t *ci);
int usage_conf_jasper_check(usage_source_conf_t *src);

#endif
