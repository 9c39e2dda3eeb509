/* An open-addressing hash map from 64-bit keys to non-NULL pointers
 * (linear probing, backward-shift deletion): the series store's tables of
 * series by id, series by label hash, and postings by label name/value. */
#ifndef USHER_TSDB_HASHMAP_H
#define USHER_TSDB_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

struct usher_u64map {
	uint64_t *keys;
	void **vals; /* NULL marks an empty slot */
	size_t cap;  /* a power of two, or 0 */
	size_t n;
};

/* A zeroed struct is an empty map. */
void usher_u64map_free(struct usher_u64map *m);
void *usher_u64map_get(const struct usher_u64map *m, uint64_t key);
/* Inserts or replaces; val must not be NULL. Aborts on out-of-memory. */
void usher_u64map_put(struct usher_u64map *m, uint64_t key, void *val);
/* Removes key if present. */
void usher_u64map_del(struct usher_u64map *m, uint64_t key);
/* Heap bytes held by the table. */
size_t usher_u64map_bytes(const struct usher_u64map *m);
/* A 64-bit hash of a string (FNV-1a, finalised). */
uint64_t usher_strhash(const char *s);

#endif
