/* The dispatcher: alerts by fingerprint, aggregation groups with their
 * timers, the mute stages (silences, inhibition, time intervals), the
 * notification log and the hand-off to the delivery queue. */
#include "notify/dispatch.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "notify/inhibit.h"
#include "notify/matchers.h"
#include "tsdb/hashmap.h"

#define GC_EVERY_NS (60LL * 1000000000)

static const char *const nflog_migrations[] = {
    "CREATE TABLE nflog (group_key TEXT NOT NULL, receiver TEXT NOT NULL, "
    "integration TEXT NOT NULL, idx INTEGER NOT NULL, firing TEXT NOT NULL, "
    "resolved TEXT NOT NULL, ts INTEGER NOT NULL, expires INTEGER NOT NULL, "
    "PRIMARY KEY (group_key, receiver, integration, idx))",
    NULL,
};

/* An alert and how many groups hold it. */
struct entry {
	struct usher_am_alert *a;
	int refs;
};

struct group {
	const struct usher_route *route;
	char *key;
	uint64_t hash;
	struct usher_am_labels labels;
	struct usher_u64map alerts; /* fp -> struct entry * (borrowed) */
	int64_t next_ns;
	bool flushed;
	struct group *chain; /* same hash */
};

struct usher_dispatch {
	pthread_mutex_t mu;
	struct usher_store *st;
	bool own_store;
	struct usher_silences *silences;
	struct usher_dispatch_hooks hooks;
	struct usher_log *log;
	struct usher_config *cfg;
	const struct usher_alerting_conf *ac;
	char *external_url;
	struct usher_u64map alerts;      /* fp -> struct entry * (owned) */
	struct usher_u64map group_index; /* hash -> struct group * chain */
	struct group **groups;
	size_t ngroups, groups_cap;
	struct usher_inhibitor *inhibitor;
	int64_t last_gc;
};

/* ---- notification log ------------------------------------------------ */

struct nflog_entry {
	bool found;
	int64_t ts;
	size_t nfiring, nresolved;
	uint64_t *firing, *resolved; /* sorted */
};

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

static void parse_fps(const char *s, uint64_t **out, size_t *n)
{
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	while (s && *s) {
		char *end;
		uint64_t v = strtoull(s, &end, 16);

		if (end == s)
			break;
		if (*n == cap) {
			cap = cap ? 2 * cap : 8;
			*out = usher_realloc(*out, cap * sizeof(**out));
		}
		(*out)[(*n)++] = v;
		s = *end == ',' ? end + 1 : end;
	}
	if (*n > 1)
		qsort(*out, *n, sizeof(**out), cmp_u64);
}

static char *format_fps(const uint64_t *v, size_t n)
{
	char *out = usher_malloc(n * 17 + 1), *o = out;
	size_t i;

	*o = '\0';
	for (i = 0; i < n; i++) {
		if (i)
			*o++ = ',';
		usher_fp_format(v[i], o);
		o += 16;
	}
	*o = '\0';
	return out;
}

static void nflog_entry_free(struct nflog_entry *e)
{
	free(e->firing);
	free(e->resolved);
	memset(e, 0, sizeof(*e));
}

static enum usher_err nflog_get(struct usher_dispatch *d, const char *gk, const char *recv,
				const char *integ, int idx, struct nflog_entry *e,
				struct usher_error *err)
{
	sqlite3_stmt *stmt = NULL;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = sqlite3_prepare_v2(usher_store_db(d->st),
				"SELECT firing, resolved, ts FROM nflog WHERE group_key = ?1 AND "
				"receiver = ?2 AND integration = ?3 AND idx = ?4",
				-1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return usher_store_fail(d->st, rc, "read the notification log", err);
	sqlite3_bind_text(stmt, 1, gk, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, recv, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, integ, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 4, idx);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		e->found = true;
		parse_fps((const char *)sqlite3_column_text(stmt, 0), &e->firing, &e->nfiring);
		parse_fps((const char *)sqlite3_column_text(stmt, 1), &e->resolved, &e->nresolved);
		e->ts = sqlite3_column_int64(stmt, 2);
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE)
		return usher_store_fail(d->st, rc, "read the notification log", err);
	return USHER_OK;
}

static enum usher_err nflog_put(struct usher_dispatch *d, const char *gk, const char *recv,
				const char *integ, int idx, const uint64_t *firing, size_t nf,
				const uint64_t *resolved, size_t nr, int64_t now,
				struct usher_error *err)
{
	char *f = format_fps(firing, nf), *r = format_fps(resolved, nr);
	sqlite3_stmt *stmt = NULL;
	int rc;

	rc = sqlite3_prepare_v2(usher_store_db(d->st),
				"INSERT INTO nflog (group_key, receiver, integration, idx, firing, "
				"resolved, ts, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
				"ON CONFLICT (group_key, receiver, integration, idx) DO UPDATE SET "
				"firing = excluded.firing, resolved = excluded.resolved, ts = "
				"excluded.ts, expires = excluded.expires",
				-1, &stmt, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(stmt, 1, gk, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 2, recv, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 3, integ, -1, SQLITE_STATIC);
		sqlite3_bind_int(stmt, 4, idx);
		sqlite3_bind_text(stmt, 5, f, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 6, r, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 7, now);
		sqlite3_bind_int64(stmt, 8, now + USHER_NFLOG_RETENTION_MS * 1000000LL);
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	sqlite3_finalize(stmt);
	free(f);
	free(r);
	if (rc != SQLITE_OK)
		return usher_store_fail(d->st, rc, "write the notification log", err);
	return USHER_OK;
}

static bool subset(const uint64_t *sub, size_t nsub, const uint64_t *set, size_t nset)
{
	size_t i;

	for (i = 0; i < nsub; i++)
		if (!nset || !bsearch(&sub[i], set, nset, sizeof(*set), cmp_u64))
			return false;
	return true;
}

/* Alertmanager's DedupStage.needsUpdate. */
static bool needs_update(const struct nflog_entry *e, const uint64_t *firing, size_t nf,
			 const uint64_t *resolved, size_t nr, int64_t repeat_ns, bool send_resolved,
			 int64_t now)
{
	if (!e->found)
		return nf > 0;
	if (!subset(firing, nf, e->firing, e->nfiring))
		return true;
	if (nf == 0)
		return e->nfiring > 0;
	if (send_resolved && !subset(resolved, nr, e->resolved, e->nresolved))
		return true;
	return e->ts < now - repeat_ns;
}

/* ---- notification data ----------------------------------------------- */

static void quote_meta(const char *s, struct usher_buf *b)
{
	for (; *s; s++) {
		if (strchr("\\.+*?()|[]{}^$", *s))
			usher_buf_addc(b, '\\');
		usher_buf_addc(b, *s);
	}
}

/* The labels (or annotations) every alert has with the same value. */
static json_t *common(struct usher_am_alert *const *alerts, size_t n, bool annotations)
{
	json_t *o = json_object();
	const struct usher_am_labels *first;
	size_t i, j;

	if (!n)
		return o;
	first = annotations ? &alerts[0]->annotations : &alerts[0]->labels;
	for (i = 0; i < first->n; i++) {
		bool all = true;

		for (j = 1; j < n && all; j++) {
			const char *v = usher_am_labels_get(annotations ? &alerts[j]->annotations
									: &alerts[j]->labels,
							    first->v[i].name);

			all = v && strcmp(v, first->v[i].value) == 0;
		}
		if (all)
			json_object_set_new(o, first->v[i].name, json_string(first->v[i].value));
	}
	return o;
}

json_t *usher_notification_data(const char *receiver, const char *key,
				const struct usher_am_labels *g,
				struct usher_am_alert *const *alerts, size_t n,
				const char *external_url, int64_t now_ns)
{
	json_t *data, *arr = json_array();
	struct usher_buf rq;
	bool firing = false;
	size_t i;

	for (i = 0; i < n; i++) {
		json_array_append_new(arr, usher_am_alert_webhook_json(alerts[i], now_ns));
		if (!usher_am_alert_resolved(alerts[i], now_ns))
			firing = true;
	}
	/* Alertmanager's template data quotes the receiver as a regex */
	usher_buf_init(&rq, 64 * 1024);
	quote_meta(receiver, &rq);
	data = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s, s:s, s:i}", "receiver",
			 usher_buf_str(&rq), "status", firing ? "firing" : "resolved", "alerts",
			 arr, "groupLabels", usher_am_labels_json(g), "commonLabels",
			 common(alerts, n, false), "commonAnnotations", common(alerts, n, true),
			 "externalURL", external_url ? external_url : "", "version", "4",
			 "groupKey", key, "truncatedAlerts", 0);
	usher_buf_free(&rq);
	return data;
}

/* ---- groups ------------------------------------------------------------ */

static uint64_t group_hash(const struct usher_route *r, const char *key)
{
	return usher_strhash(key) ^ (usher_strhash(r->id) * 31);
}

static struct group *group_find(struct usher_dispatch *d, const struct usher_route *r,
				const char *key, uint64_t h)
{
	struct group *g;

	for (g = usher_u64map_get(&d->group_index, h); g; g = g->chain)
		if (g->route == r && strcmp(g->key, key) == 0)
			return g;
	return NULL;
}

static void group_unlink(struct usher_dispatch *d, struct group *g)
{
	struct group *head = usher_u64map_get(&d->group_index, g->hash), **pp;
	size_t i;

	for (pp = &head; *pp; pp = &(*pp)->chain)
		if (*pp == g) {
			*pp = g->chain;
			break;
		}
	if (head)
		usher_u64map_put(&d->group_index, g->hash, head);
	else
		usher_u64map_del(&d->group_index, g->hash);
	for (i = 0; i < d->ngroups; i++)
		if (d->groups[i] == g) {
			d->groups[i] = d->groups[--d->ngroups];
			break;
		}
}

static void group_free(struct group *g)
{
	free(g->key);
	usher_am_labels_free(&g->labels);
	usher_u64map_free(&g->alerts);
	free(g);
}

static void group_remove_alert(struct group *g, struct entry *e)
{
	if (usher_u64map_get(&g->alerts, e->a->fp)) {
		usher_u64map_del(&g->alerts, e->a->fp);
		e->refs--;
	}
}

/* Puts e into the groups of its routes. */
static void route_entry(struct usher_dispatch *d, struct entry *e, int64_t now, bool resolved_now)
{
	const struct usher_route *routes[64];
	size_t n, i;

	if (!d->ac || !d->ac->route)
		return;
	n = usher_route_match(d->ac->route, &e->a->labels, routes, 64);
	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++) {
		const struct usher_route *r = routes[i];
		struct usher_am_labels gl = {0};
		struct group *g;
		uint64_t h;
		char *key;

		usher_route_group_labels(r, &e->a->labels, &gl);
		key = usher_route_group_key(r, &gl);
		h = group_hash(r, key);
		g = group_find(d, r, key, h);
		if (!g) {
			g = usher_calloc(1, sizeof(*g));
			g->route = r;
			g->key = key;
			g->hash = h;
			g->labels = gl;
			g->next_ns = now + r->group_wait_ms * 1000000LL;
			g->chain = usher_u64map_get(&d->group_index, h);
			usher_u64map_put(&d->group_index, h, g);
			if (d->ngroups == d->groups_cap) {
				d->groups_cap = d->groups_cap ? 2 * d->groups_cap : 64;
				d->groups =
				    usher_realloc(d->groups, d->groups_cap * sizeof(*d->groups));
			}
			d->groups[d->ngroups++] = g;
		} else {
			free(key);
			usher_am_labels_free(&gl);
		}
		if (!usher_u64map_get(&g->alerts, e->a->fp)) {
			usher_u64map_put(&g->alerts, e->a->fp, e);
			e->refs++;
		}
		if (!g->flushed && e->a->starts_at + r->group_wait_ms * 1000000LL < now)
			g->next_ns = now;
		/* #1510: a resolution goes out without waiting for group_interval */
		if (g->flushed && resolved_now && d->ac->resolve_immediately)
			g->next_ns = now;
	}
}

static void rebuild_inhibitor(struct usher_dispatch *d, int64_t now)
{
	size_t i;

	if (!d->inhibitor)
		return;
	usher_inhibitor_reset(d->inhibitor);
	for (i = 0; i < d->alerts.cap; i++)
		if (d->alerts.vals[i])
			usher_inhibitor_add(d->inhibitor, ((struct entry *)d->alerts.vals[i])->a,
					    now);
}

static bool silenced(struct usher_dispatch *d, const struct usher_am_alert *a, int64_t now)
{
	json_t *ids;
	bool yes;

	if (!d->silences)
		return false;
	ids = usher_silences_mutes(d->silences, &a->labels, now);
	yes = json_array_size(ids) > 0;
	json_decref(ids);
	return yes;
}

static bool time_muted(struct usher_dispatch *d, const struct usher_route *r, int64_t now)
{
	size_t i;
	bool in_active = false;

	for (i = 0; i < r->mute_time_intervals.n; i++) {
		const struct usher_time_interval *ti =
		    usher_alerting_time_interval(d->ac, r->mute_time_intervals.v[i]);

		if (ti && usher_time_interval_contains(ti, now))
			return true;
	}
	if (!r->active_time_intervals.n)
		return false;
	for (i = 0; i < r->active_time_intervals.n; i++) {
		const struct usher_time_interval *ti =
		    usher_alerting_time_interval(d->ac, r->active_time_intervals.v[i]);

		if (ti && usher_time_interval_contains(ti, now))
			in_active = true;
	}
	return !in_active;
}

static int cmp_alert_ptr(const void *x, const void *y)
{
	return usher_am_alert_compare(*(struct usher_am_alert *const *)x,
				      *(struct usher_am_alert *const *)y);
}

static void log_error(struct usher_dispatch *d, const char *gk, const char *what, const char *msg)
{
	struct usher_log_field f[] = {
	    USHER_LFS("event.action", "alert-notify"),
	    USHER_LFS("event.outcome", "failure"),
	    USHER_LFS("usher.alerting.group_key", gk),
	};

	usher_log_event(d->log, USHER_LOG_ERROR, f, 3, "%s: %s", what, msg);
}

/* Records and enqueues the notification of alerts (n, sorted) of g for
 * every integration that needs it. Returns false when the store failed. */
static bool notify(struct usher_dispatch *d, struct group *g, struct usher_am_alert **alerts,
		   size_t n, int64_t now)
{
	const struct usher_receiver_conf *recv = usher_alerting_receiver(d->ac, g->route->receiver);
	uint64_t *firing = usher_calloc(n + 1, sizeof(*firing)), *resolved = usher_calloc(n + 1, 8);
	struct usher_am_alert **fire_only = usher_calloc(n + 1, sizeof(*fire_only));
	size_t nf = 0, nr = 0, i;
	char *sfiring = NULL, *sresolved = NULL, *all_json = NULL, *firing_json = NULL;
	json_t *data;
	struct usher_error err;
	bool ok = true, any = false;

	usher_error_clear(&err);
	for (i = 0; i < n; i++) {
		if (usher_am_alert_resolved(alerts[i], now)) {
			resolved[nr++] = alerts[i]->fp;
		} else {
			firing[nf++] = alerts[i]->fp;
			fire_only[nf - 1] = alerts[i];
		}
	}
	qsort(firing, nf, sizeof(*firing), cmp_u64);
	qsort(resolved, nr, sizeof(*resolved), cmp_u64);
	sfiring = format_fps(firing, nf);
	sresolved = format_fps(resolved, nr);
	data = usher_notification_data(g->route->receiver, g->key, &g->labels, alerts, n,
				       d->external_url, now);
	if (d->hooks.on_flush)
		d->hooks.on_flush(d->hooks.on_flush_arg, data, g->route);
	if (!recv || !recv->nintegrations)
		goto out;
	usher_store_lock(d->st);
	if (usher_store_exec(d->st, "BEGIN IMMEDIATE", &err)) {
		usher_store_unlock(d->st);
		log_error(d, g->key, "cannot record the notification", err.msg);
		ok = false;
		goto out;
	}
	for (i = 0; i < recv->nintegrations && ok; i++) {
		const struct usher_integration_conf *ic = &recv->integrations[i];
		bool sr = ic->type->send_resolved ? ic->type->send_resolved(ic->opts) : true;
		struct nflog_entry e;
		const char *payload;

		if (nflog_get(d, g->key, recv->name, ic->type->name, ic->index, &e, &err)) {
			ok = false;
			break;
		}
		if (!needs_update(&e, firing, nf, resolved, nr,
				  g->route->repeat_interval_ms * 1000000LL, sr, now)) {
			nflog_entry_free(&e);
			continue;
		}
		nflog_entry_free(&e);
		if (sr) {
			if (!all_json)
				all_json = json_dumps(data, JSON_COMPACT);
			payload = all_json;
		} else if (nf) {
			if (!firing_json) {
				json_t *fd =
				    usher_notification_data(g->route->receiver, g->key, &g->labels,
							    fire_only, nf, d->external_url, now);

				firing_json = json_dumps(fd, JSON_COMPACT);
				json_decref(fd);
			}
			payload = firing_json;
		} else {
			payload = NULL; /* only resolved, and the integration does not want them */
		}
		if (payload && d->hooks.enqueue) {
			/* the group key: the delivery queue sends a group's
			 * notifications in order by it, and it is what PagerDuty's
			 * dedup_key and Opsgenie's alias hash (as Alertmanager's
			 * key.Hash()), so a resolve matches its trigger */
			if (d->hooks.enqueue(d->hooks.arg, d->st, recv->name, ic->type->name,
					     ic->index, g->key, payload, &err)) {
				ok = false;
				break;
			}
			any = true;
		}
		if (nflog_put(d, g->key, recv->name, ic->type->name, ic->index, firing, nf,
			      resolved, nr, now, &err))
			ok = false;
	}
	if (ok && usher_store_exec(d->st, "COMMIT", &err))
		ok = false;
	if (!ok) {
		struct usher_error e2;

		usher_error_clear(&e2);
		usher_store_exec(d->st, "ROLLBACK", &e2);
		log_error(d, g->key, "cannot record the notification", err.msg);
	}
	usher_store_unlock(d->st);
	if (ok && any && d->hooks.committed)
		d->hooks.committed(d->hooks.arg);
out:
	json_decref(data);
	free(all_json);
	free(firing_json);
	free(sfiring);
	free(sresolved);
	free(firing);
	free(resolved);
	free(fire_only);
	return ok;
}

static void flush(struct usher_dispatch *d, struct group *g, int64_t now)
{
	struct entry **snap = usher_calloc(g->alerts.n + 1, sizeof(*snap));
	struct usher_am_alert **keep = usher_calloc(g->alerts.n + 1, sizeof(*keep));
	int64_t *updated = usher_calloc(g->alerts.n + 1, sizeof(*updated));
	size_t n = 0, nk = 0, i;
	bool ok = true;

	for (i = 0; i < g->alerts.cap; i++)
		if (g->alerts.vals[i]) {
			snap[n] = g->alerts.vals[i];
			n++;
		}
	for (i = 0; i < n; i++) {
		struct usher_am_alert *a = snap[i]->a;
		bool resolved = usher_am_alert_resolved(a, now);
		bool inhibited =
		    d->inhibitor && usher_inhibitor_mutes(d->inhibitor, &a->labels, NULL);
		bool sil = !inhibited && silenced(d, a, now);

		updated[i] = a->updated_at;
		if (inhibited)
			continue;
		/* #226: the resolved notice of a silenced alert, when asked for */
		if (sil && !(resolved && d->ac->send_resolved_silenced))
			continue;
		keep[nk++] = a;
	}
	qsort(keep, nk, sizeof(*keep), cmp_alert_ptr);
	if (nk && !time_muted(d, g->route, now))
		ok = notify(d, g, keep, nk, now);
	if (ok) {
		/* resolved alerts leave the group once notified, unless they
		 * changed meanwhile (Alertmanager's DeleteIfNotModified) */
		for (i = 0; i < n; i++)
			if (usher_am_alert_resolved(snap[i]->a, now) &&
			    snap[i]->a->updated_at == updated[i])
				group_remove_alert(g, snap[i]);
	}
	free(snap);
	free(keep);
	free(updated);
}

/* ---- public ------------------------------------------------------------ */

enum usher_err usher_dispatch_new(struct usher_store *st, struct usher_silences *silences,
				  const struct usher_dispatch_hooks *hooks, struct usher_log *log,
				  struct usher_dispatch **out, struct usher_error *err)
{
	struct usher_dispatch *d = usher_calloc(1, sizeof(*d));
	enum usher_err rc;

	*out = NULL;
	pthread_mutex_init(&d->mu, NULL);
	if (!st) {
		rc = usher_store_open(":memory:", &st, err);
		if (rc) {
			usher_dispatch_free(d);
			return rc;
		}
		d->own_store = true;
	}
	d->st = st;
	rc = usher_store_migrate(st, "nflog", nflog_migrations, err);
	if (rc) {
		usher_dispatch_free(d);
		return rc;
	}
	d->silences = silences;
	if (hooks)
		d->hooks = *hooks;
	d->log = log;
	*out = d;
	return USHER_OK;
}

static void drop_groups(struct usher_dispatch *d)
{
	size_t i;

	for (i = 0; i < d->ngroups; i++) {
		struct group *g = d->groups[i];
		size_t j;

		for (j = 0; j < g->alerts.cap; j++)
			if (g->alerts.vals[j])
				((struct entry *)g->alerts.vals[j])->refs--;
		group_free(g);
	}
	d->ngroups = 0;
	usher_u64map_free(&d->group_index);
	memset(&d->group_index, 0, sizeof(d->group_index));
}

void usher_dispatch_free(struct usher_dispatch *d)
{
	size_t i;

	if (!d)
		return;
	drop_groups(d);
	free(d->groups);
	for (i = 0; i < d->alerts.cap; i++)
		if (d->alerts.vals[i]) {
			struct entry *e = d->alerts.vals[i];

			usher_am_alert_free(e->a);
			free(e);
		}
	usher_u64map_free(&d->alerts);
	usher_inhibitor_free(d->inhibitor);
	usher_config_free(d->cfg);
	free(d->external_url);
	if (d->own_store)
		usher_store_close(d->st);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

void usher_dispatch_set_config(struct usher_dispatch *d, struct usher_config *cfg,
			       const char *external_url, int64_t now_ns)
{
	size_t i;

	pthread_mutex_lock(&d->mu);
	drop_groups(d);
	usher_inhibitor_free(d->inhibitor);
	d->inhibitor = NULL;
	usher_config_free(d->cfg);
	d->cfg = cfg ? usher_config_ref(cfg) : NULL;
	d->ac = cfg ? cfg->alerting : NULL;
	free(d->external_url);
	d->external_url = usher_strdup(external_url ? external_url : "");
	if (d->ac && d->ac->ninhibit_rules)
		d->inhibitor = usher_inhibitor_new(d->ac->inhibit_rules, d->ac->ninhibit_rules);
	for (i = 0; i < d->alerts.cap; i++)
		if (d->alerts.vals[i]) {
			struct entry *e = d->alerts.vals[i];

			if (!usher_am_alert_resolved(e->a, now_ns))
				route_entry(d, e, now_ns, false);
		}
	pthread_mutex_unlock(&d->mu);
}

/* Whether the new alert's activity overlaps the old one's (Alertmanager's
 * provider merges only then; otherwise the new alert replaces). */
static bool overlaps(const struct usher_am_alert *old, const struct usher_am_alert *a)
{
	return (a->ends_at > old->starts_at && a->ends_at < old->ends_at) ||
	       (a->starts_at > old->starts_at && a->starts_at < old->ends_at);
}

void usher_dispatch_put(struct usher_dispatch *d, struct usher_am_alert *a, int64_t now_ns)
{
	struct entry *e;
	bool was_resolved, resolved_now;

	pthread_mutex_lock(&d->mu);
	e = usher_u64map_get(&d->alerts, a->fp);
	if (!e) {
		e = usher_calloc(1, sizeof(*e));
		e->a = a;
		usher_u64map_put(&d->alerts, a->fp, e);
		was_resolved = false;
	} else {
		was_resolved = usher_am_alert_resolved(e->a, now_ns);
		if (overlaps(e->a, a)) {
			usher_am_alert_merge(e->a, a, now_ns);
		} else {
			struct usher_am_alert *old = e->a;

			e->a = a;
			usher_am_alert_free(old);
		}
	}
	resolved_now = usher_am_alert_resolved(e->a, now_ns) && !was_resolved;
	/* Alertmanager routes resolved alerts too: a group learns of it */
	route_entry(d, e, now_ns, resolved_now);
	pthread_mutex_unlock(&d->mu);
}

static void gc(struct usher_dispatch *d, int64_t now)
{
	size_t i;
	struct usher_error err;

	/* resolved alerts held by no group */
	for (i = 0; i < d->alerts.cap;) {
		struct entry *e = d->alerts.vals[i];

		if (e && e->refs <= 0 && usher_am_alert_resolved(e->a, now)) {
			usher_u64map_del(&d->alerts, e->a->fp);
			usher_am_alert_free(e->a);
			free(e);
			continue; /* backward shift moved another entry here */
		}
		i++;
	}
	/* empty groups */
	for (i = 0; i < d->ngroups;) {
		struct group *g = d->groups[i];

		if (g->alerts.n == 0) {
			group_unlink(d, g);
			group_free(g);
			continue;
		}
		i++;
	}
	if (now - d->last_gc < GC_EVERY_NS)
		return;
	d->last_gc = now;
	usher_error_clear(&err);
	{
		sqlite3_stmt *stmt = NULL;

		usher_store_lock(d->st);
		if (sqlite3_prepare_v2(usher_store_db(d->st),
				       "DELETE FROM nflog WHERE expires < ?1", -1, &stmt,
				       NULL) == SQLITE_OK) {
			sqlite3_bind_int64(stmt, 1, now);
			sqlite3_step(stmt);
		}
		sqlite3_finalize(stmt);
		usher_store_unlock(d->st);
	}
	if (d->silences)
		usher_silences_gc(d->silences, now, USHER_SILENCE_RETENTION_MS);
}

void usher_dispatch_tick(struct usher_dispatch *d, int64_t now_ns)
{
	struct group **due;
	size_t i, n = 0;

	pthread_mutex_lock(&d->mu);
	due = usher_calloc(d->ngroups + 1, sizeof(*due));
	for (i = 0; i < d->ngroups; i++)
		if (d->groups[i]->next_ns <= now_ns)
			due[n++] = d->groups[i];
	if (n) {
		rebuild_inhibitor(d, now_ns);
		for (i = 0; i < n; i++) {
			due[i]->next_ns = now_ns + due[i]->route->group_interval_ms * 1000000LL;
			due[i]->flushed = true;
			flush(d, due[i], now_ns);
		}
	}
	gc(d, now_ns);
	pthread_mutex_unlock(&d->mu);
	free(due);
}

int64_t usher_dispatch_next_ns(struct usher_dispatch *d)
{
	int64_t next = INT64_MAX;
	size_t i;

	pthread_mutex_lock(&d->mu);
	for (i = 0; i < d->ngroups; i++)
		if (d->groups[i]->next_ns < next)
			next = d->groups[i]->next_ns;
	pthread_mutex_unlock(&d->mu);
	return next;
}

/* ---- API views ----------------------------------------------------------- */

struct view {
	struct usher_dispatch *d;
	const struct usher_am_alert_filter *f;
	struct usher_am_matchers recv_re;
	int64_t now;
};

/* gettableAlert of a, or NULL when the filter leaves it out. */
static json_t *gettable(struct view *v, const struct usher_am_alert *a)
{
	struct usher_dispatch *d = v->d;
	const struct usher_route *routes[64];
	json_t *recvs = json_array(), *sil, *inh = json_array(), *j;
	char starts[48], ends[48], upd[48], fp[17];
	size_t n = 0, i, k;
	bool recv_ok = !v->f || !v->f->receiver;
	uint64_t by = 0;
	bool suppressed;

	if (usher_am_alert_resolved(a, v->now) ||
	    (v->f && v->f->matchers && !usher_am_matchers_match(v->f->matchers, &a->labels)))
		goto skip;
	if (d->ac && d->ac->route)
		n = usher_route_match(d->ac->route, &a->labels, routes, 64);
	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++) {
		bool dup = false;

		for (k = 0; k < i; k++)
			if (strcmp(routes[k]->receiver, routes[i]->receiver) == 0)
				dup = true;
		if (dup)
			continue;
		json_array_append_new(recvs, json_pack("{s:s}", "name", routes[i]->receiver));
		if (!recv_ok && usher_am_matcher_matches(&v->recv_re.v[0], routes[i]->receiver))
			recv_ok = true;
	}
	if (!recv_ok)
		goto skip;
	sil = d->silences ? usher_silences_mutes(d->silences, &a->labels, v->now) : json_array();
	if (d->inhibitor && usher_inhibitor_mutes(d->inhibitor, &a->labels, &by)) {
		char b[17];

		usher_fp_format(by, b);
		json_array_append_new(inh, json_string(b));
	}
	suppressed = json_array_size(sil) || json_array_size(inh);
	if (v->f &&
	    ((!v->f->silenced && json_array_size(sil)) ||
	     (!v->f->inhibited && json_array_size(inh)) || (!v->f->active && !suppressed))) {
		json_decref(sil);
		goto skip;
	}
	usher_time_format_nano(a->starts_at, starts, sizeof(starts));
	usher_time_format_nano(a->ends_at, ends, sizeof(ends));
	usher_time_format_nano(a->updated_at, upd, sizeof(upd));
	usher_fp_format(a->fp, fp);
	j = json_pack("{s:o, s:s, s:s, s:o, s:s, s:{s:o, s:o, s:s}, s:s}", "annotations",
		      usher_am_labels_json(&a->annotations), "endsAt", ends, "fingerprint", fp,
		      "receivers", recvs, "startsAt", starts, "status", "inhibitedBy", inh,
		      "silencedBy", sil, "state", suppressed ? "suppressed" : "active", "updatedAt",
		      upd);
	/* omitted when empty, as Alertmanager's API does (omitempty) */
	if (a->generator_url && *a->generator_url)
		json_object_set_new(j, "generatorURL", json_string(a->generator_url));
	json_object_set_new(j, "labels", usher_am_labels_json(&a->labels));
	return j;
skip:
	json_decref(recvs);
	json_decref(inh);
	return NULL;
}

static bool view_init(struct view *v, struct usher_dispatch *d,
		      const struct usher_am_alert_filter *f, int64_t now)
{
	memset(v, 0, sizeof(*v));
	v->d = d;
	v->f = f;
	v->now = now;
	if (f && f->receiver &&
	    usher_am_matchers_add(&v->recv_re, USHER_AM_MATCH_RE, "receiver", f->receiver, NULL))
		return false;
	return true;
}

static int cmp_fp(const void *x, const void *y)
{
	uint64_t a = (*(struct usher_am_alert *const *)x)->fp;
	uint64_t b = (*(struct usher_am_alert *const *)y)->fp;

	return a < b ? -1 : a > b;
}

/* The gettableAlerts of the n alerts in v (reordered in place): by
 * fingerprint, as Alertmanager lists them (16 hex digits sort as numbers). */
static json_t *alerts_array(struct view *v, struct usher_am_alert **as, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	qsort(as, n, sizeof(*as), cmp_fp);
	for (i = 0; i < n; i++) {
		json_t *j = gettable(v, as[i]);

		if (j)
			json_array_append_new(arr, j);
	}
	return arr;
}

/* The alerts held in map m (fingerprint -> struct entry *). */
static struct usher_am_alert **collect(const struct usher_u64map *m, size_t *n)
{
	struct usher_am_alert **as = usher_calloc(m->n + 1, sizeof(*as));
	size_t i;

	*n = 0;
	for (i = 0; i < m->cap; i++)
		if (m->vals[i])
			as[(*n)++] = ((struct entry *)m->vals[i])->a;
	return as;
}

json_t *usher_dispatch_alerts_json(struct usher_dispatch *d, const struct usher_am_alert_filter *f,
				   int64_t now_ns)
{
	struct usher_am_alert **as;
	struct view v;
	json_t *arr;
	size_t n;

	pthread_mutex_lock(&d->mu);
	if (!view_init(&v, d, f, now_ns)) {
		pthread_mutex_unlock(&d->mu);
		return NULL;
	}
	rebuild_inhibitor(d, now_ns);
	as = collect(&d->alerts, &n);
	arr = alerts_array(&v, as, n);
	pthread_mutex_unlock(&d->mu);
	free(as);
	usher_am_matchers_free(&v.recv_re);
	return arr;
}

static int cmp_group_ptr(const void *x, const void *y)
{
	return strcmp((*(struct group *const *)x)->key, (*(struct group *const *)y)->key);
}

json_t *usher_dispatch_groups_json(struct usher_dispatch *d, const struct usher_am_alert_filter *f,
				   int64_t now_ns)
{
	struct view v;
	json_t *out = json_array();
	struct group **gs;
	size_t i;

	pthread_mutex_lock(&d->mu);
	if (!view_init(&v, d, f, now_ns)) {
		pthread_mutex_unlock(&d->mu);
		json_decref(out);
		return NULL;
	}
	rebuild_inhibitor(d, now_ns);
	gs = usher_calloc(d->ngroups + 1, sizeof(*gs));
	memcpy(gs, d->groups, d->ngroups * sizeof(*gs));
	qsort(gs, d->ngroups, sizeof(*gs), cmp_group_ptr);
	for (i = 0; i < d->ngroups; i++) {
		struct group *g = gs[i];
		struct usher_am_alert **as;
		json_t *arr;
		size_t n;

		if (v.f && v.f->receiver &&
		    !usher_am_matcher_matches(&v.recv_re.v[0], g->route->receiver))
			continue;
		as = collect(&g->alerts, &n);
		arr = alerts_array(&v, as, n);
		free(as);
		if (json_array_size(arr))
			json_array_append_new(out,
					      json_pack("{s:o, s:o, s:{s:s}}", "alerts", arr,
							"labels", usher_am_labels_json(&g->labels),
							"receiver", "name", g->route->receiver));
		else
			json_decref(arr);
	}
	pthread_mutex_unlock(&d->mu);
	free(gs);
	usher_am_matchers_free(&v.recv_re);
	return out;
}

void usher_dispatch_stats(struct usher_dispatch *d, int64_t now_ns, int64_t *active,
			  int64_t *suppressed, int64_t *groups)
{
	size_t i;

	*active = *suppressed = 0;
	pthread_mutex_lock(&d->mu);
	rebuild_inhibitor(d, now_ns);
	for (i = 0; i < d->alerts.cap; i++) {
		struct entry *e = d->alerts.vals[i];

		if (!e || usher_am_alert_resolved(e->a, now_ns))
			continue;
		if ((d->inhibitor && usher_inhibitor_mutes(d->inhibitor, &e->a->labels, NULL)) ||
		    silenced(d, e->a, now_ns))
			(*suppressed)++;
		else
			(*active)++;
	}
	*groups = (int64_t)d->ngroups;
	pthread_mutex_unlock(&d->mu);
}
