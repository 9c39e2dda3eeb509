/* Matchers as Alertmanager parses and prints them (pkg/labels), with
 * fully anchored regexes; routes, group keys and time intervals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "notify/alertingconf.h"
#include "notify/matchers.h"
#include "notify/route.h"
#include "notify/timeinterval.h"

/* input -> Matchers.String() of what it parses to, or NULL: an error. */
static const struct {
	const char *in, *want;
} parse_cases[] = {
    {"{foo=\"bar\"}", "{foo=\"bar\"}"},
    {"foo=bar", "{foo=\"bar\"}"},
    {"foo=\"bar\"", "{foo=\"bar\"}"},
    {"foo = bar ", "{foo=\"bar\"}"},
    {"{foo=~\"bar.*\", baz!=\"qux\"}", "{foo=~\"bar.*\",baz!=\"qux\"}"},
    {"foo!~\"a|b\"", "{foo!~\"a|b\"}"},
    {"foo=\"with, comma\"", "{foo=\"with, comma\"}"},
    {"foo=\"quo\\\"te\"", "{foo=\"quo\\\"te\"}"},
    {"foo=\"new\\nline\"", "{foo=\"new\\nline\"}"},
    {"foo=", "{foo=\"\"}"},
    {"foo=\"\"", "{foo=\"\"}"},
    {"{\"service name\"=\"checkout\"}", "{service name=\"checkout\"}"},
    {"foo=\"unterminated", NULL},
    {"foo=bar\"baz", NULL},
    {"=bar", NULL},
    {"foo", NULL},
    {"foo==bar", "{foo=\"=bar\"}"},
    {"foo=~\"(\"", NULL},
    {"a=b,,c=d", NULL},
    {"", NULL},
    {"9foo=bar", NULL},
};

static void test_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		struct usher_am_matchers ms = {0};
		struct usher_error err = {0};
		enum usher_err rc = usher_am_matchers_parse(&ms, parse_cases[i].in, &err);

		if (!parse_cases[i].want) {
			if (rc == USHER_OK)
				fprintf(stderr, "case %zu (%s) parsed\n", i, parse_cases[i].in);
			assert_int_not_equal(rc, USHER_OK);
			assert_true(err.msg[0] != '\0');
			assert_int_equal(ms.n, 0);
		} else {
			char *s;

			if (rc)
				fprintf(stderr, "case %zu (%s): %s\n", i, parse_cases[i].in,
					err.msg);
			assert_int_equal(rc, USHER_OK);
			s = usher_am_matchers_string(&ms);
			assert_string_equal(s, parse_cases[i].want);
			free(s);
		}
		usher_am_matchers_free(&ms);
	}
}

static void test_match(void **state)
{
	static const struct {
		const char *m, *value; /* value NULL: label absent */
		bool want;
	} cases[] = {
	    {"a=b", "b", true},
	    {"a=b", "bb", false},
	    {"a=b", NULL, false},
	    {"a=\"\"", NULL, true},
	    {"a!=b", NULL, true},
	    {"a!=b", "b", false},
	    {"a=~b.*", "bcd", true},
	    {"a=~b", "ab", false},
	    {"a=~b", "b\n", false},
	    {"a=~\"b|c\"", "c", true},
	    {"a!~\"b|c\"", "c", false},
	    {"a!~\"b|c\"", NULL, true},
	    {"a=~\"\"", NULL, true},
	    {"a=~\".+\"", NULL, false},
	    /* catastrophic backtracking is cut off, as no match */
	    {"a=~\"(x+x+)+y\"", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", false},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_am_matchers ms = {0};
		struct usher_am_labels l = {0};

		assert_int_equal(usher_am_matchers_parse(&ms, cases[i].m, NULL), USHER_OK);
		if (cases[i].value)
			usher_am_labels_set(&l, "a", cases[i].value);
		if (usher_am_matchers_match(&ms, &l) != cases[i].want)
			fprintf(stderr, "case %zu: %s on %s\n", i, cases[i].m,
				cases[i].value ? cases[i].value : "(absent)");
		assert_true(usher_am_matchers_match(&ms, &l) == cases[i].want);
		usher_am_matchers_free(&ms);
		usher_am_labels_free(&l);
	}
}

static struct usher_config *load(const char *text, char *first, size_t len)
{
	struct usher_diags diags;
	struct usher_config *cfg = NULL;

	usher_diags_init(&diags);
	if (usher_config_load_text("t.yml", text, strlen(text), &cfg, &diags))
		usher_diags_first(&diags, first, len);
	usher_diags_free(&diags);
	return cfg;
}

static const char routes_yml[] =
    "alerting:\n"
    "  route:\n"
    "    receiver: default\n"
    "    group_by: [alertname]\n"
    "    group_wait: 10s\n"
    "    routes:\n"
    "      - matchers: ['team=\"db\"', 'severity=~\"page|critical\"']\n"
    "        receiver: db-pager\n"
    "        continue: true\n"
    "        group_by: ['...']\n"
    "      - match: {team: db}\n"
    "        receiver: db-ticket\n"
    "        repeat_interval: 1h\n"
    "        incident: false\n"
    "        routes:\n"
    "          - match_re: {service: 'pay.*'}\n"
    "            receiver: payments\n"
    "  receivers:\n"
    "    - name: default\n"
    "    - name: db-pager\n"
    "    - name: db-ticket\n"
    "    - name: payments\n";

static void test_routes(void **state)
{
	char first[512] = "";
	struct usher_config *cfg = load(routes_yml, first, sizeof(first));
	const struct usher_route *out[8];
	struct usher_am_labels l = {0}, g = {0};
	char *key;
	size_t n;

	(void)state;
	if (!cfg)
		fprintf(stderr, "%s\n", first);
	assert_non_null(cfg);
	usher_am_labels_set(&l, "alertname", "DbDown");
	usher_am_labels_set(&l, "team", "db");
	usher_am_labels_set(&l, "severity", "page");
	usher_am_labels_set(&l, "service", "payments");
	n = usher_route_match(cfg->alerting->route, &l, out, 8);
	assert_int_equal(n, 2);
	assert_string_equal(out[0]->receiver, "db-pager");
	assert_string_equal(out[1]->receiver, "payments");
	/* inherited from db-ticket, not from the root */
	assert_int_equal(out[1]->repeat_interval_ms, 3600000);
	assert_int_equal(out[1]->group_wait_ms, 10000);
	assert_int_equal(out[1]->incident, 0);
	assert_int_equal(out[0]->incident, -1);
	usher_route_group_labels(out[0], &l, &g);
	key = usher_route_group_key(out[0], &g);
	assert_string_equal(key,
			    "{}/{severity=~\"page|critical\",team=\"db\"}:{alertname=\"DbDown\", "
			    "service=\"payments\", severity=\"page\", team=\"db\"}");
	free(key);
	usher_route_group_labels(out[1], &l, &g);
	key = usher_route_group_key(out[1], &g);
	assert_string_equal(key, "{}/{team=\"db\"}/{service=~\"pay.*\"}:{alertname=\"DbDown\"}");
	free(key);
	usher_am_labels_free(&g);
	/* no child matches: the root */
	usher_am_labels_set(&l, "team", "web");
	n = usher_route_match(cfg->alerting->route, &l, out, 8);
	assert_int_equal(n, 1);
	assert_string_equal(out[0]->receiver, "default");
	usher_am_labels_free(&l);
	{
		/* alertmanager.yml text for amtool: tree and names, no integrations */
		char *text = usher_alerting_conf_text(cfg->alerting);
		json_t *j = json_loads(text, 0, NULL);

		assert_non_null(j);
		assert_string_equal(
		    json_string_value(json_object_get(
			json_array_get(json_object_get(json_object_get(j, "route"), "routes"), 0),
			"receiver")),
		    "db-pager");
		assert_non_null(strstr(text, "\"severity=~\\\"page|critical\\\"\""));
		assert_non_null(strstr(text, "\"repeat_interval\": \"1h\""));
		json_decref(j);
		free(text);
	}
	usher_config_free(cfg);
}

static void test_config_errors(void **state)
{
	static const struct {
		const char *yml, *want;
	} cases[] = {
	    {"alerting:\n  route: {receiver: nope}\n  receivers: [{name: a}]\n",
	     "t.yml:2:10: undefined receiver \"nope\""},
	    {"alerting:\n  receivers: [{name: a}]\n", "route"},
	    {"alerting:\n  route: {receiver: a, matchers: ['x=y']}\n  receivers: [{name: a}]\n",
	     "root route must not have any matchers"},
	    {"alerting:\n  route:\n    receiver: a\n    routes: [{matchers: ['x=~\"(\"']}]\n"
	     "  receivers: [{name: a}]\n",
	     "t.yml:4:26: invalid regular expression"},
	    {"alerting:\n  route: {receiver: a, group_by: ['...', x]}\n  receivers: [{name: a}]\n",
	     "wildcard"},
	    {"alerting:\n  route: {receiver: a, groop_by: [x]}\n  receivers: [{name: a}]\n",
	     "unknown route key \"groop_by\""},
	    {"alerting:\n  route: {receiver: a}\n  receivers: [{name: a}, {name: a}]\n",
	     "defined twice"},
	    {"alerting:\n  route: {receiver: a}\n  receivers: [{name: a, carrier_pigeon_configs: "
	     "[]}]\n",
	     "unknown receiver key \"carrier_pigeon_configs\""},
	    {"alerting:\n  route: {receiver: a, routes: [{mute_time_intervals: [night]}]}\n"
	     "  receivers: [{name: a}]\n",
	     "undefined time interval \"night\""},
	    {"alerting:\n  route: {receiver: a}\n  receivers: [{name: a}]\n"
	     "  time_intervals: [{name: n, time_intervals: [{weekdays: [funday]}]}]\n",
	     "invalid weekday range"},
	    {"alerting:\n  route: {receiver: a, group_interval: 0s}\n  receivers: [{name: a}]\n",
	     "group_interval cannot be zero"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char first[512] = "";
		struct usher_config *cfg = load(cases[i].yml, first, sizeof(first));

		if (cfg || !strstr(first, cases[i].want))
			fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, first,
				cases[i].want);
		assert_null(cfg);
		assert_non_null(strstr(first, cases[i].want));
	}
}

static void test_time_intervals(void **state)
{
	static const char yml[] =
	    "alerting:\n"
	    "  route: {receiver: a, routes: [{receiver: a, mute_time_intervals: [w, m]}]}\n"
	    "  receivers: [{name: a}]\n"
	    "  time_intervals:\n"
	    "    - name: w\n"
	    "      time_intervals:\n"
	    "        - weekdays: [saturday, sunday]\n"
	    "        - times: [{start_time: '22:00', end_time: '24:00'}]\n"
	    "          weekdays: [monday:friday]\n"
	    "  mute_time_intervals:\n"
	    "    - name: m\n"
	    "      time_intervals:\n"
	    "        - days_of_month: ['-1']\n"
	    "          months: [december]\n"
	    "          years: ['2026:2027']\n";
	char first[512] = "";
	struct usher_config *cfg = load(yml, first, sizeof(first));
	const struct usher_time_interval *w, *m;
	int64_t t;

	(void)state;
	if (!cfg)
		fprintf(stderr, "%s\n", first);
	assert_non_null(cfg);
	w = usher_alerting_time_interval(cfg->alerting, "w");
	m = usher_alerting_time_interval(cfg->alerting, "m");
	assert_non_null(w);
	assert_non_null(m);
	usher_time_parse_rfc3339("2026-11-28T12:00:00Z", &t); /* a Saturday */
	assert_true(usher_time_interval_contains(w, t));
	usher_time_parse_rfc3339("2026-11-27T12:00:00Z", &t); /* Friday noon */
	assert_false(usher_time_interval_contains(w, t));
	usher_time_parse_rfc3339("2026-11-27T22:30:00Z", &t); /* Friday night */
	assert_true(usher_time_interval_contains(w, t));
	usher_time_parse_rfc3339("2026-12-31T10:00:00Z", &t);
	assert_true(usher_time_interval_contains(m, t));
	usher_time_parse_rfc3339("2026-12-30T10:00:00Z", &t);
	assert_false(usher_time_interval_contains(m, t));
	usher_time_parse_rfc3339("2028-12-31T10:00:00Z", &t);
	assert_false(usher_time_interval_contains(m, t));
	usher_config_free(cfg);
}

static void test_time_zones(void **state)
{
	static const char yml[] = "alerting:\n"
				  "  route: {receiver: a}\n"
				  "  receivers: [{name: a}]\n"
				  "  time_intervals:\n"
				  "    - name: late-berlin\n"
				  "      time_intervals:\n"
				  "        - times: [{start_time: '23:00', end_time: '24:00'}]\n"
				  "          weekdays: [friday]\n"
				  "          location: Europe/Berlin\n";
	char first[512] = "";
	struct usher_config *cfg = load(yml, first, sizeof(first));
	const struct usher_time_interval *ti;
	int64_t t;

	(void)state;
	if (!cfg)
		fprintf(stderr, "%s\n", first);
	assert_non_null(cfg);
	ti = usher_alerting_time_interval(cfg->alerting, "late-berlin");
	usher_time_parse_rfc3339("2026-11-27T22:30:00Z", &t); /* 23:30 CET, Friday */
	assert_true(usher_time_interval_contains(ti, t));
	usher_time_parse_rfc3339("2026-11-27T23:30:00Z", &t); /* 00:30 Saturday in Berlin */
	assert_false(usher_time_interval_contains(ti, t));
	usher_time_parse_rfc3339("2026-07-03T21:30:00Z", &t); /* 23:30 CEST, Friday */
	assert_true(usher_time_interval_contains(ti, t));
	usher_time_parse_rfc3339("2026-07-03T22:30:00Z", &t);
	assert_false(usher_time_interval_contains(ti, t));
	usher_config_free(cfg);
	{
		static const char *const bad[] = {"Mars/Olympus_Mons", "../../../etc/passwd"};
		size_t i;

		for (i = 0; i < 2; i++) {
			char text[512];

			snprintf(
			    text, sizeof(text),
			    "alerting:\n  route: {receiver: a}\n  receivers: [{name: a}]\n"
			    "  time_intervals: [{name: x, time_intervals: [{location: '%s'}]}]\n",
			    bad[i]);
			first[0] = '\0';
			assert_null(load(text, first, sizeof(first)));
			assert_non_null(strstr(first, "unknown time zone"));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),          cmocka_unit_test(test_match),
	    cmocka_unit_test(test_routes),         cmocka_unit_test(test_config_errors),
	    cmocka_unit_test(test_time_intervals), cmocka_unit_test(test_time_zones),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
