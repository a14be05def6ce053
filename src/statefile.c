/* SPDX-License-Identifier: MIT */
/* statefile: atomic, self-describing state files (see statefile.h). The
 * header line is "usage-state 1 KIND SOURCE-LENGTH:SOURCE BODY-LENGTH", so
 * a truncated file or one of another source is recognised. */
#include "statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAGIC "usage-state 1"

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void fsync_dir(const char *path) {
  char *copy = strdup(path);
  if (copy == NULL)
    return;
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(copy);
}

/* open_tmp creates a new temporary file beside path: O_EXCL and
 * O_NOFOLLOW, so a file or symbolic link planted under the name is never
 * written through; another name is tried a few times. -1 with errno. */
static int open_tmp(const char *path, char *tmp, size_t size) {
  static unsigned long seq;
  int fd = -1;
  for (int tries = 0; tries < 16 && fd < 0; tries++) {
    unsigned long n = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    if (snprintf(tmp, size, "%s.tmp-%ld-%lu", path, (long)getpid(), n) >=
        (int)size) {
      errno = ENAMETOOLONG;
      return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
      return -1;
  }
  return fd;
}

int usage_state_save(const char *path, const char *kind, const char *source,
                     const char *data, size_t len, char *err, size_t errlen) {
  char tmp[4096];
  if (len > USAGE_STATE_MAX) {
    /* the load would refuse it: an unloadable file is worse than none */
    snprintf(err, errlen,
             "state for \"%s\" would be %zu bytes, over the limit of %zu", path,
             len, (size_t)USAGE_STATE_MAX);
    return EFBIG;
  }
  int fd = open_tmp(path, tmp, sizeof(tmp));
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot write state file \"%s\": %s", tmp,
             strerror(e));
    return e;
  }
  char header[512];
  int hn = snprintf(header, sizeof(header), "%s %s %zu:%s %zu\n", STATE_MAGIC,
                    kind, strlen(source), source, len);
  int e = 0;
  if (hn < 0 || hn >= (int)sizeof(header))
    e = ENAMETOOLONG;
  if (e == 0)
    e = write_all(fd, header, (size_t)hn);
  if (e == 0)
    e = write_all(fd, data, len);
  if (e == 0 && fsync(fd) != 0)
    e = errno;
  if (close(fd) != 0 && e == 0)
    e = errno;
  if (e == 0 && rename(tmp, path) != 0)
    e = errno;
  if (e != 0) {
    snprintf(err, errlen, "cannot write state file \"%s\": %s", path,
             strerror(e));
    unlink(tmp);
    return e;
  }
  fsync_dir(path);
  return 0;
}

int usage_state_set_aside(const char *path, const char *why, char *err,
                          size_t errlen) {
  char aside[4096];
  snprintf(aside, sizeof(aside), "%s.corrupt-%ld", path, (long)time(NULL));
  if (rename(path, aside) != 0) {
    int e = errno;
    snprintf(err, errlen, "state file \"%s\" %s; cannot move it aside: %s",
             path, why, strerror(e));
    return e;
  }
  snprintf(err, errlen,
           "state file \"%s\" %s; moved to \"%s\", starting afresh", path, why,
           aside);
  return 0;
}

int usage_state_load(const char *path, const char *kind, const char *source,
                     char **data, size_t *len, char *err, size_t errlen) {
  *data = NULL;
  *len = 0;
  FILE *fh = fopen(path, "re");
  if (fh == NULL) {
    int e = errno;
    if (e != ENOENT)
      snprintf(err, errlen, "cannot read state file \"%s\": %s", path,
               strerror(e));
    return e;
  }
  char header[512];
  const char *why = NULL;
  char *body = NULL;
  size_t body_len = 0;
  const char *line = fgets(header, sizeof(header), fh);
  if (line == NULL && ferror(fh)) {
    int e = errno ? errno : EIO; /* e.g. EISDIR: unreadable, not damaged */
    fclose(fh);
    snprintf(err, errlen, "cannot read state file \"%s\": %s", path,
             strerror(e));
    return e;
  }
  if (line == NULL || strchr(header, '\n') == NULL) {
    why = "has no valid header";
  } else {
    char fkind[64];
    size_t slen = 0;
    int off = 0;
    if (sscanf(header, STATE_MAGIC " %63s %zu:%n", fkind, &slen, &off) != 2 ||
        off == 0)
      why = "is not a usage plugin state file";
    else if (strcmp(fkind, kind) != 0 || slen != strlen(source) ||
             strncmp(header + off, source, slen) != 0 ||
             header[off + (int)slen] != ' ')
      why = "belongs to another source";
    else {
      char *end;
      unsigned long long blen = strtoull(header + off + slen + 1, &end, 10);
      if (*end != '\n' || blen > USAGE_STATE_MAX)
        why = "has a damaged header";
      else {
        body_len = (size_t)blen;
        body = malloc(body_len + 1);
        if (body == NULL) {
          fclose(fh);
          snprintf(err, errlen, "out of memory reading \"%s\"", path);
          return ENOMEM;
        }
        size_t got = fread(body, 1, body_len, fh);
        int extra = fgetc(fh);
        if (got != body_len || extra != EOF)
          why = got != body_len ? "is truncated" : "has trailing data";
        body[got] = 0;
      }
    }
  }
  fclose(fh);
  if (why != NULL) {
    free(body);
    usage_state_set_aside(path, why, err, errlen);
    return EINVAL;
  }
  *data = body;
  *len = body_len;
  return 0;
}
