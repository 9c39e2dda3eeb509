"""usher backup redis against a real redis-server with a password: the RDB
snapshot (over SYNC) goes through the same encrypted stream and manifest;
restore --to-file gives back an RDB that a fresh redis-server loads with
every key and value; a wrong password is a clear failure."""

import json
import os
import sys

from cacheservers import RedisServer
from harness import Harness, expect, parse_metrics, run, usher_binary


KEY = "d4" * 32


def usher(*args):
    return run([usher_binary("USHER", "usher"), *map(str, args)], timeout=120)


def main():
    with Harness("backup-redis") as h:
        src = RedisServer(h, "src", extra='requirepass "pa:ss"\n')
        c = src.client()
        pipe = []
        for i in range(5000):
            pipe.append(("SET", f"hold:{i}", f"seat-{i}-" + "x" * (i % 50)))
        for i in range(200):
            pipe.append(("HSET", f"booking:{i}", "seat", str(i), "status", "paid"))
        pipe.append(("SELECT", "2"))
        pipe.append(("RPUSH", "queue", "a", "b", "c"))
        for reply in c.pipeline(pipe):
            expect(not isinstance(reply, Exception), f"seeding: {reply}")
        c.close()
        key = h.write("k", KEY, mode=0o600)
        repo, textfile = h.path("repo"), h.path("textfile")
        textfile.mkdir()
        cfg = h.write("usher.yml", f"""
probes:
  - name: seat-cache
    type: redis
    address: "127.0.0.1:{src.port}"
    password: "pa:ss"
textfile_dir: {textfile}
backup:
  repository: {repo}
  encryption_key: "{KEY}"
  targets: [seat-cache]
""")
        # without --target: every redis entry of backup.targets
        r = usher("backup", "redis", "--config", cfg, "--quiet")
        expect(r.returncode == 0, f"backup redis: {r.stderr.decode()}")
        bid = r.stdout.decode().strip()
        expect(bid.startswith("seat-cache_"), bid)
        m = json.loads((repo / bid / "manifest.json").read_text())
        expect(m["kind"] == "redis" and m["server_version"].count(".") == 2, m)
        keys = {t["table"]: t["rows"] for t in m["tables"]}
        expect(keys == {"db0": 5200, "db2": 1}, f"keyspace in manifest: {keys}")
        prom = parse_metrics((textfile / "usher_backup_seat-cache.prom").read_text())
        expect(prom.value("usher_backup_last_status", target="seat-cache") == 1, "status")

        r = usher("backup", "verify", "--config", cfg)
        expect(r.returncode == 0 and bid in r.stdout.decode(), r.stderr.decode())

        # a redis backup cannot go into a database
        r = usher("restore", bid, "--config", cfg, "--to", "dbname=x")
        expect(r.returncode == 1 and "--to-file" in r.stderr.decode(), r.stderr.decode())
        rdb_dir = h.path("restored")
        rdb_dir.mkdir()
        r = usher("restore", bid, "--config", cfg, "--to-file", rdb_dir / "dump.rdb")
        expect(r.returncode == 0, f"restore --to-file: {r.stderr.decode()}")
        expect((rdb_dir / "dump.rdb").read_bytes()[:5] == b"REDIS", "not an RDB file")

        # a fresh server loads it: every key back
        dst = RedisServer(h, "dst", extra=f"dir {rdb_dir}\ndbfilename dump.rdb\n")
        d = dst.client()
        expect(d.call("DBSIZE") == 5200, f"DBSIZE {d.call('DBSIZE')}")
        expect(d.call("GET", "hold:4999") == b"seat-4999-" + b"x" * (4999 % 50), "value")
        expect(d.call("HGET", "booking:7", "status") == b"paid", "hash")
        d.call("SELECT", "2")
        expect(d.call("LRANGE", "queue", "0", "-1") == [b"a", b"b", b"c"], "list in db 2")
        d.close()

        # a wrong password: exit 1, the reason, status 0 in the metrics
        r = usher("backup", "redis", "--dsn", f"redis://:wrong@127.0.0.1:{src.port}",
                  "--name", "seat-cache", "--repo", repo, "--key-file", key,
                  "--textfile-dir", textfile, "--quiet")
        expect(r.returncode == 1 and ("WRONGPASS" in r.stderr.decode() or "invalid" in
                                      r.stderr.decode()), f"wrong password: {r.stderr.decode()}")
        prom = parse_metrics((textfile / "usher_backup_seat-cache.prom").read_text())
        expect(prom.value("usher_backup_last_status", target="seat-cache") == 0, "status 0")
        expect(prom.value("usher_backup_last_success_timestamp_seconds", target="seat-cache")
               > 0, "last success kept")
        expect(list(repo.glob("*.partial")) == [], "partial left after a failure")
        # a host that does not resolve
        r = usher("backup", "redis", "--dsn", "redis://:pa:ss@nonexistent.invalid", "--repo",
                  repo, "--key-file", key, "--quiet")
        expect(r.returncode == 1 and "cannot resolve" in r.stderr.decode(), r.stderr.decode())
        # the unix socket, without and with the password
        r = usher("backup", "redis", "--dsn", f"unix:{src.unix}", "--name", "sock", "--repo",
                  repo, "--key-file", key, "--quiet")
        expect(r.returncode == 1 and "NOAUTH" in r.stderr.decode(),
               f"unix socket without password: {r.stderr.decode()}")
        r = usher("backup", "redis", "--dsn", f"redis://:pa:ss@unix:{src.unix}", "--name",
                  "sock", "--repo", repo, "--key-file", key, "--quiet")
        expect(r.returncode == 0 and r.stdout.decode().startswith("sock_"),
               f"unix socket with password: {r.stderr.decode()}")
        if h.problems:
            raise AssertionError("\n".join(h.problems))
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
