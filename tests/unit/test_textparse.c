/* Unit tests of the exposition-format parser: table-driven cases of text
 * 0.0.4 and OpenMetrics 1.0 input, each with the families and samples it
 * must give or the line:col and message it must be rejected with; plus the
 * series-identity set and the format choice by Content-Type. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "metrics/seriesset.h"
#include "metrics/textparse.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define T    USHER_TP_TEXT
#define OM   USHER_TP_OPENMETRICS

/* A canonical dump of a result: one line per family that has metadata or
 * samples ("# name type help=... unit=..."), one per sample
 * ("name{k=v,...} value [@ts]"), values printed with %.17g. */
static char *dump(const struct usher_tp_result *r, struct usher_arena *a)
{
	struct usher_buf b;
	size_t i, j;

	usher_buf_init(&b, 1 << 20);
	for (i = 0; i < r->nfamilies; i++) {
		const struct usher_tp_family *f = &r->families[i];

		usher_buf_addf(&b, "# %s %s", f->name, usher_tp_type_name(f->type, USHER_TP_TEXT));
		if (f->help)
			usher_buf_addf(&b, " help=%s", f->help);
		if (f->unit)
			usher_buf_addf(&b, " unit=%s", f->unit);
		usher_buf_addf(&b, " n=%zu\n", f->nsamples);
	}
	for (i = 0; i < r->nsamples; i++) {
		const struct usher_tp_sample *s = &r->samples[i];
		char v[40];

		if (isnan(s->value))
			snprintf(v, sizeof(v), "NaN");
		else
			snprintf(v, sizeof(v), "%.17g", s->value);
		usher_buf_addstr(&b, usher_tp_sample_name(a, r, s));
		if (s->nlabels) {
			usher_buf_addc(&b, '{');
			for (j = 0; s->labels[j]; j += 2)
				usher_buf_addf(&b, "%s%s=%s", j ? "," : "", s->labels[j],
					       s->labels[j + 1]);
			usher_buf_addc(&b, '}');
		}
		usher_buf_addf(&b, " %s", v);
		if (s->has_timestamp)
			usher_buf_addf(&b, " @%lld", (long long)s->timestamp_ms);
		usher_buf_addc(&b, '\n');
	}
	return usher_buf_take(&b);
}

struct ok_case {
	const char *name;
	enum usher_tp_format fmt;
	const char *in;
	const char *want;
};

static const struct ok_case ok_cases[] = {
    {"empty text", T, "", ""},
    {"blank lines and comments", T, "\n\n  \t\n# a comment\n#\n#   \n# TYPE\n# HELP x\n", ""},
    {"minimal", T,
     "minimal_metric 1.234\nanother_metric -3e3 103948\n# Even that:\nno_labels{} 3\n",
     "# minimal_metric untyped n=1\n"
     "# another_metric untyped n=1\n"
     "# no_labels untyped n=1\n"
     "minimal_metric 1.234\n"
     "another_metric -3000 @103948\n"
     "no_labels 3\n"},
    {"help for a metric without samples", T,
     "# HELP line for non-existing metric will be ignored.\n",
     "# line untyped help=for non-existing metric will be ignored. n=0\n"},
    {"labels, escapes, blanks", T,
     "name{labelname=\"val1\",basename=\"basevalue\"} NaN\n"
     "name {labelname=\"val2\",basename=\"base\\\"v\\\\al\\nue\"} 0.23 1234567890\n"
     "  name\t{ a = \"x\" , } \t 7 \t\n",
     "# name untyped n=3\n"
     "name{labelname=val1,basename=basevalue} NaN\n"
     "name{labelname=val2,basename=base\"v\\al\nue} 0.23000000000000001 @1234567890\n"
     "name{a=x} 7\n"},
    {"help and type, escapes in help", T,
     "# HELP name two-line\\n doc  str\\\\ing\n"
     " # HELP  name2  \tdoc str\"ing 2\n"
     "#    TYPE    name counter\n"
     "# TYPE name2 gauge\n"
     "name{labelname=\"val1\"} 1\n"
     "name2 -Inf\n",
     "# name counter help=two-line\n doc  str\\ing n=1\n"
     "# name2 gauge help=doc str\"ing 2 n=1\n"
     "name{labelname=val1} 1\n"
     "name2 -inf\n"},
    {"type names in any case", T, "# TYPE a COUNTER\n# TYPE b Gauge\na 1\nb 2\n",
     "# a counter n=1\n# b gauge n=1\na 1\nb 2\n"},
    {"summary", T,
     "# HELP my_summary summary of things\n"
     "# TYPE my_summary summary\n"
     "my_summary{n1=\"val1\",quantile=\"0.5\"} 110\n"
     "my_summary{n1=\"val1\",quantile=\"0.9\"} 140 1\n"
     "my_summary_count{n1=\"val1\"} 42\n"
     "my_summary_sum{n1=\"val1\"} 4711\n",
     "# my_summary summary help=summary of things n=4\n"
     "my_summary{n1=val1,quantile=0.5} 110\n"
     "my_summary{n1=val1,quantile=0.9} 140 @1\n"
     "my_summary_count{n1=val1} 42\n"
     "my_summary_sum{n1=val1} 4711\n"},
    {"histogram", T,
     "# TYPE request_duration_microseconds histogram\n"
     "request_duration_microseconds_bucket{le=\"100\"} 123\n"
     "request_duration_microseconds_bucket{le=\"120\"} 412\n"
     "request_duration_microseconds_bucket{le=\"+Inf\"} 2693\n"
     "request_duration_microseconds_sum 1.7560473e+06\n"
     "request_duration_microseconds_count 2693\n",
     "# request_duration_microseconds histogram n=5\n"
     "request_duration_microseconds_bucket{le=100} 123\n"
     "request_duration_microseconds_bucket{le=120} 412\n"
     "request_duration_microseconds_bucket{le=+Inf} 2693\n"
     "request_duration_microseconds_sum 1756047.3\n"
     "request_duration_microseconds_count 2693\n"},
    {"exact name wins over a summary suffix", T,
     "# TYPE s summary\n# TYPE s_sum gauge\ns_sum 1\ns_count 2\n",
     "# s summary n=1\n# s_sum gauge n=1\ns_sum 1\ns_count 2\n"},
    {"bucket of a summary is its own family", T, "# TYPE s summary\ns_bucket 1\n",
     "# s summary n=0\n# s_bucket untyped n=1\ns_bucket 1\n"},
    {"non-contiguous samples of a family", T, "a 1\nb 2\na{x=\"1\"} 3\n",
     "# a untyped n=2\n# b untyped n=1\na 1\nb 2\na{x=1} 3\n"},
    {"special values and signs", T, "a +Inf\nb -inf\nc nan\nd +1.5E-3\ne .5\nf 5.\ng Infinity\n",
     "# a untyped n=1\n# b untyped n=1\n# c untyped n=1\n# d untyped n=1\n# e untyped n=1\n"
     "# f untyped n=1\n# g untyped n=1\n"
     "a inf\nb -inf\nc NaN\nd 0.0015\ne 0.5\nf 5\ng inf\n"},
    {"no trailing newline, negative timestamp", T, "a{b=\"\"} 1 -5",
     "# a untyped n=1\na{b=} 1 @-5\n"},
    {"utf-8 label value", T, "a{city=\"Zürich 東京 🎫\"} 1\n",
     "# a untyped n=1\na{city=Zürich 東京 🎫} 1\n"},
    {"colons in metric names", T, "job:request_rate:5m 3\n",
     "# job:request_rate:5m untyped n=1\n"
     "job:request_rate:5m 3\n"},

    {"openmetrics: only EOF", OM, "# EOF\n", ""},
    {"openmetrics: EOF without newline", OM, "a 1\n# EOF", "# a untyped n=1\na 1\n"},
    {"openmetrics: every type", OM,
     "# TYPE acme_http_router_request_seconds summary\n"
     "# UNIT acme_http_router_request_seconds seconds\n"
     "# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.\n"
     "acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32\n"
     "acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0\n"
     "acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0\n"
     "# TYPE go_goroutines gauge\n"
     "go_goroutines 69\n"
     "# TYPE process_cpu_seconds counter\n"
     "# UNIT process_cpu_seconds seconds\n"
     "# HELP process_cpu_seconds Total user and system CPU time spent in seconds.\n"
     "process_cpu_seconds_total 4.20072246e+06\n"
     "# TYPE foo histogram\n"
     "foo_bucket{le=\"0.0\"} 0\n"
     "foo_bucket{le=\"1e-05\"} 0\n"
     "foo_bucket{le=\"+Inf\"} 17 # {trace_id=\"oHg5SJYRHA0\"} 9.8e-05 1520879607.789\n"
     "foo_count 17\n"
     "foo_sum 324789.3\n"
     "foo_created 1520430000.123\n"
     "# TYPE build info\n"
     "build_info{version=\"1.2\"} 1\n"
     "# TYPE feature stateset\n"
     "feature{feature=\"a\"} 1\n"
     "feature{feature=\"b\"} 0\n"
     "# TYPE queue gaugehistogram\n"
     "queue_bucket{le=\"1\"} 2\n"
     "queue_bucket{le=\"+Inf\"} 3\n"
     "queue_gcount 3\n"
     "queue_gsum 1\n"
     "# TYPE raw unknown\n"
     "# HELP raw\n"
     "raw 1 1520879607.789\n"
     "# EOF\n",
     "# acme_http_router_request_seconds summary help=Latency though all of ACME's HTTP "
     "request router. unit=seconds n=3\n"
     "# go_goroutines gauge n=1\n"
     "# process_cpu_seconds counter help=Total user and system CPU time spent in seconds. "
     "unit=seconds n=1\n"
     "# foo histogram n=6\n"
     "# build info n=1\n"
     "# feature stateset n=2\n"
     "# queue gaugehistogram n=4\n"
     "# raw untyped help= n=1\n"
     "acme_http_router_request_seconds_sum{path=/api/v1,method=GET} 9036.3199999999997\n"
     "acme_http_router_request_seconds_count{path=/api/v1,method=GET} 807283\n"
     "acme_http_router_request_seconds_created{path=/api/v1,method=GET} 1605281325\n"
     "go_goroutines 69\n"
     "process_cpu_seconds_total 4200722.46\n"
     "foo_bucket{le=0.0} 0\n"
     "foo_bucket{le=1e-05} 0\n"
     "foo_bucket{le=+Inf} 17\n"
     "foo_count 17\n"
     "foo_sum 324789.29999999999\n"
     "foo_created 1520430000.1229999\n"
     "build_info{version=1.2} 1\n"
     "feature{feature=a} 1\n"
     "feature{feature=b} 0\n"
     "queue_bucket{le=1} 2\n"
     "queue_bucket{le=+Inf} 3\n"
     "queue_gcount 3\n"
     "queue_gsum 1\n"
     "raw 1 @1520879607789\n"},
    {"openmetrics: help escapes and quotes", OM,
     "# HELP a say \\\"hi\\\" \\\\ \\n\n# TYPE a gauge\na{b=\"\\\"\"} 1\n# EOF\n",
     "# a gauge help=say \"hi\" \\ \n n=1\na{b=\"} 1\n"},
    {"openmetrics: exemplar with timestamp on counter", OM,
     "# TYPE c counter\nc_total 1 2 # {a=\"b\"} 3 4\nc_created 5\n# EOF\n",
     "# c counter n=2\nc_total 1 @2000\nc_created 5\n"},
    {"openmetrics: a new family per unknown name", OM, "a 1\na_total 2\n# EOF\n",
     "# a untyped n=1\n# a_total untyped n=1\na 1\na_total 2\n"},
    {"openmetrics: empty label set", OM, "a{} 1\n# EOF\n", "# a untyped n=1\na 1\n"},
};

struct err_case {
	const char *name;
	enum usher_tp_format fmt;
	const char *in;
	int line, col;
	const char *msg; /* a substring of the message */
	enum usher_err rc;
};

static const struct err_case err_cases[] = {
    {"no metric name", T, "{label=\"bla\"} 3.14\n", 1, 1, "expected a metric name or '#'"},
    {"invalid escape", T, "metric{label=\"\\t\"} 3.14\n", 1, 15, "invalid escape sequence \\t"},
    {"junk after timestamp", T, "metric{label=\"bla\"} 3.14 2 3\n", 1, 28,
     "unexpected '3' after the timestamp"},
    {"value not a number", T, "metric{label=\"bla\"} blubb\n", 1, 21, "\"blubb\" is not a number"},
    {"second help", T, "# HELP metric one\n# HELP metric two\n", 2, 3,
     "second HELP line for metric"},
    {"second type", T, "# TYPE metric counter\n# TYPE metric untyped\n", 2, 3,
     "second TYPE line for metric"},
    {"type after samples", T, "metric 4.12\n# TYPE metric counter\n", 2, 3,
     "TYPE after its samples"},
    {"unknown type", T, "# TYPE metric bla\n", 1, 15, "unknown metric type \"bla\""},
    {"type with trailing blank", T, "# TYPE metric counter \n", 1, 15,
     "unknown metric type \"counter \""},
    {"bad name in type", T, "# TYPE met-ric counter\n", 1, 11, "invalid metric name in TYPE"},
    {"bad first char", T, "@invalidmetric{label=\"bla\"} 3.14 2\n", 1, 1, "got '@'"},
    {"bucket without le", T, "# TYPE metric histogram\nmetric_bucket 2\n", 2, 1, "needs an le"},
    {"le not a number", T, "# TYPE metric histogram\nmetric_bucket{le=\"x\"} 2\n", 2, 1,
     "le=\"x\" is not a number"},
    {"summary without quantile", T, "# TYPE metric summary\nmetric 1\n", 2, 1,
     "needs a quantile label"},
    {"histogram sample without suffix", T, "# TYPE metric histogram\nmetric{le=\"1\"} 1\n", 2, 1,
     "histogram metric has no samples of that name"},
    {"duplicate label", T, "metric{label=\"a\",label=\"b\"} 1\n", 1, 18,
     "duplicate label name label"},
    {"reserved label", T, "metric{__name__=\"x\"} 1\n", 1, 8, "__name__ is reserved"},
    {"invalid utf-8", T, "metric{a=\"\xff\"} 1\n", 1, 11, "invalid UTF-8"},
    {"invalid utf-8 in help", T, "# HELP metric bad \xc3\x28\n", 1, 19, "invalid UTF-8"},
    {"carriage return", T, "metric 1\r\n", 1, 9, "carriage return"},
    {"label set not closed", T, "metric{a=\"b\" 1\n", 1, 14, "expected ',' or '}'"},
    {"label value not closed", T, "metric{a=\"b} 1\n", 1, 15, "missing closing '\"'"},
    {"float timestamp in text", T, "metric 1 1.5\n", 1, 10, "not an integer"},
    {"hex value", T, "metric 0x1p3\n", 1, 8, "not a number"},
    {"value out of range", T, "metric 1e999\n", 1, 8, "not a number"},
    {"missing value", T, "metric{a=\"b\"}\n", 1, 14, "expected a value, got end of line"},
    {"missing equals", T, "metric{a \"b\"} 1\n", 1, 10, "expected '=' after label name a"},
    {"NUL byte", T, "metric 1\nmet\0ric 2\n", 2, 4, "NUL byte"},
    {"bad label name", T, "metric{1a=\"b\"} 1\n", 1, 8, "expected a label name"},

    {"openmetrics: missing EOF", OM, "a 1\n", 2, 1, "missing \"# EOF\""},
    {"openmetrics: content after EOF", OM, "# EOF\na 1\n", 1, 1, "content after # EOF"},
    {"openmetrics: blank line", OM, "a 1\n\n# EOF\n", 2, 1, "empty line"},
    {"openmetrics: comment", OM, "# hello\n# EOF\n", 1, 3, "allows no comments"},
    {"openmetrics: interleaved families", OM,
     "# TYPE a counter\na_total 1\n# TYPE b gauge\nb 1\na_total 2\n# EOF\n", 5, 1,
     "must not be interleaved"},
    {"openmetrics: metadata again", OM, "# TYPE a gauge\na 1\nb 1\n# HELP a x\n# EOF\n", 4, 8,
     "must not be interleaved"},
    {"openmetrics: help after samples", OM, "a 1\n# HELP a x\n# EOF\n", 2, 3,
     "HELP for a after its samples"},
    {"openmetrics: counter without _total", OM, "# TYPE a counter\na 1\n# EOF\n", 2, 1,
     "not a sample name of counter family a"},
    {"openmetrics: exemplar on a gauge", OM, "# TYPE a gauge\na 1 # {x=\"y\"} 1\n# EOF\n", 2, 4,
     "exemplars are only allowed"},
    {"openmetrics: trailing comma", OM, "a{b=\"c\",} 1\n# EOF\n", 1, 8, "trailing comma"},
    {"openmetrics: blanks in labels", OM, "a{b = \"c\"} 1\n# EOF\n", 1, 4, "expected '='"},
    {"openmetrics: two spaces", OM, "a  1\n# EOF\n", 1, 3, "expected a value, got space"},
    {"openmetrics: tab", OM, "a\t1\n# EOF\n", 1, 2, "expected a space before the value, got tab"},
    {"openmetrics: unit not a suffix", OM, "# UNIT a_bytes seconds\n# EOF\n", 1, 16,
     "unit seconds is not a suffix"},
    {"openmetrics: untyped is not a type", OM, "# TYPE a untyped\n# EOF\n", 1, 10,
     "unknown metric type \"untyped\""},
    {"openmetrics: second type", OM, "# TYPE a gauge\n# TYPE a gauge\n# EOF\n", 2, 3,
     "second TYPE line"},
    {"openmetrics: info without _info", OM, "# TYPE a info\na 1\n# EOF\n", 2, 1,
     "not a sample name of info family a"},
    {"openmetrics: bad exemplar", OM, "# TYPE a counter\na_total 1 # x 1\n# EOF\n", 2, 13,
     "expected '{' to start the exemplar"},
    {"openmetrics: long exemplar", OM,
     "# TYPE a counter\na_total 1 # {a=\"0123456789012345678901234567890123456789012345678901234567"
     "890123456789012345678901234567890123456789012345678901234567890123456789\"} 1\n# EOF\n",
     2, 13, "more than 128"},
    {"openmetrics: bad timestamp", OM, "a 1 x\n# EOF\n", 1, 5, "not a number of seconds"},
    {"openmetrics: trailing space", OM, "a 1 \n# EOF\n", 1, 4, "unexpected space after the value"},
};

static void test_ok_cases(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(ok_cases); i++) {
		const struct ok_case *c = &ok_cases[i];
		struct usher_arena *a = usher_arena_new();
		struct usher_tp_result r;
		struct usher_tp_error err;
		enum usher_err rc;
		char *got;

		rc = usher_textparse(c->in, strlen(c->in), c->fmt, NULL, a, &r, &err);
		if (rc) {
			print_error("case \"%s\": rejected at %d:%d: %s\n", c->name, err.line,
				    err.col, err.msg);
			fail();
		}
		got = dump(&r, a);
		if (strcmp(got, c->want) != 0) {
			print_error("case \"%s\":\n--- got\n%s--- want\n%s", c->name, got, c->want);
			fail();
		}
		free(got);
		usher_arena_free(a);
	}
}

static void test_err_cases(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < N(err_cases); i++) {
		const struct err_case *c = &err_cases[i];
		struct usher_arena *a = usher_arena_new();
		struct usher_tp_result r;
		struct usher_tp_error err;
		size_t len = strlen(c->in);
		enum usher_err rc;

		/* the NUL case carries its byte inside the literal */
		if (strcmp(c->name, "NUL byte") == 0)
			len = 19;
		rc = usher_textparse(c->in, len, c->fmt, NULL, a, &r, &err);
		if (rc != (c->rc ? c->rc : USHER_ERR_INVALID) || err.line != c->line ||
		    err.col != c->col || !strstr(err.msg, c->msg)) {
			print_error(
			    "case \"%s\": got rc %d at %d:%d \"%s\", want %d:%d \"...%s...\"\n",
			    c->name, rc, err.line, err.col, err.msg, c->line, c->col, c->msg);
			fail();
		}
		assert_int_equal(r.nsamples, 0);
		assert_null(r.samples);
		usher_arena_free(a);
	}
}

static void test_limits(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_tp_limits lim = {.max_line = 16, .max_labels = 2};
	struct usher_tp_result r;
	struct usher_tp_error err;

	(void)state;
	assert_int_equal(usher_textparse("short 1\n", 8, T, &lim, a, &r, &err), USHER_OK);
	assert_int_equal(usher_textparse("ok 1\nthis_is_long 12345\n", 24, T, &lim, a, &r, &err),
			 USHER_ERR_TOOBIG);
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 17);
	lim.max_line = 0;
	assert_int_equal(usher_textparse("a{x=\"1\",y=\"2\"} 1\n", 17, T, &lim, a, &r, &err),
			 USHER_OK);
	assert_int_equal(
	    usher_textparse("a{x=\"1\",y=\"2\",z=\"3\"} 1\n", 23, T, &lim, a, &r, &err),
	    USHER_ERR_TOOBIG);
	assert_non_null(strstr(err.msg, "more than 2 labels"));
	usher_arena_free(a);
}

static void test_duplicates(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_tp_limits lim = {.reject_duplicates = true};
	struct usher_tp_result r;
	struct usher_tp_error err;
	const char *dup = "a{x=\"1\",y=\"2\"} 1\nb 2\na{y=\"2\",x=\"1\",z=\"\"} 3\n";
	const char *distinct = "a{x=\"1\"} 1\na{x=\"2\"} 1\na 1\n# TYPE h histogram\n"
			       "h_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 1\nh_sum 1\nh_count 1\n";

	(void)state;
	/* kept by default (a scrape drops them later) */
	assert_int_equal(usher_textparse(dup, strlen(dup), T, NULL, a, &r, &err), USHER_OK);
	assert_int_equal(r.nsamples, 3);
	/* label order and empty values do not make a series different */
	assert_int_equal(usher_textparse(dup, strlen(dup), T, &lim, a, &r, &err),
			 USHER_ERR_INVALID);
	assert_int_equal(err.line, 3);
	assert_non_null(strstr(err.msg, "duplicate series a (first at line 1)"));
	assert_int_equal(usher_textparse(distinct, strlen(distinct), T, &lim, a, &r, &err),
			 USHER_OK);
	assert_int_equal(r.nsamples, 7);
	usher_arena_free(a);
}

static void test_seriesset(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_seriesset *s = usher_seriesset_new(a);
	const char *p1[] = {"b", "2", "a", "1", NULL};
	const char *p2[] = {"a", "1", "b", "2", "c", "", NULL};
	const char *p3[] = {"a", "1", NULL};
	uint64_t h1, h2;
	int tag = 0;
	char name[32];
	int i;

	(void)state;
	assert_true(usher_seriesset_add(s, "m", p1, 1, NULL, &h1));
	assert_false(usher_seriesset_add(s, "m", p2, 2, &tag, &h2));
	assert_int_equal(tag, 1);
	assert_true(h1 == h2);
	assert_true(usher_seriesset_add(s, "m", p3, 3, NULL, NULL));
	assert_true(usher_seriesset_add(s, "n", p3, 4, NULL, NULL));
	assert_true(usher_seriesset_add(s, "m", NULL, 5, NULL, NULL));
	/* grows past its first table */
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "x%d", i);
		assert_true(usher_seriesset_add(s, name, p1, i, NULL, NULL));
	}
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "x%d", i);
		assert_false(usher_seriesset_add(s, name, p2, 0, &tag, NULL));
		assert_int_equal(tag, i);
	}
	assert_int_equal(usher_seriesset_count(s), 1004);
	usher_arena_free(a);
}

static void test_format_by_content_type(void **state)
{
	(void)state;
	assert_int_equal(usher_textparse_format(NULL), T);
	assert_int_equal(usher_textparse_format("text/plain; version=0.0.4; charset=utf-8"), T);
	assert_int_equal(
	    usher_textparse_format("application/openmetrics-text; version=1.0.0; charset=utf-8"),
	    OM);
	assert_int_equal(usher_textparse_format("Application/OpenMetrics-Text"), OM);
	assert_int_equal(usher_textparse_format("application/openmetrics-textual"), T);
	assert_int_equal(usher_textparse_format("application/json"), T);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ok_cases),  cmocka_unit_test(test_err_cases),
	    cmocka_unit_test(test_limits),    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_seriesset), cmocka_unit_test(test_format_by_content_type),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
