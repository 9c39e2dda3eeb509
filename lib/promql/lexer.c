/* The PromQL lexer: numbers (decimal, hex, Inf, NaN), durations, quoted
 * strings with Go's escapes, identifiers, keywords and operators. */
#include "promql/lexer.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "promql/ast.h"

void pq_lexer_init(struct pq_lexer *lx, const char *s, struct usher_arena *a)
{
	lx->s = s;
	lx->len = strlen(s);
	lx->pos = 0;
	lx->a = a;
	lx->brackets = 0;
}

static bool is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(int c)
{
	return is_alpha(c) || is_digit(c);
}

static int peekc(const struct pq_lexer *lx, size_t off)
{
	return lx->pos + off < lx->len ? (unsigned char)lx->s[lx->pos + off] : 0;
}

static void error_tok(struct pq_lexer *lx, struct pq_token *t, size_t pos, const char *msg)
{
	t->type = T_ERROR;
	t->pos = pos;
	t->end = lx->pos > pos ? lx->pos : pos + 1;
	t->text = usher_arena_strdup(lx->a, msg);
	lx->pos = lx->len; /* stop here */
}

static const struct {
	const char *word;
	enum pq_tok tok;
} keywords[] = {
    {"and", T_AND},
    {"or", T_OR},
    {"unless", T_UNLESS},
    {"atan2", T_ATAN2},
    {"by", T_BY},
    {"without", T_WITHOUT},
    {"on", T_ON},
    {"ignoring", T_IGNORING},
    {"group_left", T_GROUP_LEFT},
    {"group_right", T_GROUP_RIGHT},
    {"bool", T_BOOL},
    {"offset", T_OFFSET},
};

static bool word_is(const char *s, size_t n, const char *w)
{
	size_t i;

	if (strlen(w) != n)
		return false;
	for (i = 0; i < n; i++)
		if (tolower((unsigned char)s[i]) != w[i])
			return false;
	return true;
}

/* Scans a PromQL duration at p: one or more <digits><unit> groups. Returns
 * its length, 0 if there is none. */
static size_t scan_duration(const char *p, size_t n)
{
	size_t i = 0, groups = 0;

	while (i < n && is_digit((unsigned char)p[i])) {
		while (i < n && is_digit((unsigned char)p[i]))
			i++;
		if (i + 1 < n && p[i] == 'm' && p[i + 1] == 's')
			i += 2;
		else if (i < n && strchr("smhdwy", p[i]) && p[i])
			i++;
		else
			return 0;
		groups++;
	}
	if (!groups || (i < n && is_alnum((unsigned char)p[i])))
		return 0;
	return i;
}

enum usher_err usher_promql_parse_duration(const char *s, size_t len, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"y", 365LL * 86400000},
		     {"w", 7LL * 86400000},
		     {"d", 86400000},
		     {"h", 3600000},
		     {"m", 60000},
		     {"s", 1000},
		     {"ms", 1}};
	size_t i = 0, last = 0;
	int64_t total = 0;
	bool any = false;

	if (len == 1 && s[0] == '0') {
		*ms = 0;
		return USHER_OK;
	}
	while (i < len) {
		int64_t v = 0;
		size_t u, ulen;
		bool found = false;

		if (!is_digit((unsigned char)s[i]))
			return USHER_ERR_INVALID;
		while (i < len && is_digit((unsigned char)s[i])) {
			if (v > (INT64_MAX - 9) / 10)
				return USHER_ERR_INVALID;
			v = v * 10 + (s[i++] - '0');
		}
		for (u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
			ulen = strlen(units[u].unit);
			if (i + ulen <= len && memcmp(s + i, units[u].unit, ulen) == 0 &&
			    !(ulen == 1 && s[i] == 'm' && i + 1 < len && s[i + 1] == 's')) {
				/* each unit at most once, largest first */
				if (any && u + 1 <= last)
					return USHER_ERR_INVALID;
				if (v > INT64_MAX / units[u].ms ||
				    total > INT64_MAX - v * units[u].ms)
					return USHER_ERR_INVALID;
				total += v * units[u].ms;
				last = u + 1;
				i += ulen;
				found = true;
				break;
			}
		}
		if (!found)
			return USHER_ERR_INVALID;
		any = true;
	}
	if (!any || total > USHER_PQ_MAX_DURATION_MS)
		return USHER_ERR_INVALID;
	*ms = total;
	return USHER_OK;
}

/* Scans a number as Prometheus' lexer does; returns its length or 0. */
static size_t scan_number(const char *p, size_t n)
{
	size_t i = 0;
	const char *digits = "0123456789";

	if (n >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		i = 2;
		digits = "0123456789abcdefABCDEF_";
	}
	while (i < n && strchr(digits, p[i]) && p[i])
		i++;
	if (i < n && p[i] == '.') {
		i++;
		while (i < n && strchr(digits, p[i]) && p[i])
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E') && digits[10] == '\0') {
		size_t j = i + 1;

		if (j < n && (p[j] == '+' || p[j] == '-'))
			j++;
		if (j < n && is_digit((unsigned char)p[j])) {
			while (j < n && (is_digit((unsigned char)p[j]) || p[j] == '_'))
				j++;
			i = j;
		} else {
			return 0;
		}
	}
	if (i == 0 || (i == 1 && p[0] == '.'))
		return 0;
	if (i < n && is_alnum((unsigned char)p[i]))
		return 0;
	return i;
}

static double number_value(struct usher_arena *a, const char *p, size_t n)
{
	char *tmp = usher_arena_alloc(a, n + 1);
	size_t i, j = 0;

	for (i = 0; i < n; i++)
		if (p[i] != '_')
			tmp[j++] = p[i];
	tmp[j] = '\0';
	if (j > 2 && tmp[0] == '0' && (tmp[1] == 'x' || tmp[1] == 'X'))
		return (double)strtoull(tmp, NULL, 16);
	return strtod(tmp, NULL);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void add_utf8(struct usher_buf *b, uint32_t cp)
{
	char out[4];

	if (cp < 0x80) {
		out[0] = (char)cp;
		(void)usher_buf_add(b, out, 1);
	} else if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		(void)usher_buf_add(b, out, 2);
	} else if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		(void)usher_buf_add(b, out, 3);
	} else {
		out[0] = (char)(0xf0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[3] = (char)(0x80 | (cp & 0x3f));
		(void)usher_buf_add(b, out, 4);
	}
}

static void lex_string(struct pq_lexer *lx, struct pq_token *t)
{
	char q = lx->s[lx->pos];
	size_t start = lx->pos;
	struct usher_buf b;

	usher_buf_init(&b, lx->len + 16);
	lx->pos++;
	for (;;) {
		int c = peekc(lx, 0);

		if (lx->pos >= lx->len || (c == '\n' && q != '`')) {
			usher_buf_free(&b);
			error_tok(lx, t, start, "unterminated quoted string");
			return;
		}
		lx->pos++;
		if (c == q)
			break;
		if (c != '\\' || q == '`') {
			(void)usher_buf_addc(&b, (char)c);
			continue;
		}
		c = peekc(lx, 0);
		lx->pos++;
		switch (c) {
		case 'a': (void)usher_buf_addc(&b, '\a'); break;
		case 'b': (void)usher_buf_addc(&b, '\b'); break;
		case 'f': (void)usher_buf_addc(&b, '\f'); break;
		case 'n': (void)usher_buf_addc(&b, '\n'); break;
		case 'r': (void)usher_buf_addc(&b, '\r'); break;
		case 't': (void)usher_buf_addc(&b, '\t'); break;
		case 'v': (void)usher_buf_addc(&b, '\v'); break;
		case '\\': (void)usher_buf_addc(&b, '\\'); break;
		case 'x':
		case 'u':
		case 'U': {
			int n = c == 'x' ? 2 : c == 'u' ? 4 : 8, i;
			uint32_t v = 0;

			for (i = 0; i < n; i++) {
				int h = hexval(peekc(lx, 0));

				if (h < 0) {
					usher_buf_free(&b);
					error_tok(lx, t, start,
						  "invalid escape sequence in string");
					return;
				}
				v = v * 16 + (uint32_t)h;
				lx->pos++;
			}
			if (c == 'x')
				(void)usher_buf_addc(&b, (char)v);
			else if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000)) {
				usher_buf_free(&b);
				error_tok(lx, t, start,
					  "invalid Unicode code point in escape sequence");
				return;
			} else
				add_utf8(&b, v);
			break;
		}
		default:
			if (c == q) {
				(void)usher_buf_addc(&b, (char)c);
			} else if (c >= '0' && c <= '7') {
				int v = c - '0', i;

				for (i = 0; i < 2; i++) {
					int d = peekc(lx, 0);

					if (d < '0' || d > '7') {
						usher_buf_free(&b);
						error_tok(lx, t, start,
							  "invalid escape sequence in string");
						return;
					}
					v = v * 8 + (d - '0');
					lx->pos++;
				}
				if (v > 255) {
					usher_buf_free(&b);
					error_tok(lx, t, start, "octal escape value > 255");
					return;
				}
				(void)usher_buf_addc(&b, (char)v);
			} else {
				usher_buf_free(&b);
				error_tok(lx, t, start, "unknown escape sequence");
				return;
			}
		}
	}
	t->type = T_STRING;
	t->pos = start;
	t->end = lx->pos;
	t->text = usher_arena_strndup(lx->a, b.data ? b.data : "", b.len);
	usher_buf_free(&b);
}

void pq_lexer_next(struct pq_lexer *lx, struct pq_token *t)
{
	int c;
	size_t start, n;

	memset(t, 0, sizeof(*t));
	for (;;) {
		while (lx->pos < lx->len && isspace((unsigned char)lx->s[lx->pos]))
			lx->pos++;
		if (peekc(lx, 0) != '#')
			break;
		while (lx->pos < lx->len && lx->s[lx->pos] != '\n')
			lx->pos++;
	}
	start = lx->pos;
	t->pos = start;
	if (lx->pos >= lx->len) {
		t->type = T_EOF;
		t->end = start;
		return;
	}
	c = peekc(lx, 0);
	if (c == '"' || c == '\'' || c == '`') {
		lex_string(lx, t);
		return;
	}
	if (is_digit(c) || (c == '.' && is_digit(peekc(lx, 1)))) {
		n = scan_number(lx->s + lx->pos, lx->len - lx->pos);
		if (n) {
			t->type = T_NUMBER;
			t->num = number_value(lx->a, lx->s + lx->pos, n);
		} else {
			n = scan_duration(lx->s + lx->pos, lx->len - lx->pos);
			if (!n || usher_promql_parse_duration(lx->s + lx->pos, n, &t->ms)) {
				lx->pos++;
				error_tok(lx, t, start, "bad number or duration syntax");
				return;
			}
			t->type = T_DURATION;
		}
		lx->pos += n;
		t->end = lx->pos;
		t->text = usher_arena_strndup(lx->a, lx->s + start, n);
		return;
	}
	if (c == ':' && lx->brackets > 0) {
		lx->pos++;
		t->type = T_COLON;
		t->end = lx->pos;
		return;
	}
	if (is_alpha(c) || c == ':') {
		size_t i;

		while (lx->pos < lx->len && (is_alnum(peekc(lx, 0)) || peekc(lx, 0) == ':'))
			lx->pos++;
		n = lx->pos - start;
		t->end = lx->pos;
		t->text = usher_arena_strndup(lx->a, lx->s + start, n);
		if (word_is(t->text, n, "inf") || word_is(t->text, n, "nan")) {
			t->type = T_NUMBER;
			t->num = tolower((unsigned char)t->text[0]) == 'i' ? INFINITY : NAN;
			return;
		}
		for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
			if (word_is(t->text, n, keywords[i].word)) {
				t->type = keywords[i].tok;
				return;
			}
		t->type = T_IDENT;
		return;
	}
	lx->pos++;
	t->end = lx->pos;
	switch (c) {
	case '(': t->type = T_LPAREN; return;
	case ')': t->type = T_RPAREN; return;
	case '{': t->type = T_LBRACE; return;
	case '}': t->type = T_RBRACE; return;
	case '[':
		lx->brackets++;
		t->type = T_LBRACKET;
		return;
	case ']':
		if (lx->brackets > 0)
			lx->brackets--;
		t->type = T_RBRACKET;
		return;
	case ',': t->type = T_COMMA; return;
	case '@': t->type = T_AT; return;
	case '+': t->type = T_ADD; return;
	case '-': t->type = T_SUB; return;
	case '*': t->type = T_MUL; return;
	case '/': t->type = T_DIV; return;
	case '%': t->type = T_MOD; return;
	case '^': t->type = T_POW; return;
	case '=':
		if (peekc(lx, 0) == '=') {
			lx->pos++;
			t->type = T_EQLC;
		} else if (peekc(lx, 0) == '~') {
			lx->pos++;
			t->type = T_EQL_REGEX;
		} else {
			t->type = T_ASSIGN;
		}
		t->end = lx->pos;
		return;
	case '!':
		if (peekc(lx, 0) == '=') {
			lx->pos++;
			t->type = T_NEQ;
		} else if (peekc(lx, 0) == '~') {
			lx->pos++;
			t->type = T_NEQ_REGEX;
		} else {
			error_tok(lx, t, start, "unexpected character after '!': '!'");
			return;
		}
		t->end = lx->pos;
		return;
	case '<':
	case '>':
		if (peekc(lx, 0) == '=') {
			lx->pos++;
			t->type = c == '<' ? T_LTE : T_GTE;
		} else {
			t->type = c == '<' ? T_LSS : T_GTR;
		}
		t->end = lx->pos;
		return;
	default: {
		char msg[64];

		if (c >= 0x20 && c < 0x7f)
			snprintf(msg, sizeof(msg), "unexpected character: '%c'", c);
		else
			snprintf(msg, sizeof(msg), "unexpected character: '\\x%02x'", c);
		error_tok(lx, t, start, msg);
	}
	}
}

static const char *op_text(enum pq_tok t)
{
	switch (t) {
	case T_ADD: return "+";
	case T_SUB: return "-";
	case T_MUL: return "*";
	case T_DIV: return "/";
	case T_MOD: return "%";
	case T_POW: return "^";
	case T_EQLC: return "==";
	case T_NEQ: return "!=";
	case T_GTR: return ">";
	case T_LSS: return "<";
	case T_GTE: return ">=";
	case T_LTE: return "<=";
	case T_ASSIGN: return "=";
	case T_EQL_REGEX: return "=~";
	case T_NEQ_REGEX: return "!~";
	default: return NULL;
	}
}

const char *pq_token_desc(struct usher_arena *a, const struct pq_token *t)
{
	const char *op = op_text(t->type);

	switch (t->type) {
	case T_EOF: return "end of input";
	case T_ERROR: return t->text;
	case T_IDENT:
		return usher_arena_printf(a, "%s \"%s\"",
					  strchr(t->text, ':') ? "metric identifier" : "identifier",
					  t->text);
	case T_NUMBER: return usher_arena_printf(a, "number \"%s\"", t->text ? t->text : "");
	case T_DURATION: return usher_arena_printf(a, "duration \"%s\"", t->text);
	case T_STRING: return usher_arena_printf(a, "string \"%s\"", t->text);
	case T_LPAREN: return "\"(\"";
	case T_RPAREN: return "\")\"";
	case T_LBRACE: return "\"{\"";
	case T_RBRACE: return "\"}\"";
	case T_LBRACKET: return "\"[\"";
	case T_RBRACKET: return "\"]\"";
	case T_COMMA: return "\",\"";
	case T_COLON: return "\":\"";
	case T_AT: return "<@>";
	default: break;
	}
	if (op)
		return usher_arena_printf(a, "<op:%s>", op);
	return usher_arena_printf(a, "<%s>", t->text ? t->text : "?");
}
