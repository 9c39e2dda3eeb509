"""The pack's Grafana dashboards: every dashboards/*.json is valid JSON in the
current schema (schemaVersion, unique uid and panel ids, a grid that fits 24
columns and does not overlap, the data source only through the ${datasource}
variable of type prometheus), every panel has a title and queries, every
query parses with usher's own PromQL parser (parse_promql, linked against
libusher) after Grafana's variables are substituted, and a query that does
not parse is reported (the check can fail). The provisioning files name
the dashboards' directory and a prometheus-type data source."""

import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import SOURCE_DIR, TestFailure, expect, main, run  # noqa: E402

import yaml  # noqa: E402

DASHBOARDS = sorted((SOURCE_DIR / "dashboards").glob("*.json"))
SCHEMA_VERSION = 39
WANT = {"Booking overview", "Booking API probes", "PostgreSQL", "Redis and memcached", "Hosts",
        "Backups and DR", "Alerts and incidents", "usherd"}
PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge", "bargauge"}
# Grafana's built-in variables, as Grafana substitutes them before a query
# reaches the data source.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def substitute(expr):
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    expect("$" not in expr, f"unknown Grafana variable left in {expr!r}")
    return expr


def queries(dash):
    """(panel title, expr) of every target of every panel, rows included."""
    out = []
    for p in dash["panels"]:
        for q in p.get("targets", []):
            out.append((p["title"], q["expr"]))
        for sub in p.get("panels", []):
            for q in sub.get("targets", []):
                out.append((sub["title"], q["expr"]))
    return out


def parser():
    path = os.environ.get("PARSE_PROMQL") or str(SOURCE_DIR / "build" / "tests" / "parse_promql")
    if not os.access(path, os.X_OK):
        raise TestFailure(f"parse_promql not found at {path}: build first, or set PARSE_PROMQL")
    return path


def setup(h):
    expect(DASHBOARDS, "no dashboards/*.json")
    dashes = {}
    for path in DASHBOARDS:
        try:
            dashes[path.name] = json.loads(path.read_text())
        except ValueError as e:
            raise TestFailure(f"{path.name}: not valid JSON: {e}") from None
    return {"dashes": dashes, "parse": parser()}


def check_the_eight_dashboards(h, ctx):
    titles = {d["title"] for d in ctx["dashes"].values()}
    expect(WANT <= titles, f"missing dashboards: {sorted(WANT - titles)}")
    uids = [d["uid"] for d in ctx["dashes"].values()]
    expect(len(uids) == len(set(uids)) and all(re.fullmatch(r"[a-z0-9-]{1,40}", u) for u in uids),
           f"dashboard uids must be unique, short, lower case: {uids}")


def check_schema(h, ctx):
    problems = []
    for name, d in ctx["dashes"].items():
        for key in ("title", "uid", "panels", "templating", "time", "schemaVersion", "tags", "annotations"):
            if key not in d:
                problems.append(f"{name}: no {key}")
        if d.get("schemaVersion") != SCHEMA_VERSION:
            problems.append(f"{name}: schemaVersion {d.get('schemaVersion')}, want {SCHEMA_VERSION}")
        if d.get("id") is not None:
            problems.append(f"{name}: id must be null in a provisioned dashboard")
        variables = d.get("templating", {}).get("list", [])
        ds = [v for v in variables if v.get("name") == "datasource"]
        if not (ds and ds[0].get("type") == "datasource" and ds[0].get("query") == "prometheus"):
            problems.append(f"{name}: needs a template variable datasource of type datasource, query prometheus")
        ids, cells = set(), {}
        for p in d.get("panels", []):
            pid, grid, title = p.get("id"), p.get("gridPos", {}), p.get("title")
            where = f"{name}: panel {pid} {title!r}"
            if pid in ids:
                problems.append(f"{where}: id repeats")
            ids.add(pid)
            if p.get("type") not in PANEL_TYPES:
                problems.append(f"{where}: type {p.get('type')!r}")
            if not title:
                problems.append(f"{where}: no title")
            x, y, w, hgt = (grid.get(k) for k in ("x", "y", "w", "h"))
            if not all(isinstance(v, int) for v in (x, y, w, hgt)) or x < 0 or w < 1 or x + w > 24 or hgt < 1:
                problems.append(f"{where}: bad gridPos {grid}")
                continue
            for cx in range(x, x + w):
                for cy in range(y, y + hgt):
                    if (cx, cy) in cells:
                        problems.append(f"{where}: overlaps panel {cells[(cx, cy)]}")
                        break
                    cells[(cx, cy)] = pid
                else:
                    continue
                break
            if p.get("type") == "row":
                continue
            if p.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
                problems.append(f"{where}: datasource must be the ${{datasource}} variable: {p.get('datasource')}")
            targets = p.get("targets") or []
            if not targets:
                problems.append(f"{where}: no queries")
            refs = [t.get("refId") for t in targets]
            if len(refs) != len(set(refs)):
                problems.append(f"{where}: refIds repeat {refs}")
            for t in targets:
                if t.get("datasource") != p.get("datasource"):
                    problems.append(f"{where}: target {t.get('refId')} has its own datasource")
                if not t.get("expr"):
                    problems.append(f"{where}: target {t.get('refId')} has no expr")
    expect(not problems, "\n".join(problems))


def check_queries_parse_with_usher(h, ctx):
    lines = []
    for name, d in ctx["dashes"].items():
        for title, expr in queries(d):
            lines.append(f"# {name}: {title}")
            lines.append(substitute(expr).replace("\n", " "))
    expect(len(lines) >= 2 * 60, f"only {len(lines) // 2} queries in all dashboards")
    f = h.write("queries.txt", "\n".join(lines) + "\n")
    r = run([ctx["parse"], "--file", f], timeout=60)
    text = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    expect(r.returncode == 0, f"queries usher's parser rejects:\n{text}")
    expect(f"{len(lines) // 2} expressions, all parsed" in text, f"parse_promql said: {text}")


def check_parser_rejects_broken_query(h, ctx):
    r = run([ctx["parse"], "sum by (job) (rate(x[5m])", "up"], timeout=30)
    text = r.stdout.decode(errors="replace")
    expect(r.returncode == 1 and "arg1:" in text and "arg2:" not in text,
           f"parse_promql on a broken and a good query: {r.returncode}: {text}")


def check_provisioning(h, ctx):
    prov = SOURCE_DIR / "dashboards" / "provisioning"
    dash = yaml.safe_load((prov / "dashboards.yml").read_text())
    expect(dash.get("apiVersion") == 1 and dash["providers"][0]["type"] == "file"
           and dash["providers"][0]["options"]["path"], f"dashboards.yml: {dash}")
    ds = yaml.safe_load((prov / "datasources.yml").read_text())
    types = {d["name"]: d["type"] for d in ds["datasources"]}
    expect(ds.get("apiVersion") == 1 and set(types.values()) == {"prometheus"} and len(types) >= 2,
           f"datasources.yml: {types}")


if __name__ == "__main__":
    main("pack_dashboards", setup, [check_the_eight_dashboards, check_schema, check_queries_parse_with_usher,
                                    check_parser_rejects_broken_query, check_provisioning])
