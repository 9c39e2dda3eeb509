/* webhook_configs: Alertmanager's webhook, version 4 — the notification
 * JSON as it is, POSTed to url, with max_alerts cutting the alerts list
 * (truncatedAlerts says how many went). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "notify/integrations.h"

struct webhook_opts {
	struct usher_notify_common common;
	struct usher_notify_httpconf http;
	const char *url, *url_file;
	int64_t max_alerts;
};

static const struct usher_option webhook_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct webhook_opts, "true"),
    USHER_NOTIFY_HTTPCONF_OPT(struct webhook_opts, http),
    {.key = "url",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct webhook_opts, url),
     .help = "the endpoint the JSON is POSTed to (required, or url_file)"},
    {.key = "url_file",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct webhook_opts, url_file),
     .help = "a file holding the url"},
    {.key = "max_alerts",
     .type = USHER_OPT_INT,
     .offset = offsetof(struct webhook_opts, max_alerts),
     .def = "0",
     .help = "at most this many alerts per message (0: all)"},
    USHER_OPT_END,
};

static enum usher_err webhook_check(struct usher_cfgctx *ctx, void *opts,
				    const struct usher_ynode *node)
{
	struct webhook_opts *o = opts;

	if (usher_notify_httpconf_check(ctx, &o->http, node) ||
	    usher_notify_secret_file(ctx, node, "url", &o->url, o->url_file))
		return USHER_ERR_INVALID;
	if (!o->url)
		return usher_cfg_error(ctx, node, "webhook_configs needs url (or url_file)");
	if (o->max_alerts < 0)
		return usher_cfg_error(ctx, node, "max_alerts must not be negative");
	if (o->url && strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)
		return usher_cfg_error(ctx, node, "url must be an http:// or https:// URL");
	return USHER_OK;
}

static void webhook_deliver(const void *opts, const json_t *data, const char *key,
			    int64_t timeout_ms, struct usher_delivery_result *res)
{
	const struct webhook_opts *o = opts;
	json_t *msg = json_deep_copy(data);
	json_t *alerts = json_object_get(msg, "alerts");
	struct usher_notify_http req = {0};
	char *body;

	(void)key;
	if (o->max_alerts > 0 && json_array_size(alerts) > (size_t)o->max_alerts) {
		size_t extra = json_array_size(alerts) - (size_t)o->max_alerts;
		json_int_t had = json_integer_value(json_object_get(msg, "truncatedAlerts"));

		while (json_array_size(alerts) > (size_t)o->max_alerts)
			json_array_remove(alerts, json_array_size(alerts) - 1);
		json_object_set_new(msg, "truncatedAlerts", json_integer(had + (json_int_t)extra));
	}
	if (!json_object_get(msg, "truncatedAlerts"))
		json_object_set_new(msg, "truncatedAlerts", json_integer(0));
	body = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	req.url = o->url;
	req.body = body;
	req.timeout_ms = timeout_ms;
	req.conf = &o->http;
	usher_notify_http("webhook", &req, res);
	free(body);
}

const struct usher_integration_type usher_integration_webhook = {
    .name = "webhook",
    .options = webhook_options,
    .opts_size = sizeof(struct webhook_opts),
    .check = webhook_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = webhook_deliver,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
