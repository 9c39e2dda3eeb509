/* The state store: migrations apply once, in order, per module; a newer
 * schema is refused; the file is created private in a new state_dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"

static int count_rows(struct usher_store *st, const char *table)
{
	char sql[128];
	sqlite3_stmt *q;
	int n = -1;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	assert_int_equal(sqlite3_prepare_v2(usher_store_db(st), sql, -1, &q, NULL), SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		n = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return n;
}

static void test_migrations(void **state)
{
	char dir[] = "/tmp/usher-store-XXXXXX";
	char sub[64], file[96];
	struct usher_store *st;
	struct usher_error err = {0};
	struct stat sb;
	const char *v1[] = {"CREATE TABLE t(a INTEGER)", NULL};
	const char *v2[] = {"CREATE TABLE t(a INTEGER)", "INSERT INTO t VALUES (1)", NULL};
	const char *v1_other[] = {"CREATE TABLE u(b TEXT)", NULL};

	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/state", dir);
	assert_int_equal(usher_store_open(sub, &st, &err), USHER_OK);
	snprintf(file, sizeof(file), "%s/usher.db", sub);
	assert_int_equal(stat(file, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(usher_store_migrate(st, "test", v1, &err), USHER_OK);
	assert_int_equal(usher_store_migrate(st, "test", v1, &err), USHER_OK);
	assert_int_equal(usher_store_migrate(st, "other", v1_other, &err), USHER_OK);
	usher_store_close(st);

	/* reopen: version 1 is kept, only step 2 runs */
	assert_int_equal(usher_store_open(sub, &st, &err), USHER_OK);
	assert_int_equal(usher_store_migrate(st, "test", v2, &err), USHER_OK);
	assert_int_equal(count_rows(st, "t"), 1);
	assert_int_equal(usher_store_migrate(st, "test", v2, &err), USHER_OK);
	assert_int_equal(count_rows(st, "t"), 1);
	/* an older usher meets a newer schema */
	assert_int_equal(usher_store_migrate(st, "test", v1, &err), USHER_ERR_UNSUPPORTED);
	assert_non_null(strstr(err.msg, "newer"));
	usher_store_close(st);

	unlink(file);
	snprintf(file, sizeof(file), "%s/usher.db-wal", sub);
	unlink(file);
	snprintf(file, sizeof(file), "%s/usher.db-shm", sub);
	unlink(file);
	rmdir(sub);
	rmdir(dir);
}

static void test_failed_step_rolls_back(void **state)
{
	struct usher_store *st;
	struct usher_error err = {0};
	const char *bad[] = {"CREATE TABLE t(a INTEGER)", "INSERT INTO nosuch VALUES (1)", NULL};
	const char *good[] = {"CREATE TABLE t(a INTEGER)", NULL};

	assert_int_equal(usher_store_open(":memory:", &st, &err), USHER_OK);
	assert_int_equal(usher_store_migrate(st, "m", bad, &err), USHER_ERR_IO);
	assert_non_null(strstr(err.msg, "nosuch"));
	/* nothing of the failed run stayed: step 1 applies cleanly */
	memset(&err, 0, sizeof(err));
	assert_int_equal(usher_store_migrate(st, "m", good, &err), USHER_OK);
	assert_int_equal(count_rows(st, "t"), 0);
	usher_store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrations),
		cmocka_unit_test(test_failed_step_rolls_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
