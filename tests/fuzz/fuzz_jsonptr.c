/* Fuzz target: JSON Pointer (RFC 6901) syntax checks and evaluation. The
 * input's first line is the pointer, the rest a JSON document. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probes/jsonptr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t plen = nl ? (size_t)(nl - data) : size;
	char *ptr = malloc(plen + 1);
	struct usher_error err;
	json_error_t jerr;
	json_t *doc, *got;
	enum usher_err check, rc;

	if (!ptr)
		return 0;
	memcpy(ptr, data, plen);
	ptr[plen] = '\0'; /* an embedded NUL just ends the pointer early */
	usher_error_clear(&err);
	check = usher_jsonptr_check(ptr, &err);
	if (check != USHER_OK && check != USHER_ERR_INVALID)
		abort();
	if (check && !err.msg[0])
		abort();
	doc = nl ? json_loadb((const char *)nl + 1, size - plen - 1,
			      JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr)
		 : NULL;
	if (doc) {
		usher_error_clear(&err);
		got = doc;
		rc = usher_jsonptr_get(doc, ptr, &got, &err);
		/* a syntax error is always reported as one */
		if (check && rc != USHER_ERR_INVALID)
			abort();
		/* a value exactly when OK; a reason exactly when not */
		if ((rc == USHER_OK) != (got != NULL) || (rc != USHER_OK) != (err.msg[0] != '\0'))
			abort();
		if (rc != USHER_OK && rc != USHER_ERR_NOTFOUND && rc != USHER_ERR_INVALID)
			abort();
		if (!*ptr && got != doc)
			abort();
		json_decref(doc);
	}
	free(ptr);
	return 0;
}
