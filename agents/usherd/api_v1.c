/* Prometheus' HTTP API (/api/v1/…) over usherd's series store and rules:
 * enough for Grafana to use usherd as a Prometheus data source, and for
 * scripts written against Prometheus. JSON shapes, parameter syntax, status
 * codes and error wording follow Prometheus (web/api/v1/api.go). */
#include "api_v1.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "promql/ast.h"
#include "promql/engine.h"
#include "rules/group.h"
#include "usher_version.h"

#define MAX_POINTS 11000 /* per series of a range query, as Prometheus */
#define MAX_PARAMS 64

struct usherd_api_v1 {
	struct usherd_rules *rules;
	usherd_targets_fn *targets;
	void *targets_arg;
	int64_t started_ms;
};

/* ---- parameters: the query string and a form-encoded body ---------------- */

struct params {
	size_t n;
	const char *name[MAX_PARAMS];
	const char *value[MAX_PARAMS];
	struct usher_arena *a;
};

static void param_add(void *arg, const char *name, const char *value)
{
	struct params *p = arg;

	if (p->n == MAX_PARAMS)
		return;
	p->name[p->n] = usher_arena_strdup(p->a, name);
	p->value[p->n] = usher_arena_strdup(p->a, value);
	p->n++;
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

/* Decodes one application/x-www-form-urlencoded component into a. */
static char *form_decode(struct usher_arena *a, const char *s, size_t len)
{
	char *out = usher_arena_alloc(a, len + 1);
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 &&
			   hexval(s[i + 2]) >= 0) {
			out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

static void params_load(struct params *p, const struct usher_http_request *req)
{
	const char *ct = usher_http_request_header(req, "Content-Type");

	usher_http_request_foreach_arg(req, param_add, p);
	if (strcmp(req->method, "POST") == 0 && ct &&
	    strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
		const char *s = req->body, *end = req->body + req->body_len;

		while (s < end && p->n < MAX_PARAMS) {
			const char *amp = memchr(s, '&', (size_t)(end - s)), *eq;
			const char *stop = amp ? amp : end;

			eq = memchr(s, '=', (size_t)(stop - s));
			if (stop > s) {
				p->name[p->n] = form_decode(p->a, s, (size_t)((eq ? eq : stop) - s));
				p->value[p->n] =
					eq ? form_decode(p->a, eq + 1, (size_t)(stop - eq - 1)) : "";
				p->n++;
			}
			s = stop + 1;
		}
	}
}

static const char *param(const struct params *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->name[i], name) == 0)
			return p->value[i];
	return NULL;
}

/* ---- responses -------------------------------------------------------------- */

static int api_error(struct usher_http_response *resp, const char *type, const char *msg)
{
	resp->status = strcmp(type, "bad_data") == 0    ? 400
		       : strcmp(type, "execution") == 0 ? 422
		       : strcmp(type, "timeout") == 0   ? 503
		       : strcmp(type, "not_found") == 0 ? 404
							: 500;
	usher_buf_reset(&resp->body);
	usher_buf_addstr(&resp->body, "{\"status\":\"error\",\"errorType\":\"");
	usher_buf_addstr(&resp->body, type);
	usher_buf_addstr(&resp->body, "\",\"error\":\"");
	usher_json_escape(&resp->body, msg);
	usher_buf_addstr(&resp->body, "\"}");
	return 0;
}

static int api_json(struct usher_http_response *resp, json_t *data)
{
	json_t *o = json_pack("{s:s,s:o}", "status", "success", "data", data);
	char *s = json_dumps(o, JSON_COMPACT);

	usher_buf_reset(&resp->body);
	if (!s || usher_buf_addstr(&resp->body, s) != USHER_OK) {
		free(s);
		json_decref(o);
		return api_error(resp, "internal", "response too large");
	}
	free(s);
	json_decref(o);
	return 0;
}

/* A timestamp as Prometheus writes it: seconds, up to 3 decimals. */
static void put_time(struct usher_buf *b, int64_t ms)
{
	int64_t s = ms / 1000, frac = ms % 1000;

	if (frac < 0) {
		frac += 1000;
		s--;
	}
	if (frac == 0)
		usher_buf_addf(b, "%lld", (long long)s);
	else if (frac % 100 == 0)
		usher_buf_addf(b, "%lld.%lld", (long long)s, (long long)(frac / 100));
	else if (frac % 10 == 0)
		usher_buf_addf(b, "%lld.%02lld", (long long)s, (long long)(frac / 10));
	else
		usher_buf_addf(b, "%lld.%03lld", (long long)s, (long long)frac);
}

static void put_point(struct usher_buf *b, int64_t t, double v)
{
	char num[40];

	usher_promql_format_value(v, num, sizeof(num));
	usher_buf_addc(b, '[');
	put_time(b, t);
	usher_buf_addstr(b, ",\"");
	usher_buf_addstr(b, num);
	usher_buf_addstr(b, "\"]");
}

static void put_labels(struct usher_buf *b, const struct usher_labels *l)
{
	size_t i;

	usher_buf_addc(b, '{');
	for (i = 0; i < l->n; i++) {
		if (i)
			usher_buf_addc(b, ',');
		usher_buf_addc(b, '"');
		usher_json_escape(b, l->v[i].name);
		usher_buf_addstr(b, "\":\"");
		usher_json_escape(b, l->v[i].value);
		usher_buf_addc(b, '"');
	}
	usher_buf_addc(b, '}');
}

static int put_result(struct usher_http_response *resp, const struct usher_promql_result *r)
{
	struct usher_buf *b = &resp->body;
	size_t i, j;

	usher_buf_reset(b);
	usher_buf_addstr(b, "{\"status\":\"success\",\"data\":{\"resultType\":\"");
	switch (r->type) {
	case USHER_PQ_TYPE_SCALAR:
		usher_buf_addstr(b, "scalar\",\"result\":");
		put_point(b, r->t, r->scalar);
		break;
	case USHER_PQ_TYPE_STRING:
		usher_buf_addstr(b, "string\",\"result\":[");
		put_time(b, r->t);
		usher_buf_addstr(b, ",\"");
		usher_json_escape(b, r->string ? r->string : "");
		usher_buf_addstr(b, "\"]");
		break;
	case USHER_PQ_TYPE_VECTOR:
		usher_buf_addstr(b, "vector\",\"result\":[");
		for (i = 0; i < r->n; i++) {
			usher_buf_addstr(b, i ? ",{\"metric\":" : "{\"metric\":");
			put_labels(b, &r->vector[i].labels);
			usher_buf_addstr(b, ",\"value\":");
			put_point(b, r->vector[i].t, r->vector[i].v);
			usher_buf_addc(b, '}');
		}
		usher_buf_addc(b, ']');
		break;
	default:
		usher_buf_addstr(b, "matrix\",\"result\":[");
		for (i = 0; i < r->n; i++) {
			const struct usher_promql_series *s = &r->matrix[i];

			usher_buf_addstr(b, i ? ",{\"metric\":" : "{\"metric\":");
			put_labels(b, &s->labels);
			usher_buf_addstr(b, ",\"values\":[");
			for (j = 0; j < s->n; j++) {
				if (j)
					usher_buf_addc(b, ',');
				put_point(b, s->t[j], s->v[j]);
			}
			usher_buf_addstr(b, "]}");
		}
		usher_buf_addc(b, ']');
		break;
	}
	if (usher_buf_addstr(b, "}}") != USHER_OK)
		return api_error(resp, "execution", "the result is too large to send; narrow the query");
	return 0;
}

/* ---- parsing times, durations --------------------------------------------- */

/* Prometheus' parseTime: a Unix timestamp in seconds (fractions allowed) or
 * RFC 3339. */
static bool parse_time(const char *s, int64_t *ms)
{
	char *end;
	double v;
	int y, mo, d, h, mi, sec;

	if (!s || !*s)
		return false;
	v = strtod(s, &end);
	if (*end == '\0' && isfinite(v)) {
		*ms = (int64_t)llround(v * 1000.0);
		return true;
	}
	/* 2026-11-28T06:00:00Z, with optional .fff and a Z or ±hh:mm offset */
	{
		const char *p = s;
		int64_t frac_ms = 0, off_min = 0;
		struct tm tm = {0};
		int field[6], k;
		const char seps[6] = {'-', '-', 'T', ':', ':', 0};

		for (k = 0; k < 6; k++) {
			char *e;
			long x = strtol(p, &e, 10);

			if (e == p)
				return false;
			field[k] = (int)x;
			p = e;
			if (k < 5) {
				if (*p != seps[k] && !(k == 2 && (*p == 't' || *p == ' ')))
					return false;
				p++;
			}
		}
		y = field[0], mo = field[1], d = field[2], h = field[3], mi = field[4],
		sec = field[5];
		if (*p == '.') {
			int digits = 0;

			p++;
			while (*p >= '0' && *p <= '9') {
				if (digits < 3)
					frac_ms = frac_ms * 10 + (*p - '0');
				digits++;
				p++;
			}
			for (; digits < 3; digits++)
				frac_ms *= 10;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p == '-' ? -1 : 1;

			if (!(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' &&
			      p[3] == ':' && p[4] >= '0' && p[4] <= '9' && p[5] >= '0' &&
			      p[5] <= '9'))
				return false;
			off_min = sign * (((p[1] - '0') * 10 + (p[2] - '0')) * 60 +
					  (p[4] - '0') * 10 + (p[5] - '0'));
			p += 6;
		} else {
			return false;
		}
		if (*p)
			return false;
		tm.tm_year = y - 1900;
		tm.tm_mon = mo - 1;
		tm.tm_mday = d;
		tm.tm_hour = h;
		tm.tm_min = mi;
		tm.tm_sec = sec;
		*ms = ((int64_t)timegm(&tm) - off_min * 60) * 1000 + frac_ms;
		return true;
	}
}

/* Prometheus' parseDuration: seconds as a float, or a PromQL duration. */
static bool parse_step(const char *s, int64_t *ms)
{
	char *end;
	double v;

	if (!s || !*s)
		return false;
	v = strtod(s, &end);
	if (*end == '\0' && isfinite(v)) {
		if (v * 1000.0 > (double)USHER_PQ_MAX_DURATION_MS)
			return false;
		*ms = (int64_t)llround(v * 1000.0);
		return true;
	}
	return usher_promql_parse_duration(s, strlen(s), ms) == USHER_OK;
}

/* ---- /api/v1/query, /api/v1/query_range ----------------------------------- */

static int query_failed(struct usher_http_response *resp, const struct usher_promql_result *r,
			const struct usher_error *err, enum usher_err rc)
{
	const char *type = r->error_type ? r->error_type
			   : rc == USHER_ERR_TIMEOUT ? "timeout"
			   : rc == USHER_ERR_INVALID ? "bad_data"
						     : "execution";

	return api_error(resp, type, usher_error_msg(err, rc));
}

static int serve_query(void *arg, const struct usher_http_request *req,
		       struct usher_http_response *resp)
{
	struct usherd_api_v1 *api = arg;
	struct params p = {.a = usher_arena_new()};
	struct usher_promql_result r = {0};
	struct usher_storage st;
	struct usher_error err;
	const char *q, *ts;
	int64_t t = usher_now_ms();
	enum usher_err rc;
	int ret;

	usher_error_clear(&err);
	params_load(&p, req);
	q = param(&p, "query");
	ts = param(&p, "time");
	if (!q || !*q) {
		ret = api_error(resp, "bad_data", "invalid parameter \"query\": query is empty");
		goto out;
	}
	if (ts && *ts && !parse_time(ts, &t)) {
		ret = api_error(resp, "bad_data",
				"invalid parameter \"time\": cannot parse as a Unix timestamp or "
				"RFC 3339 time");
		goto out;
	}
	st = usher_tsdb_storage(usherd_rules_tsdb(api->rules));
	rc = usher_promql_eval_instant(usherd_rules_engine(api->rules), &st, q, t, &r, &err);
	ret = rc ? query_failed(resp, &r, &err, rc) : put_result(resp, &r);
	usher_promql_result_free(&r);
out:
	usher_arena_free(p.a);
	return ret;
}

static int serve_query_range(void *arg, const struct usher_http_request *req,
			     struct usher_http_response *resp)
{
	struct usherd_api_v1 *api = arg;
	struct params p = {.a = usher_arena_new()};
	struct usher_promql_result r = {0};
	struct usher_storage st;
	struct usher_error err;
	int64_t start, end, step;
	const char *q;
	enum usher_err rc;
	int ret;

	usher_error_clear(&err);
	params_load(&p, req);
	q = param(&p, "query");
	if (!q || !*q) {
		ret = api_error(resp, "bad_data", "invalid parameter \"query\": query is empty");
		goto out;
	}
	if (!parse_time(param(&p, "start"), &start)) {
		ret = api_error(resp, "bad_data", "invalid parameter \"start\": cannot parse as a "
						  "Unix timestamp or RFC 3339 time");
		goto out;
	}
	if (!parse_time(param(&p, "end"), &end)) {
		ret = api_error(resp, "bad_data", "invalid parameter \"end\": cannot parse as a "
						  "Unix timestamp or RFC 3339 time");
		goto out;
	}
	if (end < start) {
		ret = api_error(resp, "bad_data",
				"invalid parameter \"end\": end timestamp must not be before start time");
		goto out;
	}
	if (!parse_step(param(&p, "step"), &step)) {
		ret = api_error(resp, "bad_data", "invalid parameter \"step\": cannot parse as a "
						  "duration or a number of seconds");
		goto out;
	}
	if (step <= 0) {
		ret = api_error(resp, "bad_data",
				"invalid parameter \"step\": zero or negative query resolution step "
				"widths are not accepted. Try a positive integer");
		goto out;
	}
	if ((end - start) / step > MAX_POINTS) {
		ret = api_error(resp, "bad_data",
				"exceeded maximum resolution of 11,000 points per timeseries. Try "
				"decreasing the query resolution (?step=XX)");
		goto out;
	}
	st = usher_tsdb_storage(usherd_rules_tsdb(api->rules));
	rc = usher_promql_eval_range(usherd_rules_engine(api->rules), &st, q, start, end, step, &r,
				     &err);
	ret = rc ? query_failed(resp, &r, &err, rc) : put_result(resp, &r);
	usher_promql_result_free(&r);
out:
	usher_arena_free(p.a);
	return ret;
}

/* ---- /api/v1/series, /api/v1/labels, /api/v1/label/NAME/values -------------- */

/* Parses every match[] of p. On a bad selector, answers and returns false. */
struct selectors {
	struct usher_promql_expr *e[MAX_PARAMS];
	size_t n;
};

static bool parse_matches(const struct params *p, struct selectors *sel,
			  struct usher_http_response *resp, bool required)
{
	size_t i;

	sel->n = 0;
	for (i = 0; i < p->n; i++) {
		struct usher_error err;
		struct usher_promql_expr *e;

		if (strcmp(p->name[i], "match[]") != 0)
			continue;
		usher_error_clear(&err);
		if (usher_promql_parse(p->value[i], &e, &err) != USHER_OK) {
			api_error(resp, "bad_data", err.msg);
			return false;
		}
		if (e->root->kind != USHER_PQ_VECTOR_SELECTOR) {
			usher_promql_expr_free(e);
			api_error(resp, "bad_data", "invalid parameter \"match[]\": must be a series "
						    "selector");
			return false;
		}
		sel->e[sel->n++] = e;
	}
	if (required && sel->n == 0) {
		api_error(resp, "bad_data", "no match[] parameter provided");
		return false;
	}
	return true;
}

static void selectors_free(struct selectors *sel)
{
	size_t i;

	for (i = 0; i < sel->n; i++)
		usher_promql_expr_free(sel->e[i]);
	sel->n = 0;
}

/* The time range of a metadata request: start/end, else the whole store. */
static bool meta_range(const struct params *p, int64_t *mint, int64_t *maxt,
		       struct usher_http_response *resp)
{
	const char *s = param(p, "start"), *e = param(p, "end");

	*mint = INT64_MIN / 2;
	*maxt = INT64_MAX / 2;
	if (s && *s && !parse_time(s, mint)) {
		api_error(resp, "bad_data", "invalid parameter \"start\": cannot parse as a "
					    "Unix timestamp or RFC 3339 time");
		return false;
	}
	if (e && *e && !parse_time(e, maxt)) {
		api_error(resp, "bad_data", "invalid parameter \"end\": cannot parse as a "
					    "Unix timestamp or RFC 3339 time");
		return false;
	}
	return true;
}

/* The distinct label sets matching any selector, sorted, in a. */
static enum usher_err select_series(struct usherd_api_v1 *api, const struct selectors *sel,
				    int64_t mint, int64_t maxt, struct usher_arena *a,
				    struct usher_labels **out, size_t *nout, struct usher_error *err)
{
	struct usher_labels *all = NULL;
	size_t n = 0, cap = 0, i, j, budget = 50000000;

	for (i = 0; i < sel->n; i++) {
		const struct usher_promql_node *vs = sel->e[i]->root;
		struct usher_series *s;
		size_t ns;
		enum usher_err rc = usher_tsdb_select(usherd_rules_tsdb(api->rules),
						      vs->vs.matchers, vs->vs.nmatchers, mint, maxt,
						      a, &budget, &s, &ns, err);

		if (rc)
			return rc;
		if (n + ns > cap) {
			size_t ncap = (n + ns) * 2;
			struct usher_labels *v = usher_arena_alloc(a, ncap * sizeof(*v));

			if (n)
				memcpy(v, all, n * sizeof(*v));
			all = v;
			cap = ncap;
		}
		for (j = 0; j < ns; j++)
			all[n++] = s[j].labels;
	}
	/* sort and drop duplicates (a series matched by two selectors) */
	for (i = 1; i < n; i++) {
		struct usher_labels x = all[i];

		for (j = i; j > 0 && usher_labels_cmp(&all[j - 1], &x) > 0; j--)
			all[j] = all[j - 1];
		all[j] = x;
	}
	for (i = 0, j = 0; i < n; i++)
		if (j == 0 || !usher_labels_equal(&all[j - 1], &all[i]))
			all[j++] = all[i];
	*out = all;
	*nout = j;
	return USHER_OK;
}

static int serve_series(void *arg, const struct usher_http_request *req,
			struct usher_http_response *resp)
{
	struct usherd_api_v1 *api = arg;
	struct params p = {.a = usher_arena_new()};
	struct selectors sel;
	struct usher_labels *ls;
	struct usher_error err;
	int64_t mint, maxt;
	size_t n, i;
	int ret = 0;

	usher_error_clear(&err);
	params_load(&p, req);
	if (!parse_matches(&p, &sel, resp, true))
		goto out;
	if (!meta_range(&p, &mint, &maxt, resp))
		goto done;
	if (select_series(api, &sel, mint, maxt, p.a, &ls, &n, &err) != USHER_OK) {
		ret = api_error(resp, "execution", err.msg);
		goto done;
	}
	usher_buf_reset(&resp->body);
	usher_buf_addstr(&resp->body, "{\"status\":\"success\",\"data\":[");
	for (i = 0; i < n; i++) {
		if (i)
			usher_buf_addc(&resp->body, ',');
		put_labels(&resp->body, &ls[i]);
	}
	if (usher_buf_addstr(&resp->body, "]}") != USHER_OK)
		ret = api_error(resp, "execution", "too many series; narrow match[]");
done:
	selectors_free(&sel);
out:
	usher_arena_free(p.a);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names (name == NULL) or values of name over the series matching sel. */
static int serve_meta(struct usherd_api_v1 *api, const struct usher_http_request *req,
		      struct usher_http_response *resp, const char *name)
{
	struct params p = {.a = usher_arena_new()};
	struct selectors sel;
	const char **v = NULL;
	size_t n = 0, i;
	json_t *arr;
	int ret = 0;

	params_load(&p, req);
	if (!parse_matches(&p, &sel, resp, false))
		goto out;
	if (sel.n == 0) {
		if (name)
			usher_tsdb_label_values(usherd_rules_tsdb(api->rules), name, p.a, &v, &n);
		else
			usher_tsdb_label_names(usherd_rules_tsdb(api->rules), p.a, &v, &n);
	} else {
		struct usher_labels *ls;
		struct usher_error err;
		int64_t mint, maxt;
		size_t ns, j, cap = 0;

		usher_error_clear(&err);
		if (!meta_range(&p, &mint, &maxt, resp))
			goto done;
		if (select_series(api, &sel, mint, maxt, p.a, &ls, &ns, &err) != USHER_OK) {
			ret = api_error(resp, "execution", err.msg);
			goto done;
		}
		for (i = 0; i < ns; i++)
			cap += ls[i].n;
		v = usher_arena_alloc(p.a, (cap + 1) * sizeof(*v));
		for (i = 0; i < ns; i++)
			for (j = 0; j < ls[i].n; j++) {
				if (!name)
					v[n++] = ls[i].v[j].name;
				else if (strcmp(ls[i].v[j].name, name) == 0)
					v[n++] = ls[i].v[j].value;
			}
		qsort(v, n, sizeof(*v), cmp_str);
		for (i = 0, j = 0; i < n; i++)
			if (j == 0 || strcmp(v[j - 1], v[i]) != 0)
				v[j++] = v[i];
		n = j;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_string(v[i]));
	ret = api_json(resp, arr);
done:
	selectors_free(&sel);
out:
	usher_arena_free(p.a);
	return ret;
}

static int serve_labels(void *arg, const struct usher_http_request *req,
			struct usher_http_response *resp)
{
	return serve_meta(arg, req, resp, NULL);
}

static int serve_label_values(void *arg, const struct usher_http_request *req,
			      struct usher_http_response *resp)
{
	const char *prefix = "/api/v1/label/", *name, *slash;
	char buf[256];

	name = req->path + strlen(prefix);
	slash = strchr(name, '/');
	if (!slash || strcmp(slash, "/values") != 0 || slash == name ||
	    (size_t)(slash - name) >= sizeof(buf))
		return api_error(resp, "not_found", "unknown path; use /api/v1/label/NAME/values");
	memcpy(buf, name, (size_t)(slash - name));
	buf[slash - name] = '\0';
	if (!usher_label_name_valid(buf) && strcmp(buf, "__name__") != 0)
		return api_error(resp, "bad_data", "invalid label name");
	return serve_meta(arg, req, resp, buf);
}

/* ---- /api/v1/rules, /api/v1/alerts ------------------------------------------ */

static json_t *labels_obj(const struct usher_labels *l)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < l->n; i++)
		json_object_set_new(o, l->v[i].name, json_string(l->v[i].value));
	return o;
}

static json_t *rule_pairs_obj(const struct usher_rule_pair *v, size_t n)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < n; i++)
		json_object_set_new(o, v[i].name, json_string(v[i].value));
	return o;
}

static json_t *time_str(int64_t ms)
{
	char ts[40];

	if (ms == USHER_TIME_UNSET)
		return json_string("0001-01-01T00:00:00Z");
	usher_time_format_rfc3339(ms, ts, sizeof(ts));
	return json_string(ts);
}

/* Prometheus writes alert values with strconv's 'e' format. */
static json_t *value_e(double v)
{
	char s[48];

	if (isnan(v))
		return json_string("NaN");
	if (isinf(v))
		return json_string(v > 0 ? "+Inf" : "-Inf");
	{
		/* shortest %e that reads back exactly */
		int prec;

		for (prec = 0; prec < 17; prec++) {
			snprintf(s, sizeof(s), "%.*e", prec, v);
			if (strtod(s, NULL) == v)
				break;
		}
	}
	return json_string(s);
}

static json_t *alert_obj(const struct usher_rule_alert *al)
{
	json_t *o = json_object();

	json_object_set_new(o, "labels", labels_obj(&al->labels));
	json_object_set_new(o, "annotations", labels_obj(&al->annotations));
	json_object_set_new(o, "state", json_string(usher_alert_state_name(al->state)));
	json_object_set_new(o, "activeAt", time_str(al->active_at));
	if (al->keep_firing_since != USHER_TIME_UNSET)
		json_object_set_new(o, "keepFiringSince", time_str(al->keep_firing_since));
	json_object_set_new(o, "value", value_e(al->value));
	return o;
}

struct rules_walk {
	json_t *groups;  /* /api/v1/rules */
	json_t *alerts;  /* /api/v1/alerts */
	int want;        /* -1 all, USHER_RULE_ALERTING, USHER_RULE_RECORDING */
	struct usher_arena *a;
};

static void walk_group(void *arg, const struct usher_group *g)
{
	struct rules_walk *w = arg;
	const struct usher_rule_group *def = usher_group_def(g);
	struct usher_group_stats st;
	json_t *rules = json_array();
	size_t i, j;

	usher_group_stats(g, &st);
	for (i = 0; i < def->nrules; i++) {
		const struct usher_rule *rule = &def->rules[i];
		struct usher_rule_status rs;
		struct usher_rule_alert *al;
		size_t n;
		json_t *o, *alerts;
		enum usher_alert_state top = USHER_ALERT_INACTIVE;

		usher_group_rule_status(g, i, w->a, &rs);
		if (rule->type == USHER_RULE_ALERTING) {
			n = usher_group_alerts(g, i, w->a, &al);
			alerts = json_array();
			for (j = 0; j < n; j++) {
				/* resolved alerts kept for resending are not active */
				if (al[j].state == USHER_ALERT_INACTIVE)
					continue;
				if (al[j].state > top)
					top = al[j].state;
				json_array_append_new(alerts, alert_obj(&al[j]));
				if (w->alerts)
					json_array_append_new(w->alerts, alert_obj(&al[j]));
			}
		} else {
			alerts = NULL;
		}
		if (!w->groups || (w->want >= 0 && (int)rule->type != w->want)) {
			json_decref(alerts);
			continue;
		}
		o = json_object();
		if (rule->type == USHER_RULE_ALERTING) {
			json_object_set_new(o, "state", json_string(usher_alert_state_name(top)));
			json_object_set_new(o, "name", json_string(rule->name));
			json_object_set_new(o, "query", json_string(rule->expr_text));
			json_object_set_new(o, "duration", json_real((double)rule->for_ms / 1000.0));
			json_object_set_new(o, "keepFiringFor",
					    json_real((double)rule->keep_firing_for_ms / 1000.0));
			json_object_set_new(o, "labels",
					    rule_pairs_obj(rule->labels, rule->nlabels));
			json_object_set_new(o, "annotations",
					    rule_pairs_obj(rule->annotations, rule->nannotations));
			json_object_set_new(o, "alerts", alerts);
		} else {
			json_object_set_new(o, "name", json_string(rule->name));
			json_object_set_new(o, "query", json_string(rule->expr_text));
			json_object_set_new(o, "labels",
					    rule_pairs_obj(rule->labels, rule->nlabels));
		}
		json_object_set_new(o, "health", json_string(rs.health));
		if (rs.last_error && *rs.last_error)
			json_object_set_new(o, "lastError", json_string(rs.last_error));
		json_object_set_new(o, "evaluationTime",
				    json_real((double)rs.last_duration_ns / 1e9));
		json_object_set_new(o, "lastEvaluation", time_str(rs.last_eval_ms));
		json_object_set_new(o, "type", json_string(rule->type == USHER_RULE_ALERTING
								   ? "alerting"
								   : "recording"));
		json_array_append_new(rules, o);
	}
	if (w->groups) {
		json_t *go = json_object();

		json_object_set_new(go, "name", json_string(def->name));
		json_object_set_new(go, "file", json_string(def->file));
		json_object_set_new(go, "rules", rules);
		json_object_set_new(go, "interval",
				    json_real((double)usher_group_interval(g) / 1000.0));
		json_object_set_new(go, "limit", json_integer(def->limit > 0 ? def->limit : 0));
		json_object_set_new(go, "evaluationTime",
				    json_real((double)st.last_duration_ns / 1e9));
		json_object_set_new(go, "lastEvaluation", time_str(st.last_eval_ms));
		json_array_append_new(w->groups, go);
	} else {
		json_decref(rules);
	}
	usher_arena_reset(w->a);
}

static int serve_rules(void *arg, const struct usher_http_request *req,
		       struct usher_http_response *resp)
{
	struct usherd_api_v1 *api = arg;
	struct rules_walk w = {.groups = json_array(), .want = -1, .a = usher_arena_new()};
	const char *type = usher_http_request_arg(req, "type");

	if (type && strcmp(type, "alert") == 0)
		w.want = USHER_RULE_ALERTING;
	else if (type && strcmp(type, "record") == 0)
		w.want = USHER_RULE_RECORDING;
	else if (type && *type) {
		json_decref(w.groups);
		usher_arena_free(w.a);
		return api_error(resp, "bad_data", "invalid parameter \"type\": must be alert or "
						   "record");
	}
	usherd_rules_foreach_group(api->rules, walk_group, &w);
	usher_arena_free(w.a);
	return api_json(resp, json_pack("{s:o}", "groups", w.groups));
}

static int serve_alerts(void *arg, const struct usher_http_request *req,
			struct usher_http_response *resp)
{
	struct usherd_api_v1 *api = arg;
	struct rules_walk w = {.alerts = json_array(), .want = -1, .a = usher_arena_new()};

	(void)req;
	usherd_rules_foreach_group(api->rules, walk_group, &w);
	usher_arena_free(w.a);
	return api_json(resp, json_pack("{s:o}", "alerts", w.alerts));
}

/* ---- /api/v1/targets ----------------------------------------------------------- */

/* The latest sample of a selector, for target health. */
static bool latest(struct usherd_api_v1 *api, const char *metric, const char *job,
		   const char *instance, struct usher_arena *a, int64_t *t, double *v)
{
	struct usher_matcher m[3];
	struct usher_series *s;
	size_t n, k;
	bool found = false;

	usher_matcher_init(&m[0], USHER_MATCH_EQ, "__name__", metric, NULL);
	usher_matcher_init(&m[1], USHER_MATCH_EQ, "job", job, NULL);
	usher_matcher_init(&m[2], USHER_MATCH_EQ, "instance", instance, NULL);
	if (usher_tsdb_select(usherd_rules_tsdb(api->rules), m, 3, usher_now_ms() - 3600 * 1000,
			      INT64_MAX / 2, a, NULL, &s, &n, NULL) == USHER_OK) {
		for (k = 0; k < n; k++) {
			if (s[k].n && !usher_is_stale(s[k].v[s[k].n - 1])) {
				*t = s[k].t[s[k].n - 1];
				*v = s[k].v[s[k].n - 1];
				found = true;
				break;
			}
		}
	}
	for (k = 0; k < 3; k++)
		usher_matcher_fini(&m[k]);
	return found;
}

static int serve_targets(void *arg, const struct usher_http_request *req,
			 struct usher_http_response *resp)
{
	struct usherd_api_v1 *api = arg;
	struct usher_config *cfg = api->targets ? api->targets(api->targets_arg) : NULL;
	struct usher_arena *a = usher_arena_new();
	json_t *active = json_array();
	size_t i, j;

	(void)req;
	for (i = 0; cfg && i < cfg->nprobes; i++) {
		const struct usher_probe_conf *pc = &cfg->probes[i];
		bool scrape = strcmp(pc->type_name, "scrape") == 0;
		json_t *o = json_object(), *labels = json_object(), *disc = json_object();
		int64_t t = 0;
		double v = 0, dur = 0;
		int64_t td;
		bool have = latest(api, scrape ? "up" : "probe_success", pc->job, pc->instance, a,
				   &t, &v);
		char iv[32], to[32];

		latest(api, scrape ? "scrape_duration_seconds" : "probe_duration_seconds", pc->job,
		       pc->instance, a, &td, &dur);
		for (j = 0; j < pc->labels.n; j++)
			json_object_set_new(labels, pc->labels.v[j].key,
					    json_string(pc->labels.v[j].value));
		json_object_set_new(labels, "job", json_string(pc->job));
		json_object_set_new(labels, "instance", json_string(pc->instance));
		json_object_set_new(disc, "__address__", json_string(pc->instance));
		json_object_set_new(disc, "job", json_string(pc->job));
		json_object_set_new(disc, "__usher_probe_type", json_string(pc->type_name));
		json_object_set_new(o, "discoveredLabels", disc);
		json_object_set_new(o, "labels", labels);
		json_object_set_new(o, "scrapePool", json_string(pc->job));
		json_object_set_new(o, "scrapeUrl", json_string(pc->instance));
		json_object_set_new(o, "globalUrl", json_string(pc->instance));
		json_object_set_new(o, "lastError",
				    json_string(have && v == 0 ? "probe failed (see probe_failure_info)"
							       : ""));
		json_object_set_new(o, "lastScrape", have ? time_str(t) : time_str(USHER_TIME_UNSET));
		json_object_set_new(o, "lastScrapeDuration", json_real(dur));
		json_object_set_new(o, "health",
				    json_string(!have ? "unknown" : v == 1 ? "up" : "down"));
		usher_duration_format(pc->interval_ms, iv, sizeof(iv));
		usher_duration_format(pc->timeout_ms, to, sizeof(to));
		json_object_set_new(o, "scrapeInterval", json_string(iv));
		json_object_set_new(o, "scrapeTimeout", json_string(to));
		json_array_append_new(active, o);
		usher_arena_reset(a);
	}
	usher_config_free(cfg);
	usher_arena_free(a);
	return api_json(resp, json_pack("{s:o,s:[]}", "activeTargets", active, "droppedTargets"));
}

/* ---- status, and what Grafana asks for ---------------------------------------- */

static int serve_buildinfo(void *arg, const struct usher_http_request *req,
			   struct usher_http_response *resp)
{
	(void)arg;
	(void)req;
	return api_json(resp, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "version", USHER_VERSION,
					"revision", USHER_REVISION, "branch", "", "buildUser", "",
					"buildDate", "", "goVersion", "none (usherd is written in C)"));
}

static int serve_runtimeinfo(void *arg, const struct usher_http_request *req,
			     struct usher_http_response *resp)
{
	struct usherd_api_v1 *api = arg;
	struct usher_tsdb_stats st;
	size_t files, groups, rules;

	(void)req;
	usher_tsdb_stats(usherd_rules_tsdb(api->rules), &st);
	usherd_rules_counts(api->rules, &files, &groups, &rules);
	return api_json(resp, json_pack("{s:o,s:I,s:I,s:I,s:I}", "startTime",
					time_str(api->started_ms), "headSeries", (json_int_t)st.series,
					"ruleFiles", (json_int_t)files, "ruleGroups",
					(json_int_t)groups, "rules", (json_int_t)rules));
}

static int serve_empty_object(void *arg, const struct usher_http_request *req,
			      struct usher_http_response *resp)
{
	(void)arg;
	(void)req;
	return api_json(resp, json_object());
}

static int serve_empty_array(void *arg, const struct usher_http_request *req,
			     struct usher_http_response *resp)
{
	(void)arg;
	(void)req;
	return api_json(resp, json_array());
}

struct usherd_api_v1 *usherd_api_v1_register(struct usher_httpd *h, struct usherd_rules *rules,
					     usherd_targets_fn *targets, void *targets_arg)
{
	struct usherd_api_v1 *api = usher_calloc(1, sizeof(*api));
	static const char *const methods[] = {"GET", "POST"};
	size_t i;

	api->rules = rules;
	api->targets = targets;
	api->targets_arg = targets_arg;
	api->started_ms = usher_now_ms();
	for (i = 0; i < 2; i++) {
		usher_httpd_route(h, methods[i], "/api/v1/query", serve_query, api);
		usher_httpd_route(h, methods[i], "/api/v1/query_range", serve_query_range, api);
		usher_httpd_route(h, methods[i], "/api/v1/series", serve_series, api);
		usher_httpd_route(h, methods[i], "/api/v1/labels", serve_labels, api);
		usher_httpd_route(h, methods[i], "/api/v1/query_exemplars", serve_empty_array,
				  api);
	}
	usher_httpd_route(h, "GET", "/api/v1/label/", serve_label_values, api);
	usher_httpd_route(h, "GET", "/api/v1/rules", serve_rules, api);
	usher_httpd_route(h, "GET", "/api/v1/alerts", serve_alerts, api);
	usher_httpd_route(h, "GET", "/api/v1/targets", serve_targets, api);
	usher_httpd_route(h, "GET", "/api/v1/status/buildinfo", serve_buildinfo, api);
	usher_httpd_route(h, "GET", "/api/v1/status/runtimeinfo", serve_runtimeinfo, api);
	usher_httpd_route(h, "GET", "/api/v1/metadata", serve_empty_object, api);
	return api;
}

void usherd_api_v1_free(struct usherd_api_v1 *api)
{
	free(api);
}
