/* usherd's alerting: the glue between the daemon and lib/notify. It owns
 * the silences, the dispatcher (routing, grouping, the notification log)
 * and the delivery queue, runs the dispatcher's timers on a thread of its
 * own, serves Alertmanager's API v2 on the HTTP server, and takes the
 * alerts of the rule engine.
 *
 *	rule engine ──usherd_alerting_put_json──▶ dispatcher ──▶ delivery queue
 *	Prometheus, amtool ──/api/v2/…──────────▶     ▲ silences (state store)
 *
 * main.c calls, in this order: usherd_alerting_new once the store and the
 * HTTP server exist; usherd_alerting_reload on every successful reload;
 * usherd_alerting_free before the server and the store go away. */
#ifndef USHERD_ALERTING_H
#define USHERD_ALERTING_H

#include <jansson.h>

#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "httpd.h"
#include "metrics/registry.h"
#include "notify/delivery.h"
#include "notify/route.h"
#include "store/store.h"

struct usherd_alerting;

/* Starts alerting with cfg's `alerting:` section (a config without one
 * accepts and shows alerts but notifies nobody). store (borrowed; may be
 * NULL, then state_dir/usher.db is opened here) keeps silences, the
 * notification log and the delivery queue; log, reg and httpd (borrowed)
 * must outlive the result. Registers /api/v2/… on httpd. Returns
 * USHER_ERR_IO with err set when the store cannot be used or a thread not
 * started; *out is NULL then. */
enum usher_err usherd_alerting_new(const struct usher_config *cfg, struct usher_store *store,
				   struct usher_log *log, struct usher_registry *reg,
				   struct usher_httpd *httpd, struct usherd_alerting **out,
				   struct usher_error *err);

/* Applies a reloaded config: keeps the alerts and silences, rebuilds the
 * routes and groups (which start over with group_wait; the notification
 * log keeps them from notifying again), and hands the new receivers to the
 * delivery queue. Never fails today; returns USHER_OK. */
enum usher_err usherd_alerting_reload(struct usherd_alerting *a, const struct usher_config *cfg,
				      struct usher_error *err);

/* Takes alerts in API v2's postableAlerts shape (an array of {labels,
 * annotations, startsAt, endsAt, generatorURL}: what Prometheus sends);
 * alerts (borrowed) that are not valid are logged and skipped. The rule
 * engine calls it after each group evaluation. NULL a: nothing. */
void usherd_alerting_put_json(struct usherd_alerting *a, const json_t *alerts);

/* Stops the timers and the delivery workers (pending deliveries stay in
 * the store for the next start) and frees everything. NULL ok. */
void usherd_alerting_free(struct usherd_alerting *a);

/* The observer of every group flush (the incidents' hook): fn(arg, data,
 * route) with the webhook v4 JSON of the group's unmuted alerts and the
 * route it flushed on (route->incident: 1, 0, or -1 for the default). It
 * runs on the alerting thread under the dispatcher's lock and must not call
 * back into alerting. fn NULL removes it. */
void usherd_alerting_set_observer(struct usherd_alerting *a,
				  void (*fn)(void *arg, const json_t *data,
					     const struct usher_route *route),
				  void *arg);

/* Every notification outcome worth a person's attention (delivered,
 * refused, the first failed attempt), with the alert group's key: the
 * incidents' timeline. See usher_delivery_set_observer. */
void usherd_alerting_set_delivery_observer(struct usherd_alerting *a,
					   usher_delivery_observer_fn *fn, void *arg);

/* --- for api_v2.c ----------------------------------------------------------- */

struct usher_dispatch;
struct usher_silences;

struct usherd_alerting_view {
	struct usher_dispatch *dispatch;
	struct usher_silences *silences;
};
void usherd_alerting_view(struct usherd_alerting *a, struct usherd_alerting_view *v);
/* A reference to the config in force (usher_config_free it). */
struct usher_config *usherd_alerting_config(struct usherd_alerting *a);
/* Wakes the timer thread (new alerts, a silence changed). */
void usherd_alerting_wake(struct usherd_alerting *a);
/* The ECS events of the API (docs/logging.md): one alerts-received per
 * batch (debug; source "api" or "rules"), and silence-created with
 * user.name = the silence's author (created false: silence-expired). */
void usherd_alerting_log_received(struct usherd_alerting *a, const char *source, int64_t valid,
				  int64_t invalid, const char *why);
void usherd_alerting_log_silence(struct usherd_alerting *a, bool created, const char *id,
				 const json_t *silence);
/* Expires silence id now (usher_silences_expire) and logs its
 * silence-expired event; one whose endsAt passes is logged by the timer
 * thread within a second (event.reason "endsAt reached"). */
enum usher_err usherd_alerting_silence_expire(struct usherd_alerting *a, const char *id,
					      struct usher_error *err);
int64_t usherd_alerting_started_ns(struct usherd_alerting *a);
/* Counts alerts received through the API (usher_alerts_received_total). */
void usherd_alerting_count(struct usherd_alerting *a, int64_t valid, int64_t invalid);

/* Registers API v2 on h for a (api_v2.c). */
void usherd_api_v2_register(struct usher_httpd *h, struct usherd_alerting *a);

#endif
