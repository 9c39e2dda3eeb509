/* Unit tests of usher diag's reports: findings and statuses, runbook links,
 * the checks that read a probe's samples (HTTP timings and TLS days, host
 * memory and filesystems, Memcached connections) at and around their
 * thresholds, the table (marks, colours only when asked, plain ASCII
 * without UTF-8) and the JSON document (parsed back with jansson). */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "probes/diag.h"

#define DAY 86400
#define NOW 1800000000

static struct usher_probe_conf conf_of(const char *name, const char *type)
{
	struct usher_probe_conf pc;

	memset(&pc, 0, sizeof(pc));
	pc.name = name;
	pc.type_name = type;
	pc.job = name;
	pc.instance = "db:5432";
	return pc;
}

/* A report whose samples are the exposition text given. */
static void report_init(struct usher_diag_report *r, const struct usher_probe_conf *pc, bool up,
			const char *text)
{
	struct usher_tp_error perr;

	memset(r, 0, sizeof(*r));
	r->conf = pc;
	r->arena = usher_arena_new();
	r->probe_success = up;
	if (!up) {
		r->failure_reason = "connect";
		r->error = "connection refused";
		r->status = USHER_DIAG_FAIL;
	}
	assert_int_equal(
	    usher_textparse(text, strlen(text), USHER_TP_TEXT, NULL, r->arena, &r->samples, &perr),
	    USHER_OK);
}

static const struct usher_diag_finding *find(const struct usher_diag_report *r, const char *check)
{
	size_t i;

	for (i = 0; i < r->nfindings; i++)
		if (strcmp(r->findings[i].check, check) == 0)
			return &r->findings[i];
	return NULL;
}

static void test_add_raises_status_and_drops_ok_hints(void **state)
{
	struct usher_probe_conf pc = conf_of("db", "postgres");
	struct usher_diag_report r;
	struct usher_diag_finding *f;
	int i;

	(void)state;
	report_init(&r, &pc, true, "");
	f = usher_diag_add(&r, USHER_DIAG_OK, "a.ok", "AlertA", "do this", "fine %d", 1);
	assert_int_equal(r.status, USHER_DIAG_OK);
	assert_null(f->hint);
	assert_string_equal(f->summary, "fine 1");
	usher_diag_add(&r, USHER_DIAG_WARN, "b.warn", NULL, "look", "meh");
	assert_int_equal(r.status, USHER_DIAG_WARN);
	usher_diag_add(&r, USHER_DIAG_OK, "c.ok", NULL, NULL, "fine again");
	assert_int_equal(r.status, USHER_DIAG_WARN); /* never lowered */
	/* many findings: the array grows and earlier ones survive */
	for (i = 0; i < 40; i++)
		usher_diag_add(&r, USHER_DIAG_OK, "many", NULL, NULL, "n%d", i);
	assert_int_equal(r.nfindings, 43);
	assert_string_equal(r.findings[1].hint, "look");
	assert_string_equal(r.findings[42].summary, "n39");
	f = usher_diag_add(&r, USHER_DIAG_FAIL, "d.fail", NULL, "now", "bad");
	usher_diag_detail(&r, f, "line 1\nline 2");
	assert_string_equal(f->detail, "line 1\nline 2");
	assert_int_equal(r.status, USHER_DIAG_FAIL);
	assert_int_equal(usher_diag_overall(&r, 1), USHER_DIAG_FAIL);
	assert_int_equal(usher_diag_overall(&r, 0), USHER_DIAG_OK);
	usher_arena_free(r.arena);
}

static void test_threshold_set(void **state)
{
	struct usher_diag_thresholds t, before;
	struct usher_error err;

	(void)state;
	usher_diag_thresholds_default(&t);
	usher_error_clear(&err);
	assert_int_equal(usher_diag_threshold_set(&t, "redis_mem_warn=85%", &err), USHER_OK);
	assert_true(fabs(t.redis_mem_warn - 0.85) < 1e-9);
	assert_int_equal(usher_diag_threshold_set(&t, "pg_conn_warn=0.7", &err), USHER_OK);
	assert_true(fabs(t.pg_conn_warn - 0.7) < 1e-9);
	assert_int_equal(usher_diag_threshold_set(&t, "pg_idle_tx_warn_s=1m30s", &err), USHER_OK);
	assert_true(t.pg_idle_tx_warn_s == 90);
	assert_int_equal(usher_diag_threshold_set(&t, "pg_long_query_warn_s=2.5", &err), USHER_OK);
	assert_true(t.pg_long_query_warn_s == 2.5);
	assert_int_equal(usher_diag_threshold_set(&t, "redis_bigkey_warn_bytes=1MiB", &err),
			 USHER_OK);
	assert_true(t.redis_bigkey_warn_bytes == 1048576);
	assert_int_equal(usher_diag_threshold_set(&t, "redis_bigkey_scan_max=50", &err), USHER_OK);
	assert_int_equal(t.redis_bigkey_scan_max, 50);
	assert_int_equal(usher_diag_threshold_set(&t, "pg_xid_warn=2e9", &err), USHER_OK);
	assert_true(t.pg_xid_warn == 2e9);

	before = t;
	assert_int_equal(usher_diag_threshold_set(&t, "pg_nope=1", &err), USHER_ERR_NOTFOUND);
	assert_non_null(strstr(err.msg, "no threshold named \"pg_nope\""));
	static const char *const bad[] = {
	    "redis_mem_warn=180%",
	    "redis_mem_warn=-0.1",
	    "redis_mem_warn=high",
	    "pg_conn_warn=",
	    "=0.5",
	    "pg_conn_warn",
	    "pg_idle_tx_warn_s=soon",
	    "redis_bigkey_scan_max=2.5",
	    "redis_bigkey_warn_bytes=lots",
	    "tls_days_warn=nan",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		usher_error_clear(&err);
		if (usher_diag_threshold_set(&t, bad[i], &err) != USHER_ERR_INVALID)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_true(err.msg[0] != '\0');
	}
	assert_memory_equal(&t, &before, sizeof(t)); /* nothing changed */
}

static void test_runbook_urls(void **state)
{
	struct usher_arena *a = usher_arena_new();

	(void)state;
	assert_string_equal(usher_diag_runbook_url(a, NULL, "PostgresDown"),
			    "runbooks/PostgresDown.md");
	assert_string_equal(
	    usher_diag_runbook_url(a, "https://git.example/ops/runbooks", "RedisDown"),
	    "https://git.example/ops/runbooks/RedisDown.md");
	assert_string_equal(usher_diag_runbook_url(a, "https://wiki/x/{alert}#top", "RedisDown"),
			    "https://wiki/x/RedisDown#top");
	assert_null(usher_diag_runbook_url(a, "runbooks/", NULL));
	usher_arena_free(a);
}

static void test_sample_lookup(void **state)
{
	struct usher_probe_conf pc = conf_of("api", "http");
	struct usher_diag_report r;
	const char *tls[] = {"phase", "tls", NULL};
	const char *nope[] = {"phase", "nope", NULL};
	double v = 0;

	(void)state;
	report_init(&r, &pc, true,
		    "# TYPE probe_http_duration_seconds gauge\n"
		    "probe_http_duration_seconds{job=\"api\",phase=\"connect\"} 0.5\n"
		    "probe_http_duration_seconds{job=\"api\",phase=\"tls\"} 0.25\n"
		    "# TYPE x_total counter\nx_total{a=\"b\"} 7\n");
	assert_true(usher_diag_sample(&r, "probe_http_duration_seconds", tls, &v));
	assert_true(v == 0.25);
	assert_false(usher_diag_sample(&r, "probe_http_duration_seconds", nope, &v));
	assert_true(usher_diag_sample(&r, "x_total", NULL, &v));
	assert_true(v == 7);
	assert_false(usher_diag_sample(&r, "x", NULL, &v));
	assert_false(usher_diag_sample(&r, "probe_http", NULL, &v));
	usher_arena_free(r.arena);
}

/* The http checks for a certificate that expires in days days. */
static enum usher_diag_status tls_status(double days, double *total_ms,
					 enum usher_diag_status *timing)
{
	struct usher_probe_conf pc = conf_of("api", "http");
	struct usher_diag_thresholds th;
	struct usher_diag_report r;
	const struct usher_diag_finding *f;
	enum usher_diag_status st;
	char text[1024];

	usher_diag_thresholds_default(&th);
	snprintf(text, sizeof(text),
		 "probe_http_status_code 200\n"
		 "probe_http_duration_seconds{phase=\"resolve\"} 0.001\n"
		 "probe_http_duration_seconds{phase=\"connect\"} 0.002\n"
		 "probe_http_duration_seconds{phase=\"tls\"} 0.003\n"
		 "probe_http_duration_seconds{phase=\"processing\"} %g\n"
		 "probe_http_duration_seconds{phase=\"transfer\"} 0.004\n"
		 "probe_ssl_earliest_cert_expiry %.0f\n",
		 days > 100 ? 2.5 : 0.04, (double)NOW + days * DAY);
	report_init(&r, &pc, true, text);
	usher_diag_from_samples(&th, NOW, &r);
	f = find(&r, "http.tls_expiry");
	assert_non_null(f);
	st = f->status;
	if (st != USHER_DIAG_OK)
		assert_string_equal(f->alert, "BookingTLSCertificateExpiring");
	f = find(&r, "http.timings");
	assert_non_null(f);
	assert_non_null(strstr(f->detail, "resolve 1.0ms, connect 2.0ms, tls 3.0ms"));
	assert_non_null(strstr(f->summary, "HTTP 200 in "));
	*total_ms = strtod(strstr(f->summary, " in ") + 4, NULL);
	*timing = f->status;
	usher_arena_free(r.arena);
	return st;
}

static void test_http_tls_days_and_timings(void **state)
{
	double ms;
	enum usher_diag_status timing;

	(void)state;
	assert_int_equal(tls_status(90, &ms, &timing), USHER_DIAG_OK);
	assert_true(ms > 49.9 && ms < 50.1);
	assert_int_equal(timing, USHER_DIAG_OK);
	/* as the alert pack's BookingTLSCertificateExpiring: 14 and 3 days */
	assert_int_equal(tls_status(14.5, &ms, &timing), USHER_DIAG_OK);
	assert_int_equal(tls_status(13.5, &ms, &timing), USHER_DIAG_WARN);
	assert_int_equal(tls_status(3.5, &ms, &timing), USHER_DIAG_WARN);
	assert_int_equal(tls_status(2.5, &ms, &timing), USHER_DIAG_FAIL);
	assert_int_equal(tls_status(-1, &ms, &timing), USHER_DIAG_FAIL);
	/* 2.5 s of processing passes http_slow_warn_s */
	assert_int_equal(tls_status(365, &ms, &timing), USHER_DIAG_OK);
	assert_int_equal(timing, USHER_DIAG_WARN);
}

static void test_http_down(void **state)
{
	struct usher_probe_conf pc = conf_of("api", "http");
	struct usher_diag_thresholds th;
	struct usher_diag_report r;
	const struct usher_diag_finding *f;

	(void)state;
	usher_diag_thresholds_default(&th);
	report_init(&r, &pc, false, "probe_http_status_code 0\n");
	usher_diag_from_samples(&th, NOW, &r);
	assert_null(find(&r, "http.timings")); /* nothing was measured */
	f = find(&r, "probe");
	assert_non_null(f);
	assert_int_equal(f->status, USHER_DIAG_FAIL);
	assert_string_equal(f->alert, "HTTPProbeFailed");
	assert_non_null(strstr(f->hint, "nothing accepts connections"));
	assert_int_equal(r.status, USHER_DIAG_FAIL);
	usher_arena_free(r.arena);
}

static enum usher_diag_status host_fs(double avail_frac, char **detail)
{
	struct usher_probe_conf pc = conf_of("box", "host");
	struct usher_diag_thresholds th;
	struct usher_diag_report r;
	const struct usher_diag_finding *f;
	enum usher_diag_status st;
	char text[2048];

	usher_diag_thresholds_default(&th);
	snprintf(
	    text, sizeof(text),
	    "node_memory_MemTotal_bytes 1000\nnode_memory_MemAvailable_bytes 500\n"
	    "node_load5 1\n"
	    "# TYPE node_cpu_seconds_total counter\n"
	    "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 5\n"
	    "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 5\n"
	    "node_filesystem_size_bytes{mountpoint=\"/\",fstype=\"ext4\"} 1000\n"
	    "node_filesystem_avail_bytes{mountpoint=\"/\",fstype=\"ext4\"} 900\n"
	    "node_filesystem_readonly{mountpoint=\"/\",fstype=\"ext4\"} 0\n"
	    "node_filesystem_size_bytes{mountpoint=\"/var/lib/postgresql\",fstype=\"xfs\"} 1000\n"
	    "node_filesystem_avail_bytes{mountpoint=\"/var/lib/postgresql\",fstype=\"xfs\"} %g\n"
	    "node_filesystem_readonly{mountpoint=\"/var/lib/postgresql\",fstype=\"xfs\"} 0\n"
	    "node_filesystem_size_bytes{mountpoint=\"/ro\",fstype=\"squashfs\"} 1000\n"
	    "node_filesystem_avail_bytes{mountpoint=\"/ro\",fstype=\"squashfs\"} 0\n"
	    "node_filesystem_readonly{mountpoint=\"/ro\",fstype=\"squashfs\"} 1\n",
	    avail_frac * 1000);
	report_init(&r, &pc, true, text);
	usher_diag_from_samples(&th, NOW, &r);
	f = find(&r, "host.memory");
	assert_non_null(f);
	assert_int_equal(f->status, USHER_DIAG_OK);
	f = find(&r, "host.load");
	assert_non_null(f);
	assert_non_null(strstr(f->summary, "on 1 CPUs"));
	f = find(&r, "host.filesystems");
	assert_non_null(f);
	/* the read-only, full /ro does not count */
	assert_non_null(strstr(f->summary, "2 writable filesystems"));
	st = f->status;
	*detail = f->detail ? strdup(f->detail) : NULL;
	usher_arena_free(r.arena);
	return st;
}

static void test_host_filesystems(void **state)
{
	char *detail;

	(void)state;
	assert_int_equal(host_fs(0.5, &detail), USHER_DIAG_OK);
	assert_null(detail);
	assert_int_equal(host_fs(0.10, &detail), USHER_DIAG_WARN);
	assert_non_null(strstr(detail, "/var/lib/postgresql (xfs): 10.0% free"));
	assert_null(strstr(detail, "/ro"));
	free(detail);
	assert_int_equal(host_fs(0.01, &detail), USHER_DIAG_FAIL);
	free(detail);
}

static void test_memcached_connections(void **state)
{
	struct usher_probe_conf pc = conf_of("sessions", "memcached");
	struct usher_diag_thresholds th;
	struct usher_diag_report r;
	const struct usher_diag_finding *f;

	(void)state;
	usher_diag_thresholds_default(&th);
	report_init(&r, &pc, true,
		    "memcached_current_connections 90\nmemcached_max_connections 100\n"
		    "memcached_current_bytes 512\nmemcached_limit_bytes 1048576\n"
		    "# TYPE memcached_commands_total counter\n"
		    "memcached_commands_total{command=\"get\",status=\"hit\"} 75\n"
		    "memcached_commands_total{command=\"get\",status=\"miss\"} 25\n");
	usher_diag_from_samples(&th, NOW, &r);
	f = find(&r, "memcached.connections");
	assert_non_null(f);
	assert_int_equal(f->status, USHER_DIAG_WARN);
	assert_string_equal(f->summary, "90 of 100 connections in use");
	f = find(&r, "memcached.hit_ratio");
	assert_non_null(f);
	assert_string_equal(f->summary, "get hit ratio 75.0% (100 gets)");
	usher_arena_free(r.arena);
}

/* One INFO reply, the Redis checks' verdicts on it. */
struct info_case {
	const char *info;
	const char *save;
	const char *check;
	enum usher_diag_status want;
	const char *in_summary; /* NULL: not looked at */
};

static const struct info_case info_cases[] = {
    {"used_memory:1048576\r\nmaxmemory:67108864\r\nmaxmemory_policy:allkeys-lru\r\n"
     "evicted_keys:3\r\n",
     "", "redis.memory", USHER_DIAG_OK,
     "1.0 MiB used of maxmemory 64.0 MiB (2%), policy allkeys-lru, 3 keys evicted"},
    {"used_memory:890\r\nmaxmemory:1000\r\nmaxmemory_policy:allkeys-lru\r\n", "", "redis.memory",
     USHER_DIAG_OK, "(89%)"},
    {"used_memory:920\r\nmaxmemory:1000\r\nmaxmemory_policy:allkeys-lru\r\n", "", "redis.memory",
     USHER_DIAG_WARN, "(92%)"},
    {"used_memory:960\r\nmaxmemory:1000\r\nmaxmemory_policy:noeviction\r\n", "", "redis.memory",
     USHER_DIAG_FAIL, "policy noeviction"},
    {"used_memory:10\r\nmaxmemory:0\r\ntotal_system_memory:100\r\n", "", "redis.memory",
     USHER_DIAG_OK, "no maxmemory"},
    {"used_memory:90\r\nmaxmemory:0\r\ntotal_system_memory:100\r\n", "", "redis.memory",
     USHER_DIAG_WARN, NULL},
    /* fragmentation only matters with 100 MiB+ between RSS and used */
    {"mem_fragmentation_ratio:13.2\r\nused_memory:1000000\r\nused_memory_rss:13200000\r\n", "",
     "redis.fragmentation", USHER_DIAG_OK, "too little memory to matter"},
    {"mem_fragmentation_ratio:2.00\r\nused_memory:209715200\r\n"
     "used_memory_rss:419430400\r\n",
     "", "redis.fragmentation", USHER_DIAG_WARN, "ratio 2.00"},
    {"keyspace_hits:10\r\nkeyspace_misses:5\r\n", "", "redis.hit_ratio", USHER_DIAG_OK,
     "too few lookups (15)"},
    {"keyspace_hits:700\r\nkeyspace_misses:300\r\n", "", "redis.hit_ratio", USHER_DIAG_WARN,
     "70.0%"},
    {"keyspace_hits:900\r\nkeyspace_misses:100\r\n", "", "redis.hit_ratio", USHER_DIAG_OK, NULL},
    {"connected_clients:8500\r\nmaxclients:10000\r\n", "", "redis.clients", USHER_DIAG_WARN,
     "8500 of maxclients 10000"},
    {"rdb_last_bgsave_status:ok\r\nrdb_last_save_time:1799999000\r\naof_enabled:0\r\n", "3600 1",
     "redis.persistence", USHER_DIAG_OK, "1000s ago"},
    {"rdb_last_bgsave_status:err\r\naof_enabled:0\r\n", "3600 1", "redis.persistence",
     USHER_DIAG_FAIL, "bgsave err"},
    {"rdb_last_bgsave_status:ok\r\naof_enabled:1\r\naof_last_write_status:err\r\n"
     "aof_last_bgrewrite_status:ok\r\n",
     "", "redis.persistence", USHER_DIAG_FAIL, "AOF on, last write err"},
    {"loading:1\r\nrdb_last_bgsave_status:ok\r\n", "", "redis.persistence", USHER_DIAG_WARN, NULL},
    {"role:slave\r\nmaster_link_status:down\r\n", "", "redis.replication", USHER_DIAG_FAIL,
     "link to master down"},
    {"role:slave\r\nmaster_link_status:up\r\n", "", "redis.replication", USHER_DIAG_OK, NULL},
    {"role:master\r\nconnected_slaves:2\r\n", "", "redis.replication", USHER_DIAG_OK, "2 replicas"},
    /* garbage: figures left out, no crash */
    {"used_memory:lots\r\nmaxmemory:\r\nkeyspace_hits:-\r\n", "", "redis.memory", USHER_DIAG_OK,
     NULL},
};

static void test_redis_info_checks(void **state)
{
	struct usher_probe_conf pc = conf_of("cache", "redis");
	struct usher_diag_thresholds th;
	size_t i;

	(void)state;
	usher_diag_thresholds_default(&th);
	for (i = 0; i < sizeof(info_cases) / sizeof(info_cases[0]); i++) {
		const struct info_case *c = &info_cases[i];
		struct usher_diag_report r;
		const struct usher_diag_finding *f;

		report_init(&r, &pc, true, "");
		usher_diag_redis_info(&th, c->info, c->save, NOW, &r);
		f = find(&r, c->check);
		if (!f || f->status != c->want ||
		    (c->in_summary && !strstr(f->summary, c->in_summary)))
			fail_msg("case %zu (%s): got %s \"%s\"", i, c->check,
				 f ? usher_diag_status_name(f->status) : "no finding",
				 f ? f->summary : "");
		usher_arena_free(r.arena);
	}
}

/* Two reports: a degraded database with a detailed finding, a down cache. */
static void two_reports(struct usher_diag_report *r, struct usher_probe_conf *pcs)
{
	struct usher_diag_finding *f;

	pcs[0] = conf_of("main-db", "postgres");
	pcs[1] = conf_of("seat-cache", "redis");
	report_init(&r[0], &pcs[0], true, "");
	report_init(&r[1], &pcs[1], false, "");
	usher_diag_add(&r[0], USHER_DIAG_OK, "postgres.connections", "PostgresConnectionsSaturated",
		       NULL, "4 of 30");
	f = usher_diag_add(&r[0], USHER_DIAG_WARN, "postgres.locks", "PostgresLockWaits",
			   "end pid 42's \"transaction\"", "1 session waiting");
	usher_diag_detail(&r[0], f, "pid 43 waiting\n  blocked by pid 42\ttab");
	r[0].trace = "step 1\nstep 2\n";
	usher_diag_add(&r[1], USHER_DIAG_FAIL, "redis.connect", "RedisDown", "start it",
		       "cannot talk");
	r[1].duration_s = 0.0123;
}

static void test_render_text(void **state)
{
	struct usher_probe_conf pcs[2];
	struct usher_diag_report r[2];
	struct usher_diag_render how = {.runbook_base = "https://rb.example/"};
	struct usher_buf out;

	(void)state;
	two_reports(r, pcs);
	usher_buf_init(&out, 1 << 20);
	how.utf8 = true;
	assert_int_equal(usher_diag_render_text(r, 2, &how, &out), USHER_OK);
	assert_null(strchr(usher_buf_str(&out), '\033'));
	assert_non_null(strstr(usher_buf_str(&out), "⚠ main-db     postgres"));
	assert_non_null(
	    strstr(usher_buf_str(&out),
		   "✗ seat-cache  redis         12ms  DOWN: connection refused (connect)"));
	assert_non_null(strstr(usher_buf_str(&out),
			       "    ⚠ postgres.locks: 1 session waiting\n"
			       "          pid 43 waiting\n"
			       "            blocked by pid 42\ttab\n"
			       "          hint: end pid 42's \"transaction\"\n"
			       "          runbook: https://rb.example/PostgresLockWaits.md\n"));
	/* no runbook line for a finding that is fine */
	assert_null(strstr(usher_buf_str(&out), "PostgresConnectionsSaturated"));
	assert_non_null(strstr(usher_buf_str(&out), "    trace:\n      step 1\n      step 2\n"));
	assert_non_null(strstr(usher_buf_str(&out), "2 probes: 0 ok, 1 degraded, 1 failed\n"));

	usher_buf_reset(&out);
	how.utf8 = false;
	assert_int_equal(usher_diag_render_text(r, 2, &how, &out), USHER_OK);
	assert_non_null(strstr(usher_buf_str(&out), "WARN main-db"));
	assert_non_null(strstr(usher_buf_str(&out), "FAIL seat-cache"));
	assert_null(strstr(usher_buf_str(&out), "✓"));

	usher_buf_reset(&out);
	how.color = true;
	assert_int_equal(usher_diag_render_text(r, 2, &how, &out), USHER_OK);
	assert_non_null(strstr(usher_buf_str(&out), "\033[33mWARN\033[0m"));
	assert_non_null(strstr(usher_buf_str(&out), "\033[31mFAIL\033[0m"));
	usher_buf_free(&out);
	usher_arena_free(r[0].arena);
	usher_arena_free(r[1].arena);
}

static void test_render_json(void **state)
{
	struct usher_probe_conf pcs[2];
	struct usher_diag_report r[2];
	struct usher_diag_render how = {.runbook_base = "runbooks/"};
	struct usher_buf out;
	json_error_t jerr;
	json_t *doc, *p, *f;

	(void)state;
	two_reports(r, pcs);
	usher_buf_init(&out, 1 << 20);
	assert_int_equal(usher_diag_render_json(r, 2, &how, (int64_t)NOW * 1000, &out), USHER_OK);
	doc = json_loads(usher_buf_str(&out), 0, &jerr);
	assert_non_null(doc);
	assert_int_equal(json_integer_value(json_object_get(doc, "schema_version")), 1);
	assert_string_equal(json_string_value(json_object_get(doc, "time")),
			    "2027-01-15T08:00:00.000Z");
	assert_string_equal(json_string_value(json_object_get(doc, "status")), "fail");
	assert_int_equal(json_integer_value(json_object_get(doc, "exit_code")), 2);
	assert_int_equal(json_array_size(json_object_get(doc, "probes")), 2);
	p = json_array_get(json_object_get(doc, "probes"), 0);
	assert_string_equal(json_string_value(json_object_get(p, "name")), "main-db");
	assert_string_equal(json_string_value(json_object_get(p, "status")), "warn");
	assert_true(json_is_true(json_object_get(p, "up")));
	assert_true(json_is_null(json_object_get(p, "failure_reason")));
	assert_int_equal(json_array_size(json_object_get(p, "trace")), 2);
	f = json_array_get(json_object_get(p, "findings"), 1);
	assert_string_equal(json_string_value(json_object_get(f, "check")), "postgres.locks");
	assert_string_equal(json_string_value(json_object_get(f, "hint")),
			    "end pid 42's \"transaction\"");
	assert_string_equal(json_string_value(json_object_get(f, "runbook_url")),
			    "runbooks/PostgresLockWaits.md");
	assert_int_equal(json_array_size(json_object_get(f, "detail")), 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(f, "detail"), 1)),
			    "  blocked by pid 42\ttab");
	f = json_array_get(json_object_get(p, "findings"), 0);
	assert_true(json_is_null(json_object_get(f, "hint")));
	assert_int_equal(json_array_size(json_object_get(f, "detail")), 0);
	p = json_array_get(json_object_get(doc, "probes"), 1);
	assert_false(json_is_true(json_object_get(p, "up")));
	assert_string_equal(json_string_value(json_object_get(p, "failure_reason")), "connect");
	assert_string_equal(json_string_value(json_object_get(p, "error")), "connection refused");
	assert_true(json_is_null(json_object_get(p, "trace")));
	json_decref(doc);
	usher_buf_free(&out);
	usher_arena_free(r[0].arena);
	usher_arena_free(r[1].arena);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_raises_status_and_drops_ok_hints),
	    cmocka_unit_test(test_threshold_set),
	    cmocka_unit_test(test_runbook_urls),
	    cmocka_unit_test(test_sample_lookup),
	    cmocka_unit_test(test_http_tls_days_and_timings),
	    cmocka_unit_test(test_http_down),
	    cmocka_unit_test(test_host_filesystems),
	    cmocka_unit_test(test_memcached_connections),
	    cmocka_unit_test(test_redis_info_checks),
	    cmocka_unit_test(test_render_text),
	    cmocka_unit_test(test_render_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
