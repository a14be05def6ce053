/* SPDX-License-Identifier: MIT */
/* buf: a growable byte buffer with a hard cap. Every writer that builds text
 * or collects a response body goes through it, so no buffer grows without
 * bound and no write is silently truncated: a write past the cap fails and
 * leaves the buffer marked as failed.
 *
 * Memory of USAGE_BUF_MAP_MIN bytes or more is mapped pages of its own
 * (mmap), not malloc's: freeing it always gives it back to the system.
 * From malloc, a large response body freed inside a thread's arena stayed
 * resident (glibc raises its trim threshold after freeing a large chunk,
 * up to 32 MiB per arena), which a source that once met a 16 MiB body
 * kept for the life of the process. */
#ifndef USAGE_BUF_H
#define USAGE_BUF_H 1

#include <stdarg.h>
#include <stddef.h>

/* The struct may be embedded; its fields are private to buf.c (like curl's
 * dynbuf): read it with usage_buf_data, usage_buf_len, usage_buf_failed. */
typedef struct {
  char *data; /* NUL-terminated when len > 0 or after usage_buf_reset */
  size_t len;
  size_t alloc;
  size_t max; /* 0 = SIZE_MAX */
  int failed; /* ENOMEM or EFBIG once a write did not fit */
  int mapped; /* data is an mmap of alloc bytes, not malloc's */
} usage_buf_t;

/* Buffers that grow to this size or more are mapped pages (above). */
#define USAGE_BUF_MAP_MIN ((size_t)256 * 1024)

/* usage_buf_init sets up an empty buffer that may hold at most max bytes. */
void usage_buf_init(usage_buf_t *b, size_t max);
/* usage_buf_free releases the memory; the buffer may be initialised again. */
void usage_buf_free(usage_buf_t *b);
/* usage_buf_reset empties the buffer but keeps its memory for reuse. */
void usage_buf_reset(usage_buf_t *b);
/* usage_buf_shrink empties the buffer and, when it holds more than keep
 * bytes of memory, frees it (the cap stays), so one large body does not
 * stay allocated for the life of a reused buffer. */
void usage_buf_shrink(usage_buf_t *b, size_t keep);
/* usage_buf_reserve makes room for n more bytes (+ NUL). 0 or errno. */
int usage_buf_reserve(usage_buf_t *b, size_t n);
int usage_buf_append(usage_buf_t *b, const void *data, size_t n);
int usage_buf_puts(usage_buf_t *b, const char *s);
int usage_buf_putc(usage_buf_t *b, char c);
int usage_buf_printf(usage_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* usage_buf_data: the bytes, NUL-terminated, or NULL while nothing was
 * ever written; usage_buf_str: the same but "" instead of NULL. */
char *usage_buf_data(const usage_buf_t *b);
const char *usage_buf_str(const usage_buf_t *b);
size_t usage_buf_len(const usage_buf_t *b);
/* usage_buf_failed: 0, or ENOMEM/EFBIG once a write did not fit. */
int usage_buf_failed(const usage_buf_t *b);
/* usage_buf_fail marks the buffer as failed with err (ENOMEM, EFBIG): a
 * writer that failed outside the buffer keeps one error path. */
void usage_buf_fail(usage_buf_t *b, int err);
/* usage_buf_truncate shortens the content to len bytes (len <= length). */
void usage_buf_truncate(usage_buf_t *b, size_t len);
/* usage_buf_steal hands the data to the caller (free() it) and resets b;
 * mapped data is copied into malloc'd memory first: NULL when that fails
 * (the data is then freed all the same). */
char *usage_buf_steal(usage_buf_t *b, size_t *len);

#endif
