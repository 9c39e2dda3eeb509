"""deploy/ for the scale-out path: the Prometheus config (with the pack's
rule_files) passes `promtool check config`; the Alertmanager example passes
`amtool check-config` and routes each severity where its comments say; the
Kubernetes manifests pass the structural schema check (and a broken copy
does not); the generated PrometheusRule objects hold exactly the rules of
alerts/ and rules/ and each passes `promtool check rules`; the ConfigMap's
usher.yml passes `usher check-config`; the Dockerfile is built from Debian 12
packages that exist."""

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.insert(0, str(HERE))
from harness import SOURCE_DIR, expect, main, run, tool, usher_binary  # noqa: E402

import k8s_schema  # noqa: E402
import yaml  # noqa: E402

DEPLOY = SOURCE_DIR / "deploy"
K8S = DEPLOY / "kubernetes"


def out(r):
    return (r.stdout + r.stderr).decode(errors="replace")


def setup(h):
    return {"promtool": tool("promtool"), "amtool": tool("amtool"), "usher": usher_binary("USHER", "usher")}


def check_prometheus_config(h, ctx):
    cfg = DEPLOY / "prometheus" / "prometheus.yml"
    r = run([ctx["promtool"], "check", "config", cfg], timeout=120)
    expect(r.returncode == 0, f"promtool check config {cfg}:\n{out(r)}")
    checked = {Path(p).name for p in re.findall(r"Checking (\S+\.yml)", out(r))}
    want = {p.name for p in (SOURCE_DIR / "alerts").glob("*.yml")} | \
           {p.name for p in (SOURCE_DIR / "rules").glob("*.yml")}
    expect(want <= checked, f"prometheus.yml's rule_files miss {sorted(want - checked)}")
    doc = yaml.safe_load(cfg.read_text())
    usher = [s for s in doc["scrape_configs"] if s["job_name"] == "usher"]
    expect(usher and usher[0].get("honor_labels") is True,
           "the usher scrape job needs honor_labels: true (probes set job and instance)")


def check_alertmanager_config(h, ctx):
    cfg = DEPLOY / "alertmanager" / "alertmanager.yml"
    r = run([ctx["amtool"], "check-config", cfg], timeout=60)
    expect(r.returncode == 0, f"amtool check-config {cfg}:\n{out(r)}")
    for labels, want in ((["alertname=BookingAPIDown", "severity=critical"], "pagerduty-booking,slack-booking"),
                         (["alertname=BackupStale", "severity=warning"], "slack-booking"),
                         (["alertname=Watchdog", "severity=none"], "heartbeat")):
        r = run([ctx["amtool"], "config", "routes", "test", f"--config.file={cfg}", *labels], timeout=60)
        got = r.stdout.decode(errors="replace").strip()
        expect(r.returncode == 0 and got == want, f"{labels} routes to {got!r}, want {want!r}")


def check_kubernetes_schema(h, ctx):
    problems = k8s_schema.check(K8S)
    expect(not problems, "deploy/kubernetes:\n" + "\n".join(problems))


def check_kubernetes_schema_catches_mistakes(h, ctx):
    """A copy with a typo in a field, a selector that matches nothing and a
    probe on a port that does not exist fails the check on each."""
    copy = h.path("k8s")
    copy.mkdir()
    for p in K8S.glob("*.yaml"):
        (copy / p.name).write_text(p.read_text())
    dep = copy / "deployment.yaml"
    text = dep.read_text()
    for old, new, want in (("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", "unknown field"),
                           ("port: http-metrics}", "port: metrics}", "not a container port"),
                           ("replicas: 1", "replicas: one", "expected int")):
        expect(old in text, f"deployment.yaml no longer has {old!r}")
        dep.write_text(text.replace(old, new, 1))
        problems = k8s_schema.check(copy)
        expect(any(want in p for p in problems), f"{old!r} -> {new!r} not caught: {problems}")
    dep.write_text(text)
    svc = copy / "service.yaml"
    svc.write_text(svc.read_text().replace("component: usherd\nspec", "component: usherd-x\nspec"))
    sel = svc.read_text()
    svc.write_text(sel.replace("    app.kubernetes.io/component: usherd\n  ports",
                               "    app.kubernetes.io/component: nothing\n  ports"))
    problems = k8s_schema.check(copy)
    expect(any("matches no" in p for p in problems), f"a selector matching nothing not caught: {problems}")


def check_prometheusrule_matches_pack(h, ctx):
    docs = [d for d in yaml.safe_load_all((K8S / "prometheusrule.yaml").read_text()) if d]
    expect(all(d["kind"] == "PrometheusRule" for d in docs), "prometheusrule.yaml holds other kinds")
    sources = sorted((SOURCE_DIR / "alerts").glob("*.yml")) + sorted((SOURCE_DIR / "rules").glob("*.yml"))
    expect(len(docs) == len(sources), f"{len(docs)} PrometheusRules for {len(sources)} rule files")
    for doc, src in zip(docs, sources):
        want = yaml.safe_load(src.read_text())
        expect(doc["spec"] == want, f"{doc['metadata']['name']} differs from {src.relative_to(SOURCE_DIR)}")
        spec = h.write(f"{doc['metadata']['name']}.yml", yaml.safe_dump(doc["spec"], sort_keys=False))
        r = run([ctx["promtool"], "check", "rules", spec], timeout=60)
        expect(r.returncode == 0, f"promtool check rules on {doc['metadata']['name']}'s spec:\n{out(r)}")


def check_configmap_config_valid(h, ctx):
    cm = yaml.safe_load((K8S / "configmap.yaml").read_text())
    cfg = h.write("usher.yml", cm["data"]["usher.yml"])
    env = {"BOOKING_DB_DSN": "postgresql://usher@db/booking", "REDIS_PASSWORD": "x",
           "PATH": "/usr/bin:/bin"}
    r = run([ctx["usher"], "check-config", cfg], timeout=60, env=env)
    expect(r.returncode == 0, f"usher check-config on the ConfigMap's usher.yml:\n{out(r)}")
    # and it fails without the secrets it references, naming them
    r = run([ctx["usher"], "check-config", cfg], timeout=60, env={"PATH": "/usr/bin:/bin"})
    expect(r.returncode != 0 and "BOOKING_DB_DSN" in out(r),
           f"check-config without BOOKING_DB_DSN: {r.returncode}:\n{out(r)}")


def check_dockerfile_debian_only(h, ctx):
    text = (DEPLOY / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    expect(froms and all(f.startswith("debian:12") for f in froms), f"FROM lines: {froms}")
    expect(not re.search(r"curl[^\n]*\|\s*(ba)?sh|wget[^\n]*\|\s*(ba)?sh|pip install|npm install", text),
           "the image installs something that is not a Debian package")
    for src in re.findall(r"^COPY\s+(?!--from)(\S+)\s", text, re.M):
        expect(src == "." or (SOURCE_DIR / src).exists(), f"COPY {src}: no such file in the tree")
    pkgs = []
    joined = text.replace("\\\n", " ")
    for cmd in re.findall(r"apt-get install ([^&\n]*)", joined):
        pkgs += [w for w in cmd.split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w)]
    expect(len(pkgs) > 5, f"runtime packages found: {pkgs}")
    r = run(["apt-cache", "show", "--no-all-versions", *pkgs], timeout=60)
    expect(r.returncode == 0, f"apt-cache show {' '.join(pkgs)}:\n{out(r)[-1000:]}")
    expect("USER usher" in text, "the image should not run as root")


if __name__ == "__main__":
    main("pack_deploy", setup, [check_prometheus_config, check_alertmanager_config,
                                check_kubernetes_schema, check_kubernetes_schema_catches_mistakes,
                                check_prometheusrule_matches_pack, check_configmap_config_valid,
                                check_dockerfile_debian_only])
