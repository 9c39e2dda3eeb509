/* The metric registry (published sample sets and collectors) and the writer
 * of the Prometheus text 0.0.4 and OpenMetrics 1.0 exposition formats.
 *
 * A sample set is immutable once published and reference-counted: render
 * takes the registry lock only to take a reference on every current set
 * (and to copy the collector list), then groups, sorts and formats without
 * it, so a producer publishing a new set never waits for a slow render and
 * a set replaced mid-render lives until that render drops it. Label strings
 * and value texts are rendered once, when a sample is added, so a render is
 * mostly a sort of runs of samples plus memcpy. */
#include "metrics/registry.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/arena.h"
#include "core/mem.h"

#define MAX_PAIRS      32   /* extra label pairs per usher_sample_add call */
#define CHUNK_FIRST    16   /* samples in a set's first chunk */
#define CHUNK_MAX      512  /* chunks double up to this many samples */
#define LINE_MAX_STACK 1024 /* sample lines shorter than this take one copy */

/* What is appended to the family name to make a sample's series name; the
 * same order as enum usher_series_suffix. */
enum suffix { SUF_NONE, SUF_BUCKET, SUF_SUM, SUF_COUNT };
_Static_assert((int)SUF_COUNT == (int)USHER_SUFFIX_COUNT, "suffix enums must agree");

static const struct {
	const char *s;
	size_t len;
} suffixes[] = {
    [SUF_NONE] = {"", 0},
    [SUF_BUCKET] = {"_bucket", 7},
    [SUF_SUM] = {"_sum", 4},
    [SUF_COUNT] = {"_count", 6},
};

/* One sample, with everything the writer needs already rendered. */
struct sample {
	const struct usher_metric_desc *desc;
	const char *labels; /* escaped pairs without braces; "" when none */
	const char *text;   /* the value as usher_expo_format_value writes it */
	double value;
	uint32_t labels_len;
	uint8_t text_len;
	uint8_t suffix; /* enum suffix */
};

struct chunk {
	struct chunk *next;
	size_t n, cap;
	struct sample s[];
};

/* Invariant: everything hangs off arena, or, once compacted at publish
 * (arena NULL), off the set's own allocation; refs counts the holders (the
 * producer until it publishes, then the registry and renders in flight). */
struct usher_sample_set {
	struct usher_arena *arena;
	atomic_uint refs;
	bool own_descs; /* some descs live in the arena (usher_sample_set_desc) */
	const char *base; /* escaped base labels, "" when none */
	size_t base_len;
	struct chunk *head, *tail;
	size_t count;
};

struct entry {
	const void *owner;
	struct usher_sample_set *set;
};

struct collector {
	usher_collector_fn *fn;
	void *arg;
};

/* Invariant: entries keep first-publish order, which is the order of
 * producers within a family. lock guards both arrays. */
struct usher_registry {
	pthread_mutex_t lock;
	struct entry *entries;
	size_t nentries, capentries;
	struct collector *collectors;
	size_t ncollectors, capcollectors;
	struct usher_registry_observer observer;
};

/* --- escaping and names ------------------------------------------------ */

/* The length of the valid UTF-8 sequence at p (1 to 4), or 0 when p does
 * not start one. p is NUL-terminated, so reading ahead stops at the NUL. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;

		if (p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;

		if (p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD for bytes that are not UTF-8 */

/* Escapes src into dst (when dst is not NULL) and returns the escaped
 * length: backslash and newline always, the double quote when quote is set.
 * Invalid UTF-8 becomes U+FFFD, since the parsers reject it. */
static size_t escape(char *dst, const char *src, bool quote)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t n = 0, l;

	while (*p) {
		const char *rep = NULL;

		if (*p == '\\')
			rep = "\\\\";
		else if (*p == '\n')
			rep = "\\n";
		else if (*p == '"' && quote)
			rep = "\\\"";
		if (rep) {
			if (dst) {
				dst[n] = rep[0];
				dst[n + 1] = rep[1];
			}
			n += 2;
			p++;
			continue;
		}
		l = utf8_len(p);
		if (l == 0) {
			if (dst)
				memcpy(dst + n, REPLACEMENT, 3);
			n += 3;
			p++;
			continue;
		}
		if (dst)
			memcpy(dst + n, p, l);
		n += l;
		p += l;
	}
	return n;
}

static enum usher_err escape_to_buf(struct usher_buf *b, const char *v, bool quote)
{
	size_t n = escape(NULL, v, quote);
	char stack[256], *tmp = n <= sizeof(stack) ? stack : usher_malloc(n);
	enum usher_err rc;

	escape(tmp, v, quote);
	rc = usher_buf_add(b, tmp, n);
	if (tmp != stack)
		free(tmp);
	return rc;
}

enum usher_err usher_expo_escape_label(struct usher_buf *b, const char *v)
{
	return escape_to_buf(b, v, true);
}

enum usher_err usher_expo_escape_help(struct usher_buf *b, const char *v,
				      enum usher_expo_format fmt)
{
	return escape_to_buf(b, v, fmt == USHER_EXPO_OPENMETRICS);
}

static bool name_valid(const char *name, bool colon)
{
	const char *p = name;

	if (!name || !*name)
		return false;
	for (; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon && c == ':') || (p != name && c >= '0' && c <= '9');

		if (!ok)
			return false;
	}
	return true;
}

bool usher_metric_name_valid(const char *name)
{
	return name_valid(name, true);
}

bool usher_label_name_valid(const char *name)
{
	return name_valid(name, false);
}

/* --- values -------------------------------------------------------------- */

static size_t format_int(char *out, int64_t v)
{
	char tmp[24];
	size_t n = 0, i = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		out[i++] = '-';
	while (n)
		out[i++] = tmp[--n];
	out[i] = '\0';
	return i;
}

void usher_expo_format_value(double v, char *out, size_t len)
{
	int prec;

	assert(len >= 32);
	if (isnan(v)) {
		snprintf(out, len, "%s", "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, len, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		snprintf(out, len, "%s", signbit(v) ? "-0" : "0");
		return;
	}
	/* integers print whole (1000000, not %g's 1e+06) while exact */
	if (fabs(v) < 1e15 && v == trunc(v)) {
		format_int(out, (int64_t)v);
		return;
	}
	for (prec = 15; prec < 17; prec++) {
		snprintf(out, len, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
	snprintf(out, len, "%.17g", v);
}

/* --- sample sets --------------------------------------------------------- */

/* The escaped length of pairs appended to a label string of length base. */
static size_t pairs_len(size_t base, const char *const *pairs, const char *le)
{
	size_t n = base, i;

	for (i = 0; pairs && pairs[i]; i += 2) {
		assert(usher_label_name_valid(pairs[i]));
		n += (n ? 1 : 0) + strlen(pairs[i]) + 3 +
		     escape(NULL, pairs[i + 1] ? pairs[i + 1] : "", true);
	}
	if (le)
		n += (n ? 1 : 0) + 5 + strlen(le);
	return n;
}

/* Writes prefix, then pairs as name="value", then le="…", comma-separated,
 * into the set's arena. */
static const char *labels_render(struct usher_sample_set *s, const char *prefix, size_t prefix_len,
				 const char *const *pairs, const char *le, uint32_t *len)
{
	size_t n = pairs_len(prefix_len, pairs, le), off = prefix_len, l, i;
	char *p;

	assert(n < UINT32_MAX);
	*len = (uint32_t)n;
	if (n == prefix_len)
		return prefix;
	p = usher_arena_alloc(s->arena, n + 1);
	memcpy(p, prefix, prefix_len);
	for (i = 0; pairs && pairs[i]; i += 2) {
		if (off)
			p[off++] = ',';
		l = strlen(pairs[i]);
		memcpy(p + off, pairs[i], l);
		off += l;
		p[off++] = '=';
		p[off++] = '"';
		off += escape(p + off, pairs[i + 1] ? pairs[i + 1] : "", true);
		p[off++] = '"';
	}
	if (le) {
		if (off)
			p[off++] = ',';
		memcpy(p + off, "le=\"", 4);
		off += 4;
		l = strlen(le);
		memcpy(p + off, le, l);
		off += l;
		p[off++] = '"';
	}
	assert(off == n);
	p[off] = '\0';
	return p;
}

static struct sample *sample_push(struct usher_sample_set *s)
{
	struct chunk *c = s->tail;

	if (!c || c->n == c->cap) {
		size_t cap = c ? c->cap * 2 : CHUNK_FIRST;

		if (cap > CHUNK_MAX)
			cap = CHUNK_MAX;
		c = usher_arena_alloc(s->arena, sizeof(*c) + cap * sizeof(c->s[0]));
		c->next = NULL;
		c->n = 0;
		c->cap = cap;
		if (s->tail)
			s->tail->next = c;
		else
			s->head = c;
		s->tail = c;
	}
	s->count++;
	return &c->s[c->n++];
}

static void sample_put(struct usher_sample_set *s, const struct usher_metric_desc *desc,
		       enum suffix suf, const char *labels, uint32_t labels_len, double value)
{
	struct sample *sm = sample_push(s);
	char text[32];
	size_t n;

	usher_expo_format_value(value, text, sizeof(text));
	n = strlen(text);
	sm->desc = desc;
	sm->labels = labels;
	sm->labels_len = labels_len;
	sm->text = usher_arena_strndup(s->arena, text, n);
	sm->text_len = (uint8_t)n;
	sm->value = value;
	sm->suffix = (uint8_t)suf;
}

struct usher_sample_set *usher_sample_set_new(const char *const *base_pairs)
{
	struct usher_sample_set *s = usher_calloc(1, sizeof(*s));
	uint32_t len;

	s->arena = usher_arena_new();
	atomic_init(&s->refs, 1);
	s->base = labels_render(s, "", 0, base_pairs, NULL, &len);
	s->base_len = len;
	return s;
}

/* Collects NULL-terminated name/value varargs into pairs (2 * MAX_PAIRS + 1). */
static void collect_pairs(const char **pairs, const char *first, va_list ap)
{
	size_t n = 0;
	const char *name = first;

	while (name) {
		assert(n < 2 * MAX_PAIRS);
		pairs[n++] = name;
		pairs[n++] = va_arg(ap, const char *);
		name = va_arg(ap, const char *);
	}
	pairs[n] = NULL;
}

struct usher_sample_set *usher_sample_set_newv(const char *first, ...)
{
	const char *pairs[2 * MAX_PAIRS + 1];
	va_list ap;

	va_start(ap, first);
	collect_pairs(pairs, first, ap);
	va_end(ap);
	return usher_sample_set_new(pairs);
}

void usher_sample_set_free(struct usher_sample_set *s)
{
	if (!s)
		return;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	usher_arena_free(s->arena); /* NULL for a compacted set: one allocation */
	free(s);
}

size_t usher_sample_set_count(const struct usher_sample_set *s)
{
	return s ? s->count : 0;
}

void usher_sample_addv(struct usher_sample_set *s, const struct usher_metric_desc *desc,
		       double value, const char *const *pairs)
{
	const char *labels;
	uint32_t len;

	assert(desc && usher_metric_name_valid(desc->name));
	assert(desc->type != USHER_METRIC_HISTOGRAM);
	labels = labels_render(s, s->base, s->base_len, pairs, NULL, &len);
	sample_put(s, desc, SUF_NONE, labels, len, value);
}

void usher_sample_add(struct usher_sample_set *s, const struct usher_metric_desc *desc,
		      double value, ...)
{
	const char *pairs[2 * MAX_PAIRS + 1];
	va_list ap;

	va_start(ap, value);
	collect_pairs(pairs, va_arg(ap, const char *), ap);
	va_end(ap);
	usher_sample_addv(s, desc, value, pairs);
}

void usher_sample_add_histogram(struct usher_sample_set *s, const struct usher_metric_desc *desc,
				const struct usher_histogram *h, const char *const *pairs)
{
	const char *common, *labels;
	uint32_t common_len, len;
	char le[32];
	size_t i;
	bool inf = false;

	assert(desc && usher_metric_name_valid(desc->name));
	assert(desc->type == USHER_METRIC_HISTOGRAM);
	common = labels_render(s, s->base, s->base_len, pairs, NULL, &common_len);
	for (i = 0; i < h->nbuckets; i++) {
		usher_expo_format_value(h->bounds[i], le, sizeof(le));
		labels = labels_render(s, common, common_len, NULL, le, &len);
		sample_put(s, desc, SUF_BUCKET, labels, len, (double)h->counts[i]);
		inf = isinf(h->bounds[i]) && h->bounds[i] > 0;
	}
	if (!inf) {
		labels = labels_render(s, common, common_len, NULL, "+Inf", &len);
		sample_put(s, desc, SUF_BUCKET, labels, len, (double)h->count);
	}
	sample_put(s, desc, SUF_SUM, common, common_len, h->sum);
	sample_put(s, desc, SUF_COUNT, common, common_len, (double)h->count);
}

const struct usher_metric_desc *usher_sample_set_desc(struct usher_sample_set *s, const char *name,
						      enum usher_metric_type type, const char *help)
{
	struct usher_metric_desc *d = usher_arena_alloc(s->arena, sizeof(*d));

	assert(usher_metric_name_valid(name));
	s->own_descs = true;
	d->name = usher_arena_strdup(s->arena, name);
	d->type = type;
	d->help = help ? usher_arena_strdup(s->arena, help) : NULL;
	return d;
}

void usher_sample_add_series(struct usher_sample_set *s, const struct usher_metric_desc *desc,
			     enum usher_series_suffix suffix, double value,
			     const char *const *pairs)
{
	const char *labels;
	uint32_t len;

	assert(desc && usher_metric_name_valid(desc->name));
	assert(suffix <= USHER_SUFFIX_COUNT);
	labels = labels_render(s, "", 0, pairs, NULL, &len);
	sample_put(s, desc, (enum suffix)suffix, labels, len, value);
}

void usher_histogram_observe(struct usher_histogram *h, double v)
{
	size_t i;

	/* cumulative: every bucket whose bound v is under counts it; a NaN
	 * lands in +Inf only, as in the Go client */
	for (i = h->nbuckets; i > 0 && v <= h->bounds[i - 1]; i--)
		h->counts[i - 1]++;
	h->count++;
	h->sum += v;
}

/* --- reading a set back (the series store) ------------------------------ */

#define VISIT_MAX_PAIRS 64

/* Unescapes the rendered pairs `a="x",b="y\\n"` of one sample into buf,
 * filling pairs; returns false when they do not fit. */
static bool labels_parse(const char *p, size_t len, char *buf, size_t cap, const char **pairs,
			 size_t maxpairs)
{
	const char *end = p + len;
	size_t o = 0, n = 0;

	while (p < end) {
		if (n + 3 > maxpairs)
			return false;
		pairs[n++] = buf + o;
		while (p < end && *p != '=') {
			if (o + 1 >= cap)
				return false;
			buf[o++] = *p++;
		}
		buf[o++] = '\0';
		if (end - p < 2 || p[1] != '"')
			return false;
		p += 2;
		pairs[n++] = buf + o;
		while (p < end && *p != '"') {
			char c = *p++;

			if (c == '\\' && p < end) {
				c = *p++;
				if (c == 'n')
					c = '\n';
			}
			if (o + 1 >= cap)
				return false;
			buf[o++] = c;
		}
		if (o >= cap)
			return false;
		buf[o++] = '\0';
		p++; /* the closing quote */
		if (p < end && *p == ',')
			p++;
	}
	pairs[n] = NULL;
	return true;
}

void usher_sample_set_foreach(const struct usher_sample_set *s, usher_sample_visit_fn *fn,
			      void *arg)
{
	const struct chunk *c;
	const char *pairs[2 * VISIT_MAX_PAIRS + 1];
	char name[256], stackbuf[2048];
	size_t i;

	for (c = s->head; c; c = c->next) {
		for (i = 0; i < c->n; i++) {
			const struct sample *sm = &c->s[i];
			const char *suffix = sm->desc->type == USHER_METRIC_COUNTER
						     ? "_total"
						     : suffixes[sm->suffix].s;
			char *buf = stackbuf;
			size_t cap = sizeof(stackbuf);
			bool ok;

			if ((size_t)snprintf(name, sizeof(name), "%s%s", sm->desc->name, suffix) >=
			    sizeof(name))
				continue;
			if (sm->labels_len >= cap) {
				cap = (size_t)sm->labels_len + 1;
				buf = usher_malloc(cap);
			}
			ok = labels_parse(sm->labels, sm->labels_len, buf, cap, pairs,
					  2 * VISIT_MAX_PAIRS + 1);
			if (ok)
				fn(arg, name, pairs, sm->value);
			if (buf != stackbuf)
				free(buf);
		}
	}
}

/* --- compaction at publish --------------------------------------------- */

/* A published set lives until its producer's next run replaces it, a
 * thousand of them at once with a thousand probes, while the arena it was
 * built in has slack: a 4 KiB first block and a second one a histogram
 * spilled into, ~8 KiB for a ~3 KiB HTTP probe set. compact() copies a set
 * into one allocation of exactly its size: the set, one chunk holding every
 * sample, then the label and value texts (labels shared by consecutive
 * samples, like a histogram's _sum and _count, stay shared). Sets with
 * descs in their arena (re-exposed scrapes) keep their arena: they are big,
 * so their slack is small in proportion. Returns the set to publish. */
#define COMPACT_MAX_SAMPLES 4096

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static struct usher_sample_set *compact(struct usher_sample_set *s)
{
	const struct chunk *c;
	const char *prev_src = NULL;
	struct usher_sample_set *t;
	struct chunk *tc;
	size_t head, bytes, i;
	char *p;

	if (s->own_descs || !s->arena || s->count > COMPACT_MAX_SAMPLES ||
	    atomic_load_explicit(&s->refs, memory_order_acquire) != 1)
		return s;
	head = align8(sizeof(*t)) + (s->count ? sizeof(*tc) + s->count * sizeof(tc->s[0]) : 0);
	bytes = head + (s->base_len ? s->base_len + 1 : 0);
	for (c = s->head; c; c = c->next) {
		for (i = 0; i < c->n; i++) {
			const struct sample *sm = &c->s[i];

			if (sm->labels_len && sm->labels != s->base && sm->labels != prev_src)
				bytes += sm->labels_len + 1;
			prev_src = sm->labels;
			bytes += sm->text_len + 1u;
		}
	}
	t = usher_malloc(bytes);
	memset(t, 0, sizeof(*t));
	atomic_init(&t->refs, 1);
	t->count = s->count;
	p = (char *)t + head;
	t->base = "";
	t->base_len = s->base_len;
	if (s->base_len) {
		memcpy(p, s->base, s->base_len + 1);
		t->base = p;
		p += s->base_len + 1;
	}
	if (s->count) {
		const char *prev_dst = NULL;

		tc = (struct chunk *)((char *)t + align8(sizeof(*t)));
		tc->next = NULL;
		tc->n = tc->cap = s->count;
		t->head = t->tail = tc;
		prev_src = NULL;
		for (c = s->head, i = 0; c; c = c->next) {
			size_t j;

			for (j = 0; j < c->n; j++, i++) {
				const struct sample *sm = &c->s[j];
				struct sample *d = &tc->s[i];

				*d = *sm;
				if (!sm->labels_len) {
					d->labels = "";
				} else if (sm->labels == s->base) {
					d->labels = t->base;
				} else if (sm->labels == prev_src) {
					d->labels = prev_dst;
				} else {
					memcpy(p, sm->labels, sm->labels_len + 1u);
					d->labels = p;
					p += sm->labels_len + 1u;
				}
				prev_src = sm->labels;
				prev_dst = d->labels;
				memcpy(p, sm->text, sm->text_len);
				p[sm->text_len] = '\0';
				d->text = p;
				p += sm->text_len + 1u;
			}
		}
	}
	assert((size_t)(p - (char *)t) == bytes);
	usher_sample_set_free(s);
	return t;
}

/* --- the registry -------------------------------------------------------- */

struct usher_registry *usher_registry_new(void)
{
	struct usher_registry *r = usher_calloc(1, sizeof(*r));

	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void usher_registry_free(struct usher_registry *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->nentries; i++)
		usher_sample_set_free(r->entries[i].set);
	free(r->entries);
	free(r->collectors);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

void usher_registry_set_observer(struct usher_registry *r, const struct usher_registry_observer *o)
{
	r->observer = *o;
}

void usher_registry_observe_collectors(struct usher_registry *r)
{
	struct collector *list;
	size_t n, i;

	if (!r->observer.publish)
		return;
	pthread_mutex_lock(&r->lock);
	n = r->ncollectors;
	list = n ? usher_malloc(n * sizeof(*list)) : NULL;
	if (n)
		memcpy(list, r->collectors, n * sizeof(*list));
	pthread_mutex_unlock(&r->lock);
	for (i = 0; i < n; i++) {
		struct usher_sample_set *set = list[i].fn(list[i].arg);

		if (set) {
			/* the owner: an opaque key per collector, never dereferenced */
			r->observer.publish(r->observer.arg, (const void *)(uintptr_t)(1 + i), set);
			usher_sample_set_free(set);
		}
	}
	free(list);
}

void usher_registry_publish(struct usher_registry *r, const void *owner,
			    struct usher_sample_set *set)
{
	struct usher_sample_set *old = NULL;
	size_t i;

	if (!set) {
		usher_registry_remove(r, owner);
		return;
	}
	if (r->observer.publish)
		r->observer.publish(r->observer.arg, owner, set);
	set = compact(set);
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nentries; i++)
		if (r->entries[i].owner == owner)
			break;
	if (i == r->nentries) {
		if (r->nentries == r->capentries) {
			r->capentries = r->capentries ? r->capentries * 2 : 16;
			r->entries = usher_realloc(r->entries, r->capentries * sizeof(*r->entries));
		}
		r->entries[i].owner = owner;
		r->entries[i].set = NULL;
		r->nentries++;
	}
	old = r->entries[i].set;
	r->entries[i].set = set;
	pthread_mutex_unlock(&r->lock);
	usher_sample_set_free(old); /* outside the lock: may be a big free */
}

void usher_registry_remove(struct usher_registry *r, const void *owner)
{
	struct usher_sample_set *old = NULL;
	size_t i;

	if (r->observer.remove)
		r->observer.remove(r->observer.arg, owner);

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nentries; i++) {
		if (r->entries[i].owner == owner) {
			old = r->entries[i].set;
			memmove(&r->entries[i], &r->entries[i + 1],
				(r->nentries - i - 1) * sizeof(*r->entries));
			r->nentries--;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	usher_sample_set_free(old);
}

void usher_registry_move(struct usher_registry *r, const void *old_owner, const void *new_owner)
{
	struct usher_sample_set *dropped = NULL;
	size_t i, from = SIZE_MAX, to = SIZE_MAX;

	if (old_owner == new_owner)
		return;
	if (r->observer.move)
		r->observer.move(r->observer.arg, old_owner, new_owner);
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nentries; i++) {
		if (r->entries[i].owner == old_owner)
			from = i;
		else if (r->entries[i].owner == new_owner)
			to = i;
	}
	if (from != SIZE_MAX) {
		r->entries[from].owner = new_owner;
		if (to != SIZE_MAX) {
			dropped = r->entries[to].set;
			memmove(&r->entries[to], &r->entries[to + 1],
				(r->nentries - to - 1) * sizeof(*r->entries));
			r->nentries--;
		}
	}
	pthread_mutex_unlock(&r->lock);
	usher_sample_set_free(dropped);
}

void usher_registry_add_collector(struct usher_registry *r, usher_collector_fn *fn, void *arg)
{
	pthread_mutex_lock(&r->lock);
	if (r->ncollectors == r->capcollectors) {
		r->capcollectors = r->capcollectors ? r->capcollectors * 2 : 4;
		r->collectors =
		    usher_realloc(r->collectors, r->capcollectors * sizeof(*r->collectors));
	}
	r->collectors[r->ncollectors].fn = fn;
	r->collectors[r->ncollectors].arg = arg;
	r->ncollectors++;
	pthread_mutex_unlock(&r->lock);
}

/* --- negotiation --------------------------------------------------------- */

const char *usher_expo_content_type(enum usher_expo_format fmt)
{
	if (fmt == USHER_EXPO_OPENMETRICS)
		return "application/openmetrics-text; version=1.0.0; charset=utf-8";
	return "text/plain; version=0.0.4; charset=utf-8";
}

/* One media range of an Accept header. */
struct media_range {
	const char *type;
	size_t type_len;
	const char *version; /* NULL when absent */
	size_t version_len;
	int q; /* thousandths, 0..1000; -1 when malformed */
};

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_tchar(char c)
{
	return c > ' ' && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static bool token_is(const char *p, size_t n, const char *lit)
{
	return n == strlen(lit) && strncasecmp(p, lit, n) == 0;
}

/* RFC 9110 qvalue: "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")]. */
static int parse_q(const char *p, size_t n)
{
	int q, scale = 100;
	size_t i;

	if (n == 0 || (p[0] != '0' && p[0] != '1'))
		return -1;
	q = (p[0] - '0') * 1000;
	if (n == 1)
		return q;
	if (p[1] != '.' || n > 5)
		return -1;
	for (i = 2; i < n; i++, scale /= 10) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		q += (p[i] - '0') * scale;
	}
	return q > 1000 ? -1 : q;
}

/* Parses the media range at *pp and moves *pp past it and its comma. */
static void parse_range(const char **pp, struct media_range *m)
{
	const char *p = *pp;

	memset(m, 0, sizeof(*m));
	m->q = 1000;
	while (is_ows(*p))
		p++;
	m->type = p;
	while (is_tchar(*p) || *p == '/')
		p++;
	m->type_len = (size_t)(p - m->type);
	for (;;) {
		const char *name, *val;
		size_t name_len, val_len;

		while (is_ows(*p))
			p++;
		if (*p != ';')
			break;
		p++;
		while (is_ows(*p))
			p++;
		name = p;
		while (is_tchar(*p))
			p++;
		name_len = (size_t)(p - name);
		while (is_ows(*p))
			p++;
		if (*p != '=')
			continue;
		p++;
		while (is_ows(*p))
			p++;
		if (*p == '"') {
			val = ++p;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			val_len = (size_t)(p - val);
			if (*p == '"')
				p++;
		} else {
			val = p;
			while (is_tchar(*p))
				p++;
			val_len = (size_t)(p - val);
		}
		if (token_is(name, name_len, "q")) {
			m->q = parse_q(val, val_len);
		} else if (token_is(name, name_len, "version")) {
			m->version = val;
			m->version_len = val_len;
		}
	}
	/* skip whatever is left of a malformed range */
	while (*p && *p != ',') {
		if (m->q >= 0)
			m->q = -1;
		p++;
	}
	if (*p == ',')
		p++;
	*pp = p;
}

/* Whether usher can serve m, and in which format. */
static bool range_serves(const struct media_range *m, enum usher_expo_format *fmt)
{
	const char *v = m->version;
	size_t vl = m->version_len;

	if (token_is(m->type, m->type_len, "text/plain")) {
		*fmt = USHER_EXPO_TEXT;
		/* text 1.0.0 only adds quoted UTF-8 names, which usher never
		 * writes, so a 0.0.4 body is a valid 1.0.0 body */
		return !v || token_is(v, vl, "0.0.4") || token_is(v, vl, "1.0.0");
	}
	if (token_is(m->type, m->type_len, "application/openmetrics-text")) {
		*fmt = USHER_EXPO_OPENMETRICS;
		return !v || token_is(v, vl, "1.0.0") || token_is(v, vl, "0.0.1");
	}
	if (token_is(m->type, m->type_len, "*/*") || token_is(m->type, m->type_len, "text/*")) {
		*fmt = USHER_EXPO_TEXT;
		return true;
	}
	return false;
}

enum usher_expo_format usher_expo_negotiate(const char *accept)
{
	enum usher_expo_format best = USHER_EXPO_TEXT, fmt;
	int best_q = 0;
	const char *p = accept;

	if (!accept)
		return USHER_EXPO_TEXT;
	while (*p) {
		struct media_range m;

		parse_range(&p, &m);
		/* the first of equal q-values wins, as in expfmt.Negotiate */
		if (m.q > best_q && range_serves(&m, &fmt)) {
			best = fmt;
			best_q = m.q;
		}
	}
	return best;
}

/* --- rendering ----------------------------------------------------------- */

/* A stretch of one set's samples that share a desc; families are made by
 * sorting runs by (name, ord) so producers keep their order in a family. */
struct run {
	const struct usher_metric_desc *desc;
	const struct sample *s;
	size_t n;
	size_t ord;
};

struct runs {
	struct run *v;
	size_t n, cap;
};

static void runs_add_set(struct runs *rs, const struct usher_sample_set *set)
{
	const struct chunk *c;
	size_t i;

	for (c = set->head; c; c = c->next) {
		for (i = 0; i < c->n; i++) {
			struct run *last = rs->n ? &rs->v[rs->n - 1] : NULL;

			if (i > 0 && last->desc == c->s[i].desc) {
				last->n++;
				continue;
			}
			if (rs->n == rs->cap) {
				rs->cap = rs->cap ? rs->cap * 2 : 256;
				rs->v = usher_realloc(rs->v, rs->cap * sizeof(*rs->v));
			}
			rs->v[rs->n].desc = c->s[i].desc;
			rs->v[rs->n].s = &c->s[i];
			rs->v[rs->n].n = 1;
			rs->v[rs->n].ord = rs->n;
			rs->n++;
		}
	}
}

static int run_cmp(const void *a, const void *b)
{
	const struct run *x = a, *y = b;

	if (x->desc != y->desc) {
		int c = strcmp(x->desc->name, y->desc->name);

		if (c)
			return c;
	}
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static const char *type_name(enum usher_metric_type t, enum usher_expo_format fmt)
{
	switch (t) {
	case USHER_METRIC_GAUGE: return "gauge";
	case USHER_METRIC_COUNTER: return "counter";
	case USHER_METRIC_HISTOGRAM: return "histogram";
	case USHER_METRIC_SUMMARY: return "summary";
	case USHER_METRIC_UNTYPED: break;
	}
	return fmt == USHER_EXPO_OPENMETRICS ? "unknown" : "untyped";
}

static enum usher_err write_family_header(struct usher_buf *out, const struct usher_metric_desc *d,
					  enum usher_expo_format fmt)
{
	/* 0.0.4 names the counter family by its series (x_total); OpenMetrics
	 * by the bare name */
	const char *total =
	    d->type == USHER_METRIC_COUNTER && fmt == USHER_EXPO_TEXT ? "_total" : "";
	enum usher_err rc = USHER_OK;

	if (d->help) {
		rc = usher_buf_addf(out, "# HELP %s%s ", d->name, total);
		if (!rc)
			rc = usher_expo_escape_help(out, d->help, fmt);
		if (!rc)
			rc = usher_buf_addc(out, '\n');
	}
	if (!rc)
		rc = usher_buf_addf(out, "# TYPE %s%s %s\n", d->name, total,
				    type_name(d->type, fmt));
	return rc;
}

static enum usher_err write_run(struct usher_buf *out, const struct run *run)
{
	const struct usher_metric_desc *d = run->desc;
	size_t name_len = strlen(d->name), i;
	bool counter = d->type == USHER_METRIC_COUNTER;
	char line[LINE_MAX_STACK];
	enum usher_err rc = USHER_OK;

	for (i = 0; i < run->n && !rc; i++) {
		const struct sample *s = &run->s[i];
		const char *suf = counter ? "_total" : suffixes[s->suffix].s;
		size_t suf_len = counter ? 6 : suffixes[s->suffix].len;
		size_t need = name_len + suf_len + s->labels_len + s->text_len + 4, off = 0;

		if (need > sizeof(line)) {
			rc = usher_buf_add(out, d->name, name_len);
			if (!rc)
				rc = usher_buf_add(out, suf, suf_len);
			if (!rc && s->labels_len) {
				rc = usher_buf_addc(out, '{');
				if (!rc)
					rc = usher_buf_add(out, s->labels, s->labels_len);
				if (!rc)
					rc = usher_buf_addc(out, '}');
			}
			if (!rc)
				rc = usher_buf_addc(out, ' ');
			if (!rc)
				rc = usher_buf_add(out, s->text, s->text_len);
			if (!rc)
				rc = usher_buf_addc(out, '\n');
			continue;
		}
		memcpy(line, d->name, name_len);
		off = name_len;
		memcpy(line + off, suf, suf_len);
		off += suf_len;
		if (s->labels_len) {
			line[off++] = '{';
			memcpy(line + off, s->labels, s->labels_len);
			off += s->labels_len;
			line[off++] = '}';
		}
		line[off++] = ' ';
		memcpy(line + off, s->text, s->text_len);
		off += s->text_len;
		line[off++] = '\n';
		rc = usher_buf_add(out, line, off);
	}
	return rc;
}

/* A render in progress: the sets it holds a reference on, their runs
 * sorted into families, and where the writing stopped. Invariant: runs
 * [fam_start, fam_end) are the current family, its header is written, and
 * next is the first of its runs not yet written. */
struct usher_render {
	struct usher_sample_set **sets;
	size_t nsets;
	struct runs rs;
	enum usher_expo_format fmt;
	const struct usher_metric_desc *fam;
	size_t fam_start, fam_end, next;
	bool done;
};

struct usher_render *usher_registry_render_begin(struct usher_registry *r,
						 enum usher_expo_format fmt)
{
	struct usher_render *st = usher_calloc(1, sizeof(*st));
	struct collector *colls = NULL;
	size_t ncolls, i;

	st->fmt = fmt;
	/* under the lock: take a reference on each set, copy the collectors */
	pthread_mutex_lock(&r->lock);
	ncolls = r->ncollectors;
	st->sets = usher_malloc((r->nentries + ncolls + 1) * sizeof(*st->sets));
	for (i = 0; i < r->nentries; i++) {
		atomic_fetch_add_explicit(&r->entries[i].set->refs, 1, memory_order_relaxed);
		st->sets[st->nsets++] = r->entries[i].set;
	}
	if (ncolls) {
		colls = usher_malloc(ncolls * sizeof(*colls));
		memcpy(colls, r->collectors, ncolls * sizeof(*colls));
	}
	pthread_mutex_unlock(&r->lock);

	for (i = 0; i < ncolls; i++) {
		struct usher_sample_set *s = colls[i].fn(colls[i].arg);

		if (s)
			st->sets[st->nsets++] = s;
	}
	free(colls);
	for (i = 0; i < st->nsets; i++)
		runs_add_set(&st->rs, st->sets[i]);
	if (st->rs.n)
		qsort(st->rs.v, st->rs.n, sizeof(*st->rs.v), run_cmp);
	return st;
}

enum usher_err usher_render_next(struct usher_render *st, struct usher_buf *out, size_t want,
				 bool *done)
{
	const struct runs *rs = &st->rs;
	size_t start = out->len;
	enum usher_err rc = USHER_OK;

	while (!st->done && !rc && out->len - start < want) {
		if (st->next < st->fam_end) {
			/* a producer whose desc disagrees on the type would make
			 * the family unparseable; its samples are left out (a bug
			 * to fix in that producer) */
			if (rs->v[st->next].desc->type == st->fam->type)
				rc = write_run(out, &rs->v[st->next]);
			st->next++;
			continue;
		}
		st->fam_start = st->fam_end;
		if (st->fam_start >= rs->n) {
			if (st->fmt == USHER_EXPO_OPENMETRICS)
				rc = usher_buf_add(out, "# EOF\n", 6);
			st->done = !rc;
			break;
		}
		st->fam = rs->v[st->fam_start].desc;
		for (st->fam_end = st->fam_start + 1; st->fam_end < rs->n; st->fam_end++)
			if (rs->v[st->fam_end].desc != st->fam &&
			    strcmp(rs->v[st->fam_end].desc->name, st->fam->name) != 0)
				break;
		st->next = st->fam_start;
		rc = write_family_header(out, st->fam, st->fmt);
	}
	*done = st->done;
	return rc;
}

void usher_render_free(struct usher_render *st)
{
	size_t i;

	if (!st)
		return;
	free(st->rs.v);
	for (i = 0; i < st->nsets; i++)
		usher_sample_set_free(st->sets[i]);
	free(st->sets);
	free(st);
}

enum usher_err usher_registry_render(struct usher_registry *r, enum usher_expo_format fmt,
				     struct usher_buf *out)
{
	struct usher_render *st = usher_registry_render_begin(r, fmt);
	enum usher_err rc;
	bool done;

	rc = usher_render_next(st, out, SIZE_MAX, &done);
	usher_render_free(st);
	return rc;
}
