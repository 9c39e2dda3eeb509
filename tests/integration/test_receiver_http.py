"""The HTTP receivers, through a real usherd (alerts POSTed to
/api/v2/alerts, routed by a `to` label, grouped by alertname), against
vendor-format mocks (tests/integration/vendormocks.py): webhook
(Alertmanager's v4 JSON, max_alerts),
Slack (attachments and blocks, one message a second per webhook URL, 429
Retry-After honoured), PagerDuty Events v2 (dedup_key = sha256 of the group
key, trigger then resolve, severity mapping, events kept under 512 KB),
Opsgenie Alert API v2 (create and close by alias). Failures injected: 5xx
and dropped connections retried with growing backoff, slow answers cut by
the timeout and retried, 400 refused once and logged once."""

import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import expect, main, start_usherd, wait_until  # noqa: E402
from vendormocks import VendorMock, post_alerts, postable, queued  # noqa: E402

PD_KEY = "0123456789abcdef0123456789abcdef"

CONFIG = """\
alerting:
  external_url: http://usher.example:9469
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 100ms
    group_interval: 500ms
    repeat_interval: 1h
    routes:
      - {{matchers: ['to="flaky"'], receiver: flaky}}
      - {{matchers: ['to="refused"'], receiver: refused}}
      - {{matchers: ['to="chat"'], receiver: chat}}
      - {{matchers: ['to="blocks"'], receiver: blocks}}
      - {{matchers: ['to="pager"'], receiver: pager}}
      - {{matchers: ['to="genie"'], receiver: genie}}
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
    - name: blocks
      slack_configs:
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
    u = start_usherd(h, CONFIG.format(url=mock.url, pd_key=PD_KEY))
    return {"mock": mock, "u": u}


def metric(ctx, name, **labels):
    return ctx["u"].metrics().value(name, **labels)


def group_key(to, group):
    """Alertmanager's group key of a child route matching to="<to>"."""
    return f'{{}}/{{to="{to}"}}:{{alertname="{group}"}}'


def send(ctx, group, to=None, status="firing", n=1, extra_labels=None):
    labels = dict(extra_labels or {})
    if to:
        labels["to"] = to
    post_alerts(ctx["u"], postable(group, status=status, n=n, extra_labels=labels))


def subject(status, group, nfiring, common):
    """__subject of Alertmanager's default templates: the common labels
    other than the group's, values in label-name order."""
    rest = " ".join(v for k, v in sorted(common.items()) if k != "alertname")
    head = f"[{status.upper()}:{nfiring}]" if status == "firing" else "[RESOLVED]"
    return f"{head} {group} ({rest})"


def check_webhook_as_is(h, ctx):
    mock = ctx["mock"]
    send(ctx, "SeatHoldsHigh", n=5)
    got = wait_until(lambda: mock.accepted("/webhook/plain"), 20, "the webhook delivery")[0]
    expect(got.valid, f"payload problems: {got.problems}")
    d = got.json
    expect(d["receiver"] == "hook" and d["status"] == "firing" and
           d["groupKey"] == '{}:{alertname="SeatHoldsHigh"}' and d["truncatedAlerts"] == 0 and
           d["groupLabels"] == {"alertname": "SeatHoldsHigh"} and
           d["commonLabels"] == {"alertname": "SeatHoldsHigh", "severity": "critical",
                                 "service": "booking"} and
           d["externalURL"] == "http://usher.example:9469", f"webhook body: {d}")
    insts = [a["labels"]["instance"] for a in d["alerts"]]
    expect(len(insts) == 5 and all(a["status"] == "firing" for a in d["alerts"]),
           f"the 5 alerts, firing: {d['alerts']}")
    cut = wait_until(lambda: mock.accepted("/webhook/cut"), 20, "the max_alerts delivery")[0]
    expect(cut.valid, f"payload problems: {cut.problems}")
    expect(len(cut.json["alerts"]) == 2 and cut.json["truncatedAlerts"] == 3,
           f"max_alerts 2 of 5: {len(cut.json['alerts'])} alerts, "
           f"truncatedAlerts {cut.json['truncatedAlerts']}")
    expect(cut.json["alerts"] == d["alerts"][:2], "the first alerts are kept")
    basic = wait_until(lambda: mock.accepted("/webhook/basic"), 20, "basic auth")[0]
    expect(basic.headers.get("Authorization") == "Basic dXNoZXI6czNjcmV0",
           f"http_config basic_auth: {basic.headers.get('Authorization')}")
    bearer = wait_until(lambda: mock.accepted("/webhook/bearer"), 20, "bearer")[0]
    expect(bearer.headers.get("Authorization") == "Bearer tok-123",
           f"http_config authorization: {bearer.headers.get('Authorization')}")


def check_retries_with_backoff(h, ctx):
    mock = ctx["mock"]
    mock.fail("/webhook/flaky", [("status", 503, {}, b"down"), ("drop",), ("slow", 3)])
    send(ctx, "ApiDown", to="flaky")
    wait_until(lambda: mock.accepted("/webhook/flaky"), 40, "the delivery after three failures")
    wait_until(lambda: queued(ctx["u"]) == 0, 10, "the queue to empty")
    reqs = mock.requests("/webhook/flaky")
    expect(len(reqs) == 4, f"4 attempts (503, drop, slow, ok), got {len(reqs)}: {reqs}")
    # the slow answer came after the 1 s timeout: usher had given up on it
    expect([r.status for r in reqs] == [503, None, 200, 200],
           f"answers: {[r.status for r in reqs]}")
    gaps = [b.at - a.at for a, b in zip(reqs, reqs[1:])]
    # usherd's backoff: 1 s doubling with ±20% jitter: 0.8+, 1.6+, then the
    # 3 s slow answer cut at 1 s, + 3.2+
    expect(gaps[0] >= 0.7 and gaps[1] >= 1.4 and gaps[2] >= 3.0,
           f"backoff between attempts does not grow: {[round(g, 2) for g in gaps]}")
    expect(gaps[1] > gaps[0] and gaps[2] > gaps[1], f"gaps {gaps}")
    m = ctx["u"].metrics()
    expect(m.value("usher_notifications_total", receiver="flaky", integration="webhook",
                   outcome="retried") == 3, "3 retried attempts counted")
    expect(m.value("usher_notifications_total", receiver="flaky", integration="webhook",
                   outcome="sent") == 1, "1 sent counted")
    expect(m.value("usher_notification_latency_seconds_count", receiver="flaky",
                   integration="webhook") == 1, "latency observed once")


def check_refusal_logged_once(h, ctx):
    mock, u = ctx["mock"], ctx["u"]
    mock.fail("/webhook/refused", [("status", 400, {}, b"bad request: field x")])
    send(ctx, "Refused", to="refused")
    wait_until(lambda: metric(ctx, "usher_notifications_total", receiver="refused",
                              integration="webhook", outcome="failed") == 1, 20,
               "failed counted")
    expect(len(mock.requests("/webhook/refused")) == 1, "a 400 is not retried")
    lines = [e["message"] for e in u.events() if "refused, not retried" in e["message"] and
             "refused/webhook" in e["message"]]
    expect(len(lines) == 1, f"one log line for the refusal, got {lines}")
    expect("answered 400: bad request: field x" in lines[0], f"the log says why: {lines[0]}")


def check_slack_rate_and_retry_after(h, ctx):
    mock = ctx["mock"]
    mock.fail("/slack/T1", [("status", 429, {"Retry-After": "2"}, b"rate_limited")])
    post_alerts(ctx["u"], [a for i in range(4)
                           for a in postable(f"Slack{i}", extra_labels={"to": "chat"})])
    wait_until(lambda: len(mock.accepted("/slack/T1")) == 4, 40, "4 Slack messages")
    reqs = mock.requests("/slack/T1")
    expect(len(reqs) == 5, f"one 429 and 4 messages: {reqs}")
    expect(reqs[0].status == 429, "the first is rate limited")
    expect(reqs[1].at - reqs[0].at >= 1.9, f"Retry-After 2 honoured: waited "
           f"{reqs[1].at - reqs[0].at:.2f}s")
    for a, b in zip(reqs[1:], reqs[2:]):
        expect(b.at - a.at >= 0.9, f"at most one message a second: {b.at - a.at:.2f}s apart")
    common = {"instance": "api-0:8080", "service": "booking", "severity": "critical",
              "to": "chat"}
    for r in reqs[1:]:
        expect(r.valid, f"Slack payload problems: {r.problems}")
        att = r.json["attachments"][0]
        expect(r.json["channel"] == "#oncall" and r.json["username"] == "usher", r.json)
        expect(att["color"] == "danger" and att["title"].startswith("[FIRING:1] Slack"), att)
        expect(att["title_link"] == "http://usher.example:9469/#/alerts?receiver=chat", att)
        expect(att["mrkdwn_in"] == ["fallback", "pretext", "text"], att)
    titles = sorted(r.json["attachments"][0]["title"] for r in reqs[1:])
    expect(titles == sorted(subject("firing", f"Slack{i}", 1, common) for i in range(4)),
           f"each group once: {titles}")
    # send_resolved: true on this entry: the resolved notice goes, green
    send(ctx, "Slack0", to="chat", status="resolved")
    r = wait_until(lambda: [x for x in mock.accepted("/slack/T1")
                            if x.json["attachments"][0]["color"] == "good"], 20,
                   "the resolved message")[0]
    expect(r.json["attachments"][0]["title"].startswith("[RESOLVED] Slack0"), r.json)


def check_slack_blocks_and_send_resolved(h, ctx):
    mock = ctx["mock"]
    send(ctx, "Blocks", to="blocks", n=2)
    r = wait_until(lambda: mock.accepted("/slack/T2"), 20, "the blocks message")[0]
    expect(r.valid, f"Slack payload problems: {r.problems}")
    blocks = r.json["blocks"]
    expect(blocks[0] == {"type": "header", "text": {
        "type": "plain_text", "text": "[FIRING:2] Blocks (booking critical blocks)"}},
           f"header block: {blocks[0]}")
    expect(blocks[1]["type"] == "section" and "*api-1:8080*: instance 1 is failing" in
           blocks[1]["text"]["text"], f"section block: {blocks[1]}")
    # send_resolved defaults to false for Slack: a resolved group sends nothing
    send(ctx, "Blocks", to="blocks", status="resolved", n=2)
    wait_until(lambda: not [a for a in ctx["u"].get("/api/v2/alerts").json()
                            if a["labels"]["alertname"] == "Blocks"
                            and a["status"]["state"] == "active"], 20,
               "the Blocks alerts to resolve")
    time.sleep(1.2)  # more than a group_interval: the resolved flush has happened
    wait_until(lambda: queued(ctx["u"]) == 0, 20, "the queue to empty")
    expect(len(mock.requests("/slack/T2")) == 1, "no resolved message with send_resolved false")


def check_pagerduty(h, ctx):
    mock = ctx["mock"]
    mock.fail("/pagerduty", [("status", 502, {}, b"bad gateway")])
    send(ctx, "PaymentsDown", to="pager", extra_labels={"severity": "page"})
    dedup = hashlib.sha256(group_key("pager", "PaymentsDown").encode()).hexdigest()
    wait_until(lambda: len(mock.accepted("/pagerduty")) == 1, 30, "the trigger")
    send(ctx, "PaymentsDown", to="pager", status="resolved", extra_labels={"severity": "page"})
    wait_until(lambda: len(mock.accepted("/pagerduty")) == 2, 30, "trigger and resolve")
    reqs = mock.requests("/pagerduty")
    expect([r.status for r in reqs] == [502, 202, 202], f"502 retried: {reqs}")
    trig, reso = mock.accepted("/pagerduty")
    for r in (trig, reso):
        expect(r.valid, f"PagerDuty payload problems: {r.problems}")
        expect(r.json["dedup_key"] == dedup, "dedup_key is sha256 of the group key "
               f"(as Alertmanager's): {r.json['dedup_key']} != {dedup}")
        expect(r.json["routing_key"] == PD_KEY, "routing key")
    expect(trig.json["event_action"] == "trigger" and reso.json["event_action"] == "resolve",
           "trigger, then resolve, in order")
    p = trig.json["payload"]
    expect(p["severity"] == "critical", f"severity page maps to critical: {p['severity']}")
    expect(p["summary"] == "[FIRING:1] PaymentsDown (api-0:8080 booking page pager)",
           p["summary"])
    expect(p["source"] == "usher" and p["component"] == "booking", p)
    expect(trig.json["client"] == "usher" and
           trig.json["client_url"] == "http://usher.example:9469/#/alerts?receiver=pager",
           trig.json)
    d = p["custom_details"]
    expect(d["num_firing"] == "1" and d["num_resolved"] == "0" and
           d["runbook"] == "https://runbooks.example/PaymentsDown" and
           "instance = api-0:8080" in d["firing"], f"custom_details: {d}")


def check_pagerduty_size_and_severity(h, ctx):
    mock = ctx["mock"]
    before = len(mock.accepted("/pagerduty"))
    # 170 alerts of 3.5 KB: under usherd's 1 MiB request body, over 512 KB
    # once PagerDuty's custom details list them
    big = postable("Huge", n=170, extra_labels={"severity": "warning", "to": "pager"},
                   annotations={"summary": "huge", "description": "x" * 3500})
    post_alerts(ctx["u"], big)
    r = wait_until(lambda: mock.accepted("/pagerduty")[before:], 30, "the big event")[0]
    expect(r.valid, f"PagerDuty payload problems: {r.problems}")
    expect(len(r.raw) < 512 * 1024, f"event of {len(r.raw)} bytes")
    expect("error" in r.json["payload"]["custom_details"] and
           "512KB" in r.json["payload"]["custom_details"]["error"],
           "custom details replaced by a note")
    expect(r.json["payload"]["severity"] == "warning", "warning stays warning")


def check_opsgenie(h, ctx):
    mock = ctx["mock"]
    name = "Checkout" + "Slow" * 40  # a message longer than 130 characters
    alias = hashlib.sha256(group_key("genie", name).encode()).hexdigest()
    send(ctx, name, to="genie")
    wait_until(lambda: len(mock.accepted("/opsgenie")) == 1, 30, "create")
    send(ctx, name, to="genie", status="resolved")
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
    expect(c["source"] == "http://usher.example:9469/#/alerts?receiver=genie", c["source"])
    expect("Alerts Firing:" in c["description"], c["description"])
    expect(close.path == f"/opsgenie/v2/alerts/{alias}/close?identifierType=alias", close.path)


if __name__ == "__main__":
    main("receiver_http", setup, [
        check_webhook_as_is, check_retries_with_backoff, check_refusal_logged_once,
        check_slack_rate_and_retry_after, check_slack_blocks_and_send_resolved,
        check_pagerduty, check_pagerduty_size_and_severity, check_opsgenie,
    ])
