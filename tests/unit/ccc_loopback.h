/* SPDX-License-Identifier: MIT */
/* ccc_loopback: the loopback server, fake sink and source factory that the
 * CCC scrape tests (test_ccc_paging.c, test_ccc_state.c) share. Test code:
 * the globals below are the server's and the sink's state, read and set by
 * the tests between scrapes. Include after <cmocka.h>. */
#ifndef USAGE_CCC_LOOPBACK_H
#define USAGE_CCC_LOOPBACK_H 1

#include "api/ccc/ccc.h"
#include "source.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define SVC "2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a"
#define SVC2 "7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1"
#define USR "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
#define RESELLER "11112222333344445555666677778888"
#define TOKEN "tok-SECRET-changes"

/* The ServiceStatus names in the API's order. */
#define NSTATES 8
extern const char *const states[NSTATES];

/* The server: /api/services/SVC/serviceusage answers a good body;
 * /api/services/status answers pages[Page-1], or `beyond` past the last
 * one, or pages[0] for every Page when `repeat`; the user usage of
 * (SVC, USR) answers user_body with user_status. status_hits counts the
 * status requests, queries[] holds the first 16 of them, decoded. */
extern const char *service_text; /* the service usage body; NULL: good */
extern char page_buf[8][16384];
extern const char *pages[8];
extern size_t pages_num;
extern const char *beyond;
extern int repeat;
extern const char *user_body;
extern unsigned user_status;
extern unsigned status_hits;
extern char queries[16][512];

/* server_start resets the above and serves on a port of its choosing;
 * server_stop stops it. */
void server_start(void);
void server_stop(void);

/* page_set fills pages[slot] with items [first, first + count): change GUID
 * from the number (dashed when `dashed`), status states[n % 8], ChangedOn
 * items_base + 60 n. total_pages < 0 leaves the paging fields out. */
extern double items_base;
void page_set(size_t slot, int first, int count, int page_size, int total_pages,
              int dashed);
/* expect_counts adds the states of items [first, first + count). */
void expect_counts(uint64_t want[NSTATES], int first, int count);

/* The fake sink: every batch goes to `store`; log lines ("LEVEL text\n")
 * to log_text; the last "changes" batch of SVC is kept (changes_commits,
 * changes_samples, last_change_ts, -1 = absent) and status_on is the state
 * set to 1 by "status:SVC". sink_reset forgets the log and the batches. */
extern usage_store_t *store;
extern char log_text[65536];
extern size_t log_len;
extern unsigned changes_commits;
extern size_t changes_samples;
extern double last_change_ts;
extern char status_on[32];
void sink_reset(void);

/* usage_now of the tests: fake_time. */
extern double fake_time;

/* make_source: a CCC source "acme" on the server with StatusChanges true,
 * one service SVC (with user USR when `user`) or a reseller-wide query. */
typedef struct {
  int page_size, max_pages; /* 0 = default */
  double overlap;           /* < 0 = default */
  const char *state_file;
  const char *reseller;
  int user; /* one UserGuid under the service */
} opts_t;
usage_source_t *make_source(const opts_t *o);

/* errors_of: usage_scrape_errors_total of reason in the store (-1 = no such
 * series); source_up: usage_source_up. check_counts fails the test unless
 * SVC's counters in the last "changes" batch and in the store are want. */
double errors_of(const char *reason);
int source_up(void);
void check_counts(const char *name, const uint64_t want[NSTATES]);

/* setup and teardown of the test group: usage_now = fake time, a fresh
 * store and sink. */
int setup(void **state);
int teardown(void **state);

#endif
