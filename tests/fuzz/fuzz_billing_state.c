/* SPDX-License-Identifier: MIT */
/* fuzz_billing_state: a StateFile body into usage_billing_restore. A body
 * that is accepted must serialise into one that is accepted again (what a
 * restart after a restart reads), and a page may follow it: new records
 * and re-ratings of the restored ids (their figures, label sets, event
 * dates), whose commit must serialise into an accepted body too. */
#include "api/billing/billing.h"
#include "fuzz_common.h"

#include <stdio.h>

#define REC(id, ev, cust, data, sell)                                          \
  "{\"id\":" id ",\"eventDate\":\"2024-05-01T" ev "Z\",\"customerId\":" cust   \
  ",\"callClass\":\"DATA\",\"usageDirection\":\"OUTBOUND\","                   \
  "\"dataQuantity\":" data ",\"durationQuantity\":1,\"sellPrice\":" sell       \
  ",\"buyPrice\":0.5}"
static const char page[] = "[" REC("1", "12:00:00", "1001", "1", "0.5") "," REC(
    "2", "11:59:00", "1001", "3.25",
    "0.125") "," REC("7", "11:58:20", "1002", "0",
                     "1") "," REC("9", "12:00:00", "7", "2",
                                  "0.5") "," REC("1", "12:00:00", "1001", "4",
                                                 "0.5") "]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  usage_billing_conf_t conf;
  if (usage_billing_conf_default(&conf) != 0)
    return 0;
  usage_billing_t *b = usage_billing_create(&conf);
  usage_billing_t *again = usage_billing_create(&conf);
  char *body = fuzz_copy(data, size);
  usage_buf_t out;
  usage_buf_init(&out, 0);
  if (b == NULL || again == NULL || body == NULL)
    goto done;
  int dropped = 0;
  char err[256];
  if (usage_billing_restore(b, body, size, &dropped, err, sizeof(err)) != 0)
    goto done;
  if (usage_billing_serialize(b, &out) != 0)
    goto done;
  if (usage_billing_restore(again, usage_buf_str(&out), usage_buf_len(&out),
                            &dropped, err, sizeof(err)) != 0) {
    fprintf(stderr, "own state refused: %s\n%s\n", err, usage_buf_str(&out));
    abort();
  }
  usage_billing_begin(b, 1714600000.0);
  usage_billing_page_t res;
  memset(&res, 0, sizeof(res));
  if (usage_billing_page(b, page, sizeof(page) - 1, &res) == 0) {
    usage_billing_commit(b);
    usage_buf_reset(&out);
    if (usage_billing_serialize(b, &out) == 0) {
      usage_billing_t *third = usage_billing_create(&conf);
      if (third != NULL &&
          usage_billing_restore(third, usage_buf_str(&out), usage_buf_len(&out),
                                &dropped, err, sizeof(err)) != 0) {
        fprintf(stderr, "own state after a page refused: %s\n%s\n", err,
                usage_buf_str(&out));
        abort();
      }
      usage_billing_destroy(third);
    }
  } else {
    usage_billing_abort(b);
  }
done:
  usage_buf_free(&out);
  free(body);
  usage_billing_destroy(again);
  usage_billing_destroy(b);
  usage_billing_conf_clear(&conf);
  return 0;
}
