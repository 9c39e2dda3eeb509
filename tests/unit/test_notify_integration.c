/* Unit tests of the receiver integrations' pieces: notification templates
 * over Alertmanager's data (the default templates, the data model's
 * methods, Alertmanager's functions, user defines, load-time checks), the
 * option tables' upstream defaults and checks with file:line:col, and the
 * helpers (Retry-After, truncation, sha256, the type list). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/options.h"
#include "config/yaml.h"
#include "core/mem.h"
#include "notify/integrations.h"
#include "notify/notifytmpl.h"
#include "rules/template.h"

/* Expands text as a notification template (defaults as lib) over the
 * sample data; returns a malloc'd result or "ERR: msg". */
static char *expand(const char *text, const json_t *data)
{
	struct usher_template *t = NULL;
	struct usher_template *lib = NULL;
	struct usher_error err = {{0}};
	struct usher_buf b;
	json_t *own = data ? NULL : usher_notifytmpl_sample_data();
	char *res;

	assert_int_equal(
	    usher_template_parse_json("defaults", usher_notifytmpl_defaults, NULL, &lib, &err),
	    USHER_OK);
	if (usher_template_parse_json("t", text, lib, &t, &err) != USHER_OK) {
		usher_template_free(lib);
		json_decref(own);
		res = usher_malloc(strlen(err.msg) + 8);
		snprintf(res, strlen(err.msg) + 8, "ERR: %s", err.msg);
		return res;
	}
	usher_buf_init(&b, 1 << 20);
	if (usher_template_expand_json(t, NULL, data ? data : own, &b, &err) != USHER_OK) {
		usher_buf_reset(&b);
		(void)usher_buf_addf(&b, "ERR: %s", err.msg);
	}
	res = usher_strdup(usher_buf_str(&b));
	usher_buf_free(&b);
	usher_template_free(t);
	usher_template_free(lib);
	json_decref(own);
	return res;
}

static void check_expand(const char *text, const char *want)
{
	char *got = expand(text, NULL);

	if (strcmp(got, want) != 0)
		fail_msg("template %s\n  want: %s\n  got:  %s", text, want, got);
	free(got);
}

static void check_prefix(const char *text, const char *want)
{
	char *got = expand(text, NULL);

	if (strncmp(got, want, strlen(want)) != 0)
		fail_msg("template %s\n  want prefix: %s\n  got:  %s", text, want, got);
	free(got);
}

static void test_data_model(void **state)
{
	(void)state;
	check_expand("{{ .Status }} {{ .Receiver }} {{ .ExternalURL }}",
		     "firing oncall http://usher.example:9469");
	check_expand("{{ .CommonLabels.alertname }}/{{ .CommonLabels.nope }}/", "SeatHoldsHigh//");
	check_expand("{{ len .Alerts }} {{ len .Alerts.Firing }} {{ .Alerts.Resolved | len }}",
		     "2 1 1");
	check_expand("{{ range .Alerts }}{{ .Labels.instance }}={{ .Status }};{{ end }}",
		     "api-1:8080=firing;api-2:8080=resolved;");
	check_expand("{{ range .CommonLabels.SortedPairs }}{{ .Name }}:{{ .Value }} {{ end }}",
		     "alertname:SeatHoldsHigh service:booking severity:page ");
	check_expand("{{ .CommonLabels.Names | join \",\" }}", "alertname,service,severity");
	check_expand("{{ .CommonLabels.SortedPairs.Values | join \" \" }}",
		     "SeatHoldsHigh booking page");
	check_expand("{{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join \" \" }}"
		     "{{ end }}",
		     "booking page");
	check_expand("{{ range $k, $v := .GroupLabels }}{{ $k }}={{ $v }}{{ end }}",
		     "alertname=SeatHoldsHigh");
	check_expand("{{ index .CommonLabels \"service\" }}", "booking");
	check_expand("{{ (index .Alerts 0).Annotations.description }}", "12000 holds");
	check_expand("{{ range .Alerts.Firing }}{{ .StartsAt }}{{ end }}", "2026-01-01T10:00:00Z");
	check_expand("{{ if .CommonAnnotations }}yes{{ end }}", "yes");
	check_prefix("{{ .Nope }}", "ERR: error executing template t: template: t:1:3: executing");
}

static void test_functions(void **state)
{
	(void)state;
	check_expand("{{ .Status | toUpper }} {{ \"A b\" | toLower }} {{ title \"seat holds\" }}",
		     "FIRING a b Seat Holds");
	check_expand("{{ reReplaceAll \"([a-z]+)-([0-9])\" \"$2$1\" \"api-1\" }}", "1api");
	check_expand("{{ \"<b>\" | safeHtml }} {{ trimSpace \"  x \" }}", "<b> x");
	check_expand("{{ stringSlice \"a\" \"b\" | join \"+\" }}", "a+b");
	check_expand("{{ match \"^Seat\" .CommonLabels.alertname }}", "true");
	check_expand("{{ urlUnescape \"a%20b\" }} {{ .Receiver | urlquery }}", "a b oncall");
	check_expand("{{ printf \"%s-%d\" .Status 3 }}", "firing-3");
	/* times: RFC 3339 strings, formatted with Go layouts in UTC */
	check_expand("{{ (index .Alerts 0).StartsAt.Format \"2006-01-02 15:04:05 MST\" }}",
		     "2026-01-01 10:00:00 UTC");
	check_expand("{{ range .Alerts }}{{ date \"Mon Jan _2 3:04PM\" .EndsAt }};{{ end }}",
		     "Mon Jan  1 12:00AM;Thu Jan  1 9:30AM;");
	check_expand(
	    "{{ date \"2006-01-02T15:04:05.000Z07:00\" \"2026-03-04T05:06:07.891+01:00\" }}",
	    "2026-03-04T04:06:07.891Z");
	check_expand("{{ date \"15:04:05.999\" \"2026-03-04T05:06:07.5Z\" }}", "05:06:07.5");
	check_expand("{{ date \"-070000|Z070000|-07:00:00|Z07:00|-07\" \"2026-03-04T05:06:07Z\" }}",
		     "+000000|Z|+00:00:00|Z|+00");
	check_prefix("{{ date \"2006\" \"yesterday\" }}", "ERR: error executing template t");
	check_prefix("{{ tz \"UTC\" .Status }}", "ERR: template: t:1: function \"tz\" not defined");
	/* Prometheus' query functions are not Alertmanager's */
	check_prefix("{{ query \"up\" }}", "ERR: template: t:1: function \"query\" not defined");
	check_prefix("{{ humanize 3 }}", "ERR: template: t:1: function \"humanize\" not defined");
}

static void test_defaults(void **state)
{
	(void)state;
	check_expand("{{ template \"__subject\" . }}", "[FIRING:1] SeatHoldsHigh (booking page)");
	check_expand("{{ template \"slack.default.title\" . }}",
		     "[FIRING:1] SeatHoldsHigh (booking page)");
	check_expand("{{ template \"slack.default.titlelink\" . }}",
		     "http://usher.example:9469/#/alerts?receiver=oncall");
	check_expand("{{ template \"__text_alert_list\" .Alerts.Firing }}",
		     "Labels:\n - alertname = SeatHoldsHigh\n - instance = api-1:8080\n"
		     " - service = booking\n - severity = page\nAnnotations:\n"
		     " - description = 12000 holds\n - summary = seat holds are piling up\n"
		     "Source: http://usher.example:9469/graph\n");
	check_prefix("{{ template \"email.default.html\" . }}", "<!DOCTYPE html>");
	check_prefix("{{ template \"email.default.text\" . }}",
		     "[FIRING:1] SeatHoldsHigh (booking page)\n\nView in usher: ");
	check_prefix("{{ template \"opsgenie.default.description\" . }}",
		     "seat holds are piling up\nAlerts Firing:\nLabels:");
	check_prefix("{{ template \"nope\" . }}", "ERR: error executing template t");
	/* a resolved group's subject */
	{
		json_t *d = usher_notifytmpl_sample_data();
		char *got;

		json_object_set_new(d, "status", json_string("resolved"));
		got = expand("{{ template \"__subject\" . }}", d);
		assert_string_equal(got, "[RESOLVED] SeatHoldsHigh (booking page)");
		free(got);
		json_decref(d);
	}
}

static void test_user_templates(void **state)
{
	char dir[] = "/tmp/usher-tmpl-XXXXXX", path[128], glob[128];
	struct usher_notifytmpl_lib *lib = NULL;
	struct usher_error err = {{0}};
	struct usher_strlist globs;
	const char *gv[2];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/team.tmpl", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	/* overriding a default changes what the defaults built on it give */
	fputs("{{ define \"__alertmanager\" }}Booking on-call{{ end }}"
	      "{{ define \"team.title\" }}[{{ .Status }}] {{ .CommonLabels.service }}{{ end }}",
	      f);
	fclose(f);
	snprintf(glob, sizeof(glob), "%s/*.tmpl", dir);
	gv[0] = glob;
	gv[1] = "/nonexistent-dir/*.tmpl"; /* matching nothing is fine */
	globs.v = gv;
	globs.n = 2;
	assert_int_equal(usher_notifytmpl_lib_new(&globs, NULL, &lib, &err), USHER_OK);

	{
		struct usher_arena *a = usher_arena_new();
		struct usher_diags diags;
		struct usher_cfgctx ctx = {.file = "t.yml", .arena = a, .diags = &diags};
		struct usher_notify_common c;
		struct usher_notifytmpl *fld = NULL, *fld2 = NULL;
		struct usher_integration_conf ic = {.type = &usher_integration_webhook, .opts = &c};
		json_t *d = usher_notifytmpl_sample_data();
		char *s;

		usher_diags_init(&diags);
		memset(&c, 0, sizeof(c));
		assert_int_equal(usher_notifytmpl_field(&ctx, &c, NULL, "title",
							"{{ template \"team.title\" . }}", &fld),
				 USHER_OK);
		assert_int_equal(
		    usher_notifytmpl_field(&ctx, &c, NULL, "username",
					   "{{ template \"slack.default.username\" . }}", &fld2),
		    USHER_OK);
		/* before binding, team.title does not exist */
		assert_int_equal(usher_notifytmpl_bind(&ic, NULL, &err), USHER_ERR_INVALID);
		assert_non_null(strstr(err.msg, "no template \"team.title\""));
		usher_error_clear(&err);
		assert_int_equal(usher_notifytmpl_bind(&ic, lib, &err), USHER_OK);
		s = usher_notifytmpl_str(fld, d, &err);
		assert_string_equal(s, "[firing] booking");
		free(s);
		s = usher_notifytmpl_str(fld2, d, &err);
		assert_string_equal(s, "Booking on-call");
		free(s);
		usher_notifytmpl_common_free(&c);
		json_decref(d);
		usher_diags_free(&diags);
		usher_arena_free(a);
	}
	usher_notifytmpl_lib_free(lib);

	/* a broken file fails the load, naming it */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{{ define \"x\" }}{{ .A ", f);
	fclose(f);
	usher_error_clear(&err);
	assert_int_not_equal(usher_notifytmpl_lib_new(&globs, NULL, &lib, &err), USHER_OK);
	assert_non_null(strstr(err.msg, "team.tmpl"));
	unlink(path);
	rmdir(dir);
}

/* Applies type t's table and check to YAML text; returns the opts (in a)
 * or NULL with the first diagnostic in msg. */
static void *load_entry(const struct usher_integration_type *t, const char *yaml,
			struct usher_arena *a, char *msg, size_t len)
{
	struct usher_diags diags;
	struct usher_cfgctx ctx = {.file = "usher.yml", .arena = a, .diags = &diags};
	struct usher_ynode *root = NULL;
	void *opts = usher_arena_zalloc(a, t->opts_size);
	bool ok;

	usher_diags_init(&diags);
	assert_int_equal(usher_yaml_parse(a, "usher.yml", yaml, strlen(yaml), &root, &diags),
			 USHER_OK);
	ok = usher_opts_apply1(&ctx, t->options, opts, root) == USHER_OK &&
	     (!t->check || t->check(&ctx, opts, root) == USHER_OK);
	usher_diags_first(&diags, msg, len);
	usher_diags_free(&diags);
	if (!ok) {
		if (t->free)
			t->free(opts);
		return NULL;
	}
	return opts;
}

static void test_options(void **state)
{
	static const struct {
		const char *type, *yaml;
		bool send_resolved;
	} ok_cases[] = {
	    {"webhook", "url: http://127.0.0.1:1/hook\n", true},
	    {"slack", "api_url: https://hooks.slack.com/services/T/B/X\n", false},
	    {"pagerduty", "routing_key: 0123456789abcdef0123456789abcdef\n", true},
	    {"opsgenie", "api_key: k\n", true},
	    {"email", "to: a@example.com\nfrom: b@example.com\nsmarthost: mail:587\n", false},
	    {"alertmanager", "urls: [http://127.0.0.1:9093]\n", true},
	    {"slack", "url: http://127.0.0.1:1/\nsend_resolved: true\n", true},
	};
	static const struct {
		const char *type, *yaml, *msg;
	} bad_cases[] = {
	    {"webhook", "max_alerts: 2\n", "usher.yml:1:1: "},
	    {"webhook", "url: ftp://x/\n", "url must be an http"},
	    {"slack", "channel: x\n", "needs api_url"},
	    {"slack", "api_url: http://x/\ntitle: '{{ .Status '\n", "title: template: title:1:"},
	    {"slack", "api_url: http://x/\ntext: '{{ query \"up\" }}'\n",
	     "function \"query\" not defined"},
	    {"pagerduty", "service_key: x\n", "Events API v1"},
	    {"pagerduty", "routing_key: k\ndetails: {a: '{{ end }}'}\n", "usher.yml:2:"},
	    {"email", "to: a@x\nfrom: b@x\nsmarthost: mail\n", "needs a port"},
	    {"alertmanager", "send_resolved: false\n", "needs urls"},
	    {"opsgenie", "api_key: k\nnope: 1\n", "usher.yml:2:1:"},
	    {"opsgenie", "api_key: k\nresponders: [{name: x, type: bogus}]\n",
	     "responder type bogus"},
	    {"webhook",
	     "url: http://x/\nhttp_config: {bearer_token: a, basic_auth: {username: u}}\n",
	     "usher.yml:2:14: http_config: basic_auth, bearer_token and authorization are "
	     "exclusive"},
	    {"webhook", "url: http://x/\nhttp_config: {tls_config: {cert_file: /c}}\n",
	     "needs both cert_file and key_file"},
	};
	size_t i;
	char msg[512];

	(void)state;
	for (i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		struct usher_arena *a = usher_arena_new();
		const struct usher_integration_type *t =
		    usher_integration_type_find(ok_cases[i].type);
		void *o;
		int64_t to = 0, rf = 0;

		assert_non_null(t);
		o = load_entry(t, ok_cases[i].yaml, a, msg, sizeof(msg));
		if (!o)
			fail_msg("%s: %s", ok_cases[i].type, msg);
		assert_int_equal(t->send_resolved(o), ok_cases[i].send_resolved);
		t->limits(o, &to, &rf);
		assert_int_equal(to, 10000);
		assert_int_equal(rf, 3600000);
		if (t->free)
			t->free(o);
		usher_arena_free(a);
	}
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct usher_arena *a = usher_arena_new();
		const struct usher_integration_type *t =
		    usher_integration_type_find(bad_cases[i].type);

		assert_null(load_entry(t, bad_cases[i].yaml, a, msg, sizeof(msg)));
		if (!strstr(msg, bad_cases[i].msg))
			fail_msg("%s %s: want %s, got %s", bad_cases[i].type, bad_cases[i].yaml,
				 bad_cases[i].msg, msg);
		usher_arena_free(a);
	}
	assert_null(usher_integration_type_find("nope"));
	for (i = 0; usher_integration_types[i]; i++)
		assert_ptr_equal(usher_integration_type_find(usher_integration_types[i]->name),
				 usher_integration_types[i]);
	assert_true(i >= 6); /* the ticket types (notify/ticket.h) follow */
	{
		static const char *const mine[] = {"webhook",  "slack", "pagerduty",
						   "opsgenie", "email", "alertmanager"};

		for (i = 0; i < 6; i++)
			assert_string_equal(usher_integration_types[i]->name, mine[i]);
	}
	/* Slack: one queue per webhook URL at one message a second */
	assert_true(usher_integration_slack.rate_per_s == 1.0);
	assert_non_null(usher_integration_slack.queue_key);
}

static void test_secret_files(void **state)
{
	char path[] = "/tmp/usher-notify-secret-XXXXXX", yaml[256], msg[512];
	int fd = mkstemp(path);
	struct usher_arena *a = usher_arena_new();
	const struct usher_integration_type *pd = usher_integration_type_find("pagerduty");
	const struct usher_integration_type *wh = usher_integration_type_find("webhook");
	void *o;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef\n", 33), 33);
	close(fd);
	/* Alertmanager's *_file keys: the content, its newline dropped */
	snprintf(yaml, sizeof(yaml), "routing_key_file: %s\n", path);
	o = load_entry(pd, yaml, a, msg, sizeof(msg));
	if (!o)
		fail_msg("%s", msg);
	/* routing_key follows the common head and http_config in pd_opts */
	assert_string_equal(*(const char **)((char *)o + sizeof(struct usher_notify_common) +
					     sizeof(struct usher_notify_httpconf)),
			    "0123456789abcdef0123456789abcdef");
	snprintf(yaml, sizeof(yaml), "routing_key: x\nrouting_key_file: %s\n", path);
	assert_null(load_entry(pd, yaml, a, msg, sizeof(msg)));
	assert_non_null(
	    strstr(msg, "usher.yml:2:19: routing_key and routing_key_file are exclusive"));
	snprintf(yaml, sizeof(yaml),
		 "url: http://x/\nhttp_config: {basic_auth: {username: u, password_file: %s}}\n",
		 path);
	assert_non_null(load_entry(wh, yaml, a, msg, sizeof(msg)));
	assert_null(load_entry(wh, "url_file: /nonexistent/usher-secret\n", a, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "usher.yml:1:11:"));
	unlink(path);
	usher_arena_free(a);
}

static void test_helpers(void **state)
{
	char hex[65];
	char *s;

	(void)state;
	assert_int_equal(usher_notify_retry_after_ms("30", 0), 30000);
	assert_int_equal(usher_notify_retry_after_ms(" 2\r\n", 0), 2000);
	assert_int_equal(usher_notify_retry_after_ms("", 0), 0);
	assert_int_equal(usher_notify_retry_after_ms("soon", 0), 0);
	/* an HTTP date 90 s after now */
	assert_int_equal(
	    usher_notify_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480000LL - 90000),
	    90000);
	assert_int_equal(
	    usher_notify_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480000LL + 1000),
	    0);
	usher_notify_sha256_hex("abc", hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	s = usher_notify_truncate("hello", 5);
	assert_string_equal(s, "hello");
	free(s);
	s = usher_notify_truncate("hello world", 5);
	assert_string_equal(s, "hell\xe2\x80\xa6");
	free(s);
	s = usher_notify_truncate("h\xc3\xa9llo!", 3); /* counts characters, not bytes */
	assert_string_equal(s, "h\xc3\xa9\xe2\x80\xa6");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_data_model), cmocka_unit_test(test_functions),
	    cmocka_unit_test(test_defaults),   cmocka_unit_test(test_user_templates),
	    cmocka_unit_test(test_options),    cmocka_unit_test(test_secret_files),
	    cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
