#!/usr/bin/env python3
"""Prepares the import benchmark's inputs in a folder (default .oracles/bench):
  study-1000/  one CT study of 1000 instances, 512x512 16-bit (about 0.5 MiB each), 4 series;
  big-import.dcm  a 1 GiB multi-frame instance (1024 JPEG 2000-syntax frames of 1 MiB filler,
               with a Basic Offset Table and all identifying UIDs), written by streaming.
Re-running skips what exists.
"""
import os
import struct
import sys

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset

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
    frames, frame_size = 1024, 1 << 20
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = "2.25.3333.1.1"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "2.25.3333", "2.25.3333.1"
    ds.PatientID, ds.Modality = "BIG", "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored = 1024, 512, 1, 16, 16
    ds.PixelRepresentation, ds.PhotometricInterpretation = 0, "MONOCHROME2"
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
