"""email_configs, through a real usherd (alerts POSTed to /api/v2/alerts,
routed by a `to` label), against a real SMTP server (aiosmtpd, Debian's
python3-aiosmtpd) that requires STARTTLS and AUTH: the mail arrives over TLS,
authenticated, as multipart/alternative with a text and an HTML body from
the default e-mail templates, with templated headers; a wrong password is
refused once and not retried; a server that is down at first gets the mail
once it is up (network errors are retried)."""

import email
import email.policy
import logging
import ssl
import sys
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (Certs, TestFailure, expect, free_port, main, start_usherd,  # noqa: E402
                     wait_until)
from vendormocks import post_alerts, postable, queued  # noqa: E402

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError:  # a Python other than Debian's: use Debian's package
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword
    except ImportError as e:
        raise TestFailure(f"aiosmtpd not found ({e}): run scripts/install-deps.sh test") from e

warnings.filterwarnings("ignore", message="Session.login_data")
logging.getLogger("mail.log").setLevel(logging.ERROR)

USER, PASSWORD = "usher", "s3cret-pw"

CONFIG = """\
alerting:
  route:
    receiver: mail
    group_by: [alertname]
    group_wait: 100ms
    group_interval: 500ms
    repeat_interval: 1h
    routes:
      - {{matchers: ['to="badpass"'], receiver: badpass}}
      - {{matchers: ['to="later"'], receiver: later}}
  receivers:
    - name: mail
      email_configs:
        - to: 'On-call <oncall@booking.example>, sre@booking.example'
          from: usher@booking.example
          smarthost: 127.0.0.1:{port}
          auth_username: {user}
          auth_password: {password}
          tls_config: {{ca_file: {ca}}}
          headers:
            X-Service: '{{{{ .CommonLabels.service }}}}'
    - name: badpass
      email_configs:
        - to: oncall@booking.example
          from: usher@booking.example
          smarthost: 127.0.0.1:{port}
          auth_username: {user}
          auth_password: wrong
          tls_config: {{insecure_skip_verify: true}}
          send_resolved: true
    - name: later
      email_configs:
        - to: oncall@booking.example
          from: usher@booking.example
          smarthost: 127.0.0.1:{later_port}
          auth_username: {user}
          auth_password: {password}
          tls_config: {{ca_file: {ca}}}
"""


class Mailbox:
    def __init__(self):
        self.lock = threading.Lock()
        self.mails = []
        self.auth_attempts = []

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.mails.append({"from": envelope.mail_from, "rcpt": list(envelope.rcpt_tos),
                               "data": envelope.content, "tls": session.ssl is not None,
                               "auth": session.authenticated})
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER and \
            auth_data.password.decode() == PASSWORD
        with self.lock:
            self.auth_attempts.append((mechanism, ok))
        return AuthResult(success=ok, handled=False)  # failure: answer 535

    def count(self):
        with self.lock:
            return len(self.mails)


def start_smtp(h, certs, box, port):
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(certs.server[0]), str(certs.server[1]))
    ctl = Controller(box, hostname="127.0.0.1", port=port, tls_context=tls,
                     require_starttls=True, auth_required=True, auth_require_tls=True,
                     authenticator=box.authenticate)
    ctl.start()
    h.on_cleanup(ctl.stop)
    return ctl


def setup(h):
    certs = Certs(h)
    box = Mailbox()
    port, later_port = free_port(), free_port()
    start_smtp(h, certs, box, port)
    u = start_usherd(h, CONFIG.format(port=port, later_port=later_port, user=USER,
                                      password=PASSWORD, ca=certs.ca_cert))
    return {"box": box, "u": u, "certs": certs, "later_port": later_port}


def log_has(u, text):
    return any(text in e.get("message", "") for e in u.events())


def check_mail_over_starttls_with_auth(h, ctx):
    box, u = ctx["box"], ctx["u"]
    post_alerts(u, postable("SeatHoldsHigh", n=2))
    wait_until(lambda: box.count() >= 1, 30, "the mail")
    m = box.mails[0]
    expect(m["tls"] and m["auth"], f"delivered over STARTTLS and authenticated: {m}")
    expect(m["from"] == "usher@booking.example", m["from"])
    expect(sorted(m["rcpt"]) == ["oncall@booking.example", "sre@booking.example"], m["rcpt"])
    msg = email.message_from_bytes(m["data"], policy=email.policy.default)
    expect(msg["Subject"] == "[FIRING:2] SeatHoldsHigh (booking critical)", msg["Subject"])
    expect(msg["X-Service"] == "booking", f"templated header: {msg['X-Service']}")
    expect(msg["To"] == "On-call <oncall@booking.example>, sre@booking.example", msg["To"])
    expect(msg["Date"] and msg["Message-Id"], "Date and Message-Id")
    expect(msg.get_content_type() == "multipart/alternative", msg.get_content_type())
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    expect(set(parts) == {"text/plain", "text/html"}, f"parts: {list(parts)}")
    expect(parts["text/plain"].startswith("[FIRING:2] SeatHoldsHigh") and
           "instance = api-1:8080" in parts["text/plain"], parts["text/plain"][:400])
    expect(parts["text/html"].startswith("<!DOCTYPE html>") and
           "[2] Firing" in parts["text/html"] and "api-0:8080" in parts["text/html"],
           parts["text/html"][:400])
    # send_resolved defaults to false for e-mail
    post_alerts(u, postable("SeatHoldsHigh", status="resolved", n=2))
    wait_until(lambda: not [a for a in u.get("/api/v2/alerts").json()
                            if a["labels"]["alertname"] == "SeatHoldsHigh"
                            and a["status"]["state"] == "active"], 20, "the alerts to resolve")
    time.sleep(1.2)  # more than a group_interval: the resolved flush has happened
    wait_until(lambda: queued(u) == 0, 20, "the queue to empty")
    expect(box.count() == 1, "no mail for a resolved group by default")


def check_wrong_password_not_retried(h, ctx):
    box, u = ctx["box"], ctx["u"]
    before = len(box.auth_attempts)
    post_alerts(u, postable("BadPass", extra_labels={"to": "badpass"}))
    wait_until(lambda: len(box.auth_attempts) > before and queued(u) == 0, 30,
               "the refused login")
    wait_until(lambda: log_has(u, "badpass/email[0] refused, not retried"), 10,
               "the refusal in the log")
    time.sleep(1.5)  # longer than the first backoff: a (wrong) retry would show
    expect([ok for _, ok in box.auth_attempts[before:]] == [False],
           f"one refused login, no retry: {box.auth_attempts[before:]}")


def check_server_down_then_up(h, ctx):
    box, u = ctx["box"], ctx["u"]
    post_alerts(u, postable("Later", extra_labels={"to": "later"}))
    wait_until(lambda: log_has(u, "later/email[0] will be retried"), 20,
               "a retry while the server is down")
    expect(queued(u) == 1, "still pending while the server is down")
    before = box.count()
    start_smtp(h, ctx["certs"], box, ctx["later_port"])
    wait_until(lambda: box.count() == before + 1 and queued(u) == 0, 30,
               "the mail once the server is up")
    msg = email.message_from_bytes(box.mails[-1]["data"], policy=email.policy.default)
    expect(msg["Subject"].startswith("[FIRING:1] Later"), msg["Subject"])


if __name__ == "__main__":
    main("receiver_email", setup, [
        check_mail_over_starttls_with_auth, check_wrong_password_not_retried,
        check_server_down_then_up,
    ])
