/* The backup jobs behind `usher backup`, `usher restore` and `usher dr
 * drill`: each takes the repository, key and settings in one struct
 * usher_backup_env, reports with a struct usher_error, and leaves its
 * result as a textfile for usherd's /metrics. */
#ifndef USHER_BACKUP_JOB_H
#define USHER_BACKUP_JOB_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "backup/conf.h"
#include "backup/rdb.h"
#include "backup/repo.h"
#include "backup/stream.h"
#include "config/config.h"
#include "core/arena.h"
#include "core/err.h"

/* What a backup is taken of. */
struct usher_backup_target {
	const char *name; /* in ids, lock files, the target label */
	const char *kind; /* "postgres" or "redis" */
	const char *dsn;  /* postgres: a secret */
	struct usher_redis_src redis;
};

/* Resolves spec, a probe name of cfg (may be NULL) or a DSN, into out (in
 * a). kind, when not NULL, is the kind the command wants; name, when not
 * NULL, overrides the name derived from a DSN. */
enum usher_err usher_backup_target_resolve(struct usher_arena *a, const struct usher_config *cfg,
					   const char *spec, const char *kind, const char *name,
					   struct usher_backup_target *out, struct usher_error *err);

struct usher_backup_env {
	const char *repo;
	const struct usher_backup_key *key;
	int level, threads;
	int64_t lock_wait_ms;
	bool progress;            /* a progress line on stderr */
	const char *textfile_dir; /* NULL: no metrics written */
	const char *tmp_dir;      /* restores decrypt here */
	volatile sig_atomic_t *stop; /* set by a signal handler: abort cleanly */
};

/* Takes a backup of t into e->repo; id gets its id. USHER_ERR_TIMEOUT when
 * another backup of t holds the lock past e->lock_wait_ms. On failure no
 * partial file is left. */
enum usher_err usher_backup_take(const struct usher_backup_env *e,
				 const struct usher_backup_target *t, char *id, size_t idlen,
				 struct usher_error *err);

/* Re-reads backup b, checking every tag, the sha256s and sizes against its
 * manifest; writes the verify textfile of its target. */
enum usher_err usher_backup_verify(const struct usher_backup_env *e,
				   const struct usher_repo_entry *b, struct usher_error *err);

struct usher_restore_req {
	const char *to_dsn;  /* the database to restore into (postgres) */
	const char *to_file; /* or: write the raw dump (pg_dump custom format, RDB) here */
	int jobs;
	bool force;    /* restore over a non-empty database (pg_restore --clean) */
	bool no_owner; /* pg_restore --no-owner --no-acl */
};

struct usher_restore_result {
	int64_t decrypt_ms, restore_ms, check_ms;
	size_t tables, mismatches;
	char report[4096]; /* one line per table whose row count differs */
};

enum usher_err usher_restore_run(const struct usher_backup_env *e,
				 const struct usher_repo_entry *b, const struct usher_restore_req *r,
				 struct usher_restore_result *res, struct usher_error *err);

struct usher_drill_result {
	char id[USHER_BACKUP_ID_MAX];
	char scratch_db[128];
	int64_t rto_ms;   /* drill start to a checked, usable database */
	double rpo_s;     /* age of the data then: now - backup start */
	size_t tables, checks;
	struct usher_restore_result restore;
};

/* Restores the newest postgres backup of target into a new scratch
 * database on d->scratch_dsn's server, checks row counts, runs
 * d->sanity_sql, drops the database, and writes the drill textfile. Lines
 * of progress go to log (may be NULL). */
enum usher_err usher_drill_run(const struct usher_backup_env *e, const char *target,
			       const struct usher_backup_drill_conf *d,
			       struct usher_drill_result *res, FILE *log, struct usher_error *err);

#endif
