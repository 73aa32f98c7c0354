#!/usr/bin/env python3
"""Oracle: each frame's stored bytes, as pydicom finds them, for each file named on stdin.

Usage: pydicom_frames.py OUTDIR < paths
For file number i (0-based, in stdin order) writes OUTDIR/i-n.bin for frame n (from 0): for
encapsulated Pixel Data the frame's codestream (pydicom.encaps.generate_frames, which follows the
Basic / Extended Offset Table); for native data Rows x Columns x Samples x Bits Allocated / 8
bytes of Pixel Data at the frame's offset (PS3.5 §8.1.1; byte-aligned frames only). Prints one JSON
object {path: {"frames": [file, ...], "syntax": uid}}.
"""
import json
import os
import sys

import pydicom
from pydicom.encaps import generate_frames

out = sys.argv[1]
result = {}
for i, path in enumerate(line.strip() for line in sys.stdin if line.strip()):
    ds = pydicom.dcmread(path)
    syntax = ds.file_meta.TransferSyntaxUID
    count = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if syntax.is_encapsulated:
        frames = list(generate_frames(ds.PixelData, number_of_frames=count))
    else:
        size = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
        frames = [ds.PixelData[n * size:(n + 1) * size] for n in range(count)]
    names = []
    for n, frame in enumerate(frames):
        name = os.path.join(out, f"{i}-{n}.bin")
        with open(name, "wb") as f:
            f.write(frame)
        names.append(name)
    result[path] = {"frames": names, "syntax": str(syntax)}
print(json.dumps(result))
