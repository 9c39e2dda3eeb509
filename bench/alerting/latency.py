#!/usr/bin/env python3
"""Alert latency: from a rule's condition becoming true to the first webhook
delivery, through usherd's whole path (store, rule evaluation, routing,
grouping, delivery queue). The issue's target: at most
evaluation_interval + group_wait + 1 s.

A textfile metric is flipped (seats_free 10 -> 0, the rule `seats_free < 1`
fires; then back to resolve it, and again) and the time from the write to
the webhook's arrival is measured. The textfile is read every
scrape_interval (1 s), so up to 1 s of each figure is that read, before
the rule can see the change: the figures overstate the rule-to-webhook
path by up to a second.

  python3 bench/alerting/latency.py --usherd build/bin/usherd --rounds 5
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from harness import Harness, start_usherd, wait_until  # noqa: E402
from vendormocks import VendorMock  # noqa: E402

CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: {eval_s}s
textfile_dir: {dir}
rule_files: [{rules}]
alerting:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: {wait_s}s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs: [{{url: "{hook}/webhook/bench"}}]
"""

RULES = """\
groups:
  - name: bench
    rules:
      - alert: SeatsSoldOut
        expr: seats_free < 1
"""


def write(d, v):
    tmp = d / ".seats.prom.tmp"
    tmp.write_text(f"# TYPE seats_free gauge\nseats_free {v}\n")
    os.rename(tmp, d / "seats.prom")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--usherd", default="build/bin/usherd")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--eval", type=int, default=5, help="evaluation_interval, seconds")
    ap.add_argument("--group-wait", type=int, default=2, help="group_wait, seconds")
    args = ap.parse_args()
    os.environ["USHERD"] = os.path.abspath(args.usherd)
    h = Harness("bench-alert-latency")
    try:
        d = h.path("textfile")
        d.mkdir()
        write(d, 10)
        rules = h.write("rules.yml", RULES)
        mock = VendorMock(h)
        u = start_usherd(h, CONFIG.format(eval_s=args.eval, wait_s=args.group_wait, dir=d,
                                          rules=rules, hook=mock.url))
        u.wait_runs(["textfile"], runs=2)
        raw = []
        for rnd in range(args.rounds):
            before = len(mock.accepted("/webhook/bench"))
            t0 = time.monotonic()
            write(d, 0)

            def firing():
                got = [r for r in mock.accepted("/webhook/bench")[before:]
                       if r.json and r.json.get("status") == "firing"]
                return got[0] if got else None

            r = wait_until(firing, 120, "the firing notification")
            raw.append(r.at - t0)
            print(f"round {rnd + 1}: {raw[-1]:.2f} s from the write", file=sys.stderr)
            before = len(mock.accepted("/webhook/bench"))
            write(d, 10)
            wait_until(lambda: any(x.json and x.json.get("status") == "resolved"
                                   for x in mock.accepted("/webhook/bench")[before:]),
                       120, "the resolved notification")
        target = args.eval + args.group_wait + 1
        print("\n| evaluation_interval | group_wait | target | median | max |")
        print("|---|---|---|---|---|")
        print(f"| {args.eval} s | {args.group_wait} s | {target} s | "
              f"{statistics.median(raw):.2f} s | {max(raw):.2f} s |")
        u.stop_checked()
    finally:
        h.close()


if __name__ == "__main__":
    main()
