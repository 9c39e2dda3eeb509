#!/usr/bin/env python3
"""Journey probe benchmark: CPU per journey step against the plain HTTP
probe's CPU per request (issue 9: within 1.5x).

Two usherd configurations probe the same booking sandbox
(examples/sandbox/booking_api.py on a free loopback port), at the same
request rate:

  journey   --journeys N journeys (default 50) of 5 steps each (search,
            seat map, hold, dry-run checkout, release), interval --interval
            (default 10s). Each journey holds its own seat, so journeys
            never collide.
  http      5*N plain http probes (GET /api/events?q=...) at the same
            interval: as many requests per second.

For each run, after a warm-up of one interval, it measures over --window
seconds: usherd's CPU (utime+stime of all its threads, /proc/PID/stat) and
the requests the sandbox answered (its booking_http_requests_total, /metrics
excluded), and reports CPU microseconds per request. Each configuration runs
--reps times, alternating; the table shows medians and the ratio of the
medians. The sandbox's own CPU is not counted. Loopback only; everything
started is stopped on exit.

Example:
  python3 bench/journey/run.py --usherd build-journey/bin/usherd --reps 3 --window 40
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
        return r.read().decode()


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_for(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def sandbox_requests(api):
    total = 0
    for line in get(f"{api}/metrics").splitlines():
        if line.startswith("booking_http_requests_total{") and 'route="/metrics"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def journey_config(api, n, interval):
    out = ["probes:"]
    for k in range(n):
        event, idx = k % 3 + 1, k // 3
        seat = f"{'ABCD'[idx // 10]}{idx % 10 + 1}"
        out.append(f"""\
  - name: journey-{k}
    type: journey
    interval: {interval}
    timeout: 5s
    base_url: {api}
    variables: {{event_id: "{event}", seat: {seat}}}
    steps:
      - name: search
        request: {{url: "/api/events?q=o"}}
        expect: {{json: [{{pointer: /events/0/id, type: integer}}]}}
      - name: seatmap
        request: {{url: "/api/events/{{{{event_id}}}}/seats"}}
        expect: {{fail_if_body_not_matches_regexp: ['"state": "free"']}}
      - name: hold
        request: {{method: POST, url: /api/holds, body: '{{"event_id": {event}, "seat": "{{{{seat}}}}"}}'}}
        expect: {{valid_status_codes: [201]}}
        extract: {{hold_id: {{json: /hold_id}}}}
      - name: checkout
        request: {{method: POST, url: /api/checkout, json: {{hold_id: "{{{{hold_id}}}}", dry_run: true}}}}
        expect: {{json: [{{pointer: /payable, equals: true}}]}}
      - name: release
        always: true
        request: {{method: DELETE, url: "/api/holds/{{{{hold_id}}}}"}}
        expect: {{valid_status_codes: [204]}}""")
    return "\n".join(out) + "\n"


def http_config(api, n, interval):
    out = ["probes:"]
    for k in range(n):
        out.append(f"""\
  - name: http-{k}
    type: http
    interval: {interval}
    timeout: 5s
    url: {api}/api/events?q=o&t={k}
    json: [{{pointer: /events/0/id, type: integer}}]""")
    return "\n".join(out) + "\n"


class Run:
    def __init__(self, args, work, name, config):
        self.args, self.work, self.name = args, work, name
        path = os.path.join(work, f"{name}.yml")
        with open(path, "w") as f:
            f.write(config)
        state = os.path.join(work, f"{name}-state")
        os.makedirs(state, exist_ok=True)
        self.out = open(os.path.join(work, f"{name}.out"), "w")
        self.proc = subprocess.Popen([args.usherd, "--config", path, "--listen", "127.0.0.1:0",
                                      "--state-dir", state, "--log-format", "ecs"],
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.port = wait_for(self._port, 30, f"usherd ({name}) to listen")

    def _port(self):
        if self.proc.poll() is not None:
            raise SystemExit(f"usherd exited: see {self.out.name}")
        with open(self.out.name) as f:
            for line in f:
                if '"listening"' in line:
                    return json.loads(line).get("server.port")
        return None

    def successes(self):
        text = get(f"http://127.0.0.1:{self.port}/metrics")
        vals = [float(m.group(1)) for m in re.finditer(r"^probe_success\{[^}]*\} (\S+)$", text, re.M)]
        return sum(vals), len(vals)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()


def measure(args, work, api, kind):
    interval_s = float(args.interval.rstrip("s"))
    config = (journey_config if kind == "journey" else http_config)(
        api, args.journeys if kind == "journey" else 5 * args.journeys, args.interval)
    r = Run(args, work, kind, config)
    try:
        time.sleep(interval_s + 2)  # every probe has run once
        c0, q0, t0 = cpu_s(r.proc.pid), sandbox_requests(api), time.monotonic()
        time.sleep(args.window)
        c1, q1, t1 = cpu_s(r.proc.pid), sandbox_requests(api), time.monotonic()
        ok, total = r.successes()
    finally:
        r.stop()
    reqs = q1 - q0 - 2  # the two /metrics reads of the sandbox are not counted; they are
    res = {"kind": kind, "cpu_s": c1 - c0, "requests": reqs, "secs": t1 - t0,
           "us_per_request": 1e6 * (c1 - c0) / max(reqs, 1), "success": f"{ok:.0f}/{total}"}
    log(f"{kind}: {res}")
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--usherd", required=True)
    p.add_argument("--journeys", type=int, default=50)
    p.add_argument("--interval", default="10s")
    p.add_argument("--window", type=float, default=40)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    if args.journeys > 120:
        raise SystemExit("--journeys: at most 120 (the sandbox has 3 events of 40 seats)")
    work = tempfile.mkdtemp(prefix="usher-bench-journey-")
    port = free_port()
    sandbox = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples/sandbox/booking_api.py"),
                                "--port", str(port), "--hold-ttl", "600"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    api = f"http://127.0.0.1:{port}"
    results = {"journey": [], "http": []}
    try:
        wait_for(lambda: get(f"{api}/health"), 20, "the sandbox")
        for rep in range(args.reps):
            order = ("journey", "http") if rep % 2 == 0 else ("http", "journey")
            for kind in order:
                results[kind].append(measure(args, work, api, kind))
    finally:
        os.killpg(sandbox.pid, signal.SIGTERM)
        sandbox.wait(10)
    med = {k: statistics.median(r["us_per_request"] for r in v) for k, v in results.items()}
    print(f"| config | requests/s | CPU µs per request (median of {args.reps}) | runs |")
    print("|--------|-----------:|------:|------|")
    for kind, label in (("journey", f"{args.journeys} journeys x 5 steps"),
                        ("http", f"{5 * args.journeys} http probes")):
        rate = statistics.median(r["requests"] / r["secs"] for r in results[kind])
        runs = ", ".join(f"{r['us_per_request']:.0f}" for r in results[kind])
        print(f"| {label}, interval {args.interval} | {rate:.1f} | {med[kind]:.0f} | {runs} |")
    print(f"\nratio journey/http: {med['journey'] / med['http']:.2f} (target <= 1.5)")
    print(f"probe_success at the end of each run: "
          f"{', '.join(r['success'] for k in results for r in results[k])}")


if __name__ == "__main__":
    main()
