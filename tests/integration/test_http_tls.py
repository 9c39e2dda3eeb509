"""HTTPS probes against nginx with certificates made by openssl: a test CA,
an expired certificate, a self-signed one and mutual TLS."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Certs, expect, failure_reasons, free_port, main, start_nginx, start_usherd  # noqa: E402

SERVER = """\
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    {extra}
    location / {{ return 200 "tls ok\\n"; }}
  }}
"""

PROBE = """\
  - name: {name}
    type: http
    url: https://127.0.0.1:{port}/
    timeout: 1500ms
{tls}"""

# name -> (server, tls options, expected failure reason or None)
CASES = {
    "ca-ok": ("valid", {"ca_file": "{ca}"}, None),
    "ca-ok-server-name": ("valid", {"ca_file": "{ca}", "server_name": "localhost"}, None),
    "no-ca": ("valid", {}, "tls"),
    "expired": ("expired", {"ca_file": "{ca}"}, "tls"),
    "self-signed": ("selfsigned", {"ca_file": "{ca}"}, "tls"),
    "self-signed-insecure": ("selfsigned", {"insecure_skip_verify": "true"}, None),
    "expired-insecure": ("expired", {"insecure_skip_verify": "true"}, None),
    "mtls": ("mtls", {"ca_file": "{ca}", "cert_file": "{client_crt}", "key_file": "{client_key}"}, None),
    "mtls-no-client-cert": ("mtls", {"ca_file": "{ca}"}, "status"),
}


def tls_block(opts, paths):
    if not opts:
        return ""
    lines = [f"      {k}: {v.format(**paths)}" for k, v in opts.items()]
    return "    tls:\n" + "\n".join(lines) + "\n"


def setup(h):
    certs = Certs(h)
    ports = {s: free_port() for s in ("valid", "expired", "selfsigned", "mtls")}
    mtls = f"ssl_client_certificate {certs.ca_cert}; ssl_verify_client on;"
    servers = "".join([
        SERVER.format(port=ports["valid"], crt=certs.server[0], key=certs.server[1], extra=""),
        SERVER.format(port=ports["expired"], crt=certs.expired[0], key=certs.expired[1], extra=""),
        SERVER.format(port=ports["selfsigned"], crt=certs.selfsigned[0], key=certs.selfsigned[1],
                      extra=""),
        SERVER.format(port=ports["mtls"], crt=certs.server[0], key=certs.server[1], extra=mtls),
    ])
    start_nginx(h, servers, ports.values())
    paths = {"ca": certs.ca_cert, "client_crt": certs.client[0], "client_key": certs.client[1]}
    probes = "".join(PROBE.format(name=name, port=ports[server], tls=tls_block(opts, paths))
                     for name, (server, opts, _) in CASES.items())
    u = start_usherd(h, "global: {scrape_interval: 2s}\nprobes:\n" + probes)
    m = u.wait_runs(CASES, runs=1)
    return {"u": u, "m": m, "certs": certs}


def check_outcomes(h, ctx):
    m, wrong = ctx["m"], []
    for job, (_, _, reason) in CASES.items():
        success = m.value("probe_success", job=job)
        reasons = failure_reasons(m, job)
        want = [reason] if reason else []
        if success != (0.0 if reason else 1.0) or reasons != want:
            wrong.append(f"{job}: probe_success={success} reasons={reasons}, want "
                         f"probe_success={0 if reason else 1} reasons={want}")
    expect(not wrong, "wrong outcomes:\n  " + "\n  ".join(wrong))


def check_ssl_metrics(h, ctx):
    m, certs = ctx["m"], ctx["certs"]
    expect(m.value("probe_http_ssl", job="ca-ok") == 1, "probe_http_ssl{job=ca-ok} should be 1")
    want = certs.not_after(certs.server[0])
    got = m.value("probe_ssl_earliest_cert_expiry", job="ca-ok")
    expect(got is not None and abs(got - want) < 1.5,
           f"probe_ssl_earliest_cert_expiry{{job=ca-ok}}={got}, the certificate's notAfter is {want}")
    chain = m.value("probe_ssl_last_chain_expiry_timestamp_seconds", job="ca-ok")
    expect(chain is not None and chain > 0,
           f"probe_ssl_last_chain_expiry_timestamp_seconds{{job=ca-ok}}={chain}")
    versions = [s for s in m.find("probe_tls_version_info", job="ca-ok") if s.value == 1]
    expect(len(versions) == 1 and versions[0].labels.get("version", "").startswith("TLS 1."),
           f"probe_tls_version_info{{job=ca-ok}}: {versions}")


def check_expired_cert_reports_its_expiry(h, ctx):
    m, certs = ctx["m"], ctx["certs"]
    want = certs.not_after(certs.expired[0])
    got = m.value("probe_ssl_earliest_cert_expiry", job="expired-insecure")
    expect(got is not None and abs(got - want) < 1.5,
           f"probe_ssl_earliest_cert_expiry{{job=expired-insecure}}={got}, want {want} (2020-02-01)")


def check_insecure_still_reports_ssl(h, ctx):
    m = ctx["m"]
    expect(m.value("probe_http_ssl", job="self-signed-insecure") == 1,
           "probe_http_ssl{job=self-signed-insecure} should be 1")


if __name__ == "__main__":
    main("http_tls", setup, [check_outcomes, check_ssl_metrics,
                             check_expired_cert_reports_its_expiry, check_insecure_still_reports_ssl])
