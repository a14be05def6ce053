/* SPDX-License-Identifier: MIT */
/* statefile: small state files that survive a collectd restart (watermarks,
 * de-duplication windows, counters). Written atomically: a temporary file
 * in the same directory, fsync, rename over the old one, fsync of the
 * directory, so a crash leaves the old or the new file, never a mix (the
 * temporary file is created O_EXCL | O_NOFOLLOW: nothing planted under
 * its name is written through). The
 * first line names the format, the kind and the source; the rest is the
 * caller's. A file that is damaged or belongs to another source is renamed
 * aside and reported, never trusted. */
#ifndef USAGE_STATEFILE_H
#define USAGE_STATEFILE_H 1

#include <stddef.h>

/* The largest body usage_state_save writes and usage_state_load accepts
 * (one limit, so that no saved file is refused on load). */
#define USAGE_STATE_MAX ((size_t)256 * 1024 * 1024)

/* usage_state_save replaces path with the header and data. 0 or an errno,
 * with the cause in err; EFBIG (nothing written, the old file kept) when
 * len is over USAGE_STATE_MAX. */
int usage_state_save(const char *path, const char *kind, const char *source,
                     const char *data, size_t len, char *err, size_t errlen);

/* usage_state_load reads what usage_state_save wrote. 0 with *data (NUL
 * terminated, malloc'd: the caller frees) and *len; ENOENT when there is no
 * file (a first start); EINVAL when the header is not ours, names another
 * kind or source, or the file is truncated: the file has then been renamed
 * to PATH.corrupt-UNIXTIME and err says so; another errno on I/O errors. A
 * caller that finds the body itself malformed calls usage_state_set_aside. */
int usage_state_load(const char *path, const char *kind, const char *source,
                     char **data, size_t *len, char *err, size_t errlen);

/* usage_state_set_aside renames path to PATH.corrupt-UNIXTIME and writes
 * the new name into err (after `why`). */
int usage_state_set_aside(const char *path, const char *why, char *err,
                          size_t errlen);

#endif
