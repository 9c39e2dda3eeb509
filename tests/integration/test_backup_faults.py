"""Backups under faults: kill -9 mid-backup leaves no complete backup and no
stale lock; a second backup of the same target exits "already running" (3)
or waits with --lock-wait; SIGTERM stops cleanly; a full disk
(RLIMIT_FSIZE) fails cleanly, removes the partial files and records
status 0 while keeping the last success time."""

import os
import resource
import signal
import subprocess
import sys

from harness import Harness, expect, parse_metrics, run, tool, usher_binary, wait_until
from pgserver import PgServer, booking_dataset_sql

KEY = "c3" * 32


def main():
    with Harness("backup-faults") as h:
        pg = PgServer(h).start()
        h.write("data.sql", booking_dataset_sql(40000))
        pg.sql("CREATE DATABASE booking")
        pg.sql_file(h.path("data.sql"), db="booking")
        key = h.write("k", KEY, mode=0o600)
        repo, textfile = h.path("repo"), h.path("textfile")
        textfile.mkdir()
        dsn = f"host={pg.sockdir} port={pg.port} user=postgres dbname=booking"
        usher_bin = usher_binary("USHER", "usher")
        base = [usher_bin, "backup", "postgres", "--dsn", dsn, "--name", "main", "--repo",
                str(repo), "--key-file", str(key), "--textfile-dir", str(textfile)]

        def complete():
            return sorted(p.name for p in repo.iterdir()
                          if p.is_dir() and (p / "manifest.json").exists()) \
                if repo.exists() else []

        def partials():
            return sorted(p.name for p in repo.glob("*.partial")) if repo.exists() else []

        def hold_table_lock(name):
            """A session holding an exclusive lock on bookings: pg_dump waits."""
            proc = h.spawn(name, [pg.psql_bin, "-X", "-h", pg.sockdir, "-p", pg.port,
                                  "-U", "postgres", "-d", "booking", "-c",
                                  "BEGIN; LOCK TABLE bookings IN ACCESS EXCLUSIVE MODE; "
                                  "SELECT pg_sleep(600);"])
            wait_until(lambda: pg.sql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON "
                                      "c.oid = l.relation WHERE c.relname = 'bookings' AND "
                                      "l.mode = 'AccessExclusiveLock' AND l.granted",
                                      db="booking") == "1", 30, "the table lock")
            return proc

        def release(proc):
            pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE "
                   "'%pg_sleep(600)%' AND pid <> pg_backend_pid()")
            proc.wait(20)

        def pg_dump_waiting():
            return pg.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                          "'pg_dump' AND wait_event_type = 'Lock'") == "1"

        # --- kill -9 mid-backup, with a second backup waiting for the lock
        locker = hold_table_lock("locker")
        a = h.spawn("backup-a", base)
        wait_until(lambda: partials() and pg_dump_waiting(), 60, "backup A to be dumping")
        expect(complete() == [], "a backup looks complete while it runs")
        r = run(base + ["--quiet"])
        expect(r.returncode == 3 and "already running" in r.stderr.decode() and
               f"pid {a.pid}" in r.stderr.decode(),
               f"concurrent backup: exit {r.returncode}: {r.stderr.decode()}")
        c = h.spawn("backup-c", base + ["--lock-wait", "2m", "--quiet"])
        os.kill(a.pid, signal.SIGKILL)
        expect(a.wait(20) == -signal.SIGKILL, "backup A did not die")
        # C gets the lock at once (flock dies with its holder) and sweeps A's
        # partial directory before it starts its own pg_dump (A's orphan still waits)
        wait_until(lambda: pg.sql("SELECT count(*) FROM pg_stat_activity WHERE "
                                  "application_name = 'pg_dump' AND wait_event_type = 'Lock'")
                   == "2", 60, "backup C to be dumping")
        expect(len(partials()) == 1, f"A's partial directory is still there: {partials()}")
        expect(complete() == [], f"kill -9 left a complete backup: {complete()}")
        expect(c.alive(), "C should wait on the table lock, not have finished")
        release(locker)
        expect(c.wait(120) == 0, f"backup C failed:\n{c.tail()}")
        c_id = c.stdout().strip()
        expect(complete() == [c_id] and partials() == [], f"after C: {complete()} {partials()}")
        # A's orphaned pg_dump hits the closed pipe and goes
        wait_until(lambda: pg.sql("SELECT count(*) FROM pg_stat_activity WHERE "
                                  "application_name = 'pg_dump'") == "0", 60,
                   "the orphaned pg_dump to exit")
        # no stale lock: the next backup runs at once
        r = run(base + ["--quiet", "--lock-wait", "0s"])
        expect(r.returncode == 0, f"backup after kill -9: {r.stderr.decode()}")
        ids = complete()
        expect(len(ids) == 2, f"complete backups: {ids}")
        prom = textfile / "usher_backup_main.prom"
        last_ok = parse_metrics(prom.read_text()).value(
            "usher_backup_last_success_timestamp_seconds", target="main")

        # --- SIGTERM: a clean stop, nothing left behind
        locker = hold_table_lock("locker-2")
        e = h.spawn("backup-e", base)
        wait_until(lambda: partials() and pg_dump_waiting(), 60, "backup E to be dumping")
        e.send(signal.SIGTERM)
        expect(e.wait(30) == 1, f"SIGTERM: exit {e.rc}\n{e.tail()}")
        expect("interrupted" in e.stderr(), e.stderr())
        expect(partials() == [] and complete() == ids, f"after SIGTERM: {partials()}")
        release(locker)
        wait_until(lambda: pg.sql("SELECT count(*) FROM pg_stat_activity WHERE "
                                  "application_name = 'pg_dump'") == "0", 60,
                   "E's pg_dump to exit")

        # --- a full disk: the file size limit cuts the data file short
        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

        r = subprocess.run(base + ["--quiet"], capture_output=True, timeout=120,
                           preexec_fn=limit)
        err = r.stderr.decode()
        expect(r.returncode == 1 and "File too large" in err,
               f"disk full: exit {r.returncode}: {err}")
        expect(partials() == [] and complete() == ids, f"after disk full: {partials()} "
                                                       f"{complete()}")
        m = parse_metrics(prom.read_text())
        expect(m.value("usher_backup_last_status", target="main") == 0, "status after failure")
        expect(m.value("usher_backup_last_success_timestamp_seconds", target="main") == last_ok,
               "the last success time was not kept over a failure")
        # and the repository is still good
        r = run([usher_bin, "backup", "verify", "--all", "--repo", str(repo), "--key-file",
                 str(key)])
        expect(r.returncode == 0 and r.stdout.decode().count("ok ") == 2, r.stdout.decode())
        if h.problems:
            raise AssertionError("\n".join(h.problems))
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
