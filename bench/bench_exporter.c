/* SPDX-License-Identifier: MIT */
/* bench_exporter: cost of serving /metrics. Not a test: numbers only.
 *
 *   bench_exporter usage N [SCRAPES]   our exporter holding N series
 *   bench_exporter static BYTES [SCRAPES]  a bare libmicrohttpd handler
 *                                      serving a static buffer (the floor)
 *   bench_exporter client PORT SCRAPES [gzip]  scrape an exporter started
 *                                      elsewhere (write_prometheus)
 *
 * The server runs in this process and the client in a forked child, so the
 * CPU time of this process over the scrapes is the server's. Prints one
 * line of key=value figures: cpu_ms per scrape, p50/p99 latency, body size
 * plain and gzip, time from a commit until its series are visible, and
 * resident memory per series beyond the rendered bodies. */
#include "exporter.h"
#include "families.h"
#include "store.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = 0;
  while (f != NULL && fgets(line, sizeof(line), f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kb = strtol(line + 6, NULL, 10);
  if (f != NULL)
    fclose(f);
  return kb;
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(fd, (struct sockaddr *)&sa, sizeof(sa));
  socklen_t len = sizeof(sa);
  getsockname(fd, (struct sockaddr *)&sa, &len);
  close(fd);
  return ntohs(sa.sin_port);
}

/* get does one HTTP/1.0 GET; returns the body length (headers skipped) or
 * -1; with find, *found tells whether the body holds it. */
static long get(int port, int gzip, const char *find, int *found) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  char req[256];
  int n = snprintf(req, sizeof(req), "GET /metrics HTTP/1.0\r\n%s\r\n",
                   gzip ? "Accept-Encoding: gzip\r\n" : "");
  if (send(fd, req, (size_t)n, 0) != n) {
    close(fd);
    return -1;
  }
  /* The client's buffer is freed on return: it must not count in the RSS
   * this process reports for the exporter. */
  char *buf = NULL;
  size_t cap = 0;
  size_t used = 0;
  ssize_t r;
  for (;;) {
    if (cap - used < 65536) {
      cap = cap ? 2 * cap : 1 << 20;
      buf = realloc(buf, cap);
    }
    r = recv(fd, buf + used, cap - used - 1, 0);
    if (r <= 0)
      break;
    used += (size_t)r;
  }
  close(fd);
  buf[used] = 0;
  long len = -1;
  char *body = strstr(buf, "\r\n\r\n");
  if (body != NULL && strncmp(buf + 9, "200", 3) == 0) {
    body += 4;
    if (find != NULL)
      *found =
          memmem(body, used - (size_t)(body - buf), find, strlen(find)) != NULL;
    len = (long)(used - (size_t)(body - buf));
  }
  free(buf);
  return len;
}

static int dcmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* client scrapes `scrapes` times (plain, or gzip) and prints latencies. */
static void client(int port, int scrapes, int gzip, FILE *out) {
  double *lat = calloc((size_t)scrapes, sizeof(*lat));
  long len = 0;
  for (int i = 0; i < scrapes; i++) {
    double t0 = now_s();
    len = get(port, gzip, NULL, NULL);
    lat[i] = now_s() - t0;
  }
  qsort(lat, (size_t)scrapes, sizeof(*lat), dcmp);
  fprintf(out, "%ld %.3f %.3f\n", len, 1000 * lat[scrapes / 2],
          1000 * lat[(scrapes * 99) / 100 < scrapes ? (scrapes * 99) / 100
                                                    : scrapes - 1]);
  free(lat);
}

typedef struct {
  long len;
  double p50, p99, cpu_ms;
} run_t;

/* measure runs the client in a child and charges this process' CPU. */
static run_t measure(int port, int scrapes, int gzip) {
  int pfd[2];
  run_t r = {0};
  if (pipe(pfd) != 0)
    return r;
  double c0 = cpu_s();
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    FILE *out = fdopen(pfd[1], "w");
    client(port, scrapes, gzip, out);
    fclose(out);
    _exit(0);
  }
  close(pfd[1]);
  FILE *in = fdopen(pfd[0], "r");
  if (fscanf(in, "%ld %lf %lf", &r.len, &r.p50, &r.p99) != 3)
    r.len = -1;
  fclose(in);
  waitpid(pid, NULL, 0);
  r.cpu_ms = 1000 * (cpu_s() - c0) / scrapes;
  return r;
}

static void hex32(char *out, unsigned a, unsigned b) {
  snprintf(out, 33, "%08x%08x%08x%08x", a * 2654435761u, b, a ^ 0x5bd1e995u,
           b * 40503u);
}

/* commit_series commits n series of user figures, 500 per entity. */
static void commit_series(usage_store_t *s, long n, unsigned seed) {
  char svc[33], user[33], ent[64];
  for (long i = 0; i < n;) {
    snprintf(ent, sizeof(ent), "user/%u/%ld", seed, i);
    usage_batch_t *b = usage_batch_create("acme", ent);
    hex32(svc, seed, (unsigned)(i / 10000));
    for (int k = 0; k < 500 && i < n; k++, i++) {
      hex32(user, (unsigned)i, seed);
      usage_batch_add(b, FAM_CCC_USER_MESSAGES_SENT, (double)(i * 7 % 100003),
                      "service", svc, "user", user, "period", "daily", NULL);
    }
    usage_store_commit(s, b);
  }
}

static int run_usage(long n, int scrapes) {
  long rss0 = rss_kb();
  usage_store_t *s = usage_store_create();
  commit_series(s, n, 1);
  int port = free_port();
  char ports[16];
  snprintf(ports, sizeof(ports), "%d", port);
  usage_exporter_opts_t o = {.address = "127.0.0.1", .port = ports};
  char err[256];
  usage_exporter_t *e = usage_exporter_start(&o, s, err, sizeof(err));
  if (e == NULL) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  get(port, 0, NULL, NULL); /* render once */
  get(port, 1, NULL, NULL); /* and compress once */
  run_t plain = measure(port, scrapes, 0);
  run_t gz = measure(port, scrapes, 1);
  long rss = rss_kb();
  usage_body_t *b = usage_store_body(s, USAGE_FMT_TEXT);
  usage_body_t *bz = usage_store_body_gzip(s, USAGE_FMT_TEXT);
  double per_series =
      ((double)(rss - rss0) * 1024 - (double)b->len - (double)bz->len) /
      (double)n;
  usage_body_release(b);
  usage_body_release(bz);

  /* a new scrape commits n/10 (at least 1000) new series: time until a
   * scrape shows the last of them */
  long extra = n / 10 > 1000 ? n / 10 : 1000;
  double t0 = now_s();
  commit_series(s, extra, 2);
  char svc[33], user[33], find[128];
  hex32(svc, 2, (unsigned)((extra - 1) / 10000));
  hex32(user, (unsigned)(extra - 1), 2);
  snprintf(find, sizeof(find), "user=\"%s\"", user);
  int found = 0;
  double t_commit = now_s() - t0;
  while (!found && now_s() - t0 < 30)
    get(port, 0, find, &found);
  double visible = now_s() - t0;
  printf("usage   series=%ld cpu_ms=%.2f p50_ms=%.2f p99_ms=%.2f "
         "gzip_cpu_ms=%.2f gzip_p50_ms=%.2f body=%ld gzip_body=%ld "
         "rss_mb=%.1f bytes_per_series_beyond_body=%.0f "
         "new_series=%ld commit_s=%.3f visible_s=%.3f\n",
         n, plain.cpu_ms, plain.p50, plain.p99, gz.cpu_ms, gz.p50, plain.len,
         gz.len, (double)rss / 1024, per_series, extra, t_commit, visible);
  usage_exporter_stop(e);
  usage_store_destroy(s);
  return found ? 0 : 1;
}

static char *static_body;
static size_t static_len;

static enum MHD_Result static_handler(void *cls, struct MHD_Connection *conn,
                                      const char *url, const char *method,
                                      const char *version, const char *data,
                                      size_t *size, void **req_cls) {
  (void)cls, (void)url, (void)method, (void)version, (void)data, (void)size;
  (void)req_cls;
  struct MHD_Response *r = MHD_create_response_from_buffer(
      static_len, static_body, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static int run_static(long bytes, int scrapes) {
  static_len = (size_t)bytes;
  static_body = malloc(static_len);
  for (size_t i = 0; i < static_len; i++)
    static_body[i] = (i % 150 == 149) ? '\n' : (char)('a' + i % 26);
  int port = free_port();
  struct MHD_Daemon *d =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
                       (uint16_t)port, NULL, NULL, static_handler, NULL,
                       MHD_OPTION_THREAD_POOL_SIZE, 4, MHD_OPTION_END);
  if (d == NULL)
    return 1;
  run_t r = measure(port, scrapes, 0);
  printf("static  bytes=%ld cpu_ms=%.2f p50_ms=%.2f p99_ms=%.2f\n", bytes,
         r.cpu_ms, r.p50, r.p99);
  MHD_stop_daemon(d);
  free(static_body);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "usage") == 0)
    return run_usage(atol(argv[2]), argc > 3 ? atoi(argv[3]) : 20);
  if (argc >= 3 && strcmp(argv[1], "static") == 0)
    return run_static(atol(argv[2]), argc > 3 ? atoi(argv[3]) : 20);
  if (argc >= 4 && strcmp(argv[1], "client") == 0) {
    client(atoi(argv[2]), atoi(argv[3]), argc > 4, stdout);
    return 0;
  }
  fprintf(stderr, "usage: bench_exporter usage N [SCRAPES] | static BYTES "
                  "[SCRAPES] | client PORT SCRAPES [gzip]\n");
  return 2;
}
