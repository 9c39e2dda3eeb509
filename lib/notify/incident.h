/* Incidents: an alert group that pages becomes an incident with an id, a
 * status (open -> acknowledged -> resolved, reopened when the group fires
 * again within incidents.reopen_window), its alerts and a timeline (fired,
 * each notification, acks and notes with their author, resolved).
 *
 * Incidents live in the state store (SQLite, state_dir/usher.db, WAL) or,
 * with incidents.store: postgres, in a PostgreSQL database shared by two
 * usherd side by side. Either way a unique index allows one unresolved
 * incident per group key, so two usherd flushing the same group at the same
 * moment open one incident between them.
 *
 * Threads: every function may be called from any thread; an instance
 * serialises its own database work. */
#ifndef USHER_NOTIFY_INCIDENT_H
#define USHER_NOTIFY_INCIDENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/options.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "metrics/registry.h"
#include "store/store.h"

#define USHER_INCIDENT_DEFAULT_REOPEN_WINDOW "1h"

/* The `incidents:` section of usher.yml. */
struct usher_incidents_conf {
	const char *store;            /* "sqlite" (default) or "postgres" */
	const char *dsn;              /* postgres: a libpq connection string or URI */
	int64_t reopen_window_ms;     /* a group firing again within this reopens its incident */
	struct usher_strlist tickets; /* receivers whose ticket integrations get operator events */
};

/* Its option table (lib/notify/incidentconf.c), for the top-level table. */
extern const struct usher_option usher_incidents_options[];
/* The USHER_OPT_CUSTOM parser of the top-level `incidents` key: fills a
 * struct usher_incidents_conf (defaults for absent keys) and checks it. A
 * config without the key leaves the struct zeroed, which usher_incidents_new
 * reads as the defaults. */
enum usher_err usher_incidents_parse(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				     void *field);
/* Cross-key checks once the table has filled conf (postgres needs a dsn). */
enum usher_err usher_incidents_conf_check(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					  const struct usher_incidents_conf *conf);

enum usher_incident_status {
	USHER_INCIDENT_OPEN,
	USHER_INCIDENT_ACKNOWLEDGED,
	USHER_INCIDENT_RESOLVED,
};

/* "open", "acknowledged", "resolved". */
const char *usher_incident_status_name(enum usher_incident_status s);
/* Parses a status name; USHER_ERR_INVALID for anything else. */
enum usher_err usher_incident_status_parse(const char *s, enum usher_incident_status *out);

struct usher_incidents;

/* Opens the incident store described by conf (borrowed; copied). For
 * sqlite it uses shared when not NULL (borrowed, must outlive the
 * instance), else opens state_dir/usher.db itself. For postgres it connects
 * to conf->dsn (reconnecting later when the connection breaks). Creates or
 * upgrades the tables. reg (may be NULL) gets usher_incidents_open{severity}
 * and the MTTA/MTTR histograms; log (may be NULL) gets lifecycle events.
 * shared is also where the operator events for incidents.tickets are
 * queued (the delivery queue, lib/notify/delivery.h); without it they are
 * not sent. A PostgreSQL that cannot be reached is logged, not an error:
 * incidents are recorded once it answers. Returns USHER_ERR_IO with the
 * reason in err. */
enum usher_err usher_incidents_new(const struct usher_incidents_conf *conf, const char *state_dir,
				   struct usher_store *shared, struct usher_registry *reg,
				   struct usher_log *log, struct usher_incidents **out,
				   struct usher_error *err);
/* Closes the store and removes the metrics. NULL ok. */
void usher_incidents_free(struct usher_incidents *inc);

struct usher_config;

/* Applies a (re)loaded config: the reopen window, and incidents.tickets
 * with the receivers of cfg's alerting section (cfg is referenced until
 * the next call or usher_incidents_free). Call once after
 * usher_incidents_new and after each reload. A changed store or dsn needs
 * a restart: returns USHER_ERR_UNSUPPORTED (err says so) and keeps the
 * current store, the rest applied. A name in incidents.tickets that is no
 * receiver with a ticket integration is logged. */
enum usher_err usher_incidents_reconfigure(struct usher_incidents *inc, struct usher_config *cfg,
					   struct usher_error *err);

/* Whether an alert group opens an incident when its route says nothing:
 * any alert with label severity "page" or "critical". data: the webhook
 * (version 4) JSON of the group. */
bool usher_incident_default_wanted(const json_t *data);

/* The dispatcher's observer, called on every flush of a group with its
 * webhook (version 4) JSON (borrowed). Firing: opens an incident when
 * open_incident and the group has no unresolved incident (reopening the
 * last one when it was resolved within the reopen window), else updates the
 * incident's alerts; new alerts add a "fired" entry. Resolved: resolves the
 * group's incident ("resolved" entry). data is copied. Errors are logged,
 * never returned: a store outage must not stop notifications. */
void usher_incidents_on_flush(struct usher_incidents *inc, const json_t *data, bool open_incident);

/* Both observers only queue their work (copying what they need) for the
 * instance's own thread, so a slow or unreachable database never holds up
 * the dispatcher; usher_incidents_free writes what is queued first. Past
 * 10000 queued updates new ones are dropped and logged. */

/* Adds a "notification" entry to the group's current incident (the
 * unresolved one, else the last one) if it has any: receiver, integration,
 * outcome (enum usher_delivery_outcome), detail (may be NULL). */
void usher_incidents_on_delivery(struct usher_incidents *inc, const char *group_key,
				 const char *receiver, const char *integration, int outcome,
				 const char *detail);

/* Waits until every queued flush and delivery is written (tests, and
 * readers that must see a flush just made). */
void usher_incidents_sync(struct usher_incidents *inc);

/* Operator actions. author must be non-empty. USHER_ERR_NOTFOUND for an
 * unknown id; USHER_ERR_INVALID (err says why) for an ack of a resolved
 * incident or a resolve of a resolved one. */
enum usher_err usher_incident_ack(struct usher_incidents *inc, int64_t id, const char *author,
				  struct usher_error *err);
enum usher_err usher_incident_note(struct usher_incidents *inc, int64_t id, const char *author,
				   const char *text, struct usher_error *err);
enum usher_err usher_incident_resolve(struct usher_incidents *inc, int64_t id, const char *author,
				      struct usher_error *err);

/* Incidents as JSON (the API's shapes, docs/incidents.md). list: newest
 * first, all of them or those with status *status (NULL: any), at most
 * limit; each without alerts and timeline. get: one incident with its
 * alerts and timeline. The caller owns the result. */
enum usher_err usher_incidents_list(struct usher_incidents *inc, const char *status, int limit,
				    json_t **out, struct usher_error *err);
enum usher_err usher_incident_get(struct usher_incidents *inc, int64_t id, json_t **out,
				  struct usher_error *err);

/* Writes a Markdown postmortem draft of incident (the JSON of
 * usher_incident_get) into out: summary, impact window, timeline,
 * alerts, notifications, acknowledgements, and headings for the parts
 * people write. */
enum usher_err usher_incident_report(const json_t *incident, struct usher_buf *out);

/* The hex SHA-256 of a group key: the tag or label ticket systems carry
 * to find an incident's ticket again (out: 65 bytes). */
void usher_incident_group_hash(const char *group_key, char out[65]);

#endif
