"""Shared helpers for usher's integration tests: real servers on loopback and
free ports, temp dirs, and cleanup that runs even when a test fails or dies."""

import atexit
import ctypes
import gzip
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("USHER_SOURCE_DIR", Path(__file__).resolve().parents[2]))
# Deadlines are generous: the suite also runs under ASan on a small, busy box.
# USHER_TEST_TIME_SCALE stretches every wait_until deadline further.
TIME_SCALE = float(os.environ.get("USHER_TEST_TIME_SCALE", "1"))
KEEP_TEMP = os.environ.get("USHER_TEST_KEEP") == "1"


class TestFailure(Exception):
    """A check did not hold; the message says what was expected and seen."""


class Fatal(TestFailure):
    """A failure no amount of waiting mends (a server exited): wait_until
    passes it on at once instead of retrying."""


def expect(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_until(fn, timeout=30.0, what="condition", interval=0.1):
    """Calls fn until it returns something truthy and returns that; raises
    TestFailure after timeout seconds (scaled), naming what and the last
    value or error seen."""
    deadline = time.monotonic() + timeout * TIME_SCALE
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except Fatal:
            raise
        except (OSError, TestFailure, ValueError, KeyError) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            raise TestFailure(f"timed out after {timeout * TIME_SCALE:.0f}s waiting for {what}"
                              f" (last: {last!r})")
        time.sleep(interval)


# --------------------------------------------------------------- tools ----

def tool(name):
    """The path of a required external program. Missing tools fail the test
    (never skip it): scripts/install-deps.sh installs all of them."""
    path = shutil.which(name) or next(
        (f"{d}/{name}" for d in ("/usr/sbin", "/sbin", "/usr/bin") if os.access(f"{d}/{name}", os.X_OK)),
        None)
    if not path:
        raise TestFailure(f"{name} not found: run scripts/install-deps.sh test")
    return path


def usher_binary(env_name, program):
    """usherd or usher: from the environment ctest sets, else build/bin."""
    path = os.environ.get(env_name) or str(SOURCE_DIR / "build" / "bin" / program)
    if not os.access(path, os.X_OK):
        raise TestFailure(f"{program} not found at {path}: build first, or set {env_name}")
    return path


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def run(argv, timeout=60, env=None, input_bytes=None):
    """Runs a short command to completion; returns the CompletedProcess
    (stdout and stderr as bytes)."""
    return subprocess.run(argv, capture_output=True, timeout=timeout * TIME_SCALE, env=env,
                          input=input_bytes, check=False)


# ----------------------------------------------------------- processes ----

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    # If the harness is killed outright (ctest's timeout sends SIGKILL), the
    # kernel kills the child too, so no server outlives its test.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Proc:
    """A child process in its own process group, output going to files."""

    def __init__(self, name, argv, out_path, err_path, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.out_path = out_path
        self.err_path = err_path
        self.rc = None
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                          env=env, cwd=cwd, start_new_session=True,
                                          preexec_fn=_child_setup)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def send(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """The exit status, or None if still running after timeout seconds."""
        try:
            self.rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stops the whole group: sig, then SIGKILL after timeout. Returns
        the exit status (negative for a signal, as subprocess reports it)."""
        if self.alive():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            if self.wait(timeout * TIME_SCALE) is None:
                self.kill()
        else:
            self.rc = self.popen.returncode
        # Leftovers of the group (e.g. children of a shell) go too.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.rc

    def kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.rc = self.popen.wait()

    def stdout(self):
        return Path(self.out_path).read_text(errors="replace")

    def stderr(self):
        return Path(self.err_path).read_text(errors="replace")

    def tail(self, n=40):
        """The last lines of stdout and stderr, for failure reports."""
        parts = []
        for label, text in (("stdout", self.stdout()), ("stderr", self.stderr())):
            lines = text.splitlines()[-n:]
            if lines:
                parts.append(f"--- {self.name} {label} (last {len(lines)} lines) ---")
                parts.extend(lines)
        return "\n".join(parts)


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: UndefinedBehaviorSanitizer")


class Harness:
    """Owns a temp dir and everything a test starts. close() (also run at
    exit and on SIGTERM/SIGINT) stops servers in reverse order of start."""

    def __init__(self, name):
        self.name = name
        self.tmp = Path(tempfile.mkdtemp(prefix=f"usher-it-{name}-"))
        self._cleanups = []
        self._procs = []
        self.problems = []  # found while cleaning up: unclean exits, sanitizer reports
        self._closed = False
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, _exit_on_signal)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def path(self, *parts):
        return self.tmp.joinpath(*parts)

    def write(self, name, text, mode=0o644):
        p = self.path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
        p.chmod(mode)
        return p

    def on_cleanup(self, fn):
        self._cleanups.append(fn)

    def spawn(self, name, argv, env=None, cwd=None):
        proc = Proc(name, [str(a) for a in argv], self.path(f"{name}.out"),
                    self.path(f"{name}.err"), env=env, cwd=cwd)
        self._procs.append(proc)
        self.on_cleanup(proc.stop)
        return proc

    def logs(self):
        """Tails of every process's output, for a failure report."""
        return "\n".join(p.tail() for p in self._procs)

    def close(self):
        if self._closed:
            return
        self._closed = True
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception as e:  # cleanup must go on whatever happened
                print(f"cleanup: {e}", file=sys.stderr)
        for p in self._procs:
            report = next((m for m in SANITIZER_MARKERS if m in p.stderr()), None)
            if report:
                self.problems.append(f"{p.name}: sanitizer report ({report}):\n{p.tail(80)}")
        if KEEP_TEMP:
            print(f"kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _exit_on_signal(signum, _frame):
    # Turn the signal into SystemExit so finally blocks and close() run.
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------- HTTP ----

class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)


def http(url, method="GET", headers=None, data=None, timeout=10.0, context=None):
    """One HTTP request; never uses a proxy, never raises for a status.
    Connection errors raise OSError (URLError is one)."""
    handlers = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    if isinstance(data, (dict, list)):
        data = json.dumps(data).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    start = time.monotonic()
    try:
        with opener.open(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read(), time.monotonic() - start)
    except urllib.error.HTTPError as e:
        body = e.read() if e.fp else b""
        return Response(e.code, e.headers or Message(), body, time.monotonic() - start)


def tls_client_context(ca_file):
    """A client context that trusts only ca_file."""
    return ssl.create_default_context(cafile=str(ca_file))


# ------------------------------------------------------------- metrics ----

class Sample:
    def __init__(self, name, labels, value):
        self.name = name
        self.labels = labels
        self.value = value

    def __repr__(self):
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{inner}}} {self.value}"


class Metrics:
    """A parsed exposition: samples in order plus the HELP/TYPE metadata."""

    def __init__(self):
        self.samples = []
        self.types = {}
        self.helps = {}
        self.eof = False

    def find(self, name, **labels):
        return [s for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name, **labels):
        """The value of the one sample matching, None if there is none."""
        found = self.find(name, **labels)
        if len(found) > 1:
            raise TestFailure(f"{len(found)} samples match {name} {labels}: {found}")
        return found[0].value if found else None

    def jobs(self, name):
        return {s.labels.get("job") for s in self.samples if s.name == name}

    def duplicates(self):
        seen, dups = set(), []
        for s in self.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in seen:
                dups.append(s)
            seen.add(key)
        return dups


_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _parse_labels(line, i, lineno):
    labels = {}
    i += 1  # past "{"
    while True:
        if line[i] == "}":
            return labels, i + 1
        m = _LABEL_RE.match(line, i)
        if not m or line[m.end():m.end() + 2] != '="':
            raise TestFailure(f"exposition line {lineno}: bad label at column {i + 1}: {line!r}")
        name, i = m.group(0), m.end() + 2
        value = []
        while line[i] != '"':
            if line[i] == "\\":
                if line[i + 1] not in _ESCAPES:
                    raise TestFailure(f"exposition line {lineno}: bad escape: {line!r}")
                value.append(_ESCAPES[line[i + 1]])
                i += 2
            else:
                value.append(line[i])
                i += 1
        if name in labels:
            raise TestFailure(f"exposition line {lineno}: label {name} repeated: {line!r}")
        labels[name] = "".join(value)
        i += 1
        if line[i] == ",":
            i += 1


def parse_metrics(text):
    """Parses Prometheus text 0.0.4 or OpenMetrics 1.0; raises TestFailure
    naming the line of anything malformed."""
    m = Metrics()
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if line == "# EOF":
                m.eof = True
            elif len(parts) >= 3 and parts[1] == "TYPE":
                m.types[parts[2]] = parts[3] if len(parts) > 3 else ""
            elif len(parts) >= 3 and parts[1] == "HELP":
                m.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        if m.eof:
            raise TestFailure(f"exposition line {lineno}: content after # EOF")
        nm = _NAME_RE.match(line)
        if not nm:
            raise TestFailure(f"exposition line {lineno}: bad metric name: {line!r}")
        i, labels = nm.end(), {}
        try:
            if i < len(line) and line[i] == "{":
                labels, i = _parse_labels(line, i, lineno)
            fields = line[i:].split()
            value = float(fields[0])
        except (IndexError, ValueError) as e:
            raise TestFailure(f"exposition line {lineno}: {e}: {line!r}") from None
        m.samples.append(Sample(nm.group(0), labels, value))
    return m


# --------------------------------------------------------------- nginx ----

NGINX_CONF = """\
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log {tmp}/nginx-access.log;
  client_body_temp_path {tmp}/nginx-tmp/body;
  proxy_temp_path {tmp}/nginx-tmp/proxy;
  fastcgi_temp_path {tmp}/nginx-tmp/fastcgi;
  uwsgi_temp_path {tmp}/nginx-tmp/uwsgi;
  scgi_temp_path {tmp}/nginx-tmp/scgi;
  default_type text/plain;
{servers}
}}
"""


def start_nginx(h, servers, ports):
    """Starts nginx in the foreground (one process, no master) with the
    given server blocks; waits until every port in ports accepts."""
    h.path("nginx-tmp").mkdir(exist_ok=True)
    conf = h.write("nginx.conf", NGINX_CONF.format(tmp=h.tmp, servers=servers))
    nginx = tool("nginx")
    check = run([nginx, "-t", "-p", h.tmp, "-e", h.path("nginx-error.log"), "-c", conf])
    expect(check.returncode == 0, f"nginx -t rejected the generated config:\n"
                                  f"{check.stderr.decode(errors='replace')}")
    proc = h.spawn("nginx", [nginx, "-p", h.tmp, "-e", h.path("nginx-error.log"), "-c", conf])

    def ready():
        if not proc.alive():
            raise Fatal(f"nginx exited ({proc.popen.returncode}):\n{_read(h.path('nginx-error.log'))}")
        return all(port_open(p) for p in ports)

    wait_until(ready, 20, "nginx to accept connections")
    return proc


def _read(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------- TLS files ----

CA_CNF = """\
[ ca ]
default_ca = testca
[ testca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
[ server_ext ]
subjectAltName = IP:127.0.0.1,DNS:localhost
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
[ client_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
"""


class Certs:
    """A test CA and the certificates the TLS tests need, made by openssl:
    server (valid for 127.0.0.1/localhost), expired (same CA, valid only in
    2020), selfsigned (no CA), client (for mutual TLS)."""

    def __init__(self, h):
        self.dir = h.path("pki")
        (self.dir / "newcerts").mkdir(parents=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("1000\n")
        (self.dir / "ca.cnf").write_text(CA_CNF.format(dir=self.dir))
        self.openssl = tool("openssl")
        self.ca_cert, self.ca_key = self.dir / "ca.crt", self.dir / "ca.key"
        self._ossl("req", "-x509", *self._newkey(self.ca_key), "-days", "30", "-out", self.ca_cert,
                   "-subj", "/CN=usher test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                   "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.server = self._signed("server", "server_ext", ["-days", "30"])
        self.expired = self._signed("expired", "server_ext",
                                    ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"])
        self.client = self._signed("client", "client_ext", ["-days", "30"])
        key = self.dir / "selfsigned.key"
        crt = self.dir / "selfsigned.crt"
        self._ossl("req", "-x509", *self._newkey(key), "-days", "30", "-out", crt,
                   "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
        self.selfsigned = (crt, key)

    def _newkey(self, key):
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key]

    def _ossl(self, *args):
        r = run([self.openssl, *map(str, args)])
        expect(r.returncode == 0, f"openssl {args[0]} failed:\n{r.stderr.decode(errors='replace')}")
        return r.stdout.decode()

    def _signed(self, name, ext, validity):
        key, csr, crt = (self.dir / f"{name}.{x}" for x in ("key", "csr", "crt"))
        self._ossl("req", "-new", *self._newkey(key), "-out", csr, "-subj", f"/CN={name}")
        self._ossl("ca", "-batch", "-notext", "-config", self.dir / "ca.cnf", "-cert", self.ca_cert,
                   "-keyfile", self.ca_key, "-in", csr, "-out", crt, "-extensions", ext, *validity)
        return crt, key

    def not_after(self, crt):
        """The certificate's notAfter as a Unix timestamp."""
        out = self._ossl("x509", "-noout", "-enddate", "-in", crt).strip()
        return ssl.cert_time_to_seconds(out.split("=", 1)[1])


# ------------------------------------------------- misbehaving servers ----

class HangServer:
    """Accepts TCP connections and never reads or answers."""

    def __init__(self, h):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.accepted = 0
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        h.on_cleanup(self.close)

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            self.accepted += 1

    def close(self):
        self._stop.set()
        for c in self.conns:
            c.close()
        self.sock.close()


class _DripHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            while not self.server.stopping.is_set():
                self.wfile.write(b"x")
                self.wfile.flush()
                self.server.stopping.wait(0.1)
        except OSError:
            pass

    def log_message(self, *args):
        pass


class DripServer:
    """Answers at once with headers, then sends the body a byte per 100 ms."""

    def __init__(self, h):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _DripHandler)
        self.httpd.daemon_threads = True
        self.httpd.stopping = threading.Event()
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
        h.on_cleanup(self.close)

    def close(self):
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


# -------------------------------------------------------------- usherd ----

def flatten(d, prefix=""):
    """{"url": {"full": x}} -> {"url.full": x}; dotted keys stay as they are."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def json_lines(text):
    events = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            events.append(flatten(obj))
    return events


class Usherd:
    """A running usherd: its process, config path and base URL."""

    def __init__(self, h, proc, config_path, scheme, ssl_context):
        self.h = h
        self.proc = proc
        self.config_path = config_path
        self.scheme = scheme
        self.ssl_context = ssl_context
        self.port = None
        self.url = None

    def events(self):
        return json_lines(self.proc.stdout())

    def wait_listening(self, timeout=30):
        def listening():
            if not self.proc.alive():
                raise Fatal(f"usherd exited with {self.proc.popen.returncode} before "
                                  f"listening:\n{self.proc.tail()}")
            for e in self.events():
                if e.get("event.action") == "listening":
                    return e
            # --log-format text: "... event.action=listening ... server.port=N"
            for line in self.proc.stdout().splitlines():
                m = re.search(r"event\.action=listening\b.*\bserver\.port=(\d+)", line)
                if m:
                    return {"server.port": int(m.group(1))}
            return None

        try:
            ev = wait_until(listening, timeout, "usherd's \"listening\" log event")
        except TestFailure as e:
            raise TestFailure(f"{e}\n{self.proc.tail()}") from None
        port = ev.get("server.port")
        if port is None and "url.full" in ev:
            port = int(re.search(r":(\d+)/?", ev["url.full"].split("//", 1)[1]).group(1))
        expect(port, f"the listening event names no port (server.port / url.full): {ev}")
        self.port = int(port)
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"

    def get(self, path="/metrics", headers=None, timeout=10.0):
        return http(self.url + path, headers=headers, timeout=timeout, context=self.ssl_context)

    def metrics(self, headers=None):
        r = self.get("/metrics", headers=headers)
        expect(r.status == 200, f"GET /metrics: status {r.status}: {r.text[:300]}")
        return parse_metrics(r.text)

    def reload(self):
        self.proc.send(signal.SIGHUP)

    def wait_runs(self, jobs, runs=1, timeout=60):
        """Waits until every job has at least runs completed runs; returns
        the metrics of that moment."""
        def enough():
            m = self.metrics()
            short = {j: runs_total(m, j) for j in jobs if runs_total(m, j) < runs}
            if short:
                raise TestFailure(f"runs so far: {short}")
            return m

        return wait_until(enough, timeout, f"{runs} run(s) of probes {sorted(jobs)}")

    def stop_checked(self, limit=10.0):
        """SIGTERM; expects exit status 0 within limit seconds. Returns the
        seconds it took."""
        start = time.monotonic()
        self.proc.send(signal.SIGTERM)
        rc = self.proc.wait(limit * TIME_SCALE)
        took = time.monotonic() - start
        if rc is None:
            self.proc.kill()
            raise TestFailure(f"usherd still running {limit * TIME_SCALE:.1f}s after SIGTERM")
        expect(rc == 0, f"usherd exited with status {rc} after SIGTERM:\n{self.proc.tail()}")
        return took


def start_usherd(h, config_text, name="usherd", tls_ca=None, extra_args=(), env=None,
                 wait=True, config_name=None, log_format="ecs", state_dir=None):
    """Writes config_text and starts usherd on an ephemeral loopback port
    with a state dir in the temp dir. tls_ca: the CA that signed usherd's
    server certificate when the config turns TLS on."""
    path = h.write(config_name or f"{name}.yml", config_text)
    state = state_dir or h.path(f"{name}-state")
    if state_dir is None:
        state.mkdir(exist_ok=True)
    argv = [usher_binary("USHERD", "usherd"), "--config", path, "--listen", "127.0.0.1:0",
            "--state-dir", state, "--log-format", log_format, *extra_args]
    proc = h.spawn(name, argv, env={**os.environ, **(env or {})})
    u = Usherd(h, proc, path, "https" if tls_ca else "http",
               tls_client_context(tls_ca) if tls_ca else None)
    if wait:
        u.wait_listening()
    return u


def runs_total(m, job):
    return sum(s.value for s in m.find("usher_probe_runs_total", job=job))


def failure_reasons(m, job):
    """The probe_failure_info reasons of job whose value is 1."""
    return sorted(s.labels.get("reason") for s in m.find("probe_failure_info", job=job)
                  if s.value == 1)


def gunzip(body):
    return gzip.decompress(body)


# ---------------------------------------------------------- the runner ----

def main(name, setup, checks):
    """Runs setup(h) then every check(h, ctx) (each independent, all run),
    prints one line per check, and exits non-zero if anything failed,
    including unclean exits or sanitizer reports found at cleanup."""
    failures = []
    h = Harness(name)
    try:
        try:
            ctx = setup(h)
        except Exception as e:
            detail = "" if isinstance(e, TestFailure) else f"\n{traceback.format_exc()}"
            print(f"FAIL  setup: {e}{detail}", flush=True)
            failures.append(("setup", str(e)))
            ctx = None
        if ctx is not None:
            for check in checks:
                label = check.__name__.removeprefix("check_")
                start = time.monotonic()
                try:
                    check(h, ctx)
                    print(f"ok    {label} ({time.monotonic() - start:.1f}s)", flush=True)
                except TestFailure as e:
                    print(f"FAIL  {label}: {e}", flush=True)
                    failures.append((label, str(e)))
                except Exception as e:  # a crash of the check itself, e.g. usherd gone
                    print(f"FAIL  {label}: {type(e).__name__}: {e}\n{traceback.format_exc()}",
                          flush=True)
                    failures.append((label, f"{type(e).__name__}: {e}"))
        if failures:
            print(f"\n{h.logs()}", flush=True)
    finally:
        h.close()
    for problem in h.problems:
        print(f"FAIL  cleanup: {problem}", flush=True)
        failures.append(("cleanup", problem))
    if failures:
        print(f"\n{name}: {len(failures)} failed: {', '.join(f for f, _ in failures)}", flush=True)
        sys.exit(1)
    print(f"{name}: all {len(checks)} checks passed", flush=True)
