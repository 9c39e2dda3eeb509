"""usherd's lifecycle: SIGHUP reloads (a broken config keeps the old one
running and flips usher_config_last_reload_successful), SIGTERM exits fast."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (HangServer, TIME_SCALE, expect, free_port, main, runs_total,  # noqa: E402
                     start_nginx, start_usherd, wait_until)

# SIGTERM must end usherd within 2 s; a little slack for a busy machine.
SIGTERM_LIMIT = 2.0 + 0.5

PROBE = """\
  - name: {name}
    type: http
    url: http://127.0.0.1:{port}/ok
    interval: 1s
    timeout: 800ms
"""

BROKEN = """\
global:
  scrape_interval: 1s
probes:
  - name: first
    type: http
    url: http://127.0.0.1:{port}/ok
    interval: soon
"""


def config(port, *names):
    return "global: {scrape_interval: 1s}\nprobes:\n" + "".join(
        PROBE.format(name=n, port=port) for n in names)


def reload_status(u):
    m = u.metrics()
    return (m.value("usher_config_last_reload_successful"),
            m.value("usher_config_last_reload_success_timestamp_seconds"))


def setup(h):
    port = free_port()
    start_nginx(h, f'  server {{ listen 127.0.0.1:{port}; location = /ok {{ return 200 "ok\\n"; }} }}\n',
                [port])
    return {"port": port}


def check_broken_reload_keeps_serving(h, ctx):
    port = ctx["port"]
    u = start_usherd(h, config(port, "first"), name="reload")
    u.wait_runs(["first"], runs=1)
    ok, ts0 = reload_status(u)
    expect(ok == 1 and ts0, f"after start: reload_successful={ok} timestamp={ts0}")

    u.config_path.write_text(BROKEN.format(port=port))
    u.reload()
    wait_until(lambda: reload_status(u)[0] == 0, 20,
               "usher_config_last_reload_successful to become 0 after a broken config")
    expect(u.proc.alive(), f"usherd died on a broken reload:\n{u.proc.tail()}")
    runs = runs_total(u.metrics(), "first")
    u.wait_runs(["first"], runs=runs + 2, timeout=20)  # the old config keeps probing
    expect(u.get("/-/healthy").status == 200, "/-/healthy after a failed reload")
    expect(reload_status(u)[1] == ts0, "a failed reload must not move the success timestamp")
    expect(any(e.get("log.level") == "error" and "interval" in str(e) for e in u.events()),
           "no error event names the broken key (interval) after the failed reload")

    time.sleep(1.1)  # so the new success timestamp is visibly later
    u.config_path.write_text(config(port, "second"))
    u.reload()
    wait_until(lambda: reload_status(u)[0] == 1, 20,
               "usher_config_last_reload_successful to return to 1 after a fixed config")
    _, ts1 = reload_status(u)
    expect(ts1 > ts0, f"success timestamp did not move on a good reload: {ts0} -> {ts1}")
    m = u.wait_runs(["second"], runs=1)
    ctx["reloaded"] = u
    expect(not m.find("probe_success", job="first"),
           f"series of the removed probe 'first' are still exported: {m.find('probe_success', job='first')}")
    u.stop_checked()


def check_sigterm_exits_quickly(h, ctx):
    hang = HangServer(h)
    cfg = config(ctx["port"], "steady") + f"""\
  - name: hung
    type: http
    url: http://127.0.0.1:{hang.port}/
    interval: 6s
    timeout: 5s
"""
    u = start_usherd(h, cfg, name="sigterm")
    wait_until(lambda: hang.accepted >= 1, 20 / TIME_SCALE + 10, "the hung probe to connect")
    took = u.stop_checked(limit=10)
    limit = SIGTERM_LIMIT * TIME_SCALE
    expect(took < limit, f"usherd took {took:.2f}s to exit on SIGTERM with a probe in flight "
                         f"(limit {limit:.1f}s)")
    events = u.events()
    expect(any("stop" in f"{e.get('event.action', '')} {e.get('message', '')}".lower()
               for e in events[-5:]),
           f"no shutdown event among the last log lines: {events[-3:]}")


def check_reload_keeps_series_of_unchanged_probes(h, ctx):
    # A probe the reload leaves as it was keeps its last result and its
    # counters: a gap would make Prometheus mark probe_success stale (and
    # absent() alerts fire) on every reload, and counters would reset. The
    # probe's target never answers, so a run takes its whole 2s timeout and
    # a gap after the reload cannot slip between two scrapes.
    hang = HangServer(h)
    cfg = f"""\
probes:
  - name: same
    type: http
    url: http://127.0.0.1:{hang.port}/
    interval: 3s
    timeout: 2s
"""
    u = start_usherd(h, cfg, name="same")
    m = u.wait_runs(["same"], runs=1)
    before = runs_total(m, "same")
    _, ts0 = reload_status(u)
    time.sleep(1.1)  # so the reload's success timestamp is visibly later
    u.reload()
    wait_until(lambda: reload_status(u)[1] > ts0, 20, "the reload's success timestamp to move")
    seen = []
    for _ in range(5):
        m = u.metrics()
        seen.append((m.value("probe_success", job="same"), runs_total(m, "same")))
        time.sleep(0.2)
    gaps = sum(1 for success, _ in seen if success is None)
    expect(gaps == 0, f"probe_success{{job=same}} vanished in {gaps} of {len(seen)} scrapes "
                      f"right after reloading an identical config")
    low = min(runs for _, runs in seen)
    expect(low >= before, f"usher_probe_runs_total{{job=same}} went from {before} to {low} on an "
                          f"identical reload")
    expect(reload_status(u)[0] == 1, "the identical reload should have succeeded")
    u.stop_checked()


def check_text_logs_and_new_state_dir(h, ctx):
    # --log-format text for people; --state-dir is created when missing.
    state = h.path("fresh", "state")
    u = start_usherd(h, config(ctx["port"], "text"), name="text", log_format="text",
                     state_dir=state)
    u.wait_runs(["text"], runs=1)
    expect(state.is_dir(), f"--state-dir {state} was not created")
    lines = [line for line in u.proc.stdout().splitlines() if line.strip()]
    expect(lines and not any(line.lstrip().startswith("{") for line in lines),
           f"--log-format text still logs JSON: {lines[:2]}")
    u.stop_checked()


if __name__ == "__main__":
    main("lifecycle", setup, [check_broken_reload_keeps_serving, check_sigterm_exits_quickly,
                              check_reload_keeps_series_of_unchanged_probes,
                              check_text_logs_and_new_state_dir])
