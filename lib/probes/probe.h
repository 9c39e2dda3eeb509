/* The probe interface. Each probe type is one `static const struct
 * usher_probe_type` (its options table and callbacks) listed in
 * probes/types.c; each configured probe is an instance holding the type and
 * a context. A run produces a sample set that replaces the previous one.
 *
 * A target that is down is a measurement (probe_success 0 and a
 * probe_failure_info reason), not an error of the program: only a probe that
 * cannot be set up at all fails init. */
#ifndef USHER_PROBES_PROBE_H
#define USHER_PROBES_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "metrics/registry.h"

struct usher_loop;

/* What the daemon lends every probe instance. */
struct usher_probe_env {
	struct usher_loop *loop; /* for asynchronous types */
	struct usher_log *log;
};

/* The bounded set of probe_failure_info reasons. */
#define USHER_FAIL_DNS "dns"
#define USHER_FAIL_CONNECT "connect"
#define USHER_FAIL_TLS "tls"
#define USHER_FAIL_TIMEOUT "timeout"
#define USHER_FAIL_STATUS "status"
#define USHER_FAIL_REGEX "regex"
#define USHER_FAIL_JSON "json"
#define USHER_FAIL_HEADER "header"
#define USHER_FAIL_BODY_TOO_LARGE "body_too_large"
#define USHER_FAIL_PROTOCOL "protocol"
#define USHER_FAIL_AUTH "auth"
#define USHER_FAIL_QUERY "query"
#define USHER_FAIL_INTERNAL "internal"

/* One run of one probe. Created by the scheduler for every run. */
struct usher_probe_run {
	const struct usher_probe_conf *conf;
	struct usher_sample_set *samples; /* base labels job, instance, labels set */
	struct usher_arena *arena;        /* scratch freed after the run */
	int64_t started_mono_ns;
	int64_t deadline_mono_ms;         /* started + timeout */
	bool success;                     /* starts true; usher_probe_fail clears it */
	const char *failure_reason;       /* one of USHER_FAIL_*, first wins */
	struct usher_error err;           /* why, for the log; never a secret */
	void *type_data;                  /* the type's state for this run */
	/* When set (usher diag, --verbose runs), the type writes a
	 * human-readable account of what it did, one line per step: request
	 * lines, status, timings, extracted values with secrets masked. NULL
	 * in the daemon's scheduled runs: tracing costs nothing then. */
	struct usher_buf *trace;
	/* set by the scheduler: called by usher_probe_run_done */
	void (*on_done)(struct usher_probe_run *run);
	void *owner;
};

/* The generic series the scheduler adds to every run of a type. */
enum usher_probe_series {
	USHER_SERIES_PROBE,  /* probe_success, probe_duration_seconds, probe_failure_info */
	USHER_SERIES_SCRAPE, /* Prometheus' up and scrape_duration_seconds */
	/* probe_success and probe_duration_seconds; the type writes its own
	 * probe_failure_info with more labels (a journey's {reason,step}) */
	USHER_SERIES_PROBE_OWN_FAILURE,
};

struct usher_probe_type {
	const char *name;
	const char *help;
	enum usher_probe_series series;
	const struct usher_option *options; /* the type's own keys */
	size_t opts_size;                   /* its options struct */
	/* Cross-option checks once the table has filled pc->opts (compile
	 * regexes here or in init). Adds diagnostics at node; may be NULL. */
	enum usher_err (*check)(struct usher_cfgctx *ctx, struct usher_probe_conf *pc,
				const struct usher_ynode *node);
	/* The instance label when labels do not set one (blackbox: host:port). */
	const char *(*default_instance)(struct usher_arena *a, const struct usher_probe_conf *pc);
	/* Sets up an instance. *ctx is passed to the other callbacks. */
	enum usher_err (*init)(const struct usher_probe_conf *pc, const struct usher_probe_env *env,
			       void **ctx, struct usher_error *err);
	/* Asynchronous types: begin a run on the loop thread, and call
	 * usher_probe_run_done(run) (on the loop thread) when it ends. A run
	 * that cannot start calls usher_probe_fail and returns nonzero; no
	 * done call follows then. */
	enum usher_err (*start)(void *ctx, struct usher_probe_run *run);
	/* Asynchronous types: abandons a run begun by start (timeout, reload,
	 * shutdown): release everything it holds; usher_probe_run_done must
	 * not follow.
	 * Blocking types: called from the loop thread *while* .run executes on
	 * a worker, to make it return soon (PQcancel, shutdown(2) on the
	 * socket); it must be thread-safe and may find the run already over.
	 * The run still ends normally. May be NULL for blocking types. */
	void (*cancel)(void *ctx, struct usher_probe_run *run);
	/* Blocking types instead: one whole run on a worker thread, bounded by
	 * run->deadline_mono_ms (every wait inside must have a timeout). Use
	 * only ctx and run; the config (run->conf) stays valid throughout.
	 * Exactly one of start and run is set. */
	void (*run)(void *ctx, struct usher_probe_run *run);
	void (*free)(void *ctx);
};

/* Marks run failed with reason (first wins) and a message for the log. */
void usher_probe_fail(struct usher_probe_run *run, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Appends one line (a newline is added) to run->trace when tracing. */
void usher_probe_trace(struct usher_probe_run *run, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Tells the scheduler an asynchronous run has ended. */
void usher_probe_run_done(struct usher_probe_run *run);
/* The labels every sample of a run of pc carries, as a NULL-terminated
 * name/value list: job, instance, then pc's labels (a job or instance
 * among them is left out: the conf already resolved those). The strings
 * are pc's; the caller frees the array with free(). */
const char **usher_probe_base_labels(const struct usher_probe_conf *pc);

/* The probe types usher knows, by name; NULL when unknown. */
const struct usher_probe_type *usher_probe_type_find(const char *name);
/* All of them, NULL-terminated. */
extern const struct usher_probe_type *const usher_probe_types[];

#endif
