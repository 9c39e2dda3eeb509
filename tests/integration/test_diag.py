"""usher diag against a real PostgreSQL 15 and redis-server on loopback, and
a small HTTP server: a healthy platform exits 0 with ✓ rows; a lock chain
(one session holding a row lock in an open transaction, another waiting on
it) is named, blocker pid and query, and exits 1 (degraded) as documented;
pg_stat_statements' top statements show when installed; a Redis that is
down exits 2 with its ✗ row; --json has the documented structure; piped
output has no ANSI escapes (and --color=always has them); unknown probe
names and invalid configs exit 2."""

import json
import os
import pty
import re
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cacheservers import Memcached, RedisServer, seed  # noqa: E402
from harness import (SANITIZER_MARKERS, SOURCE_DIR, TIME_SCALE, Certs, expect,  # noqa: E402
                     free_port, main, usher_binary, wait_until)
from pgserver import PgServer  # noqa: E402


class Replica(PgServer):
    """A streaming replica of primary: pg_basebackup -R instead of initdb."""

    def __init__(self, h, primary, name="replica"):
        self.primary = primary
        super().__init__(h, name=name)

    def _initdb(self):
        p = self.primary
        r = subprocess.run(self.as_postgres([self.bin / "pg_basebackup", "-h", p.sockdir,
                                             "-p", p.port, "-U", "postgres", "-D", self.data,
                                             "-R", "-X", "stream", "-c", "fast", "--no-sync"]),
                           capture_output=True, timeout=120 * TIME_SCALE,
                           env={**os.environ, "HOME": str(self.dir)}, check=False)
        expect(r.returncode == 0, f"pg_basebackup failed ({r.returncode}):\n"
                                  f"{r.stderr.decode(errors='replace')[-2000:]}")

PASSWORD = "diag-Pw-7731"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STATUSES = {"ok", "warn", "fail"}


def alert_pack_runbook_base():
    """Where alerts/postgresql.yml's runbook_url of PostgresDown points,
    minus the file name: diag's default must link the same pages."""
    text = (SOURCE_DIR / "alerts" / "postgresql.yml").read_text()
    m = re.search(r"runbook_url:\s*[\"']?(\S+/)PostgresDown\.md", text)
    expect(m, "alerts/postgresql.yml has no runbook_url for PostgresDown")
    return m.group(1)

CONFIG = """\
probes:
  - {{name: main-db, type: postgres, dsn: "{dsn}", timeout: 3s}}
  - {{name: seat-cache, type: redis, address: "127.0.0.1:{redis}", timeout: 2s}}
  - {{name: api, type: http, url: "http://127.0.0.1:{http}/health", timeout: 2s}}
"""

# A journey whose middle step fails: diag NAME prints every step.
JOURNEY = """\
  - name: buy
    type: journey
    timeout: 5s
    base_url: "http://127.0.0.1:{http}"
    variables: {{api_key: "${{env:DIAG_IT_API_KEY}}"}}
    headers: {{X-Api-Key: "{{{{api_key}}}}"}}
    steps:
      - name: search
        request: {{url: /health}}
        extract: {{state: {{json: /status}}}}
      - name: hold
        request: {{url: "/missing?state={{{{state}}}}"}}
      - name: release
        always: true
        request: {{url: "/health?release={{{{state}}}}"}}
"""
API_KEY = "k3y-diag-5529-secret"


SLOW_S = 1.0


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status":"ok"}'
        if self.path.startswith("/slow"):
            time.sleep(SLOW_S)
        self.send_response(404 if self.path.startswith("/missing") else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def diag(ctx, *args, env=None, timeout=60):
    """Runs usher diag with ctx's config; returns (rc, stdout, stderr)."""
    e = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    e.pop("NO_COLOR", None)
    e.pop("USHER_RUNBOOK_BASE_URL", None)
    e.update(env or {})
    p = subprocess.run([ctx["usher"], "diag", "--config", str(ctx["config"]), *args],
                       capture_output=True, timeout=timeout * TIME_SCALE, env=e, check=False)
    out, err = p.stdout.decode(), p.stderr.decode()
    for m in SANITIZER_MARKERS:
        expect(m not in err, f"sanitizer report from usher diag:\n{err[-4000:]}")
    return p.returncode, out, err


def on_tty(ctx, env):
    """usher diag's output when its standard output is a terminal (a pty)."""
    master, slave = pty.openpty()
    e = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", **env}
    if "NO_COLOR" not in env:
        e.pop("NO_COLOR", None)
    try:
        p = subprocess.Popen([ctx["usher"], "diag", "--config", str(ctx["config"])],
                             stdout=slave, stderr=subprocess.PIPE, env=e)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            chunks.append(data)
        p.wait(60 * TIME_SCALE)
        return b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)


def probe(doc, name):
    found = [p for p in doc["probes"] if p["name"] == name]
    expect(len(found) == 1, f"probe {name} not once in the JSON: {[p['name'] for p in doc['probes']]}")
    return found[0]


def finding(p, check):
    found = [f for f in p["findings"] if f["check"] == check]
    expect(found, f"no {check} finding for {p['name']}: {[f['check'] for f in p['findings']]}")
    return found[0]


def setup(h):
    pg = PgServer(h).start(shared_preload_libraries="pg_stat_statements")
    pg.create_login("usher", PASSWORD, db="booking")
    pg.sql("CREATE EXTENSION pg_stat_statements", db="booking")
    pg.sql("CREATE TABLE seats (id serial PRIMARY KEY, event text NOT NULL, "
           "status text NOT NULL DEFAULT 'free'); "
           "INSERT INTO seats (event) SELECT 'gala-' || g FROM generate_series(1, 200) g; "
           "ALTER TABLE seats OWNER TO usher", db="booking")
    redis = RedisServer(h, extra="maxmemory 64mb\nmaxmemory-policy allkeys-lru\n")
    seed(redis, "hold:", 200)
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), _Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    h.on_cleanup(httpd.shutdown)
    config = h.write("usher.yml", CONFIG.format(dsn=pg.dsn("usher", PASSWORD, db="booking"),
                                                redis=redis.port,
                                                http=httpd.server_address[1]))
    return {"pg": pg, "redis": redis, "config": config, "h": h,
            "usher": usher_binary("USHER", "usher"), "runbooks": alert_pack_runbook_base(),
            "http_port": httpd.server_address[1]}


def check_healthy_exit_0_plain_when_piped(h, ctx):
    rc, out, err = diag(ctx)
    expect(rc == 0, f"a healthy platform exits {rc}, not 0:\n{out}\n{err}")
    for name in ("main-db", "seat-cache", "api"):
        expect(re.search(rf"^✓ {re.escape(name)}\s", out, re.M),
               f"no ✓ row for {name}:\n{out}")
    expect(not ANSI.search(out), f"piped output has ANSI escapes:\n{out!r}")
    expect("3 probes: 3 ok, 0 degraded, 0 failed" in out, f"no summary line:\n{out}")
    # the deep checks ran: one line each
    for check in ("postgres.connections", "postgres.locks", "postgres.xid_wraparound",
                  "postgres.sequences", "redis.memory", "redis.persistence",
                  "redis.big_keys", "http.timings"):
        expect(f"{check}:" in out, f"no {check} line:\n{out}")
    expect(re.search(r"redis\.memory: .* of maxmemory 64\.0 MiB .*policy allkeys-lru", out),
           f"memory vs maxmemory and the policy not shown:\n{out}")
    # on a terminal: colours, unless NO_COLOR says otherwise
    for no_color, want in ((None, True), ("1", False)):
        tty = on_tty(ctx, {"NO_COLOR": no_color} if no_color else {})
        expect("✓ " in ANSI.sub("", tty) and bool(ANSI.search(tty)) == want,
               f"on a terminal with NO_COLOR={no_color}: colours {bool(ANSI.search(tty))}:\n"
               f"{tty!r}")
    # NO_COLOR has no say when piped, and --color=always colours even then
    rc, coloured, _ = diag(ctx, "--color", "always")
    expect(rc == 0 and ANSI.search(coloured), f"--color=always has no ANSI escapes:\n{coloured!r}")
    rc, plain, _ = diag(ctx, "--color", "always", env={"LANG": "C", "LC_ALL": "C"})
    expect("OK" in plain and "✓" not in plain, f"a non-UTF-8 locale still gets ✓:\n{plain}")


def check_named_probe_prints_its_trace(h, ctx):
    rc, out, err = diag(ctx, "api")
    expect(rc == 0 and re.search(r"^✓ api\s", out, re.M), f"diag api: rc {rc}\n{out}\n{err}")
    url = f"http://127.0.0.1:{ctx['http_port']}/health"
    expect(re.search(rf"^    trace:\n      GET {re.escape(url)}\b.*200", out, re.M),
           f"no trace of the request under the named probe's row:\n{out}")
    rc, out, err = diag(ctx, "--json", "-v")
    doc = json.loads(out)
    trace = probe(doc, "api")["trace"]
    expect(isinstance(trace, list) and any(url in x for x in trace),
           f"-v: no trace in the JSON: {trace!r}")
    rc, out, err = diag(ctx, "--json")
    expect(probe(json.loads(out), "api")["trace"] is None, "a trace without a name or -v")


def check_journey_steps_traced(h, ctx):
    """issue 9: diag NAME on a journey prints each step's request line,
    status and timings and the extracted variables, secrets never shown."""
    config = h.write("journey.yml", ctx["config"].read_text() + JOURNEY.format(
        http=ctx["http_port"]))
    c = {**ctx, "config": config}
    rc, out, err = diag(c, "buy", env={"DIAG_IT_API_KEY": API_KEY})
    expect(rc == 2 and re.search(r"^✗ buy\s+journey\s", out, re.M),
           f"a failing journey: rc {rc}\n{out}\n{err}")
    trace = out[out.index("    trace:\n"):]
    base = f"http://127.0.0.1:{ctx['http_port']}"
    expect(re.search(rf"step 1/3 search: GET {re.escape(base)}/health .*200.*extracted state=ok",
                     trace), f"step 1 not traced with its extraction:\n{trace}")
    expect(re.search(r"step 2/3 hold: GET \S+/missing\?state=ok .*404.*failed", trace),
           f"the failing step 2 not traced:\n{trace}")
    expect(re.search(r"step 3/3 release: GET \S+/health\?release=ok .*200", trace),
           f"the clean-up step not traced:\n{trace}")
    expect(API_KEY not in out and API_KEY not in err, f"the secret shows:\n{out}\n{err}")
    rc, out, err = diag(c, "--json", "buy", env={"DIAG_IT_API_KEY": API_KEY})
    buy = probe(json.loads(out), "buy")
    steps = finding(buy, "journey.steps")
    expect(buy["up"] is False and len(buy["trace"]) >= 3 and steps["status"] == "fail" and
           steps["summary"] == "1 of 3 steps run failed: hold" and
           steps["alert"] == "BookingJourneyFailing",
           f"the journey in JSON: {buy}")
    expect(not [f for f in buy["findings"] if f["check"] == "journey.cleanup"],
           f"the clean-up step passed, yet: {buy['findings']}")


def check_host(h, ctx):
    """This machine, through the host probe: its figures are whatever the
    shared test box has (its load varies), so only their presence and form
    are checked, and the exit status agrees with the row."""
    config = h.write("host.yml", "probes:\n  - {name: box, type: host}\n")
    rc, out, err = diag({**ctx, "config": config}, "--json")
    box = probe(json.loads(out), "box")
    expect(box["up"] is True and rc == {"ok": 0, "warn": 1, "fail": 2}[box["status"]],
           f"host: rc {rc}, {box}")
    mem = finding(box, "host.memory")
    expect(re.fullmatch(r"\d+\.\d% of \d+\.\d GiB memory available", mem["summary"]),
           f"host.memory: {mem}")
    expect(re.fullmatch(r"load \d+\.\d\d over 5 minutes on \d+ CPUs",
                        finding(box, "host.load")["summary"]), f"host.load: {box['findings']}")
    expect(re.match(r"\d+ writable filesystems?, ", finding(box, "host.filesystems")["summary"]),
           f"host.filesystems: {box['findings']}")


def check_probes_run_concurrently(h, ctx):
    """Five probes that each take a second finish together in about one:
    diag starts them all at once."""
    url = f"http://127.0.0.1:{ctx['http_port']}/slow"
    config = h.write("slow.yml", "probes:\n" + "".join(
        f"  - {{name: slow-{i}, type: http, url: \"{url}?{i}\", timeout: 4s}}\n"
        for i in range(5)))
    start = time.monotonic()
    rc, out, err = diag({**ctx, "config": config}, "--json")
    took = time.monotonic() - start
    doc = json.loads(out)
    durations = [p["duration_seconds"] for p in doc["probes"]]
    expect(rc == 0 and all(d >= SLOW_S for d in durations),
           f"rc {rc}, durations {durations}:\n{err}")
    expect(took < 2.5 * SLOW_S * TIME_SCALE,
           f"5 probes of {SLOW_S}s took {took:.1f}s: they did not run at the same time")


def check_memcached_basics(h, ctx):
    """Memcached through its probe's samples: connections against -c,
    memory against -m; clients holding most connections degrade it."""
    mc = Memcached(h, name="sessions", memory_mb=16, maxconns=200)
    config = h.write("mc.yml", "probes:\n  - {name: sessions, type: memcached, "
                               f"address: \"127.0.0.1:{mc.port}\", timeout: 2s}}\n")
    c = {**ctx, "config": config}
    rc, out, err = diag(c, "--json")
    sessions = probe(json.loads(out), "sessions")
    expect(sessions["up"], f"memcached probe failed: {sessions}")
    conns = finding(sessions, "memcached.connections")
    expect(rc == 0 and sessions["status"] == "ok" and
           re.fullmatch(r"\d+ of 200 connections in use", conns["summary"]),
           f"an idle memcached: rc {rc}, {sessions}")
    expect(re.fullmatch(r"\d+\.\d% of 16 MiB used, 0 items evicted since start",
                        finding(sessions, "memcached.memory")["summary"]),
           f"memcached.memory: {sessions['findings']}")
    held = []
    try:
        # memcached keeps some of -c for itself (it refuses clients ~16
        # short of it), so 165 clients are 83% and still let the probe in
        for _ in range(165):
            held.append(mc.connect())
        rc, out, err = diag(c, "--json")
        conns = finding(probe(json.loads(out), "sessions"), "memcached.connections")
        expect(rc == 1 and conns["status"] == "warn" and
               conns["runbook_url"] == f"{ctx['runbooks']}MemcachedConnectionsNearLimit.md",
               f"165 of 200 connections held: rc {rc}, {conns}")
    finally:
        for sock in held:
            sock.close()


def _https_server(h, cert):
    """The health handler over TLS with the certificate cert (crt, key)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), _Health)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(str(cert[0]), str(cert[1]))
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    h.on_cleanup(httpd.shutdown)
    return httpd.server_address[1]


def check_tls_days_left(h, ctx):
    """Three HTTPS servers whose certificates expire in 30, 10 and 2 days:
    ✓, ⚠ (under 14 days) and ✗ (under 3 days), as the alert pack's
    BookingTLSCertificateExpiring."""
    certs = Certs(h)
    certs_by_days = {30: certs.server,
                     10: certs._signed("ten", "server_ext", ["-days", "10"]),
                     2: certs._signed("two", "server_ext", ["-days", "2"])}
    lines = ["probes:"]
    for days, cert in certs_by_days.items():
        port = _https_server(h, cert)
        lines.append(f"  - {{name: tls-{days}, type: http, url: \"https://127.0.0.1:{port}/health\","
                     f" timeout: 3s, tls: {{ca_file: \"{certs.ca_cert}\"}}}}")
    config = h.write("tls.yml", "\n".join(lines) + "\n")
    rc, out, err = diag({**ctx, "config": config}, "--json")
    doc = json.loads(out)
    want = {30: "ok", 10: "warn", 2: "fail"}
    for days, status in want.items():
        p = probe(doc, f"tls-{days}")
        f = finding(p, "http.tls_expiry")
        left = float(re.fullmatch(r"TLS certificate expires in (-?\d+\.\d) days", f["summary"])[1])
        expect(p["up"] and f["status"] == status and days - 1 < left <= days,
               f"a certificate of {days} days: {f}")
        expect(f["alert"] == "BookingTLSCertificateExpiring", f"alert of {f}")
        expect(finding(p, "http.timings")["detail"][0].startswith("resolve "),
               f"phases missing: {p['findings']}")
        expect(re.search(r"tls \d+\.\dms", finding(p, "http.timings")["detail"][0]),
               f"no tls phase: {p['findings']}")
    expect(rc == 2 and doc["status"] == "fail", f"rc {rc}, status {doc['status']}")


def check_json_structure(h, ctx):
    rc, out, err = diag(ctx, "--json")
    expect(rc == 0, f"--json exits {rc}:\n{out}\n{err}")
    doc = json.loads(out)
    expect(doc["schema_version"] == 1, f"schema_version {doc.get('schema_version')!r}")
    expect(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", doc["time"]),
           f"time is not RFC 3339: {doc['time']!r}")
    expect(doc["status"] == "ok" and doc["exit_code"] == rc, f"status {doc['status']}, "
                                                             f"exit_code {doc['exit_code']}")
    expect([p["name"] for p in doc["probes"]] == ["main-db", "seat-cache", "api"],
           f"probes not in config order: {[p['name'] for p in doc['probes']]}")
    for p in doc["probes"]:
        expect(set(p) == {"name", "type", "instance", "status", "up", "duration_seconds",
                          "failure_reason", "error", "findings", "trace"},
               f"probe keys: {sorted(p)}")
        expect(p["status"] in STATUSES and isinstance(p["up"], bool), f"probe {p}")
        expect(isinstance(p["duration_seconds"], (int, float)) and p["duration_seconds"] >= 0,
               f"duration {p['duration_seconds']!r}")
        expect(p["trace"] is None, f"an unnamed probe has a trace without -v: {p['trace']!r}")
        for f in p["findings"]:
            expect(set(f) == {"check", "status", "summary", "hint", "alert", "runbook_url",
                              "detail"}, f"finding keys: {sorted(f)}")
            expect(f["status"] in STATUSES and isinstance(f["summary"], str) and f["summary"],
                   f"finding {f}")
            expect(isinstance(f["detail"], list) and all(isinstance(x, str) for x in f["detail"]),
                   f"detail {f['detail']!r}")
            expect((f["alert"] is None) == (f["runbook_url"] is None), f"runbook of {f}")
            if f["alert"]:
                expect(f["runbook_url"] == f"{ctx['runbooks']}{f['alert']}.md", f"runbook {f}")
    db = probe(doc, "main-db")
    expect(db["type"] == "postgres" and db["instance"] == f"127.0.0.1:{ctx['pg'].port}",
           f"main-db: {db['type']} {db['instance']}")
    top = finding(db, "postgres.top_statements")
    expect(top["detail"] and all(" calls, " in x for x in top["detail"]),
           f"pg_stat_statements' top statements missing: {top}")
    # the environment's runbook base, then --runbook-base with a placeholder
    rc, out, _ = diag(ctx, "--json", env={"USHER_RUNBOOK_BASE_URL": "file:///srv/rb"})
    urls = {f["runbook_url"] for p in json.loads(out)["probes"] for f in p["findings"]
            if f["alert"]}
    expect("file:///srv/rb/PostgresLockWaits.md" in urls, f"runbook urls: {urls}")
    rc, out, _ = diag(ctx, "--json", "--runbook-base", "https://wiki.example/rb/{alert}?v=1")
    urls = {f["runbook_url"] for p in json.loads(out)["probes"] for f in p["findings"]
            if f["alert"]}
    expect("https://wiki.example/rb/PostgresLockWaits?v=1" in urls, f"runbook urls: {urls}")


def _session(pg, app, script=None, sql=None):
    """A psql session: fed script on stdin and kept open (its transaction
    stays open until stdin closes), or running sql with -c."""
    argv = pg._psql_argv("booking", "postgres") + (["-c", sql] if sql else [])
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if script else subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, "PGAPPNAME": app})
    if script:
        p.stdin.write(script.encode())
        p.stdin.flush()
    return p


def _pid(pg, app, cond):
    return wait_until(lambda: pg.sql(f"SELECT pid FROM pg_stat_activity WHERE "
                                     f"application_name = '{app}' AND {cond}"),
                      30, f"session {app}: {cond}")


def check_lock_chain_names_the_blocker(h, ctx):
    """A chain of three: the holder keeps seat 7 locked in an open
    transaction; the middle session holds seat 8 and waits for seat 7; the
    last waits for seat 8. The root blocker is the holder."""
    pg = ctx["pg"]
    sessions = []
    try:
        sessions.append(_session(pg, "seat-holder",
                                 "BEGIN;\nUPDATE seats SET status = 'held' WHERE id = 7;\n"))
        holder = _pid(pg, "seat-holder", "state = 'idle in transaction'")
        sessions.append(_session(pg, "seat-mover", "BEGIN;\n"
                                 "UPDATE seats SET status = 'moving' WHERE id = 8;\n"
                                 "UPDATE seats SET status = 'moved' WHERE id = 7;\n"))
        mover = _pid(pg, "seat-mover", "wait_event_type = 'Lock'")
        sessions.append(_session(pg, "seat-buyer",
                                 sql="UPDATE seats SET status = 'sold' WHERE id = 8"))
        buyer = _pid(pg, "seat-buyer", "wait_event_type = 'Lock'")

        rc, out, err = diag(ctx, "--json")
        expect(rc == 1, f"a lock wait exits {rc}, not 1 (degraded):\n{out}\n{err}")
        doc = json.loads(out)
        expect(doc["status"] == "warn" and doc["exit_code"] == 1, f"overall {doc['status']}")
        locks = finding(probe(doc, "main-db"), "postgres.locks")
        expect(locks["status"] == "warn", f"locks finding {locks}")
        expect(locks["summary"].startswith("2 sessions waiting on locks") and
               locks["summary"].endswith(f"root blocker pid {holder}"),
               f"the summary does not name the root blocker {holder}: {locks['summary']}")
        expect(f"pg_terminate_backend({holder})" in locks["hint"], f"hint: {locks['hint']}")
        d = locks["detail"]
        text = "\n".join(d)

        def line(prefix):
            found = [i for i, x in enumerate(d) if x.startswith(prefix)]
            expect(len(found) == 1, f"not one line starting {prefix!r}:\n{text}")
            return found[0]

        b = line(f"pid {buyer} ")
        expect("UPDATE seats SET status = 'sold' WHERE id = 8" in d[b], f"buyer:\n{text}")
        expect(d[b + 1].startswith(f"  blocked by pid {mover} ") and
               "[root blocker]" not in d[b + 1] and "status = 'moved' WHERE id = 7" in d[b + 1],
               f"the buyer is not shown blocked by the mover, itself waiting:\n{text}")
        m = line(f"pid {mover} ")
        expect(d[m + 1].startswith(f"  blocked by pid {holder} ") and
               "[root blocker]" in d[m + 1] and "app seat-holder" in d[m + 1] and
               "idle in transaction" in d[m + 1] and
               "UPDATE seats SET status = 'held' WHERE id = 7" in d[m + 1],
               f"the mover is not shown blocked by the holder (root, its query):\n{text}")
        expect(locks["runbook_url"] == f"{ctx['runbooks']}PostgresLockWaits.md", f"{locks}")

        # with thresholds lowered, the same sessions are long-running and
        # idle in transaction, and the lock wait is critical: exit 2
        rc, out, err = diag(ctx, "--json", "main-db", "--threshold", "pg_idle_tx_warn_s=0s",
                            "--threshold", "pg_long_query_warn_s=0", "--threshold",
                            "pg_lock_wait_fail_s=0s")
        db = probe(json.loads(out), "main-db")
        expect(rc == 2 and db["status"] == "fail" and
               finding(db, "postgres.locks")["status"] == "fail",
               f"lock wait over pg_lock_wait_fail_s: rc {rc}, {db['status']}")
        idle = finding(db, "postgres.idle_in_transaction")
        expect(idle["status"] == "warn" and idle["summary"].startswith("1 session ") and
               idle["detail"][0].startswith(f"pid {holder} (postgres@booking, app seat-holder)"),
               f"the holder is not reported idle in transaction: {idle}")
        long_q = finding(db, "postgres.long_queries")
        pids = {x.split()[1] for x in long_q["detail"]}
        expect(long_q["status"] == "warn" and {str(mover), str(buyer)} <= pids,
               f"the waiting statements are not reported running: {long_q}")

        # the table, for the named probe only
        rc, out, err = diag(ctx, "main-db")
        expect(rc == 1, f"table run exits {rc}:\n{out}\n{err}")
        expect(re.search(r"^⚠ main-db\s", out, re.M), f"no ⚠ row for main-db:\n{out}")
        expect("seat-cache" not in out and "1 probe: 0 ok, 1 degraded" in out,
               f"other probes ran although one was named:\n{out}")
        expect(f"root blocker pid {holder}" in out and
               f"runbook: {ctx['runbooks']}PostgresLockWaits.md" in out,
               f"the table lacks the blocker or the runbook:\n{out}")
    finally:
        for p in sessions:  # psql exits and its transaction rolls back
            if p.stdin:
                p.stdin.close()
        for p in sessions:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    rc, out, err = diag(ctx, "main-db")
    expect(rc == 0, f"after the locks are released diag exits {rc}:\n{out}\n{err}")


def check_unknown_name_and_bad_config(h, ctx):
    rc, out, err = diag(ctx, "no-such-probe")
    expect(rc == 2 and 'no probe named "no-such-probe"' in err and not out,
           f"an unknown name: rc {rc}, stderr {err!r}, stdout {out!r}")
    rc, out, err = diag(ctx, "--threshold", "pg_nonsense=3")
    expect(rc == 2 and 'no threshold named "pg_nonsense"' in err and not out,
           f"an unknown threshold: rc {rc}, stderr {err!r}")
    rc, out, err = diag(ctx, "--threshold", "redis_mem_warn=180%")
    expect(rc == 2 and "is not a fraction" in err and not out,
           f"a bad threshold value: rc {rc}, stderr {err!r}")
    bad = h.write("bad.yml", "probes:\n  - {name: x, type: redis, adress: nowhere}\n")
    p = subprocess.run([ctx["usher"], "diag", "--config", str(bad)], capture_output=True,
                       timeout=30 * TIME_SCALE, check=False)
    expect(p.returncode == 2 and b"bad.yml:2:" in p.stderr,
           f"an invalid config: rc {p.returncode}, stderr {p.stderr!r}")


def check_redis_big_key_and_slow_log_degrade(h, ctx):
    """A 12 MiB key shows first in the big-keys sample and a recent slow
    command in the slow log: both ⚠, exit 1; gone again, exit 0."""
    c = ctx["redis"].client()
    try:
        c.call("SET", "seatmap:blob", b"x" * (12 * 1024 * 1024))
        c.call("CONFIG", "SET", "slowlog-log-slower-than", "0")
        c.call("GET", "hold:17")
        c.call("CONFIG", "SET", "slowlog-log-slower-than", "10000")
        rc, out, err = diag(ctx, "--json", "seat-cache")
        doc = json.loads(out)
        cache = probe(doc, "seat-cache")
        big = finding(cache, "redis.big_keys")
        slow = finding(cache, "redis.slowlog")
        expect(rc == 1 and cache["status"] == "warn", f"rc {rc}, {cache['status']}")
        expect(big["status"] == "warn" and re.fullmatch(r"seatmap:blob: 1[2-9]\.\d MiB",
                                                        big["detail"][0])
               and big["runbook_url"] == f"{ctx['runbooks']}RedisBigKeys.md",
               f"the big key is not flagged first: {big}")
        expect(slow["status"] == "warn" and any(" GET hold:17" in x for x in slow["detail"]),
               f"the slow GET is not shown: {slow}")
    finally:
        c.call("DEL", "seatmap:blob")
        c.call("SLOWLOG", "RESET")
        c.close()
    rc, out, err = diag(ctx, "seat-cache")
    expect(rc == 0, f"after cleaning up diag exits {rc}:\n{out}\n{err}")


def check_redis_failed_snapshot_exits_2(h, ctx):
    """A snapshot that cannot be written (the data directory moved to
    /proc, where nothing can be created): redis.persistence is ✗ with the
    bgsave status, and diag exits 2 although Redis answers."""
    broken = RedisServer(h, name="broken-disk", extra="enable-protected-configs yes\n")
    config = h.write("broken.yml", "probes:\n  - {name: sessions-cache, type: redis, "
                                   f"address: \"127.0.0.1:{broken.port}\", timeout: 2s}}\n")
    c = broken.client()
    try:
        c.call("SET", "hold:1", "x")
        c.call("CONFIG", "SET", "dir", "/proc")
        c.call("BGSAVE")
        wait_until(lambda: c.info("persistence").get("rdb_last_bgsave_status") == "err" and
                   c.info("persistence").get("rdb_bgsave_in_progress") == "0", 30,
                   "the snapshot to fail")
        rc, out, err = diag({**ctx, "config": config}, "--json")
        cache = probe(json.loads(out), "sessions-cache")
        f = finding(cache, "redis.persistence")
        expect(rc == 2 and cache["up"] and cache["status"] == "fail" and
               f["status"] == "fail" and f["summary"].startswith("RDB last bgsave err") and
               f["runbook_url"] == f"{ctx['runbooks']}RedisPersistenceFailing.md",
               f"a failed snapshot: rc {rc}, {cache}")
    finally:
        c.close()


def check_replication_lag_per_replica(h, ctx):
    """A streaming replica: the primary lists it, the replica reports its
    replay delay and WAL receiver; with replay paused while the primary
    writes, the replica falls behind and is flagged."""
    pg = ctx["pg"]
    replica = Replica(h, pg).start()
    config = h.write("repl.yml", CONFIG.format(
        dsn=pg.dsn("usher", PASSWORD, db="booking"), redis=ctx["redis"].port,
        http=ctx["http_port"]) + f"  - {{name: replica-db, type: postgres, dsn: "
        f"\"{replica.dsn('usher', PASSWORD, db='booking')}\", timeout: 3s}}\n")
    c = {**ctx, "config": config}
    wait_until(lambda: pg.sql("SELECT count(*) FROM pg_stat_replication WHERE state = "
                              "'streaming'") == "1", 30, "the replica to stream")
    rc, out, err = diag(c, "--json", "main-db", "replica-db")
    doc = json.loads(out)
    prim = finding(probe(doc, "main-db"), "postgres.replication")
    repl = finding(probe(doc, "replica-db"), "postgres.replication")
    expect(rc == 0 and prim["status"] == "ok" and prim["summary"].startswith("1 replica, ") and
           prim["detail"][0].startswith("walreceiver (local) streaming: replay lag "),
           f"the primary's view: rc {rc}, {prim}")
    expect(repl["status"] == "ok" and repl["summary"].startswith(
        "this server is a replica: replay ") and repl["summary"].endswith(
        "WAL receiver streaming"), f"the replica's view: {repl}")
    replica.sql("SELECT pg_wal_replay_pause()")
    try:
        pg.sql("UPDATE seats SET status = 'free' WHERE id = 3", db="booking")

        # the replica knows it is behind once the change has arrived
        def behind():
            rc, out, _ = diag(c, "--json", "replica-db")
            f = finding(probe(json.loads(out), "replica-db"), "postgres.replication")
            arrived = re.search(r"\([1-9]\d* bytes\)", f["summary"])
            return (rc, f) if rc == 1 and f["status"] == "warn" and arrived else None

        rc, f = wait_until(behind, 30, "the paused replica to be flagged behind")
        expect(re.fullmatch(r"this server is a replica: replay .* behind \([1-9]\d* bytes\), "
                            r"replay PAUSED, WAL receiver streaming", f["summary"]) and
               "pg_wal_replay_resume()" in f["hint"] and
               f["runbook_url"] == f"{ctx['runbooks']}PostgresReplicationLag.md", f"{f}")
    finally:
        replica.sql("SELECT pg_wal_replay_resume()")


def check_hung_database_is_bounded(h, ctx):
    """A PostgreSQL stopped with SIGSTOP (its kernel still accepts
    connections): the probe times out within its 3s and the deep checks
    within theirs (5s), so diag answers in seconds, exits 2 and names the
    timeout."""
    pg = ctx["pg"]
    pg.pause()
    try:
        start = time.monotonic()
        rc, out, err = diag(ctx, "--json", "main-db", timeout=60)
        took = time.monotonic() - start
    finally:
        pg.resume()
    expect(took < 15 * TIME_SCALE, f"diag took {took:.1f}s against a hung server")
    doc = json.loads(out)
    db = probe(doc, "main-db")
    expect(rc == 2 and db["status"] == "fail" and db["up"] is False and
           db["failure_reason"] == "timeout", f"hung server: rc {rc}, {db}")
    conn = finding(db, "postgres.connect")
    expect(conn["status"] == "fail" and
           conn["runbook_url"] == f"{ctx['runbooks']}PostgresDown.md",
           f"deep checks on a hung server: {conn}")
    wait_until(lambda: pg.try_sql("SELECT 1", timeout=5) == "1", 30, "postgres to answer again")


def check_redis_down_exits_2(h, ctx):
    ctx["redis"].kill()
    rc, out, err = diag(ctx)
    expect(rc == 2, f"a Redis that is down exits {rc}, not 2:\n{out}\n{err}")
    expect(re.search(r"^✗ seat-cache\s+redis\s+\S+\s+DOWN: .*connection refused", out, re.M),
           f"no ✗ DOWN row for seat-cache:\n{out}")
    expect(re.search(r"^✓ main-db\s", out, re.M), f"the database is still fine:\n{out}")
    expect(f"runbook: {ctx['runbooks']}RedisDown.md" in out,
           f"no runbook for the down Redis:\n{out}")
    rc, out, err = diag(ctx, "--json", "seat-cache")
    doc = json.loads(out)
    cache = probe(doc, "seat-cache")
    expect(rc == 2 and doc["status"] == "fail" and cache["status"] == "fail" and
           cache["up"] is False and cache["failure_reason"] == "connect",
           f"JSON of the down Redis: rc {rc} {cache}")


main("diag", setup, [check_healthy_exit_0_plain_when_piped, check_named_probe_prints_its_trace,
                     check_journey_steps_traced, check_host, check_probes_run_concurrently,
                     check_memcached_basics, check_tls_days_left,
                     check_json_structure,
                     check_lock_chain_names_the_blocker, check_unknown_name_and_bad_config,
                     check_redis_big_key_and_slow_log_degrade,
                     check_redis_failed_snapshot_exits_2, check_replication_lag_per_replica,
                     check_hung_database_is_bounded,
                     check_redis_down_exits_2])
