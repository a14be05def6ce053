/* SPDX-License-Identifier: MIT */
/* exporter: the HTTP server (libmicrohttpd) that serves the store in the
 * Prometheus formats on /metrics and a status page on /. It never waits on
 * an upstream request: it serves the figures of the last commits. */
#ifndef USAGE_EXPORTER_H
#define USAGE_EXPORTER_H 1

#include "buf.h"
#include "store.h"

typedef struct {
  const char *address; /* numeric IPv4 or IPv6 address */
  const char *port;
  unsigned threads;    /* worker threads (pool) */
  unsigned max_conns;  /* connections at once */
  unsigned max_per_ip; /* connections at once from one address */
  unsigned timeout_s;  /* idle connection timeout */
  /* page writes the HTML status page body (sources and their state) */
  void (*page)(void *ud, usage_buf_t *out);
  void *page_ud;
} usage_exporter_opts_t;

typedef struct usage_exporter_s usage_exporter_t;

/* usage_exporter_start binds and starts serving store (not owned). NULL on
 * failure with the cause in err. */
usage_exporter_t *usage_exporter_start(const usage_exporter_opts_t *conf,
                                       usage_store_t *store, char *err,
                                       size_t errlen);
/* usage_exporter_stop closes the socket, waits for the workers, frees. */
void usage_exporter_stop(usage_exporter_t *e); /* accepts NULL */

/* usage_exporter_negotiate picks the format for an Accept header (NULL =
 * none): OpenMetrics when the client prefers it over text/plain. */
usage_format_t usage_exporter_negotiate(const char *accept);

/* usage_html_escape writes s with &, <, >, " and ' escaped. */
int usage_html_escape(usage_buf_t *b, const char *s);

#endif
