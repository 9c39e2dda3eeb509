/* Fuzz target: notification templates (Go text/template over a JSON dot,
 * Alertmanager's dialect). The input is a template, optionally followed by
 * a line "---" and the JSON data; without data the sample notification is
 * used. The template is parsed with the default templates as its library,
 * then expanded with a bounded output. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "notify/notifytmpl.h"
#include "rules/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *find_sep(const uint8_t *d, size_t n)
{
	size_t i;

	for (i = 0; i + 5 <= n; i++)
		if (memcmp(d + i, "\n---\n", 5) == 0)
			return d + i;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct usher_template *lib;
	const uint8_t *sep = find_sep(data, size);
	size_t tlen = sep ? (size_t)(sep - data) : size;
	char *text = malloc(tlen + 1);
	struct usher_template *t = NULL;
	struct usher_error err;
	json_t *dot = NULL;
	json_error_t jerr;
	struct usher_buf out;
	enum usher_err rc;

	if (!text)
		return 0;
	if (!lib) {
		usher_error_clear(&err);
		if (usher_template_parse_json("defaults", usher_notifytmpl_defaults, NULL, &lib,
					      &err))
			abort();
	}
	memcpy(text, data, tlen);
	text[tlen] = '\0';
	usher_error_clear(&err);
	rc = usher_template_parse_json("fuzz", text, lib, &t, &err);
	if (rc != USHER_OK && (rc != USHER_ERR_INVALID || !err.msg[0]))
		abort();
	if (t) {
		dot = sep ? json_loadb((const char *)sep + 5, size - tlen - 5, 0, &jerr)
			  : usher_notifytmpl_sample_data();
		if (json_is_object(dot)) {
			usher_buf_init(&out, 64 * 1024);
			usher_error_clear(&err);
			rc = usher_template_expand_json(t, NULL, dot, &out, &err);
			if (rc != USHER_OK && rc != USHER_ERR_INVALID && rc != USHER_ERR_TOOBIG)
				abort();
			if (rc && !err.msg[0])
				abort();
			usher_buf_free(&out);
		}
		json_decref(dot);
		usher_template_free(t);
	}
	free(text);
	return 0;
}
