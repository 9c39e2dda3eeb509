/* Custom SQL metrics: option tables and checks of a query, result rows to
 * samples, the per-query cache and error counters. No libpq here. */
#include "probes/pg_queries.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"

/* ---- options ------------------------------------------------------------ */

static enum usher_err parse_type(struct usher_cfgctx *ctx, const struct usher_ynode *n, void *field)
{
	enum usher_pgq_type *t = field;

	if (n->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, n, "type: expected gauge or counter, got a %s",
				       usher_ynode_kind_name(n->kind));
	if (strcmp(n->value, "gauge") == 0)
		*t = USHER_PGQ_GAUGE;
	else if (strcmp(n->value, "counter") == 0)
		*t = USHER_PGQ_COUNTER;
	else
		return usher_cfg_error(ctx, n, "type: unknown type \"%s\": use gauge or counter",
				       n->value);
	return USHER_OK;
}

#define V_OFF(f) offsetof(struct usher_pgq_value, f)
static const struct usher_option value_options[] = {
    {.key = "column",
     .type = USHER_OPT_STR,
     .offset = V_OFF(column),
     .flags = USHER_OPT_REQUIRED,
     .help = "the result column holding the value"},
    {.key = "name",
     .type = USHER_OPT_STR,
     .offset = V_OFF(name),
     .help = "the metric is <query name>_<name>; default: the column's name"},
    {.key = "type",
     .type = USHER_OPT_CUSTOM,
     .offset = V_OFF(type),
     .parse = parse_type,
     .help = "gauge (default) or counter (exposed with _total)"},
    {.key = "help", .type = USHER_OPT_STR, .offset = V_OFF(help), .help = "the metric's HELP text"},
    USHER_OPT_END,
};

#define Q_OFF(f) offsetof(struct usher_pgq_conf, f)
const struct usher_option usher_pgq_options[] = {
    {.key = "name",
     .type = USHER_OPT_STR,
     .offset = Q_OFF(name),
     .flags = USHER_OPT_REQUIRED,
     .help = "prefix of the query's metric names, and its query label"},
    {.key = "sql",
     .type = USHER_OPT_STR,
     .offset = Q_OFF(sql),
     .flags = USHER_OPT_REQUIRED,
     .help = "one SQL statement (run read-only)"},
    {.key = "labels",
     .type = USHER_OPT_STRLIST,
     .offset = Q_OFF(labels),
     .help = "result columns that become labels of every value"},
    {.key = "values",
     .type = USHER_OPT_LIST,
     .offset = Q_OFF(values),
     .flags = USHER_OPT_REQUIRED,
     .sub = value_options,
     .sub_size = sizeof(struct usher_pgq_value),
     .help = "result columns that become metrics: {column, name, type, help}"},
    {.key = "timeout",
     .type = USHER_OPT_DURATION,
     .offset = Q_OFF(timeout_ms),
     .help = "cancel the query after this long (at most the probe's timeout)"},
    {.key = "min_interval",
     .type = USHER_OPT_DURATION,
     .offset = Q_OFF(min_interval_ms),
     .def = "0s",
     .help = "run at most this often, exposing the last result in between"},
    {.key = "max_series",
     .type = USHER_OPT_INT,
     .offset = Q_OFF(max_series),
     .def = "1000",
     .flags = USHER_OPT_POSITIVE,
     .help = "a result with more samples than this is dropped and counted as an error"},
    USHER_OPT_END,
};

/* ---- checks ------------------------------------------------------------- */

static const struct usher_ynode *at(const struct usher_ynode *map, const char *key)
{
	const struct usher_ynode *n = usher_ynode_get(map, key);

	return n ? n : map;
}

static const struct usher_ynode *item(const struct usher_ynode *seq, size_t i,
				      const struct usher_ynode *fallback)
{
	if (seq && seq->kind == USHER_Y_SEQ && i < seq->n)
		return seq->items[i];
	return fallback;
}

static bool all_space(const char *s)
{
	for (; *s; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

/* A name made only of metric-name characters, not starting with a digit. */
static bool name_part_valid(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_' || *s == ':'))
			return false;
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool in_list(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

static enum usher_err check_labels(struct usher_cfgctx *ctx, struct usher_pgq_conf *q,
				   const struct usher_ynode *qn, const struct usher_probe_conf *pc)
{
	const struct usher_ynode *ln = usher_ynode_get(qn, "labels");
	enum usher_err rc = USHER_OK;
	size_t i, j;

	if (q->labels.n > USHER_PGQ_MAX_LABELS)
		return usher_cfg_error(ctx, at(qn, "labels"), "query %s: more than %d labels",
				       q->name, USHER_PGQ_MAX_LABELS);
	for (i = 0; i < q->labels.n; i++) {
		const char *l = q->labels.v[i];
		const struct usher_ynode *n = item(ln, i, at(qn, "labels"));

		if (!usher_label_name_valid(l) || strncmp(l, "__", 2) == 0) {
			rc = usher_cfg_error(
			    ctx, n,
			    "query %s: label column \"%s\" is not a valid label name "
			    "(letters, digits and underscores, not starting with a "
			    "digit or \"__\"): rename it in the SQL with AS",
			    q->name, l);
			continue;
		}
		if (strcmp(l, "job") == 0 || strcmp(l, "instance") == 0 ||
		    usher_strmap_get(&pc->labels, l)) {
			rc = usher_cfg_error(
			    ctx, n,
			    "query %s: label \"%s\" is already a label of the probe: "
			    "rename the column with AS",
			    q->name, l);
			continue;
		}
		for (j = 0; j < i; j++)
			if (strcmp(q->labels.v[j], l) == 0)
				break;
		if (j < i)
			rc = usher_cfg_error(ctx, n, "query %s: label \"%s\" is listed twice",
					     q->name, l);
	}
	return rc;
}

/* The names of the values of queries[0..qi] so far, to find clashes. */
struct seen {
	const char **names;
	size_t n, cap;
};

static void seen_add(struct usher_arena *a, struct seen *s, const char *name)
{
	if (s->n == s->cap) {
		const char **v = usher_arena_alloc(a, (s->cap ? 2 * s->cap : 16) * sizeof(*v));

		if (s->n)
			memcpy(v, s->names, s->n * sizeof(*v));
		s->names = v;
		s->cap = s->cap ? 2 * s->cap : 16;
	}
	s->names[s->n++] = name;
}

static bool seen_has(const struct seen *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

static enum usher_err check_values(struct usher_cfgctx *ctx, struct usher_pgq_conf *q,
				   const struct usher_ynode *qn, struct seen *seen,
				   const char *const *reserved)
{
	const struct usher_ynode *vn = usher_ynode_get(qn, "values");
	struct usher_pgq_value *v = q->values.v;
	enum usher_err rc = USHER_OK;
	size_t i, j, k;

	if (!q->values.n)
		return usher_cfg_error(ctx, at(qn, "values"),
				       "query %s: values must name at least one column", q->name);
	for (i = 0; i < q->values.n; i++) {
		struct usher_pgq_value *val = &v[i];
		const struct usher_ynode *n = item(vn, i, at(qn, "values"));
		const char *part = val->name ? val->name : val->column;
		char *full;

		for (k = 0; k < q->labels.n; k++)
			if (strcmp(q->labels.v[k], val->column) == 0)
				break;
		if (k < q->labels.n) {
			rc = usher_cfg_error(ctx, at(n, "column"),
					     "query %s: column \"%s\" is both a label and a value",
					     q->name, val->column);
			continue;
		}
		for (j = 0; j < i; j++)
			if (strcmp(v[j].column, val->column) == 0)
				break;
		if (j < i) {
			rc = usher_cfg_error(ctx, at(n, "column"),
					     "query %s: column \"%s\" is listed twice in values",
					     q->name, val->column);
			continue;
		}
		if (!name_part_valid(part)) {
			rc = usher_cfg_error(ctx, at(n, val->name ? "name" : "column"),
					     val->name
						 ? "query %s: name \"%s\" may only have letters, "
						   "digits, '_' and ':'"
						 : "query %s: column \"%s\" does not make a metric "
						   "name: give the value a name",
					     q->name, part);
			continue;
		}
		full = usher_arena_printf(ctx->arena, "%s_%s", q->name, part);
		val->exposed = full;
		val->family = full;
		if (val->type == USHER_PGQ_COUNTER) {
			if (ends_with(full, "_total"))
				val->family =
				    usher_arena_strndup(ctx->arena, full, strlen(full) - 6);
			else
				val->exposed = usher_arena_printf(ctx->arena, "%s_total", full);
		}
		val->help_txt =
		    val->help
			? val->help
			: usher_arena_printf(ctx->arena, "Column %s of the custom SQL query %s",
					     val->column, q->name);
		if (!usher_metric_name_valid(val->family)) {
			rc = usher_cfg_error(ctx, n, "query %s: \"%s\" is not a valid metric name",
					     q->name, val->exposed);
			continue;
		}
		if (in_list(reserved, val->family) || in_list(reserved, val->exposed)) {
			rc = usher_cfg_error(ctx, n,
					     "query %s: metric %s is one the probe exposes itself: "
					     "pick another query name",
					     q->name, val->exposed);
			continue;
		}
		if (seen_has(seen, val->exposed)) {
			rc = usher_cfg_error(ctx, n,
					     "query %s: metric %s is made by another value of this "
					     "probe's queries",
					     q->name, val->exposed);
			continue;
		}
		seen_add(ctx->arena, seen, val->exposed);
	}
	return rc;
}

enum usher_err usher_pgq_check(struct usher_cfgctx *ctx, struct usher_list *queries,
			       const struct usher_ynode *list, const struct usher_probe_conf *pc,
			       const char *const *reserved)
{
	struct usher_pgq_conf *qs = queries->v;
	enum usher_err rc = USHER_OK;
	struct seen seen = {0};
	size_t i, j;

	for (i = 0; i < queries->n; i++) {
		struct usher_pgq_conf *q = &qs[i];
		const struct usher_ynode *qn = item(list, i, list);

		if (!name_part_valid(q->name) || isdigit((unsigned char)q->name[0])) {
			rc = usher_cfg_error(
			    ctx, at(qn, "name"),
			    "query name \"%s\" must be a metric name prefix: letters, "
			    "digits, '_' and ':', not starting with a digit",
			    q->name);
			continue;
		}
		for (j = 0; j < i; j++)
			if (strcmp(qs[j].name, q->name) == 0)
				break;
		if (j < i) {
			rc = usher_cfg_error(ctx, at(qn, "name"), "duplicate query name \"%s\"",
					     q->name);
			continue;
		}
		if (all_space(q->sql))
			rc = usher_cfg_error(ctx, at(qn, "sql"), "query %s: sql is empty", q->name);
		if (q->timeout_ms < 0 || (usher_ynode_get(qn, "timeout") && q->timeout_ms == 0))
			rc = usher_cfg_error(ctx, at(qn, "timeout"),
					     "query %s: timeout must be longer than 0s", q->name);
		if (q->timeout_ms > pc->timeout_ms) {
			char t[32], p[32];

			usher_duration_format(q->timeout_ms, t, sizeof(t));
			usher_duration_format(pc->timeout_ms, p, sizeof(p));
			rc = usher_cfg_error(
			    ctx, at(qn, "timeout"),
			    "query %s: timeout %s is longer than the probe's timeout "
			    "%s, which bounds every run",
			    q->name, t, p);
		}
		if (check_labels(ctx, q, qn, pc))
			rc = USHER_ERR_INVALID;
		if (check_values(ctx, q, qn, &seen, reserved))
			rc = USHER_ERR_INVALID;
	}
	return rc;
}

/* ---- parsing cells ------------------------------------------------------ */

bool usher_pgq_parse_value(const char *cell, bool is_bool, double *out)
{
	char *end;
	double d;

	if (is_bool) {
		if (strcmp(cell, "t") == 0 || strcmp(cell, "true") == 0) {
			*out = 1;
			return true;
		}
		if (strcmp(cell, "f") == 0 || strcmp(cell, "false") == 0) {
			*out = 0;
			return true;
		}
		return false;
	}
	if (strcmp(cell, "NaN") == 0) {
		*out = NAN;
		return true;
	}
	if (strcmp(cell, "Infinity") == 0 || strcmp(cell, "-Infinity") == 0) {
		*out = cell[0] == '-' ? -INFINITY : INFINITY;
		return true;
	}
	/* what PostgreSQL prints for numbers; strtod alone would also take
	 * blanks, hex floats, "inf" and "nan(...)" */
	if (!*cell || cell[strspn(cell, "0123456789+-.eE")])
		return false;
	errno = 0;
	d = strtod(cell, &end);
	if (*end || end == cell)
		return false;
	/* ERANGE on overflow gives HUGE_VAL, on underflow a tiny number: both
	 * are the value as near as a double gets */
	*out = d;
	return true;
}

/* ---- run-time state ----------------------------------------------------- */

struct row {
	const char **labels; /* nlabels values, "" for NULL */
	double *vals;        /* nvalues */
	unsigned char *have; /* nvalues: 0 for a NULL or skipped cell */
};

struct usher_pgq_state {
	const struct usher_pgq_conf *q;
	size_t nlabels, nvalues;
	int *label_col; /* result column of each label, -1 before columns */
	int *value_col;
	bool *value_bool;
	size_t ncols; /* columns of the current result, 0 before columns */

	struct usher_arena *arena; /* the current result's rows */
	struct row *rows;
	size_t nrows, caprows;
	size_t nseries;

	bool ran;        /* ever begun */
	int64_t last_ms; /* when the last result began */
	bool failed;     /* the current / last result failed */
	bool nonnumeric; /* a non-numeric cell was counted for this result */
	double duration_s;
	char detail[USHER_ERRMSG_MAX];
	uint64_t errors[USHER_PGQ_NREASONS];
};

static const char *const reason_names[USHER_PGQ_NREASONS] = {
    [USHER_PGQ_ERR_QUERY] = "query",
    [USHER_PGQ_ERR_TIMEOUT] = "timeout",
    [USHER_PGQ_ERR_MAX_SERIES] = "max_series",
    [USHER_PGQ_ERR_MISSING_COLUMN] = "missing_column",
    [USHER_PGQ_ERR_NON_NUMERIC] = "non_numeric",
    [USHER_PGQ_ERR_DUPLICATE] = "duplicate_series",
};

const char *usher_pgq_reason_name(enum usher_pgq_reason r)
{
	return r < USHER_PGQ_NREASONS ? reason_names[r] : "unknown";
}

struct usher_pgq_state *usher_pgq_state_new(const struct usher_pgq_conf *q)
{
	struct usher_pgq_state *st = usher_calloc(1, sizeof(*st));

	st->q = q;
	st->nlabels = q->labels.n;
	st->nvalues = q->values.n;
	st->label_col = usher_calloc(st->nlabels + 1, sizeof(*st->label_col));
	st->value_col = usher_calloc(st->nvalues + 1, sizeof(*st->value_col));
	st->value_bool = usher_calloc(st->nvalues + 1, sizeof(*st->value_bool));
	st->arena = usher_arena_new();
	return st;
}

void usher_pgq_state_free(struct usher_pgq_state *st)
{
	if (!st)
		return;
	usher_arena_free(st->arena);
	free(st->rows);
	free(st->label_col);
	free(st->value_col);
	free(st->value_bool);
	free(st);
}

const struct usher_pgq_conf *usher_pgq_conf_of(const struct usher_pgq_state *st)
{
	return st->q;
}

bool usher_pgq_due(const struct usher_pgq_state *st, int64_t now_ms)
{
	return !st->ran || now_ms - st->last_ms >= st->q->min_interval_ms;
}

void usher_pgq_begin(struct usher_pgq_state *st, int64_t now_ms)
{
	usher_arena_reset(st->arena);
	st->nrows = 0;
	st->nseries = 0;
	st->ncols = 0;
	st->ran = true;
	st->last_ms = now_ms;
	st->failed = false;
	st->nonnumeric = false;
	st->duration_s = 0;
	st->detail[0] = '\0';
}

void usher_pgq_fail(struct usher_pgq_state *st, enum usher_pgq_reason reason, const char *detail)
{
	if (st->failed)
		return;
	st->failed = true;
	st->errors[reason]++;
	snprintf(st->detail, sizeof(st->detail), "%s", detail ? detail : reason_names[reason]);
}

/* The index of name among the n columns, or -1. */
static int find_col(size_t n, const char *const *names, const char *name)
{
	size_t c;

	for (c = 0; c < n; c++)
		if (strcmp(names[c], name) == 0)
			return (int)c;
	return -1;
}

enum usher_err usher_pgq_columns(struct usher_pgq_state *st, size_t n, const char *const *names,
				 const bool *bool_col)
{
	const struct usher_pgq_value *v = st->q->values.v;
	const char *missing = NULL;
	char msg[USHER_ERRMSG_MAX];
	size_t i;

	if (st->failed)
		return USHER_ERR_INVALID;
	if (st->ncols == n && n)
		return USHER_OK; /* the same result, one more row */
	for (i = 0; i < st->nlabels && !missing; i++) {
		st->label_col[i] = find_col(n, names, st->q->labels.v[i]);
		if (st->label_col[i] < 0)
			missing = st->q->labels.v[i];
	}
	for (i = 0; i < st->nvalues && !missing; i++) {
		st->value_col[i] = find_col(n, names, v[i].column);
		if (st->value_col[i] < 0)
			missing = v[i].column;
		else
			st->value_bool[i] = bool_col && bool_col[st->value_col[i]];
	}
	if (missing) {
		snprintf(msg, sizeof(msg),
			 "the result has no column \"%s\" (names are matched exactly; unquoted "
			 "SQL names are lower case)",
			 missing);
		usher_pgq_fail(st, USHER_PGQ_ERR_MISSING_COLUMN, msg);
		return USHER_ERR_NOTFOUND;
	}
	st->ncols = n;
	return USHER_OK;
}

enum usher_err usher_pgq_row(struct usher_pgq_state *st, const char *const *cells)
{
	struct row *r;
	size_t i, added = 0;

	if (st->failed || !st->ncols)
		return USHER_ERR_INVALID;
	if (st->nrows == st->caprows) {
		st->caprows = st->caprows ? 2 * st->caprows : 16;
		st->rows = usher_realloc(st->rows, st->caprows * sizeof(*st->rows));
	}
	r = &st->rows[st->nrows];
	r->labels = usher_arena_alloc(st->arena, (st->nlabels + 1) * sizeof(*r->labels));
	r->vals = usher_arena_alloc(st->arena, (st->nvalues + 1) * sizeof(*r->vals));
	r->have = usher_arena_zalloc(st->arena, st->nvalues + 1);
	for (i = 0; i < st->nlabels; i++) {
		const char *c = cells[st->label_col[i]];

		r->labels[i] = c ? usher_arena_strdup(st->arena, c) : "";
	}
	for (i = 0; i < st->nvalues; i++) {
		const char *c = cells[st->value_col[i]];

		if (!c)
			continue; /* SQL NULL: no sample */
		if (!usher_pgq_parse_value(c, st->value_bool[i], &r->vals[i])) {
			if (!st->nonnumeric) {
				/* counted once per result; the other cells stay */
				st->nonnumeric = true;
				st->errors[USHER_PGQ_ERR_NON_NUMERIC]++;
				if (!st->detail[0])
					snprintf(
					    st->detail, sizeof(st->detail),
					    "column %s has a value that is not a number",
					    ((const struct usher_pgq_value *)st->q->values.v)[i]
						.column);
			}
			continue;
		}
		r->have[i] = 1;
		added++;
	}
	st->nrows++;
	st->nseries += added;
	if (st->nseries > (size_t)st->q->max_series) {
		char msg[128];

		snprintf(msg, sizeof(msg), "more than max_series (%lld) samples",
			 (long long)st->q->max_series);
		usher_pgq_fail(st, USHER_PGQ_ERR_MAX_SERIES, msg);
		return USHER_ERR_TOOBIG;
	}
	return USHER_OK;
}

/* A row and its number of labels, for qsort's comparison. */
struct sortrow {
	const struct row *r;
	size_t n;
};

static int cmp_rows(const void *a, const void *b)
{
	const struct sortrow *x = a, *y = b;
	size_t i;

	for (i = 0; i < x->n; i++) {
		int c = strcmp(x->r->labels[i], y->r->labels[i]);

		if (c)
			return c;
	}
	return 0;
}

bool usher_pgq_end(struct usher_pgq_state *st, double duration_s)
{
	struct sortrow *v;
	size_t i;

	st->duration_s = duration_s;
	if (st->failed)
		return false;
	if (st->nrows < 2)
		return true;
	v = usher_arena_alloc(st->arena, st->nrows * sizeof(*v));
	for (i = 0; i < st->nrows; i++) {
		v[i].r = &st->rows[i];
		v[i].n = st->nlabels;
	}
	qsort(v, st->nrows, sizeof(*v), cmp_rows);
	for (i = 1; i < st->nrows; i++) {
		if (cmp_rows(&v[i - 1], &v[i]) == 0) {
			char msg[USHER_ERRMSG_MAX];

			snprintf(
			    msg, sizeof(msg),
			    "two rows have the same labels: add a label column that tells them "
			    "apart, or aggregate in the SQL");
			usher_pgq_fail(st, USHER_PGQ_ERR_DUPLICATE, msg);
			return false;
		}
	}
	return true;
}

const char *usher_pgq_last_error(const struct usher_pgq_state *st)
{
	return st->detail;
}

bool usher_pgq_failed(const struct usher_pgq_state *st)
{
	return st->failed;
}

/* ---- samples ------------------------------------------------------------ */

static const struct usher_metric_desc desc_errors = {
    "usher_sql_query_errors", USHER_METRIC_COUNTER,
    "Failed runs of custom SQL queries of the postgres probe, by query and reason"};
static const struct usher_metric_desc desc_duration = {
    "usher_sql_query_duration_seconds", USHER_METRIC_GAUGE,
    "How long the last run of a custom SQL query took"};

void usher_pgq_emit(const struct usher_pgq_state *st, struct usher_sample_set *set)
{
	const struct usher_pgq_value *v = st->q->values.v;
	const char *pairs[2 * USHER_PGQ_MAX_LABELS + 1];
	size_t i, j;

	if (!st->ran || st->failed || !st->nrows)
		return;
	for (j = 0; j < st->nvalues; j++) {
		const struct usher_metric_desc *d = usher_sample_set_desc(
		    set, v[j].family,
		    v[j].type == USHER_PGQ_COUNTER ? USHER_METRIC_COUNTER : USHER_METRIC_GAUGE,
		    v[j].help_txt);

		for (i = 0; i < st->nrows; i++) {
			const struct row *r = &st->rows[i];
			size_t k, n = 0;

			if (!r->have[j])
				continue;
			for (k = 0; k < st->nlabels; k++) {
				pairs[n++] = st->q->labels.v[k];
				pairs[n++] = r->labels[k];
			}
			pairs[n] = NULL;
			usher_sample_addv(set, d, r->vals[j], pairs);
		}
	}
}

void usher_pgq_emit_stats(const struct usher_pgq_state *st, struct usher_sample_set *set)
{
	size_t r;

	for (r = 0; r < USHER_PGQ_NREASONS; r++)
		usher_sample_add(set, &desc_errors, (double)st->errors[r], "query", st->q->name,
				 "reason", reason_names[r], NULL);
	if (st->ran)
		usher_sample_add(set, &desc_duration, st->duration_s, "query", st->q->name, NULL);
}
