#!/usr/bin/env python3
"""Writes TestImages/demo/: a small synthetic CT study (one series, three 64×64 16-bit slices).

Run with the oracle venv: .oracles/venv/bin/python Tools/make-demo-study.py
The output is deterministic (fixed UIDs and pixel formula), so re-running changes nothing.
"""
import os
import sys

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, CTImageStorage

ROOT = "2.25.302575391102917316871243185407613"  # UUID-derived root for the demo objects
out_dir = os.path.join(os.path.dirname(__file__), "..", "TestImages", "demo")
os.makedirs(out_dir, exist_ok=True)

study_uid = ROOT + ".1"
series_uid = ROOT + ".1.1"
for n in range(1, 4):
    sop_uid = f"{ROOT}.1.1.{n}"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "2.25.188741369211948312452406381045226739317"
    meta.ImplementationVersionName = "TESSERA_DEMO"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = "DEMO0001"
    ds.Modality = "CT"
    ds.Manufacturer = "Tessera"
    ds.StudyDescription = "Demo study"
    ds.SeriesDescription = "Synthetic phantom"
    ds.PatientName = "Demo^Patient"
    ds.PatientID = "DEMO-1"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = n
    ds.ImagePositionPatient = [0, 0, float(n * 5)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = 5
    ds.PixelSpacing = [0.5, 0.5]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 64
    ds.Columns = 64
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    y, x = np.mgrid[0:64, 0:64]
    r = np.hypot(x - 32, y - 32)
    pixels = np.where(r < 20 + 2 * n, 1024 + 40 + (x * 3) % 50, 24).astype(np.uint16)
    ds.PixelData = pixels.tobytes()
    ds.save_as(os.path.join(out_dir, f"ct-{n}.dcm"), enforce_file_format=True)
