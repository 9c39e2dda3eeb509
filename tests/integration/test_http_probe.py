"""HTTP probe outcomes against a real nginx: success, wrong status, body and
header regexes, JSON assertions, auth, redirects, refused connections and
oversize bodies, each with blackbox's metrics and usher's failure reason."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (expect, failure_reasons, free_port, main, runs_total,  # noqa: E402
                     start_nginx, start_usherd)

PASSWORD = "s3cret-booking-pw-7731"
TOKEN = "tok-booking-0b5e8f"
JSON_DOC = '{"status":"ok","checks":{"db":"ok","cache":"ok"},"count":3,"version":"1.4.2"}'

SERVER = """\
  server {{
    listen 127.0.0.1:{port};
    root {www};
    location = /ok {{ return 200 "booking ok\\n"; }}
    location = /down {{ return 503 "down for maintenance\\n"; }}
    location = /json {{ default_type application/json; return 200 '{json}'; }}
    location = /big {{ }}
    location /private/ {{ auth_basic "usher"; auth_basic_user_file {htpasswd}; }}
    location = /token {{
      if ($http_authorization != "Bearer {token}") {{ return 401; }}
      return 200 "token ok\\n";
    }}
    location = /maintenance {{ add_header X-Booking-Mode maintenance; return 200 "ok\\n"; }}
    location = /redirect {{ return 302 /ok; }}
    location = /post {{
      if ($request_method != POST) {{ return 405; }}
      return 200 "posted\\n";
    }}
  }}
"""

CONFIG = """\
global:
  scrape_interval: 2s
probes:
  - name: ok
    type: http
    url: {base}/ok
    timeout: 1500ms
    labels: {{team: booking}}
    valid_status_codes: [200]
    fail_if_body_not_matches_regexp: ["booking ok"]
  - name: wrong-status
    type: http
    url: {base}/down
    timeout: 1500ms
  - name: status-allowed
    type: http
    url: {base}/down
    timeout: 1500ms
    valid_status_codes: [503]
  - name: body-matches
    type: http
    url: {base}/ok
    timeout: 1500ms
    fail_if_body_matches_regexp: ["booking"]
  - name: body-not-matches
    type: http
    url: {base}/ok
    timeout: 1500ms
    fail_if_body_not_matches_regexp: ["sold out"]
  - name: json-ok
    type: http
    url: {base}/json
    timeout: 1500ms
    json:
      - {{pointer: /status, equals: ok}}
      - {{pointer: /checks/db, exists: true}}
      - {{pointer: /count, type: number}}
      - {{pointer: /version, matches: "^1\\\\.[0-9]+"}}
  - name: json-fail
    type: http
    url: {base}/json
    timeout: 1500ms
    json:
      - {{pointer: /status, equals: degraded}}
  - name: header-fail
    type: http
    url: {base}/maintenance
    timeout: 1500ms
    fail_if_header_matches:
      - {{header: X-Booking-Mode, regexp: maintenance}}
  - name: refused
    type: http
    url: http://127.0.0.1:{closed}/
    timeout: 1500ms
  - name: too-large
    type: http
    url: {base}/big
    timeout: 1500ms
    body_size_limit: 64KiB
  - name: basic-auth
    type: http
    url: {base}/private/
    timeout: 1500ms
    basic_auth: {{username: booker, password: "${{env:USHER_IT_PROBE_PASSWORD}}"}}
  - name: basic-auth-missing
    type: http
    url: {base}/private/
    timeout: 1500ms
  - name: bearer
    type: http
    url: {base}/token
    timeout: 1500ms
    bearer_token: "${{file:{token_file}}}"
  - name: redirect
    type: http
    url: {base}/redirect
    timeout: 1500ms
  - name: redirect-not-followed
    type: http
    url: {base}/redirect
    timeout: 1500ms
    follow_redirects: false
  - name: post
    type: http
    url: {base}/post
    timeout: 1500ms
    method: POST
    headers: {{Content-Type: application/json}}
    body: '{{"event_id": 1}}'
"""

EXPECTED = {  # job -> failure reason, None for success
    "ok": None, "wrong-status": "status", "status-allowed": None,
    "body-matches": "regex", "body-not-matches": "regex", "json-ok": None,
    "json-fail": "json", "header-fail": "header", "refused": "connect",
    "too-large": "body_too_large", "basic-auth": None, "basic-auth-missing": "status",
    "bearer": None, "redirect": None, "redirect-not-followed": "status", "post": None,
}


def setup(h):
    www = h.path("www")
    (www / "private").mkdir(parents=True)
    (www / "private" / "index.html").write_text("members only\n")
    (www / "big").write_bytes(b"x" * (2 << 20))
    htpasswd = h.write("htpasswd", f"booker:{{PLAIN}}{PASSWORD}\n")
    port = free_port()
    start_nginx(h, SERVER.format(port=port, www=www, htpasswd=htpasswd, token=TOKEN,
                                 json=JSON_DOC), [port])
    # A port nothing listens on: bound by no one once the probe runs. Taken
    # from a closed listener so it stays unused for the test's short life.
    closed = free_port()
    token_file = h.write("token", TOKEN + "\n", mode=0o600)
    base = f"http://127.0.0.1:{port}"
    u = start_usherd(h, CONFIG.format(base=base, closed=closed, token_file=token_file),
                     env={"USHER_IT_PROBE_PASSWORD": PASSWORD})
    m = u.wait_runs(EXPECTED, runs=2)
    return {"u": u, "m": m, "instance": f"127.0.0.1:{port}", "closed": closed}


def check_outcomes(h, ctx):
    m, wrong = ctx["m"], []
    for job, reason in EXPECTED.items():
        success = m.value("probe_success", job=job)
        reasons = failure_reasons(m, job)
        want_success = 1.0 if reason is None else 0.0
        if success != want_success or reasons != ([reason] if reason else []):
            wrong.append(f"{job}: probe_success={success} reasons={reasons}, "
                         f"want probe_success={want_success:.0f} reasons={[reason] if reason else []}")
    expect(not wrong, "wrong outcomes:\n  " + "\n  ".join(wrong))


def check_success_never_flaps(h, ctx):
    m = ctx["m"]
    flaps = {job: m.find("usher_probe_runs_total", job=job, outcome="failure")
             for job, reason in EXPECTED.items() if reason is None}
    bad = {j: s[0].value for j, s in flaps.items() if s and s[0].value > 0}
    expect(not bad, f"probes that should always succeed failed some runs: {bad}")


def check_identity_labels(h, ctx):
    m, inst = ctx["m"], ctx["instance"]
    for s in m.samples:
        if s.name.startswith("probe_") or s.name.startswith("usher_probe_"):
            expect("job" in s.labels and "instance" in s.labels,
                   f"series without job/instance: {s}")
    ok = m.find("probe_success", job="ok")
    expect(ok and ok[0].labels.get("instance") == inst,
           f"probe_success{{job=ok}} should have instance={inst}: {ok}")
    expect(ok[0].labels.get("team") == "booking", f"probe label team=booking missing: {ok}")
    refused = m.find("probe_success", job="refused")
    expect(refused and refused[0].labels["instance"] == f"127.0.0.1:{ctx['closed']}",
           f"instance of the refused probe: {refused}")


def check_blackbox_metrics_on_success(h, ctx):
    m = ctx["m"]
    expect(m.value("probe_http_status_code", job="ok") == 200,
           f"probe_http_status_code{{job=ok}}: {m.find('probe_http_status_code', job='ok')}")
    expect(m.value("probe_http_content_length", job="ok") == len("booking ok\n"),
           f"probe_http_content_length{{job=ok}}: {m.find('probe_http_content_length', job='ok')}")
    expect(m.value("probe_http_ssl", job="ok") == 0, "probe_http_ssl{job=ok} should be 0")
    expect(m.value("probe_failed_due_to_regex", job="ok") == 0,
           "probe_failed_due_to_regex{job=ok} should be 0")
    d = m.value("probe_duration_seconds", job="ok")
    expect(d is not None and 0 < d < 1.5, f"probe_duration_seconds{{job=ok}}={d}")
    phases = {s.labels.get("phase") for s in m.find("probe_http_duration_seconds", job="ok")}
    want = {"resolve", "connect", "tls", "processing", "transfer"}
    expect(want <= phases, f"probe_http_duration_seconds phases {sorted(phases)}, want {sorted(want)}")
    v = m.value("probe_http_version", job="ok")
    expect(v in (1.0, 1.1), f"probe_http_version{{job=ok}}={v}")
    expect(m.value("probe_http_redirects", job="redirect") == 1,
           f"probe_http_redirects{{job=redirect}}: {m.find('probe_http_redirects', job='redirect')}")
    expect(m.value("probe_http_status_code", job="redirect") == 200,
           "a followed redirect should report the final status 200")
    expect(m.value("probe_http_status_code", job="redirect-not-followed") == 302,
           "an unfollowed redirect should report 302")


def check_blackbox_metrics_on_failure(h, ctx):
    m = ctx["m"]
    expect(m.value("probe_http_status_code", job="wrong-status") == 503,
           f"probe_http_status_code{{job=wrong-status}}: {m.find('probe_http_status_code', job='wrong-status')}")
    for job in ("body-matches", "body-not-matches"):
        expect(m.value("probe_failed_due_to_regex", job=job) == 1,
               f"probe_failed_due_to_regex{{job={job}}} should be 1")
    expect(m.value("probe_failed_due_to_regex", job="wrong-status") in (0, None),
           "probe_failed_due_to_regex must not be 1 for a status failure")
    code = m.value("probe_http_status_code", job="refused")
    expect(code in (0, None), f"probe_http_status_code of a refused connection: {code}")


def check_histogram_and_counters(h, ctx):
    m = ctx["m"]
    for job in EXPECTED:
        buckets = m.find("usher_probe_duration_seconds_bucket", job=job)
        count = m.value("usher_probe_duration_seconds_count", job=job)
        expect(buckets and count is not None, f"usher_probe_duration_seconds missing for {job}")
        inf = [b.value for b in buckets if b.labels.get("le") == "+Inf"]
        expect(inf == [count], f"{job}: +Inf bucket {inf} != _count {count}")
        values = [b.value for b in sorted(buckets, key=lambda b: float(b.labels["le"]))]
        expect(values == sorted(values), f"{job}: buckets not cumulative: {values}")
        expect(count == runs_total(m, job), f"{job}: histogram count {count} != runs "
               f"{runs_total(m, job)}")


def check_runs_repeat(h, ctx):
    u = ctx["u"]
    before = runs_total(ctx["m"], "ok")
    u.wait_runs(["ok"], runs=before + 2, timeout=30)


def check_failures_logged_once(h, ctx):
    # A target that keeps failing is logged once, then rate-limited.
    u = ctx["u"]
    m = u.wait_runs(["wrong-status"], runs=3, timeout=30)
    runs = runs_total(m, "wrong-status")
    logged = [e for e in u.events()
              if e.get("usher.probe.name") == "wrong-status" and e.get("event.action") == "probe-failed"]
    expect(len(logged) == 1, f"{len(logged)} probe-failed events for wrong-status over {runs:.0f} "
                             f"failed runs, want 1 (then rate-limited)")


def check_secrets_not_logged(h, ctx):
    u = ctx["u"]
    text = u.proc.stdout() + u.proc.stderr() + u.get("/metrics").text
    for secret in (PASSWORD, TOKEN):
        expect(secret not in text, f"a secret ({secret[:4]}…) appears in usherd's output or /metrics")


if __name__ == "__main__":
    main("http_probe", setup, [
        check_outcomes, check_success_never_flaps, check_identity_labels,
        check_blackbox_metrics_on_success, check_blackbox_metrics_on_failure,
        check_histogram_and_counters, check_runs_repeat, check_failures_logged_once,
        check_secrets_not_logged,
    ])
