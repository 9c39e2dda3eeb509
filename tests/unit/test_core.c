/* Unit tests of lib/core: durations, sizes, bounded buffers, arenas, the
 * error buffer and complaint rate limiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"

static void test_duration_parse(void **state)
{
	static const struct {
		const char *in;
		enum usher_err rc;
		int64_t ms;
	} cases[] = {
		{"0", USHER_OK, 0},
		{"0s", USHER_OK, 0},
		{"500ms", USHER_OK, 500},
		{"15s", USHER_OK, 15000},
		{"1m30s", USHER_OK, 90000},
		{"1h", USHER_OK, 3600000},
		{"2d", USHER_OK, 172800000},
		{"1w", USHER_OK, 604800000},
		{"1y", USHER_OK, 31536000000},
		{"1h1m1s1ms", USHER_OK, 3661001},
		{"1m5ms", USHER_OK, 60005},
		{"90m", USHER_OK, 5400000},
		{"", USHER_ERR_INVALID, 0},
		{"15", USHER_ERR_INVALID, 0},
		{"s", USHER_ERR_INVALID, 0},
		{"1.5s", USHER_ERR_INVALID, 0},
		{"-1s", USHER_ERR_INVALID, 0},
		{"1s1m", USHER_ERR_INVALID, 0}, /* units largest first */
		{"1s1s", USHER_ERR_INVALID, 0}, /* each unit once */
		{"1ms1s", USHER_ERR_INVALID, 0},
		{"1x", USHER_ERR_INVALID, 0},
		{"15s ", USHER_ERR_INVALID, 0},
		{"99999999999999999999s", USHER_ERR_INVALID, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		enum usher_err rc = usher_duration_parse(cases[i].in, &ms);

		if (rc != cases[i].rc)
			fail_msg("duration \"%s\": rc %d, want %d", cases[i].in, rc, cases[i].rc);
		if (rc == USHER_OK && ms != cases[i].ms)
			fail_msg("duration \"%s\": %lld ms, want %lld", cases[i].in, (long long)ms,
				 (long long)cases[i].ms);
	}
}

static void test_duration_format(void **state)
{
	static const struct {
		int64_t ms;
		const char *out;
	} cases[] = {
		{0, "0s"}, {500, "500ms"}, {15000, "15s"}, {90000, "1m30s"},
		{3600000, "1h"}, {3661001, "1h1m1s1ms"}, {86400000, "1d"}, {604800000, "1w"},
		{691200000, "8d"},
	};
	char buf[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t back;

		usher_duration_format(cases[i].ms, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].out);
		assert_int_equal(usher_duration_parse(buf, &back), USHER_OK);
		assert_int_equal(back, cases[i].ms);
	}
}

static void test_size_parse(void **state)
{
	static const struct {
		const char *in;
		enum usher_err rc;
		uint64_t bytes;
	} cases[] = {
		{"0", USHER_OK, 0},
		{"1024", USHER_OK, 1024},
		{"10B", USHER_OK, 10},
		{"512KiB", USHER_OK, 512 * 1024},
		{"1KB", USHER_OK, 1024},
		{"10MiB", USHER_OK, 10 * 1024 * 1024},
		{"10MB", USHER_OK, 10 * 1024 * 1024},
		{"2GiB", USHER_OK, 2ULL << 30},
		{"", USHER_ERR_INVALID, 0},
		{"MiB", USHER_ERR_INVALID, 0},
		{"10 MiB", USHER_ERR_INVALID, 0},
		{"10TB", USHER_ERR_INVALID, 0},
		{"-1", USHER_ERR_INVALID, 0},
		{"99999999999GiB", USHER_ERR_INVALID, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t b = 7;
		enum usher_err rc = usher_size_parse(cases[i].in, &b);

		if (rc != cases[i].rc)
			fail_msg("size \"%s\": rc %d, want %d", cases[i].in, rc, cases[i].rc);
		if (rc == USHER_OK && b != cases[i].bytes)
			fail_msg("size \"%s\": %llu, want %llu", cases[i].in, (unsigned long long)b,
				 (unsigned long long)cases[i].bytes);
	}
}

static void test_buf_bounded(void **state)
{
	struct usher_buf b;

	(void)state;
	usher_buf_init(&b, 10);
	assert_string_equal(usher_buf_str(&b), "");
	assert_int_equal(usher_buf_addstr(&b, "hello"), USHER_OK);
	assert_int_equal(usher_buf_addf(&b, "%d", 12345), USHER_OK);
	assert_int_equal(b.len, 10);
	assert_string_equal(usher_buf_str(&b), "hello12345");
	/* one byte over the maximum fails and leaves the contents alone */
	assert_int_equal(usher_buf_addc(&b, 'x'), USHER_ERR_TOOBIG);
	assert_int_equal(usher_buf_addf(&b, "%s", "y"), USHER_ERR_TOOBIG);
	assert_string_equal(usher_buf_str(&b), "hello12345");
	usher_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(usher_buf_addstr(&b, "0123456789"), USHER_OK);
	usher_buf_free(&b);
	usher_buf_free(NULL);
}

static void test_arena(void **state)
{
	struct usher_arena *a = usher_arena_new();
	char *big, *s;
	size_t i;

	(void)state;
	for (i = 0; i < 10000; i++) {
		s = usher_arena_printf(a, "item-%zu", i);
		assert_true(((uintptr_t)usher_arena_alloc(a, 3) & 15) == 0);
		assert_string_equal(s + 5, s + 5); /* touch it under ASan */
	}
	big = usher_arena_zalloc(a, 1 << 20);
	assert_int_equal(big[(1 << 20) - 1], 0);
	s = usher_arena_strdup(a, "after the big block");
	assert_string_equal(s, "after the big block");
	usher_arena_reset(a);
	assert_int_equal(usher_arena_used(a), 0);
	s = usher_arena_strndup(a, "abcdef", 3);
	assert_string_equal(s, "abc");
	usher_arena_free(a);
	usher_arena_free(NULL);
}

static void test_error_first_wins(void **state)
{
	struct usher_error e;

	(void)state;
	usher_error_clear(&e);
	assert_string_equal(usher_error_msg(&e, USHER_ERR_TIMEOUT), "timed out");
	assert_int_equal(usher_fail(&e, USHER_ERR_IO, "root cause %d", 1), USHER_ERR_IO);
	assert_int_equal(usher_fail(&e, USHER_ERR_INVALID, "later"), USHER_ERR_INVALID);
	assert_string_equal(e.msg, "root cause 1");
	assert_int_equal(usher_fail(NULL, USHER_ERR_IO, "nowhere"), USHER_ERR_IO);
}

static void test_complain(void **state)
{
	struct usher_complain c = {.interval_ms = 1000};
	uint64_t held = 99;

	(void)state;
	assert_false(usher_complain_release(&c)); /* never failed: no recovery line */
	assert_true(usher_complain(&c, 0, &held));
	assert_int_equal(held, 0);
	assert_false(usher_complain(&c, 10, &held));
	assert_false(usher_complain(&c, 999, &held));
	assert_true(usher_complain(&c, 1000, &held));
	assert_int_equal(held, 2);
	assert_true(usher_complain_release(&c));
	assert_false(usher_complain_release(&c));
	/* a new failure after the recovery is logged at once */
	assert_true(usher_complain(&c, 1001, &held));
	assert_int_equal(held, 0);
}

static void test_json_escape(void **state)
{
	struct usher_buf b;

	(void)state;
	usher_buf_init(&b, 1024);
	usher_json_escape(&b, "a\"b\\c\nd\te\x01 é");
	assert_string_equal(usher_buf_str(&b), "a\\\"b\\\\c\\nd\\te\\u0001 é");
	usher_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_parse), cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_size_parse),     cmocka_unit_test(test_buf_bounded),
		cmocka_unit_test(test_arena),          cmocka_unit_test(test_error_first_wins),
		cmocka_unit_test(test_complain),       cmocka_unit_test(test_json_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
