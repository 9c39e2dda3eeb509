"""usherd's elasticsearch log sink against a local _bulk receiver (two
nodes, round-robin) that validates every NDJSON request and injects 429s,
500s, partial per-item failures, 400 mapping errors, slow answers and
dropped connections; then the cluster goes down, usherd is restarted with a
non-empty spool, and the cluster comes back. Every event usherd printed on
stdout must arrive exactly once by _id (or sit in the dead-letter file with
its reason), in order per source, and conform to ECS. A small spool that
fills drops the oldest events, and counts them."""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import TIME_SCALE, expect, main, start_usherd, wait_until  # noqa: E402
from logreceivers import (BulkReceiver, BulkStore, ecs_check,  # noqa: E402
                          shipped_events)


class _FlapHandler(BaseHTTPRequestHandler):
    """Each path alternates 200 and 500, so every probe run of a probe
    pointed at it is a failure or a recovery: one log event per run."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        n = self.server.counts.get(self.path, 0)
        self.server.counts[self.path] = n + 1
        status = 500 if n % 2 == 0 else 200
        self.send_response(status)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def flapper(h):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FlapHandler)
    httpd.daemon_threads = True
    httpd.counts = {}
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()

    def close():
        httpd.shutdown()
        httpd.server_close()
    h.on_cleanup(close)
    return httpd.server_address[1]


def config(urls, flap_port=None, spool="64MiB", extra=""):
    probes = ""
    if flap_port:
        probes = "probes:\n" + "".join(
            f"  - {{name: flap{i}, type: http, url: \"http://127.0.0.1:{flap_port}/p{i}\", "
            f"interval: 300ms, timeout: 250ms}}\n" for i in range(4))
    return f"""\
global: {{external_labels: {{site: test-1}}}}
logging:
  level: info
  sinks:
    - {{type: stdout}}
    - type: elasticsearch
      url: {json.dumps(urls)}
      data_stream: logs-usher-test
      batch_max_bytes: 8KiB
      flush_interval: 200ms
      timeout: 1s
      max_backoff: 1s
      spool_max_bytes: {spool}
{extra}{probes}"""


BROKEN = "probes:\n" + "".join(f"  - {{name: b{i}, type: http, nosuchkey{i}: 1}}\n"
                               for i in range(150))


def metric(u, name, **labels):
    return u.metrics().value(name, **labels) or 0


def setup(h):
    return {"flap": flapper(h)}


def check_exactly_once_through_faults_and_restart(h, ctx):
    store = BulkStore()
    faults = ["ok", "429", "partial", "500", "ok", "slow:0.3", "drop", "partial", "dead",
              "drop-after", "slow:1.5", "ok", "partial", "503", "dead", "drop-after"]
    a = BulkReceiver(h, store, faults)
    b = BulkReceiver(h, store, faults)
    state = h.path("es-state")
    state.mkdir()
    u1 = start_usherd(h, config([a.url, b.url + "/"], ctx["flap"]), name="es-run1",
                      state_dir=state)
    wait_until(lambda: a.faults_left() == 0 and b.faults_left() == 0, 60,
               "the receivers' fault scripts to be used up")
    wait_until(lambda: len(store.ids()) >= 150, 60, "150 documents in the store")
    expect(a.requests > 0 and b.requests > 0,
           f"requests went to one node only (round-robin): {a.requests} and {b.requests}")
    m = u1.metrics()
    expect((m.value("usher_log_events_total", sink="elasticsearch", outcome="retried") or 0) > 0,
           "no retried events counted after 429s, 500s and dropped connections")
    expect((m.value("usher_log_events_total", sink="elasticsearch", outcome="dead_letter") or 0)
           >= 1, "no dead-lettered events counted after 400s")

    # the cluster goes down: events spool up; a burst of config-invalid
    # events makes the spool large
    a.mode = b.mode = "503"
    u1.config_path.write_text(BROKEN)
    u1.reload()
    wait_until(lambda: metric(u1, "usher_log_spool_bytes", sink="elasticsearch") > 20000, 30,
               "the spool to hold the events the cluster refuses")
    u1.stop_checked(limit=10)
    segs = sum(p.stat().st_size for p in (state / "logship" / "elasticsearch").glob("seg-*.log"))
    expect(segs > 20000, f"after stopping, the spool on disk holds only {segs} bytes")

    # restart with the spool full; the cluster comes back
    a.mode = b.mode = "ok"
    u2 = start_usherd(h, config([a.url, b.url]), name="es-run2", state_dir=state)
    sent = shipped_events(u1.proc.stdout())
    dead = dead_letters(state)
    want = {i for i, _, _ in sent} - dead.keys()

    def all_there():
        missing = want - store.ids()
        if missing:
            raise ValueError(f"{len(missing)} of {len(want)} events of run 1 missing")
        return True
    wait_until(all_there, 60, "every event of the first run in the store")
    u2.get("/metrics")
    time.sleep(1.5)  # run 2's own startup events follow at the next flush
    u2.stop_checked(limit=10)
    sent2 = shipped_events(u2.proc.stdout())
    sent_all = sent + sent2
    dead = dead_letters(state)

    expect(not store.problems, f"the receiver rejected requests: {store.problems[:5]}")
    ids = [i for i, _, _ in sent_all]
    expect(len(ids) == len(set(ids)), "usherd printed two events with one event.id")
    stored = store.ids()
    missing = [i for i in ids if i not in stored and i not in dead]
    expect(not missing, f"{len(missing)} of {len(ids)} events never arrived, e.g. {missing[:3]}")
    both = [i for i in dead if i in stored]
    expect(not both, f"events both stored and dead-lettered: {both[:3]}")
    extra = stored - set(ids)
    expect(not extra, f"the store has events usherd never printed: {list(extra)[:3]}")
    twice = {i: n for i, n in store.creates.items() if n != 1}
    expect(not twice, f"events created more than once: {twice}")
    for i, line, _ in sent_all:
        if i in stored:
            expect(store.raw[i] == line, f"event {i} differs from what stdout printed:\n"
                                         f"{store.raw[i]}\n{line}")
    expect(dead, "no event in the dead-letter file after 400s")
    for i, rec in dead.items():
        expect(rec.get("error.type") == "mapper_parsing_exception"
               and rec.get("http.response.status_code") == 400
               and rec.get("document", {}).get("event.id") == i,
               f"dead-letter record without its reason or document: {rec}")

    # in order per source: the first time each event was seen follows its
    # sequence, and run 2's sequences come after run 1's
    by_source = {}
    for i, _, ev in sent_all:
        by_source.setdefault((ev["service.name"], ev["host.hostname"]), []).append(
            (ev["event.sequence"], i))
    for source, evs in by_source.items():
        seqs = [s for s, _ in evs]
        expect(seqs == sorted(seqs) and len(set(seqs)) == len(seqs),
               f"{source}: event.sequence does not grow along stdout")
        seen = sorted((store.first_seen[i], s) for s, i in evs if i in store.first_seen)
        order = [s for _, s in seen]
        expect(order == sorted(order), f"{source}: events first reached the cluster out of "
                                       f"order: {order[:20]}")
    expect(min(e["event.sequence"] for _, _, e in sent2) >
           max(e["event.sequence"] for _, _, e in sent), "run 2's sequence restarted")

    docs = [store.docs[i] for i in ids if i in stored]
    ecs_check(h, docs, ["listening", "started", "probe-failed", "probe-recovered",
                        "config-invalid", "config-reload", "log-sink-failed",
                        "log-sink-recovered", "stopping", "stopped"])
    expect(store.paths == {"/logs-usher-test/_bulk"}, f"requests went to {store.paths}")


def dead_letters(state):
    out = {}
    path = state / "logship" / "elasticsearch" / "dead-letter.ndjson"
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            out[rec["event.id"]] = rec
    return out


def check_full_spool_drops_oldest(h, ctx):
    store = BulkStore()
    rx = BulkReceiver(h, store)
    rx.mode = "503"
    state = h.path("full-state")
    state.mkdir()
    u = start_usherd(h, config([rx.url], spool="256KiB"), name="es-full", state_dir=state)
    u.config_path.write_text(BROKEN)
    for _ in range(6):  # ~6 x 150 config-invalid events, well past 256 KiB
        u.reload()
        time.sleep(0.3 * TIME_SCALE)
    wait_until(lambda: metric(u, "usher_log_dropped_total", sink="elasticsearch",
                              reason="spool_full") > 0, 30, "events dropped from a full spool")
    spool = metric(u, "usher_log_spool_bytes", sink="elasticsearch")
    expect(spool <= 256 * 1024, f"usher_log_spool_bytes {spool} exceeds spool_max_bytes")
    dropped = metric(u, "usher_log_dropped_total", sink="elasticsearch", reason="spool_full")
    rx.mode = "ok"
    sent = shipped_events(u.proc.stdout())
    wait_until(lambda: metric(u, "usher_log_spool_bytes", sink="elasticsearch") == 0, 30,
               "the spool to empty once the cluster is back")
    u.stop_checked(limit=10)
    sent = shipped_events(u.proc.stdout())
    got = store.ids()
    lost = [n for n, (i, _, _) in enumerate(sent) if i not in got]
    kept = [n for n, (i, _, _) in enumerate(sent) if i in got]
    expect(lost, "nothing was lost although events were dropped")
    # drop-oldest: everything lost comes before the oldest kept event of the
    # burst (startup events before the outage may have been delivered)
    burst_kept = [n for n in kept if n > lost[0]]
    expect(not burst_kept or max(lost) < min(burst_kept),
           f"dropped events are not the oldest: lost {lost[-3:]}, kept {burst_kept[:3]}")
    expect(len(lost) >= dropped, f"{dropped} counted dropped but only {len(lost)} missing")


if __name__ == "__main__":
    main("logs_elasticsearch", setup,
         [check_exactly_once_through_faults_and_restart, check_full_spool_drops_oldest])
