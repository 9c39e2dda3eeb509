/* servicenow_configs: one ServiceNow record (an incident by default) per
 * alert group through the Table API. The record's correlation_id is
 * usher:<sha256 of the group key>, and a query on it finds the record
 * again: firing creates it or adds a work note (moving a Resolved record
 * back to In Progress; a Closed or Canceled one is left alone and a new
 * record opened); resolved adds a work note and sets it Resolved with
 * close_code and close_notes. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "notify/ticket.h"

/* The incident table's states. */
#define SN_IN_PROGRESS "2"
#define SN_RESOLVED    "6"
#define SN_CLOSED      "7"
#define SN_CANCELED    "8"

struct servicenow_opts {
	struct usher_notify_common common;
	const char *api_url, *url, *table, *username, *password;
	const char *urgency, *impact, *assignment_group, *caller_id, *close_code;
	const char *short_description, *description;
	struct usher_notifytmpl *t_short_description, *t_description;
};

static const struct usher_option servicenow_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct servicenow_opts, "true"),
    {.key = "api_url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, api_url),
     .help = "the instance, e.g. https://example.service-now.com"},
    {.key = "url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, url),
     .help = "overrides api_url (a proxy, a test server)"},
    {.key = "table",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, table),
     .def = "incident",
     .help = "the table records are created in"},
    {.key = "username",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, username),
     .flags = USHER_OPT_REQUIRED,
     .help = "basic auth user (an integration user)"},
    {.key = "password",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct servicenow_opts, password),
     .flags = USHER_OPT_REQUIRED,
     .help = "basic auth password (a secret: ${file:…})"},
    {.key = "urgency",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, urgency),
     .help = "1 (high), 2 or 3 (low); none: the table's default"},
    {.key = "impact",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, impact),
     .help = "1 (high), 2 or 3 (low); none: the table's default"},
    {.key = "assignment_group",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, assignment_group),
     .help = "sys_id or name of the group new records are assigned to"},
    {.key = "caller_id",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, caller_id),
     .help = "sys_id or user name of the caller of new records"},
    {.key = "close_code",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, close_code),
     .def = "Solved (Permanently)",
     .help = "resolution code set when the group resolves"},
    {.key = "short_description",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, short_description),
     .def = "{{ template \"__subject\" . }}",
     .help = "record's short description (template)"},
    {.key = "description",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct servicenow_opts, description),
     .def = USHER_TICKET_DEFAULT_TEXT,
     .help = "record's description and work notes (template)"},
    USHER_OPT_END,
};

static bool level_ok(const char *v)
{
	return !v || strcmp(v, "1") == 0 || strcmp(v, "2") == 0 || strcmp(v, "3") == 0;
}

static enum usher_err servicenow_check(struct usher_cfgctx *ctx, void *opts,
				       const struct usher_ynode *node)
{
	struct servicenow_opts *o = opts;
	bool bad = false;
	const char *p;

	if (!usher_ticket_url_ok(o->url ? o->url : o->api_url))
		return usher_cfg_error(ctx, node,
				       "servicenow_configs needs api_url (or url): an "
				       "http:// or https:// URL");
	if (!level_ok(o->urgency) || !level_ok(o->impact))
		return usher_cfg_error(ctx, node, "urgency and impact must be 1, 2 or 3");
	for (p = o->table; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return usher_cfg_error(ctx, node,
					       "table must be a table name like incident");
	bad |= usher_notifytmpl_field(ctx, &o->common, node, "short_description",
				      o->short_description, &o->t_short_description) != USHER_OK;
	bad |= usher_notifytmpl_field(ctx, &o->common, node, "description", o->description,
				      &o->t_description) != USHER_OK;
	return bad ? USHER_ERR_INVALID : USHER_OK;
}

static void set_opt(json_t *o, const char *k, const char *v)
{
	if (v && *v)
		json_object_set_new(o, k, json_string(v));
}

static void servicenow_deliver(const void *opts, const json_t *data, const char *key,
			       int64_t timeout_ms, struct usher_delivery_result *res)
{
	const struct servicenow_opts *o = opts;
	const char *base = o->url ? o->url : o->api_url;
	bool resolved = usher_notify_resolved(data);
	struct usher_ticket_run r;
	char hash[65], cid[80], query[160], *shortd = NULL, *desc = NULL, *auth = NULL;
	char *url = NULL, *q = NULL, *text = NULL, *cut = NULL;
	const char *headers[3] = {NULL, "Accept: application/json", NULL};
	const char *sys_id = NULL, *state = "", *kind = NULL, *ev;
	char evtext[1200] = "";
	json_t *found = NULL, *first, *msg;
	size_t n;

	(void)key;
	memset(res, 0, sizeof(*res));
	if (!(shortd = usher_notify_expand(o->t_short_description, data, res)) ||
	    !(desc = usher_notify_expand(o->t_description, data, res)))
		goto out;
	auth = usher_ticket_basic_auth(o->username, o->password);
	headers[0] = auth;
	usher_ticket_run_init(&r, "servicenow", timeout_ms, headers, res);
	usher_ticket_group_hash(data, hash);
	snprintf(cid, sizeof(cid), "usher:%s", hash);
	snprintf(query, sizeof(query), "correlation_id=%s^ORDERBYDESCsys_created_on", cid);
	q = usher_ticket_escape(query);
	url = usher_ticket_url(base,
			       "/api/now/table/%s?sysparm_query=%s&sysparm_limit=1&"
			       "sysparm_fields=sys_id,number,state",
			       o->table, q);
	if (!usher_ticket_call(&r, "GET", url, NULL, &found))
		goto out;
	first = json_array_get(json_object_get(found, "result"), 0);
	if (first) {
		sys_id = json_string_value(json_object_get(first, "sys_id"));
		state = json_string_value(json_object_get(first, "state"));
		state = state ? state : "";
		if (strcmp(state, SN_CLOSED) == 0 || strcmp(state, SN_CANCELED) == 0)
			sys_id = NULL; /* final: a new record if the group fires again */
	}
	free(url);
	url = NULL;
	ev = usher_ticket_event(data, &kind, evtext, sizeof(evtext));
	if (ev && strcmp(kind, "resolved") != 0) {
		if (sys_id && strcmp(state, SN_RESOLVED) != 0) { /* an incident's ack or note */
			msg = json_pack("{s:s}", "work_notes", ev);
			url = usher_ticket_url(base, "/api/now/table/%s/%s", o->table, sys_id);
			usher_ticket_call(&r, "PATCH", url, msg, NULL);
			json_decref(msg);
		}
		goto out;
	}
	if (resolved && (!sys_id || strcmp(state, SN_RESOLVED) == 0))
		goto out;
	if (sys_id) {
		bool was_resolved = strcmp(state, SN_RESOLVED) == 0;

		n = strlen(desc) + strlen(evtext) + 64;
		text = usher_malloc(n);
		snprintf(text, n, "%s\n\n%s",
			 ev             ? ev
			 : resolved     ? "Resolved: every alert of the group has resolved."
			 : was_resolved ? "Firing again: reopened by usher."
					: "Still firing (updated).",
			 desc);
		msg = json_pack("{s:s}", "work_notes", text);
		if (resolved) {
			json_object_set_new(msg, "state", json_string(SN_RESOLVED));
			json_object_set_new(msg, "close_code", json_string(o->close_code));
			json_object_set_new(msg, "close_notes",
					    json_string("Every alert of the group has resolved "
							"(usher)."));
		} else if (was_resolved) {
			json_object_set_new(msg, "state", json_string(SN_IN_PROGRESS));
		}
		url = usher_ticket_url(base, "/api/now/table/%s/%s", o->table, sys_id);
		usher_ticket_call(&r, "PATCH", url, msg, NULL);
		json_decref(msg);
		goto out;
	}
	cut = usher_notify_truncate(shortd, 160); /* the field's usual length */
	msg = json_pack("{s:s, s:s, s:s}", "short_description", cut, "description", desc,
			"correlation_id", cid);
	set_opt(msg, "urgency", o->urgency);
	set_opt(msg, "impact", o->impact);
	set_opt(msg, "assignment_group", o->assignment_group);
	set_opt(msg, "caller_id", o->caller_id);
	url = usher_ticket_url(base, "/api/now/table/%s", o->table);
	usher_ticket_call(&r, "POST", url, msg, NULL);
	json_decref(msg);
out:
	json_decref(found);
	free(shortd);
	free(desc);
	free(auth);
	free(url);
	free(q);
	free(text);
	free(cut);
}

const struct usher_integration_type usher_integration_servicenow = {
    .name = "servicenow",
    .options = servicenow_options,
    .opts_size = sizeof(struct servicenow_opts),
    .check = servicenow_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = servicenow_deliver,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
