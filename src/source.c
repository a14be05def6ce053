/* SPDX-License-Identifier: MIT */
/* source: scrape accounting, politeness, throttled logging (see source.h). */
#include "source.h"
#include "families.h"
#include "login.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const usage_vendor_t usage_ccc_vendor;
extern const usage_vendor_t usage_billing_vendor;
extern const usage_vendor_t usage_jasper_vendor;

/* The source at run time. Private: vendors use the functions below. */
typedef struct {
  long code;
  uint64_t count;
} usage_code_count_t;

typedef struct {
  char reason[32];
  uint64_t count;
} usage_reason_count_t;

typedef struct {
  char key[160];
  double next_log; /* when a repeat may be logged again */
  double backoff;
  uint64_t suppressed;
  int seen; /* failed in the current scrape */
} usage_throttle_t;

struct usage_source_s {
  usage_source_conf_t *conf;
  const usage_vendor_t *vendor;
  usage_http_t *http;
  usage_sink_t sink;
  void *state; /* the vendor's */

  /* accounting of the scrape under way */
  int down;   /* something made this scrape count as failed */
  double now; /* start of the scrape */
  double next_request;
  double next_slot; /* wall clock: this block's next turn (slot_wait) */

  usage_code_count_t *codes;
  size_t codes_num;
  usage_reason_count_t *reasons;
  size_t reasons_num;
  usage_throttle_t *throttle;
  size_t throttle_num;

  /* <Login>: the token, one sign-in at a time (login.lock) */
  usage_login_state_t login;
  usage_http_t *login_http;

  pthread_mutex_t acct; /* accounting, throttle, politeness: workers */
  pthread_mutex_t lock; /* status */
  usage_source_status_t status;
};

static double now_real(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
double (*usage_now)(void) = now_real;

static double monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_for(double seconds) {
  if (seconds <= 0)
    return;
  struct timespec ts = {.tv_sec = (time_t)seconds,
                        .tv_nsec = (long)((seconds - floor(seconds)) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

const char *usage_kind_name(usage_kind_t kind) {
  static const char *const names[] = {"ccc", "billing", "jasper"};
  return kind < USAGE_KIND_COUNT ? names[kind] : "unknown";
}

const char *usage_kind_block(usage_kind_t kind) {
  static const char *const names[] = {"CCC", "Billing", "Jasper"};
  return kind < USAGE_KIND_COUNT ? names[kind] : "unknown";
}

const usage_vendor_t *usage_vendor(usage_kind_t kind) {
  switch (kind) {
  case USAGE_KIND_CCC:
    return &usage_ccc_vendor;
  case USAGE_KIND_BILLING:
    return &usage_billing_vendor;
  case USAGE_KIND_JASPER:
    return &usage_jasper_vendor;
  default:
    return NULL;
  }
}

/* Reasons every source publishes from the start, at 0, so that increase()
 * sees the first error of each. */
static const char *const common_reasons[] = {
    "auth",          "http_4xx",  "http_5xx", "timeout",    "connect",
    "tls",           "too_large", "parse",    "pagination", "rate_limited",
    "invalid_value", "secret",    "login"};

static usage_reason_count_t *reason_slot(usage_source_t *s,
                                         const char *reason) {
  for (size_t i = 0; i < s->reasons_num; i++)
    if (strcmp(s->reasons[i].reason, reason) == 0)
      return &s->reasons[i];
  usage_reason_count_t *p =
      realloc(s->reasons, (s->reasons_num + 1) * sizeof(*p));
  if (p == NULL)
    return NULL;
  s->reasons = p;
  p = &s->reasons[s->reasons_num++];
  memset(p, 0, sizeof(*p));
  snprintf(p->reason, sizeof(p->reason), "%s", reason);
  return p;
}

void usage_source_conf_free(usage_source_conf_t *conf) {
  if (conf == NULL)
    return;
  const usage_vendor_t *v = usage_vendor(conf->kind);
  if (v != NULL && conf->kind_conf != NULL)
    v->conf_destroy(conf->kind_conf);
  usage_http_conf_clear(&conf->http);
  usage_login_conf_free(conf->login);
  free(conf->account);
  free(conf->name);
  free(conf);
}

usage_source_t *usage_source_create(usage_source_conf_t *conf,
                                    const usage_sink_t *sink) {
  usage_source_t *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    usage_source_conf_free(conf);
    return NULL;
  }
  s->conf = conf;
  s->sink = *sink;
  s->vendor = usage_vendor(conf->kind);
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&s->acct, NULL);
  usage_login_state_init(&s->login);
  for (size_t i = 0; i < sizeof(common_reasons) / sizeof(*common_reasons); i++)
    reason_slot(s, common_reasons[i]);
  for (size_t i = 0; s->vendor && s->vendor->reasons && s->vendor->reasons[i];
       i++)
    reason_slot(s, s->vendor->reasons[i]);
  s->http = usage_http_create(&conf->http);
  if (conf->login != NULL)
    s->login_http = usage_http_create(&conf->http);
  if (s->http == NULL || s->vendor == NULL ||
      (conf->login != NULL && s->login_http == NULL) ||
      (s->vendor->init != NULL && s->vendor->init(s) != 0)) {
    usage_source_log(s, USAGE_LOG_ERR, "cannot set up the source");
    usage_source_destroy(s);
    return NULL;
  }
  return s;
}

void usage_source_destroy(usage_source_t *s) {
  if (s == NULL)
    return;
  if (s->vendor != NULL && s->vendor->shutdown != NULL && s->state != NULL)
    s->vendor->shutdown(s);
  usage_http_destroy(s->http);
  usage_http_destroy(s->login_http);
  usage_login_state_destroy(&s->login);
  free(s->codes);
  free(s->reasons);
  free(s->throttle);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->acct);
  usage_source_conf_free(s->conf);
  free(s);
}

void usage_source_log(usage_source_t *s, int level, const char *fmt, ...) {
  char msg[1024];
  int n = snprintf(msg, sizeof(msg),
                   "usage plugin: %s \"%s\": ", usage_kind_block(s->conf->kind),
                   s->conf->name);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof(msg))
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
  va_end(ap);
  if (s->sink.log != NULL)
    s->sink.log(s->sink.ud, level, msg);
}

static usage_throttle_t *throttle_find(usage_source_t *s, const char *key,
                                       int create) {
  for (size_t i = 0; i < s->throttle_num; i++)
    if (strcmp(s->throttle[i].key, key) == 0)
      return &s->throttle[i];
  if (!create)
    return NULL;
  usage_throttle_t *p =
      realloc(s->throttle, (s->throttle_num + 1) * sizeof(*p));
  if (p == NULL)
    return NULL;
  s->throttle = p;
  p = &s->throttle[s->throttle_num++];
  memset(p, 0, sizeof(*p));
  snprintf(p->key, sizeof(p->key), "%s", key);
  return p;
}

void usage_source_error(usage_source_t *s, const char *reason, int refusal,
                        const char *key, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);

  pthread_mutex_lock(&s->acct);
  usage_reason_count_t *r = reason_slot(s, reason);
  if (r != NULL)
    r->count++;
  if (!refusal)
    s->down = 1;

  pthread_mutex_lock(&s->lock);
  snprintf(s->status.last_error, sizeof(s->status.last_error), "%s", msg);
  pthread_mutex_unlock(&s->lock);

  double now = usage_now();
  usage_throttle_t *t = throttle_find(s, key ? key : reason, 1);
  /* A documented refusal is a state of the entity, not a fault. */
  int level = refusal ? USAGE_LOG_NOTICE : USAGE_LOG_ERR;
  if (t == NULL) {
    pthread_mutex_unlock(&s->acct);
    usage_source_log(s, level, "%s", msg);
    return;
  }
  t->seen = 1;
  if (t->next_log > now) {
    t->suppressed++;
    pthread_mutex_unlock(&s->acct);
    return;
  }
  double interval = s->conf->interval > 0 ? s->conf->interval : 10;
  t->backoff = t->backoff > 0 ? fmin(t->backoff * 2, 86400) : interval;
  t->next_log = now + t->backoff - 0.5;
  uint64_t suppressed = t->suppressed;
  t->suppressed = 0;
  pthread_mutex_unlock(&s->acct);
  if (suppressed > 0)
    usage_source_log(s, level,
                     "%s (repeated %" PRIu64 " times since the last report)",
                     msg, suppressed);
  else
    usage_source_log(s, level, "%s", msg);
}

void usage_source_ok(usage_source_t *s, const char *key) {
  pthread_mutex_lock(&s->acct);
  usage_throttle_t *t = throttle_find(s, key, 0);
  if (t != NULL)
    *t = s->throttle[--s->throttle_num];
  pthread_mutex_unlock(&s->acct);
  if (t != NULL)
    usage_source_log(s, USAGE_LOG_NOTICE, "%s: working again", key);
}

usage_batch_t *usage_source_batch(usage_source_t *s, const char *entity) {
  return usage_batch_create(s->conf->name, entity);
}

int usage_source_commit(usage_source_t *s, usage_batch_t *b) {
  if (b == NULL)
    return ENOMEM;
  return s->sink.commit(s->sink.ud, b);
}

const char *usage_source_http_reason(int err, long status) {
  switch (err) {
  case USAGE_HTTP_OK:
    break;
  case USAGE_HTTP_TIMEOUT:
    return "timeout";
  case USAGE_HTTP_CONNECT:
    return "connect";
  case USAGE_HTTP_TLS:
    return "tls";
  case USAGE_HTTP_TOO_LARGE:
    return "too_large";
  case USAGE_HTTP_SECRET:
    return "secret";
  case USAGE_HTTP_LOGIN:
    return "login";
  case USAGE_HTTP_LOGIN_AUTH:
    return "auth";
  default:
    return "connect";
  }
  if (status == 401 || status == 403)
    return "auth";
  if (status == 429)
    return "rate_limited";
  if (status >= 500)
    return "http_5xx";
  if (status >= 400)
    return "http_4xx";
  if (status >= 300)
    return "http_3xx";
  return "parse";
}

static void count_code(usage_source_t *s, long code) {
  for (size_t i = 0; i < s->codes_num; i++)
    if (s->codes[i].code == code) {
      s->codes[i].count++;
      return;
    }
  usage_code_count_t *p = realloc(s->codes, (s->codes_num + 1) * sizeof(*p));
  if (p == NULL)
    return;
  s->codes = p;
  s->codes[s->codes_num].code = code;
  s->codes[s->codes_num].count = 1;
  s->codes_num++;
}

#define RETRY_MAX 2
#define RETRY_AFTER_MAX 30

/* politeness_wait spaces request starts 1/MaxRequestsPerSecond apart (a
 * token bucket of depth one) across all workers of the source, plus a 20%
 * margin: network and scheduling jitter of up to a fifth of a second over
 * five requests must not put one request too many into a second as the
 * server counts it (a sliding 1-second window). */
#define POLITENESS_MARGIN 1.20

double usage_source_request_spacing(const usage_source_t *s) {
  return s->conf->max_rps > 0 ? POLITENESS_MARGIN / s->conf->max_rps : 0;
}

/* A request whose wait ended late by more than a quarter of its slot, or
 * by more than 0.1 s, takes a later slot (at most LATE_TRIES times): with
 * slots POLITENESS_MARGIN / limit apart, starts that stay within 0.2 s of
 * their slots never put more than the limit into any one second, so
 * scheduling delays on a busy machine cannot break the vendor's limit. */
#define LATE_FRACTION 0.25
#define LATE_MAX 0.1
#define LATE_TRIES 8

static int too_late(double late, double slot_len) {
  return late > fmin(LATE_FRACTION * slot_len, LATE_MAX);
}

static double wallclock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* slot_wait: the blocks of one account take turns in wall-clock slots of
 * POLITENESS_MARGIN / limit seconds; block k of n starts a request only in
 * a slot whose number is k modulo n. Every instance computes the same
 * slots from the same file and (NTP-synchronised) clock, so the account
 * sees at most its limit in any second, however its blocks are spread
 * over shards; the margin absorbs scheduling jitter and small skew. */
static void slot_wait(usage_source_t *s) {
  const usage_source_conf_t *c = s->conf;
  double len = POLITENESS_MARGIN / c->account_rps;
  for (int tries = 0;; tries++) {
    pthread_mutex_lock(&s->acct);
    double wall = wallclock(), mono = monotonic();
    double from = fmax(wall, s->next_slot);
    if (s->next_request > mono) /* Retry-After */
      from = fmax(from, wall + (s->next_request - mono));
    double m = floor(from / len);
    if (m * len < from)
      m += 1;
    long long r = (long long)fmod(m, (double)c->account_blocks);
    m += (double)(((long long)c->account_index - r + c->account_blocks) %
                  c->account_blocks);
    double start = m * len;
    s->next_slot = start + len * c->account_blocks;
    pthread_mutex_unlock(&s->acct);
    sleep_for(start - wall);
    /* Woken too late (a busy machine), the request would crowd the next
     * block's turn: take a later turn instead. */
    if (!too_late(wallclock() - start, len) || tries >= LATE_TRIES)
      return;
  }
}

static void politeness_wait(usage_source_t *s) {
  if (s->conf->account_blocks > 1 && s->conf->account_rps > 0) {
    slot_wait(s);
    return;
  }
  if (s->conf->max_rps <= 0)
    return;
  double spacing = usage_source_request_spacing(s);
  for (int tries = 0;; tries++) {
    pthread_mutex_lock(&s->acct);
    double t = monotonic();
    double slot = fmax(t, s->next_request);
    s->next_request = slot + spacing;
    pthread_mutex_unlock(&s->acct);
    sleep_for(slot - t);
    /* Woken too late, the start would come too close to the next one's:
     * the vendor counts starts as they arrive, so take the next slot. */
    double late = monotonic() - slot;
    if (!too_late(late, spacing) || tries >= LATE_TRIES)
      return;
  }
}

static int get_polite(usage_source_t *s, usage_http_t *http,
                      const char *path_query, const char *header,
                      usage_http_resp_t *resp) {
  usage_http_req_t req = {.path_query = path_query, .header = header};
  for (int attempt = 0;; attempt++) {
    politeness_wait(s);
    int rc = usage_http_request(http, &req, resp);
    if (rc != 0)
      return rc;
    pthread_mutex_lock(&s->acct);
    count_code(s, resp->status);
    pthread_mutex_unlock(&s->acct);
    if ((resp->status == 429 || resp->status == 503) &&
        resp->retry_after >= 0 && resp->retry_after <= RETRY_AFTER_MAX &&
        attempt < RETRY_MAX) {
      /* Honour Retry-After, also for the requests after this one. */
      double until = monotonic() + (double)resp->retry_after;
      pthread_mutex_lock(&s->acct);
      if (s->next_request < until)
        s->next_request = until;
      pthread_mutex_unlock(&s->acct);
      if (s->conf->max_rps <= 0)
        sleep_for((double)resp->retry_after);
      continue;
    }
    return 0;
  }
}

/* sign_in requests a new token; under s->login.lock. 0, or the error class
 * (USAGE_HTTP_LOGIN, USAGE_HTTP_LOGIN_AUTH, USAGE_HTTP_SECRET) with the
 * cause in resp->error: the URL and the HTTP status, never a secret, a
 * token or the answer's body. */
static int sign_in(usage_source_t *s, double now, usage_http_resp_t *resp) {
  usage_login_conf_t *c = s->conf->login;
  usage_login_state_t *st = &s->login;
  usage_login_req_t lreq = {0};
  char err[256];
  int rc = 0;
  if (usage_login_build(c, &lreq, err, sizeof(err)) != 0) {
    memset(resp, 0, sizeof(*resp));
    resp->body = "";
    resp->err = USAGE_HTTP_SECRET;
    snprintf(resp->error, sizeof(resp->error), "sign-in: %.200s", err);
    rc = USAGE_HTTP_SECRET;
    goto fail;
  }
  politeness_wait(s);
  usage_http_req_t req = {.method = c->method,
                          .url = c->url,
                          .body = usage_buf_str(&lreq.body),
                          .body_len = usage_buf_len(&lreq.body),
                          .content_type = lreq.content_type,
                          .header = lreq.auth_header,
                          .no_conf_auth = 1,
                          .capture = c->token_header};
  int hrc = usage_http_request(s->login_http, &req, resp);
  if (hrc != 0) {
    char cause[256];
    snprintf(cause, sizeof(cause), "%s", resp->error);
    snprintf(resp->error, sizeof(resp->error),
             "sign-in at %.120s failed: %.100s", c->url, cause);
    rc = USAGE_HTTP_LOGIN;
    goto fail;
  }
  pthread_mutex_lock(&s->acct);
  count_code(s, resp->status);
  pthread_mutex_unlock(&s->acct);
  if (resp->status < 200 || resp->status > 299) {
    rc = resp->status == 401 || resp->status == 403 ? USAGE_HTTP_LOGIN_AUTH
                                                    : USAGE_HTTP_LOGIN;
    snprintf(resp->error, sizeof(resp->error), "sign-in at %s: HTTP %ld%s",
             c->url, resp->status,
             rc == USAGE_HTTP_LOGIN_AUTH ? " (credentials refused)" : "");
    goto fail;
  }
  char *token = NULL;
  double lifetime = 0;
  if (usage_login_parse(c, resp->body, resp->len, resp->captured, now, &token,
                        &lifetime, err, sizeof(err)) != 0) {
    rc = USAGE_HTTP_LOGIN;
    snprintf(resp->error, sizeof(resp->error),
             "sign-in at %.120s: HTTP %ld: %.100s", c->url, resp->status, err);
    goto fail;
  }
  int was_failing = st->failed > 0 && st->backoff > 0;
  usage_login_set_token(st, token, now, lifetime);
  usage_login_req_free(&lreq);
  if (was_failing)
    usage_source_log(s, USAGE_LOG_NOTICE, "signed in again at %s", c->url);
  return 0;
fail:
  usage_login_req_free(&lreq);
  resp->err = (usage_http_err_t)rc;
  resp->body = "";
  resp->len = 0;
  usage_login_failed(st, now);
  /* one line per failed sign-in, throttled by the backoff itself */
  usage_source_log(s, USAGE_LOG_ERR, "%s; next attempt in %.0f s", resp->error,
                   st->next_attempt - now);
  return rc;
}

/* login_header returns the header carrying a token in *header (free it
 * with wipe_header), signing in first when there is no token, when it is
 * past USAGE_LOGIN_REFRESH of its lifetime, or (force) when the token of
 * generation *gen was refused and nobody has renewed it since. Workers
 * wait on the lock while one of them signs in. */
static int login_header(usage_source_t *s, int force, unsigned *gen,
                        char **header, usage_http_resp_t *resp) {
  usage_login_state_t *st = &s->login;
  int rc = 0;
  *header = NULL;
  pthread_mutex_lock(&st->lock);
  double now = usage_now();
  int need = force ? (st->token == NULL || st->generation == *gen)
                   : !usage_login_fresh(st, now);
  if (need && force && st->token != NULL) {
    /* the server refused it: never send it again */
    explicit_bzero(st->token, strlen(st->token));
    free(st->token);
    st->token = NULL;
  }
  if (need) {
    if (now < st->next_attempt) {
      memset(resp, 0, sizeof(*resp));
      resp->body = "";
      resp->err =
          st->last_err ? (usage_http_err_t)st->last_err : USAGE_HTTP_LOGIN;
      snprintf(resp->error, sizeof(resp->error),
               "not signed in (the last sign-in failed; next attempt in "
               "%.0f s)",
               st->next_attempt - now);
      rc = (int)resp->err;
      goto out;
    }
    rc = sign_in(s, now, resp);
    st->last_err = rc;
    if (rc != 0)
      goto out;
  }
  usage_buf_t b;
  usage_buf_init(&b, 0);
  if (usage_login_header(s->conf->login, st->token, &b) != 0) {
    usage_buf_free(&b);
    memset(resp, 0, sizeof(*resp));
    resp->body = "";
    resp->err = USAGE_HTTP_FAILED;
    snprintf(resp->error, sizeof(resp->error), "out of memory");
    rc = USAGE_HTTP_FAILED;
    goto out;
  }
  *header = usage_buf_steal(&b, NULL);
  *gen = st->generation;
out:
  pthread_mutex_unlock(&st->lock);
  return rc;
}

static void wipe_header(char *h) {
  if (h == NULL)
    return;
  explicit_bzero(h, strlen(h));
  free(h);
}

int usage_source_get_with(usage_source_t *s, usage_http_t *http,
                          const char *path_query, usage_http_resp_t *resp) {
  if (s->conf->login == NULL)
    return get_polite(s, http, path_query, NULL, resp);
  unsigned gen = 0;
  char *header = NULL;
  int rc = login_header(s, 0, &gen, &header, resp);
  if (rc != 0)
    return rc;
  rc = get_polite(s, http, path_query, header, resp);
  if (rc == 0 && resp->status == 401) {
    /* the token was refused (revoked, expired early): sign in again once
     * and repeat this request once */
    wipe_header(header);
    rc = login_header(s, 1, &gen, &header, resp);
    if (rc == 0)
      rc = get_polite(s, http, path_query, header, resp);
  }
  wipe_header(header);
  return rc;
}

int usage_source_get(usage_source_t *s, const char *path_query,
                     usage_http_resp_t *resp) {
  return usage_source_get_with(s, s->http, path_query, resp);
}

typedef struct {
  usage_source_t *s;
  size_t n, next;
  pthread_mutex_t lock;
  void (*fn)(void *ctx, size_t i, usage_http_t *http);
  void *ctx;
} run_t;

static void run_items(run_t *r, usage_http_t *http) {
  for (;;) {
    pthread_mutex_lock(&r->lock);
    size_t i = r->next < r->n ? r->next++ : r->n;
    pthread_mutex_unlock(&r->lock);
    if (i >= r->n)
      return;
    r->fn(r->ctx, i, http);
  }
}

static void *run_worker(void *p) {
  run_t *r = p;
  usage_http_t *http = usage_http_create(&r->s->conf->http);
  if (http != NULL)
    run_items(r, http);
  usage_http_destroy(http);
  return NULL;
}

#define RUN_MAX_WORKERS 64

void usage_source_run(usage_source_t *s, size_t n,
                      void (*fn)(void *ctx, size_t i, usage_http_t *http),
                      void *ctx) {
  run_t r = {.s = s, .n = n, .fn = fn, .ctx = ctx};
  pthread_mutex_init(&r.lock, NULL);
  size_t workers =
      s->conf->max_concurrent > 1 ? (size_t)s->conf->max_concurrent : 1;
  if (workers > n)
    workers = n;
  if (workers > RUN_MAX_WORKERS)
    workers = RUN_MAX_WORKERS;
  pthread_t tids[RUN_MAX_WORKERS];
  size_t started = 0;
  for (size_t w = 1; w < workers; w++)
    if (pthread_create(&tids[started], NULL, run_worker, &r) == 0)
      started++;
  run_items(&r, s->http);
  for (size_t w = 0; w < started; w++)
    pthread_join(tids[w], NULL);
  pthread_mutex_destroy(&r.lock);
}

void usage_source_get_status(usage_source_t *s, usage_source_status_t *out) {
  pthread_mutex_lock(&s->lock);
  *out = s->status;
  pthread_mutex_unlock(&s->lock);
}

static void commit_self(usage_source_t *s, double duration) {
  usage_batch_t *b = usage_source_batch(s, "self");
  if (b == NULL)
    return;
  const char *kind = usage_kind_name(s->conf->kind);
  usage_batch_add(b, FAM_SOURCE_UP, s->status.up, "kind", kind, NULL);
  usage_batch_add(b, FAM_SCRAPE_DURATION, duration, NULL);
  if (s->status.last_success > 0)
    usage_batch_add(b, FAM_LAST_SUCCESS, s->status.last_success, NULL);
  for (size_t i = 0; i < s->codes_num; i++) {
    char code[16];
    snprintf(code, sizeof(code), "%ld", s->codes[i].code);
    usage_batch_add(b, FAM_SCRAPE_REQUESTS, (double)s->codes[i].count, "code",
                    code, NULL);
  }
  for (size_t i = 0; i < s->reasons_num; i++)
    usage_batch_add(b, FAM_SCRAPE_ERRORS, (double)s->reasons[i].count, "reason",
                    s->reasons[i].reason, NULL);
  if (s->conf->login != NULL) {
    pthread_mutex_lock(&s->login.lock);
    usage_batch_add(b, FAM_LOGIN_TOTAL, (double)s->login.ok, "result", "ok",
                    NULL);
    usage_batch_add(b, FAM_LOGIN_TOTAL, (double)s->login.failed, "result",
                    "failed", NULL);
    if (s->login.token != NULL)
      usage_batch_add(
          b, FAM_LOGIN_TOKEN_EXPIRY,
          fmax(0, s->login.obtained + s->login.lifetime - usage_now()), NULL);
    pthread_mutex_unlock(&s->login.lock);
  }
  usage_source_commit(s, b);
}

void usage_source_read(usage_source_t *s) {
  double t0 = monotonic();
  s->now = usage_now();
  s->down = 0;
  for (size_t i = 0; i < s->throttle_num; i++)
    s->throttle[i].seen = 0;

  s->vendor->scrape(s);

  double duration = monotonic() - t0;
  pthread_mutex_lock(&s->lock);
  s->status.last_scrape = s->now;
  s->status.last_duration = duration;
  s->status.up = !s->down;
  if (!s->down) {
    s->status.last_success = usage_now();
    s->status.last_error[0] = 0;
  }
  pthread_mutex_unlock(&s->lock);
  commit_self(s, duration);
}

const usage_source_conf_t *usage_source_conf(const usage_source_t *s) {
  return s->conf;
}

const char *usage_source_name(const usage_source_t *s) { return s->conf->name; }

void *usage_source_state(const usage_source_t *s) { return s->state; }

void usage_source_set_state(usage_source_t *s, void *state) {
  s->state = state;
}

double usage_source_now(const usage_source_t *s) { return s->now; }

void *usage_source_sink_ud(const usage_source_t *s) { return s->sink.ud; }

void usage_source_count(usage_source_t *s, const char *reason, uint64_t n) {
  pthread_mutex_lock(&s->acct);
  usage_reason_count_t *r = reason_slot(s, reason);
  if (r != NULL)
    r->count += n;
  pthread_mutex_unlock(&s->acct);
}

uint64_t usage_source_reason_count(usage_source_t *s, const char *reason) {
  uint64_t n = UINT64_MAX;
  pthread_mutex_lock(&s->acct);
  for (size_t i = 0; i < s->reasons_num; i++)
    if (strcmp(s->reasons[i].reason, reason) == 0)
      n = s->reasons[i].count;
  pthread_mutex_unlock(&s->acct);
  return n;
}
