/* usher check rules: checks Prometheus rule files as `promtool check rules`
 * does, with the same verdicts, output layout and exit status. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config/diag.h"
#include "core/arena.h"
#include "rules/rulefile.h"

/* promtool's exit status for a lint problem with --lint-fatal */
#define EXIT_LINT 3

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usher check rules [--lint=duplicate-rules|none] [--lint-fatal] FILE...\n"
		"\n"
		"Checks Prometheus rule files as `promtool check rules` does: the YAML\n"
		"layout, group names, record/alert names, label and annotation names, the\n"
		"PromQL of every expr and the Go templates of alert labels and annotations.\n"
		"Each problem is printed as file:line:col: message.\n"
		"\n"
		"  --lint=duplicate-rules  report rules with the same name and labels (the\n"
		"                          default); --lint=none turns it off\n"
		"  --lint-fatal            make a lint finding fail the check (exit 3)\n"
		"\n"
		"exit status: 0 all files valid, 1 a file is invalid or unreadable,\n"
		"2 invalid usage, 3 a lint finding with --lint-fatal\n");
}

/* Prints promtool's duplicate-rules report; returns whether there was one. */
static int lint(const struct usher_rulefile *f)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_rule_dup *dups;
	size_t n = usher_rulefile_duplicates(f, a, &dups), i, j;

	if (n) {
		fprintf(stderr, "  FAILED:\nlint error %zu duplicate rule(s) found.\n", n);
		for (i = 0; i < n; i++) {
			const struct usher_rule *r = dups[i].rule;

			fprintf(stderr, "Metric: %s\nLabel(s):\n", dups[i].name);
			for (j = 0; j < r->nlabels; j++)
				if (!r->labels[j].from_group)
					fprintf(stderr, "\t%s: %s\n", r->labels[j].name,
						r->labels[j].value);
		}
		fprintf(stderr, "Might cause inconsistency while recording expressions\n");
	}
	usher_arena_free(a);
	return n > 0;
}

int usher_cmd_check_rules(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"lint", required_argument, NULL, 'l'},
	    {"lint-fatal", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt, i, status = USHER_EXIT_OK, dup_lint = 1, lint_fatal = 0, lint_found = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (strcmp(optarg, "none") == 0)
				dup_lint = 0;
			else if (strcmp(optarg, "duplicate-rules") == 0 ||
				 strcmp(optarg, "all") == 0)
				dup_lint = 1;
			else {
				fprintf(stderr, "usher: unknown lint \"%s\"\n", optarg);
				return USHER_EXIT_INVALID;
			}
			break;
		case 'f': lint_fatal = 1; break;
		case 'h': usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	for (i = optind; i < argc; i++) {
		struct usher_rulefile *f;
		struct usher_diags d;

		printf("Checking %s\n", argv[i]);
		fflush(stdout);
		usher_diags_init(&d);
		if (usher_rulefile_load(argv[i], &f, &d)) {
			fprintf(stderr, "  FAILED:\n");
			usher_diags_print(&d, stderr);
			status = USHER_EXIT_FAILURE;
		} else if (dup_lint && lint(f)) {
			lint_found = 1;
		} else {
			printf("  SUCCESS: %zu rules found\n", usher_rulefile_count_rules(f));
		}
		fflush(stderr);
		printf("\n");
		fflush(stdout);
		usher_rulefile_free(f);
		usher_diags_free(&d);
	}
	if (status == USHER_EXIT_OK && lint_found && lint_fatal)
		status = EXIT_LINT;
	return status;
}
