"""Incidents and tickets through usherd's whole alerting pipeline: alerts
POSTed to /api/v2/alerts (as Prometheus sends them) are grouped and routed;
a critical group opens an incident and a Jira issue and a GitHub issue
(ticketmocks.py checks their payloads), a warning group on a route with
`incident: false` gets tickets but no incident; resolving the alerts
resolves the incident and the tickets, firing again reopens all of them,
a restarted usherd keeps one incident and one ticket per group, and the
operator's ack, note and resolution (incidents.tickets) reach the tickets
as comments, the resolution resolving them."""

import hashlib
import json
from datetime import datetime, timedelta, timezone

from harness import expect, http, main, run, start_usherd, usher_binary, wait_until
from ticketmocks import TicketMocks

CONFIG = """\
global: {{external_labels: {{site: test}}}}
alerting:
  route:
    receiver: tickets
    group_by: [alertname]
    group_wait: 1s
    group_interval: 1s
    repeat_interval: 1h
    routes:
      - matchers: ['team="quiet"']
        receiver: tickets
        incident: false
  receivers:
    - name: tickets
      jira_configs:
        - url: {mock}/jira
          project: OPS
          issue_type: Incident
          token: pat
          resolve_transition: Done
          reopen_transition: Reopen
      github_configs:
        - url: {mock}/github
          repository: booking/platform
          token: ghp_test
incidents:
  reopen_window: 1h
  tickets: [tickets]
"""


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def post(ctx, name, labels, resolved=False):
    now = datetime.now(timezone.utc)
    alert = {"labels": {"alertname": name, **labels},
             "annotations": {"summary": f"{name} is failing"},
             "startsAt": iso(now - timedelta(minutes=5)),
             "generatorURL": "http://prometheus.example/graph"}
    if resolved:
        alert["endsAt"] = iso(now - timedelta(seconds=1))
    # usherd logs "listening" before alerting has registered API v2: a 404
    # right after the start is retried
    def once():
        r = http(f"{ctx['u'].url}/api/v2/alerts", method="POST", data=[alert])
        expect(r.status in (200, 404), f"POST /api/v2/alerts: {r.status} {r.text}")
        return r.status == 200

    wait_until(once, 30, "POST /api/v2/alerts to be accepted")


def incidents(ctx):
    r = run([usher_binary("USHER", "usher"), "incident", "list", "--json", "--url",
             ctx["u"].url])
    expect(r.returncode == 0, f"usher incident list: {r.stderr.decode(errors='replace')}")
    return json.loads(r.stdout)


def incident_of(ctx, name):
    found = [i for i in incidents(ctx) if f'alertname="{name}"' in i["groupKey"]]
    expect(len(found) <= 1, f"{len(found)} incidents for {name}: {found}")
    return found[0] if found else None


def jira_issues(mocks, group_key):
    label = "ALERT{" + hashlib.sha256(group_key.encode()).hexdigest() + "}"
    return [i for i in mocks.state()["jira"].values() if label in i["labels"]]


def github_issues(mocks, group_key):
    label = "alert-" + hashlib.sha256(group_key.encode()).hexdigest()[:40]
    return [i for i in mocks.state()["github"].values() if label in i["labels"]]


def setup(h):
    mocks = TicketMocks().start()
    h.on_cleanup(mocks.stop)
    u = start_usherd(h, CONFIG.format(mock=mocks.url))
    return {"h": h, "u": u, "mocks": mocks}


def check_critical_opens_incident_and_tickets(h, ctx):
    post(ctx, "CheckoutDown", {"severity": "critical", "service": "checkout"})
    inc = wait_until(lambda: incident_of(ctx, "CheckoutDown"), 30, "an incident for CheckoutDown")
    expect(inc["status"] == "open" and inc["severity"] == "critical" and
           inc["service"] == "checkout" and inc["receiver"] == "tickets", inc)
    expect(inc["groupHash"] == hashlib.sha256(inc["groupKey"].encode()).hexdigest(), inc)
    ctx["key"], ctx["id"] = inc["groupKey"], inc["id"]
    wait_until(lambda: len(jira_issues(ctx["mocks"], ctx["key"])) == 1, 30, "the Jira issue")
    wait_until(lambda: len(github_issues(ctx["mocks"], ctx["key"])) == 1, 30, "the GitHub issue")
    issue = jira_issues(ctx["mocks"], ctx["key"])[0]
    expect("CheckoutDown" in issue["summary"] and "FIRING" in issue["summary"], issue)
    expect("summary = CheckoutDown is failing" in issue["description"], issue["description"])
    r = http(f"{ctx['u'].url}/api/v1/incidents/{ctx['id']}")
    kinds = [e["kind"] for e in r.json()["timeline"]]
    expect(kinds[0] == "fired", f"timeline: {kinds}")

    def notified():
        tl = http(f"{ctx['u'].url}/api/v1/incidents/{ctx['id']}").json()["timeline"]
        got = [e for e in tl if e["kind"] == "notification"]
        return got if len(got) >= 2 else None

    # each delivered notification (Jira, GitHub) is on the incident's timeline
    notes = wait_until(notified, 30, "the notifications on the incident timeline")
    text = json.dumps(notes)
    expect("jira" in text and "github" in text, f"notification entries: {notes}")
    expect(ctx["u"].metrics().value("usher_incidents_open", severity="critical") == 1,
           "usher_incidents_open{severity=critical} is not 1")


def check_quiet_route_has_tickets_but_no_incident(h, ctx):
    post(ctx, "QueueSlow", {"severity": "critical", "team": "quiet"})
    post(ctx, "CacheWarm", {"severity": "warning"})

    def tickets():
        keys = {i["summary"] for i in ctx["mocks"].state()["jira"].values()}
        return any("QueueSlow" in k for k in keys) and any("CacheWarm" in k for k in keys)

    wait_until(tickets, 30, "Jira issues for QueueSlow and CacheWarm")
    expect(incident_of(ctx, "QueueSlow") is None, "a route with incident: false opened one")
    expect(incident_of(ctx, "CacheWarm") is None, "a warning opened an incident by default")


def check_resolve_and_reopen(h, ctx):
    post(ctx, "CheckoutDown", {"severity": "critical", "service": "checkout"}, resolved=True)

    def resolved():
        i = incident_of(ctx, "CheckoutDown")
        return i if i["status"] == "resolved" else None

    inc = wait_until(resolved, 30, "the incident resolved by its alerts")
    expect(inc["resolvedBy"] == "usherd" and inc["id"] == ctx["id"], inc)
    wait_until(lambda: jira_issues(ctx["mocks"], ctx["key"])[0]["done"], 30,
               "the Jira issue through its Done transition")
    wait_until(lambda: github_issues(ctx["mocks"], ctx["key"])[0]["state"] == "closed", 30,
               "the GitHub issue closed")
    # firing again within reopen_window: the same incident and tickets
    post(ctx, "CheckoutDown", {"severity": "critical", "service": "checkout"})

    def reopened():
        i = incident_of(ctx, "CheckoutDown")
        return i if i["status"] == "open" else None

    inc = wait_until(reopened, 30, "the incident reopened")
    expect(inc["id"] == ctx["id"] and inc["reopenCount"] == 1, inc)
    wait_until(lambda: not jira_issues(ctx["mocks"], ctx["key"])[0]["done"], 30,
               "the Jira issue reopened")
    wait_until(lambda: github_issues(ctx["mocks"], ctx["key"])[0]["state"] == "open", 30,
               "the GitHub issue reopened")
    expect(len(jira_issues(ctx["mocks"], ctx["key"])) == 1, "a second Jira issue")
    expect(ctx["mocks"].problems == [], f"malformed requests: {ctx['mocks'].problems}")


def check_restart_keeps_one_of_each(h, ctx):
    ctx["u"].stop_checked()
    ctx["u"] = start_usherd(h, CONFIG.format(mock=ctx["mocks"].url), name="usherd2",
                            state_dir=h.path("usherd-state"))
    post(ctx, "CheckoutDown", {"severity": "critical", "service": "checkout", "zone": "b"})

    def two_alerts():
        r = http(f"{ctx['u'].url}/api/v1/incidents/{ctx['id']}")
        return len(r.json()["alerts"]) == 2

    wait_until(two_alerts, 30, "the new alert on the same incident after the restart")
    wait_until(lambda: len(jira_issues(ctx["mocks"], ctx["key"])[0]["comments"]) >= 2, 30,
               "a comment on the same Jira issue")
    expect(len([i for i in incidents(ctx) if i["groupKey"] == ctx["key"]]) == 1,
           "a second incident after the restart")
    expect(len(jira_issues(ctx["mocks"], ctx["key"])) == 1, "a second Jira issue")
    expect(len(github_issues(ctx["mocks"], ctx["key"])) == 1, "a second GitHub issue")
    expect(ctx["mocks"].problems == [], f"malformed requests: {ctx['mocks'].problems}")


def cli(ctx, *args):
    r = run([usher_binary("USHER", "usher"), "incident", *map(str, args), "--url",
             ctx["u"].url])
    expect(r.returncode == 0, f"usher incident {args}: {r.stderr.decode(errors='replace')}")


def check_operator_events_reach_tickets(h, ctx):
    mocks, key = ctx["mocks"], ctx["key"]

    def last_comments():
        j = jira_issues(mocks, key)[0]["comments"]
        g = github_issues(mocks, key)[0]["comments"]
        return (j[-1] if j else ""), (g[-1] if g else "")

    def both_have(text):
        return lambda: all(text in c for c in last_comments())

    cli(ctx, "ack", ctx["id"], "--author", "alice")
    # the delivery queue picks rows enqueued by another thread within 5 s
    wait_until(both_have(f"Incident {ctx['id']} acknowledged by alice."), 30,
               "the ack as a comment on the Jira and GitHub issues")
    cli(ctx, "note", ctx["id"], "failing over to eu-2", "--author", "bob")
    wait_until(both_have(f"Note by bob on incident {ctx['id']}: failing over to eu-2"), 30,
               "the note as a comment")
    cli(ctx, "resolve", ctx["id"], "--author", "carol")
    wait_until(both_have(f"Incident {ctx['id']} resolved by carol."), 30,
               "the resolution as a comment")
    wait_until(lambda: jira_issues(mocks, key)[0]["done"] and
               github_issues(mocks, key)[0]["state"] == "closed", 30,
               "the issues resolved with the incident")
    expect(len(jira_issues(mocks, key)) == 1 and len(github_issues(mocks, key)) == 1,
           "an operator event created a ticket")
    expect(mocks.problems == [], f"malformed requests: {mocks.problems}")


if __name__ == "__main__":
    main("incident_pipeline", setup, [check_critical_opens_incident_and_tickets,
                                      check_quiet_route_has_tickets_but_no_incident,
                                      check_resolve_and_reopen, check_restart_keeps_one_of_each,
                                      check_operator_events_reach_tickets])
