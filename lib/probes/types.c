/* The registry of probe types: an explicit, NULL-terminated array (nginx's
 * ngx_modules[]), looked up by the name a config's `type:` gives. */
#include <string.h>

#include "probes/host.h"
#include "probes/http.h"
#include "probes/journey.h"
#include "probes/memcached.h"
#include "probes/postgres.h"
#include "probes/probe.h"
#include "probes/redis.h"

const struct usher_probe_type *const usher_probe_types[] = {
    &usher_probe_http,
    &usher_probe_journey,
    &usher_probe_postgres,
    &usher_probe_redis,
    &usher_probe_memcached,
    &usher_probe_host,
    NULL,
};

const struct usher_probe_type *usher_probe_type_find(const char *name)
{
	const struct usher_probe_type *const *t;

	for (t = usher_probe_types; *t; t++)
		if (strcmp((*t)->name, name) == 0)
			return *t;
	return NULL;
}
