/* SPDX-License-Identifier: MIT */
/* text: making upstream text safe for one log line or a status page. */
#ifndef USAGE_TEXT_H
#define USAGE_TEXT_H 1

#include <stddef.h>

/* usage_text_clean copies s (NULL = "") into dst of size bytes, replacing
 * control characters (newlines included) by spaces, so that one event stays
 * one log line; cut at size - 1 bytes. */
void usage_text_clean(char *dst, size_t size, const char *s);

/* usage_text_redact is usage_text_clean that also hides what an error text
 * may quote from a configuration or an upstream body, for readers who have
 * not authenticated: every e-mail address becomes "…" and the inside of
 * every "double" or 'single' quoted value becomes "…" (an unclosed quote
 * hides the rest). Cut at size - 1 bytes, never inside "…". */
void usage_text_redact(char *dst, size_t size, const char *s);

#endif
