/* Unit tests of lib/tsdb: Gorilla chunks, the series store (matchers,
 * ordering, out-of-order and duplicate samples, the series limit,
 * retention, staleness batches, concurrent readers) and its memory use
 * per sample. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "tsdb/chunk.h"
#include "tsdb/hashmap.h"
#include "tsdb/labels.h"
#include "tsdb/tsdb.h"

static uint64_t bits(double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u;
}

/* A deterministic generator, so failures reproduce. */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void roundtrip(const int64_t *t, const double *v, size_t n)
{
	struct usher_chunk c = {0};
	struct usher_chunk_state st = {0};
	struct usher_chunk_iter it;
	size_t i;
	int64_t tt;
	double vv;

	for (i = 0; i < n; i++)
		usher_chunk_append(&c, &st, t[i], v[i]);
	usher_chunk_seal(&c);
	assert_int_equal(c.n, n);
	assert_int_equal(c.mint, t[0]);
	assert_int_equal(c.maxt, t[n - 1]);
	usher_chunk_iter_init(&it, &c);
	for (i = 0; i < n; i++) {
		assert_true(usher_chunk_iter_next(&it, &tt, &vv));
		if (tt != t[i] || bits(vv) != bits(v[i]))
			fail_msg("sample %zu: got (%lld, %a), want (%lld, %a)", i, (long long)tt,
				 vv, (long long)t[i], v[i]);
	}
	assert_false(usher_chunk_iter_next(&it, &tt, &vv));
	usher_chunk_free(&c);
}

static void test_chunk_roundtrip(void **state)
{
	int64_t t[USHER_CHUNK_SAMPLES];
	double v[USHER_CHUNK_SAMPLES];
	size_t i, kind;

	(void)state;
	for (kind = 0; kind < 8; kind++) {
		for (i = 0; i < USHER_CHUNK_SAMPLES; i++) {
			switch (kind) {
			case 0: /* regular scrape, counter */
				t[i] = 1700000000000LL + (int64_t)i * 15000;
				v[i] = (double)(i * 7);
				break;
			case 1: /* jittered timestamps, gauge */
				t[i] =
				    1700000000000LL + (int64_t)i * 15000 + (int64_t)(rng() % 200);
				v[i] = (double)(rng() % 1000) / 7.0;
				break;
			case 2: /* every bucket of the delta-of-delta encoding */
				t[i] = (i ? t[i - 1] : -5000) + 1 +
				       (int64_t)(rng() % (1u << (i % 24)));
				v[i] = 1.0;
				break;
			case 3: /* random bit patterns, NaN and the stale marker */
				t[i] = (int64_t)i * 1000;
				v[i] = i % 5 == 0   ? usher_stale_nan()
				       : i % 7 == 0 ? NAN
						    : (double)(int64_t)rng() / 3.0;
				break;
			case 4: /* huge jumps in time */
				t[i] = (int64_t)i * 86400000LL * 365 + (int64_t)(i % 2);
				v[i] = -(double)i;
				break;
			case 5: /* infinities and signed zeros */
				t[i] = (int64_t)i;
				v[i] = i % 4 == 0   ? INFINITY
				       : i % 4 == 1 ? -INFINITY
				       : i % 4 == 2 ? 0.0
						    : -0.0;
				break;
			case 6: /* full 64-bit XOR (sig == 64) */
				t[i] = (int64_t)i * 10;
				v[i] = i % 2 ? -1.0000000000000002 : 1.0;
				break;
			default: /* a single sample */
				t[i] = 42;
				v[i] = 3.5;
				break;
			}
		}
		roundtrip(t, v, kind == 7 ? 1 : USHER_CHUNK_SAMPLES);
	}
}

static void test_chunk_compression(void **state)
{
	struct usher_chunk c = {0};
	struct usher_chunk_state st = {0};
	size_t i;

	(void)state;
	/* a counter scraped every 15 s: timestamps cost one bit each */
	for (i = 0; i < USHER_CHUNK_SAMPLES; i++)
		usher_chunk_append(&c, &st, 1700000000000LL + (int64_t)i * 15000, (double)(i * 3));
	usher_chunk_seal(&c);
	assert_true(usher_chunk_bytes(&c) < USHER_CHUNK_SAMPLES * 3);
	usher_chunk_free(&c);
}

static void test_hashmap(void **state)
{
	struct usher_u64map m = {0};
	uintptr_t i;

	(void)state;
	for (i = 1; i <= 5000; i++)
		usher_u64map_put(&m, i * 0x10000, (void *)i);
	for (i = 1; i <= 5000; i += 2)
		usher_u64map_del(&m, i * 0x10000);
	for (i = 1; i <= 5000; i++)
		assert_ptr_equal(usher_u64map_get(&m, i * 0x10000), i % 2 ? NULL : (void *)i);
	assert_int_equal(m.n, 2500);
	usher_u64map_free(&m);
}

/* labels from "name", "value", … NULL (sorted here) */
static struct usher_labels mk(struct usher_arena *a, const char *first, ...)
{
	struct usher_label *p = usher_arena_alloc(a, 16 * sizeof(*p));
	struct usher_labels l = {0, NULL};
	const char *name;
	va_list ap;

	va_start(ap, first);
	for (name = first; name; name = va_arg(ap, const char *)) {
		p[l.n].name = name;
		p[l.n].value = va_arg(ap, const char *);
		l.n++;
	}
	va_end(ap);
	assert_true(usher_labels_normalize(&l, p));
	return l;
}

static struct usher_tsdb *sample_db(struct usher_arena *a)
{
	struct usher_tsdb_options o = {0, 0};
	struct usher_tsdb *db = usher_tsdb_new(&o);
	static const char *const jobs[] = {"api", "db", "cache"};
	size_t j, i;

	for (j = 0; j < 3; j++)
		for (i = 0; i < 2; i++) {
			struct usher_labels l = mk(a, "__name__", "up", "job", jobs[j], "instance",
						   i ? "b" : "a", NULL);
			int64_t t;

			for (t = 0; t < 600000; t += 15000)
				assert_int_equal(
				    usher_tsdb_append(db, &l, t, (double)(j * 10 + i), NULL),
				    USHER_OK);
		}
	return db;
}

static size_t select_count(struct usher_tsdb *db, struct usher_arena *a, enum usher_match_type type,
			   const char *name, const char *value)
{
	struct usher_matcher m[2];
	struct usher_series *s;
	size_t n, i;

	assert_int_equal(usher_matcher_init(&m[0], USHER_MATCH_EQ, "__name__", "up", NULL),
			 USHER_OK);
	assert_int_equal(usher_matcher_init(&m[1], type, name, value, NULL), USHER_OK);
	assert_int_equal(usher_tsdb_select(db, m, 2, 0, 1000000, a, NULL, &s, &n, NULL), USHER_OK);
	for (i = 1; i < n; i++)
		assert_true(usher_labels_cmp(&s[i - 1].labels, &s[i].labels) < 0);
	usher_matcher_fini(&m[0]);
	usher_matcher_fini(&m[1]);
	return n;
}

static void test_select_matchers(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_tsdb *db = sample_db(a);
	static const struct {
		enum usher_match_type type;
		const char *name, *value;
		size_t want;
	} cases[] = {
	    {USHER_MATCH_EQ, "job", "api", 2},
	    {USHER_MATCH_NEQ, "job", "api", 4},
	    {USHER_MATCH_RE, "job", "api|db", 4},
	    {USHER_MATCH_RE, "job", "ap", 0},  /* anchored */
	    {USHER_MATCH_RE, "job", ".*i", 2}, /* api only (two instances): anchored */
	    {USHER_MATCH_NRE, "job", "c.*", 4},
	    {USHER_MATCH_EQ, "missing", "", 6}, /* absent label equals "" */
	    {USHER_MATCH_NEQ, "missing", "", 0},
	    {USHER_MATCH_RE, "missing", ".*", 6},
	    {USHER_MATCH_RE, "instance", "(?i)A", 3},
	    {USHER_MATCH_EQ, "job", "nope", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = select_count(db, a, cases[i].type, cases[i].name, cases[i].value);

		if (n != cases[i].want)
			fail_msg("case %zu (%s%s\"%s\"): %zu series, want %zu", i, cases[i].name,
				 usher_match_type_str(cases[i].type), cases[i].value, n,
				 cases[i].want);
	}
	usher_tsdb_free(db);
	usher_arena_free(a);
}

static void test_select_window_and_budget(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_tsdb *db = sample_db(a);
	struct usher_matcher m;
	struct usher_series *s;
	struct usher_error err;
	size_t n, budget = 1000;

	(void)state;
	usher_matcher_init(&m, USHER_MATCH_EQ, "job", "api", NULL);
	/* [30 s, 60 s] holds the samples at 30, 45 and 60 s */
	assert_int_equal(usher_tsdb_select(db, &m, 1, 30000, 60000, a, &budget, &s, &n, NULL),
			 USHER_OK);
	assert_int_equal(n, 2);
	assert_int_equal(s[0].n, 3);
	assert_int_equal(s[0].t[0], 30000);
	assert_int_equal(s[0].t[2], 60000);
	assert_int_equal(budget, 1000 - 6);
	budget = 5;
	usher_error_clear(&err);
	assert_int_equal(usher_tsdb_select(db, &m, 1, 0, 1000000, a, &budget, &s, &n, &err),
			 USHER_ERR_TOOBIG);
	assert_string_equal(err.msg, "query processing would load too many samples into memory in "
				     "query execution");
	usher_matcher_fini(&m);
	usher_tsdb_free(db);
	usher_arena_free(a);
}

static void test_append_errors(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_tsdb_options o = {0, 2};
	struct usher_tsdb *db = usher_tsdb_new(&o);
	struct usher_labels x = mk(a, "__name__", "x", NULL), y = mk(a, "__name__", "y", NULL),
			    z = mk(a, "__name__", "z", NULL);
	struct usher_tsdb_stats st;
	struct usher_error err;

	(void)state;
	assert_int_equal(usher_tsdb_append(db, &x, 1000, 1, NULL), USHER_OK);
	usher_error_clear(&err);
	assert_int_equal(usher_tsdb_append(db, &x, 500, 1, &err), USHER_ERR_INVALID);
	assert_string_equal(err.msg, "out of order sample");
	usher_error_clear(&err);
	assert_int_equal(usher_tsdb_append(db, &x, 1000, 2, &err), USHER_ERR_INVALID);
	assert_string_equal(err.msg, "duplicate sample for timestamp");
	/* the same value again is accepted and changes nothing */
	assert_int_equal(usher_tsdb_append(db, &x, 1000, 1, NULL), USHER_OK);
	/* an old stale marker is dropped silently */
	assert_int_equal(usher_tsdb_append(db, &x, 10, usher_stale_nan(), NULL), USHER_OK);
	assert_int_equal(usher_tsdb_append(db, &y, 1000, 1, NULL), USHER_OK);
	usher_error_clear(&err);
	assert_int_equal(usher_tsdb_append(db, &z, 1000, 1, &err), USHER_ERR_TOOBIG);
	assert_non_null(strstr(err.msg, "series limit of 2 reached"));
	usher_tsdb_stats(db, &st);
	assert_int_equal(st.series, 2);
	assert_int_equal(st.series_limit_hits, 1);
	assert_int_equal(st.out_of_order, 2);
	assert_int_equal(st.samples, 2);
	usher_tsdb_free(db);
	usher_arena_free(a);
}

static void test_retention(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_tsdb_options o = {3600 * 1000, 0};
	struct usher_tsdb *db = usher_tsdb_new(&o);
	struct usher_labels old = mk(a, "__name__", "old", NULL),
			    cur = mk(a, "__name__", "cur", NULL);
	struct usher_tsdb_stats st;
	const char **names;
	size_t n;
	int64_t t;

	(void)state;
	for (t = 0; t < 600000; t += 15000)
		assert_int_equal(usher_tsdb_append(db, &old, t, 1, NULL), USHER_OK);
	for (t = 0; t <= 4 * 3600 * 1000; t += 15000)
		assert_int_equal(usher_tsdb_append(db, &cur, t, 1, NULL), USHER_OK);
	usher_tsdb_stats(db, &st);
	/* "old" went with its last chunk; "cur" keeps an hour plus at most a chunk */
	assert_int_equal(st.series, 1);
	assert_int_equal(st.series_removed, 1);
	assert_true(st.samples >= 240 && st.samples <= 240 + 2 * USHER_CHUNK_SAMPLES);
	assert_true(st.mint >= 3 * 3600 * 1000 - USHER_CHUNK_SAMPLES * 15000);
	usher_tsdb_label_values(db, "__name__", a, &names, &n);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "cur");
	/* a sample older than the window is refused */
	assert_int_equal(usher_tsdb_append(db, &old, 1000, 1, NULL), USHER_ERR_INVALID);
	usher_tsdb_truncate(db, INT64_MAX);
	usher_tsdb_stats(db, &st);
	assert_int_equal(st.series, 0);
	usher_tsdb_free(db);
	usher_arena_free(a);
}

static bool last_is_stale(struct usher_tsdb *db, struct usher_arena *a, const char *name,
			  int64_t *t)
{
	struct usher_matcher m;
	struct usher_series *s;
	size_t n;

	usher_matcher_init(&m, USHER_MATCH_EQ, "__name__", name, NULL);
	assert_int_equal(usher_tsdb_select(db, &m, 1, 0, INT64_MAX, a, NULL, &s, &n, NULL),
			 USHER_OK);
	assert_int_equal(n, 1);
	*t = s[0].t[s[0].n - 1];
	return usher_is_stale(s[0].v[s[0].n - 1]);
}

static void test_batch_staleness(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_tsdb *db = usher_tsdb_new(NULL);
	struct usher_tsdb_batch *b = usher_tsdb_batch_new(db);
	static const char *const pa[] = {"__name__", "a", "job", "x", NULL};
	static const char *const pb[] = {"job", "x", "__name__", "b", NULL};
	static const char *const dup[] = {"job", "x", "job", "y", NULL};
	size_t rejected;
	int64_t t;

	(void)state;
	usher_tsdb_batch_addv(b, pa, 1000, 1);
	usher_tsdb_batch_addv(b, pb, 1000, 2);
	assert_int_equal(usher_tsdb_batch_commit(b, 1000, &rejected, NULL), USHER_OK);
	assert_int_equal(rejected, 0);
	/* b vanishes from the next run: it gets a stale marker at that run */
	usher_tsdb_batch_addv(b, pa, 2000, 1);
	usher_tsdb_batch_addv(b, dup, 2000, 1); /* a bad one is skipped, the rest goes in */
	assert_int_equal(usher_tsdb_batch_commit(b, 2000, &rejected, NULL), USHER_ERR_INVALID);
	assert_int_equal(rejected, 1);
	assert_true(last_is_stale(db, a, "b", &t));
	assert_int_equal(t, 2000);
	assert_false(last_is_stale(db, a, "a", &t));
	/* the producer goes away: its series go stale */
	usher_tsdb_batch_free(b, 3000);
	assert_true(last_is_stale(db, a, "a", &t));
	assert_int_equal(t, 3000);
	usher_tsdb_free(db);
	usher_arena_free(a);
}

struct reader_arg {
	struct usher_tsdb *db;
	size_t selects;
};

static void *reader(void *p)
{
	struct reader_arg *r = p;
	struct usher_arena *a = usher_arena_new();
	struct usher_matcher m;
	size_t i;

	usher_matcher_init(&m, USHER_MATCH_RE, "__name__", "m.*", NULL);
	for (i = 0; i < 200; i++) {
		struct usher_series *s;
		size_t n;

		if (usher_tsdb_select(r->db, &m, 1, 0, INT64_MAX, a, NULL, &s, &n, NULL) ==
		    USHER_OK)
			r->selects++;
		usher_arena_reset(a);
	}
	usher_matcher_fini(&m);
	usher_arena_free(a);
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct usher_tsdb_options o = {60000, 0};
	struct usher_tsdb *db = usher_tsdb_new(&o);
	struct usher_tsdb_batch *b = usher_tsdb_batch_new(db);
	struct reader_arg args[3];
	pthread_t th[3];
	int64_t t;
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		args[i].db = db;
		args[i].selects = 0;
		pthread_create(&th[i], NULL, reader, &args[i]);
	}
	for (t = 0; t < 600000; t += 1000) {
		char name[16];
		const char *pairs[] = {"__name__", name, NULL};
		int k;

		for (k = 0; k < 20; k++) {
			snprintf(name, sizeof(name), "m%d", (int)((t / 1000 + k) % 40));
			usher_tsdb_batch_addv(b, pairs, t, (double)k);
		}
		usher_tsdb_batch_commit(b, t, NULL, NULL);
	}
	for (i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].selects, 200);
	}
	usher_tsdb_batch_free(b, -1);
	usher_tsdb_free(db);
}

/* The budget: at most 16 bytes per retained sample, index included.
 * 2,000 series x 480 samples (2 h at 15 s) of counters and gauges;
 * bench/tsdb_mem.c measures the full 10k series. */
static void test_bytes_per_sample(void **state)
{
	struct usher_tsdb *db = usher_tsdb_new(NULL);
	struct usher_tsdb_batch *b = usher_tsdb_batch_new(db);
	struct usher_tsdb_stats st;
	char name[32], inst[32], code[8];
	const char *pairs[] = {"__name__",    name,   "instance", inst, "job",
			       "booking-api", "code", code,       NULL};
	double perss;
	int s, k;

	(void)state;
	for (k = 0; k < 480; k++) {
		int64_t t = 1700000000000LL + (int64_t)k * 15000;

		for (s = 0; s < 2000; s++) {
			snprintf(name, sizeof(name), "http_requests_%d_total", s % 50);
			snprintf(inst, sizeof(inst), "api-%d:8080", s / 50 % 20);
			snprintf(code, sizeof(code), "%d", 200 + s / 1000);
			/* counters grow irregularly; every fourth series is a gauge */
			usher_tsdb_batch_addv(b, pairs, t + (int64_t)(rng() % 50),
					      s % 4 ? (double)(k * (s % 13) + (int)(rng() % 5))
						    : (double)(rng() % 100000) / 1000.0);
		}
		assert_int_equal(usher_tsdb_batch_commit(b, t, NULL, NULL), USHER_OK);
	}
	usher_tsdb_stats(db, &st);
	assert_int_equal(st.series, 2000);
	assert_int_equal(st.samples, 2000 * 480);
	perss = (double)st.bytes / (double)st.samples;
	print_message("tsdb: %zu series, %zu samples, %zu bytes: %.2f bytes/sample\n", st.series,
		      st.samples, st.bytes, perss);
	assert_true(perss <= 16.0);
	usher_tsdb_batch_free(b, -1);
	usher_tsdb_free(db);
}

static void test_labels(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_labels l = mk(a, "b", "x\"y\n", "a", "1", NULL), m;
	struct usher_regex *re;
	const char *out;

	(void)state;
	assert_string_equal(usher_labels_str(a, &l), "{a=\"1\", b=\"x\\\"y\\n\"}");
	usher_labels_set(a, &l, "c", "3", &m);
	assert_string_equal(usher_labels_str(a, &m), "{a=\"1\", b=\"x\\\"y\\n\", c=\"3\"}");
	usher_labels_set(a, &m, "a", "", &m);
	assert_string_equal(usher_labels_str(a, &m), "{b=\"x\\\"y\\n\", c=\"3\"}");
	assert_int_equal(usher_regex_compile("(a+)-(?P<rest>.*)", &re, NULL), USHER_OK);
	assert_true(usher_regex_replace(re, "aa-bc", "$1|${rest}|$2x|$$|${1}x|$", a, &out));
	assert_string_equal(out, "aa|bc||$|aax|$");
	assert_false(usher_regex_replace(re, "b-aa-bc", "$1", a, &out));
	usher_regex_free(re);
	assert_int_equal(usher_regex_compile("(a", &re, NULL), USHER_ERR_INVALID);
	usher_arena_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chunk_roundtrip),
	    cmocka_unit_test(test_chunk_compression),
	    cmocka_unit_test(test_hashmap),
	    cmocka_unit_test(test_labels),
	    cmocka_unit_test(test_select_matchers),
	    cmocka_unit_test(test_select_window_and_budget),
	    cmocka_unit_test(test_append_errors),
	    cmocka_unit_test(test_retention),
	    cmocka_unit_test(test_batch_staleness),
	    cmocka_unit_test(test_concurrent_readers),
	    cmocka_unit_test(test_bytes_per_sample),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
