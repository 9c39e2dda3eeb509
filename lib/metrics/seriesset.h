/* A set of series identities (a metric name and its label set, in any
 * order, empty values counting as absent), to find duplicate series in
 * exposition input and series new since the last scrape. Arena-backed. */
#ifndef USHER_METRICS_SERIESSET_H
#define USHER_METRICS_SERIESSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

struct usher_seriesset;

/* An empty set whose memory lives in a (freed with it). */
struct usher_seriesset *usher_seriesset_new(struct usher_arena *a);

/* Adds the series name{pairs} (pairs: NULL-terminated name/value array, may
 * be NULL). Returns true when it was not there yet; otherwise false, with
 * *prev_tag (when not NULL) the tag it was first added with. *hash (when
 * not NULL) gets the series' 64-bit hash, the same for the same series
 * whatever the label order. */
bool usher_seriesset_add(struct usher_seriesset *s, const char *name, const char *const *pairs,
			 int tag, int *prev_tag, uint64_t *hash);

/* The number of series in the set. */
size_t usher_seriesset_count(const struct usher_seriesset *s);

#endif
