/* The rule engine's side of bench/rules/run.py: loads an OpenMetrics file
 * (the one Prometheus gets through `promtool tsdb create-blocks-from
 * openmetrics`) into usher's series store, then measures what the issue
 * names: bytes per retained sample (the store's own accounting and the
 * process' RSS growth), the latency of a set of queries at the data's last
 * timestamp, and one evaluation of a rule file's groups. Prints one JSON
 * object.
 *
 *   bench_rules DATA.om RULES.yml QUERY...
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "promql/engine.h"
#include "rules/group.h"
#include "rules/rulefile.h"
#include "tsdb/tsdb.h"

#define REPS 15

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			v = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One sample line: name{a="b",...} value timestamp-seconds. Fills pairs
 * (pointers into line, which is modified). */
static int parse_line(char *line, const char **pairs, size_t max, double *v, int64_t *t)
{
	char *p = line, *end;
	size_t n = 0;

	pairs[n++] = "__name__";
	pairs[n++] = p;
	while (*p && *p != '{' && *p != ' ')
		p++;
	if (*p == '{') {
		*p++ = '\0';
		while (*p && *p != '}') {
			if (n + 3 > max)
				return -1;
			pairs[n++] = p;
			while (*p && *p != '=')
				p++;
			if (p[0] != '=' || p[1] != '"')
				return -1;
			*p = '\0';
			p += 2;
			pairs[n++] = p;
			while (*p && *p != '"') /* the generator writes no escapes */
				p++;
			if (!*p)
				return -1;
			*p++ = '\0';
			if (*p == ',')
				p++;
		}
		if (*p != '}')
			return -1;
		p++;
	} else if (*p == ' ') {
		*p++ = '\0';
	} else {
		return -1;
	}
	*v = strtod(p, &end);
	if (end == p)
		return -1;
	p = end;
	*t = (int64_t)(strtod(p, &end) * 1000.0 + 0.5);
	if (end == p)
		return -1;
	pairs[n] = NULL;
	return 0;
}

int main(int argc, char **argv)
{
	struct usher_tsdb_options o;
	struct usher_tsdb *db;
	struct usher_tsdb_stats s;
	struct usher_promql_engine *eng;
	struct usher_storage st;
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	long rss0, rss1;
	int64_t tmax = 0, load0, load_ms;
	int i, q;

	if (argc < 3) {
		fprintf(stderr, "usage: %s DATA.om RULES.yml QUERY...\n", argv[0]);
		return 2;
	}
	usher_tsdb_options_default(&o);
	o.retention_ms = 0; /* the data is older than "now": keep it all */
	db = usher_tsdb_new(&o);
	eng = usher_promql_engine_new(NULL);
	st = usher_tsdb_storage(db);
	f = fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	rss0 = rss_kib();
	load0 = usher_mono_ms();
	while (getline(&line, &cap, f) > 0) {
		const char *pairs[40];
		double v;
		int64_t t;
		struct usher_error err;

		if (line[0] == '#' || !isalpha((unsigned char)line[0]))
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (parse_line(line, pairs, 39, &v, &t) != 0) {
			fprintf(stderr, "cannot parse: %s\n", line);
			return 1;
		}
		{
			struct usher_label lv[20];
			struct usher_labels l;
			size_t k, n = 0;

			for (k = 0; pairs[k]; k += 2) {
				lv[n].name = pairs[k];
				lv[n].value = pairs[k + 1];
				n++;
			}
			l.n = n;
			l.v = lv;
			usher_labels_normalize(&l, lv);
			usher_error_clear(&err);
			if (usher_tsdb_append(db, &l, t, v, &err) != USHER_OK) {
				fprintf(stderr, "append: %s\n", err.msg);
				return 1;
			}
		}
		if (t > tmax)
			tmax = t;
	}
	fclose(f);
	free(line);
	load_ms = usher_mono_ms() - load0;
	rss1 = rss_kib();
	usher_tsdb_stats(db, &s);

	printf("{\"series\": %zu, \"samples\": %zu, \"store_bytes\": %zu, "
	       "\"bytes_per_sample\": %.2f, \"rss_growth_kib\": %ld, "
	       "\"rss_bytes_per_sample\": %.2f, \"rss_kib\": %ld, \"load_ms\": %lld, \"queries\": [",
	       s.series, s.samples, s.bytes, (double)s.bytes / (double)s.samples, rss1 - rss0,
	       (double)(rss1 - rss0) * 1024.0 / (double)s.samples, rss1, (long long)load_ms);
	for (q = 3; q < argc; q++) {
		double ms[REPS];
		size_t nres = 0;

		for (i = 0; i < REPS; i++) {
			struct usher_promql_result r;
			struct usher_error err;
			int64_t t0 = usher_mono_ns();

			usher_error_clear(&err);
			if (usher_promql_eval_instant(eng, &st, argv[q], tmax, &r, &err)) {
				fprintf(stderr, "query %s: %s\n", argv[q], err.msg);
				return 1;
			}
			ms[i] = (double)(usher_mono_ns() - t0) / 1e6;
			nres = r.n;
			usher_promql_result_free(&r);
		}
		qsort(ms, REPS, sizeof(ms[0]), cmp_double);
		printf("%s{\"median_ms\": %.3f, \"results\": %zu}", q > 3 ? ", " : "", ms[REPS / 2],
		       nres);
	}
	printf("]");
	{
		struct usher_rulefile *rf = NULL;
		struct usher_diags d;
		struct usher_group_options go;
		double ms[REPS];
		size_t g, nrules = 0;

		usher_diags_init(&d);
		if (usher_rulefile_load(argv[2], &rf, &d) != USHER_OK) {
			usher_diags_print(&d, stderr);
			return 1;
		}
		usher_diags_free(&d);
		usher_group_options_default(&go);
		go.engine = eng;
		go.storage = st;
		go.db = NULL; /* measure evaluation, not writing ALERTS back */
		for (i = 0; i < REPS; i++) {
			int64_t t0 = usher_mono_ns();

			for (g = 0; g < rf->ngroups; g++) {
				struct usher_group *grp = usher_group_new(&rf->groups[g], &go);

				usher_group_eval(grp, tmax, NULL);
				usher_group_free(grp, -1);
				if (i == 0)
					nrules += rf->groups[g].nrules;
			}
			ms[i] = (double)(usher_mono_ns() - t0) / 1e6;
		}
		qsort(ms, REPS, sizeof(ms[0]), cmp_double);
		printf(", \"rules\": %zu, \"rules_eval_median_ms\": %.3f}\n", nrules, ms[REPS / 2]);
		usher_rulefile_free(rf);
	}
	usher_promql_engine_free(eng);
	usher_tsdb_free(db);
	return 0;
}
