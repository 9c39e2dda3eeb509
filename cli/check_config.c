/* usher check-config: validates usher.yml and reports every problem as
 * file:line:col: message. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config/config.h"
#include "logship/sink.h"
#include "probes/probe.h"
#include "rules/rulefile.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: usher check-config [--reference] FILE...\n"
		     "\n"
		     "Checks each configuration file, and the rule files it names\n"
		     "(rule_files), and prints every problem as file:line:col: message.\n"
		     "\n"
		     "  --reference   print every configuration key with its type, default\n"
		     "                and meaning, and exit\n"
		     "\n"
		     "exit status: 0 all files valid, 2 a file is invalid or unreadable\n");
}

static void reference(void)
{
	const struct usher_probe_type *const *t;
	const struct usher_log_sink_type *const *st;

	printf("usher.yml keys:\n");
	usher_opts_describe(stdout, usher_config_options, 1);
	for (t = usher_probe_types; *t; t++) {
		printf("\nprobes of type %s (%s), besides name, type, interval, timeout, labels:\n",
		       (*t)->name, (*t)->help ? (*t)->help : "");
		usher_opts_describe(stdout, (*t)->options, 1);
	}
	for (st = usher_log_sink_types; *st; st++) {
		printf("\nlogging.sinks of type %s (%s), besides type, name:\n", (*st)->name,
		       (*st)->help ? (*st)->help : "");
		if ((*st)->options)
			usher_opts_describe(stdout, (*st)->options, 1);
	}
}

int usher_cmd_check_config(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"reference", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt, i, status = USHER_EXIT_OK;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'r': reference(); return USHER_EXIT_OK;
		case 'h': usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	for (i = optind; i < argc; i++) {
		struct usher_diags diags;
		struct usher_config *cfg;

		usher_diags_init(&diags);
		if (usher_config_load(argv[i], &cfg, &diags)) {
			usher_diags_print(&diags, stderr);
			status = USHER_EXIT_INVALID;
		} else {
			struct usher_rulefile **files;
			size_t nfiles = 0, k, rules = 0;
			char dir[4096];

			usher_config_dir(cfg, dir, sizeof(dir));
			if (usher_rulefiles_load_globs(cfg->path, dir, cfg->rule_files.v,
						       cfg->rule_files.n, &files, &nfiles,
						       &diags) != USHER_OK) {
				usher_diags_print(&diags, stderr);
				status = USHER_EXIT_INVALID;
			} else {
				for (k = 0; k < nfiles; k++) {
					rules += usher_rulefile_count_rules(files[k]);
					usher_rulefile_free(files[k]);
				}
				free(files);
				printf("%s: valid: %zu probe%s, %zu rule file%s with %zu rule%s\n",
				       argv[i], cfg->nprobes, cfg->nprobes == 1 ? "" : "s", nfiles,
				       nfiles == 1 ? "" : "s", rules, rules == 1 ? "" : "s");
			}
			usher_config_free(cfg);
		}
		usher_diags_free(&diags);
	}
	return status;
}
