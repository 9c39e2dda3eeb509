/* Rule group evaluation: recording rules write their results back into the
 * series store; alerting rules run Prometheus' alert state machine
 * (inactive → pending → firing → resolved, `for`, `keep_firing_for`,
 * resolved alerts kept 15 minutes), write ALERTS / ALERTS_FOR_STATE and hand
 * the alerts to send to a callback (the notifier). The daemon owns one
 * usher_group per loaded group and calls usher_group_eval every interval. */
#ifndef USHER_RULES_GROUP_H
#define USHER_RULES_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "promql/engine.h"
#include "rules/rulefile.h"
#include "tsdb/labels.h"
#include "tsdb/tsdb.h"

/* A timestamp that was never set (Go's zero time.Time). */
#define USHER_TIME_UNSET INT64_MIN

enum usher_alert_state {
	USHER_ALERT_INACTIVE, /* resolved, kept for the resolved retention */
	USHER_ALERT_PENDING,
	USHER_ALERT_FIRING,
};

/* "inactive", "pending", "firing" (Prometheus' words, as in ALERTS). */
const char *usher_alert_state_name(enum usher_alert_state s);

/* One alert of an alerting rule, as the rule tracks it. Times are ms since
 * the epoch, USHER_TIME_UNSET when not reached. */
struct usher_rule_alert {
	struct usher_labels labels;      /* the sample's labels, rule labels, alertname */
	struct usher_labels annotations; /* expanded; may hold empty values */
	enum usher_alert_state state;
	double value;
	int64_t active_at;
	int64_t fired_at;
	int64_t resolved_at;
	int64_t last_sent_at;
	int64_t valid_until;
	int64_t keep_firing_since;
};

/* An alert handed to the notifier: what Prometheus posts to Alertmanager. */
struct usher_alert {
	struct usher_labels labels; /* alert labels plus external labels (the alert's win) */
	struct usher_labels annotations;
	int64_t starts_at_ms;      /* when it started firing */
	int64_t ends_at_ms;        /* resolved: when; firing: until when it is valid */
	const char *generator_url; /* external_url/graph?g0.expr=…&g0.tab=1 */
	bool resolved;
};

/* Called after an alerting rule's evaluation with the alerts that need
 * (re)sending: newly firing, resolved, or not sent for resend_delay. The
 * alerts and everything they point to are valid only during the call.
 * Pending alerts are never sent. */
typedef void usher_alert_send_fn(void *ctx, const struct usher_rule_group *group,
				 const struct usher_rule *rule, const struct usher_alert *alerts,
				 size_t n);

struct usher_group_options {
	const struct usher_promql_engine *engine; /* borrowed */
	struct usher_storage storage;             /* what the rules query */
	struct usher_tsdb *db;                    /* where results go (borrowed); NULL: nowhere */
	int64_t default_interval_ms;              /* global evaluation_interval (1m when 0) */
	int64_t default_query_offset_ms;          /* for groups that do not set query_offset */
	struct usher_labels external_labels;      /* copied */
	const char *external_url;                 /* copied; NULL: "" */
	int64_t resend_delay_ms;                  /* 0: Prometheus' 1m */
	int64_t resolved_retention_ms;            /* 0: Prometheus' 15m */
	usher_alert_send_fn *send;                /* may be NULL */
	void *send_ctx;
};

/* Prometheus' defaults: 1m interval, 1m resend delay, 15m retention. */
void usher_group_options_default(struct usher_group_options *o);

struct usher_group;

/* A group evaluating def (borrowed: the rule file must outlive the group).
 * o is copied. */
struct usher_group *usher_group_new(const struct usher_rule_group *def,
				    const struct usher_group_options *o);
/* Frees the group. With t >= 0 the series its rules wrote are marked stale
 * at t (a group removed by a reload); t < 0 leaves them. Accepts NULL. */
void usher_group_free(struct usher_group *g, int64_t t);

const struct usher_rule_group *usher_group_def(const struct usher_group *g);
/* The evaluation interval: the group's own or the default. */
int64_t usher_group_interval(const struct usher_group *g);

/* Evaluates every rule in order at ts (ms): recording rules append their
 * results (seen by the later rules), alerting rules advance their alerts,
 * append ALERTS and ALERTS_FOR_STATE and call the send callback. A rule
 * that fails (query error, duplicate label sets, limit) is counted and
 * remembered (usher_group_rule_status) and the others go on; for a failing
 * alerting rule over `limit` its alerts are dropped, as Prometheus does.
 * Returns USHER_OK, or USHER_ERR_INVALID when a rule failed (the first
 * failure's message in err, "rule NAME: MESSAGE"). Not thread-safe against
 * itself: one evaluator per group. */
enum usher_err usher_group_eval(struct usher_group *g, int64_t ts, struct usher_error *err);

struct usher_group_stats {
	uint64_t evaluations;      /* usher_rule_group_iterations_total */
	uint64_t rule_failures;    /* usher_rule_evaluation_failures_total{rule_group} */
	uint64_t rule_evaluations; /* usher_rule_evaluations_total{rule_group} */
	int64_t last_eval_ms;      /* USHER_TIME_UNSET before the first */
	int64_t last_duration_ns;  /* usher_rule_group_last_duration_seconds × 1e9 */
	uint64_t samples_rejected; /* results the store refused (out of order, limit) */
};

/* A snapshot of the counters. Thread-safe. */
void usher_group_stats(const struct usher_group *g, struct usher_group_stats *st);

struct usher_rule_status {
	const struct usher_rule *rule;
	const char *health;     /* "unknown" before its first evaluation, "ok", "err" */
	const char *last_error; /* in the caller's arena; "" when none */
	int64_t last_eval_ms;
	int64_t last_duration_ns;
	size_t nalerts; /* alerting: pending, firing and retained resolved alerts */
};

/* The status of rule i (0-based, file order), strings copied into a.
 * Thread-safe. */
void usher_group_rule_status(const struct usher_group *g, size_t i, struct usher_arena *a,
			     struct usher_rule_status *out);

/* Copies the alerts of rule i (all states, resolved included) into a,
 * sorted by labels. Returns how many. Thread-safe (for the HTTP API and for
 * persisting alert state). */
size_t usher_group_alerts(const struct usher_group *g, size_t i, struct usher_arena *a,
			  struct usher_rule_alert **out);

/* Puts back an alert of rule i after a restart (from the state store):
 * a's labels and annotations are copied; an alert with the same labels is
 * replaced. A pending alert keeps its active_at, so `for` goes on counting
 * from where it was; keep_firing_since survives too (what Prometheus
 * loses, its #13957). USHER_ERR_INVALID when rule i is not an alerting
 * rule. Call before the first evaluation. */
enum usher_err usher_group_restore_alert(struct usher_group *g, size_t i,
					 const struct usher_rule_alert *a);

#endif
