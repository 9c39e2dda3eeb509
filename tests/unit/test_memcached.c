/* Unit tests of the memcached probe: `stats` answers captured from real
 * servers in tests/data/memcached/<case>.stats (with <case>.settings when
 * there is one) give exactly the exposition text in <case>.prom
 * (USHER_UPDATE_GOLDEN=1 rewrites them, for review by hand), and the
 * probe's options give exact file:line:col errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "metrics/registry.h"
#include "probes/memcached.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t)n + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return data;
}

static char *render(const char *stats, size_t len, const char *settings, size_t slen)
{
	struct usher_sample_set *s = usher_sample_set_new(NULL);
	enum usher_err rc = usher_memcached_stats_emit(s, stats, len, settings, slen);
	struct usher_registry *r;
	struct usher_buf out;
	int owner;

	usher_buf_init(&out, 1 << 22);
	if (rc) {
		assert_int_equal(usher_sample_set_count(s), 0);
		usher_sample_set_free(s);
		usher_buf_addf(&out, "error: %s\n", usher_strerror(rc));
		return usher_buf_take(&out);
	}
	r = usher_registry_new();
	usher_registry_publish(r, &owner, s);
	assert_int_equal(usher_registry_render(r, USHER_EXPO_TEXT, &out), USHER_OK);
	usher_registry_free(r);
	return usher_buf_take(&out);
}

static void test_golden(void **state)
{
	static const char *const cases[] = {
	    "memcached-1.6.18", /* a real server after sets, gets, deletes, cas */
	    "memcached-1.4.25", /* an older server's shape */
	    "edge",             /* duplicates, bad numbers, no END, a bad setting */
	    "error",            /* ERROR: not a stats answer */
	    "server-error",     /* SERVER_ERROR mid-answer */
	    "empty",            /* END alone */
	};
	bool update = getenv("USHER_UPDATE_GOLDEN") != NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512], *stats, *settings, *got, *want;
		size_t len, slen = 0, wlen;

		snprintf(path, sizeof(path), "%s/memcached/%s.stats", USHER_TEST_DATA, cases[i]);
		stats = slurp(path, &len);
		if (!stats)
			fail_msg("cannot read %s", path);
		snprintf(path, sizeof(path), "%s/memcached/%s.settings", USHER_TEST_DATA, cases[i]);
		settings = slurp(path, &slen);
		got = render(stats, len, settings, slen);
		snprintf(path, sizeof(path), "%s/memcached/%s.prom", USHER_TEST_DATA, cases[i]);
		if (update) {
			FILE *f = fopen(path, "wb");

			assert_non_null(f);
			fputs(got, f);
			fclose(f);
		}
		want = slurp(path, &wlen);
		if (!want)
			fail_msg("cannot read %s (USHER_UPDATE_GOLDEN=1 writes it)", path);
		if (strcmp(got, want) != 0) {
			print_error("case %s: exposition differs from %s; got:\n%s\n", cases[i],
				    path, got);
			fail();
		}
		free(stats);
		free(settings);
		free(got);
		free(want);
	}
}

/* The cas commands come out of cmd_set, as memcached_exporter does; with
 * a cas stat missing, set is left out rather than wrong. */
static void test_set_excludes_cas(void **state)
{
	static const char full[] = "STAT cmd_set 10\r\nSTAT cas_misses 1\r\nSTAT cas_hits 2\r\n"
				   "STAT cas_badval 3\r\nEND\r\n";
	static const char partial[] = "STAT cmd_set 10\r\nSTAT cas_hits 2\r\nEND\r\n";
	char *got;

	(void)state;
	got = render(full, sizeof(full) - 1, NULL, 0);
	assert_non_null(
	    strstr(got, "memcached_commands_total{command=\"set\",status=\"hit\"} 4\n"));
	free(got);
	got = render(partial, sizeof(partial) - 1, NULL, 0);
	assert_null(strstr(got, "command=\"set\""));
	assert_non_null(
	    strstr(got, "memcached_commands_total{command=\"cas\",status=\"hit\"} 2\n"));
	free(got);
}

/* Only the first len bytes count, and nothing past END is read. */
static void test_bounds(void **state)
{
	static const char text[] = "STAT curr_items 5\r\nEND\r\nSTAT bytes 7\r\n";
	char *got;

	(void)state;
	got = render(text, sizeof(text) - 1, NULL, 0);
	assert_non_null(strstr(got, "memcached_current_items 5\n"));
	assert_null(strstr(got, "memcached_current_bytes"));
	free(got);
	got = render(text, 10, NULL, 0); /* "STAT curr_" */
	assert_null(strstr(got, "memcached_current_items"));
	free(got);
	got = render("STAT a\0b 1\r\n", 12, NULL, 0);
	assert_string_equal(got, "error: protocol error\n");
	free(got);
}

/* ---- options ------------------------------------------------------------ */

static const char *load(const char *text, struct usher_config **out)
{
	static char all[4096];
	struct usher_config *cfg = NULL;
	struct usher_diags d;
	size_t i, off = 0;

	usher_diags_init(&d);
	usher_config_load_text("t.yml", text, strlen(text), &cfg, &d);
	all[0] = '\0';
	for (i = 0; i < d.n; i++) {
		struct usher_diags single = {.v = d.v + i, .n = 1};
		char one[1024];

		usher_diags_first(&single, one, sizeof(one));
		off += (size_t)snprintf(all + off, sizeof(all) - off, "%s%s", off ? "\n" : "", one);
	}
	usher_diags_free(&d);
	assert_true((cfg == NULL) == (all[0] != '\0'));
	if (out)
		*out = cfg;
	else
		usher_config_free(cfg);
	return all;
}

static void test_options(void **state)
{
	static const struct {
		const char *yaml;
		const char *want;
	} bad[] = {
	    {"probes:\n  - {name: m, type: memcached}\n",
	     "t.yml:2:5: missing required key \"address\""},
	    {"probes:\n  - {name: m, type: memcached, address: \"mc:0\"}\n",
	     "t.yml:2:41: address \"mc:0\": invalid port \"0\": use a number from 1 to 65535"},
	    {"probes:\n  - {name: m, type: memcached, address: mc, key_patterns: [a]}\n",
	     "t.yml:2:45: unknown key \"key_patterns\""},
	    {"probes:\n  - {name: m, type: memcached, address: mc, tls: {}}\n",
	     "t.yml:2:45: unknown key \"tls\""},
	    {"probes:\n  - {name: m, type: memcached, address: mc, connect_timeout: 5}\n",
	     "t.yml:2:62: connect_timeout: invalid duration \"5\": use a number with a unit, like "
	     "500ms, 15s, 1m30s or 2h"},
	};
	const struct usher_memcached_opts *o;
	struct usher_config *cfg;
	size_t i;

	(void)state;
	assert_string_equal(
	    load("probes:\n  - {name: m, type: memcached, address: mc.internal}\n", &cfg), "");
	assert_ptr_equal(cfg->probes[0].type, &usher_probe_memcached);
	o = cfg->probes[0].opts;
	assert_string_equal(o->addr.host, "mc.internal");
	assert_string_equal(o->addr.port, "11211");
	assert_int_equal(o->connect_timeout_ms, 5000);
	assert_string_equal(cfg->probes[0].instance, "mc.internal");
	usher_config_free(cfg);
	assert_string_equal(
	    load("probes:\n  - {name: m, type: memcached, address: \"unix:/run/mc.sock\"}\n", &cfg),
	    "");
	o = cfg->probes[0].opts;
	assert_true(o->addr.is_unix);
	assert_string_equal(o->addr.path, "/run/mc.sock");
	usher_config_free(cfg);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *got = load(bad[i].yaml, NULL);

		if (strcmp(got, bad[i].want) != 0) {
			print_error("case %zu:\ngot:  %s\nwant: %s\n", i, got, bad[i].want);
			fail();
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden),
	    cmocka_unit_test(test_set_excludes_cas),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
