/* slack_configs: a Slack incoming webhook, with Alertmanager's message (one
 * attachment) or, with `blocks: true`, Block Kit blocks. Messages to one
 * webhook URL go out one at a time, at most one a second (Slack's limit),
 * and a 429's Retry-After holds the whole URL's queue. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "notify/integrations.h"

#define TITLE_MAX_RUNES   1024 /* Alertmanager's cut */
#define BLOCK_HEADER_MAX  150  /* Block Kit: header text */
#define BLOCK_SECTION_MAX 3000 /* Block Kit: section text */

struct slack_opts {
	struct usher_notify_common common;
	struct usher_notify_httpconf http;
	const char *api_url, *api_url_file;
	const char *url; /* override (proxies, tests) */
	const char *channel, *username, *color, *title, *title_link, *pretext, *text, *footer,
	    *fallback, *callback_id, *icon_emoji, *icon_url;
	bool link_names, blocks;
	struct usher_strlist mrkdwn_in;
	struct usher_notifytmpl *t_channel, *t_username, *t_color, *t_title, *t_title_link,
	    *t_pretext, *t_text, *t_footer, *t_fallback, *t_callback_id, *t_icon_emoji, *t_icon_url;
};

#define S(k, m, d, h)                                                                              \
	{                                                                                          \
		.key = k, .type = USHER_OPT_STR, .offset = offsetof(struct slack_opts, m),         \
		.def = d, .help = h                                                                \
	}

static const struct usher_option slack_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct slack_opts, "false"),
    USHER_NOTIFY_HTTPCONF_OPT(struct slack_opts, http),
    {.key = "api_url",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct slack_opts, api_url),
     .help = "the incoming webhook URL (a secret: use ${file:…})"},
    {.key = "api_url_file",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct slack_opts, api_url_file),
     .help = "a file holding api_url"},
    {.key = "url",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct slack_opts, url),
     .help = "overrides api_url (a proxy, a test receiver)"},
    S("channel", channel, NULL, "channel or user to send to (template)"),
    S("username", username, "{{ template \"slack.default.username\" . }}", "template"),
    S("color", color, "{{ if eq .Status \"firing\" }}danger{{ else }}good{{ end }}", "template"),
    S("title", title, "{{ template \"slack.default.title\" . }}", "template"),
    S("title_link", title_link, "{{ template \"slack.default.titlelink\" . }}", "template"),
    S("pretext", pretext, "{{ template \"slack.default.pretext\" . }}", "template"),
    S("text", text, "{{ template \"slack.default.text\" . }}", "template"),
    S("footer", footer, "{{ template \"slack.default.footer\" . }}", "template"),
    S("fallback", fallback, "{{ template \"slack.default.fallback\" . }}", "template"),
    S("callback_id", callback_id, "{{ template \"slack.default.callbackid\" . }}", "template"),
    S("icon_emoji", icon_emoji, "{{ template \"slack.default.iconemoji\" . }}", "template"),
    S("icon_url", icon_url, "{{ template \"slack.default.iconurl\" . }}", "template"),
    {.key = "link_names",
     .type = USHER_OPT_BOOL,
     .offset = offsetof(struct slack_opts, link_names),
     .def = "false",
     .help = "let Slack link @user and #channel names"},
    {.key = "mrkdwn_in",
     .type = USHER_OPT_STRLIST,
     .offset = offsetof(struct slack_opts, mrkdwn_in),
     .help = "attachment fields rendered as Markdown (default fallback, pretext, text)"},
    {.key = "blocks",
     .type = USHER_OPT_BOOL,
     .offset = offsetof(struct slack_opts, blocks),
     .def = "false",
     .help = "send Block Kit blocks (header + section) instead of an attachment"},
    USHER_OPT_END,
};

static enum usher_err slack_check(struct usher_cfgctx *ctx, void *opts,
				  const struct usher_ynode *node)
{
	struct slack_opts *o = opts;
	struct usher_notify_common *c = &o->common;
	bool bad = false;
	const char *url;

	if (usher_notify_secret_file(ctx, node, "api_url", &o->api_url, o->api_url_file))
		return USHER_ERR_INVALID;
	url = o->url ? o->url : o->api_url;
	if (!url)
		return usher_cfg_error(ctx, node, "slack_configs needs api_url (or url)");
	if (usher_notify_httpconf_check(ctx, &o->http, node))
		return USHER_ERR_INVALID;
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return usher_cfg_error(ctx, node, "api_url must be an http:// or https:// URL");
#define F(m) bad |= usher_notifytmpl_field(ctx, c, node, #m, o->m, &o->t_##m) != USHER_OK
	F(channel);
	F(username);
	F(color);
	F(title);
	F(title_link);
	F(pretext);
	F(text);
	F(footer);
	F(fallback);
	F(callback_id);
	F(icon_emoji);
	F(icon_url);
#undef F
	return bad ? USHER_ERR_INVALID : USHER_OK;
}

static void set_nonempty(json_t *obj, const char *k, const char *v)
{
	if (v && *v)
		json_object_set_new(obj, k, json_string(v));
}

static void slack_deliver(const void *opts, const json_t *data, const char *key, int64_t timeout_ms,
			  struct usher_delivery_result *res)
{
	const struct slack_opts *o = opts;
	struct usher_notify_http req = {0};
	char *v[12] = {0}, *title = NULL, *body = NULL;
	const struct usher_notifytmpl *f[12] = {o->t_channel,     o->t_username,   o->t_color,
						o->t_title,       o->t_title_link, o->t_pretext,
						o->t_text,        o->t_footer,     o->t_fallback,
						o->t_callback_id, o->t_icon_emoji, o->t_icon_url};
	json_t *msg = NULL;
	size_t i;

	(void)key;
	memset(res, 0, sizeof(*res));
	for (i = 0; i < 12; i++)
		if (!(v[i] = usher_notify_expand(f[i], data, res)))
			goto out;
	title = usher_notify_truncate(v[3], TITLE_MAX_RUNES);
	msg = json_object();
	set_nonempty(msg, "channel", v[0]);
	set_nonempty(msg, "username", v[1]);
	set_nonempty(msg, "icon_emoji", v[10]);
	set_nonempty(msg, "icon_url", v[11]);
	if (o->link_names)
		json_object_set_new(msg, "link_names", json_true());
	if (o->blocks) {
		json_t *blocks = json_array();
		char *h = usher_notify_truncate(title, BLOCK_HEADER_MAX);
		char *t = usher_notify_truncate(v[6], BLOCK_SECTION_MAX);

		json_object_set_new(msg, "text", json_string(*v[8] ? v[8] : title));
		if (*h)
			json_array_append_new(blocks,
					      json_pack("{s:s, s:{s:s, s:s}}", "type", "header",
							"text", "type", "plain_text", "text", h));
		if (*t)
			json_array_append_new(blocks,
					      json_pack("{s:s, s:{s:s, s:s}}", "type", "section",
							"text", "type", "mrkdwn", "text", t));
		if (*v[7])
			json_array_append_new(blocks, json_pack("{s:s, s:[{s:s, s:s}]}", "type",
								"context", "elements", "type",
								"mrkdwn", "text", v[7]));
		json_object_set_new(msg, "blocks", blocks);
		free(h);
		free(t);
	} else {
		json_t *att = json_object(), *mk = json_array();

		set_nonempty(att, "title", title);
		set_nonempty(att, "title_link", v[4]);
		set_nonempty(att, "pretext", v[5]);
		set_nonempty(att, "text", v[6]);
		set_nonempty(att, "fallback", v[8]);
		set_nonempty(att, "callback_id", v[9]);
		set_nonempty(att, "color", v[2]);
		set_nonempty(att, "footer", v[7]);
		if (o->mrkdwn_in.n)
			for (i = 0; i < o->mrkdwn_in.n; i++)
				json_array_append_new(mk, json_string(o->mrkdwn_in.v[i]));
		else {
			json_array_append_new(mk, json_string("fallback"));
			json_array_append_new(mk, json_string("pretext"));
			json_array_append_new(mk, json_string("text"));
		}
		json_object_set_new(att, "mrkdwn_in", mk);
		json_object_set_new(msg, "attachments", json_pack("[o]", att));
	}
	body = json_dumps(msg, JSON_COMPACT);
	req.url = o->url ? o->url : o->api_url;
	req.body = body;
	req.timeout_ms = timeout_ms;
	req.conf = &o->http;
	usher_notify_http("slack", &req, res);
out:
	json_decref(msg);
	for (i = 0; i < 12; i++)
		free(v[i]);
	free(title);
	free(body);
}

static const char *slack_queue_key(const void *opts)
{
	const struct slack_opts *o = opts;

	return o->url ? o->url : o->api_url;
}

const struct usher_integration_type usher_integration_slack = {
    .name = "slack",
    .options = slack_options,
    .opts_size = sizeof(struct slack_opts),
    .check = slack_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = slack_deliver,
    .queue_key = slack_queue_key,
    .rate_per_s = 1.0,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
