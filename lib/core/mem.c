/* Allocation helpers that abort on out-of-memory. */
#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
	fprintf(stderr, "usher: out of memory allocating %zu bytes\n", n);
	abort();
}

void *usher_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *usher_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom(n * size);
	return p;
}

void *usher_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

char *usher_strdup(const char *s)
{
	return usher_strndup(s, strlen(s));
}

char *usher_strndup(const char *s, size_t n)
{
	char *p = usher_malloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
