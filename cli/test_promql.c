/* usher test promql: runs PromQL test files in Prometheus' promqltest
 * format and ends with "N passed, M failed". */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "promql/promqltest.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usher test promql [-v] [--known-failures FILE] FILE...\n"
		"\n"
		"Runs PromQL test files in Prometheus' format (load, clear, eval instant,\n"
		"eval range, expect fail|ordered|string|range vector, eval_fail,\n"
		"eval_ordered) and ends with the line \"N passed, M failed\".\n"
		"\n"
		"  -v, --verbose           name each failing eval with file:line, expected\n"
		"                          and got\n"
		"  --known-failures FILE   evals listed there (\"file.test:line reason\")\n"
		"                          must fail; one that passes is reported as a\n"
		"                          failure so the list shrinks\n"
		"\n"
		"exit status: 0 no failures, 1 a failure, 2 invalid usage or unreadable file\n");
}

int usher_cmd_test_promql(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"verbose", no_argument, NULL, 'v'},
	    {"known-failures", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct usher_promqltest_known *known = NULL;
	struct usher_promqltest_stats total = {0, 0, 0};
	const char *known_path = NULL;
	int opt, i, status = USHER_EXIT_OK;
	int verbose = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'v': verbose = 1; break;
		case 'k': known_path = optarg; break;
		case 'h': usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	if (known_path) {
		struct usher_error err;

		usher_error_clear(&err);
		if (usher_promqltest_known_load(known_path, &known, &err)) {
			fprintf(stderr, "usher: %s\n", err.msg);
			return USHER_EXIT_INVALID;
		}
	}
	for (i = optind; i < argc; i++) {
		struct usher_promqltest_stats st = {0, 0, 0};
		struct usher_error err;

		usher_error_clear(&err);
		if (usher_promqltest_run_file(argv[i], known, verbose, stdout, &st, &err)) {
			fprintf(stderr, "usher: %s\n", err.msg);
			status = USHER_EXIT_INVALID;
			continue;
		}
		if (verbose || argc - optind > 1)
			printf("%s: %zu passed, %zu failed, %zu known failures\n", argv[i],
			       st.passed, st.failed, st.known_failed);
		total.passed += st.passed;
		total.failed += st.failed;
		total.known_failed += st.known_failed;
	}
	usher_promqltest_known_free(known);
	if (total.known_failed)
		printf("%zu known failures failed as expected\n", total.known_failed);
	printf("%zu passed, %zu failed\n", total.passed, total.failed);
	if (status == USHER_EXIT_OK && total.failed)
		status = USHER_EXIT_FAILURE;
	return status;
}
