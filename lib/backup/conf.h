/* The `backup:` section of usher.yml: where backups go, the key, zstd
 * settings, retention, which targets, and the DR drill. Its option table
 * lives here; config/config.c embeds the section in struct usher_config. */
#ifndef USHER_BACKUP_CONF_H
#define USHER_BACKUP_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "config/options.h"

#define USHER_BACKUP_DEFAULT_REPO "/var/backups/usher"
#define USHER_BACKUP_DEFAULT_LEVEL 3
#define USHER_BACKUP_DEFAULT_THREADS 2

struct usher_backup_compression_conf {
	int64_t level;   /* zstd level, 1..19 */
	int64_t threads; /* zstd worker threads; 0: compress in the main thread */
};

/* Zero keeps none by that rule; all zero keeps every backup. */
struct usher_backup_retention_conf {
	int64_t keep_last;
	int64_t keep_daily;
	int64_t keep_weekly;
	int64_t keep_monthly;
};

struct usher_backup_drill_conf {
	const char *scratch_dsn;       /* a secret: the maintenance database of the scratch server */
	struct usher_strlist sanity_sql; /* statements run in the restored database */
	int64_t jobs;                  /* pg_restore -j */
};

struct usher_backup_conf {
	bool present; /* the section is in the file */
	const char *repository;
	const char *encryption_key; /* a secret: 64 hex characters */
	struct usher_backup_compression_conf compression;
	struct usher_backup_retention_conf retention;
	struct usher_strlist targets; /* probe names (postgres, redis) or DSNs */
	struct usher_backup_drill_conf drill;
	int64_t lock_wait_ms;
	const char *tmp_dir; /* where restores decrypt to; NULL: $TMPDIR or /var/tmp */
};

/* The table of the section (for check-config --reference and the docs). */
extern const struct usher_option usher_backup_options[];

/* The parser of the top-level `backup:` key (USHER_OPT_CUSTOM, field a
 * struct usher_backup_conf): fills it from the table and checks the key's
 * form, the zstd level and that each target names a postgres or redis
 * probe, or is a DSN. Must come after `probes` in the top-level table. */
usher_opt_parse_fn usher_backup_parse_conf;

/* Fills c with the defaults a config without `backup:` gets. */
void usher_backup_conf_defaults(struct usher_backup_conf *c);

#endif
