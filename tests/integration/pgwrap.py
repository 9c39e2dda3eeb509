"""Runs a command with a throwaway PostgreSQL: `python3 pgwrap.py CMD ARG...`
starts a server (pgserver.py) with a login role and database for usher, runs
CMD with USHER_TEST_PG_DSN set to a URI for it, stops the server and exits
with CMD's status. Unit tests of PostgreSQL-backed code (test_incident_pg)
re-run themselves under it, so they always meet a real server."""

import os
import subprocess
import sys

from harness import Harness, TIME_SCALE
from pgserver import PgServer


def run_with_pg(argv):
    h = Harness("pgwrap")
    try:
        pg = PgServer(h).start()
        pg.create_login("usher", "usher-test-pw", db="usher")
        env = {**os.environ, "USHER_TEST_PG_DSN": pg.dsn("usher", "usher-test-pw", db="usher")}
        try:
            return subprocess.run(argv, env=env, timeout=240 * TIME_SCALE,
                                  check=False).returncode
        except subprocess.TimeoutExpired:
            print(f"pgwrap: {argv[0]} timed out", file=sys.stderr)
            return 1
    finally:
        h.close()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: pgwrap.py CMD [ARG...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_with_pg(sys.argv[1:]))
