/* Unit tests of the PromQL engine's contract: result types, the
 * max-samples limit and query timeout (with Prometheus' messages and
 * error types), range-query validation, value formatting, one parsed
 * expression evaluated from several threads, and a storage that is not
 * the tsdb. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "promql/engine.h"
#include "tsdb/tsdb.h"

/* 20 series x{i="0".."19"} with one sample a second for an hour. */
static struct usher_tsdb *load(void)
{
	struct usher_tsdb_options o = {0, 0};
	struct usher_tsdb *db = usher_tsdb_new(&o);
	struct usher_tsdb_batch *b = usher_tsdb_batch_new(db);
	char v[8];
	const char *pairs[] = {"__name__", "x", "i", v, NULL};
	int64_t t;
	int i;

	for (t = 0; t <= 3600000; t += 1000) {
		for (i = 0; i < 20; i++) {
			snprintf(v, sizeof(v), "%d", i);
			usher_tsdb_batch_addv(b, pairs, t, (double)(t / 1000 * (i + 1)));
		}
		assert_int_equal(usher_tsdb_batch_commit(b, t, NULL, NULL), USHER_OK);
	}
	usher_tsdb_batch_free(b, -1);
	return db;
}

static void test_result_types(void **state)
{
	struct usher_tsdb *db = load();
	struct usher_storage st = usher_tsdb_storage(db);
	struct usher_promql_engine *eng = usher_promql_engine_new(NULL);
	struct usher_promql_result r;

	(void)state;
	assert_int_equal(usher_promql_eval_instant(eng, &st, "1 + 1", 5000, &r, NULL), USHER_OK);
	assert_int_equal(r.type, USHER_PQ_TYPE_SCALAR);
	assert_true(r.scalar == 2);
	usher_promql_result_free(&r);
	assert_int_equal(usher_promql_eval_instant(eng, &st, "\"s\"", 5000, &r, NULL), USHER_OK);
	assert_int_equal(r.type, USHER_PQ_TYPE_STRING);
	assert_string_equal(r.string, "s");
	usher_promql_result_free(&r);
	assert_int_equal(usher_promql_eval_instant(eng, &st, "sum(x)", 10000, &r, NULL), USHER_OK);
	assert_int_equal(r.type, USHER_PQ_TYPE_VECTOR);
	assert_int_equal(r.n, 1);
	assert_true(r.vector[0].v == 10 * 210);
	assert_int_equal(r.vector[0].labels.n, 0);
	usher_promql_result_free(&r);
	assert_int_equal(usher_promql_eval_instant(eng, &st, "x{i=\"3\"}[5s]", 10000, &r, NULL),
			 USHER_OK);
	assert_int_equal(r.type, USHER_PQ_TYPE_MATRIX);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.matrix[0].n, 5); /* (5 s, 10 s] */
	assert_int_equal(r.matrix[0].t[0], 6000);
	usher_promql_result_free(&r);
	assert_int_equal(
	    usher_promql_eval_range(eng, &st, "x{i=~\"1|2\"} * 2", 0, 10000, 5000, &r, NULL),
	    USHER_OK);
	assert_int_equal(r.type, USHER_PQ_TYPE_MATRIX);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.matrix[0].labels.v[0].value, "1"); /* sorted, name dropped */
	assert_int_equal(r.matrix[0].n, 3);
	assert_true(r.matrix[1].v[2] == 10 * 3 * 2);
	usher_promql_result_free(&r);
	usher_promql_engine_free(eng);
	usher_tsdb_free(db);
}

static void test_errors(void **state)
{
	struct usher_tsdb *db = load();
	struct usher_storage st = usher_tsdb_storage(db);
	struct usher_promql_options o;
	struct usher_promql_engine *eng;
	struct usher_promql_result r;
	struct usher_error err;

	(void)state;
	usher_promql_options_default(&o);
	o.max_samples = 1000;
	eng = usher_promql_engine_new(&o);
	usher_error_clear(&err);
	assert_int_equal(usher_promql_eval_instant(eng, &st, "sum(x[10m])", 3600000, &r, &err),
			 USHER_ERR_INVALID); /* sum() of a range vector: a parse error */
	assert_string_equal(r.error_type, "bad_data");
	usher_error_clear(&err);
	assert_int_equal(
	    usher_promql_eval_instant(eng, &st, "count_over_time(x[10m])", 3600000, &r, &err),
	    USHER_ERR_TOOBIG);
	assert_string_equal(err.msg, "query processing would load too many samples into memory in "
				     "query execution");
	assert_string_equal(r.error_type, "execution");
	/* the limit holds for what a range query accumulates too */
	usher_error_clear(&err);
	assert_int_equal(usher_promql_eval_range(eng, &st, "vector(1)", 0, 3600000, 1000, &r, &err),
			 USHER_ERR_TOOBIG);
	usher_error_clear(&err);
	assert_int_equal(usher_promql_eval_range(eng, &st, "x[5m]", 0, 60000, 1000, &r, &err),
			 USHER_ERR_INVALID);
	assert_string_equal(err.msg, "invalid expression type \"range vector\" for range query, "
				     "must be Scalar or instant Vector");
	usher_error_clear(&err);
	assert_int_equal(usher_promql_eval_range(eng, &st, "1", 0, 60000000, 1, &r, &err),
			 USHER_ERR_INVALID);
	assert_non_null(strstr(err.msg, "exceeded maximum resolution of 11,000 points"));
	usher_error_clear(&err);
	assert_int_equal(usher_promql_eval_instant(eng, &st, "x / on() x", 5000, &r, &err),
			 USHER_ERR_INVALID);
	assert_non_null(strstr(err.msg, "many-to-many matching not allowed"));
	assert_string_equal(r.error_type, "execution");
	usher_promql_engine_free(eng);

	/* a timeout, whatever the machine's speed: a nested subquery of ~10^10 steps */
	usher_promql_options_default(&o);
	o.timeout_ms = 50;
	eng = usher_promql_engine_new(&o);
	usher_error_clear(&err);
	assert_int_equal(usher_promql_eval_instant(eng, &st,
						   "max_over_time(sum_over_time(x[1d:1s])[1d:1s])",
						   3600000, &r, &err),
			 USHER_ERR_TIMEOUT);
	assert_string_equal(err.msg, "query timed out in query execution");
	assert_string_equal(r.error_type, "timeout");
	usher_promql_engine_free(eng);
	usher_tsdb_free(db);
}

struct worker {
	const struct usher_promql_engine *eng;
	const struct usher_storage *st;
	const struct usher_promql_expr *e;
	double sum;
	int failures;
};

static void *work(void *p)
{
	struct worker *w = p;
	int k;

	for (k = 0; k < 50; k++) {
		struct usher_promql_result r;

		if (usher_promql_eval_instant_expr(w->eng, w->st, w->e, 600000, &r, NULL) ||
		    r.type != USHER_PQ_TYPE_VECTOR || r.n != 1) {
			w->failures++;
			continue;
		}
		w->sum = r.vector[0].v;
		usher_promql_result_free(&r);
	}
	return NULL;
}

static void test_shared_expression(void **state)
{
	struct usher_tsdb *db = load();
	struct usher_storage st = usher_tsdb_storage(db);
	struct usher_promql_engine *eng = usher_promql_engine_new(NULL);
	struct usher_promql_expr *e;
	struct worker w[4];
	pthread_t th[4];
	int i;

	(void)state;
	assert_int_equal(usher_promql_parse("sum(rate(x{i=~\"1.*\"}[1m]))", &e, NULL), USHER_OK);
	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){eng, &st, e, 0, 0};
		pthread_create(&th[i], NULL, work, &w[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
		/* i = 1, 10..19: rates 2, 11..20 per second */
		assert_true(fabs(w[i].sum - (2 + 155)) < 1e-9);
	}
	usher_promql_expr_free(e);
	usher_promql_engine_free(eng);
	usher_tsdb_free(db);
}

/* A storage that is not the tsdb: one series, two samples. */
static enum usher_err fake_select(void *ctx, const struct usher_matcher *m, size_t nm, int64_t mint,
				  int64_t maxt, struct usher_arena *a, size_t *budget,
				  struct usher_series **out, size_t *nout, struct usher_error *err)
{
	static const struct usher_label l[] = {{"__name__", "fake"}, {"k", "v"}};
	static const int64_t t[] = {1000, 2000};
	static const double v[] = {1, 3};
	struct usher_labels ls = {2, l};

	(void)ctx;
	(void)mint;
	(void)maxt;
	(void)budget;
	(void)err;
	*nout = 0;
	*out = usher_arena_alloc(a, sizeof(**out));
	if (!usher_matchers_match(m, nm, &ls))
		return USHER_OK;
	(*out)->labels = ls;
	(*out)->n = 2;
	(*out)->t = t;
	(*out)->v = v;
	*nout = 1;
	return USHER_OK;
}

static void test_custom_storage(void **state)
{
	struct usher_storage st = {fake_select, NULL};
	struct usher_promql_engine *eng = usher_promql_engine_new(NULL);
	struct usher_promql_result r;

	(void)state;
	assert_int_equal(
	    usher_promql_eval_instant(eng, &st, "delta(fake{k=\"v\"}[2s])", 2000, &r, NULL),
	    USHER_OK);
	assert_int_equal(r.n, 1);
	assert_true(r.vector[0].v == 4); /* 2 over 1 s, extrapolated to the 2 s window */
	assert_string_equal(r.vector[0].labels.v[0].name, "k");
	usher_promql_result_free(&r);
	usher_promql_engine_free(eng);
}

static void test_format_value(void **state)
{
	static const struct {
		double v;
		const char *s;
	} cases[] = {
	    {1, "1"},
	    {0.1, "0.1"},
	    {-2.5, "-2.5"},
	    {1e21, "1000000000000000000000"},
	    {1.5e-7, "0.00000015"},
	    {123456.789, "123456.789"},
	    {0, "0"},
	    {1.0 / 3, "0.3333333333333333"},
	    {INFINITY, "+Inf"},
	    {-INFINITY, "-Inf"},
	    {NAN, "NaN"},
	    {1.5e30, "1500000000000000000000000000000"},
	    {-0.0, "-0"},
	};
	char buf[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		usher_promql_format_value(cases[i].v, buf, sizeof(buf));
		if (strcmp(buf, cases[i].s))
			fail_msg("%a: \"%s\", want \"%s\"", cases[i].v, buf, cases[i].s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_result_types),      cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_shared_expression), cmocka_unit_test(test_custom_storage),
	    cmocka_unit_test(test_format_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
