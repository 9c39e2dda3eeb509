/* A small HTTP client for the CLI commands that talk to usherd's JSON API
 * (usher alerts, usher silence, usher incident): JSON in, JSON out, over
 * libcurl, with errors worded for the person at the terminal. */
#ifndef USHER_CLI_APICLIENT_H
#define USHER_CLI_APICLIENT_H

#include <jansson.h>
#include <stdio.h>

#include "core/err.h"

#define USHER_API_DEFAULT_CONFIG "/etc/usher/usher.yml"
#define USHER_API_RESPONSE_MAX   (64u << 20)
#define USHER_API_TIMEOUT_MS     15000

/* Where the API is: a base URL without the trailing slash
 * ("http://127.0.0.1:9469"). */
struct usher_api {
	char base[1024];
	long timeout_ms;
};

/* Resolves the base URL: url when given (--url), else $USHER_URL, else the
 * server.listen of config_path (--config; NULL means $USHER_CONFIG, else
 * /etc/usher/usher.yml when that file exists), else the default listen
 * address. A config that cannot be loaded is an error only when it was
 * named explicitly. */
enum usher_err usher_api_init(struct usher_api *api, const char *url, const char *config_path,
			      struct usher_error *err);

/* One request: method ("GET", "POST", "DELETE") to base + path (path starts
 * with '/', already URL-encoded). body (borrowed, may be NULL) is sent as
 * JSON. On a 2xx answer *out (may be NULL to ignore the body) is the parsed
 * JSON body, or NULL when the body is empty; the caller decrefs it.
 *
 * Errors: USHER_ERR_NETWORK when usherd cannot be reached ("cannot reach
 * usherd at http://...: Connection refused; is usherd running? (--url)"),
 * USHER_ERR_TIMEOUT, USHER_ERR_NOTFOUND for a 404, USHER_ERR_INVALID for
 * another 4xx, USHER_ERR_PROTOCOL for a 5xx or a body that is not JSON;
 * the message carries the server's own error text when it sent one. *out
 * is NULL on failure. */
enum usher_err usher_api_request(const struct usher_api *api, const char *method, const char *path,
				 const json_t *body, json_t **out, struct usher_error *err);

/* Percent-encodes s for use in a URL path or query (RFC 3986 unreserved
 * characters stay). Returns a malloc'd string. */
char *usher_api_escape(const char *s);

/* Prints j (borrowed) as indented JSON and a newline to out. */
void usher_api_print_json(FILE *out, const json_t *j);

#endif
