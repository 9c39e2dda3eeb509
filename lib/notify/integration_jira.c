/* jira_configs: one Jira issue per alert group through the REST API (v2, or
 * v3 with Atlassian Document Format bodies). The issue carries the label
 * ALERT{sha256 of the group key}, as Alertmanager's Jira notifier does, and
 * is found again by a JQL search on it: firing creates the issue or
 * comments on it (a resolved issue goes through reopen_transition, or a
 * new issue is opened when there is none); resolved comments and applies
 * resolve_transition. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "notify/ticket.h"

struct jira_opts {
	struct usher_notify_common common;
	const char *api_url, *url, *api_version, *project, *issue_type, *priority;
	const char *username, *password, *token;
	const char *resolve_transition, *reopen_transition;
	struct usher_strlist labels;
	const char *summary, *description;
	struct usher_notifytmpl *t_summary, *t_description;
};

static const struct usher_option jira_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct jira_opts, "true"),
    {.key = "api_url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, api_url),
     .help = "the Jira site, e.g. https://example.atlassian.net"},
    {.key = "url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, url),
     .help = "overrides api_url (a proxy, a test server)"},
    {.key = "api_version",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, api_version),
     .def = "2",
     .help = "REST API version: 2 (wiki-markup text) or 3 (Atlassian Document Format)"},
    {.key = "project",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, project),
     .flags = USHER_OPT_REQUIRED,
     .help = "project key the issues are created in"},
    {.key = "issue_type",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, issue_type),
     .flags = USHER_OPT_REQUIRED,
     .help = "issue type name (Bug, Incident, …)"},
    {.key = "priority",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, priority),
     .help = "priority name of new issues (none: the project's default)"},
    {.key = "username",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, username),
     .help = "basic auth user (Jira Cloud: the account's e-mail)"},
    {.key = "password",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct jira_opts, password),
     .help = "basic auth password or Cloud API token (a secret: ${file:…})"},
    {.key = "token",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct jira_opts, token),
     .help = "personal access token (Data Center), sent as Bearer; instead of username"},
    {.key = "resolve_transition",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, resolve_transition),
     .help = "transition applied when the group resolves (e.g. Done); none: comment only"},
    {.key = "reopen_transition",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, reopen_transition),
     .help = "transition applied to a resolved issue when the group fires again; none: a new "
	     "issue"},
    {.key = "labels",
     .type = USHER_OPT_STRLIST,
     .offset = offsetof(struct jira_opts, labels),
     .help = "labels added to new issues, besides ALERT{hash}"},
    {.key = "summary",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, summary),
     .def = "{{ template \"__subject\" . }}",
     .help = "issue summary (template)"},
    {.key = "description",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct jira_opts, description),
     .def = USHER_TICKET_DEFAULT_TEXT,
     .help = "issue description and comments (template)"},
    USHER_OPT_END,
};

static enum usher_err jira_check(struct usher_cfgctx *ctx, void *opts,
				 const struct usher_ynode *node)
{
	struct jira_opts *o = opts;
	bool bad = false;

	if (!usher_ticket_url_ok(o->url ? o->url : o->api_url))
		return usher_cfg_error(ctx, node,
				       "jira_configs needs api_url (or url): an http:// or "
				       "https:// URL");
	if (strcmp(o->api_version, "2") != 0 && strcmp(o->api_version, "3") != 0)
		return usher_cfg_error(ctx, node, "api_version must be 2 or 3");
	if (o->token && o->username)
		return usher_cfg_error(ctx, node, "set token or username/password, not both");
	if (!o->token && !o->username)
		return usher_cfg_error(ctx, node,
				       "jira_configs needs credentials: username and password "
				       "(Cloud: e-mail and API token) or token");
	bad |= usher_notifytmpl_field(ctx, &o->common, node, "summary", o->summary,
				      &o->t_summary) != USHER_OK;
	bad |= usher_notifytmpl_field(ctx, &o->common, node, "description", o->description,
				      &o->t_description) != USHER_OK;
	return bad ? USHER_ERR_INVALID : USHER_OK;
}

/* A text field: a string in v2, an ADF document (a paragraph per line) in v3. */
static json_t *doc(const struct jira_opts *o, const char *text)
{
	json_t *content, *para = NULL;
	const char *p = text;

	if (strcmp(o->api_version, "3") != 0)
		return json_string(text);
	content = json_array();
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		if (n) {
			char *line = usher_strndup(p, n);

			para = json_pack("{s:s, s:[{s:s, s:s}]}", "type", "paragraph", "content",
					 "type", "text", "text", line);
			json_array_append_new(content, para);
			free(line);
		}
		p += n + (nl ? 1 : 0);
	}
	return json_pack("{s:s, s:i, s:o}", "type", "doc", "version", 1, "content", content);
}

/* Finds the transition called name of issue and applies it. */
static bool transition(struct usher_ticket_run *r, const struct jira_opts *o, const char *base,
		       const char *issue, const char *name)
{
	char *url =
	    usher_ticket_url(base, "/rest/api/%s/issue/%s/transitions", o->api_version, issue);
	json_t *ans = NULL, *t, *body;
	const char *id = NULL;
	size_t i;
	bool ok = false;

	if (!usher_ticket_call(r, "GET", url, NULL, &ans))
		goto out;
	json_array_foreach(json_object_get(ans, "transitions"), i, t)
	{
		const char *n = json_string_value(json_object_get(t, "name"));

		if (n && strcasecmp(n, name) == 0)
			id = json_string_value(json_object_get(t, "id"));
	}
	if (!id) {
		r->res->outcome = USHER_DELIVERY_FAIL;
		usher_fail(&r->res->err, USHER_ERR_NOTFOUND,
			   "jira: issue %s has no transition \"%s\" (check resolve_transition / "
			   "reopen_transition)",
			   issue, name);
		goto out;
	}
	body = json_pack("{s:{s:s}}", "transition", "id", id);
	ok = usher_ticket_call(r, "POST", url, body, NULL);
	json_decref(body);
out:
	json_decref(ans);
	free(url);
	return ok;
}

static bool comment(struct usher_ticket_run *r, const struct jira_opts *o, const char *base,
		    const char *issue, const char *text)
{
	char *url = usher_ticket_url(base, "/rest/api/%s/issue/%s/comment", o->api_version, issue);
	json_t *body = json_pack("{s:o}", "body", doc(o, text));
	bool ok = usher_ticket_call(r, "POST", url, body, NULL);

	json_decref(body);
	free(url);
	return ok;
}

static void jira_deliver(const void *opts, const json_t *data, const char *key, int64_t timeout_ms,
			 struct usher_delivery_result *res)
{
	const struct jira_opts *o = opts;
	const char *base = o->url ? o->url : o->api_url;
	bool resolved = usher_notify_resolved(data), done = false;
	struct usher_ticket_run r;
	char hash[65], label[80], jql[1024], *summary = NULL, *desc = NULL, *auth = NULL,
					     *url = NULL;
	char *q = NULL, *text = NULL;
	const char *headers[3] = {NULL, "Accept: application/json", NULL};
	const char *issue = NULL, *kind = NULL, *ev;
	char evtext[1200] = "";
	json_t *found = NULL, *first;
	size_t n;

	(void)key;
	memset(res, 0, sizeof(*res));
	if (!(summary = usher_notify_expand(o->t_summary, data, res)) ||
	    !(desc = usher_notify_expand(o->t_description, data, res)))
		goto out;
	if (o->token) {
		n = strlen(o->token) + 32;
		auth = usher_malloc(n);
		snprintf(auth, n, "Authorization: Bearer %s", o->token);
	} else {
		auth = usher_ticket_basic_auth(o->username, o->password ? o->password : "");
	}
	headers[0] = auth;
	usher_ticket_run_init(&r, "jira", timeout_ms, headers, res);
	usher_ticket_group_hash(data, hash);
	snprintf(label, sizeof(label), "ALERT{%s}", hash);
	snprintf(jql, sizeof(jql),
		 "project = \"%s\" AND labels = \"%s\" ORDER BY status ASC, resolutiondate DESC",
		 o->project, label);
	q = usher_ticket_escape(jql);
	url = usher_ticket_url(base,
			       strcmp(o->api_version, "3") == 0
				   ? "/rest/api/3/search/jql?jql=%s&fields=status&maxResults=2"
				   : "/rest/api/2/search?jql=%s&fields=status&maxResults=2",
			       q);
	if (!usher_ticket_call(&r, "GET", url, NULL, &found))
		goto out;
	first = json_array_get(json_object_get(found, "issues"), 0);
	if (first) {
		const json_t *cat = json_object_get(
		    json_object_get(json_object_get(json_object_get(first, "fields"), "status"),
				    "statusCategory"),
		    "key");

		issue = json_string_value(json_object_get(first, "key"));
		done = json_string_value(cat) && strcmp(json_string_value(cat), "done") == 0;
	}
	ev = usher_ticket_event(data, &kind, evtext, sizeof(evtext));
	if (ev && strcmp(kind, "resolved") != 0) {
		if (issue && !done) /* an incident's ack or note */
			comment(&r, o, base, issue, ev);
		goto out;
	}
	if (resolved) {
		if (!issue || done)
			goto out; /* nothing open to resolve */
		n = strlen(desc) + strlen(evtext) + 64;
		text = usher_malloc(n);
		snprintf(text, n, "%s\n%s",
			 ev ? ev : "Resolved: every alert of the group has resolved.", desc);
		if (!comment(&r, o, base, issue, text))
			goto out;
		if (o->resolve_transition)
			transition(&r, o, base, issue, o->resolve_transition);
		goto out;
	}
	if (issue && (!done || o->reopen_transition)) {
		if (done && !transition(&r, o, base, issue, o->reopen_transition))
			goto out;
		n = strlen(desc) + 64;
		text = usher_malloc(n);
		snprintf(text, n, "%s\n%s", done ? "Firing again." : "Still firing (updated).",
			 desc);
		comment(&r, o, base, issue, text);
		goto out;
	}
	{
		json_t *labels = json_array(), *fields, *body;
		size_t i;
		char *create = usher_ticket_url(base, "/rest/api/%s/issue", o->api_version);
		char *cut = usher_notify_truncate(summary, 255); /* Jira's summary limit */

		json_array_append_new(labels, json_string(label));
		for (i = 0; i < o->labels.n; i++)
			json_array_append_new(labels, json_string(o->labels.v[i]));
		fields = json_pack("{s:{s:s}, s:{s:s}, s:s, s:o, s:o}", "project", "key",
				   o->project, "issuetype", "name", o->issue_type, "summary", cut,
				   "description", doc(o, desc), "labels", labels);
		if (o->priority)
			json_object_set_new(fields, "priority",
					    json_pack("{s:s}", "name", o->priority));
		body = json_pack("{s:o}", "fields", fields);
		usher_ticket_call(&r, "POST", create, body, NULL);
		json_decref(body);
		free(create);
		free(cut);
	}
out:
	json_decref(found);
	free(summary);
	free(desc);
	free(auth);
	free(url);
	free(q);
	free(text);
}

const struct usher_integration_type usher_integration_jira = {
    .name = "jira",
    .options = jira_options,
    .opts_size = sizeof(struct jira_opts),
    .check = jira_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = jira_deliver,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
