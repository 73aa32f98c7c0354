#!/usr/bin/env python3
"""STOW-RS load: posts every file under a folder to a DICOMweb server's /studies with N client
threads (one keep-alive connection each), BATCH instances per multipart/related request; prints
instances/s and MB/s. Usage: stow_upload.py NAME BASE_URL DIR THREADS [BATCH]"""
import os
import sys
from urllib.parse import urlparse

import uploader

name, base, folder, threads = sys.argv[1], urlparse(sys.argv[2]), sys.argv[3], int(sys.argv[4])
batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)
batches = [files[i:i + batch] for i in range(0, len(files), batch)]
boundary = b"tessera-bench-boundary"


def send(conn, paths):
    body = bytearray()
    for p in paths:
        with open(p, "rb") as f:
            body += b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + f.read() + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    conn.request("POST", base.path.rstrip("/") + "/studies", body=bytes(body), headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=' + boundary.decode(),
        "Accept": "application/dicom+json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


elapsed, failures = uploader.run(base.hostname, base.port, threads, batches, send)
size = sum(os.path.getsize(f) for f in files)
print(f"{name}: stow instances={len(files)} batch={batch} clients={threads} failed_requests={len(failures)} "
      f"seconds={elapsed:.2f} instances_per_s={len(files) / elapsed:.1f} MB_per_s={size / 1e6 / elapsed:.1f}", flush=True)
if failures:
    print(f"{name}: first failure {failures[0][0][0]} status {failures[0][1]}", file=sys.stderr)
