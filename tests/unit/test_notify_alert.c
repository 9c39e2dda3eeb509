/* The alert model and notification data against what a real Alertmanager
 * (0.25) sent: fingerprints, group keys and the webhook version-4 body,
 * field for field (tests/conformance data in /work/shared/conformance and
 * the copy under tests/data/alertmanager). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/mem.h"
#include "notify/alert.h"
#include "notify/alertingconf.h"
#include "notify/dispatch.h"
#include "notify/route.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = usher_malloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* alertmanager.yml of the capture, nested under alerting:. */
static struct usher_config *load_capture_config(void)
{
	char *yml = slurp(USHER_TEST_DATA "/alertmanager/alertmanager.yml"), *p;
	char *text = usher_malloc(2 * strlen(yml) + 64), *o = text;
	struct usher_diags diags;
	struct usher_config *cfg = NULL;

	o += snprintf(o, 32, "alerting:\n  ");
	for (p = yml; *p; p++) {
		*o++ = *p;
		if (*p == '\n' && p[1]) {
			*o++ = ' ';
			*o++ = ' ';
		}
	}
	*o = '\0';
	usher_diags_init(&diags);
	if (usher_config_load_text("capture.yml", text, strlen(text), &cfg, &diags)) {
		char first[512];

		fprintf(stderr, "%s\n", usher_diags_first(&diags, first, sizeof(first)));
		fail();
	}
	usher_diags_free(&diags);
	free(yml);
	free(text);
	return cfg;
}

/* The next line of *p (NUL-terminated in place), or NULL at the end. */
static char *next_line(char **p)
{
	char *l = *p, *nl;

	if (!*l)
		return NULL;
	nl = strchr(l, '\n');
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = l + strlen(l);
	}
	return l;
}

static void test_time_format(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"2026-11-28T03:02:47.69997878Z", "2026-11-28T03:02:47.69997878Z"},
	    {"2026-11-28T03:03:12Z", "2026-11-28T03:03:12Z"},
	    {"2026-11-28T04:03:12.500+01:00", "2026-11-28T03:03:12.5Z"},
	    {"0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"},
	    {"1970-01-01T00:00:00.000000001Z", "1970-01-01T00:00:00.000000001Z"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ns;
		char out[48];

		assert_int_equal(usher_time_parse_rfc3339(cases[i].in, &ns), USHER_OK);
		usher_time_format_nano(ns, out, sizeof(out));
		assert_string_equal(out, cases[i].out);
	}
	{
		int64_t ns;

		assert_int_not_equal(usher_time_parse_rfc3339("2026-13-01T00:00:00Z", &ns),
				     USHER_OK);
		assert_int_not_equal(usher_time_parse_rfc3339("2026-11-28 03:00:00Z", &ns),
				     USHER_OK);
		assert_int_not_equal(usher_time_parse_rfc3339("2026-11-28T03:00:00", &ns),
				     USHER_OK);
	}
}

static void test_go_quote(void **state)
{
	struct usher_am_labels l = {0};
	char *s;

	(void)state;
	usher_am_labels_set(&l, "b", "x\"y\\z\n");
	usher_am_labels_set(&l, "a", "é\x01");
	usher_am_labels_set(&l, "c", "");
	s = usher_am_labels_string(&l);
	assert_string_equal(s, "{a=\"é\\x01\", b=\"x\\\"y\\\\z\\n\"}");
	free(s);
	usher_am_labels_free(&l);
}

/* Every captured webhook body: the fingerprint of each alert, the group
 * key from routing the alert with the same config, and the whole body as
 * usher builds it (the pager body shows max_alerts truncation, which is
 * the webhook integration's: there only the key and fingerprints). */
static void test_capture(void **state)
{
	struct usher_config *cfg = load_capture_config();
	char *text = slurp(USHER_TEST_DATA "/alertmanager/webhook-v4-captured.jsonl"), *line, *save;
	int n = 0;

	(void)state;
	for (save = text; (line = next_line(&save));) {
		json_t *want = json_loads(line, 0, NULL), *ja, *got;
		struct usher_am_alert *alerts[16];
		const struct usher_route *routes[4];
		struct usher_am_labels gl = {0};
		size_t i, na;
		char *key, *a, *b;
		int64_t now = 0;

		assert_non_null(want);
		ja = json_object_get(want, "alerts");
		na = json_array_size(ja);
		assert_true(na > 0 && na < 16);
		for (i = 0; i < na; i++) {
			json_t *aj = json_array_get(ja, i), *post = json_deep_copy(aj);
			struct usher_error err = {0};
			char fp[17];

			json_object_del(post, "fingerprint");
			json_object_del(post, "status");
			if (strcmp(json_string_value(json_object_get(aj, "status")), "firing") == 0)
				json_object_del(post, "endsAt");
			assert_int_equal(
			    usher_time_parse_rfc3339(
				json_string_value(json_object_get(aj, "startsAt")), &now),
			    USHER_OK);
			now += 60LL * 1000000000;
			alerts[i] = usher_am_alert_from_json(post, now, 5 * 60 * 1000, &err);
			if (!alerts[i])
				fprintf(stderr, "%s\n", err.msg);
			assert_non_null(alerts[i]);
			usher_fp_format(alerts[i]->fp, fp);
			assert_string_equal(fp,
					    json_string_value(json_object_get(aj, "fingerprint")));
			json_decref(post);
		}
		assert_int_equal(
		    usher_route_match(cfg->alerting->route, &alerts[0]->labels, routes, 4), 1);
		usher_route_group_labels(routes[0], &alerts[0]->labels, &gl);
		key = usher_route_group_key(routes[0], &gl);
		assert_string_equal(key, json_string_value(json_object_get(want, "groupKey")));
		if (json_integer_value(json_object_get(want, "truncatedAlerts")) == 0) {
			got = usher_notification_data(
			    routes[0]->receiver, key, &gl, alerts, na,
			    json_string_value(json_object_get(want, "externalURL")), now);
			a = json_dumps(got, JSON_COMPACT | JSON_PRESERVE_ORDER);
			b = json_dumps(want, JSON_COMPACT | JSON_PRESERVE_ORDER);
			assert_string_equal(a, b);
			free(a);
			free(b);
			json_decref(got);
		}
		free(key);
		usher_am_labels_free(&gl);
		for (i = 0; i < na; i++)
			usher_am_alert_free(alerts[i]);
		json_decref(want);
		n++;
	}
	assert_int_equal(n, 4);
	free(text);
	usher_config_free(cfg);
}

static void test_post_validation(void **state)
{
	static const char *const bad[] = {
	    "{}",
	    "{\"labels\":{}}",
	    "{\"labels\":{\"0bad\":\"x\"}}",
	    "{\"labels\":{\"a\":1}}",
	    "{\"labels\":{\"a\":\"b\"},\"startsAt\":\"yesterday\"}",
	    "{\"labels\":{\"a\":\"b\"},\"startsAt\":\"2026-11-28T03:00:00Z\","
	    "\"endsAt\":\"2026-11-28T02:00:00Z\"}",
	    "[]",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		struct usher_error err = {0};

		assert_non_null(j);
		assert_null(usher_am_alert_from_json(j, 1000, 1000, &err));
		assert_true(err.msg[0] != '\0');
		json_decref(j);
	}
	{
		json_t *j = json_loads("{\"labels\":{\"a\":\"b\"}}", 0, NULL);
		struct usher_error err = {0};
		struct usher_am_alert *a = usher_am_alert_from_json(j, 5000000000LL, 1000, &err);

		assert_non_null(a);
		assert_int_equal(a->starts_at, 5000000000LL);
		assert_int_equal(a->ends_at, 6000000000LL);
		assert_true(a->timeout);
		assert_false(usher_am_alert_resolved(a, 5500000000LL));
		assert_true(usher_am_alert_resolved(a, 6000000000LL));
		usher_am_alert_free(a);
		json_decref(j);
	}
}

static void test_merge(void **state)
{
	json_t *j1 =
	    json_loads("{\"labels\":{\"a\":\"b\"},\"startsAt\":\"2026-11-28T03:00:00Z\"}", 0, NULL);
	json_t *j2 = json_loads("{\"labels\":{\"a\":\"b\"},\"startsAt\":\"2026-11-28T03:01:00Z\","
				"\"endsAt\":\"2026-11-28T03:02:00Z\"}",
				0, NULL);
	struct usher_error err = {0};
	int64_t t0;
	struct usher_am_alert *a, *b;
	char s[48];

	(void)state;
	usher_time_parse_rfc3339("2026-11-28T03:00:30Z", &t0);
	a = usher_am_alert_from_json(j1, t0, 300000, &err);
	b = usher_am_alert_from_json(j2, t0 + 1000, 300000, &err);
	assert_non_null(a);
	assert_non_null(b);
	usher_am_alert_merge(a, b, t0 + 1000);
	usher_time_format_nano(a->starts_at, s, sizeof(s));
	assert_string_equal(s, "2026-11-28T03:00:00Z");
	usher_time_format_nano(a->ends_at, s, sizeof(s));
	assert_string_equal(s, "2026-11-28T03:02:00Z");
	usher_am_alert_free(a);
	json_decref(j1);
	json_decref(j2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time_format), cmocka_unit_test(test_go_quote),
	    cmocka_unit_test(test_capture),     cmocka_unit_test(test_post_validation),
	    cmocka_unit_test(test_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
