/* The PromQL parser: recursive descent with precedence climbing
 * (or < and/unless < comparisons < +,- < *,/,%,atan2 < ^, the last
 * right-associative; unary minus binds looser than ^), and the type checks
 * Prometheus' parser makes, worded as it words them. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "promql/ast.h"
#include "promql/lexer.h"
#include "promql/value.h"

/* Deep nesting is refused before it can exhaust the stack. */
#define MAX_DEPTH 256

struct parser {
	struct pq_lexer lx;
	struct pq_token tok;
	struct usher_promql_expr *e;
	struct usher_error *err;
	enum usher_err rc;
	int depth;
};

const char *usher_promql_type_name(enum usher_promql_type t)
{
	switch (t) {
	case USHER_PQ_TYPE_NONE: return "none";
	case USHER_PQ_TYPE_SCALAR: return "scalar";
	case USHER_PQ_TYPE_VECTOR: return "instant vector";
	case USHER_PQ_TYPE_MATRIX: return "range vector";
	case USHER_PQ_TYPE_STRING: return "string";
	}
	return "?";
}

const char *usher_promql_op_str(enum usher_promql_op op)
{
	static const char *const names[] = {
	    [USHER_PQ_ADD] = "+",         [USHER_PQ_SUB] = "-",   [USHER_PQ_MUL] = "*",
	    [USHER_PQ_DIV] = "/",         [USHER_PQ_MOD] = "%",   [USHER_PQ_POW] = "^",
	    [USHER_PQ_ATAN2] = "atan2",   [USHER_PQ_EQL] = "==",  [USHER_PQ_NEQ] = "!=",
	    [USHER_PQ_GTR] = ">",         [USHER_PQ_LSS] = "<",   [USHER_PQ_GTE] = ">=",
	    [USHER_PQ_LTE] = "<=",        [USHER_PQ_AND] = "and", [USHER_PQ_OR] = "or",
	    [USHER_PQ_UNLESS] = "unless",
	};

	return names[op];
}

bool usher_promql_op_is_comparison(enum usher_promql_op op)
{
	return op >= USHER_PQ_EQL && op <= USHER_PQ_LTE;
}

bool usher_promql_op_is_set(enum usher_promql_op op)
{
	return op >= USHER_PQ_AND;
}

static void perr(struct parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(struct parser *p, size_t pos, const char *fmt, ...)
{
	char msg[USHER_ERRMSG_MAX];
	const char *q = p->e->query;
	size_t i, line = 1, last = (size_t)-1;
	va_list ap;

	if (p->rc)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (i = 0; i < pos && q[i]; i++)
		if (q[i] == '\n') {
			line++;
			last = i;
		}
	p->rc = usher_fail(p->err, USHER_ERR_INVALID, "%zu:%zu: parse error: %s", line, pos - last,
			   msg);
}

static void advance(struct parser *p)
{
	pq_lexer_next(&p->lx, &p->tok);
	if (p->tok.type == T_ERROR)
		perr(p, p->tok.pos, "%s", p->tok.text);
}

/* The token after the current one, without consuming anything. */
static void peek(struct parser *p, struct pq_token *t)
{
	struct pq_lexer save = p->lx;

	pq_lexer_next(&p->lx, t);
	p->lx = save;
}

static void unexpected(struct parser *p, const char *context, const char *expected)
{
	struct usher_arena *a = p->e->arena;
	const char *desc = pq_token_desc(a, &p->tok);

	if (p->tok.type == T_ERROR)
		return;
	if (context && expected)
		perr(p, p->tok.pos, "unexpected %s in %s, expected %s", desc, context, expected);
	else if (context)
		perr(p, p->tok.pos, "unexpected %s in %s", desc, context);
	else if (expected)
		perr(p, p->tok.pos, "unexpected %s, expected %s", desc, expected);
	else
		perr(p, p->tok.pos, "unexpected %s", desc);
}

static struct usher_promql_node *new_node(struct parser *p, enum usher_promql_kind kind, size_t pos)
{
	struct usher_promql_node *n = usher_arena_zalloc(p->e->arena, sizeof(*n));

	n->kind = kind;
	n->id = p->e->nnodes++;
	n->pos = pos;
	n->end = pos;
	return n;
}

static const struct {
	const char *name;
	enum usher_promql_agg op;
	bool param;
} aggregators[] = {
    {"sum", USHER_PQ_SUM, false},          {"avg", USHER_PQ_AVG, false},
    {"min", USHER_PQ_MIN, false},          {"max", USHER_PQ_MAX, false},
    {"count", USHER_PQ_COUNT, false},      {"group", USHER_PQ_GROUP, false},
    {"stddev", USHER_PQ_STDDEV, false},    {"stdvar", USHER_PQ_STDVAR, false},
    {"topk", USHER_PQ_TOPK, true},         {"bottomk", USHER_PQ_BOTTOMK, true},
    {"quantile", USHER_PQ_QUANTILE, true}, {"count_values", USHER_PQ_COUNT_VALUES, true},
};

static int find_aggregator(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(aggregators) / sizeof(aggregators[0]); i++)
		if (strcasecmp(aggregators[i].name, name) == 0)
			return (int)i;
	return -1;
}

static struct usher_promql_node *parse_expr(struct parser *p, int minprec);

/* The text of a token usable as a label name (identifiers, keywords). */
static const char *label_text(const struct pq_token *t)
{
	if (!t->text)
		return NULL;
	switch (t->type) {
	case T_IDENT:
	case T_NUMBER: /* "inf", "nan" */
	case T_AND:
	case T_OR:
	case T_UNLESS:
	case T_ATAN2:
	case T_BY:
	case T_WITHOUT:
	case T_ON:
	case T_IGNORING:
	case T_GROUP_LEFT:
	case T_GROUP_RIGHT:
	case T_BOOL:
	case T_OFFSET: return t->text;
	default: return NULL;
	}
}

/* ( label, label, … ) with an optional trailing comma. */
static void parse_label_list(struct parser *p, const char *context, const char ***out, size_t *n)
{
	const char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (p->tok.type != T_LPAREN) {
		unexpected(p, context, "\"(\"");
		return;
	}
	advance(p);
	while (!p->rc && p->tok.type != T_RPAREN) {
		const char *name = label_text(&p->tok);

		if (!name || !usher_label_name_ok(name)) {
			if (name)
				perr(p, p->tok.pos, "invalid label name for grouping: \"%s\"",
				     name);
			else
				unexpected(p, context, "label");
			return;
		}
		if (*n == cap) {
			const char **nv;

			cap = cap ? cap * 2 : 4;
			nv = usher_arena_alloc(p->e->arena, cap * sizeof(*nv));
			if (*n)
				memcpy(nv, v, *n * sizeof(*nv));
			v = nv;
		}
		v[(*n)++] = name;
		advance(p);
		if (p->tok.type == T_COMMA)
			advance(p);
		else if (p->tok.type != T_RPAREN) {
			unexpected(p, context, "\",\" or \")\"");
			return;
		}
	}
	if (!p->rc)
		advance(p);
	*out = v;
}

static void track_regex(struct parser *p, struct usher_matcher *m)
{
	struct usher_promql_expr *e = p->e;

	if (!m->re)
		return;
	if (e->nregexes == e->capregexes) {
		e->capregexes = e->capregexes ? e->capregexes * 2 : 4;
		e->regexes = usher_realloc(e->regexes, e->capregexes * sizeof(*e->regexes));
	}
	e->regexes[e->nregexes++] = m;
}

/* name{matchers} or {matchers}; the current token is '{' or past the name. */
static struct usher_promql_node *parse_selector(struct parser *p, const char *name, size_t pos)
{
	struct usher_promql_node *n = new_node(p, USHER_PQ_VECTOR_SELECTOR, pos);
	struct usher_matcher *m = NULL;
	size_t nm = 0, cap = 0, i;
	bool nonempty = false;

	n->type = USHER_PQ_TYPE_VECTOR;
	n->vs.name = name;
	if (name) {
		cap = 4;
		m = usher_arena_alloc(p->e->arena, cap * sizeof(*m));
		usher_matcher_init(&m[nm++], USHER_MATCH_EQ, USHER_METRIC_NAME_LABEL, name, NULL);
	}
	n->end = p->tok.pos;
	if (p->tok.type == T_LBRACE) {
		advance(p);
		while (!p->rc && p->tok.type != T_RBRACE) {
			const char *lname = label_text(&p->tok), *value;
			size_t mpos = p->tok.pos;
			enum usher_match_type type;
			struct usher_error rerr;
			bool quoted_name = false;

			if (p->tok.type == T_STRING) {
				struct pq_token nx;

				peek(p, &nx);
				lname = p->tok.text;
				if (nx.type == T_COMMA || nx.type == T_RBRACE) {
					/* {"metric name"} (Prometheus 3) */
					if (name || n->vs.name) {
						perr(p, mpos,
						     "metric name must not be set twice: \"%s\" or "
						     "\"%s\"",
						     name ? name : n->vs.name, lname);
						goto fail;
					}
					n->vs.name = lname;
					quoted_name = true;
				}
			} else if (!lname || strchr(lname, ':')) {
				unexpected(p, "label matching", "identifier or \"}\"");
				goto fail;
			}
			advance(p);
			if (quoted_name) {
				type = USHER_MATCH_EQ;
				value = lname;
				lname = USHER_METRIC_NAME_LABEL;
			} else {
				switch (p->tok.type) {
				case T_ASSIGN: type = USHER_MATCH_EQ; break;
				case T_NEQ: type = USHER_MATCH_NEQ; break;
				case T_EQL_REGEX: type = USHER_MATCH_RE; break;
				case T_NEQ_REGEX: type = USHER_MATCH_NRE; break;
				default:
					unexpected(p, "label matching", "label matching operator");
					goto fail;
				}
				advance(p);
				if (p->tok.type != T_STRING) {
					unexpected(p, "label matching", "string");
					goto fail;
				}
				value = p->tok.text;
				if (name && strcmp(lname, USHER_METRIC_NAME_LABEL) == 0) {
					perr(p, mpos,
					     "metric name must not be set twice: \"%s\" or \"%s\"",
					     name, value);
					goto fail;
				}
			}
			if (nm == cap) {
				struct usher_matcher *nv;

				cap = cap ? cap * 2 : 4;
				nv = usher_arena_alloc(p->e->arena, cap * sizeof(*nv));
				if (nm)
					memcpy(nv, m, nm * sizeof(*nv));
				m = nv;
			}
			usher_error_clear(&rerr);
			if (usher_matcher_init(&m[nm], type, lname, value, &rerr)) {
				perr(p, mpos, "%s", rerr.msg);
				goto fail;
			}
			nm++;
			if (!quoted_name)
				advance(p);
			if (p->tok.type == T_COMMA)
				advance(p);
			else if (p->tok.type != T_RBRACE) {
				unexpected(p, "label matching", "\",\" or \"}\"");
				goto fail;
			}
		}
		if (p->rc)
			goto fail;
		n->end = p->tok.end;
		advance(p);
	}
	n->vs.matchers = m;
	n->vs.nmatchers = nm;
	/* regexes are tracked only now that the array will not move again */
	for (i = 0; i < nm; i++) {
		track_regex(p, &m[i]);
		if (!m[i].matches_empty)
			nonempty = true;
	}
	if (!nonempty && !p->rc)
		perr(p, pos, "vector selector must contain at least one non-empty matcher");
	return n;
fail:
	for (i = 0; i < nm; i++)
		usher_matcher_fini(&m[i]);
	return n;
}

/* A duration, or a number of seconds (Prometheus 3 accepts both). */
static bool parse_duration_or_number(struct parser *p, int64_t *ms, const char *context)
{
	if (p->tok.type == T_DURATION) {
		*ms = p->tok.ms;
	} else if (p->tok.type == T_NUMBER && isfinite(p->tok.num) &&
		   fabs(p->tok.num) * 1000 <= (double)USHER_PQ_MAX_DURATION_MS) {
		*ms = (int64_t)llround(p->tok.num * 1000);
	} else {
		unexpected(p, context, "duration");
		return false;
	}
	advance(p);
	return true;
}

static struct usher_promql_timing *timing_of(struct usher_promql_node *n)
{
	switch (n->kind) {
	case USHER_PQ_VECTOR_SELECTOR: return &n->vs.timing;
	case USHER_PQ_MATRIX_SELECTOR: return &n->ms.vs->vs.timing;
	case USHER_PQ_SUBQUERY: return &n->sq.timing;
	default: return NULL;
	}
}

static struct usher_promql_node *parse_postfix(struct parser *p, struct usher_promql_node *n)
{
	while (!p->rc) {
		struct usher_promql_timing *tm;
		size_t pos = p->tok.pos;

		if (p->tok.type == T_LBRACKET) {
			int64_t range, step = 0;

			advance(p);
			if (!parse_duration_or_number(p, &range, "range or subquery"))
				return n;
			if (p->tok.type == T_COLON) {
				struct usher_promql_node *sq;

				advance(p);
				if (p->tok.type != T_RBRACKET &&
				    !parse_duration_or_number(p, &step, "subquery"))
					return n;
				if (p->tok.type != T_RBRACKET) {
					unexpected(p, "subquery selector", "\"]\"");
					return n;
				}
				if (n->type != USHER_PQ_TYPE_VECTOR) {
					perr(p, n->pos,
					     "subquery is only allowed on instant vector, got %s "
					     "instead",
					     usher_promql_type_name(n->type));
					return n;
				}
				if (range <= 0 || step < 0) {
					perr(p, pos, "duration must be greater than 0");
					return n;
				}
				sq = new_node(p, USHER_PQ_SUBQUERY, n->pos);
				sq->type = USHER_PQ_TYPE_MATRIX;
				sq->sq.expr = n;
				sq->sq.range_ms = range;
				sq->sq.step_ms = step;
				sq->end = p->tok.end;
				advance(p);
				n = sq;
				continue;
			}
			if (p->tok.type != T_RBRACKET) {
				unexpected(p, "range selector", "\"]\" or \":\"");
				return n;
			}
			if (n->kind != USHER_PQ_VECTOR_SELECTOR) {
				perr(p, n->pos, "ranges only allowed for vector selectors");
				return n;
			}
			if (n->vs.timing.has_offset || n->vs.timing.at != USHER_PQ_AT_NONE) {
				perr(p, pos, "no offset or @ modifiers allowed before range");
				return n;
			}
			if (range <= 0) {
				perr(p, pos, "duration must be greater than 0");
				return n;
			}
			{
				struct usher_promql_node *ms =
				    new_node(p, USHER_PQ_MATRIX_SELECTOR, n->pos);

				ms->type = USHER_PQ_TYPE_MATRIX;
				ms->ms.vs = n;
				ms->ms.range_ms = range;
				ms->end = p->tok.end;
				advance(p);
				n = ms;
			}
			continue;
		}
		if (p->tok.type == T_OFFSET) {
			bool neg = false;
			int64_t off;

			tm = timing_of(n);
			if (!tm) {
				perr(p, pos,
				     "offset modifier must be preceded by an instant vector "
				     "selector or range vector selector or a subquery");
				return n;
			}
			if (tm->has_offset) {
				perr(p, pos, "offset may not be set multiple times");
				return n;
			}
			advance(p);
			if (p->tok.type == T_SUB || p->tok.type == T_ADD) {
				neg = p->tok.type == T_SUB;
				advance(p);
			}
			if (!parse_duration_or_number(p, &off, "offset"))
				return n;
			tm->offset_ms = neg ? -off : off;
			tm->has_offset = true;
			continue;
		}
		if (p->tok.type == T_AT) {
			tm = timing_of(n);
			if (!tm) {
				perr(p, pos,
				     "@ modifier must be preceded by an instant vector selector "
				     "or range vector selector or a subquery");
				return n;
			}
			if (tm->at != USHER_PQ_AT_NONE) {
				perr(p, pos, "@ <timestamp> may not be set multiple times");
				return n;
			}
			advance(p);
			if (p->tok.type == T_IDENT && (strcmp(p->tok.text, "start") == 0 ||
						       strcmp(p->tok.text, "end") == 0)) {
				tm->at =
				    p->tok.text[0] == 's' ? USHER_PQ_AT_START : USHER_PQ_AT_END;
				advance(p);
				if (p->tok.type != T_LPAREN) {
					unexpected(p, "@ modifier", "\"(\"");
					return n;
				}
				advance(p);
				if (p->tok.type != T_RPAREN) {
					unexpected(p, "@ modifier", "\")\"");
					return n;
				}
				advance(p);
				continue;
			}
			{
				double sign = 1;

				if (p->tok.type == T_SUB || p->tok.type == T_ADD) {
					sign = p->tok.type == T_SUB ? -1 : 1;
					advance(p);
				}
				if (p->tok.type != T_NUMBER) {
					unexpected(p, "@ modifier", "number, start() or end()");
					return n;
				}
				if (!isfinite(p->tok.num) ||
				    fabs(p->tok.num) * 1000 > (double)USHER_PQ_MAX_DURATION_MS) {
					perr(p, p->tok.pos,
					     "timestamp out of bounds for @ modifier: %g",
					     sign * p->tok.num);
					return n;
				}
				tm->at = USHER_PQ_AT_TIME;
				tm->at_ms = (int64_t)llround(sign * p->tok.num * 1000);
				advance(p);
			}
			continue;
		}
		break;
	}
	return n;
}

static struct usher_promql_node **parse_args(struct parser *p, size_t *nargs, const char *context)
{
	struct usher_promql_node **v = NULL;
	size_t cap = 0;

	*nargs = 0;
	advance(p); /* '(' */
	while (!p->rc && p->tok.type != T_RPAREN) {
		struct usher_promql_node *a = parse_expr(p, 0);

		if (p->rc)
			return v;
		if (*nargs == cap) {
			struct usher_promql_node **nv;

			cap = cap ? cap * 2 : 4;
			nv = usher_arena_alloc(p->e->arena, cap * sizeof(*nv));
			if (*nargs)
				memcpy(nv, v, *nargs * sizeof(*nv));
			v = nv;
		}
		v[(*nargs)++] = a;
		if (p->tok.type == T_COMMA) {
			advance(p);
			if (p->tok.type == T_RPAREN) {
				unexpected(p, context, NULL);
				return v;
			}
		} else if (p->tok.type != T_RPAREN) {
			unexpected(p, context, "\",\" or \")\"");
			return v;
		}
	}
	return v;
}

static struct usher_promql_node *parse_aggregate(struct parser *p, int which, size_t pos)
{
	struct usher_promql_node *n = new_node(p, USHER_PQ_AGGREGATE, pos), **args;
	size_t nargs, want = aggregators[which].param ? 2 : 1;
	const char *context = "aggregation";

	n->type = USHER_PQ_TYPE_VECTOR;
	n->agg.op = aggregators[which].op;
	advance(p); /* the name */
	if (p->tok.type == T_BY || p->tok.type == T_WITHOUT) {
		n->agg.without = p->tok.type == T_WITHOUT;
		n->agg.grouped = true;
		advance(p);
		parse_label_list(p, context, &n->agg.grouping, &n->agg.ngrouping);
		if (p->rc)
			return n;
	}
	if (p->tok.type != T_LPAREN) {
		unexpected(p, context, "\"(\"");
		return n;
	}
	args = parse_args(p, &nargs, context);
	if (p->rc)
		return n;
	n->end = p->tok.end;
	advance(p); /* ')' */
	if (p->tok.type == T_BY || p->tok.type == T_WITHOUT) {
		if (n->agg.grouped) {
			unexpected(p, context, NULL);
			return n;
		}
		n->agg.without = p->tok.type == T_WITHOUT;
		n->agg.grouped = true;
		advance(p);
		parse_label_list(p, context, &n->agg.grouping, &n->agg.ngrouping);
		if (p->rc)
			return n;
	}
	if (nargs != want) {
		perr(p, pos,
		     "wrong number of arguments for aggregate expression provided, expected %zu, "
		     "got %zu",
		     want, nargs);
		return n;
	}
	if (want == 2) {
		enum usher_promql_type pt = n->agg.op == USHER_PQ_COUNT_VALUES
						? USHER_PQ_TYPE_STRING
						: USHER_PQ_TYPE_SCALAR;

		n->agg.param = args[0];
		if (args[0]->type != pt) {
			perr(p, args[0]->pos, "expected type %s in aggregation parameter, got %s",
			     usher_promql_type_name(pt), usher_promql_type_name(args[0]->type));
			return n;
		}
	}
	n->agg.expr = args[want - 1];
	if (n->agg.expr->type != USHER_PQ_TYPE_VECTOR)
		perr(p, n->agg.expr->pos,
		     "expected type instant vector in aggregation expression, got %s",
		     usher_promql_type_name(n->agg.expr->type));
	return n;
}

static struct usher_promql_node *parse_call(struct parser *p, const char *name, size_t pos)
{
	const struct usher_promql_function *fn = pq_function_find(name);
	struct usher_promql_node *n = new_node(p, USHER_PQ_CALL, pos);
	char context[96];
	size_t i, na;

	if (!fn) {
		perr(p, pos, "unknown function with name \"%s\"", name);
		return n;
	}
	snprintf(context, sizeof(context), "call to function \"%s\"", name);
	n->call.fn = fn;
	n->type = fn->ret;
	advance(p); /* the name */
	n->call.args = parse_args(p, &n->call.nargs, context);
	if (p->rc)
		return n;
	n->end = p->tok.end;
	advance(p); /* ')' */
	na = n->call.nargs;
	if (fn->variadic == 0) {
		if (na != fn->nargtypes) {
			perr(p, pos, "expected %u argument(s) in call to \"%s\", got %zu",
			     fn->nargtypes, name, na);
			return n;
		}
	} else {
		size_t min = fn->nargtypes - 1;

		if (na < min) {
			perr(p, pos, "expected at least %zu argument(s) in call to \"%s\", got %zu",
			     min, name, na);
			return n;
		}
		if (fn->variadic > 0 && na > min + (size_t)fn->variadic) {
			perr(p, pos, "expected at most %zu argument(s) in call to \"%s\", got %zu",
			     min + (size_t)fn->variadic, name, na);
			return n;
		}
	}
	for (i = 0; i < na; i++) {
		size_t k = i < fn->nargtypes ? i : fn->nargtypes - 1;
		enum usher_promql_type want = fn->arg_types[k];

		if (i >= fn->nargtypes && fn->variadic != -1)
			break;
		if (n->call.args[i]->type != want) {
			perr(p, n->call.args[i]->pos, "expected type %s in %s, got %s",
			     usher_promql_type_name(want), context,
			     usher_promql_type_name(n->call.args[i]->type));
			return n;
		}
	}
	return n;
}

static struct usher_promql_node *parse_primary(struct parser *p)
{
	struct usher_promql_node *n;
	size_t pos = p->tok.pos;

	switch (p->tok.type) {
	case T_NUMBER:
		n = new_node(p, USHER_PQ_NUMBER, pos);
		n->type = USHER_PQ_TYPE_SCALAR;
		n->number = p->tok.num;
		n->end = p->tok.end;
		advance(p);
		return n;
	case T_DURATION:
		/* Prometheus 3 reads a duration where a number goes, in seconds */
		n = new_node(p, USHER_PQ_NUMBER, pos);
		n->type = USHER_PQ_TYPE_SCALAR;
		n->number = (double)p->tok.ms / 1000;
		n->end = p->tok.end;
		advance(p);
		return n;
	case T_STRING:
		n = new_node(p, USHER_PQ_STRING, pos);
		n->type = USHER_PQ_TYPE_STRING;
		n->string = p->tok.text;
		n->end = p->tok.end;
		advance(p);
		return n;
	case T_LPAREN:
		advance(p);
		n = new_node(p, USHER_PQ_PAREN, pos);
		n->paren.expr = parse_expr(p, 0);
		if (p->rc)
			return n;
		if (p->tok.type != T_RPAREN) {
			if (p->tok.type == T_EOF)
				perr(p, p->tok.pos, "unclosed left parenthesis");
			else
				unexpected(p, "paren expression", "\")\"");
			return n;
		}
		n->type = n->paren.expr->type;
		n->end = p->tok.end;
		advance(p);
		return n;
	case T_LBRACE: return parse_selector(p, NULL, pos);
	case T_IDENT: {
		const char *name = p->tok.text;
		struct pq_token nx;
		int agg = find_aggregator(name);

		peek(p, &nx);
		if (agg >= 0 && (nx.type == T_LPAREN || nx.type == T_BY || nx.type == T_WITHOUT))
			return parse_aggregate(p, agg, pos);
		if (nx.type == T_LPAREN)
			return parse_call(p, name, pos);
		advance(p);
		return parse_selector(p, name, pos);
	}
	case T_RPAREN: perr(p, pos, "unexpected right parenthesis ')'"); return NULL;
	default: unexpected(p, NULL, NULL); return NULL;
	}
}

static int binop_prec(enum pq_tok t, enum usher_promql_op *op)
{
	switch (t) {
	case T_OR: *op = USHER_PQ_OR; return 1;
	case T_AND: *op = USHER_PQ_AND; return 2;
	case T_UNLESS: *op = USHER_PQ_UNLESS; return 2;
	case T_EQLC: *op = USHER_PQ_EQL; return 3;
	case T_NEQ: *op = USHER_PQ_NEQ; return 3;
	case T_GTR: *op = USHER_PQ_GTR; return 3;
	case T_LSS: *op = USHER_PQ_LSS; return 3;
	case T_GTE: *op = USHER_PQ_GTE; return 3;
	case T_LTE: *op = USHER_PQ_LTE; return 3;
	case T_ADD: *op = USHER_PQ_ADD; return 4;
	case T_SUB: *op = USHER_PQ_SUB; return 4;
	case T_MUL: *op = USHER_PQ_MUL; return 5;
	case T_DIV: *op = USHER_PQ_DIV; return 5;
	case T_MOD: *op = USHER_PQ_MOD; return 5;
	case T_ATAN2: *op = USHER_PQ_ATAN2; return 5;
	case T_POW: *op = USHER_PQ_POW; return 6;
	default: return 0;
	}
}

#define PREC_POW 6

static struct usher_promql_node *parse_unary(struct parser *p)
{
	if (p->tok.type == T_ADD || p->tok.type == T_SUB) {
		enum usher_promql_op op = p->tok.type == T_ADD ? USHER_PQ_ADD : USHER_PQ_SUB;
		size_t pos = p->tok.pos;
		struct usher_promql_node *e, *n;

		advance(p);
		if (p->rc)
			return NULL;
		e = parse_expr(p, PREC_POW);
		if (p->rc)
			return e;
		if (e->kind == USHER_PQ_NUMBER) {
			if (op == USHER_PQ_SUB)
				e->number = -e->number;
			e->pos = pos;
			return e;
		}
		if (e->type != USHER_PQ_TYPE_SCALAR && e->type != USHER_PQ_TYPE_VECTOR) {
			perr(p, pos,
			     "unary expression only allowed on expressions of type scalar or "
			     "instant vector");
			return e;
		}
		n = new_node(p, USHER_PQ_UNARY, pos);
		n->type = e->type;
		n->unary.op = op;
		n->unary.expr = e;
		n->end = e->end;
		return n;
	}
	return parse_postfix(p, parse_primary(p));
}

static struct usher_promql_node *make_binary(struct parser *p, enum usher_promql_op op,
					     size_t oppos, struct usher_promql_node *l,
					     struct usher_promql_node *r, bool rbool, bool matched,
					     struct usher_promql_matching *m)
{
	struct usher_promql_node *n = new_node(p, USHER_PQ_BINARY, l->pos);
	enum usher_promql_type lt = l->type, rt = r->type;
	size_t i, j;

	n->binary.op = op;
	n->binary.lhs = l;
	n->binary.rhs = r;
	n->binary.return_bool = rbool;
	n->binary.matching = *m;
	n->end = r->end;
	if (rbool && !usher_promql_op_is_comparison(op))
		perr(p, oppos, "bool modifier can only be used on comparison operators");
	if (usher_promql_op_is_comparison(op) && !rbool && lt == USHER_PQ_TYPE_SCALAR &&
	    rt == USHER_PQ_TYPE_SCALAR)
		perr(p, oppos, "comparisons between scalars must use BOOL modifier");
	if (m->on)
		for (i = 0; i < m->nlabels; i++)
			for (j = 0; j < m->ninclude; j++)
				if (strcmp(m->labels[i], m->include[j]) == 0)
					perr(p, oppos,
					     "label \"%s\" must not occur in ON and GROUP clause "
					     "at once",
					     m->labels[i]);
	if (lt != USHER_PQ_TYPE_SCALAR && lt != USHER_PQ_TYPE_VECTOR)
		perr(p, l->pos,
		     "binary expression must contain only scalar and instant vector types");
	if (rt != USHER_PQ_TYPE_SCALAR && rt != USHER_PQ_TYPE_VECTOR)
		perr(p, r->pos,
		     "binary expression must contain only scalar and instant vector types");
	if (lt != USHER_PQ_TYPE_VECTOR || rt != USHER_PQ_TYPE_VECTOR) {
		if (matched && m->nlabels > 0)
			perr(p, n->pos, "vector matching only allowed between instant vectors");
	} else if (usher_promql_op_is_set(op)) {
		if (m->card == USHER_PQ_ONE_TO_MANY || m->card == USHER_PQ_MANY_TO_ONE)
			perr(p, n->pos, "no grouping allowed for \"%s\" operation",
			     usher_promql_op_str(op));
	}
	if (usher_promql_op_is_set(op)) {
		n->binary.matching.card = USHER_PQ_MANY_TO_MANY;
		if (lt == USHER_PQ_TYPE_SCALAR || rt == USHER_PQ_TYPE_SCALAR)
			perr(p, n->pos,
			     "set operator \"%s\" not allowed in binary scalar expression",
			     usher_promql_op_str(op));
	}
	n->type = lt == USHER_PQ_TYPE_SCALAR && rt == USHER_PQ_TYPE_SCALAR ? USHER_PQ_TYPE_SCALAR
									   : USHER_PQ_TYPE_VECTOR;
	return n;
}

static struct usher_promql_node *parse_expr(struct parser *p, int minprec)
{
	struct usher_promql_node *lhs;

	if (++p->depth > MAX_DEPTH) {
		perr(p, p->tok.pos, "expression nested too deeply (more than %d levels)",
		     MAX_DEPTH);
		p->depth--;
		return NULL;
	}
	lhs = parse_unary(p);
	while (!p->rc) {
		struct usher_promql_matching m = {USHER_PQ_ONE_TO_ONE, false, NULL, 0, NULL, 0};
		enum usher_promql_op op;
		int prec = binop_prec(p->tok.type, &op);
		size_t oppos = p->tok.pos;
		bool rbool = false, matched = false;
		struct usher_promql_node *rhs;

		if (!prec || prec < minprec)
			break;
		advance(p);
		if (p->tok.type == T_BOOL) {
			rbool = true;
			advance(p);
		}
		if (p->tok.type == T_ON || p->tok.type == T_IGNORING) {
			matched = true;
			m.on = p->tok.type == T_ON;
			advance(p);
			parse_label_list(p, "grouping opts", &m.labels, &m.nlabels);
			if (p->rc)
				break;
			if (p->tok.type == T_GROUP_LEFT || p->tok.type == T_GROUP_RIGHT) {
				m.card = p->tok.type == T_GROUP_LEFT ? USHER_PQ_MANY_TO_ONE
								     : USHER_PQ_ONE_TO_MANY;
				advance(p);
				if (p->tok.type == T_LPAREN) {
					parse_label_list(p, "grouping opts", &m.include,
							 &m.ninclude);
					if (p->rc)
						break;
				}
			}
		}
		rhs = parse_expr(p, prec == PREC_POW ? prec : prec + 1);
		if (p->rc)
			break;
		lhs = make_binary(p, op, oppos, lhs, rhs, rbool, matched, &m);
	}
	p->depth--;
	return lhs;
}

enum usher_err usher_promql_parse(const char *query, struct usher_promql_expr **out,
				  struct usher_error *err)
{
	struct usher_promql_expr *e = usher_calloc(1, sizeof(*e));
	struct parser p;

	*out = NULL;
	e->arena = usher_arena_new();
	e->query = usher_arena_strdup(e->arena, query);
	memset(&p, 0, sizeof(p));
	p.e = e;
	p.err = err;
	pq_lexer_init(&p.lx, e->query, e->arena);
	advance(&p);
	if (!p.rc && p.tok.type == T_EOF)
		perr(&p, 0, "no expression found in input");
	if (!p.rc)
		e->root = parse_expr(&p, 0);
	if (!p.rc && p.tok.type != T_EOF) {
		if (p.tok.type == T_RPAREN)
			perr(&p, p.tok.pos, "unexpected right parenthesis ')'");
		else
			unexpected(&p, NULL, NULL);
	}
	if (p.rc) {
		usher_promql_expr_free(e);
		return p.rc;
	}
	*out = e;
	return USHER_OK;
}

void usher_promql_expr_free(struct usher_promql_expr *e)
{
	size_t i;

	if (!e)
		return;
	for (i = 0; i < e->nregexes; i++)
		usher_matcher_fini(e->regexes[i]);
	free(e->regexes);
	usher_arena_free(e->arena);
	free(e);
}
