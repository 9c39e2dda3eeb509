"""The booking sandbox for the pack's tests: PostgreSQL holding the booking
schema and seed (examples/sandbox), Redis holding seat holds with TTLs,
memcached, the booking API fixture, a traffic generator and a booking
journey, a real `usher backup postgres`, `usher backup verify` and `usher dr
drill` of the database leaving their results in the textfile directory, and
usherd probing and scraping all of it with the pack's rule files loaded and
alerts delivered to a local webhook sink. Everything runs on loopback on
free ports and is stopped by the harness at cleanup.

Run it by hand to look at the metrics the pack is written against:

    USHERD=build/bin/usherd USHER=build/bin/usher python3 tests/pack/sandbox.py
"""

import os
import random
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
from harness import (SOURCE_DIR, Fatal, expect, free_port, http, start_usherd,  # noqa: E402
                     wait_until)
from cacheservers import Memcached, RedisServer, seed  # noqa: E402
from pgserver import PgServer  # noqa: E402

PASSWORD = "Pack-s3cret-8812"
QUERIES = SOURCE_DIR / "examples" / "booking-queries.yml"

USHER_CONFIG = """\
global: {{scrape_interval: 2s, evaluation_interval: 2s, external_labels: {{site: sandbox}}}}
textfile_dir: {textfile}
{rule_files}scrape_configs:
  - job_name: booking-api
    scrape_interval: 2s
    scrape_timeout: 1s
    static_configs: [{{targets: ["127.0.0.1:{api}"], labels: {{service: booking-api}}}}]
probes:
  - name: booking-api-health
    type: http
    url: http://127.0.0.1:{api}/health
    timeout: 1s
    labels: {{service: booking-api}}
    json:
      - {{pointer: /status, equals: ok}}
  - name: booking-api-events
    type: http
    url: http://127.0.0.1:{api}/api/events
    timeout: 1s
    labels: {{service: booking-api}}
  - name: booking-api-seats
    type: http
    url: http://127.0.0.1:{api}/api/events/1/seats
    timeout: 1s
    labels: {{service: booking-api}}
  # A partner's feed that is down for good: a probe failing all the time,
  # so the failure panels have data (no alert of the pack pages for it).
  - name: partner-feed
    type: http
    url: http://127.0.0.1:{closed}/feed
    timeout: 1s
    labels: {{service: partner-feed}}
  - name: seat-cache
    type: redis
    address: "127.0.0.1:{redis}"
    timeout: 1s
    labels: {{service: booking-cache}}
    key_patterns: ["hold:*"]
  - name: sessions
    type: memcached
    address: "127.0.0.1:{memcached}"
    timeout: 1s
    labels: {{service: booking-sessions}}
  - name: host
    type: host
    timeout: 1s
{pg_probe}"""


WRAPAROUND_QUERY = """\
      - name: pg_database_wraparound
        timeout: 2s
        sql: |
          SELECT datname, age(datfrozenxid) AS age_datfrozenxid_seconds
          FROM pg_database WHERE datallowconn
        labels: [datname]
        values:
          - column: age_datfrozenxid_seconds
            help: Age of the oldest unfrozen transaction ID of the database, in transactions
"""


def pg_probe_from_example(dsn):
    """The booking-db probe of examples/booking-queries.yml (its custom
    queries included), pointed at dsn and run every 4 s."""
    text = QUERIES.read_text()
    start = text.index("probes:\n") + len("probes:\n")
    probe = text[start:]
    for old, new in (('"${env:BOOKING_DB_DSN}"', f'"{dsn}"'), ("interval: 15s", "interval: 4s"),
                     ("timeout: 10s", "timeout: 3s"), ("min_interval: 30s", "min_interval: 4s"),
                     ("database_size_interval: 5m", "database_size_interval: 4s")):
        expect(old in probe, f"{QUERIES} no longer has {old!r}")
        probe = probe.replace(old, new)
    # the custom query runbooks/PostgresXidWraparound.md asks for
    return probe.rstrip("\n") + "\n" + WRAPAROUND_QUERY


def backup_textfile(now):
    """What `usher backup` and `usher dr drill` leave in textfile_dir
    (issue 6's metric names), for a backup taken an hour ago."""
    return f"""\
# HELP usher_backup_last_success_timestamp_seconds When the last successful backup of the target finished.
# TYPE usher_backup_last_success_timestamp_seconds gauge
usher_backup_last_success_timestamp_seconds{{target="booking-db"}} {now - 3600:.0f}
# HELP usher_backup_last_size_bytes Stored size of the last backup.
# TYPE usher_backup_last_size_bytes gauge
usher_backup_last_size_bytes{{target="booking-db"}} 1048576
# HELP usher_backup_last_duration_seconds How long the last backup took.
# TYPE usher_backup_last_duration_seconds gauge
usher_backup_last_duration_seconds{{target="booking-db"}} 12.5
# HELP usher_backup_last_status 1 if the last backup succeeded, 0 if it failed.
# TYPE usher_backup_last_status gauge
usher_backup_last_status{{target="booking-db"}} 1
# HELP usher_dr_drill_last_success_timestamp_seconds When the last successful restore drill finished.
# TYPE usher_dr_drill_last_success_timestamp_seconds gauge
usher_dr_drill_last_success_timestamp_seconds{{target="booking-db"}} {now - 86400:.0f}
# HELP usher_dr_drill_rto_seconds Time the last restore drill took (recovery time).
# TYPE usher_dr_drill_rto_seconds gauge
usher_dr_drill_rto_seconds{{target="booking-db"}} 95
# HELP usher_dr_drill_rpo_seconds Age of the data the last restore drill restored (recovery point).
# TYPE usher_dr_drill_rpo_seconds gauge
usher_dr_drill_rpo_seconds{{target="booking-db"}} 3700
# HELP usher_dr_drill_last_status 1 if the last drill succeeded, 0 if it failed.
# TYPE usher_dr_drill_last_status gauge
usher_dr_drill_last_status{{target="booking-db"}} 1
# HELP usher_backup_verify_last_status 1 if the last verify passed, 0 if it failed.
# TYPE usher_backup_verify_last_status gauge
usher_backup_verify_last_status{{target="booking-db"}} 1
"""


DB_TRAFFIC = """\
INSERT INTO bookings (event_id, seat_id, customer_email, status)
SELECT event_id, id, 'traffic@example.com', 'cancelled' FROM seats ORDER BY random() LIMIT 1;
INSERT INTO payments (provider, amount_cents, status)
SELECT p, 6500, 'succeeded' FROM unnest(ARRAY['stripe', 'adyen', 'paypal']) AS p;
"""


class Traffic:
    """Customers on the booking API: list events, load seat maps, hold a
    seat, then check out or release it (events 1 and 2; event 3 is left to
    the journey probe); a few requests a second. Beside
    them, every few seconds, a (cancelled, so no invariant breaks) booking
    and three successful payments in the database (the seed holds the
    failed ones), a session in memcached and a seat-hold lookup in Redis."""

    def __init__(self, h, base, pg=None, memcached=None, redis=None):
        self.base = base
        self.pg = pg
        self.memcached = memcached
        self.redis = redis
        self.stop = threading.Event()
        self.requests = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        h.on_cleanup(self.close)

    def _get(self, path):
        self.requests += 1
        return http(self.base + path, timeout=5)

    def _backends(self, n):
        if self.pg and n % 8 == 0:
            self.pg.try_sql(DB_TRAFFIC, db="booking", timeout=10)
        if self.memcached:
            key = f"session:{n % 50}"
            self.memcached.command(f"set {key} 0 300 5\r\nhello", timeout=5)
            self.memcached.command(f"get {key}", end=b"END\r\n", timeout=5)
        if self.redis:
            # seat-hold lookups: hold:1..40 exist (seeded), hold:41.. do not
            c = self.redis.client(timeout=5)
            try:
                c.call("GET", f"hold:{n % 50 + 1}")
            finally:
                c.close()

    def _run(self):
        rng = random.Random(8)
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                self._backends(n)
                self._get("/api/events")
                event = rng.randint(1, 2)  # event 3 is the journey's
                seats = self._get(f"/api/events/{event}/seats")
                free = [s["seat"] for s in seats.json().get("seats", []) if s["state"] == "free"] \
                    if seats.status == 200 else []
                if free:
                    self.requests += 1
                    r = http(self.base + "/api/holds", method="POST",
                             data={"event_id": event, "seat": rng.choice(free)}, timeout=5)
                    if r.status == 201:
                        hold = r.json()["hold_id"]
                        self.requests += 1
                        if rng.random() < 0.2 and len(free) > 10:  # never sell out
                            http(self.base + "/api/checkout", method="POST",
                                 data={"hold_id": hold}, timeout=5)
                        else:
                            http(self.base + f"/api/holds/{hold}", method="DELETE", timeout=5)
            except (OSError, ValueError):
                pass
            self.stop.wait(0.25)

    def close(self):
        self.stop.set()
        self.thread.join(10)


# Minimal configs that only a usherd with the feature accepts.
FEATURE_PROBES = {
    "rule_files": "rule_files: [{source}/rules/*.yml]\n",
    "journey": """\
probes:
  - name: j
    type: journey
    base_url: http://127.0.0.1:9
    steps:
      - name: a
        request: {{method: GET, url: /}}
""",
    "alerting": """\
alerting:
  route: {{receiver: r}}
  receivers:
    - name: r
      webhook_configs: [{{url: "http://127.0.0.1:9/"}}]
""",
}

JOURNEY_PROBE = """\
  - name: book-a-seat
    type: journey
    base_url: http://127.0.0.1:{api}
    interval: 4s
    timeout: 3s
    labels: {{service: booking-api}}
    steps:
      - name: search
        request: {{method: GET, url: /api/events}}
        expect: {{valid_status_codes: [200]}}
      - name: seatmap
        request: {{method: GET, url: /api/events/3/seats}}
        expect: {{valid_status_codes: [200]}}
      - name: hold
        request: {{method: POST, url: /api/holds, json: {{event_id: 3, seat: "D10"}}}}
        expect: {{valid_status_codes: [201]}}
        extract: {{hold_id: {{json: /hold_id}}}}
      - name: release
        always: true
        request: {{method: DELETE, url: "/api/holds/{{{{hold_id}}}}"}}
        expect: {{valid_status_codes: [204]}}
"""

ALERTING = """\
alerting:
  # every group opens an incident here, so the Watchdog alone gives the
  # incident panels something to show
  # and a short repeat keeps notifications (and their metrics) flowing
  route: {{receiver: sink, group_wait: 1s, group_interval: 2s, repeat_interval: 4s, incident: true}}
  receivers:
    - name: sink
      webhook_configs: [{{url: "http://127.0.0.1:{port}/alerts"}}]
"""


def detect_features(h):
    """Which of the features other issues are adding this usherd has:
    {"rule_files": bool, "journey": bool, "alerting": bool}."""
    from harness import run, usher_binary
    found = {}
    for name, text in FEATURE_PROBES.items():
        cfg = h.write(f"feature-{name}.yml", text.format(source=SOURCE_DIR))
        found[name] = run([usher_binary("USHERD", "usherd"), "--config", cfg, "--check"]).returncode == 0
    return found


class AlertSink:
    """A webhook receiver on loopback that keeps every payload it gets."""

    def __init__(self, h):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        sink = self
        self.payloads = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.payloads.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
        h.on_cleanup(self.close)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


BACKUP_CONFIG = """\
textfile_dir: {textfile}
probes:
  - {{name: booking-db, type: postgres, dsn: "{dsn}"}}
backup:
  repository: {repo}
  encryption_key: "${{file:{key}}}"
  targets: [booking-db]
  drill:
    scratch_dsn: "{scratch}"
    sanity_sql:
      - "SELECT count(*) > 0 FROM bookings"
      - "SELECT NOT EXISTS (SELECT 1 FROM bookings b LEFT JOIN seats s ON s.id = b.seat_id WHERE s.id IS NULL)"
"""


def real_backup(h, pg, textfile):
    """`usher backup postgres`, `usher backup verify` and `usher dr drill` of
    the booking database (issue 6's commands), which leave their results in
    textfile for usherd to export, as they do in production. As the
    superuser over the socket: the probe's role only reads the tables."""
    from harness import run, usher_binary
    usher = usher_binary("USHER", "usher")
    key = h.write("backup.key", os.urandom(32).hex() + "\n", mode=0o600)
    sock = f"host={pg.sockdir} port={pg.port} user=postgres"
    cfg = h.write("usher-backup.yml", BACKUP_CONFIG.format(
        textfile=textfile, dsn=f"{sock} dbname=booking", repo=h.path("backup-repo"), key=key,
        scratch=f"{sock} dbname=postgres"))
    for argv in (["backup", "postgres", "--quiet"], ["backup", "verify", "--all"], ["dr", "drill"]):
        r = run([usher, *argv, "--config", cfg], timeout=120)
        expect(r.returncode == 0, f"usher {' '.join(argv)}: exit {r.returncode}:\n"
                                  f"{(r.stdout + r.stderr).decode(errors='replace')[-2000:]}")


def start(h, usher_env=None, features=None, backup=True):
    """Brings the whole sandbox up; returns a dict with the servers, usherd
    (u) and the booking API's base URL. features (from detect_features()) says what
    to configure beyond probes: the pack's rule_files, a booking journey,
    alert delivery to a local webhook sink; by default what usherd takes."""
    pg = PgServer(h).start()
    pg.create_login("usher", PASSWORD, db="booking")
    pg.sql_file(SOURCE_DIR / "examples" / "sandbox" / "schema.sql", db="booking")
    pg.sql_file(SOURCE_DIR / "examples" / "sandbox" / "seed.sql", db="booking")
    pg.sql("GRANT usher_reader TO usher", db="booking")
    dsn = pg.dsn("usher", PASSWORD, "booking")

    redis = RedisServer(h, extra="maxmemory 64mb\nmaxmemory-policy volatile-lru\n")
    seed(redis, "hold:", 40, ttl=600)
    mc = Memcached(h)

    api_port = free_port()
    api = h.spawn("booking-api", [sys.executable, SOURCE_DIR / "examples" / "sandbox" /
                                  "booking_api.py", "--port", api_port, "--hold-ttl", "30"])
    base = f"http://127.0.0.1:{api_port}"

    def api_up():
        if not api.alive():
            raise Fatal(f"booking API exited:\n{api.tail()}")
        return http(base + "/health", timeout=2).status == 200

    wait_until(api_up, 30, "the booking API to answer /health")
    traffic = Traffic(h, base, pg=pg, memcached=mc, redis=redis)

    textfile = h.path("textfile")
    textfile.mkdir()
    if backup:
        real_backup(h, pg, textfile)
    else:
        (textfile / "backup-booking-db.prom").write_text(backup_textfile(time.time()))

    if features is None:
        features = detect_features(h)
    extra = ""
    if features.get("rule_files"):
        extra += f"rule_files: [{SOURCE_DIR}/alerts/*.yml, {SOURCE_DIR}/rules/*.yml]\n"
    sink = None
    if features.get("alerting"):
        sink = AlertSink(h)
        extra += ALERTING.format(port=sink.port)
    probes_extra = JOURNEY_PROBE.format(api=api_port) if features.get("journey") else ""
    config = USHER_CONFIG.format(textfile=textfile, rule_files=extra, api=api_port, closed=free_port(), redis=redis.port,
                                 memcached=mc.port, pg_probe=pg_probe_from_example(dsn) + probes_extra)
    u = start_usherd(h, config, env=usher_env)
    u.wait_runs(["booking-api-health", "booking-db", "seat-cache", "sessions", "host"], runs=1,
                timeout=90)
    return {"pg": pg, "redis": redis, "memcached": mc, "api": base, "u": u, "traffic": traffic,
            "dsn": dsn, "textfile": textfile, "features": features, "sink": sink}


if __name__ == "__main__":
    from harness import Harness
    with Harness("pack-sandbox") as h:
        sb = start(h)
        print(f"usherd: {sb['u'].url}/metrics   booking API: {sb['api']}", flush=True)
        if os.environ.get("PACK_SANDBOX_DUMP"):
            time.sleep(6)
            Path(os.environ["PACK_SANDBOX_DUMP"]).write_text(sb["u"].get("/metrics").text)
        else:
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
