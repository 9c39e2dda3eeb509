/* zendesk_configs: one Zendesk Support ticket per alert group through the
 * Tickets and Search APIs. The ticket carries the tag alert_<sha256 of the
 * group key> and is found again by searching for it: firing creates the
 * ticket or adds an internal comment (setting a solved ticket back to
 * open; a closed ticket cannot reopen, so a new one is created); resolved
 * comments and sets the ticket solved. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "notify/ticket.h"

struct zendesk_opts {
	struct usher_notify_common common;
	const char *api_url, *url, *email, *api_token, *priority, *type;
	struct usher_strlist tags;
	const char *subject, *comment;
	struct usher_notifytmpl *t_subject, *t_comment;
};

static const struct usher_option zendesk_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct zendesk_opts, "true"),
    {.key = "api_url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct zendesk_opts, api_url),
     .help = "the Zendesk account, e.g. https://example.zendesk.com"},
    {.key = "url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct zendesk_opts, url),
     .help = "overrides api_url (a proxy, a test server)"},
    {.key = "email",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct zendesk_opts, email),
     .flags = USHER_OPT_REQUIRED,
     .help = "the agent's e-mail (API token authentication)"},
    {.key = "api_token",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct zendesk_opts, api_token),
     .flags = USHER_OPT_REQUIRED,
     .help = "the API token (a secret: ${file:…})"},
    {.key = "priority",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct zendesk_opts, priority),
     .help = "urgent, high, normal or low (none: the account's default)"},
    {.key = "type",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct zendesk_opts, type),
     .def = "incident",
     .help = "ticket type: problem, incident, question or task"},
    {.key = "tags",
     .type = USHER_OPT_STRLIST,
     .offset = offsetof(struct zendesk_opts, tags),
     .help = "tags added to new tickets, besides alert_<hash>"},
    {.key = "subject",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct zendesk_opts, subject),
     .def = "{{ template \"__subject\" . }}",
     .help = "ticket subject (template)"},
    {.key = "comment",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct zendesk_opts, comment),
     .def = USHER_TICKET_DEFAULT_TEXT,
     .help = "first comment and updates (template)"},
    USHER_OPT_END,
};

static enum usher_err zendesk_check(struct usher_cfgctx *ctx, void *opts,
				    const struct usher_ynode *node)
{
	struct zendesk_opts *o = opts;
	static const char *const prios[] = {"urgent", "high", "normal", "low"};
	static const char *const types[] = {"problem", "incident", "question", "task"};
	bool bad = false, found = !o->priority;
	size_t i;

	if (!usher_ticket_url_ok(o->url ? o->url : o->api_url))
		return usher_cfg_error(ctx, node,
				       "zendesk_configs needs api_url (or url): an http:// "
				       "or https:// URL");
	for (i = 0; i < 4 && !found; i++)
		found = strcmp(o->priority, prios[i]) == 0;
	if (!found)
		return usher_cfg_error(ctx, node, "priority must be urgent, high, normal or low");
	for (i = 0, found = false; i < 4 && !found; i++)
		found = strcmp(o->type, types[i]) == 0;
	if (!found)
		return usher_cfg_error(ctx, node,
				       "type must be problem, incident, question or task");
	bad |= usher_notifytmpl_field(ctx, &o->common, node, "subject", o->subject,
				      &o->t_subject) != USHER_OK;
	bad |= usher_notifytmpl_field(ctx, &o->common, node, "comment", o->comment,
				      &o->t_comment) != USHER_OK;
	return bad ? USHER_ERR_INVALID : USHER_OK;
}

static void zendesk_deliver(const void *opts, const json_t *data, const char *key,
			    int64_t timeout_ms, struct usher_delivery_result *res)
{
	const struct zendesk_opts *o = opts;
	const char *base = o->url ? o->url : o->api_url;
	bool resolved = usher_notify_resolved(data);
	struct usher_ticket_run r;
	char hash[65], tag[80], query[160], user[512], *subject = NULL, *comment = NULL;
	char *auth = NULL, *url = NULL, *q = NULL, *text = NULL;
	const char *headers[3] = {NULL, "Accept: application/json", NULL};
	const char *status = NULL, *kind = NULL, *ev;
	char evtext[1200] = "";
	json_t *found = NULL, *t, *msg;
	json_int_t id = 0;
	size_t i, n;

	(void)key;
	memset(res, 0, sizeof(*res));
	if (!(subject = usher_notify_expand(o->t_subject, data, res)) ||
	    !(comment = usher_notify_expand(o->t_comment, data, res)))
		goto out;
	snprintf(user, sizeof(user), "%s/token", o->email);
	auth = usher_ticket_basic_auth(user, o->api_token);
	headers[0] = auth;
	usher_ticket_run_init(&r, "zendesk", timeout_ms, headers, res);
	usher_ticket_group_hash(data, hash);
	snprintf(tag, sizeof(tag), "alert_%s", hash);
	snprintf(query, sizeof(query), "type:ticket tags:%s", tag);
	q = usher_ticket_escape(query);
	url = usher_ticket_url(
	    base, "/api/v2/search.json?query=%s&sort_by=created_at&sort_order=desc", q);
	if (!usher_ticket_call(&r, "GET", url, NULL, &found))
		goto out;
	/* the newest ticket that can still change */
	json_array_foreach(json_object_get(found, "results"), i, t)
	{
		const char *s = json_string_value(json_object_get(t, "status"));

		if (!s || strcmp(s, "closed") == 0)
			continue;
		id = json_integer_value(json_object_get(t, "id"));
		status = s;
		break;
	}
	free(url);
	url = NULL;
	ev = usher_ticket_event(data, &kind, evtext, sizeof(evtext));
	if (ev && strcmp(kind, "resolved") != 0) {
		if (id && strcmp(status, "solved") != 0) { /* an incident's ack or note */
			msg = json_pack("{s:{s:{s:s, s:b}}}", "ticket", "comment", "body", ev,
					"public", 0);
			url = usher_ticket_url(base, "/api/v2/tickets/%lld.json", (long long)id);
			usher_ticket_call(&r, "PUT", url, msg, NULL);
			json_decref(msg);
		}
		goto out;
	}
	if (resolved && (!id || strcmp(status, "solved") == 0))
		goto out;
	if (id) {
		bool solved = strcmp(status, "solved") == 0;

		n = strlen(comment) + strlen(evtext) + 64;
		text = usher_malloc(n);
		snprintf(text, n, "%s\n\n%s",
			 ev         ? ev
			 : resolved ? "Resolved: every alert of the group has resolved."
			 : solved   ? "Firing again: reopened by usher."
				    : "Still firing (updated).",
			 comment);
		msg =
		    json_pack("{s:{s:{s:s, s:b}}}", "ticket", "comment", "body", text, "public", 0);
		if (resolved)
			json_object_set_new(json_object_get(msg, "ticket"), "status",
					    json_string("solved"));
		else if (solved)
			json_object_set_new(json_object_get(msg, "ticket"), "status",
					    json_string("open"));
		url = usher_ticket_url(base, "/api/v2/tickets/%lld.json", (long long)id);
		usher_ticket_call(&r, "PUT", url, msg, NULL);
		json_decref(msg);
		goto out;
	}
	{
		json_t *tags = json_array();

		json_array_append_new(tags, json_string(tag));
		for (i = 0; i < o->tags.n; i++)
			json_array_append_new(tags, json_string(o->tags.v[i]));
		msg = json_pack("{s:{s:s, s:{s:s}, s:o, s:s}}", "ticket", "subject", subject,
				"comment", "body", comment, "tags", tags, "type", o->type);
		if (o->priority)
			json_object_set_new(json_object_get(msg, "ticket"), "priority",
					    json_string(o->priority));
		url = usher_ticket_url(base, "/api/v2/tickets.json");
		usher_ticket_call(&r, "POST", url, msg, NULL);
		json_decref(msg);
	}
out:
	json_decref(found);
	free(subject);
	free(comment);
	free(auth);
	free(url);
	free(q);
	free(text);
}

const struct usher_integration_type usher_integration_zendesk = {
    .name = "zendesk",
    .options = zendesk_options,
    .opts_size = sizeof(struct zendesk_opts),
    .check = zendesk_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = zendesk_deliver,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
