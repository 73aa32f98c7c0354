#!/usr/bin/env python3
"""Prepares benchmark inputs in a folder (default .oracles/bench):
  ct/      300 CT instances made from pydicom's CT_small.dcm, each with its own UIDs;
  big-encapsulated.dcm  a ~1 GiB JPEG 2000-syntax multi-frame file: 1024 frames of 1 MiB, with a
           Basic Offset Table (frame bytes are filler: only their layout matters here).
The big file is written by streaming, never held in memory. Re-running skips what exists.
"""
import os
import struct
import sys

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import generate_uid

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
    frames, frame_size = 1024, 1 << 20
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = "2.25.2222"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 1024, 512, 1, 16
    ds.NumberOfFrames = frames
    tmp = big + ".head"
    ds.save_as(tmp, enforce_file_format=True)
    with open(big, "wb") as f, open(tmp, "rb") as head:
        f.write(head.read())
        f.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
        f.write(struct.pack("<HHI", 0xFFFE, 0xE000, 4 * frames))
        for i in range(frames):
            f.write(struct.pack("<I", i * (frame_size + 8)))
        chunk = bytes([0xFF, 0x4F, 0xFF, 0x51]) + bytes(frame_size - 4)
        for i in range(frames):
            f.write(struct.pack("<HHI", 0xFFFE, 0xE000, frame_size))
            f.write(chunk)
        f.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    os.remove(tmp)
