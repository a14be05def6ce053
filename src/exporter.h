/* SPDX-License-Identifier: MIT */
/* exporter: the HTTP server (libmicrohttpd) that serves the store in the
 * Prometheus formats on /metrics and a status page on /. It never waits on
 * an upstream request: it serves the figures of the last commits. Hardened:
 * a fixed thread pool, connection limits, idle timeout, per-connection
 * memory cap, optional TLS (with client certificates) and Basic auth. */
#ifndef USAGE_EXPORTER_H
#define USAGE_EXPORTER_H 1

#include "buf.h"
#include "store.h"

/* A Basic auth account: the user name and its bcrypt hash ($2y$, $2b$ or
 * $2a$, as htpasswd -B writes). */
typedef struct {
  char *user;
  char *hash;
} usage_exporter_user_t;

#define USAGE_EXPORTER_THREADS 4
#define USAGE_EXPORTER_MAX_CONNS 512
#define USAGE_EXPORTER_MAX_PER_IP 32
#define USAGE_EXPORTER_IDLE_TIMEOUT 10          /* seconds */
#define USAGE_EXPORTER_REQUEST_TIMEOUT 10       /* seconds */
#define USAGE_EXPORTER_MEMORY_LIMIT (32 * 1024) /* bytes per connection */
/* Open files left to the rest of collectd when the connection cap is set
 * within the process's RLIMIT_NOFILE, and the smallest cap used then. */
#define USAGE_EXPORTER_FD_RESERVE 128
#define USAGE_EXPORTER_MIN_CONNS 8

typedef struct {
  const char *address; /* IPv4 or IPv6 address (numeric) or a host name */
  const char *port;
  unsigned threads; /* worker threads (pool); 0 = default */
  /* connections at once; 0 = default. Beyond it a new connection is
   * taken and the oldest one still waiting for a request is closed. */
  unsigned max_conns;
  unsigned max_per_ip; /* connections at once from one address; 0 = default */
  unsigned timeout_s;  /* idle connection timeout; 0 = default */
  /* whole request (line and headers) within this many seconds of the
   * connection or of the previous response, however busy; 0 = default */
  unsigned request_timeout_s;
  size_t mem_limit; /* per-connection memory (headers, URL); 0 = default */
  /* TLS: PEM file names; cert and key together or neither. With a client
   * CA, clients must present a certificate it signed. */
  const char *tls_cert_file, *tls_key_file, *tls_client_ca_file;
  /* Basic auth: with users_num > 0 every request must authenticate. */
  const usage_exporter_user_t *users;
  size_t users_num;
  /* page writes the HTML status page body (sources and their state);
   * redact is 1 when the client has not authenticated (no Basic auth and
   * no client certificate configured): error texts must then be redacted */
  void (*page)(void *ud, int redact, usage_buf_t *out);
  void *page_ud;
  /* log (optional) is told, in one line without a secret, when the cap is
   * lowered to fit the open-file limit and, at most once a minute, when
   * connections were closed at the cap. From any thread. */
  void (*log)(void *ud, const char *msg);
  void *log_ud;
} usage_exporter_opts_t;

typedef struct usage_exporter_s usage_exporter_t;

/* usage_exporter_start binds and starts serving store (not owned); opts is
 * copied, the strings it points to must outlive the exporter. NULL on
 * failure with the cause in err (never a secret). */
usage_exporter_t *usage_exporter_start(const usage_exporter_opts_t *opts,
                                       usage_store_t *store, char *err,
                                       size_t errlen);
/* usage_exporter_stop closes the socket, waits for the workers, frees. */
void usage_exporter_stop(usage_exporter_t *e); /* accepts NULL */

/* usage_exporter_fd_cap: the connection cap used for want within an
 * open-file limit of nofile (ULONG_MAX = none): want when it fits with
 * its slack and USAGE_EXPORTER_FD_RESERVE files to spare, else the largest
 * cap that does (at least USAGE_EXPORTER_MIN_CONNS). */
unsigned usage_exporter_fd_cap(unsigned want, unsigned long nofile);

/* usage_exporter_negotiate picks the format for an Accept header (NULL =
 * none): OpenMetrics when the client prefers it over text/plain. */
usage_format_t usage_exporter_negotiate(const char *accept);
/* usage_exporter_wants_gzip tells whether an Accept-Encoding header (NULL =
 * none) allows gzip: "gzip" or "*" with a q above 0, gzip not refused. */
int usage_exporter_wants_gzip(const char *accept_encoding);
/* usage_exporter_check_hash tells whether hash is a bcrypt hash libcrypt
 * can verify: 0 or EINVAL. */
int usage_exporter_check_hash(const char *hash);

/* usage_html_escape writes s with &, <, >, " and ' escaped. */
int usage_html_escape(usage_buf_t *b, const char *s);

#endif
