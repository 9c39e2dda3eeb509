/* The usher CLI: one function per subcommand, and the exit codes they share. */
#ifndef USHER_CLI_H
#define USHER_CLI_H

/* Exit codes of every subcommand (documented in usher(1) and --help). */
enum usher_exit {
	USHER_EXIT_OK = 0,
	USHER_EXIT_FAILURE = 1, /* the job failed (or, for diag: degraded) */
	USHER_EXIT_INVALID = 2, /* invalid configuration or usage */
};

int usher_cmd_check_config(int argc, char **argv);
/* usher test promql FILE... (a sub-command of `usher test`). */
int usher_cmd_test_promql(int argc, char **argv);
/* usher test rules FILE...: promtool's rule unit tests. */
int usher_cmd_test_rules(int argc, char **argv);
/* usher check rules FILE...: promtool's rule file checks. */
int usher_cmd_check_rules(int argc, char **argv);

#endif
