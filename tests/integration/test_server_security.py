"""usherd's own server with TLS and bcrypt basic auth (exporter-toolkit's web
config): the right password gets /metrics, anything else gets 401."""

import base64
import socket
import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Certs, expect, http, main, run, start_usherd, tool  # noqa: E402

USER, PASSWORD = "grafana", "correct horse battery staple"

CONFIG = """\
server:
  tls: {{cert_file: {crt}, key_file: {key}}}
  basic_auth_users:
    {user}: "{hash}"
probes: []
"""


def bcrypt_hash(user, password):
    """A bcrypt hash ($2y$, cost 10) made by Apache's htpasswd."""
    r = run([tool("htpasswd"), "-nbBC", "10", user, password])
    expect(r.returncode == 0, f"htpasswd failed: {r.stderr.decode(errors='replace')}")
    line = r.stdout.decode().strip()
    expect(line.startswith(f"{user}:$2"), f"htpasswd gave no bcrypt hash: {line!r}")
    return line.split(":", 1)[1]


def auth(user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def setup(h):
    certs = Certs(h)
    cfg = CONFIG.format(crt=certs.server[0], key=certs.server[1], user=USER,
                        hash=bcrypt_hash(USER, PASSWORD))
    u = start_usherd(h, cfg, tls_ca=certs.ca_cert)
    return {"u": u, "certs": certs}


def check_right_password(h, ctx):
    r = ctx["u"].get("/metrics", headers=auth(USER, PASSWORD))
    expect(r.status == 200, f"right credentials: status {r.status}")
    expect(b"usher_build_info" in r.body, "no usher_build_info in the authenticated /metrics")


def check_no_credentials(h, ctx):
    r = ctx["u"].get("/metrics")
    expect(r.status == 401, f"no credentials: status {r.status}, want 401")
    challenge = r.headers.get("WWW-Authenticate", "")
    expect(challenge.lower().startswith("basic"), f"401 without a Basic challenge: {challenge!r}")
    expect(b"usher_build_info" not in r.body, "the 401 body leaks metrics")


def check_wrong_password_and_user(h, ctx):
    for user, password in ((USER, "wrong"), ("mallory", PASSWORD), (USER, ""), (USER, PASSWORD + "x")):
        r = ctx["u"].get("/metrics", headers=auth(user, password))
        expect(r.status == 401, f"user {user!r} with a wrong password: status {r.status}, want 401")


def check_tls_certificate(h, ctx):
    u, certs = ctx["u"], ctx["certs"]
    expect(u.url.startswith("https://"), f"usherd URL {u.url}")
    # The client trusts only the test CA: the handshake proves usherd serves
    # the configured certificate.
    ctxt = ssl.create_default_context(cafile=str(certs.ca_cert))
    with socket.create_connection(("127.0.0.1", u.port), timeout=10) as raw:
        with ctxt.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            cn = dict(x[0] for x in s.getpeercert()["subject"]).get("commonName")
            expect(cn == "server", f"usherd presented a certificate for {cn!r}, want 'server'")


def check_plain_http_refused(h, ctx):
    u = ctx["u"]
    try:
        r = http(f"http://127.0.0.1:{u.port}/metrics", headers=auth(USER, PASSWORD), timeout=5)
    except OSError:
        return  # the TLS server dropped a plain-text request: fine
    expect(r.status != 200 and b"usher_build_info" not in r.body,
           f"plain HTTP to the TLS port got {r.status} with metrics")


if __name__ == "__main__":
    main("server_security", setup, [check_right_password, check_no_credentials,
                                    check_wrong_password_and_user, check_tls_certificate,
                                    check_plain_http_refused])
