/* SPDX-License-Identifier: MIT */
/* billing/internal.h: what the billing files share and nobody else sees:
 * the record schema tables (query.c), the aggregator's struct and the
 * window's entry points for the parser and the state format (window.c).
 * Not installed, not included outside src/api/billing/. */
#ifndef USAGE_API_BILLING_INTERNAL_H
#define USAGE_API_BILLING_INTERNAL_H 1

#include "api/billing/billing.h"
#include "htable.h"

#include <stddef.h>
#include <stdint.h>

typedef __int128 usage_billing_nano_t; /* 1e-9 units */

/* The quantities summed per group, in the order of the families. */
enum {
  USAGE_BILLING_Q_DATA = 0,
  USAGE_BILLING_Q_DURATION,
  USAGE_BILLING_Q_SELL,
  USAGE_BILLING_Q_BUY,
  USAGE_BILLING_NQ
};

/* usage_billing_quantities: record field and family of each quantity
 * (query.c). */
typedef struct {
  const char *field;
  int family;
} usage_billing_quantity_t;
extern const usage_billing_quantity_t usage_billing_quantities[];

/* Why a record was refused (usage_billing_invalid_records_total{reason}),
 * in the order of usage_billing_invalid_reasons (window.c). */
enum {
  USAGE_BILLING_INV_ID = 0,     /* not a non-negative int64 */
  USAGE_BILLING_INV_EVENT_DATE, /* missing or not a date */
  USAGE_BILLING_INV_QUANTITY,   /* a quantity or price null, missing, wrong */
  USAGE_BILLING_NINV
};
extern const char *const usage_billing_invalid_reasons[USAGE_BILLING_NINV];

/* The largest sum a label set may reach (1e-9 units): its figure handed to
 * collectd (a double, rounded to an int64 for DERIVE) stays below 2^63; the
 * margin of 2^16 covers the two roundings of sum / 1e9 to a double. A
 * record that would pass it is refused with the whole scrape (ERANGE),
 * never wrapped. */
#define USAGE_BILLING_SUM_MAX                                                  \
  ((usage_billing_nano_t)(INT64_MAX - 65536) * 1000000000)

/* The figures a record was counted with: its label set (an index into
 * the groups) and its four quantities as added to the sums (dataQuantity
 * in bytes). */
typedef struct {
  long group;
  usage_billing_nano_t q[USAGE_BILLING_NQ];
} usage_billing_fig_t;

/* usage_billing_fig_pack writes f as a sequence of LEB128 numbers (the
 * group, then each quantity as m * 40 + e for m * 10^e with the largest e),
 * at most USAGE_BILLING_FIG_MAX bytes: a typical record takes 8 to 14.
 * usage_billing_fig_unpack reads it back (the bytes are trusted: only the
 * packer writes them). */
#define USAGE_BILLING_FIG_MAX (5 + USAGE_BILLING_NQ * 19)
size_t usage_billing_fig_pack(const usage_billing_fig_t *f, unsigned char *out);
void usage_billing_fig_unpack(const unsigned char *p, usage_billing_fig_t *f);

/* A set of record ids with their event dates and the figures each was
 * counted with: the entries in an array in insertion order, indexed by id
 * through usage_htable_t; the packed figures in one arena. */
typedef struct {
  int64_t id, ev;
  uint64_t fig; /* 1 + offset of its figures in the arena; 0 = not known
                   (a state of format 1 or 2, or another GroupBy) */
} usage_billing_ident_t;

typedef struct {
  usage_billing_ident_t *e;
  size_t n, alloc;
  usage_htable_t idx; /* positions in e */
  unsigned char *arena;
  size_t alen, aalloc;
} usage_billing_ids_t;

/* A label set and its committed and pending figures: the records and
 * sums counted in (increases), and the adjustments (the records that left
 * it and the decreases of its sums by re-ratings). The true current total
 * is the sum minus the adjustment; both only grow. */
typedef struct {
  char *key; /* label values, each NUL-terminated, concatenated */
  size_t keylen;
  uint64_t hash;
  uint64_t records, precords;
  usage_billing_nano_t sum[USAGE_BILLING_NQ], psum[USAGE_BILLING_NQ];
  uint64_t adjrec, padjrec;
  usage_billing_nano_t adj[USAGE_BILLING_NQ], padj[USAGE_BILLING_NQ];
  int other; /* the overflow label set */
} usage_billing_group_t;

/* The aggregator. Invariants (kept by window.c): groups [0, ncommitted)
 * are committed, the rest were created by the scrape under way; gidx
 * indexes every group but "other" (other_idx, -1 = none); ids holds the
 * committed ids dated >= window_start with the figures they were counted
 * with, pids the ids of the scrape under way: new ones, and the copies of
 * committed ones whose figures, label set or event date changed (an id in
 * both: the pending entry is the current one; the pending figures hold
 * the difference between the two, see window.c contrib). */
struct usage_billing_s {
  const usage_billing_conf_t *conf;
  char labels[USAGE_BILLING_MAX_GROUPBY][48];

  usage_billing_group_t *groups;
  size_t ngroups, agroups, ncommitted;
  usage_htable_t gidx; /* positions in groups */
  long other_idx;

  usage_billing_ids_t ids;  /* committed, eventDate >= window_start */
  usage_billing_ids_t pids; /* pending */
  int have_window;
  int64_t window_start;
  int have_newest;
  int64_t newest;
  uint64_t overflow, poverflow;
  uint64_t rerated, prerated; /* records counted again with new figures */
  uint64_t pinvalid;
  /* refused records: committed and pending counts per reason, and the
   * fingerprints of the refused records of the window (an id, or the
   * negative fingerprint of a refused id's text) so that each is counted
   * once; not kept across a restart */
  uint64_t inv[USAGE_BILLING_NINV], pinv[USAGE_BILLING_NINV];
  usage_billing_ids_t refused, prefused;
  /* the committed id set as usage_billing_prepare built it for the commit
   * (valid while prepared) */
  usage_billing_ids_t next;
  int prepared;
  int have_pnewest;
  int64_t pnewest;
  double now;
  /* the backlog cursor: when a scrape stopped at MaxPages, the eventDate of
   * the last record it read (the records before it were all read; those of
   * that second are read again and de-duplicated by the ids). The next
   * scrape requests from it instead of window_start. Not in the StateFile:
   * after a restart the catching up resumes from window_start, reading
   * again (never counting again) what the ids hold. */
  int have_cursor;
  int64_t cursor;
  /* the scrape under way: its lower bound, the newest eventDate on its
   * pages (counted, duplicate or refused), and whether it is a prefix */
  int64_t pfrom;
  int have_plast;
  int64_t plast;
  int pmore;

  /* scratch: the record being parsed (parse.c), a label key (parse.c,
   * state.c) */
  usage_buf_t vals, key;
};

/* One record as the page parser read it; *_ok: 1 valid, 0 missing or
 * invalid. */
typedef struct {
  int id_ok, ev_ok;
  int64_t id, ev;
  uint64_t id_fp; /* !id_ok: fingerprint of the id's text, 0 = none */
  int q_ok[USAGE_BILLING_NQ];
  usage_billing_nano_t q[USAGE_BILLING_NQ];
  unsigned ginvalid; /* GroupBy fields of a wrong type */
} usage_billing_record_t;

/* usage_billing_admit decides about a parsed record: 1 when it is valid
 * and in the window (new, or a copy of an id seen before) and the caller
 * is to build its label key and call usage_billing_add; 0 when it was
 * handled here (invalid id or date: counted as invalid; older than the
 * window: ignored; an invalid copy of an id seen before: a duplicate). */
int usage_billing_admit(usage_billing_t *b, const usage_billing_record_t *r,
                        usage_billing_page_t *res);
/* usage_billing_add adds an admitted record to the pending figures of the
 * label set key (keylen bytes, the values each NUL-terminated): a new id
 * is counted whole; a copy of an id seen before with other figures or
 * another label set counts the difference (a re-rating, see window.c
 * contrib); an unchanged copy is a duplicate. 0, ENOMEM, or ERANGE when a
 * sum would pass USAGE_BILLING_SUM_MAX (res->error says so); on failure
 * the pending figures are as before the record. */
int usage_billing_add(usage_billing_t *b, const usage_billing_record_t *r,
                      const char *key, size_t keylen,
                      usage_billing_page_t *res);

/* usage_billing_next_window computes the window the pending figures will
 * move to when committed. */
void usage_billing_next_window(const usage_billing_t *b, int64_t *ws,
                               int *have_newest, int64_t *newest);

/* usage_billing_group_find: the index of the label set key (not "other"),
 * or -1. usage_billing_group_add appends a label set (key copied, hash
 * from usage_hash_bytes, ignored for other): its index, or -1 (ENOMEM). */
long usage_billing_group_find(const usage_billing_t *b, const char *key,
                              size_t keylen, uint64_t hash);
long usage_billing_group_add(usage_billing_t *b, const char *key, size_t keylen,
                             uint64_t hash, int other);

/* usage_billing_ids_get: the entry of id in s, or NULL;
 * usage_billing_ids_find: whether id is in s. usage_billing_ids_put adds
 * an id known to be absent with its packed figures (fig, len; NULL: not
 * known): 0, or ENOMEM with s unchanged. usage_billing_ids_fig: the packed
 * figures of an entry of s, or NULL. */
usage_billing_ident_t *usage_billing_ids_get(const usage_billing_ids_t *s,
                                             int64_t id);
int usage_billing_ids_find(const usage_billing_ids_t *s, int64_t id);
int usage_billing_ids_put(usage_billing_ids_t *s, int64_t id, int64_t ev,
                          const unsigned char *fig, size_t len);
const unsigned char *usage_billing_ids_fig(const usage_billing_ids_t *s,
                                           const usage_billing_ident_t *e);
/* usage_billing_ids_setfig gives entry e of s new packed figures (NULL:
 * not known); the old bytes stay in the arena until the set is rebuilt.
 * 0, or ENOMEM with e unchanged. */
int usage_billing_ids_setfig(usage_billing_ids_t *s, usage_billing_ident_t *e,
                             const unsigned char *fig, size_t len);
/* usage_billing_ids_reserve makes room for n ids in all and figbytes more
 * bytes of figures, so that adding them cannot fail. 0, or ENOMEM (the set
 * keeps its contents). usage_billing_ids_free releases the memory; the set
 * is then empty and usable. */
int usage_billing_ids_reserve(usage_billing_ids_t *s, size_t n,
                              size_t figbytes);
void usage_billing_ids_free(usage_billing_ids_t *s);
/* usage_billing_ids_window builds into out the ids of a and c dated >= ws
 * (an id in both: c's entry), figures compacted. 0, or ENOMEM with out
 * empty. */
int usage_billing_ids_window(usage_billing_ids_t *out,
                             const usage_billing_ids_t *a,
                             const usage_billing_ids_t *c, int64_t ws);
/* usage_billing_dec_pack writes a quantity v >= 0 as m * 40 + e (v = m *
 * 10^e, e as large as it gets); usage_billing_dec_unpack reads it back, 0
 * or ERANGE when the value passes limit. */
unsigned __int128 usage_billing_dec_pack(usage_billing_nano_t v);
int usage_billing_dec_unpack(unsigned __int128 n, usage_billing_nano_t limit,
                             usage_billing_nano_t *out);

#endif
