/* SPDX-License-Identifier: MIT */
/* source_impl: the source's private state, shared by source.c (accounting,
 * logging, workers) and source_request.c (requests, politeness, signing
 * in) only. Vendors never include it: they use source.h's functions. */
#ifndef USAGE_SOURCE_IMPL_H
#define USAGE_SOURCE_IMPL_H 1

#include "login.h"
#include "source.h"

#include <pthread.h>
#include <stdint.h>

/* The source at run time. */
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
  /* monotonic: no request starts before; a second after the answer to a
   * request that may have reached the server late (politeness_done) */
  double polite_until;

  /* the deadline of the scrape under way and how far it got (acct) */
  double deadline;   /* monotonic; 0 = none (outside usage_source_read) */
  double timeout;    /* the scrape's ScrapeTimeout, seconds */
  int deadline_hit;  /* a request was cut short or not sent for it */
  unsigned sent;     /* requests sent in this scrape */
  unsigned answered; /* of them, answered */
  unsigned left_out; /* entities that failed for the deadline */
  char deadline_cause[160]; /* the first request it stopped, and how */

  /* backoff of the data requests (acct): hold_until (monotonic) is when
   * the source's next request may start, after a failure (our backoff) or
   * a Retry-After (the server's); both end with the scrape */
  double hold_until;
  double backoff;     /* the current delay, seconds; 0 = healthy */
  double backoff_set; /* monotonic: when it was last raised */
  unsigned backoff_step;
  uint64_t rng; /* jitter */

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

  /* scrapes on the source's own thread (usage_source_loop) and stopping
   * them (usage_source_stop); under run_lock, run_cond on the monotonic
   * clock signals every change */
  pthread_mutex_t run_lock;
  pthread_cond_t run_cond;
  int run_wanted;          /* usage_source_trigger asked for a scrape */
  int run_busy;            /* a scrape is under way */
  unsigned long run_done;  /* scrapes ended */
  int run_late;            /* a trigger found the last scrape still busy */
  usage_http_t **run_http; /* the handles in use, cancelled by a stop */
  size_t run_http_num;
  _Atomic int stopped;
};

/* usage_source_monotonic: a monotonic clock in seconds;
 * usage_source_sleep: sleep that long (restarted after signals), or less:
 * a stop of the source whose scrape runs on the calling thread (see
 * usage_source_read) ends the sleep at once. */
double usage_source_monotonic(void);
void usage_source_sleep(double seconds);

#endif
