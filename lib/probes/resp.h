/* The Redis protocol (RESP2) for the redis probe, through hiredis: commands
 * are formatted by redisFormatCommandArgv and replies parsed by a
 * redisReader into usher's own reply objects, with limits on the bytes and
 * elements one reply may make us hold. Only resp.c touches hiredis. */
#ifndef USHER_PROBES_RESP_H
#define USHER_PROBES_RESP_H

#include <stddef.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"

enum usher_resp_type {
	USHER_RESP_STRING = 1, /* a bulk string */
	USHER_RESP_ARRAY,
	USHER_RESP_INTEGER,
	USHER_RESP_NIL,
	USHER_RESP_STATUS, /* +OK */
	USHER_RESP_ERROR,  /* -ERR ... */
};

/* One reply. Strings are NUL-terminated (and may hold NULs themselves). */
struct usher_resp {
	enum usher_resp_type type;
	long long integer; /* INTEGER */
	char *str;         /* STRING, STATUS, ERROR */
	size_t len;
	size_t n;                  /* ARRAY: number of elements */
	struct usher_resp **elem;  /* ARRAY: n replies, none NULL */
	struct usher_arena *arena; /* a whole array reply's: holds its elements */
};

/* Frees a whole reply (as usher_resp_reader_next gave it) and its
 * elements; elements cannot be freed on their own. NULL ok. */
void usher_resp_free(struct usher_resp *r);

/* Appends the command argv[0..argc) to out in RESP; lens gives each
 * argument's length (binary-safe), or is NULL for C strings. On
 * USHER_ERR_TOOBIG (out's maximum) out is left as it was. */
enum usher_err usher_resp_format(struct usher_buf *out, int argc, const char *const *argv,
				 const size_t *lens);

struct usher_resp_reader;

/* A reader whose replies may hold at most max_bytes of strings and
 * max_elements array elements (nested ones included), and which holds at
 * most max_bytes of unparsed input. */
struct usher_resp_reader *usher_resp_reader_new(size_t max_bytes, size_t max_elements);
/* NULL ok. */
void usher_resp_reader_free(struct usher_resp_reader *r);
/* Forgets buffered input, a reply in progress and any error (a new
 * connection). */
void usher_resp_reader_reset(struct usher_resp_reader *r);

/* Adds received bytes. USHER_ERR_TOOBIG when the unparsed input would pass
 * max_bytes. */
enum usher_err usher_resp_reader_feed(struct usher_resp_reader *r, const void *buf, size_t len,
				      struct usher_error *err);
/* Takes the next complete reply: *out is a reply the caller frees, or NULL
 * when more input is needed. USHER_ERR_PROTOCOL for input that is not RESP,
 * USHER_ERR_TOOBIG for a reply over the limits; the reader must then be
 * reset before further use. */
enum usher_err usher_resp_reader_next(struct usher_resp_reader *r, struct usher_resp **out,
				      struct usher_error *err);

/* A reply shown for messages: "+PONG", "-ERR ...", ":3", "$-1", "*2", "$5"
 * (strings by length), into buf (len >= 16). */
const char *usher_resp_describe(const struct usher_resp *r, char *buf, size_t len);

#endif
