/* usher diag: run configured probes once, now, all at once, plus deeper
 * per-type checks (PostgreSQL, Redis over their own short-lived
 * connections; HTTP, Memcached and the host from the probe's own samples),
 * and turn the results into findings with a status, a one-line hint and a
 * runbook link, rendered as a table for people or as JSON for scripts.
 * docs/diag.md documents every check, its thresholds and the JSON schema. */
#ifndef USHER_PROBES_DIAG_H
#define USHER_PROBES_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "metrics/textparse.h"

/* Ordered: a report's status is its worst finding's. */
enum usher_diag_status {
	USHER_DIAG_OK = 0,
	USHER_DIAG_WARN, /* degraded: look at it soon */
	USHER_DIAG_FAIL, /* failed: look at it now */
};

/* "ok", "warn", "fail": the JSON spelling. */
const char *usher_diag_status_name(enum usher_diag_status s);

/* One thing diag checked. Strings live in the report's arena. */
struct usher_diag_finding {
	enum usher_diag_status status;
	const char *check;   /* stable id, e.g. "postgres.connections" */
	const char *summary; /* one line: what was measured */
	const char *hint;    /* one line: what to do; NULL when all is well */
	const char *alert;   /* the alert whose runbook applies; NULL for none */
	const char *detail;  /* more lines (a lock chain, top statements); may be NULL */
};

/* Everything diag found about one probe. */
struct usher_diag_report {
	const struct usher_probe_conf *conf;
	struct usher_arena *arena;     /* owns the strings below */
	enum usher_diag_status status; /* worst of the probe's result and findings */
	bool probe_success;
	const char *failure_reason; /* a USHER_FAIL_* reason when !probe_success */
	const char *error;          /* the probe's message when !probe_success */
	double duration_s;          /* of the probe's run */
	const char *trace;          /* the run's trace when asked for; may be NULL */
	/* the probe's samples, rendered and parsed back (for the checks that
	 * read them, and for tests) */
	struct usher_tp_result samples;
	struct usher_diag_finding *findings;
	size_t nfindings, capfindings;
};

/* Adds a finding to r (strings copied; hint, alert, detail may be NULL)
 * and raises r->status to it. Returns the finding, for a detail added
 * later. */
struct usher_diag_finding *usher_diag_add(struct usher_diag_report *r, enum usher_diag_status st,
					  const char *check, const char *alert, const char *hint,
					  const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Sets f's detail (copied into r's arena). */
void usher_diag_detail(struct usher_diag_report *r, struct usher_diag_finding *f,
		       const char *detail);

/* Thresholds of the checks: docs/diag.md says what each means. Fractions
 * are 0..1, durations in seconds. usher_diag_thresholds_default fills
 * the documented defaults. */
struct usher_diag_thresholds {
	double pg_conn_warn, pg_conn_fail; /* used / max_connections */
	double pg_lock_wait_warn_s, pg_lock_wait_fail_s;
	double pg_long_query_warn_s, pg_long_query_fail_s;
	double pg_idle_tx_warn_s, pg_idle_tx_fail_s;
	double pg_repl_lag_warn_s, pg_repl_lag_fail_s;
	double pg_cache_hit_warn;              /* below this ratio */
	double pg_cache_hit_min_blocks;        /* hit + read needed to judge */
	double pg_dead_ratio_warn;             /* dead / (live + dead) */
	double pg_dead_min_tuples;             /* dead tuples needed to judge */
	double pg_seq_warn, pg_seq_fail;       /* used fraction of a sequence's range */
	double pg_xid_warn, pg_xid_fail;       /* age(datfrozenxid), transactions */
	double redis_mem_warn, redis_mem_fail; /* used_memory / maxmemory */
	double redis_frag_warn;                /* mem_fragmentation_ratio above */
	double redis_frag_min_bytes;           /* rss - used needed to judge */
	double redis_hit_warn;                 /* below this ratio */
	double redis_hit_min_lookups;
	double redis_clients_warn;     /* connected / maxclients */
	double redis_slowlog_recent_s; /* slowlog entries newer than this warn */
	double redis_bigkey_warn_bytes;
	int64_t redis_bigkey_scan_max; /* keys looked at, at most */
	double http_slow_warn_s;       /* the whole request */
	double tls_days_warn, tls_days_fail;
	double mc_conn_warn;                             /* curr / max connections */
	double host_mem_avail_warn, host_mem_avail_fail; /* available fraction below */
	double host_fs_avail_warn, host_fs_avail_fail;
	double host_load_per_cpu_warn; /* load5 / CPUs */
};

void usher_diag_thresholds_default(struct usher_diag_thresholds *t);
/* Sets one threshold from "NAME=VALUE", NAME a field above: fractions as
 * 0.8 or 80%, fields ending in _s as durations (30s, 5m, or seconds),
 * byte sizes as 10MiB. USHER_ERR_NOTFOUND for an unknown name,
 * USHER_ERR_INVALID for a bad value; err says which, t is unchanged. */
enum usher_err usher_diag_threshold_set(struct usher_diag_thresholds *t, const char *assignment,
					struct usher_error *err);

/* What usher diag was asked to do. */
struct usher_diag_opts {
	const char *const *names; /* probes to run, nnames of them; none: all */
	size_t nnames;
	bool trace_all;          /* trace every probe (-v); named probes always are */
	int64_t deep_timeout_ms; /* bound of each deep check; 0: the probe's timeout, at least 5s */
	struct usher_diag_thresholds th;
};

/* Runs the probes of cfg that opts selects, each once and all at the same
 * time, with their deep checks, and fills *out with one report per probe,
 * in the config's order (*n of them; free with usher_diag_reports_free).
 * Returns USHER_ERR_NOTFOUND when a name matches no probe, or the error of
 * a probe that could not be set up at all; err says which. A target that is
 * down is a report with status FAIL, not an error. */
enum usher_err usher_diag_run(const struct usher_config *cfg, const struct usher_diag_opts *opts,
			      struct usher_diag_report **out, size_t *n, struct usher_error *err);
void usher_diag_reports_free(struct usher_diag_report *r, size_t n);

/* The worst status of n reports (OK when n is 0). */
enum usher_diag_status usher_diag_overall(const struct usher_diag_report *r, size_t n);

/* ---- per-type checks (each in its own file) ---------------------------- */

/* Deep checks over a connection of their own; bounded by deadline_mono_ms.
 * They add findings to r; a failure to connect is a FAIL finding. They run
 * on a thread of their own and touch nothing but r and opts. */
void usher_diag_postgres(const struct usher_probe_conf *pc, const struct usher_diag_opts *opts,
			 int64_t deadline_mono_ms, struct usher_diag_report *r);
void usher_diag_redis(const struct usher_probe_conf *pc, const struct usher_diag_opts *opts,
		      int64_t deadline_mono_ms, struct usher_diag_report *r);
/* The Redis checks that read an INFO ALL reply (info, NUL-terminated, as
 * the server sent it) and the `save` setting (may be ""): memory,
 * fragmentation, hit ratio, clients, persistence, replication. Fields
 * that are missing or not numbers leave their figures out, never crash. */
void usher_diag_redis_info(const struct usher_diag_thresholds *th, const char *info,
			   const char *save, int64_t now_s, struct usher_diag_report *r);
/* Checks that read the probe's samples (r->samples): http (phases, status,
 * TLS days left), memcached, host. now_s is the wall clock. */
void usher_diag_from_samples(const struct usher_diag_thresholds *th, int64_t now_s,
			     struct usher_diag_report *r);

/* The value of the first sample named name (family plus suffix) whose
 * labels include the given pairs (NULL-terminated name/value list, may be
 * NULL); false when there is none. */
bool usher_diag_sample(const struct usher_diag_report *r, const char *name,
		       const char *const *labels, double *out);

/* ---- rendering ---------------------------------------------------------- */

struct usher_diag_render {
	bool color;               /* ANSI colours (a TTY without NO_COLOR) */
	bool utf8;                /* ✓ ⚠ ✗; else OK WARN FAIL */
	const char *runbook_base; /* "runbooks/"; "{alert}" in it is replaced, else <alert>.md is
				     appended */
};

/* The runbook link of alert under base, in a. */
const char *usher_diag_runbook_url(struct usher_arena *a, const char *base, const char *alert);

/* The table for people: one row per probe, its findings under it. */
enum usher_err usher_diag_render_text(const struct usher_diag_report *r, size_t n,
				      const struct usher_diag_render *how, struct usher_buf *out);
/* The JSON document (schema in docs/diag.md). */
enum usher_err usher_diag_render_json(const struct usher_diag_report *r, size_t n,
				      const struct usher_diag_render *how, int64_t now_ms,
				      struct usher_buf *out);

#endif
