/* SPDX-License-Identifier: MIT */
/* test_jasper_parse: the Jasper usages parser and aggregation over golden
 * fixtures (tests/fixtures/jasper/NAME.json beside NAME.gold, one sample a
 * line in emission order), the device cap, bad and unusual bodies, and
 * error bodies in ISO-8859-1 or HTML. Pure: no server, no collectd. */
#include "api/jasper/jasper.h"
#include "families.h"
#include "store.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

static char *read_fixture(const char *name, size_t *len) {
  char path[256];
  snprintf(path, sizeof(path), "jasper/%s", name);
  return tu_read_fixture(path, len);
}

/* ---- parser over fixtures ------------------------------------------- */

static void test_fixtures(void **state) {
  (void)state;
  static const struct {
    const char *name;
    const char *pages[3];
    int per_device;
    size_t max_devices;
    usage_jasper_type_t type;
    const char *gold;
  } cases[] = {
      {"doc sample, corrected",
       {"doc_sample_corrected.json"},
       1,
       100,
       USAGE_JASPER_ALL,
       "doc_sample_corrected.gold"},
      {"two pages, device in two zones, empty zone",
       {"page1.json", "page2.json"},
       0,
       100,
       USAGE_JASPER_ALL,
       "two_pages.gold"},
      {"usageType SMS: other types not published",
       {"usage_type_sms.json"},
       1,
       100,
       USAGE_JASPER_SMS,
       "usage_type_sms.gold"},
      {"lenient: key case, nulls, numbers as strings, yyyy-MM-ddZ",
       {"lenient.json"},
       1,
       100,
       USAGE_JASPER_ALL,
       "lenient.gold"},
      {"quirks mode: key case per page and device, nulls, strings, "
       "cycleStartDate as a timestamp then yyyy-MM-ddZ",
       {"quirks1.json", "quirks2.json"},
       1,
       100,
       USAGE_JASPER_ALL,
       "quirks.gold"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_jasper_agg_t *a =
        usage_jasper_agg_create(cases[i].per_device, cases[i].max_devices);
    for (int p = 0; p < 3 && cases[i].pages[p]; p++) {
      size_t len;
      char *body = read_fixture(cases[i].pages[p], &len);
      usage_jasper_page_t pg;
      int rc = usage_jasper_parse_page(a, body, len, &pg);
      if (rc != 0)
        fail_msg("%s: page %s: %s", cases[i].name, cases[i].pages[p], pg.error);
      assert_int_equal(pg.page_number, p + 1);
      assert_int_equal(pg.has_last_page, 1);
      free(body);
    }
    usage_batch_t *b = usage_batch_create("iot", "rate_plan:x");
    const char *plan = strcmp(cases[i].gold, "doc_sample_corrected.gold") == 0
                           ? "Monthly-Flexible-Pool"
                           : "P";
    assert_int_equal(usage_jasper_agg_emit(a, plan, cases[i].type, b), 0);
    char *got = tu_batch_lines(b);
    char *want = read_fixture(cases[i].gold, NULL);
    if (strcmp(got, want) != 0)
      fail_msg("%s:\n--- got\n%s--- want\n%s", cases[i].name, got, want);
    free(got);
    free(want);
    usage_batch_destroy(b);
    usage_jasper_agg_destroy(a);
  }
}

/* The page set of page1+page2 with PerDevice and MaxDevices 2: devices 111
 * (two zones) and 222 keep their series, 333 is omitted; zone totals still
 * count it. */
static void test_max_devices(void **state) {
  (void)state;
  usage_jasper_agg_t *a = usage_jasper_agg_create(1, 2);
  const char *pages[] = {"page1.json", "page2.json"};
  for (int p = 0; p < 2; p++) {
    size_t len;
    char *body = read_fixture(pages[p], &len);
    usage_jasper_page_t pg;
    assert_int_equal(usage_jasper_parse_page(a, body, len, &pg), 0);
    assert_int_equal(pg.devices, p == 0 ? 2 : 1);
    free(body);
  }
  assert_int_equal(usage_jasper_agg_devices_kept(a), 2);
  assert_int_equal(usage_jasper_agg_devices_omitted(a), 1);
  assert_int_equal(usage_jasper_agg_zones(a), 3);
  usage_batch_t *b = usage_batch_create("iot", "e");
  assert_int_equal(usage_jasper_agg_emit(a, "P", USAGE_JASPER_DATA, b), 0);
  char *got = tu_batch_lines(b);
  const char *want =
      "usage_jasper_rate_plan_info{rate_plan=\"P\",version=\"3\",account_id="
      "\"42\",account_name=\"Fleet État\"} 1\n"
      "usage_jasper_zone_devices{rate_plan=\"P\",zone=\"EU\"} 3\n"
      "usage_jasper_zone_data_bytes_total{rate_plan=\"P\",zone=\"EU\"} 1300\n"
      "usage_jasper_zone_devices{rate_plan=\"P\",zone=\"US\"} 1\n"
      "usage_jasper_zone_data_bytes_total{rate_plan=\"P\",zone=\"US\"} 5\n"
      "usage_jasper_zone_devices{rate_plan=\"P\",zone=\"Asia\"} 0\n"
      "usage_jasper_zone_data_bytes_total{rate_plan=\"P\",zone=\"Asia\"} 0\n"
      "usage_jasper_device_data_bytes_total{rate_plan=\"P\",zone=\"EU\","
      "iccid=\"111\"} 100\n"
      "usage_jasper_device_data_bytes_total{rate_plan=\"P\",zone=\"EU\","
      "iccid=\"222\"} 200\n"
      "usage_jasper_device_data_bytes_total{rate_plan=\"P\",zone=\"US\","
      "iccid=\"111\"} 5\n"
      "usage_jasper_devices_omitted{rate_plan=\"P\"} 1\n";
  assert_string_equal(got, want);
  free(got);
  usage_batch_destroy(b);

  /* reset: a new page set starts from nothing, memory reused */
  usage_jasper_agg_reset(a);
  assert_int_equal(usage_jasper_agg_zones(a), 0);
  assert_int_equal(usage_jasper_agg_devices_kept(a), 0);
  assert_int_equal(usage_jasper_agg_devices_omitted(a), 0);
  usage_jasper_agg_destroy(a);
}

/* A device listed twice in one zone (two pages) keeps one series holding
 * the sum, like the zone total. */
static void test_duplicate_device(void **state) {
  (void)state;
  usage_jasper_agg_t *a = usage_jasper_agg_create(1, 10);
  const char *body = "{\"zones\":[{\"zone\":\"Z\",\"devices\":["
                     "{\"deviceId\":\"9\",\"usage\":{\"dataUsage\":4}},"
                     "{\"deviceId\":\"9\",\"usage\":{\"dataUsage\":6}}]}],"
                     "\"lastPage\":true}";
  usage_jasper_page_t pg;
  assert_int_equal(usage_jasper_parse_page(a, body, strlen(body), &pg), 0);
  assert_int_equal(pg.devices, 1);
  usage_batch_t *b = usage_batch_create("iot", "e");
  assert_int_equal(usage_jasper_agg_emit(a, "P", USAGE_JASPER_DATA, b), 0);
  char *got = tu_batch_lines(b);
  assert_non_null(strstr(got, "usage_jasper_zone_devices{rate_plan=\"P\","
                              "zone=\"Z\"} 2\n"));
  assert_non_null(strstr(got, "usage_jasper_zone_data_bytes_total{rate_plan="
                              "\"P\",zone=\"Z\"} 10\n"));
  assert_non_null(strstr(got, "usage_jasper_device_data_bytes_total{rate_plan"
                              "=\"P\",zone=\"Z\",iccid=\"9\"} 10\n"));
  free(got);
  usage_batch_destroy(b);
  usage_jasper_agg_destroy(a);
}

/* ---- bad and unusual bodies ----------------------------------------- */

static char *deep_body(void) {
  char *b = malloc(20000);
  strcpy(b, "{\"x\":");
  size_t n = strlen(b);
  for (int i = 0; i < 5000; i++)
    b[n++] = '[';
  for (int i = 0; i < 5000; i++)
    b[n++] = ']';
  b[n++] = '}';
  b[n] = 0;
  return b;
}

static void test_bodies(void **state) {
  (void)state;
  static const struct {
    const char *name;
    const char *body; /* NULL: the deep body */
    int rc;
    const char *error; /* substring of page.error */
    int has_last, last;
    long page_number;
    unsigned bad_fields;
  } cases[] = {
      {"empty body", "", EINVAL, "empty body", 0, 0, -1, 0},
      {"array at top", "[1,2]", EINVAL, "not a JSON object", 0, 0, -1, 0},
      /* A bare top-level value used to read the parse context before its
       * array (found by tests/fuzz/fuzz_jasper_page). */
      {"number at top", "1", EINVAL, "not a JSON object", 0, 0, -1, 0},
      {"string at top", "\"x\"", EINVAL, "not a JSON object", 0, 0, -1, 0},
      {"true at top", "true", EINVAL, "not a JSON object", 0, 0, -1, 0},
      {"null at top", "null", EINVAL, "not a JSON object", 0, 0, -1, 0},
      {"object at top", "{}", 0, "", 0, 0, -1, 0},
      {"truncated", "{\"zones\":[{\"zone\":\"A\"", EINVAL, "invalid JSON", 0, 0,
       -1, 0},
      {"doc sample verbatim", "@doc_sample_verbatim.json", EINVAL,
       "invalid JSON", 0, 0, -1, 0},
      {"nested too deeply", NULL, EINVAL, "nested too deeply", 0, 0, -1, 0},
      {"usage value is an object (wrongtype)",
       "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"deviceId\":\"1\","
       "\"usage\":{\"dataUsage\":{\"value\":5}}}]}]}",
       EINVAL, "dataUsage: wrong type", 0, 0, -1, 0},
      {"usage value is text",
       "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"deviceId\":\"1\","
       "\"usage\":{\"smsMOUsage\":\"lots\"}}]}]}",
       EINVAL, "smsMOUsage: wrong type", 0, 0, -1, 0},
      {"usage value is a boolean",
       "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"deviceId\":\"1\","
       "\"usage\":{\"voiceMTUsage\":true}}]}]}",
       EINVAL, "voiceMTUsage: wrong type", 0, 0, -1, 0},
      {"negative usage",
       "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"deviceId\":\"1\","
       "\"usage\":{\"dataUsage\":-5}}]}]}",
       EINVAL, "dataUsage: negative", 0, 0, -1, 0},
      {"zones is a string", "{\"zones\":\"none\"}", EINVAL, "zones: wrong type",
       0, 0, -1, 0},
      {"zones is an object", "{\"zones\":{}}", EINVAL, "zones: wrong type", 0,
       0, -1, 0},
      {"zone element is a number", "{\"zones\":[3]}", EINVAL,
       "expected zone objects", 0, 0, -1, 0},
      {"zone without a name",
       "{\"zones\":[{\"devices\":[{\"deviceId\":\"1\"}]}]}", EINVAL,
       "zone without a name", 0, 0, -1, 0},
      {"errorCode in a 200 body",
       "{\"errorCode\":\"10000013\",\"errorMessage\":\"Invalid ratePlan.\"}",
       EINVAL, "errorCode 10000013", 0, 0, -1, 0},
      {"zones null, lastPage true", "{\"zones\":null,\"lastPage\":true}", 0, "",
       1, 1, -1, 0},
      {"no zones, lastPage missing", "{\"pageNumber\":4}", 0, "", 0, 0, 4, 0},
      {"lastPage as a string", "{\"zones\":[],\"lastPage\":\"false\"}", 0, "",
       1, 0, -1, 0},
      {"lastPage bad", "{\"lastPage\":\"maybe\"}", EINVAL,
       "lastPage: expected true or false", 0, 0, -1, 0},
      {"device without deviceId: zone only",
       "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"usage\":{\"dataUsage\":1}},"
       "{\"deviceId\":{\"x\":1},\"usage\":{\"dataUsage\":2}}]}],"
       "\"lastPage\":true}",
       0, "", 1, 1, -1, 2},
      {"deviceId too long",
       "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"deviceId\":"
       "\"12345678901234567890123456789012345\",\"usage\":{\"dataUsage\":1}}]}]}",
       0, "", 0, 0, -1, 1},
      /* A 200 answer the parser cannot read is refused, not taken as an
       * empty rate plan or as devices without usage: a wrong (zero)
       * figure is worse than a missing one. */
      {"no known key at top", "{\"Zonez\":[],\"foo\":1}", EINVAL,
       "body: none of the known fields", 0, 0, -1, 0},
      {"error message without a code", "{\"errorMessage\":\"Invalid\"}",
       EINVAL, "body: none of the known fields", 0, 0, -1, 0},
      {"no entry names a usage field",
       "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"deviceId\":\"1\","
       "\"usage\":{\"data_usage\":5}},{\"deviceId\":\"2\"}]}],"
       "\"lastPage\":true}",
       EINVAL, "devices: no entry names a usage field", 0, 0, -1, 0},
      {"a null usage field is named",
       "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"deviceId\":\"1\","
       "\"usage\":{\"dataUsage\":null}},{\"deviceId\":\"2\"}]}],"
       "\"lastPage\":true}",
       0, "", 1, 1, -1, 0},
      {"keys in any case", "{\"LASTPAGE\":true,\"PageNumber\":2}", 0, "", 1, 1,
       2, 0},
      {"huge number",
       "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"deviceId\":\"1\","
       "\"usage\":{\"dataUsage\":1e30}}]}]}",
       EINVAL, "dataUsage: negative or out of range", 0, 0, -1, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_jasper_agg_t *a = usage_jasper_agg_create(1, 10);
    char *body = NULL;
    size_t len;
    if (cases[i].body == NULL)
      body = deep_body();
    else if (cases[i].body[0] == '@')
      body = read_fixture(cases[i].body + 1, &len);
    else
      body = strdup(cases[i].body);
    len = strlen(body);
    usage_jasper_page_t pg;
    int rc = usage_jasper_parse_page(a, body, len, &pg);
    if (rc != cases[i].rc)
      fail_msg("%s: rc %d, want %d (%s)", cases[i].name, rc, cases[i].rc,
               pg.error);
    if (strstr(pg.error, cases[i].error) == NULL)
      fail_msg("%s: error \"%s\", want \"%s\"", cases[i].name, pg.error,
               cases[i].error);
    if (rc == 0) {
      assert_int_equal(pg.has_last_page, cases[i].has_last);
      assert_int_equal(pg.last_page, cases[i].last);
      assert_int_equal(pg.page_number, cases[i].page_number);
      if (pg.bad_fields != cases[i].bad_fields)
        fail_msg("%s: %u bad fields, want %u", cases[i].name, pg.bad_fields,
                 cases[i].bad_fields);
    }
    free(body);
    usage_jasper_agg_destroy(a);
  }
}

/* A device without an id still counts in its zone. */
static void test_device_without_id(void **state) {
  (void)state;
  usage_jasper_agg_t *a = usage_jasper_agg_create(1, 10);
  const char *body =
      "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"usage\":{\"dataUsage\":1}},"
      "{\"deviceId\":\"7\",\"usage\":{\"dataUsage\":2}}]}]}";
  usage_jasper_page_t pg;
  assert_int_equal(usage_jasper_parse_page(a, body, strlen(body), &pg), 0);
  assert_int_equal(pg.bad_fields, 1);
  usage_batch_t *b = usage_batch_create("iot", "e");
  assert_int_equal(usage_jasper_agg_emit(a, "P", USAGE_JASPER_DATA, b), 0);
  char *got = tu_batch_lines(b);
  assert_non_null(strstr(got, "zone=\"A\"} 2\n"));
  assert_non_null(strstr(got, "usage_jasper_zone_data_bytes_total{rate_plan="
                              "\"P\",zone=\"A\"} 3\n"));
  assert_non_null(strstr(got, "iccid=\"7\"} 2\n"));
  free(got);
  usage_batch_destroy(b);
  usage_jasper_agg_destroy(a);
}

/* A page's length is its entries, usable or not (paging without
 * lastPage stops at a short page). */
static void test_page_entries(void **state) {
  (void)state;
  usage_jasper_agg_t *a = usage_jasper_agg_create(0, 10);
  const char *body =
      "{\"zones\":[{\"zone\":\"A\",\"devices\":[{\"usage\":{\"dataUsage\":1}},"
      "{\"deviceId\":\"\",\"usage\":{}},"
      "{\"deviceId\":\"7\",\"usage\":{\"dataUsage\":2}}]}]}";
  usage_jasper_page_t pg;
  assert_int_equal(usage_jasper_parse_page(a, body, strlen(body), &pg), 0);
  assert_int_equal(pg.entries, 3);
  assert_int_equal(pg.devices, 1);
  assert_int_equal(pg.bad_fields, 2);
  usage_jasper_agg_destroy(a);
}

/* cycleStartDate as a date, a date with Z, a timestamp, or text. */
static void test_cycle_start(void **state) {
  (void)state;
  static const struct {
    const char *json, *want;
  } cases[] = {
      {"\"2024-05-01\"", "2024-05-01"},
      {"\"2024-05-01Z\"", "2024-05-01"},
      {"\"2024-05-01T00:00:00Z\"", "2024-05-01"},
      {"\"2024-05-01T00:00:00.000-07:00\"", "2024-05-01"},
      {"\"2024-05-01T00:00:00.0000000+00:00\"", "2024-05-01"},
      {"\"May 2024\"", "May 2024"},
      {"null", ""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_jasper_agg_t *a = usage_jasper_agg_create(0, 10);
    char body[256];
    snprintf(body, sizeof(body), "{\"CycleStartDate\":%s,\"zones\":[]}",
             cases[i].json);
    usage_jasper_page_t pg;
    assert_int_equal(usage_jasper_parse_page(a, body, strlen(body), &pg), 0);
    if (strcmp(usage_jasper_agg_cycle(a), cases[i].want) != 0)
      fail_msg("%s: cycle \"%s\"", cases[i].json, usage_jasper_agg_cycle(a));
    usage_jasper_agg_destroy(a);
  }
}

/* An errorCode sent as a number is an errorCode. */
static void test_error_code_number(void **state) {
  (void)state;
  usage_jasper_agg_t *a = usage_jasper_agg_create(0, 10);
  const char *body = "{\"errorCode\":10000001,\"errorMessage\":\"x\"}";
  usage_jasper_page_t pg;
  assert_int_equal(usage_jasper_parse_page(a, body, strlen(body), &pg), EINVAL);
  assert_string_equal(pg.error_code, "10000001");
  usage_jasper_agg_destroy(a);
}

#define DEV(id, data, smo)                                                     \
  "{\"deviceId\":\"" id "\",\"usage\":{\"dataUsage\":" data                    \
  ",\"smsMOUsage\":" smo "}}"

/* A device repeated on a later page (the list moved under the offset)
 * counts once, with its larger figures, in the zone and in its series. */
static void test_device_on_two_pages(void **state) {
  (void)state;
  usage_jasper_agg_t *a = usage_jasper_agg_create(1, 10);
  const char *pages[] = {"{\"zones\":[{\"zone\":\"Z\",\"devices\":[" DEV(
                             "1", "10", "5") "," DEV("2", "20", "1") "]}]}",
                         "{\"zones\":[{\"zone\":\"Z\",\"devices\":[" DEV(
                             "2", "25", "0") "," DEV("3", "30", "0") "]}]}"};
  for (int p = 0; p < 2; p++) {
    usage_jasper_page_t pg;
    assert_int_equal(
        usage_jasper_parse_page(a, pages[p], strlen(pages[p]), &pg), 0);
  }
  usage_batch_t *b = usage_batch_create("iot", "e");
  assert_int_equal(usage_jasper_agg_emit(a, "P", USAGE_JASPER_ALL, b), 0);
  char *got = tu_batch_lines(b);
  static const char *const want[] = {
      "usage_jasper_zone_devices{rate_plan=\"P\",zone=\"Z\"} 3\n",
      "usage_jasper_zone_data_bytes_total{rate_plan=\"P\",zone=\"Z\"} 65\n",
      "usage_jasper_zone_sms_total{rate_plan=\"P\",zone=\"Z\",direction=\"mo\"}"
      " "
      "6\n",
      "usage_jasper_device_data_bytes_total{rate_plan=\"P\",zone=\"Z\",iccid="
      "\"2\"} 25\n",
      "usage_jasper_device_sms_total{rate_plan=\"P\",zone=\"Z\",iccid=\"2\","
      "direction=\"mo\"} 1\n"};
  for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
    if (strstr(got, want[i]) == NULL)
      fail_msg("want %s in\n%s", want[i], got);
  assert_int_equal(usage_jasper_agg_devices_kept(a), 3);
  free(got);
  usage_batch_destroy(b);
  usage_jasper_agg_destroy(a);
}

/* hold_scrape parses one page into a fresh aggregation, holds it against h
 * and returns the zone's data figure; *held gets the figures held. */
static uint64_t hold_scrape(usage_jasper_hold_t *h, const char *cycle,
                            const char *body, uint64_t *held, char **rendered) {
  usage_jasper_agg_t *a = usage_jasper_agg_create(1, 10);
  usage_jasper_page_t pg;
  assert_int_equal(usage_jasper_parse_page(a, body, strlen(body), &pg), 0);
  assert_int_equal(usage_jasper_agg_hold(a, h, cycle, held), 0);
  usage_batch_t *b = usage_batch_create("iot", "e");
  assert_int_equal(usage_jasper_agg_emit(a, "P", USAGE_JASPER_DATA, b), 0);
  *rendered = tu_batch_lines(b);
  uint64_t v = 0;
  const char *z = strstr(*rendered, "usage_jasper_zone_data_bytes_total");
  assert_non_null(z);
  v = strtoull(strchr(z, ' ') + 1, NULL, 10);
  usage_batch_destroy(b);
  usage_jasper_agg_destroy(a);
  return v;
}

/* Inside one cycle a counter never goes down; a new cycle may reset it;
 * an unknown cycle holds nothing. */
static void test_hold(void **state) {
  (void)state;
  usage_jasper_hold_t *h = usage_jasper_hold_create();
  const char *high = "{\"zones\":[{\"zone\":\"Z\",\"devices\":[" DEV(
      "1", "100", "0") "," DEV("2", "50", "0") "]}]}";
  const char *low = "{\"zones\":[{\"zone\":\"Z\",\"devices\":[" DEV(
      "1", "100", "0") "," DEV("2", "20", "0") "]}]}";
  uint64_t held;
  char *got;
  assert_int_equal(hold_scrape(h, "2024-05-01", high, &held, &got), 150);
  assert_int_equal(held, 0);
  free(got);
  /* same cycle, lower sum: the previous figures stay */
  assert_int_equal(hold_scrape(h, "2024-05-01", low, &held, &got), 150);
  assert_int_equal(held, 2); /* the zone's and device 2's data */
  assert_non_null(strstr(got, "iccid=\"2\"} 50\n"));
  free(got);
  /* a new cycle: the lower figures are published */
  assert_int_equal(hold_scrape(h, "2024-06-01", low, &held, &got), 120);
  assert_int_equal(held, 0);
  assert_non_null(strstr(got, "iccid=\"2\"} 20\n"));
  free(got);
  /* unknown cycle: nothing held */
  assert_int_equal(hold_scrape(h, "", high, &held, &got), 150);
  free(got);
  assert_int_equal(hold_scrape(h, "", low, &held, &got), 120);
  assert_int_equal(held, 0);
  free(got);
  usage_jasper_hold_destroy(h);
  usage_jasper_hold_destroy(NULL);
}

/* A zone missing from one answer (its only device left the plan) is still
 * remembered: when it comes back lower in the same cycle (a new device),
 * its published figure is held, not lowered (found by test_jasper_model,
 * seed 39). */
static void test_hold_zone_missing_once(void **state) {
  (void)state;
  usage_jasper_hold_t *h = usage_jasper_hold_create();
  const char *z1 =
      "{\"zones\":[{\"zone\":\"Z\",\"devices\":[" DEV("1", "100", "0") "]}]}";
  const char *y = "{\"zones\":[{\"zone\":\"Y\",\"devices\":[" DEV(
      "2", "10", "0") "]}]}";
  const char *z3 =
      "{\"zones\":[{\"zone\":\"Z\",\"devices\":[" DEV("3", "40", "0") "]}]}";
  uint64_t held;
  char *got;
  assert_int_equal(hold_scrape(h, "2024-05-01", z1, &held, &got), 100);
  free(got);
  assert_int_equal(hold_scrape(h, "2024-05-01", y, &held, &got), 10);
  assert_int_equal(held, 0);
  free(got);
  assert_int_equal(hold_scrape(h, "2024-05-01", z3, &held, &got), 100);
  assert_int_equal(held, 1); /* the zone's data; device 3 is new */
  assert_non_null(strstr(got, "iccid=\"3\"} 40\n"));
  free(got);
  /* Y, missing from that answer, is still held too */
  assert_int_equal(hold_scrape(h, "2024-05-01",
                               "{\"zones\":[{\"zone\":\"Y\",\"devices\":[" DEV(
                                   "4", "3", "0") "]}]}",
                               &held, &got),
                   10);
  free(got);
  /* a new cycle forgets them all */
  assert_int_equal(hold_scrape(h, "2024-06-01", z3, &held, &got), 40);
  assert_int_equal(held, 0);
  free(got);
  assert_int_equal(hold_scrape(h, "2024-06-01",
                               "{\"zones\":[{\"zone\":\"Y\",\"devices\":[" DEV(
                                   "4", "3", "0") "]}]}",
                               &held, &got),
                   3);
  free(got);
  usage_jasper_hold_destroy(h);
}

/* Sums that would pass 2^64 - 1 refuse the page (ERANGE), on one page or
 * across pages, and never wrap. */
static void test_overflow(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"{\"zones\":[{\"zone\":\"Z\",\"devices\":[" DEV(
           "1", "18000000000000000000",
           "0") "," DEV("2", "18000000000000000000", "0") "]}]}",
       NULL},
      {"{\"zones\":[{\"zone\":\"Z\",\"devices\":[" DEV(
           "1", "18000000000000000000", "0") "]}]}",
       "{\"zones\":[{\"zone\":\"Z\",\"devices\":[{\"usage\":{\"dataUsage\":"
       "\"18000000000000000000\"}}]}]}"},
      {"{\"zones\":[{\"zone\":\"Z\",\"devices\":[" DEV(
           "1", "18446744073709551615", "0") "," DEV("1", "1", "0") "]}]}",
       NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    for (int per_device = 0; per_device < 2; per_device++) {
      usage_jasper_agg_t *a = usage_jasper_agg_create(per_device, 10);
      usage_jasper_page_t pg;
      int rc =
          usage_jasper_parse_page(a, cases[i][0], strlen(cases[i][0]), &pg);
      if (cases[i][1] != NULL) {
        assert_int_equal(rc, 0);
        rc = usage_jasper_parse_page(a, cases[i][1], strlen(cases[i][1]), &pg);
      }
      if (rc != ERANGE)
        fail_msg("case %zu: rc %d (%s)", i, rc, pg.error);
      assert_non_null(strstr(pg.error, "passes 2^64 - 1"));
      usage_jasper_agg_destroy(a);
    }
  }
}

/* ---- error bodies ------------------------------------------------- */

static void test_api_error(void **state) {
  (void)state;
  char code[32], msg[128];
  size_t len;
  char *latin1 = read_fixture("error_latin1.json", &len);
  usage_jasper_api_error(latin1, len, code, sizeof(code), msg, sizeof(msg));
  assert_string_equal(code, "30000001");
  assert_string_equal(msg, "Erreur inconnue du serveur: caract?re ?");
  free(latin1);

  char *html = read_fixture("error_html.html", &len);
  usage_jasper_api_error(html, len, code, sizeof(code), msg, sizeof(msg));
  assert_string_equal(code, "");
  assert_string_equal(msg, "");
  free(html);

  static const struct {
    const char *body, *code, *msg;
  } cases[] = {
      {"{\"errorCode\":10000013,\"errorMessage\":\"Invalid ratePlan.\"}",
       "10000013", "Invalid ratePlan."},
      {"{\"errorMessage\":\"a\\nb\",\"errorCode\":\"10000442\"}", "10000442",
       "a b"},
      {"{\"errorCode\":\"1000", "", ""},
      {"", "", ""},
      {"{\"nested\":{\"errorCode\":\"1\"}}", "", ""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    usage_jasper_api_error(cases[i].body, strlen(cases[i].body), code,
                           sizeof(code), msg, sizeof(msg));
    assert_string_equal(code, cases[i].code);
    assert_string_equal(msg, cases[i].msg);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixtures),
      cmocka_unit_test(test_max_devices),
      cmocka_unit_test(test_duplicate_device),
      cmocka_unit_test(test_bodies),
      cmocka_unit_test(test_device_without_id),
      cmocka_unit_test(test_page_entries),
      cmocka_unit_test(test_cycle_start),
      cmocka_unit_test(test_error_code_number),
      cmocka_unit_test(test_device_on_two_pages),
      cmocka_unit_test(test_hold),
      cmocka_unit_test(test_hold_zone_missing_once),
      cmocka_unit_test(test_overflow),
      cmocka_unit_test(test_api_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
