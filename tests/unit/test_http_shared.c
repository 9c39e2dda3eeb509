/* Unit tests of the pieces http.c shares with the journey probe: the
 * regular expression helper (compile errors, the capture a journey
 * extracts: group 1, else the whole match; a group that took no part),
 * the header block walker and the RFC 9110 token check; and of the base
 * labels every probe run carries (probe.c). */
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
#include "probes/probe.h"

static enum usher_http_rx capture(const char *pattern, const char *s, char *out, size_t len)
{
	struct usher_http_regex *re = NULL;
	struct usher_error err;
	size_t off = 99, n = 99;
	enum usher_http_rx rx;

	usher_error_clear(&err);
	assert_int_equal(usher_http_regex_new(pattern, &re, &err), USHER_OK);
	assert_non_null(re);
	rx = usher_http_regex_capture(re, s, strlen(s), &off, &n);
	out[0] = '\0';
	if (rx == USHER_HTTP_RX_MATCH) {
		assert_true(off + n <= strlen(s));
		snprintf(out, len, "%.*s", (int)n, s + off);
	}
	usher_http_regex_free(re);
	return rx;
}

static void test_regex_capture(void **state)
{
	char got[64];

	(void)state;
	/* group 1 when there is one */
	assert_int_equal(capture("\"seat\": \"(\\w+)\", \"state\": \"free\"",
				 "[{\"seat\": \"A1\", \"state\": \"held\"}, "
				 "{\"seat\": \"B7\", \"state\": \"free\"}]",
				 got, sizeof(got)),
			 USHER_HTTP_RX_MATCH);
	assert_string_equal(got, "B7");
	/* the whole match without a group */
	assert_int_equal(capture("id=\\d+", "x id=42 y", got, sizeof(got)), USHER_HTTP_RX_MATCH);
	assert_string_equal(got, "id=42");
	/* "$" only at the very end, as the assertions compile it */
	assert_int_equal(capture("b$", "ab\n", got, sizeof(got)), USHER_HTTP_RX_NOMATCH);
	assert_int_equal(capture("nope", "x id=42 y", got, sizeof(got)), USHER_HTTP_RX_NOMATCH);
	/* group 2 set, group 1 not */
	assert_int_equal(capture("(a)?(b)", "b", got, sizeof(got)), USHER_HTTP_RX_UNSET);
	/* invalid UTF-8 in the subject is tolerated */
	assert_int_equal(capture("k=(\\w+)", "\xff\xfe k=v1", got, sizeof(got)),
			 USHER_HTTP_RX_MATCH);
	assert_string_equal(got, "v1");
}

static void test_regex_invalid(void **state)
{
	struct usher_http_regex *re = (struct usher_http_regex *)&re;
	struct usher_error err;

	(void)state;
	usher_error_clear(&err);
	assert_int_equal(usher_http_regex_new("id=(\\d+", &re, &err), USHER_ERR_INVALID);
	assert_null(re);
	assert_non_null(
	    strstr(err.msg, "invalid regexp \"id=(\\d+\": missing closing parenthesis"));
	usher_http_regex_free(NULL);
}

static void test_header_next(void **state)
{
	static const char head[] = "HTTP/1.1 200 OK\r\n"
				   "Set-Cookie: a=1\r\n"
				   "X-Hold-Id:   h-17 \t\r\n"
				   "set-cookie: b=2\r\n"
				   "X-Empty:\r\n"
				   "\r\n";
	const char *v = NULL;
	size_t pos = 0, n = 0;

	(void)state;
	assert_true(usher_http_header_next(head, strlen(head), &pos, "x-hold-id", &v, &n));
	assert_int_equal(n, 4);
	assert_memory_equal(v, "h-17", 4);
	pos = 0;
	assert_true(usher_http_header_next(head, strlen(head), &pos, "Set-Cookie", &v, &n));
	assert_memory_equal(v, "a=1", n);
	assert_true(usher_http_header_next(head, strlen(head), &pos, "Set-Cookie", &v, &n));
	assert_memory_equal(v, "b=2", n);
	assert_false(usher_http_header_next(head, strlen(head), &pos, "Set-Cookie", &v, &n));
	pos = 0;
	assert_true(usher_http_header_next(head, strlen(head), &pos, "X-Empty", &v, &n));
	assert_int_equal(n, 0);
	pos = 0;
	/* a prefix of a name is not the name */
	assert_false(usher_http_header_next(head, strlen(head), &pos, "X-Hold", &v, &n));
}

static void test_is_token(void **state)
{
	(void)state;
	assert_true(usher_http_is_token("GET"));
	assert_true(usher_http_is_token("X-Api-Key"));
	assert_true(usher_http_is_token("a!#$%&'*+-.^_`|~9"));
	assert_false(usher_http_is_token(""));
	assert_false(usher_http_is_token("Bad Name"));
	assert_false(usher_http_is_token("Bad:Name"));
	assert_false(usher_http_is_token("X\r\n"));
}

static void test_base_labels(void **state)
{
	struct usher_kv labels[] = {
	    {"job", "ignored"}, {"team", "booking"}, {"instance", "ignored"}, {"zone", "eu"}};
	struct usher_probe_conf pc;
	const char **v;

	(void)state;
	memset(&pc, 0, sizeof(pc));
	pc.job = "checkout";
	pc.instance = "api:443";
	pc.labels.n = sizeof(labels) / sizeof(labels[0]);
	pc.labels.v = labels;
	v = usher_probe_base_labels(&pc);
	assert_string_equal(v[0], "job");
	assert_string_equal(v[1], "checkout");
	assert_string_equal(v[2], "instance");
	assert_string_equal(v[3], "api:443");
	assert_string_equal(v[4], "team");
	assert_string_equal(v[5], "booking");
	assert_string_equal(v[6], "zone");
	assert_string_equal(v[7], "eu");
	assert_null(v[8]);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_regex_capture), cmocka_unit_test(test_regex_invalid),
	    cmocka_unit_test(test_header_next),   cmocka_unit_test(test_is_token),
	    cmocka_unit_test(test_base_labels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
