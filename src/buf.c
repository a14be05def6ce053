/* SPDX-License-Identifier: MIT */
/* buf: growable, capped byte buffers (see buf.h). */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- memory: malloc below USAGE_BUF_MAP_MIN, mapped pages above ---- */

static size_t page_round(size_t n) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (page == 0 || page > 65536)
    page = 4096;
  return n > SIZE_MAX - page ? 0 : (n + page - 1) / page * page;
}

static void mem_free(usage_buf_t *b) {
  if (b->data == NULL)
    return;
  if (b->mapped)
    munmap(b->data, b->alloc);
  else
    free(b->data);
}

/* mem_grow gives b->data (len bytes used) alloc bytes at least: the new
 * size in *alloc (rounded to pages when mapped). 0 or ENOMEM (b as it was). */
static int mem_grow(usage_buf_t *b, size_t *alloc) {
  if (*alloc < USAGE_BUF_MAP_MIN) {
    char *p = realloc(b->data, *alloc);
    if (p == NULL)
      return ENOMEM;
    b->data = p;
    return 0;
  }
  size_t size = page_round(*alloc);
  if (size == 0)
    return ENOMEM;
  void *p;
  if (b->mapped) {
    p = mremap(b->data, b->alloc, size, MREMAP_MAYMOVE);
    if (p == MAP_FAILED)
      return ENOMEM;
  } else {
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED)
      return ENOMEM;
    if (b->data != NULL)
      memcpy(p, b->data, b->len);
    free(b->data);
  }
  b->data = p;
  b->mapped = 1;
  *alloc = size;
  return 0;
}

/* ---- the buffer ---- */

void usage_buf_init(usage_buf_t *b, size_t max) {
  memset(b, 0, sizeof(*b));
  b->max = max ? max : SIZE_MAX - 1;
}

void usage_buf_free(usage_buf_t *b) {
  if (b == NULL)
    return;
  mem_free(b);
  b->data = NULL;
  b->len = b->alloc = 0;
  b->failed = 0;
  b->mapped = 0;
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
  if (mem_grow(b, &alloc) != 0) {
    b->failed = ENOMEM;
    return ENOMEM;
  }
  b->data[b->len] = 0; /* fresh memory: keep data a string even when empty */
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
  if (b->mapped) {
    p = malloc(b->len + 1);
    if (p != NULL)
      memcpy(p, b->data, b->len + 1);
    mem_free(b);
  } else if (p == NULL) {
    p = calloc(1, 1);
  }
  if (len != NULL)
    *len = b->len;
  b->data = NULL;
  b->len = b->alloc = 0;
  b->failed = 0;
  b->mapped = 0;
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
