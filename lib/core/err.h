/* Error codes shared by every layer of usher, and the caller-owned error
 * buffer in which the first message written wins (curl's ERRORBUFFER). */
#ifndef USHER_CORE_ERR_H
#define USHER_CORE_ERR_H

#include <stddef.h>

enum usher_err {
	USHER_OK = 0,
	USHER_ERR_NOMEM,       /* an allocation failed */
	USHER_ERR_INVALID,     /* bad input: config, argument, payload */
	USHER_ERR_IO,          /* a file or socket operation failed */
	USHER_ERR_NOTFOUND,    /* a named thing does not exist */
	USHER_ERR_TOOBIG,      /* a bounded buffer would exceed its maximum */
	USHER_ERR_TIMEOUT,     /* a deadline passed */
	USHER_ERR_NETWORK,     /* resolve, connect, send or receive failed */
	USHER_ERR_TLS,         /* a TLS handshake or certificate check failed */
	USHER_ERR_PROTOCOL,    /* the peer answered something we cannot use */
	USHER_ERR_AUTH,        /* credentials were refused */
	USHER_ERR_UNSUPPORTED, /* valid, but not something usher can do */
	USHER_ERR_INTERNAL,    /* a bug: an invariant did not hold */
};

/* A static, lowercase description of rc. Never NULL. */
const char *usher_strerror(enum usher_err rc);

#define USHER_ERRMSG_MAX 512

/* A caller-owned error message. Zero it (or usher_error_clear) before use;
 * the first usher_fail() wins so the root cause survives the unwinding. */
struct usher_error {
	char msg[USHER_ERRMSG_MAX];
};

void usher_error_clear(struct usher_error *e);

/* Records a one-line message in e unless one is already there, and returns
 * rc, so callers can write `return usher_fail(e, USHER_ERR_IO, "...")`.
 * e may be NULL. */
enum usher_err usher_fail(struct usher_error *e, enum usher_err rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The message in e, or usher_strerror(rc) when none was recorded. */
const char *usher_error_msg(const struct usher_error *e, enum usher_err rc);

#endif
