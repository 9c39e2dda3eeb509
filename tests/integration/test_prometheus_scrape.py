"""A real Prometheus scrapes usherd with honor_labels: up is 1 and each
probe's probe_success arrives under the probe's own job and instance."""

import json
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (Fatal, expect, free_port, http, main, start_nginx, start_usherd,  # noqa: E402
                     tool, wait_until)

USHER_CONFIG = """\
global: {{scrape_interval: 1s}}
probes:
  - name: booking-ok
    type: http
    url: http://127.0.0.1:{port}/ok
    timeout: 800ms
  - name: booking-down
    type: http
    url: http://127.0.0.1:{port}/down
    timeout: 800ms
"""

PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: usher
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def start_prometheus(h, target_port):
    port = free_port()
    cfg = h.write("prometheus.yml", PROMETHEUS_CONFIG.format(port=target_port))
    data = h.path("prometheus-data")
    proc = h.spawn("prometheus", [
        tool("prometheus"), f"--config.file={cfg}", f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        "--storage.tsdb.retention.time=1h", "--web.enable-lifecycle"])
    base = f"http://127.0.0.1:{port}"

    def ready():
        if not proc.alive():
            raise Fatal(f"prometheus exited ({proc.popen.returncode}):\n{proc.tail()}")
        return http(f"{base}/-/ready", timeout=5).status == 200

    wait_until(ready, 60, "prometheus to become ready")
    return base


def query(base, promql):
    """The instant vector for promql: a list of (labels, value)."""
    r = http(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=10)
    expect(r.status == 200, f"query {promql!r}: status {r.status}: {r.text[:300]}")
    body = r.json()
    expect(body.get("status") == "success", f"query {promql!r}: {body}")
    return [(s["metric"], float(s["value"][1])) for s in body["data"]["result"]]


def setup(h):
    port = free_port()
    start_nginx(h, f"""\
  server {{ listen 127.0.0.1:{port};
    location = /ok {{ return 200 "ok\\n"; }}
    location = /down {{ return 503 "down\\n"; }} }}
""", [port])
    u = start_usherd(h, USHER_CONFIG.format(port=port))
    u.wait_runs(["booking-ok", "booking-down"], runs=1)
    prom = start_prometheus(h, u.port)
    return {"u": u, "prom": prom, "instance": f"127.0.0.1:{port}"}


def check_target_up(h, ctx):
    prom, u = ctx["prom"], ctx["u"]

    def up():
        result = query(prom, 'up{job="usher"}')
        return result if result and result[0][1] == 1 else None

    try:
        result = wait_until(up, 60, 'up{job="usher"} == 1')
    except Exception:
        targets = http(f"{prom}/api/v1/targets").json()["data"]["activeTargets"]
        errors = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]
        raise Fatal(f"prometheus cannot scrape usherd: {errors}") from None
    expect(result[0][0].get("instance") == f"127.0.0.1:{u.port}", f"up series: {result}")
    targets = http(f"{prom}/api/v1/targets").json()["data"]["activeTargets"]
    expect(all(t["health"] == "up" and not t["lastError"] for t in targets),
           f"target errors: {json.dumps(targets)[:500]}")


def check_probe_success_per_job(h, ctx):
    prom, instance = ctx["prom"], ctx["instance"]

    def both():
        got = {s["job"]: (v, s.get("instance")) for s, v in query(prom, "probe_success")}
        return got if {"booking-ok", "booking-down"} <= got.keys() else None

    got = wait_until(both, 60, "probe_success of both probes in prometheus")
    want = {"booking-ok": (1.0, instance), "booking-down": (0.0, instance)}
    expect({j: got[j] for j in want} == want,
           f"probe_success in prometheus: {got}, want {want} (job and instance from usherd, "
           "kept by honor_labels)")


def check_failure_reason_in_prometheus(h, ctx):
    result = wait_until(lambda: query(ctx["prom"], 'probe_failure_info{job="booking-down"} == 1'),
                        30, "probe_failure_info of booking-down")
    reasons = [s.get("reason") for s, _ in result]
    expect(reasons == ["status"], f"probe_failure_info reasons in prometheus: {reasons}")


def check_histogram_usable(h, ctx):
    q = ('histogram_quantile(0.9, sum by (job, le) '
         '(rate(usher_probe_duration_seconds_bucket{job="booking-ok"}[30s])))')
    result = wait_until(lambda: [v for _, v in query(ctx["prom"], q) if v == v], 60,
                        "a p90 of usher_probe_duration_seconds from prometheus")
    expect(0 < result[0] < 1, f"p90 probe duration {result[0]}s for a local nginx")


def check_self_metrics_scraped(h, ctx):
    result = wait_until(lambda: query(ctx["prom"], "usher_build_info"), 30, "usher_build_info")
    expect(result[0][0].get("job") == "usher", f"usher_build_info takes the scrape job: {result}")
    samples = query(ctx["prom"], 'scrape_samples_scraped{job="usher"}')
    expect(samples and samples[0][1] > 20, f"scrape_samples_scraped: {samples}")


if __name__ == "__main__":
    main("prometheus_scrape", setup, [check_target_up, check_probe_success_per_job,
                                      check_failure_reason_in_prometheus, check_histogram_usable,
                                      check_self_metrics_scraped])
