/* Unit tests of alert templates: rendering (outputs checked against
 * promtool 2.42 on the same templates and values), Go's formatting rules,
 * and parse errors worded as Go's text/template words them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rules/template.h"

static const struct usher_label sample_labels[] = {
    {"__name__", "v"}, {"instance", "api-1:8080"}, {"job", "api"}};
static const struct usher_label ext_labels[] = {{"site", "eu-1"}};

static const char *render(struct usher_arena *a, const char *text, double value)
{
	struct usher_template_data d;
	struct usher_template *t;
	struct usher_error err;
	const char *out;

	memset(&d, 0, sizeof(d));
	d.labels.n = 3;
	d.labels.v = sample_labels;
	d.external_labels.n = 1;
	d.external_labels.v = ext_labels;
	d.external_url = "https://usher.example.com/prom";
	d.value = value;
	usher_error_clear(&err);
	if (usher_template_parse("__alert_T", text, &t, &err))
		fail_msg("%s: %s", text, err.msg);
	out = usher_template_expand_alert(t, &d, a);
	usher_template_free(t);
	return out;
}

static void test_render(void **state)
{
	static const struct {
		const char *text;
		double value;
		const char *want;
	} cases[] = {
	    /* $value as Go prints a float64 */
	    {"{{ $value }}", 1e6, "1e+06"},
	    {"{{ $value }}", 1234567, "1.234567e+06"},
	    {"{{ $value }}", 123456, "123456"},
	    {"{{ $value }}", 0.0001, "0.0001"},
	    {"{{ $value }}", 1e-5, "1e-05"},
	    {"{{ $value }}", -1.5, "-1.5"},
	    {"{{ .Value }}", NAN, "NaN"},
	    {"{{ $value }}", INFINITY, "+Inf"},
	    {"{{ $value }}", -INFINITY, "-Inf"},
	    /* humanize family (promtool's output for the same values) */
	    {"{{ humanize $value }}", 1e6, "1M"},
	    {"{{ $value | humanize }}", 1234567, "1.235M"},
	    {"{{ humanize $value }}", 1e-5, "10u"},
	    {"{{ humanize $value }}", 0.000123, "123u"},
	    {"{{ humanize $value }}", 86461.25, "86.46k"},
	    {"{{ humanize $value }}", 0, "0"},
	    {"{{ humanize $value }}", -INFINITY, "-Inf"},
	    {"{{ humanize \"1234\" }}", 0, "1.234k"},
	    {"{{ humanize1024 $value }}", 1e6, "976.6ki"},
	    {"{{ humanize1024 $value }}", 2048, "2ki"},
	    {"{{ humanize1024 $value }}", 1e-5, "1e-05"},
	    {"{{ humanizeDuration $value }}", 1e6, "11d 13h 46m 40s"},
	    {"{{ humanizeDuration $value }}", 86461.25, "1d 0h 1m 1s"},
	    {"{{ humanizeDuration $value }}", 2048, "34m 8s"},
	    {"{{ humanizeDuration $value }}", -1.5, "-1.5s"},
	    {"{{ humanizeDuration $value }}", 0, "0s"},
	    {"{{ humanizeDuration $value }}", 1e-5, "10us"},
	    {"{{ humanizeDuration $value }}", 0.000123, "123us"},
	    {"{{ humanizeDuration $value }}", NAN, "NaN"},
	    {"{{ humanizePercentage $value }}", 0.0512, "5.12%"},
	    {"{{ humanizePercentage $value }}", 1e6, "1e+08%"},
	    {"{{ humanizeTimestamp $value }}", 1e6, "1970-01-12 13:46:40 +0000 UTC"},
	    {"{{ humanizeTimestamp $value }}", -1.5, "1969-12-31 23:59:58.5 +0000 UTC"},
	    {"{{ humanizeTimestamp $value }}", 86461.25, "1970-01-02 00:01:01.25 +0000 UTC"},
	    {"{{ humanizeTimestamp 1700000000 }}", 0, "2023-11-14 22:13:20 +0000 UTC"},
	    /* printf */
	    {"{{ printf \"%.2f|%d|%s|%v|%5.1f|%x|%q|%e|%g\" $value 3 \"s\" $value $value 255 "
	     "\"q\" $value $value }}",
	     1e6, "1000000.00|3|s|1e+06|1000000.0|ff|\"q\"|1.000000e+06|1e+06"},
	    {"{{ printf \"%.2f|%5.1f|%e\" $value $value $value }}", NAN, "NaN|  NaN|NaN"},
	    {"{{ printf \"%d\" $value }}", 1.5, "%!d(float64=1.5)"},
	    {"{{ printf \"%s %s\" \"a\" }}", 0, "a %!s(MISSING)"},
	    {"{{ printf \"%s\" \"a\" 1 }}", 0, "a%!(EXTRA int=1)"},
	    {"{{ printf \"%-4s|%04d|%+d|%5.1f%%\" \"ab\" 7 7 $value }}", 12.34,
	     "ab  |0007|+7| 12.3%"},
	    /* labels, data, external labels and URL */
	    {"[{{ $labels.missing }}][{{ .Labels.job }}][{{ $labels.__name__ }}]", 0, "[][api][v]"},
	    {"{{ $externalLabels.site }} {{ $externalURL }} {{ .ExternalLabels.site }}", 0,
	     "eu-1 https://usher.example.com/prom eu-1"},
	    {"{{ $labels }}", 0, "map[__name__:v instance:api-1:8080 job:api]"},
	    {"{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}", 0,
	     "__name__=v;instance=api-1:8080;job=api;"},
	    {"{{ range $labels }}{{ . }},{{ end }}", 0, "v,api-1:8080,api,"},
	    {"{{ range $k, $v := $labels }}{{ if eq $k \"job\" }}{{ break }}{{ end }}{{ $k }} "
	     "{{ end }}",
	     0, "__name__ instance "},
	    {"{{ len $labels }} {{ index $labels \"job\" }} {{ len \"abc\" }}", 0, "3 api 3"},
	    /* control flow, comparisons (gt is !le: NaN > 80 is true in Go) */
	    {"{{ if gt $value 80.0 }}big{{ else if gt $value 1.0 }}mid{{ else }}small{{ end }}", 90,
	     "big"},
	    {"{{ if gt $value 80.0 }}big{{ else if gt $value 1.0 }}mid{{ else }}small{{ end }}", 5,
	     "mid"},
	    {"{{ if gt $value 80.0 }}big{{ else }}small{{ end }}", NAN, "big"},
	    {"{{ if and (eq .Labels.job \"api\") (ne $labels.job \"db\") }}y{{ else }}n{{ end }}",
	     0, "y"},
	    {"{{ or \"\" \"b\" }} {{ and 1 0 }} {{ not true }} {{ eq 1 2 1 }}", 0,
	     "b 0 false true"},
	    {"{{ with $labels.nope }}x{{ else }}none{{ end }}", 0, "none"},
	    {"{{ with $labels.job }}{{ . | toUpper }}{{ end }}", 0, "API"},
	    {"{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", 0, "2"},
	    {"{{ define \"t\" }}<{{ . }}>{{ end }}{{ template \"t\" $labels.job }}", 0, "<api>"},
	    {"{{ block \"b\" $value }}[{{ . }}]{{ end }}", 2, "[2]"},
	    /* whitespace trimming and comments */
	    {"a  {{- /* c */ -}}  b {{- $value -}} \n c", 3, "ab3c"},
	    /* string functions */
	    {"{{ title \"hello world-x\" }} {{ toUpper \"ab\" }} {{ toLower \"AB\" }}", 0,
	     "Hello World-X AB ab"},
	    {"{{ reReplaceAll \"(a+)\" \"<$1>\" \"xaay\" }}", 0, "x<aa>y"},
	    {"{{ reReplaceAll \"(.*):[0-9]+\" \"$1\" $labels.instance }}", 0, "api-1"},
	    {"{{ reReplaceAll \"x*\" \"-\" \"abc\" }}", 0, "-a-b-c-"},
	    {"{{ match \"^api\" $labels.job }} {{ stripPort $labels.instance }}", 0, "true api-1"},
	    {"{{ stripDomain \"db-1.example.com:5432\" }}", 0, "db-1:5432"},
	    {"{{ graphLink \"rate(x[5m])\" }}", 0, "/graph?g0.expr=rate%28x%5B5m%5D%29&g0.tab=0"},
	    {"{{ pathPrefix }} {{ externalURL }}", 0, "/prom https://usher.example.com/prom"},
	    {"{{ parseDuration \"1m30s\" }}", 0, "90"},
	    {"{{ 1.5 }} {{ 2 }} {{ true }} {{ 0x1F }} {{ 'a' }} {{ `raw` }}", 0,
	     "1.5 2 true 31 97 raw"},
	    {"{{ print 1 2 \"a\" 3 }}|{{ println \"x\" }}", 0, "1 2a3|x\n"},
	    {"{{ html \"<a&b>\" }} {{ urlquery \"a b&c\" }} {{ js \"'x'\" }}", 0,
	     "&lt;a&amp;b&gt; a+b%26c \\'x\\'"},
	    /* execution errors become Prometheus' annotation text */
	    {"{{ gt $value 80 }}", 1,
	     "<error expanding template: error executing template __alert_T: template: "
	     "__alert_T:1:115: executing \"__alert_T\" at <gt $value 80>: error calling gt: "
	     "incompatible types for comparison>"},
	    {"{{ humanizeTimestamp $value }}", 1e21,
	     "<error expanding template: error executing template __alert_T: template: "
	     "__alert_T:1:115: executing \"__alert_T\" at <humanizeTimestamp $value>: error "
	     "calling humanizeTimestamp: 1e+21 cannot be represented as a nanoseconds timestamp "
	     "since it overflows int64>"},
	    {"x\n{{ .Nope }}", 0,
	     "<error expanding template: error executing template __alert_T: template: "
	     "__alert_T:2:3: executing \"__alert_T\" at <.Nope>: can't evaluate field Nope in "
	     "type template.tmplData>"},
	    {"{{ query \"up\" }}", 0,
	     "<error expanding template: error executing template __alert_T: template: "
	     "__alert_T:1:115: executing \"__alert_T\" at <query \"up\">: error calling query: "
	     "no query engine>"},
	    {"plain text, no action", 0, "plain text, no action"},
	    {"split {{/* by a comment */}}text", 0, "split text"},
	    {"", 0, ""},
	};
	struct usher_arena *a = usher_arena_new();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = render(a, cases[i].text, cases[i].value);

		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu %s:\n got  %s\n want %s", i, cases[i].text, got,
				 cases[i].want);
	}
	usher_arena_free(a);
}

/* The query function a template can call: a fixed two-sample result. */
static enum usher_err fake_query(void *ctx, const char *q, int64_t t, struct usher_arena *a,
				 struct usher_template_sample **out, size_t *n,
				 struct usher_error *err)
{
	static const struct usher_label l1[] = {{"instance", "b"}};
	static const struct usher_label l2[] = {{"instance", "a"}};
	struct usher_template_sample *s = usher_arena_alloc(a, 2 * sizeof(*s));

	(void)ctx;
	(void)t;
	if (strcmp(q, "bad") == 0)
		return usher_fail(err, USHER_ERR_INVALID, "boom");
	s[0].labels.n = 1;
	s[0].labels.v = l1;
	s[0].value = 2;
	s[1].labels.n = 1;
	s[1].labels.v = l2;
	s[1].value = 1;
	*out = s;
	*n = 2;
	return USHER_OK;
}

static void test_query(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"{{ query \"up\" | first | value }}", "2"},
	    {"{{ with query \"up\" }}{{ . | first | label \"instance\" }}{{ end }}", "b"},
	    {"{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value "
	     "}} {{ end }}",
	     "a=1 b=2 "},
	    {"{{ len (query \"up\") }}", "2"},
	    {"{{ (query \"up\" | first).Labels.instance }}", "b"},
	};
	struct usher_arena *a = usher_arena_new();
	struct usher_template_data d;
	size_t i;

	(void)state;
	memset(&d, 0, sizeof(d));
	d.query = fake_query;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_template *t;
		struct usher_error err;
		const char *got;

		usher_error_clear(&err);
		assert_int_equal(usher_template_parse("q", cases[i].text, &t, &err), USHER_OK);
		got = usher_template_expand_alert(t, &d, a);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("%s: got %s want %s", cases[i].text, got, cases[i].want);
		usher_template_free(t);
	}
	usher_arena_free(a);
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
	    {"{{ .Foo", "template: __alert_A:1: unclosed action"},
	    {"{{ nosuch }}", "template: __alert_A:1: function \"nosuch\" not defined"},
	    {"{{ $x }}", "template: __alert_A:1: undefined variable \"$x\""},
	    {"{{ end }}", "template: __alert_A:1: unexpected {{end}}"},
	    {"{{ else }}", "template: __alert_A:1: unexpected {{else}}"},
	    {"{{ break }}", "template: __alert_A:1: {{break}} outside {{range}}"},
	    {"{{ continue }}", "template: __alert_A:1: {{continue}} outside {{range}}"},
	    {"{{ if 1 }}", "template: __alert_A:1: unexpected EOF"},
	    {"{{ }}", "template: __alert_A:1: missing value for command"},
	    {"{{ if }}{{ end }}", "template: __alert_A:1: missing value for if"},
	    {"{{ 1 | 2 }}", "template: __alert_A:1: non executable command in pipeline stage 2"},
	    {"{{ \"abc }}", "template: __alert_A:1: unterminated quoted string"},
	    {"{{ - 3 }}", "template: __alert_A:1: illegal number syntax: \"-\""},
	    {"{{ 08 }}", "template: __alert_A:1: integer overflow: \"08\""},
	    {"{{/* x }}", "template: __alert_A:1: unclosed comment"},
	    {"a\nb\n{{ $y }}", "template: __alert_A:3: undefined variable \"$y\""},
	    {"{{ if 1 }}{{ $y := 2 }}{{ end }}{{ $y }}",
	     "template: __alert_A:1: undefined variable \"$y\""},
	    {"{{ with 1 }}{{ else if 2 }}{{ end }}",
	     "template: __alert_A:1: unexpected <if> in input"},
	    {"{{ ) }}", "template: __alert_A:1: unexpected right paren"},
	    {"{{ (1 }}", "template: __alert_A:1: unclosed left paren"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_template *t = (struct usher_template *)1;
		struct usher_error err;

		usher_error_clear(&err);
		assert_int_equal(usher_template_parse("__alert_A", cases[i].text, &t, &err),
				 USHER_ERR_INVALID);
		assert_null(t);
		if (strcmp(err.msg, cases[i].msg) != 0)
			fail_msg("%s:\n got  %s\n want %s", cases[i].text, err.msg, cases[i].msg);
	}
}

static void test_format_float(void **state)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
	    {0, "0"},           {1, "1"},
	    {0.1, "0.1"},       {100000, "100000"},
	    {1e6, "1e+06"},     {123456.7, "123456.7"},
	    {1e-4, "0.0001"},   {1.5e-5, "1.5e-05"},
	    {1e21, "1e+21"},    {-2.5e300, "-2.5e+300"},
	    {5e-324, "5e-324"},
	};
	char buf[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		usher_template_format_float(cases[i].v, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render),
	    cmocka_unit_test(test_query),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_format_float),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
