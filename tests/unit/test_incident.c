/* Unit tests of incidents on the SQLite store: the lifecycle (open, ack,
 * resolve, reopen within the window, a new incident after it), one
 * incident per group key across flushes, the timeline, the MTTA/MTTR
 * histograms and the open gauge, a store that survives being reopened, the
 * operator errors, the config section and the postmortem report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/buf.h"
#include "metrics/registry.h"
#include "notify/incident.h"

/* A group's webhook (version 4) JSON with one alert per severity given. */
static json_t *group(const char *key, const char *status, const char *const *sevs, size_t n)
{
	json_t *alerts = json_array();
	size_t i;

	for (i = 0; i < n; i++) {
		char fp[32], inst[32];

		snprintf(fp, sizeof(fp), "%016zx", i + 1);
		snprintf(inst, sizeof(inst), "api-%zu", i + 1);
		json_array_append_new(
		    alerts, json_pack("{s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s}, s:s, s:s, s:s}",
				      "status", status, "labels", "alertname", "CheckoutDown",
				      "severity", sevs[i], "service", "checkout", "instance", inst,
				      "annotations", "summary", "checkout | returns 5xx",
				      "startsAt", "2026-11-28T06:00:00.5Z", "endsAt",
				      strcmp(status, "resolved") == 0 ? "2026-11-28T06:20:00Z"
								      : "0001-01-01T00:00:00Z",
				      "fingerprint", fp));
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s}, s:{s:s}, s:o}", "version",
			 "4", "groupKey", key, "status", status, "receiver", "oncall",
			 "groupLabels", "alertname", "CheckoutDown", "commonLabels", "alertname",
			 "CheckoutDown", "service", "checkout", "commonAnnotations", "summary",
			 "checkout | returns 5xx", "alerts", alerts);
}

static void flush(struct usher_incidents *inc, const char *key, const char *status,
		  const char *const *sevs, size_t n, bool open)
{
	json_t *g = group(key, status, sevs, n);

	usher_incidents_on_flush(inc, g, open);
	usher_incidents_sync(inc);
	json_decref(g);
}

static json_t *list(struct usher_incidents *inc, const char *status)
{
	struct usher_error err = {{0}};
	json_t *l = NULL;

	assert_int_equal(usher_incidents_list(inc, status, 0, &l, &err), USHER_OK);
	assert_true(json_is_array(l));
	return l;
}

static size_t count(struct usher_incidents *inc, const char *status)
{
	json_t *l = list(inc, status);
	size_t n = json_array_size(l);

	json_decref(l);
	return n;
}

static json_t *get(struct usher_incidents *inc, int64_t id)
{
	struct usher_error err = {{0}};
	json_t *o = NULL;

	assert_int_equal(usher_incident_get(inc, id, &o, &err), USHER_OK);
	return o;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "(null)";
}

/* The kinds of the timeline, space-separated. */
static char *kinds(const json_t *inc)
{
	static char buf[1024];
	const json_t *e;
	size_t i;

	buf[0] = '\0';
	json_array_foreach(json_object_get(inc, "timeline"), i, e)
	{
		size_t len = strlen(buf);

		snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? " " : "", str(e, "kind"));
	}
	return buf;
}

static struct usher_incidents *open_mem(struct usher_store **st, struct usher_registry *reg,
					int64_t window_ms)
{
	struct usher_incidents_conf conf = {.store = "sqlite", .reopen_window_ms = window_ms};
	struct usher_incidents *inc = NULL;
	struct usher_error err = {{0}};

	assert_int_equal(usher_store_open(":memory:", st, &err), USHER_OK);
	assert_int_equal(usher_incidents_new(&conf, NULL, *st, reg, NULL, &inc, &err), USHER_OK);
	return inc;
}

static char *render(struct usher_registry *reg)
{
	struct usher_buf b;

	usher_buf_init(&b, 1 << 20);
	assert_int_equal(usher_registry_render(reg, USHER_EXPO_TEXT, &b), USHER_OK);
	return usher_buf_take(&b);
}

static const char *const crit[] = {"critical"};
static const char *const warn2[] = {"warning", "warning"};
static const char *const crit_warn[] = {"warning", "critical"};

static void test_lifecycle(void **state)
{
	struct usher_store *st;
	struct usher_registry *reg = usher_registry_new();
	struct usher_incidents *inc = open_mem(&st, reg, 3600 * 1000);
	struct usher_error err = {{0}};
	json_t *l, *o;
	int64_t id;
	char *m;

	(void)state;
	/* a page opens one incident; the next flushes of the group update it */
	flush(inc, "{}:{alertname=\"CheckoutDown\"}", "firing", crit, 1, true);
	flush(inc, "{}:{alertname=\"CheckoutDown\"}", "firing", crit, 1, true);
	flush(inc, "{}:{alertname=\"CheckoutDown\"}", "firing", crit_warn, 2, true);
	l = list(inc, NULL);
	assert_int_equal(json_array_size(l), 1);
	o = json_array_get(l, 0);
	id = json_integer_value(json_object_get(o, "id"));
	assert_true(id > 0);
	assert_string_equal(str(o, "status"), "open");
	assert_string_equal(str(o, "severity"), "critical");
	assert_string_equal(str(o, "service"), "checkout");
	assert_string_equal(str(o, "title"), "CheckoutDown: checkout | returns 5xx");
	assert_int_equal(strlen(str(o, "groupHash")), 64);
	json_decref(l);
	m = render(reg);
	assert_non_null(strstr(m, "usher_incidents_open{severity=\"critical\"} 1\n"));
	free(m);

	/* two alerts, and a "fired" entry per flush that brought new ones */
	o = get(inc, id);
	assert_int_equal(json_array_size(json_object_get(o, "alerts")), 2);
	assert_string_equal(kinds(o), "fired fired");
	json_decref(o);

	usher_incidents_on_delivery(inc, "{}:{alertname=\"CheckoutDown\"}", "oncall", "slack", 0,
				    NULL);
	usher_incidents_sync(inc);
	usher_incidents_on_delivery(inc, "{}:{alertname=\"other\"}", "oncall", "slack", 0, NULL);
	usher_incidents_sync(inc);
	assert_int_equal(usher_incident_ack(inc, id, "alice", &err), USHER_OK);
	assert_int_equal(usher_incident_ack(inc, id, "bob", &err), USHER_ERR_INVALID);
	assert_non_null(strstr(err.msg, "acknowledged, not open"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(usher_incident_note(inc, id, "alice", "rolled back deploy 42", &err),
			 USHER_OK);
	assert_int_equal(count(inc, "acknowledged"), 1);
	assert_int_equal(count(inc, "open"), 0);

	/* the group resolves: the incident does */
	flush(inc, "{}:{alertname=\"CheckoutDown\"}", "resolved", crit_warn, 2, true);
	o = get(inc, id);
	assert_string_equal(str(o, "status"), "resolved");
	assert_string_equal(str(o, "resolvedBy"), "usherd");
	assert_string_equal(str(o, "acknowledgedBy"), "alice");
	assert_string_equal(kinds(o), "fired fired notification acknowledged note resolved");
	json_decref(o);
	m = render(reg);
	assert_non_null(strstr(m, "usher_incidents_open{severity=\"critical\"} 0\n"));
	assert_non_null(strstr(m, "usher_incident_time_to_ack_seconds_count 1\n"));
	assert_non_null(strstr(m, "usher_incident_time_to_ack_seconds_bucket{le=\"5\"} 1\n"));
	assert_non_null(strstr(m, "usher_incident_time_to_resolve_seconds_count 1\n"));
	free(m);

	/* firing again within the window reopens it, unacknowledged */
	flush(inc, "{}:{alertname=\"CheckoutDown\"}", "firing", crit, 1, true);
	assert_int_equal(count(inc, NULL), 1);
	o = get(inc, id);
	assert_string_equal(str(o, "status"), "open");
	assert_int_equal(json_integer_value(json_object_get(o, "reopenCount")), 1);
	assert_true(json_is_null(json_object_get(o, "acknowledgedBy")));
	assert_non_null(strstr(kinds(o), "resolved reopened"));
	json_decref(o);

	/* resolved by hand; the operator's name is kept */
	assert_int_equal(usher_incident_resolve(inc, id, "carol", &err), USHER_OK);
	assert_int_equal(usher_incident_resolve(inc, id, "carol", &err), USHER_ERR_INVALID);
	o = get(inc, id);
	assert_string_equal(str(o, "resolvedBy"), "carol");
	json_decref(o);
	m = render(reg);
	assert_non_null(strstr(m, "usher_incident_time_to_resolve_seconds_count 2\n"));
	free(m);

	usher_incidents_free(inc);
	usher_store_close(st);
	usher_registry_free(reg);
}

static void test_window_and_routes(void **state)
{
	struct usher_store *st;
	struct usher_incidents *inc = open_mem(&st, NULL, 0);
	struct usher_error err = {{0}};
	json_t *l;

	(void)state;
	/* outside the window (0): a new incident each time */
	flush(inc, "g1", "firing", crit, 1, true);
	flush(inc, "g1", "resolved", crit, 1, true);
	flush(inc, "g1", "firing", crit, 1, true);
	assert_int_equal(count(inc, NULL), 2);
	assert_int_equal(count(inc, "open"), 1);
	assert_int_equal(count(inc, "resolved"), 1);
	l = list(inc, "open");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(l, 0), "reopenCount")),
			 0);
	json_decref(l);

	/* a group whose route does not open incidents */
	flush(inc, "g2", "firing", warn2, 2, false);
	flush(inc, "g2", "resolved", warn2, 2, false);
	assert_int_equal(count(inc, NULL), 2);

	/* operator errors */
	assert_int_equal(usher_incident_ack(inc, 999, "alice", &err), USHER_ERR_NOTFOUND);
	assert_non_null(strstr(err.msg, "999 not found"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(usher_incident_ack(inc, 1, "", &err), USHER_ERR_INVALID);
	memset(&err, 0, sizeof(err));
	assert_int_equal(usher_incident_note(inc, 1, "alice", "", &err), USHER_ERR_INVALID);
	memset(&err, 0, sizeof(err));
	assert_int_equal(usher_incidents_list(inc, "closed", 0, &l, &err), USHER_ERR_INVALID);
	assert_null(l);
	assert_non_null(strstr(err.msg, "open, acknowledged or resolved"));
	usher_incidents_free(inc);
	usher_store_close(st);
}

static void test_default_wanted(void **state)
{
	static const char *const page[] = {"info", "page"};
	static const char *const none[] = {"warning", "info"};
	json_t *g;

	(void)state;
	g = group("a", "firing", page, 2);
	assert_true(usher_incident_default_wanted(g));
	json_decref(g);
	g = group("a", "firing", crit, 1);
	assert_true(usher_incident_default_wanted(g));
	json_decref(g);
	g = group("a", "firing", none, 2);
	assert_false(usher_incident_default_wanted(g));
	json_decref(g);
}

static void test_store_survives_reopen(void **state)
{
	char dir[] = "/tmp/usher-incident-XXXXXX", path[128];
	struct usher_incidents_conf conf = {.store = "sqlite", .reopen_window_ms = 3600000};
	struct usher_incidents *inc = NULL;
	struct usher_error err = {{0}};
	json_t *o;
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	size_t i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(usher_incidents_new(&conf, dir, NULL, NULL, NULL, &inc, &err), USHER_OK);
	flush(inc, "g", "firing", crit, 1, true);
	assert_int_equal(usher_incident_note(inc, 1, "dave", "looking", &err), USHER_OK);
	usher_incidents_free(inc);

	assert_int_equal(usher_incidents_new(&conf, dir, NULL, NULL, NULL, &inc, &err), USHER_OK);
	o = get(inc, 1);
	assert_string_equal(str(o, "status"), "open");
	assert_string_equal(kinds(o), "fired note");
	json_decref(o);
	/* still one incident for the group after the restart */
	flush(inc, "g", "firing", crit, 1, true);
	assert_int_equal(count(inc, NULL), 1);
	usher_incidents_free(inc);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/usher.db%s", dir, suffixes[i]);
		unlink(path);
	}
	assert_int_equal(rmdir(dir), 0);
}

static void test_report(void **state)
{
	struct usher_store *st;
	struct usher_incidents *inc = open_mem(&st, NULL, 3600000);
	struct usher_error err = {{0}};
	struct usher_buf b;
	json_t *o;
	const char *md;

	(void)state;
	flush(inc, "g", "firing", crit_warn, 2, true);
	usher_incidents_on_delivery(inc, "g", "oncall", "pagerduty", 0, "status 202");
	usher_incidents_sync(inc);
	assert_int_equal(usher_incident_ack(inc, 1, "alice", &err), USHER_OK);
	assert_int_equal(usher_incident_note(inc, 1, "alice", "a | pipe\nand a line", &err),
			 USHER_OK);
	flush(inc, "g", "resolved", crit_warn, 2, true);
	o = get(inc, 1);
	usher_buf_init(&b, 1 << 20);
	assert_int_equal(usher_incident_report(o, &b), USHER_OK);
	md = usher_buf_str(&b);
	assert_non_null(strstr(md, "# Postmortem (draft): incident 1 — CheckoutDown: checkout \\| "
				   "returns 5xx\n"));
	assert_non_null(strstr(md, "| Severity | critical |"));
	assert_non_null(strstr(md, "by alice (time to acknowledge 0s)"));
	/* the alerts started 06:00:00.5 and ended 06:20:00 */
	assert_non_null(strstr(md, "From 2026-11-28T06:00:00.500Z (the first alert's start) to "
				   "2026-11-28T06:20:00.000Z: 19m59s."));
	assert_non_null(strstr(md, "## Alerts (2)"));
	assert_non_null(strstr(md, "| CheckoutDown | resolved | 2026-11-28T06:00:00.5Z | "
				   "2026-11-28T06:20:00Z |"));
	assert_non_null(strstr(md, "## Notifications (1)"));
	assert_non_null(strstr(md, "oncall/pagerduty: delivered: status 202"));
	assert_non_null(strstr(md, "## Acknowledgements and notes (2)"));
	assert_non_null(strstr(md, "a \\| pipe and a line"));
	assert_non_null(strstr(md, "## Root cause"));
	usher_buf_free(&b);
	json_decref(o);
	o = json_pack("{s:s}", "title", "no id");
	usher_buf_init(&b, 1 << 20);
	assert_int_equal(usher_incident_report(o, &b), USHER_ERR_INVALID);
	usher_buf_free(&b);
	json_decref(o);
	usher_incidents_free(inc);
	usher_store_close(st);
}

static void test_config(void **state)
{
	static const struct {
		const char *yaml;
		const char *err; /* NULL: valid */
	} cases[] = {
	    {"probes: []\n", NULL},
	    {"incidents: {reopen_window: 30m}\n", NULL},
	    {"incidents: {tickets: [jira-team, tickets]}\n", NULL},
	    {"incidents:\n  store: postgres\n  dsn: postgresql://u@h/db\n", NULL},
	    {"incidents:\n  store: postgres\n", "t.yml:2:3: incidents.store is postgres but"},
	    {"incidents:\n  store: mysql\n", "t.yml:2:10: incidents.store: \"mysql\" is not"},
	    {"incidents:\n  dsn: x\n", "t.yml:2:8: incidents.dsn is set but"},
	    {"incidents:\n  reopen: 1h\n", "t.yml:2:3: "},
	    {"incidents: [a]\n", "t.yml:1:12: incidents: expected a mapping"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_diags d;
		struct usher_config *cfg = NULL;
		char first[512];
		enum usher_err rc;

		usher_diags_init(&d);
		rc =
		    usher_config_load_text("t.yml", cases[i].yaml, strlen(cases[i].yaml), &cfg, &d);
		usher_diags_first(&d, first, sizeof(first));
		if (!cases[i].err) {
			if (rc)
				fail_msg("case %zu: %s", i, first);
			if (i == 0) {
				assert_null(cfg->incidents.store);
			} else if (i == 1) {
				assert_string_equal(cfg->incidents.store, "sqlite");
				assert_int_equal(cfg->incidents.reopen_window_ms, 1800000);
			} else if (i == 2) {
				assert_int_equal(cfg->incidents.tickets.n, 2);
				assert_string_equal(cfg->incidents.tickets.v[1], "tickets");
			}
		} else if (rc == USHER_OK ||
			   strncmp(first, cases[i].err, strlen(cases[i].err)) != 0) {
			fail_msg("case %zu: want %s..., got %s", i, cases[i].err, first);
		}
		usher_config_free(cfg);
		usher_diags_free(&d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lifecycle),      cmocka_unit_test(test_window_and_routes),
	    cmocka_unit_test(test_default_wanted), cmocka_unit_test(test_store_survives_reopen),
	    cmocka_unit_test(test_report),         cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
