/* Incidents on PostgreSQL: the lifecycle through the same SQL as SQLite,
 * and two stores side by side (two usherd sharing one database) racing to
 * open the same groups: exactly one incident per group key. Without
 * USHER_TEST_PG_DSN the test re-runs itself under tests/integration/pgwrap.py,
 * which starts a real PostgreSQL for it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "notify/incident.h"

#define GROUPS 40

static const char *dsn;

static struct usher_incidents *open_pg(int64_t window_ms)
{
	struct usher_incidents_conf conf = {
	    .store = "postgres", .dsn = dsn, .reopen_window_ms = window_ms};
	struct usher_incidents *inc = NULL;
	struct usher_error err = {{0}};

	if (usher_incidents_new(&conf, NULL, NULL, NULL, NULL, &inc, &err))
		fail_msg("open: %s", err.msg);
	return inc;
}

static void sql(const char *q)
{
	PGconn *c = PQconnectdb(dsn);
	PGresult *r = PQexec(c, q);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", q, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

static json_t *group(const char *key, const char *status)
{
	return json_pack("{s:s, s:s, s:s, s:{s:s}, s:{s:s}, s:[{s:s, s:{s:s, s:s}, s:s, s:s, "
			 "s:s}]}",
			 "groupKey", key, "status", status, "receiver", "oncall", "groupLabels",
			 "alertname", "DbDown", "commonLabels", "alertname", "DbDown", "alerts",
			 "status", status, "labels", "alertname", "DbDown", "severity", "critical",
			 "fingerprint", "00000000000000aa", "startsAt", "2026-11-28T06:00:00Z",
			 "endsAt", "0001-01-01T00:00:00Z");
}

static void flush(struct usher_incidents *inc, const char *key, const char *status)
{
	json_t *g = group(key, status);

	usher_incidents_on_flush(inc, g, true);
	usher_incidents_sync(inc);
	json_decref(g);
}

static json_t *list(struct usher_incidents *inc, const char *status)
{
	struct usher_error err = {{0}};
	json_t *l = NULL;

	if (usher_incidents_list(inc, status, 100000, &l, &err))
		fail_msg("list: %s", err.msg);
	return l;
}

static void test_lifecycle(void **state)
{
	struct usher_incidents *inc;
	struct usher_error err = {{0}};
	json_t *l, *o = NULL;
	int64_t id;

	(void)state;
	sql("DROP TABLE IF EXISTS usher_incident_events, usher_incident_alerts, usher_incidents");
	inc = open_pg(3600000);
	flush(inc, "life", "firing");
	flush(inc, "life", "firing");
	l = list(inc, NULL);
	assert_int_equal(json_array_size(l), 1);
	id = json_integer_value(json_object_get(json_array_get(l, 0), "id"));
	json_decref(l);
	assert_int_equal(usher_incident_ack(inc, id, "alice", &err), USHER_OK);
	assert_int_equal(usher_incident_note(inc, id, "alice", "on it", &err), USHER_OK);
	usher_incidents_on_delivery(inc, "life", "oncall", "webhook", 1, "status 503");
	usher_incidents_sync(inc);
	flush(inc, "life", "resolved");
	flush(inc, "life", "firing"); /* within the window: reopened */
	assert_int_equal(usher_incident_get(inc, id, &o, &err), USHER_OK);
	assert_string_equal(json_string_value(json_object_get(o, "status")), "open");
	assert_int_equal(json_integer_value(json_object_get(o, "reopenCount")), 1);
	assert_int_equal(json_array_size(json_object_get(o, "timeline")), 6);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(o, "timeline"), 3), "text")),
			    "oncall/webhook: will retry: status 503");
	json_decref(o);
	assert_int_equal(usher_incident_resolve(inc, id, "bob", &err), USHER_OK);
	assert_int_equal(usher_incident_ack(inc, id, "bob", &err), USHER_ERR_INVALID);
	usher_incidents_free(inc);

	/* the schema is there already: a second open is fine, the data stays */
	inc = open_pg(0);
	l = list(inc, "resolved");
	assert_int_equal(json_array_size(l), 1);
	json_decref(l);
	flush(inc, "life", "firing"); /* outside a window of 0: a new incident */
	l = list(inc, NULL);
	assert_int_equal(json_array_size(l), 2);
	json_decref(l);
	usher_incidents_free(inc);
}

struct racer {
	struct usher_incidents *inc;
	pthread_barrier_t *go;
	const char *status;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	char key[32];
	int i;

	for (i = 0; i < GROUPS; i++) {
		snprintf(key, sizeof(key), "race-%d", i);
		pthread_barrier_wait(r->go);
		flush(r->inc, key, r->status);
	}
	return NULL;
}

/* Both stores flush every race-N group with status at the same moments. */
static void race_all(struct usher_incidents *a, struct usher_incidents *b, const char *status)
{
	pthread_barrier_t go;
	struct racer ra = {a, &go, status}, rb = {b, &go, status};
	pthread_t ta, tb;

	pthread_barrier_init(&go, NULL, 2);
	pthread_create(&ta, NULL, race, &ra);
	pthread_create(&tb, NULL, race, &rb);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	pthread_barrier_destroy(&go);
}

/* The timeline kinds of incident id, space-separated, into buf. */
static const char *kinds(struct usher_incidents *inc, json_int_t id, char *buf, size_t len)
{
	struct usher_error err = {{0}};
	json_t *full = NULL, *e;
	size_t i, n = 0;

	assert_int_equal(usher_incident_get(inc, id, &full, &err), USHER_OK);
	buf[0] = '\0';
	json_array_foreach(json_object_get(full, "timeline"), i, e)
	{
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? " " : "",
				      json_string_value(json_object_get(e, "kind")));
		if (n >= len)
			break;
	}
	assert_int_equal(json_array_size(json_object_get(full, "alerts")), 1);
	json_decref(full);
	return buf;
}

static void test_two_stores_race(void **state)
{
	struct usher_incidents *a = open_pg(3600000), *b = open_pg(3600000);
	json_t *l, *o;
	size_t i, per_group[GROUPS] = {0};
	char buf[256];

	(void)state;
	race_all(a, b, "firing");
	l = list(a, "open");
	json_array_foreach(l, i, o)
	{
		const char *k = json_string_value(json_object_get(o, "groupKey"));

		if (strncmp(k, "race-", 5) == 0)
			per_group[strtol(k + 5, NULL, 10)]++;
	}
	json_decref(l);
	for (i = 0; i < GROUPS; i++)
		if (per_group[i] != 1)
			fail_msg("group race-%zu has %zu open incidents, want 1", i, per_group[i]);
	/* both resolve, then both see the group fire again: one resolution and
	 * one reopening each, and every entry of the timeline once */
	race_all(a, b, "resolved");
	race_all(a, b, "firing");
	l = list(b, NULL);
	json_array_foreach(l, i, o)
	{
		const char *k = json_string_value(json_object_get(o, "groupKey"));

		if (strncmp(k, "race-", 5) != 0)
			continue;
		assert_string_equal(json_string_value(json_object_get(o, "status")), "open");
		assert_int_equal(json_integer_value(json_object_get(o, "reopenCount")), 1);
		assert_string_equal(
		    kinds(b, json_integer_value(json_object_get(o, "id")), buf, sizeof(buf)),
		    "fired resolved reopened");
	}
	json_decref(l);
	usher_incidents_free(a);
	usher_incidents_free(b);
}

static void test_unreachable(void **state)
{
	struct usher_incidents_conf conf = {
	    .store = "postgres",
	    .dsn = "postgresql://usher@127.0.0.1:1/usher?connect_timeout=2",
	    .reopen_window_ms = 0};
	struct usher_incidents *inc = NULL;
	struct usher_error err = {{0}};

	json_t *l = NULL, *g;

	(void)state;
	/* usherd starts anyway (notifications must go on); incidents wait */
	assert_int_equal(usher_incidents_new(&conf, NULL, NULL, NULL, NULL, &inc, &err), USHER_OK);
	g = group("down", "firing");
	usher_incidents_on_flush(inc, g, true); /* logged, not fatal */
	usher_incidents_sync(inc);
	json_decref(g);
	assert_int_equal(usher_incidents_list(inc, NULL, 0, &l, &err), USHER_ERR_NETWORK);
	assert_null(l);
	assert_non_null(
	    strstr(err.msg, "cannot connect to the incident database (incidents.dsn): "));
	assert_null(strchr(err.msg, '\n'));
	usher_incidents_free(inc);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lifecycle),
	    cmocka_unit_test(test_two_stores_race),
	    cmocka_unit_test(test_unreachable),
	};

	(void)argc;
	dsn = getenv("USHER_TEST_PG_DSN");
	if (!dsn) {
		char *const wrap[] = {(char *)"python3", (char *)"-B",
				      (char *)USHER_SOURCE_DIR "/tests/integration/pgwrap.py",
				      argv[0], NULL};

		execvp("python3", wrap);
		perror("test_incident_pg: cannot run python3 pgwrap.py for a PostgreSQL");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
