/* SPDX-License-Identifier: MIT */
/* source_request: every upstream request of a source: politeness (request
 * spacing, per-account turns across shards and replicas, late wake-ups),
 * the scrape's deadline (ScrapeTimeout), retries after a backoff with
 * jitter or the server's Retry-After, counting answers by code, and
 * signing in with <Login> (token refresh, one retry after a 401,
 * backoff). */
#include "families.h"
#include "login.h"
#include "source.h"
#include "source_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* The scrape's deadline: a request needs at least DEADLINE_MIN seconds
 * left to be sent. */
#define DEADLINE_MIN 0.01

double usage_backoff_base = 1.0;

/* time_left: seconds before the deadline of the scrape under way (+inf
 * outside a scrape). */
static double time_left(const usage_source_t *s) {
  return s->deadline > 0 ? s->deadline - usage_source_monotonic() : INFINITY;
}

/* past_deadline: whether a wait until monotonic time t would end too late
 * to send a request after it. */
static int past_deadline(const usage_source_t *s, double t) {
  return s->deadline > 0 && t > s->deadline - DEADLINE_MIN;
}

/* deadline_fail fills resp for a request that the deadline stopped
 * (`what` says how) and marks the scrape. Returns USAGE_HTTP_DEADLINE. */
static int deadline_fail(usage_source_t *s, usage_http_resp_t *resp,
                         const char *what) {
  memset(resp, 0, sizeof(*resp));
  resp->body = "";
  resp->retry_after = -1;
  resp->err = USAGE_HTTP_DEADLINE;
  snprintf(resp->error, sizeof(resp->error),
           "%s before the scrape's deadline (ScrapeTimeout %g s)", what,
           s->timeout);
  pthread_mutex_lock(&s->acct);
  if (!s->deadline_hit)
    snprintf(s->deadline_cause, sizeof(s->deadline_cause), "%s", what);
  s->deadline_hit = 1;
  pthread_mutex_unlock(&s->acct);
  return USAGE_HTTP_DEADLINE;
}

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

/* Where a request spends its time after its turn (connecting, the
 * server's scheduling on a busy machine) is out of the wait's sight: the
 * server may count it later than its turn. Turns POLITENESS_MARGIN / limit
 * apart leave room for POLITENESS_MARGIN - 1 s of that (limit + 1 turns
 * span POLITENESS_MARGIN s), and less than one turn. A request whose
 * answer began later than that after its turn may have been counted late:
 * the source's next request then starts a second after that answer began
 * (politeness_done), so the late one shares no second with it, and the
 * turns of the other blocks of its account fill no more than the limit. */
static double late_allowance(double slot_len) {
  return fmin(POLITENESS_MARGIN - 1.0, 0.9 * slot_len);
}

/* politeness_len: the length of this source's turn, 0 without a limit. */
static double politeness_len(const usage_source_t *s) {
  if (s->conf->account_blocks > 1 && s->conf->account_rps > 0)
    return POLITENESS_MARGIN / s->conf->account_rps;
  return usage_source_request_spacing(s);
}

/* politeness_done: the request whose turn began at monotonic time `turn`
 * (< 0: none) ended now with resp. */
static void politeness_done(usage_source_t *s, double turn,
                            const usage_http_resp_t *resp) {
  double len = politeness_len(s);
  if (turn < 0 || len <= 0)
    return;
  double now = usage_source_monotonic();
  /* the server had the request when its answer began, at the latest */
  double reached = now - fmax(0, resp->after_first_byte);
  if (reached - turn <= late_allowance(len))
    return;
  pthread_mutex_lock(&s->acct);
  if (s->polite_until < reached + 1.0)
    s->polite_until = reached + 1.0;
  pthread_mutex_unlock(&s->acct);
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
static int slot_wait(usage_source_t *s, double *turn) {
  const usage_source_conf_t *c = s->conf;
  double len = POLITENESS_MARGIN / c->account_rps;
  for (int tries = 0;; tries++) {
    pthread_mutex_lock(&s->acct);
    double wall = wallclock(), mono = usage_source_monotonic();
    double from =
        fmax(fmax(wall, s->next_slot), wall + (s->polite_until - mono));
    double m = floor(from / len);
    if (m * len < from)
      m += 1;
    long long r = (long long)fmod(m, (double)c->account_blocks);
    m += (double)(((long long)c->account_index - r + c->account_blocks) %
                  c->account_blocks);
    double start = m * len;
    if (past_deadline(s, mono + (start - wall))) {
      pthread_mutex_unlock(&s->acct); /* the turn stays free */
      return -1;
    }
    s->next_slot = start + len * c->account_blocks;
    pthread_mutex_unlock(&s->acct);
    usage_source_sleep(start - wall);
    *turn = mono + (start - wall);
    /* Woken too late (a busy machine), the request would crowd the next
     * block's turn: take a later turn instead. */
    if (!too_late(wallclock() - start, len) || tries >= LATE_TRIES)
      return 0;
  }
}

/* politeness_wait waits for the request's turn; -1 (without waiting) when
 * the turn comes too late for the scrape's deadline. */
static int politeness_wait(usage_source_t *s, double *turn) {
  *turn = -1;
  if (s->conf->account_blocks > 1 && s->conf->account_rps > 0)
    return slot_wait(s, turn);
  if (s->conf->max_rps <= 0)
    return 0;
  double spacing = usage_source_request_spacing(s);
  for (int tries = 0;; tries++) {
    pthread_mutex_lock(&s->acct);
    double t = usage_source_monotonic();
    double slot = fmax(fmax(t, s->next_request), s->polite_until);
    if (past_deadline(s, slot)) {
      pthread_mutex_unlock(&s->acct);
      return -1;
    }
    s->next_request = slot + spacing;
    pthread_mutex_unlock(&s->acct);
    usage_source_sleep(slot - t);
    *turn = slot;
    /* Woken too late, the start would come too close to the next one's:
     * the vendor counts starts as they arrive, so take the next slot. */
    double late = usage_source_monotonic() - slot;
    if (!too_late(late, spacing) || tries >= LATE_TRIES)
      return 0;
  }
}

/* hold_wait waits until the source's backoff or the server's Retry-After
 * is over; -1 (without waiting) when that is too late for the deadline. */
static int hold_wait(usage_source_t *s) {
  pthread_mutex_lock(&s->acct);
  double until = s->hold_until;
  pthread_mutex_unlock(&s->acct);
  double t = usage_source_monotonic();
  if (until <= t)
    return 0;
  if (past_deadline(s, until))
    return -1;
  usage_source_sleep(until - t);
  return 0;
}

/* jitter: a number in [0, 1) (xorshift64*; under s->acct). */
static double jitter(usage_source_t *s) {
  uint64_t x = s->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s->rng = x;
  return (double)((x * UINT64_C(2685821657736338717)) >> 11) /
         9007199254740992.0;
}

/* backoff_raise: a data request sent at monotonic time `sent` failed (5xx,
 * timeout, transport): the source's next requests wait an exponential
 * backoff with equal jitter, base * 2^n (capped) halved plus a random part
 * of the other half, or the server's Retry-After (retry_after >= 0) in its
 * place. A failure of a request sent before the last raise (a concurrent
 * worker's) waits for the same backoff without raising it again. Returns
 * the seconds left to wait. */
static double backoff_raise(usage_source_t *s, double sent, long retry_after) {
  pthread_mutex_lock(&s->acct);
  double t = usage_source_monotonic();
  if (s->backoff_step == 0 || sent >= s->backoff_set || retry_after >= 0) {
    double d = fmin(USAGE_BACKOFF_MAX,
                    usage_backoff_base * ldexp(1.0, (int)s->backoff_step));
    double delay = d / 2 + jitter(s) * d / 2;
    if (d < USAGE_BACKOFF_MAX)
      s->backoff_step++;
    if (retry_after >= 0) { /* the server's word wins */
      delay = (double)retry_after;
      s->hold_until = t + delay;
    } else if (s->hold_until < t + delay) {
      s->hold_until = t + delay;
    }
    s->backoff = delay;
    s->backoff_set = t;
  }
  double wait = fmax(0, s->hold_until - t);
  pthread_mutex_unlock(&s->acct);
  return wait;
}

/* backoff_reset: a data request was answered (not 5xx, not 429). */
static void backoff_reset(usage_source_t *s) {
  pthread_mutex_lock(&s->acct);
  s->backoff = 0;
  s->backoff_step = 0;
  pthread_mutex_unlock(&s->acct);
}

double usage_source_backoff(usage_source_t *s) {
  pthread_mutex_lock(&s->acct);
  double b = s->backoff;
  pthread_mutex_unlock(&s->acct);
  return b;
}

/* request_timeout: the curl timeout of a request sent now, in ms: Timeout,
 * or the time left before the deadline when that is shorter (*clipped). */
static long request_timeout(const usage_source_t *s, double left,
                            int *clipped) {
  long t = s->conf->http.timeout_ms;
  *clipped = 0;
  if (isfinite(left) && (t <= 0 || left * 1000 < (double)t)) {
    t = (long)ceil(left * 1000);
    if (t < 1)
      t = 1;
    *clipped = 1;
  }
  return t;
}

static int get_polite(usage_source_t *s, usage_http_t *http,
                      const char *path_query, const char *header,
                      usage_http_resp_t *resp) {
  usage_http_req_t req = {.path_query = path_query, .header = header};
  for (int attempt = 0;; attempt++) {
    if (hold_wait(s) != 0)
      return deadline_fail(s, resp,
                           attempt > 0 ? "not retried: the retry would come "
                                         "too late"
                                       : "not sent: the source's backoff "
                                         "or the server's Retry-After ends "
                                         "too late");
    double turn;
    if (politeness_wait(s, &turn) != 0)
      return deadline_fail(s, resp,
                           "not sent: the request's turn "
                           "(MaxRequestsPerSecond) comes too late");
    double left = time_left(s);
    if (left < DEADLINE_MIN)
      return deadline_fail(s, resp, "not sent: no time left");
    int clipped;
    req.timeout_ms = request_timeout(s, left, &clipped);
    double sent = usage_source_monotonic();
    pthread_mutex_lock(&s->acct);
    s->sent++;
    pthread_mutex_unlock(&s->acct);
    int rc = usage_http_request(http, &req, resp);
    politeness_done(s, turn, resp);
    if (rc == USAGE_HTTP_TIMEOUT && clipped)
      return deadline_fail(s, resp, "no answer");
    long status = rc == 0 ? resp->status : 0;
    if (rc == 0) {
      pthread_mutex_lock(&s->acct);
      count_code(s, status);
      s->answered++;
      pthread_mutex_unlock(&s->acct);
    }
    int failed =
        rc == USAGE_HTTP_TIMEOUT || rc == USAGE_HTTP_CONNECT || status >= 500;
    if (rc == 0 && !failed && status != 429) {
      backoff_reset(s);
      return 0;
    }
    long retry_after = rc == 0 ? resp->retry_after : -1;
    double wait = -1;
    if (failed) {
      wait = backoff_raise(s, sent, retry_after);
    } else if (retry_after >= 0) {
      /* a 429's Retry-After holds the source's next requests too */
      wait = (double)retry_after;
      double until = usage_source_monotonic() + wait;
      pthread_mutex_lock(&s->acct);
      if (s->hold_until < until)
        s->hold_until = until;
      pthread_mutex_unlock(&s->acct);
    }
    /* not retried: other answers, the last attempt, and a wait that would
     * end past the deadline (the answer in hand is the scrape's) */
    if (wait < 0 || attempt >= USAGE_RETRY_MAX ||
        past_deadline(s, usage_source_monotonic() + wait))
      return rc;
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
  /* the deadline stops a sign-in without counting it as failed */
  double left = time_left(s), turn;
  if (politeness_wait(s, &turn) != 0 || left < DEADLINE_MIN) {
    usage_login_req_free(&lreq);
    return deadline_fail(s, resp, "sign-in not started: no time left");
  }
  left = time_left(s);
  int clipped;
  usage_http_req_t req = {.method = c->method,
                          .url = c->url,
                          .body = usage_buf_str(&lreq.body),
                          .body_len = usage_buf_len(&lreq.body),
                          .content_type = lreq.content_type,
                          .header = lreq.auth_header,
                          .no_conf_auth = 1,
                          .capture = c->token_header,
                          .timeout_ms = request_timeout(s, left, &clipped)};
  int hrc = usage_http_request(s->login_http, &req, resp);
  politeness_done(s, turn, resp);
  if (hrc == USAGE_HTTP_TIMEOUT && clipped) {
    usage_login_req_free(&lreq);
    return deadline_fail(s, resp, "no answer to the sign-in");
  }
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
 * with wipe_header), signing in first when there is no token or it is past
 * USAGE_LOGIN_REFRESH of its lifetime. force: the token of generation *gen
 * was refused; unless somebody has renewed it since, it is dropped and a
 * new one is needed. A token renewed by another worker meanwhile is used
 * only while it is fresh: one that was renewed while this request waited
 * for its answer may be as old as the refused one. Workers wait on the
 * lock while one of them signs in. */
static int login_header(usage_source_t *s, int force, unsigned *gen,
                        char **header, usage_http_resp_t *resp) {
  usage_login_state_t *st = &s->login;
  int rc = 0;
  *header = NULL;
  pthread_mutex_lock(&st->lock);
  double now = usage_now();
  if (force && st->token != NULL && st->generation == *gen) {
    /* the server refused it: never send it again */
    explicit_bzero(st->token, strlen(st->token));
    free(st->token);
    st->token = NULL;
  }
  int need = !usage_login_fresh(st, now);
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
    if (rc != USAGE_HTTP_DEADLINE)
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
