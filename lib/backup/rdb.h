/* Redis for backups: the RDB snapshot as a replica gets it (SYNC: the
 * server runs BGSAVE and streams the file), and the facts a manifest
 * records (version, keys per database). */
#ifndef USHER_BACKUP_RDB_H
#define USHER_BACKUP_RDB_H

#include <signal.h>
#include <stdint.h>

#include "backup/manifest.h"
#include "backup/spawn.h"
#include "core/err.h"
#include "probes/netclient.h"

struct usher_redis_src {
	struct usher_netaddr addr;
	const char *username; /* NULL: AUTH with the password alone */
	const char *password; /* NULL: no AUTH */
	int64_t idle_timeout_ms; /* longest silence from the server */
};

/* Parses "redis://[[user]:password@]host[:port]", "host:port" or
 * "unix:/path" into out (the strings point into a, or into dsn). */
enum usher_err usher_redis_src_parse(struct usher_arena *a, const char *dsn,
				     struct usher_redis_src *out, struct usher_error *err);

/* Connects, authenticates, reads INFO into m (server_version, tables:
 * one row count per database, schema "redis", table "db<N>"), then SYNC
 * and hands the RDB payload to fn. */
enum usher_err usher_redis_dump(const struct usher_redis_src *s, struct usher_manifest *m,
				usher_child_out_fn *fn, void *ctx, volatile sig_atomic_t *stop,
				struct usher_error *err);

#endif
