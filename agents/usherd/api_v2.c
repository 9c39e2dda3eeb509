/* Alertmanager's API v2 served by usherd, in the JSON shapes of its
 * OpenAPI spec so that amtool and Prometheus talk to usherd as to an
 * Alertmanager: alerts (list, post, groups), silences (list, post, get,
 * expire), status and receivers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerting.h"
#include "core/timeutil.h"
#include "notify/alertingconf.h"
#include "notify/dispatch.h"
#include "notify/matchers.h"
#include "notify/silence.h"
#include "usher_version.h"

#define PREFIX "/api/v2"

static int send_json(struct usher_http_response *resp, int status, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	json_decref(j);
	resp->status = status;
	if (!s)
		return -1;
	usher_buf_reset(&resp->body);
	if (usher_buf_addstr(&resp->body, s)) {
		free(s);
		return -1;
	}
	free(s);
	return 0;
}

/* Alertmanager's API answers errors with a JSON string. */
static int send_error(struct usher_http_response *resp, int status, const char *msg)
{
	return send_json(resp, status, json_string(msg));
}

struct args {
	struct usher_am_matchers filter;
	const char *receiver;
	bool active, silenced, inhibited;
	struct usher_error err;
	bool bad;
};

static bool flag(const char *v)
{
	return !(strcmp(v, "false") == 0 || strcmp(v, "0") == 0);
}

static void visit(void *arg, const char *name, const char *value)
{
	struct args *a = arg;

	if (a->bad)
		return;
	if (strcmp(name, "filter") == 0) {
		if (usher_am_matchers_parse(&a->filter, value, &a->err))
			a->bad = true;
	} else if (strcmp(name, "receiver") == 0) {
		a->receiver = value;
	} else if (strcmp(name, "active") == 0) {
		a->active = flag(value);
	} else if (strcmp(name, "silenced") == 0) {
		a->silenced = flag(value);
	} else if (strcmp(name, "inhibited") == 0) {
		a->inhibited = flag(value);
	}
}

static bool read_args(const struct usher_http_request *req, struct args *a)
{
	memset(a, 0, sizeof(*a));
	a->active = a->silenced = a->inhibited = true;
	usher_http_request_foreach_arg(req, visit, a);
	return !a->bad;
}

static int get_alerts(void *arg, const struct usher_http_request *req,
		      struct usher_http_response *resp, bool groups)
{
	struct usherd_alerting_view v;
	struct usher_am_alert_filter f;
	struct args a;
	json_t *j;
	int rc;

	usherd_alerting_view(arg, &v);
	if (!read_args(req, &a)) {
		rc = send_error(resp, 400, a.err.msg);
		usher_am_matchers_free(&a.filter);
		return rc;
	}
	f = (struct usher_am_alert_filter){.matchers = &a.filter,
					   .receiver = a.receiver,
					   .active = a.active,
					   .silenced = a.silenced,
					   .inhibited = a.inhibited};
	j = groups ? usher_dispatch_groups_json(v.dispatch, &f, usher_now_ns())
		   : usher_dispatch_alerts_json(v.dispatch, &f, usher_now_ns());
	usher_am_matchers_free(&a.filter);
	if (!j)
		return send_error(resp, 400, "receiver is not a valid regular expression");
	return send_json(resp, 200, j);
}

static int post_alerts(void *arg, const struct usher_http_request *req,
		       struct usher_http_response *resp)
{
	struct usherd_alerting_view v;
	struct usher_config *cfg = usherd_alerting_config(arg);
	int64_t now = usher_now_ns(), resolve_ms = 5 * 60 * 1000;
	json_error_t je;
	json_t *body = json_loadb(req->body, req->body_len, 0, &je), *al;
	struct usher_buf errs;
	int64_t valid = 0, invalid = 0;
	size_t i;
	int rc;

	if (cfg && cfg->alerting)
		resolve_ms = cfg->alerting->resolve_timeout_ms;
	usher_config_free(cfg);
	if (!body || !json_is_array(body)) {
		char msg[256];

		snprintf(msg, sizeof(msg), "the body must be a JSON array of alerts%s%s",
			 body ? "" : ": ", body ? "" : je.text);
		json_decref(body);
		return send_error(resp, 400, msg);
	}
	usherd_alerting_view(arg, &v);
	usher_buf_init(&errs, 64 * 1024);
	json_array_foreach(body, i, al)
	{
		struct usher_error err;
		struct usher_am_alert *a;

		usher_error_clear(&err);
		a = usher_am_alert_from_json(al, now, resolve_ms, &err);
		if (!a) {
			usher_buf_addf(&errs, "%s%zu: %s", errs.len ? "; " : "", i, err.msg);
			invalid++;
			continue;
		}
		valid++;
		usher_dispatch_put(v.dispatch, a, now);
	}
	json_decref(body);
	usherd_alerting_count(arg, valid, invalid);
	usherd_alerting_log_received(arg, "api", valid, invalid, usher_buf_str(&errs));
	usherd_alerting_wake(arg);
	if (errs.len)
		rc = send_error(resp, 400, usher_buf_str(&errs));
	else
		rc = 0;
	usher_buf_free(&errs);
	return rc;
}

static int alerts(void *arg, const struct usher_http_request *req, struct usher_http_response *resp)
{
	if (strcmp(req->path, PREFIX "/alerts/groups") == 0) {
		if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD"))
			return send_error(resp, 405, "method not allowed");
		return get_alerts(arg, req, resp, true);
	}
	if (strcmp(req->path, PREFIX "/alerts") != 0)
		return send_error(resp, 404, "not found");
	if (strcmp(req->method, "POST") == 0)
		return post_alerts(arg, req, resp);
	return get_alerts(arg, req, resp, false);
}

static int silences(void *arg, const struct usher_http_request *req,
		    struct usher_http_response *resp)
{
	struct usherd_alerting_view v;

	usherd_alerting_view(arg, &v);
	if (strcmp(req->path, PREFIX "/silences") != 0)
		return send_error(resp, 404, "not found");
	if (strcmp(req->method, "POST") == 0) {
		json_error_t je;
		json_t *body = json_loadb(req->body, req->body_len, 0, &je);
		struct usher_error err;
		char id[37];
		enum usher_err rc;

		usher_error_clear(&err);
		if (!body) {
			char msg[256];

			snprintf(msg, sizeof(msg), "the body is not JSON: %s", je.text);
			return send_error(resp, 400, msg);
		}
		rc = usher_silences_set_json(v.silences, body, usher_now_ns(), id, &err);
		if (rc) {
			json_decref(body);
			return send_error(resp,
					  rc == USHER_ERR_NOTFOUND  ? 404
					  : rc == USHER_ERR_INVALID ? 400
								    : 500,
					  usher_error_msg(&err, rc));
		}
		usherd_alerting_log_silence(arg, true, id, body);
		json_decref(body);
		usherd_alerting_wake(arg);
		return send_json(resp, 200, json_pack("{s:s}", "silenceID", id));
	}
	{
		struct args a;
		json_t *j;

		if (!read_args(req, &a)) {
			int rc = send_error(resp, 400, a.err.msg);

			usher_am_matchers_free(&a.filter);
			return rc;
		}
		j = usher_silences_list_json(v.silences, &a.filter, usher_now_ns());
		usher_am_matchers_free(&a.filter);
		return send_json(resp, 200, j);
	}
}

static int silence(void *arg, const struct usher_http_request *req,
		   struct usher_http_response *resp)
{
	struct usherd_alerting_view v;
	const char *id = req->path + strlen(PREFIX "/silence");
	struct usher_error err;
	enum usher_err rc;

	usherd_alerting_view(arg, &v);
	if (*id != '/' || !id[1] || strchr(id + 1, '/'))
		return send_error(resp, 404, "not found: use /api/v2/silence/ID");
	id++;
	if (strcmp(req->method, "DELETE") == 0) {
		usher_error_clear(&err);
		rc = usherd_alerting_silence_expire(arg, id, &err);
		if (rc)
			return send_error(resp,
					  rc == USHER_ERR_NOTFOUND  ? 404
					  : rc == USHER_ERR_INVALID ? 400
								    : 500,
					  usher_error_msg(&err, rc));
		usherd_alerting_wake(arg);
		return 0;
	}
	{
		json_t *j = usher_silences_get_json(v.silences, id, usher_now_ns());

		if (!j)
			return send_error(resp, 404, "silence not found");
		return send_json(resp, 200, j);
	}
}

static int receivers(void *arg, const struct usher_http_request *req,
		     struct usher_http_response *resp)
{
	struct usher_config *cfg = usherd_alerting_config(arg);
	json_t *arr = json_array();
	size_t i;

	(void)req;
	for (i = 0; cfg && cfg->alerting && i < cfg->alerting->nreceivers; i++)
		json_array_append_new(arr,
				      json_pack("{s:s}", "name", cfg->alerting->receivers[i].name));
	usher_config_free(cfg);
	return send_json(resp, 200, arr);
}

static int status(void *arg, const struct usher_http_request *req, struct usher_http_response *resp)
{
	struct usher_config *cfg = usherd_alerting_config(arg);
	char uptime[48], *original = usher_alerting_conf_text(cfg ? cfg->alerting : NULL);
	int rc;

	(void)req;
	usher_config_free(cfg);
	usher_time_format_nano(usherd_alerting_started_ns(arg), uptime, sizeof(uptime));
	rc = send_json(
	    resp, 200,
	    json_pack("{s:{s:[], s:s}, s:{s:s}, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s}}",
		      "cluster", "peers", "status", "disabled", "config",
		      "original", original ? original : "", "uptime", uptime, "versionInfo",
		      "branch", "", "buildDate", "", "buildUser", "", "goVersion", "", "revision",
		      USHER_REVISION, "version", USHER_VERSION));
	free(original);
	return rc;
}

void usherd_api_v2_register(struct usher_httpd *h, struct usherd_alerting *a)
{
	usher_httpd_route(h, "GET", PREFIX "/alerts", alerts, a);
	usher_httpd_route(h, "POST", PREFIX "/alerts", alerts, a);
	usher_httpd_route(h, "GET", PREFIX "/silences", silences, a);
	usher_httpd_route(h, "POST", PREFIX "/silences", silences, a);
	usher_httpd_route(h, "GET", PREFIX "/silence", silence, a);
	usher_httpd_route(h, "DELETE", PREFIX "/silence", silence, a);
	usher_httpd_route(h, "GET", PREFIX "/status", status, a);
	usher_httpd_route(h, "GET", PREFIX "/receivers", receivers, a);
}
