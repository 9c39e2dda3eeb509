/* The log sink interface. Each sink type (stdout, file, journald,
 * elasticsearch, logstash) is one `static const struct usher_log_sink_type`
 * listed in logship/sinks.c; each configured sink is an instance holding the
 * type and a context. Sinks get every event already encoded, on the thread
 * that logs, under logship's lock: a write must never block for long, so
 * network sinks only queue (logship/shipper.h does the rest). */
#ifndef USHER_LOGSHIP_SINK_H
#define USHER_LOGSHIP_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/options.h"
#include "core/err.h"
#include "core/log.h"

struct usher_log_sink_type;

/* One entry of logging.sinks. */
struct usher_log_sink_conf {
	const char *name; /* the sink label and spool directory; default: the type */
	const char *type_name;
	const struct usher_log_sink_type *type;
	void *opts; /* the type's options struct (type->opts_size) */
	int line, col;
};

/* Why events were dropped (usher_log_dropped_total{reason}). */
enum usher_log_drop {
	USHER_DROP_QUEUE_FULL,  /* the in-memory queue in front of the spool was full */
	USHER_DROP_SPOOL_FULL,  /* the oldest spooled events made room for new ones */
	USHER_DROP_SPOOL_ERROR, /* the spool could not be written */
	USHER_DROP_CORRUPT,     /* a damaged spool record was skipped */
	USHER_DROP_NREASONS,
};

/* A sink's counters. They live in logship, not in the instance, so they
 * survive reloads; all fields are updated with relaxed atomics. */
struct usher_log_sink_stats {
	char name[64];
	bool network;                      /* has a spool */
	atomic_uint_least64_t delivered;   /* written, or acknowledged by the server */
	atomic_uint_least64_t failed;      /* a local write failed */
	atomic_uint_least64_t retried;     /* an attempt to deliver will be repeated */
	atomic_uint_least64_t dead_letter; /* refused for good; in the dead-letter file */
	atomic_uint_least64_t dropped[USHER_DROP_NREASONS];
	atomic_uint_least64_t spool_bytes; /* gauge */
};

/* What logship lends a sink instance. */
struct usher_log_sink_env {
	struct usher_log *log; /* for the sink's own complaints, never from .write */
	const char *dir;       /* <state_dir>/logship/<name>, created by logship */
	enum usher_log_format stdout_format;
	struct usher_log_sink_stats *stats;
};

/* One event as sinks get it. */
struct usher_log_entry {
	const struct usher_log_record *rec;
	const char *ecs; /* the ECS JSON line, newline included */
	size_t ecs_len;
	const char *text; /* the text line, when a sink asked for it (else NULL) */
	size_t text_len;
	const char *id; /* event.id */
	uint64_t seq;   /* event.sequence */
	/* the extra fields logship adds (static labels), for sinks that
	 * encode the record themselves (journald) */
	const struct usher_log_field *extra;
	size_t nextra;
};

struct usher_log_sink_type {
	const char *name;
	const char *help;
	const struct usher_option *options; /* the type's own keys */
	size_t opts_size;
	/* Cross-option checks once the table has filled sc->opts. Adds
	 * diagnostics at node; may be NULL. */
	enum usher_err (*check)(struct usher_cfgctx *ctx, struct usher_log_sink_conf *sc,
				const struct usher_ynode *node);
	/* Whether the instance wants entries' text line (stdout in text). */
	bool (*wants_text)(void *ctx);
	/* Sets up an instance without side effects on a running one of the
	 * same name (no spool opened yet). *ctx goes to the other callbacks. */
	enum usher_err (*init)(const struct usher_log_sink_conf *sc,
			       const struct usher_log_sink_env *env, void **ctx,
			       struct usher_error *err);
	/* Begins work once the previous instance of the same name is gone
	 * (opens the spool, starts threads). May be NULL. */
	enum usher_err (*start)(void *ctx, struct usher_error *err);
	/* One event, under logship's lock. Must not block for long. */
	void (*write)(void *ctx, const struct usher_log_entry *e);
	/* Deliver what is pending now rather than at the next flush
	 * interval. May be NULL. */
	void (*flush)(void *ctx);
	/* SIGUSR1: reopen files (logrotate moved them). Under logship's
	 * lock. May be NULL. */
	void (*reopen)(void *ctx);
	/* Bytes not yet delivered (spool and queue), for shutdown. May be NULL. */
	uint64_t (*pending)(void *ctx);
	/* Stops (whatever was queued goes to the spool) and frees. */
	void (*free)(void *ctx);
};

/* The sink types usher knows, NULL-terminated, and lookup by name. */
extern const struct usher_log_sink_type *const usher_log_sink_types[];
const struct usher_log_sink_type *usher_log_sink_type_find(const char *name);

/* The `logging.sinks` parser (USHER_OPT_CUSTOM): fills the struct
 * usher_list (of struct usher_log_sink_conf) at field. */
enum usher_err usher_log_sinks_parse(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				     void *field);
/* The keys every sink has. */
extern const struct usher_option usher_log_sink_common_options[];

/* The sink types (for the registry in sinks.c). */
extern const struct usher_log_sink_type usher_log_sink_stdout;
extern const struct usher_log_sink_type usher_log_sink_file;
extern const struct usher_log_sink_type usher_log_sink_journald;
extern const struct usher_log_sink_type usher_log_sink_elasticsearch;
extern const struct usher_log_sink_type usher_log_sink_logstash;

#endif
