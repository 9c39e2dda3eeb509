/* The `alerting:` section of usher.yml: alertmanager.yml's shape (route,
 * receivers, inhibit_rules, time_intervals and its older name
 * mute_time_intervals, templates), plus usher's own keys: resolve_timeout
 * (Alertmanager's global.resolve_timeout), external_url, and the two
 * options Alertmanager's users asked for: send_resolved_silenced (#226) and
 * resolve_immediately (#1510). Receivers' `<type>_configs` lists are
 * parsed by the integration types (notify/integration.h). */
#ifndef USHER_NOTIFY_ALERTINGCONF_H
#define USHER_NOTIFY_ALERTINGCONF_H

#include "config/options.h"
#include "notify/inhibit.h"
#include "notify/integration.h"
#include "notify/notifytmpl.h"
#include "notify/route.h"
#include "notify/timeinterval.h"

struct usher_receiver_conf {
	const char *name;
	struct usher_integration_conf *integrations;
	size_t nintegrations;
	int line, col;
};

struct usher_alerting_conf {
	struct usher_route *route;
	struct usher_receiver_conf *receivers;
	size_t nreceivers;
	struct usher_inhibit_rule *inhibit_rules;
	size_t ninhibit_rules;
	struct usher_time_interval *time_intervals;
	size_t ntime_intervals;
	struct usher_strlist templates; /* globs, as written */
	struct usher_notifytmpl_lib *tmpl_lib; /* their defines, bound to every entry */
	int64_t resolve_timeout_ms;     /* an alert without endsAt resolves after this */
	const char *external_url;       /* externalURL in notifications */
	bool send_resolved_silenced;    /* #226: resolved notice for alerts silenced after firing */
	bool resolve_immediately;       /* #1510: a resolution flushes its group at once */
};

/* The parse function of the top-level `alerting` key (USHER_OPT_CUSTOM):
 * field is a struct usher_alerting_conf * (NULL when absent) that gets
 * an arena-allocated section. */
enum usher_err usher_alerting_parse(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				    void *field);

/* Frees what the section holds outside the config's arena (the template
 * library of `templates:`). Called by usher_config_free. NULL ok. */
void usher_alerting_conf_release(struct usher_alerting_conf *c);

/* Lookups in a loaded section; NULL when absent. */
const struct usher_receiver_conf *usher_alerting_receiver(const struct usher_alerting_conf *c,
							  const char *name);
const struct usher_time_interval *usher_alerting_time_interval(const struct usher_alerting_conf *c,
							       const char *name);
/* The integration entry index of type integration in receiver, or NULL. */
const struct usher_integration_conf *usher_alerting_integration(const struct usher_alerting_conf *c,
								const char *receiver,
								const char *integration, int index);

/* The section as alertmanager.yml text (JSON, which YAML reads): the route
 * tree, the receivers' names (their integrations left out: they hold
 * secrets), inhibit rules and the names of the time intervals. What API
 * v2's status shows as config.original, so `amtool config routes` works.
 * malloc'd; NULL c gives a minimal config. */
char *usher_alerting_conf_text(const struct usher_alerting_conf *c);

/* The option reference of the section's scalar keys, for the docs. */
extern const struct usher_option usher_alerting_options[];

#endif
