/* usher diag's PostgreSQL checks, over a short-lived libpq connection of
 * their own (read-only, application_name usher-diag), every wait bounded
 * by the deadline: connections against max_connections, lock chains (who
 * blocks whom, how long, which query), long-running and idle-in-transaction
 * sessions, replication lag, cache hit ratio, pg_stat_statements' top
 * statements, dead tuples and vacuum, unused indexes, sequences near their
 * end and transaction-ID wraparound. Thresholds: docs/diag.md. */
#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/timeutil.h"
#include "probes/diag.h"
#include "probes/postgres.h"

/* The alerts (and runbooks/<name>.md) each finding points at. */
#define A_DOWN    "PostgresDown"
#define A_CONNS   "PostgresConnectionsSaturated"
#define A_LOCKS   "PostgresLockWaits"
#define A_LONG    "PostgresLongRunningQuery"
#define A_IDLE_TX "PostgresIdleInTransaction"
#define A_REPL    "PostgresReplicationLag"
#define A_CACHE   "PostgresCacheHitRatioLow"
#define A_DEAD    "PostgresDeadTuples"
#define A_SEQ     "PostgresSequenceExhaustion"
#define A_XID     "PostgresXidWraparound"

#define QUERY_TEXT_MAX 160 /* characters of a query shown */
#define TOP_N          5

struct pgd {
	struct usher_diag_report *r;
	const struct usher_diag_thresholds *th;
	PGconn *conn;
	int64_t deadline;
	int version;
	char err[USHER_ERRMSG_MAX];
	const char *what; /* the DSN without its password */
};

static void one_line(char *out, size_t len, const char *msg)
{
	size_t i, k = 0;

	for (i = 0; msg[i] && k + 1 < len; i++) {
		char c = msg[i];

		if (c == '\n' || c == '\r' || c == '\t')
			c = ' ';
		if (c == ' ' && (k == 0 || out[k - 1] == ' '))
			continue;
		out[k++] = c;
	}
	while (k && out[k - 1] == ' ')
		k--;
	out[k] = '\0';
}

/* Waits for fd until the deadline: 1 ready, 0 deadline, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t left = deadline - usher_mono_ms();
		int n;

		if (left <= 0)
			return 0;
		n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

static bool pg_open(struct pgd *d, const char *dsn)
{
	char opts[128], ctimeout[24];
	int64_t left = d->deadline - usher_mono_ms();
	const char *keys[] = {"dbname", "application_name", "options", "connect_timeout", NULL};
	const char *vals[] = {dsn, "usher-diag", opts, ctimeout, NULL};
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	/* every statement is also bounded by the server, and diag never writes */
	snprintf(opts, sizeof(opts),
		 "-c statement_timeout=%lld -c lock_timeout=1000 "
		 "-c default_transaction_read_only=on",
		 (long long)(left > 0 ? left : 1));
	snprintf(ctimeout, sizeof(ctimeout), "%lld",
		 (long long)(left / 1000 > 2 ? left / 1000 : 2));
	d->conn = PQconnectStartParams(keys, vals, 1);
	if (!d->conn) {
		snprintf(d->err, sizeof(d->err), "out of memory");
		return false;
	}
	if (PQstatus(d->conn) == CONNECTION_BAD)
		st = PGRES_POLLING_FAILED;
	while (st != PGRES_POLLING_OK) {
		int w;

		if (st == PGRES_POLLING_FAILED) {
			one_line(d->err, sizeof(d->err), PQerrorMessage(d->conn));
			return false;
		}
		w = wait_fd(PQsocket(d->conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
			    d->deadline);
		if (w <= 0) {
			snprintf(d->err, sizeof(d->err), "%s",
				 w == 0 ? "no connection before the deadline" : strerror(errno));
			return false;
		}
		st = PQconnectPoll(d->conn);
	}
	d->version = PQserverVersion(d->conn);
	return true;
}

/* Runs sql; the result (PGRES_TUPLES_OK) or NULL with d->err set. A
 * statement still running at the deadline is cancelled. */
static PGresult *q(struct pgd *d, const char *sql)
{
	PGresult *res = NULL, *r;

	d->err[0] = '\0';
	if (!PQsendQuery(d->conn, sql)) {
		one_line(d->err, sizeof(d->err), PQerrorMessage(d->conn));
		return NULL;
	}
	for (;;) {
		int w;

		if (!PQconsumeInput(d->conn)) {
			one_line(d->err, sizeof(d->err), PQerrorMessage(d->conn));
			return NULL;
		}
		if (!PQisBusy(d->conn))
			break;
		w = wait_fd(PQsocket(d->conn), POLLIN, d->deadline);
		if (w <= 0) {
			snprintf(d->err, sizeof(d->err), "no answer before the deadline");
			/* Closing the connection ends the statement (as does its
			 * statement_timeout); PQcancel is not used: it waits for
			 * the server, which may be the thing that hangs. */
			PQfinish(d->conn);
			d->conn = NULL;
			return NULL;
		}
	}
	while ((r = PQgetResult(d->conn)) != NULL) {
		if (!res && PQresultStatus(r) == PGRES_TUPLES_OK) {
			res = r;
			continue;
		}
		if (PQresultStatus(r) != PGRES_TUPLES_OK && !d->err[0])
			one_line(d->err, sizeof(d->err), PQresultErrorMessage(r));
		PQclear(r);
	}
	if (!res && !d->err[0])
		snprintf(d->err, sizeof(d->err), "no rows returned");
	if (res && d->err[0]) {
		PQclear(res);
		res = NULL;
	}
	return res;
}

/* q, with a failure turned into a WARN finding for check. */
static PGresult *qc(struct pgd *d, const char *check, const char *sql)
{
	PGresult *res;

	if (!d->conn)
		return NULL;
	res = q(d, sql);
	if (!res)
		usher_diag_add(d->r, USHER_DIAG_WARN, check, NULL,
			       "grant the probe's role pg_monitor, or look at the server's log",
			       "could not check: %s", d->err);
	return res;
}

static const char *cell(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

static double num(const PGresult *r, int row, int col)
{
	const char *s = cell(r, row, col);
	char *end;
	double v;

	if (!*s)
		return NAN;
	v = strtod(s, &end);
	return *end ? NAN : v;
}

static int atoi_safe(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *s && !*end && v > 0 && v < 1L << 30 ? (int)v : 0;
}

static const char *ago(char *out, size_t len, double secs)
{
	if (!isfinite(secs) || secs < 0)
		snprintf(out, len, "?");
	else if (secs < 120)
		snprintf(out, len, "%.0fs", secs);
	else if (secs < 7200)
		snprintf(out, len, "%.0fm%02.0fs", floor(secs / 60), fmod(secs, 60));
	else if (secs < 172800)
		snprintf(out, len, "%.0fh%02.0fm", floor(secs / 3600), fmod(secs, 3600) / 60);
	else
		snprintf(out, len, "%.0fd", floor(secs / 86400));
	return out;
}

static enum usher_diag_status level(double v, double warn, double fail)
{
	if (isfinite(v) && v >= fail)
		return USHER_DIAG_FAIL;
	if (isfinite(v) && v >= warn)
		return USHER_DIAG_WARN;
	return USHER_DIAG_OK;
}

/* A query's text, on one line, cut. */
#define QTEXT(col) "left(regexp_replace(" col ", '\\s+', ' ', 'g'), 160)"

/* ---- the checks ------------------------------------------------------- */

static void check_connections(struct pgd *d)
{
	PGresult *r = qc(d, "postgres.connections",
			 "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
			 "'client backend'), current_setting('max_connections')::int, "
			 "current_setting('superuser_reserved_connections')::int");
	PGresult *top;
	struct usher_buf b;
	double used, max, frac;
	enum usher_diag_status st;
	struct usher_diag_finding *f;
	int i;

	if (!r)
		return;
	used = num(r, 0, 0);
	max = num(r, 0, 1);
	PQclear(r);
	frac = max > 0 ? used / max : NAN;
	st = level(frac, d->th->pg_conn_warn, d->th->pg_conn_fail);
	f = usher_diag_add(d->r, st, "postgres.connections", A_CONNS,
			   "find who holds them below; add a pooler (PgBouncer) or raise "
			   "max_connections",
			   "%.0f of max_connections %.0f in use (%.0f%%)", used, max, frac * 100);
	top = q(d, "SELECT coalesce(usename::text, '-'), coalesce(nullif(application_name, ''), "
		   "'-'), coalesce(state, '-'), count(*) FROM pg_stat_activity WHERE "
		   "backend_type = 'client backend' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5");
	if (!top || st == USHER_DIAG_OK) {
		PQclear(top);
		return;
	}
	usher_buf_init(&b, 8192);
	for (i = 0; i < PQntuples(top); i++)
		usher_buf_addf(&b, "%s%s sessions of user %s, application %s, %s", i ? "\n" : "",
			       cell(top, i, 3), cell(top, i, 0), cell(top, i, 1), cell(top, i, 2));
	usher_diag_detail(d->r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	PQclear(top);
}

static void check_locks(struct pgd *d)
{
	/* pg_locks.waitstart (14+) says when the wait began; before, the
	 * statement's start is the best bound */
	const char *wait_expr =
	    d->version >= 140000
		? "coalesce((SELECT max(now() - l.waitstart) FROM pg_locks l WHERE l.pid = w.pid "
		  "AND NOT l.granted), now() - w.query_start)"
		: "now() - w.query_start";
	char sql[2048];
	PGresult *r;
	struct usher_buf b;
	double worst = 0;
	int i, n, roots = 0, waiters = 0;
	int root_pid = 0;
	char t1[32], t2[32];
	enum usher_diag_status st;
	struct usher_diag_finding *f;

	snprintf(
	    sql, sizeof(sql),
	    "SELECT w.pid, coalesce(w.usename::text, '-'), coalesce(w.datname::text, '-'), "
	    "extract(epoch FROM %s)::float8, " QTEXT(
		"w.query") ", "
			   "b.pid, coalesce(b.usename::text, '-'), coalesce(b.state, '-'), "
			   "extract(epoch FROM now() - coalesce(b.xact_start, "
			   "b.query_start))::float8, " QTEXT(
			       "b.query") ", cardinality(pg_blocking_pids(b.pid)) = 0, "
					  "coalesce(nullif(b.application_name, ''), '-') "
					  "FROM pg_stat_activity w CROSS JOIN LATERAL "
					  "unnest(pg_blocking_pids(w.pid)) "
					  "AS bp(pid) JOIN pg_stat_activity b ON b.pid = bp.pid "
					  "WHERE w.wait_event_type = 'Lock' ORDER BY 4 DESC, 1, 6 "
					  "LIMIT 20",
	    wait_expr);
	r = qc(d, "postgres.locks", sql);
	if (!r)
		return;
	n = PQntuples(r);
	if (!n) {
		usher_diag_add(d->r, USHER_DIAG_OK, "postgres.locks", A_LOCKS, NULL,
			       "no session is waiting on another's lock");
		PQclear(r);
		return;
	}
	usher_buf_init(&b, 16384);
	for (i = 0; i < n; i++) {
		double waited = num(r, i, 3);
		bool root = strcmp(cell(r, i, 10), "t") == 0;
		bool new_waiter = i == 0 || strcmp(cell(r, i, 0), cell(r, i - 1, 0)) != 0;
		int j;

		if (waited > worst)
			worst = waited;
		waiters += new_waiter;
		if (root) {
			for (j = 0; j < i; j++)
				if (strcmp(cell(r, j, 5), cell(r, i, 5)) == 0)
					break;
			if (j == i && !roots++)
				root_pid = atoi_safe(cell(r, i, 5));
		}
		if (new_waiter)
			usher_buf_addf(&b, "%spid %s (%s@%s) waiting %s: %s", i ? "\n" : "",
				       cell(r, i, 0), cell(r, i, 1), cell(r, i, 2),
				       ago(t1, sizeof(t1), waited), cell(r, i, 4));
		usher_buf_addf(&b,
			       "\n  blocked by pid %s (%s, app %s, %s, transaction open %s)%s: %s",
			       cell(r, i, 5), cell(r, i, 6), cell(r, i, 11), cell(r, i, 7),
			       ago(t2, sizeof(t2), num(r, i, 8)), root ? " [root blocker]" : "",
			       cell(r, i, 9));
	}
	st = worst >= d->th->pg_lock_wait_fail_s   ? USHER_DIAG_FAIL
	     : worst >= d->th->pg_lock_wait_warn_s ? USHER_DIAG_WARN
						   : USHER_DIAG_OK;
	if (root_pid) {
		char hint[256];

		snprintf(hint, sizeof(hint),
			 "pid %d blocks the others: have its client finish the transaction, or "
			 "SELECT pg_terminate_backend(%d) if it is stuck",
			 root_pid, root_pid);
		f = usher_diag_add(
		    d->r, st, "postgres.locks", A_LOCKS, hint,
		    "%d session%s waiting on locks, the longest %s; root blocker pid "
		    "%d%s",
		    waiters, waiters == 1 ? "" : "s", ago(t1, sizeof(t1), worst), root_pid,
		    roots > 1 ? " (and other roots below)" : "");
	} else {
		f = usher_diag_add(d->r, st, "postgres.locks", A_LOCKS,
				   "the blockers wait on each other: PostgreSQL resolves a "
				   "deadlock after deadlock_timeout; look for a cycle below",
				   "%d session%s waiting on locks, the longest %s", waiters,
				   waiters == 1 ? "" : "s", ago(t1, sizeof(t1), worst));
	}
	usher_diag_detail(d->r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	PQclear(r);
}

/* Sessions in state (a SQL list) for longer than warn seconds. */
static void check_sessions(struct pgd *d, const char *check, const char *alert, const char *states,
			   const char *since, double warn, double fail, const char *what,
			   const char *hint)
{
	char sql[1536], t1[32], t2[32];
	PGresult *r;
	struct usher_buf b;
	double worst = 0;
	int i, n;
	struct usher_diag_finding *f;

	snprintf(sql, sizeof(sql),
		 "SELECT pid, coalesce(usename::text, '-'), coalesce(datname::text, '-'), "
		 "coalesce(nullif(application_name, ''), '-'), "
		 "extract(epoch FROM now() - %s)::float8, "
		 "extract(epoch FROM now() - xact_start)::float8, " QTEXT(
		     "query") " "
			      "FROM pg_stat_activity WHERE backend_type = 'client backend' "
			      "AND pid <> pg_backend_pid() AND state IN (%s) "
			      "AND now() - %s > make_interval(secs => %g) ORDER BY 5 DESC LIMIT %d",
		 since, states, since, warn, TOP_N);
	r = qc(d, check, sql);
	if (!r)
		return;
	n = PQntuples(r);
	if (!n) {
		usher_diag_add(d->r, USHER_DIAG_OK, check, alert, NULL, "none %s longer than %s",
			       what, ago(t1, sizeof(t1), warn));
		PQclear(r);
		return;
	}
	usher_buf_init(&b, 8192);
	for (i = 0; i < n; i++) {
		if (num(r, i, 4) > worst)
			worst = num(r, i, 4);
		usher_buf_addf(&b, "%spid %s (%s@%s, app %s) for %s, transaction open %s: %s",
			       i ? "\n" : "", cell(r, i, 0), cell(r, i, 1), cell(r, i, 2),
			       cell(r, i, 3), ago(t1, sizeof(t1), num(r, i, 4)),
			       ago(t2, sizeof(t2), num(r, i, 5)), cell(r, i, 6));
	}
	f = usher_diag_add(d->r, level(worst, warn, fail), check, alert, hint,
			   "%d%s session%s %s longer than %s, the longest %s", n,
			   n == TOP_N ? "+" : "", n == 1 ? "" : "s", what,
			   ago(t1, sizeof(t1), warn), ago(t2, sizeof(t2), worst));
	usher_diag_detail(d->r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	PQclear(r);
}

static void check_replication(struct pgd *d)
{
	PGresult *r = qc(d, "postgres.replication", "SELECT pg_is_in_recovery()");
	struct usher_buf b;
	double worst = 0;
	int i, n;
	char t1[32];
	struct usher_diag_finding *f;
	bool replica;

	if (!r)
		return;
	replica = strcmp(cell(r, 0, 0), "t") == 0;
	PQclear(r);
	if (replica) {
		/* a replica with nothing to replay is not behind, however old
		 * the last replayed transaction is */
		enum usher_diag_status st;
		bool paused, receiving;
		double bytes;

		r = qc(d, "postgres.replication",
		       "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
		       "THEN 0 ELSE extract(epoch FROM now() - "
		       "pg_last_xact_replay_timestamp())::float8 END, "
		       "(SELECT status FROM pg_stat_wal_receiver), pg_is_wal_replay_paused(), "
		       "coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
		       "pg_last_wal_replay_lsn()), 0)::float8");
		if (!r)
			return;
		worst = num(r, 0, 0);
		receiving = *cell(r, 0, 1) != '\0';
		paused = strcmp(cell(r, 0, 2), "t") == 0;
		bytes = num(r, 0, 3);
		st = level(worst, d->th->pg_repl_lag_warn_s, d->th->pg_repl_lag_fail_s);
		if (paused && st < USHER_DIAG_WARN)
			st = USHER_DIAG_WARN;
		if (!receiving)
			st = USHER_DIAG_FAIL;
		usher_diag_add(d->r, st, "postgres.replication", A_REPL,
			       paused ? "replay is paused: SELECT pg_wal_replay_resume() once "
					"whoever paused it is done"
				      : "check the primary's WAL sender and the network; a replica "
					"far behind serves stale seat maps",
			       "this server is a replica: replay %s behind (%.0f bytes)%s, WAL "
			       "receiver %s",
			       isfinite(worst) ? ago(t1, sizeof(t1), worst) : "an unknown time",
			       isfinite(bytes) ? bytes : 0, paused ? ", replay PAUSED" : "",
			       receiving ? cell(r, 0, 1) : "not running");
		PQclear(r);
		return;
	}
	r = qc(d, "postgres.replication",
	       "SELECT coalesce(nullif(application_name, ''), '-'), "
	       "coalesce(host(client_addr), 'local'), state, "
	       "coalesce(extract(epoch FROM replay_lag)::float8, 0), "
	       "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 "
	       "FROM pg_stat_replication ORDER BY 4 DESC");
	if (!r)
		return;
	n = PQntuples(r);
	if (!n) {
		usher_diag_add(d->r, USHER_DIAG_OK, "postgres.replication", A_REPL, NULL,
			       "primary with no replica connected");
		PQclear(r);
		return;
	}
	usher_buf_init(&b, 8192);
	for (i = 0; i < n; i++) {
		if (num(r, i, 3) > worst)
			worst = num(r, i, 3);
		usher_buf_addf(&b, "%s%s (%s) %s: replay lag %s, %.0f bytes behind", i ? "\n" : "",
			       cell(r, i, 0), cell(r, i, 1), cell(r, i, 2),
			       ago(t1, sizeof(t1), num(r, i, 3)), num(r, i, 4));
	}
	f = usher_diag_add(d->r, level(worst, d->th->pg_repl_lag_warn_s, d->th->pg_repl_lag_fail_s),
			   "postgres.replication", A_REPL,
			   "look at the lagging replica's I/O and replay conflicts",
			   "%d replica%s, the furthest behind by %s", n, n == 1 ? "" : "s",
			   ago(t1, sizeof(t1), worst));
	usher_diag_detail(d->r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	PQclear(r);
}

static void check_cache(struct pgd *d)
{
	PGresult *r =
	    qc(d, "postgres.cache_hit",
	       "SELECT sum(blks_hit)::float8, sum(blks_read)::float8 FROM pg_stat_database");
	double hit, read, ratio;

	if (!r)
		return;
	hit = num(r, 0, 0);
	read = num(r, 0, 1);
	PQclear(r);
	if (!(hit + read >= d->th->pg_cache_hit_min_blocks)) {
		usher_diag_add(d->r, USHER_DIAG_OK, "postgres.cache_hit", A_CACHE, NULL,
			       "too few block reads (%.0f) to judge the cache hit ratio",
			       hit + read);
		return;
	}
	ratio = hit / (hit + read);
	usher_diag_add(d->r, ratio < d->th->pg_cache_hit_warn ? USHER_DIAG_WARN : USHER_DIAG_OK,
		       "postgres.cache_hit", A_CACHE,
		       "the working set outgrows shared_buffers: look for sequential scans "
		       "(top statements) or add memory",
		       "buffer cache hit ratio %.2f%% since the statistics were reset",
		       ratio * 100);
}

static void check_statements(struct pgd *d)
{
	PGresult *r = qc(d, "postgres.top_statements",
			 "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'");
	const char *sql;
	struct usher_buf b;
	struct usher_diag_finding *f;
	int i;

	if (!r)
		return;
	if (strcmp(cell(r, 0, 0), "0") == 0) {
		usher_diag_add(d->r, USHER_DIAG_OK, "postgres.top_statements", NULL, NULL,
			       "pg_stat_statements is not installed in this database: "
			       "no top statements");
		PQclear(r);
		return;
	}
	PQclear(r);
	sql = d->version >= 130000
		  ? "SELECT calls, total_exec_time, mean_exec_time, " QTEXT(
			"query") " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 5"
		  : "SELECT calls, total_time, mean_time, " QTEXT(
			"query") " FROM pg_stat_statements ORDER BY total_time DESC LIMIT 5";
	r = q(d, sql);
	if (!r) {
		usher_diag_add(d->r, USHER_DIAG_OK, "postgres.top_statements", NULL, NULL,
			       "pg_stat_statements is installed but cannot be read: %s", d->err);
		return;
	}
	usher_buf_init(&b, 8192);
	for (i = 0; i < PQntuples(r); i++)
		usher_buf_addf(&b, "%s%.0f ms total, %s calls, %.2f ms mean: %s", i ? "\n" : "",
			       num(r, i, 1), cell(r, i, 0), num(r, i, 2), cell(r, i, 3));
	f = usher_diag_add(d->r, USHER_DIAG_OK, "postgres.top_statements", NULL, NULL,
			   "top %d statements by total time (pg_stat_statements)", PQntuples(r));
	usher_diag_detail(d->r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	PQclear(r);
}

static void check_vacuum(struct pgd *d)
{
	char sql[1024];
	PGresult *r;
	struct usher_buf b;
	struct usher_diag_finding *f;
	int i, n, bad = 0, never = 0;

	snprintf(sql, sizeof(sql),
		 "SELECT schemaname || '.' || relname, n_live_tup::float8, n_dead_tup::float8, "
		 "coalesce(greatest(last_vacuum, last_autovacuum)::text, 'never'), "
		 "(SELECT count(*) FROM pg_stat_user_tables WHERE last_vacuum IS NULL AND "
		 "last_autovacuum IS NULL AND n_live_tup + n_dead_tup >= %g) "
		 "FROM pg_stat_user_tables ORDER BY n_dead_tup DESC, 1 LIMIT %d",
		 d->th->pg_dead_min_tuples, TOP_N);
	r = qc(d, "postgres.dead_tuples", sql);
	if (!r)
		return;
	n = PQntuples(r);
	usher_buf_init(&b, 8192);
	for (i = 0; i < n; i++) {
		double live = num(r, i, 1), dead = num(r, i, 2);
		double ratio = live + dead > 0 ? dead / (live + dead) : 0;

		never = atoi_safe(cell(r, i, 4));
		if (dead <= 0)
			continue;
		if (dead >= d->th->pg_dead_min_tuples && ratio >= d->th->pg_dead_ratio_warn)
			bad++;
		usher_buf_addf(&b, "%s%s: %.0f dead of %.0f rows (%.0f%%), last vacuum %s",
			       b.len ? "\n" : "", cell(r, i, 0), dead, live + dead, ratio * 100,
			       cell(r, i, 3));
	}
	f = usher_diag_add(
	    d->r, bad ? USHER_DIAG_WARN : USHER_DIAG_OK, "postgres.dead_tuples", A_DEAD,
	    "autovacuum is not keeping up: look for long transactions holding "
	    "back cleanup, then VACUUM (VERBOSE) the table",
	    "%d table%s over %.0f%% dead rows; %d large table%s never vacuumed", bad,
	    bad == 1 ? "" : "s", d->th->pg_dead_ratio_warn * 100, never, never == 1 ? "" : "s");
	usher_diag_detail(d->r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	PQclear(r);
}

static void check_indexes(struct pgd *d)
{
	PGresult *r = qc(d, "postgres.unused_indexes",
			 "SELECT s.schemaname || '.' || s.indexrelname, s.relname, "
			 "pg_size_pretty(pg_relation_size(s.indexrelid)), "
			 "count(*) OVER () FROM pg_stat_user_indexes s JOIN pg_index i ON "
			 "i.indexrelid = s.indexrelid WHERE s.idx_scan = 0 AND NOT i.indisunique "
			 "AND NOT i.indisprimary ORDER BY pg_relation_size(s.indexrelid) DESC, 1 "
			 "LIMIT 5");
	struct usher_buf b;
	struct usher_diag_finding *f;
	int i, n;

	if (!r)
		return;
	n = PQntuples(r);
	usher_buf_init(&b, 8192);
	for (i = 0; i < n; i++)
		usher_buf_addf(&b, "%s%s on %s, %s", i ? "\n" : "", cell(r, i, 0), cell(r, i, 1),
			       cell(r, i, 2));
	f = usher_diag_add(d->r, USHER_DIAG_OK, "postgres.unused_indexes", NULL, NULL,
			   "%s non-unique index%s never scanned since the statistics were reset",
			   n ? cell(r, 0, 3) : "no",
			   n && strcmp(cell(r, 0, 3), "1") == 0 ? "" : "es");
	usher_diag_detail(d->r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	PQclear(r);
}

static void check_sequences(struct pgd *d)
{
	char sql[1024];
	PGresult *r;
	struct usher_buf b;
	struct usher_diag_finding *f;
	double worst = 0;
	int i, n;

	if (d->version < 100000)
		return; /* pg_sequences came with 10 */
	snprintf(sql, sizeof(sql),
		 "SELECT schemaname || '.' || sequencename, last_value::float8, max_value::float8, "
		 "CASE WHEN increment_by > 0 THEN (last_value::numeric - min_value) / "
		 "nullif(max_value::numeric - min_value, 0) ELSE (max_value::numeric - "
		 "last_value) / nullif(max_value::numeric - min_value, 0) END::float8 AS used "
		 "FROM pg_sequences WHERE last_value IS NOT NULL AND NOT cycle "
		 "ORDER BY used DESC, 1 LIMIT %d",
		 TOP_N);
	r = qc(d, "postgres.sequences", sql);
	if (!r)
		return;
	n = PQntuples(r);
	usher_buf_init(&b, 8192);
	for (i = 0; i < n; i++) {
		double used = num(r, i, 3);

		if (used > worst)
			worst = used;
		if (used >= d->th->pg_seq_warn)
			usher_buf_addf(&b, "%s%s: %.0f of %.0f (%.1f%%)", b.len ? "\n" : "",
				       cell(r, i, 0), num(r, i, 1), num(r, i, 2), used * 100);
	}
	f = usher_diag_add(
	    d->r, level(worst, d->th->pg_seq_warn, d->th->pg_seq_fail), "postgres.sequences", A_SEQ,
	    "ALTER the column and its sequence to bigint before it runs out: "
	    "inserts fail then",
	    n ? "the fullest sequence has used %.1f%% of its range" : "no sequence in use (%.0f%%)",
	    worst * 100);
	usher_diag_detail(d->r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	PQclear(r);
}

static void check_xid(struct pgd *d)
{
	PGresult *r = qc(d, "postgres.xid_wraparound",
			 "SELECT datname, age(datfrozenxid)::float8 FROM pg_database "
			 "ORDER BY 2 DESC, 1 LIMIT 1");
	double age, frac;

	if (!r)
		return;
	age = num(r, 0, 1);
	frac = age / 2147483648.0;
	usher_diag_add(d->r, level(age, d->th->pg_xid_warn, d->th->pg_xid_fail),
		       "postgres.xid_wraparound", A_XID,
		       "VACUUM (FREEZE) the oldest tables of that database, and end whatever "
		       "holds the xmin horizon back (long transactions, stale slots)",
		       "oldest unfrozen transaction ID in %s is %.0f transactions old (%.1f%% of "
		       "the way to wraparound)",
		       cell(r, 0, 0), age, frac * 100);
	PQclear(r);
}

void usher_diag_postgres(const struct usher_probe_conf *pc, const struct usher_diag_opts *opts,
			 int64_t deadline_mono_ms, struct usher_diag_report *r)
{
	const struct usher_pg_opts *o = pc->opts;
	const struct usher_diag_thresholds *th = &opts->th;
	struct pgd d = {.r = r, .th = th, .deadline = deadline_mono_ms};

	d.what = usher_pg_describe(r->arena, o->dsn);
	if (!pg_open(&d, o->dsn)) {
		usher_diag_add(r, USHER_DIAG_FAIL, "postgres.connect", A_DOWN,
			       "check that the server runs, listens and accepts this role "
			       "(pg_hba.conf)",
			       "cannot connect to %s: %s", d.what, d.err);
		PQfinish(d.conn);
		return;
	}
	check_connections(&d);
	check_locks(&d);
	check_sessions(&d, "postgres.long_queries", A_LONG, "'active'", "query_start",
		       th->pg_long_query_warn_s, th->pg_long_query_fail_s, "running",
		       "EXPLAIN the statement; cancel it with pg_cancel_backend(pid) if it is "
		       "runaway");
	check_sessions(&d, "postgres.idle_in_transaction", A_IDLE_TX,
		       "'idle in transaction', 'idle in transaction (aborted)'", "state_change",
		       th->pg_idle_tx_warn_s, th->pg_idle_tx_fail_s, "idle in transaction",
		       "the client opened a transaction and went away: fix the application, "
		       "set idle_in_transaction_session_timeout, or pg_terminate_backend(pid)");
	check_replication(&d);
	check_cache(&d);
	check_statements(&d);
	check_vacuum(&d);
	check_indexes(&d);
	check_sequences(&d);
	check_xid(&d);
	if (!d.conn)
		usher_diag_add(r, USHER_DIAG_WARN, "postgres.deadline", NULL,
			       "raise --timeout, or look at why the server answers slowly",
			       "the checks did not finish within the deadline");
	PQfinish(d.conn);
}
