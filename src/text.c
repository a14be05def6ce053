/* SPDX-License-Identifier: MIT */
/* text: log-line cleaning of upstream text (see text.h). */
#include "text.h"

void usage_text_clean(char *dst, size_t size, const char *s) {
  if (size == 0)
    return;
  size_t n = 0;
  for (; s != NULL && *s && n + 1 < size; s++)
    dst[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
  dst[n] = 0;
}
