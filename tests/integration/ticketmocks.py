"""Local stand-ins for the ticket systems usher talks to: Jira (REST v2 and
v3), Zendesk (Tickets and Search APIs), ServiceNow (Table API), GitHub
Issues (REST) and a generic ticket endpoint, on one loopback HTTP server,
each under its own path prefix (/jira, /zendesk, /servicenow, /github,
/ticket). They keep tickets in memory, check every request against the
vendor's documented shape (authentication, required fields, enums, Jira's
Atlassian Document Format, ServiceNow's close_code/close_notes on resolve,
Zendesk's closed tickets refusing updates, GitHub's 50-character labels)
and answer as the vendor does; anything off is recorded in `problems` and
answered 400. Failure injection: a rule makes the next matching requests
answer a status (429 with Retry-After, 5xx), stall, or drop the connection.

As a program, `python3 ticketmocks.py CMD ARG...` runs CMD with
USHER_TICKET_MOCK set to the server's base URL and, at the end, fails if
the server saw malformed requests."""

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Reject(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


def need(cond, msg, status=400):
    if not cond:
        raise Reject(status, msg)


class Rule:
    def __init__(self, vendor, method=None, path=None, status=None, retry_after=None,
                 drop=False, delay=0.0, times=1):
        self.vendor, self.method, self.status = vendor, method, status
        self.path = re.compile(path) if path else None
        self.retry_after, self.drop, self.delay, self.times = retry_after, drop, delay, times

    def matches(self, vendor, method, path):
        return (self.times > 0 and self.vendor == vendor and
                (self.method is None or self.method == method) and
                (self.path is None or self.path.search(path)))


class TicketMocks:
    """The server and every vendor's state. Thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.problems = []
        self.log = []  # (vendor, method, path, status)
        self.rules = []
        self.jira = {}        # key -> issue
        self.github = {}      # number -> issue
        self.zendesk = {}     # id -> ticket
        self.servicenow = {}  # sys_id -> record
        self.generic = []     # bodies received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def inject(self, vendor, **kw):
        with self.lock:
            self.rules.append(Rule(vendor, **kw))

    def requests(self, vendor, method=None):
        with self.lock:
            return [r for r in self.log if r[0] == vendor and (method is None or r[1] == method)]

    # ------------------------------------------------------------ HTTP --

    def _handler(self):
        mocks = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = self.path.split("/", 2)
                vendor = parts[1] if len(parts) > 1 else ""
                rest = "/" + (parts[2] if len(parts) > 2 else "")
                path, _, query = rest.partition("?")
                with mocks.lock:
                    rule = next((r for r in mocks.rules
                                 if r.matches(vendor, self.command, path)), None)
                    if rule:
                        rule.times -= 1
                if rule and rule.delay:
                    time.sleep(rule.delay)
                if rule and rule.drop:
                    mocks._record(vendor, self.command, path, 0)
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if rule and rule.status:
                    headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after else {}
                    mocks._record(vendor, self.command, path, rule.status)
                    return self._answer(rule.status, {"error": "injected"}, headers)
                try:
                    fn = getattr(mocks, f"_{vendor}", None)
                    need(fn is not None, f"unknown vendor prefix /{vendor}", 404)
                    body = None
                    if raw:
                        ct = self.headers.get("Content-Type", "")
                        need(ct.startswith("application/json"),
                             f"Content-Type {ct!r}, want application/json")
                        body = json.loads(raw)
                    with mocks.lock:
                        status, answer = fn(self.command, path,
                                            urllib.parse.parse_qs(query), body, self.headers)
                except Reject as e:
                    with mocks.lock:
                        mocks.problems.append(f"{vendor} {self.command} {path}: {e}")
                    status, answer = e.status, {"errorMessages": [str(e)]}
                except (ValueError, KeyError, TypeError) as e:
                    with mocks.lock:
                        mocks.problems.append(f"{vendor} {self.command} {path}: {e!r}")
                    status, answer = 400, {"error": repr(e)}
                mocks._record(vendor, self.command, path, status)
                self._answer(status, answer)

            def _answer(self, status, answer, headers=None):
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler

    def _record(self, vendor, method, path, status):
        with self.lock:
            self.log.append((vendor, method, path, status))

    # ------------------------------------------------------------ Jira --

    @staticmethod
    def _adf_text(doc, what):
        need(isinstance(doc, dict) and doc.get("type") == "doc" and doc.get("version") == 1,
             f"{what}: v3 wants an Atlassian Document Format doc, got {str(doc)[:80]}")
        need(isinstance(doc.get("content"), list) and doc["content"], f"{what}: empty doc")
        lines = []
        for block in doc["content"]:
            need(block.get("type") == "paragraph", f"{what}: block {block.get('type')}")
            for node in block.get("content", []):
                need(node.get("type") == "text" and isinstance(node.get("text"), str) and
                     node["text"], f"{what}: text nodes must have non-empty text")
                lines.append(node["text"])
        return "\n".join(lines)

    def _jira(self, method, path, q, body, headers):
        auth = headers.get("Authorization", "")
        need(auth.startswith("Basic ") or auth.startswith("Bearer "), "no credentials", 401)
        m = re.match(r"^/rest/api/([23])/(.*)$", path)
        need(m, f"not a REST v2/v3 path: {path}", 404)
        version, rest = m.group(1), m.group(2)

        def text(v, what):
            if version == "3":
                return self._adf_text(v, what)
            need(isinstance(v, str), f"{what}: v2 wants a string")
            return v

        if method == "GET" and rest in ("search", "search/jql"):
            need((rest == "search") == (version == "2"),
                 "v3 searches at /rest/api/3/search/jql, v2 at /rest/api/2/search", 410)
            jql = q.get("jql", [""])[0]
            pm = re.search(r'project = "([^"]+)"', jql)
            lm = re.search(r'labels = "(ALERT\{[0-9a-f]{64}\})"', jql)
            need(pm and lm, f"JQL does not name a project and an ALERT{{hash}} label: {jql!r}")
            found = [i for i in self.jira.values()
                     if i["project"] == pm.group(1) and lm.group(1) in i["labels"]]
            found.sort(key=lambda i: (i["done"], -i["id"]))
            issues = [{"id": str(i["id"]), "key": i["key"],
                       "fields": {"status": {"name": "Done" if i["done"] else "Open",
                                             "statusCategory": {
                                                 "key": "done" if i["done"] else "new"}}}}
                      for i in found[:int(q.get("maxResults", ["50"])[0])]]
            if version == "2":
                return 200, {"startAt": 0, "maxResults": 2, "total": len(found), "issues": issues}
            return 200, {"issues": issues, "isLast": True}
        if method == "POST" and rest == "issue":
            f = body["fields"]
            need(isinstance(f.get("project"), dict) and f["project"].get("key"), "no project.key")
            need(isinstance(f.get("issuetype"), dict) and f["issuetype"].get("name"),
                 "no issuetype.name")
            need(isinstance(f.get("summary"), str) and 0 < len(f["summary"]) <= 255,
                 "summary must be 1-255 characters")
            need("\n" not in f["summary"], "summary must be one line")
            labels = f.get("labels", [])
            need(all(isinstance(x, str) and x and " " not in x for x in labels),
                 f"labels cannot hold spaces: {labels}")
            n = len(self.jira) + 1
            key = f"{f['project']['key']}-{n}"
            self.jira[key] = {"id": 10000 + n, "key": key, "project": f["project"]["key"],
                              "summary": f["summary"], "labels": labels,
                              "description": text(f.get("description", ""), "description")
                              if f.get("description") else "",
                              "priority": (f.get("priority") or {}).get("name"),
                              "done": False, "comments": [], "transitions": []}
            return 201, {"id": str(10000 + n), "key": key,
                         "self": f"{self.url}/jira/rest/api/{version}/issue/{10000 + n}"}
        m = re.match(r"^issue/([A-Z][A-Z0-9]*-\d+)/(comment|transitions)$", rest)
        need(m, f"unknown Jira resource {path}", 404)
        issue = self.jira.get(m.group(1))
        need(issue, f"issue {m.group(1)} does not exist", 404)
        if m.group(2) == "comment":
            need(method == "POST", "comments are POSTed", 405)
            issue["comments"].append(text(body["body"], "comment body"))
            return 201, {"id": str(len(issue["comments"]))}
        if method == "GET":
            return 200, {"transitions": [
                {"id": "31", "name": "Done", "to": {"statusCategory": {"key": "done"}}},
                {"id": "11", "name": "Reopen", "to": {"statusCategory": {"key": "new"}}}]}
        tid = body["transition"]["id"]
        need(tid in ("31", "11"), f"unknown transition id {tid}")
        issue["done"] = tid == "31"
        issue["transitions"].append("Done" if tid == "31" else "Reopen")
        return 204, None

    # ---------------------------------------------------------- GitHub --

    def _github(self, method, path, q, body, headers):
        need(headers.get("Authorization", "").startswith("Bearer "), "no token", 401)
        need(headers.get("Accept") == "application/vnd.github+json",
             "Accept must be application/vnd.github+json")
        need(headers.get("User-Agent"), "GitHub requires a User-Agent", 403)
        need(headers.get("X-GitHub-Api-Version"), "no X-GitHub-Api-Version")
        m = re.match(r"^/repos/([^/]+)/([^/]+)/issues(?:/(\d+)(/comments)?)?$", path)
        need(m, f"unknown GitHub resource {path}", 404)
        number = int(m.group(3)) if m.group(3) else None
        if number is None and method == "GET":
            label = q.get("labels", [""])[0]
            state = q.get("state", ["open"])[0]
            found = [i for i in self.github.values() if label in i["labels"] and
                     (state == "all" or i["state"] == state)]
            found.sort(key=lambda i: -i["number"])
            return 200, [{"number": i["number"], "state": i["state"], "title": i["title"],
                          "labels": [{"name": x} for x in i["labels"]]} for i in found]
        if number is None:
            need(method == "POST", "issues are POSTed", 405)
            need(isinstance(body.get("title"), str) and body["title"], "title is required", 422)
            labels = body.get("labels", [])
            need(all(isinstance(x, str) and 0 < len(x) <= 50 for x in labels),
                 f"labels must be 1-50 characters: {labels}", 422)
            n = len(self.github) + 1
            self.github[n] = {"number": n, "state": "open", "title": body["title"],
                              "body": body.get("body", ""), "labels": labels, "comments": [],
                              "state_reasons": []}
            return 201, {"number": n, "state": "open", "html_url": f"{self.url}/issues/{n}"}
        issue = self.github.get(number)
        need(issue, f"issue {number} does not exist", 404)
        if m.group(4):
            need(method == "POST" and isinstance(body.get("body"), str) and body["body"],
                 "a comment needs a body", 422)
            issue["comments"].append(body["body"])
            return 201, {"id": len(issue["comments"])}
        need(method == "PATCH", "issues are updated with PATCH", 405)
        need(body.get("state") in ("open", "closed"), f"state {body.get('state')}", 422)
        need(body.get("state_reason") in (None, "completed", "not_planned", "reopened"),
             f"state_reason {body.get('state_reason')}", 422)
        issue["state"] = body["state"]
        issue["state_reasons"].append(body.get("state_reason"))
        return 200, {"number": number, "state": issue["state"]}

    # --------------------------------------------------------- Zendesk --

    def _zendesk(self, method, path, q, body, headers):
        import base64
        auth = headers.get("Authorization", "")
        need(auth.startswith("Basic "), "no credentials", 401)
        user = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
        need(user.endswith("/token"), f"API token auth is EMAIL/token, got {user!r}", 401)
        if method == "GET" and path == "/api/v2/search.json":
            query = q.get("query", [""])[0]
            tm = re.fullmatch(r"type:ticket tags:(alert_[0-9a-f]{64})", query)
            need(tm, f"search query {query!r}")
            found = sorted((t for t in self.zendesk.values() if tm.group(1) in t["tags"]),
                           key=lambda t: -t["id"])
            return 200, {"results": [{"id": t["id"], "status": t["status"], "tags": t["tags"],
                                      "result_type": "ticket"} for t in found],
                         "count": len(found)}
        if method == "POST" and path == "/api/v2/tickets.json":
            t = body["ticket"]
            need(isinstance(t.get("comment"), dict) and t["comment"].get("body"),
                 "ticket.comment.body is required", 422)
            need(t.get("type") in (None, "problem", "incident", "question", "task"),
                 f"type {t.get('type')}", 422)
            need(t.get("priority") in (None, "urgent", "high", "normal", "low"),
                 f"priority {t.get('priority')}", 422)
            need(all(re.fullmatch(r"[a-z0-9_:/-]+", x) for x in t.get("tags", [])),
                 f"tags {t.get('tags')}", 422)
            n = 100 + len(self.zendesk) + 1
            self.zendesk[n] = {"id": n, "status": "new", "subject": t.get("subject"),
                               "tags": t.get("tags", []), "comments": [t["comment"]["body"]],
                               "priority": t.get("priority"), "type": t.get("type")}
            return 201, {"ticket": {"id": n, "status": "new"}}
        m = re.fullmatch(r"/api/v2/tickets/(\d+)\.json", path)
        need(m and method == "PUT", f"unknown Zendesk resource {method} {path}", 404)
        t = self.zendesk.get(int(m.group(1)))
        need(t, "no such ticket", 404)
        need(t["status"] != "closed", "closed tickets cannot be updated", 422)
        upd = body["ticket"]
        need(upd.get("status") in (None, "new", "open", "pending", "hold", "solved", "closed"),
             f"status {upd.get('status')}", 422)
        if "comment" in upd:
            need(upd["comment"].get("body"), "comment.body is empty", 422)
            need(upd["comment"].get("public") in (True, False, None), "comment.public")
            t["comments"].append(upd["comment"]["body"])
        if upd.get("status"):
            t["status"] = upd["status"]
        return 200, {"ticket": {"id": t["id"], "status": t["status"]}}

    def zendesk_close(self, ticket_id):
        with self.lock:
            self.zendesk[ticket_id]["status"] = "closed"

    # ------------------------------------------------------ ServiceNow --

    def _servicenow(self, method, path, q, body, headers):
        need(headers.get("Authorization", "").startswith("Basic "), "no credentials", 401)
        m = re.fullmatch(r"/api/now/table/([a-z0-9_]+)(?:/([0-9a-f]{32}))?", path)
        need(m, f"not a Table API path: {path}", 404)
        table, sys_id = m.group(1), m.group(2)
        if method == "GET" and not sys_id:
            query = q.get("sysparm_query", [""])[0]
            cm = re.fullmatch(r"correlation_id=(usher:[0-9a-f]{64})\^ORDERBYDESCsys_created_on",
                              query)
            need(cm, f"sysparm_query {query!r}")
            found = sorted((r for r in self.servicenow.values()
                            if r["table"] == table and r["correlation_id"] == cm.group(1)),
                           key=lambda r: -r["seq"])
            limit = int(q.get("sysparm_limit", ["10000"])[0])
            fields = q.get("sysparm_fields", ["sys_id,number,state"])[0].split(",")
            return 200, {"result": [{f: r[f] for f in fields} for r in found[:limit]]}
        if method == "POST" and not sys_id:
            need(isinstance(body.get("short_description"), str) and body["short_description"],
                 "short_description is required")
            need(len(body.get("correlation_id", "")) <= 100, "correlation_id over 100")
            for k in ("urgency", "impact"):
                need(body.get(k) in (None, "1", "2", "3"), f"{k} {body.get(k)}")
            n = len(self.servicenow) + 1
            sid = f"{n:032x}"
            self.servicenow[sid] = {"sys_id": sid, "seq": n, "table": table,
                                    "number": f"INC{n:07d}", "state": "1",
                                    "correlation_id": body.get("correlation_id", ""),
                                    "short_description": body["short_description"],
                                    "description": body.get("description", ""),
                                    "urgency": body.get("urgency"), "work_notes": [],
                                    "close_code": None}
            r = self.servicenow[sid]
            return 201, {"result": {"sys_id": sid, "number": r["number"], "state": "1"}}
        need(sys_id and method in ("PATCH", "PUT"), f"unknown request {method} {path}", 405)
        r = self.servicenow.get(sys_id)
        need(r, "no such record", 404)
        state = body.get("state")
        need(state in (None, "1", "2", "3", "6", "7", "8"), f"state {state}")
        if state == "6":
            need(body.get("close_code") and body.get("close_notes"),
                 "resolving needs close_code and close_notes (data policy)", 403)
            r["close_code"] = body["close_code"]
        if body.get("work_notes"):
            r["work_notes"].append(body["work_notes"])
        if state:
            r["state"] = state
        return 200, {"result": {"sys_id": sys_id, "state": r["state"]}}

    # --------------------------------------------------------- generic --

    def _ticket(self, method, path, q, body, headers):
        need(method in ("POST", "PUT"), f"method {method}", 405)
        self.generic.append({"method": method, "path": path, "body": body,
                             "authorization": headers.get("Authorization"),
                             "x_team": headers.get("X-Team")})
        return 200, {"ok": True}

    # ------------------------------------------------------------ state --

    def state(self):
        with self.lock:
            return {"jira": self.jira, "github": self.github, "zendesk": self.zendesk,
                    "servicenow": self.servicenow, "generic": self.generic,
                    "problems": list(self.problems)}


class _Control(BaseHTTPRequestHandler):
    """The wrapper's control endpoint, for a C test: GET /state, POST
    /inject {vendor, method, path, status, retry_after, drop, delay, times},
    POST /zendesk-close {id}."""
    mocks = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _reply(self, obj):
        data = json.dumps(obj, default=str).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._reply(self.mocks.state())

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path == "/inject":
            self.mocks.inject(body.pop("vendor"), **body)
        elif self.path == "/zendesk-close":
            self.mocks.zendesk_close(int(body["id"]))
        self._reply({"ok": True})


def main(argv):
    if not argv:
        print("usage: ticketmocks.py CMD [ARG...]", file=sys.stderr)
        return 2
    mocks = TicketMocks().start()
    _Control.mocks = mocks
    control = ThreadingHTTPServer(("127.0.0.1", 0), _Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    env = dict(__import__("os").environ, USHER_TICKET_MOCK=mocks.url,
               USHER_TICKET_MOCK_CONTROL=f"http://127.0.0.1:{control.server_address[1]}")
    try:
        rc = subprocess.run(argv, env=env, timeout=240, check=False).returncode
    except subprocess.TimeoutExpired:
        print(f"ticketmocks: {argv[0]} timed out", file=sys.stderr)
        rc = 1
    finally:
        control.shutdown()
        mocks.stop()
    if mocks.problems:
        print("ticketmocks: malformed requests:\n  " + "\n  ".join(mocks.problems),
              file=sys.stderr)
        rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
