/* Unit tests of `alerting.templates:` at config load: the files (globs
 * relative to the config file's directory) are read and bound to every
 * receiver entry, their defines replace the defaults, and a field calling
 * a define that exists nowhere, or a broken template file, fails the load
 * with file:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/diag.h"
#include "notify/alertingconf.h"
#include "notify/notifytmpl.h"

static char dir[256];

static void write_file(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void remove_file(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/usher-alerting-tmpl-XXXXXX");
	assert_non_null(mkdtemp(dir));
	{
		char p[512];

		snprintf(p, sizeof(p), "%s/tmpl", dir);
		assert_int_equal(mkdir(p, 0700), 0);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	remove_file("tmpl/team.tmpl");
	remove_file("tmpl/zz-broken.tmpl");
	remove_file("usher.yml");
	{
		char p[512];

		snprintf(p, sizeof(p), "%s/tmpl", dir);
		rmdir(p);
	}
	rmdir(dir);
	return 0;
}

#define CONFIG_HEAD                                                                                \
	"alerting:\n"                                                                              \
	"  templates: [tmpl/*.tmpl]\n"                                                             \
	"  route: {receiver: team}\n"                                                              \
	"  receivers:\n"                                                                           \
	"    - name: team\n"                                                                       \
	"      slack_configs:\n"                                                                   \
	"        - api_url: http://127.0.0.1:9/slack/team\n"

/* Loads the config file text from dir (so relative globs resolve there);
 * returns the config or NULL with the first diagnostic in msg. */
static struct usher_config *load(const char *text, char *msg, size_t len)
{
	struct usher_config *cfg = NULL;
	struct usher_diags d;
	char path[512];

	write_file("usher.yml", text);
	snprintf(path, sizeof(path), "%s/usher.yml", dir);
	usher_diags_init(&d);
	msg[0] = '\0';
	if (usher_config_load(path, &cfg, &d) != USHER_OK && d.n)
		snprintf(msg, len, "%s:%d:%d: %s", d.v[0].file, d.v[0].line, d.v[0].col,
			 d.v[0].msg);
	usher_diags_free(&d);
	return cfg;
}

static char *title_of(const struct usher_config *cfg)
{
	const struct usher_integration_conf *ic =
	    usher_alerting_integration(cfg->alerting, "team", "slack", 0);
	const struct usher_notify_common *c;
	json_t *data = usher_notifytmpl_sample_data();
	struct usher_error err = {{0}};
	char *s = NULL;
	int i;

	assert_non_null(ic);
	c = ic->opts;
	for (i = 0; i < c->nfields; i++)
		if (strcmp(c->fields[i]->key, "title") == 0)
			s = usher_notifytmpl_str(c->fields[i], data, &err);
	json_decref(data);
	assert_non_null(s);
	return s;
}

static void test_user_define_is_used(void **state)
{
	struct usher_config *cfg;
	char msg[1024];
	char *s;

	(void)state;
	write_file("tmpl/team.tmpl",
		   "{{ define \"team.title\" }}Booking: {{ .CommonLabels.alertname }}{{ end }}\n");
	cfg = load(CONFIG_HEAD "          title: '{{ template \"team.title\" . }}'\n", msg,
		   sizeof(msg));
	assert_non_null(cfg);
	s = title_of(cfg);
	assert_string_equal(s, "Booking: SeatHoldsHigh");
	free(s);
	usher_config_free(cfg);
}

static void test_user_define_overrides_default(void **state)
{
	struct usher_config *cfg;
	char msg[1024];
	char *s;

	(void)state;
	/* slack.default.title calls __subject: redefining it changes the default title */
	write_file("tmpl/team.tmpl", "{{ define \"__subject\" }}SUBJ {{ .Status }}{{ end }}\n");
	cfg = load(CONFIG_HEAD, msg, sizeof(msg));
	assert_non_null(cfg);
	s = title_of(cfg);
	assert_string_equal(s, "SUBJ firing");
	free(s);
	usher_config_free(cfg);
}

static void test_missing_define_fails_with_position(void **state)
{
	struct usher_config *cfg;
	char msg[1024], want[512];

	(void)state;
	write_file("tmpl/team.tmpl", "{{ define \"team.title\" }}x{{ end }}\n");
	cfg =
	    load(CONFIG_HEAD "          title: '{{ template \"missing\" . }}'\n", msg, sizeof(msg));
	assert_null(cfg);
	snprintf(want, sizeof(want), "%s/usher.yml:8:18: receiver \"team\": slack_configs[0].title",
		 dir);
	if (strncmp(msg, want, strlen(want)) != 0)
		fail_msg("got: %s\nwant prefix: %s", msg, want);
	assert_non_null(strstr(msg, "\"missing\""));
}

static void test_broken_file_fails_naming_it(void **state)
{
	struct usher_config *cfg;
	char msg[1024];

	(void)state;
	write_file("tmpl/team.tmpl", "{{ define \"team.title\" }}x{{ end }}\n");
	write_file("tmpl/zz-broken.tmpl", "{{ define \"y\" }}{{ .A \n");
	cfg = load(CONFIG_HEAD, msg, sizeof(msg));
	remove_file("tmpl/zz-broken.tmpl");
	assert_null(cfg);
	assert_non_null(strstr(msg, "/usher.yml:2:14: "));
	assert_non_null(strstr(msg, "zz-broken.tmpl"));
}

static void test_no_match_is_not_an_error(void **state)
{
	struct usher_config *cfg;
	char msg[1024];
	char *s;

	(void)state;
	remove_file("tmpl/team.tmpl");
	cfg = load(CONFIG_HEAD, msg, sizeof(msg));
	assert_non_null(cfg);
	s = title_of(cfg);
	assert_non_null(strstr(s, "[FIRING:1]"));
	free(s);
	usher_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_user_define_is_used),
	    cmocka_unit_test(test_user_define_overrides_default),
	    cmocka_unit_test(test_missing_define_fails_with_position),
	    cmocka_unit_test(test_broken_file_fails_naming_it),
	    cmocka_unit_test(test_no_match_is_not_an_error),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
