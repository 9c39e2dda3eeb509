/* PromQL functions: the table the parser checks calls against and their
 * implementations (rates with Prometheus' extrapolation, *_over_time,
 * math, labels, histogram_quantile over classic le buckets, dates). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "promql/engine.h"
#include "promql/value.h"
#include "tsdb/hashmap.h"

#define S   USHER_PQ_TYPE_SCALAR
#define V   USHER_PQ_TYPE_VECTOR
#define M   USHER_PQ_TYPE_MATRIX
#define STR USHER_PQ_TYPE_STRING

/* --- range vector functions --- */

static enum usher_err extrapolated(struct pq_call *c, const struct pq_matrix *m, bool counter,
				   bool rate, struct pq_vector *out)
{
	size_t i, j;

	for (i = 0; i < m->n; i++) {
		const struct pq_range *r = &m->s[i];
		double result, first, dstart, dend, sampled, avg, thresh, factor;
		struct usher_labels l;

		if (r->n < 2)
			continue;
		first = r->v[0];
		result = r->v[r->n - 1] - first;
		if (counter)
			for (j = 1; j < r->n; j++)
				if (r->v[j] < r->v[j - 1])
					result += r->v[j - 1];
		dstart = (double)(r->t[0] - m->start) / 1000;
		dend = (double)(m->end - r->t[r->n - 1]) / 1000;
		sampled = (double)(r->t[r->n - 1] - r->t[0]) / 1000;
		avg = sampled / (double)(r->n - 1);
		thresh = avg * 1.1;
		if (dstart >= thresh)
			dstart = avg / 2;
		if (counter && result > 0 && first >= 0) {
			double dzero = sampled * (first / result);

			if (dzero < dstart)
				dstart = dzero;
		}
		if (dend >= thresh)
			dend = avg / 2;
		factor = (sampled + dstart + dend) / sampled;
		if (rate)
			factor /= (double)m->range / 1000;
		pq_drop_name(c->a, &r->l, &l);
		pq_vec_push(c->a, out, &l, result * factor, c->t);
	}
	return USHER_OK;
}

static enum usher_err fn_rate(struct pq_call *c, struct pq_value *a, size_t n,
			      struct pq_vector *out)
{
	(void)n;
	return extrapolated(c, &a[0].mat, true, true, out);
}

static enum usher_err fn_increase(struct pq_call *c, struct pq_value *a, size_t n,
				  struct pq_vector *out)
{
	(void)n;
	return extrapolated(c, &a[0].mat, true, false, out);
}

static enum usher_err fn_delta(struct pq_call *c, struct pq_value *a, size_t n,
			       struct pq_vector *out)
{
	(void)n;
	return extrapolated(c, &a[0].mat, false, false, out);
}

static enum usher_err instant_value(struct pq_call *c, const struct pq_matrix *m, bool rate,
				    struct pq_vector *out)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		const struct pq_range *r = &m->s[i];
		double last, prev, result;
		int64_t dt;
		struct usher_labels l;

		if (r->n < 2)
			continue;
		last = r->v[r->n - 1];
		prev = r->v[r->n - 2];
		result = rate && last < prev ? last : last - prev;
		dt = r->t[r->n - 1] - r->t[r->n - 2];
		if (dt == 0)
			continue;
		if (rate)
			result /= (double)dt / 1000;
		pq_drop_name(c->a, &r->l, &l);
		pq_vec_push(c->a, out, &l, result, c->t);
	}
	return USHER_OK;
}

static enum usher_err fn_irate(struct pq_call *c, struct pq_value *a, size_t n,
			       struct pq_vector *out)
{
	(void)n;
	return instant_value(c, &a[0].mat, true, out);
}

static enum usher_err fn_idelta(struct pq_call *c, struct pq_value *a, size_t n,
				struct pq_vector *out)
{
	(void)n;
	return instant_value(c, &a[0].mat, false, out);
}

/* Least-squares fit of r's points; x is seconds since t0. */
static void regression(const struct pq_range *r, int64_t t0, double *slope, double *intercept)
{
	double n = 0, sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
	double init = r->v[0], cov, var;
	bool constant = true;
	size_t i;

	for (i = 0; i < r->n; i++) {
		double x = (double)(r->t[i] - t0) / 1000, y = r->v[i];

		if (constant && i > 0 && y != init)
			constant = false;
		n += 1;
		pq_kahan_inc(x, &sx, &cx);
		pq_kahan_inc(y, &sy, &cy);
		pq_kahan_inc(x * y, &sxy, &cxy);
		pq_kahan_inc(x * x, &sx2, &cx2);
	}
	if (constant) {
		if (isinf(init)) {
			*slope = NAN;
			*intercept = NAN;
		} else {
			*slope = 0;
			*intercept = init;
		}
		return;
	}
	sx += cx;
	sy += cy;
	sxy += cxy;
	sx2 += cx2;
	cov = sxy - sx * sy / n;
	var = sx2 - sx * sx / n;
	*slope = cov / var;
	*intercept = sy / n - *slope * sx / n;
}

static enum usher_err fn_deriv(struct pq_call *c, struct pq_value *a, size_t n,
			       struct pq_vector *out)
{
	size_t i;

	(void)n;
	for (i = 0; i < a[0].mat.n; i++) {
		const struct pq_range *r = &a[0].mat.s[i];
		double slope, icpt;
		struct usher_labels l;

		if (r->n < 2)
			continue;
		regression(r, r->t[0], &slope, &icpt);
		pq_drop_name(c->a, &r->l, &l);
		pq_vec_push(c->a, out, &l, slope, c->t);
	}
	return USHER_OK;
}

static enum usher_err fn_predict_linear(struct pq_call *c, struct pq_value *a, size_t n,
					struct pq_vector *out)
{
	double d = a[1].scalar;
	size_t i;

	(void)n;
	for (i = 0; i < a[0].mat.n; i++) {
		const struct pq_range *r = &a[0].mat.s[i];
		double slope, icpt;
		struct usher_labels l;

		if (r->n < 2)
			continue;
		regression(r, c->t, &slope, &icpt);
		pq_drop_name(c->a, &r->l, &l);
		pq_vec_push(c->a, out, &l, slope * d + icpt, c->t);
	}
	return USHER_OK;
}

typedef double over_fn(const struct pq_range *r, double arg);

static enum usher_err over_time(struct pq_call *c, const struct pq_matrix *m, over_fn *f,
				double arg, bool keep_name, struct pq_vector *out)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		const struct pq_range *r = &m->s[i];
		struct usher_labels l = r->l;

		if (!r->n)
			continue;
		if (!keep_name)
			pq_drop_name(c->a, &r->l, &l);
		pq_vec_push(c->a, out, &l, f(r, arg), c->t);
	}
	return USHER_OK;
}

static double o_avg(const struct pq_range *r, double arg)
{
	double sum = r->v[0], count = 1, mean = 0, comp = 0;
	bool incremental = false;
	size_t i;

	(void)arg;
	for (i = 1; i < r->n; i++) {
		double v = r->v[i], q;

		count = (double)(i + 1);
		if (!incremental) {
			double ns = sum, nc = comp;

			pq_kahan_inc(v, &ns, &nc);
			if (!isinf(ns)) {
				sum = ns;
				comp = nc;
				continue;
			}
			incremental = true;
			mean = sum / (count - 1);
			comp /= count - 1;
		}
		q = (count - 1) / count;
		mean *= q;
		comp *= q;
		pq_kahan_inc(v / count, &mean, &comp);
	}
	if (incremental)
		return mean + comp;
	return sum / count + comp / count;
}

static double o_sum(const struct pq_range *r, double arg)
{
	double sum = 0, comp = 0;
	size_t i;

	(void)arg;
	for (i = 0; i < r->n; i++)
		pq_kahan_inc(r->v[i], &sum, &comp);
	return isinf(sum) ? sum : sum + comp;
}

static double o_min(const struct pq_range *r, double arg)
{
	double m = r->v[0];
	size_t i;

	(void)arg;
	for (i = 0; i < r->n; i++)
		if (r->v[i] < m || isnan(m))
			m = r->v[i];
	return m;
}

static double o_max(const struct pq_range *r, double arg)
{
	double m = r->v[0];
	size_t i;

	(void)arg;
	for (i = 0; i < r->n; i++)
		if (r->v[i] > m || isnan(m))
			m = r->v[i];
	return m;
}

static double o_count(const struct pq_range *r, double arg)
{
	(void)arg;
	return (double)r->n;
}

static double o_last(const struct pq_range *r, double arg)
{
	(void)arg;
	return r->v[r->n - 1];
}

static double o_present(const struct pq_range *r, double arg)
{
	(void)r;
	(void)arg;
	return 1;
}

static double o_stdvar(const struct pq_range *r, double arg)
{
	double count = 0, mean = 0, cmean = 0, aux = 0, caux = 0;
	size_t i;

	(void)arg;
	for (i = 0; i < r->n; i++) {
		double delta;

		count++;
		delta = r->v[i] - (mean + cmean);
		pq_kahan_inc(delta / count, &mean, &cmean);
		pq_kahan_inc(delta * (r->v[i] - (mean + cmean)), &aux, &caux);
	}
	return (aux + caux) / count;
}

static double o_stddev(const struct pq_range *r, double arg)
{
	return sqrt(o_stdvar(r, arg));
}

static double o_changes(const struct pq_range *r, double arg)
{
	double n = 0;
	size_t i;

	(void)arg;
	for (i = 1; i < r->n; i++)
		if (!(r->v[i] == r->v[i - 1] || (isnan(r->v[i]) && isnan(r->v[i - 1]))))
			n++;
	return n;
}

static double o_resets(const struct pq_range *r, double arg)
{
	double n = 0;
	size_t i;

	(void)arg;
	for (i = 1; i < r->n; i++)
		if (r->v[i] < r->v[i - 1])
			n++;
	return n;
}

#define OVER(name, f, keep)                                                                        \
	static enum usher_err name(struct pq_call *c, struct pq_value *a, size_t n,                \
				   struct pq_vector *out)                                          \
	{                                                                                          \
		(void)n;                                                                           \
		return over_time(c, &a[0].mat, f, 0, keep, out);                                   \
	}

OVER(fn_avg_over_time, o_avg, false)
OVER(fn_sum_over_time, o_sum, false)
OVER(fn_min_over_time, o_min, false)
OVER(fn_max_over_time, o_max, false)
OVER(fn_count_over_time, o_count, false)
OVER(fn_last_over_time, o_last, true)
OVER(fn_present_over_time, o_present, false)
OVER(fn_stddev_over_time, o_stddev, false)
OVER(fn_stdvar_over_time, o_stdvar, false)
OVER(fn_changes, o_changes, false)
OVER(fn_resets, o_resets, false)

static enum usher_err fn_quantile_over_time(struct pq_call *c, struct pq_value *a, size_t n,
					    struct pq_vector *out)
{
	size_t i;

	(void)n;
	for (i = 0; i < a[1].mat.n; i++) {
		const struct pq_range *r = &a[1].mat.s[i];
		double *vals;
		struct usher_labels l;

		if (!r->n)
			continue;
		vals = usher_arena_alloc(c->a, r->n * sizeof(*vals));
		memcpy(vals, r->v, r->n * sizeof(*vals));
		pq_drop_name(c->a, &r->l, &l);
		pq_vec_push(c->a, out, &l, pq_quantile(a[0].scalar, vals, r->n), c->t);
	}
	return USHER_OK;
}

/* --- absent --- */

static const struct usher_promql_node *unparen(const struct usher_promql_node *n)
{
	while (n->kind == USHER_PQ_PAREN)
		n = n->paren.expr;
	return n;
}

/* The labels absent() reports: the selector's equality matchers, except
 * __name__ and names matched more than once. */
static void absent_labels(struct usher_arena *a, const struct usher_promql_node *arg,
			  struct usher_labels *out)
{
	const struct usher_promql_node *vs = NULL;
	struct usher_labels l = {0, NULL};
	size_t i, j;

	if (arg->kind == USHER_PQ_VECTOR_SELECTOR)
		vs = arg;
	else if (arg->kind == USHER_PQ_MATRIX_SELECTOR)
		vs = arg->ms.vs;
	*out = l;
	if (!vs)
		return;
	for (i = 0; i < vs->vs.nmatchers; i++) {
		const struct usher_matcher *m = &vs->vs.matchers[i];
		bool seen = false;

		if (strcmp(m->name, USHER_METRIC_NAME_LABEL) == 0)
			continue;
		for (j = 0; j < i; j++)
			if (strcmp(vs->vs.matchers[j].name, m->name) == 0 &&
			    vs->vs.matchers[j].type == USHER_MATCH_EQ)
				seen = true;
		if (m->type == USHER_MATCH_EQ && !seen)
			usher_labels_set(a, &l, m->name, m->value, &l);
		else
			usher_labels_set(a, &l, m->name, NULL, &l);
	}
	*out = l;
}

static enum usher_err fn_absent(struct pq_call *c, struct pq_value *a, size_t n,
				struct pq_vector *out)
{
	struct usher_labels l;

	(void)n;
	if (a[0].vec.n)
		return USHER_OK;
	absent_labels(c->a, c->node->call.args[0], &l);
	pq_vec_push(c->a, out, &l, 1, c->t);
	return USHER_OK;
}

static enum usher_err fn_absent_over_time(struct pq_call *c, struct pq_value *a, size_t n,
					  struct pq_vector *out)
{
	struct usher_labels l;

	(void)n;
	if (a[0].mat.n)
		return USHER_OK;
	absent_labels(c->a, c->node->call.args[0], &l);
	pq_vec_push(c->a, out, &l, 1, c->t);
	return USHER_OK;
}

/* --- instant vector math --- */

typedef double math_fn(double);

static enum usher_err simple(struct pq_call *c, const struct pq_vector *in, math_fn *f,
			     struct pq_vector *out)
{
	size_t i;

	for (i = 0; i < in->n; i++) {
		struct usher_labels l;

		pq_drop_name(c->a, &in->s[i].l, &l);
		pq_vec_push(c->a, out, &l, f(in->s[i].v), c->t);
	}
	return USHER_OK;
}

static double m_sgn(double v)
{
	if (v > 0)
		return 1;
	if (v < 0)
		return -1;
	return v; /* 0, -0, NaN */
}

static double m_deg(double v)
{
	return v * 180 / M_PI;
}

static double m_rad(double v)
{
	return v * M_PI / 180;
}

#define SIMPLE(name, f)                                                                            \
	static enum usher_err name(struct pq_call *c, struct pq_value *a, size_t n,                \
				   struct pq_vector *out)                                          \
	{                                                                                          \
		(void)n;                                                                           \
		return simple(c, &a[0].vec, f, out);                                               \
	}

SIMPLE(fn_abs, fabs)
SIMPLE(fn_ceil, ceil)
SIMPLE(fn_floor, floor)
SIMPLE(fn_exp, exp)
SIMPLE(fn_sqrt, sqrt)
SIMPLE(fn_ln, log)
SIMPLE(fn_log2, log2)
SIMPLE(fn_log10, log10)
SIMPLE(fn_sgn, m_sgn)
SIMPLE(fn_sin, sin)
SIMPLE(fn_cos, cos)
SIMPLE(fn_tan, tan)
SIMPLE(fn_asin, asin)
SIMPLE(fn_acos, acos)
SIMPLE(fn_atan, atan)
SIMPLE(fn_sinh, sinh)
SIMPLE(fn_cosh, cosh)
SIMPLE(fn_tanh, tanh)
SIMPLE(fn_asinh, asinh)
SIMPLE(fn_acosh, acosh)
SIMPLE(fn_atanh, atanh)
SIMPLE(fn_deg, m_deg)
SIMPLE(fn_rad, m_rad)

/* Go's math.Max / math.Min: NaN wins, unlike fmax / fmin. */
static double go_max(double x, double y)
{
	if (isinf(x) && x > 0)
		return x;
	if (isinf(y) && y > 0)
		return y;
	if (isnan(x) || isnan(y))
		return NAN;
	if (x == 0 && x == y)
		return signbit(x) ? y : x;
	return x > y ? x : y;
}

static double go_min(double x, double y)
{
	if (isinf(x) && x < 0)
		return x;
	if (isinf(y) && y < 0)
		return y;
	if (isnan(x) || isnan(y))
		return NAN;
	if (x == 0 && x == y)
		return signbit(x) ? x : y;
	return x < y ? x : y;
}

static enum usher_err fn_round(struct pq_call *c, struct pq_value *a, size_t n,
			       struct pq_vector *out)
{
	double to = n > 1 ? a[1].scalar : 1, inv = 1.0 / to;
	size_t i;

	for (i = 0; i < a[0].vec.n; i++) {
		struct usher_labels l;

		pq_drop_name(c->a, &a[0].vec.s[i].l, &l);
		pq_vec_push(c->a, out, &l, floor(a[0].vec.s[i].v * inv + 0.5) / inv, c->t);
	}
	return USHER_OK;
}

static enum usher_err clamp(struct pq_call *c, const struct pq_vector *in, double lo, double hi,
			    struct pq_vector *out)
{
	size_t i;

	for (i = 0; i < in->n; i++) {
		struct usher_labels l;

		pq_drop_name(c->a, &in->s[i].l, &l);
		pq_vec_push(c->a, out, &l, go_max(lo, go_min(hi, in->s[i].v)), c->t);
	}
	return USHER_OK;
}

static enum usher_err fn_clamp(struct pq_call *c, struct pq_value *a, size_t n,
			       struct pq_vector *out)
{
	(void)n;
	if (a[2].scalar < a[1].scalar)
		return USHER_OK;
	return clamp(c, &a[0].vec, a[1].scalar, a[2].scalar, out);
}

static enum usher_err fn_clamp_min(struct pq_call *c, struct pq_value *a, size_t n,
				   struct pq_vector *out)
{
	size_t i;

	(void)n;
	for (i = 0; i < a[0].vec.n; i++) {
		struct usher_labels l;

		pq_drop_name(c->a, &a[0].vec.s[i].l, &l);
		pq_vec_push(c->a, out, &l, go_max(a[1].scalar, a[0].vec.s[i].v), c->t);
	}
	return USHER_OK;
}

static enum usher_err fn_clamp_max(struct pq_call *c, struct pq_value *a, size_t n,
				   struct pq_vector *out)
{
	size_t i;

	(void)n;
	for (i = 0; i < a[0].vec.n; i++) {
		struct usher_labels l;

		pq_drop_name(c->a, &a[0].vec.s[i].l, &l);
		pq_vec_push(c->a, out, &l, go_min(a[1].scalar, a[0].vec.s[i].v), c->t);
	}
	return USHER_OK;
}

/* --- conversions, time --- */

static const struct usher_labels no_labels = {0, NULL};

static enum usher_err fn_scalar(struct pq_call *c, struct pq_value *a, size_t n,
				struct pq_vector *out)
{
	(void)n;
	pq_vec_push(c->a, out, &no_labels, a[0].vec.n == 1 ? a[0].vec.s[0].v : NAN, c->t);
	return USHER_OK;
}

static enum usher_err fn_vector(struct pq_call *c, struct pq_value *a, size_t n,
				struct pq_vector *out)
{
	(void)n;
	pq_vec_push(c->a, out, &no_labels, a[0].scalar, c->t);
	return USHER_OK;
}

static enum usher_err fn_time(struct pq_call *c, struct pq_value *a, size_t n,
			      struct pq_vector *out)
{
	(void)a;
	(void)n;
	pq_vec_push(c->a, out, &no_labels, (double)c->t / 1000, c->t);
	return USHER_OK;
}

static enum usher_err fn_pi(struct pq_call *c, struct pq_value *a, size_t n, struct pq_vector *out)
{
	(void)a;
	(void)n;
	pq_vec_push(c->a, out, &no_labels, M_PI, c->t);
	return USHER_OK;
}

static enum usher_err fn_timestamp(struct pq_call *c, struct pq_value *a, size_t n,
				   struct pq_vector *out)
{
	/* a selector's samples keep their own time; anything else is computed
	 * at the step */
	bool own = unparen(c->node->call.args[0])->kind == USHER_PQ_VECTOR_SELECTOR;
	size_t i;

	(void)n;
	for (i = 0; i < a[0].vec.n; i++) {
		struct usher_labels l;
		int64_t t = own ? a[0].vec.s[i].t : c->t;

		pq_drop_name(c->a, &a[0].vec.s[i].l, &l);
		pq_vec_push(c->a, out, &l, (double)t / 1000, c->t);
	}
	return USHER_OK;
}

/* sort: ascending, sort_desc: descending; NaN last either way; stable. */
static void sort_vec(struct pq_vector *v, bool desc)
{
	size_t i, j;

	for (i = 1; i < v->n; i++) {
		struct pq_sample x = v->s[i];

		for (j = i; j > 0; j--) {
			double p = v->s[j - 1].v;
			bool after;

			if (isnan(x.v))
				after = false;
			else if (isnan(p))
				after = true;
			else
				after = desc ? p < x.v : p > x.v;
			if (!after)
				break;
			v->s[j] = v->s[j - 1];
		}
		v->s[j] = x;
	}
}

static enum usher_err fn_sort(struct pq_call *c, struct pq_value *a, size_t n,
			      struct pq_vector *out)
{
	(void)c;
	(void)n;
	*out = a[0].vec;
	sort_vec(out, false);
	return USHER_OK;
}

static enum usher_err fn_sort_desc(struct pq_call *c, struct pq_value *a, size_t n,
				   struct pq_vector *out)
{
	(void)c;
	(void)n;
	*out = a[0].vec;
	sort_vec(out, true);
	return USHER_OK;
}

/* --- labels --- */

/* Prometheus 3 label names: any non-empty valid UTF-8. */
static bool utf8_name_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!*p)
		return false;
	while (*p) {
		int n;

		if (*p < 0x80)
			n = 0;
		else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2)
			n = 1;
		else if ((*p & 0xf0) == 0xe0)
			n = 2;
		else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4)
			n = 3;
		else
			return false;
		p++;
		while (n--) {
			if ((*p & 0xc0) != 0x80)
				return false;
			p++;
		}
	}
	return true;
}

static enum usher_err fn_label_replace(struct pq_call *c, struct pq_value *a, size_t n,
				       struct pq_vector *out)
{
	const char *dst = a[1].str, *repl = a[2].str, *src = a[3].str;
	const struct usher_regex *re;
	enum usher_err rc = pq_call_regex(c, a[4].str, &re);
	size_t i;

	(void)n;
	if (rc)
		return rc;
	if (!utf8_name_ok(dst))
		return pq_errorf(c->ev, "invalid destination label name in label_replace(): %s",
				 dst);
	for (i = 0; i < a[0].vec.n; i++) {
		struct pq_sample s = a[0].vec.s[i];
		const char *sv = usher_labels_get(&s.l, src), *res;

		if (usher_regex_replace(re, sv ? sv : "", repl, c->a, &res))
			usher_labels_set(c->a, &s.l, dst, res, &s.l);
		pq_vec_push(c->a, out, &s.l, s.v, c->t);
	}
	return USHER_OK;
}

static enum usher_err fn_label_join(struct pq_call *c, struct pq_value *a, size_t n,
				    struct pq_vector *out)
{
	const char *dst = a[1].str, *sep = a[2].str;
	size_t i, j;

	for (j = 3; j < n; j++)
		if (!utf8_name_ok(a[j].str))
			return pq_errorf(c->ev, "invalid source label name in label_join(): %s",
					 a[j].str);
	if (!utf8_name_ok(dst))
		return pq_errorf(c->ev, "invalid destination label name in label_join(): %s", dst);
	for (i = 0; i < a[0].vec.n; i++) {
		struct pq_sample s = a[0].vec.s[i];
		struct usher_buf b;

		usher_buf_init(&b, 1 << 20);
		for (j = 3; j < n; j++) {
			const char *v = usher_labels_get(&s.l, a[j].str);

			if (j > 3)
				(void)usher_buf_addstr(&b, sep);
			if (v)
				(void)usher_buf_addstr(&b, v);
		}
		usher_labels_set(c->a, &s.l, dst, usher_buf_str(&b), &s.l);
		usher_buf_free(&b);
		pq_vec_push(c->a, out, &s.l, s.v, c->t);
	}
	return USHER_OK;
}

/* --- histogram_quantile over classic buckets --- */

struct bucket {
	double upper, count;
};

struct hgroup {
	struct usher_labels key, out;
	size_t next;
	struct bucket *b;
	size_t n, cap;
};

static int bucket_cmp(const void *x, const void *y)
{
	const struct bucket *a = x, *b = y;

	return a->upper < b->upper ? -1 : a->upper > b->upper;
}

static bool almost_equal(double a, double b, double eps)
{
	double sum, diff;

	if (isnan(a) && isnan(b))
		return true;
	if (a == b)
		return true;
	sum = fabs(a) + fabs(b);
	diff = fabs(a - b);
	if (a == 0 || b == 0 || sum < DBL_MIN)
		return diff < eps * DBL_MIN;
	return diff / fmin(sum, DBL_MAX) < eps;
}

static double bucket_quantile(double q, struct bucket *b, size_t n)
{
	size_t i, k, lo, hi;
	double prev, obs, rank, start = 0, end, count;

	if (isnan(q))
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	qsort(b, n, sizeof(*b), bucket_cmp);
	if (!isinf(b[n - 1].upper) || b[n - 1].upper < 0)
		return NAN;
	/* merge buckets with the same bound */
	for (i = 1, k = 0; i < n; i++) {
		if (b[i].upper == b[k].upper)
			b[k].count += b[i].count;
		else
			b[++k] = b[i];
	}
	n = k + 1;
	/* counts must not decrease; float noise is smoothed over */
	prev = b[0].count;
	for (i = 1; i < n; i++) {
		double cur = b[i].count;

		if (cur == prev)
			continue;
		if (almost_equal(prev, cur, 1e-12) || cur < prev) {
			b[i].count = prev;
			continue;
		}
		prev = cur;
	}
	if (n < 2)
		return NAN;
	obs = b[n - 1].count;
	if (obs == 0)
		return NAN;
	rank = q * obs;
	/* the first bucket whose count reaches rank */
	lo = 0;
	hi = n - 1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (b[mid].count >= rank)
			hi = mid;
		else
			lo = mid + 1;
	}
	k = lo;
	if (k == n - 1)
		return b[n - 2].upper;
	if (k == 0 && b[0].upper <= 0)
		return b[0].upper;
	end = b[k].upper;
	count = b[k].count;
	if (k > 0) {
		start = b[k - 1].upper;
		count -= b[k - 1].count;
		rank -= b[k - 1].count;
	}
	return start + (end - start) * (rank / count);
}

static bool parse_le(const char *s, double *v)
{
	char *end;

	if (!s || !*s || strchr(" \t\n", *s))
		return false;
	*v = strtod(s, &end);
	return *end == '\0';
}

static enum usher_err fn_histogram_quantile(struct pq_call *c, struct pq_value *a, size_t n,
					    struct pq_vector *out)
{
	static const char *const le[] = {"le"};
	static const char *const excluded[] = {USHER_METRIC_NAME_LABEL, "le"};
	struct usher_u64map idx = {0};
	struct hgroup *g = NULL;
	size_t ng = 0, capg = 0, i;

	(void)n;
	for (i = 0; i < a[1].vec.n; i++) {
		const struct pq_sample *s = &a[1].vec.s[i];
		struct usher_labels key;
		struct hgroup *grp = NULL;
		double upper;
		uint64_t h;
		size_t j;

		if (!parse_le(usher_labels_get(&s->l, "le"), &upper))
			continue; /* Prometheus warns and skips the sample */
		usher_labels_filter(c->a, &s->l, le, 1, false, &key);
		h = usher_labels_hash(&key);
		for (j = (size_t)(uintptr_t)usher_u64map_get(&idx, h); j; j = g[j - 1].next)
			if (usher_labels_equal(&g[j - 1].key, &key)) {
				grp = &g[j - 1];
				break;
			}
		if (!grp) {
			if (ng == capg) {
				struct hgroup *ngs;

				capg = capg ? capg * 2 : 8;
				ngs = usher_arena_alloc(c->a, capg * sizeof(*ngs));
				if (ng)
					memcpy(ngs, g, ng * sizeof(*ngs));
				g = ngs;
			}
			grp = &g[ng];
			memset(grp, 0, sizeof(*grp));
			grp->key = key;
			usher_labels_filter(c->a, &s->l, excluded, 2, false, &grp->out);
			grp->next = (size_t)(uintptr_t)usher_u64map_get(&idx, h);
			ng++;
			usher_u64map_put(&idx, h, (void *)(uintptr_t)ng);
		}
		if (grp->n == grp->cap) {
			struct bucket *nb;

			grp->cap = grp->cap ? grp->cap * 2 : 8;
			nb = usher_arena_alloc(c->a, grp->cap * sizeof(*nb));
			if (grp->n)
				memcpy(nb, grp->b, grp->n * sizeof(*nb));
			grp->b = nb;
		}
		grp->b[grp->n].upper = upper;
		grp->b[grp->n].count = s->v;
		grp->n++;
	}
	usher_u64map_free(&idx);
	for (i = 0; i < ng; i++)
		pq_vec_push(c->a, out, &g[i].out, bucket_quantile(a[0].scalar, g[i].b, g[i].n),
			    c->t);
	return USHER_OK;
}

/* --- dates --- */

typedef double date_fn(const struct tm *tm);

static enum usher_err dates(struct pq_call *c, struct pq_value *a, size_t n, date_fn *f,
			    struct pq_vector *out)
{
	struct tm tm;
	time_t secs;
	size_t i;

	if (n == 0) {
		secs = (time_t)(c->t / 1000);
		gmtime_r(&secs, &tm);
		pq_vec_push(c->a, out, &no_labels, f(&tm), c->t);
		return USHER_OK;
	}
	for (i = 0; i < a[0].vec.n; i++) {
		struct usher_labels l;
		double v = a[0].vec.s[i].v;

		pq_drop_name(c->a, &a[0].vec.s[i].l, &l);
		if (!isfinite(v) || fabs(v) > 1e15) {
			pq_vec_push(c->a, out, &l, NAN, c->t);
			continue;
		}
		secs = (time_t)v;
		gmtime_r(&secs, &tm);
		pq_vec_push(c->a, out, &l, f(&tm), c->t);
	}
	return USHER_OK;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static double d_dow(const struct tm *t)
{
	return t->tm_wday;
}
static double d_dom(const struct tm *t)
{
	return t->tm_mday;
}
static double d_doy(const struct tm *t)
{
	return t->tm_yday + 1;
}
static double d_hour(const struct tm *t)
{
	return t->tm_hour;
}
static double d_minute(const struct tm *t)
{
	return t->tm_min;
}
static double d_month(const struct tm *t)
{
	return t->tm_mon + 1;
}
static double d_year(const struct tm *t)
{
	return t->tm_year + 1900;
}
static double d_dim(const struct tm *t)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return t->tm_mon == 1 && leap(t->tm_year + 1900) ? 29 : days[t->tm_mon];
}

#define DATE(name, f)                                                                              \
	static enum usher_err name(struct pq_call *c, struct pq_value *a, size_t n,                \
				   struct pq_vector *out)                                          \
	{                                                                                          \
		return dates(c, a, n, f, out);                                                     \
	}

DATE(fn_day_of_week, d_dow)
DATE(fn_day_of_month, d_dom)
DATE(fn_day_of_year, d_doy)
DATE(fn_days_in_month, d_dim)
DATE(fn_hour, d_hour)
DATE(fn_minute, d_minute)
DATE(fn_month, d_month)
DATE(fn_year, d_year)

static const struct usher_promql_function functions[] = {
    {"abs", {V}, 1, 0, V, fn_abs},
    {"absent", {V}, 1, 0, V, fn_absent},
    {"absent_over_time", {M}, 1, 0, V, fn_absent_over_time},
    {"acos", {V}, 1, 0, V, fn_acos},
    {"acosh", {V}, 1, 0, V, fn_acosh},
    {"asin", {V}, 1, 0, V, fn_asin},
    {"asinh", {V}, 1, 0, V, fn_asinh},
    {"atan", {V}, 1, 0, V, fn_atan},
    {"atanh", {V}, 1, 0, V, fn_atanh},
    {"avg_over_time", {M}, 1, 0, V, fn_avg_over_time},
    {"ceil", {V}, 1, 0, V, fn_ceil},
    {"changes", {M}, 1, 0, V, fn_changes},
    {"clamp", {V, S, S}, 3, 0, V, fn_clamp},
    {"clamp_max", {V, S}, 2, 0, V, fn_clamp_max},
    {"clamp_min", {V, S}, 2, 0, V, fn_clamp_min},
    {"cos", {V}, 1, 0, V, fn_cos},
    {"cosh", {V}, 1, 0, V, fn_cosh},
    {"count_over_time", {M}, 1, 0, V, fn_count_over_time},
    {"day_of_month", {V}, 1, 1, V, fn_day_of_month},
    {"day_of_week", {V}, 1, 1, V, fn_day_of_week},
    {"day_of_year", {V}, 1, 1, V, fn_day_of_year},
    {"days_in_month", {V}, 1, 1, V, fn_days_in_month},
    {"deg", {V}, 1, 0, V, fn_deg},
    {"delta", {M}, 1, 0, V, fn_delta},
    {"deriv", {M}, 1, 0, V, fn_deriv},
    {"exp", {V}, 1, 0, V, fn_exp},
    {"floor", {V}, 1, 0, V, fn_floor},
    {"histogram_quantile", {S, V}, 2, 0, V, fn_histogram_quantile},
    {"hour", {V}, 1, 1, V, fn_hour},
    {"idelta", {M}, 1, 0, V, fn_idelta},
    {"increase", {M}, 1, 0, V, fn_increase},
    {"irate", {M}, 1, 0, V, fn_irate},
    {"label_join", {V, STR, STR, STR}, 4, -1, V, fn_label_join},
    {"label_replace", {V, STR, STR, STR, STR}, 5, 0, V, fn_label_replace},
    {"last_over_time", {M}, 1, 0, V, fn_last_over_time},
    {"ln", {V}, 1, 0, V, fn_ln},
    {"log10", {V}, 1, 0, V, fn_log10},
    {"log2", {V}, 1, 0, V, fn_log2},
    {"max_over_time", {M}, 1, 0, V, fn_max_over_time},
    {"min_over_time", {M}, 1, 0, V, fn_min_over_time},
    {"minute", {V}, 1, 1, V, fn_minute},
    {"month", {V}, 1, 1, V, fn_month},
    {"pi", {S}, 0, 0, S, fn_pi},
    {"predict_linear", {M, S}, 2, 0, V, fn_predict_linear},
    {"present_over_time", {M}, 1, 0, V, fn_present_over_time},
    {"quantile_over_time", {S, M}, 2, 0, V, fn_quantile_over_time},
    {"rad", {V}, 1, 0, V, fn_rad},
    {"rate", {M}, 1, 0, V, fn_rate},
    {"resets", {M}, 1, 0, V, fn_resets},
    {"round", {V, S}, 2, 1, V, fn_round},
    {"scalar", {V}, 1, 0, S, fn_scalar},
    {"sgn", {V}, 1, 0, V, fn_sgn},
    {"sin", {V}, 1, 0, V, fn_sin},
    {"sinh", {V}, 1, 0, V, fn_sinh},
    {"sort", {V}, 1, 0, V, fn_sort},
    {"sort_desc", {V}, 1, 0, V, fn_sort_desc},
    {"sqrt", {V}, 1, 0, V, fn_sqrt},
    {"stddev_over_time", {M}, 1, 0, V, fn_stddev_over_time},
    {"stdvar_over_time", {M}, 1, 0, V, fn_stdvar_over_time},
    {"sum_over_time", {M}, 1, 0, V, fn_sum_over_time},
    {"tan", {V}, 1, 0, V, fn_tan},
    {"tanh", {V}, 1, 0, V, fn_tanh},
    {"time", {S}, 0, 0, S, fn_time},
    {"timestamp", {V}, 1, 0, V, fn_timestamp},
    {"vector", {S}, 1, 0, V, fn_vector},
    {"year", {V}, 1, 1, V, fn_year},
};

const struct usher_promql_function *pq_function_find(const char *name)
{
	size_t lo = 0, hi = sizeof(functions) / sizeof(functions[0]);

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(functions[mid].name, name);

		if (c == 0)
			return &functions[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
