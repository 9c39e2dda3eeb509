/* usherd's HTTP server: /metrics, /-/healthy, /-/ready, / and the routes
 * other modules (the JSON API) register, with optional TLS, client
 * certificates and exporter-toolkit-style basic auth. httpd.c is the only
 * file that talks to libmicrohttpd. */
#ifndef USHERD_HTTPD_H
#define USHERD_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "metrics/registry.h"

#define USHER_HTTP_REQUEST_BODY_MAX     (1024 * 1024) /* larger bodies get 413 */
#define USHER_HTTP_RESPONSE_BODY_MAX    (64u << 20)   /* a handler's response */
#define USHER_HTTP_METRICS_MAX          (256u << 20)  /* one /metrics render */
#define USHER_HTTP_RESPONSE_HEADERS_MAX 8

/* A request as handlers see it. Everything is borrowed for the duration of
 * the handler call. */
struct usher_http_request {
	const char *method; /* "GET", "POST", ... (HEAD reaches GET handlers) */
	const char *path;   /* decoded, without the query string */
	const char *body;   /* NUL-terminated; "" when there is none */
	size_t body_len;
	const char *user; /* the basic-auth user, or NULL when auth is off */
	void *conn;       /* private to httpd.c */
};

/* The value of query argument name ("?silenced=true"), NULL when absent;
 * "" for a bare "?flag". */
const char *usher_http_request_arg(const struct usher_http_request *req, const char *name);
/* Calls fn for every query argument in order, repeated ones included
 * ("match[]=a&match[]=b"); values are decoded, "" for a bare flag. */
typedef void usher_http_arg_fn(void *arg, const char *name, const char *value);
void usher_http_request_foreach_arg(const struct usher_http_request *req, usher_http_arg_fn *fn,
				    void *arg);
/* The value of request header name (case-insensitive), or NULL. */
const char *usher_http_request_header(const struct usher_http_request *req, const char *name);

/* What a handler fills in. httpd sets status 200, content_type
 * "application/json" and an empty body (bounded by
 * USHER_HTTP_RESPONSE_BODY_MAX) before the call. content_type must outlive
 * the call (a string literal). */
struct usher_http_response {
	int status;
	const char *content_type;
	struct usher_buf body;
	size_t nheaders;
	struct {
		char *name, *value;
	} headers[USHER_HTTP_RESPONSE_HEADERS_MAX];
};

/* Adds a response header (both strings copied). Returns USHER_ERR_TOOBIG
 * when USHER_HTTP_RESPONSE_HEADERS_MAX are already set. */
enum usher_err usher_http_response_header(struct usher_http_response *resp, const char *name,
					  const char *value);

/* A route handler. Called on one of the server's threads, possibly at the
 * same time as other handlers (and itself): arg must be thread-safe.
 * Returns 0 to send resp, anything else to send a 500 instead (the handler
 * should have logged why). */
typedef int usher_http_handler_fn(void *arg, const struct usher_http_request *req,
				  struct usher_http_response *resp);

struct usher_httpd;

/* Starts serving on conf->listen ("host:port", "[v6]:port", ":port" for
 * every interface; port 0 picks a free port, see usher_httpd_port). Reads
 * the TLS files and copies the basic-auth users, so conf may be freed after
 * the call; a changed server section needs a new server. /metrics renders
 * reg (borrowed, must outlive the server); log (borrowed, may be NULL)
 * gets the server's errors. The server starts not ready.
 *
 * Returns USHER_ERR_NETWORK when the address cannot be bound ("cannot
 * listen on 127.0.0.1:9469: Address already in use"), USHER_ERR_INVALID for
 * a bad listen address or bcrypt hash, USHER_ERR_IO for unreadable TLS
 * files, USHER_ERR_TLS when the server cannot start with them; the reason is
 * in err and *out is NULL. */
enum usher_err usher_httpd_start(const struct usher_server_conf *conf, struct usher_registry *reg,
				 struct usher_log *log, struct usher_httpd **out,
				 struct usher_error *err);

/* The port the server is bound to (the chosen one when asked for 0). */
uint16_t usher_httpd_port(const struct usher_httpd *h);

/* Switches what /-/ready answers: 200 when ready, 503 before. */
void usher_httpd_set_ready(struct usher_httpd *h, bool ready);

/* Routes method requests whose path is path_prefix, or below it when the
 * next character is '/' (or path_prefix ends in '/'), to fn(arg, ...). The
 * longest matching prefix wins; a path that matches only with another
 * method gets 405 with an Allow header. Built-in paths cannot be routed.
 * method and path_prefix are copied; may be called while serving. */
void usher_httpd_route(struct usher_httpd *h, const char *method, const char *path_prefix,
		       usher_http_handler_fn *fn, void *arg);

/* Stops serving (closing every connection; requests in flight finish
 * first), removes the server's own metrics from the registry and frees h.
 * Accepts NULL. */
void usher_httpd_free(struct usher_httpd *h);

#endif
