/* usher diag's one-shot runner: every selected probe runs once, now, all at
 * the same time and each bounded by its timeout, on the daemon's own
 * machinery (the loop for asynchronous types, the worker pool for blocking
 * ones); the deep checks of PostgreSQL and Redis probes run meanwhile on
 * threads of their own. The scheduler is not used: it spreads first runs
 * over the interval, and diag wants them all at once. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "metrics/registry.h"
#include "probes/diag.h"
#include "probes/loop.h"
#include "probes/probe.h"
#include "probes/workers.h"

/* How long past its deadline a run may go before diag cancels it. */
#define GRACE_MS 100
/* A blocking run asked to stop is waited for this much longer, at most;
 * its worker is then left to finish while diag reports the timeout. */
#define CANCEL_WAIT_MS      5000
#define MAX_WORKERS         16
#define DEEP_MIN_TIMEOUT_MS 5000
#define TRACE_MAX           (1024 * 1024)
#define RENDER_MAX          (64 * 1024 * 1024)

struct slot {
	const struct usher_probe_conf *pc;
	const struct usher_diag_opts *opts;
	struct usher_diag_report *rep;
	void *ctx;
	const char **base;
	struct usher_arena *arena;
	struct usher_buf trace;
	struct usher_probe_run run;
	bool blocking;
	bool running;
	bool cancelled;
	double secs;
	/* the deep checks, on a thread of their own, into a report of their own */
	bool deep;
	pthread_t thread;
	struct usher_diag_report deep_rep;
	int64_t deep_deadline;
};

static void run_ended(struct usher_probe_run *run)
{
	struct slot *s = run->owner;

	if (!s->running)
		return;
	s->running = false;
	s->secs = (double)(usher_mono_ns() - run->started_mono_ns) / 1e9;
}

static void *deep_main(void *arg)
{
	struct slot *s = arg;

	if (strcmp(s->pc->type->name, "postgres") == 0)
		usher_diag_postgres(s->pc, s->opts, s->deep_deadline, &s->deep_rep);
	else
		usher_diag_redis(s->pc, s->opts, s->deep_deadline, &s->deep_rep);
	return NULL;
}

static bool has_deep(const struct usher_probe_conf *pc)
{
	return strcmp(pc->type->name, "postgres") == 0 || strcmp(pc->type->name, "redis") == 0;
}

static bool selected(const struct usher_probe_conf *pc, const struct usher_diag_opts *o)
{
	size_t i;

	if (!o->nnames)
		return true;
	for (i = 0; i < o->nnames; i++)
		if (strcmp(o->names[i], pc->name) == 0)
			return true;
	return false;
}

/* The run's samples, rendered as /metrics would and parsed back into the
 * report, so checks read them by name as a Prometheus user would. */
static void keep_samples(struct slot *s)
{
	struct usher_registry *reg = usher_registry_new();
	struct usher_buf text;
	struct usher_tp_error perr;

	usher_buf_init(&text, RENDER_MAX);
	usher_registry_publish(reg, s, s->run.samples);
	s->run.samples = NULL;
	if (usher_registry_render(reg, USHER_EXPO_TEXT, &text) == USHER_OK &&
	    usher_textparse(usher_buf_str(&text), text.len, USHER_TP_TEXT, NULL, s->rep->arena,
			    &s->rep->samples, &perr) != USHER_OK)
		memset(&s->rep->samples, 0, sizeof(s->rep->samples));
	usher_buf_free(&text);
	usher_registry_free(reg);
}

static void merge_deep(struct slot *s)
{
	struct usher_diag_report *d = &s->deep_rep;
	size_t i;

	for (i = 0; i < d->nfindings; i++) {
		const struct usher_diag_finding *f = &d->findings[i];
		struct usher_diag_finding *g = usher_diag_add(s->rep, f->status, f->check, f->alert,
							      f->hint, "%s", f->summary);

		usher_diag_detail(s->rep, g, f->detail);
	}
}

enum usher_err usher_diag_run(const struct usher_config *cfg, const struct usher_diag_opts *opts,
			      struct usher_diag_report **out, size_t *n, struct usher_error *err)
{
	struct usher_loop *loop = NULL;
	struct usher_workers *workers = NULL;
	struct usher_log *log = NULL;
	struct usher_probe_env env;
	struct usher_diag_report *reps = NULL;
	struct slot *slots = NULL;
	size_t i, k, nsel = 0, nblocking = 0, pending = 0;
	enum usher_err rc = USHER_OK;

	*out = NULL;
	*n = 0;
	for (k = 0; k < opts->nnames; k++) {
		for (i = 0; i < cfg->nprobes; i++)
			if (strcmp(cfg->probes[i].name, opts->names[k]) == 0)
				break;
		if (i == cfg->nprobes) {
			struct usher_buf known;

			usher_buf_init(&known, 400);
			for (i = 0; i < cfg->nprobes; i++)
				if (usher_buf_addf(&known, "%s%s", i ? ", " : "",
						   cfg->probes[i].name)) {
					usher_buf_addstr(&known, ", ...");
					break;
				}
			usher_fail(err, USHER_ERR_NOTFOUND,
				   "no probe named \"%s\" in %s (it has: %s)", opts->names[k],
				   cfg->path ? cfg->path : "the configuration",
				   cfg->nprobes ? usher_buf_str(&known) : "none");
			usher_buf_free(&known);
			return USHER_ERR_NOTFOUND;
		}
	}
	for (i = 0; i < cfg->nprobes; i++)
		nsel += selected(&cfg->probes[i], opts);
	reps = usher_calloc(nsel ? nsel : 1, sizeof(*reps));
	slots = usher_calloc(nsel ? nsel : 1, sizeof(*slots));
	loop = usher_loop_new();
	log = usher_log_new(STDERR_FILENO, USHER_LOG_FORMAT_TEXT, USHER_LOG_ERROR, "usher");
	env.loop = loop;
	env.log = log;

	/* set every probe up first: one that cannot be is an error of the
	 * config, reported before anything runs */
	for (i = 0, k = 0; i < cfg->nprobes; i++) {
		const struct usher_probe_conf *pc = &cfg->probes[i];
		struct slot *s;

		if (!selected(pc, opts))
			continue;
		s = &slots[k];
		s->pc = pc;
		s->opts = opts;
		s->rep = &reps[k];
		s->rep->conf = pc;
		s->rep->arena = usher_arena_new();
		s->base = usher_probe_base_labels(pc);
		s->arena = usher_arena_new();
		s->blocking = pc->type->run != NULL;
		usher_buf_init(&s->trace, TRACE_MAX);
		k++;
		rc = pc->type->init(pc, &env, &s->ctx, err);
		if (rc) {
			usher_fail(err, rc, "probe %s: %s", pc->name, usher_strerror(rc));
			goto out;
		}
		nblocking += s->blocking;
	}
	if (nblocking)
		workers = usher_workers_new(
		    nblocking < MAX_WORKERS ? (unsigned)nblocking : MAX_WORKERS, loop);

	/* start everything at once */
	for (k = 0; k < nsel; k++) {
		struct slot *s = &slots[k];
		struct usher_probe_run *run = &s->run;
		int64_t now = usher_mono_ms();

		if (has_deep(s->pc)) {
			int64_t t = opts->deep_timeout_ms;

			if (t <= 0)
				t = s->pc->timeout_ms > DEEP_MIN_TIMEOUT_MS ? s->pc->timeout_ms
									    : DEEP_MIN_TIMEOUT_MS;
			s->deep_deadline = now + t;
			s->deep_rep.conf = s->pc;
			s->deep_rep.arena = usher_arena_new();
			s->deep = pthread_create(&s->thread, NULL, deep_main, s) == 0;
			if (!s->deep)
				usher_diag_add(s->rep, USHER_DIAG_WARN, "diag", NULL, NULL,
					       "deep checks skipped: no thread could be started");
		}
		run->conf = s->pc;
		run->samples = usher_sample_set_new(s->base);
		run->arena = s->arena;
		run->started_mono_ns = usher_mono_ns();
		run->deadline_mono_ms = now + s->pc->timeout_ms;
		run->success = true;
		run->on_done = run_ended;
		run->owner = s;
		if (opts->trace_all || opts->nnames)
			run->trace = &s->trace;
		s->running = true;
		pending++;
		if (s->blocking) {
			usher_workers_submit(workers, s->pc->type->run, s->ctx, run);
			continue;
		}
		if (s->pc->type->start(s->ctx, run)) {
			if (run->success)
				usher_probe_fail(run, USHER_FAIL_INTERNAL, "probe could not start");
			run_ended(run);
		}
	}

	/* drive the loop until every run is back */
	for (;;) {
		int64_t now = usher_mono_ms(), wake = now + 1000;

		pending = 0;
		for (k = 0; k < nsel; k++) {
			struct slot *s = &slots[k];
			int64_t due = s->run.deadline_mono_ms + GRACE_MS;

			if (!s->running)
				continue;
			if (s->blocking && s->cancelled &&
			    now >= s->run.deadline_mono_ms + CANCEL_WAIT_MS) {
				/* left to its worker; usher_workers_free waits for it */
				continue;
			}
			if (now >= due && !s->cancelled) {
				s->cancelled = true;
				if (s->pc->type->cancel)
					s->pc->type->cancel(s->ctx, &s->run);
				/* a worker's run is its own until it comes back:
				 * only an asynchronous one is failed here */
				if (!s->blocking) {
					usher_probe_fail(&s->run, USHER_FAIL_TIMEOUT,
							 "no answer within timeout %lldms",
							 (long long)s->pc->timeout_ms);
					run_ended(&s->run);
					continue;
				}
			}
			pending++;
			due = s->cancelled ? s->run.deadline_mono_ms + CANCEL_WAIT_MS : due;
			if (due < wake)
				wake = due;
		}
		if (!pending)
			break;
		usher_loop_poll(loop, (int)(wake > now ? wake - now : 0), NULL, 0);
		if (workers)
			usher_workers_collect(workers, run_ended);
	}
	/* workers still busy with an overdue run finish it here (bounded) */
	usher_workers_free(workers);
	workers = NULL;

	for (k = 0; k < nsel; k++) {
		struct slot *s = &slots[k];
		struct usher_diag_report *r = s->rep;

		if (s->running) { /* abandoned to its worker, now returned */
			run_ended(&s->run);
			usher_probe_fail(&s->run, USHER_FAIL_TIMEOUT,
					 "no answer within timeout %lldms, nor %dms after a cancel",
					 (long long)s->pc->timeout_ms, CANCEL_WAIT_MS);
		}
		if (s->deep) {
			pthread_join(s->thread, NULL);
			s->deep = false;
		}
		r->probe_success = s->run.success;
		r->duration_s = s->secs;
		if (!s->run.success) {
			r->failure_reason =
			    s->run.failure_reason ? s->run.failure_reason : USHER_FAIL_INTERNAL;
			r->error = usher_arena_strdup(
			    r->arena, usher_error_msg(&s->run.err, USHER_ERR_INTERNAL));
			r->status = USHER_DIAG_FAIL;
		}
		if (s->run.trace)
			r->trace = usher_arena_strdup(r->arena, usher_buf_str(&s->trace));
		keep_samples(s);
		usher_diag_from_samples(&opts->th, usher_now_ms() / 1000, r);
		merge_deep(s);
	}
	*out = reps;
	*n = nsel;
	reps = NULL;
out:
	usher_workers_free(workers);
	for (k = 0; k < nsel; k++) {
		struct slot *s = &slots[k];

		if (!s->pc)
			continue;
		if (s->deep)
			pthread_join(s->thread, NULL);
		if (s->running && !s->blocking && s->pc->type->cancel)
			s->pc->type->cancel(s->ctx, &s->run);
		if (s->ctx && s->pc->type->free)
			s->pc->type->free(s->ctx);
		usher_sample_set_free(s->run.samples);
		usher_arena_free(s->deep_rep.arena);
		usher_arena_free(s->arena);
		usher_buf_free(&s->trace);
		free(s->base);
	}
	free(slots);
	usher_diag_reports_free(reps, nsel);
	usher_loop_free(loop);
	usher_log_free(log);
	return rc;
}
