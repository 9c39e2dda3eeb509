/* The state store: one embedded SQLite database, state_dir/usher.db, where
 * usherd keeps what must survive a restart — alert state, silences, the
 * notification log, queued deliveries, incidents.
 *
 * Each module owns its tables and declares them as a list of migrations
 * (usher_store_migrate); the store records each module's schema version in
 * its own table, so modules evolve independently.
 *
 * Threads: the connection is opened in serialized mode, so single
 * statements are safe from any thread. A module that needs several
 * statements to be atomic takes the store's lock around a transaction:
 *
 *	usher_store_lock(st);
 *	usher_store_exec(st, "BEGIN IMMEDIATE", &err);
 *	... prepared statements on usher_store_db(st) ...
 *	usher_store_exec(st, "COMMIT", &err);
 *	usher_store_unlock(st);
 *
 * The database runs in WAL mode with synchronous=NORMAL: a committed
 * transaction survives a crash of usherd (the data that matters here:
 * "was this page sent"), and readers (the CLI) never block the writer. */
#ifndef USHER_STORE_STORE_H
#define USHER_STORE_STORE_H

#include <sqlite3.h>

#include "core/err.h"

#define USHER_STORE_FILE "usher.db"

struct usher_store;

/* Opens (creating if needed) dir/usher.db; creates dir (0700) when it does
 * not exist. ":memory:" as dir gives a private in-memory database (tests). */
enum usher_err usher_store_open(const char *dir, struct usher_store **out, struct usher_error *err);
/* Closes the database. NULL ok. */
void usher_store_close(struct usher_store *st);

/* Brings module's tables to the newest version: steps is a NULL-terminated
 * list of SQL scripts, step i moving the schema from version i to i+1. The
 * steps not yet applied run in one transaction; a database written by a
 * newer usher (more steps than known) is refused with USHER_ERR_UNSUPPORTED. */
enum usher_err usher_store_migrate(struct usher_store *st, const char *module,
				   const char *const *steps, struct usher_error *err);

/* Runs one or more SQL statements without results. */
enum usher_err usher_store_exec(struct usher_store *st, const char *sql, struct usher_error *err);

/* The raw connection, for prepared statements. */
sqlite3 *usher_store_db(struct usher_store *st);
/* The path of the database file ("" for an in-memory store). */
const char *usher_store_path(const struct usher_store *st);

/* Serialises multi-statement transactions between threads (recursive). */
void usher_store_lock(struct usher_store *st);
void usher_store_unlock(struct usher_store *st);

/* Records sqlite's message for rc (the connection's last error) in err and
 * returns USHER_ERR_IO (USHER_ERR_NOMEM for SQLITE_NOMEM). what says what
 * was being done ("insert silence"). */
enum usher_err usher_store_fail(struct usher_store *st, int rc, const char *what,
				struct usher_error *err);

#endif
