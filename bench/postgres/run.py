#!/usr/bin/env python3
"""PostgreSQL probe benchmark: usherd against prometheus-postgres-exporter,
one at a time, against the same throwaway PostgreSQL (the booking sandbox
loaded), at the same interval.

  idle      nothing connected: PostgreSQL's own background CPU, subtracted
            from the others
  usherd    one postgres probe (postgres_exporter's core metrics), interval
            --interval; this script scrapes usherd's /metrics at the same
            interval, as a Prometheus would
  usherd+q  the same plus examples/booking-queries.yml's five custom queries
  exporter  prometheus-postgres-exporter with its defaults, scraped at the
            same interval (each scrape is one collection)

For each it measures over --window seconds after a warm-up:
  tool CPU / cycle     CPU time of the exporter's threads over the window
                       (schedstat, ns), divided by the cycles (probe runs or
                       scrapes)
  PG CPU / cycle       CPU of every PostgreSQL process over the window (the
                       live ones from schedstat, plus the exited children
                       the postmaster reaped, cutime+cstime), minus idle,
                       per cycle
  RSS                  VmHWM of the exporter at the end of the window
  scrape               median time of a /metrics GET

Runs as root (PostgreSQL is started as the postgres user through setpriv,
like the integration tests, whose launcher this reuses). Example:

  python3 bench/postgres/run.py --usherd build/bin/usherd --window 60 --reps 3
"""

import argparse
import os
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from harness import Harness, free_port, start_usherd, wait_until  # noqa: E402
from pgserver import PgServer, children  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench-pw-1"


def cpu_seconds(pid):
    """utime+stime of pid (all threads), and of its reaped children, from
    /proc/PID/stat (clock ticks: 10 ms resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK


def run_seconds(pid):
    """CPU time of pid's live threads in nanosecond resolution
    (/proc/PID/task/*/schedstat); threads that ended are not in it."""
    total = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((t / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def pg_cpu(pg):
    """Every PostgreSQL process: the live ones from schedstat, the exited
    ones (backends of closed connections) from the postmaster's cutime."""
    total = run_seconds(pg.proc.pid) + cpu_seconds(pg.proc.pid)[1]
    for pid in children(pg.proc.pid):
        try:
            total += run_seconds(pid)
        except OSError:
            pass  # exited between the listing and the read: in cutime soon
    return total


def tool_cpu(pid):
    # schedstat of the live threads: an exporter's threads live as long as it
    return run_seconds(pid)


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Scraper:
    """GETs url every interval seconds on its own thread."""

    def __init__(self, url, interval):
        self.url, self.interval = url, interval
        self.times, self.count, self.stop = [], 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        nxt = time.monotonic()
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                with opener.open(self.url, timeout=10) as r:
                    r.read()
                self.times.append(time.monotonic() - t)
                self.count += 1
            except OSError:
                pass
            nxt += self.interval
            self.stop.wait(max(0, nxt - time.monotonic()))

    def close(self):
        self.stop.set()
        self.thread.join()


def runs_total(url):
    text = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("usher_probe_runs_total{"))


USHERD_CONFIG = """\
global: {{scrape_interval: {interval}ms}}
probes:
  - name: booking-db
    type: postgres
    dsn: "{dsn}"
    interval: {interval}ms
    timeout: {timeout}ms
"""


def measure(h, pg, tool, args, rep):
    """One scenario; returns its row (per-cycle figures in ms)."""
    warm, window = args.warmup, args.window
    proc, scraper, url = None, None, None
    dsn = pg.dsn("usher" if tool.startswith("usherd") else "pgexp", PASSWORD, "booking",
                 sslmode="disable")
    if tool.startswith("usherd"):
        text = USHERD_CONFIG.format(interval=int(args.interval * 1000),
                                    timeout=int(args.interval * 900), dsn=dsn)
        if tool == "usherd+q":
            queries = (ROOT / "examples" / "booking-queries.yml").read_text()
            block = queries[queries.index("    queries:\n"):]
            text += block.replace("timeout: 3s", "timeout: 500ms").replace("timeout: 2s",
                                                                            "timeout: 500ms")
        u = start_usherd(h, text, name=f"usherd-{tool}-{rep}")
        proc, url = u.proc, u.url + "/metrics"
    elif tool == "exporter":
        port = free_port()
        proc = h.spawn(f"exporter-{rep}", [args.exporter, f"--web.listen-address=127.0.0.1:{port}"],
                       env={**os.environ, "DATA_SOURCE_NAME": dsn})
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: urllib.request.build_opener(urllib.request.ProxyHandler({}))
                   .open(url, timeout=2).status == 200, 20, "postgres_exporter to listen")
    if url:
        scraper = Scraper(url, args.interval)
    time.sleep(warm)
    pg0 = pg_cpu(pg)
    t0 = time.monotonic()
    tool0 = tool_cpu(proc.pid) if proc else 0
    runs0 = runs_total(url) if tool.startswith("usherd") else 0
    scrapes0 = scraper.count if scraper else 0
    time.sleep(window)
    pg1 = pg_cpu(pg)
    elapsed = time.monotonic() - t0
    tool1 = tool_cpu(proc.pid) if proc else 0
    if tool.startswith("usherd"):
        cycles = runs_total(url) - runs0
    elif scraper:
        cycles = scraper.count - scrapes0
    else:
        cycles = elapsed / args.interval
    row = {"tool": tool, "cycles": cycles, "elapsed": elapsed, "pg_cpu": pg1 - pg0,
           "tool_cpu": tool1 - tool0, "rss_kib": vm_hwm_kib(proc.pid) if proc else 0,
           "scrape_ms": statistics.median(scraper.times[-window:]) * 1000 if scraper and scraper.times else 0}
    if scraper:
        scraper.close()
    if proc:
        proc.stop()
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--usherd", default=str(ROOT / "build" / "bin" / "usherd"))
    ap.add_argument("--exporter", default="/usr/bin/prometheus-postgres-exporter")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    os.environ["USHERD"] = args.usherd
    tools = ["idle", "usherd", "usherd+q", "exporter"]
    rows = {t: [] for t in tools}
    with Harness("bench-postgres") as h:
        pg = PgServer(h).start(max_connections="50")
        pg.create_login("usher", PASSWORD, db="booking")
        pg.sql_file(ROOT / "examples" / "sandbox" / "schema.sql", db="booking")
        pg.sql_file(ROOT / "examples" / "sandbox" / "seed.sql", db="booking")
        pg.sql("GRANT usher_reader TO usher", db="booking")
        pg.create_login("pgexp", PASSWORD)
        version = pg.sql("SHOW server_version")
        for rep in range(args.reps):
            order = tools if rep % 2 == 0 else [tools[0]] + tools[:0:-1]
            for tool in order:
                row = measure(h, pg, tool, args, rep)
                rows[tool].append(row)
                print(f"rep {rep} {tool}: {row}", file=sys.stderr, flush=True)
    idle = statistics.median(r["pg_cpu"] / r["elapsed"] for r in rows["idle"])
    print(f"\nPostgreSQL {version}, interval {args.interval}s, "
          f"window {args.window}s, median of {args.reps} reps; PostgreSQL idle CPU "
          f"{idle * 1000:.2f} ms/s subtracted\n")
    print("| tool | cycles | tool CPU / cycle | PG CPU / cycle | peak RSS | /metrics GET |")
    print("|------|-------:|-----------------:|---------------:|---------:|-------------:|")
    for tool in tools[1:]:
        rs = rows[tool]
        cyc = statistics.median(r["cycles"] for r in rs)
        tcpu = statistics.median(r["tool_cpu"] / r["cycles"] for r in rs) * 1000
        pcpu = statistics.median((r["pg_cpu"] - idle * r["elapsed"]) / r["cycles"] for r in rs) * 1000
        rss = statistics.median(r["rss_kib"] for r in rs) / 1024
        scr = statistics.median(r["scrape_ms"] for r in rs)
        print(f"| {tool} | {cyc:.0f} | {tcpu:.2f} ms | {pcpu:.2f} ms | {rss:.1f} MiB | {scr:.2f} ms |")


if __name__ == "__main__":
    main()
