/* Parsers of the Prometheus text format 0.0.4 (the rules of expfmt's
 * TextParser, a little stricter where it is lax) and OpenMetrics 1.0 (the
 * ABNF of the specification), line by line into arena-allocated families
 * and samples. Exemplars are checked and dropped. */
#include "metrics/textparse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metrics/seriesset.h"

/* The longest number token we accept (digits of a float or timestamp). */
#define NUM_MAX 64
/* OpenMetrics: an exemplar's label names and values, in characters. */
#define EXEMPLAR_LABELS_MAX 128

/* What the parser knows of a family beyond the public struct. */
struct famx {
	bool help, type, unit; /* metadata lines seen */
	bool closed;           /* OpenMetrics: another family came after it */
};

struct ftab_slot {
	const char *name; /* NULL: free */
	size_t len;
	size_t idx;
};

struct parser {
	const char *text, *text_end;
	enum usher_tp_format fmt;
	struct usher_tp_limits lim;
	struct usher_arena *a;
	struct usher_tp_error *err;
	enum usher_err rc;

	/* the line being parsed: [line, end) without the newline */
	const char *line, *end;
	int lineno;

	struct usher_tp_family *fam;
	struct famx *famx;
	size_t nfam, capfam;
	struct usher_tp_sample *smp;
	size_t nsmp, capsmp;
	struct ftab_slot *ftab;
	size_t ftcap, ftn;
	size_t cur; /* OpenMetrics: the current family, SIZE_MAX before any */

	const char **scratch; /* 2 * max_labels + 1 label pointers */
	struct usher_seriesset *dups;
};

/* ---- errors ------------------------------------------------------------- */

static enum usher_err failv(struct parser *P, enum usher_err rc, const char *at, const char *fmt,
			    va_list ap) __attribute__((format(printf, 4, 0)));
static enum usher_err failv(struct parser *P, enum usher_err rc, const char *at, const char *fmt,
			    va_list ap)
{
	if (P->rc)
		return P->rc;
	P->rc = rc;
	P->err->line = P->lineno;
	P->err->col = at ? (int)(at - P->line) + 1 : 1;
	vsnprintf(P->err->msg, sizeof(P->err->msg), fmt, ap);
	return rc;
}

static enum usher_err fail(struct parser *P, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum usher_err fail(struct parser *P, const char *at, const char *fmt, ...)
{
	va_list ap;
	enum usher_err rc;

	va_start(ap, fmt);
	rc = failv(P, USHER_ERR_INVALID, at, fmt, ap);
	va_end(ap);
	return rc;
}

static enum usher_err fail_big(struct parser *P, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum usher_err fail_big(struct parser *P, const char *at, const char *fmt, ...)
{
	va_list ap;
	enum usher_err rc;

	va_start(ap, fmt);
	rc = failv(P, USHER_ERR_TOOBIG, at, fmt, ap);
	va_end(ap);
	return rc;
}

/* A byte for a message: printable as itself, else as \xNN. */
static const char *show_byte(char *buf, size_t len, const char *p, const char *end)
{
	unsigned char c;

	if (p >= end) {
		snprintf(buf, len, "end of line");
		return buf;
	}
	c = (unsigned char)*p;
	if (c == '\r')
		snprintf(buf, len, "carriage return (lines must end with \\n alone)");
	else if (c > ' ' && c < 0x7f)
		snprintf(buf, len, "'%c'", c);
	else if (c == ' ')
		snprintf(buf, len, "space");
	else if (c == '\t')
		snprintf(buf, len, "tab");
	else
		snprintf(buf, len, "byte \\x%02x", c);
	return buf;
}

/* ---- characters --------------------------------------------------------- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool name_start(char c, bool colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static bool name_char(char c, bool colon)
{
	return name_start(c, colon) || (c >= '0' && c <= '9');
}

/* The length of the valid UTF-8 sequence at p (< end), 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n = (size_t)(end - p);

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;

		return n >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;

		return n >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
			       (p[3] & 0xc0) == 0x80
			   ? 4
			   : 0;
	}
	return 0;
}

static void skip_blanks(const struct parser *P, const char **pp)
{
	while (*pp < P->end && is_blank(**pp))
		(*pp)++;
}

/* ---- families ----------------------------------------------------------- */

static uint64_t hash_name(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h ^ (h >> 29);
}

/* The index of the family named s (n bytes), or SIZE_MAX. */
static size_t fam_find(const struct parser *P, const char *s, size_t n)
{
	size_t j;

	if (!P->ftcap)
		return SIZE_MAX;
	for (j = hash_name(s, n) & (P->ftcap - 1); P->ftab[j].name; j = (j + 1) & (P->ftcap - 1))
		if (P->ftab[j].len == n && memcmp(P->ftab[j].name, s, n) == 0)
			return P->ftab[j].idx;
	return SIZE_MAX;
}

static void ftab_put(struct ftab_slot *t, size_t cap, const char *name, size_t len, size_t idx)
{
	size_t j;

	for (j = hash_name(name, len) & (cap - 1); t[j].name; j = (j + 1) & (cap - 1))
		;
	t[j].name = name;
	t[j].len = len;
	t[j].idx = idx;
}

/* A new family named s (n bytes), untyped, first named on this line. */
static size_t fam_new(struct parser *P, const char *s, size_t n)
{
	size_t idx = P->nfam, i;
	char *name;

	if (P->nfam == P->capfam) {
		size_t cap = P->capfam ? P->capfam * 2 : 32;
		struct usher_tp_family *f = usher_arena_alloc(P->a, cap * sizeof(*f));
		struct famx *x = usher_arena_alloc(P->a, cap * sizeof(*x));

		if (P->nfam) {
			memcpy(f, P->fam, P->nfam * sizeof(*f));
			memcpy(x, P->famx, P->nfam * sizeof(*x));
		}
		P->fam = f;
		P->famx = x;
		P->capfam = cap;
	}
	if ((P->ftn + 1) * 2 > P->ftcap) {
		size_t cap = P->ftcap ? P->ftcap * 2 : 64;
		struct ftab_slot *t = usher_arena_zalloc(P->a, cap * sizeof(*t));

		for (i = 0; i < P->ftcap; i++)
			if (P->ftab[i].name)
				ftab_put(t, cap, P->ftab[i].name, P->ftab[i].len, P->ftab[i].idx);
		P->ftab = t;
		P->ftcap = cap;
	}
	name = usher_arena_strndup(P->a, s, n);
	memset(&P->fam[idx], 0, sizeof(P->fam[idx]));
	memset(&P->famx[idx], 0, sizeof(P->famx[idx]));
	P->fam[idx].name = name;
	P->fam[idx].type = USHER_TP_UNTYPED;
	P->fam[idx].line = P->lineno;
	ftab_put(P->ftab, P->ftcap, name, n, idx);
	P->ftn++;
	P->nfam++;
	return idx;
}

static const char *const suffix_text[] = {
    [USHER_TP_SUF_NONE] = "",
    [USHER_TP_SUF_TOTAL] = "_total",
    [USHER_TP_SUF_CREATED] = "_created",
    [USHER_TP_SUF_BUCKET] = "_bucket",
    [USHER_TP_SUF_SUM] = "_sum",
    [USHER_TP_SUF_COUNT] = "_count",
    [USHER_TP_SUF_GSUM] = "_gsum",
    [USHER_TP_SUF_GCOUNT] = "_gcount",
    [USHER_TP_SUF_INFO] = "_info",
};

/* The suffixes a sample of a family of type t may carry, in the format. */
static bool suffix_allowed(enum usher_tp_format fmt, enum usher_tp_type t, enum usher_tp_suffix s)
{
	if (fmt == USHER_TP_TEXT) {
		switch (t) {
		case USHER_TP_HISTOGRAM:
			return s == USHER_TP_SUF_BUCKET || s == USHER_TP_SUF_SUM ||
			       s == USHER_TP_SUF_COUNT;
		case USHER_TP_SUMMARY:
			return s == USHER_TP_SUF_NONE || s == USHER_TP_SUF_SUM ||
			       s == USHER_TP_SUF_COUNT;
		default: return s == USHER_TP_SUF_NONE;
		}
	}
	switch (t) {
	case USHER_TP_COUNTER: return s == USHER_TP_SUF_TOTAL || s == USHER_TP_SUF_CREATED;
	case USHER_TP_HISTOGRAM:
		return s == USHER_TP_SUF_BUCKET || s == USHER_TP_SUF_SUM ||
		       s == USHER_TP_SUF_COUNT || s == USHER_TP_SUF_CREATED;
	case USHER_TP_GAUGEHISTOGRAM:
		return s == USHER_TP_SUF_BUCKET || s == USHER_TP_SUF_GSUM ||
		       s == USHER_TP_SUF_GCOUNT;
	case USHER_TP_SUMMARY:
		return s == USHER_TP_SUF_NONE || s == USHER_TP_SUF_SUM || s == USHER_TP_SUF_COUNT ||
		       s == USHER_TP_SUF_CREATED;
	case USHER_TP_INFO: return s == USHER_TP_SUF_INFO;
	default: return s == USHER_TP_SUF_NONE;
	}
}

/* If name (n bytes) ends with suffix s (not NONE), the length of its base. */
static bool strip_suffix(const char *name, size_t n, enum usher_tp_suffix s, size_t *base)
{
	size_t l = strlen(suffix_text[s]);

	if (s == USHER_TP_SUF_NONE || n <= l || memcmp(name + n - l, suffix_text[s], l) != 0)
		return false;
	*base = n - l;
	return true;
}

#define NSUFFIXES (sizeof(suffix_text) / sizeof(suffix_text[0]))

/* 0.0.4: the family of sample name (n bytes), as TextParser picks it: the
 * family of that exact name, else a summary or histogram whose _sum,
 * _count (or _bucket) it is, else a new untyped family. */
static size_t text_family(struct parser *P, const char *name, size_t n, enum usher_tp_suffix *suf)
{
	static const enum usher_tp_suffix tries[] = {USHER_TP_SUF_SUM, USHER_TP_SUF_COUNT,
						     USHER_TP_SUF_BUCKET};
	size_t f = fam_find(P, name, n), i, base;

	*suf = USHER_TP_SUF_NONE;
	if (f != SIZE_MAX)
		return f;
	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		if (!strip_suffix(name, n, tries[i], &base))
			continue;
		f = fam_find(P, name, base);
		if (f == SIZE_MAX)
			continue;
		if (P->fam[f].type == USHER_TP_HISTOGRAM ||
		    (P->fam[f].type == USHER_TP_SUMMARY && tries[i] != USHER_TP_SUF_BUCKET)) {
			*suf = tries[i];
			return f;
		}
	}
	return fam_new(P, name, n);
}

/* OpenMetrics: the family of sample name, which must be the current one
 * (with a suffix its type allows) or a new one; families never resume. */
static enum usher_err om_family(struct parser *P, const char *name, size_t n, size_t *out,
				enum usher_tp_suffix *suf)
{
	size_t i, base, f;

	if (P->cur != SIZE_MAX) {
		const struct usher_tp_family *c = &P->fam[P->cur];
		size_t cl = strlen(c->name);

		for (i = 0; i < NSUFFIXES; i++) {
			size_t l = strlen(suffix_text[i]);

			if (n == cl + l && memcmp(name, c->name, cl) == 0 &&
			    memcmp(name + cl, suffix_text[i], l) == 0 &&
			    suffix_allowed(P->fmt, c->type, (enum usher_tp_suffix)i)) {
				*out = P->cur;
				*suf = (enum usher_tp_suffix)i;
				return USHER_OK;
			}
		}
	}
	/* a sample of an earlier family, or of a family that only its
	 * suffixed name would belong to */
	for (i = 0; i < NSUFFIXES; i++) {
		if (i == USHER_TP_SUF_NONE) {
			f = fam_find(P, name, n);
		} else {
			if (!strip_suffix(name, n, (enum usher_tp_suffix)i, &base))
				continue;
			f = fam_find(P, name, base);
			if (f != SIZE_MAX &&
			    !suffix_allowed(P->fmt, P->fam[f].type, (enum usher_tp_suffix)i))
				continue;
		}
		if (f == P->cur && f != SIZE_MAX)
			return fail(P, P->line,
				    "%.*s: not a sample name of %s family %s (expected the family "
				    "name with a suffix its type allows)",
				    (int)n, name, usher_tp_type_name(P->fam[f].type, P->fmt),
				    P->fam[f].name);
		if (f != SIZE_MAX)
			return fail(P, P->line,
				    "%.*s: family %s continues after other families (line %d): "
				    "families must not be interleaved",
				    (int)n, name, P->fam[f].name, P->fam[f].line);
	}
	if (P->cur != SIZE_MAX)
		P->famx[P->cur].closed = true;
	P->cur = fam_new(P, name, n);
	*out = P->cur;
	*suf = USHER_TP_SUF_NONE;
	return USHER_OK;
}

/* ---- tokens ------------------------------------------------------------- */

/* Reads a metric (colon) or label name at *pp; returns its length (0 when
 * there is none). */
static size_t read_name(struct parser *P, const char **pp, bool colon)
{
	const char *p = *pp, *start = p;

	if (p >= P->end || !name_start(*p, colon))
		return 0;
	while (p < P->end && name_char(*p, colon))
		p++;
	*pp = p;
	return (size_t)(p - start);
}

/* Go's strconv.ParseFloat on decimal input: [+-] digits [. digits]
 * [e [+-] digits], or Inf / Infinity / NaN in any case. */
static bool parse_float(const char *s, size_t n, double *out)
{
	char buf[NUM_MAX + 1], *end;
	size_t i = 0, digits = 0;
	const char *body = s;
	size_t bn = n;
	double v;

	if (n == 0 || n > NUM_MAX)
		return false;
	if (body[0] == '+' || body[0] == '-') {
		body++;
		bn--;
	}
	if ((bn == 3 && strncasecmp(body, "inf", 3) == 0) ||
	    (bn == 8 && strncasecmp(body, "infinity", 8) == 0)) {
		*out = s[0] == '-' ? -INFINITY : INFINITY;
		return true;
	}
	if (n == 3 && strncasecmp(s, "nan", 3) == 0) {
		*out = NAN;
		return true;
	}
	while (i < bn && body[i] >= '0' && body[i] <= '9')
		i++, digits++;
	if (i < bn && body[i] == '.') {
		i++;
		while (i < bn && body[i] >= '0' && body[i] <= '9')
			i++, digits++;
	}
	if (!digits)
		return false;
	if (i < bn && (body[i] == 'e' || body[i] == 'E')) {
		size_t ed = 0;

		i++;
		if (i < bn && (body[i] == '+' || body[i] == '-'))
			i++;
		while (i < bn && body[i] >= '0' && body[i] <= '9')
			i++, ed++;
		if (!ed)
			return false;
	}
	if (i != bn)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	v = strtod(buf, &end);
	if (end != buf + n || (isinf(v) && errno == ERANGE))
		return false;
	*out = v;
	return true;
}

static bool parse_int64(const char *s, size_t n, int64_t *out)
{
	char buf[NUM_MAX + 1], *end;
	size_t i = 0;
	long long v;

	if (n == 0 || n > NUM_MAX)
		return false;
	if (s[0] == '+' || s[0] == '-')
		i++;
	if (i == n)
		return false;
	for (; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || end != buf + n)
		return false;
	*out = v;
	return true;
}

/* Reads an escaped string up to (not including) stop, or to the end of the
 * line when stop is 0, unescaping \\ and \n (and \" when quote) into a
 * NUL-terminated copy in the arena. The text must be valid UTF-8. *pp ends
 * on stop (or the end of the line). */
static enum usher_err read_escaped(struct parser *P, const char **pp, char stop, bool quote,
				   const char *what, const char **out)
{
	const char *p = *pp, *start = p;
	char *dst, *o;
	size_t l;

	/* find the end first, so the copy is sized once */
	while (p < P->end && *p != stop) {
		if (*p == '\\') {
			if (p + 1 >= P->end)
				return fail(P, p, "%s: a backslash ends the line", what);
			if (p[1] != '\\' && p[1] != 'n' && !(quote && p[1] == '"'))
				return fail(P, p, "%s: invalid escape sequence \\%c%s", what,
					    p[1] > ' ' && p[1] < 0x7f ? p[1] : '?',
					    quote ? " (use \\\\, \\\" or \\n)"
						  : " (use \\\\ or \\n)");
			p += 2;
			continue;
		}
		l = utf8_seq((const unsigned char *)p, (const unsigned char *)P->end);
		if (!l)
			return fail(P, p, "%s: invalid UTF-8", what);
		p += l;
	}
	if (stop && p >= P->end)
		return fail(P, p, "%s: missing closing '%c'", what, stop);
	dst = o = usher_arena_alloc(P->a, (size_t)(p - start) + 1);
	for (l = 0; start + l < p; l++) {
		if (start[l] == '\\') {
			l++;
			*o++ = start[l] == 'n' ? '\n' : start[l];
			continue;
		}
		*o++ = start[l];
	}
	*o = '\0';
	*out = dst;
	*pp = p;
	return USHER_OK;
}

/* ---- labels ------------------------------------------------------------- */

/* Parses {name="value",...} at *pp (which is on the '{'), leaving the pairs
 * in P->scratch and *pp after the '}'. OpenMetrics allows no blanks and no
 * trailing comma; 0.0.4 allows both. */
static enum usher_err read_labels(struct parser *P, const char **pp, size_t *npairs, bool exemplar)
{
	bool om = P->fmt == USHER_TP_OPENMETRICS;
	const char *p = *pp + 1, *name_at, *v;
	size_t n = 0, nl, i, chars = 0;
	const char *what = exemplar ? "exemplar label value" : "label value";
	char b[64];

	for (;;) {
		if (!om)
			skip_blanks(P, &p);
		if (p < P->end && *p == '}') {
			if (om && n > 0)
				return fail(P, p, "trailing comma in a label set");
			p++;
			break;
		}
		name_at = p;
		nl = read_name(P, &p, false);
		if (!nl)
			return fail(P, name_at, "expected a label name, got %s",
				    show_byte(b, sizeof(b), name_at, P->end));
		if (!exemplar && n / 2 >= P->lim.max_labels)
			return fail_big(P, name_at, "more than %zu labels in one sample",
					P->lim.max_labels);
		if (exemplar && n / 2 >= P->lim.max_labels)
			return fail_big(P, name_at, "too many exemplar labels");
		if (nl == 8 && memcmp(name_at, "__name__", 8) == 0)
			return fail(P, name_at, "label name __name__ is reserved");
		for (i = 0; i < n; i += 2)
			if (strlen(P->scratch[i]) == nl && memcmp(P->scratch[i], name_at, nl) == 0)
				return fail(P, name_at, "duplicate label name %.*s", (int)nl,
					    name_at);
		P->scratch[n] = usher_arena_strndup(P->a, name_at, nl);
		if (!om)
			skip_blanks(P, &p);
		if (p >= P->end || *p != '=')
			return fail(P, p, "expected '=' after label name %.*s, got %s", (int)nl,
				    name_at, show_byte(b, sizeof(b), p, P->end));
		p++;
		if (!om)
			skip_blanks(P, &p);
		if (p >= P->end || *p != '"')
			return fail(P, p, "expected '\"' to start the value of label %.*s, got %s",
				    (int)nl, name_at, show_byte(b, sizeof(b), p, P->end));
		p++;
		if (read_escaped(P, &p, '"', true, what, &v))
			return P->rc;
		p++; /* the closing quote */
		P->scratch[n + 1] = v;
		chars += nl;
		for (i = 0; v[i]; i++)
			chars += ((unsigned char)v[i] & 0xc0) != 0x80;
		n += 2;
		if (!om)
			skip_blanks(P, &p);
		if (p < P->end && *p == ',') {
			p++;
			if (om && (p >= P->end || *p == '}'))
				return fail(P, p - 1, "trailing comma in a label set");
			continue;
		}
		if (p < P->end && *p == '}') {
			p++;
			break;
		}
		return fail(P, p, "expected ',' or '}' after the value of label %.*s, got %s",
			    (int)nl, name_at, show_byte(b, sizeof(b), p, P->end));
	}
	if (exemplar && chars > EXEMPLAR_LABELS_MAX)
		return fail(P, *pp, "exemplar labels have %zu characters, more than %d", chars,
			    EXEMPLAR_LABELS_MAX);
	P->scratch[n] = NULL;
	*npairs = n / 2;
	*pp = p;
	return USHER_OK;
}

static const char *label_get(const char *const *pairs, const char *name)
{
	size_t i;

	for (i = 0; pairs[i]; i += 2)
		if (strcmp(pairs[i], name) == 0)
			return pairs[i + 1];
	return NULL;
}

/* ---- samples ------------------------------------------------------------ */

static struct usher_tp_sample *sample_push(struct parser *P)
{
	if (P->nsmp == P->capsmp) {
		size_t cap = P->capsmp ? P->capsmp * 2 : 64;
		struct usher_tp_sample *s = usher_arena_alloc(P->a, cap * sizeof(*s));

		if (P->nsmp)
			memcpy(s, P->smp, P->nsmp * sizeof(*s));
		P->smp = s;
		P->capsmp = cap;
	}
	memset(&P->smp[P->nsmp], 0, sizeof(P->smp[0]));
	return &P->smp[P->nsmp++];
}

/* The end of the token at p: the next blank or the end of the line. */
static const char *token_end(const struct parser *P, const char *p)
{
	while (p < P->end && !is_blank(*p))
		p++;
	return p;
}

/* le / quantile must be numbers; a bucket needs le, a quantile quantile. */
static enum usher_err check_special_labels(struct parser *P, const struct usher_tp_family *f,
					   enum usher_tp_suffix suf, const char *const *pairs)
{
	const char *v;
	double d;

	if (suf == USHER_TP_SUF_BUCKET) {
		v = label_get(pairs, "le");
		if (!v)
			return fail(P, P->line, "%s_bucket: a histogram bucket needs an le label",
				    f->name);
		if (!parse_float(v, strlen(v), &d))
			return fail(P, P->line, "%s_bucket: le=\"%.40s\" is not a number", f->name,
				    v);
	}
	if (f->type == USHER_TP_SUMMARY && suf == USHER_TP_SUF_NONE) {
		v = label_get(pairs, "quantile");
		if (!v)
			return fail(P, P->line, "%s: a summary quantile needs a quantile label",
				    f->name);
		if (!parse_float(v, strlen(v), &d))
			return fail(P, P->line, "%s: quantile=\"%.40s\" is not a number", f->name,
				    v);
	}
	return USHER_OK;
}

/* OpenMetrics: " # {labels} value [timestamp]" at p, checked and dropped. */
static enum usher_err om_exemplar(struct parser *P, const char *p)
{
	const char *e;
	size_t n;
	double d;
	char b[64];

	if (p >= P->end || *p != '{')
		return fail(P, p, "expected '{' to start the exemplar's labels, got %s",
			    show_byte(b, sizeof(b), p, P->end));
	if (read_labels(P, &p, &n, true))
		return P->rc;
	if (p >= P->end || *p != ' ')
		return fail(P, p, "expected a space before the exemplar's value, got %s",
			    show_byte(b, sizeof(b), p, P->end));
	p++;
	e = token_end(P, p);
	if (!parse_float(p, (size_t)(e - p), &d))
		return fail(P, p, "exemplar value \"%.*s\" is not a number",
			    (int)((e - p) > 40 ? 40 : (e - p)), p);
	p = e;
	if (p < P->end) {
		if (*p != ' ' || p + 1 >= P->end)
			return fail(P, p, "unexpected %s after the exemplar's value",
				    show_byte(b, sizeof(b), p, P->end));
		p++;
		e = token_end(P, p);
		if (!parse_float(p, (size_t)(e - p), &d) || !isfinite(d))
			return fail(P, p, "exemplar timestamp \"%.*s\" is not a number",
				    (int)((e - p) > 40 ? 40 : (e - p)), p);
		if (e < P->end)
			return fail(P, e, "unexpected %s after the exemplar",
				    show_byte(b, sizeof(b), e, P->end));
	}
	return USHER_OK;
}

static enum usher_err sample_line(struct parser *P)
{
	bool om = P->fmt == USHER_TP_OPENMETRICS;
	const char *p = P->line, *name_at, *e;
	struct usher_tp_sample *s;
	enum usher_tp_suffix suf = USHER_TP_SUF_NONE;
	size_t nl, f = 0, npairs = 0, i;
	double v;
	char b[64];

	if (!om)
		skip_blanks(P, &p);
	name_at = p;
	nl = read_name(P, &p, true);
	if (!nl)
		return fail(P, p, "expected a metric name, got %s",
			    show_byte(b, sizeof(b), p, P->end));
	if (om) {
		if (om_family(P, name_at, nl, &f, &suf))
			return P->rc;
	} else {
		f = text_family(P, name_at, nl, &suf);
	}
	if (!om)
		skip_blanks(P, &p);
	P->scratch[0] = NULL;
	if (p < P->end && *p == '{') {
		if (read_labels(P, &p, &npairs, false))
			return P->rc;
		if (!om)
			skip_blanks(P, &p);
	}
	if (om) {
		if (p >= P->end || *p != ' ')
			return fail(P, p, "expected a space before the value, got %s",
				    show_byte(b, sizeof(b), p, P->end));
		p++;
	}
	e = token_end(P, p);
	if (e == p)
		return fail(P, p, "expected a value, got %s", show_byte(b, sizeof(b), p, P->end));
	if (!parse_float(p, (size_t)(e - p), &v))
		return fail(P, p, "value \"%.*s\" is not a number",
			    (int)((e - p) > 40 ? 40 : (e - p)), p);
	if (!suffix_allowed(P->fmt, P->fam[f].type, suf))
		return fail(P, name_at, "%.*s: %s %s has no samples of that name", (int)nl, name_at,
			    usher_tp_type_name(P->fam[f].type, P->fmt), P->fam[f].name);
	if (check_special_labels(P, &P->fam[f], suf, P->scratch))
		return P->rc;
	s = sample_push(P);
	s->family = f;
	s->suffix = suf;
	s->value = v;
	s->line = P->lineno;
	s->nlabels = npairs;
	s->labels = usher_arena_alloc(P->a, (2 * npairs + 1) * sizeof(*s->labels));
	for (i = 0; i < 2 * npairs; i++)
		s->labels[i] = P->scratch[i];
	s->labels[2 * npairs] = NULL;
	P->fam[f].nsamples++;
	p = e;

	if (om) {
		if (p < P->end && p + 3 <= P->end && memcmp(p, " # ", 3) == 0) {
			if (suf != USHER_TP_SUF_TOTAL && suf != USHER_TP_SUF_BUCKET)
				return fail(P, p,
					    "exemplars are only allowed on counter _total and "
					    "histogram _bucket samples");
			return om_exemplar(P, p + 3);
		}
		if (p < P->end) {
			if (*p != ' ' || p + 1 >= P->end)
				return fail(P, p, "unexpected %s after the value",
					    show_byte(b, sizeof(b), p, P->end));
			p++;
			e = token_end(P, p);
			if (!parse_float(p, (size_t)(e - p), &v) || !isfinite(v) ||
			    fabs(v) > 9.2e15)
				return fail(P, p, "timestamp \"%.*s\" is not a number of seconds",
					    (int)((e - p) > 40 ? 40 : (e - p)), p);
			s->has_timestamp = true;
			s->timestamp_ms = (int64_t)llround(v * 1000);
			p = e;
			if (p + 3 <= P->end && memcmp(p, " # ", 3) == 0) {
				if (suf != USHER_TP_SUF_TOTAL && suf != USHER_TP_SUF_BUCKET)
					return fail(P, p,
						    "exemplars are only allowed on counter "
						    "_total and histogram _bucket samples");
				return om_exemplar(P, p + 3);
			}
			if (p < P->end)
				return fail(P, p, "unexpected %s after the timestamp",
					    show_byte(b, sizeof(b), p, P->end));
		}
	} else {
		skip_blanks(P, &p);
		if (p < P->end) {
			e = token_end(P, p);
			if (!parse_int64(p, (size_t)(e - p), &s->timestamp_ms))
				return fail(P, p,
					    "timestamp \"%.*s\" is not an integer (milliseconds)",
					    (int)((e - p) > 40 ? 40 : (e - p)), p);
			s->has_timestamp = true;
			p = e;
			skip_blanks(P, &p);
			if (p < P->end)
				return fail(P, p, "unexpected %s after the timestamp",
					    show_byte(b, sizeof(b), p, P->end));
		}
	}
	if (P->lim.reject_duplicates) {
		int first = 0;
		const char *full =
		    usher_tp_sample_name(P->a, &(struct usher_tp_result){.families = P->fam}, s);

		if (!usher_seriesset_add(P->dups, full, s->labels, P->lineno, &first, NULL))
			return fail(P, name_at, "duplicate series %s (first at line %d)", full,
				    first);
	}
	return USHER_OK;
}

/* ---- metadata ----------------------------------------------------------- */

static const char *const type_names[] = {
    [USHER_TP_UNTYPED] = "untyped", [USHER_TP_COUNTER] = "counter",
    [USHER_TP_GAUGE] = "gauge",     [USHER_TP_HISTOGRAM] = "histogram",
    [USHER_TP_SUMMARY] = "summary", [USHER_TP_GAUGEHISTOGRAM] = "gaugehistogram",
    [USHER_TP_INFO] = "info",       [USHER_TP_STATESET] = "stateset",
};

const char *usher_tp_type_name(enum usher_tp_type t, enum usher_tp_format fmt)
{
	if (t == USHER_TP_UNTYPED)
		return fmt == USHER_TP_OPENMETRICS ? "unknown" : "untyped";
	return (size_t)t < sizeof(type_names) / sizeof(type_names[0]) ? type_names[t] : "?";
}

/* 0.0.4's "# HELP" / "# TYPE" (anything else after '#' is a comment),
 * following TextParser: a keyword or name alone on the line is ignored. */
static enum usher_err text_comment(struct parser *P, const char *p)
{
	const char *kw, *name_at, *t;
	size_t kl, nl, f, i;
	char b[64];

	p++; /* '#' */
	skip_blanks(P, &p);
	kw = p;
	p = token_end(P, p);
	kl = (size_t)(p - kw);
	if (p >= P->end ||
	    !((kl == 4 && memcmp(kw, "HELP", 4) == 0) || (kl == 4 && memcmp(kw, "TYPE", 4) == 0)))
		return USHER_OK;
	skip_blanks(P, &p);
	if (p >= P->end)
		return USHER_OK;
	name_at = p;
	nl = read_name(P, &p, true);
	if (p >= P->end && nl)
		return USHER_OK;
	if (!nl || !is_blank(*p))
		return fail(P, p, "invalid metric name in %.4s line: unexpected %s", kw,
			    show_byte(b, sizeof(b), p, P->end));
	f = fam_find(P, name_at, nl);
	if (f == SIZE_MAX)
		f = fam_new(P, name_at, nl);
	skip_blanks(P, &p);
	if (p >= P->end)
		return USHER_OK;
	if (kw[0] == 'H') {
		if (P->famx[f].help)
			return fail(P, kw, "second HELP line for %s", P->fam[f].name);
		P->famx[f].help = true;
		return read_escaped(P, &p, 0, false, "help text", &P->fam[f].help);
	}
	if (P->famx[f].type || P->fam[f].nsamples)
		return fail(P, kw, "second TYPE line for %s, or TYPE after its samples",
			    P->fam[f].name);
	P->famx[f].type = true;
	t = p;
	for (i = USHER_TP_UNTYPED; i <= USHER_TP_SUMMARY; i++) {
		if ((size_t)(P->end - t) == strlen(type_names[i]) &&
		    strncasecmp(t, type_names[i], strlen(type_names[i])) == 0) {
			P->fam[f].type = (enum usher_tp_type)i;
			return USHER_OK;
		}
	}
	return fail(P, t,
		    "unknown metric type \"%.*s\" (counter, gauge, histogram, summary or "
		    "untyped)",
		    (int)((P->end - t) > 40 ? 40 : (P->end - t)), t);
}

/* OpenMetrics' "# HELP", "# TYPE", "# UNIT" and "# EOF"; nothing else may
 * start with '#'. Returns USHER_OK and sets *eof on "# EOF". */
static enum usher_err om_comment(struct parser *P, bool *eof)
{
	const char *p = P->line, *kw, *name_at, *t;
	size_t nl, f, i, l;
	char b[64];
	int kind; /* 0 HELP, 1 TYPE, 2 UNIT */

	if (P->end - p == 5 && memcmp(p, "# EOF", 5) == 0) {
		*eof = true;
		return USHER_OK;
	}
	if (P->end - p < 7 || p[1] != ' ')
		return fail(P, p,
			    "OpenMetrics allows no comments: only # HELP, # TYPE, # UNIT and "
			    "# EOF lines start with '#'");
	kw = p + 2;
	if (memcmp(kw, "HELP ", 5) == 0)
		kind = 0;
	else if (memcmp(kw, "TYPE ", 5) == 0)
		kind = 1;
	else if (memcmp(kw, "UNIT ", 5) == 0)
		kind = 2;
	else
		return fail(P, kw,
			    "OpenMetrics allows no comments: only # HELP, # TYPE, # UNIT "
			    "and # EOF lines start with '#'");
	p = kw + 5;
	name_at = p;
	nl = read_name(P, &p, true);
	if (!nl)
		return fail(P, p, "expected a metric name, got %s",
			    show_byte(b, sizeof(b), p, P->end));
	if (p < P->end && *p != ' ')
		return fail(P, p, "unexpected %s after the metric name",
			    show_byte(b, sizeof(b), p, P->end));
	if (P->cur != SIZE_MAX && strlen(P->fam[P->cur].name) == nl &&
	    memcmp(P->fam[P->cur].name, name_at, nl) == 0) {
		f = P->cur;
		if (P->fam[f].nsamples)
			return fail(P, kw, "%.4s for %s after its samples", kw, P->fam[f].name);
	} else {
		f = fam_find(P, name_at, nl);
		if (f != SIZE_MAX)
			return fail(P, name_at,
				    "%s: metadata for a family already seen at line %d: families "
				    "must not be interleaved",
				    P->fam[f].name, P->fam[f].line);
		if (P->cur != SIZE_MAX)
			P->famx[P->cur].closed = true;
		P->cur = f = fam_new(P, name_at, nl);
	}
	if (kind == 0) {
		if (P->famx[f].help)
			return fail(P, kw, "second HELP line for %s", P->fam[f].name);
		P->famx[f].help = true;
		if (p >= P->end) {
			P->fam[f].help = "";
			return USHER_OK;
		}
		p++;
		return read_escaped(P, &p, 0, true, "help text", &P->fam[f].help);
	}
	if (p >= P->end)
		return fail(P, p, "expected a space and the %s after the metric name",
			    kind == 1 ? "type" : "unit");
	p++;
	t = p;
	l = (size_t)(P->end - t);
	if (kind == 1) {
		if (P->famx[f].type)
			return fail(P, kw, "second TYPE line for %s", P->fam[f].name);
		P->famx[f].type = true;
		if (l == 7 && memcmp(t, "unknown", 7) == 0)
			return USHER_OK;
		for (i = USHER_TP_COUNTER; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
			if (l == strlen(type_names[i]) && memcmp(t, type_names[i], l) == 0) {
				P->fam[f].type = (enum usher_tp_type)i;
				return USHER_OK;
			}
		}
		return fail(P, t,
			    "unknown metric type \"%.*s\" (counter, gauge, histogram, "
			    "gaugehistogram, stateset, info, summary or unknown)",
			    (int)(l > 40 ? 40 : l), t);
	}
	if (P->famx[f].unit)
		return fail(P, kw, "second UNIT line for %s", P->fam[f].name);
	P->famx[f].unit = true;
	for (i = 0; i < l; i++)
		if (!name_char(t[i], true))
			return fail(P, t + i, "invalid character %s in unit",
				    show_byte(b, sizeof(b), t + i, P->end));
	P->fam[f].unit = usher_arena_strndup(P->a, t, l);
	if (l && !(nl > l + 1 && name_at[nl - l - 1] == '_' && memcmp(name_at + nl - l, t, l) == 0))
		return fail(P, t, "unit %.*s is not a suffix of the metric name %s (name_%.*s)",
			    (int)l, t, P->fam[f].name, (int)l, t);
	return USHER_OK;
}

/* ---- the driver --------------------------------------------------------- */

enum usher_err usher_textparse(const char *text, size_t len, enum usher_tp_format fmt,
			       const struct usher_tp_limits *lim, struct usher_arena *a,
			       struct usher_tp_result *out, struct usher_tp_error *err)
{
	struct parser P;
	const char *p = text, *nl, *nul;
	bool eof = false;
	char b[64];

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	memset(&P, 0, sizeof(P));
	P.text = text;
	P.text_end = text + len;
	P.fmt = fmt;
	if (lim)
		P.lim = *lim;
	if (!P.lim.max_line)
		P.lim.max_line = USHER_TP_DEFAULT_MAX_LINE;
	if (!P.lim.max_labels)
		P.lim.max_labels = USHER_TP_DEFAULT_MAX_LABELS;
	P.a = a;
	P.err = err;
	P.cur = SIZE_MAX;
	P.scratch = usher_arena_alloc(a, (2 * P.lim.max_labels + 1) * sizeof(*P.scratch));
	if (P.lim.reject_duplicates)
		P.dups = usher_seriesset_new(a);

	while (p < P.text_end && !P.rc) {
		if (eof) {
			P.line = P.end = p;
			fail(&P, p, "content after # EOF");
			break;
		}
		P.lineno++;
		nl = memchr(p, '\n', (size_t)(P.text_end - p));
		P.line = p;
		P.end = nl ? nl : P.text_end;
		p = nl ? nl + 1 : P.text_end;
		if ((size_t)(P.end - P.line) > P.lim.max_line) {
			fail_big(&P, P.line + P.lim.max_line, "line longer than %zu bytes",
				 P.lim.max_line);
			break;
		}
		nul = memchr(P.line, '\0', (size_t)(P.end - P.line));
		if (nul) {
			fail(&P, nul, "NUL byte");
			break;
		}
		if (P.end > P.line && P.end[-1] == '\r') {
			fail(&P, P.end - 1, "carriage return: lines must end with \\n alone");
			break;
		}
		if (fmt == USHER_TP_OPENMETRICS) {
			if (P.line == P.end)
				fail(&P, P.line, "empty line (OpenMetrics allows none)");
			else if (*P.line == '#')
				om_comment(&P, &eof);
			else
				sample_line(&P);
			if (eof && !nl)
				break;
			continue;
		}
		{
			const char *q = P.line;

			skip_blanks(&P, &q);
			if (q >= P.end)
				continue;
			if (*q == '#')
				text_comment(&P, q);
			else if (name_start(*q, true))
				sample_line(&P);
			else
				fail(&P, q, "expected a metric name or '#', got %s",
				     show_byte(b, sizeof(b), q, P.end));
		}
	}
	if (!P.rc && fmt == USHER_TP_OPENMETRICS && !eof) {
		P.lineno++;
		P.line = P.end = P.text_end;
		fail(&P, P.line, "missing \"# EOF\" at the end");
	}
	if (P.rc)
		return P.rc;
	out->families = P.fam;
	out->nfamilies = P.nfam;
	out->samples = P.smp;
	out->nsamples = P.nsmp;
	return USHER_OK;
}

enum usher_tp_format usher_textparse_format(const char *content_type)
{
	const char *p = content_type;

	if (!p)
		return USHER_TP_TEXT;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "application/openmetrics-text", 28) == 0 &&
	    (p[28] == '\0' || p[28] == ';' || p[28] == ' ' || p[28] == '\t'))
		return USHER_TP_OPENMETRICS;
	return USHER_TP_TEXT;
}

const char *usher_tp_sample_name(struct usher_arena *a, const struct usher_tp_result *r,
				 const struct usher_tp_sample *s)
{
	const char *base = r->families[s->family].name;

	if (s->suffix == USHER_TP_SUF_NONE)
		return base;
	return usher_arena_printf(a, "%s%s", base, suffix_text[s->suffix]);
}
