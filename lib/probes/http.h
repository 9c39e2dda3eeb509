/* The HTTP(S) probe (blackbox_exporter's http prober on libcurl's multi
 * interface, plus JSON assertions), and the pieces a multi-step journey
 * probe reuses: the options of one request, compiled assertions, one
 * exchange in flight on the loop, the metrics of its result, and the
 * regex and header-block helpers (so only http.c touches PCRE2). */
#ifndef USHER_PROBES_HTTP_H
#define USHER_PROBES_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "config/options.h"
#include "core/buf.h"
#include "metrics/registry.h"
#include "probes/loop.h"
#include "probes/probe.h"

/* The probe type, listed in probes/types.c. */
extern const struct usher_probe_type usher_probe_http;

/* ---- options ------------------------------------------------------------ */

#define USHER_HTTP_MAX_REDIRECTS 10

struct usher_http_basic_auth {
	const char *username;
	const char *password; /* a secret: never logged */
};

/* One entry of valid_status_codes, inclusive: 404 is {404, 404}, "2xx" is
 * {200, 299}. */
struct usher_http_status_range {
	int lo, hi;
};

/* No entries means any 2xx, as blackbox_exporter. */
struct usher_http_status_codes {
	size_t n;
	struct usher_http_status_range *v;
};

/* An entry of fail_if_header_matches / fail_if_header_not_matches. */
struct usher_http_header_match {
	const char *header;
	const char *regexp; /* compiles: checked at load */
	bool allow_missing;
};

enum usher_http_json_type {
	USHER_HTTP_JSON_ANY = 0, /* no type assertion */
	USHER_HTTP_JSON_STRING,
	USHER_HTTP_JSON_NUMBER,
	USHER_HTTP_JSON_INTEGER, /* a number with no fractional part */
	USHER_HTTP_JSON_BOOLEAN,
	USHER_HTTP_JSON_OBJECT,
	USHER_HTTP_JSON_ARRAY,
	USHER_HTTP_JSON_NULL,
};

/* A YAML scalar as written for `equals`. Its YAML 1.2 core-schema type
 * decides what it can equal: a quoted or non-numeric scalar is a string,
 * 3 and 2.5 are numbers (3 equals 3.0), true/false are booleans, null and ~
 * are null. */
enum usher_http_scalar_kind {
	USHER_HTTP_SCALAR_UNSET = 0,
	USHER_HTTP_SCALAR_NULL,
	USHER_HTTP_SCALAR_BOOL,
	USHER_HTTP_SCALAR_INT,
	USHER_HTTP_SCALAR_FLOAT,
	USHER_HTTP_SCALAR_STRING,
};

struct usher_http_scalar {
	enum usher_http_scalar_kind kind;
	const char *text; /* as written */
	bool b;           /* BOOL */
	int64_t i;        /* INT */
	double d;         /* INT and FLOAT */
};

enum usher_http_tristate {
	USHER_HTTP_UNSET = 0,
	USHER_HTTP_NO,
	USHER_HTTP_YES,
};

/* One entry of `json`: a JSON Pointer and what must hold for its value.
 * At least one of equals, type, exists, matches is set (checked at load). */
struct usher_http_json_assert {
	const char *pointer; /* valid RFC 6901 syntax: checked at load */
	struct usher_http_scalar equals;
	enum usher_http_json_type type;
	enum usher_http_tristate exists;
	const char *matches; /* compiles: checked at load */
};

/* The http probe's options, filled from YAML by usher_http_options. Lives
 * in the config's arena. */
struct usher_http_opts {
	const char *url;
	const char *method;
	struct usher_strmap headers; /* values may be secrets */
	const char *body;
	bool follow_redirects;
	struct usher_http_status_codes valid_status_codes;
	struct usher_strlist fail_if_body_matches_regexp;
	struct usher_strlist fail_if_body_not_matches_regexp;
	struct usher_list fail_if_header_matches;     /* of struct usher_http_header_match */
	struct usher_list fail_if_header_not_matches; /* of struct usher_http_header_match */
	struct usher_list json;                       /* of struct usher_http_json_assert */
	struct usher_tls_client_conf tls;
	struct usher_http_basic_auth basic_auth;
	const char *bearer_token; /* a secret */
	uint64_t body_size_limit;
	int ip_protocol; /* 4 or 6; 0 means 4 */
	bool ip_protocol_fallback;
	/* Not from YAML: set by code that reads the body itself (a scrape),
	 * so the exchange keeps it without any assertion asking for it. */
	bool keep_body;
	/* Likewise for the response header block (a journey step extracting
	 * a header). */
	bool keep_head;
};

/* The option table of struct usher_http_opts (a journey step embeds it). */
extern const struct usher_option usher_http_options[];

/* The checks that need more than one key (URL scheme, method, headers,
 * auth, TLS files, json entries), with errors at the offending node of map,
 * the YAML mapping o was filled from. May complete o (a json `equals: null`,
 * which the table reads as absent). Returns USHER_ERR_INVALID after adding
 * diagnostics. */
enum usher_err usher_http_opts_check(struct usher_cfgctx *ctx, struct usher_http_opts *o,
				     const struct usher_ynode *map);

/* "host:port" of url, the port defaulted from the scheme ("[::1]:443"), in
 * a. An unparsable url gives the url without its userinfo. */
const char *usher_http_instance(struct usher_arena *a, const char *url);

/* "METHOD url" for messages, with any user:password@ removed. The caller
 * frees the result. */
char *usher_http_describe(const struct usher_http_opts *o);

/* ---- pieces a journey shares -------------------------------------------- */

/* Whether s is an RFC 9110 token (a method or a header name). */
bool usher_http_is_token(const char *s);

/* Walks the header lines of a raw block ("HTTP/1.1 200 OK\r\nName:
 * value\r\n..."): the next value of header name (any case) after *pos,
 * which is advanced, trimmed of surrounding whitespace. Start with *pos 0. */
bool usher_http_header_next(const char *head, size_t len, size_t *pos, const char *name,
			    const char **v, size_t *vn);

/* Option parsers (USHER_OPT_CUSTOM) of the http table, for tables that
 * take the same values: a regular expression that must compile, a JSON
 * Pointer of valid syntax. Both store the scalar (const char *) in field. */
enum usher_err usher_http_parse_regex(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				      void *field);
enum usher_err usher_http_parse_pointer(struct usher_cfgctx *ctx, const struct usher_ynode *n,
					void *field);

/* A regular expression compiled as the assertions compile theirs (PCRE2,
 * UTF-8 tolerating invalid bytes, "$" only at the end, a heap limit per
 * match), for code outside this file that matches on its own (a journey's
 * regex extraction): only http.c touches PCRE2. */
struct usher_http_regex;

/* On failure err says why ("invalid regexp ...") and *out is NULL. */
enum usher_err usher_http_regex_new(const char *pattern, struct usher_http_regex **out,
				    struct usher_error *err);
void usher_http_regex_free(struct usher_http_regex *re);

enum usher_http_rx {
	USHER_HTTP_RX_MATCH, /* *off, *len set */
	USHER_HTTP_RX_NOMATCH,
	USHER_HTTP_RX_UNSET, /* matched, but group 1 did not take part */
	USHER_HTTP_RX_NOMEM,
	USHER_HTTP_RX_ERROR, /* could not be decided (a resource limit) */
};

/* Matches re on s (n bytes); on a match, [*off, *off + *len) is group 1
 * when the match set a group, else the whole match. */
enum usher_http_rx usher_http_regex_capture(const struct usher_http_regex *re, const char *s,
					    size_t n, size_t *off, size_t *len);

/* ---- assertions --------------------------------------------------------- */

/* The compiled form of an options struct's assertions (its regexes). */
struct usher_http_checks;

/* Compiles o's regexes. o is borrowed and must outlive *out. On failure
 * (a regex that check would have rejected) err says which and *out is
 * NULL. */
enum usher_err usher_http_checks_new(const struct usher_http_opts *o,
				     struct usher_http_checks **out, struct usher_error *err);
void usher_http_checks_free(struct usher_http_checks *c);
/* Whether the assertions look at the body / the response headers: the
 * exchange keeps them only then. */
bool usher_http_checks_need_body(const struct usher_http_checks *c);
bool usher_http_checks_need_headers(const struct usher_http_checks *c);

/* Each assertion returns true when the response passes it. Otherwise it
 * calls usher_probe_fail(run, reason, "<what>: <detail>") and returns
 * false. what names the request ("GET https://host/path"). */

/* valid_status_codes (reason "status"). */
bool usher_http_assert_status(const struct usher_http_opts *o, long status,
			      struct usher_probe_run *run, const char *what);
/* fail_if_header_(not_)matches against a raw header block, as received
 * ("HTTP/1.1 200 OK\r\nName: value\r\n...") (reason "header"). */
bool usher_http_assert_headers(const struct usher_http_checks *c, const char *head, size_t len,
			       struct usher_probe_run *run, const char *what);
/* fail_if_body_(not_)matches_regexp (reason "regex"). */
bool usher_http_assert_body(const struct usher_http_checks *c, const char *body, size_t len,
			    struct usher_probe_run *run, const char *what);
/* The json entries, in order; the first that fails is reported (reason
 * "json"). A body that is not JSON fails when there is any entry. */
bool usher_http_assert_json(const struct usher_http_checks *c, const char *body, size_t len,
			    struct usher_probe_run *run, const char *what);

/* ---- one exchange in flight --------------------------------------------- */

enum usher_http_phase {
	USHER_HTTP_PHASE_RESOLVE,
	USHER_HTTP_PHASE_CONNECT,
	USHER_HTTP_PHASE_TLS,
	USHER_HTTP_PHASE_PROCESSING,
	USHER_HTTP_PHASE_TRANSFER,
	USHER_HTTP_NPHASES,
};

/* What an exchange measured, read once its done callback runs. */
struct usher_http_result {
	CURLcode curl_rc;
	char curl_msg[CURL_ERROR_SIZE]; /* curl's detail for curl_rc, may be "" */
	bool body_too_large;            /* aborted at body_size_limit */
	bool head_too_large;            /* aborted: response headers too large */
	long status;                    /* of the final response; 0 without one */
	double http_version;            /* 1.0, 1.1, 2, 3; 0 without a response */
	int64_t content_length;         /* Content-Length; -1 unknown, 0 without a response */
	uint64_t body_bytes;            /* decoded body bytes of the final response */
	long redirects;
	double phase_s[USHER_HTTP_NPHASES]; /* summed over all hops */
	double dns_lookup_s;                /* the first hop's name lookup */
	int ip_protocol;                    /* 4, 6; 0 when nothing was connected */
	int64_t last_modified;              /* Last-Modified, unix seconds; -1 absent */
	const char *tls_version;            /* "TLS 1.3"; NULL when the final hop was not TLS */
	char content_type[128]; /* of the final response; "" when absent (cut if longer) */
	bool has_cert_expiry;
	int64_t cert_expiry; /* earliest notAfter of the certificates the server sent */
	bool has_chain_expiry;
	int64_t chain_expiry;  /* earliest notAfter of the verified chain */
	struct usher_buf head; /* the final response's header block, when checks need it */
	struct usher_buf body; /* its decoded body, when checks need it */
};

/* Cumulative curl timers, in microseconds (curl sums them over hops). */
struct usher_http_timers {
	curl_off_t nl, co, ap, pre, st;
};

/* One request with its redirects, embedded by its owner (a probe instance,
 * a journey step). The owner sets done and owner, then calls start; done
 * runs on the loop thread when the exchange ends, whatever the outcome;
 * the owner then reads res and calls cleanup. */
struct usher_http_exchange {
	void (*done)(struct usher_http_exchange *ex);
	void *owner;
	/* Set by the owner like done, or NULL: the exchange joins this share
	 * (its cookies and pooled connections, a journey run's) instead of
	 * measuring a fresh connection of its own. Borrowed. */
	CURLSH *share;
	struct usher_http_result res;

	/* internal */
	struct usher_loop_xfer xfer;
	struct usher_loop *loop;
	const struct usher_http_opts *opts;
	struct curl_slist *headers;
	struct curl_slist *connect_to;
	char *url;
	int64_t deadline_mono_ms;
	long ipresolve;
	bool may_fall_back;
	bool keep_body, keep_head;
	bool active;                   /* registered with the loop */
	unsigned hops;                 /* responses whose first header arrived */
	struct usher_http_timers prev; /* the timers at the last hop boundary */
	int64_t failed_resolve_us;     /* name lookup of a family that had no address */
};

/* Starts the exchange for o on loop, to end by deadline_mono_ms. o and c
 * are borrowed and must outlive the exchange; c may be NULL (no body or
 * headers kept). Returns USHER_ERR_TIMEOUT when the deadline has passed,
 * another error when curl refuses the request (err says why); then done
 * will not be called and nothing needs cleaning up. */
enum usher_err usher_http_exchange_start(struct usher_http_exchange *ex, struct usher_loop *loop,
					 const struct usher_http_opts *o,
					 const struct usher_http_checks *c,
					 int64_t deadline_mono_ms, struct usher_error *err);
/* Abandons an exchange in flight and frees what it holds; done will not be
 * called. Accepts an exchange that has ended or never started. */
void usher_http_exchange_cancel(struct usher_http_exchange *ex);
/* Frees what a finished exchange holds (res.head, res.body, the handle). */
void usher_http_exchange_cleanup(struct usher_http_exchange *ex);

/* Judges a finished exchange the way blackbox_exporter does: the
 * transport, then valid_status_codes, header regexes, body regexes and
 * finally the json entries. Records the first failure in run and returns
 * false; *regex_failed says whether a header or body regex was the cause
 * (probe_failed_due_to_regex). c may be NULL (only transport and status). */
bool usher_http_evaluate(const struct usher_http_exchange *ex, const struct usher_http_checks *c,
			 struct usher_probe_run *run, const char *what, bool *regex_failed);

/* One line on r for a trace (usher diag): "-> 200 HTTP/1.1, dns 0.1ms
 * connect 0.2ms tls 0ms ttfb 3.0ms total 3.4ms", or "-> no response
 * (<curl's reason>), ..." when none arrived. total_s is the exchange's
 * wall time as the owner measured it; ttfb is total_s less the transfer
 * phase. Writes at most len bytes of out. */
void usher_http_format_result(const struct usher_http_result *r, double total_s, char *out,
			      size_t len);

/* Adds blackbox_exporter's http series for r to s: probe_http_*,
 * probe_ssl_*, probe_tls_version_info, probe_dns_lookup_time_seconds,
 * probe_ip_protocol, probe_failed_due_to_regex. extra is NULL or up to 8
 * label pairs, NULL-terminated, added to every sample (a journey's step). */
void usher_http_emit(struct usher_sample_set *s, const struct usher_http_result *r,
		     bool regex_failed, const char *const *extra);

#endif
