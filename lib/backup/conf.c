/* The `backup:` section: option tables and the checks that need the rest of
 * the config (targets must name postgres or redis probes). */
#include "backup/conf.h"

#include <stddef.h>
#include <string.h>

#include "backup/stream.h"
#include "config/config.h"

#define COMP(f) offsetof(struct usher_backup_compression_conf, f)
static const struct usher_option compression_options[] = {
	{"level", USHER_OPT_INT, COMP(level), "3", USHER_OPT_POSITIVE, "zstd level, 1 to 19"},
	{"threads", USHER_OPT_INT, COMP(threads), "2", 0,
	 "zstd worker threads (0: compress in usher's own thread)"},
	USHER_OPT_END,
};

#define RET(f) offsetof(struct usher_backup_retention_conf, f)
static const struct usher_option retention_options[] = {
	{"keep_last", USHER_OPT_INT, RET(keep_last), "0", 0, "keep the newest N backups"},
	{"keep_daily", USHER_OPT_INT, RET(keep_daily), "0", 0,
	 "keep the newest backup of each of the last N days that have one"},
	{"keep_weekly", USHER_OPT_INT, RET(keep_weekly), "0", 0,
	 "keep the newest backup of each of the last N ISO weeks that have one"},
	{"keep_monthly", USHER_OPT_INT, RET(keep_monthly), "0", 0,
	 "keep the newest backup of each of the last N months that have one"},
	USHER_OPT_END,
};

#define DRILL(f) offsetof(struct usher_backup_drill_conf, f)
static const struct usher_option drill_options[] = {
	{"scratch_dsn", USHER_OPT_SECRET, DRILL(scratch_dsn), NULL, 0,
	 "DSN of a maintenance database on the server drills restore into; a scratch "
	 "database is created there and dropped afterwards"},
	{"sanity_sql", USHER_OPT_STRLIST, DRILL(sanity_sql), NULL, 0,
	 "statements run in the restored database; an error or a first value of false "
	 "fails the drill"},
	{"jobs", USHER_OPT_INT, DRILL(jobs), "2", USHER_OPT_POSITIVE, "pg_restore -j"},
	USHER_OPT_END,
};

#define BK(f) offsetof(struct usher_backup_conf, f)
const struct usher_option usher_backup_options[] = {
	{"repository", USHER_OPT_STR, BK(repository), USHER_BACKUP_DEFAULT_REPO, 0,
	 "directory of the backup repository"},
	{"encryption_key", USHER_OPT_SECRET, BK(encryption_key), NULL, 0,
	 "the 256-bit key as 64 hex characters (openssl rand -hex 32); use ${file:/path}"},
	{"compression", USHER_OPT_SECTION, BK(compression), NULL, 0, "zstd settings",
	 compression_options},
	{"retention", USHER_OPT_SECTION, BK(retention), NULL, 0,
	 "what `usher backup expire` keeps (a backup is kept if any rule keeps it)",
	 retention_options},
	{"targets", USHER_OPT_STRLIST, BK(targets), NULL, 0,
	 "what `usher backup postgres|redis` backs up: names of postgres/redis probes, or DSNs"},
	{"drill", USHER_OPT_SECTION, BK(drill), NULL, 0, "the disaster-recovery drill",
	 drill_options},
	{"lock_wait", USHER_OPT_DURATION, BK(lock_wait_ms), "0s", 0,
	 "how long a backup waits for another one of the same target to finish"},
	{"tmp_dir", USHER_OPT_STR, BK(tmp_dir), NULL, 0,
	 "where restores decrypt the dump to (default $TMPDIR, else /var/tmp)"},
	USHER_OPT_END,
};

void usher_backup_conf_defaults(struct usher_backup_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->repository = USHER_BACKUP_DEFAULT_REPO;
	c->compression.level = USHER_BACKUP_DEFAULT_LEVEL;
	c->compression.threads = USHER_BACKUP_DEFAULT_THREADS;
	c->drill.jobs = 2;
}

static bool looks_like_dsn(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0 ||
	       strncmp(s, "redis://", 8) == 0 || strchr(s, '=') != NULL;
}

enum usher_err usher_backup_parse_conf(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				       void *field)
{
	struct usher_backup_conf *c = field;
	const struct usher_config *cfg = ctx->root;
	const struct usher_ynode *targets;
	enum usher_err rc;
	size_t i, j;

	usher_backup_conf_defaults(c);
	if (usher_ynode_is_null(n))
		return USHER_OK;
	if (n->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, n, "backup: expected a mapping, got a %s",
				       usher_ynode_kind_name(n->kind));
	rc = usher_opts_apply1(ctx, usher_backup_options, c, n);
	c->present = true;
	if (rc)
		return rc;
	if (c->compression.level > 19)
		rc = usher_cfg_error(ctx, usher_ynode_get(usher_ynode_get(n, "compression"), "level"),
				     "backup.compression.level: %lld is above 19",
				     (long long)c->compression.level);
	if (c->compression.threads < 0 || c->compression.threads > 64)
		rc = usher_cfg_error(ctx,
				     usher_ynode_get(usher_ynode_get(n, "compression"), "threads"),
				     "backup.compression.threads: %lld is not within 0..64",
				     (long long)c->compression.threads);
	if (c->retention.keep_last < 0 || c->retention.keep_daily < 0 ||
	    c->retention.keep_weekly < 0 || c->retention.keep_monthly < 0)
		rc = usher_cfg_error(ctx, usher_ynode_get(n, "retention"),
				     "backup.retention: counts must not be negative");
	if (c->encryption_key) {
		struct usher_backup_key k;
		struct usher_error e = {{0}};

		if (usher_backup_key_parse(c->encryption_key, strlen(c->encryption_key), &k, &e))
			rc = usher_cfg_error(ctx, usher_ynode_get(n, "encryption_key"),
					     "backup.encryption_key: %s", e.msg);
	}
	if (!*c->repository)
		rc = usher_cfg_error(ctx, usher_ynode_get(n, "repository"),
				     "backup.repository must not be empty");
	targets = usher_ynode_get(n, "targets");
	for (i = 0; i < c->targets.n; i++) {
		const char *t = c->targets.v[i];
		const struct usher_ynode *tn =
		    targets && targets->kind == USHER_Y_SEQ && i < targets->n ? targets->items[i]
									       : targets;

		if (looks_like_dsn(t))
			continue;
		for (j = 0; j < cfg->nprobes; j++)
			if (strcmp(cfg->probes[j].name, t) == 0)
				break;
		if (j == cfg->nprobes)
			rc = usher_cfg_error(ctx, tn,
					     "backup.targets: \"%s\" is neither a probe name nor a "
					     "DSN (postgresql://..., redis://...)",
					     t);
		else if (strcmp(cfg->probes[j].type_name, "postgres") != 0 &&
			 strcmp(cfg->probes[j].type_name, "redis") != 0)
			rc = usher_cfg_error(ctx, tn,
					     "backup.targets: probe \"%s\" is of type %s; only "
					     "postgres and redis probes can be backed up",
					     t, cfg->probes[j].type_name);
	}
	return rc;
}
