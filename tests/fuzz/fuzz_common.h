/* SPDX-License-Identifier: MIT */
/* fuzz_common: what every libFuzzer harness of tests/fuzz shares. The input
 * is copied into a buffer of exactly its size (no NUL after it), so a parser
 * that reads past the length it was given trips AddressSanitizer. */
#ifndef USAGE_FUZZ_COMMON_H
#define USAGE_FUZZ_COMMON_H 1

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_copy: a malloc'd copy of data without a terminator (NULL on ENOMEM);
 * one byte for an empty input, so that the pointer is never NULL. */
static inline char *fuzz_copy(const uint8_t *data, size_t size) {
  char *p = malloc(size ? size : 1);
  if (p != NULL && size > 0)
    memcpy(p, data, size);
  return p;
}

/* fuzz_cstr: a malloc'd NUL-terminated copy, for the functions that take a
 * C string (NULL on ENOMEM). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
  char *p = malloc(size + 1);
  if (p != NULL) {
    memcpy(p, data, size);
    p[size] = 0;
  }
  return p;
}

#endif
