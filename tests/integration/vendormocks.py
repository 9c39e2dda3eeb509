"""Local stand-ins for the SaaS receivers usher cannot reach from a test:
Slack incoming webhooks, PagerDuty Events API v2, Opsgenie Alert API v2,
and a generic webhook speaking Alertmanager's version 4 JSON. Each checks
every request against the vendor's documented format (a violation is
recorded and answered as the vendor answers it) and can be told to fail:
429 with Retry-After, 5xx, slow answers, dropped connections.

  mock = VendorMock(h)                 # one server, all vendors, free port
  mock.fail("/slack/T1", [("status", 429, {"Retry-After": "2"}), ("drop",)])
  ... usher delivers ...
  mock.requests("/slack/T1")            # what came, with .valid / .problems
"""

import json
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import expect

PD_SEVERITIES = {"critical", "error", "warning", "info"}
PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
PD_MAX_EVENT = 512 * 1024
SLACK_BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image", "rich_text",
                     "input", "file", "video"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


class Request:
    def __init__(self, path, headers, body, at):
        self.path = path
        self.headers = headers
        self.raw = body
        self.at = at  # time.monotonic() when it arrived
        self.problems = []
        self.status = None  # what the mock answered; None for a dropped one
        try:
            self.json = json.loads(body) if body else None
        except ValueError as e:
            self.json = None
            self.problems.append(f"body is not JSON: {e}")

    @property
    def valid(self):
        return not self.problems

    def __repr__(self):
        return f"<{self.path} {self.status} {self.problems or 'ok'}>"


# ------------------------------------------------------------ schemas ----

def _strmap(v, what, problems):
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str)
                                          for k, x in v.items()):
        problems.append(f"{what} must be an object of strings, got {v!r:.80}")


def check_webhook(doc, problems):
    """Alertmanager's webhook_config payload, version 4."""
    if not isinstance(doc, dict):
        return problems.append("payload is not an object")
    want = {"version": str, "groupKey": str, "truncatedAlerts": int, "status": str,
            "receiver": str, "groupLabels": dict, "commonLabels": dict,
            "commonAnnotations": dict, "externalURL": str, "alerts": list}
    for k, t in want.items():
        if not isinstance(doc.get(k), t):
            problems.append(f"{k} missing or not {t.__name__}")
    if doc.get("version") != "4":
        problems.append(f"version {doc.get('version')!r}, want \"4\"")
    if doc.get("status") not in ("firing", "resolved"):
        problems.append(f"status {doc.get('status')!r}")
    for k in ("groupLabels", "commonLabels", "commonAnnotations"):
        _strmap(doc.get(k, {}), k, problems)
    for i, a in enumerate(doc.get("alerts") or []):
        for k, t in {"status": str, "labels": dict, "annotations": dict, "startsAt": str,
                     "endsAt": str, "generatorURL": str, "fingerprint": str}.items():
            if not isinstance(a.get(k), t):
                problems.append(f"alerts[{i}].{k} missing or not {t.__name__}")
        for k in ("startsAt", "endsAt"):
            if isinstance(a.get(k), str) and not RFC3339.match(a[k]):
                problems.append(f"alerts[{i}].{k} {a[k]!r} is not RFC 3339")


def check_slack(doc, problems):
    """Slack incoming webhook: text, attachments or blocks (api.slack.com
    /messaging/webhooks, /reference/messaging/attachments, /block-kit)."""
    if not isinstance(doc, dict):
        return problems.append("payload is not an object")
    if not any(k in doc for k in ("text", "attachments", "blocks")):
        problems.append("no text, attachments or blocks")
    for k in ("text", "channel", "username", "icon_emoji", "icon_url"):
        if k in doc and not isinstance(doc[k], str):
            problems.append(f"{k} is not a string")
    for i, att in enumerate(doc.get("attachments") or []):
        if not isinstance(att, dict):
            problems.append(f"attachments[{i}] is not an object")
            continue
        for k in ("title", "title_link", "pretext", "text", "fallback", "color", "footer",
                  "callback_id"):
            if k in att and not isinstance(att[k], str):
                problems.append(f"attachments[{i}].{k} is not a string")
        if not isinstance(att.get("mrkdwn_in", []), list):
            problems.append(f"attachments[{i}].mrkdwn_in is not a list")
        if len(att.get("title", "")) > 1024 * 4:
            problems.append(f"attachments[{i}].title too long")
    blocks = doc.get("blocks")
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            problems.append("blocks must be a list of at most 50")
        for i, b in enumerate(blocks or []):
            if b.get("type") not in SLACK_BLOCK_TYPES:
                problems.append(f"blocks[{i}].type {b.get('type')!r}")
            if b.get("type") == "header":
                t = b.get("text", {})
                if t.get("type") != "plain_text" or not 0 < len(t.get("text", "")) <= 150:
                    problems.append(f"blocks[{i}] header needs plain_text of 1-150 characters")
            if b.get("type") == "section":
                t = b.get("text", {})
                if t.get("type") not in ("plain_text", "mrkdwn") or \
                        not 0 < len(t.get("text", "")) <= 3000:
                    problems.append(f"blocks[{i}] section text must be 1-3000 characters")


def check_pagerduty(doc, raw, problems):
    """Events API v2 (developer.pagerduty.com/api-reference/368ae3d938c9e)."""
    if len(raw) > PD_MAX_EVENT:
        problems.append(f"event of {len(raw)} bytes exceeds 512KB")
    if not isinstance(doc, dict):
        return problems.append("payload is not an object")
    rk = doc.get("routing_key")
    if not isinstance(rk, str) or len(rk) != 32:
        problems.append("routing_key must be the 32-character integration key")
    if doc.get("event_action") not in PD_ACTIONS:
        problems.append(f"event_action {doc.get('event_action')!r}")
    dk = doc.get("dedup_key")
    if dk is not None and (not isinstance(dk, str) or len(dk) > 255):
        problems.append("dedup_key must be a string of at most 255 characters")
    if doc.get("event_action") == "trigger":
        p = doc.get("payload")
        if not isinstance(p, dict):
            return problems.append("trigger without payload")
        for k in ("summary", "source", "severity"):
            if not isinstance(p.get(k), str) or not p.get(k):
                problems.append(f"payload.{k} is required")
        if len(p.get("summary", "")) > 1024:
            problems.append("payload.summary longer than 1024 characters")
        if p.get("severity") not in PD_SEVERITIES:
            problems.append(f"payload.severity {p.get('severity')!r}")
        if "custom_details" in p and not isinstance(p["custom_details"], dict):
            problems.append("payload.custom_details is not an object")
    elif dk is None:
        problems.append(f"{doc.get('event_action')} needs a dedup_key")


def check_opsgenie_create(doc, headers, problems):
    """Alert API v2, create (docs.opsgenie.com/docs/alert-api#create-alert)."""
    if not isinstance(doc, dict):
        return problems.append("payload is not an object")
    msg = doc.get("message")
    if not isinstance(msg, str) or not msg or len(msg) > 130:
        problems.append("message is required, at most 130 characters")
    for k, n in (("alias", 512), ("description", 15000), ("source", 100), ("entity", 512),
                 ("note", 25000), ("user", 100)):
        if k in doc and (not isinstance(doc[k], str) or len(doc[k]) > n):
            problems.append(f"{k} must be a string of at most {n} characters")
    for k in ("tags", "actions"):
        if k in doc and not (isinstance(doc[k], list) and all(isinstance(t, str) for t in doc[k])):
            problems.append(f"{k} must be a list of strings")
    if "details" in doc:
        _strmap(doc["details"], "details", problems)
    for i, r in enumerate(doc.get("responders") or []):
        if r.get("type") not in ("team", "user", "escalation", "schedule") or \
                not any(k in r for k in ("id", "name", "username")):
            problems.append(f"responders[{i}] needs a type and an id, name or username: {r}")
    if "priority" in doc and doc["priority"] not in ("P1", "P2", "P3", "P4", "P5"):
        problems.append(f"priority {doc['priority']!r}")


# -------------------------------------------------------------- server ----

class VendorMock:
    """One HTTP server answering as all four vendors, by path:
    /webhook/<name>, /slack/<name>, /pagerduty/v2/enqueue,
    /opsgenie/v2/alerts[/<alias>/close]."""

    def __init__(self, h, genie_key="genie-test-key"):
        self.genie_key = genie_key
        self._lock = threading.Lock()
        self._log = []
        self._faults = {}  # path prefix -> list of faults, consumed in order
        self._outages = {}  # path prefix -> status answered until the outage ends
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                mock._handle(self)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that gave up (a timeout) is part of the tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        h.on_cleanup(self.close)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def fail(self, prefix, faults):
        """Queues faults for requests whose path starts with prefix:
        ("status", code, headers, body) answers that; ("slow", seconds) waits
        then answers normally; ("drop",) closes the connection unanswered."""
        with self._lock:
            self._faults.setdefault(prefix, []).extend(faults)

    def outage(self, prefix, status=503):
        """Answers status (with Retry-After: 0) to every request under
        prefix until status is None."""
        with self._lock:
            if status is None:
                self._outages.pop(prefix, None)
            else:
                self._outages[prefix] = status

    def requests(self, prefix=""):
        with self._lock:
            return [r for r in self._log if r.path.startswith(prefix)]

    def accepted(self, prefix=""):
        return [r for r in self.requests(prefix) if r.status is not None and 200 <= r.status < 300]

    def _next_fault(self, path):
        with self._lock:
            for prefix, status in self._outages.items():
                if path.startswith(prefix):
                    return ("status", status, {}, b"outage")
            for prefix, q in self._faults.items():
                if path.startswith(prefix) and q:
                    return q.pop(0)
        return None

    def _handle(self, hd):
        n = int(hd.headers.get("Content-Length") or 0)
        body = hd.rfile.read(n) if n else b""
        req = Request(hd.path, dict(hd.headers), body, time.monotonic())
        with self._lock:
            self._log.append(req)
        fault = self._next_fault(hd.path)
        if fault and fault[0] == "drop":
            hd.close_connection = True
            try:
                hd.connection.shutdown(2)
            except OSError:
                pass
            return
        if fault and fault[0] == "slow":
            time.sleep(fault[1])
        if fault and fault[0] == "status":
            _, code, headers, fbody = (list(fault) + [{}, b""])[:4]
            return self._answer(hd, req, code, fbody, headers)
        if hd.headers.get("Content-Type", "").split(";")[0] != "application/json":
            req.problems.append(f"Content-Type {hd.headers.get('Content-Type')!r}")
        path = hd.path.split("?")[0]
        if path.startswith("/webhook/"):
            if req.json is not None:
                check_webhook(req.json, req.problems)
            return self._answer(hd, req, 200 if req.valid else 400, b"")
        if path.startswith("/slack/"):
            if req.json is not None:
                check_slack(req.json, req.problems)
            return self._answer(hd, req, 200 if req.valid else 400,
                                b"ok" if req.valid else b"invalid_payload",
                                {"Content-Type": "text/plain"})
        if path == "/pagerduty/v2/enqueue":
            if req.json is not None:
                check_pagerduty(req.json, body, req.problems)
            if req.valid:
                return self._answer(hd, req, 202, json.dumps(
                    {"status": "success", "message": "Event processed",
                     "dedup_key": req.json.get("dedup_key")}).encode())
            return self._answer(hd, req, 400, json.dumps(
                {"status": "invalid event", "message": "Event object is invalid",
                 "errors": req.problems}).encode())
        if path.startswith("/opsgenie/v2/alerts"):
            if hd.headers.get("Authorization") != f"GenieKey {self.genie_key}":
                req.problems.append("Authorization is not GenieKey <api key>")
                return self._answer(hd, req, 401, b'{"message":"Could not authenticate"}')
            m = re.match(r"^/opsgenie/v2/alerts/([^/]+)/close$", path)
            if m:
                if "identifierType=alias" not in hd.path:
                    req.problems.append("close without identifierType=alias")
                if req.json is not None and not isinstance(req.json, dict):
                    req.problems.append("close body is not an object")
            elif path == "/opsgenie/v2/alerts":
                if req.json is not None:
                    check_opsgenie_create(req.json, hd.headers, req.problems)
            else:
                req.problems.append(f"unknown Opsgenie path {path}")
            if req.valid:
                return self._answer(hd, req, 202, json.dumps(
                    {"result": "Request will be processed", "took": 0.01,
                     "requestId": f"req-{len(self._log)}"}).encode())
            return self._answer(hd, req, 422, json.dumps(
                {"message": "; ".join(req.problems), "took": 0.0}).encode())
        req.problems.append(f"unknown path {path}")
        return self._answer(hd, req, 404, b"not found")

    def _answer(self, hd, req, code, body, headers=None):
        req.status = code
        body = body if isinstance(body, bytes) else str(body).encode()
        try:
            hd.send_response(code)
            for k, v in (headers or {}).items():
                hd.send_header(k, v)
            if "Content-Type" not in (headers or {}):
                hd.send_header("Content-Type", "application/json")
            hd.send_header("Content-Length", str(len(body)))
            hd.end_headers()
            hd.wfile.write(body)
        except OSError:
            pass


# -------------------------------------------------------------- driver ----

class Driver:
    """The delivery engine run by test_delivery --drive (tests/unit): the
    real integrations and queue on a state dir, fed notifications on
    stdin. Until usherd's alerting glue takes notifications from its
    pipeline, this is how the receiver tests reach the engine."""

    def __init__(self, h, name, config_path, state_dir):
        import os
        from harness import SOURCE_DIR, _child_setup
        # the driver is built next to usherd: <build>/bin/usherd, <build>/tests/
        usherd = os.environ.get("USHERD") or str(SOURCE_DIR / "build" / "bin" / "usherd")
        exe = os.path.join(os.path.dirname(os.path.dirname(usherd)), "tests", "test_delivery")
        expect(os.access(exe, os.X_OK), f"delivery driver not found at {exe}")
        self.h = h
        self.name = name
        self.err_path = h.path(f"{name}.err")
        self.errf = open(self.err_path, "ab")
        self.p = subprocess.Popen([exe, "--drive", str(state_dir), str(config_path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.errf, start_new_session=True,
                                  preexec_fn=_child_setup, cwd=str(SOURCE_DIR))
        h.on_cleanup(self._cleanup)
        line = self.p.stdout.readline().decode().strip()
        expect(line == "ready", f"driver did not start ({line!r}):\n{self.stderr()}")

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def _cmd(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()
        return self.p.stdout.readline().decode().rstrip("\n")

    def enqueue(self, receiver, integration, index, key, data):
        key = key.replace("%", "%25").replace(" ", "%20").replace("\n", "%0A")
        out = self._cmd(f"enqueue {receiver} {integration} {index} {key} "
                        f"{json.dumps(data, separators=(',', ':'))}")
        expect(out == "ok", f"enqueue: {out}")

    def pending(self):
        out = self._cmd("pending")
        expect(out.startswith("pending "), f"pending: {out}")
        return int(out.split()[1])

    def metrics(self):
        self.p.stdin.write(b"metrics\n")
        self.p.stdin.flush()
        lines = []
        while True:
            line = self.p.stdout.readline().decode()
            expect(line != "", "driver exited")
            if line.rstrip("\n") == "end":
                return "".join(lines)
            lines.append(line)

    def quit(self):
        """A clean stop: the engine is freed, pending rows stay."""
        self.p.stdin.write(b"quit\n")
        self.p.stdin.flush()
        rc = self.p.wait(timeout=60)
        self.errf.close()
        expect(rc == 0, f"driver exited {rc}:\n{self.stderr()[-3000:]}")
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            expect(marker not in self.stderr(), f"sanitizer report:\n{self.stderr()[-5000:]}")

    def _cleanup(self):
        """At the end of a test: a clean stop (so leak checks run), then
        any sanitizer report becomes a failure of the test."""
        if self.p.poll() is None:
            try:
                self.p.stdin.write(b"quit\n")
                self.p.stdin.flush()
                self.p.wait(timeout=60)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        self.kill()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in self.stderr():
                self.h.problems.append(f"{self.name}: sanitizer report:\n{self.stderr()[-5000:]}")
                break

    def kill(self):
        """SIGKILL: a crash in the middle of whatever it was doing."""
        import os
        import signal
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        if not self.errf.closed:
            self.errf.close()


def notification(group, status="firing", alerts=None, receiver="team", n=1, extra_labels=None):
    """Alertmanager's webhook v4 data for one group."""
    now = "2026-01-01T10:00:00Z"
    labels = {"alertname": group, "severity": "critical", "service": "booking"}
    labels.update(extra_labels or {})
    if alerts is None:
        alerts = []
        for i in range(n):
            al = dict(labels, instance=f"api-{i}:8080")
            alerts.append({"status": status, "labels": al,
                           "annotations": {"summary": f"{group} is failing",
                                           "description": f"instance {i} is failing"},
                           "startsAt": now,
                           "endsAt": "2026-01-01T10:30:00Z" if status == "resolved"
                           else "0001-01-01T00:00:00Z",
                           "generatorURL": "http://usher.example/graph",
                           "fingerprint": f"{i:016x}"})
    return {"version": "4", "groupKey": f"{{}}:{{alertname=\"{group}\"}}", "truncatedAlerts": 0,
            "status": status, "receiver": receiver, "groupLabels": {"alertname": group},
            "commonLabels": labels, "commonAnnotations": {"summary": f"{group} is failing"},
            "externalURL": "http://usher.example:9469", "alerts": alerts}


# ---------------------------------------------------- through usherd ----

def postable(group, status="firing", n=1, extra_labels=None, annotations=None):
    """API v2 postableAlerts for one group (alertname=group), as Prometheus
    sends them: n alerts told apart by instance; resolved ones carry an
    endsAt in the past."""
    labels = {"alertname": group, "severity": "critical", "service": "booking"}
    labels.update(extra_labels or {})
    now = time.time()
    out = []
    for i in range(n):
        a = {"labels": dict(labels, instance=f"api-{i}:8080"),
             "annotations": annotations or {"summary": f"{group} is failing",
                                            "description": f"instance {i} is failing"},
             "generatorURL": "http://usher.example/graph"}
        if status == "resolved":
            a["startsAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600))
            a["endsAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 1))
        out.append(a)
    return out


def post_alerts(u, alerts):
    """POSTs alerts to usherd's /api/v2/alerts; expects 200."""
    from harness import http
    r = http(u.url + "/api/v2/alerts", method="POST", data=json.dumps(alerts).encode(),
             headers={"Content-Type": "application/json"})
    expect(r.status == 200, f"POST /api/v2/alerts: {r.status} {r.text[:300]}")


def group_key(group):
    """The group key of alertname=group on the root route grouping by alertname."""
    return f"{{}}:{{alertname=\"{group}\"}}"


def queued(u):
    """usher_notifications_queued of a running usherd."""
    return u.metrics().value("usher_notifications_queued") or 0
