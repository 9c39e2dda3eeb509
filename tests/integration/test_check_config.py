"""`usher check-config` and `usherd --check`: exit 0 on valid files, exit 2
with file:line:col messages on broken ones; usherd refuses a bad config."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SOURCE_DIR, Certs, expect, main, run, usher_binary  # noqa: E402

HEAD = """\
global:
  scrape_interval: 15s
probes:
  - name: api
    type: http
    url: http://127.0.0.1:1/
"""
SECRET = "hunter2-do-not-print-me"

# name -> (file text, expected line, acceptable columns, words the message must contain)
BROKEN = {
    "unknown_key": (HEAD + "    colour: blue\n", 7, {5}, ["colour"]),
    "unknown_top_level_key": (HEAD.replace("global:", "globl:"), 1, {1}, ["globl"]),
    "bad_duration": (HEAD + "    interval: 15 seconds\n", 7, {5, 15}, ["15 seconds"]),
    "timeout_not_below_interval": (HEAD + "    interval: 5s\n    timeout: 10s\n", 8, {5, 14},
                                   ["timeout"]),
    "duplicate_name": (HEAD + "  - name: api\n    type: http\n    url: http://127.0.0.1:2/\n", 7,
                       {5, 11}, ["api"]),
    "wrong_type": (HEAD + "    follow_redirects: sometimes\n", 7, {5, 23}, ["follow_redirects"]),
    "unreadable_secret_file": (HEAD + '    bearer_token: "${file:/nonexistent/usher-token}"\n', 7,
                               {5, 19}, ["/nonexistent/usher-token"]),
    "unset_secret_env": (HEAD + '    basic_auth: {username: u, password: "${env:USHER_IT_UNSET}"}\n', 7,
                         {5, 17, 31, 41}, ["USHER_IT_UNSET"]),
    "unknown_probe_type": (HEAD.replace("type: http", "type: carrier-pigeon"), 5, {5, 11},
                           ["carrier-pigeon"]),
    "missing_url": (HEAD.replace("    url: http://127.0.0.1:1/\n", ""), 4, {3, 5}, ["url"]),
    "bad_regexp": (HEAD + '    fail_if_body_matches_regexp: ["(unclosed"]\n', 7, {5, 34, 35},
                   ["regexp"]),
    "bad_json_pointer": (HEAD + "    json: [{pointer: status, equals: ok}]\n", 7, {5, 12, 22},
                         ["pointer"]),
}


def diag_lines(path, stderr):
    """(line, col, message) of each "path:line:col: message" line."""
    pat = re.compile(rf"^{re.escape(str(path))}:(\d+):(\d+): (.+)$")
    return [(int(m.group(1)), int(m.group(2)), m.group(3))
            for m in map(pat.match, stderr.splitlines()) if m]


def check_file(argv_prefix, path, line, cols, words, env=None):
    r = run([*argv_prefix, path], env=env)
    err = r.stderr.decode(errors="replace")
    expect(r.returncode == 2, f"{path.name}: exit {r.returncode}, want 2; stderr:\n{err}")
    diags = diag_lines(path, err)
    expect(diags, f"{path.name}: no 'file:line:col: message' line on stderr:\n{err}")
    hit = [d for d in diags if d[0] == line and d[1] in cols]
    expect(hit, f"{path.name}: want a diagnostic at line {line}, column in {sorted(cols)}; got:\n{err}")
    msg = hit[0][2]
    missing = [w for w in words if w.lower() not in msg.lower()]
    expect(not missing, f"{path.name}: message {msg!r} does not mention {missing}")


def setup(h):
    files = {name: h.write(f"{name}.yml", text) for name, (text, *_) in BROKEN.items()}
    return {"usher": usher_binary("USHER", "usher"), "usherd": usher_binary("USHERD", "usherd"),
            "files": files}


def check_valid_files(h, ctx):
    minimal = h.write("minimal.yml", HEAD)
    for path in (minimal, SOURCE_DIR / "examples" / "usher.yml", SOURCE_DIR / "examples" / "demo.yml"):
        r = run([ctx["usher"], "check-config", path])
        expect(r.returncode == 0, f"usher check-config {path}: exit {r.returncode}:\n"
                                  f"{r.stderr.decode(errors='replace')}")
        expect(not r.stderr.strip(), f"usher check-config {path} wrote to stderr: {r.stderr!r}")


def check_sample_secret_probes(h, ctx):
    # examples/usher.yml keeps two probes commented out because their
    # secrets must exist; with the secrets in place they must be valid too.
    text = (SOURCE_DIR / "examples" / "usher.yml").read_text()
    marker = "then uncomment them.\n"
    expect(marker in text, "examples/usher.yml lost its commented secret probes")
    head, tail = text.split(marker, 1)
    tail = "\n".join(" " + line[3:] if line.startswith("  #") else line for line in tail.split("\n"))
    secrets = h.path("etc-usher")
    secrets.mkdir()
    for name in ("booking-api.token", "payments.password"):
        (secrets / name).write_text("s3cret\n")
    certs = Certs(h)
    (secrets / "tls").mkdir()
    for src, dst in ((certs.ca_cert, "internal-ca.crt"), (certs.client[0], "usher-client.crt"),
                     (certs.client[1], "usher-client.key")):
        (secrets / "tls" / dst).write_bytes(src.read_bytes())
    path = h.write("sample-full.yml", (head + marker + tail).replace("/etc/usher/", f"{secrets}/"))
    r = run([ctx["usher"], "check-config", path], env={"BOOKING_API_KEY": "k", "PATH": "/usr/bin:/bin"})
    out = r.stdout.decode(errors="replace")
    expect(r.returncode == 0 and "5 probes" in out,
           f"examples/usher.yml with its secret probes uncommented: exit {r.returncode}:\n"
           f"{out}{r.stderr.decode(errors='replace')}")


def check_broken_files(h, ctx):
    failures = []
    for name, (_, line, cols, words) in BROKEN.items():
        try:
            check_file([ctx["usher"], "check-config"], ctx["files"][name], line, cols, words)
        except Exception as e:  # collect them all: one report names every gap
            failures.append(str(e))
    expect(not failures, f"{len(failures)} of {len(BROKEN)} broken files misreported:\n\n" +
           "\n\n".join(failures))


def check_every_problem_reported_at_once(h, ctx):
    path = h.write("two.yml", HEAD + "    colour: blue\n    interval: 15 seconds\n")
    r = run([ctx["usher"], "check-config", path])
    lines = {d[0] for d in diag_lines(path, r.stderr.decode(errors="replace"))}
    expect(r.returncode == 2 and {7, 8} <= lines,
           f"two mistakes (lines 7 and 8) should both be reported: exit {r.returncode}, lines {sorted(lines)}")


def check_secret_never_echoed(h, ctx):
    path = h.write("secret.yml", HEAD + '    bearer_token: "${env:USHER_IT_SECRET}"\n'
                   + '    headers: {X-Api-Key: "${env:USHER_IT_SECRET}"}\n    colour: red\n')
    env = {"USHER_IT_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    for argv in ([ctx["usher"], "check-config"], [ctx["usherd"], "--check", "--config"]):
        r = run([*argv, path], env=env)
        out = (r.stdout + r.stderr).decode(errors="replace")
        expect(r.returncode == 2, f"{argv[-1]}: exit {r.returncode}, want 2")
        expect(SECRET not in out, f"{' '.join(map(str, argv))} printed the secret:\n{out}")


def check_missing_file(h, ctx):
    path = h.path("no-such-file.yml")
    r = run([ctx["usher"], "check-config", path])
    err = r.stderr.decode(errors="replace")
    expect(r.returncode == 2, f"missing file: exit {r.returncode}, want 2")
    expect(str(path) in err, f"missing file: stderr does not name it:\n{err}")


def check_usherd_check_flag(h, ctx):
    minimal = h.write("minimal-d.yml", HEAD)
    r = run([ctx["usherd"], "--check", "--config", minimal])
    expect(r.returncode == 0, f"usherd --check on a valid file: exit {r.returncode}:\n"
                              f"{r.stderr.decode(errors='replace')}")
    name = "timeout_not_below_interval"
    _, line, cols, words = BROKEN[name]
    check_file([ctx["usherd"], "--check", "--config"], ctx["files"][name], line, cols, words)


def check_usherd_refuses_bad_config(h, ctx):
    # Without --check usherd must exit 2 at once rather than start half-configured.
    for name in ("unknown_key", "unreadable_secret_file"):
        path = ctx["files"][name]
        r = run([ctx["usherd"], "--config", path, "--listen", "127.0.0.1:0",
                 "--state-dir", h.path("state")], timeout=30)
        out = r.stdout.decode(errors="replace")
        expect(r.returncode == 2, f"usherd --config {path.name}: exit {r.returncode}, want 2")
        expect('"listening"' not in out, f"usherd started listening on a bad config:\n{out}")
        expect(diag_lines(path, r.stderr.decode(errors="replace")) or str(path) in out,
               f"usherd did not say what is wrong with {path.name}")


if __name__ == "__main__":
    main("check_config", setup, [check_valid_files, check_sample_secret_probes, check_broken_files,
                                 check_every_problem_reported_at_once, check_secret_never_echoed,
                                 check_missing_file, check_usherd_check_flag,
                                 check_usherd_refuses_bad_config])
