"""App scrapes against a small app the test serves (Python's HTTP server):
text 0.0.4 and OpenMetrics bodies re-exposed with job/instance, up and the
scrape_* series, honor_labels both ways, sample_limit, malformed and
failing targets, the headers Prometheus sends, and promtool-clean output."""

import base64
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (expect, free_port, main, run, start_usherd, tool,  # noqa: E402
                     wait_until)

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"
OM_CT = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# 8 samples; "seen" changes every request, so each scrape adds one series.
APP_METRICS = """\
# HELP booking_requests_total Booking API requests.
# TYPE booking_requests_total counter
booking_requests_total{{code="200",job="inner",instance="pod-7"}} 1027
booking_requests_total{{code="500",job="inner",instance="pod-7"}} 3
# HELP booking_seats_held Seats held right now.
# TYPE booking_seats_held gauge
booking_seats_held{{event="final"}} 42
# HELP booking_latency_seconds Request latency.
# TYPE booking_latency_seconds histogram
booking_latency_seconds_bucket{{le="0.1"}} 900
booking_latency_seconds_bucket{{le="+Inf"}} 1030
booking_latency_seconds_sum 61.5
booking_latency_seconds_count 1030
# HELP booking_scrapes_seen A series new on every request.
# TYPE booking_scrapes_seen gauge
booking_scrapes_seen{{n="{n}"}} 1
"""
APP_SAMPLES = 8

OM_METRICS = """\
# TYPE payments counter
# HELP payments Payments processed.
payments_total{provider="stripe"} 17 # {trace_id="abc"} 1 1700000000.5
payments_created{provider="stripe"} 1700000000.0
# TYPE build info
# HELP build Build of the payment service.
build_info{version="1.4.2"} 1
# TYPE queue_depth gauge
# HELP queue_depth Messages waiting.
queue_depth 5
# EOF
"""

TOKEN = "scrape-tok-5f1e9a"
PASSWORD = "scrape-pw-77c2"

BIG = "".join(f'# TYPE big_{i} gauge\nbig_{i} {i}\n' for i in range(50))


class App:
    """The booking service's /metrics, and what usherd sent it."""

    def __init__(self, h):
        app = self
        self.lock = threading.Lock()
        self.requests = 0
        self.headers = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                with app.lock:
                    app.requests += 1
                    n = app.requests
                    app.headers[path] = (self.path, dict(self.headers))
                if path == "/metrics":
                    self.reply(200, TEXT_CT, APP_METRICS.format(n=n))
                elif path == "/om":
                    self.reply(200, OM_CT, OM_METRICS)
                elif path == "/big":
                    self.reply(200, TEXT_CT, BIG)
                elif path == "/bad":
                    self.reply(200, TEXT_CT, "ok_metric 1\nbroken_metric{x=\"1\" 2\n")
                elif path == "/private":
                    want = {f"Bearer {TOKEN}",
                            "Basic " + base64.b64encode(f"usher:{PASSWORD}".encode()).decode()}
                    if self.headers.get("Authorization") in want:
                        self.reply(200, TEXT_CT, "# HELP private_ok Authorized.\n"
                                                 "# TYPE private_ok gauge\nprivate_ok 1\n")
                    else:
                        self.reply(401, "text/plain", "who are you\n")
                elif path == "/error":
                    self.reply(500, "text/plain", "internal error\n")
                else:
                    self.reply(404, "text/plain", "not found\n")

            def reply(self, code, ctype, body):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        h.on_cleanup(self.close)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 800ms
scrape_configs:
  - job_name: booking-api
    static_configs:
      - targets: ["127.0.0.1:{port}"]
        labels: {{team: booking}}
  - job_name: honored
    honor_labels: true
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: payments
    metrics_path: /om
    params: {{module: [booking], "a b": "c&d"}}
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: limited
    metrics_path: /big
    sample_limit: 10
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: broken
    metrics_path: /bad
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: erroring
    metrics_path: /error
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: down
    static_configs: [{{targets: ["127.0.0.1:{closed}"]}}]
  - job_name: bearer
    metrics_path: /private
    bearer_token: "${{env:USHER_IT_SCRAPE_TOKEN}}"
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: basic
    metrics_path: /private
    basic_auth: {{username: usher, password: "${{env:USHER_IT_SCRAPE_PASSWORD}}"}}
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: anonymous
    metrics_path: /private
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""

JOBS = ["booking-api", "honored", "payments", "limited", "broken", "erroring", "down", "bearer",
        "basic", "anonymous"]


def setup(h):
    app = App(h)
    closed = free_port()
    u = start_usherd(h, CONFIG.format(port=app.port, closed=closed),
                     env={"USHER_IT_SCRAPE_TOKEN": TOKEN, "USHER_IT_SCRAPE_PASSWORD": PASSWORD})
    m = u.wait_runs(JOBS, runs=3)
    return {"u": u, "m": m, "app": app, "inst": f"127.0.0.1:{app.port}",
            "closed": f"127.0.0.1:{closed}"}


def check_up(h, ctx):
    m, inst = ctx["m"], ctx["inst"]
    want = {"booking-api": 1, "honored": 1, "payments": 1, "limited": 0, "broken": 0,
            "erroring": 0, "down": 0, "bearer": 1, "basic": 1, "anonymous": 0}
    got = {j: m.value("up", job=j) for j in JOBS}
    expect(got == want, f"up by job: {got}, want {want}")
    expect(m.find("up", job="booking-api", instance=inst, team="booking"),
           f"up of booking-api should carry instance={inst} and team=booking: "
           f"{m.find('up', job='booking-api')}")
    expect(m.find("up", job="down", instance=ctx["closed"]), "up{job=down} should name its target")
    for j in JOBS:
        d = m.value("scrape_duration_seconds", job=j)
        expect(d is not None and 0 <= d < 1, f"scrape_duration_seconds{{job={j}}} = {d}")
    expect(not m.find("probe_success", job="booking-api"),
           "scrape targets report up, not probe_success")


def check_samples_reexposed(h, ctx):
    m, inst = ctx["m"], ctx["inst"]
    ok = m.find("booking_requests_total", job="booking-api", code="200")
    expect(len(ok) == 1 and ok[0].value == 1027, f"booking_requests_total{{code=200}}: {ok}")
    labels = ok[0].labels
    want = {"job": "booking-api", "instance": inst, "team": "booking", "code": "200",
            "exported_job": "inner", "exported_instance": "pod-7"}
    expect(labels == want, f"labels {labels}, want {want} (clashing ones as exported_*)")
    expect(m.value("booking_seats_held", job="booking-api", event="final") == 42,
           "booking_seats_held not re-exposed")
    buckets = m.find("booking_latency_seconds_bucket", job="booking-api")
    expect(sorted(b.labels["le"] for b in buckets) == ["+Inf", "0.1"],
           f"histogram buckets: {buckets}")
    expect(m.value("booking_latency_seconds_count", job="booking-api") == 1030, "histogram count")
    expect(m.types.get("booking_requests_total") == "counter" and
           m.types.get("booking_latency_seconds") == "histogram" and
           m.types.get("booking_seats_held") == "gauge",
           f"types not kept: { {k: v for k, v in m.types.items() if k.startswith('booking')} }")
    expect(m.helps.get("booking_seats_held") == "Seats held right now.", "help not kept")
    expect(not m.duplicates(), f"duplicate series: {m.duplicates()[:5]}")


def check_honor_labels(h, ctx):
    m, inst = ctx["m"], ctx["inst"]
    honored = [s for s in m.find("booking_requests_total", code="200")
               if s.labels.get("job") == "inner"]
    expect(len(honored) == 1, f"honor_labels: the target's job=inner should be kept: "
                              f"{m.find('booking_requests_total', code='200')}")
    expect(honored[0].labels.get("instance") == "pod-7" and
           "exported_job" not in honored[0].labels,
           f"honor_labels keeps the target's own instance, renames nothing: {honored[0]}")
    # samples without such labels still get the scrape's job and instance
    seats = m.find("booking_seats_held", job="honored", instance=inst)
    expect(len(seats) == 1, f"booking_seats_held of job honored: {seats}")


def check_scrape_counts(h, ctx):
    m = ctx["m"]
    for j in ("booking-api", "honored"):
        expect(m.value("scrape_samples_scraped", job=j) == APP_SAMPLES,
               f"scrape_samples_scraped{{job={j}}} = {m.value('scrape_samples_scraped', job=j)}, "
               f"want {APP_SAMPLES}")
        expect(m.value("scrape_samples_post_metric_relabeling", job=j) == APP_SAMPLES,
               f"scrape_samples_post_metric_relabeling{{job={j}}}")
        # one series is new on every scrape (booking_scrapes_seen{n})
        expect(m.value("scrape_series_added", job=j) == 1,
               f"scrape_series_added{{job={j}}} = {m.value('scrape_series_added', job=j)}, want 1")
    for j in ("down", "erroring", "broken"):
        expect(m.value("scrape_samples_scraped", job=j) == 0, f"scrape_samples_scraped{{job={j}}}")


def check_openmetrics_target(h, ctx):
    m = ctx["m"]
    pay = m.find("payments_total", job="payments", provider="stripe")
    expect(len(pay) == 1 and pay[0].value == 17, f"payments_total from OpenMetrics: {pay}")
    expect(not m.find("payments_created"), "_created series are not re-exposed")
    expect(m.value("build_info", job="payments", version="1.4.2") == 1, "info family")
    expect(m.value("queue_depth", job="payments") == 5, "queue_depth")
    expect(m.value("scrape_samples_scraped", job="payments") == 3,
           f"scrape_samples_scraped{{job=payments}} = "
           f"{m.value('scrape_samples_scraped', job='payments')} (payments_total, build_info, "
           f"queue_depth)")


def check_sample_limit(h, ctx):
    m = ctx["m"]
    expect(m.value("up", job="limited") == 0, "a scrape over sample_limit is up 0")
    expect(m.value("scrape_samples_scraped", job="limited") == 50,
           f"scrape_samples_scraped{{job=limited}} = "
           f"{m.value('scrape_samples_scraped', job='limited')}, want 50")
    leaked = [s for s in m.samples if s.name.startswith("big_")]
    expect(not leaked, f"samples of a scrape over its limit leaked: {leaked[:3]}")
    events = [e for e in ctx["u"].events() if e.get("usher.probe.name", "").startswith("limited/")]
    expect(events and "more than sample_limit 10" in events[0].get("error.message", ""),
           f"the log should say why: {events[:1]}")


def check_broken_targets(h, ctx):
    m, u = ctx["m"], ctx["u"]
    expect(not m.find("ok_metric"), "a malformed scrape must not import its good lines")
    msgs = {e.get("usher.probe.name", "").split("/")[0]: e.get("error.message", "")
            for e in u.events() if e.get("event.action") == "probe-failed"}
    expect("line 2:21: expected ',' or '}'" in msgs.get("broken", ""),
           f"the parse error should name line:col: {msgs.get('broken')!r}")
    expect("status code 500" in msgs.get("erroring", "") or "500" in msgs.get("erroring", ""),
           f"erroring: {msgs.get('erroring')!r}")
    expect(msgs.get("down"), "down: no failure logged")


def check_request_headers(h, ctx):
    app = ctx["app"]
    with app.lock:
        path, headers = app.headers["/metrics"]
        om_path, _ = app.headers["/om"]
    expect(headers.get("Accept") == PROMETHEUS_ACCEPT,
           f"Accept {headers.get('Accept')!r}, want Prometheus' {PROMETHEUS_ACCEPT!r}")
    expect(headers.get("X-Prometheus-Scrape-Timeout-Seconds") == "0.8",
           f"X-Prometheus-Scrape-Timeout-Seconds: {headers.get('X-Prometheus-Scrape-Timeout-Seconds')!r}")
    expect(om_path == "/om?module=booking&a%20b=c%26d", f"params: requested {om_path!r}")


def check_auth(h, ctx):
    m, u = ctx["m"], ctx["u"]
    for j in ("bearer", "basic"):
        expect(m.value("private_ok", job=j) == 1, f"private_ok{{job={j}}} missing")
    expect(not m.find("private_ok", job="anonymous"), "an unauthorized scrape imports nothing")
    text = u.proc.stdout() + u.proc.stderr() + u.get("/metrics").text
    for secret in (TOKEN, PASSWORD):
        expect(secret not in text, f"a secret ({secret[:6]}…) appears in usherd's output")


def check_promtool_clean(h, ctx):
    promtool = tool("promtool")
    for accept in (None, "application/openmetrics-text"):
        r = ctx["u"].get("/metrics", headers={"Accept": accept} if accept else None)
        expect(r.status == 200, f"/metrics status {r.status}")
        if accept:
            expect(r.text.endswith("# EOF\n"), "OpenMetrics output must end with # EOF")
            continue
        res = run([promtool, "check", "metrics"], input_bytes=r.body)
        out = (res.stdout + res.stderr).decode(errors="replace")
        expect(res.returncode == 0, f"promtool check metrics exited {res.returncode}:\n{out}")


def check_reload(h, ctx):
    # a job dropped and one added by SIGHUP: their series follow, the rest keep running
    u, app = ctx["u"], ctx["app"]
    text = CONFIG.format(port=app.port, closed=free_port())
    text = text.replace("  - job_name: limited\n", "  - job_name: added\n").replace(
        "    metrics_path: /big\n    sample_limit: 10\n", "    metrics_path: /om\n")
    Path(u.config_path).write_text(text)
    u.reload()
    m = wait_until(lambda: (lambda m: m if m.value("up", job="added") == 1 and
                            not m.find("up", job="limited") else None)(u.metrics()),
                   20, "the added job scraped and the removed one gone")
    expect(m.value("payments_total", job="added", provider="stripe") == 17,
           "the added job's samples")
    expect(m.value("up", job="booking-api") == 1, "the kept jobs keep running")
    expect(not m.duplicates(), f"duplicate series after reload: {m.duplicates()[:3]}")


def check_target_recovers(h, ctx):
    # the app goes away and comes back on the same port: up follows
    app, u = ctx["app"], ctx["u"]
    app.close()
    wait_until(lambda: u.metrics().value("up", job="booking-api") == 0, 20,
               "up{job=booking-api} to drop to 0 with the app gone")
    m = u.metrics()
    expect(not m.find("booking_seats_held", job="booking-api"),
           "a failed scrape must not keep serving the previous samples")
    server = ThreadingHTTPServer(("127.0.0.1", app.port), app.server.RequestHandlerClass)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    h.on_cleanup(lambda: (server.shutdown(), server.server_close()))
    wait_until(lambda: u.metrics().value("up", job="booking-api") == 1, 20,
               "up{job=booking-api} back to 1")


if __name__ == "__main__":
    main("scrape", setup, [
        check_up, check_samples_reexposed, check_honor_labels, check_scrape_counts,
        check_openmetrics_target, check_sample_limit, check_broken_targets,
        check_request_headers, check_auth, check_promtool_clean, check_reload,
        check_target_recovers,
    ])
