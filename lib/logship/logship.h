/* logship: the output behind usher_log. It numbers every event (a sequence
 * that keeps growing across restarts, and a deterministic event.id),
 * encodes it once, and hands it to each configured sink (logging.sinks:
 * stdout, file, journald, elasticsearch, logstash). Reloads swap the sink
 * set in one step; counters survive reloads and are exported as
 * usher_log_events_total{sink,outcome}, usher_log_dropped_total{sink,reason}
 * and usher_log_spool_bytes{sink}. docs/internals/logship.md. */
#ifndef USHER_LOGSHIP_LOGSHIP_H
#define USHER_LOGSHIP_LOGSHIP_H

#include <stdint.h>

#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "metrics/registry.h"

struct usher_logship;
struct usher_logship_plan;

/* A logship for log (borrowed; it must outlive the logship). It has no
 * sinks until a plan is committed; attach it with
 * usher_log_set_output(log, usher_logship_emit, ls). */
struct usher_logship *usher_logship_new(struct usher_log *log);

/* Sets up cfg's sinks (one stdout sink when logging.sinks is empty) in
 * *out without touching the running ones: files are opened, the sinks'
 * directories under <cfg->state_dir>/logship are created, and the first
 * call reads and advances the sequence epoch there. On failure nothing
 * changed and err says why. */
enum usher_err usher_logship_prepare(struct usher_logship *ls, const struct usher_config *cfg,
				     struct usher_logship_plan **out, struct usher_error *err);
/* Switches to plan (taken): the old sinks stop (what they queued goes to
 * their spools) and the new ones start. A sink that cannot start is left
 * out, and that is logged. */
void usher_logship_commit(struct usher_logship *ls, struct usher_logship_plan *plan);
/* Frees a plan that was not committed. NULL ok. */
void usher_logship_plan_free(struct usher_logship_plan *plan);

/* The usher_log output: arg is the logship. */
void usher_logship_emit(void *arg, const struct usher_log_record *r);

/* SIGUSR1: file sinks reopen their files. */
void usher_logship_reopen(struct usher_logship *ls);

/* Adds the usher_log_* metrics to reg as a collector. ls must outlive reg's
 * renders (free reg, or stop its HTTP server, first). */
void usher_logship_register_metrics(struct usher_logship *ls, struct usher_registry *reg);

/* Asks network sinks to send what they hold and waits until they have
 * delivered it or wait_ms passed. */
void usher_logship_drain(struct usher_logship *ls, int64_t wait_ms);

/* Stops every sink (queues go to the spools) and frees. Detach it from the
 * logger first. NULL ok. */
void usher_logship_free(struct usher_logship *ls);

#endif
