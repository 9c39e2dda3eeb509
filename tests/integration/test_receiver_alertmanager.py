"""alertmanager_configs, through a real usherd (alerts POSTed to its
/api/v2/alerts, routed by a `to` label): the alerts of a notification forwarded to real
Alertmanagers (Debian's prometheus-alertmanager) through POST
/api/v2/alerts, checked through the Alertmanagers' own API and amtool:
labels, annotations, startsAt and generatorURL arrive; a resolved
notification ends the alerts (endsAt); with one of two Alertmanagers down
the delivery still succeeds through the other; with all down it is
retried until one comes up."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (Fatal, expect, free_port, http, main, run, start_usherd,  # noqa: E402
                     tool, wait_until)
from vendormocks import post_alerts, postable, queued  # noqa: E402

AM_CONFIG = """\
route:
  receiver: devnull
  group_wait: 1h
receivers:
  - name: devnull
"""

CONFIG = """\
alerting:
  route:
    receiver: scaleout
    group_by: [alertname]
    group_wait: 100ms
    group_interval: 500ms
    repeat_interval: 1h
    routes:
      - {{matchers: ['to="later"'], receiver: later}}
  receivers:
    - name: scaleout
      alertmanager_configs:
        - urls: [{am1}, {dead}]
          url: {am2}
    - name: later
      alertmanager_configs:
        - url: {later}
"""


def start_am(h, name, port):
    cfg = h.write(f"{name}.yml", AM_CONFIG)
    data = h.path(f"{name}-data")
    data.mkdir(exist_ok=True)
    proc = h.spawn(name, [
        tool("prometheus-alertmanager"), f"--config.file={cfg}", f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        "--log.level=warn"])
    base = f"http://127.0.0.1:{port}"

    def ready():
        if not proc.alive():
            raise Fatal(f"{name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        return http(f"{base}/-/ready", timeout=5).status == 200

    wait_until(ready, 60, f"{name} to become ready")
    return base


def setup(h):
    am1 = start_am(h, "am1", free_port())
    am2 = start_am(h, "am2", free_port())
    later_port = free_port()
    u = start_usherd(h, CONFIG.format(am1=am1, am2=am2,
                                      dead=f"http://127.0.0.1:{free_port()}",
                                      later=f"http://127.0.0.1:{later_port}"))
    return {"am1": am1, "am2": am2, "u": u, "later_port": later_port}


def am_alerts(base, **filters):
    q = "&".join(f"filter={k}%3D%22{v}%22" for k, v in filters.items())
    r = http(f"{base}/api/v2/alerts?{q}", timeout=5)
    expect(r.status == 200, f"GET /api/v2/alerts: {r.status}")
    return r.json()


def check_forwarded_to_every_alertmanager(h, ctx):
    u = ctx["u"]
    post_alerts(u, postable("CheckoutErrors", n=3))
    for base in (ctx["am1"], ctx["am2"]):
        got = wait_until(lambda: (lambda a: a if len(a) == 3 else None)(
            am_alerts(base, alertname="CheckoutErrors")), 30, f"3 alerts in {base}")
        inst = sorted(a["labels"]["instance"] for a in got)
        expect(inst == ["api-0:8080", "api-1:8080", "api-2:8080"], f"instances {inst}")
        a = got[0]
        expect(a["labels"]["service"] == "booking" and a["labels"]["severity"] == "critical",
               a["labels"])
        expect(a["annotations"]["summary"] == "CheckoutErrors is failing", a["annotations"])
        expect(a["startsAt"] == [x for x in am_alerts(ctx["am1"], alertname="CheckoutErrors")
                                 if x["fingerprint"] == a["fingerprint"]][0]["startsAt"]
               and a["startsAt"][:2] == "20", f"startsAt as usherd set it: {a['startsAt']}")
        expect(a["generatorURL"] == "http://usher.example/graph", a["generatorURL"])
        expect(a["status"]["state"] == "active", a["status"])
    wait_until(lambda: queued(u) == 0, 20, "the delivery to complete with one URL dead")
    # amtool sees the same through the API
    r = run([tool("amtool"), "alert", "query", "alertname=CheckoutErrors",
             f"--alertmanager.url={ctx['am1']}", "-o", "json"])
    expect(r.returncode == 0, f"amtool: {r.stderr.decode(errors='replace')}")
    expect(r.stdout.decode().count("api-") == 3, f"amtool lists 3 alerts: {r.stdout[:300]}")


def check_resolved_ends_alerts(h, ctx):
    u = ctx["u"]
    post_alerts(u, postable("SeatsStuck"))
    wait_until(lambda: am_alerts(ctx["am1"], alertname="SeatsStuck"), 30, "the firing alert")
    # a resolved alert's endsAt is in the past: Alertmanager stops listing it
    # as active
    post_alerts(u, postable("SeatsStuck", status="resolved"))
    wait_until(lambda: not am_alerts(ctx["am1"], alertname="SeatsStuck"), 30,
               "the alert to be resolved in Alertmanager")


def check_retried_until_one_is_up(h, ctx):
    u = ctx["u"]
    post_alerts(u, postable("LateAM", extra_labels={"to": "later"}))
    wait_until(lambda: [e for e in u.events() if e.get("event.action") == "notification-retry"
                        and e.get("usher.receiver") == "later"], 20,
               "a retry while no Alertmanager is up")
    base = start_am(h, "am3", ctx["later_port"])
    wait_until(lambda: am_alerts(base, alertname="LateAM"), 30, "the alert once it is up")
    wait_until(lambda: queued(u) == 0, 20, "the queue to empty")


if __name__ == "__main__":
    main("receiver_alertmanager", setup, [
        check_forwarded_to_every_alertmanager, check_resolved_ends_alerts,
        check_retried_until_one_is_up,
    ])
