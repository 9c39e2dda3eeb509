/* Go text/template for alert labels and annotations: a lexer and parser
 * after Go's text/template/parse (same errors, same positions), and an
 * evaluator over a handful of value kinds with Prometheus' template
 * functions and Go's fmt formatting rules where they show in the output. */
#include "rules/template.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>

#include "core/mem.h"
#include "core/timeutil.h"

/* Prometheus expands "{{$labels := .Labels}}{{$externalLabels :=
 * .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
 * in front of the text; its error columns on line 1 include these bytes. */
#define ALERT_DEFS_LEN  112
#define MAX_EXEC_DEPTH  1000
#define MAX_RANGE_ITEMS 100000
/* nodes one expansion may execute: {{template}} calls can recurse in two
 * branches, which Go's depth limit alone does not stop */
#define MAX_EXEC_STEPS 1000000

/* --- lexer --- */

enum tok {
	T_EOF,
	T_ERROR,
	T_TEXT,
	T_LDELIM,
	T_RDELIM,
	T_SPACE,
	T_PIPE,
	T_LPAREN,
	T_RPAREN,
	T_DECLARE,
	T_ASSIGN,
	T_COMMA,
	T_STRING,
	T_RAWSTRING,
	T_CHAR,
	T_NUMBER,
	T_BOOL,
	T_NIL,
	T_DOT,
	T_FIELD,
	T_VARIABLE,
	T_IDENT,
	T_OTHER,
	/* keywords */
	T_IF,
	T_ELSE,
	T_END,
	T_RANGE,
	T_WITH,
	T_DEFINE,
	T_TEMPLATE,
	T_BLOCK,
	T_BREAK,
	T_CONTINUE,
};

static const struct {
	const char *word;
	enum tok t;
} keywords[] = {
    {"if", T_IF},       {"else", T_ELSE},         {"end", T_END},           {"range", T_RANGE},
    {"with", T_WITH},   {"define", T_DEFINE},     {"template", T_TEMPLATE}, {"block", T_BLOCK},
    {"break", T_BREAK}, {"continue", T_CONTINUE},
};

struct token {
	enum tok type;
	size_t pos, len;
	int line;
	const char *msg; /* T_ERROR */
};

struct lexer {
	const char *s;
	size_t n, pos;
	int line;
	int parens;
	struct usher_arena *a;
	struct token *v;
	size_t nv, cap;
	bool failed;
};

static int line_at(const char *s, size_t pos)
{
	int line = 1;
	size_t i;

	for (i = 0; i < pos; i++)
		if (s[i] == '\n')
			line++;
	return line;
}

static void emit(struct lexer *l, enum tok t, size_t pos, size_t len)
{
	if (l->nv == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct token *nv = usher_arena_alloc(l->a, cap * sizeof(*nv));

		if (l->nv)
			memcpy(nv, l->v, l->nv * sizeof(*nv));
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->nv].type = t;
	l->v[l->nv].pos = pos;
	l->v[l->nv].len = len;
	l->v[l->nv].line = line_at(l->s, pos);
	l->v[l->nv].msg = NULL;
	l->nv++;
}

static void lex_error(struct lexer *l, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void lex_error(struct lexer *l, size_t pos, const char *fmt, ...)
{
	va_list ap;

	emit(l, T_ERROR, pos, 0);
	va_start(ap, fmt);
	l->v[l->nv - 1].msg = usher_arena_vprintf(l->a, fmt, ap);
	va_end(ap);
	l->failed = true;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Letters, digits, '_' and any non-ASCII byte (Go accepts Unicode letters). */
static bool is_alnum(char c)
{
	return isalnum((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

static bool at_rdelim(const struct lexer *l, size_t pos, bool *trim)
{
	if (is_space(l->s[pos]) && l->s[pos + 1] == '-' && l->s[pos + 2] == '}' &&
	    l->s[pos + 3] == '}') {
		*trim = true;
		return true;
	}
	if (strncmp(l->s + pos, "}}", 2) == 0) {
		*trim = false;
		return true;
	}
	return false;
}

static bool scan_number(struct lexer *l)
{
	const char *digits = "0123456789_";
	const char *s = l->s;

	if (s[l->pos] == '+' || s[l->pos] == '-')
		l->pos++;
	if (s[l->pos] == '0' && s[l->pos + 1] && strchr("xXoObB", s[l->pos + 1])) {
		char c = (char)tolower((unsigned char)s[l->pos + 1]);

		l->pos += 2;
		digits = c == 'x' ? "0123456789abcdefABCDEF_" : c == 'o' ? "01234567_" : "01_";
	}
	while (s[l->pos] && strchr(digits, s[l->pos]))
		l->pos++;
	if (s[l->pos] == '.') {
		l->pos++;
		while (s[l->pos] && strchr(digits, s[l->pos]))
			l->pos++;
	}
	if (strlen(digits) == 11 && (s[l->pos] == 'e' || s[l->pos] == 'E')) {
		l->pos++;
		if (s[l->pos] == '+' || s[l->pos] == '-')
			l->pos++;
		while (s[l->pos] && strchr("0123456789_", s[l->pos]))
			l->pos++;
	}
	if (strlen(digits) == 23 && (s[l->pos] == 'p' || s[l->pos] == 'P')) {
		l->pos++;
		if (s[l->pos] == '+' || s[l->pos] == '-')
			l->pos++;
		while (s[l->pos] && strchr("0123456789_", s[l->pos]))
			l->pos++;
	}
	if (s[l->pos] == 'i')
		l->pos++;
	return !is_alnum(s[l->pos]);
}

static bool at_terminator(const struct lexer *l)
{
	char c = l->s[l->pos];
	bool trim;

	if (is_space(c) || c == '\0' || strchr(".,|:()", c))
		return true;
	return at_rdelim(l, l->pos, &trim);
}

/* Lexes the inside of one action, up to and including its right delimiter. */
static void lex_action(struct lexer *l)
{
	const char *s = l->s;

	for (;;) {
		size_t start = l->pos;
		bool trim;
		char c = s[l->pos];

		if (at_rdelim(l, l->pos, &trim)) {
			if (l->parens > 0) {
				lex_error(l, l->pos, "unclosed left paren");
				return;
			}
			emit(l, T_RDELIM, l->pos + (trim ? 2 : 0), 2);
			l->pos += trim ? 4 : 2;
			if (trim)
				while (is_space(s[l->pos]))
					l->pos++;
			return;
		}
		if (c == '\0') {
			lex_error(l, l->pos, "unclosed action");
			return;
		}
		if (is_space(c)) {
			/* stops before a space that starts " -}}"; the first one
			 * is not such a space (at_rdelim said so above) */
			while (is_space(s[l->pos]) && !at_rdelim(l, l->pos, &trim))
				l->pos++;
			emit(l, T_SPACE, start, l->pos - start);
			continue;
		}
		l->pos++;
		switch (c) {
		case '=': emit(l, T_ASSIGN, start, 1); continue;
		case ':':
			if (s[l->pos] != '=') {
				lex_error(l, start, "expected :=");
				return;
			}
			l->pos++;
			emit(l, T_DECLARE, start, 2);
			continue;
		case '|': emit(l, T_PIPE, start, 1); continue;
		case ',': emit(l, T_COMMA, start, 1); continue;
		case '(':
			l->parens++;
			emit(l, T_LPAREN, start, 1);
			continue;
		case ')':
			if (--l->parens < 0) {
				lex_error(l, start, "unexpected right paren");
				return;
			}
			emit(l, T_RPAREN, start, 1);
			continue;
		case '"':
			for (;;) {
				char d = s[l->pos];

				if (d == '\\') {
					if (s[l->pos + 1] == '\0' || s[l->pos + 1] == '\n') {
						lex_error(l, start, "unterminated quoted string");
						return;
					}
					l->pos += 2;
					continue;
				}
				if (d == '\0' || d == '\n') {
					lex_error(l, start, "unterminated quoted string");
					return;
				}
				l->pos++;
				if (d == '"')
					break;
			}
			emit(l, T_STRING, start, l->pos - start);
			continue;
		case '`': {
			const char *e = strchr(s + l->pos, '`');

			if (!e) {
				lex_error(l, start, "unterminated raw quoted string");
				return;
			}
			l->pos = (size_t)(e - s) + 1;
			emit(l, T_RAWSTRING, start, l->pos - start);
			continue;
		}
		case '\'':
			for (;;) {
				char d = s[l->pos];

				if (d == '\\') {
					if (s[l->pos + 1] == '\0' || s[l->pos + 1] == '\n') {
						lex_error(l, start,
							  "unterminated character constant");
						return;
					}
					l->pos += 2;
					continue;
				}
				if (d == '\0' || d == '\n') {
					lex_error(l, start, "unterminated character constant");
					return;
				}
				l->pos++;
				if (d == '\'')
					break;
			}
			emit(l, T_CHAR, start, l->pos - start);
			continue;
		case '$':
			while (is_alnum(s[l->pos]))
				l->pos++;
			if (!at_terminator(l)) {
				lex_error(l, l->pos, "bad character %#x", (unsigned char)s[l->pos]);
				return;
			}
			emit(l, T_VARIABLE, start, l->pos - start);
			continue;
		case '.':
			if (!isdigit((unsigned char)s[l->pos])) {
				while (is_alnum(s[l->pos]))
					l->pos++;
				if (!at_terminator(l)) {
					lex_error(l, l->pos, "bad character %#x",
						  (unsigned char)s[l->pos]);
					return;
				}
				emit(l, l->pos - start == 1 ? T_DOT : T_FIELD, start,
				     l->pos - start);
				continue;
			}
			/* FALLTHROUGH: a number like .5 */
		default: break;
		}
		if (c == '.' || c == '+' || c == '-' || isdigit((unsigned char)c)) {
			l->pos = start;
			if (!scan_number(l)) {
				while (is_alnum(s[l->pos]))
					l->pos++;
				lex_error(l, start, "bad number syntax: \"%.*s\"",
					  (int)(l->pos - start), s + start);
				return;
			}
			emit(l, T_NUMBER, start, l->pos - start);
			continue;
		}
		if (is_alnum(c)) {
			size_t i, len;
			enum tok t = T_IDENT;

			while (is_alnum(s[l->pos]))
				l->pos++;
			if (!at_terminator(l)) {
				lex_error(l, l->pos, "bad character %#x", (unsigned char)s[l->pos]);
				return;
			}
			len = l->pos - start;
			for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
				if (strlen(keywords[i].word) == len &&
				    strncmp(keywords[i].word, s + start, len) == 0)
					t = keywords[i].t;
			if ((len == 4 && strncmp(s + start, "true", 4) == 0) ||
			    (len == 5 && strncmp(s + start, "false", 5) == 0))
				t = T_BOOL;
			if (len == 3 && strncmp(s + start, "nil", 3) == 0)
				t = T_NIL;
			emit(l, t, start, len);
			continue;
		}
		if ((unsigned char)c < 0x80 && isprint((unsigned char)c)) {
			emit(l, T_OTHER, start, 1);
			continue;
		}
		lex_error(l, start, "unrecognized character in action: %#x", (unsigned char)c);
		return;
	}
}

static void lex_all(struct lexer *l)
{
	const char *s = l->s;

	while (!l->failed) {
		const char *p = strstr(s + l->pos, "{{");
		size_t ld, end, after;
		bool trim_left;

		if (!p) {
			if (l->pos < l->n)
				emit(l, T_TEXT, l->pos, l->n - l->pos);
			emit(l, T_EOF, l->n, 0);
			return;
		}
		ld = (size_t)(p - s);
		trim_left = s[ld + 2] == '-' && is_space(s[ld + 3]);
		end = ld;
		if (trim_left)
			while (end > l->pos && is_space(s[end - 1]))
				end--;
		if (end > l->pos)
			emit(l, T_TEXT, l->pos, end - l->pos);
		after = ld + 2 + (trim_left ? 2 : 0);
		if (strncmp(s + after, "/*", 2) == 0) {
			const char *ce = strstr(s + after + 2, "*/");
			bool trim;

			if (!ce) {
				lex_error(l, ld, "unclosed comment");
				return;
			}
			l->pos = (size_t)(ce - s) + 2;
			if (!at_rdelim(l, l->pos, &trim)) {
				lex_error(l, ld, "comment ends before closing delimiter");
				return;
			}
			l->pos += trim ? 4 : 2;
			if (trim)
				while (is_space(s[l->pos]))
					l->pos++;
			continue;
		}
		emit(l, T_LDELIM, ld, 2);
		l->pos = after;
		l->parens = 0;
		lex_action(l);
	}
}

/* --- parse tree --- */

enum nkind {
	N_LIST,
	N_TEXT,
	N_ACTION,
	N_IF,
	N_RANGE,
	N_WITH,
	N_TEMPLATE,
	N_BREAK,
	N_CONTINUE,
	N_PIPE,
	N_COMMAND,
	N_FIELD,    /* .A.B */
	N_VARIABLE, /* $x.A */
	N_DOT,
	N_NIL,
	N_BOOL,
	N_NUMBER,
	N_STRING,
	N_IDENT, /* a function name */
	N_CHAIN, /* (pipe).A or func.A */
	/* markers returned by itemList */
	N_END,
	N_ELSE,
};

struct fn;

struct node {
	enum nkind k;
	size_t pos, end; /* source span */
	int line;
	/* N_TEXT: text; N_STRING: unquoted; N_TEMPLATE: name */
	const char *text;
	size_t len;
	/* N_LIST items, N_COMMAND args, N_PIPE commands */
	struct node **items;
	size_t n, cap;
	/* N_ACTION, N_IF/RANGE/WITH, N_TEMPLATE: pipe; controls: list, else */
	struct node *pipe, *list, *elist;
	/* N_PIPE: declared variables */
	const char **decl;
	size_t ndecl;
	bool assign;
	/* N_FIELD, N_VARIABLE, N_CHAIN: the names (for VARIABLE, [0] is "$x") */
	const char **ident;
	size_t nident;
	struct node *base; /* N_CHAIN */
	/* constants */
	bool b;
	bool is_int;
	bool complex; /* an imaginary constant: parses, cannot be used */
	int64_t i;
	double f;
	const struct fn *fn; /* N_IDENT */
};

struct define {
	const char *name;
	struct node *list;
};

struct usher_template {
	char *name;
	char *text;
	struct usher_arena *a;
	struct node *root;
	struct define *defs;
	size_t ndefs;
	bool literal;
	/* a notification template (usher_template_parse_json): Alertmanager's
	 * functions, a JSON dot, and lib's defines for {{template}} */
	bool json;
	const struct usher_template *lib;
};

struct parser {
	struct usher_template *t;
	struct token *tok;
	size_t ntok, i;
	const char **vars;
	size_t nvars, capvars;
	int range_depth;
	struct usher_error *err;
	bool failed;
};

/* --- values --- */

enum vkind {
	V_INVALID, /* "no value" */
	V_NIL,
	V_BOOL,
	V_INT,
	V_FLOAT,
	V_STRING,
	V_LABELS,  /* map[string]string */
	V_SAMPLE,  /* *sample: .Labels, .Value */
	V_SAMPLES, /* queryResult */
	V_DATA,    /* the template data */
	V_ARGS,    /* map[string]interface{} from args */
	V_JSON,    /* a JSON object or array of notification data; .i is its shape */
};

/* How a JSON value behaves (Alertmanager's template.Data model): structs
 * have Go field names and fail on unknown ones, maps (KV) read a missing
 * key as "" and have SortedPairs / Names / Values / Remove, lists of alerts
 * have Firing / Resolved. */
enum jshape { JS_MAP, JS_STRUCT, JS_LIST, JS_ALERTS };

struct val {
	enum vkind k;
	bool b;
	int64_t i;
	double f;
	const char *s;
	struct usher_labels l;
	const struct usher_template_sample *smp; /* V_SAMPLE: one; V_SAMPLES: n */
	struct val *args;                        /* V_ARGS */
	size_t n;
	const json_t *j; /* V_JSON */
};

struct exec;
typedef bool fn_impl(struct exec *x, struct val *args, size_t n, struct val *out);

/* A template function: its name, arity (-1: variadic) and, for functions
 * taking strings, which arguments must be strings. */
struct fn {
	const char *name;
	int nargs;
	fn_impl *impl;
	unsigned string_args; /* bit i: argument i must be a string */
};

/* --- parser --- */

static struct node *new_node(struct parser *p, enum nkind k, size_t pos)
{
	struct node *n = usher_arena_zalloc(p->t->a, sizeof(*n));

	n->k = k;
	n->pos = pos;
	n->end = pos;
	n->line = line_at(p->t->text, pos);
	return n;
}

static void add_item(struct usher_arena *a, struct node *n, struct node *item)
{
	if (n->n == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 4;
		struct node **ni = usher_arena_alloc(a, cap * sizeof(*ni));

		if (n->n)
			memcpy(ni, n->items, n->n * sizeof(*ni));
		n->items = ni;
		n->cap = cap;
	}
	n->items[n->n++] = item;
}

static void perrorf(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perrorf(struct parser *p, int line, const char *fmt, ...)
{
	char msg[USHER_ERRMSG_MAX];
	va_list ap;

	if (p->failed)
		return;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	usher_fail(p->err, USHER_ERR_INVALID, "template: %s:%d: %s", p->t->name, line, msg);
}

static struct token *next(struct parser *p)
{
	struct token *t = &p->tok[p->i];

	if (p->i + 1 < p->ntok)
		p->i++;
	return t;
}

static struct token *peek(struct parser *p)
{
	return &p->tok[p->i];
}

static struct token *next_nonspace(struct parser *p)
{
	struct token *t;

	do
		t = next(p);
	while (t->type == T_SPACE);
	return t;
}

static struct token *peek_nonspace(struct parser *p)
{
	struct token *t = next_nonspace(p);

	p->i = (size_t)(t - p->tok);
	return t;
}

/* Go's item.String() for messages. */
static const char *tok_desc(struct parser *p, const struct token *t)
{
	const char *s = p->t->text + t->pos;

	if (t->type == T_EOF)
		return "EOF";
	if (t->type == T_ERROR)
		return t->msg;
	if (t->type >= T_IF)
		return usher_arena_printf(p->t->a, "<%.*s>", (int)t->len, s);
	if (t->len > 10)
		return usher_arena_printf(p->t->a, "\"%.10s\"...", s);
	return usher_arena_printf(p->t->a, "\"%.*s\"", (int)t->len, s);
}

static void unexpected(struct parser *p, const struct token *t, const char *context)
{
	if (t->type == T_ERROR)
		perrorf(p, t->line, "%s", t->msg);
	else
		perrorf(p, t->line, "unexpected %s in %s", tok_desc(p, t), context);
}

static bool utf8_put(struct usher_buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return false;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	return usher_buf_add(b, u, n) == USHER_OK;
}

/* Go's strconv.Unquote for "…", `…` and '…' (a char yields its code point
 * in *cp). Returns NULL on bad syntax. */
static const char *unquote(struct usher_arena *a, const char *s, size_t len, uint32_t *cp)
{
	struct usher_buf b;
	size_t i;
	char q = s[0];
	const char *res;
	size_t nchars = 0;

	if (len < 2 || s[len - 1] != q)
		return NULL;
	if (q == '`')
		return usher_arena_strndup(a, s + 1, len - 2);
	usher_buf_init(&b, len * 4 + 16);
	for (i = 1; i < len - 1; i++) {
		char c = s[i];
		uint32_t v = 0;
		int k, nd;

		nchars++;
		if (c != '\\') {
			if (c == q)
				goto bad;
			if (q == '\'' && (unsigned char)c >= 0x80) {
				/* one UTF-8 sequence */
				unsigned char u = (unsigned char)c;
				int extra = u >= 0xF0 ? 3 : u >= 0xE0 ? 2 : 1;

				v = u & (0x3F >> extra);
				for (k = 0; k < extra && i + 1 < len - 1; k++)
					v = (v << 6) | ((unsigned char)s[++i] & 0x3F);
				if (cp)
					*cp = v;
				(void)utf8_put(&b, v);
				continue;
			}
			if (cp)
				*cp = (unsigned char)c;
			(void)usher_buf_addc(&b, c);
			continue;
		}
		c = s[++i];
		switch (c) {
		case 'a': v = 7; break;
		case 'b': v = 8; break;
		case 'f': v = 12; break;
		case 'n': v = 10; break;
		case 'r': v = 13; break;
		case 't': v = 9; break;
		case 'v': v = 11; break;
		case '\\': v = '\\'; break;
		case '"':
		case '\'':
			if (c != q)
				goto bad;
			v = (uint32_t)c;
			break;
		case 'x':
		case 'u':
		case 'U':
			nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
			for (k = 0; k < nd; k++) {
				char h = s[i + 1 + k];

				if (!isxdigit((unsigned char)h) || i + 1 + (size_t)k >= len - 1)
					goto bad;
				v = v * 16 + (uint32_t)(isdigit((unsigned char)h)
							    ? h - '0'
							    : tolower((unsigned char)h) - 'a' + 10);
			}
			i += (size_t)nd;
			if (c == 'x') {
				if (cp)
					*cp = v;
				(void)usher_buf_addc(&b, (char)v);
				continue;
			}
			break;
		default:
			if (c >= '0' && c <= '7') {
				for (k = 0; k < 3; k++) {
					char o = s[i + (size_t)k];

					if (o < '0' || o > '7')
						goto bad;
					v = v * 8 + (uint32_t)(o - '0');
				}
				i += 2;
				if (v > 255)
					goto bad;
				if (cp)
					*cp = v;
				(void)usher_buf_addc(&b, (char)v);
				continue;
			}
			goto bad;
		}
		if (cp)
			*cp = v;
		if (!utf8_put(&b, v))
			goto bad;
	}
	if (q == '\'' && nchars != 1)
		goto bad;
	res = usher_arena_strndup(a, usher_buf_str(&b), b.len);
	usher_buf_free(&b);
	return res;
bad:
	usher_buf_free(&b);
	return NULL;
}

static const struct fn *find_fn(const char *name, size_t len);
static const struct fn *find_fn_in(const struct usher_template *t, const char *name, size_t len);

static struct node *pipeline(struct parser *p, const char *context, enum tok end);

static bool var_known(struct parser *p, const char *name, size_t len)
{
	size_t i;

	for (i = p->nvars; i-- > 0;)
		if (strlen(p->vars[i]) == len && strncmp(p->vars[i], name, len) == 0)
			return true;
	return false;
}

static void push_var(struct parser *p, const char *name)
{
	if (p->nvars == p->capvars) {
		p->capvars = p->capvars ? p->capvars * 2 : 16;
		p->vars = usher_realloc(p->vars, p->capvars * sizeof(*p->vars));
	}
	p->vars[p->nvars++] = name;
}

static const char *tok_str(struct parser *p, const struct token *t)
{
	return usher_arena_strndup(p->t->a, p->t->text + t->pos, t->len);
}

static struct node *number_node(struct parser *p, const struct token *t)
{
	struct node *n = new_node(p, N_NUMBER, t->pos);
	const char *s = tok_str(p, t);
	char *end, *clean;
	size_t i, j;

	n->end = t->pos + t->len;
	n->text = s;
	if (t->type == T_CHAR) {
		uint32_t cp = 0;

		if (!unquote(p->t->a, s, t->len, &cp)) {
			perrorf(p, t->line, "malformed character constant: %s", s);
			return NULL;
		}
		n->is_int = true;
		n->i = cp;
		n->f = cp;
		return n;
	}
	/* Go allows '_' between digits */
	clean = usher_arena_strdup(p->t->a, s);
	for (i = j = 0; clean[i]; i++)
		if (clean[i] != '_')
			clean[j++] = clean[i];
	clean[j] = '\0';
	if (clean[0] && clean[strlen(clean) - 1] == 'i') {
		/* Go parses imaginary constants; nothing here can use one */
		n->complex = true;
		return n;
	}
	if (clean[0] && (strchr(clean, '.') == NULL || strncasecmp(clean, "0x", 2) == 0) &&
	    !((strchr(clean, 'e') || strchr(clean, 'E')) && strncasecmp(clean, "0x", 2) != 0) &&
	    !strchr(clean, 'p') && !strchr(clean, 'P')) {
		const char *digits = clean;
		int base = 10;
		bool neg = false;

		if (*digits == '+' || *digits == '-')
			neg = *digits++ == '-';
		if (digits[0] == '0' && digits[1] && strchr("xXoObB", digits[1])) {
			base = strchr("xX", digits[1]) ? 16 : strchr("oO", digits[1]) ? 8 : 2;
			digits += 2;
		} else if (digits[0] == '0' && digits[1]) {
			base = 8;
		}
		if (*digits) {
			unsigned long long u;

			errno = 0;
			u = strtoull(digits, &end, base);
			if (*end == '\0' && errno == 0 &&
			    u <= (unsigned long long)INT64_MAX + neg) {
				n->is_int = true;
				n->i = neg ? (int64_t)(0 - u) : (int64_t)u;
				n->f = (double)n->i;
				return n;
			}
			if (*end == '\0' && errno == 0 && !neg) {
				n->f = (double)u; /* a uint64 beyond int64 */
				return n;
			}
		}
		/* integer-looking text that is no integer: Go refuses it */
		if (!strpbrk(clean, ".eEpP") ||
		    strncasecmp(clean + (clean[0] == '-' || clean[0] == '+'), "0x", 2) == 0) {
			n->f = strtod(clean, &end);
			if (end != clean && !*end && !strpbrk(clean, "xX")) {
				perrorf(p, t->line, "integer overflow: \"%s\"", s);
				return NULL;
			}
			perrorf(p, t->line, "illegal number syntax: \"%s\"", s);
			return NULL;
		}
	}
	n->f = strtod(clean, &end);
	if (end == clean || *end) {
		perrorf(p, t->line, "illegal number syntax: \"%s\"", s);
		return NULL;
	}
	return n;
}

static struct node *term(struct parser *p)
{
	struct token *t = next_nonspace(p);
	struct node *n;

	switch (t->type) {
	case T_IDENT: {
		const struct fn *f = find_fn_in(p->t, p->t->text + t->pos, t->len);

		if (!f) {
			perrorf(p, t->line, "function \"%.*s\" not defined", (int)t->len,
				p->t->text + t->pos);
			return NULL;
		}
		n = new_node(p, N_IDENT, t->pos);
		n->end = t->pos + t->len;
		n->text = f->name;
		n->fn = f;
		return n;
	}
	case T_DOT:
		n = new_node(p, N_DOT, t->pos);
		n->end = t->pos + 1;
		return n;
	case T_NIL:
		n = new_node(p, N_NIL, t->pos);
		n->end = t->pos + 3;
		return n;
	case T_VARIABLE:
		if (!var_known(p, p->t->text + t->pos, t->len)) {
			perrorf(p, t->line, "undefined variable \"%.*s\"", (int)t->len,
				p->t->text + t->pos);
			return NULL;
		}
		n = new_node(p, N_VARIABLE, t->pos);
		n->end = t->pos + t->len;
		n->ident = usher_arena_alloc(p->t->a, sizeof(*n->ident));
		n->ident[0] = tok_str(p, t);
		n->nident = 1;
		return n;
	case T_FIELD:
		n = new_node(p, N_FIELD, t->pos);
		n->end = t->pos + t->len;
		n->ident = usher_arena_alloc(p->t->a, sizeof(*n->ident));
		n->ident[0] = usher_arena_strndup(p->t->a, p->t->text + t->pos + 1, t->len - 1);
		n->nident = 1;
		return n;
	case T_BOOL:
		n = new_node(p, N_BOOL, t->pos);
		n->end = t->pos + t->len;
		n->b = p->t->text[t->pos] == 't';
		return n;
	case T_CHAR:
	case T_NUMBER: return number_node(p, t);
	case T_LPAREN:
		n = pipeline(p, "parenthesized pipeline", T_RPAREN);
		if (n)
			n->end = p->tok[p->i > 0 ? p->i - 1 : 0].pos + 1;
		return n;
	case T_STRING:
	case T_RAWSTRING:
		n = new_node(p, N_STRING, t->pos);
		n->end = t->pos + t->len;
		n->text = unquote(p->t->a, p->t->text + t->pos, t->len, NULL);
		if (!n->text) {
			perrorf(p, t->line, "invalid syntax");
			return NULL;
		}
		n->len = strlen(n->text);
		return n;
	default: p->i = (size_t)(t - p->tok); return NULL;
	}
}

static struct node *operand(struct parser *p)
{
	struct node *n = term(p), *c;

	if (!n || p->failed)
		return NULL;
	if (peek(p)->type != T_FIELD)
		return n;
	if (n->k == N_BOOL || n->k == N_STRING || n->k == N_NUMBER || n->k == N_NIL ||
	    n->k == N_DOT) {
		perrorf(p, peek(p)->line, "unexpected . after term \"%.*s\"",
			(int)(n->end - n->pos), p->t->text + n->pos);
		return NULL;
	}
	if (n->k == N_FIELD || n->k == N_VARIABLE)
		c = n;
	else {
		c = new_node(p, N_CHAIN, n->pos);
		c->base = n;
	}
	while (peek(p)->type == T_FIELD) {
		struct token *f = next(p);
		const char **ni = usher_arena_alloc(p->t->a, (c->nident + 1) * sizeof(*ni));

		if (c->nident)
			memcpy(ni, c->ident, c->nident * sizeof(*ni));
		ni[c->nident++] = usher_arena_strndup(p->t->a, p->t->text + f->pos + 1, f->len - 1);
		c->ident = ni;
		c->end = f->pos + f->len;
	}
	return c;
}

static struct node *command(struct parser *p)
{
	struct node *cmd = new_node(p, N_COMMAND, peek_nonspace(p)->pos);

	for (;;) {
		struct node *o;
		struct token *t;

		peek_nonspace(p);
		o = operand(p);
		if (p->failed)
			return NULL;
		if (o) {
			add_item(p->t->a, cmd, o);
			cmd->end = o->end;
		}
		t = next(p);
		if (t->type == T_SPACE)
			continue;
		if (t->type == T_RDELIM || t->type == T_RPAREN)
			p->i = (size_t)(t - p->tok);
		else if (t->type != T_PIPE) {
			unexpected(p, t, "operand");
			return NULL;
		}
		break;
	}
	if (cmd->n == 0) {
		perrorf(p, p->tok[p->i].line, "empty command");
		return NULL;
	}
	return cmd;
}

static bool non_executable(const struct node *n)
{
	return n->k == N_BOOL || n->k == N_DOT || n->k == N_NIL || n->k == N_NUMBER ||
	       n->k == N_STRING;
}

static struct node *pipeline(struct parser *p, const char *context, enum tok end)
{
	struct token *t = peek_nonspace(p);
	struct node *pipe = new_node(p, N_PIPE, t->pos);
	size_t i;

	/* declarations: $x := …, $x = …, range $i, $e := … */
	for (;;) {
		size_t save = p->i;
		struct token *v = peek_nonspace(p), *nx;

		if (v->type != T_VARIABLE)
			break;
		next(p);
		nx = peek_nonspace(p);
		if (nx->type == T_DECLARE || nx->type == T_ASSIGN) {
			next_nonspace(p);
			pipe->assign = nx->type == T_ASSIGN;
		} else if (nx->type == T_COMMA) {
			next_nonspace(p);
			if (strcmp(context, "range") != 0 || pipe->ndecl >= 1) {
				perrorf(p, nx->line, "too many declarations in %s", context);
				return NULL;
			}
		} else {
			p->i = save;
			break;
		}
		{
			const char **nd =
			    usher_arena_alloc(p->t->a, (pipe->ndecl + 1) * sizeof(*nd));

			if (pipe->ndecl)
				memcpy(nd, pipe->decl, pipe->ndecl * sizeof(*nd));
			nd[pipe->ndecl++] = tok_str(p, v);
			pipe->decl = nd;
		}
		if (!pipe->assign)
			push_var(p, pipe->decl[pipe->ndecl - 1]);
		else if (!var_known(p, pipe->decl[pipe->ndecl - 1],
				    strlen(pipe->decl[pipe->ndecl - 1]))) {
			perrorf(p, v->line, "undefined variable \"%s\"",
				pipe->decl[pipe->ndecl - 1]);
			return NULL;
		}
		if (nx->type != T_COMMA)
			break;
		if (peek_nonspace(p)->type != T_VARIABLE) {
			perrorf(p, nx->line, "range can only initialize variables");
			return NULL;
		}
	}
	for (;;) {
		t = next_nonspace(p);
		if (t->type == end) {
			if (pipe->n == 0) {
				perrorf(p, t->line, "missing value for %s", context);
				return NULL;
			}
			for (i = 1; i < pipe->n; i++)
				if (non_executable(pipe->items[i]->items[0])) {
					perrorf(p, t->line,
						"non executable command in pipeline stage %zu",
						i + 1);
					return NULL;
				}
			pipe->end = t->pos;
			return pipe;
		}
		switch (t->type) {
		case T_BOOL:
		case T_CHAR:
		case T_DOT:
		case T_FIELD:
		case T_IDENT:
		case T_NUMBER:
		case T_NIL:
		case T_RAWSTRING:
		case T_STRING:
		case T_VARIABLE:
		case T_LPAREN: {
			struct node *c;

			p->i = (size_t)(t - p->tok);
			c = command(p);
			if (!c)
				return NULL;
			add_item(p->t->a, pipe, c);
			break;
		}
		default: unexpected(p, t, context); return NULL;
		}
	}
}

static struct node *text_or_action(struct parser *p);

/* Items up to {{end}} or {{else}}, which is returned in *stop. */
static struct node *item_list(struct parser *p, struct node **stop)
{
	struct node *list = new_node(p, N_LIST, peek(p)->pos);

	*stop = NULL;
	while (peek_nonspace(p)->type != T_EOF) {
		struct node *n = text_or_action(p);

		if (!n || p->failed)
			return NULL;
		if (n->k == N_END || n->k == N_ELSE) {
			*stop = n;
			return list;
		}
		add_item(p->t->a, list, n);
	}
	perrorf(p, peek(p)->line, "unexpected EOF");
	return NULL;
}

static struct node *if_control(struct parser *p, struct token *kw);

static struct node *parse_control(struct parser *p, enum nkind k, const char *context,
				  struct token *kw)
{
	struct node *n = new_node(p, k, kw->pos), *stop;
	size_t mark = p->nvars;

	n->pipe = pipeline(p, context, T_RDELIM);
	if (!n->pipe)
		return NULL;
	if (k == N_RANGE)
		p->range_depth++;
	n->list = item_list(p, &stop);
	if (k == N_RANGE)
		p->range_depth--;
	if (!n->list)
		return NULL;
	if (stop->k == N_ELSE) {
		struct token *t = peek_nonspace(p);

		/* {{else if}} in an if, {{else with}} in a with (Go 1.23) */
		if ((t->type == T_IF && k == N_IF) || (t->type == T_WITH && k == N_WITH)) {
			/* {{else if …}}: an if inside the else list, sharing the {{end}} */
			struct node *inner;

			next_nonspace(p);
			n->elist = new_node(p, N_LIST, t->pos);
			inner = t->type == T_IF ? if_control(p, t)
						: parse_control(p, N_WITH, "with", t);
			if (!inner)
				return NULL;
			add_item(p->t->a, n->elist, inner);
		} else {
			n->elist = item_list(p, &stop);
			if (!n->elist)
				return NULL;
			if (stop->k != N_END) {
				perrorf(p, stop->line, "expected end; found {{else}}");
				return NULL;
			}
		}
	}
	p->nvars = mark;
	return n;
}

static struct node *if_control(struct parser *p, struct token *kw)
{
	return parse_control(p, N_IF, "if", kw);
}

static bool expect(struct parser *p, enum tok type, const char *context)
{
	struct token *t = next_nonspace(p);

	if (t->type != type) {
		unexpected(p, t, context);
		return false;
	}
	return true;
}

static const char *template_name(struct parser *p, const char *context)
{
	struct token *t = next_nonspace(p);

	if (t->type != T_STRING && t->type != T_RAWSTRING) {
		unexpected(p, t, context);
		return NULL;
	}
	return unquote(p->t->a, p->t->text + t->pos, t->len, NULL);
}

static void add_define(struct parser *p, const char *name, struct node *list, int line)
{
	struct define *nd;
	size_t i;

	for (i = 0; i < p->t->ndefs; i++)
		if (strcmp(p->t->defs[i].name, name) == 0) {
			if (p->t->defs[i].list->n && list->n) {
				perrorf(p, line, "template: multiple definition of template \"%s\"",
					name);
				return;
			}
			if (list->n)
				p->t->defs[i].list = list;
			return;
		}
	nd = usher_arena_alloc(p->t->a, (p->t->ndefs + 1) * sizeof(*nd));
	if (p->t->ndefs)
		memcpy(nd, p->t->defs, p->t->ndefs * sizeof(*nd));
	nd[p->t->ndefs].name = name;
	nd[p->t->ndefs].list = list;
	p->t->defs = nd;
	p->t->ndefs++;
}

/* {{define "name"}} … {{end}}: a new tree with only $ defined. */
static bool parse_definition(struct parser *p)
{
	const char *name = template_name(p, "define clause");
	const char **saved;
	size_t nsaved, capsaved;
	struct node *list, *stop;
	int line = peek(p)->line;
	int rd = p->range_depth;

	if (!name || !expect(p, T_RDELIM, "define clause"))
		return false;
	saved = p->vars;
	nsaved = p->nvars;
	capsaved = p->capvars;
	p->vars = NULL;
	p->nvars = p->capvars = 0;
	p->range_depth = 0;
	push_var(p, "$");
	list = item_list(p, &stop);
	free(p->vars);
	p->vars = saved;
	p->nvars = nsaved;
	p->capvars = capsaved;
	p->range_depth = rd;
	if (!list)
		return false;
	if (stop->k != N_END) {
		perrorf(p, stop->line, "unexpected {{else}} in define clause");
		return false;
	}
	add_define(p, name, list, line);
	return !p->failed;
}

static struct node *action(struct parser *p)
{
	struct token *t = next_nonspace(p);
	struct node *n;

	switch (t->type) {
	case T_IF: return if_control(p, t);
	case T_RANGE: return parse_control(p, N_RANGE, "range", t);
	case T_WITH: return parse_control(p, N_WITH, "with", t);
	case T_ELSE:
		n = new_node(p, N_ELSE, t->pos);
		if (peek_nonspace(p)->type == T_IF || peek_nonspace(p)->type == T_WITH)
			return n;
		return expect(p, T_RDELIM, "else") ? n : NULL;
	case T_END: n = new_node(p, N_END, t->pos); return expect(p, T_RDELIM, "end") ? n : NULL;
	case T_BREAK:
	case T_CONTINUE:
		if (p->range_depth == 0) {
			perrorf(p, t->line, "{{%s}} outside {{range}}",
				t->type == T_BREAK ? "break" : "continue");
			return NULL;
		}
		n = new_node(p, t->type == T_BREAK ? N_BREAK : N_CONTINUE, t->pos);
		return expect(p, T_RDELIM, t->type == T_BREAK ? "break" : "continue") ? n : NULL;
	case T_TEMPLATE:
	case T_BLOCK: {
		const char *context = t->type == T_BLOCK ? "block clause" : "template clause";
		const char *name = template_name(p, context);
		struct token *nx;

		if (!name)
			return NULL;
		n = new_node(p, N_TEMPLATE, t->pos);
		n->text = name;
		nx = next_nonspace(p);
		if (nx->type != T_RDELIM) {
			p->i = (size_t)(nx - p->tok);
			n->pipe = pipeline(p, context, T_RDELIM);
			if (!n->pipe)
				return NULL;
		}
		if (t->type == T_BLOCK) {
			/* block = define + template */
			struct node *list, *stop;

			list = item_list(p, &stop);
			if (!list)
				return NULL;
			if (stop->k != N_END) {
				perrorf(p, stop->line, "unexpected {{else}} in block clause");
				return NULL;
			}
			add_define(p, name, list, t->line);
		}
		return p->failed ? NULL : n;
	}
	default:
		p->i = (size_t)(t - p->tok);
		n = new_node(p, N_ACTION, t->pos);
		n->pipe = pipeline(p, "command", T_RDELIM);
		return n->pipe ? n : NULL;
	}
}

static struct node *text_or_action(struct parser *p)
{
	struct token *t = next_nonspace(p);
	struct node *n;

	switch (t->type) {
	case T_TEXT:
		n = new_node(p, N_TEXT, t->pos);
		n->text = p->t->text + t->pos;
		n->len = t->len;
		return n;
	case T_LDELIM: return action(p);
	default: unexpected(p, t, "input"); return NULL;
	}
}

static bool parse_top(struct parser *p)
{
	struct node *root = new_node(p, N_LIST, 0);

	p->t->root = root;
	while (peek(p)->type != T_EOF) {
		struct node *n;

		if (peek(p)->type == T_ERROR) {
			perrorf(p, peek(p)->line, "%s", peek(p)->msg);
			return false;
		}
		if (peek(p)->type == T_LDELIM) {
			size_t save = p->i;

			next(p);
			if (next_nonspace(p)->type == T_DEFINE) {
				if (!parse_definition(p))
					return false;
				continue;
			}
			p->i = save;
		}
		n = text_or_action(p);
		if (!n || p->failed)
			return false;
		if (n->k == N_END || n->k == N_ELSE) {
			perrorf(p, n->line, "unexpected {{%s}}", n->k == N_END ? "end" : "else");
			return false;
		}
		add_item(p->t->a, root, n);
	}
	return true;
}

static enum usher_err parse_common(const char *name, const char *text, bool json,
				   const struct usher_template *lib, struct usher_template **out,
				   struct usher_error *err)
{
	struct usher_template *t = usher_calloc(1, sizeof(*t));
	struct lexer l;
	struct parser p;
	bool ok;

	*out = NULL;
	t->a = usher_arena_new();
	t->name = usher_strdup(name);
	t->text = usher_strdup(text);
	memset(&l, 0, sizeof(l));
	l.s = t->text;
	l.n = strlen(t->text);
	l.a = t->a;
	lex_all(&l);
	memset(&p, 0, sizeof(p));
	p.t = t;
	p.tok = l.v;
	p.ntok = l.nv;
	p.err = err;
	t->json = json;
	t->lib = lib;
	push_var(&p, "$");
	if (!json) {
		/* the variables Prometheus defines in front of every alert template */
		push_var(&p, "$labels");
		push_var(&p, "$externalLabels");
		push_var(&p, "$externalURL");
		push_var(&p, "$value");
	}
	ok = parse_top(&p);
	free(p.vars);
	if (!ok) {
		if (!p.failed)
			usher_fail(err, USHER_ERR_INVALID, "template: %s: parse error", name);
		usher_template_free(t);
		return USHER_ERR_INVALID;
	}
	/* one text node and nothing else: expanding gives the text (a comment
	 * can split text in two nodes, which then goes the long way) */
	t->literal = t->ndefs == 0 && (t->root->n == 0 ||
				       (t->root->n == 1 && t->root->items[0]->k == N_TEXT));
	*out = t;
	return USHER_OK;
}

enum usher_err usher_template_parse(const char *name, const char *text, struct usher_template **out,
				    struct usher_error *err)
{
	return parse_common(name, text, false, NULL, out, err);
}

enum usher_err usher_template_parse_json(const char *name, const char *text,
					 const struct usher_template *lib,
					 struct usher_template **out, struct usher_error *err)
{
	return parse_common(name, text, true, lib, out, err);
}

void usher_template_free(struct usher_template *t)
{
	if (!t)
		return;
	usher_arena_free(t->a);
	free(t->name);
	free(t->text);
	free(t);
}

bool usher_template_is_literal(const struct usher_template *t)
{
	return t->literal;
}

/* --- Go formatting --- */

/* The shortest decimal digits that read back as v (v finite, > 0):
 * digits in d (NUL-terminated, no dot), decimal exponent so that
 * v = 0.d × 10^dp. */
static void shortest(double v, char *d, int *nd, int *dp)
{
	char buf[40];
	int prec, i, k;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	k = 0;
	for (i = 0; buf[i] && buf[i] != 'e'; i++)
		if (isdigit((unsigned char)buf[i]))
			d[k++] = buf[i];
	while (k > 1 && d[k - 1] == '0')
		k--;
	d[k] = '\0';
	*nd = k;
	*dp = (int)strtol(strchr(buf, 'e') + 1, NULL, 10) + 1;
}

/* strconv.FormatFloat(v, 'g' or 'e', -1, 64) for %v, %g and %e-less uses. */
static void go_float_g(double v, char *out, size_t len)
{
	char d[24];
	int nd, dp, exp, i;
	size_t o = 0;

	if (isnan(v)) {
		snprintf(out, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		snprintf(out, len, signbit(v) ? "-0" : "0");
		return;
	}
	if (v < 0) {
		out[o++] = '-';
		v = -v;
	}
	shortest(v, d, &nd, &dp);
	exp = dp - 1;
	/* %v and shortest %g switch to an exponent from 1e+06 (Go's eprec 6) */
	if (exp < -4 || exp >= 6) {
		/* d.ddde±XX */
		out[o++] = d[0];
		if (nd > 1) {
			out[o++] = '.';
			for (i = 1; i < nd; i++)
				out[o++] = d[i];
		}
		snprintf(out + o, len - o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
		return;
	}
	if (dp <= 0) {
		out[o++] = '0';
		out[o++] = '.';
		for (i = 0; i < -dp; i++)
			out[o++] = '0';
		for (i = 0; i < nd; i++)
			out[o++] = d[i];
	} else {
		for (i = 0; i < dp || i < nd; i++) {
			if (i == dp)
				out[o++] = '.';
			out[o++] = i < nd ? d[i] : '0';
		}
	}
	out[o] = '\0';
}

void usher_template_format_float(double v, char *out, size_t len)
{
	go_float_g(v, out, len);
}

/* Go's %.4g: C's, except NaN and the infinities, which Go spells NaN,
 * +Inf, -Inf. */
static void go_g4(struct usher_buf *b, double v)
{
	if (isnan(v))
		(void)usher_buf_addstr(b, "NaN");
	else if (isinf(v))
		(void)usher_buf_addstr(b, v > 0 ? "+Inf" : "-Inf");
	else
		(void)usher_buf_addf(b, "%.4g", v);
}

/* Go's strconv.Quote. */
static void go_quote(struct usher_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	(void)usher_buf_addc(b, '"');
	while (*p) {
		unsigned char c = *p;

		if (c == '"' || c == '\\') {
			(void)usher_buf_addc(b, '\\');
			(void)usher_buf_addc(b, (char)c);
		} else if (c == '\n')
			(void)usher_buf_addstr(b, "\\n");
		else if (c == '\t')
			(void)usher_buf_addstr(b, "\\t");
		else if (c == '\r')
			(void)usher_buf_addstr(b, "\\r");
		else if (c == 7)
			(void)usher_buf_addstr(b, "\\a");
		else if (c == 8)
			(void)usher_buf_addstr(b, "\\b");
		else if (c == 12)
			(void)usher_buf_addstr(b, "\\f");
		else if (c == 11)
			(void)usher_buf_addstr(b, "\\v");
		else if (c < 0x20 || c == 0x7f)
			(void)usher_buf_addf(b, "\\x%02x", c);
		else if (c >= 0x80) {
			/* keep valid UTF-8 sequences, escape stray bytes */
			int extra = c >= 0xF0 && c < 0xF8 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : -1;
			int k;

			for (k = 1; extra > 0 && k <= extra; k++)
				if ((p[k] & 0xC0) != 0x80)
					extra = -1;
			if (extra < 0 || c >= 0xF8) {
				(void)usher_buf_addf(b, "\\x%02x", c);
			} else {
				(void)usher_buf_add(b, p, (size_t)extra + 1);
				p += extra;
			}
		} else
			(void)usher_buf_addc(b, (char)c);
		p++;
	}
	(void)usher_buf_addc(b, '"');
}

/* --- execution --- */

struct var {
	const char *name;
	struct val v;
};

struct exec {
	const struct usher_template *t;
	const struct usher_template_data *d;
	struct usher_buf *out;
	struct usher_arena *a;
	struct var *vars;
	size_t nvars, capvars;
	const char *cur_name; /* the template being executed */
	const struct node *at;
	struct usher_error *err;
	int depth;
	long steps;
	int flow; /* 1 break, 2 continue */
	bool failed;
	bool toobig;
	json_t *keep; /* JSON values made during the expansion (SortedPairs, …) */
	const struct usher_template *root_t; /* where {{template}} names are looked up */
};

static const char *type_name(const struct val *v)
{
	switch (v->k) {
	case V_INVALID:
	case V_NIL: return "<nil>";
	case V_BOOL: return "bool";
	case V_INT: return "int";
	case V_FLOAT: return "float64";
	case V_STRING: return "string";
	case V_LABELS: return "map[string]string";
	case V_SAMPLE: return "*template.sample";
	case V_SAMPLES: return "template.queryResult";
	case V_DATA: return "template.tmplData";
	case V_ARGS: return "map[string]interface {}";
	case V_JSON:
		return v->i == JS_STRUCT   ? "*template.Data"
		       : v->i == JS_MAP    ? "template.KV"
		       : v->i == JS_ALERTS ? "template.Alerts"
					   : "[]string";
	}
	return "?";
}

/* "template: NAME:LINE:COL: executing \"NAME\" at <CMD>: MSG" */
static bool xerrorf(struct exec *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool xerrorf(struct exec *x, const char *fmt, ...)
{
	char msg[USHER_ERRMSG_MAX];
	va_list ap;

	if (x->failed)
		return false;
	x->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->at) {
		const char *text = x->t->text;
		size_t pos = x->at->pos, ls = pos;
		int col;

		/* Go's ErrorContext: the byte offset in the line, 0-based */
		while (ls > 0 && text[ls - 1] != '\n')
			ls--;
		col = (int)(pos - ls) + (x->at->line == 1 && !x->t->json ? ALERT_DEFS_LEN : 0);
		usher_fail(x->err, USHER_ERR_INVALID,
			   "error executing template %s: template: %s:%d:%d: executing \"%s\" at "
			   "<%.*s>: %s",
			   x->t->name, x->t->name, x->at->line, col, x->cur_name,
			   (int)(x->at->end > x->at->pos ? x->at->end - x->at->pos : 0),
			   text + x->at->pos, msg);
	} else {
		usher_fail(x->err, USHER_ERR_INVALID,
			   "error executing template %s: template: %s: %s", x->t->name, x->t->name,
			   msg);
	}
	return false;
}

static void print_val(struct exec *x, struct usher_buf *b, const struct val *v);
static void print_json(struct exec *x, struct usher_buf *b, const json_t *j, int shape);

static void print_labels(struct usher_buf *b, const struct usher_labels *l)
{
	size_t i;

	(void)usher_buf_addstr(b, "map[");
	for (i = 0; i < l->n; i++)
		(void)usher_buf_addf(b, "%s%s:%s", i ? " " : "", l->v[i].name, l->v[i].value);
	(void)usher_buf_addc(b, ']');
}

/* fmt.Fprint of one value (%v). */
static void print_val(struct exec *x, struct usher_buf *b, const struct val *v)
{
	char f[40];
	size_t i;

	switch (v->k) {
	case V_INVALID: (void)usher_buf_addstr(b, "<no value>"); return;
	case V_NIL: (void)usher_buf_addstr(b, "<nil>"); return;
	case V_BOOL: (void)usher_buf_addstr(b, v->b ? "true" : "false"); return;
	case V_INT: (void)usher_buf_addf(b, "%" PRId64, v->i); return;
	case V_FLOAT:
		go_float_g(v->f, f, sizeof(f));
		(void)usher_buf_addstr(b, f);
		return;
	case V_STRING: (void)usher_buf_addstr(b, v->s); return;
	case V_LABELS: print_labels(b, &v->l); return;
	case V_SAMPLE:
		(void)usher_buf_addstr(b, "&{");
		print_labels(b, &v->smp->labels);
		go_float_g(v->smp->value, f, sizeof(f));
		(void)usher_buf_addf(b, " %s}", f);
		return;
	case V_SAMPLES:
		(void)usher_buf_addc(b, '[');
		for (i = 0; i < v->n; i++) {
			struct val s = {.k = V_SAMPLE, .smp = &v->smp[i]};

			if (i)
				(void)usher_buf_addc(b, ' ');
			print_val(x, b, &s);
		}
		(void)usher_buf_addc(b, ']');
		return;
	case V_DATA:
		(void)usher_buf_addc(b, '{');
		print_labels(b, &x->d->labels);
		(void)usher_buf_addc(b, ' ');
		print_labels(b, &x->d->external_labels);
		go_float_g(x->d->value, f, sizeof(f));
		(void)usher_buf_addf(b, " %s %s}", x->d->external_url ? x->d->external_url : "", f);
		return;
	case V_ARGS:
		(void)usher_buf_addstr(b, "map[");
		for (i = 0; i < v->n; i++) {
			(void)usher_buf_addf(b, "%sarg%zu:", i ? " " : "", i);
			print_val(x, b, &v->args[i]);
		}
		(void)usher_buf_addc(b, ']');
		return;
	case V_JSON: print_json(x, b, v->j, (int)v->i); return;
	}
}

static const char *val_str(struct exec *x, const struct val *v)
{
	struct usher_buf b;
	const char *s;

	if (v->k == V_STRING)
		return v->s;
	usher_buf_init(&b, 1 << 20);
	print_val(x, &b, v);
	s = usher_arena_strdup(x->a, usher_buf_str(&b));
	usher_buf_free(&b);
	return s;
}

static bool truth(const struct val *v)
{
	switch (v->k) {
	case V_INVALID:
	case V_NIL: return false;
	case V_BOOL: return v->b;
	case V_INT: return v->i != 0;
	case V_FLOAT: return v->f != 0;
	case V_STRING: return v->s[0] != '\0';
	case V_LABELS: return v->l.n > 0;
	case V_SAMPLES:
	case V_ARGS: return v->n > 0;
	case V_SAMPLE:
	case V_DATA: return true;
	case V_JSON: return json_is_object(v->j) ? json_object_size(v->j) > 0 : json_array_size(v->j) > 0;
	}
	return false;
}

static struct val mkstr(const char *s)
{
	struct val v = {.k = V_STRING, .s = s};

	return v;
}

static struct val mkfloat(double f)
{
	struct val v = {.k = V_FLOAT, .f = f};

	return v;
}

static struct val mkbool(bool b)
{
	struct val v = {.k = V_BOOL, .b = b};

	return v;
}

static bool json_field(struct exec *x, const struct val *v, const char *name, struct val *out);

/* Looks up a field (or map key) on v. */
static bool field(struct exec *x, const struct val *v, const char *name, struct val *out)
{
	memset(out, 0, sizeof(*out));
	switch (v->k) {
	case V_LABELS: {
		const char *s = usher_labels_get(&v->l, name);

		/* a missing key reads as the zero value (Prometheus' maps) */
		*out = mkstr(s ? s : "");
		return true;
	}
	case V_DATA:
		if (strcmp(name, "Labels") == 0) {
			out->k = V_LABELS;
			out->l = x->d->labels;
		} else if (strcmp(name, "ExternalLabels") == 0) {
			out->k = V_LABELS;
			out->l = x->d->external_labels;
		} else if (strcmp(name, "ExternalURL") == 0) {
			*out = mkstr(x->d->external_url ? x->d->external_url : "");
		} else if (strcmp(name, "Value") == 0) {
			*out = mkfloat(x->d->value);
		} else
			return xerrorf(x, "can't evaluate field %s in type %s", name, type_name(v));
		return true;
	case V_SAMPLE:
		if (strcmp(name, "Labels") == 0) {
			out->k = V_LABELS;
			out->l = v->smp->labels;
		} else if (strcmp(name, "Value") == 0) {
			*out = mkfloat(v->smp->value);
		} else
			return xerrorf(x, "can't evaluate field %s in type %s", name, type_name(v));
		return true;
	case V_ARGS: {
		size_t i;

		if (strncmp(name, "arg", 3) == 0)
			for (i = 0; i < v->n; i++) {
				char k[32];

				snprintf(k, sizeof(k), "arg%zu", i);
				if (strcmp(k, name) == 0) {
					*out = v->args[i];
					return true;
				}
			}
		out->k = V_INVALID;
		return true;
	}
	case V_JSON: return json_field(x, v, name, out);
	case V_INVALID:
	case V_NIL: return xerrorf(x, "nil pointer evaluating %s.%s", type_name(v), name);
	default: return xerrorf(x, "can't evaluate field %s in type %s", name, type_name(v));
	}
}

static bool eval_pipe(struct exec *x, const struct val *dot, const struct node *pipe,
		      struct val *out);

static bool var_get(struct exec *x, const char *name, struct val *out)
{
	size_t i;

	for (i = x->nvars; i-- > 0;)
		if (strcmp(x->vars[i].name, name) == 0) {
			*out = x->vars[i].v;
			return true;
		}
	return xerrorf(x, "undefined variable: %s", name);
}

static void var_push(struct exec *x, const char *name, const struct val *v)
{
	if (x->nvars == x->capvars) {
		x->capvars = x->capvars ? x->capvars * 2 : 16;
		x->vars = usher_realloc(x->vars, x->capvars * sizeof(*x->vars));
	}
	x->vars[x->nvars].name = name;
	x->vars[x->nvars].v = *v;
	x->nvars++;
}

static bool var_set(struct exec *x, const char *name, const struct val *v)
{
	size_t i;

	for (i = x->nvars; i-- > 0;)
		if (strcmp(x->vars[i].name, name) == 0) {
			x->vars[i].v = *v;
			return true;
		}
	return xerrorf(x, "undefined variable: %s", name);
}

static bool call_fn(struct exec *x, const struct val *dot, const struct node *cmd,
		    const struct fn *f, const struct val *final, struct val *out);

static bool eval_arg(struct exec *x, const struct val *dot, const struct node *n, struct val *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	switch (n->k) {
	case N_DOT: *out = *dot; return true;
	case N_NIL: out->k = V_NIL; return true;
	case N_BOOL: *out = mkbool(n->b); return true;
	case N_NUMBER:
		if (n->complex)
			return xerrorf(x, "complex numbers are not supported: %s", n->text);
		/* Go turns an integer constant into int, anything with . e or p
		 * into float64 */
		if (n->is_int) {
			out->k = V_INT;
			out->i = n->i;
		} else
			*out = mkfloat(n->f);
		return true;
	case N_STRING: *out = mkstr(n->text); return true;
	case N_FIELD:
		*out = *dot;
		for (i = 0; i < n->nident; i++) {
			struct val r;

			if (!field(x, out, n->ident[i], &r))
				return false;
			*out = r;
		}
		return true;
	case N_VARIABLE:
		if (!var_get(x, n->ident[0], out))
			return false;
		for (i = 1; i < n->nident; i++) {
			struct val r;

			if (!field(x, out, n->ident[i], &r))
				return false;
			*out = r;
		}
		return true;
	case N_PIPE: return eval_pipe(x, dot, n, out);
	case N_IDENT: return call_fn(x, dot, n, n->fn, NULL, out);
	case N_CHAIN:
		if (!eval_arg(x, dot, n->base, out))
			return false;
		for (i = 0; i < n->nident; i++) {
			struct val r;

			if (!field(x, out, n->ident[i], &r))
				return false;
			*out = r;
		}
		return true;
	default: return xerrorf(x, "can't handle node");
	}
}

static bool json_method_call(struct exec *x, const struct val *dot, const struct node *cmd,
			     const struct val *final, struct val *out);

static bool eval_command(struct exec *x, const struct val *dot, const struct node *cmd,
			 const struct val *final, struct val *out)
{
	const struct node *first = cmd->items[0];

	x->at = cmd;
	if (first->k == N_IDENT)
		return call_fn(x, dot, cmd, first->fn, final, out);
	if (x->t->json && (cmd->n > 1 || final) &&
	    (first->k == N_FIELD || first->k == N_VARIABLE || first->k == N_CHAIN) &&
	    first->nident > (first->k == N_VARIABLE ? 1u : 0u))
		return json_method_call(x, dot, cmd, final, out);
	if (cmd->n > 1 || final)
		return xerrorf(x, "can't give argument to non-function %.*s",
			       (int)(first->end - first->pos), x->t->text + first->pos);
	if (first->k == N_NIL)
		return xerrorf(x, "nil is not a command");
	return eval_arg(x, dot, first, out);
}

static bool eval_pipe(struct exec *x, const struct val *dot, const struct node *pipe,
		      struct val *out)
{
	struct val v = {0};
	size_t i;

	for (i = 0; i < pipe->n; i++) {
		struct val r;

		if (!eval_command(x, dot, pipe->items[i], i ? &v : NULL, &r))
			return false;
		v = r;
	}
	for (i = 0; i < pipe->ndecl; i++) {
		if (pipe->assign) {
			if (!var_set(x, pipe->decl[i], &v))
				return false;
		} else
			var_push(x, pipe->decl[i], &v);
	}
	*out = v;
	return true;
}

static bool walk(struct exec *x, const struct val *dot, const struct node *n);

static bool walk_list(struct exec *x, const struct val *dot, const struct node *list)
{
	size_t i;

	for (i = 0; i < list->n; i++) {
		if (!walk(x, dot, list->items[i]))
			return false;
		if (x->flow)
			return true;
	}
	return true;
}

static void json_range_item(struct exec *x, const struct val *v, size_t i, struct val *key,
			    struct val *elem);
static const json_t *json_sorted_pairs(struct exec *x, const json_t *obj);

static bool walk_range(struct exec *x, const struct val *dot, const struct node *n)
{
	size_t mark = x->nvars, i, count = 0;
	struct val v;

	if (!eval_pipe(x, dot, n->pipe, &v))
		return false;
	x->nvars = mark;
	switch (v.k) {
	case V_LABELS: count = v.l.n; break;
	case V_SAMPLES:
	case V_ARGS: count = v.n; break;
	case V_JSON:
		/* Go ranges over a map in key order */
		if (json_is_object(v.j)) {
			v.j = json_sorted_pairs(x, v.j);
			v.i = JS_MAP;
		}
		count = json_array_size(v.j);
		break;
	case V_INVALID:
	case V_NIL: count = 0; break;
	case V_INT:
		/* Go 1.22 ranges over integers; older ones refuse */
	default: x->at = n->pipe; return xerrorf(x, "range can't iterate over %s", val_str(x, &v));
	}
	if (count > MAX_RANGE_ITEMS)
		return xerrorf(x, "range over more than %d items", MAX_RANGE_ITEMS);
	for (i = 0; i < count; i++) {
		struct val key = {0}, elem = {0};

		if (v.k == V_LABELS) {
			key = mkstr(v.l.v[i].name);
			elem = mkstr(v.l.v[i].value);
		} else if (v.k == V_SAMPLES) {
			key.k = V_INT;
			key.i = (int64_t)i;
			elem.k = V_SAMPLE;
			elem.smp = &v.smp[i];
		} else if (v.k == V_JSON) {
			json_range_item(x, &v, i, &key, &elem);
		} else {
			char k[32];

			snprintf(k, sizeof(k), "arg%zu", i);
			key = mkstr(usher_arena_strdup(x->a, k));
			elem = v.args[i];
		}
		if (n->pipe->ndecl == 1)
			var_push(x, n->pipe->decl[0], &elem);
		else if (n->pipe->ndecl == 2) {
			var_push(x, n->pipe->decl[0], &key);
			var_push(x, n->pipe->decl[1], &elem);
		}
		if (!walk_list(x, &elem, n->list))
			return false;
		x->nvars = mark;
		if (x->flow == 1) {
			x->flow = 0;
			break;
		}
		x->flow = 0;
	}
	if (count == 0 && n->elist)
		return walk_list(x, dot, n->elist);
	return true;
}

static bool walk(struct exec *x, const struct val *dot, const struct node *n)
{
	size_t mark = x->nvars;
	struct val v;
	bool ok = true;

	if (x->toobig)
		return false;
	if (++x->steps > MAX_EXEC_STEPS)
		return xerrorf(x, "exceeded the execution budget of %d steps", MAX_EXEC_STEPS);
	switch (n->k) {
	case N_TEXT:
		if (usher_buf_add(x->out, n->text, n->len)) {
			x->toobig = true;
			return false;
		}
		return true;
	case N_ACTION:
		if (!eval_pipe(x, dot, n->pipe, &v))
			return false;
		if (n->pipe->ndecl == 0) {
			print_val(x, x->out, &v);
			if (x->out->len + 1 >= x->out->max) {
				x->toobig = true;
				return false;
			}
		}
		return true;
	case N_IF:
	case N_WITH:
		if (!eval_pipe(x, dot, n->pipe, &v))
			return false;
		if (truth(&v))
			ok = walk_list(x, n->k == N_WITH ? &v : dot, n->list);
		else if (n->elist)
			ok = walk_list(x, dot, n->elist);
		if (!x->flow)
			x->nvars = mark;
		return ok;
	case N_RANGE:
		ok = walk_range(x, dot, n);
		x->nvars = mark;
		return ok;
	case N_BREAK: x->flow = 1; return true;
	case N_CONTINUE: x->flow = 2; return true;
	case N_TEMPLATE: {
		const char *saved = x->cur_name;
		const struct usher_template *saved_t = x->t, *in = x->root_t ? x->root_t : x->t;
		struct val nd = {0};
		size_t i, base;

		for (i = 0; i < in->ndefs; i++)
			if (strcmp(in->defs[i].name, n->text) == 0)
				break;
		/* a notification template sees the defines of its library (the
		 * default templates and the files of `templates:`) */
		while (i == in->ndefs && in->lib) {
			in = in->lib;
			for (i = 0; i < in->ndefs; i++)
				if (strcmp(in->defs[i].name, n->text) == 0)
					break;
		}
		x->at = n;
		if (i == in->ndefs)
			return xerrorf(
			    x, "template: no template \"%s\" associated with template \"%s\"",
			    n->text, x->t->name);
		if (n->pipe && !eval_pipe(x, dot, n->pipe, &nd))
			return false;
		if (n->pipe)
			x->nvars = mark;
		if (++x->depth > MAX_EXEC_DEPTH)
			return xerrorf(x, "exceeded maximum template depth (%d)", MAX_EXEC_DEPTH);
		/* a new scope where only $ (the new dot) is visible */
		base = x->nvars;
		var_push(x, "$", &nd);
		x->cur_name = in->defs[i].name;
		x->t = in; /* positions in messages are in the define's text */
		ok = walk_list(x, &nd, in->defs[i].list);
		x->t = saved_t;
		x->cur_name = saved;
		x->depth--;
		x->nvars = base;
		return ok;
	}
	default: return xerrorf(x, "unknown node");
	}
}

enum usher_err usher_template_expand(const struct usher_template *t,
				     const struct usher_template_data *d, struct usher_buf *out,
				     struct usher_error *err)
{
	struct exec x;
	struct val dot = {.k = V_DATA}, v;
	bool ok;

	memset(&x, 0, sizeof(x));
	x.t = t;
	x.d = d;
	x.out = out;
	x.a = usher_arena_new();
	x.err = err;
	x.cur_name = t->name;
	var_push(&x, "$", &dot);
	v.k = V_LABELS;
	v.l = d->labels;
	var_push(&x, "$labels", &v);
	v.l = d->external_labels;
	var_push(&x, "$externalLabels", &v);
	v = mkstr(d->external_url ? d->external_url : "");
	var_push(&x, "$externalURL", &v);
	v = mkfloat(d->value);
	var_push(&x, "$value", &v);
	ok = walk_list(&x, &dot, t->root);
	free(x.vars);
	usher_arena_free(x.a);
	if (x.toobig)
		return usher_fail(err, USHER_ERR_TOOBIG,
				  "template %s: output larger than %zu bytes", t->name, out->max);
	return ok ? USHER_OK : USHER_ERR_INVALID;
}

const char *usher_template_expand_alert(const struct usher_template *t,
					const struct usher_template_data *d, struct usher_arena *a)
{
	struct usher_buf b;
	struct usher_error err;
	const char *res;

	if (t->literal)
		return t->root->n
			   ? usher_arena_strndup(a, t->root->items[0]->text, t->root->items[0]->len)
			   : "";
	usher_error_clear(&err);
	usher_buf_init(&b, 1 << 20);
	if (usher_template_expand(t, d, &b, &err))
		res = usher_arena_printf(a, "<error expanding template: %s>", err.msg);
	else
		res = usher_arena_strndup(a, usher_buf_str(&b), b.len);
	usher_buf_free(&b);
	return res;
}

/* --- functions --- */

static bool need_sample(struct exec *x, const struct val *v)
{
	if (v->k == V_SAMPLE)
		return true;
	return xerrorf(x, "wrong type for value; expected *template.sample; got %s", type_name(v));
}

/* Prometheus' convertToFloat. */
static bool to_float(struct exec *x, const struct val *v, double *f)
{
	char *end;

	switch (v->k) {
	case V_FLOAT: *f = v->f; return true;
	case V_INT: *f = (double)v->i; return true;
	case V_STRING:
		*f = strtod(v->s, &end);
		if (end == v->s || *end || isspace((unsigned char)v->s[0]))
			return xerrorf(x, "strconv.ParseFloat: parsing \"%s\": invalid syntax",
				       v->s);
		return true;
	default: return xerrorf(x, "can't convert %s to float", type_name(v));
	}
}

static bool f_humanize(struct exec *x, struct val *a, size_t n, struct val *out)
{
	static const char *big[] = {"k", "M", "G", "T", "P", "E", "Z", "Y"};
	static const char *small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
	struct usher_buf b;
	const char *prefix = "";
	double v;
	size_t i;

	if (!to_float(x, &a[0], &v))
		return false;
	usher_buf_init(&b, 256);
	if (v == 0 || isnan(v) || isinf(v)) {
		go_g4(&b, v);
	} else if (fabs(v) >= 1) {
		for (i = 0; i < 8 && fabs(v) >= 1000; i++) {
			prefix = big[i];
			v /= 1000;
		}
		go_g4(&b, v);
	} else {
		for (i = 0; i < 8 && fabs(v) < 1; i++) {
			prefix = small[i];
			v *= 1000;
		}
		go_g4(&b, v);
	}
	(void)usher_buf_addstr(&b, prefix);
	*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
	usher_buf_free(&b);
	(void)n;
	return true;
}

static bool f_humanize1024(struct exec *x, struct val *a, size_t n, struct val *out)
{
	static const char *pre[] = {"ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"};
	struct usher_buf b;
	const char *prefix = "";
	double v;
	size_t i;

	if (!to_float(x, &a[0], &v))
		return false;
	usher_buf_init(&b, 256);
	if (fabs(v) > 1 && !isnan(v) && !isinf(v))
		for (i = 0; i < 8 && fabs(v) >= 1024; i++) {
			prefix = pre[i];
			v /= 1024;
		}
	go_g4(&b, v);
	(void)usher_buf_addstr(&b, prefix);
	*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
	usher_buf_free(&b);
	(void)n;
	return true;
}

static bool f_humanize_duration(struct exec *x, struct val *a, size_t n, struct val *out)
{
	static const char *small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
	struct usher_buf b;
	double v;
	size_t i;

	if (!to_float(x, &a[0], &v))
		return false;
	usher_buf_init(&b, 256);
	if (isnan(v) || isinf(v)) {
		go_g4(&b, v);
	} else if (v == 0) {
		(void)usher_buf_addstr(&b, "0s");
	} else if (fabs(v) >= 1) {
		const char *sign = v < 0 ? "-" : "";
		int64_t dur, sec, min, hour, day;

		if (v < 0)
			v = -v;
		dur = v >= 9.2e18 ? INT64_MAX : (int64_t)v;
		sec = dur % 60;
		min = (dur / 60) % 60;
		hour = (dur / 3600) % 24;
		day = dur / 86400;
		if (day)
			(void)usher_buf_addf(
			    &b, "%s%" PRId64 "d %" PRId64 "h %" PRId64 "m %" PRId64 "s", sign, day,
			    hour, min, sec);
		else if (hour)
			(void)usher_buf_addf(&b, "%s%" PRId64 "h %" PRId64 "m %" PRId64 "s", sign,
					     hour, min, sec);
		else if (min)
			(void)usher_buf_addf(&b, "%s%" PRId64 "m %" PRId64 "s", sign, min, sec);
		else {
			(void)usher_buf_addstr(&b, sign);
			go_g4(&b, v);
			(void)usher_buf_addc(&b, 's');
		}
	} else {
		const char *prefix = "";

		for (i = 0; i < 8 && fabs(v) < 1; i++) {
			prefix = small[i];
			v *= 1000;
		}
		go_g4(&b, v);
		(void)usher_buf_addf(&b, "%ss", prefix);
	}
	*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
	usher_buf_free(&b);
	(void)n;
	return true;
}

static bool f_humanize_percentage(struct exec *x, struct val *a, size_t n, struct val *out)
{
	struct usher_buf b;
	double v;

	if (!to_float(x, &a[0], &v))
		return false;
	usher_buf_init(&b, 256);
	go_g4(&b, v * 100);
	(void)usher_buf_addc(&b, '%');
	*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
	usher_buf_free(&b);
	(void)n;
	return true;
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil(int64_t days, int64_t *y, int *m, int *d)
{
	int64_t z = days + 719468, era, doe, yoe, doy, mp;

	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Go's time.Time.String() in UTC for a millisecond timestamp. */
static const char *go_time(struct usher_arena *a, int64_t ms)
{
	int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int64_t frac = ms - secs * 1000, days, rem, y;
	int mo, d;
	char fs[8] = "";

	days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	rem = secs - days * 86400;
	civil(days, &y, &mo, &d);
	if (frac) {
		int k;

		snprintf(fs, sizeof(fs), ".%03d", (int)frac);
		for (k = 3; k > 0 && fs[k] == '0'; k--)
			fs[k] = '\0';
	}
	return usher_arena_printf(a, "%04" PRId64 "-%02d-%02d %02d:%02d:%02d%s +0000 UTC", y, mo, d,
				  (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), fs);
}

static bool f_humanize_timestamp(struct exec *x, struct val *a, size_t n, struct val *out)
{
	char f[40];
	double v;

	if (!to_float(x, &a[0], &v))
		return false;
	if (isnan(v) || isinf(v)) {
		struct usher_buf b;

		usher_buf_init(&b, 64);
		go_g4(&b, v);
		*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
		usher_buf_free(&b);
		return true;
	}
	if (fabs(v * 1e9) >= 9.223372036854775807e18) {
		go_float_g(v, f, sizeof(f));
		return xerrorf(x,
			       "error calling humanizeTimestamp: %s cannot be represented as a "
			       "nanoseconds timestamp since it overflows int64",
			       f);
	}
	/* Prometheus goes through model.Time: milliseconds, truncated */
	*out = mkstr(go_time(x->a, (int64_t)(v * 1e9) / 1000000));
	(void)n;
	return true;
}

static bool f_to_time(struct exec *x, struct val *a, size_t n, struct val *out)
{
	char f[40];
	double v;

	if (!to_float(x, &a[0], &v))
		return false;
	if (isnan(v) || isinf(v) || fabs(v * 1e9) >= 9.223372036854775807e18) {
		go_float_g(v, f, sizeof(f));
		return xerrorf(x,
			       "error calling toTime: %s cannot be represented as a nanoseconds "
			       "timestamp since it overflows int64",
			       f);
	}
	*out = mkstr(go_time(x->a, (int64_t)(v * 1e9) / 1000000));
	(void)n;
	return true;
}

static bool f_title(struct exec *x, struct val *a, size_t n, struct val *out)
{
	char *s = usher_arena_strdup(x->a, a[0].s);
	bool sep = true;
	size_t i;

	/* strings.Title: a letter after a separator is upper-cased; letters,
	 * digits, '_' and non-ASCII characters are not separators */
	for (i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (sep && c < 0x80)
			s[i] = (char)toupper(c);
		sep = c < 0x80 && !isalnum(c) && c != '_';
	}
	*out = mkstr(s);
	(void)n;
	return true;
}

static bool f_upper(struct exec *x, struct val *a, size_t n, struct val *out)
{
	char *s = usher_arena_strdup(x->a, a[0].s);
	size_t i;

	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x80)
			s[i] = (char)toupper((unsigned char)s[i]);
	*out = mkstr(s);
	(void)n;
	return true;
}

static bool f_lower(struct exec *x, struct val *a, size_t n, struct val *out)
{
	char *s = usher_arena_strdup(x->a, a[0].s);
	size_t i;

	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x80)
			s[i] = (char)tolower((unsigned char)s[i]);
	*out = mkstr(s);
	(void)n;
	return true;
}

/* An unanchored regex, compiled per call (Go's regexp.MustCompile). */
static pcre2_code *compile_re(struct exec *x, const char *fn, const char *pattern)
{
	PCRE2_SIZE off;
	int code;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
				       PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);

	if (!re) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(code, msg, sizeof(msg));
		xerrorf(x, "error calling %s: regexp: Compile(`%s`): error parsing regexp: %s", fn,
			pattern, (char *)msg);
	}
	return re;
}

static bool f_match(struct exec *x, struct val *a, size_t n, struct val *out)
{
	pcre2_code *re = compile_re(x, "match", a[0].s);
	pcre2_match_data *md;
	int rc;

	if (!re)
		return false;
	md = pcre2_match_data_create_from_pattern(re, NULL);
	if (!md)
		abort();
	rc = pcre2_match(re, (PCRE2_SPTR)a[1].s, strlen(a[1].s), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	*out = mkbool(rc >= 0);
	(void)n;
	return true;
}

static bool name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Go's Regexp.Expand: $1, ${1}, $name, ${name}, $$. */
static void expand_repl(struct usher_buf *b, const pcre2_code *re, pcre2_match_data *md,
			const char *s, const char *tmpl)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	uint32_t count = pcre2_get_ovector_count(md);
	const char *p = tmpl;

	while (*p) {
		const char *name;
		size_t len;
		char tmp[128];
		long num = -1;
		bool digits = true;
		size_t i;

		if (*p != '$') {
			(void)usher_buf_addc(b, *p++);
			continue;
		}
		if (p[1] == '$') {
			(void)usher_buf_addc(b, '$');
			p += 2;
			continue;
		}
		if (p[1] == '{') {
			name = p + 2;
			for (len = 0; name_char(name[len]); len++)
				;
			if (len == 0 || name[len] != '}') {
				(void)usher_buf_addc(b, *p++);
				continue;
			}
			p = name + len + 1;
		} else {
			name = p + 1;
			for (len = 0; name_char(name[len]); len++)
				;
			if (len == 0) {
				(void)usher_buf_addc(b, *p++);
				continue;
			}
			p = name + len;
		}
		for (i = 0; i < len; i++)
			if (!isdigit((unsigned char)name[i]))
				digits = false;
		if (len >= sizeof(tmp))
			continue;
		memcpy(tmp, name, len);
		tmp[len] = '\0';
		if (digits)
			num = len > 9 ? -1 : strtol(tmp, NULL, 10);
		else {
			int k = pcre2_substring_number_from_name(re, (PCRE2_SPTR)tmp);

			num = k > 0 ? k : -1;
		}
		if (num < 0 || (uint32_t)num >= count || ov[2 * num] == PCRE2_UNSET)
			continue;
		(void)usher_buf_add(b, s + ov[2 * num], ov[2 * num + 1] - ov[2 * num]);
	}
}

static size_t utf8_len(const char *s)
{
	unsigned char c = (unsigned char)*s;

	if (c >= 0xF0 && c < 0xF8)
		return 4;
	if (c >= 0xE0)
		return 3;
	if (c >= 0xC0)
		return 2;
	return 1;
}

static bool f_re_replace_all(struct exec *x, struct val *a, size_t n, struct val *out)
{
	pcre2_code *re = compile_re(x, "reReplaceAll", a[0].s);
	const char *s = a[2].s;
	size_t len = strlen(s), pos = 0, last_end = 0;
	pcre2_match_data *md;
	struct usher_buf b;
	bool prev_match = false;
	size_t prev_end = (size_t)-1;

	if (!re)
		return false;
	md = pcre2_match_data_create_from_pattern(re, NULL);
	if (!md)
		abort();
	usher_buf_init(&b, 1 << 20);
	while (pos <= len) {
		PCRE2_SIZE *ov;
		int rc = pcre2_match(re, (PCRE2_SPTR)s, len, pos, 0, md, NULL);

		if (rc < 0)
			break;
		ov = pcre2_get_ovector_pointer(md);
		/* Go skips an empty match right after the previous match */
		if (ov[0] == ov[1] && prev_match && ov[0] == prev_end) {
			if (pos >= len)
				break;
			pos += utf8_len(s + pos);
			prev_match = false;
			continue;
		}
		(void)usher_buf_add(&b, s + last_end, ov[0] - last_end);
		expand_repl(&b, re, md, s, a[1].s);
		last_end = ov[1];
		prev_match = true;
		prev_end = ov[1];
		if (ov[1] > ov[0])
			pos = ov[1];
		else {
			if (ov[1] >= len)
				break;
			/* an empty match: copy one character and move on */
			pos = ov[1] + utf8_len(s + ov[1]);
			(void)usher_buf_add(&b, s + ov[1], pos - ov[1]);
			last_end = pos;
			prev_match = false;
		}
	}
	if (last_end < len)
		(void)usher_buf_add(&b, s + last_end, len - last_end);
	*out = mkstr(usher_arena_strndup(x->a, usher_buf_str(&b), b.len));
	usher_buf_free(&b);
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	(void)n;
	return true;
}

static bool f_safe_html(struct exec *x, struct val *a, size_t n, struct val *out)
{
	*out = a[0];
	(void)x;
	(void)n;
	return true;
}

static bool f_query(struct exec *x, struct val *a, size_t n, struct val *out)
{
	struct usher_template_sample *smp = NULL;
	struct usher_error e;
	size_t count = 0;

	if (!x->d->query)
		return xerrorf(x, "error calling query: no query engine");
	usher_error_clear(&e);
	if (x->d->query(x->d->query_ctx, a[0].s, x->d->time_ms, x->a, &smp, &count, &e))
		return xerrorf(x, "error calling query: %s", e.msg);
	memset(out, 0, sizeof(*out));
	out->k = V_SAMPLES;
	out->smp = smp;
	out->n = count;
	(void)n;
	return true;
}

static bool f_first(struct exec *x, struct val *a, size_t n, struct val *out)
{
	if (a[0].k != V_SAMPLES)
		return xerrorf(x, "wrong type for value; expected template.queryResult; got %s",
			       type_name(&a[0]));
	if (a[0].n == 0)
		return xerrorf(x, "error calling first: first() called on vector with no elements");
	memset(out, 0, sizeof(*out));
	out->k = V_SAMPLE;
	out->smp = &a[0].smp[0];
	(void)n;
	return true;
}

static bool f_label(struct exec *x, struct val *a, size_t n, struct val *out)
{
	const char *v;

	if (a[1].k == V_NIL || a[1].k == V_INVALID) {
		*out = mkstr("");
		return true;
	}
	if (!need_sample(x, &a[1]))
		return false;
	v = usher_labels_get(&a[1].smp->labels, a[0].s);
	*out = mkstr(v ? v : "");
	(void)n;
	return true;
}

static bool f_value(struct exec *x, struct val *a, size_t n, struct val *out)
{
	if (!need_sample(x, &a[0]))
		return false;
	*out = mkfloat(a[0].smp->value);
	(void)n;
	return true;
}

static bool f_strvalue(struct exec *x, struct val *a, size_t n, struct val *out)
{
	const char *v;

	if (!need_sample(x, &a[0]))
		return false;
	v = usher_labels_get(&a[0].smp->labels, "__value__");
	*out = mkstr(v ? v : "");
	(void)n;
	return true;
}

static const char *label_or_empty(const struct usher_template_sample *s, const char *name)
{
	const char *v = usher_labels_get(&s->labels, name);

	return v ? v : "";
}

static bool f_sort_by_label(struct exec *x, struct val *a, size_t n, struct val *out)
{
	struct usher_template_sample *copy;
	size_t i;

	if (a[1].k != V_SAMPLES)
		return xerrorf(x, "wrong type for value; expected template.queryResult; got %s",
			       type_name(&a[1]));
	copy = usher_arena_alloc(x->a, (a[1].n ? a[1].n : 1) * sizeof(*copy));
	/* an insertion sort: stable, as Go's sort.Stable */
	for (i = 0; i < a[1].n; i++) {
		struct usher_template_sample cur = a[1].smp[i];
		size_t j = i;

		while (j > 0 && strcmp(label_or_empty(&copy[j - 1], a[0].s),
				       label_or_empty(&cur, a[0].s)) > 0) {
			copy[j] = copy[j - 1];
			j--;
		}
		copy[j] = cur;
	}
	*out = a[1];
	out->smp = copy;
	(void)n;
	return true;
}

static bool f_args(struct exec *x, struct val *a, size_t n, struct val *out)
{
	memset(out, 0, sizeof(*out));
	out->k = V_ARGS;
	out->args = usher_arena_alloc(x->a, (n ? n : 1) * sizeof(*out->args));
	memcpy(out->args, a, n * sizeof(*a));
	out->n = n;
	return true;
}

static void query_escape(struct usher_buf *b, const char *s, bool plus_space)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
			(void)usher_buf_addc(b, (char)c);
		else if (c == ' ' && plus_space)
			(void)usher_buf_addc(b, '+');
		else
			(void)usher_buf_addf(b, "%%%02X", c);
	}
}

static bool link_for(struct exec *x, const char *expr, int tab, struct val *out)
{
	struct usher_buf b;

	usher_buf_init(&b, 1 << 20);
	(void)usher_buf_addstr(&b, "/graph?g0.expr=");
	query_escape(&b, expr, true);
	(void)usher_buf_addf(&b, "&g0.tab=%d", tab);
	*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
	usher_buf_free(&b);
	return true;
}

static bool f_graph_link(struct exec *x, struct val *a, size_t n, struct val *out)
{
	(void)n;
	return link_for(x, a[0].s, 0, out);
}

static bool f_table_link(struct exec *x, struct val *a, size_t n, struct val *out)
{
	(void)n;
	return link_for(x, a[0].s, 1, out);
}

static const char *url_path(struct exec *x, const char *url)
{
	const char *p = strstr(url, "://");
	const char *e;

	p = p ? strchr(p + 3, '/') : (url[0] == '/' ? url : NULL);
	if (!p)
		return "";
	e = p + strcspn(p, "?#");
	return usher_arena_strndup(x->a, p, (size_t)(e - p));
}

static bool f_path_prefix(struct exec *x, struct val *a, size_t n, struct val *out)
{
	*out = mkstr(url_path(x, x->d->external_url ? x->d->external_url : ""));
	(void)a;
	(void)n;
	return true;
}

static bool f_external_url(struct exec *x, struct val *a, size_t n, struct val *out)
{
	*out = mkstr(x->d->external_url ? x->d->external_url : "");
	(void)a;
	(void)n;
	return true;
}

/* net.SplitHostPort's host, or the input when it has no port. */
static bool split_host(struct exec *x, const char *hp, const char **host, const char **port)
{
	const char *colon;

	if (hp[0] == '[') {
		const char *e = strchr(hp, ']');

		if (!e || e[1] != ':' || strchr(e + 2, ':'))
			return false;
		*host = usher_arena_strndup(x->a, hp + 1, (size_t)(e - hp - 1));
		*port = e + 2;
		return true;
	}
	colon = strrchr(hp, ':');
	if (!colon || strchr(hp, ':') != colon || strchr(hp, '[') || strchr(hp, ']'))
		return false;
	*host = usher_arena_strndup(x->a, hp, (size_t)(colon - hp));
	*port = colon + 1;
	return true;
}

static bool f_strip_port(struct exec *x, struct val *a, size_t n, struct val *out)
{
	const char *host, *port;

	*out = split_host(x, a[0].s, &host, &port) ? mkstr(host) : a[0];
	(void)n;
	return true;
}

static bool is_ip(const char *s)
{
	size_t i;
	bool dots = true;

	if (strchr(s, ':'))
		return true;
	for (i = 0; s[i]; i++)
		if (!isdigit((unsigned char)s[i]) && s[i] != '.')
			dots = false;
	return dots && s[0];
}

static bool f_strip_domain(struct exec *x, struct val *a, size_t n, struct val *out)
{
	const char *host = a[0].s, *port = NULL, *dot;

	if (!split_host(x, a[0].s, &host, &port)) {
		host = a[0].s;
		port = NULL;
	}
	if (is_ip(host)) {
		*out = a[0];
		return true;
	}
	dot = strchr(host, '.');
	if (dot)
		host = usher_arena_strndup(x->a, host, (size_t)(dot - host));
	*out = mkstr(port ? usher_arena_printf(x->a, "%s:%s", host, port) : host);
	(void)n;
	return true;
}

static bool f_parse_duration(struct exec *x, struct val *a, size_t n, struct val *out)
{
	int64_t ms;

	if (usher_duration_parse(a[0].s, &ms))
		return xerrorf(
		    x, "error calling parseDuration: not a valid duration string: \"%s\"", a[0].s);
	*out = mkfloat((double)ms / 1000);
	(void)n;
	return true;
}

/* Go's eq/lt family. */
enum kind { K_BAD, K_BOOL, K_INT, K_FLOAT, K_STRING };

static enum kind basic_kind(const struct val *v)
{
	switch (v->k) {
	case V_BOOL: return K_BOOL;
	case V_INT: return K_INT;
	case V_FLOAT: return K_FLOAT;
	case V_STRING: return K_STRING;
	default: return K_BAD;
	}
}

static bool cmp_eq(struct exec *x, const struct val *a, const struct val *b, bool *res)
{
	enum kind ka = basic_kind(a), kb = basic_kind(b);

	if (ka == K_BAD || kb == K_BAD) {
		if ((a->k == V_NIL || a->k == V_INVALID) && (b->k == V_NIL || b->k == V_INVALID)) {
			*res = true;
			return true;
		}
		return xerrorf(x, "error calling eq: invalid type for comparison");
	}
	if (ka != kb)
		return xerrorf(x, "error calling eq: incompatible types for comparison");
	switch (ka) {
	case K_BOOL: *res = a->b == b->b; break;
	case K_INT: *res = a->i == b->i; break;
	case K_FLOAT: *res = a->f == b->f; break;
	case K_STRING: *res = strcmp(a->s, b->s) == 0; break;
	default: break;
	}
	return true;
}

static bool cmp_lt(struct exec *x, const char *fn, const struct val *a, const struct val *b,
		   bool *res)
{
	enum kind ka = basic_kind(a), kb = basic_kind(b);

	if (ka == K_BAD || kb == K_BAD || ka == K_BOOL || kb == K_BOOL)
		return xerrorf(x, "error calling %s: invalid type for comparison", fn);
	if (ka != kb)
		return xerrorf(x, "error calling %s: incompatible types for comparison", fn);
	switch (ka) {
	case K_INT: *res = a->i < b->i; break;
	case K_FLOAT: *res = a->f < b->f; break;
	case K_STRING: *res = strcmp(a->s, b->s) < 0; break;
	default: break;
	}
	return true;
}

static bool f_eq(struct exec *x, struct val *a, size_t n, struct val *out)
{
	size_t i;
	bool r = false;

	if (n < 2)
		return xerrorf(x, "error calling eq: missing argument for comparison");
	for (i = 1; i < n; i++) {
		if (!cmp_eq(x, &a[0], &a[i], &r))
			return false;
		if (r)
			break;
	}
	*out = mkbool(r);
	return true;
}

static bool f_ne(struct exec *x, struct val *a, size_t n, struct val *out)
{
	bool r;

	if (!cmp_eq(x, &a[0], &a[1], &r))
		return false;
	*out = mkbool(!r);
	(void)n;
	return true;
}

static bool f_lt(struct exec *x, struct val *a, size_t n, struct val *out)
{
	bool r;

	if (!cmp_lt(x, "lt", &a[0], &a[1], &r))
		return false;
	*out = mkbool(r);
	(void)n;
	return true;
}

/* le is lt || eq, gt is !le, ge is !lt: so NaN > 80 is true, as in Go */
static bool f_le(struct exec *x, struct val *a, size_t n, struct val *out)
{
	bool lt, eq;

	if (!cmp_lt(x, "le", &a[0], &a[1], &lt) || !cmp_eq(x, &a[0], &a[1], &eq))
		return false;
	*out = mkbool(lt || eq);
	(void)n;
	return true;
}

static bool f_gt(struct exec *x, struct val *a, size_t n, struct val *out)
{
	bool lt, eq;

	if (!cmp_lt(x, "gt", &a[0], &a[1], &lt) || !cmp_eq(x, &a[0], &a[1], &eq))
		return false;
	*out = mkbool(!(lt || eq));
	(void)n;
	return true;
}

static bool f_ge(struct exec *x, struct val *a, size_t n, struct val *out)
{
	bool lt;

	if (!cmp_lt(x, "ge", &a[0], &a[1], &lt))
		return false;
	*out = mkbool(!lt);
	(void)n;
	return true;
}

static bool f_not(struct exec *x, struct val *a, size_t n, struct val *out)
{
	*out = mkbool(!truth(&a[0]));
	(void)x;
	(void)n;
	return true;
}

static bool f_len(struct exec *x, struct val *a, size_t n, struct val *out)
{
	memset(out, 0, sizeof(*out));
	out->k = V_INT;
	switch (a[0].k) {
	case V_STRING: out->i = (int64_t)strlen(a[0].s); return true;
	case V_LABELS: out->i = (int64_t)a[0].l.n; return true;
	case V_SAMPLES:
	case V_ARGS: out->i = (int64_t)a[0].n; return true;
	case V_JSON:
		out->i = (int64_t)(json_is_object(a[0].j) ? json_object_size(a[0].j)
							  : json_array_size(a[0].j));
		return true;
	default: return xerrorf(x, "error calling len: len of type %s", type_name(&a[0]));
	}
	(void)n;
}

static bool json_index(struct exec *x, const struct val *cur, const struct val *k,
		       struct val *out);

static bool f_index(struct exec *x, struct val *a, size_t n, struct val *out)
{
	size_t i;

	*out = a[0];
	for (i = 1; i < n; i++) {
		struct val cur = *out;

		if (cur.k == V_JSON) {
			if (!json_index(x, &cur, &a[i], out))
				return false;
		} else if (cur.k == V_LABELS) {
			const char *v;

			if (a[i].k != V_STRING)
				return xerrorf(x,
					       "error calling index: value has type %s; should be "
					       "string",
					       type_name(&a[i]));
			v = usher_labels_get(&cur.l, a[i].s);
			*out = mkstr(v ? v : "");
		} else if (cur.k == V_SAMPLES || cur.k == V_STRING) {
			int64_t len = cur.k == V_STRING ? (int64_t)strlen(cur.s) : (int64_t)cur.n;

			if (a[i].k != V_INT)
				return xerrorf(x,
					       "error calling index: cannot index slice/array with "
					       "type %s",
					       type_name(&a[i]));
			if (a[i].i < 0 || a[i].i >= len)
				return xerrorf(
				    x, "error calling index: index out of range: %" PRId64, a[i].i);
			memset(out, 0, sizeof(*out));
			if (cur.k == V_STRING) {
				out->k = V_INT;
				out->i = (unsigned char)cur.s[a[i].i];
			} else {
				out->k = V_SAMPLE;
				out->smp = &cur.smp[a[i].i];
			}
		} else if (cur.k == V_NIL || cur.k == V_INVALID) {
			return xerrorf(x, "error calling index: index of untyped nil");
		} else
			return xerrorf(x, "error calling index: can't index item of type %s",
				       type_name(&cur));
	}
	return true;
}

/* fmt.Sprint: a space between operands when neither is a string. */
static void sprint(struct exec *x, struct usher_buf *b, const struct val *a, size_t n, bool ln)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i && (ln || (a[i].k != V_STRING && a[i - 1].k != V_STRING)))
			(void)usher_buf_addc(b, ' ');
		print_val(x, b, &a[i]);
	}
	if (ln)
		(void)usher_buf_addc(b, '\n');
}

static bool f_print(struct exec *x, struct val *a, size_t n, struct val *out)
{
	struct usher_buf b;

	usher_buf_init(&b, 1 << 20);
	sprint(x, &b, a, n, false);
	*out = mkstr(usher_arena_strndup(x->a, usher_buf_str(&b), b.len));
	usher_buf_free(&b);
	return true;
}

static bool f_println(struct exec *x, struct val *a, size_t n, struct val *out)
{
	struct usher_buf b;

	usher_buf_init(&b, 1 << 20);
	sprint(x, &b, a, n, true);
	*out = mkstr(usher_arena_strndup(x->a, usher_buf_str(&b), b.len));
	usher_buf_free(&b);
	return true;
}

static bool f_html(struct exec *x, struct val *a, size_t n, struct val *out)
{
	struct usher_buf s, b;
	const char *p;

	usher_buf_init(&s, 1 << 20);
	usher_buf_init(&b, 1 << 22);
	sprint(x, &s, a, n, false);
	for (p = usher_buf_str(&s); *p; p++)
		switch (*p) {
		case '<': (void)usher_buf_addstr(&b, "&lt;"); break;
		case '>': (void)usher_buf_addstr(&b, "&gt;"); break;
		case '&': (void)usher_buf_addstr(&b, "&amp;"); break;
		case '\'': (void)usher_buf_addstr(&b, "&#39;"); break;
		case '"': (void)usher_buf_addstr(&b, "&#34;"); break;
		default: (void)usher_buf_addc(&b, *p);
		}
	*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
	usher_buf_free(&s);
	usher_buf_free(&b);
	return true;
}

static bool f_js(struct exec *x, struct val *a, size_t n, struct val *out)
{
	struct usher_buf s, b;
	const char *p;

	usher_buf_init(&s, 1 << 20);
	usher_buf_init(&b, 1 << 23);
	sprint(x, &s, a, n, false);
	for (p = usher_buf_str(&s); *p; p++) {
		unsigned char c = (unsigned char)*p;

		switch (c) {
		case '\\': (void)usher_buf_addstr(&b, "\\\\"); break;
		case '\'': (void)usher_buf_addstr(&b, "\\'"); break;
		case '"': (void)usher_buf_addstr(&b, "\\\""); break;
		case '<': (void)usher_buf_addstr(&b, "\\u003C"); break;
		case '>': (void)usher_buf_addstr(&b, "\\u003E"); break;
		case '&': (void)usher_buf_addstr(&b, "\\u0026"); break;
		case '=': (void)usher_buf_addstr(&b, "\\u003D"); break;
		default:
			if (c < ' ')
				(void)usher_buf_addf(&b, "\\u%04X", c);
			else
				(void)usher_buf_addc(&b, (char)c);
		}
	}
	*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
	usher_buf_free(&s);
	usher_buf_free(&b);
	return true;
}

static bool f_urlquery(struct exec *x, struct val *a, size_t n, struct val *out)
{
	struct usher_buf s, b;

	usher_buf_init(&s, 1 << 20);
	usher_buf_init(&b, 1 << 22);
	sprint(x, &s, a, n, false);
	query_escape(&b, usher_buf_str(&s), true);
	*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
	usher_buf_free(&s);
	usher_buf_free(&b);
	return true;
}

static bool f_slice(struct exec *x, struct val *a, size_t n, struct val *out)
{
	int64_t len, lo = 0, hi;
	size_t i;

	if (a[0].k != V_STRING && a[0].k != V_SAMPLES)
		return xerrorf(x, "error calling slice: can't slice item of type %s",
			       type_name(&a[0]));
	len = a[0].k == V_STRING ? (int64_t)strlen(a[0].s) : (int64_t)a[0].n;
	hi = len;
	if (n > 3)
		return xerrorf(x, "error calling slice: too many slice indexes: %zu", n - 1);
	for (i = 1; i < n; i++)
		if (a[i].k != V_INT)
			return xerrorf(x,
				       "error calling slice: cannot index slice/array with type %s",
				       type_name(&a[i]));
	if (n > 1)
		lo = a[1].i;
	if (n > 2)
		hi = a[2].i;
	if (lo < 0 || hi < lo || hi > len)
		return xerrorf(x, "error calling slice: index out of range");
	*out = a[0];
	if (a[0].k == V_STRING)
		out->s = usher_arena_strndup(x->a, a[0].s + lo, (size_t)(hi - lo));
	else {
		out->smp = a[0].smp + lo;
		out->n = (size_t)(hi - lo);
	}
	return true;
}

static bool f_call(struct exec *x, struct val *a, size_t n, struct val *out)
{
	(void)n;
	(void)out;
	if (n == 0)
		return xerrorf(x, "error calling call: missing function");
	return xerrorf(x, "error calling call: non-function of type %s", type_name(&a[0]));
}

/* printf: Go's verbs over the values templates have. */
static void pad(struct usher_buf *b, const char *s, int width, bool minus, bool zero)
{
	int len = (int)strlen(s);

	if (width <= len) {
		(void)usher_buf_addstr(b, s);
		return;
	}
	if (minus) {
		(void)usher_buf_addstr(b, s);
		while (len++ < width)
			(void)usher_buf_addc(b, ' ');
		return;
	}
	if (zero && (s[0] == '-' || s[0] == '+' || s[0] == ' ')) {
		(void)usher_buf_addc(b, s[0]);
		s++;
		width--;
		len--;
	}
	while (len++ < width)
		(void)usher_buf_addc(b, zero ? '0' : ' ');
	(void)usher_buf_addstr(b, s);
}

static void bad_verb(struct exec *x, struct usher_buf *b, char verb, const struct val *v)
{
	(void)usher_buf_addf(b, "%%!%c(", verb);
	if (v->k == V_INVALID || v->k == V_NIL)
		(void)usher_buf_addstr(b, "<nil>");
	else {
		(void)usher_buf_addf(b, "%s=", type_name(v));
		print_val(x, b, v);
	}
	(void)usher_buf_addc(b, ')');
}

/* The C format for a float verb is assembled from the flags Go accepts,
 * all of which C's printf reads the same way. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static bool f_printf(struct exec *x, struct val *a, size_t n, struct val *out)
{
	struct usher_buf b, tmp;
	const char *f;
	size_t argi = 1;

	if (a[0].k != V_STRING)
		return xerrorf(x, "wrong type for value; expected string; got %s",
			       type_name(&a[0]));
	usher_buf_init(&b, 1 << 20);
	usher_buf_init(&tmp, 1 << 20);
	for (f = a[0].s; *f; f++) {
		bool minus = false, plus = false, space = false, zero = false, sharp = false;
		int width = -1, prec = -1;
		const struct val *v;
		char cf[64], verb;

		if (*f != '%') {
			(void)usher_buf_addc(&b, *f);
			continue;
		}
		f++;
		for (;; f++) {
			if (*f == '-')
				minus = true;
			else if (*f == '+')
				plus = true;
			else if (*f == ' ')
				space = true;
			else if (*f == '0')
				zero = !minus;
			else if (*f == '#')
				sharp = true;
			else
				break;
		}
		if (*f == '*') {
			f++;
			if (argi < n && a[argi].k == V_INT) {
				width = (int)(a[argi].i > 1000 ? 1000 : a[argi].i);
				argi++;
			} else
				(void)usher_buf_addstr(&b, "%!(BADWIDTH)");
		} else if (isdigit((unsigned char)*f)) {
			width = 0;
			while (isdigit((unsigned char)*f) && width < 1000)
				width = width * 10 + (*f++ - '0');
			while (isdigit((unsigned char)*f))
				f++;
		}
		if (*f == '.') {
			f++;
			prec = 0;
			if (*f == '*') {
				f++;
				if (argi < n && a[argi].k == V_INT) {
					prec = (int)(a[argi].i > 1000 ? 1000 : a[argi].i);
					argi++;
				} else
					(void)usher_buf_addstr(&b, "%!(BADPREC)");
			} else
				while (isdigit((unsigned char)*f)) {
					if (prec < 1000)
						prec = prec * 10 + (*f - '0');
					f++;
				}
		}
		verb = *f;
		if (!verb) {
			(void)usher_buf_addstr(&b, "%!(NOVERB)");
			break;
		}
		if (verb == '%') {
			(void)usher_buf_addc(&b, '%');
			continue;
		}
		if (argi >= n) {
			(void)usher_buf_addf(&b, "%%!%c(MISSING)", verb);
			continue;
		}
		v = &a[argi++];
		usher_buf_reset(&tmp);
		snprintf(cf, sizeof(cf), "%%%s%s%s%s", plus ? "+" : "", space ? " " : "",
			 sharp ? "#" : "", prec >= 0 ? ".*" : "");
		switch (verb) {
		case 'v':
			if (v->k == V_FLOAT && (plus || space) && !isnan(v->f) && v->f >= 0)
				(void)usher_buf_addc(&tmp, plus ? '+' : ' ');
			if (v->k == V_INT && plus && v->i >= 0)
				(void)usher_buf_addc(&tmp, '+');
			print_val(x, &tmp, v);
			break;
		case 'd':
		case 'o':
		case 'x':
		case 'X':
		case 'b':
		case 'c':
			if (v->k == V_INT) {
				uint64_t u =
				    v->i < 0 ? (uint64_t)0 - (uint64_t)v->i : (uint64_t)v->i;
				char digits[80];
				int base = verb == 'd'   ? 10
					   : verb == 'o' ? 8
					   : verb == 'b' ? 2
							 : 16;
				int k = 0;
				const char *set =
				    verb == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";

				if (verb == 'c') {
					(void)utf8_put(&tmp, (uint32_t)v->i);
					break;
				}
				do {
					digits[k++] = set[u % (uint64_t)base];
					u /= (uint64_t)base;
				} while (u);
				while (prec >= 0 && k < prec && k < 70)
					digits[k++] = '0';
				if (v->i < 0)
					(void)usher_buf_addc(&tmp, '-');
				else if (plus)
					(void)usher_buf_addc(&tmp, '+');
				else if (space)
					(void)usher_buf_addc(&tmp, ' ');
				if (sharp && base == 16)
					(void)usher_buf_addstr(&tmp, verb == 'X' ? "0X" : "0x");
				if (sharp && base == 8)
					(void)usher_buf_addc(&tmp, '0');
				while (k > 0)
					(void)usher_buf_addc(&tmp, digits[--k]);
			} else if (v->k == V_STRING && (verb == 'x' || verb == 'X')) {
				const unsigned char *p;

				for (p = (const unsigned char *)v->s; *p; p++)
					(void)usher_buf_addf(&tmp, verb == 'x' ? "%02x" : "%02X",
							     *p);
			} else
				bad_verb(x, &tmp, verb, v);
			break;
		case 'e':
		case 'E':
		case 'f':
		case 'F':
		case 'g':
		case 'G':
			if (v->k != V_FLOAT) {
				bad_verb(x, &tmp, verb, v);
				break;
			}
			if (isnan(v->f) || isinf(v->f)) {
				/* Go: NaN (or +NaN with the plus flag), +Inf, -Inf */
				(void)usher_buf_addstr(&tmp, isnan(v->f) ? (plus ? "+NaN" : "NaN")
							     : v->f > 0  ? "+Inf"
									 : "-Inf");
				zero = false;
				break;
			}
			if ((verb == 'g' || verb == 'G') && prec < 0) {
				char g[40];

				go_float_g(v->f, g, sizeof(g));
				if (v->f >= 0 && (plus || space))
					(void)usher_buf_addc(&tmp, plus ? '+' : ' ');
				if (verb == 'G' && strchr(g, 'e'))
					*strchr(g, 'e') = 'E';
				(void)usher_buf_addstr(&tmp, g);
				break;
			}
			{
				size_t l = strlen(cf);

				cf[l] = verb == 'F' ? 'f' : verb;
				cf[l + 1] = '\0';
				if (prec >= 0)
					(void)usher_buf_addf(&tmp, cf, prec, v->f);
				else
					(void)usher_buf_addf(&tmp, cf, v->f);
			}
			break;
		case 's':
		case 'q':
			if (v->k == V_STRING || verb == 's') {
				if (v->k != V_STRING && v->k != V_LABELS && v->k != V_SAMPLE &&
				    v->k != V_SAMPLES && v->k != V_ARGS && v->k != V_DATA) {
					bad_verb(x, &tmp, verb, v);
					break;
				}
				if (verb == 'q')
					go_quote(&tmp, v->s);
				else
					print_val(x, &tmp, v);
				if (prec >= 0 && verb == 's' && tmp.len > (size_t)prec) {
					char *cut = usher_arena_strndup(x->a, usher_buf_str(&tmp),
									(size_t)prec);

					usher_buf_reset(&tmp);
					(void)usher_buf_addstr(&tmp, cut);
				}
			} else if (v->k == V_INT) {
				(void)usher_buf_addc(&tmp, '\'');
				(void)utf8_put(&tmp, (uint32_t)v->i);
				(void)usher_buf_addc(&tmp, '\'');
			} else
				bad_verb(x, &tmp, verb, v);
			break;
		case 't':
			if (v->k == V_BOOL)
				(void)usher_buf_addstr(&tmp, v->b ? "true" : "false");
			else
				bad_verb(x, &tmp, verb, v);
			break;
		case 'T': (void)usher_buf_addstr(&tmp, type_name(v)); break;
		default: bad_verb(x, &tmp, verb, v); break;
		}
		pad(&b, usher_buf_str(&tmp), width, minus,
		    zero && verb != 's' && verb != 'q' && verb != 'v' && verb != 't');
	}
	if (argi < n) {
		size_t i;

		(void)usher_buf_addstr(&b, "%!(EXTRA ");
		for (i = argi; i < n; i++) {
			if (i > argi)
				(void)usher_buf_addstr(&b, ", ");
			(void)usher_buf_addf(&b, "%s=", type_name(&a[i]));
			print_val(x, &b, &a[i]);
		}
		(void)usher_buf_addc(&b, ')');
	}
	*out = mkstr(usher_arena_strndup(x->a, usher_buf_str(&b), b.len));
	usher_buf_free(&b);
	usher_buf_free(&tmp);
	return true;
}
#pragma GCC diagnostic pop

/* Sorted by name; and/or are evaluated lazily by call_fn. */
static const struct fn fns[] = {
    {"and", -1, NULL, 0},
    {"args", -1, f_args, 0},
    {"call", -1, f_call, 0},
    {"eq", -1, f_eq, 0},
    {"externalURL", 0, f_external_url, 0},
    {"first", 1, f_first, 0},
    {"ge", 2, f_ge, 0},
    {"graphLink", 1, f_graph_link, 1},
    {"gt", 2, f_gt, 0},
    {"html", -1, f_html, 0},
    {"humanize", 1, f_humanize, 0},
    {"humanize1024", 1, f_humanize1024, 0},
    {"humanizeDuration", 1, f_humanize_duration, 0},
    {"humanizePercentage", 1, f_humanize_percentage, 0},
    {"humanizeTimestamp", 1, f_humanize_timestamp, 0},
    {"index", -1, f_index, 0},
    {"js", -1, f_js, 0},
    {"label", 2, f_label, 1},
    {"le", 2, f_le, 0},
    {"len", 1, f_len, 0},
    {"lt", 2, f_lt, 0},
    {"match", 2, f_match, 3},
    {"ne", 2, f_ne, 0},
    {"not", 1, f_not, 0},
    {"or", -1, NULL, 0},
    {"parseDuration", 1, f_parse_duration, 1},
    {"pathPrefix", 0, f_path_prefix, 0},
    {"print", -1, f_print, 0},
    {"printf", -1, f_printf, 0},
    {"println", -1, f_println, 0},
    {"query", 1, f_query, 1},
    {"reReplaceAll", 3, f_re_replace_all, 7},
    {"safeHtml", 1, f_safe_html, 1},
    {"slice", -1, f_slice, 0},
    {"sortByLabel", 2, f_sort_by_label, 1},
    {"stripDomain", 1, f_strip_domain, 1},
    {"stripPort", 1, f_strip_port, 1},
    {"strvalue", 1, f_strvalue, 0},
    {"tableLink", 1, f_table_link, 1},
    {"title", 1, f_title, 1},
    {"toLower", 1, f_lower, 1},
    {"toTime", 1, f_to_time, 0},
    {"toUpper", 1, f_upper, 1},
    {"urlquery", -1, f_urlquery, 0},
    {"value", 1, f_value, 0},
};

static const struct fn *find_fn(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
		if (strlen(fns[i].name) == len && strncmp(fns[i].name, name, len) == 0)
			return &fns[i];
	return NULL;
}

#define MAX_ARGS 64

static bool call_fn(struct exec *x, const struct val *dot, const struct node *cmd,
		    const struct fn *f, const struct val *final, struct val *out)
{
	struct val args[MAX_ARGS];
	size_t nargs = 0, i, nwords = cmd->k == N_COMMAND ? cmd->n - 1 : 0;
	const struct node *at = cmd;
	bool ok;

	if (nwords + (final ? 1 : 0) > MAX_ARGS)
		return xerrorf(x, "too many arguments to %s", f->name);
	if (f->impl == NULL) {
		/* and / or: evaluate left to right, stop at the deciding value */
		bool is_and = f->name[0] == 'a';
		size_t total = nwords + (final ? 1 : 0);

		if (total < 1)
			return xerrorf(x, "wrong number of args for %s: want at least 1 got 0",
				       f->name);
		for (i = 0; i < total; i++) {
			if (i < nwords) {
				if (!eval_arg(x, dot, cmd->items[i + 1], out))
					return false;
			} else
				*out = *final;
			if (truth(out) != is_and)
				return true;
		}
		return true;
	}
	for (i = 0; i < nwords; i++) {
		if (!eval_arg(x, dot, cmd->items[i + 1], &args[nargs]))
			return false;
		nargs++;
	}
	if (final)
		args[nargs++] = *final;
	x->at = at;
	if (f->nargs >= 0 && nargs != (size_t)f->nargs)
		return xerrorf(x, "wrong number of args for %s: want %d got %zu", f->name, f->nargs,
			       nargs);
	/* variadic functions that need a first argument */
	if (f->nargs < 0 && nargs < 1 &&
	    (strcmp(f->name, "printf") == 0 || strcmp(f->name, "index") == 0 ||
	     strcmp(f->name, "slice") == 0 || strcmp(f->name, "call") == 0))
		return xerrorf(x, "wrong number of args for %s: want at least 1 got 0", f->name);
	for (i = 0; i < nargs && i < 8; i++)
		if ((f->string_args >> i) & 1 && args[i].k != V_STRING)
			return xerrorf(x, "wrong type for value; expected string; got %s",
				       type_name(&args[i]));
	ok = f->impl(x, args, nargs, out);
	if (ok)
		x->at = at;
	return ok;
}

/* --- notification templates: a JSON dot, Alertmanager's data model --- */

/* Functions Alertmanager has and Prometheus' rule templates do not. */
static bool f_join(struct exec *x, struct val *a, size_t n, struct val *out)
{
	struct usher_buf b;
	size_t i;

	if (a[1].k != V_JSON || !json_is_array(a[1].j))
		return xerrorf(x, "error calling join: wrong type for value; expected []string; got %s",
			       type_name(&a[1]));
	usher_buf_init(&b, 1 << 20);
	for (i = 0; i < json_array_size(a[1].j); i++) {
		const char *e = json_string_value(json_array_get(a[1].j, i));

		if (i)
			(void)usher_buf_addstr(&b, a[0].s);
		(void)usher_buf_addstr(&b, e ? e : "");
	}
	*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
	usher_buf_free(&b);
	(void)n;
	return true;
}

static bool f_trim_space(struct exec *x, struct val *a, size_t n, struct val *out)
{
	const char *s = a[0].s, *e;

	while (*s && isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*out = mkstr(usher_arena_strndup(x->a, s, (size_t)(e - s)));
	(void)n;
	return true;
}

static bool f_string_slice(struct exec *x, struct val *a, size_t n, struct val *out)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < n; i++) {
		if (a[i].k != V_STRING) {
			json_decref(arr);
			return xerrorf(x, "error calling stringSlice: wrong type for value; expected "
					  "string; got %s",
				       type_name(&a[i]));
		}
		json_array_append_new(arr, json_string(a[i].s));
	}
	json_array_append_new(x->keep, arr);
	memset(out, 0, sizeof(*out));
	out->k = V_JSON;
	out->j = arr;
	out->i = JS_LIST;
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool f_url_unescape(struct exec *x, struct val *a, size_t n, struct val *out)
{
	const char *s = a[0].s;
	char *r = usher_arena_alloc(x->a, strlen(s) + 1);
	size_t o = 0;

	for (; *s; s++) {
		if (*s == '%') {
			int h = s[1] ? hexval(s[1]) : -1, l = h >= 0 && s[2] ? hexval(s[2]) : -1;

			if (h < 0 || l < 0)
				return xerrorf(x, "error calling urlUnescape: invalid URL escape %.3s", s);
			r[o++] = (char)(h * 16 + l);
			s += 2;
		} else
			r[o++] = *s == '+' ? ' ' : *s;
	}
	r[o] = '\0';
	*out = mkstr(r);
	(void)n;
	return true;
}

/* RFC 3339 ("2026-01-01T10:00:00.5Z", "…+02:00") to UTC seconds and
 * nanoseconds. */
static bool parse_rfc3339(const char *s, int64_t *sec, int *nsec)
{
	int v[6], i, k = 0, ns = 0, digits = 0, off = 0;
	static const int len[6] = {4, 2, 2, 2, 2, 2};
	static const char sep[6] = {'-', '-', 'T', ':', ':', 0};
	int64_t y, m, days;
	const char *p = s;

	for (i = 0; i < 6; i++) {
		v[i] = 0;
		for (k = 0; k < len[i]; k++, p++) {
			if (*p < '0' || *p > '9')
				return false;
			v[i] = v[i] * 10 + (*p - '0');
		}
		if (sep[i] && *p++ != sep[i] && !(i == 2 && (p[-1] == 't' || p[-1] == ' ')))
			return false;
	}
	if (*p == '.' || *p == ',') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (digits < 9) {
				ns = ns * 10 + (*p - '0');
				digits++;
			}
		for (; digits < 9; digits++)
			ns *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && p[1] && p[2] && p[3] == ':' && p[4] && p[5]) {
		int sign = *p == '-' ? -1 : 1;

		off = sign * (((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
			      ((p[4] - '0') * 10 + (p[5] - '0')) * 60);
		p += 6;
	} else
		return false;
	if (*p || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 ||
	    v[5] > 60)
		return false;
	/* days from civil (Howard Hinnant's algorithm) */
	y = v[0] - (v[1] <= 2);
	m = v[1];
	{
		int64_t era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
		int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + v[2] - 1;
		int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

		days = era * 146097 + doe - 719468;
	}
	*sec = days * 86400 + v[3] * 3600 + v[4] * 60 + v[5] - off;
	*nsec = ns;
	return true;
}

/* Go's Time.Format in UTC: the layout's reference-time tokens (2006 01 02
 * 15 04 05, Jan January Mon Monday, 1 2 _2 3 4 5 06 PM pm MST, -0700
 * -07:00 Z07:00 Z0700, .000 .999 and their lengths) replaced, the rest
 * copied. */
static void go_format(struct usher_buf *b, const char *layout, int64_t sec, int nsec)
{
	static const char *const months[] = {"January", "February", "March",     "April",
					     "May",     "June",     "July",      "August",
					     "September", "October", "November", "December"};
	static const char *const wdays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
					    "Thursday", "Friday", "Saturday"};
	int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400), y;
	int64_t rem = sec - days * 86400;
	int mo, d, h = (int)(rem / 3600), mi = (int)(rem % 3600 / 60), s = (int)(rem % 60);
	int wd = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
	const char *p = layout;

	civil(days, &y, &mo, &d);
#define TOK(t) (strncmp(p, t, sizeof(t) - 1) == 0 && (p += sizeof(t) - 1))
	while (*p) {
		if (TOK("January"))
			(void)usher_buf_addstr(b, months[mo - 1]);
		else if (TOK("Jan"))
			(void)usher_buf_addf(b, "%.3s", months[mo - 1]);
		else if (TOK("Monday"))
			(void)usher_buf_addstr(b, wdays[wd]);
		else if (TOK("Mon"))
			(void)usher_buf_addf(b, "%.3s", wdays[wd]);
		else if (TOK("MST"))
			(void)usher_buf_addstr(b, "UTC");
		else if (TOK("2006"))
			(void)usher_buf_addf(b, "%04" PRId64, y);
		else if (TOK("Z07:00:00") || TOK("Z070000"))
			(void)usher_buf_addc(b, 'Z');
		else if (TOK("-07:00:00"))
			(void)usher_buf_addstr(b, "+00:00:00");
		else if (TOK("-070000"))
			(void)usher_buf_addstr(b, "+000000");
		else if (TOK("-07:00"))
			(void)usher_buf_addstr(b, "+00:00");
		else if (TOK("-0700"))
			(void)usher_buf_addstr(b, "+0000");
		else if (TOK("-07"))
			(void)usher_buf_addstr(b, "+00");
		else if (TOK("Z07:00") || TOK("Z0700") || TOK("Z07"))
			(void)usher_buf_addc(b, 'Z');
		else if (TOK("01"))
			(void)usher_buf_addf(b, "%02d", mo);
		else if (TOK("02"))
			(void)usher_buf_addf(b, "%02d", d);
		else if (TOK("_2"))
			(void)usher_buf_addf(b, "%2d", d);
		else if (TOK("06"))
			(void)usher_buf_addf(b, "%02d", (int)(y % 100));
		else if (TOK("15"))
			(void)usher_buf_addf(b, "%02d", h);
		else if (TOK("03"))
			(void)usher_buf_addf(b, "%02d", h % 12 ? h % 12 : 12);
		else if (TOK("04"))
			(void)usher_buf_addf(b, "%02d", mi);
		else if (TOK("05"))
			(void)usher_buf_addf(b, "%02d", s);
		else if (TOK("PM"))
			(void)usher_buf_addstr(b, h >= 12 ? "PM" : "AM");
		else if (TOK("pm"))
			(void)usher_buf_addstr(b, h >= 12 ? "pm" : "am");
		else if ((p[0] == '.' || p[0] == ',') && (p[1] == '0' || p[1] == '9')) {
			char digit = p[1], frac[16];
			int nd = 0, keep;

			while (p[1 + nd] == digit && nd < 9)
				nd++;
			if (p[1 + nd] >= '0' && p[1 + nd] <= '9') { /* not a fraction */
				(void)usher_buf_addc(b, *p++);
				continue;
			}
			snprintf(frac, sizeof(frac), "%09d", nsec);
			frac[nd] = '\0';
			keep = nd;
			if (digit == '9')
				while (keep > 0 && frac[keep - 1] == '0')
					keep--;
			if (keep > 0)
				(void)usher_buf_addf(b, "%c%.*s", p[0], keep, frac);
			p += 1 + nd;
		} else if (TOK("1"))
			(void)usher_buf_addf(b, "%d", mo);
		else if (TOK("2"))
			(void)usher_buf_addf(b, "%d", d);
		else if (TOK("3"))
			(void)usher_buf_addf(b, "%d", h % 12 ? h % 12 : 12);
		else if (TOK("4"))
			(void)usher_buf_addf(b, "%d", mi);
		else if (TOK("5"))
			(void)usher_buf_addf(b, "%d", s);
		else
			(void)usher_buf_addc(b, *p++);
	}
#undef TOK
}

/* date LAYOUT TIME (Alertmanager's), TIME an RFC 3339 string. */
static bool time_format(struct exec *x, const char *fn, const char *layout, const char *t,
			struct val *out)
{
	int64_t sec;
	int nsec;
	struct usher_buf b;

	if (!parse_rfc3339(t, &sec, &nsec))
		return xerrorf(x, "error calling %s: %s is not an RFC 3339 time", fn, t);
	usher_buf_init(&b, 4096);
	go_format(&b, layout, sec, nsec);
	*out = mkstr(usher_arena_strdup(x->a, usher_buf_str(&b)));
	usher_buf_free(&b);
	return true;
}

static bool f_date(struct exec *x, struct val *a, size_t n, struct val *out)
{
	(void)n;
	return time_format(x, "date", a[0].s, a[1].s, out);
}

static const struct fn am_fns[] = {
    {"date", 2, f_date, 3},
    {"join", 2, f_join, 1},
    {"safeUrl", 1, f_safe_html, 1},
    {"stringSlice", -1, f_string_slice, 0},
    {"trimSpace", 1, f_trim_space, 1},
    {"urlUnescape", 1, f_url_unescape, 1},
};

/* Prometheus' functions that make no sense without a query engine or a
 * single alert, so a notification template refuses them as Alertmanager
 * does. */
static const char *const prom_only[] = {
    "args",      "externalURL", "first",         "graphLink",  "humanize",
    "humanize1024", "humanizePercentage", "humanizeTimestamp", "label", "parseDuration",
    "pathPrefix", "query",      "sortByLabel",   "stripDomain", "stripPort",
    "strvalue",  "tableLink",   "toTime",        "value",
};

static const struct fn *find_fn_in(const struct usher_template *t, const char *name, size_t len)
{
	size_t i;

	if (!t->json)
		return find_fn(name, len);
	for (i = 0; i < sizeof(am_fns) / sizeof(am_fns[0]); i++)
		if (strlen(am_fns[i].name) == len && strncmp(am_fns[i].name, name, len) == 0)
			return &am_fns[i];
	for (i = 0; i < sizeof(prom_only) / sizeof(prom_only[0]); i++)
		if (strlen(prom_only[i]) == len && strncmp(prom_only[i], name, len) == 0)
			return NULL;
	return find_fn(name, len);
}

/* A JSON value as a template value; objects and arrays keep their shape. */
static struct val json_val(const json_t *j, enum jshape shape)
{
	struct val v;

	memset(&v, 0, sizeof(v));
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		v.k = V_JSON;
		v.j = j;
		v.i = shape == JS_MAP ? JS_MAP : JS_STRUCT;
		break;
	case JSON_ARRAY:
		v.k = V_JSON;
		v.j = j;
		v.i = shape == JS_ALERTS ? JS_ALERTS : JS_LIST;
		break;
	case JSON_STRING: v = mkstr(json_string_value(j)); break;
	case JSON_INTEGER:
		v.k = V_INT;
		v.i = (int64_t)json_integer_value(j);
		break;
	case JSON_REAL: v = mkfloat(json_real_value(j)); break;
	case JSON_TRUE: v = mkbool(true); break;
	case JSON_FALSE: v = mkbool(false); break;
	case JSON_NULL: v.k = V_NIL; break;
	}
	return v;
}

/* The shape of an array element or struct field. */
static enum jshape elem_shape(const json_t *j, const char *key)
{
	if (json_is_object(j))
		return key && (strcmp(key, "labels") == 0 || strcmp(key, "annotations") == 0 ||
			       strstr(key, "Labels") || strstr(key, "Annotations"))
			   ? JS_MAP
			   : (key ? JS_MAP : JS_STRUCT);
	if (json_is_array(j))
		return key && strcmp(key, "alerts") == 0 ? JS_ALERTS : JS_LIST;
	return JS_MAP;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of obj, sorted (Go's map order); the array is malloc'd. */
static const char **sorted_keys(const json_t *obj, size_t *n)
{
	const char **k = usher_calloc(json_object_size(obj) + 1, sizeof(*k));
	const char *key;
	json_t *val;

	*n = 0;
	json_object_foreach((json_t *)obj, key, val)
	{
		(void)val;
		k[(*n)++] = key;
	}
	qsort(k, *n, sizeof(*k), cmp_cstr);
	return k;
}

static const json_t *keep(struct exec *x, json_t *j)
{
	json_array_append_new(x->keep, j);
	return j;
}

static const json_t *json_sorted_pairs(struct exec *x, const json_t *obj)
{
	size_t n, i;
	const char **k = sorted_keys(obj, &n);
	json_t *arr = json_array();

	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("[sO]", k[i], json_object_get(obj, k[i])));
	free(k);
	return keep(x, arr);
}

static void json_range_item(struct exec *x, const struct val *v, size_t i, struct val *key,
			    struct val *elem)
{
	const json_t *e = json_array_get(v->j, i);

	(void)x;
	if (v->i == JS_MAP) { /* a map turned into [key, value] pairs */
		*key = mkstr(json_string_value(json_array_get(e, 0)));
		*elem = json_val(json_array_get(e, 1), JS_MAP);
		return;
	}
	memset(key, 0, sizeof(*key));
	key->k = V_INT;
	key->i = (int64_t)i;
	*elem = json_val(e, json_is_object(e) ? JS_STRUCT : JS_LIST);
}

/* The Name (or Value) of every pair of a SortedPairs list. */
static const json_t *pairs_column(struct exec *x, const json_t *pairs, const char *col)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < json_array_size(pairs); i++) {
		json_t *s = json_object_get(json_array_get(pairs, i), col);

		json_array_append_new(arr, json_string(json_string_value(s) ? json_string_value(s) : ""));
	}
	return keep(x, arr);
}

static bool json_field(struct exec *x, const struct val *v, const char *name, struct val *out)
{
	const json_t *j = v->j, *f;
	size_t i, n;

	memset(out, 0, sizeof(*out));
	out->k = V_JSON;
	if (json_is_array(j)) {
		if (strcmp(name, "Firing") == 0 || strcmp(name, "Resolved") == 0) {
			json_t *arr = json_array();
			const char *want = name[0] == 'F' ? "firing" : "resolved";

			for (i = 0; i < json_array_size(j); i++) {
				const char *st = json_string_value(
				    json_object_get(json_array_get(j, i), "status"));

				if (st && strcmp(st, want) == 0)
					json_array_append(arr, json_array_get(j, i));
			}
			out->j = keep(x, arr);
			out->i = JS_ALERTS;
			return true;
		}
		if (strcmp(name, "Names") == 0 || strcmp(name, "Values") == 0) {
			out->j = pairs_column(x, j, name[0] == 'N' ? "Name" : "Value");
			out->i = JS_LIST;
			return true;
		}
		return xerrorf(x, "can't evaluate field %s in type %s", name, type_name(v));
	}
	if (v->i == JS_MAP) {
		if (strcmp(name, "SortedPairs") == 0) {
			const char **k = sorted_keys(j, &n);
			json_t *arr = json_array();

			for (i = 0; i < n; i++)
				json_array_append_new(arr, json_pack("{sssO}", "Name", k[i], "Value",
								     json_object_get(j, k[i])));
			free(k);
			out->j = keep(x, arr);
			out->i = JS_LIST;
			return true;
		}
		if (strcmp(name, "Names") == 0 || strcmp(name, "Values") == 0) {
			const char **k = sorted_keys(j, &n);
			json_t *arr = json_array();

			for (i = 0; i < n; i++)
				json_array_append(arr, name[0] == 'N' ? json_string(k[i])
								      : json_object_get(j, k[i]));
			/* json_string above is a new reference: balance it */
			if (name[0] == 'N')
				for (i = 0; i < n; i++)
					json_decref(json_array_get(arr, i));
			free(k);
			out->j = keep(x, arr);
			out->i = JS_LIST;
			return true;
		}
		if (strcmp(name, "Remove") == 0)
			return xerrorf(x, "wrong number of args for Remove: want 1 got 0");
		f = json_object_get(j, name);
		/* missingkey=zero, as Alertmanager sets it */
		*out = f ? json_val(f, JS_MAP) : mkstr("");
		return true;
	}
	/* a struct: Go's field name, or the JSON key it is sent as */
	f = json_object_get(j, name);
	if (!f && name[0] >= 'A' && name[0] <= 'Z') {
		char low[128];

		snprintf(low, sizeof(low), "%s", name);
		low[0] = (char)tolower((unsigned char)low[0]);
		f = json_object_get(j, low);
		if (f) {
			*out = json_val(f, elem_shape(f, low));
			return true;
		}
	}
	if (f) {
		*out = json_val(f, elem_shape(f, name));
		return true;
	}
	{
		static const char *const known[] = {
		    "Receiver", "Status",   "Alerts",      "GroupLabels", "CommonLabels",
		    "CommonAnnotations", "ExternalURL", "Labels", "Annotations", "StartsAt",
		    "EndsAt",   "GeneratorURL", "Fingerprint", "GroupKey",  "TruncatedAlerts",
		    "Name",     "Value",
		};

		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(known[i], name) == 0) {
				*out = mkstr("");
				return true;
			}
	}
	return xerrorf(x, "can't evaluate field %s in type %s", name, type_name(v));
}

/* `.CommonLabels.Remove .GroupLabels.Names`: the one method of the data
 * model that takes an argument. */
static bool json_method_call(struct exec *x, const struct val *dot, const struct node *cmd,
			     const struct val *final, struct val *out)
{
	const struct node *first = cmd->items[0];
	const char *method = first->ident[first->nident - 1];
	struct val recv, arg;
	size_t i, start = first->k == N_VARIABLE ? 1 : 0;
	json_t *copy;

	if (first->k == N_VARIABLE) {
		if (!var_get(x, first->ident[0], &recv))
			return false;
	} else if (first->k == N_CHAIN) {
		if (!eval_arg(x, dot, first->base, &recv))
			return false;
	} else
		recv = *dot;
	for (i = start; i + 1 < first->nident; i++) {
		struct val r;

		if (!field(x, &recv, first->ident[i], &r))
			return false;
		recv = r;
	}
	/* .StartsAt.Format "2006-01-02": times are RFC 3339 strings here */
	if (strcmp(method, "Format") == 0 && recv.k == V_STRING) {
		if (cmd->n + (final ? 1 : 0) != 2)
			return xerrorf(x, "wrong number of args for Format: want 1 got %zu",
				       cmd->n - 1 + (final ? 1 : 0));
		if (final)
			arg = *final;
		else if (!eval_arg(x, dot, cmd->items[1], &arg))
			return false;
		if (arg.k != V_STRING)
			return xerrorf(x, "wrong type for value; expected string; got %s",
				       type_name(&arg));
		return time_format(x, "Format", arg.s, recv.s, out);
	}
	if (strcmp(method, "Remove") != 0 || recv.k != V_JSON || recv.i != JS_MAP)
		return xerrorf(x, "%s is not a method but has arguments", method);
	if (cmd->n + (final ? 1 : 0) != 2)
		return xerrorf(x, "wrong number of args for Remove: want 1 got %zu",
			       cmd->n - 1 + (final ? 1 : 0));
	if (final)
		arg = *final;
	else if (!eval_arg(x, dot, cmd->items[1], &arg))
		return false;
	if (arg.k != V_JSON || !json_is_array(arg.j))
		return xerrorf(x, "wrong type for value; expected []string; got %s", type_name(&arg));
	copy = json_deep_copy(recv.j);
	for (i = 0; i < json_array_size(arg.j); i++) {
		const char *k = json_string_value(json_array_get(arg.j, i));

		if (k)
			json_object_del(copy, k);
	}
	memset(out, 0, sizeof(*out));
	out->k = V_JSON;
	out->j = keep(x, copy);
	out->i = JS_MAP;
	return true;
}

static bool json_index(struct exec *x, const struct val *cur, const struct val *k,
		       struct val *out)
{
	if (json_is_object(cur->j)) {
		const json_t *f;

		if (k->k != V_STRING)
			return xerrorf(x, "error calling index: value has type %s; should be string",
				       type_name(k));
		f = json_object_get(cur->j, k->s);
		*out = f ? json_val(f, elem_shape(f, cur->i == JS_MAP ? NULL : k->s)) : mkstr("");
		if (f && cur->i == JS_MAP)
			*out = json_val(f, JS_MAP);
		return true;
	}
	if (k->k != V_INT)
		return xerrorf(x, "error calling index: cannot index slice/array with type %s",
			       type_name(k));
	if (k->i < 0 || (size_t)k->i >= json_array_size(cur->j))
		return xerrorf(x, "error calling index: index out of range: %" PRId64, k->i);
	{
		const json_t *e = json_array_get(cur->j, (size_t)k->i);

		*out = json_val(e, json_is_object(e) ? JS_STRUCT : JS_LIST);
	}
	return true;
}

/* fmt's %v, near enough: maps as map[k:v …] in key order, lists as [a b]. */
static void print_json(struct exec *x, struct usher_buf *b, const json_t *j, int shape)
{
	size_t i, n;

	if (json_is_object(j)) {
		const char **k = sorted_keys(j, &n);

		(void)usher_buf_addstr(b, shape == JS_MAP ? "map[" : "{");
		for (i = 0; i < n; i++) {
			struct val e = json_val(json_object_get(j, k[i]), JS_MAP);

			if (i)
				(void)usher_buf_addc(b, ' ');
			if (shape == JS_MAP)
				(void)usher_buf_addf(b, "%s:", k[i]);
			print_val(x, b, &e);
		}
		(void)usher_buf_addc(b, shape == JS_MAP ? ']' : '}');
		free(k);
		return;
	}
	(void)usher_buf_addc(b, '[');
	for (i = 0; i < json_array_size(j); i++) {
		const json_t *e = json_array_get(j, i);
		struct val ev = json_val(e, json_is_object(e) ? JS_STRUCT : JS_LIST);

		if (i)
			(void)usher_buf_addc(b, ' ');
		print_val(x, b, &ev);
	}
	(void)usher_buf_addc(b, ']');
}

enum usher_err usher_template_expand_json(const struct usher_template *t, const char *define,
					  const json_t *dot_json, struct usher_buf *out,
					  struct usher_error *err)
{
	struct exec x;
	struct val dot;
	const struct node *root = t->root;
	bool ok;

	if (!t->json || !json_is_object(dot_json))
		return usher_fail(err, USHER_ERR_INVALID,
				  "template %s: not a notification template or data not an object",
				  t->name);
	memset(&x, 0, sizeof(x));
	x.t = t;
	x.out = out;
	x.a = usher_arena_new();
	x.err = err;
	x.cur_name = t->name;
	x.keep = json_array();
	x.root_t = t;
	if (define) {
		const struct usher_template *in = t;
		size_t i;

		for (;;) {
			for (i = 0; i < in->ndefs; i++)
				if (strcmp(in->defs[i].name, define) == 0)
					break;
			if (i < in->ndefs || !in->lib)
				break;
			in = in->lib;
		}
		if (i == in->ndefs) {
			free(x.vars);
			usher_arena_free(x.a);
			json_decref(x.keep);
			return usher_fail(err, USHER_ERR_NOTFOUND,
					  "template: no template \"%s\" associated with template "
					  "\"%s\"",
					  define, t->name);
		}
		x.t = in;
		x.cur_name = in->defs[i].name;
		root = in->defs[i].list;
	}
	dot = json_val(dot_json, JS_STRUCT);
	var_push(&x, "$", &dot);
	ok = walk_list(&x, &dot, root);
	free(x.vars);
	usher_arena_free(x.a);
	json_decref(x.keep);
	if (x.toobig)
		return usher_fail(err, USHER_ERR_TOOBIG, "template %s: output larger than %zu bytes",
				  t->name, out->max);
	return ok ? USHER_OK : USHER_ERR_INVALID;
}

bool usher_template_has_define(const struct usher_template *t, const char *name)
{
	size_t i;

	for (; t; t = t->lib)
		for (i = 0; i < t->ndefs; i++)
			if (strcmp(t->defs[i].name, name) == 0)
				return true;
	return false;
}
