/* SPDX-License-Identifier: MIT */
/* collectd_stubs: collectd 5.12's configfile/plugin/common functions as the
 * glue uses them, with the daemon's semantics (argument checks and their
 * own ERROR lines included), capturing log lines and value lists. */
#include "collectd.h"
#include "configfile.h"
#include "plugin.h"
#include "utils/common/common.h"
#include "utils/metadata/meta_data.h"

#include "collectd_stubs.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

char *hostname_g = "stubhost";

/* Log capture */

static char log_text[65536];
static size_t log_len;

void stub_log_reset(void) {
  log_len = 0;
  log_text[0] = 0;
}

const char *stub_log_text(void) { return log_text; }

int stub_log_count(int level) {
  int n = 0;
  const char *p = log_text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    if (level < 0 || atoi(p) == level)
      n++;
    if (nl == NULL)
      break;
    p = nl + 1;
  }
  return n;
}

void plugin_log(int level, const char *format, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, format);
  vsnprintf(msg, sizeof(msg), format, ap);
  va_end(ap);
  if (getenv("STUB_LOG_STDERR") != NULL)
    fprintf(stderr, "[%d] %s\n", level, msg);
  int n = snprintf(log_text + log_len, sizeof(log_text) - log_len, "%d %s\n",
                   level, msg);
  if (n > 0 && log_len + (size_t)n < sizeof(log_text))
    log_len += (size_t)n;
}

/* configfile.c (collectd 5.12) */

int cf_util_get_string(const oconfig_item_t *ci, char **ret_string) {
  if ((ci->values_num != 1) || (ci->values[0].type != OCONFIG_TYPE_STRING)) {
    ERROR("cf_util_get_string: The %s option requires "
          "exactly one string argument.",
          ci->key);
    return -1;
  }
  char *string = strdup(ci->values[0].value.string);
  if (string == NULL)
    return -1;
  free(*ret_string);
  *ret_string = string;
  return 0;
}

int cf_util_get_int(const oconfig_item_t *ci, int *ret_value) {
  if ((ci == NULL) || (ret_value == NULL))
    return EINVAL;
  if ((ci->values_num != 1) || (ci->values[0].type != OCONFIG_TYPE_NUMBER)) {
    ERROR("cf_util_get_int: The %s option requires "
          "exactly one numeric argument.",
          ci->key);
    return -1;
  }
  *ret_value = (int)ci->values[0].value.number;
  return 0;
}

int cf_util_get_double(const oconfig_item_t *ci, double *ret_value) {
  if ((ci == NULL) || (ret_value == NULL))
    return EINVAL;
  if ((ci->values_num != 1) || (ci->values[0].type != OCONFIG_TYPE_NUMBER)) {
    ERROR("cf_util_get_double: The %s option requires "
          "exactly one numeric argument.",
          ci->key);
    return -1;
  }
  *ret_value = ci->values[0].value.number;
  return 0;
}

int cf_util_get_boolean(const oconfig_item_t *ci, bool *ret_bool) {
  if ((ci == NULL) || (ret_bool == NULL))
    return EINVAL;
  if ((ci->values_num != 1) || ((ci->values[0].type != OCONFIG_TYPE_BOOLEAN) &&
                                (ci->values[0].type != OCONFIG_TYPE_STRING))) {
    ERROR("cf_util_get_boolean: The %s option requires "
          "exactly one boolean argument.",
          ci->key);
    return -1;
  }
  switch (ci->values[0].type) {
  case OCONFIG_TYPE_BOOLEAN:
    *ret_bool = ci->values[0].value.boolean ? 1 : 0;
    break;
  case OCONFIG_TYPE_STRING:
    WARNING("cf_util_get_boolean: Using string value `%s' for boolean option "
            "`%s' is deprecated and will be removed in future releases. "
            "Use unquoted true or false instead.",
            ci->values[0].value.string, ci->key);
    if (IS_TRUE(ci->values[0].value.string))
      *ret_bool = 1;
    else if (IS_FALSE(ci->values[0].value.string))
      *ret_bool = 0;
    else {
      ERROR("cf_util_get_boolean: Cannot parse string value `%s' of the `%s' "
            "option as a boolean value.",
            ci->values[0].value.string, ci->key);
      return -1;
    }
    break;
  }
  return 0;
}

/* service_name_to_port_number as in utils/common/common.c */
static int service_name_to_port(const char *service_name) {
  struct addrinfo *ai_list;
  if (service_name == NULL)
    return -1;
  struct addrinfo ai_hints = {.ai_family = AF_UNSPEC};
  int status = getaddrinfo(NULL, service_name, &ai_hints, &ai_list);
  if (status != 0) {
    ERROR("service_name_to_port_number: getaddrinfo failed: %s",
          gai_strerror(status));
    return -1;
  }
  int service_number = -1;
  for (struct addrinfo *ai = ai_list; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET)
      service_number =
          (int)ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port);
    else if (ai->ai_family == AF_INET6)
      service_number =
          (int)ntohs(((struct sockaddr_in6 *)ai->ai_addr)->sin6_port);
    if ((service_number > 0) && (service_number <= 65535))
      break;
  }
  freeaddrinfo(ai_list);
  if ((service_number > 0) && (service_number <= 65535))
    return service_number;
  return -1;
}

int cf_util_get_port_number(const oconfig_item_t *ci) {
  if ((ci->values_num != 1) || ((ci->values[0].type != OCONFIG_TYPE_STRING) &&
                                (ci->values[0].type != OCONFIG_TYPE_NUMBER))) {
    ERROR("cf_util_get_port_number: The \"%s\" option requires "
          "exactly one string argument.",
          ci->key);
    return -1;
  }
  if (ci->values[0].type == OCONFIG_TYPE_STRING)
    return service_name_to_port(ci->values[0].value.string);
  int tmp = (int)(ci->values[0].value.number + 0.5);
  if ((tmp < 1) || (tmp > 65535)) {
    ERROR("cf_util_get_port_number: The \"%s\" option requires "
          "a service name or a port number. The number "
          "you specified, %i, is not in the valid "
          "range of 1-65535.",
          ci->key, tmp);
    return -1;
  }
  return tmp;
}

/* common.c */

char *sstrncpy(char *dest, const char *src, size_t n) {
  strncpy(dest, src, n);
  dest[n - 1] = '\0';
  return dest;
}

/* meta_data.c: string entries only, which is all the glue adds. */

struct meta_data_s {
  char text[512];
  size_t len;
};

meta_data_t *meta_data_create(void) { return calloc(1, sizeof(meta_data_t)); }

void meta_data_destroy(meta_data_t *md) { free(md); }

int meta_data_add_string(meta_data_t *md, const char *key, const char *value) {
  if (md == NULL || key == NULL || value == NULL)
    return -EINVAL;
  int n = snprintf(md->text + md->len, sizeof(md->text) - md->len, "%s=%s;",
                   key, value);
  if (n < 0 || md->len + (size_t)n >= sizeof(md->text))
    return -ENOMEM;
  md->len += (size_t)n;
  return 0;
}

/* plugin.c */

#define STUB_VALUES_MAX 4096
static stub_vl_t values[STUB_VALUES_MAX];
static size_t values_num;
static int dispatch_fail;

void stub_values_reset(void) {
  values_num = 0;
  dispatch_fail = 0;
}
size_t stub_values_num(void) { return values_num; }
const stub_vl_t *stub_value(size_t i) {
  return i < values_num ? &values[i] : NULL;
}
void stub_dispatch_fail(int fail) { dispatch_fail = fail; }

int plugin_dispatch_values(value_list_t const *vl) {
  if (dispatch_fail)
    return -1;
  if (values_num >= STUB_VALUES_MAX)
    return ENOMEM;
  stub_vl_t *v = &values[values_num++];
  memset(v, 0, sizeof(*v));
  /* collectd fills an empty host with hostname_g */
  snprintf(v->host, sizeof(v->host), "%s", vl->host[0] ? vl->host : hostname_g);
  snprintf(v->plugin, sizeof(v->plugin), "%s", vl->plugin);
  snprintf(v->plugin_instance, sizeof(v->plugin_instance), "%s",
           vl->plugin_instance);
  snprintf(v->type, sizeof(v->type), "%s", vl->type);
  snprintf(v->type_instance, sizeof(v->type_instance), "%s", vl->type_instance);
  v->values_len = vl->values_len;
  v->interval = CDTIME_T_TO_DOUBLE(vl->interval);
  if (vl->values_len > 0) {
    v->gauge = vl->values[0].gauge;
    v->derive = (long long)vl->values[0].derive;
  }
  v->has_meta = vl->meta != NULL;
  if (vl->meta != NULL)
    snprintf(v->meta, sizeof(v->meta), "%s", vl->meta->text);
  return 0;
}

/* oconfig builders */

oconfig_item_t *oc_item(const char *key, const char *types, ...) {
  oconfig_item_t *ci = calloc(1, sizeof(*ci));
  ci->key = strdup(key);
  size_t n = strlen(types);
  ci->values = calloc(n + 1, sizeof(*ci->values));
  ci->values_num = (int)n;
  va_list ap;
  va_start(ap, types);
  for (size_t i = 0; i < n; i++) {
    switch (types[i]) {
    case 's':
      ci->values[i].type = OCONFIG_TYPE_STRING;
      ci->values[i].value.string = strdup(va_arg(ap, const char *));
      break;
    case 'n':
      ci->values[i].type = OCONFIG_TYPE_NUMBER;
      ci->values[i].value.number = va_arg(ap, double);
      break;
    case 'b':
      ci->values[i].type = OCONFIG_TYPE_BOOLEAN;
      ci->values[i].value.boolean = va_arg(ap, int);
      break;
    default:
      abort();
    }
  }
  va_end(ap);
  return ci;
}

oconfig_item_t *oc_add(oconfig_item_t *parent, oconfig_item_t *child) {
  parent->children =
      realloc(parent->children,
              (size_t)(parent->children_num + 1) * sizeof(*parent->children));
  child->parent = parent;
  parent->children[parent->children_num++] = *child;
  free(child);
  return parent;
}

static void oc_free_inner(oconfig_item_t *ci) {
  free(ci->key);
  for (int i = 0; i < ci->values_num; i++)
    if (ci->values[i].type == OCONFIG_TYPE_STRING)
      free(ci->values[i].value.string);
  free(ci->values);
  for (int i = 0; i < ci->children_num; i++)
    oc_free_inner(&ci->children[i]);
  free(ci->children);
}

void oc_free(oconfig_item_t *ci) {
  if (ci == NULL)
    return;
  oc_free_inner(ci);
  free(ci);
}

/* oc_parse: a small reader of collectd.conf syntax for test tables. */

static const char *oc_skip(const char *p) {
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* oc_values reads the values of one line up to '\n' or '>' into ci. */
static const char *oc_values(const char *p, oconfig_item_t *ci, char end) {
  for (;;) {
    p = oc_skip(p);
    if (*p == 0 || *p == '\n' || *p == end || *p == '#')
      break;
    ci->values =
        realloc(ci->values, (size_t)(ci->values_num + 1) * sizeof(*ci->values));
    oconfig_value_t *v = &ci->values[ci->values_num++];
    memset(v, 0, sizeof(*v));
    if (*p == '"') {
      char buf[4096];
      size_t n = 0;
      for (p++; *p && *p != '"' && n + 1 < sizeof(buf); p++) {
        if (*p == '\\' && p[1] != 0)
          p++;
        buf[n++] = *p;
      }
      if (*p != '"')
        return NULL;
      p++;
      buf[n] = 0;
      v->type = OCONFIG_TYPE_STRING;
      v->value.string = strdup(buf);
      continue;
    }
    const char *start = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != end)
      p++;
    char word[256];
    snprintf(word, sizeof(word), "%.*s", (int)(p - start), start);
    char *e;
    double d = strtod(word, &e);
    if (*e == 0 && e != word) {
      v->type = OCONFIG_TYPE_NUMBER;
      v->value.number = d;
    } else if (strcasecmp(word, "true") == 0 ||
               strcasecmp(word, "false") == 0) {
      v->type = OCONFIG_TYPE_BOOLEAN;
      v->value.boolean = strcasecmp(word, "true") == 0;
    } else {
      v->type = OCONFIG_TYPE_STRING;
      v->value.string = strdup(word);
    }
  }
  return p;
}

/* oc_block reads children into parent until </...> or the end. */
static const char *oc_block(const char *p, oconfig_item_t *parent, int nested) {
  while (p != NULL && *p) {
    p = oc_skip(p);
    if (*p == '\n') {
      p++;
      continue;
    }
    if (*p == '#') {
      while (*p && *p != '\n')
        p++;
      continue;
    }
    if (p[0] == '<' && p[1] == '/') {
      if (!nested)
        return NULL;
      p = strchr(p, '>');
      return p ? p + 1 : NULL;
    }
    int block = *p == '<';
    if (block)
      p++;
    const char *start = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '>')
      p++;
    char key[128];
    snprintf(key, sizeof(key), "%.*s", (int)(p - start), start);
    oconfig_item_t *ci = calloc(1, sizeof(*ci));
    ci->key = strdup(key);
    p = oc_values(p, ci, block ? '>' : 0);
    if (p != NULL && block) {
      if (*p != '>') {
        p = NULL;
      } else {
        p = oc_block(p + 1, ci, 1);
      }
    }
    if (p == NULL) {
      oc_free(ci);
      return NULL;
    }
    oc_add(parent, ci);
  }
  return nested ? NULL : p;
}

oconfig_item_t *oc_parse(const char *text) {
  oconfig_item_t *root = oc_item("Plugin", "s", "usage");
  if (oc_block(text, root, 0) == NULL) {
    oc_free(root);
    return NULL;
  }
  return root;
}
