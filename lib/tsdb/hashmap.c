/* Linear-probing hash map from uint64 keys to pointers. */
#include "tsdb/hashmap.h"

#include <stdlib.h>

#include "core/mem.h"

static size_t slot(uint64_t key, size_t cap)
{
	key ^= key >> 31;
	key *= 0x9e3779b97f4a7c15ULL;
	key ^= key >> 29;
	return (size_t)key & (cap - 1);
}

void usher_u64map_free(struct usher_u64map *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->cap = m->n = 0;
}

void *usher_u64map_get(const struct usher_u64map *m, uint64_t key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	for (i = slot(key, m->cap); m->vals[i]; i = (i + 1) & (m->cap - 1))
		if (m->keys[i] == key)
			return m->vals[i];
	return NULL;
}

static void grow(struct usher_u64map *m)
{
	struct usher_u64map old = *m;
	size_t i;

	m->cap = old.cap ? old.cap * 2 : 16;
	m->keys = usher_calloc(m->cap, sizeof(*m->keys));
	m->vals = usher_calloc(m->cap, sizeof(*m->vals));
	m->n = 0;
	for (i = 0; i < old.cap; i++)
		if (old.vals[i])
			usher_u64map_put(m, old.keys[i], old.vals[i]);
	free(old.keys);
	free(old.vals);
}

void usher_u64map_put(struct usher_u64map *m, uint64_t key, void *val)
{
	size_t i;

	if ((m->n + 1) * 4 > m->cap * 3)
		grow(m);
	for (i = slot(key, m->cap); m->vals[i]; i = (i + 1) & (m->cap - 1))
		if (m->keys[i] == key) {
			m->vals[i] = val;
			return;
		}
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
}

void usher_u64map_del(struct usher_u64map *m, uint64_t key)
{
	size_t i, j, k, mask = m->cap - 1;

	if (!m->cap)
		return;
	for (i = slot(key, m->cap); m->vals[i]; i = (i + 1) & mask)
		if (m->keys[i] == key)
			break;
	if (!m->vals[i])
		return;
	m->vals[i] = NULL;
	m->n--;
	/* shift back the entries of the probe run that follows, so lookups
	 * never stop early at the hole */
	for (j = (i + 1) & mask; m->vals[j]; j = (j + 1) & mask) {
		k = slot(m->keys[j], m->cap);
		/* can the entry at j move to the hole at i? only if its home k
		 * is not cyclically within (i, j] */
		if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			m->vals[j] = NULL;
			i = j;
		}
	}
}

size_t usher_u64map_bytes(const struct usher_u64map *m)
{
	return m->cap * (sizeof(*m->keys) + sizeof(*m->vals));
}

uint64_t usher_strhash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}
