"""A structural schema check of the Kubernetes manifests in deploy/kubernetes/
(kubectl is not in Debian 12, so `kubectl --dry-run=client` is not available):
every object's fields against a schema of the fields we use (unknown keys and
wrong types are errors, as the API server's strict field validation makes
them), and the references between objects (selectors match pod labels,
named ports exist, volumes and ConfigMaps exist, kustomization resources
exist).

    python3 tests/pack/k8s_schema.py deploy/kubernetes   # prints problems, exit 1 if any
"""

import sys
from pathlib import Path

import yaml

STR, INT, BOOL = str, int, bool
ANY = object()


def listof(s):
    return ("list", s)


def mapof(s):
    return ("map", s)


LABELS = mapof(STR)
METADATA = {"name": STR, "namespace": STR, "labels": LABELS, "annotations": LABELS}
PORT_REF = (STR, INT)
HTTP_GET = {"path": STR, "port": PORT_REF, "scheme": STR}
PROBE = {"httpGet": HTTP_GET, "periodSeconds": INT, "failureThreshold": INT, "initialDelaySeconds": INT,
         "timeoutSeconds": INT, "successThreshold": INT}
RESOURCES = {"requests": mapof((STR, INT)), "limits": mapof((STR, INT))}
CONTAINER = {
    "name": STR, "image": STR, "imagePullPolicy": STR, "args": listof(STR), "command": listof(STR),
    "ports": listof({"name": STR, "containerPort": INT, "protocol": STR}),
    "env": listof({"name": STR, "value": STR,
                   "valueFrom": {"secretKeyRef": {"name": STR, "key": STR, "optional": BOOL},
                                 "configMapKeyRef": {"name": STR, "key": STR, "optional": BOOL}}}),
    "readinessProbe": PROBE, "livenessProbe": PROBE, "startupProbe": PROBE, "resources": RESOURCES,
    "securityContext": {"allowPrivilegeEscalation": BOOL, "readOnlyRootFilesystem": BOOL,
                        "runAsNonRoot": BOOL, "capabilities": {"drop": listof(STR), "add": listof(STR)}},
    "volumeMounts": listof({"name": STR, "mountPath": STR, "readOnly": BOOL, "subPath": STR}),
}
POD_SPEC = {
    "automountServiceAccountToken": BOOL, "serviceAccountName": STR,
    "securityContext": {"runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT, "fsGroup": INT,
                        "seccompProfile": {"type": STR}},
    "containers": listof(CONTAINER),
    "volumes": listof({"name": STR, "configMap": {"name": STR, "defaultMode": INT},
                       "secret": {"secretName": STR, "defaultMode": INT}, "emptyDir": mapof(ANY),
                       "persistentVolumeClaim": {"claimName": STR}}),
}
RULE = {"alert": STR, "record": STR, "expr": (STR, INT, float), "for": STR, "keep_firing_for": STR,
        "labels": LABELS, "annotations": LABELS}
SCHEMAS = {
    ("v1", "ConfigMap"): {"data": mapof(STR)},
    ("v1", "Service"): {"spec": {"type": STR, "selector": LABELS,
                                 "ports": listof({"name": STR, "port": INT, "targetPort": PORT_REF,
                                                  "protocol": STR})}},
    ("apps/v1", "Deployment"): {"spec": {
        "replicas": INT, "strategy": {"type": STR}, "selector": {"matchLabels": LABELS},
        "template": {"metadata": METADATA, "spec": POD_SPEC}}},
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {"spec": {
        "selector": {"matchLabels": LABELS}, "namespaceSelector": {"matchNames": listof(STR), "any": BOOL},
        "endpoints": listof({"port": STR, "path": STR, "interval": STR, "scrapeTimeout": STR,
                             "honorLabels": BOOL, "scheme": STR})}},
    ("monitoring.coreos.com/v1", "PrometheusRule"): {"spec": {
        "groups": listof({"name": STR, "interval": STR, "rules": listof(RULE)})}},
}
REQUIRED = {
    "Deployment": [("spec", "selector"), ("spec", "template", "spec", "containers")],
    "Service": [("spec", "ports"), ("spec", "selector")],
    "ServiceMonitor": [("spec", "selector"), ("spec", "endpoints")],
    "PrometheusRule": [("spec", "groups")],
    "ConfigMap": [("data",)],
}


def check_value(v, schema, path, problems):
    if schema is ANY:
        return
    if isinstance(schema, tuple) and len(schema) == 2 and schema[0] in ("list", "map"):
        kind, inner = schema
        if kind == "list":
            if not isinstance(v, list):
                problems.append(f"{path}: expected a list, got {type(v).__name__}")
                return
            for i, item in enumerate(v):
                check_value(item, inner, f"{path}[{i}]", problems)
        else:
            if not isinstance(v, dict):
                problems.append(f"{path}: expected a mapping, got {type(v).__name__}")
                return
            for k, item in v.items():
                check_value(item, inner, f"{path}.{k}", problems)
        return
    if isinstance(schema, dict):
        if not isinstance(v, dict):
            problems.append(f"{path}: expected a mapping, got {type(v).__name__}")
            return
        for k, item in v.items():
            if k not in schema:
                problems.append(f"{path}: unknown field {k!r}")
            else:
                check_value(item, schema[k], f"{path}.{k}", problems)
        return
    types = schema if isinstance(schema, tuple) else (schema,)
    if isinstance(v, bool) and bool not in types:
        problems.append(f"{path}: expected {'/'.join(t.__name__ for t in types)}, got bool")
    elif not isinstance(v, types):
        problems.append(f"{path}: expected {'/'.join(t.__name__ for t in types)}, got {type(v).__name__}")


def dig(obj, keys):
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def load(directory):
    """[(file name, index, object)] of every YAML document but the kustomization."""
    objs = []
    for path in sorted(Path(directory).glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                objs.append((path.name, i, doc))
    return objs


def check(directory):
    """Every problem found, as 'file#doc kind/name: message' lines."""
    directory = Path(directory)
    problems = []
    objs = load(directory)
    seen = set()
    for fname, i, o in objs:
        where = f"{fname}#{i} {o.get('kind')}/{dig(o, ['metadata', 'name'])}"
        key = (o.get("apiVersion"), o.get("kind"))
        if key not in SCHEMAS:
            problems.append(f"{where}: unknown apiVersion/kind {key}")
            continue
        schema = {"apiVersion": STR, "kind": STR, "metadata": METADATA, **SCHEMAS[key]}
        check_value(o, schema, where, problems)
        if not dig(o, ["metadata", "name"]) or not dig(o, ["metadata", "namespace"]):
            problems.append(f"{where}: metadata.name and metadata.namespace are required")
        for req in REQUIRED.get(o["kind"], []):
            if dig(o, list(req)) in (None, [], {}):
                problems.append(f"{where}: {'.'.join(req)} is required")
        ident = (o["kind"], dig(o, ["metadata", "namespace"]), dig(o, ["metadata", "name"]))
        if ident in seen:
            problems.append(f"{where}: defined twice")
        seen.add(ident)

    by_kind = {}
    for _, _, o in objs:
        by_kind.setdefault(o.get("kind"), []).append(o)
    configmaps = {dig(o, ["metadata", "name"]) for o in by_kind.get("ConfigMap", [])}

    def matches(selector, labels):
        return bool(selector) and all((labels or {}).get(k) == v for k, v in selector.items())

    pod_ports = []
    for d in by_kind.get("Deployment", []):
        name = dig(d, ["metadata", "name"])
        tmpl_labels = dig(d, ["spec", "template", "metadata", "labels"]) or {}
        if not matches(dig(d, ["spec", "selector", "matchLabels"]), tmpl_labels):
            problems.append(f"Deployment/{name}: spec.selector.matchLabels does not match the pod labels")
        volumes = {v.get("name"): v for v in dig(d, ["spec", "template", "spec", "volumes"]) or []}
        for v in volumes.values():
            cm = dig(v, ["configMap", "name"])
            if cm and cm not in configmaps:
                problems.append(f"Deployment/{name}: volume {v['name']} uses ConfigMap {cm}, not defined")
        for c in dig(d, ["spec", "template", "spec", "containers"]) or []:
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            pod_ports.append((tmpl_labels, ports))
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = dig(c, [probe, "httpGet", "port"])
                if isinstance(port, str) and port not in ports:
                    problems.append(f"Deployment/{name}: {probe} uses port {port!r}, not a container port")
            for m in c.get("volumeMounts") or []:
                if m.get("name") not in volumes:
                    problems.append(f"Deployment/{name}: volumeMount {m.get('name')} has no volume")
    services = by_kind.get("Service", [])
    for s in services:
        name, sel = dig(s, ["metadata", "name"]), dig(s, ["spec", "selector"])
        backends = [ports for labels, ports in pod_ports if matches(sel, labels)]
        if not backends:
            problems.append(f"Service/{name}: its selector matches no Deployment's pods")
        for p in dig(s, ["spec", "ports"]) or []:
            tp = p.get("targetPort")
            if isinstance(tp, str) and not any(tp in ports for ports in backends):
                problems.append(f"Service/{name}: targetPort {tp!r} is no container port of its pods")
    for sm in by_kind.get("ServiceMonitor", []):
        name, sel = dig(sm, ["metadata", "name"]), dig(sm, ["spec", "selector", "matchLabels"])
        targets = [s for s in services if matches(sel, dig(s, ["metadata", "labels"]))]
        if not targets:
            problems.append(f"ServiceMonitor/{name}: its selector matches no Service's labels")
        names = {p.get("name") for s in targets for p in dig(s, ["spec", "ports"]) or []}
        for ep in dig(sm, ["spec", "endpoints"]) or []:
            if ep.get("port") not in names:
                problems.append(f"ServiceMonitor/{name}: endpoint port {ep.get('port')!r} is no Service port")
    for pr in by_kind.get("PrometheusRule", []):
        name = dig(pr, ["metadata", "name"])
        groups = [g.get("name") for g in dig(pr, ["spec", "groups"]) or []]
        if len(groups) != len(set(groups)):
            problems.append(f"PrometheusRule/{name}: group names repeat: {groups}")
        for g in dig(pr, ["spec", "groups"]) or []:
            for r in g.get("rules") or []:
                if ("alert" in r) == ("record" in r):
                    problems.append(f"PrometheusRule/{name}: a rule needs exactly one of alert, record")

    kust = directory / "kustomization.yaml"
    if kust.exists():
        k = yaml.safe_load(kust.read_text())
        listed = set(k.get("resources") or [])
        for res in listed:
            if not (directory / res).exists():
                problems.append(f"kustomization.yaml: resource {res} does not exist")
        unlisted = {p.name for p in directory.glob("*.yaml")} - listed - {"kustomization.yaml"}
        if unlisted:
            problems.append(f"kustomization.yaml: does not list {sorted(unlisted)}")
    return problems


if __name__ == "__main__":
    found = check(sys.argv[1] if len(sys.argv) > 1 else "deploy/kubernetes")
    print("\n".join(found) if found else "ok")
    sys.exit(1 if found else 0)
