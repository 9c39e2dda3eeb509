/* Fuzz target: the journey probe's parsers. The first byte picks one:
 * 'c' the config loader on a journey (templates, {{variables}} and their
 * resolution, json bodies, extract, expect), 'r' the redaction of a logged
 * response body, anything else the URL escaping of substituted values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "probes/journey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_config(const char *text, size_t len)
{
	struct usher_diags d;
	struct usher_config *cfg = NULL;

	usher_diags_init(&d);
	usher_config_load_text("fuzz.yml", text, len, &cfg, &d);
	if ((cfg == NULL) != (d.n > 0))
		abort();
	usher_config_free(cfg);
	usher_diags_free(&d);
}

static void fuzz_redact(const char *body, size_t len)
{
	static const char *ptrs[] = {"/token", "/card/number", "/items/0", "/a~1b/~0c", "", "/"};
	static const char *const secrets[] = {"hunter22", "ab", "secret", NULL};
	struct usher_strlist redact = {.n = sizeof(ptrs) / sizeof(ptrs[0]), .v = ptrs};
	struct usher_buf out;
	size_t max = len % 200;

	usher_buf_init(&out, 4096);
	usher_journey_redact(body, len, &redact, secrets, max, &out);
	/* bounded: the cut text and its "..." */
	if (out.len > max + 3 || memchr(usher_buf_str(&out), '\n', out.len))
		abort();
	usher_buf_free(&out);
}

static void fuzz_url(const char *s, size_t len)
{
	struct usher_buf out;
	size_t i;

	usher_buf_init(&out, 3 * len + 1);
	if (usher_journey_url_escape(&out, s, len))
		abort();
	for (i = 0; i < out.len; i++) {
		unsigned char c = (unsigned char)out.data[i];

		if (c <= 0x20 || c >= 0x7f || strchr("<>\"\\^`{|}", c))
			abort();
	}
	usher_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data + 1;

	if (!size)
		return 0;
	if (data[0] == 'c')
		fuzz_config(text, size - 1);
	else if (data[0] == 'r')
		fuzz_redact(text, size - 1);
	else
		fuzz_url(text, size - 1);
	return 0;
}
