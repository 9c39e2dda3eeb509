/* Re-exposing parsed exposition input (a scraped target, a textfile) through
 * a sample set: each family becomes a desc of the registry's kinds, the
 * target's labels are attached with Prometheus' honor_labels semantics,
 * families that disagree with an earlier one on type or help are dropped,
 * and duplicate series are dropped. Nothing reaches the set until commit,
 * so a caller can still refuse the whole input (sample_limit). */
#ifndef USHER_METRICS_INGEST_H
#define USHER_METRICS_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "metrics/registry.h"
#include "metrics/textparse.h"

struct usher_ingest_opts {
	/* The target's labels (job, instance, static labels), NULL-terminated
	 * name/value pairs; may be NULL. */
	const char *const *target;
	/* true: the input's own labels win over the target's; false: an input
	 * label that clashes with a target label is kept as exported_<name>. */
	bool honor_labels;
};

/* What one usher_ingest_add did. */
struct usher_ingest_stats {
	size_t samples;     /* samples pending after this add (what sample_limit counts) */
	size_t duplicates;  /* dropped: a series already seen (or reserved) */
	size_t created;     /* OpenMetrics _created samples left out */
	size_t conflicts;   /* families dropped for disagreeing with an earlier one */
	char conflict[256]; /* the first conflict, for a log line; "" when none */
};

struct usher_ingest;

/* An ingest into set (borrowed, not published yet), working in a, which
 * must outlive it. opts is copied; the strings it points to are borrowed. */
struct usher_ingest *usher_ingest_new(struct usher_sample_set *set, struct usher_arena *a,
				      const struct usher_ingest_opts *opts);

/* Claims the series name{pairs} (its full exposed name, e.g. "up"), so input
 * with the same identity is dropped as a duplicate: the series the caller
 * adds itself. */
void usher_ingest_reserve(struct usher_ingest *ing, const char *name, const char *const *pairs);

/* Makes d (borrowed, must outlive the ingest) a known family, so input
 * that has the same name with another type is left out: the families the
 * caller adds itself. Help text is not compared. */
void usher_ingest_declare(struct usher_ingest *ing, const struct usher_metric_desc *d);

/* Converts r (parsed in fmt; borrowed, must live until commit) into pending
 * samples. source names the input in conflict messages ("/path/x.prom");
 * default_help (may be NULL) is the help of its families that have none.
 * Never fails: what cannot be re-exposed is counted in *st and left out. */
void usher_ingest_add(struct usher_ingest *ing, const struct usher_tp_result *r,
		      enum usher_tp_format fmt, const char *source, const char *default_help,
		      struct usher_ingest_stats *st);

/* Adds every pending sample to the set, in input order. A caller that
 * refuses the input (sample_limit) just never commits. */
void usher_ingest_commit(struct usher_ingest *ing);

/* The 64-bit identities of every series added so far (pending or
 * committed), *n of them, in input order. */
const uint64_t *usher_ingest_series(const struct usher_ingest *ing, size_t *n);

#endif
