/* Custom SQL metrics of the postgres probe (`queries:`): options and checks,
 * result rows to samples, the min_interval cache and error counters. No
 * libpq here: the probe hands over column names and text cells. */
#ifndef USHER_PROBES_PG_QUERIES_H
#define USHER_PROBES_PG_QUERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/options.h"
#include "metrics/registry.h"

/* The most label columns a query may have. */
#define USHER_PGQ_MAX_LABELS 16

enum usher_pgq_type {
	USHER_PGQ_GAUGE = 0,
	USHER_PGQ_COUNTER,
};

/* One entry of a query's `values`: a result column that becomes a metric
 * named <query name>_<name, else column>. A counter is exposed with
 * "_total" appended, unless the name already ends with it. */
struct usher_pgq_value {
	const char *column;
	const char *name; /* NULL: the column's name */
	enum usher_pgq_type type;
	const char *help; /* NULL: a help naming the query and column */
	/* filled by usher_pgq_check */
	const char *family;   /* the family name (for a counter, without _total) */
	const char *exposed;  /* the series name as exposed */
	const char *help_txt; /* help, defaulted */
};

/* One entry of `queries:`. Lives in the config's arena. */
struct usher_pgq_conf {
	const char *name;
	const char *sql;
	struct usher_strlist labels; /* result columns that become labels */
	struct usher_list values;    /* of struct usher_pgq_value */
	int64_t timeout_ms;          /* 0: bounded only by the probe's run */
	int64_t min_interval_ms;     /* reuse the last result for this long */
	int64_t max_series;          /* more samples than this: the result is dropped */
};

/* The option table of struct usher_pgq_conf (USHER_OPT_LIST's sub). */
extern const struct usher_option usher_pgq_options[];

/* Checks the queries of one probe (names, label and value columns, metric
 * names, timeouts against the probe's timeout) once the table has filled
 * them, and fills each value's derived names. list is the YAML node of the
 * `queries` key (NULL when absent), for positions. reserved holds family
 * names that built-in metrics use (NULL-terminated). Adds a diagnostic for
 * every problem and returns USHER_ERR_INVALID if there was any. */
enum usher_err usher_pgq_check(struct usher_cfgctx *ctx, struct usher_list *queries,
			       const struct usher_ynode *list, const struct usher_probe_conf *pc,
			       const char *const *reserved);

/* Why a run of a query failed: the reason label of
 * usher_sql_query_errors_total. */
enum usher_pgq_reason {
	USHER_PGQ_ERR_QUERY,          /* the server refused or failed the SQL */
	USHER_PGQ_ERR_TIMEOUT,        /* the query's timeout or the run's budget ran out */
	USHER_PGQ_ERR_MAX_SERIES,     /* more samples than max_series */
	USHER_PGQ_ERR_MISSING_COLUMN, /* a configured column is not in the result */
	USHER_PGQ_ERR_NON_NUMERIC,    /* a value cell that is not a number (the cell is skipped) */
	USHER_PGQ_ERR_DUPLICATE,      /* two rows with the same labels */
	USHER_PGQ_NREASONS,
};

/* The reason's label value ("query", "timeout", ...). */
const char *usher_pgq_reason_name(enum usher_pgq_reason r);

/* The run-time state of one query: its last result and its counters. Used
 * by one run at a time (the scheduler never overlaps runs of a probe). */
struct usher_pgq_state;

/* q is borrowed and must outlive the state. */
struct usher_pgq_state *usher_pgq_state_new(const struct usher_pgq_conf *q);
/* Frees st and its last result. Accepts NULL. */
void usher_pgq_state_free(struct usher_pgq_state *st);
/* The query st runs (as given to usher_pgq_state_new). */
const struct usher_pgq_conf *usher_pgq_conf_of(const struct usher_pgq_state *st);

/* Whether the query should run now (now_ms on the monotonic clock): true
 * on its first run and once min_interval has passed since the last one;
 * otherwise the last result is emitted again. */
bool usher_pgq_due(const struct usher_pgq_state *st, int64_t now_ms);

/* A new result: forgets the previous one. */
void usher_pgq_begin(struct usher_pgq_state *st, int64_t now_ms);
/* The result's columns (n names, any order); bool_col[i] says column i is
 * a boolean (t/f read as 1/0); bool_col may be NULL. A configured column
 * that is missing fails the result (USHER_ERR_NOTFOUND). May be called
 * again with the same columns (a row-by-row result repeats them). */
enum usher_err usher_pgq_columns(struct usher_pgq_state *st, size_t n, const char *const *names,
				 const bool *bool_col);
/* One row: cells[i] is column i's text, NULL for SQL NULL. A NULL value is
 * skipped; a non-numeric one is skipped and counted (once per result).
 * Returns USHER_ERR_TOOBIG once the result exceeds max_series (the result
 * has failed: stop reading it), USHER_ERR_INVALID after a failure. */
enum usher_err usher_pgq_row(struct usher_pgq_state *st, const char *const *cells);
/* Fails the result for reason (the first failure of a result counts);
 * detail (may be NULL) is kept for the log. */
void usher_pgq_fail(struct usher_pgq_state *st, enum usher_pgq_reason reason, const char *detail);
/* Ends the result: checks for rows with the same labels. duration_s is how
 * long the query took. Returns true when the result is good. */
bool usher_pgq_end(struct usher_pgq_state *st, double duration_s);
/* The detail of the last failure ("" when none), and whether the last
 * result failed. */
const char *usher_pgq_last_error(const struct usher_pgq_state *st);
bool usher_pgq_failed(const struct usher_pgq_state *st);

/* Adds the last good result's samples (none after a failure) to set. */
void usher_pgq_emit(const struct usher_pgq_state *st, struct usher_sample_set *set);
/* Adds usher_sql_query_errors_total (every reason, zeros included) and
 * usher_sql_query_duration_seconds of the query to set. */
void usher_pgq_emit_stats(const struct usher_pgq_state *st, struct usher_sample_set *set);

/* Parses a cell as a sample value: an integer, a decimal or float (with
 * NaN, Infinity), or t/f when is_bool. False for anything else. */
bool usher_pgq_parse_value(const char *cell, bool is_bool, double *out);

#endif
