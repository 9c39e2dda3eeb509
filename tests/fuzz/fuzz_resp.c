/* Fuzz target: the RESP reader (hiredis' parser with usher's limits). The
 * first byte sets the feed chunk size, the rest are the bytes a server
 * sent. Replies must respect the limits; errors must be the documented
 * ones, and a reset reader must work again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probes/resp.h"

#define MAX_BYTES    4096
#define MAX_ELEMENTS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks r against the limits; returns its elements, itself included. */
static size_t check(const struct usher_resp *r, size_t *bytes)
{
	size_t n = 1, i;

	if (!r)
		abort();
	switch (r->type) {
	case USHER_RESP_STRING:
	case USHER_RESP_STATUS:
	case USHER_RESP_ERROR:
		if (!r->str || r->str[r->len] != '\0')
			abort();
		*bytes += r->len;
		break;
	case USHER_RESP_ARRAY:
		for (i = 0; i < r->n; i++)
			n += check(r->elem[i], bytes);
		break;
	case USHER_RESP_INTEGER:
	case USHER_RESP_NIL: break;
	default: abort();
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct usher_resp_reader *r = usher_resp_reader_new(MAX_BYTES, MAX_ELEMENTS);
	size_t chunk = size ? (size_t)data[0] % 64 + 1 : 1, off = 1;
	struct usher_resp *rep;
	struct usher_error err;
	enum usher_err rc = USHER_OK;

	usher_error_clear(&err);
	while (!rc && off < size) {
		size_t k = size - off < chunk ? size - off : chunk;

		rc = usher_resp_reader_feed(r, data + off, k, &err);
		off += k;
		while (!rc) {
			size_t bytes = 0;

			rc = usher_resp_reader_next(r, &rep, &err);
			if (rc || !rep)
				break;
			if (check(rep, &bytes) > MAX_ELEMENTS || bytes > MAX_BYTES)
				abort();
			usher_resp_free(rep);
		}
	}
	if (rc != USHER_OK && rc != USHER_ERR_PROTOCOL && rc != USHER_ERR_TOOBIG)
		abort();
	if (rc && !err.msg[0])
		abort();
	usher_resp_reader_reset(r);
	usher_error_clear(&err);
	if (usher_resp_reader_feed(r, "+OK\r\n", 5, &err) ||
	    usher_resp_reader_next(r, &rep, &err) || !rep || rep->type != USHER_RESP_STATUS)
		abort();
	usher_resp_free(rep);
	usher_resp_reader_free(r);
	return 0;
}
