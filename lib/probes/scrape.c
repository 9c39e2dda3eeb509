/* App scrapes: scrape_configs into one scheduled instance per target, and
 * the scrape probe type: the HTTP exchange of probes/http.c on the loop,
 * the body parsed by metrics/textparse.c and re-exposed through
 * metrics/ingest.c with Prometheus' label and sample_limit semantics. */
#include "probes/scrape.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "metrics/ingest.h"
#include "metrics/textparse.h"

#define DEFAULT_BODY_LIMIT "32MiB"
/* Lines of scraped bodies may be long (label values); bounded still. */
#define SCRAPE_MAX_LINE   (1024 * 1024)
#define SCRAPE_MAX_LABELS 128

/* ---- options ------------------------------------------------------------ */

static usher_opt_parse_fn parse_params;

#define BA_OFF(f) offsetof(struct usher_http_basic_auth, f)
static const struct usher_option basic_auth_options[] = {
    {.key = "username", .type = USHER_OPT_STR, .offset = BA_OFF(username), .help = "user name"},
    {.key = "password",
     .type = USHER_OPT_SECRET,
     .offset = BA_OFF(password),
     .help = "password, best as ${env:NAME} or ${file:/path}"},
    USHER_OPT_END,
};

#define ST_OFF(f) offsetof(struct usher_scrape_static, f)
static const struct usher_option static_options[] = {
    {.key = "targets",
     .type = USHER_OPT_STRLIST,
     .offset = ST_OFF(targets),
     .flags = USHER_OPT_REQUIRED,
     .help = "host:port of each target; the instance label"},
    {.key = "labels",
     .type = USHER_OPT_STRMAP,
     .offset = ST_OFF(labels),
     .help = "labels added to every sample of these targets"},
    USHER_OPT_END,
};

#define SC_OFF(f) offsetof(struct usher_scrape_conf, f)
const struct usher_option usher_scrape_config_options[] = {
    {.key = "job_name",
     .type = USHER_OPT_STR,
     .offset = SC_OFF(job_name),
     .flags = USHER_OPT_REQUIRED,
     .help = "the job label of every target; unique"},
    {.key = "scrape_interval",
     .type = USHER_OPT_DURATION,
     .offset = SC_OFF(scrape_interval_ms),
     .flags = USHER_OPT_POSITIVE,
     .help = "how often (default global.scrape_interval)"},
    {.key = "scrape_timeout",
     .type = USHER_OPT_DURATION,
     .offset = SC_OFF(scrape_timeout_ms),
     .flags = USHER_OPT_POSITIVE,
     .help = "how long a scrape may take, at most scrape_interval (default "
	     "global.scrape_timeout)"},
    {.key = "metrics_path",
     .type = USHER_OPT_STR,
     .offset = SC_OFF(metrics_path),
     .def = "/metrics",
     .help = "the path requested"},
    {.key = "scheme",
     .type = USHER_OPT_STR,
     .offset = SC_OFF(scheme),
     .def = "http",
     .help = "http or https"},
    {.key = "params",
     .type = USHER_OPT_CUSTOM,
     .offset = SC_OFF(params),
     .parse = parse_params,
     .help = "query parameters: name: value or name: [values]"},
    {.key = "static_configs",
     .type = USHER_OPT_LIST,
     .offset = SC_OFF(static_configs),
     .sub = static_options,
     .sub_size = sizeof(struct usher_scrape_static),
     .help = "the targets, with labels"},
    {.key = "sample_limit",
     .type = USHER_OPT_INT,
     .offset = SC_OFF(sample_limit),
     .def = "0",
     .help = "a scrape with more samples fails whole (up 0); 0 for no limit"},
    {.key = "honor_labels",
     .type = USHER_OPT_BOOL,
     .offset = SC_OFF(honor_labels),
     .def = "false",
     .help = "keep the target's own job, instance, ... labels instead of renaming them "
	     "exported_*"},
    {.key = "basic_auth",
     .type = USHER_OPT_SECTION,
     .offset = SC_OFF(basic_auth),
     .sub = basic_auth_options,
     .help = "HTTP basic authentication"},
    {.key = "bearer_token",
     .type = USHER_OPT_SECRET,
     .offset = SC_OFF(bearer_token),
     .help = "sent as Authorization: Bearer; best as ${env:NAME} or ${file:/path}"},
    {.key = "tls_config",
     .type = USHER_OPT_SECTION,
     .offset = SC_OFF(tls_config),
     .sub = usher_tls_client_options,
     .help = "TLS client settings for https"},
    {.key = "body_size_limit",
     .type = USHER_OPT_SIZE,
     .offset = SC_OFF(body_size_limit),
     .def = DEFAULT_BODY_LIMIT,
     .flags = USHER_OPT_POSITIVE,
     .help = "a larger (uncompressed) answer fails the scrape"},
    {.key = "follow_redirects",
     .type = USHER_OPT_BOOL,
     .offset = SC_OFF(follow_redirects),
     .def = "true",
     .help = "follow up to 10 redirects"},
    USHER_OPT_END,
};

/* params: {name: value} or {name: [value, ...]}, as Prometheus' url.Values. */
static enum usher_err parse_params(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				   void *field)
{
	struct usher_strmap *m = field;
	enum usher_err rc = USHER_OK;
	size_t i, j, total = 0;

	m->n = 0;
	if (usher_ynode_is_null(n))
		return USHER_OK;
	if (n->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, n,
				       "params: expected a mapping of names to values, got a %s",
				       usher_ynode_kind_name(n->kind));
	for (i = 0; i < n->n; i++)
		total += n->pairs[i].val->kind == USHER_Y_SEQ ? n->pairs[i].val->n : 1;
	m->v = usher_arena_alloc(ctx->arena, (total ? total : 1) * sizeof(*m->v));
	for (i = 0; i < n->n; i++) {
		const struct usher_ynode *v = n->pairs[i].val;

		if (v->kind == USHER_Y_SCALAR) {
			m->v[m->n].key = n->pairs[i].key->value;
			m->v[m->n++].value = v->value;
			continue;
		}
		if (v->kind != USHER_Y_SEQ) {
			rc = usher_cfg_error(ctx, v,
					     "params.%s: expected a string or a list of strings",
					     n->pairs[i].key->value);
			continue;
		}
		for (j = 0; j < v->n; j++) {
			if (v->items[j]->kind != USHER_Y_SCALAR) {
				rc = usher_cfg_error(ctx, v->items[j],
						     "params.%s: expected a string",
						     n->pairs[i].key->value);
				continue;
			}
			m->v[m->n].key = n->pairs[i].key->value;
			m->v[m->n++].value = v->items[j]->value;
		}
	}
	return rc;
}

/* ---- checks ------------------------------------------------------------- */

static const struct usher_ynode *at(const struct usher_ynode *map, const char *key)
{
	const struct usher_ynode *n = usher_ynode_get(map, key);

	return n ? n : map;
}

static bool all_digits(const char *s, size_t n)
{
	size_t i;

	if (!n)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* host:port, [v6]:port: what Prometheus' static targets are (no scheme, no
 * path). Returns a reason when t is not one. */
static const char *target_problem(const char *t)
{
	const char *colon, *host = t, *p;
	size_t hl;
	long port;

	if (!*t)
		return "empty target";
	if (strstr(t, "://"))
		return "no scheme here: set scheme (http or https) instead";
	if (strpbrk(t, "/?#@ \t"))
		return "expected host:port, without a path, query or user";
	if (t[0] == '[') {
		const char *close = strchr(t, ']');

		if (!close || close == t + 1)
			return "an IPv6 address goes in brackets: [::1]:9100";
		for (p = t + 1; p < close; p++)
			if (!strchr("0123456789abcdefABCDEF:.%", *p))
				return "invalid IPv6 address";
		if (close[1] != ':')
			return "missing :port";
		colon = close + 1;
		hl = (size_t)(close - t) + 1;
	} else {
		colon = strrchr(t, ':');
		if (!colon)
			return "missing :port (host:port, e.g. api-1:8080)";
		if (strchr(t, ':') != colon)
			return "an IPv6 address goes in brackets: [::1]:9100";
		hl = (size_t)(colon - host);
		if (!hl)
			return "missing host before :port";
		for (p = host; p < colon; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_'))
				return "invalid character in host name";
	}
	(void)hl;
	if (!all_digits(colon + 1, strlen(colon + 1)) || strlen(colon + 1) > 5)
		return "the port must be a number";
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return "the port must be between 1 and 65535";
	return NULL;
}

static bool path_ok(const char *p)
{
	if (p[0] != '/')
		return false;
	for (; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' || *p == 0x7f)
			return false;
	return true;
}

static enum usher_err check_readable(struct usher_cfgctx *ctx, const struct usher_ynode *tls,
				     const char *key, const char *path)
{
	if (!path || access(path, R_OK) == 0)
		return USHER_OK;
	return usher_cfg_error(ctx, at(tls, key), "tls_config.%s: cannot read %s: %s", key, path,
			       strerror(errno));
}

/* Percent-encodes s into b (RFC 3986 unreserved characters stay). */
static void url_encode(struct usher_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			usher_buf_addc(b, (char)c);
		} else {
			usher_buf_addc(b, '%');
			usher_buf_addc(b, hex[c >> 4]);
			usher_buf_addc(b, hex[c & 15]);
		}
	}
}

/* Fills the request of one target from its job. */
static void build_request(struct usher_cfgctx *ctx, const struct usher_scrape_conf *sc,
			  struct usher_scrape_target *t, int64_t timeout_ms)
{
	struct usher_http_opts *o = &t->http;
	struct usher_http_status_range *ok = usher_arena_alloc(ctx->arena, sizeof(*ok));
	struct usher_buf b;
	char secs[32];
	size_t i;

	usher_buf_init(&b, 1 << 20);
	usher_buf_addf(&b, "%s://%s%s", sc->scheme, t->target, sc->metrics_path);
	for (i = 0; i < sc->params.n; i++) {
		usher_buf_addc(&b, i ? '&' : '?');
		url_encode(&b, sc->params.v[i].key);
		usher_buf_addc(&b, '=');
		url_encode(&b, sc->params.v[i].value);
	}
	o->url = usher_arena_strdup(ctx->arena, usher_buf_str(&b));
	usher_buf_free(&b);
	o->method = "GET";
	snprintf(secs, sizeof(secs), "%g", (double)timeout_ms / 1000.0);
	o->headers.n = 2;
	o->headers.v = usher_arena_alloc(ctx->arena, 2 * sizeof(*o->headers.v));
	o->headers.v[0].key = "Accept";
	o->headers.v[0].value = USHER_SCRAPE_ACCEPT;
	o->headers.v[1].key = "X-Prometheus-Scrape-Timeout-Seconds";
	o->headers.v[1].value = usher_arena_strdup(ctx->arena, secs);
	o->follow_redirects = sc->follow_redirects;
	/* Prometheus accepts 200 only */
	ok->lo = ok->hi = 200;
	o->valid_status_codes.n = 1;
	o->valid_status_codes.v = ok;
	o->tls = sc->tls_config;
	o->basic_auth = sc->basic_auth;
	o->bearer_token = sc->bearer_token;
	o->body_size_limit = sc->body_size_limit;
	o->ip_protocol = 4;
	o->ip_protocol_fallback = true;
	o->keep_body = true;
}

/* Checks one job and appends its targets as probe entries. */
static enum usher_err add_job(struct usher_cfgctx *ctx, const struct usher_ynode *item,
			      struct usher_scrape_conf *sc, const struct usher_list *done)
{
	const struct usher_config *cfg = ctx->root;
	const struct usher_scrape_conf *prev = done->v;
	const struct usher_ynode *tls = usher_ynode_get(item, "tls_config");
	const struct usher_ynode *statics = usher_ynode_get(item, "static_configs");
	const struct usher_scrape_static *st = sc->static_configs.v;
	enum usher_err rc = USHER_OK;
	int64_t timeout;
	size_t i, j, k, l;
	char a[32], b[32];

	if (!*sc->job_name)
		rc = usher_cfg_error(ctx, at(item, "job_name"), "job_name must not be empty");
	for (i = 0; i < done->n; i++)
		if (strcmp(prev[i].job_name, sc->job_name) == 0)
			rc = usher_cfg_error(ctx, at(item, "job_name"),
					     "duplicate job_name \"%s\" (first at line %d)",
					     sc->job_name, prev[i].line);
	if (strcmp(sc->scheme, "http") != 0 && strcmp(sc->scheme, "https") != 0)
		rc = usher_cfg_error(ctx, at(item, "scheme"), "scheme \"%s\" is not http or https",
				     sc->scheme);
	if (!path_ok(sc->metrics_path))
		rc = usher_cfg_error(ctx, at(item, "metrics_path"),
				     "metrics_path \"%s\" must be a path starting with / (query "
				     "parameters go in params)",
				     sc->metrics_path);
	if (!sc->scrape_interval_ms)
		sc->scrape_interval_ms = cfg->global.scrape_interval_ms;
	if (!sc->scrape_timeout_ms) {
		/* as Prometheus: the global timeout, unless the interval is shorter */
		sc->scrape_timeout_ms = cfg->global.scrape_timeout_ms;
		if (sc->scrape_timeout_ms > sc->scrape_interval_ms)
			sc->scrape_timeout_ms = sc->scrape_interval_ms;
	} else if (sc->scrape_timeout_ms > sc->scrape_interval_ms) {
		usher_duration_format(sc->scrape_timeout_ms, a, sizeof(a));
		usher_duration_format(sc->scrape_interval_ms, b, sizeof(b));
		rc = usher_cfg_error(ctx, at(item, "scrape_timeout"),
				     "scrape_timeout %s is longer than scrape_interval %s", a, b);
	}
	if (sc->sample_limit < 0)
		rc = usher_cfg_error(ctx, at(item, "sample_limit"),
				     "sample_limit must be 0 (no limit) or more");
	if (sc->bearer_token && sc->basic_auth.username)
		rc = usher_cfg_error(ctx, at(item, "bearer_token"),
				     "set basic_auth or bearer_token, not both");
	if (sc->basic_auth.password && !sc->basic_auth.username)
		rc = usher_cfg_error(ctx, at(item, "basic_auth"),
				     "basic_auth: password needs a username");
	if (sc->tls_config.key_file && !sc->tls_config.cert_file)
		rc = usher_cfg_error(ctx, at(tls, "key_file"),
				     "tls_config: key_file needs cert_file");
	if (check_readable(ctx, tls, "ca_file", sc->tls_config.ca_file) ||
	    check_readable(ctx, tls, "cert_file", sc->tls_config.cert_file) ||
	    check_readable(ctx, tls, "key_file", sc->tls_config.key_file))
		rc = USHER_ERR_INVALID;
	for (i = 0; i < sc->static_configs.n; i++) {
		const struct usher_ynode *sn =
		    statics && statics->kind == USHER_Y_SEQ && i < statics->n ? statics->items[i]
									      : item;
		const struct usher_ynode *tn = usher_ynode_get(sn, "targets");

		if (usher_config_check_labels(ctx, usher_ynode_get(sn, "labels"), &st[i].labels))
			rc = USHER_ERR_INVALID;
		for (j = 0; j < st[i].targets.n; j++) {
			const char *t = st[i].targets.v[j], *why = target_problem(t);
			const struct usher_ynode *at_t = tn && tn->kind == USHER_Y_SEQ && j < tn->n
							     ? tn->items[j]
							     : at(sn, "targets");
			bool dup = false;

			if (why) {
				rc = usher_cfg_error(ctx, at_t, "target \"%s\": %s", t, why);
				continue;
			}
			for (k = 0; k <= i && !dup; k++)
				for (l = 0; l < (k == i ? j : st[k].targets.n) && !dup; l++)
					dup = strcmp(st[k].targets.v[l], t) == 0;
			if (dup)
				rc = usher_cfg_error(ctx, at_t,
						     "target \"%s\" is listed twice in job %s", t,
						     sc->job_name);
		}
	}
	if (rc)
		return rc;

	/* a timeout equal to the interval (Prometheus allows it) still ends a
	 * little before the next scrape is due */
	timeout = sc->scrape_timeout_ms;
	if (timeout >= sc->scrape_interval_ms)
		timeout = sc->scrape_interval_ms - sc->scrape_interval_ms / 10;
	if (timeout <= 0)
		timeout = 1;
	for (i = 0; i < sc->static_configs.n; i++) {
		const struct usher_ynode *sn =
		    statics && statics->kind == USHER_Y_SEQ && i < statics->n ? statics->items[i]
									      : item;
		const struct usher_ynode *tn = usher_ynode_get(sn, "targets");

		for (j = 0; j < st[i].targets.n; j++) {
			struct usher_scrape_target *t = usher_arena_zalloc(ctx->arena, sizeof(*t));
			struct usher_probe_conf *pc = usher_config_add_probe(ctx);
			const struct usher_ynode *at_t =
			    tn && tn->kind == USHER_Y_SEQ && j < tn->n ? tn->items[j] : sn;

			t->job = sc;
			t->target = st[i].targets.v[j];
			build_request(ctx, sc, t, timeout);
			pc->name = usher_arena_printf(ctx->arena, "%s/%s", sc->job_name, t->target);
			pc->type_name = usher_probe_scrape.name;
			pc->type = &usher_probe_scrape;
			pc->interval_ms = sc->scrape_interval_ms;
			pc->timeout_ms = timeout;
			pc->labels = st[i].labels;
			pc->job = usher_strmap_get(&pc->labels, "job");
			if (!pc->job)
				pc->job = sc->job_name;
			pc->instance = usher_strmap_get(&pc->labels, "instance");
			if (!pc->instance)
				pc->instance = t->target;
			pc->opts = t;
			pc->line = at_t->line;
			pc->col = at_t->col;
		}
	}
	return USHER_OK;
}

enum usher_err usher_scrape_parse_configs(struct usher_cfgctx *ctx, const struct usher_ynode *n,
					  void *field)
{
	struct usher_list *l = field;
	struct usher_scrape_conf *v;
	enum usher_err rc = USHER_OK;
	size_t i;

	l->n = 0;
	if (usher_ynode_is_null(n))
		return USHER_OK;
	if (n->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, n, "scrape_configs: expected a list, got a %s",
				       usher_ynode_kind_name(n->kind));
	l->v = v = usher_arena_zalloc(ctx->arena, (n->n ? n->n : 1) * sizeof(*v));
	for (i = 0; i < n->n; i++) {
		struct usher_scrape_conf *sc = &v[l->n];

		if (n->items[i]->kind != USHER_Y_MAP) {
			rc = usher_cfg_error(ctx, n->items[i],
					     "scrape_configs: expected a mapping, got a %s",
					     usher_ynode_kind_name(n->items[i]->kind));
			continue;
		}
		sc->line = n->items[i]->line;
		sc->col = n->items[i]->col;
		if (usher_opts_apply1(ctx, usher_scrape_config_options, sc, n->items[i]) ||
		    add_job(ctx, n->items[i], sc, l)) {
			rc = USHER_ERR_INVALID;
			continue;
		}
		l->n++;
	}
	return rc;
}

/* ---- the probe type ----------------------------------------------------- */

static const struct usher_metric_desc desc_scraped = {"scrape_samples_scraped", USHER_METRIC_GAUGE,
						      "The number of samples the target exposed"};
static const struct usher_metric_desc desc_post_relabel = {
    "scrape_samples_post_metric_relabeling", USHER_METRIC_GAUGE,
    "The number of samples remaining after metric relabeling was applied"};
static const struct usher_metric_desc desc_series_added = {
    "scrape_series_added", USHER_METRIC_GAUGE,
    "The approximate number of new series in this scrape"};
/* The scheduler's generic families (probes/scheduler.c), declared to
 * ingests so re-exposed input cannot give them another type. */
static const struct usher_metric_desc sched_up = {"up", USHER_METRIC_GAUGE, NULL};
static const struct usher_metric_desc sched_duration = {"scrape_duration_seconds",
							USHER_METRIC_GAUGE, NULL};
static const struct usher_metric_desc sched_success = {"probe_success", USHER_METRIC_GAUGE, NULL};
static const struct usher_metric_desc sched_probe_duration = {"probe_duration_seconds",
							      USHER_METRIC_GAUGE, NULL};
static const struct usher_metric_desc sched_failure = {"probe_failure_info", USHER_METRIC_GAUGE,
						       NULL};
static const struct usher_metric_desc sched_runs = {"usher_probe_runs", USHER_METRIC_COUNTER, NULL};
static const struct usher_metric_desc sched_hist = {"usher_probe_duration_seconds",
						    USHER_METRIC_HISTOGRAM, NULL};
/* and the bucket bounds of the scheduler's duration histogram */
static const char *const sched_les[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
					"1",     "2.5",  "5",     "10",   "30",  "+Inf"};

void usher_probe_reserve_generic(struct usher_ingest *ing, struct usher_arena *a,
				 const char *const *base, enum usher_probe_series series)
{
	static const char *const scrape_own[] = {"up", "scrape_duration_seconds"};
	static const char *const probe_own[] = {"probe_success", "probe_duration_seconds"};
	static const char *const both[] = {"usher_probe_duration_seconds_sum",
					   "usher_probe_duration_seconds_count"};
	const char *const *own = series == USHER_SERIES_SCRAPE ? scrape_own : probe_own;
	size_t k = 0, i;
	const char **pairs;

	while (base && base[k])
		k += 2;
	pairs = usher_arena_alloc(a, (k + 3) * sizeof(*pairs));
	memcpy(pairs, base, k * sizeof(*pairs));
	pairs[k] = NULL;
	for (i = 0; i < 2; i++) {
		usher_ingest_reserve(ing, own[i], pairs);
		usher_ingest_reserve(ing, both[i], pairs);
	}
	pairs[k + 2] = NULL;
	pairs[k] = "outcome";
	pairs[k + 1] = "success";
	usher_ingest_reserve(ing, "usher_probe_runs_total", pairs);
	pairs[k + 1] = "failure";
	usher_ingest_reserve(ing, "usher_probe_runs_total", pairs);
	pairs[k] = "le";
	for (i = 0; i < sizeof(sched_les) / sizeof(sched_les[0]); i++) {
		pairs[k + 1] = sched_les[i];
		usher_ingest_reserve(ing, "usher_probe_duration_seconds_bucket", pairs);
	}
	if (series == USHER_SERIES_SCRAPE) {
		usher_ingest_declare(ing, &sched_up);
		usher_ingest_declare(ing, &sched_duration);
	} else {
		/* probe_failure_info{reason} comes with a failure, whose samples
		 * are the scheduler's alone */
		usher_ingest_declare(ing, &sched_success);
		usher_ingest_declare(ing, &sched_probe_duration);
		usher_ingest_declare(ing, &sched_failure);
	}
	usher_ingest_declare(ing, &sched_runs);
	usher_ingest_declare(ing, &sched_hist);
}

#define FAIL_SAMPLE_LIMIT "sample_limit"

struct scrape {
	const struct usher_probe_conf *pc;
	const struct usher_scrape_target *t;
	struct usher_loop *loop;
	const char **target; /* the base labels, as the scheduler sets them */
	size_t ntarget;      /* pairs */
	char *what;          /* "GET http://host:port/metrics", no userinfo */
	struct usher_http_exchange ex;
	struct usher_probe_run *run; /* in flight, NULL when idle */
	uint64_t *prev;              /* sorted series of the last good scrape */
	size_t nprev;
	bool scraped_once;
};

static void scrape_free(void *ctx)
{
	struct scrape *s = ctx;

	if (!s)
		return;
	usher_http_exchange_cancel(&s->ex);
	free(s->target);
	free(s->what);
	free(s->prev);
	free(s);
}

static enum usher_err scrape_init(const struct usher_probe_conf *pc,
				  const struct usher_probe_env *env, void **ctx,
				  struct usher_error *err)
{
	struct scrape *s = usher_calloc(1, sizeof(*s));
	size_t i, k = 0;

	(void)err;
	s->pc = pc;
	s->t = pc->opts;
	s->loop = env->loop;
	s->what = usher_http_describe(&s->t->http);
	/* the same pairs, in the same order, as the scheduler's base labels */
	s->target = usher_calloc(2 * pc->labels.n + 5, sizeof(*s->target));
	s->target[k++] = "job";
	s->target[k++] = pc->job;
	s->target[k++] = "instance";
	s->target[k++] = pc->instance;
	for (i = 0; i < pc->labels.n; i++) {
		if (strcmp(pc->labels.v[i].key, "job") == 0 ||
		    strcmp(pc->labels.v[i].key, "instance") == 0)
			continue;
		s->target[k++] = pc->labels.v[i].key;
		s->target[k++] = pc->labels.v[i].value;
	}
	s->target[k] = NULL;
	s->ntarget = k / 2;
	*ctx = s;
	return USHER_OK;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The series of this scrape not in the last good one; remembers these. */
static size_t series_added(struct scrape *s, const uint64_t *cur, size_t n)
{
	uint64_t *sorted = usher_malloc((n ? n : 1) * sizeof(*sorted));
	size_t added = 0, i;

	if (n)
		memcpy(sorted, cur, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_u64);
	for (i = 0; i < n; i++)
		if (!s->scraped_once ||
		    !bsearch(&sorted[i], s->prev, s->nprev, sizeof(*sorted), cmp_u64))
			added++;
	free(s->prev);
	s->prev = sorted;
	s->nprev = n;
	s->scraped_once = true;
	return added;
}

/* Claims what the scheduler and this file add for the target, so the
 * target's own samples cannot duplicate or retype them. */
static void reserve_own(struct scrape *s, struct usher_ingest *ing, struct usher_arena *a)
{
	static const char *const own[] = {"scrape_samples_scraped",
					  "scrape_samples_post_metric_relabeling",
					  "scrape_series_added"};
	size_t i;

	usher_probe_reserve_generic(ing, a, s->target, USHER_SERIES_SCRAPE);
	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		usher_ingest_reserve(ing, own[i], s->target);
	usher_ingest_declare(ing, &desc_scraped);
	usher_ingest_declare(ing, &desc_post_relabel);
	usher_ingest_declare(ing, &desc_series_added);
}

/* Parses and re-exposes a good answer; false (run failed) when it is not
 * one. *scraped and *post get the counts Prometheus reports. */
static void ingest_body(struct scrape *s, struct usher_probe_run *run, size_t *scraped,
			size_t *post, size_t *added)
{
	const struct usher_http_result *res = &s->ex.res;
	enum usher_tp_format fmt = usher_textparse_format(res->content_type);
	struct usher_tp_limits lim = {.max_line = SCRAPE_MAX_LINE, .max_labels = SCRAPE_MAX_LABELS};
	struct usher_ingest_opts o = {.target = s->target, .honor_labels = s->t->job->honor_labels};
	struct usher_tp_result r;
	struct usher_tp_error perr;
	struct usher_ingest_stats st;
	struct usher_ingest *ing;
	const uint64_t *series;
	size_t nseries;

	if (usher_textparse(res->body.data ? res->body.data : "", res->body.len, fmt, &lim,
			    run->arena, &r, &perr)) {
		usher_probe_fail(run, USHER_FAIL_PROTOCOL, "%s: %s answer, line %d:%d: %s", s->what,
				 fmt == USHER_TP_OPENMETRICS ? "OpenMetrics" : "text format",
				 perr.line, perr.col, perr.msg);
		return;
	}
	ing = usher_ingest_new(run->samples, run->arena, &o);
	reserve_own(s, ing, run->arena);
	usher_ingest_add(ing, &r, fmt, s->what, NULL, &st);
	*scraped = r.nsamples - st.created;
	*post = *scraped;
	if (s->t->job->sample_limit > 0 && *post > (size_t)s->t->job->sample_limit) {
		usher_probe_fail(run, FAIL_SAMPLE_LIMIT,
				 "%s: %zu samples, more than sample_limit %lld", s->what, *post,
				 (long long)s->t->job->sample_limit);
		return;
	}
	usher_ingest_commit(ing);
	series = usher_ingest_series(ing, &nseries);
	*added = series_added(s, series, nseries);
}

static void scrape_done(struct usher_http_exchange *ex)
{
	struct scrape *s = ex->owner;
	struct usher_probe_run *run = s->run;
	size_t scraped = 0, post = 0, added = 0;
	bool regex_failed = false;

	if (usher_http_evaluate(ex, NULL, run, s->what, &regex_failed))
		ingest_body(s, run, &scraped, &post, &added);
	usher_sample_add(run->samples, &desc_scraped, (double)scraped, NULL);
	usher_sample_add(run->samples, &desc_post_relabel, (double)post, NULL);
	usher_sample_add(run->samples, &desc_series_added, (double)added, NULL);
	usher_http_exchange_cleanup(ex);
	s->run = NULL;
	usher_probe_run_done(run);
}

static enum usher_err scrape_start(void *ctx, struct usher_probe_run *run)
{
	struct scrape *s = ctx;
	struct usher_error err;
	enum usher_err rc;

	usher_error_clear(&err);
	s->run = run;
	s->ex.done = scrape_done;
	s->ex.owner = s;
	rc = usher_http_exchange_start(&s->ex, s->loop, &s->t->http, NULL, run->deadline_mono_ms,
				       &err);
	if (rc) {
		s->run = NULL;
		usher_probe_fail(run,
				 rc == USHER_ERR_TIMEOUT ? USHER_FAIL_TIMEOUT : USHER_FAIL_INTERNAL,
				 "%s: %s", s->what, usher_error_msg(&err, rc));
		usher_sample_add(run->samples, &desc_scraped, 0, NULL);
		usher_sample_add(run->samples, &desc_post_relabel, 0, NULL);
		usher_sample_add(run->samples, &desc_series_added, 0, NULL);
	}
	return rc;
}

static void scrape_cancel(void *ctx, struct usher_probe_run *run)
{
	struct scrape *s = ctx;

	usher_http_exchange_cancel(&s->ex);
	if (s->run == run && run && run->samples) {
		/* a timeout: the scheduler still publishes this run as failed */
		usher_sample_add(run->samples, &desc_scraped, 0, NULL);
		usher_sample_add(run->samples, &desc_post_relabel, 0, NULL);
		usher_sample_add(run->samples, &desc_series_added, 0, NULL);
	}
	s->run = NULL;
}

const struct usher_probe_type usher_probe_scrape = {
    .name = "scrape",
    .help = "a target of scrape_configs: its /metrics re-exposed with job and instance",
    .series = USHER_SERIES_SCRAPE,
    .opts_size = sizeof(struct usher_scrape_target),
    .init = scrape_init,
    .start = scrape_start,
    .cancel = scrape_cancel,
    .free = scrape_free,
};
