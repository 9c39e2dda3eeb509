/* usher diag: the 3 a.m. report. Runs every configured probe (or the named
 * ones) once, now, at the same time, plus deeper checks, and prints a table
 * (✓/⚠/✗, colours on a terminal) or JSON; the exit status is the verdict. */
#include <curl/curl.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config/config.h"
#include "core/timeutil.h"
#include "probes/diag.h"

#define DEFAULT_CONFIG "/etc/usher/usher.yml"
/* Where the alert pack's runbook_url annotations point (the rule files in
 * alerts/), so a page and this report link the same runbook. */
#define DEFAULT_RUNBOOK_BASE "https://github.com/usher-ops/usher/blob/main/runbooks/"
#define OUT_MAX              (64 * 1024 * 1024)

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usher diag [--config FILE] [options] [NAME...]\n"
		"\n"
		"Runs every configured probe (or only the named ones) once, now, all at the\n"
		"same time and each within its timeout, plus deeper checks of PostgreSQL\n"
		"(connections, lock chains, long and idle-in-transaction sessions,\n"
		"replication, cache, top statements, vacuum, indexes, sequences, wraparound)\n"
		"and Redis (memory, eviction, fragmentation, hit ratio, clients, slow log,\n"
		"persistence, replication, big keys), and reads HTTP timings and TLS expiry,\n"
		"Memcached and host figures from the probes. Each finding has a hint and a\n"
		"runbook link. A named probe also prints the trace of its run.\n"
		"\n"
		"  -c, --config FILE       configuration (default: $USHER_CONFIG, else\n"
		"                          %s)\n"
		"      --json              print JSON (schema: docs/diag.md) instead of a table\n"
		"  -v, --verbose           print every probe's trace, not only the named ones'\n"
		"      --timeout DURATION  bound of each deep check (default: the probe's\n"
		"                          timeout, at least 5s)\n"
		"      --runbook-base URL  where runbooks live: {alert} is replaced by the alert\n"
		"                          name, else <alert>.md is appended (default:\n"
		"                          $USHER_RUNBOOK_BASE_URL, else\n"
		"                          %s)\n"
		"      --color WHEN        auto (default: a terminal without NO_COLOR), always,\n"
		"                          never\n"
		"      --threshold NAME=VALUE\n"
		"                          change one threshold for this run, e.g.\n"
		"                          pg_idle_tx_warn_s=30s, redis_mem_warn=85%%\n"
		"                          (names and defaults: docs/diag.md); repeatable\n"
		"  -h, --help              print this help\n"
		"\n"
		"exit status: 0 healthy, 1 degraded (a warning), 2 failed (a probe down or a\n"
		"critical finding), also for an invalid configuration or usage\n",
		DEFAULT_CONFIG, DEFAULT_RUNBOOK_BASE);
}

int usher_cmd_diag(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"timeout", required_argument, NULL, 't'},
	    {"runbook-base", required_argument, NULL, 'r'},
	    {"color", required_argument, NULL, 'C'},
	    {"threshold", required_argument, NULL, 'T'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = getenv("USHER_CONFIG");
	const char *color = "auto";
	struct usher_diag_opts opts;
	struct usher_diag_render how;
	struct usher_diags diags;
	struct usher_config *cfg = NULL;
	struct usher_diag_report *reps = NULL;
	struct usher_error err;
	struct usher_buf out;
	size_t n = 0;
	bool json = false;
	int opt, status = USHER_EXIT_INVALID;

	memset(&opts, 0, sizeof(opts));
	memset(&how, 0, sizeof(how));
	usher_diag_thresholds_default(&opts.th);
	how.runbook_base = getenv("USHER_RUNBOOK_BASE_URL");
	if (!how.runbook_base || !*how.runbook_base)
		how.runbook_base = DEFAULT_RUNBOOK_BASE;
	if (!config || !*config)
		config = DEFAULT_CONFIG;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'j': json = true; break;
		case 'v': opts.trace_all = true; break;
		case 't':
			if (usher_duration_parse(optarg, &opts.deep_timeout_ms) ||
			    opts.deep_timeout_ms <= 0) {
				fprintf(stderr,
					"usher diag: --timeout %s: not a duration (5s, 1m30s)\n",
					optarg);
				return USHER_EXIT_INVALID;
			}
			break;
		case 'r': how.runbook_base = optarg; break;
		case 'C':
			if (strcmp(optarg, "auto") && strcmp(optarg, "always") &&
			    strcmp(optarg, "never")) {
				fprintf(stderr, "usher diag: --color %s: auto, always or never\n",
					optarg);
				return USHER_EXIT_INVALID;
			}
			color = optarg;
			break;
		case 'T':
			usher_error_clear(&err);
			if (usher_diag_threshold_set(&opts.th, optarg, &err)) {
				fprintf(stderr, "usher diag: --threshold: %s\n", err.msg);
				return USHER_EXIT_INVALID;
			}
			break;
		case 'h': usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
	}
	opts.names = (const char *const *)argv + optind;
	opts.nnames = (size_t)(argc - optind);

	setlocale(LC_CTYPE, "");
	how.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	if (strcmp(color, "always") == 0)
		how.color = true;
	else if (strcmp(color, "auto") == 0)
		how.color = isatty(STDOUT_FILENO) && !(getenv("NO_COLOR") && *getenv("NO_COLOR"));

	usher_diags_init(&diags);
	if (usher_config_load(config, &cfg, &diags)) {
		usher_diags_print(&diags, stderr);
		usher_diags_free(&diags);
		return USHER_EXIT_INVALID;
	}
	usher_diags_free(&diags);
	usher_error_clear(&err);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (usher_diag_run(cfg, &opts, &reps, &n, &err)) {
		fprintf(stderr, "usher diag: %s\n", usher_error_msg(&err, USHER_ERR_INVALID));
		goto out;
	}
	usher_buf_init(&out, OUT_MAX);
	if (json)
		usher_diag_render_json(reps, n, &how, usher_now_ms(), &out);
	else
		usher_diag_render_text(reps, n, &how, &out);
	if (fwrite(out.data ? out.data : "", 1, out.len, stdout) != out.len || fflush(stdout)) {
		perror("usher diag: writing the report");
		usher_buf_free(&out);
		goto out;
	}
	usher_buf_free(&out);
	switch (usher_diag_overall(reps, n)) {
	case USHER_DIAG_OK: status = USHER_EXIT_OK; break;
	case USHER_DIAG_WARN: status = USHER_EXIT_FAILURE; break;
	case USHER_DIAG_FAIL: status = USHER_EXIT_INVALID; break;
	}
out:
	usher_diag_reports_free(reps, n);
	usher_config_free(cfg);
	curl_global_cleanup();
	return status;
}
