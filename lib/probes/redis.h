/* The Redis probe: one persistent connection per target (TCP, unix socket or
 * TLS), INFO-derived series named as redis_exporter names them, a PING
 * latency histogram, and key-pattern counts under a per-run key budget. */
#ifndef USHER_PROBES_REDIS_H
#define USHER_PROBES_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/options.h"
#include "metrics/registry.h"
#include "probes/netclient.h"
#include "probes/probe.h"

/* The probe type, listed in probes/types.c. */
extern const struct usher_probe_type usher_probe_redis;

#define USHER_REDIS_DEFAULT_PORT 6379

/* One entry of key_patterns: a plain string, or {pattern, count_only}. */
struct usher_redis_key_pattern {
	const char *pattern; /* SCAN MATCH glob, not empty, unique in the list */
	bool count_only;     /* no MEMORY USAGE per key */
};

/* The redis probe's options (in the config's arena). */
struct usher_redis_opts {
	const char *address;
	const char *username;
	const char *password; /* a secret: never logged */
	int64_t db;
	struct usher_tls_client_conf tls;
	int64_t connect_timeout_ms;
	struct usher_list key_patterns; /* of struct usher_redis_key_pattern */
	int64_t key_budget;
	int64_t scan_count;
	/* filled by the type's check */
	struct usher_netaddr addr;
	bool tls_enabled; /* a tls: section is present */
};

/* The option table of struct usher_redis_opts. */
extern const struct usher_option usher_redis_options[];

/* Adds the series redis_exporter derives from an INFO reply (text, len
 * bytes, as the server sent it) to s: redis_uptime_in_seconds,
 * redis_instance_info, redis_connected_clients, the memory, persistence,
 * replication and stats gauges and counters, redis_db_keys and
 * redis_db_keys_expiring (with zeros for db0 .. db<databases-1> that hold no
 * keys), redis_commands_total and redis_commands_duration_seconds_total.
 * now_s is the wall clock, for redis_start_time_seconds. Each series is
 * added once, from the first line that gives it. Returns
 * USHER_ERR_PROTOCOL, adding nothing, when text is not an INFO reply (it
 * has no redis_version). */
enum usher_err usher_redis_info_emit(struct usher_sample_set *s, const char *text, size_t len,
				     unsigned databases, int64_t now_s);

#endif
