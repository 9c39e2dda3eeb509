/* Unit tests of the probes' client sockets: address parsing, the reconnect
 * backoff, and real loopback sockets for deadlines, cancels from another
 * thread, refused and closed connections, unix sockets and name lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/timeutil.h"
#include "probes/netclient.h"
#include "probes/probe.h"

static void test_addr_parse(void **state)
{
	static const struct {
		const char *in;
		unsigned def;
		const char *host, *port, *why; /* why: NULL when valid */
	} cases[] = {
	    {"cache:6380", 6379, "cache", "6380", NULL},
	    {"cache", 6379, "cache", "6379", NULL},
	    {"cache", 0, NULL, NULL, "missing port: use host:port"},
	    {"127.0.0.1:1", 0, "127.0.0.1", "1", NULL},
	    {"[2001:db8::1]:65535", 0, "2001:db8::1", "65535", NULL},
	    {"[2001:db8::1]", 11211, "2001:db8::1", "11211", NULL},
	    {"cache:65536", 0, NULL, NULL, "invalid port \"65536\": use a number from 1 to 65535"},
	    {"cache:00080", 0, "cache", "80", NULL},
	    {"cache:000000", 0, NULL, NULL,
	     "invalid port \"000000\": use a number from 1 to 65535"},
	    {"cache:-1", 0, NULL, NULL, "invalid port \"-1\": use a number from 1 to 65535"},
	    {"[cache]:1", 0, NULL, NULL, "only IPv6 addresses go in brackets"},
	    {"[::1]x", 0, NULL, NULL, "expected ':' and a port after ']'"},
	    {"a b:1", 0, NULL, NULL, "invalid host \"a b\""},
	    {"unix:", 0, NULL, NULL,
	     "a unix socket needs an absolute path, like unix:/run/redis/redis.sock"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_netaddr a;
		char why[256] = "";
		enum usher_err rc =
		    usher_netaddr_parse(cases[i].in, cases[i].def, &a, why, sizeof(why));

		if (!cases[i].why) {
			if (rc)
				fail_msg("%s: %s", cases[i].in, why);
			assert_false(a.is_unix);
			assert_string_equal(a.host, cases[i].host);
			assert_string_equal(a.port, cases[i].port);
		} else {
			assert_int_equal(rc, USHER_ERR_INVALID);
			assert_string_equal(why, cases[i].why);
		}
	}
}

static void test_addr_unix(void **state)
{
	char long_path[200], why[256];
	struct usher_netaddr a;

	(void)state;
	assert_int_equal(usher_netaddr_parse("unix:/run/r.sock", 6379, &a, why, sizeof(why)),
			 USHER_OK);
	assert_true(a.is_unix);
	assert_string_equal(a.path, "/run/r.sock");
	memset(long_path, 'a', sizeof(long_path));
	memcpy(long_path, "unix:/", 6);
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(usher_netaddr_parse(long_path, 6379, &a, why, sizeof(why)),
			 USHER_ERR_INVALID);
	assert_string_equal(why, "the socket path is longer than 107 bytes");
}

/* Retries come at the next run, then 1s, 2s, 4s, 8s, 10s, 10s after the
 * start of the run that failed; a success starts over. */
static void test_backoff(void **state)
{
	static const int64_t waits[] = {0, 1000, 2000, 4000, 8000, 10000, 10000, 10000};
	struct usher_backoff b;
	struct usher_error err;
	int64_t t = 5000;
	size_t i;

	(void)state;
	memset(&b, 0, sizeof(b));
	usher_error_clear(&err);
	assert_int_equal(usher_backoff_check(&b, t, &err), USHER_OK);
	for (i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
		usher_backoff_failed(&b, t, USHER_ERR_NETWORK,
				     "connect to c:1: connection refused");
		if (waits[i]) {
			usher_error_clear(&err);
			assert_int_equal(usher_backoff_check(&b, t + waits[i] - 1, &err),
					 USHER_ERR_NETWORK);
			assert_non_null(strstr(err.msg, "connect to c:1: connection refused (not "
							"retrying for"));
		}
		assert_int_equal(usher_backoff_check(&b, t + waits[i], &err), USHER_OK);
		t += waits[i];
	}
	usher_backoff_reset(&b);
	usher_backoff_failed(&b, t, USHER_ERR_AUTH, "AUTH refused");
	assert_int_equal(usher_backoff_check(&b, t, &err), USHER_OK);
	assert_string_equal(usher_netclient_reason(USHER_ERR_AUTH), USHER_FAIL_AUTH);
	assert_string_equal(usher_netclient_reason(USHER_ERR_NOTFOUND), USHER_FAIL_DNS);
	assert_string_equal(usher_netclient_reason(USHER_ERR_INVALID), USHER_FAIL_QUERY);
	assert_string_equal(usher_netclient_reason(USHER_ERR_TOOBIG), USHER_FAIL_PROTOCOL);
}

/* ---- real sockets ------------------------------------------------------- */

/* A loopback listener that accepts nothing: connects still succeed (the
 * kernel completes them), and then nothing is ever answered, like a
 * SIGSTOPped server. */
static int listener(struct usher_netaddr *a)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	char why[128];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char text[32];

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(text, sizeof(text), "127.0.0.1:%u", ntohs(sa.sin_port));
	assert_int_equal(usher_netaddr_parse(text, 0, a, why, sizeof(why)), USHER_OK);
	return fd;
}

static struct usher_netclient *client(const struct usher_netaddr *a)
{
	struct usher_netclient *c;
	struct usher_error err;

	usher_error_clear(&err);
	assert_int_equal(usher_netclient_new(a, NULL, &c, &err), USHER_OK);
	return c;
}

static void test_deadline(void **state)
{
	struct usher_netaddr a;
	int lfd = listener(&a);
	struct usher_netclient *c = client(&a);
	struct usher_error err;
	char buf[16];
	size_t got;
	int64_t t0;

	(void)state;
	usher_error_clear(&err);
	usher_netclient_begin(c, 1);
	assert_int_equal(usher_netclient_connect(c, usher_mono_ms() + 2000, &err), USHER_OK);
	assert_true(usher_netclient_connected(c));
	assert_int_equal(usher_netclient_send(c, "PING\r\n", 6, usher_mono_ms() + 1000, &err),
			 USHER_OK);
	t0 = usher_mono_ms();
	assert_int_equal(usher_netclient_recv(c, buf, sizeof(buf), &got, t0 + 200, &err),
			 USHER_ERR_TIMEOUT);
	assert_in_range(usher_mono_ms() - t0, 195, 1000);
	assert_string_equal(err.msg, "timed out waiting for the server");
	/* a failed receive leaves the client disconnected */
	assert_false(usher_netclient_connected(c));
	usher_netclient_free(c);
	close(lfd);
}

struct canceller {
	struct usher_netclient *c;
	uint64_t id;
	int delay_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *k = arg;
	struct timespec ts = {0, k->delay_ms * 1000000L};

	nanosleep(&ts, NULL);
	usher_netclient_cancel(k->c, k->id);
	return NULL;
}

static void test_cancel(void **state)
{
	struct usher_netaddr a;
	int lfd = listener(&a);
	struct usher_netclient *c = client(&a);
	struct canceller k = {c, 42, 100};
	struct usher_error err;
	pthread_t th;
	char buf[16];
	size_t got;
	int64_t t0;

	(void)state;
	usher_error_clear(&err);
	usher_netclient_begin(c, 42);
	assert_int_equal(usher_netclient_connect(c, usher_mono_ms() + 2000, &err), USHER_OK);
	t0 = usher_mono_ms();
	assert_int_equal(pthread_create(&th, NULL, cancel_later, &k), 0);
	assert_int_equal(usher_netclient_recv(c, buf, sizeof(buf), &got, t0 + 10000, &err),
			 USHER_ERR_TIMEOUT);
	assert_in_range(usher_mono_ms() - t0, 90, 2000);
	assert_string_equal(err.msg, "cancelled while waiting for the server");
	pthread_join(th, NULL);

	/* the cancel of run 42 does not touch run 43 */
	usher_error_clear(&err);
	usher_netclient_begin(c, 43);
	assert_int_equal(usher_netclient_connect(c, usher_mono_ms() + 2000, &err), USHER_OK);
	t0 = usher_mono_ms();
	assert_int_equal(usher_netclient_recv(c, buf, sizeof(buf), &got, t0 + 150, &err),
			 USHER_ERR_TIMEOUT);
	assert_string_equal(err.msg, "timed out waiting for the server");
	assert_true(usher_mono_ms() - t0 >= 145);

	/* a cancel that comes before its run begins still counts */
	usher_netclient_cancel(c, 44);
	usher_netclient_begin(c, 44);
	usher_error_clear(&err);
	assert_int_equal(usher_netclient_connect(c, usher_mono_ms() + 2000, &err),
			 USHER_ERR_TIMEOUT);
	assert_string_equal(err.msg, "cancelled before connecting");
	usher_netclient_free(c);
	close(lfd);
}

static void test_refused_and_closed(void **state)
{
	struct usher_netaddr a;
	int lfd = listener(&a), afd;
	struct usher_netclient *c = client(&a);
	struct usher_error err;
	char buf[16], want[128];
	size_t got;

	(void)state;
	usher_netclient_begin(c, 1);
	/* the server accepts, answers, and closes */
	usher_error_clear(&err);
	assert_int_equal(usher_netclient_connect(c, usher_mono_ms() + 2000, &err), USHER_OK);
	afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	assert_int_equal(write(afd, "+OK\r\n", 5), 5);
	close(afd);
	assert_int_equal(
	    usher_netclient_recv(c, buf, sizeof(buf), &got, usher_mono_ms() + 2000, &err),
	    USHER_OK);
	assert_int_equal(got, 5);
	assert_int_equal(
	    usher_netclient_recv(c, buf, sizeof(buf), &got, usher_mono_ms() + 2000, &err),
	    USHER_ERR_NETWORK);
	snprintf(want, sizeof(want), "receive from 127.0.0.1:%s: connection closed by the server",
		 a.port);
	assert_string_equal(err.msg, want);

	/* nothing listens any more */
	close(lfd);
	usher_error_clear(&err);
	assert_int_equal(usher_netclient_connect(c, usher_mono_ms() + 2000, &err),
			 USHER_ERR_NETWORK);
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%s: connection refused", a.port);
	assert_string_equal(err.msg, want);
	assert_false(usher_netclient_connected(c));
	usher_error_clear(&err);
	assert_int_equal(usher_netclient_send(c, "x", 1, usher_mono_ms() + 100, &err),
			 USHER_ERR_NETWORK);
	usher_netclient_free(c);
}

static void test_unix(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/usher-netclient-XXXXXX", why[128], addr[160], buf[16];
	struct usher_netclient *c;
	struct usher_netaddr a;
	struct usher_error err;
	int lfd, afd;
	size_t got;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", sa.sun_path);
	assert_int_equal(usher_netaddr_parse(addr, 0, &a, why, sizeof(why)), USHER_OK);
	c = client(&a);
	usher_netclient_begin(c, 7);
	usher_error_clear(&err);
	assert_int_equal(usher_netclient_connect(c, usher_mono_ms() + 1000, &err),
			 USHER_ERR_NETWORK);
	assert_non_null(strstr(err.msg, ": no such file or directory"));

	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	usher_error_clear(&err);
	assert_int_equal(usher_netclient_connect(c, usher_mono_ms() + 1000, &err), USHER_OK);
	afd = accept(lfd, NULL, NULL);
	assert_int_equal(usher_netclient_send(c, "stats\r\n", 7, usher_mono_ms() + 1000, &err),
			 USHER_OK);
	assert_int_equal(read(afd, buf, sizeof(buf)), 7);
	assert_int_equal(write(afd, "END\r\n", 5), 5);
	assert_int_equal(
	    usher_netclient_recv(c, buf, sizeof(buf), &got, usher_mono_ms() + 1000, &err),
	    USHER_OK);
	assert_memory_equal(buf, "END\r\n", 5);
	usher_netclient_free(c);
	close(afd);
	close(lfd);
	unlink(sa.sun_path);
	rmdir(dir);
}

/* Names go through getaddrinfo_a, bounded by the deadline whatever the
 * resolver does. */
static void test_lookup(void **state)
{
	struct usher_netaddr a;
	struct usher_netclient *c;
	struct usher_error err;
	char why[128];
	int64_t t0;
	enum usher_err rc;

	(void)state;
	assert_int_equal(usher_netaddr_parse("no-such-host.invalid:6379", 0, &a, why, sizeof(why)),
			 USHER_OK);
	c = client(&a);
	usher_netclient_begin(c, 1);
	usher_error_clear(&err);
	t0 = usher_mono_ms();
	rc = usher_netclient_connect(c, t0 + 1500, &err);
	assert_int_equal(rc, USHER_ERR_NOTFOUND);
	assert_true(usher_mono_ms() - t0 < 3000);
	assert_non_null(strstr(err.msg, "resolve no-such-host.invalid: "));
	usher_netclient_free(c);

	/* localhost resolves through the same path (from /etc/hosts) */
	assert_int_equal(usher_netaddr_parse("localhost:1", 0, &a, why, sizeof(why)), USHER_OK);
	c = client(&a);
	usher_netclient_begin(c, 2);
	usher_error_clear(&err);
	rc = usher_netclient_connect(c, usher_mono_ms() + 3000, &err);
	/* port 1 has no listener: the name resolved, the connect was refused */
	if (rc != USHER_ERR_NETWORK)
		fail_msg("connect to localhost:1: %s: %s", usher_strerror(rc), err.msg);
	assert_non_null(strstr(err.msg, "connection refused"));
	usher_netclient_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addr_parse), cmocka_unit_test(test_addr_unix),
	    cmocka_unit_test(test_backoff),    cmocka_unit_test(test_deadline),
	    cmocka_unit_test(test_cancel),     cmocka_unit_test(test_refused_and_closed),
	    cmocka_unit_test(test_unix),       cmocka_unit_test(test_lookup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
