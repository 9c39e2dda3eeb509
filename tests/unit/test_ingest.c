/* Unit tests of re-exposing parsed input: each case is input (text 0.0.4 or
 * OpenMetrics), the target's labels and honor_labels, and the exposition
 * usherd must render from it; plus conflicts across inputs, reserved
 * series, and the dynamic descs and raw series the registry gained. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "metrics/ingest.h"
#include "metrics/registry.h"
#include "metrics/textparse.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const target[] = {"job", "app", "instance", "h:1", NULL};

struct ingest_case {
	const char *name;
	enum usher_tp_format fmt;
	bool honor;
	const char *in;
	enum usher_expo_format out_fmt;
	const char *want;
};

static const struct ingest_case cases[] = {
    {"gauge, target labels first", USHER_TP_TEXT, false,
     "# HELP temp Temperature.\n# TYPE temp gauge\ntemp{room=\"a\"} 21.5\n", USHER_EXPO_TEXT,
     "# HELP temp Temperature.\n# TYPE temp gauge\n"
     "temp{job=\"app\",instance=\"h:1\",room=\"a\"} 21.5\n"},
    {"clashing labels renamed exported_", USHER_TP_TEXT, false,
     "m{job=\"inner\",instance=\"x\",exported_job=\"y\",k=\"v\"} 1\n", USHER_EXPO_TEXT,
     "# TYPE m untyped\n"
     "m{job=\"app\",instance=\"h:1\",exported_exported_job=\"inner\",exported_instance=\"x\","
     "exported_job=\"y\",k=\"v\"} 1\n"},
    {"honor_labels keeps the target's own", USHER_TP_TEXT, true,
     "m{job=\"inner\",k=\"v\"} 1\nn 2\n", USHER_EXPO_TEXT,
     "# TYPE m untyped\nm{instance=\"h:1\",job=\"inner\",k=\"v\"} 1\n"
     "# TYPE n untyped\nn{job=\"app\",instance=\"h:1\"} 2\n"},
    {"empty label values are absent", USHER_TP_TEXT, false, "m{job=\"\",a=\"\",b=\"1\"} 1\n",
     USHER_EXPO_TEXT, "# TYPE m untyped\nm{job=\"app\",instance=\"h:1\",b=\"1\"} 1\n"},
    {"0.0.4 counter keeps its name", USHER_TP_TEXT, false,
     "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total 5\n", USHER_EXPO_OPENMETRICS,
     "# HELP req Requests.\n# TYPE req counter\nreq_total{job=\"app\",instance=\"h:1\"} 5\n"
     "# EOF\n"},
    {"0.0.4 counter without _total stays untyped", USHER_TP_TEXT, false,
     "# TYPE hits counter\nhits 5\n", USHER_EXPO_TEXT,
     "# TYPE hits untyped\nhits{job=\"app\",instance=\"h:1\"} 5\n"},
    {"histogram and summary", USHER_TP_TEXT, false,
     "# TYPE d histogram\nd_bucket{le=\"0.5\"} 1\nd_bucket{le=\"+Inf\"} 2\nd_sum 0.7\nd_count 2\n"
     "# TYPE q summary\nq{quantile=\"0.9\"} 3\nq_sum 4\nq_count 5\n",
     USHER_EXPO_TEXT,
     "# TYPE d histogram\n"
     "d_bucket{job=\"app\",instance=\"h:1\",le=\"0.5\"} 1\n"
     "d_bucket{job=\"app\",instance=\"h:1\",le=\"+Inf\"} 2\n"
     "d_sum{job=\"app\",instance=\"h:1\"} 0.7\n"
     "d_count{job=\"app\",instance=\"h:1\"} 2\n"
     "# TYPE q summary\n"
     "q{job=\"app\",instance=\"h:1\",quantile=\"0.9\"} 3\n"
     "q_sum{job=\"app\",instance=\"h:1\"} 4\n"
     "q_count{job=\"app\",instance=\"h:1\"} 5\n"},
    {"openmetrics types, _created dropped", USHER_TP_OPENMETRICS, false,
     "# TYPE c counter\nc_total 1\nc_created 2\n# TYPE b info\nb_info{v=\"1\"} 1\n"
     "# TYPE s stateset\ns{s=\"x\"} 1\n# TYPE g gaugehistogram\ng_bucket{le=\"+Inf\"} 3\n"
     "g_gcount 3\ng_gsum 1\n# TYPE u unknown\nu 1\n# EOF\n",
     USHER_EXPO_TEXT,
     "# TYPE b_info gauge\nb_info{job=\"app\",instance=\"h:1\",v=\"1\"} 1\n"
     "# TYPE c_total counter\nc_total{job=\"app\",instance=\"h:1\"} 1\n"
     "# TYPE g_bucket untyped\ng_bucket{job=\"app\",instance=\"h:1\",le=\"+Inf\"} 3\n"
     "# TYPE g_gcount untyped\ng_gcount{job=\"app\",instance=\"h:1\"} 3\n"
     "# TYPE g_gsum untyped\ng_gsum{job=\"app\",instance=\"h:1\"} 1\n"
     "# TYPE s gauge\ns{job=\"app\",instance=\"h:1\",s=\"x\"} 1\n"
     "# TYPE u untyped\nu{job=\"app\",instance=\"h:1\"} 1\n"},
    {"duplicates and reserved series dropped", USHER_TP_TEXT, false,
     "m{a=\"1\",b=\"2\"} 1\nm{b=\"2\",a=\"1\"} 2\nup 0\nup{x=\"y\"} 1\n", USHER_EXPO_TEXT,
     "# TYPE m untyped\nm{job=\"app\",instance=\"h:1\",a=\"1\",b=\"2\"} 1\n"
     "# TYPE up untyped\nup{job=\"app\",instance=\"h:1\",x=\"y\"} 1\n"},
    {"same registry family, other type, left out", USHER_TP_TEXT, false,
     "# TYPE x_total counter\nx_total 1\n# TYPE x gauge\nx 2\ny 3\n", USHER_EXPO_TEXT,
     "# TYPE x_total counter\nx_total{job=\"app\",instance=\"h:1\"} 1\n"
     "# TYPE y untyped\ny{job=\"app\",instance=\"h:1\"} 3\n"},
    {"values written back exactly", USHER_TP_TEXT, false,
     "v{i=\"1\"} 1e3\nv{i=\"2\"} -0.1\n"
     "v{i=\"3\"} NaN\nv{i=\"4\"} -Inf\n",
     USHER_EXPO_TEXT,
     "# TYPE v untyped\nv{job=\"app\",instance=\"h:1\",i=\"1\"} 1000\n"
     "v{job=\"app\",instance=\"h:1\",i=\"2\"} -0.1\nv{job=\"app\",instance=\"h:1\",i=\"3\"} NaN\n"
     "v{job=\"app\",instance=\"h:1\",i=\"4\"} -Inf\n"},
};

static char *render(struct usher_registry *r, enum usher_expo_format fmt)
{
	struct usher_buf b;

	usher_buf_init(&b, 1 << 20);
	assert_int_equal(usher_registry_render(r, fmt, &b), USHER_OK);
	return usher_buf_take(&b);
}

static void test_cases(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		const struct ingest_case *c = &cases[i];
		struct usher_arena *a = usher_arena_new();
		struct usher_registry *reg = usher_registry_new();
		struct usher_sample_set *set = usher_sample_set_new(NULL);
		struct usher_ingest_opts o = {.target = target, .honor_labels = c->honor};
		struct usher_ingest *ing = usher_ingest_new(set, a, &o);
		struct usher_ingest_stats st;
		struct usher_tp_result r;
		struct usher_tp_error err;
		char *got;

		if (usher_textparse(c->in, strlen(c->in), c->fmt, NULL, a, &r, &err)) {
			print_error("case \"%s\": %d:%d %s\n", c->name, err.line, err.col, err.msg);
			fail();
		}
		usher_ingest_reserve(ing, "up", target);
		usher_ingest_add(ing, &r, c->fmt, "input", NULL, &st);
		usher_ingest_commit(ing);
		usher_registry_publish(reg, reg, set);
		got = render(reg, c->out_fmt);
		if (strcmp(got, c->want) != 0) {
			print_error("case \"%s\":\n--- got\n%s--- want\n%s", c->name, got, c->want);
			fail();
		}
		free(got);
		usher_registry_free(reg);
		usher_arena_free(a);
	}
}

/* Files (inputs) read one after the other: the first family of a name
 * wins, a later one that disagrees is left out and reported. */
static void test_conflicts_across_inputs(void **state)
{
	static const char *const inputs[] = {
	    "# HELP a First help.\n# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n",
	    "# HELP a First help.\n# TYPE a gauge\na{f=\"2\"} 2\n",
	    "# TYPE b_total counter\nb_total 3\n",
	    "# HELP a Other help.\n# TYPE a gauge\na{f=\"4\"} 4\nc 4\n",
	    "# TYPE a gauge\na{f=\"5\"} 5\n# TYPE b gauge\nb 5\n",
	    "# TYPE node_textfile_scrape_error counter\nnode_textfile_scrape_error 1\n",
	};
	static const size_t want_conflicts[] = {0, 0, 1, 1, 0, 1};
	static const size_t want_dups[] = {0, 0, 0, 0, 1, 0};
	static const struct usher_metric_desc mine = {"node_textfile_scrape_error",
						      USHER_METRIC_GAUGE, "Mine."};
	struct usher_arena *a = usher_arena_new();
	struct usher_registry *reg = usher_registry_new();
	struct usher_sample_set *set = usher_sample_set_new(NULL);
	struct usher_ingest *ing = usher_ingest_new(set, a, &(struct usher_ingest_opts){0});
	const uint64_t *series;
	size_t i, n;
	char *got;

	(void)state;
	usher_ingest_declare(ing, &mine);
	for (i = 0; i < N(inputs); i++) {
		struct usher_ingest_stats st;
		struct usher_tp_result r;
		struct usher_tp_error err;
		char src[16];

		snprintf(src, sizeof(src), "f%zu.prom", i);
		assert_int_equal(
		    usher_textparse(inputs[i], strlen(inputs[i]), USHER_TP_TEXT, NULL, a, &r, &err),
		    USHER_OK);
		usher_ingest_add(ing, &r, USHER_TP_TEXT, src, "Metric read from a file", &st);
		usher_ingest_commit(ing);
		assert_int_equal(st.conflicts, want_conflicts[i]);
		assert_int_equal(st.duplicates, want_dups[i]);
		if (i == 2)
			assert_string_equal(
			    st.conflict, "b_total in f2.prom has type counter, but f0.prom made it "
					 "gauge: left out");
		if (i == 3)
			assert_string_equal(
			    st.conflict,
			    "a in f3.prom has other help text than in f0.prom: left out");
	}
	series = usher_ingest_series(ing, &n);
	assert_non_null(series);
	assert_int_equal(n, 5);
	usher_registry_publish(reg, reg, set);
	got = render(reg, USHER_EXPO_TEXT);
	assert_string_equal(
	    got, "# HELP a First help.\n# TYPE a gauge\na 1\na{f=\"2\"} 2\na{f=\"5\"} 5\n"
		 "# HELP b Metric read from a file\n# TYPE b gauge\nb 1\n"
		 "# HELP c Metric read from a file\n# TYPE c untyped\nc 4\n");
	free(got);
	usher_registry_free(reg);
	usher_arena_free(a);
}

/* Nothing reaches the set without commit (a scrape over sample_limit). */
static void test_no_commit(void **state)
{
	const char *in = "a 1\nb 2\nc 3\n";
	struct usher_arena *a = usher_arena_new();
	struct usher_sample_set *set = usher_sample_set_new(NULL);
	struct usher_ingest *ing = usher_ingest_new(set, a, NULL);
	struct usher_ingest_stats st;
	struct usher_tp_result r;
	struct usher_tp_error err;

	(void)state;
	assert_int_equal(usher_textparse(in, strlen(in), USHER_TP_TEXT, NULL, a, &r, &err),
			 USHER_OK);
	usher_ingest_add(ing, &r, USHER_TP_TEXT, "x", NULL, &st);
	assert_int_equal(st.samples, 3);
	assert_int_equal(usher_sample_set_count(set), 0);
	usher_sample_set_free(set);
	usher_arena_free(a);
}

/* Two producers' sets of one dynamic family render under one header. */
static void test_dynamic_descs(void **state)
{
	struct usher_registry *reg = usher_registry_new();
	struct usher_sample_set *s1 = usher_sample_set_newv("job", "a", NULL);
	struct usher_sample_set *s2 = usher_sample_set_newv("job", "b", NULL);
	const char *p1[] = {"job", "a", "le", "1", NULL};
	const char *p2[] = {"job", "a", NULL};
	const struct usher_metric_desc *d1, *d2, *h;
	char *got;

	(void)state;
	d1 = usher_sample_set_desc(s1, "dyn", USHER_METRIC_GAUGE, "Dynamic \\ help\n.");
	d2 = usher_sample_set_desc(s2, "dyn", USHER_METRIC_GAUGE, NULL);
	h = usher_sample_set_desc(s1, "lat", USHER_METRIC_HISTOGRAM, NULL);
	usher_sample_add(s1, d1, 1, NULL);
	usher_sample_add(s2, d2, 2, "x", "y", NULL);
	usher_sample_add_series(s1, h, USHER_SUFFIX_BUCKET, 3, p1);
	usher_sample_add_series(s1, h, USHER_SUFFIX_COUNT, 3, p2);
	usher_sample_add_series(s1, h, USHER_SUFFIX_SUM, 0.5, NULL);
	usher_registry_publish(reg, "p1", s1);
	usher_registry_publish(reg, "p2", s2);
	got = render(reg, USHER_EXPO_TEXT);
	assert_string_equal(got, "# HELP dyn Dynamic \\\\ help\\n.\n# TYPE dyn gauge\n"
				 "dyn{job=\"a\"} 1\ndyn{job=\"b\",x=\"y\"} 2\n"
				 "# TYPE lat histogram\nlat_bucket{job=\"a\",le=\"1\"} 3\n"
				 "lat_count{job=\"a\"} 3\nlat_sum 0.5\n");
	free(got);
	usher_registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_conflicts_across_inputs),
	    cmocka_unit_test(test_no_commit),
	    cmocka_unit_test(test_dynamic_descs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
