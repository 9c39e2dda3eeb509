/* Unit tests of the http probe's judging of a response: status, header,
 * body and JSON assertions with their exact failure messages, the order in
 * which blackbox_exporter applies them, the mapping of transport errors to
 * failure reasons, and the series a result turns into. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "probes/http.h"

#define WHAT "GET http://x/"

static struct usher_config *load_probe(const char *lines)
{
	char text[4096 + 64];
	struct usher_config *cfg = NULL;
	struct usher_diags d;
	char first[1024];

	snprintf(text, sizeof(text), "probes:\n  - name: p\n    type: http\n    url: http://x/\n%s",
		 lines);
	usher_diags_init(&d);
	usher_config_load_text("t.yml", text, strlen(text), &cfg, &d);
	if (!cfg)
		fail_msg("config: %s", usher_diags_first(&d, first, sizeof(first)));
	usher_diags_free(&d);
	return cfg;
}

static void run_init(struct usher_probe_run *run)
{
	memset(run, 0, sizeof(*run));
	run->success = true;
}

/* A response to judge, and what the judgement must be. */
struct acase {
	const char *opts; /* probe lines */
	long status;
	const char *head;
	const char *body;   /* NULL: empty */
	const char *reason; /* NULL: passes */
	const char *msg;
	bool regex_failed;
};

static void check_cases(const struct acase *cases, size_t n)
{
	size_t i, bad = 0;

	for (i = 0; i < n; i++) {
		const struct acase *c = &cases[i];
		struct usher_config *cfg = load_probe(c->opts);
		const struct usher_http_opts *o = cfg->probes[0].opts;
		struct usher_http_exchange ex;
		struct usher_http_checks *checks = NULL;
		struct usher_probe_run run;
		struct usher_error err;
		bool ok, regex_failed = true;

		usher_error_clear(&err);
		assert_int_equal(usher_http_checks_new(o, &checks, &err), USHER_OK);
		memset(&ex, 0, sizeof(ex));
		ex.opts = o;
		ex.res.status = c->status;
		usher_buf_init(&ex.res.head, 1 << 20);
		usher_buf_init(&ex.res.body, 1 << 20);
		usher_buf_addstr(&ex.res.head, c->head ? c->head : "HTTP/1.1 200 OK\r\n\r\n");
		if (c->body)
			usher_buf_addstr(&ex.res.body, c->body);
		run_init(&run);
		ok = usher_http_evaluate(&ex, checks, &run, WHAT, &regex_failed);
		if (ok != !c->reason || ok != run.success ||
		    (c->reason && (strcmp(run.failure_reason, c->reason) != 0 ||
				   strcmp(run.err.msg, c->msg) != 0)) ||
		    regex_failed != c->regex_failed) {
			print_error("case %zu (%s):\n got  %s %s: %s (regex %d)\n want %s %s: %s "
				    "(regex %d)\n",
				    i, c->opts, ok ? "pass" : "fail",
				    run.failure_reason ? run.failure_reason : "-", run.err.msg,
				    regex_failed, c->reason ? "fail" : "pass",
				    c->reason ? c->reason : "-", c->msg ? c->msg : "",
				    c->regex_failed);
			bad++;
		}
		usher_buf_free(&ex.res.head);
		usher_buf_free(&ex.res.body);
		usher_http_checks_free(checks);
		usher_config_free(cfg);
	}
	if (bad)
		fail_msg("%zu of %zu cases failed", bad, n);
}

static void test_status(void **state)
{
	static const struct acase cases[] = {
	    {"", 200, NULL, NULL, NULL, NULL, false},
	    {"", 299, NULL, NULL, NULL, NULL, false},
	    {"", 301, NULL, NULL, "status", WHAT ": status 301 not in valid_status_codes [2xx]",
	     false},
	    {"", 503, NULL, NULL, "status", WHAT ": status 503 not in valid_status_codes [2xx]",
	     false},
	    {"    valid_status_codes: [200, 3xx, 404]\n", 302, NULL, NULL, NULL, NULL, false},
	    {"    valid_status_codes: [200, 3xx, 404]\n", 404, NULL, NULL, NULL, NULL, false},
	    {"    valid_status_codes: [200, 3xx, 404]\n", 204, NULL, NULL, "status",
	     WHAT ": status 204 not in valid_status_codes [200, 3xx, 404]", false},
	    {"    valid_status_codes: 503\n", 503, NULL, NULL, NULL, NULL, false},
	};

	(void)state;
	check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_headers(void **state)
{
	static const char h1[] = "HTTP/1.1 200 OK\r\n"
				 "Server: nginx/1.22.1\r\n"
				 "Content-Type: text/html; charset=utf-8\r\n"
				 "Set-Cookie: a=1\r\n"
				 "set-cookie: session=abc; HttpOnly\r\n"
				 "X-Empty:\r\n"
				 "\r\n";
	static const char h2[] = "HTTP/2 200\r\ncontent-type: application/json\r\n\r\n";
	static const struct acase cases[] = {
	    {"    fail_if_header_matches: [{header: Server, regexp: \"^nginx\"}]\n", 200, h1, NULL,
	     "header", WHAT ": header \"Server\" value \"nginx/1.22.1\" matches regexp \"^nginx\"",
	     true},
	    {"    fail_if_header_matches: [{header: server, regexp: \"^Apache\"}]\n", 200, h1, NULL,
	     NULL, NULL, false},
	    {"    fail_if_header_matches: [{header: X-Missing, regexp: x}]\n", 200, h1, NULL,
	     "header", WHAT ": header \"X-Missing\" is missing", true},
	    {"    fail_if_header_matches: [{header: X-Missing, regexp: x, allow_missing: true}]\n",
	     200, h1, NULL, NULL, NULL, false},
	    {"    fail_if_header_not_matches: [{header: Content-Type, regexp: json}]\n", 200, h1,
	     NULL, "header",
	     WHAT ": header \"Content-Type\" has no value matching regexp \"json\" (1 value)",
	     true},
	    {"    fail_if_header_not_matches: [{header: Content-Type, regexp: json}]\n", 200, h2,
	     NULL, NULL, NULL, false},
	    /* any one of several values will do */
	    {"    fail_if_header_not_matches: [{header: Set-Cookie, regexp: HttpOnly}]\n", 200, h1,
	     NULL, NULL, NULL, false},
	    {"    fail_if_header_not_matches: [{header: Set-Cookie, regexp: Secure}]\n", 200, h1,
	     NULL, "header",
	     WHAT ": header \"Set-Cookie\" has no value matching regexp \"Secure\" (2 values)",
	     true},
	    /* a header with an empty value is present */
	    {"    fail_if_header_not_matches: [{header: X-Empty, regexp: \"^$\"}]\n", 200, h1, NULL,
	     NULL, NULL, false},
	    /* the status comes first, as in blackbox */
	    {"    fail_if_header_matches: [{header: Server, regexp: nginx}]\n", 500, h1, NULL,
	     "status", WHAT ": status 500 not in valid_status_codes [2xx]", false},
	};

	(void)state;
	check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_body(void **state)
{
	static const struct acase cases[] = {
	    {"    fail_if_body_matches_regexp: [error, fatal]\n", 200, NULL, "all good", NULL, NULL,
	     false},
	    {"    fail_if_body_matches_regexp: [error, fatal]\n", 200, NULL, "a fatal thing",
	     "regex", WHAT ": body matches regexp \"fatal\"", true},
	    {"    fail_if_body_matches_regexp: \"(?i)ERROR\"\n", 200, NULL, "db error", "regex",
	     WHAT ": body matches regexp \"(?i)ERROR\"", true},
	    {"    fail_if_body_not_matches_regexp: [\"\\\"status\\\":\\\\s*\\\"ok\\\"\"]\n", 200,
	     NULL, "{\"status\": \"ok\"}", NULL, NULL, false},
	    {"    fail_if_body_not_matches_regexp: [up, ok]\n", 200, NULL, "up", "regex",
	     WHAT ": body does not match regexp \"ok\"", true},
	    /* unanchored, and $ is the very end (Go's regexp, as blackbox) */
	    {"    fail_if_body_not_matches_regexp: \"ok$\"\n", 200, NULL, "it is ok", NULL, NULL,
	     false},
	    {"    fail_if_body_not_matches_regexp: \"ok$\"\n", 200, NULL, "ok\n", "regex",
	     WHAT ": body does not match regexp \"ok$\"", true},
	    {"    fail_if_body_not_matches_regexp: \"(?m)ok$\"\n", 200, NULL, "ok\nnext", NULL,
	     NULL, false},
	    /* bytes that are not UTF-8 do not break matching */
	    {"    fail_if_body_not_matches_regexp: \"caf\"\n", 200, NULL, "\xff\xfe caf\xc3", NULL,
	     NULL, false},
	    {"    fail_if_body_not_matches_regexp: \"x\"\n", 200, NULL, NULL, "regex",
	     WHAT ": body does not match regexp \"x\"", true},
	    /* header regexes are tried before body regexes */
	    {"    fail_if_body_matches_regexp: a\n"
	     "    fail_if_header_matches: [{header: X-Missing, regexp: x}]\n",
	     200, NULL, "a", "header", WHAT ": header \"X-Missing\" is missing", true},
	};

	(void)state;
	check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_json(void **state)
{
	static const char doc[] = "{\"status\": \"ok\", \"version\": 3, \"ratio\": 2.0, "
				  "\"pi\": 3.14, \"up\": true, \"none\": null, "
				  "\"checks\": [{\"name\": \"db\", \"ok\": true}], "
				  "\"big\": 123456789012345678901234567890, \"text\": \"3\"}";
	static const struct acase cases[] = {
	    {"    json: [{pointer: /status, equals: ok}]\n", 200, NULL, doc, NULL, NULL, false},
	    {"    json: [{pointer: /status, equals: degraded}]\n", 200, NULL, doc, "json",
	     WHAT ": json /status: got \"ok\", want \"degraded\"", false},
	    {"    json: [{pointer: /version, equals: 3}]\n", 200, NULL, doc, NULL, NULL, false},
	    {"    json: [{pointer: /ratio, equals: 2}]\n", 200, NULL, doc, NULL, NULL, false},
	    {"    json: [{pointer: /pi, equals: 3.14}]\n", 200, NULL, doc, NULL, NULL, false},
	    {"    json: [{pointer: /version, equals: \"3\"}]\n", 200, NULL, doc, "json",
	     WHAT ": json /version: got 3, want \"3\"", false},
	    {"    json: [{pointer: /text, equals: 3}]\n", 200, NULL, doc, "json",
	     WHAT ": json /text: got \"3\", want 3", false},
	    {"    json: [{pointer: /up, equals: true}]\n", 200, NULL, doc, NULL, NULL, false},
	    {"    json: [{pointer: /up, equals: \"true\"}]\n", 200, NULL, doc, "json",
	     WHAT ": json /up: got true, want \"true\"", false},
	    {"    json: [{pointer: /none, equals: null}]\n", 200, NULL, doc, NULL, NULL, false},
	    {"    json: [{pointer: /status, equals: ~}]\n", 200, NULL, doc, "json",
	     WHAT ": json /status: got \"ok\", want null", false},
	    {"    json: [{pointer: /checks, equals: ok}]\n", 200, NULL, doc, "json",
	     WHAT ": json /checks: got an array, want \"ok\"", false},
	    {"    json: [{pointer: /ratio, type: integer}]\n", 200, NULL, doc, NULL, NULL, false},
	    {"    json: [{pointer: /pi, type: integer}]\n", 200, NULL, doc, "json",
	     WHAT ": json /pi: got 3.14 (number), want type integer", false},
	    {"    json: [{pointer: /checks/0, type: object}]\n", 200, NULL, doc, NULL, NULL, false},
	    {"    json: [{pointer: /status, type: number}]\n", 200, NULL, doc, "json",
	     WHAT ": json /status: got \"ok\" (string), want type number", false},
	    {"    json: [{pointer: /big, type: number}]\n", 200, NULL, doc, NULL, NULL, false},
	    {"    json: [{pointer: /maintenance, exists: false}]\n", 200, NULL, doc, NULL, NULL,
	     false},
	    {"    json: [{pointer: /up, exists: false}]\n", 200, NULL, doc, "json",
	     WHAT ": json /up: present but should not be (true)", false},
	    {"    json: [{pointer: /maintenance, exists: true}]\n", 200, NULL, doc, "json",
	     WHAT ": json /maintenance: not found (no member \"maintenance\" in the object at "
		  "the document root)",
	     false},
	    {"    json: [{pointer: /checks/1/name, equals: db}]\n", 200, NULL, doc, "json",
	     WHAT ": json /checks/1/name: not found (index 1 is past the end of the array at "
		  "/checks (1 elements))",
	     false},
	    {"    json: [{pointer: /checks/00, exists: true}]\n", 200, NULL, doc, "json",
	     WHAT ": json /checks/00: array index \"00\" has a leading zero", false},
	    {"    json: [{pointer: /checks/0/name, matches: \"^d\"}]\n", 200, NULL, doc, NULL, NULL,
	     false},
	    {"    json: [{pointer: /checks/0/name, matches: \"^x\"}]\n", 200, NULL, doc, "json",
	     WHAT ": json /checks/0/name: \"db\" does not match regexp \"^x\"", false},
	    {"    json: [{pointer: /version, matches: \"3\"}]\n", 200, NULL, doc, "json",
	     WHAT ": json /version: got 3 (number), matches needs a string", false},
	    {"    json: [{pointer: \"\", type: object}]\n", 200, NULL, doc, NULL, NULL, false},
	    /* the first failing entry is the one reported */
	    {"    json: [{pointer: /status, equals: ok}, {pointer: /a, exists: true},"
	     " {pointer: /b, exists: true}]\n",
	     200, NULL, doc, "json",
	     WHAT ": json /a: not found (no member \"a\" in the object at the document root)",
	     false},
	    {"    json: [{pointer: /status, equals: ok}]\n", 200, NULL, "<html>oops</html>", "json",
	     WHAT ": body is not json: invalid token near '<' at line 1 column 1", false},
	    {"    json: [{pointer: /status, equals: ok}]\n", 200, NULL, NULL, "json",
	     WHAT ": body is empty, not json", false},
	    {"    json: [{pointer: /status, equals: ok}]\n", 200, NULL, "{\"status\": ", "json",
	     WHAT ": body is not json: unexpected token near end of file at line 1 column 11",
	     false},
	    /* a scalar document is JSON too */
	    {"    json: [{pointer: \"\", equals: 42}]\n", 200, NULL, "42", NULL, NULL, false},
	    /* body regexes come before json */
	    {"    json: [{pointer: /nope, exists: true}]\n"
	     "    fail_if_body_matches_regexp: status\n",
	     200, NULL, doc, "regex", WHAT ": body matches regexp \"status\"", true},
	};

	(void)state;
	check_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* A transfer that failed: curl's code decides the reason, and a response
 * that did arrive is judged by its status first. */
static void test_transport(void **state)
{
	static const struct {
		CURLcode rc;
		const char *curl_msg;
		long status;
		bool body_too_large;
		const char *reason;
		const char *msg;
	} cases[] = {
	    {CURLE_COULDNT_RESOLVE_HOST, "Could not resolve host: nope.invalid", 0, false, "dns",
	     WHAT ": could not resolve host: nope.invalid"},
	    {CURLE_COULDNT_CONNECT,
	     "Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server", 0,
	     false, "connect",
	     WHAT ": failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to "
		  "server"},
	    {CURLE_OPERATION_TIMEDOUT,
	     "Operation timed out after 1001 milliseconds with 0 bytes "
	     "received",
	     0, false, "timeout",
	     WHAT ": operation timed out after 1001 milliseconds with 0 bytes received"},
	    {CURLE_PEER_FAILED_VERIFICATION, "SSL certificate problem: certificate has expired\n",
	     0, false, "tls", WHAT ": SSL certificate problem: certificate has expired"},
	    {CURLE_SSL_CONNECT_ERROR, "", 0, false, "tls", WHAT ": SSL connect error"},
	    {CURLE_WRITE_ERROR, "Failure writing output to destination", 200, true,
	     "body_too_large", WHAT ": body longer than body_size_limit (1024 bytes)"},
	    {CURLE_WRITE_ERROR, "Failure writing output to destination", 503, true, "status",
	     WHAT ": status 503 not in valid_status_codes [2xx]"},
	    {CURLE_OPERATION_TIMEDOUT, "Operation timed out", 200, false, "timeout",
	     WHAT ": operation timed out"},
	    {CURLE_TOO_MANY_REDIRECTS, "Maximum (10) redirects followed", 0, false, "protocol",
	     WHAT ": maximum (10) redirects followed"},
	    /* the loop is the news, not the last 302 */
	    {CURLE_TOO_MANY_REDIRECTS, "Maximum (10) redirects followed", 302, false, "protocol",
	     WHAT ": maximum (10) redirects followed"},
	    {CURLE_RECV_ERROR, "", 0, false, "protocol",
	     WHAT ": failure when receiving data from the peer"},
	};
	struct usher_config *cfg = load_probe("    body_size_limit: 1KiB\n");
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_http_exchange ex;
		struct usher_probe_run run;
		bool regex_failed = true;

		memset(&ex, 0, sizeof(ex));
		ex.opts = cfg->probes[0].opts;
		ex.res.curl_rc = cases[i].rc;
		snprintf(ex.res.curl_msg, sizeof(ex.res.curl_msg), "%s", cases[i].curl_msg);
		ex.res.status = cases[i].status;
		ex.res.body_too_large = cases[i].body_too_large;
		run_init(&run);
		assert_false(usher_http_evaluate(&ex, NULL, &run, WHAT, &regex_failed));
		assert_false(regex_failed);
		assert_false(run.success);
		if (strcmp(run.failure_reason, cases[i].reason) != 0 ||
		    strcmp(run.err.msg, cases[i].msg) != 0)
			fail_msg("case %zu: got %s: %s\nwant %s: %s", i, run.failure_reason,
				 run.err.msg, cases[i].reason, cases[i].msg);
	}
	usher_config_free(cfg);
}

static char *render(struct usher_sample_set *set)
{
	struct usher_registry *reg = usher_registry_new();
	struct usher_buf out;
	char *text;

	usher_buf_init(&out, 1 << 20);
	usher_registry_publish(reg, reg, set);
	assert_int_equal(usher_registry_render(reg, USHER_EXPO_TEXT, &out), USHER_OK);
	text = usher_buf_take(&out);
	usher_registry_free(reg);
	return text;
}

static void expect_lines(const char *text, const char *const *lines)
{
	for (; *lines; lines++)
		if (!strstr(text, *lines))
			fail_msg("missing line: %s\nin:\n%s", *lines, text);
}

static void test_emit_tls(void **state)
{
	static const char *const want[] = {
	    "# HELP probe_http_duration_seconds Duration of http request by phase, summed over "
	    "all redirects\n# TYPE probe_http_duration_seconds gauge\n",
	    "probe_http_duration_seconds{job=\"api\",instance=\"h:443\",phase=\"resolve\"} "
	    "0.001\n",
	    "probe_http_duration_seconds{job=\"api\",instance=\"h:443\",phase=\"connect\"} "
	    "0.002\n",
	    "probe_http_duration_seconds{job=\"api\",instance=\"h:443\",phase=\"tls\"} 0.003\n",
	    "probe_http_duration_seconds{job=\"api\",instance=\"h:443\",phase=\"processing\"} "
	    "0.004\n",
	    "probe_http_duration_seconds{job=\"api\",instance=\"h:443\",phase=\"transfer\"} "
	    "0.005\n",
	    "probe_http_status_code{job=\"api\",instance=\"h:443\"} 200\n",
	    "probe_http_content_length{job=\"api\",instance=\"h:443\"} -1\n",
	    "probe_http_uncompressed_body_length{job=\"api\",instance=\"h:443\"} 1234\n",
	    "probe_http_redirects{job=\"api\",instance=\"h:443\"} 1\n",
	    "probe_http_ssl{job=\"api\",instance=\"h:443\"} 1\n",
	    "probe_http_version{job=\"api\",instance=\"h:443\"} 2\n",
	    "probe_failed_due_to_regex{job=\"api\",instance=\"h:443\"} 0\n",
	    "probe_dns_lookup_time_seconds{job=\"api\",instance=\"h:443\"} 0.001\n",
	    "probe_ip_protocol{job=\"api\",instance=\"h:443\"} 4\n",
	    "probe_http_last_modified_timestamp_seconds{job=\"api\",instance=\"h:443\"} "
	    "1700000000\n",
	    "probe_tls_version_info{job=\"api\",instance=\"h:443\",version=\"TLS 1.3\"} 1\n",
	    "probe_ssl_earliest_cert_expiry{job=\"api\",instance=\"h:443\"} 1800000000\n",
	    "probe_ssl_last_chain_expiry_timestamp_seconds{job=\"api\",instance=\"h:443\"} "
	    "1800000001\n",
	    NULL,
	};
	struct usher_sample_set *set =
	    usher_sample_set_newv("job", "api", "instance", "h:443", NULL);
	struct usher_http_result r;
	char *text;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.phase_s[USHER_HTTP_PHASE_RESOLVE] = 0.001;
	r.phase_s[USHER_HTTP_PHASE_CONNECT] = 0.002;
	r.phase_s[USHER_HTTP_PHASE_TLS] = 0.003;
	r.phase_s[USHER_HTTP_PHASE_PROCESSING] = 0.004;
	r.phase_s[USHER_HTTP_PHASE_TRANSFER] = 0.005;
	r.status = 200;
	r.content_length = -1;
	r.body_bytes = 1234;
	r.redirects = 1;
	r.http_version = 2;
	r.dns_lookup_s = 0.001;
	r.ip_protocol = 4;
	r.last_modified = 1700000000;
	r.tls_version = "TLS 1.3";
	r.has_cert_expiry = true;
	r.cert_expiry = 1800000000;
	r.has_chain_expiry = true;
	r.chain_expiry = 1800000001;
	usher_http_emit(set, &r, false, NULL);
	text = render(set);
	expect_lines(text, want);
	free(text);
}

/* A plain http failure before any response: no TLS or Last-Modified
 * series, zeros elsewhere; a journey step's extra labels on every one. */
static void test_emit_failed(void **state)
{
	static const char *const want[] = {
	    "probe_http_duration_seconds{job=\"api\",instance=\"h:80\",step=\"login\","
	    "phase=\"connect\"} 0\n",
	    "probe_http_status_code{job=\"api\",instance=\"h:80\",step=\"login\"} 0\n",
	    "probe_http_ssl{job=\"api\",instance=\"h:80\",step=\"login\"} 0\n",
	    "probe_failed_due_to_regex{job=\"api\",instance=\"h:80\",step=\"login\"} 1\n",
	    "probe_http_version{job=\"api\",instance=\"h:80\",step=\"login\"} 0\n",
	    NULL,
	};
	static const char *const extra[] = {"step", "login", NULL};
	struct usher_sample_set *set =
	    usher_sample_set_newv("job", "api", "instance", "h:80", NULL);
	struct usher_http_result r;
	char *text;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.last_modified = -1;
	usher_http_emit(set, &r, true, extra);
	text = render(set);
	expect_lines(text, want);
	assert_null(strstr(text, "probe_tls_version_info"));
	assert_null(strstr(text, "probe_ssl_earliest_cert_expiry"));
	assert_null(strstr(text, "probe_http_last_modified_timestamp_seconds"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status),      cmocka_unit_test(test_headers),
	    cmocka_unit_test(test_body),        cmocka_unit_test(test_json),
	    cmocka_unit_test(test_transport),   cmocka_unit_test(test_emit_tls),
	    cmocka_unit_test(test_emit_failed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
