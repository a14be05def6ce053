/* SPDX-License-Identifier: MIT */
/* jasper/errors.c: the vendor's error-code table (what each code means and
 * which error reason it counts under), reading errorCode and errorMessage
 * from an error body, and the text copier the Jasper files share. Pure. */
#include "api/jasper/internal.h"
#include "text.h"

#include <string.h>
#include <strings.h>

#include <yajl/yajl_parse.h>

static const usage_jasper_error_t jasper_errors[] = {
    {"10000001", "auth", 0,
     "invalid credentials or IP address not allowed (check User, the API key "
     "in Password/PasswordFile, and the account's allowed IP range)"},
    {"10000006", "bad_request", 0, "invalid pageSize"},
    {"10000007", "bad_request", 0,
     "invalid pageNumber (the rate plan shrank while it was paged?)"},
    {"10000012", "bad_cycle_start_date", 0,
     "invalid date format in CycleStartDate"},
    {"10000013", "rate_plan_unknown", 1,
     "no such rate plan (or not visible to this user)"},
    {"10000024", "bad_request", 0, "invalid apiVersion"},
    {"10000030", "access_denied", 1,
     "the user's role does not have access to this API function"},
    {"10000062", "access_denied", 1, "access denied"},
    {"10000441", "rate_plan_version", 1, "invalid rate plan version"},
    {"10000442", "rate_plan_ambiguous", 1,
     "more than one rate plan has this name: add the version as the second "
     "value, e.g. RatePlan \"NAME\" 2"},
    {"10000443", "bad_cycle_start_date", 0,
     "CycleStartDate does not start a valid billing cycle"},
    {"20000058", "rate_plan_shared", 1,
     "shared rate plans cannot be queried by this API"},
    /* the vendor's catch-all, also sent with 401, 404 and 429: counted
     * by the HTTP status (usage_jasper_error_reason) */
    {"30000001", NULL, 0, "unknown server error"},
    {"30000003", "bad_request", 0, "invalid usage type"},
};

const char *const usage_jasper_reasons[] = {
    "rate_plan_unknown",    "rate_plan_ambiguous",
    "rate_plan_shared",     "rate_plan_version",
    "bad_cycle_start_date", "access_denied",
    "bad_request",          "overflow",
    "decrease_held",        NULL};

const usage_jasper_error_t *usage_jasper_error_lookup(const char *code) {
  if (code == NULL)
    return NULL;
  for (size_t i = 0; i < sizeof(jasper_errors) / sizeof(*jasper_errors); i++)
    if (strcmp(jasper_errors[i].code, code) == 0)
      return &jasper_errors[i];
  return NULL;
}

const char *usage_jasper_error_reason(const usage_jasper_error_t *e,
                                      long status, const char **text) {
  *text = e->text;
  if (e->reason != NULL)
    return e->reason;
  const char *reason = usage_source_http_reason(0, status);
  if (strcmp(reason, "auth") == 0)
    *text = "the credentials were refused (check User and the API key in "
            "Password/PasswordFile)";
  else if (strcmp(reason, "rate_limited") == 0)
    *text = "rate limited by the vendor";
  else if (status == 404)
    *text = "not found (check URL)";
  else if (strcmp(reason, "http_4xx") == 0)
    *text = "request refused";
  else
    reason = "http_5xx"; /* a server error, whatever the status */
  return reason;
}

/* The copy goes through a bounded scratch buffer: dst gets at most
 * sizeof(tmp) - 1 bytes, more than any Jasper field keeps. */
void usage_jasper_text_copy(char *dst, size_t size, const char *s, size_t n,
                            int ascii) {
  char tmp[512];
  if (size == 0)
    return;
  if (size > sizeof(tmp))
    size = sizeof(tmp);
  if (n >= size) {
    n = size - 1;
    while (!ascii && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
      n--; /* s[n] starts a character (or is the end) */
  }
  /* usage_text_clean stops at a NUL and keeps bytes outside ASCII: map
   * those first, then let it replace the control characters. */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    tmp[i] = c == 0 ? ' ' : ascii && c >= 0x80 ? '?' : (char)c;
  }
  tmp[n] = 0;
  usage_text_clean(dst, size, tmp);
}

/* ---- error bodies ------------------------------------------------------ */

typedef struct {
  int depth;
  int key; /* 1 errorCode, 2 errorMessage */
  char *code, *msg;
  size_t code_size, msg_size;
} errparse_t;

static int ep_scalar(errparse_t *e, const char *s, size_t n) {
  if (e->depth == 1 && e->key == 1)
    usage_jasper_text_copy(e->code, e->code_size, s, n, 1);
  else if (e->depth == 1 && e->key == 2)
    usage_jasper_text_copy(e->msg, e->msg_size, s, n, 1);
  e->key = 0;
  return 1;
}
static int ep_null(void *c) { return ep_scalar(c, "", 0); }
static int ep_bool(void *c, int b) { return ep_scalar(c, "", 0); }
static int ep_number(void *c, const char *s, size_t n) {
  return ep_scalar(c, s, n);
}
static int ep_string(void *c, const unsigned char *s, size_t n) {
  return ep_scalar(c, (const char *)s, n);
}
static int ep_start(void *c) {
  errparse_t *e = c;
  e->key = 0;
  return ++e->depth <= 32;
}
static int ep_end(void *c) {
  ((errparse_t *)c)->depth--;
  return 1;
}
static int ep_key(void *c, const unsigned char *k, size_t n) {
  errparse_t *e = c;
  e->key = 0;
  if (n == 9 && strncasecmp((const char *)k, "errorCode", 9) == 0)
    e->key = 1;
  else if (n == 12 && strncasecmp((const char *)k, "errorMessage", 12) == 0)
    e->key = 2;
  return 1;
}

void usage_jasper_api_error(const char *body, size_t len, char *code,
                            size_t code_size, char *message, size_t msg_size) {
  static const yajl_callbacks cb = {ep_null,   ep_bool,   NULL,     NULL,
                                    ep_number, ep_string, ep_start, ep_key,
                                    ep_end,    ep_start,  ep_end};
  code[0] = message[0] = 0;
  errparse_t e = {.code = code,
                  .msg = message,
                  .code_size = code_size,
                  .msg_size = msg_size};
  yajl_handle h = yajl_alloc(&cb, NULL, &e);
  if (h == NULL || body == NULL || len == 0) {
    if (h != NULL)
      yajl_free(h);
    return;
  }
  /* ISO-8859-1 messages are not UTF-8: take the bytes, clean them later. */
  yajl_config(h, yajl_dont_validate_strings, 1);
  if (yajl_parse(h, (const unsigned char *)body, len) != yajl_status_ok ||
      yajl_complete_parse(h) != yajl_status_ok) {
    /* Not JSON (an HTML error page, a truncated body): no code. */
    code[0] = message[0] = 0;
  }
  yajl_free(h);
}
