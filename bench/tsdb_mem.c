/* Memory per sample of the series store: 10,000 series x 480 samples (2 h
 * at 15 s, the benchmark shape) of counters, gauges and histogram
 * buckets with scrape jitter, then `sum by (job) (rate(x[5m]))` latency.
 * Reports the store's own accounting and the heap growth (mallinfo2).
 *
 *   cc -O2 -Ilib -I<build>/generated bench/tsdb_mem.c <build>/lib/libusher.a \
 *      -lpcre2-8 -lm -lpthread -o tsdb_mem && ./tsdb_mem
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "promql/engine.h"
#include "tsdb/tsdb.h"

#define SERIES  10000
#define SAMPLES 480
#define STEP_MS 15000

static uint64_t state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

int main(void)
{
	struct usher_tsdb *db = usher_tsdb_new(NULL);
	struct usher_tsdb_batch *b = usher_tsdb_batch_new(db);
	struct usher_promql_engine *eng = usher_promql_engine_new(NULL);
	struct usher_storage st = usher_tsdb_storage(db);
	struct usher_tsdb_stats s;
	struct mallinfo2 before, after;
	char name[48], job[16], inst[32], extra[16];
	const char *pairs[] = {"__name__", name, "job", job, "instance", inst, "le", extra, NULL};
	double *counters = calloc(SERIES, sizeof(double));
	int64_t t0 = 1700000000000LL, start, q0;
	int i, k;

	before = mallinfo2();
	start = usher_mono_ms();
	for (k = 0; k < SAMPLES; k++) {
		int64_t t = t0 + (int64_t)k * STEP_MS;

		for (i = 0; i < SERIES; i++) {
			int kind = i % 10;
			double v;

			snprintf(job, sizeof(job), "job-%d", i % 20);
			snprintf(inst, sizeof(inst), "10.0.%d.%d:9100", i / 250, i % 250);
			if (kind < 6) { /* counters: irregular increments */
				snprintf(name, sizeof(name), "http_requests_total_%d", i % 50);
				counters[i] += (double)(rnd() % 100);
				v = counters[i];
				pairs[6] = NULL;
			} else if (kind < 9) { /* gauges: arbitrary floats */
				snprintf(name, sizeof(name), "memory_usage_bytes_%d", i % 50);
				v = (double)(rnd() % 1000000000) / 3.0;
				pairs[6] = NULL;
			} else { /* histogram buckets: slow counters with an le label */
				snprintf(name, sizeof(name), "request_duration_seconds_bucket");
				snprintf(extra, sizeof(extra), "%g",
					 0.005 * (double)(1 << (i / 10 % 12)));
				counters[i] += (double)(rnd() % 3);
				v = counters[i];
				pairs[6] = "le";
			}
			usher_tsdb_batch_addv(b, pairs, t + (int64_t)(rnd() % 20), v);
		}
		if (usher_tsdb_batch_commit(b, t, NULL, NULL)) {
			fprintf(stderr, "commit failed\n");
			return 1;
		}
	}
	usher_tsdb_batch_free(b, -1);
	after = mallinfo2();
	usher_tsdb_stats(db, &s);
	printf("loaded %zu series, %zu samples in %lld ms\n", s.series, s.samples,
	       (long long)(usher_mono_ms() - start));
	printf("store accounting: %zu bytes = %.2f bytes/sample\n", s.bytes,
	       (double)s.bytes / (double)s.samples);
	printf("heap growth:      %zu bytes = %.2f bytes/sample\n",
	       after.uordblks + after.hblkhd - before.uordblks - before.hblkhd,
	       (double)(after.uordblks + after.hblkhd - before.uordblks - before.hblkhd) /
		   (double)s.samples);

	q0 = usher_mono_ns();
	for (k = 0; k < 20; k++) {
		struct usher_promql_result r;
		struct usher_error err;

		usher_error_clear(&err);
		if (usher_promql_eval_instant(eng, &st,
					      "sum by (job) (rate(http_requests_total_1[5m]))",
					      t0 + (SAMPLES - 1) * STEP_MS, &r, &err)) {
			fprintf(stderr, "query: %s\n", err.msg);
			return 1;
		}
		usher_promql_result_free(&r);
	}
	printf("sum by (job) (rate(x[5m])) over %d series: %.3f ms\n", SERIES / 50,
	       (double)(usher_mono_ns() - q0) / 20 / 1e6);
	q0 = usher_mono_ns();
	for (k = 0; k < 5; k++) {
		struct usher_promql_result r;

		if (usher_promql_eval_instant(eng, &st,
					      "sum by (job) (rate({__name__=~\"http.*\"}[5m]))",
					      t0 + (SAMPLES - 1) * STEP_MS, &r, NULL))
			return 1;
		usher_promql_result_free(&r);
	}
	printf("sum by (job) (rate(x[5m])) over %d series: %.3f ms\n", SERIES * 6 / 10,
	       (double)(usher_mono_ns() - q0) / 5 / 1e6);
	usher_promql_engine_free(eng);
	usher_tsdb_free(db);
	free(counters);
	return 0;
}
