/* The Memcached probe: `stats` and `stats settings` over one persistent
 * connection (TCP or unix socket) within the run's deadline, as the series
 * memcached_exporter names. */
#ifndef USHER_PROBES_MEMCACHED_H
#define USHER_PROBES_MEMCACHED_H

#include <stddef.h>
#include <stdint.h>

#include "config/options.h"
#include "metrics/registry.h"
#include "probes/netclient.h"
#include "probes/probe.h"

/* The probe type, listed in probes/types.c. */
extern const struct usher_probe_type usher_probe_memcached;

#define USHER_MEMCACHED_DEFAULT_PORT 11211

/* The memcached probe's options (in the config's arena). */
struct usher_memcached_opts {
	const char *address;
	int64_t connect_timeout_ms;
	struct usher_netaddr addr; /* filled by the type's check */
};

extern const struct usher_option usher_memcached_options[];

/* Adds memcached_exporter's series for the answer to `stats` (stats, len
 * bytes: "STAT name value" lines, with or without the final END) to s, and
 * memcached_max_connections from the answer to `stats settings` (settings,
 * slen bytes; settings may be NULL). A stat that is missing or not a number
 * leaves out its series only. Returns USHER_ERR_PROTOCOL, adding nothing,
 * when stats holds no STAT line or a line that is neither STAT nor END
 * (ERROR, SERVER_ERROR ...). */
enum usher_err usher_memcached_stats_emit(struct usher_sample_set *s, const char *stats, size_t len,
					  const char *settings, size_t slen);

#endif
