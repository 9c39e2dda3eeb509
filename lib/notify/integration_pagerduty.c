/* pagerduty_configs: PagerDuty Events API v2 — trigger while the group
 * fires, resolve when it is resolved, dedup_key = sha256 of the group key
 * (so a retry after a crash never opens a second incident), severity
 * mapped onto PagerDuty's four, and events kept under PagerDuty's 512 KB
 * (the summary cut to 1024 characters, then the custom details replaced by
 * a note, as Alertmanager does). */
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "notify/integrations.h"

#define PD_URL         "https://events.pagerduty.com/v2/enqueue"
#define PD_MAX_EVENT   (512 * 1024)
#define PD_SUMMARY_MAX 1024

struct pd_opts {
	struct usher_notify_common common;
	struct usher_notify_httpconf http;
	const char *routing_key, *routing_key_file, *service_key, *url;
	const char *client, *client_url, *description, *severity, *source, *component, *group,
	    *class_;
	struct usher_strmap details;
	struct usher_notifytmpl *t_client, *t_client_url, *t_description, *t_severity, *t_source,
	    *t_component, *t_group, *t_class_;
	size_t ndetails;
	const char **detail_keys;
	struct usher_notifytmpl **t_details;
};

#define S(k, m, d, h)                                                                              \
	{                                                                                          \
		.key = k, .type = USHER_OPT_STR, .offset = offsetof(struct pd_opts, m), .def = d,  \
		.help = h                                                                          \
	}

static const struct usher_option pd_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct pd_opts, "true"),
    USHER_NOTIFY_HTTPCONF_OPT(struct pd_opts, http),
    {.key = "routing_key",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct pd_opts, routing_key),
     .help = "the integration key of an Events API v2 integration (a secret)"},
    {.key = "routing_key_file",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct pd_opts, routing_key_file),
     .help = "a file holding routing_key"},
    {.key = "service_key",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct pd_opts, service_key),
     .help = "Events API v1 key: not supported, use routing_key"},
    {.key = "url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct pd_opts, url),
     .def = PD_URL,
     .help = "the Events API v2 endpoint"},
    S("client", client, "{{ template \"pagerduty.default.client\" . }}", "template"),
    S("client_url", client_url, "{{ template \"pagerduty.default.clientURL\" . }}", "template"),
    S("description", description, "{{ template \"pagerduty.default.description\" .}}",
      "the event's summary (template)"),
    S("severity", severity,
      "{{ if .CommonLabels.severity }}{{ .CommonLabels.severity }}{{ else }}error{{ end }}",
      "template; mapped onto critical, error, warning, info"),
    S("source", source, NULL, "template; default: the client"),
    S("component", component, NULL, "template"),
    S("group", group, NULL, "template"),
    S("class", class_, NULL, "template"),
    {.key = "details",
     .type = USHER_OPT_STRMAP,
     .offset = offsetof(struct pd_opts, details),
     .help = "custom details (templates), merged with firing, resolved, num_firing, "
	     "num_resolved"},
    USHER_OPT_END,
};

static const char *const default_details[][2] = {
    {"firing", "{{ template \"pagerduty.default.instances\" .Alerts.Firing }}"},
    {"resolved", "{{ template \"pagerduty.default.instances\" .Alerts.Resolved }}"},
    {"num_firing", "{{ .Alerts.Firing | len }}"},
    {"num_resolved", "{{ .Alerts.Resolved | len }}"},
};

static enum usher_err pd_check(struct usher_cfgctx *ctx, void *opts, const struct usher_ynode *node)
{
	struct pd_opts *o = opts;
	struct usher_notify_common *c = &o->common;
	bool bad = false;
	size_t i, n;

	if (usher_notify_secret_file(ctx, node, "routing_key", &o->routing_key,
				     o->routing_key_file))
		return USHER_ERR_INVALID;
	if (o->service_key && !o->routing_key)
		return usher_cfg_error(
		    ctx, node,
		    "service_key is PagerDuty's Events API v1, which usher does "
		    "not speak: use the routing_key of an Events API v2 integration");
	if (!o->routing_key || !*o->routing_key)
		return usher_cfg_error(ctx, node, "pagerduty_configs needs routing_key");
	if (usher_notify_httpconf_check(ctx, &o->http, node))
		return USHER_ERR_INVALID;
#define F(m, k) bad |= usher_notifytmpl_field(ctx, c, node, k, o->m, &o->t_##m) != USHER_OK
	F(client, "client");
	F(client_url, "client_url");
	F(description, "description");
	F(severity, "severity");
	F(source, "source");
	F(component, "component");
	F(group, "group");
	F(class_, "class");
#undef F
	/* the defaults first, overridden by the user's keys */
	n = o->details.n + 4;
	o->detail_keys = usher_arena_zalloc(ctx->arena, n * sizeof(*o->detail_keys));
	o->t_details = usher_arena_zalloc(ctx->arena, n * sizeof(*o->t_details));
	for (i = 0; i < 4; i++)
		if (!usher_strmap_get(&o->details, default_details[i][0])) {
			o->detail_keys[o->ndetails] = default_details[i][0];
			bad |= usher_notifytmpl_field(ctx, c, node, default_details[i][0],
						      default_details[i][1],
						      &o->t_details[o->ndetails]) != USHER_OK;
			o->ndetails++;
		}
	for (i = 0; i < o->details.n; i++) {
		o->detail_keys[o->ndetails] = o->details.v[i].key;
		bad |= usher_notifytmpl_field(ctx, c, usher_ynode_get(node, "details"),
					      o->details.v[i].key, o->details.v[i].value,
					      &o->t_details[o->ndetails]) != USHER_OK;
		o->ndetails++;
	}
	return bad ? USHER_ERR_INVALID : USHER_OK;
}

/* usher's and the common severities onto PagerDuty's four. */
static const char *pd_severity(const char *s)
{
	static const char *const map[][2] = {
	    {"critical", "critical"}, {"page", "critical"}, {"fatal", "critical"},
	    {"high", "critical"},     {"error", "error"},   {"major", "error"},
	    {"warning", "warning"},   {"warn", "warning"},  {"minor", "warning"},
	    {"medium", "warning"},    {"info", "info"},     {"low", "info"},
	    {"none", "info"},         {"notice", "info"},   {"informational", "info"},
	};
	char low[32];
	size_t i;

	for (i = 0; s[i] && i + 1 < sizeof(low); i++)
		low[i] = (char)tolower((unsigned char)s[i]);
	low[i] = '\0';
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i][0], low) == 0)
			return map[i][1];
	return "error";
}

static void pd_deliver(const void *opts, const json_t *data, const char *key, int64_t timeout_ms,
		       struct usher_delivery_result *res)
{
	const struct pd_opts *o = opts;
	struct usher_notify_http req = {0};
	char dedup[65], *v[8] = {0}, *summary = NULL, *body = NULL;
	const struct usher_notifytmpl *f[8] = {o->t_client,   o->t_client_url, o->t_description,
					       o->t_severity, o->t_source,     o->t_component,
					       o->t_group,    o->t_class_};
	bool resolve = usher_notify_resolved(data);
	json_t *ev = NULL, *payload, *details;
	size_t i;

	memset(res, 0, sizeof(*res));
	usher_notify_sha256_hex(key, dedup);
	for (i = 0; i < 8; i++)
		if (!(v[i] = usher_notify_expand(f[i], data, res)))
			goto out;
	ev = json_pack("{s:s, s:s, s:s}", "routing_key", o->routing_key, "event_action",
		       resolve ? "resolve" : "trigger", "dedup_key", dedup);
	if (!resolve) {
		summary = usher_notify_truncate(*v[2] ? v[2] : "alert", PD_SUMMARY_MAX);
		payload = json_pack("{s:s, s:s, s:s}", "summary", summary, "source",
				    *v[4] ? v[4] : (*v[0] ? v[0] : "usher"), "severity",
				    pd_severity(v[3]));
		if (*v[5])
			json_object_set_new(payload, "component", json_string(v[5]));
		if (*v[6])
			json_object_set_new(payload, "group", json_string(v[6]));
		if (*v[7])
			json_object_set_new(payload, "class", json_string(v[7]));
		details = json_object();
		for (i = 0; i < o->ndetails; i++) {
			char *d = usher_notify_expand(o->t_details[i], data, res);

			if (!d) {
				json_decref(details);
				json_decref(payload);
				goto out;
			}
			json_object_set_new(details, o->detail_keys[i], json_string(d));
			free(d);
		}
		json_object_set_new(payload, "custom_details", details);
		json_object_set_new(ev, "payload", payload);
		if (*v[0])
			json_object_set_new(ev, "client", json_string(v[0]));
		if (*v[1])
			json_object_set_new(ev, "client_url", json_string(v[1]));
	}
	body = json_dumps(ev, JSON_COMPACT);
	if (body && strlen(body) > PD_MAX_EVENT) {
		free(body);
		json_object_set_new(
		    json_object_get(ev, "payload"), "custom_details",
		    json_pack("{s:s}", "error",
			      "custom details have been removed because the original "
			      "event exceeds the maximum size of 512KB"));
		body = json_dumps(ev, JSON_COMPACT);
	}
	if (!body || strlen(body) > PD_MAX_EVENT) {
		res->outcome = USHER_DELIVERY_FAIL;
		usher_fail(&res->err, USHER_ERR_TOOBIG, "pagerduty event larger than 512KB");
		goto out;
	}
	req.url = o->url;
	req.body = body;
	req.timeout_ms = timeout_ms;
	req.conf = &o->http;
	usher_notify_http("pagerduty", &req, res);
out:
	json_decref(ev);
	for (i = 0; i < 8; i++)
		free(v[i]);
	free(summary);
	free(body);
}

const struct usher_integration_type usher_integration_pagerduty = {
    .name = "pagerduty",
    .options = pd_options,
    .opts_size = sizeof(struct pd_opts),
    .check = pd_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = pd_deliver,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
