/* Fuzz target: the small parsers of untrusted text: the HTTP Accept header
 * (content negotiation), durations and byte sizes, and the exposition
 * escaping of arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/timeutil.h"
#include "metrics/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct usher_buf b;
	int64_t ms;
	uint64_t bytes;
	char back[64];

	memcpy(s, data, size);
	s[size] = '\0';
	usher_expo_negotiate(s);
	if (usher_duration_parse(s, &ms) == USHER_OK) {
		int64_t again;

		/* whatever parses must format back to the same duration */
		usher_duration_format(ms, back, sizeof(back));
		if (usher_duration_parse(back, &again) != USHER_OK || again != ms)
			abort();
	}
	usher_size_parse(s, &bytes);
	usher_buf_init(&b, 4 * size + 16);
	usher_expo_escape_label(&b, s);
	usher_expo_escape_help(&b, s, USHER_EXPO_OPENMETRICS);
	usher_buf_free(&b);
	free(s);
	return 0;
}
