/* usherd's alerting glue: silences, dispatcher and delivery queue over the
 * state store, the dispatcher's timer thread, the rule engine's alerts,
 * and the alerting metrics. */
#include "alerting.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "notify/alertingconf.h"
#include "notify/delivery.h"
#include "notify/dispatch.h"
#include "notify/silence.h"

#define IDLE_WAKE_MS 1000

struct usherd_alerting {
	pthread_mutex_t mu; /* cfg, observer, stop */
	pthread_cond_t cv;
	pthread_t thread;
	bool thread_started, stop, woken;
	struct usher_config *cfg;
	struct usher_store *st;
	bool own_store;
	struct usher_log *log;
	struct usher_registry *reg;
	struct usher_silences *silences;
	struct usher_delivery *delivery;
	struct usher_dispatch *dispatch;
	void (*observer)(void *arg, const json_t *data, const struct usher_route *route);
	void *observer_arg;
	int64_t started_ns;
	int64_t received, invalid;
	int port; /* the server's, for externalURL when listen says :0 */
	/* the silences not expired at the last look (silence_mu), so one
	 * whose endsAt passes gets its silence-expired event */
	pthread_mutex_t silence_mu;
	char **live;
	size_t nlive;
	bool live_known;
};

static const struct usher_metric_desc desc_alerts = {
    "usher_alerts", USHER_METRIC_GAUGE,
    "Alerts held by the alerting pipeline, by state (active, suppressed)"};
static const struct usher_metric_desc desc_groups = {"usher_am_alert_groups", USHER_METRIC_GAUGE,
						     "Aggregation groups of alerts"};
static const struct usher_metric_desc desc_silences = {
    "usher_silences", USHER_METRIC_GAUGE, "Silences, by state (active, pending, expired)"};
static const struct usher_metric_desc desc_received = {
    "usher_alerts_received", USHER_METRIC_COUNTER,
    "Alerts received from the rule engine and the API, by status (valid, invalid)"};

static enum usher_err enqueue(void *arg, struct usher_store *st, const char *receiver,
			      const char *integration, int index, const char *key,
			      const char *data_json, struct usher_error *err)
{
	(void)arg;
	return usher_delivery_enqueue(st, receiver, integration, index, key, data_json, err);
}

static void committed(void *arg)
{
	struct usherd_alerting *a = arg;

	if (a->delivery)
		usher_delivery_kick(a->delivery);
}

static void on_flush(void *arg, const json_t *data, const struct usher_route *route)
{
	struct usherd_alerting *a = arg;
	void (*fn)(void *, const json_t *, const struct usher_route *);
	void *farg;

	pthread_mutex_lock(&a->mu);
	fn = a->observer;
	farg = a->observer_arg;
	pthread_mutex_unlock(&a->mu);
	if (fn)
		fn(farg, data, route);
}

static const struct usher_integration_conf *lookup(void *arg, const char *receiver,
						   const char *integration, int index)
{
	const struct usher_config *cfg = arg;

	return usher_alerting_integration(cfg->alerting, receiver, integration, index);
}

static void release(void *arg)
{
	usher_config_free(arg);
}

/* externalURL: alerting.external_url, server.external_url, else the
 * listen address. */
static void external_url(const struct usher_config *cfg, int port, char *out, size_t len)
{
	const char *listen = cfg->server.listen, *colon;
	int hostlen;

	if (cfg->alerting && cfg->alerting->external_url) {
		snprintf(out, len, "%s", cfg->alerting->external_url);
		return;
	}
	if (cfg->server.external_url) {
		snprintf(out, len, "%s", cfg->server.external_url);
		return;
	}
	colon = strrchr(listen, ':');
	hostlen = colon ? (int)(colon - listen) : (int)strlen(listen);
	if (hostlen == 0 || (hostlen == 7 && strncmp(listen, "0.0.0.0", 7) == 0)) {
		listen = "localhost";
		hostlen = 9;
	}
	if (port > 0 && (!colon || strcmp(colon, ":0") == 0))
		snprintf(out, len, "%s://%.*s:%d", cfg->server.tls.cert_file ? "https" : "http",
			 hostlen, listen, port);
	else
		snprintf(out, len, "%s://%.*s%s", cfg->server.tls.cert_file ? "https" : "http",
			 hostlen, listen, colon ? colon : "");
}

static void apply(struct usherd_alerting *a, const struct usher_config *cfg)
{
	char url[1024];
	struct usher_config *ref = usher_config_ref((struct usher_config *)cfg);

	external_url(cfg, a->port, url, sizeof(url));
	pthread_mutex_lock(&a->mu);
	usher_config_free(a->cfg);
	a->cfg = usher_config_ref(ref);
	pthread_mutex_unlock(&a->mu);
	usher_dispatch_set_config(a->dispatch, ref, url, usher_now_ns());
	if (a->delivery) {
		struct usher_delivery_receivers r = {
		    .lookup = lookup, .release = release, .arg = usher_config_ref(ref)};

		usher_delivery_set_receivers(a->delivery, &r);
	}
	usher_config_free(ref);
	usherd_alerting_wake(a);
}

static void publish(struct usherd_alerting *a, int64_t now)
{
	struct usher_sample_set *set;
	int64_t active, suppressed, groups, received, invalid;
	int sc[3];

	if (!a->reg)
		return;
	usher_dispatch_stats(a->dispatch, now, &active, &suppressed, &groups);
	usher_silences_count(a->silences, now, sc);
	pthread_mutex_lock(&a->mu);
	received = a->received;
	invalid = a->invalid;
	pthread_mutex_unlock(&a->mu);
	set = usher_sample_set_new(NULL);
	usher_sample_add(set, &desc_alerts, (double)active, "state", "active", NULL);
	usher_sample_add(set, &desc_alerts, (double)suppressed, "state", "suppressed", NULL);
	usher_sample_add(set, &desc_groups, (double)groups, NULL);
	usher_sample_add(set, &desc_silences, sc[USHER_SILENCE_ACTIVE], "state", "active", NULL);
	usher_sample_add(set, &desc_silences, sc[USHER_SILENCE_PENDING], "state", "pending", NULL);
	usher_sample_add(set, &desc_silences, sc[USHER_SILENCE_EXPIRED], "state", "expired", NULL);
	usher_sample_add(set, &desc_received, (double)received, "status", "valid", NULL);
	usher_sample_add(set, &desc_received, (double)invalid, "status", "invalid", NULL);
	usher_registry_publish(a->reg, a, set);
}

static void log_silence(struct usherd_alerting *a, bool created, const char *id,
			const json_t *silence, const char *reason);

static bool in_list(char **v, size_t n, const char *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], id) == 0)
			return true;
	return false;
}

static void live_free(struct usherd_alerting *a)
{
	size_t i;

	for (i = 0; i < a->nlive; i++)
		free(a->live[i]);
	free(a->live);
	a->live = NULL;
	a->nlive = 0;
}

/* Once a second: the silences that expired on their own since the last
 * look get their silence-expired event (those expired through the API got
 * theirs already: usherd_alerting_silence_expire). The first look only
 * learns what is live. */
static void watch_silences(struct usherd_alerting *a, int64_t now)
{
	json_t *all, *sil;
	char **live = NULL;
	size_t n = 0, i;

	pthread_mutex_lock(&a->silence_mu);
	all = usher_silences_list_json(a->silences, NULL, now);
	json_array_foreach(all, i, sil)
	{
		const char *id = json_string_value(json_object_get(sil, "id"));
		const char *state =
		    json_string_value(json_object_get(json_object_get(sil, "status"), "state"));

		if (!id)
			continue;
		if (!state || strcmp(state, "expired") != 0) {
			live = usher_realloc(live, (n + 1) * sizeof(*live));
			live[n++] = usher_strdup(id);
		} else if (a->live_known && in_list(a->live, a->nlive, id)) {
			log_silence(a, false, id, sil, "endsAt reached");
		}
	}
	json_decref(all);
	live_free(a);
	a->live = live;
	a->nlive = n;
	a->live_known = true;
	pthread_mutex_unlock(&a->silence_mu);
}

static void *run(void *arg)
{
	struct usherd_alerting *a = arg;
	int64_t last_publish = 0;

	pthread_mutex_lock(&a->mu);
	while (!a->stop) {
		int64_t now, next, wait_ns;
		struct timespec ts;

		pthread_mutex_unlock(&a->mu);
		now = usher_now_ns();
		usher_dispatch_tick(a->dispatch, now);
		if (now - last_publish >= 1000000000LL) {
			publish(a, now);
			watch_silences(a, now);
			last_publish = now;
		}
		next = usher_dispatch_next_ns(a->dispatch);
		now = usher_now_ns();
		wait_ns = next == INT64_MAX ? IDLE_WAKE_MS * 1000000LL : next - now;
		if (wait_ns > IDLE_WAKE_MS * 1000000LL)
			wait_ns = IDLE_WAKE_MS * 1000000LL;
		pthread_mutex_lock(&a->mu);
		if (wait_ns <= 0 || a->stop || a->woken) {
			a->woken = false;
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ns / 1000000000LL;
		ts.tv_nsec += wait_ns % 1000000000LL;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&a->cv, &a->mu, &ts);
		a->woken = false;
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

enum usher_err usherd_alerting_new(const struct usher_config *cfg, struct usher_store *store,
				   struct usher_log *log, struct usher_registry *reg,
				   struct usher_httpd *httpd, struct usherd_alerting **out,
				   struct usher_error *err)
{
	struct usherd_alerting *a = usher_calloc(1, sizeof(*a));
	struct usher_dispatch_hooks hooks = {.enqueue = enqueue,
					     .committed = committed,
					     .arg = a,
					     .on_flush = on_flush,
					     .on_flush_arg = a};
	enum usher_err rc;

	*out = NULL;
	pthread_mutex_init(&a->mu, NULL);
	pthread_mutex_init(&a->silence_mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->log = log;
	a->reg = reg;
	a->started_ns = usher_now_ns();
	a->port = httpd ? usher_httpd_port(httpd) : 0;
	if (!store) {
		rc = usher_store_open(cfg->state_dir, &store, err);
		if (rc)
			goto fail;
		a->own_store = true;
	}
	a->st = store;
	rc = usher_delivery_migrate(store, err);
	if (rc)
		goto fail;
	rc = usher_silences_new(store, &a->silences, err);
	if (rc)
		goto fail;
	rc = usher_dispatch_new(store, a->silences, &hooks, log, &a->dispatch, err);
	if (rc)
		goto fail;
	a->delivery = usher_delivery_new(store, log, reg, NULL, err);
	if (!a->delivery) {
		rc = USHER_ERR_IO;
		goto fail;
	}
	apply(a, cfg);
	if (pthread_create(&a->thread, NULL, run, a) != 0) {
		rc = usher_fail(err, USHER_ERR_IO, "cannot start the alerting thread");
		goto fail;
	}
	a->thread_started = true;
	if (httpd)
		usherd_api_v2_register(httpd, a);
	*out = a;
	return USHER_OK;
fail:
	usherd_alerting_free(a);
	return rc;
}

enum usher_err usherd_alerting_reload(struct usherd_alerting *a, const struct usher_config *cfg,
				      struct usher_error *err)
{
	(void)err;
	if (a)
		apply(a, cfg);
	return USHER_OK;
}

void usherd_alerting_put_json(struct usherd_alerting *a, const json_t *alerts)
{
	int64_t now = usher_now_ns(), resolve_ms = 5 * 60 * 1000;
	struct usher_config *cfg;
	size_t i, valid = 0, invalid = 0;
	json_t *j;

	if (!a || !json_is_array(alerts))
		return;
	cfg = usherd_alerting_config(a);
	if (cfg && cfg->alerting)
		resolve_ms = cfg->alerting->resolve_timeout_ms;
	usher_config_free(cfg);
	json_array_foreach(alerts, i, j)
	{
		struct usher_error err;
		struct usher_am_alert *al;

		usher_error_clear(&err);
		al = usher_am_alert_from_json(j, now, resolve_ms, &err);
		if (!al) {
			struct usher_log_field f[] = {USHER_LFS("event.action", "alert-invalid")};

			invalid++;
			usher_log_event(a->log, USHER_LOG_WARN, f, 1, "alert %zu refused: %s", i,
					err.msg);
			continue;
		}
		valid++;
		usher_dispatch_put(a->dispatch, al, now);
	}
	usherd_alerting_count(a, (int64_t)valid, (int64_t)invalid);
	if (valid + invalid)
		usherd_alerting_log_received(a, "rules", (int64_t)valid, (int64_t)invalid,
					     "see the alert-invalid events");
	usherd_alerting_wake(a);
}

void usherd_alerting_log_received(struct usherd_alerting *a, const char *source, int64_t valid,
				  int64_t invalid, const char *why)
{
	struct usher_log_field f[] = {
	    USHER_LFS("event.action", "alerts-received"),
	    USHER_LFS("event.kind", "event"),
	    USHER_LFS("event.category", "api"),
	    USHER_LFS("event.type", "info"),
	    USHER_LFS("event.outcome", invalid ? "failure" : "success"),
	    USHER_LFS("usher.alerts.source", source),
	    USHER_LFI("usher.alerts.valid", valid),
	    USHER_LFI("usher.alerts.invalid", invalid),
	    USHER_LFS("error.message", invalid ? why : NULL),
	};

	if (!a || !a->log)
		return;
	usher_log_event(a->log, USHER_LOG_DEBUG, f, sizeof(f) / sizeof(f[0]),
			"%" PRId64 " alert(s) received from %s%s", valid + invalid, source,
			invalid ? ", some refused" : "");
}

static void log_silence(struct usherd_alerting *a, bool created, const char *id,
			const json_t *silence, const char *reason)
{
	const char *author = json_string_value(json_object_get(silence, "createdBy"));
	const char *comment = json_string_value(json_object_get(silence, "comment"));
	struct usher_log_field f[] = {
	    USHER_LFS("event.action", created ? "silence-created" : "silence-expired"),
	    USHER_LFS("event.kind", "event"),
	    USHER_LFS("event.category", "configuration"),
	    USHER_LFS("event.type", created ? "creation" : "deletion"),
	    USHER_LFS("event.outcome", "success"),
	    USHER_LFS("event.reason", reason),
	    USHER_LFS("usher.silence.id", id),
	    USHER_LFS("user.name", author && *author ? author : NULL),
	    USHER_LFS("usher.silence.comment", comment && *comment ? comment : NULL),
	};

	if (!a || !a->log)
		return;
	if (created)
		usher_log_event(a->log, USHER_LOG_INFO, f, sizeof(f) / sizeof(f[0]),
				"silence %s created by %s", id,
				author && *author ? author : "(unknown)");
	else
		usher_log_event(a->log, USHER_LOG_INFO, f, sizeof(f) / sizeof(f[0]),
				"silence %s expired (%s)", id, reason ? reason : "expired");
}

void usherd_alerting_log_silence(struct usherd_alerting *a, bool created, const char *id,
				 const json_t *silence)
{
	log_silence(a, created, id, silence, created ? NULL : "expired through the API");
}

enum usher_err usherd_alerting_silence_expire(struct usherd_alerting *a, const char *id,
					      struct usher_error *err)
{
	json_t *was;
	enum usher_err rc;
	size_t i;

	pthread_mutex_lock(&a->silence_mu);
	was = usher_silences_get_json(a->silences, id, usher_now_ns());
	rc = usher_silences_expire(a->silences, id, usher_now_ns(), err);
	if (rc == USHER_OK) {
		log_silence(a, false, id, was, "expired through the API");
		for (i = 0; i < a->nlive; i++)
			if (strcmp(a->live[i], id) == 0) {
				free(a->live[i]);
				a->live[i] = a->live[--a->nlive];
				break;
			}
	}
	pthread_mutex_unlock(&a->silence_mu);
	json_decref(was);
	return rc;
}

void usherd_alerting_count(struct usherd_alerting *a, int64_t valid, int64_t invalid)
{
	pthread_mutex_lock(&a->mu);
	a->received += valid;
	a->invalid += invalid;
	pthread_mutex_unlock(&a->mu);
}

void usherd_alerting_free(struct usherd_alerting *a)
{
	if (!a)
		return;
	if (a->thread_started) {
		pthread_mutex_lock(&a->mu);
		a->stop = true;
		pthread_cond_signal(&a->cv);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
	}
	if (a->reg)
		usher_registry_remove(a->reg, a);
	usher_delivery_free(a->delivery);
	usher_dispatch_free(a->dispatch);
	usher_silences_free(a->silences);
	usher_config_free(a->cfg);
	if (a->own_store)
		usher_store_close(a->st);
	live_free(a);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->silence_mu);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

void usherd_alerting_set_observer(struct usherd_alerting *a,
				  void (*fn)(void *arg, const json_t *data,
					     const struct usher_route *route),
				  void *arg)
{
	pthread_mutex_lock(&a->mu);
	a->observer = fn;
	a->observer_arg = arg;
	pthread_mutex_unlock(&a->mu);
}

void usherd_alerting_set_delivery_observer(struct usherd_alerting *a,
					   usher_delivery_observer_fn *fn, void *arg)
{
	if (a && a->delivery)
		usher_delivery_set_observer(a->delivery, fn, arg);
}

void usherd_alerting_view(struct usherd_alerting *a, struct usherd_alerting_view *v)
{
	v->dispatch = a->dispatch;
	v->silences = a->silences;
}

struct usher_config *usherd_alerting_config(struct usherd_alerting *a)
{
	struct usher_config *c;

	pthread_mutex_lock(&a->mu);
	c = a->cfg ? usher_config_ref(a->cfg) : NULL;
	pthread_mutex_unlock(&a->mu);
	return c;
}

void usherd_alerting_wake(struct usherd_alerting *a)
{
	pthread_mutex_lock(&a->mu);
	a->woken = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

int64_t usherd_alerting_started_ns(struct usherd_alerting *a)
{
	return a->started_ns;
}
