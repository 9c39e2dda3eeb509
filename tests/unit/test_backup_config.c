/* Unit tests of the `backup:` section: defaults, a full section, and the
 * file:line:col errors `usher check-config` shows for bad values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/conf.h"
#include "config/config.h"

/* Loads text; returns every diagnostic, one per line, or "" when valid. */
static const char *load(const char *text, struct usher_config **out)
{
	static char all[8192];
	struct usher_config *cfg = NULL;
	struct usher_diags d;
	size_t i, off = 0;

	usher_diags_init(&d);
	usher_config_load_text("t.yml", text, strlen(text), &cfg, &d);
	all[0] = '\0';
	for (i = 0; i < d.n; i++) {
		struct usher_diags single = {.v = d.v + i, .n = 1};
		char one[2048];

		usher_diags_first(&single, one, sizeof(one));
		off += (size_t)snprintf(all + off, sizeof(all) - off, "%s%s", off ? "\n" : "", one);
	}
	usher_diags_free(&d);
	if (out)
		*out = cfg;
	else
		usher_config_free(cfg);
	return all;
}

#define KEY "5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f"
#define PROBES                                                                                    \
	"probes:\n"                                                                               \
	"  - {name: main-db, type: postgres, dsn: \"postgresql://u@db/booking\"}\n"              \
	"  - {name: api, type: http, url: \"http://127.0.0.1/\"}\n"

static void test_absent(void **state)
{
	struct usher_config *cfg;

	(void)state;
	assert_string_equal(load("state_dir: /tmp\n", &cfg), "");
	assert_false(cfg->backup.present);
	usher_config_free(cfg);
}

static void test_full(void **state)
{
	struct usher_config *cfg;
	const struct usher_backup_conf *b;

	(void)state;
	assert_string_equal(load(PROBES "backup:\n"
					"  repository: /srv/backups\n"
					"  encryption_key: \"" KEY "\"\n"
					"  compression: {level: 6, threads: 4}\n"
					"  retention: {keep_last: 2, keep_daily: 7, keep_weekly: 4, "
					"keep_monthly: 6}\n"
					"  targets: [main-db, \"redis://cache:6379\"]\n"
					"  lock_wait: 5m\n"
					"  drill:\n"
					"    scratch_dsn: \"postgresql://u@scratch/postgres\"\n"
					"    sanity_sql: [\"SELECT 1\"]\n",
				&cfg),
			    "");
	b = &cfg->backup;
	assert_true(b->present);
	assert_string_equal(b->repository, "/srv/backups");
	assert_int_equal(b->compression.level, 6);
	assert_int_equal(b->compression.threads, 4);
	assert_int_equal(b->retention.keep_daily, 7);
	assert_int_equal(b->retention.keep_monthly, 6);
	assert_int_equal(b->targets.n, 2);
	assert_int_equal(b->lock_wait_ms, 300000);
	assert_int_equal(b->drill.sanity_sql.n, 1);
	assert_int_equal(b->drill.jobs, 2);
	usher_config_free(cfg);
	/* defaults inside a present section */
	assert_string_equal(load("backup: {targets: [\"postgresql://u@db/x\"]}\n", &cfg), "");
	assert_string_equal(cfg->backup.repository, USHER_BACKUP_DEFAULT_REPO);
	assert_int_equal(cfg->backup.compression.level, 3);
	assert_int_equal(cfg->backup.compression.threads, 2);
	usher_config_free(cfg);
}

static void test_errors(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {PROBES "backup:\n  targets: [main-db, nope]\n",
	     "t.yml:5:22: backup.targets: \"nope\" is neither a probe name nor a DSN"},
	    {PROBES "backup:\n  targets: [api]\n",
	     "t.yml:5:13: backup.targets: probe \"api\" is of type http"},
	    {"backup:\n  encryption_key: \"abc\"\n",
	     "t.yml:2:19: backup.encryption_key: a backup key is 64 hex characters"},
	    {"backup:\n  compression: {level: 25}\n",
	     "t.yml:2:24: backup.compression.level: 25 is above 19"},
	    {"backup:\n  compression: {level: 0}\n", "t.yml:2:24"},
	    {"backup:\n  retention: {keep_dayly: 3}\n",
	     "t.yml:2:15: unknown key \"keep_dayly\" (did you mean \"keep_daily\"?)"},
	    {"backup:\n  repositry: /x\n", "t.yml:2:3: unknown key \"repositry\""},
	    {"backup: [1]\n", "t.yml:1:9: backup: expected a mapping, got a"},
	    {"backup:\n  lock_wait: soon\n", "t.yml:2:14"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = load(cases[i].text, NULL);

		if (!strstr(got, cases[i].want))
			fail_msg("case %zu: want \"%s\" in:\n%s", i, cases[i].want, got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_absent),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
