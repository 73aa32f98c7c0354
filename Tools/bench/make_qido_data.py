#!/usr/bin/env python3
"""Writes N small instances (default 100,000) for the QIDO benchmark: 1,000 studies of two series of
50 instances, 500 patients, study dates over ten years, 16x16 8-bit pixels. One pydicom template is
written once; each file is that template with fixed-width identifiers replaced, so generating
100,000 files takes seconds. Usage: make_qido_data.py OUT_DIR [N]. Re-running skips a complete folder."""
import datetime
import os
import sys

import pydicom
from pydicom import config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
per_series, series_per_study = 50, 2
# Only instances go in the folder: the marker and the template sit beside it.
marker = out.rstrip("/") + f".complete-{n}"
if os.path.exists(marker):
    sys.exit(0)
os.makedirs(out, exist_ok=True)

# The placeholders are not valid values until replaced.
config.settings.writing_validation_mode = config.IGNORE
config.settings.reading_validation_mode = config.IGNORE
ROOT = "2.25.77"
ds = Dataset()
ds.file_meta = FileMetaDataset()
ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
ds.file_meta.MediaStorageSOPInstanceUID = f"{ROOT}.SSSSSSS.Q.IIII"
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
ds.SOPInstanceUID = f"{ROOT}.SSSSSSS.Q.IIII"
ds.StudyInstanceUID = f"{ROOT}.SSSSSSS"
ds.SeriesInstanceUID = f"{ROOT}.SSSSSSS.Q"
ds.PatientID = "PPPPPP"
ds.PatientName = "FAMILYXX^GIVEN^PPPPPP"
ds.PatientBirthDate = "19700101"
ds.PatientSex = "O"
ds.StudyDate = "DDDDDDDD"
ds.StudyTime = "120000"
ds.AccessionNumber = "ASSSSSSS"
ds.StudyID = "SSSSSSS"
ds.Modality = "XJ"
ds[0x00200011] = RawDataElement(pydicom.tag.Tag(0x00200011), "IS", 2, b"QZ", 0, False, True)
ds[0x00200013] = RawDataElement(pydicom.tag.Tag(0x00200013), "IS", 4, b"IIII", 0, False, True)
ds.StudyDescription = "QIDO BENCHMARK"
ds.SeriesDescription = "SERIES QZ"
ds.SamplesPerPixel = 1
ds.PhotometricInterpretation = "MONOCHROME2"
ds.Rows = ds.Columns = 16
ds.BitsAllocated = ds.BitsStored = 8
ds.HighBit = 7
ds.PixelRepresentation = 0
ds.PixelData = bytes(range(256))
template_path = out.rstrip("/") + ".template"
ds.save_as(template_path, enforce_file_format=True)
template = open(template_path, "rb").read()
os.remove(template_path)

families = ["SMITH", "JONES", "BROWN", "TAYLOR", "WILSON", "DAVIES", "EVANS", "THOMAS", "JOHNSON", "ROBERTS"]
start = datetime.date(2015, 1, 1)
for k in range(n):
    study, rest = divmod(k, per_series * series_per_study)
    series, instance = divmod(rest, per_series)
    path = os.path.join(out, f"{study:06d}-{series + 1}-{instance + 1:04d}.dcm")
    patient = study % 500
    date = (start + datetime.timedelta(days=(study * 37) % 3650)).strftime("%Y%m%d")
    # UID components never start with 0 (PS3.5 §9.1): offsets keep every width fixed.
    sop = b"%s.%d.%d.%d" % (ROOT.encode(), 1_000_000 + study, series + 1, 1000 + instance)
    b = template.replace(f"{ROOT}.SSSSSSS.Q.IIII".encode(), sop)
    b = b.replace(f"{ROOT}.SSSSSSS.Q".encode(), b"%s.%d.%d" % (ROOT.encode(), 1_000_000 + study, series + 1))
    b = b.replace(b"QZ", b"%-2d" % (series + 1)).replace(b"IIII", b"%04d" % (instance + 1))
    b = b.replace(b"SSSSSSS", b"%d" % (1_000_000 + study)).replace(b"PPPPPP", b"P%05d" % patient)
    b = b.replace(b"FAMILYXX", families[patient % 10].ljust(8, "X").encode()[:8])
    b = b.replace(b"DDDDDDDD", date.encode()).replace(b"XJ", b"CT" if study % 2 == 0 else b"MR")
    with open(path, "wb") as f:
        f.write(b)
open(marker, "w").close()
