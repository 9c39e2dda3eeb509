/* Unit tests of the http probe's options: good configs fill struct
 * usher_http_opts as documented, bad ones give the exact file:line:col
 * messages a user sees from `usher check-config`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "probes/http.h"

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

/* One http probe named p with the given extra lines (indented 4). */
static const char *probe(const char *lines)
{
	static char buf[4096 + 64];

	snprintf(buf, sizeof(buf), "probes:\n  - name: p\n    type: http\n%s", lines);
	return buf;
}

static const struct usher_http_opts *opts_of(const struct usher_config *cfg)
{
	assert_int_equal(cfg->nprobes, 1);
	assert_ptr_equal(cfg->probes[0].type, &usher_probe_http);
	return cfg->probes[0].opts;
}

static void test_defaults(void **state)
{
	struct usher_config *cfg;
	const struct usher_http_opts *o;

	(void)state;
	assert_string_equal(load(probe("    url: http://api.example/health\n"), &cfg), "");
	o = opts_of(cfg);
	assert_string_equal(o->url, "http://api.example/health");
	assert_string_equal(o->method, "GET");
	assert_null(o->body);
	assert_true(o->follow_redirects);
	assert_int_equal(o->valid_status_codes.n, 0); /* any 2xx */
	assert_int_equal(o->fail_if_body_matches_regexp.n, 0);
	assert_int_equal(o->json.n, 0);
	assert_int_equal(o->body_size_limit, 10 * 1024 * 1024);
	assert_int_equal(o->ip_protocol, 0); /* ip4 */
	assert_true(o->ip_protocol_fallback);
	assert_false(o->tls.insecure_skip_verify);
	assert_null(o->tls.ca_file);
	assert_null(o->basic_auth.username);
	assert_null(o->bearer_token);
	assert_string_equal(cfg->probes[0].instance, "api.example:80");
	assert_string_equal(cfg->probes[0].job, "p");
	usher_config_free(cfg);
}

static void test_full(void **state)
{
	char ca[] = "/tmp/usher-http-ca-XXXXXX", yaml[4096];
	const struct usher_http_header_match *hm;
	const struct usher_http_json_assert *ja;
	const struct usher_http_opts *o;
	struct usher_config *cfg;
	int fd = mkstemp(ca);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	setenv("USHER_TEST_TOKEN", "tok-123", 1);
	setenv("USHER_TEST_PASS", "pw-456", 1);
	snprintf(yaml, sizeof(yaml),
		 "    url: https://shop.example:8443/api/health?full=1\n"
		 "    method: POST\n"
		 "    headers:\n"
		 "      X-Api-Key: \"${env:USHER_TEST_TOKEN}\"\n"
		 "      Accept: application/json\n"
		 "    body: '{\"probe\": true}'\n"
		 "    follow_redirects: false\n"
		 "    valid_status_codes: [200, \"3xx\", 404]\n"
		 "    fail_if_body_matches_regexp: \"(?i)error\"\n"
		 "    fail_if_body_not_matches_regexp: [ok, '\"up\":\\s*true']\n"
		 "    fail_if_header_matches:\n"
		 "      - {header: Server, regexp: \"^Apache\", allow_missing: true}\n"
		 "    fail_if_header_not_matches:\n"
		 "      - header: content-type\n"
		 "        regexp: json\n"
		 "    json:\n"
		 "      - {pointer: /status, equals: ok}\n"
		 "      - {pointer: /checks/0/name, type: string, matches: \"^db\"}\n"
		 "      - {pointer: /maintenance, exists: false}\n"
		 "      - {pointer: /version, equals: \"3\"}\n"
		 "    tls:\n"
		 "      ca_file: %s\n"
		 "      server_name: shop.internal\n"
		 "      insecure_skip_verify: true\n"
		 "    basic_auth: {username: usher, password: \"${env:USHER_TEST_PASS}\"}\n"
		 "    body_size_limit: 64KiB\n"
		 "    ip_protocol: ip6\n"
		 "    ip_protocol_fallback: false\n",
		 ca);
	assert_string_equal(load(probe(yaml), &cfg), "");
	o = opts_of(cfg);
	assert_string_equal(o->method, "POST");
	assert_int_equal(o->headers.n, 2);
	assert_string_equal(usher_strmap_get(&o->headers, "X-Api-Key"), "tok-123");
	assert_string_equal(usher_strmap_get(&o->headers, "Accept"), "application/json");
	assert_string_equal(o->body, "{\"probe\": true}");
	assert_false(o->follow_redirects);
	assert_int_equal(o->valid_status_codes.n, 3);
	assert_int_equal(o->valid_status_codes.v[0].lo, 200);
	assert_int_equal(o->valid_status_codes.v[0].hi, 200);
	assert_int_equal(o->valid_status_codes.v[1].lo, 300);
	assert_int_equal(o->valid_status_codes.v[1].hi, 399);
	assert_int_equal(o->valid_status_codes.v[2].lo, 404);
	assert_int_equal(o->fail_if_body_matches_regexp.n, 1); /* a scalar is a list of one */
	assert_string_equal(o->fail_if_body_matches_regexp.v[0], "(?i)error");
	assert_int_equal(o->fail_if_body_not_matches_regexp.n, 2);
	assert_string_equal(o->fail_if_body_not_matches_regexp.v[1], "\"up\":\\s*true");
	assert_int_equal(o->fail_if_header_matches.n, 1);
	hm = o->fail_if_header_matches.v;
	assert_string_equal(hm[0].header, "Server");
	assert_string_equal(hm[0].regexp, "^Apache");
	assert_true(hm[0].allow_missing);
	hm = o->fail_if_header_not_matches.v;
	assert_int_equal(o->fail_if_header_not_matches.n, 1);
	assert_string_equal(hm[0].header, "content-type");
	assert_false(hm[0].allow_missing);
	assert_int_equal(o->json.n, 4);
	ja = o->json.v;
	assert_string_equal(ja[0].pointer, "/status");
	assert_int_equal(ja[0].equals.kind, USHER_HTTP_SCALAR_STRING);
	assert_string_equal(ja[0].equals.text, "ok");
	assert_int_equal(ja[1].type, USHER_HTTP_JSON_STRING);
	assert_string_equal(ja[1].matches, "^db");
	assert_int_equal(ja[1].equals.kind, USHER_HTTP_SCALAR_UNSET);
	assert_int_equal(ja[2].exists, USHER_HTTP_NO);
	assert_int_equal(ja[3].equals.kind, USHER_HTTP_SCALAR_STRING); /* quoted */
	assert_string_equal(o->tls.ca_file, ca);
	assert_string_equal(o->tls.server_name, "shop.internal");
	assert_true(o->tls.insecure_skip_verify);
	assert_string_equal(o->basic_auth.username, "usher");
	assert_string_equal(o->basic_auth.password, "pw-456");
	assert_int_equal(o->body_size_limit, 64 * 1024);
	assert_int_equal(o->ip_protocol, 6);
	assert_false(o->ip_protocol_fallback);
	assert_string_equal(cfg->probes[0].instance, "shop.example:8443");
	usher_config_free(cfg);
	unlink(ca);
}

/* How `equals` reads each YAML scalar (the YAML 1.2 core schema). */
static void test_equals_kinds(void **state)
{
	static const struct {
		const char *yaml;
		enum usher_http_scalar_kind kind;
		double d;
		bool b;
	} cases[] = {
	    {"ok", USHER_HTTP_SCALAR_STRING, 0, false},
	    {"\"3\"", USHER_HTTP_SCALAR_STRING, 0, false},
	    {"'true'", USHER_HTTP_SCALAR_STRING, 0, false},
	    {"yes", USHER_HTTP_SCALAR_STRING, 0, false}, /* YAML 1.1's booleans are strings */
	    {"3", USHER_HTTP_SCALAR_INT, 3, false},
	    {"-17", USHER_HTTP_SCALAR_INT, -17, false},
	    {"0x1F", USHER_HTTP_SCALAR_INT, 31, false},
	    {"0o17", USHER_HTTP_SCALAR_INT, 15, false},
	    {"2.5", USHER_HTTP_SCALAR_FLOAT, 2.5, false},
	    {"-.5", USHER_HTTP_SCALAR_FLOAT, -0.5, false},
	    {"1e3", USHER_HTTP_SCALAR_FLOAT, 1000, false},
	    {"99999999999999999999", USHER_HTTP_SCALAR_FLOAT, 1e20, false},
	    {".inf", USHER_HTTP_SCALAR_FLOAT, INFINITY, false},
	    {"1.2.3", USHER_HTTP_SCALAR_STRING, 0, false},
	    {"true", USHER_HTTP_SCALAR_BOOL, 0, true},
	    {"False", USHER_HTTP_SCALAR_BOOL, 0, false},
	    {"null", USHER_HTTP_SCALAR_NULL, 0, false},
	    {"~", USHER_HTTP_SCALAR_NULL, 0, false},
	    {"", USHER_HTTP_SCALAR_NULL, 0, false},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct usher_http_json_assert *ja;
		struct usher_config *cfg;
		char lines[512];
		const char *got;

		snprintf(lines, sizeof(lines),
			 "    url: http://x/\n    json:\n      - pointer: /a\n        equals: %s\n",
			 cases[i].yaml);
		got = load(probe(lines), &cfg);
		if (*got)
			fail_msg("equals: %s: %s", cases[i].yaml, got);
		ja = opts_of(cfg)->json.v;
		if (ja[0].equals.kind != cases[i].kind)
			fail_msg("equals: %s: kind %d, want %d", cases[i].yaml, ja[0].equals.kind,
				 cases[i].kind);
		if (cases[i].kind == USHER_HTTP_SCALAR_INT ||
		    cases[i].kind == USHER_HTTP_SCALAR_FLOAT)
			assert_true(ja[0].equals.d == cases[i].d);
		if (cases[i].kind == USHER_HTTP_SCALAR_BOOL)
			assert_int_equal(ja[0].equals.b, cases[i].b);
		usher_config_free(cfg);
	}
}

static void test_instance_and_describe(void **state)
{
	static const struct {
		const char *url;
		const char *instance;
		const char *what;
	} cases[] = {
	    {"https://api.example/health", "api.example:443", "GET https://api.example/health"},
	    {"http://10.0.0.5:8080/x", "10.0.0.5:8080", "GET http://10.0.0.5:8080/x"},
	    {"http://[::1]/", "[::1]:80", "GET http://[::1]/"},
	    {"https://user:pa55@api.example:9443/a@b", "api.example:9443",
	     "GET https://api.example:9443/a@b"},
	    {"HTTPS://Api.Example/", "Api.Example:443", "GET HTTPS://Api.Example/"},
	};
	struct usher_arena *a = usher_arena_new();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_http_opts o = {.url = cases[i].url, .method = "GET"};
		char *what = usher_http_describe(&o);

		assert_string_equal(usher_http_instance(a, cases[i].url), cases[i].instance);
		assert_string_equal(what, cases[i].what);
		free(what);
	}
	usher_arena_free(a);
}

static void test_errors(void **state)
{
	static const struct {
		const char *lines;
		const char *want;
	} cases[] = {
	    {"    url: http://x/\n    fail_if_body_matches_regexp: \"(\"\n",
	     "t.yml:5:34: invalid regexp \"(\": missing closing parenthesis at offset 1"},
	    {"    url: http://x/\n    fail_if_body_not_matches_regexp: [ok, \"a{2,1}\", "
	     "\"[z-a]\"]\n",
	     "t.yml:5:43: invalid regexp \"a{2,1}\": numbers out of order in {} quantifier at "
	     "offset 5\n"
	     "t.yml:5:53: invalid regexp \"[z-a]\": range out of order in character class at "
	     "offset 3"},
	    {"    url: http://x/\n    fail_if_body_matches_regexp: {a: b}\n",
	     "t.yml:5:34: expected a list of regular expressions, got a mapping"},
	    {"    url: ftp://x/\n",
	     "t.yml:4:10: url \"ftp://x/\": must start with http:// or https://"},
	    {"    url: api.example/health\n",
	     "t.yml:4:10: url \"api.example/health\": must start with http:// or https://"},
	    {"    url: \"https://user:secret@\"\n",
	     "t.yml:4:10: url \"https://\": no host part in the URL"},
	    {"    url: http://x/\n    method: \"GE T\"\n",
	     "t.yml:5:13: method \"GE T\" is not a valid HTTP method"},
	    {"    url: http://x/\n    valid_status_codes: [200, abc, 600, \"6xx\", [1]]\n",
	     "t.yml:5:31: invalid status code \"abc\": want a number from 100 to 599 or a class "
	     "like \"2xx\"\n"
	     "t.yml:5:36: invalid status code \"600\": want a number from 100 to 599 or a class "
	     "like \"2xx\"\n"
	     "t.yml:5:41: invalid status code \"6xx\": want a number from 100 to 599 or a class "
	     "like \"2xx\"\n"
	     "t.yml:5:48: invalid status code sequence: want a number from 100 to 599 or a class "
	     "like \"2xx\""},
	    {"    url: http://x/\n    ip_protocol: ip5\n",
	     "t.yml:5:18: ip_protocol: \"ip5\" is not one of ip4, ip6"},
	    {"    url: http://x/\n    body_size_limit: 0\n",
	     "t.yml:5:22: body_size_limit: must be greater than 0"},
	    {"    url: http://x/\n    json:\n      - {pointer: status, equals: ok}\n",
	     "t.yml:6:19: invalid JSON Pointer \"status\": must be empty (the whole document) or "
	     "start with \"/\""},
	    {"    url: http://x/\n    json:\n      - {pointer: /a~2, equals: ok}\n",
	     "t.yml:6:19: invalid JSON Pointer \"/a~2\": \"~\" at offset 2 must be followed by 0 "
	     "or 1 (write ~0 for \"~\" and ~1 for \"/\")"},
	    {"    url: http://x/\n    json:\n      - {equals: ok}\n",
	     "t.yml:6:9: missing required key \"pointer\""},
	    {"    url: http://x/\n    json:\n      - pointer: /a\n",
	     "t.yml:6:9: json: /a needs at least one of equals, type, exists, matches"},
	    {"    url: http://x/\n    json:\n      - {pointer: /a, exists: false, equals: 1}\n",
	     "t.yml:6:31: json: exists: false cannot go with equals, type or matches"},
	    {"    url: http://x/\n    json:\n      - {pointer: /a, type: number, matches: x}\n",
	     "t.yml:6:46: json: matches needs a string, but type is number"},
	    {"    url: http://x/\n    json:\n      - {pointer: /a, type: float}\n",
	     "t.yml:6:29: type: \"float\" is not one of string, number, integer, boolean, object, "
	     "array, null"},
	    {"    url: http://x/\n    json:\n      - {pointer: /a, exists: maybe}\n",
	     "t.yml:6:31: exists: expected true or false, got \"maybe\""},
	    {"    url: http://x/\n    json:\n      - {pointer: /a, equals: [1]}\n",
	     "t.yml:6:31: equals: expected a string, number, boolean or null, got a sequence"},
	    {"    url: http://x/\n    json:\n      - {pointer: /a, equals: .nan}\n",
	     "t.yml:6:31: equals: .nan never equals anything; use type: number"},
	    {"    url: http://x/\n    json:\n      - {pointer: /a, matches: \"a)\"}\n",
	     "t.yml:6:32: invalid regexp \"a)\": unmatched closing parenthesis at offset 1"},
	    {"    url: http://x/\n    fail_if_header_matches:\n      - {header: Server}\n",
	     "t.yml:6:9: missing required key \"regexp\""},
	    {"    url: http://x/\n    fail_if_header_not_matches:\n"
	     "      - {header: Server, regexp: \"*x\"}\n",
	     "t.yml:6:34: invalid regexp \"*x\": quantifier does not follow a repeatable item at "
	     "offset 0"},
	    {"    url: http://x/\n    headers: {\"X Bad\": 1}\n",
	     "t.yml:5:15: headers: invalid header name \"X Bad\""},
	    {"    url: http://x/\n    bearer_token: abc\n    basic_auth: {username: u}\n",
	     "t.yml:5:19: set basic_auth or bearer_token, not both"},
	    {"    url: http://x/\n    basic_auth: {password: p}\n",
	     "t.yml:5:17: basic_auth: password needs a username"},
	    {"    url: https://x/\n    tls: {key_file: /nonexistent/usher.key}\n",
	     "t.yml:5:21: tls: key_file needs cert_file\n"
	     "t.yml:5:21: tls.key_file: cannot read /nonexistent/usher.key: No such file or "
	     "directory"},
	    {"    url: https://x/\n    tls: {ca_file: /nonexistent/ca.pem}\n",
	     "t.yml:5:20: tls.ca_file: cannot read /nonexistent/ca.pem: No such file or directory"},
	    {"    url: http://x/\n    method: HEAD\n    body: hello\n",
	     "t.yml:6:11: method HEAD cannot send a body"},
	    {"    url: http://x/\n    method: HEAD\n    json: [{pointer: /a, exists: true}]\n",
	     "t.yml:6:11: method HEAD gets no body, so this can never pass"},
	    {"    url: http://x/\n    json: {pointer: /a}\n",
	     "t.yml:5:11: json: expected a list, got a mapping"},
	    {"    url: http://x/\n    follow_redirect: false\n",
	     "t.yml:5:5: unknown key \"follow_redirect\" (did you mean \"follow_redirects\"?)"},
	    {"", "t.yml:2:5: missing required key \"url\""},
	};
	size_t i, bad = 0;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = load(probe(cases[i].lines), NULL);

		if (strcmp(got, cases[i].want) != 0) {
			print_error("case %zu:\n--- yaml\n%s--- got\n%s\n--- want\n%s\n", i,
				    probe(cases[i].lines), got, cases[i].want);
			bad++;
		}
	}
	if (bad)
		fail_msg("%zu of %zu cases failed", bad, sizeof(cases) / sizeof(cases[0]));
}

/* Secrets in headers and credentials never show up in a message. */
static void test_secrets_not_echoed(void **state)
{
	const char *got;

	(void)state;
	setenv("USHER_TEST_HDR", "line1\nsecret-part", 1);
	got = load(probe("    url: http://x/\n    headers: {X-Token: \"${env:USHER_TEST_HDR}\"}\n"),
		   NULL);
	assert_string_equal(got, "t.yml:5:15: headers: the value of X-Token contains a line break");
	assert_null(strstr(got, "secret-part"));
	/* userinfo in a bad URL is dropped before it is quoted */
	got = load(probe("    url: \"https://admin:hunter2@\"\n"), NULL);
	assert_null(strstr(got, "hunter2"));
	assert_null(strstr(got, "admin"));
	unsetenv("USHER_TEST_HDR_UNSET");
	got = load(probe("    url: http://x/\n    bearer_token: \"${env:USHER_TEST_HDR_UNSET}\"\n"),
		   NULL);
	assert_string_equal(got,
			    "t.yml:5:19: environment variable USHER_TEST_HDR_UNSET is not set");
}

/* The option table is what check-config --reference and the docs print. */
static void test_reference(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	usher_opts_describe(f, usher_http_options, 0);
	fclose(f);
	assert_non_null(strstr(text, "url (string, required): http:// or https:// URL to request"));
	assert_non_null(strstr(text, "body_size_limit (size, default 10MiB)"));
	assert_non_null(strstr(text, "  pointer (value, required)"));
	assert_non_null(strstr(text, "  insecure_skip_verify (boolean, default false)"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),     cmocka_unit_test(test_full),
	    cmocka_unit_test(test_equals_kinds), cmocka_unit_test(test_instance_and_describe),
	    cmocka_unit_test(test_errors),       cmocka_unit_test(test_secrets_not_echoed),
	    cmocka_unit_test(test_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
