/* The CLI's HTTP client for usherd's JSON API: libcurl, bounded response
 * buffers, and error messages that say what to do. */
#include "apiclient.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/mem.h"

static void set_base(struct usher_api *api, const char *url)
{
	size_t n;

	snprintf(api->base, sizeof(api->base), "%s", url);
	n = strlen(api->base);
	while (n > 0 && api->base[n - 1] == '/')
		api->base[--n] = '\0';
}

/* "host:port", ":port", "[v6]:port" as in server.listen, to a URL. */
static void base_from_listen(struct usher_api *api, const char *listen, bool tls)
{
	const char *colon = strrchr(listen, ':');
	int hostlen = colon ? (int)(colon - listen) : (int)strlen(listen);
	const char *host = listen;

	if (hostlen == 0 || (hostlen == 7 && strncmp(listen, "0.0.0.0", 7) == 0)) {
		host = "127.0.0.1";
		hostlen = 9;
	} else if (hostlen == 4 && strncmp(listen, "[::]", 4) == 0) {
		host = "[::1]";
		hostlen = 5;
	}
	snprintf(api->base, sizeof(api->base), "%s://%.*s%s", tls ? "https" : "http", hostlen, host,
		 colon ? colon : "");
}

enum usher_err usher_api_init(struct usher_api *api, const char *url, const char *config_path,
			      struct usher_error *err)
{
	struct usher_config *cfg = NULL;
	struct usher_diags diags;
	bool explicit_config = config_path != NULL;
	const char *env;

	memset(api, 0, sizeof(*api));
	api->timeout_ms = USHER_API_TIMEOUT_MS;
	if (url && *url) {
		set_base(api, url);
		return USHER_OK;
	}
	env = getenv("USHER_URL");
	if (env && *env) {
		set_base(api, env);
		return USHER_OK;
	}
	if (!config_path) {
		env = getenv("USHER_CONFIG");
		if (env && *env) {
			config_path = env;
			explicit_config = true;
		} else if (access(USHER_API_DEFAULT_CONFIG, R_OK) == 0) {
			config_path = USHER_API_DEFAULT_CONFIG;
		}
	}
	if (!config_path) {
		base_from_listen(api, USHER_DEFAULT_LISTEN, false);
		return USHER_OK;
	}
	usher_diags_init(&diags);
	if (usher_config_load(config_path, &cfg, &diags)) {
		char first[512];

		usher_diags_first(&diags, first, sizeof(first));
		usher_diags_free(&diags);
		if (!explicit_config) {
			base_from_listen(api, USHER_DEFAULT_LISTEN, false);
			return USHER_OK;
		}
		return usher_fail(err, USHER_ERR_INVALID,
				  "cannot find usherd's address in %s: %s (or give --url)",
				  config_path, first);
	}
	usher_diags_free(&diags);
	base_from_listen(api, cfg->server.listen, cfg->server.tls.cert_file != NULL);
	usher_config_free(cfg);
	return USHER_OK;
}

struct sink {
	struct usher_buf buf;
	bool toobig;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;

	if (usher_buf_add(&s->buf, p, size * n)) {
		s->toobig = true;
		return 0;
	}
	return size * n;
}

/* The server's own words for an error body: a JSON string (Alertmanager's
 * API answers so), an object's "error" or "message", else the text. */
static void server_message(const char *body, char *out, size_t len)
{
	json_t *j = json_loads(body, JSON_DECODE_ANY, NULL);
	const char *s = NULL;

	if (j) {
		if (json_is_string(j))
			s = json_string_value(j);
		else if (json_is_object(j)) {
			s = json_string_value(json_object_get(j, "error"));
			if (!s)
				s = json_string_value(json_object_get(j, "message"));
		}
	}
	snprintf(out, len, "%s", s ? s : body);
	json_decref(j);
	/* one line */
	for (char *c = out; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	if (strlen(out) > 200)
		memcpy(out + 197, "...", 4);
}

enum usher_err usher_api_request(const struct usher_api *api, const char *method, const char *path,
				 const json_t *body, json_t **out, struct usher_error *err)
{
	struct sink sink = {.toobig = false};
	struct curl_slist *hdrs = NULL;
	char *payload = NULL, *url = NULL, errbuf[CURL_ERROR_SIZE] = "";
	enum usher_err rc = USHER_OK;
	size_t urllen;
	long status = 0;
	CURLcode cc;
	CURL *c;

	if (out)
		*out = NULL;
	usher_buf_init(&sink.buf, USHER_API_RESPONSE_MAX);
	urllen = strlen(api->base) + strlen(path) + 1;
	url = usher_malloc(urllen);
	snprintf(url, urllen, "%s%s", api->base, path);
	c = curl_easy_init();
	if (!c) {
		rc = usher_fail(err, USHER_ERR_NOMEM, "cannot start an HTTP client");
		goto out;
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body) {
		payload = json_dumps(body, JSON_COMPACT);
		if (!payload) {
			rc = usher_fail(err, USHER_ERR_NOMEM, "cannot encode the request");
			goto out;
		}
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "usher-cli");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, api->timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		const char *why = *errbuf ? errbuf : curl_easy_strerror(cc);

		if (sink.toobig)
			rc = usher_fail(err, USHER_ERR_TOOBIG,
					"%s %s: the answer is larger than %u MiB", method, url,
					USHER_API_RESPONSE_MAX >> 20);
		else if (cc == CURLE_OPERATION_TIMEDOUT)
			rc =
			    usher_fail(err, USHER_ERR_TIMEOUT, "%s %s: no answer within %ld ms: %s",
				       method, url, api->timeout_ms, why);
		else
			rc = usher_fail(err, USHER_ERR_NETWORK,
					"cannot reach usherd at %s: %s; is usherd running there? "
					"(set --url or USHER_URL)",
					api->base, why);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		char msg[256] = "";

		if (sink.buf.len)
			server_message(usher_buf_str(&sink.buf), msg, sizeof(msg));
		rc = status == 404   ? USHER_ERR_NOTFOUND
		     : status >= 500 ? USHER_ERR_PROTOCOL
				     : USHER_ERR_INVALID;
		rc = usher_fail(err, rc, "%s %s: HTTP %ld%s%s", method, path, status,
				*msg ? ": " : "", msg);
		goto out;
	}
	if (out && sink.buf.len) {
		json_error_t je;

		*out = json_loads(usher_buf_str(&sink.buf), JSON_DECODE_ANY, &je);
		if (!*out)
			rc = usher_fail(
			    err, USHER_ERR_PROTOCOL,
			    "%s %s: the answer is not JSON: %s (is --url usherd's address?)",
			    method, url, je.text);
	}
out:
	curl_slist_free_all(hdrs);
	if (c)
		curl_easy_cleanup(c);
	free(payload);
	free(url);
	usher_buf_free(&sink.buf);
	return rc;
}

char *usher_api_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = usher_malloc(3 * n + 1), *o = out;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}

void usher_api_print_json(FILE *out, const json_t *j)
{
	json_dumpf(j, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
}
