/* Evaluator-internal values of lib/promql: vectors, range vectors, the
 * evaluation context shared by eval.c and functions.c. Not a public header. */
#ifndef USHER_PROMQL_VALUE_H
#define USHER_PROMQL_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "promql/ast.h"
#include "tsdb/labels.h"

struct pq_sample {
	struct usher_labels l;
	double v;
	int64_t t; /* the sample's own time for selector output, else the step's */
};

struct pq_vector {
	struct pq_sample *s;
	size_t n, cap;
};

/* One series of a range vector: its points in the window. */
struct pq_range {
	struct usher_labels l;
	const int64_t *t;
	const double *v;
	size_t n;
};

/* A range vector at one step: series with points in (start, end]. */
struct pq_matrix {
	struct pq_range *s;
	size_t n;
	int64_t start, end; /* the window, for rate's extrapolation */
	int64_t range;      /* end - start */
};

struct pq_value {
	enum usher_promql_type type;
	double scalar;
	const char *str;
	struct pq_vector vec;
	struct pq_matrix mat;
};

struct pq_eval; /* the query being evaluated (eval.c) */

/* What a function implementation gets: the step, the call node (for
 * functions that look at their argument expressions), scratch memory. */
struct pq_call {
	struct pq_eval *ev;
	struct usher_arena *a; /* the step's scratch arena */
	int64_t t;             /* the step time, ms */
	const struct usher_promql_node *node;
};

struct usher_regex;
/* The compiled, anchored regex of a call's pattern argument, compiled once
 * per query and node. An invalid pattern is an evaluation error worded
 * "invalid regular expression in <fn>(): <pattern>". */
enum usher_err pq_call_regex(struct pq_call *c, const char *pattern,
			     const struct usher_regex **out);

/* Appends a sample to v (grown in arena a). */
void pq_vec_push(struct usher_arena *a, struct pq_vector *v, const struct usher_labels *l,
		 double val, int64_t t);
/* Records an evaluation error (Prometheus' wording) and returns
 * USHER_ERR_INVALID. */
enum usher_err pq_errorf(struct pq_eval *ev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Labels minus __name__ (in arena a; shares strings). */
void pq_drop_name(struct usher_arena *a, const struct usher_labels *in, struct usher_labels *out);
/* Neumaier-compensated summation step, as Prometheus' kahanSumInc. */
void pq_kahan_inc(double inc, double *sum, double *c);
/* Prometheus' quantile over values (sorted in place): NaN for q NaN or no
 * values, -Inf below 0, +Inf above 1. */
double pq_quantile(double q, double *v, size_t n);

typedef enum usher_err pq_fn_impl(struct pq_call *c, struct pq_value *args, size_t nargs,
				  struct pq_vector *out);

/* A PromQL function: its signature (checked by the parser) and code. */
struct usher_promql_function {
	const char *name;
	enum usher_promql_type arg_types[5];
	unsigned nargtypes;
	int variadic; /* 0 fixed; n > 0: up to n optional trailing args; -1: any number */
	enum usher_promql_type ret;
	pq_fn_impl *impl;
};

/* The function called name, or NULL. */
const struct usher_promql_function *pq_function_find(const char *name);

#endif
