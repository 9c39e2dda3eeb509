/* The in-memory series store: recent samples of every series usherd
 * collects, for rule evaluation and queries (docs/internals/promql.md).
 *
 * Samples live in Gorilla-compressed chunks of ~120 samples; chunks older
 * than the retention window are dropped, and with them series that have no
 * sample left. A postings index answers label matchers. The number of
 * series is capped: a new series past the cap is refused with an error and
 * counted, never admitted at the cost of memory.
 *
 * Threads: one lock (a writer-preferring rwlock) guards the store. Appends
 * and truncation take it for writing, selects for reading; a select copies
 * what it returns into the caller's arena, so results stay valid after the
 * lock is released and the store moves on. */
#ifndef USHER_TSDB_TSDB_H
#define USHER_TSDB_TSDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "tsdb/labels.h"

/* Prometheus' staleness marker: a NaN with this exact bit pattern, written
 * when a series disappears. A plain NaN is an ordinary value. */
#define USHER_STALE_NAN_BITS 0x7ff0000000000002ULL

double usher_stale_nan(void);
bool usher_is_stale(double v);

#define USHER_TSDB_DEFAULT_RETENTION_MS (2 * 3600 * 1000LL)
#define USHER_TSDB_DEFAULT_MAX_SERIES   1000000

struct usher_tsdb_options {
	int64_t retention_ms; /* samples older than newest - retention go; 0 keeps all */
	size_t max_series;    /* refuse new series past this many; 0: no limit */
};

/* The defaults: 2h retention, 1,000,000 series. */
void usher_tsdb_options_default(struct usher_tsdb_options *o);

struct usher_tsdb;

struct usher_tsdb *usher_tsdb_new(const struct usher_tsdb_options *o);
/* Changes the retention and the series limit (a reload): a shorter
 * retention applies at the next truncation; a lower limit refuses new
 * series only, never drops existing ones. Thread-safe. */
void usher_tsdb_set_options(struct usher_tsdb *db, const struct usher_tsdb_options *o);
/* Frees the store and every sample. Accepts NULL. */
void usher_tsdb_free(struct usher_tsdb *db);

/* Appends one sample to the series with labels l (created on first use;
 * l is copied). Errors (nothing is appended): USHER_ERR_INVALID for a
 * sample older than the series' last ("out of order sample"), a different
 * value at the last timestamp ("duplicate sample for timestamp"), or
 * labels that are not a valid set; USHER_ERR_TOOBIG when the series is new
 * and the series limit is reached. A stale marker that is out of order is
 * dropped silently. Thread-safe (takes the write lock). */
enum usher_err usher_tsdb_append(struct usher_tsdb *db, const struct usher_labels *l, int64_t t,
				 double v, struct usher_error *err);

/* A batch: one producer's samples of one run (a probe run, a scrape, a rule
 * group evaluation), committed together under one lock. The batch
 * remembers which series its previous commit wrote; a series missing from
 * the next commit gets a staleness marker at that commit's time, as
 * Prometheus does for a series that vanishes from a scrape. */
struct usher_tsdb_batch;

struct usher_tsdb_batch *usher_tsdb_batch_new(struct usher_tsdb *db);
/* Adds one sample (labels and strings copied). Not thread-safe: a batch
 * belongs to one producer. */
void usher_tsdb_batch_add(struct usher_tsdb_batch *b, const struct usher_labels *l, int64_t t,
			  double v);
/* Same, with labels as NULL-terminated name/value pairs (any order). */
void usher_tsdb_batch_addv(struct usher_tsdb_batch *b, const char *const *pairs, int64_t t,
			   double v);
/* Appends the added samples, writes staleness markers at time t for the
 * series the previous commit wrote and this one did not, and empties the
 * batch. Samples that fail are skipped and the others still go in; the
 * first failure is returned (message in err) and *nrejected, if not NULL,
 * says how many failed. */
enum usher_err usher_tsdb_batch_commit(struct usher_tsdb_batch *b, int64_t t, size_t *nrejected,
				       struct usher_error *err);
/* Marks every series of the last commit stale at t (a producer that goes
 * away: a probe removed by a reload), then frees b. Pass t < 0 to free
 * without marking. Accepts NULL. */
void usher_tsdb_batch_free(struct usher_tsdb_batch *b, int64_t t);

/* Drops chunks whose samples are all older than mint, and series left with
 * no samples. Appends call this themselves (with newest - retention) about
 * once a minute of sample time. */
void usher_tsdb_truncate(struct usher_tsdb *db, int64_t mint);

/* One selected series: its labels and its samples in [mint, maxt], oldest
 * first, stale markers included. Everything lives in the caller's arena. */
struct usher_series {
	struct usher_labels labels;
	size_t n;
	const int64_t *t;
	const double *v;
};

/* Selects the series matching every matcher, with their samples in
 * [mint, maxt]; series with no sample there are left out. The result is in
 * a, sorted by labels. budget (may be NULL) is the number of samples the
 * caller may still load: it is decreased, and going past it is
 * USHER_ERR_TOOBIG with Prometheus' "query processing would load too many
 * samples into memory in query execution". Thread-safe (read lock). */
enum usher_err usher_tsdb_select(struct usher_tsdb *db, const struct usher_matcher *m, size_t nm,
				 int64_t mint, int64_t maxt, struct usher_arena *a, size_t *budget,
				 struct usher_series **out, size_t *nout, struct usher_error *err);

/* Sorted, distinct label names / values of one label, in arena a (for the
 * HTTP API). Thread-safe. */
void usher_tsdb_label_names(struct usher_tsdb *db, struct usher_arena *a, const char ***out,
			    size_t *n);
void usher_tsdb_label_values(struct usher_tsdb *db, const char *name, struct usher_arena *a,
			     const char ***out, size_t *n);

struct usher_tsdb_stats {
	size_t series;
	size_t samples; /* samples held, in all chunks */
	size_t chunks;
	size_t bytes;               /* heap bytes: chunks, series, labels, index, tables */
	int64_t mint, maxt;         /* oldest and newest sample held (0, 0 when empty) */
	uint64_t appended;          /* samples appended since start */
	uint64_t out_of_order;      /* samples refused as out of order or duplicate */
	uint64_t series_limit_hits; /* new series refused by the series limit */
	uint64_t series_created, series_removed;
};

/* A consistent snapshot of the counters. Thread-safe. */
void usher_tsdb_stats(struct usher_tsdb *db, struct usher_tsdb_stats *st);

/* The read interface the PromQL evaluator queries: usher_tsdb_select's
 * contract behind a function pointer, so the rule engine or a test can put
 * something else (a view with query_offset, a fake) in front of it —
 * except that the series may come in any order. */
typedef enum usher_err usher_storage_select_fn(void *ctx, const struct usher_matcher *m, size_t nm,
					       int64_t mint, int64_t maxt, struct usher_arena *a,
					       size_t *budget, struct usher_series **out,
					       size_t *nout, struct usher_error *err);

struct usher_storage {
	usher_storage_select_fn *select;
	void *ctx;
};

/* A storage reading db (borrowed). */
struct usher_storage usher_tsdb_storage(struct usher_tsdb *db);

#endif
