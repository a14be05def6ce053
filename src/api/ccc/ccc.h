/* SPDX-License-Identifier: MIT */
/* ccc: the CCC secure-messaging API v8.4 (GetServiceUsage, GetServiceUserUsage,
 * SearchServiceStatusChanges): the vendor's options, its parsers into samples,
 * the incremental status-change stream and its state, and the vendor entry.
 * Implemented by the files of src/api/ccc/. */
#ifndef USAGE_API_CCC_H
#define USAGE_API_CCC_H 1

#include "buf.h"
#include "source.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char guid[33]; /* 32 lowercase hex digits */
  char (*users)[33];
  size_t users_num;
} usage_ccc_service_t;

#define USAGE_CCC_DEFAULT_LOOKBACK 2592000.0 /* 30 days */
#define USAGE_CCC_DEFAULT_OVERLAP 300.0
#define USAGE_CCC_DEFAULT_PAGE_SIZE 100
#define USAGE_CCC_DEFAULT_MAX_PAGES 1000

typedef struct {
  usage_ccc_service_t *services;
  size_t services_num;
  int monthly;             /* PeriodType Monthly (default Daily) */
  char *period;            /* Period pinned (yyyy-MM-dd), NULL = server's */
  int export_user_details; /* email, first_name, last_name on user_info */
  int status_changes;      /* StatusChanges */
  double lookback;         /* StatusChangesLookback, seconds */
  double overlap;          /* StatusChangesOverlap, seconds */
  int page_size;           /* StatusChangesPageSize */
  int max_pages;           /* StatusChangesMaxPages */
  char *reseller, *partner, *changed_by_user, *changed_by_email; /* filters */
  char *state_file;                                              /* StateFile */
} usage_ccc_conf_t;

extern const usage_vendor_t usage_ccc_vendor;

/* usage_ccc_guid_normalize accepts a GUID with or without dashes and braces, in
 * any case, and writes 32 lowercase hex digits to out. 0 or EINVAL. */
int usage_ccc_guid_normalize(const char *in, char out[33]);

/* What a parser tells besides its samples. */
typedef struct {
  char error[256]; /* why the body was rejected (then nothing is added) */
  unsigned bad_fields;
  char bad_field[160]; /* the first bad field, e.g. "totalUserCount: wrong type"
                        */
} usage_parse_result_t;

/* usage_ccc_parse_service_usage parses a GetServiceUsage body and adds the
 * usage_ccc_service_* samples of `service` to b. A field of the wrong type
 * or out of range is left out and counted in res->bad_fields. 0, or EINVAL
 * (body unusable, res->error says why; b is then unchanged in its meaning:
 * the caller discards it). */
int usage_ccc_parse_service_usage(const char *body, size_t len,
                                  const char *service, usage_batch_t *b,
                                  usage_parse_result_t *res);

/* usage_ccc_add_status adds the 0/1 usage_ccc_service_status set of a
 * service, `status` being the API's name (or its number as text). */
int usage_ccc_add_status(usage_batch_t *b, const char *service,
                         const char *status);

/* usage_ccc_parse_user_usage parses a GetServiceUserUsage body and adds the
 * usage_ccc_user_* samples of (service, user). period_type ("Daily" or
 * "Monthly") labels the figures when the body does not say. Personal
 * fields go on usage_ccc_user_info only with details. 0 or EINVAL. */
int usage_ccc_parse_user_usage(const char *body, size_t len,
                               const char *service, const char *user,
                               const char *period_type, int details,
                               usage_batch_t *b, usage_parse_result_t *res);

/* One SearchServiceStatusChanges result. */
typedef struct {
  char service[33];
  char change[33]; /* ServiceStatusChangeGuid */
  char status[32];
  double changed_on;
} usage_ccc_change_t;

typedef struct {
  usage_ccc_change_t *items;
  size_t num;
  long page_size, total_pages, total_items, current_page; /* -1 = absent */
} usage_ccc_changes_page_t;

/* usage_ccc_parse_changes_page parses one page. Results without a change
 * GUID, service or date are left out and counted in res->bad_fields. 0 or
 * EINVAL; clear the page with usage_ccc_changes_page_clear either way. */
int usage_ccc_parse_changes_page(const char *body, size_t len,
                                 usage_ccc_changes_page_t *page,
                                 usage_parse_result_t *res);
void usage_ccc_changes_page_clear(usage_ccc_changes_page_t *page);

/* The status-change stream of one query (one service, or a reseller- or
 * partner-wide query): watermark and the GUIDs seen near it. */
typedef struct {
  char change[33];
  double changed_on;
} usage_ccc_seen_t;

typedef struct {
  char key[40];     /* service GUID, or "all" */
  double watermark; /* newest ChangedOn counted; 0 = none yet */
  usage_ccc_seen_t *seen;
  size_t seen_num;
} usage_ccc_stream_t;

typedef struct {
  char service[33];
  char status[32];
  uint64_t count;
} usage_ccc_count_t;

typedef struct {
  char service[33];
  double changed_on; /* newest change of the service */
  char status[32];
} usage_ccc_last_t;

/* Everything a StateFile keeps. */
typedef struct {
  usage_ccc_stream_t *streams;
  size_t streams_num;
  usage_ccc_count_t *counts;
  size_t counts_num;
  usage_ccc_last_t *lasts;
  size_t lasts_num;
} usage_ccc_changes_t;

void usage_ccc_changes_clear(usage_ccc_changes_t *c);
usage_ccc_stream_t *usage_ccc_stream(usage_ccc_changes_t *c, const char *key);
/* usage_ccc_changes_merge counts the changes of a completed page set into c
 * exactly once: a change GUID already seen in the stream is skipped. Then
 * moves the watermark to the newest ChangedOn, but never past now (the
 * scrape's start: a change dated in the future is counted once and kept in
 * the seen set instead), and forgets GUIDs older than watermark - overlap.
 * Returns how many changes were new; ENOMEM leaves c as it was. */
int usage_ccc_changes_merge(usage_ccc_changes_t *c, const char *key,
                            const usage_ccc_change_t *items, size_t num,
                            double overlap, double now, size_t *added);
/* usage_ccc_changes_copy makes dst a deep copy of src (dst is overwritten,
 * free it with usage_ccc_changes_clear). 0 or ENOMEM (dst empty then). */
int usage_ccc_changes_copy(usage_ccc_changes_t *dst,
                           const usage_ccc_changes_t *src);
/* usage_ccc_changes_add_samples adds usage_ccc_status_changes_total and
 * usage_ccc_service_last_status_change_timestamp_seconds for every service
 * known (all 8 states, zero included) to b. */
int usage_ccc_changes_add_samples(const usage_ccc_changes_t *c,
                                  usage_batch_t *b);
/* Serialise to / parse from the StateFile body. Parsing is strict: EINVAL
 * on any malformed line (c is then empty). */
int usage_ccc_changes_format(const usage_ccc_changes_t *c, usage_buf_t *out);
int usage_ccc_changes_parse(const char *data, size_t len,
                            usage_ccc_changes_t *c);

/* usage_ccc_api_error extracts responseStatus.errorCode and .message from an
 * error body (never the stack trace). Empty strings when absent. */
void usage_ccc_api_error(const char *body, size_t len, char *code,
                         size_t code_size, char *message, size_t msg_size);

#endif
