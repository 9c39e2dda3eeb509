/* The PromQL lexer: turns query text into tokens with byte positions.
 * Internal to lib/promql (the parser is its only user). */
#ifndef USHER_PROMQL_LEXER_H
#define USHER_PROMQL_LEXER_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

enum pq_tok {
	T_EOF,
	T_ERROR,    /* text holds the message */
	T_IDENT,    /* metric or label name, function, aggregator (may hold ':') */
	T_NUMBER,   /* num */
	T_DURATION, /* ms */
	T_STRING,   /* text holds the unquoted value */
	T_LPAREN,
	T_RPAREN,
	T_LBRACE,
	T_RBRACE,
	T_LBRACKET,
	T_RBRACKET,
	T_COMMA,
	T_COLON,
	T_AT,
	T_ASSIGN,    /* = */
	T_EQLC,      /* == */
	T_NEQ,       /* != */
	T_EQL_REGEX, /* =~ */
	T_NEQ_REGEX, /* !~ */
	T_ADD,
	T_SUB,
	T_MUL,
	T_DIV,
	T_MOD,
	T_POW,
	T_GTR,
	T_LSS,
	T_GTE,
	T_LTE,
	/* keywords (case-insensitive) */
	T_AND,
	T_OR,
	T_UNLESS,
	T_ATAN2,
	T_BY,
	T_WITHOUT,
	T_ON,
	T_IGNORING,
	T_GROUP_LEFT,
	T_GROUP_RIGHT,
	T_BOOL,
	T_OFFSET,
};

struct pq_token {
	enum pq_tok type;
	size_t pos, end;  /* byte span */
	const char *text; /* identifier, keyword as written, string value, or error */
	double num;
	int64_t ms;
};

struct pq_lexer {
	const char *s;
	size_t len, pos;
	struct usher_arena *a;
	int brackets; /* inside [...] a ':' is the subquery colon */
};

void pq_lexer_init(struct pq_lexer *lx, const char *s, struct usher_arena *a);
/* The next token; T_EOF forever at the end, T_ERROR on bad input. */
void pq_lexer_next(struct pq_lexer *lx, struct pq_token *t);
/* How a token is named in "unexpected …" errors, Prometheus-style. */
const char *pq_token_desc(struct usher_arena *a, const struct pq_token *t);

#endif
