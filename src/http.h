/* SPDX-License-Identifier: MIT */
/* http: upstream requests with libcurl. One handle per source, reused so
 * connections stay open; authentication (Basic, Bearer, raw headers) with
 * secrets that may live in files and are read again when they change; TLS
 * settings; timeouts; a hard cap on the body size; HTTP(S) only, also for
 * redirects, and credentials never follow a redirect to another host;
 * cancelling a handle from another thread (a stop) ends its transfer at
 * once. No collectd types: errors come back as text for the caller to log. */
#ifndef USAGE_HTTP_H
#define USAGE_HTTP_H 1

#include "buf.h"

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* A secret given inline or as a file holding it alone (a trailing newline
 * is ignored). */
typedef struct {
  char *value; /* inline secret, or NULL */
  char *file;  /* file, or NULL */
  /* cache of the file's contents, refreshed when it changes */
  char *cached;
  struct timespec mtime;
  off_t size;
  ino_t ino;
} usage_secret_t;

/* usage_secret_get returns the current secret in *out (owned by s), reading
 * the file again when it changed. NULL *out when no secret is set. 0 or an
 * errno, with the cause in err (the file name, never the secret). */
int usage_secret_get(usage_secret_t *s, const char **out, char *err,
                     size_t errlen);
void usage_secret_clear(usage_secret_t *s);

typedef struct {
  char *url; /* base URL, no trailing slash */
  char *user;
  usage_secret_t password;
  usage_secret_t bearer;
  char **headers; /* raw "Name: value" */
  size_t headers_num;
  /* HeaderFile "Name" "/path": a header whose value is a secret file */
  struct usage_header_file_s {
    char *name;
    usage_secret_t value;
  } * header_files;
  size_t header_files_num;
  int verify_peer, verify_host;
  char *cacert, *client_cert, *client_key;
  long timeout_ms; /* whole request */
  size_t max_body; /* response bytes after decoding */
} usage_http_conf_t;

void usage_http_conf_clear(usage_http_conf_t *c);

typedef enum {
  USAGE_HTTP_OK = 0,     /* an HTTP answer arrived (any status) */
  USAGE_HTTP_TIMEOUT,    /* connect or transfer timeout */
  USAGE_HTTP_CONNECT,    /* no connection: name resolution, unreachable */
  USAGE_HTTP_TLS,        /* handshake or verification failed */
  USAGE_HTTP_TOO_LARGE,  /* body over max_body */
  USAGE_HTTP_SECRET,     /* a secret file could not be read */
  USAGE_HTTP_FAILED,     /* anything else */
  USAGE_HTTP_LOGIN,      /* signing in (<Login>) failed */
  USAGE_HTTP_LOGIN_AUTH, /* the login endpoint refused (401, 403) */
  USAGE_HTTP_STOPPED,    /* usage_http_cancel: aborted or never sent */
  USAGE_HTTP_REFUSED,    /* the connection was refused (ECONNREFUSED) */
  USAGE_HTTP_DROPPED,    /* connected, but closed before any answer */
  USAGE_HTTP_TRUNCATED,  /* an answer began, its body was cut off */
  USAGE_HTTP_DEADLINE    /* the scrape's deadline came first (source.c) */
} usage_http_err_t;

typedef struct {
  usage_http_err_t err;
  long status;      /* HTTP status, 0 when none arrived */
  const char *body; /* NUL-terminated; valid until the next request */
  size_t len;
  char content_type[96];
  long retry_after; /* seconds from Retry-After, -1 when absent */
  char error[256];  /* the cause when err != USAGE_HTTP_OK */
  /* the value of the request's `capture` header, or NULL; valid until the
   * next request */
  const char *captured;
  /* seconds from the first byte of the answer to the end of the request;
   * 0 when none arrived (politeness: the server had the request by then) */
  double after_first_byte;
} usage_http_resp_t;

/* A request other than a plain GET of conf->url + path_query. */
typedef struct {
  const char *method;     /* NULL = GET */
  const char *url;        /* absolute URL; NULL = conf->url + path_query */
  const char *path_query; /* when url is NULL */
  const char *body;       /* request body, or NULL */
  size_t body_len;
  const char *content_type; /* of the body */
  const char *header;       /* one more "Name: value" (a token), or NULL */
  const char *header2;      /* and another, or NULL */
  int no_conf_auth;         /* leave out User/Password and BearerToken */
  const char *capture;      /* name of a response header to keep, or NULL */
  long timeout_ms;          /* whole request; 0 = conf->timeout_ms */
} usage_http_req_t;

typedef struct usage_http_s usage_http_t;

/* usage_http_global_init must run once before any handle is created. */
int usage_http_global_init(void);

/* usage_http_create keeps a pointer to conf, which must outlive the
 * handle. NULL on failure. */
usage_http_t *usage_http_create(usage_http_conf_t *conf);
void usage_http_destroy(usage_http_t *h); /* accepts NULL */

/* usage_http_get requests conf->url + path_query (already escaped).
 * Returns 0 when an HTTP answer arrived (see resp->status), otherwise the
 * error class (resp->err) with its cause in resp->error. */
int usage_http_get(usage_http_t *h, const char *path_query,
                   usage_http_resp_t *resp);

/* usage_http_request performs req (see usage_http_req_t) like
 * usage_http_get. */
int usage_http_request(usage_http_t *h, const usage_http_req_t *req,
                       usage_http_resp_t *resp);

/* usage_http_cancel stops h for good, from any thread: a transfer in
 * flight on it ends at once (libcurl's progress callback aborts it; the
 * wait for the socket is woken with curl_multi_wakeup) and this and every
 * later request on h returns USAGE_HTTP_STOPPED without sending anything.
 * Nothing of an aborted answer reaches the caller. */
void usage_http_cancel(usage_http_t *h);

/* usage_http_escape URL-encodes s into b (RFC 3986 unreserved kept). */
int usage_http_escape(usage_buf_t *b, const char *s);

#endif
