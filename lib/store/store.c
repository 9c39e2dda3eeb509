/* The SQLite state store: opening, per-module migrations, locking. */
#include "store/store.h"

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/mem.h"

struct usher_store {
	sqlite3 *db;
	pthread_mutex_t lock;
	char path[4096];
};

enum usher_err usher_store_fail(struct usher_store *st, int rc, const char *what,
				struct usher_error *err)
{
	const char *msg = st && st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);

	return usher_fail(err, rc == SQLITE_NOMEM ? USHER_ERR_NOMEM : USHER_ERR_IO,
			  "state store %s: %s: %s", st && st->path[0] ? st->path : "(memory)",
			  what, msg);
}

enum usher_err usher_store_exec(struct usher_store *st, const char *sql, struct usher_error *err)
{
	char *emsg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &emsg);

	if (rc != SQLITE_OK) {
		enum usher_err e = usher_fail(err, rc == SQLITE_NOMEM ? USHER_ERR_NOMEM : USHER_ERR_IO,
					      "state store %s: %s",
					      st->path[0] ? st->path : "(memory)",
					      emsg ? emsg : sqlite3_errstr(rc));
		sqlite3_free(emsg);
		return e;
	}
	return USHER_OK;
}

static enum usher_err mkdir_private(const char *dir, struct usher_error *err)
{
	struct stat sb;

	if (stat(dir, &sb) == 0)
		return S_ISDIR(sb.st_mode) ? USHER_OK
					   : usher_fail(err, USHER_ERR_IO,
							"state_dir %s is not a directory", dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return usher_fail(err, USHER_ERR_IO, "cannot create state_dir %s: %s", dir,
				  strerror(errno));
	return USHER_OK;
}

enum usher_err usher_store_open(const char *dir, struct usher_store **out, struct usher_error *err)
{
	struct usher_store *st;
	pthread_mutexattr_t ma;
	const char *file;
	enum usher_err rc;
	int src;
	bool memory = strcmp(dir, ":memory:") == 0;

	*out = NULL;
	if (!memory && (rc = mkdir_private(dir, err)) != USHER_OK)
		return rc;
	st = usher_calloc(1, sizeof(*st));
	if (!memory &&
	    (size_t)snprintf(st->path, sizeof(st->path), "%s/%s", dir, USHER_STORE_FILE) >=
		    sizeof(st->path)) {
		free(st);
		return usher_fail(err, USHER_ERR_INVALID, "state_dir path too long: %s", dir);
	}
	file = memory ? ":memory:" : st->path;
	src = sqlite3_open_v2(file, &st->db,
			      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			      NULL);
	if (src != SQLITE_OK) {
		rc = usher_store_fail(st, src, "open", err);
		sqlite3_close(st->db);
		free(st);
		return rc;
	}
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&st->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	sqlite3_busy_timeout(st->db, 5000);
	rc = usher_store_exec(st,
			      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
			      "PRAGMA foreign_keys=ON;"
			      "CREATE TABLE IF NOT EXISTS schema_versions ("
			      " module TEXT PRIMARY KEY, version INTEGER NOT NULL);",
			      err);
	if (rc != USHER_OK) {
		usher_store_close(st);
		return rc;
	}
	if (!memory)
		chmod(st->path, 0600);
	*out = st;
	return USHER_OK;
}

void usher_store_close(struct usher_store *st)
{
	if (!st)
		return;
	sqlite3_close_v2(st->db);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static int schema_version(struct usher_store *st, const char *module, struct usher_error *err,
			  enum usher_err *rc)
{
	sqlite3_stmt *q = NULL;
	int v = 0, src;

	*rc = USHER_OK;
	src = sqlite3_prepare_v2(st->db, "SELECT version FROM schema_versions WHERE module = ?", -1,
				 &q, NULL);
	if (src == SQLITE_OK)
		src = sqlite3_bind_text(q, 1, module, -1, SQLITE_STATIC);
	if (src == SQLITE_OK) {
		src = sqlite3_step(q);
		if (src == SQLITE_ROW) {
			v = sqlite3_column_int(q, 0);
			src = SQLITE_DONE;
		}
	}
	if (src != SQLITE_DONE)
		*rc = usher_store_fail(st, src, "read schema version", err);
	sqlite3_finalize(q);
	return v;
}

enum usher_err usher_store_migrate(struct usher_store *st, const char *module,
				   const char *const *steps, struct usher_error *err)
{
	enum usher_err rc;
	sqlite3_stmt *q = NULL;
	int have, want = 0, i, src;

	while (steps[want])
		want++;
	usher_store_lock(st);
	rc = usher_store_exec(st, "BEGIN IMMEDIATE", err);
	if (rc != USHER_OK)
		goto out;
	have = schema_version(st, module, err, &rc);
	if (rc != USHER_OK)
		goto rollback;
	if (have > want) {
		rc = usher_fail(err, USHER_ERR_UNSUPPORTED,
				"state store %s: the %s tables are at version %d, newer than this "
				"usher knows (%d); use a newer usher or another state_dir",
				st->path, module, have, want);
		goto rollback;
	}
	if (have == want) {
		rc = usher_store_exec(st, "COMMIT", err);
		goto out;
	}
	for (i = have; i < want; i++)
		if ((rc = usher_store_exec(st, steps[i], err)) != USHER_OK)
			goto rollback;
	src = sqlite3_prepare_v2(st->db,
				 "INSERT INTO schema_versions(module, version) VALUES(?, ?) "
				 "ON CONFLICT(module) DO UPDATE SET version = excluded.version",
				 -1, &q, NULL);
	if (src == SQLITE_OK)
		src = sqlite3_bind_text(q, 1, module, -1, SQLITE_STATIC);
	if (src == SQLITE_OK)
		src = sqlite3_bind_int(q, 2, want);
	if (src == SQLITE_OK)
		src = sqlite3_step(q);
	sqlite3_finalize(q);
	if (src != SQLITE_DONE) {
		rc = usher_store_fail(st, src, "record schema version", err);
		goto rollback;
	}
	rc = usher_store_exec(st, "COMMIT", err);
	goto out;
rollback:
	usher_store_exec(st, "ROLLBACK", NULL);
out:
	usher_store_unlock(st);
	return rc;
}

sqlite3 *usher_store_db(struct usher_store *st)
{
	return st->db;
}

const char *usher_store_path(const struct usher_store *st)
{
	return st->path;
}

void usher_store_lock(struct usher_store *st)
{
	pthread_mutex_lock(&st->lock);
}

void usher_store_unlock(struct usher_store *st)
{
	pthread_mutex_unlock(&st->lock);
}
