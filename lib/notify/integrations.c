/* The list of integration types, and what they share: common options, the
 * HTTP exchange with a vendor (libcurl, one easy handle per attempt on a
 * delivery worker) and its mapping to OK / RETRY / FAIL. */
#include "notify/integrations.h"
#include "notify/ticket.h" /* the ticket integrations */

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "usher_version.h"

#define RESP_MAX (64 * 1024)

const struct usher_integration_type *const usher_integration_types[] = {
    &usher_integration_webhook,
    &usher_integration_slack,
    &usher_integration_pagerduty,
    &usher_integration_opsgenie,
    &usher_integration_email,
    &usher_integration_alertmanager,
    /* tickets (notify/ticket.h) */
    &usher_integration_jira,
    &usher_integration_zendesk,
    &usher_integration_servicenow,
    &usher_integration_github,
    &usher_integration_ticket,
    NULL,
};

_Thread_local const atomic_bool *usher_notify_stop;

int usher_notify_xferinfo(void *arg, long long dltotal, long long dlnow, long long ultotal,
			  long long ulnow)
{
	(void)arg;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return usher_notify_stop && atomic_load(usher_notify_stop) ? 1 : 0;
}

const struct usher_integration_type *usher_integration_type_find(const char *name)
{
	size_t i;

	for (i = 0; usher_integration_types[i]; i++)
		if (strcmp(usher_integration_types[i]->name, name) == 0)
			return usher_integration_types[i];
	return NULL;
}

bool usher_notify_send_resolved(const void *opts)
{
	return ((const struct usher_notify_common *)opts)->send_resolved;
}

void usher_notify_limits(const void *opts, int64_t *timeout_ms, int64_t *retry_for_ms)
{
	const struct usher_notify_common *c = opts;

	if (c->timeout_ms > 0)
		*timeout_ms = c->timeout_ms;
	if (c->retry_for_ms > 0)
		*retry_for_ms = c->retry_for_ms;
}

void usher_notify_free(void *opts)
{
	usher_notifytmpl_common_free(opts);
}

int64_t usher_notify_retry_after_ms(const char *v, int64_t now_ms)
{
	const char *p;
	int64_t secs = 0;
	time_t t;

	if (!v)
		return 0;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!*v)
		return 0;
	for (p = v; *p >= '0' && *p <= '9'; p++)
		if (secs < 86400 * 10)
			secs = secs * 10 + (*p - '0');
	if (p > v) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		return *p ? 0 : secs * 1000;
	}
	t = curl_getdate(v, NULL);
	if (t == (time_t)-1)
		return 0;
	return (int64_t)t * 1000 > now_ms ? (int64_t)t * 1000 - now_ms : 0;
}

void usher_notify_sha256_hex(const char *s, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	static const char hex[] = "0123456789abcdef";
	size_t i;

	SHA256((const unsigned char *)s, strlen(s), md);
	for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

char *usher_notify_truncate(const char *s, size_t max)
{
	size_t chars = 0, i, cut = 0;

	for (i = 0; s[i]; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80) {
			if (chars == (max ? max - 1 : 0))
				cut = i;
			chars++;
		}
	if (chars <= max)
		return usher_strdup(s);
	{
		char *r = usher_malloc(cut + 4);

		memcpy(r, s, cut);
		memcpy(r + cut, "\xe2\x80\xa6", 4); /* … */
		return r;
	}
}

bool usher_notify_resolved(const json_t *data)
{
	const char *st = json_string_value(json_object_get(data, "status"));

	return st && strcmp(st, "resolved") == 0;
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

char *usher_notify_expand(const struct usher_notifytmpl *f, const json_t *data,
			  struct usher_delivery_result *res)
{
	struct usher_error err = {{0}};
	struct usher_buf b;
	enum usher_err rc;
	char *s;
	size_t i = 0, o = 0;

	usher_buf_init(&b, 1024 * 1024);
	rc = usher_notifytmpl_expand(f, data, &b, &err);
	/* an output past 1 MiB is cut there (the vendors' limits are far
	 * below); anything else is a template that fails on this data */
	if (rc != USHER_OK && rc != USHER_ERR_TOOBIG) {
		usher_buf_free(&b);
		res->outcome = USHER_DELIVERY_FAIL;
		usher_fail(&res->err, USHER_ERR_INVALID, "template %s: %s", f ? f->key : "?",
			   err.msg);
		return NULL;
	}
	/* JSON wants valid UTF-8: a cut or an odd byte becomes U+FFFD */
	s = usher_malloc(b.len * 3 + 1);
	while (i < b.len) {
		size_t n = utf8_seq((const unsigned char *)b.data + i, b.len - i);

		if (n == 0 || (n == 1 && b.data[i] == '\0')) {
			memcpy(s + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(s + o, b.data + i, n);
			o += n;
			i += n;
		}
	}
	s[o] = '\0';
	usher_buf_free(&b);
	return s;
}

/* ---- HTTP ---------------------------------------------------------------- */

#define HC(m) offsetof(struct usher_notify_httpconf, m)
static const struct usher_option basic_auth_options[] = {
    {.key = "username",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct usher_notify_basic_auth, username)},
    {.key = "password",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct usher_notify_basic_auth, password)},
    {.key = "password_file",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct usher_notify_basic_auth, password_file)},
    USHER_OPT_END,
};
static const struct usher_option authorization_options[] = {
    {.key = "type",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct usher_notify_authorization, type),
     .def = "Bearer"},
    {.key = "credentials",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct usher_notify_authorization, credentials)},
    {.key = "credentials_file",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct usher_notify_authorization, credentials_file)},
    USHER_OPT_END,
};
static const struct usher_option tls_options[] = {
    {.key = "ca_file", .type = USHER_OPT_STR, .offset = offsetof(struct usher_notify_tls, ca_file)},
    {.key = "cert_file",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct usher_notify_tls, cert_file)},
    {.key = "key_file",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct usher_notify_tls, key_file)},
    {.key = "insecure_skip_verify",
     .type = USHER_OPT_BOOL,
     .offset = offsetof(struct usher_notify_tls, insecure_skip_verify),
     .def = "false"},
    USHER_OPT_END,
};
const struct usher_option usher_notify_httpconf_options[] = {
    {.key = "basic_auth",
     .type = USHER_OPT_SECTION,
     .offset = HC(basic_auth),
     .sub = basic_auth_options,
     .help = "username, password (a secret)"},
    {.key = "bearer_token",
     .type = USHER_OPT_SECRET,
     .offset = HC(bearer_token),
     .help = "sent as Authorization: Bearer (a secret)"},
    {.key = "bearer_token_file",
     .type = USHER_OPT_STR,
     .offset = HC(bearer_token_file),
     .help = "a file holding the bearer token"},
    {.key = "authorization",
     .type = USHER_OPT_SECTION,
     .offset = HC(authorization),
     .sub = authorization_options,
     .help = "type (Bearer), credentials (a secret)"},
    {.key = "tls_config",
     .type = USHER_OPT_SECTION,
     .offset = HC(tls_config),
     .sub = tls_options,
     .help = "ca_file, cert_file, key_file, insecure_skip_verify"},
    {.key = "proxy_url",
     .type = USHER_OPT_STR,
     .offset = HC(proxy_url),
     .help = "an HTTP proxy for this receiver"},
    USHER_OPT_END,
};

enum usher_err usher_notify_secret_file(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					const char *key, const char **value, const char *path)
{
	char fkey[64], *ref;
	const struct usher_ynode *at;

	if (!path)
		return USHER_OK;
	snprintf(fkey, sizeof(fkey), "%s_file", key);
	at = node && node->kind == USHER_Y_MAP ? usher_ynode_get(node, fkey) : NULL;
	if (*value)
		return usher_cfg_error(ctx, at ? at : node, "%s and %s are exclusive", key, fkey);
	ref = usher_arena_printf(ctx->arena, "${file:%s}", path);
	return usher_cfg_resolve_secret(ctx, at ? at : node, ref, value);
}

enum usher_err usher_notify_httpconf_check(struct usher_cfgctx *ctx,
					   struct usher_notify_httpconf *h,
					   const struct usher_ynode *node)
{
	const struct usher_ynode *at = node ? usher_ynode_get(node, "http_config") : NULL;
	const struct usher_ynode *ba = at ? usher_ynode_get(at, "basic_auth") : NULL;
	const struct usher_ynode *az = at ? usher_ynode_get(at, "authorization") : NULL;
	int kinds;

	if (usher_notify_secret_file(ctx, ba, "password", &h->basic_auth.password,
				     h->basic_auth.password_file) ||
	    usher_notify_secret_file(ctx, at, "bearer_token", &h->bearer_token,
				     h->bearer_token_file) ||
	    usher_notify_secret_file(ctx, az, "credentials", &h->authorization.credentials,
				     h->authorization.credentials_file))
		return USHER_ERR_INVALID;
	kinds = (h->basic_auth.username || h->basic_auth.password) + !!h->bearer_token +
		!!h->authorization.credentials;

	if (kinds > 1)
		return usher_cfg_error(ctx, at ? at : node,
				       "http_config: basic_auth, bearer_token and authorization "
				       "are exclusive");
	if ((h->tls_config.cert_file == NULL) != (h->tls_config.key_file == NULL))
		return usher_cfg_error(ctx, at ? at : node,
				       "http_config: tls_config needs both cert_file and key_file");
	return USHER_OK;
}

struct exchange {
	struct usher_buf *resp;
	char retry_after[128];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct exchange *ex = arg;

	/* the answer is only read for messages: keep what fits, drop the rest */
	if (ex->resp)
		(void)usher_buf_add(ex->resp, p, size * n);
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct exchange *ex = arg;
	size_t len = size * n;

	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		size_t l =
		    len - 12 < sizeof(ex->retry_after) - 1 ? len - 12 : sizeof(ex->retry_after) - 1;

		memcpy(ex->retry_after, p + 12, l);
		ex->retry_after[l] = '\0';
	}
	return len;
}

/* The first line of a body, for a message. */
static void snippet(const struct usher_buf *b, char *out, size_t len)
{
	const char *s = usher_buf_str(b);
	size_t i;

	for (i = 0; s[i] && s[i] != '\n' && i + 1 < len && i < 200; i++)
		out[i] = isprint((unsigned char)s[i]) ? s[i] : ' ';
	out[i] = '\0';
}

void usher_notify_http(const char *what, const struct usher_notify_http *req,
		       struct usher_delivery_result *res)
{
	CURL *e = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct exchange ex;
	struct usher_buf own;
	char ua[64], errbuf[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	long status = 0;
	size_t i;

	memset(res, 0, sizeof(*res));
	memset(&ex, 0, sizeof(ex));
	usher_buf_init(&own, RESP_MAX);
	ex.resp = req->resp ? req->resp : &own;
	if (!e) {
		res->outcome = USHER_DELIVERY_RETRY;
		usher_fail(&res->err, USHER_ERR_NOMEM, "%s: cannot make a request", what);
		usher_buf_free(&own);
		return;
	}
	snprintf(ua, sizeof(ua), "usher/%s", USHER_VERSION);
	if (req->body) {
		char ct[128];

		snprintf(ct, sizeof(ct), "Content-Type: %s",
			 req->content_type ? req->content_type : "application/json");
		hdrs = curl_slist_append(hdrs, ct);
	}
	for (i = 0; req->headers && req->headers[i]; i++)
		hdrs = curl_slist_append(hdrs, req->headers[i]);
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, ua);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
			 (long)(req->timeout_ms > 0 ? req->timeout_ms : 10000));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(req->timeout_ms > 0 ? req->timeout_ms : 10000));
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &ex);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &ex);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, usher_notify_xferinfo);
	if (req->method)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	if (req->conf) {
		const struct usher_notify_httpconf *h = req->conf;
		char auth[2048];

		if (h->basic_auth.username) {
			curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
			curl_easy_setopt(e, CURLOPT_USERNAME, h->basic_auth.username);
			curl_easy_setopt(e, CURLOPT_PASSWORD,
					 h->basic_auth.password ? h->basic_auth.password : "");
		}
		if (h->bearer_token || h->authorization.credentials) {
			snprintf(auth, sizeof(auth), "Authorization: %s %s",
				 h->bearer_token         ? "Bearer"
				 : h->authorization.type ? h->authorization.type
							 : "Bearer",
				 h->bearer_token ? h->bearer_token : h->authorization.credentials);
			hdrs = curl_slist_append(hdrs, auth);
		}
		if (h->tls_config.ca_file)
			curl_easy_setopt(e, CURLOPT_CAINFO, h->tls_config.ca_file);
		if (h->tls_config.cert_file) {
			curl_easy_setopt(e, CURLOPT_SSLCERT, h->tls_config.cert_file);
			curl_easy_setopt(e, CURLOPT_SSLKEY, h->tls_config.key_file);
		}
		if (h->tls_config.insecure_skip_verify) {
			curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
			curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
		}
		if (h->proxy_url)
			curl_easy_setopt(e, CURLOPT_PROXY, h->proxy_url);
		else
			curl_easy_setopt(e, CURLOPT_PROXY, "");
	} else {
		curl_easy_setopt(e, CURLOPT_PROXY, "");
	}
	if (req->body) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->body));
	}
	cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		res->outcome = USHER_DELIVERY_RETRY;
		usher_fail(&res->err,
			   cc == CURLE_OPERATION_TIMEDOUT ? USHER_ERR_TIMEOUT : USHER_ERR_NETWORK,
			   "%s: %s", what, errbuf[0] ? errbuf : curl_easy_strerror(cc));
		if (cc == CURLE_ABORTED_BY_CALLBACK)
			usher_fail(&res->err, USHER_ERR_INTERNAL,
				   "%s: cut short, usher is stopping", what);
		if (cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT)
			res->outcome = USHER_DELIVERY_FAIL;
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	res->status = status;
	if (status >= 200 && status < 300) {
		res->outcome = USHER_DELIVERY_OK;
	} else {
		char body[256];

		snippet(ex.resp, body, sizeof(body));
		if (status == 429 || status == 408 || status >= 500) {
			res->outcome = USHER_DELIVERY_RETRY;
			res->retry_after_ms =
			    usher_notify_retry_after_ms(ex.retry_after, usher_now_ms());
		} else
			res->outcome = USHER_DELIVERY_FAIL;
		usher_fail(&res->err, USHER_ERR_PROTOCOL, "%s answered %ld%s%s", what, status,
			   body[0] ? ": " : "", body);
	}
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(e);
	usher_buf_free(&own);
}
