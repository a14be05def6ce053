/* SPDX-License-Identifier: MIT */
/* ccc/internal: what the CCC vendor's files share privately: the
 * ServiceStatus enum, parser helpers, the slots of the status-change state
 * and refusal detection. Not for use outside src/api/ccc/. */
#ifndef USAGE_API_CCC_INTERNAL_H
#define USAGE_API_CCC_INTERNAL_H 1

#include "api/ccc/ccc.h"

#include <stddef.h>

/* The ServiceStatus enum, in the API's order (numbers index it). */
#define USAGE_CCC_NSTATES 8
extern const char *const usage_ccc_states[USAGE_CCC_NSTATES];

/* usage_ccc_bad_field counts a field left out in res and keeps the first
 * one's name and why ("totalUserCount: wrong type"). */
void usage_ccc_bad_field(usage_parse_result_t *res, const char *field,
                         int status);

/* usage_ccc_enum_name maps an enum sent as its number (index into names,
 * n of them) to its name; any other text is returned as is. */
const char *usage_ccc_enum_name(const char *v, const char *const *names,
                                size_t n);

/* usage_ccc_service_status copies the "status" of a GetServiceUsage body,
 * cleaned for a log line, into out. 1 when there is one, else 0. */
int usage_ccc_service_status(const char *body, size_t len, char *out,
                             size_t size);

/* Slots of usage_ccc_changes_t, found or appended (zeroed): NULL on ENOMEM,
 * c unchanged then. Pointers are valid until the next append. */
usage_ccc_count_t *usage_ccc_count_slot(usage_ccc_changes_t *c,
                                        const char *service,
                                        const char *status);
usage_ccc_last_t *usage_ccc_last_slot(usage_ccc_changes_t *c,
                                      const char *service);
/* usage_ccc_ensure_service makes the 8 counters and the last slot of a
 * service exist, so its counters are published from 0. 0 or ENOMEM. */
int usage_ccc_ensure_service(usage_ccc_changes_t *c, const char *service);

/* usage_ccc_refusal tells a non-200 answer to GetServiceUsage that is the
 * API's documented refusal to report on a Blocked or Provisioning service
 * (recognised in the error's code or message; never for 401 or 429, which
 * are about the client). Returns that state's name and sets *reason
 * ("service_blocked", "service_provisioning"); else returns NULL with
 * *reason "service_unknown" for a 404, NULL otherwise (the HTTP reason
 * applies). */
const char *usage_ccc_refusal(long status, const char *code,
                              const char *message, const char **reason);

#endif
