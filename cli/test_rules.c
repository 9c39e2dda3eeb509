/* usher test rules: runs rule unit test files in promtool's format and
 * reports as `promtool test rules` does, with the same exit status. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "cli.h"
#include "rules/ruletest.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: usher test rules FILE...\n"
		     "\n"
		     "Runs rule unit test files in promtool's format (rule_files,\n"
		     "evaluation_interval, group_eval_order, tests with input_series,\n"
		     "alert_rule_test and promql_expr_test) and prints SUCCESS or FAILED with\n"
		     "the differences, as `promtool test rules` does. Values compare with\n"
		     "Prometheus' relative tolerance (promtool's fuzzy_compare).\n"
		     "\n"
		     "exit status: 0 every test passed, 1 a test failed, 2 invalid usage\n");
}

int usher_cmd_test_rules(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt, i, status = USHER_EXIT_OK;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h': usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	for (i = optind; i < argc; i++) {
		bool passed = false;

		if (usher_ruletest_run_file(argv[i], stdout, stderr, &passed) || !passed)
			status = USHER_EXIT_FAILURE;
	}
	return status;
}
