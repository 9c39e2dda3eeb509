#!/usr/bin/env python3
"""HTTP probe benchmark: usherd against prometheus-blackbox-exporter.

Both exporters probe the same N distinct HTTP targets (one nginx on a free
loopback port serving a small static health JSON at /health; target i is
/health?t=i) once per second:

  usherd    probes on its own schedule (interval 1s, timeout 900ms, start
            times spread across the interval); the driver scrapes its
            /metrics once per second, as a Prometheus would.
  blackbox  is asked by the driver for /probe?module=http_2xx&target=URL_i,
            each of the N targets once per second, the N requests spread
            evenly across the second, as a Prometheus with N scrape targets
            at scrape_interval 1s would (Prometheus' Accept and
            X-Prometheus-Scrape-Timeout-Seconds headers, gzip, keep-alive).

For every run it measures, over a window after a warm-up:
  CPU seconds   utime+stime of the exporter process (/proc/PID/stat, all
                threads) over the window
  peak RSS      VmHWM of the exporter (/proc/PID/status) at the window's end
  probe rate    usherd: increase of sum(usher_probe_runs_total) over the
                window; blackbox: /probe responses that completed in the
                window (and how many said probe_success 1)
  render time   median of --render-samples sequential GETs of /metrics after
                the window, on one keep-alive connection, while the
                exporter is still under load. For blackbox /metrics holds only
                its own self metrics (it has no aggregate of probe results),
                so its per-/probe response time (median over the window) is
                reported too.

Each (tool, N) is run --reps times, in alternating order; the tables show the
median over reps. Everything started here is stopped on exit, including on
Ctrl-C. Only python3's standard library and a C compiler with libcurl
(libcurl4-openssl-dev) are needed; the load driver is driver.c next to this
file. Loopback only.

Example:
  python3 bench/http_probe/run.py --usherd build/bin/usherd --profile 30
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

PROM_ACCEPT = ("Accept: application/openmetrics-text;version=1.0.0,"
               "application/openmetrics-text;version=0.0.1;q=0.75,"
               "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Fatal(Exception):
    pass


# ---------------------------------------------------------------- processes

class Procs:
    """Every process this script starts, each in its own session, so that
    stopping one stops its children (nginx workers) and nothing else."""

    def __init__(self):
        self.procs = []

    def start(self, argv, logfile, **kw):
        out = open(logfile, "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        out.close()
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=5.0):
        """Stops p (its process group); returns seconds it took to exit on
        sig, or None when it had to be killed."""
        if p not in self.procs:
            return 0.0
        self.procs.remove(p)
        if p.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=grace)
            took = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            took = None
        try:
            os.killpg(p.pid, signal.SIGKILL)  # stragglers in the group
        except ProcessLookupError:
            pass
        if p.poll() is None:
            p.wait(timeout=5)
        return took

    def stop_all(self):
        for p in list(reversed(self.procs)):
            self.stop(p, grace=3.0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def wait_http(url, proc, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Fatal(f"{what} exited with status {proc.returncode} before it was ready")
        try:
            status, _ = http_get(url, timeout=1.0)
            if status == 200:
                return
        except Exception as e:  # not listening yet
            last = e
        time.sleep(0.1)
    raise Fatal(f"{what} not ready at {url} within {timeout}s ({last})")


# ---------------------------------------------------------------- /proc

def proc_cpu_s(pid):
    """utime+stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # fields after "(comm)": state is rest[0]; utime is field 14, stime 15
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0])
    return out  # VmHWM/VmRSS in KiB


class AnonPeak:
    """Samples RssAnon (private, anonymous memory: heap, stacks, private
    mappings; no shared-library pages) of pid every 200 ms in a thread and
    keeps the highest. /proc has a high-water mark for the whole RSS only
    (VmHWM, which also counts the file-backed pages of shared libraries), so
    this is the anonymous part's peak as far as 200 ms sampling sees it."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_kib = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, proc_status(self.pid).get("RssAnon", 0))
            except OSError:
                return
            self.stop.wait(0.2)

    def finish(self):
        self.stop.set()
        self.thread.join(5)
        return self.peak_kib / 1024


def machine_busy_s():
    """CPU seconds all CPUs spent not idle since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK


def machine_info():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "model": model,
        "mem_gib": round(mem_kib / 1048576, 1),
        "kernel": platform.release(),
    }


def tool_version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except Exception as e:
        return f"unknown ({e})"


# ---------------------------------------------------------------- metrics text

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Yields (name, labels dict, value) for every sample line."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            continue
        labels = dict(LABEL_RE.findall(m.group(3) or ""))
        try:
            yield m.group(1), labels, float(m.group(4))
        except ValueError:
            continue


def usherd_runs(port):
    """sum(usher_probe_runs_total) by outcome, and the number of series."""
    _, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    text = body.decode("utf-8", "replace")
    by_outcome = {}
    series = 0
    probe_success = {}
    for name, labels, value in parse_metrics(text):
        series += 1
        if name == "usher_probe_runs_total":
            o = labels.get("outcome", "")
            by_outcome[o] = by_outcome.get(o, 0.0) + value
        elif name == "probe_success":
            probe_success[(labels.get("job"), labels.get("instance"))] = value
    return {"by_outcome": by_outcome, "total": sum(by_outcome.values()),
            "series": series, "bytes": len(body),
            "probe_success_targets": len(probe_success),
            "probe_success_1": sum(1 for v in probe_success.values() if v == 1)}


# ---------------------------------------------------------------- setup

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp-body;
  proxy_temp_path {dir}/tmp-proxy;
  fastcgi_temp_path {dir}/tmp-fastcgi;
  uwsgi_temp_path {dir}/tmp-uwsgi;
  scgi_temp_path {dir}/tmp-scgi;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {dir}/www;
    location = /health {{
      default_type application/json;
      try_files /health.json =404;
    }}
  }}
}}
"""

HEALTH_JSON = '{"status":"ok","service":"booking-api","checks":{"db":"ok","cache":"ok"}}\n'

BLACKBOX_CONF = """\
# The http_2xx module as blackbox_exporter's example config has it, with the
# timeout pinned to usherd's (900ms) and IPv4 preferred as usherd does.
modules:
  http_2xx:
    prober: http
    timeout: 900ms
    http:
      method: GET
      valid_status_codes: []   # default: 2xx
      follow_redirects: true
      preferred_ip_protocol: ip4
      ip_protocol_fallback: true
"""


def target_url(nginx_port, i):
    return f"http://127.0.0.1:{nginx_port}/health?t={i}"


def usherd_config(n, nginx_port, listen_port, state_dir):
    lines = [
        "# generated by bench/http_probe/run.py",
        "global:",
        "  scrape_interval: 15s",
        "server:",
        f'  listen: "127.0.0.1:{listen_port}"',
        f"state_dir: {state_dir}",
        "probes:",
    ]
    for i in range(n):
        url = target_url(nginx_port, i)
        # blackbox's http_2xx: GET, 2xx valid, redirects followed, IPv4.
        # The instance label is the target URL, as the usual blackbox
        # relabelling (__param_target -> instance) makes it.
        lines += [
            f"  - name: t{i}",
            "    type: http",
            f'    url: "{url}"',
            "    interval: 1s",
            "    timeout: 900ms",
            "    method: GET",
            '    valid_status_codes: ["2xx"]',
            "    follow_redirects: true",
            "    ip_protocol: ip4",
            f'    labels: {{instance: "{url}"}}',
        ]
    return "\n".join(lines) + "\n"


def build_driver(work):
    exe = os.path.join(work, "driver")
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-Wall", "-o", exe, os.path.join(HERE, "driver.c"), "-lcurl"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Fatal("building driver.c failed (is libcurl4-openssl-dev installed?):\n"
                    + r.stderr)
    return exe


def start_nginx(procs, work, nginx_bin):
    d = os.path.join(work, "nginx")
    os.makedirs(os.path.join(d, "www"), exist_ok=True)
    os.chmod(work, 0o755)
    os.chmod(d, 0o755)
    with open(os.path.join(d, "www", "health.json"), "w") as f:
        f.write(HEALTH_JSON)
    os.chmod(os.path.join(d, "www"), 0o755)
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=d, port=port))
    p = procs.start([nginx_bin, "-p", d, "-c", conf, "-e", os.path.join(d, "nginx-error.log")],
                    os.path.join(d, "nginx.out"))
    wait_http(target_url(port, 0), p, "nginx")
    return p, port


def check_nginx_rate(driver, work, nginx_port, n=1000, secs=5):
    """nginx must not be the bottleneck: drive it directly at n req/s."""
    urls = os.path.join(work, "nginx-urls.txt")
    with open(urls, "w") as f:
        for i in range(n):
            f.write(target_url(nginx_port, i) + "\n")
    out = os.path.join(work, "nginx-check.txt")
    r = subprocess.run([driver, "--out", out, "--duration", str(secs), "--timeout-ms", "1000",
                        urls], capture_output=True, text=True, timeout=secs + 30)
    recs = read_driver(out)
    ok = sum(1 for r_ in recs if r_["ok"])
    lat = statistics.median(r_["total_us"] for r_ in recs) if recs else float("nan")
    log(f"nginx check: {ok}/{n * secs} ok at {n}/s, median {lat:.0f} us ({r.stderr.strip()})")
    if ok < 0.99 * n * secs:
        raise Fatal(f"nginx served only {ok} of {n * secs} requests at {n}/s")
    return {"rate": ok / secs, "median_us": lat}


def is_valid(r):
    return r["rate"] >= 0.99 * r["n"] and r["success_ratio"] >= 0.99


def wait_quiet(args, nginx_proc):
    """Waits (up to --quiet-wait s) until the rest of the machine is quiet:
    CPU busy time not ours below --quiet-cpus CPUs over 3 s. A shared
    machine (builds, fuzzers) starves the exporters and skews the runs."""
    deadline = time.monotonic() + args.quiet_wait
    while True:
        m0, n0, t0 = machine_busy_s(), proc_tree_cpu_s(nginx_proc.pid), time.monotonic()
        time.sleep(3)
        m1, n1, t1 = machine_busy_s(), proc_tree_cpu_s(nginx_proc.pid), time.monotonic()
        other = ((m1 - m0) - (n1 - n0)) / (t1 - t0)
        if other <= args.quiet_cpus:
            return {"other_cpus": other, "quiet": True}
        if time.monotonic() >= deadline:
            log(f"machine still busy ({other:.2f} CPUs used by others); running anyway")
            return {"other_cpus": other, "quiet": False}
        log(f"machine busy ({other:.2f} CPUs used by others); waiting")
        time.sleep(7)


def read_driver(path):
    recs = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) != 7:
                continue
            recs.append({"due": int(p[0]) / 1e9, "start": int(p[1]) / 1e9,
                         "total_us": int(p[2]), "ttfb_us": int(p[3]),
                         "code": int(p[4]), "ok": p[5] == "1", "bytes": int(p[6])})
    return recs


def render_times(driver, work, url, samples, tag, prom_like):
    out = os.path.join(work, f"render-{tag}.txt")
    cmd = [driver, "--seq", str(samples), "--gap-ms", "100", "--out", out]
    if prom_like:
        cmd += ["--header", PROM_ACCEPT, "--gzip"]
    cmd.append(url)
    subprocess.run(cmd, check=True, timeout=samples * 15 + 30, capture_output=True)
    rows = []
    with open(out) as f:
        for line in f:
            p = line.split()
            rows.append((int(p[0]), int(p[1]), int(p[2]), int(p[3])))
    good = [r for r in rows[1:] if r[2] == 200]  # the first one also connects
    if not good:
        raise Fatal(f"{url}: no successful /metrics responses ({rows[:3]})")
    return {"median_ms": statistics.median(r[0] for r in good) / 1000,
            "ttfb_median_ms": statistics.median(r[1] for r in good) / 1000,
            "max_ms": max(r[0] for r in good) / 1000,
            "bytes": statistics.median(r[3] for r in good), "n": len(good)}


# ---------------------------------------------------------------- one run

def start_tool(args, procs, tool, n, nginx_port, rdir, res):
    """Starts the exporter; returns (process, port, driver URLs, --check)."""
    port = free_port()
    if tool == "usherd":
        state = os.path.join(rdir, "state")
        os.makedirs(state, exist_ok=True)
        conf = os.path.join(rdir, "usherd.yml")
        with open(conf, "w") as f:
            f.write(usherd_config(n, nginx_port, port, state))
        argv = [args.usherd, "--config", conf, "--listen", f"127.0.0.1:{port}",
                "--state-dir", state]
        t_start = time.monotonic()
        p = procs.start(argv, os.path.join(rdir, "usherd.log"))
        wait_http(f"http://127.0.0.1:{port}/-/ready", p, "usherd", timeout=30)
        res["startup_s"] = time.monotonic() - t_start
        urls = [f"http://127.0.0.1:{port}/metrics"]  # Prometheus scraping usherd at 1s
        return p, port, urls, None
    conf = os.path.join(rdir, "blackbox.yml")
    with open(conf, "w") as f:
        f.write(BLACKBOX_CONF)
    argv = [args.blackbox, f"--config.file={conf}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    t_start = time.monotonic()
    p = procs.start(argv, os.path.join(rdir, "blackbox.log"))
    wait_http(f"http://127.0.0.1:{port}/metrics", p, "blackbox_exporter")
    res["startup_s"] = time.monotonic() - t_start
    urls = [f"http://127.0.0.1:{port}/probe?module=http_2xx&target="
            + urllib.request.quote(target_url(nginx_port, i), safe="")
            for i in range(n)]
    return p, port, urls, "probe_success 1"


def start_driver(procs, driver, rdir, urls, check, duration):
    urlfile = os.path.join(rdir, "urls.txt")
    with open(urlfile, "w") as f:
        f.write("\n".join(urls) + "\n")
    drv_out = os.path.join(rdir, "driver.txt")
    drv_argv = [driver, "--out", drv_out, "--duration", str(duration),
                "--interval-ms", "1000", "--timeout-ms", "1000",
                "--header", PROM_ACCEPT, "--header", "X-Prometheus-Scrape-Timeout-Seconds: 1",
                "--gzip"]
    if check:
        drv_argv += ["--check", check]
    drv_argv.append(urlfile)
    return procs.start(drv_argv, os.path.join(rdir, "driver.log")), drv_out


def run_one(args, procs, driver, work, tool, n, nginx_port, nginx_proc, rep):
    tag = f"{tool}-n{n}-r{rep}"
    rdir = os.path.join(work, tag)
    os.makedirs(rdir, exist_ok=True)
    window = args.duration
    res = {"tool": tool, "n": n, "rep": rep}
    p, port, urls, check = start_tool(args, procs, tool, n, nginx_port, rdir, res)
    anon = AnonPeak(p.pid)
    render_budget = 2 * (args.render_samples * 0.1 + 3)
    d, drv_out = start_driver(procs, driver, rdir, urls, check,
                              args.warmup + window + render_budget)

    time.sleep(args.warmup)
    if p.poll() is not None:
        raise Fatal(f"{tool} exited with status {p.returncode} during warm-up; see {rdir}")

    def sample():
        return {"t": time.monotonic(), "cpu": proc_cpu_s(p.pid),
                "nginx": proc_tree_cpu_s(nginx_proc.pid), "driver": proc_cpu_s(d.pid),
                "machine": machine_busy_s()}

    a = sample()
    ua = usherd_runs(port) if tool == "usherd" else None
    subs = [a]
    # sub-window samples every --sub seconds, the last one at the window's end
    k = 1
    while True:
        target = a["t"] + min(k * args.sub, window)
        time.sleep(max(0.0, target - time.monotonic()))
        if p.poll() is not None:
            raise Fatal(f"{tool} exited with status {p.returncode} during the window; see {rdir}")
        subs.append(sample())
        if target >= a["t"] + window:
            break
        k += 1
    b = subs[-1]
    st = proc_status(p.pid)
    ub = usherd_runs(port) if tool == "usherd" else None
    wall = b["t"] - a["t"]

    res.update({
        "window_s": wall,
        "cpu_s": b["cpu"] - a["cpu"],
        "cpu_s_per_60s": (b["cpu"] - a["cpu"]) * 60 / wall,
        "sub_cpu_pct": [100 * (y["cpu"] - x["cpu"]) / (y["t"] - x["t"])
                        for x, y in zip(subs, subs[1:])],
        "hwm_mib": st["VmHWM"] / 1024, "rss_mib": st["VmRSS"] / 1024,
        "rss_anon_mib": st["RssAnon"] / 1024, "rss_file_mib": st["RssFile"] / 1024,
        "threads": st.get("Threads"),
        "nginx_cpu_s": b["nginx"] - a["nginx"],
        "driver_cpu_s": b["driver"] - a["driver"],
        "machine_busy_s": b["machine"] - a["machine"],
    })
    res["other_cpu_s"] = res["machine_busy_s"] - res["cpu_s"] - res["nginx_cpu_s"] - res["driver_cpu_s"]

    # render times while the exporter is still under load
    mu = f"http://127.0.0.1:{port}/metrics"
    res["render_plain"] = render_times(driver, rdir, mu, args.render_samples, "plain", False)
    res["render_prom"] = render_times(driver, rdir, mu, args.render_samples, "prom", True)
    res["hwm_after_render_mib"] = proc_status(p.pid)["VmHWM"] / 1024
    res["anon_peak_mib"] = anon.finish()

    # the driver ends by itself; then stop the exporter
    try:
        d.wait(timeout=args.warmup + window + render_budget + 30)
    except subprocess.TimeoutExpired:
        log("driver overran; stopping it")
    procs.stop(d, signal.SIGTERM, grace=10)
    took = procs.stop(p, signal.SIGTERM, grace=5)
    res["sigterm_exit_s"] = took
    res["exit_status"] = p.returncode

    recs = read_driver(drv_out)
    inwin = [r for r in recs if a["t"] <= r["start"] < b["t"]]
    if tool == "usherd":
        runs = ub["total"] - ua["total"]
        res["rate"] = runs / wall
        succ = ub["by_outcome"].get("success", 0) - ua["by_outcome"].get("success", 0)
        res["success_ratio"] = succ / runs if runs else 0.0
        res["outcomes"] = {k_: ub["by_outcome"].get(k_, 0) - ua["by_outcome"].get(k_, 0)
                           for k_ in ub["by_outcome"]}
        res["series"] = ub["series"]
        res["metrics_bytes"] = ub["bytes"]
        res["probe_success_targets"] = ub["probe_success_targets"]
        res["probe_success_1"] = ub["probe_success_1"]
        res["scrapes_ok"] = sum(1 for r in inwin if r["ok"])
        res["scrapes"] = len(inwin)
        res["scrape_median_ms"] = (statistics.median(r["total_us"] for r in inwin) / 1000
                                   if inwin else None)
    else:
        res["rate"] = len(inwin) / wall
        res["success_ratio"] = (sum(1 for r in inwin if r["ok"]) / len(inwin)) if inwin else 0.0
        lats = sorted(r["total_us"] for r in inwin)
        if lats:
            res["probe_resp_median_ms"] = statistics.median(lats) / 1000
            res["probe_resp_p99_ms"] = lats[min(len(lats) - 1, int(0.99 * len(lats)))] / 1000
        late = [r["start"] - r["due"] for r in inwin]
        res["driver_late_median_ms"] = statistics.median(late) * 1000 if late else None
        res["failures"] = {}
        for r in inwin:
            if not r["ok"]:
                res["failures"][r["code"]] = res["failures"].get(r["code"], 0) + 1
    # A run counts only if the exporter did the whole job: every probe, at
    # the rate, successfully (a starved machine makes blackbox fall behind).
    res["valid"] = is_valid(res)
    log(f"{tag}: cpu {res['cpu_s']:.2f}s/{wall:.0f}s, hwm {res['hwm_mib']:.1f} MiB, "
        f"rate {res['rate']:.1f}/s, ok {100 * res['success_ratio']:.1f}%, "
        f"render {res['render_plain']['median_ms']:.2f} ms, "
        f"machine busy {res['machine_busy_s']:.1f}s")
    return res


def profile_usherd(args, procs, driver, work, n, nginx_port):
    """One extra, unmeasured usherd run at N targets under `perf record`
    (cpu-clock, so it works in VMs without a PMU). Returns perf's flat
    profile by shared object and by symbol."""
    perf = shutil.which("perf")
    if not perf:
        log("perf not found (apt-get install linux-perf); skipping --profile")
        return None
    rdir = os.path.join(work, f"profile-usherd-n{n}")
    os.makedirs(rdir, exist_ok=True)
    res = {}
    p, port, urls, check = start_tool(args, procs, "usherd", n, nginx_port, rdir, res)
    d, _ = start_driver(procs, driver, rdir, urls, check, args.warmup + args.profile + 5)
    time.sleep(args.warmup)
    data = os.path.join(rdir, "perf.data")
    # dwarf call graphs: a Release build has no frame pointers
    subprocess.run([perf, "record", "-q", "-e", "cpu-clock", "-F", "499",
                    "--call-graph", "dwarf,16384", "-p", str(p.pid),
                    "-o", data, "--", "sleep", str(args.profile)],
                   capture_output=True, timeout=args.profile + 120)
    procs.stop(d, signal.SIGTERM, grace=10)
    procs.stop(p, signal.SIGTERM, grace=5)
    out = {}
    views = (("by_dso", ["--no-children", "-F", "overhead,dso"]),
             ("by_symbol", ["--no-children", "-F", "overhead,dso,sym"]),
             ("inclusive", ["--children", "-F", "overhead_children,overhead,dso,sym"]))
    for key, opts in views:
        r = subprocess.run([perf, "report", "-i", data, "--stdio", "-g", "none",
                            "--percent-limit", "0.5"] + opts,
                           capture_output=True, text=True, timeout=300)
        with open(os.path.join(rdir, f"perf-{key}.txt"), "w") as f:
            f.write(r.stdout)
        lines = [ln.rstrip() for ln in r.stdout.splitlines()
                 if ln.strip() and not ln.startswith("#")]
        if key == "inclusive":  # usherd's own functions, inclusive time
            lines = [ln for ln in lines if " usherd " in ln and "[.] main" not in ln]
        out[key] = lines[:40]
    log(f"profile written under {rdir}")
    return out


def proc_tree_cpu_s(pid):
    """CPU of pid and its children (nginx master + workers)."""
    total = 0.0
    try:
        total += proc_cpu_s(pid)
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for c in f.read().split():
                try:
                    total += proc_cpu_s(int(c))
                except (FileNotFoundError, ProcessLookupError):
                    pass
    except FileNotFoundError:
        pass
    return total


# ---------------------------------------------------------------- report

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".2f"):
    return "n/a" if x is None else format(x, spec)


def fail_note(r):
    """Why blackbox's failed /probe requests failed, e.g. ' (912 curl error 28)'."""
    f = r.get("failures") or {}
    parts = []
    for code, count in sorted(f.items(), key=lambda kv: -kv[1]):
        code = int(code)
        what = f"HTTP {code} without probe_success 1" if code > 0 else f"curl error {-code}"
        parts.append(f"{count} {what}")
    return f" ({', '.join(parts)})" if parts else ""


def report(results, meta):
    out = []
    out.append(f"Machine: {meta['machine']['nproc']} CPUs ({meta['machine']['model']}), "
               f"{meta['machine']['mem_gib']} GiB, Linux {meta['machine']['kernel']}  ")
    out.append(f"Date: {meta['date']}  ")
    out.append(f"usherd: {meta['usherd_version']}  ")
    out.append(f"blackbox_exporter: {meta['blackbox_version']}  ")
    out.append(f"nginx: {meta['nginx_version']}  ")
    out.append(f"Window: {meta['args']['duration']} s after {meta['args']['warmup']} s warm-up; "
               f"{meta['args']['reps']} runs per row asked, medians over the valid ones shown "
               "(range in brackets); "
               "a run where the exporter fell below 99 % of the probe rate or of successful "
               "probes is excluded and re-run  ")
    out.append(f"Command: `{meta['command']}`")
    out.append("")
    out.append("| N | tool | runs | probes/s (target N) | probe success | CPU s per 60 s | "
               "CPU % of a core | peak RSS (VmHWM) MiB | peak RssAnon MiB | "
               "VmHWM after the /metrics GETs MiB | "
               "/metrics GET median ms: text / OpenMetrics+gzip | "
               "/probe response median ms |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ns = sorted({r["n"] for r in results})
    tools = [t for t in ("usherd", "blackbox") if any(r["tool"] == t for r in results)]
    summary = {}
    for n in ns:
        for tool in tools:
            rs_all = [r for r in results if r["n"] == n and r["tool"] == tool]
            if not rs_all:
                continue
            rs = [r for r in rs_all if is_valid(r)] or rs_all
            cpu = [r["cpu_s_per_60s"] for r in rs]
            hwm = [r["hwm_mib"] for r in rs]
            anon = [r["anon_peak_mib"] for r in rs if r.get("anon_peak_mib")]
            s = {
                "rate": med(r["rate"] for r in rs),
                "succ": med(r["success_ratio"] for r in rs),
                "cpu": med(cpu), "cpu_lo": min(cpu), "cpu_hi": max(cpu),
                "hwm": med(hwm), "hwm_lo": min(hwm), "hwm_hi": max(hwm),
                "anon": med(anon) if anon else None,
                "anon_lo": min(anon) if anon else None, "anon_hi": max(anon) if anon else None,
                "hwm_render": med(r.get("hwm_after_render_mib") for r in rs),
                "render": med(r["render_plain"]["median_ms"] for r in rs),
                "render_prom": med(r["render_prom"]["median_ms"] for r in rs),
                "render_bytes": med(r["render_plain"]["bytes"] for r in rs),
                "probe": med(r.get("probe_resp_median_ms") for r in rs),
            }
            summary[(n, tool)] = s
            name = "usherd" if tool == "usherd" else "blackbox_exporter"
            render_note = (f"{fmt(s['render'])} / {fmt(s['render_prom'])} "
                           f"(all {n} probes, {s['render_bytes'] / 1024:.0f} KiB)"
                           if tool == "usherd" else
                           f"{fmt(s['render'])} / {fmt(s['render_prom'])} (self metrics only)")
            probe_note = "n/a (probes run in-process)" if tool == "usherd" else fmt(s["probe"])
            runs = f"{len(rs)}" + (f" (+{len(rs_all) - len(rs)} excluded)"
                                   if len(rs) < len(rs_all) else "")
            out.append(
                f"| {n} | {name} | {runs} | {fmt(s['rate'], '.1f')} ({n}) | {fmt(100 * s['succ'], '.1f')} % | "
                f"{fmt(s['cpu'])} [{fmt(s['cpu_lo'])}–{fmt(s['cpu_hi'])}] | "
                f"{fmt(100 * s['cpu'] / 60, '.1f')} | "
                f"{fmt(s['hwm'], '.1f')} [{fmt(s['hwm_lo'], '.1f')}–{fmt(s['hwm_hi'], '.1f')}] | "
                f"{fmt(s['anon'], '.1f')} [{fmt(s['anon_lo'], '.1f')}–{fmt(s['anon_hi'], '.1f')}] | "
                f"{fmt(s['hwm_render'], '.1f')} | "
                f"{render_note} | {probe_note} |")
    if "usherd" in tools and "blackbox" in tools:
        out.append("")
        out.append("| N | usherd / blackbox CPU | CPU target ≤ 0.25 | "
                   "usherd / blackbox peak RSS | RSS target ≤ 0.25 | "
                   "usherd / blackbox peak RssAnon | same, ≤ 0.25 |")
        out.append("|---|---|---|---|---|---|---|")
        for n in ns:
            u, b = summary.get((n, "usherd")), summary.get((n, "blackbox"))
            if not u or not b:
                continue
            rc = u["cpu"] / b["cpu"] if b["cpu"] else None
            rm = u["hwm"] / b["hwm"] if b["hwm"] else None
            ra = u["anon"] / b["anon"] if u["anon"] and b["anon"] else None

            def verdict(x):
                return "n/a" if x is None else ("met" if x <= 0.25 else "**not met**")
            out.append(f"| {n} | {fmt(rc, '.3f')} | {verdict(rc)} | {fmt(rm, '.3f')} | {verdict(rm)} | "
                       f"{fmt(ra, '.3f')} | {verdict(ra)} |")
    out.append("")
    out.append("Per run (CPU s in the window; 'machine' = all CPUs' busy time from /proc/stat "
               f"over the same window, out of {meta['machine']['nproc']} x window, to spot "
               "interference from other processes):")
    out.append("")
    out.append("| run | CPU s | CPU % per sub-window (min/median/max) | VmHWM MiB | "
               "RssAnon / RssFile MiB | probes/s | success | nginx CPU s | driver CPU s | "
               "machine CPU s | SIGTERM exit s |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        sub = r["sub_cpu_pct"]
        out.append(
            f"| {r['tool']} N={r['n']} #{r['rep']}"
            f"{'' if is_valid(r) else ' (excluded)'} | {r['cpu_s']:.2f} | "
            f"{min(sub):.1f}/{statistics.median(sub):.1f}/{max(sub):.1f} | {r['hwm_mib']:.1f} | "
            f"{r['rss_anon_mib']:.1f} / {r['rss_file_mib']:.1f} | "
            f"{r['rate']:.1f} | {100 * r['success_ratio']:.1f} %{fail_note(r)} | {r['nginx_cpu_s']:.2f} | "
            f"{r['driver_cpu_s']:.2f} | {r['machine_busy_s']:.1f} | {fmt(r.get('sigterm_exit_s'))} |")
    prof = meta.get("profile")
    if prof:
        out.append("")
        out.append(f"Where usherd's CPU goes at N={max(r['n'] for r in results)} "
                   f"(perf record -e cpu-clock, {meta['args']['profile']:.0f} s, "
                   "an extra run not in the tables; self time):")
        out.append("")
        out.append("```")
        out += prof["by_dso"][:12]
        out.append("")
        out += prof["by_symbol"][:30]
        out.append("```")
        out.append("")
        out.append("usherd's own functions, inclusive (children) and self time:")
        out.append("")
        out.append("```")
        out += prof["inclusive"][:25]
        out.append("```")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--usherd", default=None,
                    help="usherd binary (default: build/bin/usherd under the repo)")
    ap.add_argument("--blackbox", default="/usr/bin/prometheus-blackbox-exporter")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--tools", default="usherd,blackbox")
    ap.add_argument("--n", default="100,1000", help="comma-separated target counts")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--duration", type=float, default=60.0, help="measurement window, s")
    ap.add_argument("--sub", type=float, default=10.0, help="sub-window length, s")
    ap.add_argument("--retries", type=int, default=2,
                    help="re-run a (tool, N, rep) up to this many times when the exporter "
                         "did not keep the rate or the probes failed")
    ap.add_argument("--quiet-wait", type=float, default=300,
                    help="before each run, wait up to this many s for the machine to be quiet")
    ap.add_argument("--quiet-cpus", type=float, default=0.3,
                    help="'quiet' = other processes use at most this many CPUs")
    ap.add_argument("--render-samples", type=int, default=21)
    ap.add_argument("--profile", type=float, default=0,
                    help="after the runs, profile usherd at the largest N for this many s "
                         "with perf (an extra run, not in the tables)")
    ap.add_argument("--workdir", default=None, help="keep logs and raw data here")
    ap.add_argument("--json", default=None, help="write raw results as JSON here")
    ap.add_argument("--rerender", default=None, metavar="JSON",
                    help="print the report of an earlier run's raw results and exit")
    ap.add_argument("--report", default=None, help="also write the generated Markdown report here")
    args = ap.parse_args()
    if args.rerender:
        with open(args.rerender) as f:
            meta = json.load(f)
        print(report(meta["results"], meta))
        return 0

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in ("usherd", "blackbox"):
            ap.error(f"unknown tool {t}")
    ns = [int(x) for x in args.n.split(",")]
    repo = os.path.dirname(os.path.dirname(HERE))
    if "usherd" in tools:
        args.usherd = os.path.abspath(args.usherd or os.path.join(repo, "build", "bin", "usherd"))
        if not os.access(args.usherd, os.X_OK):
            ap.error(f"usherd binary {args.usherd} not found; build it or pass --usherd")
    if "blackbox" in tools and not os.access(args.blackbox, os.X_OK):
        ap.error(f"{args.blackbox} not found (apt-get install prometheus-blackbox-exporter)")

    work = args.workdir or tempfile.mkdtemp(prefix="usher-bench-")
    os.makedirs(work, exist_ok=True)
    procs = Procs()

    def on_signal(sig, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    results = []
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "args": vars(args),
        "command": "python3 bench/http_probe/run.py " + " ".join(sys.argv[1:]),
        "blackbox_version": tool_version([args.blackbox, "--version"]) if "blackbox" in tools else "-",
        "usherd_version": tool_version([args.usherd, "--version"]) if "usherd" in tools else "-",
        "nginx_version": tool_version([args.nginx, "-v"]),
    }
    meta["quiet"] = []
    rc = 0
    try:
        driver = build_driver(work)
        nginx_proc, nginx_port = start_nginx(procs, work, args.nginx)
        log(f"work dir {work}; nginx on 127.0.0.1:{nginx_port}")
        meta["nginx_check"] = check_nginx_rate(driver, work, nginx_port, n=max(ns))
        for rep in range(1, args.reps + 1):
            for n in ns:
                order = tools if rep % 2 else list(reversed(tools))
                for tool in order:
                    for attempt in range(1 + args.retries):
                        if nginx_proc.poll() is not None:
                            raise Fatal("nginx died")
                        meta["quiet"].append(wait_quiet(args, nginx_proc))
                        log(f"run {tool} N={n} rep {rep}/{args.reps}"
                            + (f" (retry {attempt})" if attempt else ""))
                        r = run_one(args, procs, driver, work, tool, n, nginx_port,
                                    nginx_proc, rep)
                        r["attempt"] = attempt
                        results.append(r)
                        if r["valid"]:
                            break
                        log(f"{tool} N={n} rep {rep}: did not do the work "
                            f"({r['rate']:.1f} probes/s, {100 * r['success_ratio']:.1f} % "
                            "success); excluded from the medians")
        if args.profile > 0 and "usherd" in tools:
            meta["profile"] = profile_usherd(args, procs, driver, work, max(ns), nginx_port)
    except Fatal as e:
        log(f"error: {e}")
        rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    meta["results"] = results
    raw = args.json or os.path.join(work, "results.json")
    with open(raw, "w") as f:
        json.dump(meta, f, indent=1, default=str)
    if results:
        text = report(results, meta)
        print(text)
        if args.report and rc == 0:
            with open(args.report, "w") as f:
                f.write(text)
    log(f"raw results: {raw}; logs under {work}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
