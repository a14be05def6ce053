/* SPDX-License-Identifier: MIT */
/* ccc/conf: the options of <CCC> blocks (see usage(5)) into
 * usage_ccc_conf_t: GUIDs normalised, one error line per problem, and the
 * checks of the whole block. collectd glue: linked into the plugin (and the
 * tests that parse configurations), not into libusagecore. */
#include "collectd.h"
#include "configfile.h"
#include "plugin.h"

#include "api/ccc/ccc.h"
#include "conf_get.h"
#include "timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* guid_value normalises the GUID argument(s) of an option. */
static int guid_value(usage_source_conf_t *src, const char *option,
                      const oconfig_value_t *v, char out[33]) {
  if (v->type != OCONFIG_TYPE_STRING) {
    usage_conf_err(src, option, "expected a GUID string");
    return EINVAL;
  }
  if (usage_ccc_guid_normalize(v->value.string, out) != 0) {
    usage_conf_err(src, option, "\"%s\" is not a GUID (32 hex digits)",
                   v->value.string);
    return EINVAL;
  }
  return 0;
}

static int ccc_user(usage_source_conf_t *src, usage_ccc_service_t *svc,
                    const oconfig_item_t *ci) {
  if (ci->values_num < 1) {
    usage_conf_err(src, "UserGuid", "expected one or more user GUIDs");
    return EINVAL;
  }
  for (int i = 0; i < ci->values_num; i++) {
    char guid[33];
    if (guid_value(src, "UserGuid", &ci->values[i], guid) != 0)
      return EINVAL;
    for (size_t u = 0; u < svc->users_num; u++)
      if (strcmp(svc->users[u], guid) == 0) {
        usage_conf_err(src, "UserGuid", "user %s is listed twice", guid);
        return EINVAL;
      }
    char(*p)[33] = realloc(svc->users, (svc->users_num + 1) * sizeof(*p));
    if (p == NULL)
      return ENOMEM;
    svc->users = p;
    memcpy(p[svc->users_num++], guid, sizeof(guid));
  }
  return 0;
}

static int ccc_service(usage_source_conf_t *src, const oconfig_item_t *ci) {
  usage_ccc_conf_t *c = src->kind_conf;
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    usage_conf_err(src, "Service", "expected the service GUID as argument");
    return EINVAL;
  }
  char guid[33];
  if (guid_value(src, "Service", &ci->values[0], guid) != 0)
    return EINVAL;
  for (size_t i = 0; i < c->services_num; i++)
    if (strcmp(c->services[i].guid, guid) == 0) {
      usage_conf_err(src, "Service", "service %s is configured twice", guid);
      return EINVAL;
    }
  usage_ccc_service_t *p =
      realloc(c->services, (c->services_num + 1) * sizeof(*p));
  if (p == NULL)
    return ENOMEM;
  c->services = p;
  usage_ccc_service_t *svc = &p[c->services_num++];
  memset(svc, 0, sizeof(*svc));
  memcpy(svc->guid, guid, sizeof(guid));
  for (int i = 0; i < ci->children_num; i++) {
    const oconfig_item_t *child = &ci->children[i];
    if (strcasecmp(child->key, "UserGuid") == 0) {
      int status = ccc_user(src, svc, child);
      if (status != 0)
        return status;
    } else {
      usage_conf_err(src, child->key, "unknown option in <Service \"%s\">",
                     guid);
      return EINVAL;
    }
  }
  return 0;
}

static int ccc_guid_option(usage_source_conf_t *src, const oconfig_item_t *ci,
                           char **out) {
  char guid[33];
  if (ci->values_num != 1) {
    usage_conf_err(src, ci->key, "expected one GUID");
    return EINVAL;
  }
  if (guid_value(src, ci->key, &ci->values[0], guid) != 0)
    return EINVAL;
  free(*out);
  *out = strdup(guid);
  return *out ? 0 : ENOMEM;
}

/* ccc_date accepts yyyy-MM-dd (what Period pins). */
static int ccc_date(usage_source_conf_t *src, const oconfig_item_t *ci,
                    char **out) {
  char *s = NULL;
  int status = usage_get_string(src, ci, &s);
  if (status != 0)
    return status;
  double t;
  int y, m, d, n = 0;
  if (sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
      s[10] != 0 || usage_parse_time(s, &t) != 0) {
    usage_conf_err(src, ci->key, "\"%s\" is not a date (yyyy-MM-dd)", s);
    free(s);
    return EINVAL;
  }
  free(*out);
  *out = s;
  return 0;
}

int usage_conf_ccc_option(usage_source_conf_t *src, const oconfig_item_t *ci) {
  usage_ccc_conf_t *c = src->kind_conf;
  const char *k = ci->key;
  double d;
  int status;
  if (strcasecmp(k, "Service") == 0)
    return ccc_service(src, ci);
  if (strcasecmp(k, "PeriodType") == 0) {
    char *s = NULL;
    if ((status = usage_get_string(src, ci, &s)) != 0)
      return status;
    if (strcasecmp(s, "Daily") == 0)
      c->monthly = 0;
    else if (strcasecmp(s, "Monthly") == 0)
      c->monthly = 1;
    else
      status = EINVAL;
    if (status != 0)
      usage_conf_err(src, k, "expected Daily or Monthly, not \"%s\"", s);
    free(s);
    return status;
  }
  if (strcasecmp(k, "Period") == 0)
    return ccc_date(src, ci, &c->period);
  if (strcasecmp(k, "ExportUserDetails") == 0)
    return usage_get_bool(src, ci, &c->export_user_details);
  if (strcasecmp(k, "StatusChanges") == 0)
    return usage_get_bool(src, ci, &c->status_changes);
  if (strcasecmp(k, "StatusChangesLookback") == 0)
    return usage_get_number(src, ci, 1, 3650 * 86400.0,
                            "a number of seconds (1 to 315360000)",
                            &c->lookback);
  if (strcasecmp(k, "StatusChangesOverlap") == 0)
    return usage_get_number(src, ci, 0, 86400,
                            "a number of seconds (0 to 86400)", &c->overlap);
  if (strcasecmp(k, "StatusChangesPageSize") == 0) {
    status =
        usage_get_whole(src, ci, 1, 1000, "a whole number from 1 to 1000", &d);
    if (status == 0)
      c->page_size = (int)d;
    return status;
  }
  if (strcasecmp(k, "StatusChangesMaxPages") == 0) {
    status = usage_get_whole(src, ci, 1, 100000,
                             "a whole number from 1 to 100000", &d);
    if (status == 0)
      c->max_pages = (int)d;
    return status;
  }
  if (strcasecmp(k, "ResellerGuid") == 0)
    return ccc_guid_option(src, ci, &c->reseller);
  if (strcasecmp(k, "PartnerGuid") == 0)
    return ccc_guid_option(src, ci, &c->partner);
  if (strcasecmp(k, "ChangedByUserGuid") == 0)
    return ccc_guid_option(src, ci, &c->changed_by_user);
  if (strcasecmp(k, "ChangedByUserEmail") == 0)
    return usage_get_string(src, ci, &c->changed_by_email);
  if (strcasecmp(k, "StateFile") == 0)
    return usage_get_string(src, ci, &c->state_file);
  return ENOENT;
}

int usage_conf_ccc_check(usage_source_conf_t *src) {
  usage_ccc_conf_t *c = src->kind_conf;
  src->state_file = c->state_file;
  int wide = c->reseller != NULL || c->partner != NULL;
  if (c->services_num == 0 && !(c->status_changes && wide)) {
    usage_conf_err(src, NULL,
                   "no <Service \"GUID\"> block: nothing to scrape (a "
                   "reseller- or partner-wide view needs StatusChanges true "
                   "and ResellerGuid or PartnerGuid)");
    return EINVAL;
  }
  if (!c->status_changes) {
    const char *needs = c->state_file         ? "StateFile"
                        : c->reseller         ? "ResellerGuid"
                        : c->partner          ? "PartnerGuid"
                        : c->changed_by_user  ? "ChangedByUserGuid"
                        : c->changed_by_email ? "ChangedByUserEmail"
                                              : NULL;
    if (needs != NULL) {
      usage_conf_err(src, needs, "only used with StatusChanges true");
      return EINVAL;
    }
  }
  return 0;
}
