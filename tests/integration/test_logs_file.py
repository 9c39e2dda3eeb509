"""usherd's file log sink and its event kinds: ECS lines in a file next to
stdout (the same events, the same ids), logrotate's move + SIGUSR1 (no event
lost or split between the old and the new file), text on stdout with ECS in
the file, and every event kind usherd emits here checked against the ECS
field definitions."""

import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import expect, free_port, main, start_usherd, wait_until  # noqa: E402
from logreceivers import ecs_check, shipped_events  # noqa: E402


def config(log_path, port, fmt="ecs"):
    return f"""\
logging:
  format: {fmt}
  sinks:
    - {{type: stdout}}
    - {{type: file, path: {log_path}}}
probes:
  - {{name: closed, type: http, url: "http://127.0.0.1:{port}/", interval: 500ms}}
"""


def file_events(path):
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            out.append(json.loads(line))  # every line must be whole JSON
    return out


def setup(h):
    return {}


def check_rotation_and_kinds(h, ctx):
    log = h.path("logs", "usherd.log")
    log.parent.mkdir()
    port = free_port()
    u = start_usherd(h, config(log, port), name="file")
    wait_until(lambda: any(e.get("event.action") == "probe-failed" for e in file_events(log)),
               20, "a probe-failed event in the file")
    u.config_path.write_text(config(log, port) + "  - {name: second, type: http, url: \"http://127.0.0.1:1/\"}\n")
    u.reload()
    wait_until(lambda: any(e.get("event.action") == "config-reload" for e in file_events(log)),
               20, "a config-reload event")
    u.config_path.write_text("probes: [{name: x, type: nosuch}]\n")
    u.reload()
    wait_until(lambda: any(e.get("event.action") == "config-invalid" for e in file_events(log)),
               20, "a config-invalid event")

    # logrotate: move, then SIGUSR1; events keep coming while it happens
    rotated = log.with_name("usherd.log.1")
    log.rename(rotated)
    u.reload()  # an event that still lands in the moved file
    time.sleep(0.3)
    u.proc.send(signal.SIGUSR1)
    wait_until(lambda: any(e.get("event.action") == "log-reopened" for e in file_events(log)),
               20, "a log-reopened event in the new file")
    u.config_path.write_text(config(log, port))
    u.reload()
    wait_until(lambda: sum(e.get("event.action") == "config-reload" for e in file_events(log)) >= 1,
               20, "events after the reopen in the new file")
    u.stop_checked()

    old, new = file_events(rotated), file_events(log)
    expect(old and new, f"{len(old)} events in the rotated file, {len(new)} in the new one")
    expect(new[0].get("event.action") == "log-reopened",
           f"the new file starts with {new[0].get('event.action')}, not log-reopened")
    stdout = shipped_events(u.proc.stdout())
    ids = [i for i, _, _ in stdout]
    in_files = [e["event.id"] for e in old + new]
    expect(in_files == ids, f"the files hold {len(in_files)} events, stdout {len(ids)}: "
                            f"rotation lost, split or reordered some")
    seqs = [e["event.sequence"] for e in old + new]
    expect(seqs == list(range(seqs[0], seqs[0] + len(seqs))), "event.sequence has gaps")
    ecs_check(h, old + new, ["listening", "started", "probe-failed", "config-reload",
                             "config-invalid", "log-reopened", "stopping", "stopped"])


def check_text_stdout_ecs_file(h, ctx):
    log = h.path("text", "usherd.log")
    log.parent.mkdir()
    u = start_usherd(h, config(log, free_port(), fmt="text"), name="text", log_format="text")
    wait_until(lambda: file_events(log), 20, "events in the file")
    u.stop_checked()
    out = u.proc.stdout()
    expect("event.action=listening" in out, f"stdout is not text: {out[:300]}")
    expect(not shipped_events(out), "JSON on stdout with --log-format text")
    events = file_events(log)
    expect(events and all("event.id" in e for e in events), "the file is not ECS")
    ecs_check(h, events, ["listening", "started"])


def check_recovery_event(h, ctx):
    # a probe that fails, then recovers: both transitions are logged
    import socket
    srv = socket.socket()
    port = free_port()
    log = h.path("rec", "usherd.log")
    log.parent.mkdir()
    u = start_usherd(h, config(log, port), name="recover")
    wait_until(lambda: any(e.get("event.action") == "probe-failed" for e in file_events(log)), 20,
               "probe-failed")
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    h.on_cleanup(srv.close)
    import threading

    def answer():
        srv.settimeout(0.2)
        while True:
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            c.close()
    threading.Thread(target=answer, daemon=True).start()
    wait_until(lambda: any(e.get("event.action") == "probe-recovered" for e in file_events(log)),
               20, "probe-recovered")
    u.stop_checked()
    fails = [e for e in file_events(log) if e.get("event.action") == "probe-failed"]
    expect(len(fails) == 1, f"repeated failures were not rate-limited: {len(fails)} events")
    ecs_check(h, file_events(log), ["probe-failed", "probe-recovered"])


if __name__ == "__main__":
    main("logs_file", setup, [check_rotation_and_kinds, check_text_stdout_ecs_file,
                              check_recovery_event])
