/* Alertmanager's label matchers: parsing (classic and quoted names),
 * matching with fully anchored PCRE2 regexes, and their string forms. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "notify/matchers.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"

#define MATCHER_MAX (64 * 1024)
#define MATCH_LIMIT 1000000 /* pcre2_match steps per label value */

const char *usher_am_match_type_str(enum usher_am_match_type t)
{
	switch (t) {
	case USHER_AM_MATCH_EQ: return "=";
	case USHER_AM_MATCH_NE: return "!=";
	case USHER_AM_MATCH_RE: return "=~";
	case USHER_AM_MATCH_NRE: return "!~";
	}
	return "?";
}

static void *arena_malloc(PCRE2_SIZE n, void *arg)
{
	return usher_arena_alloc(arg, n);
}

static void arena_nofree(void *p, void *arg)
{
	(void)p;
	(void)arg;
}

static enum usher_err compile(const char *value, struct usher_arena *arena, pcre2_code **out,
			      struct usher_error *err)
{
	pcre2_compile_context *cctx = NULL;
	int code;
	PCRE2_SIZE off;

	/* the code (and the contexts) in the arena: freed with it */
	if (arena)
		cctx = pcre2_compile_context_create(
		    pcre2_general_context_create(arena_malloc, arena_nofree, arena));

	/* ^(?:re)$ as Alertmanager; ENDANCHORED so a trailing newline does not
	 * slip through $ as it would in PCRE's default mode */
	*out = pcre2_compile((PCRE2_SPTR)value, PCRE2_ZERO_TERMINATED,
			     PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF, &code, &off, cctx);
	if (!*out) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(code, msg, sizeof(msg));
		return usher_fail(err, USHER_ERR_INVALID,
				  "invalid regular expression \"%s\": %s at offset %zu", value,
				  (const char *)msg, (size_t)off);
	}
	if (!arena)
		pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
	return USHER_OK;
}

static void matcher_free(struct usher_am_matchers *ms, struct usher_am_matcher *m)
{
	if (ms->arena)
		return;
	free(m->name);
	free(m->value);
	pcre2_code_free(m->re);
}

enum usher_err usher_am_matchers_add(struct usher_am_matchers *ms, enum usher_am_match_type t,
				     const char *name, const char *value, struct usher_error *err)
{
	struct usher_am_matcher m = {.type = t};

	if (t == USHER_AM_MATCH_RE || t == USHER_AM_MATCH_NRE) {
		pcre2_code *re;
		enum usher_err rc = compile(value, ms->arena, &re, err);

		if (rc)
			return rc;
		m.re = re;
	}
	if (ms->arena) {
		struct usher_am_matcher *v = usher_arena_alloc(ms->arena, (ms->n + 1) * sizeof(*v));

		if (ms->n)
			memcpy(v, ms->v, ms->n * sizeof(*v));
		ms->v = v;
		m.name = usher_arena_strdup(ms->arena, name);
		m.value = usher_arena_strdup(ms->arena, value);
	} else {
		ms->v = usher_realloc(ms->v, (ms->n + 1) * sizeof(*ms->v));
		m.name = usher_strdup(name);
		m.value = usher_strdup(value);
	}
	ms->v[ms->n++] = m;
	return USHER_OK;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/* Reads a double-quoted string at *p (after the opening quote) into b,
 * unescaping \" \\ \n; leaves *p after the closing quote. */
static enum usher_err quoted(const char **p, struct usher_buf *b, const char *whole,
			     struct usher_error *err)
{
	const char *s = *p;

	for (; *s && *s != '"'; s++) {
		if (*s == '\\' && s[1]) {
			s++;
			if (*s == 'n')
				usher_buf_addc(b, '\n');
			else if (*s == '"' || *s == '\\')
				usher_buf_addc(b, *s);
			else {
				usher_buf_addc(b, '\\');
				usher_buf_addc(b, *s);
			}
			continue;
		}
		usher_buf_addc(b, *s);
	}
	if (*s != '"')
		return usher_fail(err, USHER_ERR_INVALID,
				  "bad matcher format: %s: missing closing quote", whole);
	*p = s + 1;
	return USHER_OK;
}

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n, i;

		if (*p < 0x80) {
			p++;
			continue;
		}
		n = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		if (!n || (n == 2 && *p < 0xc2))
			return false;
		for (i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += n;
	}
	return true;
}

/* One matcher token (labels.ParseMatcher). */
static enum usher_err parse_one(struct usher_am_matchers *ms, const char *tok,
				struct usher_error *err)
{
	struct usher_buf name, value;
	enum usher_am_match_type t;
	const char *p = tok, *raw, *end;
	bool expect_quote = false;
	enum usher_err rc = USHER_OK;

	usher_buf_init(&name, MATCHER_MAX);
	usher_buf_init(&value, MATCHER_MAX);
	while (is_space(*p))
		p++;
	if (*p == '"') {
		p++;
		rc = quoted(&p, &name, tok, err);
		if (rc)
			goto out;
		if (!name.len) {
			rc = usher_fail(err, USHER_ERR_INVALID,
					"bad matcher format: %s: empty label name", tok);
			goto out;
		}
	} else {
		if (!name_start(*p)) {
			rc = usher_fail(
			    err, USHER_ERR_INVALID,
			    "bad matcher format: %s (want name=\"value\", name!=\"value\", "
			    "name=~\"regex\" or name!~\"regex\")",
			    tok);
			goto out;
		}
		while (name_char(*p))
			usher_buf_addc(&name, *p++);
	}
	while (is_space(*p))
		p++;
	if (p[0] == '=' && p[1] == '~') {
		t = USHER_AM_MATCH_RE;
		p += 2;
	} else if (p[0] == '=') {
		t = USHER_AM_MATCH_EQ;
		p += 1;
	} else if (p[0] == '!' && p[1] == '=') {
		t = USHER_AM_MATCH_NE;
		p += 2;
	} else if (p[0] == '!' && p[1] == '~') {
		t = USHER_AM_MATCH_NRE;
		p += 2;
	} else {
		rc = usher_fail(err, USHER_ERR_INVALID,
				"bad matcher format: %s (want name=\"value\", name!=\"value\", "
				"name=~\"regex\" or name!~\"regex\")",
				tok);
		goto out;
	}
	while (is_space(*p))
		p++;
	raw = p;
	end = p + strlen(p);
	while (end > raw && is_space(end[-1]))
		end--;
	if (raw < end && *raw == '"') {
		raw++;
		expect_quote = true;
	}
	{
		char *rv = usher_strndup(raw, (size_t)(end - raw));
		size_t i, n = strlen(rv);
		bool escaped = false;

		if (!utf8_valid(rv)) {
			free(rv);
			rc = usher_fail(err, USHER_ERR_INVALID, "matcher value not valid UTF-8: %s",
					tok);
			goto out;
		}
		for (i = 0; i < n; i++) {
			char c = rv[i];

			if (escaped) {
				escaped = false;
				if (c == 'n')
					usher_buf_addc(&value, '\n');
				else if (c == '"' || c == '\\')
					usher_buf_addc(&value, c);
				else {
					usher_buf_addc(&value, '\\');
					usher_buf_addc(&value, c);
				}
				continue;
			}
			if (c == '\\') {
				if (i < n - 1) {
					escaped = true;
					continue;
				}
				usher_buf_addc(&value, '\\');
			} else if (c == '"') {
				if (!expect_quote || i < n - 1) {
					free(rv);
					rc = usher_fail(
					    err, USHER_ERR_INVALID,
					    "matcher value contains unescaped double quote: %s",
					    tok);
					goto out;
				}
				expect_quote = false;
			} else {
				usher_buf_addc(&value, c);
			}
		}
		free(rv);
		if (expect_quote) {
			rc = usher_fail(err, USHER_ERR_INVALID,
					"matcher value contains unescaped double quote: %s", tok);
			goto out;
		}
	}
	if (value.len != strlen(usher_buf_str(&value))) {
		rc = usher_fail(err, USHER_ERR_INVALID, "matcher value contains a NUL byte: %s",
				tok);
		goto out;
	}
	rc = usher_am_matchers_add(ms, t, usher_buf_str(&name), usher_buf_str(&value), err);
out:
	usher_buf_free(&name);
	usher_buf_free(&value);
	return rc;
}

enum usher_err usher_am_matchers_parse(struct usher_am_matchers *ms, const char *s,
				       struct usher_error *err)
{
	size_t n0 = ms->n, len = strlen(s), i;
	struct usher_buf tok;
	bool in_quotes = false, escaped = false;
	enum usher_err rc = USHER_OK;
	const char *p = s;

	if (len > MATCHER_MAX)
		return usher_fail(err, USHER_ERR_INVALID, "matchers longer than %d bytes",
				  MATCHER_MAX);
	while (is_space(*p))
		p++;
	len = strlen(p);
	while (len > 0 && is_space(p[len - 1]))
		len--;
	if (len && *p == '{') {
		p++;
		len--;
	}
	if (len && p[len - 1] == '}')
		len--;
	usher_buf_init(&tok, MATCHER_MAX);
	for (i = 0; i <= len && !rc; i++) {
		char c = i < len ? p[i] : ',';

		if (c == ',' && (!in_quotes || i == len)) {
			const char *t = usher_buf_str(&tok);

			while (is_space(*t))
				t++;
			if (*t || i < len)
				rc = parse_one(ms, t, err);
			usher_buf_reset(&tok);
			continue;
		}
		if (c == '"') {
			if (!escaped)
				in_quotes = !in_quotes;
			else
				escaped = false;
		} else if (c == '\\') {
			escaped = !escaped;
		} else {
			escaped = false;
		}
		usher_buf_addc(&tok, c);
	}
	usher_buf_free(&tok);
	if (!rc && ms->n == n0)
		rc = usher_fail(err, USHER_ERR_INVALID, "no matchers in \"%s\"", s);
	if (rc) {
		while (ms->n > n0)
			matcher_free(ms, &ms->v[--ms->n]);
	}
	return rc;
}

bool usher_am_matcher_matches(const struct usher_am_matcher *m, const char *value)
{
	pcre2_match_context *mc;
	pcre2_match_data *md;
	bool hit;
	int r;

	if (!value)
		value = "";
	switch (m->type) {
	case USHER_AM_MATCH_EQ: return strcmp(value, m->value) == 0;
	case USHER_AM_MATCH_NE: return strcmp(value, m->value) != 0;
	default: break;
	}
	md = pcre2_match_data_create(1, NULL);
	mc = pcre2_match_context_create(NULL);
	if (!md || !mc) {
		pcre2_match_data_free(md);
		pcre2_match_context_free(mc);
		return m->type == USHER_AM_MATCH_NRE;
	}
	/* PCRE backtracks where Go's RE2 does not: bound the work one label
	 * value may cost, so a pathological silence regex cannot stall the
	 * pipeline; a match over the limit counts as no match */
	pcre2_set_match_limit(mc, MATCH_LIMIT);
	pcre2_set_depth_limit(mc, MATCH_LIMIT / 10);
	r = pcre2_match(m->re, (PCRE2_SPTR)value, strlen(value), 0, 0, md, mc);
	pcre2_match_data_free(md);
	pcre2_match_context_free(mc);
	hit = r >= 0;
	return m->type == USHER_AM_MATCH_RE ? hit : !hit;
}

bool usher_am_matchers_match(const struct usher_am_matchers *ms, const struct usher_am_labels *l)
{
	size_t i;

	for (i = 0; i < ms->n; i++)
		if (!usher_am_matcher_matches(&ms->v[i], usher_am_labels_get(l, ms->v[i].name)))
			return false;
	return true;
}

static int cmp_matcher(const void *x, const void *y)
{
	const struct usher_am_matcher *a = x, *b = y;
	int c = strcmp(a->name, b->name);

	if (c)
		return c;
	c = strcmp(a->value, b->value);
	if (c)
		return c;
	return (int)a->type - (int)b->type;
}

void usher_am_matchers_sort(struct usher_am_matchers *ms)
{
	if (ms->n > 1)
		qsort(ms->v, ms->n, sizeof(*ms->v), cmp_matcher);
}

char *usher_am_matcher_string_append(char *out, const struct usher_am_matcher *m)
{
	size_t len = out ? strlen(out) : 0, nl = strlen(m->name);
	const char *op = usher_am_match_type_str(m->type);

	out = usher_realloc(out, len + nl + strlen(op) + 1);
	memcpy(out + len, m->name, nl);
	memcpy(out + len + nl, op, strlen(op) + 1);
	return usher_go_quote_append(out, m->value);
}

char *usher_am_matchers_string(const struct usher_am_matchers *ms)
{
	char *out = usher_strdup("{");
	size_t i, len;

	for (i = 0; i < ms->n; i++) {
		if (i) {
			len = strlen(out);
			out = usher_realloc(out, len + 2);
			memcpy(out + len, ",", 2);
		}
		out = usher_am_matcher_string_append(out, &ms->v[i]);
	}
	len = strlen(out);
	out = usher_realloc(out, len + 2);
	memcpy(out + len, "}", 2);
	return out;
}

void usher_am_matchers_copy(struct usher_am_matchers *dst, const struct usher_am_matchers *src)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	for (i = 0; i < src->n; i++)
		usher_am_matchers_add(dst, src->v[i].type, src->v[i].name, src->v[i].value, NULL);
}

void usher_am_matchers_free(struct usher_am_matchers *ms)
{
	size_t i;

	if (ms->arena) {
		ms->n = 0;
		ms->v = NULL;
		return;
	}
	for (i = 0; i < ms->n; i++)
		matcher_free(ms, &ms->v[i]);
	free(ms->v);
	ms->v = NULL;
	ms->n = 0;
}
