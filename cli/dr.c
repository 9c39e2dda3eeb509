/* usher dr drill: proves the newest backup restores (lib/backup/job.c),
 * and reports RTO and RPO. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/job.h"
#include "backup/setup.h"
#include "cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usher dr drill [--config FILE] [--target NAME] [--json]\n"
		"\n"
		"Restores the newest backup of each postgres target (backup.targets, or\n"
		"--target) into a new scratch database on backup.drill.scratch_dsn's server,\n"
		"checks every table's row count against the manifest, runs\n"
		"backup.drill.sanity_sql, drops the scratch database and reports the RTO\n"
		"(how long until the database was usable) and the RPO (how old its data was).\n"
		"The result goes to the textfile directory as usher_dr_drill_* metrics.\n"
		"\n"
		"  --config FILE         usher.yml (default $USHER_CONFIG, else %s)\n"
		"  --target NAME         drill this target only\n"
		"  --repo DIR            repository (default backup.repository)\n"
		"  --key-file FILE       64 hex characters (default backup.encryption_key)\n"
		"  --textfile-dir DIR    write the metrics here (default textfile_dir)\n"
		"  --json                one JSON object per target on stdout\n"
		"\n"
		"exit status: 0 every drill passed, 1 a drill failed, 2 invalid configuration\n"
		"or usage\n",
		USHER_DEFAULT_CONFIG);
}

enum { OPT_CONFIG = 256, OPT_TARGET, OPT_REPO, OPT_KEY, OPT_TEXTFILE, OPT_JSON, OPT_HELP };

static int drill_one(struct usher_backup_setup *s, const char *target, bool json)
{
	struct usher_drill_result res;
	struct usher_error err = {{0}};
	enum usher_err rc = usher_drill_run(&s->env, target, &s->bc.drill, &res,
					    json ? NULL : stdout, &err);

	if (json) {
		json_t *j = json_object();
		char *text;

		json_object_set_new(j, "target", json_string(target));
		json_object_set_new(j, "status", json_string(rc ? "failed" : "ok"));
		json_object_set_new(j, "backup", *res.id ? json_string(res.id) : json_null());
		json_object_set_new(j, "scratch_database",
				    *res.scratch_db ? json_string(res.scratch_db) : json_null());
		if (!rc) {
			json_object_set_new(j, "rto_seconds", json_real((double)res.rto_ms / 1e3));
			json_object_set_new(j, "rpo_seconds", json_real(res.rpo_s));
			json_object_set_new(j, "tables", json_integer((json_int_t)res.tables));
			json_object_set_new(j, "sanity_checks", json_integer((json_int_t)res.checks));
		} else {
			json_object_set_new(j, "error", json_string(usher_error_msg(&err, rc)));
		}
		text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s\n", text);
		free(text);
		json_decref(j);
	}
	if (rc) {
		fprintf(stderr, "usher dr drill: %s: FAILED: %s\n", target, usher_error_msg(&err, rc));
		return USHER_EXIT_FAILURE;
	}
	if (!json)
		printf("drill %s: PASSED: RTO %.1f s (restore %.1f s), RPO %.0f s, %zu tables, "
		       "%zu sanity checks, backup %s\n",
		       target, (double)res.rto_ms / 1e3, (double)res.restore.restore_ms / 1e3,
		       res.rpo_s, res.tables, res.checks, res.id);
	return USHER_EXIT_OK;
}

int usher_cmd_dr(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, OPT_CONFIG},
	    {"target", required_argument, NULL, OPT_TARGET},
	    {"repo", required_argument, NULL, OPT_REPO},
	    {"key-file", required_argument, NULL, OPT_KEY},
	    {"textfile-dir", required_argument, NULL, OPT_TEXTFILE},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *target = NULL, *repo = NULL, *key_file = NULL,
		   *textfile = NULL;
	struct usher_backup_setup s;
	struct usher_error err = {{0}};
	volatile sig_atomic_t stop = 0;
	bool json = false;
	int opt, status = USHER_EXIT_OK;
	size_t i, n = 0;

	if (argc < 2 || strcmp(argv[1], "drill") != 0) {
		bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);

		usage(help ? stdout : stderr);
		return help ? USHER_EXIT_OK : USHER_EXIT_INVALID;
	}
	argc--;
	argv++;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_CONFIG: config = optarg; break;
		case OPT_TARGET: target = optarg; break;
		case OPT_REPO: repo = optarg; break;
		case OPT_KEY: key_file = optarg; break;
		case OPT_TEXTFILE: textfile = optarg; break;
		case OPT_JSON: json = true; break;
		case 'h':
		case OPT_HELP: usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	if (usher_backup_setup_init(&s, config, repo, key_file, true, &err)) {
		fprintf(stderr, "usher dr drill: %s\n", usher_error_msg(&err, USHER_ERR_INVALID));
		usher_backup_setup_free(&s);
		return USHER_EXIT_INVALID;
	}
	if (!s.bc.drill.scratch_dsn) {
		fprintf(stderr, "usher dr drill: no scratch server: set backup.drill.scratch_dsn\n");
		usher_backup_setup_free(&s);
		return USHER_EXIT_INVALID;
	}
	if (textfile)
		s.env.textfile_dir = textfile;
	s.env.stop = &stop;
	usher_backup_signals(&stop);
	if (target) {
		status = drill_one(&s, target, json);
		n = 1;
	}
	for (i = 0; !target && i < s.bc.targets.n && !stop; i++) {
		struct usher_backup_target t;
		struct usher_error e2 = {{0}};
		int st;

		if (usher_backup_target_resolve(s.arena, s.cfg, s.bc.targets.v[i], NULL, NULL, &t,
						&e2) ||
		    strcmp(t.kind, "postgres") != 0)
			continue;
		n++;
		st = drill_one(&s, t.name, json);
		if (st > status)
			status = st;
	}
	if (n == 0) {
		fprintf(stderr, "usher dr drill: nothing to drill: pass --target NAME or list "
				"postgres targets in backup.targets\n");
		status = USHER_EXIT_INVALID;
	}
	usher_backup_setup_free(&s);
	return status;
}
