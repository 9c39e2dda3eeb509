"""`alerting.templates:` through usherd: a template file next to the config
(glob relative to the config file's directory) defines a Slack title; an
alert POSTed to /api/v2/alerts reaches the Slack mock with that title.
A receiver calling a define that exists nowhere fails `usherd --check` and
`usher check-config` with file:line:col, and a reload (SIGHUP) to such a
config is refused: the old config, and its templates, keep working."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (expect, http, main, run, start_usherd, usher_binary,  # noqa: E402
                     wait_until)
from vendormocks import VendorMock  # noqa: E402

CONFIG = """\
alerting:
  templates: [tmpl/*.tmpl]
  route:
    receiver: chat
    group_by: [alertname]
    group_wait: 200ms
    group_interval: 500ms
    repeat_interval: 1h
  receivers:
    - name: chat
      slack_configs:
        - api_url: {url}/slack/chat
          title: '{{{{ template "{define}" . }}}}'
"""

TEMPLATE = ('{{ define "booking.title" }}Booking on-call: {{ .CommonLabels.alertname }} '
            'in {{ .CommonLabels.hall }}{{ end }}\n')


def post_alert(u, name, hall):
    body = json.dumps([{"labels": {"alertname": name, "hall": hall},
                        "annotations": {"summary": "s"}}]).encode()
    resp = http(u.url + "/api/v2/alerts", method="POST", data=body,
                headers={"Content-Type": "application/json"})
    expect(resp.status == 200, f"POST /api/v2/alerts: {resp.status} {resp.text[:200]}")


def titles(mock):
    out = []
    for r in mock.accepted("/slack/chat"):
        for att in (r.json or {}).get("attachments") or []:
            out.append(att.get("title"))
    return out


def setup(h):
    mock = VendorMock(h)
    (h.path("tmpl")).mkdir()
    h.write("tmpl/booking.tmpl", TEMPLATE)
    config = CONFIG.format(url=mock.url, define="booking.title")
    u = start_usherd(h, config, config_name="usherd.yml")
    return {"u": u, "mock": mock, "config": config}


def check_custom_title_reaches_slack(h, ctx):
    post_alert(ctx["u"], "SeatsSoldOut", "a")
    got = wait_until(lambda: titles(ctx["mock"]) or None, 30, "a Slack message")
    expect(got[0] == "Booking on-call: SeatsSoldOut in a", f"Slack title: {got}")
    problems = [p for r in ctx["mock"].requests("/slack/chat") for p in r.problems]
    expect(not problems, f"Slack payload problems: {problems}")


def check_missing_define_fails_check(h, ctx):
    bad = h.write("bad.yml", CONFIG.format(url=ctx["mock"].url, define="missing"))
    for argv in ([usher_binary("USHERD", "usherd"), "--check", "--config", bad],
                 [usher_binary("USHER", "usher"), "check-config", bad]):
        r = run(argv)
        out = r.stdout.decode() + r.stderr.decode()
        expect(r.returncode != 0, f"{argv[0]} accepted a missing template: {out}")
        want = f"{bad}:13:18: receiver \"chat\": slack_configs[0].title"
        expect(want in out and "\"missing\"" in out,
               f"{Path(argv[0]).name}: wanted {want!r} ... \"missing\", got: {out}")


def check_reload_keeps_old_templates(h, ctx):
    u = ctx["u"]
    h.write("usherd.yml", CONFIG.format(url=ctx["mock"].url, define="missing"))
    u.reload()

    def refused():
        return [e for e in u.events() if e.get("event.action") == "config-reload"
                and e.get("event.outcome") == "failure"] or None

    wait_until(refused, 30, "the refused reload")
    why = [e for e in u.events() if e.get("event.action") == "config-invalid"]
    expect(why and why[-1].get("usher.config.line") == 13 and "\"missing\"" in why[-1]["message"],
           f"the config-invalid event says where and why: {why}")
    before = len(titles(ctx["mock"]))
    post_alert(u, "DoorsOpen", "b")
    got = wait_until(lambda: titles(ctx["mock"])[before:] or None, 30, "a second Slack message")
    expect(got[0] == "Booking on-call: DoorsOpen in b", f"old templates in use: {got}")
    h.write("usherd.yml", ctx["config"])


if __name__ == "__main__":
    main("alert_templates", setup, [check_custom_title_reaches_slack,
                                    check_missing_define_fails_check,
                                    check_reload_keeps_old_templates])
