/* Probe scheduling: a min-heap of instances ordered by when each next needs
 * attention (its next start, or the deadline of its run in flight). */
#include "probes/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "probes/probe.h"
#include "probes/workers.h"

/* How long past its deadline a run may take before the scheduler cancels
 * it itself; the type's own timeout (curl's) normally fires first. */
#define DEADLINE_GRACE_MS 100
/* Threads for blocking probe types, started with the first such probe. */
#define NWORKERS 4

static const double duration_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					 0.5,   1,    2.5,   5,    10,  30};
#define NBOUNDS (sizeof(duration_bounds) / sizeof(duration_bounds[0]))

static const struct usher_metric_desc desc_success = {
	"probe_success", USHER_METRIC_GAUGE, "Displays whether or not the probe was a success"};
static const struct usher_metric_desc desc_duration = {
	"probe_duration_seconds", USHER_METRIC_GAUGE,
	"Returns how long the probe took to complete in seconds"};
static const struct usher_metric_desc desc_failure = {
	"probe_failure_info", USHER_METRIC_GAUGE,
	"Why the last run of the probe failed, as the reason label; absent after a success"};
static const struct usher_metric_desc desc_runs = {
	"usher_probe_runs", USHER_METRIC_COUNTER, "Probe runs by outcome"};
static const struct usher_metric_desc desc_hist = {
	"usher_probe_duration_seconds", USHER_METRIC_HISTOGRAM, "Duration of probe runs"};
static const struct usher_metric_desc desc_up = {
	"up", USHER_METRIC_GAUGE, "1 if the target's last scrape succeeded, 0 if not"};
static const struct usher_metric_desc desc_scrape_duration = {
	"scrape_duration_seconds", USHER_METRIC_GAUGE, "Duration of the target's last scrape"};

struct instance {
	const struct usher_probe_conf *conf;
	void *ctx;
	const char **base; /* label pairs, NULL-terminated */
	struct usher_arena *arena; /* the run's scratch, reset each run */
	struct usher_probe_run run;
	bool running;
	bool abandoned; /* a blocking run past its deadline, already reported */
	struct usher_config *zombie_cfg; /* set when dropped while a worker runs it */
	struct instance *next_zombie;
	int64_t next_due_ms;
	int64_t wake_ms; /* heap key */
	size_t heap_pos;
	struct usher_sched *sched;
	struct usher_complain complain;
	uint64_t ok_runs, failed_runs;
	uint64_t hist_counts[NBOUNDS];
	struct usher_histogram hist;
};

struct usher_sched {
	struct usher_loop *loop;
	struct usher_registry *reg;
	struct usher_log *log;
	struct usher_probe_env env;
	struct usher_config *cfg; /* the applied config (a reference) */
	struct usher_workers *workers;
	struct instance **heap;
	size_t n;
	size_t running;
	struct instance *zombies; /* dropped, waiting for their worker */
};

/* ---- the heap ---------------------------------------------------------- */

static void heap_swap(struct usher_sched *s, size_t a, size_t b)
{
	struct instance *t = s->heap[a];

	s->heap[a] = s->heap[b];
	s->heap[b] = t;
	s->heap[a]->heap_pos = a;
	s->heap[b]->heap_pos = b;
}

static void heap_fix(struct usher_sched *s, size_t i)
{
	while (i > 0 && s->heap[(i - 1) / 2]->wake_ms > s->heap[i]->wake_ms) {
		heap_swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < s->n && s->heap[l]->wake_ms < s->heap[m]->wake_ms)
			m = l;
		if (r < s->n && s->heap[r]->wake_ms < s->heap[m]->wake_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(s, i, m);
		i = m;
	}
}

static void set_wake(struct usher_sched *s, struct instance *in, int64_t wake_ms)
{
	in->wake_ms = wake_ms;
	heap_fix(s, in->heap_pos);
}

/* ---- instances --------------------------------------------------------- */

static const char **base_labels(const struct usher_probe_conf *pc)
{
	return usher_probe_base_labels(pc);
}

/* Spreads first starts across the interval by a hash of the name, so the
 * phase is stable across restarts and reloads (as Prometheus does). */
static int64_t phase_ms(const struct usher_probe_conf *pc)
{
	uint64_t h = 1469598103934665603ULL;
	const char *p;

	for (p = pc->name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (int64_t)(h % (uint64_t)pc->interval_ms);
}

static bool blocking(const struct instance *in)
{
	return in->conf->type->run != NULL;
}

/* Ends an asynchronous run in flight at once, or asks a blocking one to
 * hurry (it still comes back through the workers). */
static void instance_cancel(struct instance *in)
{
	if (!in->running)
		return;
	if (in->conf->type->cancel)
		in->conf->type->cancel(in->ctx, &in->run);
	if (blocking(in))
		return;
	usher_sample_set_free(in->run.samples);
	in->run.samples = NULL;
	in->running = false;
	in->sched->running--;
}

static void instance_free(struct instance *in)
{
	if (!in)
		return;
	instance_cancel(in);
	if (in->ctx && in->conf->type->free)
		in->conf->type->free(in->ctx);
	usher_sample_set_free(in->run.samples);
	usher_config_free(in->zombie_cfg);
	usher_arena_free(in->arena);
	free(in->base);
	free(in);
}

/* Drops an instance: at once, or once its worker hands its run back. */
static void instance_drop(struct usher_sched *s, struct instance *in)
{
	usher_registry_remove(s->reg, in);
	if (in->running && blocking(in)) {
		instance_cancel(in);
		in->zombie_cfg = usher_config_ref(s->cfg);
		in->next_zombie = s->zombies;
		s->zombies = in;
		return;
	}
	instance_free(in);
}

static void log_outcome(struct usher_sched *s, struct instance *in, double secs)
{
	const struct usher_probe_run *run = &in->run;
	int64_t now = usher_now_ms();
	uint64_t held = 0;

	if (run->success) {
		if (usher_complain_release(&in->complain)) {
			struct usher_log_field f[] = {
				USHER_LFS("event.action", "probe-recovered"),
				USHER_LFS("event.kind", "event"),
				USHER_LFS("event.outcome", "success"),
				USHER_LFS("usher.probe.name", in->conf->name),
				USHER_LFS("usher.probe.type", in->conf->type->name),
				USHER_LFS("usher.probe.instance", in->conf->instance),
			};
			usher_log_event(s->log, USHER_LOG_INFO, f, sizeof(f) / sizeof(f[0]),
					"probe %s recovered", in->conf->name);
		}
		return;
	}
	if (usher_complain(&in->complain, now, &held)) {
		struct usher_log_field f[] = {
			USHER_LFS("event.action", "probe-failed"),
			USHER_LFS("event.kind", "event"),
			USHER_LFS("event.outcome", "failure"),
			USHER_LFS("usher.probe.name", in->conf->name),
			USHER_LFS("usher.probe.type", in->conf->type->name),
			USHER_LFS("usher.probe.instance", in->conf->instance),
			USHER_LFS("usher.probe.reason", run->failure_reason),
			USHER_LFS("error.message", run->err.msg),
			USHER_LFI("event.duration", (int64_t)(secs * 1e9)),
			USHER_LFI("usher.probe.failures_held_back", (int64_t)held),
		};
		usher_log_event(s->log, USHER_LOG_WARN, f, sizeof(f) / sizeof(f[0]),
				held ? "probe %s failing: %s (%s; %llu more failures since the last report)"
				     : "probe %s failed: %s (%s)",
				in->conf->name, run->err.msg[0] ? run->err.msg : "no detail",
				run->failure_reason, (unsigned long long)held);
	}
}

/* Adds the generic series to run's samples and publishes them. */
static void publish(struct usher_sched *s, struct instance *in, struct usher_probe_run *run)
{
	struct usher_sample_set *set = run->samples;
	double secs = (double)(usher_mono_ns() - run->started_mono_ns) / 1e9;

	if (!run->success && !run->failure_reason)
		run->failure_reason = USHER_FAIL_INTERNAL;
	if (run->success)
		in->ok_runs++;
	else
		in->failed_runs++;
	usher_histogram_observe(&in->hist, secs);
	if (in->conf->type->series == USHER_SERIES_SCRAPE) {
		usher_sample_add(set, &desc_up, run->success ? 1 : 0, NULL);
		usher_sample_add(set, &desc_scrape_duration, secs, NULL);
	} else {
		usher_sample_add(set, &desc_success, run->success ? 1 : 0, NULL);
		usher_sample_add(set, &desc_duration, secs, NULL);
		if (!run->success && in->conf->type->series == USHER_SERIES_PROBE)
			usher_sample_add(set, &desc_failure, 1, "reason", run->failure_reason, NULL);
	}
	usher_sample_add(set, &desc_runs, (double)in->ok_runs, "outcome", "success", NULL);
	usher_sample_add(set, &desc_runs, (double)in->failed_runs, "outcome", "failure", NULL);
	usher_sample_add_histogram(set, &desc_hist, &in->hist, NULL);
	usher_registry_publish(s->reg, in, set);
	run->samples = NULL;
	log_outcome(s, in, secs);
}

static void ended(struct usher_sched *s, struct instance *in)
{
	in->running = false;
	in->abandoned = false;
	s->running--;
	set_wake(s, in, in->next_due_ms);
}

/* Ends a run: the generic series, the log, the registry, the next start. */
static void run_finished(struct usher_probe_run *run)
{
	struct instance *in = run->owner;

	publish(in->sched, in, run);
	ended(in->sched, in);
}

/* A blocking run came back from its worker (on the loop thread). */
static void blocking_returned(struct usher_probe_run *run)
{
	struct instance *in = run->owner;
	struct usher_sched *s = in->sched;
	struct instance **z;

	if (in->zombie_cfg) {
		for (z = &s->zombies; *z != in; z = &(*z)->next_zombie)
			;
		*z = in->next_zombie;
		in->running = false;
		s->running--;
		instance_free(in);
		return;
	}
	if (in->abandoned) {
		/* its timeout was reported already: the late result is dropped */
		usher_sample_set_free(run->samples);
		run->samples = NULL;
		ended(s, in);
		return;
	}
	run_finished(run);
}

static void run_start(struct usher_sched *s, struct instance *in, int64_t now)
{
	struct usher_probe_run *run = &in->run;

	/* fixed rate: the next start does not drift with run length */
	in->next_due_ms += in->conf->interval_ms;
	if (in->next_due_ms <= now) /* we fell behind (a stalled loop): skip ahead */
		in->next_due_ms = now + in->conf->interval_ms - (now - in->next_due_ms) % in->conf->interval_ms;

	usher_arena_reset(in->arena);
	memset(run, 0, sizeof(*run));
	run->conf = in->conf;
	run->samples = usher_sample_set_new(in->base);
	run->arena = in->arena;
	run->started_mono_ns = usher_mono_ns();
	run->deadline_mono_ms = now + in->conf->timeout_ms;
	run->success = true;
	run->on_done = run_finished;
	run->owner = in;
	in->running = true;
	s->running++;
	set_wake(s, in, run->deadline_mono_ms + DEADLINE_GRACE_MS);
	if (blocking(in)) {
		if (!s->workers)
			s->workers = usher_workers_new(NWORKERS, s->loop);
		usher_workers_submit(s->workers, in->conf->type->run, in->ctx, run);
		return;
	}
	if (in->conf->type->start(in->ctx, run)) {
		/* it could not even start: that is this run's result */
		if (run->success)
			usher_probe_fail(run, USHER_FAIL_INTERNAL, "probe could not start");
		run_finished(run);
	}
}

static void run_overdue(struct usher_sched *s, struct instance *in)
{
	struct usher_probe_run *run = &in->run, late;

	if (!blocking(in)) {
		if (in->conf->type->cancel)
			in->conf->type->cancel(in->ctx, run);
		usher_probe_fail(run, USHER_FAIL_TIMEOUT, "no answer within timeout %lldms",
				 (long long)in->conf->timeout_ms);
		/* the type may have added partial samples; keep them with the failure */
		run_finished(run);
		return;
	}
	/* A worker still has the run: report the timeout now with a set of
	 * our own, ask the run to stop, and wait for it before the next start. */
	if (in->abandoned) {
		set_wake(s, in, INT64_MAX);
		return;
	}
	memset(&late, 0, sizeof(late));
	late.conf = in->conf;
	late.samples = usher_sample_set_new(in->base);
	late.started_mono_ns = run->started_mono_ns;
	late.success = true;
	usher_probe_fail(&late, USHER_FAIL_TIMEOUT, "no answer within timeout %lldms",
			 (long long)in->conf->timeout_ms);
	publish(s, in, &late);
	in->abandoned = true;
	if (in->conf->type->cancel)
		in->conf->type->cancel(in->ctx, run);
	set_wake(s, in, INT64_MAX);
}

/* ---- the scheduler ----------------------------------------------------- */

struct usher_sched *usher_sched_new(struct usher_loop *loop, struct usher_registry *reg,
				    struct usher_log *log)
{
	struct usher_sched *s = usher_calloc(1, sizeof(*s));

	s->loop = loop;
	s->reg = reg;
	s->log = log;
	s->env.loop = loop;
	s->env.log = log;
	if (loop && reg)
		usher_loop_register_metrics(loop, reg);
	return s;
}

static void drop_all(struct usher_sched *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		instance_drop(s, s->heap[i]);
	free(s->heap);
	s->heap = NULL;
	s->n = 0;
}

void usher_sched_free(struct usher_sched *s)
{
	struct instance *z, *next;

	if (!s)
		return;
	drop_all(s);
	/* workers finish what they run (asked to hurry above), then stop */
	usher_workers_free(s->workers);
	for (z = s->zombies; z; z = next) {
		next = z->next_zombie;
		z->running = false;
		instance_free(z);
	}
	usher_config_free(s->cfg);
	free(s);
}

static struct instance *find_old(struct usher_sched *s, const struct usher_probe_conf *pc)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->heap[i]->conf->name, pc->name) == 0 &&
		    s->heap[i]->conf->type == pc->type)
			return s->heap[i];
	return NULL;
}

enum usher_err usher_sched_apply(struct usher_sched *s, struct usher_config *cfg,
				 struct usher_error *err)
{
	struct instance **fresh = usher_calloc(cfg->nprobes ? cfg->nprobes : 1, sizeof(*fresh));
	int64_t now = usher_mono_ms();
	enum usher_err rc = USHER_OK;
	size_t i;

	for (i = 0; i < cfg->nprobes; i++) {
		const struct usher_probe_conf *pc = &cfg->probes[i];
		struct instance *in = usher_calloc(1, sizeof(*in)), *old;

		fresh[i] = in;
		in->conf = pc;
		in->sched = s;
		in->base = base_labels(pc);
		in->arena = usher_arena_new();
		in->hist.nbuckets = NBOUNDS;
		in->hist.bounds = duration_bounds;
		in->hist.counts = in->hist_counts;
		rc = pc->type->init(pc, &s->env, &in->ctx, err);
		if (rc) {
			usher_fail(err, rc, "probe %s: %s", pc->name, usher_strerror(rc));
			goto out;
		}
		old = find_old(s, pc);
		if (old) {
			in->ok_runs = old->ok_runs;
			in->failed_runs = old->failed_runs;
			memcpy(in->hist_counts, old->hist_counts, sizeof(in->hist_counts));
			in->hist.count = old->hist.count;
			in->hist.sum = old->hist.sum;
			in->complain = old->complain;
		}
		in->next_due_ms = now + phase_ms(pc);
		if (old && old->conf->interval_ms == pc->interval_ms)
			in->next_due_ms = old->next_due_ms;
		in->wake_ms = in->next_due_ms;
	}
out:
	if (rc) {
		for (i = 0; i < cfg->nprobes; i++)
			instance_free(fresh[i]);
		free(fresh);
		return rc;
	}
	/* kept probes serve their last samples until their first new run */
	for (i = 0; i < cfg->nprobes; i++) {
		struct instance *old = find_old(s, fresh[i]->conf);

		if (old)
			usher_registry_move(s->reg, old, fresh[i]);
	}
	drop_all(s);
	usher_config_free(s->cfg);
	s->cfg = usher_config_ref(cfg);
	s->heap = fresh;
	s->n = cfg->nprobes;
	for (i = 0; i < s->n; i++)
		s->heap[i]->heap_pos = i;
	for (i = s->n; i-- > 0;)
		heap_fix(s, i);
	return USHER_OK;
}

void usher_sched_tick(struct usher_sched *s, int64_t now)
{
	/* bounded: each instance is handled at most once per tick */
	size_t budget = s->n;

	if (s->workers)
		usher_workers_collect(s->workers, blocking_returned);
	while (s->n && budget-- && s->heap[0]->wake_ms <= now) {
		struct instance *in = s->heap[0];

		if (in->running)
			run_overdue(s, in);
		else
			run_start(s, in, now);
	}
}

int usher_sched_wait_ms(const struct usher_sched *s, int64_t now, int max_ms)
{
	int64_t d;

	if (!s->n)
		return max_ms;
	d = s->heap[0]->wake_ms - now;
	if (d < 0)
		return 0;
	return d < max_ms ? (int)d : max_ms;
}

size_t usher_sched_count(const struct usher_sched *s)
{
	return s->n;
}

size_t usher_sched_running(const struct usher_sched *s)
{
	return s->running;
}
