/* SPDX-License-Identifier: MIT */
/* dispatch: committed samples -> value_list_t -> plugin_dispatch_values.
 * The only code that builds collectd value lists; usage(5) documents the
 * identifier mapping it implements. One dispatcher per source block keeps,
 * from one commit of an entity to the next, what each series' value list
 * needs besides its value (the type instance and the meta data), so an
 * unchanged series costs collectd's own work and little else. */
#ifndef USAGE_DISPATCH_H
#define USAGE_DISPATCH_H 1

#include "collectd.h"

#include "families.h"
#include "store.h"

#include <stddef.h>

/* usage_dispatch_type_instance writes the type instance of a sample: the
 * family stem and label values joined by "-" (shortened with a hash when
 * longer than collectd allows). Exposed for the unit tests. */
void usage_dispatch_type_instance(const usage_sample_t *s, char *out,
                                  size_t size);

/* An entity with more series than this is dispatched without being kept
 * (each kept series costs about 200 bytes plus its meta data): a block with
 * 100,000 devices sent to collectd does not hold a second copy of them. */
#define USAGE_DISPATCH_KEEP_MAX 50000

typedef struct usage_dispatch_s usage_dispatch_t;

/* usage_dispatch_create makes the dispatcher of one source: every value
 * list carries `interval`; the families whose flag is set in skip (an array
 * of FAM_COUNT flags, or NULL for none) are not dispatched (they reach the
 * exporter only). NULL on ENOMEM. */
usage_dispatch_t *usage_dispatch_create(cdtime_t interval,
                                        const unsigned char *skip);
/* usage_dispatch_set_meta_data: with 0, the value lists carry no meta
 * data (the labels are in the type instance; the "label:NAME" entries cost
 * collectd a copy and a free of each per value list). Default 1. Call it
 * before the first batch. */
void usage_dispatch_set_meta_data(usage_dispatch_t *d, int on);
void usage_dispatch_destroy(usage_dispatch_t *d); /* accepts NULL */

/* usage_dispatch_batch dispatches every sample of a batch that has a
 * source (the exporter's build info has none) and whose family is not
 * skipped. The series of the batch's entity replace the ones kept from its
 * previous commit: a series (family and every label name and value) that
 * was there reuses its type instance and meta data, a new one gets them
 * built, one no longer present is forgotten. A DERIVE value that is NaN,
 * infinite or outside [-2^63, 2^63) is not dispatched (never wrapped): one
 * ERROR line names the series, throttled to one an hour process-wide.
 * Thread-safe (commits of one source may come from several workers).
 * Returns how many failed or were skipped because of their value. */
int usage_dispatch_batch(usage_dispatch_t *d, const usage_batch_t *b);

/* usage_dispatch_kept counts the series kept for the next commits (for
 * the tests). */
size_t usage_dispatch_kept(usage_dispatch_t *d);

#endif
