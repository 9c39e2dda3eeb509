/* Unit tests of the redis probe's INFO parser: captured INFO replies in
 * tests/data/redis/<case>.info give exactly the exposition text in
 * <case>.prom (USHER_UPDATE_GOLDEN=1 rewrites those files, to be reviewed
 * by hand), plus table-driven edge cases and the limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "metrics/registry.h"
#include "probes/redis.h"

/* A fixed wall clock, so redis_start_time_seconds is stable. */
#define NOW_S 1800000000

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t)n + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return data;
}

/* The text exposition of what usher_redis_info_emit adds for text, or
 * "error: <code>" when it refuses it. The caller frees. */
static char *render(const char *text, size_t len, unsigned databases)
{
	struct usher_sample_set *s = usher_sample_set_new(NULL);
	struct usher_registry *r;
	struct usher_buf out;
	enum usher_err rc = usher_redis_info_emit(s, text, len, databases, NOW_S);
	int owner;

	usher_buf_init(&out, 1 << 24);
	if (rc) {
		assert_int_equal(usher_sample_set_count(s), 0);
		usher_sample_set_free(s);
		usher_buf_addf(&out, "error: %s\n", usher_strerror(rc));
		return usher_buf_take(&out);
	}
	r = usher_registry_new();
	usher_registry_publish(r, &owner, s);
	assert_int_equal(usher_registry_render(r, USHER_EXPO_TEXT, &out), USHER_OK);
	usher_registry_free(r);
	return usher_buf_take(&out);
}

static const struct {
	const char *name;
	unsigned databases;
} golden[] = {
    {"redis7-master", 16}, /* redis-server 7.0.15 with a replica, keys in db0 and db2 */
    {"redis7-replica", 16},
    {"redis5", 16},   /* the Redis 5 shapes: no tracking_clients, 3-field cmdstat */
    {"edge", 4},      /* duplicates, bad numbers, odd labels, LF line ends */
    {"minimal", 2},   /* only redis_version: info and padding */
    {"not-info", 16}, /* no redis_version: refused */
};

static void test_golden(void **state)
{
	bool update = getenv("USHER_UPDATE_GOLDEN") != NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(golden) / sizeof(golden[0]); i++) {
		char in[512], want_path[512], *text, *got, *want;
		size_t len, wlen;

		snprintf(in, sizeof(in), "%s/redis/%s.info", USHER_TEST_DATA, golden[i].name);
		snprintf(want_path, sizeof(want_path), "%s/redis/%s.prom", USHER_TEST_DATA,
			 golden[i].name);
		text = slurp(in, &len);
		if (!text)
			fail_msg("cannot read %s", in);
		got = render(text, len, golden[i].databases);
		if (update) {
			FILE *f = fopen(want_path, "wb");

			assert_non_null(f);
			fputs(got, f);
			fclose(f);
		}
		want = slurp(want_path, &wlen);
		if (!want)
			fail_msg("cannot read %s (USHER_UPDATE_GOLDEN=1 writes it)", want_path);
		if (strcmp(got, want) != 0) {
			print_error("case %s: exposition differs from %s; got:\n%s\n",
				    golden[i].name, want_path, got);
			fail();
		}
		free(text);
		free(got);
		free(want);
	}
}

/* Samples of one family in the render of text, one per line, labels and
 * value as rendered. */
static char *family(const char *text, unsigned databases, const char *name)
{
	char *all = render(text, strlen(text), databases), *line, *save = NULL;
	struct usher_buf out;
	size_t nl = strlen(name);

	usher_buf_init(&out, 1 << 20);
	for (line = all; line && *line; line = save) {
		char *end = strchr(line, '\n');

		save = end ? end + 1 : NULL;
		if (end)
			*end = '\0';
		if (strncmp(line, name, nl) == 0 && (line[nl] == '{' || line[nl] == ' '))
			usher_buf_addf(&out, "%s\n", line);
	}
	free(all);
	return usher_buf_take(&out);
}

static void test_cases(void **state)
{
	static const struct {
		const char *info;
		unsigned databases;
		const char *family;
		const char *want; /* its lines; "" when absent */
	} cases[] = {
	    /* a value redis_exporter cannot parse is left out, not zero */
	    {"redis_version:7\nconnected_clients:12a\n", 0, "redis_connected_clients", ""},
	    {"redis_version:7\nconnected_clients:+3\n", 0, "redis_connected_clients",
	     "redis_connected_clients 3\n"},
	    {"redis_version:7\nconnected_clients:inf\n", 0, "redis_connected_clients", ""},
	    {"redis_version:7\nconnected_clients:1E3\n", 0, "redis_connected_clients",
	     "redis_connected_clients 1000\n"},
	    {"redis_version:7\nconnected_clients:-\n", 0, "redis_connected_clients", ""},
	    {"redis_version:7\nrdb_last_bgsave_status:err\n", 0, "redis_rdb_last_bgsave_status",
	     "redis_rdb_last_bgsave_status 0\n"},
	    {"redis_version:7\nrdb_last_bgsave_status:OK\n", 0, "redis_rdb_last_bgsave_status", ""},
	    /* keys=, expires= in any order; avg_ttl optional */
	    {"redis_version:7\ndb3:expires=2,keys=5\n", 0, "redis_db_keys",
	     "redis_db_keys{db=\"db3\"} 5\n"},
	    {"redis_version:7\ndb3:expires=2,keys=5\n", 0, "redis_db_avg_ttl_seconds", ""},
	    {"redis_version:7\ndb3:keys=5,expires=2,avg_ttl=2500\n", 0, "redis_db_avg_ttl_seconds",
	     "redis_db_avg_ttl_seconds{db=\"db3\"} 2.5\n"},
	    {"redis_version:7\ndb3:keys=5,expires=2\n", 2, "redis_db_keys",
	     "redis_db_keys{db=\"db3\"} 5\nredis_db_keys{db=\"db0\"} 0\nredis_db_keys{db=\"db1\"} "
	     "0\n"},
	    {"redis_version:7\ndb:keys=5,expires=2\n", 0, "redis_db_keys", ""},
	    {"redis_version:7\ndb1a:keys=5,expires=2\n", 0, "redis_db_keys", ""},
	    {"redis_version:7\ndb1:keys=5,expires=2,keys=7\n", 0, "redis_db_keys",
	     "redis_db_keys{db=\"db1\"} 5\n"},
	    /* usec to seconds */
	    {"redis_version:7\ncmdstat_hset:calls=2,usec=1500000\n", 0,
	     "redis_commands_duration_seconds_total",
	     "redis_commands_duration_seconds_total{cmd=\"hset\"} 1.5\n"},
	    /* master_link_up only on replicas, with their master */
	    {"redis_version:7\nrole:master\n", 0, "redis_master_link_up", ""},
	    {"redis_version:7\nmaster_link_status:up\n", 0, "redis_master_link_up",
	     "redis_master_link_up{master_host=\"\",master_port=\"\"} 1\n"},
	    {"redis_version:7\nmaster_host:m\nmaster_port:1\nmaster_link_status:connecting\n", 0,
	     "redis_master_link_up",
	     "redis_master_link_up{master_host=\"m\",master_port=\"1\"} 0\n"},
	    /* bytes that are not UTF-8 become U+FFFD in labels */
	    {"redis_version:7\nrole:\xff\n", 0, "redis_instance_info",
	     "redis_instance_info{role=\"\xef\xbf\xbd\",redis_version=\"7\",redis_build_id=\"\","
	     "redis_mode=\"\",os=\"\",maxmemory_policy=\"\",tcp_port=\"\",run_id=\"\","
	     "process_id=\"\"} 1\n"},
	    /* a CR alone does not end a line */
	    {"redis_version:7\rconnected_clients:1\n", 0, "redis_instance_info",
	     "redis_instance_info{role=\"\",redis_version=\"7\rconnected_clients:1\","
	     "redis_build_id=\"\",redis_mode=\"\",os=\"\",maxmemory_policy=\"\",tcp_port=\"\","
	     "run_id=\"\",process_id=\"\"} 1\n"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = family(cases[i].info, cases[i].databases, cases[i].family);

		if (strcmp(got, cases[i].want) != 0) {
			print_error("case %zu (%s): got\n%s\nwant\n%s\n", i, cases[i].family, got,
				    cases[i].want);
			fail();
		}
		free(got);
	}
}

static void test_refused(void **state)
{
	static const char *const bad[] = {
	    "",
	    "\r\n",
	    "-ERR unknown command",
	    "# Server\r\n",
	    "redis_version",
	    "REDIS_VERSION:7",
	    " :7\nuptime_in_seconds:3\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *got = render(bad[i], strlen(bad[i]), 16);

		assert_string_equal(got, "error: protocol error\n");
		free(got);
	}
}

/* Embedded NULs end a line's text there; nothing reads past the input. */
static void test_binary(void **state)
{
	static const char text[] = "redis_version:7\0junk\nconnected_clients:4\0\n\0\0";
	struct usher_sample_set *s = usher_sample_set_new(NULL);

	(void)state;
	assert_int_equal(usher_redis_info_emit(s, text, sizeof(text) - 1, 0, NOW_S), USHER_OK);
	usher_sample_set_free(s);
	s = usher_sample_set_new(NULL);
	/* only the first len bytes count */
	assert_int_equal(usher_redis_info_emit(s, "redis_version:7", 5, 0, NOW_S),
			 USHER_ERR_PROTOCOL);
	usher_sample_set_free(s);
}

/* A hostile or broken server cannot make a series explosion: label
 * families stop at 1024 series, lines at 20000, padding at 256 dbs. */
static void test_limits(void **state)
{
	struct usher_buf b;
	struct usher_sample_set *s;
	size_t count, i;

	(void)state;
	usher_buf_init(&b, 1 << 24);
	usher_buf_addstr(&b, "redis_version:7\n");
	for (i = 0; i < 3000; i++)
		usher_buf_addf(&b, "cmdstat_c%zu:calls=1,usec=1\ndb%zu:keys=1,expires=0\n", i, i);
	s = usher_sample_set_new(NULL);
	assert_int_equal(usher_redis_info_emit(s, b.data, b.len, 1000000, NOW_S), USHER_OK);
	count = usher_sample_set_count(s);
	/* info (1) + 2 per command (2048) + 2 per db (2048) + padding: the
	 * first 1024 dbs are db0..db1023, so nothing below 256 is missing */
	assert_int_equal(count, 1 + 2048 + 2048);
	usher_sample_set_free(s);

	usher_buf_reset(&b);
	for (i = 0; i < 30000; i++)
		usher_buf_addstr(&b, "x:1\n");
	usher_buf_addstr(&b, "redis_version:7\n");
	s = usher_sample_set_new(NULL);
	/* past the line limit: redis_version is never seen */
	assert_int_equal(usher_redis_info_emit(s, b.data, b.len, 0, NOW_S), USHER_ERR_PROTOCOL);
	usher_sample_set_free(s);

	s = usher_sample_set_new(NULL);
	assert_int_equal(usher_redis_info_emit(s, "redis_version:7", 15, 100000, NOW_S), USHER_OK);
	assert_int_equal(usher_sample_set_count(s), 1 + 2 * 256);
	usher_sample_set_free(s);
	usher_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden),  cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_refused), cmocka_unit_test(test_binary),
	    cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
