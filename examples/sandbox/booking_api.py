#!/usr/bin/env python3
"""A throwaway local booking API (events, seats, holds, checkout) with
in-memory state, for usher's demo and tests. Standard library only."""

import argparse
import json
import random
import re
import signal
import sys
import socket
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "0.1.0"

EVENTS = [
    {"id": 1, "name": "The Usherettes - Live", "venue": "Old Town Hall", "starts_at": "2030-05-01T20:00:00Z"},
    {"id": 2, "name": "Swan Lake", "venue": "Royal Opera", "starts_at": "2030-06-12T19:30:00Z"},
    {"id": 3, "name": "Cup Final", "venue": "City Stadium", "starts_at": "2030-07-20T15:00:00Z"},
]
ROWS, SEATS_PER_ROW = "ABCD", 10
# upper bounds of booking_http_request_duration_seconds; the pack's latency
# SLOs (rules/booking-slo.yml) count requests under 0.25, 0.5 and 1 s
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Store:
    """All state, behind one lock: seats per event, holds and orders."""

    def __init__(self, hold_ttl):
        self.lock = threading.Lock()
        self.hold_ttl = hold_ttl
        self.seats = {e["id"]: {f"{r}{n}": "free" for r in ROWS for n in range(1, SEATS_PER_ROW + 1)}
                      for e in EVENTS}
        self.holds = {}   # hold_id -> {event_id, seat, expires_at (epoch), state}
        self.orders = {}  # order_id -> {hold_id, event_id, seat}
        self.requests = {}  # (method, route, code) -> count, for /metrics
        self.latency = {}  # (method, route) -> [count per LATENCY_BUCKETS bound..., sum, count]

    def expire_holds(self, now):
        """Releases seats whose holds ran out. Caller holds the lock."""
        for hold in self.holds.values():
            if hold["state"] == "active" and hold["expires_at"] <= now:
                hold["state"] = "expired"
                self.seats[hold["event_id"]][hold["seat"]] = "free"

    def event_summary(self, event):
        free = sum(1 for s in self.seats[event["id"]].values() if s == "free")
        return {**event, "seats_total": len(self.seats[event["id"]]), "seats_available": free}

    def hold(self, event_id, seat):
        with self.lock:
            now = time.time()
            self.expire_holds(now)
            seats = self.seats.get(event_id)
            if seats is None or seat not in seats:
                return 404, {"error": "no such event or seat"}
            if seats[seat] != "free":
                return 409, {"error": f"seat {seat} is {seats[seat]}"}
            hold_id = uuid.uuid4().hex
            seats[seat] = "held"
            self.holds[hold_id] = {"event_id": event_id, "seat": seat,
                                   "expires_at": now + self.hold_ttl, "state": "active"}
            return 201, self.hold_view(hold_id)

    def hold_view(self, hold_id):
        h = self.holds[hold_id]
        return {"hold_id": hold_id, "event_id": h["event_id"], "seat": h["seat"],
                "state": h["state"], "expires_at": iso(h["expires_at"])}

    def release(self, hold_id):
        with self.lock:
            self.expire_holds(time.time())
            hold = self.holds.get(hold_id)
            if hold is None:
                return 404, {"error": "no such hold"}
            if hold["state"] == "active":
                hold["state"] = "released"
                self.seats[hold["event_id"]][hold["seat"]] = "free"
            return 204, None

    def checkout(self, hold_id, dry_run=False):
        """Sells the held seat; with dry_run (a synthetic journey's checkout)
        only checks that it could, leaving the hold as it is."""
        with self.lock:
            self.expire_holds(time.time())
            hold = self.holds.get(hold_id)
            if hold is None:
                return 404, {"error": "no such hold"}
            if hold["state"] != "active":
                return 409, {"error": f"hold is {hold['state']}"}
            if dry_run:
                return 200, {"dry_run": True, "hold_id": hold_id, "event_id": hold["event_id"],
                             "seat": hold["seat"], "payable": True}
            hold["state"] = "checked_out"
            self.seats[hold["event_id"]][hold["seat"]] = "sold"
            order_id = uuid.uuid4().hex
            self.orders[order_id] = {"hold_id": hold_id, "event_id": hold["event_id"],
                                     "seat": hold["seat"]}
            return 200, {"order_id": order_id, **self.orders[order_id]}


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the store; every answer is JSON except /metrics."""

    server_version = f"booking-api/{VERSION}"
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY the
    # body waits for the client's delayed ACK (40 ms on Linux) on a
    # keep-alive connection
    disable_nagle_algorithm = True

    ROUTES = [  # method, pattern, handler name, route label for metrics
        ("GET", r"/health", "get_health", "/health"),
        ("GET", r"/metrics", "get_metrics", "/metrics"),
        ("GET", r"/api/events", "get_events", "/api/events"),
        ("GET", r"/api/events/(\d+)", "get_event", "/api/events/{id}"),
        ("GET", r"/api/events/(\d+)/seats", "get_seats", "/api/events/{id}/seats"),
        ("POST", r"/api/holds", "post_hold", "/api/holds"),
        ("GET", r"/api/holds/([0-9a-f]+)", "get_hold", "/api/holds/{id}"),
        ("DELETE", r"/api/holds/([0-9a-f]+)", "delete_hold", "/api/holds/{id}"),
        ("POST", r"/api/checkout", "post_checkout", "/api/checkout"),
        ("PUT", r"/admin/fail-rate", "put_fail_rate", "/admin/fail-rate"),
        ("PUT", r"/admin/faults", "put_fault", "/admin/faults"),
        ("DELETE", r"/admin/faults", "delete_faults", "/admin/faults"),
    ]

    @property
    def store(self):
        return self.server.store

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PUT(self):
        self.dispatch("PUT")

    def dispatch(self, method):
        self.started = time.monotonic()
        path, _, query = self.path.partition("?")
        self.query = urllib.parse.parse_qs(query)
        found = [(m, re.fullmatch(p, path), name, route) for m, p, name, route in self.ROUTES]
        found = [f for f in found if f[1]]
        if not found or not [f for f in found if f[0] == method]:
            # read what the client sent, or it would be taken for the next
            # request on a keep-alive connection
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
        if not found:
            return self.reply(404, {"error": f"no route for {path}"}, "other")
        mine = [f for f in found if f[0] == method]
        if not mine:
            return self.reply(405, {"error": f"{method} not allowed on {path}"}, found[0][3])
        _, match, name, route = mine[0]
        fault = self.server.faults.get(route) if not route.startswith("/admin/") else None
        if fault and self.inject(fault, route):
            return
        if self.server.delay:
            time.sleep(self.server.delay)
        if route not in ("/metrics", "/admin/fail-rate") and random.random() < self.server.fail_rate:
            body = {"status": "degraded", "checks": {"database": "timeout", "cache": "ok"}}
            return self.reply(503, body if route == "/health" else {"error": "injected failure"}, route)
        code, body = getattr(self, name)(*match.groups())
        self.reply(code, body, route)

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def reply(self, code, body, route):
        with self.store.lock:
            key = (self.command, route, code)
            self.store.requests[key] = self.store.requests.get(key, 0) + 1
            took = time.monotonic() - getattr(self, "started", time.monotonic())
            hist = self.store.latency.setdefault((self.command, route),
                                                 [0] * (len(LATENCY_BUCKETS) + 2))
            for i, bound in enumerate(LATENCY_BUCKETS):
                hist[i] += took <= bound
            hist[-2] += took
            hist[-1] += 1
        if isinstance(body, str):
            data, ctype = body.encode(), "text/plain; version=0.0.4; charset=utf-8"
        else:
            data, ctype = (json.dumps(body).encode() if body is not None else b""), "application/json"
        self.send_response(code)
        if data:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def inject(self, fault, route):
        """Misbehaves as fault says (see put_fault). Returns True when the
        request has been answered (or dropped) and nothing else should run."""
        kind = fault["fault"]
        if kind == "delay":
            time.sleep(fault["seconds"])
            return False
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if kind == "status":
            self.reply(fault["status"], {"error": "injected fault"}, route)
            return True
        self.close_connection = True
        try:
            if kind == "huge_body":
                # a valid JSON document of fault["bytes"] bytes, streamed
                size = fault["bytes"]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                chunk, sent = b" " * 65536, 2
                self.wfile.write(b"[")
                while sent < size:
                    n = min(len(chunk), size - sent)
                    self.wfile.write(chunk[:n])
                    sent += n
                self.wfile.write(b"]")
            elif kind == "drop":
                # announce a body, send a piece of it, and hang up
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self.wfile.write(b'{"order_id": "')
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client gave up first: that is the point of the fault
        return True

    # ---- handlers: each returns (status, body) ----

    def get_health(self):
        return 200, {"status": "ok", "version": VERSION,
                     "checks": {"database": "ok", "cache": "ok"}}

    def get_events(self):
        """All events, or with ?q= those whose name or venue contains it (any case)."""
        q = (self.query.get("q") or [""])[0].lower()
        with self.store.lock:
            self.store.expire_holds(time.time())
            return 200, {"events": [self.store.event_summary(e) for e in EVENTS
                                    if q in e["name"].lower() or q in e["venue"].lower()]}

    def get_event(self, event_id):
        event = next((e for e in EVENTS if e["id"] == int(event_id)), None)
        if event is None:
            return 404, {"error": "no such event"}
        with self.store.lock:
            return 200, self.store.event_summary(event)

    def get_seats(self, event_id):
        with self.store.lock:
            self.store.expire_holds(time.time())
            seats = self.store.seats.get(int(event_id))
            if seats is None:
                return 404, {"error": "no such event"}
            return 200, {"event_id": int(event_id),
                         "seats": [{"seat": s, "state": st} for s, st in seats.items()]}

    def post_hold(self):
        body = self.read_json()
        if not body or not isinstance(body.get("event_id"), int) or not isinstance(body.get("seat"), str):
            return 400, {"error": 'want {"event_id": <int>, "seat": "<row><number>"}'}
        return self.store.hold(body["event_id"], body["seat"])

    def get_hold(self, hold_id):
        with self.store.lock:
            self.store.expire_holds(time.time())
            if hold_id not in self.store.holds:
                return 404, {"error": "no such hold"}
            return 200, self.store.hold_view(hold_id)

    def delete_hold(self, hold_id):
        return self.store.release(hold_id)

    def post_checkout(self):
        body = self.read_json()
        if not body or not isinstance(body.get("hold_id"), str):
            return 400, {"error": 'want {"hold_id": "<id>"}'}
        return self.store.checkout(body["hold_id"], dry_run=body.get("dry_run") is True)

    def put_fail_rate(self):
        body = self.read_json()
        rate = body.get("fail_rate") if body else None
        if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            return 400, {"error": 'want {"fail_rate": <0..1>}'}
        self.server.fail_rate = float(rate)
        return 200, {"fail_rate": self.server.fail_rate}

    def put_fault(self):
        """Makes one route misbehave until DELETE /admin/faults, for tests and
        demos: {"route": "/api/checkout", "fault": "status", "status": 500},
        {"fault": "delay", "seconds": 5}, {"fault": "huge_body", "bytes": N}
        or {"fault": "drop"} (hang up in the middle of the body)."""
        body = self.read_json() or {}
        routes = {r for _, _, _, r in self.ROUTES}
        kind, route = body.get("fault"), body.get("route")
        fault = {"fault": kind}
        if route not in routes or route.startswith("/admin/"):
            return 400, {"error": f"route must be one of {sorted(r for r in routes if not r.startswith('/admin/'))}"}
        if kind == "status" and isinstance(body.get("status"), int) and 100 <= body["status"] <= 599:
            fault["status"] = body["status"]
        elif kind == "delay" and isinstance(body.get("seconds"), (int, float)) and body["seconds"] >= 0:
            fault["seconds"] = float(body["seconds"])
        elif kind == "huge_body" and isinstance(body.get("bytes"), int) and body["bytes"] >= 2:
            fault["bytes"] = body["bytes"]
        elif kind != "drop":
            return 400, {"error": 'want {"route": R, "fault": "status", "status": N} | "delay" with '
                                  '"seconds" | "huge_body" with "bytes" | "drop"'}
        self.server.faults[route] = fault
        return 200, {"faults": self.server.faults}

    def delete_faults(self):
        self.server.faults.clear()
        return 204, None

    def get_metrics(self):
        """The service's own metrics, as a booking service would expose them."""
        with self.store.lock:
            self.store.expire_holds(time.time())
            lines = ["# HELP booking_http_requests_total HTTP requests served.",
                     "# TYPE booking_http_requests_total counter"]
            for (method, route, code), n in sorted(self.store.requests.items()):
                lines.append(f'booking_http_requests_total{{method="{method}",route="{route}",'
                             f'code="{code}"}} {n}')
            active = sum(1 for h in self.store.holds.values() if h["state"] == "active")
            lines += ["# HELP booking_holds_active Seat holds not yet checked out, released or expired.",
                      "# TYPE booking_holds_active gauge", f"booking_holds_active {active}",
                      "# HELP booking_orders_total Orders checked out.",
                      "# TYPE booking_orders_total counter", f"booking_orders_total {len(self.store.orders)}"]
            lines += ["# HELP booking_http_request_duration_seconds Time to answer HTTP requests.",
                      "# TYPE booking_http_request_duration_seconds histogram"]
            for (method, route), hist in sorted(self.store.latency.items()):
                labels = f'method="{method}",route="{route}"'
                for bound, n in zip(LATENCY_BUCKETS, hist):
                    lines.append(f'booking_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {n}')
                lines += [f'booking_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {hist[-1]}',
                          f"booking_http_request_duration_seconds_sum{{{labels}}} {hist[-2]:.6f}",
                          f"booking_http_request_duration_seconds_count{{{labels}}} {hist[-1]}"]
        return 200, "\n".join(lines) + "\n"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8089, help="port (default 8089; 0 picks a free one)")
    p.add_argument("--fail-rate", type=float, default=0.0,
                   help="fraction 0..1 of API and /health requests answered 503 (for demos)")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    p.add_argument("--hold-ttl", type=float, default=120.0, help="seconds a seat hold lasts")
    p.add_argument("--seed", type=int, help="random seed, for repeatable failure injection")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)
    if not 0 <= args.fail_rate <= 1:
        p.error("--fail-rate must be between 0 and 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.seed is not None:
        random.seed(args.seed)
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True
    httpd.store = Store(args.hold_ttl)
    httpd.fail_rate, httpd.delay, httpd.verbose = args.fail_rate, args.delay, args.verbose
    httpd.faults = {}  # route -> fault, set by PUT /admin/faults
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())
    host, port = httpd.server_address[:2]
    print(f"booking API listening on http://{host}:{port}/", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
