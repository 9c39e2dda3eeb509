/* Unit tests of config loading: good files fill the structs, bad ones give
 * exactly the file:line:col messages a user sees from usher check-config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

/* Loads text; returns every diagnostic, one per line, or "" when valid. */
static char *load(const char *text, struct usher_config **out)
{
	struct usher_diags d;
	struct usher_config *cfg = NULL;
	static char all[8192];
	size_t i, off = 0;

	usher_diags_init(&d);
	usher_config_load_text("t.yml", text, strlen(text), &cfg, &d);
	all[0] = '\0';
	for (i = 0; i < d.n; i++) {
		char one[2048];
		struct usher_diags single = {.v = d.v + i, .n = 1};

		usher_diags_first(&single, one, sizeof(one));
		off += (size_t)snprintf(all + off, sizeof(all) - off, "%s%s", off ? "\n" : "", one);
	}
	usher_diags_free(&d);
	if (out)
		*out = cfg;
	else
		usher_config_free(cfg);
	assert_true((cfg == NULL) == (all[0] != '\0'));
	return all;
}

static void test_defaults(void **state)
{
	struct usher_config *cfg;

	(void)state;
	assert_string_equal(load("", &cfg), "");
	assert_int_equal(cfg->global.scrape_interval_ms, 15000);
	assert_int_equal(cfg->global.evaluation_interval_ms, 15000);
	assert_string_equal(cfg->server.listen, "127.0.0.1:9469");
	assert_string_equal(cfg->state_dir, "/var/lib/usher");
	assert_string_equal(cfg->logging.level, "info");
	assert_string_equal(cfg->logging.format, "ecs");
	assert_int_equal(cfg->nprobes, 0);
	usher_config_free(cfg);
}

static void test_full(void **state)
{
	struct usher_config *cfg;
	const struct usher_probe_conf *p;

	(void)state;
	setenv("USHER_TEST_PW", "s3cret", 1);
	assert_string_equal(
		load("global:\n"
		     "  scrape_interval: 30s\n"
		     "  external_labels: {site: eu-1}\n"
		     "server:\n"
		     "  listen: \"127.0.0.1:0\"\n"
		     "  basic_auth_users: {grafana: \"${env:USHER_TEST_PW}\"}\n"
		     "state_dir: /tmp/usher-test\n"
		     "logging: {level: debug, format: text}\n"
		     "probes:\n"
		     "  - name: api\n"
		     "    type: http\n"
		     "    url: http://127.0.0.1:8080/health\n"
		     "  - name: checkout\n"
		     "    type: http\n"
		     "    url: https://shop.example:8443/checkout\n"
		     "    interval: 5s\n"
		     "    labels: {team: payments, instance: pay-1}\n",
		     &cfg),
		"");
	assert_int_equal(cfg->global.scrape_interval_ms, 30000);
	assert_string_equal(usher_strmap_get(&cfg->global.external_labels, "site"), "eu-1");
	assert_string_equal(usher_strmap_get(&cfg->server.basic_auth_users, "grafana"), "s3cret");
	assert_string_equal(cfg->logging.level, "debug");
	assert_int_equal(cfg->nprobes, 2);
	p = &cfg->probes[0];
	assert_string_equal(p->name, "api");
	assert_int_equal(p->interval_ms, 30000); /* global.scrape_interval */
	assert_int_equal(p->timeout_ms, 10000);  /* global.scrape_timeout */
	assert_string_equal(p->job, "api");
	assert_string_equal(p->instance, "127.0.0.1:8080");
	p = &cfg->probes[1];
	assert_int_equal(p->interval_ms, 5000);
	assert_int_equal(p->timeout_ms, 4500); /* the default stays below interval */
	assert_string_equal(p->job, "checkout");
	assert_string_equal(p->instance, "pay-1");
	assert_string_equal(usher_strmap_get(&p->labels, "team"), "payments");
	usher_config_free(cfg);
}

static void test_errors(void **state)
{
	static const struct {
		const char *yaml;
		const char *want;
	} cases[] = {
		{"glbal: {}\n", "t.yml:1:1: unknown key \"glbal\" (did you mean \"global\"?)"},
		{"global:\n  scrape_interval: fast\n",
		 "t.yml:2:20: scrape_interval: invalid duration \"fast\": use a number with a unit, "
		 "like 500ms, 15s, 1m30s or 2h"},
		{"global:\n  scrape_interval: [1s]\n",
		 "t.yml:2:20: scrape_interval: expected a duration, got a sequence"},
		{"global:\n  scrape_interval: 0s\n",
		 "t.yml:2:20: scrape_interval: must be longer than 0s"},
		{"state_dir: {a: b}\n", "t.yml:1:12: state_dir: expected a string, got a mapping"},
		{"probes:\n  - name: a\n    type: http\n    url: http://x/\n"
		 "  - name: a\n    type: http\n    url: http://y/\n",
		 "t.yml:5:11: duplicate probe name \"a\" (first at line 2)"},
		{"probes:\n  - name: a\n    type: http\n    url: http://x/\n"
		 "    interval: 10s\n    timeout: 10s\n",
		 "t.yml:6:14: timeout 10s must be shorter than interval 10s"},
		{"probes:\n  - name: a\n    type: carrier-pigeon\n",
		 "t.yml:3:11: unknown probe type \"carrier-pigeon\" (known: http, journey, postgres, redis, "
		 "memcached, host)"},
		{"probes:\n  - name: a\n",
		 "t.yml:2:5: missing required key \"type\" (one of: http, journey, postgres, redis, memcached, "
		 "host)"},
		{"probes:\n  - type: http\n    url: http://x/\n",
		 "t.yml:2:5: missing required key \"name\""},
		{"probes:\n  - name: a\n    type: http\n    url: http://x/\n    intervall: 5s\n",
		 "t.yml:5:5: unknown key \"intervall\" (did you mean \"interval\"?)"},
		{"probes:\n  - name: a b\n    type: http\n    url: http://x/\n",
		 "t.yml:2:11: invalid probe name \"a b\": use letters, digits, '_', '-', '.' and ':'"},
		{"probes:\n  - name: a\n    type: http\n    url: http://x/\n    labels: {1x: y}\n",
		 "t.yml:5:14: invalid label name \"1x\": use letters, digits and underscores, not "
		 "starting with a digit"},
		{"probes:\n  - name: a\n    type: http\n    url: http://x/\n    labels: {__x: y}\n",
		 "t.yml:5:14: label names starting with \"__\" are reserved"},
		{"probes: {name: a}\n", "t.yml:1:9: probes: expected a list, got a mapping"},
		{"global:\n  scrape_interval: 1s\n  scrape_interval: 2s\n",
		 "t.yml:3:3: duplicate key \"scrape_interval\" (first at line 2)"},
		{"global: [\n", "t.yml:2:1: yaml: did not find expected node content while parsing "
				"a flow node"},
		{"a: 1\n---\nb: 2\n", "t.yml:2:1: only one YAML document is allowed"},
		{"- 1\n", "t.yml:1:1: expected a mapping of sections at the top, got a sequence"},
		{"server:\n  basic_auth_users: {u: \"${env:USHER_TEST_UNSET_VAR}\"}\n",
		 "t.yml:2:25: environment variable USHER_TEST_UNSET_VAR is not set"},
		{"server:\n  basic_auth_users: {u: \"${file:/nonexistent/usher/secret}\"}\n",
		 "t.yml:2:25: cannot read secret file /nonexistent/usher/secret: No such file or "
		 "directory"},
		{"server:\n  basic_auth_users: {u: \"${vault:x}\"}\n",
		 "t.yml:2:25: unknown reference ${vault:...}: use ${env:NAME} or ${file:/path}"},
		{"logging: {level: loud}\n",
		 "t.yml:1:18: logging.level: \"loud\" is not one of debug, info, warn, error"},
		{"server:\n  tls: {cert_file: /x.pem}\n",
		 "t.yml:2:8: server.tls: cert_file and key_file go together\n"
		 "t.yml:2:20: server.tls.cert_file: cannot read /x.pem: No such file or directory"},
	};
	size_t i;

	(void)state;
	unsetenv("USHER_TEST_UNSET_VAR");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = load(cases[i].yaml, NULL);

		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu:\n--- yaml\n%s--- got\n%s\n--- want\n%s", i, cases[i].yaml,
				 got, cases[i].want);
	}
}

static void test_all_errors_reported(void **state)
{
	const char *got;

	(void)state;
	/* one pass reports every mistake, not just the first */
	got = load("global: {scrape_interval: x}\n"
		   "probes:\n"
		   "  - {name: a, type: http, url: \"http://x/\", bogus: 1}\n"
		   "  - {name: b, type: nope}\n",
		   NULL);
	assert_non_null(strstr(got, "t.yml:1:27: scrape_interval: invalid duration"));
	assert_non_null(strstr(got, "t.yml:3:45: unknown key \"bogus\""));
	assert_non_null(strstr(got, "t.yml:4:21: unknown probe type \"nope\""));
}

static void test_secret_file(void **state)
{
	char path[] = "/tmp/usher-test-secret-XXXXXX";
	char yaml[512];
	struct usher_config *cfg;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hash-from-file\n", 15), 15);
	close(fd);
	snprintf(yaml, sizeof(yaml), "server:\n  basic_auth_users: {u: \"${file:%s}\"}\n", path);
	assert_string_equal(load(yaml, &cfg), "");
	/* one trailing newline is dropped, as for Kubernetes/Docker secrets */
	assert_string_equal(usher_strmap_get(&cfg->server.basic_auth_users, "u"), "hash-from-file");
	usher_config_free(cfg);
	unlink(path);
}

static void test_secret_never_echoed(void **state)
{
	const char *got;

	(void)state;
	setenv("USHER_TEST_SECRET", "hunter2", 1);
	/* a secret resolved into a key that fails must not show up */
	got = load("server:\n  basic_auth_users: [\"${env:USHER_TEST_SECRET}\"]\n", NULL);
	assert_null(strstr(got, "hunter2"));
	assert_non_null(strstr(got, "t.yml:2:21:"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_secret_file),
		cmocka_unit_test(test_secret_never_echoed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
