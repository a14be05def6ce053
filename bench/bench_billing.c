/* SPDX-License-Identifier: MIT */
/* bench_billing: speed and memory of the billing parser + aggregator over
 * generated pages of 1000 records shaped like the vendor's, against yajl's
 * raw parse of the same bytes with no-op callbacks (the floor). Each run
 * happens in a child process so its peak RSS is its own.
 *   bench_billing [pages...]      default: 10 100 */
#include "api/billing/billing.h"
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_parse.h>

#define RECORDS 1000
#define T0 1714564800LL

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const classes[] = {"DATA", "NATIONAL", "MOBILE", "SMS",
                                      "INTERNATIONAL"};
static const int customers[] = {1001, 1002, 1003, 1004, 1017};

/* page builds page p (ids and event dates continue from page to page). */
static void page(usage_buf_t *b, long p) {
  usage_buf_reset(b);
  usage_buf_putc(b, '[');
  for (long i = 0; i < RECORDS; i++) {
    long id = p * RECORDS + i + 1;
    unsigned long h = (unsigned long)id * 2654435761u;
    time_t ev = (time_t)(T0 + id);
    struct tm tm;
    char ts[32];
    gmtime_r(&ev, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *cls = classes[h % 5];
    usage_buf_printf(
        b,
        "%s{\"id\":%ld,\"customerId\":%d,\"siteId\":%d,\"billRunId\":1101,"
        "\"eventDate\":\"%s\",\"productReference\":\"DATA-UK-%luGB\","
        "\"serviceId\":\"44770090%05lu\",\"destination\":\"United Kingdom - "
        "Mobile\",\"chargeGroupId\":%lu,\"callClass\":\"%s\","
        "\"oneOffQuantity\":0,\"dataQuantity\":%lu.%03lu,"
        "\"durationQuantity\":%lu,\"sellPrice\":%lu.%04lu,"
        "\"preDiscountedSellPrice\":%lu.%04lu,\"buyPrice\":%lu.%04lu,"
        "\"ratedBuyPrice\":%lu.%04lu,\"profit\":0.1000,"
        "\"profitPercentage\":66.67,\"marginPercentage\":40.00,"
        "\"timeBand\":\"PEAK\",\"usageProductId\":101,"
        "\"usageDirection\":\"%s\",\"isdn\":false,"
        "\"additionalInfoGeneral\":\"CLI 4477009%05lu\","
        "\"additionalInfoElectronic\":\"APN internet.sim1\","
        "\"supplierAccountId\":2,\"fileName\":\"CDR_20240501_01.csv\","
        "\"loadedDate\":\"2024-05-01\",\"parserName\":\"mobile-data-v2\","
        "\"fileType\":\"DATA\"}",
        i ? "," : "", id, customers[(h >> 8) % 5],
        customers[(h >> 8) % 5] * 10 + 1, ts, 1ul << ((h >> 12) % 4),
        (h >> 4) % 100000, 1 + (h >> 16) % 5, cls, (h >> 3) % 2000,
        (h >> 5) % 1000, (h >> 7) % 3600, (h >> 9) % 50, (h >> 2) % 10000,
        (h >> 9) % 50, (h >> 2) % 10000, (h >> 9) % 30, (h >> 3) % 10000,
        (h >> 9) % 30, (h >> 3) % 10000, (h >> 20) % 2 ? "INBOUND" : "OUTBOUND",
        (h >> 6) % 100000);
  }
  usage_buf_putc(b, ']');
}

static int nop(void *ctx) { return 1; }
static int nop_bool(void *ctx, int v) { return 1; }
static int nop_num(void *ctx, const char *s, size_t l) { return 1; }
static int nop_str(void *ctx, const unsigned char *s, size_t l) { return 1; }
static const yajl_callbacks nop_callbacks = {
    .yajl_null = nop,
    .yajl_boolean = nop_bool,
    .yajl_number = nop_num,
    .yajl_string = nop_str,
    .yajl_start_map = nop,
    .yajl_map_key = nop_str,
    .yajl_end_map = nop,
    .yajl_start_array = nop,
    .yajl_end_array = nop,
};

/* run measures `pages` pages; commit_each: one scrape per page (the window
 * slides) or one scrape of all pages (commit at the end). */
static int run(long pages, int commit_each) {
  usage_billing_conf_t conf;
  if (usage_billing_conf_default(&conf) != 0)
    return 1;
  conf.lookback = 3600;
  usage_billing_t *b = usage_billing_create(&conf);
  usage_buf_t body;
  usage_buf_init(&body, 0);
  double t_yajl = 0, t_billing = 0;
  size_t bytes = 0, counted = 0;
  usage_billing_begin(b, (double)T0);
  for (long p = 0; p < pages; p++) {
    page(&body, p);
    bytes += usage_buf_len(&body);

    double t = mono();
    yajl_handle h = yajl_alloc(&nop_callbacks, NULL, NULL);
    if (yajl_parse(h, (const unsigned char *)usage_buf_str(&body),
                   usage_buf_len(&body)) != yajl_status_ok ||
        yajl_complete_parse(h) != yajl_status_ok) {
      fprintf(stderr, "bench: generated page %ld is not JSON\n", p);
      return 1;
    }
    yajl_free(h);
    t_yajl += mono() - t;

    t = mono();
    usage_billing_page_t res;
    if (usage_billing_page(b, usage_buf_str(&body), usage_buf_len(&body),
                           &res) != 0) {
      fprintf(stderr, "bench: page %ld: %s\n", p, res.error);
      return 1;
    }
    counted += res.counted;
    if (commit_each) {
      usage_billing_commit(b);
      usage_billing_begin(b, (double)(T0 + (p + 1) * RECORDS));
    }
    t_billing += mono() - t;
  }
  if (!commit_each)
    usage_billing_commit(b);
  double mb = (double)bytes / 1e6;
  printf("%-22s pages %4ld: %zu records, %.1f MB; billing %.0f records/s "
         "%.1f MB/s; raw yajl %.1f MB/s; ratio %.2fx; groups %zu, window "
         "ids %zu\n",
         commit_each ? "one page per scrape" : "one scrape, all pages", pages,
         counted, mb, (double)counted / t_billing, mb / t_billing, mb / t_yajl,
         t_billing / t_yajl, usage_billing_groups(b),
         usage_billing_window_ids(b));
  printf("billing %s pages=%ld records_per_s=%.0f mb_per_s=%.1f "
         "yajl_mb_per_s=%.1f over_yajl=%.3f\n",
         commit_each ? "perpage" : "allpages", pages,
         (double)counted / t_billing, mb / t_billing, mb / t_yajl,
         t_billing / t_yajl);
  fflush(stdout);
  usage_buf_free(&body);
  usage_billing_destroy(b);
  usage_billing_conf_clear(&conf);
  return counted == (size_t)pages * RECORDS ? 0 : 1;
}

int main(int argc, char **argv) {
  long def[] = {10, 100};
  long n = argc > 1 ? argc - 1 : 2;
  int failed = 0;
  for (int mode = 1; mode >= 0; mode--)
    for (long i = 0; i < n; i++) {
      long pages = argc > 1 ? atol(argv[i + 1]) : def[i];
      fflush(stdout);
      pid_t pid = fork();
      if (pid == 0)
        _exit(run(pages, mode));
      int status;
      struct rusage ru;
      if (pid < 0 || wait4(pid, &status, 0, &ru) != pid) {
        perror("bench");
        return 1;
      }
      failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
      printf("%-22s pages %4ld: peak RSS %ld kB\n",
             mode ? "one page per scrape" : "one scrape, all pages", pages,
             ru.ru_maxrss);
      printf("billing_rss %s pages=%ld peak_kb=%ld\n",
             mode ? "perpage" : "allpages", pages, ru.ru_maxrss);
    }
  return failed;
}
