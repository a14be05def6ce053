/*
 * usage-sim -- vendor API simulator for the collectd `usage` plugin.
 *
 * Owns: contrib/usage-sim/ only.  A standalone HTTP server (libmicrohttpd,
 * yajl_gen, pthread, libc) that serves the five upstream endpoints the plugin
 * scrapes, with deterministic data derived from --seed:
 *
 *   CCC      GET /api/services/{ServiceGuid}/serviceusage
 *            GET /api/services/{ServiceGuid}/users/{UserGuid}/usage
 *            GET /api/services/status                     (paged)
 *   Billing  GET [...]/customer-usage-data                (paged, bearer auth)
 *   Jasper   GET /rws/api/v1/usages                       (paged, basic auth)
 *
 * plus control endpoints under /_sim/ (fault injection, rate limiting, data
 * growth, totals for comparison).  See README.md next to this file.
 *
 * Design notes: everything that can be large (billing record fields, Jasper
 * devices) is a pure function f(seed, index) computed on demand; the only
 * stored per-record data are billing event/loaded times (12 bytes a record)
 * and CCC status changes.  All mutable state is behind one mutex.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#define DAY 86400LL
#define NEVER INT64_MIN /* printed as 0001-01-01T00:00:00Z */

/* ------------------------------------------------------------------ */
/* options and global state                                            */

static struct {
  const char *address;
  int port;
  const char *port_file;
  uint64_t seed;
  int ccc_services, ccc_users, ccc_status_changes;
  long billing_records;
  char billing_token[256];
  int jasper_plans;
  long jasper_devices;
  char jasper_user[128], jasper_key[128];
  const char *request_log;
  int threads;
  int64_t now; /* generation anchor */
  int login;    /* --login: data endpoints want tokens from the login endpoints */
  int quirks;   /* --quirks: vendor answers as real deployments send them */
  int token_ttl; /* seconds */
  int clock_skew; /* seconds the sign-in clock (iat, exp) is ahead (< 0: behind) */
  char login_user[128], login_password[128], client_id[128], client_secret[128];
} opt = {
    .token_ttl = 300,
    .login_user = "monitor",
    .login_password = "sim-password",
    .client_id = "sim-client",
    .client_secret = "sim-client-secret",
    .address = "127.0.0.1",
    .port = 0,
    .seed = 1,
    .ccc_services = 3,
    .ccc_users = 5,
    .ccc_status_changes = 40,
    .billing_records = 1000,
    .billing_token = "sim-billing-token",
    .jasper_plans = 3,
    .jasper_devices = 120,
    .jasper_user = "sim-user",
    .jasper_key = "sim-key",
    .threads = 2,
    .now = 0,
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t g_stopping;
static FILE *g_reqlog;

/* ------------------------------------------------------------------ */
/* small utilities                                                     */

static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
/* deterministic hash of (seed, tag, a, b, c) */
static uint64_t H(uint64_t tag, uint64_t a, uint64_t b, uint64_t c) {
  return mix64(mix64(mix64(mix64(opt.seed ^ (tag * 0x100000001b3ULL)) ^ a) ^ b) ^ c);
}
enum { T_SVC = 1, T_USER, T_CHG, T_ADMIN, T_RESELLER, T_PARTNER, T_BILL, T_JPLAN,
       T_JDEV, T_GROUP, T_MISC, T_NEWCHG, T_JCYC };

static void make_guid(uint8_t g[16], uint64_t tag, uint64_t a, uint64_t b, uint64_t c) {
  uint64_t x = H(tag, a, b, c), y = H(tag, a, b, c ^ 0x5555555555555555ULL);
  for (int i = 0; i < 8; i++) { g[i] = (uint8_t)(x >> (8 * i)); g[8 + i] = (uint8_t)(y >> (8 * i)); }
  g[6] = (uint8_t)((g[6] & 0x0f) | 0x40); /* version 4 */
  g[8] = (uint8_t)((g[8] & 0x3f) | 0x80);
}
static void guid_hex(const uint8_t g[16], char out[33]) {
  static const char hx[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) { out[2 * i] = hx[g[i] >> 4]; out[2 * i + 1] = hx[g[i] & 15]; }
  out[32] = 0;
}
/* accepts 32 hex digits, or with dashes / braces anywhere, any case */
static int parse_guid(const char *s, uint8_t g[16]) {
  if (!s) return -1;
  int n = 0;
  size_t len = strlen(s);
  if (len > 40) return -1;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch == '-' || ((ch == '{') && i == 0) || ((ch == '}') && i == len - 1)) continue;
    int v;
    if (ch >= '0' && ch <= '9') v = ch - '0';
    else if (ch >= 'a' && ch <= 'f') v = ch - 'a' + 10;
    else if (ch >= 'A' && ch <= 'F') v = ch - 'A' + 10;
    else return -1;
    if (n >= 32) return -1;
    if (n % 2 == 0) g[n / 2] = (uint8_t)(v << 4); else g[n / 2] |= (uint8_t)v;
    n++;
  }
  return n == 32 ? 0 : -1;
}

static double now_d(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + tv.tv_usec / 1e6;
}
static int64_t day_floor(int64_t t) { int64_t r = t % DAY; if (r < 0) r += DAY; return t - r; }

static void fmt_date(int64_t t, char out[32]) {
  if (t == NEVER) { strcpy(out, "0001-01-01T00:00:00Z"); return; }
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
static void fmt_day(int64_t t, char out[16]) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(out, 16, "%Y-%m-%d", &tm);
}
static int all_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) if (!isdigit((unsigned char)s[i])) return 0;
  return 1;
}
static int ymd_to_time(int y, int mo, int d, int h, int mi, int se, int64_t *out) {
  if (y < 1 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 ||
      mi < 0 || mi > 59 || se < 0 || se > 60) return -1;
  struct tm tm = {0};
  tm.tm_year = y - 1900; tm.tm_mon = mo - 1; tm.tm_mday = d;
  tm.tm_hour = h; tm.tm_min = mi; tm.tm_sec = se;
  time_t t = timegm(&tm);
  struct tm chk;
  gmtime_r(&t, &chk);
  if (chk.tm_mday != d || chk.tm_mon != mo - 1) return -1; /* e.g. Feb 30 */
  *out = (int64_t)t;
  return 0;
}
/* lenient ISO 8601: YYYY-MM-DD[(T| )HH:MM[:SS][.frac]][Z|(+|-)HH[:]MM] */
static int parse_iso_lenient(const char *s, int64_t *out) {
  if (!s) return -1;
  size_t n = strlen(s);
  if (n < 10 || n > 40 || !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) ||
      s[7] != '-' || !all_digits(s + 8, 2)) return -1;
  int y = atoi(s), mo = atoi(s + 5), d = atoi(s + 8), h = 0, mi = 0, se = 0;
  const char *p = s + 10;
  long off = 0;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    p++;
    if (!all_digits(p, 2) || p[2] != ':' || !all_digits(p + 3, 2)) return -1;
    h = atoi(p); mi = atoi(p + 3); p += 5;
    if (*p == ':') { if (!all_digits(p + 1, 2)) return -1; se = atoi(p + 1); p += 3; }
    if (*p == '.') { p++; if (!isdigit((unsigned char)*p)) return -1; while (isdigit((unsigned char)*p)) p++; }
    if (*p == 'Z' || *p == 'z') p++;
    else if (*p == '+' || *p == '-') {
      int sign = *p == '-' ? -1 : 1;
      p++;
      if (!all_digits(p, 2)) return -1;
      int oh = atoi(p), om = 0;
      p += 2;
      if (*p == ':') p++;
      if (all_digits(p, 2) && *p) { om = atoi(p); p += 2; }
      off = sign * (oh * 3600L + om * 60L);
    }
  }
  if (*p) return -1;
  int64_t t;
  if (ymd_to_time(y, mo, d, h, mi, se, &t)) return -1;
  *out = t - off;
  return 0;
}
/* strict yyyy-MM-ddTHH:mm:ssZ */
static int parse_iso_strict(const char *s, int64_t *out) {
  if (!s || strlen(s) != 20 || !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) ||
      s[7] != '-' || !all_digits(s + 8, 2) || s[10] != 'T' || !all_digits(s + 11, 2) ||
      s[13] != ':' || !all_digits(s + 14, 2) || s[16] != ':' || !all_digits(s + 17, 2) || s[19] != 'Z')
    return -1;
  return ymd_to_time(atoi(s), atoi(s + 5), atoi(s + 8), atoi(s + 11), atoi(s + 14), atoi(s + 17), out);
}
/* strict yyyy-MM-dd */
static int parse_day_strict(const char *s, int64_t *out) {
  if (!s || strlen(s) != 10 || !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) ||
      s[7] != '-' || !all_digits(s + 8, 2)) return -1;
  return ymd_to_time(atoi(s), atoi(s + 5), atoi(s + 8), 0, 0, 0, out);
}
static int parse_ll(const char *s, long long *out) {
  if (!s || !*s || strlen(s) > 30) return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || isspace((unsigned char)*s)) return -1;
  *out = v;
  return 0;
}
static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}
static int ci_contains(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  if (!n) return 1;
  for (; *hay; hay++) if (strncasecmp(hay, needle, n) == 0) return 1;
  return 0;
}
/* fixed point: v in units of 10^-dec */
static void fmt_fixed(int64_t v, int dec, char *out, size_t outlen) {
  int64_t p = 1;
  for (int i = 0; i < dec; i++) p *= 10;
  const char *sign = v < 0 ? "-" : "";
  uint64_t a = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
  if (dec == 0) snprintf(out, outlen, "%s%" PRIu64, sign, a);
  else snprintf(out, outlen, "%s%" PRIu64 ".%0*" PRIu64, sign, a / (uint64_t)p, dec, a % (uint64_t)p);
}
static void fmt_u128(unsigned __int128 v, char out[48]) {
  char tmp[48];
  int n = 0;
  do { tmp[n++] = (char)('0' + (int)(v % 10)); v /= 10; } while (v && n < 45);
  for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = 0;
}
static void fmt_i128_fixed(__int128 v, int dec, char out[64]) {
  char digits[48];
  int neg = v < 0;
  fmt_u128(neg ? (unsigned __int128)(-v) : (unsigned __int128)v, digits);
  size_t n = strlen(digits);
  char *o = out;
  if (neg) *o++ = '-';
  if (dec == 0) { strcpy(o, digits); return; }
  if ((int)n <= dec) {
    *o++ = '0'; *o++ = '.';
    for (int i = 0; i < dec - (int)n; i++) *o++ = '0';
    strcpy(o, digits);
  } else {
    memcpy(o, digits, n - (size_t)dec); o += n - (size_t)dec;
    *o++ = '.';
    strcpy(o, digits + n - dec);
  }
}
static char *xstrdup(const char *s) { char *r = strdup(s ? s : ""); if (!r) abort(); return r; }
static void *xrealloc(void *p, size_t n) { void *r = realloc(p, n ? n : 1); if (!r) abort(); return r; }

/* interruptible sleep */
static void sim_sleep_ms(long ms) {
  while (ms > 0 && !g_stopping) {
    long step = ms > 100 ? 100 : ms;
    struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
  }
}

/* ------------------------------------------------------------------ */
/* JSON helpers on top of yajl_gen                                     */

static yajl_gen jnew(void) {
  yajl_gen g = yajl_gen_alloc(NULL);
  if (!g) abort();
  yajl_gen_config(g, yajl_gen_beautify, 0);
  return g;
}
static void js(yajl_gen g, const char *s) { yajl_gen_string(g, (const unsigned char *)s, strlen(s)); }
static void jnum(yajl_gen g, const char *s) { yajl_gen_number(g, s, strlen(s)); }
static void jks(yajl_gen g, const char *k, const char *v) { js(g, k); js(g, v); }
static void jki(yajl_gen g, const char *k, long long v) { js(g, k); yajl_gen_integer(g, v); }
static void jkb(yajl_gen g, const char *k, int v) { js(g, k); yajl_gen_bool(g, v); }
static void jkfix(yajl_gen g, const char *k, int64_t v, int dec) {
  char b[48];
  fmt_fixed(v, dec, b, sizeof b);
  js(g, k); jnum(g, b);
}
static void jkdate(yajl_gen g, const char *k, int64_t t) { char b[32]; fmt_date(t, b); jks(g, k, b); }
static void jkguid(yajl_gen g, const char *k, const uint8_t gd[16]) { char b[33]; guid_hex(gd, b); jks(g, k, b); }
static void jku128(yajl_gen g, const char *k, unsigned __int128 v) { char b[48]; fmt_u128(v, b); js(g, k); jnum(g, b); }

/* ------------------------------------------------------------------ */
/* replies                                                             */

struct reply {
  unsigned status;
  char *body; /* malloc'd */
  size_t len;
  const char *ctype;
  int retry_after; /* <0: none */
  int huge;        /* stream 64 MiB */
  int cut;         /* send the full Content-Length, half the body, close */
  int drop;        /* close the connection without any answer */
  const char *allow;
  char cycle[16];  /* Jasper usages page: its cycle start (quirks mode adds it) */
};
static void reply_set(struct reply *r, unsigned status, const char *ctype, const char *body, size_t len) {
  free(r->body);
  r->body = xrealloc(NULL, len + 1);
  memcpy(r->body, body, len);
  r->body[len] = 0;
  r->len = len;
  r->status = status;
  r->ctype = ctype;
}
static void reply_gen(struct reply *r, unsigned status, yajl_gen g) {
  const unsigned char *buf;
  size_t len;
  yajl_gen_get_buf(g, &buf, &len);
  reply_set(r, status, "application/json; charset=utf-8", (const char *)buf, len);
  yajl_gen_free(g);
}
static void reply_text_json(struct reply *r, unsigned status, const char *s) {
  reply_set(r, status, "application/json; charset=utf-8", s, strlen(s));
}

enum vendor { V_OTHER, V_CCC, V_BILLING, V_JASPER };
static enum vendor vendor_of(const char *url) {
  if (strncmp(url, "/api/services", 13) == 0) return V_CCC;
  if (ends_with(url, "/customer-usage-data")) return V_BILLING;
  if (strncmp(url, "/rws/", 5) == 0) return V_JASPER;
  return V_OTHER;
}

#define SECRET_STACK "SIM-SECRET-STACKTRACE: at Ccc.Api.Services.UsageService.Any(Request request) in D:\\build\\secret\\UsageService.cs:line 42"

static void ccc_error(struct reply *r, unsigned status, const char *code, const char *msg,
                      const char *field, const char *field_msg) {
  yajl_gen g = jnew();
  yajl_gen_map_open(g);
  js(g, "responseStatus");
  yajl_gen_map_open(g);
  jks(g, "errorCode", code);
  jks(g, "message", msg);
  jks(g, "stackTrace", SECRET_STACK);
  js(g, "errors");
  yajl_gen_array_open(g);
  if (field) {
    yajl_gen_map_open(g);
    jks(g, "errorCode", code);
    jks(g, "fieldName", field);
    jks(g, "message", field_msg ? field_msg : msg);
    yajl_gen_map_close(g);
  }
  yajl_gen_array_close(g);
  yajl_gen_map_close(g);
  yajl_gen_map_close(g);
  reply_gen(r, status, g);
}
static void billing_error(struct reply *r, unsigned status, const char *msg) {
  yajl_gen g = jnew();
  yajl_gen_map_open(g);
  jks(g, "message", msg);
  yajl_gen_map_close(g);
  reply_gen(r, status, g);
}
static void jasper_error(struct reply *r, unsigned status, const char *code, const char *msg) {
  yajl_gen g = jnew();
  yajl_gen_map_open(g);
  jks(g, "errorMessage", msg);
  jks(g, "errorCode", code);
  yajl_gen_map_close(g);
  reply_gen(r, status, g);
}
/* an error body in the shape of the vendor owning the URL */
static void vendor_error(struct reply *r, const char *url, unsigned status, const char *code_word, const char *msg) {
  switch (vendor_of(url)) {
  case V_CCC: ccc_error(r, status, code_word, msg, NULL, NULL); break;
  case V_JASPER: {
    const char *code = status == 401 ? "10000001" : status == 404 ? "10000013" : "30000001";
    jasper_error(r, status, code, status == 401 ? "Invalid credentials." : msg);
    break;
  }
  default: billing_error(r, status, msg); break;
  }
}

/* ------------------------------------------------------------------ */
/* request context and query access                                    */

struct req_ctx {
  double start;
  char *uri; /* raw, with query */
  char method[16];
  int seen, is_control, counted, endpoint;
  unsigned status;
  char body[4096]; /* request body (login endpoints), truncated */
  size_t body_len;
};
struct rq {
  struct MHD_Connection *c;
  const char *url, *method;
  struct req_ctx *ctx;
};
struct qfind { const char *name; int ci; const char *val; int found; };
static enum MHD_Result qfind_it(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  (void)kind;
  struct qfind *f = cls;
  if (!key) return MHD_YES;
  if (f->ci ? strcasecmp(key, f->name) == 0 : strcmp(key, f->name) == 0) {
    f->val = value ? value : "";
    f->found = 1;
    return MHD_NO;
  }
  return MHD_YES;
}
/* query parameter; ci = match the name case-insensitively */
static const char *qget(struct rq *q, const char *name, int ci) {
  struct qfind f = {name, ci, NULL, 0};
  MHD_get_connection_values(q->c, MHD_GET_ARGUMENT_KIND, qfind_it, &f);
  return f.found ? f.val : NULL;
}
static const char *hget(struct rq *q, const char *name) {
  return MHD_lookup_connection_value(q->c, MHD_HEADER_KIND, name);
}

/* ------------------------------------------------------------------ */
/* CCC model                                                           */

static const char *ccc_status_names[8] = {"Blocked", "AccountCancelled", "AccountSuspended",
                                          "Provisioning", "TrialExpired", "TrialActive",
                                          "DemoAccount", "CertifiedSecure"};
enum { ST_BLOCKED, ST_CANCELLED, ST_SUSPENDED, ST_PROVISIONING, ST_TRIALEXPIRED,
       ST_TRIALACTIVE, ST_DEMO, ST_CERTIFIED };
static int ccc_status_from_name(const char *s) {
  for (int i = 0; i < 8; i++) if (s && strcasecmp(s, ccc_status_names[i]) == 0) return i;
  return -1;
}

static const char *company_names[] = {"Acme Legal LLP", "Northwind Health", "Contoso Finance",
                                      "Fabrikam Insurance", "Globex Accounting", "Initech Advisory",
                                      "Umbrella Clinics", "Wayne Family Trust", "Tyrell Law Group",
                                      "Stark Wealth Partners"};
static const struct { const char *city, *state, *country, *postal; } places[] = {
    {"Chicago", "IL", "United States", "60601"}, {"Toronto", "ON", "Canada", "M5H 2N2"},
    {"Boston", "MA", "United States", "02110"},  {"Denver", "CO", "United States", "80202"},
    {"London", "Greater London", "United Kingdom", "EC1A 1BB"},
    {"Dublin", "Leinster", "Ireland", "D02 X285"}, {"Austin", "TX", "United States", "73301"}};
static const char *first_names[] = {"Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace",
                                    "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy",
                                    "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zo\xc3\xab"};
static const char *last_names[] = {"Anderson", "Brown", "Chen", "Dubois", "Evans", "Fischer",
                                   "Garcia", "Hughes", "Ivanova", "Jensen", "Khan", "Lopez",
                                   "M\xc3\xbcller", "Nakamura", "O'Brien", "Patel"};
static const char *ascii_last[] = {"anderson", "brown", "chen", "dubois", "evans", "fischer",
                                   "garcia", "hughes", "ivanova", "jensen", "khan", "lopez",
                                   "mueller", "nakamura", "obrien", "patel"};
static const char *ascii_first[] = {"alice", "bob", "carol", "david", "erin", "frank", "grace",
                                    "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy",
                                    "rupert", "sybil", "trent", "victor", "walter", "zoe"};
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

struct svc {
  uint8_t guid[16], coll[16], client[16];
  char name[80], code[16], ref[24], domain[96], coll_name[48], jurisdiction[4];
  char contact_name[64], contact_email[128], contact_phone[24];
  char co_addr[64], co_web[112];
  int place, initial_term, reseller, partner, status;
  int64_t created, trial_end, effective;
  long long total, pro, guest, disabled, unreg, f_gw, f_plus, f_dlp, f_slf, f_forms, msgs, atts, storage;
};
static struct svc *g_svc;

struct admin { uint8_t guid[16]; char email[96]; };
static struct admin g_admins[4];
static uint8_t g_reseller_guid[2][16], g_partner_guid[2][16];
static const char *reseller_names[2] = {"SecureMail Resellers Ltd", "Channel One Distribution"};
static const char *partner_names[2] = {"Global Partner Network", "Direct Partner Program"};

struct chg { uint8_t guid[16], op[16]; int svc, status, admin; int64_t changed_on; };
static struct chg *g_chg;
static size_t g_nchg, g_capchg;
#define MAX_CHANGES 1000000

static void domain_from_name(const char *name, char *out, size_t outlen) {
  size_t o = 0;
  for (const char *p = name; *p && o + 20 < outlen; p++)
    if (isalnum((unsigned char)*p)) out[o++] = (char)tolower((unsigned char)*p);
  snprintf(out + o, outlen - o, ".example.com");
}

static void ccc_init(void) {
  int n = opt.ccc_services;
  g_svc = calloc((size_t)n, sizeof *g_svc);
  if (!g_svc) abort();
  for (int i = 0; i < 2; i++) {
    make_guid(g_reseller_guid[i], T_RESELLER, (uint64_t)i, 0, 0);
    make_guid(g_partner_guid[i], T_PARTNER, (uint64_t)i, 0, 0);
  }
  for (int i = 0; i < 4; i++) {
    make_guid(g_admins[i].guid, T_ADMIN, (uint64_t)i, 0, 0);
    snprintf(g_admins[i].email, sizeof g_admins[i].email, "%s.%s@%s",
             ascii_first[H(T_ADMIN, (uint64_t)i, 1, 0) % NELEM(ascii_first)],
             ascii_last[H(T_ADMIN, (uint64_t)i, 2, 0) % NELEM(ascii_last)],
             i < 2 ? "securemail-resellers.example.net" : "channel-one.example.net");
  }
  for (int i = 0; i < n; i++) {
    struct svc *s = &g_svc[i];
    uint64_t h = H(T_SVC, (uint64_t)i, 0, 0);
    make_guid(s->guid, T_SVC, (uint64_t)i, 1, 0);
    make_guid(s->coll, T_SVC, (uint64_t)i, 2, 0);
    make_guid(s->client, T_SVC, (uint64_t)i, 3, 0);
    int base = (int)((h + (uint64_t)i) % NELEM(company_names));
    if (i < NELEM(company_names)) base = (int)((opt.seed + (uint64_t)i) % NELEM(company_names));
    if (i >= NELEM(company_names))
      snprintf(s->name, sizeof s->name, "%s %d", company_names[base], i / NELEM(company_names) + 1);
    else
      snprintf(s->name, sizeof s->name, "%s", company_names[base]);
    domain_from_name(s->name, s->domain, sizeof s->domain);
    snprintf(s->code, sizeof s->code, "SVC%05u", (unsigned)(h % 100000));
    snprintf(s->ref, sizeof s->ref, "REF-%06u", (unsigned)((h >> 20) % 1000000));
    snprintf(s->coll_name, sizeof s->coll_name, "Collection %c", 'A' + (int)((h >> 8) % 4));
    strcpy(s->jurisdiction, (h >> 12) % 3 == 0 ? "EU" : (h >> 12) % 3 == 1 ? "US" : "CA");
    int fi = (int)((h >> 24) % NELEM(first_names)), li = (int)((h >> 32) % NELEM(last_names));
    snprintf(s->contact_name, sizeof s->contact_name, "%s %s", first_names[fi], last_names[li]);
    snprintf(s->contact_email, sizeof s->contact_email, "%s.%s@%s", ascii_first[fi], ascii_last[li], s->domain);
    snprintf(s->contact_phone, sizeof s->contact_phone, "+1-555-01%02u", (unsigned)((h >> 40) % 100));
    s->place = (int)((h >> 44) % NELEM(places));
    snprintf(s->co_addr, sizeof s->co_addr, "%u %s Street", (unsigned)(1 + (h >> 48) % 900),
             (h >> 50) % 2 ? "Main" : "Market");
    snprintf(s->co_web, sizeof s->co_web, "https://www.%s", s->domain);
    s->initial_term = 12 * (int)(1 + (h >> 52) % 3);
    s->reseller = i % 2;
    s->partner = (i / 2) % 2;
    s->created = day_floor(opt.now) - (int64_t)(200 + H(T_SVC, (uint64_t)i, 4, 0) % 1300) * DAY +
                 (int64_t)(H(T_SVC, (uint64_t)i, 5, 0) % DAY);
    s->trial_end = s->created + 30 * DAY;
    s->effective = s->created + 30 * DAY;
    /* status */
    if (i == 0) s->status = ST_CERTIFIED;
    else if (i == 1) s->status = ST_TRIALACTIVE;
    else if (i == 2) s->status = ST_BLOCKED;
    else if (i == 3) s->status = ST_PROVISIONING;
    else s->status = (H(T_SVC, (uint64_t)i, 6, 0) % 3 == 0) ? ST_TRIALACTIVE : ST_CERTIFIED;
    /* usage figures */
    uint64_t u = H(T_SVC, (uint64_t)i, 7, 0);
    s->total = 120 + (long long)(u % 780);
    s->guest = s->total * (long long)(10 + (u >> 10) % 30) / 100;
    s->pro = s->total - s->guest;
    s->disabled = s->total * (long long)(2 + (u >> 16) % 7) / 100;
    s->unreg = s->total * (long long)(5 + (u >> 20) % 11) / 100;
    s->f_gw = s->pro * (long long)((u >> 24) % 101) / 100;
    s->f_plus = s->pro * (long long)((u >> 31) % 101) / 100;
    s->f_dlp = s->pro * (long long)((u >> 38) % 60) / 100;
    s->f_slf = s->total * (long long)((u >> 44) % 101) / 100;
    s->f_forms = s->pro * (long long)((u >> 51) % 40) / 100;
    uint64_t v = H(T_SVC, (uint64_t)i, 8, 0);
    s->msgs = s->total * (long long)(20 + v % 60);
    s->atts = s->msgs * (long long)(10 + (v >> 8) % 20) / 100;
    s->storage = s->atts * (long long)(50000 + (v >> 16) % 1500000);
  }
  /* initial status changes: round-robin over services, spread over 60 days,
   * the newest change of each service carries its current status */
  int N = opt.ccc_status_changes;
  g_capchg = (size_t)N + 64;
  g_chg = calloc(g_capchg, sizeof *g_chg);
  if (!g_chg) abort();
  int64_t span = 60 * DAY, t0 = opt.now - span;
  for (int i = 0; i < N; i++) {
    struct chg *c = &g_chg[g_nchg++];
    c->svc = i % n;
    make_guid(c->guid, T_CHG, (uint64_t)i, 0, 0);
    make_guid(c->op, T_CHG, (uint64_t)i, 1, 0);
    int64_t step = span / N;
    c->changed_on = t0 + (int64_t)i * step + (int64_t)(step > 1 ? H(T_CHG, (uint64_t)i, 2, 0) % (uint64_t)step : 0);
    if (c->changed_on > opt.now) c->changed_on = opt.now;
    c->admin = (int)(H(T_CHG, (uint64_t)i, 3, 0) % 4);
    if (i + n >= N) c->status = g_svc[c->svc].status;
    else {
      static const int pool[] = {ST_PROVISIONING, ST_TRIALACTIVE, ST_CERTIFIED, ST_CERTIFIED,
                                 ST_TRIALACTIVE, ST_SUSPENDED, ST_DEMO, ST_TRIALEXPIRED};
      c->status = pool[H(T_CHG, (uint64_t)i, 4, 0) % NELEM(pool)];
    }
  }
}

static int ccc_find_service(const uint8_t g[16]) {
  for (int i = 0; i < opt.ccc_services; i++) if (memcmp(g_svc[i].guid, g, 16) == 0) return i;
  return -1;
}

struct cuser {
  uint8_t guid[16], group_guid[16];
  char email[128], first[32], last[32], group[32], invited_by[128], toolbar[16];
  int is_alias, guest, disabled, never, status_numeric;
  int64_t created, registered, last_login, last_activity, last_sent, last_retr;
};
static void ccc_user(int s, int j, struct cuser *u) {
  memset(u, 0, sizeof *u);
  uint64_t h = H(T_USER, (uint64_t)s, (uint64_t)j, 0);
  make_guid(u->guid, T_USER, (uint64_t)s, (uint64_t)j, 1);
  int fi = (int)(h % NELEM(first_names)), li = (int)((h >> 8) % NELEM(last_names));
  snprintf(u->first, sizeof u->first, "%s", first_names[fi]);
  snprintf(u->last, sizeof u->last, "%s", last_names[li]);
  u->guest = j == 1 || (j > 1 && (h >> 16) % 4 == 0);
  u->disabled = j % 5 == 3;
  u->never = j % 7 == 4;
  u->is_alias = j % 11 == 7;
  u->status_numeric = (int)((h >> 20) & 1);
  if (u->guest) {
    snprintf(u->email, sizeof u->email, "%s.%s%d@partner-%u.example.org", ascii_first[fi], ascii_last[li], j,
             (unsigned)((h >> 24) % 50));
    strcpy(u->group, "External Guests");
    make_guid(u->group_guid, T_GROUP, (uint64_t)s, 99, 0);
    snprintf(u->invited_by, sizeof u->invited_by, "%s", g_svc[s].contact_email);
  } else {
    static const char *groups[] = {"Staff", "Legal", "Finance"};
    int gi = (int)((h >> 28) % 3);
    snprintf(u->email, sizeof u->email, "%s.%s%d@%s", ascii_first[fi], ascii_last[li], j, g_svc[s].domain);
    strcpy(u->group, groups[gi]);
    make_guid(u->group_guid, T_GROUP, (uint64_t)s, (uint64_t)gi, 0);
  }
  u->created = g_svc[s].created + (int64_t)((h >> 32) % (uint64_t)(opt.now - g_svc[s].created));
  if (u->never) {
    u->registered = u->last_login = u->last_activity = u->last_sent = u->last_retr = NEVER;
  } else {
    u->registered = u->created + (int64_t)((h >> 40) % (3 * DAY));
    if (u->registered > opt.now) u->registered = opt.now;
    int64_t ll = opt.now - (int64_t)((H(T_USER, (uint64_t)s, (uint64_t)j, 2) % (u->disabled ? 90 : 10)) * DAY) -
                 (int64_t)(H(T_USER, (uint64_t)s, (uint64_t)j, 3) % DAY);
    if (ll < u->registered) ll = u->registered;
    u->last_login = ll;
    u->last_sent = ll + (int64_t)(H(T_USER, (uint64_t)s, (uint64_t)j, 4) % 3600);
    u->last_retr = ll + (int64_t)(H(T_USER, (uint64_t)s, (uint64_t)j, 5) % 7200);
    u->last_activity = u->last_sent > u->last_retr ? u->last_sent : u->last_retr;
    if (u->last_activity > opt.now) u->last_activity = u->last_sent = u->last_retr = opt.now;
    snprintf(u->toolbar, sizeof u->toolbar, "8.%u.%u.%u", (unsigned)(1 + (h >> 44) % 4),
             (unsigned)((h >> 48) % 10), (unsigned)(1000 + (h >> 52) % 900));
  }
}

static void gen_service_usage_fields(yajl_gen g, int si, int status) {
  struct svc *s = &g_svc[si];
  jkguid(g, "serviceGuid", s->guid);
  jks(g, "name", s->name);
  jks(g, "status", ccc_status_names[status]);
  jks(g, "serviceCode", s->code);
  jks(g, "referenceId", s->ref);
  jks(g, "primaryDomain", s->domain);
  jkdate(g, "createdOn", s->created);
  jkdate(g, "trialEndDate", s->trial_end);
  jkdate(g, "effectiveDate", s->effective);
  jki(g, "initialTerm", s->initial_term);
  jkguid(g, "collectionGuid", s->coll);
  jks(g, "collectionName", s->coll_name);
  jkguid(g, "clientGuid", s->client);
  js(g, "contact");
  yajl_gen_map_open(g);
  jks(g, "name", s->contact_name);
  jks(g, "email", s->contact_email);
  jks(g, "phoneNumber", s->contact_phone);
  yajl_gen_map_close(g);
  js(g, "company");
  yajl_gen_map_open(g);
  jks(g, "name", s->name);
  jks(g, "address", s->co_addr);
  jks(g, "city", places[s->place].city);
  jks(g, "stateProvince", places[s->place].state);
  jks(g, "postalCode", places[s->place].postal);
  jks(g, "country", places[s->place].country);
  jks(g, "website", s->co_web);
  yajl_gen_map_close(g);
  jks(g, "periodType", "Daily");
  jkdate(g, "period", day_floor(opt.now) - DAY);
  jki(g, "totalUserCount", s->total);
  jki(g, "proUserCount", s->pro);
  jki(g, "guestUserCount", s->guest);
  jki(g, "disabledUserCount", s->disabled);
  jki(g, "unregisteredUserCount", s->unreg);
  jki(g, "featureUsageSecureMessagingGateway", s->f_gw);
  jki(g, "featureUsageSecureMessagingPlus", s->f_plus);
  jki(g, "featureUsageDataLeakPrevention", s->f_dlp);
  jki(g, "featureUsageSecureLargeFiles", s->f_slf);
  jki(g, "featureUsageSecureForms", s->f_forms);
  jki(g, "totalMessageCount", s->msgs);
  jki(g, "totalAttachmentCount", s->atts);
  jki(g, "attachmentStorageUsage", s->storage);
}

static void ccc_bind_error(struct reply *r, const char *op, const char *field, const char *value) {
  char msg[128], fmsg[200];
  snprintf(msg, sizeof msg, "Unable to bind to request '%s'", op);
  snprintf(fmsg, sizeof fmsg, "'%.60s' is an Invalid value for '%s'", value ? value : "", field);
  ccc_error(r, 400, "SerializationException", msg, field, fmsg);
}

static void ccc_service_usage(struct rq *q, struct reply *r, const char *sguid) {
  uint8_t g[16];
  if (parse_guid(sguid, g)) { ccc_bind_error(r, "GetServiceUsage", "ServiceGuid", sguid); return; }
  pthread_mutex_lock(&g_lock);
  int si = ccc_find_service(g);
  int st = si >= 0 ? g_svc[si].status : -1;
  pthread_mutex_unlock(&g_lock);
  (void)q;
  if (si < 0) { ccc_error(r, 404, "NotFound", "Service not found", NULL, NULL); return; }
  if (st == ST_BLOCKED) {
    ccc_error(r, 400, "ServiceBlocked", "The service is in Blocked state; the usage report is not available.", NULL, NULL);
    return;
  }
  if (st == ST_PROVISIONING) {
    ccc_error(r, 400, "ServiceProvisioning", "The service is still being provisioned; the usage report is not available.", NULL, NULL);
    return;
  }
  yajl_gen j = jnew();
  yajl_gen_map_open(j);
  gen_service_usage_fields(j, si, st);
  yajl_gen_map_close(j);
  reply_gen(r, 200, j);
}

static void ccc_user_usage(struct rq *q, struct reply *r, const char *sguid, const char *uguid) {
  uint8_t g[16], ug[16];
  if (parse_guid(sguid, g)) { ccc_bind_error(r, "GetServiceUserUsage", "ServiceGuid", sguid); return; }
  if (parse_guid(uguid, ug)) { ccc_bind_error(r, "GetServiceUserUsage", "UserGuid", uguid); return; }
  const char *pt = qget(q, "PeriodType", 1), *pp = qget(q, "Period", 1);
  int monthly = 0;
  if (pt && *pt) {
    if (strcasecmp(pt, "Daily") == 0) monthly = 0;
    else if (strcasecmp(pt, "Monthly") == 0) monthly = 1;
    else { ccc_bind_error(r, "GetServiceUserUsage", "PeriodType", pt); return; }
  }
  int64_t period = day_floor(opt.now) - DAY;
  if (pp && *pp) {
    if (parse_iso_lenient(pp, &period)) { ccc_bind_error(r, "GetServiceUserUsage", "Period", pp); return; }
    period = day_floor(period);
  }
  int si = ccc_find_service(g);
  if (si < 0) { ccc_error(r, 404, "NotFound", "Service not found", NULL, NULL); return; }
  int uj = -1;
  struct cuser u;
  for (int j = 0; j < opt.ccc_users; j++) {
    uint8_t cand[16];
    make_guid(cand, T_USER, (uint64_t)si, (uint64_t)j, 1);
    if (memcmp(cand, ug, 16) == 0) { uj = j; break; }
  }
  if (uj < 0) { ccc_error(r, 404, "NotFound", "User not found", NULL, NULL); return; }
  ccc_user(si, uj, &u);
  /* period figures */
  struct tm tm;
  time_t pt_t = (time_t)period;
  gmtime_r(&pt_t, &tm);
  uint64_t key = monthly ? (uint64_t)(tm.tm_year * 12 + tm.tm_mon) : (uint64_t)(period / DAY);
  uint64_t h1 = H(T_USER, (uint64_t)si, (uint64_t)uj, 100 + key * 2 + (uint64_t)monthly);
  uint64_t h2 = mix64(h1);
  long long sent, recv, atts, asize, inv, acc;
  if (u.never || period > opt.now) sent = recv = atts = asize = inv = acc = 0;
  else if (!monthly) {
    sent = u.disabled ? 0 : (long long)(h1 % 40);
    recv = (long long)((h1 >> 8) % 80);
    atts = (long long)((h1 >> 16) % 10);
    asize = atts * (long long)(20000 + (h2 % 5000000));
    inv = u.guest ? 0 : (long long)((h1 >> 24) % 3);
    acc = inv ? (long long)((h1 >> 28) % (uint64_t)(inv + 1)) : 0;
  } else {
    sent = u.disabled ? (long long)(h1 % 20) : 200 + (long long)(h1 % 800);
    recv = 400 + (long long)((h1 >> 12) % 1600);
    atts = 40 + (long long)((h1 >> 24) % 200);
    asize = atts * (long long)(20000 + (h2 % 5000000));
    inv = u.guest ? 0 : 5 + (long long)((h1 >> 36) % 30);
    acc = inv ? (long long)((h1 >> 44) % (uint64_t)(inv + 1)) : 0;
  }
  yajl_gen j = jnew();
  yajl_gen_map_open(j);
  jkguid(j, "serviceGuid", g_svc[si].guid);
  jks(j, "periodType", monthly ? "Monthly" : "Daily");
  jkdate(j, "period", period);
  js(j, "usage");
  yajl_gen_map_open(j);
  jkguid(j, "userGuid", u.guid);
  jks(j, "emailAddress", u.email);
  jkb(j, "isAlias", u.is_alias);
  jks(j, "firstName", u.first);
  jks(j, "lastName", u.last);
  if (u.status_numeric) jks(j, "status", u.disabled ? "1" : "0");
  else jks(j, "status", u.disabled ? "Disabled" : "Active");
  jkdate(j, "createdOn", u.created);
  jkdate(j, "registeredOn", u.registered);
  jkdate(j, "lastLogin", u.last_login);
  jks(j, "groupName", u.group);
  jks(j, "groupType", u.guest ? "Guest" : "Professional");
  jkguid(j, "groupGuid", u.group_guid);
  jki(j, "totalMessagesSent", sent);
  jki(j, "totalMessagesReceived", recv);
  jki(j, "totalAttachmentsCount", atts);
  jki(j, "totalAttachmentsSize", asize);
  jki(j, "totalInvitationsSent", inv);
  jki(j, "totalInvitationsAccepted", acc);
  jks(j, "lastToolbarVersion", u.toolbar);
  jks(j, "invitedByEmailAddress", u.invited_by);
  jkdate(j, "lastMsgSent", u.last_sent);
  jkdate(j, "lastMsgRetrieved", u.last_retr);
  jkdate(j, "lastActivity", u.last_activity);
  yajl_gen_map_close(j);
  yajl_gen_map_close(j);
  reply_gen(r, 200, j);
}

static void ccc_status_search(struct rq *q, struct reply *r) {
  static const char *op = "SearchServiceStatusChanges";
  uint8_t f_svc[16], f_res[16], f_par[16], f_usr[16];
  int h_svc = 0, h_res = 0, h_par = 0, h_usr = 0;
  const char *v;
#define GUIDF(name, buf, flag)                                                     \
  if ((v = qget(q, name, 1)) && *v) {                                              \
    if (parse_guid(v, buf)) { ccc_bind_error(r, op, name, v); return; }            \
    flag = 1;                                                                      \
  }
  GUIDF("ServiceGuid", f_svc, h_svc)
  GUIDF("ResellerGuid", f_res, h_res)
  GUIDF("PartnerGuid", f_par, h_par)
  GUIDF("ChangedByUserGuid", f_usr, h_usr)
#undef GUIDF
  const char *email = qget(q, "ChangedByUserEmail", 1);
  if (email && !*email) email = NULL;
  int64_t after = INT64_MIN, before = INT64_MAX;
  if ((v = qget(q, "ChangedAfterDateTime", 1)) && *v && parse_iso_lenient(v, &after)) { ccc_bind_error(r, op, "ChangedAfterDateTime", v); return; }
  if ((v = qget(q, "ChangedBeforeDateTime", 1)) && *v && parse_iso_lenient(v, &before)) { ccc_bind_error(r, op, "ChangedBeforeDateTime", v); return; }
  long long page = 1, psize = 25;
  if ((v = qget(q, "Page", 1)) && *v && parse_ll(v, &page)) { ccc_bind_error(r, op, "Page", v); return; }
  if ((v = qget(q, "PageSize", 1)) && *v && parse_ll(v, &psize)) { ccc_bind_error(r, op, "PageSize", v); return; }
  if (page < 1) { ccc_error(r, 400, "ArgumentOutOfRange", "Page must be greater than or equal to 1", "Page", NULL); return; }
  if (psize < 1 || psize > 1000) { ccc_error(r, 400, "ArgumentOutOfRange", "PageSize must be between 1 and 1000", "PageSize", NULL); return; }

  yajl_gen j = jnew();
  pthread_mutex_lock(&g_lock);
  size_t *match = malloc((g_nchg ? g_nchg : 1) * sizeof *match);
  if (!match) abort();
  size_t nm = 0;
  for (size_t i = 0; i < g_nchg; i++) {
    struct chg *c = &g_chg[i];
    struct svc *s = &g_svc[c->svc];
    if (h_svc && memcmp(s->guid, f_svc, 16)) continue;
    if (h_res && memcmp(g_reseller_guid[s->reseller], f_res, 16)) continue;
    if (h_par && memcmp(g_partner_guid[s->partner], f_par, 16)) continue;
    if (h_usr && memcmp(g_admins[c->admin].guid, f_usr, 16)) continue;
    if (email && strcasecmp(email, g_admins[c->admin].email)) continue;
    if (c->changed_on < after) continue;   /* ChangedAfterDateTime is inclusive */
    if (c->changed_on >= before) continue; /* ChangedBeforeDateTime is exclusive */
    match[nm++] = i;
  }
  long long total_pages = (long long)((nm + (size_t)psize - 1) / (size_t)psize);
  yajl_gen_map_open(j);
  jki(j, "pageSize", psize);
  jki(j, "totalPages", total_pages);
  jki(j, "totalItems", (long long)nm);
  jki(j, "currentPage", page);
  js(j, "results");
  yajl_gen_array_open(j);
  unsigned long long off = (unsigned long long)(page - 1) * (unsigned long long)psize;
  for (unsigned long long k = off; k < nm && k < off + (unsigned long long)psize; k++) {
    struct chg *c = &g_chg[match[k]];
    struct svc *s = &g_svc[c->svc];
    yajl_gen_map_open(j);
    jkguid(j, "serviceGuid", s->guid);
    jks(j, "serviceName", s->name);
    jks(j, "serviceCode", s->code);
    jks(j, "primaryDomain", s->domain);
    jks(j, "jurisdiction", s->jurisdiction);
    js(j, "branding");
    yajl_gen_map_open(j);
    jks(j, "primaryColor", c->svc % 2 ? "#0b5394" : "#38761d");
    char logo[160];
    snprintf(logo, sizeof logo, "https://cdn.%s/logo.png", s->domain);
    jks(j, "logoUrl", logo);
    yajl_gen_map_close(j);
    js(j, "serviceUsage");
    yajl_gen_map_open(j);
    gen_service_usage_fields(j, c->svc, c->status);
    yajl_gen_map_close(j);
    jkdate(j, "createdOn", s->created);
    jkguid(j, "resellerGuid", g_reseller_guid[s->reseller]);
    jks(j, "resellerName", reseller_names[s->reseller]);
    jkguid(j, "partnerGuid", g_partner_guid[s->partner]);
    jks(j, "partnerName", partner_names[s->partner]);
    jkguid(j, "operationGuid", c->op);
    jkguid(j, "serviceStatusChangeGuid", c->guid);
    jks(j, "status", ccc_status_names[c->status]);
    jkdate(j, "changedOn", c->changed_on);
    jkguid(j, "changedByUserGuid", g_admins[c->admin].guid);
    jks(j, "changedByUserEmailAddress", g_admins[c->admin].email);
    yajl_gen_map_close(j);
  }
  pthread_mutex_unlock(&g_lock);
  free(match);
  yajl_gen_array_close(j);
  yajl_gen_map_close(j);
  reply_gen(r, 200, j);
}

static void ccc_route(struct rq *q, struct reply *r) {
  char buf[512];
  const char *u = q->url;
  if (strlen(u) >= sizeof buf) { ccc_error(r, 404, "NotFound", "Handler for request not found", NULL, NULL); return; }
  strcpy(buf, u);
  char *seg[8];
  int ns = 0;
  for (char *save = NULL, *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
    if (ns == 8) { ns = 9; break; }
    seg[ns++] = t;
  }
  /* seg[0]="api", seg[1]="services" */
  if (ns == 3 && strcasecmp(seg[2], "status") == 0) ccc_status_search(q, r);
  else if (ns == 4 && strcasecmp(seg[3], "serviceusage") == 0) ccc_service_usage(q, r, seg[2]);
  else if (ns == 6 && strcasecmp(seg[3], "users") == 0 && strcasecmp(seg[5], "usage") == 0)
    ccc_user_usage(q, r, seg[2], seg[4]);
  else ccc_error(r, 404, "NotFound", "Handler for request not found", NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Billing model                                                       */

static int64_t *g_bevent;  /* per record: eventDate */
static int32_t *g_bloaded; /* per record: loadedDate, days since epoch */
static size_t g_nbill, g_capbill;
#define MAX_BILL 20000000L

static void bill_append(int64_t ev, int32_t ld) {
  if (g_nbill == g_capbill) {
    g_capbill = g_capbill ? g_capbill * 2 : 1024;
    g_bevent = xrealloc(g_bevent, g_capbill * sizeof *g_bevent);
    g_bloaded = xrealloc(g_bloaded, g_capbill * sizeof *g_bloaded);
  }
  g_bevent[g_nbill] = ev;
  g_bloaded[g_nbill] = ld;
  g_nbill++;
}
static void billing_init(void) {
  long n = opt.billing_records;
  int64_t span = 40 * DAY, t0 = opt.now - span;
  int32_t today = (int32_t)(day_floor(opt.now) / DAY);
  for (long i = 0; i < n; i++) {
    int64_t step = span / n;
    int64_t ev = t0 + (int64_t)i * span / n + (step > 1 ? (int64_t)(H(T_BILL, (uint64_t)i + 1, 1, 0) % (uint64_t)step) : 0);
    if (ev > opt.now) ev = opt.now;
    int32_t ld = (int32_t)(day_floor(ev) / DAY) + (H(T_BILL, (uint64_t)i + 1, 2, 0) % 4 == 0 ? 1 : 0);
    if (ld > today) ld = today;
    bill_append(ev, ld);
  }
}

static const char *bill_dest_voice[] = {"United Kingdom - Mobile", "United Kingdom - Landline", "France - Mobile",
                                        "Germany - Landline", "USA & Canada", "Ireland - Mobile", "Non-Geographic 0845"};
static const char *bill_dest_data[] = {"Internet", "Internet - EU Roaming", "Private APN"};
static const char *bill_voice_class[] = {"NATIONAL", "MOBILE", "INTERNATIONAL", "LOCAL", "NON_GEO"};

struct brec {
  long long id;
  int customer, site, billrun, kind, charge_group, usage_product, supplier;
  int64_t event;
  int32_t loaded;
  const char *call_class, *direction, *time_band, *parser, *file_type;
  int prod_is_num;
  long long prod_num;
  char prod_str[32], service_id[24], destination[48], file_name[48], info_gen[64], info_el[48];
  int64_t one_off, data_milli, duration; /* dataQuantity in 1/1000 MB */
  int64_t sell, presell, buy, ratedbuy;  /* 1/10000 currency units */
};
/* derive every field of record idx (0-based) from the seed; needs g_lock */
static void brec_derive(size_t idx, struct brec *b, int strings) {
  uint64_t id = (uint64_t)idx + 1;
  uint64_t h = H(T_BILL, id, 3, 0), h2 = H(T_BILL, id, 4, 0);
  static const int custs[] = {1001, 1001, 1001, 1002, 1002, 1003, 1004, 1017};
  b->id = (long long)id;
  b->customer = custs[h % 8];
  b->site = b->customer * 10 + 1 + (int)((h >> 4) % 3);
  b->event = g_bevent[idx];
  b->loaded = g_bloaded[idx];
  time_t et = (time_t)b->event;
  struct tm tm;
  gmtime_r(&et, &tm);
  b->billrun = 1000 + (tm.tm_year - 100) * 12 + tm.tm_mon; /* one bill run per month */
  int k = (int)((h >> 8) % 10);
  b->kind = k < 4 ? 0 : k < 8 ? 1 : 2; /* 0 data, 1 voice, 2 sms */
  b->direction = (b->kind == 0) ? ((h >> 12) % 5 == 0 ? "INBOUND" : "OUTBOUND") : ((h >> 12) % 2 ? "INBOUND" : "OUTBOUND");
  b->charge_group = 1 + (int)((h >> 16) % 5);
  b->supplier = 1 + (int)((h >> 20) % 3);
  int wd = tm.tm_wday;
  b->time_band = (wd == 0 || wd == 6) ? "WEEKEND" : (tm.tm_hour >= 8 && tm.tm_hour < 18) ? "PEAK" : "OFFPEAK";
  b->one_off = 0; b->data_milli = 0; b->duration = 0;
  int zero = (h2 % 20) == 0; /* ~5% zero-value records (bundled) */
  int64_t sell;
  if (b->kind == 0) {
    b->call_class = (h >> 24) % 6 == 0 ? "DATA_ROAMING" : "DATA";
    uint64_t q = (h2 >> 8) % 1000;
    b->data_milli = (int64_t)(1 + (q < 900 ? (h2 >> 20) % 250000 : (h2 >> 20) % 2048000)); /* up to 2 GB */
    sell = b->data_milli * (b->call_class[4] ? 30 : 2) / 10 + 1; /* per MB pricing */
    b->prod_is_num = 0;
    b->usage_product = 100 + (b->call_class[4] ? 2 : 1);
    b->parser = "mobile-data-v2"; b->file_type = "DATA";
  } else if (b->kind == 1) {
    int c = (int)((h >> 24) % NELEM(bill_voice_class));
    b->call_class = bill_voice_class[c];
    b->duration = (int64_t)(1 + (h2 >> 8) % 3600);
    static const int rate[] = {25, 80, 350, 10, 120}; /* 1/10000 per second */
    sell = b->duration * rate[c] / 10 + 10;
    b->prod_is_num = 1;
    b->prod_num = 40100 + c;
    b->usage_product = 200 + c;
    b->parser = "wholesale-voice-cdr"; b->file_type = "CDR";
  } else {
    b->call_class = "SMS";
    b->one_off = 1 + (int64_t)((h2 >> 8) % 3);
    sell = b->one_off * 400;
    b->prod_is_num = (h >> 24) % 2;
    b->prod_num = 40200;
    b->usage_product = 300;
    b->parser = "wholesale-sms"; b->file_type = "CDR";
  }
  if (zero) sell = 0;
  b->sell = sell;
  b->presell = zero ? 0 : sell + sell * (int64_t)((h2 >> 40) % 3) / 10;
  b->buy = sell * 6 / 10;
  b->ratedbuy = b->buy;
  if (!strings) return;
  if (b->kind == 0) {
    snprintf(b->prod_str, sizeof b->prod_str, "%s-%uGB", b->call_class[4] ? "ROAM-EU" : "DATA-UK", 1u << ((h >> 28) % 5));
    snprintf(b->destination, sizeof b->destination, "%s", bill_dest_data[(h >> 32) % NELEM(bill_dest_data)]);
  } else if (b->kind == 1) {
    snprintf(b->prod_str, sizeof b->prod_str, "%lld", b->prod_num);
    snprintf(b->destination, sizeof b->destination, "%s", bill_dest_voice[(h >> 32) % NELEM(bill_dest_voice)]);
  } else {
    if (b->prod_is_num) snprintf(b->prod_str, sizeof b->prod_str, "%lld", b->prod_num);
    else snprintf(b->prod_str, sizeof b->prod_str, "SMS-BUNDLE-%u", 100u * (unsigned)(1 + (h >> 28) % 5));
    snprintf(b->destination, sizeof b->destination, "%s", (h >> 32) % 3 ? "United Kingdom - SMS" : "International SMS");
  }
  snprintf(b->service_id, sizeof b->service_id, "4477009%02u%03u", (unsigned)(b->customer % 100), (unsigned)((h >> 36) % 40));
  char day[16];
  fmt_day((int64_t)b->loaded * DAY, day);
  snprintf(b->file_name, sizeof b->file_name, "%s_%c%c%c%c%c%c%c%c_%02u.csv", b->file_type, day[0], day[1], day[2],
           day[3], day[5], day[6], day[8], day[9], (unsigned)(1 + (h >> 44) % 4));
  if (b->kind == 1) snprintf(b->info_gen, sizeof b->info_gen, "CLI %s", b->service_id);
  else b->info_gen[0] = 0;
  if (b->kind == 0) snprintf(b->info_el, sizeof b->info_el, "APN internet.sim%u", (unsigned)((h >> 50) % 3));
  else b->info_el[0] = 0;
}

/* text value of a record field, for filters and GroupBy */
static int brec_field_text(const struct brec *b, const char *f, char *out, size_t n) {
  if (!strcmp(f, "id")) snprintf(out, n, "%lld", b->id);
  else if (!strcmp(f, "customerId")) snprintf(out, n, "%d", b->customer);
  else if (!strcmp(f, "siteId")) snprintf(out, n, "%d", b->site);
  else if (!strcmp(f, "billRunId")) snprintf(out, n, "%d", b->billrun);
  else if (!strcmp(f, "productReference")) snprintf(out, n, "%s", b->prod_str);
  else if (!strcmp(f, "serviceId")) snprintf(out, n, "%s", b->service_id);
  else if (!strcmp(f, "destination")) snprintf(out, n, "%s", b->destination);
  else if (!strcmp(f, "chargeGroupId")) snprintf(out, n, "%d", b->charge_group);
  else if (!strcmp(f, "callClass")) snprintf(out, n, "%s", b->call_class);
  else if (!strcmp(f, "timeBand")) snprintf(out, n, "%s", b->time_band);
  else if (!strcmp(f, "usageProductId")) snprintf(out, n, "%d", b->usage_product);
  else if (!strcmp(f, "usageDirection")) snprintf(out, n, "%s", b->direction);
  else if (!strcmp(f, "isdn")) snprintf(out, n, "false");
  else if (!strcmp(f, "supplierAccountId")) snprintf(out, n, "%d", b->supplier);
  else if (!strcmp(f, "fileName")) snprintf(out, n, "%s", b->file_name);
  else if (!strcmp(f, "parserName")) snprintf(out, n, "%s", b->parser);
  else if (!strcmp(f, "fileType")) snprintf(out, n, "%s", b->file_type);
  else if (!strcmp(f, "loadedDate")) fmt_day((int64_t)b->loaded * DAY, out);
  else if (!strcmp(f, "eventDate")) { char d[32]; fmt_date(b->event, d); snprintf(out, n, "%s", d); }
  else return -1;
  return 0;
}

static void brec_json(yajl_gen g, const struct brec *b) {
  char d[32];
  yajl_gen_map_open(g);
  jki(g, "id", b->id);
  jki(g, "customerId", b->customer);
  jki(g, "siteId", b->site);
  jki(g, "billRunId", b->billrun);
  jkdate(g, "eventDate", b->event);
  if (b->prod_is_num) jki(g, "productReference", b->prod_num);
  else jks(g, "productReference", b->prod_str);
  jks(g, "serviceId", b->service_id);
  jks(g, "destination", b->destination);
  jki(g, "chargeGroupId", b->charge_group);
  jks(g, "callClass", b->call_class);
  jki(g, "oneOffQuantity", b->one_off);
  jkfix(g, "dataQuantity", b->data_milli, 3);
  jki(g, "durationQuantity", b->duration);
  jkfix(g, "sellPrice", b->sell, 4);
  jkfix(g, "preDiscountedSellPrice", b->presell, 4);
  jkfix(g, "buyPrice", b->buy, 4);
  jkfix(g, "ratedBuyPrice", b->ratedbuy, 4);
  jkfix(g, "profit", b->sell - b->buy, 4);
  /* percentages with 2 decimals, rounded half up (all values are >= 0) */
  jkfix(g, "profitPercentage", b->buy ? ((b->sell - b->buy) * 20000 + b->buy) / (2 * b->buy) : 0, 2);
  jkfix(g, "marginPercentage", b->sell ? ((b->sell - b->buy) * 20000 + b->sell) / (2 * b->sell) : 0, 2);
  jks(g, "timeBand", b->time_band);
  jki(g, "usageProductId", b->usage_product);
  jks(g, "usageDirection", b->direction);
  jkb(g, "isdn", 0);
  jks(g, "additionalInfoGeneral", b->info_gen);
  jks(g, "additionalInfoElectronic", b->info_el);
  jki(g, "supplierAccountId", b->supplier);
  jks(g, "fileName", b->file_name);
  fmt_day((int64_t)b->loaded * DAY, d);
  jks(g, "loadedDate", d);
  jks(g, "parserName", b->parser);
  jks(g, "fileType", b->file_type);
  yajl_gen_map_close(g);
}

/* ---- filters ---- */
#define MAXVALS 64
struct sfilter { int set, like, nv; char vals[MAXVALS][64]; };
struct dfilter { int set, op; int64_t t; }; /* op: 0 plain, 1 gt, 2 lt */
struct bfilters {
  struct sfilter customer, site, billrun, prod, service, dest;
  struct dfilter from, to;
  int exclude_zero;
  int need_strings;
};
static int parse_sfilter(const char *v, struct sfilter *f, int ids, int allow_like) {
  memset(f, 0, sizeof *f);
  if (!v) return 0;
  f->set = 1;
  if (strncmp(v, "in:", 3) == 0) {
    const char *p = v + 3;
    while (1) {
      const char *e = strchr(p, ',');
      size_t n = e ? (size_t)(e - p) : strlen(p);
      if (f->nv == MAXVALS || n >= sizeof f->vals[0]) return -1;
      memcpy(f->vals[f->nv], p, n);
      f->vals[f->nv][n] = 0;
      f->nv++;
      if (!e) break;
      p = e + 1;
    }
  } else if (strncmp(v, "like:", 5) == 0) {
    if (!allow_like || strlen(v + 5) >= sizeof f->vals[0]) return -1;
    f->like = 1;
    strcpy(f->vals[0], v + 5);
    f->nv = 1;
  } else {
    if (strlen(v) >= sizeof f->vals[0]) return -1;
    strcpy(f->vals[0], v);
    f->nv = 1;
  }
  if (ids) for (int i = 0; i < f->nv; i++) { long long x; if (parse_ll(f->vals[i], &x)) return -1; }
  return 0;
}
static int sfilter_match(const struct sfilter *f, const char *val) {
  if (!f->set) return 1;
  if (f->like) return ci_contains(val, f->vals[0]);
  for (int i = 0; i < f->nv; i++) if (strcmp(val, f->vals[i]) == 0) return 1;
  return 0;
}
static int ifilter_match(const struct sfilter *f, long long v) {
  if (!f->set) return 1;
  for (int i = 0; i < f->nv; i++) if (atoll(f->vals[i]) == v) return 1;
  return 0;
}
static int parse_dfilter(const char *v, struct dfilter *f) {
  memset(f, 0, sizeof *f);
  if (!v) return 0;
  f->set = 1;
  if (strncmp(v, "gt:", 3) == 0) { f->op = 1; v += 3; }
  else if (strncmp(v, "lt:", 3) == 0) { f->op = 2; v += 3; }
  return parse_iso_strict(v, &f->t);
}
static int dfilter_match(const struct dfilter *f, int64_t t, int is_to) {
  if (!f->set) return 1;
  if (f->op == 1) return t > f->t;
  if (f->op == 2) return t < f->t;
  return is_to ? t <= f->t : t >= f->t;
}
/* parse filters from the query; on error fills r and returns -1 */
static int billing_parse_filters(struct rq *q, struct bfilters *F, struct reply *r) {
  memset(F, 0, sizeof *F);
  struct { const char *name; struct sfilter *f; int ids, like; } sf[] = {
      {"customerId", &F->customer, 1, 0}, {"siteId", &F->site, 1, 0}, {"billRunId", &F->billrun, 1, 0},
      {"productReference", &F->prod, 0, 1}, {"serviceId", &F->service, 0, 1}, {"destination", &F->dest, 0, 1}};
  char msg[160];
  for (size_t i = 0; i < sizeof sf / sizeof sf[0]; i++) {
    const char *v = qget(q, sf[i].name, 0);
    if (parse_sfilter(v, sf[i].f, sf[i].ids, sf[i].like)) {
      snprintf(msg, sizeof msg, "Invalid value for filter %s", sf[i].name);
      billing_error(r, 400, msg);
      return -1;
    }
  }
  if (parse_dfilter(qget(q, "eventDateFrom", 0), &F->from)) {
    billing_error(r, 400, "Invalid eventDateFrom: expected yyyy-MM-ddTHH:mm:ssZ, optionally prefixed gt: or lt:");
    return -1;
  }
  if (parse_dfilter(qget(q, "eventDateTo", 0), &F->to)) {
    billing_error(r, 400, "Invalid eventDateTo: expected yyyy-MM-ddTHH:mm:ssZ, optionally prefixed gt: or lt:");
    return -1;
  }
  const char *ez = qget(q, "excludeZeroValueRecords", 0);
  if (ez) {
    if (strcasecmp(ez, "true") == 0) F->exclude_zero = 1;
    else if (strcasecmp(ez, "false") == 0) F->exclude_zero = 0;
    else { billing_error(r, 400, "Invalid excludeZeroValueRecords: expected true or false"); return -1; }
  }
  F->need_strings = F->prod.set || F->service.set || F->dest.set;
  return 0;
}
static int billing_match(const struct bfilters *F, size_t idx, struct brec *b) {
  int64_t ev = g_bevent[idx];
  if (!dfilter_match(&F->from, ev, 0) || !dfilter_match(&F->to, ev, 1)) return 0;
  brec_derive(idx, b, F->need_strings);
  if (!ifilter_match(&F->customer, b->customer) || !ifilter_match(&F->site, b->site) ||
      !ifilter_match(&F->billrun, b->billrun)) return 0;
  if (F->exclude_zero && b->sell == 0 && b->buy == 0) return 0;
  if (F->need_strings && (!sfilter_match(&F->prod, b->prod_str) || !sfilter_match(&F->service, b->service_id) ||
                          !sfilter_match(&F->dest, b->destination))) return 0;
  return 1;
}
static int billing_auth(struct rq *q, struct reply *r) {
  if (opt.login) return 0; /* the handler checked the token from /authenticate */
  const char *a = hget(q, "Authorization");
  int ok = 0;
  if (a && strncasecmp(a, "Bearer ", 7) == 0) {
    pthread_mutex_lock(&g_lock);
    ok = strcmp(a + 7, opt.billing_token) == 0;
    pthread_mutex_unlock(&g_lock);
  }
  if (!ok) { reply_text_json(r, 401, "{\"message\":\"Unauthorized\"}"); return -1; }
  return 0;
}

struct sortkey { int field; int desc; }; /* field 0 = eventDate, 1 = id */
struct sortctx { struct sortkey k[3]; int nk; };
static int bill_cmp(const void *a, const void *b, void *arg) {
  const struct sortctx *s = arg;
  size_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  for (int i = 0; i < s->nk; i++) {
    int c;
    if (s->k[i].field == 0) c = g_bevent[x] < g_bevent[y] ? -1 : g_bevent[x] > g_bevent[y];
    else c = x < y ? -1 : x > y;
    if (c) return s->k[i].desc ? -c : c;
  }
  return x < y ? -1 : x > y;
}

static void billing_handle(struct rq *q, struct reply *r) {
  if (billing_auth(q, r)) return;
  const char *ps = qget(q, "page", 0), *pss = qget(q, "pageSize", 0);
  long long page, psize;
  if (!ps) { billing_error(r, 400, "page is required"); return; }
  if (parse_ll(ps, &page) || page < 1 || page > INT32_MAX) { billing_error(r, 400, "page must be an integer >= 1"); return; }
  if (!pss) { billing_error(r, 400, "pageSize is required"); return; }
  if (parse_ll(pss, &psize) || psize < 1 || psize > 1000) { billing_error(r, 400, "pageSize must be an integer between 1 and 1000"); return; }
  struct bfilters F;
  if (billing_parse_filters(q, &F, r)) return;
  struct sortctx sc = {.nk = 0};
  const char *sort = qget(q, "sort", 0);
  if (sort && *sort) {
    char buf[128];
    if (strlen(sort) >= sizeof buf) { billing_error(r, 400, "Invalid sort"); return; }
    strcpy(buf, sort);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      char *colon = strchr(t, ':');
      int desc = 0;
      if (colon) {
        *colon = 0;
        if (strcasecmp(colon + 1, "desc") == 0) desc = 1;
        else if (strcasecmp(colon + 1, "asc") != 0) { billing_error(r, 400, "Invalid sort direction"); return; }
      }
      int field;
      if (strcmp(t, "eventDate") == 0) field = 0;
      else if (strcmp(t, "id") == 0) field = 1;
      else { char m[128]; snprintf(m, sizeof m, "Unsupported sort field: %.60s", t); billing_error(r, 400, m); return; }
      if (sc.nk == 2) { billing_error(r, 400, "Too many sort fields"); return; }
      sc.k[sc.nk].field = field;
      sc.k[sc.nk].desc = desc;
      sc.nk++;
    }
  }
  yajl_gen g = jnew();
  yajl_gen_array_open(g);
  pthread_mutex_lock(&g_lock);
  struct brec b;
  unsigned long long off = (unsigned long long)(page - 1) * (unsigned long long)psize;
  int simple = sc.nk == 0 || (sc.nk >= 1 && sc.k[0].field == 1 && !sc.k[0].desc);
  if (simple) { /* id ascending: stream without sorting */
    unsigned long long k = 0, out = 0;
    for (size_t i = 0; i < g_nbill && out < (unsigned long long)psize; i++) {
      if (!billing_match(&F, i, &b)) continue;
      if (k++ < off) continue;
      brec_derive(i, &b, 1);
      brec_json(g, &b);
      out++;
    }
  } else {
    uint32_t *idx = malloc((g_nbill ? g_nbill : 1) * sizeof *idx);
    if (!idx) abort();
    size_t n = 0;
    for (size_t i = 0; i < g_nbill; i++) if (billing_match(&F, i, &b)) idx[n++] = (uint32_t)i;
    qsort_r(idx, n, sizeof *idx, bill_cmp, &sc);
    for (unsigned long long k = off; k < n && k < off + (unsigned long long)psize; k++) {
      brec_derive(idx[k], &b, 1);
      brec_json(g, &b);
    }
    free(idx);
  }
  pthread_mutex_unlock(&g_lock);
  yajl_gen_array_close(g);
  reply_gen(r, 200, g);
}

/* ------------------------------------------------------------------ */
/* Jasper model                                                        */

static const char *plan_names[] = {"Monthly-Flexible-Pool", "IoT-Basic-1GB", "IoT-Pro-10GB",
                                   "Fleet-Telematics-500MB", "Smart-Meter-10MB", "Global-Roaming-5GB"};
static const char *zone_names[] = {"Zone A", "Zone B", "Zone C", "Zone D"};
enum { JP_NORMAL, JP_SHARED, JP_DUP };
struct jplan { char name[64]; int version, kind, nzones, iccid20; long ndev; };
static struct jplan *g_jp;
static int g_njp;
static long long g_account_id;
static double g_jfactor = 1.0; /* growth multiplier, current cycle */
static unsigned long long g_jadd; /* bytes added to every device-zone dataUsage */
static int64_t g_cycle_start;  /* current cycle start (UTC midnight) */
static int g_cycle_no;
static int g_jshift; /* jasper-shift: the list moves between pages */
static unsigned long g_jshift_n; /* pages answered shifted */

static void jasper_init(void) {
  g_njp = opt.jasper_plans + 2;
  g_jp = calloc((size_t)g_njp, sizeof *g_jp);
  if (!g_jp) abort();
  for (int k = 0; k < opt.jasper_plans; k++) {
    struct jplan *p = &g_jp[k];
    if (k < NELEM(plan_names)) snprintf(p->name, sizeof p->name, "%s", plan_names[k]);
    else snprintf(p->name, sizeof p->name, "IoT-Plan-%d", k + 1);
    p->kind = JP_NORMAL;
    p->version = 1 + (int)(H(T_JPLAN, (uint64_t)k, 0, 0) % 3);
    p->nzones = 2 + (k % 3);
    p->iccid20 = k % 2;
    p->ndev = opt.jasper_devices >> (k < 20 ? k : 20);
    if (p->ndev < 1 && opt.jasper_devices > 0) p->ndev = 1;
  }
  struct jplan *s = &g_jp[opt.jasper_plans], *d = &g_jp[opt.jasper_plans + 1];
  snprintf(s->name, sizeof s->name, "Shared-Pool");
  s->kind = JP_SHARED; s->version = 1; s->nzones = 2; s->ndev = 10;
  snprintf(d->name, sizeof d->name, "Duplicate-Plan");
  d->kind = JP_DUP; d->version = 2; d->nzones = 2; d->ndev = 10;
  g_account_id = 100000000 + (long long)(H(T_JPLAN, 99, 0, 0) % 900000000);
  time_t t = (time_t)opt.now;
  struct tm tm;
  gmtime_r(&t, &tm);
  int64_t cs;
  ymd_to_time(tm.tm_year + 1900, tm.tm_mon + 1, 1, 0, 0, 0, &cs);
  g_cycle_start = cs;
}
static int jplan_index(const struct jplan *p) { return (int)(p - g_jp); }
static void iccid(const struct jplan *p, long i, char out[24]) {
  char d[24];
  int pk = jplan_index(p);
  int n = snprintf(d, sizeof d, "%s%02d%09ld", p->iccid20 ? "89882090" : "8988209", pk % 100, i % 1000000000L);
  /* Luhn check digit */
  int sum = 0;
  for (int k = n - 1, dbl = 1; k >= 0; k--, dbl = !dbl) {
    int v = d[k] - '0';
    if (dbl) { v *= 2; if (v > 9) v -= 9; }
    sum += v;
  }
  if (n < 0 || n > 22) n = 22;
  memcpy(out, d, (size_t)n);
  out[n] = (char)('0' + (10 - sum % 10) % 10);
  out[n + 1] = 0;
}
/* zones a device has usage in: returns count (1 or 2) */
static int device_zones(const struct jplan *p, long i, int z[2]) {
  int pk = jplan_index(p);
  uint64_t h = H(T_JDEV, (uint64_t)pk, (uint64_t)i, 0);
  z[0] = (int)(h % (uint64_t)p->nzones);
  if ((h >> 16) % 10 == 0) { z[1] = (z[0] + 1 + (int)((h >> 24) % (uint64_t)(p->nzones - 1))) % p->nzones; return 2; }
  return 1;
}
struct dusage { unsigned long long data, smo, smt, vmo, vmt; };
enum { UT_ALL, UT_DATA, UT_SMS, UT_VOICE };
/* usage of device i in zone slot s; hist = 0 for the current cycle, else a past cycle key */
static void device_usage(const struct jplan *p, long i, int slot, uint64_t hist, double factor,
                         unsigned long long add, int ut, struct dusage *u) {
  int pk = jplan_index(p);
  uint64_t h = H(T_JDEV, (uint64_t)pk, (uint64_t)i, 1 + (uint64_t)slot + hist * 4);
  uint64_t h2 = mix64(h);
  double sec = slot ? 0.2 : 1.0; /* secondary zone: less usage */
  unsigned long long data = 0;
  if (h % 10 != 0) { /* 10% idle devices */
    data = (h >> 8) % 300000000ULL;
    if ((h >> 40) % 20 == 0) data += (h >> 12) % 2000000000ULL;
  }
  unsigned long long smo = (h2 % 4 == 0) ? 0 : (h2 >> 4) % 200, smt = (h2 >> 12) % 200;
  int voice = (pk % 3) == 2 || (h2 >> 20) % 5 == 0;
  unsigned long long vmo = voice ? (h2 >> 24) % 3600 : 0, vmt = voice ? (h2 >> 36) % 2400 : 0;
  u->data = (unsigned long long)floor((double)data * sec * factor) + (data ? add : 0);
  u->smo = (unsigned long long)floor((double)smo * sec * factor);
  u->smt = (unsigned long long)floor((double)smt * sec * factor);
  u->vmo = (unsigned long long)floor((double)vmo * sec * factor);
  u->vmt = (unsigned long long)floor((double)vmt * sec * factor);
  if (ut == UT_DATA) u->smo = u->smt = u->vmo = u->vmt = 0;
  else if (ut == UT_SMS) u->data = u->vmo = u->vmt = 0;
  else if (ut == UT_VOICE) u->data = u->smo = u->smt = 0;
}

struct jreq { struct jplan *plan; int version, ut; long long page, psize; uint64_t hist; double factor; unsigned long long add; int64_t cycle; };
/* validate a usages request (also used by /_sim/jasper/totals) */
static int jasper_parse(struct rq *q, struct reply *r, struct jreq *J, int paging) {
  memset(J, 0, sizeof *J);
  const char *name = qget(q, "ratePlanName", 0);
  if (!name) name = qget(q, "ratePlan", 0);
  if (!name || !*name) { jasper_error(r, 404, "10000013", "Invalid ratePlan."); return -1; }
  for (int k = 0; k < g_njp; k++) if (strcmp(g_jp[k].name, name) == 0) J->plan = &g_jp[k];
  if (!J->plan) { jasper_error(r, 404, "10000013", "Invalid ratePlan."); return -1; }
  if (J->plan->kind == JP_SHARED) { jasper_error(r, 400, "20000058", "Requested resource not available for Shared Rate plan."); return -1; }
  const char *v = qget(q, "ratePlanVersion", 0);
  J->version = J->plan->version;
  if (v) {
    long long x;
    if (parse_ll(v, &x) || x < 1 || x > J->plan->version) { jasper_error(r, 400, "10000441", "Invalid RatePlan Version."); return -1; }
    J->version = (int)x;
  } else if (J->plan->kind == JP_DUP) {
    jasper_error(r, 400, "10000442", "More than one RatePlan having the same name.");
    return -1;
  }
  J->ut = UT_ALL;
  if ((v = qget(q, "usageType", 0))) {
    if (strcasecmp(v, "DATA") == 0) J->ut = UT_DATA;
    else if (strcasecmp(v, "SMS") == 0) J->ut = UT_SMS;
    else if (strcasecmp(v, "VOICE") == 0) J->ut = UT_VOICE;
    else { jasper_error(r, 400, "30000003", "Invalid Usage Type."); return -1; }
  }
  pthread_mutex_lock(&g_lock);
  J->factor = g_jfactor;
  J->add = g_jadd;
  int64_t cs = g_cycle_start;
  pthread_mutex_unlock(&g_lock);
  J->cycle = cs;
  if ((v = qget(q, "cycleStartDate", 0))) {
    int64_t t;
    if (parse_day_strict(v, &t)) { jasper_error(r, 400, "10000012", "Invalid date format."); return -1; }
    if (t != cs) {
      time_t tt = (time_t)t;
      struct tm tm;
      gmtime_r(&tt, &tm);
      if (t > cs || tm.tm_mday != 1 || t < cs - 400 * DAY) {
        jasper_error(r, 400, "10000443", "Invalid BillingCycleStart.");
        return -1;
      }
      J->hist = (uint64_t)(t / DAY);
      J->cycle = t;
      J->factor = 0.8 + (double)(H(T_JCYC, J->hist, 0, 0) % 40) / 100.0;
      J->add = 0;
    }
  }
  if (J->version != J->plan->version && !J->hist) J->hist = 1000000 + (uint64_t)J->version;
  if (!paging) return 0;
  J->page = 1; J->psize = 50;
  if ((v = qget(q, "pageSize", 0)) && (parse_ll(v, &J->psize) || J->psize < 1 || J->psize > 50)) {
    jasper_error(r, 400, "10000006", "Invalid pageSize.");
    return -1;
  }
  long ndev = J->plan->kind == JP_DUP ? (J->version == 1 ? 7 : 10) : J->plan->ndev;
  long long last = ndev ? (ndev + J->psize - 1) / J->psize : 1;
  if ((v = qget(q, "pageNumber", 0)) && (parse_ll(v, &J->page) || J->page < 1 || J->page > last)) {
    jasper_error(r, 400, "10000007", "Invalid pageNumber.");
    return -1;
  }
  return 0;
}
static long jplan_ndev(const struct jreq *J) {
  return J->plan->kind == JP_DUP ? (J->version == 1 ? 7 : 10) : J->plan->ndev;
}
static int jasper_auth(struct rq *q, struct reply *r) {
  const char *a = hget(q, "Authorization");
  int ok = 0;
  if (a && strncasecmp(a, "Basic ", 6) == 0) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char dec[512];
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (const char *p = a + 6; *p && *p != '='; p++) {
      const char *x = strchr(b64, *p);
      if (!x || !*p) { n = 0; break; }
      acc = (acc << 6) | (unsigned)(x - b64);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        if (n + 1 >= sizeof dec) { n = 0; break; }
        dec[n++] = (char)((acc >> bits) & 0xff);
      }
    }
    dec[n] = 0;
    char *colon = memchr(dec, ':', n);
    if (colon) {
      *colon = 0;
      pthread_mutex_lock(&g_lock);
      ok = strcmp(dec, opt.jasper_user) == 0 && strlen(colon + 1) == n - (size_t)(colon + 1 - dec) &&
           strcmp(colon + 1, opt.jasper_key) == 0;
      pthread_mutex_unlock(&g_lock);
    }
  }
  if (!ok) { jasper_error(r, 401, "10000001", "Invalid credentials."); return -1; }
  return 0;
}
static void jasper_handle(struct rq *q, struct reply *r) {
  const char *u = q->url + 9; /* after /rws/api/ */
  if (!(u[0] == 'v' && ends_with(u, "/usages"))) { jasper_error(r, 404, "30000001", "Unknown resource."); return; }
  if (strcmp(u, "v1/usages") != 0) { jasper_error(r, 400, "10000024", "Invalid apiVersion."); return; }
  if (jasper_auth(q, r)) return;
  struct jreq J;
  if (jasper_parse(q, r, &J, 1)) return;
  long ndev = jplan_ndev(&J);
  long first = (long)((J.page - 1) * J.psize), end = first + (long)J.psize;
  /* jasper-shift: between pages a device was removed before the offset
   * (the page starts one later: a device is skipped) or inserted (one
   * earlier: a device repeats), alternately. */
  int lastp = end >= ndev; /* the page count does not move */
  pthread_mutex_lock(&g_lock);
  long shift = g_jshift && J.page > 1 ? ((g_jshift_n++ % 2) ? -1 : 1) : 0;
  pthread_mutex_unlock(&g_lock);
  first += shift;
  end += shift;
  if (first < 0)
    first = 0;
  if (end > ndev)
    end = ndev;
  if (first > end)
    first = end;
  yajl_gen g = jnew();
  yajl_gen_map_open(g);
  jki(g, "accountId", g_account_id);
  jks(g, "accountName", "Acme Corp");
  jks(g, "ratePlanName", J.plan->name);
  jki(g, "ratePlanVersion", J.version);
  js(g, "zones");
  yajl_gen_array_open(g);
  for (int z = 0; z < J.plan->nzones; z++) {
    int opened = 0;
    for (long i = first; i < end; i++) {
      int zs[2], nz = device_zones(J.plan, i, zs), slot = -1;
      for (int k = 0; k < nz; k++) if (zs[k] == z) slot = k;
      if (slot < 0) continue;
      if (!opened) {
        yajl_gen_map_open(g);
        jks(g, "zone", zone_names[z]);
        js(g, "devices");
        yajl_gen_array_open(g);
        opened = 1;
      }
      struct dusage du;
      device_usage(J.plan, i, slot, J.hist, J.factor, J.add, J.ut, &du);
      char id[24];
      iccid(J.plan, i, id);
      yajl_gen_map_open(g);
      jks(g, "deviceId", id);
      js(g, "usage");
      yajl_gen_map_open(g);
      jki(g, "dataUsage", (long long)du.data);
      jki(g, "smsMOUsage", (long long)du.smo);
      jki(g, "smsMTUsage", (long long)du.smt);
      jki(g, "voiceMOUsage", (long long)du.vmo);
      jki(g, "voiceMTUsage", (long long)du.vmt);
      yajl_gen_map_close(g);
      yajl_gen_map_close(g);
    }
    if (opened) { yajl_gen_array_close(g); yajl_gen_map_close(g); }
  }
  yajl_gen_array_close(g);
  jki(g, "pageNumber", J.page);
  jkb(g, "lastPage", lastp);
  yajl_gen_map_close(g);
  reply_gen(r, 200, g);
  fmt_day(J.cycle, r->cycle);
}

/* ------------------------------------------------------------------ */
/* faults, rate limit, request accounting                              */

enum { F_500, F_503, F_429, F_401, F_MALFORMED, F_HTML, F_LATIN1, F_SLOW, F_DEEP, F_HUGE, F_WRONGTYPE, F_EMPTY,
       F_DROP, F_CUT, F_NMODES };
static const char *fault_names[F_NMODES] = {"http500", "http503", "http429", "http401", "malformed", "html",
                                            "latin1", "slow", "deep", "huge", "wrongtype", "empty",
                                            "drop", "cut"};
struct fault { char prefix[256]; int mode; long remaining; /* -1 = until cleared */ unsigned status; long delay_ms; long hits;
                int retry_after; /* seconds; -1 = the mode's own (2 for http503, 1 for http429, else none) */ };
#define MAX_FAULTS 64
static struct fault g_faults[MAX_FAULTS];
static int g_nfaults;

static int g_rate; /* 0 = off */
#define RATE_RING 10000
static double g_rate_ring[RATE_RING];
static long g_rate_n; /* admitted requests so far */
static long g_rate_rejected;

/* endpoint classes for /_sim/requests */
enum { E_CCC_SU, E_CCC_UU, E_CCC_ST, E_BILL, E_JASPER, E_OTHER, E_N };
static const char *endpoint_names[E_N] = {"ccc.serviceusage", "ccc.userusage", "ccc.status", "billing", "jasper", "other"};
struct ecount { long count; int ncodes; unsigned codes[24]; long per_code[24]; };
static struct ecount g_ep[E_N];
#define PATH_SLOTS 8192
static struct { char *path; long n; } g_paths[PATH_SLOTS];
static long g_paths_used, g_paths_overflow, g_total, g_inflight, g_maxinflight;

static int endpoint_of(const char *url) {
  if (strncmp(url, "/api/services", 13) == 0) {
    if (ends_with(url, "/serviceusage")) return E_CCC_SU;
    if (ends_with(url, "/usage")) return E_CCC_UU;
    if (ends_with(url, "/status")) return E_CCC_ST;
    return E_OTHER;
  }
  if (ends_with(url, "/customer-usage-data")) return E_BILL;
  if (strncmp(url, "/rws/", 5) == 0) return E_JASPER;
  return E_OTHER;
}
static uint64_t fnv(const char *s) { uint64_t h = 1469598103934665603ULL; for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL; return h; }
/* needs g_lock */
static void count_path(const char *path) {
  uint64_t h = fnv(path);
  for (int k = 0; k < PATH_SLOTS; k++) {
    size_t s = (size_t)((h + (uint64_t)k) % PATH_SLOTS);
    if (!g_paths[s].path) {
      if (g_paths_used >= PATH_SLOTS / 2 || strlen(path) > 512) { g_paths_overflow++; return; }
      g_paths[s].path = xstrdup(path);
      g_paths[s].n = 1;
      g_paths_used++;
      return;
    }
    if (strcmp(g_paths[s].path, path) == 0) { g_paths[s].n++; return; }
  }
  g_paths_overflow++;
}
static void count_status(int ep, unsigned status) {
  struct ecount *e = &g_ep[ep];
  for (int i = 0; i < e->ncodes; i++) if (e->codes[i] == status) { e->per_code[i]++; return; }
  if (e->ncodes < 24) { e->codes[e->ncodes] = status; e->per_code[e->ncodes++] = 1; }
}

/* ------------------------------------------------------------------ */
/* fault bodies                                                        */

#define HUGE_SIZE (64ULL * 1024 * 1024)
static ssize_t huge_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)cls;
  if (g_stopping) return MHD_CONTENT_READER_END_WITH_ERROR;
  if (pos >= HUGE_SIZE) return MHD_CONTENT_READER_END_OF_STREAM;
  static const char head[] = "{\"pad\":\"", tail[] = "\"}";
  size_t n = 0;
  while (n < max && pos < HUGE_SIZE) {
    char c;
    if (pos < sizeof head - 1) c = head[pos];
    else if (pos >= HUGE_SIZE - (sizeof tail - 1)) c = tail[pos - (HUGE_SIZE - (sizeof tail - 1))];
    else c = 'x';
    buf[n++] = c;
    pos++;
  }
  return (ssize_t)n;
}

/* cut: the body's first half, then an error, which makes MHD close the
 * connection short of the Content-Length it announced */
struct cut { char *body; size_t len; };
static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  struct cut *c = cls;
  size_t half = c->len / 2;
  if (g_stopping || pos >= half) return MHD_CONTENT_READER_END_WITH_ERROR;
  size_t n = half - (size_t)pos < max ? half - (size_t)pos : max;
  memcpy(buf, c->body + pos, n);
  return (ssize_t)n;
}
static void cut_free(void *cls) {
  struct cut *c = cls;
  free(c->body);
  free(c);
}

/* wrongtype: re-emit the JSON with every number turned into a string or an object */
struct wt { yajl_gen g; unsigned n; };
static int wt_null(void *c) { return yajl_gen_null(((struct wt *)c)->g) == yajl_gen_status_ok; }
static int wt_bool(void *c, int b) { return yajl_gen_bool(((struct wt *)c)->g, b) == yajl_gen_status_ok; }
static int wt_number(void *c, const char *s, size_t l) {
  struct wt *w = c;
  if (w->n++ % 2 == 0) return yajl_gen_string(w->g, (const unsigned char *)s, l) == yajl_gen_status_ok;
  yajl_gen_map_open(w->g);
  js(w->g, "value");
  yajl_gen_number(w->g, s, l);
  return yajl_gen_map_close(w->g) == yajl_gen_status_ok;
}
static int wt_string(void *c, const unsigned char *s, size_t l) { return yajl_gen_string(((struct wt *)c)->g, s, l) == yajl_gen_status_ok; }
static int wt_smap(void *c) { return yajl_gen_map_open(((struct wt *)c)->g) == yajl_gen_status_ok; }
static int wt_emap(void *c) { return yajl_gen_map_close(((struct wt *)c)->g) == yajl_gen_status_ok; }
static int wt_sarr(void *c) { return yajl_gen_array_open(((struct wt *)c)->g) == yajl_gen_status_ok; }
static int wt_earr(void *c) { return yajl_gen_array_close(((struct wt *)c)->g) == yajl_gen_status_ok; }
static void apply_wrongtype(struct reply *r) {
  static const yajl_callbacks cb = {wt_null, wt_bool, NULL, NULL, wt_number, wt_string,
                                    wt_smap, wt_string, wt_emap, wt_sarr, wt_earr};
  struct wt w = {jnew(), 0};
  yajl_handle h = yajl_alloc(&cb, NULL, &w);
  if (!h) abort();
  if (yajl_parse(h, (const unsigned char *)r->body, r->len) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok) {
    unsigned st = r->status;
    const char *ct = r->ctype;
    reply_gen(r, st, w.g);
    r->ctype = ct;
  } else yajl_gen_free(w.g);
  yajl_free(h);
}

static void fault_reply(int mode, const char *url, unsigned status_override, struct reply *r) {
  switch (mode) {
  case F_500: vendor_error(r, url, 500, "InternalServerError", "Simulated internal server error"); break;
  case F_503: vendor_error(r, url, 503, "ServiceUnavailable", "Service temporarily unavailable"); r->retry_after = 2; break;
  case F_429: vendor_error(r, url, 429, "TooManyRequests", "Too many requests"); r->retry_after = 1; break;
  case F_401:
    if (vendor_of(url) == V_BILLING) reply_text_json(r, 401, "{\"message\":\"Unauthorized\"}");
    else vendor_error(r, url, 401, "Unauthorized", "Invalid credentials");
    break;
  case F_HTML: {
    static const char html[] = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
                               "<body><h1>Bad Gateway</h1><p>The proxy server received an invalid response "
                               "from an upstream server.</p><hr><address>nginx</address></body></html>\n";
    reply_set(r, 502, "text/html; charset=utf-8", html, sizeof html - 1);
    break;
  }
  case F_LATIN1: {
    const char *b;
    switch (vendor_of(url)) {
    case V_CCC: b = "{\"responseStatus\":{\"errorCode\":\"Erreur\",\"message\":\"Requ\xeate refus\xe9" "e\",\"stackTrace\":\"" "SIM-SECRET-STACKTRACE" "\",\"errors\":[]}}"; break;
    case V_JASPER: b = "{\"errorMessage\":\"Erreur inconnue du serveur: caract\xe8re \xe9\",\"errorCode\":\"30000001\"}"; break;
    default: b = "{\"message\":\"Requ\xeate refus\xe9" "e\"}"; break;
    }
    reply_set(r, 400, "application/json; charset=ISO-8859-1", b, strlen(b));
    break;
  }
  case F_DEEP: {
    const size_t levels = 100000;
    size_t len = 8 + 2 * levels + 1;
    char *b = xrealloc(NULL, len + 1);
    memcpy(b, "{\"data\":", 8);
    memset(b + 8, '[', levels);
    memset(b + 8 + levels, ']', levels);
    b[len - 1] = '}';
    b[len] = 0;
    free(r->body);
    r->body = b; r->len = len; r->status = 200; r->ctype = "application/json; charset=utf-8";
    break;
  }
  case F_HUGE: r->huge = 1; r->status = 200; r->ctype = "application/json; charset=utf-8"; break;
  case F_EMPTY: reply_set(r, 200, "application/json; charset=utf-8", "", 0); break;
  default: break;
  }
  if (status_override) r->status = status_override;
}

/* ------------------------------------------------------------------ */
/* control endpoints                                                   */

static int is_post(struct rq *q) { return strcmp(q->method, "POST") == 0 || strcmp(q->method, "PUT") == 0; }
static void ok_reply(struct reply *r, yajl_gen g) { reply_gen(r, 200, g); }
static void bad(struct reply *r, unsigned st, const char *msg) { billing_error(r, st, msg); }

/* ------------------------------------------------------------------ */
/* quirks mode: vendor answers as real deployments send them           */
/*
 * With --quirks (or POST /_sim/quirks?on=1) every vendor answer, errors
 * included, is re-emitted with the deviations real servers show from the
 * spec pages, carrying exactly the same figures: the /_sim totals do not
 * change. Which deviations an answer gets depends on a per-answer sequence
 * number (and, inside an answer, on the record or device), so one scrape
 * sees several forms of the same field, and the same record or change is
 * sent in different forms by successive scrapes. A request with the header
 * X-Sim-Plain gets the plain answer (the tests' oracles).
 *   Jasper  key casing per page and per device (smsMOUsage, smsmousage,
 *           SMSMOUSAGE, SmsMOUsage), null for a 0 usage, usage figures,
 *           accountId, ratePlanVersion, pageNumber as strings, errorCode
 *           as a number, a cycleStartDate (yyyy-MM-ddZ or a timestamp).
 *   CCC     PascalCase keys (whole answer, or nested objects only; the
 *           ResponseStatus envelope too), GUIDs with or without dashes in
 *           either case, dates as \/Date(ms)\/, \/Date(ms-0000)\/, ISO with
 *           7 fraction digits or with an offset, enums as integers.
 *   Billing ids (id, customerId, siteId, billRunId) and numeric
 *           productReference as strings, zero amounts as 0E-4 or 0.0,
 *           eventDate with fractional seconds and offsets.
 */
enum { Q_KEYCASE, Q_NULL, Q_NUM_AS_STRING, Q_STRING_AS_NUM, Q_GUID, Q_DATE_DOTNET, Q_DATE_FRACTION,
       Q_DATE_OFFSET, Q_ENUM_AS_INT, Q_CYCLE_START, Q_ZERO_FORM, Q_N };
static const char *quirk_names[Q_N] = {"keyCase", "nullUsage", "numberAsString", "stringAsNumber",
                                       "guidForm", "dotnetDate", "dateFraction", "dateOffset",
                                       "enumAsInteger", "cycleStartDate", "zeroForm"};
static unsigned long g_quirk_answers, g_quirk_count[Q_N];

enum { KC_ASIS, KC_PASCAL, KC_LOWER, KC_UPPER };
struct qframe {
  int is_map, casing;
  char under[64]; /* lower-cased key this container is the value of */
  uint64_t var;   /* variation bits of this record / device / zone */
  unsigned nchild;
};
struct qx {
  yajl_gen g;
  int vendor;
  uint64_t var0; /* variation bits of the answer */
  int depth, failed;
  struct qframe f[48];
  char key[64]; /* lower-cased current key */
  unsigned nguid;
  const char *cycle;
  unsigned long n[Q_N];
};

static void lower_copy(char *dst, size_t n, const unsigned char *s, size_t len) {
  size_t i = 0;
  for (; i + 1 < n && i < len; i++) dst[i] = (char)tolower(s[i]);
  dst[i] = 0;
}
static const struct qframe *qx_top(const struct qx *x) { return x->depth ? &x->f[x->depth - 1] : NULL; }
/* the key a scalar is the value of (a map member or an array element) */
static const char *qx_ctx_key(const struct qx *x) {
  const struct qframe *t = qx_top(x);
  return t && !t->is_map ? t->under : x->key;
}
static int is_all_digits(const char *s, size_t n) { return n > 0 && all_digits(s, n); }
static int is_zero_number(const char *s, size_t n) {
  int any = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '0') any = 1;
    else if (s[i] != '.') return 0;
  }
  return any;
}

static void qx_key_out(struct qx *x, const char *k, size_t n, int casing) {
  char b[128];
  if (n >= sizeof b) n = sizeof b - 1;
  memcpy(b, k, n);
  b[n] = 0;
  for (size_t i = 0; i < n; i++) {
    if (casing == KC_LOWER) b[i] = (char)tolower((unsigned char)b[i]);
    else if (casing == KC_UPPER) b[i] = (char)toupper((unsigned char)b[i]);
  }
  if (casing == KC_PASCAL && n) b[0] = (char)toupper((unsigned char)b[0]);
  if (memcmp(b, k, n)) x->n[Q_KEYCASE]++;
  yajl_gen_string(x->g, (const unsigned char *)b, n);
}

/* CCC dates: yyyy-MM-ddTHH:mm:ssZ into one of the forms ServiceStack sends */
static int qx_ccc_date(struct qx *x, const char *s, size_t n) {
  int64_t t;
  char in[32], out[64];
  if (n != 20 || s[19] != 'Z') return 0;
  memcpy(in, s, n);
  in[n] = 0;
  int never = strncmp(in, "0001-01-01", 10) == 0;
  if (!never && parse_iso_strict(in, &t)) return 0;
  int form = (int)((x->var0 >> 8) % 5);
  switch (form) {
  case 0: return 0;
  case 1: /* .NET ticks, UTC */
    snprintf(out, sizeof out, "%.19s.0000000Z", in);
    x->n[Q_DATE_FRACTION]++;
    break;
  case 2: case 3: /* \/Date(ms)\/ (the solidus is escaped: see qx_apply) */
    if (never) snprintf(out, sizeof out, "/Date(-62135596800000%s)/", form == 3 ? "-0000" : "");
    else snprintf(out, sizeof out, "/Date(%lld000%s)/", (long long)t, form == 3 ? "-0000" : "");
    x->n[Q_DATE_DOTNET]++;
    break;
  default: /* the server's local time with its offset; "never" without a zone */
    if (never) snprintf(out, sizeof out, "0001-01-01T00:00:00.0000000");
    else {
      char loc[32];
      fmt_date(t - 5 * 3600, loc);
      snprintf(out, sizeof out, "%.19s.000-05:00", loc);
    }
    x->n[Q_DATE_OFFSET]++;
    break;
  }
  js(x->g, out);
  return 1;
}

/* CCC enums as integers (JsConfig.TreatEnumAsInteger) */
static int qx_ccc_enum(struct qx *x, const char *k, const char *s, size_t n) {
  static const char *const users[] = {"Active", "Disabled"}, *const groups[] = {"Professional", "Guest"},
                           *const periods[] = {"Daily", "Monthly"};
  const char *const *names = NULL;
  int count = 0;
  char v[32];
  if (!((x->var0 >> 11) & 1) || n >= sizeof v) return 0;
  memcpy(v, s, n);
  v[n] = 0;
  if (!strcmp(k, "status")) {
    if (!strcmp(v, "0") || !strcmp(v, "1")) { jnum(x->g, v); x->n[Q_ENUM_AS_INT]++; return 1; }
    int st = ccc_status_from_name(v);
    if (st >= 0) { yajl_gen_integer(x->g, st); x->n[Q_ENUM_AS_INT]++; return 1; }
    names = users; count = 2;
  } else if (!strcmp(k, "grouptype")) { names = groups; count = 2; }
  else if (!strcmp(k, "periodtype")) { names = periods; count = 2; }
  for (int i = 0; i < count; i++)
    if (!strcmp(v, names[i])) { yajl_gen_integer(x->g, i); x->n[Q_ENUM_AS_INT]++; return 1; }
  return 0;
}

/* CCC GUIDs: 32 lower-case hex digits into one of four forms */
static int qx_ccc_guid(struct qx *x, const char *k, const char *s, size_t n) {
  size_t kl = strlen(k);
  if (n != 32 || kl < 4 || strcmp(k + kl - 4, "guid")) return 0;
  for (size_t i = 0; i < n; i++) if (!isxdigit((unsigned char)s[i])) return 0;
  int form = (int)(mix64(x->var0 ^ ++x->nguid) % 4);
  if (!form) return 0;
  char out[40];
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if ((form & 1) && (i == 8 || i == 12 || i == 16 || i == 20)) out[o++] = '-';
    out[o++] = form >= 2 ? (char)toupper((unsigned char)s[i]) : s[i];
  }
  out[o] = 0;
  x->n[Q_GUID]++;
  js(x->g, out);
  return 1;
}

/* Billing eventDate: fractional seconds (the same second) and offsets */
static int qx_billing_date(struct qx *x, uint64_t var, const char *s, size_t n) {
  int64_t t;
  char in[32], out[64];
  if (n != 20) return 0;
  memcpy(in, s, n);
  in[n] = 0;
  if (parse_iso_strict(in, &t)) return 0;
  unsigned ms = (unsigned)((var >> 20) % 1000);
  switch ((var >> 16) % 4) {
  case 0: return 0;
  case 1: snprintf(out, sizeof out, "%.19s.%03uZ", in, ms); x->n[Q_DATE_FRACTION]++; break;
  case 2: snprintf(out, sizeof out, "%.19s.%03u0000+00:00", in, ms); x->n[Q_DATE_FRACTION]++; break;
  default: {
    char loc[32];
    fmt_date(t + 3600, loc);
    snprintf(out, sizeof out, "%.19s.%03u+01:00", loc, ms);
    x->n[Q_DATE_OFFSET]++;
  }
  }
  js(x->g, out);
  return 1;
}

static int qx_scalar(struct qx *x, const char *s, size_t n, int is_str) {
  const struct qframe *t = qx_top(x);
  const char *k = qx_ctx_key(x);
  uint64_t var = t ? t->var : x->var0;
  switch (x->vendor) {
  case V_JASPER:
    if (t && t->is_map && !strcmp(t->under, "usage") && !is_str) {
      if (n == 1 && s[0] == '0' && ((var >> 7) & 1)) { x->n[Q_NULL]++; return yajl_gen_null(x->g) == yajl_gen_status_ok; }
      if ((var >> 9) & 1) { x->n[Q_NUM_AS_STRING]++; return yajl_gen_string(x->g, (const unsigned char *)s, n) == yajl_gen_status_ok; }
    }
    if (x->depth == 1 && !is_str &&
        (!strcmp(k, "accountid") || !strcmp(k, "rateplanversion") || (!strcmp(k, "pagenumber") && ((x->var0 >> 4) & 1)))) {
      x->n[Q_NUM_AS_STRING]++;
      return yajl_gen_string(x->g, (const unsigned char *)s, n) == yajl_gen_status_ok;
    }
    if (x->depth == 1 && is_str && !strcmp(k, "errorcode") && is_all_digits(s, n) && ((x->var0 >> 1) & 1)) {
      x->n[Q_STRING_AS_NUM]++;
      return yajl_gen_number(x->g, s, n) == yajl_gen_status_ok;
    }
    break;
  case V_BILLING:
    if (x->depth != 2) break;
    if (!is_str && (var >> 5) & 1 &&
        (!strcmp(k, "id") || !strcmp(k, "customerid") || !strcmp(k, "siteid") || !strcmp(k, "billrunid") ||
         !strcmp(k, "productreference"))) {
      x->n[Q_NUM_AS_STRING]++;
      return yajl_gen_string(x->g, (const unsigned char *)s, n) == yajl_gen_status_ok;
    }
    if (!is_str && is_zero_number(s, n) && ((var >> 6) & 1)) {
      size_t kl = strlen(k);
      const char *z = kl > 5 && !strcmp(k + kl - 5, "price") ? "0E-4" : "0.0";
      x->n[Q_ZERO_FORM]++;
      return yajl_gen_number(x->g, z, strlen(z)) == yajl_gen_status_ok;
    }
    if (is_str && !strcmp(k, "eventdate") && qx_billing_date(x, var, s, n)) return 1;
    break;
  case V_CCC:
    if (is_str && (qx_ccc_guid(x, k, s, n) || qx_ccc_date(x, s, n) || qx_ccc_enum(x, k, s, n))) return 1;
    break;
  }
  return (is_str ? yajl_gen_string(x->g, (const unsigned char *)s, n) : yajl_gen_number(x->g, s, n)) ==
         yajl_gen_status_ok;
}

static int qx_null(void *c) { return yajl_gen_null(((struct qx *)c)->g) == yajl_gen_status_ok; }
static int qx_bool(void *c, int b) { return yajl_gen_bool(((struct qx *)c)->g, b) == yajl_gen_status_ok; }
static int qx_number(void *c, const char *s, size_t l) { return qx_scalar(c, s, l, 0); }
static int qx_string(void *c, const unsigned char *s, size_t l) { return qx_scalar(c, (const char *)s, l, 1); }
static int qx_key(void *c, const unsigned char *s, size_t l) {
  struct qx *x = c;
  lower_copy(x->key, sizeof x->key, s, l);
  qx_key_out(x, (const char *)s, l, x->f[x->depth - 1].casing);
  return 1;
}
static int qx_open(struct qx *x, int is_map) {
  if (x->depth >= (int)(sizeof x->f / sizeof x->f[0])) return 0;
  struct qframe *p = x->depth ? &x->f[x->depth - 1] : NULL, *f = &x->f[x->depth];
  memset(f, 0, sizeof *f);
  f->is_map = is_map;
  const char *under = !p ? "" : p->is_map ? x->key : p->under;
  size_t ul = strnlen(under, sizeof f->under - 1);
  memmove(f->under, under, ul);
  f->under[ul] = 0;
  f->var = !p ? x->var0 : p->is_map ? p->var : mix64(p->var ^ (0x9e3779b97f4a7c15ULL * ++p->nchild));
  if (is_map) switch (x->vendor) {
    case V_CCC: { /* camelCase, PascalCase, or camelCase with nested PascalCase */
      int mode = (int)(x->var0 % 3);
      f->casing = mode == 1 || (mode == 2 && x->depth > 0) ? KC_PASCAL : KC_ASIS;
      break;
    }
    case V_JASPER: {
      static const int root[3] = {KC_ASIS, KC_LOWER, KC_PASCAL}, dev[4] = {KC_ASIS, KC_LOWER, KC_UPPER, KC_PASCAL};
      if (!p) f->casing = root[x->var0 % 3];
      else if (!strcmp(f->under, "devices")) f->casing = dev[(f->var >> 3) % 4];
      else if (!strcmp(f->under, "zones")) f->casing = (f->var >> 3) & 1 ? KC_PASCAL : KC_ASIS;
      else f->casing = p->casing; /* usage: as its device */
      break;
    }
    default: f->casing = KC_ASIS; break;
    }
  x->depth++;
  return (is_map ? yajl_gen_map_open(x->g) : yajl_gen_array_open(x->g)) == yajl_gen_status_ok;
}
static int qx_smap(void *c) { return qx_open(c, 1); }
static int qx_sarr(void *c) { return qx_open(c, 0); }
static int qx_emap(void *c) {
  struct qx *x = c;
  if (x->depth == 1 && x->vendor == V_JASPER && x->cycle && x->cycle[0]) { /* a usages page */
    char v[48];
    switch ((x->var0 >> 12) % 3) {
    case 0: snprintf(v, sizeof v, "%sZ", x->cycle); break;
    case 1: snprintf(v, sizeof v, "%sT00:00:00.000Z", x->cycle); break;
    default: snprintf(v, sizeof v, "%sT00:00:00.0000000+00:00", x->cycle); break;
    }
    qx_key_out(x, "cycleStartDate", 14, x->f[0].casing);
    js(x->g, v);
    x->n[Q_CYCLE_START]++;
  }
  x->depth--;
  return yajl_gen_map_close(x->g) == yajl_gen_status_ok;
}
static int qx_earr(void *c) {
  ((struct qx *)c)->depth--;
  return yajl_gen_array_close(((struct qx *)c)->g) == yajl_gen_status_ok;
}

/* apply_quirks re-emits a vendor JSON answer in quirks mode; a body that is
 * not JSON (HTML, Latin-1, truncated, too deep) is left as it is. */
static void apply_quirks(struct reply *r, const char *url, struct MHD_Connection *con) {
  static const yajl_callbacks cb = {qx_null, qx_bool, NULL, NULL, qx_number, qx_string,
                                    qx_smap, qx_key, qx_emap, qx_sarr, qx_earr};
  int vendor = vendor_of(url);
  if (r->huge || !r->body || !r->len || vendor == V_OTHER) return;
  /* the tests' oracles read the plain answer */
  if (MHD_lookup_connection_value(con, MHD_HEADER_KIND, "X-Sim-Plain")) return;
  pthread_mutex_lock(&g_lock);
  int on = opt.quirks;
  uint64_t seq = on ? ++g_quirk_answers : 0;
  pthread_mutex_unlock(&g_lock);
  if (!on) return;
  struct qx *x = calloc(1, sizeof *x);
  if (!x) abort();
  x->g = jnew();
  x->vendor = vendor;
  x->var0 = mix64(seq * 0x100000001b3ULL ^ opt.seed);
  x->cycle = r->cycle;
  /* \/Date(...)\/: the solidus escaped, as ServiceStack and ASP.NET write it */
  if (vendor == V_CCC && ((x->var0 >> 8) % 5 == 2 || (x->var0 >> 8) % 5 == 3))
    yajl_gen_config(x->g, yajl_gen_escape_solidus, 1);
  yajl_handle h = yajl_alloc(&cb, NULL, x);
  if (!h) abort();
  if (yajl_parse(h, (const unsigned char *)r->body, r->len) == yajl_status_ok &&
      yajl_complete_parse(h) == yajl_status_ok) {
    unsigned st = r->status;
    const char *ct = r->ctype;
    reply_gen(r, st, x->g);
    r->ctype = ct;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < Q_N; i++) g_quirk_count[i] += x->n[i];
    pthread_mutex_unlock(&g_lock);
  } else yajl_gen_free(x->g);
  yajl_free(h);
  free(x);
}

static void sim_quirks(struct rq *q, struct reply *r, int post) {
  if (post) {
    const char *on = qget(q, "on", 1);
    if (!on || (strcmp(on, "0") && strcmp(on, "1"))) { bad(r, 400, "on=0 or on=1 required"); return; }
    pthread_mutex_lock(&g_lock);
    opt.quirks = on[0] == '1';
    pthread_mutex_unlock(&g_lock);
  }
  yajl_gen g = jnew();
  yajl_gen_map_open(g);
  pthread_mutex_lock(&g_lock);
  jkb(g, "quirks", opt.quirks);
  jki(g, "answers", (long long)g_quirk_answers);
  js(g, "applied");
  yajl_gen_map_open(g);
  for (int i = 0; i < Q_N; i++) jki(g, quirk_names[i], (long long)g_quirk_count[i]);
  yajl_gen_map_close(g);
  pthread_mutex_unlock(&g_lock);
  yajl_gen_map_close(g);
  ok_reply(r, g);
}

static void sim_services(struct reply *r) {
  yajl_gen g = jnew();
  yajl_gen_array_open(g);
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < opt.ccc_services; i++) {
    struct svc *s = &g_svc[i];
    yajl_gen_map_open(g);
    jkguid(g, "serviceGuid", s->guid);
    jks(g, "name", s->name);
    jks(g, "status", ccc_status_names[s->status]);
    jks(g, "serviceCode", s->code);
    jks(g, "primaryDomain", s->domain);
    js(g, "userGuids");
    yajl_gen_array_open(g);
    for (int j = 0; j < opt.ccc_users; j++) { uint8_t ug[16]; char hx[33]; make_guid(ug, T_USER, (uint64_t)i, (uint64_t)j, 1); guid_hex(ug, hx); js(g, hx); }
    yajl_gen_array_close(g);
    js(g, "users");
    yajl_gen_array_open(g);
    for (int j = 0; j < opt.ccc_users; j++) {
      struct cuser u;
      ccc_user(i, j, &u);
      yajl_gen_map_open(g);
      jkguid(g, "userGuid", u.guid);
      jks(g, "groupName", u.group);
      jks(g, "groupType", u.guest ? "Guest" : "Professional");
      jks(g, "status", u.disabled ? "Disabled" : "Active");
      jkb(g, "neverLoggedIn", u.never);
      yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
  }
  pthread_mutex_unlock(&g_lock);
  yajl_gen_array_close(g);
  ok_reply(r, g);
}

static void sim_add_changes(struct rq *q, struct reply *r) {
  uint8_t g[16];
  const char *sv = qget(q, "service", 1), *st = qget(q, "status", 1), *cv = qget(q, "count", 1), *at = qget(q, "at", 1);
  long long count = 1;
  int64_t when = (int64_t)time(NULL);
  if (!sv || parse_guid(sv, g)) { bad(r, 400, "service=GUID required"); return; }
  int status = ccc_status_from_name(st);
  if (status < 0) { bad(r, 400, "status=NAME required (one of the 8 ServiceStatus names)"); return; }
  if (cv && (parse_ll(cv, &count) || count < 1 || count > 100000)) { bad(r, 400, "count must be 1..100000"); return; }
  if (at && parse_iso_lenient(at, &when)) { bad(r, 400, "at must be an ISO 8601 date-time"); return; }
  pthread_mutex_lock(&g_lock);
  int si = ccc_find_service(g);
  if (si < 0) { pthread_mutex_unlock(&g_lock); bad(r, 404, "unknown service"); return; }
  if (g_nchg + (size_t)count > MAX_CHANGES) { pthread_mutex_unlock(&g_lock); bad(r, 400, "too many status changes held"); return; }
  while (g_nchg + (size_t)count > g_capchg) { g_capchg *= 2; g_chg = xrealloc(g_chg, g_capchg * sizeof *g_chg); }
  /* insertion point: after every change with changedOn <= when (stays sorted) */
  size_t pos = g_nchg;
  while (pos > 0 && g_chg[pos - 1].changed_on > when) pos--;
  memmove(&g_chg[pos + (size_t)count], &g_chg[pos], (g_nchg - pos) * sizeof *g_chg);
  static uint64_t serial;
  for (long long k = 0; k < count; k++) {
    struct chg *c = &g_chg[pos + (size_t)k];
    serial++;
    make_guid(c->guid, T_NEWCHG, serial, (uint64_t)time(NULL), 0);
    make_guid(c->op, T_NEWCHG, serial, (uint64_t)time(NULL), 1);
    c->svc = si;
    c->status = status;
    c->changed_on = when;
    c->admin = (int)(serial % 4);
  }
  g_nchg += (size_t)count;
  /* current status = newest change of the service */
  for (size_t i = g_nchg; i-- > 0;) if (g_chg[i].svc == si) { g_svc[si].status = g_chg[i].status; break; }
  size_t total = g_nchg;
  pthread_mutex_unlock(&g_lock);
  yajl_gen j = jnew();
  yajl_gen_map_open(j);
  jki(j, "added", count);
  jki(j, "totalChanges", (long long)total);
  jks(j, "serviceStatus", ccc_status_names[g_svc[si].status]);
  yajl_gen_map_close(j);
  ok_reply(r, j);
}

static void sim_add_records(struct rq *q, struct reply *r) {
  const char *cv = qget(q, "count", 1), *lv = qget(q, "late", 1), *av = qget(q, "age", 1);
  long long count = 1, age = -1;
  if (cv && (parse_ll(cv, &count) || count < 1 || count > 1000000)) { bad(r, 400, "count must be 1..1000000"); return; }
  if (av && (parse_ll(av, &age) || age < 0 || age > 400 * DAY)) { bad(r, 400, "age must be 0..34560000"); return; }
  int late = lv && (strcmp(lv, "1") == 0 || strcasecmp(lv, "true") == 0);
  int64_t now = (int64_t)time(NULL);
  pthread_mutex_lock(&g_lock);
  if (g_nbill + (size_t)count > (size_t)MAX_BILL) { pthread_mutex_unlock(&g_lock); bad(r, 400, "too many records held"); return; }
  long long first = (long long)g_nbill + 1;
  int32_t today = (int32_t)(day_floor(now) / DAY);
  for (long long k = 0; k < count; k++) {
    uint64_t h = H(T_BILL, (uint64_t)(first + k), 9, 0);
    int64_t ev = age >= 0 ? now - age - (int64_t)(h % 60)
                 : late   ? now - DAY - (int64_t)(h % DAY)
                          : now - (int64_t)(h % 600);
    bill_append(ev, today);
  }
  long long total = (long long)g_nbill;
  pthread_mutex_unlock(&g_lock);
  yajl_gen j = jnew();
  yajl_gen_map_open(j);
  jki(j, "added", count);
  jki(j, "firstId", first);
  jki(j, "lastId", total);
  jki(j, "totalRecords", total);
  yajl_gen_map_close(j);
  ok_reply(r, j);
}

struct grp { char *key; long long records; __int128 data, dur, sell, buy; };
static int grp_cmp(const void *a, const void *b) { return strcmp(((const struct grp *)a)->key, ((const struct grp *)b)->key); }
static void sim_billing_totals(struct rq *q, struct reply *r) {
  const char *gb = qget(q, "groupBy", 1);
  char fields[8][32];
  int nf = 0;
  if (gb && *gb) {
    char buf[256];
    if (strlen(gb) >= sizeof buf) { bad(r, 400, "groupBy too long"); return; }
    strcpy(buf, gb);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      if (nf == 8 || strlen(t) >= 32) { bad(r, 400, "too many groupBy fields"); return; }
      struct brec dummy = {0};
      char tmp[8];
      if (brec_field_text(&dummy, t, tmp, sizeof tmp) < 0 && strcmp(t, "eventDate") && strcmp(t, "loadedDate")) {
        bad(r, 400, "unknown groupBy field"); return;
      }
      strcpy(fields[nf++], t);
    }
  }
  struct bfilters F;
  if (billing_parse_filters(q, &F, r)) return;
  size_t cap = 64, n = 0;
  struct grp *tab = calloc(cap, sizeof *tab); /* open addressing */
  if (!tab) abort();
  struct grp all = {0};
  pthread_mutex_lock(&g_lock);
  struct brec b;
  for (size_t i = 0; i < g_nbill; i++) {
    if (!billing_match(&F, i, &b)) continue;
    brec_derive(i, &b, 1);
    char key[512];
    size_t kl = 0;
    key[0] = 0;
    for (int f = 0; f < nf; f++) {
      char v[128];
      brec_field_text(&b, fields[f], v, sizeof v);
      kl += (size_t)snprintf(key + kl, sizeof key - kl, "%s%s", f ? "\x1f" : "", v);
      if (kl >= sizeof key) kl = sizeof key - 1;
    }
    if (n * 2 >= cap) {
      size_t ncap = cap * 2;
      struct grp *nt = calloc(ncap, sizeof *nt);
      if (!nt) abort();
      for (size_t k = 0; k < cap; k++) if (tab[k].key) {
        size_t s = (size_t)(fnv(tab[k].key) % ncap);
        while (nt[s].key) s = (s + 1) % ncap;
        nt[s] = tab[k];
      }
      free(tab); tab = nt; cap = ncap;
    }
    size_t s = (size_t)(fnv(key) % cap);
    while (tab[s].key && strcmp(tab[s].key, key)) s = (s + 1) % cap;
    if (!tab[s].key) { tab[s].key = xstrdup(key); n++; }
    struct grp *gp = &tab[s];
    gp->records++; gp->data += b.data_milli; gp->dur += b.duration; gp->sell += b.sell; gp->buy += b.buy;
    all.records++; all.data += b.data_milli; all.dur += b.duration; all.sell += b.sell; all.buy += b.buy;
  }
  long long nrec = (long long)g_nbill;
  pthread_mutex_unlock(&g_lock);
  struct grp *list = calloc(n ? n : 1, sizeof *list);
  if (!list) abort();
  size_t m = 0;
  for (size_t k = 0; k < cap; k++) if (tab[k].key) list[m++] = tab[k];
  free(tab);
  qsort(list, m, sizeof *list, grp_cmp);
  yajl_gen g = jnew();
  char num[64];
#define SUMS(gp)                                                        \
  jki(g, "records", (gp)->records);                                     \
  fmt_i128_fixed((gp)->data, 3, num); js(g, "dataQuantity"); jnum(g, num); \
  fmt_i128_fixed((gp)->dur, 0, num); js(g, "durationQuantity"); jnum(g, num); \
  fmt_i128_fixed((gp)->sell, 4, num); js(g, "sellPrice"); jnum(g, num); \
  fmt_i128_fixed((gp)->buy, 4, num); js(g, "buyPrice"); jnum(g, num);
  yajl_gen_map_open(g);
  jki(g, "recordsHeld", nrec);
  js(g, "groupBy");
  yajl_gen_array_open(g);
  for (int f = 0; f < nf; f++) js(g, fields[f]);
  yajl_gen_array_close(g);
  js(g, "total");
  yajl_gen_map_open(g);
  SUMS(&all)
  yajl_gen_map_close(g);
  js(g, "groups");
  yajl_gen_array_open(g);
  for (size_t k = 0; k < m; k++) {
    yajl_gen_map_open(g);
    js(g, "labels");
    yajl_gen_map_open(g);
    char *p = list[k].key;
    for (int f = 0; f < nf; f++) {
      char *e = strchr(p, '\x1f');
      if (e) *e = 0;
      jks(g, fields[f], p);
      p = e ? e + 1 : p + strlen(p);
    }
    yajl_gen_map_close(g);
    SUMS(&list[k])
    yajl_gen_map_close(g);
    free(list[k].key);
  }
#undef SUMS
  free(list);
  yajl_gen_array_close(g);
  yajl_gen_map_close(g);
  ok_reply(r, g);
}

static void sim_jasper_grow(struct rq *q, struct reply *r) {
  const char *fv = qget(q, "factor", 1), *av = qget(q, "add", 1);
  double f = 1.0;
  long long add = 0;
  if (fv) {
    char *end;
    f = strtod(fv, &end);
    if (*end || !isfinite(f) || f < 1.0 || f > 1000.0) { bad(r, 400, "factor must be a number in [1, 1000]"); return; }
  }
  if (av && (parse_ll(av, &add) || add < 0 || add > 1000000000000LL)) { bad(r, 400, "add must be 0..1e12"); return; }
  if (!fv && !av) { bad(r, 400, "factor= or add= required"); return; }
  pthread_mutex_lock(&g_lock);
  if (g_jfactor * f > 1e6) { pthread_mutex_unlock(&g_lock); bad(r, 400, "cumulative factor would exceed 1e6"); return; }
  g_jfactor *= f;
  if (g_jadd + (unsigned long long)add < 10000000000000ULL) g_jadd += (unsigned long long)add;
  double nf = g_jfactor;
  unsigned long long na = g_jadd;
  pthread_mutex_unlock(&g_lock);
  yajl_gen g = jnew();
  yajl_gen_map_open(g);
  js(g, "factor"); { char b[48]; snprintf(b, sizeof b, "%.6f", nf); jnum(g, b); }
  jku128(g, "add", na);
  yajl_gen_map_close(g);
  ok_reply(r, g);
}
static void sim_jasper_reset(struct reply *r) {
  pthread_mutex_lock(&g_lock);
  g_jfactor = 0.01;
  g_jadd = 0;
  g_cycle_no++;
  g_cycle_start = day_floor((int64_t)time(NULL));
  int64_t cs = g_cycle_start;
  int cn = g_cycle_no;
  pthread_mutex_unlock(&g_lock);
  char d[16];
  fmt_day(cs, d);
  yajl_gen g = jnew();
  yajl_gen_map_open(g);
  jks(g, "cycleStartDate", d);
  jki(g, "cycle", cn);
  yajl_gen_map_close(g);
  ok_reply(r, g);
}
/* sim_jasper_shift turns jasper-shift on (on=1) or off (on=0). */
static void sim_jasper_shift(struct rq *q, struct reply *r) {
  const char *on = qget(q, "on", 1);
  if (!on || (strcmp(on, "0") && strcmp(on, "1"))) {
    bad(r, 400, "on=0 or on=1 required");
    return;
  }
  pthread_mutex_lock(&g_lock);
  g_jshift = on[0] == '1';
  unsigned long n = g_jshift_n;
  pthread_mutex_unlock(&g_lock);
  char body[96];
  snprintf(body, sizeof body, "{\"shift\":%s,\"shiftedPages\":%lu}",
           on[0] == '1' ? "true" : "false", n);
  reply_text_json(r, 200, body);
}
static void sim_jasper_totals(struct rq *q, struct reply *r) {
  struct jreq J;
  if (jasper_parse(q, r, &J, 0)) return;
  long ndev = jplan_ndev(&J);
  struct { long devices; unsigned __int128 d, smo, smt, vmo, vmt; } z[4];
  memset(z, 0, sizeof z);
  long entries = 0;
  for (long i = 0; i < ndev; i++) {
    int zs[2], nz = device_zones(J.plan, i, zs);
    for (int k = 0; k < nz; k++) {
      struct dusage du;
      device_usage(J.plan, i, k, J.hist, J.factor, J.add, J.ut, &du);
      z[zs[k]].devices++;
      z[zs[k]].d += du.data; z[zs[k]].smo += du.smo; z[zs[k]].smt += du.smt; z[zs[k]].vmo += du.vmo; z[zs[k]].vmt += du.vmt;
      entries++;
    }
  }
  yajl_gen g = jnew();
  yajl_gen_map_open(g);
  jks(g, "ratePlanName", J.plan->name);
  jki(g, "ratePlanVersion", J.version);
  jki(g, "devices", ndev);
  jki(g, "entries", entries);
  jki(g, "pages", ndev ? (ndev + 49) / 50 : 1);
  js(g, "zones");
  yajl_gen_array_open(g);
  for (int k = 0; k < J.plan->nzones; k++) {
    if (!z[k].devices) continue;
    yajl_gen_map_open(g);
    jks(g, "zone", zone_names[k]);
    jki(g, "devices", z[k].devices);
    jku128(g, "dataUsage", z[k].d);
    jku128(g, "smsMOUsage", z[k].smo);
    jku128(g, "smsMTUsage", z[k].smt);
    jku128(g, "voiceMOUsage", z[k].vmo);
    jku128(g, "voiceMTUsage", z[k].vmt);
    yajl_gen_map_close(g);
  }
  yajl_gen_array_close(g);
  yajl_gen_map_close(g);
  ok_reply(r, g);
}
static void sim_jasper_plans(struct reply *r) {
  yajl_gen g = jnew();
  yajl_gen_array_open(g);
  for (int k = 0; k < g_njp; k++) {
    struct jplan *p = &g_jp[k];
    yajl_gen_map_open(g);
    jks(g, "ratePlanName", p->name);
    jki(g, "ratePlanVersion", p->version);
    jks(g, "kind", p->kind == JP_SHARED ? "shared" : p->kind == JP_DUP ? "duplicate" : "normal");
    jki(g, "devices", p->ndev);
    js(g, "zones");
    yajl_gen_array_open(g);
    for (int z = 0; z < p->nzones; z++) js(g, zone_names[z]);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
  }
  yajl_gen_array_close(g);
  ok_reply(r, g);
}

static void sim_fault(struct rq *q, struct reply *r) {
  const char *pv = qget(q, "path", 1), *mv = qget(q, "mode", 1), *cv = qget(q, "count", 1);
  const char *sv = qget(q, "status", 1), *dv = qget(q, "delay", 1), *rv = qget(q, "retry_after", 1);
  int mode = -1;
  for (int i = 0; mv && i < F_NMODES; i++) if (strcmp(mv, fault_names[i]) == 0) mode = i;
  if (mode < 0) { bad(r, 400, "mode must be one of http500 http503 http429 http401 malformed html latin1 slow deep huge wrongtype empty drop cut"); return; }
  if (!pv || !*pv) pv = "/";
  if (pv[0] != '/' || strlen(pv) >= sizeof g_faults[0].prefix) { bad(r, 400, "path must be a URL path prefix starting with /"); return; }
  long long count = 1, st = 0, delay = 7000, ra = -1;
  if (cv && (parse_ll(cv, &count) || count < 0 || count > 1000000000)) { bad(r, 400, "count must be >= 0"); return; }
  if (sv && (parse_ll(sv, &st) || st < 100 || st > 599)) { bad(r, 400, "status must be 100..599"); return; }
  if (dv && (parse_ll(dv, &delay) || delay < 0 || delay > 600000)) { bad(r, 400, "delay must be 0..600000 ms"); return; }
  if (rv && (parse_ll(rv, &ra) || ra < 0 || ra > 86400)) { bad(r, 400, "retry_after must be 0..86400 s"); return; }
  pthread_mutex_lock(&g_lock);
  if (g_nfaults == MAX_FAULTS) { pthread_mutex_unlock(&g_lock); bad(r, 400, "too many faults armed"); return; }
  struct fault *f = &g_faults[g_nfaults++];
  memset(f, 0, sizeof *f);
  snprintf(f->prefix, sizeof f->prefix, "%s", pv);
  f->mode = mode;
  f->remaining = count == 0 ? -1 : (long)count;
  f->status = (unsigned)st;
  f->delay_ms = (long)delay;
  f->retry_after = (int)ra;
  int n = g_nfaults;
  pthread_mutex_unlock(&g_lock);
  yajl_gen g = jnew();
  yajl_gen_map_open(g);
  jks(g, "path", pv);
  jks(g, "mode", fault_names[mode]);
  jki(g, "count", count);
  jki(g, "armed", n);
  yajl_gen_map_close(g);
  ok_reply(r, g);
}
static void sim_fault_list(struct reply *r) {
  yajl_gen g = jnew();
  yajl_gen_array_open(g);
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < g_nfaults; i++) {
    yajl_gen_map_open(g);
    jks(g, "path", g_faults[i].prefix);
    jks(g, "mode", fault_names[g_faults[i].mode]);
    jki(g, "remaining", g_faults[i].remaining < 0 ? 0 : g_faults[i].remaining); /* 0 = until cleared */
    jki(g, "hits", g_faults[i].hits);
    yajl_gen_map_close(g);
  }
  pthread_mutex_unlock(&g_lock);
  yajl_gen_array_close(g);
  ok_reply(r, g);
}
static void sim_requests(struct rq *q, struct reply *r) {
  const char *prefix = qget(q, "prefix", 1);
  if (!prefix) prefix = qget(q, "path", 1);
  yajl_gen g = jnew();
  yajl_gen_map_open(g);
  pthread_mutex_lock(&g_lock);
  jki(g, "total", g_total);
  jki(g, "inFlight", g_inflight);
  jki(g, "maxInFlight", g_maxinflight);
  jki(g, "rateLimited", g_rate_rejected);
  js(g, "endpoints");
  yajl_gen_map_open(g);
  for (int e = 0; e < E_N; e++) {
    js(g, endpoint_names[e]);
    yajl_gen_map_open(g);
    jki(g, "count", g_ep[e].count);
    js(g, "status");
    yajl_gen_map_open(g);
    for (int k = 0; k < g_ep[e].ncodes; k++) { char c[8]; snprintf(c, sizeof c, "%u", g_ep[e].codes[k]); jki(g, c, g_ep[e].per_code[k]); }
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
  }
  yajl_gen_map_close(g);
  long pc = 0;
  js(g, "paths");
  yajl_gen_map_open(g);
  for (int s = 0; s < PATH_SLOTS; s++) if (g_paths[s].path) {
    jki(g, g_paths[s].path, g_paths[s].n);
    if (prefix && strncmp(g_paths[s].path, prefix, strlen(prefix)) == 0) pc += g_paths[s].n;
  }
  yajl_gen_map_close(g);
  jki(g, "pathsOverflow", g_paths_overflow);
  pthread_mutex_unlock(&g_lock);
  if (prefix) { jks(g, "prefix", prefix); jki(g, "prefixCount", pc); }
  yajl_gen_map_close(g);
  ok_reply(r, g);
}
static void sim_requests_reset(struct reply *r) {
  pthread_mutex_lock(&g_lock);
  for (int s = 0; s < PATH_SLOTS; s++) { free(g_paths[s].path); g_paths[s].path = NULL; g_paths[s].n = 0; }
  g_paths_used = g_paths_overflow = g_total = 0;
  g_maxinflight = g_inflight;
  g_rate_rejected = 0;
  memset(g_ep, 0, sizeof g_ep);
  pthread_mutex_unlock(&g_lock);
  reply_text_json(r, 200, "{\"ok\":true}");
}


/* ------------------------------------------------------------------ */
/* sign-in (--login): POST /authenticate (billing, JSON -> JWT-like token),
 * POST /api/login (CCC, -> SessionToken), POST /oauth2/token (client
 * credentials); tokens live --token-ttl seconds; /_sim/logins counts,
 * /_sim/login/revoke forgets every token. */

#define MAX_TOKENS 4096
static struct { char tok[512]; double exp; } g_tokens[MAX_TOKENS];
static unsigned g_ntokens, g_token_seq;
static unsigned long g_logins[3], g_logins_refused, g_token_rejected;
static int g_login_down;               /* 0 up, 1 answer 503, 2 drop the connection */
static unsigned long g_logins_while_down; /* sign-in attempts while down */

static void b64(const unsigned char *in, size_t n, char *out, int url) {
  const char *t = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                      : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63]; out[o++] = t[v >> 12 & 63];
    if (i + 1 < n) out[o++] = t[v >> 6 & 63]; else if (!url) out[o++] = '=';
    if (i + 2 < n) out[o++] = t[v & 63]; else if (!url) out[o++] = '=';
  }
  out[o] = 0;
}

/* issue_token records a new token (under g_lock) */
static void issue_token(int kind, char *out, size_t n, double *exp) {
  double now = now_d();
  *exp = now + opt.token_ttl;
  unsigned seq = ++g_token_seq;
  if (kind == 0) { /* billing: a JWT-like token with iat and exp claims */
    /* the claims come from the sign-in clock (--clock-skew); the token is
     * rejected by its true lifetime all the same */
    char payload[256], p64[400];
    long long iat = (long long)floor(now + opt.clock_skew);
    long long cexp = (long long)floor(now + opt.clock_skew + opt.token_ttl);
    snprintf(payload, sizeof payload, "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld,\"jti\":%u}", opt.login_user,
             iat, cexp, seq);
    *exp = (double)(cexp - opt.clock_skew);
    b64((const unsigned char *)payload, strlen(payload), p64, 1);
    snprintf(out, n, "eyJhbGciOiJub25lIn0.%s.c2ltLXNpZw", p64);
  } else {
    snprintf(out, n, "%s-%u-%08llx", kind == 1 ? "sess" : "at", seq,
             (unsigned long long)(mix64(opt.seed + seq) & 0xffffffffu));
  }
  unsigned slot = g_ntokens < MAX_TOKENS ? g_ntokens++ : seq % MAX_TOKENS;
  snprintf(g_tokens[slot].tok, sizeof g_tokens[slot].tok, "%s", out);
  g_tokens[slot].exp = *exp;
  g_logins[kind]++;
}

static int token_valid(const char *t) {
  if (!t) return 0;
  double now = now_d();
  int ok = 0;
  pthread_mutex_lock(&g_lock);
  for (unsigned i = 0; i < g_ntokens && !ok; i++) ok = strcmp(g_tokens[i].tok, t) == 0 && now < g_tokens[i].exp;
  if (!ok) g_token_rejected++;
  pthread_mutex_unlock(&g_lock);
  return ok;
}

/* login_allowed: with --login, the data request carries a live token */
static int login_allowed(struct rq *q, enum vendor v) {
  const char *a = hget(q, "Authorization");
  const char *bearer = a && strncasecmp(a, "Bearer ", 7) == 0 ? a + 7 : NULL;
  if (v == V_CCC) {
    const char *st = hget(q, "x-sm-session-token");
    return token_valid(st ? st : bearer);
  }
  return token_valid(bearer);
}

static const char *form_get(const char *body, const char *name, char *out, size_t n) {
  size_t ln = strlen(name);
  for (const char *p = body; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
    if (strncmp(p, name, ln) || p[ln] != '=') continue;
    size_t o = 0;
    for (const char *v = p + ln + 1; *v && *v != '&' && o + 1 < n; v++) {
      if (*v == '%' && isxdigit((unsigned char)v[1]) && isxdigit((unsigned char)v[2])) {
        char h[3] = {v[1], v[2], 0}; out[o++] = (char)strtol(h, NULL, 16); v += 2;
      } else out[o++] = *v == '+' ? ' ' : *v;
    }
    out[o] = 0;
    return out;
  }
  return NULL;
}

static int json_field_is(yajl_val root, const char *key, const char *want) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(root, path, yajl_t_string);
  const char *sv = v ? YAJL_GET_STRING(v) : NULL;
  return sv && strcmp(sv, want) == 0;
}

/* login_handle answers a sign-in; 1 when url is a login endpoint */
static int login_handle(struct rq *q, struct reply *r) {
  const char *u = q->url;
  int kind = !strcmp(u, "/authenticate") ? 0 : !strcmp(u, "/api/login") ? 1 : !strcmp(u, "/oauth2/token") ? 2 : -1;
  if (kind < 0 || !opt.login) return 0;
  if (!is_post(q)) { r->allow = "POST"; reply_text_json(r, 405, "{\"message\":\"use POST\"}"); return 1; }
  pthread_mutex_lock(&g_lock);
  int down = g_login_down;
  if (down) g_logins_while_down++;
  pthread_mutex_unlock(&g_lock);
  if (down == 2) { r->drop = 1; return 1; }
  if (down) { reply_text_json(r, 503, "{\"message\":\"Service Unavailable\"}"); return 1; }
  int ok = 0;
  char *body = q->ctx->body;
  if (kind < 2) {
    yajl_val root = yajl_tree_parse(body, NULL, 0);
    ok = root && json_field_is(root, kind ? "Username" : "username", opt.login_user) &&
         json_field_is(root, kind ? "Password" : "password", opt.login_password);
    yajl_tree_free(root);
  } else {
    char gt[64], id[160], sec[160], pair[330], want[460];
    const char *a = hget(q, "Authorization");
    snprintf(pair, sizeof pair, "%s:%s", opt.client_id, opt.client_secret);
    strcpy(want, "Basic ");
    b64((const unsigned char *)pair, strlen(pair), want + 6, 0);
    ok = form_get(body, "grant_type", gt, sizeof gt) && !strcmp(gt, "client_credentials") &&
         ((a && !strcmp(a, want)) ||
          (form_get(body, "client_id", id, sizeof id) && form_get(body, "client_secret", sec, sizeof sec) &&
           !strcmp(id, opt.client_id) && !strcmp(sec, opt.client_secret)));
  }
  if (!ok) {
    pthread_mutex_lock(&g_lock); g_logins_refused++; pthread_mutex_unlock(&g_lock);
    reply_text_json(r, 401, kind == 2 ? "{\"error\":\"invalid_client\"}" : "{\"message\":\"Unauthorized\"}");
    return 1;
  }
  char tok[512], out[700];
  double exp;
  pthread_mutex_lock(&g_lock);
  issue_token(kind, tok, sizeof tok, &exp);
  int ttl = opt.token_ttl;
  pthread_mutex_unlock(&g_lock);
  if (kind == 0) snprintf(out, sizeof out, "{\"token\":\"%s\"}", tok);
  else if (kind == 1) snprintf(out, sizeof out, "{\"SessionToken\":\"%s\"}", tok);
  else snprintf(out, sizeof out, "{\"access_token\":\"%s\",\"token_type\":\"Bearer\",\"expires_in\":%d}", tok, ttl);
  reply_text_json(r, 200, out);
  return 1;
}

static void sim_logins(struct reply *r) {
  char out[300];
  pthread_mutex_lock(&g_lock);
  snprintf(out, sizeof out,
           "{\"logins\":%lu,\"billing\":%lu,\"ccc\":%lu,\"oauth2\":%lu,\"refused\":%lu,\"tokenRejected\":%lu,"
           "\"whileDown\":%lu,\"down\":%s,\"clockSkew\":%d}",
           g_logins[0] + g_logins[1] + g_logins[2], g_logins[0], g_logins[1], g_logins[2], g_logins_refused,
           g_token_rejected, g_logins_while_down, g_login_down == 2 ? "\"drop\"" : g_login_down ? "\"http503\"" : "false",
           opt.clock_skew);
  pthread_mutex_unlock(&g_lock);
  reply_text_json(r, 200, out);
}

static void sim_login_revoke(struct reply *r) {
  pthread_mutex_lock(&g_lock);
  g_ntokens = 0;
  pthread_mutex_unlock(&g_lock);
  reply_text_json(r, 200, "{\"ok\":true}");
}

/* POST /_sim/login/down?on=1[&mode=http503|drop]: the login endpoints
 * answer 503 (or close the connection without an answer) until on=0 */
static void sim_login_down(struct rq *q, struct reply *r) {
  const char *on = qget(q, "on", 1), *mode = qget(q, "mode", 1);
  if (!on || (strcmp(on, "0") && strcmp(on, "1")) || (mode && strcmp(mode, "http503") && strcmp(mode, "drop"))) {
    bad(r, 400, "on=0|1 required; mode=http503|drop");
    return;
  }
  pthread_mutex_lock(&g_lock);
  g_login_down = !strcmp(on, "1") ? (mode && !strcmp(mode, "drop") ? 2 : 1) : 0;
  pthread_mutex_unlock(&g_lock);
  sim_logins(r);
}

/* POST /_sim/login/clock-skew?seconds=N: the sign-in clock (JWT iat and
 * exp) runs N seconds ahead of the true one (behind when N < 0) */
static void sim_clock_skew(struct rq *q, struct reply *r) {
  const char *v = qget(q, "seconds", 1);
  long long n;
  if (!v || parse_ll(v, &n) || n < -86400 * 30 || n > 86400 * 30) { bad(r, 400, "seconds must be -2592000..2592000"); return; }
  pthread_mutex_lock(&g_lock);
  opt.clock_skew = (int)n;
  pthread_mutex_unlock(&g_lock);
  sim_logins(r);
}

/* POST /_sim/login/ttl?seconds=N: tokens issued from now on live N s (as
 * --token-ttl); tokens already issued keep their lifetime */
static void sim_token_ttl(struct rq *q, struct reply *r) {
  const char *v = qget(q, "seconds", 1);
  long long n;
  if (!v || parse_ll(v, &n) || n < 1 || n > 86400) { bad(r, 400, "seconds must be 1..86400"); return; }
  pthread_mutex_lock(&g_lock);
  opt.token_ttl = (int)n;
  pthread_mutex_unlock(&g_lock);
  sim_logins(r);
}

static void sim_route(struct rq *q, struct reply *r) {
  const char *u = q->url + 5; /* after /_sim */
  int post = is_post(q);
#define NEED_POST() do { if (!post) { r->allow = "POST"; bad(r, 405, "use POST"); return; } } while (0)
#define NEED_GET() do { if (post) { r->allow = "GET"; bad(r, 405, "use GET"); return; } } while (0)
  if (!strcmp(u, "/ccc/services")) { NEED_GET(); sim_services(r); }
  else if (!strcmp(u, "/ccc/status-changes")) { NEED_POST(); sim_add_changes(q, r); }
  else if (!strcmp(u, "/billing/records")) { NEED_POST(); sim_add_records(q, r); }
  else if (!strcmp(u, "/billing/totals")) { NEED_GET(); sim_billing_totals(q, r); }
  else if (!strcmp(u, "/billing/token")) {
    NEED_POST();
    const char *t = qget(q, "token", 1);
    if (!t || !*t || strlen(t) >= sizeof opt.billing_token) { bad(r, 400, "token= required"); return; }
    pthread_mutex_lock(&g_lock); snprintf(opt.billing_token, sizeof opt.billing_token, "%s", t); pthread_mutex_unlock(&g_lock);
    reply_text_json(r, 200, "{\"ok\":true}");
  }
  else if (!strcmp(u, "/logins")) { NEED_GET(); sim_logins(r); }
  else if (!strcmp(u, "/login/revoke")) { NEED_POST(); sim_login_revoke(r); }
  else if (!strcmp(u, "/login/down")) { NEED_POST(); sim_login_down(q, r); }
  else if (!strcmp(u, "/login/clock-skew")) { NEED_POST(); sim_clock_skew(q, r); }
  else if (!strcmp(u, "/login/ttl")) { NEED_POST(); sim_token_ttl(q, r); }
  else if (!strcmp(u, "/jasper/grow")) { NEED_POST(); sim_jasper_grow(q, r); }
  else if (!strcmp(u, "/jasper/reset-cycle")) { NEED_POST(); sim_jasper_reset(r); }
  else if (!strcmp(u, "/jasper/shift")) { NEED_POST(); sim_jasper_shift(q, r); }
  else if (!strcmp(u, "/quirks")) sim_quirks(q, r, post);
  else if (!strcmp(u, "/jasper/totals")) { NEED_GET(); sim_jasper_totals(q, r); }
  else if (!strcmp(u, "/jasper/plans")) { NEED_GET(); sim_jasper_plans(r); }
  else if (!strcmp(u, "/jasper/credentials")) {
    NEED_POST();
    const char *us = qget(q, "user", 1), *k = qget(q, "key", 1);
    if ((us && strlen(us) >= sizeof opt.jasper_user) || (k && strlen(k) >= sizeof opt.jasper_key) || (!us && !k)) { bad(r, 400, "user= and/or key= required"); return; }
    pthread_mutex_lock(&g_lock);
    if (us) snprintf(opt.jasper_user, sizeof opt.jasper_user, "%s", us);
    if (k) snprintf(opt.jasper_key, sizeof opt.jasper_key, "%s", k);
    pthread_mutex_unlock(&g_lock);
    reply_text_json(r, 200, "{\"ok\":true}");
  }
  else if (!strcmp(u, "/fault")) { if (post) sim_fault(q, r); else sim_fault_list(r); }
  else if (!strcmp(u, "/fault/clear")) {
    NEED_POST();
    pthread_mutex_lock(&g_lock); g_nfaults = 0; pthread_mutex_unlock(&g_lock);
    reply_text_json(r, 200, "{\"ok\":true}");
  }
  else if (!strcmp(u, "/rate-limit")) {
    NEED_POST();
    const char *v = qget(q, "per-second", 1);
    long long n;
    if (!v || parse_ll(v, &n) || n < 0 || n > RATE_RING) { bad(r, 400, "per-second must be 0..10000 (0 = off)"); return; }
    pthread_mutex_lock(&g_lock); g_rate = (int)n; g_rate_n = 0; pthread_mutex_unlock(&g_lock);
    char b[64]; snprintf(b, sizeof b, "{\"perSecond\":%lld}", n);
    reply_text_json(r, 200, b);
  }
  else if (!strcmp(u, "/requests")) { NEED_GET(); sim_requests(q, r); }
  else if (!strcmp(u, "/requests/reset")) { NEED_POST(); sim_requests_reset(r); }
  else if (!strcmp(u, "/health")) reply_text_json(r, 200, "{\"ok\":true}");
  else bad(r, 404, "unknown control endpoint");
#undef NEED_POST
#undef NEED_GET
}

/* ------------------------------------------------------------------ */
/* MHD glue                                                            */

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *con) {
  (void)cls; (void)con;
  struct req_ctx *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->start = now_d();
  size_t n = strnlen(uri, 8192);
  c->uri = xrealloc(NULL, n + 1);
  memcpy(c->uri, uri, n);
  c->uri[n] = 0;
  return c;
}

static void completed(void *cls, struct MHD_Connection *con, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls; (void)con; (void)toe;
  struct req_ctx *c = *con_cls;
  if (!c) return;
  *con_cls = NULL;
  double end = now_d();
  if (c->counted) {
    pthread_mutex_lock(&g_lock);
    g_inflight--;
    count_status(c->endpoint, c->status);
    pthread_mutex_unlock(&g_lock);
  }
  if (c->seen && !c->is_control && g_reqlog) {
    /* sanitize the URI for a one-line log */
    for (char *p = c->uri; *p; p++) if ((unsigned char)*p < 0x20 || *p == ' ') *p = '_';
    pthread_mutex_lock(&g_log_lock);
    fprintf(g_reqlog, "%.6f %.6f %s %s %u\n", c->start, end, c->method, c->uri, c->status ? c->status : 0);
    fflush(g_reqlog);
    pthread_mutex_unlock(&g_log_lock);
  }
  free(c->uri);
  free(c);
}

static enum MHD_Result send_reply(struct MHD_Connection *con, struct req_ctx *ctx, struct reply *r) {
  struct MHD_Response *resp;
  if (r->drop) {
    free(r->body);
    r->body = NULL;
    return MHD_NO; /* MHD closes the connection, nothing sent */
  }
  if (r->huge) {
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 65536, huge_reader, NULL, NULL);
  } else if (r->cut && r->len >= 2) {
    struct cut *c = xrealloc(NULL, sizeof *c);
    c->body = r->body;
    c->len = r->len;
    resp = MHD_create_response_from_callback(r->len, 4096, cut_reader, c, cut_free);
    if (!resp) cut_free(c);
  } else if (r->len == 0) {
    resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    free(r->body);
  } else {
    resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
  }
  r->body = NULL;
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/json; charset=utf-8");
  if (r->retry_after >= 0) { char b[16]; snprintf(b, sizeof b, "%d", r->retry_after); MHD_add_response_header(resp, "Retry-After", b); }
  if (r->allow) MHD_add_response_header(resp, "Allow", r->allow);
  ctx->status = r->status;
  enum MHD_Result ret = MHD_queue_response(con, r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *con, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
  (void)cls; (void)version; (void)upload_data;
  struct req_ctx *ctx = *con_cls;
  if (!ctx) { ctx = uri_logger(NULL, url, con); *con_cls = ctx; }
  if (!ctx->seen) {
    ctx->seen = 1;
    snprintf(ctx->method, sizeof ctx->method, "%s", method);
    ctx->is_control = strncmp(url, "/_sim/", 6) == 0;
    if (!ctx->is_control) {
      ctx->counted = 1;
      ctx->endpoint = endpoint_of(url);
      pthread_mutex_lock(&g_lock);
      g_total++;
      g_ep[ctx->endpoint].count++;
      count_path(url);
      if (++g_inflight > g_maxinflight) g_maxinflight = g_inflight;
      pthread_mutex_unlock(&g_lock);
    }
    return MHD_YES;
  }
  if (*upload_data_size) { /* kept for the login endpoints, otherwise ignored */
    size_t room = sizeof ctx->body - 1 - ctx->body_len;
    size_t n = *upload_data_size < room ? *upload_data_size : room;
    memcpy(ctx->body + ctx->body_len, upload_data, n);
    ctx->body_len += n;
    ctx->body[ctx->body_len] = 0;
    *upload_data_size = 0;
    return MHD_YES;
  }

  struct reply r = {.status = 500, .retry_after = -1};
  struct rq q = {con, url, method, ctx};
  if (ctx->is_control) { sim_route(&q, &r); return send_reply(con, ctx, &r); }

  /* rate limit (sliding one-second window over admitted requests) */
  int limited = 0;
  int fmode = -1;
  unsigned fstatus = 0;
  long fdelay = 0;
  int fretry = -1;
  pthread_mutex_lock(&g_lock);
  if (g_rate > 0) {
    double t = now_d();
    if (g_rate_n >= g_rate && t - g_rate_ring[(g_rate_n - g_rate) % RATE_RING] < 1.0) { limited = 1; g_rate_rejected++; }
    else { g_rate_ring[g_rate_n % RATE_RING] = t; g_rate_n++; }
  }
  if (!limited) {
    for (int i = 0; i < g_nfaults; i++) {
      struct fault *f = &g_faults[i];
      if (strncmp(url, f->prefix, strlen(f->prefix)) != 0) continue;
      fmode = f->mode; fstatus = f->status; fdelay = f->delay_ms; fretry = f->retry_after;
      f->hits++;
      if (f->remaining > 0 && --f->remaining == 0) { /* exhausted: drop it, keep order */
        memmove(f, f + 1, (size_t)(g_nfaults - i - 1) * sizeof *f);
        g_nfaults--;
      }
      break;
    }
  }
  pthread_mutex_unlock(&g_lock);
  if (limited) {
    vendor_error(&r, url, 429, "TooManyRequests", "Too many requests");
    r.retry_after = 1;
    apply_quirks(&r, url, con);
    return send_reply(con, ctx, &r);
  }
  if (fmode == F_DROP) {
    r.drop = 1;
    return send_reply(con, ctx, &r);
  }
  if (fmode >= 0 && fmode != F_SLOW && fmode != F_MALFORMED && fmode != F_WRONGTYPE && fmode != F_CUT) {
    fault_reply(fmode, url, fstatus, &r);
    if (fretry >= 0) r.retry_after = fretry;
    apply_quirks(&r, url, con);
    return send_reply(con, ctx, &r);
  }
  if (fmode == F_SLOW) sim_sleep_ms(fdelay);

  if (login_handle(&q, &r)) {
    return send_reply(con, ctx, &r);
  } else if (opt.login && (vendor_of(url) == V_CCC || vendor_of(url) == V_BILLING) &&
             !login_allowed(&q, vendor_of(url))) {
    if (vendor_of(url) == V_BILLING) reply_text_json(&r, 401, "{\"message\":\"Unauthorized\"}");
    else vendor_error(&r, url, 401, "Unauthorized", "Invalid or expired session token");
  } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    vendor_error(&r, url, 405, "MethodNotAllowed", "Method not allowed");
    r.allow = "GET, HEAD";
  } else {
    switch (vendor_of(url)) {
    case V_CCC: ccc_route(&q, &r); break;
    case V_BILLING: billing_handle(&q, &r); break;
    case V_JASPER: jasper_handle(&q, &r); break;
    default: reply_text_json(&r, 404, "{\"message\":\"Not Found\"}"); break;
    }
  }
  apply_quirks(&r, url, con);
  if (fmode == F_MALFORMED) {
    size_t keep = r.len * 6 / 10;
    if (keep < 1 || r.len < 2) { reply_text_json(&r, r.status, "{\"trunc"); }
    else r.len = keep;
  } else if (fmode == F_WRONGTYPE) apply_wrongtype(&r);
  else if (fmode == F_CUT) r.cut = 1;
  if (fstatus && (fmode == F_SLOW || fmode == F_MALFORMED || fmode == F_WRONGTYPE || fmode == F_CUT)) r.status = fstatus;
  return send_reply(con, ctx, &r);
}

/* ------------------------------------------------------------------ */
/* main                                                                */

static void usage(FILE *f) {
  fprintf(f,
          "usage: usage-sim [--address 127.0.0.1] [--port N] [--port-file FILE] [--seed N] [--now EPOCH]\n"
          "                 [--ccc-services N] [--ccc-users N] [--ccc-status-changes N]\n"
          "                 [--billing-records N] [--billing-token TOKEN]\n"
          "                 [--jasper-rate-plans N] [--jasper-devices N] [--jasper-user U] [--jasper-key K]\n"
          "                 [--request-log FILE] [--threads N]\n"
          "                 [--login] [--token-ttl SECONDS] [--login-user U] [--login-password P]\n"
          "                 [--client-id ID] [--client-secret S] [--clock-skew SECONDS] [--quirks]\n");
}
static long long arg_num(const char *name, const char *v, long long lo, long long hi) {
  long long x;
  if (parse_ll(v, &x) || x < lo || x > hi) {
    fprintf(stderr, "usage-sim: --%s: expected an integer in [%lld, %lld], got '%s'\n", name, lo, hi, v);
    exit(2);
  }
  return x;
}
static void copy_arg(const char *name, char *dst, size_t n, const char *v) {
  if (!*v || strlen(v) >= n) { fprintf(stderr, "usage-sim: --%s: empty or too long\n", name); exit(2); }
  strcpy(dst, v);
}

int main(int argc, char **argv) {
  static const struct option lo[] = {
      {"address", 1, 0, 'a'}, {"port", 1, 0, 'p'}, {"port-file", 1, 0, 'P'}, {"seed", 1, 0, 's'},
      {"ccc-services", 1, 0, 1}, {"ccc-users", 1, 0, 2}, {"ccc-status-changes", 1, 0, 3},
      {"billing-records", 1, 0, 4}, {"billing-token", 1, 0, 5}, {"jasper-rate-plans", 1, 0, 6},
      {"jasper-devices", 1, 0, 7}, {"jasper-user", 1, 0, 8}, {"jasper-key", 1, 0, 9},
      {"request-log", 1, 0, 10}, {"threads", 1, 0, 11}, {"now", 1, 0, 12}, {"login", 0, 0, 13}, {"token-ttl", 1, 0, 14},
      {"login-user", 1, 0, 15}, {"login-password", 1, 0, 16}, {"client-id", 1, 0, 17}, {"client-secret", 1, 0, 18},
      {"quirks", 0, 0, 19},
      {"clock-skew", 1, 0, 20},
      {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "a:p:P:s:h", lo, NULL)) != -1) {
    switch (c) {
    case 'a': opt.address = optarg; break;
    case 'p': opt.port = (int)arg_num("port", optarg, 0, 65535); break;
    case 'P': opt.port_file = optarg; break;
    case 's': opt.seed = (uint64_t)arg_num("seed", optarg, 0, LLONG_MAX); break;
    case 1: opt.ccc_services = (int)arg_num("ccc-services", optarg, 1, 10000); break;
    case 2: opt.ccc_users = (int)arg_num("ccc-users", optarg, 0, 100000); break;
    case 3: opt.ccc_status_changes = (int)arg_num("ccc-status-changes", optarg, 0, 100000); break;
    case 4: opt.billing_records = (long)arg_num("billing-records", optarg, 0, MAX_BILL); break;
    case 5: copy_arg("billing-token", opt.billing_token, sizeof opt.billing_token, optarg); break;
    case 6: opt.jasper_plans = (int)arg_num("jasper-rate-plans", optarg, 1, 1000); break;
    case 7: opt.jasper_devices = (long)arg_num("jasper-devices", optarg, 0, 10000000); break;
    case 8: copy_arg("jasper-user", opt.jasper_user, sizeof opt.jasper_user, optarg); break;
    case 9: copy_arg("jasper-key", opt.jasper_key, sizeof opt.jasper_key, optarg); break;
    case 10: opt.request_log = optarg; break;
    case 11: opt.threads = (int)arg_num("threads", optarg, 1, 64); break;
    case 12: opt.now = (int64_t)arg_num("now", optarg, 86400LL * 400, 253402300799LL); break;
    case 13: opt.login = 1; break;
    case 14: opt.token_ttl = (int)arg_num("token-ttl", optarg, 1, 86400); break;
    case 15: copy_arg("login-user", opt.login_user, sizeof opt.login_user, optarg); break;
    case 16: copy_arg("login-password", opt.login_password, sizeof opt.login_password, optarg); break;
    case 17: copy_arg("client-id", opt.client_id, sizeof opt.client_id, optarg); break;
    case 18: copy_arg("client-secret", opt.client_secret, sizeof opt.client_secret, optarg); break;
    case 19: opt.quirks = 1; break;
    case 20: opt.clock_skew = (int)arg_num("clock-skew", optarg, -86400LL * 30, 86400LL * 30); break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) { usage(stderr); return 2; }
  if (!opt.now) opt.now = (int64_t)time(NULL);

  if (opt.request_log) {
    g_reqlog = fopen(opt.request_log, "a");
    if (!g_reqlog) { fprintf(stderr, "usage-sim: cannot open %s: %s\n", opt.request_log, strerror(errno)); return 1; }
  }
  ccc_init();
  billing_init();
  jasper_init();

  /* listening socket */
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", opt.port);
  int rc = getaddrinfo(opt.address, portstr, &hints, &ai);
  if (rc) { fprintf(stderr, "usage-sim: bad --address %s: %s\n", opt.address, gai_strerror(rc)); return 1; }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0) { perror("usage-sim: socket"); return 1; }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 256)) {
    fprintf(stderr, "usage-sim: cannot listen on %s:%d: %s\n", opt.address, opt.port, strerror(errno));
    return 1;
  }
  int is6 = ai->ai_family == AF_INET6;
  freeaddrinfo(ai);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  int port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);

  /* signals: block in all threads, wait in main */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG | (is6 ? MHD_USE_IPv6 : 0);
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, 0, NULL, NULL, handler, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)opt.threads, MHD_OPTION_URI_LOG_CALLBACK, uri_logger, NULL,
      MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)512, MHD_OPTION_END);
  if (!d) { fprintf(stderr, "usage-sim: MHD_start_daemon failed\n"); return 1; }

  if (opt.port_file) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", opt.port_file, (long)getpid());
    FILE *pf = fopen(tmp, "w");
    if (!pf || fprintf(pf, "%d\n", port) < 0 || fclose(pf) || rename(tmp, opt.port_file)) {
      fprintf(stderr, "usage-sim: cannot write port file %s: %s\n", opt.port_file, strerror(errno));
      MHD_stop_daemon(d);
      return 1;
    }
  }
  printf("port=%d\n", port);
  fflush(stdout);

  int sig = 0;
  sigwait(&set, &sig);
  g_stopping = 1;
  MHD_stop_daemon(d);
  close(fd);
  if (g_reqlog) fclose(g_reqlog);
  free(g_svc); free(g_chg); free(g_bevent); free(g_bloaded); free(g_jp);
  for (int s = 0; s < PATH_SLOTS; s++) free(g_paths[s].path);
  return 0;
}
