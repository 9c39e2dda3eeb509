"""usherd and a real Alertmanager (0.25, Debian) get the same alerting
config and the same alerts; both notify the same local webhook receiver.
Grouping (group_wait, group_interval, group_by, a child route with
`continue`), inhibition (equal labels, no self-inhibition), a silence and
resolution must produce the same notifications, body for body (all but
externalURL), within generous timing windows."""

import json
import time
from datetime import datetime, timedelta, timezone

from alerting_peers import WebhookReceiver, indent, notification_key, start_alertmanager
from harness import TestFailure, expect, http, main, start_usherd, wait_until

ALERTING = """\
route:
  receiver: team
  group_by: [alertname, service]
  group_wait: 2s
  group_interval: 4s
  repeat_interval: 1h
  routes:
    - matchers: ['severity="page"']
      receiver: pager
      group_wait: 1s
      continue: true
inhibit_rules:
  - source_matchers: ['alertname="CheckoutDown"']
    target_matchers: ['alertname=~"Checkout.*"']
    equal: [service]
receivers:
  - name: team
    webhook_configs: [{{url: '{hook}/{who}/team'}}]
  - name: pager
    webhook_configs: [{{url: '{hook}/{who}/pager'}}]
"""


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f000Z").replace(".000000000Z", "Z")


def post(base, alerts):
    r = http(f"{base}/api/v2/alerts", method="POST", data=alerts)
    expect(r.status == 200, f"POST {base}/api/v2/alerts: {r.status} {r.text}")


def add_silence(base, matchers, start, end):
    r = http(f"{base}/api/v2/silences", method="POST", data={
        "matchers": matchers, "startsAt": iso(start), "endsAt": iso(end),
        "createdBy": "test", "comment": "compare"})
    expect(r.status == 200, f"POST {base}/api/v2/silences: {r.status} {r.text}")
    return r.json()["silenceID"]


def setup(h):
    hook = WebhookReceiver(h)
    am = start_alertmanager(h, ALERTING.format(hook=hook.url(""), who="am"))
    u = start_usherd(h, "alerting:\n" + indent(ALERTING.format(hook=hook.url(""), who="usher"), 2),
                     log_format="text")
    return {"hook": hook, "am": am, "usher": u.url, "usherd": u}


def bodies(hook, who):
    """Notifications each implementation sent: {path suffix: [key...]}."""
    out = {}
    for path, doc, _, _ in hook.received():
        if path.startswith(f"/{who}/"):
            out.setdefault(path[len(who) + 1:], []).append(notification_key(doc))
    return out


def wait_same(hook, count, what, timeout=40):
    """Waits until both sent count notifications, then compares them."""
    def both():
        a, u = bodies(hook, "am"), bodies(hook, "usher")
        na, nu = sum(map(len, a.values())), sum(map(len, u.values()))
        if na < count or nu < count:
            raise TestFailure(f"alertmanager sent {na}, usherd {nu}, want {count}")
        return a, u

    a, u = wait_until(both, timeout, what)
    for path in sorted(set(a) | set(u)):
        sa, su = sorted(a.get(path, [])), sorted(u.get(path, []))
        if sa != su:
            raise TestFailure(f"{what}: {path}: alertmanager sent\n  " + "\n  ".join(sa) +
                              "\nusherd sent\n  " + "\n  ".join(su))
    return a


def check_timing(hook, window):
    """Each group's notification reached the receiver from both within
    window seconds of each other."""
    first = {}
    for path, doc, t, _ in hook.received():
        who, rest = path[1:].split("/", 1)
        first.setdefault((rest, doc.get("groupKey"), doc.get("status")), {}).setdefault(who, t)
    for key, times in first.items():
        if len(times) == 2:
            gap = abs(times["am"] - times["usher"])
            expect(gap <= window, f"{key}: usherd and alertmanager {gap:.1f}s apart (window "
                                  f"{window}s)")


def check_grouping_inhibition_silence_resolution(h, ctx):
    hook = ctx["hook"]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    far = now + timedelta(hours=1)

    def alert(name, service, severity, instance, ends=None):
        return {"labels": {"alertname": name, "service": service, "severity": severity,
                           "instance": instance},
                "annotations": {"summary": f"{name} on {instance}"},
                "startsAt": iso(now), "endsAt": iso(ends or far)}

    # a silence on one alert, on both sides, before the alerts arrive
    matchers = [{"name": "instance", "value": "quiet-1", "isRegex": False, "isEqual": True}]
    for base in (ctx["am"], ctx["usher"]):
        add_silence(base, matchers, now - timedelta(minutes=1), far)
    first = [
        alert("BookingErrorRateHigh", "checkout", "page", "web-1"),
        alert("BookingErrorRateHigh", "checkout", "page", "web-2"),
        alert("SeatSyncStalled", "inventory", "ticket", "sync-1"),
        alert("SeatSyncStalled", "inventory", "ticket", "quiet-1"),
        # inhibited by CheckoutDown (same service), which also matches the
        # target matchers itself but cannot inhibit itself
        alert("CheckoutDown", "payments", "ticket", "pay-1"),
        alert("CheckoutSlow", "payments", "ticket", "pay-1"),
        alert("CheckoutSlow", "search", "ticket", "s-1"),
    ]
    for base in (ctx["am"], ctx["usher"]):
        post(base, first)
    # pager: 1 group; team: BookingErrorRateHigh (continue), SeatSync,
    # CheckoutDown, CheckoutSlow/search = 5 notifications
    got = wait_same(hook, 4, "the first flush of every group")
    keys = sorted((p, json.loads(k)["groupKey"], len(json.loads(k)["alerts"]))
                  for p, v in got.items() for k in v)
    want = [("/pager", '{}/{severity="page"}:{alertname="BookingErrorRateHigh", service="checkout"}', 2),
            ("/team", '{}:{alertname="CheckoutDown", service="payments"}', 1),
            ("/team", '{}:{alertname="CheckoutSlow", service="search"}', 1),
            ("/team", '{}:{alertname="SeatSyncStalled", service="inventory"}', 1)]
    expect(keys == want, f"groups notified: {keys}, want {want}")
    check_timing(hook, 3.0)
    hook.clear()
    # one alert resolves, one joins: next group_interval, both sides
    second = [alert("SeatSyncStalled", "inventory", "ticket", "sync-1", ends=now + timedelta(seconds=1)),
              alert("CheckoutSlow", "search", "ticket", "s-2")]
    for base in (ctx["am"], ctx["usher"]):
        post(base, second)
    got = wait_same(hook, 2, "the resolution and the new alert at the next group_interval")
    statuses = sorted(json.loads(k)["status"] for v in got.values() for k in v)
    expect(statuses == ["firing", "resolved"], f"second round: {statuses}")
    check_timing(hook, 3.0)


def check_api_alerts_agree(h, ctx):
    """GET /api/v2/alerts: the same fingerprints, states and receivers."""
    def view(base):
        r = http(f"{base}/api/v2/alerts")
        expect(r.status == 200, f"GET {base}/api/v2/alerts: {r.status}")
        return sorted((a["fingerprint"], a["status"]["state"],
                       tuple(sorted(x["name"] for x in a["receivers"])),
                       len(a["status"]["silencedBy"]), len(a["status"]["inhibitedBy"]))
                      for a in r.json())

    def same():
        a, u = view(ctx["am"]), view(ctx["usher"])
        if a != u:
            raise TestFailure(f"alertmanager {a}\nusherd {u}")
        return a

    got = wait_until(same, 20, "the same alerts on both APIs")
    expect(any(s == "suppressed" for _, s, _, _, _ in got), f"no suppressed alert in {got}")


def shape(v):
    """The structure of a JSON value: keys and types, not values."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


def check_api_shapes_agree(h, ctx):
    """Every API v2 answer has Alertmanager's fields and types."""
    for path in ("/api/v2/alerts", "/api/v2/alerts/groups", "/api/v2/silences",
                 "/api/v2/status", "/api/v2/receivers"):
        a = http(ctx["am"] + path).json()
        u = http(ctx["usher"] + path).json()
        if isinstance(a, list):
            expect(a and u, f"{path}: empty lists (alertmanager {len(a)}, usherd {len(u)})")
            a, u = a[0], u[0]
        sa, su = shape(a), shape(u)
        expect(sa == su, f"{path}: alertmanager's shape\n  {sa}\nusherd's\n  {su}")


if __name__ == "__main__":
    main("alertmanager_compare", setup, [check_grouping_inhibition_silence_resolution,
                                         check_api_alerts_agree, check_api_shapes_agree])
