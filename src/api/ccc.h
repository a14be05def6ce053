/* SPDX-License-Identifier: MIT */
/* ccc: the CCC secure-messaging API (GetServiceUsage): request building,
 * parsing into samples, and the vendor's scrape. */
#ifndef USAGE_API_CCC_H
#define USAGE_API_CCC_H 1

#include "source.h"
#include "store.h"

#include <stddef.h>

typedef struct {
  char guid[33]; /* 32 lowercase hex digits */
} usage_ccc_service_t;

typedef struct {
  usage_ccc_service_t *services;
  size_t services_num;
} usage_ccc_conf_t;

extern const usage_vendor_t usage_ccc_vendor;

/* usage_guid_normalize accepts a GUID with or without dashes and braces, in
 * any case, and writes 32 lowercase hex digits to out. 0 or EINVAL. */
int usage_guid_normalize(const char *in, char out[33]);

/* What a parser tells besides its samples. */
typedef struct {
  char error[256]; /* why the body was rejected (then nothing is added) */
  unsigned bad_fields;
  char bad_field[160]; /* the first bad field, e.g. "totalUserCount: wrong type"
                        */
} usage_parse_result_t;

/* usage_ccc_parse_service_usage parses a GetServiceUsage body and adds the
 * usage_ccc_service_* samples of `service` to b. A field of the wrong type
 * or out of range is left out and counted in res->bad_fields. 0, or EINVAL
 * (body unusable, res->error says why; b is then unchanged in its meaning:
 * the caller discards it). */
int usage_ccc_parse_service_usage(const char *body, size_t len,
                                  const char *service, usage_batch_t *b,
                                  usage_parse_result_t *res);

/* usage_ccc_add_status adds the 0/1 usage_ccc_service_status set of a
 * service, `status` being the API's name (or its number as text). */
int usage_ccc_add_status(usage_batch_t *b, const char *service,
                         const char *status);

/* usage_ccc_api_error extracts responseStatus.errorCode and .message from an
 * error body (never the stack trace). Empty strings when absent. */
void usage_ccc_api_error(const char *body, size_t len, char *code,
                         size_t code_size, char *message, size_t msg_size);

#endif
