/* Unit tests of the postgres probe's configuration: defaults and a full
 * config fill struct usher_pg_opts as documented, custom queries get their
 * metric names, bad configs give the exact file:line:col messages of
 * `usher check-config`, and the DSN helpers (instance label, redaction,
 * failure reasons) never show a password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "probes/pg_queries.h"
#include "probes/postgres.h"

/* Loads text; returns every diagnostic, one per line, or "" when valid. */
static const char *load(const char *text, struct usher_config **out)
{
	static char all[16384];
	struct usher_config *cfg = NULL;
	struct usher_diags d;
	size_t i, off = 0;

	usher_diags_init(&d);
	usher_config_load_text("t.yml", text, strlen(text), &cfg, &d);
	all[0] = '\0';
	for (i = 0; i < d.n && off < sizeof(all); i++) {
		struct usher_diags single = {.v = d.v + i, .n = 1};
		char one[2048];

		usher_diags_first(&single, one, sizeof(one));
		off += (size_t)snprintf(all + off, sizeof(all) - off, "%s%s", off ? "\n" : "", one);
	}
	usher_diags_free(&d);
	assert_true((cfg == NULL) == (all[0] != '\0'));
	if (out)
		*out = cfg;
	else
		usher_config_free(cfg);
	return all;
}

/* One postgres probe named db with the given extra lines (indented 4);
 * line 4 is the first of them. */
static const char *probe(const char *lines)
{
	static char buf[8192];

	snprintf(buf, sizeof(buf), "probes:\n  - name: db\n    type: postgres\n%s", lines);
	return buf;
}

static const struct usher_pg_opts *opts_of(const struct usher_config *cfg)
{
	assert_int_equal(cfg->nprobes, 1);
	assert_ptr_equal(cfg->probes[0].type, &usher_probe_postgres);
	return cfg->probes[0].opts;
}

static void test_defaults(void **state)
{
	const struct usher_pg_opts *o;
	struct usher_config *cfg;

	(void)state;
	assert_string_equal(
	    load(probe("    dsn: postgresql://usher@db.example:6432/booking\n"), &cfg), "");
	o = opts_of(cfg);
	assert_string_equal(o->dsn, "postgresql://usher@db.example:6432/booking");
	assert_int_equal(o->connect_timeout_ms, 5000);
	/* the probe's timeout: global scrape_timeout 10s */
	assert_int_equal(cfg->probes[0].timeout_ms, 10000);
	assert_int_equal(o->statement_timeout_ms, 10000);
	assert_int_equal(o->max_tables, 1000);
	assert_int_equal(o->database_size_interval_ms, 60000);
	assert_int_equal(o->exclude_databases.n, 0);
	assert_int_equal(o->queries.n, 0);
	assert_string_equal(cfg->probes[0].instance, "db.example:6432");
	assert_string_equal(cfg->probes[0].job, "db");
	usher_config_free(cfg);
}

static void test_full(void **state)
{
	const struct usher_pgq_value *v;
	const struct usher_pgq_conf *q;
	const struct usher_pg_opts *o;
	struct usher_config *cfg;

	(void)state;
	setenv("USHER_TEST_PG_PASSWORD", "pw-9981", 1);
	assert_string_equal(
	    load(probe("    dsn: \"host=/run/postgresql port=5433 dbname=booking user=usher "
		       "password=${env:USHER_TEST_PG_PASSWORD}\"\n"
		       "    interval: 30s\n"
		       "    timeout: 20s\n"
		       "    connect_timeout: 3s\n"
		       "    statement_timeout: 15s\n"
		       "    exclude_databases: [template0, template1]\n"
		       "    max_tables: 0\n"
		       "    database_size_interval: 0s\n"
		       "    queries:\n"
		       "      - name: booking_event\n"
		       "        sql: SELECT event_id, state, seats, revenue FROM x\n"
		       "        labels: [event_id, state]\n"
		       "        timeout: 5s\n"
		       "        min_interval: 1m\n"
		       "        max_series: 50\n"
		       "        values:\n"
		       "          - {column: seats, help: Seats by state}\n"
		       "          - {column: revenue, name: revenue_cents, type: counter}\n"
		       "      - name: booking_created\n"
		       "        sql: SELECT 1 AS total\n"
		       "        values: [{column: total, type: counter}]\n"),
		 &cfg),
	    "");
	o = opts_of(cfg);
	assert_string_equal(o->dsn, "host=/run/postgresql port=5433 dbname=booking user=usher "
				    "password=pw-9981");
	assert_int_equal(o->connect_timeout_ms, 3000);
	assert_int_equal(o->statement_timeout_ms, 15000);
	assert_int_equal(o->exclude_databases.n, 2);
	assert_string_equal(o->exclude_databases.v[1], "template1");
	assert_int_equal(o->max_tables, 0);
	assert_int_equal(o->database_size_interval_ms, 0);
	assert_string_equal(cfg->probes[0].instance, "/run/postgresql:5433");
	assert_int_equal(o->queries.n, 2);
	q = o->queries.v;
	assert_string_equal(q[0].name, "booking_event");
	assert_int_equal(q[0].labels.n, 2);
	assert_int_equal(q[0].timeout_ms, 5000);
	assert_int_equal(q[0].min_interval_ms, 60000);
	assert_int_equal(q[0].max_series, 50);
	assert_int_equal(q[0].values.n, 2);
	v = q[0].values.v;
	assert_string_equal(v[0].family, "booking_event_seats");
	assert_string_equal(v[0].exposed, "booking_event_seats");
	assert_int_equal(v[0].type, USHER_PGQ_GAUGE);
	assert_string_equal(v[0].help_txt, "Seats by state");
	assert_string_equal(v[1].family, "booking_event_revenue_cents");
	assert_string_equal(v[1].exposed, "booking_event_revenue_cents_total");
	assert_int_equal(v[1].type, USHER_PGQ_COUNTER);
	assert_string_equal(v[1].help_txt, "Column revenue of the custom SQL query booking_event");
	/* a counter already ending in _total is not doubled */
	v = q[1].values.v;
	assert_string_equal(v[0].family, "booking_created");
	assert_string_equal(v[0].exposed, "booking_created_total");
	assert_int_equal(q[1].timeout_ms, 0);
	assert_int_equal(q[1].min_interval_ms, 0);
	assert_int_equal(q[1].max_series, 1000);
	usher_config_free(cfg);
}

static void test_errors(void **state)
{
	static const struct {
		const char *lines;
		const char *want;
	} cases[] = {
	    {"    connect_timeout: 1s\n", "t.yml:2:5: missing required key \"dsn\""},
	    /* libpq's message, its quoted fragments hidden: they could be
	     * pieces of the password */
	    {"    dsn: \"host=db password=se cret\"\n",
	     "t.yml:4:10: dsn: not a valid libpq connection string or URI: missing \"...\" after "
	     "\"...\" in connection info string"},
	    {"    dsn: \"postgresql://u:p@db/x?frobnicate=1\"\n",
	     "t.yml:4:10: dsn: not a valid libpq connection string or URI: invalid URI query "
	     "parameter: \"...\""},
	    {"    dsn: \"${env:USHER_TEST_PG_UNSET_VAR}\"\n",
	     "t.yml:4:10: environment variable USHER_TEST_PG_UNSET_VAR is not set"},
	    {"    dsn: host=db\n    connect_timeout: 0s\n",
	     "t.yml:5:22: connect_timeout: must be longer than 0s"},
	    {"    dsn: host=db\n    max_tables: -1\n",
	     "t.yml:5:17: max_tables must be 0 (off) or more"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: SELECT 1\n",
	     "t.yml:6:9: missing required key \"values\""},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: \"  \"\n"
	     "        values: [{column: a}]\n",
	     "t.yml:7:14: query q: sql is empty"},
	    {"    dsn: host=db\n    queries:\n      - name: 9q\n        sql: x\n"
	     "        values: [{column: a}]\n",
	     "t.yml:6:15: query name \"9q\" must be a metric name prefix: letters, digits, '_' and "
	     "':', not starting with a digit"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        values: [{column: a}]\n"
	     "      - name: q\n        sql: y\n        values: [{column: b}]\n",
	     "t.yml:9:15: duplicate query name \"q\""},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        labels: [a]\n        values: [{column: a}]\n",
	     "t.yml:9:27: query q: column \"a\" is both a label and a value"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        values: [{column: a, type: histogram}]\n",
	     "t.yml:8:36: type: unknown type \"histogram\": use gauge or counter"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        values: [{column: a}, {column: a, name: b}]\n",
	     "t.yml:8:40: query q: column \"a\" is listed twice in values"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        values: [{column: \"Seats Held\"}]\n",
	     "t.yml:8:27: query q: column \"Seats Held\" does not make a metric name: give the "
	     "value a name"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        values: [{column: a, name: a-b}]\n",
	     "t.yml:8:36: query q: name \"a-b\" may only have letters, digits, '_' and ':'"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        labels: [event id, instance, __x, ok, ok]\n"
	     "        values: [{column: a}]\n",
	     "t.yml:8:18: query q: label column \"event id\" is not a valid label name (letters, "
	     "digits and underscores, not starting with a digit or \"__\"): rename it in the SQL "
	     "with AS\n"
	     "t.yml:8:28: query q: label \"instance\" is already a label of the probe: rename the "
	     "column with AS\n"
	     "t.yml:8:38: query q: label column \"__x\" is not a valid label name (letters, digits "
	     "and underscores, not starting with a digit or \"__\"): rename it in the SQL with AS\n"
	     "t.yml:8:47: query q: label \"ok\" is listed twice"},
	    {"    dsn: host=db\n    labels: {team: booking}\n    queries:\n      - name: q\n"
	     "        sql: x\n        labels: [team]\n        values: [{column: a}]\n",
	     "t.yml:9:18: query q: label \"team\" is already a label of the probe: rename the "
	     "column with AS"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        values: [{column: a}]\n"
	     "      - name: q_a\n        sql: x\n        values: [{column: b, name: x}]\n"
	     "      - name: q\n        sql: x\n        values: [{column: c}]\n",
	     "t.yml:12:15: duplicate query name \"q\""},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        values: [{column: a_b}]\n"
	     "      - name: q_a\n        sql: x\n        values: [{column: b}]\n",
	     "t.yml:11:18: query q_a: metric q_a_b is made by another value of this probe's "
	     "queries"},
	    {"    dsn: host=db\n    queries:\n      - name: pg\n        sql: x\n"
	     "        values: [{column: up}]\n",
	     "t.yml:8:18: query pg: metric pg_up is one the probe exposes itself: pick another "
	     "query name"},
	    {"    dsn: host=db\n    queries:\n      - name: usher_sql_query\n        sql: x\n"
	     "        values: [{column: errors, type: counter}]\n",
	     "t.yml:8:18: query usher_sql_query: metric usher_sql_query_errors_total is one the "
	     "probe exposes itself: pick another query name"},
	    {"    dsn: host=db\n    timeout: 2s\n    queries:\n      - name: q\n        sql: x\n"
	     "        timeout: 3s\n        values: [{column: a}]\n",
	     "t.yml:9:18: query q: timeout 3s is longer than the probe's timeout 2s, which bounds "
	     "every run"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        timeout: 0s\n        values: [{column: a}]\n",
	     "t.yml:8:18: query q: timeout must be longer than 0s"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        max_series: 0\n        values: [{column: a}]\n",
	     "t.yml:8:21: max_series: must be greater than 0"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        values: []\n",
	     "t.yml:8:17: query q: values must name at least one column"},
	    {"    dsn: host=db\n    queries:\n      - name: q\n        sql: x\n"
	     "        valeus: [{column: a}]\n",
	     "t.yml:6:9: missing required key \"values\"\n"
	     "t.yml:8:9: unknown key \"valeus\" (did you mean \"values\"?)"},
	};
	size_t i, bad = 0;

	(void)state;
	unsetenv("USHER_TEST_PG_UNSET_VAR");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = load(probe(cases[i].lines), NULL);

		if (strcmp(got, cases[i].want) != 0) {
			print_error("case %zu:\n%s\ngot:\n%s\nwant:\n%s\n\n", i,
				    probe(cases[i].lines), got, cases[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* A password never shows in a diagnostic, whatever the mistake. */
static void test_errors_hide_password(void **state)
{
	static const char *const lines[] = {
	    "    dsn: \"host=db password=hunter2 x\"\n",
	    "    dsn: \"host=db password='hunter2\"\n",
	    "    dsn: \"postgresql://u:hunter2@db/x?bogus=hunter2\"\n",
	    "    dsn: \"postgresql://u:hunter2@[::1/x\"\n",
	    "    dsn: \"hunter2\"\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		const char *got = load(probe(lines[i]), NULL);

		if (!*got)
			continue; /* libpq took it: nothing to show */
		if (strstr(got, "hunter2"))
			fail_msg("the password shows in: %s", got);
	}
}

static void test_instance_and_describe(void **state)
{
	static const struct {
		const char *dsn, *instance, *describe;
	} cases[] = {
	    {"postgresql://usher:pw@db.example/booking", "db.example:5432",
	     "postgresql://usher:***@db.example:5432/booking"},
	    {"postgresql://db.example:6432", "db.example:6432", "postgresql://db.example:6432"},
	    {"postgres://u@[2001:db8::1]:5433/x?sslmode=require", "[2001:db8::1]:5433",
	     "postgresql://u@[2001:db8::1]:5433/x"},
	    {"host=/run/postgresql dbname=booking", "/run/postgresql:5432",
	     "postgresql:///run/postgresql:5432/booking"},
	    {"dbname=booking user=usher password=secret", "localhost:5432",
	     "postgresql://usher:***@localhost:5432/booking"},
	    {"password=secret host=db", "db:5432", "postgresql://@db:5432"},
	    {"hostaddr=10.0.0.5 port=5433", "10.0.0.5:5433", "postgresql://10.0.0.5:5433"},
	    {"postgresql://u@a:5432,b:5433/x", "a:5432,b:5433", "postgresql://u@a:5432,b:5433/x"},
	    {"host=a,b port=6432", "a:6432,b:6432", "postgresql://a:6432,b:6432"},
	    {"not a dsn", "postgres", "postgresql://(unparsable dsn)"},
	};
	struct usher_arena *a = usher_arena_new();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *inst = usher_pg_instance(a, cases[i].dsn);
		const char *what = usher_pg_describe(a, cases[i].dsn);

		if (strcmp(inst, cases[i].instance) || strcmp(what, cases[i].describe))
			fail_msg("%s: instance %s, describe %s; want %s, %s", cases[i].dsn, inst,
				 what, cases[i].instance, cases[i].describe);
		assert_null(strstr(what, "secret"));
		assert_null(strstr(what, ":pw@"));
	}
	usher_arena_free(a);
}

static void test_connect_reason(void **state)
{
	static const struct {
		const char *msg, *reason;
	} cases[] = {
	    {"connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password "
	     "authentication failed for user \"usher\"",
	     "auth"},
	    {"connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: fe_sendauth: no "
	     "password "
	     "supplied",
	     "auth"},
	    {"connection to server at \"10.0.0.1\", port 5432 failed: FATAL:  no pg_hba.conf entry "
	     "for host \"10.0.0.2\", user \"usher\", database \"x\", SSL off",
	     "auth"},
	    {"connection to server at \"db\", port 5432 failed: FATAL:  role \"usher\" does not "
	     "exist",
	     "auth"},
	    {"connection to server at \"db\", port 5432 failed: FATAL:  database \"nope\" does not "
	     "exist",
	     "connect"},
	    {"connection to server at \"127.0.0.1\", port 1 failed: Connection refused Is the "
	     "server "
	     "running on that host and accepting TCP/IP connections?",
	     "connect"},
	    {"could not translate host name \"nohost.invalid\" to address: Name or service not "
	     "known",
	     "dns"},
	    {"connection to server at \"db\", port 5432 failed: server does not support SSL, but "
	     "SSL "
	     "was required",
	     "tls"},
	    {"connection to server at \"db\", port 5432 failed: SSL error: certificate verify "
	     "failed",
	     "tls"},
	    {"connection to server at \"db\", port 5432 failed: timeout expired", "timeout"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (strcmp(usher_pg_connect_reason(cases[i].msg), cases[i].reason) != 0)
			fail_msg("%s: %s, want %s", cases[i].msg,
				 usher_pg_connect_reason(cases[i].msg), cases[i].reason);
}

/* The option tables render in the reference without trouble. */
static void test_reference(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(f);
	usher_opts_describe(f, usher_pg_options, 0);
	fclose(f);
	assert_non_null(strstr(buf, "statement_timeout"));
	assert_non_null(strstr(buf, "max_series"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_errors_hide_password),
	    cmocka_unit_test(test_instance_and_describe),
	    cmocka_unit_test(test_connect_reason),
	    cmocka_unit_test(test_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
