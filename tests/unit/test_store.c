/* SPDX-License-Identifier: MIT */
/* test_store: batches, whole-entity commits, removal, the render cache. */
#include "families.h"
#include "store.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

static void test_batch_add(void **state) {
  (void)state;
  usage_batch_t *b = usage_batch_create("acme", "service:1");
  assert_non_null(b);
  assert_string_equal(usage_batch_source(b), "acme");
  assert_string_equal(usage_batch_entity(b), "service:1");
  char name[16] = "service";
  assert_int_equal(
      usage_batch_add(b, FAM_CCC_SERVICE_USERS, 5, name, "s1", NULL), 0);
  strcpy(name, "changed"); /* strings are copied */
  const usage_sample_t *s = usage_batch_sample(b, 0);
  assert_string_equal(s->labels[0], "service");
  assert_string_equal(s->labels[1], "s1");
  assert_int_equal(s->nlabels, 1);
  assert_true(s->value == 5);

  static const struct {
    const char *name;
    int family;
    unsigned nlabels;
    int null_at; /* index of a NULL label string, -1 none */
  } bad[] = {
      {"too many labels", FAM_CCC_SERVICE_USERS, USAGE_MAX_LABELS + 1, -1},
      {"NULL value", FAM_CCC_SERVICE_USERS, 2, 3},
      {"NULL name", FAM_CCC_SERVICE_USERS, 2, 2},
      {"family out of range", FAM_COUNT, 0, -1},
      {"negative family", -1, 0, -1},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    const char *labels[2 * (USAGE_MAX_LABELS + 1)];
    for (unsigned k = 0; k < 2 * bad[i].nlabels; k++)
      labels[k] = (k % 2) ? "v" : "n";
    if (bad[i].null_at >= 0)
      labels[bad[i].null_at] = NULL;
    int st = usage_batch_addv(b, bad[i].family, 1, bad[i].nlabels, labels);
    if (st != EINVAL)
      fail_msg("%s: status %d, want EINVAL", bad[i].name, st);
    if (usage_batch_size(b) != 1)
      fail_msg("%s: batch changed", bad[i].name);
  }
  /* the variadic form: 11 pairs, and a NULL value ending the list early */
  assert_int_equal(usage_batch_add(b, FAM_SOURCE_UP, 1, "a", "1", "b", "2", "c",
                                   "3", "d", "4", "e", "5", "f", "6", "g", "7",
                                   "h", "8", "i", "9", "j", "10", "k", "11",
                                   NULL),
                   EINVAL);
  assert_int_equal(usage_batch_add(b, FAM_SOURCE_UP, 1, "a", NULL, NULL),
                   EINVAL);
  assert_int_equal(usage_batch_size(b), 1);
  /* exactly the maximum is fine */
  assert_int_equal(usage_batch_add(b, FAM_SOURCE_UP, 1, "a", "1", "b", "2", "c",
                                   "3", "d", "4", "e", "5", "f", "6", "g", "7",
                                   "h", "8", "i", "9", "j", "10", NULL),
                   0);
  assert_int_equal(usage_batch_size(b), 2);
  assert_null(usage_batch_sample(b, 2));
  usage_batch_destroy(b);
  usage_batch_destroy(NULL);
}

static usage_batch_t *batch(const char *source, const char *entity, int fam,
                            double v, const char *service) {
  usage_batch_t *b = usage_batch_create(source, entity);
  assert_int_equal(usage_batch_add(b, fam, v, "service", service, NULL), 0);
  return b;
}

static const char *body(usage_store_t *s, usage_body_t **held) {
  *held = usage_store_body(s, USAGE_FMT_TEXT);
  assert_non_null(*held);
  return (*held)->data;
}

static void test_commit_replace(void **state) {
  (void)state;
  usage_store_t *s = usage_store_create();
  uint64_t g0 = usage_store_generation(s);
  usage_batch_t *b = usage_batch_create("acme", "service:1");
  usage_batch_add(b, FAM_CCC_SERVICE_USERS, 5, "service", "s1", NULL);
  usage_batch_add(b, FAM_CCC_SERVICE_MESSAGES, 9, "service", "s1", NULL);
  assert_int_equal(usage_store_commit(s, b), 0);
  assert_int_equal(usage_store_generation(s), g0 + 1);
  assert_int_equal(usage_store_series(s, NULL), 2);

  /* the new commit has no messages: the entity is replaced whole */
  assert_int_equal(usage_store_commit(s, batch("acme", "service:1",
                                               FAM_CCC_SERVICE_USERS, 6, "s1")),
                   0);
  assert_int_equal(usage_store_generation(s), g0 + 2);
  usage_body_t *h;
  const char *text = body(s, &h);
  assert_non_null(strstr(
      text, "usage_ccc_service_users{source=\"acme\",service=\"s1\"} 6\n"));
  assert_null(strstr(text, "} 5\n"));
  assert_null(strstr(text, "usage_ccc_service_messages"));
  assert_int_equal(usage_store_series(s, "acme"), 1);
  usage_body_release(h);

  /* a batch that is destroyed instead of committed changes nothing */
  b = batch("acme", "service:1", FAM_CCC_SERVICE_USERS, 100, "s1");
  usage_batch_destroy(b);
  assert_int_equal(usage_store_generation(s), g0 + 2);
  text = body(s, &h);
  assert_non_null(strstr(text, "service=\"s1\"} 6\n"));
  usage_body_release(h);
  usage_store_destroy(s);
  usage_store_destroy(NULL);
}

static void test_remove(void **state) {
  (void)state;
  usage_store_t *s = usage_store_create();
  usage_store_commit(s, batch("a", "service:1", FAM_CCC_SERVICE_USERS, 1, "1"));
  usage_store_commit(s, batch("a", "service:2", FAM_CCC_SERVICE_USERS, 2, "2"));
  usage_store_commit(s, batch("a", "status:1", FAM_CCC_SERVICE_USERS, 3, "3"));
  usage_store_commit(s, batch("b", "service:1", FAM_CCC_SERVICE_USERS, 4, "4"));
  assert_int_equal(usage_store_series(s, NULL), 4);
  assert_int_equal(usage_store_series(s, "a"), 3);
  assert_int_equal(usage_store_series(s, "c"), 0);
  uint64_t g = usage_store_generation(s);

  usage_store_remove(s, "a", "service:");
  assert_int_equal(usage_store_series(s, "a"), 1);
  assert_int_equal(usage_store_series(s, "b"), 1);
  assert_true(usage_store_generation(s) > g);

  g = usage_store_generation(s);
  usage_store_remove(s, "a", "nothing:");
  assert_int_equal(usage_store_generation(s), g); /* no change, no bump */

  usage_store_remove(s, "a", "");
  assert_int_equal(usage_store_series(s, "a"), 0);
  assert_int_equal(usage_store_series(s, NULL), 1);
  usage_body_t *h;
  const char *text = body(s, &h);
  assert_string_equal(
      text, "# HELP usage_ccc_service_users Users of the CCC service "
            "(TotalUserCount).\n"
            "# TYPE usage_ccc_service_users gauge\n"
            "usage_ccc_service_users{source=\"b\",service=\"4\"} 4\n");
  usage_body_release(h);
  usage_store_destroy(s);
}

static void test_cache(void **state) {
  (void)state;
  usage_store_t *s = usage_store_create();
  usage_store_commit(s, batch("a", "e", FAM_CCC_SERVICE_USERS, 1, "x"));
  usage_body_t *b1 = usage_store_body(s, USAGE_FMT_TEXT);
  usage_body_t *b2 = usage_store_body(s, USAGE_FMT_TEXT);
  assert_ptr_equal(b1, b2); /* rendered once per change */
  assert_ptr_equal(b1->data, b2->data);
  assert_int_equal(b1->generation, usage_store_generation(s));
  usage_body_t *om = usage_store_body(s, USAGE_FMT_OPENMETRICS);
  assert_ptr_not_equal(om, b1);
  assert_non_null(strstr(om->data, "# EOF\n"));
  assert_null(strstr(b1->data, "# EOF"));

  char *copy = strdup(b1->data);
  usage_store_commit(s, batch("a", "e", FAM_CCC_SERVICE_USERS, 2, "x"));
  usage_body_t *b3 = usage_store_body(s, USAGE_FMT_TEXT);
  assert_ptr_not_equal(b3, b1); /* re-rendered after a commit */
  assert_int_equal(b3->generation, b1->generation + 1);
  assert_non_null(strstr(b3->data, "service=\"x\"} 2\n"));
  /* the old body is still valid and unchanged while referenced */
  for (int i = 0; i < 20; i++)
    usage_store_commit(s, batch("a", "e", FAM_CCC_SERVICE_USERS, i, "x"));
  usage_body_t *b4 = usage_store_body(s, USAGE_FMT_TEXT);
  assert_string_equal(b1->data, copy);
  assert_int_equal(b1->len, strlen(copy));
  assert_non_null(strstr(b3->data, "service=\"x\"} 2\n"));
  usage_body_release(b4);
  usage_body_release(b1);
  usage_body_release(b2);
  usage_body_release(b3);
  usage_body_release(om);
  usage_body_release(NULL);
  free(copy);
  usage_store_destroy(s);
}

static void test_grouping(void **state) {
  (void)state;
  usage_store_t *s = usage_store_create();
  usage_batch_t *b;
  /* committed out of order: sorted by source, then entity */
  b = usage_batch_create("zeta", "self");
  usage_batch_add(b, FAM_SOURCE_UP, 0, "kind", "ccc", NULL);
  usage_batch_add(b, FAM_SCRAPE_REQUESTS, 3, "code", "500", NULL);
  usage_store_commit(s, b);
  b = usage_batch_create("alpha", "service:2");
  usage_batch_add(b, FAM_CCC_SERVICE_USERS, 20, "service", "2", NULL);
  usage_store_commit(s, b);
  b = usage_batch_create("alpha", "self");
  usage_batch_add(b, FAM_SCRAPE_REQUESTS, 7, "code", "200", NULL);
  usage_batch_add(b, FAM_SOURCE_UP, 1, "kind", "ccc", NULL);
  usage_store_commit(s, b);
  b = usage_batch_create("alpha", "service:1");
  usage_batch_add(b, FAM_CCC_SERVICE_USERS, 10, "service", "1", NULL);
  usage_batch_add(b, FAM_CCC_SERVICE_USERS, 11, "service", "1b", NULL);
  usage_store_commit(s, b);
  b = usage_batch_create("", "build");
  usage_batch_add(b, FAM_EXPORTER_BUILD_INFO, 1, "version", "9", NULL);
  usage_store_commit(s, b);

  static const char want[] =
      "# HELP usage_ccc_service_users Users of the CCC service "
      "(TotalUserCount).\n"
      "# TYPE usage_ccc_service_users gauge\n"
      "usage_ccc_service_users{source=\"alpha\",service=\"1\"} 10\n"
      "usage_ccc_service_users{source=\"alpha\",service=\"1b\"} 11\n"
      "usage_ccc_service_users{source=\"alpha\",service=\"2\"} 20\n"
      "# HELP usage_source_up 1 if the last scrape of the source succeeded, 0 "
      "otherwise.\n"
      "# TYPE usage_source_up gauge\n"
      "usage_source_up{source=\"alpha\",kind=\"ccc\"} 1\n"
      "usage_source_up{source=\"zeta\",kind=\"ccc\"} 0\n"
      "# HELP usage_scrape_requests_total Upstream HTTP requests answered, by "
      "status code.\n"
      "# TYPE usage_scrape_requests_total counter\n"
      "usage_scrape_requests_total{source=\"alpha\",code=\"200\"} 7\n"
      "usage_scrape_requests_total{source=\"zeta\",code=\"500\"} 3\n"
      "# HELP usage_exporter_build_info Build of the usage plugin (always 1).\n"
      "# TYPE usage_exporter_build_info gauge\n"
      "usage_exporter_build_info{version=\"9\"} 1\n";
  usage_body_t *h = usage_store_body(s, USAGE_FMT_TEXT);
  if (strcmp(h->data, want) != 0)
    fail_msg("got\n%s\nwant\n%s", h->data, want);
  assert_int_equal(h->len, strlen(want));
  usage_body_release(h);
  assert_int_equal(usage_store_series(s, NULL), 8);
  assert_int_equal(usage_store_series(s, ""), 1);
  usage_store_destroy(s);
}

static void test_empty(void **state) {
  (void)state;
  usage_store_t *s = usage_store_create();
  usage_body_t *h = usage_store_body(s, USAGE_FMT_TEXT);
  assert_int_equal(h->len, 0);
  assert_string_equal(h->data, "");
  usage_body_release(h);
  h = usage_store_body(s, USAGE_FMT_OPENMETRICS);
  assert_string_equal(h->data, "# EOF\n");
  usage_body_release(h);
  /* an empty batch commits an entity without samples */
  usage_store_commit(s, usage_batch_create("a", "e"));
  assert_int_equal(usage_store_series(s, NULL), 0);
  assert_int_equal(usage_store_generation(s), 1);
  usage_store_destroy(s);
}

/* A commit of the same samples keeps the entity, the generation and the
 * cached bodies (plain and gzip); a changed value, label or order renders
 * anew. */
static usage_batch_t *two(double v1, const char *svc2, int swap) {
  usage_batch_t *b = usage_batch_create("a", "e");
  if (swap)
    usage_batch_add(b, FAM_CCC_SERVICE_USERS, 2, "service", svc2, NULL);
  usage_batch_add(b, FAM_CCC_SERVICE_USERS, v1, "service", "s1", NULL);
  if (!swap)
    usage_batch_add(b, FAM_CCC_SERVICE_USERS, 2, "service", svc2, NULL);
  usage_batch_add(b, FAM_CCC_SERVICE_MESSAGES, 7, "service", "s1", NULL);
  return b;
}

static void test_unchanged(void **state) {
  (void)state;
  static const struct {
    const char *name;
    double v1;
    const char *svc2;
    int swap;
    int same;
    const char *want; /* a line of the new body */
  } cases[] = {
      {"same samples", 1, "s2", 0, 1, "service=\"s1\"} 1\n"},
      {"changed value", 1.5, "s2", 0, 0, "service=\"s1\"} 1.5\n"},
      {"-0 is not 0", -0.0, "s2", 0, 0, "service=\"s1\"} -0\n"},
      {"0 is not -0", 0.0, "s2", 0, 0, "service=\"s1\"} 0\n"},
      {"changed label", 1, "s3", 0, 0, "service=\"s3\"} 2\n"},
      {"other order", 1, "s2", 1, 0,
       "service=\"s2\"} 2\nusage_ccc_service_users{source=\"a\","
       "service=\"s1\"} 1\n"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_store_t *s = usage_store_create();
    double base = cases[i].v1 == 0 ? -cases[i].v1 : 1; /* the other zero */
    assert_int_equal(usage_store_commit(s, two(base, "s2", 0)), 0);
    uint64_t g = usage_store_generation(s);
    usage_body_t *b1 = usage_store_body(s, USAGE_FMT_TEXT);
    usage_body_t *z1 = usage_store_body_gzip(s, USAGE_FMT_TEXT);
    char *copy = strdup(b1->data);
    assert_int_equal(
        usage_store_commit(s, two(cases[i].v1, cases[i].svc2, cases[i].swap)),
        0);
    usage_body_t *b2 = usage_store_body(s, USAGE_FMT_TEXT);
    usage_body_t *z2 = usage_store_body_gzip(s, USAGE_FMT_TEXT);
    if (cases[i].same) {
      if (b2 != b1 || b2->data != b1->data || z2 != z1 ||
          usage_store_generation(s) != g)
        fail_msg("%s: body re-rendered", cases[i].name);
      assert_string_equal(b2->data, copy);
    } else {
      if (b2 == b1 || usage_store_generation(s) != g + 1)
        fail_msg("%s: body not re-rendered", cases[i].name);
      if (strstr(b2->data, cases[i].want) == NULL)
        fail_msg("%s: %s missing from\n%s", cases[i].name, cases[i].want,
                 b2->data);
      assert_string_equal(b1->data, copy); /* the old one still stands */
    }
    assert_int_equal(usage_store_series(s, NULL), 3);
    free(copy);
    usage_body_release(b1);
    usage_body_release(b2);
    usage_body_release(z1);
    usage_body_release(z2);
    usage_store_destroy(s);
  }
}

/* Samples added in a row with the same labels share the batch's copies;
 * a caller that rewrites its buffer between two adds (same pointers, new
 * text) gets the new text; either way the batch fingerprints the lines as
 * when every sample's labels come from buffers of their own, so the commit
 * of the one after the other changes nothing. */
static void test_same_labels(void **state) {
  (void)state;
  char v[2][16];
  const char *l[4] = {"service", v[0], "user", v[1]};
  usage_batch_t *a = usage_batch_create("a", "e");
  snprintf(v[0], sizeof(v[0]), "s1");
  snprintf(v[1], sizeof(v[1]), "u1");
  assert_int_equal(usage_batch_addv(a, FAM_CCC_USER_ATTACHMENTS, 1, 2, l), 0);
  assert_int_equal(usage_batch_addv(a, FAM_CCC_USER_MESSAGES_SENT, 2, 2, l), 0);
  snprintf(v[1], sizeof(v[1]), "u2"); /* same pointers, other text */
  assert_int_equal(usage_batch_addv(a, FAM_CCC_USER_ATTACHMENTS, 3, 2, l), 0);
  assert_int_equal(usage_batch_addv(a, FAM_CCC_USER_MESSAGES_SENT, 4, 1, l), 0);
  const usage_sample_t *s0 = usage_batch_sample(a, 0);
  const usage_sample_t *s1 = usage_batch_sample(a, 1);
  const usage_sample_t *s2 = usage_batch_sample(a, 2);
  const usage_sample_t *s3 = usage_batch_sample(a, 3);
  assert_ptr_equal(s0->labels, s1->labels);
  assert_string_equal(s1->labels[3], "u1");
  assert_string_equal(s2->labels[1], "s1");
  assert_string_equal(s2->labels[3], "u2");
  assert_int_equal(s3->nlabels, 1);
  assert_string_equal(s3->labels[1], "s1");

  /* the same lines from fresh buffers every time */
  usage_batch_t *b = usage_batch_create("a", "e");
  assert_int_equal(usage_batch_add(b, FAM_CCC_USER_ATTACHMENTS, 1, "service",
                                   "s1", "user", "u1", NULL),
                   0);
  assert_int_equal(usage_batch_add(b, FAM_CCC_USER_MESSAGES_SENT, 2, "service",
                                   "s1", "user", "u1", NULL),
                   0);
  assert_int_equal(usage_batch_add(b, FAM_CCC_USER_ATTACHMENTS, 3, "service",
                                   "s1", "user", "u2", NULL),
                   0);
  assert_int_equal(
      usage_batch_add(b, FAM_CCC_USER_MESSAGES_SENT, 4, "service", "s1", NULL),
      0);
  usage_store_t *st = usage_store_create();
  assert_int_equal(usage_store_commit(st, a), 0);
  uint64_t g = usage_store_generation(st);
  assert_int_equal(usage_store_commit(st, b), 0);
  assert_int_equal(usage_store_generation(st), g); /* nothing changed */
  usage_body_t *body = usage_store_body(st, USAGE_FMT_TEXT);
  assert_non_null(strstr(body->data, "usage_ccc_user_attachments{source=\"a\","
                                     "service=\"s1\",user=\"u2\"} 3\n"));
  usage_body_release(body);
  usage_store_destroy(st);
}

/* gunzip_all inflates every gzip member of data (inflateReset between
 * members, as a reader of multi-member gzip does); a malloc'd string. */
static char *gunzip_all(const char *data, size_t len, size_t *outlen) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
  size_t cap = 1 << 16, n = 0;
  char *out = malloc(cap);
  z.next_in = (Bytef *)data;
  z.avail_in = (uInt)len;
  int rc;
  do {
    if (cap - n < 4096)
      out = realloc(out, cap *= 2);
    z.next_out = (Bytef *)out + n;
    z.avail_out = (uInt)(cap - n - 1);
    rc = inflate(&z, Z_NO_FLUSH);
    assert_true(rc == Z_OK || rc == Z_STREAM_END);
    n = (size_t)((char *)z.next_out - out);
    if (rc == Z_STREAM_END && z.avail_in > 0) {
      assert_int_equal(inflateReset(&z), Z_OK);
      rc = Z_OK;
    }
  } while (rc != Z_STREAM_END);
  inflateEnd(&z);
  out[n] = 0;
  *outlen = n;
  return out;
}

/* The gzip body of many entities (small, large, empty; several families
 * each) inflates to the plain body, in both formats, before and after a
 * commit to one of them. */
static void test_gzip_entities(void **state) {
  (void)state;
  usage_store_t *s = usage_store_create();
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 30; i++) {
      if (round > 0 && i != 7 * round)
        continue; /* later rounds change one entity */
      char ent[32], svc[32];
      snprintf(ent, sizeof(ent), "service:%02d", i);
      usage_batch_t *b = usage_batch_create("src", ent);
      int n = i == 0 ? 0 : i == 14 ? 3000 : i; /* empty, large, small */
      for (int k = 0; k < n; k++) {
        snprintf(svc, sizeof(svc), "s%d-%d", i, k);
        usage_batch_add(
            b, k % 3 ? FAM_CCC_SERVICE_USERS : FAM_CCC_SERVICE_MESSAGES,
            k * 1.5 + round, "service", svc, NULL);
      }
      assert_int_equal(usage_store_commit(s, b), 0);
    }
    for (int fmt = 0; fmt < 2; fmt++) {
      usage_body_t *plain = usage_store_body(s, (usage_format_t)fmt);
      usage_body_t *gz = usage_store_body_gzip(s, (usage_format_t)fmt);
      assert_non_null(plain);
      assert_non_null(gz);
      assert_int_equal(gz->generation, plain->generation);
      size_t n;
      char *text = gunzip_all(gz->data, gz->len, &n);
      if (n != plain->len || memcmp(text, plain->data, n) != 0)
        fail_msg("round %d format %d: gzip body differs", round, fmt);
      assert_true(gz->len < plain->len);
      free(text);
      usage_body_release(plain);
      usage_body_release(gz);
    }
  }
  usage_store_destroy(s);
}

/* Many entities across the hash table: all rendered, in order. */
static void test_many(void **state) {
  (void)state;
  usage_store_t *s = usage_store_create();
  for (int i = 0; i < 5000; i++) {
    char entity[32], svc[32];
    snprintf(entity, sizeof(entity), "service:%05d", i);
    snprintf(svc, sizeof(svc), "%05d", i);
    usage_store_commit(s, batch("src", entity, FAM_CCC_SERVICE_USERS, i, svc));
  }
  assert_int_equal(usage_store_series(s, "src"), 5000);
  usage_body_t *h = usage_store_body(s, USAGE_FMT_TEXT);
  const char *p = h->data;
  int n = 0;
  for (int i = 0; i < 5000; i++) {
    char line[128];
    snprintf(line, sizeof(line),
             "usage_ccc_service_users{source=\"src\",service=\"%05d\"} %d\n", i,
             i);
    const char *q = strstr(p, line);
    if (q == NULL)
      fail_msg("line %d missing or out of order", i);
    p = q + strlen(line);
    n++;
  }
  assert_int_equal(n, 5000);
  usage_body_release(h);
  usage_store_destroy(s);
}

/* A changed entity re-renders only its changed lines and copies the rest
 * from its previous commit: the body must be the bytes a full render of the
 * same batch gives (a fresh store), over random changes of values (-0, 0,
 * NaN, infinities), labels, added and removed series and families that
 * become empty, in a store that holds another entity too. */
typedef struct {
  int family;
  char svc[16], user[16];
  double value;
  int live;
} model_series_t;

static uint64_t rng_next(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static double model_value(uint64_t *rng) {
  static const double special[] = {0.0, -0.0, 1.0, -1.0, 0.5, 1e300, 1e-300};
  uint64_t r = rng_next(rng) % 16;
  if (r < 7)
    return special[r];
  if (r == 7)
    return NAN;
  if (r == 8)
    return (rng_next(rng) % 2) ? INFINITY : -INFINITY;
  return (double)(rng_next(rng) % 100000) / 8;
}

static usage_batch_t *model_batch(const model_series_t *m, size_t n) {
  usage_batch_t *b = usage_batch_create("acme", "users");
  assert_non_null(b);
  for (size_t i = 0; i < n; i++)
    if (m[i].live)
      assert_int_equal(usage_batch_add(b, m[i].family, m[i].value, "service",
                                       m[i].svc, "user", m[i].user, NULL),
                       0);
  return b;
}

static void test_partial_rerender(void **state) {
  (void)state;
  enum { N = 300, ROUNDS = 200 };
  static const int fams[] = {FAM_CCC_SERVICE_USERS, FAM_CCC_USER_MESSAGES_SENT,
                             FAM_SOURCE_UP};
  static model_series_t m[N];
  uint64_t rng = 0x243f6a8885a308d3ULL;
  for (size_t i = 0; i < N; i++) {
    m[i].family = fams[i % 3];
    snprintf(m[i].svc, sizeof(m[i].svc), "s%zu", i % 7);
    snprintf(m[i].user, sizeof(m[i].user), "u%zu", i);
    m[i].value = model_value(&rng);
    m[i].live = i < N / 2;
  }
  usage_store_t *inc = usage_store_create();
  usage_batch_t *other = usage_batch_create("acme", "zz-other");
  usage_batch_add(other, FAM_CCC_SERVICE_USERS, 3, "service", "x", NULL);
  usage_store_commit(inc, other);
  for (int r = 0; r < ROUNDS; r++) {
    unsigned changes = (unsigned)(rng_next(&rng) % 8);
    if (r % 50 == 25) { /* a family becomes empty */
      int f = fams[rng_next(&rng) % 3];
      for (size_t i = 0; i < N; i++)
        if (m[i].family == f)
          m[i].live = 0;
    }
    for (unsigned c = 0; c < changes; c++) {
      model_series_t *x = &m[rng_next(&rng) % N];
      switch (rng_next(&rng) % 5) {
      case 0:
      case 1:
        x->value = model_value(&rng);
        break;
      case 2: /* a label changes */
        snprintf(x->svc, sizeof(x->svc), "s%u", (unsigned)(rng_next(&rng) % 9));
        break;
      case 3: /* added or removed */
        x->live = !x->live;
        break;
      default: /* moves to another family */
        x->family = fams[rng_next(&rng) % 3];
        break;
      }
    }
    if (r % 10 == 9) /* every series changes: nothing to reuse */
      for (size_t i = 0; i < N; i++)
        m[i].value = model_value(&rng);
    assert_int_equal(usage_store_commit(inc, model_batch(m, N)), 0);
    usage_store_t *full = usage_store_create();
    other = usage_batch_create("acme", "zz-other");
    usage_batch_add(other, FAM_CCC_SERVICE_USERS, 3, "service", "x", NULL);
    usage_store_commit(full, other);
    assert_int_equal(usage_store_commit(full, model_batch(m, N)), 0);
    usage_body_t *a = usage_store_body(inc, USAGE_FMT_TEXT);
    usage_body_t *b = usage_store_body(full, USAGE_FMT_TEXT);
    assert_non_null(a);
    assert_non_null(b);
    if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0)
      fail_msg("round %d: body differs from a full render:\n%s\n---\n%s", r,
               a->data, b->data);
    usage_body_release(a);
    usage_body_release(b);
    usage_store_destroy(full);
  }
  usage_store_destroy(inc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_add),
      cmocka_unit_test(test_commit_replace),
      cmocka_unit_test(test_remove),
      cmocka_unit_test(test_cache),
      cmocka_unit_test(test_grouping),
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_many),
      cmocka_unit_test(test_unchanged),
      cmocka_unit_test(test_same_labels),
      cmocka_unit_test(test_gzip_entities),
      cmocka_unit_test(test_partial_rerender),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
