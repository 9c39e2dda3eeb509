/* A growable byte buffer with a maximum size set at init (curl's dynbuf):
 * growing past the maximum is USHER_ERR_TOOBIG, never an unbounded realloc.
 * The data is always NUL-terminated, so text can be used as a C string. */
#ifndef USHER_CORE_BUF_H
#define USHER_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/err.h"

struct usher_buf {
	char *data; /* NULL until the first byte is added */
	size_t len;
	size_t cap;
	size_t max; /* the most len may ever be */
};

void usher_buf_init(struct usher_buf *b, size_t max);
/* Appends n bytes; on USHER_ERR_TOOBIG the buffer is left as it was. */
enum usher_err usher_buf_add(struct usher_buf *b, const void *p, size_t n);
enum usher_err usher_buf_addstr(struct usher_buf *b, const char *s);
enum usher_err usher_buf_addc(struct usher_buf *b, char c);
enum usher_err usher_buf_addf(struct usher_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
enum usher_err usher_buf_vaddf(struct usher_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* The contents as a C string: "" when empty, never NULL. */
const char *usher_buf_str(const struct usher_buf *b);
/* Empties the buffer, keeping its memory. */
void usher_buf_reset(struct usher_buf *b);
/* Hands the data to the caller (who frees it) and empties the buffer. */
char *usher_buf_take(struct usher_buf *b);
void usher_buf_free(struct usher_buf *b);

#endif
