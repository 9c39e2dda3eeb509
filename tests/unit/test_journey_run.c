/* Runs of the journey probe on the real loop and libcurl against the booking
 * sandbox (examples/sandbox/booking_api.py, started by the test on a free
 * loopback port): the trace `usher diag` prints (request lines, status,
 * timings, extracted values with secrets masked), the series of a run,
 * fresh built-ins every run, a run cancelled in the middle releasing
 * everything it holds, the plain http probe's trace line, and (against a
 * small server of the test's own) the cookie jar per run and JSON-escaped
 * substitution in json bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/timeutil.h"
#include "probes/http.h"
#include "probes/journey.h"
#include "probes/loop.h"

extern char **environ;

static pid_t sandbox_pid;
static int sandbox_port;
static int sandbox_out = -1; /* kept open: the sandbox must not get EPIPE */

static pid_t cookie_pid;
static int cookie_out = -1;

/* Starts argv with its stdout on a pipe and reads until a line has what
 * followed by a port number. Returns the port, or -1; *pid and *out (the
 * pipe, kept open so the child never gets EPIPE) are set either way. */
static int spawn_port(char *const argv[], const char *what, pid_t *pid, int *out)
{
	posix_spawn_file_actions_t fa;
	char buf[512];
	size_t n = 0;
	int pfd[2], port = -1;
	int64_t deadline = usher_mono_ms() + 30000;

	*pid = -1;
	*out = -1;
	if (pipe(pfd))
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	if (posix_spawnp(pid, argv[0], &fa, NULL, argv, environ)) {
		posix_spawn_file_actions_destroy(&fa);
		*pid = -1;
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	*out = pfd[0];
	while (n < sizeof(buf) - 1 && usher_mono_ms() < deadline) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		const char *at;
		ssize_t r;

		if (poll(&p, 1, 1000) <= 0)
			continue;
		r = read(pfd[0], buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		at = strstr(buf, what);
		if (at && strchr(at, '\n')) {
			port = (int)strtol(at + strlen(what), NULL, 10);
			break;
		}
	}
	return port;
}

static void stop_child(pid_t *pid, int *out)
{
	int st;

	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, &st, 0);
	}
	if (*out >= 0)
		close(*out);
	*pid = -1;
	*out = -1;
}

static int start_sandbox(void **state)
{
	static char a0[] = "python3", a1[] = USHER_SOURCE_DIR "/examples/sandbox/booking_api.py",
		    a2[] = "--port", a3[] = "0";
	char *argv[] = {a0, a1, a2, a3, NULL};

	(void)state;
	sandbox_port = spawn_port(argv, "http://127.0.0.1:", &sandbox_pid, &sandbox_out);
	return sandbox_port > 0 ? 0 : -1;
}

static int stop_sandbox(void **state)
{
	(void)state;
	stop_child(&sandbox_pid, &sandbox_out);
	/* a failed assertion leaves the cookie server to us */
	stop_child(&cookie_pid, &cookie_out);
	return 0;
}

static const char *journey_yaml(const char *checkout_url)
{
	static char text[4096];

	snprintf(text, sizeof(text),
		 "probes:\n"
		 "  - name: j\n"
		 "    type: journey\n"
		 "    interval: 20s\n"
		 "    timeout: 10s\n"
		 "    base_url: http://127.0.0.1:%d/\n"
		 "    variables: {q: swan, key: \"${env:JOURNEY_RUN_KEY}\"}\n"
		 "    headers: {X-Key: \"{{key}}\"}\n"
		 "    steps:\n"
		 "      - name: search\n"
		 "        request: {url: \"api/events?q={{q}}&key={{key}}&u={{uuid}}&t={{ "
		 "now_unix }}&r={{random_int}}\"}\n"
		 "        extract: {event_id: {json: /events/0/id}}\n"
		 "      - name: seatmap\n"
		 "        request: {url: \"/api/events/{{event_id}}/seats\"}\n"
		 "        extract: {seat: {regex: '\"seat\": \"(\\w+)\", \"state\": \"free\"'}}\n"
		 "      - name: hold\n"
		 "        request: {method: POST, url: /api/holds, json: {event_id: "
		 "\"{{event_id}}\", seat: \"{{seat}}\"}}\n"
		 "        expect: {valid_status_codes: [201]}\n"
		 "        extract: {hold_id: {json: /hold_id, secret: true}, "
		 "ctype: {header: content-type}}\n"
		 "      - name: checkout\n"
		 "        request: {method: POST, url: %s, json: {hold_id: \"{{hold_id}}\", "
		 "dry_run: true}}\n"
		 "      - name: release\n"
		 "        always: true\n"
		 "        request: {method: DELETE, url: \"/api/holds/{{hold_id}}\"}\n"
		 "        expect: {valid_status_codes: [204]}\n",
		 sandbox_port, checkout_url);
	return text;
}

struct fixture {
	struct usher_config *cfg;
	struct usher_loop *loop;
	void *ctx;
	struct usher_arena *arena;
	struct usher_buf trace;
	struct usher_probe_run run;
	bool done;
};

static void on_done(struct usher_probe_run *run)
{
	struct fixture *f = run->owner;

	f->done = true;
}

static void setup_fixture(struct fixture *f, const char *checkout_url)
{
	struct usher_probe_env env = {0};
	struct usher_diags d;
	struct usher_error err;
	const char *text = journey_yaml(checkout_url);
	char first[1024];

	memset(f, 0, sizeof(*f));
	setenv("JOURNEY_RUN_KEY", "topsecret-value", 1);
	usher_diags_init(&d);
	usher_config_load_text("j.yml", text, strlen(text), &f->cfg, &d);
	usher_diags_first(&d, first, sizeof(first));
	if (!f->cfg)
		fail_msg("config: %s", first);
	usher_diags_free(&d);
	f->loop = usher_loop_new();
	env.loop = f->loop;
	usher_error_clear(&err);
	assert_int_equal(usher_probe_journey.init(&f->cfg->probes[0], &env, &f->ctx, &err),
			 USHER_OK);
	f->arena = usher_arena_new();
	usher_buf_init(&f->trace, 1 << 20);
}

static void begin(struct fixture *f)
{
	struct usher_probe_run *run = &f->run;

	usher_arena_reset(f->arena);
	usher_buf_reset(&f->trace);
	memset(run, 0, sizeof(*run));
	run->conf = &f->cfg->probes[0];
	run->samples = usher_sample_set_newv("job", "j", NULL);
	run->arena = f->arena;
	run->started_mono_ns = usher_mono_ns();
	run->deadline_mono_ms = usher_mono_ms() + f->cfg->probes[0].timeout_ms;
	run->success = true;
	run->trace = &f->trace;
	run->on_done = on_done;
	run->owner = f;
	f->done = false;
	assert_int_equal(usher_probe_journey.start(f->ctx, run), USHER_OK);
}

static void run_to_end(struct fixture *f)
{
	int64_t until = usher_mono_ms() + 20000;

	while (!f->done && usher_mono_ms() < until)
		usher_loop_poll(f->loop, 100, NULL, 0);
	assert_true(f->done);
}

static void teardown_fixture(struct fixture *f)
{
	usher_probe_journey.free(f->ctx);
	usher_loop_free(f->loop);
	usher_sample_set_free(f->run.samples);
	usher_arena_free(f->arena);
	usher_buf_free(&f->trace);
	usher_config_free(f->cfg);
}

struct find {
	const char *name, *step;
	double value;
	int hits;
};

static void visit(void *arg, const char *name, const char *const *pairs, double value)
{
	struct find *f = arg;
	size_t i;

	if (strcmp(name, f->name) != 0)
		return;
	for (i = 0; pairs[i]; i += 2)
		if (strcmp(pairs[i], "step") == 0 &&
		    (!f->step || strcmp(pairs[i + 1], f->step) == 0)) {
			f->value = value;
			f->hits++;
		}
	if (!f->step && !f->hits) {
		f->value = value;
		f->hits = -1;
	}
}

static double series(const struct usher_sample_set *s, const char *name, const char *step)
{
	struct find f = {.name = name, .step = step};

	usher_sample_set_foreach(s, visit, &f);
	assert_true(f.hits != 0);
	return f.value;
}

/* p points at "<uuid>&t=<now_unix>&r=<random_int> ->" in a trace line:
 * a version 4 UUID (copied to uuid), the time now, a non-negative int. */
static void check_builtins(const char *p, char uuid[40])
{
	static const int dash[] = {8, 13, 18, 23};
	long long now = (long long)time(NULL), t, r;
	char *end;
	size_t i, k = 0;

	for (i = 0; i < 36; i++) {
		if (k < 4 && (int)i == dash[k]) {
			assert_int_equal(p[i], '-');
			k++;
			continue;
		}
		assert_non_null(strchr("0123456789abcdef", p[i]));
	}
	assert_int_equal(p[14], '4');           /* version 4 */
	assert_non_null(strchr("89ab", p[19])); /* RFC 4122 variant */
	memcpy(uuid, p, 36);
	uuid[36] = '\0';
	assert_memory_equal(p + 36, "&t=", 3);
	t = strtoll(p + 39, &end, 10);
	assert_true(t > now - 120 && t <= now + 1);
	assert_memory_equal(end, "&r=", 3);
	r = strtoll(end + 3, &end, 10);
	assert_true(r >= 0 && r <= 2147483647LL);
	assert_memory_equal(end, " -> ", 4);
}

static void test_trace_and_series(void **state)
{
	struct fixture f;
	const char *t;
	char want[256], uuid1[40], uuid2[40];

	(void)state;
	setup_fixture(&f, "/api/checkout");
	begin(&f);
	run_to_end(&f);
	t = usher_buf_str(&f.trace);
	printf("%s", t);
	assert_true(f.run.success);
	snprintf(
	    want, sizeof(want),
	    "step 1/5 search: GET http://127.0.0.1:%d/api/events?q=swan&key=***&u=", sandbox_port);
	assert_non_null(strstr(t, want));
	check_builtins(strstr(t, want) + strlen(want), uuid1);
	assert_non_null(strstr(t, " -> 200 HTTP/1.1, dns "));
	assert_non_null(strstr(t, "ttfb "));
	assert_non_null(strstr(t, "; extracted event_id=2\n"));
	assert_non_null(strstr(t, "step 3/5 hold: POST "));
	assert_non_null(strstr(t, "-> 201 HTTP/1.1"));
	assert_non_null(strstr(t, "extracted hold_id=***, ctype=application/json\n"));
	assert_non_null(strstr(t, "step 5/5 release: DELETE "));
	assert_non_null(strstr(t, "/api/holds/*** -> 204"));
	/* the secrets never appear */
	assert_null(strstr(t, "topsecret-value"));
	assert_int_equal((int)series(f.run.samples, "usher_journey_step_success", "release"), 1);
	assert_int_equal((int)series(f.run.samples, "usher_journey_step_status_code", "hold"), 201);
	assert_int_equal((int)series(f.run.samples, "usher_journey_cleanup_failures_total", NULL),
			 0);
	usher_sample_set_free(f.run.samples);
	f.run.samples = NULL;

	/* a second run starts from scratch: fresh variables, same result */
	begin(&f);
	run_to_end(&f);
	assert_true(f.run.success);
	check_builtins(strstr(usher_buf_str(&f.trace), want) + strlen(want), uuid2);
	assert_string_not_equal(uuid1, uuid2);
	teardown_fixture(&f);
}

static void test_failed_step_trace(void **state)
{
	struct fixture f;
	const char *t;

	(void)state;
	setup_fixture(&f, "/api/nope");
	begin(&f);
	run_to_end(&f);
	t = usher_buf_str(&f.trace);
	printf("%s", t);
	assert_false(f.run.success);
	assert_string_equal(f.run.failure_reason, "status");
	assert_non_null(strstr(f.run.err.msg, "step \"checkout\" POST http://127.0.0.1:"));
	assert_non_null(strstr(t, "step 4/5 checkout: POST "));
	assert_non_null(strstr(t, "-> 404 HTTP/1.1"));
	assert_non_null(strstr(t, "failed: step \"checkout\""));
	assert_non_null(strstr(t, "  response body: {\"error\":\"no route for /api/nope\"}\n"));
	/* the clean-up still ran */
	assert_non_null(strstr(t, "step 5/5 release: DELETE "));
	assert_int_equal((int)series(f.run.samples, "usher_journey_step_success", "release"), 1);
	assert_int_equal((int)series(f.run.samples, "usher_journey_step_success", "checkout"), 0);
	teardown_fixture(&f);
}

static void test_cancel_mid_run(void **state)
{
	struct fixture f;
	int64_t until;

	(void)state;
	setup_fixture(&f, "/api/checkout");
	begin(&f);
	/* let a step or two happen, then abandon the run */
	until = usher_mono_ms() + 20000;
	while (!strstr(usher_buf_str(&f.trace), "step 2/5") && !f.done && usher_mono_ms() < until)
		usher_loop_poll(f.loop, 5, NULL, 0);
	if (!f.done)
		usher_probe_journey.cancel(f.ctx, &f.run);
	assert_int_equal(usher_loop_active(f.loop), 0);
	/* and it can run again */
	usher_sample_set_free(f.run.samples);
	begin(&f);
	run_to_end(&f);
	assert_true(f.run.success);
	teardown_fixture(&f);
}

/* A server for test_cookies_and_json_body: /login sets a cookie and says
 * whether the request already had one; /me says which it got; POST /echo
 * sends back the JSON body it got and its Content-Type. */
static const char cookie_server[] =
    "import http.server, json, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def do_GET(self):\n"
    "        c = self.headers.get('Cookie') or ''\n"
    "        extra = []\n"
    "        if self.path == '/login':\n"
    "            body = {'had_cookie': bool(c), 'n': 7}\n"
    "            extra = [('Set-Cookie', 'session=s42; Path=/')]\n"
    "        else:\n"
    "            body = {'cookie': c}\n"
    "        data = json.dumps(body).encode()\n"
    "        self.send_response(200)\n"
    "        for k, v in extra: self.send_header(k, v)\n"
    "        self.send_header('Content-Type', 'application/json')\n"
    "        self.send_header('Content-Length', str(len(data)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(data)\n"
    "    def do_POST(self):\n"
    "        n = int(self.headers.get('Content-Length') or 0)\n"
    "        got = json.loads(self.rfile.read(n))\n"
    "        ct = self.headers.get('Content-Type')\n"
    "        data = json.dumps({'got': got, 'ctype': ct}).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', 'application/json')\n"
    "        self.send_header('Content-Length', str(len(data)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(data)\n"
    "    def log_message(self, *a): pass\n"
    "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
    "print('port', s.server_address[1], flush=True)\n"
    "s.serve_forever()\n";

/* Cookies set by one step go with the next ones of the same run, and
 * never into the next run; a json body gets variables JSON-escaped, and an
 * extracted number stays a number. */
static void test_cookies_and_json_body(void **state)
{
	static char a0[] = "python3", a1[] = "-c";
	char *argv[] = {a0, a1, (char *)cookie_server, NULL};
	struct usher_probe_env env = {0};
	struct usher_diags d;
	struct usher_error err;
	struct fixture f;
	char text[2048];
	int port, i;

	(void)state;
	port = spawn_port(argv, "port ", &cookie_pid, &cookie_out);
	assert_true(port > 0);
	snprintf(text, sizeof(text),
		 "probes:\n"
		 "  - name: c\n"
		 "    type: journey\n"
		 "    base_url: http://127.0.0.1:%d\n"
		 "    variables: {quote: \"a \\\"b\\\" \\\\ c\\n\"}\n"
		 "    steps:\n"
		 "      - name: login\n"
		 "        request: {url: /login}\n"
		 "        expect: {json: [{pointer: /had_cookie, equals: false}]}\n"
		 "        extract: {n: {json: /n}}\n"
		 "      - name: me\n"
		 "        request: {url: /me}\n"
		 "        expect: {json: [{pointer: /cookie, equals: session=s42}]}\n"
		 /* JSON-escaped substitution, and a number that stays one */
		 "      - name: echo\n"
		 "        request:\n"
		 "          method: POST\n"
		 "          url: /echo\n"
		 "          json: {s: \"{{quote}}\", n: \"{{n}}\", l: [\"x{{n}}\", 1.5, null, "
		 "true, \"7\"]}\n"
		 "        expect:\n"
		 "          json:\n"
		 "            - {pointer: /got/s, equals: \"a \\\"b\\\" \\\\ c\\n\"}\n"
		 "            - {pointer: /got/n, type: integer, equals: 7}\n"
		 "            - {pointer: /got/l/0, equals: x7}\n"
		 "            - {pointer: /got/l/1, equals: 1.5}\n"
		 "            - {pointer: /got/l/2, type: \"null\"}\n"
		 "            - {pointer: /got/l/3, equals: true}\n"
		 "            - {pointer: /got/l/4, type: string}\n"
		 "            - {pointer: /ctype, equals: application/json}\n",
		 port);
	memset(&f, 0, sizeof(f));
	usher_diags_init(&d);
	usher_config_load_text("c.yml", text, strlen(text), &f.cfg, &d);
	if (!f.cfg) {
		char first[1024];

		fail_msg("config: %s\n%s", usher_diags_first(&d, first, sizeof(first)), text);
	}
	usher_diags_free(&d);
	f.loop = usher_loop_new();
	env.loop = f.loop;
	usher_error_clear(&err);
	assert_int_equal(usher_probe_journey.init(&f.cfg->probes[0], &env, &f.ctx, &err), USHER_OK);
	f.arena = usher_arena_new();
	usher_buf_init(&f.trace, 1 << 16);
	for (i = 0; i < 2; i++) {
		begin(&f);
		run_to_end(&f);
		printf("%s", usher_buf_str(&f.trace));
		assert_true(f.run.success);
		usher_sample_set_free(f.run.samples);
		f.run.samples = NULL;
	}
	teardown_fixture(&f);
	stop_child(&cookie_pid, &cookie_out);
}

/* The plain http probe writes one trace line too (usher diag). */
static void test_http_probe_trace(void **state)
{
	struct usher_probe_env env = {0};
	struct usher_config *cfg = NULL;
	struct usher_diags d;
	struct usher_error err;
	struct fixture f;
	char text[512], want[256];
	int64_t until;

	(void)state;
	memset(&f, 0, sizeof(f));
	snprintf(text, sizeof(text),
		 "probes:\n  - {name: h, type: http, url: \"http://127.0.0.1:%d/health\"}\n",
		 sandbox_port);
	usher_diags_init(&d);
	usher_config_load_text("h.yml", text, strlen(text), &cfg, &d);
	usher_diags_free(&d);
	assert_non_null(cfg);
	f.loop = usher_loop_new();
	env.loop = f.loop;
	usher_error_clear(&err);
	assert_int_equal(usher_probe_http.init(&cfg->probes[0], &env, &f.ctx, &err), USHER_OK);
	f.arena = usher_arena_new();
	usher_buf_init(&f.trace, 4096);
	f.run.conf = &cfg->probes[0];
	f.run.samples = usher_sample_set_newv("job", "h", NULL);
	f.run.arena = f.arena;
	f.run.started_mono_ns = usher_mono_ns();
	f.run.deadline_mono_ms = usher_mono_ms() + 5000;
	f.run.success = true;
	f.run.trace = &f.trace;
	f.run.on_done = on_done;
	f.run.owner = &f;
	assert_int_equal(usher_probe_http.start(f.ctx, &f.run), USHER_OK);
	until = usher_mono_ms() + 10000;
	while (!f.done && usher_mono_ms() < until)
		usher_loop_poll(f.loop, 100, NULL, 0);
	assert_true(f.done);
	printf("%s", usher_buf_str(&f.trace));
	snprintf(want, sizeof(want), "GET http://127.0.0.1:%d/health -> 200 HTTP/1.1, dns ",
		 sandbox_port);
	assert_non_null(strstr(usher_buf_str(&f.trace), want));
	assert_non_null(strstr(usher_buf_str(&f.trace), " ttfb "));
	usher_probe_http.free(f.ctx);
	usher_loop_free(f.loop);
	usher_sample_set_free(f.run.samples);
	usher_arena_free(f.arena);
	usher_buf_free(&f.trace);
	usher_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trace_and_series),      cmocka_unit_test(test_failed_step_trace),
	    cmocka_unit_test(test_cancel_mid_run),        cmocka_unit_test(test_http_probe_trace),
	    cmocka_unit_test(test_cookies_and_json_body),
	};

	return cmocka_run_group_tests(tests, start_sandbox, stop_sandbox);
}
