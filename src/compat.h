/* SPDX-License-Identifier: MIT */
/* compat: every library version #if of the plugin, so the logic reads the
 * same on Debian 11 (libcurl 7.74, libmicrohttpd 0.9.72), Ubuntu 22.04 and
 * Debian 12. Include it after the library's own header: each part is there
 * only when that header was included. Build with -DUSAGE_COMPAT_FORCE_OLD
 * to take the older path on a newer system (how that path is tested). */
#ifndef USAGE_COMPAT_H
#define USAGE_COMPAT_H 1

/* ---- libcurl ---- */
#ifdef LIBCURL_VERSION_NUM

/* usage_curl_http_only limits a handle and its redirects to http and https.
 * CURLOPT_PROTOCOLS_STR came with 7.85; the bitmask before it is deprecated
 * since. */
#if LIBCURL_VERSION_NUM >= 0x075500 && !defined(USAGE_COMPAT_FORCE_OLD)
#define USAGE_CURL_PROTOCOLS "CURLOPT_PROTOCOLS_STR"
static inline void usage_curl_http_only(CURL *curl) {
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
}
#else
#define USAGE_CURL_PROTOCOLS "CURLOPT_PROTOCOLS"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static inline void usage_curl_http_only(CURL *curl) {
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS,
                   (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS,
                   (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
}
#pragma GCC diagnostic pop
#endif

#endif /* LIBCURL_VERSION_NUM */

/* ---- libmicrohttpd ---- */
#ifdef MHD_VERSION

#include "store.h"

#include <stddef.h>

/* usage_mhd_response_from_iov makes a response that sends the pieces
 * without copying them and calls done(cls) when it is freed (not on
 * failure: NULL). I/O vectors came with 0.9.73 (MHD_VERSION 0x00097204 in
 * microhttpd.h); where they are missing, USAGE_MHD_HAVE_IOVEC is 0 and the
 * function always fails, so the caller uses a content reader instead. */
#if MHD_VERSION >= 0x00097204 && !defined(USAGE_COMPAT_FORCE_OLD)
#define USAGE_MHD_HAVE_IOVEC 1
_Static_assert(sizeof(usage_iov_t) == sizeof(struct MHD_IoVec) &&
                   offsetof(usage_iov_t, base) ==
                       offsetof(struct MHD_IoVec, iov_base) &&
                   offsetof(usage_iov_t, len) ==
                       offsetof(struct MHD_IoVec, iov_len),
               "usage_iov_t must be laid out like struct MHD_IoVec");
static inline struct MHD_Response *
usage_mhd_response_from_iov(const usage_iov_t *iov, size_t n,
                            MHD_ContentReaderFreeCallback done, void *cls) {
  return MHD_create_response_from_iovec((const struct MHD_IoVec *)iov,
                                        (unsigned int)n, done, cls);
}
#else
#define USAGE_MHD_HAVE_IOVEC 0
static inline struct MHD_Response *
usage_mhd_response_from_iov(const usage_iov_t *iov, size_t n,
                            MHD_ContentReaderFreeCallback done, void *cls) {
  (void)iov;
  (void)n;
  (void)done;
  (void)cls;
  return NULL;
}
#endif

/* usage_mhd_response_from_data makes a response that sends data[0, len)
 * without copying it and calls done(cls) when it is freed (not on failure:
 * NULL). The free callback with its own argument came with 0.9.73
 * (MHD_VERSION 0x00097302); where it is missing, USAGE_MHD_HAVE_DATA_CLS is
 * 0 and the function always fails, so the caller uses a content reader. */
#if MHD_VERSION >= 0x00097302 && !defined(USAGE_COMPAT_FORCE_OLD)
#define USAGE_MHD_HAVE_DATA_CLS 1
static inline struct MHD_Response *
usage_mhd_response_from_data(const char *data, size_t len,
                             MHD_ContentReaderFreeCallback done, void *cls) {
  return MHD_create_response_from_buffer_with_free_callback_cls(
      len, (void *)data, done, cls);
}
#else
#define USAGE_MHD_HAVE_DATA_CLS 0
static inline struct MHD_Response *
usage_mhd_response_from_data(const char *data, size_t len,
                             MHD_ContentReaderFreeCallback done, void *cls) {
  (void)data;
  (void)len;
  (void)done;
  (void)cls;
  return NULL;
}
#endif

#endif /* MHD_VERSION */

#endif
