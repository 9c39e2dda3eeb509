/* Unit tests of the PromQL lexer and parser: what parses to which type and
 * tree shape, and the errors, worded as Prometheus words them, with their
 * line:column positions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "promql/ast.h"

static void test_types(void **state)
{
	static const struct {
		const char *q;
		enum usher_promql_type type;
	} cases[] = {
	    {"1", USHER_PQ_TYPE_SCALAR},
	    {"-1.5e3", USHER_PQ_TYPE_SCALAR},
	    {"0x1F", USHER_PQ_TYPE_SCALAR},
	    {"Inf", USHER_PQ_TYPE_SCALAR},
	    {"nan", USHER_PQ_TYPE_SCALAR},
	    {"5m", USHER_PQ_TYPE_SCALAR},
	    {"\"a\\tb\"", USHER_PQ_TYPE_STRING},
	    {"`raw\\n`", USHER_PQ_TYPE_STRING},
	    {"foo", USHER_PQ_TYPE_VECTOR},
	    {"foo:bar_baz{a=\"b\", c!=\"d\", e=~\"f.*\", g!~\"h\",}", USHER_PQ_TYPE_VECTOR},
	    {"{__name__=~\"x|y\"}", USHER_PQ_TYPE_VECTOR},
	    {"{\"foo\"}", USHER_PQ_TYPE_VECTOR},
	    {"foo[5m]", USHER_PQ_TYPE_MATRIX},
	    {"foo[90]", USHER_PQ_TYPE_MATRIX},
	    {"foo[5m] offset 1h", USHER_PQ_TYPE_MATRIX},
	    {"foo offset -5m @ 100", USHER_PQ_TYPE_VECTOR},
	    {"foo @ start() offset 1m", USHER_PQ_TYPE_VECTOR},
	    {"rate(foo[5m])[30m:1m]", USHER_PQ_TYPE_MATRIX},
	    {"foo[1h:]", USHER_PQ_TYPE_MATRIX},
	    {"sum by (job) (rate(x[5m]))", USHER_PQ_TYPE_VECTOR},
	    {"sum(rate(x[5m])) without (instance)", USHER_PQ_TYPE_VECTOR},
	    {"topk(3, x)", USHER_PQ_TYPE_VECTOR},
	    {"count_values(\"v\", x)", USHER_PQ_TYPE_VECTOR},
	    {"a + on(job) group_left(x, y) b", USHER_PQ_TYPE_VECTOR},
	    {"a > bool ignoring(i) group_right b", USHER_PQ_TYPE_VECTOR},
	    {"1 < bool 2", USHER_PQ_TYPE_SCALAR},
	    {"a and b or c unless d", USHER_PQ_TYPE_VECTOR},
	    {"time()", USHER_PQ_TYPE_SCALAR},
	    {"scalar(x) * 2", USHER_PQ_TYPE_SCALAR},
	    {"round(x)", USHER_PQ_TYPE_VECTOR},
	    {"round(x, 0.5)", USHER_PQ_TYPE_VECTOR},
	    {"label_join(x, \"d\", \",\", \"a\", \"b\", \"c\")", USHER_PQ_TYPE_VECTOR},
	    {"day_of_week()", USHER_PQ_TYPE_VECTOR},
	    {"sum by (on, by, bool) (x)", USHER_PQ_TYPE_VECTOR},
	    {"x{on=\"a\", offset=\"b\"}", USHER_PQ_TYPE_VECTOR},
	    {"# a comment\n  x # trailing\n", USHER_PQ_TYPE_VECTOR},
	    {"predict_linear(x[1h], 4h)", USHER_PQ_TYPE_VECTOR},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_promql_expr *e;
		struct usher_error err;

		usher_error_clear(&err);
		if (usher_promql_parse(cases[i].q, &e, &err))
			fail_msg("%s: %s", cases[i].q, err.msg);
		if (e->root->type != cases[i].type)
			fail_msg("%s: type %s, want %s", cases[i].q,
				 usher_promql_type_name(e->root->type),
				 usher_promql_type_name(cases[i].type));
		usher_promql_expr_free(e);
	}
}

static void test_errors(void **state)
{
	static const struct {
		const char *q, *msg;
	} cases[] = {
	    {"", "1:1: parse error: no expression found in input"},
	    {"foo{", "1:5: parse error: unexpected end of input in label matching, expected "
		     "identifier or \"}\""},
	    {"foo{a=\"b\"", "1:10: parse error: unexpected end of input in label matching, "
			    "expected \",\" or \"}\""},
	    {"foo{a}", "1:6: parse error: unexpected \"}\" in label matching, expected label "
		       "matching operator"},
	    {"foo{a=b}",
	     "1:7: parse error: unexpected identifier \"b\" in label matching, expected string"},
	    {"{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
	    {"{a=\"\"}",
	     "1:1: parse error: vector selector must contain at least one non-empty matcher"},
	    {"{a=~\".*\"}",
	     "1:1: parse error: vector selector must contain at least one non-empty matcher"},
	    {"foo{__name__=\"bar\"}",
	     "1:5: parse error: metric name must not be set twice: \"foo\" or \"bar\""},
	    {"foo{a=~\"(\"}",
	     "1:5: parse error: error parsing regexp: missing closing parenthesis: `(`"},
	    {"(1", "1:3: parse error: unclosed left parenthesis"},
	    {"1)", "1:2: parse error: unexpected right parenthesis ')'"},
	    {"1 +", "1:4: parse error: unexpected end of input"},
	    {"foo bar", "1:5: parse error: unexpected identifier \"bar\""},
	    {"nosuch(x)", "1:1: parse error: unknown function with name \"nosuch\""},
	    {"rate(x)", "1:6: parse error: expected type range vector in call to function "
			"\"rate\", got instant vector"},
	    {"rate(x[5m], 1)",
	     "1:1: parse error: expected 1 argument(s) in call to \"rate\", got 2"},
	    {"round()",
	     "1:1: parse error: expected at least 1 argument(s) in call to \"round\", got 0"},
	    {"round(x, 1, 2)",
	     "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"},
	    {"label_join(x, \"a\", \"b\", 1)", "1:25: parse error: expected type string in call to "
					       "function \"label_join\", got scalar"},
	    {"sum(x[5m])", "1:5: parse error: expected type instant vector in aggregation "
			   "expression, got range vector"},
	    {"topk(x)", "1:1: parse error: wrong number of arguments for aggregate expression "
			"provided, expected 2, got 1"},
	    {"topk(\"a\", x)",
	     "1:6: parse error: expected type scalar in aggregation parameter, got string"},
	    {"count_values(1, x)",
	     "1:14: parse error: expected type string in aggregation parameter, got scalar"},
	    {"sum by (a) (x) by (b)", "1:16: parse error: unexpected <by> in aggregation"},
	    {"sum by (a-b) (x)",
	     "1:10: parse error: unexpected <op:-> in aggregation, expected \",\" or \")\""},
	    {"1 > 2", "1:3: parse error: comparisons between scalars must use BOOL modifier"},
	    {"a + bool b",
	     "1:3: parse error: bool modifier can only be used on comparison operators"},
	    {"1 and x",
	     "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"},
	    {"a and on(x) group_left b",
	     "1:1: parse error: no grouping allowed for \"and\" operation"},
	    {"a + on(x) group_left(x) b",
	     "1:3: parse error: label \"x\" must not occur in ON and GROUP clause at once"},
	    {"1 + on(x) b",
	     "1:1: parse error: vector matching only allowed between instant vectors"},
	    {"x[5m] + 1", "1:1: parse error: binary expression must contain only scalar and "
			  "instant vector types"},
	    {"\"a\" + 1", "1:1: parse error: binary expression must contain only scalar and "
			  "instant vector types"},
	    {"-\"a\"", "1:1: parse error: unary expression only allowed on expressions of type "
		       "scalar or instant vector"},
	    {"(x)[5m]", "1:1: parse error: ranges only allowed for vector selectors"},
	    {"x[5m][5m]", "1:1: parse error: ranges only allowed for vector selectors"},
	    {"x offset 1m[5m]", "1:12: parse error: no offset or @ modifiers allowed before range"},
	    {"x[5m:1m] offset 1m offset 1m",
	     "1:20: parse error: offset may not be set multiple times"},
	    {"sum(x) offset 1m", "1:8: parse error: offset modifier must be preceded by an instant "
				 "vector selector or range vector selector or a subquery"},
	    {"x @ 1 @ 2", "1:7: parse error: @ <timestamp> may not be set multiple times"},
	    {"x @ foo()", "1:5: parse error: unexpected identifier \"foo\" in @ modifier, expected "
			  "number, start() or end()"},
	    {"x[5m:1m:1m]",
	     "1:8: parse error: unexpected \":\" in subquery selector, expected \"]\""},
	    {"x[5m][1m:]", "1:1: parse error: subquery is only allowed on instant vector, got "
			   "range vector instead"},
	    {"x[0s]", "1:2: parse error: duration must be greater than 0"},
	    {"x[5x]", "1:3: parse error: bad number or duration syntax"},
	    {"x{a=\"b}", "1:5: parse error: unterminated quoted string"},
	    {"\"\\q\"", "1:1: parse error: unknown escape sequence"},
	    {"x $ y", "1:3: parse error: unexpected character: '$'"},
	    {"1 +\n  foo{", "2:7: parse error: unexpected end of input in label matching, expected "
			    "identifier or \"}\""},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_promql_expr *e = (void *)1;
		struct usher_error err;

		usher_error_clear(&err);
		if (usher_promql_parse(cases[i].q, &e, &err) != USHER_ERR_INVALID)
			fail_msg("%s: parsed, want \"%s\"", cases[i].q, cases[i].msg);
		assert_null(e);
		if (strcmp(err.msg, cases[i].msg) != 0)
			fail_msg("%s:\n got  \"%s\"\n want \"%s\"", cases[i].q, err.msg,
				 cases[i].msg);
	}
}

static void test_precedence(void **state)
{
	struct usher_promql_expr *e;
	const struct usher_promql_node *n;

	(void)state;
	/* ^ is right-associative: 2 ^ (3 ^ 2) */
	assert_int_equal(usher_promql_parse("2 ^ 3 ^ 2", &e, NULL), USHER_OK);
	n = e->root;
	assert_int_equal(n->kind, USHER_PQ_BINARY);
	assert_int_equal(n->binary.lhs->kind, USHER_PQ_NUMBER);
	assert_int_equal(n->binary.rhs->kind, USHER_PQ_BINARY);
	usher_promql_expr_free(e);
	/* unary minus binds looser than ^: -(2 ^ 2), folded into the number only
	 * when it is one */
	assert_int_equal(usher_promql_parse("-2 ^ 2", &e, NULL), USHER_OK);
	assert_int_equal(e->root->kind, USHER_PQ_UNARY);
	assert_int_equal(e->root->unary.expr->kind, USHER_PQ_BINARY);
	usher_promql_expr_free(e);
	assert_int_equal(usher_promql_parse("-2 * 3", &e, NULL), USHER_OK);
	assert_int_equal(e->root->kind, USHER_PQ_BINARY);
	assert_true(e->root->binary.lhs->number == -2);
	usher_promql_expr_free(e);
	/* a or b and c: "and" binds tighter */
	assert_int_equal(usher_promql_parse("a or b and c", &e, NULL), USHER_OK);
	assert_int_equal(e->root->binary.op, USHER_PQ_OR);
	assert_int_equal(e->root->binary.rhs->binary.op, USHER_PQ_AND);
	usher_promql_expr_free(e);
	/* comparisons below arithmetic, left-associative subtraction */
	assert_int_equal(usher_promql_parse("a - b - c > d * e", &e, NULL), USHER_OK);
	n = e->root;
	assert_int_equal(n->binary.op, USHER_PQ_GTR);
	assert_int_equal(n->binary.lhs->binary.op, USHER_PQ_SUB);
	assert_int_equal(n->binary.lhs->binary.lhs->binary.op, USHER_PQ_SUB);
	assert_int_equal(n->binary.rhs->binary.op, USHER_PQ_MUL);
	usher_promql_expr_free(e);
	/* modifiers land where they belong */
	assert_int_equal(usher_promql_parse("rate(x{a=\"b\"}[5m] offset -1m @ end())", &e, NULL),
			 USHER_OK);
	n = e->root->call.args[0];
	assert_int_equal(n->kind, USHER_PQ_MATRIX_SELECTOR);
	assert_int_equal(n->ms.range_ms, 300000);
	assert_int_equal(n->ms.vs->vs.timing.offset_ms, -60000);
	assert_int_equal(n->ms.vs->vs.timing.at, USHER_PQ_AT_END);
	assert_int_equal(n->ms.vs->vs.nmatchers, 2);
	usher_promql_expr_free(e);
}

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		int64_t ms;
		enum usher_err rc;
	} cases[] = {
	    {"0", 0, USHER_OK},
	    {"5m", 300000, USHER_OK},
	    {"1h30m", 5400000, USHER_OK},
	    {"1y2w3d", 31536000000LL + 14 * 86400000LL + 3 * 86400000LL, USHER_OK},
	    {"500ms", 500, USHER_OK},
	    {"1m1ms", 60001, USHER_OK},
	    {"1s1m", 0, USHER_ERR_INVALID},
	    {"5", 0, USHER_ERR_INVALID},
	    {"m", 0, USHER_ERR_INVALID},
	    {"1.5m", 0, USHER_ERR_INVALID},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		enum usher_err rc =
		    usher_promql_parse_duration(cases[i].s, strlen(cases[i].s), &ms);

		if (rc != cases[i].rc || (rc == USHER_OK && ms != cases[i].ms))
			fail_msg("%s: rc %d ms %lld", cases[i].s, rc, (long long)ms);
	}
}

static void test_deep_nesting(void **state)
{
	char q[4096];
	struct usher_promql_expr *e;
	struct usher_error err;
	size_t i;

	(void)state;
	for (i = 0; i < 1000; i++)
		q[i] = '(';
	q[1000] = '1';
	for (i = 0; i < 1000; i++)
		q[1001 + i] = ')';
	q[2001] = '\0';
	usher_error_clear(&err);
	assert_int_equal(usher_promql_parse(q, &e, &err), USHER_ERR_INVALID);
	assert_non_null(strstr(err.msg, "nested too deeply"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_types),        cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_precedence),   cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_deep_nesting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
