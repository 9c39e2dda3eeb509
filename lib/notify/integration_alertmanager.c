/* alertmanager_configs: forwards the alerts of a notification to one or
 * more real Alertmanagers through POST /api/v2/alerts (the scale-out path:
 * an Alertmanager cluster does the grouping and paging from there). Like
 * Prometheus, every URL gets the alerts; the delivery counts as done when
 * one of them took them (the cluster gossips them to the others). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "notify/integrations.h"

struct am_opts {
	struct usher_notify_common common;
	struct usher_notify_httpconf http;
	struct usher_strlist urls;
	const char *url;
	const char *bearer_token;
};

static const struct usher_option am_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct am_opts, "true"),
    USHER_NOTIFY_HTTPCONF_OPT(struct am_opts, http),
    {.key = "urls",
     .type = USHER_OPT_STRLIST,
     .offset = offsetof(struct am_opts, urls),
     .help = "base URLs of the Alertmanagers (http://am-1:9093, …)"},
    {.key = "url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct am_opts, url),
     .help = "one more base URL (or the only one)"},
    {.key = "bearer_token",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct am_opts, bearer_token),
     .help = "sent as Authorization: Bearer (a secret)"},
    USHER_OPT_END,
};

static enum usher_err am_check(struct usher_cfgctx *ctx, void *opts, const struct usher_ynode *node)
{
	struct am_opts *o = opts;
	size_t i;

	if (!o->url && o->urls.n == 0)
		return usher_cfg_error(ctx, node, "alertmanager_configs needs urls (or url)");
	if (usher_notify_httpconf_check(ctx, &o->http, node))
		return USHER_ERR_INVALID;
	for (i = 0; i <= o->urls.n; i++) {
		const char *u = i < o->urls.n ? o->urls.v[i] : o->url;

		if (u && strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
			return usher_cfg_error(ctx, node, "%s is not an http:// or https:// URL",
					       u);
	}
	return USHER_OK;
}

/* Alertmanager's postableAlerts from the notification's alerts. */
static json_t *postable(const json_t *data)
{
	json_t *out = json_array(), *alerts = json_object_get(data, "alerts");
	size_t i;

	for (i = 0; i < json_array_size(alerts); i++) {
		const json_t *a = json_array_get(alerts, i);
		json_t *p = json_object();
		const char *s;

		json_object_set(p, "labels", json_object_get(a, "labels"));
		if (json_is_object(json_object_get(a, "annotations")))
			json_object_set(p, "annotations", json_object_get(a, "annotations"));
		if ((s = json_string_value(json_object_get(a, "startsAt"))) &&
		    strncmp(s, "0001-", 5))
			json_object_set_new(p, "startsAt", json_string(s));
		/* a firing alert's zero endsAt is left out: Alertmanager then
		 * applies its resolve_timeout */
		if ((s = json_string_value(json_object_get(a, "endsAt"))) && strncmp(s, "0001-", 5))
			json_object_set_new(p, "endsAt", json_string(s));
		if ((s = json_string_value(json_object_get(a, "generatorURL"))) && *s)
			json_object_set_new(p, "generatorURL", json_string(s));
		json_array_append_new(out, p);
	}
	return out;
}

static void am_deliver(const void *opts, const json_t *data, const char *key, int64_t timeout_ms,
		       struct usher_delivery_result *res)
{
	const struct am_opts *o = opts;
	json_t *alerts = postable(data);
	char *body = json_dumps(alerts, JSON_COMPACT);
	char auth[1024];
	const char *hdrs[] = {auth, NULL};
	bool ok = false, retry = false;
	struct usher_delivery_result one, worst;
	size_t i;

	(void)key;
	memset(res, 0, sizeof(*res));
	memset(&worst, 0, sizeof(worst));
	if (o->bearer_token)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->bearer_token);
	for (i = 0; i <= o->urls.n; i++) {
		const char *base = i < o->urls.n ? o->urls.v[i] : o->url;
		struct usher_notify_http req = {0};
		char url[2048];
		size_t bl;

		if (!base)
			continue;
		bl = strlen(base);
		snprintf(url, sizeof(url), "%s%sapi/v2/alerts", base,
			 bl && base[bl - 1] == '/' ? "" : "/");
		req.url = url;
		req.body = body;
		req.headers = o->bearer_token ? hdrs : NULL;
		req.timeout_ms = timeout_ms;
		req.conf = &o->http;
		usher_notify_http("alertmanager", &req, &one);
		if (one.outcome == USHER_DELIVERY_OK) {
			ok = true;
			*res = one;
		} else {
			if (one.outcome == USHER_DELIVERY_RETRY)
				retry = true;
			if (!worst.err.msg[0])
				worst = one;
		}
	}
	if (!ok) {
		*res = worst;
		res->outcome = retry ? USHER_DELIVERY_RETRY : USHER_DELIVERY_FAIL;
	}
	free(body);
	json_decref(alerts);
}

const struct usher_integration_type usher_integration_alertmanager = {
    .name = "alertmanager",
    .options = am_options,
    .opts_size = sizeof(struct am_opts),
    .check = am_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = am_deliver,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
