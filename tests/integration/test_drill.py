"""usher dr drill: restores the newest backup into a scratch database, checks
row counts, runs the sanity SQL, reports RTO and RPO, drops the scratch
database (also when a check fails), and leaves usher_dr_drill_* metrics."""

import json
import sys
import time

from harness import Harness, expect, parse_metrics, run, usher_binary
from pgserver import PgServer, booking_dataset_sql

KEY = "e5" * 32


def usher(*args):
    return run([usher_binary("USHER", "usher"), *map(str, args)], timeout=180)


def config(h, name, pg, repo, textfile, sanity):
    dsn = pg.dsn("usher", "drill-pw", db="booking")
    scratch = pg.dsn("usher", "drill-pw", db="postgres")
    lines = "\n".join(f"      - {json.dumps(s)}" for s in sanity)
    return h.write(name, f"""
probes:
  - name: main-db
    type: postgres
    dsn: "{dsn}"
textfile_dir: {textfile}
backup:
  repository: {repo}
  encryption_key: "{KEY}"
  targets: [main-db]
  drill:
    scratch_dsn: "{scratch}"
    jobs: 2
    sanity_sql:
{lines}
""")


def scratch_dbs(pg):
    return pg.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'usher_drill_%'")


def main():
    with Harness("drill") as h:
        pg = PgServer(h).start()
        pg.create_login("usher", "drill-pw", db="booking")
        pg.sql("ALTER ROLE usher CREATEDB")
        h.write("data.sql", booking_dataset_sql(5000))
        pg.sql_file(h.path("data.sql"), db="booking")
        dsn = pg.dsn("usher", "drill-pw", db="booking")
        # the tables belong to postgres: the backup role cannot read them yet
        r = usher("backup", "postgres", "--dsn", dsn, "--repo", h.path("repo"), "--key-file",
                  h.write("k", KEY, mode=0o600), "--quiet")
        expect(r.returncode == 1 and "permission denied" in r.stderr.decode(),
               f"unreadable tables: {r.returncode} {r.stderr.decode()}")
        pg.sql("GRANT pg_read_all_data TO usher")
        repo, textfile = h.path("repo"), h.path("textfile")
        textfile.mkdir()
        good = config(h, "good.yml", pg, repo, textfile, [
            "SELECT count(*) > 0 FROM bookings",
            "SELECT NOT EXISTS (SELECT 1 FROM bookings b LEFT JOIN seats s ON "
            "s.id = b.seat_id WHERE s.id IS NULL)",
            "SELECT max(booked_at) FROM bookings",
        ])
        bad = config(h, "bad.yml", pg, repo, textfile, [
            "SELECT count(*) > 0 FROM bookings",
            "SELECT count(*) > 1000000 FROM bookings",
        ])

        r = usher("dr", "drill", "--config", good)
        expect(r.returncode == 1 and "no postgres backup of main-db" in r.stderr.decode(),
               f"drill without a backup: {r.returncode} {r.stderr.decode()}")
        r = usher("backup", "postgres", "--config", good, "--quiet")
        expect(r.returncode == 0, f"backup: {r.stderr.decode()}")
        bid = r.stdout.decode().strip()
        time.sleep(1.1)  # the RPO is the data's age: let it be measurable

        r = usher("dr", "drill", "--config", good)
        out = r.stdout.decode()
        expect(r.returncode == 0, f"drill failed ({r.returncode}): {r.stderr.decode()}\n{out}")
        expect("PASSED" in out and "RTO" in out and "RPO" in out and bid in out, out)
        expect("sanity check 3 ok: 2026-01-04" in out, f"sanity output:\n{out}")
        expect("row counts match" in out and "dropped usher_drill_" in out, out)
        expect(scratch_dbs(pg) == "0", "the scratch database was not dropped")
        m = parse_metrics((textfile / "usher_dr_drill_main-db.prom").read_text())
        last = m.value("usher_dr_drill_last_success_timestamp_seconds", target="main-db")
        rto = m.value("usher_dr_drill_rto_seconds", target="main-db")
        rpo = m.value("usher_dr_drill_rpo_seconds", target="main-db")
        expect(last and abs(last - time.time()) < 120, f"last success {last}")
        expect(rto and 0 < rto < 120, f"rto {rto}")
        expect(rpo and rpo >= 1.0, f"rpo {rpo}")
        expect(m.value("usher_dr_drill_last_status", target="main-db") == 1, "status")

        r = usher("dr", "drill", "--config", good, "--target", "main-db", "--json")
        expect(r.returncode == 0, r.stderr.decode())
        j = json.loads(r.stdout)
        expect(j["status"] == "ok" and j["backup"] == bid and j["tables"] == 6 and
               j["sanity_checks"] == 3 and j["rto_seconds"] > 0, j)

        # a failing sanity check fails the drill, still drops the database, and
        # keeps the last success time in the metrics
        r = usher("dr", "drill", "--config", bad)
        err = r.stderr.decode()
        expect(r.returncode == 1 and "sanity check 2" in err and "returned f" in err,
               f"failing sanity check: {r.returncode} {err}")
        expect(scratch_dbs(pg) == "0", "the scratch database was left after a failure")
        m = parse_metrics((textfile / "usher_dr_drill_main-db.prom").read_text())
        expect(m.value("usher_dr_drill_last_status", target="main-db") == 0, "status 0")
        expect(m.value("usher_dr_drill_last_success_timestamp_seconds", target="main-db")
               == last or m.value("usher_dr_drill_last_success_timestamp_seconds",
                                  target="main-db") > last, "last success lost")
        # without a scratch server: a usage error
        nos = h.write("noscratch.yml", f"backup: {{repository: {repo}, encryption_key: \"{KEY}\"}}\n")
        r = usher("dr", "drill", "--config", nos, "--target", "main-db")
        expect(r.returncode == 2 and "scratch_dsn" in r.stderr.decode(), r.stderr.decode())
        if h.problems:
            raise AssertionError("\n".join(h.problems))
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
