/* ticket_configs: a generic ticket system reached by templated HTTP, for
 * anything without its own integration. Firing notifications go to url,
 * resolved ones to resolve_url (default url), each as the expanded `body`
 * template or, by default, a JSON document with the action, the group's
 * ticket key (hex SHA-256 of the group key: the receiving side files the
 * ticket under it), a title, a description and the notification itself.
 * Also the helpers every ticket integration shares (notify/ticket.h). */
#include "notify/ticket.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/timeutil.h"

#define TICKET_RESP_MAX (1024 * 1024)

/* ------------------------------------------------------------ helpers -- */

void usher_ticket_run_init(struct usher_ticket_run *r, const char *what, int64_t timeout_ms,
			   const char *const *headers, struct usher_delivery_result *res)
{
	r->what = what;
	r->deadline_ms = usher_mono_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
	r->headers = headers;
	r->res = res;
	memset(res, 0, sizeof(*res));
}

bool usher_ticket_call(struct usher_ticket_run *r, const char *method, const char *url,
		       const json_t *body, json_t **out)
{
	struct usher_notify_http req = {0};
	struct usher_buf resp;
	int64_t left = r->deadline_ms - usher_mono_ms();
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	bool ok = false;

	if (out)
		*out = NULL;
	if (left <= 0) {
		memset(r->res, 0, sizeof(*r->res));
		r->res->outcome = USHER_DELIVERY_RETRY;
		usher_fail(&r->res->err, USHER_ERR_TIMEOUT, "%s: out of time before %s %s", r->what,
			   method, url);
		free(text);
		return false;
	}
	usher_buf_init(&resp, TICKET_RESP_MAX);
	req.method = method;
	req.url = url;
	req.body = text;
	req.headers = r->headers;
	req.timeout_ms = left;
	req.resp = &resp;
	usher_notify_http(r->what, &req, r->res);
	if (r->res->outcome == USHER_DELIVERY_OK) {
		ok = true;
		if (out) {
			json_error_t je;

			*out = resp.len ? json_loadb(resp.data, resp.len, 0, &je) : json_object();
			if (!*out) {
				ok = false;
				r->res->outcome = USHER_DELIVERY_FAIL;
				usher_fail(
				    &r->res->err, USHER_ERR_PROTOCOL,
				    "%s: %s %s answered %ld with something that is not JSON: %s",
				    r->what, method, url, r->res->status, je.text);
			}
		}
	}
	usher_buf_free(&resp);
	free(text);
	return ok;
}

char *usher_ticket_basic_auth(const char *user, const char *password)
{
	size_t n = strlen(user) + 1 + strlen(password);
	char *plain = usher_malloc(n + 1);
	char *out = usher_malloc(sizeof("Authorization: Basic ") + 4 * ((n + 2) / 3) + 1);
	size_t pre = sizeof("Authorization: Basic ") - 1;

	snprintf(plain, n + 1, "%s:%s", user, password);
	memcpy(out, "Authorization: Basic ", pre);
	EVP_EncodeBlock((unsigned char *)out + pre, (const unsigned char *)plain, (int)n);
	free(plain);
	return out;
}

char *usher_ticket_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = usher_malloc(strlen(s) * 3 + 1), *p = out;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return out;
}

char *usher_ticket_url(const char *base, const char *fmt, ...)
{
	struct usher_buf b;
	size_t len = strlen(base);
	va_list ap;

	while (len && base[len - 1] == '/')
		len--;
	usher_buf_init(&b, 1 << 16);
	usher_buf_add(&b, base, len);
	va_start(ap, fmt);
	usher_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return usher_buf_take(&b);
}

void usher_ticket_group_hash(const json_t *data, char out[65])
{
	const char *gk = json_string_value(json_object_get(data, "groupKey"));

	usher_notify_sha256_hex(gk ? gk : "", out);
}

bool usher_ticket_url_ok(const char *url)
{
	return url && (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0);
}

const char *usher_ticket_event(const json_t *data, const char **kind, char *buf, size_t len)
{
	const json_t *ev = json_object_get(data, "usherEvent");
	const char *k = json_string_value(json_object_get(ev, "kind"));
	const char *author = json_string_value(json_object_get(ev, "author"));
	const char *text = json_string_value(json_object_get(ev, "text"));
	long long id = (long long)json_integer_value(json_object_get(ev, "incident"));

	if (!k || (strcmp(k, "acknowledged") != 0 && strcmp(k, "note") != 0 &&
		   strcmp(k, "resolved") != 0))
		return NULL;
	*kind = k;
	author = author && *author ? author : "someone";
	if (strcmp(k, "note") == 0)
		snprintf(buf, len, "Note by %s on incident %lld: %s", author, id, text ? text : "");
	else
		snprintf(buf, len, "Incident %lld %s by %s.", id, k, author);
	return buf;
}

/* ------------------------------------------------------ ticket_configs -- */

struct ticket_opts {
	struct usher_notify_common common;
	const char *url, *resolve_url, *method, *resolve_method, *content_type;
	const char *username, *password, *bearer_token;
	struct usher_strmap headers;
	const char *title, *description, *body;
	struct usher_notifytmpl *t_title, *t_description, *t_body;
};

static const struct usher_option ticket_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct ticket_opts, "true"),
    {.key = "url",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct ticket_opts, url),
     .flags = USHER_OPT_REQUIRED,
     .help = "where firing notifications go (create or update)"},
    {.key = "resolve_url",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct ticket_opts, resolve_url),
     .help = "where resolved notifications go (default: url)"},
    {.key = "method",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct ticket_opts, method),
     .def = "POST",
     .help = "HTTP method for firing notifications"},
    {.key = "resolve_method",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct ticket_opts, resolve_method),
     .help = "HTTP method for resolved notifications (default: method)"},
    {.key = "content_type",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct ticket_opts, content_type),
     .def = "application/json",
     .help = "Content-Type of a templated body"},
    {.key = "username",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct ticket_opts, username),
     .help = "basic auth user"},
    {.key = "password",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct ticket_opts, password),
     .help = "basic auth password (a secret: ${file:…})"},
    {.key = "bearer_token",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct ticket_opts, bearer_token),
     .help = "sent as Authorization: Bearer (a secret)"},
    {.key = "headers",
     .type = USHER_OPT_SECRETMAP,
     .offset = offsetof(struct ticket_opts, headers),
     .help = "extra request headers"},
    {.key = "title",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct ticket_opts, title),
     .def = "{{ template \"__subject\" . }}",
     .help = "the default body's title (template)"},
    {.key = "description",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct ticket_opts, description),
     .def = USHER_TICKET_DEFAULT_TEXT,
     .help = "the default body's description (template)"},
    {.key = "body",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct ticket_opts, body),
     .help = "the whole request body (template); default: a JSON document (docs/incidents.md)"},
    USHER_OPT_END,
};

static enum usher_err ticket_check(struct usher_cfgctx *ctx, void *opts,
				   const struct usher_ynode *node)
{
	struct ticket_opts *o = opts;
	struct usher_notify_common *c = &o->common;
	bool bad = false;

	if (!usher_ticket_url_ok(o->url) ||
	    (o->resolve_url && !usher_ticket_url_ok(o->resolve_url)))
		return usher_cfg_error(ctx, node,
				       "url and resolve_url must be http:// or https:// URLs");
	if (o->bearer_token && o->username)
		return usher_cfg_error(ctx, node,
				       "set bearer_token or username/password, not both");
	bad |= usher_notifytmpl_field(ctx, c, node, "title", o->title, &o->t_title) != USHER_OK;
	bad |= usher_notifytmpl_field(ctx, c, node, "description", o->description,
				      &o->t_description) != USHER_OK;
	bad |= usher_notifytmpl_field(ctx, c, node, "body", o->body, &o->t_body) != USHER_OK;
	return bad ? USHER_ERR_INVALID : USHER_OK;
}

static void ticket_deliver(const void *opts, const json_t *data, const char *key,
			   int64_t timeout_ms, struct usher_delivery_result *res)
{
	const struct ticket_opts *o = opts;
	bool resolved = usher_notify_resolved(data);
	struct usher_notify_http req = {0};
	char hash[65], *title = NULL, *desc = NULL, *body = NULL, *auth = NULL;
	const char **headers = usher_calloc(o->headers.n + 2, sizeof(char *));
	size_t i, nh = 0;

	(void)key;
	memset(res, 0, sizeof(*res));
	usher_ticket_group_hash(data, hash);
	if (o->body && *o->body) {
		if (!(body = usher_notify_expand(o->t_body, data, res)))
			goto out;
		req.content_type = o->content_type;
	} else {
		json_t *doc;
		const char *kind, *ev;
		char evtext[1200];

		if (!(title = usher_notify_expand(o->t_title, data, res)) ||
		    !(desc = usher_notify_expand(o->t_description, data, res)))
			goto out;
		kind = NULL;
		ev = usher_ticket_event(data, &kind, evtext, sizeof(evtext));
		doc = json_pack("{s:s, s:s, s:s, s:s, s:O}", "action",
				ev && strcmp(kind, "resolved") != 0 ? "comment"
				: resolved                          ? "resolve"
								    : "create_or_update",
				"ticketKey", hash, "title", title, "description", desc,
				"notification", data);
		if (ev)
			json_object_set_new(doc, "comment", json_string(ev));
		body = json_dumps(doc, JSON_COMPACT);
		json_decref(doc);
	}
	if (o->bearer_token) {
		size_t n = strlen(o->bearer_token) + 32;

		auth = usher_malloc(n);
		snprintf(auth, n, "Authorization: Bearer %s", o->bearer_token);
	} else if (o->username) {
		auth = usher_ticket_basic_auth(o->username, o->password ? o->password : "");
	}
	if (auth)
		headers[nh++] = auth;
	for (i = 0; i < o->headers.n; i++) {
		size_t n = strlen(o->headers.v[i].key) + strlen(o->headers.v[i].value) + 3;
		char *h = usher_malloc(n);

		snprintf(h, n, "%s: %s", o->headers.v[i].key, o->headers.v[i].value);
		headers[nh++] = h;
	}
	headers[nh] = NULL;
	req.url = resolved && o->resolve_url ? o->resolve_url : o->url;
	req.method = resolved && o->resolve_method ? o->resolve_method : o->method;
	req.body = body;
	req.headers = headers;
	req.timeout_ms = timeout_ms;
	usher_notify_http("ticket", &req, res);
	for (i = 0; i < nh; i++)
		free((char *)headers[i]);
out:
	free(headers);
	free(title);
	free(desc);
	free(body);
}

const struct usher_integration_type usher_integration_ticket = {
    .name = "ticket",
    .options = ticket_options,
    .opts_size = sizeof(struct ticket_opts),
    .check = ticket_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = ticket_deliver,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
