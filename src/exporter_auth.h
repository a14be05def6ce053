/* SPDX-License-Identifier: MIT */
/* exporter_auth: who may talk to the exporter. The TLS material (PEM files
 * read once) and the client certificate check; Basic auth against bcrypt
 * hashes behind a verdict cache and a rate limit on bcrypt runs, bcrypt in
 * a thread of its own. Private to exporter.c and exporter_auth.c. */
#ifndef USAGE_EXPORTER_AUTH_H
#define USAGE_EXPORTER_AUTH_H 1

#include "exporter.h"

#include <microhttpd.h>
#include <stddef.h>

/* The PEM contents of the configured TLS files; all NULL without TLS. */
typedef struct {
  char *cert, *key, *ca;
} usage_exporter_tls_t;

/* usage_exporter_tls_load checks that the TLS options go together and reads
 * their files into t (zeroed first). 0, or EINVAL with the cause in err (t
 * then holds what was read: clear it). */
int usage_exporter_tls_load(usage_exporter_tls_t *t,
                            const usage_exporter_opts_t *opts, char *err,
                            size_t errlen);
/* usage_exporter_tls_clear frees t, wiping the key. */
void usage_exporter_tls_clear(usage_exporter_tls_t *t);
/* usage_exporter_tls_client_ok: 1 without a client CA, else whether the
 * peer's certificate chain verifies against it. */
int usage_exporter_tls_client_ok(const usage_exporter_tls_t *t,
                                 struct MHD_Connection *conn);

typedef struct usage_exporter_auth_s usage_exporter_auth_t;
typedef struct usage_exporter_auth_job_s usage_exporter_auth_job_t;

/* usage_exporter_auth_create checks opts' accounts (the users array is not
 * copied: it must outlive the result) and starts the thread that runs
 * bcrypt. NULL with the cause in err. */
usage_exporter_auth_t *
usage_exporter_auth_create(const usage_exporter_opts_t *opts, char *err,
                           size_t errlen);
/* usage_exporter_auth_drain finishes every queued check with 503 (their
 * done callbacks run) and refuses new ones with 503: call it before the
 * HTTP server stops, so no connection stays suspended. */
void usage_exporter_auth_drain(usage_exporter_auth_t *a);   /* accepts NULL */
void usage_exporter_auth_destroy(usage_exporter_auth_t *a); /* accepts NULL */

/* Returned by usage_exporter_auth_begin when a bcrypt run is needed. */
#define USAGE_EXPORTER_AUTH_PENDING 1u

/* usage_exporter_auth_begin looks at the request's Basic credentials: 0
 * (let in: found good recently), MHD_HTTP_UNAUTHORIZED (none, or found bad
 * recently), MHD_HTTP_TOO_MANY_REQUESTS (no bcrypt run allowed now) or
 * MHD_HTTP_SERVICE_UNAVAILABLE (stopping); or USAGE_EXPORTER_AUTH_PENDING
 * with *job set: the caller suspends the connection and then hands the
 * job to usage_exporter_auth_submit. bcrypt never runs in the server's
 * event loop, so one client's check holds up no other connection. */
unsigned usage_exporter_auth_begin(usage_exporter_auth_t *a,
                                   struct MHD_Connection *conn,
                                   usage_exporter_auth_job_t **job);
/* usage_exporter_auth_submit queues job; done(ud) is called from the
 * auth thread once its verdict is ready (the job is not touched after). */
void usage_exporter_auth_submit(usage_exporter_auth_t *a,
                                usage_exporter_auth_job_t *job,
                                void (*done)(void *ud), void *ud);
/* usage_exporter_auth_finish returns a finished job's verdict (0,
 * MHD_HTTP_UNAUTHORIZED or MHD_HTTP_SERVICE_UNAVAILABLE) and frees it. */
unsigned usage_exporter_auth_finish(usage_exporter_auth_job_t *job);

#endif
