/* The `incidents:` section of usher.yml: where incidents are stored and how
 * long a resolved incident may be reopened by its group firing again. */
#include <stddef.h>
#include <string.h>

#include "notify/incident.h"

const struct usher_option usher_incidents_options[] = {
    {"store", USHER_OPT_STR, offsetof(struct usher_incidents_conf, store), "sqlite", 0,
     "sqlite (state_dir/usher.db) or postgres (shared by usherd instances side by side)"},
    {"dsn", USHER_OPT_SECRET, offsetof(struct usher_incidents_conf, dsn), NULL, 0,
     "store: postgres: libpq connection string or postgresql:// URI (${env:}/${file:} ok)"},
    {"reopen_window", USHER_OPT_DURATION, offsetof(struct usher_incidents_conf, reopen_window_ms),
     USHER_INCIDENT_DEFAULT_REOPEN_WINDOW, 0,
     "a group firing again within this long after its incident was resolved reopens it"},
    {"tickets", USHER_OPT_STRLIST, offsetof(struct usher_incidents_conf, tickets), NULL, 0,
     "receivers (alerting.receivers) whose ticket integrations also get the incident's "
     "acknowledgements, notes and resolutions by hand"},
    USHER_OPT_END,
};

enum usher_err usher_incidents_conf_check(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					  const struct usher_incidents_conf *conf)
{
	const struct usher_ynode *at;

	if (strcmp(conf->store, "sqlite") != 0 && strcmp(conf->store, "postgres") != 0) {
		at = node ? usher_ynode_get(node, "store") : NULL;
		return usher_cfg_error(
		    ctx, at ? at : node,
		    "incidents.store: \"%s\" is not a store: use sqlite or postgres", conf->store);
	}
	if (strcmp(conf->store, "postgres") == 0 && (!conf->dsn || !*conf->dsn))
		return usher_cfg_error(ctx, node,
				       "incidents.store is postgres but incidents.dsn is not set "
				       "(e.g. dsn: \"postgresql://usher@db/usher\")");
	if (strcmp(conf->store, "sqlite") == 0 && conf->dsn && *conf->dsn) {
		at = usher_ynode_get(node, "dsn");
		return usher_cfg_error(ctx, at ? at : node,
				       "incidents.dsn is set but incidents.store is sqlite: "
				       "set store: postgres, or remove dsn");
	}
	if (conf->reopen_window_ms < 0)
		return usher_cfg_error(ctx, node, "incidents.reopen_window must not be negative");
	return USHER_OK;
}

enum usher_err usher_incidents_parse(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				     void *field)
{
	struct usher_incidents_conf *conf = field;

	if (usher_ynode_is_null(node))
		node = NULL;
	else if (node->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, node, "incidents: expected a mapping, got a %s",
				       usher_ynode_kind_name(node->kind));
	if (usher_opts_apply1(ctx, usher_incidents_options, conf, node))
		return USHER_ERR_INVALID;
	return usher_incidents_conf_check(ctx, node, conf);
}
