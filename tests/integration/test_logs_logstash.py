"""usherd's logstash sink against a json_lines TCP receiver: ECS lines
arrive whole; when the receiver resets connections, usherd reconnects with
backoff and re-sends what was not acknowledged, so every event usherd
printed arrives (at least once; event.id makes repeats recognisable); a
receiver that is down for a while only fills the spool."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import expect, free_port, main, start_usherd, wait_until  # noqa: E402
from logreceivers import LinesReceiver, ecs_check, shipped_events  # noqa: E402


def config(port, probe_port):
    return f"""\
logging:
  sinks:
    - {{type: stdout}}
    - {{type: logstash, address: "127.0.0.1:{port}", flush_interval: 200ms, max_backoff: 1s,
        timeout: 2s}}
probes:
  - {{name: closed, type: http, url: "http://127.0.0.1:{probe_port}/", interval: 300ms}}
"""


def setup(h):
    return {}


def received(rx):
    with rx.lock:
        lines = list(rx.lines)
    out = []
    for line in lines:
        out.append(json.loads(line))  # a torn line would fail here
    return out


def check_reconnect_and_replay(h, ctx):
    rx = LinesReceiver(h)
    u = start_usherd(h, config(rx.port, free_port()), name="ls")
    wait_until(lambda: any(e.get("event.action") == "started" for e in received(rx)), 20,
               "the started event at the receiver")
    for _ in range(3):
        # the receiver aborts the connection: the sink notices, reconnects
        # with backoff, and sends again what was not acknowledged
        before = rx.connections
        rx.reset_all()
        u.reload()  # an event to send
        wait_until(lambda: rx.connections > before, 20, "a new connection after a reset")
        time.sleep(0.3)
    u.reload()
    time.sleep(0.5)
    u.stop_checked()
    sent = shipped_events(u.proc.stdout())
    got = received(rx)
    got_ids = [e.get("event.id") for e in got]
    missing = [i for i, _, _ in sent if i not in got_ids]
    expect(not missing, f"{len(missing)} of {len(sent)} events did not reach the receiver")
    firsts = []
    for i in got_ids:
        if i not in firsts:
            firsts.append(i)
    order = [i for i, _, _ in sent]
    expect(firsts == order[:len(firsts)], "events first arrived out of order")
    ecs_check(h, got, ["listening", "started", "probe-failed", "config-reload", "stopping"])


def check_receiver_down_then_up(h, ctx):
    port = free_port()
    u = start_usherd(h, config(port, free_port()), name="ls-down")
    wait_until(lambda: (u.metrics().value("usher_log_spool_bytes", sink="logstash") or 0) > 0,
               20, "events to wait in the spool while nothing listens")
    wait_until(lambda: (u.metrics().value("usher_log_events_total", sink="logstash",
                                          outcome="retried") or 0) > 0,
               20, "retries counted while the receiver is down")
    rx = LinesReceiver(h, port)  # the receiver comes up on that port
    wait_until(lambda: u.metrics().value("usher_log_spool_bytes", sink="logstash") == 0,
               30, "the spool to drain once the receiver is up")
    u.stop_checked()
    sent = shipped_events(u.proc.stdout())
    got = {e.get("event.id") for e in received(rx)}
    missing = [i for i, _, _ in sent if i not in got]
    expect(not missing, f"{len(missing)} of {len(sent)} events lost while the receiver was down")


def check_renamed_sink_spool_is_reported(h, ctx):
    """A sink renamed while its spool holds events: the events stay on disk,
    a warning names the directory, a gauge counts the bytes; naming the sink
    back delivers them."""
    port = free_port()
    probe_port = free_port()
    text = config(port, probe_port)
    u = start_usherd(h, text, name="ls-rename", config_name="ls-rename.yml")
    wait_until(lambda: (u.metrics().value("usher_log_spool_bytes", sink="logstash") or 0) > 0,
               20, "events waiting in the spool")
    renamed = text.replace("{type: logstash,", "{type: logstash, name: moved,")
    expect(renamed != text, "the config has the logstash sink to rename")
    Path(u.config_path).write_text(renamed)
    u.reload()
    orphan = wait_until(lambda: u.metrics().value("usher_log_spool_orphaned_bytes",
                                                   sink="logstash"), 20,
                        "usher_log_spool_orphaned_bytes for the old name")
    expect(orphan > 0, f"orphaned bytes: {orphan}")
    warned = [e for e in u.events() if e.get("event.action") == "log-spool-orphaned"]
    expect(warned and warned[0].get("usher.log.sink") == "logstash" and
           warned[0].get("file.directory", "").endswith("/logship/logstash"),
           f"the warning names the sink and its directory: {warned}")
    Path(u.config_path).write_text(text)
    u.reload()
    wait_until(lambda: u.metrics().value("usher_log_spool_orphaned_bytes",
                                         sink="logstash") is None, 20,
               "no orphan once the sink has its name back")
    rx = LinesReceiver(h, port)
    # listening and started went to the first sink's spool; what was logged
    # while the sink was called "moved" stays in moved's spool
    first = [i for i, _, e in shipped_events(u.proc.stdout())
             if e.get("event.action") in ("listening", "started")]
    expect(len(first) == 2, f"events numbered before the rename: {first}")
    wait_until(lambda: all(i in {e.get("event.id") for e in received(rx)} for i in first),
               30, "the events from before the rename delivered")
    u.stop_checked()


if __name__ == "__main__":
    main("logs_logstash", setup, [check_reconnect_and_replay, check_receiver_down_then_up,
                                  check_renamed_sink_spool_is_reported])
