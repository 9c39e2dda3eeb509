"""The demo keeps working: the booking API fixture's journeys, usherd with
examples/demo.yml watching it, and scripts/demo.sh cleaning up on Ctrl-C."""

import os
import re
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (SOURCE_DIR, Fatal, expect, failure_reasons, http, main, port_open,  # noqa: E402
                     start_usherd, usher_binary, wait_until)

FIXTURE = SOURCE_DIR / "examples" / "sandbox" / "booking_api.py"
DEMO_JOBS = ("booking-api-health", "booking-api-events", "booking-api-seats")


def start_fixture(h, name="booking-api"):
    proc = h.spawn(name, [sys.executable, FIXTURE, "--port", "0"])

    def url():
        if not proc.alive():
            raise Fatal(f"fixture exited:\n{proc.tail()}")
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", proc.stdout())
        return m and m.group(1)

    return wait_until(url, 20, "the booking API fixture to listen")


def demo_config(api):
    text = (SOURCE_DIR / "examples" / "demo.yml").read_text()
    expect("127.0.0.1:8089" in text, "examples/demo.yml no longer targets 127.0.0.1:8089")
    return text.replace("http://127.0.0.1:8089", api)


def setup(h):
    return {"api": start_fixture(h)}


def check_booking_journey(h, ctx):
    api = ctx["api"]
    r = http(f"{api}/health")
    expect(r.status == 200 and r.json()["status"] == "ok", f"/health: {r.status} {r.text}")
    events = http(f"{api}/api/events").json()["events"]
    expect(len(events) >= 1 and all("id" in e for e in events), f"/api/events: {events}")
    seats = http(f"{api}/api/events/1/seats").json()["seats"]
    seat = next(s["seat"] for s in seats if s["state"] == "free")

    r = http(f"{api}/api/holds", "POST", data={"event_id": 1, "seat": seat})
    expect(r.status == 201 and {"hold_id", "expires_at"} <= r.json().keys(), f"hold: {r.status} {r.text}")
    hold = r.json()["hold_id"]
    r = http(f"{api}/api/holds", "POST", data={"event_id": 1, "seat": seat})
    expect(r.status == 409, f"holding a held seat: {r.status}, want 409")
    r = http(f"{api}/api/checkout", "POST", data={"hold_id": hold})
    expect(r.status == 200 and r.json().get("seat") == seat, f"checkout: {r.status} {r.text}")
    r = http(f"{api}/api/checkout", "POST", data={"hold_id": hold})
    expect(r.status == 409, f"second checkout of one hold: {r.status}, want 409")

    seat2 = next(s["seat"] for s in http(f"{api}/api/events/1/seats").json()["seats"]
                 if s["state"] == "free")
    hold2 = http(f"{api}/api/holds", "POST", data={"event_id": 1, "seat": seat2}).json()["hold_id"]
    r = http(f"{api}/api/holds/{hold2}", "DELETE")
    expect(r.status == 204, f"release: {r.status}, want 204")
    r = http(f"{api}/api/checkout", "POST", data={"hold_id": hold2})
    expect(r.status == 409, f"checkout of a released hold: {r.status}, want 409")
    r = http(f"{api}/api/holds", "POST", data={"event_id": 99, "seat": "A1"})
    expect(r.status == 404, f"hold on an unknown event: {r.status}, want 404")
    r = http(f"{api}/api/holds", "POST", data=b"not json")
    expect(r.status == 400, f"hold with a bad body: {r.status}, want 400")


def check_demo_config_watches_fixture(h, ctx):
    api = start_fixture(h, "booking-api-2")
    u = start_usherd(h, demo_config(api), name="demo-usherd")
    m = u.wait_runs(DEMO_JOBS, runs=1)
    wrong = {j: (m.value("probe_success", job=j), failure_reasons(m, j)) for j in DEMO_JOBS
             if m.value("probe_success", job=j) != 1}
    expect(not wrong, f"demo probes failing against a healthy fixture: {wrong}")

    r = http(f"{api}/admin/fail-rate", "PUT", data={"fail_rate": 1})
    expect(r.status == 200, f"PUT /admin/fail-rate: {r.status}")

    def all_failing():
        m = u.metrics()
        return all(m.value("probe_success", job=j) == 0 and failure_reasons(m, j) == ["status"]
                   for j in DEMO_JOBS)

    wait_until(all_failing, 30, "every demo probe to fail with reason status")
    http(f"{api}/admin/fail-rate", "PUT", data={"fail_rate": 0})
    wait_until(lambda: all(u.metrics().value("probe_success", job=j) == 1 for j in DEMO_JOBS), 30,
               "the demo probes to recover")
    # The outage is logged once per probe and so is the recovery.
    for job in DEMO_JOBS:
        actions = [e.get("event.action") for e in u.events() if e.get("usher.probe.name") == job]
        expect(actions.count("probe-failed") == 1 and actions.count("probe-recovered") == 1,
               f"{job}: log events {actions}, want one probe-failed and one probe-recovered")


def check_demo_script_cleans_up(h, ctx):
    env = {**os.environ, "USHER_DEMO_SKIP_SETUP": "1", "TMPDIR": str(h.tmp),
           "USHERD": usher_binary("USHERD", "usherd")}
    demo = h.spawn("demo.sh", [SOURCE_DIR / "scripts" / "demo.sh"], env=env)

    def urls():
        if not demo.alive():
            raise Fatal(f"demo.sh exited early:\n{demo.tail()}")
        out = demo.stdout()
        metrics = re.search(r"metrics:\s+(http://127\.0\.0\.1:(\d+))/metrics", out)
        api = re.search(r"watching the booking API at http://127\.0\.0\.1:(\d+)", out)
        return metrics and api and (metrics.group(1), int(metrics.group(2)), int(api.group(1)))

    base, usher_port, api_port = wait_until(urls, 60, "demo.sh to print the /metrics URL")
    demo_dirs = list(h.tmp.glob("usher-demo.*"))
    expect(len(demo_dirs) == 1, f"demo.sh temp dirs under TMPDIR: {demo_dirs}")

    def probes_up():
        text = http(f"{base}/metrics").text
        return all(re.search(rf'^probe_success\{{job="{j}".*\}} 1$', text, re.M) for j in DEMO_JOBS)

    wait_until(probes_up, 30, "the demo's probes to succeed")
    os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    rc = demo.wait(20)
    expect(rc is not None, "demo.sh still running 20s after Ctrl-C")
    expect(rc == 130, f"demo.sh exited {rc} after Ctrl-C, want 130")
    expect(not port_open(usher_port) and not port_open(api_port),
           "usherd or the booking API still listens after demo.sh exited")
    expect(not demo_dirs[0].exists(), f"demo.sh left {demo_dirs[0]} behind")


if __name__ == "__main__":
    main("demo", setup, [check_booking_journey, check_demo_config_watches_fixture,
                         check_demo_script_cleans_up])
