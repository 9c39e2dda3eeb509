/* The PromQL .test file runner: parses Prometheus' promqltest format line
 * by line (comments and blank lines end blocks, as promqltest's getLines
 * makes them), loads series into a fresh store, evaluates and compares
 * with Prometheus' tolerance (relative 1e-6, NaN equals NaN). */
#include "promql/promqltest.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/mem.h"
#include "promql/engine.h"
#include "promql/lexer.h"
#include "tsdb/tsdb.h"

#define MAX_FILE (64u << 20)

struct known_entry {
	char *key; /* "file:line" */
};

struct usher_promqltest_known {
	struct known_entry *v;
	size_t n, cap;
};

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static enum usher_err read_file(const char *path, struct usher_buf *b, struct usher_error *err)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	if (!f)
		return usher_fail(err, USHER_ERR_IO, "%s: cannot open: %m", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (usher_buf_add(b, chunk, n)) {
			fclose(f);
			return usher_fail(err, USHER_ERR_TOOBIG, "%s: larger than %u bytes", path,
					  MAX_FILE);
		}
	fclose(f);
	return USHER_OK;
}

enum usher_err usher_promqltest_known_load(const char *path, struct usher_promqltest_known **out,
					   struct usher_error *err)
{
	struct usher_promqltest_known *k = usher_calloc(1, sizeof(*k));
	struct usher_buf b;
	enum usher_err rc;
	char *line, *next, *text;
	size_t lineno = 0;

	*out = NULL;
	usher_buf_init(&b, MAX_FILE);
	rc = read_file(path, &b, err);
	if (rc)
		goto out;
	text = b.data ? b.data : (char *)"";
	for (line = text; line; line = next) {
		char *s, *sp, *colon;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		s = trim(line);
		if (!*s || *s == '#')
			continue;
		sp = s;
		while (*sp && !isspace((unsigned char)*sp))
			sp++;
		if (*sp)
			*sp = '\0';
		colon = strrchr(s, ':');
		if (!colon || colon == s || !colon[1] ||
		    strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
			rc = usher_fail(err, USHER_ERR_INVALID,
					"%s:%zu: expected \"file.test:line reason\"", path, lineno);
			goto out;
		}
		if (k->n == k->cap) {
			k->cap = k->cap ? k->cap * 2 : 32;
			k->v = usher_realloc(k->v, k->cap * sizeof(*k->v));
		}
		k->v[k->n++].key = usher_strdup(s);
	}
out:
	usher_buf_free(&b);
	if (rc) {
		usher_promqltest_known_free(k);
		return rc;
	}
	*out = k;
	return USHER_OK;
}

void usher_promqltest_known_free(struct usher_promqltest_known *k)
{
	size_t i;

	if (!k)
		return;
	for (i = 0; i < k->n; i++)
		free(k->v[i].key);
	free(k->v);
	free(k);
}

static bool is_known(const struct usher_promqltest_known *k, const char *name, size_t line)
{
	const char *base = strrchr(name, '/');
	char key[512];
	size_t i;

	if (!k)
		return false;
	snprintf(key, sizeof(key), "%s:%zu", base ? base + 1 : name, line);
	for (i = 0; i < k->n; i++)
		if (strcmp(k->v[i].key, key) == 0)
			return true;
	return false;
}

/* Prometheus' almost.Equal. */
static bool almost_equal(double a, double b, double eps)
{
	double sum, diff;

	if (isnan(a) && isnan(b))
		return true;
	if (a == b)
		return true;
	sum = fabs(a) + fabs(b);
	diff = fabs(a - b);
	if (a == 0 || b == 0 || sum < DBL_MIN)
		return diff < eps * DBL_MIN;
	return diff / fmin(sum, DBL_MAX) < eps;
}

#define EPSILON 1e-6

/* --- the series notation --- */

struct seqval {
	double v;
	bool omitted;
};

struct seq {
	struct seqval *v;
	size_t n, cap;
	bool histogram; /* held native-histogram values ({{…}}) */
};

static void seq_push(struct usher_arena *a, struct seq *s, double v, bool omitted)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct seqval *nv = usher_arena_alloc(a, cap * sizeof(*nv));

		if (s->n)
			memcpy(nv, s->v, s->n * sizeof(*nv));
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n].v = v;
	s->v[s->n].omitted = omitted;
	s->n++;
}

/* A float as the series notation writes it; returns chars used, 0 if none. */
static size_t scan_float(const char *s, double *v)
{
	size_t i = 0, start;
	char tmp[128];

	if (s[i] == '+' || s[i] == '-')
		i++;
	if (strncasecmp(s + i, "inf", 3) == 0 || strncasecmp(s + i, "nan", 3) == 0) {
		bool nan = tolower((unsigned char)s[i]) == 'n';

		*v = nan ? NAN : (s[0] == '-' ? -INFINITY : INFINITY);
		return i + 3;
	}
	start = i;
	while (isdigit((unsigned char)s[i]))
		i++;
	if (s[i] == '.') {
		i++;
		while (isdigit((unsigned char)s[i]))
			i++;
	}
	if (i == start || (i == start + 1 && s[start] == '.'))
		return 0;
	if ((s[i] == 'e' || s[i] == 'E') &&
	    (isdigit((unsigned char)s[i + 1]) ||
	     ((s[i + 1] == '+' || s[i + 1] == '-') && isdigit((unsigned char)s[i + 2])))) {
		i += 2;
		while (isdigit((unsigned char)s[i]))
			i++;
	}
	if (i >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, i);
	tmp[i] = '\0';
	*v = strtod(tmp, NULL);
	return i;
}

static bool scan_count(const char *s, uint64_t *n)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return false;
	*n = strtoull(s, &end, 10);
	return *end == '\0' && *n < 10000000;
}

/* Parses the values after a series description. Native-histogram values
 * ({{…}}) are skipped: they take their time slots but load nothing. */
static bool parse_values(struct usher_arena *a, const char *s, struct seq *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	while (*s) {
		char tok[256];
		size_t n = 0;
		uint64_t count, i;
		double x, d = 0;
		size_t used;

		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		if (s[0] == '{' && s[1] == '{') {
			const char *p = s, *last = s;

			/* the whole token: histograms and what joins them, until a
			 * space outside {{ }} */
			while (*p && !isspace((unsigned char)*p)) {
				if (p[0] == '{' && p[1] == '{') {
					const char *e = strstr(p, "}}");

					if (!e) {
						*why = "unterminated histogram value";
						return false;
					}
					p = e + 2;
					last = p;
					continue;
				}
				p++;
			}
			count = 1;
			if (*last == 'x') {
				char num[32];
				size_t k = (size_t)(p - last - 1);

				if (k == 0 || k >= sizeof(num)) {
					*why = "bad histogram repetition";
					return false;
				}
				memcpy(num, last + 1, k);
				num[k] = '\0';
				if (!scan_count(num, &count)) {
					*why = "bad histogram repetition";
					return false;
				}
				count++;
			}
			for (i = 0; i < count; i++)
				seq_push(a, out, 0, true);
			out->histogram = true;
			s = p;
			continue;
		}
		while (*s && !isspace((unsigned char)*s) && n + 1 < sizeof(tok))
			tok[n++] = *s++;
		tok[n] = '\0';
		if (strcmp(tok, "_") == 0) {
			seq_push(a, out, 0, true);
			continue;
		}
		if (strncmp(tok, "_x", 2) == 0) {
			if (!scan_count(tok + 2, &count)) {
				*why = "bad repetition of _";
				return false;
			}
			for (i = 0; i < count; i++)
				seq_push(a, out, 0, true);
			continue;
		}
		if (strcmp(tok, "stale") == 0) {
			seq_push(a, out, usher_stale_nan(), false);
			continue;
		}
		used = scan_float(tok, &x);
		if (!used) {
			*why = "bad value";
			return false;
		}
		if (tok[used] == '\0') {
			seq_push(a, out, x, false);
			continue;
		}
		if (tok[used] == '+' || tok[used] == '-') {
			size_t u2 = scan_float(tok + used, &d);

			if (!u2 || tok[used + u2] != 'x') {
				*why = "bad series expansion";
				return false;
			}
			used += u2;
		}
		if (tok[used] != 'x' || !scan_count(tok + used + 1, &count)) {
			*why = "bad series expansion";
			return false;
		}
		seq_push(a, out, x, false);
		for (i = 1; i <= count; i++) {
			x += d;
			seq_push(a, out, x, false);
		}
	}
	return true;
}

/* name{label="value", …} followed by values. */
static bool parse_series(struct usher_arena *a, const char *line, struct usher_labels *l,
			 struct seq *vals, const char **why)
{
	struct usher_label *pairs = usher_arena_alloc(a, 64 * sizeof(*pairs));
	struct pq_lexer lx;
	struct pq_token t;
	size_t n = 0;

	pq_lexer_init(&lx, line, a);
	pq_lexer_next(&lx, &t);
	if (t.type == T_IDENT) {
		pairs[n].name = USHER_METRIC_NAME_LABEL;
		pairs[n].value = t.text;
		n++;
		if (line[lx.pos] == '{')
			pq_lexer_next(&lx, &t);
	}
	if (t.type == T_LBRACE) {
		pq_lexer_next(&lx, &t);
		while (t.type != T_RBRACE) {
			const char *name = t.text;

			if (t.type == T_STRING) {
				struct pq_lexer save = lx;
				struct pq_token nx;

				pq_lexer_next(&lx, &nx);
				lx = save;
				if (nx.type == T_COMMA || nx.type == T_RBRACE) {
					pairs[n].name = USHER_METRIC_NAME_LABEL;
					pairs[n].value = name;
					n++;
					pq_lexer_next(&lx, &t);
					goto sep;
				}
			} else if (!name || t.type == T_EOF || t.type == T_ERROR) {
				*why = "bad label name";
				return false;
			}
			pq_lexer_next(&lx, &t);
			if (t.type != T_ASSIGN) {
				*why = "expected = after label name";
				return false;
			}
			pq_lexer_next(&lx, &t);
			if (t.type != T_STRING) {
				*why = "expected a quoted label value";
				return false;
			}
			if (n >= 64) {
				*why = "too many labels";
				return false;
			}
			pairs[n].name = name;
			pairs[n].value = t.text;
			n++;
			pq_lexer_next(&lx, &t);
		sep:
			if (t.type == T_COMMA)
				pq_lexer_next(&lx, &t);
			else if (t.type != T_RBRACE) {
				*why = "expected , or } in labels";
				return false;
			}
		}
	} else if (n == 0) {
		*why = "expected a series description";
		return false;
	}
	l->n = n;
	if (!usher_labels_normalize(l, pairs)) {
		*why = "a label name occurs twice";
		return false;
	}
	return parse_values(a, line + lx.pos, vals, why);
}

/* A duration ("50m", "0", "1h30m") or plain seconds. */
static bool parse_time(const char *s, int64_t *ms)
{
	char *end;
	double v;

	if (usher_promql_parse_duration(s, strlen(s), ms) == USHER_OK)
		return true;
	v = strtod(s, &end);
	if (end == s || *end || !isfinite(v))
		return false;
	*ms = (int64_t)llround(v * 1000);
	return true;
}

/* --- running --- */

struct expect_series {
	struct usher_labels l;
	struct seq vals;
	size_t line;
};

struct eval_cmd {
	size_t line;
	const char *text; /* the eval line, for messages */
	bool range;
	int64_t at, start, end, step;
	const char *query;
	bool fail, ordered;
	const char *fail_msg, *fail_regex;
	bool scalar;
	double scalar_v;
	bool string;
	const char *string_v;
	bool range_vector;
	int64_t rv_from, rv_to, rv_step;
	struct expect_series *e;
	size_t ne, cape;
};

struct run {
	const char *name;
	const struct usher_promqltest_known *known;
	bool verbose;
	FILE *out;
	struct usher_promqltest_stats *st;
	struct usher_tsdb *db;
	struct usher_promql_engine *eng;
	struct usher_arena *a; /* per command */
};

static void fresh_db(struct run *r)
{
	struct usher_tsdb_options o = {0, 0}; /* keep everything, no series cap */

	usher_tsdb_free(r->db);
	r->db = usher_tsdb_new(&o);
}

static void report(struct run *r, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct run *r, size_t line, const char *fmt, ...)
{
	va_list ap;

	if (!r->out)
		return;
	fprintf(r->out, "%s:%zu: ", r->name, line);
	va_start(ap, fmt);
	vfprintf(r->out, fmt, ap);
	va_end(ap);
	fputc('\n', r->out);
}

static void fmt_value(double v, char *out, size_t len)
{
	if (usher_is_stale(v))
		snprintf(out, len, "stale");
	else
		usher_promql_format_value(v, out, len);
}

static void describe_result(struct usher_buf *b, const struct usher_promql_result *res)
{
	char v[64];
	size_t i, j;

	switch (res->type) {
	case USHER_PQ_TYPE_SCALAR:
		fmt_value(res->scalar, v, sizeof(v));
		usher_buf_addf(b, "scalar %s", v);
		return;
	case USHER_PQ_TYPE_STRING: usher_buf_addf(b, "string \"%s\"", res->string); return;
	case USHER_PQ_TYPE_VECTOR:
		if (!res->n)
			usher_buf_addstr(b, "empty vector");
		for (i = 0; i < res->n; i++) {
			if (i)
				usher_buf_addstr(b, "; ");
			usher_labels_format(&res->vector[i].labels, b);
			fmt_value(res->vector[i].v, v, sizeof(v));
			usher_buf_addf(b, " %s", v);
		}
		return;
	case USHER_PQ_TYPE_MATRIX:
		if (!res->n)
			usher_buf_addstr(b, "empty matrix");
		for (i = 0; i < res->n; i++) {
			if (i)
				usher_buf_addstr(b, "; ");
			usher_labels_format(&res->matrix[i].labels, b);
			for (j = 0; j < res->matrix[i].n && j < 64; j++) {
				fmt_value(res->matrix[i].v[j], v, sizeof(v));
				usher_buf_addf(b, " %s@%lld", v,
					       (long long)res->matrix[i].t[j] / 1000);
			}
			if (res->matrix[i].n > 64)
				usher_buf_addstr(b, " …");
		}
		return;
	case USHER_PQ_TYPE_NONE: usher_buf_addstr(b, "nothing"); return;
	}
}

static void describe_expected(struct usher_buf *b, const struct eval_cmd *c)
{
	char v[64];
	size_t i, j;

	if (c->fail) {
		usher_buf_addstr(b, "an error");
		if (c->fail_msg)
			usher_buf_addf(b, " \"%s\"", c->fail_msg);
		return;
	}
	if (c->scalar) {
		fmt_value(c->scalar_v, v, sizeof(v));
		usher_buf_addf(b, "scalar %s", v);
		return;
	}
	if (c->string) {
		usher_buf_addf(b, "string \"%s\"", c->string_v);
		return;
	}
	if (!c->ne)
		usher_buf_addstr(b, "empty result");
	for (i = 0; i < c->ne; i++) {
		if (i)
			usher_buf_addstr(b, "; ");
		usher_labels_format(&c->e[i].l, b);
		for (j = 0; j < c->e[i].vals.n && j < 64; j++) {
			if (c->e[i].vals.v[j].omitted)
				usher_buf_addstr(b, " _");
			else {
				fmt_value(c->e[i].vals.v[j].v, v, sizeof(v));
				usher_buf_addf(b, " %s", v);
			}
		}
	}
}

static const struct expect_series *find_expected(const struct eval_cmd *c,
						 const struct usher_labels *l, size_t *idx)
{
	size_t i;

	for (i = 0; i < c->ne; i++)
		if (usher_labels_equal(&c->e[i].l, l)) {
			*idx = i;
			return &c->e[i];
		}
	return NULL;
}

/* Compares series points with the expected sequence over start..end/step. */
static bool points_match(const struct seq *exp, int64_t start, int64_t step, const int64_t *t,
			 const double *v, size_t n, struct usher_buf *why)
{
	size_t i, k = 0;

	for (i = 0; i < exp->n; i++) {
		int64_t ts = start + (int64_t)i * step;

		if (exp->v[i].omitted)
			continue;
		if (k >= n || t[k] != ts) {
			usher_buf_addf(why, "no point at %llds", (long long)ts / 1000);
			return false;
		}
		if (!almost_equal(exp->v[i].v, v[k], EPSILON) ||
		    usher_is_stale(exp->v[i].v) != usher_is_stale(v[k])) {
			char a[64], b[64];

			fmt_value(exp->v[i].v, a, sizeof(a));
			fmt_value(v[k], b, sizeof(b));
			usher_buf_addf(why, "at %llds expected %s, got %s", (long long)ts / 1000, a,
				       b);
			return false;
		}
		k++;
	}
	if (k != n) {
		usher_buf_addf(why, "%zu unexpected extra points", n - k);
		return false;
	}
	return true;
}

/* Whether res is what c expects; why says what differs. */
static bool compare(const struct eval_cmd *c, const struct usher_promql_result *res,
		    struct usher_buf *why)
{
	size_t i, idx;
	bool *seen;

	if (c->scalar) {
		if (res->type != USHER_PQ_TYPE_SCALAR) {
			usher_buf_addstr(why, "expected a scalar");
			return false;
		}
		return almost_equal(c->scalar_v, res->scalar, EPSILON);
	}
	if (c->string) {
		if (res->type != USHER_PQ_TYPE_STRING) {
			usher_buf_addstr(why, "expected a string");
			return false;
		}
		return strcmp(c->string_v, res->string) == 0;
	}
	if (res->type == USHER_PQ_TYPE_SCALAR || res->type == USHER_PQ_TYPE_STRING) {
		usher_buf_addstr(why, "expected a vector");
		return false;
	}
	if (res->type == USHER_PQ_TYPE_MATRIX && !c->range && !c->range_vector) {
		usher_buf_addstr(why, "got a range vector from an instant eval");
		return false;
	}
	if (res->n != c->ne) {
		usher_buf_addf(why, "expected %zu series, got %zu", c->ne, res->n);
		return false;
	}
	seen = calloc(c->ne ? c->ne : 1, sizeof(*seen));
	for (i = 0; i < res->n; i++) {
		const struct usher_labels *l = res->type == USHER_PQ_TYPE_VECTOR
						   ? &res->vector[i].labels
						   : &res->matrix[i].labels;
		const struct expect_series *e = find_expected(c, l, &idx);

		if (!e || seen[idx]) {
			usher_buf_addstr(why, "unexpected series ");
			usher_labels_format(l, why);
			free(seen);
			return false;
		}
		seen[idx] = true;
		if (res->type == USHER_PQ_TYPE_VECTOR) {
			const struct seqval *ev = e->vals.n ? &e->vals.v[0] : NULL;

			if (c->ordered && idx != i) {
				usher_buf_addf(why, "series at position %zu, expected at %zu", i,
					       idx);
				free(seen);
				return false;
			}
			if (!ev || ev->omitted || !almost_equal(ev->v, res->vector[i].v, EPSILON)) {
				usher_buf_addstr(why, "value differs for ");
				usher_labels_format(l, why);
				free(seen);
				return false;
			}
		} else {
			int64_t start = c->range ? c->start : c->rv_from;
			int64_t step = c->range ? c->step : c->rv_step;

			if (!points_match(&e->vals, start, step, res->matrix[i].t, res->matrix[i].v,
					  res->matrix[i].n, why)) {
				usher_buf_addstr(why, " for ");
				usher_labels_format(l, why);
				free(seen);
				return false;
			}
		}
	}
	free(seen);
	return true;
}

static bool fail_matches(const struct eval_cmd *c, const char *msg)
{
	pcre2_code *re;
	pcre2_match_data *md;
	int code, rc;
	PCRE2_SIZE off;

	if (c->fail_msg)
		return strcmp(c->fail_msg, msg) == 0;
	if (!c->fail_regex)
		return true;
	re = pcre2_compile((PCRE2_SPTR)c->fail_regex, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
	if (!re)
		return false;
	md = pcre2_match_data_create_from_pattern(re, NULL);
	rc = pcre2_match(re, (PCRE2_SPTR)msg, strlen(msg), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	return rc >= 0;
}

static void run_eval(struct run *r, struct eval_cmd *c)
{
	struct usher_storage st = usher_tsdb_storage(r->db);
	struct usher_promql_result res = {0};
	struct usher_error err;
	struct usher_buf why;
	enum usher_err rc;
	bool ok, known = is_known(r->known, r->name, c->line);

	usher_error_clear(&err);
	usher_buf_init(&why, 1 << 16);
	if (c->range)
		rc = usher_promql_eval_range(r->eng, &st, c->query, c->start, c->end, c->step, &res,
					     &err);
	else
		rc = usher_promql_eval_instant(r->eng, &st, c->query, c->at, &res, &err);
	if (c->fail) {
		ok = rc && fail_matches(c, err.msg);
		if (!rc)
			usher_buf_addstr(&why, "no error");
		else if (!ok)
			usher_buf_addf(&why, "error \"%s\"", err.msg);
	} else if (rc) {
		ok = false;
		usher_buf_addf(&why, "error \"%s\"", err.msg);
	} else {
		ok = compare(c, &res, &why);
	}
	if (ok && !known) {
		r->st->passed++;
	} else if (!ok && known) {
		r->st->known_failed++;
	} else if (ok && known) {
		r->st->failed++;
		report(r, c->line, "listed as a known failure but passes: remove it from the list");
	} else {
		struct usher_buf exp, got;

		r->st->failed++;
		if (r->verbose) {
			usher_buf_init(&exp, 1 << 16);
			usher_buf_init(&got, 1 << 16);
			describe_expected(&exp, c);
			if (rc)
				usher_buf_addf(&got, "error \"%s\"", err.msg);
			else
				describe_result(&got, &res);
			report(r, c->line, "%s\n  expected: %s\n  got:      %s\n  (%s)", c->text,
			       usher_buf_str(&exp), usher_buf_str(&got), usher_buf_str(&why));
			usher_buf_free(&exp);
			usher_buf_free(&got);
		}
	}
	usher_buf_free(&why);
	usher_promql_result_free(&res);
}

/* Words of an eval line. */
static bool parse_eval_head(struct usher_arena *a, char *line, struct eval_cmd *c, const char **why)
{
	char *p = line, *word;
	size_t n;

	/* eval, eval_fail, eval_ordered, eval_warn, eval_info */
	n = strcspn(p, " \t");
	word = usher_arena_strndup(a, p, n);
	if (strcmp(word, "eval_fail") == 0)
		c->fail = true;
	else if (strcmp(word, "eval_ordered") == 0)
		c->ordered = true;
	else if (strcmp(word, "eval") && strcmp(word, "eval_warn") && strcmp(word, "eval_info")) {
		*why = "unknown eval command";
		return false;
	}
	p = trim(p + n);
	if (strncmp(p, "instant", 7) == 0 && isspace((unsigned char)p[7])) {
		p = trim(p + 7);
		if (strncmp(p, "at", 2) != 0 || !isspace((unsigned char)p[2])) {
			*why = "expected \"at <time>\"";
			return false;
		}
		p = trim(p + 2);
		n = strcspn(p, " \t");
		word = usher_arena_strndup(a, p, n);
		if (!parse_time(word, &c->at)) {
			*why = "bad evaluation time";
			return false;
		}
		c->query = usher_arena_strdup(a, trim(p + n));
		return true;
	}
	if (strncmp(p, "range", 5) == 0 && isspace((unsigned char)p[5])) {
		static const char *const kw[] = {"from", "to", "step"};
		int64_t *dst[] = {&c->start, &c->end, &c->step};
		int i;

		c->range = true;
		p = trim(p + 5);
		for (i = 0; i < 3; i++) {
			size_t kl = strlen(kw[i]);

			if (strncmp(p, kw[i], kl) != 0 || !isspace((unsigned char)p[kl])) {
				*why = "expected \"range from <t> to <t> step <d>\"";
				return false;
			}
			p = trim(p + kl);
			n = strcspn(p, " \t");
			word = usher_arena_strndup(a, p, n);
			if (!parse_time(word, dst[i])) {
				*why = "bad time in range";
				return false;
			}
			p = trim(p + n);
		}
		c->query = usher_arena_strdup(a, p);
		return true;
	}
	*why = "expected \"instant\" or \"range\"";
	return false;
}

/* An expect line; false with why on a malformed one. */
static bool parse_expect(struct usher_arena *a, char *s, struct eval_cmd *c, const char **why)
{
	char *p = trim(s + 6);

	if (strncmp(p, "fail", 4) == 0 && (!p[4] || isspace((unsigned char)p[4]))) {
		c->fail = true;
		p = trim(p + 4);
		if (strncmp(p, "msg:", 4) == 0)
			c->fail_msg = usher_arena_strdup(a, trim(p + 4));
		else if (strncmp(p, "regex:", 6) == 0)
			c->fail_regex = usher_arena_strdup(a, trim(p + 6));
		return true;
	}
	if (strcmp(p, "ordered") == 0) {
		c->ordered = true;
		return true;
	}
	if (strncmp(p, "string", 6) == 0 && isspace((unsigned char)p[6])) {
		struct pq_lexer lx;
		struct pq_token t;

		pq_lexer_init(&lx, trim(p + 6), a);
		pq_lexer_next(&lx, &t);
		if (t.type != T_STRING) {
			*why = "expect string needs a quoted string";
			return false;
		}
		c->string = true;
		c->string_v = t.text;
		return true;
	}
	if (strncmp(p, "range vector", 12) == 0) {
		char from[64], to[64], step[64];
		char *q = trim(p + 12);
		int i;
		char *dst[] = {from, to, step};
		static const char *const kw[] = {"from", "to", "step"};

		for (i = 0; i < 3; i++) {
			size_t kl = strlen(kw[i]), n;

			if (strncmp(q, kw[i], kl) != 0 || !isspace((unsigned char)q[kl])) {
				*why = "expected \"expect range vector from <t> to <t> step <d>\"";
				return false;
			}
			q = trim(q + kl);
			n = strcspn(q, " \t");
			if (n >= 64) {
				*why = "bad time";
				return false;
			}
			memcpy(dst[i], q, n);
			dst[i][n] = '\0';
			q = trim(q + n);
		}
		if (!parse_time(from, &c->rv_from) || !parse_time(to, &c->rv_to) ||
		    !parse_time(step, &c->rv_step) || c->rv_step <= 0) {
			*why = "bad time in expect range vector";
			return false;
		}
		c->range_vector = true;
		return true;
	}
	if (strncmp(p, "warn", 4) == 0 || strncmp(p, "info", 4) == 0 ||
	    strncmp(p, "no_warn", 7) == 0 || strncmp(p, "no_info", 7) == 0)
		return true; /* annotations are not checked */
	*why = "unknown expect line";
	return false;
}

static void add_expected(struct usher_arena *a, struct eval_cmd *c, const struct usher_labels *l,
			 const struct seq *vals, size_t line)
{
	if (c->ne == c->cape) {
		size_t cap = c->cape ? c->cape * 2 : 8;
		struct expect_series *ne = usher_arena_alloc(a, cap * sizeof(*ne));

		if (c->ne)
			memcpy(ne, c->e, c->ne * sizeof(*ne));
		c->e = ne;
		c->cape = cap;
	}
	c->e[c->ne].l = *l;
	c->e[c->ne].vals = *vals;
	c->e[c->ne].line = line;
	c->ne++;
}

struct load_series {
	struct usher_labels l;
	struct seq vals;
	size_t line;
};

/* The series lines after a load command. A series named twice has its
 * later values win at the same time (as Prometheus' test storage keeps the
 * last append). Native-histogram values ({{…}}) are skipped: usher stores
 * floats only, so a series mixing both keeps just its floats. */
static void load_block(struct run *r, char **lines, size_t nlines, size_t *i, int64_t interval)
{
	struct load_series *ls = NULL;
	size_t n = 0, cap = 0, j, k;

	while (*i + 1 < nlines && *lines[*i + 1]) {
		struct usher_labels lbl;
		struct seq vals;
		const char *why = NULL;

		(*i)++;
		if (!parse_series(r->a, lines[*i], &lbl, &vals, &why)) {
			report(r, *i + 1, "bad series: %s", why);
			r->st->failed++;
			continue;
		}
		for (j = 0; j < n; j++)
			if (usher_labels_equal(&ls[j].l, &lbl))
				break;
		if (j == n) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				ls = usher_realloc(ls, cap * sizeof(*ls));
			}
			ls[n].l = lbl;
			ls[n].vals = vals;
			ls[n].line = *i + 1;
			n++;
			continue;
		}
		ls[j].vals.histogram |= vals.histogram;
		for (k = 0; k < vals.n; k++) {
			if (vals.v[k].omitted)
				continue;
			while (ls[j].vals.n <= k)
				seq_push(r->a, &ls[j].vals, 0, true);
			ls[j].vals.v[k] = vals.v[k];
		}
	}
	for (j = 0; j < n; j++) {
		for (k = 0; k < ls[j].vals.n; k++) {
			struct usher_error err;

			if (ls[j].vals.v[k].omitted)
				continue;
			usher_error_clear(&err);
			if (usher_tsdb_append(r->db, &ls[j].l, (int64_t)k * interval,
					      ls[j].vals.v[k].v, &err)) {
				report(r, ls[j].line, "cannot load sample: %s", err.msg);
				r->st->failed++;
				break;
			}
		}
	}
	free(ls);
}

static bool is_number_line(const char *s, double *v)
{
	size_t n = scan_float(s, v);

	return n && s[n] == '\0';
}

enum usher_err usher_promqltest_run_buf(const char *name, const char *buf,
					const struct usher_promqltest_known *known, bool verbose,
					FILE *out, struct usher_promqltest_stats *st)
{
	struct run r = {name, known, verbose, out, st, NULL, NULL, NULL};
	char **lines = NULL, *copy = usher_strdup(buf), *p, *next;
	size_t nlines = 0, cap = 0, i;
	struct usher_promql_options o;

	usher_promql_options_default(&o);
	r.eng = usher_promql_engine_new(&o);
	r.a = usher_arena_new();
	fresh_db(&r);
	for (p = copy; p; p = next) {
		next = strchr(p, '\n');
		if (next)
			*next++ = '\0';
		if (nlines == cap) {
			cap = cap ? cap * 2 : 256;
			lines = usher_realloc(lines, cap * sizeof(*lines));
		}
		p = trim(p);
		lines[nlines++] = *p == '#' ? p + strlen(p) : p;
	}
	for (i = 0; i < nlines; i++) {
		char *l = lines[i], *cmd;
		size_t lineno = i + 1, n;
		const char *why = NULL;

		if (!*l)
			continue;
		usher_arena_reset(r.a);
		n = strcspn(l, " \t");
		cmd = usher_arena_strndup(r.a, l, n);
		if (strcmp(cmd, "clear") == 0) {
			fresh_db(&r);
			continue;
		}
		if (strncmp(cmd, "load", 4) == 0) {
			int64_t interval;
			char *arg = trim(l + n);

			if (!parse_time(arg, &interval) || interval <= 0) {
				report(&r, lineno, "bad load interval \"%s\"", arg);
				st->failed++;
			}
			load_block(&r, lines, nlines, &i, interval);
			continue;
		}
		if (strncmp(cmd, "eval", 4) == 0) {
			struct eval_cmd c;
			bool bad = false;

			memset(&c, 0, sizeof(c));
			c.line = lineno;
			c.text = usher_arena_strdup(r.a, l);
			if (!parse_eval_head(r.a, l, &c, &why)) {
				report(&r, lineno, "%s", why);
				st->failed++;
				bad = true;
			}
			while (i + 1 < nlines && *lines[i + 1]) {
				char *d = lines[++i];
				struct usher_labels lbl;
				struct seq vals;

				if (bad)
					continue;
				if (strncmp(d, "expect", 6) == 0 &&
				    (isspace((unsigned char)d[6]) || !d[6])) {
					if (!parse_expect(r.a, d, &c, &why)) {
						report(&r, i + 1, "%s", why);
						st->failed++;
						bad = true;
					}
					continue;
				}
				if (strncmp(d, "expected_fail_message", 21) == 0) {
					c.fail_msg = usher_arena_strdup(r.a, trim(d + 21));
					continue;
				}
				if (strncmp(d, "expected_fail_regexp", 20) == 0) {
					c.fail_regex = usher_arena_strdup(r.a, trim(d + 20));
					continue;
				}
				if (c.ne == 0 && is_number_line(d, &c.scalar_v)) {
					c.scalar = true;
					continue;
				}
				if (!parse_series(r.a, d, &lbl, &vals, &why)) {
					report(&r, i + 1, "bad expected series: %s", why);
					st->failed++;
					bad = true;
					continue;
				}
				if (!c.range && !c.range_vector && vals.n > 1) {
					report(&r, i + 1,
					       "expecting multiple values in instant "
					       "evaluation not allowed");
					st->failed++;
					bad = true;
					continue;
				}
				add_expected(r.a, &c, &lbl, &vals, i + 1);
			}
			if (!bad)
				run_eval(&r, &c);
			continue;
		}
		report(&r, lineno, "unknown command \"%s\"", cmd);
		st->failed++;
	}
	usher_tsdb_free(r.db);
	usher_promql_engine_free(r.eng);
	usher_arena_free(r.a);
	free(lines);
	free(copy);
	return USHER_OK;
}

enum usher_err usher_promqltest_run_file(const char *path,
					 const struct usher_promqltest_known *known, bool verbose,
					 FILE *out, struct usher_promqltest_stats *st,
					 struct usher_error *err)
{
	struct usher_buf b;
	enum usher_err rc;

	usher_buf_init(&b, MAX_FILE);
	rc = read_file(path, &b, err);
	if (!rc)
		rc = usher_promqltest_run_buf(path, usher_buf_str(&b), known, verbose, out, st);
	usher_buf_free(&b);
	return rc;
}

bool usher_promqltest_parse_series(struct usher_arena *a, const char *line,
				   struct usher_labels *labels,
				   struct usher_promqltest_value **values, size_t *n,
				   const char **why)
{
	struct seq vals;
	size_t i;

	if (!parse_series(a, line, labels, &vals, why))
		return false;
	*values = usher_arena_alloc(a, (vals.n ? vals.n : 1) * sizeof(**values));
	for (i = 0; i < vals.n; i++) {
		(*values)[i].v = vals.v[i].v;
		(*values)[i].omitted = vals.v[i].omitted;
	}
	*n = vals.n;
	return true;
}
