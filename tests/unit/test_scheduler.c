/* Unit tests of the probe scheduler with a scripted probe type: spreading,
 * fixed-rate starts, no overlap, deadlines, reloads and published series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "core/timeutil.h"
#include "metrics/registry.h"
#include "probes/loop.h"
#include "probes/probe.h"
#include "probes/scheduler.h"

/* What the fake type does with each run. */
enum script { FINISH_OK, FINISH_FAIL, HANG, REFUSE_INIT };

struct fake {
	enum script script;
	int starts, cancels, frees;
	struct usher_probe_run *inflight;
	int64_t start_times[64];
};

static const struct usher_metric_desc desc_fake = {"fake_value", USHER_METRIC_GAUGE,
						   "A value the fake probe reports"};

static enum usher_err fake_init(const struct usher_probe_conf *pc, const struct usher_probe_env *env,
				void **ctx, struct usher_error *err)
{
	struct fake *f = pc->opts;

	if (f->script == REFUSE_INIT)
		return usher_fail(err, USHER_ERR_INVALID, "refused");
	*ctx = f;
	return USHER_OK;
}

static enum usher_err fake_start(void *ctx, struct usher_probe_run *run)
{
	struct fake *f = ctx;

	assert_null(f->inflight); /* never overlapping itself */
	if (f->starts < 64)
		f->start_times[f->starts] = run->deadline_mono_ms - run->conf->timeout_ms;
	f->starts++;
	usher_sample_add(run->samples, &desc_fake, 42, NULL);
	switch (f->script) {
	case FINISH_OK:
		usher_probe_run_done(run);
		break;
	case FINISH_FAIL:
		usher_probe_fail(run, USHER_FAIL_STATUS, "status 503");
		usher_probe_run_done(run);
		break;
	default:
		f->inflight = run;
	}
	return USHER_OK;
}

static void fake_cancel(void *ctx, struct usher_probe_run *run)
{
	struct fake *f = ctx;

	assert_ptr_equal(f->inflight, run);
	f->inflight = NULL;
	f->cancels++;
}

static void fake_free(void *ctx)
{
	((struct fake *)ctx)->frees++;
}

static const struct usher_probe_type fake_type = {
	.name = "fake",
	.init = fake_init,
	.start = fake_start,
	.cancel = fake_cancel,
	.free = fake_free,
};

#define NPROBES 8

struct env {
	struct usher_config cfg;
	struct usher_probe_conf probes[NPROBES];
	struct fake fakes[NPROBES];
	char names[NPROBES][32];
	struct usher_registry *reg;
	struct usher_loop *loop;
	struct usher_sched *sched;
};

static void setup_cfg(struct env *e, size_t n, int64_t interval, int64_t timeout, enum script s)
{
	size_t i;

	memset(&e->cfg, 0, sizeof(e->cfg));
	e->cfg.refs = 1; /* owned by the test, never freed by the scheduler */
	e->cfg.probes = e->probes;
	e->cfg.nprobes = n;
	for (i = 0; i < n; i++) {
		snprintf(e->names[i], sizeof(e->names[i]), "p%zu", i);
		e->probes[i] = (struct usher_probe_conf){
			.name = e->names[i], .type_name = "fake", .type = &fake_type,
			.interval_ms = interval, .timeout_ms = timeout,
			.job = e->names[i], .instance = "here:1", .opts = &e->fakes[i],
		};
		memset(&e->fakes[i], 0, sizeof(e->fakes[i]));
		e->fakes[i].script = s;
	}
}

static struct env *env_new(void)
{
	struct env *e = test_calloc(1, sizeof(*e));

	e->reg = usher_registry_new();
	e->loop = usher_loop_new();
	e->sched = usher_sched_new(e->loop, e->reg, NULL);
	return e;
}

static void env_free(struct env *e)
{
	usher_sched_free(e->sched);
	usher_loop_free(e->loop);
	usher_registry_free(e->reg);
	test_free(e);
}

static char *render(struct env *e)
{
	static char out[1 << 16];
	struct usher_buf b;

	usher_buf_init(&b, sizeof(out) - 1);
	assert_int_equal(usher_registry_render(e->reg, USHER_EXPO_TEXT, &b), USHER_OK);
	memcpy(out, usher_buf_str(&b), b.len + 1);
	usher_buf_free(&b);
	return out;
}

/* Ticks from now to now+span in 1 ms steps (virtual time). */
static void run_for(struct env *e, int64_t from, int64_t span)
{
	int64_t t;

	for (t = from; t <= from + span; t++)
		usher_sched_tick(e->sched, t);
}

static void test_spread_and_rate(void **state)
{
	struct env *e = env_new();
	int64_t now = usher_mono_ms(), first[NPROBES];
	size_t i, distinct = 0;

	(void)state;
	setup_cfg(e, NPROBES, 1000, 500, FINISH_OK);
	assert_int_equal(usher_sched_apply(e->sched, &e->cfg, NULL), USHER_OK);
	assert_int_equal(usher_sched_count(e->sched), NPROBES);
	run_for(e, now, 3500);
	for (i = 0; i < NPROBES; i++) {
		struct fake *f = &e->fakes[i];

		/* the first start falls within the first interval, then every
		 * start is exactly one interval after the one before */
		assert_true(f->starts >= 3 && f->starts <= 4);
		first[i] = f->start_times[0] - now;
		assert_true(first[i] >= 0 && first[i] < 1000);
		assert_int_equal(f->start_times[1] - f->start_times[0], 1000);
		assert_int_equal(f->start_times[2] - f->start_times[1], 1000);
	}
	for (i = 0; i < NPROBES; i++) {
		size_t j;

		for (j = 0; j < i && first[j] != first[i]; j++)
			;
		distinct += j == i;
	}
	assert_true(distinct >= NPROBES - 2); /* spread, not all at once */
	env_free(e);
}

static void test_series_published(void **state)
{
	struct env *e = env_new();
	int64_t now = usher_mono_ms();
	const char *out;

	(void)state;
	setup_cfg(e, 2, 1000, 500, FINISH_OK);
	e->fakes[1].script = FINISH_FAIL;
	assert_int_equal(usher_sched_apply(e->sched, &e->cfg, NULL), USHER_OK);
	run_for(e, now, 2999);
	out = render(e);
	assert_non_null(strstr(out, "probe_success{job=\"p0\",instance=\"here:1\"} 1\n"));
	assert_non_null(strstr(out, "probe_success{job=\"p1\",instance=\"here:1\"} 0\n"));
	assert_non_null(strstr(out, "fake_value{job=\"p0\",instance=\"here:1\"} 42\n"));
	assert_non_null(
		strstr(out, "probe_failure_info{job=\"p1\",instance=\"here:1\",reason=\"status\"} 1\n"));
	assert_null(strstr(out, "probe_failure_info{job=\"p0\""));
	assert_non_null(strstr(out, "usher_probe_runs_total{job=\"p1\",instance=\"here:1\","
				    "outcome=\"failure\"} 3\n"));
	assert_non_null(strstr(out, "usher_probe_runs_total{job=\"p1\",instance=\"here:1\","
				    "outcome=\"success\"} 0\n"));
	assert_non_null(strstr(out, "usher_probe_duration_seconds_count{job=\"p0\",instance=\"here:1\"} 3\n"));
	env_free(e);
}

static void test_deadline(void **state)
{
	struct env *e = env_new();
	int64_t now = usher_mono_ms();
	struct fake *f;
	const char *out;

	(void)state;
	setup_cfg(e, 1, 1000, 300, HANG);
	f = &e->fakes[0];
	assert_int_equal(usher_sched_apply(e->sched, &e->cfg, NULL), USHER_OK);
	run_for(e, now, 999);
	assert_int_equal(f->starts, 1);
	/* cancelled at the deadline (plus grace), well before the next start */
	assert_int_equal(f->cancels, 1);
	assert_null(f->inflight);
	assert_int_equal(usher_sched_running(e->sched), 0);
	out = render(e);
	assert_non_null(strstr(out, "reason=\"timeout\"} 1\n"));
	assert_non_null(strstr(out, "probe_success{job=\"p0\",instance=\"here:1\"} 0\n"));
	run_for(e, now + 1000, 1000);
	assert_int_equal(f->starts, 2);
	env_free(e);
}

static void test_reload(void **state)
{
	struct env *e = env_new();
	struct env *next = env_new();
	int64_t now = usher_mono_ms();
	struct usher_error err;
	const char *out;

	(void)state;
	setup_cfg(e, 2, 1000, 300, FINISH_OK);
	assert_int_equal(usher_sched_apply(e->sched, &e->cfg, NULL), USHER_OK);
	run_for(e, now, 2999);

	/* a reload where one new probe cannot start changes nothing */
	setup_cfg(next, 3, 1000, 300, FINISH_OK);
	next->fakes[2].script = REFUSE_INIT;
	usher_error_clear(&err);
	assert_int_equal(usher_sched_apply(e->sched, &next->cfg, &err), USHER_ERR_INVALID);
	assert_string_equal(err.msg, "refused");
	assert_int_equal(usher_sched_count(e->sched), 2);
	assert_int_equal(next->fakes[0].frees, 1); /* the half-built ones were freed */
	assert_int_equal(e->fakes[0].frees, 0);

	/* a good one replaces the old probes; p0 keeps its counters */
	setup_cfg(next, 1, 1000, 300, FINISH_OK);
	assert_int_equal(usher_sched_apply(e->sched, &next->cfg, NULL), USHER_OK);
	assert_int_equal(e->fakes[0].frees, 1);
	assert_int_equal(e->fakes[1].frees, 1);
	run_for(e, now + 3000, 999);
	out = render(e);
	assert_null(strstr(out, "job=\"p1\""));
	assert_non_null(strstr(out, "usher_probe_runs_total{job=\"p0\",instance=\"here:1\","
				    "outcome=\"success\"} 4\n"));
	env_free(e);
	env_free(next);
}

static void test_free_cancels(void **state)
{
	struct env *e = env_new();
	int64_t now = usher_mono_ms();

	(void)state;
	setup_cfg(e, 3, 1000, 900, HANG);
	assert_int_equal(usher_sched_apply(e->sched, &e->cfg, NULL), USHER_OK);
	run_for(e, now, 999);
	assert_int_equal(usher_sched_running(e->sched), 3);
	usher_sched_free(e->sched);
	e->sched = NULL;
	assert_int_equal(e->fakes[0].cancels + e->fakes[1].cancels + e->fakes[2].cancels, 3);
	assert_int_equal(e->fakes[0].frees + e->fakes[1].frees + e->fakes[2].frees, 3);
	env_free(e);
}

/* ---- blocking types: runs on worker threads ---------------------------- */

struct blocker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool hang;     /* runs wait until cancelled */
	bool released; /* cancel was called */
	int runs, cancels, frees, in_run;
};

static enum usher_err blocker_init(const struct usher_probe_conf *pc,
				   const struct usher_probe_env *env, void **ctx,
				   struct usher_error *err)
{
	*ctx = pc->opts;
	return USHER_OK;
}

static void blocker_run(void *ctx, struct usher_probe_run *run)
{
	struct blocker *b = ctx;

	pthread_mutex_lock(&b->lock);
	b->runs++;
	b->in_run++;
	assert_true(b->in_run == 1); /* never overlapping itself */
	while (b->hang && !b->released)
		pthread_cond_wait(&b->cond, &b->lock);
	if (b->released)
		usher_probe_fail(run, USHER_FAIL_CONNECT, "interrupted");
	b->released = false;
	b->in_run--;
	pthread_mutex_unlock(&b->lock);
	/* the config stays valid while a worker runs, even after a reload */
	usher_sample_add(run->samples, &desc_fake, (double)strlen(run->conf->name), NULL);
}

static void blocker_cancel(void *ctx, struct usher_probe_run *run)
{
	struct blocker *b = ctx;

	pthread_mutex_lock(&b->lock);
	b->cancels++;
	if (b->in_run)
		b->released = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

static void blocker_free(void *ctx)
{
	struct blocker *b = ctx;

	pthread_mutex_lock(&b->lock);
	b->frees++;
	pthread_mutex_unlock(&b->lock);
}

static const struct usher_probe_type blocker_type = {
	.name = "blocker",
	.init = blocker_init,
	.run = blocker_run,
	.cancel = blocker_cancel,
	.free = blocker_free,
};

/* Drives the scheduler in real time for ms milliseconds. */
static void drive(struct usher_sched *s, struct usher_loop *loop, int64_t ms)
{
	int64_t end = usher_mono_ms() + ms;

	while (usher_mono_ms() < end) {
		usher_sched_tick(s, usher_mono_ms());
		usher_loop_poll(loop, usher_sched_wait_ms(s, usher_mono_ms(), 5), NULL, 0);
	}
}

static int blocker_get(struct blocker *b, const int *field)
{
	int v;

	pthread_mutex_lock(&b->lock);
	v = *field;
	pthread_mutex_unlock(&b->lock);
	return v;
}

static void test_blocking(void **state)
{
	struct env *e = env_new();
	struct blocker b = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	const char *out;

	(void)state;
	setup_cfg(e, 1, 200, 100, FINISH_OK);
	e->probes[0].type = &blocker_type;
	e->probes[0].opts = &b;
	assert_int_equal(usher_sched_apply(e->sched, &e->cfg, NULL), USHER_OK);
	drive(e->sched, e->loop, 700);
	assert_true(blocker_get(&b, &b.runs) >= 2);
	out = render(e);
	assert_non_null(strstr(out, "probe_success{job=\"p0\",instance=\"here:1\"} 1\n"));
	assert_non_null(strstr(out, "fake_value{job=\"p0\",instance=\"here:1\"} 2\n"));

	/* a hung run: the timeout is reported while the worker still has it,
	 * the run is asked to stop, and its late result is dropped */
	pthread_mutex_lock(&b.lock);
	b.hang = true;
	pthread_mutex_unlock(&b.lock);
	drive(e->sched, e->loop, 600);
	out = render(e);
	assert_non_null(strstr(out, "probe_failure_info{job=\"p0\",instance=\"here:1\","
				    "reason=\"timeout\"} 1\n"));
	assert_null(strstr(out, "reason=\"connect\""));
	assert_true(blocker_get(&b, &b.cancels) >= 1);
	env_free(e);
	assert_int_equal(b.frees, 1);
}

static void test_blocking_reload_and_free(void **state)
{
	struct env *e = env_new();
	struct env *next = env_new();
	struct blocker b = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
			    .hang = true};
	struct blocker b2 = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
			     .hang = true};
	int64_t end;

	(void)state;
	setup_cfg(e, 1, 10000, 9000, FINISH_OK);
	e->probes[0].type = &blocker_type;
	e->probes[0].opts = &b;
	assert_int_equal(usher_sched_apply(e->sched, &e->cfg, NULL), USHER_OK);
	end = usher_mono_ms() + 15000;
	while (blocker_get(&b, &b.in_run) == 0 && usher_mono_ms() < end)
		drive(e->sched, e->loop, 20);
	assert_int_equal(blocker_get(&b, &b.in_run), 1);

	/* reload away from it while its worker runs: it is asked to stop and
	 * freed once the worker hands it back, not before */
	setup_cfg(next, 1, 10000, 9000, FINISH_OK);
	next->probes[0].name = "other";
	next->probes[0].type = &blocker_type;
	next->probes[0].opts = &b2;
	assert_int_equal(usher_sched_apply(e->sched, &next->cfg, NULL), USHER_OK);
	end = usher_mono_ms() + 5000;
	while (blocker_get(&b, &b.frees) == 0 && usher_mono_ms() < end)
		drive(e->sched, e->loop, 20);
	assert_int_equal(blocker_get(&b, &b.frees), 1);
	assert_true(blocker_get(&b, &b.cancels) >= 1);

	/* freeing the scheduler interrupts a hung run and waits for it */
	end = usher_mono_ms() + 15000;
	while (blocker_get(&b2, &b2.in_run) == 0 && usher_mono_ms() < end)
		drive(e->sched, e->loop, 20);
	assert_int_equal(blocker_get(&b2, &b2.in_run), 1);
	usher_sched_free(e->sched);
	e->sched = NULL;
	assert_int_equal(b2.frees, 1);
	assert_int_equal(b2.in_run, 0);
	env_free(e);
	env_free(next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spread_and_rate), cmocka_unit_test(test_series_published),
		cmocka_unit_test(test_deadline),        cmocka_unit_test(test_reload),
		cmocka_unit_test(test_free_cancels),    cmocka_unit_test(test_blocking),
		cmocka_unit_test(test_blocking_reload_and_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
