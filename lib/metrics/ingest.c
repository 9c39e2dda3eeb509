/* Parsed exposition input into a sample set: family mapping onto the
 * registry's types, honor_labels merging, family conflicts and duplicate
 * series, all decided before anything is added (see ingest.h). */
#include "metrics/ingest.h"

#include <stdio.h>
#include <string.h>

#include "metrics/seriesset.h"

/* A family known to this ingest, by name (see family_desc). */
struct fam {
	struct fam *next;
	const char *key;
	const struct usher_metric_desc *desc;
	const char *help; /* as the input gave it; NULL when it had none */
	const char *source;
};

struct pending {
	const struct usher_metric_desc *desc;
	enum usher_series_suffix suffix;
	double value;
	const char **pairs;
};

struct usher_ingest {
	struct usher_sample_set *set;
	struct usher_arena *a;
	struct usher_ingest_opts o;
	struct usher_seriesset *seen;
	struct fam **buckets;
	size_t nbuckets, nfams;
	struct pending *pend;
	size_t npend, cappend, committed;
	uint64_t *hashes;
	size_t nhashes, caphashes;
};

/* Where one sample of a parsed family goes. */
struct target {
	const char *name; /* registry family name (counters without _total) */
	enum usher_metric_type type;
	enum usher_series_suffix suffix;
	int slot; /* 0, or 1 and 2 for a gauge histogram's _gsum and _gcount */
};

static const char *suffix_names[] = {"", "_bucket", "_sum", "_count"};

struct usher_ingest *usher_ingest_new(struct usher_sample_set *set, struct usher_arena *a,
				      const struct usher_ingest_opts *opts)
{
	struct usher_ingest *ing = usher_arena_zalloc(a, sizeof(*ing));

	ing->set = set;
	ing->a = a;
	if (opts)
		ing->o = *opts;
	ing->seen = usher_seriesset_new(a);
	ing->nbuckets = 64;
	ing->buckets = usher_arena_zalloc(a, ing->nbuckets * sizeof(*ing->buckets));
	return ing;
}

static size_t key_hash(const char *s)
{
	size_t h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static struct fam *fam_get(const struct usher_ingest *ing, const char *key)
{
	struct fam *f;

	for (f = ing->buckets[key_hash(key) & (ing->nbuckets - 1)]; f; f = f->next)
		if (strcmp(f->key, key) == 0)
			return f;
	return NULL;
}

static void fam_put(struct usher_ingest *ing, struct fam *f)
{
	size_t i;

	if (ing->nfams + 1 > ing->nbuckets) {
		size_t n = ing->nbuckets * 2;
		struct fam **b = usher_arena_zalloc(ing->a, n * sizeof(*b));

		for (i = 0; i < ing->nbuckets; i++) {
			struct fam *e = ing->buckets[i], *next;

			for (; e; e = next) {
				next = e->next;
				e->next = b[key_hash(e->key) & (n - 1)];
				b[key_hash(e->key) & (n - 1)] = e;
			}
		}
		ing->buckets = b;
		ing->nbuckets = n;
	}
	i = key_hash(f->key) & (ing->nbuckets - 1);
	f->next = ing->buckets[i];
	ing->buckets[i] = f;
	ing->nfams++;
}

/* The registry family, type and series of a sample of f with suffix s;
 * false for what is left out (OpenMetrics _created). 0.0.4 counters are
 * named x_total; one without that suffix cannot be a registry counter
 * (which always prints _total) and keeps its name as untyped. OpenMetrics
 * types 0.0.4 lacks map as Prometheus stores them: info as a gauge
 * x_info, stateset as a gauge, a gauge histogram as its three series. */
static bool map_sample(struct usher_arena *a, const struct usher_tp_family *f,
		       enum usher_tp_format fmt, enum usher_tp_suffix s, struct target *t)
{
	size_t n = strlen(f->name);

	memset(t, 0, sizeof(*t));
	t->name = f->name;
	if (s == USHER_TP_SUF_CREATED)
		return false;
	switch (f->type) {
	case USHER_TP_COUNTER:
		if (fmt == USHER_TP_OPENMETRICS) {
			t->type = USHER_METRIC_COUNTER;
		} else if (n > 6 && strcmp(f->name + n - 6, "_total") == 0) {
			t->name = usher_arena_strndup(a, f->name, n - 6);
			t->type = USHER_METRIC_COUNTER;
		} else {
			t->type = USHER_METRIC_UNTYPED;
		}
		return true;
	case USHER_TP_GAUGE:
	case USHER_TP_STATESET: t->type = USHER_METRIC_GAUGE; return true;
	case USHER_TP_UNTYPED: t->type = USHER_METRIC_UNTYPED; return true;
	case USHER_TP_INFO:
		t->name = usher_arena_printf(a, "%s_info", f->name);
		t->type = USHER_METRIC_GAUGE;
		return true;
	case USHER_TP_HISTOGRAM:
	case USHER_TP_SUMMARY:
		t->type =
		    f->type == USHER_TP_HISTOGRAM ? USHER_METRIC_HISTOGRAM : USHER_METRIC_SUMMARY;
		t->suffix = s == USHER_TP_SUF_BUCKET  ? USHER_SUFFIX_BUCKET
			    : s == USHER_TP_SUF_SUM   ? USHER_SUFFIX_SUM
			    : s == USHER_TP_SUF_COUNT ? USHER_SUFFIX_COUNT
						      : USHER_SUFFIX_NONE;
		return true;
	case USHER_TP_GAUGEHISTOGRAM:
		t->type = USHER_METRIC_UNTYPED;
		t->slot = s == USHER_TP_SUF_GSUM ? 1 : s == USHER_TP_SUF_GCOUNT ? 2 : 0;
		t->name = usher_arena_printf(a, "%s%s", f->name,
					     s == USHER_TP_SUF_GSUM     ? "_gsum"
					     : s == USHER_TP_SUF_GCOUNT ? "_gcount"
									: "_bucket");
		return true;
	}
	return false;
}

static const char *type_word(enum usher_metric_type t)
{
	switch (t) {
	case USHER_METRIC_GAUGE: return "gauge";
	case USHER_METRIC_COUNTER: return "counter";
	case USHER_METRIC_HISTOGRAM: return "histogram";
	case USHER_METRIC_SUMMARY: return "summary";
	case USHER_METRIC_UNTYPED: break;
	}
	return "untyped";
}

/* The desc for t, creating the family on first sight; NULL when it
 * disagrees with the family of that name seen first (which wins, as in
 * node_exporter's textfile collector). A family is known by its registry
 * name and, for a counter, also by the x_total it prints as: both must
 * stay one family, or the render would show two # TYPE lines. */
static const struct usher_metric_desc *family_desc(struct usher_ingest *ing, const struct target *t,
						   const char *help, const char *source,
						   const char *default_help,
						   struct usher_ingest_stats *st)
{
	const char *alias = t->type == USHER_METRIC_COUNTER
				? usher_arena_printf(ing->a, "%s_total", t->name)
				: NULL;
	struct fam *f = fam_get(ing, t->name), *g;

	if (!f && alias)
		f = fam_get(ing, alias);
	if (f) {
		bool type_differs = f->desc->type != t->type;

		if (!type_differs && !(f->help && help && strcmp(f->help, help) != 0))
			return f->desc;
		st->conflicts++;
		if (!st->conflict[0]) {
			if (type_differs)
				snprintf(st->conflict, sizeof(st->conflict),
					 "%s in %s has type %s, but %s made it %s: left out",
					 alias ? alias : t->name, source ? source : "the input",
					 type_word(t->type),
					 f->source ? f->source : "an earlier input",
					 type_word(f->desc->type));
			else
				snprintf(st->conflict, sizeof(st->conflict),
					 "%s in %s has other help text than in %s: left out",
					 alias ? alias : t->name, source ? source : "the input",
					 f->source ? f->source : "an earlier input");
		}
		return NULL;
	}
	f = usher_arena_zalloc(ing->a, sizeof(*f));
	f->key = t->name;
	f->help = help;
	f->source = source ? usher_arena_strdup(ing->a, source) : NULL;
	f->desc = usher_sample_set_desc(ing->set, t->name, t->type, help ? help : default_help);
	fam_put(ing, f);
	if (alias) {
		g = usher_arena_alloc(ing->a, sizeof(*g));
		*g = *f;
		g->key = alias;
		fam_put(ing, g);
	}
	return f->desc;
}

static bool has_label(const char *const *pairs, const char *name, bool nonempty)
{
	size_t i;

	for (i = 0; pairs && pairs[i]; i += 2)
		if (strcmp(pairs[i], name) == 0 && (!nonempty || (pairs[i + 1] && *pairs[i + 1])))
			return true;
	return false;
}

/* The sample's whole label set: the target's labels and its own (empty
 * values dropped, as Prometheus does), merged as honor_labels says. */
static const char **merge(struct usher_ingest *ing, const char *const *own)
{
	const char *const *tg = ing->o.target;
	size_t n = 1, k = 0, i;
	const char **out;

	for (i = 0; tg && tg[i]; i += 2)
		n += 2;
	for (i = 0; own && own[i]; i += 2)
		n += 2;
	out = usher_arena_alloc(ing->a, n * sizeof(*out));
	for (i = 0; tg && tg[i]; i += 2) {
		if (!tg[i + 1] || !*tg[i + 1])
			continue;
		if (ing->o.honor_labels && has_label(own, tg[i], true))
			continue;
		out[k++] = tg[i];
		out[k++] = tg[i + 1];
	}
	for (i = 0; own && own[i]; i += 2) {
		const char *name = own[i];

		if (!own[i + 1] || !*own[i + 1])
			continue;
		if (!ing->o.honor_labels && has_label(tg, name, true)) {
			/* Prometheus keeps the clashing label as exported_<name>,
			 * prefixing again while that name is taken too */
			do
				name = usher_arena_printf(ing->a, "exported_%s", name);
			while (has_label(own, name, false) || has_label(tg, name, false));
		}
		out[k++] = name;
		out[k++] = own[i + 1];
	}
	out[k] = NULL;
	return out;
}

static const char *series_name(struct usher_ingest *ing, const struct usher_metric_desc *d,
			       enum usher_series_suffix s)
{
	if (d->type == USHER_METRIC_COUNTER)
		return usher_arena_printf(ing->a, "%s_total", d->name);
	if (s == USHER_SUFFIX_NONE)
		return d->name;
	return usher_arena_printf(ing->a, "%s%s", d->name, suffix_names[s]);
}

void usher_ingest_reserve(struct usher_ingest *ing, const char *name, const char *const *pairs)
{
	usher_seriesset_add(ing->seen, name, pairs, 0, NULL, NULL);
}

static void push(struct usher_ingest *ing, const struct usher_metric_desc *d,
		 enum usher_series_suffix s, double v, const char **pairs, uint64_t h)
{
	if (ing->npend == ing->cappend) {
		size_t cap = ing->cappend ? ing->cappend * 2 : 64;
		struct pending *p = usher_arena_alloc(ing->a, cap * sizeof(*p));

		if (ing->npend)
			memcpy(p, ing->pend, ing->npend * sizeof(*p));
		ing->pend = p;
		ing->cappend = cap;
	}
	if (ing->nhashes == ing->caphashes) {
		size_t cap = ing->caphashes ? ing->caphashes * 2 : 64;
		uint64_t *hs = usher_arena_alloc(ing->a, cap * sizeof(*hs));

		if (ing->nhashes)
			memcpy(hs, ing->hashes, ing->nhashes * sizeof(*hs));
		ing->hashes = hs;
		ing->caphashes = cap;
	}
	ing->pend[ing->npend].desc = d;
	ing->pend[ing->npend].suffix = s;
	ing->pend[ing->npend].value = v;
	ing->pend[ing->npend].pairs = pairs;
	ing->npend++;
	ing->hashes[ing->nhashes++] = h;
}

/* Per parsed family, per slot: not looked at yet, its desc, or left out. */
struct famstate {
	const struct usher_metric_desc *desc[3];
	bool decided[3];
};

void usher_ingest_declare(struct usher_ingest *ing, const struct usher_metric_desc *d)
{
	struct fam *f = usher_arena_zalloc(ing->a, sizeof(*f)), *g;

	/* by type only: input may word the help differently */
	f->key = d->name;
	f->desc = d;
	f->source = "usherd itself";
	fam_put(ing, f);
	if (d->type == USHER_METRIC_COUNTER) {
		g = usher_arena_alloc(ing->a, sizeof(*g));
		*g = *f;
		g->key = usher_arena_printf(ing->a, "%s_total", d->name);
		fam_put(ing, g);
	}
}

void usher_ingest_add(struct usher_ingest *ing, const struct usher_tp_result *r,
		      enum usher_tp_format fmt, const char *source, const char *default_help,
		      struct usher_ingest_stats *st)
{
	struct famstate *fs =
	    usher_arena_zalloc(ing->a, (r->nfamilies ? r->nfamilies : 1) * sizeof(*fs));
	size_t i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < r->nsamples; i++) {
		const struct usher_tp_sample *s = &r->samples[i];
		const struct usher_tp_family *f = &r->families[s->family];
		struct famstate *state = &fs[s->family];
		struct target t;
		const char **pairs;
		uint64_t h;

		if (!map_sample(ing->a, f, fmt, s->suffix, &t)) {
			st->created++;
			continue;
		}
		if (!state->decided[t.slot]) {
			state->decided[t.slot] = true;
			state->desc[t.slot] =
			    family_desc(ing, &t, f->help, source, default_help, st);
		}
		if (!state->desc[t.slot])
			continue;
		pairs = merge(ing, s->labels);
		if (!usher_seriesset_add(ing->seen, series_name(ing, state->desc[t.slot], t.suffix),
					 pairs, 0, NULL, &h)) {
			st->duplicates++;
			continue;
		}
		push(ing, state->desc[t.slot], t.suffix, s->value, pairs, h);
	}
	st->samples = ing->npend - ing->committed;
}

void usher_ingest_commit(struct usher_ingest *ing)
{
	size_t i;

	for (i = ing->committed; i < ing->npend; i++)
		usher_sample_add_series(ing->set, ing->pend[i].desc, ing->pend[i].suffix,
					ing->pend[i].value, ing->pend[i].pairs);
	ing->committed = ing->npend;
}

const uint64_t *usher_ingest_series(const struct usher_ingest *ing, size_t *n)
{
	*n = ing->nhashes;
	return ing->hashes;
}
