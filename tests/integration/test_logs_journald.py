"""usherd's journald sink, end to end through sd_journal_send: usherd runs
in a private mount namespace (unshare) where /run is a directory of the
test's, whose systemd/journal/socket is a datagram socket the test reads
with journald's native protocol. Where no namespace can be made but
journald runs, journalctl -o json is read instead; with neither the test
fails (it is never skipped). Checks MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and
the ECS fields as uppercase fields against the same events on stdout."""

import json
import os
import shutil
import socket
import struct
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (TestFailure, Usherd, expect, free_port, main, run,  # noqa: E402
                     start_usherd, usher_binary, wait_until)
from logreceivers import shipped_events  # noqa: E402

CONFIG = """\
logging:
  sinks:
    - {{type: stdout}}
    - {{type: journald}}
probes:
  - {{name: closed, type: http, url: "http://127.0.0.1:{port}/", interval: 500ms}}
"""


def parse_native(data):
    """journald's native protocol: NAME=value\\n, or NAME\\n<u64 LE len>value\\n
    for values with newlines. Fields may repeat."""
    fields, i = [], 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            v = data[nl + 9:nl + 9 + n]
            expect(data[nl + 9 + n:nl + 10 + n] == b"\n", "binary field not ended by a newline")
            i = nl + 10 + n
        fields.append((k.decode(), v.decode()))
    return fields


class JournalSocket:
    def __init__(self, h):
        self.root = h.path("run")
        (self.root / "systemd" / "journal").mkdir(parents=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.root / "systemd" / "journal" / "socket"))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.entries = []
        self.problems = []
        self._stop = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        h.on_cleanup(self.close)

    def _read(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(64))
            except socket.timeout:
                continue
            except OSError:
                return
            if anc:
                self.problems.append("an entry came as a memfd; this listener reads datagrams")
                continue
            try:
                self.entries.append(parse_native(data))
            except (ValueError, struct.error, TestFailure) as e:
                self.problems.append(f"bad datagram: {e}: {data[:200]!r}")

    def close(self):
        self._stop.set()
        self.sock.close()


def can_unshare():
    tool_path = shutil.which("unshare")
    if not tool_path:
        return False
    r = run([tool_path, "--mount", "--propagation", "private", "true"], timeout=10)
    return r.returncode == 0


def setup(h):
    return {}


def start_in_namespace(h, js, cfg_text):
    cfg = h.write("jd.yml", cfg_text)
    state = h.path("jd-state")
    state.mkdir()
    usherd = usher_binary("USHERD", "usherd")
    script = f'mount --bind "$1" /run && shift && exec "$@"'
    argv = [shutil.which("unshare"), "--mount", "--propagation", "private", "sh", "-c", script,
            "sh", str(js.root), usherd, "--config", str(cfg), "--listen", "127.0.0.1:0",
            "--state-dir", str(state)]
    proc = h.spawn("usherd-jd", argv)
    u = Usherd(h, proc, cfg, "http", None)
    u.wait_listening()
    return u


def check_fields(h, ctx):
    port = free_port()
    if can_unshare():
        js = JournalSocket(h)
        u = start_in_namespace(h, js, CONFIG.format(port=port))
        wait_until(lambda: any(dict(e).get("EVENT_ACTION") == "probe-failed" for e in js.entries),
                   20, "a probe-failed entry on the journal socket")
        u.stop_checked()
        expect(not js.problems, f"journal socket: {js.problems[:3]}")
        entries = [dict(e) for e in js.entries]
    elif os.path.exists("/run/systemd/journal/socket") and shutil.which("journalctl"):
        u = start_usherd(h, CONFIG.format(port=port), name="usherd-jd")
        wait_until(lambda: any(e.get("EVENT_ACTION") == "probe-failed"
                               for e in via_journalctl(u)), 30, "a probe-failed journal entry")
        u.stop_checked()
        entries = via_journalctl(u)
    else:
        raise TestFailure("cannot test journald here: unshare --mount is not permitted and no "
                          "journald runs (run as root, or where systemd-journald runs)")
    stdout = shipped_events(u.proc.stdout())
    by_id = {e.get("EVENT_ID"): e for e in entries}
    expect(len(by_id) == len(entries), "two journal entries with one EVENT_ID")
    for i, _, ev in stdout:
        e = by_id.get(i)
        expect(e, f"event {i} ({ev['message']}) is not in the journal")
        expect(e["MESSAGE"] == ev["message"], f"MESSAGE {e['MESSAGE']!r} != {ev['message']!r}")
        want_prio = {"debug": "7", "info": "6", "warn": "4", "error": "3"}[ev["log.level"]]
        expect(e["PRIORITY"] == want_prio, f"PRIORITY {e['PRIORITY']} for {ev['log.level']}")
        expect(e["SYSLOG_IDENTIFIER"] == "usherd", f"SYSLOG_IDENTIFIER {e['SYSLOG_IDENTIFIER']}")
        expect(e["EVENT_SEQUENCE"] == str(ev["event.sequence"]), "EVENT_SEQUENCE differs")
        for key, val in ev.items():
            if key in ("@timestamp", "message", "event.category", "event.type", "event.id",
                       "event.sequence", "host.hostname", "host.name", "process.pid",
                       "service.version", "event.dataset"):
                continue
            name = key.replace(".", "_").replace("@", "").upper()
            want = ("true" if val else "false") if isinstance(val, bool) else str(val)
            expect(e.get(name) == want, f"{i}: {name}={e.get(name)!r}, want {want!r} ({key})")
    failed = next(e for e in entries if e.get("EVENT_ACTION") == "probe-failed")
    expect(failed.get("USHER_PROBE_NAME") == "closed" and failed.get("EVENT_OUTCOME") == "failure"
           and failed.get("EVENT_CATEGORY") == "web", f"probe-failed entry: {failed}")


def via_journalctl(u):
    """The entries usherd (by its pid) wrote, as journalctl -o json has them."""
    r = run([shutil.which("journalctl"), "-o", "json", "--no-pager", f"_PID={u.proc.pid}"])
    expect(r.returncode == 0, f"journalctl failed: {r.stderr.decode(errors='replace')}")
    out = []
    for line in r.stdout.decode().splitlines():
        e = json.loads(line)
        out.append({k: (v if isinstance(v, str) else str(v)) for k, v in e.items()})
    return out


if __name__ == "__main__":
    main("logs_journald", setup, [check_fields])
