"""The journey probe against the real booking sandbox API
(examples/sandbox/booking_api.py), one sandbox per case so each case's holds
are its own: a full passing journey (examples/journey.yml itself), a failing
middle step, an extraction miss, a slow step hitting the journey's timeout,
a 100 MB body and a connection dropped mid-response. Each case checks the
journey's and the steps' series and that no hold is left behind; secrets
never reach the log, failed bodies are logged redacted; an unknown
{{variable}} is a config error with file:line:col."""

import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (SOURCE_DIR, Fatal, expect, http, main, parse_metrics, run,  # noqa: E402
                     runs_total, start_usherd, usher_binary, wait_until)

FIXTURE = SOURCE_DIR / "examples" / "sandbox" / "booking_api.py"
EXAMPLE = SOURCE_DIR / "examples" / "journey.yml"
SECRET = "s3cr3t-journey-key-9f2c"
STEPS = ("search", "seatmap", "hold", "checkout", "release")
# interval and timeout of every case but the example's: a quarter of the
# timeout (750ms) is kept for the release step
INTERVAL, TIMEOUT = "4s", "3s"

# A journey like the example, with a placeholder for each case's changes.
CASE = """\
  - name: {name}
    type: journey
    interval: {interval}
    timeout: {timeout}
    base_url: {api}
    variables:
      event_query: opera
      api_key: ${{env:JOURNEY_TEST_KEY}}
    headers:
      X-Api-Key: "{{{{api_key}}}}"
    redact: [/error]
    steps:
      - name: search
        request: {{url: "/api/events?q={{{{event_query}}}}"}}
        extract:
          event_id: {{json: /events/0/id}}
      - name: seatmap
        request: {{url: "/api/events/{{{{event_id}}}}/seats"}}
        extract:
          seat: {{regex: '"seat": "(\\w+)", "state": "{seat_state}"'}}
      - name: hold
        request:
          method: POST
          url: /api/holds
          headers: {{Idempotency-Key: "{{{{uuid}}}}"}}
          json: {{event_id: "{{{{event_id}}}}", seat: "{{{{seat}}}}"}}
        expect: {{valid_status_codes: [201]}}
        extract:
          hold_id: {{json: /hold_id}}
      - name: checkout
        request:
          method: POST
          url: /api/checkout
          json: {{hold_id: "{{{{hold_id}}}}", dry_run: true}}
        expect:
          json: [{{pointer: /payable, equals: true}}]
      - name: release
        always: true
        request: {{method: DELETE, url: "/api/holds/{{{{hold_id}}}}"}}
        expect: {{valid_status_codes: [204]}}
"""

# case -> (sandbox fault or None, seat state the seatmap regex wants)
CASES = {
    "failing-step": ({"route": "/api/checkout", "fault": "status", "status": 500}, "free"),
    "extract-miss": (None, "vip"),
    "slow-step": ({"route": "/api/checkout", "fault": "delay", "seconds": 8}, "free"),
    "huge-body": ({"route": "/api/events/{id}/seats", "fault": "huge_body",
                   "bytes": 100 * 1000 * 1000}, "free"),
    "dropped": ({"route": "/api/checkout", "fault": "drop"}, "free"),
    "cleanup-fails": ({"route": "/api/holds/{id}", "fault": "status", "status": 503}, "free"),
}


def start_sandbox(h, name):
    proc = h.spawn(name, [sys.executable, FIXTURE, "--port", "0"])

    def url():
        if not proc.alive():
            raise Fatal(f"{name} exited:\n{proc.tail()}")
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", proc.stdout())
        return m and m.group(1)

    return wait_until(url, 20, f"the booking sandbox {name} to listen")


def sandbox_metrics(api):
    r = http(f"{api}/metrics")
    expect(r.status == 200, f"{api}/metrics: {r.status}")
    return parse_metrics(r.text)


def requests(m, method, route, code):
    return sum(s.value for s in m.find("booking_http_requests_total", method=method, route=route,
                                       code=str(code)))


def vm_hwm_kib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))


def setup(h):
    apis = {"booking-journey": start_sandbox(h, "sandbox-example")}
    for name, (fault, _) in CASES.items():
        apis[name] = start_sandbox(h, f"sandbox-{name}")
        if fault:
            r = http(f"{apis[name]}/admin/faults", "PUT", data=fault)
            expect(r.status == 200, f"PUT /admin/faults {fault}: {r.status} {r.text}")
    example = EXAMPLE.read_text()
    expect("base_url: http://127.0.0.1:8089" in example,
           "examples/journey.yml no longer targets http://127.0.0.1:8089")
    # the example as it is, but sooner and on this sandbox
    example = (example.replace("http://127.0.0.1:8089", apis["booking-journey"])
               .replace("interval: 30s", "interval: 4s").replace("timeout: 10s ", "timeout: 3s "))
    config = example + "".join(
        CASE.format(name=name, api=apis[name], interval=INTERVAL, timeout=TIMEOUT,
                    seat_state=state) for name, (_, state) in CASES.items())
    # under ASan, freed memory sits in a quarantine (256 MiB by default) that
    # would hide whether the 100 MB body is bounded: keep it small
    asan = os.environ.get("ASAN_OPTIONS", "")
    u = start_usherd(h, config, env={"BOOKING_API_KEY": SECRET, "JOURNEY_TEST_KEY": SECRET,
                                     "ASAN_OPTIONS": f"{asan}{':' if asan else ''}quarantine_size_mb=4"})
    hwm_start = vm_hwm_kib(u.proc.pid)
    m = u.wait_runs(list(apis), runs=1, timeout=60)
    return {"u": u, "apis": apis, "m": m, "hwm_start": hwm_start}


def step_values(m, name, job):
    return {s.labels["step"]: s.value for s in m.find(name, job=job)}


def journey_failure(m, job):
    """(reason, step) of the journey's probe_failure_info with a step label."""
    found = [(s.labels.get("reason"), s.labels.get("step"))
             for s in m.find("probe_failure_info", job=job) if "step" in s.labels and s.value == 1]
    expect(len(found) == 1, f"{job}: want one probe_failure_info with a step label, got {found}")
    stepless = [s for s in m.find("probe_failure_info", job=job) if "step" not in s.labels]
    expect(not stepless, f"{job}: a journey's probe_failure_info always names the step: "
                         f"{stepless}")
    return found[0]


def no_hold_left(ctx, job, holds_made):
    """The sandbox has no active hold, and released every one it handed out."""
    api = ctx["apis"][job]
    sm = sandbox_metrics(api)
    active = sm.value("booking_holds_active")
    expect(active == 0, f"{job}: booking_holds_active is {active} after the journey: a seat "
                        f"is left held")
    made = requests(sm, "POST", "/api/holds", 201)
    released = requests(sm, "DELETE", "/api/holds/{id}", 204)
    if holds_made:
        expect(made >= 1, f"{job}: the journey never made a hold (POST /api/holds 201: {made})")
        expect(released >= made - 1, f"{job}: {made} holds made but only {released} released")
    else:
        expect(made == 0, f"{job}: {made} holds were made; none should have been")


def check_example_journey_passes(h, ctx):
    m, job = ctx["m"], "booking-journey"
    expect(m.value("probe_success", job=job) == 1,
           f"probe_success{{job={job}}} = {m.value('probe_success', job=job)}, want 1:\n"
           f"{ctx['u'].proc.tail()}")
    ok = step_values(m, "usher_journey_step_success", job)
    expect(ok == {s: 1 for s in STEPS}, f"usher_journey_step_success: {ok}")
    codes = step_values(m, "usher_journey_step_status_code", job)
    expect(codes == {"search": 200, "seatmap": 200, "hold": 201, "checkout": 200,
                     "release": 204}, f"usher_journey_step_status_code: {codes}")
    durs = step_values(m, "usher_journey_step_duration_seconds", job)
    total = m.value("probe_duration_seconds", job=job)
    expect(set(durs) == set(STEPS) and all(0 < d < 3 for d in durs.values()),
           f"usher_journey_step_duration_seconds: {durs}")
    expect(sum(durs.values()) <= total + 0.01, f"steps took {sum(durs.values())}s, the journey "
                                              f"{total}s")
    phases = m.find("probe_http_duration_seconds", job=job, step="hold")
    expect(sorted(s.labels["phase"] for s in phases) ==
           ["connect", "processing", "resolve", "tls", "transfer"],
           f"probe_http_duration_seconds{{step=hold}}: {phases}")
    expect(m.value("usher_journey_cleanup_failures_total", job=job) == 0,
           "usher_journey_cleanup_failures_total should be 0")
    expect(not [s for s in m.find("probe_failure_info", job=job) if s.value == 1],
           "a passing journey has no probe_failure_info")
    no_hold_left(ctx, job, holds_made=True)


def check_connections_are_reused_within_a_run(h, ctx):
    # one pool per run: after the first step connects, later steps reuse it
    m, job = ctx["m"], "booking-journey"
    connects = {s.labels["step"]: s.value for s in
                m.find("probe_http_duration_seconds", job=job, phase="connect")}
    expect(connects.get("checkout") == 0 and connects.get("release") == 0,
           f"connect phase per step {connects}: later steps should reuse the connection")


def check_failing_middle_step_still_releases(h, ctx):
    m, job = ctx["m"], "failing-step"
    expect(m.value("probe_success", job=job) == 0, f"probe_success{{job={job}}} should be 0")
    expect(journey_failure(m, job) == ("status", "checkout"),
           f"probe_failure_info: {journey_failure(m, job)}, want (status, checkout)")
    ok = step_values(m, "usher_journey_step_success", job)
    expect(ok == {"search": 1, "seatmap": 1, "hold": 1, "checkout": 0, "release": 1},
           f"usher_journey_step_success: {ok} (the release step must run after the failure)")
    expect(step_values(m, "usher_journey_step_status_code", job)["checkout"] == 500,
           "checkout's usher_journey_step_status_code should be 500")
    expect(m.value("usher_journey_cleanup_failures_total", job=job) == 0,
           "the release worked: usher_journey_cleanup_failures_total should be 0")
    no_hold_left(ctx, job, holds_made=True)


def check_extraction_miss(h, ctx):
    m, job = ctx["m"], "extract-miss"
    expect(m.value("probe_success", job=job) == 0, f"probe_success{{job={job}}} should be 0")
    expect(journey_failure(m, job) == ("extract", "seatmap"),
           f"probe_failure_info: {journey_failure(m, job)}, want (extract, seatmap)")
    ok = step_values(m, "usher_journey_step_success", job)
    # release needs {{hold_id}}, which no step extracted: skipped, no series
    expect(ok == {"search": 1, "seatmap": 0}, f"usher_journey_step_success: {ok}")
    no_hold_left(ctx, job, holds_made=False)


def check_slow_step_hits_journey_timeout(h, ctx):
    m, job = ctx["m"], "slow-step"
    expect(m.value("probe_success", job=job) == 0, f"probe_success{{job={job}}} should be 0")
    expect(journey_failure(m, job) == ("timeout", "checkout"),
           f"probe_failure_info: {journey_failure(m, job)}, want (timeout, checkout)")
    d = m.value("probe_duration_seconds", job=job)
    expect(d is not None and 2.0 <= d <= 3.2, f"probe_duration_seconds {d}: want within the 3s "
                                              f"timeout, checkout cut at about 2.25s")
    ok = step_values(m, "usher_journey_step_success", job)
    expect(ok.get("checkout") == 0 and ok.get("release") == 1,
           f"usher_journey_step_success: {ok}: release must run in the time kept for clean-up")
    no_hold_left(ctx, job, holds_made=True)


def check_huge_body_is_bounded(h, ctx):
    m, job, u = ctx["m"], "huge-body", ctx["u"]
    expect(m.value("probe_success", job=job) == 0, f"probe_success{{job={job}}} should be 0")
    expect(journey_failure(m, job) == ("body_too_large", "seatmap"),
           f"probe_failure_info: {journey_failure(m, job)}, want (body_too_large, seatmap)")
    body = m.value("probe_http_uncompressed_body_length", job=job, step="seatmap")
    expect(body is not None and body <= 10 * 1024 * 1024,
           f"probe_http_uncompressed_body_length{{step=seatmap}} = {body}: want at most 10MiB")
    # let a second 100 MB run happen, then look at the peak memory
    u.wait_runs([job], runs=2, timeout=30)
    grew = (vm_hwm_kib(u.proc.pid) - ctx["hwm_start"]) / 1024
    expect(grew < 48, f"usherd's peak RSS grew by {grew:.0f} MiB with 100 MB bodies (limit 10MiB)")
    no_hold_left(ctx, job, holds_made=False)


def check_dropped_connection(h, ctx):
    m, job = ctx["m"], "dropped"
    expect(m.value("probe_success", job=job) == 0, f"probe_success{{job={job}}} should be 0")
    expect(journey_failure(m, job) == ("protocol", "checkout"),
           f"probe_failure_info: {journey_failure(m, job)}, want (protocol, checkout)")
    ok = step_values(m, "usher_journey_step_success", job)
    expect(ok.get("checkout") == 0 and ok.get("release") == 1, f"usher_journey_step_success: {ok}")
    no_hold_left(ctx, job, holds_made=True)


def check_failed_cleanup_is_counted_and_logged(h, ctx):
    m, job, u = ctx["m"], "cleanup-fails", ctx["u"]
    expect(m.value("probe_success", job=job) == 0, f"probe_success{{job={job}}} should be 0")
    expect(journey_failure(m, job) == ("status", "release"),
           f"probe_failure_info: {journey_failure(m, job)}, want (status, release)")
    n = m.value("usher_journey_cleanup_failures_total", job=job)
    expect(n is not None and n >= 1, f"usher_journey_cleanup_failures_total = {n}, want >= 1")
    # the release failed, so the hold is still there: what the alert is for
    active = sandbox_metrics(ctx["apis"][job]).value("booking_holds_active")
    expect(active >= 1, f"booking_holds_active = {active}: the failed release should have left "
                        f"the hold")
    ev = [e for e in u.events() if e.get("event.action") == "journey-step-failed"
          and e.get("usher.probe.name") == job]
    expect(ev and ev[0].get("log.level") == "error" and ev[0].get("usher.journey.cleanup") is True,
           f"a failed clean-up should be logged at error with usher.journey.cleanup: {ev[:1]}")


def check_log_has_redacted_body_and_no_secret(h, ctx):
    u = ctx["u"]
    out = u.proc.stdout() + u.proc.stderr()
    expect(SECRET not in out, "the secret X-Api-Key value appears in usherd's output")
    failed = [e for e in u.events() if e.get("event.action") == "journey-step-failed"
              and e.get("usher.probe.name") == "failing-step"]
    expect(failed, "no journey-step-failed event for the failing-step journey")
    e = failed[0]
    expect(e.get("usher.journey.step") == "checkout", f"event names step {e.get('usher.journey.step')}")
    body = e.get("http.response.body.content")
    expect(body == '{"error":"***"}', f"logged body {body!r}: want /error redacted")


def check_diag_prints_each_step(h, ctx):
    api = ctx["apis"]["failing-step"]
    r = run([usher_binary("USHER", "usher"), "diag", "--config", str(ctx["u"].config_path),
             "--color", "never", "failing-step"],
            env={**os.environ, "BOOKING_API_KEY": SECRET, "JOURNEY_TEST_KEY": SECRET})
    out = r.stdout.decode() + r.stderr.decode()
    expect(r.returncode == 2, f"usher diag on a failing journey exited {r.returncode}:\n{out}")
    for want in (f"step 1/5 search: GET {api}/api/events?q=opera -> 200 HTTP/1.1, dns ",
                 "; extracted event_id=2\n", f"step 4/5 checkout: POST {api}/api/checkout -> 500",
                 "failed: step \"checkout\"", 'response body: {"error":"***"}',
                 f"step 5/5 release: DELETE {api}/api/holds/", " -> 204 HTTP/1.1"):
        expect(want in out, f"usher diag's trace lacks {want!r}:\n{out}")
    expect(SECRET not in out, f"usher diag printed the secret:\n{out}")
    no_hold_left(ctx, "failing-step", holds_made=True)


def check_unknown_variable_is_a_config_error(h, ctx):
    bad = h.write("bad.yml", CASE.format(name="bad", api="http://127.0.0.1:1", interval="4s",
                                         timeout="3s", seat_state="free")
                  .replace('"/api/holds/{{hold_id}}"', '"/api/holds/{{hold}}"'))
    bad.write_text("probes:\n" + bad.read_text())
    r = run([usher_binary("USHER", "usher"), "check-config", str(bad)],
            env={"JOURNEY_TEST_KEY": "x", "PATH": "/usr/bin:/bin"})
    err = r.stderr.decode() + r.stdout.decode()
    expect(r.returncode != 0, f"check-config accepted an unknown variable: {err}")
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "{{hold}}" in t)
    col = bad.read_text().splitlines()[line - 1].index("{{hold}}") + 1
    expect(f"bad.yml:{line}:{col}:" in err and "unknown variable {{hold}}" in err,
           f"want bad.yml:{line}:{col}: unknown variable {{{{hold}}}}, got:\n{err}")


if __name__ == "__main__":
    main("journey", setup, [check_example_journey_passes, check_connections_are_reused_within_a_run,
                            check_failing_middle_step_still_releases, check_extraction_miss,
                            check_slow_step_hits_journey_timeout, check_huge_body_is_bounded,
                            check_dropped_connection, check_failed_cleanup_is_counted_and_logged,
                            check_log_has_redacted_body_and_no_secret,
                            check_diag_prints_each_step, check_unknown_variable_is_a_config_error])
