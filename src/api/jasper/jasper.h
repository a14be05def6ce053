/* SPDX-License-Identifier: MIT */
/* jasper: Cisco IoT Control Center (Jasper) Get Usage by Rate Plan
 * (GET {URL}/rws/api/v1/usages), the vendor's public interface: options
 * (conf.c parses them, query.c turns them into requests), a streaming page
 * parser (parse.c) that folds each page into a running per-rate-plan
 * aggregation (aggregate.c), the error-code table (errors.c), and the
 * vendor's scrape (scrape.c). */
#ifndef USAGE_API_JASPER_H
#define USAGE_API_JASPER_H 1

#include "source.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define USAGE_JASPER_DEFAULT_RPS 5.0
#define USAGE_JASPER_MAX_PAGE_SIZE 50
#define USAGE_JASPER_DEFAULT_MAX_PAGES 10000
#define USAGE_JASPER_DEFAULT_MAX_DEVICES 10000
#define USAGE_JASPER_MAX_ZONES 1024
#define USAGE_JASPER_ICCID_MAX 31 /* longer device ids are left out */

typedef enum {
  USAGE_JASPER_ALL = 0, /* no usageType: every figure */
  USAGE_JASPER_DATA,
  USAGE_JASPER_SMS,
  USAGE_JASPER_VOICE
} usage_jasper_type_t;

typedef struct {
  char *name;
  char *version; /* decimal digits, or NULL: the most recent version */
} usage_jasper_plan_t;

typedef struct {
  usage_jasper_plan_t *plans;
  size_t plans_num;
  char cycle_start[11]; /* yyyy-MM-dd, "" = current cycle */
  usage_jasper_type_t usage_type;
  int page_size;           /* 1..50, default 50 */
  long max_pages;          /* per rate plan and scrape */
  int per_device;          /* publish usage_jasper_device_* */
  int dispatch_per_device; /* DispatchPerDevice; -1 = not given */
  size_t max_devices;      /* devices with per-device series, per rate plan */
} usage_jasper_conf_t;

extern const usage_vendor_t usage_jasper_vendor;

/* usage_jasper_dispatched: whether family fam of a <Jasper> block goes to
 * collectd. The per-device families do with DispatchPerDevice true; when
 * the option is not given, only when the plugin has no <Exporter> block
 * (they would be published nowhere else). Every other family does. */
int usage_jasper_dispatched(const usage_source_conf_t *src, int fam,
                            int exporter);

/* usage_jasper_type_name: "DATA", "SMS", "VOICE", or NULL for ALL. */
const char *usage_jasper_type_name(usage_jasper_type_t t);
/* usage_jasper_valid_date accepts a real calendar date as yyyy-MM-dd. */
int usage_jasper_valid_date(const char *s);

/* One rate plan's page set folded into zone totals and (with per_device)
 * per-device figures. Memory grows with the zones and the devices (each
 * device's figures are kept, to count a device repeated on a later page
 * once), not with the pages: each page is parsed as a stream into it. */
typedef struct usage_jasper_agg_s usage_jasper_agg_t;

/* usage_jasper_agg_create: NULL on ENOMEM. max_devices caps the devices
 * (ICCIDs) that keep per-device figures; the others are counted as
 * omitted. */
usage_jasper_agg_t *usage_jasper_agg_create(int per_device, size_t max_devices);
void usage_jasper_agg_destroy(usage_jasper_agg_t *a); /* accepts NULL */
/* usage_jasper_agg_reset forgets the figures (a new page set) and keeps the
 * memory for reuse. */
void usage_jasper_agg_reset(usage_jasper_agg_t *a);

/* What one page told besides its figures. */
typedef struct {
  int has_last_page; /* lastPage was present */
  int last_page;
  long page_number;    /* -1 when absent */
  size_t devices;      /* distinct deviceIds on the page */
  size_t entries;      /* entries in the page's devices arrays, usable or
                          not: a full page has page_size of them */
  char error_code[32]; /* errorCode found in the body, or "" */
  char error[256];     /* why the page was rejected */
  unsigned bad_fields; /* devices without a usable deviceId (zone only) */
  char bad_field[160];
} usage_jasper_page_t;

/* usage_jasper_parse_page parses one response page into a. A device
 * (deviceId and zone) already seen on an earlier page of the set counts
 * once, with the larger of its figures (paging is by offset: a list that
 * changes between pages repeats devices); listed twice on one page, it
 * counts twice. 0, or EINVAL (page->error says why; a top object with
 * keys but none the parser knows, or devices of which none names a usage
 * field, is refused, not read as zero), ERANGE (a sum would
 * pass 2^64 - 1) or ENOMEM; after an error the aggregation holds a partial
 * page and must be reset before it is used again. */
int usage_jasper_parse_page(usage_jasper_agg_t *a, const char *body, size_t len,
                            usage_jasper_page_t *page);

/* usage_jasper_agg_emit adds the samples of the aggregation, labelled with
 * rate_plan, to b: usage_jasper_rate_plan_info, zone figures, and with
 * per_device the device figures and usage_jasper_devices_omitted. Only the
 * families of `type` are published (the others are zero upstream).
 * 0 or ENOMEM. */
int usage_jasper_agg_emit(const usage_jasper_agg_t *a, const char *rate_plan,
                          usage_jasper_type_t type, usage_batch_t *b);
size_t usage_jasper_agg_zones(const usage_jasper_agg_t *a);
size_t usage_jasper_agg_devices_kept(const usage_jasper_agg_t *a);
size_t usage_jasper_agg_devices_omitted(const usage_jasper_agg_t *a);
/* usage_jasper_agg_cycle: the answer's cycleStartDate as yyyy-MM-dd (or as
 * sent, when it is not a date), "" when the answer had none. */
const char *usage_jasper_agg_cycle(const usage_jasper_agg_t *a);

/* What one rate plan last published: the cycle and the counters of its
 * zones and devices. Owned by the caller of the scrape, one per rate plan,
 * kept from scrape to scrape. */
typedef struct usage_jasper_hold_s usage_jasper_hold_t;
usage_jasper_hold_t *usage_jasper_hold_create(void);    /* NULL on ENOMEM */
void usage_jasper_hold_destroy(usage_jasper_hold_t *h); /* accepts NULL */
/* usage_jasper_agg_hold makes a's counters never lower than the ones h
 * remembers for the same cycle: a lower figure is raised to the remembered
 * one and counted in *held. With another cycle, or cycle "" (unknown),
 * nothing is raised (a new cycle may reset). Then h remembers a's figures
 * and cycle, and in the same cycle keeps those a lacks (a zone or device
 * missing from one answer is still raised when it comes back). 0, or ENOMEM with a and h unchanged. */
int usage_jasper_agg_hold(usage_jasper_agg_t *a, usage_jasper_hold_t *h,
                          const char *cycle, uint64_t *held);

/* An upstream error code and what the plugin makes of it. */
typedef struct {
  const char *code;   /* "10000013" */
  const char *reason; /* usage_scrape_errors_total{reason}; NULL: by the
                       * HTTP status (usage_jasper_error_reason) */
  int refusal;        /* documented refusal: the source stays up */
  const char *text;   /* what it means, for the log line */
} usage_jasper_error_t;

/* usage_jasper_error_lookup: the table entry of code, or NULL. */
const usage_jasper_error_t *usage_jasper_error_lookup(const char *code);
/* usage_jasper_error_reason: the reason e counts under when it came with
 * HTTP status `status`, and its meaning in *text (static). Most codes mean
 * one thing whatever the status; the catch-all 30000001 ("unknown server
 * error", reason NULL in the table) counts by the status: auth for 401 and
 * 403, rate_limited for 429, http_4xx for another 4xx, else http_5xx. */
const char *usage_jasper_error_reason(const usage_jasper_error_t *e,
                                      long status, const char **text);
/* usage_jasper_reasons: the vendor's own reasons, NULL-terminated. */
extern const char *const usage_jasper_reasons[];

/* usage_jasper_api_error extracts errorCode and errorMessage from an error
 * body, which may be ISO-8859-1 or not JSON at all (then both are empty).
 * Control characters and bytes outside ASCII are replaced for logging. */
void usage_jasper_api_error(const char *body, size_t len, char *code,
                            size_t code_size, char *message, size_t msg_size);

#endif
