/* The metric registry: producers (probes, self metrics) publish whole sample
 * sets, and /metrics renders every published set, grouped into families, as
 * Prometheus text 0.0.4 or OpenMetrics 1.0.
 *
 * A sample set is built by one producer on one thread and then handed to the
 * registry, which replaces that producer's previous set atomically, so a
 * scrape never sees half a probe run. Published sets are immutable and
 * reference-counted: rendering takes the registry lock only while it takes a
 * reference on each set, and formats without it (docs/internals/metrics.md). */
#ifndef USHER_METRICS_REGISTRY_H
#define USHER_METRICS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum usher_metric_type {
	USHER_METRIC_GAUGE,
	USHER_METRIC_COUNTER,   /* name without "_total"; rendered with it */
	USHER_METRIC_HISTOGRAM, /* rendered as _bucket / _sum / _count */
	USHER_METRIC_UNTYPED,
	USHER_METRIC_SUMMARY, /* quantile samples, _sum, _count (re-exposed only) */
};

/* What a metric family is. Declared `static const` next to the code that
 * produces it; families are matched by name, so two producers may each
 * declare the same family (their help and type must agree). */
struct usher_metric_desc {
	const char *name; /* for counters, without the _total suffix */
	enum usher_metric_type type;
	const char *help;
};

struct usher_sample_set;

/* A new, empty set whose samples all start with the base labels, given as
 * name/value pairs ending with NULL: ("job", "api", "instance", "h:80", NULL).
 * base_pairs may be NULL for no base labels. Values are copied. */
struct usher_sample_set *usher_sample_set_new(const char *const *base_pairs);
/* Same, with the base pairs as varargs: ("job", "api", NULL). */
struct usher_sample_set *usher_sample_set_newv(const char *first, ...);
/* Frees a set that was never published (a published set is the
 * registry's). Accepts NULL. */
void usher_sample_set_free(struct usher_sample_set *s);
/* The number of samples, a histogram counting one per bucket, _sum, _count. */
size_t usher_sample_set_count(const struct usher_sample_set *s);

/* Adds one sample: desc's family, the base labels, then the label pairs
 * given as varargs ending with NULL, e.g.
 *   usher_sample_add(s, &desc_phase, 0.012, "phase", "connect", NULL);
 * Label names must be valid Prometheus label names (a bug otherwise), at
 * most 32 pairs; values are copied and escaped (a NULL value is "", bytes
 * that are not UTF-8 become U+FFFD). */
void usher_sample_add(struct usher_sample_set *s, const struct usher_metric_desc *desc,
		      double value, ...);
/* Same, with the extra pairs as a NULL-terminated array (may be NULL). */
void usher_sample_addv(struct usher_sample_set *s, const struct usher_metric_desc *desc,
		       double value, const char *const *pairs);

/* A histogram with cumulative bucket counts: counts[i] is the number of
 * observations <= bounds[i]; +Inf is count. The pairs are extra labels. */
/* Families whose names come from input (scraped targets, textfiles) cannot
 * be declared `static const`: this makes a desc in s's arena, living as
 * long as s. name and help are copied; help may be NULL. name must be a
 * valid metric name (for a counter, without "_total"). */
const struct usher_metric_desc *usher_sample_set_desc(struct usher_sample_set *s, const char *name,
						      enum usher_metric_type type,
						      const char *help);

/* Which series of its family a sample is: histograms have _bucket, _sum
 * and _count, summaries their quantiles (NONE), _sum and _count. Counters
 * always get _total and take NONE. */
enum usher_series_suffix {
	USHER_SUFFIX_NONE,
	USHER_SUFFIX_BUCKET,
	USHER_SUFFIX_SUM,
	USHER_SUFFIX_COUNT,
};

/* Adds one re-exposed sample whose labels the caller has merged itself
 * (honor_labels): pairs (NULL-terminated name/value array, may be NULL) are
 * its whole label set, the set's base labels are not added. A bucket's le
 * and a quantile's quantile are ordinary pairs here. Label names must be
 * valid (a bug otherwise) and unique (the caller's duty). */
void usher_sample_add_series(struct usher_sample_set *s, const struct usher_metric_desc *desc,
			     enum usher_series_suffix suffix, double value,
			     const char *const *pairs);

/* Calls fn for every sample of s, in insertion order, with its series name
 * (the family name plus _total, _bucket, _sum or _count as rendered in the
 * text format), its whole label set as a NULL-terminated array of
 * unescaped name/value pairs (base labels first) and its value. The
 * strings are valid only during the call. For the series store. */
typedef void usher_sample_visit_fn(void *arg, const char *name, const char *const *pairs,
				   double value);
void usher_sample_set_foreach(const struct usher_sample_set *s, usher_sample_visit_fn *fn,
			      void *arg);

struct usher_histogram {
	size_t nbuckets;
	const double *bounds;
	uint64_t *counts; /* nbuckets cumulative counts */
	uint64_t count;
	double sum;
};
void usher_sample_add_histogram(struct usher_sample_set *s, const struct usher_metric_desc *desc,
				const struct usher_histogram *h, const char *const *pairs);
/* Observes v into h (bounds ascending). */
void usher_histogram_observe(struct usher_histogram *h, double v);

struct usher_registry;

struct usher_registry *usher_registry_new(void);
/* Frees the registry and every published set. */
void usher_registry_free(struct usher_registry *r);

/* Publishes set (taken) as the current samples of owner, replacing and
 * freeing owner's previous set (once renders in flight are done with it).
 * owner is any stable pointer; producers keep the order of their first
 * publish within a family. set must not be changed afterwards; NULL is
 * usher_registry_remove. Thread-safe. */
void usher_registry_publish(struct usher_registry *r, const void *owner,
			    struct usher_sample_set *set);
/* Drops owner's samples (a removed probe). */
void usher_registry_remove(struct usher_registry *r, const void *owner);
/* Hands old_owner's published set, and its place in the producer order, to
 * new_owner, freeing any set new_owner had: a producer rebuilt by a reload
 * keeps serving its last samples until its first new run. Does nothing
 * when old_owner has published nothing. Thread-safe. */
void usher_registry_move(struct usher_registry *r, const void *old_owner, const void *new_owner);

/* An observer sees every change of the published sets, in the publishing
 * thread, before the registry takes the set: the series store (tsdb) is
 * fed this way. publish gets the new set (read-only; do not keep it),
 * remove a NULL set, move the two owners. Calls for one owner come from
 * one producer at a time, but different owners may publish concurrently.
 * Set once, before any publish. */
struct usher_registry_observer {
	void (*publish)(void *arg, const void *owner, const struct usher_sample_set *set);
	void (*remove)(void *arg, const void *owner);
	void (*move)(void *arg, const void *old_owner, const void *new_owner);
	void *arg;
};
void usher_registry_set_observer(struct usher_registry *r, const struct usher_registry_observer *o);
/* Runs every collector now and hands each set to the observer's publish
 * (owner: an opaque small-integer key per collector, never a real
 * pointer), then frees it: the daemon's own metrics
 * reach the series store the way a Prometheus scraping usherd would see
 * them. Call from one thread at a time. */
void usher_registry_observe_collectors(struct usher_registry *r);

/* A collector is called at every render to produce a fresh set (process
 * metrics, build info). It returns a set the renderer frees, or NULL. It
 * runs outside the registry lock, possibly in two renders at once, so it
 * must be thread-safe; collectors stay registered until usher_registry_free. */
typedef struct usher_sample_set *usher_collector_fn(void *arg);
void usher_registry_add_collector(struct usher_registry *r, usher_collector_fn *fn, void *arg);

enum usher_expo_format {
	USHER_EXPO_TEXT,        /* text/plain; version=0.0.4 */
	USHER_EXPO_OPENMETRICS, /* application/openmetrics-text; version=1.0.0 */
};

/* The Content-Type header value for fmt. */
const char *usher_expo_content_type(enum usher_expo_format fmt);
/* Picks the format for an HTTP Accept header (NULL: text), honouring
 * q-values the way Prometheus' expfmt.Negotiate does. */
enum usher_expo_format usher_expo_negotiate(const char *accept);

/* Renders every family, sorted by name, into out. Families are never split:
 * samples of one family from several producers come under one HELP/TYPE, in
 * producer order; samples whose desc disagrees with the family's first desc
 * on the type are left out. Thread-safe, also against publishes. Returns
 * USHER_ERR_TOOBIG when out's maximum is reached; out then holds a partial
 * render to discard. */
enum usher_err usher_registry_render(struct usher_registry *r, enum usher_expo_format fmt,
				     struct usher_buf *out);

/* The same render in pieces, so a large /metrics can be sent (and gzipped)
 * as it is written instead of held whole. _begin takes the snapshot that
 * usher_registry_render takes (a reference on every published set, the
 * collectors run), so the pieces are one consistent render; the sets live
 * until usher_render_free. usher_render_next appends whole lines to out
 * until it has added at least want bytes or everything is written, then
 * sets *done; errors as usher_registry_render. The pieces concatenated
 * are exactly usher_registry_render's output. */
struct usher_render;
struct usher_render *usher_registry_render_begin(struct usher_registry *r,
						 enum usher_expo_format fmt);
enum usher_err usher_render_next(struct usher_render *st, struct usher_buf *out, size_t want,
				 bool *done);
void usher_render_free(struct usher_render *st); /* accepts NULL */

/* Escaping and number formatting as the exposition formats want them
 * (exposed for tests and for other writers of the text format). */
enum usher_err usher_expo_escape_label(struct usher_buf *b, const char *v);
enum usher_err usher_expo_escape_help(struct usher_buf *b, const char *v, enum usher_expo_format fmt);
/* Text that reads back as exactly v (integers below 1e15 in full, else the
 * first of %.15g, %.16g, %.17g that round-trips); NaN, +Inf, -Inf. len >= 32. */
void usher_expo_format_value(double v, char *out, size_t len);
bool usher_metric_name_valid(const char *name);
bool usher_label_name_valid(const char *name);

#endif
