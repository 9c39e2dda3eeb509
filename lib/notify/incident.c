/* Incidents: the lifecycle (open, acknowledged, resolved, reopened), the
 * timeline, the MTTA/MTTR metrics and the store behind them, one SQL dialect
 * run on SQLite (lib/store) or PostgreSQL (libpq). Parameters are written
 * $1, $2, ... in order of first use, which both engines read the same way. */
#include "notify/incident.h"

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "notify/alertingconf.h"
#include "notify/delivery.h"
#include "notify/integration.h"

enum backend { BACKEND_SQLITE, BACKEND_POSTGRES };

/* MTTA/MTTR buckets, seconds: a minute to a day, with a few short ones so a
 * drill shows up. */
static const double hist_bounds[] = {5,    30,   60,   120,   300,   600,  1200,
				     1800, 3600, 7200, 14400, 28800, 86400};
#define NBOUNDS (sizeof(hist_bounds) / sizeof(hist_bounds[0]))

struct usher_incidents {
	enum backend backend;
	struct usher_store *st; /* sqlite */
	bool own_st;
	PGconn *pg; /* postgres */
	char *dsn;
	pthread_mutex_t mu; /* one statement sequence at a time on the connection */
	int64_t reopen_window_ms;
	struct usher_registry *reg;
	struct usher_log *log;
	pthread_mutex_t metrics_mu;
	uint64_t ack_counts[NBOUNDS], res_counts[NBOUNDS];
	struct usher_histogram tta, ttr;
	/* flushes and deliveries wait here for the worker, so a slow or hung
	 * database never holds up the dispatcher */
	pthread_mutex_t qmu;
	pthread_cond_t qcv, idle_cv;
	struct work *head, *tail;
	size_t queued;
	bool busy, stop, thread_started;
	pthread_t thread;
	int64_t dropped;
	bool schema_ready; /* postgres: the tables exist */
	/* incidents.tickets: operator events go to the delivery queue */
	struct usher_store *queue_st; /* the state store, or NULL */
	pthread_mutex_t cfg_mu;
	struct usher_config *cfg; /* referenced; the receivers */
	bool queue_ready;
};

static const char *const ticket_types[] = {"jira", "zendesk", "servicenow", "github", "ticket"};

#define QUEUE_MAX 10000

struct work {
	struct work *next;
	json_t *data; /* a flush, or NULL for a delivery */
	bool open_incident;
	char *group_key, *text; /* a delivery */
};

static const struct usher_metric_desc desc_open = {
    "usher_incidents_open", USHER_METRIC_GAUGE,
    "Incidents not yet resolved (open or acknowledged), by severity"};
static const struct usher_metric_desc desc_tta = {
    "usher_incident_time_to_ack_seconds", USHER_METRIC_HISTOGRAM,
    "Time from an incident opening (or reopening) to its acknowledgement"};
static const struct usher_metric_desc desc_ttr = {
    "usher_incident_time_to_resolve_seconds", USHER_METRIC_HISTOGRAM,
    "Time from an incident opening (or reopening) to its resolution"};

/* ------------------------------------------------------------ the SQL -- */

static const char *const sqlite_steps[] = {
    "CREATE TABLE usher_incidents ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " group_key TEXT NOT NULL,"
    " group_hash TEXT NOT NULL,"
    " receiver TEXT NOT NULL,"
    " title TEXT NOT NULL,"
    " severity TEXT NOT NULL,"
    " service TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " labels TEXT NOT NULL,"
    " opened_at BIGINT NOT NULL,"
    " reopened_at BIGINT,"
    " acked_at BIGINT, acked_by TEXT,"
    " resolved_at BIGINT, resolved_by TEXT,"
    " reopen_count INTEGER NOT NULL DEFAULT 0,"
    " updated_at BIGINT NOT NULL);"
    "CREATE UNIQUE INDEX usher_incidents_one_unresolved ON usher_incidents(group_key)"
    " WHERE status <> 'resolved';"
    "CREATE INDEX usher_incidents_by_group ON usher_incidents(group_key, id);"
    "CREATE TABLE usher_incident_alerts ("
    " incident_id INTEGER NOT NULL REFERENCES usher_incidents(id) ON DELETE CASCADE,"
    " fingerprint TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " labels TEXT NOT NULL,"
    " annotations TEXT NOT NULL,"
    " starts_at TEXT NOT NULL,"
    " ends_at TEXT NOT NULL,"
    " PRIMARY KEY (incident_id, fingerprint));"
    "CREATE TABLE usher_incident_events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " incident_id INTEGER NOT NULL REFERENCES usher_incidents(id) ON DELETE CASCADE,"
    " at BIGINT NOT NULL,"
    " kind TEXT NOT NULL,"
    " author TEXT NOT NULL,"
    " text TEXT NOT NULL);"
    "CREATE INDEX usher_incident_events_by_incident ON usher_incident_events(incident_id, id);",
    NULL,
};

/* The same schema for PostgreSQL; idempotent, run under an advisory lock so
 * two usherd starting together do not race on it. */
static const char pg_schema[] =
    "CREATE TABLE IF NOT EXISTS usher_incidents ("
    " id BIGSERIAL PRIMARY KEY,"
    " group_key TEXT NOT NULL,"
    " group_hash TEXT NOT NULL,"
    " receiver TEXT NOT NULL,"
    " title TEXT NOT NULL,"
    " severity TEXT NOT NULL,"
    " service TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " labels TEXT NOT NULL,"
    " opened_at BIGINT NOT NULL,"
    " reopened_at BIGINT,"
    " acked_at BIGINT, acked_by TEXT,"
    " resolved_at BIGINT, resolved_by TEXT,"
    " reopen_count INTEGER NOT NULL DEFAULT 0,"
    " updated_at BIGINT NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS usher_incidents_one_unresolved"
    " ON usher_incidents(group_key) WHERE status <> 'resolved';"
    "CREATE INDEX IF NOT EXISTS usher_incidents_by_group ON usher_incidents(group_key, id);"
    "CREATE TABLE IF NOT EXISTS usher_incident_alerts ("
    " incident_id BIGINT NOT NULL REFERENCES usher_incidents(id) ON DELETE CASCADE,"
    " fingerprint TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " labels TEXT NOT NULL,"
    " annotations TEXT NOT NULL,"
    " starts_at TEXT NOT NULL,"
    " ends_at TEXT NOT NULL,"
    " PRIMARY KEY (incident_id, fingerprint));"
    "CREATE TABLE IF NOT EXISTS usher_incident_events ("
    " id BIGSERIAL PRIMARY KEY,"
    " incident_id BIGINT NOT NULL REFERENCES usher_incidents(id) ON DELETE CASCADE,"
    " at BIGINT NOT NULL,"
    " kind TEXT NOT NULL,"
    " author TEXT NOT NULL,"
    " text TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS usher_incident_events_by_incident"
    " ON usher_incident_events(incident_id, id);";

#define INCIDENT_COLS                                                                              \
	"id, group_key, group_hash, receiver, title, severity, service, status, labels, "          \
	"opened_at, reopened_at, acked_at, acked_by, resolved_at, resolved_by, reopen_count, "     \
	"updated_at"

/* ------------------------------------------------ the database adapter -- */

/* A query's result: every cell as text (NULL for SQL NULL). */
struct rows {
	int n, ncols;
	char **cell; /* n * ncols */
};

static const char *cell(const struct rows *r, int row, int col)
{
	return r->cell[(size_t)row * (size_t)r->ncols + (size_t)col];
}

static int64_t cell_i64(const struct rows *r, int row, int col)
{
	const char *s = cell(r, row, col);

	return s ? strtoll(s, NULL, 10) : 0;
}

static void rows_free(struct rows *r)
{
	int i;

	if (!r->cell)
		return;
	for (i = 0; i < r->n * r->ncols; i++)
		free(r->cell[i]);
	free(r->cell);
	r->cell = NULL;
	r->n = 0;
}

static void rows_push(struct rows *r, int *cap, char **vals)
{
	if (r->n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		r->cell = usher_realloc(r->cell, (size_t)*cap * (size_t)r->ncols * sizeof(char *));
	}
	memcpy(r->cell + (size_t)r->n * (size_t)r->ncols, vals, (size_t)r->ncols * sizeof(char *));
	r->n++;
}

static enum usher_err sqlite_query(struct usher_incidents *inc, const char *sql, int np,
				   const char *const *params, struct rows *out,
				   struct usher_error *err)
{
	sqlite3 *db = usher_store_db(inc->st);
	sqlite3_stmt *q = NULL;
	enum usher_err rc = USHER_OK;
	int src, i, cap = 0;

	src = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
	if (src != SQLITE_OK)
		return usher_store_fail(inc->st, src, "prepare incident query", err);
	/* "$2" before "$1" would get index 1 in SQLite: bind by name */
	for (i = 0; i < np; i++) {
		char name[16];
		int idx;

		snprintf(name, sizeof(name), "$%d", i + 1);
		idx = sqlite3_bind_parameter_index(q, name);
		if (!idx)
			continue;
		src = params[i] ? sqlite3_bind_text(q, idx, params[i], -1, SQLITE_TRANSIENT)
				: sqlite3_bind_null(q, idx);
		if (src != SQLITE_OK) {
			rc = usher_store_fail(inc->st, src, "bind incident query", err);
			goto out;
		}
	}
	if (out)
		out->ncols = sqlite3_column_count(q);
	while ((src = sqlite3_step(q)) == SQLITE_ROW) {
		char *vals[64];
		int nc = sqlite3_column_count(q);

		if (!out || nc > 64)
			continue;
		for (i = 0; i < nc; i++) {
			const unsigned char *t = sqlite3_column_text(q, i);

			vals[i] = t ? usher_strdup((const char *)t) : NULL;
		}
		rows_push(out, &cap, vals);
	}
	if (src != SQLITE_DONE)
		rc = usher_store_fail(inc->st, src, "run incident query", err);
out:
	sqlite3_finalize(q);
	return rc;
}

/* libpq's messages run over lines ("...\n\tIs the server running..."):
 * every run of white space becomes one space. */
static void one_line(char *s)
{
	char *start = s, *w = s;
	bool space = false;

	for (; *s; s++) {
		if (*s == '\n' || *s == '\t' || *s == '\r' || *s == ' ') {
			space = true;
			continue;
		}
		if (space && w != start)
			*w++ = ' ';
		space = false;
		*w++ = *s;
	}
	*w = '\0';
}

static enum usher_err pg_connect(struct usher_incidents *inc, struct usher_error *err)
{
	if (inc->pg && PQstatus(inc->pg) == CONNECTION_OK)
		return USHER_OK;
	if (inc->pg) {
		PQreset(inc->pg);
		if (PQstatus(inc->pg) == CONNECTION_OK)
			return USHER_OK;
	} else {
		/* a default connect timeout the DSN's own overrides */
		const char *const keys[] = {"connect_timeout", "dbname", NULL};
		const char *const vals[] = {"10", inc->dsn, NULL};

		inc->pg = PQconnectdbParams(keys, vals, 1);
		if (inc->pg && PQstatus(inc->pg) == CONNECTION_OK) {
			PQsetNoticeProcessor(inc->pg, NULL, NULL);
			return USHER_OK;
		}
	}
	{
		char msg[400];
		size_t len;

		snprintf(msg, sizeof(msg), "%s",
			 inc->pg ? PQerrorMessage(inc->pg) : "out of memory");
		len = strlen(msg);
		while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
			msg[--len] = '\0';
		one_line(msg);
		return usher_fail(err, USHER_ERR_NETWORK,
				  "cannot connect to the incident database (incidents.dsn): %s",
				  msg);
	}
}

static enum usher_err pg_query(struct usher_incidents *inc, const char *sql, int np,
			       const char *const *params, struct rows *out, struct usher_error *err)
{
	PGresult *res;
	ExecStatusType st;
	enum usher_err rc = USHER_OK;
	int cap = 0, r, c;

	rc = pg_connect(inc, err);
	if (rc)
		return rc;
	/* without parameters: the simple protocol, which takes several statements */
	res =
	    np ? PQexecParams(inc->pg, sql, np, NULL, params, NULL, NULL, 0) : PQexec(inc->pg, sql);
	st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char msg[400];
		size_t len;

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(inc->pg));
		len = strlen(msg);
		while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
			msg[--len] = '\0';
		one_line(msg);
		rc = usher_fail(
		    err, PQstatus(inc->pg) == CONNECTION_OK ? USHER_ERR_IO : USHER_ERR_NETWORK,
		    "incident database: %s", msg);
		goto out;
	}
	if (out && st == PGRES_TUPLES_OK) {
		out->ncols = PQnfields(res);
		if (out->ncols > 64) {
			rc =
			    usher_fail(err, USHER_ERR_INTERNAL, "incident query: too many columns");
			goto out;
		}
		for (r = 0; r < PQntuples(res); r++) {
			char *vals[64];

			for (c = 0; c < out->ncols; c++)
				vals[c] = PQgetisnull(res, r, c)
					      ? NULL
					      : usher_strdup(PQgetvalue(res, r, c));
			rows_push(out, &cap, vals);
		}
	}
out:
	PQclear(res);
	return rc;
}

/* Runs sql with np text parameters (NULL: SQL NULL); out (may be NULL)
 * gets the rows, to be freed with rows_free also on failure. */
static enum usher_err query(struct usher_incidents *inc, const char *sql, int np,
			    const char *const *params, struct rows *out, struct usher_error *err)
{
	if (out)
		memset(out, 0, sizeof(*out));
	return inc->backend == BACKEND_SQLITE ? sqlite_query(inc, sql, np, params, out, err)
					      : pg_query(inc, sql, np, params, out, err);
}

static enum usher_err exec0(struct usher_incidents *inc, const char *sql, struct usher_error *err)
{
	return query(inc, sql, 0, NULL, NULL, err);
}

/* Creates the PostgreSQL tables once per instance (at the first use that
 * reaches the server, so an unreachable database at start does not keep
 * usherd from starting). Idempotent, and run under an advisory lock so two
 * usherd starting together do not race on it. Called with inc->mu held. */
static enum usher_err pg_schema_ready(struct usher_incidents *inc, struct usher_error *err)
{
	struct usher_error ignored;
	enum usher_err rc;

	if (inc->schema_ready)
		return USHER_OK;
	rc = exec0(inc, "BEGIN", err);
	if (rc)
		return rc;
	/* "usher:incidents" as a number: one schema change at a time */
	rc = exec0(inc, "SELECT pg_advisory_xact_lock(7573686572)", err);
	if (!rc)
		rc = exec0(inc, pg_schema, err);
	if (!rc)
		rc = exec0(inc, "COMMIT", err);
	if (rc) {
		usher_error_clear(&ignored);
		exec0(inc, "ROLLBACK", &ignored);
		return rc;
	}
	inc->schema_ready = true;
	return USHER_OK;
}

/* Takes the instance's lock and starts a transaction. */
static enum usher_err begin(struct usher_incidents *inc, struct usher_error *err)
{
	enum usher_err rc;

	pthread_mutex_lock(&inc->mu);
	if (inc->backend == BACKEND_SQLITE) {
		usher_store_lock(inc->st);
		rc = exec0(inc, "BEGIN IMMEDIATE", err);
		if (rc)
			usher_store_unlock(inc->st);
	} else {
		rc = pg_schema_ready(inc, err);
		if (!rc)
			rc = exec0(inc, "BEGIN", err);
	}
	if (rc)
		pthread_mutex_unlock(&inc->mu);
	return rc;
}

/* Commits when rc is USHER_OK, else rolls back; releases the lock.
 * Returns rc, or the commit's failure. */
static enum usher_err end(struct usher_incidents *inc, enum usher_err rc, struct usher_error *err)
{
	struct usher_error ignored;

	if (rc == USHER_OK) {
		rc = exec0(inc, "COMMIT", err);
	}
	if (rc) {
		usher_error_clear(&ignored);
		exec0(inc, "ROLLBACK", &ignored);
	}
	if (inc->backend == BACKEND_SQLITE)
		usher_store_unlock(inc->st);
	pthread_mutex_unlock(&inc->mu);
	return rc;
}

/* ------------------------------------------------------------ helpers -- */

static const char *const status_names[] = {"open", "acknowledged", "resolved"};

const char *usher_incident_status_name(enum usher_incident_status s)
{
	return (unsigned)s < 3 ? status_names[s] : "unknown";
}

enum usher_err usher_incident_status_parse(const char *s, enum usher_incident_status *out)
{
	int i;

	for (i = 0; i < 3; i++)
		if (s && strcmp(s, status_names[i]) == 0) {
			*out = (enum usher_incident_status)i;
			return USHER_OK;
		}
	return USHER_ERR_INVALID;
}

void usher_incident_group_hash(const char *group_key, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;
	static const char hex[] = "0123456789abcdef";

	EVP_Digest(group_key, strlen(group_key), md, &len, EVP_sha256(), NULL);
	for (i = 0; i < len && i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * i] = '\0';
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* How bad a severity label is, for picking an incident's severity. */
static int severity_rank(const char *s)
{
	static const char *const order[] = {"page",    "critical", "error", "high",
					    "warning", "medium",   "info",  "low"};
	size_t i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (strcmp(s, order[i]) == 0)
			return 100 - (int)i;
	return *s ? 1 : 0;
}

bool usher_incident_default_wanted(const json_t *data)
{
	const json_t *alerts = json_object_get(data, "alerts"), *a;
	size_t i;

	json_array_foreach(alerts, i, a)
	{
		const char *sev = jstr(json_object_get(a, "labels"), "severity");

		if (strcmp(sev, "page") == 0 || strcmp(sev, "critical") == 0)
			return true;
	}
	return false;
}

static char *json_text(const json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	return s ? s : usher_strdup("{}");
}

static void i64str(int64_t v, char out[24])
{
	snprintf(out, 24, "%lld", (long long)v);
}

static void log_event(struct usher_incidents *inc, enum usher_log_level lvl, const char *action,
		      int64_t id, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void log_event(struct usher_incidents *inc, enum usher_log_level lvl, const char *action,
		      int64_t id, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	struct usher_log_field f[] = {
	    USHER_LFS("event.action", action),
	    USHER_LFI("usher.incident.id", id),
	};

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	usher_log_event(inc->log, lvl, f, id ? 2 : 1, "%s", msg);
}

static void observe(struct usher_incidents *inc, struct usher_histogram *h, int64_t from_ms,
		    int64_t to_ms)
{
	double v = (double)(to_ms - from_ms) / 1000.0;

	if (v < 0)
		v = 0;
	pthread_mutex_lock(&inc->metrics_mu);
	usher_histogram_observe(h, v);
	pthread_mutex_unlock(&inc->metrics_mu);
}

static enum usher_err add_event(struct usher_incidents *inc, const char *id, int64_t at,
				const char *kind, const char *author, const char *text,
				struct usher_error *err)
{
	char ats[24];
	const char *p[5];

	i64str(at, ats);
	p[0] = id;
	p[1] = ats;
	p[2] = kind;
	p[3] = author;
	p[4] = text;
	return query(inc,
		     "INSERT INTO usher_incident_events (incident_id, at, kind, author, text) "
		     "VALUES (CAST($1 AS BIGINT), CAST($2 AS BIGINT), $3, $4, $5)",
		     5, p, NULL, err);
}

/* ---------------------------------------------------------- lifecycle -- */

/* The title of a group: "alertname: summary", else its group labels. */
static char *group_title(const json_t *data)
{
	const json_t *common = json_object_get(data, "commonLabels");
	const json_t *ann = json_object_get(data, "commonAnnotations");
	const char *name = jstr(common, "alertname"), *summary = jstr(ann, "summary");
	struct usher_buf b;
	const char *k;
	json_t *v;

	usher_buf_init(&b, 1024);
	if (*name && *summary)
		usher_buf_addf(&b, "%s: %s", name, summary);
	else if (*name)
		usher_buf_addstr(&b, name);
	else {
		json_object_foreach((json_t *)json_object_get(data, "groupLabels"), k, v)
		{
			if (b.len)
				usher_buf_addstr(&b, ", ");
			usher_buf_addf(&b, "%s=%s", k,
				       json_string_value(v) ? json_string_value(v) : "");
		}
		if (!b.len)
			usher_buf_addstr(&b, "alert group");
	}
	return usher_buf_take(&b);
}

static const char *group_severity(const json_t *data)
{
	const json_t *alerts = json_object_get(data, "alerts"), *a;
	const char *best = "";
	size_t i;

	json_array_foreach(alerts, i, a)
	{
		const char *sev = jstr(json_object_get(a, "labels"), "severity");

		if (severity_rank(sev) > severity_rank(best))
			best = sev;
	}
	return best;
}

static const char *group_service(const json_t *data)
{
	const json_t *common = json_object_get(data, "commonLabels");
	const char *s = jstr(common, "service");

	return *s ? s : jstr(common, "job");
}

/* "fired: HighLatency{instance="a"}, ..." for the alerts not seen before. */
static enum usher_err upsert_alerts(struct usher_incidents *inc, const char *id, const json_t *data,
				    struct usher_buf *fired, struct usher_error *err)
{
	const json_t *alerts = json_object_get(data, "alerts"), *a;
	struct rows known;
	enum usher_err rc;
	size_t i;
	int r;

	rc = query(inc,
		   "SELECT fingerprint FROM usher_incident_alerts WHERE incident_id = "
		   "CAST($1 AS BIGINT)",
		   1, &id, &known, err);
	if (rc)
		goto out;
	json_array_foreach(alerts, i, a)
	{
		const char *fp = jstr(a, "fingerprint"), *status = jstr(a, "status");
		const json_t *labels = json_object_get(a, "labels");
		char *ltext = json_text(labels),
		     *atext = json_text(json_object_get(a, "annotations"));
		const char *p[7] = {id,
				    fp,
				    *status ? status : "firing",
				    ltext,
				    atext,
				    jstr(a, "startsAt"),
				    jstr(a, "endsAt")};
		bool seen = false;

		for (r = 0; r < known.n; r++)
			if (cell(&known, r, 0) && strcmp(cell(&known, r, 0), fp) == 0)
				seen = true;
		rc = query(
		    inc,
		    "INSERT INTO usher_incident_alerts (incident_id, fingerprint, status, "
		    "labels, annotations, starts_at, ends_at) VALUES (CAST($1 AS BIGINT), $2, "
		    "$3, $4, $5, $6, $7) ON CONFLICT (incident_id, fingerprint) DO UPDATE SET "
		    "status = excluded.status, labels = excluded.labels, annotations = "
		    "excluded.annotations, starts_at = excluded.starts_at, ends_at = "
		    "excluded.ends_at",
		    7, p, NULL, err);
		if (!rc && !seen && strcmp(p[2], "firing") == 0) {
			const char *k;
			json_t *v;
			bool first = true;

			usher_buf_addstr(fired, fired->len ? ", " : "");
			usher_buf_addstr(fired, jstr(labels, "alertname"));
			usher_buf_addc(fired, '{');
			json_object_foreach((json_t *)labels, k, v)
			{
				if (strcmp(k, "alertname") == 0)
					continue;
				usher_buf_addf(fired, "%s%s=\"%s\"", first ? "" : ",", k,
					       json_string_value(v) ? json_string_value(v) : "");
				first = false;
			}
			usher_buf_addc(fired, '}');
		}
		free(ltext);
		free(atext);
		if (rc)
			goto out;
	}
out:
	rows_free(&known);
	return rc;
}

/* Set by a reload on another thread. */
static int64_t reopen_window(struct usher_incidents *inc)
{
	int64_t v;

	pthread_mutex_lock(&inc->cfg_mu);
	v = inc->reopen_window_ms;
	pthread_mutex_unlock(&inc->cfg_mu);
	return v;
}

static enum usher_err flush_tx(struct usher_incidents *inc, const json_t *data, bool open_incident,
			       int64_t now, struct usher_error *err)
{
	const char *gk = jstr(data, "groupKey");
	bool firing = strcmp(jstr(data, "status"), "resolved") != 0;
	struct rows cur, ins;
	struct usher_buf fired;
	char nows[24], idbuf[24], hash[65];
	const char *id = NULL;
	enum usher_err rc;
	bool created = false, reopened = false;
	char *title = NULL, *labels = NULL;

	memset(&ins, 0, sizeof(ins));
	usher_buf_init(&fired, 16384);
	i64str(now, nows);
	rc = query(inc,
		   "SELECT id, status, resolved_at, opened_at, reopened_at FROM usher_incidents "
		   "WHERE group_key = $1 ORDER BY id DESC LIMIT 1",
		   1, &gk, &cur, err);
	if (rc)
		goto out;
	if (!firing) {
		int64_t since;

		if (!cur.n || strcmp(cell(&cur, 0, 1), "resolved") == 0)
			goto out;
		id = cell(&cur, 0, 0);
		{
			const char *p[2] = {id, nows};

			rc = query(
			    inc,
			    "UPDATE usher_incidents SET status = 'resolved', resolved_at = "
			    "CAST($2 AS BIGINT), resolved_by = 'usherd', updated_at = CAST($2 "
			    "AS BIGINT) WHERE id = CAST($1 AS BIGINT) AND status <> 'resolved' "
			    "RETURNING id",
			    2, p, &ins, err);
		}
		if (!rc && !ins.n)
			goto out; /* another usherd resolved it a moment ago */
		if (!rc)
			rc = upsert_alerts(inc, id, data, &fired, err);
		if (!rc)
			rc = add_event(inc, id, now, "resolved", "usherd", "all alerts resolved",
				       err);
		if (rc)
			goto out;
		since = cell(&cur, 0, 4) ? cell_i64(&cur, 0, 4) : cell_i64(&cur, 0, 3);
		observe(inc, &inc->ttr, since, now);
		log_event(inc, USHER_LOG_INFO, "incident-resolved", cell_i64(&cur, 0, 0),
			  "incident %s resolved: its alerts resolved", id);
		goto out;
	}
	title = group_title(data);
	labels = json_text(json_object_get(data, "groupLabels"));
	if (cur.n && strcmp(cell(&cur, 0, 1), "resolved") != 0) {
		id = cell(&cur, 0, 0);
	} else if (cur.n && now - cell_i64(&cur, 0, 2) < reopen_window(inc)) {
		const char *p[2] = {cell(&cur, 0, 0), nows};

		/* a second usherd may reopen it at the same moment: the
		 * condition on status makes that one row */
		rc = query(
		    inc,
		    "UPDATE usher_incidents SET status = 'open', reopened_at = CAST($2 AS "
		    "BIGINT), acked_at = NULL, acked_by = NULL, resolved_at = NULL, "
		    "resolved_by = NULL, reopen_count = reopen_count + 1, updated_at = "
		    "CAST($2 AS BIGINT) WHERE id = CAST($1 AS BIGINT) AND status = 'resolved' "
		    "RETURNING id",
		    2, p, &ins, err);
		if (rc)
			goto out;
		id = cell(&cur, 0, 0);
		/* no row: another usherd reopened it a moment ago */
		reopened = ins.n > 0;
		rows_free(&ins);
		if (reopened)
			rc = add_event(inc, id, now, "reopened", "usherd",
				       "the group fired again within incidents.reopen_window", err);
		if (rc)
			goto out;
	} else if (open_incident) {
		const char *sev = group_severity(data), *svc = group_service(data);
		const char *p[8];

		usher_incident_group_hash(gk, hash);
		p[0] = gk;
		p[1] = hash;
		p[2] = jstr(data, "receiver");
		p[3] = title;
		p[4] = sev;
		p[5] = svc;
		p[6] = labels;
		p[7] = nows;
		/* two usherd on one PostgreSQL: the unique index lets one
		 * insert through, the other finds the row after it */
		rc = query(
		    inc,
		    "INSERT INTO usher_incidents (group_key, group_hash, receiver, title, "
		    "severity, service, status, labels, opened_at, updated_at) VALUES ($1, "
		    "$2, $3, $4, $5, $6, 'open', $7, CAST($8 AS BIGINT), CAST($8 AS BIGINT)) "
		    "ON CONFLICT (group_key) WHERE status <> 'resolved' DO NOTHING RETURNING id",
		    8, p, &ins, err);
		if (rc)
			goto out;
		if (ins.n) {
			snprintf(idbuf, sizeof(idbuf), "%s", cell(&ins, 0, 0));
			created = true;
		} else {
			rows_free(&ins);
			rc = query(inc,
				   "SELECT id FROM usher_incidents WHERE group_key = $1 AND status "
				   "<> 'resolved'",
				   1, &gk, &ins, err);
			if (rc)
				goto out;
			if (!ins.n) {
				rc = usher_fail(err, USHER_ERR_INTERNAL,
						"incident for %s neither inserted nor found", gk);
				goto out;
			}
			snprintf(idbuf, sizeof(idbuf), "%s", cell(&ins, 0, 0));
		}
		id = idbuf;
	} else {
		goto out;
	}
	rc = upsert_alerts(inc, id, data, &fired, err);
	if (rc)
		goto out;
	if (fired.len)
		rc = add_event(inc, id, now, "fired", "usherd", usher_buf_str(&fired), err);
	if (rc)
		goto out;
	if (!created) {
		/* keep the worst severity seen, and the newest title */
		const char *sev = group_severity(data);
		const char *p[4] = {id, title, sev, nows};

		rc = query(
		    inc,
		    "UPDATE usher_incidents SET title = $2, updated_at = CAST($4 AS BIGINT), "
		    "severity = CASE WHEN severity = '' OR $3 IN ('page', 'critical') THEN $3 "
		    "ELSE severity END WHERE id = CAST($1 AS BIGINT)",
		    4, p, NULL, err);
		if (rc)
			goto out;
	}
	if (created)
		log_event(inc, USHER_LOG_WARN, "incident-opened", strtoll(id, NULL, 10),
			  "incident %s opened: %s", id, title);
	else if (reopened)
		log_event(inc, USHER_LOG_WARN, "incident-reopened", strtoll(id, NULL, 10),
			  "incident %s reopened: %s", id, title);
out:
	free(title);
	free(labels);
	rows_free(&cur);
	rows_free(&ins);
	usher_buf_free(&fired);
	return rc;
}

static void apply_flush(struct usher_incidents *inc, const json_t *data, bool open_incident)
{
	struct usher_error err;
	enum usher_err rc;

	int attempt;

	/* a connection the server dropped (a restart, a failover) is reopened
	 * by the next begin: one more try before giving up on this flush */
	for (attempt = 0; attempt < 2; attempt++) {
		usher_error_clear(&err);
		rc = begin(inc, &err);
		if (!rc)
			rc = end(inc, flush_tx(inc, data, open_incident, usher_now_ms(), &err),
				 &err);
		if (rc != USHER_ERR_NETWORK || inc->backend != BACKEND_POSTGRES)
			break;
	}
	if (rc)
		log_event(inc, USHER_LOG_ERROR, "incident-store-failed", 0,
			  "cannot record the flush of group %s in the incident store: %s",
			  jstr(data, "groupKey"), usher_error_msg(&err, rc));
}

static void apply_delivery(struct usher_incidents *inc, const char *group_key, const char *text)
{
	struct usher_error err;
	struct rows cur;
	enum usher_err rc;

	usher_error_clear(&err);
	rc = begin(inc, &err);
	if (rc)
		goto fail;
	rc = query(inc,
		   "SELECT id FROM usher_incidents WHERE group_key = $1 ORDER BY "
		   "CASE WHEN status <> 'resolved' THEN 0 ELSE 1 END, id DESC LIMIT 1",
		   1, &group_key, &cur, &err);
	if (!rc && cur.n)
		rc = add_event(inc, cell(&cur, 0, 0), usher_now_ms(), "notification", "usherd",
			       text, &err);
	rows_free(&cur);
	rc = end(inc, rc, &err);
	if (!rc)
		return;
fail:
	log_event(inc, USHER_LOG_ERROR, "incident-store-failed", 0,
		  "cannot record a notification of group %s in the incident store: %s", group_key,
		  usher_error_msg(&err, rc));
}

static void *worker(void *arg)
{
	struct usher_incidents *inc = arg;
	struct work *w;

	pthread_mutex_lock(&inc->qmu);
	for (;;) {
		while (!inc->head && !inc->stop)
			pthread_cond_wait(&inc->qcv, &inc->qmu);
		if (!inc->head)
			break; /* stopping, and nothing left */
		w = inc->head;
		inc->head = w->next;
		if (!inc->head)
			inc->tail = NULL;
		inc->queued--;
		inc->busy = true;
		pthread_mutex_unlock(&inc->qmu);
		if (w->data)
			apply_flush(inc, w->data, w->open_incident);
		else
			apply_delivery(inc, w->group_key, w->text);
		json_decref(w->data);
		free(w->group_key);
		free(w->text);
		free(w);
		pthread_mutex_lock(&inc->qmu);
		inc->busy = false;
		if (!inc->head)
			pthread_cond_broadcast(&inc->idle_cv);
	}
	pthread_mutex_unlock(&inc->qmu);
	return NULL;
}

static void push(struct usher_incidents *inc, struct work *w)
{
	bool dropped = false;
	int64_t ndropped = 0;

	pthread_mutex_lock(&inc->qmu);
	if (inc->queued >= QUEUE_MAX || inc->stop) {
		dropped = true;
		ndropped = ++inc->dropped;
	} else {
		if (inc->tail)
			inc->tail->next = w;
		else
			inc->head = w;
		inc->tail = w;
		inc->queued++;
		pthread_cond_signal(&inc->qcv);
	}
	pthread_mutex_unlock(&inc->qmu);
	if (dropped) {
		/* once, then every thousandth: the store is far behind */
		if (ndropped == 1 || ndropped % 1000 == 0)
			log_event(inc, USHER_LOG_ERROR, "incident-queue-full", 0,
				  "the incident store is %d updates behind: %lld dropped so far",
				  QUEUE_MAX, (long long)ndropped);
		json_decref(w->data);
		free(w->group_key);
		free(w->text);
		free(w);
	}
}

void usher_incidents_on_flush(struct usher_incidents *inc, const json_t *data, bool open_incident)
{
	struct work *w;

	if (!inc || !json_is_string(json_object_get(data, "groupKey")))
		return;
	w = usher_calloc(1, sizeof(*w));
	w->data = json_deep_copy(data);
	w->open_incident = open_incident;
	push(inc, w);
}

void usher_incidents_on_delivery(struct usher_incidents *inc, const char *group_key,
				 const char *receiver, const char *integration, int outcome,
				 const char *detail)
{
	static const char *const outcomes[] = {"delivered", "will retry", "failed"};
	struct work *w;
	char text[1024];

	if (!inc || !group_key)
		return;
	snprintf(text, sizeof(text), "%s/%s: %s%s%s", receiver ? receiver : "",
		 integration ? integration : "",
		 (unsigned)outcome < 3 ? outcomes[outcome] : "unknown outcome",
		 detail && *detail ? ": " : "", detail && *detail ? detail : "");
	w = usher_calloc(1, sizeof(*w));
	w->group_key = usher_strdup(group_key);
	w->text = usher_strdup(text);
	push(inc, w);
}

void usher_incidents_sync(struct usher_incidents *inc)
{
	if (!inc)
		return;
	pthread_mutex_lock(&inc->qmu);
	while (inc->head || inc->busy)
		pthread_cond_wait(&inc->idle_cv, &inc->qmu);
	pthread_mutex_unlock(&inc->qmu);
}

/* ---------------------------------------------------- operator actions -- */

static void send_event(struct usher_incidents *inc, int64_t id, const char *kind,
		       const char *author, const char *text);

static enum usher_err act(struct usher_incidents *inc, int64_t id, const char *what,
			  const char *author, const char *text, struct usher_error *err)
{
	struct rows cur;
	char ids[24], nows[24];
	int64_t now = usher_now_ms();
	enum usher_err rc;
	const char *status;

	if (!author || !*author)
		return usher_fail(err, USHER_ERR_INVALID, "an author is required");
	i64str(id, ids);
	i64str(now, nows);
	rc = begin(inc, err);
	if (rc)
		return rc;
	{
		const char *p[1] = {ids};

		rc = query(inc,
			   "SELECT status, opened_at, reopened_at FROM usher_incidents WHERE id = "
			   "CAST($1 AS BIGINT)",
			   1, p, &cur, err);
	}
	if (rc)
		goto out;
	if (!cur.n) {
		rc = usher_fail(err, USHER_ERR_NOTFOUND, "incident %lld not found", (long long)id);
		goto out;
	}
	status = cell(&cur, 0, 0);
	if (strcmp(what, "note") == 0) {
		rc = add_event(inc, ids, now, "note", author, text, err);
	} else if (strcmp(what, "ack") == 0) {
		const char *p[3] = {ids, nows, author};

		if (strcmp(status, "open") != 0) {
			rc = usher_fail(err, USHER_ERR_INVALID, "incident %lld is %s, not open",
					(long long)id, status);
			goto out;
		}
		rc = query(
		    inc,
		    "UPDATE usher_incidents SET status = 'acknowledged', acked_at = CAST($2 AS "
		    "BIGINT), acked_by = $3, updated_at = CAST($2 AS BIGINT) WHERE id = "
		    "CAST($1 AS BIGINT)",
		    3, p, NULL, err);
		if (!rc)
			rc = add_event(inc, ids, now, "acknowledged", author, "", err);
	} else {
		const char *p[3] = {ids, nows, author};

		if (strcmp(status, "resolved") == 0) {
			rc = usher_fail(err, USHER_ERR_INVALID, "incident %lld is already resolved",
					(long long)id);
			goto out;
		}
		rc = query(
		    inc,
		    "UPDATE usher_incidents SET status = 'resolved', resolved_at = CAST($2 AS "
		    "BIGINT), resolved_by = $3, updated_at = CAST($2 AS BIGINT) WHERE id = "
		    "CAST($1 AS BIGINT)",
		    3, p, NULL, err);
		if (!rc)
			rc = add_event(inc, ids, now, "resolved", author, "", err);
	}
out:
	rc = end(inc, rc, err);
	if (!rc && strcmp(what, "note") != 0) {
		int64_t since = cell(&cur, 0, 2) ? cell_i64(&cur, 0, 2) : cell_i64(&cur, 0, 1);

		observe(inc, strcmp(what, "ack") == 0 ? &inc->tta : &inc->ttr, since, now);
		send_event(inc, id, strcmp(what, "ack") == 0 ? "acknowledged" : "resolved", author,
			   NULL);
		log_event(inc, USHER_LOG_INFO,
			  strcmp(what, "ack") == 0 ? "incident-acknowledged" : "incident-resolved",
			  id, "incident %lld %s by %s", (long long)id,
			  strcmp(what, "ack") == 0 ? "acknowledged" : "resolved", author);
	}
	if (!rc && strcmp(what, "note") == 0)
		send_event(inc, id, "note", author, text);
	rows_free(&cur);
	return rc;
}

/* The notification a ticket integration gets for an operator event: the
 * incident's alerts as Alertmanager's webhook JSON (all resolved for a
 * resolution), and "usherEvent" (notify/ticket.h). */
static json_t *event_json(const json_t *o, const char *receiver, const char *kind,
			  const char *author, const char *text)
{
	bool resolved = strcmp(kind, "resolved") == 0;
	json_t *alerts = json_array(), *common = NULL, *a;
	const char *k;
	json_t *v, *tmp;
	size_t i;

	json_array_foreach(json_object_get(o, "alerts"), i, a)
	{
		json_t *labels = json_object_get(a, "labels");

		json_array_append_new(
		    alerts, json_pack("{s:s, s:O, s:O, s:s, s:s, s:s, s:s}", "status",
				      resolved ? "resolved" : jstr(a, "status"), "labels", labels,
				      "annotations", json_object_get(a, "annotations"), "startsAt",
				      jstr(a, "startsAt"), "endsAt", jstr(a, "endsAt"),
				      "generatorURL", "", "fingerprint", jstr(a, "fingerprint")));
		if (!common) {
			common = json_deep_copy(labels);
			continue;
		}
		/* commonLabels: the pairs every alert has */
		json_object_foreach_safe(common, tmp, k, v)
		{
			const char *other = json_string_value(json_object_get(labels, k));

			if (!other || !json_string_value(v) ||
			    strcmp(other, json_string_value(v)) != 0)
				json_object_del(common, k);
		}
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:O, s:o, s:{}, s:s, s:i, s:o, s:{s:I, s:s, s:s, "
			 "s:s}}",
			 "version", "4", "groupKey", jstr(o, "groupKey"), "status",
			 resolved ? "resolved" : "firing", "receiver", receiver, "groupLabels",
			 json_object_get(o, "groupLabels"), "commonLabels",
			 common ? common : json_object(), "commonAnnotations", "externalURL", "",
			 "truncatedAlerts", 0, "alerts", alerts, "usherEvent", "incident",
			 json_integer_value(json_object_get(o, "id")), "kind", kind, "author",
			 author, "text", text ? text : "");
}

/* Queues the operator event for every ticket integration of the receivers
 * of incidents.tickets. After the incident's own transaction: a crash in
 * between loses the comment, never the ack. */
static void send_event(struct usher_incidents *inc, int64_t id, const char *kind,
		       const char *author, const char *text)
{
	struct usher_config *cfg;
	struct usher_error err;
	enum usher_err rc = USHER_OK;
	json_t *o = NULL;
	size_t r, t;
	int n = 0;

	pthread_mutex_lock(&inc->cfg_mu);
	cfg = inc->cfg ? usher_config_ref(inc->cfg) : NULL;
	pthread_mutex_unlock(&inc->cfg_mu);
	if (!cfg || !inc->queue_st || !cfg->alerting || !cfg->incidents.tickets.n)
		goto out;
	usher_error_clear(&err);
	rc = usher_incident_get(inc, id, &o, &err);
	if (rc)
		goto out;
	usher_store_lock(inc->queue_st);
	if (!inc->queue_ready) {
		rc = usher_delivery_migrate(inc->queue_st, &err);
		inc->queue_ready = rc == USHER_OK;
	}
	if (!rc)
		rc = usher_store_exec(inc->queue_st, "BEGIN IMMEDIATE", &err);
	for (r = 0; !rc && r < cfg->incidents.tickets.n; r++) {
		const char *rcv = cfg->incidents.tickets.v[r];
		json_t *data = event_json(o, rcv, kind, author, text);
		char *js = json_dumps(data, JSON_COMPACT);

		for (t = 0; !rc && t < sizeof(ticket_types) / sizeof(ticket_types[0]); t++) {
			int i;

			for (i = 0; !rc && usher_alerting_integration(cfg->alerting, rcv,
								      ticket_types[t], i);
			     i++, n++)
				rc = usher_delivery_enqueue(inc->queue_st, rcv, ticket_types[t], i,
							    jstr(o, "groupKey"), js, &err);
		}
		free(js);
		json_decref(data);
	}
	if (inc->queue_ready) {
		struct usher_error ignored;

		usher_error_clear(&ignored);
		if (rc || usher_store_exec(inc->queue_st, "COMMIT", &err) != USHER_OK) {
			rc = rc ? rc : USHER_ERR_IO;
			usher_store_exec(inc->queue_st, "ROLLBACK", &ignored);
		}
	}
	usher_store_unlock(inc->queue_st);
out:
	if (rc)
		log_event(inc, USHER_LOG_ERROR, "incident-tickets-failed", id,
			  "cannot queue incident %lld's %s for its tickets: %s", (long long)id,
			  kind, usher_error_msg(&err, rc));
	else if (n)
		log_event(inc, USHER_LOG_INFO, "incident-tickets-queued", id,
			  "incident %lld's %s queued for %d ticket integration(s)", (long long)id,
			  kind, n);
	json_decref(o);
	usher_config_free(cfg);
}

enum usher_err usher_incident_ack(struct usher_incidents *inc, int64_t id, const char *author,
				  struct usher_error *err)
{
	return act(inc, id, "ack", author, NULL, err);
}

enum usher_err usher_incident_note(struct usher_incidents *inc, int64_t id, const char *author,
				   const char *text, struct usher_error *err)
{
	if (!text || !*text)
		return usher_fail(err, USHER_ERR_INVALID, "a note needs text");
	return act(inc, id, "note", author, text, err);
}

enum usher_err usher_incident_resolve(struct usher_incidents *inc, int64_t id, const char *author,
				      struct usher_error *err)
{
	return act(inc, id, "resolve", author, NULL, err);
}

/* --------------------------------------------------------------- JSON -- */

static json_t *time_json(const char *ms)
{
	char buf[40];

	if (!ms)
		return json_null();
	usher_time_format_rfc3339(strtoll(ms, NULL, 10), buf, sizeof(buf));
	return json_string(buf);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *parsed_or_empty(const char *text)
{
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;

	return j ? j : json_object();
}

/* One row of INCIDENT_COLS as the API's object. */
static json_t *incident_json(const struct rows *r, int i)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer(cell_i64(r, i, 0)));
	json_object_set_new(o, "groupKey", json_string(cell(r, i, 1)));
	json_object_set_new(o, "groupHash", json_string(cell(r, i, 2)));
	json_object_set_new(o, "receiver", json_string(cell(r, i, 3)));
	json_object_set_new(o, "title", json_string(cell(r, i, 4)));
	json_object_set_new(o, "severity", json_string(cell(r, i, 5)));
	json_object_set_new(o, "service", json_string(cell(r, i, 6)));
	json_object_set_new(o, "status", json_string(cell(r, i, 7)));
	json_object_set_new(o, "groupLabels", parsed_or_empty(cell(r, i, 8)));
	json_object_set_new(o, "openedAt", time_json(cell(r, i, 9)));
	json_object_set_new(o, "reopenedAt", time_json(cell(r, i, 10)));
	json_object_set_new(o, "acknowledgedAt", time_json(cell(r, i, 11)));
	json_object_set_new(o, "acknowledgedBy", str_or_null(cell(r, i, 12)));
	json_object_set_new(o, "resolvedAt", time_json(cell(r, i, 13)));
	json_object_set_new(o, "resolvedBy", str_or_null(cell(r, i, 14)));
	json_object_set_new(o, "reopenCount", json_integer(cell_i64(r, i, 15)));
	json_object_set_new(o, "updatedAt", time_json(cell(r, i, 16)));
	return o;
}

enum usher_err usher_incidents_list(struct usher_incidents *inc, const char *status, int limit,
				    json_t **out, struct usher_error *err)
{
	struct rows r;
	enum usher_err rc;
	enum usher_incident_status st;
	char lim[24];
	const char *p[2];
	int i;

	*out = NULL;
	if (status && usher_incident_status_parse(status, &st))
		return usher_fail(err, USHER_ERR_INVALID,
				  "unknown status \"%s\": use open, acknowledged or resolved",
				  status);
	i64str(limit > 0 ? limit : 1000, lim);
	p[0] = status;
	p[1] = lim;
	rc = begin(inc, err);
	if (rc)
		return rc;
	rc = query(inc,
		   "SELECT " INCIDENT_COLS
		   " FROM usher_incidents WHERE (CAST($1 AS TEXT) IS NULL OR status = "
		   "$1) ORDER BY id DESC LIMIT CAST($2 AS BIGINT)",
		   2, p, &r, err);
	rc = end(inc, rc, err);
	if (!rc) {
		*out = json_array();
		for (i = 0; i < r.n; i++)
			json_array_append_new(*out, incident_json(&r, i));
	}
	rows_free(&r);
	return rc;
}

enum usher_err usher_incident_get(struct usher_incidents *inc, int64_t id, json_t **out,
				  struct usher_error *err)
{
	struct rows r, al, ev;
	enum usher_err rc;
	char ids[24];
	const char *p[1] = {ids};
	json_t *o = NULL, *arr;
	int i;

	*out = NULL;
	memset(&al, 0, sizeof(al));
	memset(&ev, 0, sizeof(ev));
	i64str(id, ids);
	rc = begin(inc, err);
	if (rc)
		return rc;
	rc = query(inc,
		   "SELECT " INCIDENT_COLS " FROM usher_incidents WHERE id = CAST($1 AS BIGINT)", 1,
		   p, &r, err);
	if (!rc && !r.n)
		rc = usher_fail(err, USHER_ERR_NOTFOUND, "incident %lld not found", (long long)id);
	if (!rc)
		rc = query(
		    inc,
		    "SELECT fingerprint, status, labels, annotations, starts_at, ends_at FROM "
		    "usher_incident_alerts WHERE incident_id = CAST($1 AS BIGINT) ORDER BY "
		    "starts_at, fingerprint",
		    1, p, &al, err);
	if (!rc)
		rc = query(inc,
			   "SELECT at, kind, author, text FROM usher_incident_events WHERE "
			   "incident_id = CAST($1 AS BIGINT) ORDER BY at, id",
			   1, p, &ev, err);
	rc = end(inc, rc, err);
	if (rc)
		goto out;
	o = incident_json(&r, 0);
	arr = json_array();
	for (i = 0; i < al.n; i++) {
		json_t *a = json_object();

		json_object_set_new(a, "fingerprint", json_string(cell(&al, i, 0)));
		json_object_set_new(a, "status", json_string(cell(&al, i, 1)));
		json_object_set_new(a, "labels", parsed_or_empty(cell(&al, i, 2)));
		json_object_set_new(a, "annotations", parsed_or_empty(cell(&al, i, 3)));
		json_object_set_new(a, "startsAt", json_string(cell(&al, i, 4)));
		json_object_set_new(a, "endsAt", json_string(cell(&al, i, 5)));
		json_array_append_new(arr, a);
	}
	json_object_set_new(o, "alerts", arr);
	arr = json_array();
	for (i = 0; i < ev.n; i++) {
		json_t *e = json_object();

		json_object_set_new(e, "at", time_json(cell(&ev, i, 0)));
		json_object_set_new(e, "kind", json_string(cell(&ev, i, 1)));
		json_object_set_new(e, "author", json_string(cell(&ev, i, 2)));
		json_object_set_new(e, "text", json_string(cell(&ev, i, 3)));
		json_array_append_new(arr, e);
	}
	json_object_set_new(o, "timeline", arr);
	*out = o;
out:
	rows_free(&r);
	rows_free(&al);
	rows_free(&ev);
	return rc;
}

/* ------------------------------------------------------------ metrics -- */

static struct usher_sample_set *collect(void *arg)
{
	struct usher_incidents *inc = arg;
	struct usher_sample_set *set = usher_sample_set_new(NULL);
	struct usher_error err;
	struct rows r;
	int i;
	bool ok;

	usher_error_clear(&err);
	memset(&r, 0, sizeof(r));
	if (begin(inc, &err) == USHER_OK) {
		enum usher_err rc =
		    query(inc,
			  /* every severity ever seen, so "0" is a value dashboards
			   * and alerts can use rather than a missing series */
			  "SELECT severity, sum(CASE WHEN status <> 'resolved' THEN 1 ELSE 0 "
			  "END) FROM usher_incidents GROUP BY severity ORDER BY severity",
			  0, NULL, &r, &err);
		ok = end(inc, rc, &err) == USHER_OK;
	} else {
		ok = false;
	}
	if (ok)
		for (i = 0; i < r.n; i++)
			usher_sample_add(set, &desc_open, (double)cell_i64(&r, i, 1), "severity",
					 cell(&r, i, 0), NULL);
	rows_free(&r);
	pthread_mutex_lock(&inc->metrics_mu);
	usher_sample_add_histogram(set, &desc_tta, &inc->tta, NULL);
	usher_sample_add_histogram(set, &desc_ttr, &inc->ttr, NULL);
	pthread_mutex_unlock(&inc->metrics_mu);
	return set;
}

/* ----------------------------------------------------- open and close -- */

enum usher_err usher_incidents_new(const struct usher_incidents_conf *conf, const char *state_dir,
				   struct usher_store *shared, struct usher_registry *reg,
				   struct usher_log *log, struct usher_incidents **out,
				   struct usher_error *err)
{
	struct usher_incidents *inc = usher_calloc(1, sizeof(*inc));
	const char *store = conf && conf->store ? conf->store : "sqlite";
	enum usher_err rc;

	*out = NULL;
	pthread_mutex_init(&inc->mu, NULL);
	pthread_mutex_init(&inc->metrics_mu, NULL);
	pthread_mutex_init(&inc->qmu, NULL);
	pthread_mutex_init(&inc->cfg_mu, NULL);
	pthread_cond_init(&inc->qcv, NULL);
	pthread_cond_init(&inc->idle_cv, NULL);
	inc->log = log;
	inc->reopen_window_ms = conf && conf->store ? conf->reopen_window_ms : 3600 * 1000;
	inc->tta = (struct usher_histogram){NBOUNDS, hist_bounds, inc->ack_counts, 0, 0};
	inc->ttr = (struct usher_histogram){NBOUNDS, hist_bounds, inc->res_counts, 0, 0};
	if (strcmp(store, "postgres") == 0) {
		inc->backend = BACKEND_POSTGRES;
		inc->dsn = usher_strdup(conf->dsn ? conf->dsn : "");
		/* a database that cannot be reached now is logged, not fatal:
		 * notifications go on, and incidents start with the server */
		rc = begin(inc, err);
		if (rc == USHER_ERR_NETWORK) {
			log_event(inc, USHER_LOG_ERROR, "incident-store-failed", 0,
				  "incidents will be recorded once the database answers: %s",
				  usher_error_msg(err, rc));
			usher_error_clear(err);
			rc = USHER_OK;
		} else if (rc == USHER_OK) {
			rc = end(inc, USHER_OK, err);
		}
	} else {
		inc->backend = BACKEND_SQLITE;
		if (shared) {
			inc->st = shared;
		} else {
			rc = usher_store_open(state_dir, &inc->st, err);
			if (rc)
				goto out;
			inc->own_st = true;
		}
		rc = usher_store_migrate(inc->st, "incidents", sqlite_steps, err);
	}
out:
	if (rc) {
		usher_incidents_free(inc);
		return rc;
	}
	inc->queue_st = inc->backend == BACKEND_SQLITE ? inc->st : shared;
	if (pthread_create(&inc->thread, NULL, worker, inc) != 0) {
		usher_incidents_free(inc);
		return usher_fail(err, USHER_ERR_IO, "cannot start the incident store's thread");
	}
	inc->thread_started = true;
	if (reg) {
		inc->reg = reg;
		usher_registry_add_collector(reg, collect, inc);
	}
	*out = inc;
	return USHER_OK;
}

enum usher_err usher_incidents_reconfigure(struct usher_incidents *inc, struct usher_config *cfg,
					   struct usher_error *err)
{
	const struct usher_incidents_conf *conf = &cfg->incidents;
	const char *store = conf->store ? conf->store : "sqlite";
	enum backend want = strcmp(store, "postgres") == 0 ? BACKEND_POSTGRES : BACKEND_SQLITE;
	struct usher_config *old;
	size_t i, t;

	pthread_mutex_lock(&inc->cfg_mu);
	inc->reopen_window_ms = conf->store ? conf->reopen_window_ms : 3600 * 1000;
	pthread_mutex_unlock(&inc->cfg_mu);
	for (i = 0; i < conf->tickets.n; i++) {
		bool found = false;

		for (t = 0; t < sizeof(ticket_types) / sizeof(ticket_types[0]) && !found; t++)
			found = cfg->alerting &&
				usher_alerting_integration(cfg->alerting, conf->tickets.v[i],
							   ticket_types[t], 0);
		if (!found)
			log_event(
			    inc, USHER_LOG_WARN, "incident-tickets-unknown", 0,
			    "incidents.tickets: \"%s\" is no receiver with a ticket integration "
			    "(jira_configs, zendesk_configs, servicenow_configs, github_configs "
			    "or ticket_configs): its tickets get no operator events",
			    conf->tickets.v[i]);
	}
	pthread_mutex_lock(&inc->cfg_mu);
	old = inc->cfg;
	inc->cfg = usher_config_ref(cfg);
	pthread_mutex_unlock(&inc->cfg_mu);
	usher_config_free(old);
	if (want != inc->backend ||
	    (want == BACKEND_POSTGRES && strcmp(inc->dsn, conf->dsn ? conf->dsn : "") != 0))
		return usher_fail(
		    err, USHER_ERR_UNSUPPORTED,
		    "incidents.store or incidents.dsn changed: restart usherd to switch "
		    "stores (the current one stays in use)");
	return USHER_OK;
}

void usher_incidents_free(struct usher_incidents *inc)
{
	if (!inc)
		return;
	if (inc->thread_started) {
		/* what is queued is written first: a flush seen is not lost */
		pthread_mutex_lock(&inc->qmu);
		inc->stop = true;
		pthread_cond_signal(&inc->qcv);
		pthread_mutex_unlock(&inc->qmu);
		pthread_join(inc->thread, NULL);
	}
	/* collectors stay registered until the registry goes: the owner frees
	 * the registry first (usherd does), or never renders it again */
	if (inc->own_st)
		usher_store_close(inc->st);
	if (inc->pg)
		PQfinish(inc->pg);
	free(inc->dsn);
	pthread_mutex_destroy(&inc->mu);
	pthread_mutex_destroy(&inc->metrics_mu);
	pthread_mutex_destroy(&inc->qmu);
	pthread_mutex_destroy(&inc->cfg_mu);
	usher_config_free(inc->cfg);
	pthread_cond_destroy(&inc->qcv);
	pthread_cond_destroy(&inc->idle_cv);
	free(inc);
}

/* ------------------------------------------------------------- report -- */

/* Milliseconds since the epoch of an RFC 3339 time ("2026-11-28T06:00:00Z",
 * fractions and offsets allowed); -1 for anything else (Alertmanager's
 * zero time "0001-01-01T00:00:00Z" included). */
static int64_t parse_rfc3339(const char *s)
{
	struct tm tm;
	int64_t ms = 0, off = 0, v[6] = {0};
	static const int width[6] = {4, 2, 2, 2, 2, 2};
	static const char sep[6] = {'-', '-', 'T', ':', ':', '\0'};
	int i, j;

	if (!s)
		return -1;
	for (i = 0; i < 6; i++) {
		for (j = 0; j < width[i]; j++, s++) {
			if (*s < '0' || *s > '9')
				return -1;
			v[i] = v[i] * 10 + (*s - '0');
		}
		if (sep[i]) {
			if (*s != sep[i] && !(i == 2 && (*s == 't' || *s == ' ')))
				return -1;
			s++;
		}
	}
	if (*s == '.') {
		int64_t scale = 100;

		for (s++; *s >= '0' && *s <= '9'; s++) {
			ms += (*s - '0') * scale;
			scale /= 10;
		}
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		int sign = *s == '-' ? -1 : 1;

		if (!(s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' && s[3] == ':' &&
		      s[4] >= '0' && s[4] <= '9' && s[5] >= '0' && s[5] <= '9'))
			return -1;
		off = sign *
		      (((s[1] - '0') * 10 + (s[2] - '0')) * 60 + (s[4] - '0') * 10 + (s[5] - '0'));
		s += 6;
	} else {
		return -1;
	}
	if (*s || v[0] < 1971)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)v[0] - 1900;
	tm.tm_mon = (int)v[1] - 1;
	tm.tm_mday = (int)v[2];
	tm.tm_hour = (int)v[3];
	tm.tm_min = (int)v[4];
	tm.tm_sec = (int)v[5];
	return ((int64_t)timegm(&tm) - off * 60) * 1000 + ms;
}

/* Text for a Markdown table cell: pipes escaped, line breaks as spaces. */
static void md_cell(struct usher_buf *b, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '|')
			usher_buf_addstr(b, "\\|");
		else if (*s == '\n' || *s == '\r')
			usher_buf_addc(b, ' ');
		else
			usher_buf_addc(b, *s);
	}
}

static void md_duration(struct usher_buf *b, int64_t ms)
{
	char d[64];

	if (ms < 0) {
		usher_buf_addstr(b, "unknown");
		return;
	}

	usher_duration_format(ms - ms % 1000, d, sizeof(d));
	usher_buf_addstr(b, d);
}

static void md_labels(struct usher_buf *b, const json_t *labels)
{
	const char *k;
	json_t *v;
	bool first = true;

	json_object_foreach((json_t *)labels, k, v)
	{
		usher_buf_addf(b, "%s%s=%s", first ? "" : ", ", k,
			       json_string_value(v) ? json_string_value(v) : "");
		first = false;
	}
}

static void md_timeline_rows(struct usher_buf *b, const json_t *timeline, const char *only,
			     bool with_kind)
{
	const json_t *e;
	size_t i;

	json_array_foreach(timeline, i, e)
	{
		const char *kind = jstr(e, "kind");

		if (only && strstr(only, kind) == NULL)
			continue;
		usher_buf_addstr(b, "| ");
		md_cell(b, jstr(e, "at"));
		if (with_kind) {
			usher_buf_addstr(b, " | ");
			md_cell(b, kind);
		}
		usher_buf_addstr(b, " | ");
		md_cell(b, jstr(e, "author"));
		usher_buf_addstr(b, " | ");
		md_cell(b, jstr(e, "text"));
		usher_buf_addstr(b, " |\n");
	}
}

static size_t count_kind(const json_t *timeline, const char *kinds)
{
	const json_t *e;
	size_t i, n = 0;

	json_array_foreach(timeline, i, e) if (strstr(kinds, jstr(e, "kind"))) n++;
	return n;
}

enum usher_err usher_incident_report(const json_t *incident, struct usher_buf *out)
{
	const json_t *alerts = json_object_get(incident, "alerts");
	const json_t *timeline = json_object_get(incident, "timeline"), *a;
	int64_t opened = parse_rfc3339(jstr(incident, "openedAt"));
	int64_t reopened = parse_rfc3339(jstr(incident, "reopenedAt"));
	int64_t acked = parse_rfc3339(jstr(incident, "acknowledgedAt"));
	int64_t resolved = parse_rfc3339(jstr(incident, "resolvedAt"));
	int64_t start = -1, stop = -1, since = reopened >= 0 ? reopened : opened;
	bool ongoing = false;
	char when[40];
	size_t i;
	struct usher_buf *b = out;

	if (!json_is_object(incident) || !json_is_integer(json_object_get(incident, "id")))
		return USHER_ERR_INVALID;
	json_array_foreach(alerts, i, a)
	{
		int64_t s = parse_rfc3339(jstr(a, "startsAt")),
			e = parse_rfc3339(jstr(a, "endsAt"));

		if (s >= 0 && (start < 0 || s < start))
			start = s;
		if (strcmp(jstr(a, "status"), "firing") == 0)
			ongoing = true;
		else if (e >= 0 && e > stop)
			stop = e;
	}
	if (start < 0)
		start = opened;
	if (strcmp(jstr(incident, "status"), "resolved") != 0)
		ongoing = true;
	else if (stop < 0 || (resolved >= 0 && ongoing))
		stop = resolved;

	usher_buf_addf(b, "# Postmortem (draft): incident %lld — ",
		       (long long)json_integer_value(json_object_get(incident, "id")));
	md_cell(b, jstr(incident, "title"));
	usher_time_format_rfc3339(usher_now_ms(), when, sizeof(when));
	usher_buf_addf(b,
		       "\n\n_Drafted by `usher incident report` on %s from the incident record; "
		       "the sections in italics are for people to write._\n\n",
		       when);

	usher_buf_addstr(b, "## Summary\n\n| | |\n|---|---|\n| Status | ");
	md_cell(b, jstr(incident, "status"));
	usher_buf_addstr(b, " |\n| Severity | ");
	md_cell(b, *jstr(incident, "severity") ? jstr(incident, "severity") : "(none)");
	usher_buf_addstr(b, " |\n| Service | ");
	md_cell(b, *jstr(incident, "service") ? jstr(incident, "service") : "(none)");
	usher_buf_addstr(b, " |\n| Alert group | `");
	md_cell(b, jstr(incident, "groupKey"));
	usher_buf_addstr(b, "` |\n| Receiver | ");
	md_cell(b, jstr(incident, "receiver"));
	usher_buf_addstr(b, " |\n| Opened | ");
	md_cell(b, jstr(incident, "openedAt"));
	if (reopened >= 0) {
		usher_buf_addf(
		    b, " (reopened %lld time(s), last at ",
		    (long long)json_integer_value(json_object_get(incident, "reopenCount")));
		md_cell(b, jstr(incident, "reopenedAt"));
		usher_buf_addstr(b, ")");
	}
	usher_buf_addstr(b, " |\n| Acknowledged | ");
	if (acked >= 0) {
		md_cell(b, jstr(incident, "acknowledgedAt"));
		usher_buf_addstr(b, " by ");
		md_cell(b, jstr(incident, "acknowledgedBy"));
		usher_buf_addstr(b, " (time to acknowledge ");
		md_duration(b, since >= 0 ? acked - since : -1);
		usher_buf_addstr(b, ")");
	} else {
		usher_buf_addstr(b, "not acknowledged");
	}
	usher_buf_addstr(b, " |\n| Resolved | ");
	if (resolved >= 0) {
		md_cell(b, jstr(incident, "resolvedAt"));
		usher_buf_addstr(b, " by ");
		md_cell(b, jstr(incident, "resolvedBy"));
		usher_buf_addstr(b, " (time to resolve ");
		md_duration(b, since >= 0 ? resolved - since : -1);
		usher_buf_addstr(b, ")");
	} else {
		usher_buf_addstr(b, "not resolved");
	}
	usher_buf_addstr(b, " |\n\n## Impact window\n\n");
	if (start >= 0) {
		usher_time_format_rfc3339(start, when, sizeof(when));
		usher_buf_addf(b, "From %s (the first alert's start) ", when);
		if (ongoing && strcmp(jstr(incident, "status"), "resolved") != 0) {
			usher_buf_addstr(b, "until now: still ongoing (");
			md_duration(b, usher_now_ms() - start);
			usher_buf_addstr(b, " so far).\n\n");
		} else if (stop >= start) {
			usher_time_format_rfc3339(stop, when, sizeof(when));
			usher_buf_addf(b, "to %s: ", when);
			md_duration(b, stop - start);
			usher_buf_addstr(b, ".\n\n");
		} else {
			usher_buf_addstr(b, "to an unknown end.\n\n");
		}
	} else {
		usher_buf_addstr(b, "Unknown: the incident has no alert start times.\n\n");
	}
	usher_buf_addstr(b, "_Who and what was affected (bookings, sessions, regions):_\n\n");

	usher_buf_addstr(
	    b, "## Timeline (UTC)\n\n| Time | Event | By | Detail |\n|---|---|---|---|\n");
	md_timeline_rows(b, timeline, NULL, true);

	usher_buf_addf(b,
		       "\n## Alerts (%zu)\n\n| Alert | Status | Started | Ended | Labels |\n"
		       "|---|---|---|---|---|\n",
		       json_array_size(alerts));
	json_array_foreach(alerts, i, a)
	{
		const json_t *labels = json_object_get(a, "labels");
		const char *ends = jstr(a, "endsAt");

		usher_buf_addstr(b, "| ");
		md_cell(b, jstr(labels, "alertname"));
		usher_buf_addstr(b, " | ");
		md_cell(b, jstr(a, "status"));
		usher_buf_addstr(b, " | ");
		md_cell(b, jstr(a, "startsAt"));
		usher_buf_addstr(b, " | ");
		md_cell(b, parse_rfc3339(ends) >= 0 && strcmp(jstr(a, "status"), "firing") != 0
			       ? ends
			       : "");
		usher_buf_addstr(b, " | ");
		{
			struct usher_buf l;

			usher_buf_init(&l, 65536);
			md_labels(&l, labels);
			md_cell(b, usher_buf_str(&l));
			usher_buf_free(&l);
		}
		usher_buf_addstr(b, " |\n");
	}

	usher_buf_addf(b, "\n## Notifications (%zu)\n\n", count_kind(timeline, "notification"));
	if (count_kind(timeline, "notification")) {
		usher_buf_addstr(b,
				 "| Time | By | Receiver/integration: outcome |\n|---|---|---|\n");
		md_timeline_rows(b, timeline, "notification", false);
	} else {
		usher_buf_addstr(b, "None recorded.\n");
	}
	usher_buf_addf(b, "\n## Acknowledgements and notes (%zu)\n\n",
		       count_kind(timeline, "acknowledged note"));
	if (count_kind(timeline, "acknowledged note")) {
		usher_buf_addstr(b, "| Time | Event | By | Note |\n|---|---|---|---|\n");
		md_timeline_rows(b, timeline, "acknowledged note", true);
	} else {
		usher_buf_addstr(b, "None recorded.\n");
	}
	usher_buf_addstr(
	    b, "\n## Root cause\n\n_What happened, and why._\n\n"
	       "## Detection and response\n\n_Did the right alert page the right "
	       "person in time? What slowed the response?_\n\n"
	       "## Action items\n\n| Action | Owner | Ticket |\n|---|---|---|\n| | | |\n");
	return b->len >= b->max ? USHER_ERR_TOOBIG : USHER_OK;
}
