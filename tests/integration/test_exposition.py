"""usherd's /metrics: text 0.0.4 and OpenMetrics by Accept, gzip on request,
promtool-clean output, self metrics, and the health and readiness endpoints."""

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (expect, free_port, gunzip, json_lines, main, parse_metrics, run, start_nginx,  # noqa: E402
                     start_usherd, tool, wait_until)

TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"
OM_CT = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# What Prometheus 2.x sends when scraping.
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")

CONFIG = """\
global:
  scrape_interval: 1s
  external_labels: {{site: it-1}}
probes:
  - name: booking-api
    type: http
    url: http://127.0.0.1:{port}/ok
    timeout: 800ms
    labels: {{note: "quote \\" backslash \\\\ end\\n"}}
  - name: booking-down
    type: http
    url: http://127.0.0.1:{port}/down
    timeout: 800ms
"""


def setup(h):
    port = free_port()
    start_nginx(h, f"""\
  server {{ listen 127.0.0.1:{port};
    location = /ok {{ return 200 "ok\\n"; }}
    location = /down {{ return 500 "no\\n"; }} }}
""", [port])
    launched = time.time()
    u = start_usherd(h, CONFIG.format(port=port))
    u.wait_runs(["booking-api", "booking-down"], runs=1)
    return {"u": u, "launched": launched}


def check_text_format_by_default(h, ctx):
    r = ctx["u"].get("/metrics")
    expect(r.status == 200, f"status {r.status}")
    expect(r.headers.get("Content-Type") == TEXT_CT,
           f"Content-Type {r.headers.get('Content-Type')!r}, want {TEXT_CT!r}")
    m = parse_metrics(r.text)
    expect(not m.eof, "text format must not end with # EOF")
    expect(m.types.get("usher_probe_runs_total") == "counter",
           f"text format should declare # TYPE usher_probe_runs_total counter, got "
           f"{ {k: v for k, v in m.types.items() if 'runs' in k} }")
    expect(not m.duplicates(), f"duplicate series: {m.duplicates()[:5]}")


def check_openmetrics_by_accept(h, ctx):
    for accept in ("application/openmetrics-text; version=1.0.0", PROMETHEUS_ACCEPT):
        r = ctx["u"].get("/metrics", headers={"Accept": accept})
        expect(r.status == 200, f"status {r.status} for Accept {accept!r}")
        expect(r.headers.get("Content-Type") == OM_CT,
               f"Accept {accept!r}: Content-Type {r.headers.get('Content-Type')!r}, want {OM_CT!r}")
        expect(r.text.endswith("# EOF\n"), "OpenMetrics must end with '# EOF\\n'")
        m = parse_metrics(r.text)
        expect(m.types.get("usher_probe_runs") == "counter",
               "OpenMetrics should declare the counter family as usher_probe_runs (no _total)")
        expect(m.find("usher_probe_runs_total"), "OpenMetrics counter samples keep the _total suffix")
        expect(not m.duplicates(), f"duplicate series: {m.duplicates()[:5]}")


def check_text_when_asked(h, ctx):
    for accept in ("text/plain", "text/plain;version=0.0.4", "*/*"):
        r = ctx["u"].get("/metrics", headers={"Accept": accept})
        expect(r.headers.get("Content-Type") == TEXT_CT,
               f"Accept {accept!r}: Content-Type {r.headers.get('Content-Type')!r}, want {TEXT_CT!r}")


def check_gzip(h, ctx):
    u = ctx["u"]
    r = u.get("/metrics", headers={"Accept-Encoding": "gzip"})
    expect(r.status == 200, f"status {r.status}")
    expect(r.headers.get("Content-Encoding") == "gzip",
           f"Accept-Encoding: gzip gave Content-Encoding {r.headers.get('Content-Encoding')!r}")
    m = parse_metrics(gunzip(r.body).decode())
    expect(m.find("probe_success"), "gzipped exposition has no probe_success")
    plain = u.get("/metrics")
    expect(plain.headers.get("Content-Encoding") in (None, "identity"),
           "no Accept-Encoding must give an uncompressed body")
    om = u.get("/metrics", headers={"Accept-Encoding": "gzip", "Accept": PROMETHEUS_ACCEPT})
    expect(gunzip(om.body).decode().endswith("# EOF\n"), "gzipped OpenMetrics lacks # EOF")


def check_promtool_finds_nothing(h, ctx):
    promtool = tool("promtool")
    body = ctx["u"].get("/metrics").body
    r = run([promtool, "check", "metrics"], input_bytes=body)
    out = (r.stdout + r.stderr).decode(errors="replace").strip()
    expect(r.returncode == 0 and not out,
           f"promtool check metrics exited {r.returncode}:\n{out}")


def check_self_metrics(h, ctx):
    m, launched = ctx["u"].metrics(), ctx["launched"]
    info = m.find("usher_build_info")
    expect(len(info) == 1 and info[0].value == 1, f"usher_build_info: {info}")
    for label in ("version", "revision"):
        expect(info[0].labels.get(label), f"usher_build_info lacks a {label} label: {info}")
    # CPU time counts in clock ticks, so a young idle daemon may show 0.
    cpu = m.value("process_cpu_seconds_total")
    expect(cpu is not None and cpu >= 0, f"process_cpu_seconds_total={cpu}")
    for name in ("process_resident_memory_bytes", "process_open_fds"):
        v = m.value(name)
        expect(v is not None and v > 0, f"{name}={v}")
    start = m.value("process_start_time_seconds")
    expect(start is not None and launched - 5 <= start <= time.time(),
           f"process_start_time_seconds={start}, usherd was launched at {launched:.0f}")
    expect(m.value("usher_config_last_reload_successful") == 1,
           "usher_config_last_reload_successful should be 1")
    ts = m.value("usher_config_last_reload_success_timestamp_seconds")
    expect(ts is not None and launched - 5 <= ts <= time.time(),
           f"usher_config_last_reload_success_timestamp_seconds={ts}")


def check_label_escaping_round_trips(h, ctx):
    m = ctx["u"].metrics()
    got = {s.labels.get("note") for s in m.find("probe_success", job="booking-api")}
    want = 'quote " backslash \\ end\n'
    expect(got == {want}, f"label note={got}, want {want!r}")


def check_health_and_ready(h, ctx):
    u = ctx["u"]
    r = u.get("/-/healthy")
    expect(r.status == 200, f"/-/healthy: {r.status}")
    wait_until(lambda: u.get("/-/ready").status == 200, 20, "/-/ready to answer 200")
    r = u.get("/no-such-page")
    expect(r.status == 404, f"unknown path: status {r.status}, want 404")


def check_logs_are_ecs(h, ctx):
    lines = [line for line in ctx["u"].proc.stdout().splitlines() if line.strip()]
    expect(lines, "usherd logged nothing on stdout")
    events = json_lines("\n".join(lines))
    expect(len(events) == len(lines), f"{len(lines) - len(events)} stdout lines are not JSON objects")
    for e in events:
        missing = [k for k in ("@timestamp", "log.level", "message", "ecs.version", "service.name")
                   if k not in e]
        expect(not missing, f"log event lacks {missing}: {e}")
        expect(e["service.name"] == "usherd", f"service.name {e['service.name']!r}")
        expect(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", e["@timestamp"]),
               f"@timestamp {e['@timestamp']!r} is not RFC 3339 UTC")


def check_metrics_cheap(h, ctx):
    u = ctx["u"]
    slowest = max(u.get("/metrics").elapsed for _ in range(20))
    expect(slowest < 1.0, f"/metrics took up to {slowest:.2f}s with two probes")


if __name__ == "__main__":
    main("exposition", setup, [
        check_text_format_by_default, check_openmetrics_by_accept, check_text_when_asked,
        check_gzip, check_promtool_finds_nothing, check_self_metrics,
        check_label_escaping_round_trips, check_health_and_ready, check_logs_are_ecs,
        check_metrics_cheap,
    ])
