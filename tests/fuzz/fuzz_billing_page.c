/* SPDX-License-Identifier: MIT */
/* fuzz_billing_page: one customer-usage-data page body into a fresh billing
 * aggregator, then the scrape's end: abort, or prepare + serialize + commit
 * (chosen by the low bit of the length) and the samples of the result. */
#include "api/billing/billing.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  usage_billing_conf_t conf;
  if (usage_billing_conf_default(&conf) != 0)
    return 0;
  usage_billing_t *b = usage_billing_create(&conf);
  char *body = fuzz_copy(data, size);
  if (b == NULL || body == NULL)
    goto done;
  usage_billing_begin(b, 1714600000.0);
  usage_billing_page_t res;
  memset(&res, 0, sizeof(res));
  int rc = usage_billing_page(b, body, size, &res);
  if (rc != 0 || (size & 1)) {
    usage_billing_abort(b);
  } else {
    usage_buf_t out;
    usage_buf_init(&out, 0);
    usage_billing_serialize(b, &out);
    usage_buf_free(&out);
    usage_billing_prepare(b);
    usage_billing_commit(b);
    usage_batch_t *batch = usage_batch_create("fuzz", "billing");
    if (batch != NULL)
      usage_billing_samples(b, batch);
    usage_batch_destroy(batch);
  }
done:
  free(body);
  usage_billing_destroy(b);
  usage_billing_conf_clear(&conf);
  return 0;
}
