"""The receivers' payloads next to real Alertmanager's (Debian's
prometheus-alertmanager), both sending to the vendor mocks: Alertmanager
gets two alerts, its webhook notification is handed to usher's delivery
engine as the notification to send, and the Slack, PagerDuty and Opsgenie
messages of the two must agree on what the default templates make (titles,
summaries, descriptions, links, PagerDuty dedup_key and Opsgenie alias from
the same group key). Where usher differs on purpose, the check says so:
"usher" instead of "Alertmanager" as the client and username, and the
PagerDuty severity mapped from the severity label.

This test keeps the delivery test driver (`test_delivery --drive`) rather
than usherd on purpose: it hands Alertmanager's own notification, as
Alertmanager built it, to usher's integrations, so the comparison is of
the integrations alone. usherd builds its own notifications from alerts;
the receivers through usherd are covered by test_receiver_http.py,
test_receiver_email.py, test_receiver_alertmanager.py and
test_receiver_restart.py."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Fatal, expect, free_port, http, main, tool, wait_until  # noqa: E402
from vendormocks import Driver, VendorMock  # noqa: E402

PD_KEY = "0123456789abcdef0123456789abcdef"

AM_CONFIG = """\
route:
  receiver: all
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: all
    webhook_configs: [{{url: {url}/webhook/am}}]
    slack_configs: [{{api_url: {url}/slack/am, channel: '#oncall', send_resolved: true}}]
    pagerduty_configs: [{{routing_key: {pd_key}, url: {url}/pagerduty/v2/enqueue}}]
    opsgenie_configs: [{{api_key: genie-test-key, api_url: {url}/opsgenie/}}]
"""

USHER_CONFIG = """\
delivery: {{workers: 2, min_backoff: 300ms, max_backoff: 1s}}
receivers:
  - name: all
    slack_configs: [{{api_url: {url}/slack/usher, channel: '#oncall', send_resolved: true}}]
    pagerduty_configs: [{{routing_key: {pd_key}, url: {url}/pagerduty/v2/enqueue}}]
    opsgenie_configs: [{{api_key: genie-test-key, api_url: {url}/opsgenie/}}]
"""

ALERTS = [
    {"labels": {"alertname": "SeatHoldsHigh", "service": "booking", "severity": "critical",
                "instance": f"api-{i}:8080", "job": "booking-api"},
     "annotations": {"summary": "seat holds are piling up",
                     "description": f"instance {i} holds 12000 seats"},
     "generatorURL": "http://prometheus.example/graph?g0.expr=holds"}
    for i in (1, 2)
]


def start_am(h, mock):
    port = free_port()
    cfg = h.write("am.yml", AM_CONFIG.format(url=mock.url, pd_key=PD_KEY))
    data = h.path("am-data")
    data.mkdir(exist_ok=True)
    proc = h.spawn("alertmanager", [
        tool("prometheus-alertmanager"), f"--config.file={cfg}", f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        f"--web.external-url=http://am.example:{port}", "--log.level=warn"])
    base = f"http://127.0.0.1:{port}"

    def ready():
        if not proc.alive():
            raise Fatal(f"alertmanager exited ({proc.popen.returncode}):\n{proc.tail()}")
        return http(f"{base}/-/ready", timeout=5).status == 200

    wait_until(ready, 60, "alertmanager to become ready")
    return base


def setup(h):
    mock = VendorMock(h)
    am = start_am(h, mock)
    r = http(f"{am}/api/v2/alerts", method="POST", data=ALERTS)
    expect(r.status == 200, f"POST alerts to Alertmanager: {r.status} {r.text}")
    wait_until(lambda: mock.requests("/webhook/am") and mock.requests("/slack/am") and
               mock.requests("/pagerduty") and mock.requests("/opsgenie"), 60,
               "Alertmanager's four notifications")
    am_pd = mock.requests("/pagerduty")[0]
    am_og = mock.requests("/opsgenie")[0]
    data = mock.requests("/webhook/am")[0].json
    expect(len(data["alerts"]) == 2, f"Alertmanager grouped both alerts: {data}")
    cfg = h.write("delivery.yml", USHER_CONFIG.format(url=mock.url, pd_key=PD_KEY))
    drv = Driver(h, "driver", cfg, h.path("state"))
    for integ in ("slack", "pagerduty", "opsgenie"):
        drv.enqueue("all", integ, 0, data["groupKey"], data)
    wait_until(lambda: mock.requests("/slack/usher") and len(mock.requests("/pagerduty")) == 2
               and len(mock.requests("/opsgenie")) == 2, 30, "usher's three notifications")
    return {"mock": mock, "data": data,
            "slack": (mock.requests("/slack/am")[0], mock.requests("/slack/usher")[0]),
            "pd": (am_pd, [r for r in mock.requests("/pagerduty") if r is not am_pd][0]),
            "og": (am_og, [r for r in mock.requests("/opsgenie") if r is not am_og][0])}


def same(what, am, us):
    expect(am == us, f"{what} differs:\n  alertmanager: {json.dumps(am)}\n  usher:        "
           f"{json.dumps(us)}")


def check_both_valid(h, ctx):
    for name in ("slack", "pd", "og"):
        for who, r in zip(("alertmanager", "usher"), ctx[name]):
            expect(r.valid, f"{who}'s {name} payload: {r.problems}")


def check_slack(h, ctx):
    am, us = (r.json for r in ctx["slack"])
    same("channel", am["channel"], us["channel"])
    expect(am["username"] == "Alertmanager" and us["username"] == "usher",
           "username: each names itself")
    a, u = am["attachments"][0], us["attachments"][0]
    for k in ("title", "title_link", "color", "fallback", "mrkdwn_in"):
        same(f"attachment {k}", a.get(k), u.get(k))
    same("attachment text", a.get("text", ""), u.get("text", ""))


def check_pagerduty(h, ctx):
    am, us = (r.json for r in ctx["pd"])
    for k in ("routing_key", "dedup_key", "event_action", "client_url"):
        same(k, am.get(k), us.get(k))
    expect(am["client"] == "Alertmanager" and us["client"] == "usher", "client: each names itself")
    pa, pu = am["payload"], us["payload"]
    same("summary", pa["summary"], pu["summary"])
    # Alertmanager's default severity is "error"; usher maps the label
    expect(pa["severity"] == "error" and pu["severity"] == "critical",
           f"severity: {pa['severity']} / {pu['severity']}")
    for k in ("firing", "resolved", "num_firing", "num_resolved"):
        same(f"custom_details.{k}", pa["custom_details"].get(k), pu["custom_details"].get(k))


def check_opsgenie(h, ctx):
    am, us = (r.json for r in ctx["og"])
    for k in ("alias", "message", "description", "source"):
        same(k, am.get(k), us.get(k))
    same("path", ctx["og"][0].path, ctx["og"][1].path)


if __name__ == "__main__":
    main("receiver_conformance", setup, [check_both_valid, check_slack, check_pagerduty,
                                         check_opsgenie])
