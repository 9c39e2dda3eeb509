/* Region allocator: a chain of blocks, bump allocation inside each. The
 * first block is made by the first allocation, not by usher_arena_new, so
 * an arena that is never used (a probe type that needs no scratch, one of
 * a thousand idle probes) costs only its header. */
#include "core/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define BLOCK_SIZE 4096

struct block {
	struct block *next;
	size_t size;
	size_t used;
	_Alignas(16) unsigned char data[];
};

struct usher_arena {
	struct block *head; /* the block being filled, older ones follow; NULL until the first allocation */
	size_t used;
};

static struct block *block_new(size_t size)
{
	struct block *b = usher_malloc(sizeof(*b) + size);

	b->next = NULL;
	b->size = size;
	b->used = 0;
	return b;
}

struct usher_arena *usher_arena_new(void)
{
	struct usher_arena *a = usher_malloc(sizeof(*a));

	a->head = NULL;
	a->used = 0;
	return a;
}

void usher_arena_free(struct usher_arena *a)
{
	struct block *b, *next;

	if (!a)
		return;
	for (b = a->head; b; b = next) {
		next = b->next;
		free(b);
	}
	free(a);
}

void usher_arena_reset(struct usher_arena *a)
{
	struct block *b = a->head, *next;

	if (!b)
		return;
	/* keep the oldest (last) block, which was the first one made */
	while (b->next) {
		next = b->next;
		free(b);
		b = next;
	}
	b->used = 0;
	a->head = b;
	a->used = 0;
}

void *usher_arena_alloc(struct usher_arena *a, size_t n)
{
	struct block *b = a->head;
	size_t off;
	void *p;

	if (n > SIZE_MAX / 2) {
		fprintf(stderr, "usher: arena allocation of %zu bytes\n", n);
		abort();
	}
	if (!b)
		b = a->head = block_new(BLOCK_SIZE);
	off = (b->used + 15) & ~(size_t)15;
	if (off + n > b->size) {
		size_t size = n > BLOCK_SIZE / 4 ? n : BLOCK_SIZE;

		if (size == n) {
			/* a large one gets its own block behind the head, so the
			 * head's free space is not wasted */
			struct block *big = block_new(n);

			big->used = n;
			big->next = b->next;
			b->next = big;
			a->used += n;
			return big->data;
		}
		b = block_new(size);
		b->next = a->head;
		a->head = b;
		off = 0;
	}
	p = b->data + off;
	b->used = off + n;
	a->used += n;
	return p;
}

void *usher_arena_zalloc(struct usher_arena *a, size_t n)
{
	void *p = usher_arena_alloc(a, n);

	memset(p, 0, n);
	return p;
}

char *usher_arena_strndup(struct usher_arena *a, const char *s, size_t n)
{
	char *p = usher_arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *usher_arena_strdup(struct usher_arena *a, const char *s)
{
	return s ? usher_arena_strndup(a, s, strlen(s)) : NULL;
}

char *usher_arena_vprintf(struct usher_arena *a, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char *p;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		n = 0;
	p = usher_arena_alloc(a, (size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *usher_arena_printf(struct usher_arena *a, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = usher_arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}

size_t usher_arena_used(const struct usher_arena *a)
{
	return a->used;
}
