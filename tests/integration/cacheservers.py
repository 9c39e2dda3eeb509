"""Real redis-server and memcached for the integration tests: each on a free
loopback port (and a unix socket) with its own temp dir, started and
stopped through the harness so they never outlive a test, and small
standard-library clients to seed and inspect them."""

import os
import signal
import socket
import ssl
import time

from harness import Fatal, TestFailure, expect, free_port, run, tool, wait_until


# ---------------------------------------------------------------- RESP ----

def resp_encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RespError(Exception):
    """An error reply (-ERR ...)."""


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise OSError("connection closed by the server")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise TestFailure(f"not a RESP reply: {line!r}")


class RedisClient:
    """A blocking RESP client for test setup and inspection."""

    def __init__(self, port=None, unix=None, password=None, timeout=10.0, tls_context=None):
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(unix))
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            if tls_context is not None:
                self.sock = tls_context.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.reader = _Reader(self.sock)
        if password:
            self.call("AUTH", password)

    def pipeline(self, commands):
        """Sends every command at once; returns the replies (errors as
        RespError values, not raised)."""
        self.sock.sendall(b"".join(resp_encode(*c) for c in commands))
        return [self.reader.reply() for _ in commands]

    def call(self, *args):
        reply = self.pipeline([args])[0]
        if isinstance(reply, RespError):
            raise reply
        return reply

    def info(self, section="all"):
        text = self.call("INFO", section).decode()
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out

    def close(self):
        self.sock.close()


# ---------------------------------------------------------- redis-server ----

REDIS_CONF = """\
port {port}
bind 127.0.0.1
unixsocket {dir}/redis.sock
unixsocketperm 700
dir {dir}
save ""
appendonly no
daemonize no
logfile {dir}/redis.log
protected-mode no
"""


def redis_version():
    out = run([tool("redis-server"), "--version"]).stdout.decode()
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    raise TestFailure(f"cannot tell redis-server's version from {out!r}")


REDIS_TLS_CONF = """\
tls-port {port}
tls-cert-file {cert}
tls-key-file {key}
tls-ca-cert-file {ca}
tls-auth-clients {auth_clients}
"""


class RedisServer:
    """redis-server on a free loopback port and a unix socket in its own
    directory. extra: more redis.conf lines (requirepass, replicaof).
    tls: a harness.Certs; the port then speaks only TLS, with the server
    certificate, and asks for client certificates when auth_clients."""

    def __init__(self, h, name="redis", extra="", port=None, tls=None, auth_clients=False):
        self.h = h
        self.name = name
        self.port = port or free_port()
        self.dir = h.path(name)
        self.dir.mkdir(exist_ok=True)
        self.unix = self.dir / "redis.sock"
        self.tls_context = None
        conf = REDIS_CONF.format(port=0 if tls else self.port, dir=self.dir)
        if tls:
            conf += REDIS_TLS_CONF.format(port=self.port, cert=tls.server[0], key=tls.server[1],
                                          ca=tls.ca_cert,
                                          auth_clients="yes" if auth_clients else "no")
            self.tls_context = ssl.create_default_context(cafile=str(tls.ca_cert))
            self.tls_context.load_cert_chain(str(tls.client[0]), str(tls.client[1]))
        self.conf = h.write(f"{name}.conf", conf + extra)
        self.password = None
        for line in extra.splitlines():
            if line.startswith("requirepass "):
                self.password = line.split(" ", 1)[1].strip('"')
        self.starts = 0
        self.proc = None
        self.paused = False
        # a paused server ignores SIGTERM: resume it before the harness
        # stops it (cleanups run in reverse order, so this runs first)
        self.start()
        h.on_cleanup(self.resume)

    def start(self):
        self.starts += 1
        label = self.name if self.starts == 1 else f"{self.name}-{self.starts}"
        self.proc = self.h.spawn(label, [tool("redis-server"), self.conf])
        self.paused = False
        self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        def ready():
            if not self.proc.alive():
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise Fatal(f"{self.name} exited ({self.proc.popen.returncode}):\n{log}")
            try:
                c = self.client(timeout=1)
                try:
                    return c.call("PING") == "PONG"
                finally:
                    c.close()
            except RespError as e:  # an error reply is an answer, unless still loading
                return "LOADING" not in str(e)
            except OSError:
                return False

        wait_until(ready, timeout, f"{self.name} to answer PING")

    def client(self, timeout=10.0):
        return RedisClient(self.port, password=self.password, timeout=timeout,
                           tls_context=self.tls_context)

    def pause(self):
        self.proc.send(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.paused and self.proc and self.proc.alive():
            self.proc.send(signal.SIGCONT)
        self.paused = False

    def kill(self):
        self.resume()
        self.proc.kill()

    def restart(self):
        self.kill()
        return self.start()


def seed(server, prefix, n, value_len=20, ttl=None):
    """n keys prefix1..prefixn holding value_len bytes, pipelined."""
    c = server.client()
    try:
        value = b"v" * value_len
        for start in range(0, n, 500):
            cmds = []
            for i in range(start + 1, min(n, start + 500) + 1):
                key = f"{prefix}{i}"
                cmds.append(("SET", key, value, "EX", ttl) if ttl else ("SET", key, value))
            replies = c.pipeline(cmds)
            bad = [r for r in replies if r != "OK"]
            expect(not bad, f"seeding {prefix}*: {bad[:3]}")
    finally:
        c.close()


# ------------------------------------------------------------- memcached ----

def memcached_version():
    out = run([tool("memcached"), "-V"]).stdout.decode().split()
    expect(len(out) >= 2, f"memcached -V said {out!r}")
    return out[1]


class Memcached:
    """memcached on a free loopback port (TCP only, UDP off), or on a unix
    socket when unix=True, with memory_mb of cache and maxconns."""

    def __init__(self, h, name="memcached", memory_mb=16, maxconns=256, unix=False, port=None):
        self.h = h
        self.name = name
        self.port = None if unix else (port or free_port())
        self.dir = h.path(name)
        self.dir.mkdir(exist_ok=True)
        self.unix = self.dir / "mc.sock" if unix else None
        self.memory_mb = memory_mb
        self.maxconns = maxconns
        self.argv = [tool("memcached"), "-m", str(memory_mb), "-c", str(maxconns), "-t", "2"]
        if unix:
            self.argv += ["-s", str(self.unix), "-a", "0700"]
        else:
            self.argv += ["-l", "127.0.0.1", "-p", str(self.port), "-U", "0"]
        if os.geteuid() == 0:  # memcached refuses to run as root otherwise
            self.argv += ["-u", "nobody"]
            # nobody must reach its socket: the test's dir is 0700 root
            os.chmod(h.tmp, 0o711)
            os.chmod(self.dir, 0o777)
        self.starts = 0
        self.proc = None
        self.paused = False
        self.start()
        h.on_cleanup(self.resume)

    def start(self):
        self.starts += 1
        label = self.name if self.starts == 1 else f"{self.name}-{self.starts}"
        self.proc = self.h.spawn(label, self.argv)
        self.paused = False

        def ready():
            if not self.proc.alive():
                raise Fatal(f"{self.name} exited ({self.proc.popen.returncode}):\n"
                            f"{self.proc.tail()}")
            try:
                return "STAT pid" in self.command("stats", end=b"END\r\n", timeout=1)
            except OSError:
                return False

        wait_until(ready, 20, f"{self.name} to answer stats")
        return self

    def connect(self, timeout=10.0):
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(str(self.unix))
            return s
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def command(self, text, end=b"\r\n", timeout=10.0):
        """Sends one text-protocol command; returns the answer through end."""
        s = self.connect(timeout)
        try:
            s.sendall(text.encode() + b"\r\n")
            buf = b""
            deadline = time.monotonic() + timeout
            while not buf.endswith(end):
                if time.monotonic() > deadline:
                    raise OSError(f"no complete answer to {text!r}: {buf[-200:]!r}")
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf.decode(errors="replace")
        finally:
            s.close()

    def stats(self):
        out = {}
        for line in self.command("stats", end=b"END\r\n").splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0] == "STAT":
                out[parts[1]] = parts[2]
        return out

    def pause(self):
        self.proc.send(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.paused and self.proc and self.proc.alive():
            self.proc.send(signal.SIGCONT)
        self.paused = False

    def kill(self):
        self.resume()
        self.proc.kill()

    def restart(self):
        self.kill()
        return self.start()


# ------------------------------------------------------ connection counts ----

def established_to(port):
    """Client-side TCP connections in state ESTABLISHED to 127.0.0.1:port,
    from /proc/net/tcp (the server's own ends are not counted)."""
    count = 0
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[2] == want and fields[3] == "01":
                count += 1
    return count
