/* Unit tests of the registry's memory savings: sets compacted at publish
 * render exactly as the sets they were built as (a collector's set is
 * rendered uncompacted, so the two registries below differ only in that),
 * and a render in pieces is byte for byte the whole render, in both
 * formats, whatever the piece size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/registry.h"

#define BUF_MAX (64 * 1024 * 1024)

static const struct usher_metric_desc desc_success = {"probe_success", USHER_METRIC_GAUGE,
						      "Whether the probe succeeded."};
static const struct usher_metric_desc desc_phase = {
    "probe_http_duration_seconds", USHER_METRIC_GAUGE, "Duration by phase."};
static const struct usher_metric_desc desc_runs = {"usher_probe_runs", USHER_METRIC_COUNTER,
						   "Runs by outcome."};
static const struct usher_metric_desc desc_hist = {"usher_probe_duration_seconds",
						   USHER_METRIC_HISTOGRAM, "Run durations."};

static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define NB (sizeof(bounds) / sizeof(bounds[0]))

/* A set shaped like an HTTP probe's, different for each i. */
static struct usher_sample_set *probe_set(size_t i, bool base)
{
	static const char *const phases[] = {"resolve", "connect", "tls", "processing", "transfer"};
	char job[32], inst[64];
	struct usher_sample_set *s;
	uint64_t counts[NB];
	struct usher_histogram h = {.nbuckets = NB, .bounds = bounds, .counts = counts};
	size_t k;

	snprintf(job, sizeof(job), "t%zu", i);
	snprintf(inst, sizeof(inst), "http://127.0.0.1:8080/health?t=%zu&q=\"x\"\\", i);
	s = base ? usher_sample_set_newv("job", job, "instance", inst, NULL)
		 : usher_sample_set_new(NULL);
	usher_sample_add(s, &desc_success, (double)(i % 2), NULL);
	for (k = 0; k < 5; k++)
		usher_sample_add(s, &desc_phase, 0.001 * (double)(k + i), "phase", phases[k], NULL);
	usher_sample_add(s, &desc_runs, (double)(i * 3), "outcome", "success", NULL);
	usher_sample_add(s, &desc_runs, 1e20, "outcome", "failure", NULL);
	memset(counts, 0, sizeof(counts));
	for (k = 0; k < 40 + i; k++)
		usher_histogram_observe(&h, 0.003 * (double)k);
	usher_sample_add_histogram(s, &desc_hist, &h, NULL);
	{
		const char *pairs[] = {"code", "200", NULL};

		usher_sample_add_histogram(s, &desc_hist, &h, pairs);
	}
	return s;
}

struct coll {
	size_t i;
	bool base;
};

static struct usher_sample_set *collect(void *arg)
{
	const struct coll *c = arg;

	return probe_set(c->i, c->base);
}

static char *render_whole(struct usher_registry *r, enum usher_expo_format fmt)
{
	struct usher_buf b;

	usher_buf_init(&b, BUF_MAX);
	assert_int_equal(usher_registry_render(r, fmt, &b), USHER_OK);
	return usher_buf_take(&b);
}

static void test_compacted_renders_the_same(void **state)
{
	struct usher_registry *published = usher_registry_new(), *collected = usher_registry_new();
	struct coll colls[24];
	static const int owners[24];
	enum usher_expo_format fmt;
	size_t i;

	(void)state;
	for (i = 0; i < 24; i++) {
		colls[i] = (struct coll){.i = i, .base = i % 3 != 0};
		usher_registry_publish(published, &owners[i], probe_set(i, colls[i].base));
		usher_registry_add_collector(collected, collect, &colls[i]);
	}
	/* republishing over a compacted set */
	usher_registry_publish(published, &owners[0], probe_set(0, colls[0].base));
	for (fmt = USHER_EXPO_TEXT; fmt <= USHER_EXPO_OPENMETRICS; fmt++) {
		char *a = render_whole(published, fmt), *b = render_whole(collected, fmt);

		assert_true(strlen(a) > 10000);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	usher_registry_free(published);
	usher_registry_free(collected);
}

static void test_desc_sets_are_kept(void **state)
{
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *s = usher_sample_set_new(NULL);
	const struct usher_metric_desc *d =
	    usher_sample_set_desc(s, "scraped_thing", USHER_METRIC_GAUGE, "From a target.");
	const char *pairs[] = {"a", "b", NULL};
	char *out;
	static int owner;

	(void)state;
	usher_sample_add_series(s, d, USHER_SUFFIX_NONE, 7, pairs);
	usher_registry_publish(r, &owner, s);
	out = render_whole(r, USHER_EXPO_TEXT);
	assert_string_equal(out, "# HELP scraped_thing From a target.\n"
				 "# TYPE scraped_thing gauge\n"
				 "scraped_thing{a=\"b\"} 7\n");
	free(out);
	usher_registry_free(r);
}

static void test_empty_sets(void **state)
{
	struct usher_registry *r = usher_registry_new();
	static int a, b;
	char *out;

	(void)state;
	usher_registry_publish(r, &a, usher_sample_set_new(NULL));
	usher_registry_publish(r, &b, usher_sample_set_newv("job", "x", NULL));
	out = render_whole(r, USHER_EXPO_TEXT);
	assert_string_equal(out, "");
	free(out);
	out = render_whole(r, USHER_EXPO_OPENMETRICS);
	assert_string_equal(out, "# EOF\n");
	free(out);
	usher_registry_free(r);
}

static void test_pieces_make_the_whole(void **state)
{
	static const size_t wants[] = {1, 7, 100, 4096, 65536};
	struct usher_registry *r = usher_registry_new();
	static const int owners[200];
	enum usher_expo_format fmt;
	size_t i, w;

	(void)state;
	for (i = 0; i < 200; i++)
		usher_registry_publish(r, &owners[i], probe_set(i, true));
	for (fmt = USHER_EXPO_TEXT; fmt <= USHER_EXPO_OPENMETRICS; fmt++) {
		char *whole = render_whole(r, fmt);

		for (w = 0; w < sizeof(wants) / sizeof(wants[0]); w++) {
			struct usher_render *st = usher_registry_render_begin(r, fmt);
			struct usher_buf all, piece;
			bool done = false;
			size_t pieces = 0;

			usher_buf_init(&all, BUF_MAX);
			usher_buf_init(&piece, BUF_MAX);
			while (!done) {
				usher_buf_reset(&piece);
				assert_int_equal(usher_render_next(st, &piece, wants[w], &done),
						 USHER_OK);
				/* whole lines only */
				assert_true(piece.len == 0 || piece.data[piece.len - 1] == '\n');
				assert_int_equal(usher_buf_add(&all, piece.data, piece.len), USHER_OK);
				pieces++;
				/* republishing mid-render does not change this render */
				if (pieces == 3)
					usher_registry_publish(r, &owners[5], probe_set(999, true));
			}
			if (wants[w] < 100000)
				assert_true(pieces > 1);
			assert_string_equal(usher_buf_str(&all), whole);
			usher_render_free(st);
			usher_buf_free(&all);
			usher_buf_free(&piece);
			usher_registry_publish(r, &owners[5], probe_set(5, true));
		}
		free(whole);
	}
	usher_registry_free(r);
}

static void test_piece_toobig(void **state)
{
	struct usher_registry *r = usher_registry_new();
	struct usher_render *st;
	struct usher_buf b;
	bool done = false;
	static int owner;

	(void)state;
	usher_registry_publish(r, &owner, probe_set(1, true));
	st = usher_registry_render_begin(r, USHER_EXPO_TEXT);
	usher_buf_init(&b, 200);
	assert_int_equal(usher_render_next(st, &b, 1 << 20, &done), USHER_ERR_TOOBIG);
	assert_false(done);
	usher_render_free(st);
	usher_render_free(NULL);
	usher_buf_free(&b);
	usher_registry_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_compacted_renders_the_same),
	    cmocka_unit_test(test_desc_sets_are_kept),
	    cmocka_unit_test(test_empty_sets),
	    cmocka_unit_test(test_pieces_make_the_whole),
	    cmocka_unit_test(test_piece_toobig),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
