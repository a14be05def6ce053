/* SPDX-License-Identifier: MIT */
/* test_exporter_race: scrapers (plain, gzip, OpenMetrics, HEAD) against
 * concurrent commits and removals, for ThreadSanitizer (make check-tsan)
 * and as a plain stress test in make check. Every answer must be a 200
 * whose body is a whole exposition (ends as its format ends). */
#include "exporter.h"
#include "families.h"
#include "store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define SCRAPERS 8
#define SECONDS 2.0

static int port_num;
static volatile int stop; /* written before join only; read with atomics */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
  int id;
  int ok, bad;
} scraper_t;

/* scrape sends one HTTP/1.0 request and reads to the end: 1 if good. */
static int scrape(const char *req, const char *tail) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port_num),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return 0;
  }
  size_t len = strlen(req);
  if (send(fd, req, len, 0) != (ssize_t)len) {
    close(fd);
    return 0;
  }
  size_t cap = 1 << 20, used = 0;
  char *buf = malloc(cap);
  ssize_t n;
  while (buf != NULL && (n = recv(fd, buf + used, cap - used - 1, 0)) > 0) {
    used += (size_t)n;
    if (used + 1 == cap) {
      char *p = realloc(buf, cap *= 2);
      if (p == NULL) {
        free(buf);
        buf = NULL;
      }
      buf = p;
    }
  }
  close(fd);
  if (buf == NULL)
    return 0;
  buf[used] = 0;
  int good = strncmp(buf, "HTTP/1.1 200 ", 13) == 0 ||
             strncmp(buf, "HTTP/1.0 200 ", 13) == 0;
  if (good && tail != NULL)
    good = used >= strlen(tail) && strcmp(buf + used - strlen(tail), tail) == 0;
  free(buf);
  return good;
}

static void *scraper(void *p) {
  scraper_t *s = p;
  static const struct {
    const char *req, *tail;
  } kinds[] = {
      {"GET /metrics HTTP/1.0\r\n\r\n", "} 1\n"},
      {"GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text\r\n\r\n",
       "# EOF\n"},
      {"GET /metrics HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n", NULL},
      {"HEAD /metrics HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n", NULL},
      {"GET / HTTP/1.0\r\n\r\n", "</html>\n"},
  };
  for (int i = s->id; !__atomic_load_n(&stop, __ATOMIC_ACQUIRE); i++) {
    int k = i % 5;
    if (scrape(kinds[k].req, kinds[k].tail))
      s->ok++;
    else
      s->bad++;
  }
  return NULL;
}

static void page(void *ud, int redact, usage_buf_t *out) {
  usage_store_t *store = ud;
  (void)redact;
  usage_buf_printf(out, "<p>%zu series</p>\n", usage_store_series(store, NULL));
}

static void test_race(void **state) {
  (void)state;
  usage_store_t *store = usage_store_create();
  usage_batch_t *b = usage_batch_create("", "build");
  usage_batch_add(b, FAM_EXPORTER_BUILD_INFO, 1, "version", "x", NULL);
  usage_store_commit(store, b);

  usage_exporter_opts_t opts = {.address = "127.0.0.1",
                                .port = "0",
                                .threads = 4,
                                .max_per_ip = 64,
                                .page = page,
                                .page_ud = store};
  /* find a free port: bind 0, read it back */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  socklen_t sl = sizeof(sa);
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  port_num = ntohs(sa.sin_port);
  close(fd);
  char port[16];
  snprintf(port, sizeof(port), "%d", port_num);
  opts.port = port;
  char err[256];
  usage_exporter_t *e = usage_exporter_start(&opts, store, err, sizeof(err));
  if (e == NULL)
    fail_msg("start: %s", err);

  pthread_t th[SCRAPERS];
  scraper_t sc[SCRAPERS];
  for (int i = 0; i < SCRAPERS; i++) {
    sc[i] = (scraper_t){.id = i};
    pthread_create(&th[i], NULL, scraper, &sc[i]);
  }
  /* the committer: entities replaced, added and removed */
  double t0 = now_s();
  int commits = 0;
  while (now_s() - t0 < SECONDS) {
    char entity[32], user[32];
    snprintf(entity, sizeof(entity), "e%d", commits % 50);
    b = usage_batch_create("acme", entity);
    for (int j = 0; j < 20; j++) {
      snprintf(user, sizeof(user), "u%d", j);
      usage_batch_add(b, FAM_CCC_USER_MESSAGES_SENT, commits + j, "service",
                      entity, "user", user, "period", "daily", NULL);
    }
    usage_batch_add(b, FAM_CCC_STATUS_CHANGES, commits, "service", entity,
                    "status", "Blocked", NULL);
    usage_batch_add(b, FAM_SOURCE_UP, 1, "kind", "ccc", NULL);
    assert_int_equal(usage_store_commit(store, b), 0);
    if (commits % 97 == 0)
      usage_store_remove(store, "acme", "e1");
    commits++;
    usleep(200);
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  int ok = 0, bad = 0;
  for (int i = 0; i < SCRAPERS; i++) {
    pthread_join(th[i], NULL);
    ok += sc[i].ok;
    bad += sc[i].bad;
  }
  usage_exporter_stop(e);
  usage_store_destroy(store);
  print_message("%d commits, %d good scrapes, %d bad\n", commits, ok, bad);
  assert_int_equal(bad, 0);
  assert_true(ok > 50);
  assert_true(commits > 100);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_race),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
