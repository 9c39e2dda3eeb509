/* Unit tests of lib/backup: the encrypted stream (round trip; a flipped
 * byte, a cut, swapped or dropped chunk, a wrong key each refused),
 * keys, manifests, retention, ids, locks and textfiles. */
#include <dirent.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "backup/manifest.h"
#include "backup/promfile.h"
#include "backup/repo.h"
#include "backup/stream.h"
#include "core/buf.h"
#include "core/mem.h"

static const char KEY1[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char KEY2[] = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static char tmpdir[256];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/usher-test-backup-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

/* Removes our own mkdtemp directory and everything in it. */
static void rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[1024];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_int_equal(lstat(path, &st), 0);
		if (S_ISDIR(st.st_mode))
			rm_rf(path);
		else
			assert_int_equal(unlink(path), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(dir), 0);
}

static int teardown_dir(void **state)
{
	(void)state;
	rm_rf(tmpdir);
	return 0;
}

static void key(const char *hex, struct usher_backup_key *k)
{
	struct usher_error err = {{0}};

	assert_int_equal(usher_backup_key_parse(hex, strlen(hex), k, &err), USHER_OK);
}

/* Deterministic data: compressible (text-like) or not (xorshift). */
static unsigned char *make_data(size_t n, bool random)
{
	unsigned char *p = usher_malloc(n ? n : 1);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t i;

	for (i = 0; i < n; i++) {
		if (random) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[i] = (unsigned char)x;
		} else {
			p[i] = (unsigned char)("booking seat row 12 "[i % 20]);
		}
	}
	return p;
}

/* Writes data as a stream to a memory file; returns its bytes in *out. */
static void seal(const struct usher_backup_key *k, const unsigned char *data, size_t n,
		 int threads, struct usher_buf *out, struct usher_bstream_stats *st)
{
	char path[300];
	struct usher_bwriter *w;
	struct usher_error err = {{0}};
	char chunk[65536];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/stream-XXXXXX", tmpdir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(usher_bwriter_new(fd, k, 3, threads, &w, &err), USHER_OK);
	/* in uneven pieces, as a pipe delivers them */
	{
		size_t off = 0, step = 1;

		while (off < n) {
			size_t take = n - off < step ? n - off : step;

			assert_int_equal(usher_bwriter_write(w, data + off, take, &err), USHER_OK);
			off += take;
			step = step * 3 + 7;
			if (step > 300000)
				step = 1;
		}
	}
	assert_int_equal(usher_bwriter_finish(w, st, &err), USHER_OK);
	usher_bwriter_free(w);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	usher_buf_init(out, 64 << 20);
	while ((r = read(fd, chunk, sizeof(chunk))) > 0)
		assert_int_equal(usher_buf_add(out, chunk, (size_t)r), USHER_OK);
	close(fd);
	assert_int_equal(out->len, st->stored_bytes);
}

static enum usher_err collect(void *ctx, const void *p, size_t n, struct usher_error *err)
{
	(void)err;
	return usher_buf_add(ctx, p, n);
}

/* Reads bytes (n) back; raw gets the plaintext. */
static enum usher_err open_stream(const struct usher_backup_key *k, const void *bytes, size_t n,
				  struct usher_buf *raw, struct usher_bstream_stats *st,
				  struct usher_error *err)
{
	char path[300];
	enum usher_err rc;
	int fd;

	snprintf(path, sizeof(path), "%s/read-XXXXXX", tmpdir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(usher_write_all(fd, bytes, n, "test", NULL), USHER_OK);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	usher_buf_init(raw, 64 << 20);
	rc = usher_breader_run(fd, k, collect, raw, NULL, NULL, st, err);
	close(fd);
	return rc;
}

static void test_round_trip(void **state)
{
	static const struct {
		size_t n;
		bool random;
		int threads;
	} cases[] = {
	    {0, false, 0},        {1, false, 0},       {100000, false, 2},
	    {3 << 20, true, 2},   {(1 << 20) + 5, true, 0}, {5 << 20, false, 1},
	};
	struct usher_backup_key k;
	size_t i;

	(void)state;
	key(KEY1, &k);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char *data = make_data(cases[i].n, cases[i].random);
		struct usher_buf sealed, raw;
		struct usher_bstream_stats ws, rs;
		struct usher_error err = {{0}};

		seal(&k, data, cases[i].n, cases[i].threads, &sealed, &ws);
		assert_int_equal(ws.raw_bytes, cases[i].n);
		assert_int_equal(open_stream(&k, sealed.data, sealed.len, &raw, &rs, &err), USHER_OK);
		assert_int_equal(raw.len, cases[i].n);
		assert_true(cases[i].n == 0 || memcmp(raw.data, data, cases[i].n) == 0);
		assert_string_equal(rs.sha256, ws.sha256);
		assert_string_equal(rs.raw_sha256, ws.raw_sha256);
		assert_int_equal(rs.chunks, ws.chunks);
		if (cases[i].random && cases[i].n >= (3u << 20))
			assert_true(ws.chunks >= 3);
		usher_buf_free(&sealed);
		usher_buf_free(&raw);
		free(data);
	}
}

/* Offsets of the chunks of a sealed stream. */
static size_t chunk_offsets(const unsigned char *p, size_t n, size_t *off, size_t max)
{
	size_t pos = USHER_BACKUP_HEADER_LEN, k = 0;

	while (pos + 4 <= n && k < max) {
		uint32_t w = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 |
			     (uint32_t)p[pos + 2] << 8 | p[pos + 3];

		off[k++] = pos;
		pos += 4 + (w & 0x7fffffffu) + 16;
	}
	off[k] = pos;
	return k;
}

static void expect_fail(const struct usher_backup_key *k, const unsigned char *p, size_t n,
			enum usher_err want, const char *needle)
{
	struct usher_buf raw;
	struct usher_bstream_stats st;
	struct usher_error err = {{0}};
	enum usher_err rc = open_stream(k, p, n, &raw, &st, &err);

	if (rc != want || !strstr(err.msg, needle))
		fail_msg("expected %d with \"%s\", got %d: %s", want, needle, rc, err.msg);
	usher_buf_free(&raw);
}

static void test_tampering(void **state)
{
	struct usher_backup_key k, other;
	unsigned char *data = make_data(3 << 20, true), *copy;
	struct usher_buf sealed;
	struct usher_bstream_stats st;
	size_t off[16], n, i;

	(void)state;
	key(KEY1, &k);
	key(KEY2, &other);
	seal(&k, data, 3 << 20, 2, &sealed, &st);
	n = chunk_offsets((unsigned char *)sealed.data, sealed.len, off, 15);
	assert_true(n >= 3);
	assert_int_equal(off[n], sealed.len);
	copy = usher_malloc(sealed.len);

	/* a flipped byte in every place that matters: header, length, data, tag */
	{
		size_t where[] = {3, 20, 30, off[0] + 1, off[1] + 100, off[2] - 1, sealed.len - 1};

		for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
			memcpy(copy, sealed.data, sealed.len);
			copy[where[i]] ^= 0x20;
			{
				struct usher_buf raw;
				struct usher_bstream_stats rs;
				struct usher_error err = {{0}};

				if (open_stream(&k, copy, sealed.len, &raw, &rs, &err) == USHER_OK)
					fail_msg("flipping byte %zu went unnoticed", where[i]);
				assert_true(err.msg[0] != '\0');
				usher_buf_free(&raw);
			}
		}
	}
	/* a byte of chunk 1's data */
	memcpy(copy, sealed.data, sealed.len);
	copy[off[1] + 4 + 10] ^= 1;
	expect_fail(&k, copy, sealed.len, USHER_ERR_PROTOCOL, "chunk 1 (at byte");
	/* cut after a whole chunk, inside one, inside the header */
	expect_fail(&k, (unsigned char *)sealed.data, off[2], USHER_ERR_PROTOCOL,
		    "truncated: the file ends after 2 chunks");
	expect_fail(&k, (unsigned char *)sealed.data, off[1] + 50, USHER_ERR_PROTOCOL,
		    "truncated: the file ends inside chunk 1");
	expect_fail(&k, (unsigned char *)sealed.data, 10, USHER_ERR_PROTOCOL, "header");
	/* chunks 0 and 1 swapped (same sizes: both full) */
	assert_int_equal(off[1] - off[0], off[2] - off[1]);
	memcpy(copy, sealed.data, sealed.len);
	memcpy(copy + off[0], sealed.data + off[1], off[1] - off[0]);
	memcpy(copy + off[1], sealed.data + off[0], off[1] - off[0]);
	expect_fail(&k, copy, sealed.len, USHER_ERR_PROTOCOL, "chunk 0");
	/* chunk 1 dropped */
	memcpy(copy, sealed.data, off[1]);
	memcpy(copy + off[1], sealed.data + off[2], sealed.len - off[2]);
	expect_fail(&k, copy, sealed.len - (off[2] - off[1]), USHER_ERR_PROTOCOL, "chunk 1");
	/* the final flag cleared on the last chunk */
	memcpy(copy, sealed.data, sealed.len);
	copy[off[n - 1]] &= 0x7f;
	expect_fail(&k, copy, sealed.len, USHER_ERR_PROTOCOL, "failed authentication");
	/* bytes after the final chunk */
	{
		unsigned char *longer = usher_malloc(sealed.len + 1);

		memcpy(longer, sealed.data, sealed.len);
		longer[sealed.len] = 0;
		expect_fail(&k, longer, sealed.len + 1, USHER_ERR_PROTOCOL, "follows the final");
		free(longer);
	}
	/* a wrong key is named as such */
	expect_fail(&other, (unsigned char *)sealed.data, sealed.len, USHER_ERR_AUTH, "wrong key");
	/* the header's key id swapped for the other key's: the tags still fail */
	memcpy(copy, sealed.data, sealed.len);
	{
		unsigned i2;

		for (i2 = 0; i2 < 8; i2++) {
			char h[3] = {other.id[2 * i2], other.id[2 * i2 + 1], 0};

			copy[16 + i2] = (unsigned char)strtoul(h, NULL, 16);
		}
	}
	expect_fail(&other, copy, sealed.len, USHER_ERR_PROTOCOL, "failed authentication");
	free(copy);
	free(data);
	usher_buf_free(&sealed);
}

static void test_keys(void **state)
{
	static const struct {
		const char *text;
		bool ok;
	} cases[] = {
	    {KEY1, true},
	    {"  000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", true},
	    {"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\r\n", true},
	    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1", false},
	    {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00", false},
	    {"g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", false},
	    {"", false},
	};
	struct usher_backup_key a, b;
	char path[300];
	size_t i;
	int fd;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usher_error err = {{0}};
		enum usher_err rc = usher_backup_key_parse(cases[i].text, strlen(cases[i].text), &a,
							   &err);

		assert_int_equal(rc == USHER_OK, cases[i].ok);
		if (!cases[i].ok)
			assert_non_null(strstr(err.msg, "64 hex characters"));
	}
	key(KEY1, &a);
	key(KEY2, &b);
	assert_int_equal(strlen(a.id), USHER_BACKUP_KEY_ID_LEN);
	assert_string_not_equal(a.id, b.id);
	/* key files: mode 0600 accepted, 0644 refused */
	snprintf(path, sizeof(path), "%s/key", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, KEY2, strlen(KEY2)), (ssize_t)strlen(KEY2));
	assert_int_equal(write(fd, "\n", 1), 1);
	close(fd);
	{
		struct usher_error err = {{0}};
		struct usher_backup_key c;

		assert_int_equal(usher_backup_key_load(path, &c, &err), USHER_OK);
		assert_string_equal(c.id, b.id);
		assert_int_equal(chmod(path, 0644), 0);
		assert_int_equal(usher_backup_key_load(path, &c, &err), USHER_ERR_INVALID);
		assert_non_null(strstr(err.msg, "chmod 600"));
	}
}

static struct usher_manifest *sample_manifest(void)
{
	struct usher_manifest *m = usher_manifest_new();
	static struct usher_manifest_table tables[2] = {{"public", "bookings", 1200},
							{"public", "seats \"vip\"", 0}};

	m->id = "main-db_20261128T031500Z";
	m->kind = "postgres";
	m->target = "main-db";
	m->database = "booking";
	m->server_version = "15.8";
	m->tool_version = "pg_dump (PostgreSQL) 15.8";
	m->data_file = "pg_dump.custom.zst.aes";
	m->start_ms = 1795835700123;
	m->stop_ms = 1795835712456;
	m->raw_bytes = 123456789;
	m->stored_bytes = 23456789;
	m->chunks = 23;
	m->sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	m->raw_sha256 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
	m->compression = "zstd";
	m->level = 3;
	m->threads = 2;
	m->cipher = "aes-256-gcm";
	m->key_id = "0011223344556677";
	m->chunk_bytes = 1 << 20;
	m->tables = tables;
	m->ntables = 2;
	return m;
}

static void test_manifest_round_trip(void **state)
{
	struct usher_manifest *m = sample_manifest(), *back;
	struct usher_error err = {{0}};
	char *text = usher_manifest_dump(m), path[300];

	(void)state;
	assert_non_null(text);
	assert_int_equal(usher_manifest_parse(text, strlen(text), &back, &err), USHER_OK);
	assert_string_equal(back->id, m->id);
	assert_string_equal(back->database, "booking");
	assert_int_equal(back->start_ms, m->start_ms);
	assert_int_equal(back->stop_ms, m->stop_ms);
	assert_int_equal(back->raw_bytes, m->raw_bytes);
	assert_int_equal(back->chunks, 23);
	assert_int_equal(back->ntables, 2);
	assert_string_equal(back->tables[1].name, "seats \"vip\"");
	assert_int_equal(back->tables[0].rows, 1200);
	usher_manifest_free(back);
	snprintf(path, sizeof(path), "%s/manifest.json", tmpdir);
	assert_int_equal(usher_manifest_save(m, path, &err), USHER_OK);
	assert_int_equal(usher_manifest_load(path, &back, &err), USHER_OK);
	assert_string_equal(back->key_id, m->key_id);
	usher_manifest_free(back);
	free(text);
	/* the hmac: survives a save and load, catches an edit and another key */
	{
		struct usher_backup_key k, other;
		struct usher_manifest *loaded;

		key(KEY1, &k);
		key(KEY2, &other);
		assert_int_equal(usher_manifest_check(m, &k, &err), USHER_ERR_PROTOCOL);
		usher_manifest_sign(m, &k);
		assert_non_null(m->hmac);
		assert_int_equal(usher_manifest_save(m, path, &err), USHER_OK);
		assert_int_equal(usher_manifest_load(path, &loaded, &err), USHER_OK);
		assert_int_equal(usher_manifest_check(loaded, &k, &err), USHER_OK);
		usher_error_clear(&err);
		assert_int_equal(usher_manifest_check(loaded, &other, &err), USHER_ERR_PROTOCOL);
		assert_non_null(strstr(err.msg, "was modified"));
		loaded->tables[0].rows++;
		assert_int_equal(usher_manifest_check(loaded, &k, &err), USHER_ERR_PROTOCOL);
		usher_manifest_free(loaded);
	}
	m->tables = NULL;
	usher_manifest_free(m);
}

static void test_manifest_errors(void **state)
{
	static const struct {
		const char *from, *to, *msg;
	} cases[] = {
	    {"\"format\": 1", "\"format\": 2", "format 2"},
	    {"\"kind\": \"postgres\"", "\"kind\": \"mysql\"", "kind"},
	    {"\"id\": \"main-db_20261128T031500Z\"", "\"id\": \"../etc\"", "plain file names"},
	    {"\"data_file\": \"pg_dump.custom.zst.aes\"", "\"data_file\": \"a/b\"", "plain file"},
	    {"\"raw_bytes\": 123456789", "\"raw_bytes\": -1", "raw_bytes"},
	    {"\"raw_bytes\": 123456789", "\"raw_bytes\": \"x\"", "raw_bytes: expected an integer"},
	    {"\"start_time\": \"2026", "\"start_time\": \"1926", "start_time"},
	    {"\"key_id\": \"0011223344556677\"", "\"key_id\": \"xyz\"", "key_id"},
	    {"\"algorithm\": \"aes-256-gcm\"", "\"algorithm\": \"aes-256-cbc\"", "aes-256-cbc"},
	    {"\"rows\": 1200", "\"rows\": 1.5", "tables[0].rows"},
	    {"\"table\": \"bookings\"", "\"table\": null", "tables[0].table"},
	    {"{", "[", "expected a JSON object"},
	};
	struct usher_manifest *m = sample_manifest(), *back;
	char *text = usher_manifest_dump(m);
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *at = strstr(text, cases[i].from), buf[8192];
		struct usher_error err = {{0}};
		enum usher_err rc;

		assert_non_null(at);
		snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - text), text, cases[i].to,
			 at + strlen(cases[i].from));
		if (cases[i].from[0] == '{') /* keep it balanced JSON: swap the outer braces */
			snprintf(buf, sizeof(buf), "[%s]", text);
		rc = usher_manifest_parse(buf, strlen(buf), &back, &err);
		if (rc == USHER_OK || !strstr(err.msg, cases[i].msg))
			fail_msg("case %zu: expected an error with \"%s\", got %d: %s", i,
				 cases[i].msg, rc, err.msg);
		assert_null(back);
	}
	{
		struct usher_error err = {{0}};

		assert_int_not_equal(usher_manifest_parse("{\"format\":1,\"format\":1}", 24, &back,
							  &err),
				     USHER_OK);
		assert_int_not_equal(usher_manifest_parse("not json", 8, &back, &err), USHER_OK);
	}
	free(text);
	m->tables = NULL;
	usher_manifest_free(m);
}

static void test_rfc3339(void **state)
{
	static const struct {
		const char *s;
		int64_t ms; /* -1: invalid */
	} cases[] = {
	    {"1970-01-01T00:00:00Z", 0},
	    {"2026-11-28T03:49:16.123Z", 1795837756123},
	    {"2026-11-28T03:49:16.1Z", 1795837756100},
	    {"2026-11-28T03:49:16.123456789Z", 1795837756123},
	    {"2026-11-28T03:49:16", -1},
	    {"2026-11-28 03:49:16Z", -1},
	    {"2026-13-28T03:49:16Z", -1},
	    {"2026-11-28T03:49:16.Z", -1},
	    {"2026-11-28T03:49:16+01:00", -1},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		enum usher_err rc = usher_rfc3339_parse(cases[i].s, &ms);

		if (cases[i].ms < 0)
			assert_int_not_equal(rc, USHER_OK);
		else {
			assert_int_equal(rc, USHER_OK);
			assert_int_equal(ms, cases[i].ms);
		}
	}
}

#define DAY (86400000LL)

static void test_retention(void **state)
{
	/* newest first: 2026-11-28 (twice), 27, 26, 20 (another week), 2026-10-15, 2026-09-01 */
	static const int64_t base = 1795824000000LL; /* 2026-11-28T00:00:00Z, a Saturday */
	const int64_t t[] = {base + 5 * 3600000, base + 3600000, base - DAY, base - 2 * DAY,
			     base - 8 * DAY,     base - 44 * DAY, base - 88 * DAY};
	static const struct {
		struct usher_backup_retention_conf r;
		unsigned want[7];
	} cases[] = {
	    {{1, 0, 0, 0}, {USHER_KEEP_LAST, 0, 0, 0, 0, 0, 0}},
	    {{0, 2, 0, 0}, {USHER_KEEP_DAILY, 0, USHER_KEEP_DAILY, 0, 0, 0, 0}},
	    {{0, 0, 2, 0}, {USHER_KEEP_WEEKLY, 0, 0, 0, USHER_KEEP_WEEKLY, 0, 0}},
	    {{0, 0, 0, 3}, {USHER_KEEP_MONTHLY, 0, 0, 0, 0, USHER_KEEP_MONTHLY, USHER_KEEP_MONTHLY}},
	    {{2, 3, 0, 0},
	     {USHER_KEEP_LAST | USHER_KEEP_DAILY, USHER_KEEP_LAST, USHER_KEEP_DAILY,
	      USHER_KEEP_DAILY, 0, 0, 0}},
	    {{0, 100, 0, 0},
	     {USHER_KEEP_DAILY, 0, USHER_KEEP_DAILY, USHER_KEEP_DAILY, USHER_KEEP_DAILY,
	      USHER_KEEP_DAILY, USHER_KEEP_DAILY}},
	};
	size_t i, j;

	(void)state;
	assert_false(usher_retention_set(&(struct usher_backup_retention_conf){0, 0, 0, 0}));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned keep[7];

		assert_true(usher_retention_set(&cases[i].r));
		usher_retention_apply(&cases[i].r, t, 7, keep);
		for (j = 0; j < 7; j++)
			if (keep[j] != cases[i].want[j])
				fail_msg("case %zu backup %zu: kept %#x, want %#x", i, j, keep[j],
					 cases[i].want[j]);
	}
}

static void test_repo(void **state)
{
	char repo[400], id[USHER_BACKUP_ID_MAX], id2[USHER_BACKUP_ID_MAX], path[1024];
	struct usher_error err = {{0}};
	int fd1, fd2;

	(void)state;
	snprintf(repo, sizeof(repo), "%s/repo/nested", tmpdir);
	assert_int_equal(usher_repo_init(repo, &err), USHER_OK);
	assert_true(usher_repo_target_valid("main-db"));
	assert_true(usher_repo_target_valid("pg-127.0.0.1-5432-booking"));
	assert_false(usher_repo_target_valid("../x"));
	assert_false(usher_repo_target_valid(".hidden"));
	assert_false(usher_repo_target_valid(""));
	usher_repo_new_id(repo, "main-db", 1795837756123, id, sizeof(id));
	assert_string_equal(id, "main-db_20261128T034916Z");
	snprintf(path, sizeof(path), "%s/%s.partial", repo, id);
	assert_int_equal(mkdir(path, 0700), 0);
	usher_repo_new_id(repo, "main-db", 1795837756123, id2, sizeof(id2));
	assert_string_equal(id2, "main-db_20261128T034917Z");
	/* leftovers of this target go, others' stay */
	snprintf(path, sizeof(path), "%s/other_20261128T034916Z.partial", repo);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(usher_repo_clean_leftovers(repo, "main-db"), 1);
	assert_int_equal(usher_repo_clean_leftovers(repo, "main-db"), 0);
	assert_int_equal(usher_repo_clean_leftovers(repo, "other"), 1);
	/* one lock holder per target */
	assert_int_equal(usher_repo_lock(repo, "main-db", 0, &fd1, &err), USHER_OK);
	assert_int_equal(usher_repo_lock(repo, "main-db", 300, &fd2, &err), USHER_ERR_TIMEOUT);
	assert_non_null(strstr(err.msg, "already running"));
	usher_error_clear(&err);
	assert_int_equal(usher_repo_lock(repo, "other", 0, &fd2, &err), USHER_OK);
	usher_repo_unlock(fd2);
	usher_repo_unlock(fd1);
	assert_int_equal(usher_repo_lock(repo, "main-db", 0, &fd1, &err), USHER_OK);
	usher_repo_unlock(fd1);
}

static void test_promfile(void **state)
{
	struct usher_promfile_gauge g[2] = {
	    {"usher_backup_last_success_timestamp_seconds", "help one", 1795837756.5},
	    {"usher_backup_last_status", "help two", 1},
	};
	struct usher_error err = {{0}};
	char name[200], path[600], text[2048];
	ssize_t n;
	int fd;

	(void)state;
	usher_promfile_name("backup", "pg-127.0.0.1:5432/x", name, sizeof(name));
	assert_string_equal(name, "usher_backup_pg-127.0.0.1_5432_x.prom");
	assert_int_equal(usher_promfile_write(tmpdir, name, "a\"b", g, 2, &err), USHER_OK);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n > 0);
	text[n] = '\0';
	assert_non_null(strstr(text, "# TYPE usher_backup_last_status gauge\n"));
	assert_non_null(strstr(text, "usher_backup_last_status{target=\"a\\\"b\"} 1\n"));
	assert_true(usher_promfile_read(tmpdir, name, g[0].name, 0) == 1795837756.5);
	assert_true(usher_promfile_read(tmpdir, name, "usher_nope", -7) == -7);
	assert_true(usher_promfile_read(tmpdir, "missing.prom", g[0].name, 3) == 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_tampering),
	    cmocka_unit_test(test_keys),             cmocka_unit_test(test_manifest_round_trip),
	    cmocka_unit_test(test_manifest_errors),  cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_retention),        cmocka_unit_test(test_repo),
	    cmocka_unit_test(test_promfile),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
