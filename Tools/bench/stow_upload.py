#!/usr/bin/env python3
"""STOW-RS load: posts every file under a folder to a DICOMweb server's /studies with N client
threads (one keep-alive connection each), BATCH instances per multipart/related request; prints
instances/s and MB/s. Usage: stow_upload.py NAME BASE_URL DIR THREADS [BATCH]"""
import sys
from urllib.parse import urlparse

import uploader

name, base, folder, threads = sys.argv[1], urlparse(sys.argv[2]), sys.argv[3], int(sys.argv[4])
batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1
files = uploader.files(folder)
batches = [files[i:i + batch] for i in range(0, len(files), batch)]
boundary = b"tessera-bench-boundary"


def send(conn, paths):
    body = bytearray()
    for p in paths:
        with open(p, "rb") as f:
            body += b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + f.read() + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return uploader.post(conn, base.path.rstrip("/") + "/studies", bytes(body), {
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=' + boundary.decode(),
        "Accept": "application/dicom+json"})


elapsed, failures = uploader.run(base.hostname, base.port, threads, batches, send)
print(f"{name}: stow instances={len(files)} batch={batch} clients={threads} failed_requests={len(failures)} "
      f"{uploader.rates(files, elapsed)}", flush=True)
if failures:
    print(f"{name}: first failure {failures[0][0][0]} status {failures[0][1]}", file=sys.stderr)
