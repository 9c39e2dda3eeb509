/* The dispatcher on a clock of the test's own: group_wait, group_interval
 * and repeat_interval, resolution, silences, inhibition, `continue`,
 * send_resolved, the two opt-in behaviours (#226, #1510), and a
 * notification log that survives a restart (a new dispatcher on the same
 * state store does not notify again before repeat_interval). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/mem.h"
#include "notify/dispatch.h"
#include "notify/silence.h"

#define S  1000000000LL
#define T0 (1800000000LL * S)

struct sent {
	char receiver[64], integration[32], key[65];
	int index;
	json_t *data;
};

struct sink {
	struct sent v[64];
	int n;
	int flushes;
	int fail; /* enqueue fails while set */
};

static enum usher_err record(void *arg, struct usher_store *st, const char *receiver,
			     const char *integration, int index, const char *key,
			     const char *data_json, struct usher_error *err)
{
	struct sink *s = arg;
	struct sent *x;

	(void)st;
	if (s->fail)
		return usher_fail(err, USHER_ERR_IO, "injected");
	assert_true(s->n < 64);
	x = &s->v[s->n++];
	snprintf(x->receiver, sizeof(x->receiver), "%s", receiver);
	snprintf(x->integration, sizeof(x->integration), "%s", integration);
	snprintf(x->key, sizeof(x->key), "%s", key);
	x->index = index;
	x->data = json_loads(data_json, 0, NULL);
	assert_non_null(x->data);
	return USHER_OK;
}

static void on_flush(void *arg, const json_t *data, const struct usher_route *r)
{
	struct sink *s = arg;

	(void)data;
	(void)r;
	s->flushes++;
}

static void sink_clear(struct sink *s)
{
	int i;

	for (i = 0; i < s->n; i++)
		json_decref(s->v[i].data);
	s->n = 0;
}

static const char base_yml[] =
    "alerting:\n"
    "  resolve_timeout: 5m\n"
    "  route:\n"
    "    receiver: team\n"
    "    group_by: [alertname]\n"
    "    group_wait: 30s\n"
    "    group_interval: 5m\n"
    "    repeat_interval: 4h\n"
    "    routes:\n"
    "      - matchers: [severity=page]\n"
    "        receiver: pager\n"
    "        continue: true\n"
    "      - matchers: [severity=page]\n"
    "        receiver: quiet\n"
    "  inhibit_rules:\n"
    "    - source_matchers: [alertname=SiteDown]\n"
    "      target_matchers: [alertname=~\"Checkout.*\"]\n"
    "      equal: [site]\n"
    "  receivers:\n"
    "    - name: team\n"
    "      webhook_configs: [{url: 'http://127.0.0.1:1/team'}, {url: 'http://127.0.0.1:1/b', "
    "send_resolved: false}]\n"
    "    - name: pager\n"
    "      webhook_configs: [{url: 'http://127.0.0.1:1/pager'}]\n"
    "    - name: quiet\n";

static struct usher_config *load(const char *extra)
{
	struct usher_diags diags;
	struct usher_config *cfg = NULL;
	char *text = usher_malloc(strlen(base_yml) + strlen(extra) + 1);

	memcpy(text, base_yml, strlen(base_yml));
	memcpy(text + strlen(base_yml), extra, strlen(extra) + 1);
	usher_diags_init(&diags);
	if (usher_config_load_text("d.yml", text, strlen(text), &cfg, &diags)) {
		char first[512];

		fprintf(stderr, "%s\n", usher_diags_first(&diags, first, sizeof(first)));
		fail();
	}
	usher_diags_free(&diags);
	free(text);
	return cfg;
}

static struct usher_am_alert *alert(const char *labels_json, int64_t starts, int64_t ends,
				    int64_t now)
{
	char buf[1024], s[48], e[48];
	struct usher_error err = {0};
	struct usher_am_alert *a;
	json_t *j;

	/* firing: an explicit end far ahead, as Prometheus sends (ValidUntil) */
	if (!ends)
		ends = T0 + 100 * 3600 * S;
	usher_time_format_nano(starts, s, sizeof(s));
	usher_time_format_nano(ends, e, sizeof(e));
	if (ends)
		snprintf(buf, sizeof(buf), "{\"labels\":%s,\"startsAt\":\"%s\",\"endsAt\":\"%s\"}",
			 labels_json, s, e);
	else
		snprintf(buf, sizeof(buf), "{\"labels\":%s,\"startsAt\":\"%s\"}", labels_json, s);
	j = json_loads(buf, 0, NULL);
	assert_non_null(j);
	a = usher_am_alert_from_json(j, now, 5 * 60 * 1000, &err);
	json_decref(j);
	assert_non_null(a);
	return a;
}

static int count_to(const struct sink *s, const char *receiver, const char *status)
{
	int i, n = 0;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].receiver, receiver) == 0 &&
		    (!status || strcmp(json_string_value(json_object_get(s->v[i].data, "status")),
				       status) == 0))
			n++;
	return n;
}

static const struct sent *find(const struct sink *s, const char *receiver, int index)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].receiver, receiver) == 0 && s->v[i].index == index)
			return &s->v[i];
	return NULL;
}

struct fixture {
	struct usher_store *st;
	struct usher_silences *sil;
	struct usher_dispatch *d;
	struct usher_config *cfg;
	struct sink sink;
	char dir[64];
};

static void open_dispatch(struct fixture *f)
{
	struct usher_error err = {0};
	struct usher_dispatch_hooks h = {
	    .enqueue = record, .arg = &f->sink, .on_flush = on_flush, .on_flush_arg = &f->sink};

	assert_int_equal(usher_store_open(f->dir, &f->st, &err), USHER_OK);
	assert_int_equal(usher_silences_new(f->st, &f->sil, &err), USHER_OK);
	assert_int_equal(usher_dispatch_new(f->st, f->sil, &h, NULL, &f->d, &err), USHER_OK);
	usher_dispatch_set_config(f->d, f->cfg, "http://usher.example", T0);
}

static void close_dispatch(struct fixture *f)
{
	usher_dispatch_free(f->d);
	usher_silences_free(f->sil);
	usher_store_close(f->st);
	f->d = NULL;
}

static int setup(void **state)
{
	struct fixture *f = usher_calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/usher-dispatch-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->cfg = load("");
	open_dispatch(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char path[128];

	close_dispatch(f);
	usher_config_free(f->cfg);
	sink_clear(&f->sink);
	snprintf(path, sizeof(path), "%s/usher.db", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/usher.db-wal", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/usher.db-shm", f->dir);
	unlink(path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void test_grouping_and_timers(void **state)
{
	struct fixture *f = *state;
	const struct sent *x;

	usher_dispatch_put(f->d, alert("{\"alertname\":\"Lag\",\"instance\":\"b\"}", T0, 0, T0),
			   T0);
	usher_dispatch_put(f->d, alert("{\"alertname\":\"Lag\",\"instance\":\"a\"}", T0, 0, T0 + S),
			   T0 + S);
	usher_dispatch_tick(f->d, T0 + 29 * S);
	assert_int_equal(f->sink.n, 0);
	assert_int_equal(usher_dispatch_next_ns(f->d), T0 + 30 * S);
	usher_dispatch_tick(f->d, T0 + 30 * S);
	/* one notification per integration of team, both alerts in it */
	assert_int_equal(f->sink.n, 2);
	x = find(&f->sink, "team", 0);
	assert_non_null(x);
	assert_int_equal(json_array_size(json_object_get(x->data, "alerts")), 2);
	assert_string_equal(json_string_value(json_object_get(x->data, "groupKey")),
			    "{}:{alertname=\"Lag\"}");
	/* sorted by instance */
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_array_get(json_object_get(x->data, "alerts"), 0), "labels"),
		"instance")),
	    "a");
	assert_string_equal(json_string_value(json_object_get(x->data, "externalURL")),
			    "http://usher.example");
	assert_string_equal(x->key, "{}:{alertname=\"Lag\"}"); /* the group key */
	sink_clear(&f->sink);
	/* nothing changed: group_interval passes quietly */
	usher_dispatch_put(f->d,
			   alert("{\"alertname\":\"Lag\",\"instance\":\"a\"}", T0, 0, T0 + 60 * S),
			   T0 + 60 * S);
	usher_dispatch_tick(f->d, T0 + 330 * S);
	assert_int_equal(f->sink.n, 0);
	/* a new alert: at the next group_interval */
	usher_dispatch_put(
	    f->d,
	    alert("{\"alertname\":\"Lag\",\"instance\":\"c\"}", T0 + 400 * S, 0, T0 + 400 * S),
	    T0 + 400 * S);
	usher_dispatch_tick(f->d, T0 + 500 * S);
	assert_int_equal(f->sink.n, 0);
	usher_dispatch_tick(f->d, T0 + 630 * S);
	assert_int_equal(f->sink.n, 2);
	assert_int_equal(
	    json_array_size(json_object_get(find(&f->sink, "team", 0)->data, "alerts")), 3);
	sink_clear(&f->sink);
	/* keep them alive (re-sent as Prometheus does), then repeat_interval */
	{
		int64_t t;

		for (t = T0 + 900 * S; t <= T0 + 4 * 3600 * S + 1000 * S; t += 300 * S) {
			usher_dispatch_put(
			    f->d, alert("{\"alertname\":\"Lag\",\"instance\":\"a\"}", T0, 0, t), t);
			usher_dispatch_put(
			    f->d, alert("{\"alertname\":\"Lag\",\"instance\":\"b\"}", T0, 0, t), t);
			usher_dispatch_put(
			    f->d, alert("{\"alertname\":\"Lag\",\"instance\":\"c\"}", T0, 0, t), t);
			usher_dispatch_tick(f->d, t + 30 * S);
			if (t + 30 * S <= T0 + 630 * S + 4 * 3600 * S)
				assert_int_equal(f->sink.n, 0);
		}
	}
	assert_int_equal(f->sink.n, 2);
	sink_clear(&f->sink);
}

static void test_resolution_and_send_resolved(void **state)
{
	struct fixture *f = *state;
	const struct sent *x;

	usher_dispatch_put(f->d, alert("{\"alertname\":\"Disk\"}", T0, 0, T0), T0);
	usher_dispatch_tick(f->d, T0 + 30 * S);
	assert_int_equal(f->sink.n, 2);
	sink_clear(&f->sink);
	usher_dispatch_put(f->d, alert("{\"alertname\":\"Disk\"}", T0, T0 + 100 * S, T0 + 100 * S),
			   T0 + 100 * S);
	usher_dispatch_tick(f->d, T0 + 329 * S);
	assert_int_equal(f->sink.n, 0);
	usher_dispatch_tick(f->d, T0 + 330 * S);
	/* integration 1 has send_resolved: false: logged, not sent */
	assert_int_equal(f->sink.n, 1);
	x = find(&f->sink, "team", 0);
	assert_non_null(x);
	assert_string_equal(json_string_value(json_object_get(x->data, "status")), "resolved");
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(x->data, "alerts"), 0), "endsAt")),
			    "2027-01-15T08:01:40Z");
	sink_clear(&f->sink);
	/* the group is gone, and so is the alert */
	usher_dispatch_tick(f->d, T0 + 630 * S);
	assert_int_equal(f->sink.n, 0);
	assert_int_equal(usher_dispatch_next_ns(f->d), INT64_MAX);
}

static void test_continue_and_receivers(void **state)
{
	struct fixture *f = *state;
	json_t *alerts;

	usher_dispatch_put(f->d, alert("{\"alertname\":\"Down\",\"severity\":\"page\"}", T0, 0, T0),
			   T0);
	usher_dispatch_tick(f->d, T0 + 30 * S);
	/* pager (continue) then quiet, which has no integration: only pager */
	assert_int_equal(f->sink.n, 1);
	assert_int_equal(count_to(&f->sink, "pager", "firing"), 1);
	assert_int_equal(f->sink.flushes, 2);
	assert_string_equal(json_string_value(json_object_get(f->sink.v[0].data, "groupKey")),
			    "{}/{severity=\"page\"}:{alertname=\"Down\"}");
	alerts = usher_dispatch_alerts_json(f->d, NULL, T0 + 31 * S);
	assert_int_equal(json_array_size(alerts), 1);
	assert_int_equal(json_array_size(json_object_get(json_array_get(alerts, 0), "receivers")),
			 2);
	json_decref(alerts);
	sink_clear(&f->sink);
}

static void test_silence(void **state)
{
	struct fixture *f = *state;
	struct usher_error err = {0};
	char id[37], s[48], e[48], body[512];
	json_t *j, *alerts;

	usher_time_format_nano(T0, s, sizeof(s));
	usher_time_format_nano(T0 + 3600 * S, e, sizeof(e));
	snprintf(body, sizeof(body),
		 "{\"matchers\":[{\"name\":\"alertname\",\"value\":\"Noisy\",\"isRegex\":false}],"
		 "\"startsAt\":\"%s\",\"endsAt\":\"%s\",\"createdBy\":\"t\",\"comment\":\"c\"}",
		 s, e);
	j = json_loads(body, 0, NULL);
	assert_int_equal(usher_silences_set_json(f->sil, j, T0, id, &err), USHER_OK);
	json_decref(j);
	usher_dispatch_put(f->d, alert("{\"alertname\":\"Noisy\"}", T0, 0, T0), T0);
	usher_dispatch_put(f->d, alert("{\"alertname\":\"Real\"}", T0, 0, T0), T0);
	usher_dispatch_tick(f->d, T0 + 30 * S);
	assert_int_equal(f->sink.n, 2);
	assert_string_equal(json_string_value(json_object_get(f->sink.v[0].data, "groupKey")),
			    "{}:{alertname=\"Real\"}");
	sink_clear(&f->sink);
	alerts = usher_dispatch_alerts_json(
	    f->d,
	    &(struct usher_am_alert_filter){.active = true, .silenced = false, .inhibited = true},
	    T0 + 31 * S);
	assert_int_equal(json_array_size(alerts), 1);
	json_decref(alerts);
	alerts = usher_dispatch_alerts_json(f->d, NULL, T0 + 31 * S);
	assert_int_equal(json_array_size(alerts), 2);
	json_decref(alerts);
	/* expired: notified at the next group_interval */
	assert_int_equal(usher_silences_expire(f->sil, id, T0 + 60 * S, &err), USHER_OK);
	assert_int_equal(usher_silences_expire(f->sil, id, T0 + 61 * S, &err), USHER_ERR_INVALID);
	usher_dispatch_tick(f->d, T0 + 330 * S);
	assert_int_equal(count_to(&f->sink, "team", "firing"), 2);
	sink_clear(&f->sink);
}

static void test_inhibition(void **state)
{
	struct fixture *f = *state;

	usher_dispatch_put(f->d, alert("{\"alertname\":\"SiteDown\",\"site\":\"eu\"}", T0, 0, T0),
			   T0);
	usher_dispatch_put(
	    f->d, alert("{\"alertname\":\"CheckoutSlow\",\"site\":\"eu\"}", T0, 0, T0), T0);
	usher_dispatch_put(
	    f->d, alert("{\"alertname\":\"CheckoutSlow\",\"site\":\"us\"}", T0, 0, T0), T0);
	usher_dispatch_tick(f->d, T0 + 30 * S);
	/* SiteDown's group, and CheckoutSlow's with only the us alert */
	assert_int_equal(count_to(&f->sink, "team", "firing"), 4);
	{
		int i;

		for (i = 0; i < f->sink.n; i++) {
			json_t *a = json_object_get(f->sink.v[i].data, "alerts");

			assert_int_equal(json_array_size(a), 1);
			if (strcmp(
				json_string_value(json_object_get(
				    json_object_get(json_array_get(a, 0), "labels"), "alertname")),
				"CheckoutSlow") == 0)
				assert_string_equal(
				    json_string_value(json_object_get(
					json_object_get(json_array_get(a, 0), "labels"), "site")),
				    "us");
		}
	}
	sink_clear(&f->sink);
	/* the source resolves: the eu alert is notified next time */
	usher_dispatch_put(
	    f->d,
	    alert("{\"alertname\":\"SiteDown\",\"site\":\"eu\"}", T0, T0 + 40 * S, T0 + 40 * S),
	    T0 + 40 * S);
	usher_dispatch_tick(f->d, T0 + 330 * S);
	{
		int i, eu = 0;

		for (i = 0; i < f->sink.n; i++) {
			json_t *a = json_object_get(f->sink.v[i].data, "alerts"), *x;
			size_t k;

			json_array_foreach(a, k, x)
			{
				json_t *l = json_object_get(x, "labels");

				if (strcmp(json_string_value(json_object_get(l, "alertname")),
					   "CheckoutSlow") == 0 &&
				    strcmp(json_string_value(json_object_get(l, "site")), "eu") ==
					0)
					eu++;
			}
		}
		/* once per integration of team */
		assert_int_equal(eu, 2);
	}
	sink_clear(&f->sink);
}

static void test_nflog_survives_restart(void **state)
{
	struct fixture *f = *state;

	usher_dispatch_put(f->d, alert("{\"alertname\":\"Persist\"}", T0, 0, T0), T0);
	usher_dispatch_tick(f->d, T0 + 30 * S);
	assert_int_equal(f->sink.n, 2);
	sink_clear(&f->sink);
	/* "restart": everything in memory is gone, the store stays */
	close_dispatch(f);
	open_dispatch(f);
	usher_dispatch_put(f->d, alert("{\"alertname\":\"Persist\"}", T0, 0, T0 + 600 * S),
			   T0 + 600 * S);
	usher_dispatch_tick(f->d, T0 + 600 * S + 30 * S);
	assert_int_equal(f->sink.n, 0);
	/* a store failure: nothing recorded, so the next flush tries again */
	usher_dispatch_put(f->d,
			   alert("{\"alertname\":\"Persist2\"}", T0 + 600 * S, 0, T0 + 600 * S),
			   T0 + 600 * S);
	f->sink.fail = 1;
	usher_dispatch_tick(f->d, T0 + 660 * S);
	assert_int_equal(f->sink.n, 0);
	f->sink.fail = 0;
	usher_dispatch_tick(f->d, T0 + 960 * S);
	assert_int_equal(f->sink.n, 2);
	sink_clear(&f->sink);
}

static void test_options_226_1510(void **state)
{
	struct fixture *f = *state;
	struct usher_error err = {0};
	char id[37], s[48], e[48], body[512];
	json_t *j;

	close_dispatch(f);
	usher_config_free(f->cfg);
	f->cfg = load("  send_resolved_silenced: true\n  resolve_immediately: true\n");
	open_dispatch(f);
	usher_dispatch_put(f->d, alert("{\"alertname\":\"Flap\"}", T0, 0, T0), T0);
	usher_dispatch_tick(f->d, T0 + 30 * S);
	assert_int_equal(f->sink.n, 2);
	sink_clear(&f->sink);
	/* silenced after it was notified, then resolved: the notice goes out */
	usher_time_format_nano(T0 + 40 * S, s, sizeof(s));
	usher_time_format_nano(T0 + 3600 * S, e, sizeof(e));
	snprintf(body, sizeof(body),
		 "{\"matchers\":[{\"name\":\"alertname\",\"value\":\"Flap\",\"isRegex\":false}],"
		 "\"startsAt\":\"%s\",\"endsAt\":\"%s\",\"createdBy\":\"t\",\"comment\":\"c\"}",
		 s, e);
	j = json_loads(body, 0, NULL);
	assert_int_equal(usher_silences_set_json(f->sil, j, T0 + 40 * S, id, &err), USHER_OK);
	json_decref(j);
	usher_dispatch_put(f->d, alert("{\"alertname\":\"Flap\"}", T0, T0 + 50 * S, T0 + 50 * S),
			   T0 + 50 * S);
	/* #1510: due at once, not at T0 + 330s */
	assert_int_equal(usher_dispatch_next_ns(f->d), T0 + 50 * S);
	usher_dispatch_tick(f->d, T0 + 50 * S);
	assert_int_equal(count_to(&f->sink, "team", "resolved"), 1);
	sink_clear(&f->sink);
}

static void test_time_intervals(void **state)
{
	struct fixture *f = *state;

	{
		/* a config of its own: muted always, active never, active in 2027 */
		static const char yml[] =
		    "alerting:\n"
		    "  route:\n"
		    "    receiver: team\n"
		    "    group_by: [alertname]\n"
		    "    group_wait: 30s\n"
		    "    routes:\n"
		    "      - {matchers: [t=muted], receiver: team, mute_time_intervals: [always]}\n"
		    "      - {matchers: [t=inactive], receiver: team, active_time_intervals: "
		    "[never]}\n"
		    "      - {matchers: [t=active], receiver: team, active_time_intervals: "
		    "[in-2027]}\n"
		    "  receivers:\n"
		    "    - name: team\n"
		    "      webhook_configs: [{url: 'http://127.0.0.1:1/team'}]\n"
		    "  time_intervals:\n"
		    "    - name: always\n"
		    "      time_intervals: [{times: [{start_time: '00:00', end_time: '24:00'}]}]\n"
		    "    - name: never\n"
		    "      time_intervals: [{years: ['1999']}]\n"
		    "  mute_time_intervals:\n"
		    "    - name: in-2027\n"
		    "      time_intervals: [{years: ['2027']}]\n";
		struct usher_diags diags;
		struct usher_config *cfg = NULL;

		usher_diags_init(&diags);
		assert_int_equal(usher_config_load_text("ti.yml", yml, strlen(yml), &cfg, &diags),
				 USHER_OK);
		usher_diags_free(&diags);
		usher_dispatch_set_config(f->d, cfg, "", T0);
		usher_config_free(cfg);
	}
	/* T0 is in January 2027 */
	usher_dispatch_put(f->d, alert("{\"alertname\":\"M\",\"t\":\"muted\"}", T0, 0, T0), T0);
	usher_dispatch_put(f->d, alert("{\"alertname\":\"I\",\"t\":\"inactive\"}", T0, 0, T0), T0);
	usher_dispatch_put(f->d, alert("{\"alertname\":\"A\",\"t\":\"active\"}", T0, 0, T0), T0);
	usher_dispatch_tick(f->d, T0 + 30 * S);
	assert_int_equal(f->sink.n, 1);
	assert_string_equal(json_string_value(json_object_get(f->sink.v[0].data, "groupKey")),
			    "{}/{t=\"active\"}:{alertname=\"A\"}");
	sink_clear(&f->sink);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_grouping_and_timers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resolution_and_send_resolved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_continue_and_receivers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_silence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inhibition, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nflog_survives_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_options_226_1510, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_time_intervals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
