/* SPDX-License-Identifier: MIT */
/* ccc/errors: the API's error envelope (ServiceStack ResponseStatus:
 * errorCode and message, never the stack trace) and telling a documented
 * refusal (a Blocked or Provisioning service) from a failure. Pure. */
#include "api/ccc/internal.h"
#include "json.h"
#include "text.h"

#include <string.h>

void usage_ccc_api_error(const char *body, size_t len, char *code,
                         size_t code_size, char *message, size_t msg_size) {
  char err[64];
  code[0] = message[0] = 0;
  usage_json_t *root = usage_json_parse(body, len, 0, err, sizeof(err));
  if (root == NULL)
    return;
  const usage_json_t *rs = usage_json_get(root, "responseStatus");
  const char *c = usage_json_text(rs, "errorCode");
  const char *m = usage_json_str(rs, "message");
  /* a validation failure may say it only in errors[]: the first one */
  const usage_json_t *errs = usage_json_get(rs, "errors");
  const usage_json_t *first =
      usage_json_type(errs) == USAGE_JSON_ARRAY ? usage_json_at(errs, 0) : NULL;
  if (c == NULL || *c == 0)
    c = usage_json_text(first, "errorCode");
  if (m == NULL || *m == 0)
    m = usage_json_str(first, "message");
  usage_text_clean(code, code_size, c);
  usage_text_clean(message, msg_size, m);
  usage_json_free(root);
}

static int contains_ci(const char *hay, const char *needle) {
  return hay && strcasestr(hay, needle) != NULL;
}

const char *usage_ccc_refusal(long status, const char *code,
                              const char *message, const char **reason) {
  *reason = NULL;
  /* The API documents that the report fails for a Blocked or Provisioning
   * service, not with which status: recognise the state in the error's
   * code or message, whatever the status (a 401 or 429 is about the
   * client, never the service). */
  if (status < 400 || status == 401 || status == 429)
    return NULL;
  if (contains_ci(code, "block") || contains_ci(message, "block")) {
    *reason = "service_blocked";
    return "Blocked";
  }
  if (contains_ci(code, "provision") || contains_ci(message, "provision")) {
    *reason = "service_provisioning";
    return "Provisioning";
  }
  if (status == 404)
    *reason = "service_unknown";
  return NULL;
}
