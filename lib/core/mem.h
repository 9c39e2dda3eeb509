/* Allocation helpers. Small, bounded allocations abort on failure (as
 * redis' zmalloc does): on Linux they only fail when the machine is already
 * lost, and checking each one would bury the code. Anything sized by input
 * goes through a bounded usher_buf instead. */
#ifndef USHER_CORE_MEM_H
#define USHER_CORE_MEM_H

#include <stddef.h>

void *usher_malloc(size_t n);
void *usher_calloc(size_t n, size_t size);
void *usher_realloc(void *p, size_t n);
char *usher_strdup(const char *s);
char *usher_strndup(const char *s, size_t n);

#endif
