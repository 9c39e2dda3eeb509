/* Series identities in an open-addressing hash table: the key is the name
 * and the label pairs sorted by name, empty values left out (Prometheus'
 * identity of a series), compared in full, so hash collisions cost time,
 * never a wrong answer. */
#include "metrics/seriesset.h"

#include <string.h>

#include "core/mem.h"

struct slot {
	uint64_t hash;
	const char *key; /* NULL: free */
	size_t len;
	int tag;
};

struct usher_seriesset {
	struct usher_arena *a;
	struct slot *slots;
	size_t cap; /* a power of two */
	size_t n;
};

struct usher_seriesset *usher_seriesset_new(struct usher_arena *a)
{
	struct usher_seriesset *s = usher_arena_zalloc(a, sizeof(*s));

	s->a = a;
	s->cap = 64;
	s->slots = usher_arena_zalloc(a, s->cap * sizeof(*s->slots));
	return s;
}

size_t usher_seriesset_count(const struct usher_seriesset *s)
{
	return s->n;
}

/* A 64-bit hash eight bytes at a time (keys are ~100 bytes), with a
 * final mix so the table index uses every bit. */
static uint64_t hash_key(const char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xff51afd7ed558ccdULL), w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
		h ^= h >> 29;
	}
	w = 0;
	memcpy(&w, p, n);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static void grow(struct usher_seriesset *s)
{
	struct slot *old = s->slots;
	size_t oldcap = s->cap, i;

	s->cap *= 2;
	s->slots = usher_arena_zalloc(s->a, s->cap * sizeof(*s->slots));
	for (i = 0; i < oldcap; i++) {
		size_t j;

		if (!old[i].key)
			continue;
		for (j = old[i].hash & (s->cap - 1); s->slots[j].key; j = (j + 1) & (s->cap - 1))
			;
		s->slots[j] = old[i];
	}
}

bool usher_seriesset_add(struct usher_seriesset *s, const char *name, const char *const *pairs,
			 int tag, int *prev_tag, uint64_t *hash)
{
	const char *stack[2 * 64], **sorted = stack;
	size_t n = 0, i, j, len, off;
	uint64_t h;
	char *key;
	bool fresh = true;

	for (i = 0; pairs && pairs[i]; i += 2)
		if (pairs[i + 1] && *pairs[i + 1])
			n += 2;
	if (n > sizeof(stack) / sizeof(stack[0]))
		sorted = usher_arena_alloc(s->a, n * sizeof(*sorted));
	n = 0;
	for (i = 0; pairs && pairs[i]; i += 2) {
		if (!pairs[i + 1] || !*pairs[i + 1])
			continue;
		/* insertion sort by name: label sets are small */
		for (j = n; j > 0 && strcmp(sorted[j - 2], pairs[i]) > 0; j -= 2) {
			sorted[j] = sorted[j - 2];
			sorted[j + 1] = sorted[j - 1];
		}
		sorted[j] = pairs[i];
		sorted[j + 1] = pairs[i + 1];
		n += 2;
	}
	len = strlen(name) + 1;
	for (i = 0; i < n; i++)
		len += strlen(sorted[i]) + 1;
	key = usher_arena_alloc(s->a, len);
	off = strlen(name) + 1;
	memcpy(key, name, off);
	for (i = 0; i < n; i++) {
		size_t l = strlen(sorted[i]) + 1;

		memcpy(key + off, sorted[i], l);
		off += l;
	}
	h = hash_key(key, len);
	if (hash)
		*hash = h;
	for (j = h & (s->cap - 1); s->slots[j].key; j = (j + 1) & (s->cap - 1)) {
		if (s->slots[j].hash == h && s->slots[j].len == len &&
		    memcmp(s->slots[j].key, key, len) == 0) {
			if (prev_tag)
				*prev_tag = s->slots[j].tag;
			fresh = false;
			break;
		}
	}
	if (fresh) {
		s->slots[j].hash = h;
		s->slots[j].key = key;
		s->slots[j].len = len;
		s->slots[j].tag = tag;
		s->n++;
		if (s->n * 2 > s->cap)
			grow(s);
	}
	return fresh;
}
