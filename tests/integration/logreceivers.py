"""Test peers for usherd's log sinks: an Elasticsearch _bulk receiver that
validates the NDJSON strictly and injects faults (429s, 500s, partial
per-item failures, 400 mapping errors, slow answers, dropped connections),
a Logstash-like json_lines TCP receiver, and the ECS conformance check."""

import gzip
import json
import os
import socket
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import SOURCE_DIR, TestFailure, expect

ECS_FLAT = SOURCE_DIR.parent / "shared" / "conformance" / "ecs" / "ecs_flat.yml"


def _pairs_no_dups(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate keys: {keys}")
    return dict(pairs)


class BulkStore:
    """The "index": documents by _id (the first create wins, later ones get
    409), the order in which each _id was first seen in any request, and
    every validation problem found."""

    def __init__(self):
        self.lock = threading.Lock()
        self.docs = {}          # _id -> doc (dict)
        self.raw = {}           # _id -> doc line as sent
        self.first_seen = {}    # _id -> order number
        self.creates = {}       # _id -> number of 201s given
        self.problems = []
        self.requests = 0
        self.paths = set()

    def ids(self):
        with self.lock:
            return set(self.docs)


class _BulkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_POST(self):
        rx = self.server.rx
        store = rx.store
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        fault = rx.next_fault()
        with store.lock:
            store.requests += 1
            store.paths.add(self.path.split("?")[0])
        rx.requests += 1
        if fault == "drop":  # the connection dies before an answer
            self._drop()
            return
        if fault.startswith("slow:"):
            time.sleep(float(fault[5:]))
        if fault in ("429", "500", "503"):
            self._answer(int(fault), {"error": {"type": "injected", "reason": fault},
                                      "status": int(fault)})
            return
        try:
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            items = self._parse(body)
        except (ValueError, UnicodeDecodeError) as e:
            with store.lock:
                store.problems.append(f"{self.path}: {e}")
            self._answer(400, {"error": {"type": "parse_exception", "reason": str(e)},
                               "status": 400})
            return
        results = []
        for i, (doc_id, raw, doc) in enumerate(items):
            status, err = 201, None
            with store.lock:
                if doc_id not in store.first_seen:
                    store.first_seen[doc_id] = len(store.first_seen)
                if fault == "partial" and i % 3 == 1:
                    status, err = 429, "es_rejected_execution_exception"
                elif fault == "partial" and i % 3 == 2:
                    status, err = 500, "internal_server_error"
                elif fault == "dead" and i == 0 and doc_id not in store.docs:
                    status, err = 400, "mapper_parsing_exception"
                elif doc_id in store.docs:
                    status, err = 409, "version_conflict_engine_exception"
                else:
                    store.docs[doc_id] = doc
                    store.raw[doc_id] = raw
                    store.creates[doc_id] = store.creates.get(doc_id, 0) + 1
            item = {"_index": "logs", "_id": doc_id, "status": status}
            if err:
                item["error"] = {"type": err, "reason": f"injected {status}"}
            results.append({"create": item})
        if fault == "drop-after":  # stored, but the answer is lost
            self._drop()
            return
        self._answer(200, {"took": 1, "errors": any("error" in r["create"] for r in results),
                           "items": results})

    def _parse(self, body):
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("application/x-ndjson"):
            raise ValueError(f"Content-Type {ctype!r}, want application/x-ndjson")
        if not self.path.split("?")[0].endswith("/_bulk"):
            raise ValueError(f"path {self.path} is not a _bulk endpoint")
        text = body.decode("utf-8")
        if not text.endswith("\n"):
            raise ValueError("NDJSON body does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) % 2:
            raise ValueError(f"{len(lines)} lines: actions and documents must pair up")
        items = []
        for i in range(0, len(lines), 2):
            action = json.loads(lines[i], object_pairs_hook=_pairs_no_dups)
            if list(action) != ["create"] or list(action["create"]) != ["_id"]:
                raise ValueError(f"action {lines[i]!r}: want only create with an _id")
            doc = json.loads(lines[i + 1], object_pairs_hook=_pairs_no_dups)
            keys = list(doc)
            if keys[:3] != ["@timestamp", "log.level", "message"]:
                raise ValueError(f"document starts with {keys[:3]}")
            if doc.get("event.id") != action["create"]["_id"]:
                raise ValueError(f"_id {action['create']['_id']} is not the event.id "
                                 f"{doc.get('event.id')}")
            items.append((action["create"]["_id"], lines[i + 1], doc))
        return items


class BulkReceiver:
    """One node of the fake cluster. faults: a list of per-request faults
    taken in order ("ok", "429", "500", "503", "partial", "dead",
    "slow:<s>", "drop", "drop-after"); after the list, `mode` applies."""

    def __init__(self, h, store, faults=()):
        self.store = store
        self.faults = list(faults)
        self.mode = "ok"
        self.requests = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _BulkHandler)
        self.httpd.daemon_threads = True
        self.httpd.rx = self
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
        h.on_cleanup(self.close)

    def next_fault(self):
        with self._lock:
            return self.faults.pop(0) if self.faults else self.mode

    def faults_left(self):
        with self._lock:
            return len(self.faults)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class LinesReceiver:
    """A Logstash tcp input with codec json_lines: collects the lines of
    every connection; reset_all() aborts the live connections with a RST,
    dropping whatever they had in flight."""

    def __init__(self, h, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lines = []
        self.connections = 0
        self.live = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        h.on_cleanup(self.close)

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.live.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        conn.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            *complete, buf = (buf + data).split(b"\n")
            with self.lock:
                self.lines.extend(complete)
        with self.lock:
            if conn in self.live:
                self.live.remove(conn)
        conn.close()

    def reset_all(self):
        with self.lock:
            live, self.live = self.live, []
        for conn in live:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def close(self):
        self._stop.set()
        self.reset_all()
        self.sock.close()


def ecs_check(h, events, require_actions=()):
    """Runs tests/conformance/ecs_check over events (dicts, as sent);
    raises TestFailure with its report when any does not conform."""
    checker = os.environ.get("ECS_CHECK")
    expect(checker and os.access(checker, os.X_OK),
           "ecs_check not found: set ECS_CHECK (ctest does) to tests/ecs_check in the build")
    expect(ECS_FLAT.exists(), f"ECS field definitions not found at {ECS_FLAT}")
    path = h.path(f"ecs-check-{time.monotonic_ns()}.ndjson")
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    argv = [checker, str(ECS_FLAT)]
    if require_actions:
        argv += ["--require-actions", ",".join(require_actions)]
    r = subprocess.run(argv + [str(path)], capture_output=True, timeout=120)
    if r.returncode != 0:
        raise TestFailure(f"ECS conformance:\n{r.stderr.decode(errors='replace')[:4000]}")


def shipped_events(text):
    """The events of a stdout (ECS lines) that logship numbered, in order:
    (event.id, raw line, dict)."""
    out = []
    for line in text.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and "event.id" in ev:
            out.append((ev["event.id"], line, ev))
    return out
