/* usher backup postgres|redis|list|verify|expire: encrypted, compressed,
 * verifiable backups into a repository (lib/backup, docs/backup.md). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup/job.h"
#include "backup/repo.h"
#include "backup/setup.h"
#include "cli.h"
#include "core/mem.h"
#include "core/timeutil.h"

static const char exit_help[] =
    "exit status: 0 success, 1 the backup, verify or expire failed (the message says\n"
    "why), 2 invalid configuration or usage, 3 another backup of the target is\n"
    "running (after --lock-wait)\n";

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usher backup postgres [--target NAME | --dsn DSN] [options]\n"
		"       usher backup redis    [--target NAME | --dsn DSN] [options]\n"
		"       usher backup list     [--repo DIR] [--target NAME] [--json]\n"
		"       usher backup verify   [ID... | --all] [--repo DIR] [--key-file FILE]\n"
		"       usher backup expire   [--dry-run] [--target NAME] [--keep-last N]\n"
		"                             [--keep-daily N] [--keep-weekly N] [--keep-monthly N]\n"
		"\n"
		"postgres: pg_dump (custom format) of the database; redis: the RDB snapshot\n"
		"(SYNC). Both are compressed with zstd, encrypted with AES-256-GCM in\n"
		"authenticated chunks and written with a manifest; the new backup's id is\n"
		"printed. Without --target or --dsn, every postgres (or redis) entry of\n"
		"backup.targets is backed up.\n"
		"\n"
		"  --config FILE         usher.yml (default $USHER_CONFIG, else %s)\n"
		"  --target NAME         a postgres/redis probe of the config, or a DSN\n"
		"  --dsn DSN             back up this DSN (postgresql://..., redis://...)\n"
		"  --name NAME           target name for --dsn (default derived from it)\n"
		"  --repo DIR            repository (default backup.repository)\n"
		"  --key-file FILE       64 hex characters (default backup.encryption_key)\n"
		"  --lock-wait DURATION  wait this long for a running backup of the target\n"
		"                        (default backup.lock_wait, 0s: fail at once)\n"
		"  --textfile-dir DIR    write the result metrics here (default textfile_dir)\n"
		"  --quiet               no progress line\n"
		"  --json                list: JSON instead of a table\n"
		"  --all                 verify: every backup, not the newest of each target\n"
		"  --dry-run             expire: print what would be kept and removed\n"
		"\n%s",
		USHER_DEFAULT_CONFIG, exit_help);
}

struct opts {
	const char *config, *target, *dsn, *name, *repo, *key_file, *textfile_dir;
	int64_t lock_wait_ms;
	bool lock_wait_set, quiet, json, all, dry_run;
	struct usher_backup_retention_conf keep;
	bool keep_set;
};

enum {
	OPT_CONFIG = 256,
	OPT_TARGET,
	OPT_DSN,
	OPT_NAME,
	OPT_REPO,
	OPT_KEY,
	OPT_LOCKWAIT,
	OPT_TEXTFILE,
	OPT_QUIET,
	OPT_JSON,
	OPT_ALL,
	OPT_DRY,
	OPT_KLAST,
	OPT_KDAILY,
	OPT_KWEEKLY,
	OPT_KMONTHLY,
	OPT_HELP,
};

static bool parse_count(const char *s, int64_t *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (!*s || *end || v < 0 || v > 100000)
		return false;
	*out = v;
	return true;
}

/* Parses argv; returns -1 to go on, else an exit status. */
static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, OPT_CONFIG},
	    {"target", required_argument, NULL, OPT_TARGET},
	    {"dsn", required_argument, NULL, OPT_DSN},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"repo", required_argument, NULL, OPT_REPO},
	    {"key-file", required_argument, NULL, OPT_KEY},
	    {"lock-wait", required_argument, NULL, OPT_LOCKWAIT},
	    {"textfile-dir", required_argument, NULL, OPT_TEXTFILE},
	    {"quiet", no_argument, NULL, OPT_QUIET},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"all", no_argument, NULL, OPT_ALL},
	    {"dry-run", no_argument, NULL, OPT_DRY},
	    {"keep-last", required_argument, NULL, OPT_KLAST},
	    {"keep-daily", required_argument, NULL, OPT_KDAILY},
	    {"keep-weekly", required_argument, NULL, OPT_KWEEKLY},
	    {"keep-monthly", required_argument, NULL, OPT_KMONTHLY},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "hq", longopts, NULL)) != -1) {
		int64_t *count = NULL;

		switch (opt) {
		case OPT_CONFIG: o->config = optarg; break;
		case OPT_TARGET: o->target = optarg; break;
		case OPT_DSN: o->dsn = optarg; break;
		case OPT_NAME: o->name = optarg; break;
		case OPT_REPO: o->repo = optarg; break;
		case OPT_KEY: o->key_file = optarg; break;
		case OPT_TEXTFILE: o->textfile_dir = optarg; break;
		case OPT_LOCKWAIT:
			if (usher_duration_parse(optarg, &o->lock_wait_ms)) {
				fprintf(stderr, "usher backup: --lock-wait: \"%s\" is not a duration "
						"(e.g. 30s, 5m)\n",
					optarg);
				return USHER_EXIT_INVALID;
			}
			o->lock_wait_set = true;
			break;
		case 'q':
		case OPT_QUIET: o->quiet = true; break;
		case OPT_JSON: o->json = true; break;
		case OPT_ALL: o->all = true; break;
		case OPT_DRY: o->dry_run = true; break;
		case OPT_KLAST: count = &o->keep.keep_last; break;
		case OPT_KDAILY: count = &o->keep.keep_daily; break;
		case OPT_KWEEKLY: count = &o->keep.keep_weekly; break;
		case OPT_KMONTHLY: count = &o->keep.keep_monthly; break;
		case 'h':
		case OPT_HELP: usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
		if (count) {
			if (!parse_count(optarg, count)) {
				fprintf(stderr, "usher backup: %s: expected a count, got \"%s\"\n",
					argv[optind - 1], optarg);
				return USHER_EXIT_INVALID;
			}
			o->keep_set = true;
		}
	}
	return -1;
}

static int setup(const struct opts *o, bool need_key, struct usher_backup_setup *s,
		 volatile sig_atomic_t *stop)
{
	struct usher_error err = {{0}};

	if (usher_backup_setup_init(s, o->config, o->repo, o->key_file, need_key, &err)) {
		fprintf(stderr, "usher backup: %s\n", usher_error_msg(&err, USHER_ERR_INVALID));
		return USHER_EXIT_INVALID;
	}
	if (o->lock_wait_set)
		s->env.lock_wait_ms = o->lock_wait_ms;
	if (o->textfile_dir)
		s->env.textfile_dir = o->textfile_dir;
	s->env.progress = !o->quiet && isatty(2);
	s->env.stop = stop;
	return -1;
}

static int exit_of(enum usher_err rc)
{
	switch (rc) {
	case USHER_OK: return USHER_EXIT_OK;
	case USHER_ERR_TIMEOUT: return USHER_EXIT_BUSY;
	case USHER_ERR_INVALID: return USHER_EXIT_INVALID;
	default: return USHER_EXIT_FAILURE;
	}
}

/* ---------------------------------------------------------- take */

static int take_one(struct usher_backup_setup *s, const char *spec, const char *kind,
		    const char *name)
{
	struct usher_backup_target t;
	struct usher_error err = {{0}};
	char id[USHER_BACKUP_ID_MAX];
	enum usher_err rc;

	rc = usher_backup_target_resolve(s->arena, s->cfg, spec, kind, name, &t, &err);
	if (rc) {
		fprintf(stderr, "usher backup %s: %s\n", kind, usher_error_msg(&err, rc));
		return USHER_EXIT_INVALID;
	}
	rc = usher_backup_take(&s->env, &t, id, sizeof(id), &err);
	if (rc) {
		fprintf(stderr, "usher backup %s: %s: %s\n", kind, t.name, usher_error_msg(&err, rc));
		return exit_of(rc == USHER_ERR_INVALID ? USHER_ERR_IO : rc);
	}
	printf("%s\n", id);
	fflush(stdout);
	return USHER_EXIT_OK;
}

static int cmd_take(int argc, char **argv, const char *kind)
{
	struct opts o = {0};
	struct usher_backup_setup s;
	volatile sig_atomic_t stop = 0;
	int status = parse(argc, argv, &o);
	size_t i, n = 0;

	if (status >= 0)
		return status;
	if (optind < argc || (o.target && o.dsn)) {
		fprintf(stderr, "usher backup %s: %s\n", kind,
			optind < argc ? "unexpected arguments (use --target NAME or --dsn DSN)"
				      : "--target and --dsn exclude each other");
		return USHER_EXIT_INVALID;
	}
	status = setup(&o, true, &s, &stop);
	if (status >= 0) {
		usher_backup_setup_free(&s);
		return status;
	}
	usher_backup_signals(&stop);
	if (o.target || o.dsn) {
		status = take_one(&s, o.target ? o.target : o.dsn, kind, o.dsn ? o.name : NULL);
		usher_backup_setup_free(&s);
		return status;
	}
	status = USHER_EXIT_OK;
	for (i = 0; i < s.bc.targets.n && !stop; i++) {
		struct usher_backup_target t;
		struct usher_error err = {{0}};
		int st;

		if (usher_backup_target_resolve(s.arena, s.cfg, s.bc.targets.v[i], NULL, NULL, &t,
						&err) == USHER_OK &&
		    strcmp(t.kind, kind) != 0)
			continue;
		n++;
		st = take_one(&s, s.bc.targets.v[i], kind, NULL);
		if (st > status)
			status = st;
	}
	if (n == 0) {
		fprintf(stderr, "usher backup %s: nothing to back up: pass --target NAME or --dsn "
				"DSN, or list %s targets in backup.targets\n",
			kind, kind);
		status = USHER_EXIT_INVALID;
	}
	usher_backup_setup_free(&s);
	return status;
}

/* ---------------------------------------------------------- list */

static void human(double b, char *out, size_t len)
{
	const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;

	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	snprintf(out, len, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void print_bad(const struct usher_repo_list *l)
{
	size_t i;

	for (i = 0; i < l->nbad; i++)
		fprintf(stderr, "usher backup: warning: skipping %s\n", l->bad[i]);
}

static int cmd_list(int argc, char **argv)
{
	struct opts o = {0};
	struct usher_backup_setup s;
	struct usher_repo_list l;
	struct usher_error err = {{0}};
	int status = parse(argc, argv, &o);
	size_t i;

	if (status >= 0)
		return status;
	if (optind < argc) {
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	status = setup(&o, false, &s, NULL);
	if (status >= 0) {
		usher_backup_setup_free(&s);
		return status;
	}
	if (usher_repo_list(s.env.repo, o.target, &l, &err)) {
		fprintf(stderr, "usher backup list: %s\n", err.msg);
		usher_backup_setup_free(&s);
		return USHER_EXIT_FAILURE;
	}
	print_bad(&l);
	if (o.json) {
		json_t *arr = json_array();
		char *text;

		for (i = 0; i < l.n; i++) {
			const struct usher_manifest *m = l.v[i].m;
			char start[40], stop[40];
			json_t *j = json_object();

			usher_time_format_rfc3339(m->start_ms, start, sizeof(start));
			usher_time_format_rfc3339(m->stop_ms, stop, sizeof(stop));
			json_object_set_new(j, "id", json_string(m->id));
			json_object_set_new(j, "kind", json_string(m->kind));
			json_object_set_new(j, "target", json_string(m->target));
			json_object_set_new(j, "database",
					    m->database ? json_string(m->database) : json_null());
			json_object_set_new(j, "server_version", m->server_version
									 ? json_string(m->server_version)
									 : json_null());
			json_object_set_new(j, "start_time", json_string(start));
			json_object_set_new(j, "stop_time", json_string(stop));
			json_object_set_new(j, "duration_seconds",
					    json_real((double)(m->stop_ms - m->start_ms) / 1000.0));
			json_object_set_new(j, "raw_bytes", json_integer((json_int_t)m->raw_bytes));
			json_object_set_new(j, "stored_bytes",
					    json_integer((json_int_t)m->stored_bytes));
			json_object_set_new(j, "key_id", json_string(m->key_id));
			json_object_set_new(j, "tables", json_integer((json_int_t)m->ntables));
			json_object_set_new(j, "path", json_string(l.v[i].dir));
			json_array_append_new(arr, j);
		}
		text = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", text ? text : "[]");
		free(text);
		json_decref(arr);
	} else if (l.n == 0) {
		printf("no backups in %s\n", s.env.repo);
	} else {
		printf("%-40s %-8s %-20s %-20s %8s %10s %10s\n", "ID", "KIND", "DATABASE", "STARTED",
		       "TOOK", "RAW", "STORED");
		for (i = 0; i < l.n; i++) {
			const struct usher_manifest *m = l.v[i].m;
			char start[40], raw[32], stored[32], took[32];

			usher_time_format_rfc3339(m->start_ms, start, sizeof(start));
			start[19] = 'Z';
			start[20] = '\0';
			human((double)m->raw_bytes, raw, sizeof(raw));
			human((double)m->stored_bytes, stored, sizeof(stored));
			snprintf(took, sizeof(took), "%.1fs", (double)(m->stop_ms - m->start_ms) / 1e3);
			printf("%-40s %-8s %-20s %-20s %8s %10s %10s\n", m->id, m->kind,
			       m->database ? m->database : "-", start, took, raw, stored);
		}
	}
	usher_repo_list_free(&l);
	usher_backup_setup_free(&s);
	return USHER_EXIT_OK;
}

/* --------------------------------------------------------- verify */

static int verify_one(struct usher_backup_setup *s, const struct usher_repo_entry *b)
{
	struct usher_error err = {{0}};
	char raw[32];
	enum usher_err rc = usher_backup_verify(&s->env, b, &err);

	if (rc) {
		printf("FAILED %s\n", b->id);
		fprintf(stderr, "usher backup verify: %s\n", usher_error_msg(&err, rc));
		return USHER_EXIT_FAILURE;
	}
	human((double)b->m->raw_bytes, raw, sizeof(raw));
	printf("ok     %s (%s raw, %llu chunks, sha256 %.16s...)\n", b->id, raw,
	       (unsigned long long)b->m->chunks, b->m->sha256);
	return USHER_EXIT_OK;
}

static int cmd_verify(int argc, char **argv)
{
	struct opts o = {0};
	struct usher_backup_setup s;
	struct usher_repo_list l;
	struct usher_error err = {{0}};
	volatile sig_atomic_t stop = 0;
	int status = parse(argc, argv, &o), i;
	size_t j, n = 0;

	if (status >= 0)
		return status;
	if (o.all && optind < argc) {
		fprintf(stderr, "usher backup verify: give IDs or --all, not both\n");
		return USHER_EXIT_INVALID;
	}
	status = setup(&o, true, &s, &stop);
	if (status >= 0) {
		usher_backup_setup_free(&s);
		return status;
	}
	usher_backup_signals(&stop);
	if (usher_repo_list(s.env.repo, o.target, &l, &err)) {
		fprintf(stderr, "usher backup verify: %s\n", err.msg);
		usher_backup_setup_free(&s);
		return USHER_EXIT_FAILURE;
	}
	print_bad(&l);
	status = USHER_EXIT_OK;
	if (optind < argc) {
		for (i = optind; i < argc; i++) {
			const struct usher_repo_entry *b = usher_repo_find(&l, argv[i]);
			int st;

			if (!b) {
				fprintf(stderr, "usher backup verify: no backup %s in %s\n", argv[i],
					s.env.repo);
				status = USHER_EXIT_FAILURE;
				continue;
			}
			st = verify_one(&s, b);
			n++;
			if (st > status)
				status = st;
		}
	} else {
		for (j = 0; j < l.n && !stop; j++) {
			size_t k;
			bool newer = false;
			int st;

			/* without --all: the newest backup of each target */
			for (k = j + 1; k < l.n && !o.all; k++)
				newer |= strcmp(l.v[k].m->target, l.v[j].m->target) == 0;
			if (newer)
				continue;
			st = verify_one(&s, &l.v[j]);
			n++;
			if (st > status)
				status = st;
		}
		if (n == 0 && l.nbad == 0)
			printf("no backups in %s\n", s.env.repo);
	}
	if (l.nbad)
		status = USHER_EXIT_FAILURE;
	usher_repo_list_free(&l);
	usher_backup_setup_free(&s);
	return status;
}

/* --------------------------------------------------------- expire */

static void reasons(unsigned k, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s%s", k & USHER_KEEP_LAST ? "last," : "",
		 k & USHER_KEEP_DAILY ? "daily," : "", k & USHER_KEEP_WEEKLY ? "weekly," : "",
		 k & USHER_KEEP_MONTHLY ? "monthly," : "");
	if (*out)
		out[strlen(out) - 1] = '\0';
}

static int expire_target(struct usher_backup_setup *s, const struct usher_repo_list *l,
			 const char *target, const struct usher_backup_retention_conf *r,
			 bool dry_run)
{
	size_t i, n = 0, kept = 0;
	int64_t *times;
	unsigned *keep;
	size_t *idx;
	int status = USHER_EXIT_OK, lock = -1;
	int64_t oldest = 0, newest = 0;
	struct usher_error err = {{0}};

	for (i = 0; i < l->n; i++)
		n += strcmp(l->v[i].m->target, target) == 0;
	times = usher_calloc(n ? n : 1, sizeof(*times));
	keep = usher_calloc(n ? n : 1, sizeof(*keep));
	idx = usher_calloc(n ? n : 1, sizeof(*idx));
	n = 0;
	for (i = l->n; i > 0; i--) /* newest first */
		if (strcmp(l->v[i - 1].m->target, target) == 0) {
			idx[n] = i - 1;
			times[n++] = l->v[i - 1].m->stop_ms;
		}
	usher_retention_apply(r, times, n, keep);
	if (!dry_run && usher_repo_lock(s->env.repo, target, s->env.lock_wait_ms, &lock, &err)) {
		fprintf(stderr, "usher backup expire: %s\n", err.msg);
		status = USHER_EXIT_BUSY;
		goto out;
	}
	for (i = 0; i < n; i++)
		if (keep[i]) {
			kept++;
			if (!newest)
				newest = times[i];
			oldest = times[i];
		}
	printf("%s: %zu backups, keeping %zu, %s %zu\n", target, n, kept,
	       dry_run ? "would remove" : "removing", n - kept);
	for (i = 0; i < n; i++) {
		const struct usher_repo_entry *b = &l->v[idx[i]];
		char why[64];

		reasons(keep[i], why, sizeof(why));
		if (keep[i]) {
			printf("  keep    %s (%s)\n", b->id, why);
			continue;
		}
		if (dry_run) {
			printf("  remove  %s\n", b->id);
			continue;
		}
		err.msg[0] = '\0';
		if (usher_repo_remove(s->env.repo, b->id, &err)) {
			fprintf(stderr, "usher backup expire: %s\n", err.msg);
			status = USHER_EXIT_FAILURE;
		} else {
			printf("  removed %s\n", b->id);
		}
	}
	if (kept) {
		char from[40], to[40];
		double days = (double)(usher_now_ms() - oldest) / 86400000.0;

		usher_time_format_rfc3339(oldest, from, sizeof(from));
		usher_time_format_rfc3339(newest, to, sizeof(to));
		printf("  recovery window: %s to %s (%.1f days back)\n", from, to, days);
	}
out:
	usher_repo_unlock(lock);
	free(times);
	free(keep);
	free(idx);
	return status;
}

static int cmd_expire(int argc, char **argv)
{
	struct opts o = {0};
	struct usher_backup_setup s;
	struct usher_repo_list l;
	struct usher_error err = {{0}};
	const struct usher_backup_retention_conf *r;
	int status = parse(argc, argv, &o);
	size_t i, j;

	if (status >= 0)
		return status;
	if (optind < argc) {
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	status = setup(&o, false, &s, NULL);
	if (status >= 0) {
		usher_backup_setup_free(&s);
		return status;
	}
	r = o.keep_set ? &o.keep : &s.bc.retention;
	if (!usher_retention_set(r)) {
		fprintf(stderr, "usher backup expire: no retention set: configure backup.retention "
				"(keep_last, keep_daily, keep_weekly, keep_monthly) or pass "
				"--keep-*; nothing removed\n");
		usher_backup_setup_free(&s);
		return USHER_EXIT_INVALID;
	}
	if (usher_repo_list(s.env.repo, o.target, &l, &err)) {
		fprintf(stderr, "usher backup expire: %s\n", err.msg);
		usher_backup_setup_free(&s);
		return USHER_EXIT_FAILURE;
	}
	print_bad(&l);
	status = USHER_EXIT_OK;
	for (i = 0; i < l.n; i++) {
		bool seen = false;
		int st;

		for (j = 0; j < i; j++)
			seen |= strcmp(l.v[j].m->target, l.v[i].m->target) == 0;
		if (seen)
			continue;
		st = expire_target(&s, &l, l.v[i].m->target, r, o.dry_run);
		if (st > status)
			status = st;
	}
	if (l.n == 0)
		printf("no backups in %s\n", s.env.repo);
	usher_repo_list_free(&l);
	usher_backup_setup_free(&s);
	return status;
}

static int cmd_postgres(int argc, char **argv)
{
	return cmd_take(argc, argv, "postgres");
}

static int cmd_redis(int argc, char **argv)
{
	return cmd_take(argc, argv, "redis");
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} subs[] = {
    {"postgres", cmd_postgres}, {"redis", cmd_redis},   {"list", cmd_list},
    {"verify", cmd_verify},     {"expire", cmd_expire},
};

int usher_cmd_backup(int argc, char **argv)
{
	size_t i;

	if (argc >= 2)
		for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
			if (strcmp(argv[1], subs[i].name) == 0)
				return subs[i].fn(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return USHER_EXIT_OK;
	}
	if (argc >= 2)
		fprintf(stderr, "usher backup: unknown sub-command \"%s\"\n\n", argv[1]);
	usage(stderr);
	return USHER_EXIT_INVALID;
}
