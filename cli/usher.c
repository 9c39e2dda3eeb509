/* usher: the SRE's command line. Dispatches to one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "usher_version.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

/* `usher test KIND FILE...`: one entry per kind of test file. */
static const struct command test_commands[] = {
	{"promql", usher_cmd_test_promql, "run PromQL test files (Prometheus' format)"},
	{"rules", usher_cmd_test_rules, "run rule unit test files (promtool's format)"},
};

/* `usher check KIND FILE...`: one entry per kind of file to validate. */
static const struct command check_commands[] = {
	{"config", usher_cmd_check_config, "validate a configuration file (= check-config)"},
	{"rules", usher_cmd_check_rules, "check Prometheus rule files (as promtool does)"},
};

/* Runs the sub-command argv[1] of group from table, or prints its usage. */
static int dispatch(const char *group, const struct command *table, size_t n, int argc,
		    char **argv)
{
	int help = argc >= 2 && strcmp(argv[1], "--help") == 0;
	FILE *out = help ? stdout : stderr;
	size_t i;

	if (argc >= 2)
		for (i = 0; i < n; i++)
			if (strcmp(argv[1], table[i].name) == 0)
				return table[i].fn(argc - 1, argv + 1);
	fprintf(out, "usage: usher %s KIND [options] FILE...\n\nkinds:\n", group);
	for (i = 0; i < n; i++)
		fprintf(out, "  %-14s %s\n", table[i].name, table[i].summary);
	return help ? USHER_EXIT_OK : USHER_EXIT_INVALID;
}

static int cmd_test(int argc, char **argv)
{
	return dispatch("test", test_commands, sizeof(test_commands) / sizeof(test_commands[0]),
			argc, argv);
}

static int cmd_check(int argc, char **argv)
{
	return dispatch("check", check_commands,
			sizeof(check_commands) / sizeof(check_commands[0]), argc, argv);
}

static const struct command commands[] = {
	{"alerts", usher_cmd_alerts, "list the alerts usherd holds (amtool alert query)"},
	{"silence", usher_cmd_silence, "add, list, expire silences: usher silence add|list|expire"},
	{"backup", usher_cmd_backup, "encrypted backups: postgres, redis, list, verify, expire"},
	{"check", cmd_check, "validate files: usher check rules|config FILE..."},
	{"check-config", usher_cmd_check_config, "validate a configuration file"},
	{"diag", usher_cmd_diag, "run every probe now: what is wrong, where to look"},
	{"dr", usher_cmd_dr, "disaster recovery: usher dr drill restores the newest backup"},
	{"incident", usher_cmd_incident, "incidents: list, show, ack, note, resolve, report"},
	{"restore", usher_cmd_restore, "restore a backup into a database or a file"},
	{"test", cmd_test, "run test files: usher test promql|rules FILE..."},
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: usher COMMAND [options]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun 'usher COMMAND --help' for a command's options.\n"
		     "\nexit status: 0 success, 1 failure, 2 invalid configuration or usage,\n"
		     "3 backup: another backup of the target is running\n");
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return USHER_EXIT_OK;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("usher %s (%s)\n", USHER_VERSION, USHER_REVISION);
		return USHER_EXIT_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "usher: unknown command \"%s\"\n\n", argv[1]);
	usage(stderr);
	return USHER_EXIT_INVALID;
}
