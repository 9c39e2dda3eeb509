"""Helpers for the alerting tests: a local webhook receiver that records
every notification, and a real Alertmanager (Debian's prometheus-alertmanager)
on free loopback ports, so usherd's pipeline can be checked against it."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import Fatal, free_port, http, tool, wait_until


class WebhookReceiver:
    """Records each POST: (path, parsed JSON body, monotonic time, headers)."""

    def __init__(self, h):
        self.lock = threading.Lock()
        self.got = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"_unparsable": body.decode("utf-8", "replace")}
                with receiver.lock:
                    receiver.got.append((self.path, doc, time.monotonic(), dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        h.on_cleanup(self.close)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path=None):
        with self.lock:
            return [g for g in self.got if path is None or g[0] == path]

    def clear(self):
        with self.lock:
            self.got.clear()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def start_alertmanager(h, config_text, name="alertmanager"):
    """A real Alertmanager with config_text, clustering off; returns its URL."""
    port = free_port()
    cfg = h.write(f"{name}.yml", config_text)
    data = h.path(f"{name}-data")
    data.mkdir(exist_ok=True)
    proc = h.spawn(name, [
        tool("prometheus-alertmanager"), f"--config.file={cfg}", f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        "--log.level=warn"])
    base = f"http://127.0.0.1:{port}"

    def ready():
        if not proc.alive():
            raise Fatal(f"alertmanager exited ({proc.popen.returncode}):\n{proc.tail()}")
        return http(f"{base}/-/ready", timeout=5).status == 200

    wait_until(ready, 60, "alertmanager to become ready")
    return base


def indent(text, n):
    pad = " " * n
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def notification_key(doc):
    """What must agree between two implementations for one notification:
    everything but externalURL."""
    d = dict(doc)
    d.pop("externalURL", None)
    return json.dumps(d, sort_keys=True)
