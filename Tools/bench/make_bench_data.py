#!/usr/bin/env python3
"""Prepares benchmark inputs in a folder (default .oracles/bench):
  ct/      300 CT instances made from pydicom's CT_small.dcm, each with its own UIDs;
  big-encapsulated.dcm  a ~1 GiB JPEG 2000-syntax multi-frame file: 1024 frames of 1 MiB, with a
           Basic Offset Table (frame bytes are filler: only their layout matters here).
The big file is written by streaming, never held in memory. Re-running skips what exists.
"""
import os
import sys

import pydicom
from pydicom.data import get_testdata_file

from encapsulated import write_big_encapsulated

out = sys.argv[1] if len(sys.argv) > 1 else ".oracles/bench"
os.makedirs(os.path.join(out, "ct"), exist_ok=True)

src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
for n in range(300):
    path = os.path.join(out, "ct", f"ct-{n:03d}.dcm")
    if os.path.exists(path):
        continue
    ds = src.copy()
    ds.SOPInstanceUID = f"2.25.1111{n}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = n + 1
    ds.save_as(path, enforce_file_format=True)

big = os.path.join(out, "big-encapsulated.dcm")
if not os.path.exists(big):
    write_big_encapsulated(big, "2.25.2222")
