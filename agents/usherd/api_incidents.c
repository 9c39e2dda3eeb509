/* usherd's incident API (agents/usherd/api_incidents.h): listing and
 * showing incidents, the postmortem draft, and the operator's ack, note and
 * resolve, each recorded with its author. */
#include "api_incidents.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "/api/v1/incidents"

static int reply_json(struct usher_http_response *resp, int status, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	resp->status = status;
	if (!s)
		return 1;
	usher_buf_addstr(&resp->body, s);
	usher_buf_addc(&resp->body, '\n');
	free(s);
	return 0;
}

static int reply_error(struct usher_http_response *resp, int status, const char *msg)
{
	return reply_json(resp, status, json_pack("{s:s, s:s}", "status", "error", "error", msg));
}

static int status_of(enum usher_err rc)
{
	switch (rc) {
	case USHER_ERR_NOTFOUND: return 404;
	case USHER_ERR_INVALID: return 409;
	case USHER_ERR_NETWORK:
	case USHER_ERR_TIMEOUT: return 503;
	default: return 500;
	}
}

/* Parses "123" or "123/action" after the prefix's slash; *action is ""
 * when there is none. */
static bool parse_path(const char *rest, int64_t *id, const char **action)
{
	char *end;
	long long v;

	if (*rest < '0' || *rest > '9')
		return false;
	errno = 0;
	v = strtoll(rest, &end, 10);
	if (errno || v <= 0)
		return false;
	if (*end == '\0') {
		*action = "";
	} else if (*end == '/' && end[1] && !strchr(end + 1, '/')) {
		*action = end + 1;
	} else {
		return false;
	}
	*id = v;
	return true;
}

static int serve_get(void *arg, const struct usher_http_request *req,
		     struct usher_http_response *resp)
{
	struct usher_incidents *inc = arg;
	const char *rest = req->path + strlen(PREFIX), *action;
	struct usher_error err;
	enum usher_err rc;
	int64_t id;
	json_t *j = NULL;

	usher_error_clear(&err);
	if (*rest == '\0' || strcmp(rest, "/") == 0) {
		const char *status = usher_http_request_arg(req, "status");
		const char *limit = usher_http_request_arg(req, "limit");
		long n = 0;

		if (status && !*status)
			status = NULL;
		if (limit) {
			char *end;

			n = strtol(limit, &end, 10);
			if (*end || n <= 0 || n > 100000)
				return reply_error(resp, 400, "limit must be a positive integer");
		}
		rc = usher_incidents_list(inc, status, (int)n, &j, &err);
		if (rc)
			return reply_error(resp, rc == USHER_ERR_INVALID ? 400 : status_of(rc),
					   usher_error_msg(&err, rc));
		return reply_json(resp, 200, j);
	}
	if (*rest != '/' || !parse_path(rest + 1, &id, &action) ||
	    (*action && strcmp(action, "report") != 0))
		return reply_error(resp, 404,
				   "no such incident resource: use /api/v1/incidents/ID");
	rc = usher_incident_get(inc, id, &j, &err);
	if (rc)
		return reply_error(resp, status_of(rc), usher_error_msg(&err, rc));
	if (*action) {
		rc = usher_incident_report(j, &resp->body);
		json_decref(j);
		if (rc)
			return reply_error(resp, 500, "cannot write the report");
		resp->content_type = "text/markdown; charset=utf-8";
		return 0;
	}
	return reply_json(resp, 200, j);
}

static int serve_post(void *arg, const struct usher_http_request *req,
		      struct usher_http_response *resp)
{
	struct usher_incidents *inc = arg;
	const char *rest = req->path + strlen(PREFIX), *action, *author, *text;
	struct usher_error err;
	json_error_t jerr;
	enum usher_err rc;
	json_t *body = NULL, *j = NULL;
	int64_t id;
	int out;

	usher_error_clear(&err);
	if (*rest != '/' || !parse_path(rest + 1, &id, &action) ||
	    (strcmp(action, "ack") != 0 && strcmp(action, "note") != 0 &&
	     strcmp(action, "resolve") != 0))
		return reply_error(resp, 404,
				   "no such incident action: POST /api/v1/incidents/ID/ack, "
				   "/note or /resolve");
	if (req->body_len) {
		body = json_loadb(req->body, req->body_len, 0, &jerr);
		if (!json_is_object(body)) {
			json_decref(body);
			return reply_error(resp, 400,
					   "the body must be a JSON object: {\"author\": \"...\"}");
		}
	}
	author = json_string_value(json_object_get(body, "author"));
	text = json_string_value(json_object_get(body, "text"));
	if (!author || !*author)
		author = req->user;
	if (!author || !*author) {
		out = reply_error(resp, 400, "author is required: {\"author\": \"name\"}");
		goto done;
	}
	if (strcmp(action, "ack") == 0)
		rc = usher_incident_ack(inc, id, author, &err);
	else if (strcmp(action, "resolve") == 0)
		rc = usher_incident_resolve(inc, id, author, &err);
	else if (!text || !*text)
		rc = usher_fail(&err, USHER_ERR_INVALID, "a note needs text: {\"text\": \"...\"}");
	else
		rc = usher_incident_note(inc, id, author, text, &err);
	if (rc == USHER_ERR_INVALID && strcmp(action, "note") == 0) {
		out = reply_error(resp, 400, usher_error_msg(&err, rc));
		goto done;
	}
	if (!rc)
		rc = usher_incident_get(inc, id, &j, &err);
	out = rc ? reply_error(resp, status_of(rc), usher_error_msg(&err, rc))
		 : reply_json(resp, 200, j);
done:
	json_decref(body);
	return out;
}

void usherd_incidents_observe(void *arg, const json_t *data, const struct usher_route *route)
{
	bool open = route && route->incident >= 0 ? route->incident == 1
						  : usher_incident_default_wanted(data);

	usher_incidents_on_flush(arg, data, open);
}

void usherd_incidents_delivered(void *arg, const char *group_key, const char *receiver,
				const char *integration, int outcome, const char *detail)
{
	usher_incidents_on_delivery(arg, group_key, receiver, integration, outcome, detail);
}

void usherd_api_incidents_register(struct usher_httpd *h, struct usher_incidents *inc)
{
	if (!h || !inc)
		return;
	usher_httpd_route(h, "GET", PREFIX, serve_get, inc);
	usher_httpd_route(h, "POST", PREFIX, serve_post, inc);
}
