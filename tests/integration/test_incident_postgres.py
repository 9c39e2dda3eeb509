"""Two usherd side by side sharing one PostgreSQL incident store (the
`incidents.store: postgres` deployment): both get the same alerts at the
same moment, and each alert group has exactly one incident; an ack made
through one usherd is what the other shows; both report the same
usher_incidents_open; and a usherd started while the database is down
still starts, recording incidents once the database is back."""

import json
import threading
from datetime import datetime, timedelta, timezone

from harness import expect, http, main, run, start_usherd, usher_binary, wait_until
from pgserver import PgServer

GROUPS = 12

CONFIG = """\
global: {{external_labels: {{site: test}}}}
alerting:
  route:
    receiver: nobody
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
  receivers:
    - name: nobody
incidents:
  store: postgres
  dsn: "{dsn}"
"""


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alerts(names):
    start = iso(datetime.now(timezone.utc) - timedelta(minutes=1))
    return [{"labels": {"alertname": n, "severity": "critical", "service": "booking"},
             "annotations": {"summary": f"{n} down"}, "startsAt": start} for n in names]


def post(u, body):
    # usherd logs "listening" before alerting has registered API v2: a 404
    # right after the start is retried
    def once():
        r = http(f"{u.url}/api/v2/alerts", method="POST", data=body)
        expect(r.status in (200, 404), f"POST /api/v2/alerts: {r.status} {r.text}")
        return r.status == 200

    wait_until(once, 30, "POST /api/v2/alerts to be accepted")


def post_both(ctx, body):
    """The same alerts to both usherd at the same moment."""
    go = threading.Barrier(2)
    errors = []

    def one(u):
        go.wait()
        try:
            post(u, body)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(u,)) for u in (ctx["a"], ctx["b"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expect(not errors, f"posting: {errors}")


def listing(u):
    r = run([usher_binary("USHER", "usher"), "incident", "list", "--json", "--url", u.url])
    expect(r.returncode == 0, f"usher incident list: {r.stderr.decode(errors='replace')}")
    return json.loads(r.stdout)


def setup(h):
    pg = PgServer(h).start()
    pg.create_login("usher", "pw-incidents", db="usher")
    dsn = pg.dsn("usher", "pw-incidents", db="usher")
    a = start_usherd(h, CONFIG.format(dsn=dsn), name="usherd-a")
    b = start_usherd(h, CONFIG.format(dsn=dsn), name="usherd-b")
    return {"pg": pg, "dsn": dsn, "a": a, "b": b}


def check_one_incident_per_group(h, ctx):
    names = [f"Race{i}" for i in range(GROUPS)]
    post_both(ctx, alerts(names))

    def all_there():
        got = listing(ctx["a"])
        return got if len({i["groupKey"] for i in got}) == GROUPS else None

    got = wait_until(all_there, 30, f"{GROUPS} incidents")
    keys = [i["groupKey"] for i in got]
    expect(len(keys) == GROUPS, f"{len(keys)} incidents for {GROUPS} groups: {sorted(keys)}")
    # both flushed every group: a second flush found the incident
    wait_until(lambda: sorted(json.dumps(i, sort_keys=True) for i in listing(ctx["b"])) ==
               sorted(json.dumps(i, sort_keys=True) for i in listing(ctx["a"])), 30,
               "both usherd to list the same incidents")
    row = ctx["pg"].sql("SELECT count(*), count(DISTINCT group_key) FROM usher_incidents",
                        db="usher")
    expect(row == f"{GROUPS}|{GROUPS}", f"the database holds {row} (incidents|groups)")
    ctx["first"] = got[-1]["id"]


def check_ack_seen_by_both(h, ctx):
    r = run([usher_binary("USHER", "usher"), "incident", "ack", str(ctx["first"]), "--author",
             "alice", "--url", ctx["a"].url])
    expect(r.returncode == 0, r.stderr.decode(errors="replace"))
    r = http(f"{ctx['b'].url}/api/v1/incidents/{ctx['first']}")
    expect(r.json()["status"] == "acknowledged" and r.json()["acknowledgedBy"] == "alice",
           f"usherd-b sees {r.json()['status']}")
    r = http(f"{ctx['b'].url}/api/v1/incidents/{ctx['first']}/ack", method="POST",
             data={"author": "bob"})
    expect(r.status == 409, f"a second ack through usherd-b: {r.status} {r.text}")
    for u in (ctx["a"], ctx["b"]):
        v = u.metrics().value("usher_incidents_open", severity="critical")
        expect(v == GROUPS, f"{u.proc.name}: usher_incidents_open{{severity=critical}} {v}")


def check_database_down_at_start(h, ctx):
    ctx["pg"].shutdown()
    c = start_usherd(h, CONFIG.format(dsn=ctx["dsn"]), name="usherd-c")
    r = http(f"{c.url}/api/v1/incidents")
    expect(r.status == 503 and "cannot connect" in r.json()["error"],
           f"GET incidents with the database down: {r.status} {r.text}")
    ctx["pg"].start()
    post(c, alerts(["AfterOutage"]))

    def recorded():
        return any("AfterOutage" in i["groupKey"] for i in listing(c))

    wait_until(recorded, 30, "the incident recorded once the database is back")
    c.stop_checked()


if __name__ == "__main__":
    main("incident_postgres", setup, [check_one_incident_per_group, check_ack_seen_by_both,
                                      check_database_down_at_start])
