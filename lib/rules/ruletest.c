/* promtool's rule unit tests: the test file read with config/yaml.h, input
 * series appended as evaluation reaches their time (promtool's lazy
 * loader), every group evaluated each evaluation_interval, firing alerts
 * and query results compared, failures written in promtool's layout. */
#include "rules/ruletest.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <glob.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/yaml.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "promql/engine.h"
#include "promql/promqltest.h"
#include "rules/group.h"
#include "rules/rulefile.h"
#include "tsdb/tsdb.h"

#define MAX_FILE (64u << 20)
#define EPSILON  1e-6

/* The failures of one file, each a (multi-line) message. */
struct errs {
	char **v;
	size_t n, cap;
};

static void add_err(struct errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_err(struct errs *e, const char *fmt, ...)
{
	struct usher_buf b;
	va_list ap;

	usher_buf_init(&b, 1 << 22);
	va_start(ap, fmt);
	(void)usher_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 8;
		e->v = usher_realloc(e->v, e->cap * sizeof(*e->v));
	}
	e->v[e->n++] = usher_strdup(usher_buf_str(&b));
	usher_buf_free(&b);
}

static void add_diags(struct errs *e, const struct usher_diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		if (d->v[i].line)
			add_err(e, "%s:%d:%d: %s", d->v[i].file, d->v[i].line, d->v[i].col,
				d->v[i].msg);
		else
			add_err(e, "%s: %s", d->v[i].file, d->v[i].msg);
	}
}

/* Prometheus' almost.Equal. */
static bool almost_equal(double a, double b)
{
	double diff;

	if (isnan(a) && isnan(b))
		return true;
	if (a == b)
		return true;
	diff = fabs(a - b);
	if (a == 0 || b == 0 || fabs(a) + fabs(b) < DBL_MIN)
		return diff < EPSILON * DBL_MIN;
	return diff / fmin(fabs(a) + fabs(b), DBL_MAX) < EPSILON;
}

/* Go's strconv.FormatFloat(v, 'E', -1, 64). */
static void format_e(double v, char *out, size_t len)
{
	char buf[48];
	int p;

	if (isnan(v)) {
		snprintf(out, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (p = 0; p < 17; p++) {
		snprintf(buf, sizeof(buf), "%.*E", p, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	snprintf(out, len, "%s", buf);
}

/* Go's time.Duration.String() for whole milliseconds. */
static void go_duration(int64_t ms, char *out, size_t len)
{
	int64_t h, m, s, frac;
	char sec[32];

	if (ms == 0) {
		snprintf(out, len, "0s");
		return;
	}
	if (ms < 0) {
		/* never reached: evaluation starts at 0 */
		snprintf(out, len, "-%lldms", (long long)-ms);
		return;
	}
	if (ms < 1000) {
		snprintf(out, len, "%lldms", (long long)ms);
		return;
	}
	h = ms / 3600000;
	m = ms / 60000 % 60;
	s = ms / 1000 % 60;
	frac = ms % 1000;
	if (frac) {
		int k;

		snprintf(sec, sizeof(sec), "%lld.%03lld", (long long)s, (long long)frac);
		for (k = (int)strlen(sec) - 1; sec[k] == '0'; k--)
			sec[k] = '\0';
	} else
		snprintf(sec, sizeof(sec), "%lld", (long long)s);
	if (h)
		snprintf(out, len, "%lldh%lldm%ss", (long long)h, (long long)m, sec);
	else if (m)
		snprintf(out, len, "%lldm%ss", (long long)m, sec);
	else
		snprintf(out, len, "%ss", sec);
}

/* Go's %q of a string. */
static void go_quote(struct usher_buf *b, const char *s)
{
	(void)usher_buf_addc(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			(void)usher_buf_addf(b, "\\%c", c);
		else if (c == '\n')
			(void)usher_buf_addstr(b, "\\n");
		else if (c == '\t')
			(void)usher_buf_addstr(b, "\\t");
		else if (c < 0x20 || c == 0x7f)
			(void)usher_buf_addf(b, "\\x%02x", c);
		else
			(void)usher_buf_addc(b, (char)c);
	}
	(void)usher_buf_addc(b, '"');
}

/* --- the test file --- */

struct in_series {
	struct usher_labels labels;
	struct usher_promqltest_value *v;
	size_t n, next; /* next: the first value not appended yet */
};

struct exp_alert {
	struct usher_labels labels, annotations; /* sorted; empty values kept */
};

struct alert_test {
	int64_t eval_time;
	const char *alertname;
	struct exp_alert *exp;
	size_t nexp;
};

struct exp_sample {
	const char *labels_text;
	double value;
	int line, col;
};

struct expr_test {
	const char *expr;
	int64_t eval_time;
	struct exp_sample *exp;
	size_t nexp;
};

struct test_group {
	int64_t interval;
	const struct usher_ynode *input;
	struct alert_test *alerts;
	size_t nalerts;
	struct expr_test *exprs;
	size_t nexprs;
	struct usher_labels external_labels;
	const char *external_url;
	const char *name;
};

struct file {
	const char *path;
	const char **rule_files;
	size_t nrule_files;
	int64_t eval_interval;
	const char **order;
	size_t norder;
	struct test_group *tests;
	size_t ntests;
};

struct reader {
	const char *path;
	struct usher_arena *a;
	struct usher_diags *d;
	bool failed;
};

static void rerr(struct reader *r, const struct usher_ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rerr(struct reader *r, const struct usher_ynode *n, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	usher_diags_add(r->d, r->path, n->line, n->col, "%s", msg);
	r->failed = true;
}

static bool keys_ok(struct reader *r, const struct usher_ynode *n, const char *const *keys,
		    const char *where)
{
	size_t i, k;
	bool ok = true;

	if (n->kind != USHER_Y_MAP) {
		rerr(r, n, "%s must be a mapping, not a %s", where, usher_ynode_kind_name(n->kind));
		return false;
	}
	for (i = 0; i < n->n; i++) {
		for (k = 0; keys[k]; k++)
			if (strcmp(keys[k], n->pairs[i].key->value) == 0)
				break;
		if (!keys[k]) {
			rerr(r, n->pairs[i].key, "unknown key \"%s\" in %s", n->pairs[i].key->value,
			     where);
			ok = false;
		}
	}
	return ok;
}

static const char *str(struct reader *r, const struct usher_ynode *n, const char *what)
{
	if (!n || usher_ynode_is_null(n))
		return "";
	if (n->kind != USHER_Y_SCALAR) {
		rerr(r, n, "%s must be a string, not a %s", what, usher_ynode_kind_name(n->kind));
		return "";
	}
	return n->value;
}

static int64_t dur(struct reader *r, const struct usher_ynode *n, const char *what, int64_t def)
{
	const char *s = str(r, n, what);
	int64_t ms;

	if (!*s)
		return def;
	if (usher_duration_parse(s, &ms)) {
		rerr(r, n, "%s: not a valid duration string: \"%s\"", what, s);
		return def;
	}
	return ms;
}

static const struct usher_ynode *seq(struct reader *r, const struct usher_ynode *n,
				     const char *what)
{
	if (!n || usher_ynode_is_null(n))
		return NULL;
	if (n->kind != USHER_Y_SEQ) {
		rerr(r, n, "%s must be a sequence, not a %s", what, usher_ynode_kind_name(n->kind));
		return NULL;
	}
	return n;
}

static int cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct usher_label *)a)->name, ((const struct usher_label *)b)->name);
}

/* A name → value map, sorted, empty values kept (Go's labels.FromMap). */
static struct usher_labels str_map(struct reader *r, const struct usher_ynode *n, const char *what)
{
	struct usher_labels l = {0, NULL};
	struct usher_label *v;
	size_t i;

	if (!n || usher_ynode_is_null(n))
		return l;
	if (n->kind != USHER_Y_MAP) {
		rerr(r, n, "%s must be a mapping, not a %s", what, usher_ynode_kind_name(n->kind));
		return l;
	}
	v = usher_arena_alloc(r->a, (n->n ? n->n : 1) * sizeof(*v));
	for (i = 0; i < n->n; i++) {
		v[i].name = n->pairs[i].key->value;
		v[i].value = str(r, n->pairs[i].val, what);
	}
	qsort(v, n->n, sizeof(*v), cmp_label);
	l.n = n->n;
	l.v = v;
	return l;
}

static double float_val(struct reader *r, const struct usher_ynode *n)
{
	const char *s = str(r, n, "value");
	char *end;
	double v;

	if (!*s)
		return 0;
	if (strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0 || strcmp(s, ".NAN") == 0)
		return NAN;
	if (strcasecmp(s, ".inf") == 0 || strcasecmp(s, "+.inf") == 0)
		return INFINITY;
	if (strcasecmp(s, "-.inf") == 0)
		return -INFINITY;
	v = strtod(s, &end);
	if (end == s || *end || isalpha((unsigned char)s[strspn(s, "+-")]))
		rerr(r, n, "cannot read \"%s\" as a number", s);
	return v;
}

static void read_group(struct reader *r, const struct usher_ynode *n, int64_t eval_interval,
		       struct test_group *tg)
{
	static const char *const keys[] = {"interval",
					   "input_series",
					   "alert_rule_test",
					   "promql_expr_test",
					   "external_labels",
					   "external_url",
					   "name",
					   NULL};
	const struct usher_ynode *at, *pt;
	size_t i, j;

	memset(tg, 0, sizeof(*tg));
	if (!keys_ok(r, n, keys, "test group"))
		return;
	/* newer promtool defaults the series interval to evaluation_interval
	 * (Prometheus 2.42 used 0, piling every value on time 0) */
	tg->interval = dur(r, usher_ynode_get(n, "interval"), "interval", eval_interval);
	tg->input = seq(r, usher_ynode_get(n, "input_series"), "input_series");
	tg->external_labels = str_map(r, usher_ynode_get(n, "external_labels"), "external_labels");
	tg->external_url = str(r, usher_ynode_get(n, "external_url"), "external_url");
	tg->name = str(r, usher_ynode_get(n, "name"), "name");
	at = seq(r, usher_ynode_get(n, "alert_rule_test"), "alert_rule_test");
	if (at) {
		tg->alerts = usher_arena_zalloc(r->a, (at->n ? at->n : 1) * sizeof(*tg->alerts));
		for (i = 0; i < at->n; i++) {
			static const char *const akeys[] = {"eval_time", "alertname", "exp_alerts",
							    NULL};
			const struct usher_ynode *t = at->items[i], *ea;
			struct alert_test *a = &tg->alerts[tg->nalerts];

			if (!keys_ok(r, t, akeys, "alert_rule_test"))
				continue;
			a->eval_time = dur(r, usher_ynode_get(t, "eval_time"), "eval_time", 0);
			a->alertname = str(r, usher_ynode_get(t, "alertname"), "alertname");
			ea = seq(r, usher_ynode_get(t, "exp_alerts"), "exp_alerts");
			if (ea) {
				a->exp =
				    usher_arena_zalloc(r->a, (ea->n ? ea->n : 1) * sizeof(*a->exp));
				for (j = 0; j < ea->n; j++) {
					static const char *const ekeys[] = {
					    "exp_labels", "exp_annotations", NULL};

					if (!keys_ok(r, ea->items[j], ekeys, "exp_alerts"))
						continue;
					a->exp[a->nexp].labels =
					    str_map(r, usher_ynode_get(ea->items[j], "exp_labels"),
						    "exp_labels");
					a->exp[a->nexp].annotations = str_map(
					    r, usher_ynode_get(ea->items[j], "exp_annotations"),
					    "exp_annotations");
					a->nexp++;
				}
			}
			tg->nalerts++;
		}
	}
	pt = seq(r, usher_ynode_get(n, "promql_expr_test"), "promql_expr_test");
	if (pt) {
		tg->exprs = usher_arena_zalloc(r->a, (pt->n ? pt->n : 1) * sizeof(*tg->exprs));
		for (i = 0; i < pt->n; i++) {
			static const char *const pkeys[] = {"expr", "eval_time", "exp_samples",
							    NULL};
			const struct usher_ynode *t = pt->items[i], *es;
			struct expr_test *e = &tg->exprs[tg->nexprs];

			if (!keys_ok(r, t, pkeys, "promql_expr_test"))
				continue;
			e->expr = str(r, usher_ynode_get(t, "expr"), "expr");
			e->eval_time = dur(r, usher_ynode_get(t, "eval_time"), "eval_time", 0);
			es = seq(r, usher_ynode_get(t, "exp_samples"), "exp_samples");
			if (es) {
				e->exp =
				    usher_arena_zalloc(r->a, (es->n ? es->n : 1) * sizeof(*e->exp));
				for (j = 0; j < es->n; j++) {
					static const char *const skeys[] = {"labels", "value",
									    NULL};
					struct exp_sample *s = &e->exp[e->nexp];

					if (!keys_ok(r, es->items[j], skeys, "exp_samples"))
						continue;
					s->labels_text = str(
					    r, usher_ynode_get(es->items[j], "labels"), "labels");
					s->value =
					    float_val(r, usher_ynode_get(es->items[j], "value"));
					s->line = es->items[j]->line;
					s->col = es->items[j]->col;
					e->nexp++;
				}
			}
			tg->nexprs++;
		}
	}
}

static bool read_file_struct(struct reader *r, const struct usher_ynode *root, struct file *f)
{
	static const char *const keys[] = {"rule_files", "evaluation_interval", "group_eval_order",
					   "tests",      "fuzzy_compare",       NULL};
	const struct usher_ynode *rf, *go, *tests;
	size_t i;

	if (!keys_ok(r, root, keys, "test file"))
		return false;
	f->eval_interval =
	    dur(r, usher_ynode_get(root, "evaluation_interval"), "evaluation_interval", 60000);
	if (f->eval_interval <= 0)
		f->eval_interval = 60000;
	rf = seq(r, usher_ynode_get(root, "rule_files"), "rule_files");
	if (rf) {
		f->rule_files = usher_arena_alloc(r->a, (rf->n ? rf->n : 1) * sizeof(char *));
		for (i = 0; i < rf->n; i++)
			f->rule_files[f->nrule_files++] = str(r, rf->items[i], "rule_files");
	}
	go = seq(r, usher_ynode_get(root, "group_eval_order"), "group_eval_order");
	if (go) {
		f->order = usher_arena_alloc(r->a, (go->n ? go->n : 1) * sizeof(char *));
		for (i = 0; i < go->n; i++)
			f->order[f->norder++] = str(r, go->items[i], "group_eval_order");
	}
	tests = seq(r, usher_ynode_get(root, "tests"), "tests");
	if (tests) {
		f->tests = usher_arena_alloc(r->a, (tests->n ? tests->n : 1) * sizeof(*f->tests));
		for (i = 0; i < tests->n; i++)
			read_group(r, tests->items[i], f->eval_interval, &f->tests[f->ntests++]);
	}
	return !r->failed;
}

/* --- running one test group --- */

struct loaded_group {
	const struct usher_rule_group *def;
	struct usher_group *g;
	size_t order; /* the place in group_eval_order; 0 when not listed */
	size_t seq;   /* the place in the rule files */
};

static int cmp_loaded(const void *a, const void *b)
{
	const struct loaded_group *x = a, *y = b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct got_alert {
	struct usher_labels labels, annotations;
};

static int cmp_got(const void *a, const void *b)
{
	const struct got_alert *x = a, *y = b;
	int c = usher_labels_cmp(&x->labels, &y->labels);

	return c ? c : usher_labels_cmp(&x->annotations, &y->annotations);
}

static void alerts_string(struct usher_buf *b, const struct got_alert *v, size_t n)
{
	size_t i;

	if (!n) {
		(void)usher_buf_addstr(b, "[]");
		return;
	}
	(void)usher_buf_addstr(b, "[\n");
	for (i = 0; i < n; i++) {
		(void)usher_buf_addf(b, "%s            %zu:\n              Labels:", i ? ",\n" : "",
				     i);
		usher_labels_format(&v[i].labels, b);
		(void)usher_buf_addstr(b, "\n              Annotations:");
		usher_labels_format(&v[i].annotations, b);
	}
	(void)usher_buf_addstr(b, "\n            ]");
}

static bool labels_same(const struct usher_labels *a, const struct usher_labels *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i].name, b->v[i].name) || strcmp(a->v[i].value, b->v[i].value))
			return false;
	return true;
}

static void check_alerts(const struct test_group *tg, const struct alert_test *t,
			 struct loaded_group *groups, size_t ngroups, struct usher_arena *a,
			 struct errs *errs)
{
	struct got_alert *got = NULL, *exp;
	size_t ngot = 0, cap = 0, i, j, k;
	char when[64];
	bool same;

	for (i = 0; i < ngroups; i++) {
		const struct usher_rule_group *def = groups[i].def;

		for (j = 0; j < def->nrules; j++) {
			struct usher_rule_alert *al;
			size_t n;

			if (def->rules[j].type != USHER_RULE_ALERTING ||
			    strcmp(def->rules[j].name, t->alertname) != 0)
				continue;
			n = usher_group_alerts(groups[i].g, j, a, &al);
			for (k = 0; k < n; k++) {
				if (al[k].state != USHER_ALERT_FIRING)
					continue;
				if (ngot == cap) {
					struct got_alert *ng;

					cap = cap ? cap * 2 : 16;
					ng = usher_arena_alloc(a, cap * sizeof(*ng));
					if (ngot)
						memcpy(ng, got, ngot * sizeof(*ng));
					got = ng;
				}
				got[ngot].labels = al[k].labels;
				got[ngot].annotations = al[k].annotations;
				ngot++;
			}
		}
	}
	exp = usher_arena_alloc(a, (t->nexp ? t->nexp : 1) * sizeof(*exp));
	for (i = 0; i < t->nexp; i++) {
		struct usher_label *v = usher_arena_alloc(a, (t->exp[i].labels.n + 1) * sizeof(*v));
		size_t n = 0;

		/* the user leaves out alertname, which the rule adds */
		for (j = 0; j < t->exp[i].labels.n; j++)
			if (strcmp(t->exp[i].labels.v[j].name, "alertname") != 0)
				v[n++] = t->exp[i].labels.v[j];
		v[n].name = "alertname";
		v[n].value = t->alertname;
		n++;
		qsort(v, n, sizeof(*v), cmp_label);
		exp[i].labels.n = n;
		exp[i].labels.v = v;
		exp[i].annotations = t->exp[i].annotations;
	}
	if (ngot)
		qsort(got, ngot, sizeof(*got), cmp_got);
	qsort(exp, t->nexp, sizeof(*exp), cmp_got);
	same = ngot == t->nexp;
	for (i = 0; same && i < ngot; i++)
		same = labels_same(&got[i].labels, &exp[i].labels) &&
		       labels_same(&got[i].annotations, &exp[i].annotations);
	if (same)
		return;
	{
		struct usher_buf es, gs;

		usher_buf_init(&es, 1 << 22);
		usher_buf_init(&gs, 1 << 22);
		alerts_string(&es, exp, t->nexp);
		alerts_string(&gs, got, ngot);
		usher_duration_format(t->eval_time, when, sizeof(when));
		add_err(errs,
			"%s%s%s    alertname: %s, time: %s, \n        exp:%s, \n        got:%s",
			*tg->name ? "    name: " : "", tg->name, *tg->name ? ",\n" : "",
			t->alertname, when, usher_buf_str(&es), usher_buf_str(&gs));
		usher_buf_free(&es);
		usher_buf_free(&gs);
	}
}

struct psample {
	struct usher_labels l;
	double v;
};

static int cmp_psample(const void *a, const void *b)
{
	return usher_labels_cmp(&((const struct psample *)a)->l, &((const struct psample *)b)->l);
}

static void samples_string(struct usher_buf *b, const struct psample *v, size_t n)
{
	size_t i;
	char f[48];

	if (!n) {
		(void)usher_buf_addstr(b, "nil");
		return;
	}
	for (i = 0; i < n; i++) {
		if (i)
			(void)usher_buf_addstr(b, ", ");
		usher_labels_format(&v[i].l, b);
		format_e(v[i].v, f, sizeof(f));
		(void)usher_buf_addf(b, " %s", f);
	}
}

static void check_expr(const struct usher_promql_engine *eng, struct usher_tsdb *db,
		       const struct expr_test *t, struct usher_arena *a, struct errs *errs)
{
	struct usher_storage st = usher_tsdb_storage(db);
	struct usher_promql_result res = {0};
	struct psample *got = NULL, *exp;
	struct usher_error err;
	struct usher_buf q;
	size_t ngot = 0, i;
	char when[64];
	bool same, ok;

	usher_duration_format(t->eval_time, when, sizeof(when));
	usher_buf_init(&q, 1 << 20);
	go_quote(&q, t->expr);
	usher_error_clear(&err);
	ok = usher_promql_eval_instant(eng, &st, t->expr, t->eval_time, &res, &err) == USHER_OK;
	if (ok) {
		if (res.type == USHER_PQ_TYPE_SCALAR) {
			got = usher_arena_zalloc(a, sizeof(*got));
			got[0].v = res.scalar;
			ngot = 1;
		} else if (res.type == USHER_PQ_TYPE_VECTOR) {
			got = usher_arena_alloc(a, (res.n ? res.n : 1) * sizeof(*got));
			for (i = 0; i < res.n; i++) {
				usher_labels_copy(a, &res.vector[i].labels, &got[i].l);
				got[i].v = res.vector[i].v;
			}
			ngot = res.n;
		} else {
			usher_fail(&err, USHER_ERR_INVALID,
				   "rule result is not a vector or scalar");
			ok = false;
		}
		usher_promql_result_free(&res);
	}
	if (!ok) {
		add_err(errs, "    expr: %s, time: %s, err: %s", usher_buf_str(&q), when, err.msg);
		usher_buf_free(&q);
		return;
	}
	exp = usher_arena_alloc(a, (t->nexp ? t->nexp : 1) * sizeof(*exp));
	for (i = 0; i < t->nexp; i++) {
		struct usher_promqltest_value *vals;
		size_t nv;
		const char *why = NULL;

		if (!usher_promqltest_parse_series(a, t->exp[i].labels_text, &exp[i].l, &vals, &nv,
						   &why) ||
		    nv != 0) {
			add_err(errs, "    expr: %s, time: %s, err: labels \"%s\": %s",
				usher_buf_str(&q), when, t->exp[i].labels_text,
				why ? why : "values after the labels");
			usher_buf_free(&q);
			return;
		}
		exp[i].v = t->exp[i].value;
	}
	if (ngot)
		qsort(got, ngot, sizeof(*got), cmp_psample);
	qsort(exp, t->nexp, sizeof(*exp), cmp_psample);
	same = ngot == t->nexp;
	for (i = 0; same && i < ngot; i++)
		same = usher_labels_equal(&got[i].l, &exp[i].l) && almost_equal(got[i].v, exp[i].v);
	if (!same) {
		struct usher_buf es, gs;

		usher_buf_init(&es, 1 << 22);
		usher_buf_init(&gs, 1 << 22);
		samples_string(&es, exp, t->nexp);
		samples_string(&gs, got, ngot);
		add_err(errs, "    expr: %s, time: %s,\n        exp: %s\n        got: %s",
			usher_buf_str(&q), when, usher_buf_str(&es), usher_buf_str(&gs));
		usher_buf_free(&es);
		usher_buf_free(&gs);
	}
	usher_buf_free(&q);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void run_group(const struct file *f, struct usher_rulefile **rfs, size_t nrfs,
		      const struct test_group *tg, struct errs *errs)
{
	struct usher_tsdb_options to = {0, 0};
	struct usher_tsdb *db = usher_tsdb_new(&to);
	struct usher_promql_engine *eng;
	struct usher_promql_options po;
	struct usher_arena *a = usher_arena_new();
	struct in_series *in = NULL;
	struct loaded_group *groups = NULL;
	size_t nin = 0, ngroups = 0, i, j, ntimes = 0, curr = 0;
	int64_t maxt = 0, ts, *times = NULL;

	usher_promql_options_default(&po);
	/* promtool sets the subquery step to the evaluation interval */
	po.default_step_ms = f->eval_interval;
	eng = usher_promql_engine_new(&po);
	if (tg->input) {
		in = usher_arena_zalloc(a, (tg->input->n ? tg->input->n : 1) * sizeof(*in));
		for (i = 0; i < tg->input->n; i++) {
			const struct usher_ynode *s = tg->input->items[i];
			const struct usher_ynode *sn =
			    s->kind == USHER_Y_MAP ? usher_ynode_get(s, "series") : NULL;
			const struct usher_ynode *vn =
			    s->kind == USHER_Y_MAP ? usher_ynode_get(s, "values") : NULL;
			const char *why = NULL, *line;

			if (s->kind != USHER_Y_MAP || !sn || sn->kind != USHER_Y_SCALAR ||
			    (vn && vn->kind != USHER_Y_SCALAR)) {
				add_err(errs,
					"%s:%d:%d: input_series needs a series and its values",
					f->path, s->line, s->col);
				goto out;
			}
			line = usher_arena_printf(a, "%s %s", sn->value,
						  vn && !usher_ynode_is_null(vn) ? vn->value : "");
			if (!usher_promqltest_parse_series(a, line, &in[nin].labels, &in[nin].v,
							   &in[nin].n, &why)) {
				add_err(errs, "%s:%d:%d: input series \"%s\": %s", f->path,
					sn->line, sn->col, line, why);
				goto out;
			}
			nin++;
		}
	}
	/* the groups of every rule file, in group_eval_order (unlisted ones
	 * first, in file order) */
	for (i = 0; i < nrfs; i++)
		ngroups += rfs[i]->ngroups;
	groups = usher_arena_zalloc(a, (ngroups ? ngroups : 1) * sizeof(*groups));
	ngroups = 0;
	for (i = 0; i < nrfs; i++)
		for (j = 0; j < rfs[i]->ngroups; j++) {
			struct usher_group_options go;
			size_t k;

			usher_group_options_default(&go);
			go.engine = eng;
			go.storage = usher_tsdb_storage(db);
			go.db = db;
			go.default_interval_ms = f->eval_interval;
			go.external_labels = tg->external_labels;
			go.external_url = tg->external_url;
			groups[ngroups].def = &rfs[i]->groups[j];
			groups[ngroups].g = usher_group_new(&rfs[i]->groups[j], &go);
			groups[ngroups].order = 0;
			groups[ngroups].seq = ngroups;
			for (k = 0; k < f->norder; k++)
				if (strcmp(f->order[k], rfs[i]->groups[j].name) == 0)
					groups[ngroups].order = k;
			ngroups++;
		}
	qsort(groups, ngroups, sizeof(*groups), cmp_loaded);
	for (i = 0; i < tg->nalerts; i++) {
		if (!*tg->alerts[i].alertname) {
			char when[64];

			usher_duration_format(tg->alerts[i].eval_time, when, sizeof(when));
			add_err(
			    errs,
			    "an item under alert_rule_test misses required attribute alertname at "
			    "eval_time %s%s%s%s",
			    when, *tg->name ? " (in TestGroup " : "", tg->name,
			    *tg->name ? ")" : "");
			goto out;
		}
		if (tg->alerts[i].eval_time > maxt)
			maxt = tg->alerts[i].eval_time;
	}
	for (i = 0; i < tg->nexprs; i++)
		if (tg->exprs[i].eval_time > maxt)
			maxt = tg->exprs[i].eval_time;
	times = usher_arena_alloc(a, (tg->nalerts ? tg->nalerts : 1) * sizeof(*times));
	for (i = 0; i < tg->nalerts; i++) {
		for (j = 0; j < ntimes; j++)
			if (times[j] == tg->alerts[i].eval_time)
				break;
		if (j == ntimes)
			times[ntimes++] = tg->alerts[i].eval_time;
	}
	qsort(times, ntimes, sizeof(*times), cmp_i64);
	for (ts = 0; ts <= maxt; ts += f->eval_interval) {
		size_t nerr = 0;

		/* promtool's lazy loader: the input samples up to ts */
		for (i = 0; i < nin; i++) {
			while (in[i].next < in[i].n && (int64_t)in[i].next * tg->interval <= ts) {
				const struct usher_promqltest_value *v = &in[i].v[in[i].next];
				struct usher_error err;

				usher_error_clear(&err);
				if (!v->omitted &&
				    usher_tsdb_append(db, &in[i].labels,
						      (int64_t)in[i].next * tg->interval, v->v,
						      &err)) {
					add_err(errs, "input series %s: %s",
						usher_labels_str(a, &in[i].labels), err.msg);
					goto out;
				}
				in[i].next++;
				if (tg->interval == 0 && in[i].next >= in[i].n)
					break;
			}
		}
		for (i = 0; i < ngroups; i++) {
			const struct usher_rule_group *def = groups[i].def;

			(void)usher_group_eval(groups[i].g, ts, NULL);
			for (j = 0; j < def->nrules; j++) {
				struct usher_rule_status rst;
				char when[64];

				usher_group_rule_status(groups[i].g, j, a, &rst);
				if (!*rst.last_error)
					continue;
				go_duration(ts, when, sizeof(when));
				add_err(errs, "    rule: %s, time: %s, err: %s", def->rules[j].name,
					when, rst.last_error);
				nerr++;
			}
		}
		if (nerr)
			goto out;
		while (curr < ntimes && ts <= times[curr] && times[curr] < ts + f->eval_interval) {
			for (i = 0; i < tg->nalerts; i++)
				if (tg->alerts[i].eval_time == times[curr])
					check_alerts(tg, &tg->alerts[i], groups, ngroups, a, errs);
			curr++;
		}
	}
	for (i = 0; i < tg->nexprs; i++)
		check_expr(eng, db, &tg->exprs[i], a, errs);
out:
	for (i = 0; i < ngroups; i++)
		usher_group_free(groups[i].g, -1);
	usher_promql_engine_free(eng);
	usher_tsdb_free(db);
	usher_arena_free(a);
}

/* Rule file paths: relative to the test file's directory, globs expanded. */
static char **resolve(const char *test_path, const struct file *f, size_t *n, FILE *errout)
{
	const char *slash = strrchr(test_path, '/');
	size_t dirlen = slash ? (size_t)(slash - test_path) : 0, i, j, cap = 8;
	char **out = usher_malloc(cap * sizeof(*out));

	*n = 0;
	for (i = 0; i < f->nrule_files; i++) {
		const char *rf = f->rule_files[i];
		char *full;
		glob_t gl;

		if (!*rf)
			continue;
		if (rf[0] == '/' || !slash)
			full = usher_strdup(rf);
		else {
			size_t l = dirlen + 1 + strlen(rf) + 1;

			full = usher_malloc(l);
			snprintf(full, l, "%.*s/%s", (int)dirlen, test_path, rf);
		}
		memset(&gl, 0, sizeof(gl));
		if (glob(full, 0, NULL, &gl) != 0 || gl.gl_pathc == 0) {
			fprintf(errout, "  WARNING: no file match pattern %s\n", full);
		} else {
			for (j = 0; j < gl.gl_pathc; j++) {
				if (*n == cap) {
					cap *= 2;
					out = usher_realloc(out, cap * sizeof(*out));
				}
				out[(*n)++] = usher_strdup(gl.gl_pathv[j]);
			}
		}
		globfree(&gl);
		free(full);
	}
	return out;
}

static bool read_text(const char *path, struct usher_buf *b, struct errs *errs)
{
	FILE *fp = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	if (!fp) {
		add_err(errs, "open %s: %s", path, strerror(errno));
		return false;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (usher_buf_add(b, chunk, n)) {
			fclose(fp);
			add_err(errs, "%s: larger than %u bytes", path, MAX_FILE);
			return false;
		}
	fclose(fp);
	return true;
}

enum usher_err usher_ruletest_run_file(const char *path, FILE *out, FILE *errout, bool *passed)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_diags d;
	struct usher_ynode *root;
	struct usher_rulefile **rfs = NULL;
	struct errs errs = {NULL, 0, 0};
	struct reader r;
	struct usher_buf b;
	struct file f;
	char **paths = NULL;
	size_t npaths = 0, nrfs = 0, i, j;

	fprintf(out, "Unit Testing:  %s\n", path);
	fflush(out);
	usher_diags_init(&d);
	usher_buf_init(&b, MAX_FILE);
	memset(&f, 0, sizeof(f));
	f.path = path;
	if (!read_text(path, &b, &errs))
		goto report;
	if (usher_yaml_parse(a, path, usher_buf_str(&b), b.len, &root, &d)) {
		add_diags(&errs, &d);
		goto report;
	}
	r.path = path;
	r.a = a;
	r.d = &d;
	r.failed = false;
	if (!read_file_struct(&r, root, &f)) {
		add_diags(&errs, &d);
		goto report;
	}
	for (i = 0; i < f.norder; i++)
		for (j = 0; j < i; j++)
			if (strcmp(f.order[i], f.order[j]) == 0) {
				add_err(&errs, "group name repeated in evaluation order: %s",
					f.order[i]);
				goto report;
			}
	paths = resolve(path, &f, &npaths, errout);
	rfs = usher_calloc(npaths ? npaths : 1, sizeof(*rfs));
	for (i = 0; i < f.ntests; i++) {
		/* promtool loads the rule files for every test group */
		if (i == 0) {
			struct usher_diags rd;
			bool bad = false;

			usher_diags_init(&rd);
			for (j = 0; j < npaths; j++) {
				if (usher_rulefile_load(paths[j], &rfs[nrfs], &rd))
					bad = true;
				else
					nrfs++;
			}
			if (bad) {
				/* each test group reports the load errors, as promtool does */
				size_t k;

				for (k = 0; k < f.ntests; k++)
					add_diags(&errs, &rd);
				usher_diags_free(&rd);
				goto report;
			}
			usher_diags_free(&rd);
		}
		run_group(&f, rfs, nrfs, &f.tests[i], &errs);
	}
report:
	*passed = errs.n == 0;
	if (errs.n) {
		fprintf(errout, "  FAILED:\n");
		for (i = 0; i < errs.n; i++) {
			fprintf(errout, "%s\n", errs.v[i]);
			fflush(errout);
			fprintf(out, "\n");
		}
	} else {
		fprintf(out, "  SUCCESS\n");
	}
	fprintf(out, "\n");
	fflush(out);
	for (i = 0; i < errs.n; i++)
		free(errs.v[i]);
	free(errs.v);
	for (i = 0; i < nrfs; i++)
		usher_rulefile_free(rfs[i]);
	free(rfs);
	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	usher_diags_free(&d);
	usher_buf_free(&b);
	usher_arena_free(a);
	return USHER_OK;
}
