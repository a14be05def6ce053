/* SPDX-License-Identifier: MIT */
/* text: log-line cleaning and redaction of upstream text (see text.h). */
#include "text.h"

#include <string.h>

void usage_text_clean(char *dst, size_t size, const char *s) {
  if (size == 0)
    return;
  size_t n = 0;
  for (; s != NULL && *s && n + 1 < size; s++)
    dst[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
  dst[n] = 0;
}

#define ELLIPSIS "\xe2\x80\xa6"

static int mail_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || strchr("._%+-@", c) != NULL;
}

/* put appends n bytes of p if they fit whole; 0 when dst is full. */
static int put(char *dst, size_t size, size_t *len, const char *p, size_t n) {
  if (*len + n + 1 > size)
    return 0;
  memcpy(dst + *len, p, n);
  *len += n;
  return 1;
}

void usage_text_redact(char *dst, size_t size, const char *s) {
  if (size == 0)
    return;
  size_t n = 0;
  const char *p = s ? s : "";
  while (*p) {
    char c = *p;
    if (c == '"' ||
        (c == '\'' && (p == s || strchr(" \t=:(,[", p[-1]) != NULL) &&
         strchr(p + 1, '\'') != NULL)) {
      const char *close = strchr(p + 1, c);
      if (!put(dst, size, &n, &c, 1) ||
          !put(dst, size, &n, ELLIPSIS, sizeof(ELLIPSIS) - 1))
        break;
      if (close == NULL)
        break;
      if (!put(dst, size, &n, &c, 1))
        break;
      p = close + 1;
      continue;
    }
    if (mail_char(c)) {
      size_t run = 0;
      while (p[run] && mail_char(p[run]))
        run++;
      const char *at = memchr(p, '@', run);
      int mail = at != NULL && at > p && at + 1 < p + run;
      if (!put(dst, size, &n, mail ? ELLIPSIS : p,
               mail ? sizeof(ELLIPSIS) - 1 : run))
        break;
      p += run;
      continue;
    }
    char o = ((unsigned char)c < 0x20 || c == 0x7f) ? ' ' : c;
    if (!put(dst, size, &n, &o, 1))
      break;
    p++;
  }
  dst[n] = 0;
}
