/* SPDX-License-Identifier: MIT */
/* config_exporter: the <Exporter> block: address and port, the server's
 * limits, TLS files and Basic auth users. One log line per problem. */
#include "collectd.h"
#include "configfile.h"
#include "plugin.h"

#include "conf_get.h"
#include "usage_conf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* conf_exporter_count reads a whole number from min to max. */
static int conf_exporter_count(const oconfig_item_t *child, double min,
                               double max, double *out) {
  if (child->values_num != 1 || child->values[0].type != OCONFIG_TYPE_NUMBER ||
      !(child->values[0].value.number >= min &&
        child->values[0].value.number <= max) ||
      child->values[0].value.number != (long)child->values[0].value.number) {
    ERROR("usage plugin: Exporter: option \"%s\": expected a whole number "
          "from %.0f to %.0f",
          child->key, min, max);
    return EINVAL;
  }
  *out = child->values[0].value.number;
  return 0;
}

static int conf_exporter_file(const oconfig_item_t *child, char **out) {
  if (child->values_num != 1 || child->values[0].type != OCONFIG_TYPE_STRING ||
      child->values[0].value.string[0] == 0) {
    ERROR("usage plugin: Exporter: option \"%s\": expected one file name",
          child->key);
    return EINVAL;
  }
  if (access(child->values[0].value.string, R_OK) != 0) {
    ERROR("usage plugin: Exporter: option \"%s\": cannot read \"%s\": %s",
          child->key, child->values[0].value.string, strerror(errno));
    return EINVAL;
  }
  free(*out);
  *out = strdup(child->values[0].value.string);
  return *out ? 0 : ENOMEM;
}

/* conf_exporter_more: the hardening, TLS and auth options of <Exporter>. */
static int conf_exporter_more(const oconfig_item_t *child,
                              usage_exporter_conf_t *e) {
  double v = 0;
  const char *k = child->key;
  if (strcasecmp(k, "Threads") == 0) {
    if (conf_exporter_count(child, 1, 64, &v) != 0)
      return EINVAL;
    e->threads = (unsigned)v;
  } else if (strcasecmp(k, "MaxConnections") == 0) {
    if (conf_exporter_count(child, 1, 100000, &v) != 0)
      return EINVAL;
    e->max_conns = (unsigned)v;
  } else if (strcasecmp(k, "MaxConnectionsPerIP") == 0) {
    if (conf_exporter_count(child, 1, 100000, &v) != 0)
      return EINVAL;
    e->max_per_ip = (unsigned)v;
  } else if (strcasecmp(k, "IdleTimeout") == 0) {
    if (conf_exporter_count(child, 1, 3600, &v) != 0)
      return EINVAL;
    e->idle_timeout = (unsigned)v;
  } else if (strcasecmp(k, "RequestTimeout") == 0) {
    if (conf_exporter_count(child, 1, 3600, &v) != 0)
      return EINVAL;
    e->request_timeout = (unsigned)v;
  } else if (strcasecmp(k, "ConnectionMemoryLimit") == 0) {
    if (conf_exporter_count(child, 4096, 16 * 1024 * 1024, &v) != 0)
      return EINVAL;
    e->memory_limit = (size_t)v;
  } else if (strcasecmp(k, "TLSCertFile") == 0) {
    return conf_exporter_file(child, &e->tls_cert_file);
  } else if (strcasecmp(k, "TLSKeyFile") == 0) {
    return conf_exporter_file(child, &e->tls_key_file);
  } else if (strcasecmp(k, "TLSClientCAFile") == 0) {
    return conf_exporter_file(child, &e->tls_client_ca_file);
  } else if (strcasecmp(k, "BasicAuthUser") == 0) {
    if (child->values_num != 2 ||
        child->values[0].type != OCONFIG_TYPE_STRING ||
        child->values[1].type != OCONFIG_TYPE_STRING ||
        child->values[0].value.string[0] == 0 ||
        strchr(child->values[0].value.string, ':') != NULL) {
      ERROR("usage plugin: Exporter: option \"BasicAuthUser\": expected a "
            "user name (without ':') and a bcrypt hash");
      return EINVAL;
    }
    const char *user = child->values[0].value.string;
    if (usage_exporter_check_hash(child->values[1].value.string) != 0) {
      ERROR("usage plugin: Exporter: option \"BasicAuthUser\": user \"%s\": "
            "the hash is not a bcrypt hash ($2y$, $2b$ or $2a$, as "
            "htpasswd -nBC 10 writes)",
            user);
      return EINVAL;
    }
    for (size_t i = 0; i < e->users_num; i++)
      if (strcmp(e->users[i].user, user) == 0) {
        ERROR("usage plugin: Exporter: option \"BasicAuthUser\": user "
              "\"%s\" is given twice",
              user);
        return EINVAL;
      }
    usage_exporter_user_t *p =
        realloc(e->users, (e->users_num + 1) * sizeof(*p));
    if (p == NULL)
      return ENOMEM;
    e->users = p;
    p[e->users_num].user = strdup(user);
    p[e->users_num].hash = strdup(child->values[1].value.string);
    e->users_num++;
    if (p[e->users_num - 1].user == NULL || p[e->users_num - 1].hash == NULL)
      return ENOMEM;
  } else {
    ERROR("usage plugin: Exporter: option \"%s\": unknown option", k);
    return EINVAL;
  }
  return 0;
}

int usage_conf_exporter(const oconfig_item_t *ci, usage_conf_t *conf) {
  if (conf->exporter != NULL) {
    ERROR("usage plugin: Exporter: only one <Exporter> block is allowed");
    return EINVAL;
  }
  if (ci->values_num != 0) {
    ERROR("usage plugin: Exporter: the block takes no argument");
    return EINVAL;
  }
  usage_exporter_conf_t *e = calloc(1, sizeof(*e));
  if (e == NULL)
    return ENOMEM;
  conf->exporter = e;
  int errors = 0;
  for (int i = 0; i < ci->children_num; i++) {
    const oconfig_item_t *child = &ci->children[i];
    if (strcasecmp(child->key, "Address") == 0) {
      if (child->values_num != 1 ||
          child->values[0].type != OCONFIG_TYPE_STRING ||
          cf_util_get_string(child, &e->address) != 0) {
        ERROR("usage plugin: Exporter: option \"Address\": expected one "
              "string (an IP address or a host name)");
        errors++;
      }
    } else if (strcasecmp(child->key, "Port") == 0) {
      /* Checked before cf_util_get_port_number, which logs lines of its
       * own and reads "70000" as port 4464 (getaddrinfo wraps it). */
      double num = -1;
      char *end = NULL;
      if (child->values_num == 1 &&
          child->values[0].type == OCONFIG_TYPE_NUMBER)
        num = child->values[0].value.number;
      else if (child->values_num == 1 &&
               child->values[0].type == OCONFIG_TYPE_STRING) {
        num = strtod(child->values[0].value.string, &end);
        if (end == child->values[0].value.string || *end != 0)
          num = -1;
      }
      int port = (num >= 1 && num <= 65535 && num == (int)num)
                     ? cf_util_get_port_number(child)
                     : -1;
      if (port <= 0) {
        ERROR("usage plugin: Exporter: option \"Port\": expected a port "
              "number from 1 to 65535");
        errors++;
      } else {
        char buf[16];
        snprintf(buf, sizeof(buf), "%d", port);
        free(e->port);
        e->port = strdup(buf);
      }
    } else if (conf_exporter_more(child, e) != 0) {
      errors++;
    }
  }
  if ((e->tls_cert_file == NULL) != (e->tls_key_file == NULL)) {
    ERROR("usage plugin: Exporter: options \"TLSCertFile\" and "
          "\"TLSKeyFile\": give both or neither");
    errors++;
  }
  if (e->tls_client_ca_file != NULL && e->tls_cert_file == NULL) {
    ERROR("usage plugin: Exporter: option \"TLSClientCAFile\": needs "
          "\"TLSCertFile\" and \"TLSKeyFile\"");
    errors++;
  }
  if (e->address == NULL)
    e->address = strdup("127.0.0.1");
  if (e->port == NULL)
    e->port = strdup(USAGE_DEFAULT_PORT);
  if (e->address == NULL || e->port == NULL)
    return ENOMEM;
  return errors ? EINVAL : 0;
}
