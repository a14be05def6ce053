/* SPDX-License-Identifier: MIT */
/* source_request: every upstream request of a source: politeness (request
 * spacing, per-account turns across shards and replicas, late wake-ups),
 * Retry-After, counting answers by code, and signing in with <Login>
 * (token refresh, one retry after a 401, backoff). */
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
    double wall = wallclock(), mono = usage_source_monotonic();
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
    usage_source_sleep(start - wall);
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
    double t = usage_source_monotonic();
    double slot = fmax(t, s->next_request);
    s->next_request = slot + spacing;
    pthread_mutex_unlock(&s->acct);
    usage_source_sleep(slot - t);
    /* Woken too late, the start would come too close to the next one's:
     * the vendor counts starts as they arrive, so take the next slot. */
    double late = usage_source_monotonic() - slot;
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
      double until = usage_source_monotonic() + (double)resp->retry_after;
      pthread_mutex_lock(&s->acct);
      if (s->next_request < until)
        s->next_request = until;
      pthread_mutex_unlock(&s->acct);
      if (s->conf->max_rps <= 0)
        usage_source_sleep((double)resp->retry_after);
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
