/* Rule group evaluation after Prometheus' rules package: recording rules,
 * the alert state machine, ALERTS / ALERTS_FOR_STATE, alert sending with a
 * resend delay, per-rule health and per-group counters. */
#include "rules/group.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define DEFAULT_INTERVAL_MS  (60 * 1000LL)
#define DEFAULT_RESEND_MS    (60 * 1000LL)
#define DEFAULT_RETENTION_MS (15 * 60 * 1000LL)

struct alert_entry {
	struct usher_rule_alert a;
	uint64_t hash; /* of a.labels: the alert's fingerprint */
};

struct rule_state {
	const struct usher_rule *rule;
	struct usher_tsdb_batch *batch; /* one per rule: a failing rule keeps its series */
	struct alert_entry *alerts;     /* sorted by (hash, labels) */
	size_t n, cap;
	char *last_error; /* NULL: healthy */
	int64_t last_eval_ms;
	int64_t last_duration_ns;
	bool evaluated;
};

struct usher_group {
	const struct usher_rule_group *def;
	struct usher_group_options o;
	struct usher_label *ext;
	char *ext_url;
	struct rule_state *rules;
	struct usher_arena *scratch; /* one evaluation's short-lived data */
	pthread_mutex_t mu;          /* guards rules[].alerts/status and stats against readers */
	struct usher_group_stats stats;
};

const char *usher_alert_state_name(enum usher_alert_state s)
{
	switch (s) {
	case USHER_ALERT_PENDING: return "pending";
	case USHER_ALERT_FIRING: return "firing";
	default: return "inactive";
	}
}

void usher_group_options_default(struct usher_group_options *o)
{
	memset(o, 0, sizeof(*o));
	o->default_interval_ms = DEFAULT_INTERVAL_MS;
	o->resend_delay_ms = DEFAULT_RESEND_MS;
	o->resolved_retention_ms = DEFAULT_RETENTION_MS;
}

/* A label set in one allocation (pairs, then strings): alerts outlive the
 * evaluation that made them. Free with free((void *)l.v). */
static struct usher_labels pack(const struct usher_labels *in)
{
	size_t i, sz = in->n * sizeof(struct usher_label);
	struct usher_label *pairs;
	struct usher_labels out;
	char *p;

	for (i = 0; i < in->n; i++)
		sz += strlen(in->v[i].name) + strlen(in->v[i].value) + 2;
	pairs = usher_malloc(sz ? sz : 1);
	p = (char *)(pairs + in->n);
	for (i = 0; i < in->n; i++) {
		size_t nl = strlen(in->v[i].name) + 1, vl = strlen(in->v[i].value) + 1;

		memcpy(p, in->v[i].name, nl);
		pairs[i].name = p;
		p += nl;
		memcpy(p, in->v[i].value, vl);
		pairs[i].value = p;
		p += vl;
	}
	out.n = in->n;
	out.v = pairs;
	return out;
}

static void unpack(struct usher_labels *l)
{
	free((void *)l->v);
	l->v = NULL;
	l->n = 0;
}

static void entry_free(struct alert_entry *e)
{
	unpack(&e->a.labels);
	unpack(&e->a.annotations);
}

struct usher_group *usher_group_new(const struct usher_rule_group *def,
				    const struct usher_group_options *o)
{
	struct usher_group *g = usher_calloc(1, sizeof(*g));
	struct usher_labels ext;
	size_t i;

	g->def = def;
	g->o = *o;
	if (g->o.default_interval_ms <= 0)
		g->o.default_interval_ms = DEFAULT_INTERVAL_MS;
	if (g->o.resend_delay_ms <= 0)
		g->o.resend_delay_ms = DEFAULT_RESEND_MS;
	if (g->o.resolved_retention_ms <= 0)
		g->o.resolved_retention_ms = DEFAULT_RETENTION_MS;
	ext = pack(&o->external_labels);
	g->ext = (struct usher_label *)ext.v;
	g->o.external_labels = ext;
	g->ext_url = usher_strdup(o->external_url ? o->external_url : "");
	g->o.external_url = g->ext_url;
	g->rules = usher_calloc(def->nrules ? def->nrules : 1, sizeof(*g->rules));
	for (i = 0; i < def->nrules; i++) {
		g->rules[i].rule = &def->rules[i];
		g->rules[i].batch = o->db ? usher_tsdb_batch_new(o->db) : NULL;
		g->rules[i].last_eval_ms = USHER_TIME_UNSET;
	}
	g->scratch = usher_arena_new();
	pthread_mutex_init(&g->mu, NULL);
	g->stats.last_eval_ms = USHER_TIME_UNSET;
	return g;
}

void usher_group_free(struct usher_group *g, int64_t t)
{
	size_t i, j;

	if (!g)
		return;
	for (i = 0; i < g->def->nrules; i++) {
		struct rule_state *rs = &g->rules[i];

		usher_tsdb_batch_free(rs->batch, t);
		for (j = 0; j < rs->n; j++)
			entry_free(&rs->alerts[j]);
		free(rs->alerts);
		free(rs->last_error);
	}
	free(g->rules);
	free(g->ext);
	free(g->ext_url);
	usher_arena_free(g->scratch);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

const struct usher_rule_group *usher_group_def(const struct usher_group *g)
{
	return g->def;
}

int64_t usher_group_interval(const struct usher_group *g)
{
	return g->def->interval_ms > 0 ? g->def->interval_ms : g->o.default_interval_ms;
}

static int64_t query_offset(const struct usher_group *g)
{
	return g->def->has_query_offset ? g->def->query_offset_ms : g->o.default_query_offset_ms;
}

/* One sample of a rule's query result. */
struct qsample {
	struct usher_labels l;
	double v;
};

/* Runs a rule's query at t: a vector, or a scalar as one sample without
 * labels (Prometheus' EngineQueryFunc). */
static enum usher_err run_query(struct usher_group *g, const struct usher_promql_expr *e, int64_t t,
				struct usher_promql_result *res, struct qsample **out, size_t *n,
				struct usher_error *err)
{
	enum usher_err rc;
	size_t i;

	*out = NULL;
	*n = 0;
	rc = usher_promql_eval_instant_expr(g->o.engine, &g->o.storage, e, t, res, err);
	if (rc)
		return rc;
	if (res->type == USHER_PQ_TYPE_SCALAR) {
		*out = usher_arena_zalloc(g->scratch, sizeof(**out));
		(*out)[0].v = res->scalar;
		*n = 1;
		return USHER_OK;
	}
	if (res->type != USHER_PQ_TYPE_VECTOR)
		return usher_fail(err, USHER_ERR_INVALID, "rule result is not a vector or scalar");
	*out = usher_arena_alloc(g->scratch, (res->n ? res->n : 1) * sizeof(**out));
	for (i = 0; i < res->n; i++) {
		(*out)[i].l = res->vector[i].labels;
		(*out)[i].v = res->vector[i].v;
	}
	*n = res->n;
	return USHER_OK;
}

static int cmp_labels_qs(const void *a, const void *b)
{
	return usher_labels_cmp(&((const struct qsample *)a)->l, &((const struct qsample *)b)->l);
}

static void set_label(struct usher_arena *a, struct usher_labels *l, const char *name,
		      const char *value)
{
	struct usher_labels out;

	usher_labels_set(a, l, name, value, &out);
	*l = out;
}

static enum usher_err eval_recording(struct usher_group *g, struct rule_state *rs, int64_t qt,
				     struct usher_error *err)
{
	const struct usher_rule *r = rs->rule;
	struct usher_promql_result res = {0};
	struct qsample *v, *sorted;
	enum usher_err rc;
	size_t n, i, j;

	rc = run_query(g, r->expr, qt, &res, &v, &n, err);
	if (rc)
		goto out;
	for (i = 0; i < n; i++) {
		set_label(g->scratch, &v[i].l, USHER_METRIC_NAME_LABEL, r->name);
		for (j = 0; j < r->nlabels; j++)
			set_label(g->scratch, &v[i].l, r->labels[j].name, r->labels[j].value);
	}
	sorted = usher_arena_alloc(g->scratch, (n ? n : 1) * sizeof(*sorted));
	if (n)
		memcpy(sorted, v, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_labels_qs);
	for (i = 1; i < n; i++)
		if (usher_labels_equal(&sorted[i - 1].l, &sorted[i].l)) {
			rc = usher_fail(err, USHER_ERR_INVALID,
					"vector contains metrics with the same labelset after "
					"applying rule labels");
			goto out;
		}
	if (g->def->limit > 0 && (int64_t)n > g->def->limit) {
		rc = usher_fail(err, USHER_ERR_INVALID, "exceeded limit of %lld with %zu series",
				(long long)g->def->limit, n);
		goto out;
	}
	if (rs->batch) {
		size_t nrej = 0;
		struct usher_error ignore;

		for (i = 0; i < n; i++)
			usher_tsdb_batch_add(rs->batch, &v[i].l, qt, v[i].v);
		usher_error_clear(&ignore);
		(void)usher_tsdb_batch_commit(rs->batch, qt, &nrej, &ignore);
		g->stats.samples_rejected += nrej;
	}
out:
	usher_promql_result_free(&res);
	return rc;
}

/* The template `query` function: an instant query at the template's time. */
static enum usher_err template_query(void *ctx, const char *q, int64_t t, struct usher_arena *a,
				     struct usher_template_sample **out, size_t *n,
				     struct usher_error *err)
{
	struct usher_group *g = ctx;
	struct usher_promql_result res = {0};
	enum usher_err rc;
	size_t i;

	*out = NULL;
	*n = 0;
	rc = usher_promql_eval_instant(g->o.engine, &g->o.storage, q, t, &res, err);
	if (rc)
		return rc;
	if (res.type == USHER_PQ_TYPE_SCALAR) {
		*out = usher_arena_zalloc(a, sizeof(**out));
		(*out)[0].value = res.scalar;
		*n = 1;
	} else if (res.type == USHER_PQ_TYPE_VECTOR) {
		*out = usher_arena_zalloc(a, (res.n ? res.n : 1) * sizeof(**out));
		for (i = 0; i < res.n; i++) {
			usher_labels_copy(a, &res.vector[i].labels, &(*out)[i].labels);
			(*out)[i].value = res.vector[i].v;
		}
		*n = res.n;
	} else {
		rc = usher_fail(err, USHER_ERR_INVALID, "query result is not a vector or scalar");
	}
	usher_promql_result_free(&res);
	return rc;
}

/* An alert the current evaluation produced. */
struct cand {
	struct usher_labels labels, annotations;
	double value;
	uint64_t hash;
};

static int cmp_hash_labels(uint64_t ha, const struct usher_labels *la, uint64_t hb,
			   const struct usher_labels *lb)
{
	if (ha != hb)
		return ha < hb ? -1 : 1;
	return usher_labels_cmp(la, lb);
}

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *ca = a, *cb = b;

	return cmp_hash_labels(ca->hash, &ca->labels, cb->hash, &cb->labels);
}

/* Builds the alert for one sample: labels templated over the sample, the
 * sample's own labels minus __name__, alertname; annotations templated. */
static void make_cand(struct usher_group *g, const struct usher_rule *r, const struct qsample *s,
		      int64_t qt, struct cand *c)
{
	struct usher_template_data d;
	struct usher_label *ann;
	struct usher_labels l;
	size_t j, k = 0;

	memset(&d, 0, sizeof(d));
	d.labels = s->l;
	d.external_labels = g->o.external_labels;
	d.external_url = g->o.external_url;
	d.value = s->v;
	d.time_ms = qt;
	d.query = template_query;
	d.query_ctx = g;
	l = s->l;
	set_label(g->scratch, &l, USHER_METRIC_NAME_LABEL, NULL);
	for (j = 0; j < r->nlabels; j++) {
		const char *v = r->labels[j].tmpl
				    ? usher_template_expand_alert(r->labels[j].tmpl, &d, g->scratch)
				    : r->labels[j].value;

		set_label(g->scratch, &l, r->labels[j].name, v);
	}
	set_label(g->scratch, &l, "alertname", r->name);
	ann = usher_arena_alloc(g->scratch, (r->nannotations ? r->nannotations : 1) * sizeof(*ann));
	for (j = 0; j < r->nannotations; j++) {
		ann[k].name = r->annotations[j].name;
		ann[k].value =
		    r->annotations[j].tmpl
			? usher_template_expand_alert(r->annotations[j].tmpl, &d, g->scratch)
			: r->annotations[j].value;
		k++;
	}
	c->labels = l;
	c->annotations.n = k;
	c->annotations.v = ann;
	c->value = s->v;
	c->hash = usher_labels_hash(&l);
}

static void new_entry(struct alert_entry *e, const struct cand *c, int64_t ts)
{
	memset(e, 0, sizeof(*e));
	e->a.labels = pack(&c->labels);
	e->a.annotations = pack(&c->annotations);
	e->a.state = USHER_ALERT_PENDING;
	e->a.value = c->value;
	e->a.active_at = ts;
	e->a.fired_at = USHER_TIME_UNSET;
	e->a.resolved_at = USHER_TIME_UNSET;
	e->a.last_sent_at = USHER_TIME_UNSET;
	e->a.valid_until = USHER_TIME_UNSET;
	e->a.keep_firing_since = USHER_TIME_UNSET;
	e->hash = c->hash;
}

/* ALERTS{…, alertstate} 1 and ALERTS_FOR_STATE{…} active_at (seconds). */
static void alert_samples(struct usher_group *g, struct rule_state *rs, const struct alert_entry *e,
			  int64_t qt)
{
	struct usher_labels l = e->a.labels, f = e->a.labels;

	set_label(g->scratch, &l, USHER_METRIC_NAME_LABEL, "ALERTS");
	set_label(g->scratch, &l, "alertname", rs->rule->name);
	set_label(g->scratch, &l, "alertstate", usher_alert_state_name(e->a.state));
	usher_tsdb_batch_add(rs->batch, &l, qt, 1);
	set_label(g->scratch, &f, USHER_METRIC_NAME_LABEL, "ALERTS_FOR_STATE");
	set_label(g->scratch, &f, "alertname", rs->rule->name);
	/* Go's ActiveAt.Unix(): whole seconds, rounded down */
	usher_tsdb_batch_add(rs->batch, &f, qt,
			     (double)(e->a.active_at >= 0 ? e->a.active_at / 1000
							  : -((-e->a.active_at + 999) / 1000)));
}

static bool needs_sending(const struct usher_rule_alert *a, int64_t ts, int64_t resend)
{
	if (a->state == USHER_ALERT_PENDING)
		return false;
	if (a->last_sent_at == USHER_TIME_UNSET)
		return true;
	if (a->resolved_at != USHER_TIME_UNSET && a->resolved_at > a->last_sent_at)
		return true;
	return a->last_sent_at + resend < ts;
}

static void query_escape(struct usher_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~')
			(void)usher_buf_addc(b, (char)c);
		else if (c == ' ')
			(void)usher_buf_addc(b, '+');
		else
			(void)usher_buf_addf(b, "%%%02X", c);
	}
}

/* Prometheus' sendAlerts: what needs sending goes to the callback. */
static void send_alerts(struct usher_group *g, struct rule_state *rs, int64_t ts)
{
	int64_t delta = usher_group_interval(g) > g->o.resend_delay_ms ? usher_group_interval(g)
								       : g->o.resend_delay_ms;
	struct usher_alert *out = NULL;
	const char *url;
	struct usher_buf b;
	size_t i, j, n = 0;

	for (i = 0; i < rs->n; i++) {
		struct usher_rule_alert *a = &rs->alerts[i].a;

		if (!needs_sending(a, ts, g->o.resend_delay_ms))
			continue;
		a->last_sent_at = ts;
		a->valid_until = ts + 4 * delta;
		if (!g->o.send)
			continue;
		if (!out)
			out = usher_arena_alloc(g->scratch, rs->n * sizeof(*out));
		out[n].labels = a->labels;
		for (j = 0; j < g->o.external_labels.n; j++)
			if (!usher_labels_get(&a->labels, g->o.external_labels.v[j].name))
				set_label(g->scratch, &out[n].labels,
					  g->o.external_labels.v[j].name,
					  g->o.external_labels.v[j].value);
		out[n].annotations = a->annotations;
		out[n].starts_at_ms = a->fired_at;
		out[n].resolved = a->resolved_at != USHER_TIME_UNSET;
		out[n].ends_at_ms = out[n].resolved ? a->resolved_at : a->valid_until;
		out[n].generator_url = NULL;
		n++;
	}
	if (!n)
		return;
	usher_buf_init(&b, 1 << 20);
	(void)usher_buf_addstr(&b, g->o.external_url);
	(void)usher_buf_addstr(&b, "/graph?g0.expr=");
	query_escape(&b, rs->rule->expr_text);
	(void)usher_buf_addstr(&b, "&g0.tab=1");
	url = usher_arena_strdup(g->scratch, usher_buf_str(&b));
	usher_buf_free(&b);
	for (i = 0; i < n; i++)
		out[i].generator_url = url;
	g->o.send(g->o.send_ctx, g->def, rs->rule, out, n);
}

static enum usher_err eval_alerting(struct usher_group *g, struct rule_state *rs, int64_t ts,
				    int64_t qt, struct usher_error *err)
{
	const struct usher_rule *r = rs->rule;
	struct usher_promql_result res = {0};
	struct alert_entry *next = NULL;
	struct qsample *v;
	struct cand *c;
	size_t n, i, j, k, nn = 0, active_pending = 0;
	bool *in_result = NULL;
	enum usher_err rc;

	rc = run_query(g, r->expr, qt, &res, &v, &n, err);
	if (rc)
		goto out;
	c = usher_arena_alloc(g->scratch, (n ? n : 1) * sizeof(*c));
	for (i = 0; i < n; i++)
		make_cand(g, r, &v[i], qt, &c[i]);
	qsort(c, n, sizeof(*c), cmp_cand);
	for (i = 1; i < n; i++)
		if (c[i - 1].hash == c[i].hash &&
		    usher_labels_equal(&c[i - 1].labels, &c[i].labels)) {
			rc = usher_fail(err, USHER_ERR_INVALID,
					"vector contains metrics with the same labelset after "
					"applying alert labels");
			goto out;
		}
	/* merge the sorted candidates with the sorted active alerts */
	next = usher_malloc((rs->n + n ? rs->n + n : 1) * sizeof(*next));
	in_result = usher_calloc(rs->n + n ? rs->n + n : 1, sizeof(*in_result));
	pthread_mutex_lock(&g->mu);
	for (i = j = 0; i < rs->n || j < n;) {
		int cmp = i == rs->n ? 1
			  : j == n   ? -1
				     : cmp_hash_labels(rs->alerts[i].hash, &rs->alerts[i].a.labels,
						       c[j].hash, &c[j].labels);

		if (cmp < 0) {
			next[nn++] = rs->alerts[i++];
		} else if (cmp > 0) {
			new_entry(&next[nn], &c[j++], ts);
			in_result[nn++] = true;
		} else {
			struct alert_entry *e = &rs->alerts[i++];

			if (e->a.state != USHER_ALERT_INACTIVE) {
				/* the same alert: its value and annotations move on */
				e->a.value = c[j].value;
				unpack(&e->a.annotations);
				e->a.annotations = pack(&c[j].annotations);
				next[nn] = *e;
			} else {
				/* a resolved alert that comes back starts over */
				entry_free(e);
				new_entry(&next[nn], &c[j], ts);
			}
			j++;
			in_result[nn++] = true;
		}
	}
	/* the state machine, entry by entry; k compacts the kept ones */
	for (i = k = 0; i < nn; i++) {
		struct alert_entry *e = &next[i];
		bool keep_firing = false, drop = false;

		if (!in_result[i]) {
			if (e->a.state == USHER_ALERT_FIRING && r->keep_firing_for_ms > 0) {
				if (e->a.keep_firing_since == USHER_TIME_UNSET)
					e->a.keep_firing_since = ts;
				if (ts - e->a.keep_firing_since < r->keep_firing_for_ms)
					keep_firing = true;
			}
			/* pending alerts go at once, resolved ones after the retention */
			if (e->a.state == USHER_ALERT_PENDING ||
			    (e->a.resolved_at != USHER_TIME_UNSET &&
			     ts - e->a.resolved_at > g->o.resolved_retention_ms))
				drop = true;
			if (e->a.state != USHER_ALERT_INACTIVE && !keep_firing) {
				e->a.state = USHER_ALERT_INACTIVE;
				e->a.resolved_at = ts;
			}
			if (drop) {
				entry_free(e);
				continue;
			}
			next[k++] = *e;
			if (!keep_firing)
				continue;
		} else {
			e->a.keep_firing_since = USHER_TIME_UNSET;
			next[k++] = *e;
		}
		e = &next[k - 1];
		active_pending++;
		if (e->a.state == USHER_ALERT_PENDING && ts - e->a.active_at >= r->for_ms) {
			e->a.state = USHER_ALERT_FIRING;
			e->a.fired_at = ts;
		}
	}
	free(rs->alerts);
	rs->alerts = next;
	rs->n = k;
	rs->cap = rs->n + n ? rs->n + n : 1;
	next = NULL;
	if (g->def->limit > 0 && (int64_t)active_pending > g->def->limit) {
		/* Prometheus forgets every alert of the rule */
		for (i = 0; i < rs->n; i++)
			entry_free(&rs->alerts[i]);
		rs->n = 0;
		pthread_mutex_unlock(&g->mu);
		rc = usher_fail(err, USHER_ERR_INVALID, "exceeded limit of %lld with %zu alerts",
				(long long)g->def->limit, active_pending);
		goto out;
	}
	if (rs->batch) {
		size_t nrej = 0;
		struct usher_error ignore;

		for (i = 0; i < rs->n; i++)
			if (rs->alerts[i].a.state != USHER_ALERT_INACTIVE)
				alert_samples(g, rs, &rs->alerts[i], qt);
		usher_error_clear(&ignore);
		(void)usher_tsdb_batch_commit(rs->batch, qt, &nrej, &ignore);
		g->stats.samples_rejected += nrej;
	}
	pthread_mutex_unlock(&g->mu);
	send_alerts(g, rs, ts);
out:
	free(next);
	free(in_result);
	usher_promql_result_free(&res);
	return rc;
}

enum usher_err usher_group_eval(struct usher_group *g, int64_t ts, struct usher_error *err)
{
	int64_t start = usher_mono_ns(), qt = ts - query_offset(g);
	enum usher_err first = USHER_OK;
	size_t i;

	for (i = 0; i < g->def->nrules; i++) {
		struct rule_state *rs = &g->rules[i];
		int64_t rstart = usher_mono_ns();
		struct usher_error e;
		enum usher_err rc;

		usher_error_clear(&e);
		usher_arena_reset(g->scratch);
		if (!rs->rule->expr)
			rc = usher_fail(&e, USHER_ERR_INVALID, "rule has no parsed expression");
		else if (rs->rule->type == USHER_RULE_RECORDING)
			rc = eval_recording(g, rs, qt, &e);
		else
			rc = eval_alerting(g, rs, ts, qt, &e);
		pthread_mutex_lock(&g->mu);
		free(rs->last_error);
		rs->last_error = rc ? usher_strdup(usher_error_msg(&e, rc)) : NULL;
		rs->last_eval_ms = ts;
		rs->last_duration_ns = usher_mono_ns() - rstart;
		rs->evaluated = true;
		g->stats.rule_evaluations++;
		if (rc)
			g->stats.rule_failures++;
		pthread_mutex_unlock(&g->mu);
		if (rc && !first) {
			first = rc;
			usher_fail(err, rc, "rule %s: %s", rs->rule->name, usher_error_msg(&e, rc));
		}
	}
	usher_arena_reset(g->scratch);
	pthread_mutex_lock(&g->mu);
	g->stats.evaluations++;
	g->stats.last_eval_ms = ts;
	g->stats.last_duration_ns = usher_mono_ns() - start;
	pthread_mutex_unlock(&g->mu);
	return first;
}

void usher_group_stats(const struct usher_group *g, struct usher_group_stats *st)
{
	struct usher_group *mg = (struct usher_group *)g;

	pthread_mutex_lock(&mg->mu);
	*st = g->stats;
	pthread_mutex_unlock(&mg->mu);
}

void usher_group_rule_status(const struct usher_group *g, size_t i, struct usher_arena *a,
			     struct usher_rule_status *out)
{
	struct usher_group *mg = (struct usher_group *)g;
	const struct rule_state *rs = &g->rules[i];

	pthread_mutex_lock(&mg->mu);
	out->rule = rs->rule;
	out->health = !rs->evaluated ? "unknown" : rs->last_error ? "err" : "ok";
	out->last_error = usher_arena_strdup(a, rs->last_error ? rs->last_error : "");
	out->last_eval_ms = rs->last_eval_ms;
	out->last_duration_ns = rs->last_duration_ns;
	out->nalerts = rs->n;
	pthread_mutex_unlock(&mg->mu);
}

static int cmp_rule_alert(const void *a, const void *b)
{
	return usher_labels_cmp(&((const struct usher_rule_alert *)a)->labels,
				&((const struct usher_rule_alert *)b)->labels);
}

size_t usher_group_alerts(const struct usher_group *g, size_t i, struct usher_arena *a,
			  struct usher_rule_alert **out)
{
	struct usher_group *mg = (struct usher_group *)g;
	const struct rule_state *rs = &g->rules[i];
	size_t j, n;

	pthread_mutex_lock(&mg->mu);
	n = rs->n;
	*out = usher_arena_alloc(a, (n ? n : 1) * sizeof(**out));
	for (j = 0; j < n; j++) {
		(*out)[j] = rs->alerts[j].a;
		usher_labels_copy(a, &rs->alerts[j].a.labels, &(*out)[j].labels);
		usher_labels_copy(a, &rs->alerts[j].a.annotations, &(*out)[j].annotations);
	}
	pthread_mutex_unlock(&mg->mu);
	qsort(*out, n, sizeof(**out), cmp_rule_alert);
	return n;
}

enum usher_err usher_group_restore_alert(struct usher_group *g, size_t i,
					 const struct usher_rule_alert *a)
{
	struct rule_state *rs;
	struct alert_entry e;
	size_t j;

	if (i >= g->def->nrules || g->rules[i].rule->type != USHER_RULE_ALERTING)
		return USHER_ERR_INVALID;
	rs = &g->rules[i];
	e.a = *a;
	e.a.labels = pack(&a->labels);
	e.a.annotations = pack(&a->annotations);
	e.hash = usher_labels_hash(&e.a.labels);
	pthread_mutex_lock(&g->mu);
	for (j = 0; j < rs->n; j++) {
		int c = cmp_hash_labels(rs->alerts[j].hash, &rs->alerts[j].a.labels, e.hash,
					&e.a.labels);

		if (c == 0) {
			entry_free(&rs->alerts[j]);
			rs->alerts[j] = e;
			pthread_mutex_unlock(&g->mu);
			return USHER_OK;
		}
		if (c > 0)
			break;
	}
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 8;
		rs->alerts = usher_realloc(rs->alerts, rs->cap * sizeof(*rs->alerts));
	}
	memmove(&rs->alerts[j + 1], &rs->alerts[j], (rs->n - j) * sizeof(*rs->alerts));
	rs->alerts[j] = e;
	rs->n++;
	pthread_mutex_unlock(&g->mu);
	return USHER_OK;
}
