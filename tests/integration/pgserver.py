"""A throwaway PostgreSQL for the integration tests: initdb in the test's temp
dir as the unprivileged postgres system user (the tests run as root, and
PostgreSQL refuses root), a free loopback port and a socket directory of its
own. The server is always stopped at cleanup, also when the test left it
stopped with SIGSTOP or failed half-way."""

import os
import pwd
import signal
import time
from pathlib import Path

from harness import Fatal, TestFailure, expect, free_port, run, tool, wait_until

PG_USER = "postgres"
SUPERUSER_SQL_TIMEOUT = 30


def pg_bindir():
    """The directory of initdb and postgres: $USHER_PG_BIN, else the newest
    /usr/lib/postgresql/*/bin (Debian keeps them off PATH)."""
    env = os.environ.get("USHER_PG_BIN")
    if env:
        return Path(env)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not found:
        raise TestFailure("PostgreSQL server binaries not found under /usr/lib/postgresql: "
                          "run scripts/install-deps.sh test")
    return found[-1].parent


class PgServer:
    """One PostgreSQL cluster. start() runs it in the foreground (as the
    harness's child, in its own process group, so SIGSTOP/SIGKILL reach the
    postmaster and every backend at once)."""

    def __init__(self, h, name="pg", port=None):
        self.h = h
        self.name = name
        self.bin = pg_bindir()
        self.setpriv = tool("setpriv")
        self.psql_bin = str(self.bin / "psql")
        try:
            pw = pwd.getpwnam(PG_USER)
        except KeyError:
            raise TestFailure(f"no {PG_USER} system user: install the postgresql package "
                              "(scripts/install-deps.sh test)") from None
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        # The harness's temp dir is root's and 0700; postgres needs to get
        # through it to its own directory.
        os.chmod(h.tmp, 0o711)
        self.dir = h.path(name)
        self.dir.mkdir()
        os.chown(self.dir, self.uid, self.gid)
        os.chmod(self.dir, 0o700)
        self.data = self.dir / "data"
        self.sockdir = self.dir
        self.port = port or free_port()
        self.proc = None
        self.stopped = False  # SIGSTOPped by the test
        h.on_cleanup(self.shutdown)
        self._initdb()

    def as_postgres(self, argv):
        return [self.setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "--", *map(str, argv)]

    def _initdb(self):
        r = run(self.as_postgres([self.bin / "initdb", "-D", self.data, "-U", "postgres",
                                  "--auth-local=trust", "--auth-host=scram-sha-256",
                                  "-E", "UTF8", "--locale=C", "--no-sync"]),
                timeout=120, env={**os.environ, "HOME": str(self.dir)},)
        expect(r.returncode == 0, f"initdb failed ({r.returncode}):\n"
                                  f"{r.stderr.decode(errors='replace')[-2000:]}")

    def start(self, **settings):
        """Starts the server and waits until it answers. settings are extra
        -c name=value options."""
        opts = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.sockdir),
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "shared_buffers": "16MB",
            "max_connections": "30",
            "dynamic_shared_memory_type": "mmap",  # nothing left in /dev/shm after a kill
            "logging_collector": "off",
            "log_min_messages": "warning",
            **settings,
        }
        argv = [self.bin / "postgres", "-D", self.data, "-p", self.port]
        for k, v in opts.items():
            argv += ["-c", f"{k}={v}"]
        self.proc = self.h.spawn(self.name, self.as_postgres(argv), cwd=self.dir,
                                 env={**os.environ, "HOME": str(self.dir)})
        self.stopped = False
        proc = self.proc

        def ready():
            if not proc.alive():
                raise Fatal(f"postgres exited ({proc.popen.returncode}):\n{proc.tail()}")
            return self.try_sql("SELECT 1", timeout=5) == "1"

        wait_until(ready, 60, f"postgres {self.name} to accept connections")
        return self

    # ------------------------------------------------------------ faults --

    def pids(self):
        """The postmaster and its children. Each child calls setsid(), so a
        signal to the postmaster's process group reaches it alone."""
        if not self.proc:
            return []
        return [self.proc.pid] + children(self.proc.pid)

    def _signal_all(self, sig, postmaster_first):
        pm = self.proc.pid
        if postmaster_first:
            # stopped first, the postmaster forks no child we would miss
            _kill(pm, sig)
        for pid in children(pm):
            _kill(pid, sig)
        if not postmaster_first:
            _kill(pm, sig)

    def pause(self):
        """SIGSTOP to the postmaster and every backend: a hung server whose
        kernel still accepts connections and acknowledges data."""
        self._signal_all(signal.SIGSTOP, postmaster_first=True)
        self.stopped = True

    def resume(self):
        self._signal_all(signal.SIGCONT, postmaster_first=False)
        self.stopped = False

    def kill(self):
        """SIGKILL to the whole server, as a crash."""
        if self.proc and self.proc.alive():
            self._signal_all(signal.SIGKILL, postmaster_first=True)
            self.proc.kill()
            deadline = time.monotonic() + 10
            while any(_alive(pid) for pid in children(self.proc.pid)) and \
                    time.monotonic() < deadline:
                time.sleep(0.05)

    def shutdown(self):
        """Fast shutdown (SIGINT), after a SIGCONT in case it was stopped;
        SIGKILL to everything left if it does not go within 20 s."""
        if not self.proc or not self.proc.alive():
            return
        kids = children(self.proc.pid)
        self._signal_all(signal.SIGCONT, postmaster_first=False)
        self.stopped = False
        _kill(self.proc.pid, signal.SIGINT)
        if self.proc.wait(20) is None:
            self.proc.kill()
        for pid in kids:
            _kill(pid, signal.SIGKILL)

    # --------------------------------------------------------------- SQL --

    def _psql_argv(self, db, user):
        return [self.psql_bin, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", str(self.sockdir), "-p", str(self.port), "-U", user, "-d", db]

    def try_sql(self, sql, db="postgres", user="postgres", timeout=30):
        """The output of sql (psql -A -t), or None if it failed."""
        try:
            r = run(self._psql_argv(db, user) + ["-c", sql], timeout=timeout,
                    env={**os.environ, "PGCONNECT_TIMEOUT": "5", "PGAPPNAME": "usher-test"})
        except Exception:  # subprocess.TimeoutExpired: a stopped server
            return None
        if r.returncode != 0:
            return None
        return r.stdout.decode(errors="replace").strip()

    def sql(self, sql, db="postgres", user="postgres", timeout=SUPERUSER_SQL_TIMEOUT):
        """Runs sql as the superuser (over the socket, trusted) and returns
        its output, rows as lines, columns separated by |."""
        expect(not self.stopped, "sql() on a stopped server would hang")
        r = run(self._psql_argv(db, user) + ["-c", sql], timeout=timeout,
                env={**os.environ, "PGCONNECT_TIMEOUT": "5", "PGAPPNAME": "usher-test"})
        expect(r.returncode == 0, f"psql failed ({r.returncode}) on {sql[:200]!r}:\n"
                                  f"{r.stderr.decode(errors='replace')[-2000:]}")
        return r.stdout.decode(errors="replace").strip()

    def sql_file(self, path, db="postgres"):
        r = run(self._psql_argv(db, "postgres") + ["-f", str(path)], timeout=120,
                env={**os.environ, "PGCONNECT_TIMEOUT": "5", "PGAPPNAME": "usher-test"})
        expect(r.returncode == 0, f"psql -f {path} failed ({r.returncode}):\n"
                                  f"{r.stderr.decode(errors='replace')[-2000:]}")

    def create_login(self, user, password, db=None):
        """A login role with a password (SCRAM over TCP), owning db if given
        (created when missing)."""
        self.sql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        # reading pg_stat_activity of other roles needs pg_read_all_stats
        self.sql(f"GRANT pg_monitor TO {user}")
        if db:
            self.sql(f"CREATE DATABASE {db} OWNER {user}")

    def dsn(self, user, password=None, db="postgres", **params):
        """A postgresql:// URI over TCP to this server."""
        auth = f"{user}:{password}@" if password is not None else f"{user}@"
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://{auth}127.0.0.1:{self.port}/{db}" + (f"?{query}" if query else "")

    def usher_sessions(self, app="usher"):
        """How many sessions with this application_name the server has."""
        out = self.sql(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'")
        return int(out)


def children(ppid):
    """The pids whose parent is ppid (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == ppid:
            out.append(int(d.name))
    return out


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


# ------------------------------------------------- booking-like dataset ----
# Used by the backup, restore and drill tests and by bench/backup: uuid keys,
# text with non-ASCII characters, jsonb, NULLs, indexes (btree, unique, GIN),
# foreign keys, a second schema and an identifier that needs quoting.

def booking_dataset_sql(bookings):
    """SQL creating the booking schema with `bookings` rows in bookings (and
    bookings/100 events, bookings/10 customers, 10 venues of 1000 seats),
    generated server-side, deterministic."""
    n = max(int(bookings), 1)
    events, customers = max(n // 100, 1), max(n // 10, 1)
    return f"""
CREATE TABLE venues (id serial PRIMARY KEY, name text NOT NULL, city text NOT NULL,
  meta jsonb NOT NULL DEFAULT '{{}}');
CREATE TABLE seats (id bigserial PRIMARY KEY, venue_id int NOT NULL REFERENCES venues(id),
  section text NOT NULL, row_label text NOT NULL, number int NOT NULL,
  UNIQUE (venue_id, section, row_label, number));
CREATE TABLE events (id uuid PRIMARY KEY, venue_id int NOT NULL REFERENCES venues(id),
  title text NOT NULL, starts_at timestamptz NOT NULL, details jsonb);
CREATE INDEX events_venue_starts ON events (venue_id, starts_at);
CREATE TABLE customers (id uuid PRIMARY KEY, email text NOT NULL UNIQUE, name text,
  prefs jsonb);
CREATE TABLE bookings (id uuid PRIMARY KEY, event_id uuid NOT NULL REFERENCES events(id),
  seat_id bigint NOT NULL REFERENCES seats(id), customer_id uuid NOT NULL REFERENCES customers(id),
  status text NOT NULL CHECK (status IN ('held', 'paid', 'cancelled')),
  price_cents int NOT NULL, booked_at timestamptz NOT NULL, payload jsonb NOT NULL);
CREATE INDEX bookings_customer ON bookings (customer_id);
CREATE INDEX bookings_event_status ON bookings (event_id, status);
CREATE SCHEMA audit;
CREATE TABLE audit."Log Entries" (id bigserial PRIMARY KEY, at timestamptz NOT NULL, what text);

INSERT INTO venues (name, city, meta)
  SELECT 'Venue ' || v, (ARRAY['Berlin', 'Paris', 'Lisboa', 'Kraków'])[1 + v % 4],
         jsonb_build_object('capacity', 1000, 'accessible', v % 2 = 0)
  FROM generate_series(1, 10) v;
INSERT INTO seats (venue_id, section, row_label, number)
  SELECT v, 'S' || (s / 250), chr(65 + (s / 25) % 10), s % 25
  FROM generate_series(1, 10) v, generate_series(0, 999) s;
INSERT INTO events (id, venue_id, title, starts_at, details)
  SELECT md5('e' || e)::uuid, 1 + e % 10, 'Concert #' || e || ' — «Tour»',
         timestamptz '2026-01-01 00:00:00+00' + e * interval '3 hours',
         jsonb_build_object('genre', (ARRAY['rock', 'jazz', 'opera'])[1 + e % 3],
                            'tags', jsonb_build_array('a' || e % 7, 'b' || e % 5))
  FROM generate_series(1, {events}) e;
INSERT INTO customers (id, email, name, prefs)
  SELECT md5('c' || c)::uuid, 'user' || c || '@example.com', 'Customer ' || c,
         CASE WHEN c % 3 = 0 THEN NULL ELSE jsonb_build_object('newsletter', c % 2 = 0) END
  FROM generate_series(1, {customers}) c;
INSERT INTO bookings
  SELECT md5('b' || b)::uuid, md5('e' || (1 + b % {events}))::uuid, 1 + (b::bigint * 7919) % 10000,
         md5('c' || (1 + b % {customers}))::uuid, (ARRAY['held', 'paid', 'cancelled'])[1 + b % 3],
         1000 + b % 9000, timestamptz '2026-01-01 00:00:00+00' + b * interval '1 minute',
         jsonb_build_object('channel', 'web', 'note', md5(b::text), 'items', b % 4)
  FROM generate_series(1, {n}) b;
CREATE INDEX bookings_payload ON bookings USING gin (payload);
INSERT INTO audit."Log Entries" (at, what)
  SELECT timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second', 'it''s entry ' || i
  FROM generate_series(1, 50) i;
ANALYZE;
"""


def table_hashes(server, db):
    """{"schema.table": (rows, md5 of the rows' text in order)} of every
    user table of db, to compare a database with its restored copy."""
    tables = server.sql("SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) "
                        "FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND "
                        "table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
                        db=db).splitlines()
    out = {}
    for t in tables:
        row = server.sql(f"SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' "
                         f"ORDER BY x::text), '')) FROM ONLY {t} x", db=db)
        rows, digest = row.split("|")
        out[t] = (int(rows), digest)
    return out
