/* PostgreSQL for backups and restores: DSNs split into a password-free
 * conninfo for the tools and the password for their environment, the
 * snapshot shared by pg_dump and the row counts, emptiness checks and
 * scratch databases. The one file of lib/backup that talks libpq. */
#ifndef USHER_BACKUP_PG_H
#define USHER_BACKUP_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup/manifest.h"
#include "core/err.h"

/* A DSN's parameters, as libpq parses it. */
struct usher_pgconn {
	size_t n;
	char **keys, **vals; /* non-empty settings, NULL-terminated */
};

enum usher_err usher_pgconn_parse(const char *dsn, struct usher_pgconn *out,
				  struct usher_error *err);
/* A copy of c with dbname set to db. */
void usher_pgconn_copy(const struct usher_pgconn *c, const char *db, struct usher_pgconn *out);
void usher_pgconn_free(struct usher_pgconn *c);
/* The value of key, or NULL. */
const char *usher_pgconn_get(const struct usher_pgconn *c, const char *key);
/* "key='value' ..." without the password, for a tool's -d; caller frees. */
char *usher_pgconn_conninfo(const struct usher_pgconn *c);
/* "host:port/db" for messages; caller frees. */
char *usher_pgconn_describe(const struct usher_pgconn *c);

struct usher_pgsess;

/* Connects (connect_timeout 10 s unless the DSN says otherwise). */
enum usher_err usher_pgsess_open(const struct usher_pgconn *c, struct usher_pgsess **out,
				 struct usher_error *err);
void usher_pgsess_close(struct usher_pgsess *s);
/* Server facts: major version (15), "15.8", the current database. */
int usher_pgsess_major(const struct usher_pgsess *s);
const char *usher_pgsess_version(const struct usher_pgsess *s);
const char *usher_pgsess_dbname(const struct usher_pgsess *s);

/* Starts a REPEATABLE READ transaction and exports its snapshot (for
 * pg_dump --snapshot), into snap (len >= 64). */
enum usher_err usher_pgsess_export_snapshot(struct usher_pgsess *s, char *snap, size_t len,
					    struct usher_error *err);
/* Counts the rows of every ordinary table outside the system schemas and
 * extensions (SELECT count(*) FROM ONLY ...), in the session's transaction,
 * into m->tables (in m's arena), ordered by schema and name. */
enum usher_err usher_pgsess_count_tables(struct usher_pgsess *s, struct usher_manifest *m,
					 struct usher_error *err);
/* Asks the server to cancel the statement s runs now (from any thread). */
void usher_pgsess_cancel(struct usher_pgsess *s);
/* Ends the transaction. */
void usher_pgsess_commit(struct usher_pgsess *s);
/* How many relations the database has outside system schemas (tables,
 * views, sequences...), for "refuse a non-empty target". */
enum usher_err usher_pgsess_relations(struct usher_pgsess *s, int64_t *n,
				      struct usher_error *err);
/* Whether database db exists. */
enum usher_err usher_pgsess_db_exists(struct usher_pgsess *s, const char *db, bool *exists,
				      struct usher_error *err);
/* CREATE DATABASE / DROP DATABASE (WITH (FORCE) from 13 on). */
enum usher_err usher_pgsess_create_db(struct usher_pgsess *s, const char *db,
				      struct usher_error *err);
enum usher_err usher_pgsess_drop_db(struct usher_pgsess *s, const char *db,
				    struct usher_error *err);
/* Compares the row counts of m's tables with the database's. Each
 * difference is written (at most max) to report as a line; *mismatches
 * counts them. */
enum usher_err usher_pgsess_compare_counts(struct usher_pgsess *s, const struct usher_manifest *m,
					   size_t *mismatches, char *report, size_t len,
					   struct usher_error *err);
/* Runs sql; fails when it errors or when its first value is false
 * ("f", "false", "0"). first gets the first value (or "") for reports. */
enum usher_err usher_pgsess_check(struct usher_pgsess *s, const char *sql, char *first,
				  size_t len, struct usher_error *err);

#endif
