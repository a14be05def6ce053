/* SPDX-License-Identifier: MIT */
/* billing/state.c: the StateFile body ("billing-state 3"): the committed
 * counters and adjustments, the window and the ids in it with the figures
 * each was counted with, written as they will be after the commit under
 * way, and read back whole or not at all. Pure: no I/O (the scrape reads
 * and writes the file through statefile.h). */
#include "api/billing/internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Format 3 adds the adjustments to the group lines, the "rerated" line,
 * and the figures each id was counted with: after a line "ids N", N lines
 * of one id each, sorted by id, as numbers without separators (see
 * put_num): the id minus the previous one (the first: minus -1), the
 * event date minus the previous one (the first: minus window_start;
 * zigzag, as it may be negative), then the index of its label set among
 * the group lines plus one (0: figures not known) and, when known, its
 * four quantities in units of 10^S 1e-9 units, S from the "scale" line
 * (per quantity, the largest power of ten dividing all of them). About 21
 * bytes per id for figures of 4 to 7 significant digits.
 *
 * Format 2 (read, not written) has the "invalid" line and the ids sorted,
 * delta encoded ("id ID EV" for the first, then "d ID-DELTA EV-DELTA");
 * format 1 one "id ID EV" line each. Their ids carry no figures: such an
 * id counts as counted, and the first copy seen after the restart becomes
 * the reference a later re-rating is measured against. */
#define STATE_FORMAT "billing-state 3"
#define STATE_FORMAT_2 "billing-state 2"
#define STATE_FORMAT_1 "billing-state 1"

/* put_num writes x in base 32, most significant digit first: the last
 * digit from FIN, the others from CONT, so that numbers need no
 * separator. get_num reads one: the position after it, or NULL. */
static const char FIN[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";
static const char CONT[] = "WXYZabcdefghijklmnopqrstuvwxyz-_";
typedef unsigned __int128 u128_t;

static size_t put_num(char *out, u128_t x) {
  char tmp[32];
  size_t n = 0;
  do {
    tmp[n++] = (char)(x & 31);
    x >>= 5;
  } while (x);
  for (size_t i = 0; i < n; i++) {
    int d = tmp[n - 1 - i];
    out[i] = i + 1 == n ? FIN[d] : CONT[d];
  }
  return n;
}

static const char *get_num(const char *p, u128_t *out) {
  u128_t x = 0;
  for (;;) {
    const char *f = *p ? strchr(FIN, *p) : NULL;
    const char *c = *p && f == NULL ? strchr(CONT, *p) : NULL;
    if (f == NULL && c == NULL)
      return NULL;
    if (x >> 123)
      return NULL; /* past 128 bits */
    x = x << 5 | (u128_t)(f ? f - FIN : c - CONT);
    p++;
    if (f != NULL) {
      *out = x;
      return p;
    }
  }
}

/* Quantities are written in units of 10^scale; scale <= MAX_SCALE. */
#define MAX_SCALE 30

static u128_t pow10_u128(unsigned e) {
  u128_t p = 1;
  while (e-- > 0)
    p *= 10;
  return p;
}

static u128_t zigzag(__int128 v) {
  return v < 0 ? ((u128_t)(-(v + 1)) << 1) | 1 : (u128_t)v << 1;
}

static __int128 unzigzag(u128_t z) {
  return z & 1 ? -(__int128)(z >> 1) - 1 : (__int128)(z >> 1);
}

/* nano_text writes v in decimal (units of 1e-9, as the state keeps them). */
static void nano_text(usage_billing_nano_t v, char *out, size_t size) {
  char tmp[48];
  size_t n = 0;
  int neg = v < 0;
  if (neg)
    v = -v;
  do {
    tmp[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v != 0 && n < sizeof(tmp));
  size_t k = 0;
  if (neg && k + 1 < size)
    out[k++] = '-';
  while (n > 0 && k + 1 < size)
    out[k++] = tmp[--n];
  out[k] = 0;
}

/* nano_parse_int reads what nano_text wrote for a non-negative v. 0 or
 * EINVAL. */
static int nano_parse_int(const char *s, usage_billing_nano_t *out) {
  if (*s == 0)
    return EINVAL;
  usage_billing_nano_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > ((usage_billing_nano_t)1 << 120))
      return EINVAL;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return 0;
}

/* put_value writes a label value as "=" and percent-encoded bytes. */
static void put_value(usage_buf_t *out, const char *v) {
  usage_buf_putc(out, ' ');
  usage_buf_putc(out, '=');
  for (; *v; v++) {
    unsigned char c = (unsigned char)*v;
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':')
      usage_buf_putc(out, (char)c);
    else
      usage_buf_printf(out, "%%%02X", c);
  }
}

/* An id to write: its entry, its figures, and its set (1: pending). */
typedef struct {
  const usage_billing_ident_t *e;
  const unsigned char *fig;
  int pending;
} sid_t;

/* sid_cmp orders ids ascending (ids are >= 0: deltas are positive and
 * cannot overflow), a committed entry before the pending one of its id. */
static int sid_cmp(const void *a, const void *b) {
  const sid_t *x = a, *y = b;
  if (x->e->id != y->e->id)
    return (x->e->id > y->e->id) - (x->e->id < y->e->id);
  return x->pending - y->pending;
}

int usage_billing_serialize(const usage_billing_t *b, usage_buf_t *out) {
  int64_t ws, newest;
  int have_newest;
  usage_billing_next_window(b, &ws, &have_newest, &newest);
  usage_buf_printf(out, STATE_FORMAT "\ngroupby");
  for (size_t g = 0; g < b->conf->group_by_num; g++)
    usage_buf_printf(out, "%s%s", g ? "," : " ", b->conf->group_by[g]);
  usage_buf_printf(out, "\nwindow_start %" PRId64 "\n", ws);
  if (have_newest)
    usage_buf_printf(out, "newest %" PRId64 "\n", newest);
  usage_buf_printf(out, "overflow %" PRIu64 "\n", b->overflow + b->poverflow);
  usage_buf_printf(out, "rerated %" PRIu64 "\n", b->rerated + b->prerated);
  for (size_t i = 0; i < b->ngroups; i++) {
    const usage_billing_group_t *g = &b->groups[i];
    char num[64];
    usage_buf_printf(out, "group %d %" PRIu64, g->other,
                     g->records + g->precords);
    for (int q = 0; q < USAGE_BILLING_NQ; q++) {
      nano_text(g->sum[q] + g->psum[q], num, sizeof(num));
      usage_buf_printf(out, " %s", num);
    }
    usage_buf_printf(out, " %" PRIu64, g->adjrec + g->padjrec);
    for (int q = 0; q < USAGE_BILLING_NQ; q++) {
      nano_text(g->adj[q] + g->padj[q], num, sizeof(num));
      usage_buf_printf(out, " %s", num);
    }
    const char *v = g->key;
    for (size_t k = 0; k < b->conf->group_by_num; k++) {
      put_value(out, v);
      v += strlen(v) + 1;
    }
    usage_buf_putc(out, '\n');
  }
  usage_buf_printf(out, "invalid");
  for (int k = 0; k < USAGE_BILLING_NINV; k++)
    usage_buf_printf(out, " %" PRIu64, b->inv[k] + b->pinv[k]);
  usage_buf_putc(out, '\n');
  /* the ids of the next window, a pending entry over a committed one */
  size_t nids = 0;
  const usage_billing_ids_t *sets[2] = {&b->ids, &b->pids};
  sid_t *e = malloc((b->ids.n + b->pids.n + 1) * sizeof(*e));
  if (e == NULL)
    return ENOMEM;
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; i < sets[s]->n; i++)
      if (sets[s]->e[i].ev >= ws)
        e[nids++] = (sid_t){&sets[s]->e[i],
                            usage_billing_ids_fig(sets[s], &sets[s]->e[i]), s};
  qsort(e, nids, sizeof(*e), sid_cmp);
  size_t kept = 0;
  for (size_t i = 0; i < nids; i++)
    if (i + 1 == nids || e[i + 1].e->id != e[i].e->id)
      e[kept++] = e[i]; /* of equal ids the pending one (sorted last) */
  nids = kept;
  /* the quantities are written in units of 10^scale (1e-9 units): the
   * largest power of ten that divides every one of them */
  unsigned scale[USAGE_BILLING_NQ];
  for (int q = 0; q < USAGE_BILLING_NQ; q++)
    scale[q] = MAX_SCALE;
  for (size_t i = 0; i < nids; i++)
    if (e[i].fig != NULL) {
      usage_billing_fig_t f;
      usage_billing_fig_unpack(e[i].fig, &f);
      for (int q = 0; q < USAGE_BILLING_NQ; q++) {
        unsigned z = 0;
        for (usage_billing_nano_t v = f.q[q];
             v != 0 && v % 10 == 0 && z < scale[q]; v /= 10)
          z++;
        if (f.q[q] != 0)
          scale[q] = z;
      }
    }
  usage_buf_printf(out, "scale");
  for (int q = 0; q < USAGE_BILLING_NQ; q++)
    usage_buf_printf(out, " %u", scale[q]);
  usage_buf_printf(out, "\nids %zu\n", nids);
  int64_t prev_id = -1, prev_ev = ws;
  for (size_t i = 0; i < nids; i++) {
    char line[40 + 26 * USAGE_BILLING_NQ];
    size_t n = put_num(line, (u128_t)((__int128)e[i].e->id - prev_id));
    n += put_num(line + n, zigzag((__int128)e[i].e->ev - prev_ev));
    prev_id = e[i].e->id;
    prev_ev = e[i].e->ev;
    if (e[i].fig == NULL) {
      n += put_num(line + n, 0);
    } else {
      usage_billing_fig_t f;
      usage_billing_fig_unpack(e[i].fig, &f);
      n += put_num(line + n, (u128_t)f.group + 1);
      for (int q = 0; q < USAGE_BILLING_NQ; q++)
        n += put_num(line + n, (u128_t)f.q[q] / pow10_u128(scale[q]));
    }
    line[n++] = '\n';
    usage_buf_append(out, line, n);
  }
  free(e);
  usage_buf_printf(out, "end %zu %zu\n", b->ngroups, nids);
  return usage_buf_failed(out);
}

static int parse_i64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*s == 0 || *end != 0 || errno != 0 || v == LLONG_MIN)
    return EINVAL;
  *out = v;
  return 0;
}

static int unescape_value(const char *s, usage_buf_t *out) {
  if (*s != '=')
    return EINVAL;
  for (s++; *s; s++) {
    if (*s == '%') {
      int hi, lo;
      if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
        return EINVAL;
      hi = isdigit((unsigned char)s[1])
               ? s[1] - '0'
               : tolower((unsigned char)s[1]) - 'a' + 10;
      lo = isdigit((unsigned char)s[2])
               ? s[2] - '0'
               : tolower((unsigned char)s[2]) - 'a' + 10;
      if (hi * 16 + lo == 0)
        return EINVAL;
      usage_buf_putc(out, (char)(hi * 16 + lo));
      s += 2;
    } else {
      usage_buf_putc(out, *s);
    }
  }
  usage_buf_putc(out, 0);
  return usage_buf_failed(out) ? ENOMEM : 0;
}

/* What the reading of a state body has seen so far. */
typedef struct {
  int format; /* 1, 2 or 3 */
  int seen_groupby, groups_ok, have_ws, ended;
  size_t ngroups, nids;
  size_t packed_left; /* format 3 id lines still to come */
  unsigned scale[USAGE_BILLING_NQ];
  int64_t prev_id, prev_ev;
} rctx_t;

/* restore_packed adds one format 3 id line to t. 0, EINVAL or ENOMEM with
 * err set. */
static int restore_packed(usage_billing_t *t, const char *line, rctx_t *c,
                          char *err, size_t errlen) {
  u128_t did, zev, g;
  const char *p = get_num(line, &did);
  if (p != NULL)
    p = get_num(p, &zev);
  if (p != NULL)
    p = get_num(p, &g);
  /* both deltas within 2^65: their sums cannot overflow 128 bits */
  if (p == NULL || did == 0 || did > (u128_t)INT64_MAX + 1 || zev >> 66)
    goto bad;
  __int128 id = (__int128)c->prev_id + (__int128)did;
  __int128 ev = (__int128)c->prev_ev + unzigzag(zev);
  if (id > INT64_MAX || ev > INT64_MAX || ev < INT64_MIN)
    goto bad;
  usage_billing_fig_t f;
  if (g > c->ngroups)
    goto bad;
  f.group = (long)g - 1;
  for (int q = 0; q < USAGE_BILLING_NQ && g > 0; q++) {
    u128_t v;
    p = get_num(p, &v);
    u128_t m = pow10_u128(c->scale[q]);
    if (p == NULL || (v != 0 && v > (u128_t)USAGE_BILLING_SUM_MAX / m))
      goto bad;
    f.q[q] = (usage_billing_nano_t)(v * m);
  }
  if (*p != 0)
    goto bad;
  unsigned char packed[USAGE_BILLING_FIG_MAX];
  size_t len = 0;
  /* with another GroupBy the label sets are gone: figures not known */
  if (g > 0 && c->groups_ok)
    len = usage_billing_fig_pack(&f, packed);
  if (usage_billing_ids_put(&t->ids, (int64_t)id, (int64_t)ev,
                            len ? packed : NULL, len) != 0) {
    snprintf(err, errlen, "out of memory");
    return ENOMEM;
  }
  c->prev_id = (int64_t)id;
  c->prev_ev = (int64_t)ev;
  c->nids++;
  c->packed_left--;
  return 0;
bad:
  snprintf(err, errlen, "bad id line");
  return EINVAL;
}

/* restore_id adds one id line ("id ID EV" absolute, "d DID DEV" relative to
 * the previous one) to t. 0, EINVAL or ENOMEM with err set. */
static int restore_id(usage_billing_t *t, const char *line, rctx_t *rc,
                      char *err, size_t errlen) {
  int64_t *prev_id = &rc->prev_id, *prev_ev = &rc->prev_ev;
  size_t *nids = &rc->nids;
  int delta = line[0] == 'd';
  const char *p = line + (delta ? 2 : 3);
  char *end;
  errno = 0;
  long long a = strtoll(p, &end, 10);
  if (end == p || *end != ' ' || errno != 0)
    goto bad;
  p = end + 1;
  long long c = strtoll(p, &end, 10);
  if (end == p || *end != 0 || errno != 0 || (delta && *nids == 0))
    goto bad;
  int64_t id = a, ev = c;
  if (delta && (a <= 0 || __builtin_add_overflow(*prev_id, (int64_t)a, &id) ||
                __builtin_add_overflow(*prev_ev, (int64_t)c, &ev)))
    goto bad;
  if (id < 0) {
    /* format 1 files of older versions may hold a negative id: such a
     * record is refused now, so its id is not needed (skipped, not fatal) */
    (*nids)++;
    return 0;
  }
  if (usage_billing_ids_find(&t->ids, id)) {
    snprintf(err, errlen, "id %" PRId64 " given twice", id);
    return EINVAL;
  }
  if (usage_billing_ids_put(&t->ids, id, ev, NULL, 0) != 0) {
    snprintf(err, errlen, "out of memory");
    return ENOMEM;
  }
  *prev_id = id;
  *prev_ev = ev;
  (*nids)++;
  return 0;
bad:
  snprintf(err, errlen, "bad id line");
  return EINVAL;
}

/* restore_line applies one line of a state body to the fresh aggregator t. */
static int restore_line(usage_billing_t *t, char *line, rctx_t *c, char *err,
                        size_t errlen) {
  int *seen_groupby = &c->seen_groupby, *groups_ok = &c->groups_ok,
      *have_ws = &c->have_ws, *ended = &c->ended;
  size_t *ngroups = &c->ngroups, *nids = &c->nids;
  char *words[4 + 2 * USAGE_BILLING_NQ + USAGE_BILLING_MAX_GROUPBY];
  size_t n = 0;
  const size_t max = sizeof(words) / sizeof(*words);
  for (char *save = NULL, *w = strtok_r(line, " ", &save); w != NULL;
       w = strtok_r(NULL, " ", &save)) {
    if (n == max) {
      snprintf(err, errlen, "too many words");
      return EINVAL;
    }
    words[n++] = w;
  }
  if (n == 0 || *ended) {
    snprintf(err, errlen, *ended ? "data after the end line" : "empty line");
    return EINVAL;
  }
  const char *k = words[0];
  int64_t a, cnt;
  if (strcmp(k, "groupby") == 0) {
    if (*seen_groupby || n > 2) {
      snprintf(err, errlen, "bad groupby line");
      return EINVAL;
    }
    *seen_groupby = 1;
    char want[1024] = "";
    size_t len = 0;
    for (size_t g = 0; g < t->conf->group_by_num && len < sizeof(want); g++)
      len += (size_t)snprintf(want + len, sizeof(want) - len, "%s%s",
                              g ? "," : "", t->conf->group_by[g]);
    *groups_ok = strcmp(n == 2 ? words[1] : "", want) == 0;
    return 0;
  }
  if (strcmp(k, "window_start") == 0 && n == 2 && !*have_ws &&
      parse_i64(words[1], &a) == 0) {
    t->window_start = a;
    t->have_window = *have_ws = 1;
    return 0;
  }
  if (strcmp(k, "newest") == 0 && n == 2 && !t->have_newest &&
      parse_i64(words[1], &a) == 0) {
    t->newest = a;
    t->have_newest = 1;
    return 0;
  }
  if (strcmp(k, "overflow") == 0 && n == 2 && parse_i64(words[1], &a) == 0 &&
      a >= 0) {
    t->overflow = (uint64_t)a;
    return 0;
  }
  if (strcmp(k, "rerated") == 0 && n == 2 && c->format >= 3 &&
      parse_i64(words[1], &a) == 0 && a >= 0) {
    t->rerated = (uint64_t)a;
    return 0;
  }
  if (strcmp(k, "scale") == 0 && n == 1 + USAGE_BILLING_NQ && c->format >= 3) {
    for (int q = 0; q < USAGE_BILLING_NQ; q++)
      if (parse_i64(words[1 + q], &a) != 0 || a < 0 || a > MAX_SCALE) {
        snprintf(err, errlen, "bad scale line");
        return EINVAL;
      } else
        c->scale[q] = (unsigned)a;
    return 0;
  }
  if (strcmp(k, "ids") == 0 && n == 2 && c->format >= 3 && *have_ws &&
      *nids == 0 && parse_i64(words[1], &a) == 0 && a >= 0) {
    c->packed_left = (size_t)a;
    c->prev_id = -1;
    c->prev_ev = t->window_start;
    if (a == 0)
      return 0;
    if (usage_billing_ids_reserve(
            &t->ids, (size_t)a < (1u << 20) ? (size_t)a : (1u << 20), 0) != 0) {
      snprintf(err, errlen, "out of memory");
      return ENOMEM;
    }
    return 0;
  }
  if (strcmp(k, "group") == 0 && *seen_groupby) {
    (*ngroups)++;
    if (!*groups_ok)
      return 0;
    usage_billing_nano_t sums[USAGE_BILLING_NQ], adj[USAGE_BILLING_NQ];
    int64_t other, records, adjrec = 0;
    /* format 3: the adjustments follow the sums */
    size_t nv = c->format >= 3 ? 1 + USAGE_BILLING_NQ : 0;
    if (n != 3 + USAGE_BILLING_NQ + nv + t->conf->group_by_num ||
        parse_i64(words[1], &other) != 0 || other < 0 || other > 1 ||
        parse_i64(words[2], &records) != 0 || records < 0 ||
        (nv && (parse_i64(words[3 + USAGE_BILLING_NQ], &adjrec) != 0 ||
                adjrec < 0))) {
      snprintf(err, errlen, "bad group line");
      return EINVAL;
    }
    memset(adj, 0, sizeof(adj));
    for (int q = 0; q < USAGE_BILLING_NQ; q++)
      if (nano_parse_int(words[3 + q], &sums[q]) != 0 ||
          sums[q] > USAGE_BILLING_SUM_MAX ||
          (nv &&
           (nano_parse_int(words[4 + USAGE_BILLING_NQ + q], &adj[q]) != 0 ||
            adj[q] > USAGE_BILLING_SUM_MAX))) {
        snprintf(err, errlen, "bad number in a group line");
        return EINVAL;
      }
    usage_buf_t *key = &t->key;
    usage_buf_reset(key);
    for (size_t g = 0; g < t->conf->group_by_num; g++)
      if (unescape_value(words[3 + USAGE_BILLING_NQ + nv + g], key) != 0) {
        snprintf(err, errlen, "bad label value in a group line");
        return EINVAL;
      }
    const char *kd = usage_buf_str(key);
    size_t kl = usage_buf_len(key);
    uint64_t h = other ? 0 : usage_hash_bytes(kd, kl);
    if ((other && t->other_idx >= 0) ||
        (!other && usage_billing_group_find(t, kd, kl, h) >= 0)) {
      snprintf(err, errlen, "label set given twice");
      return EINVAL;
    }
    long gi = usage_billing_group_add(t, kd, kl, h, (int)other);
    if (gi < 0) {
      snprintf(err, errlen, "out of memory");
      return ENOMEM;
    }
    t->groups[gi].records = (uint64_t)records;
    memcpy(t->groups[gi].sum, sums, sizeof(sums));
    t->groups[gi].adjrec = (uint64_t)adjrec;
    memcpy(t->groups[gi].adj, adj, sizeof(adj));
    t->ncommitted = t->ngroups;
    return 0;
  }
  if (strcmp(k, "invalid") == 0 && n == 1 + USAGE_BILLING_NINV) {
    for (int q = 0; q < USAGE_BILLING_NINV; q++) {
      if (parse_i64(words[1 + q], &a) != 0 || a < 0) {
        snprintf(err, errlen, "bad invalid line");
        return EINVAL;
      }
      t->inv[q] = (uint64_t)a;
    }
    return 0;
  }
  if (strcmp(k, "end") == 0 && n == 3 && parse_i64(words[1], &a) == 0 &&
      parse_i64(words[2], &cnt) == 0) {
    if ((size_t)a != *ngroups || (size_t)cnt != *nids) {
      snprintf(err, errlen, "the end line does not match the contents");
      return EINVAL;
    }
    *ended = 1;
    return 0;
  }
  snprintf(err, errlen, "unexpected \"%.40s\" line", k);
  return EINVAL;
}

int usage_billing_restore(usage_billing_t *b, const char *data, size_t len,
                          int *groups_dropped, char *err, size_t errlen) {
  *groups_dropped = 0;
  usage_billing_t *t = usage_billing_create(b->conf);
  char *copy = malloc(len + 1);
  if (t == NULL || copy == NULL) {
    usage_billing_destroy(t);
    free(copy);
    snprintf(err, errlen, "out of memory");
    return ENOMEM;
  }
  memcpy(copy, data, len);
  copy[len] = 0;
  int ret = 0;
  rctx_t c;
  memset(&c, 0, sizeof(c));
  size_t lineno = 1;
  char *p = copy;
  char *nl = strchr(p, '\n');
  if (memchr(copy, 0, len) == NULL && nl != NULL &&
      (size_t)(nl - p) == strlen(STATE_FORMAT))
    c.format = strncmp(p, STATE_FORMAT, strlen(STATE_FORMAT)) == 0     ? 3
               : strncmp(p, STATE_FORMAT_2, strlen(STATE_FORMAT)) == 0 ? 2
               : strncmp(p, STATE_FORMAT_1, strlen(STATE_FORMAT)) == 0 ? 1
                                                                       : 0;
  if (c.format == 0) {
    snprintf(err, errlen, "not a billing state of format 1, 2 or 3");
    ret = EINVAL;
    goto out;
  }
  p = nl + 1;
  char lerr[128] = "";
  while (*p) {
    lineno++;
    nl = strchr(p, '\n');
    if (nl == NULL) {
      snprintf(err, errlen, "line %zu: unterminated (truncated file)", lineno);
      ret = EINVAL;
      goto out;
    }
    *nl = 0;
    if (c.packed_left > 0)
      ret = restore_packed(t, p, &c, lerr, sizeof(lerr));
    else if (!c.ended && c.format < 3 &&
             (strncmp(p, "id ", 3) == 0 || strncmp(p, "d ", 2) == 0))
      ret = restore_id(t, p, &c, lerr, sizeof(lerr));
    else
      ret = restore_line(t, p, &c, lerr, sizeof(lerr));
    if (ret != 0) {
      snprintf(err, errlen, "line %zu: %s", lineno, lerr);
      goto out;
    }
    p = nl + 1;
  }
  if (!c.ended || !c.have_ws || !c.seen_groupby) {
    snprintf(err, errlen, "incomplete state (no end line)");
    ret = EINVAL;
    goto out;
  }
  *groups_dropped = !c.groups_ok && c.ngroups > 0;
  /* Swap: b takes t's contents, t takes b's old ones and is destroyed. */
  usage_billing_t tmp = *b;
  *b = *t;
  *t = tmp;
out:
  usage_billing_destroy(t);
  free(copy);
  return ret;
}
