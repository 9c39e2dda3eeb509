"""A damaged or tampered backup is refused by verify and by restore with a
message that says what is wrong: a flipped byte, a truncated file, two
chunks swapped, a wrong key. The restore target stays empty and no
decrypted temp file is left behind."""

import json
import os
import shutil
import struct
import sys

from harness import Harness, expect, parse_metrics, run, usher_binary
from pgserver import PgServer, booking_dataset_sql

KEY = "a1" * 32
OTHER_KEY = "b2" * 32
HEADER = 64


def usher(*args, env=None):
    return run([usher_binary("USHER", "usher"), *map(str, args)], timeout=120, env=env)


def chunks(data):
    """Offsets of the stream's chunks (header, then length word | data | tag)."""
    out, pos = [], HEADER
    while pos + 4 <= len(data):
        out.append(pos)
        (word,) = struct.unpack(">I", data[pos:pos + 4])
        pos += 4 + (word & 0x7FFFFFFF) + 16
    expect(pos == len(data), "chunk walk did not end at the end of the file")
    return out


def main():
    with Harness("backup-tamper") as h:
        pg = PgServer(h).start()
        h.write("data.sql", booking_dataset_sql(40000))
        pg.sql("CREATE DATABASE booking")
        pg.sql_file(h.path("data.sql"), db="booking")
        pg.sql("CREATE DATABASE target")
        key = h.write("k", KEY, mode=0o600)
        other = h.write("other", OTHER_KEY + "\n", mode=0o600)
        repo, textfile, tmp = h.path("repo"), h.path("textfile"), h.path("tmp")
        textfile.mkdir()
        tmp.mkdir()
        env = {**os.environ, "TMPDIR": str(tmp)}
        dsn = f"host={pg.sockdir} port={pg.port} user=postgres dbname=booking"
        target = f"host={pg.sockdir} port={pg.port} user=postgres dbname=target"
        common = ["--repo", repo, "--key-file", key]

        r = usher("backup", "postgres", "--dsn", dsn, "--name", "main", "--quiet",
                  "--textfile-dir", textfile, *common, env=env)
        expect(r.returncode == 0, f"backup: {r.stderr.decode()}")
        good_id = r.stdout.decode().strip()
        manifest = json.loads((repo / good_id / "manifest.json").read_text())
        data_path = repo / good_id / manifest["data_file"]
        good = data_path.read_bytes()
        offs = chunks(good)
        expect(len(offs) >= 3, f"need 3 chunks for the swap case, got {len(offs)} "
                               f"({len(good)} bytes)")

        def damaged(name, data):
            """A repository holding the good backup (same id, same signed
            manifest) with data in place of its data file."""
            r = h.path(f"repo-{name}")
            shutil.copytree(repo / good_id, r / good_id)
            (r / good_id / manifest["data_file"]).write_bytes(data)
            return r

        flipped = bytearray(good)
        flipped[offs[1] + 4 + 1000] ^= 0x01
        swapped = bytearray(good)
        a, b, c = offs[0], offs[1], offs[2]
        expect(b - a == c - b, "chunks 0 and 1 differ in size")
        swapped[a:b], swapped[b:c] = good[b:c], good[a:b]
        cases = [
            ("1", bytes(flipped), key, "chunk 1 (at byte"),
            ("2", good[:offs[2] + 100], key, "truncated: the file ends inside chunk 2"),
            ("3", good[:offs[-1]], key, "truncated: the file ends after"),
            ("4", bytes(swapped), key, "chunk 0 (at byte 64) failed authentication"),
            ("5", good, other, "wrong key"),
        ]
        for name, data, k, message in cases:
            crepo = damaged(name, data)
            r = usher("backup", "verify", good_id, "--repo", crepo, "--key-file", k,
                      "--textfile-dir", textfile, env=env)
            err = r.stderr.decode()
            expect(r.returncode == 1 and message in err and good_id in err,
                   f"verify of case {name}: exit {r.returncode}, want {message!r}: {err}")
            expect(r.stdout.decode().startswith("FAILED"), r.stdout.decode())
            vm = parse_metrics((textfile / "usher_backup_verify_main.prom").read_text())
            expect(vm.value("usher_backup_verify_last_status", target="main") == 0,
                   "verify status metric not 0 after a failure")
            r = usher("restore", good_id, "--repo", crepo, "--key-file", k, "--to", target,
                      env=env)
            err = r.stderr.decode()
            expect(r.returncode == 1 and message in err,
                   f"restore of case {name}: exit {r.returncode}, want {message!r}: {err}")
            expect(pg.sql("SELECT count(*) FROM pg_class WHERE relnamespace = "
                          "'public'::regnamespace", db="target") == "0",
                   f"case {name}: restore wrote into the target")
            expect(list(tmp.iterdir()) == [], f"case {name}: temp files left: "
                                              f"{list(tmp.iterdir())}")
            # the wrong key fails before reading; the others while reading
            expect(name != "5" or "was encrypted with key id" in err, err)
        # a data file replaced by another valid stream is caught by the sha256
        r = usher("backup", "postgres", "--dsn", dsn, "--name", "main", "--quiet", *common,
                  env=env)
        expect(r.returncode == 0, r.stderr.decode())
        second = r.stdout.decode().strip()
        crepo = damaged("6", (repo / second / manifest["data_file"]).read_bytes())
        r = usher("backup", "verify", good_id, "--repo", crepo, "--key-file", key, env=env)
        expect(r.returncode == 1 and "not the one the manifest describes" in r.stderr.decode(),
               f"replaced data file: {r.stderr.decode()}")
        # an edited manifest (row counts, sizes, checksums) fails its hmac
        crepo = damaged("7", good)
        mpath = crepo / good_id / "manifest.json"
        edited = json.loads(mpath.read_text())
        edited["tables"][0]["rows"] += 1
        mpath.write_text(json.dumps(edited, indent=2))
        for cmd in (["backup", "verify", good_id], ["restore", good_id, "--to", target]):
            r = usher(*cmd, "--repo", crepo, "--key-file", key, env=env)
            expect(r.returncode == 1 and "manifest of" in r.stderr.decode() and
                   "was modified" in r.stderr.decode(), f"edited manifest: {r.stderr.decode()}")
        # the good one still verifies and restores
        r = usher("backup", "verify", good_id, "--repo", repo, "--key-file", key, env=env)
        expect(r.returncode == 0, f"good backup: {r.stderr.decode()}")
        r = usher("backup", "verify", "--all", "--repo", repo, "--key-file", key, env=env)
        expect(r.returncode == 0 and r.stdout.decode().count("ok ") == 2,
               f"verify --all:\n{r.stdout.decode()}")
        r = usher("restore", good_id, "--repo", repo, "--key-file", key, "--to", target,
                  env=env)
        expect(r.returncode == 0, f"good restore: {r.stderr.decode()}")
        expect(list(tmp.iterdir()) == [], "temp file left after a good restore")
        # a manifest that is not JSON is reported, not crashed on
        (repo / good_id / "manifest.json").write_text("{\"format\": 1, ")
        r = usher("backup", "list", "--repo", repo)
        expect(r.returncode == 0 and "skipping" in r.stderr.decode() and good_id in
               r.stderr.decode(), f"bad manifest in list: {r.stderr.decode()}")
        if h.problems:
            raise AssertionError("\n".join(h.problems))
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
