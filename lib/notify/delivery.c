/* The persisted delivery queue: rows in the state store, worker threads
 * that pick the oldest due notification of each stream (receiver,
 * integration, entry, key), hand it to the integration, and delete the row
 * or move its next attempt, with per-queue-key rate limits (Slack's one
 * message per second per webhook URL) and the notification metrics. */
#include "notify/delivery.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "notify/integrations.h"

#define RETRY_AFTER_CAP_MS (3600 * 1000LL)
#define IDLE_WAIT_MS       5000 /* rows enqueued by another process are seen this late at worst */

static const char *const migrations[] = {
    "CREATE TABLE delivery_queue ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " receiver TEXT NOT NULL,"
    " integration TEXT NOT NULL,"
    " idx INTEGER NOT NULL,"
    " key TEXT NOT NULL,"
    " data TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " next_ms INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX delivery_queue_stream ON delivery_queue(receiver, integration, idx, key, id);",
    /* 2: picking due rows in order without scanning the queue */
    "CREATE INDEX delivery_queue_next ON delivery_queue(next_ms, id);",
    NULL,
};

static const struct usher_metric_desc desc_total = {
    "usher_notifications", USHER_METRIC_COUNTER,
    "Notification delivery attempts by outcome: sent, retried (to be repeated), failed "
    "(refused or past the deadline), dropped (integration no longer configured)."};
static const struct usher_metric_desc desc_latency = {
    "usher_notification_latency_seconds", USHER_METRIC_HISTOGRAM,
    "Time from a notification's enqueue to its acknowledgement by the receiver."};
static const struct usher_metric_desc desc_queued = {
    "usher_notifications_queued", USHER_METRIC_GAUGE,
    "Notifications waiting in the delivery queue (pending or backing off)."};
static const double latency_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900};
#define NBOUNDS (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

enum outcome { OUT_SENT, OUT_RETRIED, OUT_FAILED, OUT_DROPPED, OUT_N };
static const char *const outcome_names[OUT_N] = {"sent", "retried", "failed", "dropped"};

struct stat_entry {
	char *receiver, *integration;
	uint64_t count[OUT_N];
	uint64_t buckets[NBOUNDS];
	struct usher_histogram h;
};

/* One set of receivers handed over by set_receivers; released when
 * replaced and no attempt holds it. */
struct gen {
	struct usher_delivery_receivers r;
	int refs;
	bool replaced;
};

struct qstate {
	char *key;
	int64_t next_ok_ms; /* the next send on this queue may start then */
	bool busy;
};

struct usher_delivery {
	struct usher_store *st;
	struct usher_log *log;
	struct usher_registry *reg;
	struct usher_delivery_conf conf;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t *threads;
	int nthreads;
	bool stop;
	atomic_bool stopping; /* read by attempts in flight (usher_notify_stop) */
	uint64_t kicks;

	struct gen *gen;
	int64_t *inflight; /* row ids being attempted, one slot per worker */
	struct qstate *qs;
	size_t nqs, capqs;
	struct stat_entry *stats;
	size_t nstats, capstats;
	uint64_t rnd;
	usher_delivery_observer_fn *observer; /* under mu */
	void *observer_arg;
};

/* ---- store ---------------------------------------------------------------- */

enum usher_err usher_delivery_migrate(struct usher_store *st, struct usher_error *err)
{
	return usher_store_migrate(st, "delivery", migrations, err);
}

enum usher_err usher_delivery_enqueue(struct usher_store *st, const char *receiver,
				      const char *integration, int index, const char *key,
				      const char *data_json, struct usher_error *err)
{
	sqlite3_stmt *q = NULL;
	int64_t now = usher_now_ms();
	int rc;

	if (!st || !receiver || !*receiver || !integration || !*integration || index < 0 || !key ||
	    !*key || !data_json || !*data_json)
		return usher_fail(
		    err, USHER_ERR_INVALID,
		    "delivery enqueue: receiver, integration, key and data are required");
	rc = sqlite3_prepare_v2(usher_store_db(st),
				"INSERT INTO delivery_queue(receiver, integration, idx, key, data, "
				"created_ms, next_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
				-1, &q, NULL);
	if (rc != SQLITE_OK)
		return usher_store_fail(st, rc, "queue delivery", err);
	sqlite3_bind_text(q, 1, receiver, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, integration, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 3, index);
	sqlite3_bind_text(q, 4, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 5, data_json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 6, now);
	sqlite3_bind_int64(q, 7, now);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return usher_store_fail(st, rc, "queue delivery", err);
	return USHER_OK;
}

static void row_delete(struct usher_delivery *d, int64_t id)
{
	sqlite3_stmt *q = NULL;
	struct usher_error err = {{0}};
	int rc;

	usher_store_lock(d->st);
	rc = sqlite3_prepare_v2(usher_store_db(d->st), "DELETE FROM delivery_queue WHERE id = ?",
				-1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, id);
		rc = sqlite3_step(q);
	}
	sqlite3_finalize(q);
	usher_store_unlock(d->st);
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		usher_store_fail(d->st, rc, "delete delivery", &err);
		usher_log_error(d->log, "%s", err.msg);
	}
}

static void row_postpone(struct usher_delivery *d, int64_t id, int64_t next_ms, int attempts)
{
	sqlite3_stmt *q = NULL;
	struct usher_error err = {{0}};
	int rc;

	usher_store_lock(d->st);
	rc = sqlite3_prepare_v2(usher_store_db(d->st),
				"UPDATE delivery_queue SET next_ms = ?, attempts = ? WHERE id = ?",
				-1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, next_ms);
		sqlite3_bind_int(q, 2, attempts);
		sqlite3_bind_int64(q, 3, id);
		rc = sqlite3_step(q);
	}
	sqlite3_finalize(q);
	usher_store_unlock(d->st);
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		usher_store_fail(d->st, rc, "postpone delivery", &err);
		usher_log_error(d->log, "%s", err.msg);
	}
}

int64_t usher_delivery_pending(struct usher_delivery *d)
{
	sqlite3_stmt *q = NULL;
	int64_t n = -1;

	usher_store_lock(d->st);
	if (sqlite3_prepare_v2(usher_store_db(d->st), "SELECT count(*) FROM delivery_queue", -1, &q,
			       NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		n = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	usher_store_unlock(d->st);
	return n;
}

/* ---- backoff, metrics -------------------------------------------------------- */

static void conf_defaults(struct usher_delivery_conf *c)
{
	if (c->workers <= 0)
		c->workers = 4;
	if (c->min_backoff_ms <= 0)
		c->min_backoff_ms = 1000;
	if (c->max_backoff_ms <= 0)
		c->max_backoff_ms = 5 * 60 * 1000;
	if (c->max_backoff_ms < c->min_backoff_ms)
		c->max_backoff_ms = c->min_backoff_ms;
	if (c->default_timeout_ms <= 0)
		c->default_timeout_ms = 10000;
	if (c->default_retry_for_ms <= 0)
		c->default_retry_for_ms = 3600 * 1000;
}

int64_t usher_delivery_backoff_ms(const struct usher_delivery_conf *conf, int attempt,
				  int64_t retry_after_ms, double rnd)
{
	struct usher_delivery_conf c = conf ? *conf : (struct usher_delivery_conf){0};
	int64_t b;
	int i;

	conf_defaults(&c);
	b = c.min_backoff_ms;
	for (i = 1; i < attempt && b < c.max_backoff_ms; i++)
		b *= 2;
	if (b > c.max_backoff_ms)
		b = c.max_backoff_ms;
	b = (int64_t)((double)b * (0.8 + 0.4 * rnd));
	if (b < 1)
		b = 1;
	if (retry_after_ms > RETRY_AFTER_CAP_MS)
		retry_after_ms = RETRY_AFTER_CAP_MS;
	return retry_after_ms > b ? retry_after_ms : b;
}

static double rand01(struct usher_delivery *d)
{
	/* xorshift64*: jitter only, no secrets */
	d->rnd ^= d->rnd >> 12;
	d->rnd ^= d->rnd << 25;
	d->rnd ^= d->rnd >> 27;
	return (double)((d->rnd * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static struct stat_entry *stat_get(struct usher_delivery *d, const char *receiver,
				   const char *integration)
{
	size_t i;
	struct stat_entry *s;

	for (i = 0; i < d->nstats; i++)
		if (strcmp(d->stats[i].receiver, receiver) == 0 &&
		    strcmp(d->stats[i].integration, integration) == 0)
			return &d->stats[i];
	if (d->nstats == d->capstats) {
		d->capstats = d->capstats ? d->capstats * 2 : 8;
		d->stats = usher_realloc(d->stats, d->capstats * sizeof(*d->stats));
		for (i = 0; i < d->nstats; i++)
			d->stats[i].h.counts = d->stats[i].buckets;
	}
	s = &d->stats[d->nstats++];
	memset(s, 0, sizeof(*s));
	s->receiver = usher_strdup(receiver);
	s->integration = usher_strdup(integration);
	s->h.nbuckets = NBOUNDS;
	s->h.bounds = latency_bounds;
	s->h.counts = s->buckets;
	return s;
}

/* Publishes the counters; d->mu held. */
static void publish(struct usher_delivery *d)
{
	struct usher_sample_set *set;
	size_t i;
	int o;

	if (!d->reg)
		return;
	set = usher_sample_set_new(NULL);
	usher_sample_add(set, &desc_queued, (double)usher_delivery_pending(d), NULL);
	for (i = 0; i < d->nstats; i++)
		for (o = 0; o < OUT_N; o++)
			usher_sample_add(set, &desc_total, (double)d->stats[i].count[o], "receiver",
					 d->stats[i].receiver, "integration",
					 d->stats[i].integration, "outcome", outcome_names[o],
					 NULL);
	for (i = 0; i < d->nstats; i++) {
		const char *pairs[] = {"receiver", d->stats[i].receiver, "integration",
				       d->stats[i].integration, NULL};

		usher_sample_add_histogram(set, &desc_latency, &d->stats[i].h, pairs);
	}
	usher_registry_publish(d->reg, d, set);
}

/* ---- queues ---------------------------------------------------------------- */

static struct qstate *qs_get(struct usher_delivery *d, const char *key, bool create)
{
	size_t i;

	for (i = 0; i < d->nqs; i++)
		if (strcmp(d->qs[i].key, key) == 0)
			return &d->qs[i];
	if (!create)
		return NULL;
	/* forget idle queues first */
	for (i = 0; i < d->nqs;) {
		if (!d->qs[i].busy && d->qs[i].next_ok_ms < usher_now_ms()) {
			free(d->qs[i].key);
			d->qs[i] = d->qs[--d->nqs];
		} else
			i++;
	}
	if (d->nqs == d->capqs) {
		d->capqs = d->capqs ? d->capqs * 2 : 8;
		d->qs = usher_realloc(d->qs, d->capqs * sizeof(*d->qs));
	}
	d->qs[d->nqs].key = usher_strdup(key);
	d->qs[d->nqs].next_ok_ms = 0;
	d->qs[d->nqs].busy = false;
	return &d->qs[d->nqs++];
}

static void gen_unref(struct usher_delivery *d, struct gen *g)
{
	bool release;

	pthread_mutex_lock(&d->mu);
	release = --g->refs == 0 && g->replaced;
	pthread_mutex_unlock(&d->mu);
	if (release) {
		if (g->r.release)
			g->r.release(g->r.arg);
		free(g);
	}
}

void usher_delivery_set_receivers(struct usher_delivery *d,
				  const struct usher_delivery_receivers *r)
{
	struct gen *g = usher_calloc(1, sizeof(*g)), *old;
	bool release;

	g->r = *r;
	pthread_mutex_lock(&d->mu);
	old = d->gen;
	d->gen = g;
	release = old && old->refs == 0;
	if (old)
		old->replaced = true;
	d->kicks++;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	if (release) {
		if (old->r.release)
			old->r.release(old->r.arg);
		free(old);
	}
}

void usher_delivery_kick(struct usher_delivery *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->kicks++;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

/* ---- the worker ------------------------------------------------------------- */

struct job {
	int64_t id;
	char *receiver, *integration, *key, *data;
	int idx, attempts;
	int64_t created_ms;
	const struct usher_integration_conf *ic;
	struct gen *gen;
	struct qstate *q; /* rate-limited queue, or NULL (pointer valid under mu only) */
	char *qkey;
};

static void job_clear(struct job *j)
{
	free(j->receiver);
	free(j->integration);
	free(j->key);
	free(j->data);
	free(j->qkey);
	memset(j, 0, sizeof(*j));
}

static bool is_inflight(const struct usher_delivery *d, int64_t id)
{
	int i;

	for (i = 0; i < d->nthreads; i++)
		if (d->inflight[i] == id)
			return true;
	return false;
}

static char *col_dup(sqlite3_stmt *q, int c)
{
	const unsigned char *s = sqlite3_column_text(q, c);

	return usher_strdup(s ? (const char *)s : "");
}

/* Picks the next job under d->mu. Returns true with *j filled, or false with
 * *wake_ms the time to look again (0: wait for a signal). Rows whose
 * integration disappeared are dropped here. */
struct cand {
	int64_t id, created_ms;
	char *receiver, *integration, *key;
	int idx, attempts;
};

/* Reads up to CAND_MAX due heads of streams in order, and the time the next
 * row comes due, under the store's lock (so no statement of ours runs in
 * the middle of another module's transaction on the shared connection).
 * Returns the number read. */
#define CAND_MAX 128
static size_t read_candidates(struct usher_delivery *d, int64_t now, struct cand *c,
			      int64_t *next_due)
{
	sqlite3_stmt *q = NULL;
	size_t n = 0;

	*next_due = INT64_MAX;
	usher_store_lock(d->st);
	/* the due rows in order, each only when it is the oldest of its
	 * stream (so a resolve never overtakes its trigger) */
	if (sqlite3_prepare_v2(
		usher_store_db(d->st),
		"SELECT id, receiver, integration, idx, key, created_ms, attempts "
		"FROM delivery_queue q INDEXED BY delivery_queue_next "
		"WHERE next_ms <= ?1 AND NOT EXISTS (SELECT 1 FROM delivery_queue p "
		"WHERE p.receiver = q.receiver AND p.integration = q.integration AND "
		"p.idx = q.idx AND p.key = q.key AND p.id < q.id) ORDER BY next_ms, id",
		-1, &q, NULL) != SQLITE_OK) {
		struct usher_error err = {{0}};

		usher_store_fail(d->st, SQLITE_ERROR, "read delivery queue", &err);
		usher_store_unlock(d->st);
		usher_log_error(d->log, "%s", err.msg);
		return 0;
	}
	sqlite3_bind_int64(q, 1, now);
	while (n < CAND_MAX && sqlite3_step(q) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);

		if (is_inflight(d, id))
			continue;
		c[n].id = id;
		c[n].receiver = col_dup(q, 1);
		c[n].integration = col_dup(q, 2);
		c[n].idx = sqlite3_column_int(q, 3);
		c[n].key = col_dup(q, 4);
		c[n].created_ms = sqlite3_column_int64(q, 5);
		c[n].attempts = sqlite3_column_int(q, 6);
		n++;
	}
	sqlite3_finalize(q);
	/* the next row to come due (maybe not the head of its stream: waking
	 * early only means looking again) */
	if (sqlite3_prepare_v2(usher_store_db(d->st),
			       "SELECT min(next_ms) FROM delivery_queue WHERE next_ms > ?", -1, &q,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, now);
		if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
			*next_due = sqlite3_column_int64(q, 0);
	}
	sqlite3_finalize(q);
	usher_store_unlock(d->st);
	return n;
}

static char *read_data(struct usher_delivery *d, int64_t id)
{
	sqlite3_stmt *q = NULL;
	char *data = NULL;

	usher_store_lock(d->st);
	if (sqlite3_prepare_v2(usher_store_db(d->st),
			       "SELECT data FROM delivery_queue WHERE id = ?", -1, &q,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, id);
		if (sqlite3_step(q) == SQLITE_ROW)
			data = col_dup(q, 0);
	}
	sqlite3_finalize(q);
	usher_store_unlock(d->st);
	return data ? data : usher_strdup("");
}

/* Picks the next job under d->mu. Returns true with *j filled, or false with
 * *wake_ms the time to look again. Rows whose integration disappeared are
 * dropped here. */
static bool pick(struct usher_delivery *d, struct job *j, int64_t *wake_ms)
{
	struct cand c[CAND_MAX];
	int64_t now = usher_now_ms(), next_due;
	size_t n, i;
	bool found = false;

	*wake_ms = now + IDLE_WAIT_MS;
	if (!d->gen)
		return false;
	n = read_candidates(d, now, c, &next_due);
	if (next_due < *wake_ms)
		*wake_ms = next_due;
	for (i = 0; i < n; i++) {
		const struct usher_integration_conf *ic;
		const char *qk = NULL;

		if (found)
			goto release;
		ic = d->gen->r.lookup(d->gen->r.arg, c[i].receiver, c[i].integration, c[i].idx);
		if (!ic || !ic->type || !ic->type->deliver) {
			struct stat_entry *s = stat_get(d, c[i].receiver, c[i].integration);

			usher_log_event(d->log, USHER_LOG_WARN,
					(struct usher_log_field[]){
					    USHER_LFS("event.action", "notification-dropped"),
					    USHER_LFS("usher.receiver", c[i].receiver),
					    USHER_LFS("usher.integration", c[i].integration),
					},
					3,
					"dropping a queued notification for receiver %s: its %s "
					"integration #%d is no longer configured",
					c[i].receiver, c[i].integration, c[i].idx);
			s->count[OUT_DROPPED]++;
			row_delete(d, c[i].id);
			publish(d);
			goto release;
		}
		if (ic->type->queue_key && (qk = ic->type->queue_key(ic->opts)) != NULL) {
			struct qstate *qs = qs_get(d, qk, true);

			if (qs->busy)
				goto release;
			if (qs->next_ok_ms > now) {
				if (qs->next_ok_ms < *wake_ms)
					*wake_ms = qs->next_ok_ms;
				goto release;
			}
			qs->busy = true;
			j->qkey = usher_strdup(qk);
		}
		j->id = c[i].id;
		j->receiver = c[i].receiver;
		j->integration = c[i].integration;
		j->key = c[i].key;
		j->idx = c[i].idx;
		j->created_ms = c[i].created_ms;
		j->attempts = c[i].attempts;
		j->ic = ic;
		j->gen = d->gen;
		d->gen->refs++;
		found = true;
		continue; /* the strings are the job's now */
	release:
		free(c[i].receiver);
		free(c[i].integration);
		free(c[i].key);
	}
	if (found)
		j->data = read_data(d, j->id);
	return found;
}

/* Drops resolved alerts when the entry does not send them; false when
 * nothing is left to send (Alertmanager's RetryStage does the same). */
static bool filter_resolved(const struct usher_integration_conf *ic, json_t *data)
{
	json_t *alerts = json_object_get(data, "alerts"), *keep;
	size_t i;

	if (!ic->type->send_resolved || ic->type->send_resolved(ic->opts) || !json_is_array(alerts))
		return true;
	keep = json_array();
	for (i = 0; i < json_array_size(alerts); i++) {
		json_t *a = json_array_get(alerts, i);
		const char *s = json_string_value(json_object_get(a, "status"));

		if (!s || strcmp(s, "resolved") != 0)
			json_array_append(keep, a);
	}
	if (json_array_size(keep) == 0) {
		json_decref(keep);
		return false;
	}
	json_object_set_new(data, "alerts", keep);
	return true;
}

/* The ECS event of one attempt's outcome (docs/logging.md): category
 * network (email for SMTP), the receiver, integration and group key, the
 * vendor's status and the attempt's duration. */
static void log_attempt(struct usher_delivery *d, const struct job *j, enum usher_log_level lvl,
			const char *action, bool ok, long status, int64_t duration_ns, int attempts,
			const char *why, const char *fmt, ...)
    __attribute__((format(printf, 10, 11)));

static void log_attempt(struct usher_delivery *d, const struct job *j, enum usher_log_level lvl,
			const char *action, bool ok, long status, int64_t duration_ns, int attempts,
			const char *why, const char *fmt, ...)
{
	bool email = strcmp(j->integration, "email") == 0;
	struct usher_log_field f[12];
	size_t n = 0;
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f[n++] = USHER_LFS("event.action", action);
	f[n++] = USHER_LFS("event.kind", "event");
	f[n++] = USHER_LFS("event.category", email ? "email" : "network");
	f[n++] = USHER_LFS("event.type", "info");
	f[n++] = USHER_LFS("event.outcome", ok ? "success" : "failure");
	f[n++] = USHER_LFS("usher.receiver", j->receiver);
	f[n++] = USHER_LFS("usher.integration", j->integration);
	f[n++] = USHER_LFS("usher.group_key", j->key);
	f[n++] = USHER_LFI("usher.attempts", attempts);
	f[n++] = USHER_LFI("event.duration", duration_ns);
	if (status > 0 && !email)
		f[n++] = USHER_LFI("http.response.status_code", status);
	if (why)
		f[n++] = USHER_LFS("error.message", why);
	usher_log_event(d->log, lvl, f, n, "%s", msg);
}

void usher_delivery_set_observer(struct usher_delivery *d, usher_delivery_observer_fn *fn,
				 void *arg)
{
	pthread_mutex_lock(&d->mu);
	d->observer = fn;
	d->observer_arg = arg;
	pthread_mutex_unlock(&d->mu);
}

/* Tells the observer (under mu). */
static void observe(struct usher_delivery *d, const struct job *j, int outcome, const char *detail)
{
	if (d->observer)
		d->observer(d->observer_arg, j->key, j->receiver, j->integration, outcome, detail);
}

static void attempt(struct usher_delivery *d, struct job *j, int slot)
{
	const struct usher_integration_type *type = j->ic->type;
	struct usher_delivery_result res;
	int64_t timeout_ms = d->conf.default_timeout_ms,
		retry_for_ms = d->conf.default_retry_for_ms;
	int64_t now, next;
	json_error_t jerr;
	json_t *data = json_loads(j->data, 0, &jerr);
	struct stat_entry *s;
	bool skip = false;
	int64_t began_ns = usher_mono_ns(), took_ns;

	memset(&res, 0, sizeof(res));
	if (type->limits)
		type->limits(j->ic->opts, &timeout_ms, &retry_for_ms);
	if (timeout_ms <= 0)
		timeout_ms = d->conf.default_timeout_ms;
	if (retry_for_ms <= 0)
		retry_for_ms = d->conf.default_retry_for_ms;
	if (!data) {
		res.outcome = USHER_DELIVERY_FAIL;
		usher_fail(&res.err, USHER_ERR_INVALID, "queued notification is not JSON: %s",
			   jerr.text);
	} else if (!filter_resolved(j->ic, data)) {
		skip = true;
	} else {
		usher_notify_stop = &d->stopping;
		type->deliver(j->ic->opts, data, j->key, timeout_ms, &res);
		usher_notify_stop = NULL;
	}
	json_decref(data);
	now = usher_now_ms();
	took_ns = usher_mono_ns() - began_ns;

	pthread_mutex_lock(&d->mu);
	d->inflight[slot] = 0;
	s = stat_get(d, j->receiver, j->integration);
	if (j->qkey) {
		struct qstate *qs = qs_get(d, j->qkey, true);

		qs->busy = false;
		if (type->rate_per_s > 0)
			qs->next_ok_ms = now + (int64_t)(1000.0 / type->rate_per_s);
		if (res.outcome == USHER_DELIVERY_RETRY &&
		    now + res.retry_after_ms > qs->next_ok_ms)
			qs->next_ok_ms =
			    now + (res.retry_after_ms > RETRY_AFTER_CAP_MS ? RETRY_AFTER_CAP_MS
									   : res.retry_after_ms);
	}
	if (skip) {
		row_delete(d, j->id);
	} else if (res.outcome == USHER_DELIVERY_RETRY && atomic_load(&d->stopping)) {
		/* cut short by the stop: the row stays as it was, for the next start */
	} else if (res.outcome == USHER_DELIVERY_OK) {
		row_delete(d, j->id);
		s->count[OUT_SENT]++;
		usher_histogram_observe(&s->h, (double)(now - j->created_ms) / 1000.0);
		log_attempt(d, j, USHER_LOG_INFO, "notification-sent", true, res.status, took_ns,
			    j->attempts + 1, NULL, "notification sent to %s/%s[%d]", j->receiver,
			    j->integration, j->idx);
		observe(d, j, USHER_DELIVERY_OK, NULL);
	} else if (res.outcome == USHER_DELIVERY_FAIL) {
		row_delete(d, j->id);
		s->count[OUT_FAILED]++;
		log_attempt(d, j, USHER_LOG_ERROR, "notification-failed", false, res.status,
			    took_ns, j->attempts + 1, res.err.msg[0] ? res.err.msg : "refused",
			    "notification to %s/%s[%d] refused, not retried: %s", j->receiver,
			    j->integration, j->idx, res.err.msg[0] ? res.err.msg : "refused");
		observe(d, j, USHER_DELIVERY_FAIL, res.err.msg[0] ? res.err.msg : "refused");
	} else {
		int attempts = j->attempts + 1;

		next = now +
		       usher_delivery_backoff_ms(&d->conf, attempts, res.retry_after_ms, rand01(d));
		if (next > j->created_ms + retry_for_ms) {
			row_delete(d, j->id);
			s->count[OUT_FAILED]++;
			log_attempt(d, j, USHER_LOG_ERROR, "notification-failed", false, res.status,
				    took_ns, attempts,
				    res.err.msg[0] ? res.err.msg : "temporary failure",
				    "giving up on a notification to %s/%s[%d] after %d attempts "
				    "(retry_for reached): %s",
				    j->receiver, j->integration, j->idx, attempts,
				    res.err.msg[0] ? res.err.msg : "temporary failure");
			observe(d, j, USHER_DELIVERY_FAIL,
				res.err.msg[0] ? res.err.msg : "retry_for reached");
		} else {
			row_postpone(d, j->id, next, attempts);
			s->count[OUT_RETRIED]++;
			log_attempt(d, j, attempts == 1 ? USHER_LOG_WARN : USHER_LOG_DEBUG,
				    "notification-retry", false, res.status, took_ns, attempts,
				    res.err.msg[0] ? res.err.msg : "temporary failure",
				    "notification to %s/%s[%d] will be retried in %" PRId64
				    " ms (attempt %d): %s",
				    j->receiver, j->integration, j->idx, next - now, attempts,
				    res.err.msg[0] ? res.err.msg : "temporary failure");
			if (attempts == 1)
				observe(d, j, USHER_DELIVERY_RETRY,
					res.err.msg[0] ? res.err.msg : "temporary failure");
		}
	}
	publish(d);
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

struct worker_arg {
	struct usher_delivery *d;
	int slot;
};

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct usher_delivery *d = wa->d;
	int slot = wa->slot;

	free(wa);
	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		struct job j;
		int64_t wake;
		uint64_t kicks = d->kicks;

		memset(&j, 0, sizeof(j));
		if (pick(d, &j, &wake)) {
			struct gen *g = j.gen;

			d->inflight[slot] = j.id;
			pthread_mutex_unlock(&d->mu);
			attempt(d, &j, slot);
			job_clear(&j);
			gen_unref(d, g);
			pthread_mutex_lock(&d->mu);
			continue;
		}
		if (d->kicks != kicks)
			continue;
		{
			struct timespec ts;
			int64_t left = wake - usher_now_ms();

			if (left < 1)
				left = 1;
			if (left > IDLE_WAIT_MS)
				left = IDLE_WAIT_MS;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += left / 1000;
			ts.tv_nsec += (left % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&d->cv, &d->mu, &ts);
		}
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* ---- life ------------------------------------------------------------------ */

struct usher_delivery *usher_delivery_new(struct usher_store *st, struct usher_log *log,
					  struct usher_registry *reg,
					  const struct usher_delivery_conf *conf,
					  struct usher_error *err)
{
	struct usher_delivery *d;
	int i, rc;

	if (usher_delivery_migrate(st, err) != USHER_OK)
		return NULL;
	d = usher_calloc(1, sizeof(*d));
	d->st = st;
	d->log = log;
	d->reg = reg;
	if (conf)
		d->conf = *conf;
	conf_defaults(&d->conf);
	d->rnd = (uint64_t)usher_now_ns() | 1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	d->threads = usher_calloc((size_t)d->conf.workers, sizeof(*d->threads));
	d->inflight = usher_calloc((size_t)d->conf.workers, sizeof(*d->inflight));
	pthread_mutex_lock(&d->mu);
	publish(d);
	pthread_mutex_unlock(&d->mu);
	for (i = 0; i < d->conf.workers; i++) {
		struct worker_arg *wa = usher_malloc(sizeof(*wa));

		wa->d = d;
		wa->slot = i;
		d->nthreads = i + 1; /* is_inflight scans the started slots */
		rc = pthread_create(&d->threads[i], NULL, worker, wa);
		if (rc != 0) {
			free(wa);
			d->nthreads = i;
			usher_fail(err, USHER_ERR_INTERNAL, "cannot start delivery worker: %s",
				   strerror(rc));
			usher_delivery_free(d);
			return NULL;
		}
	}
	return d;
}

void usher_delivery_free(struct usher_delivery *d)
{
	int i;
	size_t k;

	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	atomic_store(&d->stopping, true);
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	for (i = 0; i < d->nthreads; i++)
		pthread_join(d->threads[i], NULL);
	if (d->gen) {
		if (d->gen->r.release)
			d->gen->r.release(d->gen->r.arg);
		free(d->gen);
	}
	if (d->reg)
		usher_registry_remove(d->reg, d);
	for (k = 0; k < d->nqs; k++)
		free(d->qs[k].key);
	for (k = 0; k < d->nstats; k++) {
		free(d->stats[k].receiver);
		free(d->stats[k].integration);
	}
	free(d->qs);
	free(d->stats);
	free(d->threads);
	free(d->inflight);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d);
}
