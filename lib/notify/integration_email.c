/* email_configs: mail through libcurl's SMTP client, STARTTLS (required by
 * default) and AUTH, a multipart/alternative message with a text and an
 * HTML body from Alertmanager's default e-mail templates. SMTP 4xx replies
 * and network errors are retried, 5xx refused. */
#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "notify/integrations.h"

#define MAIL_MAX (8 * 1024 * 1024)

struct email_tls {
	const char *ca_file;
	bool insecure_skip_verify;
};

struct email_opts {
	struct usher_notify_common common;
	const char *to, *from, *smarthost, *hello, *url;
	const char *auth_username, *auth_password, *auth_password_file, *auth_identity;
	bool require_tls;
	struct email_tls tls;
	const char *html, *text;
	struct usher_strmap headers;
	struct usher_notifytmpl *t_to, *t_from, *t_html, *t_text;
	struct usher_notifytmpl **t_headers;
	struct usher_notifytmpl *t_subject; /* when headers has no Subject */
};

static const struct usher_option tls_options[] = {
    {.key = "ca_file",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_tls, ca_file),
     .help = "CA certificates to check the server with"},
    {.key = "insecure_skip_verify",
     .type = USHER_OPT_BOOL,
     .offset = offsetof(struct email_tls, insecure_skip_verify),
     .def = "false",
     .help = "do not check the server's certificate (tests only)"},
    USHER_OPT_END,
};

static const struct usher_option email_options[] = {
    USHER_NOTIFY_COMMON_OPTS(struct email_opts, "false"),
    {.key = "to",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_opts, to),
     .flags = USHER_OPT_REQUIRED,
     .help = "recipients, comma-separated (template)"},
    {.key = "from",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_opts, from),
     .flags = USHER_OPT_REQUIRED,
     .help = "the sender (template)"},
    {.key = "smarthost",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_opts, smarthost),
     .help = "host:port of the SMTP server (port 465: implicit TLS)"},
    {.key = "url",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_opts, url),
     .help = "overrides smarthost: smtp://host:port or smtps://host:port"},
    {.key = "hello",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_opts, hello),
     .def = "localhost",
     .help = "the name sent in EHLO"},
    {.key = "auth_username",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_opts, auth_username),
     .help = "SMTP AUTH user"},
    {.key = "auth_password",
     .type = USHER_OPT_SECRET,
     .offset = offsetof(struct email_opts, auth_password),
     .help = "SMTP AUTH password (a secret)"},
    {.key = "auth_password_file",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_opts, auth_password_file),
     .help = "a file holding auth_password"},
    {.key = "auth_identity",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_opts, auth_identity),
     .help = "PLAIN authorization identity"},
    {.key = "require_tls",
     .type = USHER_OPT_BOOL,
     .offset = offsetof(struct email_opts, require_tls),
     .def = "true",
     .help = "refuse to send without STARTTLS"},
    {.key = "tls_config",
     .type = USHER_OPT_SECTION,
     .offset = offsetof(struct email_opts, tls),
     .sub = tls_options,
     .help = "how the server's certificate is checked"},
    {.key = "html",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_opts, html),
     .def = "{{ template \"email.default.html\" . }}",
     .help = "the HTML body (template)"},
    {.key = "text",
     .type = USHER_OPT_STR,
     .offset = offsetof(struct email_opts, text),
     .def = "{{ template \"email.default.text\" . }}",
     .help = "the text body (template)"},
    {.key = "headers",
     .type = USHER_OPT_STRMAP,
     .offset = offsetof(struct email_opts, headers),
     .help = "extra headers (templates); Subject defaults to email.default.subject"},
    USHER_OPT_END,
};

static bool has_header(const struct usher_strmap *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcasecmp(m->v[i].key, name) == 0)
			return true;
	return false;
}

static enum usher_err email_check(struct usher_cfgctx *ctx, void *opts,
				  const struct usher_ynode *node)
{
	struct email_opts *o = opts;
	struct usher_notify_common *c = &o->common;
	bool bad = false;
	size_t i;

	if (!o->smarthost && !o->url)
		return usher_cfg_error(ctx, node,
				       "email_configs needs smarthost (host:port) or url");
	if (o->smarthost && !strchr(o->smarthost, ':'))
		return usher_cfg_error(ctx, node, "smarthost %s needs a port (host:587)",
				       o->smarthost);
	if (o->url && strncmp(o->url, "smtp://", 7) != 0 && strncmp(o->url, "smtps://", 8) != 0)
		return usher_cfg_error(ctx, node,
				       "url must be smtp://host:port or smtps://host:port");
	if (usher_notify_secret_file(ctx, node, "auth_password", &o->auth_password,
				     o->auth_password_file))
		return USHER_ERR_INVALID;
	if (o->auth_password && !o->auth_username)
		return usher_cfg_error(ctx, node, "auth_password needs auth_username");
	for (i = 0; i < o->headers.n; i++)
		if (strpbrk(o->headers.v[i].key, "\r\n: "))
			return usher_cfg_error(ctx, node, "header name \"%s\" is not valid",
					       o->headers.v[i].key);
#define F(m) bad |= usher_notifytmpl_field(ctx, c, node, #m, o->m, &o->t_##m) != USHER_OK
	F(to);
	F(from);
	F(html);
	F(text);
#undef F
	o->t_headers = usher_arena_zalloc(ctx->arena, (o->headers.n + 1) * sizeof(*o->t_headers));
	for (i = 0; i < o->headers.n; i++)
		bad |= usher_notifytmpl_field(ctx, c, usher_ynode_get(node, "headers"),
					      o->headers.v[i].key, o->headers.v[i].value,
					      &o->t_headers[i]) != USHER_OK;
	if (!has_header(&o->headers, "Subject"))
		bad |= usher_notifytmpl_field(ctx, c, node, "Subject",
					      "{{ template \"email.default.subject\" . }}",
					      &o->t_subject) != USHER_OK;
	return bad ? USHER_ERR_INVALID : USHER_OK;
}

/* ---- the message ---------------------------------------------------------- */

/* A header value on one line (no header injection). */
static void one_line(char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			*s = ' ';
}

static bool ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* RFC 2047 encoded-word for a non-ASCII header value. */
static void add_header(struct usher_buf *b, const char *name, char *value)
{
	one_line(value);
	if (ascii(value)) {
		(void)usher_buf_addf(b, "%s: %s\r\n", name, value);
	} else {
		size_t n = strlen(value);
		unsigned char *enc = usher_malloc(4 * ((n + 2) / 3) + 1);

		EVP_EncodeBlock(enc, (const unsigned char *)value, (int)n);
		(void)usher_buf_addf(b, "%s: =?UTF-8?B?%s?=\r\n", name, enc);
		free(enc);
	}
}

/* Quoted-printable (RFC 2045), lines of at most 76 characters. */
static void add_qp(struct usher_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int col = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char enc[4];
		int n;

		if (c == '\n') {
			(void)usher_buf_addstr(b, "\r\n");
			col = 0;
			continue;
		}
		if (c == '\r')
			continue;
		if ((c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && s[1] != '\n' && s[1] != '\0')) {
			enc[0] = (char)c;
			n = 1;
		} else {
			enc[0] = '=';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 15];
			n = 3;
		}
		if (col + n > 75) {
			(void)usher_buf_addstr(b, "=\r\n");
			col = 0;
		}
		(void)usher_buf_add(b, enc, (size_t)n);
		col += n;
	}
}

/* The address inside "Name <addr>", or the whole trimmed string. */
static char *addr_of(const char *s, size_t n)
{
	const char *lt = memchr(s, '<', n), *gt;

	if (lt && (gt = memchr(lt, '>', n - (size_t)(lt - s))))
		return usher_strndup(lt + 1, (size_t)(gt - lt - 1));
	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return usher_strndup(s, n);
}

struct reader {
	const char *p;
	size_t left;
};

static size_t on_read(char *out, size_t size, size_t n, void *arg)
{
	struct reader *r = arg;
	size_t k = size * n < r->left ? size * n : r->left;

	memcpy(out, r->p, k);
	r->p += k;
	r->left -= k;
	return k;
}

static void email_deliver(const void *opts, const json_t *data, const char *key, int64_t timeout_ms,
			  struct usher_delivery_result *res)
{
	const struct email_opts *o = opts;
	char *to = NULL, *from = NULL, *html = NULL, *text = NULL, *subject = NULL,
	     *fromaddr = NULL;
	char url[1024], mailfrom[512], date[64], boundary[80], keyhash[65],
	    errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *rcpt = NULL;
	struct usher_buf msg;
	struct reader rd;
	CURL *e = NULL;
	CURLcode cc;
	long code = 0;
	size_t i;
	time_t now = time(NULL);
	struct tm tm;
	const char *p;

	memset(res, 0, sizeof(*res));
	usher_buf_init(&msg, MAIL_MAX);
	if (!(to = usher_notify_expand(o->t_to, data, res)) ||
	    !(from = usher_notify_expand(o->t_from, data, res)) ||
	    !(html = usher_notify_expand(o->t_html, data, res)) ||
	    !(text = usher_notify_expand(o->t_text, data, res)))
		goto out;
	if (o->t_subject && !(subject = usher_notify_expand(o->t_subject, data, res)))
		goto out;
	fromaddr = addr_of(from, strlen(from));
	snprintf(mailfrom, sizeof(mailfrom), "<%s>", fromaddr);
	for (p = to; *p;) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		char *a = addr_of(p, n), r[512];

		if (*a) {
			snprintf(r, sizeof(r), "<%s>", a);
			rcpt = curl_slist_append(rcpt, r);
		}
		free(a);
		p = c ? c + 1 : p + n;
	}
	if (!rcpt) {
		res->outcome = USHER_DELIVERY_FAIL;
		usher_fail(&res->err, USHER_ERR_INVALID, "email: no recipient in to");
		goto out;
	}

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	usher_notify_sha256_hex(key ? key : "", keyhash);
	snprintf(boundary, sizeof(boundary), "usher-%016llx-%.16s",
		 (unsigned long long)usher_now_ns(), keyhash);
	(void)usher_buf_addf(&msg, "Date: %s\r\n", date);
	add_header(&msg, "From", from);
	add_header(&msg, "To", to);
	if (subject)
		add_header(&msg, "Subject", subject);
	for (i = 0; i < o->headers.n; i++) {
		char *v = usher_notify_expand(o->t_headers[i], data, res);

		if (!v)
			goto out;
		add_header(&msg, o->headers.v[i].key, v);
		free(v);
	}
	(void)usher_buf_addf(&msg, "Message-Id: <%llu.%.16s@usher>\r\n",
			     (unsigned long long)usher_now_ns(), keyhash);
	(void)usher_buf_addf(&msg,
			     "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; "
			     "boundary=\"%s\"\r\n\r\n",
			     boundary);
	if (*text) {
		(void)usher_buf_addf(&msg,
				     "--%s\r\nContent-Type: text/plain; charset=UTF-8\r\n"
				     "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
				     boundary);
		add_qp(&msg, text);
		(void)usher_buf_addstr(&msg, "\r\n");
	}
	if (*html) {
		(void)usher_buf_addf(&msg,
				     "--%s\r\nContent-Type: text/html; charset=UTF-8\r\n"
				     "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
				     boundary);
		add_qp(&msg, html);
		(void)usher_buf_addstr(&msg, "\r\n");
	}
	if (usher_buf_addf(&msg, "--%s--\r\n", boundary) != USHER_OK) {
		res->outcome = USHER_DELIVERY_FAIL;
		usher_fail(&res->err, USHER_ERR_TOOBIG, "email: message larger than %d bytes",
			   MAIL_MAX);
		goto out;
	}

	if (o->url)
		snprintf(url, sizeof(url), "%s/%s", o->url, o->hello ? o->hello : "localhost");
	else {
		const char *colon = strrchr(o->smarthost, ':');

		snprintf(url, sizeof(url), "%s://%s/%s",
			 colon && strcmp(colon, ":465") == 0 ? "smtps" : "smtp", o->smarthost,
			 o->hello ? o->hello : "localhost");
	}
	e = curl_easy_init();
	if (!e) {
		res->outcome = USHER_DELIVERY_RETRY;
		usher_fail(&res->err, USHER_ERR_NOMEM, "email: cannot make a request");
		goto out;
	}
	rd.p = msg.data;
	rd.left = msg.len;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, usher_notify_xferinfo);
	curl_easy_setopt(e, CURLOPT_MAIL_FROM, mailfrom);
	curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(e, CURLOPT_READDATA, &rd);
	curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg.len);
	curl_easy_setopt(e, CURLOPT_USE_SSL,
			 o->require_tls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_TRY);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	if (o->tls.ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, o->tls.ca_file);
	if (o->tls.insecure_skip_verify) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (o->auth_username) {
		curl_easy_setopt(e, CURLOPT_USERNAME, o->auth_username);
		curl_easy_setopt(e, CURLOPT_PASSWORD, o->auth_password ? o->auth_password : "");
		if (o->auth_identity)
			curl_easy_setopt(e, CURLOPT_SASL_AUTHZID, o->auth_identity);
	}
	cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	res->status = code;
	if (cc == CURLE_OK) {
		res->outcome = USHER_DELIVERY_OK;
	} else {
		/* 5xx replies, refused logins and a server without STARTTLS when
		 * it is required will not get better by themselves */
		res->outcome =
		    cc == CURLE_ABORTED_BY_CALLBACK ? USHER_DELIVERY_RETRY
		    : (code >= 500 || cc == CURLE_LOGIN_DENIED || cc == CURLE_USE_SSL_FAILED ||
		       cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_URL_MALFORMAT)
			? USHER_DELIVERY_FAIL
			: USHER_DELIVERY_RETRY;
		usher_fail(&res->err, cc == CURLE_LOGIN_DENIED ? USHER_ERR_AUTH : USHER_ERR_NETWORK,
			   "email via %s: %s%s%ld", o->url ? o->url : o->smarthost,
			   errbuf[0] ? errbuf : curl_easy_strerror(cc), code ? ", last reply " : "",
			   code);
	}
out:
	if (e)
		curl_easy_cleanup(e);
	curl_slist_free_all(rcpt);
	usher_buf_free(&msg);
	free(to);
	free(from);
	free(html);
	free(text);
	free(subject);
	free(fromaddr);
}

const struct usher_integration_type usher_integration_email = {
    .name = "email",
    .options = email_options,
    .opts_size = sizeof(struct email_opts),
    .check = email_check,
    .send_resolved = usher_notify_send_resolved,
    .deliver = email_deliver,
    .free = usher_notify_free,
    .limits = usher_notify_limits,
};
