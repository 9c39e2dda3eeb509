/* Reading an Elasticsearch / OpenSearch _bulk response: the status of each
 * item, and for refused ones the error type and reason, so the sink can
 * tell delivered (2xx, 409) from retry (429, 5xx) from dead (other 4xx). */
#ifndef USHER_LOGSHIP_BULKRESP_H
#define USHER_LOGSHIP_BULKRESP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "logship/shipper.h"

struct usher_bulk_item {
	int status;
	char type[128];   /* error.type, "" when none */
	char reason[512]; /* error.reason, cut to fit */
};

struct usher_bulk_result {
	bool errors; /* the response's "errors" flag */
	size_t n;
	struct usher_bulk_item *items;
};

/* Parses body (len bytes, need not be NUL-terminated), which must be a
 * bulk response with exactly expect items (one per action sent). On
 * success the caller frees r with usher_bulk_result_free; on failure
 * (USHER_ERR_PROTOCOL, with err) r is empty. */
enum usher_err usher_bulk_response_parse(const char *body, size_t len, size_t expect,
					 struct usher_bulk_result *r, struct usher_error *err);
void usher_bulk_result_free(struct usher_bulk_result *r);

/* What an item's status means for delivery: 2xx and 409 (the document is
 * there already: a retry of something delivered) DELIVERED; 408, 429 and
 * 5xx RETRY; any other status DEAD. */
enum usher_ship_state usher_bulk_item_state(int status);

#endif
