"""The redis probe against real redis-servers on loopback: redis_exporter's
series present and sane, key patterns on seeded keys (complete, and cut
short by the key budget), a replica, AUTH with requirepass and ACL users,
TLS (mutual, wrong CA, plain server), unix sockets, one persistent
connection per target, and the faults: a server killed and restarted, and a
server hung with SIGSTOP while /metrics keeps answering at once."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cacheservers import RedisServer, established_to, redis_version, seed  # noqa: E402
from harness import (TIME_SCALE, Certs, HangServer, expect, failure_reasons,  # noqa: E402
                     free_port, main, runs_total, start_usherd, wait_until)

PASSWORD = "seat-cache-pw-5521"
ACL_PASSWORD = "booker-acl-pw-9034"
HOLDS, SESSIONS = 2000, 50
VICTIM_INTERVAL, VICTIM_TIMEOUT = 1.0, 0.7

CONFIG = """\
global:
  scrape_interval: 1s
probes:
  - {{name: cache, type: redis, address: "127.0.0.1:{main}", timeout: 800ms}}
  - name: keys-small
    type: redis
    address: "127.0.0.1:{main}"
    interval: 2s
    timeout: 1500ms
    key_patterns: ["hold:*", {{pattern: "session:*", count_only: true}}]
    key_budget: 500
    scan_count: 100
  - name: keys-full
    type: redis
    address: "127.0.0.1:{main}"
    interval: 2s
    timeout: 1500ms
    key_patterns: ["hold:*", {{pattern: "session:*", count_only: true}}, "nothing:*"]
    key_budget: 100000
  - {{name: cache-unix, type: redis, address: "unix:{unix}", db: 1, timeout: 800ms}}
  - {{name: replica, type: redis, address: "127.0.0.1:{replica}", timeout: 800ms}}
  - name: auth-ok
    type: redis
    address: "127.0.0.1:{auth}"
    password: "${{env:USHER_IT_REDIS_PASSWORD}}"
    timeout: 800ms
  - name: auth-acl-user
    type: redis
    address: "127.0.0.1:{auth}"
    username: booker
    password: "${{file:{acl_password_file}}}"
    timeout: 800ms
  - {{name: auth-wrong, type: redis, address: "127.0.0.1:{auth}", password: not-the-password, timeout: 800ms}}
  - {{name: auth-missing, type: redis, address: "127.0.0.1:{auth}", timeout: 800ms}}
  - {{name: refused, type: redis, address: "127.0.0.1:{closed}", timeout: 800ms}}
  - name: tls
    type: redis
    address: "127.0.0.1:{tls}"
    timeout: 800ms
    tls: {{ca_file: "{ca}", cert_file: "{client_crt}", key_file: "{client_key}"}}
  - name: tls-no-client-cert
    type: redis
    address: "127.0.0.1:{tls}"
    timeout: 800ms
    tls: {{ca_file: "{ca}"}}
  - name: tls-wrong-ca
    type: redis
    address: "127.0.0.1:{tls}"
    timeout: 800ms
    tls: {{ca_file: "{wrong_ca}", cert_file: "{client_crt}", key_file: "{client_key}"}}
  - {{name: tls-to-plain, type: redis, address: "127.0.0.1:{replica}", timeout: 800ms, tls: {{ca_file: "{ca}"}}}}
  - {{name: victim, type: redis, address: "127.0.0.1:{victim}", interval: 1s, timeout: 700ms}}
"""

ALWAYS_UP = ["cache", "keys-small", "keys-full", "cache-unix", "replica", "auth-ok",
             "auth-acl-user", "tls"]
# A plain server never answers a ClientHello (it waits for the rest of a
# command), so TLS to it times out.
EXPECTED_FAILURES = {"auth-wrong": "auth", "auth-missing": "auth", "refused": "connect",
                     "tls-no-client-cert": "tls", "tls-wrong-ca": "tls",
                     "tls-to-plain": "timeout"}


def setup(h):
    certs = Certs(h)
    main_srv = RedisServer(h, "redis-main")
    replica = RedisServer(h, "redis-replica", extra=f"replicaof 127.0.0.1 {main_srv.port}\n")
    auth = RedisServer(h, "redis-auth", extra=f'requirepass "{PASSWORD}"\n')
    tls = RedisServer(h, "redis-tls", tls=certs, auth_clients=True)
    victim = RedisServer(h, "redis-victim")
    seed(main_srv, "hold:", HOLDS)
    seed(main_srv, "session:", SESSIONS, ttl=3600)
    c = main_srv.client()
    c.pipeline([("SELECT", "1"), ("SET", "db1key", "x")])
    c.close()
    c = auth.client()
    c.call("ACL", "SETUSER", "booker", "on", f">{ACL_PASSWORD}", "~*", "+@all")
    c.close()
    wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up",
               30, "the replica to sync")
    acl_file = h.write("acl-password", ACL_PASSWORD + "\n", mode=0o600)
    closed = free_port()
    u = start_usherd(h, CONFIG.format(
        main=main_srv.port, unix=main_srv.unix, replica=replica.port, auth=auth.port,
        acl_password_file=acl_file, closed=closed, tls=tls.port, ca=certs.ca_cert,
        client_crt=certs.client[0], client_key=certs.client[1], wrong_ca=certs.selfsigned[0],
        victim=victim.port), env={"USHER_IT_REDIS_PASSWORD": PASSWORD})
    jobs = ALWAYS_UP + list(EXPECTED_FAILURES) + ["victim"]
    m = u.wait_runs(jobs, runs=2, timeout=60)
    return {"u": u, "m": m, "main": main_srv, "replica": replica, "auth": auth, "tls": tls,
            "victim": victim}


def up(m, job):
    return m.value("redis_up", job=job)


def check_outcomes(h, ctx):
    m, wrong = ctx["m"], []
    for job in ALWAYS_UP:
        if up(m, job) != 1 or m.value("probe_success", job=job) != 1:
            wrong.append(f"{job}: redis_up={up(m, job)} probe_success="
                         f"{m.value('probe_success', job=job)} reasons={failure_reasons(m, job)}")
    for job, reason in EXPECTED_FAILURES.items():
        if up(m, job) != 0 or failure_reasons(m, job) != [reason]:
            wrong.append(f"{job}: redis_up={up(m, job)} reasons={failure_reasons(m, job)}, "
                         f"want 0 and [{reason}]")
    expect(not wrong, "wrong outcomes:\n  " + "\n  ".join(wrong))


def check_exporter_series(h, ctx):
    m, version = ctx["m"], redis_version()
    info = m.find("redis_instance_info", job="cache")
    expect(len(info) == 1 and info[0].labels.get("role") == "master"
           and info[0].labels.get("redis_version") == version
           and info[0].labels.get("tcp_port") == str(ctx["main"].port),
           f"redis_instance_info{{job=cache}}: {info}, want role=master redis_version={version}")
    # exact counts from the seeding
    for name, labels, want in [("redis_db_keys", {"db": "db0"}, HOLDS + SESSIONS),
                               ("redis_db_keys_expiring", {"db": "db0"}, SESSIONS),
                               ("redis_db_keys", {"db": "db1"}, 1),
                               ("redis_db_keys", {"db": "db15"}, 0),
                               ("redis_rdb_last_bgsave_status", {}, 1),
                               ("redis_aof_last_write_status", {}, 1),
                               ("redis_connected_slaves", {}, 1)]:
        got = m.value(name, job="cache", **labels)
        expect(got == want, f"{name}{labels} of job cache is {got}, want {want}")
    sets = m.value("redis_commands_total", job="cache", cmd="set")
    expect(sets is not None and sets >= HOLDS + SESSIONS, f"redis_commands_total{{cmd=set}}={sets}")
    dur = m.value("redis_commands_duration_seconds_total", job="cache", cmd="set")
    expect(dur is not None and 0 < dur < 10, f"redis_commands_duration_seconds_total{{cmd=set}}={dur}")
    for name in ("redis_uptime_in_seconds", "redis_connected_clients", "redis_blocked_clients",
                 "redis_rejected_connections_total", "redis_memory_used_bytes",
                 "redis_memory_max_bytes", "redis_mem_fragmentation_ratio",
                 "redis_keyspace_hits_total", "redis_keyspace_misses_total",
                 "redis_evicted_keys_total", "redis_expired_keys_total",
                 "redis_rdb_last_save_timestamp_seconds", "redis_slowlog_length",
                 "redis_start_time_seconds"):
        v = m.value(name, job="cache")
        expect(v is not None and v >= 0, f"{name}{{job=cache}} = {v}")
    expect(m.value("redis_connected_clients", job="cache") >= 4, "connected_clients < 4")
    expect(m.value("redis_memory_used_bytes", job="cache") > 100000, "used memory too small")
    start = m.value("redis_start_time_seconds", job="cache")
    expect(abs(start + m.value("redis_uptime_in_seconds", job="cache") - time.time()) < 30,
           f"redis_start_time_seconds {start} + uptime is not about now")
    # HELP and TYPE as redis_exporter has them
    for fam, typ in [("redis_up", "gauge"), ("redis_commands_total", "counter"),
                     ("redis_keyspace_hits_total", "counter"), ("redis_db_keys", "gauge"),
                     ("usher_redis_ping_duration_seconds", "histogram"),
                     ("redis_uptime_in_seconds", "gauge")]:
        expect(m.types.get(fam) == typ, f"# TYPE {fam} is {m.types.get(fam)!r}, want {typ}")
    expect(m.helps.get("redis_up") == "Information about the Redis instance",
           f"HELP redis_up: {m.helps.get('redis_up')!r}")
    expect(m.helps.get("redis_connected_clients") == "connected_clients metric",
           f"HELP redis_connected_clients: {m.helps.get('redis_connected_clients')!r}")
    pings = m.value("usher_redis_ping_duration_seconds_count", job="cache")
    expect(pings is not None and pings >= runs_total(m, "cache"),
           f"{pings} PINGs timed in {runs_total(m, 'cache')} runs")
    expect(not m.duplicates(), f"duplicate series: {m.duplicates()[:5]}")


def check_counters_move(h, ctx):
    u, main_srv = ctx["u"], ctx["main"]
    before = u.metrics()
    c = main_srv.client()
    c.pipeline([("GET", f"hold:{i}") for i in range(1, 6)] + [("GET", "missing:1")] * 3)
    c.close()
    hits0 = before.value("redis_keyspace_hits_total", job="cache")
    misses0 = before.value("redis_keyspace_misses_total", job="cache")

    def moved():
        m = u.metrics()
        return (m.value("redis_keyspace_hits_total", job="cache") >= hits0 + 5
                and m.value("redis_keyspace_misses_total", job="cache") >= misses0 + 3)

    wait_until(moved, 15, "keyspace hits and misses to count the GETs")


def check_key_patterns_complete(h, ctx):
    m = ctx["u"].wait_runs(["keys-full"], runs=2)
    keys = {s.labels["pattern"]: s.value for s in m.find("usher_redis_key_pattern_keys",
                                                         job="keys-full")}
    expect(keys == {"hold:*": HOLDS, "session:*": SESSIONS, "nothing:*": 0},
           f"usher_redis_key_pattern_keys{{job=keys-full}}: {keys}")
    trunc = {s.labels["pattern"]: s.value for s in m.find("usher_redis_key_pattern_truncated",
                                                          job="keys-full")}
    expect(trunc == {"hold:*": 0, "session:*": 0, "nothing:*": 0}, f"truncated: {trunc}")
    size = {s.labels["pattern"]: s.value for s in m.find("usher_redis_key_pattern_bytes",
                                                         job="keys-full")}
    # MEMORY USAGE of a 20-byte string key is some 70 bytes; count_only has none
    expect(set(size) == {"hold:*", "nothing:*"} and 20 * HOLDS < size["hold:*"] < 500 * HOLDS
           and size["nothing:*"] == 0, f"usher_redis_key_pattern_bytes: {size}")
    dur = m.find("usher_redis_key_pattern_duration_seconds", job="keys-full")
    expect(len(dur) == 3 and all(0 <= s.value < 1.5 for s in dur), f"durations: {dur}")


def check_key_budget_truncates(h, ctx):
    m = ctx["u"].wait_runs(["keys-small"], runs=2)
    keys = {s.labels["pattern"]: s.value for s in m.find("usher_redis_key_pattern_keys",
                                                         job="keys-small")}
    trunc = {s.labels["pattern"]: s.value for s in m.find("usher_redis_key_pattern_truncated",
                                                          job="keys-small")}
    # 500 keys of budget over two patterns: 250 each, SCAN COUNT 100 at most
    expect(trunc == {"hold:*": 1, "session:*": 1}, f"truncated: {trunc}")
    expect(0 < keys.get("hold:*", 0) <= 300, f"hold:* counted {keys.get('hold:*')} of {HOLDS} "
                                             f"with a share of 250 keys of budget")
    expect(keys.get("session:*", -1) <= SESSIONS, f"session:* {keys.get('session:*')}")
    expect(m.value("probe_success", job="keys-small") == 1,
           "a truncated pattern is a result, not a failure")
    d = m.value("probe_duration_seconds", job="keys-small")
    expect(d is not None and d < 1.0, f"probe_duration_seconds{{job=keys-small}}={d}")


def check_replica(h, ctx):
    m = ctx["m"]
    info = m.find("redis_instance_info", job="replica")
    expect(info and info[0].labels["role"] == "slave", f"replica's instance info: {info}")
    link = m.find("redis_master_link_up", job="replica")
    expect(len(link) == 1 and link[0].value == 1
           and link[0].labels == {**link[0].labels, "master_host": "127.0.0.1",
                                  "master_port": str(ctx["main"].port)},
           f"redis_master_link_up{{job=replica}}: {link}")
    expect(not m.find("redis_master_link_up", job="cache"), "a master has no master link")
    lag = m.find("redis_connected_slave_lag_seconds", job="cache")
    expect(len(lag) == 1 and lag[0].labels["slave_port"] == str(ctx["replica"].port)
           and lag[0].labels["slave_state"] == "online",
           f"redis_connected_slave_lag_seconds{{job=cache}}: {lag}")
    keys = m.value("redis_db_keys", job="replica", db="db0")
    expect(keys == HOLDS + SESSIONS, f"replica db0 keys {keys}")


def check_auth(h, ctx):
    u = ctx["u"]
    events = {e.get("usher.probe.name"): e for e in u.events()
              if e.get("event.action") == "probe-failed"}
    wrong = events.get("auth-wrong", {}).get("error.message", "")
    expect("AUTH refused: WRONGPASS" in wrong, f"auth-wrong logged {wrong!r}")
    missing = events.get("auth-missing", {}).get("error.message", "")
    expect("NOAUTH" in missing and "set password" in missing, f"auth-missing logged {missing!r}")
    log = u.proc.stdout() + u.proc.stderr()
    expect(PASSWORD not in log and ACL_PASSWORD not in log, "a password appears in usherd's log")
    # the two refused probes run every second but do not reconnect every
    # second: the backoff spaces their attempts out (next run, then 1s, 2s,
    # 4s, 8s, 10s); without it, 6s would bring 12 new connections
    c = ctx["auth"].client()
    try:
        before = int(c.info("stats")["total_connections_received"])
        time.sleep(6)
        after = int(c.info("stats")["total_connections_received"])
    finally:
        c.close()
    print(f"      measured: {after - before} connection attempts in 6s from two probes refused "
          f"AUTH (interval 1s)", flush=True)
    expect(after - before <= 6, f"{after - before} new connections in 6s from two failing probes:"
                                f" no reconnect backoff")


def check_tls(h, ctx):
    u = ctx["u"]
    m = u.metrics()
    expect(up(m, "tls") == 1 and m.find("redis_instance_info", job="tls"),
           "the TLS probe with a client certificate is not up")
    events = {e.get("usher.probe.name"): e.get("error.message", "") for e in u.events()
              if e.get("event.action") == "probe-failed"}
    expect("certificate verify failed" in events.get("tls-wrong-ca", ""),
           f"tls-wrong-ca logged {events.get('tls-wrong-ca')!r}")
    # the server's alert ("certificate required"), or its closing the
    # connection when that alert was lost, with the hint
    nocert = events.get("tls-no-client-cert", "")
    expect("certificate required" in nocert or "want a client certificate" in nocert,
           f"tls-no-client-cert logged {nocert!r}")
    expect("timed out in the TLS handshake" in events.get("tls-to-plain", "")
           and "does it speak TLS" in events.get("tls-to-plain", ""),
           f"tls-to-plain logged {events.get('tls-to-plain')!r}")


def check_one_connection_per_target(h, ctx):
    c = ctx["main"].client()
    try:
        names = [line for line in c.call("CLIENT", "LIST").decode().splitlines()
                 if " name=usher " in f" {line} "]
        # cache, keys-small, keys-full over TCP; cache-unix over the socket
        expect(len(names) == 4, f"{len(names)} usher connections to the main server:\n"
                                + "\n".join(names))
        before = int(c.info("stats")["total_connections_received"])
        time.sleep(3.5)  # three or more runs of each probe
        after = int(c.info("stats")["total_connections_received"])
        expect(after == before, f"the main server saw {after - before} new connections in 3.5s:"
                                f" probes reconnect instead of keeping their connection")
    finally:
        c.close()


def wait_victim(u, want_up, timeout, what):
    start = time.monotonic()

    def reached():
        m = u.metrics()
        return m if up(m, "victim") == want_up else None

    m = wait_until(reached, timeout, what, interval=0.05)
    return m, time.monotonic() - start


def check_hung_server(h, ctx):
    u, victim = ctx["u"], ctx["victim"]
    u.wait_runs(["victim"], runs=2)
    expect(up(u.metrics(), "victim") == 1, "the victim is not up before the test")
    victim.pause()
    slowest, conns = 0.0, 0
    try:
        m, took = wait_victim(u, 0, 15, "redis_up{job=victim} to drop while SIGSTOPped")
        expect(failure_reasons(m, "victim") == ["timeout"],
               f"hung victim: reasons {failure_reasons(m, 'victim')}")
        # one interval to the next run, then one timeout
        bound = VICTIM_INTERVAL + VICTIM_TIMEOUT + 1.5 * TIME_SCALE
        expect(took <= bound, f"redis_up went to 0 {took:.2f}s after SIGSTOP (want <= {bound:.1f}s)")
        for _ in range(25):
            r = u.get("/metrics", timeout=10)
            expect(r.status == 200, f"/metrics answered {r.status} while the server hung")
            slowest = max(slowest, r.elapsed)
            conns = max(conns, established_to(victim.port))
            time.sleep(0.1)
        # the run that met the hang took its timeout (later ones may end at
        # once, skipped by the reconnect backoff)
        first = [e for e in u.events() if e.get("event.action") == "probe-failed"
                 and e.get("usher.probe.name") == "victim"]
        d = first[0].get("event.duration", 0) / 1e9 if first else None
        expect(d is not None and VICTIM_TIMEOUT - 0.05 <= d <= VICTIM_TIMEOUT + 0.2,
               f"the first hung run took {d}s, want the {VICTIM_TIMEOUT}s timeout")
    finally:
        victim.resume()
    print(f"      measured: redis_up 0 {took:.2f}s after SIGSTOP (interval {VICTIM_INTERVAL}s, "
          f"timeout {VICTIM_TIMEOUT}s); slowest /metrics while hung {slowest * 1000:.1f}ms; "
          f"at most {conns} connection(s) open to the hung server", flush=True)
    expect(slowest < 1.0, f"/metrics took {slowest * 1000:.0f}ms while a server hung (want < 100ms"
                          f", asserted < 1s on a noisy machine)")
    expect(conns <= 1, f"{conns} connections to the hung server at once")
    m, back = wait_victim(u, 1, 30, "redis_up{job=victim} to come back after SIGCONT")
    print(f"      measured: redis_up 1 again {back:.2f}s after SIGCONT", flush=True)


def check_killed_server(h, ctx):
    u, victim = ctx["u"], ctx["victim"]
    wait_victim(u, 1, 30, "the victim to be up")
    victim.kill()
    m, took = wait_victim(u, 0, 15, "redis_up{job=victim} to drop after SIGKILL")
    expect(failure_reasons(m, "victim") == ["connect"],
           f"killed victim: reasons {failure_reasons(m, 'victim')}")
    bound = VICTIM_INTERVAL + VICTIM_TIMEOUT + 1.5 * TIME_SCALE
    expect(took <= bound, f"redis_up went to 0 {took:.2f}s after SIGKILL (want <= {bound:.1f}s)")
    expect(not m.find("redis_instance_info", job="victim"), "a down server still has instance info")
    time.sleep(2)  # down for a few runs: the backoff grows
    victim.start()
    m, back = wait_victim(u, 1, 30, "redis_up{job=victim} to recover after a restart")
    print(f"      measured: redis_up 0 {took:.2f}s after SIGKILL; 1 again {back:.2f}s after the "
          f"restart", flush=True)
    expect(m.value("redis_uptime_in_seconds", job="victim") < 30, "not the restarted server")


def check_shutdown_cancels_hung_run(h, ctx):
    # A second usherd whose one probe waits on a server that never answers,
    # with a long timeout: SIGTERM must not wait for the run (the type's
    # cancel cuts the wait short on the worker thread). "slow-160" is a
    # name whose start phase in a 30s interval is 66ms, so it runs at once.
    hang = HangServer(h)
    u2 = start_usherd(h, "probes:\n  - {name: slow-160, type: redis, address: "
                         f"\"127.0.0.1:{hang.port}\", interval: 30s, timeout: 25s}}\n",
                      name="usherd-shutdown")
    wait_until(lambda: hang.accepted >= 1, 10, "the probe to connect to the silent server")
    time.sleep(0.5)
    took = u2.stop_checked(limit=10)
    print(f"      measured: usherd stopped {took:.2f}s after SIGTERM while a run waited on a "
          f"silent server (timeout 25s)", flush=True)
    expect(took < 2.0, f"usherd took {took:.1f}s to stop with a hung run: it was not cancelled")


if __name__ == "__main__":
    main("redis_probe", setup, [check_outcomes, check_exporter_series, check_counters_move,
                                check_key_patterns_complete, check_key_budget_truncates,
                                check_replica, check_auth, check_tls,
                                check_one_connection_per_target, check_hung_server,
                                check_killed_server, check_shutdown_cancels_hung_run])
