/* The dispatcher: Alertmanager's alert pipeline after the API. Alerts are
 * kept by fingerprint (merged as Alertmanager merges a re-sent alert),
 * routed through the tree into aggregation groups, and each group flushes
 * after group_wait, then every group_interval: silenced and inhibited
 * alerts are left out, the route's time intervals may mute it, and for
 * each integration of the receiver the notification log (nflog, in the
 * state store) decides, as Alertmanager's DedupStage, whether anything
 * changed or repeat_interval has passed. What goes out is enqueued (one
 * delivery per integration) in the same store transaction that records
 * the nflog entry, so "already sent" survives a restart.
 *
 * Times are nanoseconds since the epoch, passed in by the caller: the
 * daemon uses the wall clock, tests a clock of their own.
 *
 * Threads: every function may be called from any thread; the dispatcher
 * serialises on its own lock and calls the hooks under it (they must not
 * call back into the dispatcher). */
#ifndef USHER_NOTIFY_DISPATCH_H
#define USHER_NOTIFY_DISPATCH_H

#include <jansson.h>
#include <stdint.h>

#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "notify/alert.h"
#include "notify/alertingconf.h"
#include "notify/silence.h"
#include "store/store.h"

#define USHER_NFLOG_RETENTION_MS (120LL * 3600 * 1000) /* Alertmanager's --data.retention */

/* Where flushed notifications go. enqueue runs inside the dispatcher's
 * store transaction (usher_delivery_enqueue's contract); committed() runs
 * after COMMIT (usher_delivery_kick). on_flush sees every flush of a group
 * with something to notify: the webhook JSON of all its unmuted alerts
 * and the route (the incidents' observer). Any may be NULL. */
struct usher_dispatch_hooks {
	enum usher_err (*enqueue)(void *arg, struct usher_store *st, const char *receiver,
				  const char *integration, int index, const char *key,
				  const char *data_json, struct usher_error *err);
	void (*committed)(void *arg);
	void *arg;
	void (*on_flush)(void *arg, const json_t *data, const struct usher_route *route);
	void *on_flush_arg;
};

struct usher_dispatch;

/* A dispatcher keeping its nflog in st (module "nflog"; st borrowed, may
 * be NULL for an in-memory log: tests), muting with silences (borrowed,
 * may be NULL), logging to log (may be NULL). hooks are copied. */
enum usher_err usher_dispatch_new(struct usher_store *st, struct usher_silences *silences,
				  const struct usher_dispatch_hooks *hooks, struct usher_log *log,
				  struct usher_dispatch **out, struct usher_error *err);
void usher_dispatch_free(struct usher_dispatch *d);

/* Uses cfg's alerting section from now on (takes a reference; NULL or a
 * config without alerting: alerts are kept but go nowhere). The groups
 * are rebuilt from the alerts, starting over with group_wait, as
 * Alertmanager does on reload; the nflog keeps them from re-notifying.
 * external_url is copied (externalURL of notifications). */
void usher_dispatch_set_config(struct usher_dispatch *d, struct usher_config *cfg,
			       const char *external_url, int64_t now_ns);

/* Receives one alert (taken): merged with the alert of the same
 * fingerprint, routed, grouped. */
void usher_dispatch_put(struct usher_dispatch *d, struct usher_am_alert *a, int64_t now_ns);

/* Flushes the groups that are due at now_ns, and collects garbage. */
void usher_dispatch_tick(struct usher_dispatch *d, int64_t now_ns);
/* When the next group is due (INT64_MAX when none). */
int64_t usher_dispatch_next_ns(struct usher_dispatch *d);

/* What API v2's GET /api/v2/alerts answers (gettableAlerts): the alerts
 * not resolved at now_ns, filtered by matchers (may be NULL), receiver
 * regex (may be NULL, anchored) and the active / silenced / inhibited
 * flags. */
struct usher_am_alert_filter {
	const struct usher_am_matchers *matchers;
	const char *receiver;
	bool active, silenced, inhibited;
};
json_t *usher_dispatch_alerts_json(struct usher_dispatch *d, const struct usher_am_alert_filter *f,
				   int64_t now_ns);
/* GET /api/v2/alerts/groups (alertGroups). */
json_t *usher_dispatch_groups_json(struct usher_dispatch *d, const struct usher_am_alert_filter *f,
				   int64_t now_ns);

/* Counts for metrics: alerts by state (active, suppressed) and groups. */
void usher_dispatch_stats(struct usher_dispatch *d, int64_t now_ns, int64_t *active,
			  int64_t *suppressed, int64_t *groups);

/* Alertmanager's notification data (webhook version 4) for alerts
 * (borrowed, n of them, in order) of group labels g with group key key,
 * for receiver. Exposed for tests and the integrations' test tooling. */
json_t *usher_notification_data(const char *receiver, const char *key,
				const struct usher_am_labels *g,
				struct usher_am_alert *const *alerts, size_t n,
				const char *external_url, int64_t now_ns);

#endif
