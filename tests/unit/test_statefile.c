/* SPDX-License-Identifier: MIT */
/* test_statefile: state files (src/statefile.c): atomic save, strict load,
 * damaged or foreign files set aside; and the CCC status-change state body
 * (usage_ccc_changes_format / usage_ccc_changes_parse) that goes in them. */
#include "api/ccc/ccc.h"
#include "buf.h"
#include "statefile.h"

#include <dirent.h>
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

#define SVC "2f1c0a0e9d7b4c6e8a5f3b2d1c0e9f8a"
#define SVC2 "7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1"
#define CHG "c0000000000000000000000000000001"
#define NO_CAP 4102444800.0 /* now for usage_ccc_changes_merge: 2100 */

static char dir[256];

static void path_of(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s", dir, name);
}

static void write_raw(const char *name, const char *data, size_t len) {
  char path[512];
  path_of(path, sizeof(path), name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
}

/* read_raw returns the file's bytes (NUL-terminated) or NULL. */
static char *read_raw(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *data = calloc(1, 4 << 20);
  size_t n = fread(data, 1, (4 << 20) - 1, f);
  fclose(f);
  if (len != NULL)
    *len = n;
  return data;
}

/* entries counts the directory entries whose name starts with prefix and
 * writes the last one's name into found. */
static int entries(const char *prefix, char *found, size_t size) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
      n++;
      if (found != NULL)
        snprintf(found, size, "%s", e->d_name);
    }
  closedir(d);
  return n;
}

static void clean_dir(void) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char path[512];
    path_of(path, sizeof(path), e->d_name);
    if (unlink(path) != 0)
      rmdir(path);
  }
  closedir(d);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/usage-test-statefile-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  clean_dir();
  rmdir(dir);
  return 0;
}

static void test_round_trip(void **state) {
  static const struct {
    const char *name;
    const char *kind, *source;
    const char *data;
    size_t len; /* 0 with data: strlen */
  } cases[] = {
      {"records", "ccc", "acme", "stream all 1.000\ncount x y 3\n", 0},
      {"empty body", "ccc", "acme", "", 0},
      {"source with spaces and digits", "billing", "acme billing 2", "a b c\n",
       0},
      {"body that looks like a header", "ccc", "acme",
       "usage-state 1 ccc 5:other 3\nabc\n", 0},
      {"binary body", "jasper", "iot", "a\0b\nc\r\n\xff", 8},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    clean_dir();
    char path[512], err[512] = "";
    path_of(path, sizeof(path), "s.state");
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].data);
    int rc = usage_state_save(path, cases[i].kind, cases[i].source,
                              cases[i].data, len, err, sizeof(err));
    if (rc != 0)
      fail_msg("%s: save %d: %s", cases[i].name, rc, err);
    /* only the file itself: the temporary one is gone */
    assert_int_equal(entries("s.state", NULL, 0), 1);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* the header names format, kind, source and body length */
    char *raw = read_raw(path, NULL);
    char header[256];
    snprintf(header, sizeof(header), "usage-state 1 %s %zu:%s %zu\n",
             cases[i].kind, strlen(cases[i].source), cases[i].source, len);
    if (strncmp(raw, header, strlen(header)) != 0)
      fail_msg("%s: header %.60s, want %s", cases[i].name, raw, header);
    free(raw);

    char *data = (char *)1;
    size_t got = 99;
    rc = usage_state_load(path, cases[i].kind, cases[i].source, &data, &got,
                          err, sizeof(err));
    if (rc != 0)
      fail_msg("%s: load %d: %s", cases[i].name, rc, err);
    assert_int_equal(got, len);
    assert_memory_equal(data, cases[i].data, len);
    assert_int_equal(data[len], 0); /* NUL terminated */
    free(data);
    /* still there: a good file is not moved */
    assert_int_equal(entries("s.state", NULL, 0), 1);
  }
}

static void test_replace(void **state) {
  (void)state;
  clean_dir();
  char path[512], err[512];
  path_of(path, sizeof(path), "r.state");
  assert_int_equal(
      usage_state_save(path, "ccc", "acme", "one\n", 4, err, sizeof(err)), 0);
  assert_int_equal(
      usage_state_save(path, "ccc", "acme", "second\n", 7, err, sizeof(err)),
      0);
  char *data;
  size_t len;
  assert_int_equal(
      usage_state_load(path, "ccc", "acme", &data, &len, err, sizeof(err)), 0);
  assert_string_equal(data, "second\n");
  free(data);
  assert_int_equal(entries("r.state", NULL, 0), 1);

  /* a big body */
  size_t big = 3 << 20;
  char *blob = malloc(big);
  for (size_t i = 0; i < big; i++)
    blob[i] = (char)('a' + i % 26);
  assert_int_equal(
      usage_state_save(path, "ccc", "acme", blob, big, err, sizeof(err)), 0);
  assert_int_equal(
      usage_state_load(path, "ccc", "acme", &data, &len, err, sizeof(err)), 0);
  assert_int_equal(len, big);
  assert_memory_equal(data, blob, big);
  free(data);
  free(blob);
}

static void test_missing(void **state) {
  (void)state;
  clean_dir();
  char path[512], err[128] = "untouched";
  path_of(path, sizeof(path), "none.state");
  char *data = (char *)1;
  size_t len = 7;
  assert_int_equal(
      usage_state_load(path, "ccc", "acme", &data, &len, err, sizeof(err)),
      ENOENT);
  assert_null(data);
  assert_int_equal(len, 0);
  assert_string_equal(err, "untouched"); /* a first start is not an error */
  assert_int_equal(entries("none.state", NULL, 0), 0);
}

/* Files that are not ours, another source's, or damaged: EINVAL, renamed
 * to PATH.corrupt-UNIXTIME with their content, and err says why. */
static void test_bad_files(void **state) {
  static char long_header[1024];
  memset(long_header, 'x', sizeof(long_header) - 2);
  long_header[sizeof(long_header) - 2] = '\n';
  static const struct {
    const char *name;
    const char *content;
    size_t len; /* 0: strlen */
    const char *why;
  } cases[] = {
      {"another kind", "usage-state 1 billing 4:acme 0\n", 0,
       "belongs to another source"},
      {"another source", "usage-state 1 ccc 5:other 0\n", 0,
       "belongs to another source"},
      {"a source that starts the same", "usage-state 1 ccc 6:acme-2 0\n", 0,
       "belongs to another source"},
      {"same length, another source", "usage-state 1 ccc 4:acmf 0\n", 0,
       "belongs to another source"},
      {"source length lies", "usage-state 1 ccc 3:acme 0\n", 0,
       "belongs to another source"},
      {"source longer than its length", "usage-state 1 ccc 4:acmeX 0\n", 0,
       "belongs to another source"},
      {"another format version", "usage-state 2 ccc 4:acme 0\n", 0,
       "is not a usage plugin state file"},
      {"garbage", "\x01\x02garbage\n", 0, "is not a usage plugin state file"},
      {"JSON", "{\"watermark\": 1}\n", 0, "is not a usage plugin state file"},
      {"empty file", "", 0, "has no valid header"},
      {"header without newline", "usage-state 1 ccc 4:acme 0", 0,
       "has no valid header"},
      {"header too long", long_header, 0, "has no valid header"},
      {"NUL in the header", "usage-state 1 ccc 4:ac\0me 0\n", 27,
       "has no valid header"},
      {"length not a number", "usage-state 1 ccc 4:acme x\n", 0,
       "has a damaged header"},
      {"length with junk", "usage-state 1 ccc 4:acme 5 \nabcde", 0,
       "has a damaged header"},
      {"length absurd", "usage-state 1 ccc 4:acme 99999999999999999999\n", 0,
       "has a damaged header"},
      {"truncated body", "usage-state 1 ccc 4:acme 10\nabc", 0, "is truncated"},
      {"truncated to the header", "usage-state 1 ccc 4:acme 1\n", 0,
       "is truncated"},
      {"trailing data", "usage-state 1 ccc 4:acme 3\nabcdef", 0,
       "has trailing data"},
      {"two files in one",
       "usage-state 1 ccc 4:acme 2\nab"
       "usage-state 1 ccc 4:acme 2\nab",
       0, "has trailing data"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    clean_dir();
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].content);
    write_raw("b.state", cases[i].content, len);
    char path[512], err[1024] = "";
    path_of(path, sizeof(path), "b.state");
    char *data = (char *)1;
    size_t got = 5;
    int rc =
        usage_state_load(path, "ccc", "acme", &data, &got, err, sizeof(err));
    if (rc != EINVAL)
      fail_msg("%s: status %d, want EINVAL (%s)", cases[i].name, rc, err);
    assert_null(data);
    assert_int_equal(got, 0);
    if (strstr(err, cases[i].why) == NULL || strstr(err, path) == NULL ||
        strstr(err, "starting afresh") == NULL)
      fail_msg("%s: err \"%s\", want \"%s\"", cases[i].name, err, cases[i].why);
    /* moved aside, content kept for a human to look at */
    struct stat sb;
    if (stat(path, &sb) == 0)
      fail_msg("%s: the file is still there", cases[i].name);
    char aside[256];
    assert_int_equal(entries("b.state.corrupt-", aside, sizeof(aside)), 1);
    char *q = aside + strlen("b.state.corrupt-");
    char *end;
    long long when = strtoll(q, &end, 10);
    assert_true(*end == 0 && when > 1600000000);
    if (strstr(err, aside) == NULL)
      fail_msg("%s: err does not name %s: %s", cases[i].name, aside, err);
    char apath[512];
    path_of(apath, sizeof(apath), aside);
    size_t alen;
    char *kept = read_raw(apath, &alen);
    assert_int_equal(alen, len);
    assert_memory_equal(kept, cases[i].content, len);
    free(kept);
  }
}

static void test_save_errors(void **state) {
  (void)state;
  clean_dir();
  char path[512], err[1024] = "";
  /* a directory that does not exist */
  path_of(path, sizeof(path), "no/such/dir/s.state");
  int rc = usage_state_save(path, "ccc", "acme", "x\n", 2, err, sizeof(err));
  assert_int_equal(rc, ENOENT);
  if (strstr(err, "no/such/dir/s.state") == NULL ||
      strstr(err, "No such file or directory") == NULL ||
      strstr(err, "cannot write state file") == NULL)
    fail_msg("err: %s", err);
  char *data;
  size_t len;
  err[0] = 0;
  assert_int_equal(
      usage_state_load(path, "ccc", "acme", &data, &len, err, sizeof(err)),
      ENOENT);

  /* the path is a directory: rename fails, the temporary file is removed */
  clean_dir();
  path_of(path, sizeof(path), "adir");
  assert_int_equal(mkdir(path, 0700), 0);
  char inner[512];
  path_of(inner, sizeof(inner), "adir/keep");
  FILE *f = fopen(inner, "w");
  assert_non_null(f);
  fclose(f);
  rc = usage_state_save(path, "ccc", "acme", "x\n", 2, err, sizeof(err));
  assert_true(rc != 0);
  assert_non_null(strstr(err, path));
  assert_int_equal(entries("adir", NULL, 0), 1); /* no adir.tmp-PID */
  /* loading a directory: an I/O error, not "corrupt": nothing is moved */
  rc = usage_state_load(path, "ccc", "acme", &data, &len, err, sizeof(err));
  assert_int_equal(rc, EISDIR);
  if (strstr(err, "cannot read state file") == NULL ||
      strstr(err, path) == NULL)
    fail_msg("err: %s", err);
  assert_int_equal(entries("adir.corrupt-", NULL, 0), 0);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_true(S_ISDIR(sb.st_mode));
  unlink(inner);
  rmdir(path);

  /* a name too long for the temporary file */
  char huge[5000];
  memset(huge, 'a', sizeof(huge) - 1);
  huge[sizeof(huge) - 1] = 0;
  rc = usage_state_save(huge, "ccc", "acme", "x\n", 2, err, sizeof(err));
  assert_int_equal(rc, ENAMETOOLONG);
  /* a small err buffer is cut, not overflowed */
  char tiny[8];
  path_of(path, sizeof(path), "no/such/dir/s.state");
  rc = usage_state_save(path, "ccc", "acme", "x\n", 2, tiny, sizeof(tiny));
  assert_int_equal(rc, ENOENT);
  assert_int_equal(strlen(tiny), 7);
}

/* Symbolic links planted under the temporary names are never written
 * through (O_EXCL | O_NOFOLLOW): the save takes a free name or fails. */
static void test_save_no_follow(void **state) {
  (void)state;
  clean_dir();
  char path[512], victim[512], link[700], err[1024] = "";
  path_of(path, sizeof(path), "s.state");
  path_of(victim, sizeof(victim), "victim");
  FILE *f = fopen(victim, "w");
  assert_non_null(f);
  fputs("precious\n", f);
  fclose(f);
  for (int n = 1; n <= 40; n++) {
    snprintf(link, sizeof(link), "%s.tmp-%ld-%d", path, (long)getpid(), n);
    assert_int_equal(symlink(victim, link), 0);
  }
  int rc = usage_state_save(path, "ccc", "acme", "x\n", 2, err, sizeof(err));
  if (rc != 0 && rc != EEXIST)
    fail_msg("save: %d %s", rc, err);
  size_t len;
  char *got = read_raw(victim, &len);
  assert_string_equal(got, "precious\n");
  free(got);
  /* enough tries past the planted names: the save works */
  for (int i = 0; i < 4 && rc != 0; i++)
    rc = usage_state_save(path, "ccc", "acme", "x\n", 2, err, sizeof(err));
  assert_int_equal(rc, 0);
  char *data;
  assert_int_equal(
      usage_state_load(path, "ccc", "acme", &data, &len, err, sizeof(err)), 0);
  assert_string_equal(data, "x\n");
  free(data);
  got = read_raw(victim, &len);
  assert_string_equal(got, "precious\n");
  free(got);
  clean_dir();
}

static void test_set_aside(void **state) {
  (void)state;
  clean_dir();
  write_raw("m.state", "usage-state 1 ccc 4:acme 4\nbad\n", 31);
  char path[512], err[1024];
  path_of(path, sizeof(path), "m.state");
  assert_int_equal(
      usage_state_set_aside(path, "has a malformed record", err, sizeof(err)),
      0);
  assert_non_null(strstr(err, "has a malformed record"));
  assert_non_null(strstr(err, ".corrupt-"));
  assert_int_equal(entries("m.state.corrupt-", NULL, 0), 1);
  assert_int_equal(entries("m.state", NULL, 0), 1);
  /* nothing left to move */
  assert_int_equal(
      usage_state_set_aside(path, "has a malformed record", err, sizeof(err)),
      ENOENT);
  assert_non_null(strstr(err, "cannot move it aside"));
}

/* ---- the CCC status-change state body ---- */

static usage_ccc_change_t chg(int n, const char *service, const char *status,
                              double t) {
  usage_ccc_change_t c;
  memset(&c, 0, sizeof(c));
  snprintf(c.service, sizeof(c.service), "%s", service);
  snprintf(c.change, sizeof(c.change), "c%031d", n);
  snprintf(c.status, sizeof(c.status), "%s", status);
  c.changed_on = t;
  return c;
}

static char *format(const usage_ccc_changes_t *c) {
  usage_buf_t b;
  usage_buf_init(&b, 0);
  assert_int_equal(usage_ccc_changes_format(c, &b), 0);
  char *text = strndup(b.data ? b.data : "", b.len);
  usage_buf_free(&b);
  return text;
}

static void test_changes_round_trip(void **state) {
  (void)state;
  usage_ccc_changes_t c = {0};
  size_t added;
  usage_ccc_change_t a[] = {chg(1, SVC, "Blocked", 1714564800.25),
                            chg(2, SVC, "TrialActive", 1714564860),
                            chg(3, SVC, "Archived", 1714564700)};
  assert_int_equal(usage_ccc_changes_merge(&c, SVC, a, 3, 300, NO_CAP, &added),
                   0);
  usage_ccc_change_t b[] = {chg(4, SVC2, "DemoAccount", 1714000000)};
  assert_int_equal(usage_ccc_changes_merge(&c, "all", b, 1, 60, NO_CAP, &added),
                   0);
  /* a stream with nothing seen yet */
  assert_int_equal(
      usage_ccc_changes_merge(&c, SVC2, NULL, 0, 60, NO_CAP, &added), 0);

  char *text = format(&c);
  /* what the lines look like */
  if (strstr(text, "stream " SVC " 1714564860.000\n") == NULL ||
      strstr(text, "seen " SVC " c0000000000000000000000000000001 "
                   "1714564800.250\n") == NULL ||
      strstr(text, "count " SVC " TrialActive 1\n") == NULL ||
      strstr(text, "count " SVC " Archived 1\n") == NULL ||
      strstr(text, "count " SVC2 " CertifiedSecure 0\n") == NULL ||
      strstr(text, "last " SVC " 1714564860.000 TrialActive\n") == NULL ||
      strstr(text, "stream " SVC2 " 0.000\n") == NULL ||
      strstr(text, "stream all 1714000000.000\n") == NULL)
    fail_msg("format:\n%s", text);

  usage_ccc_changes_t d;
  assert_int_equal(usage_ccc_changes_parse(text, strlen(text), &d), 0);
  char *again = format(&d);
  assert_string_equal(text, again);
  assert_int_equal(d.streams_num, c.streams_num);
  assert_int_equal(d.counts_num, c.counts_num);
  assert_int_equal(d.lasts_num, c.lasts_num);
  usage_ccc_stream_t *st = usage_ccc_stream(&d, SVC);
  assert_true(st->watermark == 1714564860);
  assert_int_equal(st->seen_num, 3);

  /* the parsed state goes on counting exactly once */
  usage_ccc_change_t more[] = {chg(2, SVC, "TrialActive", 1714564860),
                               chg(5, SVC, "TrialActive", 1714564900)};
  assert_int_equal(
      usage_ccc_changes_merge(&d, SVC, more, 2, 300, NO_CAP, &added), 0);
  assert_int_equal(added, 1);

  /* through a state file */
  clean_dir();
  char path[512], err[512];
  path_of(path, sizeof(path), "ccc.state");
  assert_int_equal(usage_state_save(path, "ccc", "acme", text, strlen(text),
                                    err, sizeof(err)),
                   0);
  char *data;
  size_t len;
  assert_int_equal(
      usage_state_load(path, "ccc", "acme", &data, &len, err, sizeof(err)), 0);
  usage_ccc_changes_t e;
  assert_int_equal(usage_ccc_changes_parse(data, len, &e), 0);
  char *third = format(&e);
  assert_string_equal(text, third);
  free(third);
  free(data);
  usage_ccc_changes_clear(&e);

  /* an empty state */
  usage_ccc_changes_t empty = {0}, f;
  char *none = format(&empty);
  assert_string_equal(none, "");
  assert_int_equal(usage_ccc_changes_parse(none, 0, &f), 0);
  assert_int_equal(f.streams_num + f.counts_num + f.lasts_num, 0);
  free(none);

  free(again);
  free(text);
  usage_ccc_changes_clear(&c);
  usage_ccc_changes_clear(&d);
}

/* Every malformed record makes the whole body EINVAL and the state empty. */
static void test_changes_parse_bad(void **state) {
  static const struct {
    const char *name;
    const char *body;
  } cases[] = {
      {"unknown record", "watermark all 1.000\n"},
      {"no trailing newline", "stream all 1.000"},
      {"NUL inside", "stream all 1.000\n\0count\n"},
      {"stream: bad key", "stream acme 1.000\n"},
      {"stream: upper-case key",
       "stream 2F1C0A0E9D7B4C6E8A5F3B2D1C0E9F8A 1.000\n"},
      {"stream: dashed key",
       "stream 2f1c0a0e-9d7b-4c6e-8a5f-3b2d1c0e9f8a 1.000\n"},
      {"stream: negative watermark", "stream all -1.000\n"},
      {"stream: NaN", "stream all nan\n"},
      {"stream: infinite", "stream all inf\n"},
      {"stream: not a number", "stream all soon\n"},
      {"stream: junk after the number", "stream all 1.5x\n"},
      {"stream: missing watermark", "stream all\n"},
      {"stream: extra field", "stream all 1.000 2\n"},
      {"seen: GUID too short",
       "seen all c000000000000000000000000000001 1.0\n"},
      {"seen: change \"all\"", "seen all all 1.0\n"},
      {"seen: no time", "seen all " CHG "\n"},
      {"seen: no GUID", "seen all\n"},
      {"a line of spaces", "   \n"},
      {"a tab", "\t\n"},
      {"seen: bad time", "seen all " CHG " x\n"},
      {"seen: junk after the time", "seen all " CHG " 1.0s\n"},
      {"count: for \"all\"", "count all Blocked 1\n"},
      {"count: negative", "count " SVC " Blocked -1\n"},
      {"count: not a number", "count " SVC " Blocked many\n"},
      {"count: junk after the number", "count " SVC " Blocked 12abc\n"},
      {"count: fraction", "count " SVC " Blocked 1.5\n"},
      {"count: too large", "count " SVC " Blocked 99999999999999999999999\n"},
      {"count: bad status", "count " SVC " Blo\"cked 1\n"},
      {"count: status too long",
       "count " SVC " ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGH 1\n"},
      {"count: missing number", "count " SVC " Blocked\n"},
      {"last: for \"all\"", "last all 1.000 Blocked\n"},
      {"last: bad time", "last " SVC " yesterday Blocked\n"},
      {"last: junk after the time", "last " SVC " 1.0z Blocked\n"},
      {"last: bad status", "last " SVC " 1.000 {x}\n"},
      {"last: missing status", "last " SVC " 1.000\n"},
      {"good then bad", "stream all 1.000\ncount " SVC " Blocked 2\nbad\n"},
      {"a line too long", "stream all 1.00000000000000000000000000000000000"
                          "00000000000000000000000000000000000000000\n"},
      /* Accepted before, then written with %.3f into more than the 63
       * characters a field is read with: the next start set the file aside
       * (found by tests/fuzz/fuzz_ccc_state). */
      {"stream: watermark too large", "stream all 8E69\n"},
      {"seen: time too large", "seen all " CHG " 1e300\n"},
      {"last: time too negative", "last " SVC " -1e15 Blocked\n"},
  };
  (void)state;
  int failed = 0;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_ccc_changes_t c;
    size_t len = strlen(cases[i].body);
    if (strcmp(cases[i].name, "NUL inside") == 0)
      len = 24;
    int rc = usage_ccc_changes_parse(cases[i].body, len, &c);
    if (rc != EINVAL) {
      print_error("%s: status %d, want EINVAL\n", cases[i].name, rc);
      failed++;
    }
    if (c.streams != NULL || c.counts != NULL || c.lasts != NULL ||
        c.streams_num + c.counts_num + c.lasts_num != 0) {
      print_error("%s: state not emptied\n", cases[i].name);
      failed++;
    }
    usage_ccc_changes_clear(&c);
  }
  assert_int_equal(failed, 0);
}

/* Lines the format writes and a human might write: accepted. */
static void test_changes_parse_good(void **state) {
  static const struct {
    const char *name;
    const char *body;
    size_t streams, counts, lasts;
  } cases[] = {
      {"empty", "", 0, 0, 0},
      {"blank lines", "\n\nstream all 1.000\n\n", 1, 0, 0},
      {"integer times", "stream all 1714564800\nlast " SVC " 1714564800 -\n", 1,
       0, 1},
      {"last without status", "last " SVC " 0.000 -\n", 0, 0, 1},
      {"unknown state word", "count " SVC " Archived_2 4\n", 0, 1, 0},
      {"seen before its stream",
       "seen " SVC " " CHG " 5.0\nstream " SVC " 5.0\n", 1, 0, 0},
      {"largest count", "count " SVC " Blocked 18446744073709551615\n", 0, 1,
       0},
      {"largest time", "stream all 999999999999999.000\n", 1, 0, 0},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_ccc_changes_t c;
    int rc = usage_ccc_changes_parse(cases[i].body, strlen(cases[i].body), &c);
    if (rc != 0)
      fail_msg("%s: status %d", cases[i].name, rc);
    if (c.streams_num != cases[i].streams || c.counts_num != cases[i].counts ||
        c.lasts_num != cases[i].lasts)
      fail_msg("%s: %zu streams, %zu counts, %zu lasts", cases[i].name,
               c.streams_num, c.counts_num, c.lasts_num);
    usage_ccc_changes_clear(&c);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_replace),
      cmocka_unit_test(test_missing),
      cmocka_unit_test(test_bad_files),
      cmocka_unit_test(test_save_errors),
      cmocka_unit_test(test_save_no_follow),
      cmocka_unit_test(test_set_aside),
      cmocka_unit_test(test_changes_round_trip),
      cmocka_unit_test(test_changes_parse_bad),
      cmocka_unit_test(test_changes_parse_good),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
