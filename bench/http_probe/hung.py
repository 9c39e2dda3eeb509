#!/usr/bin/env python3
"""Hung-target benchmark: the CPU usherd spends when its HTTP targets accept
connections and never answer, so about N * timeout / interval transfers are
always in flight.

N probes (interval 1s, timeout 900ms, the http_probe benchmark's probe)
point at one loopback server that accepts every connection, reads and
discards what it is sent, never answers, and closes its side only when the
prober does (tests/integration/harness.py's HangServer, made to hold
thousands of connections). One or more usherd binaries are run in turn,
alternating, each for a warm-up then a window; for each run it reports
utime+stime of usherd over the window (CPU seconds per second of window),
probe runs completed in the window (all time out), peak RSS (VmHWM) and,
when the binary exposes them, the loop's wake-ups and socket events per
second (usher_loop_wakeups_total, usher_loop_socket_events_total).
The first binary is the baseline: the report gives every other binary's
CPU as a ratio to it, repetition by repetition.

Example (before/after a change):
  python3 bench/http_probe/hung.py --n 1000 --reps 3 \\
      --usherd /tmp/build-before/bin/usherd --usherd build-perf/bin/usherd
"""

import argparse
import os
import resource
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class HangServer:
    """Accepts, reads and discards, never answers; closes when the peer
    does. One thread, epoll."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.open = 0
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            for key, _ in self.sel.select(0.2):
                if key.fileobj is self.sock:
                    while True:
                        try:
                            c, _ = self.sock.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:  # EMFILE: leave it in the backlog
                            break
                        c.setblocking(False)
                        self.sel.register(c, selectors.EVENT_READ)
                        self.accepted += 1
                        self.open += 1
                    continue
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(c)
                    c.close()
                    self.open -= 1

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {"runs": 0.0}
    for line in text.splitlines():
        if line.startswith("usher_probe_runs_total{"):
            out["runs"] += float(line.rsplit(" ", 1)[1])
        for name in ("usher_loop_wakeups_total", "usher_loop_socket_events_total"):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
    return out


def config(n, hang_port, listen, state):
    lines = [f"state_dir: {state}", "server:", f"  listen: 127.0.0.1:{listen}", "probes:"]
    for i in range(n):
        lines += [f"  - name: t{i}", "    type: http",
                  f"    url: http://127.0.0.1:{hang_port}/health?t={i}",
                  "    interval: 1s", "    timeout: 900ms", "    ip_protocol: ip4"]
    return "\n".join(lines) + "\n"


def run_one(binary, n, hang, args, work, tag):
    listen = free_port()
    state = os.path.join(work, f"state-{tag}")
    os.makedirs(state, exist_ok=True)
    cfg = os.path.join(work, f"usherd-{tag}.yml")
    with open(cfg, "w") as f:
        f.write(config(n, hang.port, listen, state))
    out = open(os.path.join(work, f"usherd-{tag}.log"), "wb")
    p = subprocess.Popen([binary, "--config", cfg, "--log-format", "text"], stdout=out,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    out.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            if p.poll() is not None:
                raise SystemExit(f"{binary} exited with {p.returncode}; see {work}")
            try:
                scrape(listen)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{binary} did not serve /metrics within 30s")
                time.sleep(0.2)
        time.sleep(args.warmup)
        m0, c0, t0 = scrape(listen), cpu_s(p.pid), time.monotonic()
        time.sleep(args.duration)
        m1, c1, t1 = scrape(listen), cpu_s(p.pid), time.monotonic()
        secs = t1 - t0
        r = {"binary": binary, "cpu_per_s": (c1 - c0) / secs, "runs_per_s": (m1["runs"] - m0["runs"]) / secs,
             "hwm_mib": status_kib(p.pid, "VmHWM") / 1024, "in_flight": hang.open}
        for name in ("usher_loop_wakeups_total", "usher_loop_socket_events_total"):
            if name in m0 and name in m1:
                r[name] = (m1[name] - m0[name]) / secs
        return r
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--usherd", action="append", required=True,
                    help="an usherd binary; give it twice or more to compare (the first is the baseline)")
    ap.add_argument("--n", type=int, default=1000, help="hung targets (default 1000)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=20.0, help="window in seconds (default 20)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="usher-hung-")
    log(f"work directory {work}")
    hang = HangServer()
    results = []
    try:
        for rep in range(args.reps):
            order = list(enumerate(args.usherd))
            if rep % 2:
                order.reverse()
            for k, b in order:
                r = run_one(b, args.n, hang, args, work, f"{k}-{rep}")
                r["k"], r["rep"] = k, rep
                log(f"rep {rep + 1} usherd #{k}: {r['cpu_per_s']:.3f} CPU-s/s, "
                    f"{r['runs_per_s']:.0f} runs/s, {r['in_flight']} connections open, "
                    f"peak RSS {r['hwm_mib']:.1f} MiB, wake-ups/s "
                    f"{r.get('usher_loop_wakeups_total', float('nan')):.0f}")
                results.append(r)
    finally:
        hang.close()
    print(f"\nN = {args.n} hung targets, interval 1s, timeout 900ms; window {args.duration:.0f}s "
          f"after {args.warmup:.0f}s; {args.reps} reps, alternating\n")
    print("| usherd | CPU-s per s (median, range) | ratio to #0 (per rep) | runs/s | peak RSS MiB "
          "| loop wake-ups/s | socket events/s |")
    print("|---|---|---|---|---|---|---|")
    for k, b in enumerate(args.usherd):
        rs = [r for r in results if r["k"] == k]
        cpu = [r["cpu_per_s"] for r in rs]
        ratios = []
        for r in rs:
            base = [x for x in results if x["k"] == 0 and x["rep"] == r["rep"]][0]
            ratios.append(r["cpu_per_s"] / base["cpu_per_s"] if base["cpu_per_s"] else float("nan"))
        wk = [r["usher_loop_wakeups_total"] for r in rs if "usher_loop_wakeups_total" in r]
        ev = [r["usher_loop_socket_events_total"] for r in rs if "usher_loop_socket_events_total" in r]
        print(f"| #{k} `{b}` | {statistics.median(cpu):.3f} ({min(cpu):.3f}–{max(cpu):.3f}) "
              f"| {' / '.join(f'{x:.3f}' for x in ratios)} "
              f"| {statistics.median(r['runs_per_s'] for r in rs):.0f} "
              f"| {statistics.median(r['hwm_mib'] for r in rs):.1f} "
              f"| {statistics.median(wk):.0f} | {statistics.median(ev):.0f} |" if wk else
              f"| #{k} `{b}` | {statistics.median(cpu):.3f} ({min(cpu):.3f}–{max(cpu):.3f}) "
              f"| {' / '.join(f'{x:.3f}' for x in ratios)} "
              f"| {statistics.median(r['runs_per_s'] for r in rs):.0f} "
              f"| {statistics.median(r['hwm_mib'] for r in rs):.1f} | – | – |")


if __name__ == "__main__":
    main()
