/* Unit tests of the ECS event model (lib/core/ecs.c): encoding, the action
 * catalogue, label sanitising, event ids, the logger's output hook, and
 * the journald field mapping (lib/logship/journald.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "core/buf.h"
#include "core/ecs.h"
#include "core/log.h"
#include "logship/journald.h"
#include "usher_version.h"

#define TS 1795838956123456789LL /* 2026-11-28T04:09:16.123Z */

static char *encode(const struct usher_log_field *f, size_t n, const struct usher_ecs_meta *m,
		    enum usher_log_level lvl, const char *msg)
{
	struct usher_log_record r = {.ts_ns = TS,
				     .level = lvl,
				     .message = msg,
				     .fields = f,
				     .nfields = n,
				     .service = "usherd",
				     .hostname = "host-1"};
	struct usher_buf b;

	usher_buf_init(&b, 1 << 20);
	assert_int_equal(usher_ecs_encode(&b, &r, m), USHER_OK);
	return usher_buf_take(&b);
}

#define HEAD(lvl, msg)                                                                             \
	"{\"@timestamp\":\"2026-11-28T04:09:16.123Z\",\"log.level\":\"" lvl                        \
	"\",\"message\":\"" msg "\",\"ecs.version\":\"" USHER_ECS_VERSION                          \
	"\",\"service.name\":\"usherd\","                                                          \
	"\"service.version\":\"" USHER_VERSION "\",\"host.hostname\":\"host-1\","                  \
	"\"host.name\":\"host-1\","

static void test_encode_cases(void **state)
{
	static const struct usher_log_field f_reload[] = {
	    USHER_LFS("event.action", "config-reload"),
	    USHER_LFS("event.outcome", "success"),
	    USHER_LFS("file.path", "/etc/usher/usher.yml"),
	};
	static const struct usher_log_field f_probe[] = {
	    USHER_LFS("event.action", "probe-failed"),
	    USHER_LFS("usher.probe.type", "postgres"),
	    USHER_LFI("event.duration", 1500000),
	    USHER_LFD("usher.x", 0.5),
	    USHER_LFB("usher.ok", 0),
	};
	static const struct usher_log_field f_dup[] = {
	    USHER_LFS("usher.a", "first"),
	    USHER_LFS("usher.a", "second"),
	    USHER_LFS("@timestamp", "forged"),
	    USHER_LFS("event.id", "forged"),
	    USHER_LFS("service.name", "other"),
	    USHER_LFS("event.kind", "alert"),
	    USHER_LFS("event.category", "host,process"),
	};
	static const struct usher_log_field f_labels[] = {
	    USHER_LFS("labels.env.name", "prod"), USHER_LFI("labels.shard", 3),
	    USHER_LFB("labels.canary", 1),        USHER_LFS("labels.", "x"),
	    USHER_LFS("labels.a b\"c", "y"),
	};
	static const struct usher_log_field extra[] = {
	    USHER_LFS("labels.site", "eu-1"), USHER_LFS("labels.env_name", "the event's own wins")};
	static const struct usher_ecs_meta meta = {
	    .has_seq = true, .seq = 42, .id = "ID", .pid = 7};
	static const struct usher_ecs_meta with_extra = {.extra = extra, .nextra = 2};
	static const struct {
		const struct usher_log_field *f;
		size_t n;
		const struct usher_ecs_meta *m;
		enum usher_log_level lvl;
		const char *msg, *want;
	} cases[] = {
	    {NULL, 0, NULL, USHER_LOG_INFO, "plain",
	     HEAD("info", "plain") "\"event.dataset\":\"usherd.log\",\"event.kind\":\"event\"}\n"},
	    {f_reload, 3, &meta, USHER_LOG_ERROR, "quote \" and \\ and \n",
	     "{\"@timestamp\":\"2026-11-28T04:09:16.123Z\",\"log.level\":\"error\",\"message\":"
	     "\"quote \\\" and \\\\ and \\n\",\"ecs.version\":\"" USHER_ECS_VERSION "\","
	     "\"service.name\":\"usherd\",\"service.version\":\"" USHER_VERSION "\","
	     "\"host.hostname\":\"host-1\",\"host.name\":\"host-1\",\"process.pid\":7,"
	     "\"event.dataset\":\"usherd.log\",\"event.kind\":\"event\","
	     "\"event.category\":[\"configuration\"],\"event.type\":[\"change\"],"
	     "\"event.action\":\"config-reload\",\"event.outcome\":\"success\","
	     "\"file.path\":\"/etc/usher/usher.yml\",\"event.sequence\":42,\"event.id\":\"ID\"}\n"},
	    {f_probe, 5, NULL, USHER_LOG_WARN, "down",
	     HEAD("warn",
		  "down") "\"event.dataset\":\"usherd.log\",\"event.kind\":\"event\","
			  "\"event.category\":[\"database\"],\"event.type\":[\"error\"],"
			  "\"event.action\":\"probe-failed\",\"usher.probe.type\":\"postgres\","
			  "\"event.duration\":1500000,\"usher.x\":0.5,\"usher.ok\":false}\n"},
	    {f_dup, 7, NULL, USHER_LOG_DEBUG, "dup",
	     "{\"@timestamp\":\"2026-11-28T04:09:16.123Z\",\"log.level\":\"debug\",\"message\":"
	     "\"dup\",\"ecs.version\":\"" USHER_ECS_VERSION "\",\"service.name\":\"other\","
	     "\"service.version\":\"" USHER_VERSION "\",\"host.hostname\":\"host-1\","
	     "\"host.name\":\"host-1\",\"event.dataset\":\"usherd.log\",\"event.kind\":\"alert\","
	     "\"event.category\":[\"host\",\"process\"],\"usher.a\":\"first\"}\n"},
	    {f_labels, 5, &with_extra, USHER_LOG_INFO, "labels",
	     HEAD(
		 "info",
		 "labels") "\"event.dataset\":\"usherd.log\",\"event.kind\":\"event\","
			   "\"labels.env_name\":\"prod\",\"labels.shard\":\"3\",\"labels.canary\":"
			   "\"true\","
			   "\"labels._\":\"x\",\"labels.a_b_c\":\"y\",\"labels.site\":\"eu-1\"}\n"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = encode(cases[i].f, cases[i].n, cases[i].m, cases[i].lvl, cases[i].msg);

		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu:\n got: %s\nwant: %s", i, got, cases[i].want);
		free(got);
	}
}

/* Whatever goes in, out comes one line of valid JSON (UTF-8 included). */
static void test_encode_is_json(void **state)
{
	static const char *const msgs[] = {
	    "caf\xc3\xa9",
	    "bad \xff byte",
	    "trunc \xe2\x82",
	    "overlong \xc0\xaf",
	    "surrogate \xed\xa0\x80",
	    "ctl \x01\x1f\x7f",
	    "emoji \xf0\x9f\x8e\x9f",
	    "",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct usher_log_field f[] = {USHER_LFS("usher.v", msgs[i]),
					      USHER_LFD("usher.nan", 0.0 / 0.0)};
		char *line = encode(f, 2, NULL, USHER_LOG_INFO, msgs[i]);
		json_error_t e;
		json_t *j;

		assert_non_null(strchr(line, '\n'));
		assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
		j = json_loads(line, JSON_REJECT_DUPLICATES, &e);
		if (!j)
			fail_msg("message %zu: not JSON (%s): %s", i, e.text, line);
		assert_true(json_is_null(json_object_get(j, "usher.nan")));
		json_decref(j);
		free(line);
	}
}

static void test_classify(void **state)
{
	static const struct {
		const char *action, *ptype, *kind, *cat, *type;
	} cases[] = {
	    {"listening", NULL, "event", "network", "start"},
	    {"config-reload", NULL, "event", "configuration", "change"},
	    {"config-invalid", NULL, "event", "configuration", "info"},
	    {"probe-failed", "http", "event", "web", "error"},
	    {"probe-failed", "redis", "event", "database", "error"},
	    {"probe-failed", "host", "event", "host", "info"},
	    {"probe-failed", NULL, "event", "network", "info"},
	    {"probe-recovered", "postgres", "event", "database", "info"},
	    {"no-such-action", NULL, "event", NULL, NULL},
	    {NULL, NULL, "event", NULL, NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_ecs_class c = usher_ecs_classify(cases[i].action, cases[i].ptype);

		assert_string_equal(c.kind, cases[i].kind);
		if (cases[i].cat)
			assert_string_equal(c.category, cases[i].cat);
		else
			assert_null(c.category);
		if (cases[i].type)
			assert_string_equal(c.type, cases[i].type);
		else
			assert_null(c.type);
	}
}

static void test_label_key(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"env", "env"},       {"env.name", "env_name"}, {"a-b_c9", "a-b_c9"}, {"", "_"},
	    {"sp ace", "sp_ace"}, {"q\"uote", "q_uote"},    {"k\xc3\xa9", "k__"}, {"*?", "__"},
	};
	char out[16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(usher_ecs_label_key(cases[i].in, out, sizeof(out)),
				    cases[i].out);
	/* cut to fit */
	assert_string_equal(usher_ecs_label_key("abcdefghijklmnopqrstuvwxyz", out, 6), "abcde");
}

static void test_event_id(void **state)
{
	char a[USHER_ECS_ID_LEN + 1], b[USHER_ECS_ID_LEN + 1];
	const char *p;

	(void)state;
	usher_ecs_event_id("h", "usherd", TS, 1, a);
	usher_ecs_event_id("h", "usherd", TS, 1, b);
	assert_string_equal(a, b); /* deterministic */
	assert_int_equal(strlen(a), USHER_ECS_ID_LEN);
	for (p = a; *p; p++)
		assert_true(
		    strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
	usher_ecs_event_id("h", "usherd", TS, 2, b);
	assert_string_not_equal(a, b);
	usher_ecs_event_id("h2", "usherd", TS, 1, b);
	assert_string_not_equal(a, b);
	usher_ecs_event_id("h", "usher", TS, 1, b);
	assert_string_not_equal(a, b);
	usher_ecs_event_id("h", "usherd", TS + 1, 1, b);
	assert_string_not_equal(a, b);
	/* "ab"+"c" is not "a"+"bc" */
	usher_ecs_event_id("ab", "c", TS, 1, a);
	usher_ecs_event_id("a", "bc", TS, 1, b);
	assert_string_not_equal(a, b);
}

static void test_text(void **state)
{
	struct usher_log_field f[] = {USHER_LFS("event.action", "listening"),
				      USHER_LFS("usher.s", "two words"),
				      USHER_LFI("server.port", 80)};
	struct usher_log_record r = {.ts_ns = TS,
				     .level = USHER_LOG_WARN,
				     .message = "hello",
				     .fields = f,
				     .nfields = 3,
				     .service = "usherd"};
	struct usher_buf b;

	(void)state;
	usher_buf_init(&b, 4096);
	assert_int_equal(usher_text_encode(&b, &r), USHER_OK);
	assert_string_equal(usher_buf_str(&b),
			    "2026-11-28T04:09:16.123Z warn  hello event.action=listening "
			    "usher.s=\"two words\" server.port=80\n");
	usher_buf_free(&b);
}

struct captured {
	int n;
	size_t nfields;
	char msg[64];
	char hostname[64];
};

static void capture(void *arg, const struct usher_log_record *r)
{
	struct captured *c = arg;

	c->n++;
	c->nfields = r->nfields;
	snprintf(c->msg, sizeof(c->msg), "%s", r->message);
	snprintf(c->hostname, sizeof(c->hostname), "%s", r->hostname ? r->hostname : "");
}

static void test_output_hook(void **state)
{
	struct usher_log *l = usher_log_new(-1, USHER_LOG_FORMAT_ECS, USHER_LOG_INFO, "t");
	struct captured c = {0};
	struct usher_log_field f[] = {USHER_LFS("a.b", "x"), USHER_LFS("a.c", NULL),
				      USHER_LFI("a.d", 1)};

	(void)state;
	usher_log_set_output(l, capture, &c);
	usher_log_event(l, USHER_LOG_INFO, f, 3, "n=%d", 5);
	usher_log_event(l, USHER_LOG_DEBUG, f, 3, "filtered by level");
	assert_int_equal(c.n, 1);
	assert_int_equal(c.nfields, 2); /* the NULL string is left out */
	assert_string_equal(c.msg, "n=5");
	assert_string_equal(c.hostname, usher_log_hostname(l));
	usher_log_set_output(l, NULL, NULL);
	usher_log_free(l);
}

static void test_journald_names(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"event.action", "EVENT_ACTION"},
	    {"usher.probe.name", "USHER_PROBE_NAME"},
	    {"@timestamp", "TIMESTAMP"},
	    {"_private", "PRIVATE"},
	    {"9lives", "F9LIVES"},
	    {"a-b.c", "A_B_C"},
	    {"...", ""},
	};
	char out[80];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		usher_journald_field_name(cases[i].in, out, sizeof(out));
		assert_string_equal(out, cases[i].out);
	}
	usher_journald_field_name(
	    "a.very.long.key.that.goes.on.and.on.and.on.far.past.sixty.four.chars", out,
	    sizeof(out));
	assert_int_equal(strlen(out), 64);
}

static bool has_iov(const struct iovec *iov, size_t n, const char *want)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (iov[i].iov_len == strlen(want) &&
		    memcmp(iov[i].iov_base, want, iov[i].iov_len) == 0)
			return true;
	return false;
}

static void test_journald_encode(void **state)
{
	struct usher_log_field f[] = {
	    USHER_LFS("event.action", "probe-failed"),
	    USHER_LFS("usher.probe.type", "http"),
	    USHER_LFS("error.message", "line one\nline two"),
	    USHER_LFI("event.duration", 12),
	    USHER_LFS("labels.env.name", "prod"),
	    USHER_LFB("usher.flag", 1),
	};
	struct usher_log_field extra[] = {USHER_LFS("labels.site", "eu-1")};
	struct usher_log_record r = {.ts_ns = TS,
				     .level = USHER_LOG_WARN,
				     .message = "msg",
				     .fields = f,
				     .nfields = 6,
				     .service = "usherd",
				     .hostname = "h"};
	struct usher_log_entry e = {.rec = &r, .id = "ID22", .seq = 9, .extra = extra, .nextra = 1};
	struct iovec iov[USHER_JOURNALD_MAX_FIELDS];
	struct usher_buf b;
	size_t n = 0;
	static const char *const want[] = {
	    "MESSAGE=msg",
	    "PRIORITY=4",
	    "SYSLOG_IDENTIFIER=usherd",
	    "LOG_LEVEL=warn",
	    "ECS_VERSION=" USHER_ECS_VERSION,
	    "EVENT_KIND=event",
	    "EVENT_CATEGORY=web",
	    "EVENT_TYPE=error",
	    "EVENT_ACTION=probe-failed",
	    "USHER_PROBE_TYPE=http",
	    "ERROR_MESSAGE=line one\nline two",
	    "EVENT_DURATION=12",
	    "LABELS_ENV_NAME=prod",
	    "USHER_FLAG=true",
	    "LABELS_SITE=eu-1",
	    "EVENT_ID=ID22",
	    "EVENT_SEQUENCE=9",
	    "SERVICE_NAME=usherd",
	};
	size_t i;

	(void)state;
	usher_buf_init(&b, 65536);
	assert_int_equal(usher_journald_encode(&e, &b, iov, USHER_JOURNALD_MAX_FIELDS, &n),
			 USHER_OK);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!has_iov(iov, n, want[i]))
			fail_msg("no journal field %s", want[i]);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	/* too few slots is an error, not an overflow */
	assert_int_equal(usher_journald_encode(&e, &b, iov, 3, &n), USHER_ERR_TOOBIG);
	usher_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encode_cases),    cmocka_unit_test(test_encode_is_json),
	    cmocka_unit_test(test_classify),        cmocka_unit_test(test_label_key),
	    cmocka_unit_test(test_event_id),        cmocka_unit_test(test_text),
	    cmocka_unit_test(test_output_hook),     cmocka_unit_test(test_journald_names),
	    cmocka_unit_test(test_journald_encode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
