"""deploy/usherd.service passes `systemd-analyze verify` and a security
review, and usherd speaks the Type=notify protocol the unit relies on."""

import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (SOURCE_DIR, TIME_SCALE, expect, main, run, start_usherd, tool,  # noqa: E402
                     usher_binary, wait_until)

UNIT = SOURCE_DIR / "deploy" / "usherd.service"
SYSUSERS = SOURCE_DIR / "deploy" / "usher.sysusers.conf"
# Exposure as `systemd-analyze security` scores it, in tenths: 2.0 is "OK".
MAX_EXPOSURE_TENTHS = 20

REQUIRED = {  # directive -> value it must have (None: present, any value)
    "Type": "notify", "NotifyAccess": "main", "WatchdogSec": None,
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "ExecStart": "/usr/bin/usherd --config /etc/usher/usher.yml",
    "User": "usher", "StateDirectory": "usher", "ProtectSystem": "strict", "ProtectHome": "yes",
    "NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
    "CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": "@system-service", "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes",
}


def directives(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def unit_copy(h):
    """The unit with ExecStart pointing at the built usherd, which verify
    needs to exist."""
    text = UNIT.read_text().replace("/usr/bin/usherd", usher_binary("USHERD", "usherd"))
    return h.write("usherd.service", text)


def setup(h):
    expect(UNIT.exists(), f"{UNIT} is missing")
    return {"analyze": tool("systemd-analyze")}


def check_verify(h, ctx):
    r = run([ctx["analyze"], "verify", unit_copy(h)], timeout=60)
    out = (r.stdout + r.stderr).decode(errors="replace")
    mine = [line for line in out.splitlines() if "usherd" in line]
    expect(r.returncode == 0 and not mine,
           f"systemd-analyze verify exited {r.returncode}:\n{out}")


def check_hardening_directives(h, ctx):
    d = directives(UNIT.read_text())
    wrong = [f"{k}={d.get(k)} (want {v!r})" for k, v in REQUIRED.items()
             if k not in d or (v is not None and v not in d[k])]
    expect(not wrong, "unit directives missing or weakened:\n  " + "\n  ".join(wrong))


def check_security_exposure(h, ctx):
    r = run([ctx["analyze"], "security", "--offline=yes", f"--threshold={MAX_EXPOSURE_TENTHS}",
             unit_copy(h)], timeout=60)
    out = (r.stdout + r.stderr).decode(errors="replace")
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", out)
    expect(r.returncode == 0 and level,
           f"exposure above {MAX_EXPOSURE_TENTHS / 10}: "
           f"{level.group(0) if level else out[-800:]}")


def check_sysusers(h, ctx):
    root = h.path("sysroot")
    root.mkdir()
    r = run([tool("systemd-sysusers"), "--dry-run", f"--root={root}", SYSUSERS])
    out = (r.stdout + r.stderr).decode(errors="replace")
    expect(r.returncode == 0 and "Creating user 'usher'" in out,
           f"systemd-sysusers --dry-run {SYSUSERS.name}: exit {r.returncode}:\n{out}")


class NotifySocket:
    """A stand-in for systemd's notify socket: collects sd_notify messages."""

    def __init__(self, h):
        self.path = h.path("notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic time, {key: value})
        self._stop = threading.Event()
        threading.Thread(target=self._recv, daemon=True).start()
        h.on_cleanup(self.close)

    def _recv(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def keys_seen(self):
        return [k for _, f in self.messages for k in f if k != "STATUS"]

    def count(self, key):
        return sum(1 for _, f in self.messages if key in f)

    def close(self):
        self._stop.set()
        self.sock.close()


def check_notify_protocol(h, ctx):
    notify = NotifySocket(h)
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    u = start_usherd(h, "probes: []\n", name="notify", env=env)
    wait_until(lambda: notify.count("READY"), 20, "READY=1 on the notify socket")
    # WATCHDOG_USEC=1s: systemd expects a ping at least every second.
    before = notify.count("WATCHDOG")
    time.sleep(2.5)
    pings = notify.count("WATCHDOG") - before
    expect(pings >= 2, f"{pings} WATCHDOG=1 pings in 2.5s with WATCHDOG_USEC=1s")
    ready_before = notify.count("READY")
    u.reload()
    wait_until(lambda: notify.count("RELOADING") and notify.count("READY") > ready_before, 20,
               "RELOADING=1 then READY=1 after SIGHUP")
    u.proc.send(signal.SIGTERM)
    expect(u.proc.wait(10 * TIME_SCALE) == 0, f"usherd exit status {u.proc.rc} after SIGTERM")
    expect(notify.count("STOPPING"), f"no STOPPING=1 before exit; saw {notify.keys_seen()}")
    status = [f["STATUS"] for _, f in notify.messages if "STATUS" in f]
    expect(status, "usherd never set STATUS=")


if __name__ == "__main__":
    main("systemd_unit", setup, [check_verify, check_hardening_directives, check_security_exposure,
                                 check_sysusers, check_notify_protocol])
