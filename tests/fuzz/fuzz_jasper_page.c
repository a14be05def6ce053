/* SPDX-License-Identifier: MIT */
/* fuzz_jasper_page: a Get Usage by Rate Plan body through the page parser
 * (twice into one aggregation, as two pages of a set, then emitted and held
 * against the last figures) and through the error-body reader. */
#include "api/jasper/jasper.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *body = fuzz_copy(data, size);
  if (body == NULL)
    return 0;
  char code[32], message[256];
  usage_jasper_api_error(body, size, code, sizeof(code), message,
                         sizeof(message));
  usage_jasper_error_lookup(code);

  usage_jasper_agg_t *a = usage_jasper_agg_create(1, 4);
  usage_jasper_hold_t *h = usage_jasper_hold_create();
  usage_batch_t *batch = usage_batch_create("fuzz", "jasper");
  if (a == NULL || h == NULL || batch == NULL)
    goto done;
  usage_jasper_page_t page;
  int rc = 0;
  for (int i = 0; i < 2 && rc == 0; i++) {
    memset(&page, 0, sizeof(page));
    rc = usage_jasper_parse_page(a, body, size, &page);
  }
  if (rc == 0) {
    uint64_t held = 0;
    usage_jasper_agg_hold(a, h, usage_jasper_agg_cycle(a), &held);
    usage_jasper_agg_emit(a, "plan", USAGE_JASPER_ALL, batch);
    usage_jasper_agg_zones(a);
    usage_jasper_agg_devices_kept(a);
    usage_jasper_agg_devices_omitted(a);
  }
  usage_jasper_agg_reset(a);
done:
  usage_batch_destroy(batch);
  usage_jasper_hold_destroy(h);
  usage_jasper_agg_destroy(a);
  free(body);
  return 0;
}
