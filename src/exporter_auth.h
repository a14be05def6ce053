/* SPDX-License-Identifier: MIT */
/* exporter_auth: who may talk to the exporter. The TLS material (PEM files
 * read once) and the client certificate check; Basic auth against bcrypt
 * hashes behind a verdict cache and a rate limit on bcrypt runs. Private to
 * exporter.c and exporter_auth.c. */
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

/* usage_exporter_auth_create checks opts' accounts (the users array is not
 * copied: it must outlive the result). NULL with the cause in err. */
usage_exporter_auth_t *
usage_exporter_auth_create(const usage_exporter_opts_t *opts, char *err,
                           size_t errlen);
void usage_exporter_auth_destroy(usage_exporter_auth_t *a); /* accepts NULL */
/* usage_exporter_auth_check verifies the request's Basic credentials: 0
 * (let in), MHD_HTTP_UNAUTHORIZED or MHD_HTTP_TOO_MANY_REQUESTS. */
unsigned usage_exporter_auth_check(usage_exporter_auth_t *a,
                                   struct MHD_Connection *conn);

#endif
