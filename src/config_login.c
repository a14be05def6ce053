/* SPDX-License-Identifier: MIT */
/* config_login: the <Login> block of a source (login.h). Every problem is
 * one error line naming the block and the option; secret files are read
 * once here so that a typo shows at start-up. */
#include "collectd.h"
#include "configfile.h"
#include "plugin.h"

#include "conf_get.h"
#include "login.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* login_pair reads Name "value" (Field, FieldFile, SendHeader). */
static int login_pair(const usage_source_conf_t *src, const oconfig_item_t *ci,
                      const char **name, const char **value) {
  if (ci->values_num != 2 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[1].type != OCONFIG_TYPE_STRING ||
      ci->values[0].value.string[0] == 0) {
    usage_conf_err(src, ci->key, "expected two strings: a name and a value");
    return EINVAL;
  }
  *name = ci->values[0].value.string;
  *value = ci->values[1].value.string;
  return 0;
}

static int login_secret_file(const usage_source_conf_t *src,
                             const oconfig_item_t *ci, usage_secret_t *s) {
  if (s->file != NULL) {
    usage_conf_err(src, ci->key, "given twice");
    return EINVAL;
  }
  int status = usage_get_string(src, ci, &s->file);
  if (status != 0)
    return status;
  const char *value;
  char err[256];
  if (usage_secret_get(s, &value, err, sizeof(err)) != 0) {
    usage_conf_err(src, ci->key, "%s", err);
    return EINVAL;
  }
  return 0;
}

static int login_option(usage_source_conf_t *src, usage_login_conf_t *c,
                        const oconfig_item_t *ci) {
  const char *k = ci->key, *name, *value;
  char *s = NULL;
  int status;
  if (strcasecmp(k, "URL") == 0)
    return usage_get_string(src, ci, &c->url);
  if (strcasecmp(k, "Method") == 0)
    return usage_get_string(src, ci, &c->method);
  if (strcasecmp(k, "Format") == 0 || strcasecmp(k, "Preset") == 0 ||
      strcasecmp(k, "ClientAuth") == 0) {
    status = usage_get_string(src, ci, &s);
    if (status != 0)
      return status;
    int bad = 0;
    if (strcasecmp(k, "Format") == 0) {
      if (strcasecmp(s, "json") == 0)
        c->format = USAGE_LOGIN_FORMAT_JSON;
      else if (strcasecmp(s, "form") == 0)
        c->format = USAGE_LOGIN_FORMAT_FORM;
      else {
        usage_conf_err(src, k, "expected \"json\" or \"form\"");
        bad = 1;
      }
    } else if (strcasecmp(k, "Preset") == 0) {
      int p = usage_login_preset_parse(s);
      if (p < 0) {
        usage_conf_err(src, k, "expected \"ccc\" or \"oauth2\"");
        bad = 1;
      } else
        c->preset = (usage_login_preset_t)p;
    } else {
      if (strcasecmp(s, "basic") == 0)
        c->client_auth = USAGE_LOGIN_AUTH_BASIC;
      else if (strcasecmp(s, "post") == 0)
        c->client_auth = USAGE_LOGIN_AUTH_POST;
      else {
        usage_conf_err(src, k, "expected \"basic\" or \"post\"");
        bad = 1;
      }
    }
    free(s);
    return bad ? EINVAL : 0;
  }
  if (strcasecmp(k, "Field") == 0 || strcasecmp(k, "FieldFile") == 0) {
    status = login_pair(src, ci, &name, &value);
    if (status != 0)
      return status;
    int file = strcasecmp(k, "FieldFile") == 0;
    status = usage_login_conf_add_field(c, name, file ? NULL : value,
                                        file ? value : NULL);
    if (status != 0 || !file)
      return status;
    const char *v;
    char err[256];
    if (usage_secret_get(&c->fields[c->fields_num - 1].secret, &v, err,
                         sizeof(err)) != 0) {
      usage_conf_err(src, k, "%s", err);
      return EINVAL;
    }
    return 0;
  }
  if (strcasecmp(k, "TokenField") == 0)
    return usage_get_string(src, ci, &c->token_field);
  if (strcasecmp(k, "TokenHeader") == 0)
    return usage_get_string(src, ci, &c->token_header);
  if (strcasecmp(k, "ExpiresField") == 0)
    return usage_get_string(src, ci, &c->expires_field);
  if (strcasecmp(k, "TTL") == 0)
    return usage_get_number(src, ci, 1, 86400 * 366.0,
                            "a lifetime in seconds from 1 to 31622400",
                            &c->ttl);
  if (strcasecmp(k, "SendHeader") == 0) {
    status = login_pair(src, ci, &name, &value);
    if (status != 0)
      return status;
    free(c->send_header);
    free(c->send_prefix);
    c->send_header = strdup(name);
    c->send_prefix = strdup(value);
    return c->send_header && c->send_prefix ? 0 : ENOMEM;
  }
  if (strcasecmp(k, "User") == 0)
    return usage_get_string(src, ci, &c->user);
  if (strcasecmp(k, "PasswordFile") == 0)
    return login_secret_file(src, ci, &c->password);
  if (strcasecmp(k, "ClientID") == 0)
    return usage_get_string(src, ci, &c->client_id);
  if (strcasecmp(k, "ClientSecretFile") == 0)
    return login_secret_file(src, ci, &c->client_secret);
  if (strcasecmp(k, "Scope") == 0)
    return usage_get_string(src, ci, &c->scope);
  usage_conf_err(src, k, "unknown option in <Login>");
  return EINVAL;
}

int usage_conf_login(usage_source_conf_t *src, const oconfig_item_t *ci) {
  if (ci->values_num != 0) {
    usage_conf_err(src, "Login", "expected <Login> without arguments");
    return EINVAL;
  }
  if (src->login != NULL) {
    usage_conf_err(src, "Login", "given twice");
    return EINVAL;
  }
  usage_login_conf_t *c = usage_login_conf_create();
  if (c == NULL)
    return ENOMEM;
  src->login = c;
  int errors = 0;
  for (int i = 0; i < ci->children_num; i++)
    if (login_option(src, c, &ci->children[i]) != 0)
      errors++;
  return errors ? EINVAL : 0;
}

int usage_conf_login_check(usage_source_conf_t *src) {
  if (src->login == NULL)
    return 0;
  const char *option = NULL;
  char err[256];
  int status = usage_login_conf_finish(src->login, src->http.url, &option, err,
                                       sizeof(err));
  if (status == EINVAL)
    usage_conf_err(src, option ? option : "Login", "<Login>: %s", err);
  return status;
}
