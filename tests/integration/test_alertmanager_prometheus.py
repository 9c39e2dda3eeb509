"""A real Prometheus (Debian's) evaluates an alerting rule and sends its
alerts to usherd as to an Alertmanager (alerting.alertmanagers, API v2):
usherd shows them on /api/v2/alerts with Prometheus' generatorURL, and
notifies the webhook receiver of its route with the rule's labels and
annotations."""

from alerting_peers import WebhookReceiver, indent
from harness import Fatal, TestFailure, expect, free_port, http, main, start_usherd, tool, wait_until

ALERTING = """\
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
receivers:
  - name: hook
    webhook_configs: [{{url: '{url}'}}]
"""

PROMETHEUS = """\
global:
  evaluation_interval: 1s
rule_files: [{rules}]
alerting:
  alertmanagers:
    - api_version: v2
      static_configs: [{{targets: ['127.0.0.1:{port}']}}]
"""

RULES = """\
groups:
  - name: booking
    rules:
      - alert: BookingApiDown
        expr: vector(1)
        labels: {severity: page, service: booking-api}
        annotations: {summary: "the booking API is down"}
"""


def setup(h):
    hook = WebhookReceiver(h)
    u = start_usherd(h, "alerting:\n" + indent(ALERTING.format(url=hook.url("/prom")), 2),
                     log_format="text")
    rules = h.write("rules.yml", RULES)
    cfg = h.write("prometheus.yml", PROMETHEUS.format(rules=rules, port=u.port))
    port = free_port()
    proc = h.spawn("prometheus", [
        tool("prometheus"), f"--config.file={cfg}", f"--storage.tsdb.path={h.path('prom-data')}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        "--rules.alert.resend-delay=1s"])
    base = f"http://127.0.0.1:{port}"

    def ready():
        if not proc.alive():
            raise Fatal(f"prometheus exited ({proc.popen.returncode}):\n{proc.tail()}")
        return http(f"{base}/-/ready", timeout=5).status == 200

    wait_until(ready, 60, "prometheus to become ready")
    return {"u": u, "hook": hook, "prom": base}


def check_prometheus_discovers_usherd(h, ctx):
    def active():
        r = http(f"{ctx['prom']}/api/v1/alertmanagers")
        ams = r.json()["data"]["activeAlertmanagers"]
        return any(str(ctx["u"].port) in a["url"] and "/api/v2/alerts" in a["url"] for a in ams)

    wait_until(active, 30, "usherd among prometheus' active alertmanagers")


def check_alert_reaches_api(h, ctx):
    def listed():
        r = ctx["u"].get("/api/v2/alerts")
        expect(r.status == 200, f"GET /api/v2/alerts: {r.status}")
        return [a for a in r.json() if a["labels"].get("alertname") == "BookingApiDown"]

    got = wait_until(listed, 60, "BookingApiDown on usherd's /api/v2/alerts")[0]
    expect(got["labels"] == {"alertname": "BookingApiDown", "severity": "page",
                             "service": "booking-api"}, f"labels: {got['labels']}")
    expect(got["annotations"] == {"summary": "the booking API is down"}, f"{got['annotations']}")
    expect(got["generatorURL"].startswith("http") and "graph" in got["generatorURL"],
           f"generatorURL from prometheus: {got['generatorURL']!r}")
    expect(got["status"]["state"] == "active" and got["receivers"] == [{"name": "hook"}], f"{got}")


def check_webhook_notified(h, ctx):
    def notified():
        return [d for p, d, _, _ in ctx["hook"].received() if p == "/prom"]

    docs = wait_until(notified, 60, "the webhook notification of BookingApiDown")
    d = docs[0]
    expect(d["groupKey"] == '{}:{alertname="BookingApiDown"}', f"groupKey {d['groupKey']}")
    expect(d["status"] == "firing" and d["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z", f"{d}")
    expect(d["commonLabels"]["service"] == "booking-api", f"{d['commonLabels']}")
    expect(d["externalURL"] == ctx["u"].url, f"externalURL {d['externalURL']} want {ctx['u'].url}")
    # Prometheus resends every second: still one notification per group
    # until something changes (group_interval 2s, repeat 4h). Wait for
    # three more resends (two group intervals) and count again.
    def received():
        return ctx["u"].metrics().value("usher_alerts_received_total", status="valid")

    base = received()
    wait_until(lambda: received() >= base + 3, 30, "three more resends from prometheus")
    docs = notified()
    expect(len(docs) == 1, f"{len(docs)} notifications for one unchanged alert")


if __name__ == "__main__":
    main("alertmanager_prometheus", setup, [check_prometheus_discovers_usherd,
                                            check_alert_reaches_api, check_webhook_notified])
