/* Unit tests of custom SQL metrics without a server: a query's config, a
 * result (column names and text cells) in, the exposition out. Covers
 * labels, NULLs, non-numeric cells, booleans, counters, max_series,
 * duplicate rows, missing columns, the min_interval cache and the error
 * counters kept across results. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "metrics/registry.h"
#include "probes/pg_queries.h"
#include "probes/postgres.h"

#define MAX_COLS 8
#define MAX_ROWS 8

/* Loads one postgres probe with the query given as YAML lines (indented
 * 6, the first starting with "- name:"). */
static struct usher_config *load_query(const char *query_yaml)
{
	char text[4096];
	struct usher_config *cfg = NULL;
	struct usher_diags d;

	snprintf(text, sizeof(text),
		 "probes:\n  - name: db\n    type: postgres\n    dsn: host=db\n    queries:\n%s",
		 query_yaml);
	usher_diags_init(&d);
	usher_config_load_text("t.yml", text, strlen(text), &cfg, &d);
	if (!cfg) {
		char first[1024];

		fail_msg("config: %s", usher_diags_first(&d, first, sizeof(first)));
	}
	usher_diags_free(&d);
	return cfg;
}

static const struct usher_pgq_conf *query_of(const struct usher_config *cfg)
{
	const struct usher_pg_opts *o = cfg->probes[0].opts;

	assert_int_equal(o->queries.n, 1);
	return o->queries.v;
}

/* Splits s at '|' into at most max fields of buf; "\N" is NULL. */
static size_t split(char *buf, size_t len, const char *s, const char **out, size_t max)
{
	size_t n = 0;
	char *p;

	snprintf(buf, len, "%s", s);
	p = buf;
	while (n < max) {
		char *bar = strchr(p, '|');

		if (bar)
			*bar = '\0';
		out[n++] = strcmp(p, "\\N") == 0 ? NULL : p;
		if (!bar)
			break;
		p = bar + 1;
	}
	return n;
}

/* Feeds one result: columns like "a|b:bool|c" (":bool" marks a boolean
 * column) and rows of cells. Returns whether the result was good. */
static bool feed(struct usher_pgq_state *st, const char *columns, const char *const *rows)
{
	char cbuf[512], rbuf[512];
	const char *names[MAX_COLS], *cells[MAX_COLS];
	bool bools[MAX_COLS] = {false};
	size_t n, i;

	usher_pgq_begin(st, 0);
	n = split(cbuf, sizeof(cbuf), columns, names, MAX_COLS);
	for (i = 0; i < n; i++) {
		char *colon = strstr(names[i], ":bool");

		if (colon) {
			*colon = '\0';
			bools[i] = true;
		}
	}
	if (usher_pgq_columns(st, n, names, bools) == USHER_OK) {
		for (i = 0; rows[i]; i++) {
			size_t got = split(rbuf, sizeof(rbuf), rows[i], cells, MAX_COLS);

			assert_int_equal(got, n);
			if (usher_pgq_row(st, cells) != USHER_OK)
				break;
		}
	}
	return usher_pgq_end(st, 0.25);
}

/* The exposition of st's samples and its non-zero error counters, without
 * HELP/TYPE lines and the duration. */
static char *render(const struct usher_pgq_state *st)
{
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *set = usher_sample_set_new(NULL);
	struct usher_buf b, out;
	const char *line;
	char *text;

	usher_pgq_emit(st, set);
	usher_pgq_emit_stats(st, set);
	usher_registry_publish(r, st, set);
	usher_buf_init(&b, 1 << 20);
	assert_int_equal(usher_registry_render(r, USHER_EXPO_TEXT, &b), USHER_OK);
	usher_buf_init(&out, 1 << 20);
	for (line = usher_buf_str(&b); *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);

		if (line[0] != '#' && strncmp(line, "usher_sql_query_duration_seconds", 32) != 0 &&
		    !(strncmp(line, "usher_sql_query_errors_total", 28) == 0 && len > 2 &&
		      strncmp(line + len - 2, " 0", 2) == 0)) {
			usher_buf_add(&out, line, len);
			usher_buf_addc(&out, '\n');
		}
		line += len + (nl ? 1 : 0);
	}
	text = usher_buf_take(&out);
	usher_buf_free(&b);
	usher_registry_free(r);
	return text;
}

static void test_results(void **state)
{
	static const struct {
		const char *what;
		const char *query; /* YAML */
		const char *columns;
		const char *rows[MAX_ROWS];
		bool ok;
		const char *want;
	} cases[] = {
	    {"labels and a gauge",
	     "      - name: booking_event\n        sql: x\n        labels: [event_id, state]\n"
	     "        values: [{column: seats}]\n",
	     "event_id|state|seats",
	     {"1|sold|12", "1|held|3", "2|sold|0", NULL},
	     true,
	     "booking_event_seats{event_id=\"1\",state=\"sold\"} 12\n"
	     "booking_event_seats{event_id=\"1\",state=\"held\"} 3\n"
	     "booking_event_seats{event_id=\"2\",state=\"sold\"} 0\n"},
	    {"columns in any order, extra columns ignored",
	     "      - name: q\n        sql: x\n        labels: [k]\n"
	     "        values: [{column: v, name: value}]\n",
	     "extra|v|k",
	     {"zzz|7|a", NULL},
	     true,
	     "q_value{k=\"a\"} 7\n"},
	    {"a NULL label is empty, a NULL value gives no sample",
	     "      - name: q\n        sql: x\n        labels: [k]\n"
	     "        values: [{column: a}, {column: b}]\n",
	     "k|a|b",
	     {"\\N|1|\\N", "x|\\N|2", NULL},
	     true,
	     "q_a{k=\"\"} 1\n"
	     "q_b{k=\"x\"} 2\n"},
	    {"a non-numeric cell is skipped and counted once",
	     "      - name: q\n        sql: x\n        labels: [k]\n"
	     "        values: [{column: v}]\n",
	     "k|v",
	     {"a|1", "b|one", "c|3", "d|$4.00", NULL},
	     true,
	     "q_v{k=\"a\"} 1\n"
	     "q_v{k=\"c\"} 3\n"
	     "usher_sql_query_errors_total{query=\"q\",reason=\"non_numeric\"} 1\n"},
	    {"booleans are 1 and 0, other text is not",
	     "      - name: q\n        sql: x\n        labels: [k]\n"
	     "        values: [{column: ok}]\n",
	     "k|ok:bool",
	     {"a|t", "b|f", NULL},
	     true,
	     "q_ok{k=\"a\"} 1\n"
	     "q_ok{k=\"b\"} 0\n"},
	    {"t is not a number in a numeric column",
	     "      - name: q\n        sql: x\n        values: [{column: ok}]\n",
	     "ok",
	     {"t", NULL},
	     true,
	     "usher_sql_query_errors_total{query=\"q\",reason=\"non_numeric\"} 1\n"},
	    {"counters get _total once",
	     "      - name: q\n        sql: x\n"
	     "        values: [{column: made, type: counter}, {column: x, name: sold_total, "
	     "type: counter}]\n",
	     "made|x",
	     {"18|5", NULL},
	     true,
	     "q_made_total 18\n"
	     "q_sold_total 5\n"},
	    {"numbers as PostgreSQL prints them",
	     "      - name: q\n        sql: x\n        labels: [k]\n"
	     "        values: [{column: v}]\n",
	     "k|v",
	     {"int|-42", "numeric|12345678901234567890.5", "float|1.5e-07", "nan|NaN",
	      "inf|Infinity", "ninf|-Infinity", "zero|-0", NULL},
	     true,
	     "q_v{k=\"int\"} -42\n"
	     "q_v{k=\"numeric\"} 1.2345678901234567e+19\n"
	     "q_v{k=\"float\"} 1.5e-07\n"
	     "q_v{k=\"nan\"} NaN\n"
	     "q_v{k=\"inf\"} +Inf\n"
	     "q_v{k=\"ninf\"} -Inf\n"
	     "q_v{k=\"zero\"} -0\n"},
	    {"no rows: no samples, no error",
	     "      - name: q\n        sql: x\n        values: [{column: v}]\n",
	     "v",
	     {NULL},
	     true,
	     ""},
	    {"over max_series: nothing, counted",
	     "      - name: q\n        sql: x\n        labels: [k]\n        max_series: 3\n"
	     "        values: [{column: a}, {column: b}]\n",
	     "k|a|b",
	     {"x|1|2", "y|3|4", "z|5|6", NULL},
	     false,
	     "usher_sql_query_errors_total{query=\"q\",reason=\"max_series\"} 1\n"},
	    {"NULLs do not count towards max_series",
	     "      - name: q\n        sql: x\n        labels: [k]\n        max_series: 2\n"
	     "        values: [{column: a}, {column: b}]\n",
	     "k|a|b",
	     {"x|1|\\N", "y|\\N|4", NULL},
	     true,
	     "q_a{k=\"x\"} 1\n"
	     "q_b{k=\"y\"} 4\n"},
	    {"two rows with the same labels: nothing, counted",
	     "      - name: q\n        sql: x\n        labels: [k, j]\n"
	     "        values: [{column: v}]\n",
	     "k|j|v",
	     {"a|1|1", "b|1|2", "a|2|3", "a|1|4", NULL},
	     false,
	     "usher_sql_query_errors_total{query=\"q\",reason=\"duplicate_series\"} 1\n"},
	    {"two rows without labels are duplicates too",
	     "      - name: q\n        sql: x\n        values: [{column: v}]\n",
	     "v",
	     {"1", "2", NULL},
	     false,
	     "usher_sql_query_errors_total{query=\"q\",reason=\"duplicate_series\"} 1\n"},
	    {"a missing value column: nothing, counted",
	     "      - name: q\n        sql: x\n        labels: [k]\n"
	     "        values: [{column: seats}]\n",
	     "k|Seats",
	     {"a|1", NULL},
	     false,
	     "usher_sql_query_errors_total{query=\"q\",reason=\"missing_column\"} 1\n"},
	    {"a missing label column: nothing, counted",
	     "      - name: q\n        sql: x\n        labels: [k]\n"
	     "        values: [{column: v}]\n",
	     "v",
	     {"1", NULL},
	     false,
	     "usher_sql_query_errors_total{query=\"q\",reason=\"missing_column\"} 1\n"},
	    {"label values are escaped",
	     "      - name: q\n        sql: x\n        labels: [k]\n"
	     "        values: [{column: v}]\n",
	     "k|v",
	     {"say \"hi\"\\|1", NULL},
	     true,
	     "q_v{k=\"say \\\"hi\\\"\\\\\"} 1\n"},
	};
	size_t i, bad = 0;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_config *cfg = load_query(cases[i].query);
		struct usher_pgq_state *st = usher_pgq_state_new(query_of(cfg));
		bool ok = feed(st, cases[i].columns, cases[i].rows);
		char *got = render(st);

		if (ok != cases[i].ok || strcmp(got, cases[i].want) != 0) {
			print_error("%s: ok %d (want %d), got:\n%s\nwant:\n%s\n", cases[i].what, ok,
				    cases[i].ok, got, cases[i].want);
			bad++;
		}
		free(got);
		usher_pgq_state_free(st);
		usher_config_free(cfg);
	}
	assert_int_equal(bad, 0);
}

/* A failed result hides the last good one; counters add up across
 * results; the failure's detail is kept for the log. */
static void test_counters_and_failures(void **state)
{
	struct usher_config *cfg = load_query("      - name: q\n        sql: x\n"
					      "        values: [{column: v}]\n");
	struct usher_pgq_state *st = usher_pgq_state_new(query_of(cfg));
	static const char *const one[] = {"5", NULL};
	char *got;

	(void)state;
	assert_true(feed(st, "v", one));
	assert_false(usher_pgq_failed(st));
	got = render(st);
	assert_string_equal(got, "q_v 5\n");
	free(got);

	usher_pgq_begin(st, 1000);
	usher_pgq_fail(st, USHER_PGQ_ERR_QUERY, "relation \"x\" does not exist (SQLSTATE 42P01)");
	usher_pgq_fail(st, USHER_PGQ_ERR_TIMEOUT, "second failure of one result: not counted");
	assert_false(usher_pgq_end(st, 0.1));
	assert_true(usher_pgq_failed(st));
	assert_string_equal(usher_pgq_last_error(st),
			    "relation \"x\" does not exist (SQLSTATE 42P01)");
	usher_pgq_begin(st, 2000);
	usher_pgq_fail(st, USHER_PGQ_ERR_QUERY, "again");
	usher_pgq_end(st, 0.1);
	usher_pgq_begin(st, 3000);
	usher_pgq_fail(st, USHER_PGQ_ERR_TIMEOUT, "cancelled");
	usher_pgq_end(st, 0.1);
	got = render(st);
	assert_string_equal(got,
			    "usher_sql_query_errors_total{query=\"q\",reason=\"query\"} 2\n"
			    "usher_sql_query_errors_total{query=\"q\",reason=\"timeout\"} 1\n");
	free(got);

	/* and a good result again */
	assert_true(feed(st, "v", one));
	got = render(st);
	assert_string_equal(got,
			    "q_v 5\n"
			    "usher_sql_query_errors_total{query=\"q\",reason=\"query\"} 2\n"
			    "usher_sql_query_errors_total{query=\"q\",reason=\"timeout\"} 1\n");
	free(got);
	usher_pgq_state_free(st);
	usher_config_free(cfg);
}

static void test_min_interval(void **state)
{
	struct usher_config *cfg = load_query("      - name: q\n        sql: x\n"
					      "        min_interval: 1m\n"
					      "        values: [{column: v}]\n");
	struct usher_pgq_state *st = usher_pgq_state_new(query_of(cfg));
	static const char *const one[] = {"5", NULL};

	(void)state;
	assert_true(usher_pgq_due(st, 123456)); /* never ran */
	usher_pgq_begin(st, 100000);
	assert_int_equal(usher_pgq_columns(st, 1, (const char *const[]){"v"}, NULL), USHER_OK);
	assert_int_equal(usher_pgq_row(st, one), USHER_OK);
	assert_true(usher_pgq_end(st, 0.1));
	assert_false(usher_pgq_due(st, 100000));
	assert_false(usher_pgq_due(st, 159999));
	assert_true(usher_pgq_due(st, 160000));
	usher_pgq_state_free(st);
	usher_config_free(cfg);

	/* without min_interval, every run */
	cfg = load_query("      - name: q\n        sql: x\n        values: [{column: v}]\n");
	st = usher_pgq_state_new(query_of(cfg));
	usher_pgq_begin(st, 100000);
	usher_pgq_end(st, 0);
	assert_true(usher_pgq_due(st, 100000));
	usher_pgq_state_free(st);
	usher_config_free(cfg);
}

static void test_parse_value(void **state)
{
	static const struct {
		const char *cell;
		bool is_bool, ok;
		double want;
	} cases[] = {
	    {"0", false, true, 0},
	    {"42", false, true, 42},
	    {"-7", false, true, -7},
	    {"+7", false, true, 7},
	    {"3.25", false, true, 3.25},
	    {".5", false, true, 0.5},
	    {"1e3", false, true, 1000},
	    {"1E-2", false, true, 0.01},
	    {"", false, false, 0},
	    {" 1", false, false, 0},
	    {"1 ", false, false, 0},
	    {"0x10", false, false, 0},
	    {"inf", false, false, 0},
	    {"nan", false, false, 0},
	    {"1.2.3", false, false, 0},
	    {"-", false, false, 0},
	    {"e5", false, false, 0},
	    {"t", false, false, 0},
	    {"t", true, true, 1},
	    {"f", true, true, 0},
	    {"true", true, true, 1},
	    {"false", true, true, 0},
	    {"1", true, false, 0},
	    {"yes", true, false, 0},
	    {"1e400", false, true, HUGE_VAL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double v = -12345;
		bool ok = usher_pgq_parse_value(cases[i].cell, cases[i].is_bool, &v);

		if (ok != cases[i].ok || (ok && v != cases[i].want))
			fail_msg("\"%s\" (bool %d): ok %d value %g, want ok %d value %g",
				 cases[i].cell, cases[i].is_bool, ok, v, cases[i].ok,
				 cases[i].want);
	}
	assert_string_equal(usher_pgq_reason_name(USHER_PGQ_ERR_MAX_SERIES), "max_series");
	assert_string_equal(usher_pgq_reason_name(USHER_PGQ_NREASONS), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_results),
	    cmocka_unit_test(test_counters_and_failures),
	    cmocka_unit_test(test_min_interval),
	    cmocka_unit_test(test_parse_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
