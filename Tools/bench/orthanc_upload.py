#!/usr/bin/env python3
"""Uploads every file under a folder to Orthanc's REST API (POST /instances) with N threads,
one keep-alive connection each; prints instances/s and MB/s. Usage: orthanc_upload.py URL DIR THREADS"""
import os
import sys
from urllib.parse import urlparse

import uploader

url, folder, threads = urlparse(sys.argv[1]), sys.argv[2], int(sys.argv[3])
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)


def send(conn, path):
    with open(path, "rb") as f:
        body = f.read()
    conn.request("POST", "/instances", body=body, headers={"Content-Type": "application/dicom"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


elapsed, failures = uploader.run(url.hostname, url.port, threads, files, send)
size = sum(os.path.getsize(f) for f in files)
print(f"orthanc: instances={len(files)} failed={len(failures)} seconds={elapsed:.2f} "
      f"instances_per_s={len(files) / elapsed:.1f} MB_per_s={size / 1e6 / elapsed:.1f}")
