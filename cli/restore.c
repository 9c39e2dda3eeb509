/* usher restore ID: decrypts a backup to a temp file, pg_restore -j N into
 * the target database, then checks every table's row count against the
 * manifest (lib/backup/job.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/job.h"
#include "backup/pg.h"
#include "backup/repo.h"
#include "backup/setup.h"
#include "cli.h"
#include "core/buf.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usher restore ID (--to DSN | --to-db NAME | --to-file PATH) [options]\n"
		"\n"
		"Decrypts and decompresses backup ID (see usher backup list) to a temp file,\n"
		"restores it with pg_restore --jobs N, and compares every table's row count\n"
		"with the manifest. A database that already holds tables is refused unless\n"
		"--force (pg_restore --clean --if-exists).\n"
		"\n"
		"  --to DSN          the database to restore into (it must exist)\n"
		"  --to-db NAME      a database on the backup's own server (the target's DSN\n"
		"                    from the config, or --target), created when missing\n"
		"  --to-file PATH    write the decrypted dump instead (pg_dump custom format,\n"
		"                    or the RDB file of a redis backup)\n"
		"  --target NAME     the probe whose server --to-db means\n"
		"  --jobs N          pg_restore --jobs (default 2)\n"
		"  --force           restore over a database that is not empty\n"
		"  --no-owner        pg_restore --no-owner --no-acl (roles differ)\n"
		"  --repo DIR        repository (default backup.repository)\n"
		"  --key-file FILE   64 hex characters (default backup.encryption_key)\n"
		"  --config FILE     usher.yml (default $USHER_CONFIG, else %s)\n"
		"  --quiet           no progress line\n"
		"\n"
		"exit status: 0 restored and row counts match, 1 the restore failed or row\n"
		"counts differ (or the target is not empty without --force), 2 invalid\n"
		"configuration or usage\n",
		USHER_DEFAULT_CONFIG);
}

enum { OPT_TO = 256, OPT_TODB, OPT_TOFILE, OPT_TARGET, OPT_JOBS, OPT_FORCE, OPT_NOOWNER,
       OPT_REPO, OPT_KEY, OPT_CONFIG, OPT_QUIET, OPT_HELP };

/* The DSN of database db on target's server. */
static char *dsn_for_db(const struct usher_backup_setup *s, const char *target, const char *db,
			bool create, struct usher_error *err)
{
	struct usher_backup_target t;
	struct usher_pgconn c = {0}, copy = {0};
	struct usher_pgsess *sess = NULL;
	struct usher_buf b;
	char *out = NULL, *info;
	const char *pw;
	bool exists = false;

	if (usher_backup_target_resolve(s->arena, s->cfg, target, "postgres", NULL, &t, err))
		return NULL;
	if (usher_pgconn_parse(t.dsn, &c, err))
		return NULL;
	if (create) {
		if (usher_pgsess_open(&c, &sess, err) ||
		    usher_pgsess_db_exists(sess, db, &exists, err) ||
		    (!exists && usher_pgsess_create_db(sess, db, err)))
			goto out;
	}
	usher_pgconn_copy(&c, db, &copy);
	info = usher_pgconn_conninfo(&copy);
	usher_buf_init(&b, 64 * 1024);
	usher_buf_addstr(&b, info);
	free(info);
	pw = usher_pgconn_get(&copy, "password");
	if (pw) {
		usher_buf_addstr(&b, " password='");
		for (; *pw; pw++) {
			if (*pw == '\'' || *pw == '\\')
				usher_buf_addc(&b, '\\');
			usher_buf_addc(&b, *pw);
		}
		usher_buf_addc(&b, '\'');
	}
	out = usher_buf_take(&b);
out:
	usher_pgsess_close(sess);
	usher_pgconn_free(&c);
	usher_pgconn_free(&copy);
	return out;
}

int usher_cmd_restore(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"to", required_argument, NULL, OPT_TO},
	    {"to-db", required_argument, NULL, OPT_TODB},
	    {"to-file", required_argument, NULL, OPT_TOFILE},
	    {"target", required_argument, NULL, OPT_TARGET},
	    {"jobs", required_argument, NULL, OPT_JOBS},
	    {"force", no_argument, NULL, OPT_FORCE},
	    {"no-owner", no_argument, NULL, OPT_NOOWNER},
	    {"repo", required_argument, NULL, OPT_REPO},
	    {"key-file", required_argument, NULL, OPT_KEY},
	    {"config", required_argument, NULL, OPT_CONFIG},
	    {"quiet", no_argument, NULL, OPT_QUIET},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	const char *to = NULL, *to_db = NULL, *to_file = NULL, *target = NULL, *repo = NULL,
		   *key_file = NULL, *config = NULL;
	struct usher_restore_req req = {.jobs = 2};
	struct usher_restore_result res;
	struct usher_backup_setup s;
	struct usher_repo_list l = {0};
	const struct usher_repo_entry *b;
	struct usher_error err = {{0}};
	volatile sig_atomic_t stop = 0;
	bool quiet = false;
	char *dsn = NULL;
	int opt, status = USHER_EXIT_FAILURE;
	enum usher_err rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "hq", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_TO: to = optarg; break;
		case OPT_TODB: to_db = optarg; break;
		case OPT_TOFILE: to_file = optarg; break;
		case OPT_TARGET: target = optarg; break;
		case OPT_JOBS: {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 64) {
				fprintf(stderr, "usher restore: --jobs: expected 1 to 64\n");
				return USHER_EXIT_INVALID;
			}
			req.jobs = (int)v;
			break;
		}
		case OPT_FORCE: req.force = true; break;
		case OPT_NOOWNER: req.no_owner = true; break;
		case OPT_REPO: repo = optarg; break;
		case OPT_KEY: key_file = optarg; break;
		case OPT_CONFIG: config = optarg; break;
		case 'q':
		case OPT_QUIET: quiet = true; break;
		case 'h':
		case OPT_HELP: usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
	}
	if (optind + 1 != argc || (!!to + !!to_db + !!to_file) != 1) {
		fprintf(stderr, "usher restore: %s\n\n",
			optind + 1 != argc ? "give exactly one backup ID"
					   : "give exactly one of --to, --to-db and --to-file");
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	if (usher_backup_setup_init(&s, config, repo, key_file, true, &err)) {
		fprintf(stderr, "usher restore: %s\n", usher_error_msg(&err, USHER_ERR_INVALID));
		usher_backup_setup_free(&s);
		return USHER_EXIT_INVALID;
	}
	s.env.progress = !quiet && isatty(2);
	s.env.stop = &stop;
	usher_backup_signals(&stop);
	if (usher_repo_list(s.env.repo, NULL, &l, &err)) {
		fprintf(stderr, "usher restore: %s\n", err.msg);
		goto out;
	}
	b = usher_repo_find(&l, argv[optind]);
	if (!b) {
		fprintf(stderr, "usher restore: no backup %s in %s (usher backup list shows them)\n",
			argv[optind], s.env.repo);
		goto out;
	}
	if (to_db) {
		dsn = dsn_for_db(&s, target ? target : b->m->target, to_db, true, &err);
		if (!dsn) {
			fprintf(stderr, "usher restore: --to-db %s: %s%s\n", to_db, err.msg,
				target ? "" : " (use --to DSN, or --target NAME)");
			status = USHER_EXIT_INVALID;
			goto out;
		}
		to = dsn;
	}
	req.to_dsn = to;
	req.to_file = to_file;
	rc = usher_restore_run(&s.env, b, &req, &res, &err);
	if (dsn)
		memset(dsn, 0, strlen(dsn));
	if (rc) {
		fprintf(stderr, "usher restore: %s\n", usher_error_msg(&err, rc));
		goto out;
	}
	if (to_file)
		printf("restored %s to %s (%.1f s)\n", b->id, to_file, (double)res.decrypt_ms / 1e3);
	else
		printf("restored %s: %zu tables, row counts match the backup "
		       "(decrypt %.1f s, pg_restore %.1f s, check %.1f s)\n",
		       b->id, res.tables, (double)res.decrypt_ms / 1e3,
		       (double)res.restore_ms / 1e3, (double)res.check_ms / 1e3);
	status = USHER_EXIT_OK;
out:
	free(dsn);
	usher_repo_list_free(&l);
	usher_backup_setup_free(&s);
	return status;
}
