/* opsgenie_configs: Opsgenie's Alert API v2 — create while the group fires,
 * close when it is resolved, both by alias = sha256 of the group key (a
 * retried create is deduplicated by Opsgenie). Legacy: Atlassian ends the
 * Opsgenie service on 2027-04-05 (docs/receivers.md). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "notify/integrations.h"

#define OG_URL         "https://api.opsgenie.com/"
#define OG_MESSAGE_MAX 130
#define OG_DESC_MAX    15000

struct og_responder {
	const char *id, *name, *username, *type;
};

static const struct usher_option responder_options[] = {
    {.key = "id", .type = USHER_OPT_STR, .offset = offsetof(struct og_responder, id)},
    {.key = "name", .type = USHER_OPT_STR, .offset = offsetof(struct og_responder, name)},
    {.key = "username", .type = USHER_OPT_STR, .offset = offsetof(struct og_responder, username)},
    {.key = "type",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct og_responder, type),
     .flags = USHER_OPT_REQUIRED,
     .help = "team, user, escalation or schedule"},
    USHER_OPT_END,
};

struct og_opts {
	struct usher_notify_common common;
	struct usher_notify_httpconf http;
	struct usher_list responders;
	const char *api_key, *api_key_file, *api_url, *url;
	const char *message, *description, *source, *tags, *note, *priority, *entity, *actions;
	struct usher_strmap details;
	struct usher_notifytmpl *t_message, *t_description, *t_source, *t_tags, *t_note,
	    *t_priority, *t_entity, *t_actions;
	struct usher_notifytmpl **t_details;
};

#define S(k, m, d, h)                                                                              \
	{                                                                                          \
		.key = k, .type = USHER_OPT_STR, .offset = offsetof(struct og_opts, m), .def = d,  \
		.help = h                                                                          \
	}

static const struct usher_option og_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct og_opts, "true"),
    USHER_NOTIFY_HTTPCONF_OPT(struct og_opts, http),
    {.key = "api_key",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct og_opts, api_key),
     .help = "the API integration\'s key (a secret; required, or api_key_file)"},
    {.key = "api_key_file",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct og_opts, api_key_file),
     .help = "a file holding api_key"},
    {.key = "api_url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct og_opts, api_url),
     .def = OG_URL,
     .help = "the API's base URL (api.eu.opsgenie.com for the EU)"},
    {.key = "url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct og_opts, url),
     .help = "overrides api_url (a proxy, a test receiver)"},
    S("message", message, "{{ template \"opsgenie.default.message\" . }}",
      "the alert's message, at most 130 characters (template)"),
    S("description", description, "{{ template \"opsgenie.default.description\" . }}", "template"),
    S("source", source, "{{ template \"opsgenie.default.source\" . }}", "template"),
    S("tags", tags, NULL, "comma-separated tags (template)"),
    S("note", note, NULL, "template"),
    S("priority", priority, NULL, "P1 to P5 (template)"),
    S("entity", entity, NULL, "template"),
    S("actions", actions, NULL, "comma-separated custom actions (template)"),
    {.key = "details",
     .type = USHER_OPT_STRMAP,
     .offset = offsetof(struct og_opts, details),
     .help = "extra properties (templates)"},
    {.key = "responders",
     .type = USHER_OPT_LIST,
     .offset = offsetof(struct og_opts, responders),
     .sub = responder_options,
     .sub_size = sizeof(struct og_responder),
     .help = "who is notified: id, name or username, and type"},
    USHER_OPT_END,
};

static enum usher_err og_check(struct usher_cfgctx *ctx, void *opts, const struct usher_ynode *node)
{
	struct og_opts *o = opts;
	struct usher_notify_common *c = &o->common;
	const char *base = o->url ? o->url : o->api_url;
	bool bad = false;
	size_t i;

	if (usher_notify_secret_file(ctx, node, "api_key", &o->api_key, o->api_key_file))
		return USHER_ERR_INVALID;
	if (!o->api_key)
		return usher_cfg_error(ctx, node,
				       "opsgenie_configs needs api_key (or api_key_file)");
	if (!base || (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0))
		return usher_cfg_error(ctx, node, "api_url must be an http:// or https:// URL");
	if (usher_notify_httpconf_check(ctx, &o->http, node))
		return USHER_ERR_INVALID;
	for (i = 0; i < o->responders.n; i++) {
		const struct og_responder *r = (const struct og_responder *)o->responders.v + i;
		static const char *const types[] = {"team", "teams", "user", "escalation",
						    "schedule"};
		size_t k;

		for (k = 0; k < 5 && strcmp(types[k], r->type) != 0; k++)
			;
		if (k == 5)
			return usher_cfg_error(ctx, usher_ynode_get(node, "responders"),
					       "responder type %s is not team, teams, user, "
					       "escalation or schedule",
					       r->type);
		if (!r->id && !r->name && !r->username)
			return usher_cfg_error(ctx, usher_ynode_get(node, "responders"),
					       "a responder needs id, name or username");
	}
#define F(m) bad |= usher_notifytmpl_field(ctx, c, node, #m, o->m, &o->t_##m) != USHER_OK
	F(message);
	F(description);
	F(source);
	F(tags);
	F(note);
	F(priority);
	F(entity);
	F(actions);
#undef F
	o->t_details = usher_arena_zalloc(ctx->arena, (o->details.n + 1) * sizeof(*o->t_details));
	for (i = 0; i < o->details.n; i++)
		bad |= usher_notifytmpl_field(ctx, c, usher_ynode_get(node, "details"),
					      o->details.v[i].key, o->details.v[i].value,
					      &o->t_details[i]) != USHER_OK;
	return bad ? USHER_ERR_INVALID : USHER_OK;
}

/* "a, b,,c" as ["a","b","c"]. */
static json_t *csv_list(const char *s)
{
	json_t *arr = json_array();

	while (*s) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);

		while (n && (*s == ' ' || *s == '\t' || *s == '\n')) {
			s++;
			n--;
		}
		while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
			n--;
		if (n)
			json_array_append_new(arr, json_stringn(s, n));
		s = e ? e + 1 : s + strlen(s);
	}
	return arr;
}

static void og_deliver(const void *opts, const json_t *data, const char *key, int64_t timeout_ms,
		       struct usher_delivery_result *res)
{
	const struct og_opts *o = opts;
	const char *base = o->url ? o->url : o->api_url;
	struct usher_notify_http req = {0};
	char alias[65], url[2048], auth[512], *v[8] = {0}, *msg = NULL, *desc = NULL, *body = NULL;
	const char *hdrs[] = {auth, NULL};
	const struct usher_notifytmpl *f[8] = {o->t_message, o->t_description, o->t_source,
					       o->t_tags,    o->t_note,        o->t_priority,
					       o->t_entity,  o->t_actions};
	bool resolve = usher_notify_resolved(data);
	size_t blen = strlen(base), i;
	json_t *ev = NULL;

	memset(res, 0, sizeof(*res));
	usher_notify_sha256_hex(key, alias);
	for (i = 0; i < 8; i++)
		if (!(v[i] = usher_notify_expand(f[i], data, res)))
			goto out;
	snprintf(auth, sizeof(auth), "Authorization: GenieKey %s", o->api_key);
	if (resolve) {
		snprintf(url, sizeof(url), "%s%sv2/alerts/%s/close?identifierType=alias", base,
			 blen && base[blen - 1] == '/' ? "" : "/", alias);
		ev = json_pack("{s:s}", "source", v[2]);
		if (*v[4])
			json_object_set_new(ev, "note", json_string(v[4]));
	} else {
		json_t *details = json_object();

		snprintf(url, sizeof(url), "%s%sv2/alerts", base,
			 blen && base[blen - 1] == '/' ? "" : "/");
		if (*v[5] &&
		    !(strlen(v[5]) == 2 && v[5][0] == 'P' && v[5][1] >= '1' && v[5][1] <= '5')) {
			res->outcome = USHER_DELIVERY_FAIL;
			usher_fail(&res->err, USHER_ERR_INVALID,
				   "opsgenie priority %.16s is not one of P1 to P5", v[5]);
			json_decref(details);
			goto out;
		}
		msg = usher_notify_truncate(*v[0] ? v[0] : "alert", OG_MESSAGE_MAX);
		desc = usher_notify_truncate(v[1], OG_DESC_MAX);
		ev = json_pack("{s:s, s:s, s:s, s:s}", "alias", alias, "message", msg,
			       "description", desc, "source", v[2]);
		for (i = 0; i < o->details.n; i++) {
			char *d = usher_notify_expand(o->t_details[i], data, res);

			if (!d) {
				json_decref(details);
				goto out;
			}
			json_object_set_new(details, o->details.v[i].key, json_string(d));
			free(d);
		}
		json_object_set_new(ev, "details", details);
		if (*v[3])
			json_object_set_new(ev, "tags", csv_list(v[3]));
		if (*v[4])
			json_object_set_new(ev, "note", json_string(v[4]));
		if (*v[5])
			json_object_set_new(ev, "priority", json_string(v[5]));
		if (*v[6])
			json_object_set_new(ev, "entity", json_string(v[6]));
		if (*v[7])
			json_object_set_new(ev, "actions", csv_list(v[7]));
		if (o->responders.n) {
			json_t *rs = json_array();

			for (i = 0; i < o->responders.n; i++) {
				const struct og_responder *r =
				    (const struct og_responder *)o->responders.v + i;

				/* "teams" is Alertmanager's shorthand for several
				 * teams by name, comma-separated */
				if (strcmp(r->type, "teams") == 0 && r->name) {
					json_t *names = csv_list(r->name);
					size_t k;

					for (k = 0; k < json_array_size(names); k++)
						json_array_append_new(
						    rs,
						    json_pack("{s:s, s:O}", "type", "team", "name",
							      json_array_get(names, k)));
					json_decref(names);
					continue;
				}
				{
					json_t *one = json_pack("{s:s}", "type", r->type);

					if (r->id)
						json_object_set_new(one, "id", json_string(r->id));
					if (r->name)
						json_object_set_new(one, "name",
								    json_string(r->name));
					if (r->username)
						json_object_set_new(one, "username",
								    json_string(r->username));
					json_array_append_new(rs, one);
				}
			}
			json_object_set_new(ev, "responders", rs);
		}
	}
	body = json_dumps(ev, JSON_COMPACT);
	req.url = url;
	req.body = body;
	req.headers = hdrs;
	req.timeout_ms = timeout_ms;
	req.conf = &o->http;
	usher_notify_http("opsgenie", &req, res);
out:
	json_decref(ev);
	for (i = 0; i < 8; i++)
		free(v[i]);
	free(msg);
	free(desc);
	free(body);
}

const struct usher_integration_type usher_integration_opsgenie = {
    .name = "opsgenie",
    .options = og_options,
    .opts_size = sizeof(struct og_opts),
    .check = og_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = og_deliver,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
