/* The PromQL evaluator: plans each selector's fetch window, fetches once
 * per query, then evaluates the tree step by step (a range query or a
 * subquery is a loop of instant evaluations whose vectors are stitched into
 * series). Binary operators, vector matching and aggregations live here;
 * functions in functions.c. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "promql/engine.h"
#include "promql/value.h"
#include "tsdb/hashmap.h"

struct usher_promql_engine {
	struct usher_promql_options o;
};

/* A selector's data for the whole query. */
struct selcache {
	bool planned, fetched;
	int64_t mint, maxt;
	struct usher_series *s;
	size_t n;
};

struct pq_eval {
	const struct usher_promql_options *o;
	const struct usher_storage *st;
	struct usher_arena *arena; /* the query's: fetched data, the result */
	int64_t start, end;        /* of the query, for @ start() / end() */
	int64_t deadline_ns;       /* monotonic; 0: none */
	size_t budget;
	size_t *budgetp; /* NULL: unlimited */
	struct usher_error *err;
	const char *errtype;
	struct selcache *sel;       /* by node id */
	struct usher_regex **regex; /* by node id: label_replace's pattern */
	unsigned nnodes;
	unsigned ticks;
};

void usher_promql_options_default(struct usher_promql_options *o)
{
	o->timeout_ms = 2 * 60 * 1000;
	o->max_samples = 50000000;
	o->lookback_ms = 5 * 60 * 1000;
	o->default_step_ms = 60 * 1000;
}

struct usher_promql_engine *usher_promql_engine_new(const struct usher_promql_options *o)
{
	struct usher_promql_engine *e = usher_calloc(1, sizeof(*e));

	if (o)
		e->o = *o;
	else
		usher_promql_options_default(&e->o);
	if (e->o.lookback_ms <= 0)
		e->o.lookback_ms = 5 * 60 * 1000;
	if (e->o.default_step_ms <= 0)
		e->o.default_step_ms = 60 * 1000;
	return e;
}

void usher_promql_engine_free(struct usher_promql_engine *e)
{
	free(e);
}

void usher_promql_result_free(struct usher_promql_result *r)
{
	if (!r)
		return;
	usher_arena_free(r->arena);
	memset(r, 0, sizeof(*r));
}

enum usher_err pq_errorf(struct pq_eval *ev, const char *fmt, ...)
{
	char msg[USHER_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!ev->errtype)
		ev->errtype = "execution";
	return usher_fail(ev->err, USHER_ERR_INVALID, "%s", msg);
}

static enum usher_err too_many_samples(struct pq_eval *ev)
{
	if (!ev->errtype)
		ev->errtype = "execution";
	return usher_fail(ev->err, USHER_ERR_TOOBIG,
			  "query processing would load too many samples into memory in query "
			  "execution");
}

/* Takes n samples from the budget. */
static enum usher_err charge(struct pq_eval *ev, size_t n)
{
	if (!ev->budgetp)
		return USHER_OK;
	if (*ev->budgetp < n)
		return too_many_samples(ev);
	*ev->budgetp -= n;
	return USHER_OK;
}

static enum usher_err check_deadline(struct pq_eval *ev)
{
	if (!ev->deadline_ns || (++ev->ticks & 63))
		return USHER_OK;
	if (usher_mono_ns() < ev->deadline_ns)
		return USHER_OK;
	if (!ev->errtype)
		ev->errtype = "timeout";
	return usher_fail(ev->err, USHER_ERR_TIMEOUT, "query timed out in query execution");
}

void pq_vec_push(struct usher_arena *a, struct pq_vector *v, const struct usher_labels *l,
		 double val, int64_t t)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		struct pq_sample *ns = usher_arena_alloc(a, cap * sizeof(*ns));

		if (v->n)
			memcpy(ns, v->s, v->n * sizeof(*ns));
		v->s = ns;
		v->cap = cap;
	}
	v->s[v->n].l = *l;
	v->s[v->n].v = val;
	v->s[v->n].t = t;
	v->n++;
}

void pq_drop_name(struct usher_arena *a, const struct usher_labels *in, struct usher_labels *out)
{
	static const char *const name[] = {USHER_METRIC_NAME_LABEL};

	if (!usher_labels_get(in, USHER_METRIC_NAME_LABEL)) {
		*out = *in;
		return;
	}
	usher_labels_filter(a, in, name, 1, false, out);
}

void pq_kahan_inc(double inc, double *sum, double *c)
{
	double t = *sum + inc;

	if (isinf(t))
		*c = 0;
	else if (fabs(*sum) >= fabs(inc))
		*c += (*sum - t) + inc;
	else
		*c += (inc - t) + *sum;
	*sum = t;
}

static int dbl_cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	if (isnan(a))
		return isnan(b) ? 0 : -1;
	if (isnan(b))
		return 1;
	return a < b ? -1 : a > b;
}

double pq_quantile(double q, double *v, size_t n)
{
	double rank, w;
	size_t lo, hi;

	if (n == 0 || isnan(q))
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	qsort(v, n, sizeof(*v), dbl_cmp);
	rank = q * (double)(n - 1);
	lo = (size_t)fmax(0, floor(rank));
	hi = lo + 1 < n ? lo + 1 : n - 1;
	w = rank - floor(rank);
	return v[lo] * (1 - w) + v[hi] * w;
}

/* --- planning: which time range each selector needs --- */

static int64_t at_time(const struct pq_eval *ev, const struct usher_promql_timing *tm, int64_t t)
{
	switch (tm->at) {
	case USHER_PQ_AT_TIME: return tm->at_ms;
	case USHER_PQ_AT_START: return ev->start;
	case USHER_PQ_AT_END: return ev->end;
	case USHER_PQ_AT_NONE: break;
	}
	return t;
}

static void widen(struct selcache *c, int64_t mint, int64_t maxt)
{
	if (!c->planned) {
		c->planned = true;
		c->mint = mint;
		c->maxt = maxt;
		return;
	}
	if (mint < c->mint)
		c->mint = mint;
	if (maxt > c->maxt)
		c->maxt = maxt;
}

/* s..e is the span of times at which node will be evaluated. */
static void plan(struct pq_eval *ev, const struct usher_promql_node *n, int64_t s, int64_t e)
{
	const struct usher_promql_timing *tm;
	size_t i;

	switch (n->kind) {
	case USHER_PQ_NUMBER:
	case USHER_PQ_STRING: return;
	case USHER_PQ_VECTOR_SELECTOR:
		tm = &n->vs.timing;
		if (tm->at != USHER_PQ_AT_NONE)
			s = e = at_time(ev, tm, s);
		widen(&ev->sel[n->id], s - tm->offset_ms - ev->o->lookback_ms + 1,
		      e - tm->offset_ms);
		return;
	case USHER_PQ_MATRIX_SELECTOR:
		tm = &n->ms.vs->vs.timing;
		if (tm->at != USHER_PQ_AT_NONE)
			s = e = at_time(ev, tm, s);
		widen(&ev->sel[n->ms.vs->id], s - tm->offset_ms - n->ms.range_ms + 1,
		      e - tm->offset_ms);
		return;
	case USHER_PQ_SUBQUERY:
		tm = &n->sq.timing;
		if (tm->at != USHER_PQ_AT_NONE)
			s = e = at_time(ev, tm, s);
		plan(ev, n->sq.expr, s - tm->offset_ms - n->sq.range_ms, e - tm->offset_ms);
		return;
	case USHER_PQ_PAREN: plan(ev, n->paren.expr, s, e); return;
	case USHER_PQ_UNARY: plan(ev, n->unary.expr, s, e); return;
	case USHER_PQ_BINARY:
		plan(ev, n->binary.lhs, s, e);
		plan(ev, n->binary.rhs, s, e);
		return;
	case USHER_PQ_CALL:
		for (i = 0; i < n->call.nargs; i++)
			plan(ev, n->call.args[i], s, e);
		return;
	case USHER_PQ_AGGREGATE:
		if (n->agg.param)
			plan(ev, n->agg.param, s, e);
		plan(ev, n->agg.expr, s, e);
		return;
	}
}

static enum usher_err fetch(struct pq_eval *ev, const struct usher_promql_node *vs)
{
	struct selcache *c = &ev->sel[vs->id];
	enum usher_err rc;

	if (c->fetched)
		return USHER_OK;
	c->fetched = true;
	if (!c->planned)
		return USHER_OK;
	rc = ev->st->select(ev->st->ctx, vs->vs.matchers, vs->vs.nmatchers, c->mint, c->maxt,
			    ev->arena, ev->budgetp, &c->s, &c->n, ev->err);
	if (rc && !ev->errtype)
		ev->errtype = rc == USHER_ERR_TOOBIG ? "execution" : "internal";
	return rc;
}

/* The index of the last sample at or before t, or -1. */
static ptrdiff_t last_at(const int64_t *ts, size_t n, int64_t t)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ts[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (ptrdiff_t)lo - 1;
}

static enum usher_err eval(struct pq_eval *ev, const struct usher_promql_node *n, int64_t t,
			   struct usher_arena *a, struct pq_value *out);

static enum usher_err eval_vector_selector(struct pq_eval *ev, const struct usher_promql_node *n,
					   int64_t t, struct usher_arena *a, struct pq_value *out)
{
	const struct usher_promql_timing *tm = &n->vs.timing;
	int64_t eff = at_time(ev, tm, t) - tm->offset_ms;
	struct selcache *c = &ev->sel[n->id];
	enum usher_err rc = fetch(ev, n);
	size_t i;

	out->type = USHER_PQ_TYPE_VECTOR;
	if (rc)
		return rc;
	for (i = 0; i < c->n; i++) {
		const struct usher_series *s = &c->s[i];
		ptrdiff_t k = last_at(s->t, s->n, eff);

		if (k < 0 || s->t[k] <= eff - ev->o->lookback_ms || usher_is_stale(s->v[k]))
			continue;
		pq_vec_push(a, &out->vec, &s->labels, s->v[k], s->t[k]);
	}
	return USHER_OK;
}

/* The points of s in (from, to], without stale markers. */
static bool window(struct usher_arena *a, const struct usher_series *s, int64_t from, int64_t to,
		   struct pq_range *r)
{
	ptrdiff_t lo = last_at(s->t, s->n, from) + 1, hi = last_at(s->t, s->n, to) + 1, i;
	size_t stale = 0, k = 0;
	int64_t *ts;
	double *vs;

	if (hi <= lo)
		return false;
	for (i = lo; i < hi; i++)
		if (usher_is_stale(s->v[i]))
			stale++;
	r->l = s->labels;
	if (!stale) {
		r->t = s->t + lo;
		r->v = s->v + lo;
		r->n = (size_t)(hi - lo);
		return true;
	}
	if ((size_t)(hi - lo) == stale)
		return false;
	ts = usher_arena_alloc(a, (size_t)(hi - lo - (ptrdiff_t)stale) * sizeof(*ts));
	vs = usher_arena_alloc(a, (size_t)(hi - lo - (ptrdiff_t)stale) * sizeof(*vs));
	for (i = lo; i < hi; i++)
		if (!usher_is_stale(s->v[i])) {
			ts[k] = s->t[i];
			vs[k] = s->v[i];
			k++;
		}
	r->t = ts;
	r->v = vs;
	r->n = k;
	return true;
}

static enum usher_err eval_matrix_selector(struct pq_eval *ev, const struct usher_promql_node *n,
					   int64_t t, struct usher_arena *a, struct pq_value *out)
{
	const struct usher_promql_node *vs = n->ms.vs;
	const struct usher_promql_timing *tm = &vs->vs.timing;
	int64_t eff = at_time(ev, tm, t) - tm->offset_ms;
	struct selcache *c = &ev->sel[vs->id];
	enum usher_err rc = fetch(ev, vs);
	size_t i;

	out->type = USHER_PQ_TYPE_MATRIX;
	out->mat.start = eff - n->ms.range_ms;
	out->mat.end = eff;
	out->mat.range = n->ms.range_ms;
	if (rc)
		return rc;
	if (c->n)
		out->mat.s = usher_arena_alloc(a, c->n * sizeof(*out->mat.s));
	for (i = 0; i < c->n; i++)
		if (window(a, &c->s[i], eff - n->ms.range_ms, eff, &out->mat.s[out->mat.n]))
			out->mat.n++;
	return USHER_OK;
}

/* --- range evaluation: a loop of instant evaluations stitched into series --- */

struct acc_series {
	struct usher_labels l;
	uint64_t hash;
	size_t next; /* 1 + index of the next series with the same hash, 0: none */
	int64_t *t;
	double *v;
	size_t n, cap;
};

struct acc {
	struct acc_series *s;
	size_t n, cap;
	struct usher_u64map byhash; /* hash -> 1 + index of the first series */
};

static void acc_free(struct acc *acc)
{
	size_t i;

	for (i = 0; i < acc->n; i++) {
		free(acc->s[i].t);
		free(acc->s[i].v);
	}
	free(acc->s);
	usher_u64map_free(&acc->byhash);
}

static void acc_add(struct acc *acc, struct usher_arena *a, const struct usher_labels *l, int64_t t,
		    double v)
{
	uint64_t h = usher_labels_hash(l);
	size_t idx = (size_t)(uintptr_t)usher_u64map_get(&acc->byhash, h);
	struct acc_series *s = NULL;

	while (idx) {
		if (usher_labels_equal(&acc->s[idx - 1].l, l)) {
			s = &acc->s[idx - 1];
			break;
		}
		idx = acc->s[idx - 1].next;
	}
	if (!s) {
		if (acc->n == acc->cap) {
			acc->cap = acc->cap ? acc->cap * 2 : 16;
			acc->s = usher_realloc(acc->s, acc->cap * sizeof(*acc->s));
		}
		s = &acc->s[acc->n];
		memset(s, 0, sizeof(*s));
		usher_labels_copy(a, l, &s->l);
		s->hash = h;
		s->next = (size_t)(uintptr_t)usher_u64map_get(&acc->byhash, h);
		acc->n++;
		usher_u64map_put(&acc->byhash, h, (void *)(uintptr_t)acc->n);
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->t = usher_realloc(s->t, s->cap * sizeof(*s->t));
		s->v = usher_realloc(s->v, s->cap * sizeof(*s->v));
	}
	s->t[s->n] = t;
	s->v[s->n] = v;
	s->n++;
}

/* Evaluates n at start, start+step, … end; the series land in a. */
static enum usher_err range_eval(struct pq_eval *ev, const struct usher_promql_node *n,
				 int64_t start, int64_t end, int64_t step, struct usher_arena *a,
				 struct pq_range **out, size_t *nout)
{
	struct usher_arena *tmp = usher_arena_new();
	static const struct usher_labels none = {0, NULL};
	struct acc acc = {0};
	enum usher_err rc = USHER_OK;
	int64_t t;
	size_t i;

	for (t = start; t <= end; t += step) {
		struct pq_value v;

		memset(&v, 0, sizeof(v));
		ev->ticks |= 63; /* check the clock at every step */
		rc = check_deadline(ev);
		if (!rc)
			rc = eval(ev, n, t, tmp, &v);
		if (rc)
			break;
		if (v.type == USHER_PQ_TYPE_SCALAR) {
			rc = charge(ev, 1);
			if (rc)
				break;
			acc_add(&acc, a, &none, t, v.scalar);
		} else if (v.type == USHER_PQ_TYPE_VECTOR) {
			rc = charge(ev, v.vec.n);
			if (rc)
				break;
			for (i = 0; i < v.vec.n; i++)
				acc_add(&acc, a, &v.vec.s[i].l, t, v.vec.s[i].v);
		} else {
			rc = pq_errorf(ev, "unexpected value type in range evaluation");
			break;
		}
		usher_arena_reset(tmp);
		if (step <= 0)
			break;
	}
	usher_arena_free(tmp);
	*out = NULL;
	*nout = 0;
	if (!rc && acc.n) {
		*out = usher_arena_alloc(a, acc.n * sizeof(**out));
		for (i = 0; i < acc.n; i++) {
			struct pq_range *r = &(*out)[i];
			int64_t *ts = usher_arena_alloc(a, acc.s[i].n * sizeof(*ts));
			double *vs = usher_arena_alloc(a, acc.s[i].n * sizeof(*vs));

			memcpy(ts, acc.s[i].t, acc.s[i].n * sizeof(*ts));
			memcpy(vs, acc.s[i].v, acc.s[i].n * sizeof(*vs));
			r->l = acc.s[i].l;
			r->t = ts;
			r->v = vs;
			r->n = acc.s[i].n;
		}
		*nout = acc.n;
	}
	acc_free(&acc);
	return rc;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static enum usher_err eval_subquery(struct pq_eval *ev, const struct usher_promql_node *n,
				    int64_t t, struct usher_arena *a, struct pq_value *out)
{
	const struct usher_promql_timing *tm = &n->sq.timing;
	int64_t eff = at_time(ev, tm, t) - tm->offset_ms;
	int64_t step = n->sq.step_ms ? n->sq.step_ms : ev->o->default_step_ms;
	int64_t from = eff - n->sq.range_ms, first = floor_div(from, step) * step;

	while (first <= from)
		first += step;
	out->type = USHER_PQ_TYPE_MATRIX;
	out->mat.start = from;
	out->mat.end = eff;
	out->mat.range = n->sq.range_ms;
	return range_eval(ev, n->sq.expr, first, eff, step, a, &out->mat.s, &out->mat.n);
}

/* --- duplicate output check --- */

static enum usher_err check_duplicates(struct pq_eval *ev, const struct pq_vector *v)
{
	struct usher_u64map seen = {0};
	enum usher_err rc = USHER_OK;
	size_t i;

	if (v->n < 2)
		return USHER_OK;
	for (i = 0; i < v->n && !rc; i++) {
		uint64_t h = usher_labels_hash(&v->s[i].l);
		size_t j = (size_t)(uintptr_t)usher_u64map_get(&seen, h);

		if (j && usher_labels_equal(&v->s[j - 1].l, &v->s[i].l))
			rc = pq_errorf(ev, "vector cannot contain metrics with the same labelset");
		else if (!j)
			usher_u64map_put(&seen, h, (void *)(uintptr_t)(i + 1));
		else {
			/* a hash collision between different sets: compare pairwise */
			size_t k;

			for (k = 0; k < i && !rc; k++)
				if (usher_labels_equal(&v->s[k].l, &v->s[i].l))
					rc = pq_errorf(ev, "vector cannot contain metrics with the "
							   "same labelset");
		}
	}
	usher_u64map_free(&seen);
	return rc;
}

/* --- binary operators --- */

static double arith(enum usher_promql_op op, double l, double r, bool *keep)
{
	*keep = true;
	switch (op) {
	case USHER_PQ_ADD: return l + r;
	case USHER_PQ_SUB: return l - r;
	case USHER_PQ_MUL: return l * r;
	case USHER_PQ_DIV: return l / r;
	case USHER_PQ_MOD: return fmod(l, r);
	case USHER_PQ_POW: return pow(l, r);
	case USHER_PQ_ATAN2: return atan2(l, r);
	case USHER_PQ_EQL: *keep = l == r; return l;
	case USHER_PQ_NEQ: *keep = l != r; return l;
	case USHER_PQ_GTR: *keep = l > r; return l;
	case USHER_PQ_LSS: *keep = l < r; return l;
	case USHER_PQ_GTE: *keep = l >= r; return l;
	case USHER_PQ_LTE: *keep = l <= r; return l;
	default: *keep = false; return NAN;
	}
}

static bool drops_name(enum usher_promql_op op)
{
	return !usher_promql_op_is_comparison(op) && !usher_promql_op_is_set(op);
}

static void vector_scalar(struct pq_eval *ev, const struct usher_promql_node *n,
			  const struct pq_vector *vec, double s, bool swap, int64_t t,
			  struct usher_arena *a, struct pq_vector *out)
{
	enum usher_promql_op op = n->binary.op;
	bool rbool = n->binary.return_bool;
	size_t i;

	(void)ev;
	for (i = 0; i < vec->n; i++) {
		double lv = vec->s[i].v, rv = s, val;
		bool keep;
		struct usher_labels l = vec->s[i].l;

		if (swap) {
			lv = s;
			rv = vec->s[i].v;
		}
		val = arith(op, lv, rv, &keep);
		if (usher_promql_op_is_comparison(op) && swap)
			val = rv;
		if (rbool) {
			val = keep ? 1 : 0;
			keep = true;
		}
		if (!keep)
			continue;
		if (drops_name(op) || rbool)
			pq_drop_name(a, &l, &l);
		pq_vec_push(a, out, &l, val, t);
	}
}

/* The hash of the labels a vector match compares. */
static uint64_t signature(const struct usher_labels *l, const struct usher_promql_matching *m)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i, j;

	for (i = 0; i < l->n; i++) {
		const char *name = l->v[i].name, *p;
		bool listed = false;

		for (j = 0; j < m->nlabels; j++)
			if (strcmp(m->labels[j], name) == 0) {
				listed = true;
				break;
			}
		if (m->on ? !listed : (listed || strcmp(name, USHER_METRIC_NAME_LABEL) == 0))
			continue;
		for (p = name; *p; p++)
			h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
		h = (h ^ 0xfe) * 0x100000001b3ULL;
		for (p = l->v[i].value; *p; p++)
			h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
		h = (h ^ 0xff) * 0x100000001b3ULL;
	}
	return h;
}

/* The labels of the match group: what signature() hashed. */
static void match_labels(struct usher_arena *a, const struct usher_labels *l,
			 const struct usher_promql_matching *m, struct usher_labels *out)
{
	if (m->on) {
		usher_labels_filter(a, l, m->labels, m->nlabels, true, out);
	} else {
		struct usher_labels tmp;

		usher_labels_filter(a, l, m->labels, m->nlabels, false, &tmp);
		pq_drop_name(a, &tmp, out);
	}
}

static void result_metric(struct usher_arena *a, const struct usher_labels *ll,
			  const struct usher_labels *rl, enum usher_promql_op op,
			  const struct usher_promql_matching *m, struct usher_labels *out)
{
	struct usher_labels l = *ll;
	size_t i;

	if (drops_name(op))
		pq_drop_name(a, &l, &l);
	if (m->card == USHER_PQ_ONE_TO_ONE) {
		if (m->on)
			usher_labels_filter(a, &l, m->labels, m->nlabels, true, &l);
		else
			usher_labels_filter(a, &l, m->labels, m->nlabels, false, &l);
	}
	for (i = 0; i < m->ninclude; i++)
		usher_labels_set(a, &l, m->include[i], usher_labels_get(rl, m->include[i]), &l);
	*out = l;
}

static enum usher_err vector_vector(struct pq_eval *ev, const struct usher_promql_node *n,
				    const struct pq_vector *lhs, const struct pq_vector *rhs,
				    int64_t t, struct usher_arena *a, struct pq_vector *out)
{
	const struct usher_promql_matching *m = &n->binary.matching;
	enum usher_promql_op op = n->binary.op;
	struct usher_u64map rsigs = {0}, matched = {0};
	enum usher_err rc = USHER_OK;
	size_t i;

	if (usher_promql_op_is_set(op)) {
		struct usher_u64map sigs = {0};

		if (op == USHER_PQ_OR) {
			for (i = 0; i < lhs->n; i++) {
				usher_u64map_put(&sigs, signature(&lhs->s[i].l, m), (void *)1);
				pq_vec_push(a, out, &lhs->s[i].l, lhs->s[i].v, t);
			}
			for (i = 0; i < rhs->n; i++)
				if (!usher_u64map_get(&sigs, signature(&rhs->s[i].l, m)))
					pq_vec_push(a, out, &rhs->s[i].l, rhs->s[i].v, t);
		} else {
			for (i = 0; i < rhs->n; i++)
				usher_u64map_put(&sigs, signature(&rhs->s[i].l, m), (void *)1);
			for (i = 0; i < lhs->n; i++) {
				bool found = usher_u64map_get(&sigs, signature(&lhs->s[i].l, m));

				if (found == (op == USHER_PQ_AND))
					pq_vec_push(a, out, &lhs->s[i].l, lhs->s[i].v, t);
			}
		}
		usher_u64map_free(&sigs);
		return USHER_OK;
	}
	if (lhs->n == 0 || rhs->n == 0)
		return USHER_OK;
	if (m->card == USHER_PQ_ONE_TO_MANY) {
		const struct pq_vector *tmp = lhs;

		lhs = rhs;
		rhs = tmp;
	}
	for (i = 0; i < rhs->n && !rc; i++) {
		uint64_t sig = signature(&rhs->s[i].l, m);
		size_t j = (size_t)(uintptr_t)usher_u64map_get(&rsigs, sig);

		if (j) {
			const struct usher_labels *x = &rhs->s[j - 1].l, *y = &rhs->s[i].l;
			struct usher_labels ml;

			/* the pair in a stable order, so the message is reproducible */
			if (usher_labels_cmp(x, y) > 0) {
				x = &rhs->s[i].l;
				y = &rhs->s[j - 1].l;
			}
			match_labels(a, &rhs->s[i].l, m, &ml);
			rc = pq_errorf(ev,
				       "found duplicate series for the match group %s on the %s "
				       "hand-side of the operation: [%s, %s];many-to-many matching "
				       "not allowed: matching labels must be unique on one side",
				       usher_labels_str(a, &ml),
				       m->card == USHER_PQ_ONE_TO_MANY ? "left" : "right",
				       usher_labels_str(a, x), usher_labels_str(a, y));
			break;
		}
		usher_u64map_put(&rsigs, sig, (void *)(uintptr_t)(i + 1));
	}
	for (i = 0; i < lhs->n && !rc; i++) {
		uint64_t sig = signature(&lhs->s[i].l, m);
		size_t j = (size_t)(uintptr_t)usher_u64map_get(&rsigs, sig);
		const struct pq_sample *rs;
		double fl, fr, val;
		bool keep;
		struct usher_labels metric;

		if (!j)
			continue;
		rs = &rhs->s[j - 1];
		fl = lhs->s[i].v;
		fr = rs->v;
		if (m->card == USHER_PQ_ONE_TO_MANY) {
			fl = rs->v;
			fr = lhs->s[i].v;
		}
		if (m->card == USHER_PQ_ONE_TO_ONE) {
			/* checked before filtering, so a comparison that drops the
			 * duplicate still reports the ambiguous match */
			if (usher_u64map_get(&matched, sig)) {
				rc = pq_errorf(ev,
					       "multiple matches for labels: many-to-one matching "
					       "must be explicit (group_left/group_right)");
				break;
			}
			usher_u64map_put(&matched, sig, (void *)1);
		}
		val = arith(op, fl, fr, &keep);
		if (n->binary.return_bool) {
			val = keep ? 1 : 0;
		} else if (!keep) {
			continue;
		}
		result_metric(a, &lhs->s[i].l, &rs->l, op, m, &metric);
		if (n->binary.return_bool)
			pq_drop_name(a, &metric, &metric);
		if (m->card != USHER_PQ_ONE_TO_ONE) {
			uint64_t key = sig * 31 + usher_labels_hash(&metric);

			if (usher_u64map_get(&matched, key)) {
				rc = pq_errorf(ev,
					       "multiple matches for labels: grouping labels must "
					       "ensure unique matches");
				break;
			}
			usher_u64map_put(&matched, key, (void *)1);
		}
		pq_vec_push(a, out, &metric, val, t);
	}
	usher_u64map_free(&rsigs);
	usher_u64map_free(&matched);
	return rc;
}

static enum usher_err eval_binary(struct pq_eval *ev, const struct usher_promql_node *n, int64_t t,
				  struct usher_arena *a, struct pq_value *out)
{
	struct pq_value l, r;
	enum usher_err rc;

	memset(&l, 0, sizeof(l));
	memset(&r, 0, sizeof(r));
	rc = eval(ev, n->binary.lhs, t, a, &l);
	if (!rc)
		rc = eval(ev, n->binary.rhs, t, a, &r);
	if (rc)
		return rc;
	if (l.type == USHER_PQ_TYPE_SCALAR && r.type == USHER_PQ_TYPE_SCALAR) {
		bool keep;
		double v = arith(n->binary.op, l.scalar, r.scalar, &keep);

		out->type = USHER_PQ_TYPE_SCALAR;
		out->scalar = usher_promql_op_is_comparison(n->binary.op) ? (keep ? 1 : 0) : v;
		return USHER_OK;
	}
	out->type = USHER_PQ_TYPE_VECTOR;
	if (l.type == USHER_PQ_TYPE_VECTOR && r.type == USHER_PQ_TYPE_SCALAR)
		vector_scalar(ev, n, &l.vec, r.scalar, false, t, a, &out->vec);
	else if (l.type == USHER_PQ_TYPE_SCALAR && r.type == USHER_PQ_TYPE_VECTOR)
		vector_scalar(ev, n, &r.vec, l.scalar, true, t, a, &out->vec);
	else {
		rc = vector_vector(ev, n, &l.vec, &r.vec, t, a, &out->vec);
		if (rc)
			return rc;
	}
	return check_duplicates(ev, &out->vec);
}

/* --- aggregation --- */

struct group {
	struct usher_labels l;
	uint64_t hash;
	size_t next; /* 1 + index of the next group with the same hash */
	double value, mean, comp;
	double count;
	bool incremental;
	struct pq_vector heap; /* topk, bottomk: the kept samples */
	double *vals;          /* quantile */
	size_t nvals, capvals;
};

static void group_labels(struct usher_arena *a, const struct usher_promql_node *n,
			 const struct usher_labels *in, struct usher_labels *out)
{
	if (n->agg.without) {
		struct usher_labels tmp;

		usher_labels_filter(a, in, n->agg.grouping, n->agg.ngrouping, false, &tmp);
		pq_drop_name(a, &tmp, out);
	} else {
		usher_labels_filter(a, in, n->agg.grouping, n->agg.ngrouping, true, out);
	}
}

/* Whether sample x ranks lower than y for topk (NaN lowest); for bottomk
 * the reverse (NaN also "lowest" in the sense of least wanted). */
static bool k_worse(double x, double y, bool top)
{
	if (isnan(x))
		return !isnan(y);
	if (isnan(y))
		return false;
	return top ? x < y : x > y;
}

static void k_sort(struct pq_vector *h, bool top)
{
	size_t i, j;

	/* insertion sort, stable: k is small */
	for (i = 1; i < h->n; i++) {
		struct pq_sample x = h->s[i];

		for (j = i; j > 0 && k_worse(h->s[j - 1].v, x.v, top); j--)
			h->s[j] = h->s[j - 1];
		h->s[j] = x;
	}
}

/* Prometheus' strconv.FormatFloat(v, 'f', -1, 64): the shortest digits
 * that read back as v, written without an exponent. */
void usher_promql_format_value(double v, char *out, size_t len)
{
	char tmp[64], digits[32];
	int prec, exp10, nd = 0, i, pos = 0;
	char *e, *p;
	bool neg;

	if (isnan(v)) {
		snprintf(out, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (prec = 0; prec < 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
	neg = tmp[0] == '-';
	e = strchr(tmp, 'e');
	exp10 = (int)strtol(e + 1, NULL, 10);
	for (p = tmp + (neg ? 1 : 0); p < e; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (len < 2)
		return;
#define PUT(c)                                                                                     \
	do {                                                                                       \
		if ((size_t)pos + 1 < len)                                                         \
			out[pos++] = (c);                                                          \
	} while (0)
	if (neg && !(nd == 1 && digits[0] == '0' && !signbit(v)))
		PUT('-');
	if (exp10 < 0) {
		PUT('0');
		PUT('.');
		for (i = 0; i < -exp10 - 1; i++)
			PUT('0');
		for (i = 0; i < nd; i++)
			PUT(digits[i]);
	} else {
		for (i = 0; i <= exp10 || i < nd; i++) {
			if (i == exp10 + 1)
				PUT('.');
			PUT(i < nd ? digits[i] : '0');
		}
	}
	out[pos] = '\0';
#undef PUT
}

static enum usher_err eval_aggregate(struct pq_eval *ev, const struct usher_promql_node *n,
				     int64_t t, struct usher_arena *a, struct pq_value *out)
{
	enum usher_promql_agg op = n->agg.op;
	struct pq_value v, param;
	struct usher_u64map idx = {0};
	struct group *g = NULL;
	size_t ng = 0, capg = 0, i;
	enum usher_err rc;
	int64_t k = 0;
	double q = 0;
	const char *vlabel = NULL;

	memset(&v, 0, sizeof(v));
	memset(&param, 0, sizeof(param));
	out->type = USHER_PQ_TYPE_VECTOR;
	if (n->agg.param) {
		rc = eval(ev, n->agg.param, t, a, &param);
		if (rc)
			return rc;
		if (op == USHER_PQ_TOPK || op == USHER_PQ_BOTTOMK) {
			if (isnan(param.scalar))
				return pq_errorf(ev, "Parameter value is NaN");
			if (param.scalar >= 9223372036854775807.0 ||
			    param.scalar <= -9223372036854775808.0)
				return pq_errorf(ev, "Scalar value %g overflows int64",
						 param.scalar);
			k = (int64_t)param.scalar;
		} else if (op == USHER_PQ_QUANTILE) {
			q = param.scalar;
		} else if (op == USHER_PQ_COUNT_VALUES) {
			vlabel = param.str;
			if (!usher_label_name_ok(vlabel))
				return pq_errorf(ev, "invalid label name \"%s\"", vlabel);
		}
	}
	rc = eval(ev, n->agg.expr, t, a, &v);
	if (rc)
		return rc;
	if ((op == USHER_PQ_TOPK || op == USHER_PQ_BOTTOMK) && k < 1)
		return USHER_OK;
	for (i = 0; i < v.vec.n; i++) {
		const struct pq_sample *s = &v.vec.s[i];
		struct usher_labels gl;
		uint64_t h;
		size_t j;
		struct group *grp = NULL;
		char buf[64];

		group_labels(a, n, &s->l, &gl);
		if (op == USHER_PQ_COUNT_VALUES) {
			usher_promql_format_value(s->v, buf, sizeof(buf));
			usher_labels_set(a, &gl, vlabel, buf, &gl);
		}
		h = usher_labels_hash(&gl);
		for (j = (size_t)(uintptr_t)usher_u64map_get(&idx, h); j; j = g[j - 1].next)
			if (usher_labels_equal(&g[j - 1].l, &gl)) {
				grp = &g[j - 1];
				break;
			}
		if (!grp) {
			if (ng == capg) {
				struct group *ngs;

				capg = capg ? capg * 2 : 8;
				ngs = usher_arena_alloc(a, capg * sizeof(*ngs));
				if (ng)
					memcpy(ngs, g, ng * sizeof(*ngs));
				g = ngs;
			}
			grp = &g[ng];
			memset(grp, 0, sizeof(*grp));
			grp->l = gl;
			grp->hash = h;
			grp->next = (size_t)(uintptr_t)usher_u64map_get(&idx, h);
			ng++;
			usher_u64map_put(&idx, h, (void *)(uintptr_t)ng);
			grp->count = 1;
			switch (op) {
			case USHER_PQ_SUM:
			case USHER_PQ_AVG:
			case USHER_PQ_MIN:
			case USHER_PQ_MAX: grp->value = s->v; break;
			case USHER_PQ_STDDEV:
			case USHER_PQ_STDVAR:
				grp->mean = s->v;
				grp->value = 0;
				break;
			case USHER_PQ_TOPK:
			case USHER_PQ_BOTTOMK: pq_vec_push(a, &grp->heap, &s->l, s->v, t); break;
			case USHER_PQ_QUANTILE:
				grp->capvals = 8;
				grp->vals = usher_arena_alloc(a, grp->capvals * sizeof(double));
				grp->vals[grp->nvals++] = s->v;
				break;
			default: break;
			}
			continue;
		}
		switch (op) {
		case USHER_PQ_SUM: pq_kahan_inc(s->v, &grp->value, &grp->comp); break;
		case USHER_PQ_AVG:
			grp->count++;
			if (!grp->incremental) {
				double nv = grp->value, nc = grp->comp;

				pq_kahan_inc(s->v, &nv, &nc);
				if (!isinf(nv)) {
					grp->value = nv;
					grp->comp = nc;
					break;
				}
				grp->incremental = true;
				grp->mean = grp->value / (grp->count - 1);
				grp->comp /= grp->count - 1;
			}
			{
				double qq = (grp->count - 1) / grp->count, m = qq * grp->mean,
				       c = qq * grp->comp;

				pq_kahan_inc(s->v / grp->count, &m, &c);
				grp->mean = m;
				grp->comp = c;
			}
			break;
		case USHER_PQ_MIN:
			if (grp->value > s->v || isnan(grp->value))
				grp->value = s->v;
			break;
		case USHER_PQ_MAX:
			if (grp->value < s->v || isnan(grp->value))
				grp->value = s->v;
			break;
		case USHER_PQ_COUNT:
		case USHER_PQ_GROUP:
		case USHER_PQ_COUNT_VALUES: grp->count++; break;
		case USHER_PQ_STDDEV:
		case USHER_PQ_STDVAR: {
			double delta;

			grp->count++;
			delta = s->v - grp->mean;
			grp->mean += delta / grp->count;
			grp->value += delta * (s->v - grp->mean);
			break;
		}
		case USHER_PQ_TOPK:
		case USHER_PQ_BOTTOMK: {
			bool top = op == USHER_PQ_TOPK;

			if ((int64_t)grp->heap.n < k) {
				pq_vec_push(a, &grp->heap, &s->l, s->v, t);
			} else {
				/* replace the worst kept sample if s beats it */
				size_t w = 0, m;

				for (m = 1; m < grp->heap.n; m++)
					if (k_worse(grp->heap.s[m].v, grp->heap.s[w].v, top))
						w = m;
				if (k_worse(grp->heap.s[w].v, s->v, top)) {
					grp->heap.s[w].l = s->l;
					grp->heap.s[w].v = s->v;
				}
			}
			break;
		}
		case USHER_PQ_QUANTILE:
			if (grp->nvals == grp->capvals) {
				double *nv =
				    usher_arena_alloc(a, grp->capvals * 2 * sizeof(double));

				memcpy(nv, grp->vals, grp->nvals * sizeof(double));
				grp->vals = nv;
				grp->capvals *= 2;
			}
			grp->vals[grp->nvals++] = s->v;
			break;
		}
	}
	usher_u64map_free(&idx);
	for (i = 0; i < ng; i++) {
		struct group *grp = &g[i];
		double val = 0;
		size_t j;

		switch (op) {
		case USHER_PQ_SUM:
			val = grp->value + grp->comp;
			if (isinf(grp->value))
				val = grp->value;
			break;
		case USHER_PQ_AVG:
			if (grp->incremental)
				val = grp->mean + grp->comp;
			else
				val = (grp->value + grp->comp) / grp->count;
			break;
		case USHER_PQ_MIN:
		case USHER_PQ_MAX: val = grp->value; break;
		case USHER_PQ_COUNT:
		case USHER_PQ_COUNT_VALUES: val = grp->count; break;
		case USHER_PQ_GROUP: val = 1; break;
		case USHER_PQ_STDDEV: val = sqrt(grp->value / grp->count); break;
		case USHER_PQ_STDVAR: val = grp->value / grp->count; break;
		case USHER_PQ_QUANTILE: val = pq_quantile(q, grp->vals, grp->nvals); break;
		case USHER_PQ_TOPK:
		case USHER_PQ_BOTTOMK:
			k_sort(&grp->heap, op == USHER_PQ_TOPK);
			for (j = 0; j < grp->heap.n; j++)
				pq_vec_push(a, &out->vec, &grp->heap.s[j].l, grp->heap.s[j].v, t);
			continue;
		}
		pq_vec_push(a, &out->vec, &grp->l, val, t);
	}
	return USHER_OK;
}

/* --- calls --- */

enum usher_err pq_call_regex(struct pq_call *c, const char *pattern, const struct usher_regex **out)
{
	struct pq_eval *ev = c->ev;
	struct usher_error tmp;

	if (!ev->regex[c->node->id]) {
		usher_error_clear(&tmp);
		if (usher_regex_compile(pattern, &ev->regex[c->node->id], &tmp))
			return pq_errorf(ev, "invalid regular expression in %s(): %s",
					 c->node->call.fn->name, pattern);
	}
	*out = ev->regex[c->node->id];
	return USHER_OK;
}

static enum usher_err eval_call(struct pq_eval *ev, const struct usher_promql_node *n, int64_t t,
				struct usher_arena *a, struct pq_value *out)
{
	struct pq_value *args = NULL;
	struct pq_call c = {ev, a, t, n};
	enum usher_err rc;
	size_t i;

	if (n->call.nargs)
		args = usher_arena_zalloc(a, n->call.nargs * sizeof(*args));
	for (i = 0; i < n->call.nargs; i++) {
		rc = eval(ev, n->call.args[i], t, a, &args[i]);
		if (rc)
			return rc;
	}
	out->type = n->call.fn->ret;
	rc = n->call.fn->impl(&c, args, n->call.nargs, &out->vec);
	if (rc)
		return rc;
	if (out->type == USHER_PQ_TYPE_SCALAR) {
		/* scalar-valued functions leave their value in out->vec.s[0] */
		out->scalar = out->vec.n ? out->vec.s[0].v : NAN;
		memset(&out->vec, 0, sizeof(out->vec));
		return USHER_OK;
	}
	return check_duplicates(ev, &out->vec);
}

static enum usher_err eval(struct pq_eval *ev, const struct usher_promql_node *n, int64_t t,
			   struct usher_arena *a, struct pq_value *out)
{
	enum usher_err rc = check_deadline(ev);
	size_t i;

	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	switch (n->kind) {
	case USHER_PQ_NUMBER:
		out->type = USHER_PQ_TYPE_SCALAR;
		out->scalar = n->number;
		return USHER_OK;
	case USHER_PQ_STRING:
		out->type = USHER_PQ_TYPE_STRING;
		out->str = n->string;
		return USHER_OK;
	case USHER_PQ_PAREN: return eval(ev, n->paren.expr, t, a, out);
	case USHER_PQ_VECTOR_SELECTOR: return eval_vector_selector(ev, n, t, a, out);
	case USHER_PQ_MATRIX_SELECTOR: return eval_matrix_selector(ev, n, t, a, out);
	case USHER_PQ_SUBQUERY: return eval_subquery(ev, n, t, a, out);
	case USHER_PQ_UNARY:
		rc = eval(ev, n->unary.expr, t, a, out);
		if (rc || n->unary.op == USHER_PQ_ADD)
			return rc;
		if (out->type == USHER_PQ_TYPE_SCALAR) {
			out->scalar = -out->scalar;
			return USHER_OK;
		}
		for (i = 0; i < out->vec.n; i++) {
			out->vec.s[i].v = -out->vec.s[i].v;
			out->vec.s[i].t = t;
			pq_drop_name(a, &out->vec.s[i].l, &out->vec.s[i].l);
		}
		return check_duplicates(ev, &out->vec);
	case USHER_PQ_BINARY: return eval_binary(ev, n, t, a, out);
	case USHER_PQ_CALL: return eval_call(ev, n, t, a, out);
	case USHER_PQ_AGGREGATE: return eval_aggregate(ev, n, t, a, out);
	}
	return pq_errorf(ev, "unknown expression node");
}

/* --- entry points --- */

static void ev_init(struct pq_eval *ev, const struct usher_promql_engine *eng,
		    const struct usher_storage *st, const struct usher_promql_expr *expr,
		    int64_t start, int64_t end, struct usher_error *err)
{
	memset(ev, 0, sizeof(*ev));
	ev->o = &eng->o;
	ev->st = st;
	ev->arena = usher_arena_new();
	ev->start = start;
	ev->end = end;
	ev->err = err;
	if (eng->o.timeout_ms > 0)
		ev->deadline_ns = usher_mono_ns() + eng->o.timeout_ms * 1000000LL;
	if (eng->o.max_samples) {
		ev->budget = eng->o.max_samples;
		ev->budgetp = &ev->budget;
	}
	ev->sel =
	    usher_arena_zalloc(ev->arena, (expr->nnodes ? expr->nnodes : 1) * sizeof(*ev->sel));
	ev->regex =
	    usher_arena_zalloc(ev->arena, (expr->nnodes ? expr->nnodes : 1) * sizeof(*ev->regex));
	ev->nnodes = expr->nnodes;
}

static enum usher_err finish(struct pq_eval *ev, enum usher_err rc, struct usher_promql_result *res)
{
	unsigned i;

	for (i = 0; i < ev->nnodes; i++)
		usher_regex_free(ev->regex[i]);
	if (rc) {
		usher_arena_free(ev->arena);
		memset(res, 0, sizeof(*res));
		res->error_type = ev->errtype ? ev->errtype : "execution";
		return rc;
	}
	res->arena = ev->arena;
	return USHER_OK;
}

/* Query times are kept well inside int64, so adding offsets, ranges and
 * lookback (each at most USHER_PQ_MAX_DURATION_MS) cannot overflow. */
static bool time_ok(int64_t t)
{
	return t > -(1LL << 62) && t < (1LL << 62);
}

static int series_cmp(const void *x, const void *y)
{
	const struct usher_promql_series *a = x, *b = y;

	return usher_labels_cmp(&a->labels, &b->labels);
}

enum usher_err usher_promql_eval_instant_expr(const struct usher_promql_engine *eng,
					      const struct usher_storage *st,
					      const struct usher_promql_expr *expr, int64_t t,
					      struct usher_promql_result *res,
					      struct usher_error *err)
{
	struct pq_eval ev;
	struct pq_value v;
	enum usher_err rc;
	size_t i;

	memset(res, 0, sizeof(*res));
	if (!time_ok(t)) {
		res->error_type = "bad_data";
		return usher_fail(err, USHER_ERR_INVALID, "evaluation time out of range");
	}
	ev_init(&ev, eng, st, expr, t, t, err);
	plan(&ev, expr->root, t, t);
	rc = eval(&ev, expr->root, t, ev.arena, &v);
	if (!rc) {
		res->type = v.type;
		res->t = t;
		switch (v.type) {
		case USHER_PQ_TYPE_SCALAR: res->scalar = v.scalar; break;
		case USHER_PQ_TYPE_STRING: res->string = usher_arena_strdup(ev.arena, v.str); break;
		case USHER_PQ_TYPE_VECTOR:
			rc = charge(&ev, v.vec.n);
			res->n = v.vec.n;
			res->vector = usher_arena_alloc(ev.arena, (v.vec.n ? v.vec.n : 1) *
								      sizeof(*res->vector));
			for (i = 0; i < v.vec.n; i++) {
				usher_labels_copy(ev.arena, &v.vec.s[i].l, &res->vector[i].labels);
				res->vector[i].v = v.vec.s[i].v;
				res->vector[i].t = t;
			}
			break;
		case USHER_PQ_TYPE_MATRIX:
			res->n = v.mat.n;
			res->matrix = usher_arena_alloc(ev.arena, (v.mat.n ? v.mat.n : 1) *
								      sizeof(*res->matrix));
			for (i = 0; i < v.mat.n; i++) {
				usher_labels_copy(ev.arena, &v.mat.s[i].l, &res->matrix[i].labels);
				res->matrix[i].n = v.mat.s[i].n;
				res->matrix[i].t = v.mat.s[i].t;
				res->matrix[i].v = v.mat.s[i].v;
			}
			if (res->n > 1)
				qsort(res->matrix, res->n, sizeof(*res->matrix), series_cmp);
			break;
		case USHER_PQ_TYPE_NONE: break;
		}
	}
	return finish(&ev, rc, res);
}

enum usher_err
usher_promql_eval_range_expr(const struct usher_promql_engine *eng, const struct usher_storage *st,
			     const struct usher_promql_expr *expr, int64_t start, int64_t end,
			     int64_t step, struct usher_promql_result *res, struct usher_error *err)
{
	struct pq_eval ev;
	struct pq_range *s;
	enum usher_err rc;
	size_t n, i;

	memset(res, 0, sizeof(*res));
	if (expr->root->type != USHER_PQ_TYPE_SCALAR && expr->root->type != USHER_PQ_TYPE_VECTOR) {
		res->error_type = "bad_data";
		return usher_fail(
		    err, USHER_ERR_INVALID,
		    "invalid expression type \"%s\" for range query, must be Scalar or "
		    "instant Vector",
		    usher_promql_type_name(expr->root->type));
	}
	if (!time_ok(start) || !time_ok(end) || !time_ok(step)) {
		res->error_type = "bad_data";
		return usher_fail(err, USHER_ERR_INVALID, "evaluation time out of range");
	}
	if (step <= 0 || end < start) {
		res->error_type = "bad_data";
		return usher_fail(err, USHER_ERR_INVALID,
				  step <= 0 ? "zero or negative query resolution step widths are "
					      "not accepted. Try a positive integer"
					    : "end timestamp must not be before start time");
	}
	if ((end - start) / step > 11000) {
		res->error_type = "bad_data";
		return usher_fail(
		    err, USHER_ERR_INVALID,
		    "exceeded maximum resolution of 11,000 points per timeseries. Try "
		    "decreasing the query resolution (?step=XX)");
	}
	ev_init(&ev, eng, st, expr, start, end, err);
	plan(&ev, expr->root, start, end);
	rc = range_eval(&ev, expr->root, start, end, step, ev.arena, &s, &n);
	if (!rc) {
		res->type = USHER_PQ_TYPE_MATRIX;
		res->n = n;
		res->matrix = usher_arena_alloc(ev.arena, (n ? n : 1) * sizeof(*res->matrix));
		for (i = 0; i < n; i++) {
			res->matrix[i].labels = s[i].l;
			res->matrix[i].n = s[i].n;
			res->matrix[i].t = s[i].t;
			res->matrix[i].v = s[i].v;
		}
		if (n > 1)
			qsort(res->matrix, n, sizeof(*res->matrix), series_cmp);
	}
	return finish(&ev, rc, res);
}

enum usher_err usher_promql_eval_instant(const struct usher_promql_engine *eng,
					 const struct usher_storage *st, const char *query,
					 int64_t t, struct usher_promql_result *res,
					 struct usher_error *err)
{
	struct usher_promql_expr *e;
	enum usher_err rc = usher_promql_parse(query, &e, err);

	if (rc) {
		memset(res, 0, sizeof(*res));
		res->error_type = "bad_data";
		return rc;
	}
	rc = usher_promql_eval_instant_expr(eng, st, e, t, res, err);
	usher_promql_expr_free(e);
	return rc;
}

enum usher_err usher_promql_eval_range(const struct usher_promql_engine *eng,
				       const struct usher_storage *st, const char *query,
				       int64_t start, int64_t end, int64_t step,
				       struct usher_promql_result *res, struct usher_error *err)
{
	struct usher_promql_expr *e;
	enum usher_err rc = usher_promql_parse(query, &e, err);

	if (rc) {
		memset(res, 0, sizeof(*res));
		res->error_type = "bad_data";
		return rc;
	}
	rc = usher_promql_eval_range_expr(eng, st, e, start, end, step, res, err);
	usher_promql_expr_free(e);
	return rc;
}
