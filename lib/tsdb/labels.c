/* Label sets and matchers: ordering, hashing, Prometheus-style formatting,
 * and PCRE2-backed anchored regexes with Go-style template expansion. */
#include "tsdb/labels.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

int usher_labels_cmp(const struct usher_labels *a, const struct usher_labels *b)
{
	size_t i, n = a->n < b->n ? a->n : b->n;
	int c;

	for (i = 0; i < n; i++) {
		c = strcmp(a->v[i].name, b->v[i].name);
		if (c)
			return c < 0 ? -1 : 1;
		c = strcmp(a->v[i].value, b->v[i].value);
		if (c)
			return c < 0 ? -1 : 1;
	}
	return a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
}

bool usher_labels_equal(const struct usher_labels *a, const struct usher_labels *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i].name, b->v[i].name) || strcmp(a->v[i].value, b->v[i].value))
			return false;
	return true;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	h ^= 0xff; /* a separator no label text contains as a lone byte value */
	h *= 0x100000001b3ULL;
	return h;
}

uint64_t usher_labels_hash(const struct usher_labels *l)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < l->n; i++) {
		h = fnv_str(h, l->v[i].name);
		h = fnv_str(h, l->v[i].value);
	}
	/* a final mix, so that nearby inputs spread over a power-of-two table */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

const char *usher_labels_get(const struct usher_labels *l, const char *name)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(l->v[mid].name, name);

		if (c == 0)
			return l->v[mid].value;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Go's strconv.Quote for the bytes label values hold. */
static enum usher_err quote(struct usher_buf *b, const char *s)
{
	enum usher_err rc = usher_buf_addc(b, '"');
	const unsigned char *p;

	for (p = (const unsigned char *)s; !rc && *p; p++) {
		switch (*p) {
		case '"': rc = usher_buf_addstr(b, "\\\""); break;
		case '\\': rc = usher_buf_addstr(b, "\\\\"); break;
		case '\n': rc = usher_buf_addstr(b, "\\n"); break;
		case '\t': rc = usher_buf_addstr(b, "\\t"); break;
		case '\r': rc = usher_buf_addstr(b, "\\r"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				rc = usher_buf_addf(b, "\\x%02x", *p);
			else
				rc = usher_buf_addc(b, (char)*p);
		}
	}
	return rc ? rc : usher_buf_addc(b, '"');
}

enum usher_err usher_labels_format(const struct usher_labels *l, struct usher_buf *out)
{
	enum usher_err rc = usher_buf_addc(out, '{');
	size_t i;

	for (i = 0; !rc && i < l->n; i++) {
		if (i)
			rc = usher_buf_addstr(out, ", ");
		if (!rc)
			rc = usher_buf_addstr(out, l->v[i].name);
		if (!rc)
			rc = usher_buf_addc(out, '=');
		if (!rc)
			rc = quote(out, l->v[i].value);
	}
	return rc ? rc : usher_buf_addc(out, '}');
}

char *usher_labels_str(struct usher_arena *a, const struct usher_labels *l)
{
	struct usher_buf b;
	char *s;

	usher_buf_init(&b, 1 << 20);
	if (usher_labels_format(l, &b)) {
		usher_buf_free(&b);
		return usher_arena_strdup(a, "{…}");
	}
	s = usher_arena_strdup(a, usher_buf_str(&b));
	usher_buf_free(&b);
	return s;
}

static int pair_cmp(const void *x, const void *y)
{
	const struct usher_label *a = x, *b = y;

	return strcmp(a->name, b->name);
}

bool usher_labels_normalize(struct usher_labels *l, struct usher_label *pairs)
{
	size_t i, j = 0;

	if (l->n > 1) /* qsort wants a non-NULL array even for none */
		qsort(pairs, l->n, sizeof(*pairs), pair_cmp);
	for (i = 0; i < l->n; i++) {
		if (i > 0 && strcmp(pairs[i].name, pairs[i - 1].name) == 0)
			return false;
		if (pairs[i].value && pairs[i].value[0])
			pairs[j++] = pairs[i];
	}
	l->n = j;
	l->v = pairs;
	return true;
}

void usher_labels_copy(struct usher_arena *a, const struct usher_labels *in,
		       struct usher_labels *out)
{
	struct usher_label *p = usher_arena_alloc(a, (in->n ? in->n : 1) * sizeof(*p));
	size_t i;

	for (i = 0; i < in->n; i++) {
		p[i].name = usher_arena_strdup(a, in->v[i].name);
		p[i].value = usher_arena_strdup(a, in->v[i].value);
	}
	out->n = in->n;
	out->v = p;
}

void usher_labels_set(struct usher_arena *a, const struct usher_labels *in, const char *name,
		      const char *value, struct usher_labels *out)
{
	struct usher_label *p = usher_arena_alloc(a, (in->n + 1) * sizeof(*p));
	size_t i, j = 0;
	bool done = false;

	for (i = 0; i < in->n; i++) {
		int c = strcmp(in->v[i].name, name);

		if (c == 0) {
			if (value && value[0])
				p[j++] = (struct usher_label){in->v[i].name,
							      usher_arena_strdup(a, value)};
			done = true;
			continue;
		}
		if (c > 0 && !done) {
			if (value && value[0])
				p[j++] = (struct usher_label){usher_arena_strdup(a, name),
							      usher_arena_strdup(a, value)};
			done = true;
		}
		p[j++] = in->v[i];
	}
	if (!done && value && value[0])
		p[j++] =
		    (struct usher_label){usher_arena_strdup(a, name), usher_arena_strdup(a, value)};
	out->n = j;
	out->v = p;
}

static bool listed(const char *name, const char *const *names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

void usher_labels_filter(struct usher_arena *a, const struct usher_labels *in,
			 const char *const *names, size_t nnames, bool keep,
			 struct usher_labels *out)
{
	struct usher_label *p = usher_arena_alloc(a, (in->n ? in->n : 1) * sizeof(*p));
	size_t i, j = 0;

	for (i = 0; i < in->n; i++)
		if (listed(in->v[i].name, names, nnames) == keep)
			p[j++] = in->v[i];
	out->n = j;
	out->v = p;
}

bool usher_label_name_ok(const char *s)
{
	const char *p;

	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* Compiles ^(?:pattern)$ as Prometheus anchors its regexes. */
static pcre2_code *compile_anchored(const char *pattern, struct usher_error *err)
{
	size_t n = strlen(pattern);
	char *wrapped = usher_malloc(n + 8);
	PCRE2_SIZE off;
	pcre2_code *re;
	int code;

	memcpy(wrapped, "^(?:", 4);
	memcpy(wrapped + 4, pattern, n);
	memcpy(wrapped + 4 + n, ")$", 3);
	re =
	    pcre2_compile((PCRE2_SPTR)wrapped, n + 6,
			  PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
			  &code, &off, NULL);
	free(wrapped);
	if (!re) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(code, msg, sizeof(msg));
		usher_fail(err, USHER_ERR_INVALID, "error parsing regexp: %s: `%s`", (char *)msg,
			   pattern);
		return NULL;
	}
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* best effort: the interpreter also works */
	return re;
}

static bool re_match(const pcre2_code *re, const char *s, pcre2_match_data *md)
{
	return pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL) >= 0;
}

/* Whether a regex is plain text with no metacharacters (a fast path). */
static bool re_literal(const char *s)
{
	for (; *s; s++)
		if (strchr("\\.^$|?*+()[]{}", *s))
			return false;
	return true;
}

enum usher_err usher_matcher_init(struct usher_matcher *m, enum usher_match_type type,
				  const char *name, const char *value, struct usher_error *err)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->name = name;
	m->value = value;
	if ((type == USHER_MATCH_RE || type == USHER_MATCH_NRE) && !re_literal(value)) {
		m->re = compile_anchored(value, err);
		if (!m->re)
			return USHER_ERR_INVALID;
	}
	m->matches_empty = usher_matcher_matches(m, "");
	return USHER_OK;
}

void usher_matcher_fini(struct usher_matcher *m)
{
	if (m && m->re) {
		pcre2_code_free(m->re);
		m->re = NULL;
	}
}

bool usher_matcher_matches(const struct usher_matcher *m, const char *value)
{
	pcre2_match_data *md;
	bool ok;

	if (!value)
		value = "";
	switch (m->type) {
	case USHER_MATCH_EQ: return strcmp(m->value, value) == 0;
	case USHER_MATCH_NEQ: return strcmp(m->value, value) != 0;
	case USHER_MATCH_RE:
	case USHER_MATCH_NRE:
		if (!m->re)
			ok = strcmp(m->value, value) == 0;
		else {
			md = pcre2_match_data_create(1, NULL);
			if (!md)
				abort();
			ok = re_match(m->re, value, md);
			pcre2_match_data_free(md);
		}
		return m->type == USHER_MATCH_RE ? ok : !ok;
	}
	return false;
}

bool usher_matchers_match(const struct usher_matcher *m, size_t n, const struct usher_labels *l)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!usher_matcher_matches(&m[i], usher_labels_get(l, m[i].name)))
			return false;
	return true;
}

const char *usher_match_type_str(enum usher_match_type t)
{
	switch (t) {
	case USHER_MATCH_EQ: return "=";
	case USHER_MATCH_NEQ: return "!=";
	case USHER_MATCH_RE: return "=~";
	case USHER_MATCH_NRE: return "!~";
	}
	return "?";
}

struct usher_regex {
	pcre2_code *re;
};

enum usher_err usher_regex_compile(const char *pattern, struct usher_regex **out,
				   struct usher_error *err)
{
	pcre2_code *re = compile_anchored(pattern, err);

	*out = NULL;
	if (!re)
		return USHER_ERR_INVALID;
	*out = usher_malloc(sizeof(**out));
	(*out)->re = re;
	return USHER_OK;
}

void usher_regex_free(struct usher_regex *re)
{
	if (!re)
		return;
	pcre2_code_free(re->re);
	free(re);
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* Appends group `name` (a number or a group name) of the match, if it took part. */
static void add_group(struct usher_buf *b, const pcre2_code *re, pcre2_match_data *md,
		      const char *s, const char *name, size_t len)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	uint32_t count = pcre2_get_ovector_count(md);
	char tmp[128];
	long num = -1;
	size_t i;
	bool digits = true;

	for (i = 0; i < len; i++)
		if (name[i] < '0' || name[i] > '9')
			digits = false;
	if (len >= sizeof(tmp))
		return;
	memcpy(tmp, name, len);
	tmp[len] = '\0';
	if (digits) {
		num = len > 9 ? -1 : strtol(tmp, NULL, 10);
	} else {
		int n = pcre2_substring_number_from_name(re, (PCRE2_SPTR)tmp);

		num = n > 0 ? n : -1;
	}
	/* group 0 of the wrapped pattern is the whole match, and the wrapper's
	 * (?:…) captures nothing, so numbers line up with the user's */
	if (num < 0 || (uint32_t)num >= count || ov[2 * num] == PCRE2_UNSET)
		return;
	(void)usher_buf_add(b, s + ov[2 * num], ov[2 * num + 1] - ov[2 * num]);
}

bool usher_regex_replace(const struct usher_regex *re, const char *s, const char *tmpl,
			 struct usher_arena *a, const char **out)
{
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->re, NULL);
	struct usher_buf b;
	const char *p;

	if (!md)
		abort();
	if (!re_match(re->re, s, md)) {
		pcre2_match_data_free(md);
		return false;
	}
	usher_buf_init(&b, 1 << 20);
	for (p = tmpl; *p; p++) {
		const char *name;
		size_t len;

		if (*p != '$') {
			(void)usher_buf_addc(&b, *p);
			continue;
		}
		if (p[1] == '$') {
			(void)usher_buf_addc(&b, '$');
			p++;
			continue;
		}
		if (p[1] == '{') {
			name = p + 2;
			for (len = 0; name_char(name[len]); len++)
				;
			if (len == 0 || name[len] != '}') {
				(void)usher_buf_addc(&b, '$');
				continue;
			}
			add_group(&b, re->re, md, s, name, len);
			p = name + len;
			continue;
		}
		name = p + 1;
		for (len = 0; name_char(name[len]); len++)
			;
		if (len == 0) {
			(void)usher_buf_addc(&b, '$');
			continue;
		}
		add_group(&b, re->re, md, s, name, len);
		p = name + len - 1;
	}
	*out = usher_arena_strdup(a, usher_buf_str(&b));
	usher_buf_free(&b);
	pcre2_match_data_free(md);
	return true;
}
