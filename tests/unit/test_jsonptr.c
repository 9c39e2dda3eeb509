/* Unit tests of JSON Pointer (RFC 6901): the RFC's own examples, escapes,
 * array indices, "-", leading zeros, and the messages of each failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes/jsonptr.h"

/* RFC 6901 section 5's document, plus keys that test the decoding order. */
static const char doc_text[] = "{"
			       "\"foo\": [\"bar\", \"baz\"],"
			       "\"\": 0,"
			       "\"a/b\": 1,"
			       "\"c%d\": 2,"
			       "\"e^f\": 3,"
			       "\"g|h\": 4,"
			       "\"i\\\\j\": 5,"
			       "\"k\\\"l\": 6,"
			       "\" \": 7,"
			       "\"m~n\": 8,"
			       "\"~1\": 9,"
			       "\"01\": 10,"
			       "\"nested\": {\"list\": [{\"ok\": true}, null, [1, [2]]]},"
			       "\"s\": \"text\","
			       "\"n\": null"
			       "}";

static void test_rfc_examples(void **state)
{
	static const struct {
		const char *ptr;
		const char *want; /* JSON of the value found */
	} cases[] = {
	    {"", NULL}, /* the whole document: checked below */
	    {"/foo", "[\"bar\", \"baz\"]"},
	    {"/foo/0", "\"bar\""},
	    {"/foo/1", "\"baz\""},
	    {"/", "0"},
	    {"/a~1b", "1"},
	    {"/c%d", "2"},
	    {"/e^f", "3"},
	    {"/g|h", "4"},
	    {"/i\\j", "5"},
	    {"/k\"l", "6"},
	    {"/ ", "7"},
	    {"/m~0n", "8"},
	    /* ~01 is "~1" (not "/"): ~1 is decoded before ~0 would be */
	    {"/~01", "9"},
	    /* on an object, "01" is just a member name */
	    {"/01", "10"},
	    {"/nested/list/0/ok", "true"},
	    {"/nested/list/1", "null"},
	    {"/nested/list/2/1/0", "2"},
	    {"/n", "null"},
	};
	json_error_t jerr;
	json_t *doc = json_loads(doc_text, 0, &jerr);
	size_t i;

	(void)state;
	assert_non_null(doc);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_error err;
		json_t *got = NULL, *want;
		enum usher_err rc;

		usher_error_clear(&err);
		rc = usher_jsonptr_get(doc, cases[i].ptr, &got, &err);
		if (rc != USHER_OK)
			fail_msg("%s: rc %d: %s", cases[i].ptr, rc, err.msg);
		want = cases[i].want ? json_loads(cases[i].want, JSON_DECODE_ANY, &jerr) : doc;
		assert_non_null(want);
		if (!json_equal(got, want))
			fail_msg("%s: wrong value", cases[i].ptr);
		if (want != doc)
			json_decref(want);
	}
	json_decref(doc);
}

static void test_failures(void **state)
{
	static const struct {
		const char *ptr;
		enum usher_err rc;
		const char *msg;
	} cases[] = {
	    {"foo", USHER_ERR_INVALID, "must be empty (the whole document) or start with \"/\""},
	    {"#/foo", USHER_ERR_INVALID, "must be empty (the whole document) or start with \"/\""},
	    {"/m~2n", USHER_ERR_INVALID,
	     "\"~\" at offset 2 must be followed by 0 or 1 (write ~0 for \"~\" and ~1 for \"/\")"},
	    {"/m~", USHER_ERR_INVALID,
	     "\"~\" at offset 2 must be followed by 0 or 1 (write ~0 for \"~\" and ~1 for \"/\")"},
	    /* a syntax error is reported even past a missing member */
	    {"/missing/~x", USHER_ERR_INVALID,
	     "\"~\" at offset 9 must be followed by 0 or 1 (write ~0 for \"~\" and ~1 for \"/\")"},
	    {"/missing", USHER_ERR_NOTFOUND,
	     "no member \"missing\" in the object at the document root"},
	    {"/nested/nope", USHER_ERR_NOTFOUND, "no member \"nope\" in the object at /nested"},
	    {"/~10", USHER_ERR_NOTFOUND, "no member \"/0\" in the object at the document root"},
	    {"/foo/2", USHER_ERR_NOTFOUND,
	     "index 2 is past the end of the array at /foo (2 elements)"},
	    {"/foo/-", USHER_ERR_NOTFOUND, "\"-\" is past the end of the array at /foo"},
	    {"/foo/01", USHER_ERR_INVALID, "array index \"01\" has a leading zero"},
	    {"/foo/00", USHER_ERR_INVALID, "array index \"00\" has a leading zero"},
	    {"/foo/1a", USHER_ERR_NOTFOUND, "\"1a\" is not an index of the array at /foo"},
	    {"/foo/-1", USHER_ERR_NOTFOUND, "\"-1\" is not an index of the array at /foo"},
	    {"/foo/", USHER_ERR_NOTFOUND, "\"\" is not an index of the array at /foo"},
	    {"/foo/99999999999999999999999999", USHER_ERR_NOTFOUND,
	     "index 99999999999999999999999999 is past the end of the array at /foo (2 "
	     "elements)"},
	    {"/foo/0/x", USHER_ERR_NOTFOUND,
	     "the value at /foo/0 is a string, not an object or array"},
	    {"/n/x", USHER_ERR_NOTFOUND, "the value at /n is null, not an object or array"},
	    {"/nested/list/0/ok/x", USHER_ERR_NOTFOUND,
	     "the value at /nested/list/0/ok is a boolean, not an object or array"},
	    {"/a~1b/0", USHER_ERR_NOTFOUND,
	     "the value at /a~1b is a number, not an object or array"},
	};
	json_error_t jerr;
	json_t *doc = json_loads(doc_text, 0, &jerr);
	size_t i;

	(void)state;
	assert_non_null(doc);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_error err;
		json_t *got = (json_t *)doc; /* must be reset to NULL */
		enum usher_err rc;

		usher_error_clear(&err);
		rc = usher_jsonptr_get(doc, cases[i].ptr, &got, &err);
		if (rc != cases[i].rc || strcmp(err.msg, cases[i].msg) != 0)
			fail_msg("%s:\n got  %d %s\n want %d %s", cases[i].ptr, rc, err.msg,
				 cases[i].rc, cases[i].msg);
		assert_null(got);
	}
	json_decref(doc);
}

static void test_check(void **state)
{
	static const struct {
		const char *ptr;
		bool ok;
	} cases[] = {
	    {"", true},     {"/", true},    {"//", true},     {"/a/b", true}, {"/~0~1", true},
	    {"/-", true},   {"/01", true},  {"a", false},     {"/~", false},  {"/~a", false},
	    {"/a~", false}, {" /a", false}, {"/~0~2", false},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_error err;
		enum usher_err rc;

		usher_error_clear(&err);
		rc = usher_jsonptr_check(cases[i].ptr, &err);
		if ((rc == USHER_OK) != cases[i].ok)
			fail_msg("\"%s\": rc %d (%s)", cases[i].ptr, rc, err.msg);
		if (!cases[i].ok)
			assert_true(err.msg[0] != '\0');
	}
}

static void test_scalar_root(void **state)
{
	json_t *doc = json_string("just text"), *got = NULL;
	struct usher_error err;

	(void)state;
	usher_error_clear(&err);
	assert_int_equal(usher_jsonptr_get(doc, "", &got, &err), USHER_OK);
	assert_ptr_equal(got, doc);
	assert_int_equal(usher_jsonptr_get(doc, "/0", &got, &err), USHER_ERR_NOTFOUND);
	assert_string_equal(err.msg,
			    "the value at the document root is a string, not an object or array");
	json_decref(doc);
}

static void test_typenames(void **state)
{
	static const struct {
		const char *json;
		const char *name;
	} cases[] = {
	    {"{}", "object"},  {"[]", "array"},     {"\"x\"", "string"},  {"1", "number"},
	    {"1.5", "number"}, {"true", "boolean"}, {"false", "boolean"}, {"null", "null"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t jerr;
		json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, &jerr);

		assert_non_null(v);
		assert_string_equal(usher_jsonptr_typename(v), cases[i].name);
		json_decref(v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc_examples), cmocka_unit_test(test_failures),
	    cmocka_unit_test(test_check),        cmocka_unit_test(test_scalar_root),
	    cmocka_unit_test(test_typenames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
