/* SPDX-License-Identifier: MIT */
/* bench_exporter: cost of serving /metrics. Not a test: numbers only.
 *
 *   bench_exporter usage N [SCRAPES]   our exporter holding N series
 *   bench_exporter static BYTES [SCRAPES]  a bare libmicrohttpd handler
 *                                      serving a static buffer (the floor)
 *   bench_exporter client PORT SCRAPES [gzip]  scrape an exporter started
 *                                      elsewhere (write_prometheus)
 *   bench_exporter ab N [SCRAPES [one]]  our exporter and the static floor
 *                                      in one process, scraped in turn
 *                                      (A/B, the order alternating), with
 *                                      the server CPU of each scrape; also
 *                                      the first plain and the first gzip
 *                                      scrape after a commit (of one
 *                                      entity of 500 series among N/500;
 *                                      with one: of 1% of the values of a
 *                                      single entity of N series)
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

static long minflt(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
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

/* exporter_start: the plugin's exporter over s on a free loopback port;
 * NULL (the reason on stderr) when it does not start. */
static usage_exporter_t *exporter_start(usage_store_t *s, int *port) {
  *port = free_port();
  char ports[16];
  snprintf(ports, sizeof(ports), "%d", *port);
  usage_exporter_opts_t o = {.address = "127.0.0.1", .port = ports};
  char err[256];
  usage_exporter_t *e = usage_exporter_start(&o, s, err, sizeof(err));
  if (e == NULL)
    fprintf(stderr, "%s\n", err);
  return e;
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
  int port;
  usage_exporter_t *e = exporter_start(s, &port);
  if (e == NULL)
    return 1;
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

/* ---- ab: interleaved scrapes, server CPU per scrape ----
 * The client (a child) brackets each scrape with a tag byte and 'E' on a
 * pipe; this process, which runs both servers, takes its CPU time at each
 * and answers, so each scrape is charged alone. Digits ask for a commit
 * (done between scrapes, not charged to them). */

/* commit_entity commits the entity of series [first, first + count) of
 * commit_series(s, ., seed); round > 0 changes values: all of them, or
 * with one_pct only every 100th (the same lines each round). */
static void commit_entity(usage_store_t *s, unsigned seed, long first,
                          long count, int round, int one_pct) {
  char svc[33], user[33], ent[64];
  snprintf(ent, sizeof(ent), "user/%u/%ld", seed, first);
  usage_batch_t *b = usage_batch_create("acme", ent);
  for (long i = first; i < first + count; i++) {
    hex32(svc, seed, (unsigned)(i / 10000));
    hex32(user, (unsigned)i, seed);
    double bump = (!one_pct || i % 100 == 0) ? round * 0.5 : 0;
    usage_batch_add(b, FAM_CCC_USER_MESSAGES_SENT,
                    (double)(i * 7 % 100003) + bump, "service", svc, "user",
                    user, "period", "daily", NULL);
  }
  usage_store_commit(s, b);
}

/* T_GZNEXT: the gzip scrape after T_FIRST, which compresses what that
 * commit changed (not reported: the cost of T_GZFIRST without the render) */
enum { T_USAGE, T_STATIC, T_FIRST, T_GZIP, T_GZFIRST, T_GZNEXT, T_NTAGS };
static const char tag_char[T_NTAGS] = {'u', 's', 'f', 'g', 'z', 'h'};

typedef struct {
  int cmd, ack; /* pipe ends of this side */
} chan_t;

static void chan_call(chan_t *c, char op) {
  char a;
  if (write(c->cmd, &op, 1) != 1 || read(c->ack, &a, 1) != 1)
    _exit(3);
}

/* ab_scrape: one scrape bracketed for the server's accounting. */
static long ab_scrape(chan_t *c, int tag, int port, int gzip) {
  chan_call(c, tag_char[tag]);
  long len = get(port, gzip, NULL, NULL);
  chan_call(c, 'E');
  return len;
}

static void ab_client(chan_t *c, int port, int sport, int rounds) {
  for (int r = 0; r < rounds; r++) {
    if (r % 2 == 0) {
      ab_scrape(c, T_USAGE, port, 0);
      ab_scrape(c, T_STATIC, sport, 0);
    } else {
      ab_scrape(c, T_STATIC, sport, 0);
      ab_scrape(c, T_USAGE, port, 0);
    }
    ab_scrape(c, T_GZIP, port, 1);
    chan_call(c, '1'); /* commit, then the first gzip scrape */
    ab_scrape(c, T_GZFIRST, port, 1);
    chan_call(c, '1'); /* commit, then the first plain scrape */
    ab_scrape(c, T_FIRST, port, 0);
    ab_scrape(c, T_GZNEXT, port, 1); /* compress that one: next cached */
  }
  char q = 'q';
  if (write(c->cmd, &q, 1) != 1)
    _exit(3);
}

typedef struct {
  double *v;
  size_t n;
} series_t;

static double med(series_t *x) {
  if (x->n == 0)
    return 0;
  qsort(x->v, x->n, sizeof(*x->v), dcmp);
  return x->n % 2 ? x->v[x->n / 2] : (x->v[x->n / 2 - 1] + x->v[x->n / 2]) / 2;
}

static int run_ab(long n, int rounds, int one) {
  /* The client is forked first: forked later, it would share the store's
   * pages copy-on-write, and every first write to one (a free, a
   * reference count) would cost this process a page copy and a TLB
   * flush that a server on its own never pays. */
  int to_srv[2], to_cli[2];
  if (pipe(to_srv) != 0 || pipe(to_cli) != 0)
    return 1;
  pid_t pid = fork();
  if (pid == 0) {
    close(to_srv[0]);
    close(to_cli[1]);
    chan_t c = {to_srv[1], to_cli[0]};
    int pp[2];
    if (read(c.ack, pp, sizeof(pp)) != (ssize_t)sizeof(pp))
      _exit(3);
    ab_client(&c, pp[0], pp[1], rounds);
    _exit(0);
  }
  close(to_srv[1]);
  close(to_cli[0]);
  usage_store_t *s = usage_store_create();
  long per = one ? n : 500;
  for (long i = 0; i < n; i += per)
    commit_entity(s, 1, i, per < n - i ? per : n - i, 0, 0);
  int port;
  usage_exporter_t *e = exporter_start(s, &port);
  if (e == NULL)
    return 1;
  /* the static floor: the same bytes, from a bare handler */
  usage_body_t *b = usage_store_body_iov(s, USAGE_FMT_TEXT);
  static_len = b->len;
  static_body = malloc(static_len + 1);
  for (size_t i = 0, at = 0; i < b->iovcnt; at += b->iov[i++].len)
    memcpy(static_body + at, b->iov[i].base, b->iov[i].len);
  usage_body_release(b);
  int sport = free_port();
  struct MHD_Daemon *d =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
                       (uint16_t)sport, NULL, NULL, static_handler, NULL,
                       MHD_OPTION_THREAD_POOL_SIZE, 4, MHD_OPTION_END);
  if (d == NULL)
    return 1;
  long plain_len = get(port, 0, NULL, NULL); /* render once */
  get(port, 1, NULL, NULL);                  /* and compress once */
  get(sport, 0, NULL, NULL);

  int pp[2] = {port, sport};
  if (write(to_cli[1], pp, sizeof(pp)) != (ssize_t)sizeof(pp))
    return 1;
  series_t t[T_NTAGS];
  for (int i = 0; i < T_NTAGS; i++) {
    t[i].v = calloc((size_t)rounds * 2 + 2, sizeof(double));
    t[i].n = 0;
  }
  double c0 = 0, commit_ms = 0, flt[T_NTAGS] = {0};
  long f0 = 0;
  int cur = -1, commits = 0;
  char op;
  while (read(to_srv[0], &op, 1) == 1 && op != 'q') {
    if (op == 'E' && cur >= 0) {
      t[cur].v[t[cur].n++] = 1000 * (cpu_s() - c0);
      flt[cur] += (double)(minflt() - f0);
      cur = -1;
    } else if (op == '1') {
      double w0 = now_s();
      commits++;
      long ent = (commits * 7919L) % ((n + per - 1) / per);
      long first = ent * per;
      commit_entity(s, 1, first, per < n - first ? per : n - first, commits,
                    one);
      commit_ms += 1000 * (now_s() - w0);
    } else {
      for (int i = 0; i < T_NTAGS; i++)
        if (tag_char[i] == op)
          cur = i;
      f0 = minflt();
      c0 = cpu_s();
    }
    if (write(to_cli[1], "k", 1) != 1)
      break;
  }
  waitpid(pid, NULL, 0);
  double m[T_NTAGS], lo[T_NTAGS], hi[T_NTAGS];
  for (int i = 0; i < T_NTAGS; i++) {
    m[i] = med(&t[i]);
    lo[i] = t[i].n ? t[i].v[0] : 0;
    hi[i] = t[i].n ? t[i].v[t[i].n - 1] : 0;
  }
  printf("ab %s series=%ld body=%ld scrapes=%d usage_cpu_ms=%.3f "
         "static_cpu_ms=%.3f usage_over_static=%.3f "
         "first_after_commit_cpu_ms=%.3f first_over_static=%.3f "
         "gzip_cpu_ms=%.3f gzip_after_commit_cpu_ms=%.3f "
         "gzip_after_commit_over_plain=%.3f commit_ms=%.2f\n",
         one ? "one" : "many", n, plain_len, rounds, m[T_USAGE], m[T_STATIC],
         m[T_USAGE] / m[T_STATIC], m[T_FIRST], m[T_FIRST] / m[T_STATIC],
         m[T_GZIP], m[T_GZFIRST], m[T_GZFIRST] / m[T_USAGE],
         commits ? commit_ms / commits : 0);
  printf("# per-scrape spread (min/median/max ms):");
  for (int i = 0; i < T_NTAGS; i++)
    printf(" %c %.2f/%.2f/%.2f (%.0f faults)", tag_char[i], lo[i], m[i], hi[i],
           t[i].n ? flt[i] / (double)t[i].n : 0);
  printf("\n");
  for (int i = 0; i < T_NTAGS; i++)
    free(t[i].v);
  MHD_stop_daemon(d);
  free(static_body);
  usage_exporter_stop(e);
  usage_store_destroy(s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "usage") == 0)
    return run_usage(atol(argv[2]), argc > 3 ? atoi(argv[3]) : 20);
  if (argc >= 3 && strcmp(argv[1], "static") == 0)
    return run_static(atol(argv[2]), argc > 3 ? atoi(argv[3]) : 20);
  if (argc >= 3 && strcmp(argv[1], "ab") == 0)
    return run_ab(atol(argv[2]), argc > 3 ? atoi(argv[3]) : 20,
                  argc > 4 && strcmp(argv[4], "one") == 0);
  if (argc >= 4 && strcmp(argv[1], "client") == 0) {
    client(atoi(argv[2]), atoi(argv[3]), argc > 4, stdout);
    return 0;
  }
  fprintf(stderr,
          "usage: bench_exporter usage N [SCRAPES] | static BYTES "
          "[SCRAPES] | client PORT SCRAPES [gzip] | ab N [SCRAPES [one]]\n");
  return 2;
}
