/* Silences as Alertmanager keeps them: validation, in-place updates or
 * expire-and-recreate (canUpdate), states, the API's filter and order,
 * persistence across a reopen of the state store, garbage collection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify/silence.h"

#define S  1000000000LL
#define T0 (1800000000LL * S)

static json_t *body(const char *id, const char *matchers, int64_t starts, int64_t ends)
{
	char s[48], e[48], buf[1024];
	json_t *j;

	usher_time_format_nano(starts, s, sizeof(s));
	usher_time_format_nano(ends, e, sizeof(e));
	snprintf(buf, sizeof(buf),
		 "{%s%s%s\"matchers\":%s,\"startsAt\":\"%s\",\"endsAt\":\"%s\","
		 "\"createdBy\":\"ops\",\"comment\":\"why\"}",
		 id ? "\"id\":\"" : "", id ? id : "", id ? "\"," : "", matchers, s, e);
	j = json_loads(buf, 0, NULL);
	assert_non_null(j);
	return j;
}

#define M_A   "[{\"name\":\"alertname\",\"value\":\"A\",\"isRegex\":false}]"
#define M_B   "[{\"name\":\"alertname\",\"value\":\"B\",\"isRegex\":false}]"
#define M_RE  "[{\"name\":\"instance\",\"value\":\"web-.*\",\"isRegex\":true,\"isEqual\":true}]"
#define M_ALL "[{\"name\":\"x\",\"value\":\".*\",\"isRegex\":true}]"

static enum usher_err set(struct usher_silences *ss, json_t *b, int64_t now, char id[37],
			  struct usher_error *err)
{
	enum usher_err rc;

	usher_error_clear(err);
	rc = usher_silences_set_json(ss, b, now, id, err);
	json_decref(b);
	return rc;
}

static const char *state(struct usher_silences *ss, const char *id, int64_t now)
{
	static char out[16];
	json_t *j = usher_silences_get_json(ss, id, now);

	assert_non_null(j);
	snprintf(out, sizeof(out), "%s",
		 json_string_value(json_object_get(json_object_get(j, "status"), "state")));
	json_decref(j);
	return out;
}

static void test_validation(void **st)
{
	struct usher_silences *ss;
	struct usher_error err;
	char id[37];

	(void)st;
	assert_int_equal(usher_silences_new(NULL, &ss, &err), USHER_OK);
	assert_int_equal(set(ss, body(NULL, "[]", T0, T0 + 60 * S), T0, id, &err),
			 USHER_ERR_INVALID);
	assert_non_null(strstr(err.msg, "at least one matcher"));
	assert_int_equal(set(ss, body(NULL, M_ALL, T0, T0 + 60 * S), T0, id, &err),
			 USHER_ERR_INVALID);
	assert_non_null(strstr(err.msg, "empty string"));
	assert_int_equal(set(ss, body(NULL, M_A, T0 - 120 * S, T0 - 60 * S), T0, id, &err),
			 USHER_ERR_INVALID);
	assert_non_null(strstr(err.msg, "in the past"));
	assert_int_equal(set(ss, body(NULL, M_A, T0 + 60 * S, T0 + 30 * S), T0, id, &err),
			 USHER_ERR_INVALID);
	assert_int_equal(set(ss, body("no-such", M_A, T0, T0 + 60 * S), T0, id, &err),
			 USHER_ERR_NOTFOUND);
	usher_silences_free(ss);
}

static void test_updates(void **st)
{
	struct usher_silences *ss;
	struct usher_error err;
	char id[37], id2[37], id3[37];
	json_t *list;

	(void)st;
	assert_int_equal(usher_silences_new(NULL, &ss, &err), USHER_OK);
	/* a start in the past becomes now */
	assert_int_equal(set(ss, body(NULL, M_A, T0 - 60 * S, T0 + 3600 * S), T0, id, &err),
			 USHER_OK);
	assert_string_equal(state(ss, id, T0), "active");
	/* active, same matchers, same start, later end: in place */
	assert_int_equal(set(ss, body(id, M_A, T0, T0 + 7200 * S), T0 + 10 * S, id2, &err),
			 USHER_OK);
	assert_string_equal(id2, id);
	/* other matchers: the old one expires, a new one is made */
	assert_int_equal(set(ss, body(id, M_B, T0, T0 + 7200 * S), T0 + 20 * S, id3, &err),
			 USHER_OK);
	assert_string_not_equal(id3, id);
	assert_string_equal(state(ss, id, T0 + 21 * S), "expired");
	assert_string_equal(state(ss, id3, T0 + 21 * S), "active");
	/* pending until it starts */
	assert_int_equal(
	    set(ss, body(NULL, M_RE, T0 + 600 * S, T0 + 900 * S), T0 + 30 * S, id2, &err),
	    USHER_OK);
	assert_string_equal(state(ss, id2, T0 + 30 * S), "pending");
	/* order: active (by end), pending (by start), expired (newest end first) */
	list = usher_silences_list_json(ss, NULL, T0 + 40 * S);
	assert_int_equal(json_array_size(list), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")), id3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "id")), id2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "id")), id);
	json_decref(list);
	/* expire: twice is an error; a pending one ends before it began */
	assert_int_equal(usher_silences_expire(ss, id2, T0 + 50 * S, &err), USHER_OK);
	assert_string_equal(state(ss, id2, T0 + 50 * S), "expired");
	usher_error_clear(&err);
	assert_int_equal(usher_silences_expire(ss, id2, T0 + 51 * S, &err), USHER_ERR_INVALID);
	assert_int_equal(usher_silences_expire(ss, "nope", T0, &err), USHER_ERR_NOTFOUND);
	/* gc: expired more than the retention ago */
	usher_silences_gc(ss, T0 + 7200 * S + 3600 * S, 3600 * 1000);
	list = usher_silences_list_json(ss, NULL, T0);
	assert_int_equal(json_array_size(list), 1); /* only id3, ending at T0+2h */
	json_decref(list);
	usher_silences_free(ss);
}

static void test_filter_and_mutes(void **st)
{
	struct usher_silences *ss;
	struct usher_error err;
	struct usher_am_matchers f = {0};
	struct usher_am_labels l = {0};
	char id[37], idre[37];
	json_t *j;

	(void)st;
	assert_int_equal(usher_silences_new(NULL, &ss, &err), USHER_OK);
	assert_int_equal(set(ss, body(NULL, M_A, T0, T0 + 3600 * S), T0, id, &err), USHER_OK);
	assert_int_equal(set(ss, body(NULL, M_RE, T0, T0 + 3600 * S), T0, idre, &err), USHER_OK);
	/* the API filter matches silences' matchers by name and value */
	assert_int_equal(usher_am_matchers_parse(&f, "alertname=A", NULL), USHER_OK);
	j = usher_silences_list_json(ss, &f, T0);
	assert_int_equal(json_array_size(j), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "id")), id);
	json_decref(j);
	usher_am_matchers_free(&f);
	/* which silences mute a label set */
	usher_am_labels_set(&l, "alertname", "A");
	usher_am_labels_set(&l, "instance", "web-3");
	j = usher_silences_mutes(ss, &l, T0 + S);
	assert_int_equal(json_array_size(j), 2);
	json_decref(j);
	usher_am_labels_set(&l, "instance", "db-1");
	j = usher_silences_mutes(ss, &l, T0 + S);
	assert_int_equal(json_array_size(j), 1);
	json_decref(j);
	usher_am_labels_free(&l);
	usher_silences_free(ss);
}

static void test_persistence(void **st)
{
	char dir[] = "/tmp/usher-silence-XXXXXX", path[128];
	struct usher_store *store;
	struct usher_silences *ss;
	struct usher_error err = {0};
	char id[37];
	json_t *j;

	(void)st;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(usher_store_open(dir, &store, &err), USHER_OK);
	assert_int_equal(usher_silences_new(store, &ss, &err), USHER_OK);
	assert_int_equal(set(ss, body(NULL, M_RE, T0, T0 + 3600 * S + 123), T0, id, &err),
			 USHER_OK);
	usher_silences_free(ss);
	usher_store_close(store);
	assert_int_equal(usher_store_open(dir, &store, &err), USHER_OK);
	assert_int_equal(usher_silences_new(store, &ss, &err), USHER_OK);
	j = usher_silences_get_json(ss, id, T0);
	assert_non_null(j);
	/* nanoseconds survive */
	assert_string_equal(json_string_value(json_object_get(j, "endsAt")),
			    "2027-01-15T09:00:00.000000123Z");
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(j, "matchers"), 0), "value")),
			    "web-.*");
	json_decref(j);
	usher_silences_free(ss);
	usher_store_close(store);
	snprintf(path, sizeof(path), "%s/usher.db", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/usher.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/usher.db-shm", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_validation),
	    cmocka_unit_test(test_updates),
	    cmocka_unit_test(test_filter_and_mutes),
	    cmocka_unit_test(test_persistence),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
