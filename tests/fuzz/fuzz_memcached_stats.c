/* Fuzz target: the memcached probe's parser of `stats` answers. The input
 * is the answer to `stats`; whatever follows its first "END\r\n" is the
 * answer to `stats settings`. Whatever it adds must render. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "metrics/registry.h"
#include "probes/memcached.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *end = memmem(text, size, "END\r\n", 5);
	size_t len = end ? (size_t)(end - text) + 5 : size;
	struct usher_sample_set *s = usher_sample_set_new(NULL);
	struct usher_registry *r;
	struct usher_buf out;
	enum usher_err rc;
	int owner;

	rc = usher_memcached_stats_emit(s, text, len, end ? text + len : NULL, size - len);
	if (rc != USHER_OK && rc != USHER_ERR_PROTOCOL)
		abort();
	if (rc) {
		if (usher_sample_set_count(s) != 0)
			abort();
		usher_sample_set_free(s);
		return 0;
	}
	r = usher_registry_new();
	usher_registry_publish(r, &owner, s);
	usher_buf_init(&out, 16u << 20);
	if (usher_registry_render(r, USHER_EXPO_TEXT, &out) != USHER_OK)
		abort();
	usher_buf_free(&out);
	usher_registry_free(r);
	return 0;
}
