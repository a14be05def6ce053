/* SPDX-License-Identifier: MIT */
/* dispatch: committed samples -> value_list_t -> plugin_dispatch_values.
 * The only code that builds collectd value lists; usage(5) documents the
 * identifier mapping it implements. */
#ifndef USAGE_DISPATCH_H
#define USAGE_DISPATCH_H 1

#include "collectd.h"

#include "store.h"

#include <stddef.h>

/* usage_dispatch_identifier writes the collectd identifier parts of a
 * sample: plugin instance = source, type = the family's types.db type, type
 * instance = family stem and label values joined by "-" (shortened with a
 * hash when longer than collectd allows). Exposed for the unit tests. */
void usage_dispatch_type_instance(const usage_sample_t *s, char *out,
                                  size_t size);

/* usage_dispatch_batch dispatches every sample of a batch that has a
 * source (the exporter's build info has none) with the source's interval.
 * A DERIVE value that is NaN, infinite or outside [-2^63, 2^63) is not
 * dispatched (never wrapped): one ERROR line names the series, throttled
 * to one an hour process-wide. Returns how many failed or were skipped. */
int usage_dispatch_batch(const usage_batch_t *b, cdtime_t interval);

#endif
