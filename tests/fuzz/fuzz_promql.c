/* Fuzz target: the PromQL parser, then the evaluator on a tiny fixed store
 * (instant and range evaluation, small sample and time limits). The input
 * is the query text. A failed parse must leave a message; a successful one
 * must evaluate without crashing, leaking or tripping the sanitizers. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "promql/ast.h"
#include "promql/engine.h"
#include "tsdb/tsdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Built on first use and kept: a few series over 10 minutes, with NaN,
 * infinities, a counter reset, a staleness marker and classic buckets. */
static struct usher_tsdb *store(void)
{
	static struct usher_tsdb *db;
	static const char *const series[][7] = {
	    {"__name__", "up", "job", "api", "instance", "a", NULL},
	    {"__name__", "up", "job", "api", "instance", "b", NULL},
	    {"__name__", "req_total", "job", "api", "code", "200", NULL},
	    {"__name__", "req_total", "job", "db", "code", "500", NULL},
	    {"__name__", "lat_bucket", "le", "0.1", NULL, NULL, NULL},
	    {"__name__", "lat_bucket", "le", "1", NULL, NULL, NULL},
	    {"__name__", "lat_bucket", "le", "+Inf", NULL, NULL, NULL},
	    {"__name__", "odd", "v", "x", NULL, NULL, NULL},
	};
	struct usher_tsdb_options o = {0, 1000};
	struct usher_tsdb_batch *b;
	int64_t t;
	size_t i;

	if (db)
		return db;
	db = usher_tsdb_new(&o);
	b = usher_tsdb_batch_new(db);
	for (t = 0; t <= 600000; t += 15000) {
		for (i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
			double v = (double)(t / 15000) * (double)(i + 1);

			if (i == 1 && t > 300000)
				continue; /* goes stale at the next commit */
			if (i == 3 && t == 300000)
				v = 0; /* a counter reset */
			if (i == 7)
				v = t % 45000 == 0 ? NAN : t % 60000 == 0 ? -INFINITY : 1e308;
			usher_tsdb_batch_addv(b, series[i], t, v);
		}
		usher_tsdb_batch_commit(b, t, NULL, NULL);
	}
	usher_tsdb_batch_free(b, -1);
	return db;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct usher_promql_engine *eng;
	struct usher_storage st = usher_tsdb_storage(store());
	struct usher_promql_result res;
	struct usher_promql_expr *e;
	struct usher_error err;
	char *q;

	if (size > 4096)
		return 0;
	if (!eng) {
		struct usher_promql_options o;

		usher_promql_options_default(&o);
		o.max_samples = 20000;
		o.timeout_ms = 100;
		eng = usher_promql_engine_new(&o);
	}
	q = malloc(size + 1);
	if (!q)
		return 0;
	memcpy(q, data, size);
	q[size] = '\0'; /* an embedded NUL just ends the query early */
	usher_error_clear(&err);
	if (usher_promql_parse(q, &e, &err)) {
		if (!err.msg[0] || e)
			abort();
		free(q);
		return 0;
	}
	usher_error_clear(&err);
	if (usher_promql_eval_instant_expr(eng, &st, e, 300000, &res, &err) == USHER_OK)
		usher_promql_result_free(&res);
	else if (!err.msg[0] || !res.error_type)
		abort();
	usher_error_clear(&err);
	if (usher_promql_eval_range_expr(eng, &st, e, 0, 600000, 60000, &res, &err) == USHER_OK)
		usher_promql_result_free(&res);
	else if (!err.msg[0] || !res.error_type)
		abort();
	usher_promql_expr_free(e);
	free(q);
	return 0;
}
