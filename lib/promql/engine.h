/* The PromQL engine: evaluates a query at one instant or over a range of
 * steps against a storage (lib/tsdb's usher_storage), with Prometheus 3.x
 * semantics: left-open range windows (t-range, t], a 5 minute lookback for
 * instant selectors, staleness markers, __name__ dropped by arithmetic and
 * most functions. Each evaluation works in its own arena; the engine itself
 * is immutable, so one engine serves any number of threads at once. */
#ifndef USHER_PROMQL_ENGINE_H
#define USHER_PROMQL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "promql/ast.h"
#include "tsdb/labels.h"
#include "tsdb/tsdb.h"

struct usher_promql_options {
	int64_t timeout_ms;      /* a query running longer fails; 0: no limit */
	size_t max_samples;      /* samples one query may hold; 0: no limit */
	int64_t lookback_ms;     /* instant selector lookback */
	int64_t default_step_ms; /* subquery step when none is written */
};

/* Prometheus' defaults: 2m timeout, 50,000,000 samples, 5m lookback, 1m
 * subquery step. */
void usher_promql_options_default(struct usher_promql_options *o);

struct usher_promql_engine;

/* o may be NULL for the defaults; it is copied. */
struct usher_promql_engine *usher_promql_engine_new(const struct usher_promql_options *o);
void usher_promql_engine_free(struct usher_promql_engine *e);

/* One sample of an instant vector. */
struct usher_promql_sample {
	struct usher_labels labels;
	double v;
	int64_t t; /* ms */
};

/* One series of a range vector or range query result. */
struct usher_promql_series {
	struct usher_labels labels;
	size_t n;
	const int64_t *t; /* ms, ascending */
	const double *v;
};

/* A query's result. Everything it points to lives in its arena. */
struct usher_promql_result {
	enum usher_promql_type type;
	double scalar;                      /* SCALAR */
	const char *string;                 /* STRING */
	int64_t t;                          /* SCALAR, STRING: the evaluation time */
	struct usher_promql_sample *vector; /* VECTOR: n samples */
	struct usher_promql_series *matrix; /* MATRIX: n series, sorted by labels */
	size_t n;
	/* On failure: Prometheus' API errorType, "bad_data" (parse and type
	 * errors), "execution", "timeout" or "internal". */
	const char *error_type;
	struct usher_arena *arena;
};

/* Frees the result's memory and zeroes it. Accepts a zeroed result. */
void usher_promql_result_free(struct usher_promql_result *r);

/* Evaluates expr at time t (ms). An instant query may yield any type; a
 * range vector comes back as a MATRIX with each series' raw samples.
 * On success *res is filled (free it with usher_promql_result_free); on
 * failure res holds only error_type and err holds Prometheus' message.
 * Returns USHER_ERR_INVALID (bad query or evaluation error),
 * USHER_ERR_TIMEOUT ("query timed out in query execution"),
 * USHER_ERR_TOOBIG (the max-samples limit: "query processing would load
 * too many samples into memory in query execution"). Thread-safe. */
enum usher_err usher_promql_eval_instant_expr(const struct usher_promql_engine *eng,
					      const struct usher_storage *st,
					      const struct usher_promql_expr *expr, int64_t t,
					      struct usher_promql_result *res,
					      struct usher_error *err);
/* Parses query, then as usher_promql_eval_instant_expr. */
enum usher_err usher_promql_eval_instant(const struct usher_promql_engine *eng,
					 const struct usher_storage *st, const char *query,
					 int64_t t, struct usher_promql_result *res,
					 struct usher_error *err);

/* Evaluates expr at start, start+step, … up to end (ms). The expression
 * must be a scalar or an instant vector; the result is a MATRIX sorted by
 * labels, a scalar giving one series with no labels. Errors as above. */
enum usher_err usher_promql_eval_range_expr(const struct usher_promql_engine *eng,
					    const struct usher_storage *st,
					    const struct usher_promql_expr *expr, int64_t start,
					    int64_t end, int64_t step,
					    struct usher_promql_result *res,
					    struct usher_error *err);
enum usher_err usher_promql_eval_range(const struct usher_promql_engine *eng,
				       const struct usher_storage *st, const char *query,
				       int64_t start, int64_t end, int64_t step,
				       struct usher_promql_result *res, struct usher_error *err);

/* Formats v as Prometheus' API does (strconv 'f' -1 / shortest form:
 * "1", "0.1", "1e+21", "NaN", "+Inf", "-Inf"). len >= 32. */
void usher_promql_format_value(double v, char *out, size_t len);

#endif
