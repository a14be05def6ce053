/* SPDX-License-Identifier: MIT */
/* billing: the telecom billing platform's customer usage data
 * (GET {URL}/customer-usage-data): request building (query.c), a streaming
 * (no tree) record parser (parse.c) that aggregates into per-group counters
 * with exactly-once counting over an event-date window (window.c), the
 * state that survives a restart (state.c), and the vendor's scrape
 * (scrape.c). Everything but the scrape is pure C without I/O, so the unit
 * tests and the benchmark drive it directly. */
#ifndef USAGE_API_BILLING_BILLING_H
#define USAGE_API_BILLING_BILLING_H 1

#include "buf.h"
#include "source.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define USAGE_BILLING_MAX_GROUPBY USAGE_MAX_LABELS

typedef struct {
  unsigned page_size;   /* 1..1000, default 1000 */
  unsigned max_pages;   /* pages per scrape, default 10000 */
  char **filter_names;  /* canonical API names */
  char **filter_values; /* as configured (escaped when sent) */
  size_t filters_num;
  int exclude_zero;                          /* ExcludeZeroValueRecords */
  char *group_by[USAGE_BILLING_MAX_GROUPBY]; /* record field names */
  size_t group_by_num;
  int group_by_set;         /* GroupBy was given (else the default) */
  char *state_file;         /* NULL: no state across restarts */
  int64_t lookback;         /* seconds, default 172800 */
  int64_t initial_lookback; /* seconds, default 2678400 */
  uint64_t data_factor;     /* bytes per DataQuantityUnit, default 1e6 */
  size_t max_series;        /* label sets before "other", default 10000 */
} usage_billing_conf_t;

#define USAGE_BILLING_DEFAULT_PAGE_SIZE 1000
#define USAGE_BILLING_DEFAULT_MAX_PAGES 10000
#define USAGE_BILLING_DEFAULT_LOOKBACK 172800
#define USAGE_BILLING_DEFAULT_INITIAL_LOOKBACK 2678400
#define USAGE_BILLING_DEFAULT_MAX_SERIES 10000

extern const usage_vendor_t usage_billing_vendor;

/* usage_billing_conf_default fills c with the defaults (the default GroupBy
 * included); usage_billing_conf_clear frees what c holds. */
int usage_billing_conf_default(usage_billing_conf_t *c);
void usage_billing_conf_clear(usage_billing_conf_t *c);

/* usage_billing_filter_check validates a Filter "name" "value" pair against
 * the documented syntax (ids: x | in:x,y; strings: x | in:x,y | like:x;
 * dates: yyyy-MM-ddTHH:mm:ssZ | lt:... | gt:...). The name is matched
 * case-insensitively; *canonical receives the API's spelling. 0, or EINVAL
 * with the problem in err. */
int usage_billing_filter_check(const char *name, const char *value,
                               const char **canonical, char *err,
                               size_t errlen);
/* usage_billing_unit_factor: bytes per DataQuantityUnit (B, kB, MB, GB,
 * KiB, MiB, GiB; case-sensitive as SI/IEC write them). 0 or EINVAL. */
int usage_billing_unit_factor(const char *unit, uint64_t *factor);
/* usage_billing_groupby_label checks that field may be a GroupBy field and
 * writes its label name (snake_case) to out. 0 or EINVAL. */
int usage_billing_groupby_label(const char *field, char *out, size_t size);

/* usage_billing_query writes the path and query of one page request:
 * "/customer-usage-data?page=N&pageSize=..&sort=eventDate%2Cid
 * &eventDateFrom=..&<filters>". 0 or an errno of buf. */
int usage_billing_query(const usage_billing_conf_t *c, int64_t from,
                        unsigned page, usage_buf_t *out);

/* The aggregator: committed counters, de-duplication window and
 * watermark, plus the pending figures of the scrape under way. It keeps a
 * pointer to conf, which must outlive it. */
typedef struct usage_billing_s usage_billing_t;

usage_billing_t *usage_billing_create(const usage_billing_conf_t *conf);
void usage_billing_destroy(usage_billing_t *b); /* accepts NULL */

/* usage_billing_begin starts a scrape at time now (Unix seconds): pending
 * figures are emptied and the lower bound of the event dates to request is
 * returned (newest event date seen minus Lookback; now minus
 * InitialLookback before anything was committed; the backlog cursor while
 * a backlog larger than MaxPages is being caught up, see
 * usage_billing_more). */
int64_t usage_billing_begin(usage_billing_t *b, double now);

/* usage_billing_more tells that the pages read so far are only a prefix of
 * the window (the scrape stopped at MaxPages with a full page). Records are
 * sorted by eventDate,id, so every record dated before the newest eventDate
 * read (the cursor) was read; the records of that last, possibly cut,
 * second are counted now and de-duplicated by the ids when the next scrape
 * requests from the cursor. The following usage_billing_serialize and
 * usage_billing_commit then commit the prefix and keep the cursor. 0, or
 * EDEADLK when the cursor would not move past the scrape's lower bound
 * (more than MaxPages pages of one eventDate second, or no dated record):
 * the caller aborts the scrape. Call after the last page, before
 * usage_billing_prepare. */
int usage_billing_more(usage_billing_t *b);

/* usage_billing_cursor: 1 and *cursor set while a backlog is being caught
 * up (the last commit was a prefix), else 0. */
int usage_billing_cursor(const usage_billing_t *b, int64_t *cursor);

/* What one page told. */
typedef struct {
  size_t records;    /* elements of the page's array */
  size_t counted;    /* records new to the window (pending) */
  size_t duplicates; /* unchanged copies of ids counted before or earlier
                        in this scrape */
  size_t rerated;    /* copies with other figures or another label set */
  size_t invalid;    /* records refused + GroupBy values left out */
  uint64_t ids_hash; /* of the page's ids in order (repeat detection) */
  char error[256];   /* why the page was rejected */
} usage_billing_page_t;

/* usage_billing_page parses one page body and aggregates its records into
 * the pending figures. A record with an id that is not a non-negative
 * int64, no valid eventDate, or a quantity or price that is null, missing
 * or not a non-negative number is refused: nothing of it is counted, its
 * id is not marked seen (a corrected copy is counted later), and it is
 * counted once in the invalid family. A valid copy of an id counted
 * before, inside the window, with other quantities, prices or label set
 * is a re-rating: the difference is counted (increases in the counters,
 * decreases in the adjustment families). 0, or EINVAL / ENOMEM / ERANGE (a
 * sum would overflow) with res->error set: the page
 * is malformed and the caller must usage_billing_abort the scrape (the
 * pending figures then hold part of the page). */
int usage_billing_page(usage_billing_t *b, const char *body, size_t len,
                       usage_billing_page_t *res);

/* usage_billing_abort drops the pending figures (the committed ones stay). */
void usage_billing_abort(usage_billing_t *b);

/* usage_billing_serialize writes the state as it will be after
 * usage_billing_commit (committed + pending, window moved and pruned) into
 * out: the StateFile body. 0 or an errno of out. */
int usage_billing_serialize(const usage_billing_t *b, usage_buf_t *out);

/* usage_billing_prepare allocates what usage_billing_commit needs (the
 * next id set), so that a commit after it cannot fail. 0 or ENOMEM (the
 * caller aborts the scrape: nothing of it is counted). */
int usage_billing_prepare(usage_billing_t *b);

/* usage_billing_commit merges the pending figures into the committed ones,
 * moves the window and forgets ids older than it. Returns the number of
 * refused records new to the window plus invalid GroupBy values (to count
 * as invalid_value). Without a successful usage_billing_prepare it prepares
 * itself; when that fails for lack of memory, the pending figures are
 * dropped instead (as by usage_billing_abort: counted on a later scrape,
 * never twice) and 0 is returned. */
uint64_t usage_billing_commit(usage_billing_t *b);

/* usage_billing_restore replaces the committed state with a StateFile body.
 * 0; EINVAL when the body is malformed (err says where: the caller sets the
 * file aside and starts fresh, b is then unchanged). When the file was
 * written with another GroupBy, the window and ids are kept (no record is
 * counted twice) and the counters restart: *groups_dropped is set. */
int usage_billing_restore(usage_billing_t *b, const char *data, size_t len,
                          int *groups_dropped, char *err, size_t errlen);

/* usage_billing_samples adds the committed figures to batch: the five
 * usage_billing_* families and their five usage_billing_adjustment_*
 * families (the downward corrections of re-ratings) per label set; the
 * records past MaxSeries only in the usage_billing_overflow_* families (no
 * GroupBy labels, so a real label value "other" cannot be confused with
 * them) and their usage_billing_overflow_adjustment_*; the re-ratings in
 * usage_billing_rerated_records_total; the refused records in
 * usage_billing_invalid_records_total{reason}. */
int usage_billing_samples(const usage_billing_t *b, usage_batch_t *batch);

/* Introspection for tests and the log. */
size_t usage_billing_groups(const usage_billing_t *b);
size_t usage_billing_window_ids(const usage_billing_t *b);
int64_t usage_billing_window_start(const usage_billing_t *b);

/* usage_billing_parse_nano reads a JSON number's text into units of 1e-9
 * (exact for up to 9 decimals). 0, EINVAL (not a number), ERANGE (too
 * large or negative). */
int usage_billing_parse_nano(const char *s, size_t len, __int128 *out);

#endif
