/* Unit tests of the redis probe's options: good configs fill struct
 * usher_redis_opts as documented, bad ones give the exact file:line:col
 * messages `usher check-config` shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "probes/redis.h"

#define CA_FILE USHER_TEST_DATA "/redis/test-ca.pem"

/* Loads text; returns every diagnostic, one per line, or "" when valid. */
static const char *load(const char *text, struct usher_config **out)
{
	static char all[8192];
	struct usher_config *cfg = NULL;
	struct usher_diags d;
	size_t i, off = 0;

	usher_diags_init(&d);
	usher_config_load_text("t.yml", text, strlen(text), &cfg, &d);
	all[0] = '\0';
	for (i = 0; i < d.n; i++) {
		struct usher_diags single = {.v = d.v + i, .n = 1};
		char one[2048];

		usher_diags_first(&single, one, sizeof(one));
		off += (size_t)snprintf(all + off, sizeof(all) - off, "%s%s", off ? "\n" : "", one);
	}
	usher_diags_free(&d);
	assert_true((cfg == NULL) == (all[0] != '\0'));
	if (out)
		*out = cfg;
	else
		usher_config_free(cfg);
	return all;
}

/* One redis probe named c with the given extra lines (indented 4): the
 * probe's map starts at line 2, column 5; its keys from line 4. */
static const char *probe(const char *lines)
{
	static char buf[4096 + 64];

	snprintf(buf, sizeof(buf), "probes:\n  - name: c\n    type: redis\n%s", lines);
	return buf;
}

static const struct usher_redis_opts *opts_of(const struct usher_config *cfg)
{
	assert_int_equal(cfg->nprobes, 1);
	assert_ptr_equal(cfg->probes[0].type, &usher_probe_redis);
	return cfg->probes[0].opts;
}

static void test_defaults(void **state)
{
	const struct usher_redis_opts *o;
	struct usher_config *cfg;

	(void)state;
	assert_string_equal(load(probe("    address: cache.internal\n"), &cfg), "");
	o = opts_of(cfg);
	assert_string_equal(o->address, "cache.internal");
	assert_false(o->addr.is_unix);
	assert_string_equal(o->addr.host, "cache.internal");
	assert_string_equal(o->addr.port, "6379");
	assert_null(o->username);
	assert_null(o->password);
	assert_int_equal(o->db, 0);
	assert_false(o->tls_enabled);
	assert_int_equal(o->connect_timeout_ms, 5000);
	assert_int_equal(o->key_patterns.n, 0);
	assert_int_equal(o->key_budget, 10000);
	assert_int_equal(o->scan_count, 1000);
	/* the address as written is the instance */
	assert_string_equal(cfg->probes[0].instance, "cache.internal");
	assert_string_equal(cfg->probes[0].job, "c");
	usher_config_free(cfg);
}

static void test_addresses(void **state)
{
	static const struct {
		const char *address;
		bool is_unix;
		const char *host, *port, *path;
	} cases[] = {
	    {"10.0.0.5:6380", false, "10.0.0.5", "6380", ""},
	    {"[::1]:7000", false, "::1", "7000", ""},
	    {"[fe80::1]", false, "fe80::1", "6379", ""},
	    {"redis-0.redis.svc:6379", false, "redis-0.redis.svc", "6379", ""},
	    {"unix:/run/redis/redis.sock", true, "", "", "/run/redis/redis.sock"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_config *cfg;
		const struct usher_redis_opts *o;
		char lines[256];

		snprintf(lines, sizeof(lines), "    address: \"%s\"\n", cases[i].address);
		assert_string_equal(load(probe(lines), &cfg), "");
		o = opts_of(cfg);
		assert_int_equal(o->addr.is_unix, cases[i].is_unix);
		assert_string_equal(o->addr.host, cases[i].host);
		assert_string_equal(o->addr.port, cases[i].port);
		assert_string_equal(o->addr.path, cases[i].path);
		assert_string_equal(cfg->probes[0].instance, cases[i].address);
		usher_config_free(cfg);
	}
}

static void test_full(void **state)
{
	const struct usher_redis_opts *o;
	const struct usher_redis_key_pattern *kp;
	struct usher_config *cfg;

	(void)state;
	setenv("USHER_TEST_REDIS_PASS", "s3cret", 1);
	assert_string_equal(load(probe("    address: cache:6380\n"
				       "    username: usher\n"
				       "    password: \"${env:USHER_TEST_REDIS_PASS}\"\n"
				       "    db: 3\n"
				       "    tls:\n"
				       "      ca_file: " CA_FILE "\n"
				       "      server_name: cache.internal\n"
				       "    connect_timeout: 750ms\n"
				       "    key_patterns:\n"
				       "      - \"hold:*\"\n"
				       "      - {pattern: \"session:*\", count_only: true}\n"
				       "      - pattern: \"rate:*\"\n"
				       "    key_budget: 5000\n"
				       "    scan_count: 250\n"
				       "    labels: {instance: seat-cache}\n"),
				 &cfg),
			    "");
	o = opts_of(cfg);
	assert_string_equal(o->username, "usher");
	assert_string_equal(o->password, "s3cret");
	assert_int_equal(o->db, 3);
	assert_true(o->tls_enabled);
	assert_string_equal(o->tls.ca_file, CA_FILE);
	assert_string_equal(o->tls.server_name, "cache.internal");
	assert_false(o->tls.insecure_skip_verify);
	assert_int_equal(o->connect_timeout_ms, 750);
	assert_int_equal(o->key_patterns.n, 3);
	kp = o->key_patterns.v;
	assert_string_equal(kp[0].pattern, "hold:*");
	assert_false(kp[0].count_only);
	assert_string_equal(kp[1].pattern, "session:*");
	assert_true(kp[1].count_only);
	assert_string_equal(kp[2].pattern, "rate:*");
	assert_false(kp[2].count_only);
	assert_int_equal(o->key_budget, 5000);
	assert_int_equal(o->scan_count, 250);
	assert_string_equal(cfg->probes[0].instance, "seat-cache");
	usher_config_free(cfg);

	/* a scalar is a list of one; tls: {} turns TLS on with defaults */
	assert_string_equal(load(probe("    address: cache\n"
				       "    key_patterns: \"hold:*\"\n"
				       "    tls: {}\n"),
				 &cfg),
			    "");
	o = opts_of(cfg);
	assert_int_equal(o->key_patterns.n, 1);
	assert_string_equal(((const struct usher_redis_key_pattern *)o->key_patterns.v)[0].pattern,
			    "hold:*");
	assert_true(o->tls_enabled);
	assert_null(o->tls.ca_file);
	usher_config_free(cfg);
}

static void test_errors(void **state)
{
	static const struct {
		const char *lines;
		const char *want;
	} cases[] = {
	    {"    db: 1\n", "t.yml:2:5: missing required key \"address\""},
	    {"    address: cache:99999\n",
	     "t.yml:4:14: address \"cache:99999\": invalid port \"99999\": use a number from 1 to "
	     "65535"},
	    {"    address: \"cache:\"\n",
	     "t.yml:4:14: address \"cache:\": invalid port \"\": use a number from 1 to 65535"},
	    {"    address: \":6379\"\n",
	     "t.yml:4:14: address \":6379\": missing host before the port"},
	    {"    address: \"::1:6379\"\n",
	     "t.yml:4:14: address \"::1:6379\": an IPv6 address goes in brackets: [::1:6379]:port"},
	    {"    address: \"[::1\"\n",
	     "t.yml:4:14: address \"[::1\": missing ']' after the IPv6 address"},
	    {"    address: unix:run/redis.sock\n",
	     "t.yml:4:14: address \"unix:run/redis.sock\": a unix socket needs an absolute path, "
	     "like unix:/run/redis/redis.sock"},
	    {"    address: \"\"\n",
	     "t.yml:4:14: address \"\": empty address: use host:port or unix:/path"},
	    {"    address: cache\n    username: usher\n", "t.yml:5:15: username needs a password"},
	    {"    address: cache\n    db: -1\n", "t.yml:5:9: db: must be 0 or more"},
	    {"    address: cache\n    db: one\n",
	     "t.yml:5:9: db: expected an integer, got \"one\""},
	    {"    address: cache\n    connect_timeout: 0s\n",
	     "t.yml:5:22: connect_timeout: must be longer than 0s"},
	    {"    address: cache\n    key_budget: 0\n",
	     "t.yml:5:17: key_budget: must be greater than 0"},
	    {"    address: cache\n    scan_count: 20000\n",
	     "t.yml:5:17: scan_count: at most 10000"},
	    {"    address: cache\n    key_patterns: [a]\n    key_budget: 100\n",
	     "t.yml:6:17: scan_count 1000 is more than key_budget 100: one SCAN would spend the "
	     "whole budget"},
	    {"    address: cache\n    key_patterns: {pattern: a}\n",
	     "t.yml:5:19: key_patterns: expected a list of patterns, got a mapping"},
	    {"    address: cache\n    key_patterns:\n      - count_only: true\n",
	     "t.yml:6:9: missing required key \"pattern\""},
	    {"    address: cache\n    key_patterns:\n      - {pattern: a, count: true}\n",
	     "t.yml:6:22: unknown key \"count\""},
	    {"    address: cache\n    key_patterns:\n      - {pattern: a, count_ony: true}\n",
	     "t.yml:6:22: unknown key \"count_ony\" (did you mean \"count_only\"?)"},
	    {"    address: cache\n    key_patterns: [\"hold:*\", \"seat:*\", \"hold:*\"]\n",
	     "t.yml:5:40: key_patterns: \"hold:*\" is listed twice (first at line 5)"},
	    {"    address: cache\n    key_patterns: [\"\"]\n",
	     "t.yml:5:20: key_patterns: empty pattern (use \"*\" for every key)"},
	    {"    address: cache\n    key_patterns: [[a]]\n",
	     "t.yml:5:20: key_patterns: expected a pattern or a mapping with pattern, got a "
	     "sequence"},
	    {"    address: unix:/run/redis.sock\n    tls: {}\n",
	     "t.yml:5:10: tls: a unix socket address takes no TLS"},
	    {"    address: cache\n    tls: {key_file: /etc/hostname}\n",
	     "t.yml:5:21: tls: key_file needs cert_file"},
	    {"    address: cache\n    tls: {ca_file: /nonexistent/ca.pem}\n",
	     "t.yml:5:20: tls.ca_file: cannot read /nonexistent/ca.pem: No such file or "
	     "directory"},
	    {"    address: cache\n    tls: {ca_file: " USHER_TEST_DATA "/redis/redis5.info}\n",
	     "t.yml:5:10: tls: cannot load CA certificates from " USHER_TEST_DATA
	     "/redis/redis5.info: no certificate or crl found"},
	    {"    address: cache\n    tls: {ca_file: " CA_FILE ", cert_file: " CA_FILE "}\n",
	     "t.yml:5:10: tls: cannot load the private key " CA_FILE
	     " (want an unencrypted PEM key): unsupported"},
	    {"    address: cache\n    password: \"${env:USHER_TEST_NO_SUCH_VAR}\"\n",
	     "t.yml:5:15: environment variable USHER_TEST_NO_SUCH_VAR is not set"},
	    {"    adress: cache\n",
	     "t.yml:2:5: missing required key \"address\"\n"
	     "t.yml:4:5: unknown key \"adress\" (did you mean \"address\"?)"},
	};
	size_t i, failed = 0;

	(void)state;
	unsetenv("USHER_TEST_NO_SUCH_VAR");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = load(probe(cases[i].lines), NULL);

		if (strcmp(got, cases[i].want) != 0) {
			print_error("case %zu:\n%s\ngot:  %s\nwant: %s\n", i, cases[i].lines, got,
				    cases[i].want);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* The secret never appears in a message, even when the config is bad. */
static void test_password_not_echoed(void **state)
{
	const char *got;

	(void)state;
	got = load(probe("    address: cache:0\n    password: hunter2-not-shown\n"), NULL);
	assert_non_null(strstr(got, "invalid port"));
	assert_null(strstr(got, "hunter2"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_addresses),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_password_not_echoed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
