"""usherd evaluating Prometheus rule files over what it collects, and
answering Prometheus' query API: samples from a textfile reach the store
and /api/v1/query; recording rules write back; alerts go pending and
firing with ALERTS series; a pending `for` survives a restart (alert state
in the state store); a broken rule file is refused at start (exit 2, with
file:line:col) and on reload (old rules keep running); a rule failing at
evaluation is counted; the API's shapes are Prometheus'."""

import json
import os
import signal
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (expect, main, run, start_usherd, usher_binary,  # noqa: E402
                     wait_until)

CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels: {{site: test-1}}
textfile_dir: {dir}
rule_files: [rules/*.yml]
"""

RULES = """\
groups:
  - name: seats
    rules:
      - record: job:seats_free:sum
        expr: sum by (job) (seats_free)
      - alert: SeatsLow
        expr: job:seats_free:sum < 50
        labels: {severity: page}
        annotations:
          summary: "only {{ $value }} seats left at {{ $externalLabels.site }}"
      - alert: SeatsLowForAnHour
        expr: job:seats_free:sum < 50
        for: 1h
  - name: limited
    limit: 1
    rules:
      - record: two_series
        expr: seats_free * 2
"""

BROKEN = """\
groups:
  - name: seats
    rules:
      - record: job:seats_free:sum
        expr: sum by (job) (seats_free
"""

SEATS = """\
# TYPE seats_free gauge
seats_free{{hall="a"}} {a}
seats_free{{hall="b"}} {b}
"""


def write_seats(d, a, b):
    tmp = d / ".seats.prom.tmp"
    tmp.write_text(SEATS.format(a=a, b=b))
    os.rename(tmp, d / "seats.prom")


def api(u, path, **params):
    q = urllib.parse.urlencode(params, doseq=True)
    r = u.get(f"{path}?{q}" if q else path)
    body = json.loads(r.text)
    return r.status, body


def query(u, expr, **extra):
    status, body = api(u, "/api/v1/query", query=expr, **extra)
    expect(status == 200 and body.get("status") == "success",
           f"query {expr!r}: {status} {body}")
    return body["data"]


def vector(u, expr):
    data = query(u, expr)
    expect(data["resultType"] == "vector", f"{expr}: resultType {data['resultType']}")
    return {json.dumps(s["metric"], sort_keys=True): float(s["value"][1])
            for s in data["result"]}


def setup(h):
    d = h.path("textfile")
    d.mkdir()
    rules = h.path("rules")
    rules.mkdir()
    (rules / "seats.yml").write_text(RULES)
    write_seats(d, 10, 20)
    state = h.path("state")
    state.mkdir()
    config = CONFIG.format(dir=d)
    u = start_usherd(h, config, config_name="usherd.yml", state_dir=state)
    return {"u": u, "dir": d, "rules": rules, "state": state, "config": config}


def check_samples_reach_the_store(h, ctx):
    u = ctx["u"]
    v = wait_until(lambda: vector(u, "seats_free") or None, 30, "seats_free in the store")
    by_hall = {json.loads(k)["hall"]: val for k, val in v.items()}
    expect(by_hall == {"a": 10, "b": 20}, f"seats_free: {by_hall}")
    one = json.loads(next(iter(v)))
    expect(one.get("job") == "textfile" and one.get("__name__") == "seats_free",
           f"labels as scraped: {one}")


def check_recording_rule(h, ctx):
    u = ctx["u"]
    v = wait_until(lambda: vector(u, "job:seats_free:sum") or None, 30, "recording rule result")
    expect(list(v.values()) == [30], f"job:seats_free:sum: {v}")


def check_alert_fires(h, ctx):
    u = ctx["u"]

    def firing():
        _, body = api(u, "/api/v1/alerts")
        alerts = [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == "SeatsLow"]
        return alerts if alerts and alerts[0]["state"] == "firing" else None

    a = wait_until(firing, 30, "SeatsLow firing")[0]
    expect(a["labels"].get("severity") == "page", f"rule labels: {a['labels']}")
    expect(a["annotations"]["summary"] == "only 30 seats left at test-1",
           f"template expanded: {a['annotations']}")
    expect(a["value"] == "3e+01", f"value in Prometheus' %e form: {a['value']}")
    v = vector(u, 'ALERTS{alertname="SeatsLow"}')
    states = [json.loads(k)["alertstate"] for k in v]
    expect(states == ["firing"], f"ALERTS series: {v}")
    pend = vector(u, 'ALERTS{alertname="SeatsLowForAnHour"}')
    expect([json.loads(k)["alertstate"] for k in pend] == ["pending"], f"pending: {pend}")
    ffs = vector(u, 'ALERTS_FOR_STATE{alertname="SeatsLowForAnHour"}')
    expect(len(ffs) == 1 and list(ffs.values())[0] > 1.7e9, f"ALERTS_FOR_STATE: {ffs}")


def check_rules_endpoint(h, ctx):
    u = ctx["u"]
    status, body = api(u, "/api/v1/rules")
    expect(status == 200, f"/api/v1/rules: {status}")
    groups = {g["name"]: g for g in body["data"]["groups"]}
    expect(set(groups) == {"seats", "limited"}, f"groups: {list(groups)}")
    g = groups["seats"]
    expect(g["file"].endswith("rules/seats.yml") and g["interval"] == 1,
           f"group fields: {g['file']} {g['interval']}")
    types = [(r["name"], r["type"]) for r in g["rules"]]
    expect(types == [("job:seats_free:sum", "recording"), ("SeatsLow", "alerting"),
                     ("SeatsLowForAnHour", "alerting")], f"rules: {types}")
    alerting = g["rules"][2]
    expect(alerting["duration"] == 3600 and alerting["health"] == "ok",
           f"alerting rule: {alerting}")
    _, only = api(u, "/api/v1/rules", type="record")
    names = [r["name"] for gr in only["data"]["groups"] for r in gr["rules"]]
    expect(names == ["job:seats_free:sum", "two_series"], f"type=record: {names}")


def check_failing_rule_is_counted(h, ctx):
    u = ctx["u"]
    key = f"{ctx['rules'] / 'seats.yml'};limited"

    def failures():
        m = u.metrics()
        v = m.value("usher_rule_evaluation_failures_total", rule_group=key)
        return v if v and v >= 2 else None

    wait_until(failures, 30, "usher_rule_evaluation_failures_total for the group over its limit")
    m = u.metrics()
    ok = m.value("usher_rule_evaluation_failures_total",
                 rule_group=f"{ctx['rules'] / 'seats.yml'};seats")
    expect(ok == 0, f"the healthy group has no failures: {ok}")
    _, body = api(u, "/api/v1/rules")
    lim = [g for g in body["data"]["groups"] if g["name"] == "limited"][0]["rules"][0]
    expect(lim["health"] == "err" and "limit" in lim.get("lastError", ""),
           f"failing rule's status: {lim}")
    logged = [e for e in u.events() if e.get("event.action") == "rule-evaluation-failed"]
    expect(len(logged) == 1, f"one log line for the failing group, not one per cycle: "
                             f"{len(logged)}")


def check_query_api_shapes(h, ctx):
    u = ctx["u"]
    d = query(u, "1 + 1")
    expect(d["resultType"] == "scalar" and d["result"][1] == "2", f"scalar: {d}")
    d = query(u, '"hi"')
    expect(d["resultType"] == "string" and d["result"][1] == "hi", f"string: {d}")
    d = query(u, "seats_free[5m]")
    expect(d["resultType"] == "matrix" and len(d["result"]) == 2, f"matrix: {d['resultType']}")

    def points():
        now = time.time()
        status, body = api(u, "/api/v1/query_range", query="sum(seats_free)",
                           start=f"{now - 20:.3f}", end=f"{now:.3f}", step="1s")
        expect(status == 200 and body["data"]["resultType"] == "matrix", f"range: {body}")
        pts = body["data"]["result"][0]["values"]
        return pts if len(pts) >= 3 else None

    pts = wait_until(points, 30, "3 points of a range query")
    expect(all(p[1] == "30" for p in pts[-3:]), f"range points: {pts}")
    steps = {round(b[0] - a[0], 3) for a, b in zip(pts, pts[1:])}
    expect(steps == {1}, f"points one step apart: {steps}")
    # RFC 3339 times work too, and POST with a form body, as Grafana sends
    r = u.get("/api/v1/query?" + urllib.parse.urlencode(
        {"query": "time()", "time": "2026-01-01T00:00:00Z"}))
    t = json.loads(r.text)["data"]["result"]
    expect(t[1] == "1767225600", f"time() at an RFC 3339 instant: {t}")
    from harness import http
    r = http(u.url + "/api/v1/query", method="POST",
             headers={"Content-Type": "application/x-www-form-urlencoded"},
             data=urllib.parse.urlencode({"query": "count(seats_free)"}).encode())
    expect(r.status == 200 and json.loads(r.text)["data"]["result"][0]["value"][1] == "2",
           f"POST form: {r.status} {r.text[:200]}")
    # errors as Prometheus words them, with its status codes
    status, body = api(u, "/api/v1/query", query="sum(")
    expect(status == 400 and body["errorType"] == "bad_data" and "parse error" in body["error"],
           f"parse error: {status} {body}")
    status, body = api(u, "/api/v1/query_range", query="1", start="10", end="5", step="1")
    expect(status == 400 and "end timestamp must not be before start" in body["error"],
           f"end < start: {body}")
    status, body = api(u, "/api/v1/query_range", query="1", start="0", end="100000", step="1")
    expect(status == 400 and "11,000 points" in body["error"], f"too many points: {body}")


def check_metadata_endpoints(h, ctx):
    u = ctx["u"]
    status, body = api(u, "/api/v1/series", **{"match[]": ["seats_free", '{hall="a"}']})
    expect(status == 200, f"series: {status} {body}")
    halls = sorted(s.get("hall") for s in body["data"])
    expect(halls == ["a", "b"], f"distinct series of both selectors: {body['data']}")
    status, body = api(u, "/api/v1/series")
    expect(status == 400 and "match[]" in body["error"], f"series without match[]: {body}")
    _, body = api(u, "/api/v1/labels")
    expect({"__name__", "hall", "job", "instance"} <= set(body["data"]), f"labels: {body}")
    _, body = api(u, "/api/v1/label/hall/values")
    expect(body["data"] == ["a", "b"], f"hall values: {body}")
    _, body = api(u, "/api/v1/label/__name__/values")
    expect("seats_free" in body["data"] and "job:seats_free:sum" in body["data"],
           f"metric names: {body['data'][:20]}")
    _, body = api(u, "/api/v1/label/job/values", **{"match[]": "seats_free"})
    expect(body["data"] == ["textfile"], f"values under match[]: {body}")
    _, body = api(u, "/api/v1/targets")
    t = body["data"]["activeTargets"]
    expect(len(t) == 1 and t[0]["labels"]["job"] == "textfile" and t[0]["health"] == "up",
           f"targets: {t}")
    _, body = api(u, "/api/v1/status/buildinfo")
    expect(body["data"]["version"], f"buildinfo: {body}")


def check_self_metrics_queryable(h, ctx):
    u = ctx["u"]
    v = wait_until(lambda: vector(u, "usher_tsdb_head_series") or None, 40,
                   "usherd's own metrics in the store")
    expect(list(v.values())[0] > 5, f"usher_tsdb_head_series: {v}")


def check_bad_reload_keeps_rules(h, ctx):
    u, rules = ctx["u"], ctx["rules"]
    (rules / "seats.yml").write_text(BROKEN)
    u.reload()
    wait_until(lambda: u.metrics().value("usher_config_last_reload_successful") == 0, 30,
               "usher_config_last_reload_successful 0")
    errs = [e for e in u.events() if e.get("event.action") == "rules-invalid"]
    expect(errs and "seats.yml:5:" in errs[0].get("message", ""),
           f"file:line:col in the log: {errs}")
    before = query(u, "usher_rule_group_iterations_total")["result"]
    write_seats(ctx["dir"], 100, 100)
    v = wait_until(lambda: (lambda v: v if list(v.values()) == [200] else None)(
        vector(u, "job:seats_free:sum")), 30, "old rules still evaluating")
    expect(v, "old rules")
    expect(before, "iterations counted")
    (rules / "seats.yml").write_text(RULES)
    write_seats(ctx["dir"], 10, 20)
    u.reload()
    wait_until(lambda: u.metrics().value("usher_config_last_reload_successful") == 1, 30,
               "a good reload")


def check_pending_for_survives_restart(h, ctx):
    u = ctx["u"]

    def active_at():
        _, body = api(u, "/api/v1/alerts")
        a = [a for a in body["data"]["alerts"]
             if a["labels"]["alertname"] == "SeatsLowForAnHour"]
        return a[0]["activeAt"] if a else None

    before = wait_until(active_at, 30, "SeatsLowForAnHour pending")
    u.stop_checked()
    u2 = start_usherd(h, ctx["config"], name="usherd2", config_name="usherd.yml",
                      state_dir=ctx["state"])
    ctx["u"] = u2
    u = u2
    after = wait_until(active_at, 30, "SeatsLowForAnHour pending again")
    expect(after == before, f"a pending `for` keeps counting across a restart: activeAt "
                            f"{before} before, {after} after")
    restored = [e for e in u2.events() if "restored" in e.get("message", "")]
    expect(restored, "the restore is logged")


def check_broken_rules_refused_at_start(h, ctx):
    bad = h.path("bad-rules")
    bad.mkdir()
    (bad / "x.yml").write_text(BROKEN)
    cfg = h.write("bad.yml", f"rule_files: [{bad}/x.yml]\n")
    r = run([usher_binary("USHERD", "usherd"), "--config", cfg, "--check"])
    err = r.stderr.decode(errors="replace")
    expect(r.returncode == 2 and "x.yml:5:" in err, f"--check: {r.returncode} {err}")
    r = run([usher_binary("USHER", "usher"), "check-config", cfg])
    err = r.stderr.decode(errors="replace")
    expect(r.returncode == 2 and "x.yml:5:" in err, f"usher check-config: {r.returncode} {err}")
    r = run([usher_binary("USHER", "usher"), "check-config", h.path("usherd.yml")])
    out = r.stdout.decode(errors="replace")
    expect(r.returncode == 0 and "1 rule file with 4 rules" in out,
           f"usher check-config counts the rules: {r.returncode} {out}")
    state = h.path("bad-state")
    state.mkdir()
    r = run([usher_binary("USHERD", "usherd"), "--config", cfg, "--listen", "127.0.0.1:0",
             "--state-dir", state], timeout=30)
    expect(r.returncode == 2, f"usherd with a broken rule file exits 2: {r.returncode}")
    out = (r.stdout + r.stderr).decode(errors="replace")
    expect("x.yml:5:" in out, f"names the place: {out[-800:]}")


def check_series_limit_fails_loudly(h, ctx):
    d = h.path("limited-textfile")
    d.mkdir()
    (d / "many.prom").write_text("".join(f'many{{i="{i}"}} {i}\n' for i in range(40)))
    cfg = f"global: {{scrape_interval: 1s}}\ntextfile_dir: {d}\nstorage: {{max_series: 20}}\n"
    u = start_usherd(h, cfg, name="limited", config_name="limited.yml")
    hits = wait_until(lambda: u.metrics().value("usher_tsdb_series_limit_hits_total") or None, 30,
                      "usher_tsdb_series_limit_hits_total > 0")
    expect(hits > 0, f"limit hits: {hits}")
    series = u.metrics().value("usher_tsdb_head_series")
    expect(series is not None and series <= 20, f"the store holds at most 20 series: {series}")
    logged = [e for e in u.events() if e.get("event.action") == "series-limit-reached"]
    expect(logged and "max_series" in logged[0].get("error.message", ""),
           f"one log line saying what to change: {logged[:1]}")
    time.sleep(2.5)
    again = [e for e in u.events() if e.get("event.action") == "series-limit-reached"]
    expect(len(again) == len(logged), f"the complaint is rate-limited: {len(logged)} -> {len(again)}")
    u.stop_checked()


if __name__ == "__main__":
    main("rules_api", setup, [
        check_samples_reach_the_store,
        check_recording_rule,
        check_alert_fires,
        check_rules_endpoint,
        check_failing_rule_is_counted,
        check_query_api_shapes,
        check_metadata_endpoints,
        check_self_metrics_queryable,
        check_bad_reload_keeps_rules,
        check_pending_for_survives_restart,
        check_broken_rules_refused_at_start,
        check_series_limit_fails_loudly,
    ])
