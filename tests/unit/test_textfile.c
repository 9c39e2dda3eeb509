/* Unit tests of the textfile directory: runs of the textfile probe type on
 * a temp directory of good, malformed and conflicting *.prom files (and a
 * FIFO that must not block), the metrics they give, and the rate-limited
 * log lines. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "metrics/registry.h"
#include "probes/probe.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct fixture {
	char dir[64];
	char logpath[96];
	int logfd;
	struct usher_log *log;
	struct usher_config *cfg;
	void *ctx;
};

static void put(const struct fixture *f, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct usher_diags diags;
	struct usher_probe_env env = {0};
	struct usher_error err;
	char yaml[256], path[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/usher-textfile-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->logpath, sizeof(f->logpath), "%s.log", f->dir);
	f->logfd = open(f->logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(f->logfd >= 0);
	f->log = usher_log_new(f->logfd, USHER_LOG_FORMAT_TEXT, USHER_LOG_DEBUG, "test");
	put(f, "good.prom",
	    "# HELP backup_last_success_timestamp_seconds Last good backup.\n"
	    "# TYPE backup_last_success_timestamp_seconds gauge\n"
	    "backup_last_success_timestamp_seconds{target=\"main-db\"} 1.7e9\n");
	put(f, "nohelp.prom", "drill_ok{job=\"drill\"} 1\n");
	put(f, "bad.prom", "this is not { the format\n");
	put(f, "dup.prom", "x 1\nx 2\n");
	put(f, "ts.prom", "y 1 1700000000000\n");
	put(f, "zconflict.prom",
	    "# TYPE backup_last_success_timestamp_seconds counter\n"
	    "backup_last_success_timestamp_seconds 3\n"
	    "conflict_ok 1\n");
	put(f, "empty.prom", "");
	put(f, "notes.txt", "not read\n");
	snprintf(path, sizeof(path), "%s/fifo.prom", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/dir.prom", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);

	snprintf(yaml, sizeof(yaml), "textfile_dir: %s\n", f->dir);
	usher_diags_init(&diags);
	assert_int_equal(usher_config_load_text("t.yml", yaml, strlen(yaml), &f->cfg, &diags),
			 USHER_OK);
	usher_diags_free(&diags);
	env.log = f->log;
	usher_error_clear(&err);
	assert_int_equal(f->cfg->probes[0].type->init(&f->cfg->probes[0], &env, &f->ctx, &err),
			 USHER_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[512];

	f->cfg->probes[0].type->free(f->ctx);
	usher_config_free(f->cfg);
	usher_log_free(f->log);
	close(f->logfd);
	unlink(f->logpath);
	snprintf(cmd, sizeof(cmd), "%s/fifo.prom", f->dir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/dir.prom", f->dir);
	rmdir(cmd);
	{
		static const char *const names[] = {"good.prom",  "nohelp.prom", "bad.prom",
						    "dup.prom",   "ts.prom",     "zconflict.prom",
						    "empty.prom", "notes.txt"};
		size_t i;

		for (i = 0; i < N(names); i++) {
			snprintf(cmd, sizeof(cmd), "%s/%s", f->dir, names[i]);
			unlink(cmd);
		}
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* One run, as the scheduler does it; returns the text exposition. */
static char *run_once(struct fixture *f, bool *success)
{
	const struct usher_probe_conf *pc = &f->cfg->probes[0];
	struct usher_registry *reg = usher_registry_new();
	struct usher_probe_run run;
	struct usher_buf out;

	memset(&run, 0, sizeof(run));
	run.conf = pc;
	run.samples = usher_sample_set_newv("job", pc->job, "instance", pc->instance, NULL);
	run.arena = usher_arena_new();
	run.deadline_mono_ms = usher_mono_ms() + 5000;
	run.success = true;
	pc->type->run(f->ctx, &run);
	*success = run.success;
	usher_registry_publish(reg, reg, run.samples);
	usher_buf_init(&out, 1 << 20);
	assert_int_equal(usher_registry_render(reg, USHER_EXPO_TEXT, &out), USHER_OK);
	usher_arena_free(run.arena);
	usher_registry_free(reg);
	return usher_buf_take(&out);
}

static char *log_text(const struct fixture *f)
{
	char *buf = calloc(1, 65536);
	ssize_t n = pread(f->logfd, buf, 65535, 0);

	assert_true(n >= 0);
	return buf;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (hay = strstr(hay, needle); hay; hay = strstr(hay + 1, needle))
		n++;
	return n;
}

static void test_directory(void **state)
{
	struct fixture *f = *state;
	const struct usher_probe_conf *pc = &f->cfg->probes[0];
	char want[512], *out, *log;
	bool ok = false;
	static const char *const imported[] = {"backup_last_success_timestamp_seconds{",
					       "target=\"main-db\"} 1700000000\n",
					       "drill_ok{",
					       "exported_job=\"drill\"} 1\n",
					       "conflict_ok{",
					       "# HELP drill_ok Metric read from "};
	static const char *const left_out[] = {"\nx{", "\ny{", "this", "counter\n"};
	static const char *const good_files[] = {"good.prom", "nohelp.prom", "zconflict.prom",
						 "empty.prom"};
	static const char *const bad_files[] = {"bad.prom",  "dup.prom", "ts.prom",
						"fifo.prom", "dir.prom", "notes.txt"};
	size_t i;

	out = run_once(f, &ok);
	assert_true(ok); /* bad files are a measurement */
	for (i = 0; i < N(imported); i++)
		if (!strstr(out, imported[i])) {
			print_error("missing %s in:\n%s", imported[i], out);
			fail();
		}
	for (i = 0; i < N(left_out); i++)
		if (strstr(out, left_out[i])) {
			print_error("unexpected %s in:\n%s", left_out[i], out);
			fail();
		}
	for (i = 0; i < N(good_files); i++) {
		snprintf(want, sizeof(want),
			 "node_textfile_mtime_seconds{job=\"textfile\",instance=\"%s\","
			 "file=\"%s/%s\"} ",
			 pc->instance, f->dir, good_files[i]);
		if (!strstr(out, want)) {
			print_error("missing %s in:\n%s", want, out);
			fail();
		}
	}
	for (i = 0; i < N(bad_files); i++) {
		snprintf(want, sizeof(want), "%s/%s\"", f->dir, bad_files[i]);
		assert_null(strstr(out, want));
	}
	snprintf(want, sizeof(want),
		 "node_textfile_scrape_error{job=\"textfile\",instance=\"%s\"} 1\n", pc->instance);
	assert_non_null(strstr(out, want));
	free(out);

	log = log_text(f);
	/* one line per bad file, naming the place */
	assert_int_equal(count(log, "textfile-failed"), 6);
	assert_non_null(strstr(log, "bad.prom: line 1:6: "));
	assert_non_null(strstr(log, "dup.prom: line 2:1: duplicate series x (first at line 1)"));
	assert_non_null(
	    strstr(log, "ts.prom: line 1: samples in textfiles must not carry timestamps"));
	assert_non_null(strstr(log, "fifo.prom: not a regular file"));
	assert_non_null(strstr(log, "zconflict.prom: backup_last_success_timestamp_seconds in "));
	free(log);

	/* the same failures again: rate-limited, nothing new */
	out = run_once(f, &ok);
	free(out);
	log = log_text(f);
	assert_int_equal(count(log, "textfile-failed"), 6);
	free(log);

	/* fixed files: their samples come in, the recovery is logged once */
	put(f, "bad.prom", "fixed_metric 2\n");
	put(f, "dup.prom", "x 1\n");
	out = run_once(f, &ok);
	assert_non_null(strstr(out, "fixed_metric{"));
	assert_non_null(strstr(out, "\nx{"));
	free(out);
	log = log_text(f);
	assert_int_equal(count(log, "textfile-recovered"), 2);
	free(log);
}

static void test_missing_directory(void **state)
{
	struct fixture *f = *state;
	char moved[128], *out, *log;
	bool ok = false;

	snprintf(moved, sizeof(moved), "%s.moved", f->dir);
	assert_int_equal(rename(f->dir, moved), 0);
	out = run_once(f, &ok);
	assert_int_equal(rename(moved, f->dir), 0);
	assert_true(ok);
	assert_non_null(strstr(out, "node_textfile_scrape_error{"));
	assert_null(strstr(out, "node_textfile_mtime_seconds{"));
	assert_non_null(strstr(out, "} 1\n"));
	free(out);
	log = log_text(f);
	assert_non_null(
	    strstr(log, "cannot read the textfile directory: No such file or directory"));
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
