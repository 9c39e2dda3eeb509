"""The postgres probe against a real PostgreSQL 15 holding the booking
sandbox (examples/sandbox): postgres_exporter's metrics present and sane,
examples/booking-queries.yml's business metrics and invariants, custom-query
failures (bad SQL, max_series, timeouts, non-numeric values, writes), a
wrong password, a refused port, a unix socket; one connection per probe and
no password in any log line."""

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (SOURCE_DIR, expect, failure_reasons, free_port, main, run,  # noqa: E402
                     runs_total, start_usherd, tool, usher_binary, wait_until)
from pgserver import PgServer  # noqa: E402

PASSWORD = "Bk-s3cret-pw-4471"
WRONG = "not-the-pw-9902"
EXAMPLE = SOURCE_DIR / "examples" / "booking-queries.yml"

# Probes added to examples/booking-queries.yml's (the file ends with its
# probes list). {dsn}: the good DSN of the booking database.
EXTRA = """\
  - name: faults
    type: postgres
    dsn: "{dsn}"
    interval: 2s
    timeout: 1500ms
    queries:
      - name: bad_sql
        sql: SELECT count(*) AS n FROM no_such_table
        values: [{{column: n}}]
      - name: too_many
        sql: SELECT g::text AS k, g AS v FROM generate_series(1, 50) g
        labels: [k]
        max_series: 10
        values: [{{column: v}}]
      - name: slow
        sql: SELECT pg_sleep(5) IS NULL AS slept, 1 AS v
        timeout: 300ms
        values: [{{column: v}}]
      - name: words
        sql: SELECT 'sold out' AS v, 7 AS w
        values: [{{column: v}}, {{column: w}}]
      - name: write_attempt
        sql: WITH x AS (INSERT INTO payments (provider, amount_cents, status) VALUES ('stripe', 1, 'pending') RETURNING 1) SELECT count(*) AS n FROM x
        values: [{{column: n}}]
      - name: misnamed
        sql: SELECT 1 AS "Total"
        values: [{{column: total}}]
      - name: session
        sql: |
          SELECT extract(epoch FROM current_setting('statement_timeout')::interval) AS statement_timeout_seconds,
                 current_setting('transaction_read_only') = 'on' AS read_only,
                 current_setting('application_name') AS app,
                 (SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'usher\_%') AS prepared
        labels: [app]
        values: [{{column: statement_timeout_seconds}}, {{column: read_only}}, {{column: prepared}}]
  - name: wrong-password
    type: postgres
    dsn: "{wrong_dsn}"
    interval: 2s
    timeout: 1500ms
  - name: refused
    type: postgres
    dsn: "postgresql://usher@127.0.0.1:{closed}/booking"
    interval: 2s
    timeout: 1500ms
  - name: socket
    type: postgres
    dsn: "host={sockdir} port={port} dbname=postgres user=postgres application_name=usher-socket"
    interval: 2s
    timeout: 1500ms
    max_tables: 0
"""


def example_config(extra):
    text = EXAMPLE.read_text()
    for old, new in (("interval: 15s", "interval: 4s"), ("timeout: 10s", "timeout: 3s")):
        expect(old in text, f"{EXAMPLE} no longer has {old!r}")
        text = text.replace(old, new)
    last_top = [line for line in text.splitlines() if re.match(r"^[a-z_]+:", line)][-1]
    expect(last_top.startswith("probes:"), f"{EXAMPLE} should end with its probes list")
    return text.rstrip("\n") + "\n" + extra


def setup(h):
    pg = PgServer(h).start()
    pg.create_login("usher", PASSWORD, db="booking")
    pg.sql_file(SOURCE_DIR / "examples" / "sandbox" / "schema.sql", db="booking")
    pg.sql_file(SOURCE_DIR / "examples" / "sandbox" / "seed.sql", db="booking")
    pg.sql("GRANT usher_reader TO usher", db="booking")
    dsn = pg.dsn("usher", PASSWORD, "booking")
    wrong_dsn = pg.dsn("usher", WRONG, "booking")
    config = example_config(EXTRA.format(dsn=dsn, wrong_dsn=wrong_dsn, closed=free_port(),
                                         sockdir=pg.sockdir, port=pg.port))
    u = start_usherd(h, config, env={"BOOKING_DB_DSN": dsn})
    m = u.wait_runs(["booking-db", "faults", "wrong-password", "refused", "socket"], runs=2)
    return {"pg": pg, "u": u, "m": m, "dsn": dsn, "instance": f"127.0.0.1:{pg.port}"}


def one(m, name, **labels):
    v = m.value(name, **labels)
    expect(v is not None, f"no sample {name} {labels}")
    return v


# ------------------------------------------------------ server metrics ----

def check_server_metrics(h, ctx):
    m, job = ctx["m"], "booking-db"
    expect(one(m, "pg_up", job=job) == 1, "pg_up should be 1")
    expect(one(m, "probe_success", job=job) == 1,
           f"probe_success should be 1: {failure_reasons(m, job)}")
    static = m.find("pg_static", job=job)
    expect(len(static) == 1 and static[0].labels["version"].startswith("PostgreSQL 15.")
           and re.fullmatch(r"15\.\d+\.0", static[0].labels["short_version"]),
           f"pg_static: {static}")
    start = one(m, "pg_postmaster_start_time_seconds", job=job, process_name="postmaster")
    expect(time.time() - 3600 < start <= time.time(), f"postmaster start time {start}")
    expect(one(m, "pg_replication_is_replica", job=job) == 0, "a primary is no replica")
    expect(one(m, "pg_replication_lag_seconds", job=job) == 0, "a primary has no lag")
    expect(one(m, "pg_settings_max_connections", job=job) == 30, "max_connections is 30")
    expect(one(m, "pg_settings_superuser_reserved_connections", job=job) == 3,
           "superuser_reserved_connections is 3")
    expect(one(m, "pg_settings_autovacuum", job=job) == 1, "autovacuum is on")
    size = one(m, "pg_database_size_bytes", job=job, datname="booking")
    expect(1 << 20 < size < 1 << 30, f"pg_database_size_bytes{{datname=booking}} = {size}")
    expect(not m.find("pg_database_size_bytes", job=job, datname="template0"),
           "template0 takes no connections: no size")
    expect(one(m, "pg_stat_database_xact_commit", job=job, datname="booking") > 0,
           "booking has committed transactions")
    expect(one(m, "pg_stat_database_blks_hit", job=job, datname="booking") > 0, "blks_hit")
    expect(m.find("pg_stat_database_active_time_seconds_total", job=job, datname="booking"),
           "PostgreSQL 15 has active_time")
    expect(not m.find("pg_stat_database_numbackends", job=job, datname="template0"),
           "exclude_databases drops template0")
    active = one(m, "pg_stat_activity_count", job=job, datname="booking", state="active")
    expect(active >= 1, f"usher's own query is active in booking: {active}")
    states = {s.labels["state"] for s in m.find("pg_stat_activity_count", job=job, datname="postgres")}
    expect(states == {"active", "idle", "idle in transaction", "idle in transaction (aborted)",
                      "fastpath function call", "disabled"}, f"activity states: {states}")
    modes = {s.labels["mode"] for s in m.find("pg_locks_count", job=job, datname="booking")}
    expect("accesssharelock" in modes and "accessexclusivelock" in modes and len(modes) == 9,
           f"lock modes: {modes}")
    seats = one(m, "pg_stat_user_tables_n_live_tup", job=job, datname="booking",
                schemaname="public", relname="seats")
    server = int(ctx["pg"].sql("SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'seats'",
                               db="booking"))
    expect(seats == server > 0, f"n_live_tup of seats: {seats}, the server says {server}")
    expect(m.find("pg_stat_user_tables_n_dead_tup", job=job, relname="bookings"), "n_dead_tup")
    expect(m.find("pg_stat_user_tables_last_autovacuum", job=job, relname="bookings"),
           "last_autovacuum")
    lat = one(m, "usher_pg_query_latency_seconds", job=job)
    expect(0 < lat < 0.5, f"SELECT 1 round trip {lat}s")
    for s in m.samples:
        if s.name.startswith("pg_") and s.labels.get("job") == job:
            expect(s.labels.get("instance") == ctx["instance"] and
                   s.labels.get("service") == "booking", f"identity labels: {s}")


def check_types_match_postgres_exporter(h, ctx):
    text = ctx["u"].get("/metrics").text
    for name, typ in (("pg_up", "gauge"), ("pg_static", "untyped"),
                      ("pg_database_size_bytes", "gauge"),
                      ("pg_stat_database_numbackends", "gauge"),
                      # counters under their bare names, as postgres_exporter's
                      # text output (untyped until the registry can say counter)
                      ("pg_stat_database_xact_commit", "untyped"),
                      ("pg_stat_database_active_time_seconds_total", "counter"),
                      ("pg_stat_activity_count", "gauge"), ("pg_locks_count", "gauge"),
                      ("usher_sql_query_errors_total", "counter"),
                      ("booking_payments_failed_total", "counter"),
                      ("booking_event_seats", "gauge")):
        expect(f"# TYPE {name} {typ}\n" in text, f"want # TYPE {name} {typ}")
    expect("\npg_stat_database_xact_commit_total" not in text,
           "postgres_exporter's name has no _total")


def check_promtool_accepts_exposition(h, ctx):
    body = ctx["u"].get("/metrics").body
    r = run([tool("promtool"), "check", "metrics"], input_bytes=body)
    out = (r.stdout + r.stderr).decode(errors="replace")
    # promtool lints counters without _total; postgres_exporter's names are
    # kept on purpose (untyped), so only errors count
    bad = [line for line in out.splitlines() if "error" in line.lower()]
    expect(r.returncode in (0, 3) and not bad, f"promtool check metrics:\n{out}")


def check_one_persistent_connection(h, ctx):
    u, pg = ctx["u"], ctx["pg"]
    m = u.wait_runs(["booking-db"], runs=4)
    expect(one(m, "usher_pg_connections_opened_total", job="booking-db") == 1,
           "the probe reconnected although nothing failed")
    # booking-db and faults use the DSN without application_name: "usher"
    expect(pg.usher_sessions() == 2, f"sessions named usher: {pg.usher_sessions()} (want 2: "
                                     "booking-db, faults)")
    expect(pg.usher_sessions("usher-socket") == 1, "the socket probe's own application_name")


# ------------------------------------------------------ custom queries ----

def check_booking_metrics(h, ctx):
    m, job = ctx["m"], "booking-db"
    want = {("1", "sold"): 12, ("1", "held"): 3, ("1", "free"): 25,
            ("2", "sold"): 5, ("2", "held"): 0, ("2", "free"): 33,
            ("3", "sold"): 0, ("3", "held"): 2, ("3", "free"): 38}
    for (event, state), v in want.items():
        got = one(m, "booking_event_seats", job=job, event_id=event, state=state)
        expect(got == v, f"booking_event_seats{{event_id={event},state={state}}} = {got}, want {v}")
    names = {s.labels["event"] for s in m.find("booking_event_seats", job=job)}
    expect(names == {"The Usherettes - Live", "Swan Lake", "Cup Final"}, f"events: {names}")
    expect(one(m, "booking_holds_expired_unreleased", job=job, event_id="3") == 2,
           "two stale holds on event 3")
    expect(one(m, "booking_holds_expired_unreleased", job=job, event_id="1") == 0, "none on 1")
    age = one(m, "booking_holds_oldest_expired_age_seconds", job=job, event_id="3")
    expect(1790 < age < 1900, f"oldest stale hold expired {age}s ago, want about 30 min")
    expect(not m.find("booking_holds_oldest_expired_age_seconds", job=job, event_id="1"),
           "a NULL age gives no sample")
    for provider, failed, attempts in (("stripe", 2, 8), ("adyen", 1, 7), ("paypal", 0, 6)):
        expect(one(m, "booking_payments_failed_total", job=job, provider=provider) == failed,
               f"failed payments of {provider}")
        expect(one(m, "booking_payments_attempts_total", job=job, provider=provider) == attempts,
               f"payment attempts of {provider}")
    expect(one(m, "booking_bookings_created_total", job=job) == 18, "18 bookings in the seed")
    expect(one(m, "booking_invariant_seats_over_capacity", job=job) == 0, "no overselling")
    expect(one(m, "booking_invariant_seats_double_booked", job=job) == 0, "no double booking")
    for q in ("booking_event", "booking_bookings", "booking_holds", "booking_payments",
              "booking_invariant"):
        errs = sum(s.value for s in m.find("usher_sql_query_errors_total", job=job, query=q))
        expect(errs == 0, f"query {q} had {errs} errors")
        expect(m.find("usher_sql_query_duration_seconds", job=job, query=q), f"{q} duration")


def check_invariants_catch_oversell(h, ctx):
    u, pg, job = ctx["u"], ctx["pg"], "booking-db"
    # a second confirmed booking of event 1's seat A1, then a capacity cut
    pg.sql("INSERT INTO bookings (event_id, seat_id, customer_email) "
           "SELECT event_id, id, 'dup@example.com' FROM seats WHERE event_id = 1 AND label = 'A1'",
           db="booking")

    def doubled():
        m = u.metrics()
        return m.value("booking_invariant_seats_double_booked", job=job) == 1 and m

    m = wait_until(doubled, 20, "seats_double_booked to become 1")
    expect(one(m, "booking_invariant_seats_over_capacity", job=job) == 0, "still within capacity")
    expect(one(m, "booking_bookings_per_minute", job=job) >= 1, "a booking within the minute")
    pg.sql("UPDATE events SET capacity = 10 WHERE id = 1", db="booking")

    def over():
        m = u.metrics()
        return m.value("booking_invariant_seats_over_capacity", job=job) == 3 and m

    m = wait_until(over, 20, "seats_over_capacity to become 3 (13 sold, capacity 10)")
    expect(one(m, "booking_event_seats", job=job, event_id="1", state="free") == 0,
           "free seats never go negative")
    pg.sql("DELETE FROM bookings WHERE customer_email = 'dup@example.com'", db="booking")
    pg.sql("UPDATE events SET capacity = 40 WHERE id = 1", db="booking")
    wait_until(lambda: u.metrics().value("booking_invariant_seats_over_capacity", job=job) == 0,
               20, "the invariants to be back at 0")


def check_min_interval_serves_cached_result(h, ctx):
    u, pg, job = ctx["u"], ctx["pg"], "booking-db"

    def duration():
        return u.metrics().value("usher_sql_query_duration_seconds", job=job,
                                 query="booking_payments")

    # the duration changes only when the query really runs: wait for a run,
    # so the next 30s are served from the cache
    d0 = duration()
    wait_until(lambda: duration() != d0, 45, "booking_payments to run again (min_interval 30s)")
    refreshed = time.monotonic()
    before = one(u.metrics(), "booking_payments_failed_total", job=job, provider="paypal")
    pg.sql("INSERT INTO payments (provider, amount_cents, status, failure_code) "
           "VALUES ('paypal', 100, 'failed', 'declined')", db="booking")
    m = u.wait_runs([job], runs=runs_total(u.metrics(), job) + 2, timeout=30)
    if time.monotonic() - refreshed < 25:
        expect(one(m, "booking_payments_failed_total", job=job, provider="paypal") == before,
               "booking_payments has min_interval 30s: the cached result should be served")
        expect(one(m, "usher_sql_query_duration_seconds", job=job, query="booking_payments")
               == duration(), "the cached query ran")
    wait_until(lambda: u.metrics().value("booking_payments_failed_total", job=job,
                                         provider="paypal") == before + 1,
               45, "the new failed payment after min_interval")


def check_query_failures_are_isolated(h, ctx):
    m, job = ctx["u"].metrics(), "faults"
    expect(one(m, "pg_up", job=job) == 1, "pg_up of the faults probe")
    expect(one(m, "probe_success", job=job) == 1,
           f"custom query errors must not fail the probe: {failure_reasons(m, job)}")

    def errors(query, reason):
        return m.value("usher_sql_query_errors_total", job=job, query=query, reason=reason) or 0

    runs = runs_total(m, job)
    expect(errors("bad_sql", "query") >= runs - 1 >= 1, "bad_sql counts reason=query every run")
    expect(errors("too_many", "max_series") >= 1, "too_many counts reason=max_series")
    expect(not m.find("too_many_v", job=job), "a result over max_series exposes nothing")
    expect(errors("slow", "timeout") >= 1, "slow counts reason=timeout")
    expect(not m.find("slow_v", job=job), "a timed-out query exposes nothing")
    expect(errors("words", "non_numeric") >= 1, "words counts reason=non_numeric")
    expect(not m.find("words_v", job=job) and one(m, "words_w", job=job) == 7,
           "the non-numeric cell is skipped, its neighbour kept")
    expect(errors("write_attempt", "query") >= 1, "a write fails: the session is read-only")
    expect(errors("misnamed", "missing_column") >= 1, "misnamed counts missing_column")
    # the queries after the failing ones ran
    expect(one(m, "session_statement_timeout_seconds", job=job, app="usher") == 1.5,
           "statement_timeout is the probe's timeout (1.5s)")
    expect(one(m, "session_read_only", job=job, app="usher") == 1, "the session is read-only")
    expect(one(m, "session_prepared", job=job, app="usher") == 7,
           "the seven built-in statements are prepared on the connection")
    # the slow query was cancelled, not left running on the server
    busy = ctx["pg"].sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'usher' "
                         "AND query LIKE '%pg_sleep(5)%' AND state = 'active'")
    expect(int(busy) == 0, "pg_sleep(5) still runs on the server: the cancel did not happen")
    # nothing but the failures themselves in the log, once per query
    logged = [e for e in ctx["u"].events() if e.get("event.action") == "sql-query-failed"]
    per_query = {}
    for e in logged:
        per_query[e["usher.sql.query"]] = per_query.get(e["usher.sql.query"], 0) + 1
    expect(set(per_query) >= {"bad_sql", "too_many", "slow", "write_attempt", "misnamed"},
           f"failed queries logged: {per_query}")
    expect(max(per_query.values()) == 1, f"repeated failures are rate-limited: {per_query}")
    bad = next(e for e in logged if e["usher.sql.query"] == "bad_sql")
    expect("no_such_table" in bad["error.message"] and "42P01" in bad["error.message"],
           f"the log says why: {bad['error.message']}")


def check_wrong_password_is_auth(h, ctx):
    m, job = ctx["u"].metrics(), "wrong-password"
    expect(one(m, "pg_up", job=job) == 0, "pg_up 0 with a wrong password")
    expect(one(m, "probe_success", job=job) == 0, "probe_success 0")
    expect(failure_reasons(m, job) == ["auth"], f"reason: {failure_reasons(m, job)}")
    expect(one(m, "usher_pg_connections_opened_total", job=job) == 0, "never connected")


def check_refused_is_connect(h, ctx):
    m, job = ctx["u"].metrics(), "refused"
    expect(one(m, "pg_up", job=job) == 0, "pg_up 0 on a closed port")
    expect(failure_reasons(m, job) == ["connect"], f"reason: {failure_reasons(m, job)}")
    fails = [e for e in ctx["u"].events() if e.get("event.action") == "probe-failed"
             and e.get("usher.probe.name") == "refused"]
    expect(fails and "Connection refused" in fails[0]["error.message"],
           f"the log says connection refused: {fails[:1]}")


def check_unix_socket(h, ctx):
    m, pg = ctx["u"].metrics(), ctx["pg"]
    expect(one(m, "pg_up", job="socket") == 1, "pg_up over the unix socket")
    inst = m.find("pg_up", job="socket")[0].labels["instance"]
    expect(inst == f"{pg.sockdir}:{pg.port}", f"instance of a socket DSN: {inst}")
    expect(not m.find("pg_stat_user_tables_n_live_tup", job="socket"), "max_tables: 0")


def check_no_password_in_logs(h, ctx):
    out = ctx["u"].proc.stdout() + ctx["u"].proc.stderr()
    expect(PASSWORD not in out and WRONG not in out, "a password shows in usherd's output")
    expect("usher:***@127.0.0.1" in out, "connections are logged with the password redacted")


def check_reload_keeps_series_and_one_connection(h, ctx):
    u, pg, job = ctx["u"], ctx["pg"], "booking-db"
    n0 = len([e for e in u.events() if e.get("event.action") == "config-reload"])
    u.reload()
    # right after the reload the rebuilt probes serve the sets of the old
    # ones, custom families included, until their first runs
    seen = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        m = u.metrics()
        seen.append(m.value("booking_event_seats", job=job, event_id="1", state="sold"))
        time.sleep(0.05)
    expect(all(v == 12 for v in seen), f"booking_event_seats across the reload: {set(seen)}")
    wait_until(lambda: len([e for e in u.events() if e.get("event.action") == "config-reload"])
               > n0, 20, "the reload to be logged")
    m = u.wait_runs([job], runs=runs_total(u.metrics(), job) + 2)
    expect(one(m, "pg_up", job=job) == 1, "pg_up after the reload")
    # the old connections are closed, the new probes have one each
    wait_until(lambda: pg.usher_sessions() == 2, 10, "two usher sessions (booking-db, faults)")


def check_example_passes_check_config(h, ctx):
    usher = usher_binary("USHER", "usher")
    r = run([usher, "check-config", str(EXAMPLE)],
            env={"BOOKING_DB_DSN": ctx["dsn"], "PATH": "/usr/bin:/bin"})
    out = (r.stdout + r.stderr).decode(errors="replace")
    expect(r.returncode == 0, f"usher check-config {EXAMPLE}: exit {r.returncode}:\n{out}")
    expect(PASSWORD not in out, "check-config echoed the password")


if __name__ == "__main__":
    main("postgres_probe", setup, [
        check_server_metrics,
        check_types_match_postgres_exporter,
        check_promtool_accepts_exposition,
        check_one_persistent_connection,
        check_booking_metrics,
        check_invariants_catch_oversell,
        check_min_interval_serves_cached_result,
        check_query_failures_are_isolated,
        check_wrong_password_is_auth,
        check_refused_is_connect,
        check_unix_socket,
        check_no_password_in_logs,
        check_reload_keeps_series_and_one_connection,
        check_example_passes_check_config,
    ])
