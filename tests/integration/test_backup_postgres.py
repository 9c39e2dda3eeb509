"""usher backup postgres / list / verify / restore against a real PostgreSQL
with a booking-like dataset: backup -> restore -> every table's ordered
contents hash the same; row counts in the manifest; a non-empty target is
refused without --force; the freshness textfile is written atomically with
the contract's metric names; expire --dry-run."""

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from harness import Harness, expect, parse_metrics, run, usher_binary
from pgserver import PgServer, booking_dataset_sql, table_hashes

KEY = "5f" * 32


def setup(h):
    pg = PgServer(h).start()
    pg.create_login("usher", "s3cr3t-pw", db="booking")
    pg.sql("ALTER ROLE usher CREATEDB")
    h.write("data.sql", booking_dataset_sql(3000))
    pg.sql_file(h.path("data.sql"), db="booking")
    pg.sql("ALTER SCHEMA public OWNER TO usher; ALTER SCHEMA audit OWNER TO usher", db="booking")
    for t in ("venues", "seats", "events", "customers", "bookings", 'audit."Log Entries"'):
        pg.sql(f"ALTER TABLE {t} OWNER TO usher", db="booking")
    key = h.write("backup.key", KEY + "\n", mode=0o600)
    textfile = h.path("textfile")
    textfile.mkdir()
    repo = h.path("repo")
    dsn = pg.dsn("usher", "s3cr3t-pw", db="booking")
    cfg = h.write("usher.yml", f"""
probes:
  - name: main-db
    type: postgres
    dsn: "{dsn}"
textfile_dir: {textfile}
backup:
  repository: {repo}
  encryption_key: "${{file:{key}}}"
  compression: {{level: 3, threads: 2}}
  targets: [main-db]
""")
    return pg, cfg, repo, textfile, key


def usher(h, *args, timeout=120, env=None):
    return run([usher_binary("USHER", "usher"), *map(str, args)], timeout=timeout, env=env)


def main():
    with Harness("backup-postgres") as h:
        pg, cfg, repo, textfile, key = setup(h)

        # the password never shows on pg_dump's command line: it is in its
        # environment; a ps listing during the backup would show argv only
        r = usher(h, "backup", "postgres", "--config", cfg, "--target", "main-db")
        expect(r.returncode == 0, f"backup failed ({r.returncode}): {r.stderr.decode()}")
        backup_id = r.stdout.decode().strip()
        expect(backup_id.startswith("main-db_") and "\n" not in backup_id,
               f"backup printed {backup_id!r}, not one id")
        expect(r.stderr == b"", f"backup wrote to stderr when piped: {r.stderr.decode()!r}")
        expect((repo / backup_id / "manifest.json").is_file(), "no manifest.json")
        expect(not list(repo.glob("*.partial")), "a .partial directory was left behind")
        manifest = json.loads((repo / backup_id / "manifest.json").read_text())
        for field in ("id", "target", "database", "server_version", "tool_version",
                      "start_time", "stop_time", "raw_bytes", "stored_bytes", "sha256",
                      "compression", "encryption", "tables"):
            expect(field in manifest, f"manifest lacks {field}: {manifest}")
        expect(manifest["database"] == "booking", f"database {manifest['database']}")
        expect(manifest["tool_version"].startswith("pg_dump (PostgreSQL)"),
               f"tool_version {manifest['tool_version']}")
        expect(manifest["encryption"]["algorithm"] == "aes-256-gcm", "cipher")
        counts = {f'{t["schema"]}.{t["table"]}': t["rows"] for t in manifest["tables"]}
        expect(counts.get("public.bookings") == 3000 and counts.get("public.seats") == 10000
               and counts.get("audit.Log Entries") == 50, f"row counts {counts}")
        data = (repo / backup_id / manifest["data_file"]).read_bytes()
        expect(b"Customer 1" not in data and b"booking" not in data,
               "the data file holds plaintext")
        expect(len(data) == manifest["stored_bytes"], "stored_bytes")
        expect(manifest["raw_bytes"] > len(data), "zstd did not compress")

        # freshness metrics, written atomically under the contract's names
        prom = textfile / "usher_backup_main-db.prom"
        expect(prom.is_file(), f"no textfile: {list(textfile.iterdir())}")
        expect(not [p for p in textfile.iterdir() if p.name.endswith(".tmp")],
               "a temp file was left in the textfile dir")
        m = parse_metrics(prom.read_text())
        for name in ("usher_backup_last_success_timestamp_seconds",
                     "usher_backup_last_size_bytes", "usher_backup_last_duration_seconds",
                     "usher_backup_last_status"):
            expect(m.value(name, target="main-db") is not None, f"{name} missing:\n{prom.read_text()}")
        expect(m.value("usher_backup_last_status", target="main-db") == 1, "status")
        expect(m.value("usher_backup_last_size_bytes", target="main-db") == len(data), "size")
        promtool = run(["promtool", "check", "metrics"], input_bytes=prom.read_bytes())
        expect(promtool.returncode == 0, f"promtool check metrics: {promtool.stdout.decode()}"
                                         f"{promtool.stderr.decode()}")

        # list, as a table and as JSON
        r = usher(h, "backup", "list", "--config", cfg)
        expect(r.returncode == 0 and backup_id in r.stdout.decode(), r.stdout.decode())
        r = usher(h, "backup", "list", "--config", cfg, "--json")
        listed = json.loads(r.stdout)
        expect([b["id"] for b in listed] == [backup_id], f"list --json: {listed}")
        expect(listed[0]["stored_bytes"] == len(data), "list stored_bytes")

        # verify re-reads everything
        r = usher(h, "backup", "verify", "--config", cfg, backup_id)
        expect(r.returncode == 0 and r.stdout.decode().startswith("ok"),
               f"verify: {r.returncode} {r.stdout.decode()} {r.stderr.decode()}")
        vprom = parse_metrics((textfile / "usher_backup_verify_main-db.prom").read_text())
        expect(vprom.value("usher_backup_verify_last_status", target="main-db") == 1,
               "verify status metric")

        # restore into a new database on the same server: contents hash the same
        r = usher(h, "restore", backup_id, "--config", cfg, "--to-db", "restored", "--jobs", "2")
        expect(r.returncode == 0, f"restore failed ({r.returncode}): {r.stderr.decode()}")
        expect("row counts match" in r.stdout.decode(), r.stdout.decode())
        before, after = table_hashes(pg, "booking"), table_hashes(pg, "restored")
        expect(len(before) == 6, f"tables: {sorted(before)}")
        expect(before == after, f"restored contents differ:\n{before}\n{after}")
        indexes = pg.sql("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'",
                         db="restored")
        expect(indexes == pg.sql("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'",
                                 db="booking"), "indexes not restored")
        fks = "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
        expect(pg.sql(fks, db="restored") == pg.sql(fks, db="booking") == "5", "foreign keys")

        # a database that holds tables is refused without --force
        r = usher(h, "restore", backup_id, "--config", cfg, "--to-db", "restored")
        expect(r.returncode == 1 and "not empty" in r.stderr.decode() and "--force" in
               r.stderr.decode(), f"non-empty target: {r.returncode} {r.stderr.decode()}")
        pg.sql("DELETE FROM audit.\"Log Entries\" WHERE id > 10", db="restored")
        r = usher(h, "restore", backup_id, "--config", cfg, "--to-db", "restored", "--force")
        expect(r.returncode == 0, f"restore --force: {r.stderr.decode()}")
        expect(table_hashes(pg, "restored") == before, "--force did not restore the contents")

        # restore --to DSN (a direct DSN; the database must exist)
        pg.sql("CREATE DATABASE tampered OWNER usher")
        dsn = pg.dsn("usher", "s3cr3t-pw", db="tampered")
        r = usher(h, "restore", backup_id, "--config", cfg, "--to", dsn, "--no-owner")
        expect(r.returncode == 0, f"restore --to: {r.stderr.decode()}")
        expect(table_hashes(pg, "tampered") == before, "restore --to: contents differ")

        # the row counts after a restore are compared with the manifest's: an
        # event trigger in the target that makes bookings drop every odd-priced
        # row as it is copied in makes the restore fail, naming the table
        pg.sql("CREATE DATABASE sabotaged OWNER usher")
        pg.sql("""
CREATE FUNCTION public.drop_odd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.price_cents % 2 = 1 THEN RETURN NULL; END IF; RETURN NEW; END $$;
CREATE FUNCTION public.sabotage() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
    IF r.object_identity = 'public.bookings' THEN
      EXECUTE 'CREATE TRIGGER sabotage BEFORE INSERT ON public.bookings FOR EACH ROW '
              'EXECUTE FUNCTION public.drop_odd()';
    END IF;
  END LOOP;
END $$;
CREATE EVENT TRIGGER sabotage ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION public.sabotage();
""", db="sabotaged")
        r = usher(h, "restore", backup_id, "--config", cfg, "--to",
                  pg.dsn("usher", "s3cr3t-pw", db="sabotaged"))
        err = r.stderr.decode()
        expect(r.returncode == 1 and "public.bookings: 1500 rows, the backup had 3000" in err
               and "1 of 6 tables" in err, f"row count mismatch: {r.returncode} {err}")

        # an edited manifest is refused: its hmac no longer matches
        mpath = repo / backup_id / "manifest.json"
        original = mpath.read_text()
        edited = json.loads(original)
        edited["tables"][0]["rows"] += 1
        mpath.write_text(json.dumps(edited))
        r = usher(h, "restore", backup_id, "--config", cfg, "--to", dsn, "--force")
        expect(r.returncode == 1 and "was modified" in r.stderr.decode(),
               f"edited manifest: {r.returncode} {r.stderr.decode()}")
        mpath.write_text(original)

        # --to-file writes the plain pg_dump archive, which pg_restore lists
        out = h.path("dump.custom")
        r = usher(h, "restore", backup_id, "--config", cfg, "--to-file", out)
        expect(r.returncode == 0 and out.stat().st_size == manifest["raw_bytes"],
               f"--to-file: {r.stderr.decode()}")
        listing = run([str(pg.bin / "pg_restore"), "--list", str(out)])
        expect(listing.returncode == 0 and b"TABLE DATA public bookings" in listing.stdout,
               "pg_restore --list of --to-file output")
        r = usher(h, "restore", backup_id, "--config", cfg, "--to-file", out)
        expect(r.returncode == 1 and "will not overwrite" in r.stderr.decode(),
               "--to-file overwrote an existing file")

        # a progress line on a terminal (stderr a pty), none with --quiet
        def on_tty(*args):
            master, slave = pty.openpty()
            p = subprocess.run([usher_binary("USHER", "usher"), *map(str, args)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=slave, timeout=120)
            os.close(slave)
            out = b""
            while select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            os.close(master)
            return p, out.decode(errors="replace")

        p, tty = on_tty("backup", "verify", "--config", cfg, backup_id)
        expect(p.returncode == 0 and "raw," in tty and "100%" in tty and "MiB/s" in tty,
               f"no progress bar on a terminal: {tty!r}")
        p, tty = on_tty("backup", "verify", "--config", cfg, "--quiet", backup_id)
        expect(p.returncode == 0 and tty == "", f"--quiet still drew: {tty!r}")

        # more backups, then expire --dry-run says what stays and removes nothing
        ids = [backup_id]
        for _ in range(3):
            r = usher(h, "backup", "postgres", "--config", cfg, "--quiet")
            expect(r.returncode == 0, f"backup: {r.stderr.decode()}")
            ids.append(r.stdout.decode().strip())
        expect(len(set(ids)) == 4, f"ids not unique: {ids}")
        r = usher(h, "backup", "expire", "--config", cfg, "--dry-run", "--keep-last", "2")
        out_text = r.stdout.decode()
        expect(r.returncode == 0, f"expire --dry-run: {r.stderr.decode()}")
        expect("keeping 2, would remove 2" in out_text and "recovery window" in out_text,
               out_text)
        for i in ids[2:]:
            expect(f"keep    {i} (last)" in out_text, f"{i} not kept:\n{out_text}")
        for i in ids[:2]:
            expect(f"remove  {i}" in out_text, f"{i} not listed for removal:\n{out_text}")
        expect(all((repo / i).is_dir() for i in ids), "--dry-run removed something")
        r = usher(h, "backup", "expire", "--config", cfg)
        expect(r.returncode == 2 and "no retention" in r.stderr.decode(),
               "expire without retention must refuse")
        r = usher(h, "backup", "expire", "--config", cfg, "--keep-last", "2")
        expect(r.returncode == 0, r.stderr.decode())
        expect(sorted(p.name for p in repo.iterdir() if p.name != "locks") == sorted(ids[2:]),
               f"after expire: {list(repo.iterdir())}")

        # usage errors are exit 2
        r = usher(h, "backup", "postgres", "--config", cfg, "--target", "nope")
        expect(r.returncode == 2 and "neither a probe" in r.stderr.decode(), r.stderr.decode())
        r = usher(h, "backup", "postgres", "--repo", repo, "--dsn", dsn)
        expect(r.returncode == 2 and "no encryption key" in r.stderr.decode(), r.stderr.decode())
        r = usher(h, "backup", "postgres", "--repo", repo, "--dsn", dsn, "--key-file", key,
                  "--lock-wait", "soon")
        expect(r.returncode == 2, "bad --lock-wait")
        # a direct DSN without a config works too
        r = usher(h, "backup", "postgres", "--repo", repo, "--dsn", dsn, "--key-file", key,
                  "--quiet")
        expect(r.returncode == 0 and r.stdout.decode().startswith(f"pg-127.0.0.1-{pg.port}-tampered_"),
               f"--dsn backup: {r.stdout.decode()} {r.stderr.decode()}")
        if h.problems:
            raise AssertionError("\n".join(h.problems))
    print("ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report and fail
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
