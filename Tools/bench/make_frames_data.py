#!/usr/bin/env python3
"""Prepares the frames benchmark's inputs (issue 15) in a folder (default .oracles/bench):
  j2k-ct-200/     one CT series of 200 instances, 512x512 16-bit, stored as JPEG 2000 lossless
                  (1.2.840.10008.1.2.4.90; pydicom + pylibjpeg-openjpeg), about 105 KB per frame;
  j2k-ct-200-frames/<SOPInstanceUID>.j2k  the same frames' codestreams, as nginx serves them;
  j2k-ct-200.txt  one line per instance: series UID, SOP Instance UID.
Re-running skips what exists.
Usage: make_frames_data.py [OUT]
"""
import copy
import os
import sys

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames
from pydicom.uid import JPEG2000Lossless

out = sys.argv[1] if len(sys.argv) > 1 else ".oracles/bench"
study = "2.25.151515151515"
series = study + ".1"
dicom_dir = os.path.join(out, "j2k-ct-200")
frames_dir = os.path.join(out, "j2k-ct-200-frames")
os.makedirs(dicom_dir, exist_ok=True)
os.makedirs(frames_dir, exist_ok=True)

src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
src.Rows = src.Columns = 512
rng = np.random.default_rng(15)
# A smooth body of CT values plus noise of +/-3: about 105 KB per frame once lossless J2K-coded.
yy, xx = np.mgrid[0:512, 0:512]
body = (1000 * np.exp(-((xx - 256) ** 2 + (yy - 256) ** 2) / (2 * 150.0 ** 2))).astype(np.int16)
lines = []
for n in range(200):
    sop = f"{series}.{n + 1}"
    lines.append(f"{series} {sop}")
    path = os.path.join(dicom_dir, f"ct-{n:03d}.dcm")
    frame = os.path.join(frames_dir, sop + ".j2k")
    if not os.path.exists(path):
        ds = copy.deepcopy(src)
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SeriesNumber = 1
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.InstanceNumber = n + 1
        pixels = body + rng.integers(-3, 4, size=(512, 512), dtype=np.int16)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = pixels.astype("<i2").tobytes()
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
        ds.save_as(path, enforce_file_format=True)
    if not os.path.exists(frame):
        ds = pydicom.dcmread(path)
        with open(frame, "wb") as f:
            f.write(next(generate_frames(ds.PixelData, number_of_frames=1)))
with open(os.path.join(out, "j2k-ct-200.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
