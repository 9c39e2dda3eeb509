"""The HTTP receivers against vendor-format mocks (tests/integration/
vendormocks.py): webhook (Alertmanager's v4 JSON as it is, max_alerts),
Slack (attachments and blocks, one message a second per webhook URL, 429
Retry-After honoured), PagerDuty Events v2 (dedup_key = sha256 of the group
key, trigger then resolve, severity mapping, events kept under 512 KB),
Opsgenie Alert API v2 (create and close by alias). Failures injected: 5xx
and dropped connections retried with growing backoff, slow answers cut by
the timeout and retried, 400 refused once and logged once."""

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import expect, main, parse_metrics, wait_until  # noqa: E402
from vendormocks import Driver, VendorMock, notification  # noqa: E402

PD_KEY = "0123456789abcdef0123456789abcdef"

CONFIG = """\
delivery: {{workers: 4, min_backoff: 300ms, max_backoff: 2s}}
receivers:
  - name: hook
    webhook_configs:
      - url: {url}/webhook/plain
      - url: {url}/webhook/cut
        max_alerts: 2
      - url: {url}/webhook/basic
        http_config: {{basic_auth: {{username: usher, password: s3cret}}}}
      - url: {url}/webhook/bearer
        http_config: {{authorization: {{credentials: tok-123}}}}
  - name: flaky
    webhook_configs:
      - url: {url}/webhook/flaky
        timeout: 1s
  - name: refused
    webhook_configs:
      - url: {url}/webhook/refused
  - name: chat
    slack_configs:
      - api_url: https://hooks.slack.com/services/T0/B0/never-used
        url: {url}/slack/T1
        channel: '#oncall'
        send_resolved: true
      - url: {url}/slack/T2
        blocks: true
        text: '{{{{ range .Alerts }}}}*{{{{ .Labels.instance }}}}*: {{{{ .Annotations.description }}}}
          {{{{ end }}}}'
  - name: pager
    pagerduty_configs:
      - routing_key: {pd_key}
        url: {url}/pagerduty/v2/enqueue
        component: '{{{{ .CommonLabels.service }}}}'
        details: {{runbook: 'https://runbooks.example/{{{{ .CommonLabels.alertname }}}}'}}
  - name: genie
    opsgenie_configs:
      - api_key: genie-test-key
        url: {url}/opsgenie/
        tags: 'usher, {{{{ .CommonLabels.service }}}}'
        priority: '{{{{ if eq .CommonLabels.severity "critical" }}}}P1{{{{ else }}}}P3{{{{ end }}}}'
        details: {{service: '{{{{ .CommonLabels.service }}}}'}}
        responders:
          - {{name: booking-sre, type: team}}
          - {{username: ana@booking.example, type: user}}
"""


def setup(h):
    mock = VendorMock(h)
    cfg = h.write("delivery.yml", CONFIG.format(url=mock.url, pd_key=PD_KEY))
    drv = Driver(h, "driver", cfg, h.path("state"))
    return {"mock": mock, "drv": drv}


def metric(ctx, name, **labels):
    m = parse_metrics(ctx["drv"].metrics())
    return m.value(name, **labels)


def check_webhook_as_is(h, ctx):
    mock, drv = ctx["mock"], ctx["drv"]
    data = notification("SeatHoldsHigh", n=5)
    drv.enqueue("hook", "webhook", 0, data["groupKey"], data)
    drv.enqueue("hook", "webhook", 1, data["groupKey"], data)
    got = wait_until(lambda: mock.accepted("/webhook/plain"), 20, "the webhook delivery")[0]
    expect(got.valid, f"payload problems: {got.problems}")
    expect(got.json == data, f"webhook body differs from the notification:\n{got.json}")
    cut = wait_until(lambda: mock.accepted("/webhook/cut"), 20, "the max_alerts delivery")[0]
    expect(cut.valid, f"payload problems: {cut.problems}")
    expect(len(cut.json["alerts"]) == 2 and cut.json["truncatedAlerts"] == 3,
           f"max_alerts 2 of 5: {len(cut.json['alerts'])} alerts, "
           f"truncatedAlerts {cut.json['truncatedAlerts']}")
    expect(cut.json["alerts"] == data["alerts"][:2], "the first alerts are kept")
    drv.enqueue("hook", "webhook", 2, data["groupKey"], data)
    drv.enqueue("hook", "webhook", 3, data["groupKey"], data)
    basic = wait_until(lambda: mock.accepted("/webhook/basic"), 20, "basic auth")[0]
    expect(basic.headers.get("Authorization") == "Basic dXNoZXI6czNjcmV0",
           f"http_config basic_auth: {basic.headers.get('Authorization')}")
    bearer = wait_until(lambda: mock.accepted("/webhook/bearer"), 20, "bearer")[0]
    expect(bearer.headers.get("Authorization") == "Bearer tok-123",
           f"http_config authorization: {bearer.headers.get('Authorization')}")


def check_retries_with_backoff(h, ctx):
    mock, drv = ctx["mock"], ctx["drv"]
    mock.fail("/webhook/flaky", [("status", 503, {}, b"down"), ("drop",), ("slow", 3),
                                 ("status", 500, {}, b"oops")])
    data = notification("ApiDown")
    drv.enqueue("flaky", "webhook", 0, data["groupKey"], data)
    wait_until(lambda: mock.accepted("/webhook/flaky"), 40, "the delivery after four failures")
    wait_until(lambda: drv.pending() == 0, 10, "the queue to empty")
    reqs = mock.requests("/webhook/flaky")
    expect(len(reqs) == 5, f"5 attempts (503, drop, slow, 500, ok), got {len(reqs)}: {reqs}")
    # the slow answer came after the 1 s timeout: usher had given up on it
    expect([r.status for r in reqs] == [503, None, 200, 500, 200],
           f"answers: {[r.status for r in reqs]}")
    gaps = [b.at - a.at for a, b in zip(reqs, reqs[1:])]
    # 300 ms doubling with ±20% jitter: 0.24+, 0.48+, (3 s slow answer cut at
    # 1 s) + 0.96+, 1.6+
    expect(gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.7 and gaps[3] >= 1.2,
           f"backoff between attempts does not grow: {[round(g, 2) for g in gaps]}")
    expect(gaps[1] > gaps[0] and gaps[3] > gaps[1], f"gaps {gaps}")
    m = parse_metrics(drv.metrics())
    expect(m.value("usher_notifications_total", receiver="flaky", integration="webhook",
                   outcome="retried") == 4, "4 retried attempts counted")
    expect(m.value("usher_notifications_total", receiver="flaky", integration="webhook",
                   outcome="sent") == 1, "1 sent counted")
    expect(m.value("usher_notification_latency_seconds_count", receiver="flaky",
                   integration="webhook") == 1, "latency observed once")


def check_refusal_logged_once(h, ctx):
    mock, drv = ctx["mock"], ctx["drv"]
    mock.fail("/webhook/refused", [("status", 400, {}, b"bad request: field x")])
    data = notification("Refused")
    drv.enqueue("refused", "webhook", 0, data["groupKey"], data)
    wait_until(lambda: drv.pending() == 0 and mock.requests("/webhook/refused"), 20,
               "the refused delivery to be dropped")
    wait_until(lambda: metric(ctx, "usher_notifications_total", receiver="refused",
                              integration="webhook", outcome="failed") == 1, 10,
               "failed counted")
    expect(len(mock.requests("/webhook/refused")) == 1, "a 400 is not retried")
    lines = [ln for ln in drv.stderr().splitlines() if "refused, not retried" in ln and
             "refused/webhook" in ln]
    expect(len(lines) == 1, f"one log line for the refusal, got {lines}")
    expect("answered 400: bad request: field x" in lines[0], f"the log says why: {lines[0]}")


def check_slack_rate_and_retry_after(h, ctx):
    mock, drv = ctx["mock"], ctx["drv"]
    mock.fail("/slack/T1", [("status", 429, {"Retry-After": "2"}, b"rate_limited")])
    groups = [notification(f"Slack{i}") for i in range(4)]
    for g in groups:
        drv.enqueue("chat", "slack", 0, g["groupKey"], g)
    wait_until(lambda: len(mock.accepted("/slack/T1")) == 4, 40, "4 Slack messages")
    reqs = mock.requests("/slack/T1")
    expect(len(reqs) == 5, f"one 429 and 4 messages: {reqs}")
    expect(reqs[0].status == 429, "the first is rate limited")
    expect(reqs[1].at - reqs[0].at >= 1.9, f"Retry-After 2 honoured: waited "
           f"{reqs[1].at - reqs[0].at:.2f}s")
    for a, b in zip(reqs[1:], reqs[2:]):
        expect(b.at - a.at >= 0.9, f"at most one message a second: {b.at - a.at:.2f}s apart")
    for r in reqs[1:]:
        expect(r.valid, f"Slack payload problems: {r.problems}")
        att = r.json["attachments"][0]
        expect(r.json["channel"] == "#oncall" and r.json["username"] == "usher", r.json)
        expect(att["color"] == "danger" and att["title"].startswith("[FIRING:1] Slack"), att)
        expect(att["title_link"] == "http://usher.example:9469/#/alerts?receiver=team", att)
        expect(att["mrkdwn_in"] == ["fallback", "pretext", "text"], att)
    titles = sorted(r.json["attachments"][0]["title"] for r in reqs[1:])
    expect(titles == sorted(f"[FIRING:1] Slack{i} (booking critical)" for i in range(4)),
           f"each group once: {titles}")
    # send_resolved: true on this entry: the resolved notice goes, green
    res = notification("Slack0", status="resolved")
    drv.enqueue("chat", "slack", 0, res["groupKey"], res)
    r = wait_until(lambda: [x for x in mock.accepted("/slack/T1")
                            if x.json["attachments"][0]["color"] == "good"], 20,
                   "the resolved message")[0]
    expect(r.json["attachments"][0]["title"].startswith("[RESOLVED] Slack0"), r.json)


def check_slack_blocks_and_send_resolved(h, ctx):
    mock, drv = ctx["mock"], ctx["drv"]
    data = notification("Blocks", n=2)
    drv.enqueue("chat", "slack", 1, data["groupKey"], data)
    r = wait_until(lambda: mock.accepted("/slack/T2"), 20, "the blocks message")[0]
    expect(r.valid, f"Slack payload problems: {r.problems}")
    blocks = r.json["blocks"]
    expect(blocks[0] == {"type": "header", "text": {"type": "plain_text",
                                                    "text": "[FIRING:2] Blocks (booking critical)"}},
           f"header block: {blocks[0]}")
    expect(blocks[1]["type"] == "section" and "*api-1:8080*: instance 1 is failing" in
           blocks[1]["text"]["text"], f"section block: {blocks[1]}")
    # send_resolved defaults to false for Slack: a resolved group sends nothing
    res = notification("Blocks", status="resolved", n=2)
    drv.enqueue("chat", "slack", 1, res["groupKey"], res)
    wait_until(lambda: drv.pending() == 0, 20, "the queue to empty")
    expect(len(mock.requests("/slack/T2")) == 1, "no resolved message with send_resolved false")


def check_pagerduty(h, ctx):
    mock, drv = ctx["mock"], ctx["drv"]
    mock.fail("/pagerduty", [("status", 502, {}, b"bad gateway")])
    data = notification("PaymentsDown", extra_labels={"severity": "page"})
    dedup = hashlib.sha256(data["groupKey"].encode()).hexdigest()
    drv.enqueue("pager", "pagerduty", 0, data["groupKey"], data)
    res = notification("PaymentsDown", status="resolved", extra_labels={"severity": "page"})
    drv.enqueue("pager", "pagerduty", 0, res["groupKey"], res)
    wait_until(lambda: len(mock.accepted("/pagerduty")) == 2, 30, "trigger and resolve")
    reqs = mock.requests("/pagerduty")
    expect([r.status for r in reqs] == [502, 202, 202], f"502 retried: {reqs}")
    trig, reso = mock.accepted("/pagerduty")
    for r in (trig, reso):
        expect(r.valid, f"PagerDuty payload problems: {r.problems}")
        expect(r.json["dedup_key"] == dedup, "dedup_key is sha256 of the group key")
        expect(r.json["routing_key"] == PD_KEY, "routing key")
    expect(trig.json["event_action"] == "trigger" and reso.json["event_action"] == "resolve",
           "trigger, then resolve, in order")
    p = trig.json["payload"]
    expect(p["severity"] == "critical", f"severity page maps to critical: {p['severity']}")
    expect(p["summary"] == "[FIRING:1] PaymentsDown (booking page)", p["summary"])
    expect(p["source"] == "usher" and p["component"] == "booking", p)
    expect(trig.json["client"] == "usher" and
           trig.json["client_url"] == "http://usher.example:9469/#/alerts?receiver=team",
           trig.json)
    d = p["custom_details"]
    expect(d["num_firing"] == "1" and d["num_resolved"] == "0" and
           d["runbook"] == "https://runbooks.example/PaymentsDown" and
           "instance = api-0:8080" in d["firing"], f"custom_details: {d}")


def check_pagerduty_size_and_severity(h, ctx):
    mock, drv = ctx["mock"], ctx["drv"]
    before = len(mock.accepted("/pagerduty"))
    big = notification("Huge", n=300, extra_labels={"severity": "warning"})
    for a in big["alerts"]:
        a["annotations"]["description"] = "x" * 4000
    drv.enqueue("pager", "pagerduty", 0, big["groupKey"], big)
    r = wait_until(lambda: mock.accepted("/pagerduty")[before:], 30, "the big event")[0]
    expect(r.valid, f"PagerDuty payload problems: {r.problems}")
    expect(len(r.raw) < 512 * 1024, f"event of {len(r.raw)} bytes")
    expect("error" in r.json["payload"]["custom_details"] and
           "512KB" in r.json["payload"]["custom_details"]["error"],
           "custom details replaced by a note")
    expect(r.json["payload"]["severity"] == "warning", "warning stays warning")


def check_opsgenie(h, ctx):
    mock, drv = ctx["mock"], ctx["drv"]
    data = notification("Checkout" + "Slow" * 40)  # a message longer than 130 characters
    alias = hashlib.sha256(data["groupKey"].encode()).hexdigest()
    drv.enqueue("genie", "opsgenie", 0, data["groupKey"], data)
    res = notification("Checkout" + "Slow" * 40, status="resolved")
    drv.enqueue("genie", "opsgenie", 0, res["groupKey"], res)
    wait_until(lambda: len(mock.accepted("/opsgenie")) == 2, 30, "create and close")
    create, close = mock.requests("/opsgenie")
    for r in (create, close):
        expect(r.valid, f"Opsgenie problems: {r.problems}")
    expect(create.path == "/opsgenie/v2/alerts", create.path)
    c = create.json
    expect(c["alias"] == alias, "alias is sha256 of the group key")
    expect(len(c["message"]) == 130 and c["message"].endswith("\u2026"),
           f"message cut to 130 characters: {len(c['message'])}")
    expect(c["responders"] == [{"type": "team", "name": "booking-sre"},
                               {"type": "user", "username": "ana@booking.example"}],
           f"responders: {c.get('responders')}")
    expect(c["tags"] == ["usher", "booking"] and c["priority"] == "P1" and
           c["details"] == {"service": "booking"}, c)
    expect(c["source"] == "http://usher.example:9469/#/alerts?receiver=team", c["source"])
    expect("Alerts Firing:" in c["description"], c["description"])
    expect(close.path == f"/opsgenie/v2/alerts/{alias}/close?identifierType=alias", close.path)


if __name__ == "__main__":
    main("receiver_http", setup, [
        check_webhook_as_is, check_retries_with_backoff, check_refusal_logged_once,
        check_slack_rate_and_retry_after, check_slack_blocks_and_send_resolved,
        check_pagerduty, check_pagerduty_size_and_severity, check_opsgenie,
    ])
