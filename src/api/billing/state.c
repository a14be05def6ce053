/* SPDX-License-Identifier: MIT */
/* billing/state.c: the StateFile body ("billing-state 1"): the committed
 * counters, the window and the ids in it, written as they will be after the
 * commit under way, and read back whole or not at all. Pure: no I/O (the
 * scrape reads and writes the file through statefile.h). */
#include "api/billing/internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Format 2 adds the "invalid" line and writes the ids sorted, delta
 * encoded ("id ID EV" for the first, then "d ID-DELTA EV-DELTA"); format 1
 * (one "id ID EV" line each) is still read. */
#define STATE_FORMAT "billing-state 2"
#define STATE_FORMAT_1 "billing-state 1"

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

/* ident_cmp orders ids ascending (ids are >= 0: deltas are positive and
 * cannot overflow). */
static int ident_cmp(const void *a, const void *b) {
  int64_t x = ((const usage_billing_ident_t *)a)->id;
  int64_t y = ((const usage_billing_ident_t *)b)->id;
  return (x > y) - (x < y);
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
  for (size_t i = 0; i < b->ngroups; i++) {
    const usage_billing_group_t *g = &b->groups[i];
    usage_buf_printf(out, "group %d %" PRIu64, g->other,
                     g->records + g->precords);
    for (int q = 0; q < USAGE_BILLING_NQ; q++) {
      char num[64];
      nano_text(g->sum[q] + g->psum[q], num, sizeof(num));
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
  size_t nids = 0;
  const usage_billing_ids_t *sets[2] = {&b->ids, &b->pids};
  usage_billing_ident_t *e = malloc((b->ids.n + b->pids.n + 1) * sizeof(*e));
  if (e == NULL)
    return ENOMEM;
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; i < sets[s]->n; i++)
      if (sets[s]->e[i].ev >= ws)
        e[nids++] = sets[s]->e[i];
  qsort(e, nids, sizeof(*e), ident_cmp);
  for (size_t i = 0; i < nids; i++) {
    if (i == 0)
      usage_buf_printf(out, "id %" PRId64 " %" PRId64 "\n", e[i].id, e[i].ev);
    else
      usage_buf_printf(out, "d %" PRId64 " %" PRId64 "\n",
                       e[i].id - e[i - 1].id, e[i].ev - e[i - 1].ev);
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

/* restore_line applies one line of a state body to the fresh aggregator t. */
/* restore_id adds one id line ("id ID EV" absolute, "d DID DEV" relative to
 * the previous one) to t. 0, EINVAL or ENOMEM with err set. */
static int restore_id(usage_billing_t *t, const char *line, int64_t *prev_id,
                      int64_t *prev_ev, size_t *nids, char *err,
                      size_t errlen) {
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
  if (usage_billing_ids_put(&t->ids, id, ev) != 0) {
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

static int restore_line(usage_billing_t *t, char *line, int *seen_groupby,
                        int *groups_ok, int *have_ws, size_t *ngroups,
                        size_t *nids, int *ended, char *err, size_t errlen) {
  char *words[4 + USAGE_BILLING_NQ + USAGE_BILLING_MAX_GROUPBY];
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
  int64_t a, c;
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
  if (strcmp(k, "group") == 0 && *seen_groupby) {
    (*ngroups)++;
    if (!*groups_ok)
      return 0;
    usage_billing_nano_t sums[USAGE_BILLING_NQ];
    int64_t other, records;
    if (n != 3 + USAGE_BILLING_NQ + t->conf->group_by_num ||
        parse_i64(words[1], &other) != 0 || other < 0 || other > 1 ||
        parse_i64(words[2], &records) != 0 || records < 0) {
      snprintf(err, errlen, "bad group line");
      return EINVAL;
    }
    for (int q = 0; q < USAGE_BILLING_NQ; q++)
      if (nano_parse_int(words[3 + q], &sums[q]) != 0) {
        snprintf(err, errlen, "bad number in a group line");
        return EINVAL;
      }
    usage_buf_t *key = &t->key;
    usage_buf_reset(key);
    for (size_t g = 0; g < t->conf->group_by_num; g++)
      if (unescape_value(words[3 + USAGE_BILLING_NQ + g], key) != 0) {
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
      parse_i64(words[2], &c) == 0) {
    if ((size_t)a != *ngroups || (size_t)c != *nids) {
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
  int ret = 0, seen_groupby = 0, groups_ok = 0, have_ws = 0, ended = 0;
  size_t ngroups = 0, nids = 0, lineno = 1;
  int64_t prev_id = 0, prev_ev = 0;
  char *p = copy;
  char *nl = strchr(p, '\n');
  if (memchr(copy, 0, len) != NULL || nl == NULL ||
      (size_t)(nl - p) != strlen(STATE_FORMAT) ||
      (strncmp(p, STATE_FORMAT, strlen(STATE_FORMAT)) != 0 &&
       strncmp(p, STATE_FORMAT_1, strlen(STATE_FORMAT_1)) != 0)) {
    snprintf(err, errlen, "not a billing state of format 1 or 2");
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
    if (!ended && (strncmp(p, "id ", 3) == 0 || strncmp(p, "d ", 2) == 0))
      ret = restore_id(t, p, &prev_id, &prev_ev, &nids, lerr, sizeof(lerr));
    else
      ret = restore_line(t, p, &seen_groupby, &groups_ok, &have_ws, &ngroups,
                         &nids, &ended, lerr, sizeof(lerr));
    if (ret != 0) {
      snprintf(err, errlen, "line %zu: %s", lineno, lerr);
      goto out;
    }
    p = nl + 1;
  }
  if (!ended || !have_ws || !seen_groupby) {
    snprintf(err, errlen, "incomplete state (no end line)");
    ret = EINVAL;
    goto out;
  }
  *groups_dropped = !groups_ok && ngroups > 0;
  /* Swap: b takes t's contents, t takes b's old ones and is destroyed. */
  usage_billing_t tmp = *b;
  *b = *t;
  *t = tmp;
out:
  usage_billing_destroy(t);
  free(copy);
  return ret;
}
