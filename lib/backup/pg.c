/* libpq for backups: DSN handling, snapshots, row counts, scratch
 * databases. Every query here is fixed text or quotes its identifiers with
 * PQescapeIdentifier. */
#include "backup/pg.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"

struct usher_pgsess {
	PGconn *conn;
	int major;
	char version[64];
	char *dbname;
};

enum usher_err usher_pgconn_parse(const char *dsn, struct usher_pgconn *out,
				  struct usher_error *err)
{
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &msg), *o;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	if (!opts) {
		char m[256];

		snprintf(m, sizeof(m), "%s", msg ? msg : "out of memory");
		m[strcspn(m, "\n")] = '\0';
		PQfreemem(msg);
		return usher_fail(err, USHER_ERR_INVALID, "bad PostgreSQL DSN: %s", m);
	}
	for (o = opts; o->keyword; o++)
		if (o->val && *o->val)
			n++;
	out->keys = usher_calloc(n + 2, sizeof(char *));
	out->vals = usher_calloc(n + 2, sizeof(char *));
	for (o = opts; o->keyword; o++)
		if (o->val && *o->val) {
			out->keys[out->n] = usher_strdup(o->keyword);
			out->vals[out->n] = usher_strdup(o->val);
			out->n++;
		}
	PQconninfoFree(opts);
	return USHER_OK;
}

const char *usher_pgconn_get(const struct usher_pgconn *c, const char *key)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->keys[i], key) == 0)
			return c->vals[i];
	return NULL;
}

void usher_pgconn_copy(const struct usher_pgconn *c, const char *db, struct usher_pgconn *out)
{
	size_t i;
	bool set = false;

	out->keys = usher_calloc(c->n + 2, sizeof(char *));
	out->vals = usher_calloc(c->n + 2, sizeof(char *));
	out->n = c->n;
	for (i = 0; i < c->n; i++) {
		out->keys[i] = usher_strdup(c->keys[i]);
		if (db && strcmp(c->keys[i], "dbname") == 0) {
			out->vals[i] = usher_strdup(db);
			set = true;
		} else {
			out->vals[i] = usher_strdup(c->vals[i]);
		}
	}
	if (db && !set) {
		out->keys[out->n] = usher_strdup("dbname");
		out->vals[out->n] = usher_strdup(db);
		out->n++;
	}
}

void usher_pgconn_free(struct usher_pgconn *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		if (strcmp(c->keys[i], "password") == 0)
			memset(c->vals[i], 0, strlen(c->vals[i]));
		free(c->keys[i]);
		free(c->vals[i]);
	}
	free(c->keys);
	free(c->vals);
	memset(c, 0, sizeof(*c));
}

char *usher_pgconn_conninfo(const struct usher_pgconn *c)
{
	struct usher_buf b;
	size_t i;

	usher_buf_init(&b, 64 * 1024);
	for (i = 0; i < c->n; i++) {
		const char *v;

		if (strcmp(c->keys[i], "password") == 0)
			continue;
		usher_buf_addf(&b, "%s%s='", b.len ? " " : "", c->keys[i]);
		for (v = c->vals[i]; *v; v++) {
			if (*v == '\'' || *v == '\\')
				usher_buf_addc(&b, '\\');
			usher_buf_addc(&b, *v);
		}
		usher_buf_addc(&b, '\'');
	}
	if (!b.len)
		usher_buf_addstr(&b, "");
	return b.len ? usher_buf_take(&b) : usher_strdup("");
}

char *usher_pgconn_describe(const struct usher_pgconn *c)
{
	const char *host = usher_pgconn_get(c, "host"), *port = usher_pgconn_get(c, "port"),
		   *db = usher_pgconn_get(c, "dbname"), *user = usher_pgconn_get(c, "user");
	size_t n = 64 + (host ? strlen(host) : 9) + (db ? strlen(db) : 0) + (user ? strlen(user) : 0);
	char *s = usher_malloc(n);

	snprintf(s, n, "%s%s%s:%s/%s", user ? user : "", user ? "@" : "", host ? host : "localhost",
		 port ? port : "5432", db ? db : (user ? user : ""));
	return s;
}

static const char *first_line(const char *msg, char *out, size_t len)
{
	snprintf(out, len, "%s", msg ? msg : "");
	out[strcspn(out, "\n")] = '\0';
	return out;
}

enum usher_err usher_pgsess_open(const struct usher_pgconn *c, struct usher_pgsess **out,
				 struct usher_error *err)
{
	const char **keys = usher_calloc(c->n + 3, sizeof(char *));
	const char **vals = usher_calloc(c->n + 3, sizeof(char *));
	struct usher_pgsess *s;
	PGresult *r;
	size_t i, n = 0;
	char line[300];

	*out = NULL;
	for (i = 0; i < c->n; i++) {
		keys[n] = c->keys[i];
		vals[n++] = c->vals[i];
	}
	if (!usher_pgconn_get(c, "connect_timeout")) {
		keys[n] = "connect_timeout";
		vals[n++] = "10";
	}
	if (!usher_pgconn_get(c, "application_name")) {
		keys[n] = "application_name";
		vals[n++] = "usher-backup";
	}
	s = usher_calloc(1, sizeof(*s));
	s->conn = PQconnectdbParams(keys, vals, 0);
	free(keys);
	free(vals);
	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
		char *d = usher_pgconn_describe(c);

		usher_fail(err, USHER_ERR_NETWORK, "cannot connect to %s: %s", d,
			   first_line(s->conn ? PQerrorMessage(s->conn) : "out of memory", line,
				      sizeof(line)));
		free(d);
		usher_pgsess_close(s);
		return USHER_ERR_NETWORK;
	}
	s->major = PQserverVersion(s->conn) / 10000;
	s->dbname = usher_strdup(PQdb(s->conn));
	r = PQexec(s->conn, "SHOW server_version");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		snprintf(s->version, sizeof(s->version), "%s", PQgetvalue(r, 0, 0));
		s->version[strcspn(s->version, " ")] = '\0';
	}
	PQclear(r);
	*out = s;
	return USHER_OK;
}

void usher_pgsess_close(struct usher_pgsess *s)
{
	if (!s)
		return;
	PQfinish(s->conn);
	free(s->dbname);
	free(s);
}

int usher_pgsess_major(const struct usher_pgsess *s)
{
	return s->major;
}

const char *usher_pgsess_version(const struct usher_pgsess *s)
{
	return s->version;
}

const char *usher_pgsess_dbname(const struct usher_pgsess *s)
{
	return s->dbname;
}

static enum usher_err exec_ok(struct usher_pgsess *s, const char *sql, ExecStatusType want,
			      PGresult **out, struct usher_error *err)
{
	PGresult *r = PQexec(s->conn, sql);
	char line[300];

	if (PQresultStatus(r) != want) {
		usher_fail(err, USHER_ERR_PROTOCOL, "%.60s%s: %s", sql, strlen(sql) > 60 ? "..." : "",
			   first_line(PQresultErrorMessage(r), line, sizeof(line)));
		PQclear(r);
		return USHER_ERR_PROTOCOL;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return USHER_OK;
}

enum usher_err usher_pgsess_export_snapshot(struct usher_pgsess *s, char *snap, size_t len,
					    struct usher_error *err)
{
	PGresult *r;
	enum usher_err rc;

	rc = exec_ok(s, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", PGRES_COMMAND_OK, NULL,
		     err);
	if (!rc)
		rc = exec_ok(s, "SELECT pg_export_snapshot()", PGRES_TUPLES_OK, &r, err);
	if (rc)
		return rc;
	snprintf(snap, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return USHER_OK;
}

static const char tables_sql[] =
    "SELECT n.nspname, c.relname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
    "AND d.objid = c.oid AND d.deptype = 'e') "
    "ORDER BY 1, 2";

/* "SELECT count(*) FROM ONLY schema.table" with both quoted; caller frees. */
static char *count_sql(PGconn *conn, const char *schema, const char *table)
{
	char *qs = PQescapeIdentifier(conn, schema, strlen(schema));
	char *qt = PQescapeIdentifier(conn, table, strlen(table));
	char *sql = NULL;

	if (qs && qt) {
		size_t n = strlen(qs) + strlen(qt) + 40;

		sql = usher_malloc(n);
		snprintf(sql, n, "SELECT count(*) FROM ONLY %s.%s", qs, qt);
	}
	PQfreemem(qs);
	PQfreemem(qt);
	return sql;
}

static enum usher_err count_one(struct usher_pgsess *s, const char *schema, const char *table,
				int64_t *rows, struct usher_error *err)
{
	char *sql = count_sql(s->conn, schema, table);
	PGresult *r;
	enum usher_err rc;

	if (!sql)
		return usher_fail(err, USHER_ERR_NOMEM, "cannot quote %s.%s", schema, table);
	rc = exec_ok(s, sql, PGRES_TUPLES_OK, &r, err);
	free(sql);
	if (rc)
		return rc;
	*rows = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return USHER_OK;
}

enum usher_err usher_pgsess_count_tables(struct usher_pgsess *s, struct usher_manifest *m,
					 struct usher_error *err)
{
	PGresult *r;
	enum usher_err rc = exec_ok(s, tables_sql, PGRES_TUPLES_OK, &r, err);
	int i, n;

	if (rc)
		return rc;
	n = PQntuples(r);
	m->tables = usher_arena_zalloc(m->arena, (size_t)(n ? n : 1) * sizeof(*m->tables));
	m->ntables = 0;
	for (i = 0; i < n && !rc; i++) {
		struct usher_manifest_table *t = &m->tables[m->ntables];

		t->schema = usher_arena_strdup(m->arena, PQgetvalue(r, i, 0));
		t->name = usher_arena_strdup(m->arena, PQgetvalue(r, i, 1));
		rc = count_one(s, t->schema, t->name, &t->rows, err);
		if (!rc)
			m->ntables++;
	}
	PQclear(r);
	return rc;
}

void usher_pgsess_cancel(struct usher_pgsess *s)
{
	PGcancel *c = PQgetCancel(s->conn);
	char msg[256];

	if (c) {
		PQcancel(c, msg, sizeof(msg));
		PQfreeCancel(c);
	}
}

void usher_pgsess_commit(struct usher_pgsess *s)
{
	PQclear(PQexec(s->conn, "COMMIT"));
}

enum usher_err usher_pgsess_relations(struct usher_pgsess *s, int64_t *n, struct usher_error *err)
{
	PGresult *r;
	enum usher_err rc = exec_ok(
	    s,
	    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
	    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
	    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' "
	    "AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')",
	    PGRES_TUPLES_OK, &r, err);

	if (rc)
		return rc;
	*n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return USHER_OK;
}

enum usher_err usher_pgsess_db_exists(struct usher_pgsess *s, const char *db, bool *exists,
				      struct usher_error *err)
{
	const char *params[1] = {db};
	PGresult *r = PQexecParams(s->conn, "SELECT 1 FROM pg_database WHERE datname = $1", 1, NULL,
				   params, NULL, NULL, 0);
	char line[300];

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		usher_fail(err, USHER_ERR_PROTOCOL, "looking up database %s: %s", db,
			   first_line(PQresultErrorMessage(r), line, sizeof(line)));
		PQclear(r);
		return USHER_ERR_PROTOCOL;
	}
	*exists = PQntuples(r) > 0;
	PQclear(r);
	return USHER_OK;
}

static enum usher_err db_command(struct usher_pgsess *s, const char *verb, const char *db,
				 const char *tail, struct usher_error *err)
{
	char *q = PQescapeIdentifier(s->conn, db, strlen(db));
	struct usher_buf b;
	enum usher_err rc;

	if (!q)
		return usher_fail(err, USHER_ERR_NOMEM, "cannot quote %s", db);
	usher_buf_init(&b, 4096);
	usher_buf_addf(&b, "%s %s%s", verb, q, tail);
	PQfreemem(q);
	rc = exec_ok(s, usher_buf_str(&b), PGRES_COMMAND_OK, NULL, err);
	usher_buf_free(&b);
	return rc;
}

enum usher_err usher_pgsess_create_db(struct usher_pgsess *s, const char *db,
				      struct usher_error *err)
{
	return db_command(s, "CREATE DATABASE", db, "", err);
}

enum usher_err usher_pgsess_drop_db(struct usher_pgsess *s, const char *db,
				    struct usher_error *err)
{
	return db_command(s, "DROP DATABASE IF EXISTS", db, s->major >= 13 ? " WITH (FORCE)" : "",
			  err);
}

enum usher_err usher_pgsess_compare_counts(struct usher_pgsess *s, const struct usher_manifest *m,
					   size_t *mismatches, char *report, size_t len,
					   struct usher_error *err)
{
	struct usher_buf b;
	size_t i;

	*mismatches = 0;
	usher_buf_init(&b, len ? len - 1 : 0);
	for (i = 0; i < m->ntables; i++) {
		const struct usher_manifest_table *t = &m->tables[i];
		struct usher_error e = {{0}};
		int64_t rows = -1;

		if (count_one(s, t->schema, t->name, &rows, &e)) {
			(*mismatches)++;
			usher_buf_addf(&b, "  %s.%s: %s\n", t->schema, t->name, e.msg);
			continue;
		}
		if (rows != t->rows) {
			(*mismatches)++;
			usher_buf_addf(&b, "  %s.%s: %lld rows, the backup had %lld\n", t->schema,
				       t->name, (long long)rows, (long long)t->rows);
		}
	}
	snprintf(report, len, "%s", usher_buf_str(&b));
	usher_buf_free(&b);
	(void)err;
	return USHER_OK;
}

enum usher_err usher_pgsess_check(struct usher_pgsess *s, const char *sql, char *first, size_t len,
				  struct usher_error *err)
{
	PGresult *r = PQexec(s->conn, sql);
	ExecStatusType st = PQresultStatus(r);
	char line[300];

	*first = '\0';
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		usher_fail(err, USHER_ERR_PROTOCOL, "%s", first_line(PQresultErrorMessage(r), line,
								     sizeof(line)));
		PQclear(r);
		return USHER_ERR_PROTOCOL;
	}
	if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0) {
		const char *v = PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0);

		snprintf(first, len, "%s", v);
		if (strcmp(v, "f") == 0 || strcmp(v, "false") == 0 || strcmp(v, "0") == 0 ||
		    strcmp(v, "NULL") == 0) {
			PQclear(r);
			return usher_fail(err, USHER_ERR_PROTOCOL, "returned %s", first);
		}
	}
	PQclear(r);
	return USHER_OK;
}
