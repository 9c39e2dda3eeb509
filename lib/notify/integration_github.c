/* github_configs: one GitHub issue per alert group through the REST API.
 * The issue carries the label alert-<first 40 hex of the group key's
 * SHA-256> (GitHub labels hold 50 characters) and is found again by
 * listing the repository's issues with that label: firing creates the
 * issue or comments on it, reopening it when it was closed; resolved
 * comments and closes it as completed. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "notify/ticket.h"

struct github_opts {
	struct usher_notify_common common;
	const char *api_url, *url, *repository, *token;
	struct usher_strlist labels;
	const char *title, *body;
	struct usher_notifytmpl *t_title, *t_body;
};

static const struct usher_option github_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct github_opts, "true"),
    {.key = "api_url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct github_opts, api_url),
     .def = "https://api.github.com",
     .help = "the REST API (GitHub Enterprise: https://HOST/api/v3)"},
    {.key = "url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct github_opts, url),
     .help = "overrides api_url (a proxy, a test server)"},
    {.key = "repository",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct github_opts, repository),
     .flags = USHER_OPT_REQUIRED,
     .help = "OWNER/REPO the issues are opened in"},
    {.key = "token",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct github_opts, token),
     .flags = USHER_OPT_REQUIRED,
     .help = "a token allowed to write issues (a secret: ${file:…})"},
    {.key = "labels",
     .type = USHER_OPT_STRLIST,
     .offset = offsetof(struct github_opts, labels),
     .help = "labels added to new issues, besides alert-<hash>"},
    {.key = "title",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct github_opts, title),
     .def = "{{ template \"__subject\" . }}",
     .help = "issue title (template)"},
    {.key = "body",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct github_opts, body),
     .def = USHER_TICKET_DEFAULT_MARKDOWN,
     .help = "issue body and comments (template, Markdown)"},
    USHER_OPT_END,
};

static enum usher_err github_check(struct usher_cfgctx *ctx, void *opts,
				   const struct usher_ynode *node)
{
	struct github_opts *o = opts;
	const char *slash = strchr(o->repository, '/');
	bool bad = false;

	if (!usher_ticket_url_ok(o->url ? o->url : o->api_url))
		return usher_cfg_error(ctx, node,
				       "api_url (or url) must be an http:// or https:// URL");
	if (!slash || slash == o->repository || !slash[1] || strchr(slash + 1, '/'))
		return usher_cfg_error(ctx, node, "repository must be OWNER/REPO, got \"%s\"",
				       o->repository);
	bad |= usher_notifytmpl_field(ctx, &o->common, node, "title", o->title, &o->t_title) !=
	       USHER_OK;
	bad |=
	    usher_notifytmpl_field(ctx, &o->common, node, "body", o->body, &o->t_body) != USHER_OK;
	return bad ? USHER_ERR_INVALID : USHER_OK;
}

static void github_deliver(const void *opts, const json_t *data, const char *key,
			   int64_t timeout_ms, struct usher_delivery_result *res)
{
	const struct github_opts *o = opts;
	const char *base = o->url ? o->url : o->api_url;
	bool resolved = usher_notify_resolved(data), closed = false;
	struct usher_ticket_run r;
	char hash[65], label[64], *title = NULL, *body = NULL, *auth = NULL, *url = NULL;
	char *text = NULL, *repo = NULL;
	const char *headers[4] = {NULL, "Accept: application/vnd.github+json",
				  "X-GitHub-Api-Version: 2022-11-28", NULL};
	json_t *found = NULL, *first, *msg;
	json_int_t number = 0;
	const char *kind = NULL, *ev;
	char evtext[1200] = "";
	size_t n;

	(void)key;
	memset(res, 0, sizeof(*res));
	if (!(title = usher_notify_expand(o->t_title, data, res)) ||
	    !(body = usher_notify_expand(o->t_body, data, res)))
		goto out;
	n = strlen(o->token) + 32;
	auth = usher_malloc(n);
	snprintf(auth, n, "Authorization: Bearer %s", o->token);
	headers[0] = auth;
	usher_ticket_run_init(&r, "github", timeout_ms, headers, res);
	usher_ticket_group_hash(data, hash);
	snprintf(label, sizeof(label), "alert-%.40s", hash);
	repo = usher_strdup(o->repository);
	url = usher_ticket_url(base,
			       "/repos/%s/issues?labels=%s&state=all&sort=created&"
			       "direction=desc&per_page=5",
			       repo, label);
	if (!usher_ticket_call(&r, "GET", url, NULL, &found))
		goto out;
	if (!json_is_array(found)) {
		res->outcome = USHER_DELIVERY_FAIL;
		usher_fail(&res->err, USHER_ERR_PROTOCOL, "github: the issue list is not an array");
		goto out;
	}
	/* the newest issue with the label; pull requests share the endpoint */
	{
		size_t i;

		json_array_foreach(found, i, first)
		{
			if (json_object_get(first, "pull_request"))
				continue;
			number = json_integer_value(json_object_get(first, "number"));
			closed = strcmp(json_string_value(json_object_get(first, "state"))
					    ? json_string_value(json_object_get(first, "state"))
					    : "",
					"closed") == 0;
			break;
		}
	}
	free(url);
	url = NULL;
	ev = usher_ticket_event(data, &kind, evtext, sizeof(evtext));
	if (ev && strcmp(kind, "resolved") != 0) {
		if (number && !closed) { /* an incident's ack or note */
			char *comments = usher_ticket_url(base, "/repos/%s/issues/%lld/comments",
							  repo, (long long)number);

			msg = json_pack("{s:s}", "body", ev);
			usher_ticket_call(&r, "POST", comments, msg, NULL);
			json_decref(msg);
			free(comments);
		}
		goto out;
	}
	if (resolved && (!number || closed))
		goto out;
	if (number) {
		char *comments = usher_ticket_url(base, "/repos/%s/issues/%lld/comments", repo,
						  (long long)number);
		char *issue =
		    usher_ticket_url(base, "/repos/%s/issues/%lld", repo, (long long)number);

		n = strlen(body) + strlen(evtext) + 64;
		text = usher_malloc(n);
		snprintf(text, n, "%s\n\n%s",
			 ev         ? ev
			 : resolved ? "**Resolved**: every alert of the group has resolved."
			 : closed   ? "**Firing again**: reopened by usher."
				    : "**Still firing** (updated).",
			 body);
		if (closed) {
			msg = json_pack("{s:s}", "state", "open");
			if (!usher_ticket_call(&r, "PATCH", issue, msg, NULL)) {
				json_decref(msg);
				free(comments);
				free(issue);
				goto out;
			}
			json_decref(msg);
		}
		msg = json_pack("{s:s}", "body", text);
		if (usher_ticket_call(&r, "POST", comments, msg, NULL) && resolved) {
			json_decref(msg);
			msg =
			    json_pack("{s:s, s:s}", "state", "closed", "state_reason", "completed");
			usher_ticket_call(&r, "PATCH", issue, msg, NULL);
		}
		json_decref(msg);
		free(comments);
		free(issue);
		goto out;
	}
	{
		json_t *labels = json_array();
		size_t i;
		char *create = usher_ticket_url(base, "/repos/%s/issues", repo);
		char *cut = usher_notify_truncate(title, 256);

		json_array_append_new(labels, json_string(label));
		for (i = 0; i < o->labels.n; i++)
			json_array_append_new(labels, json_string(o->labels.v[i]));
		msg = json_pack("{s:s, s:s, s:o}", "title", cut, "body", body, "labels", labels);
		usher_ticket_call(&r, "POST", create, msg, NULL);
		json_decref(msg);
		free(create);
		free(cut);
	}
out:
	json_decref(found);
	free(title);
	free(body);
	free(auth);
	free(url);
	free(text);
	free(repo);
}

const struct usher_integration_type usher_integration_github = {
    .name = "github",
    .options = github_options,
    .opts_size = sizeof(struct github_opts),
    .check = github_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = github_deliver,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
