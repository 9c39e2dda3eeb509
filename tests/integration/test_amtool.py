"""amtool (Debian's, from prometheus-alertmanager) against usherd's API v2:
it lists alerts, adds, queries and expires silences; usher's own CLI does
the same with --json. usherd restarted on the same state dir keeps its
silences and its notification log: an alert group notified before the
restart is not notified again (repeat_interval 1h), while a new group is."""

import json
import signal
from datetime import datetime, timedelta, timezone

from alerting_peers import WebhookReceiver, indent
from harness import (TestFailure, expect, http, main, run, start_usherd, tool, usher_binary,
                     wait_until)

ALERTING = """\
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{{url: '{url}'}}]
"""


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def amtool(ctx, *args):
    r = run([tool("amtool"), f"--alertmanager.url={ctx['u'].url}", *args])
    if r.returncode != 0:
        raise TestFailure(f"amtool {' '.join(args)}: exit {r.returncode}: {r.stderr.decode()}")
    return r.stdout.decode()


def usher(ctx, *args, ok=True):
    r = run([usher_binary("USHER", "usher"), *args, "--url", ctx["u"].url])
    if ok and r.returncode != 0:
        raise TestFailure(f"usher {' '.join(args)}: exit {r.returncode}: {r.stderr.decode()}")
    return r


def post(ctx, alerts):
    r = http(f"{ctx['u'].url}/api/v2/alerts", method="POST", data=alerts)
    expect(r.status == 200, f"POST /api/v2/alerts: {r.status} {r.text}")


def start(h, ctx):
    ctx["u"] = start_usherd(h, "alerting:\n" + indent(ALERTING.format(url=ctx["hook"].url("/n")), 2),
                            name="usherd", state_dir=ctx["state"], log_format="text")


def setup(h):
    ctx = {"hook": WebhookReceiver(h), "state": h.path("state"),
           "far": iso(datetime.now(timezone.utc) + timedelta(hours=2))}
    ctx["state"].mkdir()
    start(h, ctx)
    post(ctx, [{"labels": {"alertname": "CheckoutDown", "service": "checkout"},
                "annotations": {"summary": "checkout is down"}, "endsAt": ctx["far"]},
               {"labels": {"alertname": "SeatSyncStalled", "service": "inventory"},
                "endsAt": ctx["far"]}])
    # both groups notified before any silence is added
    wait_until(lambda: len(ctx["hook"].received()) >= 2 or None, 20,
               "the two groups' first notifications")
    return ctx


def check_amtool_lists_alerts(h, ctx):
    out = json.loads(amtool(ctx, "alert", "query", "-o", "json"))
    names = sorted(a["labels"]["alertname"] for a in out)
    expect(names == ["CheckoutDown", "SeatSyncStalled"], f"amtool alert query: {names}")
    out = json.loads(amtool(ctx, "alert", "query", "-o", "json", "alertname=CheckoutDown"))
    expect(len(out) == 1 and out[0]["annotations"]["summary"] == "checkout is down",
           f"amtool alert query alertname=CheckoutDown: {out}")
    text = usher(ctx, "alerts").stdout.decode()
    expect("CheckoutDown" in text and "active" in text, f"usher alerts:\n{text}")


def check_amtool_silences(h, ctx):
    sid = amtool(ctx, "silence", "add", "alertname=SeatSyncStalled", "-c", "sync rework",
                 "-d", "1h", "-a", "ops").strip()
    expect(len(sid) == 36, f"amtool silence add printed {sid!r}")
    q = json.loads(amtool(ctx, "silence", "query", "-o", "json"))
    expect([s["id"] for s in q] == [sid], f"amtool silence query: {q}")
    expect(q[0]["createdBy"] == "ops" and q[0]["status"]["state"] == "active", f"{q[0]}")
    # the alert is now suppressed, and amtool sees it so
    def suppressed():
        out = json.loads(amtool(ctx, "alert", "query", "-o", "json", "-s",
                                "alertname=SeatSyncStalled"))
        return out and out[0]["status"]["state"] == "suppressed" and \
            out[0]["status"]["silencedBy"] == [sid]
    wait_until(suppressed, 10, "SeatSyncStalled suppressed by the silence")
    amtool(ctx, "silence", "expire", sid)
    q = json.loads(amtool(ctx, "silence", "query", "-o", "json", "--expired"))
    expect(q and q[0]["status"]["state"] == "expired", f"after expire: {q}")
    r = run([tool("amtool"), f"--alertmanager.url={ctx['u'].url}", "silence", "expire", sid])
    expect(r.returncode != 0, "expiring an expired silence succeeded")


def check_amtool_config_routes(h, ctx):
    """amtool reads the routing tree from /api/v2/status (config.original)."""
    out = amtool(ctx, "config", "routes", "test", "alertname=Anything").strip()
    expect(out == "hook", f"amtool config routes test: {out!r}")
    out = amtool(ctx, "config", "routes", "show")
    expect("receiver: hook" in out, f"amtool config routes show:\n{out}")


def check_usher_silence_cli(h, ctx):
    r = usher(ctx, "silence", "add", "service=checkout", "--comment", "deploy", "--duration",
              "30m", "--author", "alice", "--json")
    sid = json.loads(r.stdout)["silenceID"]
    listed = json.loads(usher(ctx, "silence", "list", "--json").stdout)
    mine = [s for s in listed if s["id"] == sid]
    expect(mine and mine[0]["createdBy"] == "alice" and mine[0]["comment"] == "deploy",
           f"usher silence list --json: {listed}")
    expect(mine[0]["matchers"] == [{"isEqual": True, "isRegex": False, "name": "service",
                                    "value": "checkout"}], f"matchers: {mine[0]['matchers']}")
    r = usher(ctx, "silence", "add", "service=checkout", ok=False)
    expect(r.returncode == 2 and b"--comment" in r.stderr, f"add without comment: {r}")
    r = usher(ctx, "silence", "expire", "no-such-id", ok=False)
    expect(r.returncode == 1 and b"not found" in r.stderr, f"expire unknown: {r}")
    ctx["kept_silence"] = sid


def check_restart_keeps_silences_and_nflog(h, ctx):
    hook = ctx["hook"]
    expect(any(d.get("groupLabels", {}).get("alertname") == "CheckoutDown"
               for _, d, _, _ in hook.received()), "CheckoutDown not notified before the restart")
    ctx["u"].stop_checked()
    hook.clear()
    start(h, ctx)
    q = json.loads(amtool(ctx, "silence", "query", "-o", "json"))
    expect(ctx.get("kept_silence") in [s["id"] for s in q],
           f"silence {ctx.get('kept_silence')} lost in the restart: {q}")
    # out of the way, so only the notification log can keep CheckoutDown quiet
    amtool(ctx, "silence", "expire", ctx["kept_silence"])
    # the same alert again (as Prometheus resends), then a new group: when
    # the new group's notification arrives, the old group (same group_wait,
    # posted first) has flushed too and must have stayed quiet
    post(ctx, [{"labels": {"alertname": "CheckoutDown", "service": "checkout"},
                "annotations": {"summary": "checkout is down"}, "endsAt": ctx["far"]}])
    post(ctx, [{"labels": {"alertname": "Canary"}, "endsAt": ctx["far"]}])
    wait_until(lambda: any(d.get("groupLabels", {}).get("alertname") == "Canary"
                           for _, d, _, _ in hook.received()) or None,
               20, "the new group's notification after the restart")
    again = [d for _, d, _, _ in hook.received()
             if d.get("groupLabels", {}).get("alertname") == "CheckoutDown"]
    expect(not again, f"CheckoutDown notified again after the restart: {again}")


def check_reload_keeps_state(h, ctx):
    """SIGHUP with a changed alerting section: the new receiver is served,
    silences stay, and the rebuilt groups do not notify again."""
    hook = ctx["hook"]
    sid = amtool(ctx, "silence", "add", "alertname=Nothing", "-c", "kept", "-d", "1h").strip()
    text = ALERTING.format(url=hook.url("/n")) + "  - name: extra\n"
    ctx["u"].config_path.write_text("alerting:\n" + indent(text, 2))
    hook.clear()
    ctx["u"].reload()

    def reloaded():
        r = http(f"{ctx['u'].url}/api/v2/receivers")
        return sorted(x["name"] for x in r.json()) == ["extra", "hook"]

    wait_until(reloaded, 20, "the new receiver after SIGHUP")
    q = json.loads(amtool(ctx, "silence", "query", "-o", "json"))
    expect(sid in [s["id"] for s in q], f"silence {sid} lost in the reload: {q}")
    post(ctx, [{"labels": {"alertname": "Canary2"}, "endsAt": ctx["far"]}])
    wait_until(lambda: any(d.get("groupLabels", {}).get("alertname") == "Canary2"
                           for _, d, _, _ in hook.received()) or None,
               20, "the new group's notification after the reload")
    again = sorted(d["groupLabels"]["alertname"] for _, d, _, _ in hook.received())
    expect(again == ["Canary2"], f"notified after the reload: {again}")


if __name__ == "__main__":
    main("amtool", setup, [check_amtool_lists_alerts, check_amtool_silences,
                           check_amtool_config_routes,
                           check_usher_silence_cli, check_restart_keeps_silences_and_nflog,
                           check_reload_keeps_state])
