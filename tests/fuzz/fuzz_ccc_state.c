/* SPDX-License-Identifier: MIT */
/* fuzz_ccc_state: a StateFile body into usage_ccc_changes_parse. Accepted
 * state is copied, merged into, turned into samples, and must serialise
 * into a body that is accepted again. */
#include "api/ccc/ccc.h"
#include "fuzz_common.h"

#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *body = fuzz_copy(data, size);
  if (body == NULL)
    return 0;
  usage_ccc_changes_t c, copy, again;
  memset(&c, 0, sizeof(c));
  memset(&copy, 0, sizeof(copy));
  memset(&again, 0, sizeof(again));
  usage_buf_t out;
  usage_buf_init(&out, 0);
  usage_batch_t *b = usage_batch_create("fuzz", "ccc");
  if (b == NULL || usage_ccc_changes_parse(body, size, &c) != 0)
    goto done;
  if (usage_ccc_changes_format(&c, &out) == 0 &&
      usage_ccc_changes_parse(usage_buf_str(&out), usage_buf_len(&out),
                              &again) != 0) {
    fprintf(stderr, "own state refused:\n%s\n", usage_buf_str(&out));
    abort();
  }
  if (usage_ccc_changes_copy(&copy, &c) != 0)
    goto done;
  usage_ccc_change_t item = {.service = "0123456789abcdef0123456789abcdef",
                             .change = "fedcba9876543210fedcba9876543210",
                             .status = "Active",
                             .changed_on = 1714590000.0};
  size_t added = 0;
  usage_ccc_changes_merge(&copy, "all", &item, 1, 300.0, 1714600000.0, &added);
  usage_ccc_changes_add_samples(&copy, b);
done:
  usage_batch_destroy(b);
  usage_buf_free(&out);
  usage_ccc_changes_clear(&again);
  usage_ccc_changes_clear(&copy);
  usage_ccc_changes_clear(&c);
  free(body);
  return 0;
}
