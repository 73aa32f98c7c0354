#!/usr/bin/env python3
"""Prepares the import benchmark's inputs in a folder (default .oracles/bench):
  study-1000/  one CT study of 1000 instances, 512x512 16-bit (about 0.5 MiB each), 4 series;
  big-import.dcm  a 1 GiB multi-frame instance (1024 JPEG 2000-syntax frames of 1 MiB filler,
               with a Basic Offset Table and all identifying UIDs), written by streaming.
Re-running skips what exists.
"""
import os
import sys

import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from encapsulated import write_big_encapsulated

out = sys.argv[1] if len(sys.argv) > 1 else ".oracles/bench"
study_dir = os.path.join(out, "study-1000")
os.makedirs(study_dir, exist_ok=True)

src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
src.Rows = src.Columns = 512
rng = np.random.default_rng(7)
base = (np.add.outer(np.arange(512), np.arange(512)) * 2).astype(np.int16)
study = "2.25.424242424242"
for n in range(1000):
    path = os.path.join(study_dir, f"ct-{n:04d}.dcm")
    if os.path.exists(path):
        continue
    ds = src.copy()
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = f"{study}.{n // 250 + 1}"
    ds.SeriesNumber = n // 250 + 1
    ds.SOPInstanceUID = f"{study}.{n // 250 + 1}.{n + 1}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = n % 250 + 1
    pixels = base + rng.integers(-20, 20, size=(512, 512), dtype=np.int16)
    ds.PixelData = pixels.astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)

big = os.path.join(out, "big-import.dcm")
if not os.path.exists(big):
    write_big_encapsulated(big, "2.25.3333.1.1", StudyInstanceUID="2.25.3333", SeriesInstanceUID="2.25.3333.1",
                           PatientID="BIG", Modality="OT", BitsStored=16, PixelRepresentation=0,
                           PhotometricInterpretation="MONOCHROME2")
