/* SPDX-License-Identifier: MIT */
/* source: one configured source block at run time, and what every vendor
 * shares while scraping it: upstream requests with politeness limits and
 * retries, accounting (requests by code, errors by reason, up, duration,
 * last success), throttled error logging, and committing entities through
 * a sink. No collectd types: the glue provides the sink. */
#ifndef USAGE_SOURCE_H
#define USAGE_SOURCE_H 1

#include "http.h"
#include "store.h"

#include <pthread.h>
#include <stdint.h>

/* Log levels, the syslog values collectd uses. */
#define USAGE_LOG_ERR 3
#define USAGE_LOG_WARNING 4
#define USAGE_LOG_NOTICE 5
#define USAGE_LOG_INFO 6

typedef enum {
  USAGE_KIND_CCC = 0,
  USAGE_KIND_BILLING,
  USAGE_KIND_JASPER,
  USAGE_KIND_COUNT
} usage_kind_t;

/* usage_kind_name: the `kind` label value ("ccc"); usage_kind_block: the
 * configuration block's name ("CCC"), which log lines use. */
const char *usage_kind_name(usage_kind_t kind);
const char *usage_kind_block(usage_kind_t kind);

/* Where a source's figures and log lines go. */
typedef struct {
  void (*log)(void *ud, int level, const char *msg);
  /* commit takes ownership of the batch in every case; 0 or an errno */
  int (*commit)(void *ud, usage_batch_t *b);
  void *ud;
} usage_sink_t;

typedef struct usage_source_conf_s {
  char *name; /* the block's instance name, the `source` label */
  usage_kind_t kind;
  usage_http_conf_t http;
  double interval;         /* seconds; 0 = collectd's Interval */
  double scrape_timeout;   /* ScrapeTimeout, seconds; 0 = the Interval */
  double max_rps;          /* requests per second; 0 = unlimited */
  int max_concurrent;      /* requests in flight */
  void *kind_conf;         /* the vendor's own options */
  unsigned shard;          /* Shard N of the block; 0 = by the name's hash */
  char *account;           /* Account: blocks that share one vendor budget */
  unsigned account_blocks; /* blocks sharing the budget (shard.c) */
  unsigned account_index;  /* this block's turn among them, 0-based */
  double account_rps;      /* the account's limit; 0 = none */
  const char *state_file;  /* the vendor's StateFile (in kind_conf) or NULL */
  struct usage_login_conf_s *login; /* <Login>, or NULL (login.h) */
  int meta_data; /* DispatchMetaData: labels as collectd meta data */
} usage_source_conf_t;

typedef struct usage_source_s usage_source_t;

/* A vendor: what a source block of one kind does. */
typedef struct {
  usage_kind_t kind;
  void *(*conf_create)(void);
  void (*conf_destroy)(void *kind_conf);
  /* init creates the vendor's run-time state (s->state); 0 or an errno */
  int (*init)(usage_source_t *s);
  /* scrape requests, parses and commits; failures go through
   * usage_source_error, so it returns nothing */
  void (*scrape)(usage_source_t *s);
  void (*shutdown)(usage_source_t *s);
  /* the kind's own error reasons, published at 0 from the start; NULL or
   * NULL-terminated */
  const char *const *reasons;
  /* dispatched tells whether the samples of family fam go to collectd as
   * well as to the exporter (exporter: the plugin has an <Exporter>
   * block); NULL: every family does */
  int (*dispatched)(const usage_source_conf_t *c, int fam, int exporter);
} usage_vendor_t;

const usage_vendor_t *usage_vendor(usage_kind_t kind);

/* What the landing page shows of a source. */
typedef struct {
  double last_scrape; /* start of the last scrape, Unix seconds; 0 = none */
  double last_duration;
  double last_success; /* 0 = never */
  int up;
  char last_error[768];
} usage_source_status_t;

/* Accessors. usage_source_conf: the block's configuration (read-only);
 * usage_source_state: the vendor's run-time state, set by its init;
 * usage_source_now: when the scrape under way started (Unix seconds);
 * usage_source_sink_ud: the sink's user data. */
const usage_source_conf_t *usage_source_conf(const usage_source_t *s);
const char *usage_source_name(const usage_source_t *s);
void *usage_source_state(const usage_source_t *s);
void usage_source_set_state(usage_source_t *s, void *state);
double usage_source_now(const usage_source_t *s);
void *usage_source_sink_ud(const usage_source_t *s);
/* usage_source_count adds n to the error counter of reason, without
 * logging or marking the scrape failed (usage_source_error does that for
 * the first); usage_source_reason_count reads it (UINT64_MAX: a reason
 * never published). Thread-safe. */
void usage_source_count(usage_source_t *s, const char *reason, uint64_t n);
uint64_t usage_source_reason_count(usage_source_t *s, const char *reason);

/* usage_source_create takes ownership of conf. NULL on ENOMEM or when the
 * vendor's init fails (the cause is logged through sink). */
usage_source_t *usage_source_create(usage_source_conf_t *conf,
                                    const usage_sink_t *sink);
void usage_source_destroy(usage_source_t *s); /* accepts NULL */
void usage_source_conf_free(usage_source_conf_t *conf);

/* usage_source_read runs one scrape of the source, within its deadline
 * (ScrapeTimeout from the start), and commits the source's own figures (up,
 * duration, requests, errors, backoff). */
void usage_source_read(usage_source_t *s);

/* Scrapes on a thread of the source's own, so that a stop does not wait
 * for a scrape to end. usage_source_loop is that thread's body: it runs
 * the scrapes usage_source_trigger asks for, one at a time, until
 * usage_source_stop. usage_source_trigger asks for a scrape and waits until
 * it has ended, `wait` seconds at most: 1 when it ended in time, 0 when it
 * still runs (or the source is stopped). A trigger while a scrape runs
 * makes one more start right after it: never two at once, never more than
 * one waiting; the first such trigger in a row is logged as a warning. */
void usage_source_loop(usage_source_t *s);
int usage_source_trigger(usage_source_t *s, double wait);

/* usage_source_stop stops the source for good, from any thread, at once:
 * usage_source_loop returns, and the scrape under way ends as soon as it
 * can: its requests in flight are aborted, its sleeps (request spacing,
 * Retry-After) end, its later requests fail without being sent. From then
 * on the source publishes nothing: commits are dropped, failures are
 * neither counted nor logged, the scrape's own figures are not committed.
 * What a vendor writes to its StateFile before publishing stays written
 * (it is published at the next start). Join the thread of the loop before
 * usage_source_destroy. usage_source_stopped: whether it was called. */
void usage_source_stop(usage_source_t *s);
int usage_source_stopped(usage_source_t *s);

/* usage_source_get performs GET conf->url + path_query under the source's
 * politeness limits and within the deadline of the scrape under way
 * (ScrapeTimeout): a 5xx answer, a timeout or a transport error is retried
 * (at most USAGE_RETRY_MAX times) after an exponential backoff with jitter
 * that the source's other requests wait for too, or after the answer's
 * Retry-After (also on a 429); a wait that would end past the deadline is
 * not taken. Every HTTP answer is counted by code. Returns 0 when an answer
 * arrived (any status: check resp->status), or the error class:
 * USAGE_HTTP_DEADLINE when the deadline came first (the request was not
 * sent, or its answer did not arrive in time; reason "deadline", counted
 * once per scrape by usage_source_read). */
int usage_source_get(usage_source_t *s, const char *path_query,
                     usage_http_resp_t *resp);

/* usage_source_request_spacing: seconds between the starts of two requests
 * under MaxRequestsPerSecond, a safety margin included (0 = no limit). */
double usage_source_request_spacing(const usage_source_t *s);

/* usage_source_get_with is usage_source_get on another handle (a worker's
 * of usage_source_run). */
int usage_source_get_with(usage_source_t *s, usage_http_t *http,
                          const char *path_query, usage_http_resp_t *resp);

/* usage_source_run calls fn(ctx, i, http) for i in [0, n) on up to
 * MaxConcurrentRequests threads, each with its own connection (http); the
 * calling thread is one of them. fn may call the usage_source_* functions
 * (they are thread-safe) but must not use the source's own handle. */
void usage_source_run(usage_source_t *s, size_t n,
                      void (*fn)(void *ctx, size_t i, usage_http_t *http),
                      void *ctx);

/* usage_source_error records a failed or refused entity: it counts reason,
 * marks the scrape as failed unless `refusal` (a documented refusal keeps
 * the source up), and logs the message once, then with growing pauses while
 * the same key keeps failing. The message must not hold credentials. */
void usage_source_error(usage_source_t *s, const char *reason, int refusal,
                        const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* usage_source_ok tells that the entity `key` succeeded again (logs the
 * recovery of a key that had failed). */
void usage_source_ok(usage_source_t *s, const char *key);
void usage_source_log(usage_source_t *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* usage_source_login_text: what the status page shows of a block's
 * <Login> at Unix time now: "signed in, expires in N s", "sign-in failed,
 * next attempt in N s" or "not signed in"; "" without <Login>. Never the
 * token. */
void usage_source_login_text(usage_source_t *s, double now, char *out,
                             size_t len);

/* usage_source_batch starts a batch for one entity of this source. */
usage_batch_t *usage_source_batch(usage_source_t *s, const char *entity);
/* usage_source_commit hands a finished batch to the sink (ownership too). */
int usage_source_commit(usage_source_t *s, usage_batch_t *b);

/* usage_source_http_reason maps a failed request to an error reason. */
const char *usage_source_http_reason(int err, long status);

void usage_source_get_status(usage_source_t *s, usage_source_status_t *out);

/* usage_now: wall-clock time in seconds. Tests may replace it. */
extern double (*usage_now)(void);

/* usage_backoff_base: the first backoff delay after a failed data request,
 * in seconds (1; it doubles with each failure in a row, up to
 * USAGE_BACKOFF_MAX). Tests may make it shorter. */
extern double usage_backoff_base;
#define USAGE_BACKOFF_MAX 60.0
#define USAGE_RETRY_MAX 2

/* usage_source_backoff: the source's current backoff delay in seconds
 * (usage_source_backoff_seconds; 0 when its last data request succeeded). */
double usage_source_backoff(usage_source_t *s);

#endif
