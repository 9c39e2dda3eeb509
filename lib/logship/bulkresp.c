/* The _bulk response reader (jansson), fuzzed by tests/fuzz/fuzz_bulk_response.c. */
#include "logship/bulkresp.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

enum usher_ship_state usher_bulk_item_state(int status)
{
	if ((status >= 200 && status < 300) || status == 409)
		return USHER_SHIP_DELIVERED;
	if (status == 408 || status == 429 || status >= 500)
		return USHER_SHIP_RETRY;
	return USHER_SHIP_DEAD;
}

static void copy_str(char *out, size_t len, json_t *v)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;

	snprintf(out, len, "%s", s ? s : "");
}

void usher_bulk_result_free(struct usher_bulk_result *r)
{
	free(r->items);
	r->items = NULL;
	r->n = 0;
}

enum usher_err usher_bulk_response_parse(const char *body, size_t len, size_t expect,
					 struct usher_bulk_result *r, struct usher_error *err)
{
	json_error_t jerr;
	json_t *root, *items, *errors;
	enum usher_err rc = USHER_OK;
	size_t i;

	memset(r, 0, sizeof(*r));
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return usher_fail(err, USHER_ERR_PROTOCOL,
				  "bulk response is not JSON: %s (line %d)", jerr.text, jerr.line);
	if (!json_is_object(root)) {
		rc = usher_fail(err, USHER_ERR_PROTOCOL, "bulk response is not a JSON object");
		goto out;
	}
	errors = json_object_get(root, "errors");
	items = json_object_get(root, "items");
	if (!json_is_boolean(errors) || !json_is_array(items)) {
		rc = usher_fail(err, USHER_ERR_PROTOCOL,
				"bulk response without \"errors\" and \"items\"");
		goto out;
	}
	if (json_array_size(items) != expect) {
		rc = usher_fail(err, USHER_ERR_PROTOCOL, "bulk response has %zu items for %zu sent",
				json_array_size(items), expect);
		goto out;
	}
	r->errors = json_is_true(errors);
	r->items = usher_calloc(expect ? expect : 1, sizeof(*r->items));
	r->n = expect;
	for (i = 0; i < expect; i++) {
		json_t *it = json_array_get(items, i), *op = NULL, *status, *e;
		const char *key;
		json_int_t st;

		if (!json_is_object(it) || json_object_size(it) != 1) {
			rc = usher_fail(err, USHER_ERR_PROTOCOL,
					"bulk response item %zu is not an object with one action",
					i);
			goto out;
		}
		json_object_foreach(it, key, op) break;
		(void)key;
		status = json_object_get(op, "status");
		if (!json_is_object(op) || !json_is_integer(status) ||
		    (st = json_integer_value(status)) < 100 || st > 599) {
			rc = usher_fail(err, USHER_ERR_PROTOCOL,
					"bulk response item %zu has no valid status", i);
			goto out;
		}
		r->items[i].status = (int)st;
		e = json_object_get(op, "error");
		if (json_is_object(e)) {
			copy_str(r->items[i].type, sizeof(r->items[i].type),
				 json_object_get(e, "type"));
			copy_str(r->items[i].reason, sizeof(r->items[i].reason),
				 json_object_get(e, "reason"));
		} else if (json_is_string(e)) {
			copy_str(r->items[i].reason, sizeof(r->items[i].reason), e);
		}
	}
out:
	json_decref(root);
	if (rc)
		usher_bulk_result_free(r);
	return rc;
}
