#!/usr/bin/env python3
"""10,000 active alerts routed and grouped: usherd beside Alertmanager
(Debian's prometheus-alertmanager) with the same routing tree, inhibition
rule and alerts, one after the other.

Each gets 10,000 alerts (50 alert names x 20 services, 10 % severity=page
routed to their own receiver, an inhibition rule) POSTed to
/api/v2/alerts in batches of 1,000, then 30 s in which the groups flush to a
local webhook receiver and the alerts are re-posted every 10 s (as
Prometheus re-sends firing alerts). Measured: RSS before and after (VmRSS),
CPU time of the whole run (utime + stime), ingest rate, and the time of a
GET of all alerts and of all groups.

  python3 bench/alerting/alerts10k.py --usherd build/bin/usherd
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

N = 10000

ROUTING = """\
route:
  receiver: hook
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
  routes:
    - matchers: ['severity="page"']
      receiver: pager
inhibit_rules:
  - source_matchers: ['alertname="Alert0"']
    target_matchers: ['alertname="Alert1"']
    equal: [service]
receivers:
  - name: hook
    webhook_configs: [{{url: "{hook}/hook"}}]
  - name: pager
    webhook_configs: [{{url: "{hook}/pager"}}]
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    def __init__(self):
        self.count = 0
        sink = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.count += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


def proc_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0


def proc_cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def post(port, batch):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/alerts",
                                 data=json.dumps(batch).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=60).read()


def alerts():
    ends = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"labels": {"alertname": f"Alert{i % 50}", "service": f"svc{i % 20}",
                        "instance": f"host-{i}", "severity": "page" if i % 10 == 0 else "ticket"},
             "annotations": {"summary": f"alert {i}"}, "endsAt": ends} for i in range(N)]


def drive(name, proc, port):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    time.sleep(1)
    rss0, cpu0 = proc_rss(proc.pid), proc_cpu(proc.pid)
    all_alerts = alerts()
    t0 = time.monotonic()
    for b in range(0, N, 1000):
        post(port, all_alerts[b:b + 1000])
    ingest = time.monotonic() - t0
    for _ in range(3):
        time.sleep(10)
        for b in range(0, N, 1000):
            post(port, all_alerts[b:b + 1000])
    t1 = time.monotonic()
    got = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts",
                                            timeout=60).read())
    t_get = time.monotonic() - t1
    t2 = time.monotonic()
    groups = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts/groups",
                                               timeout=60).read())
    t_groups = time.monotonic() - t2
    return {"name": name, "rss_before_mib": rss0, "rss_after_mib": proc_rss(proc.pid),
            "cpu_s": proc_cpu(proc.pid) - cpu0, "ingest_per_s": N / ingest,
            "get_alerts_s": t_get, "alerts": len(got), "get_groups_s": t_groups,
            "groups": len(groups)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--usherd", default="build/bin/usherd")
    ap.add_argument("--alertmanager", default="prometheus-alertmanager")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="usher-bench-alerts-")
    sink = Sink()
    results = []
    try:
        port = free_port()
        cfg = os.path.join(work, "usher.yml")
        with open(cfg, "w") as f:
            f.write(f'server: {{listen: "127.0.0.1:{port}"}}\nstate_dir: {work}/state\n'
                    "alerting:\n" + "".join("  " + line + "\n" for line in
                                            ROUTING.format(hook=sink.url).splitlines()))
        p = subprocess.Popen([os.path.abspath(args.usherd), "--config", cfg],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            results.append(drive("usherd", p, port))
        finally:
            p.terminate()
            p.wait(30)
        port = free_port()
        amcfg = os.path.join(work, "am.yml")
        with open(amcfg, "w") as f:
            f.write(ROUTING.format(hook=sink.url))
        p = subprocess.Popen([args.alertmanager, f"--config.file={amcfg}",
                              f"--storage.path={work}/am", f"--web.listen-address=127.0.0.1:{port}",
                              "--cluster.listen-address="],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            results.append(drive("alertmanager", p, port))
        finally:
            p.terminate()
            p.wait(30)
        print(json.dumps(results, indent=2))
        u, a = results
        print("\n| measure | usherd | Alertmanager | ratio |")
        print("|---|---|---|---|")
        print(f"| RSS after 10k alerts | {u['rss_after_mib']:.1f} MiB | {a['rss_after_mib']:.1f} MiB"
              f" | {u['rss_after_mib'] / a['rss_after_mib']:.2f}x |")
        print(f"| RSS growth | {u['rss_after_mib'] - u['rss_before_mib']:.1f} MiB | "
              f"{a['rss_after_mib'] - a['rss_before_mib']:.1f} MiB | |")
        print(f"| CPU, whole run (4 x 10k alerts posted, 30 s of flushing) | {u['cpu_s']:.2f} s | "
              f"{a['cpu_s']:.2f} s | {u['cpu_s'] / a['cpu_s']:.2f}x |")
        print(f"| ingest | {u['ingest_per_s']:.0f}/s | {a['ingest_per_s']:.0f}/s | |")
        print(f"| GET all alerts | {u['get_alerts_s'] * 1000:.0f} ms | "
              f"{a['get_alerts_s'] * 1000:.0f} ms | |")
        print(f"| GET all groups ({u['groups']} / {a['groups']}) | {u['get_groups_s'] * 1000:.0f} ms"
              f" | {a['get_groups_s'] * 1000:.0f} ms | |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
