/* Unit tests of the RESP adapter: commands as Redis expects them, replies
 * parsed whatever the chunking, and the limits a hostile server meets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes/resp.h"

static void test_format(void **state)
{
	static const char *const argv[] = {"SET", "hold:1", ""};
	static const char *const bin[] = {"GET", "a\0b"};
	static const size_t lens[] = {3, 3};
	struct usher_buf b;

	(void)state;
	usher_buf_init(&b, 1024);
	assert_int_equal(usher_resp_format(&b, 3, argv, NULL), USHER_OK);
	assert_string_equal(b.data, "*3\r\n$3\r\nSET\r\n$6\r\nhold:1\r\n$0\r\n\r\n");
	usher_buf_reset(&b);
	assert_int_equal(usher_resp_format(&b, 2, bin, lens), USHER_OK);
	assert_int_equal(b.len, 22);
	assert_memory_equal(b.data, "*2\r\n$3\r\nGET\r\n$3\r\na\0b\r\n", 22);
	usher_buf_free(&b);

	/* past the buffer's maximum: nothing is added */
	usher_buf_init(&b, 20);
	assert_int_equal(usher_resp_format(&b, 1, argv, NULL), USHER_OK);
	assert_int_equal(usher_resp_format(&b, 3, argv, NULL), USHER_ERR_TOOBIG);
	assert_string_equal(b.data, "*1\r\n$3\r\nSET\r\n");
	usher_buf_free(&b);
}

/* Feeds in (len bytes) chunk bytes at a time, collecting every reply. */
static size_t read_all(struct usher_resp_reader *r, const char *in, size_t len, size_t chunk,
		       struct usher_resp **out, size_t max)
{
	struct usher_error err;
	size_t off = 0, n = 0;

	usher_error_clear(&err);
	while (off < len) {
		size_t k = len - off < chunk ? len - off : chunk;
		struct usher_resp *rep;

		assert_int_equal(usher_resp_reader_feed(r, in + off, k, &err), USHER_OK);
		off += k;
		for (;;) {
			assert_int_equal(usher_resp_reader_next(r, &rep, &err), USHER_OK);
			if (!rep)
				break;
			assert_true(n < max);
			out[n++] = rep;
		}
	}
	return n;
}

static void test_replies_any_chunking(void **state)
{
	static const char in[] = "+PONG\r\n-NOAUTH Authentication required.\r\n:42\r\n$-1\r\n"
				 "$5\r\nab\r\nc\r\n*2\r\n$3\r\n123\r\n*3\r\n$1\r\na\r\n$0\r\n\r\n"
				 "$-1\r\n*0\r\n*-1\r\n";
	size_t chunk;

	(void)state;
	for (chunk = 1; chunk <= sizeof(in); chunk++) {
		struct usher_resp_reader *r = usher_resp_reader_new(1 << 20, 1000);
		struct usher_resp *v[16];
		char shown[64];
		size_t n = read_all(r, in, sizeof(in) - 1, chunk, v, 16), i;

		assert_int_equal(n, 8);
		assert_int_equal(v[0]->type, USHER_RESP_STATUS);
		assert_string_equal(v[0]->str, "PONG");
		assert_int_equal(v[1]->type, USHER_RESP_ERROR);
		assert_string_equal(v[1]->str, "NOAUTH Authentication required.");
		assert_int_equal(v[2]->type, USHER_RESP_INTEGER);
		assert_int_equal(v[2]->integer, 42);
		assert_int_equal(v[3]->type, USHER_RESP_NIL);
		assert_int_equal(v[4]->type, USHER_RESP_STRING);
		assert_int_equal(v[4]->len, 5);
		assert_memory_equal(v[4]->str, "ab\r\nc", 6); /* with its NUL */
		/* a SCAN reply's shape: [cursor, [keys]] */
		assert_int_equal(v[5]->type, USHER_RESP_ARRAY);
		assert_int_equal(v[5]->n, 2);
		assert_string_equal(v[5]->elem[0]->str, "123");
		assert_int_equal(v[5]->elem[1]->n, 3);
		assert_string_equal(v[5]->elem[1]->elem[0]->str, "a");
		assert_int_equal(v[5]->elem[1]->elem[1]->len, 0);
		assert_int_equal(v[5]->elem[1]->elem[2]->type, USHER_RESP_NIL);
		assert_int_equal(v[6]->type, USHER_RESP_ARRAY);
		assert_int_equal(v[6]->n, 0);
		assert_int_equal(v[7]->type, USHER_RESP_NIL);
		assert_string_equal(usher_resp_describe(v[1], shown, sizeof(shown)),
				    "-NOAUTH Authentication required.");
		assert_string_equal(usher_resp_describe(v[4], shown, sizeof(shown)), "$5");
		assert_string_equal(usher_resp_describe(v[5], shown, sizeof(shown)), "*2");
		assert_string_equal(usher_resp_describe(v[2], shown, sizeof(shown)), ":42");
		for (i = 0; i < n; i++)
			usher_resp_free(v[i]);
		usher_resp_reader_free(r);
	}
}

/* Feeds in at once; returns the first error of feed or next. */
static enum usher_err first_error(struct usher_resp_reader *r, const char *in, size_t len,
				  char *msg, size_t msglen)
{
	struct usher_error err;
	struct usher_resp *rep;
	enum usher_err rc;

	usher_error_clear(&err);
	rc = usher_resp_reader_feed(r, in, len, &err);
	while (!rc) {
		rc = usher_resp_reader_next(r, &rep, &err);
		if (!rc && !rep)
			break;
		usher_resp_free(rep);
	}
	snprintf(msg, msglen, "%s", err.msg);
	return rc;
}

static void test_limits_and_garbage(void **state)
{
	static const struct {
		const char *in;
		size_t max_bytes, max_elements;
		enum usher_err want;
		const char *msg;
	} cases[] = {
	    /* an announced count is refused before anything is allocated */
	    {"*2147483647\r\n", 1 << 20, 1000, USHER_ERR_TOOBIG,
	     "a reply has more than 1000 elements or 1048576 bytes"},
	    {"*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n", 1 << 20, 4, USHER_ERR_TOOBIG, NULL},
	    {"*3\r\n:1\r\n:2\r\n:3\r\n", 1 << 20, 4, USHER_OK, NULL},
	    /* nested elements count too: 1 + 2 + 2 */
	    {"*2\r\n*1\r\n:1\r\n*1\r\n:2\r\n", 1 << 20, 4, USHER_ERR_TOOBIG, NULL},
	    /* the limits are per reply: two of 3 elements pass */
	    {"*2\r\n:1\r\n:2\r\n*2\r\n:1\r\n:2\r\n", 1 << 20, 3, USHER_OK, NULL},
	    {"$10\r\n0123456789\r\n", 8, 100, USHER_ERR_TOOBIG,
	     "a reply holds more than 8 bytes: giving up on it"},
	    {"*2\r\n$4\r\nabcd\r\n$4\r\nabcd\r\n", 1 << 20, 100, USHER_OK, NULL},
	    {"*2\r\n$6\r\nabcdef\r\n$6\r\nabcdef\r\n", 10, 100, USHER_ERR_TOOBIG, NULL},
	    {"$-7\r\n", 1 << 20, 100, USHER_ERR_PROTOCOL,
	     "not a Redis reply: Bulk string length out of range"},
	    {"?what\r\n", 1 << 20, 100, USHER_ERR_PROTOCOL, NULL},
	    {"HTTP/1.1 400 Bad Request\r\n", 1 << 20, 100, USHER_ERR_PROTOCOL, NULL},
	    {":12x\r\n", 1 << 20, 100, USHER_ERR_PROTOCOL, NULL},
	    {"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 1 << 20, 100,
	     USHER_ERR_PROTOCOL, NULL},
	    /* a huge announced bulk just waits for bytes, bounded by feed */
	    {"$9223372036854775807\r\nab", 1 << 20, 100, USHER_OK, NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_resp_reader *r =
		    usher_resp_reader_new(cases[i].max_bytes, cases[i].max_elements);
		char msg[USHER_ERRMSG_MAX];
		enum usher_err rc =
		    first_error(r, cases[i].in, strlen(cases[i].in), msg, sizeof(msg));

		if (rc != cases[i].want)
			fail_msg("case %zu: got %s (%s), want %s", i, usher_strerror(rc), msg,
				 usher_strerror(cases[i].want));
		if (cases[i].msg)
			assert_string_equal(msg, cases[i].msg);
		usher_resp_reader_free(r);
	}
}

/* After an error, a reset reader parses a new connection's bytes. */
static void test_reset(void **state)
{
	struct usher_resp_reader *r = usher_resp_reader_new(1 << 20, 10);
	struct usher_resp *v[2];
	char msg[USHER_ERRMSG_MAX];

	(void)state;
	assert_int_equal(first_error(r, "*50\r\n", 5, msg, sizeof(msg)), USHER_ERR_TOOBIG);
	usher_resp_reader_reset(r);
	assert_int_equal(read_all(r, "+OK\r\n", 5, 2, v, 2), 1);
	assert_string_equal(v[0]->str, "OK");
	usher_resp_free(v[0]);
	/* a half reply is dropped by a reset too */
	assert_int_equal(first_error(r, "$5\r\nab", 6, msg, sizeof(msg)), USHER_OK);
	usher_resp_reader_reset(r);
	assert_int_equal(read_all(r, ":7\r\n", 4, 4, v, 2), 1);
	assert_int_equal(v[0]->integer, 7);
	usher_resp_free(v[0]);
	usher_resp_reader_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_replies_any_chunking),
	    cmocka_unit_test(test_limits_and_garbage),
	    cmocka_unit_test(test_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
