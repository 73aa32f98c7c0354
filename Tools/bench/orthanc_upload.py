#!/usr/bin/env python3
"""Uploads every file under a folder to Orthanc's REST API (POST /instances) with N threads,
one keep-alive connection each; prints instances/s and MB/s. Usage: orthanc_upload.py URL DIR THREADS"""
import sys
from urllib.parse import urlparse

import uploader

url, folder, threads = urlparse(sys.argv[1]), sys.argv[2], int(sys.argv[3])
files = uploader.files(folder)


def send(conn, path):
    with open(path, "rb") as f:
        body = f.read()
    return uploader.post(conn, "/instances", body, {"Content-Type": "application/dicom"})


elapsed, failures = uploader.run(url.hostname, url.port, threads, files, send)
print(f"orthanc: instances={len(files)} failed={len(failures)} {uploader.rates(files, elapsed)}")
