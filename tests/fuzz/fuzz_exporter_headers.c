/* SPDX-License-Identifier: MIT */
/* fuzz_exporter_headers: the exporter's header parsing. The input up to the
 * first newline is an Accept header (usage_exporter_negotiate), the rest an
 * Accept-Encoding header (usage_exporter_wants_gzip); each is also tried
 * alone and the whole input as either. The Authorization header is decoded
 * by libmicrohttpd (MHD_basic_auth_get_username_password), not by the
 * plugin, so there is no decoder of ours to fuzz. */
#include "exporter.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  if (s == NULL)
    return 0;
  usage_exporter_negotiate(s);
  usage_exporter_wants_gzip(s);
  char *nl = memchr(s, '\n', size);
  if (nl != NULL) {
    *nl = 0;
    usage_format_t fmt = usage_exporter_negotiate(s);
    int gzip = usage_exporter_wants_gzip(nl + 1);
    if (fmt != USAGE_FMT_TEXT && fmt != USAGE_FMT_OPENMETRICS)
      abort();
    if (gzip != 0 && gzip != 1)
      abort();
  }
  usage_exporter_negotiate(NULL);
  usage_exporter_wants_gzip(NULL);
  free(s);
  return 0;
}
