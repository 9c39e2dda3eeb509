/* What the integration files share (lib/notify/integration_*.c): the
 * options every entry has, the HTTP exchange with a vendor and how its
 * answer maps to a delivery outcome, and small text helpers. Internal to
 * lib/notify. */
#ifndef USHER_NOTIFY_INTEGRATIONS_H
#define USHER_NOTIFY_INTEGRATIONS_H

#include <stdatomic.h>
#include <stddef.h>

#include "core/buf.h"
#include "notify/integration.h"
#include "notify/notifytmpl.h"

/* The keys of struct usher_notify_common, for an options table whose
 * struct starts with it (`common` member); sr is the send_resolved
 * default ("true" / "false"). */
#define USHER_NOTIFY_COMMON_OPTS(st_, sr)                                                          \
	{.key = "send_resolved",                                                                   \
	 .type = USHER_OPT_BOOL,                                                                   \
	 .offset = offsetof(st_, common.send_resolved),                                            \
	 .def = sr,                                                                                \
	 .help = "whether to notify about resolved alerts"},                                       \
	    {.key = "timeout",                                                                     \
	     .type = USHER_OPT_DURATION,                                                           \
	     .offset = offsetof(st_, common.timeout_ms),                                           \
	     .def = "10s",                                                                         \
	     .flags = USHER_OPT_POSITIVE,                                                          \
	     .help = "bound on one delivery attempt"},                                             \
	{                                                                                          \
		.key = "retry_for", .type = USHER_OPT_DURATION,                                    \
		.offset = offsetof(st_, common.retry_for_ms), .def = "1h",                         \
		.flags = USHER_OPT_POSITIVE,                                                       \
		.help = "how long a failing notification is retried before it is dropped"          \
	}

/* Set by the delivery worker around an attempt: when *usher_notify_stop
 * becomes true (the engine is stopping), the transfers of the attempt are
 * cut at once and it ends as RETRY, to be repeated at the next start.
 * Per thread; NULL outside a worker. */
extern _Thread_local const atomic_bool *usher_notify_stop;

/* The libcurl progress callback that implements it (CURLOPT_XFERINFOFUNCTION,
 * with CURLOPT_NOPROGRESS 0). */
int usher_notify_xferinfo(void *arg, long long dltotal, long long dlnow, long long ultotal,
			  long long ulnow);

bool usher_notify_send_resolved(const void *opts);
void usher_notify_limits(const void *opts, int64_t *timeout_ms, int64_t *retry_for_ms);
void usher_notify_free(void *opts);

/* An entry's `http_config` (Prometheus' common HTTP client keys, the ones
 * receivers use): credentials, TLS, a proxy. */
struct usher_notify_basic_auth {
	const char *username, *password, *password_file;
};
struct usher_notify_authorization {
	const char *type, *credentials, *credentials_file;
};
struct usher_notify_tls {
	const char *ca_file, *cert_file, *key_file;
	bool insecure_skip_verify;
};
struct usher_notify_httpconf {
	struct usher_notify_basic_auth basic_auth;
	const char *bearer_token, *bearer_token_file;
	struct usher_notify_authorization authorization;
	struct usher_notify_tls tls_config;
	const char *proxy_url;
};

/* The `http_config` option, for a table whose struct has the field m. */
extern const struct usher_option usher_notify_httpconf_options[];
#define USHER_NOTIFY_HTTPCONF_OPT(st_, m)                                                          \
	{                                                                                          \
		.key = "http_config", .type = USHER_OPT_SECTION, .offset = offsetof(st_, m),       \
		.sub = usher_notify_httpconf_options,                                              \
		.help = "basic_auth, bearer_token, authorization, tls_config, proxy_url"           \
	}

/* Alertmanager's `<key>_file` form of a secret: when path is set, *value
 * (which must then be unset) becomes the file's content, one trailing
 * newline dropped. Errors at node's value for key_file. */
enum usher_err usher_notify_secret_file(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					const char *key, const char **value, const char *path);

/* Checks for an http_config (one kind of credentials at most), reading
 * its *_file secrets. */
enum usher_err usher_notify_httpconf_check(struct usher_cfgctx *ctx,
					   struct usher_notify_httpconf *h,
					   const struct usher_ynode *node);

/* One HTTP request to a vendor. */
struct usher_notify_http {
	const struct usher_notify_httpconf *conf; /* may be NULL */
	const char *method;                       /* NULL: POST */
	const char *url;
	const char *body;           /* NULL: no body */
	const char *content_type;   /* NULL: application/json */
	const char *const *headers; /* "Name: value", NULL-terminated; may be NULL */
	int64_t timeout_ms;
	struct usher_buf *resp; /* the response body, bounded; may be NULL */
};

/* Runs req and fills res: 2xx OK; 429, 408 and 5xx RETRY (with the
 * Retry-After, in seconds or as an HTTP date); other statuses FAIL;
 * network errors and timeouts RETRY. The message in res->err names the
 * vendor (what) and, for refusals, the start of the answer. */
void usher_notify_http(const char *what, const struct usher_notify_http *req,
		       struct usher_delivery_result *res);

/* Parses a Retry-After value at now_ms: milliseconds to wait, 0 if none. */
int64_t usher_notify_retry_after_ms(const char *v, int64_t now_ms);

/* Lowercase hex sha256 of s into out (65 bytes). */
void usher_notify_sha256_hex(const char *s, char out[65]);

/* s cut to at most max UTF-8 characters, the last one "…" when cut
 * (Alertmanager's notify.TruncateInRunes). malloc'd. */
char *usher_notify_truncate(const char *s, size_t max);

/* Whether every alert of data is resolved (data's "status"). */
bool usher_notify_resolved(const json_t *data);

/* Expands f into a malloc'd string; on error sets res to FAIL (a template
 * that fails on this data is not going to work on a retry) and returns
 * NULL. */
char *usher_notify_expand(const struct usher_notifytmpl *f, const json_t *data,
			  struct usher_delivery_result *res);

/* The integration types. */
extern const struct usher_integration_type usher_integration_webhook;
extern const struct usher_integration_type usher_integration_slack;
extern const struct usher_integration_type usher_integration_pagerduty;
extern const struct usher_integration_type usher_integration_opsgenie;
extern const struct usher_integration_type usher_integration_email;
extern const struct usher_integration_type usher_integration_alertmanager;

#endif
