/* SPDX-License-Identifier: MIT */
/* source: a source block at run time: creation, scrape accounting (codes,
 * reasons, up, duration), throttled logging, workers, the scrape thread's
 * loop and stopping it, and the accessors (see source.h). Requests,
 * politeness and signing in: source_request.c. */
#include "source.h"
#include "families.h"
#include "login.h"
#include "source_impl.h"

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

static double now_real(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
double (*usage_now)(void) = now_real;

double usage_source_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The source whose scrape runs on this thread (usage_source_read and the
 * workers of usage_source_run set it): usage_source_sleep, called deep in
 * the request code, ends when that source is stopped. */
static _Thread_local usage_source_t *scraping;

/* mono_after: the CLOCK_MONOTONIC time `seconds` from now (run_cond's
 * clock), for pthread_cond_timedwait. */
static struct timespec mono_after(double seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  seconds = fmin(fmax(seconds, 0), 86400.0 * 366);
  double whole = floor(seconds);
  ts.tv_sec += (time_t)whole;
  ts.tv_nsec += (long)((seconds - whole) * 1e9);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

void usage_source_sleep(double seconds) {
  if (seconds <= 0)
    return;
  usage_source_t *s = scraping;
  if (s == NULL) {
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - floor(seconds)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
    return;
  }
  struct timespec until = mono_after(seconds);
  pthread_mutex_lock(&s->run_lock);
  while (!s->stopped &&
         pthread_cond_timedwait(&s->run_cond, &s->run_lock, &until) == 0)
    ; /* woken by another event of the source: sleep on */
  pthread_mutex_unlock(&s->run_lock);
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
/* clang-format off */
static const char *const common_reasons[] = {
    "auth", "http_4xx", "http_5xx", "timeout", "connect",
    "connection_refused", "connection_dropped", "body_truncated",
    "tls", "too_large", "parse", "pagination", "rate_limited",
    "invalid_value", "secret", "login", "deadline"};
/* clang-format on */

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
  pthread_mutex_init(&s->run_lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->run_cond, &ca);
  pthread_condattr_destroy(&ca);
  usage_login_state_init(&s->login);
  s->rng = ((uint64_t)(usage_source_monotonic() * 1e9) ^ (uintptr_t)s) | 1;
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
  free(s->run_http);
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&s->acct);
  pthread_mutex_destroy(&s->run_lock);
  pthread_cond_destroy(&s->run_cond);
  usage_source_conf_free(s->conf);
  free(s);
}

static void source_vlog(usage_source_t *s, int level, const char *fmt,
                        va_list ap) {
  char msg[1024];
  int n = snprintf(msg, sizeof(msg),
                   "usage plugin: %s \"%s\": ", usage_kind_block(s->conf->kind),
                   s->conf->name);
  if (n > 0 && (size_t)n < sizeof(msg))
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
  if (s->sink.log != NULL)
    s->sink.log(s->sink.ud, level, msg);
}

/* source_log_always logs even after a stop (the stop's own line). */
static void source_log_always(usage_source_t *s, int level, const char *fmt,
                              ...) __attribute__((format(printf, 3, 4)));
static void source_log_always(usage_source_t *s, int level, const char *fmt,
                              ...) {
  va_list ap;
  va_start(ap, fmt);
  source_vlog(s, level, fmt, ap);
  va_end(ap);
}

/* usage_source_log: after a stop, what the scrape still says is of the
 * stop's making (a sign-in cut short...): not logged. */
void usage_source_log(usage_source_t *s, int level, const char *fmt, ...) {
  if (s->stopped)
    return;
  va_list ap;
  va_start(ap, fmt);
  source_vlog(s, level, fmt, ap);
  va_end(ap);
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
  if (s->stopped)
    return; /* a request the stop aborted or never sent: not a failure */
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);

  pthread_mutex_lock(&s->acct);
  if (strcmp(reason, "deadline") == 0 && s->deadline > 0) {
    /* an entity the deadline stopped: the scrape tells it once, at its
     * end (usage_source_read) */
    s->down = 1;
    s->deadline_hit = 1;
    s->left_out++;
    pthread_mutex_unlock(&s->acct);
    return;
  }
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
  if (s->stopped) {
    usage_batch_destroy(b);
    return ECANCELED;
  }
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
  case USAGE_HTTP_REFUSED:
    return "connection_refused";
  case USAGE_HTTP_DROPPED:
    return "connection_dropped";
  case USAGE_HTTP_TRUNCATED:
    return "body_truncated";
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
  case USAGE_HTTP_STOPPED:
    return "stopped"; /* never counted: see usage_source_error */
  case USAGE_HTTP_DEADLINE:
    return "deadline";
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

/* run_attach makes a worker's handle one that a stop cancels (at once
 * when the stop came first); run_detach undoes it. 0 or ENOMEM. */
static int run_attach(usage_source_t *s, usage_http_t *h) {
  pthread_mutex_lock(&s->run_lock);
  usage_http_t **p =
      realloc(s->run_http, (s->run_http_num + 1) * sizeof(*s->run_http));
  if (p == NULL) {
    pthread_mutex_unlock(&s->run_lock);
    return ENOMEM;
  }
  s->run_http = p;
  p[s->run_http_num++] = h;
  if (s->stopped)
    usage_http_cancel(h);
  pthread_mutex_unlock(&s->run_lock);
  return 0;
}

static void run_detach(usage_source_t *s, usage_http_t *h) {
  pthread_mutex_lock(&s->run_lock);
  for (size_t i = 0; i < s->run_http_num; i++)
    if (s->run_http[i] == h) {
      s->run_http[i] = s->run_http[--s->run_http_num];
      break;
    }
  pthread_mutex_unlock(&s->run_lock);
}

static void *run_worker(void *p) {
  run_t *r = p;
  scraping = r->s;
  usage_http_t *http = usage_http_create(&r->s->conf->http);
  if (http != NULL && run_attach(r->s, http) == 0) {
    run_items(r, http);
    run_detach(r->s, http);
  }
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
  usage_batch_add(b, FAM_SOURCE_BACKOFF, usage_source_backoff(s), "kind", kind,
                  NULL);
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

/* scrape_timeout: the scrape's deadline from its start, in seconds. */
static double scrape_timeout(const usage_source_conf_t *c) {
  if (c->scrape_timeout > 0)
    return c->scrape_timeout;
  return c->interval > 0 ? c->interval : 10; /* collectd's default */
}

void usage_source_read(usage_source_t *s) {
  if (s->stopped)
    return;
  usage_source_t *outer = scraping;
  scraping = s;
  double t0 = usage_source_monotonic();
  s->now = usage_now();
  s->down = 0;
  for (size_t i = 0; i < s->throttle_num; i++)
    s->throttle[i].seen = 0;
  pthread_mutex_lock(&s->acct);
  s->timeout = scrape_timeout(s->conf);
  s->deadline = t0 + s->timeout;
  s->deadline_hit = 0;
  s->deadline_cause[0] = 0;
  s->sent = s->answered = s->left_out = 0;
  /* every scrape starts on schedule: the waits of the last one are over */
  s->hold_until = 0;
  pthread_mutex_unlock(&s->acct);

  s->vendor->scrape(s);

  double duration = usage_source_monotonic() - t0;
  scraping = outer;
  pthread_mutex_lock(&s->acct);
  s->deadline = 0;
  int hit = s->deadline_hit;
  unsigned sent = s->sent, answered = s->answered, left_out = s->left_out;
  char cause[sizeof(s->deadline_cause)];
  memcpy(cause, s->deadline_cause, sizeof(cause));
  pthread_mutex_unlock(&s->acct);
  if (s->stopped) {
    source_log_always(s, USAGE_LOG_NOTICE,
                      "stopped %.3f s into a scrape: what it had not "
                      "finished is not published, and is fetched again at "
                      "the next start",
                      duration);
    return;
  }
  if (hit)
    usage_source_error(s, "deadline", 0, "scrape deadline",
                       "the scrape ran out of its deadline (ScrapeTimeout "
                       "%g s) after %.1f s: %u request(s) sent, %u answered, "
                       "%u entit%s left with %s last figures (first: %s)",
                       s->timeout, duration, sent, answered, left_out,
                       left_out == 1 ? "y" : "ies",
                       left_out == 1 ? "its" : "their", cause);
  else
    usage_source_ok(s, "scrape deadline");
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

void usage_source_loop(usage_source_t *s) {
  pthread_mutex_lock(&s->run_lock);
  for (;;) {
    while (!s->run_wanted && !s->stopped)
      pthread_cond_wait(&s->run_cond, &s->run_lock);
    if (s->stopped)
      break;
    s->run_wanted = 0;
    s->run_busy = 1;
    pthread_mutex_unlock(&s->run_lock);
    usage_source_read(s);
    pthread_mutex_lock(&s->run_lock);
    s->run_busy = 0;
    s->run_done++;
    pthread_cond_broadcast(&s->run_cond);
  }
  pthread_mutex_unlock(&s->run_lock);
}

int usage_source_trigger(usage_source_t *s, double wait) {
  pthread_mutex_lock(&s->run_lock);
  if (s->stopped) {
    pthread_mutex_unlock(&s->run_lock);
    return 0;
  }
  /* the scrape that serves this trigger: the next one to start */
  unsigned long target = s->run_done + (s->run_busy ? 2 : 1);
  int late = s->run_busy && !s->run_late;
  int caught_up = !s->run_busy && s->run_late;
  s->run_late = s->run_busy;
  s->run_wanted = 1;
  pthread_cond_broadcast(&s->run_cond);
  struct timespec until = mono_after(wait);
  while (s->run_done < target && !s->stopped &&
         pthread_cond_timedwait(&s->run_cond, &s->run_lock, &until) == 0)
    ;
  int ended = s->run_done >= target;
  pthread_mutex_unlock(&s->run_lock);
  if (late)
    usage_source_log(s, USAGE_LOG_WARNING,
                     "a scrape is still running at its next turn (it takes "
                     "longer than the interval): the next one starts as soon "
                     "as it ends");
  if (caught_up)
    usage_source_log(s, USAGE_LOG_NOTICE,
                     "scrapes end within their interval again");
  return ended;
}

void usage_source_stop(usage_source_t *s) {
  pthread_mutex_lock(&s->run_lock);
  if (!s->stopped) {
    s->stopped = 1;
    if (s->http != NULL)
      usage_http_cancel(s->http);
    if (s->login_http != NULL)
      usage_http_cancel(s->login_http);
    for (size_t i = 0; i < s->run_http_num; i++)
      usage_http_cancel(s->run_http[i]);
    pthread_cond_broadcast(&s->run_cond);
  }
  pthread_mutex_unlock(&s->run_lock);
}

int usage_source_stopped(usage_source_t *s) { return s->stopped; }

void usage_source_login_text(usage_source_t *s, double now, char *out,
                             size_t len) {
  if (len == 0)
    return;
  out[0] = 0;
  if (s->conf->login == NULL)
    return;
  usage_login_state_t *st = &s->login;
  pthread_mutex_lock(&st->lock);
  double left = st->obtained + st->lifetime - now;
  if (st->token != NULL && left > 0 && st->next_attempt > 0)
    snprintf(out, len,
             "signed in, expires in %.0f s (renewal failed, next attempt in "
             "%.0f s)",
             left, fmax(0, st->next_attempt - now));
  else if (st->token != NULL && left > 0)
    snprintf(out, len, "signed in, expires in %.0f s", left);
  else if (st->next_attempt > 0)
    snprintf(out, len, "sign-in failed, next attempt in %.0f s",
             fmax(0, st->next_attempt - now));
  else
    snprintf(out, len, "not signed in");
  pthread_mutex_unlock(&st->lock);
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
