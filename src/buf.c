/* SPDX-License-Identifier: MIT */
/* buf: growable, capped byte buffers (see buf.h). */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void usage_buf_init(usage_buf_t *b, size_t max) {
  memset(b, 0, sizeof(*b));
  b->max = max ? max : SIZE_MAX - 1;
}

void usage_buf_free(usage_buf_t *b) {
  if (b == NULL)
    return;
  free(b->data);
  b->data = NULL;
  b->len = b->alloc = 0;
  b->failed = 0;
}

void usage_buf_reset(usage_buf_t *b) {
  b->len = 0;
  b->failed = 0;
  if (b->data != NULL)
    b->data[0] = 0;
}

void usage_buf_shrink(usage_buf_t *b, size_t keep) {
  if (b->alloc > keep)
    usage_buf_free(b);
  else
    usage_buf_reset(b);
}

int usage_buf_reserve(usage_buf_t *b, size_t n) {
  if (b->failed)
    return b->failed;
  if (n > b->max || b->len > b->max - n) {
    b->failed = EFBIG;
    return EFBIG;
  }
  size_t need = b->len + n + 1;
  if (need <= b->alloc)
    return 0;
  size_t alloc = b->alloc ? b->alloc : 256;
  while (alloc < need)
    alloc = alloc > SIZE_MAX / 2 ? need : alloc * 2;
  char *p = realloc(b->data, alloc);
  if (p == NULL) {
    b->failed = ENOMEM;
    return ENOMEM;
  }
  p[b->len] = 0; /* fresh memory: keep data a string even when empty */
  b->data = p;
  b->alloc = alloc;
  return 0;
}

int usage_buf_append(usage_buf_t *b, const void *data, size_t n) {
  int status = usage_buf_reserve(b, n);
  if (status != 0)
    return status;
  if (n > 0)
    memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = 0;
  return 0;
}

int usage_buf_puts(usage_buf_t *b, const char *s) {
  return usage_buf_append(b, s, strlen(s));
}

int usage_buf_putc(usage_buf_t *b, char c) {
  return usage_buf_append(b, &c, 1);
}

int usage_buf_printf(usage_buf_t *b, const char *fmt, ...) {
  va_list ap;
  char small[256];
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = EINVAL;
    return EINVAL;
  }
  if ((size_t)n < sizeof(small))
    return usage_buf_append(b, small, (size_t)n);
  int status = usage_buf_reserve(b, (size_t)n);
  if (status != 0)
    return status;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

char *usage_buf_steal(usage_buf_t *b, size_t *len) {
  char *p = b->data;
  if (len != NULL)
    *len = b->len;
  if (p == NULL)
    p = calloc(1, 1);
  b->data = NULL;
  b->len = b->alloc = 0;
  b->failed = 0;
  return p;
}

char *usage_buf_data(const usage_buf_t *b) { return b->data; }

const char *usage_buf_str(const usage_buf_t *b) {
  return b->data != NULL ? b->data : "";
}

size_t usage_buf_len(const usage_buf_t *b) { return b->len; }

int usage_buf_failed(const usage_buf_t *b) { return b->failed; }

void usage_buf_truncate(usage_buf_t *b, size_t len) {
  if (len < b->len) {
    b->len = len;
    b->data[len] = 0;
  }
}

void usage_buf_fail(usage_buf_t *b, int err) {
  if (!b->failed)
    b->failed = err;
}
