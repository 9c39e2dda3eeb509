/* usher diag's checks that read a probe's own samples, as /metrics would
 * show them: HTTP (status, phase timings, TLS certificate days left),
 * Memcached (connections, memory, hit ratio, evictions) and the host (load,
 * memory, filesystems). Thresholds: docs/diag.md. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "probes/diag.h"

#define A_HTTP_SLOW       "HTTPProbeSlow"
#define A_TLS             "BookingTLSCertificateExpiring"
#define A_MC_CONNS        "MemcachedConnectionsNearLimit"
#define A_MC_EVICT        "MemcachedEvicting"
#define A_HOST_MEM        "HostMemoryLow"
#define A_HOST_FS         "HostDiskAlmostFull"
#define A_HOST_LOAD       "HostHighCPU"
#define A_JOURNEY         "BookingJourneyFailing"
#define A_JOURNEY_CLEANUP "BookingJourneyCleanupFailing"

static double get(const struct usher_diag_report *r, const char *name, const char *k, const char *v)
{
	const char *labels[] = {k, v, NULL};
	double x;

	return usher_diag_sample(r, name, k ? labels : NULL, &x) ? x : NAN;
}

/* The label value of name in sample s; "" when absent. */
static const char *label(const struct usher_tp_sample *s, const char *name)
{
	size_t i;

	for (i = 0; s->labels[i]; i += 2)
		if (strcmp(s->labels[i], name) == 0)
			return s->labels[i + 1];
	return "";
}

static bool is(const struct usher_diag_report *r, const struct usher_tp_sample *s,
	       const char *family)
{
	return strcmp(r->samples.families[s->family].name, family) == 0;
}

static void http(const struct usher_diag_thresholds *th, int64_t now_s, struct usher_diag_report *r)
{
	static const char *const phases[] = {"resolve", "connect", "tls", "processing", "transfer"};
	struct usher_buf b;
	struct usher_diag_finding *f;
	double total = 0, status = get(r, "probe_http_status_code", NULL, NULL);
	double expiry = get(r, "probe_ssl_earliest_cert_expiry", NULL, NULL);
	size_t i;

	if (!(status > 0))
		return; /* no response: the row says why */
	usher_buf_init(&b, 1024);
	for (i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		double v = get(r, "probe_http_duration_seconds", "phase", phases[i]);

		if (!isfinite(v))
			continue;
		total += v;
		usher_buf_addf(&b, "%s%s %.1fms", b.len ? ", " : "", phases[i], v * 1000);
	}
	f = usher_diag_add(r, total >= th->http_slow_warn_s ? USHER_DIAG_WARN : USHER_DIAG_OK,
			   "http.timings", A_HTTP_SLOW,
			   "the slowest phase says where: resolve (DNS), connect (network), tls, "
			   "processing (the server), transfer (the body)",
			   "HTTP %.0f in %.1fms", isfinite(status) ? status : 0, total * 1000);
	usher_diag_detail(r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	if (isfinite(expiry)) {
		double days = (expiry - (double)now_s) / 86400;

		usher_diag_add(r,
			       days < th->tls_days_fail   ? USHER_DIAG_FAIL
			       : days < th->tls_days_warn ? USHER_DIAG_WARN
							  : USHER_DIAG_OK,
			       "http.tls_expiry", A_TLS,
			       "renew the certificate (and check why automatic renewal did not)",
			       "TLS certificate expires in %.1f days", days);
	}
}

static void memcached(const struct usher_diag_thresholds *th, struct usher_diag_report *r)
{
	double cur = get(r, "memcached_current_connections", NULL, NULL);
	double max = get(r, "memcached_max_connections", NULL, NULL);
	double bytes = get(r, "memcached_current_bytes", NULL, NULL);
	double limit = get(r, "memcached_limit_bytes", NULL, NULL);
	double evicted = get(r, "memcached_items_evicted_total", NULL, NULL);
	const char *hit[] = {"command", "get", "status", "hit", NULL};
	const char *miss[] = {"command", "get", "status", "miss", NULL};
	double hits = NAN, misses = NAN;

	if (!r->probe_success)
		return;
	if (isfinite(cur) && max > 0)
		usher_diag_add(r, cur / max >= th->mc_conn_warn ? USHER_DIAG_WARN : USHER_DIAG_OK,
			       "memcached.connections", A_MC_CONNS,
			       "raise memcached's -c or find the client leaking connections",
			       "%.0f of %.0f connections in use", cur, max);
	if (isfinite(bytes) && limit > 0)
		usher_diag_add(r, USHER_DIAG_OK, "memcached.memory", A_MC_EVICT, NULL,
			       "%.1f%% of %.0f MiB used, %.0f items evicted since start",
			       100 * bytes / limit, limit / 1048576,
			       isfinite(evicted) ? evicted : 0);
	usher_diag_sample(r, "memcached_commands_total", hit, &hits);
	usher_diag_sample(r, "memcached_commands_total", miss, &misses);
	if (isfinite(hits) && isfinite(misses) && hits + misses > 0)
		usher_diag_add(r, USHER_DIAG_OK, "memcached.hit_ratio", NULL, NULL,
			       "get hit ratio %.1f%% (%.0f gets)", 100 * hits / (hits + misses),
			       hits + misses);
}

static void host(const struct usher_diag_thresholds *th, struct usher_diag_report *r)
{
	double avail = get(r, "node_memory_MemAvailable_bytes", NULL, NULL);
	double total = get(r, "node_memory_MemTotal_bytes", NULL, NULL);
	double load5 = get(r, "node_load5", NULL, NULL);
	const struct usher_tp_result *res = &r->samples;
	struct usher_buf b;
	struct usher_diag_finding *f;
	enum usher_diag_status worst = USHER_DIAG_OK;
	double cpus = 0;
	size_t i, j, nfs = 0;

	if (!r->probe_success)
		return;
	for (i = 0; i < res->nsamples; i++)
		if (is(r, &res->samples[i], "node_cpu_seconds_total") &&
		    strcmp(label(&res->samples[i], "mode"), "idle") == 0)
			cpus++;
	if (isfinite(load5) && cpus > 0)
		usher_diag_add(
		    r, load5 / cpus >= th->host_load_per_cpu_warn ? USHER_DIAG_WARN : USHER_DIAG_OK,
		    "host.load", A_HOST_LOAD,
		    "more runnable tasks than CPUs: see top for who, and iowait",
		    "load %.2f over 5 minutes on %.0f CPUs", load5, cpus);
	if (isfinite(avail) && total > 0) {
		double frac = avail / total;

		usher_diag_add(r,
			       frac < th->host_mem_avail_fail   ? USHER_DIAG_FAIL
			       : frac < th->host_mem_avail_warn ? USHER_DIAG_WARN
								: USHER_DIAG_OK,
			       "host.memory", A_HOST_MEM,
			       "the OOM killer is next: find the biggest processes (ps -eo rss,cmd "
			       "--sort -rss)",
			       "%.1f%% of %.1f GiB memory available", frac * 100,
			       total / 1073741824.0);
	}
	usher_buf_init(&b, 8192);
	for (i = 0; i < res->nsamples; i++) {
		const struct usher_tp_sample *s = &res->samples[i];
		const char *mp;
		double size, ro, fa;
		enum usher_diag_status st;

		if (!is(r, s, "node_filesystem_avail_bytes"))
			continue;
		mp = label(s, "mountpoint");
		size = NAN;
		ro = 0;
		for (j = 0; j < res->nsamples; j++) {
			const struct usher_tp_sample *t = &res->samples[j];

			if (strcmp(label(t, "mountpoint"), mp) != 0)
				continue;
			if (is(r, t, "node_filesystem_size_bytes"))
				size = t->value;
			if (is(r, t, "node_filesystem_readonly"))
				ro = t->value;
		}
		if (!(size > 0) || ro == 1)
			continue;
		nfs++;
		fa = s->value / size;
		st = fa < th->host_fs_avail_fail   ? USHER_DIAG_FAIL
		     : fa < th->host_fs_avail_warn ? USHER_DIAG_WARN
						   : USHER_DIAG_OK;
		if (st > worst)
			worst = st;
		if (st != USHER_DIAG_OK)
			usher_buf_addf(&b, "%s%s (%s): %.1f%% free of %.1f GiB", b.len ? "\n" : "",
				       mp, label(s, "fstype"), fa * 100, size / 1073741824.0);
	}
	if (nfs) {
		f = usher_diag_add(r, worst, "host.filesystems", A_HOST_FS,
				   "free space (old logs, backups, WAL) before the database or "
				   "Redis stops writing",
				   "%zu writable filesystem%s, %s", nfs, nfs == 1 ? "" : "s",
				   worst == USHER_DIAG_OK ? "all with room"
							  : "some nearly full (below)");
		usher_diag_detail(r, f, usher_buf_str(&b));
	}
	usher_buf_free(&b);
}

/* Whether the probe is labelled service="booking-api", as the alert
 * BookingAPIDown selects. */
static bool booking_api(const struct usher_probe_conf *pc)
{
	size_t i;

	for (i = 0; i < pc->labels.n; i++)
		if (strcmp(pc->labels.v[i].key, "service") == 0 &&
		    strcmp(pc->labels.v[i].value, "booking-api") == 0)
			return true;
	return false;
}

/* A probe that failed, for the types whose deep checks do not say it. */
static void failed(struct usher_diag_report *r)
{
	const char *reason = r->failure_reason ? r->failure_reason : "internal";
	const char *hint = "see the error above";
	const char *alert = "ProbeFailed";

	if (strcmp(reason, "dns") == 0)
		hint = "the name does not resolve from here: check DNS and the configured name";
	else if (strcmp(reason, "connect") == 0)
		hint = "nothing accepts connections there: is the service up, is a firewall in "
		       "the way?";
	else if (strcmp(reason, "tls") == 0)
		hint = "the TLS handshake or certificate check failed: check the certificate "
		       "chain, its names and dates";
	else if (strcmp(reason, "timeout") == 0)
		hint = "no answer within the timeout: the service hangs or is overloaded";
	else if (strcmp(reason, "status") == 0)
		hint = "the service answers with an unexpected status: look at its logs";
	else if (strcmp(reason, "auth") == 0)
		hint = "credentials were refused: check the probe's secret";
	else if (strcmp(reason, "json") == 0 || strcmp(reason, "regex") == 0 ||
		 strcmp(reason, "header") == 0)
		hint = "the answer arrived but failed an assertion: the service is degraded";
	else if (strcmp(reason, "protocol") == 0)
		hint = "the server answered something unexpected: see the error above";
	if (r->error && strstr(r->error, "Too many open connections"))
		hint = "memcached is at its connection limit (-c): find the clients holding "
		       "connections, or raise -c";
	if (strcmp(r->conf->type_name, "http") == 0)
		alert = booking_api(r->conf) ? "BookingAPIDown" : "HTTPProbeFailed";
	else if (strcmp(r->conf->type_name, "memcached") == 0)
		alert = "MemcachedDown";
	usher_diag_add(r, USHER_DIAG_FAIL, "probe", alert, hint, "probe failed (%s)", reason);
}

/* A journey's steps (usher_journey_step_*) and its clean-up. */
static void journey(struct usher_diag_report *r)
{
	const struct usher_tp_result *res = &r->samples;
	struct usher_buf b, failed;
	struct usher_diag_finding *f;
	double cleanup = get(r, "usher_journey_cleanup_failures_total", NULL, NULL);
	size_t i, n = 0, nfailed = 0;

	usher_buf_init(&b, 8192);
	usher_buf_init(&failed, 1024);
	for (i = 0; i < res->nsamples; i++) {
		const struct usher_tp_sample *s = &res->samples[i];
		const char *step = label(s, "step");
		const char *labels[] = {"step", step, NULL};
		double secs = NAN, code = NAN;

		if (!is(r, s, "usher_journey_step_success"))
			continue;
		n++;
		usher_diag_sample(r, "usher_journey_step_duration_seconds", labels, &secs);
		usher_diag_sample(r, "usher_journey_step_status_code", labels, &code);
		if (s->value != 1) {
			nfailed++;
			usher_buf_addf(&failed, "%s%s", failed.len ? ", " : "", step);
		}
		usher_buf_addf(&b, "%s%s %s: HTTP %.0f in %.1fms", b.len ? "\n" : "",
			       s->value == 1 ? "passed" : "FAILED", step, isfinite(code) ? code : 0,
			       isfinite(secs) ? secs * 1000 : 0);
	}
	if (n) {
		f = usher_diag_add(
		    r, nfailed ? USHER_DIAG_FAIL : USHER_DIAG_OK, "journey.steps", A_JOURNEY,
		    "the first failed step is where buying breaks: see the trace "
		    "(usher diag NAME) and that service's logs",
		    nfailed ? "%zu of %zu steps run failed: %s" : "%zu of %zu steps run failed%s",
		    nfailed, n, usher_buf_str(&failed));
		usher_diag_detail(r, f, usher_buf_str(&b));
	}
	if (isfinite(cleanup) && cleanup > 0)
		usher_diag_add(r, USHER_DIAG_FAIL, "journey.cleanup", A_JOURNEY_CLEANUP,
			       "a clean-up step failed: a seat may be held out of sale; release it "
			       "by hand",
			       "%.0f clean-up step%s failed", cleanup, cleanup == 1 ? "" : "s");
	usher_buf_free(&b);
	usher_buf_free(&failed);
}

void usher_diag_from_samples(const struct usher_diag_thresholds *th, int64_t now_s,
			     struct usher_diag_report *r)
{
	const char *t = r->conf->type_name;

	if (strcmp(t, "journey") == 0) {
		journey(r);
		if (!r->probe_success && !r->nfindings)
			failed(r); /* no step ran */
		return;
	}
	if (!r->probe_success && strcmp(t, "postgres") != 0 && strcmp(t, "redis") != 0)
		failed(r);
	if (strcmp(t, "http") == 0)
		http(th, now_s, r);
	else if (strcmp(t, "memcached") == 0)
		memcached(th, r);
	else if (strcmp(t, "host") == 0)
		host(th, r);
}
