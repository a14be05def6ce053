/* SPDX-License-Identifier: MIT */
/* test_config: <Plugin usage> parsing (src/config.c, src/api/ccc/conf.c):
 * every bad option gives exactly one ERROR line naming the block and the
 * option, and leaves nothing configured; good configs give the expected
 * structures and defaults. */
#include "collectd.h"
#include "plugin.h"

#include "api/ccc/ccc.h"
#include "collectd_stubs.h"
#include "login.h"
#include "usage_conf.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[256];

/* expand replaces @DIR@ with the test's scratch directory. */
static char *expand(const char *text) {
  size_t cap = strlen(text) * 2 + 4096;
  char *out = malloc(cap);
  size_t n = 0;
  for (const char *p = text; *p;) {
    if (strncmp(p, "@DIR@", 5) == 0) {
      n += (size_t)snprintf(out + n, cap - n, "%s", dir);
      p += 5;
    } else {
      out[n++] = *p++;
    }
  }
  out[n] = 0;
  return out;
}

static void write_file(const char *name, const char *content) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(content, f);
  fclose(f);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/usage-test-config-XXXXXX");
  if (mkdtemp(dir) == NULL)
    return -1;
  write_file("token", "tok-123\n");
  write_file("password", "pw-secret\n");
  write_file("empty", "");
  write_file("twolines", "a\nb\n");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  static const char *const files[] = {"token", "password", "empty", "twolines"};
  for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
  return 0;
}

#define GUID "2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a"
#define SERVICE "<Service \"" GUID "\">\n</Service>\n"
#define GOOD_CCC(body)                                                         \
  "<CCC \"acme\">\nURL \"https://api.example.com\"\n"                          \
  "BearerTokenFile \"@DIR@/token\"\n" SERVICE body "</CCC>\n"

static void test_bad(void **state) {
  static const struct {
    const char *name;
    const char *conf;
    const char *block;  /* must appear in the line */
    const char *option; /* must appear in the line ("" = none) */
    const char *also;   /* must appear too ("" = none) */
    const char *never;  /* must not appear (a secret) */
  } cases[] = {
      {"unknown option", GOOD_CCC("Foo 1\n"), "CCC \"acme\"", "\"Foo\"",
       "unknown option", NULL},
      {"Login unknown option",
       GOOD_CCC("<Login>\nPreset \"ccc\"\nFoo 1\n</Login>\n"), "CCC \"acme\"",
       "\"Foo\"", "unknown option", NULL},
      {"Login bad preset", GOOD_CCC("<Login>\nPreset \"saml\"\n</Login>\n"),
       "CCC \"acme\"", "\"Preset\"", "oauth2", NULL},
      {"Login ccc without user",
       GOOD_CCC("<Login>\nPreset \"ccc\"\nPasswordFile \"@DIR@/password\"\n"
                "</Login>\n"),
       "CCC \"acme\"", "\"User\"", "", NULL},
      {"Login missing PasswordFile",
       GOOD_CCC("<Login>\nPreset \"ccc\"\nUser \"u\"\n"
                "PasswordFile \"@DIR@/nope\"\n</Login>\n"),
       "CCC \"acme\"", "\"PasswordFile\"", "@DIR@/nope", NULL},
      {"Login empty FieldFile",
       GOOD_CCC("<Login>\nURL \"/login\"\nTokenField \"t\"\n"
                "FieldFile \"password\" \"@DIR@/empty\"\n</Login>\n"),
       "CCC \"acme\"", "\"FieldFile\"", "", NULL},
      {"Login ClientSecretFile unreadable",
       GOOD_CCC("<Login>\nPreset \"oauth2\"\nURL \"https://a/t\"\n"
                "ClientID \"c\"\nClientSecretFile \"@DIR@/nope\"\n"
                "</Login>\n"),
       "CCC \"acme\"", "\"ClientSecretFile\"", "", NULL},
      {"Login no URL", GOOD_CCC("<Login>\nTokenField \"t\"\n</Login>\n"),
       "CCC \"acme\"", "\"URL\"", "missing", NULL},
      {"Login bad URL",
       GOOD_CCC("<Login>\nURL \"ftp://h/x\"\nTokenField \"t\"\n</Login>\n"),
       "CCC \"acme\"", "\"URL\"", "", NULL},
      {"Login no token field", GOOD_CCC("<Login>\nURL \"/x\"\n</Login>\n"),
       "CCC \"acme\"", "\"TokenField\"", "", NULL},
      {"Login bad Format",
       GOOD_CCC("<Login>\nURL \"/x\"\nTokenField \"t\"\nFormat \"xml\"\n"
                "</Login>\n"),
       "CCC \"acme\"", "\"Format\"", "", NULL},
      {"Login bad ClientAuth",
       GOOD_CCC("<Login>\nPreset \"oauth2\"\nURL \"/t\"\nClientID \"c\"\n"
                "ClientSecretFile \"@DIR@/password\"\nClientAuth \"jwt\"\n"
                "</Login>\n"),
       "CCC \"acme\"", "\"ClientAuth\"", "", NULL},
      {"Login TTL 0",
       GOOD_CCC("<Login>\nURL \"/x\"\nTokenField \"t\"\nTTL 0\n</Login>\n"),
       "CCC \"acme\"", "\"TTL\"", "", NULL},
      {"Login Field one value",
       GOOD_CCC("<Login>\nURL \"/x\"\nTokenField \"t\"\nField \"u\"\n"
                "</Login>\n"),
       "CCC \"acme\"", "\"Field\"", "", NULL},
      {"Login SendHeader with colon",
       GOOD_CCC("<Login>\nURL \"/x\"\nTokenField \"t\"\n"
                "SendHeader \"X-A:\" \"\"\n</Login>\n"),
       "CCC \"acme\"", "\"SendHeader\"", "", NULL},
      {"Login twice",
       GOOD_CCC("<Login>\nPreset \"ccc\"\nUser \"u\"\nPasswordFile "
                "\"@DIR@/password\"\n</Login>\n<Login>\n</Login>\n"),
       "CCC \"acme\"", "\"Login\"", "twice", NULL},
      {"Login User without preset",
       GOOD_CCC("<Login>\nURL \"/x\"\nTokenField \"t\"\nUser \"u\"\n"
                "</Login>\n"),
       "CCC \"acme\"", "\"User\"", "Preset", NULL},
      {"missing URL", "<CCC \"acme\">\nBearerToken \"t\"\n" SERVICE "</CCC>\n",
       "CCC \"acme\"", "\"URL\"", "missing", NULL},
      {"bad URL scheme", GOOD_CCC("URL \"ftp://api.example.com\"\n"),
       "CCC \"acme\"", "\"URL\"", "http", NULL},
      {"URL without host", GOOD_CCC("URL \"https://\"\n"), "CCC \"acme\"",
       "\"URL\"", "", NULL},
      {"URL with query", GOOD_CCC("URL \"https://h/x?a=1\"\n"), "CCC \"acme\"",
       "\"URL\"", "", NULL},
      {"URL not a string", GOOD_CCC("URL 42\n"), "CCC \"acme\"", "\"URL\"", "",
       NULL},
      {"credentials in URL",
       GOOD_CCC("URL \"https://admin:s3cr3t-pw@api.example.com/\"\n"),
       "CCC \"acme\"", "\"URL\"", "credentials", "s3cr3t-pw"},
      {"Timeout 0", GOOD_CCC("Timeout 0\n"), "CCC \"acme\"", "\"Timeout\"", "",
       NULL},
      {"Timeout as string", GOOD_CCC("Timeout \"100\"\n"), "CCC \"acme\"",
       "\"Timeout\"", "", NULL},
      {"negative Interval", GOOD_CCC("Interval -5\n"), "CCC \"acme\"",
       "\"Interval\"", "", NULL},
      {"Interval 0", GOOD_CCC("Interval 0\n"), "CCC \"acme\"", "\"Interval\"",
       "", NULL},
      {"ScrapeTimeout 0", GOOD_CCC("ScrapeTimeout 0\n"), "CCC \"acme\"",
       "\"ScrapeTimeout\"", "deadline in seconds", NULL},
      {"negative ScrapeTimeout", GOOD_CCC("ScrapeTimeout -3\n"), "CCC \"acme\"",
       "\"ScrapeTimeout\"", "", NULL},
      {"ScrapeTimeout as string", GOOD_CCC("ScrapeTimeout \"30\"\n"),
       "CCC \"acme\"", "\"ScrapeTimeout\"", "", NULL},
      {"ScrapeTimeout too long", GOOD_CCC("ScrapeTimeout 1e12\n"),
       "CCC \"acme\"", "\"ScrapeTimeout\"", "", NULL},
      {"MaxConcurrentRequests 1.5", GOOD_CCC("MaxConcurrentRequests 1.5\n"),
       "CCC \"acme\"", "\"MaxConcurrentRequests\"", "", NULL},
      {"MaxConcurrentRequests 0", GOOD_CCC("MaxConcurrentRequests 0\n"),
       "CCC \"acme\"", "\"MaxConcurrentRequests\"", "", NULL},
      {"DispatchMetaData not a boolean", GOOD_CCC("DispatchMetaData 2\n"),
       "CCC \"acme\"", "\"DispatchMetaData\"", "", NULL},
      {"MaxRequestsPerSecond -1", GOOD_CCC("MaxRequestsPerSecond -1\n"),
       "CCC \"acme\"", "\"MaxRequestsPerSecond\"", "", NULL},
      {"MaxResponseSize too small", GOOD_CCC("MaxResponseSize 10\n"),
       "CCC \"acme\"", "\"MaxResponseSize\"", "", NULL},
      {"VerifyPeer not a boolean", GOOD_CCC("VerifyPeer \"maybe\"\n"),
       "CCC \"acme\"", "\"VerifyPeer\"", "", NULL},
      {"VerifyHost number", GOOD_CCC("VerifyHost 1\n"), "CCC \"acme\"",
       "\"VerifyHost\"", "", NULL},
      {"Header without colon", GOOD_CCC("Header \"X-Api-Key\"\n"),
       "CCC \"acme\"", "\"Header\"", "", NULL},
      {"HeaderFile missing file",
       GOOD_CCC("HeaderFile \"X-Key\" \"@DIR@/nope\"\n"), "CCC \"acme\"",
       "\"HeaderFile\"", "@DIR@/nope", NULL},
      {"HeaderFile one value", GOOD_CCC("HeaderFile \"@DIR@/token\"\n"),
       "CCC \"acme\"", "\"HeaderFile\"", "two strings", NULL},
      {"HeaderFile name with colon",
       GOOD_CCC("HeaderFile \"X-Key:\" \"@DIR@/token\"\n"), "CCC \"acme\"",
       "\"HeaderFile\"", "", NULL},
      {"HeaderFile two-line file",
       GOOD_CCC("HeaderFile \"X-Key\" \"@DIR@/twolines\"\n"), "CCC \"acme\"",
       "\"HeaderFile\"", "@DIR@/twolines", NULL},
      {"missing PasswordFile",
       "<CCC \"acme\">\nURL \"https://h\"\nUser \"u\"\n"
       "PasswordFile \"@DIR@/nope\"\n" SERVICE "</CCC>\n",
       "CCC \"acme\"", "\"PasswordFile\"", "@DIR@/nope", NULL},
      {"unreadable BearerTokenFile (a directory)",
       "<CCC \"acme\">\nURL \"https://h\"\nBearerTokenFile \"@DIR@\"\n" SERVICE
       "</CCC>\n",
       "CCC \"acme\"", "\"BearerTokenFile\"", "\"@DIR@\"", NULL},
      {"empty secret file",
       "<CCC \"acme\">\nURL \"https://h\"\nBearerTokenFile "
       "\"@DIR@/empty\"\n" SERVICE "</CCC>\n",
       "CCC \"acme\"", "\"BearerTokenFile\"", "@DIR@/empty", NULL},
      {"two-line secret file",
       "<CCC \"acme\">\nURL \"https://h\"\nUser \"u\"\n"
       "PasswordFile \"@DIR@/twolines\"\n" SERVICE "</CCC>\n",
       "CCC \"acme\"", "\"PasswordFile\"", "@DIR@/twolines", NULL},
      {"empty BearerToken",
       "<CCC \"acme\">\nURL \"https://h\"\nBearerToken \"\"\n" SERVICE
       "</CCC>\n",
       "CCC \"acme\"", "\"BearerToken\"", "", NULL},
      {"BearerToken twice", GOOD_CCC("BearerToken \"tok-inline\"\n"),
       "CCC \"acme\"", "\"BearerToken\"", "", "tok-inline"},
      {"Password without User",
       "<CCC \"acme\">\nURL \"https://h\"\nPassword \"pw-inline\"\n" SERVICE
       "</CCC>\n",
       "CCC \"acme\"", "\"Password\"", "User", "pw-inline"},
      {"User without Password",
       "<CCC \"acme\">\nURL \"https://h\"\nUser \"u\"\n" SERVICE "</CCC>\n",
       "CCC \"acme\"", "\"User\"", "Password", NULL},
      {"BearerToken with User",
       "<CCC \"acme\">\nURL \"https://h\"\nUser \"u\"\nPassword \"pw-x\"\n"
       "BearerToken \"tok-x\"\n" SERVICE "</CCC>\n",
       "CCC \"acme\"", "\"BearerToken\"", "User", "tok-x"},
      {"ClientCert without ClientKey", GOOD_CCC("ClientCert \"/c.pem\"\n"),
       "CCC \"acme\"", "\"ClientKey\"", "", NULL},
      {"ClientKey without ClientCert", GOOD_CCC("ClientKey \"/k.pem\"\n"),
       "CCC \"acme\"", "\"ClientCert\"", "", NULL},
      {"bad Service GUID", GOOD_CCC("<Service \"not-a-guid\">\n</Service>\n"),
       "CCC \"acme\"", "\"Service\"", "not-a-guid", NULL},
      {"duplicate Service (dashed)",
       GOOD_CCC("<Service \"2F1C0A0E-9D7B-4C6E-8A5F-3B2D1C0E9F8A\">\n"
                "</Service>\n"),
       "CCC \"acme\"", "\"Service\"", "twice", NULL},
      {"unknown option in Service",
       GOOD_CCC("<Service \"7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1\">\nFoo 1\n"
                "</Service>\n"),
       "CCC \"acme\"", "\"Foo\"", "Service", NULL},
      {"no Service",
       "<CCC \"acme\">\nURL \"https://h\"\nBearerToken \"t\"\n</CCC>\n",
       "CCC \"acme\"", "Service", "", NULL},
      {"duplicate source name", GOOD_CCC("") GOOD_CCC(""), "CCC \"acme\"", "",
       "twice", NULL},
      {"CCC without name", "<CCC>\nURL \"https://h\"\n</CCC>\n", "CCC", "",
       "name", NULL},
      {"Exporter Port 0", "<Exporter>\nPort 0\n</Exporter>\n", "Exporter",
       "\"Port\"", "", NULL},
      {"Exporter Port \"0\"", "<Exporter>\nPort \"0\"\n</Exporter>\n",
       "Exporter", "\"Port\"", "", NULL},
      {"Exporter Port 70000", "<Exporter>\nPort 70000\n</Exporter>\n",
       "Exporter", "\"Port\"", "", NULL},
      {"Exporter Port \"70000\"", "<Exporter>\nPort \"70000\"\n</Exporter>\n",
       "Exporter", "\"Port\"", "", NULL},
      {"Exporter Port \"abc\"", "<Exporter>\nPort \"abc\"\n</Exporter>\n",
       "Exporter", "\"Port\"", "", NULL},
      {"unknown Exporter option", "<Exporter>\nBind \"x\"\n</Exporter>\n",
       "Exporter", "\"Bind\"", "unknown option", NULL},
      {"Exporter Address number", "<Exporter>\nAddress 1\n</Exporter>\n",
       "Exporter", "\"Address\"", "", NULL},
      {"two Exporter blocks",
       "<Exporter>\n</Exporter>\n<Exporter>\n</Exporter>\n", "Exporter", "",
       "one", NULL},
      {"Shard 0", GOOD_CCC("Shard 0\n"), "CCC \"acme\"", "\"Shard\"", "", NULL},
      {"Shard 1.5", GOOD_CCC("Shard 1.5\n"), "CCC \"acme\"", "\"Shard\"", "",
       NULL},
      {"Account not a string", GOOD_CCC("Account 3\n"), "CCC \"acme\"",
       "\"Account\"", "", NULL},
      {"plugin Shard 4 3", "Shard 4 3\n", "\"Shard\"", "", "4 3", NULL},
      {"plugin Shard one number", "Shard 2\n", "\"Shard\"", "", "", NULL},
      {"plugin Shard 1 1001", "Shard 1 1001\n", "\"Shard\"", "", "", NULL},
      {"plugin Shard huge", "Shard 1e300 3\n", "\"Shard\"", "", "", NULL},
      {"plugin Replica fraction", "Replica 1.5 2\n", "\"Replica\"", "", "",
       NULL},
      {"plugin Replica 0 2", "Replica 0 2\n", "\"Replica\"", "", "", NULL},
      {"plugin Replica as strings", "Replica \"1\" \"2\"\n", "\"Replica\"", "",
       "", NULL},
      {"unknown block", "<Foo \"x\">\n</Foo>\n", "\"Foo\"", "", "unknown",
       NULL},
      {"bad block after a good one",
       GOOD_CCC("") "<CCC \"other\">\nURL \"https://h\"\n" SERVICE "Bad 1\n"
                    "BearerToken \"t\"\n</CCC>\n",
       "CCC \"other\"", "\"Bad\"", "", NULL},
      /* CCC user usage and status-change options */
      {"PeriodType Weekly", GOOD_CCC("PeriodType \"Weekly\"\n"), "CCC \"acme\"",
       "\"PeriodType\"", "Weekly", NULL},
      {"PeriodType number", GOOD_CCC("PeriodType 1\n"), "CCC \"acme\"",
       "\"PeriodType\"", "", NULL},
      {"Period month 13", GOOD_CCC("Period \"2024-13-01\"\n"), "CCC \"acme\"",
       "\"Period\"", "2024-13-01", NULL},
      {"Period with a time", GOOD_CCC("Period \"2024-05-01T00:00:00Z\"\n"),
       "CCC \"acme\"", "\"Period\"", "yyyy-MM-dd", NULL},
      {"ExportUserDetails not a boolean",
       GOOD_CCC("ExportUserDetails \"perhaps\"\n"), "CCC \"acme\"",
       "\"ExportUserDetails\"", "", NULL},
      {"StatusChangesPageSize 0",
       GOOD_CCC("StatusChanges true\nStatusChangesPageSize 0\n"),
       "CCC \"acme\"", "\"StatusChangesPageSize\"", "", NULL},
      {"StatusChangesPageSize 1001",
       GOOD_CCC("StatusChanges true\nStatusChangesPageSize 1001\n"),
       "CCC \"acme\"", "\"StatusChangesPageSize\"", "", NULL},
      {"StatusChangesMaxPages 1.5",
       GOOD_CCC("StatusChanges true\nStatusChangesMaxPages 1.5\n"),
       "CCC \"acme\"", "\"StatusChangesMaxPages\"", "whole", NULL},
      {"StatusChangesLookback 0",
       GOOD_CCC("StatusChanges true\nStatusChangesLookback 0\n"),
       "CCC \"acme\"", "\"StatusChangesLookback\"", "", NULL},
      {"StatusChangesOverlap -1",
       GOOD_CCC("StatusChanges true\nStatusChangesOverlap -1\n"),
       "CCC \"acme\"", "\"StatusChangesOverlap\"", "", NULL},
      {"ResellerGuid xyz",
       GOOD_CCC("StatusChanges true\nResellerGuid \"xyz\"\n"), "CCC \"acme\"",
       "\"ResellerGuid\"", "xyz", NULL},
      {"PartnerGuid number", GOOD_CCC("StatusChanges true\nPartnerGuid 7\n"),
       "CCC \"acme\"", "\"PartnerGuid\"", "", NULL},
      {"ChangedByUserGuid two values",
       GOOD_CCC("StatusChanges true\nChangedByUserGuid \"" GUID "\" \"" GUID
                "\"\n"),
       "CCC \"acme\"", "\"ChangedByUserGuid\"", "", NULL},
      {"StateFile without StatusChanges",
       GOOD_CCC("StateFile \"@DIR@/ccc.state\"\n"), "CCC \"acme\"",
       "\"StateFile\"", "StatusChanges", NULL},
      {"ChangedByUserEmail without StatusChanges",
       GOOD_CCC("ChangedByUserEmail \"admin@example.com\"\n"), "CCC \"acme\"",
       "\"ChangedByUserEmail\"", "StatusChanges", NULL},
      {"ResellerGuid without StatusChanges",
       GOOD_CCC("ResellerGuid \"" GUID "\"\n"), "CCC \"acme\"",
       "\"ResellerGuid\"", "StatusChanges", NULL},
      {"no Service, StatusChanges without ResellerGuid/PartnerGuid",
       "<CCC \"acme\">\nURL \"https://h\"\nBearerToken \"t\"\n"
       "StatusChanges true\n</CCC>\n",
       "CCC \"acme\"", "<Service", "ResellerGuid", NULL},
      {"no Service, ResellerGuid without StatusChanges",
       "<CCC \"acme\">\nURL \"https://h\"\nBearerToken \"t\"\n"
       "ResellerGuid \"" GUID "\"\n</CCC>\n",
       "CCC \"acme\"", "<Service", "StatusChanges", NULL},
      {"UserGuid bad",
       GOOD_CCC("<Service \"7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1\">\n"
                "UserGuid \"bad\"\n</Service>\n"),
       "CCC \"acme\"", "\"UserGuid\"", "bad", NULL},
      {"UserGuid without value",
       GOOD_CCC("<Service \"7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1\">\n"
                "UserGuid\n</Service>\n"),
       "CCC \"acme\"", "\"UserGuid\"", "", NULL},
      {"duplicate UserGuid (dashed and plain)",
       GOOD_CCC("<Service \"7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1\">\n"
                "UserGuid \"0a1b2c3d4e5f60718293a4b5c6d7e8f9\"\n"
                "UserGuid \"0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9\"\n"
                "</Service>\n"),
       "CCC \"acme\"", "\"UserGuid\"", "twice", NULL},
      {"duplicate UserGuid in one line",
       GOOD_CCC("<Service \"7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1\">\n"
                "UserGuid \"0a1b2c3d4e5f60718293a4b5c6d7e8f9\" "
                "\"0a1b2c3d4e5f60718293a4b5c6d7e8f9\"\n</Service>\n"),
       "CCC \"acme\"", "\"UserGuid\"", "twice", NULL},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    char *text = expand(cases[i].conf);
    oconfig_item_t *ci = oc_parse(text);
    free(text);
    if (ci == NULL)
      fail_msg("%s: test config does not parse", cases[i].name);
    usage_conf_t conf = {0};
    stub_log_reset();
    int st = usage_config_parse(ci, &conf);
    oc_free(ci);
    const char *log = stub_log_text();
    if (st != EINVAL)
      fail_msg("%s: status %d, want EINVAL", cases[i].name, st);
    if (stub_log_count(LOG_ERR) != 1)
      fail_msg("%s: %d ERROR lines, want 1:\n%s", cases[i].name,
               stub_log_count(LOG_ERR), log);
    const char *line = strstr(log, "3 usage plugin: ");
    if (line == NULL)
      fail_msg("%s: no \"usage plugin: \" ERROR line:\n%s", cases[i].name, log);
    char *b = expand(cases[i].block), *o = expand(cases[i].option),
         *a = expand(cases[i].also);
    if (strstr(line, b) == NULL || strstr(line, o) == NULL ||
        strstr(line, a) == NULL)
      fail_msg("%s: line does not name [%s] [%s] [%s]:\n%s", cases[i].name, b,
               o, a, log);
    if (cases[i].never != NULL && strstr(log, cases[i].never) != NULL)
      fail_msg("%s: the log shows the secret:\n%s", cases[i].name, log);
    free(b);
    free(o);
    free(a);
    if (conf.sources != NULL || conf.sources_num != 0 || conf.exporter != NULL)
      fail_msg("%s: conf not cleared", cases[i].name);
  }
}

static void test_defaults(void **state) {
  (void)state;
  char *text = expand("<Exporter>\n</Exporter>\n"
                      "<CCC \"acme\">\n"
                      "  URL \"https://api.secure-messaging.com/\"\n"
                      "  BearerTokenFile \"@DIR@/token\"\n"
                      "  <Service \"{2F1C0A0E-9D7B-4C6E-8A5F-3B2D1C0E9F8A}\">\n"
                      "  </Service>\n"
                      "  <Service \"7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1\">\n"
                      "  </Service>\n"
                      "</CCC>\n");
  oconfig_item_t *ci = oc_parse(text);
  free(text);
  usage_conf_t conf = {0};
  stub_log_reset();
  assert_int_equal(usage_config_parse(ci, &conf), 0);
  oc_free(ci);
  assert_int_equal(stub_log_count(LOG_ERR), 0);
  assert_non_null(conf.exporter);
  assert_string_equal(conf.exporter->address, "127.0.0.1");
  assert_string_equal(conf.exporter->port, "19813");
  assert_int_equal(conf.sources_num, 1);
  usage_source_conf_t *src = conf.sources[0];
  assert_string_equal(src->name, "acme");
  assert_int_equal(src->kind, USAGE_KIND_CCC);
  assert_string_equal(src->http.url, "https://api.secure-messaging.com");
  assert_null(src->http.user);
  assert_null(src->http.bearer.value);
  char path[512];
  snprintf(path, sizeof(path), "%s/token", dir);
  assert_string_equal(src->http.bearer.file, path);
  const char *secret = NULL;
  char err[256];
  assert_int_equal(
      usage_secret_get(&src->http.bearer, &secret, err, sizeof(err)), 0);
  assert_string_equal(secret, "tok-123"); /* newline dropped */
  assert_int_equal(src->http.verify_peer, 1);
  assert_int_equal(src->http.verify_host, 1);
  assert_int_equal(src->http.timeout_ms, 10000);
  assert_int_equal(src->http.max_body, USAGE_DEFAULT_MAX_RESPONSE);
  assert_int_equal(src->http.headers_num, 0);
  assert_true(src->interval == 0);
  assert_true(src->max_rps <= 0); /* no limit unless configured */
  assert_int_equal(src->max_concurrent, 1);
  assert_int_equal(src->meta_data, 0); /* no meta data unless asked */
  usage_ccc_conf_t *c = src->kind_conf;
  assert_int_equal(c->services_num, 2);
  assert_string_equal(c->services[0].guid, GUID);
  assert_string_equal(c->services[1].guid, "7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1");
  usage_conf_clear(&conf);
  assert_null(conf.sources);
  assert_null(conf.exporter);
}

static void test_all_options(void **state) {
  (void)state;
  char *text = expand("<Exporter>\n  Address \"::1\"\n  Port \"9100\"\n"
                      "</Exporter>\n"
                      "<CCC \"one\">\n"
                      "  URL \"http://127.0.0.1:8080/base//\"\n"
                      "  User \"apiuser\"\n"
                      "  PasswordFile \"@DIR@/password\"\n"
                      "  Header \"X-Tenant: 42\"\n"
                      "  Header \"X-Other: a:b\"\n"
                      "  HeaderFile \"X-Api-Key\" \"@DIR@/token\"\n"
                      "  HeaderFile \"X-Pw\" \"@DIR@/password\"\n"
                      "  VerifyPeer false\n"
                      "  VerifyHost \"no\"\n"
                      "  CACert \"/etc/ssl/ca.pem\"\n"
                      "  ClientCert \"/etc/ssl/c.pem\"\n"
                      "  ClientKey \"/etc/ssl/k.pem\"\n"
                      "  Timeout 2500\n"
                      "  Interval 60\n"
                      "  ScrapeTimeout 45.5\n"
                      "  MaxRequestsPerSecond 2.5\n"
                      "  MaxConcurrentRequests 4\n"
                      "  MaxResponseSize 1048576\n"
                      "  Shard 2\n"
                      "  Account \"acme\"\n"
                      "  DispatchMetaData true\n"
                      "  <Service \"" GUID "\">\n  </Service>\n"
                      "</CCC>\n"
                      "Shard 2 3\n"
                      "Replica 1 2\n"
                      "<CCC \"two\">\n"
                      "  URL \"https://h\"\n"
                      "  BearerToken \"inline-token\"\n"
                      "  <Service \"" GUID "\">\n  </Service>\n"
                      "</CCC>\n");
  oconfig_item_t *ci = oc_parse(text);
  free(text);
  usage_conf_t conf = {0};
  stub_log_reset();
  assert_int_equal(usage_config_parse(ci, &conf), 0);
  oc_free(ci);
  assert_int_equal(stub_log_count(LOG_ERR), 0);
  assert_string_equal(conf.exporter->address, "::1");
  assert_string_equal(conf.exporter->port, "9100");
  assert_int_equal(conf.sources_num, 2);
  usage_source_conf_t *s = conf.sources[0];
  assert_string_equal(s->http.url, "http://127.0.0.1:8080/base");
  assert_string_equal(s->http.user, "apiuser");
  const char *pw = NULL;
  char err[256];
  assert_int_equal(usage_secret_get(&s->http.password, &pw, err, sizeof(err)),
                   0);
  assert_string_equal(pw, "pw-secret");
  assert_int_equal(s->http.headers_num, 2);
  assert_string_equal(s->http.headers[0], "X-Tenant: 42");
  assert_string_equal(s->http.headers[1], "X-Other: a:b");
  assert_int_equal(s->http.header_files_num, 2);
  assert_string_equal(s->http.header_files[0].name, "X-Api-Key");
  const char *hv = NULL;
  assert_int_equal(
      usage_secret_get(&s->http.header_files[0].value, &hv, err, sizeof(err)),
      0);
  assert_string_equal(hv, "tok-123");
  assert_string_equal(s->http.header_files[1].name, "X-Pw");
  assert_int_equal(s->http.verify_peer, 0);
  assert_int_equal(s->http.verify_host, 0);
  assert_string_equal(s->http.cacert, "/etc/ssl/ca.pem");
  assert_string_equal(s->http.client_cert, "/etc/ssl/c.pem");
  assert_string_equal(s->http.client_key, "/etc/ssl/k.pem");
  assert_int_equal(s->http.timeout_ms, 2500);
  assert_true(s->interval == 60);
  assert_true(s->scrape_timeout == 45.5);
  assert_true(conf.sources[1]->scrape_timeout == 0); /* = the Interval */
  assert_true(s->max_rps == 2.5);
  assert_int_equal(s->max_concurrent, 4);
  assert_int_equal(s->http.max_body, 1048576);
  assert_int_equal(s->shard, 2);
  assert_string_equal(s->account, "acme");
  assert_int_equal(s->meta_data, 1);
  assert_int_equal(conf.sources[1]->meta_data, 0);
  assert_int_equal(conf.shard, 2);
  assert_int_equal(conf.shards, 3);
  assert_int_equal(conf.replica, 1);
  assert_int_equal(conf.replicas, 2);
  s = conf.sources[1];
  assert_int_equal(s->shard, 0);
  assert_null(s->account);
  assert_string_equal(s->name, "two");
  assert_string_equal(s->http.bearer.value, "inline-token");
  /* nothing secret was logged (the string-boolean warning is collectd's) */
  assert_null(strstr(stub_log_text(), "pw-secret"));
  assert_null(strstr(stub_log_text(), "inline-token"));
  assert_null(strstr(stub_log_text(), "tok-123"));
  usage_conf_clear(&conf);
}

/* The CCC user-usage and status-change options: defaults and values. */
static void test_ccc_options(void **state) {
  (void)state;
  char *text =
      expand("<CCC \"plain\">\n"
             "  URL \"https://h\"\n  BearerToken \"t\"\n"
             "  <Service \"" GUID "\">\n  </Service>\n"
             "</CCC>\n"
             "<CCC \"full\">\n"
             "  URL \"https://h\"\n  BearerToken \"t\"\n"
             "  <Service \"" GUID "\">\n"
             "    UserGuid \"0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9\"\n"
             "    UserGuid \"{11112222-3333-4444-5555-666677778888}\" "
             "\"99990000999900009999000099990000\"\n"
             "  </Service>\n"
             "  <Service \"7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1\">\n  </Service>\n"
             "  PeriodType \"monthly\"\n"
             "  Period \"2024-02-29\"\n"
             "  ExportUserDetails true\n"
             "  StatusChanges true\n"
             "  StatusChangesLookback 86400\n"
             "  StatusChangesOverlap 0\n"
             "  StatusChangesPageSize 1000\n"
             "  StatusChangesMaxPages 5\n"
             "  ResellerGuid \"AAAABBBB-CCCC-DDDD-EEEE-FFFF00001111\"\n"
             "  PartnerGuid \"22223333444455556666777788889999\"\n"
             "  ChangedByUserGuid \"{0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9}\"\n"
             "  ChangedByUserEmail \"admin@example.com\"\n"
             "  StateFile \"@DIR@/ccc.state\"\n"
             "</CCC>\n"
             "<CCC \"wide\">\n"
             "  URL \"https://h\"\n  BearerToken \"t\"\n"
             "  StatusChanges true\n"
             "  PartnerGuid \"22223333444455556666777788889999\"\n"
             "</CCC>\n");
  oconfig_item_t *ci = oc_parse(text);
  free(text);
  assert_non_null(ci);
  usage_conf_t conf = {0};
  stub_log_reset();
  int st = usage_config_parse(ci, &conf);
  oc_free(ci);
  if (st != 0)
    fail_msg("status %d:\n%s", st, stub_log_text());
  assert_int_equal(stub_log_count(LOG_ERR), 0);
  assert_int_equal(conf.sources_num, 3);

  usage_ccc_conf_t *c = conf.sources[0]->kind_conf;
  assert_int_equal(c->services_num, 1);
  assert_int_equal(c->services[0].users_num, 0);
  assert_int_equal(c->monthly, 0);
  assert_null(c->period);
  assert_int_equal(c->export_user_details, 0);
  assert_int_equal(c->status_changes, 0);
  assert_true(c->lookback == 2592000);
  assert_true(c->overlap == 300);
  assert_int_equal(c->page_size, 100);
  assert_int_equal(c->max_pages, 1000);
  assert_null(c->reseller);
  assert_null(c->partner);
  assert_null(c->changed_by_user);
  assert_null(c->changed_by_email);
  assert_null(c->state_file);

  c = conf.sources[1]->kind_conf;
  assert_int_equal(c->services_num, 2);
  assert_int_equal(c->services[0].users_num, 3);
  assert_string_equal(c->services[0].users[0],
                      "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
  assert_string_equal(c->services[0].users[1],
                      "11112222333344445555666677778888");
  assert_string_equal(c->services[0].users[2],
                      "99990000999900009999000099990000");
  assert_int_equal(c->services[1].users_num, 0);
  assert_int_equal(c->monthly, 1);
  assert_string_equal(c->period, "2024-02-29");
  assert_int_equal(c->export_user_details, 1);
  assert_int_equal(c->status_changes, 1);
  assert_true(c->lookback == 86400);
  assert_true(c->overlap == 0);
  assert_int_equal(c->page_size, 1000);
  assert_int_equal(c->max_pages, 5);
  assert_string_equal(c->reseller, "aaaabbbbccccddddeeeeffff00001111");
  assert_string_equal(c->partner, "22223333444455556666777788889999");
  assert_string_equal(c->changed_by_user, "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
  assert_string_equal(c->changed_by_email, "admin@example.com");
  char path[512];
  snprintf(path, sizeof(path), "%s/ccc.state", dir);
  assert_string_equal(c->state_file, path);

  /* a partner-wide view needs no service */
  c = conf.sources[2]->kind_conf;
  assert_int_equal(c->services_num, 0);
  assert_int_equal(c->status_changes, 1);
  assert_string_equal(c->partner, "22223333444455556666777788889999");
  usage_conf_clear(&conf);
}

/* A StateFile in a directory that is missing or read-only is accepted:
 * saving it is a run-time problem of the block, not a start-up error. */
static void test_state_dir_runtime(void **state) {
  (void)state;
  char *text = expand("<Billing \"b\">\n"
                      "  URL \"https://billing.example.net/api\"\n"
                      "  BearerTokenFile \"@DIR@/token\"\n"
                      "  StateFile \"@DIR@/no/such/dir/b.state\"\n"
                      "</Billing>\n");
  oconfig_item_t *ci = oc_parse(text);
  free(text);
  usage_conf_t conf = {0};
  stub_log_reset();
  assert_int_equal(usage_config_parse(ci, &conf), 0);
  oc_free(ci);
  assert_int_equal(stub_log_count(LOG_ERR), 0);
  assert_int_equal(conf.sources_num, 1);
  usage_conf_clear(&conf);
}

/* <Login>: presets, the generic form, relative URLs; Billing accepts a
 * <Login> instead of a bearer token. */
static void test_login(void **state) {
  (void)state;
  char *text = expand(
      "<CCC \"ccc\">\n  URL \"https://api.example.com/\"\n"
      "  <Login>\n    Preset \"ccc\"\n    User \"monitor\"\n"
      "    PasswordFile \"@DIR@/password\"\n  </Login>\n"
      "  " SERVICE "</CCC>\n"
      "<Billing \"bill\">\n  URL \"http://127.0.0.1:1/api\"\n"
      "  <Login>\n    URL \"/authenticate\"\n    Format \"form\"\n"
      "    Field \"username\" \"monitor\"\n"
      "    FieldFile \"password\" \"@DIR@/password\"\n"
      "    TokenField \"data.token\"\n    ExpiresField \"ttl\"\n"
      "    TTL 900\n    SendHeader \"X-Auth\" \"Token \"\n"
      "    Method \"put\"\n  </Login>\n</Billing>\n"
      "<CCC \"oauth\">\n  URL \"https://api.example.com\"\n"
      "  <Login>\n    Preset \"oauth2\"\n"
      "    URL \"https://auth.example.net/oauth2/token\"\n"
      "    ClientID \"usage-monitor\"\n"
      "    ClientSecretFile \"@DIR@/password\"\n    Scope \"usage.read\"\n"
      "    ClientAuth \"post\"\n  </Login>\n  " SERVICE "</CCC>\n");
  oconfig_item_t *ci = oc_parse(text);
  free(text);
  usage_conf_t conf = {0};
  stub_log_reset();
  int st = usage_config_parse(ci, &conf);
  oc_free(ci);
  if (st != 0)
    fail_msg("status %d:\n%s", st, stub_log_text());
  assert_int_equal(conf.sources_num, 3);
  usage_login_conf_t *l = conf.sources[0]->login;
  assert_non_null(l);
  assert_int_equal(l->preset, USAGE_LOGIN_PRESET_CCC);
  assert_string_equal(l->url, "https://api.example.com/api/login");
  assert_string_equal(l->send_header, "x-sm-session-token");
  l = conf.sources[1]->login;
  assert_string_equal(l->url, "http://127.0.0.1:1/api/authenticate");
  assert_string_equal(l->method, "PUT");
  assert_int_equal(l->format, USAGE_LOGIN_FORMAT_FORM);
  assert_int_equal(l->fields_num, 2);
  assert_string_equal(l->token_field, "data.token");
  assert_string_equal(l->expires_field, "ttl");
  assert_true(l->ttl == 900);
  assert_string_equal(l->send_header, "X-Auth");
  assert_string_equal(l->send_prefix, "Token ");
  l = conf.sources[2]->login;
  assert_int_equal(l->preset, USAGE_LOGIN_PRESET_OAUTH2);
  assert_int_equal(l->client_auth, USAGE_LOGIN_AUTH_POST);
  assert_string_equal(l->scope, "usage.read");
  assert_string_equal(l->token_field, "access_token");
  assert_null(strstr(stub_log_text(), "pw-secret"));
  usage_conf_clear(&conf);
}

static void test_empty(void **state) {
  (void)state;
  oconfig_item_t *ci = oc_parse("");
  usage_conf_t conf = {0};
  stub_log_reset();
  assert_int_equal(usage_config_parse(ci, &conf), 0);
  oc_free(ci);
  assert_int_equal(conf.sources_num, 0);
  assert_null(conf.exporter); /* no block = no HTTP server */
  usage_conf_clear(&conf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_all_options),
      cmocka_unit_test(test_ccc_options),
      cmocka_unit_test(test_state_dir_runtime),
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_login),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
