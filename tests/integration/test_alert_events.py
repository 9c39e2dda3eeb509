"""The alerting path's ECS events, from a real usherd (logging.level:
debug): alerts-received once per POST batch (not per alert), notification
-retry / -sent / -failed with the receiver, integration, group key, the
vendor's HTTP status and the attempt's duration, and silence-created /
-expired with user.name = the silence's author. Every event is checked
against ECS' field definitions by tests/conformance/ecs_check."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import expect, http, main, start_usherd, wait_until  # noqa: E402
from logreceivers import ecs_check  # noqa: E402
from vendormocks import VendorMock, group_key, post_alerts, postable  # noqa: E402

CONFIG = """\
logging: {{level: debug}}
alerting:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 100ms
    group_interval: 500ms
    repeat_interval: 1h
    routes:
      - matchers: ['alertname="Refused"']
        receiver: refused
  receivers:
    - name: hook
      webhook_configs:
        - url: {url}/webhook/hook
    - name: refused
      webhook_configs:
        - url: {url}/webhook/refused
"""

ACTIONS = ("alerts-received", "notification-retry", "notification-sent", "notification-failed",
           "silence-created", "silence-expired")


def setup(h):
    mock = VendorMock(h)
    u = start_usherd(h, CONFIG.format(url=mock.url))
    return {"u": u, "mock": mock}


def events(u, action):
    return [e for e in u.events() if e.get("event.action") == action]


def check_notification_events(h, ctx):
    u, mock = ctx["u"], ctx["mock"]
    mock.fail("/webhook/hook", [("status", 503, {}, b"down")])
    mock.fail("/webhook/refused", [("status", 400, {}, b"bad field")])
    post_alerts(u, postable("SeatsLow", n=3) + postable("Refused"))
    wait_until(lambda: events(u, "notification-sent") and events(u, "notification-failed"),
               30, "a sent and a failed notification")
    rec = events(u, "alerts-received")
    expect(len(rec) == 1, f"one alerts-received per POST batch, not per alert: {rec}")
    expect(rec[0]["log.level"] == "debug" and rec[0]["usher.alerts.valid"] == 4 and
           rec[0]["usher.alerts.source"] == "api" and rec[0]["event.outcome"] == "success",
           f"alerts-received: {rec[0]}")
    retry = events(u, "notification-retry")
    expect(retry and retry[0]["http.response.status_code"] == 503 and
           retry[0]["usher.receiver"] == "hook" and retry[0]["event.outcome"] == "failure" and
           retry[0]["usher.group_key"] == group_key("SeatsLow"), f"retry: {retry}")
    sent = events(u, "notification-sent")[0]
    expect(sent["usher.receiver"] == "hook" and sent["usher.integration"] == "webhook" and
           sent["usher.group_key"] == group_key("SeatsLow") and
           sent["http.response.status_code"] == 200 and sent["event.outcome"] == "success" and
           isinstance(sent["event.duration"], int) and sent["event.duration"] > 0 and
           sent["usher.attempts"] == 2, f"sent: {sent}")
    failed = events(u, "notification-failed")[0]
    expect(failed["usher.receiver"] == "refused" and failed["http.response.status_code"] == 400
           and failed["event.outcome"] == "failure" and "bad field" in failed["error.message"]
           and failed["log.level"] == "error", f"failed: {failed}")


def check_silence_events(h, ctx):
    u = ctx["u"]
    body = {"matchers": [{"name": "alertname", "value": "SeatsLow", "isRegex": False}],
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "ana@booking.example", "comment": "maintenance of hall a"}
    r = http(u.url + "/api/v2/silences", method="POST", data=json.dumps(body).encode(),
             headers={"Content-Type": "application/json"})
    expect(r.status == 200, f"POST silence: {r.status} {r.text}")
    sid = r.json()["silenceID"]
    r = http(u.url + f"/api/v2/silence/{sid}", method="DELETE")
    expect(r.status == 200, f"DELETE silence: {r.status} {r.text}")
    created = wait_until(lambda: events(u, "silence-created"), 10, "silence-created")[0]
    expired = wait_until(lambda: events(u, "silence-expired"), 10, "silence-expired")[0]
    for ev, typ in ((created, "creation"), (expired, "deletion")):
        expect(ev["user.name"] == "ana@booking.example" and ev["usher.silence.id"] == sid and
               ev["event.category"] == ["configuration"] and ev["event.type"] == [typ],
               f"silence event: {ev}")
    expect(expired["event.reason"] == "expired through the API", f"reason: {expired}")
    # one that ends on its own: logged once its endsAt passes
    now = time.time()
    body.update(startsAt=stamp(now - 1), endsAt=stamp(now + 2), createdBy="bo@booking.example")
    r = http(u.url + "/api/v2/silences", method="POST", data=json.dumps(body).encode(),
             headers={"Content-Type": "application/json"})
    expect(r.status == 200, f"POST silence: {r.status} {r.text}")
    sid2 = r.json()["silenceID"]
    ev = wait_until(lambda: [e for e in events(u, "silence-expired")
                             if e["usher.silence.id"] == sid2], 15, "the silence to end")
    expect(len(ev) == 1 and ev[0]["event.reason"] == "endsAt reached" and
           ev[0]["user.name"] == "bo@booking.example", f"ended silence: {ev}")
    time.sleep(1.5)  # the watcher looks every second: it must not log it again
    expect(len([e for e in events(u, "silence-expired") if e["usher.silence.id"] == sid2]) == 1,
           "an ended silence is logged once")
    expect(len([e for e in events(u, "silence-expired") if e["usher.silence.id"] == sid]) == 1,
           "a silence expired through the API is logged once")


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def check_ecs_conformance(h, ctx):
    evs = [e for e in ctx["u"].events() if e.get("event.action") in ACTIONS]
    ecs_check(h, evs, require_actions=ACTIONS)


if __name__ == "__main__":
    main("alert_events", setup, [check_notification_events, check_silence_events,
                                 check_ecs_conformance])
