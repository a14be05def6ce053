/* SPDX-License-Identifier: MIT */
/* test_util: what several unit tests share: fixtures, rendering a batch or
 * a store to text and looking for lines in it, a log sink's text, and a
 * loopback HTTP server's handler helpers. Failures go through cmocka's
 * fail_msg, so include this after <cmocka.h>. */
#ifndef USAGE_TEST_UTIL_H
#define USAGE_TEST_UTIL_H 1

#include "store.h"

#include <microhttpd.h>
#include <stddef.h>

/* tu_read_fixture returns the file FIXTURES/name, NUL-terminated (free it);
 * its length in *len when len is not NULL. The test fails when it is
 * missing. */
char *tu_read_fixture(const char *name, size_t *len);
/* tu_render_batch commits b (taken) to a fresh store and returns the text
 * exposition body (free it). */
char *tu_render_batch(usage_batch_t *b);
/* tu_store_text returns the text exposition body of s (free it). */
char *tu_store_text(usage_store_t *s);
/* tu_batch_lines lists the samples of b as `name{labels} value` lines,
 * values as %.17g (free it). */
char *tu_batch_lines(const usage_batch_t *b);
/* tu_expect_line fails the test when line is (present = 0) or is not
 * (present = 1) in text. */
void tu_expect_line(const char *text, const char *line, int present);

/* tu_log_add appends the line "LEVEL msg\n" to the log text (cap bytes,
 * *len of them used, NUL-terminated); a line that does not fit whole is
 * not counted in *len. */
void tu_log_add(char *text, size_t cap, size_t *len, int level,
                const char *msg);

/* tu_http_start serves handler on 127.0.0.1 at a port the system picks
 * (in *port), a thread per connection so a slow answer holds up nobody.
 * Stop it with MHD_stop_daemon. The test fails when it cannot start. */
struct MHD_Daemon *tu_http_start(MHD_AccessHandlerCallback handler, void *cls,
                                 unsigned *port);

/* tu_http_first_call, in a handler of tu_http_start: 1 on the first call
 * for a request (its headers; the handler returns MHD_YES and answers on
 * the next call), 0 on the later ones. */
int tu_http_first_call(void **req_cls);

/* tu_http_query writes the query arguments of the request on conn,
 * decoded, as "key=value&key=value" to out (cap bytes, cut to fit). */
void tu_http_query(struct MHD_Connection *conn, char *out, size_t cap);

#endif
