/* SPDX-License-Identifier: MIT */
/* fuzz_ccc: the CCC body parsers. The first byte picks the parser (0:
 * GetServiceUsage, 1: GetServiceUserUsage, 2: with user details, 3:
 * SearchServiceStatusChanges, then merged into a stream; the error-body
 * reader runs on every input); the rest is the body. */
#include "api/ccc/ccc.h"
#include "fuzz_common.h"

#define SVC "0123456789abcdef0123456789abcdef"
#define USR "fedcba9876543210fedcba9876543210"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned which = data[0] % 4;
  char *body = fuzz_copy(data + 1, size - 1);
  size_t len = size - 1;
  usage_batch_t *b = usage_batch_create("fuzz", SVC);
  if (body == NULL || b == NULL)
    goto done;
  char code[64], message[256];
  usage_ccc_api_error(body, len, code, sizeof(code), message, sizeof(message));

  usage_parse_result_t res;
  memset(&res, 0, sizeof(res));
  if (which == 0) {
    usage_ccc_parse_service_usage(body, len, SVC, b, &res);
  } else if (which <= 2) {
    usage_ccc_parse_user_usage(body, len, SVC, USR, "Daily", which == 2, b,
                               &res);
  } else {
    usage_ccc_changes_page_t page;
    memset(&page, 0, sizeof(page));
    if (usage_ccc_parse_changes_page(body, len, &page, &res) == 0) {
      usage_ccc_changes_t c;
      memset(&c, 0, sizeof(c));
      size_t added = 0;
      if (usage_ccc_changes_merge(&c, "all", page.items, page.num, 300.0,
                                  1714600000.0, &added) == 0)
        usage_ccc_changes_add_samples(&c, b);
      usage_ccc_changes_clear(&c);
    }
    usage_ccc_changes_page_clear(&page);
  }
done:
  usage_batch_destroy(b);
  free(body);
  return 0;
}
