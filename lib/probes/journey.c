/* The journey probe: steps run in order on one curl share (connection pool
 * and cookie jar) per run, on the HTTP probe's exchange and assertions.
 * {{name}} templates are parsed and resolved at load, so an unknown
 * variable is a config error with file:line:col; secrets (${env:},
 * ${file:}) are resolved at load too but stay marked, so every rendering
 * meant for people (trace, log, messages) shows them as ***. */
#include "probes/journey.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "probes/http.h"
#include "probes/jsonptr.h"
#include "probes/loop.h"

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* Bounds on what a rendering may produce. */
#define URL_MAX    (64 * 1024)
#define HEADER_MAX (64 * 1024)
#define BODY_MAX   (1024 * 1024)
/* A JSON body larger than this is logged as text, not parsed to redact. */
#define REDACT_PARSE_MAX (1024 * 1024)
#define MASK             "***"
#define NBUILTINS        3

/* ---- templates ---------------------------------------------------------- */

enum seg_kind { SEG_LIT, SEG_SECRET, SEG_VAR };

struct seg {
	enum seg_kind kind;
	const char *text; /* LIT, SECRET: the bytes (NUL-terminated); VAR: the name */
	size_t len;
	int slot;      /* VAR: the variable, set by the check */
	int line, col; /* VAR: where it is written */
};

/* A string with {{variables}} and resolved secrets. */
struct tmpl {
	size_t n;
	struct seg *v;
	bool has_secret;
	const struct usher_ynode *node;
};

/* A variable's value in one run. */
struct val {
	const char *s; /* NUL-terminated */
	size_t len;
	bool set;
	bool secret;
	bool raw_json; /* s is a JSON number, boolean, null, object or array */
};

static bool name_ok(const char *s, size_t n)
{
	size_t i;

	if (!n || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
		return false;
	for (i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* Where byte off of scalar n is in the file: exact for a one-line scalar
 * (plain, or quoted without escapes before off), else the scalar's start. */
static void place(const struct usher_ynode *n, size_t off, int *line, int *col)
{
	*line = n->line;
	*col = n->col;
	if (!strchr(n->value, '\n'))
		*col = n->col + (n->plain ? 0 : 1) + (int)off;
}

static enum usher_err error_at(struct usher_cfgctx *ctx, const struct usher_ynode *n, size_t off,
			       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum usher_err error_at(struct usher_cfgctx *ctx, const struct usher_ynode *n, size_t off,
			       const char *fmt, ...)
{
	struct usher_ynode at = *n;
	char msg[512];
	va_list ap;

	place(n, off, &at.line, &at.col);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return usher_cfg_error(ctx, &at, "%s", msg);
}

static void seg_add(struct usher_arena *a, struct tmpl *t, enum seg_kind k, const char *s,
		    size_t len)
{
	struct seg *sg;

	if (k == SEG_LIT && !len)
		return;
	sg = &t->v[t->n++];
	memset(sg, 0, sizeof(*sg));
	sg->kind = k;
	sg->text = usher_arena_strndup(a, s, len);
	sg->len = len;
	sg->slot = -1;
}

/* Parses scalar n into *out: literal text, {{name}} references and
 * ${env:}/${file:} secrets (resolved now). */
static enum usher_err tmpl_parse(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				 struct tmpl **out)
{
	const char *s, *p;
	size_t len, i = 0, lit = 0, refs = 0;
	struct tmpl *t;

	*out = NULL;
	if (n->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, n, "expected a string, got a %s",
				       usher_ynode_kind_name(n->kind));
	s = n->value;
	len = strlen(s);
	for (p = s; (p = strchr(p, '{')) != NULL; p++)
		refs++;
	for (p = s; (p = strchr(p, '$')) != NULL; p++)
		refs++;
	t = usher_arena_zalloc(ctx->arena, sizeof(*t));
	t->node = n;
	t->v = usher_arena_zalloc(ctx->arena, (2 * refs + 2) * sizeof(*t->v));
	while (i < len) {
		if (s[i] == '$' && s[i + 1] == '{') {
			const char *end = strchr(s + i, '}'), *val = NULL;
			char *ref;

			if (!end)
				return error_at(
				    ctx, n, i,
				    "unterminated ${ reference: expected ${env:NAME} or "
				    "${file:/path}");
			seg_add(ctx->arena, t, SEG_LIT, s + lit, i - lit);
			ref = usher_arena_strndup(ctx->arena, s + i, (size_t)(end - (s + i)) + 1);
			if (usher_cfg_resolve_secret(ctx, n, ref, &val))
				return USHER_ERR_INVALID;
			seg_add(ctx->arena, t, SEG_SECRET, val, strlen(val));
			t->has_secret = true;
			i = (size_t)(end - s) + 1;
			lit = i;
			continue;
		}
		if (s[i] == '{' && s[i + 1] == '{') {
			const char *end = strstr(s + i + 2, "}}");
			const char *a = s + i + 2, *b;
			struct seg *sg;

			if (!end)
				return error_at(ctx, n, i,
						"unterminated {{: write a variable as {{name}}");
			b = end;
			while (a < b && *a == ' ')
				a++;
			while (b > a && b[-1] == ' ')
				b--;
			if (!name_ok(a, (size_t)(b - a)))
				return error_at(ctx, n, i,
						"invalid variable reference {{%.*s}}: a name is "
						"letters, digits and _, not starting with a digit",
						(int)(end - (s + i + 2)), s + i + 2);
			seg_add(ctx->arena, t, SEG_LIT, s + lit, i - lit);
			seg_add(ctx->arena, t, SEG_VAR, a, (size_t)(b - a));
			sg = &t->v[t->n - 1];
			place(n, i, &sg->line, &sg->col);
			i = (size_t)(end - s) + 2;
			lit = i;
			continue;
		}
		i++;
	}
	seg_add(ctx->arena, t, SEG_LIT, s + lit, len - lit);
	*out = t;
	return USHER_OK;
}

enum usher_err usher_journey_url_escape(struct usher_buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	enum usher_err rc = USHER_OK;
	size_t i;

	for (i = 0; !rc && i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("<>\"\\^`{|}", c)) {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};

			rc = usher_buf_add(out, e, 3);
		} else {
			rc = usher_buf_addc(out, (char)c);
		}
	}
	return rc;
}

enum esc { ESC_RAW, ESC_URL, ESC_JSON };

static enum usher_err emit(struct usher_buf *out, const char *s, size_t len, enum esc e)
{
	switch (e) {
	case ESC_URL: return usher_journey_url_escape(out, s, len);
	case ESC_JSON: return usher_json_escape(out, s);
	case ESC_RAW: break;
	}
	return usher_buf_add(out, s, len);
}

/* Appends t to out. With mask, secrets and secret variables show as ***.
 * literal text is escaped only for ESC_JSON (a URL's literal text is the
 * user's). Returns USHER_ERR_NOTFOUND with *missing set when a variable
 * has no value, USHER_ERR_TOOBIG when out is full. */
static enum usher_err render(const struct tmpl *t, const struct val *vals, bool mask, enum esc e,
			     struct usher_buf *out, const char **missing)
{
	enum usher_err rc = USHER_OK;
	size_t i;

	for (i = 0; !rc && i < t->n; i++) {
		const struct seg *sg = &t->v[i];
		const struct val *v;

		switch (sg->kind) {
		case SEG_LIT:
			rc = emit(out, sg->text, sg->len, e == ESC_JSON ? ESC_JSON : ESC_RAW);
			break;
		case SEG_SECRET:
			rc = mask
				 ? usher_buf_addstr(out, MASK)
				 : emit(out, sg->text, sg->len, e == ESC_JSON ? ESC_JSON : ESC_RAW);
			break;
		case SEG_VAR:
			v = &vals[sg->slot];
			if (!v->set) {
				if (missing)
					*missing = sg->text;
				return USHER_ERR_NOTFOUND;
			}
			rc = mask && v->secret ? usher_buf_addstr(out, MASK)
					       : emit(out, v->s, v->len, e);
			break;
		}
	}
	return rc;
}

/* ---- JSON bodies -------------------------------------------------------- */

enum jkind { J_OBJ, J_ARR, J_STR, J_RAW };

/* A request's `json:` as written: objects and arrays of templates and
 * literal numbers, booleans and nulls. */
struct jnode {
	enum jkind kind;
	size_t n;
	const char **keys;   /* OBJ */
	struct jnode **kids; /* OBJ, ARR */
	struct tmpl *str;    /* STR */
	const char *raw;     /* RAW: JSON text */
};

/* The JSON literal a plain YAML scalar stands for, or NULL for a string. */
static const char *plain_json(const struct usher_ynode *n)
{
	const char *s = n->value;
	json_error_t jerr;
	json_t *v;
	bool num;

	if (!n->plain)
		return NULL;
	if (usher_ynode_is_null(n))
		return "null";
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return "true";
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return "false";
	if (!*s || !strchr("-0123456789", *s))
		return NULL;
	v = json_loads(s, JSON_DECODE_ANY, &jerr);
	num = v && json_is_number(v);
	json_decref(v);
	return num ? s : NULL;
}

static enum usher_err jnode_parse(struct usher_cfgctx *ctx, const struct usher_ynode *n, int depth,
				  struct jnode **out)
{
	struct jnode *j = usher_arena_zalloc(ctx->arena, sizeof(*j));
	enum usher_err rc = USHER_OK;
	size_t i;

	*out = j;
	if (depth > 32)
		return usher_cfg_error(ctx, n, "json: nested more than 32 levels deep");
	switch (n->kind) {
	case USHER_Y_MAP:
		j->kind = J_OBJ;
		j->n = n->n;
		j->keys = usher_arena_zalloc(ctx->arena, (n->n + 1) * sizeof(*j->keys));
		j->kids = usher_arena_zalloc(ctx->arena, (n->n + 1) * sizeof(*j->kids));
		for (i = 0; i < n->n; i++) {
			j->keys[i] = n->pairs[i].key->value;
			if (jnode_parse(ctx, n->pairs[i].val, depth + 1, &j->kids[i]))
				rc = USHER_ERR_INVALID;
		}
		return rc;
	case USHER_Y_SEQ:
		j->kind = J_ARR;
		j->n = n->n;
		j->kids = usher_arena_zalloc(ctx->arena, (n->n + 1) * sizeof(*j->kids));
		for (i = 0; i < n->n; i++)
			if (jnode_parse(ctx, n->items[i], depth + 1, &j->kids[i]))
				rc = USHER_ERR_INVALID;
		return rc;
	case USHER_Y_SCALAR:
		j->raw = plain_json(n);
		if (j->raw) {
			j->kind = J_RAW;
			return USHER_OK;
		}
		j->kind = J_STR;
		return tmpl_parse(ctx, n, &j->str);
	}
	return USHER_ERR_INTERNAL;
}

/* A string that is exactly one {{variable}} takes the variable's JSON type
 * when it was extracted from a JSON number, boolean, null, object or
 * array: {"seat_id": "{{seat_id}}"} sends 17, not "17". */
static enum usher_err render_json(const struct jnode *j, const struct val *vals, bool mask,
				  struct usher_buf *out, const char **missing)
{
	enum usher_err rc = USHER_OK;
	size_t i;

	switch (j->kind) {
	case J_RAW: return usher_buf_addstr(out, j->raw);
	case J_STR:
		if (j->str->n == 1 && j->str->v[0].kind == SEG_VAR) {
			const struct val *v = &vals[j->str->v[0].slot];

			if (v->set && v->raw_json && !(mask && v->secret))
				return usher_buf_add(out, v->s, v->len);
		}
		rc = usher_buf_addc(out, '"');
		if (!rc)
			rc = render(j->str, vals, mask, ESC_JSON, out, missing);
		return rc ? rc : usher_buf_addc(out, '"');
	case J_OBJ:
	case J_ARR:
		rc = usher_buf_addc(out, j->kind == J_OBJ ? '{' : '[');
		for (i = 0; !rc && i < j->n; i++) {
			if (i)
				rc = usher_buf_addc(out, ',');
			if (!rc && j->kind == J_OBJ) {
				rc = usher_buf_addc(out, '"');
				if (!rc)
					rc = usher_json_escape(out, j->keys[i]);
				if (!rc)
					rc = usher_buf_add(out, "\":", 2);
			}
			if (!rc)
				rc = render_json(j->kids[i], vals, mask, out, missing);
		}
		return rc ? rc : usher_buf_addc(out, j->kind == J_OBJ ? '}' : ']');
	}
	return USHER_ERR_INTERNAL;
}

/* ---- options ------------------------------------------------------------ */

struct jheader {
	const char *name;
	struct tmpl *t;
	const struct usher_ynode *key;
};

struct jheaders {
	size_t n;
	struct jheader *v;
};

struct jvardef {
	const char *name;
	struct tmpl *t;
	int slot;
	const struct usher_ynode *key;
};

struct jvars {
	size_t n;
	struct jvardef *v;
};

struct jextract {
	const char *var;
	const char *json;   /* a JSON Pointer */
	const char *header; /* a response header name */
	const char *regex;  /* on the body: group 1, else the whole match */
	bool secret;
	int slot;
	const struct usher_ynode *key;
};

struct jextracts {
	size_t n;
	struct jextract *v;
};

struct jrequest {
	const char *method;
	struct tmpl *url;
	struct jheaders headers;
	struct tmpl *body;
	struct jnode *json;
};

struct jstep {
	const char *name;
	struct jrequest request;
	struct usher_http_opts expect;
	struct jextracts extract;
	int64_t timeout_ms;
	bool always;
	/* set by the check */
	int *needs; /* slots of extracted variables the step uses */
	size_t nneeds;
	bool need_head;
};

struct jopts {
	const char *base_url;
	struct jvars variables;
	struct jheaders headers;
	struct usher_list steps; /* of struct jstep */
	struct usher_strlist redact;
	struct usher_tls_client_conf tls;
	uint64_t body_size_limit;
	int64_t cleanup_timeout_ms;
	bool follow_redirects;
	/* set by the check */
	size_t nslots;
	const char **slot_names;
	bool *slot_secret;
	int *slot_step; /* extracted variables: the first step extracting it; else -1 */
	int64_t reserve_ms;
};

static enum usher_err parse_tmpl(struct usher_cfgctx *ctx, const struct usher_ynode *n, void *field)
{
	return tmpl_parse(ctx, n, (struct tmpl **)field);
}

static enum usher_err parse_json_body(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				      void *field)
{
	return jnode_parse(ctx, n, 0, (struct jnode **)field);
}

/* Whether n is a mapping to read: 1 when it is, 0 when it is absent (null,
 * nothing to do), -1 after an error "<expected>, got a <kind>". */
/* Reads mapping n into an array (in the config's arena) of entries of
 * size bytes, one per pair that one() keeps, and returns it; *count says
 * how many. one(ctx, key, value, v, kept, rc) fills entry v[kept] (v[0]
 * to v[kept - 1] are those kept before) and says whether to keep it,
 * setting *rc on an error. A null n is no entries; a scalar or a list is
 * the error "<expected>, got a <kind>". */
typedef bool (*pair_fn)(struct usher_cfgctx *ctx, const struct usher_ynode *kn,
			const struct usher_ynode *vn, void *v, size_t kept, enum usher_err *rc);

static void *parse_pairs(struct usher_cfgctx *ctx, const struct usher_ynode *n,
			 const char *expected, size_t size, size_t *count, pair_fn one,
			 enum usher_err *rc)
{
	char *v;
	size_t i;

	*count = 0;
	*rc = USHER_OK;
	if (usher_ynode_is_null(n))
		return NULL;
	if (n->kind != USHER_Y_MAP) {
		*rc = usher_cfg_error(ctx, n, "%s, got a %s", expected,
				      usher_ynode_kind_name(n->kind));
		return NULL;
	}
	v = usher_arena_zalloc(ctx->arena, (n->n + 1) * size);
	for (i = 0; i < n->n; i++) {
		memset(v + *count * size, 0, size);
		if (one(ctx, n->pairs[i].key, n->pairs[i].val, v, *count, rc))
			(*count)++;
	}
	return v;
}

static bool header_one(struct usher_cfgctx *ctx, const struct usher_ynode *kn,
		       const struct usher_ynode *vn, void *v, size_t kept, enum usher_err *rc)
{
	const struct jheader *prev = v;
	struct jheader *e = (struct jheader *)v + kept;
	size_t k;

	if (!usher_http_is_token(kn->value)) {
		*rc = usher_cfg_error(ctx, kn, "headers: invalid header name \"%s\"", kn->value);
		return false;
	}
	for (k = 0; k < kept; k++)
		if (strcasecmp(prev[k].name, kn->value) == 0) {
			*rc = usher_cfg_error(ctx, kn, "headers: %s is set twice", kn->value);
			return false;
		}
	e->name = kn->value;
	e->key = kn;
	if (tmpl_parse(ctx, vn, &e->t)) {
		*rc = USHER_ERR_INVALID;
		return false;
	}
	for (k = 0; k < e->t->n; k++)
		if (e->t->v[k].kind != SEG_VAR && strpbrk(e->t->v[k].text, "\r\n")) {
			/* the value may be a secret: never shown */
			*rc = usher_cfg_error(
			    ctx, kn, "headers: the value of %s contains a line break", kn->value);
			break;
		}
	return true;
}

static enum usher_err parse_headers(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				    void *field)
{
	struct jheaders *h = field;
	enum usher_err rc;

	h->v = parse_pairs(ctx, n, "headers: expected a mapping of names to values", sizeof(*h->v),
			   &h->n, header_one, &rc);
	return rc;
}

static bool variable_one(struct usher_cfgctx *ctx, const struct usher_ynode *kn,
			 const struct usher_ynode *vn, void *v, size_t kept, enum usher_err *rc)
{
	struct jvardef *d = (struct jvardef *)v + kept;

	if (!name_ok(kn->value, strlen(kn->value))) {
		*rc = usher_cfg_error(ctx, kn,
				      "variables: invalid name \"%s\": use letters, digits and _, "
				      "not starting with a digit",
				      kn->value);
		return false;
	}
	d->name = kn->value;
	d->key = kn;
	if (tmpl_parse(ctx, vn, &d->t)) {
		*rc = USHER_ERR_INVALID;
		return false;
	}
	return true;
}

static enum usher_err parse_variables(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				      void *field)
{
	struct jvars *vs = field;
	enum usher_err rc;

	vs->v = parse_pairs(ctx, n, "variables: expected a mapping of names to values",
			    sizeof(*vs->v), &vs->n, variable_one, &rc);
	return rc;
}

/* The http probe's parsers, behind a message naming the extract key. */
static enum usher_err parse_pointer(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				    void *field)
{
	if (n->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, n, "json: expected a JSON Pointer like /id, got a %s",
				       usher_ynode_kind_name(n->kind));
	return usher_http_parse_pointer(ctx, n, field);
}

static enum usher_err parse_regex(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				  void *field)
{
	if (n->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, n, "regex: expected a regular expression, got a %s",
				       usher_ynode_kind_name(n->kind));
	return usher_http_parse_regex(ctx, n, field);
}

#define EX_OFF(f) offsetof(struct jextract, f)
static const struct usher_option extract_options[] = {
    {.key = "json",
     .type = USHER_OPT_CUSTOM,
     .offset = EX_OFF(json),
     .parse = parse_pointer,
     .help = "JSON Pointer into the response body (/hold_id, /seats/0/seat)"},
    {.key = "header",
     .type = USHER_OPT_STR,
     .offset = EX_OFF(header),
     .help = "a response header (first value, any case)"},
    {.key = "regex",
     .type = USHER_OPT_CUSTOM,
     .offset = EX_OFF(regex),
     .parse = parse_regex,
     .help = "regular expression on the body: its first group, else the whole match"},
    {.key = "secret",
     .type = USHER_OPT_BOOL,
     .offset = EX_OFF(secret),
     .def = "false",
     .help = "the value is a secret (a token): shown as *** in traces and logs"},
    USHER_OPT_END,
};

static bool extract_one_conf(struct usher_cfgctx *ctx, const struct usher_ynode *kn,
			     const struct usher_ynode *vn, void *v, size_t kept, enum usher_err *rc)
{
	struct jextract *e = (struct jextract *)v + kept;

	if (!name_ok(kn->value, strlen(kn->value))) {
		*rc = usher_cfg_error(ctx, kn,
				      "extract: invalid variable name \"%s\": use letters, digits "
				      "and _, not starting with a digit",
				      kn->value);
		return false;
	}
	if (vn->kind != USHER_Y_MAP) {
		*rc = usher_cfg_error(ctx, vn,
				      "extract: %s: expected {json: POINTER}, {header: NAME} or "
				      "{regex: RE}",
				      kn->value);
		return false;
	}
	if (usher_opts_apply1(ctx, extract_options, e, vn)) {
		*rc = USHER_ERR_INVALID;
		return false;
	}
	if (!!e->json + !!e->header + !!e->regex != 1) {
		*rc = usher_cfg_error(
		    ctx, vn, "extract: %s: set exactly one of json, header, regex", kn->value);
		return false;
	}
	e->var = kn->value;
	e->key = kn;
	e->slot = -1;
	return true;
}

static enum usher_err parse_extract(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				    void *field)
{
	struct jextracts *xs = field;
	enum usher_err rc;

	xs->v = parse_pairs(ctx, n,
			    "extract: expected a mapping of variable names to "
			    "{json: POINTER} | {header: NAME} | {regex: RE}",
			    sizeof(*xs->v), &xs->n, extract_one_conf, &rc);
	return rc;
}

/* The assertion keys of the http probe a step's `expect` takes. */
static const char *const expect_keys[] = {
    "valid_status_codes",
    "fail_if_body_matches_regexp",
    "fail_if_body_not_matches_regexp",
    "fail_if_header_matches",
    "fail_if_header_not_matches",
    "json",
    NULL,
};

static enum usher_err parse_expect(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				   void *field)
{
	struct usher_option table[16];
	const struct usher_option *o;
	size_t k = 0, i;

	if (usher_ynode_is_null(n))
		return USHER_OK;
	if (n->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, n, "expect: expected a mapping of assertions, got a %s",
				       usher_ynode_kind_name(n->kind));
	/* the http table's own entries, so parsing and messages are the same */
	for (o = usher_http_options; o->key && k + 1 < sizeof(table) / sizeof(table[0]); o++)
		for (i = 0; expect_keys[i]; i++)
			if (strcmp(o->key, expect_keys[i]) == 0)
				table[k++] = *o;
	table[k] = (struct usher_option)USHER_OPT_END;
	return usher_opts_apply1(ctx, table, field, n);
}

#define RQ_OFF(f) offsetof(struct jrequest, f)
static const struct usher_option request_options[] = {
    {.key = "method",
     .type = USHER_OPT_STR,
     .offset = RQ_OFF(method),
     .def = "GET",
     .help = "request method"},
    {.key = "url",
     .type = USHER_OPT_CUSTOM,
     .offset = RQ_OFF(url),
     .flags = USHER_OPT_REQUIRED,
     .parse = parse_tmpl,
     .help = "absolute http(s) URL, or a path appended to base_url; may use {{variables}}"},
    {.key = "headers",
     .type = USHER_OPT_CUSTOM,
     .offset = RQ_OFF(headers),
     .parse = parse_headers,
     .help = "headers of this step (over the journey's); values may use {{variables}} and "
	     "${env:NAME} / ${file:/path}"},
    {.key = "body",
     .type = USHER_OPT_CUSTOM,
     .offset = RQ_OFF(body),
     .parse = parse_tmpl,
     .help = "request body as text; may use {{variables}} and secrets"},
    {.key = "json",
     .type = USHER_OPT_CUSTOM,
     .offset = RQ_OFF(json),
     .parse = parse_json_body,
     .help = "request body as YAML turned into JSON (Content-Type: application/json); "
	     "{{variables}} are JSON-escaped"},
    USHER_OPT_END,
};

#define ST_OFF(f) offsetof(struct jstep, f)
static const struct usher_option step_options[] = {
    {.key = "name",
     .type = USHER_OPT_STR,
     .offset = ST_OFF(name),
     .flags = USHER_OPT_REQUIRED,
     .help = "unique in the journey: the step label of the step series"},
    {.key = "request",
     .type = USHER_OPT_SECTION,
     .offset = ST_OFF(request),
     .flags = USHER_OPT_REQUIRED,
     .sub = request_options,
     .help = "the request: method, url, headers, body or json"},
    {.key = "expect",
     .type = USHER_OPT_CUSTOM,
     .offset = ST_OFF(expect),
     .parse = parse_expect,
     .help = "the http probe's assertions: valid_status_codes (default 2xx), "
	     "fail_if_body_matches_regexp, fail_if_body_not_matches_regexp, "
	     "fail_if_header_matches, fail_if_header_not_matches, json"},
    {.key = "extract",
     .type = USHER_OPT_CUSTOM,
     .offset = ST_OFF(extract),
     .parse = parse_extract,
     .help = "variables taken from the response: NAME: {json: POINTER} | {header: NAME} | "
	     "{regex: RE}, each optionally with secret: true"},
    {.key = "timeout",
     .type = USHER_OPT_DURATION,
     .offset = ST_OFF(timeout_ms),
     .flags = USHER_OPT_POSITIVE,
     .help = "bound on this step (the journey's timeout bounds every step anyway)"},
    {.key = "always",
     .type = USHER_OPT_BOOL,
     .offset = ST_OFF(always),
     .def = "false",
     .help = "a clean-up step: runs even after an earlier step failed, unless a variable it "
	     "uses was never extracted"},
    USHER_OPT_END,
};

#define JO_OFF(f) offsetof(struct jopts, f)
static const struct usher_option journey_options[] = {
    {.key = "base_url",
     .type = USHER_OPT_STR,
     .offset = JO_OFF(base_url),
     .help = "http:// or https:// URL that relative step URLs are appended to"},
    {.key = "variables",
     .type = USHER_OPT_CUSTOM,
     .offset = JO_OFF(variables),
     .parse = parse_variables,
     .help = "name: value; values may use built-ins, earlier variables and secrets"},
    {.key = "headers",
     .type = USHER_OPT_CUSTOM,
     .offset = JO_OFF(headers),
     .parse = parse_headers,
     .help = "headers sent on every step (once their variables have values)"},
    {.key = "steps",
     .type = USHER_OPT_LIST,
     .offset = JO_OFF(steps),
     .flags = USHER_OPT_REQUIRED,
     .sub = step_options,
     .sub_size = sizeof(struct jstep),
     .help = "the steps, run in order; a failing step skips the rest but the always ones"},
    {.key = "redact",
     .type = USHER_OPT_STRLIST,
     .offset = JO_OFF(redact),
     .help = "JSON Pointers of response body fields shown as *** when a body is logged"},
    {.key = "tls",
     .type = USHER_OPT_SECTION,
     .offset = JO_OFF(tls),
     .sub = usher_tls_client_options,
     .help = "TLS client settings for every step"},
    {.key = "body_size_limit",
     .type = USHER_OPT_SIZE,
     .offset = JO_OFF(body_size_limit),
     .def = "10MiB",
     .flags = USHER_OPT_POSITIVE,
     .help = "fail a step (body_too_large) whose uncompressed response body is longer"},
    {.key = "cleanup_timeout",
     .type = USHER_OPT_DURATION,
     .offset = JO_OFF(cleanup_timeout_ms),
     .help = "time kept at the end of the journey's timeout for the always steps "
	     "(default: a quarter of the timeout when there are any)"},
    {.key = "follow_redirects",
     .type = USHER_OPT_BOOL,
     .offset = JO_OFF(follow_redirects),
     .def = "true",
     .help = "follow up to 10 redirects in each step"},
    USHER_OPT_END,
};

/* ---- cross-option checks ------------------------------------------------ */

static const char *const builtin_names[NBUILTINS] = {
    USHER_JOURNEY_BUILTIN_UUID, USHER_JOURNEY_BUILTIN_NOW, USHER_JOURNEY_BUILTIN_RANDOM};

static int slot_find(const struct jopts *o, const char *name)
{
	size_t i;

	for (i = 0; i < o->nslots; i++)
		if (strcmp(o->slot_names[i], name) == 0)
			return (int)i;
	return -1;
}

static const struct usher_ynode *at(const struct usher_ynode *map, const char *key)
{
	const struct usher_ynode *n = map ? usher_ynode_get(map, key) : NULL;

	return n ? n : map;
}

/* What a step may use: built-ins, variables, and what earlier steps
 * extract (step < 0: the journey's headers, which may use any). */
static enum usher_err resolve_refs(struct usher_cfgctx *ctx, struct jopts *o, struct tmpl *t,
				   int step, int *needs, size_t *nneeds, bool *secret)
{
	const struct jstep *steps = o->steps.v;
	enum usher_err rc = USHER_OK;
	size_t i, k;

	for (i = 0; t && i < t->n; i++) {
		struct seg *sg = &t->v[i];
		struct usher_ynode pos;
		int slot;

		if (sg->kind == SEG_SECRET && secret)
			*secret = true;
		if (sg->kind != SEG_VAR)
			continue;
		pos = *t->node;
		pos.line = sg->line;
		pos.col = sg->col;
		slot = slot_find(o, sg->text);
		if (slot < 0) {
			rc = usher_cfg_error(
			    ctx, &pos,
			    "unknown variable {{%s}}: not a built-in (uuid, now_unix, "
			    "random_int), not in variables, not extracted by any step",
			    sg->text);
			continue;
		}
		if (step >= 0 && o->slot_step[slot] >= step) {
			rc = usher_cfg_error(
			    ctx, &pos,
			    o->slot_step[slot] == step
				? "{{%s}} is extracted by this step (\"%s\") itself: it has no "
				  "value yet "
				  "when the request is sent"
				: "{{%s}} is extracted by step \"%s\", which runs after this one",
			    sg->text, steps[o->slot_step[slot]].name);
			continue;
		}
		sg->slot = slot;
		if (secret && o->slot_secret[slot])
			*secret = true;
		if (needs && o->slot_step[slot] >= 0) {
			for (k = 0; k < *nneeds; k++)
				if (needs[k] == slot)
					break;
			if (k == *nneeds)
				needs[(*nneeds)++] = slot;
		}
	}
	return rc;
}

static enum usher_err resolve_json(struct usher_cfgctx *ctx, struct jopts *o, struct jnode *j,
				   int step, int *needs, size_t *nneeds)
{
	enum usher_err rc = USHER_OK;
	size_t i;

	if (!j)
		return USHER_OK;
	if (j->kind == J_STR)
		return resolve_refs(ctx, o, j->str, step, needs, nneeds, NULL);
	for (i = 0; (j->kind == J_OBJ || j->kind == J_ARR) && i < j->n; i++)
		if (resolve_json(ctx, o, j->kids[i], step, needs, nneeds))
			rc = USHER_ERR_INVALID;
	return rc;
}

static size_t count_vars(const struct tmpl *t)
{
	size_t i, n = 0;

	for (i = 0; t && i < t->n; i++)
		n += t->v[i].kind == SEG_VAR;
	return n;
}

static size_t count_json_vars(const struct jnode *j)
{
	size_t i, n = 0;

	if (!j)
		return 0;
	if (j->kind == J_STR)
		return count_vars(j->str);
	for (i = 0; (j->kind == J_OBJ || j->kind == J_ARR) && i < j->n; i++)
		n += count_json_vars(j->kids[i]);
	return n;
}

static bool is_absolute(const char *s)
{
	return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

static enum usher_err check_step(struct usher_cfgctx *ctx, const struct usher_probe_conf *pc,
				 struct jopts *o, int i, const struct usher_ynode *item)
{
	struct jstep *st = &((struct jstep *)o->steps.v)[i];
	const struct usher_ynode *req = at(item, "request"), *exp = usher_ynode_get(item, "expect");
	bool head = st->request.method && strcmp(st->request.method, "HEAD") == 0;
	enum usher_err rc = USHER_OK;
	size_t cap = 0, k;

	cap += count_vars(st->request.url) + count_vars(st->request.body) +
	       count_json_vars(st->request.json);
	for (k = 0; k < st->request.headers.n; k++)
		cap += count_vars(st->request.headers.v[k].t);
	st->needs = usher_arena_zalloc(ctx->arena, (cap + 1) * sizeof(*st->needs));
	/* each part on its own, so one pass reports every bad reference */
	if (resolve_refs(ctx, o, st->request.url, i, st->needs, &st->nneeds, NULL))
		rc = USHER_ERR_INVALID;
	if (resolve_refs(ctx, o, st->request.body, i, st->needs, &st->nneeds, NULL))
		rc = USHER_ERR_INVALID;
	if (resolve_json(ctx, o, st->request.json, i, st->needs, &st->nneeds))
		rc = USHER_ERR_INVALID;
	for (k = 0; k < st->request.headers.n; k++)
		if (resolve_refs(ctx, o, st->request.headers.v[k].t, i, st->needs, &st->nneeds,
				 NULL))
			rc = USHER_ERR_INVALID;
	if (st->request.url && st->request.url->n && st->request.url->v[0].kind == SEG_LIT &&
	    !is_absolute(st->request.url->v[0].text) && !o->base_url &&
	    strstr(st->request.url->v[0].text, "://"))
		rc = usher_cfg_error(ctx, at(req, "url"), "url \"%s\": must be http:// or https://",
				     st->request.url->node->value);
	else if (st->request.url && !o->base_url &&
		 !(st->request.url->n && st->request.url->v[0].kind != SEG_LIT) &&
		 !(st->request.url->n && is_absolute(st->request.url->v[0].text)))
		rc = usher_cfg_error(ctx, at(req, "url"),
				     "url \"%s\" is relative, but the journey has no base_url",
				     st->request.url->node->value);
	if (st->request.method && !usher_http_is_token(st->request.method))
		rc =
		    usher_cfg_error(ctx, at(req, "method"),
				    "method \"%s\" is not a valid HTTP method", st->request.method);
	if (st->request.body && st->request.json)
		rc = usher_cfg_error(ctx, at(req, "json"), "set body or json, not both");
	if (head && (st->request.body || st->request.json))
		rc = usher_cfg_error(ctx, at(req, "body"), "method HEAD cannot send a body");
	if (exp && usher_http_opts_check(ctx, &st->expect, exp))
		rc = USHER_ERR_INVALID;
	if (head && (st->expect.json.n || st->expect.fail_if_body_not_matches_regexp.n))
		rc = usher_cfg_error(ctx, exp ? exp : item,
				     "method HEAD gets no body, so this can never pass");
	if (st->timeout_ms > pc->timeout_ms) {
		char a[32], b[32];

		usher_duration_format(st->timeout_ms, a, sizeof(a));
		usher_duration_format(pc->timeout_ms, b, sizeof(b));
		rc = usher_cfg_error(ctx, at(item, "timeout"),
				     "step timeout %s is longer than the journey's timeout %s", a,
				     b);
	}
	for (k = 0; k < st->extract.n; k++)
		st->need_head |= st->extract.v[k].header != NULL;
	return rc;
}

static enum usher_err journey_check(struct usher_cfgctx *ctx, struct usher_probe_conf *pc,
				    const struct usher_ynode *node)
{
	struct jopts *o = pc->opts;
	struct jstep *steps = o->steps.v;
	const struct usher_ynode *sn = usher_ynode_get(node, "steps");
	enum usher_err rc = USHER_OK;
	size_t i, k, nextract = 0, cap;
	bool any_always = false;

	if (o->base_url && !is_absolute(o->base_url))
		rc = usher_cfg_error(ctx, at(node, "base_url"),
				     "base_url \"%s\": must start with http:// or https://",
				     o->base_url);
	if (!o->steps.n)
		return usher_cfg_error(ctx, sn ? sn : node,
				       "steps: a journey needs at least one step");

	/* the variable slots: built-ins, variables, then extracted names */
	for (i = 0; i < o->steps.n; i++)
		nextract += steps[i].extract.n;
	cap = NBUILTINS + o->variables.n + nextract;
	o->slot_names = usher_arena_zalloc(ctx->arena, (cap + 1) * sizeof(*o->slot_names));
	o->slot_secret = usher_arena_zalloc(ctx->arena, (cap + 1) * sizeof(*o->slot_secret));
	o->slot_step = usher_arena_zalloc(ctx->arena, (cap + 1) * sizeof(*o->slot_step));
	for (i = 0; i < NBUILTINS; i++) {
		o->slot_step[o->nslots] = -1;
		o->slot_names[o->nslots++] = builtin_names[i];
	}
	for (i = 0; i < o->variables.n; i++) {
		struct jvardef *d = &o->variables.v[i];
		bool secret = false;

		if (slot_find(o, d->name) >= 0) {
			rc = usher_cfg_error(ctx, d->key, "variables: %s is a built-in variable",
					     d->name);
			d->slot = -1;
			continue;
		}
		/* a variable may use the built-ins and the variables above it */
		if (resolve_refs(ctx, o, d->t, -1, NULL, NULL, &secret))
			rc = USHER_ERR_INVALID;
		d->slot = (int)o->nslots;
		o->slot_secret[o->nslots] = secret;
		o->slot_step[o->nslots] = -1;
		o->slot_names[o->nslots++] = d->name;
	}
	for (i = 0; i < o->steps.n; i++) {
		for (k = 0; k < steps[i].extract.n; k++) {
			struct jextract *e = &steps[i].extract.v[k];
			int s = slot_find(o, e->var);

			if (s >= 0 && o->slot_step[s] < 0) {
				rc = usher_cfg_error(ctx, e->key,
						     "extract: %s is already a %s variable", e->var,
						     s < NBUILTINS ? "built-in" : "configured");
				continue;
			}
			if (s < 0) {
				s = (int)o->nslots;
				o->slot_step[s] = (int)i;
				o->slot_names[o->nslots++] = e->var;
			}
			e->slot = s;
			o->slot_secret[s] |= e->secret;
		}
	}
	for (i = 0; i < o->headers.n; i++)
		if (resolve_refs(ctx, o, o->headers.v[i].t, -1, NULL, NULL, NULL))
			rc = USHER_ERR_INVALID;
	for (i = 0; i < o->steps.n; i++) {
		const struct usher_ynode *item =
		    sn && sn->kind == USHER_Y_SEQ && i < sn->n ? sn->items[i] : node;

		for (k = 0; k < i; k++)
			if (strcmp(steps[k].name, steps[i].name) == 0) {
				rc = usher_cfg_error(
				    ctx, at(item, "name"),
				    "steps: the name \"%s\" is used by an earlier step: "
				    "step names must be unique",
				    steps[i].name);
				break;
			}
		if (!*steps[i].name)
			rc = usher_cfg_error(ctx, at(item, "name"),
					     "steps: a step name cannot be empty");
		if (check_step(ctx, pc, o, (int)i, item))
			rc = USHER_ERR_INVALID;
		any_always |= steps[i].always;
	}
	for (i = 0; i < o->redact.n; i++) {
		struct usher_error err;
		const struct usher_ynode *rn = usher_ynode_get(node, "redact");

		usher_error_clear(&err);
		if (usher_jsonptr_check(o->redact.v[i], &err))
			rc = usher_cfg_error(
			    ctx,
			    rn && rn->kind == USHER_Y_SEQ && i < rn->n ? rn->items[i]
								       : at(node, "redact"),
			    "redact: invalid JSON Pointer \"%s\": %s", o->redact.v[i], err.msg);
	}
	if (o->cleanup_timeout_ms) {
		if (o->cleanup_timeout_ms >= pc->timeout_ms)
			rc = usher_cfg_error(ctx, at(node, "cleanup_timeout"),
					     "cleanup_timeout must be shorter than the timeout");
		o->reserve_ms = o->cleanup_timeout_ms;
	} else {
		o->reserve_ms = any_always ? pc->timeout_ms / 4 : 0;
	}
	return rc;
}

static const char *journey_default_instance(struct usher_arena *a,
					    const struct usher_probe_conf *pc)
{
	const struct jopts *o = pc->opts;
	const struct jstep *st = o->steps.v;

	if (o->base_url)
		return usher_http_instance(a, o->base_url);
	if (o->steps.n && st[0].request.url && st[0].request.url->n == 1 &&
	    st[0].request.url->v[0].kind == SEG_LIT)
		return usher_http_instance(a, st[0].request.url->v[0].text);
	return pc->name;
}

/* ---- redaction ---------------------------------------------------------- */

/* Replaces the value at ptr in doc by "***". */
static void redact_one(json_t *doc, const char *ptr)
{
	struct usher_error err;
	const char *slash = strrchr(ptr, '/');
	json_t *parent = NULL, *v = NULL;
	char *parent_ptr, *tok;
	size_t i, o = 0;

	usher_error_clear(&err);
	if (!slash || usher_jsonptr_get(doc, ptr, &v, &err))
		return;
	parent_ptr = usher_strndup(ptr, (size_t)(slash - ptr));
	tok = usher_strdup(slash + 1);
	/* unescape ~1 and ~0 */
	for (i = 0; tok[i]; i++) {
		if (tok[i] == '~' && tok[i + 1] == '1') {
			tok[o++] = '/';
			i++;
		} else if (tok[i] == '~' && tok[i + 1] == '0') {
			tok[o++] = '~';
			i++;
		} else {
			tok[o++] = tok[i];
		}
	}
	tok[o] = '\0';
	if (!usher_jsonptr_get(doc, parent_ptr, &parent, &err)) {
		if (json_is_object(parent))
			json_object_set_new(parent, tok, json_string(MASK));
		else if (json_is_array(parent))
			json_array_set_new(parent, strtoul(tok, NULL, 10), json_string(MASK));
	}
	free(parent_ptr);
	free(tok);
}

void usher_journey_redact(const char *body, size_t len, const struct usher_strlist *redact,
			  const char *const *secrets, size_t max, struct usher_buf *out)
{
	struct usher_buf tmp;
	char *dump = NULL;
	const char *text = body ? body : "";
	size_t tlen = body ? len : 0, i, k;

	usher_buf_init(&tmp, max + 8);
	if (tlen && tlen <= REDACT_PARSE_MAX) {
		json_error_t jerr;
		json_t *doc = json_loadb(text, tlen, JSON_DECODE_ANY, &jerr);

		if (doc) {
			for (i = 0; redact && i < redact->n; i++)
				redact_one(doc, redact->v[i]);
			dump = json_dumps(doc, JSON_ENCODE_ANY | JSON_COMPACT);
			json_decref(doc);
			if (dump) {
				text = dump;
				tlen = strlen(dump);
			}
		}
	}
	for (i = 0; i < tlen && tmp.len < max;) {
		bool masked = false;

		for (k = 0; secrets && secrets[k]; k++) {
			size_t sl = strlen(secrets[k]);

			if (sl >= 3 && sl <= tlen - i && memcmp(text + i, secrets[k], sl) == 0) {
				usher_buf_addstr(&tmp, MASK);
				i += sl;
				masked = true;
				break;
			}
		}
		if (masked)
			continue;
		{
			unsigned char c = (unsigned char)text[i];

			/* one line: line breaks and tabs become spaces */
			usher_buf_addc(&tmp, c == '\n' || c == '\r' || c == '\t' ? ' '
					     : c >= 0x20 && c != 0x7f            ? (char)c
										 : '?');
		}
		i++;
	}
	if (tmp.len > max) {
		tmp.len = max;
		tmp.data[max] = '\0';
	}
	usher_buf_add(out, tmp.data ? tmp.data : "", tmp.len);
	if (i < tlen)
		usher_buf_addstr(out, "...");
	free(dump);
	usher_buf_free(&tmp);
}

/* ---- the run ------------------------------------------------------------ */

struct step_rec {
	bool ran, ok;
	const char *skipped; /* why, when it did not run */
	bool regex_failed;
	double secs;
	struct usher_http_result res; /* without head and body */
};

struct journey {
	const struct usher_probe_conf *pc;
	const struct jopts *o;
	const struct jstep *steps;
	size_t nsteps;
	struct usher_loop *loop;
	struct usher_log *log;
	struct usher_http_checks **checks;     /* per step */
	struct usher_http_regex ***extract_re; /* per step, per extract (NULL unless regex) */
	const char **secrets; /* the secrets written in the config, NULL-terminated */
	size_t nsecrets;
	uint64_t cleanup_failures;
	struct usher_complain complain;

	/* the run in flight */
	struct usher_probe_run *run;
	CURLSH *share;
	struct usher_http_exchange ex;
	struct usher_http_opts cur;
	size_t at;
	bool failed;
	const char *fail_step;
	struct val *vals;
	struct step_rec *recs;
	int64_t step_started_ns;
	char what[640];
};

static const struct usher_metric_desc desc_step_success = {
    "usher_journey_step_success", USHER_METRIC_GAUGE,
    "Whether the journey step succeeded in the last run (absent when it did not run)"};
static const struct usher_metric_desc desc_step_duration = {
    "usher_journey_step_duration_seconds", USHER_METRIC_GAUGE,
    "Duration of the journey step in the last run"};
static const struct usher_metric_desc desc_step_status = {
    "usher_journey_step_status_code", USHER_METRIC_GAUGE,
    "HTTP status code of the journey step's final response (0 without one)"};
static const struct usher_metric_desc desc_cleanup_failures = {
    "usher_journey_cleanup_failures", USHER_METRIC_COUNTER,
    "Clean-up (always) steps that failed: each may have left a seat held"};
/* the scheduler's family, with the step label added */
static const struct usher_metric_desc desc_failure = {
    "probe_failure_info", USHER_METRIC_GAUGE,
    "Why the last run of the probe failed, as the reason label; absent after a success"};

static void collect_secrets_tmpl(struct journey *j, const struct tmpl *t, size_t *cap)
{
	size_t i;

	for (i = 0; t && i < t->n; i++) {
		if (t->v[i].kind != SEG_SECRET)
			continue;
		if (j->nsecrets + 1 >= *cap) {
			*cap = *cap ? *cap * 2 : 8;
			j->secrets = usher_realloc(j->secrets, *cap * sizeof(*j->secrets));
		}
		j->secrets[j->nsecrets++] = t->v[i].text;
		j->secrets[j->nsecrets] = NULL;
	}
}

static void collect_secrets_json(struct journey *j, const struct jnode *n, size_t *cap)
{
	size_t i;

	if (!n)
		return;
	if (n->kind == J_STR)
		collect_secrets_tmpl(j, n->str, cap);
	for (i = 0; (n->kind == J_OBJ || n->kind == J_ARR) && i < n->n; i++)
		collect_secrets_json(j, n->kids[i], cap);
}

static void drop_share(struct journey *j)
{
	if (j->share)
		curl_share_cleanup(j->share);
	j->share = NULL;
}

static void journey_cancel(void *ctx, struct usher_probe_run *run)
{
	struct journey *j = ctx;

	(void)run;
	usher_http_exchange_cancel(&j->ex);
	drop_share(j);
	j->run = NULL;
}

static void journey_free(void *ctx)
{
	struct journey *j = ctx;
	size_t i, k;

	if (!j)
		return;
	journey_cancel(j, NULL);
	for (i = 0; j->checks && i < j->nsteps; i++)
		usher_http_checks_free(j->checks[i]);
	for (i = 0; j->extract_re && i < j->nsteps; i++) {
		for (k = 0; j->extract_re[i] && k < j->steps[i].extract.n; k++)
			usher_http_regex_free(j->extract_re[i][k]);
		free(j->extract_re[i]);
	}
	free(j->checks);
	free(j->extract_re);
	free(j->secrets);
	free(j);
}

static enum usher_err journey_init(const struct usher_probe_conf *pc,
				   const struct usher_probe_env *env, void **ctx,
				   struct usher_error *err)
{
	struct journey *j = usher_calloc(1, sizeof(*j));
	enum usher_err rc = USHER_OK;
	size_t i, k, cap = 0;

	*ctx = NULL;
	j->pc = pc;
	j->o = pc->opts;
	j->steps = j->o->steps.v;
	j->nsteps = j->o->steps.n;
	j->loop = env->loop;
	j->log = env->log;
	j->checks = usher_calloc(j->nsteps + 1, sizeof(*j->checks));
	j->extract_re = usher_calloc(j->nsteps + 1, sizeof(*j->extract_re));
	for (i = 0; !rc && i < j->nsteps; i++) {
		const struct jstep *st = &j->steps[i];

		rc = usher_http_checks_new(&st->expect, &j->checks[i], err);
		j->extract_re[i] = usher_calloc(st->extract.n + 1, sizeof(*j->extract_re[i]));
		for (k = 0; !rc && k < st->extract.n; k++)
			if (st->extract.v[k].regex &&
			    usher_http_regex_new(st->extract.v[k].regex, &j->extract_re[i][k], err))
				rc = usher_fail(err, USHER_ERR_INVALID, "step %s: invalid regex",
						st->name);
		collect_secrets_tmpl(j, st->request.url, &cap);
		collect_secrets_tmpl(j, st->request.body, &cap);
		collect_secrets_json(j, st->request.json, &cap);
		for (k = 0; k < st->request.headers.n; k++)
			collect_secrets_tmpl(j, st->request.headers.v[k].t, &cap);
	}
	for (i = 0; i < j->o->headers.n; i++)
		collect_secrets_tmpl(j, j->o->headers.v[i].t, &cap);
	for (i = 0; i < j->o->variables.n; i++)
		collect_secrets_tmpl(j, j->o->variables.v[i].t, &cap);
	if (rc) {
		journey_free(j);
		return rc;
	}
	*ctx = j;
	return USHER_OK;
}

/* A rendered string in the run's arena; the scratch buffer is wiped, it
 * may have held a secret. */
static const char *take(struct usher_arena *a, struct usher_buf *b)
{
	const char *s = usher_arena_strndup(a, usher_buf_str(b), b->len);

	if (b->data)
		memset(b->data, 0, b->cap);
	usher_buf_free(b);
	return s;
}

/* Renders t (or, when json is set, that JSON body) with the run's values
 * into *out, a string of the run's arena, of at most max bytes. Returns
 * render's error; *out is set (perhaps partly rendered) either way. */
static enum usher_err render_str(struct journey *j, const struct tmpl *t, const struct jnode *json,
				 bool mask, enum esc e, size_t max, const char **out)
{
	struct usher_buf b;
	enum usher_err rc;

	usher_buf_init(&b, max);
	rc = json ? render_json(json, j->vals, mask, &b, NULL)
		  : render(t, j->vals, mask, e, &b, NULL);
	*out = take(j->run->arena, &b);
	return rc;
}

/* Why a rendering failed, for a message: too long (limit says how long it
 * may be), or a variable without a value. */
static const char *render_why(enum usher_err rc, const char *limit)
{
	return rc == USHER_ERR_TOOBIG ? limit : "a variable has no value";
}

/* Sets the built-ins and the configured variables for a new run. */
static void set_variables(struct journey *j)
{
	struct usher_arena *a = j->run->arena;
	unsigned char r[20];
	char uuid[40];
	uint32_t rnd;
	size_t i, got = 0;

	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* no entropy source: still unique per run in practice */
			uint64_t t = (uint64_t)usher_mono_ns() ^ ((uint64_t)usher_now_ms() << 20);

			for (; got < sizeof(r); got++)
				r[got] = (unsigned char)(t >> ((got % 8) * 8)) ^ (unsigned char)got;
			break;
		}
		got += (size_t)n;
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(uuid, sizeof(uuid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
		 r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
		 r[15]);
	memcpy(&rnd, r + 16, sizeof(rnd));
	j->vals[0].s = usher_arena_strdup(a, uuid);
	j->vals[1].s = usher_arena_printf(a, "%lld", (long long)time(NULL));
	j->vals[2].s = usher_arena_printf(a, "%u", (unsigned)(rnd & 0x7fffffffu));
	for (i = 0; i < NBUILTINS; i++) {
		j->vals[i].len = strlen(j->vals[i].s);
		j->vals[i].set = true;
		j->vals[i].raw_json = i > 0; /* numbers */
	}
	for (i = 0; i < j->o->variables.n; i++) {
		const struct jvardef *d = &j->o->variables.v[i];
		struct val *v;
		const char *s;

		if (d->slot < 0)
			continue;
		v = &j->vals[d->slot];
		if (render_str(j, d->t, NULL, false, ESC_RAW, BODY_MAX, &s))
			continue; /* too large: stays unset, its steps are skipped */
		v->s = s;
		v->len = strlen(s);
		v->set = true;
		v->secret = j->o->slot_secret[d->slot];
	}
}

/* A NULL-terminated list of every secret value this run knows. */
static const char *const *run_secrets(struct journey *j)
{
	const char **v =
	    usher_arena_zalloc(j->run->arena, (j->nsecrets + j->o->nslots + 1) * sizeof(*v));
	size_t i, n = 0;

	for (i = 0; i < j->nsecrets; i++)
		v[n++] = j->secrets[i];
	for (i = 0; i < j->o->nslots; i++)
		if (j->vals[i].set && j->vals[i].secret)
			v[n++] = j->vals[i].s;
	v[n] = NULL;
	return v;
}

static void step_trace(struct journey *j, const struct jstep *st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void step_trace(struct journey *j, const struct jstep *st, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!j->run->trace)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	usher_probe_trace(j->run, "step %zu/%zu %s: %s", j->at + 1, j->nsteps, st->name, line);
}

/* Records a step's failure in the run (the first one names the journey's
 * failure) and counts failed clean-ups. */
static void step_failed(struct journey *j, const struct jstep *st, struct step_rec *rec,
			const char *reason, const char *msg)
{
	rec->ok = false;
	usher_probe_fail(j->run, reason, "%s", msg);
	if (!j->failed) {
		j->failed = true;
		j->fail_step = st->name;
	}
	if (st->always)
		j->cleanup_failures++;
}

/* Renders the step's URL (joined to base_url), unmasked or masked. */
static enum usher_err render_url(struct journey *j, const struct jstep *st, bool mask,
				 const char **out)
{
	const char *url;
	enum usher_err rc = render_str(j, st->request.url, NULL, mask, ESC_URL, URL_MAX, &url);

	if (rc)
		return rc;
	if (!is_absolute(url) && j->o->base_url) {
		size_t bl = strlen(j->o->base_url);

		while (bl && j->o->base_url[bl - 1] == '/')
			bl--;
		url = usher_arena_printf(j->run->arena, "%.*s%s%s", (int)bl, j->o->base_url,
					 *url == '/' ? "" : "/", url);
	}
	*out = url;
	return USHER_OK;
}

static bool has_header(const struct usher_kv *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(v[i].key, name) == 0)
			return true;
	return false;
}

/* The step's headers: its own, then the journey's it does not override
 * (those whose variables have no value yet are left out), then a JSON
 * Content-Type for a json body. */
static enum usher_err build_headers(struct journey *j, const struct jstep *st,
				    struct usher_strmap *out, char *why, size_t whylen)
{
	const struct jheaders *hs[2] = {&st->request.headers, &j->o->headers};
	size_t total = st->request.headers.n + j->o->headers.n + 1, h, i;
	struct usher_kv *v = usher_arena_zalloc(j->run->arena, total * sizeof(*v));
	size_t n = 0;

	for (h = 0; h < 2; h++) {
		for (i = 0; i < hs[h]->n; i++) {
			const struct jheader *e = &hs[h]->v[i];
			enum usher_err rc;
			const char *val;

			if (h == 1 && has_header(v, n, e->name))
				continue;
			rc = render_str(j, e->t, NULL, false, ESC_RAW, HEADER_MAX, &val);
			if (rc == USHER_ERR_NOTFOUND && h == 1)
				continue;
			if (rc) {
				snprintf(why, whylen, "header %s: %s", e->name,
					 render_why(rc, "longer than 64KiB"));
				return rc;
			}
			if (strpbrk(val, "\r\n")) {
				snprintf(why, whylen,
					 "header %s: a substituted value contains a line break",
					 e->name);
				return USHER_ERR_INVALID;
			}
			v[n].key = e->name;
			v[n++].value = val;
		}
	}
	if (st->request.json && !has_header(v, n, "Content-Type")) {
		v[n].key = "Content-Type";
		v[n++].value = "application/json";
	}
	out->n = n;
	out->v = v;
	return USHER_OK;
}

static void finish(struct journey *j);
static bool advance(struct journey *j);
static void step_done(struct usher_http_exchange *ex);

/* Starts step j->at. Returns true when its exchange is in flight; false
 * when it failed before any request (recorded). */
static bool step_begin(struct journey *j)
{
	const struct jstep *st = &j->steps[j->at];
	struct step_rec *rec = &j->recs[j->at];
	struct usher_http_opts *o = &j->cur;
	const char *url = NULL, *shown = NULL, *method = st->request.method;
	int64_t now = usher_mono_ms(), deadline;
	struct usher_error err;
	char why[256], msg[900];
	enum usher_err rc;

	*o = st->expect;
	o->method = method;
	o->tls = j->o->tls;
	o->body_size_limit = j->o->body_size_limit;
	o->follow_redirects = j->o->follow_redirects;
	o->ip_protocol = 0;
	o->ip_protocol_fallback = true;
	o->keep_body = true;
	o->keep_head = st->need_head;
	rec->ran = true;
	why[0] = '\0';
	rc = render_url(j, st, false, &url);
	if (!rc)
		rc = render_url(j, st, true, &shown);
	snprintf(j->what, sizeof(j->what), "step \"%s\" %s %s", st->name, method,
		 shown ? shown : "(url)");
	if (rc) {
		snprintf(why, sizeof(why), "url: %s", render_why(rc, "longer than 64KiB"));
		goto failed;
	}
	o->url = url;
	rc = build_headers(j, st, &o->headers, why, sizeof(why));
	if (rc)
		goto failed;
	if (st->request.json || st->request.body) {
		rc = render_str(j, st->request.body, st->request.json, false, ESC_RAW, BODY_MAX,
				&o->body);
		if (rc) {
			snprintf(why, sizeof(why), "body: %s", render_why(rc, "longer than 1MiB"));
			goto failed;
		}
	}
	deadline = j->run->deadline_mono_ms - (st->always ? 0 : j->o->reserve_ms);
	if (st->timeout_ms && now + st->timeout_ms < deadline)
		deadline = now + st->timeout_ms;
	j->ex.done = step_done;
	j->ex.owner = j;
	j->ex.share = j->share;
	usher_error_clear(&err);
	j->step_started_ns = usher_mono_ns();
	rc = usher_http_exchange_start(&j->ex, j->loop, o, j->checks[j->at], deadline, &err);
	if (!rc)
		return true;
	if (rc == USHER_ERR_TIMEOUT) {
		snprintf(msg, sizeof(msg),
			 "%s: the journey's timeout%s was reached before the step", j->what,
			 st->always ? "" : " (less cleanup_timeout)");
		step_failed(j, st, rec, USHER_FAIL_TIMEOUT, msg);
		step_trace(j, st, "%s %s -> not sent: out of time", method, shown);
		return false;
	}
	snprintf(why, sizeof(why), "%s", usher_error_msg(&err, rc));
failed:
	snprintf(msg, sizeof(msg), "%s: %s", j->what, why);
	step_failed(j, st, rec, USHER_FAIL_INTERNAL, msg);
	step_trace(j, st, "%s %s -> not sent: %s", method, shown ? shown : "(url)", why);
	return false;
}

/* ---- extraction --------------------------------------------------------- */

static void set_val(struct journey *j, const struct jextract *e, const char *s, size_t n, bool raw)
{
	struct val *v = &j->vals[e->slot];

	v->s = usher_arena_strndup(j->run->arena, s, n);
	v->len = strlen(v->s); /* a NUL inside ends the value */
	v->set = true;
	v->secret = j->o->slot_secret[e->slot];
	v->raw_json = raw;
}

/* A parsed body, loaded on first use by the extractions of one step. */
struct lazy_doc {
	json_t *doc;
	bool tried;
};

/* Runs extraction k of the step on the finished exchange (body is its
 * body, never NULL). On a miss, writes why into msg and returns false. */
static bool extract_one(struct journey *j, const struct jextract *e, size_t k,
			const struct usher_http_result *r, const char *body, struct lazy_doc *ld,
			char *msg, size_t len)
{
	const char *v = NULL;
	size_t off = 0, n = 0;

	if (e->json) {
		struct usher_error err;
		json_error_t jerr;
		json_t *jv = NULL;
		char *d;

		if (!ld->tried) {
			ld->tried = true;
			ld->doc = json_loadb(body, r->body.len, JSON_DECODE_ANY, &jerr);
		}
		if (!ld->doc) {
			snprintf(msg, len, "extract %s: the body is not JSON", e->var);
			return false;
		}
		usher_error_clear(&err);
		if (usher_jsonptr_get(ld->doc, e->json, &jv, &err)) {
			snprintf(msg, len, "extract %s: json %s not found (%.200s)", e->var,
				 *e->json ? e->json : "\"\"", err.msg);
			return false;
		}
		if (json_is_string(jv)) {
			set_val(j, e, json_string_value(jv), json_string_length(jv), false);
			return true;
		}
		d = json_dumps(jv, JSON_ENCODE_ANY | JSON_COMPACT);
		set_val(j, e, d ? d : "null", d ? strlen(d) : 4, true);
		free(d);
		return true;
	}
	if (e->header) {
		if (!usher_http_header_next(r->head.data ? r->head.data : "", r->head.len, &off,
					    e->header, &v, &n)) {
			snprintf(msg, len, "extract %s: no header %s in the response", e->var,
				 e->header);
			return false;
		}
		set_val(j, e, v, n, false);
		return true;
	}
	switch (usher_http_regex_capture(j->extract_re[j->at][k], body, r->body.len, &off, &n)) {
	case USHER_HTTP_RX_MATCH: set_val(j, e, body + off, n, false); return true;
	case USHER_HTTP_RX_NOMEM: snprintf(msg, len, "extract %s: out of memory", e->var); break;
	case USHER_HTTP_RX_UNSET:
		snprintf(msg, len, "extract %s: regex group 1 did not take part in the match",
			 e->var);
		break;
	case USHER_HTTP_RX_NOMATCH:
		snprintf(msg, len, "extract %s: regex \"%s\" does not match the body", e->var,
			 e->regex);
		break;
	case USHER_HTTP_RX_ERROR:
		snprintf(msg, len, "extract %s: regex \"%s\" could not be evaluated", e->var,
			 e->regex);
		break;
	}
	return false;
}

/* Runs the step's extractions, in order, up to the first miss (why in
 * msg, and false). */
static bool extract(struct journey *j, const struct jstep *st, const struct usher_http_result *r,
		    char *msg, size_t len)
{
	const char *body = r->body.data ? r->body.data : "";
	struct lazy_doc ld = {NULL, false};
	bool ok = true;
	size_t k;

	for (k = 0; ok && k < st->extract.n; k++)
		ok = extract_one(j, &st->extract.v[k], k, r, body, &ld, msg, len);
	json_decref(ld.doc);
	return ok;
}

/* "hold_id=abc, token=***" for the trace. */
static void describe_extracted(const struct journey *j, const struct jstep *st, char *out,
			       size_t len)
{
	size_t k, o = 0;

	out[0] = '\0';
	for (k = 0; k < st->extract.n && o < len; k++) {
		const struct val *v = &j->vals[st->extract.v[k].slot];
		int n;

		if (!v->set)
			continue;
		n = snprintf(out + o, len - o, "%s%s=%.*s%s", o ? ", " : "", st->extract.v[k].var,
			     v->secret ? 3 : (int)(v->len > 80 ? 80 : v->len),
			     v->secret ? MASK : v->s, !v->secret && v->len > 80 ? "..." : "");
		if (n < 0)
			break;
		o += (size_t)n;
	}
}

/* ---- steps -------------------------------------------------------------- */

static void log_failure(struct journey *j, const struct jstep *st,
			const struct usher_http_result *r, const char *msg)
{
	struct usher_buf shown;
	uint64_t held = 0;

	if (!j->log && !j->run->trace)
		return;
	usher_buf_init(&shown, USHER_JOURNEY_BODY_SHOWN + 8);
	if (r->body.len)
		usher_journey_redact(r->body.data, r->body.len, &j->o->redact, run_secrets(j),
				     USHER_JOURNEY_BODY_SHOWN, &shown);
	if (j->run->trace && shown.len)
		usher_probe_trace(j->run, "  response body: %s", usher_buf_str(&shown));
	if (j->log && usher_complain(&j->complain, usher_now_ms(), &held)) {
		struct usher_log_field f[] = {
		    USHER_LFS("event.action", "journey-step-failed"),
		    USHER_LFS("event.kind", "event"),
		    USHER_LFS("event.outcome", "failure"),
		    USHER_LFS("usher.probe.name", j->pc->name),
		    USHER_LFS("usher.probe.type", "journey"),
		    USHER_LFS("usher.journey.step", st->name),
		    USHER_LFB("usher.journey.cleanup", st->always),
		    USHER_LFI("http.response.status_code", r->status),
		    USHER_LFS("http.response.body.content",
			      shown.len ? usher_buf_str(&shown) : NULL),
		    USHER_LFS("error.message", msg),
		    USHER_LFI("usher.probe.failures_held_back", (int64_t)held),
		};
		usher_log_event(j->log, st->always ? USHER_LOG_ERROR : USHER_LOG_WARN, f,
				sizeof(f) / sizeof(f[0]), "journey %s: %s%s", j->pc->name, msg,
				st->always ? " (a clean-up step: a seat may stay held)" : "");
	}
	usher_buf_free(&shown);
}

static void step_done(struct usher_http_exchange *ex)
{
	struct journey *j = ex->owner;
	const struct jstep *st = &j->steps[j->at];
	struct step_rec *rec = &j->recs[j->at];
	struct usher_probe_run sr;
	char line[512], msg[900], got[400];

	rec->secs = (double)(usher_mono_ns() - j->step_started_ns) / 1e9;
	memset(&sr, 0, sizeof(sr));
	sr.conf = j->run->conf;
	sr.arena = j->run->arena;
	sr.success = true;
	rec->ok = usher_http_evaluate(ex, j->checks[j->at], &sr, j->what, &rec->regex_failed);
	if (rec->ok && !extract(j, st, &ex->res, got, sizeof(got))) {
		usher_probe_fail(&sr, USHER_FAIL_EXTRACT, "%s: %s", j->what, got);
		rec->ok = false;
	}
	if (!rec->ok && sr.failure_reason && strcmp(sr.failure_reason, USHER_FAIL_TIMEOUT) == 0 &&
	    !st->always && j->o->reserve_ms) {
		snprintf(msg, sizeof(msg),
			 "%s (the journey keeps %lldms of its timeout for clean-up)", sr.err.msg,
			 (long long)j->o->reserve_ms);
		{
			size_t n = strlen(msg);

			if (n >= sizeof(sr.err.msg))
				n = sizeof(sr.err.msg) - 1;
			memcpy(sr.err.msg, msg, n);
			sr.err.msg[n] = '\0';
		}
	}
	usher_http_format_result(&ex->res, rec->secs, line, sizeof(line));
	if (rec->ok) {
		describe_extracted(j, st, got, sizeof(got));
		step_trace(j, st, "%s %s%s%s", j->what + strlen(st->name) + 8, line,
			   got[0] ? "; extracted " : "", got);
	} else {
		step_trace(j, st, "%s %s; failed: %s", j->what + strlen(st->name) + 8, line,
			   sr.err.msg);
		step_failed(j, st, rec, sr.failure_reason ? sr.failure_reason : USHER_FAIL_INTERNAL,
			    sr.err.msg);
		log_failure(j, st, &ex->res, sr.err.msg);
	}
	rec->res = ex->res;
	memset(&rec->res.head, 0, sizeof(rec->res.head));
	memset(&rec->res.body, 0, sizeof(rec->res.body));
	usher_http_exchange_cleanup(ex);
	j->at++;
	if (!advance(j))
		finish(j);
}

/* Starts the next step that should run. Returns true when one is in
 * flight, false when the journey is over. */
static bool advance(struct journey *j)
{
	for (; j->at < j->nsteps; j->at++) {
		const struct jstep *st = &j->steps[j->at];
		struct step_rec *rec = &j->recs[j->at];
		size_t k;

		if (j->failed && !st->always) {
			rec->skipped = "an earlier step failed";
			step_trace(j, st, "skipped (%s)", rec->skipped);
			continue;
		}
		for (k = 0; k < st->nneeds; k++)
			if (!j->vals[st->needs[k]].set)
				break;
		if (k < st->nneeds) {
			rec->skipped =
			    usher_arena_printf(j->run->arena, "{{%s}} was never extracted",
					       j->o->slot_names[st->needs[k]]);
			step_trace(j, st, "skipped (%s)", rec->skipped);
			continue;
		}
		if (step_begin(j))
			return true;
	}
	return false;
}

static void emit_series(struct journey *j)
{
	struct usher_sample_set *s = j->run->samples;
	size_t i;

	for (i = 0; i < j->nsteps; i++) {
		const struct step_rec *rec = &j->recs[i];
		const char *extra[] = {"step", j->steps[i].name, NULL};

		if (!rec->ran)
			continue;
		usher_sample_add(s, &desc_step_success, rec->ok ? 1 : 0, "step", j->steps[i].name,
				 NULL);
		usher_sample_add(s, &desc_step_duration, rec->secs, "step", j->steps[i].name, NULL);
		usher_sample_add(s, &desc_step_status, (double)rec->res.status, "step",
				 j->steps[i].name, NULL);
		usher_http_emit(s, &rec->res, rec->regex_failed, extra);
	}
	if (j->fail_step && j->run->failure_reason)
		usher_sample_add(s, &desc_failure, 1, "reason", j->run->failure_reason, "step",
				 j->fail_step, NULL);
	usher_sample_add(s, &desc_cleanup_failures, (double)j->cleanup_failures, NULL);
}

static void wrap_up(struct journey *j)
{
	emit_series(j);
	if (j->run->success)
		usher_complain_release(&j->complain);
	drop_share(j);
}

static void finish(struct journey *j)
{
	struct usher_probe_run *run = j->run;

	wrap_up(j);
	j->run = NULL;
	usher_probe_run_done(run);
}

static enum usher_err journey_start(void *ctx, struct usher_probe_run *run)
{
	struct journey *j = ctx;
	CURLSHcode sc = CURLSHE_OK;

	j->run = run;
	j->at = 0;
	j->failed = false;
	j->fail_step = NULL;
	j->vals = usher_arena_zalloc(run->arena, (j->o->nslots + 1) * sizeof(*j->vals));
	j->recs = usher_arena_zalloc(run->arena, (j->nsteps + 1) * sizeof(*j->recs));
	j->share = curl_share_init();
	if (j->share) {
		sc = curl_share_setopt(j->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE);
		if (sc == CURLSHE_OK)
			sc = curl_share_setopt(j->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
		if (sc == CURLSHE_OK)
			sc = curl_share_setopt(j->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	}
	if (!j->share || sc != CURLSHE_OK) {
		usher_probe_fail(run, USHER_FAIL_INTERNAL,
				 "journey: cannot set up a curl share: %s",
				 j->share ? curl_share_strerror(sc) : "out of memory");
		drop_share(j);
		j->run = NULL;
		return USHER_ERR_INTERNAL;
	}
	set_variables(j);
	if (advance(j))
		return USHER_OK;
	/* no step got as far as a request: this is the run's result */
	wrap_up(j);
	j->run = NULL;
	return USHER_ERR_INTERNAL;
}

const struct usher_probe_type usher_probe_journey = {
    .name = "journey",
    .help = "multi-step synthetic transaction (search, seat map, hold, checkout, release) with "
	    "variables, extraction and clean-up steps",
    .series = USHER_SERIES_PROBE_OWN_FAILURE,
    .options = journey_options,
    .opts_size = sizeof(struct jopts),
    .check = journey_check,
    .default_instance = journey_default_instance,
    .init = journey_init,
    .start = journey_start,
    .cancel = journey_cancel,
    .free = journey_free,
};
