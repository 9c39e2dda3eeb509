/* Fuzz target: the alert template parser, then expansion over fixed data
 * (labels, external labels, a value, a query function with two samples).
 * A failed parse must leave a message; a template that parses must expand
 * or fail with a message, within the output bound, without crashing. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum usher_err query(void *ctx, const char *q, int64_t t, struct usher_arena *a,
			    struct usher_template_sample **out, size_t *n, struct usher_error *err)
{
	static const struct usher_label l[] = {{"__name__", "up"}, {"instance", "a:1"}};
	struct usher_template_sample *s = usher_arena_alloc(a, 2 * sizeof(*s));

	(void)ctx;
	(void)t;
	if (q[0] == 'x')
		return usher_fail(err, USHER_ERR_INVALID, "bad query");
	s[0].labels.n = 2;
	s[0].labels.v = l;
	s[0].value = 1;
	s[1].labels.n = 1;
	s[1].labels.v = l + 1;
	s[1].value = NAN;
	*out = s;
	*n = 2;
	return USHER_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct usher_label labels[] = {
	    {"__name__", "x"}, {"instance", "db-1.example.com:5432"}, {"job", "api"}};
	static const struct usher_label ext[] = {{"site", "eu-1"}};
	struct usher_template_data d;
	struct usher_template *t;
	struct usher_error err;
	struct usher_buf out;
	char *text;

	if (size > 8192)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	usher_error_clear(&err);
	if (usher_template_parse("__alert_F", text, &t, &err)) {
		if (!err.msg[0] || t)
			abort();
		free(text);
		return 0;
	}
	memset(&d, 0, sizeof(d));
	d.labels.n = 3;
	d.labels.v = labels;
	d.external_labels.n = 1;
	d.external_labels.v = ext;
	d.external_url = "http://usher:9469/prefix";
	d.value = size % 3 == 0 ? NAN : (double)size * 1.5 - 40;
	d.query = query;
	usher_buf_init(&out, 1 << 16);
	usher_error_clear(&err);
	if (usher_template_expand(t, &d, &out, &err) && !err.msg[0])
		abort();
	if (out.len > out.max)
		abort();
	usher_buf_free(&out);
	usher_template_free(t);
	free(text);
	return 0;
}
