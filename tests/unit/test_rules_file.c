/* Unit tests of rule file loading: what a valid file turns into (groups,
 * intervals, limit, query_offset, group labels merged under rule labels,
 * templates compiled), and every check with its exact file:line:col
 * message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "rules/rulefile.h"

static struct usher_rulefile *load_ok(const char *text)
{
	struct usher_rulefile *f;
	struct usher_diags d;
	char first[512];

	usher_diags_init(&d);
	if (usher_rulefile_parse("r.yml", text, strlen(text), &f, &d))
		fail_msg("unexpected error: %s", usher_diags_first(&d, first, sizeof(first)));
	usher_diags_free(&d);
	return f;
}

static void test_valid(void **state)
{
	static const char text[] =
	    "groups:\n"
	    "  - name: api\n"
	    "    interval: 30s\n"
	    "    query_offset: 1m\n"
	    "    limit: 10\n"
	    "    labels: {team: booking, tier: front}\n"
	    "    rules:\n"
	    "      - record: job:up:sum\n"
	    "        expr: sum by (job) (up)\n"
	    "        labels: {tier: back}\n"
	    "      - alert: Down\n"
	    "        expr: up == 0\n"
	    "        for: 5m\n"
	    "        keep_firing_for: 90s\n"
	    "        labels: {severity: '{{ if gt $value 0.0 }}x{{ end }}'}\n"
	    "        annotations:\n"
	    "          summary: '{{ $labels.instance }} down'\n"
	    "          runbook: https://runbooks/Down\n"
	    "  - name: other\n"
	    "    rules: []\n";
	struct usher_rulefile *f = load_ok(text);
	const struct usher_rule_group *g;
	const struct usher_rule *r;

	(void)state;
	assert_int_equal(f->ngroups, 2);
	assert_int_equal(usher_rulefile_count_rules(f), 2);
	g = &f->groups[0];
	assert_string_equal(g->name, "api");
	assert_int_equal(g->interval_ms, 30000);
	assert_true(g->has_query_offset);
	assert_int_equal(g->query_offset_ms, 60000);
	assert_int_equal(g->limit, 10);
	assert_int_equal(g->nlabels, 2);
	assert_int_equal(g->line, 2);
	assert_int_equal(g->col, 5);
	r = &g->rules[0];
	assert_int_equal(r->type, USHER_RULE_RECORDING);
	assert_string_equal(r->name, "job:up:sum");
	assert_non_null(r->expr);
	/* the group's labels under the rule's own, sorted */
	assert_int_equal(r->nlabels, 2);
	assert_string_equal(r->labels[0].name, "team");
	assert_string_equal(r->labels[0].value, "booking");
	assert_true(r->labels[0].from_group);
	assert_string_equal(r->labels[1].name, "tier");
	assert_string_equal(r->labels[1].value, "back");
	assert_false(r->labels[1].from_group);
	assert_null(r->labels[1].tmpl); /* recording rules are not templated */
	r = &g->rules[1];
	assert_int_equal(r->type, USHER_RULE_ALERTING);
	assert_int_equal(r->for_ms, 300000);
	assert_int_equal(r->keep_firing_for_ms, 90000);
	assert_int_equal(r->nlabels, 3);
	assert_string_equal(r->labels[0].name, "severity");
	assert_non_null(r->labels[0].tmpl);
	assert_int_equal(r->nannotations, 2);
	assert_string_equal(r->annotations[0].name, "runbook");
	assert_true(usher_template_is_literal(r->annotations[0].tmpl));
	assert_false(usher_template_is_literal(r->annotations[1].tmpl));
	assert_int_equal(f->groups[1].nrules, 0);
	assert_int_equal(f->groups[1].interval_ms, 0);
	assert_false(f->groups[1].has_query_offset);
	usher_rulefile_free(f);

	/* empty and null documents hold no groups */
	f = load_ok("");
	assert_int_equal(f->ngroups, 0);
	usher_rulefile_free(f);
	f = load_ok("groups:\n");
	assert_int_equal(f->ngroups, 0);
	usher_rulefile_free(f);
}

static void test_errors(void **state)
{
	static const struct {
		const char *text;
		const char *want[4];
	} cases[] = {
	    {"groups:\n- name: g\n  rules:\n  - record: a\n    expr: sum(rate(x[5m])\n",
	     {"r.yml:5:11: group \"g\", rule 1, \"a\": could not parse expression: 1:16: parse "
	      "error: unexpected end of input in aggregation, expected \",\" or \")\""}},
	    {"groups:\n- name: g\n  rules:\n  - record: a\n    expr: rate(x)\n",
	     {"r.yml:5:11: group \"g\", rule 1, \"a\": could not parse expression: 1:6: parse "
	      "error: expected type range vector in call to function \"rate\", got instant "
	      "vector"}},
	    {"groups:\n- name: g\n  rules:\n  - record: a b\n    expr: up\n",
	     {"r.yml:4:13: group \"g\", rule 1, \"a b\": invalid recording rule name: a b"}},
	    {"groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    for: 5m\n",
	     {"r.yml:6:5: group \"g\", rule 1, \"a\": invalid field 'for' in recording rule"}},
	    {"groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    keep_firing_for: 1m\n",
	     {"r.yml:6:5: group \"g\", rule 1, \"a\": invalid field 'keep_firing_for' in recording "
	      "rule"}},
	    {"groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    annotations: {x: y}\n",
	     {"r.yml:6:5: group \"g\", rule 1, \"a\": invalid field 'annotations' in recording "
	      "rule"}},
	    {"groups:\n- name: g\n  rules:\n  - record: a\n    alert: A\n    expr: up\n",
	     {"r.yml:5:12: group \"g\", rule 1, \"A\": only one of 'record' and 'alert' must be "
	      "set"}},
	    {"groups:\n- name: g\n  rules:\n  - expr: up\n",
	     {"r.yml:4:5: group \"g\", rule 1, \"\": one of 'record' or 'alert' must be set"}},
	    {"groups:\n- name: g\n  rules:\n  - alert: A\n",
	     {"r.yml:4:5: group \"g\", rule 1, \"A\": field 'expr' must be set in rule"}},
	    {"groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels:\n      "
	     "bad-name: x\n      __name__: y\n",
	     {"r.yml:7:7: group \"g\", rule 1, \"A\": invalid label name: bad-name",
	      "r.yml:8:7: group \"g\", rule 1, \"A\": invalid label name: __name__"}},
	    {"groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      "
	     "\"a b\": x\n",
	     {"r.yml:7:7: group \"g\", rule 1, \"A\": invalid annotation name: a b"}},
	    {"groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      "
	     "s: \"{{ nosuch }}\"\n",
	     {"r.yml:7:10: group \"g\", rule 1, \"A\": annotation \"s\": template: __alert_A:1: "
	      "function \"nosuch\" not defined"}},
	    {"groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels:\n      "
	     "s: \"{{ .x\"\n",
	     {"r.yml:7:10: group \"g\", rule 1, \"A\": label \"s\": template: __alert_A:1: "
	      "unclosed action"}},
	    {"groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n",
	     {"r.yml:4:3: groupname: \"g\" is repeated in the same file (first at line 2)"}},
	    {"groups:\n- name: \"\"\n  rules: []\n", {"r.yml:2:3: group name must not be empty"}},
	    {"groups:\n- name: g\n  interval: 5x\n",
	     {"r.yml:3:13: interval: not a valid duration string: \"5x\""}},
	    {"groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 10\n",
	     {"r.yml:6:10: for: not a valid duration string: \"10\""}},
	    {"groups:\n- name: g\n  limit: many\n",
	     {"r.yml:3:10: limit: cannot read \"many\" as an integer"}},
	    {"groups:\n- name: g\n  labels: {\"a-b\": x}\n",
	     {"r.yml:3:12: group \"g\": invalid label name: a-b"}},
	    {"groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    bogus: 1\n",
	     {"r.yml:6:5: unknown key \"bogus\" in rule"}},
	    {"groups:\n- name: g\n  bogus: 1\n", {"r.yml:3:3: unknown key \"bogus\" in group"}},
	    {"rules: []\n", {"r.yml:1:1: unknown key \"rules\" in rule file"}},
	    {"- a\n", {"r.yml:1:1: a rule file must be a mapping with \"groups\", not a sequence"}},
	    {"groups: {a: 1}\n", {"r.yml:1:9: groups must be a sequence, not a mapping"}},
	    {"groups:\n- 1\n", {"r.yml:2:3: a group must be a mapping, not a scalar"}},
	    {"groups:\n- name: g\n  rules:\n  - record: a\n    expr: [up]\n",
	     {"r.yml:5:11: expr must be a string, not a sequence"}},
	    {"groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    expr: b\n",
	     {"r.yml:6:5: duplicate key \"expr\" (first at line 5)"}},
	    {"groups:\n- name: g\n  rules:\n  - record: a\n   expr: b\n",
	     {"r.yml:5:4: yaml: did not find expected key while parsing a block mapping"}},
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_rulefile *f = (struct usher_rulefile *)1;
		struct usher_diags d;

		usher_diags_init(&d);
		assert_int_equal(
		    usher_rulefile_parse("r.yml", cases[i].text, strlen(cases[i].text), &f, &d),
		    USHER_ERR_INVALID);
		assert_null(f);
		for (j = 0; j < 4 && cases[i].want[j]; j++) {
			char got[1024];

			if (j >= d.n)
				fail_msg("case %zu: missing %s", i, cases[i].want[j]);
			snprintf(got, sizeof(got), "%s:%d:%d: %s", d.v[j].file, d.v[j].line,
				 d.v[j].col, d.v[j].msg);
			if (strcmp(got, cases[i].want[j]) != 0)
				fail_msg("case %zu:\n got  %s\n want %s", i, got, cases[i].want[j]);
		}
		if (d.n != j)
			fail_msg("case %zu: %zu diagnostics, want %zu", i, d.n, j);
		usher_diags_free(&d);
	}
}

static void test_duplicates(void **state)
{
	static const char text[] = "groups:\n"
				   "- name: a\n"
				   "  labels: {g: 1}\n"
				   "  rules:\n"
				   "  - {record: x, expr: up, labels: {k: v}}\n"
				   "  - {record: x, expr: up, labels: {k: w}}\n"
				   "- name: b\n"
				   "  rules:\n"
				   "  - {record: x, expr: up * 2, labels: {k: v}}\n"
				   "  - {record: x, expr: up * 3, labels: {k: v}}\n"
				   "  - {alert: A, expr: up}\n";
	struct usher_rulefile *f = load_ok(text);
	struct usher_arena *a = usher_arena_new();
	struct usher_rule_dup *dups;

	(void)state;
	/* group labels do not count: x{k=v} three times is one finding */
	assert_int_equal(usher_rulefile_duplicates(f, a, &dups), 1);
	assert_string_equal(dups[0].name, "x");
	usher_arena_free(a);
	usher_rulefile_free(f);
}

static void test_load_io(void **state)
{
	struct usher_rulefile *f;
	struct usher_diags d;
	char path[512];

	(void)state;
	usher_diags_init(&d);
	assert_int_equal(usher_rulefile_load("/nonexistent/r.yml", &f, &d), USHER_ERR_IO);
	assert_null(f);
	assert_int_equal(d.n, 1);
	usher_diags_free(&d);
	usher_diags_init(&d);
	snprintf(path, sizeof(path), "%s/tests/rules/check/good_full.yml", USHER_SOURCE_DIR);
	assert_int_equal(usher_rulefile_load(path, &f, &d), USHER_OK);
	assert_int_equal(usher_rulefile_count_rules(f), 3);
	usher_rulefile_free(f);
	usher_diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_load_io),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
