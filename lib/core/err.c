/* Error code descriptions and the first-message-wins error buffer. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *usher_strerror(enum usher_err rc)
{
	switch (rc) {
	case USHER_OK: return "success";
	case USHER_ERR_NOMEM: return "out of memory";
	case USHER_ERR_INVALID: return "invalid input";
	case USHER_ERR_IO: return "input/output error";
	case USHER_ERR_NOTFOUND: return "not found";
	case USHER_ERR_TOOBIG: return "size limit exceeded";
	case USHER_ERR_TIMEOUT: return "timed out";
	case USHER_ERR_NETWORK: return "network error";
	case USHER_ERR_TLS: return "tls error";
	case USHER_ERR_PROTOCOL: return "protocol error";
	case USHER_ERR_AUTH: return "authentication failed";
	case USHER_ERR_UNSUPPORTED: return "unsupported";
	case USHER_ERR_INTERNAL: return "internal error";
	}
	return "unknown error";
}

void usher_error_clear(struct usher_error *e)
{
	if (e)
		e->msg[0] = '\0';
}

enum usher_err usher_fail(struct usher_error *e, enum usher_err rc, const char *fmt, ...)
{
	va_list ap;

	if (!e || e->msg[0])
		return rc;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return rc;
}

const char *usher_error_msg(const struct usher_error *e, enum usher_err rc)
{
	if (e && e->msg[0])
		return e->msg;
	return usher_strerror(rc);
}
