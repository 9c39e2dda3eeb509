/* A region allocator for short-lived work (one probe run, one config load,
 * one render): many small allocations, one free. Allocations abort on
 * out-of-memory like usher_malloc. Not thread-safe. */
#ifndef USHER_CORE_ARENA_H
#define USHER_CORE_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct usher_arena;

struct usher_arena *usher_arena_new(void);
/* Frees every allocation and the arena. Accepts NULL. */
void usher_arena_free(struct usher_arena *a);
/* Frees every allocation but keeps the first block for reuse. */
void usher_arena_reset(struct usher_arena *a);

void *usher_arena_alloc(struct usher_arena *a, size_t n); /* 16-byte aligned */
void *usher_arena_zalloc(struct usher_arena *a, size_t n);
char *usher_arena_strdup(struct usher_arena *a, const char *s);
char *usher_arena_strndup(struct usher_arena *a, const char *s, size_t n);
char *usher_arena_printf(struct usher_arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
char *usher_arena_vprintf(struct usher_arena *a, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Bytes handed out since the last reset (for memory accounting). */
size_t usher_arena_used(const struct usher_arena *a);

#endif
