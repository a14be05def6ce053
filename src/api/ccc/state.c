/* SPDX-License-Identifier: MIT */
/* ccc/state: the StateFile body of the status-change streams (watermarks,
 * seen GUIDs, counters, newest states): formatting, and strict parsing
 * that rejects any malformed line. Pure; statefile.c does the file I/O. */
#include "api/ccc/internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* State file body, one record a line:
 *   stream KEY WATERMARK
 *   seen KEY CHANGE-GUID CHANGED-ON
 *   count SERVICE STATUS N
 *   last SERVICE CHANGED-ON STATUS|-
 * Times are Unix seconds with milliseconds. */
int usage_ccc_changes_format(const usage_ccc_changes_t *c, usage_buf_t *out) {
  for (size_t i = 0; i < c->streams_num; i++) {
    const usage_ccc_stream_t *st = &c->streams[i];
    usage_buf_printf(out, "stream %s %.3f\n", st->key, st->watermark);
    for (size_t k = 0; k < st->seen_num; k++)
      usage_buf_printf(out, "seen %s %s %.3f\n", st->key, st->seen[k].change,
                       st->seen[k].changed_on);
  }
  for (size_t i = 0; i < c->counts_num; i++)
    usage_buf_printf(out, "count %s %s %" PRIu64 "\n", c->counts[i].service,
                     c->counts[i].status, c->counts[i].count);
  for (size_t i = 0; i < c->lasts_num; i++)
    usage_buf_printf(out, "last %s %.3f %s\n", c->lasts[i].service,
                     c->lasts[i].changed_on,
                     c->lasts[i].status[0] ? c->lasts[i].status : "-");
  return usage_buf_failed(out);
}

static int valid_key(const char *k) {
  char g[33];
  return strcmp(k, "all") == 0 ||
         (strlen(k) == 32 && usage_ccc_guid_normalize(k, g) == 0 &&
          strcmp(g, k) == 0);
}

static int valid_word(const char *w) {
  if (*w == 0 || strlen(w) >= 32)
    return 0;
  for (; *w; w++)
    if (!isalnum((unsigned char)*w) && *w != '_' && *w != '-')
      return 0;
  return 1;
}

/* STATE_TIME_MAX bounds the times a state file may hold: every upstream
 * date is far below it (4-digit years; /Date(ms)/ of at most 17 digits),
 * and "%.3f" of it fits the 63 characters a field is read with, so that
 * what usage_ccc_changes_format writes is always read back. */
#define STATE_TIME_MAX 1e15

/* state_time and state_count read a whole field as a number (sscanf
 * would take "12abc" for 12, and an overflowing count for ULLONG_MAX). */
static int state_time(const char *s, double *t) {
  char *end;
  errno = 0;
  *t = strtod(s, &end);
  return end != s && *end == 0 && errno == 0 && isfinite(*t) &&
         fabs(*t) < STATE_TIME_MAX;
}

static int state_count(const char *s, unsigned long long *n) {
  char *end;
  errno = 0;
  *n = strtoull(s, &end, 10);
  return isdigit((unsigned char)*s) && *end == 0 && errno == 0;
}

int usage_ccc_changes_parse(const char *data, size_t len,
                            usage_ccc_changes_t *c) {
  memset(c, 0, sizeof(*c));
  char *copy = malloc(len + 1);
  if (copy == NULL)
    return ENOMEM;
  memcpy(copy, data, len);
  copy[len] = 0;
  int ret = 0;
  char *save = NULL;
  if (memchr(copy, 0, len) != NULL || (len > 0 && copy[len - 1] != '\n'))
    ret = EINVAL;
  for (char *line = strtok_r(copy, "\n", &save); line != NULL && ret == 0;
       line = strtok_r(NULL, "\n", &save)) {
    char a[64] = "", b2[64] = "", c3[64] = "", d[64] = "", extra[2];
    double t;
    unsigned long long n;
    int fields = sscanf(line, "%63s %63s %63s %63s %1s", a, b2, c3, d, extra);
    if (strcmp(a, "stream") == 0 && fields == 3 && valid_key(b2) &&
        state_time(c3, &t) && t >= 0) {
      usage_ccc_stream_t *st = usage_ccc_stream(c, b2);
      if (st == NULL)
        ret = ENOMEM;
      else
        st->watermark = t;
    } else if (strcmp(a, "seen") == 0 && strlen(c3) == 32 && fields == 4 &&
               valid_key(b2) && valid_key(c3) && strcmp(c3, "all") != 0 &&
               state_time(d, &t)) {
      usage_ccc_stream_t *st = usage_ccc_stream(c, b2);
      usage_ccc_seen_t *p =
          st ? realloc(st->seen, (st->seen_num + 1) * sizeof(*p)) : NULL;
      if (p == NULL) {
        ret = ENOMEM;
        break;
      }
      st->seen = p;
      snprintf(p[st->seen_num].change, sizeof(p->change), "%.32s", c3);
      p[st->seen_num++].changed_on = t;
    } else if (strcmp(a, "count") == 0 && fields == 4 && valid_key(b2) &&
               strcmp(b2, "all") != 0 && valid_word(c3) && state_count(d, &n)) {
      usage_ccc_count_t *slot = usage_ccc_count_slot(c, b2, c3);
      if (slot == NULL)
        ret = ENOMEM;
      else
        slot->count = n;
    } else if (strcmp(a, "last") == 0 && fields == 4 && valid_key(b2) &&
               strcmp(b2, "all") != 0 && state_time(c3, &t) && strlen(d) < 32 &&
               (strcmp(d, "-") == 0 || valid_word(d))) {
      usage_ccc_last_t *slot = usage_ccc_last_slot(c, b2);
      if (slot == NULL) {
        ret = ENOMEM;
      } else {
        slot->changed_on = t;
        snprintf(slot->status, sizeof(slot->status), "%.31s",
                 strcmp(d, "-") == 0 ? "" : d);
      }
    } else {
      ret = EINVAL;
    }
  }
  free(copy);
  if (ret != 0)
    usage_ccc_changes_clear(c);
  return ret;
}
