/* usher diag's findings: building reports, the default thresholds, looking
 * samples up, and rendering the table (✓/⚠/✗, colours on a TTY) and the
 * JSON document whose schema docs/diag.md documents. */
#include "probes/diag.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "probes/probe.h"

/* The JSON document's schema version: bump on any incompatible change. */
#define DIAG_SCHEMA_VERSION 1

const char *usher_diag_status_name(enum usher_diag_status s)
{
	switch (s) {
	case USHER_DIAG_OK: return "ok";
	case USHER_DIAG_WARN: return "warn";
	case USHER_DIAG_FAIL: return "fail";
	}
	return "fail";
}

void usher_diag_thresholds_default(struct usher_diag_thresholds *t)
{
	memset(t, 0, sizeof(*t));
	t->pg_conn_warn = 0.80;
	t->pg_conn_fail = 0.95;
	t->pg_lock_wait_warn_s = 0; /* any session waiting on another's lock */
	t->pg_lock_wait_fail_s = 300;
	t->pg_long_query_warn_s = 300;
	t->pg_long_query_fail_s = 1800;
	t->pg_idle_tx_warn_s = 120;
	t->pg_idle_tx_fail_s = 600;
	t->pg_repl_lag_warn_s = 30;
	t->pg_repl_lag_fail_s = 300;
	t->pg_cache_hit_warn = 0.95;
	t->pg_cache_hit_min_blocks = 10000;
	t->pg_dead_ratio_warn = 0.20;
	t->pg_dead_min_tuples = 10000;
	t->pg_seq_warn = 0.75;
	t->pg_seq_fail = 0.90;
	t->pg_xid_warn = 1e9;
	t->pg_xid_fail = 1.5e9;
	t->redis_mem_warn = 0.90;
	t->redis_mem_fail = 0.95;
	t->redis_frag_warn = 1.5;
	t->redis_frag_min_bytes = 100.0 * 1024 * 1024;
	t->redis_hit_warn = 0.80;
	t->redis_hit_min_lookups = 1000;
	t->redis_clients_warn = 0.80;
	t->redis_slowlog_recent_s = 900;
	t->redis_bigkey_warn_bytes = 10.0 * 1024 * 1024;
	t->redis_bigkey_scan_max = 1000;
	t->http_slow_warn_s = 2;
	t->tls_days_warn = 14;
	t->tls_days_fail = 3;
	t->mc_conn_warn = 0.80;
	t->host_mem_avail_warn = 0.10;
	t->host_mem_avail_fail = 0.05;
	t->host_fs_avail_warn = 0.15;
	t->host_fs_avail_fail = 0.05;
	t->host_load_per_cpu_warn = 2.0;
}

/* ---- thresholds by name (--threshold NAME=VALUE) ----------------------- */

enum th_kind {
	TH_FRACTION, /* 0.8 or 80% */
	TH_SECONDS,  /* a duration: 30s, 5m */
	TH_NUMBER,   /* a plain number */
	TH_BYTES,    /* 10MiB */
	TH_COUNT,    /* a whole number (int64_t field) */
};

struct th_def {
	const char *name;
	size_t off;
	enum th_kind kind;
};

#define TH(field, kind)                                                                            \
	{                                                                                          \
#field, offsetof(struct usher_diag_thresholds, field), kind                        \
	}
static const struct th_def th_defs[] = {
    TH(pg_conn_warn, TH_FRACTION),
    TH(pg_conn_fail, TH_FRACTION),
    TH(pg_lock_wait_warn_s, TH_SECONDS),
    TH(pg_lock_wait_fail_s, TH_SECONDS),
    TH(pg_long_query_warn_s, TH_SECONDS),
    TH(pg_long_query_fail_s, TH_SECONDS),
    TH(pg_idle_tx_warn_s, TH_SECONDS),
    TH(pg_idle_tx_fail_s, TH_SECONDS),
    TH(pg_repl_lag_warn_s, TH_SECONDS),
    TH(pg_repl_lag_fail_s, TH_SECONDS),
    TH(pg_cache_hit_warn, TH_FRACTION),
    TH(pg_cache_hit_min_blocks, TH_NUMBER),
    TH(pg_dead_ratio_warn, TH_FRACTION),
    TH(pg_dead_min_tuples, TH_NUMBER),
    TH(pg_seq_warn, TH_FRACTION),
    TH(pg_seq_fail, TH_FRACTION),
    TH(pg_xid_warn, TH_NUMBER),
    TH(pg_xid_fail, TH_NUMBER),
    TH(redis_mem_warn, TH_FRACTION),
    TH(redis_mem_fail, TH_FRACTION),
    TH(redis_frag_warn, TH_NUMBER),
    TH(redis_frag_min_bytes, TH_BYTES),
    TH(redis_hit_warn, TH_FRACTION),
    TH(redis_hit_min_lookups, TH_NUMBER),
    TH(redis_clients_warn, TH_FRACTION),
    TH(redis_slowlog_recent_s, TH_SECONDS),
    TH(redis_bigkey_warn_bytes, TH_BYTES),
    TH(redis_bigkey_scan_max, TH_COUNT),
    TH(http_slow_warn_s, TH_SECONDS),
    TH(tls_days_warn, TH_NUMBER),
    TH(tls_days_fail, TH_NUMBER),
    TH(mc_conn_warn, TH_FRACTION),
    TH(host_mem_avail_warn, TH_FRACTION),
    TH(host_mem_avail_fail, TH_FRACTION),
    TH(host_fs_avail_warn, TH_FRACTION),
    TH(host_fs_avail_fail, TH_FRACTION),
    TH(host_load_per_cpu_warn, TH_NUMBER),
};
#undef TH

static bool plain_number(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return *s && !*end && errno == 0 && isfinite(*out);
}

enum usher_err usher_diag_threshold_set(struct usher_diag_thresholds *t, const char *assignment,
					struct usher_error *err)
{
	const char *eq = strchr(assignment, '=');
	const char *v = eq ? eq + 1 : NULL;
	size_t i, nl = eq ? (size_t)(eq - assignment) : 0;
	double d = 0;

	if (!eq || !nl || !*v)
		return usher_fail(err, USHER_ERR_INVALID,
				  "threshold \"%s\": write NAME=VALUE, e.g. pg_idle_tx_warn_s=30s",
				  assignment);
	for (i = 0; i < sizeof(th_defs) / sizeof(th_defs[0]); i++) {
		const struct th_def *def = &th_defs[i];
		bool ok = false;

		if (strlen(def->name) != nl || strncmp(def->name, assignment, nl) != 0)
			continue;
		switch (def->kind) {
		case TH_FRACTION: {
			size_t len = strlen(v);

			if (len > 1 && v[len - 1] == '%') {
				char num[64];

				snprintf(num, sizeof(num), "%.*s", (int)(len - 1), v);
				ok = len - 1 < sizeof(num) && plain_number(num, &d);
				d /= 100;
			} else {
				ok = plain_number(v, &d);
			}
			ok = ok && d >= 0 && d <= 1;
			break;
		}
		case TH_SECONDS: {
			int64_t ms = 0;

			ok = usher_duration_parse(v, &ms) == USHER_OK ||
			     (plain_number(v, &d) && (ms = (int64_t)(d * 1000), true));
			d = (double)ms / 1000;
			ok = ok && d >= 0;
			break;
		}
		case TH_NUMBER: ok = plain_number(v, &d); break;
		case TH_BYTES: {
			uint64_t b;

			ok = usher_size_parse(v, &b) == USHER_OK;
			d = (double)b;
			break;
		}
		case TH_COUNT:
			ok = plain_number(v, &d) && d >= 0 && d <= 1e9 && d == floor(d);
			break;
		}
		if (!ok)
			return usher_fail(err, USHER_ERR_INVALID, "threshold %s: \"%s\" is not %s",
					  def->name, v,
					  def->kind == TH_FRACTION  ? "a fraction (0.8 or 80%)"
					  : def->kind == TH_SECONDS ? "a duration (30s, 5m)"
					  : def->kind == TH_BYTES   ? "a size (10MiB)"
					  : def->kind == TH_COUNT   ? "a whole number"
								    : "a number");
		if (def->kind == TH_COUNT)
			*(int64_t *)(void *)((char *)t + def->off) = (int64_t)d;
		else
			*(double *)(void *)((char *)t + def->off) = d;
		return USHER_OK;
	}
	return usher_fail(err, USHER_ERR_NOTFOUND,
			  "no threshold named \"%.*s\" (docs/diag.md lists them)", (int)nl,
			  assignment);
}

static void raise_status(struct usher_diag_report *r, enum usher_diag_status st)
{
	if (st > r->status)
		r->status = st;
}

struct usher_diag_finding *usher_diag_add(struct usher_diag_report *r, enum usher_diag_status st,
					  const char *check, const char *alert, const char *hint,
					  const char *fmt, ...)
{
	struct usher_diag_finding *f;
	va_list ap;

	if (r->nfindings == r->capfindings) {
		size_t cap = r->capfindings ? 2 * r->capfindings : 8;
		struct usher_diag_finding *v = usher_arena_alloc(r->arena, cap * sizeof(*v));

		if (r->nfindings)
			memcpy(v, r->findings, r->nfindings * sizeof(*v));
		r->findings = v;
		r->capfindings = cap;
	}
	f = &r->findings[r->nfindings++];
	memset(f, 0, sizeof(*f));
	f->status = st;
	f->check = usher_arena_strdup(r->arena, check);
	f->alert = alert ? usher_arena_strdup(r->arena, alert) : NULL;
	/* a hint says what to do: nothing, when all is well */
	f->hint = hint && st != USHER_DIAG_OK ? usher_arena_strdup(r->arena, hint) : NULL;
	va_start(ap, fmt);
	f->summary = usher_arena_vprintf(r->arena, fmt, ap);
	va_end(ap);
	raise_status(r, st);
	return f;
}

void usher_diag_detail(struct usher_diag_report *r, struct usher_diag_finding *f,
		       const char *detail)
{
	f->detail = detail && *detail ? usher_arena_strdup(r->arena, detail) : NULL;
}

enum usher_diag_status usher_diag_overall(const struct usher_diag_report *r, size_t n)
{
	enum usher_diag_status st = USHER_DIAG_OK;
	size_t i;

	for (i = 0; i < n; i++)
		if (r[i].status > st)
			st = r[i].status;
	return st;
}

void usher_diag_reports_free(struct usher_diag_report *r, size_t n)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < n; i++)
		usher_arena_free(r[i].arena);
	free(r);
}

bool usher_diag_sample(const struct usher_diag_report *r, const char *name,
		       const char *const *labels, double *out)
{
	const struct usher_tp_result *res = &r->samples;
	size_t i, j, k;

	for (i = 0; i < res->nsamples; i++) {
		const struct usher_tp_sample *s = &res->samples[i];
		const char *fam = res->families[s->family].name;
		size_t fl = strlen(fam);
		const char *suffix = "";
		bool ok = true;

		switch (s->suffix) {
		case USHER_TP_SUF_TOTAL: suffix = "_total"; break;
		case USHER_TP_SUF_BUCKET: suffix = "_bucket"; break;
		case USHER_TP_SUF_SUM: suffix = "_sum"; break;
		case USHER_TP_SUF_COUNT: suffix = "_count"; break;
		default: break;
		}
		if (strncmp(name, fam, fl) != 0 || strcmp(name + fl, suffix) != 0)
			continue;
		for (j = 0; ok && labels && labels[j]; j += 2) {
			bool found = false;

			for (k = 0; s->labels[k]; k += 2)
				if (strcmp(s->labels[k], labels[j]) == 0 &&
				    strcmp(s->labels[k + 1], labels[j + 1]) == 0)
					found = true;
			ok = found;
		}
		if (ok) {
			*out = s->value;
			return true;
		}
	}
	return false;
}

/* ---- rendering ---------------------------------------------------------- */

const char *usher_diag_runbook_url(struct usher_arena *a, const char *base, const char *alert)
{
	const char *p;

	if (!alert)
		return NULL;
	if (!base)
		base = "runbooks/";
	p = strstr(base, "{alert}");
	if (p)
		return usher_arena_printf(a, "%.*s%s%s", (int)(p - base), base, alert,
					  p + strlen("{alert}"));
	return usher_arena_printf(a, "%s%s%s.md", base,
				  *base && base[strlen(base) - 1] != '/' ? "/" : "", alert);
}

#define C_RESET  "\033[0m"
#define C_BOLD   "\033[1m"
#define C_DIM    "\033[2m"
#define C_GREEN  "\033[32m"
#define C_YELLOW "\033[33m"
#define C_RED    "\033[31m"

static const char *mark(enum usher_diag_status s, bool utf8)
{
	switch (s) {
	case USHER_DIAG_OK: return utf8 ? "✓" : "OK";
	case USHER_DIAG_WARN: return utf8 ? "⚠" : "WARN";
	case USHER_DIAG_FAIL: return utf8 ? "✗" : "FAIL";
	}
	return "?";
}

static const char *colour(enum usher_diag_status s)
{
	return s == USHER_DIAG_OK ? C_GREEN : s == USHER_DIAG_WARN ? C_YELLOW : C_RED;
}

/* The mark, coloured, padded to width columns. */
static void put_mark(struct usher_buf *b, enum usher_diag_status s,
		     const struct usher_diag_render *how, int width)
{
	const char *m = mark(s, how->utf8);
	/* the UTF-8 marks are one column wide but three bytes long */
	int cols = how->utf8 ? 1 : (int)strlen(m);

	if (how->color)
		usher_buf_addf(b, "%s%s%s", colour(s), m, C_RESET);
	else
		usher_buf_addstr(b, m);
	for (; cols < width; cols++)
		usher_buf_addc(b, ' ');
}

/* Each line of text, indented. */
static void put_lines(struct usher_buf *b, const char *text, const char *indent, bool dim)
{
	const char *p = text, *nl;

	while (*p) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		usher_buf_addf(b, "%s%s%.*s%s\n", indent, dim ? C_DIM : "", (int)(nl - p), p,
			       dim ? C_RESET : "");
		p = *nl ? nl + 1 : nl;
	}
}

enum usher_err usher_diag_render_text(const struct usher_diag_report *r, size_t n,
				      const struct usher_diag_render *how, struct usher_buf *out)
{
	struct usher_arena *a = usher_arena_new();
	size_t i, j, wname = 5, wtype = 4, counts[3] = {0, 0, 0};
	int mw = how->utf8 ? 2 : 5;
	enum usher_err rc;

	for (i = 0; i < n; i++) {
		if (strlen(r[i].conf->name) > wname)
			wname = strlen(r[i].conf->name);
		if (strlen(r[i].conf->type_name) > wtype)
			wtype = strlen(r[i].conf->type_name);
	}
	if (wname > 40)
		wname = 40;
	usher_buf_addf(out, "%s%-*s%-*s  %-*s  %8s  %s%s\n", how->color ? C_BOLD : "", mw, "",
		       (int)wname, "PROBE", (int)wtype, "TYPE", "TIME", "RESULT",
		       how->color ? C_RESET : "");
	for (i = 0; i < n; i++) {
		const struct usher_diag_report *p = &r[i];
		char took[32];

		counts[p->status]++;
		snprintf(took, sizeof(took), "%.0fms", p->duration_s * 1000);
		put_mark(out, p->status, how, mw);
		usher_buf_addf(out, "%-*s  %-*s  %8s  ", (int)wname, p->conf->name, (int)wtype,
			       p->conf->type_name, took);
		if (p->probe_success)
			usher_buf_addf(out, "up (%s)\n", p->conf->instance);
		else
			usher_buf_addf(out, "DOWN: %s (%s)\n", p->error ? p->error : "no detail",
				       p->failure_reason ? p->failure_reason : "internal");
		for (j = 0; j < p->nfindings; j++) {
			const struct usher_diag_finding *f = &p->findings[j];
			const char *url;

			usher_buf_addstr(out, "    ");
			put_mark(out, f->status, how, mw);
			usher_buf_addf(out, "%s: %s\n", f->check, f->summary);
			if (f->detail)
				put_lines(out, f->detail, "          ", false);
			if (f->status != USHER_DIAG_OK && f->hint)
				usher_buf_addf(out, "          hint: %s\n", f->hint);
			url = f->status != USHER_DIAG_OK
				  ? usher_diag_runbook_url(a, how->runbook_base, f->alert)
				  : NULL;
			if (url)
				usher_buf_addf(out, "          runbook: %s\n", url);
		}
		if (p->trace && *p->trace) {
			usher_buf_addstr(out, "    trace:\n");
			put_lines(out, p->trace, "      ", how->color);
		}
	}
	rc = usher_buf_addf(out, "\n%zu probe%s: %zu ok, %zu degraded, %zu failed\n", n,
			    n == 1 ? "" : "s", counts[USHER_DIAG_OK], counts[USHER_DIAG_WARN],
			    counts[USHER_DIAG_FAIL]);
	usher_arena_free(a);
	return rc;
}

static void json_str(struct usher_buf *b, const char *s)
{
	if (!s) {
		usher_buf_addstr(b, "null");
		return;
	}
	usher_buf_addc(b, '"');
	usher_json_escape(b, s);
	usher_buf_addc(b, '"');
}

static void json_num(struct usher_buf *b, double v)
{
	if (isfinite(v))
		usher_buf_addf(b, "%.6g", v);
	else
		usher_buf_addstr(b, "null");
}

enum usher_err usher_diag_render_json(const struct usher_diag_report *r, size_t n,
				      const struct usher_diag_render *how, int64_t now_ms,
				      struct usher_buf *out)
{
	struct usher_arena *a = usher_arena_new();
	enum usher_diag_status overall = usher_diag_overall(r, n);
	char ts[64];
	size_t i, j, k;
	enum usher_err rc;

	usher_time_format_rfc3339(now_ms, ts, sizeof(ts));
	usher_buf_addf(out, "{\"schema_version\":%d,\"time\":", DIAG_SCHEMA_VERSION);
	json_str(out, ts);
	usher_buf_addf(out, ",\"status\":\"%s\",\"exit_code\":%d,\"probes\":[",
		       usher_diag_status_name(overall), (int)overall);
	for (i = 0; i < n; i++) {
		const struct usher_diag_report *p = &r[i];

		usher_buf_addstr(out, i ? ",{" : "{");
		usher_buf_addstr(out, "\"name\":");
		json_str(out, p->conf->name);
		usher_buf_addstr(out, ",\"type\":");
		json_str(out, p->conf->type_name);
		usher_buf_addstr(out, ",\"instance\":");
		json_str(out, p->conf->instance);
		usher_buf_addf(out, ",\"status\":\"%s\",\"up\":%s,\"duration_seconds\":",
			       usher_diag_status_name(p->status),
			       p->probe_success ? "true" : "false");
		json_num(out, p->duration_s);
		usher_buf_addstr(out, ",\"failure_reason\":");
		json_str(out, p->probe_success ? NULL : p->failure_reason);
		usher_buf_addstr(out, ",\"error\":");
		json_str(out, p->probe_success ? NULL : p->error);
		usher_buf_addstr(out, ",\"findings\":[");
		for (j = 0; j < p->nfindings; j++) {
			const struct usher_diag_finding *f = &p->findings[j];

			usher_buf_addstr(out, j ? ",{" : "{");
			usher_buf_addf(out, "\"check\":");
			json_str(out, f->check);
			usher_buf_addf(out, ",\"status\":\"%s\",\"summary\":",
				       usher_diag_status_name(f->status));
			json_str(out, f->summary);
			usher_buf_addstr(out, ",\"hint\":");
			json_str(out, f->hint);
			usher_buf_addstr(out, ",\"alert\":");
			json_str(out, f->alert);
			usher_buf_addstr(out, ",\"runbook_url\":");
			json_str(out, usher_diag_runbook_url(a, how->runbook_base, f->alert));
			usher_buf_addstr(out, ",\"detail\":[");
			if (f->detail) {
				const char *p2 = f->detail, *nl;

				for (k = 0; *p2; k++) {
					char *line;

					nl = strchr(p2, '\n');
					if (!nl)
						nl = p2 + strlen(p2);
					line = usher_arena_strndup(a, p2, (size_t)(nl - p2));
					if (k)
						usher_buf_addc(out, ',');
					json_str(out, line);
					p2 = *nl ? nl + 1 : nl;
				}
			}
			usher_buf_addstr(out, "]}");
		}
		usher_buf_addstr(out, "],\"trace\":");
		if (p->trace) {
			const char *p2 = p->trace, *nl;

			usher_buf_addc(out, '[');
			for (k = 0; *p2; k++) {
				nl = strchr(p2, '\n');
				if (!nl)
					nl = p2 + strlen(p2);
				if (k)
					usher_buf_addc(out, ',');
				json_str(out, usher_arena_strndup(a, p2, (size_t)(nl - p2)));
				p2 = *nl ? nl + 1 : nl;
			}
			usher_buf_addc(out, ']');
		} else {
			usher_buf_addstr(out, "null");
		}
		usher_buf_addc(out, '}');
	}
	rc = usher_buf_addstr(out, "]}\n");
	usher_arena_free(a);
	return rc;
}
