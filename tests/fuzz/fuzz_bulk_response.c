/* Fuzz target: the Elasticsearch _bulk response reader. The first byte is
 * the number of items the request had (0-255), the rest the body. Checks
 * the reader's promises: either exactly that many items, each with a
 * status in 100..599 and NUL-terminated strings, or a protocol error with
 * a message and an empty result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logship/bulkresp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct usher_bulk_result r;
	struct usher_error err;
	enum usher_err rc;
	size_t expect, i;

	if (size < 1)
		return 0;
	expect = data[0];
	usher_error_clear(&err);
	rc = usher_bulk_response_parse((const char *)data + 1, size - 1, expect, &r, &err);
	if (rc) {
		if (rc != USHER_ERR_PROTOCOL || !err.msg[0] || r.items || r.n)
			abort();
		return 0;
	}
	if (r.n != expect)
		abort();
	for (i = 0; i < r.n; i++) {
		if (r.items[i].status < 100 || r.items[i].status > 599)
			abort();
		if (!memchr(r.items[i].type, '\0', sizeof(r.items[i].type)) ||
		    !memchr(r.items[i].reason, '\0', sizeof(r.items[i].reason)))
			abort();
		(void)usher_bulk_item_state(r.items[i].status);
	}
	usher_bulk_result_free(&r);
	return 0;
}
