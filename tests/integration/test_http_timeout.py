"""Targets that never answer or drip their body time out with reason
"timeout", while other probes and /metrics carry on unaffected."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (DripServer, HangServer, expect, failure_reasons, free_port, main,  # noqa: E402
                     runs_total, start_nginx, start_usherd, wait_until)

HANG_TIMEOUT = 4.0

CONFIG = """\
probes:
  - name: hang
    type: http
    url: http://127.0.0.1:{hang}/
    interval: 5s
    timeout: 4s
  - name: drip
    type: http
    url: http://127.0.0.1:{drip}/
    interval: 5s
    timeout: 4s
  - name: fast
    type: http
    url: http://127.0.0.1:{nginx}/ok
    interval: 1s
    timeout: 900ms
"""


def setup(h):
    hang, drip, port = HangServer(h), DripServer(h), free_port()
    start_nginx(h, f'  server {{ listen 127.0.0.1:{port}; location = /ok {{ return 200 "ok\\n"; }} }}\n',
                [port])
    u = start_usherd(h, CONFIG.format(hang=hang.port, drip=drip.port, nginx=port))
    return {"u": u, "hang": hang}


def check_fast_probe_keeps_running_while_others_hang(h, ctx):
    u, hang = ctx["u"], ctx["hang"]
    # Wait for the hang probe to be in flight, then count the fast probe's
    # runs within one hang timeout window.
    wait_until(lambda: hang.accepted >= 1, 15, "the hang probe to connect")
    start_runs = runs_total(u.metrics(), "fast")
    start = time.monotonic()
    time.sleep(HANG_TIMEOUT * 0.85)
    m = u.metrics()
    elapsed = time.monotonic() - start
    runs = runs_total(m, "fast") - start_runs
    # 1s interval: 3-4 runs expected in 3.4 s; ask for 2 on a busy box.
    expect(runs >= 2, f"the fast probe ran {runs} times in {elapsed:.1f}s while another target "
                      f"hung (interval 1s): probes are blocking each other")
    fails = m.find("usher_probe_runs_total", job="fast", outcome="failure")
    expect(not fails or fails[0].value == 0, f"the fast probe failed while another hung: {fails}")


def check_metrics_prompt_while_target_hangs(h, ctx):
    u, hang = ctx["u"], ctx["hang"]
    wait_until(lambda: hang.accepted >= 1, 15, "the hang probe to connect")
    slowest = 0.0
    for _ in range(10):
        r = u.get("/metrics", timeout=10)
        expect(r.status == 200, f"/metrics status {r.status}")
        slowest = max(slowest, r.elapsed)
        time.sleep(0.2)
    expect(slowest < 1.0, f"/metrics took {slowest:.2f}s while a target hung (want < 1s)")


def check_timeout_reason(h, ctx):
    u = ctx["u"]

    def both_timed_out():
        m = u.metrics()
        return m if all(runs_total(m, j) >= 1 for j in ("hang", "drip")) else None

    m = wait_until(both_timed_out, 30, "the hang and drip probes to finish a run")
    for job in ("hang", "drip"):
        expect(m.value("probe_success", job=job) == 0, f"probe_success{{job={job}}} should be 0")
        reasons = failure_reasons(m, job)
        expect(reasons == ["timeout"], f"{job}: probe_failure_info reasons {reasons}, want ['timeout']")
        d = m.value("probe_duration_seconds", job=job)
        expect(d is not None and HANG_TIMEOUT - 0.2 <= d <= HANG_TIMEOUT + 1.5,
               f"probe_duration_seconds{{job={job}}}={d}, want about the {HANG_TIMEOUT:.0f}s timeout")


def check_never_overlaps_itself(h, ctx):
    # Runs of the hang probe take its whole 4s timeout; with a 5s interval
    # there can be at most one connection per interval.
    u, hang = ctx["u"], ctx["hang"]
    m = u.metrics()
    started = hang.accepted
    done = runs_total(m, "hang")
    expect(started <= done + 1, f"hang target saw {started} connections but only {done} runs "
                                f"finished: runs overlap")


if __name__ == "__main__":
    main("http_timeout", setup, [check_fast_probe_keeps_running_while_others_hang,
                                 check_metrics_prompt_while_target_hangs, check_timeout_reason,
                                 check_never_overlaps_itself])
