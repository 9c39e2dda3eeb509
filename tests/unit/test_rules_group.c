/* Unit tests of rule group evaluation: the alert state machine through
 * time (pending, firing, keep_firing_for, resolved and kept 15 minutes,
 * resends), ALERTS / ALERTS_FOR_STATE, recording rules, limits,
 * query_offset, failures counted per group, and restoring alert state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "promql/engine.h"
#include "rules/group.h"
#include "rules/rulefile.h"
#include "tsdb/tsdb.h"

#define MIN (60 * 1000LL)

struct env {
	struct usher_tsdb *db;
	struct usher_promql_engine *eng;
	struct usher_rulefile *f;
	struct usher_group *g;
	/* what the send callback saw in the last evaluation */
	size_t sent;
	bool sent_resolved;
	int64_t sent_starts, sent_ends;
	char sent_labels[512];
	char sent_url[512];
};

static void on_send(void *ctx, const struct usher_rule_group *group, const struct usher_rule *rule,
		    const struct usher_alert *alerts, size_t n)
{
	struct env *e = ctx;
	struct usher_arena *a = usher_arena_new();

	(void)group;
	(void)rule;
	e->sent += n;
	e->sent_resolved = alerts[0].resolved;
	e->sent_starts = alerts[0].starts_at_ms;
	e->sent_ends = alerts[0].ends_at_ms;
	snprintf(e->sent_labels, sizeof(e->sent_labels), "%s",
		 usher_labels_str(a, &alerts[0].labels));
	snprintf(e->sent_url, sizeof(e->sent_url), "%s", alerts[0].generator_url);
	usher_arena_free(a);
}

static void env_init(struct env *e, const char *rules)
{
	static const struct usher_label ext[] = {{"site", "eu-1"}};
	struct usher_tsdb_options to = {0, 0};
	struct usher_group_options go;
	struct usher_diags d;
	char first[512];

	memset(e, 0, sizeof(*e));
	e->db = usher_tsdb_new(&to);
	e->eng = usher_promql_engine_new(NULL);
	usher_diags_init(&d);
	if (usher_rulefile_parse("r.yml", rules, strlen(rules), &e->f, &d))
		fail_msg("%s", usher_diags_first(&d, first, sizeof(first)));
	usher_diags_free(&d);
	usher_group_options_default(&go);
	go.engine = e->eng;
	go.storage = usher_tsdb_storage(e->db);
	go.db = e->db;
	go.external_labels.n = 1;
	go.external_labels.v = ext;
	go.external_url = "http://usher:9469";
	go.send = on_send;
	go.send_ctx = e;
	e->g = usher_group_new(&e->f->groups[0], &go);
}

static void env_free(struct env *e)
{
	usher_group_free(e->g, -1);
	usher_rulefile_free(e->f);
	usher_promql_engine_free(e->eng);
	usher_tsdb_free(e->db);
}

static void put(struct env *e, const char *name, const char *label, int64_t t, double v)
{
	const char *pairs[] = {"__name__", name, "k", label, NULL};
	struct usher_tsdb_batch *b = usher_tsdb_batch_new(e->db);

	usher_tsdb_batch_addv(b, pairs, t, v);
	assert_int_equal(usher_tsdb_batch_commit(b, t, NULL, NULL), USHER_OK);
	usher_tsdb_batch_free(b, -1);
}

/* The query's single value at t, or NAN when the result is empty. */
static double query1(struct env *e, const char *q, int64_t t, size_t *n)
{
	struct usher_storage st = usher_tsdb_storage(e->db);
	struct usher_promql_result res = {0};
	struct usher_error err;
	double v = -1;

	usher_error_clear(&err);
	if (usher_promql_eval_instant(e->eng, &st, q, t, &res, &err))
		fail_msg("%s: %s", q, err.msg);
	*n = res.n;
	if (res.n)
		v = res.vector[0].v;
	usher_promql_result_free(&res);
	return v;
}

static void test_state_machine(void **state)
{
	/* x > 0 for 2m, keep firing 3m after it stops */
	static const char rules[] = "groups:\n"
				    "- name: g\n"
				    "  rules:\n"
				    "  - alert: A\n"
				    "    expr: x > 0\n"
				    "    for: 2m\n"
				    "    keep_firing_for: 3m\n"
				    "    labels: {severity: page}\n"
				    "    annotations: {v: '{{ $value }}'}\n";
	static const struct {
		int64_t minute;
		double x;
		size_t nalerts; /* alerts the rule tracks (resolved ones included) */
		enum usher_alert_state st;
		size_t sent;
		bool resolved;
	} steps[] = {
	    {0, 1, 1, USHER_ALERT_PENDING, 0, false},
	    {1, 2, 1, USHER_ALERT_PENDING, 0, false},
	    {2, 3, 1, USHER_ALERT_FIRING, 1, false},
	    {3, 0, 1, USHER_ALERT_FIRING, 0, false}, /* keep_firing_for from here */
	    {4, 0, 1, USHER_ALERT_FIRING, 1, false}, /* resent after resend_delay */
	    {5, 0, 1, USHER_ALERT_FIRING, 0, false},
	    {6, 0, 1, USHER_ALERT_INACTIVE, 1, true}, /* 3m of keep_firing_for are over */
	    {7, 0, 1, USHER_ALERT_INACTIVE, 0, false},
	    {8, 0, 1, USHER_ALERT_INACTIVE, 1, true},   /* resolved ones are resent too */
	    {21, 0, 1, USHER_ALERT_INACTIVE, 1, true},  /* 15m after resolving: kept */
	    {22, 0, 0, USHER_ALERT_INACTIVE, 0, false}, /* past the retention: gone */
	    {23, 1, 1, USHER_ALERT_PENDING, 0, false},
	    {24, 0, 0, USHER_ALERT_INACTIVE, 0, false}, /* a pending alert just goes */
	    {25, 1, 1, USHER_ALERT_PENDING, 0, false},
	};
	struct env e;
	size_t i, n;

	(void)state;
	env_init(&e, rules);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		int64_t t = steps[i].minute * MIN;
		struct usher_arena *a = usher_arena_new();
		struct usher_rule_alert *al;
		struct usher_error err;
		size_t nal;

		put(&e, "x", "a", t, steps[i].x);
		e.sent = 0;
		e.sent_resolved = false;
		usher_error_clear(&err);
		assert_int_equal(usher_group_eval(e.g, t, &err), USHER_OK);
		nal = usher_group_alerts(e.g, 0, a, &al);
		if (nal != steps[i].nalerts)
			fail_msg("minute %lld: %zu alerts, want %zu", (long long)steps[i].minute,
				 nal, steps[i].nalerts);
		if (nal && al[0].state != steps[i].st)
			fail_msg("minute %lld: state %s, want %s", (long long)steps[i].minute,
				 usher_alert_state_name(al[0].state),
				 usher_alert_state_name(steps[i].st));
		if (e.sent != steps[i].sent || e.sent_resolved != steps[i].resolved)
			fail_msg("minute %lld: sent %zu (resolved %d), want %zu (%d)",
				 (long long)steps[i].minute, e.sent, e.sent_resolved, steps[i].sent,
				 steps[i].resolved);
		if (steps[i].minute == 2) {
			/* what the notifier gets: labels with the external ones, times */
			assert_string_equal(
			    e.sent_labels,
			    "{alertname=\"A\", k=\"a\", severity=\"page\", site=\"eu-1\"}");
			assert_int_equal(e.sent_starts, 2 * MIN);
			assert_int_equal(e.sent_ends, 2 * MIN + 4 * MIN);
			assert_string_equal(e.sent_url,
					    "http://usher:9469/graph?g0.expr=x+%3E+0&g0.tab=1");
			assert_int_equal(al[0].active_at, 0);
			assert_string_equal(al[0].annotations.v[0].value, "3");
			assert_true(query1(&e, "ALERTS{alertstate=\"firing\"}", t, &n) == 1);
			assert_int_equal(n, 1);
			assert_true(query1(&e, "ALERTS_FOR_STATE", t, &n) == 0);
			assert_true(query1(&e, "ALERTS{alertstate=\"pending\"}", t, &n) == -1);
			assert_int_equal(n, 0); /* marked stale when it started firing */
		}
		if (steps[i].minute == 5) {
			/* keep_firing_for keeps the firing series and the last annotations */
			assert_true(query1(&e, "ALERTS{alertstate=\"firing\"}", t, &n) == 1);
			assert_string_equal(al[0].annotations.v[0].value, "3");
			assert_int_equal(al[0].keep_firing_since, 3 * MIN);
		}
		if (steps[i].minute == 6) {
			assert_int_equal(al[0].resolved_at, 6 * MIN);
			assert_int_equal(e.sent_ends, 6 * MIN);
			query1(&e, "ALERTS", t, &n);
			assert_int_equal(n, 0);
		}
		if (steps[i].minute == 23)
			assert_int_equal(al[0].active_at, 23 * MIN); /* a new alert */
		usher_arena_free(a);
	}
	env_free(&e);
}

static void test_recording_and_failures(void **state)
{
	static const char rules[] = "groups:\n"
				    "- name: g\n"
				    "  limit: 1\n"
				    "  rules:\n"
				    "  - record: x:sum\n"
				    "    expr: sum(x)\n"
				    "    labels: {team: t}\n"
				    "  - record: x:copy\n"
				    "    expr: x\n"
				    "  - alert: Many\n"
				    "    expr: x > 0\n"
				    "  - alert: Dup\n"
				    "    expr: label_replace(x, \"k\", \"same\", \"\", \"\") > 0\n"
				    "  - record: scalar:two\n"
				    "    expr: 1 + 1\n";
	struct usher_group_stats st;
	struct usher_rule_status rs;
	struct usher_arena *a = usher_arena_new();
	struct usher_error err;
	struct env e;
	size_t n;

	(void)state;
	env_init(&e, rules);
	put(&e, "x", "a", 0, 1);
	put(&e, "x", "b", 0, 2);
	usher_error_clear(&err);
	assert_int_equal(usher_group_eval(e.g, 0, &err), USHER_ERR_INVALID);
	assert_string_equal(err.msg, "rule x:copy: exceeded limit of 1 with 2 series");
	/* the first rule worked, and the last one after the failures */
	assert_true(query1(&e, "x:sum{team=\"t\"}", 0, &n) == 3);
	assert_true(query1(&e, "scalar:two", 0, &n) == 2);
	query1(&e, "x:copy", 0, &n);
	assert_int_equal(n, 0);
	usher_group_rule_status(e.g, 2, a, &rs);
	assert_string_equal(rs.health, "err");
	assert_string_equal(rs.last_error, "exceeded limit of 1 with 2 alerts");
	usher_group_rule_status(e.g, 3, a, &rs);
	/* the engine refuses the duplicate first; either way the rule fails */
	assert_string_equal(rs.health, "err");
	usher_group_rule_status(e.g, 0, a, &rs);
	assert_string_equal(rs.health, "ok");
	assert_string_equal(rs.last_error, "");
	usher_group_stats(e.g, &st);
	assert_int_equal(st.evaluations, 1);
	assert_int_equal(st.rule_evaluations, 5);
	assert_int_equal(st.rule_failures, 3);
	assert_int_equal(st.last_eval_ms, 0);
	usher_arena_free(a);
	env_free(&e);
}

static void test_query_offset(void **state)
{
	static const char rules[] = "groups:\n"
				    "- name: g\n"
				    "  query_offset: 1m\n"
				    "  rules:\n"
				    "  - record: x:last\n"
				    "    expr: x\n";
	struct usher_error err;
	struct env e;
	size_t n;

	(void)state;
	env_init(&e, rules);
	put(&e, "x", "a", 0, 5);
	put(&e, "x", "a", MIN, 7);
	usher_error_clear(&err);
	assert_int_equal(usher_group_eval(e.g, MIN, &err), USHER_OK);
	/* evaluated at 1m - 1m, and written there */
	assert_true(query1(&e, "x:last", 0, &n) == 5);
	assert_int_equal(n, 1);
	env_free(&e);
}

static void test_restore(void **state)
{
	static const char rules[] = "groups:\n"
				    "- name: g\n"
				    "  rules:\n"
				    "  - record: r\n"
				    "    expr: x\n"
				    "  - alert: A\n"
				    "    expr: x > 0\n"
				    "    for: 10m\n";
	static const struct usher_label lbl[] = {{"alertname", "A"}, {"k", "a"}};
	struct usher_arena *a = usher_arena_new();
	struct usher_rule_alert al, *got;
	struct usher_error err;
	struct env e;

	(void)state;
	env_init(&e, rules);
	memset(&al, 0, sizeof(al));
	al.labels.n = 2;
	al.labels.v = lbl;
	al.state = USHER_ALERT_PENDING;
	al.active_at = 20 * MIN;
	al.fired_at = al.resolved_at = al.last_sent_at = al.valid_until = USHER_TIME_UNSET;
	al.keep_firing_since = USHER_TIME_UNSET;
	assert_int_equal(usher_group_restore_alert(e.g, 0, &al), USHER_ERR_INVALID);
	assert_int_equal(usher_group_restore_alert(e.g, 1, &al), USHER_OK);
	/* a restart 9 minutes into `for`: one more minute, not ten */
	put(&e, "x", "a", 29 * MIN, 1);
	usher_error_clear(&err);
	assert_int_equal(usher_group_eval(e.g, 29 * MIN, &err), USHER_OK);
	assert_int_equal(usher_group_alerts(e.g, 1, a, &got), 1);
	assert_int_equal(got[0].state, USHER_ALERT_PENDING);
	assert_int_equal(got[0].active_at, 20 * MIN);
	put(&e, "x", "a", 30 * MIN, 1);
	assert_int_equal(usher_group_eval(e.g, 30 * MIN, &err), USHER_OK);
	assert_int_equal(usher_group_alerts(e.g, 1, a, &got), 1);
	assert_int_equal(got[0].state, USHER_ALERT_FIRING);
	assert_int_equal(e.sent, 1);
	usher_arena_free(a);
	env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_state_machine),
	    cmocka_unit_test(test_recording_and_failures),
	    cmocka_unit_test(test_query_offset),
	    cmocka_unit_test(test_restore),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
