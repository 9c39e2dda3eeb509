/* Unit tests of scrape_configs and textfile_dir in usher.yml: the probe
 * instances they generate (names, labels, intervals, the request of each
 * target) and every mistake reported at its file:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "probes/scrape.h"
#include "probes/textfile.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct usher_config *load_ok(const char *yaml)
{
	struct usher_diags diags;
	struct usher_config *cfg = NULL;

	usher_diags_init(&diags);
	if (usher_config_load_text("t.yml", yaml, strlen(yaml), &cfg, &diags)) {
		usher_diags_print(&diags, stderr);
		fail();
	}
	usher_diags_free(&diags);
	return cfg;
}

static void test_generated_instances(void **state)
{
	const char *yaml = "global: {scrape_interval: 20s, scrape_timeout: 15s}\n"
			   "probes:\n"
			   "  - {name: api, type: http, url: \"http://x/\"}\n"
			   "scrape_configs:\n"
			   "  - job_name: booking-api\n"
			   "    scrape_interval: 10s\n"
			   "    static_configs:\n"
			   "      - targets: [\"api-1:8080\", \"[::1]:9100\"]\n"
			   "        labels: {team: booking}\n"
			   "      - targets: api-2:8080\n"
			   "  - job_name: worker\n"
			   "    scheme: https\n"
			   "    metrics_path: /internal/metrics\n"
			   "    params: {module: [http_2xx, \"a b\"], x: \"&\"}\n"
			   "    scrape_timeout: 5s\n"
			   "    honor_labels: true\n"
			   "    sample_limit: 1000\n"
			   "    bearer_token: tok\n"
			   "    static_configs: [{targets: [\"w:1\"], labels: {job: renamed}}]\n"
			   "  - job_name: empty\n"
			   "textfile_dir: /var/lib/usher/textfile\n";
	struct usher_config *cfg = load_ok(yaml);
	const struct usher_probe_conf *p = cfg->probes;
	const struct usher_scrape_target *t;
	const struct usher_scrape_conf *sc = cfg->scrape_configs.v;
	const struct usher_textfile_opts *tf;

	(void)state;
	assert_int_equal(cfg->nprobes, 6);
	assert_int_equal(cfg->scrape_configs.n, 3);
	assert_string_equal(p[0].name, "api");

	assert_string_equal(p[1].name, "booking-api/api-1:8080");
	assert_ptr_equal(p[1].type, &usher_probe_scrape);
	assert_string_equal(p[1].job, "booking-api");
	assert_string_equal(p[1].instance, "api-1:8080");
	assert_string_equal(usher_strmap_get(&p[1].labels, "team"), "booking");
	assert_int_equal(p[1].interval_ms, 10000);
	/* Prometheus: the global timeout, capped at the interval; a scrape
	 * as long as its interval still ends before the next is due */
	assert_int_equal(sc[0].scrape_timeout_ms, 10000);
	assert_int_equal(p[1].timeout_ms, 9000);
	assert_int_equal(p[1].line, 8);
	t = p[1].opts;
	assert_string_equal(t->http.url, "http://api-1:8080/metrics");
	assert_string_equal(t->http.method, "GET");
	assert_true(t->http.keep_body);
	assert_int_equal(t->http.headers.n, 2);
	assert_string_equal(t->http.headers.v[0].key, "Accept");
	assert_string_equal(t->http.headers.v[0].value, USHER_SCRAPE_ACCEPT);
	assert_string_equal(t->http.headers.v[1].key, "X-Prometheus-Scrape-Timeout-Seconds");
	assert_string_equal(t->http.headers.v[1].value, "9");
	assert_int_equal(t->http.valid_status_codes.n, 1);
	assert_int_equal(t->http.valid_status_codes.v[0].lo, 200);
	assert_int_equal(t->http.valid_status_codes.v[0].hi, 200);
	assert_int_equal(t->http.body_size_limit, 32 << 20);
	assert_false(sc[0].honor_labels);

	assert_string_equal(p[2].name, "booking-api/[::1]:9100");
	assert_string_equal(((const struct usher_scrape_target *)p[2].opts)->http.url,
			    "http://[::1]:9100/metrics");
	assert_string_equal(p[3].instance, "api-2:8080");
	assert_int_equal(p[3].labels.n, 0);

	assert_string_equal(p[4].name, "worker/w:1");
	assert_string_equal(p[4].job, "renamed");
	assert_int_equal(p[4].interval_ms, 20000);
	assert_int_equal(p[4].timeout_ms, 5000);
	t = p[4].opts;
	assert_string_equal(t->http.url,
			    "https://w:1/internal/metrics?module=http_2xx&module=a%20b&x=%26");
	assert_string_equal(t->http.headers.v[1].value, "5");
	assert_string_equal(t->http.bearer_token, "tok");
	assert_true(t->job->honor_labels);
	assert_int_equal(t->job->sample_limit, 1000);

	assert_string_equal(p[5].name, "textfile:/var/lib/usher/textfile");
	assert_ptr_equal(p[5].type, &usher_probe_textfile);
	assert_string_equal(p[5].job, "textfile");
	assert_true(p[5].instance && *p[5].instance);
	assert_int_equal(p[5].interval_ms, 20000);
	assert_int_equal(p[5].timeout_ms, 15000);
	tf = p[5].opts;
	assert_string_equal(tf->dir, "/var/lib/usher/textfile");
	assert_string_equal(cfg->textfile_dir, "/var/lib/usher/textfile");
	usher_config_free(cfg);
}

static void test_relative_textfile_dir(void **state)
{
	struct usher_config *cfg = load_ok("textfile_dir: tf\n");

	(void)state;
	assert_int_equal(cfg->nprobes, 1);
	assert_string_equal(cfg->probes[0].name, "textfile:./tf");
	usher_config_free(cfg);
}

struct err_case {
	const char *yaml;
	const char *want; /* the first diagnostic */
};

static const struct err_case err_cases[] = {
    {"scrape_configs:\n  - job_name: a\n  - job_name: a\n",
     "t.yml:3:15: duplicate job_name \"a\" (first at line 2)"},
    {"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [api-1]}]\n",
     "t.yml:3:33: target \"api-1\": missing :port (host:port, e.g. api-1:8080)"},
    {"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [\"http://x:1\"]}]\n",
     "t.yml:3:33: target \"http://x:1\": no scheme here: set scheme (http or https) instead"},
    {"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [\"x:99999\"]}]\n",
     "t.yml:3:33: target \"x:99999\": the port must be between 1 and 65535"},
    {"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [\"x:1/m\"]}]\n",
     "t.yml:3:33: target \"x:1/m\": expected host:port, without a path, query or user"},
    {"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [\"::1:9\"]}]\n",
     "t.yml:3:33: target \"::1:9\": an IPv6 address goes in brackets: [::1]:9100"},
    {"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [\"x:1\", \"y:2\"]}, "
     "{targets: [\"x:1\"]}]\n",
     "t.yml:3:60: target \"x:1\" is listed twice in job a"},
    {"scrape_configs:\n  - job_name: a\n    scrape_interval: 10s\n    scrape_timeout: 11s\n",
     "t.yml:4:21: scrape_timeout 11s is longer than scrape_interval 10s"},
    {"scrape_configs:\n  - {job_name: a, scheme: ftp}\n",
     "t.yml:2:27: scheme \"ftp\" is not http or https"},
    {"scrape_configs:\n  - {job_name: a, metrics_path: metrics}\n",
     "t.yml:2:33: metrics_path \"metrics\" must be a path starting with / (query parameters "
     "go in params)"},
    {"scrape_configs:\n  - {job_name: a, metrics_path: \"/m?x=1\"}\n",
     "t.yml:2:33: metrics_path \"/m?x=1\" must be a path starting with / (query parameters "
     "go in params)"},
    {"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [\"x:1\"], labels: "
     "{bad-label: v}}]\n",
     "t.yml:3:50: invalid label name \"bad-label\": use letters, digits and underscores, not "
     "starting with a digit"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs: []\n",
     "t.yml:3:5: unknown key \"relabel_configs\""},
    {"scrape_configs:\n  - job_name: a\n    scrape_interval: 10\n",
     "t.yml:3:22: scrape_interval: invalid duration \"10\": use a number with a unit, like "
     "500ms, 15s, 1m30s or 2h"},
    {"scrape_configs:\n  - {job_name: a, bearer_token: t, basic_auth: {username: u}}\n",
     "t.yml:2:33: set basic_auth or bearer_token, not both"},
    {"scrape_configs:\n  - {job_name: a, sample_limit: -1}\n",
     "t.yml:2:33: sample_limit must be 0 (no limit) or more"},
    {"scrape_configs:\n  - {job_name: \"\"}\n", "t.yml:2:16: job_name must not be empty"},
    {"scrape_configs:\n  - static_configs: []\n", "t.yml:2:5: missing required key \"job_name\""},
    {"scrape_configs: {job_name: a}\n",
     "t.yml:1:17: scrape_configs: expected a list, got a mapping"},
    {"scrape_configs:\n  - job_name: a\n    params: {m: {x: y}}\n",
     "t.yml:3:17: params.m: expected a string or a list of strings"},
    {"textfile_dir: \"\"\n", "t.yml:1:15: textfile_dir must not be empty"},
    {"textfile_dir: [a]\n", "t.yml:1:15: textfile_dir: expected a directory path, got a sequence"},
    {"probes:\n  - {name: s, type: scrape}\n",
     "t.yml:2:21: unknown probe type \"scrape\" (known: http, journey, postgres, redis, memcached, host)"},
};

static void test_errors(void **state)
{
	size_t i, bad = 0;

	(void)state;
	for (i = 0; i < N(err_cases); i++) {
		struct usher_diags diags;
		struct usher_config *cfg = NULL;
		char first[1024];

		usher_diags_init(&diags);
		if (usher_config_load_text("t.yml", err_cases[i].yaml, strlen(err_cases[i].yaml),
					   &cfg, &diags) != USHER_ERR_INVALID) {
			print_error("case %zu: accepted:\n%s", i, err_cases[i].yaml);
			fail();
		}
		assert_null(cfg);
		usher_diags_first(&diags, first, sizeof(first));
		if (strcmp(first, err_cases[i].want) != 0) {
			print_error("case %zu:\n--- yaml\n%s--- got\n%s\n--- want\n%s\n", i,
				    err_cases[i].yaml, first, err_cases[i].want);
			bad++;
		}
		usher_diags_free(&diags);
	}
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_generated_instances),
	    cmocka_unit_test(test_relative_textfile_dir),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
