"""The textfile directory as backups use it: *.prom files re-exposed each
cycle with node_textfile_mtime_seconds; a malformed file gives
node_textfile_scrape_error 1 and one log line while the other files stay;
files replaced, fixed and removed are followed; promtool stays clean."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import expect, main, run, start_usherd, tool, wait_until  # noqa: E402

CONFIG = """\
global:
  scrape_interval: 1s
textfile_dir: {dir}
"""

BACKUP = """\
# HELP usher_backup_last_success_timestamp_seconds When the last backup of the target succeeded.
# TYPE usher_backup_last_success_timestamp_seconds gauge
usher_backup_last_success_timestamp_seconds{{target="main-db"}} {ts}
# HELP usher_backup_size_bytes Size of the last backup.
# TYPE usher_backup_size_bytes gauge
usher_backup_size_bytes{{target="main-db"}} 52428800
"""

DRILL = """\
# HELP usher_dr_drill_success Whether the last restore drill passed.
# TYPE usher_dr_drill_success gauge
usher_dr_drill_success{target="main-db"} 1
"""


def write_atomically(path, text):
    """How writers should drop files: a temp name, then rename."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.rename(tmp, path)


def setup(h):
    d = h.path("textfile")
    d.mkdir()
    write_atomically(d / "backup.prom", BACKUP.format(ts=1795000000))
    write_atomically(d / "drill.prom", DRILL)
    (d / "README").write_text("not a .prom file\n")
    u = start_usherd(h, CONFIG.format(dir=d))
    m = u.wait_runs(["textfile"], runs=1)
    return {"u": u, "m": m, "dir": d}


def samples(u, name, **labels):
    return u.metrics().find(name, **labels)


def check_files_exposed(h, ctx):
    m, d = ctx["m"], ctx["dir"]
    v = m.value("usher_backup_last_success_timestamp_seconds", target="main-db")
    expect(v == 1795000000, f"usher_backup_last_success_timestamp_seconds = {v}")
    expect(m.value("usher_dr_drill_success", target="main-db") == 1, "drill.prom not read")
    s = m.find("usher_backup_size_bytes")[0]
    expect(s.labels.get("job") == "textfile", f"textfile samples carry job=textfile: {s}")
    expect(m.helps.get("usher_backup_size_bytes") == "Size of the last backup.", "help kept")
    for name in ("backup.prom", "drill.prom"):
        path = d / name
        v = m.value("node_textfile_mtime_seconds", file=str(path))
        expect(v == int(path.stat().st_mtime), f"mtime of {name}: {v}, file says "
                                                f"{path.stat().st_mtime}")
    expect(not m.find("node_textfile_mtime_seconds", file=str(d / "README")),
           "only *.prom files are read")
    expect(m.value("node_textfile_scrape_error") == 0, "no error yet")


def check_malformed_file(h, ctx):
    u, d = ctx["u"], ctx["dir"]
    write_atomically(d / "broken.prom", "# TYPE half_written gauge\nhalf_written{a=\"1\" 5\n"
                                        "also_here 1\n")
    m = wait_until(lambda: (lambda m: m if m.value("node_textfile_scrape_error") == 1 else None)(
        u.metrics()), 20, "node_textfile_scrape_error 1")
    expect(not m.find("half_written") and not m.find("also_here"),
           "nothing of a malformed file is imported")
    expect(m.value("usher_dr_drill_success", target="main-db") == 1 and
           m.value("usher_backup_size_bytes", target="main-db") == 52428800,
           "the other files must stay")
    expect(not m.find("node_textfile_mtime_seconds", file=str(d / "broken.prom")),
           "no mtime for a file that failed")
    expect(m.value("probe_success", job="textfile") == 1, "a bad file is a measurement")
    # several more cycles: still one log line for it
    u.wait_runs(["textfile"], runs=int(sum(s.value for s in m.find(
        "usher_probe_runs_total", job="textfile"))) + 3, timeout=30)
    logged = [e for e in u.events() if e.get("event.action") == "textfile-failed" and
              e.get("file.path", "").endswith("broken.prom")]
    expect(len(logged) == 1, f"{len(logged)} log lines for the broken file, want 1: {logged}")
    expect("line 2:20:" in logged[0].get("error.message", ""),
           f"the log line names line:col: {logged[0]}")
    ctx["broken_fixed"] = False


def check_file_fixed_and_replaced(h, ctx):
    u, d = ctx["u"], ctx["dir"]
    write_atomically(d / "broken.prom", "# HELP half_written Now complete.\n"
                                        "# TYPE half_written gauge\nhalf_written{a=\"1\"} 5\n")
    write_atomically(d / "backup.prom", BACKUP.format(ts=1795003600))
    m = wait_until(lambda: (lambda m: m if m.value("node_textfile_scrape_error") == 0 and
                            m.value("usher_backup_last_success_timestamp_seconds",
                                    target="main-db") == 1795003600 else None)(u.metrics()),
                   20, "the fixed file read and the replaced one updated")
    expect(m.value("half_written", a="1") == 5, "the fixed file's sample")
    recovered = [e for e in u.events() if e.get("event.action") == "textfile-recovered"]
    expect(len(recovered) == 1, f"recovery logged once: {recovered}")


def check_conflicting_files(h, ctx):
    u, d = ctx["u"], ctx["dir"]
    write_atomically(d / "zz-other.prom",
                     "# TYPE usher_backup_size_bytes counter\nusher_backup_size_bytes 1\n"
                     "# HELP other_ok Fine.\n# TYPE other_ok gauge\nother_ok 1\n")
    m = wait_until(lambda: (lambda m: m if m.value("node_textfile_scrape_error") == 1 else None)(
        u.metrics()), 20, "node_textfile_scrape_error 1 for a type conflict")
    expect(m.types.get("usher_backup_size_bytes") == "gauge" and
           m.value("usher_backup_size_bytes", target="main-db") == 52428800 and
           len(m.find("usher_backup_size_bytes")) == 1,
           f"the first file's family wins: {m.find('usher_backup_size_bytes')}")
    expect(m.value("other_ok") == 1, "the rest of the conflicting file is read")
    (d / "zz-other.prom").unlink()


def check_file_removed(h, ctx):
    u, d = ctx["u"], ctx["dir"]
    (d / "drill.prom").unlink()
    m = wait_until(lambda: (lambda m: m if not m.find("usher_dr_drill_success") and
                            m.value("node_textfile_scrape_error") == 0 else None)(u.metrics()),
                   20, "a removed file's samples to go")
    expect(not m.find("node_textfile_mtime_seconds", file=str(d / "drill.prom")),
           "mtime of a removed file")


def check_promtool_clean(h, ctx):
    promtool = tool("promtool")
    body = ctx["u"].get("/metrics").body
    r = run([promtool, "check", "metrics"], input_bytes=body)
    out = (r.stdout + r.stderr).decode(errors="replace")
    expect(r.returncode == 0, f"promtool check metrics exited {r.returncode}:\n{out}")


if __name__ == "__main__":
    main("textfile", setup, [
        check_files_exposed, check_malformed_file, check_file_fixed_and_replaced,
        check_conflicting_files, check_file_removed, check_promtool_clean,
    ])
