/* SPDX-License-Identifier: MIT */
/* bench_jasper: one rate plan of N devices (default 100,000: 2,000 pages)
 * scraped from the API simulator over loopback with no politeness limit,
 * as the plugin does it (usage_source_read: requests, streaming parse into
 * the running aggregation, commit to a store), then the exposition body
 * rendered. Also the parser alone on the plan's real pages held in memory
 * (every page its own devices), with the emit and commit that follow, to
 * tell the plugin's speed from the simulator's. Each line of figures ends
 * in a key=value line for bench/bench_repeat.sh. Prints pages/s, devices/s,
 * wall time, peak RSS, series, bytes per series and the rendering cost.
 *
 *   bench_jasper [--sim PATH] [--devices N] [--per-device 0|1]
 *                [--max-devices N]
 *
 * Not a test: figures only. Run by `make bench`. */
#include "api/jasper/jasper.h"
#include "families.h"
#include "source.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* rss_kb: the current resident set (kB) from /proc/self/statm. */
static long rss_kb(void) {
  long pages_total = 0, pages_rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL)
    return -1;
  if (fscanf(f, "%ld %ld", &pages_total, &pages_rss) != 2)
    pages_rss = -1;
  fclose(f);
  return pages_rss < 0 ? -1 : pages_rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static long peak_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static usage_store_t *store;
static int errors;

static void sink_log(void *ud, int level, const char *msg) {
  (void)ud;
  if (level <= USAGE_LOG_WARNING)
    errors++;
  fprintf(stderr, "[%d] %s\n", level, msg);
}

static double commit_time;
static size_t commit_samples;

/* sink_commit: what plugin.c does minus the collectd dispatch; the store
 * renders the exposition of the entity here, once per change. */
static int sink_commit(void *ud, usage_batch_t *b) {
  (void)ud;
  commit_samples += usage_batch_size(b);
  double t = mono();
  int rc = usage_store_commit(store, b);
  commit_time += mono() - t;
  return rc;
}

static pid_t start_sim(const char *path, long devices, char *url, size_t n) {
  char portfile[] = "/tmp/bench_jasper.XXXXXX";
  int fd = mkstemp(portfile);
  if (fd < 0)
    return -1;
  close(fd);
  unlink(portfile);
  char devs[32];
  snprintf(devs, sizeof(devs), "%ld", devices);
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", 1);
    if (null >= 0)
      dup2(null, 1);
    execl(path, path, "--address", "127.0.0.1", "--port", "0", "--port-file",
          portfile, "--jasper-devices", devs, "--jasper-rate-plans", "1",
          "--threads", "2", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 100; i++) { /* at most 10 s */
    FILE *f = fopen(portfile, "r");
    int port = 0;
    if (f != NULL) {
      if (fscanf(f, "%d", &port) != 1)
        port = 0;
      fclose(f);
    }
    if (port > 0) {
      unlink(portfile);
      snprintf(url, n, "http://127.0.0.1:%d", port);
      return pid;
    }
    usleep(100000);
  }
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  return -1;
}

/* parse_only fetches every page of the plan (distinct devices on each),
 * then, one core, with the simulator idle: parses them all into one
 * aggregation, emits its samples into a batch and commits that to a store
 * of its own, as a scrape does after its last page. */
static void parse_only(usage_source_t *s, int per_device, size_t max_devices,
                       int npages) {
  char **bodies = calloc((size_t)npages + 1, sizeof(*bodies));
  size_t *lens = calloc((size_t)npages + 1, sizeof(*lens));
  usage_http_resp_t resp;
  int got = 0;
  for (int p = 1; bodies != NULL && lens != NULL && p <= npages; p++) {
    char q[256];
    snprintf(q, sizeof(q),
             "/rws/api/v1/usages?ratePlanName=Monthly-Flexible-Pool&"
             "pageNumber=%d&pageSize=50",
             p);
    if (usage_source_get(s, q, &resp) != 0 || resp.status != 200)
      break;
    bodies[got] = malloc(resp.len);
    if (bodies[got] == NULL)
      break;
    memcpy(bodies[got], resp.body, resp.len);
    lens[got++] = resp.len;
  }
  if (got < npages) {
    printf("parser alone: fetched %d of %d pages\n", got, npages);
    errors++;
    goto done;
  }
  usage_jasper_agg_t *a = usage_jasper_agg_create(per_device, max_devices);
  size_t bytes = 0;
  double c0 = cpu();
  for (int i = 0; i < got; i++) {
    usage_jasper_page_t pg;
    if (usage_jasper_parse_page(a, bodies[i], lens[i], &pg) != 0) {
      printf("parse error: %s\n", pg.error);
      errors++;
      break;
    }
    bytes += lens[i];
  }
  double c1 = cpu();
  usage_batch_t *b = usage_batch_create("bench", "plan");
  if (b == NULL || usage_jasper_agg_emit(a, "Monthly-Flexible-Pool",
                                         USAGE_JASPER_ALL, b) != 0)
    errors++;
  size_t samples = usage_batch_size(b);
  double c2 = cpu();
  usage_store_t *own = usage_store_create();
  if (b != NULL && usage_store_commit(own, b) != 0)
    errors++;
  double c3 = cpu();
  double parse = c1 - c0, emit = c2 - c1, commit = c3 - c2;
  printf("parser alone: %d pages (%.1f MB, %zu devices) in %.3f s CPU: %.0f "
         "pages/s, %.0f MB/s, one core; emit %.3f s, commit %.3f s for %zu "
         "samples\n",
         got, (double)bytes / 1e6, usage_jasper_agg_devices_kept(a), parse,
         got / parse, (double)bytes / 1e6 / parse, emit, commit, samples);
  printf("jasper_pipeline pages=%d parse_pages_per_s=%.0f parse_s=%.6f "
         "emit_s=%.6f commit_s=%.6f total_s=%.6f samples=%zu\n",
         got, got / parse, parse, emit, commit, parse + emit + commit, samples);
  usage_store_destroy(own);
  usage_jasper_agg_destroy(a);
done:
  for (int i = 0; i < got; i++)
    free(bodies[i]);
  free(bodies);
  free(lens);
}

int main(int argc, char **argv) {
  const char *sim = "./usage-sim";
  long devices = 100000;
  int per_device = 1;
  long max_devices = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--sim") == 0)
      sim = argv[i + 1];
    else if (strcmp(argv[i], "--devices") == 0)
      devices = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--per-device") == 0)
      per_device = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--max-devices") == 0)
      max_devices = atol(argv[i + 1]);
    else {
      fprintf(stderr,
              "usage: %s [--sim PATH] [--devices N] [--per-device "
              "0|1] [--max-devices N]\n",
              argv[0]);
      return 2;
    }
  }
  if (max_devices < 0)
    max_devices = devices;

  char url[64];
  pid_t pid = start_sim(sim, devices, url, sizeof(url));
  if (pid < 0) {
    fprintf(stderr, "cannot start the simulator %s\n", sim);
    return 1;
  }
  usage_http_global_init();
  store = usage_store_create();

  usage_source_conf_t *conf = calloc(1, sizeof(*conf));
  conf->name = strdup("bench");
  conf->kind = USAGE_KIND_JASPER;
  conf->http.url = strdup(url);
  conf->http.user = strdup("sim-user");
  conf->http.password.value = strdup("sim-key");
  conf->http.verify_peer = conf->http.verify_host = 1;
  conf->http.timeout_ms = 30000;
  conf->http.max_body = 16 * 1024 * 1024;
  conf->max_rps = 0; /* politeness off */
  conf->max_concurrent = 1;
  conf->kind_conf = usage_jasper_vendor.conf_create();
  usage_jasper_conf_t *jc = conf->kind_conf;
  jc->plans = calloc(1, sizeof(*jc->plans));
  jc->plans[0].name = strdup("Monthly-Flexible-Pool");
  jc->plans_num = 1;
  jc->per_device = per_device;
  jc->max_devices = (size_t)max_devices;
  long npages = (devices + 49) / 50;

  usage_sink_t sink = {.log = sink_log, .commit = sink_commit};
  usage_source_t *s = usage_source_create(conf, &sink);
  if (s == NULL)
    return 1;

  printf("Jasper benchmark: 1 rate plan, %ld devices, %ld pages of 50, "
         "PerDevice %s, MaxDevices %ld, politeness off, simulator on "
         "loopback\n",
         devices, npages, per_device ? "true" : "false", max_devices);
  long rss0 = rss_kb();
  double t0 = mono(), c0 = cpu();
  usage_source_read(s);
  double wall = mono() - t0, cpus = cpu() - c0;
  long rss1 = rss_kb();
  size_t series = usage_store_series(store, "bench");

  /* What the exporter asks for: the body as pieces of the entities' text
   * (usage_store_body would add a contiguous copy nobody serves). */
  double r0 = mono();
  usage_body_t *body = usage_store_body_iov(store, USAGE_FMT_TEXT);
  double render = mono() - r0;
  double r1 = mono();
  usage_body_t *again = usage_store_body_iov(store, USAGE_FMT_TEXT);
  double cached = mono() - r1;
  long rss2 = rss_kb();

  printf("scrape: %.3f s wall, %.3f s CPU in this process; %.0f pages/s, "
         "%.0f devices/s%s\n",
         wall, cpus, npages / wall, devices / wall,
         errors ? " (ERRORS, see above)" : "");
  printf("series kept: %zu; RSS before %ld kB, after the scrape %ld kB, "
         "after rendering %ld kB, peak %ld kB\n",
         series, rss0, rss1, rss2, peak_kb());
  if (series > 0)
    printf("memory per series: %.0f bytes (scrape + store), %.0f bytes with "
           "the rendered body\n",
           (double)(rss1 - rss0) * 1024 / (double)series,
           (double)(rss2 - rss0) * 1024 / (double)series);
  printf("commit to the store (renders the entity's exposition): %.3f s "
         "for %zu samples (%.0f ns per series), included in the scrape\n",
         commit_time, commit_samples,
         commit_samples ? commit_time * 1e9 / (double)commit_samples : 0.0);
  printf("/metrics body: %.1f MB, assembled in %.3f s (%.0f ns per series); "
         "served again from the cache in %.6f s\n",
         body ? (double)body->len / 1e6 : 0.0, render,
         series ? render * 1e9 / (double)series : 0.0, cached);
  printf("jasper_scrape devices=%ld wall_s=%.4f cpu_s=%.4f pages_per_s=%.0f "
         "commit_s=%.6f render_s=%.6f series=%zu\n",
         devices, wall, cpus, npages / wall, commit_time, render, series);
  usage_body_release(body);
  usage_body_release(again);

  parse_only(s, per_device, (size_t)max_devices, (int)npages);

  usage_source_destroy(s);
  usage_store_destroy(store);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  return errors ? 1 : 0;
}
