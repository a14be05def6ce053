/* SPDX-License-Identifier: MIT */
/* fuzz_config: collectd.conf text (the children of <Plugin usage>) through
 * the test stubs' oc_parse into usage_config_parse, with the collectd stubs
 * of tests/unit. usage_exporter_check_hash is wrapped (ld --wrap) to run
 * bcrypt at cost 04 whatever the hash asks for: a fuzzed "$2b$31$" would
 * otherwise take days per input. */
#include "fuzz_common.h"
#include "usage_conf.h"

#include "../unit/collectd_stubs.h"

int __real_usage_exporter_check_hash(const char *hash);
int __wrap_usage_exporter_check_hash(const char *hash);

int __wrap_usage_exporter_check_hash(const char *hash) {
  if (hash == NULL || strlen(hash) != 60)
    return __real_usage_exporter_check_hash(hash);
  char cheap[61];
  memcpy(cheap, hash, sizeof(cheap));
  if (cheap[4] >= '0' && cheap[4] <= '9' && cheap[5] >= '0' && cheap[5] <= '9')
    cheap[4] = '0', cheap[5] = '4';
  return __real_usage_exporter_check_hash(cheap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (memchr(data, 0, size) != NULL)
    return 0; /* collectd's own parser stops there too */
  char *text = fuzz_cstr(data, size);
  if (text == NULL)
    return 0;
  oconfig_item_t *ci = oc_parse(text);
  if (ci != NULL) {
    usage_conf_t conf;
    memset(&conf, 0, sizeof(conf));
    if (usage_config_parse(ci, &conf) == 0)
      usage_conf_clear(&conf);
    oc_free(ci);
  }
  stub_log_reset();
  free(text);
  return 0;
}
