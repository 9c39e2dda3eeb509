/* Fuzz target: the postmortem draft (usher incident report) of whatever
 * JSON an usherd answers, including its RFC 3339 time parser, and the
 * incidents config section. Input: a JSON document. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "notify/incident.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
	struct usher_buf out;
	enum usher_err rc;

	if (!doc)
		return 0;
	usher_buf_init(&out, 1u << 20);
	rc = usher_incident_report(doc, &out);
	/* an object with an integer id always gives a report */
	if (json_is_integer(json_object_get(doc, "id")) && json_is_object(doc) && rc == USHER_OK &&
	    strncmp(usher_buf_str(&out), "# Postmortem", 12) != 0)
		abort();
	if (rc != USHER_OK && rc != USHER_ERR_INVALID && rc != USHER_ERR_TOOBIG)
		abort();
	(void)usher_incident_default_wanted(doc);
	usher_buf_free(&out);
	json_decref(doc);
	return 0;
}
