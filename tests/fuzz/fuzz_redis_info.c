/* Fuzz target: the redis probe's INFO parser. The first byte picks how many
 * databases to pad; the rest is the INFO reply. Whatever it adds must
 * render as valid exposition text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "metrics/registry.h"
#include "probes/redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct usher_sample_set *s = usher_sample_set_new(NULL);
	struct usher_registry *r;
	struct usher_buf out;
	unsigned databases = size ? data[0] : 0;
	enum usher_err rc;
	int owner;

	if (size)
		data++, size--;
	rc = usher_redis_info_emit(s, (const char *)data, size, databases, 1800000000);
	if (rc != USHER_OK && rc != USHER_ERR_PROTOCOL)
		abort();
	if (rc) {
		/* a refused reply adds nothing */
		if (usher_sample_set_count(s) != 0)
			abort();
		usher_sample_set_free(s);
		return 0;
	}
	/* at least redis_instance_info */
	if (usher_sample_set_count(s) == 0)
		abort();
	r = usher_registry_new();
	usher_registry_publish(r, &owner, s);
	usher_buf_init(&out, 64u << 20);
	if (usher_registry_render(r, USHER_EXPO_TEXT, &out) != USHER_OK)
		abort();
	if (!strstr(usher_buf_str(&out), "\nredis_instance_info{"))
		abort();
	usher_buf_free(&out);
	usher_registry_free(r);
	return 0;
}
