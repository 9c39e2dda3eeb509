/* The HTTP(S) probe: blackbox_exporter's http prober on libcurl's multi
 * interface, with JSON assertions. Options, assertions, the exchange on the
 * loop and the metrics are separate pieces so the journey probe can reuse
 * them. Only this file touches PCRE2 and OpenSSL for the probes. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "probes/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pcre2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "probes/jsonptr.h"
#include "usher_version.h"

/* Bounds on what a response may make us hold. The body's is the option. */
#define HEAD_MAX (256 * 1024)
/* PCRE2's backtracking memory per match, in KiB: a pathological pattern on
 * a 10MiB body fails the match instead of eating the machine. */
#define REGEX_HEAP_LIMIT_KIB (64 * 1024)
/* How much of a value a message shows. */
#define SHOW_MAX 96

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* ---- small helpers ------------------------------------------------------ */

/* Writes s (n bytes) into out as a double-quoted, one-line string: quotes
 * and control bytes escaped, anything past SHOW_MAX cut with "...". */
static const char *show(char *out, size_t outlen, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	if (outlen < 8) {
		if (outlen)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[4];
		size_t el = 0;

		if (c == '"') {
			esc[el++] = '\\';
			esc[el++] = '"';
		} else if (c == '\n' || c == '\r' || c == '\t') {
			esc[el++] = '\\';
			esc[el++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (c < 0x20 || c == 0x7f) {
			esc[el++] = '\\';
			esc[el++] = 'x';
			esc[el++] = hex[c >> 4];
			esc[el++] = hex[c & 15];
		} else {
			esc[el++] = (char)c;
		}
		/* keep room for `..."` and the NUL */
		if (o + el + 5 > outlen || i >= SHOW_MAX) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, esc, el);
		o += el;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

static const char *shows(char *out, size_t outlen, const char *s)
{
	return show(out, outlen, s, strlen(s));
}

/* curl capitalises its messages; ours are lowercase (but "SSL" stays). */
static void lower_first(char *s)
{
	if (s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'a' && s[1] <= 'z')
		s[0] = (char)(s[0] - 'A' + 'a');
}

bool usher_http_is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return false;
	}
	return true;
}

/* The length of url's "user:password@" part, and where it starts. */
static size_t userinfo_span(const char *url, size_t *start)
{
	const char *auth = strstr(url, "://"), *end, *at = NULL, *p;

	if (!auth)
		return 0;
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (!at)
		return 0;
	*start = (size_t)(auth - url);
	return (size_t)(at + 1 - auth);
}

/* url without its userinfo, in a. */
static const char *redact(struct usher_arena *a, const char *url)
{
	size_t start = 0, n = userinfo_span(url, &start);

	if (!n)
		return usher_arena_strdup(a, url);
	return usher_arena_printf(a, "%.*s%s", (int)start, url, url + start + n);
}

char *usher_http_describe(const struct usher_http_opts *o)
{
	const char *m = o->method ? o->method : "GET";
	struct usher_buf b;
	size_t start = 0, n = userinfo_span(o->url, &start);

	usher_buf_init(&b, strlen(m) + strlen(o->url) + 2);
	usher_buf_addf(&b, "%s ", m);
	if (n) {
		usher_buf_add(&b, o->url, start);
		usher_buf_addstr(&b, o->url + start + n);
	} else {
		usher_buf_addstr(&b, o->url);
	}
	return usher_buf_take(&b);
}

/* ---- regular expressions ------------------------------------------------ */

/* Compiles pattern the way blackbox's Go regexps behave where PCRE2 can:
 * UTF-8 that tolerates invalid bytes in the subject, and "$" only at the
 * very end. On failure writes PCRE2's reason and offset into msg. No JIT:
 * probe bodies are small, the interpreter honours the heap limit, and JIT
 * code defeats valgrind. */
static pcre2_code *regex_compile(const char *pattern, char *msg, size_t len)
{
	PCRE2_UCHAR text[256];
	PCRE2_SIZE off = 0;
	pcre2_code *re;
	int code = 0;

	re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
			   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &code, &off,
			   NULL);
	if (!re) {
		pcre2_get_error_message(code, text, sizeof(text));
		snprintf(msg, len, "%s at offset %zu", (const char *)text, (size_t)off);
		return NULL;
	}
	return re;
}

/* A match context with REGEX_HEAP_LIMIT_KIB; NULL when out of memory. */
static pcre2_match_context *match_context_new(void)
{
	pcre2_match_context *mctx = pcre2_match_context_create(NULL);

	if (mctx)
		pcre2_set_heap_limit(mctx, REGEX_HEAP_LIMIT_KIB);
	return mctx;
}

/* Runs re on s (n bytes). Returns PCRE2's result: >= 0 on a match,
 * PCRE2_ERROR_NOMATCH, or another negative error (a resource limit,
 * PCRE2_ERROR_NOMEMORY). With group set, *group gets the span of the
 * capture a journey extracts: group 1 when the match set a group, else the
 * whole match; group[0] is PCRE2_UNSET when group 1 did not take part. */
static int regex_exec(const pcre2_code *re, pcre2_match_context *mctx, const char *s, size_t n,
		      size_t group[2])
{
	pcre2_match_data *md = group ? pcre2_match_data_create_from_pattern(re, NULL)
				     : pcre2_match_data_create(1, NULL);
	int rc;

	if (!md)
		return PCRE2_ERROR_NOMEMORY;
	rc = pcre2_match(re, (PCRE2_SPTR)(s ? s : ""), n, 0, 0, md, mctx);
	if (rc >= 0 && group) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		int g = rc > 1 ? 1 : 0;

		group[0] = ov[2 * g];
		group[1] = ov[2 * g + 1];
	}
	pcre2_match_data_free(md);
	return rc;
}

struct usher_http_regex {
	pcre2_code *code;
	pcre2_match_context *mctx;
};

enum usher_err usher_http_regex_new(const char *pattern, struct usher_http_regex **out,
				    struct usher_error *err)
{
	struct usher_http_regex *re = usher_calloc(1, sizeof(*re));
	char msg[300], q[SHOW_MAX + 16];

	*out = NULL;
	re->mctx = match_context_new();
	if (!re->mctx) {
		usher_http_regex_free(re);
		return usher_fail(err, USHER_ERR_NOMEM, "cannot allocate a regex match context");
	}
	re->code = regex_compile(pattern, msg, sizeof(msg));
	if (!re->code) {
		usher_http_regex_free(re);
		return usher_fail(err, USHER_ERR_INVALID, "invalid regexp %s: %s",
				  shows(q, sizeof(q), pattern), msg);
	}
	*out = re;
	return USHER_OK;
}

void usher_http_regex_free(struct usher_http_regex *re)
{
	if (!re)
		return;
	pcre2_code_free(re->code);
	pcre2_match_context_free(re->mctx);
	free(re);
}

enum usher_http_rx usher_http_regex_capture(const struct usher_http_regex *re, const char *s,
					    size_t n, size_t *off, size_t *len)
{
	size_t group[2] = {0, 0};
	int rc = regex_exec(re->code, re->mctx, s, n, group);

	if (rc == PCRE2_ERROR_NOMATCH)
		return USHER_HTTP_RX_NOMATCH;
	if (rc == PCRE2_ERROR_NOMEMORY)
		return USHER_HTTP_RX_NOMEM;
	if (rc < 0)
		return USHER_HTTP_RX_ERROR;
	if (group[0] == PCRE2_UNSET)
		return USHER_HTTP_RX_UNSET;
	*off = group[0];
	*len = group[1] - group[0];
	return USHER_HTTP_RX_MATCH;
}

/* ---- option parsers ----------------------------------------------------- */

static enum usher_err check_regex(struct usher_cfgctx *ctx, const struct usher_ynode *n)
{
	char msg[300], q[SHOW_MAX + 16];
	pcre2_code *re;

	if (n->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, n, "expected a regular expression, got a %s",
				       usher_ynode_kind_name(n->kind));
	re = regex_compile(n->value, msg, sizeof(msg));
	if (!re)
		return usher_cfg_error(ctx, n, "invalid regexp %s: %s",
				       shows(q, sizeof(q), n->value), msg);
	pcre2_code_free(re);
	return USHER_OK;
}

enum usher_err usher_http_parse_regex(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				      void *field)
{
	if (check_regex(ctx, n))
		return USHER_ERR_INVALID;
	*(const char **)field = n->value;
	return USHER_OK;
}

/* A regex or a list of them, into a struct usher_strlist. */
static enum usher_err parse_regex_list(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				       void *field)
{
	struct usher_strlist *l = field;
	enum usher_err rc = USHER_OK;
	size_t i;

	if (n->kind == USHER_Y_SCALAR) {
		if (check_regex(ctx, n))
			return USHER_ERR_INVALID;
		l->n = 1;
		l->v = usher_arena_alloc(ctx->arena, sizeof(*l->v));
		l->v[0] = n->value;
		return USHER_OK;
	}
	if (n->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, n, "expected a list of regular expressions, got a %s",
				       usher_ynode_kind_name(n->kind));
	l->n = 0;
	l->v = usher_arena_alloc(ctx->arena, (n->n ? n->n : 1) * sizeof(*l->v));
	for (i = 0; i < n->n; i++) {
		if (check_regex(ctx, n->items[i])) {
			rc = USHER_ERR_INVALID;
			continue;
		}
		l->v[l->n++] = n->items[i]->value;
	}
	return rc;
}

/* 404, or a class "2xx". */
static enum usher_err parse_status_one(const char *s, struct usher_http_status_range *r)
{
	size_t len = strlen(s);
	int v = 0;
	size_t i;

	if (len == 3 && s[0] >= '1' && s[0] <= '5' && (s[1] == 'x' || s[1] == 'X') &&
	    (s[2] == 'x' || s[2] == 'X')) {
		r->lo = (s[0] - '0') * 100;
		r->hi = r->lo + 99;
		return USHER_OK;
	}
	if (len != 3)
		return USHER_ERR_INVALID;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return USHER_ERR_INVALID;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 100 || v > 599)
		return USHER_ERR_INVALID;
	r->lo = r->hi = v;
	return USHER_OK;
}

static enum usher_err parse_status_codes(struct usher_cfgctx *ctx, const struct usher_ynode *n,
					 void *field)
{
	struct usher_http_status_codes *sc = field;
	const struct usher_ynode *const *items = (const struct usher_ynode *const *)n->items;
	enum usher_err rc = USHER_OK;
	size_t i, count = n->n;
	char q[SHOW_MAX + 16];

	if (n->kind == USHER_Y_SCALAR) {
		items = &n;
		count = 1;
	} else if (n->kind != USHER_Y_SEQ) {
		return usher_cfg_error(ctx, n,
				       "valid_status_codes: expected a list of status codes, "
				       "got a %s",
				       usher_ynode_kind_name(n->kind));
	}
	sc->n = 0;
	sc->v = usher_arena_alloc(ctx->arena, (count ? count : 1) * sizeof(*sc->v));
	for (i = 0; i < count; i++) {
		const struct usher_ynode *it = items[i];

		if (it->kind != USHER_Y_SCALAR || parse_status_one(it->value, &sc->v[sc->n])) {
			rc = usher_cfg_error(
			    ctx, it,
			    "invalid status code %s: want a number from 100 to 599 "
			    "or a class like \"2xx\"",
			    it->kind == USHER_Y_SCALAR ? shows(q, sizeof(q), it->value)
						       : usher_ynode_kind_name(it->kind));
			continue;
		}
		sc->n++;
	}
	return rc;
}

static enum usher_err parse_ip_protocol(struct usher_cfgctx *ctx, const struct usher_ynode *n,
					void *field)
{
	char q[SHOW_MAX + 16];

	if (n->kind == USHER_Y_SCALAR && strcmp(n->value, "ip4") == 0)
		*(int *)field = 4;
	else if (n->kind == USHER_Y_SCALAR && strcmp(n->value, "ip6") == 0)
		*(int *)field = 6;
	else
		return usher_cfg_error(ctx, n, "ip_protocol: %s is not one of ip4, ip6",
				       n->kind == USHER_Y_SCALAR ? shows(q, sizeof(q), n->value)
								 : usher_ynode_kind_name(n->kind));
	return USHER_OK;
}

static const char *const json_type_names[] = {
    [USHER_HTTP_JSON_ANY] = "any",         [USHER_HTTP_JSON_STRING] = "string",
    [USHER_HTTP_JSON_NUMBER] = "number",   [USHER_HTTP_JSON_INTEGER] = "integer",
    [USHER_HTTP_JSON_BOOLEAN] = "boolean", [USHER_HTTP_JSON_OBJECT] = "object",
    [USHER_HTTP_JSON_ARRAY] = "array",     [USHER_HTTP_JSON_NULL] = "null",
};

static enum usher_err parse_json_type(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				      void *field)
{
	char q[SHOW_MAX + 16];
	size_t i;

	if (n->kind == USHER_Y_SCALAR)
		for (i = USHER_HTTP_JSON_STRING; i <= USHER_HTTP_JSON_NULL; i++)
			if (strcmp(n->value, json_type_names[i]) == 0) {
				*(enum usher_http_json_type *)field = (enum usher_http_json_type)i;
				return USHER_OK;
			}
	return usher_cfg_error(ctx, n,
			       "type: %s is not one of string, number, integer, boolean, object, "
			       "array, null",
			       n->kind == USHER_Y_SCALAR ? shows(q, sizeof(q), n->value)
							 : usher_ynode_kind_name(n->kind));
}

static enum usher_err parse_tristate(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				     void *field)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes", "on"};
	static const char *const no[] = {"false", "False", "FALSE", "no", "off"};
	char q[SHOW_MAX + 16];
	size_t i;

	for (i = 0; n->kind == USHER_Y_SCALAR && i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(n->value, yes[i]) == 0) {
			*(enum usher_http_tristate *)field = USHER_HTTP_YES;
			return USHER_OK;
		}
		if (strcmp(n->value, no[i]) == 0) {
			*(enum usher_http_tristate *)field = USHER_HTTP_NO;
			return USHER_OK;
		}
	}
	return usher_cfg_error(ctx, n, "exists: expected true or false, got %s",
			       n->kind == USHER_Y_SCALAR ? shows(q, sizeof(q), n->value)
							 : usher_ynode_kind_name(n->kind));
}

static bool digits(const char *s, const char *set)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr(set, *s))
			return false;
	return true;
}

/* YAML 1.2 core schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_yaml_float(const char *s)
{
	bool mant = false;

	if (*s == '-' || *s == '+')
		s++;
	while (*s >= '0' && *s <= '9') {
		s++;
		mant = true;
	}
	if (*s == '.') {
		s++;
		while (*s >= '0' && *s <= '9') {
			s++;
			mant = true;
		}
	}
	if (!mant)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

/* Resolves a plain scalar's type per the YAML 1.2 core schema. */
static void resolve_plain(const char *s, struct usher_http_scalar *v)
{
	const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
	char *end;

	v->text = s;
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
		v->kind = USHER_HTTP_SCALAR_BOOL;
		v->b = true;
		return;
	}
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
		v->kind = USHER_HTTP_SCALAR_BOOL;
		v->b = false;
		return;
	}
	if (digits(d, "0123456789") ||
	    (strncmp(s, "0x", 2) == 0 && digits(s + 2, "0123456789abcdefABCDEF")) ||
	    (strncmp(s, "0o", 2) == 0 && digits(s + 2, "01234567"))) {
		long long i;
		int base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 10;

		errno = 0;
		i = strtoll(base == 10 ? s : s + 2, &end, base);
		if (!errno) {
			v->kind = USHER_HTTP_SCALAR_INT;
			v->i = i;
			v->d = (double)i;
			return;
		}
		/* too big for 64 bits: still a number */
		v->kind = USHER_HTTP_SCALAR_FLOAT;
		v->d = strtod(s, &end);
		return;
	}
	if (is_yaml_float(s)) {
		v->kind = USHER_HTTP_SCALAR_FLOAT;
		v->d = strtod(s, &end);
		return;
	}
	if (!strcmp(d, ".inf") || !strcmp(d, ".Inf") || !strcmp(d, ".INF")) {
		v->kind = USHER_HTTP_SCALAR_FLOAT;
		v->d = *s == '-' ? -INFINITY : INFINITY;
		return;
	}
	v->kind = USHER_HTTP_SCALAR_STRING;
}

static enum usher_err parse_equals(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				   void *field)
{
	struct usher_http_scalar *v = field;

	if (n->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, n,
				       "equals: expected a string, number, boolean or null, "
				       "got a %s",
				       usher_ynode_kind_name(n->kind));
	memset(v, 0, sizeof(*v));
	if (!n->plain) {
		v->kind = USHER_HTTP_SCALAR_STRING;
		v->text = n->value;
		return USHER_OK;
	}
	if (!strcmp(n->value, ".nan") || !strcmp(n->value, ".NaN") || !strcmp(n->value, ".NAN"))
		return usher_cfg_error(ctx, n,
				       "equals: .nan never equals anything; use type: number");
	resolve_plain(n->value, v);
	return USHER_OK;
}

enum usher_err usher_http_parse_pointer(struct usher_cfgctx *ctx, const struct usher_ynode *n,
					void *field)
{
	struct usher_error err;
	char q[SHOW_MAX + 16];

	if (n->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, n,
				       "pointer: expected a JSON Pointer like /status, got a "
				       "%s",
				       usher_ynode_kind_name(n->kind));
	usher_error_clear(&err);
	if (usher_jsonptr_check(n->value, &err))
		return usher_cfg_error(ctx, n, "invalid JSON Pointer %s: %s",
				       shows(q, sizeof(q), n->value), err.msg);
	*(const char **)field = n->value;
	return USHER_OK;
}

/* ---- option tables ------------------------------------------------------ */

#define BA_OFF(f) offsetof(struct usher_http_basic_auth, f)
static const struct usher_option basic_auth_options[] = {
    {.key = "username", .type = USHER_OPT_STR, .offset = BA_OFF(username), .help = "user name"},
    {.key = "password",
     .type = USHER_OPT_SECRET,
     .offset = BA_OFF(password),
     .help = "password, best as ${env:NAME} or ${file:/path}"},
    USHER_OPT_END,
};

#define HM_OFF(f) offsetof(struct usher_http_header_match, f)
static const struct usher_option header_match_options[] = {
    {.key = "header",
     .type = USHER_OPT_STR,
     .offset = HM_OFF(header),
     .flags = USHER_OPT_REQUIRED,
     .help = "header name, any case"},
    {.key = "regexp",
     .type = USHER_OPT_CUSTOM,
     .offset = HM_OFF(regexp),
     .flags = USHER_OPT_REQUIRED,
     .parse = usher_http_parse_regex,
     .help = "regular expression (PCRE2, unanchored) tried on each value"},
    {.key = "allow_missing",
     .type = USHER_OPT_BOOL,
     .offset = HM_OFF(allow_missing),
     .def = "false",
     .help = "pass when the header is absent"},
    USHER_OPT_END,
};

#define JA_OFF(f) offsetof(struct usher_http_json_assert, f)
static const struct usher_option json_options[] = {
    {.key = "pointer",
     .type = USHER_OPT_CUSTOM,
     .offset = JA_OFF(pointer),
     .flags = USHER_OPT_REQUIRED,
     .parse = usher_http_parse_pointer,
     .help = "JSON Pointer (RFC 6901) to the value: /status, /items/0/id, \"\" for all"},
    {.key = "equals",
     .type = USHER_OPT_CUSTOM,
     .offset = JA_OFF(equals),
     .parse = parse_equals,
     .help = "the value equals this string, number, boolean or null (\"3\" is a string)"},
    {.key = "type",
     .type = USHER_OPT_CUSTOM,
     .offset = JA_OFF(type),
     .parse = parse_json_type,
     .help = "string, number, integer, boolean, object, array or null"},
    {.key = "exists",
     .type = USHER_OPT_CUSTOM,
     .offset = JA_OFF(exists),
     .parse = parse_tristate,
     .help = "true: the value must be there; false: it must not"},
    {.key = "matches",
     .type = USHER_OPT_CUSTOM,
     .offset = JA_OFF(matches),
     .parse = usher_http_parse_regex,
     .help = "the value is a string matching this regular expression"},
    USHER_OPT_END,
};

#define HO_OFF(f) offsetof(struct usher_http_opts, f)
const struct usher_option usher_http_options[] = {
    {.key = "url",
     .type = USHER_OPT_STR,
     .offset = HO_OFF(url),
     .flags = USHER_OPT_REQUIRED,
     .help = "http:// or https:// URL to request"},
    {.key = "method",
     .type = USHER_OPT_STR,
     .offset = HO_OFF(method),
     .def = "GET",
     .help = "request method"},
    {.key = "headers",
     .type = USHER_OPT_SECRETMAP,
     .offset = HO_OFF(headers),
     .help = "request headers; values may be ${env:NAME} or ${file:/path}"},
    {.key = "body", .type = USHER_OPT_STR, .offset = HO_OFF(body), .help = "request body"},
    {.key = "follow_redirects",
     .type = USHER_OPT_BOOL,
     .offset = HO_OFF(follow_redirects),
     .def = "true",
     .help = "follow up to 10 redirects"},
    {.key = "valid_status_codes",
     .type = USHER_OPT_CUSTOM,
     .offset = HO_OFF(valid_status_codes),
     .parse = parse_status_codes,
     .help = "status codes or classes (\"2xx\") that count as success; default 2xx"},
    {.key = "fail_if_body_matches_regexp",
     .type = USHER_OPT_CUSTOM,
     .offset = HO_OFF(fail_if_body_matches_regexp),
     .parse = parse_regex_list,
     .help = "fail when the body matches any of these regular expressions"},
    {.key = "fail_if_body_not_matches_regexp",
     .type = USHER_OPT_CUSTOM,
     .offset = HO_OFF(fail_if_body_not_matches_regexp),
     .parse = parse_regex_list,
     .help = "fail unless the body matches every one of these regular expressions"},
    {.key = "fail_if_header_matches",
     .type = USHER_OPT_LIST,
     .offset = HO_OFF(fail_if_header_matches),
     .sub = header_match_options,
     .sub_size = sizeof(struct usher_http_header_match),
     .help = "fail when a value of the header matches (or the header is missing)"},
    {.key = "fail_if_header_not_matches",
     .type = USHER_OPT_LIST,
     .offset = HO_OFF(fail_if_header_not_matches),
     .sub = header_match_options,
     .sub_size = sizeof(struct usher_http_header_match),
     .help = "fail unless a value of the header matches"},
    {.key = "json",
     .type = USHER_OPT_LIST,
     .offset = HO_OFF(json),
     .sub = json_options,
     .sub_size = sizeof(struct usher_http_json_assert),
     .help = "assertions on the JSON body, each a pointer and what must hold for it"},
    {.key = "tls",
     .type = USHER_OPT_SECTION,
     .offset = HO_OFF(tls),
     .sub = usher_tls_client_options,
     .help = "TLS client settings"},
    {.key = "basic_auth",
     .type = USHER_OPT_SECTION,
     .offset = HO_OFF(basic_auth),
     .sub = basic_auth_options,
     .help = "HTTP basic authentication"},
    {.key = "bearer_token",
     .type = USHER_OPT_SECRET,
     .offset = HO_OFF(bearer_token),
     .help = "sent as Authorization: Bearer; best as ${env:NAME} or ${file:/path}"},
    {.key = "body_size_limit",
     .type = USHER_OPT_SIZE,
     .offset = HO_OFF(body_size_limit),
     .def = "10MiB",
     .flags = USHER_OPT_POSITIVE,
     .help = "fail (body_too_large) when the uncompressed body is longer"},
    {.key = "ip_protocol",
     .type = USHER_OPT_CUSTOM,
     .offset = HO_OFF(ip_protocol),
     .parse = parse_ip_protocol,
     .help = "ip4 or ip6: the address family tried first (ip4)"},
    {.key = "ip_protocol_fallback",
     .type = USHER_OPT_BOOL,
     .offset = HO_OFF(ip_protocol_fallback),
     .def = "true",
     .help = "try the other family when the host has no address in the first"},
    USHER_OPT_END,
};

/* ---- cross-option checks ------------------------------------------------ */

/* The node of item i of the list under key, or a fallback to point at. */
static const struct usher_ynode *item_node(const struct usher_ynode *map, const char *key, size_t i)
{
	const struct usher_ynode *l = usher_ynode_get(map, key);

	if (l && l->kind == USHER_Y_SEQ && i < l->n)
		return l->items[i];
	return l ? l : map;
}

static const struct usher_ynode *at(const struct usher_ynode *map, const char *key)
{
	const struct usher_ynode *n = usher_ynode_get(map, key);

	return n ? n : map;
}

static enum usher_err check_url(struct usher_cfgctx *ctx, const char *url,
				const struct usher_ynode *node)
{
	const char *shown = redact(ctx->arena, url);
	char q[SHOW_MAX + 16], *host = NULL;
	enum usher_err rc = USHER_OK;
	CURLUcode uc;
	CURLU *u;

	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
		return usher_cfg_error(ctx, node, "url %s: must start with http:// or https://",
				       shows(q, sizeof(q), shown));
	u = curl_url();
	if (!u)
		return usher_cfg_error(ctx, node, "url: out of memory");
	uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
	if (uc != CURLUE_OK || !host || !*host) {
#if LIBCURL_VERSION_NUM >= 0x075000
		const char *why = uc != CURLUE_OK ? curl_url_strerror(uc) : "no host";
#else
		const char *why = "not a valid URL";
#endif
		char lower[128];

		snprintf(lower, sizeof(lower), "%s", why);
		lower_first(lower);
		rc = usher_cfg_error(ctx, node, "url %s: %s", shows(q, sizeof(q), shown), lower);
	}
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

static enum usher_err check_readable(struct usher_cfgctx *ctx, const struct usher_ynode *tls,
				     const char *key, const char *path)
{
	if (!path || access(path, R_OK) == 0)
		return USHER_OK;
	return usher_cfg_error(ctx, at(tls, key), "tls.%s: cannot read %s: %s", key, path,
			       strerror(errno));
}

static enum usher_err check_json(struct usher_cfgctx *ctx, struct usher_http_opts *o,
				 const struct usher_ynode *map)
{
	struct usher_http_json_assert *v = o->json.v;
	enum usher_err rc = USHER_OK;
	size_t i;

	for (i = 0; i < o->json.n; i++) {
		struct usher_http_json_assert *a = &v[i];
		const struct usher_ynode *item = item_node(map, "json", i);
		const struct usher_ynode *eq = usher_ynode_get(item, "equals");

		/* the table reads `equals: null` as absent */
		if (eq && eq->kind == USHER_Y_SCALAR && usher_ynode_is_null(eq)) {
			a->equals.kind = USHER_HTTP_SCALAR_NULL;
			a->equals.text = "null";
		}
		if (!a->equals.kind && !a->type && !a->exists && !a->matches) {
			rc = usher_cfg_error(ctx, item,
					     "json: %s needs at least one of equals, type, exists, "
					     "matches",
					     *a->pointer ? a->pointer : "\"\"");
			continue;
		}
		if (a->exists == USHER_HTTP_NO && (a->equals.kind || a->type || a->matches))
			rc = usher_cfg_error(ctx, at(item, "exists"),
					     "json: exists: false cannot go with equals, type or "
					     "matches");
		else if (a->matches && a->type && a->type != USHER_HTTP_JSON_STRING)
			rc = usher_cfg_error(ctx, at(item, "matches"),
					     "json: matches needs a string, but type is %s",
					     json_type_names[a->type]);
	}
	return rc;
}

enum usher_err usher_http_opts_check(struct usher_cfgctx *ctx, struct usher_http_opts *o,
				     const struct usher_ynode *map)
{
	const struct usher_ynode *tls = usher_ynode_get(map, "tls");
	const struct usher_ynode *headers = usher_ynode_get(map, "headers");
	bool head = o->method && strcmp(o->method, "HEAD") == 0;
	enum usher_err rc = USHER_OK;
	char q[SHOW_MAX + 16];
	size_t i;

	if (o->url && check_url(ctx, o->url, at(map, "url")))
		rc = USHER_ERR_INVALID;
	if (o->method && !usher_http_is_token(o->method))
		rc = usher_cfg_error(ctx, at(map, "method"), "method %s is not a valid HTTP method",
				     shows(q, sizeof(q), o->method));
	for (i = 0; i < o->headers.n; i++) {
		const struct usher_kv *h = &o->headers.v[i];
		const struct usher_ynode *k =
		    headers && headers->kind == USHER_Y_MAP && i < headers->n
			? headers->pairs[i].key
			: at(map, "headers");

		if (!usher_http_is_token(h->key))
			rc = usher_cfg_error(ctx, k, "headers: invalid header name %s",
					     shows(q, sizeof(q), h->key));
		else if (strpbrk(h->value, "\r\n"))
			/* the value may be a secret: never shown */
			rc = usher_cfg_error(
			    ctx, k, "headers: the value of %s contains a line break", h->key);
	}
	if (head && o->body && *o->body)
		rc = usher_cfg_error(ctx, at(map, "body"), "method HEAD cannot send a body");
	if (head && (o->json.n || o->fail_if_body_not_matches_regexp.n))
		rc = usher_cfg_error(
		    ctx, at(map, o->json.n ? "json" : "fail_if_body_not_matches_regexp"),
		    "method HEAD gets no body, so this can never pass");
	if (o->bearer_token && o->basic_auth.username)
		rc = usher_cfg_error(ctx, at(map, "bearer_token"),
				     "set basic_auth or bearer_token, not both");
	if (o->basic_auth.password && !o->basic_auth.username)
		rc = usher_cfg_error(ctx, at(map, "basic_auth"),
				     "basic_auth: password needs a username");
	if (o->tls.key_file && !o->tls.cert_file)
		rc = usher_cfg_error(ctx, at(tls, "key_file"), "tls: key_file needs cert_file");
	if (check_readable(ctx, tls, "ca_file", o->tls.ca_file) ||
	    check_readable(ctx, tls, "cert_file", o->tls.cert_file) ||
	    check_readable(ctx, tls, "key_file", o->tls.key_file))
		rc = USHER_ERR_INVALID;
	if (check_json(ctx, o, map))
		rc = USHER_ERR_INVALID;
	return rc;
}

const char *usher_http_instance(struct usher_arena *a, const char *url)
{
	char *host = NULL, *port = NULL;
	const char *res = NULL;
	CURLU *u = curl_url();

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
		res = usher_arena_printf(a, "%s:%s", host, port);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return res ? res : redact(a, url);
}

/* ---- compiled assertions ------------------------------------------------ */

struct usher_http_checks {
	const struct usher_http_opts *o;
	pcre2_match_context *mctx;
	pcre2_code **body_match;     /* o->fail_if_body_matches_regexp.n */
	pcre2_code **body_not_match; /* o->fail_if_body_not_matches_regexp.n */
	pcre2_code **hdr_match;      /* o->fail_if_header_matches.n */
	pcre2_code **hdr_not_match;  /* o->fail_if_header_not_matches.n */
	pcre2_code **json_match;     /* o->json.n, NULL where no matches */
};

static enum usher_err compile_into(pcre2_code **slot, const char *pattern, struct usher_error *err)
{
	char msg[300], q[SHOW_MAX + 16];

	*slot = regex_compile(pattern, msg, sizeof(msg));
	if (!*slot)
		return usher_fail(err, USHER_ERR_INVALID, "invalid regexp %s: %s",
				  shows(q, sizeof(q), pattern), msg);
	return USHER_OK;
}

enum usher_err usher_http_checks_new(const struct usher_http_opts *o,
				     struct usher_http_checks **out, struct usher_error *err)
{
	const struct usher_http_header_match *hm = o->fail_if_header_matches.v;
	const struct usher_http_header_match *hn = o->fail_if_header_not_matches.v;
	const struct usher_http_json_assert *ja = o->json.v;
	struct usher_http_checks *c = usher_calloc(1, sizeof(*c));
	enum usher_err rc = USHER_OK;
	size_t i;

	*out = NULL;
	c->o = o;
	c->body_match = usher_calloc(o->fail_if_body_matches_regexp.n + 1, sizeof(pcre2_code *));
	c->body_not_match =
	    usher_calloc(o->fail_if_body_not_matches_regexp.n + 1, sizeof(pcre2_code *));
	c->hdr_match = usher_calloc(o->fail_if_header_matches.n + 1, sizeof(pcre2_code *));
	c->hdr_not_match = usher_calloc(o->fail_if_header_not_matches.n + 1, sizeof(pcre2_code *));
	c->json_match = usher_calloc(o->json.n + 1, sizeof(pcre2_code *));
	c->mctx = match_context_new();
	if (!c->mctx) {
		rc = usher_fail(err, USHER_ERR_NOMEM, "cannot allocate a regex match context");
		goto out;
	}
	for (i = 0; !rc && i < o->fail_if_body_matches_regexp.n; i++)
		rc = compile_into(&c->body_match[i], o->fail_if_body_matches_regexp.v[i], err);
	for (i = 0; !rc && i < o->fail_if_body_not_matches_regexp.n; i++)
		rc = compile_into(&c->body_not_match[i], o->fail_if_body_not_matches_regexp.v[i],
				  err);
	for (i = 0; !rc && i < o->fail_if_header_matches.n; i++)
		rc = compile_into(&c->hdr_match[i], hm[i].regexp, err);
	for (i = 0; !rc && i < o->fail_if_header_not_matches.n; i++)
		rc = compile_into(&c->hdr_not_match[i], hn[i].regexp, err);
	for (i = 0; !rc && i < o->json.n; i++)
		if (ja[i].matches)
			rc = compile_into(&c->json_match[i], ja[i].matches, err);
out:
	if (rc) {
		usher_http_checks_free(c);
		return rc;
	}
	*out = c;
	return USHER_OK;
}

static void free_codes(pcre2_code **v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++)
		pcre2_code_free(v[i]);
	free(v);
}

void usher_http_checks_free(struct usher_http_checks *c)
{
	if (!c)
		return;
	free_codes(c->body_match, c->o->fail_if_body_matches_regexp.n);
	free_codes(c->body_not_match, c->o->fail_if_body_not_matches_regexp.n);
	free_codes(c->hdr_match, c->o->fail_if_header_matches.n);
	free_codes(c->hdr_not_match, c->o->fail_if_header_not_matches.n);
	free_codes(c->json_match, c->o->json.n);
	pcre2_match_context_free(c->mctx);
	free(c);
}

bool usher_http_checks_need_body(const struct usher_http_checks *c)
{
	return c && (c->o->fail_if_body_matches_regexp.n ||
		     c->o->fail_if_body_not_matches_regexp.n || c->o->json.n);
}

bool usher_http_checks_need_headers(const struct usher_http_checks *c)
{
	return c && (c->o->fail_if_header_matches.n || c->o->fail_if_header_not_matches.n);
}

/* 1 on a match, 0 on none, a negative PCRE2 error when the match could not
 * be decided (a resource limit). */
static int regex_match(const struct usher_http_checks *c, const pcre2_code *re, const char *s,
		       size_t n)
{
	int rc = regex_exec(re, c->mctx, s, n, NULL);

	if (rc >= 0)
		return 1;
	return rc == PCRE2_ERROR_NOMATCH ? 0 : rc;
}

static void fail_match_error(struct usher_probe_run *run, const char *reason, const char *what,
			     const char *pattern, int code)
{
	PCRE2_UCHAR text[256];
	char q[SHOW_MAX + 16];

	pcre2_get_error_message(code, text, sizeof(text));
	usher_probe_fail(run, reason, "%s: regexp %s could not be evaluated: %s", what,
			 shows(q, sizeof(q), pattern), (const char *)text);
}

/* ---- status ------------------------------------------------------------- */

static void format_codes(const struct usher_http_status_codes *sc, char *out, size_t len)
{
	size_t i, o = 0;

	if (!sc->n) {
		snprintf(out, len, "[2xx]");
		return;
	}
	o += (size_t)snprintf(out + o, len - o, "[");
	for (i = 0; i < sc->n && o < len; i++) {
		const struct usher_http_status_range *r = &sc->v[i];

		if (r->lo == r->hi)
			o += (size_t)snprintf(out + o, len - o, "%s%d", i ? ", " : "", r->lo);
		else
			o += (size_t)snprintf(out + o, len - o, "%s%dxx", i ? ", " : "",
					      r->lo / 100);
	}
	if (o < len)
		snprintf(out + o, len - o, "]");
}

bool usher_http_assert_status(const struct usher_http_opts *o, long status,
			      struct usher_probe_run *run, const char *what)
{
	const struct usher_http_status_codes *sc = &o->valid_status_codes;
	char codes[256];
	size_t i;

	if (!sc->n && status >= 200 && status <= 299)
		return true;
	for (i = 0; i < sc->n; i++)
		if (status >= sc->v[i].lo && status <= sc->v[i].hi)
			return true;
	format_codes(sc, codes, sizeof(codes));
	usher_probe_fail(run, USHER_FAIL_STATUS, "%s: status %ld not in valid_status_codes %s",
			 what, status, codes);
	return false;
}

/* ---- headers ------------------------------------------------------------ */

bool usher_http_header_next(const char *head, size_t len, size_t *pos, const char *name,
			    const char **v, size_t *vn)
{
	size_t nlen = strlen(name);

	while (*pos < len) {
		const char *line = head + *pos;
		const char *nl = memchr(line, '\n', len - *pos);
		size_t llen = nl ? (size_t)(nl - line) : len - *pos;
		const char *s, *e;

		*pos += llen + (nl ? 1 : 0);
		if (llen <= nlen || line[nlen] != ':' || strncasecmp(line, name, nlen) != 0)
			continue;
		s = line + nlen + 1;
		e = line + llen;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			e--;
		*v = s;
		*vn = (size_t)(e - s);
		return true;
	}
	return false;
}

/* One header rule: 1 passes, 0 fails (recorded). */
static bool header_rule(const struct usher_http_checks *c, const struct usher_http_header_match *m,
			const pcre2_code *re, bool want_match, const char *head, size_t len,
			struct usher_probe_run *run, const char *what)
{
	char qh[SHOW_MAX + 16], qr[SHOW_MAX + 16], qv[SHOW_MAX + 16];
	size_t pos = 0, vn = 0, count = 0;
	const char *v = NULL;

	while (usher_http_header_next(head, len, &pos, m->header, &v, &vn)) {
		int r = regex_match(c, re, v, vn);

		count++;
		if (r < 0) {
			fail_match_error(run, USHER_FAIL_HEADER, what, m->regexp, r);
			return false;
		}
		if (r && !want_match) {
			usher_probe_fail(
			    run, USHER_FAIL_HEADER, "%s: header %s value %s matches regexp %s",
			    what, shows(qh, sizeof(qh), m->header), show(qv, sizeof(qv), v, vn),
			    shows(qr, sizeof(qr), m->regexp));
			return false;
		}
		if (r && want_match)
			return true;
	}
	if (!count) {
		if (m->allow_missing)
			return true;
		usher_probe_fail(run, USHER_FAIL_HEADER, "%s: header %s is missing", what,
				 shows(qh, sizeof(qh), m->header));
		return false;
	}
	if (want_match) {
		usher_probe_fail(run, USHER_FAIL_HEADER,
				 "%s: header %s has no value matching regexp %s (%zu value%s)",
				 what, shows(qh, sizeof(qh), m->header),
				 shows(qr, sizeof(qr), m->regexp), count, count == 1 ? "" : "s");
		return false;
	}
	return true;
}

bool usher_http_assert_headers(const struct usher_http_checks *c, const char *head, size_t len,
			       struct usher_probe_run *run, const char *what)
{
	const struct usher_http_header_match *hm = c->o->fail_if_header_matches.v;
	const struct usher_http_header_match *hn = c->o->fail_if_header_not_matches.v;
	size_t i;

	for (i = 0; i < c->o->fail_if_header_matches.n; i++)
		if (!header_rule(c, &hm[i], c->hdr_match[i], false, head, len, run, what))
			return false;
	for (i = 0; i < c->o->fail_if_header_not_matches.n; i++)
		if (!header_rule(c, &hn[i], c->hdr_not_match[i], true, head, len, run, what))
			return false;
	return true;
}

/* ---- body --------------------------------------------------------------- */

bool usher_http_assert_body(const struct usher_http_checks *c, const char *body, size_t len,
			    struct usher_probe_run *run, const char *what)
{
	const struct usher_strlist *m = &c->o->fail_if_body_matches_regexp;
	const struct usher_strlist *nm = &c->o->fail_if_body_not_matches_regexp;
	char q[SHOW_MAX + 16];
	size_t i;
	int r;

	for (i = 0; i < m->n; i++) {
		r = regex_match(c, c->body_match[i], body, len);
		if (r < 0) {
			fail_match_error(run, USHER_FAIL_REGEX, what, m->v[i], r);
			return false;
		}
		if (r) {
			usher_probe_fail(run, USHER_FAIL_REGEX, "%s: body matches regexp %s", what,
					 shows(q, sizeof(q), m->v[i]));
			return false;
		}
	}
	for (i = 0; i < nm->n; i++) {
		r = regex_match(c, c->body_not_match[i], body, len);
		if (r < 0) {
			fail_match_error(run, USHER_FAIL_REGEX, what, nm->v[i], r);
			return false;
		}
		if (!r) {
			usher_probe_fail(run, USHER_FAIL_REGEX, "%s: body does not match regexp %s",
					 what, shows(q, sizeof(q), nm->v[i]));
			return false;
		}
	}
	return true;
}

/* ---- json --------------------------------------------------------------- */

static bool type_is(const json_t *v, enum usher_http_json_type t)
{
	double d;

	switch (t) {
	case USHER_HTTP_JSON_ANY: return true;
	case USHER_HTTP_JSON_STRING: return json_is_string(v);
	case USHER_HTTP_JSON_NUMBER: return json_is_number(v);
	case USHER_HTTP_JSON_INTEGER:
		if (json_is_integer(v))
			return true;
		d = json_is_real(v) ? json_real_value(v) : NAN;
		return isfinite(d) && floor(d) == d;
	case USHER_HTTP_JSON_BOOLEAN: return json_is_boolean(v);
	case USHER_HTTP_JSON_OBJECT: return json_is_object(v);
	case USHER_HTTP_JSON_ARRAY: return json_is_array(v);
	case USHER_HTTP_JSON_NULL: return json_is_null(v);
	}
	return false;
}

static bool scalar_equals(const struct usher_http_scalar *want, const json_t *got)
{
	switch (want->kind) {
	case USHER_HTTP_SCALAR_UNSET: return true;
	case USHER_HTTP_SCALAR_NULL: return json_is_null(got);
	case USHER_HTTP_SCALAR_BOOL: return json_is_boolean(got) && json_is_true(got) == want->b;
	case USHER_HTTP_SCALAR_INT:
		if (json_is_integer(got))
			return json_integer_value(got) == want->i;
		return json_is_real(got) && json_real_value(got) == want->d;
	case USHER_HTTP_SCALAR_FLOAT:
		return json_is_number(got) && json_number_value(got) == want->d;
	case USHER_HTTP_SCALAR_STRING:
		return json_is_string(got) && json_string_length(got) == strlen(want->text) &&
		       memcmp(json_string_value(got), want->text, json_string_length(got)) == 0;
	}
	return false;
}

/* A short rendering of a JSON value for messages: scalars as JSON, and
 * containers by their type. */
static const char *show_json(char *out, size_t len, const json_t *v)
{
	char *dump;

	if (json_is_object(v) || json_is_array(v)) {
		snprintf(out, len, "an %s", usher_jsonptr_typename(v));
		return out;
	}
	if (json_is_string(v))
		return show(out, len, json_string_value(v), json_string_length(v));
	if (json_is_integer(v)) {
		snprintf(out, len, "%lld", (long long)json_integer_value(v));
		return out;
	}
	/* shortest form: 3.14 rather than jansson's 3.1400000000000001 */
	if (json_is_real(v) && len >= 32) {
		usher_expo_format_value(json_real_value(v), out, len);
		return out;
	}
	dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	snprintf(out, len, "%s", dump ? dump : "?");
	free(dump);
	return out;
}

static const char *show_scalar(char *out, size_t len, const struct usher_http_scalar *s)
{
	if (s->kind == USHER_HTTP_SCALAR_STRING)
		return shows(out, len, s->text);
	snprintf(out, len, "%s", s->text ? s->text : "null");
	return out;
}

static json_t *load_body(const char *body, size_t len, json_error_t *jerr)
{
	json_t *doc = json_loadb(body ? body : "", len, JSON_DECODE_ANY | JSON_ALLOW_NUL, jerr);

	/* an integer past 64 bits is still a number to us */
	if (!doc && json_error_code(jerr) == json_error_numeric_overflow)
		doc = json_loadb(body, len,
				 JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, jerr);
	return doc;
}

/* One entry against doc: true when it holds, else the failure is recorded. */
static bool json_rule(const struct usher_http_checks *c, size_t i, const json_t *doc,
		      struct usher_probe_run *run, const char *what)
{
	const struct usher_http_json_assert *a =
	    &((const struct usher_http_json_assert *)c->o->json.v)[i];
	char qg[SHOW_MAX + 16], qw[SHOW_MAX + 16];
	const char *p = *a->pointer ? a->pointer : "\"\"";
	struct usher_error err;
	json_t *v = NULL;
	enum usher_err rc;
	int r;

	usher_error_clear(&err);
	rc = usher_jsonptr_get(doc, a->pointer, &v, &err);
	if (rc == USHER_ERR_INVALID) {
		usher_probe_fail(run, USHER_FAIL_JSON, "%s: json %s: %s", what, p, err.msg);
		return false;
	}
	if (rc) {
		if (a->exists == USHER_HTTP_NO)
			return true;
		usher_probe_fail(run, USHER_FAIL_JSON, "%s: json %s: not found (%s)", what, p,
				 err.msg);
		return false;
	}
	if (a->exists == USHER_HTTP_NO) {
		usher_probe_fail(run, USHER_FAIL_JSON,
				 "%s: json %s: present but should not be (%s)", what, p,
				 show_json(qg, sizeof(qg), v));
		return false;
	}
	if (a->type && !type_is(v, a->type)) {
		usher_probe_fail(run, USHER_FAIL_JSON, "%s: json %s: got %s (%s), want type %s",
				 what, p, show_json(qg, sizeof(qg), v), usher_jsonptr_typename(v),
				 json_type_names[a->type]);
		return false;
	}
	if (a->equals.kind && !scalar_equals(&a->equals, v)) {
		usher_probe_fail(run, USHER_FAIL_JSON, "%s: json %s: got %s, want %s", what, p,
				 show_json(qg, sizeof(qg), v),
				 show_scalar(qw, sizeof(qw), &a->equals));
		return false;
	}
	if (a->matches) {
		if (!json_is_string(v)) {
			usher_probe_fail(run, USHER_FAIL_JSON,
					 "%s: json %s: got %s (%s), matches needs a string", what,
					 p, show_json(qg, sizeof(qg), v),
					 usher_jsonptr_typename(v));
			return false;
		}
		r = regex_match(c, c->json_match[i], json_string_value(v), json_string_length(v));
		if (r < 0) {
			fail_match_error(run, USHER_FAIL_JSON, what, a->matches, r);
			return false;
		}
		if (!r) {
			usher_probe_fail(
			    run, USHER_FAIL_JSON, "%s: json %s: %s does not match regexp %s", what,
			    p, show_json(qg, sizeof(qg), v), shows(qw, sizeof(qw), a->matches));
			return false;
		}
	}
	return true;
}

bool usher_http_assert_json(const struct usher_http_checks *c, const char *body, size_t len,
			    struct usher_probe_run *run, const char *what)
{
	json_error_t jerr;
	json_t *doc;
	bool ok = true;
	size_t i;

	if (!c->o->json.n)
		return true;
	if (!len) {
		usher_probe_fail(run, USHER_FAIL_JSON, "%s: body is empty, not json", what);
		return false;
	}
	doc = load_body(body, len, &jerr);
	if (!doc) {
		usher_probe_fail(run, USHER_FAIL_JSON,
				 "%s: body is not json: %s at line %d column %d", what, jerr.text,
				 jerr.line, jerr.column);
		return false;
	}
	for (i = 0; ok && i < c->o->json.n; i++)
		ok = json_rule(c, i, doc, run, what);
	json_decref(doc);
	return ok;
}

/* ---- the exchange ------------------------------------------------------- */

static void read_timers(CURL *e, struct usher_http_timers *t)
{
	memset(t, 0, sizeof(*t));
	curl_easy_getinfo(e, CURLINFO_NAMELOOKUP_TIME_T, &t->nl);
	curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &t->co);
	curl_easy_getinfo(e, CURLINFO_APPCONNECT_TIME_T, &t->ap);
	curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME_T, &t->pre);
	curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &t->st);
}

/* Adds one hop's phases: curl sums each timer over hops, each measured from
 * the hop's start, so the hop's own values are the growth since the last
 * boundary. A timer that did not grow is a stage the hop never reached
 * (and the tls stage of a plain http hop). Returns the hop's longest timer,
 * in microseconds. */
static curl_off_t account_hop(struct usher_http_exchange *ex, const struct usher_http_timers *cur)
{
	const struct usher_http_timers *p = &ex->prev;
	curl_off_t nl = cur->nl - p->nl, co = cur->co - p->co, ap = cur->ap - p->ap;
	curl_off_t pre = cur->pre - p->pre, st = cur->st - p->st, longest = 0;
	double *ph = ex->res.phase_s;

	if (nl > 0)
		ph[USHER_HTTP_PHASE_RESOLVE] += (double)nl / 1e6;
	if (co > 0 && co >= nl)
		ph[USHER_HTTP_PHASE_CONNECT] += (double)(co - nl) / 1e6;
	if (ap > 0 && co > 0 && ap >= co)
		ph[USHER_HTTP_PHASE_TLS] += (double)(ap - co) / 1e6;
	if (st > 0 && pre > 0 && st >= pre)
		ph[USHER_HTTP_PHASE_PROCESSING] += (double)(st - pre) / 1e6;
	longest = nl > co ? nl : co;
	longest = longest > ap ? longest : ap;
	longest = longest > pre ? longest : pre;
	longest = longest > st ? longest : st;
	ex->prev = *cur;
	return longest;
}

static bool asn1_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return false;
	*out = (int64_t)timegm(&tm);
	return true;
}

static bool earliest_expiry(STACK_OF(X509) * chain, int64_t *out)
{
	bool any = false;
	int i;

	for (i = 0; chain && i < sk_X509_num(chain); i++) {
		int64_t t;

		if (asn1_unix(X509_get0_notAfter(sk_X509_value(chain, i)), &t) &&
		    (!any || t < *out)) {
			*out = t;
			any = true;
		}
	}
	return any;
}

/* Go's names, which blackbox_exporter puts in probe_tls_version_info. */
static const char *tls_version_name(const SSL *ssl)
{
	switch (SSL_version(ssl)) {
	case TLS1_VERSION: return "TLS 1.0";
	case TLS1_1_VERSION: return "TLS 1.1";
	case TLS1_2_VERSION: return "TLS 1.2";
	case TLS1_3_VERSION: return "TLS 1.3";
	}
	return SSL_get_version(ssl);
}

/* Reads the TLS facts of the hop that is answering now. This must happen
 * during the transfer: once it ends, curl may close the connection and its
 * SSL object with it. */
static void capture_tls(struct usher_http_exchange *ex)
{
	struct usher_http_result *r = &ex->res;
	struct curl_tlssessioninfo *ti = NULL;
	SSL *ssl;

	r->tls_version = NULL;
	r->has_cert_expiry = false;
	r->has_chain_expiry = false;
	if (curl_easy_getinfo(ex->xfer.easy, CURLINFO_TLS_SSL_PTR, &ti) != CURLE_OK || !ti ||
	    ti->backend != CURLSSLBACKEND_OPENSSL || !ti->internals)
		return;
	ssl = ti->internals;
	r->tls_version = tls_version_name(ssl);
	r->has_cert_expiry = earliest_expiry(SSL_get_peer_cert_chain(ssl), &r->cert_expiry);
	/* blackbox's last chain: only a chain that verified counts */
	if (SSL_get_verify_result(ssl) == X509_V_OK)
		r->has_chain_expiry =
		    earliest_expiry(SSL_get0_verified_chain(ssl), &r->chain_expiry);
}

/* A status line: a new response, of a new hop unless it follows a 1xx. */
static void new_response(struct usher_http_exchange *ex)
{
	struct usher_http_timers cur;

	read_timers(ex->xfer.easy, &cur);
	if (!ex->hops || cur.st != ex->prev.st) {
		if (!ex->hops)
			ex->res.dns_lookup_s = (double)(cur.nl + ex->failed_resolve_us) / 1e6;
		account_hop(ex, &cur);
		capture_tls(ex);
		ex->hops++;
	}
	/* only the final response's headers and body are judged */
	usher_buf_reset(&ex->res.head);
	usher_buf_reset(&ex->res.body);
	ex->res.body_bytes = 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct usher_http_exchange *ex = ud;
	size_t len = size * n;

	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
		new_response(ex);
	if (ex->keep_head && usher_buf_add(&ex->res.head, p, len)) {
		ex->res.head_too_large = true;
		return 0; /* aborts the transfer */
	}
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct usher_http_exchange *ex = ud;
	struct usher_http_result *r = &ex->res;
	size_t len = size * n;

	if (len > ex->opts->body_size_limit - r->body_bytes) {
		r->body_too_large = true;
		return 0; /* aborts the transfer */
	}
	r->body_bytes += len;
	if (ex->keep_body && usher_buf_add(&r->body, p, len)) {
		r->body_too_large = true; /* cannot happen: the same limit */
		return 0;
	}
	return len;
}

static void wipe_slist(struct curl_slist *l)
{
	struct curl_slist *i;

	for (i = l; i; i = i->next)
		if (i->data)
			memset(i->data, 0, strlen(i->data));
	curl_slist_free_all(l);
}

static enum usher_err append(struct curl_slist **l, const char *s, struct usher_error *err)
{
	struct curl_slist *n = curl_slist_append(*l, s);

	if (!n)
		return usher_fail(err, USHER_ERR_NOMEM, "out of memory building the request");
	*l = n;
	return USHER_OK;
}

/* The request headers: the configured ones, then what curl would add that
 * blackbox's Go client does not send (Expect: 100-continue, a form
 * Content-Type), and the Host header when the URL names server_name. */
static enum usher_err build_headers(struct usher_http_exchange *ex, const char *host_header,
				    struct usher_error *err)
{
	const struct usher_http_opts *o = ex->opts;
	bool has_ct = false, has_expect = false, has_host = false;
	enum usher_err rc = USHER_OK;
	struct usher_buf b;
	size_t i;

	usher_buf_init(&b, 64 * 1024);
	for (i = 0; !rc && i < o->headers.n; i++) {
		const struct usher_kv *h = &o->headers.v[i];

		usher_buf_reset(&b);
		/* "Name;" is curl's way to send a header with an empty value */
		rc = *h->value ? usher_buf_addf(&b, "%s: %s", h->key, h->value)
			       : usher_buf_addf(&b, "%s;", h->key);
		if (rc) {
			rc = usher_fail(err, USHER_ERR_TOOBIG, "header %s is longer than 64KiB",
					h->key);
			break;
		}
		rc = append(&ex->headers, usher_buf_str(&b), err);
		has_ct |= strcasecmp(h->key, "Content-Type") == 0;
		has_expect |= strcasecmp(h->key, "Expect") == 0;
		has_host |= strcasecmp(h->key, "Host") == 0;
	}
	if (!rc && !has_expect)
		rc = append(&ex->headers, "Expect:", err);
	if (!rc && !has_ct && o->body && *o->body)
		rc = append(&ex->headers, "Content-Type:", err);
	if (!rc && host_header && !has_host) {
		usher_buf_reset(&b);
		usher_buf_addf(&b, "Host: %s", host_header);
		rc = append(&ex->headers, usher_buf_str(&b), err);
	}
	/* the buffer held header values, which may be secrets */
	if (b.data)
		memset(b.data, 0, b.cap);
	usher_buf_free(&b);
	return rc;
}

/* Works out where to connect: the address family (an IP literal needs no
 * choice), and for https with a server_name other than the URL's host, a
 * URL naming server_name (SNI and verification) with CURLOPT_CONNECT_TO
 * sending it to the real host, whose name stays in the Host header. */
static enum usher_err build_target(struct usher_http_exchange *ex, struct usher_error *err)
{
	const struct usher_http_opts *o = ex->opts;
	const char *sni = o->tls.server_name, *host_header = NULL;
	char *host = NULL, *port = NULL, *dport = NULL, *url = NULL;
	enum usher_err rc = USHER_OK;
	struct usher_buf b, hb;
	struct in_addr a4;
	CURLU *u = curl_url();

	usher_buf_init(&b, 4096);
	usher_buf_init(&hb, 4096);
	if (!u) {
		rc = usher_fail(err, USHER_ERR_NOMEM, "out of memory parsing the url");
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, o->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &dport, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		rc = usher_fail(err, USHER_ERR_INVALID, "the url does not parse");
		goto out;
	}
	if (host[0] == '[' || inet_pton(AF_INET, host, &a4) == 1) {
		ex->ipresolve = CURL_IPRESOLVE_WHATEVER;
		ex->may_fall_back = false;
	} else {
		ex->ipresolve = o->ip_protocol == 6 ? CURL_IPRESOLVE_V6 : CURL_IPRESOLVE_V4;
		ex->may_fall_back = o->ip_protocol_fallback;
	}
	if (sni && *sni && strncasecmp(o->url, "https://", 8) == 0 && strcasecmp(sni, host) != 0) {
		/* no port written in the URL: none in the Host header either */
		if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
			port = NULL;
		if (curl_url_set(u, CURLUPART_HOST, sni, 0) != CURLUE_OK ||
		    curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
			rc = usher_fail(err, USHER_ERR_INVALID,
					"tls.server_name is not a valid host name");
			goto out;
		}
		ex->url = usher_strdup(url);
		usher_buf_addf(&b, "%s:%s:%s:%s", sni, dport, host, dport);
		rc = append(&ex->connect_to, usher_buf_str(&b), err);
		if (rc)
			goto out;
		usher_buf_addf(&hb, port ? "%s:%s" : "%s", host, port);
		host_header = usher_buf_str(&hb);
	}
	rc = build_headers(ex, host_header, err);
out:
	usher_buf_free(&b);
	usher_buf_free(&hb);
	curl_free(host);
	curl_free(port);
	curl_free(dport);
	curl_free(url);
	curl_url_cleanup(u);
	return rc;
}

/* Records the first setopt curl refuses (a feature it was built without). */
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (cc == CURLE_OK) {                                                              \
			cc = curl_easy_setopt(e, opt, val);                                        \
			if (cc != CURLE_OK)                                                        \
				failed = #opt;                                                     \
		}                                                                                  \
	} while (0)

static enum usher_err setup(struct usher_http_exchange *ex, int64_t left, struct usher_error *err)
{
	const struct usher_http_opts *o = ex->opts;
	const char *m = o->method ? o->method : "GET";
	bool has_body = o->body && *o->body;
	CURL *e = ex->xfer.easy;
	CURLcode cc = CURLE_OK;
	const char *failed = "";
	enum usher_err rc;

	rc = build_target(ex, err);
	if (rc)
		return rc;
	SET(CURLOPT_URL, ex->url ? ex->url : o->url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, (long)left);
	SET(CURLOPT_ERRORBUFFER, ex->res.curl_msg);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, ex);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, ex);
	SET(CURLOPT_USERAGENT, "usher/" USHER_VERSION);
	/* every encoding curl can decode: content_length is measured on the
	 * wire, uncompressed_body_length after decoding */
	SET(CURLOPT_ACCEPT_ENCODING, "");
	SET(CURLOPT_FOLLOWLOCATION, o->follow_redirects ? 1L : 0L);
	SET(CURLOPT_MAXREDIRS, (long)USHER_HTTP_MAX_REDIRECTS);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	/* each run measures a whole fresh exchange, as blackbox does: no
	 * pooled connection, no cached address, no resumed TLS session (which
	 * would also hide the certificate chain) */
	if (ex->share) {
		/* a journey's steps: one pool and cookie jar per run */
		SET(CURLOPT_SHARE, ex->share);
	} else {
		SET(CURLOPT_FRESH_CONNECT, 1L);
		SET(CURLOPT_FORBID_REUSE, 1L);
	}
	SET(CURLOPT_DNS_CACHE_TIMEOUT, 0L);
	SET(CURLOPT_SSL_SESSIONID_CACHE, 0L);
	SET(CURLOPT_FILETIME, 1L);
	SET(CURLOPT_COOKIEFILE, ""); /* cookies set by a redirect go along */
	SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	SET(CURLOPT_IPRESOLVE, ex->ipresolve);
	if (ex->connect_to)
		SET(CURLOPT_CONNECT_TO, ex->connect_to);
	SET(CURLOPT_HTTPHEADER, ex->headers);

	if (strcmp(m, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (strcmp(m, "GET") == 0 && !has_body) {
		SET(CURLOPT_HTTPGET, 1L);
	} else {
		if (has_body || strcmp(m, "POST") == 0) {
			SET(CURLOPT_POSTFIELDSIZE_LARGE,
			    (curl_off_t)(has_body ? strlen(o->body) : 0));
			SET(CURLOPT_POSTFIELDS, has_body ? o->body : "");
		}
		if (strcmp(m, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, m);
	}

	if (o->basic_auth.username) {
		SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		SET(CURLOPT_USERNAME, o->basic_auth.username);
		SET(CURLOPT_PASSWORD, o->basic_auth.password ? o->basic_auth.password : "");
	} else if (o->bearer_token) {
		SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		SET(CURLOPT_XOAUTH2_BEARER, o->bearer_token);
	}

	if (o->tls.ca_file)
		SET(CURLOPT_CAINFO, o->tls.ca_file);
	if (o->tls.cert_file)
		SET(CURLOPT_SSLCERT, o->tls.cert_file);
	if (o->tls.key_file)
		SET(CURLOPT_SSLKEY, o->tls.key_file);
	if (o->tls.insecure_skip_verify) {
		SET(CURLOPT_SSL_VERIFYPEER, 0L);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (cc != CURLE_OK)
		return usher_fail(err, USHER_ERR_UNSUPPORTED, "libcurl refused %s: %s", failed,
				  curl_easy_strerror(cc));
	return USHER_OK;
}

#undef SET

static void collect(struct usher_http_exchange *ex, CURLcode result)
{
	struct usher_http_result *r = &ex->res;
	CURL *e = ex->xfer.easy;
	struct usher_http_timers cur;
	curl_off_t total = 0, cl = -1, ft = -1, trailing;
	long ver = 0;
	char *ip = NULL;

	r->curl_rc = result;
	read_timers(e, &cur);
	if (!ex->hops)
		r->dns_lookup_s = (double)(cur.nl + ex->failed_resolve_us) / 1e6;
	/* what grew since the last response is a hop that never answered */
	trailing = account_hop(ex, &cur);
	r->phase_s[USHER_HTTP_PHASE_RESOLVE] += (double)ex->failed_resolve_us / 1e6;
	curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total);
	if (cur.st > 0 && total > cur.st + trailing)
		r->phase_s[USHER_HTTP_PHASE_TRANSFER] = (double)(total - cur.st - trailing) / 1e6;
	curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &r->redirects);
	if (curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip && *ip)
		r->ip_protocol = strchr(ip, ':') ? 6 : 4;
	if (trailing > 0 || !ex->hops) {
		/* no final response: nothing of one to report (blackbox's nil
		 * response) */
		r->status = 0;
		r->tls_version = NULL;
		r->has_cert_expiry = false;
		r->has_chain_expiry = false;
		return;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
	switch (ver) {
	case CURL_HTTP_VERSION_1_0: r->http_version = 1.0; break;
	case CURL_HTTP_VERSION_1_1: r->http_version = 1.1; break;
	case CURL_HTTP_VERSION_2_0: r->http_version = 2; break;
#ifdef CURL_HTTP_VERSION_3
	case CURL_HTTP_VERSION_3: r->http_version = 3; break;
#endif
	default: r->http_version = 0; break;
	}
	if (curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
		r->content_length = cl;
	{
		char *ct = NULL;

		if (curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
			snprintf(r->content_type, sizeof(r->content_type), "%s", ct);
	}
	if (curl_easy_getinfo(e, CURLINFO_FILETIME_T, &ft) == CURLE_OK && ft >= 0)
		r->last_modified = ft;
}

/* The host had no address in the first family: the same request again in
 * the other one, in the time that is left (blackbox's
 * ip_protocol_fallback). */
static bool fall_back(struct usher_http_exchange *ex)
{
	int64_t left = ex->deadline_mono_ms - usher_mono_ms();
	curl_off_t total = 0;
	CURL *e = ex->xfer.easy;

	ex->may_fall_back = false;
	if (left <= 0)
		return false;
	curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total);
	ex->failed_resolve_us += total;
	ex->ipresolve = ex->ipresolve == CURL_IPRESOLVE_V4 ? CURL_IPRESOLVE_V6 : CURL_IPRESOLVE_V4;
	if (curl_easy_setopt(e, CURLOPT_IPRESOLVE, ex->ipresolve) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left) != CURLE_OK)
		return false;
	ex->res.curl_msg[0] = '\0';
	memset(&ex->prev, 0, sizeof(ex->prev));
	ex->hops = 0;
	if (usher_loop_add(ex->loop, &ex->xfer))
		return false;
	ex->active = true;
	return true;
}

static void on_xfer_done(struct usher_loop_xfer *x, CURLcode result)
{
	struct usher_http_exchange *ex = container_of(x, struct usher_http_exchange, xfer);

	ex->active = false; /* the loop has removed the handle */
	if (result == CURLE_COULDNT_RESOLVE_HOST && ex->may_fall_back && fall_back(ex))
		return;
	collect(ex, result);
	ex->done(ex);
}

enum usher_err usher_http_exchange_start(struct usher_http_exchange *ex, struct usher_loop *loop,
					 const struct usher_http_opts *o,
					 const struct usher_http_checks *c,
					 int64_t deadline_mono_ms, struct usher_error *err)
{
	void (*done)(struct usher_http_exchange *) = ex->done;
	void *owner = ex->owner;
	CURLSH *share = ex->share;
	int64_t left = deadline_mono_ms - usher_mono_ms();
	enum usher_err rc;

	memset(ex, 0, sizeof(*ex));
	ex->done = done;
	ex->owner = owner;
	ex->share = share;
	ex->loop = loop;
	ex->opts = o;
	ex->deadline_mono_ms = deadline_mono_ms;
	ex->keep_body = o->keep_body || usher_http_checks_need_body(c);
	ex->keep_head = o->keep_head || usher_http_checks_need_headers(c);
	ex->res.last_modified = -1;
	usher_buf_init(&ex->res.head, HEAD_MAX);
	usher_buf_init(&ex->res.body, (size_t)o->body_size_limit);
	if (left <= 0)
		return usher_fail(err, USHER_ERR_TIMEOUT, "the deadline passed before the request");
	ex->xfer.easy = curl_easy_init();
	if (!ex->xfer.easy)
		return usher_fail(err, USHER_ERR_NOMEM, "cannot create a curl handle");
	ex->xfer.done = on_xfer_done;
	rc = setup(ex, left, err);
	if (!rc) {
		rc = usher_loop_add(loop, &ex->xfer);
		if (rc)
			usher_fail(err, rc, "the loop refused the transfer");
	}
	if (rc) {
		usher_http_exchange_cleanup(ex);
		return rc;
	}
	ex->active = true;
	return USHER_OK;
}

void usher_http_exchange_cleanup(struct usher_http_exchange *ex)
{
	if (!ex)
		return;
	if (ex->active) {
		usher_loop_remove(ex->loop, &ex->xfer);
		ex->active = false;
	}
	if (ex->xfer.easy)
		curl_easy_cleanup(ex->xfer.easy);
	ex->xfer.easy = NULL;
	wipe_slist(ex->headers);
	ex->headers = NULL;
	curl_slist_free_all(ex->connect_to);
	ex->connect_to = NULL;
	free(ex->url);
	ex->url = NULL;
	usher_buf_free(&ex->res.head);
	usher_buf_free(&ex->res.body);
}

void usher_http_exchange_cancel(struct usher_http_exchange *ex)
{
	usher_http_exchange_cleanup(ex);
}

/* ---- judging the result ------------------------------------------------- */

static const char *transport_reason(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY: return USHER_FAIL_DNS;
	case CURLE_COULDNT_CONNECT: return USHER_FAIL_CONNECT;
	case CURLE_OPERATION_TIMEDOUT: return USHER_FAIL_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
#if LIBCURL_VERSION_NUM >= 0x074d00
	case CURLE_SSL_CLIENTCERT:
#endif
		return USHER_FAIL_TLS;
	case CURLE_FILESIZE_EXCEEDED: return USHER_FAIL_BODY_TOO_LARGE;
	default: return USHER_FAIL_PROTOCOL;
	}
}

static void fail_transport(const struct usher_http_result *r, const struct usher_http_opts *o,
			   struct usher_probe_run *run, const char *what)
{
	char msg[CURL_ERROR_SIZE];
	size_t n;

	if (r->body_too_large) {
		usher_probe_fail(run, USHER_FAIL_BODY_TOO_LARGE,
				 "%s: body longer than body_size_limit (%llu bytes)", what,
				 (unsigned long long)o->body_size_limit);
		return;
	}
	if (r->head_too_large) {
		usher_probe_fail(run, USHER_FAIL_PROTOCOL,
				 "%s: response headers longer than %d KiB", what, HEAD_MAX / 1024);
		return;
	}
	snprintf(msg, sizeof(msg), "%s",
		 r->curl_msg[0] ? r->curl_msg : curl_easy_strerror(r->curl_rc));
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	lower_first(msg);
	usher_probe_fail(run, transport_reason(r->curl_rc), "%s: %s", what, msg);
}

bool usher_http_evaluate(const struct usher_http_exchange *ex, const struct usher_http_checks *c,
			 struct usher_probe_run *run, const char *what, bool *regex_failed)
{
	const struct usher_http_result *r = &ex->res;

	*regex_failed = false;
	if (r->curl_rc != CURLE_OK) {
		/* a response that did arrive is judged by its status first, as
		 * blackbox does before it reads the body; but the last 3xx of a
		 * redirect loop says less than the loop does */
		if (r->status > 0 && r->curl_rc != CURLE_TOO_MANY_REDIRECTS &&
		    !usher_http_assert_status(ex->opts, r->status, run, what))
			return false;
		fail_transport(r, ex->opts, run, what);
		return false;
	}
	if (!usher_http_assert_status(ex->opts, r->status, run, what))
		return false;
	if (!c)
		return true;
	if (!usher_http_assert_headers(c, r->head.data, r->head.len, run, what) ||
	    !usher_http_assert_body(c, r->body.data, r->body.len, run, what)) {
		*regex_failed = true;
		return false;
	}
	return usher_http_assert_json(c, r->body.data, r->body.len, run, what);
}

/* ---- trace -------------------------------------------------------------- */

/* A duration for people: 850us, 12.3ms, 1.204s. */
static const char *human_secs(char *out, size_t len, double s)
{
	if (s < 0.001)
		snprintf(out, len, "%.0fus", s * 1e6);
	else if (s < 1)
		snprintf(out, len, "%.1fms", s * 1e3);
	else
		snprintf(out, len, "%.3fs", s);
	return out;
}

void usher_http_format_result(const struct usher_http_result *r, double total_s, char *out,
			      size_t len)
{
	const double *ph = r->phase_s;
	char d[5][24], why[CURL_ERROR_SIZE];
	/* the first byte of the final response: all but its transfer */
	double ttfb = total_s - ph[USHER_HTTP_PHASE_TRANSFER];
	int n;

	if (r->status > 0) {
		n = snprintf(out, len, "-> %ld HTTP/%g", r->status, r->http_version);
	} else {
		snprintf(why, sizeof(why), "%s",
			 r->body_too_large ? "body longer than body_size_limit"
			 : r->curl_msg[0]  ? r->curl_msg
					   : curl_easy_strerror(r->curl_rc));
		lower_first(why);
		n = snprintf(out, len, "-> no response (%s)", why);
	}
	if (n < 0 || (size_t)n >= len)
		return;
	snprintf(out + n, len - (size_t)n, ", dns %s connect %s tls %s ttfb %s total %s",
		 human_secs(d[0], sizeof(d[0]), ph[USHER_HTTP_PHASE_RESOLVE]),
		 human_secs(d[1], sizeof(d[1]), ph[USHER_HTTP_PHASE_CONNECT]),
		 human_secs(d[2], sizeof(d[2]), ph[USHER_HTTP_PHASE_TLS]),
		 human_secs(d[3], sizeof(d[3]), ttfb), human_secs(d[4], sizeof(d[4]), total_s));
}

/* ---- metrics ------------------------------------------------------------ */

static const struct usher_metric_desc desc_phase = {
    "probe_http_duration_seconds", USHER_METRIC_GAUGE,
    "Duration of http request by phase, summed over all redirects"};
static const struct usher_metric_desc desc_content_length = {
    "probe_http_content_length", USHER_METRIC_GAUGE, "Length of http content response"};
static const struct usher_metric_desc desc_body_length = {"probe_http_uncompressed_body_length",
							  USHER_METRIC_GAUGE,
							  "Length of uncompressed response body"};
static const struct usher_metric_desc desc_redirects = {"probe_http_redirects", USHER_METRIC_GAUGE,
							"The number of redirects"};
static const struct usher_metric_desc desc_ssl = {
    "probe_http_ssl", USHER_METRIC_GAUGE, "Indicates if SSL was used for the final redirect"};
static const struct usher_metric_desc desc_status = {"probe_http_status_code", USHER_METRIC_GAUGE,
						     "Response HTTP status code"};
static const struct usher_metric_desc desc_version = {
    "probe_http_version", USHER_METRIC_GAUGE, "Returns the version of HTTP of the probe response"};
static const struct usher_metric_desc desc_regex = {"probe_failed_due_to_regex", USHER_METRIC_GAUGE,
						    "Indicates if probe failed due to regex"};
static const struct usher_metric_desc desc_last_modified = {
    "probe_http_last_modified_timestamp_seconds", USHER_METRIC_GAUGE,
    "Returns the Last-Modified HTTP response header in unixtime"};
static const struct usher_metric_desc desc_cert_expiry = {
    "probe_ssl_earliest_cert_expiry", USHER_METRIC_GAUGE,
    "Returns earliest SSL cert expiry in unixtime"};
static const struct usher_metric_desc desc_chain_expiry = {
    "probe_ssl_last_chain_expiry_timestamp_seconds", USHER_METRIC_GAUGE,
    "Returns last SSL chain expiry in timestamp seconds"};
static const struct usher_metric_desc desc_tls_version = {
    "probe_tls_version_info", USHER_METRIC_GAUGE, "Contains the TLS version used"};
static const struct usher_metric_desc desc_dns = {
    "probe_dns_lookup_time_seconds", USHER_METRIC_GAUGE,
    "Returns the time taken for probe dns lookup in seconds"};
static const struct usher_metric_desc desc_ip_protocol = {
    "probe_ip_protocol", USHER_METRIC_GAUGE, "Specifies whether probe ip protocol is IP4 or IP6"};

#define EXTRA_MAX 8

static void add(struct usher_sample_set *s, const struct usher_metric_desc *d, double v,
		const char *const *extra, const char *k, const char *kv)
{
	const char *pairs[2 * EXTRA_MAX + 3];
	size_t n = 0, i;

	for (i = 0; extra && extra[i] && extra[i + 1] && n < 2 * EXTRA_MAX; i += 2) {
		pairs[n++] = extra[i];
		pairs[n++] = extra[i + 1];
	}
	if (k) {
		pairs[n++] = k;
		pairs[n++] = kv;
	}
	pairs[n] = NULL;
	usher_sample_addv(s, d, v, pairs);
}

void usher_http_emit(struct usher_sample_set *s, const struct usher_http_result *r,
		     bool regex_failed, const char *const *extra)
{
	static const char *const phases[USHER_HTTP_NPHASES] = {"resolve", "connect", "tls",
							       "processing", "transfer"};
	size_t i;

	for (i = 0; i < USHER_HTTP_NPHASES; i++)
		add(s, &desc_phase, r->phase_s[i], extra, "phase", phases[i]);
	add(s, &desc_content_length, (double)r->content_length, extra, NULL, NULL);
	add(s, &desc_body_length, (double)r->body_bytes, extra, NULL, NULL);
	add(s, &desc_redirects, (double)r->redirects, extra, NULL, NULL);
	add(s, &desc_ssl, r->tls_version ? 1 : 0, extra, NULL, NULL);
	add(s, &desc_status, (double)r->status, extra, NULL, NULL);
	add(s, &desc_version, r->http_version, extra, NULL, NULL);
	add(s, &desc_regex, regex_failed ? 1 : 0, extra, NULL, NULL);
	add(s, &desc_dns, r->dns_lookup_s, extra, NULL, NULL);
	add(s, &desc_ip_protocol, r->ip_protocol, extra, NULL, NULL);
	if (r->status && r->last_modified >= 0)
		add(s, &desc_last_modified, (double)r->last_modified, extra, NULL, NULL);
	if (r->tls_version) {
		add(s, &desc_tls_version, 1, extra, "version", r->tls_version);
		if (r->has_cert_expiry)
			add(s, &desc_cert_expiry, (double)r->cert_expiry, extra, NULL, NULL);
		if (r->has_chain_expiry)
			add(s, &desc_chain_expiry, (double)r->chain_expiry, extra, NULL, NULL);
	}
}

/* ---- the probe type ----------------------------------------------------- */

struct http_probe {
	const struct usher_http_opts *o;
	struct usher_loop *loop;
	struct usher_http_checks *checks;
	char *what; /* "GET https://host/path", no userinfo */
	struct usher_http_exchange ex;
	struct usher_probe_run *run; /* the run in flight, NULL when idle */
};

static enum usher_err http_check(struct usher_cfgctx *ctx, struct usher_probe_conf *pc,
				 const struct usher_ynode *node)
{
	return usher_http_opts_check(ctx, pc->opts, node);
}

static const char *http_default_instance(struct usher_arena *a, const struct usher_probe_conf *pc)
{
	const struct usher_http_opts *o = pc->opts;

	return usher_http_instance(a, o->url);
}

static void http_free(void *ctx)
{
	struct http_probe *p = ctx;

	if (!p)
		return;
	usher_http_exchange_cancel(&p->ex);
	usher_http_checks_free(p->checks);
	free(p->what);
	free(p);
}

static enum usher_err http_init(const struct usher_probe_conf *pc,
				const struct usher_probe_env *env, void **ctx,
				struct usher_error *err)
{
	struct http_probe *p = usher_calloc(1, sizeof(*p));
	enum usher_err rc;

	*ctx = NULL;
	p->o = pc->opts;
	p->loop = env->loop;
	p->what = usher_http_describe(p->o);
	rc = usher_http_checks_new(p->o, &p->checks, err);
	if (rc) {
		http_free(p);
		return rc;
	}
	*ctx = p;
	return USHER_OK;
}

static void http_exchange_done(struct usher_http_exchange *ex)
{
	struct http_probe *p = ex->owner;
	struct usher_probe_run *run = p->run;
	bool regex_failed = false;

	usher_http_evaluate(ex, p->checks, run, p->what, &regex_failed);
	if (run->trace) {
		char line[512];

		usher_http_format_result(&ex->res,
					 (double)(usher_mono_ns() - run->started_mono_ns) / 1e9,
					 line, sizeof(line));
		usher_probe_trace(run, "%s %s%s%s", p->what, line, run->success ? "" : "; failed: ",
				  run->success ? "" : run->err.msg);
	}
	usher_http_emit(run->samples, &ex->res, regex_failed, NULL);
	usher_http_exchange_cleanup(ex);
	p->run = NULL;
	usher_probe_run_done(run);
}

static enum usher_err http_start(void *ctx, struct usher_probe_run *run)
{
	struct http_probe *p = ctx;
	struct usher_error err;
	enum usher_err rc;

	usher_error_clear(&err);
	p->run = run;
	p->ex.done = http_exchange_done;
	p->ex.owner = p;
	rc = usher_http_exchange_start(&p->ex, p->loop, p->o, p->checks, run->deadline_mono_ms,
				       &err);
	if (rc) {
		p->run = NULL;
		usher_probe_fail(run,
				 rc == USHER_ERR_TIMEOUT ? USHER_FAIL_TIMEOUT : USHER_FAIL_INTERNAL,
				 "%s: %s", p->what, usher_error_msg(&err, rc));
	}
	return rc;
}

static void http_cancel(void *ctx, struct usher_probe_run *run)
{
	struct http_probe *p = ctx;

	(void)run;
	usher_http_exchange_cancel(&p->ex);
	p->run = NULL;
}

const struct usher_probe_type usher_probe_http = {
    .name = "http",
    .help = "HTTP(S) request with status, header, body and JSON assertions "
	    "(blackbox_exporter's http prober)",
    .options = usher_http_options,
    .opts_size = sizeof(struct usher_http_opts),
    .check = http_check,
    .default_instance = http_default_instance,
    .init = http_init,
    .start = http_start,
    .cancel = http_cancel,
    .free = http_free,
};
