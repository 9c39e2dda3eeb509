/* The postgres probe: postgres_exporter's core metrics and custom SQL metrics
 * over one persistent libpq connection per probe, on a worker thread. */
#ifndef USHER_PROBES_POSTGRES_H
#define USHER_PROBES_POSTGRES_H

#include <stdbool.h>
#include <stdint.h>

#include "config/options.h"
#include "core/arena.h"
#include "probes/pg_queries.h"
#include "probes/probe.h"

/* The probe type, listed in probes/types.c. */
extern const struct usher_probe_type usher_probe_postgres;

/* The postgres probe's options, filled by usher_pg_options. Lives in the
 * config's arena. */
struct usher_pg_opts {
	const char *dsn; /* a secret: never logged as written */
	int64_t connect_timeout_ms;
	int64_t statement_timeout_ms; /* filled from the probe's timeout when absent */
	struct usher_strlist exclude_databases;
	int64_t max_tables;                /* pg_stat_user_tables rows; 0 turns them off */
	int64_t database_size_interval_ms; /* pg_database_size() at most this often */
	struct usher_list queries;         /* of struct usher_pgq_conf */
};

extern const struct usher_option usher_pg_options[];

/* The instance label of a DSN (libpq URI or key=value): "host:port", with
 * several hosts "a:5432,b:5433", an IPv6 address in brackets, a socket
 * directory as given ("/run/postgresql:5432"). No host means libpq's
 * default, shown as "localhost". In a. An unparsable dsn gives "postgres". */
const char *usher_pg_instance(struct usher_arena *a, const char *dsn);

/* dsn for messages and logs, with the password replaced:
 * "postgresql://usher:***@db:5432/booking". In a; never NULL. */
const char *usher_pg_describe(struct usher_arena *a, const char *dsn);

/* The probe_failure_info reason for libpq's message about a failed
 * connection: auth (password, pg_hba, unknown role), tls, dns, timeout or
 * connect. */
const char *usher_pg_connect_reason(const char *msg);

#endif
