#!/usr/bin/env python3
"""Redis probe benchmark: usherd against prometheus-redis-exporter, one at a
time, against the same throwaway redis-server (KEYS keys, HOLDS of them
hold:*), at the same interval.

  idle             nothing connected: redis' own background CPU, subtracted
                   from the others
  usherd           one redis probe (INFO ALL, SLOWLOG LEN, PING), interval
                   --interval; this script scrapes usherd's /metrics at the
                   same interval, as a Prometheus would
  exporter         prometheus-redis-exporter with its defaults, scraped at
                   the same interval (each scrape is one collection)
  usherd+count     usherd counting hold:* (key_patterns count_only, budget
                   large enough for the whole keyspace)
  exporter+count   the exporter with -count-keys db0=hold:* (its SCAN count)
  usherd+bytes     usherd counting hold:* with MEMORY USAGE per key (the
                   exporter has no equivalent short of -check-keys, which
                   exports one series per key)

For each it measures over --window seconds after a warm-up:
  tool CPU / cycle   CPU time of the exporter process (all its threads'
                     schedstat) over the window, divided by the cycles (probe
                     runs or scrapes)
  redis CPU / cycle  redis-server's CPU over the window, minus idle, per cycle
  RSS                VmHWM of the exporter at the end of the window
  scrape             median time of a /metrics GET

Example:
  python3 bench/redis/run.py --usherd build/bin/usherd --window 60 --reps 3
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
from cacheservers import RedisServer, seed  # noqa: E402
from harness import Harness, free_port, start_usherd, wait_until  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time of pid, in seconds: the sum of its threads' schedstat run
    times (nanoseconds; utime+stime in /proc/PID/stat counts 10 ms ticks,
    too coarse for a few ms a cycle). Falls back to the ticks."""
    total, found = 0, False
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
                    found = True
            except OSError:
                pass  # the thread just exited
    except OSError:
        pass
    if found:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def get(url, timeout=10):
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=timeout) as r:
        return r.read().decode()


class Scraper:
    """GETs url every interval seconds on its own thread."""

    def __init__(self, url, interval):
        self.url, self.interval = url, interval
        self.times, self.count, self.stop = [], 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        nxt = time.monotonic()
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                get(self.url)
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
    return sum(float(line.rsplit(" ", 1)[1]) for line in get(url).splitlines()
               if line.startswith("usher_probe_runs_total{"))


USHERD_CONFIG = """\
global: {{scrape_interval: {interval}ms}}
probes:
  - name: seat-cache
    type: redis
    address: "127.0.0.1:{port}"
    interval: {interval}ms
    timeout: {timeout}ms
"""
KEYS_BLOCK = """\
    key_patterns: [{{pattern: "hold:*", count_only: {count_only}}}]
    key_budget: {budget}
"""


def measure(h, redis, tool, args, rep):
    """One scenario; returns its row."""
    proc, scraper, url = None, None, None
    if tool.startswith("usherd"):
        text = USHERD_CONFIG.format(interval=int(args.interval * 1000), port=redis.port,
                                    timeout=int(args.interval * 900))
        if tool != "usherd":
            text += KEYS_BLOCK.format(count_only="true" if tool == "usherd+count" else "false",
                                      budget=args.keys * 2)
        u = start_usherd(h, text, name=f"usherd-{tool.replace('+', '-')}-{rep}")
        proc, url = u.proc, u.url + "/metrics"
    elif tool.startswith("exporter"):
        port = free_port()
        argv = [args.exporter, f"-web.listen-address=127.0.0.1:{port}",
                f"-redis.addr=redis://127.0.0.1:{redis.port}"]
        if tool == "exporter+count":
            argv.append("-count-keys=db0=hold:*")
        proc = h.spawn(f"exporter-{tool.replace('+', '-')}-{rep}", argv)
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: get(url, timeout=2), 20, "redis_exporter to listen")
    if url:
        scraper = Scraper(url, args.interval)
    time.sleep(args.warmup)
    r0, t0 = cpu_seconds(redis.proc.pid), time.monotonic()
    tool0 = cpu_seconds(proc.pid) if proc else 0
    runs0 = runs_total(url) if tool.startswith("usherd") else 0
    scrapes0 = scraper.count if scraper else 0
    time.sleep(args.window)
    r1, elapsed = cpu_seconds(redis.proc.pid), time.monotonic() - t0
    tool1 = cpu_seconds(proc.pid) if proc else 0
    if tool.startswith("usherd"):
        cycles = runs_total(url) - runs0
        text = get(url)
        if "+" in tool:
            line = [x for x in text.splitlines() if x.startswith("usher_redis_key_pattern_keys{")]
            if not line or float(line[0].rsplit(" ", 1)[1]) != args.holds:
                raise SystemExit(f"{tool} counted {line}, want {args.holds}")
    elif scraper:
        cycles = scraper.count - scrapes0
        if tool == "exporter+count":
            text = get(url)
            line = [x for x in text.splitlines() if x.startswith("redis_keys_count{")]
            if not line or float(line[0].rsplit(" ", 1)[1]) != args.holds:
                raise SystemExit(f"{tool} counted {line}, want {args.holds}")
    else:
        cycles = elapsed / args.interval
    row = {"tool": tool, "cycles": cycles, "elapsed": elapsed, "redis_cpu": r1 - r0,
           "tool_cpu": tool1 - tool0, "rss_kib": vm_hwm_kib(proc.pid) if proc else 0,
           "scrape_ms": statistics.median(scraper.times) * 1000 if scraper and scraper.times
           else 0}
    if scraper:
        scraper.close()
    if proc:
        proc.stop()
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--usherd", default=str(ROOT / "build" / "bin" / "usherd"))
    ap.add_argument("--exporter", default="/usr/bin/prometheus-redis-exporter")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keys", type=int, default=50000)
    ap.add_argument("--holds", type=int, default=10000)
    args = ap.parse_args()
    os.environ["USHERD"] = args.usherd
    tools = ["idle", "usherd", "exporter", "usherd+count", "exporter+count", "usherd+bytes"]
    rows = {t: [] for t in tools}
    with Harness("bench-redis") as h:
        redis = RedisServer(h, "redis")
        seed(redis, "hold:", args.holds, ttl=3600)
        seed(redis, "other:", args.keys - args.holds)
        version = redis.client().info("server")["redis_version"]
        for rep in range(args.reps):
            order = tools if rep % 2 == 0 else [tools[0]] + tools[:0:-1]
            for tool in order:
                row = measure(h, redis, tool, args, rep)
                rows[tool].append(row)
                print(f"rep {rep} {tool}: {row}", file=sys.stderr, flush=True)
    idle = statistics.median(r["redis_cpu"] / r["elapsed"] for r in rows["idle"])
    print(f"\nredis-server {version}, {args.keys} keys ({args.holds} hold:*), interval "
          f"{args.interval}s, window {args.window}s, median of {args.reps} reps; redis idle CPU "
          f"{idle * 1000:.2f} ms/s subtracted\n")
    print("| tool | cycles | tool CPU / cycle | redis CPU / cycle | peak RSS | /metrics GET |")
    print("|------|-------:|-----------------:|------------------:|---------:|-------------:|")
    for tool in tools[1:]:
        rs = rows[tool]
        cyc = statistics.median(r["cycles"] for r in rs)
        tcpu = statistics.median(r["tool_cpu"] / r["cycles"] for r in rs) * 1000
        rcpu = statistics.median((r["redis_cpu"] - idle * r["elapsed"]) / r["cycles"]
                                 for r in rs) * 1000
        rss = statistics.median(r["rss_kib"] for r in rs) / 1024
        scr = statistics.median(r["scrape_ms"] for r in rs)
        print(f"| {tool} | {cyc:.0f} | {tcpu:.2f} ms | {rcpu:.2f} ms | {rss:.1f} MiB | "
              f"{scr:.2f} ms |")


if __name__ == "__main__":
    main()
