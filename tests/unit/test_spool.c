/* Unit tests of the disk spool (lib/logship/spool.c): order, segment
 * rotation, acknowledgement, replay after reopening, torn and corrupt
 * records, and dropping the oldest segments when full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logship/spool.h"

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/usher-spool-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		char p[512];

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

static size_t count_segments(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	while ((e = readdir(d)) != NULL)
		n += strncmp(e->d_name, "seg-", 4) == 0;
	closedir(d);
	return n;
}

static struct usher_spool *open_spool(const char *dir, uint64_t max, uint64_t seg, uint64_t *cut)
{
	struct usher_spool_opts o = {
	    .max_bytes = max, .segment_bytes = seg, .fsync_interval_ms = 0};
	struct usher_spool *s = NULL;
	struct usher_error err;

	usher_error_clear(&err);
	if (usher_spool_open(dir, &o, &s, cut, &err))
		fail_msg("open: %s", err.msg);
	return s;
}

/* Appends records "rec-<from>" .. "rec-<to-1>", one call each. */
static uint64_t append_range(struct usher_spool *s, int from, int to)
{
	uint64_t dropped = 0, failed = 0;
	int i;

	for (i = from; i < to; i++) {
		char buf[64];
		struct iovec iov;
		struct usher_error err;

		/* 100-byte records: easy to reason about segment sizes */
		snprintf(buf, sizeof(buf), "rec-%06d", i);
		memset(buf + 10, 'x', sizeof(buf) - 10);
		iov.iov_base = buf;
		iov.iov_len = sizeof(buf);
		usher_error_clear(&err);
		assert_int_equal(usher_spool_append(s, &iov, 1, &dropped, &failed, &err), USHER_OK);
	}
	assert_int_equal(failed, 0);
	return dropped;
}

/* Reads everything, checking the records come in order from first;
 * acknowledges batch by batch when ack. Returns the number read. */
static int read_all(struct usher_spool *s, int first, bool ack, size_t batch_bytes)
{
	struct usher_spool_batch b;
	struct usher_error err;
	int next = first;

	usher_spool_batch_init(&b);
	for (;;) {
		size_t i;

		usher_error_clear(&err);
		assert_int_equal(usher_spool_read(s, batch_bytes, &b, &err), USHER_OK);
		assert_int_equal(b.corrupt, 0);
		if (!b.n)
			break;
		for (i = 0; i < b.n; i++) {
			char want[16];

			snprintf(want, sizeof(want), "rec-%06d", next);
			if (b.len[i] != 64 || memcmp(b.data.data + b.off[i], want, 10) != 0)
				fail_msg("record %d: got %.10s (%zu bytes)", next,
					 b.data.data + b.off[i], b.len[i]);
			next++;
		}
		if (!ack)
			break;
		assert_int_equal(usher_spool_ack(s, &b.end, &err), USHER_OK);
	}
	usher_spool_batch_free(&b);
	return next - first;
}

static void test_order_and_rotation(void **state)
{
	struct fixture *f = *state;
	struct usher_spool *s = open_spool(f->dir, 1 << 20, 4096, NULL);

	/* 72 bytes framed: 57 records per 4 KiB segment */
	assert_int_equal(append_range(s, 0, 300), 0);
	assert_int_equal(usher_spool_bytes(s), 300 * 72);
	assert_true(count_segments(f->dir) >= 5);
	/* reading without acknowledging always starts from the same place */
	assert_int_equal(read_all(s, 0, false, 1000), 1000 / 64);
	assert_int_equal(read_all(s, 0, false, 1000), 1000 / 64);
	assert_int_equal(read_all(s, 0, true, 1000), 300);
	assert_int_equal(usher_spool_bytes(s), 0);
	/* consumed segments are gone; the one being written stays */
	assert_int_equal(count_segments(f->dir), 1);
	append_range(s, 300, 310);
	assert_int_equal(read_all(s, 300, true, 1 << 20), 10);
	usher_spool_close(s);
}

static void test_replay_after_reopen(void **state)
{
	struct fixture *f = *state;
	struct usher_spool *s = open_spool(f->dir, 1 << 20, 4096, NULL);
	struct usher_spool_batch b;
	struct usher_error err;
	uint64_t cut = 1;

	append_range(s, 0, 200);
	/* acknowledge the first 50 */
	usher_spool_batch_init(&b);
	usher_error_clear(&err);
	assert_int_equal(usher_spool_read(s, 50 * 64, &b, &err), USHER_OK);
	assert_int_equal(b.n, 50);
	assert_int_equal(usher_spool_ack(s, &b.end, &err), USHER_OK);
	usher_spool_batch_free(&b);
	usher_spool_close(s);

	/* a restart replays from the 51st, in order, and appends after */
	s = open_spool(f->dir, 1 << 20, 4096, &cut);
	assert_int_equal(cut, 0);
	assert_int_equal(usher_spool_bytes(s), 150 * 72);
	append_range(s, 200, 220);
	assert_int_equal(read_all(s, 50, true, 4096), 170);
	usher_spool_close(s);
}

static void last_segment(const char *dir, char *out, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char best[256] = "";

	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "seg-", 4) == 0 && strcmp(e->d_name, best) > 0)
			snprintf(best, sizeof(best), "%s", e->d_name);
	closedir(d);
	snprintf(out, len, "%s/%s", dir, best);
}

static void test_torn_tail(void **state)
{
	struct fixture *f = *state;
	struct usher_spool *s = open_spool(f->dir, 1 << 20, 1 << 20, NULL);
	char path[600];
	struct stat st;
	uint64_t cut = 0;

	append_range(s, 0, 10);
	usher_spool_close(s);
	/* a crash in the middle of the 10th record's write */
	last_segment(f->dir, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 30), 0);
	s = open_spool(f->dir, 1 << 20, 1 << 20, &cut);
	assert_int_equal(cut, 72 - 30);
	assert_int_equal(usher_spool_bytes(s), 9 * 72);
	append_range(s, 9, 12); /* framing continues cleanly after the cut */
	assert_int_equal(read_all(s, 0, true, 1 << 20), 12);
	usher_spool_close(s);
}

static void test_corrupt_record_skipped(void **state)
{
	struct fixture *f = *state;
	struct usher_spool *s = open_spool(f->dir, 1 << 20, 4096, NULL);
	struct usher_spool_batch b;
	struct usher_error err;
	char first[600];
	DIR *d;
	struct dirent *e;
	char best[256] = "~";
	int fd, total = 0;
	uint64_t corrupt = 0;

	append_range(s, 0, 120); /* three segments */
	d = opendir(f->dir);
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "seg-", 4) == 0 && strcmp(e->d_name, best) < 0)
			snprintf(best, sizeof(best), "%s", e->d_name);
	closedir(d);
	snprintf(first, sizeof(first), "%s/%s", f->dir, best);
	/* flip a payload byte of the 3rd record of the first segment */
	fd = open(first, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "Z", 1, 2 * 72 + 8 + 20), 1);
	close(fd);
	usher_spool_batch_init(&b);
	for (;;) {
		usher_error_clear(&err);
		assert_int_equal(usher_spool_read(s, 1 << 20, &b, &err), USHER_OK);
		corrupt += b.corrupt;
		total += (int)b.n;
		if (!b.n && !b.corrupt)
			break;
		usher_spool_ack(s, &b.end, &err);
	}
	usher_spool_batch_free(&b);
	/* the two good records before it, and the next segments, survive */
	assert_int_equal(corrupt, 1);
	assert_int_equal(total, 120 - 57 + 2);
	usher_spool_close(s);
}

static void test_full_drops_oldest(void **state)
{
	struct fixture *f = *state;
	/* room for ~4 segments of 57 records */
	struct usher_spool *s = open_spool(f->dir, 4 * 4096, 4096, NULL);
	struct usher_spool_batch b;
	struct usher_error err;
	uint64_t dropped;
	int got, lost;

	dropped = append_range(s, 0, 1000);
	assert_true(dropped > 0);
	assert_true(usher_spool_bytes(s) <= 4 * 4096);
	/* what is left is the newest, in order, ending with the last one */
	usher_spool_batch_init(&b);
	usher_error_clear(&err);
	assert_int_equal(usher_spool_read(s, 64, &b, &err), USHER_OK);
	assert_int_equal(b.n, 1);
	lost = (int)strtol(b.data.data + b.off[0] + 4, NULL, 10);
	usher_spool_batch_free(&b);
	assert_int_equal((uint64_t)lost, dropped); /* exactly the oldest were dropped, counted */
	got = read_all(s, lost, true, 1 << 20);
	assert_int_equal(lost + got, 1000);
	usher_spool_close(s);
}

static void test_burst_larger_than_spool(void **state)
{
	struct fixture *f = *state;
	struct usher_spool *s = open_spool(f->dir, 4096, 4096, NULL);
	struct iovec iov[200];
	char bufs[200][64];
	uint64_t dropped = 0, failed = 0;
	struct usher_error err;
	int i;

	for (i = 0; i < 200; i++) {
		snprintf(bufs[i], sizeof(bufs[i]), "rec-%06d", i);
		memset(bufs[i] + 10, 'x', 54);
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = 64;
	}
	usher_error_clear(&err);
	assert_int_equal(usher_spool_append(s, iov, 200, &dropped, &failed, &err), USHER_OK);
	assert_int_equal(dropped, 200 - 4096 / 72);
	assert_int_equal(read_all(s, (int)dropped, true, 1 << 20), 4096 / 72);
	usher_spool_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_order_and_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replay_after_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_record_skipped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_drops_oldest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_burst_larger_than_spool, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
