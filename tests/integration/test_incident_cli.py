"""usher incident list/show/ack/note/resolve/report against a running usherd:
human output and --json, the exit codes, the HTTP API's answers (authors,
errors), the incident metrics, and incidents that usherd finds in its state
store after a restart. Incidents are written into the state store the way
usherd's own incident store writes them (the alert pipeline is tested with
the pipeline)."""

import json
import sqlite3
import time

from harness import (TestFailure, expect, http, main, run, start_usherd, usher_binary,
                     wait_until)

CONFIG = "global: {external_labels: {site: test}}\nprobes: []\n"
GROUP = '{}:{alertname="CheckoutDown"}'


def usher(ctx, *args, url=None):
    r = run([usher_binary("USHER", "usher"), "incident", *map(str, args),
             "--url", url or ctx["u"].url], timeout=30)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def ok(ctx, *args):
    rc, out, err = usher(ctx, *args)
    expect(rc == 0, f"usher incident {' '.join(map(str, args))}: exit {rc}: {err}{out}")
    return out


def seed(db_path):
    """Two incidents as usherd records them: a critical one open since a
    minute ago with two alerts, and an old resolved warning."""
    now = int(time.time() * 1000)
    con = sqlite3.connect(db_path, timeout=10)
    labels = {"alertname": "CheckoutDown", "severity": "critical", "service": "checkout"}
    with con:
        cur = con.execute(
            "INSERT INTO usher_incidents (group_key, group_hash, receiver, title, severity, "
            "service, status, labels, opened_at, updated_at) VALUES (?, ?, 'oncall', ?, "
            "'critical', 'checkout', 'open', ?, ?, ?)",
            (GROUP, "ab" * 32, "CheckoutDown: checkout returns 5xx",
             json.dumps({"alertname": "CheckoutDown"}), now - 60000, now - 60000))
        first = cur.lastrowid
        for i, inst in enumerate(("api-1", "api-2")):
            con.execute(
                "INSERT INTO usher_incident_alerts VALUES (?, ?, 'firing', ?, ?, ?, "
                "'0001-01-01T00:00:00Z')",
                (first, f"{i + 1:016x}", json.dumps({**labels, "instance": inst}),
                 json.dumps({"summary": "checkout returns 5xx"}), "2026-11-28T06:00:00Z"))
        con.execute("INSERT INTO usher_incident_events (incident_id, at, kind, author, text) "
                    "VALUES (?, ?, 'fired', 'usherd', 'CheckoutDown{instance=\"api-1\"}')",
                    (first, now - 60000))
        con.execute("INSERT INTO usher_incident_events (incident_id, at, kind, author, text) "
                    "VALUES (?, ?, 'notification', 'usherd', 'oncall/pagerduty: delivered')",
                    (first, now - 59000))
        cur = con.execute(
            "INSERT INTO usher_incidents (group_key, group_hash, receiver, title, severity, "
            "service, status, labels, opened_at, resolved_at, resolved_by, updated_at) "
            "VALUES ('{}:{alertname=\"DiskFull\"}', ?, 'oncall', 'DiskFull', 'warning', 'db', "
            "'resolved', '{}', ?, ?, 'usherd', ?)",
            ("cd" * 32, now - 7200000, now - 3600000, now - 3600000))
        second = cur.lastrowid
    con.close()
    return first, second


def setup(h):
    u = start_usherd(h, CONFIG)
    db = h.path("usherd-state", "usher.db")
    expect(db.exists(), f"usherd made no state store at {db}")
    rc, out, err = usher({"u": u}, "list")
    expect(rc == 0 and "no incidents" in out, f"list before any incident: {rc} {out!r} {err!r}")
    first, second = seed(db)
    return {"u": u, "h": h, "db": db, "first": first, "second": second}


def check_list(h, ctx):
    out = ok(ctx, "list")
    lines = out.splitlines()
    expect(lines[0].split()[:4] == ["ID", "STATUS", "SEVERITY", "OPENED"], f"header: {out}")
    expect(len(lines) == 3, f"two incidents expected:\n{out}")
    expect(lines[1].split()[0] == str(ctx["second"]), f"newest first:\n{out}")
    data = json.loads(ok(ctx, "list", "--json"))
    expect([i["id"] for i in data] == [ctx["second"], ctx["first"]], f"--json: {data}")
    data = json.loads(ok(ctx, "list", "--status", "resolved", "--json"))
    expect([i["id"] for i in data] == [ctx["second"]], f"--status resolved: {data}")
    expect(data[0]["resolvedBy"] == "usherd" and data[0]["severity"] == "warning", data)
    rc, out, err = usher(ctx, "list", "--status", "closed")
    expect(rc == 2 and "open, acknowledged or resolved" in err, f"bad status: {rc} {err!r}")
    r = http(ctx["u"].url + "/api/v1/incidents?status=closed")
    expect(r.status == 400 and "unknown status" in r.json()["error"], f"API: {r.status} {r.text}")


def check_show(h, ctx):
    out = ok(ctx, "show", ctx["first"])
    for want in ("CheckoutDown: checkout returns 5xx", "status:       open",
                 "severity:     critical", 'instance="api-2"', "oncall/pagerduty: delivered"):
        expect(want in out, f"show lacks {want!r}:\n{out}")
    data = json.loads(ok(ctx, "show", ctx["first"], "--json"))
    expect(data["groupKey"] == GROUP and len(data["alerts"]) == 2, data)
    expect([e["kind"] for e in data["timeline"]] == ["fired", "notification"], data["timeline"])
    rc, out, err = usher(ctx, "show", 999)
    expect(rc == 1 and "not found" in err, f"show 999: {rc} {err!r}")
    rc, out, err = usher(ctx, "show", "abc")
    expect(rc == 2, f"show abc: exit {rc}")


def metrics_value(ctx, name, **labels):
    return ctx["u"].metrics().value(name, **labels)


def check_ack_note_resolve(h, ctx):
    i = ctx["first"]
    expect(metrics_value(ctx, "usher_incidents_open", severity="critical") == 1,
           "usher_incidents_open{severity=critical} is not 1")
    out = ok(ctx, "ack", i, "--author", "alice")
    expect(f"incident {i} acknowledged by alice" in out, out)
    rc, out, err = usher(ctx, "ack", i, "--author", "bob")
    expect(rc == 1 and "acknowledged, not open" in err, f"second ack: {rc} {err!r}")
    data = json.loads(ok(ctx, "note", i, "rolled back deploy 42 | all good", "--author",
                         "alice", "--json"))
    expect(data["timeline"][-1] == {**data["timeline"][-1], "kind": "note", "author": "alice",
                                    "text": "rolled back deploy 42 | all good"},
           f"note: {data['timeline'][-1]}")
    # the API wants an author
    r = http(f"{ctx['u'].url}/api/v1/incidents/{i}/note", method="POST",
             data={"text": "anonymous"})
    expect(r.status == 400 and "author is required" in r.json()["error"], f"{r.status} {r.text}")
    r = http(f"{ctx['u'].url}/api/v1/incidents/{i}/frobnicate", method="POST",
             data={"author": "x"})
    expect(r.status == 404, f"unknown action: {r.status}")
    data = json.loads(ok(ctx, "resolve", i, "--author", "carol", "--json"))
    expect(data["status"] == "resolved" and data["resolvedBy"] == "carol", data)
    expect(data["acknowledgedBy"] == "alice", data)
    rc, out, err = usher(ctx, "resolve", i, "--author", "carol")
    expect(rc == 1 and "already resolved" in err, f"second resolve: {rc} {err!r}")
    m = ctx["u"].metrics()
    expect(m.value("usher_incidents_open", severity="critical") == 0,
           "a resolved incident still counts as open")
    expect(m.value("usher_incidents_open", severity="warning") == 0,
           "no zero for a severity seen only in resolved incidents")
    ack = m.value("usher_incident_time_to_ack_seconds_count")
    res = m.value("usher_incident_time_to_resolve_seconds_count")
    expect(ack == 1 and res == 1, f"MTTA/MTTR counts {ack} {res}")
    # opened a minute before the ack
    expect(m.value("usher_incident_time_to_ack_seconds_sum") >= 59, "MTTA sum below a minute")
    expect(m.value("usher_incident_time_to_ack_seconds_bucket", le="30") == 0 and
           m.value("usher_incident_time_to_ack_seconds_bucket", le="120") == 1,
           "the ack does not fall in the 60-120 s buckets")


def check_report(h, ctx):
    i = ctx["first"]
    out = ok(ctx, "report", i)
    for want in (f"# Postmortem (draft): incident {i} — CheckoutDown", "## Impact window",
                 "From 2026-11-28T06:00:00.000Z", "## Timeline (UTC)", "## Alerts (2)",
                 "## Notifications (1)", "oncall/pagerduty: delivered",
                 "## Acknowledgements and notes", "by alice", "rolled back deploy 42 \\| all good",
                 "## Action items"):
        expect(want in out, f"report lacks {want!r}:\n{out}")
    data = json.loads(ok(ctx, "report", i, "--json"))
    expect(data["id"] == i and data["markdown"].startswith("# Postmortem"), data)
    path = h.path("pm.md")
    ok(ctx, "report", i, "-o", path)
    expect(path.read_text().startswith("# Postmortem (draft)"), "report -o wrote nothing")
    r = http(f"{ctx['u'].url}/api/v1/incidents/{i}/report")
    expect(r.status == 200 and r.headers["Content-Type"].startswith("text/markdown") and
           "## Impact window" in r.text, f"GET report: {r.status} {r.text[:200]}")


def check_unreachable(h, ctx):
    rc, out, err = usher(ctx, "list", url="http://127.0.0.1:1")
    expect(rc == 1 and "cannot reach usherd" in err, f"unreachable: {rc} {err!r}")
    rc, out, err = usher(ctx, "frob")
    expect(rc == 2 and "unknown command" in err, f"frob: {rc} {err!r}")
    r = run([usher_binary("USHER", "usher"), "incident", "list", "--config",
             h.path("missing.yml")])
    expect(r.returncode == 2 and b"cannot find usherd's address" in r.stderr,
           f"--config missing.yml: {r.returncode} {r.stderr!r}")
    r = run([usher_binary("USHER", "usher"), "incident", "--help"])
    expect(r.returncode == 0 and b"usher incident COMMAND" in r.stdout, "incident --help")


def check_restart_keeps_incidents(h, ctx):
    ctx["u"].stop_checked()
    u = start_usherd(h, CONFIG, name="usherd2", state_dir=h.path("usherd-state"))
    ctx2 = {**ctx, "u": u}
    data = json.loads(ok(ctx2, "show", ctx["first"], "--json"))
    expect(data["status"] == "resolved" and data["resolvedBy"] == "carol",
           f"after restart: {data}")
    expect(json.loads(ok(ctx2, "list", "--json"))[0]["id"] == ctx["second"], "list after restart")


if __name__ == "__main__":
    main("incident_cli", setup, [check_list, check_show, check_ack_note_resolve, check_report,
                                 check_unreachable, check_restart_keeps_incidents])
