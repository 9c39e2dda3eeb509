/* Unit tests of the persisted delivery queue (lib/notify/delivery.c)
 * against a scripted integration: retries and backoff, refusals dropped
 * once, FIFO per group, per-queue rate limits, Retry-After, resolved
 * notifications filtered, removed integrations dropped, reloads releasing
 * the old receivers, a restart with pending rows delivering each exactly
 * once, and the metrics.
 *
 * Run with `--drive STATE_DIR CONFIG` it is instead the delivery driver the
 * receiver integration tests use (tests/integration/test_receiver_*.py):
 * it loads the `receivers:` of CONFIG with the real integration types,
 * runs the engine on STATE_DIR and takes commands on stdin:
 *	enqueue RECEIVER INTEGRATION INDEX KEY JSON   (KEY %-encoded: no spaces)
 *	pending          -> "pending N"
 *	metrics          -> the exposition, then "end"
 *	quit */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/options.h"
#include "config/yaml.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "notify/delivery.h"
#include "notify/integration.h"
#include "notify/notifytmpl.h"

/* ---- a scripted integration ------------------------------------------------ */

struct fake_opts {
	bool send_resolved;
	const char *queue;
	double rate;
};

#define SCRIPT_MAX 64
static struct {
	pthread_mutex_t mu;
	/* outcomes to return, in order; past the end: OK */
	enum usher_delivery_outcome script[SCRIPT_MAX];
	int64_t retry_after[SCRIPT_MAX];
	int nscript, pos;
	/* what was delivered (OK) and attempted */
	char keys[SCRIPT_MAX][64];
	char bodies[SCRIPT_MAX][256];
	int64_t at_ms[SCRIPT_MAX];
	int ndelivered, nattempts;
	bool always_retry;
} fk = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void fake_reset(void)
{
	pthread_mutex_lock(&fk.mu);
	fk.nscript = fk.pos = fk.ndelivered = fk.nattempts = 0;
	fk.always_retry = false;
	pthread_mutex_unlock(&fk.mu);
}

static void fake_script(enum usher_delivery_outcome o, int64_t retry_after)
{
	pthread_mutex_lock(&fk.mu);
	fk.retry_after[fk.nscript] = retry_after;
	fk.script[fk.nscript++] = o;
	pthread_mutex_unlock(&fk.mu);
}

static int fake_count(bool delivered)
{
	int n;

	pthread_mutex_lock(&fk.mu);
	n = delivered ? fk.ndelivered : fk.nattempts;
	pthread_mutex_unlock(&fk.mu);
	return n;
}

static void fake_deliver(const void *opts, const json_t *data, const char *key, int64_t timeout_ms,
			 struct usher_delivery_result *res)
{
	enum usher_delivery_outcome o = USHER_DELIVERY_OK;
	int64_t ra = 0;

	(void)opts;
	(void)timeout_ms;
	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&fk.mu);
	fk.nattempts++;
	if (fk.always_retry)
		o = USHER_DELIVERY_RETRY;
	else if (fk.pos < fk.nscript) {
		ra = fk.retry_after[fk.pos];
		o = fk.script[fk.pos++];
	}
	if (o == USHER_DELIVERY_OK && fk.ndelivered < SCRIPT_MAX) {
		char *s = json_dumps(json_object_get(data, "alerts"), JSON_COMPACT);

		snprintf(fk.keys[fk.ndelivered], sizeof(fk.keys[0]), "%s", key);
		snprintf(fk.bodies[fk.ndelivered], sizeof(fk.bodies[0]), "%s", s ? s : "");
		fk.at_ms[fk.ndelivered] = usher_mono_ms();
		free(s);
		fk.ndelivered++;
	}
	pthread_mutex_unlock(&fk.mu);
	res->outcome = o;
	res->retry_after_ms = ra;
	res->status = o == USHER_DELIVERY_OK ? 200 : o == USHER_DELIVERY_RETRY ? 503 : 400;
	if (o != USHER_DELIVERY_OK)
		usher_fail(&res->err, USHER_ERR_PROTOCOL, "fake answered %ld", res->status);
}

static bool fake_send_resolved(const void *opts)
{
	return ((const struct fake_opts *)opts)->send_resolved;
}

static const char *fake_queue_key(const void *opts)
{
	return ((const struct fake_opts *)opts)->queue;
}

static void fake_limits(const void *opts, int64_t *timeout_ms, int64_t *retry_for_ms)
{
	(void)opts;
	*timeout_ms = 1000;
	*retry_for_ms = 3000;
}

static const struct usher_integration_type fake_type = {
    .name = "fake",
    .opts_size = sizeof(struct fake_opts),
    .send_resolved = fake_send_resolved,
    .deliver = fake_deliver,
    .queue_key = fake_queue_key,
    .rate_per_s = 5.0,
    .limits = fake_limits,
};

/* The receivers of a test: one receiver "team" with two fake entries. */
struct fake_rcv {
	struct fake_opts opts[2];
	struct usher_integration_conf ic[2];
	int released;
};

static const struct usher_integration_conf *fake_lookup(void *arg, const char *receiver,
							const char *integration, int index)
{
	struct fake_rcv *r = arg;

	if (strcmp(receiver, "team") != 0 || strcmp(integration, "fake") != 0 || index < 0 ||
	    index > 1)
		return NULL;
	return &r->ic[index];
}

static void fake_release(void *arg)
{
	struct fake_rcv *r = arg;

	r->released++;
}

static void fake_rcv_init(struct fake_rcv *r)
{
	int i;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < 2; i++) {
		r->opts[i].send_resolved = true;
		r->ic[i].type = &fake_type;
		r->ic[i].opts = &r->opts[i];
		r->ic[i].index = i;
	}
}

static const char *data_json(const char *status, const char *id)
{
	static char buf[512];

	snprintf(buf, sizeof(buf),
		 "{\"version\":\"4\",\"status\":\"%s\",\"receiver\":\"team\",\"alerts\":["
		 "{\"status\":\"firing\",\"labels\":{\"id\":\"%s\"}},"
		 "{\"status\":\"resolved\",\"labels\":{\"id\":\"%s-r\"}}]}",
		 status, id, id);
	return buf;
}

static bool wait_for(int (*fn)(bool), bool arg, int want, int64_t timeout_ms)
{
	int64_t end = usher_mono_ms() + timeout_ms;

	while (usher_mono_ms() < end) {
		if (fn(arg) >= want)
			return true;
		usleep(10000);
	}
	return fn(arg) >= want;
}

static struct usher_store *open_store(char *dir)
{
	struct usher_store *st = NULL;
	struct usher_error err = {{0}};

	assert_non_null(mkdtemp(dir));
	assert_int_equal(usher_store_open(dir, &st, &err), USHER_OK);
	return st;
}

static void rm_store(const char *dir)
{
	char p[256];
	static const char *const files[] = {"usher.db", "usher.db-wal", "usher.db-shm"};
	size_t i;

	for (i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	rmdir(dir);
}

static const struct usher_delivery_conf fast = {
    .workers = 2, .min_backoff_ms = 20, .max_backoff_ms = 200};

/* ---- tests ------------------------------------------------------------------- */

static void test_backoff(void **state)
{
	struct usher_delivery_conf c = {.min_backoff_ms = 1000, .max_backoff_ms = 8000};
	int64_t b;

	(void)state;
	/* ±20% jitter around 1 s, 2 s, 4 s, then the cap */
	assert_int_equal(usher_delivery_backoff_ms(&c, 1, 0, 0.5), 1000);
	assert_true(usher_delivery_backoff_ms(&c, 1, 0, 0.0) >= 800);
	assert_true(usher_delivery_backoff_ms(&c, 1, 0, 0.999) < 1200);
	assert_int_equal(usher_delivery_backoff_ms(&c, 2, 0, 0.5), 2000);
	assert_int_equal(usher_delivery_backoff_ms(&c, 3, 0, 0.5), 4000);
	assert_int_equal(usher_delivery_backoff_ms(&c, 10, 0, 0.5), 8000);
	assert_int_equal(usher_delivery_backoff_ms(&c, 1000, 0, 0.5), 8000);
	/* a longer Retry-After wins, capped at an hour */
	assert_int_equal(usher_delivery_backoff_ms(&c, 1, 30000, 0.5), 30000);
	b = usher_delivery_backoff_ms(&c, 1, 100LL * 3600 * 1000, 0.5);
	assert_int_equal(b, 3600 * 1000);
	/* defaults: 1 s first */
	assert_int_equal(usher_delivery_backoff_ms(NULL, 1, 0, 0.5), 1000);
}

static void test_enqueue_invalid(void **state)
{
	char dir[] = "/tmp/usher-deliv-XXXXXX";
	struct usher_store *st = open_store(dir);
	struct usher_error err = {{0}};

	(void)state;
	assert_int_equal(usher_delivery_migrate(st, &err), USHER_OK);
	assert_int_equal(usher_delivery_enqueue(st, "", "fake", 0, "k", "{}", &err),
			 USHER_ERR_INVALID);
	assert_int_equal(usher_delivery_enqueue(st, "r", "fake", -1, "k", "{}", &err),
			 USHER_ERR_INVALID);
	assert_int_equal(usher_delivery_enqueue(st, "r", "fake", 0, NULL, "{}", &err),
			 USHER_ERR_INVALID);
	usher_store_close(st);
	rm_store(dir);
}

static void test_retry_then_ok_fifo(void **state)
{
	char dir[] = "/tmp/usher-deliv-XXXXXX";
	struct usher_store *st = open_store(dir);
	struct usher_registry *reg = usher_registry_new();
	struct usher_error err = {{0}};
	struct usher_delivery *d;
	struct fake_rcv r;
	struct usher_delivery_receivers rr = {fake_lookup, fake_release, &r};
	struct usher_buf out;

	(void)state;
	fake_reset();
	fake_rcv_init(&r);
	d = usher_delivery_new(st, NULL, reg, &fast, &err);
	assert_non_null(d);
	/* the first notification fails twice: the second of the same group
	 * must wait behind it */
	fake_script(USHER_DELIVERY_RETRY, 0);
	fake_script(USHER_DELIVERY_RETRY, 0);
	assert_int_equal(
	    usher_delivery_enqueue(st, "team", "fake", 0, "g1", data_json("firing", "a"), &err),
	    USHER_OK);
	assert_int_equal(
	    usher_delivery_enqueue(st, "team", "fake", 0, "g1", data_json("resolved", "b"), &err),
	    USHER_OK);
	usher_delivery_set_receivers(d, &rr);
	usher_delivery_kick(d);
	assert_true(wait_for(fake_count, true, 2, 5000));
	assert_int_equal(fake_count(false), 4);
	assert_non_null(strstr(fk.bodies[0], "\"a\""));
	assert_non_null(strstr(fk.bodies[1], "\"b\""));
	assert_string_equal(fk.keys[0], "g1");
	assert_int_equal(usher_delivery_pending(d), 0);

	usher_buf_init(&out, 1 << 20);
	assert_int_equal(usher_registry_render(reg, USHER_EXPO_TEXT, &out), USHER_OK);
	assert_non_null(strstr(usher_buf_str(&out),
			       "usher_notifications_total{receiver=\"team\",integration=\"fake\","
			       "outcome=\"sent\"} 2"));
	assert_non_null(strstr(usher_buf_str(&out),
			       "usher_notifications_total{receiver=\"team\",integration=\"fake\","
			       "outcome=\"retried\"} 2"));
	assert_non_null(strstr(usher_buf_str(&out),
			       "usher_notification_latency_seconds_count{receiver=\"team\","
			       "integration=\"fake\"} 2"));
	assert_non_null(strstr(usher_buf_str(&out), "usher_notifications_queued 0\n"));
	usher_buf_free(&out);
	usher_delivery_free(d);
	assert_int_equal(r.released, 1);
	usher_registry_free(reg);
	usher_store_close(st);
	rm_store(dir);
}

static void test_fail_dropped_once(void **state)
{
	char dir[] = "/tmp/usher-deliv-XXXXXX";
	struct usher_store *st = open_store(dir);
	struct usher_error err = {{0}};
	struct usher_delivery *d;
	struct fake_rcv r;
	struct usher_delivery_receivers rr = {fake_lookup, NULL, &r};
	char logpath[] = "/tmp/usher-deliv-log-XXXXXX";
	int fd = mkstemp(logpath);
	struct usher_log *log = usher_log_new(fd, USHER_LOG_FORMAT_TEXT, USHER_LOG_INFO, "t");
	char text[8192] = "";
	ssize_t n;
	const char *p;
	int refused = 0;

	(void)state;
	fake_reset();
	fake_rcv_init(&r);
	fake_script(USHER_DELIVERY_FAIL, 0);
	d = usher_delivery_new(st, log, NULL, &fast, &err);
	assert_non_null(d);
	usher_delivery_set_receivers(d, &rr);
	assert_int_equal(
	    usher_delivery_enqueue(st, "team", "fake", 1, "g2", data_json("firing", "x"), &err),
	    USHER_OK);
	usher_delivery_kick(d);
	assert_true(wait_for(fake_count, false, 1, 5000));
	/* the row goes with the refusal: no second attempt */
	{
		int64_t end = usher_mono_ms() + 3000;

		while (usher_delivery_pending(d) != 0 && usher_mono_ms() < end)
			usleep(10000);
	}
	assert_int_equal(usher_delivery_pending(d), 0);
	usleep(200000);
	assert_int_equal(fake_count(false), 1);
	assert_int_equal(fake_count(true), 0);
	usher_delivery_free(d);
	usher_log_free(log);
	n = pread(fd, text, sizeof(text) - 1, 0);
	assert_true(n > 0);
	text[n] = '\0';
	for (p = text; (p = strstr(p, "refused, not retried")) != NULL; p++)
		refused++;
	assert_int_equal(refused, 1);
	assert_non_null(strstr(text, "fake answered 400"));
	close(fd);
	unlink(logpath);
	usher_store_close(st);
	rm_store(dir);
}

static void test_send_resolved_and_dropped(void **state)
{
	char dir[] = "/tmp/usher-deliv-XXXXXX";
	struct usher_store *st = open_store(dir);
	struct usher_error err = {{0}};
	struct usher_delivery *d;
	struct fake_rcv r;
	struct usher_delivery_receivers rr = {fake_lookup, NULL, &r};

	(void)state;
	fake_reset();
	fake_rcv_init(&r);
	r.opts[0].send_resolved = false;
	d = usher_delivery_new(st, NULL, NULL, &fast, &err);
	assert_non_null(d);
	usher_delivery_set_receivers(d, &rr);
	/* all resolved: nothing is sent */
	assert_int_equal(usher_delivery_enqueue(st, "team", "fake", 0, "g3",
						"{\"status\":\"resolved\",\"alerts\":[{\"status\":"
						"\"resolved\",\"labels\":{}}]}",
						&err),
			 USHER_OK);
	/* firing with a resolved alert: only the firing one goes */
	assert_int_equal(
	    usher_delivery_enqueue(st, "team", "fake", 0, "g3", data_json("firing", "keep"), &err),
	    USHER_OK);
	/* an integration that is not configured (index 5): dropped */
	assert_int_equal(
	    usher_delivery_enqueue(st, "team", "fake", 5, "g4", data_json("firing", "gone"), &err),
	    USHER_OK);
	usher_delivery_kick(d);
	assert_true(wait_for(fake_count, true, 1, 5000));
	{
		int64_t end = usher_mono_ms() + 3000;

		while (usher_delivery_pending(d) != 0 && usher_mono_ms() < end)
			usleep(10000);
	}
	assert_int_equal(usher_delivery_pending(d), 0);
	assert_int_equal(fake_count(false), 1);
	assert_non_null(strstr(fk.bodies[0], "\"keep\""));
	assert_null(strstr(fk.bodies[0], "keep-r"));
	usher_delivery_free(d);
	usher_store_close(st);
	rm_store(dir);
}

static void test_rate_limit_and_retry_after(void **state)
{
	char dir[] = "/tmp/usher-deliv-XXXXXX";
	struct usher_store *st = open_store(dir);
	struct usher_error err = {{0}};
	struct usher_delivery *d;
	struct fake_rcv r;
	struct usher_delivery_receivers rr = {fake_lookup, NULL, &r};
	struct usher_delivery_conf c = fast;
	int i;
	int64_t t0;

	(void)state;
	fake_reset();
	fake_rcv_init(&r);
	/* both entries share one queue: 5/s means >= 200 ms apart */
	r.opts[0].queue = r.opts[1].queue = "https://hooks.example/T1";
	c.workers = 4;
	fake_script(USHER_DELIVERY_RETRY, 600); /* a 429 with Retry-After: 0.6 s */
	d = usher_delivery_new(st, NULL, NULL, &c, &err);
	assert_non_null(d);
	for (i = 0; i < 4; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(usher_delivery_enqueue(st, "team", "fake", i % 2, key,
							data_json("firing", key), &err),
				 USHER_OK);
	}
	t0 = usher_mono_ms();
	usher_delivery_set_receivers(d, &rr);
	assert_true(wait_for(fake_count, true, 4, 10000));
	/* the 429 held the queue for 0.6 s; then one every 200 ms */
	assert_true(fk.at_ms[0] - t0 >= 550);
	for (i = 1; i < 4; i++)
		assert_true(fk.at_ms[i] - fk.at_ms[i - 1] >= 180);
	usher_delivery_free(d);
	usher_store_close(st);
	rm_store(dir);
}

static void test_restart_exactly_once(void **state)
{
	char dir[] = "/tmp/usher-deliv-XXXXXX";
	struct usher_store *st = open_store(dir);
	struct usher_error err = {{0}};
	struct usher_delivery *d;
	struct fake_rcv r, r2;
	struct usher_delivery_receivers rr = {fake_lookup, fake_release, &r};
	struct usher_delivery_receivers rr2 = {fake_lookup, fake_release, &r2};
	int i, j;

	(void)state;
	fake_reset();
	fake_rcv_init(&r);
	fake_rcv_init(&r2);
	pthread_mutex_lock(&fk.mu);
	fk.always_retry = true; /* an outage */
	pthread_mutex_unlock(&fk.mu);
	d = usher_delivery_new(st, NULL, NULL, &fast, &err);
	assert_non_null(d);
	usher_delivery_set_receivers(d, &rr);
	for (i = 0; i < 5; i++) {
		char key[16];

		snprintf(key, sizeof(key), "r%d", i);
		assert_int_equal(usher_delivery_enqueue(st, "team", "fake", 0, key,
							data_json("firing", key), &err),
				 USHER_OK);
	}
	usher_delivery_kick(d);
	assert_true(wait_for(fake_count, false, 5, 5000));
	/* a reload: the old receivers are released once unused */
	usher_delivery_set_receivers(d, &rr2);
	usher_delivery_free(d);
	assert_int_equal(r.released, 1);
	assert_int_equal(r2.released, 1);
	usher_store_close(st);

	/* the next start, the outage over */
	assert_int_equal(usher_store_open(dir, &st, &err), USHER_OK);
	pthread_mutex_lock(&fk.mu);
	fk.always_retry = false;
	pthread_mutex_unlock(&fk.mu);
	d = usher_delivery_new(st, NULL, NULL, &fast, &err);
	assert_non_null(d);
	assert_int_equal(usher_delivery_pending(d), 5);
	usher_delivery_set_receivers(d, &rr);
	assert_true(wait_for(fake_count, true, 5, 10000));
	usleep(300000);
	assert_int_equal(fake_count(true), 5);
	assert_int_equal(usher_delivery_pending(d), 0);
	for (i = 0; i < 5; i++)
		for (j = i + 1; j < 5; j++)
			assert_string_not_equal(fk.keys[i], fk.keys[j]);
	usher_delivery_free(d);
	usher_store_close(st);
	rm_store(dir);
}

static void test_deadline(void **state)
{
	char dir[] = "/tmp/usher-deliv-XXXXXX";
	struct usher_store *st = open_store(dir);
	struct usher_registry *reg = usher_registry_new();
	struct usher_error err = {{0}};
	struct usher_delivery *d;
	struct fake_rcv r;
	struct usher_delivery_receivers rr = {fake_lookup, NULL, &r};
	struct usher_delivery_conf c = {.workers = 1, .min_backoff_ms = 400, .max_backoff_ms = 800};
	struct usher_buf out;
	int64_t end;

	(void)state;
	fake_reset();
	fake_rcv_init(&r);
	pthread_mutex_lock(&fk.mu);
	fk.always_retry = true;
	pthread_mutex_unlock(&fk.mu);
	d = usher_delivery_new(st, NULL, reg, &c, &err);
	assert_non_null(d);
	usher_delivery_set_receivers(d, &rr);
	assert_int_equal(
	    usher_delivery_enqueue(st, "team", "fake", 0, "dl", data_json("firing", "dl"), &err),
	    USHER_OK);
	usher_delivery_kick(d);
	/* retry_for is 3 s (fake_limits): the row goes within about 4 s */
	end = usher_mono_ms() + 8000;
	while (usher_delivery_pending(d) != 0 && usher_mono_ms() < end)
		usleep(20000);
	assert_int_equal(usher_delivery_pending(d), 0);
	assert_true(fake_count(false) >= 3);
	usher_buf_init(&out, 1 << 20);
	assert_int_equal(usher_registry_render(reg, USHER_EXPO_TEXT, &out), USHER_OK);
	assert_non_null(strstr(usher_buf_str(&out), "outcome=\"failed\"} 1"));
	usher_buf_free(&out);
	usher_delivery_free(d);
	usher_registry_free(reg);
	usher_store_close(st);
	rm_store(dir);
}

/* ---- the driver ---------------------------------------------------------------- */

struct drv_entry {
	char *receiver;
	struct usher_integration_conf ic;
};

struct drv {
	struct drv_entry *v;
	size_t n;
};

static const struct usher_integration_conf *drv_lookup(void *arg, const char *receiver,
						       const char *integration, int index)
{
	struct drv *dv = arg;
	size_t i;

	for (i = 0; i < dv->n; i++)
		if (strcmp(dv->v[i].receiver, receiver) == 0 &&
		    strcmp(dv->v[i].ic.type->name, integration) == 0 && dv->v[i].ic.index == index)
			return &dv->v[i].ic;
	return NULL;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct usher_buf b;
	char chunk[4096];
	size_t n;
	char *s;

	if (!f)
		return NULL;
	usher_buf_init(&b, 1 << 24);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		(void)usher_buf_add(&b, chunk, n);
	fclose(f);
	s = usher_strdup(usher_buf_str(&b));
	usher_buf_free(&b);
	return s;
}

/* Decodes %XX in s, in place. */
static void pct_decode(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '%' && s[1] && s[2]) {
			char hex[3] = {s[1], s[2], 0};

			*o++ = (char)strtol(hex, NULL, 16);
			s += 2;
		} else
			*o++ = *s;
	}
	*o = '\0';
}

static int drive(const char *state_dir, const char *config)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_diags diags;
	struct usher_cfgctx ctx;
	struct usher_ynode *root = NULL;
	const struct usher_ynode *rcvs, *dn, *tn;
	struct drv dv = {0};
	struct usher_store *st = NULL;
	struct usher_error err = {{0}};
	struct usher_delivery_conf dc = {0};
	struct usher_notifytmpl_lib *lib = NULL;
	struct usher_strlist globs = {0};
	struct usher_log *log;
	struct usher_registry *reg;
	struct usher_delivery *d;
	struct usher_delivery_receivers rr;
	char *text = slurp(config), *line = NULL;
	size_t cap = 0;
	size_t i, k, m;
	int rc = 1;

	usher_diags_init(&diags);
	memset(&ctx, 0, sizeof(ctx));
	ctx.file = config;
	ctx.arena = a;
	ctx.diags = &diags;
	if (!text || usher_yaml_parse(a, config, text, strlen(text), &root, &diags) != USHER_OK) {
		fprintf(stderr, "cannot read %s\n", config);
		usher_diags_print(&diags, stderr);
		return 1;
	}
	if ((dn = usher_ynode_get(root, "delivery")) != NULL) {
		const struct usher_ynode *v;

		if ((v = usher_ynode_get(dn, "workers")))
			dc.workers = (int)strtol(v->value, NULL, 10);
		if ((v = usher_ynode_get(dn, "min_backoff")))
			usher_duration_parse(v->value, &dc.min_backoff_ms);
		if ((v = usher_ynode_get(dn, "max_backoff")))
			usher_duration_parse(v->value, &dc.max_backoff_ms);
	}
	if ((tn = usher_ynode_get(root, "templates")) != NULL && tn->kind == USHER_Y_SEQ) {
		globs.v = usher_arena_zalloc(a, tn->n * sizeof(*globs.v));
		for (i = 0; i < tn->n; i++)
			globs.v[globs.n++] = tn->items[i]->value;
	}
	if (usher_notifytmpl_lib_new(&globs, NULL, &lib, &err) != USHER_OK) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	rcvs = usher_ynode_get(root, "receivers");
	for (i = 0; rcvs && i < rcvs->n; i++) {
		const struct usher_ynode *r = rcvs->items[i], *name = usher_ynode_get(r, "name");

		for (k = 0; k < r->n; k++) {
			const char *key = r->pairs[k].key->value;
			const struct usher_ynode *list = r->pairs[k].val;
			const struct usher_integration_type *t;
			char tname[64];
			size_t tl = strlen(key);

			if (strcmp(key, "name") == 0)
				continue;
			if (tl < 9 || strcmp(key + tl - 8, "_configs") != 0 ||
			    tl - 8 >= sizeof(tname)) {
				fprintf(stderr, "unknown key %s\n", key);
				return 1;
			}
			memcpy(tname, key, tl - 8);
			tname[tl - 8] = '\0';
			if (!(t = usher_integration_type_find(tname))) {
				fprintf(stderr, "unknown integration %s\n", tname);
				return 1;
			}
			for (m = 0; m < list->n; m++) {
				struct drv_entry *e;
				void *opts = usher_arena_zalloc(a, t->opts_size);

				if (usher_opts_apply1(&ctx, t->options, opts, list->items[m]) ||
				    (t->check && t->check(&ctx, opts, list->items[m]))) {
					usher_diags_print(&diags, stderr);
					return 1;
				}
				dv.v = usher_realloc(dv.v, (dv.n + 1) * sizeof(*dv.v));
				e = &dv.v[dv.n++];
				e->receiver = usher_strdup(name->value);
				e->ic.type = t;
				e->ic.opts = opts;
				e->ic.index = (int)m;
				e->ic.line = list->items[m]->line;
				e->ic.col = list->items[m]->col;
				if (usher_notifytmpl_bind(&e->ic, lib, &err) != USHER_OK) {
					fprintf(stderr, "%s\n", err.msg);
					return 1;
				}
			}
		}
	}
	if (usher_store_open(state_dir, &st, &err) != USHER_OK) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	log = usher_log_new(2, USHER_LOG_FORMAT_TEXT, USHER_LOG_DEBUG, "delivery-driver");
	reg = usher_registry_new();
	d = usher_delivery_new(st, log, reg, &dc, &err);
	if (!d) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	rr.lookup = drv_lookup;
	rr.release = NULL;
	rr.arg = &dv;
	usher_delivery_set_receivers(d, &rr);
	printf("ready\n");
	fflush(stdout);
	while (getline(&line, &cap, stdin) > 0) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		if (strncmp(line, "enqueue ", 8) == 0) {
			char *f[4], *p = line + 8;
			int nf;

			for (nf = 0; nf < 4 && p; nf++) {
				f[nf] = p;
				p = strchr(p, ' ');
				if (p)
					*p++ = '\0';
			}
			if (nf == 4)
				pct_decode(f[3]);
			if (nf < 4 || !p) {
				printf("error: enqueue RECEIVER INTEGRATION INDEX KEY JSON\n");
			} else if (usher_delivery_enqueue(st, f[0], f[1],
							  (int)strtol(f[2], NULL, 10), f[3], p,
							  &err) != USHER_OK) {
				printf("error: %s\n", err.msg);
			} else {
				usher_delivery_kick(d);
				printf("ok\n");
			}
		} else if (strcmp(line, "pending") == 0) {
			printf("pending %lld\n", (long long)usher_delivery_pending(d));
		} else if (strcmp(line, "metrics") == 0) {
			struct usher_buf out;

			usher_buf_init(&out, 1 << 22);
			(void)usher_registry_render(reg, USHER_EXPO_TEXT, &out);
			printf("%send\n", usher_buf_str(&out));
			usher_buf_free(&out);
		} else if (strcmp(line, "quit") == 0) {
			rc = 0;
			break;
		}
		fflush(stdout);
	}
	usher_delivery_free(d);
	usher_registry_free(reg);
	usher_log_free(log);
	usher_store_close(st);
	for (i = 0; i < dv.n; i++) {
		if (dv.v[i].ic.type->free)
			dv.v[i].ic.type->free(dv.v[i].ic.opts);
		free(dv.v[i].receiver);
	}
	free(dv.v);
	usher_notifytmpl_lib_free(lib);
	usher_diags_free(&diags);
	usher_arena_free(a);
	free(text);
	free(line);
	printf("bye\n");
	fflush(stdout);
	return rc;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_enqueue_invalid),
	    cmocka_unit_test(test_retry_then_ok_fifo),
	    cmocka_unit_test(test_fail_dropped_once),
	    cmocka_unit_test(test_send_resolved_and_dropped),
	    cmocka_unit_test(test_rate_limit_and_retry_after),
	    cmocka_unit_test(test_restart_exactly_once),
	    cmocka_unit_test(test_deadline),
	};

	if (argc == 4 && strcmp(argv[1], "--drive") == 0) {
		int rc;

		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = drive(argv[2], argv[3]);
		curl_global_cleanup();
		return rc;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
