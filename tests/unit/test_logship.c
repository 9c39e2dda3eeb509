/* Unit tests of lib/logship: the logging.sinks config, the _bulk response
 * reader, backoff, the shipper's delivery rules against a scripted fake
 * transport (retries, dead letters, replay after a restart), and logship
 * itself with a file sink (numbering, reopen). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/ecs.h"
#include "core/timeutil.h"
#include "logship/bulkresp.h"
#include "logship/logship.h"
#include "logship/shipper.h"
#include "logship/sink.h"

static void rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		char p[1024];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_rf(p);
		else
			unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static void test_sinks_config(void **state)
{
	static const struct {
		const char *yaml;
		const char *error; /* NULL: valid */
	} cases[] = {
	    {"logging: {level: info}\n", NULL},
	    {"logging:\n  sinks:\n    - {type: stdout}\n    - {type: file, path: /tmp/x.log}\n"
	     "    - {type: journald}\n"
	     "    - {type: elasticsearch, url: [\"http://a:9200\", \"https://b:9200/\"], "
	     "data_stream: logs-usher-default, api_key: k}\n"
	     "    - {type: logstash, address: \"ls:5044\"}\n",
	     NULL},
	    {"logging:\n  sinks:\n    - {type: elasticsearch, url: \"http://a:9200\", index: "
	     "usher, "
	     "username: u, password: p, batch_max_bytes: 1MiB, flush_interval: 500ms, "
	     "spool_max_bytes: 10MiB}\n",
	     NULL},
	    {"logging:\n  sinks:\n    - {type: kafka}\n", "unknown log sink type \"kafka\""},
	    {"logging:\n  sinks:\n    - {path: /x}\n", "missing required key \"type\""},
	    {"logging:\n  sinks:\n    - {type: file}\n", "path"},
	    {"logging:\n  sinks:\n    - {type: stdout}\n    - {type: stdout}\n",
	     "duplicate sink name \"stdout\""},
	    {"logging:\n  sinks:\n    - {type: elasticsearch}\n", "url"},
	    {"logging:\n  sinks:\n    - {type: elasticsearch, url: \"ftp://a\"}\n",
	     "expected http:// or https://"},
	    {"logging:\n  sinks:\n    - {type: elasticsearch, url: \"http://a\", index: a, "
	     "data_stream: b}\n",
	     "exclude each other"},
	    {"logging:\n  sinks:\n    - {type: elasticsearch, url: \"http://a\", index: Usher}\n",
	     "not a valid index"},
	    {"logging:\n  sinks:\n    - {type: elasticsearch, url: \"http://a\", username: u}\n",
	     "username and password go together"},
	    {"logging:\n  sinks:\n    - {type: elasticsearch, url: \"http://a\", username: u, "
	     "password: p, api_key: k}\n",
	     "api_key and username/password"},
	    {"logging:\n  sinks:\n    - {type: elasticsearch, url: \"http://a\", flush: 1s}\n",
	     "flush"},
	    {"logging:\n  sinks:\n    - {type: logstash, address: nohost}\n", "expected host:port"},
	    {"logging:\n  sinks:\n    - {type: stdout, name: \"bad name\"}\n", "invalid sink name"},
	    {"logging:\n  sinks: {type: stdout}\n", "expected a list"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_diags d;
		struct usher_config *cfg = NULL;
		enum usher_err rc;
		char first[1024];

		usher_diags_init(&d);
		rc =
		    usher_config_load_text("t.yml", cases[i].yaml, strlen(cases[i].yaml), &cfg, &d);
		if (!cases[i].error && rc)
			fail_msg("case %zu: unexpected error: %s", i,
				 usher_diags_first(&d, first, sizeof(first)));
		if (cases[i].error) {
			if (!rc)
				fail_msg("case %zu: accepted, want an error with \"%s\"", i,
					 cases[i].error);
			usher_diags_first(&d, first, sizeof(first));
			if (!strstr(first, cases[i].error))
				fail_msg("case %zu: error \"%s\" does not say \"%s\"", i, first,
					 cases[i].error);
		}
		usher_config_free(cfg);
		usher_diags_free(&d);
	}
}

static void test_bulk_response(void **state)
{
	static const struct {
		const char *body;
		size_t expect;
		enum usher_err rc;
		int status1;
		const char *type1;
	} cases[] = {
	    {"{\"took\":3,\"errors\":false,\"items\":[{\"create\":{\"_id\":\"a\",\"status\":201}},"
	     "{\"create\":{\"status\":201}}]}",
	     2, USHER_OK, 201, ""},
	    {"{\"errors\":true,\"items\":[{\"create\":{\"status\":400,\"error\":{\"type\":"
	     "\"mapper_parsing_exception\",\"reason\":\"failed to parse [x]\"}}}]}",
	     1, USHER_OK, 400, "mapper_parsing_exception"},
	    {"{\"errors\":true,\"items\":[{\"index\":{\"status\":409,\"error\":\"conflict\"}}]}", 1,
	     USHER_OK, 409, ""},
	    {"{\"errors\":false,\"items\":[]}", 1, USHER_ERR_PROTOCOL, 0, NULL},
	    {"{\"errors\":false}", 0, USHER_ERR_PROTOCOL, 0, NULL},
	    {"[]", 0, USHER_ERR_PROTOCOL, 0, NULL},
	    {"not json", 0, USHER_ERR_PROTOCOL, 0, NULL},
	    {"{\"errors\":false,\"items\":[{\"create\":{\"status\":\"201\"}}]}", 1,
	     USHER_ERR_PROTOCOL, 0, NULL},
	    {"{\"errors\":false,\"items\":[{\"create\":{\"status\":99}}]}", 1, USHER_ERR_PROTOCOL,
	     0, NULL},
	    {"{\"errors\":false,\"items\":[{\"a\":{\"status\":201},\"b\":{}}]}", 1,
	     USHER_ERR_PROTOCOL, 0, NULL},
	    {"{\"errors\":false,\"items\":[17]}", 1, USHER_ERR_PROTOCOL, 0, NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_bulk_result r;
		struct usher_error err;
		enum usher_err rc;

		usher_error_clear(&err);
		rc = usher_bulk_response_parse(cases[i].body, strlen(cases[i].body),
					       cases[i].expect, &r, &err);
		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].rc, err.msg);
		if (!rc) {
			assert_int_equal(r.n, cases[i].expect);
			assert_int_equal(r.items[0].status, cases[i].status1);
			assert_string_equal(r.items[0].type, cases[i].type1);
		}
		usher_bulk_result_free(&r);
	}
	assert_int_equal(usher_bulk_item_state(201), USHER_SHIP_DELIVERED);
	assert_int_equal(usher_bulk_item_state(200), USHER_SHIP_DELIVERED);
	assert_int_equal(usher_bulk_item_state(409), USHER_SHIP_DELIVERED);
	assert_int_equal(usher_bulk_item_state(429), USHER_SHIP_RETRY);
	assert_int_equal(usher_bulk_item_state(500), USHER_SHIP_RETRY);
	assert_int_equal(usher_bulk_item_state(503), USHER_SHIP_RETRY);
	assert_int_equal(usher_bulk_item_state(408), USHER_SHIP_RETRY);
	assert_int_equal(usher_bulk_item_state(400), USHER_SHIP_DEAD);
	assert_int_equal(usher_bulk_item_state(404), USHER_SHIP_DEAD);
}

static void test_backoff(void **state)
{
	uint64_t rnd = 12345;
	unsigned a;
	int i;

	(void)state;
	for (i = 0; i < 200; i++) {
		int64_t d = 250;

		for (a = 1; a <= 12; a++) {
			int64_t b = usher_ship_backoff_ms(a, 30000, &rnd);

			assert_true(b >= d / 2 && b <= d); /* jitter in the upper half */
			d = d * 2 > 30000 ? 30000 : d * 2;
		}
	}
}

/* A scripted transport: each call takes the next plan (a status for every
 * pending item, or a whole failure), and remembers every id it got. */
struct fake {
	const int *plan; /* per call: 0 whole failure, else the status for all; -1: alternate */
	size_t nplan, calls;
	char seen[4096][24];
	size_t nseen;
	int delivered_once[4096];
};

static enum usher_err fake_send(void *arg, struct usher_ship_item *items, size_t n,
				const atomic_bool *stop, struct usher_error *err)
{
	struct fake *f = arg;
	int plan = f->calls < f->nplan ? f->plan[f->calls] : 201;
	size_t i, k = 0;

	(void)stop;
	f->calls++;
	if (plan == 0)
		return usher_fail(err, USHER_ERR_NETWORK, "scripted failure");
	for (i = 0; i < n; i++) {
		int status = plan;

		if (items[i].state != USHER_SHIP_PENDING)
			continue;
		if (plan == -1) /* alternate: ok, 429, ok, 400, ... */
			status = (k % 4 == 1) ? 429 : (k % 4 == 3) ? 400 : 201;
		k++;
		if (f->nseen < 4096)
			snprintf(f->seen[f->nseen++], sizeof(f->seen[0]), "%.*s",
				 (int)items[i].id_len, items[i].id);
		items[i].status = status;
		items[i].state = usher_bulk_item_state(status);
		if (items[i].state == USHER_SHIP_DEAD) {
			items[i].err_type = "mapper_parsing_exception";
			items[i].err_reason = "scripted";
		}
	}
	return USHER_OK;
}

static void push_n(struct usher_shipper *sh, int from, int to)
{
	int i;

	for (i = from; i < to; i++) {
		char id[24], doc[64];
		struct usher_log_entry e = {0};

		snprintf(id, sizeof(id), "id-%05d", i);
		snprintf(doc, sizeof(doc), "{\"n\":%d}\n", i);
		e.id = id;
		e.ecs = doc;
		e.ecs_len = strlen(doc);
		usher_shipper_push(sh, &e);
	}
}

static bool wait_for(struct usher_shipper *sh, int64_t ms)
{
	int64_t end = usher_mono_ms() + ms;

	while (usher_mono_ms() < end) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		if (usher_shipper_pending(sh) == 0)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

static size_t count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int c;

	if (!f)
		return 0;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void test_shipper_rules(void **state)
{
	static const int plan[] = {0, 0, -1, 503};
	char dir[] = "/tmp/usher-ship-XXXXXX", path[256];
	struct usher_log_sink_stats stats = {0};
	struct fake *f = calloc(1, sizeof(*f));
	struct usher_ship_transport t = {.send = fake_send, .arg = f};
	struct usher_shipper_conf c = {.name = "fake",
				       .spool_max_bytes = 1 << 20,
				       .batch_max_bytes = 4096,
				       .flush_interval_ms = 20,
				       .max_backoff_ms = 40,
				       .queue_max_bytes = 1 << 20};
	struct usher_shipper *sh;
	struct usher_error err;
	size_t i, j, distinct_first = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	c.dir = dir;
	f->plan = plan;
	f->nplan = 4;
	sh = usher_shipper_new(&c, &t, NULL, &stats);
	usher_error_clear(&err);
	assert_int_equal(usher_shipper_start(sh, &err), USHER_OK);
	push_n(sh, 0, 400);
	assert_true(wait_for(sh, 20000));
	usher_shipper_free(sh);

	/* every event was settled once: a quarter refused for good, the rest
	 * delivered, the 429s retried until delivered */
	assert_int_equal(atomic_load(&stats.delivered) + atomic_load(&stats.dead_letter), 400);
	snprintf(path, sizeof(path), "%s/dead-letter.ndjson", dir);
	assert_int_equal(count_lines(path), atomic_load(&stats.dead_letter));
	assert_true(atomic_load(&stats.dead_letter) > 0);
	assert_true(atomic_load(&stats.retried) > 0);
	/* first attempts in order: the first time each id is seen, ids grow */
	{
		char prev[24] = "";

		for (i = 0; i < f->nseen; i++) {
			for (j = 0; j < i; j++)
				if (!strcmp(f->seen[j], f->seen[i]))
					break;
			if (j < i)
				continue;
			distinct_first++;
			if (strcmp(prev, f->seen[i]) >= 0)
				fail_msg("%s first sent after %s", f->seen[i], prev);
			memcpy(prev, f->seen[i], sizeof(prev));
		}
	}
	assert_int_equal(distinct_first, 400);
	free(f);
	rm_rf(dir);
}

/* A restart with a non-empty spool: what the first run could not deliver
 * is delivered by the second, before its own events, each exactly once. */
static void test_shipper_restart(void **state)
{
	static const int down[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	char dir[] = "/tmp/usher-ship-XXXXXX";
	struct usher_log_sink_stats stats = {0};
	struct fake *f = calloc(1, sizeof(*f));
	struct usher_ship_transport t = {.send = fake_send, .arg = f};
	struct usher_shipper_conf c = {.name = "fake",
				       .spool_max_bytes = 1 << 20,
				       .batch_max_bytes = 2048,
				       .flush_interval_ms = 10,
				       .max_backoff_ms = 20,
				       .queue_max_bytes = 1 << 20};
	struct usher_shipper *sh;
	struct usher_error err;
	struct timespec ts = {0, 100 * 1000 * 1000};
	size_t i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	c.dir = dir;
	f->plan = down;
	f->nplan = 1000000; /* every call fails */
	sh = usher_shipper_new(&c, &t, NULL, &stats);
	usher_error_clear(&err);
	assert_int_equal(usher_shipper_start(sh, &err), USHER_OK);
	push_n(sh, 0, 100);
	nanosleep(&ts, NULL);
	usher_shipper_free(sh);
	assert_int_equal(atomic_load(&stats.delivered), 0);

	f->nplan = 0; /* the server is back: everything 201 */
	f->calls = 0;
	sh = usher_shipper_new(&c, &t, NULL, &stats);
	assert_int_equal(usher_shipper_start(sh, &err), USHER_OK);
	push_n(sh, 100, 150);
	assert_true(wait_for(sh, 20000));
	usher_shipper_free(sh);
	assert_int_equal(atomic_load(&stats.delivered), 150);
	assert_int_equal(f->nseen, 150);
	for (i = 0; i < 150; i++) {
		char want[24];

		snprintf(want, sizeof(want), "id-%05zu", i);
		assert_string_equal(f->seen[i], want);
	}
	free(f);
	rm_rf(dir);
}

static size_t read_lines(const char *path, char lines[][2048], size_t max)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (!f)
		return 0;
	while (n < max && fgets(lines[n], 2048, f))
		n++;
	fclose(f);
	return n;
}

static void test_logship_file_and_reopen(void **state)
{
	char dir[] = "/tmp/usher-logship-XXXXXX", yaml[1024], path[256], moved[256];
	static char lines[16][2048];
	struct usher_log *log = usher_log_new(-1, USHER_LOG_FORMAT_ECS, USHER_LOG_INFO, "usherd");
	struct usher_logship *ls;
	struct usher_logship_plan *plan = NULL;
	struct usher_config *cfg = NULL;
	struct usher_diags d;
	struct usher_error err;
	uint64_t seq1, seq2;
	char *p;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/usher.log", dir);
	snprintf(moved, sizeof(moved), "%s/usher.log.1", dir);
	snprintf(yaml, sizeof(yaml),
		 "state_dir: %s/state\nglobal: {external_labels: {site: eu-1}}\n"
		 "logging:\n  sinks:\n    - {type: file, path: %s}\n",
		 dir, path);
	usher_diags_init(&d);
	assert_int_equal(usher_config_load_text("t.yml", yaml, strlen(yaml), &cfg, &d), USHER_OK);
	ls = usher_logship_new(log);
	usher_error_clear(&err);
	if (usher_logship_prepare(ls, cfg, &plan, &err))
		fail_msg("prepare: %s", err.msg);
	usher_logship_commit(ls, plan);
	usher_log_set_output(log, usher_logship_emit, ls);

	usher_log_info(log, "one");
	rename(path, moved); /* logrotate */
	usher_log_info(log, "two, still into the moved file");
	usher_logship_reopen(ls); /* logs "log-reopened" into the new file */
	usher_log_info(log, "three");

	assert_int_equal(read_lines(moved, lines, 16), 2);
	assert_non_null(strstr(lines[0], "\"message\":\"one\""));
	assert_non_null(strstr(lines[0], "\"labels.site\":\"eu-1\""));
	p = strstr(lines[0], "\"event.sequence\":");
	assert_non_null(p);
	seq1 = strtoull(p + 17, NULL, 10);
	p = strstr(lines[1], "\"event.sequence\":");
	seq2 = strtoull(p + 17, NULL, 10);
	assert_int_equal(seq2, seq1 + 1);
	assert_true(seq1 >> 40 >= 1); /* an epoch from the state dir */
	assert_int_equal(read_lines(path, lines, 16), 2);
	assert_non_null(strstr(lines[0], "\"event.action\":\"log-reopened\""));
	assert_non_null(strstr(lines[1], "\"message\":\"three\""));

	usher_log_set_output(log, NULL, NULL);
	usher_logship_free(ls);

	/* the next run has a later epoch: sequences keep growing */
	ls = usher_logship_new(log);
	assert_int_equal(usher_logship_prepare(ls, cfg, &plan, &err), USHER_OK);
	usher_logship_commit(ls, plan);
	usher_log_set_output(log, usher_logship_emit, ls);
	usher_log_info(log, "four");
	usher_log_set_output(log, NULL, NULL);
	usher_logship_free(ls);
	assert_int_equal(read_lines(path, lines, 16), 3);
	p = strstr(lines[2], "\"event.sequence\":");
	assert_true(strtoull(p + 17, NULL, 10) > seq2);

	usher_config_free(cfg);
	usher_diags_free(&d);
	usher_log_free(log);
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sinks_config),    cmocka_unit_test(test_bulk_response),
	    cmocka_unit_test(test_backoff),         cmocka_unit_test(test_shipper_rules),
	    cmocka_unit_test(test_shipper_restart), cmocka_unit_test(test_logship_file_and_reopen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
