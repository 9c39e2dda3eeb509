/* The registry of probe types: an explicit, NULL-terminated array (nginx's
 * ngx_modules[]), looked up by the name a config's `type:` gives. */
#include <string.h>

#include "probes/http.h"
#include "probes/probe.h"

const struct usher_probe_type *const usher_probe_types[] = {
    &usher_probe_http,
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
