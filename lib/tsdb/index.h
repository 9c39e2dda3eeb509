/* The series store's inverted index: for each label name and value, the
 * sorted ids of the series carrying it (postings), as in Prometheus' head
 * block. Internal to lib/tsdb; callers hold the store's lock. */
#ifndef USHER_TSDB_INDEX_H
#define USHER_TSDB_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "tsdb/labels.h"

struct usher_index;

struct usher_index *usher_index_new(void);
void usher_index_free(struct usher_index *ix);
/* Adds series id with labels l; ids must be added in increasing order. */
void usher_index_add(struct usher_index *ix, uint32_t id, const struct usher_labels *l);
/* Removes series id (added with the same labels). */
void usher_index_remove(struct usher_index *ix, uint32_t id, const struct usher_labels *l);
/* The sorted ids of the series that may match every matcher: exact for the
 * matchers that do not match the empty string, a superset for those that
 * do (the caller checks those on the series' labels). *ids is malloc'd
 * (free it); *n may be 0. */
void usher_index_select(const struct usher_index *ix, const struct usher_matcher *m, size_t nm,
			uint32_t **ids, size_t *n);
/* Calls fn for every label name (unordered). */
void usher_index_names(const struct usher_index *ix, void (*fn)(void *arg, const char *name),
		       void *arg);
/* Calls fn for every value of label name (unordered). */
void usher_index_values(const struct usher_index *ix, const char *name,
			void (*fn)(void *arg, const char *value), void *arg);
/* Heap bytes the index holds. */
size_t usher_index_bytes(const struct usher_index *ix);

#endif
