#!/usr/bin/env python3
"""Times pydicom's dcmread(stop_before_pixels=True) over files, median of N runs (in-process)."""
import statistics
import sys
import time
import warnings

import pydicom

warnings.simplefilter("ignore")
repeats = int(sys.argv[1])
files = [line.strip() for line in sys.stdin if line.strip()]
size = 0
import os
for f in files:
    size += os.path.getsize(f)
times = []
for _ in range(repeats):
    start = time.perf_counter()
    for f in files:
        try:
            pydicom.dcmread(f, stop_before_pixels=True, force=True)
        except Exception:
            pass
    times.append(time.perf_counter() - start)
median = statistics.median(times)
print(f"files={len(files)} bytes={size} median_s={median} files_per_s={int(len(files) / median)} MB_per_s={int(size / 1e6 / median)}")
