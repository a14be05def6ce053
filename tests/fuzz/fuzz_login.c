/* SPDX-License-Identifier: MIT */
/* fuzz_login: a sign-in answer as usage_login_parse reads it: the token
 * from a dotted field of the JSON body (or a response header: the input as
 * the header's value) with its lifetime from expires_in or the JWT's iat
 * and exp claims; and usage_login_jwt_claims on the raw input as a token. */
#include "fuzz_common.h"
#include "login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *body = fuzz_copy(data, size);
  char *text = fuzz_cstr(data, size);
  if (body == NULL || text == NULL) {
    free(body);
    free(text);
    return 0;
  }
  static const struct {
    const char *token_field, *token_header, *expires_field;
  } confs[] = {
      {"token", NULL, NULL},
      {"access_token", NULL, "expires_in"},
      {"data.token", NULL, "data.expires"},
      {NULL, "X-Auth-Token", NULL},
  };
  for (size_t i = 0; i < sizeof(confs) / sizeof(*confs); i++) {
    usage_login_conf_t c = {0};
    c.token_field = (char *)confs[i].token_field;
    c.token_header = (char *)confs[i].token_header;
    c.expires_field = (char *)confs[i].expires_field;
    char *token = NULL, err[256];
    double life = -1;
    if (usage_login_parse(&c, body, size, c.token_header ? text : NULL,
                          1700000000.0, &token, &life, err, sizeof(err)) == 0 &&
        !(life > 0))
      abort(); /* a token always has a lifetime */
    free(token);
  }
  double iat, exp;
  if (usage_login_jwt_claims(text, &iat, &exp) == 0)
    usage_login_jwt_lifetime(iat, exp, 1700000000.0);
  free(body);
  free(text);
  return 0;
}
