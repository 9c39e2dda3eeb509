/* usherd's rule engine: the in-memory series store fed by everything the
 * registry publishes (probe runs, scrapes, textfiles, the daemon's own
 * metrics), the rule groups of rule_files evaluated on their own thread,
 * alert state kept in the state store across restarts, and the firing
 * alerts handed to the alerting pipeline.
 *
 * Reloads are two-phase like the rest of usherd: prepare loads and checks
 * every rule file (any error rejects the whole set, the old rules keep
 * running), commit swaps the new groups in between two evaluations,
 * carrying the alert state of rules that stayed. */
#ifndef USHERD_RULEENG_H
#define USHERD_RULEENG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "config/diag.h"
#include "core/log.h"
#include "metrics/registry.h"
#include "promql/engine.h"
#include "rules/group.h"
#include "store/store.h"
#include "tsdb/tsdb.h"

struct usherd_rules;
struct usherd_rules_plan;

/* Where alerts go: an array in the POST /api/v2/alerts shape (labels,
 * annotations, startsAt, endsAt, generatorURL), called on the evaluation
 * thread after each group evaluation that has alerts to send. */
typedef void usherd_alert_sink_fn(void *arg, const json_t *alerts);

/* Creates the store (sized by cfg->storage) and starts feeding it from
 * reg, whose observer it becomes. store may be NULL (no persisted alert
 * state). Nothing is evaluated before usherd_rules_commit. */
struct usherd_rules *usherd_rules_new(const struct usher_config *cfg, struct usher_registry *reg,
				      struct usher_store *store, struct usher_log *log);
/* Stops the evaluation thread (no alert is sent after it returns); the
 * store keeps being fed. NULL ok. */
void usherd_rules_stop(struct usherd_rules *r);
/* Stops the evaluation thread and frees everything. NULL ok. */
void usherd_rules_free(struct usherd_rules *r);

/* Loads cfg's rule files (globs relative to the config file). On failure
 * every problem is in diags (file:line:col) and *plan is NULL. */
enum usher_err usherd_rules_prepare(struct usherd_rules *r, const struct usher_config *cfg,
				    struct usherd_rules_plan **plan, struct usher_diags *diags);
/* Puts the prepared rules in place (taken), with cfg's global settings. */
void usherd_rules_commit(struct usherd_rules *r, struct usherd_rules_plan *plan,
			 const struct usher_config *cfg);
void usherd_rules_plan_free(struct usherd_rules_plan *plan);

/* Sets where alerts go (before the first commit). */
void usherd_rules_set_alert_sink(struct usherd_rules *r, usherd_alert_sink_fn *fn, void *arg);

/* For the query API. */
struct usher_tsdb *usherd_rules_tsdb(struct usherd_rules *r);
const struct usher_promql_engine *usherd_rules_engine(struct usherd_rules *r);

/* Calls fn for every group of the current rule set, in file order, while
 * holding the set: fn must not call back into r. */
typedef void usherd_group_visit_fn(void *arg, const struct usher_group *g);
void usherd_rules_foreach_group(struct usherd_rules *r, usherd_group_visit_fn *fn, void *arg);

/* The number of rule files and groups loaded (status). */
void usherd_rules_counts(struct usherd_rules *r, size_t *files, size_t *groups, size_t *rules);

#endif
