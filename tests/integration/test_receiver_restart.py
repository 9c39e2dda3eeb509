"""Deliveries survive restarts, through a real usherd: alerts POSTed to
/api/v2/alerts are grouped and routed to two webhooks and PagerDuty while
both answer 503; usherd is killed (SIGKILL) or stopped (SIGTERM) in the
middle of the outage and started again on the same state dir; Prometheus
keeps re-sending its firing alerts (re-POSTed here), and a resolve follows
for one group. Once the outage ends, each notification is delivered exactly
once (none lost, none duplicated: the notification log in the state store
knows what was queued before the crash), and PagerDuty's trigger comes
before its resolve. A stop cuts a slow attempt short and the attempt is
repeated after the restart; a reload that removes an integration drops its
pending deliveries with one log line."""

import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import expect, main, start_usherd, wait_until  # noqa: E402
from vendormocks import VendorMock, group_key, post_alerts, postable, queued  # noqa: E402

PD_KEY = "0123456789abcdef0123456789abcdef"

CONFIG = """\
alerting:
  external_url: http://usher.example:9469
  route:
    receiver: team
    group_by: [alertname]
    group_wait: 100ms
    group_interval: 500ms
    repeat_interval: 1h
  receivers:
    - name: team
      webhook_configs:
        - url: {url}/webhook/a{timeout}
        - url: {url}/webhook/b
      pagerduty_configs:
        - routing_key: {pd_key}
          url: {url}/pagerduty/v2/enqueue
"""

CONFIG_WITHOUT_B = """\
alerting:
  route:
    receiver: team
    group_by: [alertname]
    group_wait: 100ms
    group_interval: 500ms
    repeat_interval: 1h
  receivers:
    - name: team
      webhook_configs:
        - url: {url}/webhook/a
"""


def config(mock, timeout=""):
    return CONFIG.format(url=mock.url, pd_key=PD_KEY, timeout=timeout)


def setup(h):
    return {"mock": VendorMock(h)}


def of(reqs, name):
    return [r for r in reqs if r.json and name in r.json.get("groupKey", r.json.get(
        "dedup_key", ""))]


def run_outage(h, ctx, name, stop):
    mock = ctx["mock"]
    state = h.path(f"state-{name}")
    state.mkdir()
    mock.outage("/webhook", 503)
    mock.outage("/pagerduty", 503)
    cfg = config(mock)
    u = start_usherd(h, cfg, name=f"{name}-1", config_name=f"{name}.yml", state_dir=state)
    groups = [f"{name}{i}" for i in range(5)]
    alerts = [a for g in groups for a in postable(g)]
    post_alerts(u, alerts)
    wait_until(lambda: len({r.json["groupKey"] for r in mock.requests("/webhook/a")
                            if r.json and name in r.json["groupKey"]}) == 5,
               30, "every group to be tried during the outage")
    wait_until(lambda: queued(u) == 15, 20, "15 deliveries queued during the outage")
    stop(u)
    seen = len(mock.requests())
    u2 = start_usherd(h, cfg, name=f"{name}-2", config_name=f"{name}.yml", state_dir=state)
    # Prometheus re-sends firing alerts every evaluation: so do we, twice,
    # more than a group_interval apart; the notification log must say
    # "already queued" so nothing new is queued
    post_alerts(u2, alerts)
    time.sleep(0.6)
    post_alerts(u2, alerts)
    wait_until(lambda: queued(u2) == 15, 20, "the 15 deliveries still queued after the restart")
    # one group resolves: its resolve queues behind the trigger
    post_alerts(u2, postable(f"{name}0", status="resolved"))
    wait_until(lambda: queued(u2) == 18, 20, "the resolve of one group queued (3 integrations)")
    mock.outage("/webhook", None)
    mock.outage("/pagerduty", None)
    wait_until(lambda: queued(u2) == 0, 60, "the queue to drain after the outage")
    after = mock.requests()[seen:]
    for path in ("/webhook/a", "/webhook/b"):
        got = sorted(r.json["groupKey"] for r in after if r.path == path and r.status == 200
                     and r.json["status"] == "firing")
        want = sorted(group_key(g) for g in groups)
        expect(got == want, f"{path}: each firing notification exactly once:\n{got}\n{want}")
        res = [r for r in after if r.path == path and r.status == 200
               and r.json["status"] == "resolved"]
        expect(len(res) == 1 and res[0].json["groupKey"] == group_key(f"{name}0"),
               f"{path}: one resolved notification: {[r.json for r in res]}")
    pd = [r for r in after if r.path.startswith("/pagerduty") and r.status == 202]
    expect(len(pd) == 6, f"5 triggers and 1 resolve, got {len(pd)}")
    dedup0 = hashlib.sha256(group_key(f"{name}0").encode()).hexdigest()
    actions = [r.json["event_action"] for r in pd if r.json["dedup_key"] == dedup0]
    expect(actions == ["trigger", "resolve"], f"{name}0: trigger then resolve, got {actions}")
    # and nothing more comes later (a repeat would be a duplicate page)
    post_alerts(u2, [a for g in groups[1:] for a in postable(g)])
    time.sleep(1.2)
    extra = [r for r in mock.requests()[seen:] if r not in after]
    expect(not extra, f"notifications after the drain: {[r.json for r in extra]}")
    u2.stop_checked()


def check_sigkill_mid_outage(h, ctx):
    run_outage(h, ctx, "Killed", lambda u: u.proc.kill())


def check_clean_stop_mid_outage(h, ctx):
    run_outage(h, ctx, "Stopped", lambda u: u.stop_checked())


def check_stop_cuts_attempt_short(h, ctx):
    mock = ctx["mock"]
    state = h.path("state-slow")
    state.mkdir()
    cfg = config(mock, timeout="\n          timeout: 60s")
    mock.fail("/webhook/a", [("slow", 30)])
    u = start_usherd(h, cfg, name="slow-1", config_name="slow.yml", state_dir=state)
    post_alerts(u, postable("SlowStop"))
    key = group_key("SlowStop")
    wait_until(lambda: [r for r in mock.requests("/webhook/a")
                        if r.json and r.json["groupKey"] == key], 20,
               "the slow attempt to start")
    took = u.stop_checked()
    expect(took < 5, f"a stop waits for no vendor: took {took:.1f}s")
    u2 = start_usherd(h, cfg, name="slow-2", config_name="slow.yml", state_dir=state)
    wait_until(lambda: [r for r in mock.requests("/webhook/a")
                        if r.json and r.json["groupKey"] == key and r.status == 200], 30,
               "the cut attempt to be repeated")
    wait_until(lambda: queued(u2) == 0, 20, "the queue to empty")
    ok = [r for r in mock.requests("/webhook/a") if r.json and r.json["groupKey"] == key]
    expect(len(ok) == 2 and ok[1].status == 200, f"repeated after the restart: {ok}")
    u2.stop_checked()


def check_removed_integration_dropped(h, ctx):
    mock = ctx["mock"]
    state = h.path("state-reload")
    state.mkdir()
    mock.outage("/webhook/b", 503)
    u = start_usherd(h, config(mock), name="reload", config_name="reload.yml",
                     state_dir=state)
    post_alerts(u, postable("Removed"))
    key = group_key("Removed")
    wait_until(lambda: [r for r in mock.requests("/webhook/b")
                        if r.json and r.json["groupKey"] == key], 20, "a first attempt")
    h.write("reload.yml", CONFIG_WITHOUT_B.format(url=mock.url))
    u.reload()
    wait_until(lambda: queued(u) == 0, 30, "the orphaned delivery to be dropped")
    mock.outage("/webhook/b", None)
    lines = [e for e in u.events() if e.get("event.action") == "notification-dropped"]
    expect(len(lines) == 1 and "webhook integration #1" in lines[0]["message"],
           f"one log event for the dropped delivery: {lines}")
    expect(not [r for r in mock.accepted("/webhook/b") if r.json["groupKey"] == key],
           "a removed integration sends nothing")
    u.stop_checked()


if __name__ == "__main__":
    main("receiver_restart", setup, [
        check_sigkill_mid_outage, check_clean_stop_mid_outage, check_stop_cuts_attempt_short,
        check_removed_integration_dropped,
    ])
