/* A runner for Prometheus' PromQL test files (promqltest's .test format):
 * load / clear / eval instant / eval range, expect fail|ordered|string|
 * range vector, eval_fail / eval_ordered, the series notation
 * (0+10x100, _, _xN, stale, Inf, NaN). Each file runs against a fresh
 * in-memory store and a default engine. */
#ifndef USHER_PROMQL_PROMQLTEST_H
#define USHER_PROMQL_PROMQLTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/arena.h"
#include "core/err.h"
#include "tsdb/labels.h"

/* Evals expected to fail: "file:line reason" lines (file is the test
 * file's base name; # comments and blank lines allowed). */
struct usher_promqltest_known;

/* Loads a known-failures list. Errors: USHER_ERR_IO (unreadable),
 * USHER_ERR_INVALID (a line without "file:line"), message in err. */
enum usher_err usher_promqltest_known_load(const char *path, struct usher_promqltest_known **out,
					   struct usher_error *err);
void usher_promqltest_known_free(struct usher_promqltest_known *k);

struct usher_promqltest_stats {
	size_t passed;       /* evals that passed, listed or not */
	size_t failed;       /* unlisted evals that failed, listed evals that passed,
			      * and commands that could not be run */
	size_t known_failed; /* listed evals that failed as expected */
};

/* Runs every command of the file at path, adding to *st. With verbose,
 * each failure is written to out as "file:line: what: expected …, got …"
 * (a listed eval that passes is always reported). known may be NULL.
 * Returns USHER_ERR_IO when the file cannot be read (nothing counted). */
enum usher_err usher_promqltest_run_file(const char *path,
					 const struct usher_promqltest_known *known, bool verbose,
					 FILE *out, struct usher_promqltest_stats *st,
					 struct usher_error *err);

/* Runs the test text held in buf (name is used in messages and for the
 * known-failures lookup). */
enum usher_err usher_promqltest_run_buf(const char *name, const char *buf,
					const struct usher_promqltest_known *known, bool verbose,
					FILE *out, struct usher_promqltest_stats *st);

/* One value of the series notation: a sample, or a gap (`_`). */
struct usher_promqltest_value {
	double v; /* the staleness marker for `stale` */
	bool omitted;
};

/* Parses one line of the series notation, `name{label="value", …} values`
 * (0+10x100, 1-1x5, _, _x3, stale, Inf, NaN), as `load` blocks and
 * promtool's input_series use it, into labels and values allocated in a.
 * Returns false with a static reason in *why. */
bool usher_promqltest_parse_series(struct usher_arena *a, const char *line,
				   struct usher_labels *labels,
				   struct usher_promqltest_value **values, size_t *n,
				   const char **why);

#endif
