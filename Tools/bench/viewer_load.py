#!/usr/bin/env python3
"""The "viewer load" of issue 15: fetch every URL of a file (one per line, e.g. every frame of a
series) the way a browser viewer would, and time it.

  --mode h1 --connections 6   HTTP/1.1 on at most 6 connections at once (a browser's per-host limit)
  --mode h2                   one HTTP/2 connection, all requests multiplexed on it (at most
                              --streams at once: Tessera allows 100 per connection); h2 by ALPN
                              for https://, h2c with prior knowledge for http:// (tessera serve
                              --http2-cleartext)

The client is curl (--parallel; libcurl with nghttp2), so that the client's own cost is small
next to the server's and the same in both modes. Prints one JSON line:
  {mode, frames, seconds (wall time of the whole load), p50_ms, p99_ms (per request, from its
   start on a connection to its last byte), bytes, connections (opened), http_versions, statuses}
A status other than 200, or a mode not getting the HTTP version it asked for, exits 1.

Usage: viewer_load.py URLS --mode h1|h2 [--connections 6] [--streams 100] [--cacert CA | --insecure]
       [--header 'Authorization: Bearer KEY'] [--accept TYPE ('' for none)]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("urls")
    parser.add_argument("--mode", choices=["h1", "h2"], required=True)
    parser.add_argument("--connections", type=int, default=6, help="h1: connections at once")
    parser.add_argument("--streams", type=int, default=100, help="h2: requests in flight on the connection")
    parser.add_argument("--cacert")
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--accept", default=FRAMES)
    a = parser.parse_args()

    urls = [line.strip() for line in open(a.urls) if line.strip()]
    if not urls:
        sys.exit("viewer_load.py: no URLs in " + a.urls)
    command = ["curl", "--silent", "--show-error", "--parallel"]
    if a.mode == "h1":
        command += ["--http1.1", "--parallel-max", str(a.connections)]
    else:
        # --parallel-max within the server's SETTINGS_MAX_CONCURRENT_STREAMS, else curl opens a
        # second connection for the excess.
        tls = urls[0].startswith("https://")
        command += ["--http2" if tls else "--http2-prior-knowledge", "--parallel-max", str(a.streams)]
    if a.cacert:
        command += ["--cacert", a.cacert]
    if a.insecure:
        command += ["--insecure"]
    for header in a.header + ([f"Accept: {a.accept}"] if a.accept else []):
        command += ["--header", header]
    command += ["--write-out", "%{http_code} %{http_version} %{time_total} %{size_download} %{num_connects}\\n"]
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as config:
        for url in urls:
            config.write(f'url = "{url}"\noutput = "/dev/null"\n')
    command += ["--config", config.name]
    try:
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    finally:
        os.unlink(config.name)
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    statuses = sorted({r[0] for r in rows})
    versions = sorted({r[1] for r in rows})
    times = [float(r[2]) * 1000 for r in rows]
    report = {"mode": a.mode, "frames": len(rows), "seconds": round(seconds, 4),
              "p50_ms": round(percentile(times, 50), 2) if times else None,
              "p99_ms": round(percentile(times, 99), 2) if times else None,
              "bytes": sum(int(r[3]) for r in rows), "connections": sum(int(r[4]) for r in rows),
              "http_versions": versions, "statuses": [int(s) for s in statuses]}
    print(json.dumps(report))
    expected = "1.1" if a.mode == "h1" else "2"
    if done.returncode != 0 or len(rows) != len(urls) or statuses != ["200"] or versions != [expected]:
        sys.exit(f"viewer_load.py: curl exit {done.returncode}, {len(rows)}/{len(urls)} answered, "
                 f"statuses {statuses}, HTTP versions {versions} (wanted {expected}); {done.stderr.strip()[:500]}")


if __name__ == "__main__":
    main()
