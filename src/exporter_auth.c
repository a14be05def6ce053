/* SPDX-License-Identifier: MIT */
/* exporter_auth: TLS material and the client certificate check, Basic auth
 * (see exporter_auth.h). Credentials are verified with libcrypt's bcrypt,
 * behind a cache of recent verdicts keyed by an HMAC (no password is kept)
 * and token buckets on bcrypt runs: one per client address (a small LRU
 * table), so a flood from one address does not lock the others out, and a
 * global one that caps the CPU spent. Cached verdicts cost no token. bcrypt
 * runs in one thread of its own, fed by a bounded queue, so the server's
 * event loops never wait for it. */
#include "exporter_auth.h"

#include <crypt.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Verdicts of recent credential checks, keyed by an HMAC of user and
 * password under a per-process random key (no password is kept). */
#define AUTH_CACHE 64
#define AUTH_TTL_OK 600 /* seconds */
#define AUTH_TTL_BAD 60
/* bcrypt runs for credentials not in the cache: a token bucket per client
 * address, and a global one above them. */
#define AUTH_BURST 8.0
#define AUTH_RATE 4.0 /* per second */
#define AUTH_GLOBAL_BURST 32.0
#define AUTH_GLOBAL_RATE 16.0
#define AUTH_CLIENTS 256 /* addresses with a bucket; least recent goes */
#define AUTH_QUEUE 64    /* checks waiting for the bcrypt thread */

typedef struct {
  unsigned char key[32];
  int ok;
  time_t until;
} verdict_t;

typedef struct {
  double tokens;
  struct timespec refill;
} bucket_t;

typedef struct {
  unsigned char addr[17]; /* family byte, then the IPv4 or IPv6 address */
  bucket_t b;
  double used; /* last use, for the LRU; 0 = free */
} client_t;

/* One check for the bcrypt thread. */
struct usage_exporter_auth_job_s {
  usage_exporter_auth_job_t *next;
  unsigned char key[32]; /* the cache key of the credentials */
  char *pass;            /* wiped when freed */
  const char *hash;      /* the user's, or the dummy */
  int known;             /* the user exists */
  unsigned verdict;
  void (*done)(void *ud);
  void *ud;
};

struct usage_exporter_auth_s {
  const usage_exporter_user_t *users;
  size_t users_num;
  char dummy[CRYPT_OUTPUT_SIZE]; /* unknown users are checked against it */
  unsigned char hmac_key[32];
  pthread_mutex_t lock; /* cache, tokens, queue */
  verdict_t cache[AUTH_CACHE];
  bucket_t global;
  client_t clients[AUTH_CLIENTS];
  /* the bcrypt thread and its queue */
  pthread_cond_t wake;
  usage_exporter_auth_job_t *head, *tail;
  size_t queued; /* begun and not yet finished by the thread */
  int stopping, running;
  pthread_t thread;
};

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

static void *auth_thread(void *arg);

static int ct_equal(const void *a, const void *b, size_t n) {
  const unsigned char *x = a, *y = b;
  unsigned char d = 0;
  for (size_t i = 0; i < n; i++)
    d |= x[i] ^ y[i];
  return d == 0;
}

usage_exporter_auth_t *
usage_exporter_auth_create(const usage_exporter_opts_t *opts, char *err,
                           size_t errlen) {
  usage_exporter_auth_t *a = calloc(1, sizeof(*a));
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
  a->global.tokens = AUTH_GLOBAL_BURST;
  clock_gettime(CLOCK_MONOTONIC, &a->global.refill);
  pthread_mutex_init(&a->lock, NULL);
  pthread_cond_init(&a->wake, NULL);
  if (pthread_create(&a->thread, NULL, auth_thread, a) != 0) {
    snprintf(err, errlen, "cannot start a thread");
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->lock);
    goto fail;
  }
  a->running = 1;
  free(cd);
  return a;

fail:
  free(cd);
  free(a);
  return NULL;
}

void usage_exporter_auth_drain(usage_exporter_auth_t *a) {
  if (a == NULL || !a->running)
    return;
  pthread_mutex_lock(&a->lock);
  a->stopping = 1;
  pthread_cond_signal(&a->wake);
  pthread_mutex_unlock(&a->lock);
  pthread_join(a->thread, NULL);
  a->running = 0;
}

void usage_exporter_auth_destroy(usage_exporter_auth_t *a) {
  if (a == NULL)
    return;
  usage_exporter_auth_drain(a);
  pthread_cond_destroy(&a->wake);
  pthread_mutex_destroy(&a->lock);
  explicit_bzero(a, sizeof(*a));
  free(a);
}

/* bucket_take takes one bcrypt run from b: 1 or 0. */
static int bucket_take(bucket_t *b, const struct timespec *now, double burst,
                       double rate, int take) {
  double dt = (double)(now->tv_sec - b->refill.tv_sec) +
              (double)(now->tv_nsec - b->refill.tv_nsec) / 1e9;
  b->refill = *now;
  b->tokens += dt * rate;
  if (b->tokens > burst)
    b->tokens = burst;
  if (b->tokens < 1)
    return 0;
  if (take)
    b->tokens -= 1;
  return 1;
}

/* client_key: the client's address as a table key (zeroes if unknown). */
static void client_key(struct MHD_Connection *conn, unsigned char key[17]) {
  memset(key, 0, 17);
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (ci == NULL || ci->client_addr == NULL)
    return;
  const struct sockaddr *sa = (const struct sockaddr *)ci->client_addr;
  key[0] = (unsigned char)sa->sa_family;
  if (sa->sa_family == AF_INET)
    memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  else if (sa->sa_family == AF_INET6)
    memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
}

/* auth_take_token takes one bcrypt run from the client's bucket and the
 * global one (the client's first: a flooding address does not drain the
 * global bucket): 1 or 0. Called under the lock. */
static int auth_take_token(usage_exporter_auth_t *a,
                           const unsigned char addr[17]) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double t = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
  client_t *c = NULL, *lru = &a->clients[0];
  for (size_t i = 0; i < AUTH_CLIENTS && c == NULL; i++) {
    if (a->clients[i].used > 0 && memcmp(a->clients[i].addr, addr, 17) == 0)
      c = &a->clients[i];
    else if (a->clients[i].used < lru->used)
      lru = &a->clients[i];
  }
  if (c == NULL) { /* a new address starts with a full bucket */
    c = lru;
    memcpy(c->addr, addr, 17);
    c->b.tokens = AUTH_BURST;
    c->b.refill = now;
  }
  c->used = t;
  if (!bucket_take(&c->b, &now, AUTH_BURST, AUTH_RATE, 0) ||
      !bucket_take(&a->global, &now, AUTH_GLOBAL_BURST, AUTH_GLOBAL_RATE, 1))
    return 0;
  c->b.tokens -= 1;
  return 1;
}

static void job_free(usage_exporter_auth_job_t *job) {
  if (job == NULL)
    return;
  if (job->pass != NULL) {
    explicit_bzero(job->pass, strlen(job->pass));
    free(job->pass);
  }
  explicit_bzero(job, sizeof(*job));
  free(job);
}

/* job_verify runs bcrypt for job and remembers the verdict in the cache. */
static unsigned job_verify(usage_exporter_auth_t *a,
                           usage_exporter_auth_job_t *job) {
  struct crypt_data *cd = calloc(1, sizeof(*cd));
  if (cd == NULL)
    return MHD_HTTP_SERVICE_UNAVAILABLE;
  const char *out = crypt_rn(job->pass, job->hash, cd, sizeof(*cd));
  size_t hl = strlen(job->hash);
  int ok = out != NULL && strlen(out) == hl && ct_equal(out, job->hash, hl);
  ok = ok && job->known;
  explicit_bzero(cd, sizeof(*cd));
  free(cd);

  time_t now = time(NULL);
  pthread_mutex_lock(&a->lock);
  size_t slot = 0;
  for (size_t i = 1; i < AUTH_CACHE; i++)
    if (a->cache[i].until < a->cache[slot].until)
      slot = i;
  memcpy(a->cache[slot].key, job->key, 32);
  a->cache[slot].ok = ok;
  a->cache[slot].until = now + (ok ? AUTH_TTL_OK : AUTH_TTL_BAD);
  pthread_mutex_unlock(&a->lock);
  return ok ? 0 : MHD_HTTP_UNAUTHORIZED;
}

/* auth_thread runs the queued checks in order; when stopping, it finishes
 * the rest with 503. done is called last: the job is the caller's then. */
static void *auth_thread(void *arg) {
  usage_exporter_auth_t *a = arg;
  pthread_mutex_lock(&a->lock);
  for (;;) {
    /* a begun check is always submitted: wait for those too */
    while (a->head == NULL && !(a->stopping && a->queued == 0))
      pthread_cond_wait(&a->wake, &a->lock);
    usage_exporter_auth_job_t *job = a->head;
    if (job == NULL)
      break; /* stopping, and nothing left */
    a->head = job->next;
    if (a->head == NULL)
      a->tail = NULL;
    int stopping = a->stopping;
    pthread_mutex_unlock(&a->lock);
    unsigned verdict =
        stopping ? MHD_HTTP_SERVICE_UNAVAILABLE : job_verify(a, job);
    pthread_mutex_lock(&a->lock);
    job->verdict = verdict;
    a->queued--;
    void (*done)(void *) = job->done;
    void *ud = job->ud;
    pthread_mutex_unlock(&a->lock);
    done(ud);
    pthread_mutex_lock(&a->lock);
  }
  pthread_mutex_unlock(&a->lock);
  return NULL;
}

unsigned usage_exporter_auth_begin(usage_exporter_auth_t *a,
                                   struct MHD_Connection *conn,
                                   usage_exporter_auth_job_t **job) {
  char *pass = NULL;
  char *user = MHD_basic_auth_get_username_password(conn, &pass);
  unsigned verdict = MHD_HTTP_UNAUTHORIZED;
  usage_exporter_auth_job_t *j = NULL;
  *job = NULL;
  if (user == NULL || pass == NULL)
    goto done;
  size_t ul = strlen(user), pl = strlen(pass);
  j = calloc(1, sizeof(*j));
  char *msg = malloc(ul + pl + 1);
  if (j == NULL || msg == NULL) {
    free(msg);
    verdict = MHD_HTTP_SERVICE_UNAVAILABLE;
    goto done;
  }
  memcpy(msg, user, ul + 1);
  memcpy(msg + ul + 1, pass, pl);
  int hrc = gnutls_hmac_fast(GNUTLS_MAC_SHA256, a->hmac_key,
                             sizeof(a->hmac_key), msg, ul + 1 + pl, j->key);
  explicit_bzero(msg, ul + pl + 1);
  free(msg);
  if (hrc != 0)
    goto done;

  unsigned char addr[17];
  client_key(conn, addr);
  time_t now = time(NULL);
  int hit = -1;
  pthread_mutex_lock(&a->lock);
  for (size_t i = 0; i < AUTH_CACHE; i++)
    if (a->cache[i].until > now && ct_equal(a->cache[i].key, j->key, 32))
      hit = a->cache[i].ok;
  int stopping = a->stopping, full = a->queued >= AUTH_QUEUE;
  int token = hit < 0 && !stopping && !full ? auth_take_token(a, addr) : 0;
  if (token)
    a->queued++;
  pthread_mutex_unlock(&a->lock);
  if (hit >= 0) {
    verdict = hit ? 0 : MHD_HTTP_UNAUTHORIZED;
    goto done;
  }
  if (stopping) {
    verdict = MHD_HTTP_SERVICE_UNAVAILABLE;
    goto done;
  }
  if (!token) {
    verdict = MHD_HTTP_TOO_MANY_REQUESTS;
    goto done;
  }
  j->hash = a->dummy;
  for (size_t i = 0; i < a->users_num && !j->known; i++)
    if (strcmp(a->users[i].user, user) == 0) {
      j->hash = a->users[i].hash;
      j->known = 1;
    }
  j->pass = strdup(pass);
  if (j->pass == NULL) { /* give the queue place back */
    pthread_mutex_lock(&a->lock);
    a->queued--;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    verdict = MHD_HTTP_SERVICE_UNAVAILABLE;
    goto done;
  }
  *job = j;
  j = NULL;
  verdict = USAGE_EXPORTER_AUTH_PENDING;

done:
  job_free(j);
  if (pass != NULL) {
    explicit_bzero(pass, strlen(pass));
    MHD_free(pass);
  }
  if (user != NULL)
    MHD_free(user);
  return verdict;
}

void usage_exporter_auth_submit(usage_exporter_auth_t *a,
                                usage_exporter_auth_job_t *job,
                                void (*done)(void *ud), void *ud) {
  job->done = done;
  job->ud = ud;
  pthread_mutex_lock(&a->lock);
  if (a->tail != NULL)
    a->tail->next = job;
  else
    a->head = job;
  a->tail = job;
  pthread_cond_signal(&a->wake);
  pthread_mutex_unlock(&a->lock);
}

unsigned usage_exporter_auth_finish(usage_exporter_auth_job_t *job) {
  unsigned verdict = job->verdict;
  job_free(job);
  return verdict;
}

/* ---- TLS ---- */

#define FILE_MAX (1024 * 1024) /* a PEM file */

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

int usage_exporter_tls_load(usage_exporter_tls_t *t,
                            const usage_exporter_opts_t *opts, char *err,
                            size_t errlen) {
  memset(t, 0, sizeof(*t));
  if ((opts->tls_cert_file == NULL) != (opts->tls_key_file == NULL)) {
    snprintf(err, errlen, "TLSCertFile and TLSKeyFile go together");
    return EINVAL;
  }
  if (opts->tls_client_ca_file != NULL && opts->tls_cert_file == NULL) {
    snprintf(err, errlen, "TLSClientCAFile needs TLSCertFile and TLSKeyFile");
    return EINVAL;
  }
  if (opts->tls_cert_file != NULL &&
      ((t->cert = read_file(opts->tls_cert_file, err, errlen)) == NULL ||
       (t->key = read_file(opts->tls_key_file, err, errlen)) == NULL))
    return EINVAL;
  if (opts->tls_client_ca_file != NULL &&
      (t->ca = read_file(opts->tls_client_ca_file, err, errlen)) == NULL)
    return EINVAL;
  return 0;
}

void usage_exporter_tls_clear(usage_exporter_tls_t *t) {
  free(t->cert);
  wipe_free(t->key);
  free(t->ca);
  memset(t, 0, sizeof(*t));
}

int usage_exporter_tls_client_ok(const usage_exporter_tls_t *t,
                                 struct MHD_Connection *conn) {
  if (t->ca == NULL)
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
