#!/usr/bin/env python3
"""Log path benchmark (issue 7, item 7): events per second into the file
sink, events per second delivered to a local Elasticsearch _bulk receiver,
and the CPU cost of logging at a normal event rate.

Compiles bench/logs/log_bench.c against a build's libusher.a, starts a
minimal _bulk receiver (stdlib HTTP server on a free loopback port that
gunzips each request, counts its actions and answers 201 for each without
parsing the documents, so the receiver is not what is measured), and runs:

  file   N events from one thread, as fast as it can log them
  bulk   N events, timed until the receiver acknowledged all of them
  rate   R events/s for S seconds into a file sink and an elasticsearch sink
         (the CPU of the whole process, every thread, as % of one core)

Each mode runs --reps times; the median is printed. Targets (issue 7):
>= 200k events/s to file, >= 50k events/s bulk, < 5% CPU at normal rates.

Example:
  python3 bench/logs/run.py --build build
"""

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1]
LIBS = ("libcurl yaml-0.1 jansson libpcre2-8 openssl zlib libpq hiredis libsystemd").split()


class Bulk(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        n = body.count(b"\n") // 2
        self.server.items += n
        out = (b'{"errors":false,"items":[' +
               b",".join([b'{"create":{"status":201}}'] * n) + b"]}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def build(build_dir, out):
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", *LIBS], check=True,
                           capture_output=True, text=True).stdout.split()
    cmd = ["cc", "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-D_DEFAULT_SOURCE",
           f"-I{SRC}/lib", f"-I{build_dir}/generated", str(HERE / "log_bench.c"),
           f"{build_dir}/lib/libusher.a", *flags, "-lpthread", "-lm", "-o", str(out)]
    subprocess.run(cmd, check=True)


def run(binary, *args):
    r = subprocess.run([str(binary), *map(str, args)], check=True, capture_output=True, text=True)
    line = r.stdout.strip().splitlines()[-1]
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def median(results, key):
    return statistics.median(float(r[key]) for r in results)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(SRC / "build"), help="the cmake build directory")
    ap.add_argument("--file-events", type=int, default=500000)
    ap.add_argument("--bulk-events", type=int, default=300000)
    ap.add_argument("--bulk-rate", type=float, default=0,
                    help="events/s the bulk run logs at (0: as fast as one thread can)")
    ap.add_argument("--rate", type=float, default=50, help="the normal event rate, events/s")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="usher-logbench-"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Bulk)
    httpd.items = 0
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        binary = tmp / "log_bench"
        build(Path(args.build).resolve(), binary)
        res = {"file": [], "bulk": [], "rate": []}
        for rep in range(args.reps):
            for mode in res:
                d = tmp / f"{mode}-{rep}"
                d.mkdir()
                if mode == "file":
                    res[mode].append(run(binary, "file", d, args.file_events))
                elif mode == "bulk":
                    before = httpd.items
                    r = run(binary, "bulk", d, args.bulk_events, url, args.bulk_rate)
                    got = httpd.items - before
                    # what the receiver acknowledged, over the time until the
                    # spool was empty; events the full queue dropped are not
                    # counted as delivered
                    r["delivered"] = got
                    r["dropped"] = args.bulk_events - got
                    r["delivered_events_per_s"] = got / float(r["delivered_seconds"])
                    res[mode].append(r)
                else:
                    res[mode].append(run(binary, "rate", d, args.seconds, args.rate, url))
                shutil.rmtree(d)
        print(f"file sink:      {median(res['file'], 'events_per_s'):,.0f} events/s "
              f"({median(res['file'], 'us_per_event'):.2f} us/event, one thread, "
              f"{args.file_events:,} events)")
        print(f"bulk sink:      {median(res['bulk'], 'delivered_events_per_s'):,.0f} events/s "
              f"acknowledged by the receiver ({args.bulk_events:,} events logged at "
              f"{median(res['bulk'], 'log_events_per_s'):,.0f} events/s; dropped by the full "
              f"queue: {', '.join(str(r['dropped']) for r in res['bulk'])})")
        print(f"normal rate:    {median(res['rate'], 'cpu_percent'):.3f} % of one core at "
              f"{args.rate:g} events/s into file + elasticsearch "
              f"({median(res['rate'], 'us_cpu_per_event'):.1f} us CPU per event, all threads)")
        print(f"(median of {args.reps}; {os.cpu_count()} CPUs)")
    finally:
        httpd.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
