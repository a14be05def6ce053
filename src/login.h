/* SPDX-License-Identifier: MIT */
/* login: a source block that signs in by itself (<Login>). The
 * configuration and its presets (ccc, oauth2), building the sign-in request
 * body (JSON or form), reading the token and its lifetime from the answer
 * (ExpiresField, the JWT exp claim, TTL) and the token's state at run time.
 * No libcurl and no collectd types: source.c performs the request. Error
 * texts never hold a secret, a token or a response body. */
#ifndef USAGE_LOGIN_H
#define USAGE_LOGIN_H 1

#include "buf.h"
#include "http.h"

#include <pthread.h>
#include <stddef.h>

#define USAGE_LOGIN_DEFAULT_TTL 300.0
#define USAGE_LOGIN_BACKOFF_MAX 300.0
/* The token is renewed once this share of its lifetime has passed. */
#define USAGE_LOGIN_REFRESH 0.8

typedef enum {
  USAGE_LOGIN_FORMAT_UNSET = 0,
  USAGE_LOGIN_FORMAT_JSON,
  USAGE_LOGIN_FORMAT_FORM
} usage_login_format_t;

typedef enum {
  USAGE_LOGIN_PRESET_NONE = 0,
  USAGE_LOGIN_PRESET_CCC,
  USAGE_LOGIN_PRESET_OAUTH2
} usage_login_preset_t;

typedef enum {
  USAGE_LOGIN_AUTH_UNSET = 0,
  USAGE_LOGIN_AUTH_BASIC,
  USAGE_LOGIN_AUTH_POST
} usage_login_client_auth_t;

/* A body field: a literal value, or a secret (inline or a file). */
typedef struct {
  char *name;
  char *value;           /* literal, or NULL */
  usage_secret_t secret; /* FieldFile, PasswordFile, ClientSecretFile */
} usage_login_field_t;

/* The <Login> block. NULL/0 = not given; usage_login_conf_finish fills
 * what a preset or the defaults give. Owns every string. */
typedef struct usage_login_conf_s {
  usage_login_preset_t preset;
  char *url; /* as given; after finish: absolute */
  char *method;
  usage_login_format_t format;
  usage_login_field_t *fields; /* Field, FieldFile */
  size_t fields_num;
  char *token_field;   /* dotted path in the JSON answer */
  char *token_header;  /* or: the response header carrying the token */
  char *expires_field; /* dotted path, seconds */
  double ttl;          /* 0 = not given */
  char *send_header, *send_prefix;
  /* preset options */
  char *user;
  usage_secret_t password;
  char *client_id;
  usage_secret_t client_secret;
  char *scope;
  usage_login_client_auth_t client_auth;
} usage_login_conf_t;

usage_login_conf_t *usage_login_conf_create(void);
void usage_login_conf_free(usage_login_conf_t *c); /* accepts NULL */

/* usage_login_conf_add_field appends a body field (value or file; the
 * strings are copied). 0 or ENOMEM. */
int usage_login_conf_add_field(usage_login_conf_t *c, const char *name,
                               const char *value, const char *file);

/* usage_login_preset_parse: "ccc", "oauth2" (case-insensitive), or -1. */
int usage_login_preset_parse(const char *name);

/* usage_login_conf_finish applies the preset and the defaults (explicit
 * options win), resolves a relative URL against base_url and checks the
 * block. 0, or EINVAL with the option at fault in *option and the cause in
 * err (never a secret). */
int usage_login_conf_finish(usage_login_conf_t *c, const char *base_url,
                            const char **option, char *err, size_t errlen);

/* The sign-in request built from a finished configuration. */
typedef struct {
  usage_buf_t body;
  const char *content_type;
  char *auth_header; /* "Authorization: Basic ..." or NULL; wiped on free */
} usage_login_req_t;

/* usage_login_build reads the secrets (files again when they changed) and
 * builds the request into req (zeroed by the caller). 0 or an errno with
 * the cause in err; free req with usage_login_req_free in every case. */
int usage_login_build(usage_login_conf_t *c, usage_login_req_t *req, char *err,
                      size_t errlen);
void usage_login_req_free(usage_login_req_t *req);

/* usage_login_parse reads the token from the answer: the header value
 * (when TokenHeader is set; NULL when absent) or the body's TokenField, and
 * its lifetime in seconds from ExpiresField, else the JWT's exp claim
 * (usage_login_jwt_lifetime at now), else TTL, else
 * USAGE_LOGIN_DEFAULT_TTL. 0 with *token
 * (free it) and *lifetime, or EINVAL/ENOMEM with the cause in err. */
int usage_login_parse(const usage_login_conf_t *c, const char *body, size_t len,
                      const char *header_value, double now, char **token,
                      double *lifetime, char *err, size_t errlen);

/* usage_login_jwt_exp reads the exp claim of a JWT (header.payload.sig,
 * base64url). 0, or ENOENT when token is no JWT or has no exp.
 * usage_login_jwt_claims reads exp and iat (-1 when absent) alike. */
int usage_login_jwt_exp(const char *token, double *exp);
int usage_login_jwt_claims(const char *token, double *iat, double *exp);

/* usage_login_jwt_lifetime: the seconds a token with claims iat (-1 when
 * absent) and exp has left at our clock's now; 0 when unknown. exp - now
 * when both clocks agree; with iat, a sign-in server whose clock is ahead
 * of ours or behind it is recognised and exp - iat taken instead (less a
 * second for iat's rounding), so that a skewed clock never makes a token
 * expired on arrival or longer-lived than it is. */
double usage_login_jwt_lifetime(double iat, double exp, double now);

/* usage_login_base64 appends the standard base64 of data to b. */
int usage_login_base64(usage_buf_t *b, const void *data, size_t len);

/* Run-time state of one block's token. The caller serialises sign-ins with
 * `lock`; the fields are read and written under it. */
typedef struct {
  pthread_mutex_t lock;
  char *token;         /* NULL = not signed in; wiped on change */
  double obtained;     /* Unix seconds */
  double lifetime;     /* seconds */
  unsigned generation; /* counts new tokens */
  double next_attempt; /* no sign-in before this (backoff) */
  double backoff;      /* the last pause, seconds */
  unsigned long long ok, failed;
  long last_status; /* of the last failed sign-in */
  int last_err;     /* usage_http_err_t of the last failed sign-in */
} usage_login_state_t;

void usage_login_state_init(usage_login_state_t *st);
void usage_login_state_destroy(usage_login_state_t *st);
/* usage_login_fresh: a token that has not reached USAGE_LOGIN_REFRESH of
 * its lifetime at now. Call under st->lock. */
int usage_login_fresh(const usage_login_state_t *st, double now);
/* usage_login_set_token takes token; resets the backoff. Under st->lock. */
void usage_login_set_token(usage_login_state_t *st, char *token, double now,
                           double lifetime);
/* usage_login_failed records a failed sign-in and sets the next attempt:
 * a pause that doubles from 1 s up to USAGE_LOGIN_BACKOFF_MAX, each drawn
 * in [pause/2, pause] (jitter). Under st->lock. */
void usage_login_failed(usage_login_state_t *st, double now);

/* usage_login_header formats "Name: prefix+token" into b. */
int usage_login_header(const usage_login_conf_t *c, const char *token,
                       usage_buf_t *b);

#endif
