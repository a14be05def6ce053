/* SPDX-License-Identifier: MIT */
/* config_ccc: the options of <CCC> blocks (see usage(5)). */
#include "collectd.h"
#include "configfile.h"
#include "plugin.h"

#include "api/ccc.h"
#include "config_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int ccc_service(usage_source_conf_t *src, const oconfig_item_t *ci) {
  usage_ccc_conf_t *c = src->kind_conf;
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    usage_conf_err(src, "Service", "expected the service GUID as argument");
    return EINVAL;
  }
  char guid[33];
  if (usage_guid_normalize(ci->values[0].value.string, guid) != 0) {
    usage_conf_err(src, "Service", "\"%s\" is not a GUID (32 hex digits)",
                   ci->values[0].value.string);
    return EINVAL;
  }
  for (size_t i = 0; i < c->services_num; i++)
    if (strcmp(c->services[i].guid, guid) == 0) {
      usage_conf_err(src, "Service", "service %s is configured twice", guid);
      return EINVAL;
    }
  for (int i = 0; i < ci->children_num; i++) {
    usage_conf_err(src, ci->children[i].key,
                   "unknown option in <Service \"%s\">", guid);
    return EINVAL;
  }
  usage_ccc_service_t *p =
      realloc(c->services, (c->services_num + 1) * sizeof(*p));
  if (p == NULL)
    return ENOMEM;
  c->services = p;
  memset(&p[c->services_num], 0, sizeof(*p));
  memcpy(p[c->services_num].guid, guid, sizeof(guid));
  c->services_num++;
  return 0;
}

int usage_conf_ccc_option(usage_source_conf_t *src, const oconfig_item_t *ci) {
  if (strcasecmp(ci->key, "Service") == 0)
    return ccc_service(src, ci);
  return ENOENT;
}

int usage_conf_ccc_check(usage_source_conf_t *src) {
  usage_ccc_conf_t *c = src->kind_conf;
  if (c->services_num == 0) {
    usage_conf_err(src, NULL, "no <Service \"GUID\"> block: nothing to scrape");
    return EINVAL;
  }
  return 0;
}
