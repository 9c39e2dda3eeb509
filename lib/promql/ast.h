/* The PromQL syntax tree and the parser that builds it. A parsed
 * expression is immutable, so one parse can be evaluated many times and
 * from several threads at once (a rule evaluated every interval). */
#ifndef USHER_PROMQL_AST_H
#define USHER_PROMQL_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "tsdb/labels.h"

/* The four PromQL value types (and NONE for "no value"). */
enum usher_promql_type {
	USHER_PQ_TYPE_NONE,
	USHER_PQ_TYPE_SCALAR,
	USHER_PQ_TYPE_VECTOR, /* instant vector */
	USHER_PQ_TYPE_MATRIX, /* range vector */
	USHER_PQ_TYPE_STRING,
};

/* "scalar", "instant vector", "range vector", "string" (Prometheus' words). */
const char *usher_promql_type_name(enum usher_promql_type t);

enum usher_promql_op {
	USHER_PQ_ADD,
	USHER_PQ_SUB,
	USHER_PQ_MUL,
	USHER_PQ_DIV,
	USHER_PQ_MOD,
	USHER_PQ_POW,
	USHER_PQ_ATAN2,
	USHER_PQ_EQL,
	USHER_PQ_NEQ,
	USHER_PQ_GTR,
	USHER_PQ_LSS,
	USHER_PQ_GTE,
	USHER_PQ_LTE,
	USHER_PQ_AND,
	USHER_PQ_OR,
	USHER_PQ_UNLESS,
};

/* The operator as written ("+", "==", "and"). */
const char *usher_promql_op_str(enum usher_promql_op op);
bool usher_promql_op_is_comparison(enum usher_promql_op op);
bool usher_promql_op_is_set(enum usher_promql_op op);

enum usher_promql_agg {
	USHER_PQ_SUM,
	USHER_PQ_AVG,
	USHER_PQ_MIN,
	USHER_PQ_MAX,
	USHER_PQ_COUNT,
	USHER_PQ_GROUP,
	USHER_PQ_STDDEV,
	USHER_PQ_STDVAR,
	USHER_PQ_TOPK,
	USHER_PQ_BOTTOMK,
	USHER_PQ_QUANTILE,
	USHER_PQ_COUNT_VALUES,
};

enum usher_promql_kind {
	USHER_PQ_NUMBER,
	USHER_PQ_STRING,
	USHER_PQ_VECTOR_SELECTOR,
	USHER_PQ_MATRIX_SELECTOR,
	USHER_PQ_SUBQUERY,
	USHER_PQ_PAREN,
	USHER_PQ_UNARY,
	USHER_PQ_BINARY,
	USHER_PQ_CALL,
	USHER_PQ_AGGREGATE,
};

/* Where an @ modifier points. */
enum usher_promql_at {
	USHER_PQ_AT_NONE,
	USHER_PQ_AT_TIME,  /* @ <unix seconds> */
	USHER_PQ_AT_START, /* @ start() */
	USHER_PQ_AT_END,   /* @ end() */
};

/* The time modifiers a selector or subquery carries. */
struct usher_promql_timing {
	int64_t offset_ms;
	bool has_offset;
	enum usher_promql_at at;
	int64_t at_ms; /* for USHER_PQ_AT_TIME */
};

enum usher_promql_card {
	USHER_PQ_ONE_TO_ONE,
	USHER_PQ_MANY_TO_ONE,  /* group_left */
	USHER_PQ_ONE_TO_MANY,  /* group_right */
	USHER_PQ_MANY_TO_MANY, /* set operators */
};

struct usher_promql_matching {
	enum usher_promql_card card;
	bool on;             /* on(…) rather than ignoring(…) */
	const char **labels; /* the on / ignoring list */
	size_t nlabels;
	const char **include; /* group_left(…) / group_right(…) extra labels */
	size_t ninclude;
};

struct usher_promql_function;

struct usher_promql_node {
	enum usher_promql_kind kind;
	enum usher_promql_type type; /* the value type the node yields */
	unsigned id;                 /* 0 .. nnodes-1, for per-evaluation tables */
	size_t pos, end;             /* byte span in the query text */
	union {
		double number;
		const char *string;
		struct {
			const char *name; /* the metric name written before {…}, or NULL */
			struct usher_matcher *matchers;
			size_t nmatchers;
			struct usher_promql_timing timing;
		} vs;
		struct {
			struct usher_promql_node
			    *vs; /* a VECTOR_SELECTOR, which holds the timing */
			int64_t range_ms;
		} ms;
		struct {
			struct usher_promql_node *expr;
			int64_t range_ms;
			int64_t step_ms; /* 0: the engine's default evaluation interval */
			struct usher_promql_timing timing;
		} sq;
		struct {
			struct usher_promql_node *expr;
		} paren;
		struct {
			enum usher_promql_op op; /* ADD or SUB */
			struct usher_promql_node *expr;
		} unary;
		struct {
			enum usher_promql_op op;
			struct usher_promql_node *lhs, *rhs;
			bool return_bool;
			struct usher_promql_matching
			    matching; /* used when both sides are vectors */
		} binary;
		struct {
			const struct usher_promql_function *fn;
			struct usher_promql_node **args;
			size_t nargs;
		} call;
		struct {
			enum usher_promql_agg op;
			struct usher_promql_node *expr;
			struct usher_promql_node *param; /* topk, bottomk, quantile, count_values */
			const char **grouping;
			size_t ngrouping;
			bool without;
			bool grouped; /* by/without was written (by () groups everything) */
		} agg;
	};
};

/* A parsed query: the tree and everything it owns (its arena, compiled
 * regexes). */
struct usher_promql_expr {
	struct usher_promql_node *root;
	unsigned nnodes;
	const char *query; /* a copy of the text */
	struct usher_arena *arena;
	struct usher_matcher **regexes; /* to free */
	size_t nregexes, capregexes;
};

/* Parses query. On success *out is a new expression (free it with
 * usher_promql_expr_free). On failure *out is NULL, the return is
 * USHER_ERR_INVALID and err holds Prometheus' wording with the position,
 * e.g. "1:8: parse error: unexpected end of input". */
enum usher_err usher_promql_parse(const char *query, struct usher_promql_expr **out,
				  struct usher_error *err);
/* Accepts NULL. */
void usher_promql_expr_free(struct usher_promql_expr *e);

/* The longest duration (and the largest |@ time|) a query may hold: 292
 * years, Prometheus' int64-nanosecond limit. Keeps time arithmetic far
 * from overflow. */
#define USHER_PQ_MAX_DURATION_MS (292LL * 365 * 86400 * 1000)

/* Parses a PromQL duration ("5m", "1h30m", "500ms") into milliseconds;
 * the same syntax the query language uses. Longer than
 * USHER_PQ_MAX_DURATION_MS is USHER_ERR_INVALID. */
enum usher_err usher_promql_parse_duration(const char *s, size_t len, int64_t *ms);

#endif
