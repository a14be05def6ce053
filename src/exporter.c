/* SPDX-License-Identifier: MIT */
/* exporter: libmicrohttpd server for /metrics and / (see exporter.h). The
 * body comes from the store's render cache (plain or gzip) and is handed to
 * libmicrohttpd without a copy; the reference is dropped when the response
 * is freed. Every request is answered in the first handler call, so a
 * request body is never read. Basic auth verifies bcrypt hashes with
 * libcrypt, behind a cache of recent verdicts and a global rate limit on
 * bcrypt runs. */
#include "exporter.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

/* Verdicts of recent credential checks, keyed by an HMAC of user and
 * password under a per-process random key (no password is kept). */
#define AUTH_CACHE 64
#define AUTH_TTL_OK 600 /* seconds */
#define AUTH_TTL_BAD 60
/* bcrypt runs for credentials not in the cache: a token bucket. */
#define AUTH_BURST 8.0
#define AUTH_RATE 4.0 /* per second */
#define FILE_MAX (1024 * 1024)

typedef struct {
  unsigned char key[32];
  int ok;
  time_t until;
} verdict_t;

typedef struct {
  const usage_exporter_user_t *users;
  size_t users_num;
  char dummy[CRYPT_OUTPUT_SIZE]; /* unknown users are checked against it */
  unsigned char hmac_key[32];
  pthread_mutex_t lock; /* cache, tokens */
  verdict_t cache[AUTH_CACHE];
  double tokens;
  struct timespec refill;
} auth_t;

struct usage_exporter_s {
  struct MHD_Daemon *mhd;
  usage_store_t *store;
  usage_exporter_opts_t opts;
  char *tls_cert, *tls_key, *tls_ca; /* PEM contents */
  auth_t *auth;
};

int usage_html_escape(usage_buf_t *b, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '&':
      usage_buf_puts(b, "&amp;");
      break;
    case '<':
      usage_buf_puts(b, "&lt;");
      break;
    case '>':
      usage_buf_puts(b, "&gt;");
      break;
    case '"':
      usage_buf_puts(b, "&quot;");
      break;
    case '\'':
      usage_buf_puts(b, "&#39;");
      break;
    default:
      usage_buf_putc(b, *s);
    }
  }
  return usage_buf_failed(b);
}

/* next_item splits a comma-separated header into the media/coding token and
 * its q value. Returns the rest of the list, or NULL at the end. */
static const char *next_item(const char *p, char *token, size_t size,
                             double *q) {
  if (p == NULL || *p == 0)
    return NULL;
  const char *end = strchr(p, ',');
  size_t len = end ? (size_t)(end - p) : strlen(p);
  char item[256];
  snprintf(item, sizeof(item), "%.*s", (int)(len < 255 ? len : 255), p);
  char *save = NULL;
  char *type = strtok_r(item, ";", &save);
  token[0] = 0;
  *q = 1;
  if (type != NULL) {
    while (*type == ' ' || *type == '\t')
      type++;
    size_t tl = strlen(type);
    while (tl > 0 && (type[tl - 1] == ' ' || type[tl - 1] == '\t'))
      type[--tl] = 0;
    snprintf(token, size, "%s", type);
    for (char *param; (param = strtok_r(NULL, ";", &save)) != NULL;) {
      while (*param == ' ' || *param == '\t')
        param++;
      if (strncasecmp(param, "q=", 2) == 0)
        *q = strtod(param + 2, NULL);
    }
  }
  return p + len + (end ? 1 : 0);
}

usage_format_t usage_exporter_negotiate(const char *accept) {
  double q_om = 0, q_text = 0, q;
  int om_first = 0, seen = 0;
  char type[128];
  for (const char *p = accept; (p = next_item(p, type, sizeof(type), &q));) {
    if (type[0] == 0 || !(q > 0))
      continue;
    if (strcasecmp(type, "application/openmetrics-text") == 0) {
      if (q > q_om)
        q_om = q;
      if (!seen)
        om_first = 1;
      seen = 1;
    } else if (strcasecmp(type, "text/plain") == 0 ||
               strcasecmp(type, "text/*") == 0 ||
               strcasecmp(type, "*/*") == 0) {
      if (q > q_text)
        q_text = q;
      seen = 1;
    }
  }
  if (q_om > q_text || (q_om > 0 && q_om == q_text && om_first))
    return USAGE_FMT_OPENMETRICS;
  return USAGE_FMT_TEXT;
}

int usage_exporter_wants_gzip(const char *accept_encoding) {
  double q, q_gzip = -1, q_star = -1;
  char coding[64];
  for (const char *p = accept_encoding;
       (p = next_item(p, coding, sizeof(coding), &q));) {
    if (strcasecmp(coding, "gzip") == 0 || strcasecmp(coding, "x-gzip") == 0)
      q_gzip = q;
    else if (strcmp(coding, "*") == 0)
      q_star = q;
  }
  if (q_gzip >= 0)
    return q_gzip > 0;
  return q_star > 0;
}

int usage_exporter_check_hash(const char *hash) {
  if (hash == NULL || strlen(hash) != 60 ||
      !(strncmp(hash, "$2y$", 4) == 0 || strncmp(hash, "$2b$", 4) == 0 ||
        strncmp(hash, "$2a$", 4) == 0))
    return EINVAL;
  struct crypt_data *cd = calloc(1, sizeof(*cd));
  if (cd == NULL)
    return ENOMEM;
  /* A hash with a valid setting reproduces its own prefix. */
  const char *out = crypt_rn("", hash, cd, sizeof(*cd));
  int ok = out != NULL && strncmp(out, hash, 29) == 0;
  free(cd);
  return ok ? 0 : EINVAL;
}

/* ---- Basic auth ---- */

static int ct_equal(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  unsigned char d = 0;
  for (size_t i = 0; i < n; i++)
    d |= x[i] ^ y[i];
  return d == 0;
}

static auth_t *auth_create(const usage_exporter_opts_t *opts, char *err,
                           size_t errlen) {
  auth_t *a = calloc(1, sizeof(*a));
  struct crypt_data *cd = calloc(1, sizeof(*cd));
  if (a == NULL || cd == NULL) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  a->users = opts->users;
  a->users_num = opts->users_num;
  unsigned long cost = 4; /* becomes the highest configured cost */
  for (size_t i = 0; i < opts->users_num; i++) {
    if (usage_exporter_check_hash(opts->users[i].hash) != 0) {
      snprintf(err, errlen,
               "BasicAuthUser \"%s\": not a bcrypt hash libcrypt can verify",
               opts->users[i].user);
      goto fail;
    }
    unsigned long c = strtoul(opts->users[i].hash + 4, NULL, 10);
    if (c > cost)
      cost = c;
  }
  unsigned char rnd[16];
  if (getrandom(a->hmac_key, sizeof(a->hmac_key), 0) !=
          (ssize_t)sizeof(a->hmac_key) ||
      getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
    snprintf(err, errlen, "no random bytes: %s", strerror(errno));
    goto fail;
  }
  /* The dummy hash has the highest configured cost, so an unknown user
   * costs as much as a known one. */
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  const char *out = NULL;
  if (crypt_gensalt_rn("$2b$", cost, (const char *)rnd, sizeof(rnd), setting,
                       sizeof(setting)) != NULL)
    out = crypt_rn("unknown-user", setting, cd, sizeof(*cd));
  if (out == NULL || out[0] == '*') {
    snprintf(err, errlen, "libcrypt cannot make a bcrypt hash");
    goto fail;
  }
  snprintf(a->dummy, sizeof(a->dummy), "%s", out);
  a->tokens = AUTH_BURST;
  clock_gettime(CLOCK_MONOTONIC, &a->refill);
  pthread_mutex_init(&a->lock, NULL);
  free(cd);
  return a;

fail:
  free(cd);
  free(a);
  return NULL;
}

static void auth_destroy(auth_t *a) {
  if (a == NULL)
    return;
  pthread_mutex_destroy(&a->lock);
  explicit_bzero(a, sizeof(*a));
  free(a);
}

/* auth_take_token takes one bcrypt run from the bucket: 1 or 0. */
static int auth_take_token(auth_t *a) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double dt = (double)(now.tv_sec - a->refill.tv_sec) +
              (double)(now.tv_nsec - a->refill.tv_nsec) / 1e9;
  a->refill = now;
  a->tokens += dt * AUTH_RATE;
  if (a->tokens > AUTH_BURST)
    a->tokens = AUTH_BURST;
  if (a->tokens < 1)
    return 0;
  a->tokens -= 1;
  return 1;
}

/* auth_check: 0 (let in), MHD_HTTP_UNAUTHORIZED or MHD_HTTP_TOO_MANY_REQUESTS
 */
static unsigned auth_check(auth_t *a, struct MHD_Connection *conn) {
  char *pass = NULL;
  char *user = MHD_basic_auth_get_username_password(conn, &pass);
  unsigned verdict = MHD_HTTP_UNAUTHORIZED;
  if (user == NULL || pass == NULL)
    goto done;
  size_t ul = strlen(user), pl = strlen(pass);
  unsigned char key[32];
  char *msg = malloc(ul + pl + 1);
  if (msg == NULL)
    goto done;
  memcpy(msg, user, ul + 1);
  memcpy(msg + ul + 1, pass, pl);
  int hrc = gnutls_hmac_fast(GNUTLS_MAC_SHA256, a->hmac_key,
                             sizeof(a->hmac_key), msg, ul + 1 + pl, key);
  explicit_bzero(msg, ul + pl + 1);
  free(msg);
  if (hrc != 0)
    goto done;

  time_t now = time(NULL);
  int hit = -1;
  pthread_mutex_lock(&a->lock);
  for (size_t i = 0; i < AUTH_CACHE; i++)
    if (a->cache[i].until > now && ct_equal(a->cache[i].key, key, 32))
      hit = a->cache[i].ok;
  int token = hit < 0 ? auth_take_token(a) : 0;
  pthread_mutex_unlock(&a->lock);
  if (hit >= 0) {
    verdict = hit ? 0 : MHD_HTTP_UNAUTHORIZED;
    goto done;
  }
  if (!token) {
    verdict = MHD_HTTP_TOO_MANY_REQUESTS;
    goto done;
  }

  const char *hash = a->dummy;
  int known = 0;
  for (size_t i = 0; i < a->users_num; i++)
    if (strcmp(a->users[i].user, user) == 0 && !known) {
      hash = a->users[i].hash;
      known = 1;
    }
  struct crypt_data *cd = calloc(1, sizeof(*cd));
  if (cd == NULL)
    goto done;
  const char *out = crypt_rn(pass, hash, cd, sizeof(*cd));
  size_t hl = strlen(hash);
  int ok = out != NULL && strlen(out) == hl && ct_equal(out, hash, hl);
  ok = ok && known;
  explicit_bzero(cd, sizeof(*cd));
  free(cd);

  pthread_mutex_lock(&a->lock);
  size_t slot = 0;
  for (size_t i = 1; i < AUTH_CACHE; i++)
    if (a->cache[i].until < a->cache[slot].until)
      slot = i;
  memcpy(a->cache[slot].key, key, 32);
  a->cache[slot].ok = ok;
  a->cache[slot].until = now + (ok ? AUTH_TTL_OK : AUTH_TTL_BAD);
  pthread_mutex_unlock(&a->lock);
  verdict = ok ? 0 : MHD_HTTP_UNAUTHORIZED;

done:
  if (pass != NULL) {
    explicit_bzero(pass, strlen(pass));
    MHD_free(pass);
  }
  if (user != NULL)
    MHD_free(user);
  return verdict;
}

/* ---- responses ---- */

_Static_assert(sizeof(usage_iov_t) == sizeof(struct MHD_IoVec) &&
                   offsetof(usage_iov_t, base) ==
                       offsetof(struct MHD_IoVec, iov_base) &&
                   offsetof(usage_iov_t, len) ==
                       offsetof(struct MHD_IoVec, iov_len),
               "usage_iov_t must be laid out like struct MHD_IoVec");

static void release_body(void *cls) { usage_body_release(cls); }

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status,
                                  const char *text) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/plain; charset=utf-8");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  if (status == MHD_HTTP_UNAUTHORIZED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                            "Basic realm=\"usage\", charset=\"UTF-8\"");
  if (status == MHD_HTTP_TOO_MANY_REQUESTS)
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  enum MHD_Result ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* A body of many pieces is copied out in blocks by a reader: libmicrohttpd
 * 0.9.75 aborts on I/O vectors longer than IOV_MAX. */
#define IOV_PIECES_MAX 1000
#define READER_BLOCK (256 * 1024)

typedef struct {
  usage_body_t *body;
  size_t piece, off; /* where the next byte comes from */
  uint64_t pos;      /* and its offset in the body */
} body_reader_t;

static ssize_t body_read(void *cls, uint64_t pos, char *buf, size_t max) {
  body_reader_t *r = cls;
  if (pos != r->pos) { /* not sequential: find the piece again */
    r->piece = 0;
    r->pos = 0;
    while (r->piece < r->body->iovcnt &&
           r->pos + r->body->iov[r->piece].len <= pos)
      r->pos += r->body->iov[r->piece++].len;
    r->off = (size_t)(pos - r->pos);
    r->pos = pos;
  }
  size_t n = 0;
  while (n < max && r->piece < r->body->iovcnt) {
    const usage_iov_t *v = &r->body->iov[r->piece];
    size_t take = v->len - r->off;
    if (take > max - n)
      take = max - n;
    memcpy(buf + n, (const char *)v->base + r->off, take);
    n += take;
    r->off += take;
    if (r->off == v->len) {
      r->piece++;
      r->off = 0;
    }
  }
  r->pos += n;
  return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void body_reader_free(void *cls) {
  body_reader_t *r = cls;
  usage_body_release(r->body);
  free(r);
}

/* body_response hands the body to libmicrohttpd without copying it when it
 * has few pieces, else through a reader (one copy per scrape, in blocks).
 * The body's reference goes with the response, also on failure. */
static struct MHD_Response *body_response(usage_body_t *body) {
  struct MHD_Response *r = NULL;
  if (body->iovcnt == 0) {
    r = MHD_create_response_from_buffer_with_free_callback_cls(
        0, (void *)"", release_body, body);
  } else if (body->iovcnt <= IOV_PIECES_MAX) {
    r = MHD_create_response_from_iovec((const struct MHD_IoVec *)body->iov,
                                       (unsigned int)body->iovcnt, release_body,
                                       body);
  } else {
    body_reader_t *rd = calloc(1, sizeof(*rd));
    if (rd != NULL) {
      rd->body = body;
      r = MHD_create_response_from_callback(body->len, READER_BLOCK, body_read,
                                            rd, body_reader_free);
      if (r == NULL)
        free(rd);
    }
  }
  if (r == NULL)
    usage_body_release(body);
  return r;
}

static enum MHD_Result serve_metrics(usage_exporter_t *e,
                                     struct MHD_Connection *conn) {
  const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_ACCEPT);
  const char *encoding = MHD_lookup_connection_value(
      conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
  usage_format_t fmt = usage_exporter_negotiate(accept);
  int gzip = usage_exporter_wants_gzip(encoding);
  usage_body_t *body = gzip ? usage_store_body_gzip(e->store, fmt)
                            : usage_store_body_iov(e->store, fmt);
  if (body == NULL)
    return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
  struct MHD_Response *r = body_response(body);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          fmt == USAGE_FMT_OPENMETRICS ? USAGE_CT_OPENMETRICS
                                                       : USAGE_CT_TEXT);
  if (gzip)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
  MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept, Accept-Encoding");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result serve_page(usage_exporter_t *e,
                                  struct MHD_Connection *conn) {
  usage_buf_t b;
  usage_buf_init(&b, 4 * 1024 * 1024);
  usage_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
                     "<meta charset=\"utf-8\">\n"
                     "<title>collectd usage plugin</title>\n"
                     "<style>table{border-collapse:collapse}"
                     "td,th{border:1px solid #999;padding:2px 6px;"
                     "text-align:left}</style>\n"
                     "</head>\n<body>\n"
                     "<h1>collectd usage plugin</h1>\n"
                     "<p><a href=\"/metrics\">Metrics</a></p>\n");
  if (e->opts.page != NULL)
    e->opts.page(e->opts.page_ud, &b);
  usage_buf_puts(&b, "</body>\n</html>\n");
  if (usage_buf_failed(&b)) {
    usage_buf_free(&b);
    return queue_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
  }
  size_t len;
  char *data = usage_buf_steal(&b, &len);
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(data);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/html; charset=utf-8");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "Content-Security-Policy",
                          "default-src 'none'; style-src 'unsafe-inline'");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

/* client_cert_ok: with a client CA, the peer's chain must verify. */
static int client_cert_ok(usage_exporter_t *e, struct MHD_Connection *conn) {
  if (e->tls_ca == NULL)
    return 1;
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (ci == NULL || ci->tls_session == NULL)
    return 0;
  unsigned status = 1;
  if (gnutls_certificate_verify_peers2(ci->tls_session, &status) != 0)
    return 0;
  return status == 0;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_size, void **req_cls) {
  usage_exporter_t *e = cls;
  (void)version;
  (void)upload_data;
  (void)upload_size;
  (void)req_cls;
  /* Everything is decided on the headers: the first call answers, and a
   * request body is never read (libmicrohttpd closes such a connection). */
  if (!client_cert_ok(e, conn))
    return queue_text(conn, MHD_HTTP_FORBIDDEN,
                      "403 a valid client certificate is required\n");
  if (e->auth != NULL) {
    unsigned code = auth_check(e->auth, conn);
    if (code == MHD_HTTP_UNAUTHORIZED)
      return queue_text(conn, code, "401 authentication required\n");
    if (code != 0)
      return queue_text(conn, code, "429 too many login attempts\n");
  }
  int metrics = strcmp(url, "/metrics") == 0;
  if (!metrics && strcmp(url, "/") != 0)
    return queue_text(conn, MHD_HTTP_NOT_FOUND,
                      "404 not found: try /metrics\n");
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return queue_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                      "405 method not allowed\n");
  return metrics ? serve_metrics(e, conn) : serve_page(e, conn);
}

/* read_file reads a whole (small) file as a NUL-terminated string. */
static char *read_file(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
    return NULL;
  }
  usage_buf_t b;
  usage_buf_init(&b, FILE_MAX);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 &&
         usage_buf_append(&b, chunk, n) == 0)
    ;
  int bad = ferror(f) || usage_buf_failed(&b) || usage_buf_len(&b) == 0;
  fclose(f);
  explicit_bzero(chunk, sizeof(chunk));
  if (bad) {
    snprintf(err, errlen, "cannot read \"%s\": %s", path,
             usage_buf_failed(&b) ? "too large" : "empty or unreadable");
    if (usage_buf_data(&b) != NULL)
      explicit_bzero(usage_buf_data(&b), usage_buf_len(&b));
    usage_buf_free(&b);
    return NULL;
  }
  return usage_buf_steal(&b, NULL);
}

static void wipe_free(char *s) {
  if (s != NULL) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

usage_exporter_t *usage_exporter_start(const usage_exporter_opts_t *opts,
                                       usage_store_t *store, char *err,
                                       size_t errlen) {
  struct addrinfo hints = {.ai_flags =
                               AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                           .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  int rc = getaddrinfo(opts->address, opts->port, &hints, &ai);
  if (rc != 0) {
    snprintf(err, errlen, "cannot use address \"%s\" port \"%s\": %s",
             opts->address, opts->port, gai_strerror(rc));
    return NULL;
  }
  usage_exporter_t *e = calloc(1, sizeof(*e));
  if (e == NULL) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  e->store = store;
  e->opts = *opts;
  if ((opts->tls_cert_file == NULL) != (opts->tls_key_file == NULL)) {
    snprintf(err, errlen, "TLSCertFile and TLSKeyFile go together");
    goto fail;
  }
  if (opts->tls_client_ca_file != NULL && opts->tls_cert_file == NULL) {
    snprintf(err, errlen, "TLSClientCAFile needs TLSCertFile and TLSKeyFile");
    goto fail;
  }
  if (opts->tls_cert_file != NULL &&
      ((e->tls_cert = read_file(opts->tls_cert_file, err, errlen)) == NULL ||
       (e->tls_key = read_file(opts->tls_key_file, err, errlen)) == NULL))
    goto fail;
  if (opts->tls_client_ca_file != NULL &&
      (e->tls_ca = read_file(opts->tls_client_ca_file, err, errlen)) == NULL)
    goto fail;
  if (opts->users_num > 0 && (e->auth = auth_create(opts, err, errlen)) == NULL)
    goto fail;

  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
  if (ai->ai_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  struct MHD_OptionItem o[16];
  size_t n = 0;
#define OPT(opt, v, p) o[n++] = (struct MHD_OptionItem){(opt), (v), (p)}
  OPT(MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr);
  OPT(MHD_OPTION_THREAD_POOL_SIZE,
      opts->threads ? opts->threads : USAGE_EXPORTER_THREADS, NULL);
  OPT(MHD_OPTION_CONNECTION_LIMIT,
      opts->max_conns ? opts->max_conns : USAGE_EXPORTER_MAX_CONNS, NULL);
  OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT,
      opts->max_per_ip ? opts->max_per_ip : USAGE_EXPORTER_MAX_PER_IP, NULL);
  OPT(MHD_OPTION_CONNECTION_TIMEOUT,
      opts->timeout_s ? opts->timeout_s : USAGE_EXPORTER_IDLE_TIMEOUT, NULL);
  OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (intptr_t)(opts->mem_limit ? opts->mem_limit
                                 : USAGE_EXPORTER_MEMORY_LIMIT),
      NULL);
  OPT(MHD_OPTION_LISTEN_BACKLOG_SIZE, 128, NULL);
  if (e->tls_cert != NULL) {
    flags |= MHD_USE_TLS;
    OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, e->tls_cert);
    OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, e->tls_key);
    OPT(MHD_OPTION_HTTPS_PRIORITIES, 0,
        "NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1");
    if (e->tls_ca != NULL)
      OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, e->tls_ca);
  }
  OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
  e->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, e, MHD_OPTION_ARRAY,
                            o, MHD_OPTION_END);
  if (e->mhd == NULL) {
    snprintf(err, errlen,
             "cannot listen on %s port %s (address in use or not local, "
             "or a bad TLS certificate or key?)",
             opts->address, opts->port);
    goto fail;
  }
  freeaddrinfo(ai);
  return e;

fail:
  freeaddrinfo(ai);
  usage_exporter_stop(e);
  return NULL;
}

void usage_exporter_stop(usage_exporter_t *e) {
  if (e == NULL)
    return;
  if (e->mhd != NULL)
    MHD_stop_daemon(e->mhd);
  auth_destroy(e->auth);
  free(e->tls_cert);
  wipe_free(e->tls_key);
  free(e->tls_ca);
  free(e);
}
