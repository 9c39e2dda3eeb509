/* The postgres probe: one persistent non-blocking libpq connection per probe,
 * postgres_exporter's core metrics and custom SQL metrics, every wait bounded
 * by the run's deadline (docs/internals/postgres.md). Only file on libpq. */
#include "probes/postgres.h"

#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/timeutil.h"

/* Reconnection backoff after consecutive failures: 1s, 2s, 4s ... 30s. */
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS   30000
/* PostgreSQL's type OID of boolean, for custom SQL values. */
#define BOOLOID 16
/* A cancel request runs on a thread of its own (PQcancel blocks until the
 * server answers): it needs little stack. */
#define CANCEL_STACK (256 * 1024)

/* ---- metrics ------------------------------------------------------------ */

/* postgres_exporter's counters keep their names without _total in the text
 * format, and dashboards use those names; usher's registry always adds
 * _total to a counter, so these are exposed untyped until it can expose a
 * counter under its bare name. rate() works on them the same. */
#define PG_LEGACY_COUNTER USHER_METRIC_UNTYPED

static const struct usher_metric_desc desc_up = {
    "pg_up", USHER_METRIC_GAUGE,
    "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 "
    "for yes, 0 for no)."};
static const struct usher_metric_desc desc_static = {"pg_static", USHER_METRIC_UNTYPED,
						     "Version string as reported by postgres"};
static const struct usher_metric_desc desc_start_time = {
    "pg_postmaster_start_time_seconds", USHER_METRIC_GAUGE, "Time at which postmaster started"};
static const struct usher_metric_desc desc_is_replica = {
    "pg_replication_is_replica", USHER_METRIC_GAUGE, "Indicates if the server is a replica"};
static const struct usher_metric_desc desc_lag = {
    "pg_replication_lag_seconds", USHER_METRIC_GAUGE,
    "Replication lag behind master in seconds; 0 on a primary and on a replica that has "
    "replayed all it received"};
static const struct usher_metric_desc desc_db_size = {"pg_database_size_bytes", USHER_METRIC_GAUGE,
						      "Disk space used by the database"};
static const struct usher_metric_desc desc_activity_count = {
    "pg_stat_activity_count", USHER_METRIC_GAUGE, "number of connections in this state"};
static const struct usher_metric_desc desc_activity_max_tx = {
    "pg_stat_activity_max_tx_duration", USHER_METRIC_GAUGE,
    "max duration in seconds any active transaction has been running"};
static const struct usher_metric_desc desc_locks = {"pg_locks_count", USHER_METRIC_GAUGE,
						    "Number of locks"};
static const struct usher_metric_desc desc_lsn_diff = {"pg_stat_replication_pg_wal_lsn_diff",
						       USHER_METRIC_GAUGE,
						       "Lag in bytes between master and slave"};
static const struct usher_metric_desc desc_lsn_bytes = {
    "pg_stat_replication_pg_current_wal_lsn_bytes", USHER_METRIC_GAUGE, "WAL position in bytes"};
static const struct usher_metric_desc desc_write_lag = {
    "pg_stat_replication_write_lag_seconds", USHER_METRIC_GAUGE,
    "Time between flushing recent WAL locally and the standby reporting it written; 0 once "
    "caught up and idle"};
static const struct usher_metric_desc desc_flush_lag = {
    "pg_stat_replication_flush_lag_seconds", USHER_METRIC_GAUGE,
    "Time between flushing recent WAL locally and the standby reporting it flushed; 0 once "
    "caught up and idle"};
static const struct usher_metric_desc desc_replay_lag = {
    "pg_stat_replication_replay_lag_seconds", USHER_METRIC_GAUGE,
    "Time between flushing recent WAL locally and the standby reporting it applied; 0 once "
    "caught up and idle"};
static const struct usher_metric_desc desc_live_tup = {
    "pg_stat_user_tables_n_live_tup", USHER_METRIC_GAUGE, "Estimated number of live rows"};
static const struct usher_metric_desc desc_dead_tup = {
    "pg_stat_user_tables_n_dead_tup", USHER_METRIC_GAUGE, "Estimated number of dead rows"};
static const struct usher_metric_desc desc_last_autovacuum = {
    "pg_stat_user_tables_last_autovacuum", USHER_METRIC_GAUGE,
    "Last time at which this table was vacuumed by the autovacuum daemon"};
static const struct usher_metric_desc desc_last_autoanalyze = {
    "pg_stat_user_tables_last_autoanalyze", USHER_METRIC_GAUGE,
    "Last time at which this table was analyzed by the autovacuum daemon"};
static const struct usher_metric_desc desc_latency = {
    "usher_pg_query_latency_seconds", USHER_METRIC_GAUGE,
    "Round-trip time of SELECT 1 on the probe's connection"};
static const struct usher_metric_desc desc_connects = {
    "usher_pg_connections_opened", USHER_METRIC_COUNTER,
    "Connections the probe opened to PostgreSQL (one persists between runs)"};

/* pg_stat_database, in the order of the query's columns after datid and
 * datname. numbackends is a gauge; the others count since the last reset. */
static const struct usher_metric_desc desc_stat_db[] = {
    {"pg_stat_database_numbackends", USHER_METRIC_GAUGE,
     "Number of backends currently connected to this database. This is the only column in this "
     "view that returns a value reflecting current state; all other columns return the "
     "accumulated values since the last reset."},
    {"pg_stat_database_xact_commit", PG_LEGACY_COUNTER,
     "Number of transactions in this database that have been committed"},
    {"pg_stat_database_xact_rollback", PG_LEGACY_COUNTER,
     "Number of transactions in this database that have been rolled back"},
    {"pg_stat_database_blks_read", PG_LEGACY_COUNTER,
     "Number of disk blocks read in this database"},
    {"pg_stat_database_blks_hit", PG_LEGACY_COUNTER,
     "Number of times disk blocks were found already in the buffer cache, so that a read was not "
     "necessary (this only includes hits in the PostgreSQL buffer cache, not the operating "
     "system's file system cache)"},
    {"pg_stat_database_tup_returned", PG_LEGACY_COUNTER,
     "Number of rows returned by queries in this database"},
    {"pg_stat_database_tup_fetched", PG_LEGACY_COUNTER,
     "Number of rows fetched by queries in this database"},
    {"pg_stat_database_tup_inserted", PG_LEGACY_COUNTER,
     "Number of rows inserted by queries in this database"},
    {"pg_stat_database_tup_updated", PG_LEGACY_COUNTER,
     "Number of rows updated by queries in this database"},
    {"pg_stat_database_tup_deleted", PG_LEGACY_COUNTER,
     "Number of rows deleted by queries in this database"},
    {"pg_stat_database_conflicts", PG_LEGACY_COUNTER,
     "Number of queries canceled due to conflicts with recovery in this database. (Conflicts "
     "occur only on standby servers; see pg_stat_database_conflicts for details.)"},
    {"pg_stat_database_temp_files", PG_LEGACY_COUNTER,
     "Number of temporary files created by queries in this database. All temporary files are "
     "counted, regardless of why the temporary file was created (e.g., sorting or hashing), and "
     "regardless of the log_temp_files setting."},
    {"pg_stat_database_temp_bytes", PG_LEGACY_COUNTER,
     "Total amount of data written to temporary files by queries in this database. All "
     "temporary files are counted, regardless of why the temporary file was created, and "
     "regardless of the log_temp_files setting."},
    {"pg_stat_database_deadlocks", PG_LEGACY_COUNTER,
     "Number of deadlocks detected in this database"},
    {"pg_stat_database_blk_read_time", PG_LEGACY_COUNTER,
     "Time spent reading data file blocks by backends in this database, in milliseconds"},
    {"pg_stat_database_blk_write_time", PG_LEGACY_COUNTER,
     "Time spent writing data file blocks by backends in this database, in milliseconds"},
    /* PostgreSQL 14 and later; in seconds (the column is in milliseconds) */
    {"pg_stat_database_active_time_seconds", USHER_METRIC_COUNTER,
     "Time spent executing SQL statements in this database, in seconds"},
};
#define NSTAT_DB       (sizeof(desc_stat_db) / sizeof(desc_stat_db[0]))
#define STAT_DB_ACTIVE (NSTAT_DB - 1)

/* The settings alerts need (postgres_exporter exposes all ~350), in the
 * order of the server query's columns after the fixed ones. */
static const struct usher_metric_desc desc_settings[] = {
    {"pg_settings_max_connections", USHER_METRIC_GAUGE, "Server Parameter: max_connections"},
    {"pg_settings_superuser_reserved_connections", USHER_METRIC_GAUGE,
     "Server Parameter: superuser_reserved_connections"},
    {"pg_settings_reserved_connections", USHER_METRIC_GAUGE,
     "Server Parameter: reserved_connections"},
    {"pg_settings_max_wal_senders", USHER_METRIC_GAUGE, "Server Parameter: max_wal_senders"},
    {"pg_settings_max_replication_slots", USHER_METRIC_GAUGE,
     "Server Parameter: max_replication_slots"},
    {"pg_settings_max_locks_per_transaction", USHER_METRIC_GAUGE,
     "Server Parameter: max_locks_per_transaction"},
    {"pg_settings_max_prepared_transactions", USHER_METRIC_GAUGE,
     "Server Parameter: max_prepared_transactions"},
    {"pg_settings_autovacuum", USHER_METRIC_GAUGE, "Server Parameter: autovacuum"},
};
#define NSETTINGS (sizeof(desc_settings) / sizeof(desc_settings[0]))

/* Family names custom queries may not take. */
static const char *const reserved_families[] = {
    "pg_up",
    "pg_static",
    "pg_postmaster_start_time_seconds",
    "pg_replication_is_replica",
    "pg_replication_lag_seconds",
    "pg_database_size_bytes",
    "pg_stat_activity_count",
    "pg_stat_activity_max_tx_duration",
    "pg_locks_count",
    "pg_stat_replication_pg_wal_lsn_diff",
    "pg_stat_replication_pg_current_wal_lsn_bytes",
    "pg_stat_replication_write_lag_seconds",
    "pg_stat_replication_flush_lag_seconds",
    "pg_stat_replication_replay_lag_seconds",
    "pg_stat_user_tables_n_live_tup",
    "pg_stat_user_tables_n_dead_tup",
    "pg_stat_user_tables_last_autovacuum",
    "pg_stat_user_tables_last_autoanalyze",
    "usher_pg_query_latency_seconds",
    "usher_pg_connections_opened",
    "usher_pg_connections_opened_total",
    "usher_sql_query_errors",
    "usher_sql_query_errors_total",
    "usher_sql_query_duration_seconds",
    "pg_stat_database_numbackends",
    "pg_stat_database_xact_commit",
    "pg_stat_database_xact_rollback",
    "pg_stat_database_blks_read",
    "pg_stat_database_blks_hit",
    "pg_stat_database_tup_returned",
    "pg_stat_database_tup_fetched",
    "pg_stat_database_tup_inserted",
    "pg_stat_database_tup_updated",
    "pg_stat_database_tup_deleted",
    "pg_stat_database_conflicts",
    "pg_stat_database_temp_files",
    "pg_stat_database_temp_bytes",
    "pg_stat_database_deadlocks",
    "pg_stat_database_blk_read_time",
    "pg_stat_database_blk_write_time",
    "pg_stat_database_active_time_seconds",
    "pg_stat_database_active_time_seconds_total",
    "pg_settings_max_connections",
    "pg_settings_superuser_reserved_connections",
    "pg_settings_reserved_connections",
    "pg_settings_max_wal_senders",
    "pg_settings_max_replication_slots",
    "pg_settings_max_locks_per_transaction",
    "pg_settings_max_prepared_transactions",
    "pg_settings_autovacuum",
    "probe_success",
    "probe_duration_seconds",
    "probe_failure_info",
    NULL,
};

/* ---- options ------------------------------------------------------------ */

#define PG_OFF(f) offsetof(struct usher_pg_opts, f)
const struct usher_option usher_pg_options[] = {
    {.key = "dsn",
     .type = USHER_OPT_SECRET,
     .offset = PG_OFF(dsn),
     .flags = USHER_OPT_REQUIRED,
     .help = "libpq connection URI or key=value string; put the password in ${env:NAME} or "
	     "${file:/path} (or use ~/.pgpass); sslmode and friends go here too"},
    {.key = "connect_timeout",
     .type = USHER_OPT_DURATION,
     .offset = PG_OFF(connect_timeout_ms),
     .def = "5s",
     .flags = USHER_OPT_POSITIVE,
     .help = "give up a connection attempt after this long (within the probe's timeout)"},
    {.key = "statement_timeout",
     .type = USHER_OPT_DURATION,
     .offset = PG_OFF(statement_timeout_ms),
     .help = "the session's statement_timeout; default: the probe's timeout"},
    {.key = "exclude_databases",
     .type = USHER_OPT_STRLIST,
     .offset = PG_OFF(exclude_databases),
     .help = "databases left out of the per-database metrics"},
    {.key = "max_tables",
     .type = USHER_OPT_INT,
     .offset = PG_OFF(max_tables),
     .def = "1000",
     .help = "pg_stat_user_tables series for at most this many tables of the connected "
	     "database, most dead rows first; 0 turns them off"},
    {.key = "database_size_interval",
     .type = USHER_OPT_DURATION,
     .offset = PG_OFF(database_size_interval_ms),
     .def = "1m",
     .help = "measure database sizes (a walk of every database's files) at most this often, "
	     "serving the last sizes in between; 0s: every run"},
    {.key = "queries",
     .type = USHER_OPT_LIST,
     .offset = PG_OFF(queries),
     .sub = usher_pgq_options,
     .sub_size = sizeof(struct usher_pgq_conf),
     .help = "custom SQL metrics: {name, sql, labels, values, timeout, min_interval, "
	     "max_series}"},
    USHER_OPT_END,
};

/* ---- DSN helpers -------------------------------------------------------- */

static const char *opt_val(const PQconninfoOption *o, const char *key)
{
	for (; o && o->keyword; o++)
		if (strcmp(o->keyword, key) == 0)
			return o->val && *o->val ? o->val : NULL;
	return NULL;
}

/* The n-th comma-separated element of list (the last one when there are
 * fewer), in a. */
static const char *nth(struct usher_arena *a, const char *list, size_t n)
{
	const char *p = list, *comma;

	for (;;) {
		comma = strchr(p, ',');
		if (!n || !comma)
			break;
		p = comma + 1;
		n--;
	}
	return usher_arena_strndup(a, p, comma ? (size_t)(comma - p) : strlen(p));
}

static const char *instance_of(struct usher_arena *a, const PQconninfoOption *o)
{
	const char *hosts = opt_val(o, "host"), *ports = opt_val(o, "port"), *out = "";
	size_t i, n = 1;

	if (!hosts)
		hosts = opt_val(o, "hostaddr");
	if (!hosts)
		hosts = "localhost";
	if (!ports)
		ports = "5432";
	for (i = 0; hosts[i]; i++)
		if (hosts[i] == ',')
			n++;
	for (i = 0; i < n; i++) {
		const char *h = nth(a, hosts, i), *port = nth(a, ports, i);
		bool v6 = h[0] != '/' && h[0] != '@' && strchr(h, ':') != NULL;

		if (!*port)
			port = "5432";
		if (!*h)
			h = "localhost";
		out = usher_arena_printf(a, "%s%s%s%s%s:%s", out, i ? "," : "", v6 ? "[" : "", h,
					 v6 ? "]" : "", port);
	}
	return out;
}

const char *usher_pg_instance(struct usher_arena *a, const char *dsn)
{
	PQconninfoOption *o = PQconninfoParse(dsn, NULL);
	const char *s;

	if (!o)
		return "postgres";
	s = instance_of(a, o);
	PQconninfoFree(o);
	return s;
}

const char *usher_pg_describe(struct usher_arena *a, const char *dsn)
{
	PQconninfoOption *o = PQconninfoParse(dsn, NULL);
	const char *user, *db, *s;

	if (!o)
		return "postgresql://(unparsable dsn)";
	user = opt_val(o, "user");
	db = opt_val(o, "dbname");
	s = usher_arena_printf(a, "postgresql://%s%s%s%s%s%s", user ? user : "",
			       user && opt_val(o, "password") ? ":***" : "",
			       user || opt_val(o, "password") ? "@" : "", instance_of(a, o),
			       db ? "/" : "", db ? db : "");
	PQconninfoFree(o);
	return s;
}

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

const char *usher_pg_connect_reason(const char *msg)
{
	static const char *const auth[] = {
	    "password authentication failed",
	    "authentication failed",
	    "no password supplied",
	    "pg_hba.conf",
	    "permission denied for database",
	    "password is required",
	    "peer authentication",
	};
	static const char *const tls[] = {
	    "ssl error", "ssl syscall", "certificate", "does not support ssl", "sslmode", "tls",
	};
	size_t i;

	for (i = 0; i < sizeof(auth) / sizeof(auth[0]); i++)
		if (contains_ci(msg, auth[i]))
			return USHER_FAIL_AUTH;
	if (contains_ci(msg, "role \"") && contains_ci(msg, "does not exist"))
		return USHER_FAIL_AUTH;
	for (i = 0; i < sizeof(tls) / sizeof(tls[0]); i++)
		if (contains_ci(msg, tls[i]))
			return USHER_FAIL_TLS;
	if (contains_ci(msg, "could not translate host name"))
		return USHER_FAIL_DNS;
	if (contains_ci(msg, "timeout expired"))
		return USHER_FAIL_TIMEOUT;
	return USHER_FAIL_CONNECT;
}

/* libpq's multi-line message as one line, without the trailing newline. */
static void one_line(char *out, size_t len, const char *msg)
{
	size_t o = 0;
	bool space = false;

	for (; *msg && o + 2 < len; msg++) {
		if (*msg == '\n' || *msg == '\r' || *msg == '\t' || *msg == ' ') {
			space = o > 0;
			continue;
		}
		if (space) {
			out[o++] = ' ';
			space = false;
		}
		out[o++] = *msg;
	}
	out[o] = '\0';
}

/* ---- checks ------------------------------------------------------------- */

/* libpq's parse error into out, with its quoted fragments hidden: they
 * may be pieces of the password. out has room for 4 * strlen(in) + 1. */
static void mask_quoted(const char *in, char *out)
{
	bool quoted = false;

	for (; *in; in++) {
		if (*in == '"') {
			if (!quoted) {
				memcpy(out, "\"...", 4);
				out += 4;
			} else {
				*out++ = '"';
			}
			quoted = !quoted;
			continue;
		}
		if (!quoted && *in != '\n')
			*out++ = *in;
	}
	if (quoted)
		*out++ = '"';
	*out = '\0';
}

static enum usher_err pg_check(struct usher_cfgctx *ctx, struct usher_probe_conf *pc,
			       const struct usher_ynode *node)
{
	struct usher_pg_opts *o = pc->opts;
	const struct usher_ynode *dn = usher_ynode_get(node, "dsn");
	enum usher_err rc = USHER_OK;

	if (o->dsn) {
		char *err = NULL;
		PQconninfoOption *co = PQconninfoParse(o->dsn, &err);

		if (!co) {
			const char *why = err ? err : "out of memory";
			char *m = usher_arena_alloc(ctx->arena, 4 * strlen(why) + 8);

			mask_quoted(why, m);
			rc = usher_cfg_error(ctx, dn ? dn : node,
					     "dsn: not a valid libpq connection string or URI: %s",
					     m);
			PQfreemem(err);
		}
		PQconninfoFree(co);
	}
	if (!o->statement_timeout_ms)
		o->statement_timeout_ms = pc->timeout_ms;
	if (o->max_tables < 0)
		rc = usher_cfg_error(ctx, usher_ynode_get(node, "max_tables"),
				     "max_tables must be 0 (off) or more");
	if (usher_pgq_check(ctx, &o->queries, usher_ynode_get(node, "queries"), pc,
			    reserved_families))
		rc = USHER_ERR_INVALID;
	return rc;
}

static const char *pg_default_instance(struct usher_arena *a, const struct usher_probe_conf *pc)
{
	const struct usher_pg_opts *o = pc->opts;

	return usher_pg_instance(a, o->dsn);
}

/* ---- the probe's state -------------------------------------------------- */

/* The built-in statements, in the order a run sends them. */
enum {
	B_SERVER,
	B_SIZE,
	B_STAT_DB,
	B_ACTIVITY,
	B_LOCKS,
	B_REPLICATION,
	B_TABLES,
	NBUILTIN,
};

struct db_size {
	char *datname;
	double bytes;
};

/* Shared by a probe and the threads sending its cancel requests, which may
 * outlive it (PQcancel waits for the server, which may be stopped). */
struct canceller {
	atomic_uint refs;
	atomic_bool busy; /* a request is on its way: never two at once */
};

struct cancel_job {
	struct canceller *c;
	PGcancel *pgc;
};

struct pg_probe {
	const struct usher_probe_conf *pc;
	const struct usher_pg_opts *o;
	struct usher_log *log;
	char *what; /* the DSN without its password, for messages */
	/* connection parameters: the DSN's, plus usher's defaults */
	char **keys, **vals;
	size_t nparams;
	char set_sql[160]; /* the session's settings, sent after connecting */
	/* the built-in statements for the connected server's version, and
	 * whether they are prepared on the connection */
	char *bsql[NBUILTIN];
	bool prepared;
	/* database sizes, measured at most every database_size_interval */
	struct db_size *sizes;
	size_t nsizes;
	int64_t sizes_due; /* monotonic ms; 0: now */

	PGconn *conn;
	bool busy;          /* a query's results are still to be read */
	int server_version; /* PQserverVersion */
	uint64_t opened;    /* connections opened */
	unsigned fails;     /* connection attempts failed in a row */
	int64_t retry_at;   /* no attempt before this (monotonic ms) */
	const char *last_reason;
	char last_err[USHER_ERRMSG_MAX];

	int wake_fd;                /* eventfd: pg_cancel wakes the worker */
	_Atomic int64_t cancel_run; /* started_mono_ns of the run asked to stop */
	struct canceller *canc;

	struct usher_pgq_state **qs;
	size_t nq;
	struct usher_complain *q_complain;
};

static void canceller_unref(struct canceller *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1)
		free(c);
}

static void *cancel_main(void *arg)
{
	struct cancel_job *job = arg;
	char errbuf[256];

	/* blocks until the server has taken the request (or the connection
	 * to it fails): that is why this is a thread of its own */
	PQcancel(job->pgc, errbuf, sizeof(errbuf));
	PQfreeCancel(job->pgc);
	atomic_store(&job->c->busy, false);
	canceller_unref(job->c);
	free(job);
	return NULL;
}

/* Asks the server to cancel the query in flight, without waiting. At most
 * one request per probe is on its way; a new one is not sent before the
 * last came back (a stopped server answers none). */
static void send_cancel(struct pg_probe *p)
{
	struct cancel_job *job;
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	int rc;

	if (!p->conn || !p->busy || atomic_exchange(&p->canc->busy, true))
		return;
	job = usher_calloc(1, sizeof(*job));
	job->c = p->canc;
	job->pgc = PQgetCancel(p->conn);
	if (!job->pgc) {
		atomic_store(&p->canc->busy, false);
		free(job);
		return;
	}
	atomic_fetch_add(&p->canc->refs, 1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, CANCEL_STACK);
	/* signals belong to the loop thread's signalfd */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&t, &attr, cancel_main, job);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		PQfreeCancel(job->pgc);
		atomic_store(&p->canc->busy, false);
		canceller_unref(p->canc);
		free(job);
	}
}

static void drop_conn(struct pg_probe *p)
{
	if (!p->conn)
		return;
	/* non-blocking: PQfinish sends Terminate if it can, never waits */
	PQfinish(p->conn);
	p->conn = NULL;
	p->busy = false;
}

/* ---- waiting ------------------------------------------------------------ */

enum wait_rc { W_READY, W_TIMEOUT, W_CANCEL, W_ERROR };

static bool stop_asked(struct pg_probe *p, const struct usher_probe_run *run)
{
	return atomic_load(&p->cancel_run) == run->started_mono_ns;
}

static void drain_wake(struct pg_probe *p)
{
	uint64_t v;

	while (read(p->wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
}

/* Waits for events on fd (or for nothing, fd < 0) until deadline, waking
 * early when the scheduler asks the run to stop. */
static enum wait_rc wait_fd(struct pg_probe *p, const struct usher_probe_run *run, int fd,
			    short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pf[2] = {{.fd = p->wake_fd, .events = POLLIN},
				       {.fd = fd, .events = events}};
		int64_t left = deadline - usher_mono_ms();
		int n;

		if (stop_asked(p, run))
			return W_CANCEL;
		if (left <= 0)
			return W_TIMEOUT;
		n = poll(pf, fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return W_ERROR;
		if (pf[0].revents)
			drain_wake(p); /* stale wake-ups of earlier runs are dropped here */
		if (fd >= 0 && pf[1].revents)
			return W_READY;
	}
}

/* ---- queries ------------------------------------------------------------ */

enum xrc {
	XR_OK,
	XR_ERROR,   /* the server answered with an error */
	XR_TIMEOUT, /* the deadline passed (the query is being cancelled) */
	XR_CANCEL,  /* the scheduler asked the run to stop */
	XR_BROKEN,  /* the connection is gone */
};

/* One statement to run and what to do with its results. */
struct xq {
	const char *what;      /* for messages */
	const char *sql;       /* NULL: only read what an earlier query left */
	const char *stmt;      /* instead of sql: a statement prepared on the connection */
	bool extended;         /* one statement only (the extended protocol) */
	bool single_row;       /* rows one at a time (custom queries: bounded memory) */
	int64_t soft_deadline; /* cancel the query then, but keep reading; 0: none */
	int64_t deadline;      /* give up */
	/* Called for each result with rows or a command status; returns true
	 * to stop the query (it is cancelled, the rest discarded). */
	bool (*on_result)(void *arg, const PGresult *r);
	void *arg;
	/* out */
	char err[USHER_ERRMSG_MAX];
	char sqlstate[6];
	bool soft_expired;
	bool stopped;
};

static void x_error(struct xq *x, const PGresult *r, const char *fallback)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (x->err[0])
		return;
	if (!msg)
		msg = r ? PQresultErrorMessage(r) : fallback;
	one_line(x->err, sizeof(x->err), msg && *msg ? msg : fallback);
	snprintf(x->sqlstate, sizeof(x->sqlstate), "%s", state ? state : "");
}

static enum xrc x_broken(struct pg_probe *p, struct xq *x)
{
	if (!x->err[0])
		one_line(x->err, sizeof(x->err), PQerrorMessage(p->conn));
	if (!x->err[0])
		snprintf(x->err, sizeof(x->err), "connection lost");
	return XR_BROKEN;
}

/* Reads the results of the query in flight until the last one. */
static enum xrc x_collect(struct pg_probe *p, const struct usher_probe_run *run, struct xq *x)
{
	enum xrc rc = XR_OK;

	for (;;) {
		int64_t dl;
		enum wait_rc w;

		while (!PQisBusy(p->conn)) {
			PGresult *r = PQgetResult(p->conn);

			if (!r) {
				p->busy = false;
				if (PQstatus(p->conn) == CONNECTION_BAD)
					return x_broken(p, x);
				if (rc == XR_ERROR && !x->stopped &&
				    strcmp(x->sqlstate, "57014") == 0)
					return XR_TIMEOUT; /* statement_timeout or our cancel */
				return rc;
			}
			switch (PQresultStatus(r)) {
			case PGRES_TUPLES_OK:
			case PGRES_SINGLE_TUPLE:
			case PGRES_COMMAND_OK:
			case PGRES_EMPTY_QUERY:
				if (rc == XR_OK && !x->stopped && x->on_result &&
				    x->on_result(x->arg, r)) {
					x->stopped = true;
					send_cancel(p);
				}
				break;
			case PGRES_COPY_IN:
			case PGRES_COPY_OUT:
			case PGRES_COPY_BOTH:
				/* nothing usher sends starts a COPY; leave the
				 * connection rather than speak the COPY protocol */
				PQclear(r);
				snprintf(x->err, sizeof(x->err), "COPY is not supported");
				drop_conn(p);
				return XR_BROKEN;
			default:
				x_error(x, r, "query failed");
				rc = XR_ERROR;
				break;
			}
			PQclear(r);
		}
		dl = x->soft_deadline && !x->soft_expired && x->soft_deadline < x->deadline
			 ? x->soft_deadline
			 : x->deadline;
		w = wait_fd(p, run, PQsocket(p->conn), POLLIN, dl);
		if (w == W_TIMEOUT && dl != x->deadline) {
			x->soft_expired = true;
			send_cancel(p);
			continue;
		}
		if (w == W_TIMEOUT || w == W_CANCEL) {
			send_cancel(p);
			return w == W_TIMEOUT ? XR_TIMEOUT : XR_CANCEL;
		}
		if (w == W_ERROR || !PQconsumeInput(p->conn))
			return x_broken(p, x);
	}
}

/* Waits until no cancel request of this probe is on its way: one that
 * arrived late could cancel the next query instead. */
static enum wait_rc wait_cancel_sent(struct pg_probe *p, const struct usher_probe_run *run,
				     int64_t deadline)
{
	while (atomic_load(&p->canc->busy)) {
		int64_t step = usher_mono_ms() + 5;

		if (step > deadline)
			step = deadline;
		if (wait_fd(p, run, -1, 0, step) == W_CANCEL)
			return W_CANCEL;
		if (usher_mono_ms() >= deadline)
			return W_TIMEOUT;
	}
	return W_READY;
}

/* Sends x->sql (if any) and reads all of its results. */
static enum xrc x_run(struct pg_probe *p, const struct usher_probe_run *run, struct xq *x)
{
	enum wait_rc w;
	int f;

	x->err[0] = '\0';
	x->sqlstate[0] = '\0';
	x->soft_expired = false;
	x->stopped = false;
	if (!x->sql && !x->stmt)
		return x_collect(p, run, x);
	w = wait_cancel_sent(p, run, x->deadline);
	if (w != W_READY) {
		snprintf(x->err, sizeof(x->err), "a cancel request has not been answered");
		return w == W_CANCEL ? XR_CANCEL : XR_TIMEOUT;
	}
	if (!(x->stmt       ? PQsendQueryPrepared(p->conn, x->stmt, 0, NULL, NULL, NULL, 0)
	      : x->extended ? PQsendQueryParams(p->conn, x->sql, 0, NULL, NULL, NULL, NULL, 0)
			    : PQsendQuery(p->conn, x->sql))) {
		if (PQstatus(p->conn) == CONNECTION_BAD)
			return x_broken(p, x);
		one_line(x->err, sizeof(x->err), PQerrorMessage(p->conn));
		return XR_ERROR;
	}
	p->busy = true;
	if (x->single_row)
		PQsetSingleRowMode(p->conn);
	while ((f = PQflush(p->conn)) == 1) {
		w = wait_fd(p, run, PQsocket(p->conn), POLLOUT | POLLIN, x->deadline);
		if (w == W_TIMEOUT || w == W_CANCEL) {
			send_cancel(p);
			return w == W_TIMEOUT ? XR_TIMEOUT : XR_CANCEL;
		}
		if (w == W_ERROR || !PQconsumeInput(p->conn))
			return x_broken(p, x);
	}
	if (f < 0)
		return x_broken(p, x);
	return x_collect(p, run, x);
}

/* ---- connecting --------------------------------------------------------- */

static void backoff(struct pg_probe *p, const char *reason, const char *msg)
{
	int64_t wait = BACKOFF_FIRST_MS;
	unsigned i;

	p->fails++;
	for (i = 1; i < p->fails && wait < BACKOFF_MAX_MS; i++)
		wait *= 2;
	if (wait > BACKOFF_MAX_MS)
		wait = BACKOFF_MAX_MS;
	p->retry_at = usher_mono_ms() + wait;
	p->last_reason = reason;
	snprintf(p->last_err, sizeof(p->last_err), "%s", msg);
}

static void log_connected(struct pg_probe *p, const char *version)
{
	struct usher_log_field f[] = {
	    USHER_LFS("event.action", "pg-connected"),
	    USHER_LFS("event.kind", "event"),
	    USHER_LFS("usher.probe.name", p->pc->name),
	    USHER_LFS("usher.probe.type", "postgres"),
	    USHER_LFS("usher.probe.instance", p->pc->instance),
	    USHER_LFS("service.version", version),
	};

	usher_log_event(p->log, USHER_LOG_INFO, f, sizeof(f) / sizeof(f[0]),
			"probe %s connected to %s (PostgreSQL %s)", p->pc->name, p->what, version);
}

static void version_text(int v, char *out, size_t len)
{
	if (v >= 100000)
		snprintf(out, len, "%d.%d.0", v / 10000, v % 10000);
	else
		snprintf(out, len, "%d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
}

/* Opens the connection and sets the session up, by deadline. On failure
 * the run has failed and the next attempt waits out the backoff. */
static bool pg_connect(struct pg_probe *p, struct usher_probe_run *run, int64_t deadline)
{
	int64_t now = usher_mono_ms(), until = now + p->o->connect_timeout_ms;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	const char *reason = USHER_FAIL_CONNECT;
	char msg[USHER_ERRMSG_MAX], ver[32];
	struct xq x = {.what = "session setup"};
	enum xrc xr;

	if (now < p->retry_at) {
		usher_probe_fail(run, p->last_reason ? p->last_reason : USHER_FAIL_CONNECT,
				 "%s: not connecting again for %.1fs after: %s", p->what,
				 (double)(p->retry_at - now) / 1000.0, p->last_err);
		return false;
	}
	if (until > deadline)
		until = deadline;
	p->conn =
	    PQconnectStartParams((const char *const *)p->keys, (const char *const *)p->vals, 0);
	if (!p->conn) {
		usher_probe_fail(run, USHER_FAIL_INTERNAL, "%s: out of memory", p->what);
		return false;
	}
	if (PQstatus(p->conn) == CONNECTION_BAD)
		st = PGRES_POLLING_FAILED;
	while (st != PGRES_POLLING_OK) {
		enum wait_rc w;

		if (st == PGRES_POLLING_FAILED) {
			one_line(msg, sizeof(msg), PQerrorMessage(p->conn));
			reason = PQconnectionNeedsPassword(p->conn) ? USHER_FAIL_AUTH
								    : usher_pg_connect_reason(msg);
			goto failed;
		}
		if (PQsocket(p->conn) < 0) {
			snprintf(msg, sizeof(msg), "libpq has no socket");
			goto failed;
		}
		w = wait_fd(p, run, PQsocket(p->conn),
			    st == PGRES_POLLING_READING ? POLLIN : POLLOUT, until);
		if (w == W_TIMEOUT || w == W_CANCEL) {
			reason = USHER_FAIL_TIMEOUT;
			snprintf(msg, sizeof(msg), "no connection within %s",
				 w == W_CANCEL      ? "the probe's timeout (cancelled)"
				 : until < deadline ? "connect_timeout"
						    : "the probe's timeout");
			goto failed;
		}
		if (w == W_ERROR) {
			snprintf(msg, sizeof(msg), "poll: %s", strerror(errno));
			goto failed;
		}
		st = PQconnectPoll(p->conn);
	}
	if (PQsetnonblocking(p->conn, 1) != 0) {
		one_line(msg, sizeof(msg), PQerrorMessage(p->conn));
		goto failed;
	}
	p->opened++;
	p->server_version = PQserverVersion(p->conn);
	x.sql = p->set_sql;
	x.deadline = deadline;
	xr = x_run(p, run, &x);
	if (xr != XR_OK) {
		reason =
		    xr == XR_TIMEOUT || xr == XR_CANCEL ? USHER_FAIL_TIMEOUT : USHER_FAIL_CONNECT;
		snprintf(msg, sizeof(msg), "setting the session up: %.400s",
			 x.err[0] ? x.err : "no answer");
		goto failed;
	}
	p->fails = 0;
	p->retry_at = 0;
	version_text(p->server_version, ver, sizeof(ver));
	log_connected(p, ver);
	return true;
failed:
	/* a connection that never became usable is closed at once: the next
	 * attempt waits for the backoff, so attempts never pile up */
	drop_conn(p);
	backoff(p, reason, msg);
	usher_probe_fail(run, reason, "%s: %s", p->what, msg);
	return false;
}

/* ---- built-in metrics --------------------------------------------------- */

struct bctx {
	struct pg_probe *p;
	struct usher_probe_run *run;
	void (*rows)(struct pg_probe *p, struct usher_probe_run *run, const PGresult *r);
};

static bool builtin_result(void *arg, const PGresult *r)
{
	struct bctx *b = arg;

	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		b->rows(b->p, b->run, r);
	return false;
}

static const char *cell(const PGresult *r, int row, int col)
{
	if (col >= PQnfields(r) || PQgetisnull(r, row, col))
		return NULL;
	return PQgetvalue(r, row, col);
}

static bool num(const PGresult *r, int row, int col, double *v)
{
	const char *c = cell(r, row, col);

	return c && usher_pgq_parse_value(c, false, v);
}

static bool excluded(const struct pg_probe *p, const char *datname)
{
	size_t i;

	for (i = 0; i < p->o->exclude_databases.n; i++)
		if (strcmp(p->o->exclude_databases.v[i], datname) == 0)
			return true;
	return false;
}

static void server_rows(struct pg_probe *p, struct usher_probe_run *run, const PGresult *r)
{
	struct usher_sample_set *s = run->samples;
	char ver[32];
	double v;
	size_t i;

	if (PQntuples(r) != 1)
		return;
	version_text(p->server_version, ver, sizeof(ver));
	if (cell(r, 0, 0))
		usher_sample_add(s, &desc_static, 1, "version", cell(r, 0, 0), "short_version", ver,
				 NULL);
	if (num(r, 0, 1, &v))
		usher_sample_add(s, &desc_start_time, v, "process_name", "postmaster", NULL);
	if (num(r, 0, 2, &v))
		usher_sample_add(s, &desc_is_replica, v, NULL);
	if (num(r, 0, 3, &v))
		usher_sample_add(s, &desc_lag, v, NULL);
	for (i = 0; i < NSETTINGS; i++)
		if (num(r, 0, 4 + (int)i, &v))
			usher_sample_add(s, &desc_settings[i], v, NULL);
}

static void free_sizes(struct pg_probe *p)
{
	size_t i;

	for (i = 0; i < p->nsizes; i++)
		free(p->sizes[i].datname);
	free(p->sizes);
	p->sizes = NULL;
	p->nsizes = 0;
}

/* Keeps the sizes for the runs until the next measurement. */
static void size_rows(struct pg_probe *p, struct usher_probe_run *run, const PGresult *r)
{
	int i, n = PQntuples(r);
	double v;

	(void)run;
	free_sizes(p);
	p->sizes = usher_calloc((size_t)n + 1, sizeof(*p->sizes));
	for (i = 0; i < n; i++) {
		const char *db = cell(r, i, 0);

		if (db && num(r, i, 1, &v)) {
			p->sizes[p->nsizes].datname = usher_strdup(db);
			p->sizes[p->nsizes].bytes = v;
			p->nsizes++;
		}
	}
}

static void emit_sizes(struct pg_probe *p, struct usher_probe_run *run)
{
	size_t i;

	for (i = 0; i < p->nsizes; i++)
		if (!excluded(p, p->sizes[i].datname))
			usher_sample_add(run->samples, &desc_db_size, p->sizes[i].bytes, "datname",
					 p->sizes[i].datname, NULL);
}

static void stat_db_rows(struct pg_probe *p, struct usher_probe_run *run, const PGresult *r)
{
	int i, n = PQntuples(r);
	size_t k, ncols = PQnfields(r) > 2 ? (size_t)PQnfields(r) - 2 : 0;
	double v;

	if (ncols > NSTAT_DB)
		ncols = NSTAT_DB;
	for (i = 0; i < n; i++) {
		const char *id = cell(r, i, 0), *db = cell(r, i, 1);

		if (!id || !db || excluded(p, db))
			continue;
		for (k = 0; k < ncols; k++) {
			if (!num(r, i, (int)k + 2, &v))
				continue;
			if (k == STAT_DB_ACTIVE)
				v /= 1000.0; /* milliseconds in the view */
			usher_sample_add(run->samples, &desc_stat_db[k], v, "datid", id, "datname",
					 db, NULL);
		}
	}
}

static void activity_rows(struct pg_probe *p, struct usher_probe_run *run, const PGresult *r)
{
	int i, n = PQntuples(r);
	double v;

	for (i = 0; i < n; i++) {
		const char *db = cell(r, i, 0), *state = cell(r, i, 1);

		if (!db || !state || excluded(p, db))
			continue;
		if (num(r, i, 2, &v))
			usher_sample_add(run->samples, &desc_activity_count, v, "datname", db,
					 "state", state, NULL);
		if (num(r, i, 3, &v))
			usher_sample_add(run->samples, &desc_activity_max_tx, v, "datname", db,
					 "state", state, NULL);
	}
}

static void locks_rows(struct pg_probe *p, struct usher_probe_run *run, const PGresult *r)
{
	int i, n = PQntuples(r);
	double v;

	for (i = 0; i < n; i++) {
		const char *db = cell(r, i, 0), *mode = cell(r, i, 1);

		if (db && mode && !excluded(p, db) && num(r, i, 2, &v))
			usher_sample_add(run->samples, &desc_locks, v, "datname", db, "mode", mode,
					 NULL);
	}
}

static void replication_rows(struct pg_probe *p, struct usher_probe_run *run, const PGresult *r)
{
	static const struct usher_metric_desc *const lags[] = {&desc_write_lag, &desc_flush_lag,
							       &desc_replay_lag};
	int i, n = PQntuples(r);
	size_t k;
	double v;

	(void)p;
	for (i = 0; i < n; i++) {
		const char *app = cell(r, i, 0), *addr = cell(r, i, 1), *state = cell(r, i, 2),
			   *slot = cell(r, i, 3);

		app = app ? app : "";
		addr = addr ? addr : "";
		for (k = 0; k < 3; k++)
			if (num(r, i, 4 + (int)k, &v))
				usher_sample_add(run->samples, lags[k], v, "application_name", app,
						 "client_addr", addr, NULL);
		if (num(r, i, 7, &v))
			usher_sample_add(run->samples, &desc_lsn_diff, v, "application_name", app,
					 "client_addr", addr, "state", state ? state : "",
					 "slot_name", slot ? slot : "", NULL);
		if (num(r, i, 8, &v))
			usher_sample_add(run->samples, &desc_lsn_bytes, v, "application_name", app,
					 "client_addr", addr, "state", state ? state : "",
					 "slot_name", slot ? slot : "", NULL);
	}
}

static void tables_rows(struct pg_probe *p, struct usher_probe_run *run, const PGresult *r)
{
	static const struct usher_metric_desc *const d[] = {
	    &desc_live_tup, &desc_dead_tup, &desc_last_autovacuum, &desc_last_autoanalyze};
	int i, n = PQntuples(r);
	size_t k;
	double v;

	(void)p;
	for (i = 0; i < n; i++) {
		const char *db = cell(r, i, 0), *schema = cell(r, i, 1), *rel = cell(r, i, 2);

		if (!db || !schema || !rel)
			continue;
		for (k = 0; k < 4; k++)
			if (num(r, i, 3 + (int)k, &v))
				usher_sample_add(run->samples, d[k], v, "datname", db, "schemaname",
						 schema, "relname", rel, NULL);
	}
}

/* The server's one-row summary: version, start, recovery, lag, settings.
 * The lag is 0 on a replica that has replayed everything it received
 * (postgres_exporter's lag keeps growing on the replica of an idle
 * primary, since it only looks at the last replayed transaction's time). */
static const char *server_sql(struct usher_arena *a, int version, const struct usher_pg_opts *o)
{
	(void)o;
	bool v10 = version >= 100000;

	return usher_arena_printf(
	    a,
	    "SELECT version(), extract(epoch FROM pg_postmaster_start_time()), "
	    "pg_is_in_recovery()::int, "
	    "CASE WHEN NOT pg_is_in_recovery() THEN 0 "
	    "WHEN %s() = %s() THEN 0 "
	    "ELSE GREATEST(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END, "
	    "current_setting('max_connections'), "
	    "current_setting('superuser_reserved_connections'), "
	    "%s, "
	    "current_setting('max_wal_senders'), "
	    "%s, "
	    "current_setting('max_locks_per_transaction'), "
	    "current_setting('max_prepared_transactions'), "
	    "(current_setting('autovacuum') = 'on')::int",
	    v10 ? "pg_last_wal_receive_lsn" : "pg_last_xlog_receive_location",
	    v10 ? "pg_last_wal_replay_lsn" : "pg_last_xlog_replay_location",
	    version >= 160000 ? "current_setting('reserved_connections')" : "NULL",
	    version >= 90400 ? "current_setting('max_replication_slots')" : "NULL");
}

static const char *size_sql(struct usher_arena *a, int version, const struct usher_pg_opts *o)
{
	(void)o;
	(void)a;
	(void)version;
	return "SELECT datname, pg_database_size(oid) FROM pg_database "
	       "WHERE datallowconn AND has_database_privilege(oid, 'CONNECT')";
}

static const char *stat_db_sql(struct usher_arena *a, int version, const struct usher_pg_opts *o)
{
	(void)o;
	return usher_arena_printf(
	    a,
	    "SELECT datid, datname, numbackends, xact_commit, xact_rollback, blks_read, blks_hit, "
	    "tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted, conflicts, "
	    "temp_files, temp_bytes, deadlocks, blk_read_time, blk_write_time%s "
	    "FROM pg_stat_database WHERE datname IS NOT NULL",
	    version >= 140000 ? ", active_time" : "");
}

static const char *activity_sql(struct usher_arena *a, int version, const struct usher_pg_opts *o)
{
	(void)o;
	(void)a;
	(void)version;
	/* every database and state, zeros included, as postgres_exporter */
	return "SELECT d.datname, s.state, COALESCE(a.count, 0), COALESCE(a.max_tx_duration, 0) "
	       "FROM pg_database d CROSS JOIN (VALUES ('active'), ('idle'), "
	       "('idle in transaction'), ('idle in transaction (aborted)'), "
	       "('fastpath function call'), ('disabled')) AS s(state) "
	       "LEFT JOIN (SELECT datname, state, count(*) AS count, "
	       "max(extract(epoch FROM now() - xact_start))::float8 AS max_tx_duration "
	       "FROM pg_stat_activity GROUP BY datname, state) a "
	       "ON a.datname = d.datname AND a.state = s.state";
}

static const char *locks_sql(struct usher_arena *a, int version, const struct usher_pg_opts *o)
{
	(void)o;
	(void)a;
	(void)version;
	return "SELECT d.datname, m.mode, COALESCE(l.count, 0) "
	       "FROM (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), "
	       "('shareupdateexclusivelock'), ('sharelock'), ('sharerowexclusivelock'), "
	       "('exclusivelock'), ('accessexclusivelock'), ('sireadlock')) AS m(mode) "
	       "CROSS JOIN pg_database d "
	       "LEFT JOIN (SELECT database, lower(mode) AS mode, count(*) AS count FROM pg_locks "
	       "WHERE database IS NOT NULL GROUP BY database, lower(mode)) l "
	       "ON l.mode = m.mode AND l.database = d.oid";
}

static const char *replication_sql(struct usher_arena *a, int version,
				   const struct usher_pg_opts *o)
{
	(void)o;
	(void)a;
	if (version < 100000)
		return NULL; /* no lag columns before 10 */
	/* lags are NULL once a standby has caught up and gone idle: 0 then,
	 * for a streaming standby */
	return "SELECT r.application_name, host(r.client_addr), r.state, sl.slot_name, "
	       "CASE WHEN r.state = 'streaming' THEN COALESCE(extract(epoch FROM r.write_lag), 0) "
	       "END, "
	       "CASE WHEN r.state = 'streaming' THEN COALESCE(extract(epoch FROM r.flush_lag), 0) "
	       "END, "
	       "CASE WHEN r.state = 'streaming' THEN COALESCE(extract(epoch FROM r.replay_lag), 0) "
	       "END, "
	       "CASE WHEN pg_is_in_recovery() THEN NULL "
	       "ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn) END, "
	       "CASE WHEN pg_is_in_recovery() THEN NULL "
	       "ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') END "
	       "FROM pg_stat_replication r "
	       "LEFT JOIN pg_replication_slots sl ON sl.active_pid = r.pid";
}

static const char *tables_sql(struct usher_arena *a, int version, const struct usher_pg_opts *o)
{
	(void)version;
	if (o->max_tables <= 0)
		return NULL;
	return usher_arena_printf(
	    a,
	    "SELECT current_database(), schemaname, relname, n_live_tup, n_dead_tup, "
	    "COALESCE(extract(epoch FROM last_autovacuum), 0), "
	    "COALESCE(extract(epoch FROM last_autoanalyze), 0) "
	    "FROM pg_stat_user_tables ORDER BY n_dead_tup DESC, schemaname, relname LIMIT %lld",
	    (long long)o->max_tables);
}

typedef const char *builtin_sql_fn(struct usher_arena *a, int version,
				   const struct usher_pg_opts *o);
typedef void builtin_rows_fn(struct pg_probe *p, struct usher_probe_run *run, const PGresult *r);

static const struct builtin {
	const char *what; /* for messages */
	const char *stmt; /* its prepared statement's name */
	builtin_sql_fn *sql;
	builtin_rows_fn *rows;
} builtins[NBUILTIN] = {
    [B_SERVER] = {"server", "usher_server", server_sql, server_rows},
    [B_SIZE] = {"pg_database", "usher_database_size", size_sql, size_rows},
    [B_STAT_DB] = {"pg_stat_database", "usher_stat_database", stat_db_sql, stat_db_rows},
    [B_ACTIVITY] = {"pg_stat_activity", "usher_stat_activity", activity_sql, activity_rows},
    [B_LOCKS] = {"pg_locks", "usher_locks", locks_sql, locks_rows},
    [B_REPLICATION] = {"pg_stat_replication", "usher_stat_replication", replication_sql,
		       replication_rows},
    [B_TABLES] = {"pg_stat_user_tables", "usher_stat_user_tables", tables_sql, tables_rows},
};

static void free_builtins(struct pg_probe *p)
{
	size_t i;

	for (i = 0; i < NBUILTIN; i++) {
		free(p->bsql[i]);
		p->bsql[i] = NULL;
	}
	p->prepared = false;
}

/* Prepares the built-in statements on a new connection, in one round trip:
 * parsed and planned once per connection rather than every run, which is
 * most of what they cost the server. A server that refuses (a view it
 * does not have) gets them as plain text each run. Returns false when the
 * connection cannot be used. */
static bool prepare_builtins(struct pg_probe *p, struct usher_probe_run *run, int64_t deadline)
{
	struct usher_arena *a = usher_arena_new();
	struct xq x = {.what = "preparing the built-in statements", .deadline = deadline};
	const char *all = "";
	enum xrc rc;
	size_t i;

	free_builtins(p);
	for (i = 0; i < NBUILTIN; i++) {
		const char *sql = builtins[i].sql(a, p->server_version, p->o);

		if (!sql)
			continue;
		p->bsql[i] = usher_strdup(sql);
		all = usher_arena_printf(a, "%sPREPARE %s AS %s;", all, builtins[i].stmt, sql);
	}
	x.sql = all;
	rc = x_run(p, run, &x);
	usher_arena_free(a);
	p->prepared = rc == XR_OK;
	if (rc == XR_ERROR)
		usher_log_warn(p->log,
			       "probe %s: cannot prepare the built-in statements, sending them as "
			       "text: %s",
			       p->pc->name, x.err);
	if (rc == XR_OK || rc == XR_ERROR)
		return true;
	usher_probe_fail(run, rc == XR_BROKEN ? USHER_FAIL_CONNECT : USHER_FAIL_TIMEOUT,
			 "%s: %s: %s", p->what, x.what, x.err[0] ? x.err : "no answer");
	if (rc == XR_BROKEN)
		drop_conn(p);
	return false;
}

/* Runs built-in statement i. Returns false when the run cannot go on (the
 * connection is busy, gone, or the run was stopped). */
static bool builtin(struct pg_probe *p, struct usher_probe_run *run, size_t i, int64_t deadline)
{
	struct bctx b = {p, run, builtins[i].rows};
	struct xq x = {.what = builtins[i].what, .deadline = deadline};
	const char *what = builtins[i].what;
	enum xrc rc;

	if (!p->bsql[i])
		return true;
	if (p->prepared)
		x.stmt = builtins[i].stmt;
	else
		x.sql = p->bsql[i];
	x.on_result = builtin_result;
	x.arg = &b;
	rc = x_run(p, run, &x);
	switch (rc) {
	case XR_OK: return true;
	case XR_ERROR:
		/* one view we may not read does not hide the others */
		usher_probe_fail(run, USHER_FAIL_QUERY, "%s: %s: %s%s%s%s", p->what, what, x.err,
				 x.sqlstate[0] ? " (SQLSTATE " : "", x.sqlstate,
				 x.sqlstate[0] ? ")" : "");
		return true;
	case XR_TIMEOUT:
		usher_probe_fail(run, USHER_FAIL_TIMEOUT, "%s: %s: no answer within the timeout",
				 p->what, what);
		/* statement_timeout ended it and the connection is free again:
		 * the others may still fit in the budget */
		return !p->busy;
	case XR_CANCEL:
		usher_probe_fail(run, USHER_FAIL_TIMEOUT, "%s: %s: stopped by the scheduler",
				 p->what, what);
		return false;
	case XR_BROKEN:
		usher_probe_fail(run, USHER_FAIL_CONNECT, "%s: %s: %s", p->what, what, x.err);
		drop_conn(p);
		return false;
	}
	return false;
}

/* All built-in statements; database sizes only when due. */
static bool builtins_run(struct pg_probe *p, struct usher_probe_run *run, int64_t deadline)
{
	size_t i;

	for (i = 0; i < NBUILTIN; i++) {
		if (i == B_SIZE) {
			int64_t now = usher_mono_ms();
			bool ok;

			if (now < p->sizes_due)
				continue;
			free_sizes(p);
			ok = builtin(p, run, i, deadline);
			/* measured: next time at the interval; failed: next run */
			if (p->sizes)
				p->sizes_due = now + p->o->database_size_interval_ms;
			if (!ok)
				return false;
			continue;
		}
		if (!builtin(p, run, i, deadline))
			return false;
	}
	return true;
}

/* ---- custom queries ----------------------------------------------------- */

struct qctx {
	struct usher_pgq_state *st;
	struct usher_arena *arena;
	bool cols_failed;
	/* one row's column names, cells and boolean flags, grown in arena */
	const char **names, **cells;
	bool *bools;
	int cap;
};

static bool query_result(void *arg, const PGresult *r)
{
	struct qctx *q = arg;
	int nf = PQnfields(r), i, n = PQntuples(r), row;

	if (q->cols_failed)
		return true;
	if (PQresultStatus(r) != PGRES_SINGLE_TUPLE && PQresultStatus(r) != PGRES_TUPLES_OK)
		return false;
	if (nf > q->cap) {
		q->cap = nf;
		q->names = usher_arena_alloc(q->arena, (size_t)nf * sizeof(*q->names));
		q->cells = usher_arena_alloc(q->arena, (size_t)nf * sizeof(*q->cells));
		q->bools = usher_arena_alloc(q->arena, (size_t)nf);
	}
	for (i = 0; i < nf; i++) {
		q->names[i] = PQfname(r, i);
		q->bools[i] = PQftype(r, i) == BOOLOID;
	}
	if (usher_pgq_columns(q->st, (size_t)nf, q->names, q->bools)) {
		q->cols_failed = true;
		return true;
	}
	for (row = 0; row < n; row++) {
		for (i = 0; i < nf; i++)
			q->cells[i] = PQgetisnull(r, row, i) ? NULL : PQgetvalue(r, row, i);
		if (usher_pgq_row(q->st, q->cells))
			return true; /* over max_series: stop reading */
	}
	return false;
}

static void log_query_error(struct pg_probe *p, size_t i)
{
	const struct usher_pgq_conf *q = usher_pgq_conf_of(p->qs[i]);
	uint64_t held = 0;

	if (!usher_complain(&p->q_complain[i], usher_now_ms(), &held))
		return;
	{
		struct usher_log_field f[] = {
		    USHER_LFS("event.action", "sql-query-failed"),
		    USHER_LFS("event.kind", "event"),
		    USHER_LFS("event.outcome", "failure"),
		    USHER_LFS("usher.probe.name", p->pc->name),
		    USHER_LFS("usher.probe.instance", p->pc->instance),
		    USHER_LFS("usher.sql.query", q->name),
		    USHER_LFS("error.message", usher_pgq_last_error(p->qs[i])),
		};

		usher_log_event(
		    p->log, USHER_LOG_WARN, f, sizeof(f) / sizeof(f[0]),
		    held ? "probe %s: query %s failed: %s (%llu more failures since the "
			   "last report)"
			 : "probe %s: query %s failed: %s",
		    p->pc->name, q->name, usher_pgq_last_error(p->qs[i]), (unsigned long long)held);
	}
}

static void log_query_recovered(struct pg_probe *p, size_t i)
{
	if (usher_complain_release(&p->q_complain[i]))
		usher_log_info(p->log, "probe %s: query %s works again", p->pc->name,
			       usher_pgq_conf_of(p->qs[i])->name);
}

/* Runs the custom query i if it is due. Returns false when the run cannot
 * go on. */
static bool custom(struct pg_probe *p, struct usher_probe_run *run, size_t i, int64_t deadline)
{
	struct usher_pgq_state *st = p->qs[i];
	const struct usher_pgq_conf *q = usher_pgq_conf_of(st);
	struct qctx qc = {.st = st, .arena = run->arena};
	struct xq x = {.what = q->name, .sql = q->sql, .extended = true, .single_row = true};
	int64_t start = usher_mono_ms();
	int64_t t0 = usher_mono_ns();
	enum xrc rc;
	bool go_on = true;

	if (!usher_pgq_due(st, start))
		return true;
	usher_pgq_begin(st, start);
	x.deadline = deadline;
	if (q->timeout_ms)
		x.soft_deadline = start + q->timeout_ms;
	x.on_result = query_result;
	x.arg = &qc;
	rc = x_run(p, run, &x);
	switch (rc) {
	case XR_OK: break;
	case XR_ERROR:
		if (!x.stopped && !usher_pgq_failed(st)) {
			char msg[USHER_ERRMSG_MAX + 32];

			snprintf(msg, sizeof(msg), "%s%s%s%s", x.err,
				 x.sqlstate[0] ? " (SQLSTATE " : "", x.sqlstate,
				 x.sqlstate[0] ? ")" : "");
			usher_pgq_fail(st, USHER_PGQ_ERR_QUERY, msg);
		}
		break;
	case XR_TIMEOUT:
		usher_pgq_fail(st, USHER_PGQ_ERR_TIMEOUT,
			       x.soft_expired ? "cancelled at the query's timeout"
					      : "no answer within the probe's timeout");
		/* only the query's own timeout leaves the connection free */
		go_on = !p->busy;
		break;
	case XR_CANCEL:
		usher_pgq_fail(st, USHER_PGQ_ERR_TIMEOUT, "stopped by the scheduler");
		go_on = false;
		break;
	case XR_BROKEN:
		usher_pgq_fail(st, USHER_PGQ_ERR_QUERY, x.err);
		usher_probe_fail(run, USHER_FAIL_CONNECT, "%s: query %s: %s", p->what, q->name,
				 x.err);
		drop_conn(p);
		go_on = false;
		break;
	}
	if (usher_pgq_end(st, (double)(usher_mono_ns() - t0) / 1e9))
		log_query_recovered(p, i);
	else
		log_query_error(p, i);
	if (rc == XR_TIMEOUT && go_on)
		return true;
	if (rc == XR_TIMEOUT)
		usher_probe_fail(run, USHER_FAIL_TIMEOUT,
				 "%s: query %s: no answer within the timeout", p->what, q->name);
	return go_on;
}

/* ---- the run ------------------------------------------------------------ */

/* Waits for the answer a query of an earlier run left behind (the server
 * was slow or stopped) and for its cancel request to come back, so the
 * next query can neither meet its results nor its cancel. */
static bool settle(struct pg_probe *p, struct usher_probe_run *run, int64_t deadline)
{
	struct xq x = {.what = "the previous run's query", .deadline = deadline};
	enum xrc rc = XR_OK;

	if (p->conn && p->busy) {
		rc = x_run(p, run, &x);
		if (rc == XR_BROKEN) {
			drop_conn(p);
			return true; /* reconnect below */
		}
		if (rc == XR_TIMEOUT || rc == XR_CANCEL) {
			usher_probe_fail(run, USHER_FAIL_TIMEOUT,
					 "%s: the query of an earlier run has not come back (the "
					 "server is stuck); not opening a second connection",
					 p->what);
			return false;
		}
	}
	if (wait_cancel_sent(p, run, deadline) != W_READY) {
		usher_probe_fail(run, USHER_FAIL_TIMEOUT,
				 "%s: a cancel request has not been answered (the server is stuck)",
				 p->what);
		return false;
	}
	return true;
}

static void emit_counters(struct pg_probe *p, struct usher_probe_run *run)
{
	size_t i;

	usher_sample_add(run->samples, &desc_connects, (double)p->opened, NULL);
	for (i = 0; i < p->nq; i++) {
		usher_pgq_emit(p->qs[i], run->samples);
		usher_pgq_emit_stats(p->qs[i], run->samples);
	}
}

static void pg_run(void *ctx, struct usher_probe_run *run)
{
	struct pg_probe *p = ctx;
	int64_t deadline = run->deadline_mono_ms;
	struct xq ping = {.what = "SELECT 1", .sql = "SELECT 1", .deadline = deadline};
	bool fresh = false, up = false;
	enum xrc rc = XR_OK;
	int64_t t0;
	size_t i;

	if (!settle(p, run, deadline))
		goto out;
	for (;;) {
		if (!p->conn) {
			if (!pg_connect(p, run, deadline))
				goto out;
			fresh = true;
		}
		t0 = usher_mono_ns();
		rc = x_run(p, run, &ping);
		if (rc == XR_OK)
			break;
		if (rc == XR_BROKEN && !fresh) {
			/* the server restarted or dropped us since the last
			 * run: one new connection, at once */
			drop_conn(p);
			p->fails = 0;
			p->retry_at = 0;
			continue;
		}
		if (rc == XR_BROKEN)
			drop_conn(p);
		usher_probe_fail(run,
				 rc == XR_BROKEN  ? USHER_FAIL_CONNECT
				 : rc == XR_ERROR ? USHER_FAIL_QUERY
						  : USHER_FAIL_TIMEOUT,
				 "%s: SELECT 1: %s", p->what,
				 rc == XR_BROKEN  ? ping.err
				 : rc == XR_ERROR ? ping.err
						  : "no answer within the timeout");
		goto out;
	}
	up = true;
	usher_sample_add(run->samples, &desc_latency, (double)(usher_mono_ns() - t0) / 1e9, NULL);
	if (fresh && !prepare_builtins(p, run, deadline))
		goto out;
	if (!builtins_run(p, run, deadline))
		goto out;
	for (i = 0; i < p->nq; i++)
		if (!custom(p, run, i, deadline))
			break;
out:
	/* up means the server answered this run and the connection is still
	 * there to show for it */
	up = up && p->conn;
	usher_sample_add(run->samples, &desc_up, up ? 1 : 0, NULL);
	if (up)
		emit_sizes(p, run);
	emit_counters(p, run);
}

static void pg_cancel(void *ctx, struct usher_probe_run *run)
{
	struct pg_probe *p = ctx;
	uint64_t one = 1;

	/* the loop thread: only wake the worker, which cancels the query */
	atomic_store(&p->cancel_run, run->started_mono_ns);
	if (write(p->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: a wake-up is pending anyway */
	}
}

/* ---- set-up ------------------------------------------------------------- */

static void wipe_free(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static void pg_free(void *ctx)
{
	struct pg_probe *p = ctx;
	size_t i;

	if (!p)
		return;
	drop_conn(p);
	for (i = 0; i < p->nparams; i++) {
		free(p->keys[i]);
		wipe_free(p->vals[i]);
	}
	free(p->keys);
	free(p->vals);
	free_builtins(p);
	free_sizes(p);
	for (i = 0; i < p->nq; i++)
		usher_pgq_state_free(p->qs[i]);
	free(p->qs);
	free(p->q_complain);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	if (p->canc)
		canceller_unref(p->canc);
	free(p->what);
	free(p);
}

static void add_param(struct pg_probe *p, size_t cap, const char *k, const char *v)
{
	size_t i;

	for (i = 0; i < p->nparams; i++)
		if (strcmp(p->keys[i], k) == 0)
			return; /* the DSN says otherwise */
	if (p->nparams + 1 >= cap)
		return;
	p->keys[p->nparams] = usher_strdup(k);
	p->vals[p->nparams] = usher_strdup(v);
	p->nparams++;
}

static enum usher_err pg_init(const struct usher_probe_conf *pc, const struct usher_probe_env *env,
			      void **ctx, struct usher_error *err)
{
	struct pg_probe *p = usher_calloc(1, sizeof(*p));
	const struct usher_pg_opts *o = pc->opts;
	struct usher_arena *a = usher_arena_new();
	PQconninfoOption *co, *c;
	char num[32];
	size_t n = 0, cap, i;

	*ctx = NULL;
	p->pc = pc;
	p->o = o;
	p->log = env->log;
	p->wake_fd = -1;
	p->what = usher_strdup(usher_pg_describe(a, o->dsn));
	usher_arena_free(a);
	p->canc = usher_calloc(1, sizeof(*p->canc));
	atomic_init(&p->canc->refs, 1);
	atomic_init(&p->canc->busy, false);
	atomic_init(&p->cancel_run, -1);
	p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->wake_fd < 0) {
		usher_fail(err, USHER_ERR_IO, "eventfd: %s", strerror(errno));
		pg_free(p);
		return USHER_ERR_IO;
	}

	co = PQconninfoParse(o->dsn, NULL);
	if (!co) {
		usher_fail(err, USHER_ERR_INVALID, "dsn: not a valid connection string");
		pg_free(p);
		return USHER_ERR_INVALID;
	}
	for (c = co; c->keyword; c++)
		n++;
	cap = n + 8;
	p->keys = usher_calloc(cap, sizeof(*p->keys));
	p->vals = usher_calloc(cap, sizeof(*p->vals));
	for (c = co; c->keyword; c++)
		if (c->val && *c->val)
			add_param(p, cap, c->keyword, c->val);
	for (c = co; c->keyword; c++)
		if (c->val)
			explicit_bzero(c->val, strlen(c->val));
	PQconninfoFree(co);
	/* usher's defaults, where the DSN says nothing: a name to count our
	 * sessions by, and a dead peer noticed within about a minute (a
	 * stopped server's kernel still answers, so that keeps waiting) */
	add_param(p, cap, "fallback_application_name", "usher");
	snprintf(num, sizeof(num), "%lld", (long long)((o->connect_timeout_ms + 999) / 1000));
	add_param(p, cap, "connect_timeout", num);
	add_param(p, cap, "keepalives_idle", "30");
	add_param(p, cap, "keepalives_interval", "10");
	add_param(p, cap, "keepalives_count", "3");
	add_param(p, cap, "tcp_user_timeout", "60000");
	p->keys[p->nparams] = NULL;
	p->vals[p->nparams] = NULL;
	/* read-only: a custom query can never change data by mistake */
	snprintf(p->set_sql, sizeof(p->set_sql),
		 "SET statement_timeout = %lld; SET default_transaction_read_only = on",
		 (long long)o->statement_timeout_ms);

	p->nq = o->queries.n;
	p->qs = usher_calloc(p->nq + 1, sizeof(*p->qs));
	p->q_complain = usher_calloc(p->nq + 1, sizeof(*p->q_complain));
	for (i = 0; i < p->nq; i++)
		p->qs[i] = usher_pgq_state_new(&((const struct usher_pgq_conf *)o->queries.v)[i]);
	*ctx = p;
	return USHER_OK;
}

const struct usher_probe_type usher_probe_postgres = {
    .name = "postgres",
    .help = "PostgreSQL server metrics and custom SQL metrics over one persistent connection "
	    "(postgres_exporter's names)",
    .options = usher_pg_options,
    .opts_size = sizeof(struct usher_pg_opts),
    .check = pg_check,
    .default_instance = pg_default_instance,
    .init = pg_init,
    .run = pg_run,
    .cancel = pg_cancel,
    .free = pg_free,
};
