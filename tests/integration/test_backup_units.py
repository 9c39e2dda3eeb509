"""deploy/usher-backup.{service,timer}, deploy/usher-drill.{service,timer}
and deploy/crontab.example: `systemd-analyze verify` accepts the units (with
ExecStart pointed at the built usher), the services are hardened oneshots,
the timers' calendars parse, and every command line in the units and the
crontab is one usher accepts (its --help succeeds)."""

import re
import shlex
import sys

from harness import SOURCE_DIR, Harness, expect, run, tool, usher_binary

DEPLOY = SOURCE_DIR / "deploy"
UNITS = ["usher-backup.service", "usher-backup.timer", "usher-drill.service",
         "usher-drill.timer"]
HARDENING = {"Type": "oneshot", "User": "usher", "NoNewPrivileges": "yes",
             "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
             "CapabilityBoundingSet": "", "MemoryDenyWriteExecute": "yes",
             "SystemCallFilter": "@system-service"}


def directives(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def accepted(usher, argv):
    """usher's own --help for the sub-command of argv exits 0, and argv
    names only options that --help lists."""
    words = argv[1:]
    sub = [w for w in words if not w.startswith("-")][:2 if words[0] in ("backup", "dr") else 1]
    r = run([usher, *sub, "--help"])
    expect(r.returncode == 0, f"usher {' '.join(sub)} --help: {r.returncode}")
    helptext = r.stdout.decode()
    for w in words:
        if w.startswith("--"):
            expect(w in helptext, f"{w} of {' '.join(argv)} is not in usher {' '.join(sub)} --help")


def main():
    usher = usher_binary("USHER", "usher")
    with Harness("backup-units") as h:
        for name in UNITS:
            text = (DEPLOY / name).read_text()
            h.write(name, text.replace("/usr/bin/usher", usher))
        r = run([tool("systemd-analyze"), "verify", "--man=no",
                 *[str(h.path(n)) for n in UNITS]])
        expect(r.returncode == 0 and not r.stderr.strip(),
               f"systemd-analyze verify: {r.stderr.decode()}{r.stdout.decode()}")
        for name in ("usher-backup.service", "usher-drill.service"):
            d = directives((DEPLOY / name).read_text())
            for k, v in HARDENING.items():
                expect(v in d.get(k, []), f"{name}: {k}={v} missing ({d.get(k)})")
            for line in d["ExecStart"]:
                argv = shlex.split(line)
                expect(argv[0] == "/usr/bin/usher", f"{name}: {line}")
                accepted(usher, argv)
        for name in ("usher-backup.timer", "usher-drill.timer"):
            d = directives((DEPLOY / name).read_text())
            expect(d.get("Persistent") == ["true"], f"{name}: Persistent=true")
            r = run([tool("systemd-analyze"), "calendar", d["OnCalendar"][0]])
            expect(r.returncode == 0, f"{name}: OnCalendar: {r.stderr.decode()}")
        cron = [line for line in (DEPLOY / "crontab.example").read_text().splitlines()
                if line.strip() and not line.startswith("#") and "=" not in line.split()[0]]
        expect(len(cron) == 5, f"crontab entries: {cron}")
        for line in cron:
            fields = line.split(None, 6)
            expect(fields[5] == "usher", f"crontab user column: {line}")
            argv = shlex.split(fields[6])
            expect(argv[0] == "usher", line)
            accepted(usher, argv)
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
