/* SPDX-License-Identifier: MIT */
/* http: the only libcurl code of the plugin (see http.h). */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compat.h" /* after the library headers it adapts */

#define SECRET_MAX 65536
/* A response buffer that grew above this is freed before the next request
 * and after a failed one, instead of being kept for reuse. */
#define HTTP_BODY_KEEP (1024 * 1024)

static pthread_mutex_t secret_lock = PTHREAD_MUTEX_INITIALIZER;

int usage_secret_get(usage_secret_t *s, const char **out, char *err,
                     size_t errlen) {
  *out = NULL;
  if (s->value != NULL) {
    *out = s->value;
    return 0;
  }
  if (s->file == NULL)
    return 0;
  struct stat st;
  if (stat(s->file, &st) != 0) {
    int e = errno;
    snprintf(err, errlen, "cannot read secret file \"%s\": %s", s->file,
             strerror(e));
    return e;
  }
  if (s->cached != NULL && st.st_ino == s->ino && st.st_size == s->size &&
      st.st_mtim.tv_sec == s->mtime.tv_sec &&
      st.st_mtim.tv_nsec == s->mtime.tv_nsec) {
    *out = s->cached;
    return 0;
  }
  int fd = open(s->file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot read secret file \"%s\": %s", s->file,
             strerror(e));
    return e;
  }
  char *buf = malloc(SECRET_MAX + 1);
  size_t len = 0;
  ssize_t n = 0;
  while (buf != NULL && len < SECRET_MAX &&
         (n = read(fd, buf + len, SECRET_MAX - len)) > 0)
    len += (size_t)n;
  int e = errno;
  close(fd);
  if (buf == NULL || n < 0) {
    free(buf);
    snprintf(err, errlen, "cannot read secret file \"%s\": %s", s->file,
             buf ? strerror(e) : "out of memory");
    return buf ? e : ENOMEM;
  }
  if (len >= SECRET_MAX) {
    free(buf);
    snprintf(err, errlen, "secret file \"%s\" is larger than %d bytes", s->file,
             SECRET_MAX);
    return EFBIG;
  }
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    len--;
  buf[len] = 0;
  if (len == 0 || memchr(buf, '\n', len) != NULL ||
      memchr(buf, 0, len) != NULL) {
    free(buf);
    snprintf(err, errlen,
             "secret file \"%s\" must hold the secret alone on one line",
             s->file);
    return EINVAL;
  }
  if (s->cached != NULL) {
    explicit_bzero(s->cached, strlen(s->cached));
    free(s->cached);
  }
  s->cached = buf;
  s->ino = st.st_ino;
  s->size = st.st_size;
  s->mtime = st.st_mtim;
  *out = s->cached;
  return 0;
}

static void free_secret_string(char *p) {
  if (p == NULL)
    return;
  explicit_bzero(p, strlen(p));
  free(p);
}

void usage_secret_clear(usage_secret_t *s) {
  free_secret_string(s->value);
  free_secret_string(s->cached);
  free(s->file);
  memset(s, 0, sizeof(*s));
}

void usage_http_conf_clear(usage_http_conf_t *c) {
  free(c->url);
  free(c->user);
  usage_secret_clear(&c->password);
  usage_secret_clear(&c->bearer);
  for (size_t i = 0; i < c->headers_num; i++)
    free_secret_string(c->headers[i]);
  free(c->headers);
  for (size_t i = 0; i < c->header_files_num; i++) {
    free(c->header_files[i].name);
    usage_secret_clear(&c->header_files[i].value);
  }
  free(c->header_files);
  free(c->cacert);
  free(c->client_cert);
  free(c->client_key);
  memset(c, 0, sizeof(*c));
}

struct usage_http_s {
  usage_http_conf_t *conf;
  CURL *curl;
  /* transfers run in a multi handle of their own (connections are kept in
   * it from one request to the next), so that usage_http_cancel can wake
   * the wait for the socket at once */
  CURLM *multi;
  atomic_int cancelled;
  usage_buf_t body;
  long retry_after;
  const char *capture; /* response header to keep (request's) */
  char captured[8192];
  int has_captured;
  char errbuf[CURL_ERROR_SIZE];
};

int usage_http_global_init(void) {
  return curl_global_init(CURL_GLOBAL_ALL) == CURLE_OK ? 0 : EIO;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
  usage_http_t *h = ud;
  size_t n = size * nmemb;
  if (usage_buf_append(&h->body, ptr, n) != 0)
    return 0; /* over the cap or ENOMEM: abort the transfer */
  return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
  usage_http_t *h = ud;
  size_t n = size * nmemb;
  size_t clen = h->capture ? strlen(h->capture) : 0;
  if (clen > 0 && n > clen + 1 && strncasecmp(ptr, h->capture, clen) == 0 &&
      ptr[clen] == ':') {
    const char *v = ptr + clen + 1;
    size_t len = n - clen - 1;
    while (len > 0 && (*v == ' ' || *v == '\t'))
      v++, len--;
    while (len > 0 &&
           (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
      len--;
    if (len < sizeof(h->captured)) {
      memcpy(h->captured, v, len);
      h->captured[len] = 0;
      h->has_captured = 1;
    }
  }
  if (n > 12 && strncasecmp(ptr, "Retry-After:", 12) == 0) {
    char tmp[64];
    size_t len = n - 12 < sizeof(tmp) - 1 ? n - 12 : sizeof(tmp) - 1;
    memcpy(tmp, ptr + 12, len);
    tmp[len] = 0;
    char *end;
    long v = strtol(tmp, &end, 10);
    if (end != tmp && v >= 0)
      h->retry_after = v;
    else {
      time_t t = curl_getdate(tmp, NULL);
      if (t > 0)
        h->retry_after = t > time(NULL) ? (long)(t - time(NULL)) : 0;
    }
  }
  return n;
}

/* xferinfo_cb: libcurl's progress callback, called while a transfer
 * waits or moves data; a non-zero return aborts it
 * (CURLE_ABORTED_BY_CALLBACK). */
static int xferinfo_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow) {
  (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
  usage_http_t *h = ud;
  return atomic_load(&h->cancelled) ? 1 : 0;
}

usage_http_t *usage_http_create(usage_http_conf_t *conf) {
  usage_http_t *h = calloc(1, sizeof(*h));
  if (h == NULL)
    return NULL;
  h->conf = conf;
  atomic_init(&h->cancelled, 0);
  usage_buf_init(&h->body, conf->max_body);
  h->curl = curl_easy_init();
  h->multi = curl_multi_init();
  if (h->curl == NULL || h->multi == NULL) {
    curl_easy_cleanup(h->curl);
    curl_multi_cleanup(h->multi);
    free(h);
    return NULL;
  }
  return h;
}

void usage_http_destroy(usage_http_t *h) {
  if (h == NULL)
    return;
  curl_easy_cleanup(h->curl);
  curl_multi_cleanup(h->multi);
  usage_buf_free(&h->body);
  free(h);
}

void usage_http_cancel(usage_http_t *h) {
  atomic_store(&h->cancelled, 1);
  curl_multi_wakeup(h->multi);
}

/* perform runs the transfer set up on h->curl, like curl_easy_perform
 * (which waits for the socket in steps of up to a second), in h->multi:
 * usage_http_cancel wakes the wait, libcurl then calls xferinfo_cb,
 * which aborts the transfer. */
static CURLcode perform(usage_http_t *h) {
  if (curl_multi_add_handle(h->multi, h->curl) != CURLM_OK)
    return CURLE_OUT_OF_MEMORY;
  CURLcode rc = CURLE_OK;
  for (;;) {
    int running = 0;
    if (curl_multi_perform(h->multi, &running) != CURLM_OK) {
      rc = CURLE_OUT_OF_MEMORY;
      break;
    }
    CURLMsg *m;
    int left, done = 0;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL)
      if (m->msg == CURLMSG_DONE && m->easy_handle == h->curl) {
        rc = m->data.result;
        done = 1;
      }
    if (done)
      break;
    if (running == 0) { /* ended without a result: never seen */
      rc = CURLE_GOT_NOTHING;
      break;
    }
    if (curl_multi_poll(h->multi, NULL, 0, 1000, NULL) != CURLM_OK) {
      rc = CURLE_OUT_OF_MEMORY;
      break;
    }
  }
  curl_multi_remove_handle(h->multi, h->curl);
  return rc;
}

int usage_http_escape(usage_buf_t *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
        (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
        *p == '~') {
      usage_buf_putc(b, (char)*p);
    } else {
      char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      usage_buf_append(b, enc, 3);
    }
  }
  return usage_buf_failed(b);
}

/* classify: the error class of a failed transfer. A connection refused
 * (nothing listens), one closed before any answer (a crashing server, a
 * proxy giving up) and a body cut off part-way (the server died while
 * answering) are told apart: each points at a different fault. `status`
 * is the HTTP status received, 0 when no answer began. */
static usage_http_err_t classify(CURL *curl, CURLcode rc, long status) {
  long os_errno = 0;
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    return USAGE_HTTP_TIMEOUT;
  case CURLE_COULDNT_CONNECT:
    if (curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK &&
        os_errno == ECONNREFUSED)
      return USAGE_HTTP_REFUSED;
    return USAGE_HTTP_CONNECT;
  case CURLE_GOT_NOTHING:
    return USAGE_HTTP_DROPPED;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
    return status > 0 ? USAGE_HTTP_TRUNCATED : USAGE_HTTP_DROPPED;
  case CURLE_PARTIAL_FILE:
    return USAGE_HTTP_TRUNCATED;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return USAGE_HTTP_CONNECT;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
    return USAGE_HTTP_TLS;
  default:
    return USAGE_HTTP_FAILED;
  }
}

/* describe writes the cause of a failed transfer of class err into out:
 * what happened in words, then libcurl's own text. */
static void describe(CURL *curl, usage_http_err_t err, long status,
                     const char *detail, char *out, size_t len) {
  curl_off_t got = -1, want = -1;
  switch (err) {
  case USAGE_HTTP_REFUSED:
    snprintf(out, len, "connection refused (%s)", detail);
    break;
  case USAGE_HTTP_DROPPED:
    snprintf(out, len, "connection closed by the server before any answer (%s)",
             detail);
    break;
  case USAGE_HTTP_TRUNCATED:
    curl_easy_getinfo(curl, CURLINFO_SIZE_DOWNLOAD_T, &got);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &want);
    if (got >= 0 && want > 0)
      snprintf(out, len,
               "answer cut off: HTTP %ld, %" CURL_FORMAT_CURL_OFF_T
               " of %" CURL_FORMAT_CURL_OFF_T " body bytes arrived (%s)",
               status, got, want, detail);
    else
      snprintf(out, len,
               "answer cut off: HTTP %ld, the connection closed after "
               "%" CURL_FORMAT_CURL_OFF_T " body bytes (%s)",
               status, got > 0 ? got : 0, detail);
    break;
  default:
    snprintf(out, len, "%s", detail);
  }
}

int usage_http_get(usage_http_t *h, const char *path_query,
                   usage_http_resp_t *resp) {
  usage_http_req_t req = {.path_query = path_query};
  return usage_http_request(h, &req, resp);
}

int usage_http_request(usage_http_t *h, const usage_http_req_t *req,
                       usage_http_resp_t *resp) {
  usage_http_conf_t *c = h->conf;
  const char *path_query = req->path_query ? req->path_query : "";
  CURL *curl = h->curl;
  struct curl_slist *hdrs = NULL;
  usage_buf_t url;
  int ret = 0;

  memset(resp, 0, sizeof(*resp));
  resp->retry_after = -1;
  resp->body = "";
  if (atomic_load(&h->cancelled)) {
    resp->err = USAGE_HTTP_STOPPED;
    snprintf(resp->error, sizeof(resp->error), "stopped: not sent");
    return (int)USAGE_HTTP_STOPPED;
  }
  usage_buf_init(&url, 0);
  /* the previous body is the caller's until now; a large one goes */
  usage_buf_shrink(&h->body, HTTP_BODY_KEEP);
  h->retry_after = -1;
  h->errbuf[0] = 0;
  h->capture = req->capture;
  h->has_captured = 0;
  h->captured[0] = 0;

  /* Secrets are shared by the workers of a source: read them and hand
   * them to libcurl (which copies them) under one lock. */
  pthread_mutex_lock(&secret_lock);
  const char *password = NULL, *bearer = NULL;
  if (usage_secret_get(&c->password, &password, resp->error,
                       sizeof(resp->error)) != 0 ||
      usage_secret_get(&c->bearer, &bearer, resp->error, sizeof(resp->error)) !=
          0) {
    pthread_mutex_unlock(&secret_lock);
    resp->err = USAGE_HTTP_SECRET;
    return (int)USAGE_HTTP_SECRET;
  }

  if (req->url != NULL) {
    usage_buf_puts(&url, req->url);
  } else {
    usage_buf_puts(&url, c->url);
    usage_buf_puts(&url, path_query);
  }
  hdrs = curl_slist_append(hdrs, "Accept: application/json");
  for (size_t i = 0; i < c->headers_num; i++)
    if (hdrs != NULL)
      hdrs = curl_slist_append(hdrs, c->headers[i]);
  for (size_t i = 0; i < c->header_files_num && hdrs != NULL; i++) {
    const char *v = NULL;
    if (usage_secret_get(&c->header_files[i].value, &v, resp->error,
                         sizeof(resp->error)) != 0) {
      pthread_mutex_unlock(&secret_lock);
      resp->err = USAGE_HTTP_SECRET;
      ret = (int)USAGE_HTTP_SECRET;
      goto out;
    }
    size_t n = strlen(c->header_files[i].name) + strlen(v) + 3;
    char *line = malloc(n);
    if (line == NULL) {
      curl_slist_free_all(hdrs);
      hdrs = NULL;
      break;
    }
    snprintf(line, n, "%s: %s", c->header_files[i].name, v);
    hdrs = curl_slist_append(hdrs, line);
    explicit_bzero(line, n);
    free(line);
  }
  const char *extra[] = {req->header, req->header2};
  for (size_t i = 0; i < 2; i++)
    if (hdrs != NULL && extra[i] != NULL)
      hdrs = curl_slist_append(hdrs, extra[i]);
  char ctype[128];
  if (hdrs != NULL && req->body != NULL) {
    snprintf(ctype, sizeof(ctype), "Content-Type: %s",
             req->content_type ? req->content_type : "application/json");
    hdrs = curl_slist_append(hdrs, ctype);
  }
  if (usage_buf_failed(&url) || hdrs == NULL) {
    pthread_mutex_unlock(&secret_lock);
    snprintf(resp->error, sizeof(resp->error), "out of memory");
    resp->err = USAGE_HTTP_FAILED;
    ret = (int)USAGE_HTTP_FAILED;
    goto out;
  }

  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, usage_buf_data(&url));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  if (req->body != NULL) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)req->body_len);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
  }
  if (req->method != NULL && strcmp(req->method, "GET") != 0 &&
      !(req->body != NULL && strcmp(req->method, "POST") == 0))
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
  usage_curl_http_only(curl);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl, CURLOPT_UNRESTRICTED_AUTH, 0L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "collectd-usage/" PACKAGE_VERSION);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, h);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, h);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, h->errbuf);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, h);
  long timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : c->timeout_ms;
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   timeout_ms < 10000 ? timeout_ms : 10000L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, c->verify_peer ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, c->verify_host ? 2L : 0L);
  if (c->cacert != NULL)
    curl_easy_setopt(curl, CURLOPT_CAINFO, c->cacert);
  if (c->client_cert != NULL)
    curl_easy_setopt(curl, CURLOPT_SSLCERT, c->client_cert);
  if (c->client_key != NULL)
    curl_easy_setopt(curl, CURLOPT_SSLKEY, c->client_key);
  if (req->no_conf_auth) {
    /* a sign-in request carries its own credentials */
  } else if (c->user != NULL) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, c->user);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, password ? password : "");
  } else if (bearer != NULL) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
    curl_easy_setopt(curl, CURLOPT_XOAUTH2_BEARER, bearer);
  }

  pthread_mutex_unlock(&secret_lock);

  CURLcode rc = perform(h);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
  curl_off_t first_byte = 0, total = 0; /* microseconds */
  if (resp->status > 0 &&
      curl_easy_getinfo(curl, CURLINFO_STARTTRANSFER_TIME_T, &first_byte) ==
          CURLE_OK &&
      curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME_T, &total) == CURLE_OK &&
      first_byte > 0 && total >= first_byte)
    resp->after_first_byte = (double)(total - first_byte) / 1e6;
  char *ct = NULL;
  if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK &&
      ct != NULL)
    snprintf(resp->content_type, sizeof(resp->content_type), "%s", ct);
  resp->retry_after = h->retry_after;
  resp->captured = h->has_captured ? h->captured : NULL;

  if (rc != CURLE_OK) {
    if (rc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&h->cancelled)) {
      resp->err = USAGE_HTTP_STOPPED;
      snprintf(resp->error, sizeof(resp->error), "stopped: aborted");
    } else if (rc == CURLE_WRITE_ERROR && usage_buf_failed(&h->body) == EFBIG) {
      resp->err = USAGE_HTTP_TOO_LARGE;
      snprintf(resp->error, sizeof(resp->error),
               "response body larger than %zu bytes (MaxResponseSize)",
               c->max_body);
    } else {
      resp->err = classify(curl, rc, resp->status);
      size_t len = strlen(h->errbuf);
      while (len > 0 && h->errbuf[len - 1] == '\n')
        h->errbuf[--len] = 0;
      describe(curl, resp->err, resp->status,
               h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc), resp->error,
               sizeof(resp->error));
    }
    ret = (int)resp->err;
    usage_buf_shrink(&h->body, HTTP_BODY_KEEP); /* e.g. a refused body */
    goto out;
  }
  resp->body = usage_buf_str(&h->body);
  resp->len = usage_buf_len(&h->body);

out:
  /* The password and token set on the handle are not kept past the call. */
  curl_easy_setopt(curl, CURLOPT_PASSWORD, "");
  curl_easy_setopt(curl, CURLOPT_XOAUTH2_BEARER, "");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
  h->capture = NULL;
  /* the extra headers may carry a token: wipe libcurl's copies */
  for (struct curl_slist *l = hdrs; l != NULL; l = l->next)
    explicit_bzero(l->data, strlen(l->data));
  curl_slist_free_all(hdrs);
  usage_buf_free(&url);
  return ret;
}
