#!/usr/bin/env python3
"""The "viewer load" of issue 15: fetch every URL of a file (one per line, e.g. every frame of a
series) the way a browser viewer would, and time it.

  --mode h1 --connections 6   HTTP/1.1 on at most 6 connections at once (a browser's per-host limit)
  --mode h2                   one HTTP/2 connection, all requests multiplexed on it (at most
                              --streams at once: Tessera allows 100 per connection); h2 by ALPN
                              for https://, h2c with prior knowledge for http:// (tessera serve
                              --http2-cleartext)

The clients are C (curl --parallel for HTTP/1.1, nghttp2's h2load for HTTP/2; Debian
nghttp2-client), so that the client's own cost is small next to the server's. Prints one JSON line:
  {mode, frames, seconds (wall time of the whole load), p50_ms, p99_ms (per request, from its
   start on a connection to its last byte), bytes, connections (opened), http_versions, statuses}
A status other than 200, a URL not answered, or a mode not getting the HTTP version it asked
for exits 1 (after printing the report).

Usage: viewer_load.py URLS --mode h1|h2 [--connections 6] [--streams 100] [--cacert CA | --insecure]
       [--header 'Authorization: Bearer KEY'] [--accept TYPE ('' for none)]
(--cacert/--insecure: HTTP/1.1 over https; h2load does not verify certificates.)
"""
import argparse
import json
import os
import re
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
    headers = a.header + ([f"Accept: {a.accept}"] if a.accept else [])
    report = (over_http1 if a.mode == "h1" else over_http2)(a, urls, headers)
    print(json.dumps(report))


def summary(mode, seconds, times_ms, statuses, versions, body_bytes, connections):
    return {"mode": mode, "frames": len(times_ms), "seconds": round(seconds, 4),
            "p50_ms": round(percentile(times_ms, 50), 2) if times_ms else None,
            "p99_ms": round(percentile(times_ms, 99), 2) if times_ms else None,
            "bytes": body_bytes, "connections": connections, "http_versions": versions, "statuses": statuses}


def over_http1(a, urls, headers):
    """curl --parallel: up to --connections transfers at once, each on its own connection,
    the rest queued and started as one ends (a browser's per-host queue)."""
    command = ["curl", "--silent", "--show-error", "--parallel", "--http1.1", "--parallel-max", str(a.connections)]
    if a.cacert:
        command += ["--cacert", a.cacert]
    if a.insecure:
        command += ["--insecure"]
    for header in headers:
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
    statuses = sorted({int(r[0]) for r in rows})
    versions = sorted({r[1] for r in rows})
    report = summary("h1", seconds, [float(r[2]) * 1000 for r in rows], statuses, versions,
                     sum(int(r[3]) for r in rows), sum(int(r[4]) for r in rows))
    if done.returncode != 0 or len(rows) != len(urls) or statuses != [200] or versions != ["1.1"]:
        fail(report, f"curl exit {done.returncode}: {done.stderr.strip()[:500]}")
    return report


def over_http2(a, urls, headers):
    """h2load (nghttp2) with one client: one connection, up to --streams requests in flight on
    it, every URL once. (curl 7.88's --parallel over h2c with prior knowledge fails every transfer
    but the first with "Error in the HTTP2 framing layer", against nginx as against Tessera.)
    h2load checks no certificate: --cacert is not used here."""
    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
    log.close()
    urls_file = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    urls_file.write("\n".join(urls) + "\n")
    urls_file.close()
    command = ["h2load", "--clients", "1", "--max-concurrent-streams", str(a.streams), "--requests", str(len(urls)),
               "--input-file", urls_file.name, "--log-file", log.name]
    for header in headers:
        command += ["--header", header]
    try:
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        rows = [line.split("\t") for line in open(log.name) if line.strip()]
    finally:
        os.unlink(log.name)
        os.unlink(urls_file.name)
    out = done.stdout
    protocol = re.search(r"Application protocol: (\S+)", out)
    data = re.search(r"traffic: .*?, .*?, \S+ \((\d+)\) data", out)
    statuses = sorted({int(r[1]) for r in rows})
    versions = ["2"] if protocol and protocol.group(1) in ("h2", "h2c") else [protocol.group(1) if protocol else "none"]
    report = summary("h2", seconds, [int(r[2]) / 1000 for r in rows], statuses, versions,
                     int(data.group(1)) if data else None, 1)
    if done.returncode != 0 or len(rows) != len(urls) or statuses != [200] or versions != ["2"]:
        fail(report, f"h2load exit {done.returncode}: {(done.stderr + out).strip()[-500:]}")
    return report


def fail(report, why):
    print(json.dumps(report))
    sys.exit(f"viewer_load.py: {why}")


if __name__ == "__main__":
    main()
