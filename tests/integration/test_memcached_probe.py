"""The memcached probe against real memcached servers on loopback (TCP and a
unix socket): memcached_exporter's series present and matching the server's
own stats, one persistent connection, a refused port, and the faults: a
server killed and restarted, and one hung with SIGSTOP while /metrics keeps
answering at once."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cacheservers import Memcached, established_to, memcached_version  # noqa: E402
from harness import (TIME_SCALE, expect, failure_reasons, free_port, main,  # noqa: E402
                     start_usherd, wait_until)

ITEMS = 40
VICTIM_INTERVAL, VICTIM_TIMEOUT = 1.0, 0.7

CONFIG = """\
global:
  scrape_interval: 1s
probes:
  - {{name: sessions, type: memcached, address: "127.0.0.1:{port}", timeout: 800ms}}
  - {{name: sessions-unix, type: memcached, address: "unix:{unix}", timeout: 800ms}}
  - {{name: refused, type: memcached, address: "127.0.0.1:{closed}", timeout: 800ms}}
  - {{name: victim, type: memcached, address: "127.0.0.1:{victim}", interval: 1s, timeout: 700ms}}
"""


def seed(mc):
    for i in range(ITEMS):
        ans = mc.command(f"set session:{i} 0 600 8\r\nabcdefgh")
        expect(ans == "STORED\r\n", f"set session:{i}: {ans!r}")
    for i in range(ITEMS + 5):  # 40 hits, 5 misses
        mc.command(f"get session:{i}", end=b"END\r\n")


def setup(h):
    mc = Memcached(h, "memcached", memory_mb=24, maxconns=300)
    mc_unix = Memcached(h, "memcached-unix", unix=True)
    victim = Memcached(h, "memcached-victim")
    seed(mc)
    u = start_usherd(h, CONFIG.format(port=mc.port, unix=mc_unix.unix, closed=free_port(),
                                      victim=victim.port))
    m = u.wait_runs(["sessions", "sessions-unix", "refused", "victim"], runs=2)
    return {"u": u, "m": m, "mc": mc, "victim": victim}


def up(m, job):
    return m.value("memcached_up", job=job)


def check_outcomes(h, ctx):
    m = ctx["m"]
    for job in ("sessions", "sessions-unix", "victim"):
        expect(up(m, job) == 1 and m.value("probe_success", job=job) == 1,
               f"{job}: memcached_up={up(m, job)} reasons={failure_reasons(m, job)}")
    expect(up(m, "refused") == 0 and failure_reasons(m, "refused") == ["connect"],
           f"refused: memcached_up={up(m, 'refused')} reasons={failure_reasons(m, 'refused')}")
    expect(not m.find("memcached_current_items", job="refused"),
           "a server that is down has no stats series")


def check_exporter_series(h, ctx):
    u, mc = ctx["u"], ctx["mc"]
    m = u.metrics()
    stats = mc.stats()
    version = m.find("memcached_version", job="sessions")
    expect(len(version) == 1 and version[0].labels["version"] == memcached_version(),
           f"memcached_version: {version}, want {memcached_version()}")
    for name, want in [("memcached_current_items", ITEMS),
                       ("memcached_limit_bytes", 24 * 1024 * 1024),
                       ("memcached_max_connections", 300),
                       ("memcached_items_evicted_total", 0),
                       ("memcached_items_total", ITEMS),
                       ("memcached_accepting_connections", 1)]:
        got = m.value(name, job="sessions")
        expect(got == want, f"{name}{{job=sessions}} = {got}, want {want}")
    cmds = {(s.labels["command"], s.labels["status"]): s.value
            for s in m.find("memcached_commands_total", job="sessions")}
    for key, want in [(("get", "hit"), ITEMS), (("get", "miss"), 5), (("set", "hit"), ITEMS),
                      (("delete", "hit"), 0), (("cas", "badval"), 0), (("flush", "hit"), 0)]:
        expect(cmds.get(key) == want, f"memcached_commands_total{key} = {cmds.get(key)}, want {want}")
    expect(len(cmds) == 15, f"{len(cmds)} command/status pairs: {sorted(cmds)}")
    cur = m.value("memcached_current_bytes", job="sessions")
    expect(cur is not None and ITEMS * 8 <= cur <= int(stats["bytes"]) + 1000,
           f"memcached_current_bytes {cur} (server says {stats['bytes']})")
    conns = m.value("memcached_current_connections", job="sessions")
    expect(conns is not None and conns >= 1, f"memcached_current_connections {conns}")
    for name in ("memcached_uptime_seconds", "memcached_time_seconds",
                 "memcached_read_bytes_total", "memcached_written_bytes_total",
                 "memcached_connections_total", "memcached_process_user_cpu_seconds_total"):
        v = m.value(name, job="sessions")
        expect(v is not None and v >= 0, f"{name}{{job=sessions}} = {v}")
    expect(abs(m.value("memcached_time_seconds", job="sessions") - time.time()) < 30,
           "memcached_time_seconds is not about now")
    for fam, typ in [("memcached_up", "gauge"), ("memcached_commands_total", "counter"),
                     ("memcached_current_items", "gauge"), ("memcached_items_evicted_total",
                                                            "counter")]:
        expect(m.types.get(fam) == typ, f"# TYPE {fam} is {m.types.get(fam)!r}, want {typ}")
    expect(m.helps.get("memcached_up") == "Could the memcached server be reached.",
           f"HELP memcached_up {m.helps.get('memcached_up')!r}")
    expect(m.value("memcached_current_items", job="sessions-unix") == 0, "unix server not empty")
    expect(not m.duplicates(), f"duplicate series: {m.duplicates()[:5]}")


def check_one_connection(h, ctx):
    mc = ctx["mc"]
    before = int(mc.stats()["total_connections"])
    time.sleep(3.5)
    after = int(mc.stats()["total_connections"])
    # our own two `stats` connections count; the probe must add none
    expect(after - before == 1, f"memcached saw {after - before - 1} probe connections in 3.5s")


def wait_victim(u, want_up, timeout, what):
    start = time.monotonic()

    def reached():
        m = u.metrics()
        return m if up(m, "victim") == want_up else None

    m = wait_until(reached, timeout, what, interval=0.05)
    return m, time.monotonic() - start


def check_hung_server(h, ctx):
    u, victim = ctx["u"], ctx["victim"]
    wait_victim(u, 1, 30, "the victim to be up")
    victim.pause()
    slowest, conns = 0.0, 0
    try:
        m, took = wait_victim(u, 0, 15, "memcached_up{job=victim} to drop while SIGSTOPped")
        expect(failure_reasons(m, "victim") == ["timeout"],
               f"hung victim: reasons {failure_reasons(m, 'victim')}")
        bound = VICTIM_INTERVAL + VICTIM_TIMEOUT + 1.5 * TIME_SCALE
        expect(took <= bound, f"memcached_up went to 0 {took:.2f}s after SIGSTOP "
                              f"(want <= {bound:.1f}s)")
        for _ in range(25):
            r = u.get("/metrics", timeout=10)
            expect(r.status == 200, f"/metrics answered {r.status} while the server hung")
            slowest = max(slowest, r.elapsed)
            conns = max(conns, established_to(victim.port))
            time.sleep(0.1)
    finally:
        victim.resume()
    print(f"      measured: memcached_up 0 {took:.2f}s after SIGSTOP (interval "
          f"{VICTIM_INTERVAL}s, timeout {VICTIM_TIMEOUT}s); slowest /metrics while hung "
          f"{slowest * 1000:.1f}ms; at most {conns} connection(s) open to it", flush=True)
    expect(slowest < 1.0, f"/metrics took {slowest * 1000:.0f}ms while a server hung")
    expect(conns <= 1, f"{conns} connections to the hung server at once")
    m, back = wait_victim(u, 1, 30, "memcached_up{job=victim} to come back after SIGCONT")
    print(f"      measured: memcached_up 1 again {back:.2f}s after SIGCONT", flush=True)


def check_killed_server(h, ctx):
    u, victim = ctx["u"], ctx["victim"]
    wait_victim(u, 1, 30, "the victim to be up")
    victim.kill()
    m, took = wait_victim(u, 0, 15, "memcached_up{job=victim} to drop after SIGKILL")
    expect(failure_reasons(m, "victim") == ["connect"],
           f"killed victim: reasons {failure_reasons(m, 'victim')}")
    bound = VICTIM_INTERVAL + VICTIM_TIMEOUT + 1.5 * TIME_SCALE
    expect(took <= bound, f"memcached_up went to 0 {took:.2f}s after SIGKILL (want <= {bound:.1f}s)")
    time.sleep(2)
    victim.start()
    m, back = wait_victim(u, 1, 30, "memcached_up{job=victim} to recover after a restart")
    print(f"      measured: memcached_up 0 {took:.2f}s after SIGKILL; 1 again {back:.2f}s after "
          f"the restart", flush=True)
    expect(m.value("memcached_uptime_seconds", job="victim") < 30, "not the restarted server")


if __name__ == "__main__":
    main("memcached_probe", setup, [check_outcomes, check_exporter_series, check_one_connection,
                                    check_hung_server, check_killed_server])
