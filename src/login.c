/* SPDX-License-Identifier: MIT */
/* login: the <Login> configuration, its presets, the sign-in body, the
 * token and its lifetime from the answer, the token's state (see login.h). */
#include "login.h"
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void wipe_free(char *p) {
  if (p == NULL)
    return;
  explicit_bzero(p, strlen(p));
  free(p);
}

usage_login_conf_t *usage_login_conf_create(void) {
  return calloc(1, sizeof(usage_login_conf_t));
}

void usage_login_conf_free(usage_login_conf_t *c) {
  if (c == NULL)
    return;
  free(c->url);
  free(c->method);
  for (size_t i = 0; i < c->fields_num; i++) {
    free(c->fields[i].name);
    wipe_free(c->fields[i].value);
    usage_secret_clear(&c->fields[i].secret);
  }
  free(c->fields);
  free(c->token_field);
  free(c->token_header);
  free(c->expires_field);
  free(c->send_header);
  free(c->send_prefix);
  free(c->user);
  usage_secret_clear(&c->password);
  free(c->client_id);
  usage_secret_clear(&c->client_secret);
  free(c->scope);
  free(c);
}

int usage_login_conf_add_field(usage_login_conf_t *c, const char *name,
                               const char *value, const char *file) {
  usage_login_field_t *p = realloc(c->fields, (c->fields_num + 1) * sizeof(*p));
  if (p == NULL)
    return ENOMEM;
  c->fields = p;
  p = &c->fields[c->fields_num];
  memset(p, 0, sizeof(*p));
  p->name = strdup(name);
  if (value != NULL)
    p->value = strdup(value);
  if (file != NULL)
    p->secret.file = strdup(file);
  if (p->name == NULL || (value != NULL && p->value == NULL) ||
      (file != NULL && p->secret.file == NULL)) {
    free(p->name);
    free(p->value);
    free(p->secret.file);
    return ENOMEM;
  }
  c->fields_num++;
  return 0;
}

int usage_login_preset_parse(const char *name) {
  if (strcasecmp(name, "ccc") == 0)
    return USAGE_LOGIN_PRESET_CCC;
  if (strcasecmp(name, "oauth2") == 0)
    return USAGE_LOGIN_PRESET_OAUTH2;
  return -1;
}

static int set_default(char **field, const char *value) {
  if (*field != NULL)
    return 0;
  *field = strdup(value);
  return *field == NULL ? ENOMEM : 0;
}

static int is_absolute(const char *url) {
  return strncasecmp(url, "http://", 7) == 0 ||
         strncasecmp(url, "https://", 8) == 0;
}

/* resolve_url makes c->url absolute: "/path" and "path" are appended to the
 * block's base URL. */
static int resolve_url(usage_login_conf_t *c, const char *base_url,
                       const char **option, char *err, size_t errlen) {
  *option = "URL";
  if (strpbrk(c->url, " \t\r\n") != NULL || strchr(c->url, '@') != NULL) {
    snprintf(err, errlen,
             "expected an http(s) URL or a path, without spaces or "
             "credentials");
    return EINVAL;
  }
  if (is_absolute(c->url))
    return 0;
  if (strstr(c->url, "://") != NULL) {
    snprintf(err, errlen, "expected an http:// or https:// URL or a path");
    return EINVAL;
  }
  if (base_url == NULL || !is_absolute(base_url)) {
    snprintf(err, errlen,
             "a relative URL needs the block's URL (http:// or https://)");
    return EINVAL;
  }
  usage_buf_t b;
  usage_buf_init(&b, 0);
  usage_buf_puts(&b, base_url);
  if (c->url[0] != '/')
    usage_buf_putc(&b, '/');
  usage_buf_puts(&b, c->url);
  if (usage_buf_failed(&b)) {
    usage_buf_free(&b);
    return ENOMEM;
  }
  free(c->url);
  c->url = usage_buf_steal(&b, NULL);
  return c->url == NULL ? ENOMEM : 0;
}

int usage_login_conf_finish(usage_login_conf_t *c, const char *base_url,
                            const char **option, char *err, size_t errlen) {
  int status = 0;
  *option = NULL;
  err[0] = 0;
  switch (c->preset) {
  case USAGE_LOGIN_PRESET_CCC:
    if (c->user == NULL ||
        (c->password.file == NULL && c->password.value == NULL)) {
      *option = c->user == NULL ? "User" : "PasswordFile";
      snprintf(err, errlen, "Preset \"ccc\" needs User and PasswordFile");
      return EINVAL;
    }
    status |= set_default(&c->url, "/api/login");
    if (c->format == USAGE_LOGIN_FORMAT_UNSET)
      c->format = USAGE_LOGIN_FORMAT_JSON;
    status |= set_default(&c->token_field, "SessionToken");
    if (c->send_header == NULL) {
      status |= set_default(&c->send_header, "x-sm-session-token");
      status |= set_default(&c->send_prefix, "");
    }
    break;
  case USAGE_LOGIN_PRESET_OAUTH2:
    if (c->client_id == NULL ||
        (c->client_secret.file == NULL && c->client_secret.value == NULL)) {
      *option = c->client_id == NULL ? "ClientID" : "ClientSecretFile";
      snprintf(err, errlen,
               "Preset \"oauth2\" needs ClientID and ClientSecretFile");
      return EINVAL;
    }
    if (c->format == USAGE_LOGIN_FORMAT_UNSET)
      c->format = USAGE_LOGIN_FORMAT_FORM;
    if (c->client_auth == USAGE_LOGIN_AUTH_UNSET)
      c->client_auth = USAGE_LOGIN_AUTH_BASIC;
    status |= set_default(&c->token_field, "access_token");
    status |= set_default(&c->expires_field, "expires_in");
    break;
  case USAGE_LOGIN_PRESET_NONE:
    if (c->user != NULL || c->client_id != NULL || c->scope != NULL ||
        c->client_auth != USAGE_LOGIN_AUTH_UNSET || c->password.file != NULL ||
        c->client_secret.file != NULL) {
      *option = c->user            ? "User"
                : c->client_id     ? "ClientID"
                : c->scope         ? "Scope"
                : c->client_auth   ? "ClientAuth"
                : c->password.file ? "PasswordFile"
                                   : "ClientSecretFile";
      snprintf(err, errlen, "belongs to a Preset (\"ccc\" or \"oauth2\")");
      return EINVAL;
    }
    break;
  }
  if (c->preset != USAGE_LOGIN_PRESET_CCC &&
      (c->user != NULL || c->password.file != NULL)) {
    *option = c->user ? "User" : "PasswordFile";
    snprintf(err, errlen, "belongs to Preset \"ccc\"");
    return EINVAL;
  }
  if (c->preset != USAGE_LOGIN_PRESET_OAUTH2 &&
      (c->client_id != NULL || c->client_secret.file != NULL ||
       c->scope != NULL || c->client_auth != USAGE_LOGIN_AUTH_UNSET)) {
    *option = c->client_id     ? "ClientID"
              : c->scope       ? "Scope"
              : c->client_auth ? "ClientAuth"
                               : "ClientSecretFile";
    snprintf(err, errlen, "belongs to Preset \"oauth2\"");
    return EINVAL;
  }
  status |= set_default(&c->method, "POST");
  if (c->format == USAGE_LOGIN_FORMAT_UNSET)
    c->format = USAGE_LOGIN_FORMAT_JSON;
  if (c->send_header == NULL) {
    status |= set_default(&c->send_header, "Authorization");
    status |= set_default(&c->send_prefix, "Bearer ");
  }
  status |= set_default(&c->send_prefix, "");
  if (status != 0)
    return ENOMEM;
  if (c->url == NULL) {
    *option = "URL";
    snprintf(err, errlen, "missing (required without a Preset)");
    return EINVAL;
  }
  if (c->token_field == NULL && c->token_header == NULL) {
    *option = "TokenField";
    snprintf(err, errlen, "missing: TokenField or TokenHeader is required");
    return EINVAL;
  }
  if (c->token_field != NULL && c->token_header != NULL &&
      c->preset == USAGE_LOGIN_PRESET_NONE) {
    *option = "TokenHeader";
    snprintf(err, errlen, "TokenField and TokenHeader exclude each other");
    return EINVAL;
  }
  if (strpbrk(c->send_header, ": \t\r\n") != NULL || c->send_header[0] == 0 ||
      strpbrk(c->send_prefix, "\r\n") != NULL) {
    *option = "SendHeader";
    snprintf(err, errlen, "expected a header name and a value prefix");
    return EINVAL;
  }
  if (strcasecmp(c->method, "POST") != 0 && strcasecmp(c->method, "PUT") != 0 &&
      strcasecmp(c->method, "GET") != 0) {
    *option = "Method";
    snprintf(err, errlen, "expected POST, PUT or GET");
    return EINVAL;
  }
  for (char *p = c->method; *p; p++)
    if (*p >= 'a' && *p <= 'z')
      *p = (char)(*p - 'a' + 'A');
  status = resolve_url(c, base_url, option, err, errlen);
  if (status != 0)
    return status;
  *option = NULL;
  return 0;
}

static void json_string(usage_buf_t *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  usage_buf_putc(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"':
      usage_buf_puts(b, "\\\"");
      break;
    case '\\':
      usage_buf_puts(b, "\\\\");
      break;
    case '\n':
      usage_buf_puts(b, "\\n");
      break;
    case '\r':
      usage_buf_puts(b, "\\r");
      break;
    case '\t':
      usage_buf_puts(b, "\\t");
      break;
    default:
      if (*p < 0x20) {
        char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
        usage_buf_append(b, esc, 6);
      } else
        usage_buf_putc(b, (char)*p);
    }
  }
  usage_buf_putc(b, '"');
}

/* add_field appends one name/value pair in the request's format. */
static void add_field(usage_login_req_t *req, usage_login_format_t format,
                      const char *name, const char *value) {
  usage_buf_t *b = &req->body;
  if (format == USAGE_LOGIN_FORMAT_FORM) {
    if (usage_buf_len(b) > 0)
      usage_buf_putc(b, '&');
    usage_http_escape(b, name);
    usage_buf_putc(b, '=');
    usage_http_escape(b, value);
    return;
  }
  usage_buf_putc(b, usage_buf_len(b) > 0 ? ',' : '{');
  json_string(b, name);
  usage_buf_putc(b, ':');
  json_string(b, value);
}

static int get_secret(usage_secret_t *s, const char **out, char *err,
                      size_t errlen) {
  int status = usage_secret_get(s, out, err, errlen);
  if (status == 0 && *out == NULL) {
    snprintf(err, errlen, "no secret configured");
    return EINVAL;
  }
  return status;
}

int usage_login_build(usage_login_conf_t *c, usage_login_req_t *req, char *err,
                      size_t errlen) {
  const char *secret = NULL;
  int status = 0;
  usage_buf_init(&req->body, 1024 * 1024);
  req->content_type = c->format == USAGE_LOGIN_FORMAT_FORM
                          ? "application/x-www-form-urlencoded"
                          : "application/json";
  req->auth_header = NULL;
  if (c->preset == USAGE_LOGIN_PRESET_CCC) {
    status = get_secret(&c->password, &secret, err, errlen);
    if (status != 0)
      return status;
    add_field(req, c->format, "Username", c->user);
    add_field(req, c->format, "Password", secret);
  } else if (c->preset == USAGE_LOGIN_PRESET_OAUTH2) {
    status = get_secret(&c->client_secret, &secret, err, errlen);
    if (status != 0)
      return status;
    add_field(req, c->format, "grant_type", "client_credentials");
    if (c->scope != NULL)
      add_field(req, c->format, "scope", c->scope);
    if (c->client_auth == USAGE_LOGIN_AUTH_POST) {
      add_field(req, c->format, "client_id", c->client_id);
      add_field(req, c->format, "client_secret", secret);
    } else {
      /* RFC 6749 2.3.1: both parts form-encoded, then Basic. */
      usage_buf_t pair, hdr;
      usage_buf_init(&pair, 0);
      usage_buf_init(&hdr, 0);
      usage_http_escape(&pair, c->client_id);
      usage_buf_putc(&pair, ':');
      usage_http_escape(&pair, secret);
      usage_buf_puts(&hdr, "Authorization: Basic ");
      usage_login_base64(&hdr, usage_buf_str(&pair), usage_buf_len(&pair));
      status = usage_buf_failed(&pair) ? ENOMEM : usage_buf_failed(&hdr);
      if (usage_buf_data(&pair) != NULL)
        explicit_bzero(usage_buf_data(&pair), usage_buf_len(&pair));
      usage_buf_free(&pair);
      if (status == 0)
        req->auth_header = usage_buf_steal(&hdr, NULL);
      usage_buf_free(&hdr);
      if (status != 0) {
        snprintf(err, errlen, "out of memory");
        return status;
      }
    }
  }
  for (size_t i = 0; i < c->fields_num; i++) {
    const char *value = c->fields[i].value;
    if (value == NULL) {
      status = get_secret(&c->fields[i].secret, &value, err, errlen);
      if (status != 0)
        return status;
    }
    add_field(req, c->format, c->fields[i].name, value);
  }
  if (c->format == USAGE_LOGIN_FORMAT_JSON)
    usage_buf_puts(&req->body, usage_buf_len(&req->body) > 0 ? "}" : "{}");
  else if (usage_buf_len(&req->body) == 0)
    usage_buf_puts(&req->body, "");
  if (usage_buf_failed(&req->body)) {
    snprintf(err, errlen, "the sign-in body does not fit");
    return usage_buf_failed(&req->body);
  }
  return 0;
}

void usage_login_req_free(usage_login_req_t *req) {
  if (usage_buf_data(&req->body) != NULL)
    explicit_bzero(usage_buf_data(&req->body), usage_buf_len(&req->body));
  usage_buf_free(&req->body);
  wipe_free(req->auth_header);
  req->auth_header = NULL;
}

int usage_login_base64(usage_buf_t *b, const void *data, size_t len) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i += 3) {
    unsigned v = (unsigned)p[i] << 16;
    if (i + 1 < len)
      v |= (unsigned)p[i + 1] << 8;
    if (i + 2 < len)
      v |= p[i + 2];
    char out[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                   i + 1 < len ? tab[(v >> 6) & 63] : '=',
                   i + 2 < len ? tab[v & 63] : '='};
    usage_buf_append(b, out, 4);
  }
  return usage_buf_failed(b);
}

static int b64url_value(char ch) {
  if (ch >= 'A' && ch <= 'Z')
    return ch - 'A';
  if (ch >= 'a' && ch <= 'z')
    return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9')
    return ch - '0' + 52;
  if (ch == '-' || ch == '+')
    return 62;
  if (ch == '_' || ch == '/')
    return 63;
  return -1;
}

int usage_login_jwt_claims(const char *token, double *iat, double *exp) {
  const char *dot1 = strchr(token, '.');
  const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
  if (dot1 == NULL || dot2 == NULL || dot2 - dot1 - 1 > 8192)
    return ENOENT;
  char json[6200];
  size_t n = 0;
  unsigned acc = 0;
  int bits = 0;
  for (const char *p = dot1 + 1; p < dot2 && *p != '='; p++) {
    int v = b64url_value(*p);
    if (v < 0)
      return ENOENT;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      json[n++] = (char)((acc >> bits) & 0xff);
    }
  }
  json[n] = 0;
  char err[128];
  usage_json_t *root = usage_json_parse(json, n, 8, err, sizeof(err));
  if (root == NULL)
    return ENOENT;
  double v, i;
  int status = usage_json_double(root, "exp", &v);
  if (usage_json_double(root, "iat", &i) != 0 || !(i > 0))
    i = -1;
  usage_json_free(root);
  if (status != 0)
    return ENOENT;
  *exp = v;
  *iat = i;
  return 0;
}

int usage_login_jwt_exp(const char *token, double *exp) {
  double iat;
  return usage_login_jwt_claims(token, &iat, exp);
}

/* The sign-in server's clock and ours agree when exp - now is within this
 * many seconds below exp - iat: iat is whole seconds (the token may be up
 * to a second younger than it says) and the answer took a moment. */
#define JWT_CLOCK_TOLERANCE 2.0

double usage_login_jwt_lifetime(double iat, double exp, double now) {
  double left = exp - now;
  if (iat > 0 && exp > iat) {
    double full = exp - iat;
    if (left <= full && left >= full - JWT_CLOCK_TOLERANCE && left >= full / 2)
      return left; /* the clocks agree: exact */
    /* The server's clock is ahead of ours (exp - now too long) or behind
     * (too short, even expired on arrival): exp - iat does not depend on
     * it. Less the second iat may have been rounded down by. */
    return fmax(full - 1, full / 2);
  }
  return left > 0 ? left : 0;
}

/* json_dotted follows a dotted path ("data.token") from v. */
static const usage_json_t *json_dotted(const usage_json_t *v,
                                       const char *path) {
  char key[256];
  while (v != NULL && *path) {
    const char *dot = strchr(path, '.');
    size_t len = dot ? (size_t)(dot - path) : strlen(path);
    if (len >= sizeof(key))
      return NULL;
    memcpy(key, path, len);
    key[len] = 0;
    v = usage_json_get(v, key);
    path += len + (dot ? 1 : 0);
  }
  return v;
}

int usage_login_parse(const usage_login_conf_t *c, const char *body, size_t len,
                      const char *header_value, double now, char **token,
                      double *lifetime, char *err, size_t errlen) {
  usage_json_t *root = NULL;
  const char *tok = NULL;
  double life = 0;
  *token = NULL;
  if (body != NULL && len > 0) {
    char perr[128];
    root = usage_json_parse(body, len, 0, perr, sizeof(perr));
  }
  if (c->token_header != NULL) {
    tok = header_value;
    if (tok == NULL || *tok == 0) {
      snprintf(err, errlen, "the answer has no %s header", c->token_header);
      usage_json_free(root);
      return EINVAL;
    }
  } else {
    if (root == NULL) {
      snprintf(err, errlen, "the answer is not a JSON document");
      return EINVAL;
    }
    const usage_json_t *v = json_dotted(root, c->token_field);
    if (v == NULL || usage_json_type(v) != USAGE_JSON_STRING) {
      snprintf(err, errlen, "the answer has no string \"%s\"", c->token_field);
      usage_json_free(root);
      return EINVAL;
    }
    /* a string node: read it through its parent */
    const char *dot = strrchr(c->token_field, '.');
    const usage_json_t *parent = root;
    if (dot != NULL) {
      char ppath[256];
      snprintf(ppath, sizeof(ppath), "%.*s", (int)(dot - c->token_field),
               c->token_field);
      parent = json_dotted(root, ppath);
    }
    tok = usage_json_str(parent, dot ? dot + 1 : c->token_field);
  }
  if (tok == NULL || *tok == 0 || strpbrk(tok, "\r\n") != NULL) {
    snprintf(err, errlen, "the token is empty or not one line");
    usage_json_free(root);
    return EINVAL;
  }
  if (c->expires_field != NULL && root != NULL) {
    const char *dot = strrchr(c->expires_field, '.');
    const usage_json_t *parent = root;
    if (dot != NULL) {
      char ppath[256];
      snprintf(ppath, sizeof(ppath), "%.*s", (int)(dot - c->expires_field),
               c->expires_field);
      parent = json_dotted(root, ppath);
    }
    double v;
    const char *key = dot ? dot + 1 : c->expires_field;
    if (parent != NULL && usage_json_double(parent, key, &v) == 0 && v > 0)
      life = v;
    else if (parent != NULL) {
      const char *text = usage_json_text(parent, key);
      char *end;
      if (text != NULL && (v = strtod(text, &end)) > 0 && *end == 0)
        life = v;
    }
  }
  double iat, exp;
  if (life <= 0 && usage_login_jwt_claims(tok, &iat, &exp) == 0)
    life = usage_login_jwt_lifetime(iat, exp, now);
  if (life <= 0)
    life = c->ttl > 0 ? c->ttl : USAGE_LOGIN_DEFAULT_TTL;
  *token = strdup(tok);
  usage_json_free(root);
  if (*token == NULL) {
    snprintf(err, errlen, "out of memory");
    return ENOMEM;
  }
  *lifetime = life;
  return 0;
}

void usage_login_state_init(usage_login_state_t *st) {
  memset(st, 0, sizeof(*st));
  pthread_mutex_init(&st->lock, NULL);
}

void usage_login_state_destroy(usage_login_state_t *st) {
  wipe_free(st->token);
  st->token = NULL;
  pthread_mutex_destroy(&st->lock);
}

int usage_login_fresh(const usage_login_state_t *st, double now) {
  return st->token != NULL &&
         now < st->obtained + USAGE_LOGIN_REFRESH * st->lifetime;
}

void usage_login_set_token(usage_login_state_t *st, char *token, double now,
                           double lifetime) {
  wipe_free(st->token);
  st->token = token;
  st->obtained = now;
  st->lifetime = lifetime;
  st->generation++;
  st->backoff = 0;
  st->next_attempt = 0;
  st->ok++;
}

void usage_login_failed(usage_login_state_t *st, double now) {
  st->failed++;
  st->backoff =
      st->backoff > 0 ? fmin(st->backoff * 2, USAGE_LOGIN_BACKOFF_MAX) : 1.0;
  double pause = st->backoff * (0.5 + 0.5 * ((double)rand() / RAND_MAX));
  st->next_attempt = now + pause;
}

int usage_login_header(const usage_login_conf_t *c, const char *token,
                       usage_buf_t *b) {
  usage_buf_printf(b, "%s: %s%s", c->send_header, c->send_prefix, token);
  return usage_buf_failed(b);
}
