/* Unit tests of the metric registry and the exposition writer: escaping,
 * value formatting, family grouping, counter and histogram naming per
 * format, content negotiation. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/process.h"
#include "metrics/registry.h"

#define N(a)    (sizeof(a) / sizeof((a)[0]))
#define BUF_MAX (64 * 1024 * 1024)

static const struct usher_metric_desc desc_up = {"probe_success", USHER_METRIC_GAUGE,
						 "Whether the probe succeeded."};
static const struct usher_metric_desc desc_up_again = {"probe_success", USHER_METRIC_GAUGE,
						       "Whether the probe succeeded."};
static const struct usher_metric_desc desc_req = {"usher_requests", USHER_METRIC_COUNTER,
						  "Requests served."};
static const struct usher_metric_desc desc_dur = {"usher_duration_seconds", USHER_METRIC_HISTOGRAM,
						  "How long it took."};
static const struct usher_metric_desc desc_info = {"usher_thing_info", USHER_METRIC_GAUGE,
						   "Information about a thing."};
static const struct usher_metric_desc desc_raw = {"usher_raw", USHER_METRIC_UNTYPED,
						  "Something untyped."};
static const struct usher_metric_desc desc_nohelp = {"a_first", USHER_METRIC_GAUGE, NULL};
static const struct usher_metric_desc desc_wrong_type = {"probe_success", USHER_METRIC_COUNTER,
							 "Disagrees."};

static char *render(struct usher_registry *r, enum usher_expo_format fmt)
{
	struct usher_buf b;

	usher_buf_init(&b, BUF_MAX);
	assert_int_equal(usher_registry_render(r, fmt, &b), USHER_OK);
	return usher_buf_take(&b);
}

static void assert_render(struct usher_registry *r, enum usher_expo_format fmt, const char *want)
{
	char *got = render(r, fmt);

	assert_string_equal(got, want);
	free(got);
}

static void test_escape_label(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"", ""},
	    {"plain", "plain"},
	    {"C:\\dir", "C:\\\\dir"},
	    {"say \"hi\"", "say \\\"hi\\\""},
	    {"line1\nline2", "line1\\nline2"},
	    {"tab\tand\rcr", "tab\tand\rcr"},
	    {"Zürich ✓ 東京 🎫", "Zürich ✓ 東京 🎫"},
	    {"bad \xff byte", "bad \xef\xbf\xbd byte"},
	    {"cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd"},
	    {"overlong \xc0\xaf", "overlong \xef\xbf\xbd\xef\xbf\xbd"},
	    {"surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
	    {"\\\"\n", "\\\\\\\"\\n"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		struct usher_buf b;

		usher_buf_init(&b, 1024);
		assert_int_equal(usher_expo_escape_label(&b, cases[i].in), USHER_OK);
		assert_string_equal(usher_buf_str(&b), cases[i].want);
		usher_buf_free(&b);
	}
}

static void test_escape_help(void **state)
{
	static const struct {
		const char *in;
		enum usher_expo_format fmt;
		const char *want;
	} cases[] = {
	    {"plain help.", USHER_EXPO_TEXT, "plain help."},
	    {"a \"b\" \\ c\nd", USHER_EXPO_TEXT, "a \"b\" \\\\ c\\nd"},
	    {"a \"b\" \\ c\nd", USHER_EXPO_OPENMETRICS, "a \\\"b\\\" \\\\ c\\nd"},
	    {"Größe in Bytes", USHER_EXPO_OPENMETRICS, "Größe in Bytes"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		struct usher_buf b;

		usher_buf_init(&b, 1024);
		assert_int_equal(usher_expo_escape_help(&b, cases[i].in, cases[i].fmt), USHER_OK);
		assert_string_equal(usher_buf_str(&b), cases[i].want);
		usher_buf_free(&b);
	}
}

static void test_escape_toobig(void **state)
{
	struct usher_buf b;

	(void)state;
	usher_buf_init(&b, 4);
	assert_int_equal(usher_expo_escape_label(&b, "a\"b\""), USHER_ERR_TOOBIG);
	usher_buf_free(&b);
}

static void test_format_value(void **state)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
	    {0.0, "0"},
	    {-0.0, "-0"},
	    {1, "1"},
	    {-1, "-1"},
	    {0.1, "0.1"},
	    {1e-7, "1e-07"},
	    {1e21, "1e+21"},
	    {123456789, "123456789"},
	    {1000000, "1000000"},
	    {1.5, "1.5"},
	    {-2.25, "-2.25"},
	    {0.005, "0.005"},
	    {0.1 + 0.2, "0.30000000000000004"},
	    {1.0 / 3.0, "0.3333333333333333"},
	    {999999999999999, "999999999999999"},
	    {1e15, "1e+15"},
	    {18446744073709551615.0, "1.8446744073709552e+19"},
	    {4.9406564584124654e-324, "4.94065645841247e-324"},
	    {1.7976931348623157e308, "1.7976931348623157e+308"},
	    {NAN, "NaN"},
	    {INFINITY, "+Inf"},
	    {-INFINITY, "-Inf"},
	};
	char out[32];
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		usher_expo_format_value(cases[i].v, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
}

static void test_format_value_roundtrip(void **state)
{
	char out[32];
	uint64_t x = 0x9e3779b97f4a7c15u;
	int i;

	(void)state;
	/* xorshift bit patterns: every finite double must read back exactly */
	for (i = 0; i < 200000; i++) {
		double v;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(&v, &x, sizeof(v));
		if (!isfinite(v))
			continue;
		usher_expo_format_value(v, out, sizeof(out));
		assert_true(strtod(out, NULL) == v);
		assert_true(signbit(strtod(out, NULL)) == signbit(v));
	}
}

static void test_names(void **state)
{
	static const struct {
		const char *name;
		bool metric, label;
	} cases[] = {
	    {"up", true, true},  {"_x", true, true},       {"job:rate5m", true, false},
	    {":x", true, false}, {"a1_b2", true, true},    {"1abc", false, false},
	    {"", false, false},  {"a-b", false, false},    {"a b", false, false},
	    {"ä", false, false}, {"__name__", true, true},
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		assert_int_equal(usher_metric_name_valid(cases[i].name), cases[i].metric);
		assert_int_equal(usher_label_name_valid(cases[i].name), cases[i].label);
	}
	assert_false(usher_metric_name_valid(NULL));
	assert_false(usher_label_name_valid(NULL));
}

static void test_negotiate(void **state)
{
	static const struct {
		const char *accept;
		enum usher_expo_format want;
	} cases[] = {
	    {NULL, USHER_EXPO_TEXT},
	    {"", USHER_EXPO_TEXT},
	    {"*/*", USHER_EXPO_TEXT},
	    {"text/plain", USHER_EXPO_TEXT},
	    {"application/openmetrics-text", USHER_EXPO_OPENMETRICS},
	    /* Prometheus 2.x */
	    {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
	     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
	     USHER_EXPO_OPENMETRICS},
	    {"application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
	     "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
	     USHER_EXPO_OPENMETRICS},
	    /* Prometheus 3.x */
	    {"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
	     "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;"
	     "escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
	     USHER_EXPO_OPENMETRICS},
	    /* scrape_protocols: [PrometheusText0.0.4] */
	    {"text/plain;version=0.0.4;q=0.5,*/*;q=0.1", USHER_EXPO_TEXT},
	    /* text preferred by q */
	    {"application/openmetrics-text;q=0.3, text/plain;q=0.9", USHER_EXPO_TEXT},
	    {"text/plain;q=0.3, application/openmetrics-text;q=0.9", USHER_EXPO_OPENMETRICS},
	    /* equal q: the first wins */
	    {"application/openmetrics-text;q=0.5, text/plain;q=0.5", USHER_EXPO_OPENMETRICS},
	    {"text/plain;q=0.5, application/openmetrics-text;q=0.5", USHER_EXPO_TEXT},
	    /* q=0 means not acceptable */
	    {"application/openmetrics-text;q=0, text/plain;q=0.1", USHER_EXPO_TEXT},
	    {"application/openmetrics-text;q=0.000", USHER_EXPO_TEXT},
	    /* versions usher does not write are skipped */
	    {"application/openmetrics-text;version=2.0.0, text/plain;q=0.1", USHER_EXPO_TEXT},
	    {"application/openmetrics-text;version=0.0.1", USHER_EXPO_OPENMETRICS},
	    {"application/openmetrics-text; version=\"1.0.0\"; q=1", USHER_EXPO_OPENMETRICS},
	    /* protobuf is not offered */
	    {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
	     "encoding=delimited;q=0.7,application/openmetrics-text;q=0.6,text/plain;q=0.5",
	     USHER_EXPO_OPENMETRICS},
	    /* case and whitespace */
	    {"  Application/OpenMetrics-Text ; Version=1.0.0 ;Q=0.8 ,text/plain;q=0.2",
	     USHER_EXPO_OPENMETRICS},
	    /* malformed q: the range is ignored */
	    {"application/openmetrics-text;q=2, text/plain;q=0.1", USHER_EXPO_TEXT},
	    {"application/openmetrics-text;q=abc", USHER_EXPO_TEXT},
	    {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", USHER_EXPO_TEXT},
	    {",,,;;;===\"", USHER_EXPO_TEXT},
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		if (usher_expo_negotiate(cases[i].accept) != cases[i].want)
			fail_msg("case %zu: %s", i, cases[i].accept ? cases[i].accept : "(null)");
	}
	assert_string_equal(usher_expo_content_type(USHER_EXPO_TEXT),
			    "text/plain; version=0.0.4; charset=utf-8");
	assert_string_equal(usher_expo_content_type(USHER_EXPO_OPENMETRICS),
			    "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

static void test_empty(void **state)
{
	struct usher_registry *r = usher_registry_new();

	(void)state;
	assert_render(r, USHER_EXPO_TEXT, "");
	assert_render(r, USHER_EXPO_OPENMETRICS, "# EOF\n");
	usher_registry_free(r);
}

static const char *const prod_a = "a", *const prod_b = "b";

/* Producer A publishes first; B's probe_success must join A's family, in
 * producer order, under a single HELP/TYPE. */
static void test_family_grouping(void **state)
{
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *a = usher_sample_set_newv("job", "api", "instance", "h:80", NULL);
	struct usher_sample_set *b = usher_sample_set_newv("job", "db", NULL);

	(void)state;
	usher_sample_add(a, &desc_up, 1, NULL);
	usher_sample_add(a, &desc_raw, 3, "phase", "connect", NULL);
	usher_sample_add(a, &desc_up, 0, "extra", "x", NULL);
	usher_sample_add(b, &desc_nohelp, 7, NULL);
	usher_sample_add(b, &desc_up_again, 1, NULL);
	usher_sample_add(b, &desc_wrong_type, 5, NULL);
	usher_sample_add(b, &desc_info, 1, "version", "1.2", NULL);
	assert_int_equal(usher_sample_set_count(a), 3);
	assert_int_equal(usher_sample_set_count(b), 4);
	usher_registry_publish(r, prod_a, a);
	usher_registry_publish(r, prod_b, b);

	assert_render(r, USHER_EXPO_TEXT,
		      "# TYPE a_first gauge\n"
		      "a_first{job=\"db\"} 7\n"
		      "# HELP probe_success Whether the probe succeeded.\n"
		      "# TYPE probe_success gauge\n"
		      "probe_success{job=\"api\",instance=\"h:80\"} 1\n"
		      "probe_success{job=\"api\",instance=\"h:80\",extra=\"x\"} 0\n"
		      "probe_success{job=\"db\"} 1\n"
		      "# HELP usher_raw Something untyped.\n"
		      "# TYPE usher_raw untyped\n"
		      "usher_raw{job=\"api\",instance=\"h:80\",phase=\"connect\"} 3\n"
		      "# HELP usher_thing_info Information about a thing.\n"
		      "# TYPE usher_thing_info gauge\n"
		      "usher_thing_info{job=\"db\",version=\"1.2\"} 1\n");
	assert_render(r, USHER_EXPO_OPENMETRICS,
		      "# TYPE a_first gauge\n"
		      "a_first{job=\"db\"} 7\n"
		      "# HELP probe_success Whether the probe succeeded.\n"
		      "# TYPE probe_success gauge\n"
		      "probe_success{job=\"api\",instance=\"h:80\"} 1\n"
		      "probe_success{job=\"api\",instance=\"h:80\",extra=\"x\"} 0\n"
		      "probe_success{job=\"db\"} 1\n"
		      "# HELP usher_raw Something untyped.\n"
		      "# TYPE usher_raw unknown\n"
		      "usher_raw{job=\"api\",instance=\"h:80\",phase=\"connect\"} 3\n"
		      "# HELP usher_thing_info Information about a thing.\n"
		      "# TYPE usher_thing_info gauge\n"
		      "usher_thing_info{job=\"db\",version=\"1.2\"} 1\n"
		      "# EOF\n");

	/* B republishes with fewer samples; then A goes away */
	b = usher_sample_set_new(NULL);
	usher_sample_add(b, &desc_up, 0, NULL);
	usher_registry_publish(r, prod_b, b);
	usher_registry_remove(r, prod_a);
	assert_render(r, USHER_EXPO_TEXT,
		      "# HELP probe_success Whether the probe succeeded.\n"
		      "# TYPE probe_success gauge\n"
		      "probe_success 0\n");
	usher_registry_publish(r, prod_b, NULL);
	assert_render(r, USHER_EXPO_TEXT, "");
	usher_registry_remove(r, prod_b); /* not there any more: no-op */
	usher_registry_free(r);
}

static void test_counter_naming(void **state)
{
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *s = usher_sample_set_new(NULL);

	(void)state;
	usher_sample_add(s, &desc_req, 42, "code", "200", NULL);
	usher_sample_add(s, &desc_req, 0.5, "code", "500", NULL);
	usher_registry_publish(r, prod_a, s);
	assert_render(r, USHER_EXPO_TEXT,
		      "# HELP usher_requests_total Requests served.\n"
		      "# TYPE usher_requests_total counter\n"
		      "usher_requests_total{code=\"200\"} 42\n"
		      "usher_requests_total{code=\"500\"} 0.5\n");
	assert_render(r, USHER_EXPO_OPENMETRICS,
		      "# HELP usher_requests Requests served.\n"
		      "# TYPE usher_requests counter\n"
		      "usher_requests_total{code=\"200\"} 42\n"
		      "usher_requests_total{code=\"500\"} 0.5\n"
		      "# EOF\n");
	usher_registry_free(r);
}

static void test_histogram(void **state)
{
	static const double bounds[] = {0.005, 0.1, 1, 10};
	uint64_t counts[N(bounds)] = {0};
	struct usher_histogram h = {.nbuckets = N(bounds), .bounds = bounds, .counts = counts};
	static const double obs[] = {0.001, 0.005, 0.05, 0.5, 5, 50, 0.1};
	static const char *const pairs[] = {"handler", "/metrics", NULL};
	static const char *const base[] = {"job", "usherd", NULL};
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *s = usher_sample_set_new(base);
	static const char *const want_series =
	    "usher_duration_seconds_bucket{job=\"usherd\",handler=\"/metrics\",le=\"0.005\"} 2\n"
	    "usher_duration_seconds_bucket{job=\"usherd\",handler=\"/metrics\",le=\"0.1\"} 4\n"
	    "usher_duration_seconds_bucket{job=\"usherd\",handler=\"/metrics\",le=\"1\"} 5\n"
	    "usher_duration_seconds_bucket{job=\"usherd\",handler=\"/metrics\",le=\"10\"} 6\n"
	    "usher_duration_seconds_bucket{job=\"usherd\",handler=\"/metrics\",le=\"+Inf\"} 7\n"
	    "usher_duration_seconds_sum{job=\"usherd\",handler=\"/metrics\"} 55.656\n"
	    "usher_duration_seconds_count{job=\"usherd\",handler=\"/metrics\"} 7\n";
	char want[2048];
	size_t i;

	(void)state;
	for (i = 0; i < N(obs); i++)
		usher_histogram_observe(&h, obs[i]);
	assert_int_equal(h.count, 7);
	assert_int_equal(counts[0], 2);
	assert_int_equal(counts[3], 6);
	h.sum = 55.656; /* the exact float sum is not the point here */
	usher_sample_add_histogram(s, &desc_dur, &h, pairs);
	assert_int_equal(usher_sample_set_count(s), 7);
	usher_registry_publish(r, prod_a, s);

	snprintf(want, sizeof(want),
		 "# HELP usher_duration_seconds How long it took.\n"
		 "# TYPE usher_duration_seconds histogram\n%s",
		 want_series);
	assert_render(r, USHER_EXPO_TEXT, want);
	snprintf(want, sizeof(want),
		 "# HELP usher_duration_seconds How long it took.\n"
		 "# TYPE usher_duration_seconds histogram\n%s# EOF\n",
		 want_series);
	assert_render(r, USHER_EXPO_OPENMETRICS, want);
	usher_registry_free(r);
}

static void test_histogram_explicit_inf(void **state)
{
	static const double bounds[] = {1, INFINITY};
	uint64_t counts[N(bounds)] = {0};
	struct usher_histogram h = {.nbuckets = N(bounds), .bounds = bounds, .counts = counts};
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *s = usher_sample_set_new(NULL);

	(void)state;
	usher_histogram_observe(&h, 0.5);
	usher_histogram_observe(&h, 2);
	usher_histogram_observe(&h, NAN);
	usher_sample_add_histogram(s, &desc_dur, &h, NULL);
	usher_registry_publish(r, prod_a, s);
	assert_render(r, USHER_EXPO_TEXT,
		      "# HELP usher_duration_seconds How long it took.\n"
		      "# TYPE usher_duration_seconds histogram\n"
		      "usher_duration_seconds_bucket{le=\"1\"} 1\n"
		      "usher_duration_seconds_bucket{le=\"+Inf\"} 2\n"
		      "usher_duration_seconds_sum NaN\n"
		      "usher_duration_seconds_count 3\n");
	usher_registry_free(r);
}

static void test_label_escaping_in_render(void **state)
{
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *s = usher_sample_set_newv("instance", "C:\\db \"main\"", NULL);
	static const struct usher_metric_desc d = {"x_bytes", USHER_METRIC_GAUGE,
						   "Help with \\ and \"quotes\"\nand a newline."};

	(void)state;
	usher_sample_add(s, &d, 1e21, "msg", "line1\nline2", "city", "Zürich", "empty", "", NULL);
	usher_sample_add(s, &d, -INFINITY, "msg", NULL, NULL);
	usher_registry_publish(r, prod_a, s);
	assert_render(r, USHER_EXPO_TEXT,
		      "# HELP x_bytes Help with \\\\ and \"quotes\"\\nand a newline.\n"
		      "# TYPE x_bytes gauge\n"
		      "x_bytes{instance=\"C:\\\\db \\\"main\\\"\",msg=\"line1\\nline2\","
		      "city=\"Zürich\",empty=\"\"} 1e+21\n"
		      "x_bytes{instance=\"C:\\\\db \\\"main\\\"\",msg=\"\"} -Inf\n");
	assert_render(r, USHER_EXPO_OPENMETRICS,
		      "# HELP x_bytes Help with \\\\ and \\\"quotes\\\"\\nand a newline.\n"
		      "# TYPE x_bytes gauge\n"
		      "x_bytes{instance=\"C:\\\\db \\\"main\\\"\",msg=\"line1\\nline2\","
		      "city=\"Zürich\",empty=\"\"} 1e+21\n"
		      "x_bytes{instance=\"C:\\\\db \\\"main\\\"\",msg=\"\"} -Inf\n"
		      "# EOF\n");
	usher_registry_free(r);
}

/* A long label value takes the slow path of the line writer. */
static void test_long_line(void **state)
{
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *s = usher_sample_set_new(NULL);
	char *v = malloc(5001), *got, *want;
	size_t n;

	(void)state;
	memset(v, 'v', 5000);
	v[5000] = '\0';
	usher_sample_add(s, &desc_nohelp, 2, "k", v, NULL);
	usher_registry_publish(r, prod_a, s);
	got = render(r, USHER_EXPO_TEXT);
	n = strlen("# TYPE a_first gauge\na_first{k=\"") + 5000 + strlen("\"} 2\n");
	want = malloc(n + 1);
	snprintf(want, n + 1, "# TYPE a_first gauge\na_first{k=\"%s\"} 2\n", v);
	assert_string_equal(got, want);
	free(got);
	free(want);
	free(v);
	usher_registry_free(r);
}

/* A producer rebuilt by a reload takes over the old one's samples and place. */
static void test_move(void **state)
{
	static const char *const prod_c = "c";
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *a = usher_sample_set_newv("job", "a", NULL);
	struct usher_sample_set *b = usher_sample_set_newv("job", "b", NULL);
	struct usher_sample_set *c = usher_sample_set_newv("job", "c", NULL);
	static const char *const want = "# HELP probe_success Whether the probe succeeded.\n"
					"# TYPE probe_success gauge\n"
					"probe_success{job=\"a\"} 1\n"
					"probe_success{job=\"b\"} 1\n";

	(void)state;
	usher_sample_add(a, &desc_up, 1, NULL);
	usher_sample_add(b, &desc_up, 1, NULL);
	usher_sample_add(c, &desc_up, 1, NULL);
	usher_registry_publish(r, prod_a, a);
	usher_registry_publish(r, prod_b, b);
	usher_registry_move(r, prod_a, prod_c); /* a's set, first place, now c's */
	usher_registry_remove(r, prod_a);       /* no longer there: a no-op */
	assert_render(r, USHER_EXPO_TEXT, want);
	usher_registry_publish(r, prod_c, c); /* replaces the moved set in place */
	assert_render(r, USHER_EXPO_TEXT,
		      "# HELP probe_success Whether the probe succeeded.\n"
		      "# TYPE probe_success gauge\n"
		      "probe_success{job=\"c\"} 1\n"
		      "probe_success{job=\"b\"} 1\n");
	usher_registry_move(r, prod_b, prod_c); /* c's own set is freed */
	assert_render(r, USHER_EXPO_TEXT,
		      "# HELP probe_success Whether the probe succeeded.\n"
		      "# TYPE probe_success gauge\n"
		      "probe_success{job=\"b\"} 1\n");
	usher_registry_move(r, prod_a, prod_b); /* nothing to move */
	usher_registry_move(r, prod_c, prod_c);
	assert_render(r, USHER_EXPO_TEXT,
		      "# HELP probe_success Whether the probe succeeded.\n"
		      "# TYPE probe_success gauge\n"
		      "probe_success{job=\"b\"} 1\n");
	usher_registry_free(r);
}

static int ncollected;

static struct usher_sample_set *collect_two(void *arg)
{
	struct usher_sample_set *s = usher_sample_set_new(NULL);

	(void)arg;
	ncollected++;
	usher_sample_add(s, &desc_up, 2, "from", "collector", NULL);
	return s;
}

static struct usher_sample_set *collect_none(void *arg)
{
	(void)arg;
	return NULL;
}

static void test_collectors(void **state)
{
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *s = usher_sample_set_new(NULL);

	(void)state;
	ncollected = 0;
	usher_sample_add(s, &desc_up, 1, NULL);
	usher_registry_publish(r, prod_a, s);
	usher_registry_add_collector(r, collect_none, NULL);
	usher_registry_add_collector(r, collect_two, NULL);
	assert_render(r, USHER_EXPO_TEXT,
		      "# HELP probe_success Whether the probe succeeded.\n"
		      "# TYPE probe_success gauge\n"
		      "probe_success 1\n"
		      "probe_success{from=\"collector\"} 2\n");
	assert_render(r, USHER_EXPO_TEXT,
		      "# HELP probe_success Whether the probe succeeded.\n"
		      "# TYPE probe_success gauge\n"
		      "probe_success 1\n"
		      "probe_success{from=\"collector\"} 2\n");
	assert_int_equal(ncollected, 2);
	usher_registry_free(r);
}

static void test_render_toobig(void **state)
{
	struct usher_registry *r = usher_registry_new();
	struct usher_sample_set *s = usher_sample_set_new(NULL);
	struct usher_buf b;

	(void)state;
	usher_sample_add(s, &desc_up, 1, NULL);
	usher_registry_publish(r, prod_a, s);
	usher_buf_init(&b, 16);
	assert_int_equal(usher_registry_render(r, USHER_EXPO_TEXT, &b), USHER_ERR_TOOBIG);
	usher_buf_free(&b);
	usher_registry_free(r);
}

/* Many samples across many sets: sorted families, none split. */
static void test_many(void **state)
{
	static const struct usher_metric_desc descs[] = {
	    {"m_c", USHER_METRIC_GAUGE, "c"},
	    {"m_a", USHER_METRIC_GAUGE, "a"},
	    {"m_b", USHER_METRIC_COUNTER, "b"},
	};
	static const char owners[50];
	struct usher_registry *r = usher_registry_new();
	char *out, *p, inst[16], val[16];
	size_t i, j, k, nhelp = 0;

	(void)state;
	for (i = 0; i < N(owners); i++) {
		struct usher_sample_set *s;

		snprintf(inst, sizeof(inst), "i%zu", i);
		s = usher_sample_set_newv("instance", inst, NULL);
		for (j = 0; j < 100; j++)
			for (k = 0; k < N(descs); k++) {
				snprintf(val, sizeof(val), "%zu", j);
				usher_sample_add(s, &descs[k], (double)j, "n", val, NULL);
			}
		usher_registry_publish(r, &owners[i], s);
	}
	out = render(r, USHER_EXPO_TEXT);
	for (p = out; (p = strstr(p, "# HELP")) != NULL; p++)
		nhelp++;
	assert_int_equal(nhelp, 3);
	p = strstr(out, "# HELP m_a ");
	assert_non_null(p);
	assert_true(p < strstr(out, "# HELP m_b_total "));
	assert_true(strstr(out, "# HELP m_b_total ") < strstr(out, "# HELP m_c "));
	assert_non_null(
	    strstr(out, "m_a{instance=\"i0\",n=\"99\"} 99\nm_a{instance=\"i1\",n=\"0\"} 0\n"));
	free(out);
	usher_registry_free(r);
}

struct race {
	struct usher_registry *r;
	int rounds;
};

static void *publisher(void *arg)
{
	struct race *rc = arg;
	int i, j;

	for (i = 0; i < rc->rounds; i++) {
		struct usher_sample_set *s = usher_sample_set_newv("job", "race", NULL);

		for (j = 0; j < 50; j++)
			usher_sample_add(s, &desc_up, (double)i, NULL);
		usher_registry_publish(rc->r, rc, s);
	}
	return NULL;
}

/* Renders racing a publisher: each render sees whole sets only. */
static void test_concurrent_publish(void **state)
{
	struct race rc = {.r = usher_registry_new(), .rounds = 2000};
	pthread_t t;
	int i;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, publisher, &rc), 0);
	for (i = 0; i < 200; i++) {
		char *out = render(rc.r, USHER_EXPO_OPENMETRICS);
		size_t n = 0;
		const char *p;

		for (p = out; (p = strstr(p, "probe_success{")) != NULL; p++)
			n++;
		assert_true(n == 0 || n == 50);
		free(out);
	}
	pthread_join(t, NULL);
	usher_registry_free(rc.r);
}

static void test_process_collector(void **state)
{
	struct usher_registry *r = usher_registry_new();
	char *out;

	(void)state;
	usher_process_collector_register(r);
	out = render(r, USHER_EXPO_TEXT);
	assert_non_null(
	    strstr(out, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "));
	assert_non_null(strstr(out, "\nprocess_resident_memory_bytes "));
	assert_non_null(strstr(out, "\nprocess_virtual_memory_bytes "));
	assert_non_null(strstr(out, "\nprocess_open_fds "));
	assert_non_null(strstr(out, "\nprocess_max_fds "));
	assert_non_null(strstr(out, "\nprocess_start_time_seconds "));
	assert_non_null(strstr(out, "\nusher_build_info{version=\""));
	assert_non_null(strstr(out, "compiler=\""));
	free(out);
	out = render(r, USHER_EXPO_OPENMETRICS);
	assert_non_null(
	    strstr(out, "# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total "));
	free(out);
	usher_registry_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_label),
	    cmocka_unit_test(test_escape_help),
	    cmocka_unit_test(test_escape_toobig),
	    cmocka_unit_test(test_format_value),
	    cmocka_unit_test(test_format_value_roundtrip),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_negotiate),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_family_grouping),
	    cmocka_unit_test(test_counter_naming),
	    cmocka_unit_test(test_histogram),
	    cmocka_unit_test(test_histogram_explicit_inf),
	    cmocka_unit_test(test_label_escaping_in_render),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_move),
	    cmocka_unit_test(test_collectors),
	    cmocka_unit_test(test_render_toobig),
	    cmocka_unit_test(test_many),
	    cmocka_unit_test(test_concurrent_publish),
	    cmocka_unit_test(test_process_collector),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
