#!/usr/bin/env python3
"""Uploads every file under a folder to Orthanc's REST API (POST /instances) with N threads,
one keep-alive connection each; prints instances/s and MB/s. Usage: orthanc_upload.py URL DIR THREADS"""
import http.client
import os
import sys
import threading
import time
from urllib.parse import urlparse

url, folder, threads = urlparse(sys.argv[1]), sys.argv[2], int(sys.argv[3])
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)
lock = threading.Lock()
queue = list(reversed(files))
failures = []


def worker():
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    while True:
        with lock:
            if not queue:
                break
            path = queue.pop()
        with open(path, "rb") as f:
            body = f.read()
        conn.request("POST", "/instances", body=body, headers={"Content-Type": "application/dicom"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            failures.append((path, resp.status))
    conn.close()


start = time.monotonic()
ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
elapsed = time.monotonic() - start
size = sum(os.path.getsize(f) for f in files)
print(f"orthanc: instances={len(files)} failed={len(failures)} seconds={elapsed:.2f} "
      f"instances_per_s={len(files) / elapsed:.1f} MB_per_s={size / 1e6 / elapsed:.1f}")
