/* SPDX-License-Identifier: MIT */
/* config: strict parsing of <Plugin usage> (see usage_conf.h). Unknown options
 * fail the block; required options are checked after the loop; secret
 * files are read once here so a typo is found at start-up. */
#include "collectd.h"
#include "configfile.h"
#include "plugin.h"

#include "conf_get.h"
#include "shard.h"
#include "usage_conf.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void usage_conf_err(const usage_source_conf_t *src, const char *option,
                    const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (option != NULL)
    ERROR("usage plugin: %s \"%s\": option \"%s\": %s",
          usage_kind_block(src->kind), src->name, option, msg);
  else
    ERROR("usage plugin: %s \"%s\": %s", usage_kind_block(src->kind), src->name,
          msg);
}

int usage_get_string(const usage_source_conf_t *src, const oconfig_item_t *ci,
                     char **out) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    usage_conf_err(src, ci->key, "expected one string argument");
    return EINVAL;
  }
  char *s = NULL;
  if (cf_util_get_string(ci, &s) != 0)
    return ENOMEM;
  free(*out);
  *out = s;
  return 0;
}

int usage_get_bool(const usage_source_conf_t *src, const oconfig_item_t *ci,
                   int *out) {
  bool b;
  /* A string cf_util_get_boolean cannot read would make it log an ERROR
   * line of its own: refuse it here, so the problem is one line. */
  const char *str =
      ci->values_num == 1 && ci->values[0].type == OCONFIG_TYPE_STRING
          ? ci->values[0].value.string
          : NULL;
  static const char *const words[] = {"true",  "yes", "on",
                                      "false", "no",  "off"};
  int word = 0;
  for (size_t i = 0; str != NULL && i < sizeof(words) / sizeof(*words); i++)
    word |= strcasecmp(str, words[i]) == 0;
  if (ci->values_num != 1 ||
      (ci->values[0].type != OCONFIG_TYPE_BOOLEAN &&
       ci->values[0].type != OCONFIG_TYPE_STRING) ||
      (str != NULL && !word) || cf_util_get_boolean(ci, &b) != 0) {
    usage_conf_err(src, ci->key, "expected true or false");
    return EINVAL;
  }
  *out = b;
  return 0;
}

/* get_number reads one number in [min, max]. */
int usage_get_number(const usage_source_conf_t *src, const oconfig_item_t *ci,
                     double min, double max, const char *what, double *out) {
  double d;
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_NUMBER ||
      cf_util_get_double(ci, &d) != 0 || !(d >= min && d <= max)) {
    usage_conf_err(src, ci->key, "expected %s", what);
    return EINVAL;
  }
  *out = d;
  return 0;
}

int usage_get_whole(const usage_source_conf_t *src, const oconfig_item_t *ci,
                    double min, double max, const char *what, double *out) {
  int status = usage_get_number(src, ci, min, max, what, out);
  if (status == 0 && *out != (double)(long long)*out) {
    usage_conf_err(src, ci->key, "expected %s", what);
    return EINVAL;
  }
  return status;
}

static int check_secret_file(const usage_source_conf_t *src, const char *option,
                             usage_secret_t *secret) {
  const char *value;
  char err[256];
  if (usage_secret_get(secret, &value, err, sizeof(err)) != 0) {
    usage_conf_err(src, option, "%s", err);
    return EINVAL;
  }
  return 0;
}

/* conf_secret sets an inline secret or a secret file. */
static int conf_secret(usage_source_conf_t *src, const oconfig_item_t *ci,
                       usage_secret_t *secret, int is_file) {
  if (secret->value != NULL || secret->file != NULL) {
    usage_conf_err(src, ci->key,
                   "given twice (inline and as a file, or repeated)");
    return EINVAL;
  }
  char *s = NULL;
  int status = usage_get_string(src, ci, &s);
  if (status != 0)
    return status;
  if (is_file) {
    secret->file = s;
    return check_secret_file(src, ci->key, secret);
  }
  if (*s == 0) {
    free(s);
    usage_conf_err(src, ci->key, "must not be empty");
    return EINVAL;
  }
  secret->value = s;
  return 0;
}

static int conf_url(usage_source_conf_t *src, const oconfig_item_t *ci) {
  int status = usage_get_string(src, ci, &src->http.url);
  if (status != 0)
    return status;
  char *url = src->http.url;
  const char *rest = NULL;
  if (strncasecmp(url, "http://", 7) == 0)
    rest = url + 7;
  else if (strncasecmp(url, "https://", 8) == 0)
    rest = url + 8;
  if (rest == NULL || *rest == 0 || *rest == '/') {
    usage_conf_err(src, "URL", "expected an http:// or https:// URL");
    return EINVAL;
  }
  const char *slash = strchr(rest, '/');
  const char *at = strchr(rest, '@');
  if (at != NULL && (slash == NULL || at < slash)) {
    /* Never echo the URL: it holds a password. */
    usage_conf_err(src, "URL",
                   "credentials in the URL are not accepted; use User and "
                   "PasswordFile");
    return EINVAL;
  }
  if (strpbrk(url, "?# \t\r\n") != NULL) {
    usage_conf_err(src, "URL", "expected a base URL without query or fragment");
    return EINVAL;
  }
  size_t len = strlen(url);
  while (len > 0 && url[len - 1] == '/')
    url[--len] = 0;
  return 0;
}

static int conf_header(usage_source_conf_t *src, const oconfig_item_t *ci) {
  char *h = NULL;
  int status = usage_get_string(src, ci, &h);
  if (status != 0)
    return status;
  const char *colon = strchr(h, ':');
  if (colon == NULL || colon == h || strpbrk(h, "\r\n") != NULL) {
    free(h);
    usage_conf_err(src, "Header", "expected \"Name: value\"");
    return EINVAL;
  }
  char **p =
      realloc(src->http.headers, (src->http.headers_num + 1) * sizeof(*p));
  if (p == NULL) {
    free(h);
    return ENOMEM;
  }
  src->http.headers = p;
  p[src->http.headers_num++] = h;
  return 0;
}

/* conf_header_file: HeaderFile "Name" "/path/file" (repeatable); the file
 * is read here once so that a bad path fails at start-up. */
static int conf_header_file(usage_source_conf_t *src,
                            const oconfig_item_t *ci) {
  if (ci->values_num != 2 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[1].type != OCONFIG_TYPE_STRING ||
      ci->values[0].value.string[0] == 0 ||
      ci->values[1].value.string[0] == 0) {
    usage_conf_err(src, ci->key,
                   "expected two strings: a header name and a file");
    return EINVAL;
  }
  const char *name = ci->values[0].value.string;
  if (strpbrk(name, ": \t\r\n") != NULL) {
    usage_conf_err(src, ci->key, "expected a header name without \":\"");
    return EINVAL;
  }
  usage_http_conf_t *h = &src->http;
  struct usage_header_file_s *p =
      realloc(h->header_files, (h->header_files_num + 1) * sizeof(*p));
  if (p == NULL)
    return ENOMEM;
  h->header_files = p;
  struct usage_header_file_s *hf = &p[h->header_files_num];
  memset(hf, 0, sizeof(*hf));
  hf->name = strdup(name);
  hf->value.file = strdup(ci->values[1].value.string);
  if (hf->name == NULL || hf->value.file == NULL) {
    free(hf->name);
    free(hf->value.file);
    return ENOMEM;
  }
  h->header_files_num++;
  return check_secret_file(src, ci->key, &hf->value);
}

/* conf_common handles the options every source block takes. ENOENT when
 * the option is not one of them. */
static int conf_common(usage_source_conf_t *src, const oconfig_item_t *ci) {
  const char *k = ci->key;
  double d;
  int status;
  if (strcasecmp(k, "URL") == 0)
    return conf_url(src, ci);
  if (strcasecmp(k, "User") == 0)
    return usage_get_string(src, ci, &src->http.user);
  if (strcasecmp(k, "Password") == 0)
    return conf_secret(src, ci, &src->http.password, 0);
  if (strcasecmp(k, "PasswordFile") == 0)
    return conf_secret(src, ci, &src->http.password, 1);
  if (strcasecmp(k, "BearerToken") == 0)
    return conf_secret(src, ci, &src->http.bearer, 0);
  if (strcasecmp(k, "BearerTokenFile") == 0)
    return conf_secret(src, ci, &src->http.bearer, 1);
  if (strcasecmp(k, "Header") == 0)
    return conf_header(src, ci);
  if (strcasecmp(k, "HeaderFile") == 0)
    return conf_header_file(src, ci);
  if (strcasecmp(k, "Login") == 0)
    return usage_conf_login(src, ci);
  if (strcasecmp(k, "VerifyPeer") == 0)
    return usage_get_bool(src, ci, &src->http.verify_peer);
  if (strcasecmp(k, "VerifyHost") == 0)
    return usage_get_bool(src, ci, &src->http.verify_host);
  if (strcasecmp(k, "CACert") == 0)
    return usage_get_string(src, ci, &src->http.cacert);
  if (strcasecmp(k, "ClientCert") == 0)
    return usage_get_string(src, ci, &src->http.client_cert);
  if (strcasecmp(k, "ClientKey") == 0)
    return usage_get_string(src, ci, &src->http.client_key);
  if (strcasecmp(k, "Timeout") == 0) {
    status = usage_get_number(src, ci, 1, 86400000,
                              "a timeout in milliseconds (1 to 86400000)", &d);
    if (status == 0)
      src->http.timeout_ms = (long)d;
    return status;
  }
  if (strcasecmp(k, "Interval") == 0) {
    status = usage_get_number(src, ci, 0.001, 86400 * 31.0,
                              "an interval in seconds greater than 0", &d);
    if (status == 0)
      src->interval = d;
    return status;
  }
  if (strcasecmp(k, "DispatchMetaData") == 0)
    return usage_get_bool(src, ci, &src->meta_data);
  if (strcasecmp(k, "ScrapeTimeout") == 0)
    return usage_get_number(src, ci, 0.001, 86400 * 31.0,
                            "a deadline in seconds greater than 0",
                            &src->scrape_timeout);
  if (strcasecmp(k, "MaxRequestsPerSecond") == 0)
    return usage_get_number(src, ci, 0, 1e6,
                            "a number of requests per second (0 = no limit)",
                            &src->max_rps);
  if (strcasecmp(k, "Shard") == 0) {
    status = usage_get_whole(src, ci, 1, USAGE_SHARD_MAX,
                             "a shard number from 1 to 1000", &d);
    if (status == 0)
      src->shard = (unsigned)d;
    return status;
  }
  if (strcasecmp(k, "Account") == 0)
    return usage_get_string(src, ci, &src->account);
  if (strcasecmp(k, "MaxConcurrentRequests") == 0) {
    status = usage_get_whole(src, ci, 1, 64, "a whole number from 1 to 64", &d);
    if (status == 0)
      src->max_concurrent = (int)d;
    return status;
  }
  if (strcasecmp(k, "MaxResponseSize") == 0) {
    status = usage_get_number(src, ci, 1024, 1024.0 * 1024 * 1024,
                              "a size in bytes from 1024 to 1073741824", &d);
    if (status == 0)
      src->http.max_body = (size_t)d;
    return status;
  }
  return ENOENT;
}

static const struct {
  int (*option)(usage_source_conf_t *src, const oconfig_item_t *ci);
  int (*check)(usage_source_conf_t *src);
} kinds[USAGE_KIND_COUNT] = {
    [USAGE_KIND_CCC] = {usage_conf_ccc_option, usage_conf_ccc_check},
    [USAGE_KIND_BILLING] = {usage_conf_billing_option,
                            usage_conf_billing_check},
    [USAGE_KIND_JASPER] = {usage_conf_jasper_option, usage_conf_jasper_check},
};

static int conf_source(usage_kind_t kind, const oconfig_item_t *ci,
                       usage_conf_t *conf) {
  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      ci->values[0].value.string[0] == 0) {
    ERROR("usage plugin: <%s> needs a name, e.g. <%s \"main\">",
          usage_kind_block(kind), usage_kind_block(kind));
    return EINVAL;
  }
  const char *name = ci->values[0].value.string;
  for (size_t i = 0; i < conf->sources_num; i++)
    if (strcmp(conf->sources[i]->name, name) == 0) {
      ERROR("usage plugin: %s \"%s\": a source of that name is configured "
            "twice (names must be unique: they are the `source` label)",
            usage_kind_block(kind), name);
      return EINVAL;
    }
  const usage_vendor_t *vendor = usage_vendor(kind);
  if (vendor == NULL || kinds[kind].option == NULL) {
    ERROR("usage plugin: %s \"%s\": this build does not support <%s> blocks",
          usage_kind_block(kind), name, usage_kind_block(kind));
    return EINVAL;
  }

  usage_source_conf_t *src = calloc(1, sizeof(*src));
  if (src == NULL)
    return ENOMEM;
  src->kind = kind;
  src->name = strdup(name);
  src->kind_conf = vendor->conf_create();
  src->http.verify_peer = src->http.verify_host = 1;
  src->http.timeout_ms = USAGE_DEFAULT_TIMEOUT_MS;
  src->http.max_body = USAGE_DEFAULT_MAX_RESPONSE;
  src->max_concurrent = 1;
  src->max_rps = -1; /* not set: the kind's default */
  src->meta_data = 0;
  if (src->name == NULL || src->kind_conf == NULL) {
    usage_source_conf_free(src);
    return ENOMEM;
  }

  int errors = 0;
  for (int i = 0; i < ci->children_num; i++) {
    const oconfig_item_t *child = &ci->children[i];
    int status = conf_common(src, child);
    if (status == ENOENT)
      status = kinds[kind].option(src, child);
    if (status == ENOENT) {
      usage_conf_err(src, child->key, "unknown option");
      status = EINVAL;
    }
    if (status != 0)
      errors++;
  }
  if (errors == 0) {
    if (src->http.url == NULL) {
      usage_conf_err(src, "URL", "missing (required)");
      errors++;
    }
    if (src->http.user != NULL && src->http.password.value == NULL &&
        src->http.password.file == NULL) {
      usage_conf_err(src, "User", "needs Password or PasswordFile");
      errors++;
    }
    if (src->http.user == NULL &&
        (src->http.password.value != NULL || src->http.password.file != NULL)) {
      usage_conf_err(src, "Password", "needs User");
      errors++;
    }
    if (src->http.user != NULL &&
        (src->http.bearer.value != NULL || src->http.bearer.file != NULL)) {
      usage_conf_err(src, "BearerToken",
                     "cannot be combined with User (HTTP Basic)");
      errors++;
    }
    if ((src->http.client_cert == NULL) != (src->http.client_key == NULL)) {
      usage_conf_err(src, src->http.client_cert ? "ClientKey" : "ClientCert",
                     "ClientCert and ClientKey go together");
      errors++;
    }
  }
  if (errors == 0 && usage_conf_login_check(src) != 0)
    errors++;
  if (errors == 0 && kinds[kind].check != NULL && kinds[kind].check(src) != 0)
    errors++;
  if (errors != 0) {
    usage_source_conf_free(src);
    return EINVAL;
  }
  usage_source_conf_t **p =
      realloc(conf->sources, (conf->sources_num + 1) * sizeof(*p));
  if (p == NULL) {
    usage_source_conf_free(src);
    return ENOMEM;
  }
  conf->sources = p;
  p[conf->sources_num++] = src;
  return 0;
}

/* conf_shard reads "Shard M N" (this instance is shard M of N) or, with
 * replica, "Replica M N" (replica M of an HA set of N). */
static int conf_shard(const oconfig_item_t *ci, usage_conf_t *conf,
                      int replica) {
  const char *what = replica ? "Replica" : "Shard";
  if (ci->values_num != 2 || ci->values[0].type != OCONFIG_TYPE_NUMBER ||
      ci->values[1].type != OCONFIG_TYPE_NUMBER) {
    ERROR("usage plugin: option \"%s\": expected two numbers, this "
          "instance's number and how many there are (e.g. %s 2 3)",
          what, what);
    return EINVAL;
  }
  double m = ci->values[0].value.number, n = ci->values[1].value.number;
  /* range first: a cast of a huge or NaN value is undefined */
  if (!(m >= 1 && n >= 1 && m <= n && n <= USAGE_SHARD_MAX) || m != floor(m) ||
      n != floor(n)) {
    ERROR("usage plugin: option \"%s\": expected 1 <= M <= N <= %d, not "
          "%g %g",
          what, USAGE_SHARD_MAX, m, n);
    return EINVAL;
  }
  *(replica ? &conf->replica : &conf->shard) = (unsigned)m;
  *(replica ? &conf->replicas : &conf->shards) = (unsigned)n;
  return 0;
}

void usage_conf_clear(usage_conf_t *conf) {
  for (size_t i = 0; i < conf->sources_num; i++)
    usage_source_conf_free(conf->sources[i]);
  free(conf->sources);
  if (conf->exporter != NULL) {
    usage_exporter_conf_t *e = conf->exporter;
    free(e->address);
    free(e->port);
    free(e->tls_cert_file);
    free(e->tls_key_file);
    free(e->tls_client_ca_file);
    for (size_t i = 0; i < e->users_num; i++) {
      free(e->users[i].user);
      if (e->users[i].hash != NULL)
        explicit_bzero(e->users[i].hash, strlen(e->users[i].hash));
      free(e->users[i].hash);
    }
    free(e->users);
    free(e);
  }
  memset(conf, 0, sizeof(*conf));
}

int usage_config_parse(const oconfig_item_t *ci, usage_conf_t *conf) {
  int errors = 0;
  for (int i = 0; i < ci->children_num; i++) {
    const oconfig_item_t *child = &ci->children[i];
    int status;
    if (strcasecmp(child->key, "Exporter") == 0)
      status = usage_conf_exporter(child, conf);
    else if (strcasecmp(child->key, "CCC") == 0)
      status = conf_source(USAGE_KIND_CCC, child, conf);
    else if (strcasecmp(child->key, "Billing") == 0)
      status = conf_source(USAGE_KIND_BILLING, child, conf);
    else if (strcasecmp(child->key, "Jasper") == 0)
      status = conf_source(USAGE_KIND_JASPER, child, conf);
    else if (strcasecmp(child->key, "Shard") == 0)
      status = conf_shard(child, conf, 0);
    else if (strcasecmp(child->key, "Replica") == 0)
      status = conf_shard(child, conf, 1);
    else {
      ERROR("usage plugin: unknown block or option \"%s\" (expected "
            "<Exporter>, <CCC>, <Billing>, <Jasper>, Shard or Replica)",
            child->key);
      status = EINVAL;
    }
    if (status != 0)
      errors++;
  }
  if (errors != 0) {
    usage_conf_clear(conf);
    return EINVAL;
  }
  return 0;
}
