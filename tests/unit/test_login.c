/* SPDX-License-Identifier: MIT */
/* test_login: <Login> presets, sign-in bodies, token and lifetime from the
 * answer, the JWT exp claim, backoff; no secret in any error text. */
#include "login.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define SECRET "s3cr\"et&=+ x"

static char secret_file[64];

static int setup(void **state) {
  (void)state;
  snprintf(secret_file, sizeof(secret_file), "/tmp/test_login.XXXXXX");
  int fd = mkstemp(secret_file);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, SECRET "\n", strlen(SECRET) + 1),
                   (ssize_t)strlen(SECRET) + 1);
  close(fd);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(secret_file);
  return 0;
}

static usage_login_conf_t *finish(usage_login_conf_t *c, const char *base) {
  const char *option = NULL;
  char err[256];
  int status = usage_login_conf_finish(c, base, &option, err, sizeof(err));
  if (status != 0)
    fail_msg("finish: %s: %s", option ? option : "-", err);
  return c;
}

static char *build(usage_login_conf_t *c, char **auth) {
  usage_login_req_t req = {0};
  char err[256];
  int status = usage_login_build(c, &req, err, sizeof(err));
  if (status != 0)
    fail_msg("build: %s", err);
  char *body = strdup(usage_buf_str(&req.body));
  if (auth != NULL)
    *auth = req.auth_header ? strdup(req.auth_header) : NULL;
  usage_login_req_free(&req);
  return body;
}

static void test_preset_ccc(void **state) {
  (void)state;
  usage_login_conf_t *c = usage_login_conf_create();
  c->preset = USAGE_LOGIN_PRESET_CCC;
  c->user = strdup("mon\"itor");
  c->password.file = strdup(secret_file);
  finish(c, "http://127.0.0.1:1/base");
  assert_string_equal(c->url, "http://127.0.0.1:1/base/api/login");
  assert_string_equal(c->method, "POST");
  assert_string_equal(c->token_field, "SessionToken");
  assert_string_equal(c->send_header, "x-sm-session-token");
  assert_string_equal(c->send_prefix, "");
  char *body = build(c, NULL);
  assert_string_equal(body, "{\"Username\":\"mon\\\"itor\",\"Password\":"
                            "\"s3cr\\\"et&=+ x\"}");
  free(body);
  usage_buf_t h;
  usage_buf_init(&h, 0);
  usage_login_header(c, "tok", &h);
  assert_string_equal(usage_buf_str(&h), "x-sm-session-token: tok");
  usage_buf_free(&h);
  usage_login_conf_free(c);
}

static void test_preset_oauth2(void **state) {
  (void)state;
  static const struct {
    const char *name;
    usage_login_client_auth_t auth;
    const char *scope;
    const char *body;
    const char *header;
  } cases[] = {
      {"basic", USAGE_LOGIN_AUTH_UNSET, "usage.read",
       "grant_type=client_credentials&scope=usage.read",
       /* base64("id%3Ax:s3cr%22et%26%3D%2B%20x") */
       "Authorization: Basic "
       "aWQlM0F4OnMzY3IlMjJldCUyNiUzRCUyQiUyMHg="},
      {"post", USAGE_LOGIN_AUTH_POST, NULL,
       "grant_type=client_credentials&client_id=id%3Ax&client_secret="
       "s3cr%22et%26%3D%2B%20x",
       NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_login_conf_t *c = usage_login_conf_create();
    c->preset = USAGE_LOGIN_PRESET_OAUTH2;
    c->url = strdup("https://auth.example.net/oauth2/token");
    c->client_id = strdup("id:x");
    c->client_secret.file = strdup(secret_file);
    c->client_auth = cases[i].auth;
    if (cases[i].scope)
      c->scope = strdup(cases[i].scope);
    finish(c, "http://127.0.0.1:1");
    assert_string_equal(c->url, "https://auth.example.net/oauth2/token");
    assert_string_equal(c->token_field, "access_token");
    assert_string_equal(c->expires_field, "expires_in");
    assert_string_equal(c->send_header, "Authorization");
    assert_string_equal(c->send_prefix, "Bearer ");
    char *auth = NULL;
    char *body = build(c, &auth);
    assert_string_equal(body, cases[i].body);
    if (cases[i].header)
      assert_string_equal(auth, cases[i].header);
    else
      assert_null(auth);
    free(body);
    free(auth);
    usage_login_conf_free(c);
  }
}

static void test_explicit_overrides(void **state) {
  (void)state;
  usage_login_conf_t *c = usage_login_conf_create();
  c->preset = USAGE_LOGIN_PRESET_CCC;
  c->user = strdup("u");
  c->password.file = strdup(secret_file);
  c->url = strdup("/v2/login");
  c->token_field = strdup("data.token");
  c->send_header = strdup("X-Token");
  c->send_prefix = strdup("T ");
  finish(c, "http://h/api");
  assert_string_equal(c->url, "http://h/api/v2/login");
  assert_string_equal(c->token_field, "data.token");
  usage_buf_t h;
  usage_buf_init(&h, 0);
  usage_login_header(c, "abc", &h);
  assert_string_equal(usage_buf_str(&h), "X-Token: T abc");
  usage_buf_free(&h);
  usage_login_conf_free(c);
}

static void test_generic_bodies(void **state) {
  (void)state;
  static const struct {
    usage_login_format_t format;
    const char *body;
  } cases[] = {
      {USAGE_LOGIN_FORMAT_JSON,
       "{\"user\\nname\":\"a\\\\b\\u0001\",\"password\":\"s3cr\\\"et&=+ x\"}"},
      {USAGE_LOGIN_FORMAT_FORM,
       "user%0Aname=a%5Cb%01&password=s3cr%22et%26%3D%2B%20x"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_login_conf_t *c = usage_login_conf_create();
    c->url = strdup("/authenticate");
    c->format = cases[i].format;
    c->token_field = strdup("token");
    assert_int_equal(
        usage_login_conf_add_field(c, "user\nname", "a\\b\x01", NULL), 0);
    assert_int_equal(
        usage_login_conf_add_field(c, "password", NULL, secret_file), 0);
    finish(c, "http://h");
    char *body = build(c, NULL);
    assert_string_equal(body, cases[i].body);
    free(body);
    usage_login_conf_free(c);
  }
}

/* jwt builds header.payload.sig with the payload base64url-encoded. */
static char *jwt(const char *payload) {
  usage_buf_t b;
  usage_buf_init(&b, 0);
  usage_buf_puts(&b, "eyJhbGciOiJIUzI1NiJ9.");
  usage_login_base64(&b, payload, strlen(payload));
  usage_buf_puts(&b, ".c2ln");
  char *s = usage_buf_steal(&b, NULL);
  for (char *p = s; *p; p++)
    *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
  char *eq = strchr(s, '=');
  if (eq && eq < strrchr(s, '.'))
    memmove(eq, strrchr(s, '.'), strlen(strrchr(s, '.')) + 1);
  return s;
}

static void test_jwt_exp(void **state) {
  (void)state;
  double exp = 0;
  char *t = jwt("{\"sub\":\"x\",\"exp\":1700000003}");
  assert_int_equal(usage_login_jwt_exp(t, &exp), 0);
  assert_true(exp == 1700000003.0);
  free(t);
  t = jwt("{\"sub\":\"xy\"}");
  assert_int_equal(usage_login_jwt_exp(t, &exp), ENOENT);
  free(t);
  assert_int_equal(usage_login_jwt_exp("opaque-token", &exp), ENOENT);
  assert_int_equal(usage_login_jwt_exp("a.!!!.b", &exp), ENOENT);
}

/* A sign-in server whose clock is ahead of ours or behind it: the token's
 * lifetime is read the same, never expired on arrival, never longer than
 * it lives. Our clock reads 1000000 when the answer arrives. */
static void test_jwt_lifetime(void **state) {
  (void)state;
  static const struct {
    const char *name;
    double iat, exp; /* iat -1: no iat claim */
    double want_min, want_max;
  } cases[] = {
      {"same clock", 1000000, 1000900, 900, 900},
      {"same clock, iat rounded, answer took 0.5 s", 999999, 1000899.5, 899.5,
       899.5},
      {"server 10 min ahead", 1000600, 1001500, 899, 899},
      {"server 10 min behind", 999400, 1000300, 899, 899},
      {"server 3 s ahead, short token", 1000003, 1000006, 2, 2},
      {"server 3 s behind, short token", 999997, 1000000, 2, 2},
      {"server 1 h ahead, 15 min token", 1003600, 1004500, 899, 899},
      {"2 s token, same clock", 1000000, 1000002, 2, 2},
      {"2 s token, server 10 min behind", 999400, 999402, 1, 1},
      {"no iat: exp - now", -1, 1000900, 900, 900},
      {"no iat, expired on arrival: unknown", -1, 999000, 0, 0},
      {"iat after exp: exp - now", 1000900, 1000300, 300, 300},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    double got =
        usage_login_jwt_lifetime(cases[i].iat, cases[i].exp, 1000000.0);
    if (got < cases[i].want_min - 1e-9 || got > cases[i].want_max + 1e-9)
      fail_msg("%s: lifetime %g, want %g..%g", cases[i].name, got,
               cases[i].want_min, cases[i].want_max);
  }
  /* the claims as usage_login_parse reads them */
  double iat = 0, exp = 0;
  char *t = jwt("{\"sub\":\"x\",\"iat\":1000600,\"exp\":1001500}");
  assert_int_equal(usage_login_jwt_claims(t, &iat, &exp), 0);
  assert_true(iat == 1000600 && exp == 1001500);
  free(t);
  t = jwt("{\"exp\":1001500}");
  assert_int_equal(usage_login_jwt_claims(t, &iat, &exp), 0);
  assert_true(iat == -1 && exp == 1001500);
  free(t);
}

static void test_parse(void **state) {
  (void)state;
  char *j = jwt("{\"exp\":1000003}");
  char jbody[512];
  snprintf(jbody, sizeof(jbody), "{\"token\":\"%s\"}", j);
  /* the same 300 s token from servers 10 min ahead and behind */
  char *ja = jwt("{\"iat\":1000600,\"exp\":1000900}");
  char *jb = jwt("{\"iat\":999400,\"exp\":999700}");
  char jabody[512], jbbody[512];
  snprintf(jabody, sizeof(jabody), "{\"token\":\"%s\"}", ja);
  snprintf(jbbody, sizeof(jbbody), "{\"token\":\"%s\"}", jb);
  static const char *const no_header = NULL;
  const struct {
    const char *name, *token_field, *token_header, *expires_field;
    double ttl;
    const char *body, *header;
    int want;
    const char *token;
    double lifetime;
  } cases[] = {
      {"plain", "token", NULL, NULL, 0, "{\"token\":\"abc\"}", NULL, 0, "abc",
       300},
      {"ttl", "token", NULL, NULL, 60, "{\"token\":\"abc\"}", NULL, 0, "abc",
       60},
      {"dotted", "data.token", NULL, NULL, 0, "{\"data\":{\"token\":\"d\"}}",
       NULL, 0, "d", 300},
      {"expires", "access_token", NULL, "expires_in", 60,
       "{\"access_token\":\"x\",\"expires_in\":3600}", NULL, 0, "x", 3600},
      {"expires string", "access_token", NULL, "expires_in", 60,
       "{\"access_token\":\"x\",\"expires_in\":\"90\"}", NULL, 0, "x", 90},
      {"expires absent", "access_token", NULL, "expires_in", 60,
       "{\"access_token\":\"x\"}", NULL, 0, "x", 60},
      {"jwt", "token", NULL, NULL, 60, jbody, NULL, 0, j, 3},
      {"jwt, server clock ahead", "token", NULL, NULL, 60, jabody, NULL, 0, ja,
       299},
      {"jwt, server clock behind", "token", NULL, NULL, 60, jbbody, NULL, 0, jb,
       299},
      {"header", NULL, "X-Auth-Token", NULL, 0, "", "hdr", 0, "hdr", 300},
      {"header missing", NULL, "X-Auth-Token", NULL, 0, "{}", no_header, EINVAL,
       NULL, 0},
      {"missing", "token", NULL, NULL, 0, "{\"tok\":\"abc\"}", NULL, EINVAL,
       NULL, 0},
      {"number", "token", NULL, NULL, 0, "{\"token\":5}", NULL, EINVAL, NULL,
       0},
      {"not json", "token", NULL, NULL, 0, "<html>", NULL, EINVAL, NULL, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_login_conf_t c = {0};
    c.token_field = (char *)cases[i].token_field;
    c.token_header = (char *)cases[i].token_header;
    c.expires_field = (char *)cases[i].expires_field;
    c.ttl = cases[i].ttl;
    char *token = NULL, err[256] = "";
    double life = 0;
    int status = usage_login_parse(&c, cases[i].body, strlen(cases[i].body),
                                   cases[i].header, 1000000, &token, &life, err,
                                   sizeof(err));
    if (status != cases[i].want)
      fail_msg("%s: status %d, want %d (%s)", cases[i].name, status,
               cases[i].want, err);
    if (status == 0) {
      assert_string_equal(token, cases[i].token);
      if (life != cases[i].lifetime)
        fail_msg("%s: lifetime %g, want %g", cases[i].name, life,
                 cases[i].lifetime);
    } else {
      /* no body content, no token in the error text */
      assert_null(strstr(err, "abc"));
      assert_null(strstr(err, "<html>"));
    }
    free(token);
  }
  free(j);
  free(ja);
  free(jb);
}

static void test_conf_errors(void **state) {
  (void)state;
  static const struct {
    const char *name;
    int preset;
    const char *url, *user, *client_id, *token_field, *method;
    const char *base, *option;
  } cases[] = {
      {"no url", 0, NULL, NULL, NULL, "t", NULL, "http://h", "URL"},
      {"no token field", 0, "/x", NULL, NULL, NULL, NULL, "http://h",
       "TokenField"},
      {"ftp", 0, "ftp://h/x", NULL, NULL, "t", NULL, "http://h", "URL"},
      {"credentials", 0, "http://u:p@h/x", NULL, NULL, "t", NULL, "http://h",
       "URL"},
      {"method", 0, "/x", NULL, NULL, "t", "DELETE", "http://h", "Method"},
      {"ccc no user", USAGE_LOGIN_PRESET_CCC, NULL, NULL, NULL, NULL, NULL,
       "http://h", "User"},
      {"oauth2 no id", USAGE_LOGIN_PRESET_OAUTH2, "/t", NULL, NULL, NULL, NULL,
       "http://h", "ClientID"},
      {"user without preset", 0, "/x", "u", NULL, "t", NULL, "http://h",
       "User"},
      {"client id with ccc", USAGE_LOGIN_PRESET_CCC, NULL, "u", "id", NULL,
       NULL, "http://h", "ClientID"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_login_conf_t *c = usage_login_conf_create();
    c->preset = cases[i].preset;
    if (cases[i].url)
      c->url = strdup(cases[i].url);
    if (cases[i].user) {
      c->user = strdup(cases[i].user);
      c->password.file = strdup(secret_file);
    }
    if (cases[i].client_id)
      c->client_id = strdup(cases[i].client_id);
    if (cases[i].token_field)
      c->token_field = strdup(cases[i].token_field);
    if (cases[i].method)
      c->method = strdup(cases[i].method);
    const char *option = NULL;
    char err[256] = "";
    int status =
        usage_login_conf_finish(c, cases[i].base, &option, err, sizeof(err));
    if (status != EINVAL || option == NULL ||
        strcmp(option, cases[i].option) != 0)
      fail_msg("%s: status %d option %s (%s)", cases[i].name, status,
               option ? option : "-", err);
    assert_null(strstr(err, ":p@"));
    usage_login_conf_free(c);
  }
}

static void test_secret_errors(void **state) {
  (void)state;
  usage_login_conf_t *c = usage_login_conf_create();
  c->preset = USAGE_LOGIN_PRESET_CCC;
  c->user = strdup("u");
  c->password.file = strdup("/nonexistent/secret");
  finish(c, "http://h");
  usage_login_req_t req = {0};
  char err[256] = "";
  assert_int_not_equal(usage_login_build(c, &req, err, sizeof(err)), 0);
  assert_non_null(strstr(err, "/nonexistent/secret"));
  usage_login_req_free(&req);
  usage_login_conf_free(c);
}

static void test_state(void **state) {
  (void)state;
  usage_login_state_t st;
  usage_login_state_init(&st);
  assert_false(usage_login_fresh(&st, 100));
  usage_login_set_token(&st, strdup("t"), 100, 10);
  assert_true(usage_login_fresh(&st, 107.9));
  assert_false(usage_login_fresh(&st, 108.1));
  double prev = 0;
  for (int i = 0; i < 20; i++) {
    usage_login_failed(&st, 1000);
    double pause = st.next_attempt - 1000;
    assert_true(pause >= st.backoff / 2 && pause <= st.backoff);
    assert_true(st.backoff >= prev && st.backoff <= USAGE_LOGIN_BACKOFF_MAX);
    prev = st.backoff;
  }
  assert_true(prev == USAGE_LOGIN_BACKOFF_MAX);
  usage_login_set_token(&st, strdup("u"), 2000, 10);
  assert_true(st.backoff == 0);
  assert_true(st.ok == 2 && st.failed == 20);
  usage_login_state_destroy(&st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_preset_ccc),
      cmocka_unit_test(test_preset_oauth2),
      cmocka_unit_test(test_explicit_overrides),
      cmocka_unit_test(test_generic_bodies),
      cmocka_unit_test(test_jwt_exp),
      cmocka_unit_test(test_jwt_lifetime),
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_conf_errors),
      cmocka_unit_test(test_secret_errors),
      cmocka_unit_test(test_state),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
