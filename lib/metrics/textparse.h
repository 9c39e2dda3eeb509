/* The Prometheus text exposition format 0.0.4 and OpenMetrics 1.0, parsed
 * whole into families and samples (arena-allocated), strictly enough that
 * garbage is rejected with line:col, and bounded (line length, labels per
 * sample). Used by app scrapes and the textfile directory. */
#ifndef USHER_METRICS_TEXTPARSE_H
#define USHER_METRICS_TEXTPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"

enum usher_tp_format {
	USHER_TP_TEXT,        /* text/plain; version=0.0.4 (expfmt's TextParser rules) */
	USHER_TP_OPENMETRICS, /* application/openmetrics-text; version=1.0.0 */
};

enum usher_tp_type {
	USHER_TP_UNTYPED, /* 0.0.4 untyped, OpenMetrics unknown, and no TYPE line */
	USHER_TP_COUNTER,
	USHER_TP_GAUGE,
	USHER_TP_HISTOGRAM,
	USHER_TP_SUMMARY,
	USHER_TP_GAUGEHISTOGRAM, /* OpenMetrics only, as are the two below */
	USHER_TP_INFO,
	USHER_TP_STATESET,
};

/* Which series of its family a sample is: the suffix its name adds to the
 * family name. */
enum usher_tp_suffix {
	USHER_TP_SUF_NONE,
	USHER_TP_SUF_TOTAL,   /* OpenMetrics counters */
	USHER_TP_SUF_CREATED, /* OpenMetrics counters, histograms, summaries */
	USHER_TP_SUF_BUCKET,  /* has an le label */
	USHER_TP_SUF_SUM,
	USHER_TP_SUF_COUNT,
	USHER_TP_SUF_GSUM, /* gauge histograms */
	USHER_TP_SUF_GCOUNT,
	USHER_TP_SUF_INFO, /* OpenMetrics info */
};

struct usher_tp_family {
	const char *name; /* from HELP/TYPE, else the first sample's name */
	enum usher_tp_type type;
	const char *help; /* unescaped; NULL when there was no HELP line */
	const char *unit; /* OpenMetrics UNIT; NULL when absent */
	size_t nsamples;
	int line; /* where it was first named */
};

struct usher_tp_sample {
	size_t family; /* index into the result's families */
	enum usher_tp_suffix suffix;
	/* name/value pairs, NULL-terminated, unescaped, in input order; valid
	 * label names, each at most once; values are valid UTF-8 and may be "" */
	const char **labels;
	size_t nlabels;
	double value;
	bool has_timestamp;
	int64_t timestamp_ms; /* OpenMetrics' seconds are converted (rounded) */
	int line;
};

struct usher_tp_result {
	struct usher_tp_family *families;
	size_t nfamilies;
	struct usher_tp_sample *samples; /* in input order */
	size_t nsamples;
};

/* Bounds on what the input may make the parser hold or accept. Zeroed
 * fields take the defaults below. */
struct usher_tp_limits {
	size_t max_line;   /* bytes per line, newline excluded */
	size_t max_labels; /* label pairs per sample */
	/* Reject a second sample with the same name and label set (empty
	 * values count as absent) instead of keeping both, as a textfile
	 * must; scrapes drop duplicates later instead. */
	bool reject_duplicates;
};

#define USHER_TP_DEFAULT_MAX_LINE   (64 * 1024)
#define USHER_TP_DEFAULT_MAX_LABELS 64

/* Where and why the input was rejected: 1-based line and byte column. */
struct usher_tp_error {
	int line, col;
	char msg[256];
};

/* Parses text (len bytes, need not be NUL-terminated) in fmt. Everything
 * in *out is allocated in a, which must outlive it. On failure returns
 * USHER_ERR_INVALID (bad input) or USHER_ERR_TOOBIG (a limit), fills err,
 * and *out is empty; nothing is half-parsed. */
enum usher_err usher_textparse(const char *text, size_t len, enum usher_tp_format fmt,
			       const struct usher_tp_limits *lim, struct usher_arena *a,
			       struct usher_tp_result *out, struct usher_tp_error *err);

/* The format a scrape answer is in, from its Content-Type (NULL or
 * unknown: text, as Prometheus falls back). */
enum usher_tp_format usher_textparse_format(const char *content_type);

/* The family's name plus the sample's suffix ("x_bucket"), in a. */
const char *usher_tp_sample_name(struct usher_arena *a, const struct usher_tp_result *r,
				 const struct usher_tp_sample *s);

/* "counter", "gauge", ..., as the format spells it ("untyped" / "unknown"). */
const char *usher_tp_type_name(enum usher_tp_type t, enum usher_tp_format fmt);

#endif
