"""The pack's rule files: `promtool check rules` finds nothing on alerts/ and
rules/ and `usher check rules` agrees; every file in alerts/tests/ passes
under both `promtool test rules` and `usher test rules`, and a broken copy
fails under both; every alert has severity, summary, description and a
runbook_url naming runbooks/<alert>.md, a unit test that shows it firing and
a runbook with the five sections, and every runbook belongs to an alert;
recording rules are named level:metric:operations; the generated files are
up to date."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from harness import SOURCE_DIR, expect, main, run, tool, usher_binary  # noqa: E402

import yaml  # noqa: E402  (python3-yaml, scripts/install-deps.sh test)

ALERTS = sorted((SOURCE_DIR / "alerts").glob("*.yml"))
RULES = sorted((SOURCE_DIR / "rules").glob("*.yml"))
TESTS = sorted((SOURCE_DIR / "alerts" / "tests").glob("*.yml"))
RUNBOOKS = SOURCE_DIR / "runbooks"
SEVERITIES = {"critical", "warning", "info", "none"}
SECTIONS = ["## Meaning", "## Impact on bookings", "## First five minutes", "## Mitigation",
            "## Escalation"]
RECORD_NAME = re.compile(r"^[a-z_]*:[a-z][a-z0-9_]*:[a-z0-9_]+$")


def out(r):
    return (r.stdout + r.stderr).decode(errors="replace")


def rules_of(paths):
    for path in paths:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield path, group["name"], rule


def setup(h):
    expect(ALERTS and RULES and TESTS, f"no pack files under {SOURCE_DIR}")
    alerts = {}
    for path, _, rule in rules_of(ALERTS):
        expect("alert" in rule, f"{path.name}: a recording rule in alerts/: {rule.get('record')}")
        alerts.setdefault(rule["alert"], []).append((path, rule))
    return {"promtool": tool("promtool"), "usher": usher_binary("USHER", "usher"), "alerts": alerts}


def rule_counts(text):
    """{file name: N} from the 'Checking FILE / SUCCESS: N rules found' lines."""
    counts, current = {}, None
    for line in text.splitlines():
        m = re.match(r"Checking (\S+)", line)
        if m:
            current = str(Path(m.group(1)).resolve())
        m = re.search(r"SUCCESS: (\d+) rules found", line)
        if m and current:
            counts[current] = int(m.group(1))
    return counts


def check_promtool_check_rules_clean(h, ctx):
    r = run([ctx["promtool"], "check", "rules", *ALERTS, *RULES], timeout=120)
    text = out(r)
    expect(r.returncode == 0, f"promtool check rules failed ({r.returncode}):\n{text}")
    noise = [line for line in text.splitlines()
             if line.strip() and not re.match(r"\s*(Checking \S+|SUCCESS: \d+ rules found)$", line)]
    expect(not noise, "promtool check rules has findings:\n" + "\n".join(noise))
    expect(len(rule_counts(text)) == len(ALERTS) + len(RULES), f"promtool checked:\n{text}")
    ctx["promtool_counts"] = rule_counts(text)


def check_usher_check_rules_agrees(h, ctx):
    r = run([ctx["usher"], "check", "rules", *ALERTS, *RULES], timeout=120)
    text = out(r)
    expect(r.returncode == 0, f"usher check rules failed ({r.returncode}):\n{text}")
    want = ctx.get("promtool_counts") or rule_counts(out(run([ctx["promtool"], "check", "rules",
                                                                *ALERTS, *RULES], timeout=120)))
    got = rule_counts(text)
    expect(got == want, f"rule counts differ: usher {got}, promtool {want}")


def check_promtool_test_rules(h, ctx):
    for path in TESTS:
        r = run([ctx["promtool"], "test", "rules", path], timeout=120)
        expect(r.returncode == 0 and "SUCCESS" in out(r),
               f"promtool test rules {path.name} ({r.returncode}):\n{out(r)[-3000:]}")


def check_usher_test_rules(h, ctx):
    for path in TESTS:
        r = run([ctx["usher"], "test", "rules", path], timeout=120)
        expect(r.returncode == 0 and "SUCCESS" in out(r),
               f"usher test rules {path.name} ({r.returncode}):\n{out(r)[-3000:]}")


def check_broken_tests_fail(h, ctx):
    """The tests can fail: each test file with every expected severity
    swapped (a copy in the temp dir, rule_files made absolute) must fail
    under both tools."""
    for path in TESTS:
        doc = yaml.safe_load(path.read_text())
        doc["rule_files"] = [str((path.parent / f).resolve()) for f in doc["rule_files"]]
        swapped = 0
        for group in doc["tests"]:
            for t in group.get("alert_rule_test") or []:
                for a in t.get("exp_alerts") or []:
                    labels = a.get("exp_labels") or {}
                    if labels.get("severity") in ("critical", "warning"):
                        labels["severity"] = {"critical": "warning",
                                              "warning": "critical"}[labels["severity"]]
                        swapped += 1
        if not swapped:
            continue
        copy = h.write(f"broken-{path.name}", yaml.safe_dump(doc, sort_keys=False))
        for name, argv in (("promtool", [ctx["promtool"], "test", "rules", copy]),
                           ("usher", [ctx["usher"], "test", "rules", copy])):
            r = run(argv, timeout=120)
            expect(r.returncode != 0, f"{name} passes {path.name} with its severities swapped")


def check_alerts_well_formed(h, ctx):
    problems = []
    for name, rules in ctx["alerts"].items():
        for path, rule in rules:
            where = f"{path.name}: {name}"
            if not re.fullmatch(r"[A-Z][A-Za-z0-9]+", name):
                problems.append(f"{where}: alert names are CamelCase")
            sev = (rule.get("labels") or {}).get("severity")
            if sev not in SEVERITIES:
                problems.append(f"{where}: severity {sev!r} not one of {sorted(SEVERITIES)}")
            ann = rule.get("annotations") or {}
            for key in ("summary", "description", "runbook_url"):
                if not ann.get(key):
                    problems.append(f"{where}: no annotation {key}")
            url = ann.get("runbook_url", "")
            if not url.endswith(f"/runbooks/{name}.md"):
                problems.append(f"{where}: runbook_url {url!r} should end with /runbooks/{name}.md")
        sevs = [r.get("labels", {}).get("severity") for _, r in rules]
        if len(rules) > 1 and name not in ("BookingErrorBudgetBurn", "BookingLatencyBudgetBurn") \
                and len(set(sevs)) != len(sevs):
            problems.append(f"{name}: {len(rules)} rules with the same severity {sevs}")
    expect(not problems, "\n".join(problems))


def check_every_alert_has_a_firing_test(h, ctx):
    tested = set()
    for path in TESTS:
        doc = yaml.safe_load(path.read_text())
        for group in doc["tests"]:
            for t in group.get("alert_rule_test") or []:
                if t.get("exp_alerts"):
                    tested.add(t["alertname"])
    missing = sorted(set(ctx["alerts"]) - tested)
    unknown = sorted(tested - set(ctx["alerts"]))
    expect(not missing, f"alerts without a unit test that shows them firing: {missing}")
    expect(not unknown, f"unit tests of alerts that do not exist: {unknown}")


def check_runbooks_match_alerts(h, ctx):
    books = {p.stem: p for p in RUNBOOKS.glob("*.md")}
    missing = sorted(set(ctx["alerts"]) - set(books))
    orphans = sorted(set(books) - set(ctx["alerts"]))
    expect(not missing, f"alerts without runbooks/<name>.md: {missing}")
    expect(not orphans, f"runbooks of no alert: {orphans}")
    for name, path in books.items():
        text = path.read_text()
        expect(text.startswith(f"# {name}\n"), f"{path.name} should start with '# {name}'")
        at = [text.find(s + "\n") for s in SECTIONS]
        expect(all(i >= 0 for i in at) and at == sorted(at),
               f"{path.name}: needs the sections {SECTIONS} in that order")
        first = text[at[2]:at[3]]
        steps = re.findall(r"^\d+\. ", first, re.M)
        expect(len(steps) >= 3, f"{path.name}: the first five minutes need at least 3 steps")
        expect("usher " in first, f"{path.name}: the first five minutes name no usher command")


def check_recording_rule_names(h, ctx):
    bad = [f"{p.name}: {r['record']}" for p, _, r in rules_of(RULES)
           if "record" in r and not RECORD_NAME.match(r["record"])]
    alerts_in_rules = [f"{p.name}: {r['alert']}" for p, _, r in rules_of(RULES) if "alert" in r]
    expect(not bad, f"recording rules not named level:metric:operations: {bad}")
    expect(not alerts_in_rules, f"alerts belong in alerts/, not rules/: {alerts_in_rules}")


def check_recorded_series_used_exist(h, ctx):
    """Every level:metric:operations name an alert uses is recorded."""
    recorded = {r["record"] for _, _, r in rules_of(RULES) if "record" in r}
    used = set()
    for _, _, rule in rules_of(ALERTS):
        used |= set(re.findall(r"\b[a-z_]*:[a-z][a-z0-9_]*:[a-z0-9_]+\b", rule["expr"]))
    expect(used <= recorded, f"alerts use series no rule records: {sorted(used - recorded)}")


def check_generated_files_up_to_date(h, ctx):
    for script in ("pack-slo.py", "pack-dashboards.py", "pack-prometheusrule.py"):
        r = run([sys.executable, SOURCE_DIR / "scripts" / script, "--check"], timeout=60)
        expect(r.returncode == 0, f"scripts/{script} --check: {out(r)}")


if __name__ == "__main__":
    main("pack_rules", setup, [check_promtool_check_rules_clean, check_usher_check_rules_agrees,
                               check_promtool_test_rules, check_usher_test_rules,
                               check_broken_tests_fail, check_alerts_well_formed,
                               check_every_alert_has_a_firing_test, check_runbooks_match_alerts,
                               check_recording_rule_names, check_recorded_series_used_exist,
                               check_generated_files_up_to_date])
