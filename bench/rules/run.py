#!/usr/bin/env python3
"""Rule engine benchmark: usher's series store and PromQL engine beside
Prometheus (Debian's 2.42) holding the same data.

The data: 10,000 series x 2 h at 15 s (480 samples each, 4.8 M samples)
ending now: 5,000 request counters (10 jobs x 500 instances, random
increments), 4,000 memory gauges (a random walk in whole pages), 1,000
histogram buckets; written once as OpenMetrics.

  usher       bench_rules (bench/rules/bench_rules.c, linked against
              libusher) loads the file into the store and reports its
              accounting (bytes per sample) and its RSS growth, then times
              each query (median of 15, in process) and one evaluation of
              the 100 alerting rules of rules.yml
  Prometheus  `promtool tsdb create-blocks-from openmetrics` turns the same
              file into blocks; Prometheus starts on them, loads rules.yml
              (evaluation_interval 15s), and each query is timed over HTTP
              (median of 15; the median of a trivial `1` query is reported
              as the HTTP overhead); rule evaluation time is its own
              prometheus_rule_group_last_duration_seconds; memory is its
              VmRSS after the queries and after a rule evaluation

Prometheus keeps blocks on disk (mmapped, paged in by queries), so its RSS
is what a Prometheus holding this window costs; usher holds everything in
memory. Both are reported; the ratio targets are the issue's: usher's query
time at most half of Prometheus', its memory at most a fifth.

  python3 bench/rules/run.py --build build
"""

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

QUERIES = [
    "sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (job, le) (rate(request_duration_seconds_bucket[5m])))",
    "topk(5, avg_over_time(memory_usage_bytes[10m]))",
    "sum(rate(http_requests_total{code=~\"5..\"}[5m])) / sum(rate(http_requests_total[5m]))",
]

STEP = 15
SAMPLES = 480


def generate(path, end):
    rnd = random.Random(42)
    start = end - (SAMPLES - 1) * STEP
    with open(path, "w") as f:
        f.write("# TYPE http_requests counter\n")
        for j in range(10):
            for i in range(500):
                code = "500" if i % 50 == 0 else "200"
                labels = f'job="api-{j}",instance="10.0.{j}.{i}:8080",code="{code}"'
                v = 0
                for k in range(SAMPLES):
                    v += rnd.randrange(100)
                    f.write(f"http_requests_total{{{labels}}} {v} {start + k * STEP}\n")
        f.write("# TYPE memory_usage_bytes gauge\n")
        for j in range(10):
            for i in range(400):
                labels = f'job="api-{j}",instance="10.0.{j}.{i}:8080"'
                # as a process' memory moves: whole pages, up and down
                v = 200_000_000 + rnd.randrange(100_000) * 4096
                for k in range(SAMPLES):
                    v = max(4096, v + (rnd.randrange(513) - 256) * 4096)
                    f.write(f"memory_usage_bytes{{{labels}}} {v} {start + k * STEP}\n")
        f.write("# TYPE request_duration_seconds histogram\n")
        bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, "+Inf"]
        for j in range(10):
            for i in range(10):
                counts = [0] * len(bounds)
                rows = {b: [] for b in range(len(bounds))}
                for k in range(SAMPLES):
                    inc = [rnd.randrange(20) for _ in bounds]
                    acc = 0
                    for b in range(len(bounds)):
                        acc += inc[b]
                        counts[b] += acc
                        rows[b].append(counts[b])
                for b, le in enumerate(bounds):
                    labels = f'job="api-{j}",instance="10.0.{j}.{i}:8080",le="{le}"'
                    for k in range(SAMPLES):
                        f.write(f"request_duration_seconds_bucket{{{labels}}} {rows[b][k]} "
                                f"{start + k * STEP}\n")
        f.write("# EOF\n")


def rules(path):
    """100 alerting rules of the kinds booking-platform alert files hold."""
    out = ["groups:"]
    for g in range(4):
        out.append(f"  - name: group-{g}\n    rules:")
        for r in range(25):
            n = g * 25 + r
            job = f"api-{n % 10}"
            kind = n % 5
            if kind == 0:
                expr = f'sum(rate(http_requests_total{{job="{job}",code=~"5.."}}[5m])) / ' \
                       f'sum(rate(http_requests_total{{job="{job}"}}[5m])) > 0.05'
            elif kind == 1:
                expr = f'histogram_quantile(0.99, sum by (le) (rate(' \
                       f'request_duration_seconds_bucket{{job="{job}"}}[5m]))) > 1'
            elif kind == 2:
                expr = f'avg_over_time(memory_usage_bytes{{job="{job}"}}[10m]) > 3.3e8'
            elif kind == 3:
                expr = f'absent(http_requests_total{{job="{job}",code="404"}})'
            else:
                expr = f'sum by (instance) (rate(http_requests_total{{job="{job}"}}[5m])) ' \
                       f'> 10'
            out.append(f"      - alert: Rule{n}\n        expr: '{expr}'\n        for: 5m\n"
                       f"        labels: {{severity: page}}\n"
                       f"        annotations: {{summary: 'value {{{{ $value }}}}'}}")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def prom_get(port, path, **params):
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.loads(r.read())


def prom_query_ms(port, q, t):
    times = []
    n = 0
    for _ in range(15):
        t0 = time.perf_counter()
        body = prom_get(port, "/api/v1/query", query=q, time=f"{t:.3f}")
        times.append((time.perf_counter() - t0) * 1000)
        if body["status"] != "success":
            raise SystemExit(f"prometheus query {q}: {body}")
        n = len(body["data"]["result"]) if isinstance(body["data"]["result"], list) else 1
    return statistics.median(times), n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="build directory with lib/libusher.a")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    work = tempfile.mkdtemp(prefix="usher-bench-rules-")
    prom = None
    try:
        end = int(time.time()) // STEP * STEP - 60
        data = os.path.join(work, "data.om")
        rulefile = os.path.join(work, "rules.yml")
        print("generating 10,000 series x 480 samples ...", file=sys.stderr)
        generate(data, end)
        rules(rulefile)

        exe = os.path.join(work, "bench_rules")
        libs = subprocess.run(["pkg-config", "--libs", "libpcre2-8", "yaml-0.1", "jansson",
                               "libcurl", "openssl", "zlib", "libpq", "hiredis", "libsystemd",
                               "sqlite3", "libzstd"],
                              capture_output=True, text=True, check=True).stdout.split()
        subprocess.run(["cc", "-O2", f"-I{ROOT}/lib", f"-I{build}/generated",
                        os.path.join(HERE, "bench_rules.c"), f"{build}/lib/libusher.a",
                        *libs, "-lm", "-lpthread", "-o", exe], check=True)
        def usher_round():
            r = subprocess.run([exe, data, rulefile, *QUERIES], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"bench_rules failed: {r.stderr}")
            return json.loads(r.stdout)

        print("prometheus: creating blocks ...", file=sys.stderr)
        tsdb = os.path.join(work, "prom-data")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", data, tsdb],
                       check=True, capture_output=True)
        port = free_port()
        cfg = os.path.join(work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(f"global: {{evaluation_interval: 15s}}\nrule_files: [{rulefile}]\n")
        prom = subprocess.Popen(["prometheus", f"--config.file={cfg}",
                                 f"--storage.tsdb.path={tsdb}",
                                 f"--web.listen-address=127.0.0.1:{port}",
                                 "--storage.tsdb.retention.time=30d"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if prom_get(port, "/api/v1/status/buildinfo")["status"] == "success":
                    break
            except OSError:
                time.sleep(0.5)
        # rounds alternate between the two, so a busy machine slows both
        urounds, prounds, overheads = [], [], []
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds}: usher ...", file=sys.stderr)
            urounds.append(usher_round())
            print(f"round {rnd + 1}/{args.rounds}: prometheus ...", file=sys.stderr)
            overheads.append(prom_query_ms(port, "1", end)[0])
            prounds.append({q: prom_query_ms(port, q, end) for q in QUERIES})
        usher = urounds[0]
        for i in range(len(QUERIES)):
            usher["queries"][i]["median_ms"] = statistics.median(
                u["queries"][i]["median_ms"] for u in urounds)
        usher["rules_eval_median_ms"] = statistics.median(u["rules_eval_median_ms"]
                                                         for u in urounds)
        usher["rss_growth_kib"] = statistics.median(u["rss_growth_kib"] for u in urounds)
        overhead = statistics.median(overheads)
        pq = {q: (statistics.median(p[q][0] for p in prounds), prounds[0][q][1])
              for q in QUERIES}
        # rule evaluation: Prometheus' own /metrics, once every group ran
        durations = {}
        deadline = time.time() + 120
        while time.time() < deadline and len(durations) < 4:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                text = r.read().decode()
            durations = {}
            for line in text.splitlines():
                if line.startswith("prometheus_rule_group_last_duration_seconds{"):
                    name, value = line.rsplit(" ", 1)
                    if float(value) > 0:
                        durations[name] = float(value)
            time.sleep(1)
        prom_rss = rss_kib(prom.pid)
        prom_rules_ms = sum(durations.values()) * 1000

        print(json.dumps({"usher": usher, "prometheus": {
            "rss_kib": prom_rss, "http_overhead_ms": overhead,
            "queries": {q: {"median_ms": v[0], "results": v[1]} for q, v in pq.items()},
            "rules_eval_ms": prom_rules_ms}}, indent=2))
        print("\n| measure | usher | Prometheus 2.42 | ratio |")
        print("|---|---|---|---|")
        print(f"| memory (RSS growth / RSS) | {usher['rss_growth_kib'] / 1024:.1f} MiB | "
              f"{prom_rss / 1024:.1f} MiB | {usher['rss_growth_kib'] / prom_rss:.2f}x |")
        print(f"| bytes per sample (store accounting) | {usher['bytes_per_sample']:.2f} | | |")
        for i, q in enumerate(QUERIES):
            u = usher["queries"][i]["median_ms"]
            p = pq[q][0]
            print(f"| `{q}` | {u:.2f} ms | {p:.2f} ms (HTTP incl.) | {u / p:.2f}x "
                  f"({u / max(p - overhead, 0.01):.2f}x without HTTP) |")
        print(f"| 100 alerting rules, one evaluation | {usher['rules_eval_median_ms']:.1f} ms "
              f"| {prom_rules_ms:.1f} ms | {usher['rules_eval_median_ms'] / prom_rules_ms:.2f}x |")
    finally:
        if prom:
            prom.terminate()
            try:
                prom.wait(30)
            except subprocess.TimeoutExpired:
                prom.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
