/* Bounded growable buffers. */
#include "core/buf.h"

#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include <stdlib.h>

void usher_buf_init(struct usher_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

static enum usher_err reserve(struct usher_buf *b, size_t n)
{
	size_t want, cap;

	if (n > b->max - b->len)
		return USHER_ERR_TOOBIG;
	want = b->len + n + 1;
	if (want <= b->cap)
		return USHER_OK;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	b->data = usher_realloc(b->data, cap);
	b->cap = cap;
	return USHER_OK;
}

enum usher_err usher_buf_add(struct usher_buf *b, const void *p, size_t n)
{
	enum usher_err rc = reserve(b, n);

	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return USHER_OK;
}

enum usher_err usher_buf_addstr(struct usher_buf *b, const char *s)
{
	return usher_buf_add(b, s, strlen(s));
}

enum usher_err usher_buf_addc(struct usher_buf *b, char c)
{
	return usher_buf_add(b, &c, 1);
}

enum usher_err usher_buf_vaddf(struct usher_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	enum usher_err rc;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return USHER_ERR_INVALID;
	rc = reserve(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return USHER_OK;
}

enum usher_err usher_buf_addf(struct usher_buf *b, const char *fmt, ...)
{
	va_list ap;
	enum usher_err rc;

	va_start(ap, fmt);
	rc = usher_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *usher_buf_str(const struct usher_buf *b)
{
	return b->data ? b->data : "";
}

void usher_buf_reset(struct usher_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *usher_buf_take(struct usher_buf *b)
{
	char *p = b->data ? b->data : usher_strdup("");

	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

void usher_buf_free(struct usher_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}
