#!/usr/bin/env python3
"""Interoperability check: drives a running Tessera with dicomweb-client, a real DICOMweb client.

Usage: dicomweb_interop.py URL FILE...   (URL is the DICOMweb root, e.g. http://127.0.0.1:8080/dicomweb)
Stores the files (STOW-RS), searches them (QIDO-RS), retrieves each instance, its metadata, its
frames, rendered images and its Pixel Data bulk data (WADO-RS), and compares with the originals:
instance bytes exactly, metadata values, frames and decoded pixels, rendered sizes and formats; then
stores an instance of the first study with another Patient ID and checks it stays out of the study
(non-primary image set) and is reached by imageSetId. Prints a JSON report; exits 1 on any mismatch.
"""
import copy
import json
import sys
import warnings

from io import BytesIO

import numpy as np
import pydicom
from PIL import Image
from dicomweb_client.api import DICOMwebClient

warnings.simplefilter("ignore")
url, paths = sys.argv[1], sys.argv[2:]
client = DICOMwebClient(url=url)
problems = []
report = {"files": len(paths), "stored": 0, "retrieved_identical": 0, "frames_checked": 0, "metadata_checked": 0,
          "rendered_checked": 0}

datasets = [pydicom.dcmread(p) for p in paths]
response = client.store_instances(datasets=datasets)  # a pydicom Dataset
failed = list(getattr(response, "FailedSOPSequence", []))
report["stored"] = len(getattr(response, "ReferencedSOPSequence", []))
if failed:
    problems.append(f"STOW failures: {failed}")

studies = {str(ds.StudyInstanceUID) for ds in datasets}
found = {s["0020000D"]["Value"][0] for s in client.search_for_studies()}
if not studies <= found:
    problems.append(f"QIDO studies missing: {studies - found}")
for study in studies:
    hits = client.search_for_instances(study_instance_uid=study)
    expected = sum(1 for ds in datasets if str(ds.StudyInstanceUID) == study)
    if len(hits) != expected:
        problems.append(f"QIDO instances of {study}: {len(hits)} != {expected}")

for path, ds in zip(paths, datasets):
    st, se, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    original = open(path, "rb").read()
    # As stored: the very bytes that were sent.
    got = client.retrieve_instance(st, se, sop, media_types=(("application/dicom", "*"),))
    buf = BytesIO()
    got.save_as(buf, enforce_file_format=False)
    back = pydicom.dcmread(BytesIO(buf.getvalue()))
    if back.SOPInstanceUID != ds.SOPInstanceUID or back.get("PixelData") != ds.get("PixelData"):
        problems.append(f"{path}: retrieved instance differs")
    else:
        report["retrieved_identical"] += 1
    meta = client.retrieve_instance_metadata(st, se, sop)
    for kw in ("PatientID", "Modality", "Rows", "Columns"):
        tag = f"{pydicom.datadict.tag_for_keyword(kw):08X}"
        want = ds.get(kw)
        have = meta.get(tag, {}).get("Value", [None])[0]
        # An empty value is an attribute without "Value" in DICOM JSON.
        if want not in (None, "") and str(have) != str(want):
            problems.append(f"{path}: metadata {kw} {have!r} != {want!r}")
    report["metadata_checked"] += 1
    if "PixelData" in ds:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        numbers = sorted({1, frames})
        native = client.retrieve_instance_frames(st, se, sop, frame_numbers=numbers,
                                                 media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),))
        arr = ds.pixel_array if frames > 1 else ds.pixel_array[np.newaxis, ...]
        for n, data in zip(numbers, native):
            want = np.ascontiguousarray(arr[n - 1]).astype(arr.dtype.newbyteorder("<")).tobytes()
            if bytes(data) != want:
                problems.append(f"{path}: frame {n} decoded bytes differ ({len(data)} vs {len(want)})")
            report["frames_checked"] += 1
        # Rendered: a PNG of the first frame and a 64-pixel JPEG of the last, as Pillow reads them.
        png = client.retrieve_instance_rendered(st, se, sop, media_types=("image/png",))
        image = Image.open(BytesIO(png))
        if image.size != (ds.Columns, ds.Rows) or image.format != "PNG":
            problems.append(f"{path}: rendered PNG is {image.format} {image.size}, not {ds.Columns}x{ds.Rows}")
        last = client.retrieve_instance_frames_rendered(st, se, sop, frame_numbers=[frames], media_types=("image/jpeg",),
                                                         params={"viewport": "64,64", "quality": "80"})
        thumb = Image.open(BytesIO(last))
        if thumb.format != "JPEG" or max(thumb.size) != 64:
            problems.append(f"{path}: rendered frame {frames} is {thumb.format} {thumb.size}, not a 64-pixel JPEG")
        report["rendered_checked"] += 1
        bulk = client.retrieve_bulkdata(meta["7FE00010"]["BulkDataURI"]) if "BulkDataURI" in meta.get("7FE00010", {}) else None
        if bulk is None:
            problems.append(f"{path}: no BulkDataURI for Pixel Data")

# Patient safety: an instance of the first study with another Patient ID is stored in a non-primary
# image set (WarningReason 0xB100) and never shows up in the study; imageSetId reaches it.
first = datasets[0]
other = copy.deepcopy(first)
other.SOPInstanceUID = pydicom.uid.generate_uid()
other.file_meta.MediaStorageSOPInstanceUID = other.SOPInstanceUID
other.PatientID = "INTEROP-OTHER-PATIENT"
response = client.store_instances(datasets=[other])
items = list(getattr(response, "ReferencedSOPSequence", []))
if len(items) != 1 or items[0].get("WarningReason") != 0xB100:
    problems.append(f"conflicting instance: no WarningReason 0xB100 in {items}")
else:
    url = str(items[0].RetrieveURL)
    set_id = url.split("imageSetId=")[-1] if "imageSetId=" in url else None
    study = str(first.StudyInstanceUID)
    hits = client.search_for_instances(study_instance_uid=study)
    if any(h["00080018"]["Value"][0] == str(other.SOPInstanceUID) for h in hits):
        problems.append("conflicting instance listed in its study")
    if client.search_for_studies(search_filters={"PatientID": "INTEROP-OTHER-PATIENT"}):
        problems.append("the study is found by the conflicting Patient ID")
    scoped = client.search_for_studies(search_filters={"imageSetId": set_id}) if set_id else []
    if [s["00100020"]["Value"][0] for s in scoped] != ["INTEROP-OTHER-PATIENT"]:
        problems.append(f"imageSetId={set_id} does not reach the non-primary set: {scoped}")
    report["conflict_checked"] = 1

report["problems"] = problems
print(json.dumps(report))
sys.exit(1 if problems else 0)
