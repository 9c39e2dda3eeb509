/* The usher CLI: one function per subcommand, and the exit codes they share. */
#ifndef USHER_CLI_H
#define USHER_CLI_H

/* Exit codes of every subcommand (documented in usher(1) and --help). */
enum usher_exit {
	USHER_EXIT_OK = 0,
	USHER_EXIT_FAILURE = 1, /* the job failed (or, for diag: degraded) */
	USHER_EXIT_INVALID = 2, /* invalid configuration or usage */
	USHER_EXIT_BUSY = 3,    /* backup: another run of the target holds the lock */
};

int usher_cmd_check_config(int argc, char **argv);
/* usher test promql FILE... (a sub-command of `usher test`). */
int usher_cmd_test_promql(int argc, char **argv);
/* usher test rules FILE...: promtool's rule unit tests. */
int usher_cmd_test_rules(int argc, char **argv);
/* usher check rules FILE...: promtool's rule file checks. */
int usher_cmd_check_rules(int argc, char **argv);
/* usher diag [--config FILE] [NAME...] [--json]: exits 0 healthy, 1
 * degraded, 2 failed (cli/diag.c). */
int usher_cmd_diag(int argc, char **argv);
/* usher incident list|show|ack|note|resolve|report (cli/incident.c). */
int usher_cmd_incident(int argc, char **argv);

/* usher backup postgres|redis|list|verify|expire (cli/backup.c). */
int usher_cmd_backup(int argc, char **argv);
/* usher restore ID (cli/restore.c). */
int usher_cmd_restore(int argc, char **argv);
/* usher dr drill (cli/dr.c). */
int usher_cmd_dr(int argc, char **argv);

/* usher alerts [MATCHER...]: the alerts usherd holds (cli/alerts.c). */
int usher_cmd_alerts(int argc, char **argv);
/* usher silence add|list|expire (cli/silence.c). */
int usher_cmd_silence(int argc, char **argv);

#endif
