/* Tests of the http probe's exchange on the real loop and libcurl, against
 * a tiny HTTP/1.1 server on a loopback port in a thread of this test:
 * redirects, compression, the body limit, auth and headers as sent, a
 * server that never answers, a refused connection, and the series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "config/config.h"
#include "core/timeutil.h"
#include "probes/http.h"
#include "probes/loop.h"

#define HUNG_MAX 16

struct server {
	int lfd;
	int stop[2];
	int port;
	int hung[HUNG_MAX]; /* connections left unanswered */
	size_t nhung;
	pthread_t thread;
};

static struct server srv;

static const char json_body[] = "{\"status\": \"ok\", \"n\": 3}";

static void send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(fd, c, n);

		if (w <= 0)
			return;
		c += w;
		n -= (size_t)w;
	}
}

static void respond(int fd, const char *status, const char *extra, const void *body, size_t n)
{
	char head[1024];
	int len = snprintf(head, sizeof(head),
			   "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
			   status, n, extra);

	send_all(fd, head, (size_t)len);
	send_all(fd, body, n);
}

static void respond_gzip(int fd)
{
	static unsigned char plain[10000], packed[2048];
	char extra[128];
	z_stream zs;

	memset(plain, 'a', sizeof(plain));
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = plain;
	zs.avail_in = sizeof(plain);
	zs.next_out = packed;
	zs.avail_out = sizeof(packed);
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	snprintf(extra, sizeof(extra), "Content-Encoding: gzip\r\n");
	respond(fd, "200 OK", extra, packed, zs.total_out);
	deflateEnd(&zs);
}

/* Serves one request on fd; returns false to keep fd open unanswered. */
static bool serve(int fd)
{
	char req[16384], big[5000];
	size_t n = 0;
	char *end = NULL;

	while (n < sizeof(req) - 1 && !end) {
		ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);

		if (r <= 0)
			return true;
		n += (size_t)r;
		req[n] = '\0';
		end = strstr(req, "\r\n\r\n");
	}
	if (!end)
		return true;
	/* a body announced by Content-Length comes next */
	{
		const char *cl = strstr(req, "Content-Length: ");
		size_t want = cl ? strtoul(cl + 16, NULL, 10) : 0,
		       have = n - (size_t)(end + 4 - req);

		while (have < want && n < sizeof(req) - 1) {
			ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);

			if (r <= 0)
				break;
			n += (size_t)r;
			have += (size_t)r;
			req[n] = '\0';
		}
	}
	if (strncmp(req, "GET /hang ", 10) == 0)
		return false;
	if (strstr(req, " /ok "))
		respond(fd, "200 OK", "Content-Type: application/json\r\n", json_body,
			strlen(json_body));
	else if (strstr(req, " /redirect "))
		respond(fd, "302 Found", "Location: /ok\r\n", "", 0);
	else if (strstr(req, " /loop "))
		respond(fd, "302 Found", "Location: /loop\r\n", "", 0);
	else if (strstr(req, " /gzip "))
		respond_gzip(fd);
	else if (strstr(req, " /big ")) {
		memset(big, 'b', sizeof(big));
		respond(fd, "200 OK", "", big, sizeof(big));
	} else if (strstr(req, " /down "))
		respond(fd, "503 Service Unavailable", "", "down", 4);
	else if (strstr(req, " /lastmod "))
		respond(fd, "200 OK", "Last-Modified: Wed, 15 Nov 2023 22:13:20 GMT\r\n", "x", 1);
	else if (strstr(req, " /echo "))
		respond(fd, "200 OK", "", req, n);
	else
		respond(fd, "404 Not Found", "", "", 0);
	return true;
}

static void *server_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = srv.lfd, .events = POLLIN},
				      {.fd = srv.stop[0], .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0 || p[1].revents)
			break;
		fd = accept(srv.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		if (serve(fd) || srv.nhung == HUNG_MAX)
			close(fd);
		else
			srv.hung[srv.nhung++] = fd;
	}
	return NULL;
}

static int listen_port(int *fd_out)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*fd_out = fd;
	return ntohs(a.sin_port);
}

static int setup(void **state)
{
	(void)state;
	memset(&srv, 0, sizeof(srv));
	srv.port = listen_port(&srv.lfd);
	assert_int_equal(listen(srv.lfd, 64), 0);
	assert_int_equal(pipe(srv.stop), 0);
	assert_int_equal(pthread_create(&srv.thread, NULL, server_main, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	size_t i;

	(void)state;
	assert_int_equal(write(srv.stop[1], "x", 1), 1);
	pthread_join(srv.thread, NULL);
	for (i = 0; i < srv.nhung; i++)
		close(srv.hung[i]);
	close(srv.lfd);
	close(srv.stop[0]);
	close(srv.stop[1]);
	return 0;
}

/* ---- running one probe -------------------------------------------------- */

struct outcome {
	struct usher_probe_run run;
	struct usher_http_result res; /* copied before cleanup (buffers dropped) */
	bool regex_failed;
	char *head;
	char *body;
	bool done;
	const struct usher_http_checks *checks;
	const char *what;
};

static void on_done(struct usher_http_exchange *ex)
{
	struct outcome *out = ex->owner;

	usher_http_evaluate(ex, out->checks, &out->run, out->what, &out->regex_failed);
	usher_http_emit(out->run.samples, &ex->res, out->regex_failed, NULL);
	out->res = ex->res;
	out->head = strdup(usher_buf_str(&ex->res.head));
	out->body = strdup(usher_buf_str(&ex->res.body));
	memset(&out->res.head, 0, sizeof(out->res.head));
	memset(&out->res.body, 0, sizeof(out->res.body));
	usher_http_exchange_cleanup(ex);
	out->done = true;
}

/* The test server's URL for path. */
static const char *at(const char *path)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "http://127.0.0.1:%d%s", srv.port, path);
	return buf;
}

/* Runs a probe of url with the other options in lines, bounded by
 * timeout_ms, and fills out. */
static void probe(const char *url, const char *lines, int64_t timeout_ms, struct outcome *out)
{
	char text[4096];
	struct usher_config *cfg = NULL;
	struct usher_http_checks *checks = NULL;
	struct usher_http_exchange ex;
	struct usher_loop *loop = usher_loop_new();
	struct usher_error err;
	struct usher_diags d;
	char first[1024];
	int64_t limit;

	assert_non_null(loop);
	snprintf(text, sizeof(text), "probes:\n  - name: p\n    type: http\n    url: %s\n%s", url,
		 lines);
	usher_diags_init(&d);
	usher_config_load_text("t.yml", text, strlen(text), &cfg, &d);
	if (!cfg)
		fail_msg("config: %s", usher_diags_first(&d, first, sizeof(first)));
	usher_diags_free(&d);
	usher_error_clear(&err);
	assert_int_equal(usher_http_checks_new(cfg->probes[0].opts, &checks, &err), USHER_OK);

	memset(out, 0, sizeof(*out));
	out->run.success = true;
	out->run.samples = usher_sample_set_newv("job", "p", NULL);
	out->checks = checks;
	out->what = "GET x";
	memset(&ex, 0, sizeof(ex));
	ex.done = on_done;
	ex.owner = out;
	assert_int_equal(usher_http_exchange_start(&ex, loop, cfg->probes[0].opts, checks,
						   usher_mono_ms() + timeout_ms, &err),
			 USHER_OK);
	limit = usher_mono_ms() + timeout_ms + 2000;
	while (!out->done && usher_mono_ms() < limit)
		usher_loop_poll(loop, 50, NULL, 0);
	if (!out->done) {
		usher_http_exchange_cancel(&ex);
		fail_msg("the exchange did not end");
	}
	usher_http_checks_free(checks);
	usher_config_free(cfg);
	usher_loop_free(loop);
}

static void outcome_free(struct outcome *out)
{
	usher_sample_set_free(out->run.samples);
	free(out->head);
	free(out->body);
}

static void expect(const struct outcome *out, const char *reason, const char *msg_part)
{
	if (!reason) {
		if (!out->run.success)
			fail_msg("want success, got %s: %s", out->run.failure_reason,
				 out->run.err.msg);
		return;
	}
	if (out->run.success)
		fail_msg("want %s, got success", reason);
	if (strcmp(out->run.failure_reason, reason) != 0 || !strstr(out->run.err.msg, msg_part))
		fail_msg("want %s (%s), got %s: %s", reason, msg_part, out->run.failure_reason,
			 out->run.err.msg);
}

static void check_phases(const struct outcome *out)
{
	double sum = 0;
	int i;

	for (i = 0; i < USHER_HTTP_NPHASES; i++) {
		assert_true(out->res.phase_s[i] >= 0);
		sum += out->res.phase_s[i];
	}
	assert_true(sum < 5);
}

/* ---- the cases ---------------------------------------------------------- */

static void test_ok_json(void **state)
{
	struct outcome out;

	(void)state;
	probe(at("/ok"),
	      "    json: [{pointer: /status, equals: ok}, {pointer: /n, equals: 3}]\n"
	      "    fail_if_header_not_matches: [{header: content-type, regexp: json}]\n",
	      5000, &out);
	expect(&out, NULL, NULL);
	assert_int_equal(out.res.status, 200);
	assert_true(out.res.http_version == 1.1);
	assert_int_equal(out.res.content_length, strlen(json_body));
	assert_int_equal(out.res.body_bytes, strlen(json_body));
	assert_int_equal(out.res.redirects, 0);
	assert_null(out.res.tls_version);
	assert_int_equal(out.res.ip_protocol, 4);
	assert_string_equal(out.body, json_body);
	assert_non_null(strstr(out.head, "Content-Type: application/json"));
	assert_true(out.res.phase_s[USHER_HTTP_PHASE_RESOLVE] > 0);
	assert_true(out.res.phase_s[USHER_HTTP_PHASE_CONNECT] > 0);
	assert_true(out.res.phase_s[USHER_HTTP_PHASE_TLS] == 0);
	assert_true(out.res.dns_lookup_s > 0);
	check_phases(&out);
	outcome_free(&out);
}

static void test_redirects(void **state)
{
	struct outcome out;

	(void)state;
	probe(at("/redirect"), "", 5000, &out);
	expect(&out, NULL, NULL);
	assert_int_equal(out.res.redirects, 1);
	assert_int_equal(out.res.status, 200);
	assert_int_equal(out.res.body_bytes, strlen(json_body));
	check_phases(&out);
	outcome_free(&out);

	probe(at("/redirect"), "    follow_redirects: false\n", 5000, &out);
	expect(&out, "status", "GET x: status 302 not in valid_status_codes [2xx]");
	assert_int_equal(out.res.redirects, 0);
	outcome_free(&out);

	probe(at("/loop"), "", 5000, &out);
	expect(&out, "protocol", "GET x: maximum (10) redirects followed");
	outcome_free(&out);
}

static void test_gzip(void **state)
{
	struct outcome out;

	(void)state;
	probe(at("/gzip"), "    fail_if_body_not_matches_regexp: \"^a{10000}$\"\n", 5000, &out);
	expect(&out, NULL, NULL);
	/* on the wire compressed, measured decoded */
	assert_true(out.res.content_length > 0 && out.res.content_length < 1000);
	assert_int_equal(out.res.body_bytes, 10000);
	outcome_free(&out);
}

static void test_body_limit(void **state)
{
	struct outcome out;

	(void)state;
	probe(at("/big"), "    body_size_limit: 1KiB\n", 5000, &out);
	expect(&out, "body_too_large", "GET x: body longer than body_size_limit (1024 bytes)");
	assert_true(out.res.body_bytes <= 1024);
	outcome_free(&out);

	/* the decoded size counts: a small gzip body can still be too large */
	probe(at("/gzip"), "    body_size_limit: 4KiB\n", 5000, &out);
	expect(&out, "body_too_large", "body longer than body_size_limit (4096 bytes)");
	outcome_free(&out);
}

static void test_status_and_regex(void **state)
{
	struct outcome out;

	(void)state;
	probe(at("/down"), "", 5000, &out);
	expect(&out, "status", "GET x: status 503 not in valid_status_codes [2xx]");
	assert_int_equal(out.res.status, 503);
	outcome_free(&out);

	probe(at("/ok"), "    fail_if_body_matches_regexp: ok\n", 5000, &out);
	expect(&out, "regex", "GET x: body matches regexp \"ok\"");
	assert_true(out.regex_failed);
	outcome_free(&out);
}

static void test_request_as_sent(void **state)
{
	struct outcome out;

	(void)state;
	probe(at("/echo"),
	      "    method: POST\n"
	      "    body: '{\"a\": 1}'\n"
	      "    headers: {X-Test: hello, Accept: application/json}\n"
	      "    basic_auth: {username: user, password: pass}\n"
	      "    fail_if_body_not_matches_regexp: [\"^POST /echo HTTP/1.1\\r\\n\"]\n",
	      5000, &out);
	expect(&out, NULL, NULL);
	assert_non_null(strstr(out.body, "\r\nAuthorization: Basic dXNlcjpwYXNz\r\n"));
	assert_non_null(strstr(out.body, "\r\nUser-Agent: usher/"));
	assert_non_null(strstr(out.body, "\r\nX-Test: hello\r\n"));
	assert_non_null(strstr(out.body, "\r\nAccept: application/json\r\n"));
	assert_non_null(strstr(out.body, "\r\nContent-Length: 8\r\n"));
	assert_non_null(strstr(out.body, "\r\n\r\n{\"a\": 1}"));
	/* curl's additions that blackbox's client does not make */
	assert_null(strstr(out.body, "Expect:"));
	assert_null(strstr(out.body, "Content-Type:"));
	outcome_free(&out);

	probe(at("/echo"),
	      "    bearer_token: tok-1\n    method: PUT\n"
	      "    fail_if_body_matches_regexp: never-there\n",
	      5000, &out);
	expect(&out, NULL, NULL);
	if (!strstr(out.body, "PUT /echo HTTP/1.1\r\n"))
		fail_msg("sent:\n%s", out.body);
	assert_non_null(strstr(out.body, "\r\nAuthorization: Bearer tok-1\r\n"));
	outcome_free(&out);

	probe(at("/echo"), "    method: HEAD\n", 5000, &out);
	expect(&out, NULL, NULL);
	assert_int_equal(out.res.body_bytes, 0);
	outcome_free(&out);
}

static void test_timeout(void **state)
{
	struct outcome out;
	int64_t t0 = usher_mono_ms();

	(void)state;
	probe(at("/hang"), "", 300, &out);
	expect(&out, "timeout", "GET x: operation timed out after");
	assert_true(usher_mono_ms() - t0 < 1500);
	assert_int_equal(out.res.status, 0);
	outcome_free(&out);
}

static void test_refused(void **state)
{
	struct outcome out;
	char url[128];
	int fd, port = listen_port(&fd);

	(void)state;
	close(fd); /* bound, never listening: nothing is there */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	probe(url, "", 5000, &out);
	expect(&out, "connect", "GET x: failed to connect to 127.0.0.1 port");
	assert_int_equal(out.res.status, 0);
	assert_true(out.res.phase_s[USHER_HTTP_PHASE_PROCESSING] == 0);
	outcome_free(&out);
}

static void test_last_modified_and_localhost(void **state)
{
	struct outcome out;
	char url[128];

	(void)state;
	snprintf(url, sizeof(url), "http://localhost:%d/lastmod", srv.port);
	probe(url, "", 5000, &out);
	expect(&out, NULL, NULL);
	assert_int_equal(out.res.last_modified, 1700086400);
	assert_int_equal(out.res.ip_protocol, 4);
	outcome_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ok_json),
	    cmocka_unit_test(test_redirects),
	    cmocka_unit_test(test_gzip),
	    cmocka_unit_test(test_body_limit),
	    cmocka_unit_test(test_status_and_regex),
	    cmocka_unit_test(test_request_as_sent),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_last_modified_and_localhost),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
