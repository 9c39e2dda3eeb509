/* usherd's rule engine: the registry feeding the series store, rule groups
 * on their own evaluation thread, persisted alert state, self metrics. */
#include "ruleeng.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "rules/rulefile.h"

/* One producer's batch: a probe instance, a scrape target, a collector. */
struct feed {
	const void *owner;
	struct usher_tsdb_batch *b;
};

struct rgroup {
	struct usher_group *g;
	char *key;       /* "file;name", Prometheus' rule_group label */
	int64_t next_ms; /* wall clock of the next evaluation */
	bool persisted;  /* the store may hold rows of this group */
	char last_err[256];
	uint64_t missed;
};

struct ruleset {
	struct usher_rulefile **files;
	size_t nfiles;
	struct rgroup *groups;
	size_t ngroups;
};

struct usherd_rules_plan {
	struct ruleset set;
};

struct usherd_rules {
	struct usher_registry *reg;
	struct usher_store *store;
	struct usher_log *log;
	struct usher_tsdb *db;
	struct usher_promql_engine *eng;

	pthread_mutex_t feed_lock;
	struct feed *feeds;
	size_t nfeeds, capfeeds;
	struct usher_complain limit_complaint; /* under feed_lock */

	/* the current set: changed by the evaluation thread only, under
	 * set_lock for writing; readers (API, collector) take it for reading */
	pthread_rwlock_t set_lock;
	struct ruleset *set;

	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t cond;
	struct ruleset *pending;
	bool stop;
	bool started;
	int64_t self_interval_ms;
	int64_t retention_ms;
	int64_t hold_until_ms; /* no group's first evaluation before (wall ms) */
	pthread_t thread;

	int64_t next_self_ms; /* evaluation thread only */
	usherd_alert_sink_fn *sink;
	void *sink_arg;
	bool store_ok;
};

static const struct usher_metric_desc desc_iterations = {
	"usher_rule_group_iterations", USHER_METRIC_COUNTER,
	"The number of scheduled evaluations of the rule group"};
static const struct usher_metric_desc desc_missed = {
	"usher_rule_group_iterations_missed", USHER_METRIC_COUNTER,
	"Evaluations of the rule group skipped because the previous one ran late"};
static const struct usher_metric_desc desc_failures = {
	"usher_rule_evaluation_failures", USHER_METRIC_COUNTER,
	"The number of rule evaluations that failed"};
static const struct usher_metric_desc desc_evaluations = {
	"usher_rule_evaluations", USHER_METRIC_COUNTER, "The number of rule evaluations"};
static const struct usher_metric_desc desc_last_duration = {
	"usher_rule_group_last_duration_seconds", USHER_METRIC_GAUGE,
	"How long the last evaluation of the rule group took"};
static const struct usher_metric_desc desc_last_eval = {
	"usher_rule_group_last_evaluation_timestamp_seconds", USHER_METRIC_GAUGE,
	"When the rule group was last evaluated"};
static const struct usher_metric_desc desc_interval = {
	"usher_rule_group_interval_seconds", USHER_METRIC_GAUGE,
	"The evaluation interval of the rule group"};
static const struct usher_metric_desc desc_rules = {
	"usher_rule_group_rules", USHER_METRIC_GAUGE, "The number of rules in the group"};
static const struct usher_metric_desc desc_rejected = {
	"usher_rule_group_samples_rejected", USHER_METRIC_COUNTER,
	"Rule results the series store refused (out of order, series limit)"};
static const struct usher_metric_desc desc_series = {
	"usher_tsdb_head_series", USHER_METRIC_GAUGE, "Series held in the in-memory store"};
static const struct usher_metric_desc desc_samples = {
	"usher_tsdb_head_samples", USHER_METRIC_GAUGE, "Samples held in the in-memory store"};
static const struct usher_metric_desc desc_chunks = {
	"usher_tsdb_head_chunks", USHER_METRIC_GAUGE, "Chunks held in the in-memory store"};
static const struct usher_metric_desc desc_bytes = {
	"usher_tsdb_memory_bytes", USHER_METRIC_GAUGE,
	"Heap bytes of the in-memory store: chunks, series, labels, index"};
static const struct usher_metric_desc desc_appended = {
	"usher_tsdb_head_samples_appended", USHER_METRIC_COUNTER, "Samples appended to the store"};
static const struct usher_metric_desc desc_ooo = {
	"usher_tsdb_out_of_order_samples", USHER_METRIC_COUNTER,
	"Samples refused as out of order or duplicate"};
static const struct usher_metric_desc desc_limit = {
	"usher_tsdb_series_limit_hits", USHER_METRIC_COUNTER,
	"New series refused because storage.max_series was reached"};
static const struct usher_metric_desc desc_created = {
	"usher_tsdb_head_series_created", USHER_METRIC_COUNTER, "Series created in the store"};
static const struct usher_metric_desc desc_removed = {
	"usher_tsdb_head_series_removed", USHER_METRIC_COUNTER,
	"Series removed from the store (no sample left in the retention window)"};
static const struct usher_metric_desc desc_retention = {
	"usher_tsdb_retention_limit_seconds", USHER_METRIC_GAUGE, "storage.retention"};
static const struct usher_metric_desc desc_min_time = {
	"usher_tsdb_lowest_timestamp_seconds", USHER_METRIC_GAUGE,
	"The time of the oldest sample held"};

/* ---- the registry feeding the store ------------------------------------ */

struct visit {
	struct usher_tsdb_batch *b;
	int64_t t;
};

static void visit_sample(void *arg, const char *name, const char *const *pairs, double v)
{
	struct visit *vi = arg;
	const char *all[2 * 66 + 3];
	size_t n = 0, i;

	all[n++] = "__name__";
	all[n++] = name;
	for (i = 0; pairs[i] && n + 3 < sizeof(all) / sizeof(all[0]); i += 2) {
		if (!*pairs[i + 1])
			continue; /* an empty value is an absent label */
		all[n++] = pairs[i];
		all[n++] = pairs[i + 1];
	}
	all[n] = NULL;
	usher_tsdb_batch_addv(vi->b, all, vi->t, v);
}

static struct feed *feed_find(struct usherd_rules *r, const void *owner, bool create)
{
	size_t i;

	for (i = 0; i < r->nfeeds; i++)
		if (r->feeds[i].owner == owner)
			return &r->feeds[i];
	if (!create)
		return NULL;
	if (r->nfeeds == r->capfeeds) {
		r->capfeeds = r->capfeeds ? 2 * r->capfeeds : 64;
		r->feeds = usher_realloc(r->feeds, r->capfeeds * sizeof(*r->feeds));
	}
	r->feeds[r->nfeeds].owner = owner;
	r->feeds[r->nfeeds].b = usher_tsdb_batch_new(r->db);
	return &r->feeds[r->nfeeds++];
}

static void on_publish(void *arg, const void *owner, const struct usher_sample_set *set)
{
	struct usherd_rules *r = arg;
	struct visit vi;
	struct feed *f;

	struct usher_error err;
	size_t rejected = 0;
	uint64_t held = 0;

	usher_error_clear(&err);
	pthread_mutex_lock(&r->feed_lock);
	f = feed_find(r, owner, true);
	vi.b = f->b;
	vi.t = usher_now_ms();
	usher_sample_set_foreach(set, visit_sample, &vi);
	/* rejected samples are counted by the store; the series limit is
	 * also said out loud (rate-limited): rules and dashboards are missing
	 * data until someone raises storage.max_series or drops labels */
	if (usher_tsdb_batch_commit(f->b, vi.t, &rejected, &err) == USHER_ERR_TOOBIG &&
	    usher_complain(&r->limit_complaint, usher_mono_ms(), &held)) {
		struct usher_log_field fl[] = {
			USHER_LFS("event.action", "series-limit-reached"),
			USHER_LFS("event.outcome", "failure"),
			USHER_LFS("error.message", err.msg),
		};
		usher_log_event(r->log, USHER_LOG_ERROR, fl, 3,
				"series store: %zu samples refused (%llu more times before): %s",
				rejected, (unsigned long long)held, err.msg);
	}
	pthread_mutex_unlock(&r->feed_lock);
}

static void on_remove(void *arg, const void *owner)
{
	struct usherd_rules *r = arg;
	struct feed *f;

	pthread_mutex_lock(&r->feed_lock);
	f = feed_find(r, owner, false);
	if (f) {
		usher_tsdb_batch_free(f->b, usher_now_ms());
		*f = r->feeds[--r->nfeeds];
	}
	pthread_mutex_unlock(&r->feed_lock);
}

static void on_move(void *arg, const void *old_owner, const void *new_owner)
{
	struct usherd_rules *r = arg;
	struct feed *from, *to;

	pthread_mutex_lock(&r->feed_lock);
	from = feed_find(r, old_owner, false);
	if (from) {
		to = feed_find(r, new_owner, false);
		if (to) {
			usher_tsdb_batch_free(to->b, -1);
			*to = r->feeds[--r->nfeeds];
			from = feed_find(r, old_owner, false);
		}
		from->owner = new_owner;
	}
	pthread_mutex_unlock(&r->feed_lock);
}

/* ---- self metrics -------------------------------------------------------- */

static struct usher_sample_set *collect(void *arg)
{
	struct usherd_rules *r = arg;
	struct usher_sample_set *set = usher_sample_set_new(NULL);
	struct usher_tsdb_stats ts;
	size_t i;

	usher_tsdb_stats(r->db, &ts);
	usher_sample_add(set, &desc_series, (double)ts.series, NULL);
	usher_sample_add(set, &desc_samples, (double)ts.samples, NULL);
	usher_sample_add(set, &desc_chunks, (double)ts.chunks, NULL);
	usher_sample_add(set, &desc_bytes, (double)ts.bytes, NULL);
	usher_sample_add(set, &desc_appended, (double)ts.appended, NULL);
	usher_sample_add(set, &desc_ooo, (double)ts.out_of_order, NULL);
	usher_sample_add(set, &desc_limit, (double)ts.series_limit_hits, NULL);
	usher_sample_add(set, &desc_created, (double)ts.series_created, NULL);
	usher_sample_add(set, &desc_removed, (double)ts.series_removed, NULL);
	usher_sample_add(set, &desc_min_time, (double)ts.mint / 1000.0, NULL);
	usher_sample_add(set, &desc_retention, (double)r->retention_ms / 1000.0, NULL);

	pthread_rwlock_rdlock(&r->set_lock);
	for (i = 0; r->set && i < r->set->ngroups; i++) {
		const struct rgroup *rg = &r->set->groups[i];
		struct usher_group_stats st;

		usher_group_stats(rg->g, &st);
		usher_sample_add(set, &desc_iterations, (double)st.evaluations, "rule_group", rg->key,
				 NULL);
		usher_sample_add(set, &desc_missed, (double)rg->missed, "rule_group", rg->key, NULL);
		usher_sample_add(set, &desc_failures, (double)st.rule_failures, "rule_group",
				 rg->key, NULL);
		usher_sample_add(set, &desc_evaluations, (double)st.rule_evaluations, "rule_group",
				 rg->key, NULL);
		usher_sample_add(set, &desc_rejected, (double)st.samples_rejected, "rule_group",
				 rg->key, NULL);
		usher_sample_add(set, &desc_last_duration, (double)st.last_duration_ns / 1e9,
				 "rule_group", rg->key, NULL);
		usher_sample_add(set, &desc_last_eval,
				 st.last_eval_ms == USHER_TIME_UNSET ? 0
								    : (double)st.last_eval_ms / 1000.0,
				 "rule_group", rg->key, NULL);
		usher_sample_add(set, &desc_interval, (double)usher_group_interval(rg->g) / 1000.0,
				 "rule_group", rg->key, NULL);
		usher_sample_add(set, &desc_rules, (double)usher_group_def(rg->g)->nrules,
				 "rule_group", rg->key, NULL);
	}
	pthread_rwlock_unlock(&r->set_lock);
	return set;
}

/* ---- persisted alert state ---------------------------------------------- */

static const char *const store_steps[] = {
	"CREATE TABLE rule_alerts ("
	" rule_group TEXT NOT NULL,"
	" rule TEXT NOT NULL,"
	" expr TEXT NOT NULL,"
	" labels TEXT NOT NULL,"
	" annotations TEXT NOT NULL,"
	" state INTEGER NOT NULL,"
	" value REAL,"
	" active_at INTEGER, fired_at INTEGER, resolved_at INTEGER,"
	" last_sent_at INTEGER, valid_until INTEGER, keep_firing_since INTEGER,"
	" PRIMARY KEY (rule_group, rule, expr, labels))",
	NULL,
};

static json_t *labels_json(const struct usher_labels *l)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < l->n; i++)
		json_object_set_new(o, l->v[i].name, json_string(l->v[i].value));
	return o;
}

/* Builds a label set from a JSON object into a (sorted, as stored). */
static bool labels_from_json(struct usher_arena *a, const char *text, struct usher_labels *out)
{
	json_t *o = json_loads(text, 0, NULL);
	struct usher_label *v;
	const char *k;
	json_t *val;
	size_t n = 0;

	if (!json_is_object(o)) {
		json_decref(o);
		return false;
	}
	v = usher_arena_zalloc(a, (json_object_size(o) + 1) * sizeof(*v));
	json_object_foreach(o, k, val) {
		if (!json_is_string(val))
			continue;
		v[n].name = usher_arena_strdup(a, k);
		v[n].value = usher_arena_strdup(a, json_string_value(val));
		n++;
	}
	json_decref(o);
	out->v = v;
	out->n = n;
	return usher_labels_normalize(out, v);
}

static void bind_time(sqlite3_stmt *q, int col, int64_t t)
{
	if (t == USHER_TIME_UNSET)
		sqlite3_bind_null(q, col);
	else
		sqlite3_bind_int64(q, col, t);
}

static int64_t col_time(sqlite3_stmt *q, int col)
{
	return sqlite3_column_type(q, col) == SQLITE_NULL ? USHER_TIME_UNSET
							  : sqlite3_column_int64(q, col);
}

static void store_complain(struct usherd_rules *r, const char *what, int rc)
{
	usher_log_warn(r->log, "state store: cannot %s alert state: %s", what,
		       r->store ? sqlite3_errmsg(usher_store_db(r->store)) : sqlite3_errstr(rc));
}

/* Replaces the rows of rg with its alerts now. */
static void persist_group(struct usherd_rules *r, struct rgroup *rg)
{
	const struct usher_rule_group *def = usher_group_def(rg->g);
	struct usher_arena *a = usher_arena_new();
	sqlite3 *db = usher_store_db(r->store);
	sqlite3_stmt *del = NULL, *ins = NULL;
	size_t i, j, total = 0;
	int rc;

	usher_store_lock(r->store);
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "DELETE FROM rule_alerts WHERE rule_group = ?", -1, &del,
					NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db,
					"INSERT OR REPLACE INTO rule_alerts VALUES "
					"(?,?,?,?,?,?,?,?,?,?,?,?,?)",
					-1, &ins, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(del, 1, rg->key, -1, SQLITE_STATIC);
		rc = sqlite3_step(del) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
	}
	for (i = 0; rc == SQLITE_OK && i < def->nrules; i++) {
		const struct usher_rule *rule = &def->rules[i];
		struct usher_rule_alert *al;
		size_t n;

		if (rule->type != USHER_RULE_ALERTING)
			continue;
		n = usher_group_alerts(rg->g, i, a, &al);
		total += n;
		for (j = 0; rc == SQLITE_OK && j < n; j++) {
			json_t *lj = labels_json(&al[j].labels), *aj = labels_json(&al[j].annotations);
			char *ls = json_dumps(lj, JSON_SORT_KEYS | JSON_COMPACT);
			char *as = json_dumps(aj, JSON_SORT_KEYS | JSON_COMPACT);

			sqlite3_reset(ins);
			sqlite3_bind_text(ins, 1, rg->key, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 2, rule->name, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 3, rule->expr_text, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 4, ls, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(ins, 5, as, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int(ins, 6, (int)al[j].state);
			sqlite3_bind_double(ins, 7, isnan(al[j].value) ? 0 : al[j].value);
			bind_time(ins, 8, al[j].active_at);
			bind_time(ins, 9, al[j].fired_at);
			bind_time(ins, 10, al[j].resolved_at);
			bind_time(ins, 11, al[j].last_sent_at);
			bind_time(ins, 12, al[j].valid_until);
			bind_time(ins, 13, al[j].keep_firing_since);
			rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
			free(ls);
			free(as);
			json_decref(lj);
			json_decref(aj);
		}
		usher_arena_reset(a);
	}
	sqlite3_finalize(del);
	sqlite3_finalize(ins);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		store_complain(r, "save", rc);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	usher_store_unlock(r->store);
	rg->persisted = total > 0;
	usher_arena_free(a);
}

/* Puts back the alerts the store holds for rg (a start). */
static void restore_group(struct usherd_rules *r, struct rgroup *rg)
{
	const struct usher_rule_group *def = usher_group_def(rg->g);
	sqlite3 *db = usher_store_db(r->store);
	struct usher_arena *a = usher_arena_new();
	sqlite3_stmt *q = NULL;
	size_t i, restored = 0;
	int rc;

	usher_store_lock(r->store);
	rc = sqlite3_prepare_v2(db,
				"SELECT labels, annotations, state, value, active_at, fired_at, "
				"resolved_at, last_sent_at, valid_until, keep_firing_since "
				"FROM rule_alerts WHERE rule_group = ? AND rule = ? AND expr = ?",
				-1, &q, NULL);
	for (i = 0; rc == SQLITE_OK && i < def->nrules; i++) {
		const struct usher_rule *rule = &def->rules[i];

		if (rule->type != USHER_RULE_ALERTING)
			continue;
		sqlite3_reset(q);
		sqlite3_bind_text(q, 1, rg->key, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, rule->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, rule->expr_text, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			struct usher_rule_alert al = {0};
			int state = sqlite3_column_int(q, 2);

			if (!labels_from_json(a, (const char *)sqlite3_column_text(q, 0),
					      &al.labels) ||
			    !labels_from_json(a, (const char *)sqlite3_column_text(q, 1),
					      &al.annotations) ||
			    state < USHER_ALERT_INACTIVE || state > USHER_ALERT_FIRING)
				continue;
			al.state = (enum usher_alert_state)state;
			al.value = sqlite3_column_double(q, 3);
			al.active_at = col_time(q, 4);
			al.fired_at = col_time(q, 5);
			al.resolved_at = col_time(q, 6);
			al.last_sent_at = col_time(q, 7);
			al.valid_until = col_time(q, 8);
			al.keep_firing_since = col_time(q, 9);
			if (usher_group_restore_alert(rg->g, i, &al) == USHER_OK)
				restored++;
		}
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	if (rc != SQLITE_OK)
		store_complain(r, "restore", rc);
	sqlite3_finalize(q);
	usher_store_unlock(r->store);
	rg->persisted = true; /* rows may be there from rules since removed */
	if (restored)
		usher_log_info(r->log, "rule group %s: restored %zu alerts from the state store",
			       rg->key, restored);
	usher_arena_free(a);
}

/* ---- sending alerts ---------------------------------------------------------- */

static void send_alerts(void *ctx, const struct usher_rule_group *group,
			const struct usher_rule *rule, const struct usher_alert *alerts, size_t n)
{
	struct usherd_rules *r = ctx;
	json_t *arr;
	size_t i;

	if (!r->sink || !n)
		return;
	arr = json_array();
	for (i = 0; i < n; i++) {
		const struct usher_alert *al = &alerts[i];
		json_t *o = json_object();
		char ts[40];

		json_object_set_new(o, "labels", labels_json(&al->labels));
		json_object_set_new(o, "annotations", labels_json(&al->annotations));
		usher_time_format_rfc3339(al->starts_at_ms, ts, sizeof(ts));
		json_object_set_new(o, "startsAt", json_string(ts));
		usher_time_format_rfc3339(al->ends_at_ms, ts, sizeof(ts));
		json_object_set_new(o, "endsAt", json_string(ts));
		json_object_set_new(o, "generatorURL",
				    json_string(al->generator_url ? al->generator_url : ""));
		json_array_append_new(arr, o);
	}
	r->sink(r->sink_arg, arr);
	json_decref(arr);
}

static void start_thread(struct usherd_rules *r);

/* ---- loading ------------------------------------------------------------------- */

static void ruleset_free(struct ruleset *s, int64_t stale_at)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->ngroups; i++) {
		usher_group_free(s->groups[i].g, stale_at);
		free(s->groups[i].key);
	}
	free(s->groups);
	for (i = 0; i < s->nfiles; i++)
		usher_rulefile_free(s->files[i]);
	free(s->files);
	free(s);
}

void usherd_rules_plan_free(struct usherd_rules_plan *plan)
{
	size_t i;

	if (!plan)
		return;
	for (i = 0; i < plan->set.nfiles; i++)
		usher_rulefile_free(plan->set.files[i]);
	free(plan->set.files);
	free(plan);
}

enum usher_err usherd_rules_prepare(struct usherd_rules *r, const struct usher_config *cfg,
				    struct usherd_rules_plan **plan, struct usher_diags *diags)
{
	struct usherd_rules_plan *p;
	struct usher_rulefile **files;
	size_t nfiles, i;
	char dir[4096];

	(void)r;
	*plan = NULL;
	usher_config_dir(cfg, dir, sizeof(dir));
	if (usher_rulefiles_load_globs(cfg->path, dir, cfg->rule_files.v, cfg->rule_files.n, &files,
				       &nfiles, diags) != USHER_OK)
		return USHER_ERR_INVALID;
	p = usher_calloc(1, sizeof(*p));
	p->set.files = files;
	p->set.nfiles = nfiles;
	for (i = 0; i < nfiles; i++)
		p->set.ngroups += files[i]->ngroups;
	*plan = p;
	return USHER_OK;
}

/* Prometheus' evaluation slots: a group is evaluated at multiples of its
 * interval shifted by a stable offset from its key, so groups spread out
 * and keep their phase across restarts. */
static int64_t first_slot(const char *key, int64_t interval, int64_t now)
{
	uint64_t h = 1469598103934665603ULL;
	const char *p;
	int64_t offset, base;

	for (p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	offset = (int64_t)(h % (uint64_t)interval);
	base = now - (now - offset) % interval;
	if (base <= now)
		base += interval;
	return base;
}

static struct usher_group_options group_options(struct usherd_rules *r,
						const struct usher_config *cfg,
						struct usher_arena *a)
{
	struct usher_group_options o;
	struct usher_label *ext = NULL;
	size_t i;

	usher_group_options_default(&o);
	o.engine = r->eng;
	o.storage = usher_tsdb_storage(r->db);
	o.db = r->db;
	o.default_interval_ms = cfg->global.evaluation_interval_ms;
	if (cfg->global.external_labels.n)
		ext = usher_arena_zalloc(a, cfg->global.external_labels.n * sizeof(*ext));
	for (i = 0; i < cfg->global.external_labels.n; i++) {
		ext[i].name = cfg->global.external_labels.v[i].key;
		ext[i].value = cfg->global.external_labels.v[i].value;
	}
	o.external_labels.v = ext;
	o.external_labels.n = cfg->global.external_labels.n;
	usher_labels_normalize(&o.external_labels, ext);
	if (cfg->server.external_url)
		o.external_url = cfg->server.external_url;
	else
		o.external_url = usher_arena_printf(a, "%s://%s", cfg->server.tls.cert_file
									   ? "https"
									   : "http",
						    cfg->server.listen[0] == ':'
							    ? usher_arena_printf(a, "localhost%s",
										 cfg->server.listen)
							    : cfg->server.listen);
	o.send = send_alerts;
	o.send_ctx = r;
	return o;
}

void usherd_rules_commit(struct usherd_rules *r, struct usherd_rules_plan *plan,
			 const struct usher_config *cfg)
{
	struct ruleset *s = usher_calloc(1, sizeof(*s));
	struct usher_arena *a = usher_arena_new();
	struct usher_group_options o = group_options(r, cfg, a);
	struct usher_tsdb_options to;
	size_t i, j, k = 0, ngroups = plan->set.ngroups;

	s->files = plan->set.files;
	s->nfiles = plan->set.nfiles;
	plan->set.files = NULL;
	plan->set.nfiles = 0;
	usherd_rules_plan_free(plan);
	s->groups = usher_calloc(ngroups ? ngroups : 1, sizeof(*s->groups));
	for (i = 0; i < s->nfiles; i++) {
		for (j = 0; j < s->files[i]->ngroups; j++) {
			const struct usher_rule_group *def = &s->files[i]->groups[j];
			struct rgroup *rg = &s->groups[k++];
			size_t len = strlen(def->file) + strlen(def->name) + 2;

			rg->g = usher_group_new(def, &o);
			rg->key = usher_malloc(len);
			snprintf(rg->key, len, "%s;%s", def->file, def->name);
		}
	}
	s->ngroups = k;
	usher_arena_free(a); /* the group copied what it keeps */

	usher_tsdb_options_default(&to);
	to.retention_ms = cfg->storage.retention_ms;
	to.max_series = (size_t)cfg->storage.max_series;
	usher_tsdb_set_options(r->db, &to);

	pthread_mutex_lock(&r->lock);
	ruleset_free(r->pending, -1); /* a commit the thread never took */
	r->pending = s;
	r->self_interval_ms = cfg->global.scrape_interval_ms;
	r->retention_ms = cfg->storage.retention_ms;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	start_thread(r);
}

/* ---- the evaluation thread ---------------------------------------------------- */

static const struct rgroup *find_group(const struct ruleset *s, const char *key)
{
	size_t i;

	for (i = 0; s && i < s->ngroups; i++)
		if (strcmp(s->groups[i].key, key) == 0)
			return &s->groups[i];
	return NULL;
}

/* Carries the alerts of old's rules into the same rules (name and
 * expression) of rg, as Prometheus does on a reload. */
static void carry_state(struct rgroup *rg, const struct rgroup *old)
{
	const struct usher_rule_group *nd = usher_group_def(rg->g), *od = usher_group_def(old->g);
	struct usher_arena *a = usher_arena_new();
	size_t i, j, k;

	for (i = 0; i < nd->nrules; i++) {
		if (nd->rules[i].type != USHER_RULE_ALERTING)
			continue;
		for (j = 0; j < od->nrules; j++) {
			struct usher_rule_alert *al;
			size_t n;

			if (od->rules[j].type != USHER_RULE_ALERTING ||
			    strcmp(od->rules[j].name, nd->rules[i].name) ||
			    strcmp(od->rules[j].expr_text, nd->rules[i].expr_text))
				continue;
			n = usher_group_alerts(old->g, j, a, &al);
			for (k = 0; k < n; k++)
				usher_group_restore_alert(rg->g, i, &al[k]);
			break;
		}
		usher_arena_reset(a);
	}
	usher_arena_free(a);
}

static void swap_in(struct usherd_rules *r, struct ruleset *s)
{
	struct ruleset *old = r->set;
	int64_t now = usher_now_ms();
	size_t i;

	for (i = 0; i < s->ngroups; i++) {
		struct rgroup *rg = &s->groups[i];
		const struct rgroup *prev = find_group(old, rg->key);
		int64_t interval = usher_group_interval(rg->g);

		if (prev) {
			carry_state(rg, prev);
			rg->persisted = prev->persisted;
			rg->missed = prev->missed;
			rg->next_ms = usher_group_interval(prev->g) == interval
					      ? prev->next_ms
					      : first_slot(rg->key, interval, now);
		} else {
			if (r->store_ok)
				restore_group(r, rg);
			rg->next_ms = first_slot(rg->key, interval, now);
			/* the store starts empty: a rule evaluated before the probes
			 * have run would see no data and resolve (then fire again)
			 * every alert it restored */
			while (rg->next_ms < r->hold_until_ms)
				rg->next_ms += interval;
		}
	}
	pthread_rwlock_wrlock(&r->set_lock);
	r->set = s;
	pthread_rwlock_unlock(&r->set_lock);
	if (!old)
		return;
	/* groups that went away: their series go stale, their stored alerts
	 * are forgotten; the others were carried over */
	for (i = 0; i < old->ngroups; i++) {
		struct rgroup *og = &old->groups[i];
		bool kept = find_group(s, og->key) != NULL;

		if (!kept && r->store_ok && og->persisted) {
			sqlite3_stmt *q = NULL;

			usher_store_lock(r->store);
			if (sqlite3_prepare_v2(usher_store_db(r->store),
					       "DELETE FROM rule_alerts WHERE rule_group = ?", -1, &q,
					       NULL) == SQLITE_OK) {
				sqlite3_bind_text(q, 1, og->key, -1, SQLITE_STATIC);
				sqlite3_step(q);
			}
			sqlite3_finalize(q);
			usher_store_unlock(r->store);
		}
		usher_group_free(og->g, kept ? -1 : now);
		og->g = NULL;
	}
	ruleset_free(old, -1);
}

static void eval_group(struct usherd_rules *r, struct rgroup *rg, int64_t now)
{
	int64_t interval = usher_group_interval(rg->g);
	struct usher_error err;

	usher_error_clear(&err);
	if (usher_group_eval(rg->g, rg->next_ms, &err) != USHER_OK) {
		if (strncmp(rg->last_err, err.msg, sizeof(rg->last_err) - 1) != 0) {
			struct usher_log_field f[] = {
				USHER_LFS("event.action", "rule-evaluation-failed"),
				USHER_LFS("event.outcome", "failure"),
				USHER_LFS("usher.rule_group", rg->key),
				USHER_LFS("error.message", err.msg),
			};
			usher_log_event(r->log, USHER_LOG_WARN, f, 4,
					"rule group %s: evaluation failed: %s", rg->key, err.msg);
			size_t n = strnlen(err.msg, sizeof(rg->last_err) - 1);

			memcpy(rg->last_err, err.msg, n);
			rg->last_err[n] = '\0';
		}
	} else if (rg->last_err[0]) {
		usher_log_info(r->log, "rule group %s: evaluating again without errors", rg->key);
		rg->last_err[0] = '\0';
	}
	if (r->store_ok) {
		/* a group without alerts, then or now, writes nothing; counting
		 * them (the rule status) copies no alert */
		struct usher_arena *a = usher_arena_new();
		const struct usher_rule_group *def = usher_group_def(rg->g);
		bool any = false;
		size_t i;

		for (i = 0; i < def->nrules && !any; i++) {
			struct usher_rule_status rs;

			if (def->rules[i].type != USHER_RULE_ALERTING)
				continue;
			usher_group_rule_status(rg->g, i, a, &rs);
			any = rs.nalerts > 0;
		}
		usher_arena_free(a);
		if (any || rg->persisted)
			persist_group(r, rg);
	}
	rg->next_ms += interval;
	if (rg->next_ms <= now) {
		int64_t behind = (now - rg->next_ms) / interval + 1;

		rg->missed += (uint64_t)behind;
		rg->next_ms += behind * interval;
	}
}

static void *eval_thread(void *arg)
{
	struct usherd_rules *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		int64_t now = usher_now_ms(), next = INT64_MAX;
		size_t i;

		if (r->pending) {
			struct ruleset *s = r->pending;

			r->pending = NULL;
			pthread_mutex_unlock(&r->lock);
			swap_in(r, s);
			pthread_mutex_lock(&r->lock);
			continue;
		}
		if (r->next_self_ms <= now) {
			pthread_mutex_unlock(&r->lock);
			usher_registry_observe_collectors(r->reg);
			pthread_mutex_lock(&r->lock);
			r->next_self_ms = now + (r->self_interval_ms > 0 ? r->self_interval_ms : 15000);
		}
		next = r->next_self_ms;
		for (i = 0; r->set && i < r->set->ngroups; i++)
			if (r->set->groups[i].next_ms < next)
				next = r->set->groups[i].next_ms;
		if (next > now) {
			struct timespec ts;
			int64_t wait = next - now;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&r->lock);
		for (i = 0; r->set && i < r->set->ngroups; i++)
			if (r->set->groups[i].next_ms <= now)
				eval_group(r, &r->set->groups[i], now);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* ---- the rest ------------------------------------------------------------------ */

struct usherd_rules *usherd_rules_new(const struct usher_config *cfg, struct usher_registry *reg,
				      struct usher_store *store, struct usher_log *log)
{
	struct usherd_rules *r = usher_calloc(1, sizeof(*r));
	struct usher_registry_observer obs = {on_publish, on_remove, on_move, r};
	struct usher_promql_options po;
	struct usher_tsdb_options to;
	pthread_condattr_t ca;
	struct usher_error err;

	r->reg = reg;
	r->store = store;
	r->log = log;
	usher_tsdb_options_default(&to);
	to.retention_ms = cfg->storage.retention_ms;
	to.max_series = (size_t)cfg->storage.max_series;
	r->db = usher_tsdb_new(&to);
	usher_promql_options_default(&po);
	po.timeout_ms = cfg->storage.query_timeout_ms;
	po.max_samples = (size_t)cfg->storage.query_max_samples;
	r->eng = usher_promql_engine_new(&po);
	pthread_mutex_init(&r->feed_lock, NULL);
	pthread_rwlock_init(&r->set_lock, NULL);
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	r->self_interval_ms = cfg->global.scrape_interval_ms;
	r->retention_ms = cfg->storage.retention_ms;
	{
		/* the first evaluations wait until every probe has run once: the
		 * longest probe interval (and the scrape interval), plus a second
		 * for runs to finish; at most two minutes */
		int64_t hold = cfg->global.scrape_interval_ms;
		size_t i;

		for (i = 0; i < cfg->nprobes; i++)
			if (cfg->probes[i].interval_ms > hold)
				hold = cfg->probes[i].interval_ms;
		hold += 1000;
		if (hold > 120000)
			hold = 120000;
		r->hold_until_ms = usher_now_ms() + hold;
	}
	usher_error_clear(&err);
	if (store) {
		if (usher_store_migrate(store, "rules", store_steps, &err) == USHER_OK)
			r->store_ok = true;
		else
			usher_log_error(log, "alert state will not survive a restart: %s", err.msg);
	}
	usher_registry_set_observer(reg, &obs);
	usher_registry_add_collector(reg, collect, r);
	return r;
}

void usherd_rules_set_alert_sink(struct usherd_rules *r, usherd_alert_sink_fn *fn, void *arg)
{
	r->sink = fn;
	r->sink_arg = arg;
}

/* The thread starts with the first commit. */
static void start_thread(struct usherd_rules *r)
{
	if (r->started)
		return;
	if (pthread_create(&r->thread, NULL, eval_thread, r) != 0) {
		usher_log_error(r->log, "cannot start the rule evaluation thread: %s",
				strerror(errno));
		return;
	}
	r->started = true;
}

void usherd_rules_stop(struct usherd_rules *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (r->started)
		pthread_join(r->thread, NULL);
	r->started = false;
}

void usherd_rules_free(struct usherd_rules *r)
{
	size_t i;

	if (!r)
		return;
	usherd_rules_stop(r);
	usher_registry_set_observer(r->reg, &(struct usher_registry_observer){0});
	ruleset_free(r->pending, -1);
	ruleset_free(r->set, -1);
	for (i = 0; i < r->nfeeds; i++)
		usher_tsdb_batch_free(r->feeds[i].b, -1);
	free(r->feeds);
	usher_promql_engine_free(r->eng);
	usher_tsdb_free(r->db);
	pthread_mutex_destroy(&r->feed_lock);
	pthread_rwlock_destroy(&r->set_lock);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

struct usher_tsdb *usherd_rules_tsdb(struct usherd_rules *r)
{
	return r->db;
}

const struct usher_promql_engine *usherd_rules_engine(struct usherd_rules *r)
{
	return r->eng;
}

void usherd_rules_foreach_group(struct usherd_rules *r, usherd_group_visit_fn *fn, void *arg)
{
	size_t i;

	pthread_rwlock_rdlock(&r->set_lock);
	for (i = 0; r->set && i < r->set->ngroups; i++)
		fn(arg, r->set->groups[i].g);
	pthread_rwlock_unlock(&r->set_lock);
}

void usherd_rules_counts(struct usherd_rules *r, size_t *files, size_t *groups, size_t *rules)
{
	size_t i, n = 0;

	pthread_rwlock_rdlock(&r->set_lock);
	*files = r->set ? r->set->nfiles : 0;
	*groups = r->set ? r->set->ngroups : 0;
	for (i = 0; r->set && i < r->set->ngroups; i++)
		n += usher_group_def(r->set->groups[i].g)->nrules;
	*rules = n;
	pthread_rwlock_unlock(&r->set_lock);
}
