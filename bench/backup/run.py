#!/usr/bin/env python3
"""Backup and restore benchmark on a booking-like dataset (the same schema as
the integration tests: uuid keys, text, jsonb, btree/unique/GIN indexes,
foreign keys), in a throwaway PostgreSQL on loopback.

Backup, each run into an empty directory, the data read over TCP:
  usher        usher backup postgres --dsn ... (zstd -3, 2 threads, AES-256-GCM,
               manifest with exact row counts taken in pg_dump's snapshot)
  pg_dump -Fc  pg_dump's own compression (gzip -6 by default)
  pipeline     pg_dump -Fc -Z0 | zstd -3 -T2 | openssl enc -aes-256-ctr
Restore, each into a freshly created empty database:
  usher        usher restore ID --to DSN --jobs 2 (decrypt + decompress to a
               temp file, pg_restore -j2, row-count check)
  pg_restore   pg_restore -j2 from an uncompressed (-Z0) dump file

Each is run --reps times; medians are reported (the machine is shared).
Runs as root (PostgreSQL is started as postgres through setpriv, as the
integration tests do). Example:

  python3 bench/backup/run.py --usher build/bin/usher --rows 4000000 --reps 3
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import Harness  # noqa: E402
from pgserver import PgServer, booking_dataset_sql  # noqa: E402


def timed(argv, env=None, shell=False):
    start = time.monotonic()
    r = subprocess.run(argv, capture_output=True, env=env, shell=shell,
                       executable="/bin/bash" if shell else None)
    took = time.monotonic() - start
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {argv}\n{r.stderr.decode()[-2000:]}")
    return took, r.stdout.decode()


def size_of(path):
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--usher", default=str(ROOT / "build" / "bin" / "usher"))
    ap.add_argument("--rows", type=int, default=4_000_000, help="rows in bookings")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    usher = str(Path(args.usher).resolve())

    with Harness("bench-backup") as h:
        pg = PgServer(h).start(shared_buffers="256MB", max_wal_size="4GB",
                               maintenance_work_mem="256MB")
        pg.sql("CREATE DATABASE booking")
        h.write("data.sql", booking_dataset_sql(args.rows))
        t0 = time.monotonic()
        # no timeout: a large dataset takes minutes on a busy machine
        subprocess.run(pg._psql_argv("booking", "postgres") + ["-f", str(h.path("data.sql"))],
                       check=True, capture_output=True)
        gen = time.monotonic() - t0
        db_size = int(pg.sql("SELECT pg_database_size('booking')"))
        pg.sql("ALTER ROLE postgres PASSWORD 'bench'")
        dsn = f"host=127.0.0.1 port={pg.port} user=postgres password=bench dbname=booking"
        env = {**os.environ, "PGPASSWORD": "bench"}
        pg_dump = str(pg.bin / "pg_dump")
        pg_restore = str(pg.bin / "pg_restore")
        conn = f"-h 127.0.0.1 -p {pg.port} -U postgres"
        key = h.write("key", "ab" * 32, mode=0o600)
        out = h.path("out")
        res = {k: [] for k in ("usher", "pg_dump -Fc", "pipeline", "usher restore",
                               "pg_restore -j2")}
        sizes = {}
        print(f"dataset: {args.rows} bookings, database {db_size / 2**20:.0f} MiB, "
              f"generated in {gen:.0f} s", flush=True)
        backup_id = None
        for rep in range(args.reps):
            for name in ("usher", "pg_dump -Fc", "pipeline"):
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                if name == "usher":
                    took, stdout = timed([usher, "backup", "postgres", "--dsn", dsn, "--name",
                                          "bench", "--repo", str(out), "--key-file", str(key),
                                          "--quiet"])
                    backup_id = stdout.strip()
                    shutil.rmtree(h.path("keep"), ignore_errors=True)
                    shutil.copytree(out, h.path("keep"))
                elif name == "pg_dump -Fc":
                    took, _ = timed([pg_dump, *conn.split(), "-Fc", "-f", str(out / "d"),
                                     "booking"], env=env)
                else:
                    took, _ = timed(f"set -o pipefail; {pg_dump} {conn} -Fc -Z0 booking | "
                                    f"zstd -q -3 -T2 | openssl enc -aes-256-ctr -K {'ab' * 32} "
                                    f"-iv {'00' * 16} > {out / 'd'}", env=env, shell=True)
                res[name].append(took)
                sizes[name] = size_of(out)
                print(f"  rep {rep + 1} {name:12s} {took:7.2f} s  {sizes[name] / 2**20:8.1f} MiB",
                      flush=True)
        # restore: the plain dump for pg_restore, the kept usher backup
        raw = h.path("raw.dump")
        timed([pg_dump, *conn.split(), "-Fc", "-Z0", "-f", str(raw), "booking"], env=env)
        sizes["raw dump"] = size_of(raw)
        for rep in range(args.reps):
            for name in ("usher restore", "pg_restore -j2"):
                pg.sql("DROP DATABASE IF EXISTS target")
                pg.sql("CREATE DATABASE target")
                tdsn = dsn.replace("dbname=booking", "dbname=target")
                if name == "usher restore":
                    took, said = timed([usher, "restore", backup_id, "--repo",
                                        str(h.path("keep")), "--key-file", str(key), "--to",
                                        tdsn, "--jobs", "2", "--quiet"],
                                       env={**os.environ, "TMPDIR": str(h.tmp)})
                    print(f"    {said.strip()}", flush=True)
                else:
                    took, _ = timed([pg_restore, *conn.split(), "-j", "2", "-d", "target",
                                     str(raw)], env=env)
                res[name].append(took)
                print(f"  rep {rep + 1} {name:14s} {took:7.2f} s", flush=True)
        med = {k: statistics.median(v) for k, v in res.items()}
        print()
        print(f"| step | median of {args.reps} (s) | runs (s) | output |")
        print("|---|---|---|---|")
        for k in res:
            runs = ", ".join(f"{x:.2f}" for x in res[k])
            size = f"{sizes[k] / 2**20:.1f} MiB" if k in sizes else ""
            print(f"| {k} | {med[k]:.2f} | {runs} | {size} |")
        print()
        print(f"raw dump (-Z0): {sizes['raw dump'] / 2**20:.1f} MiB")
        print(f"usher backup / pipeline: {med['usher'] / med['pipeline']:.3f}x "
              f"(target <= 1.05x)")
        print(f"usher backup / pg_dump -Fc: {med['usher'] / med['pg_dump -Fc']:.3f}x")
        print(f"usher restore / pg_restore -j2: "
              f"{med['usher restore'] / med['pg_restore -j2']:.3f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()
