#!/usr/bin/env python3
"""Oracle: an enhanced multi-frame image's frames windowed as PS3.3 defines, with pydicom + numpy.

Usage:
  pydicom_frame_voi.py fixture IN OUT VARIANT   write a variant of IN (an Enhanced CT) to OUT
  pydicom_frame_voi.py render IN OUTDIR         write OUTDIR/<n>.raw for each frame n (from 0):
                                                8-bit rows × columns, MONOCHROME2; print the frame count

Variants:
  per-frame  frame 1 gets its own Pixel Value Transformation (slope 2, intercept -2048) and Frame
             VOI LUT (40/400); frame 2 its own Frame VOI LUT (300/1500) and the shared Pixel Value
             Transformation; the shared Frame VOI LUT is removed.
  top-level  both functional groups removed; Rescale and Window attributes at the top level.
Each variant gets the SOP Instance UID of IN with ".1" (per-frame) or ".2" (top-level) appended.

The rendering is written here independently of Tessera: each frame's Rescale Slope/Intercept and
Window Center/Width are looked up in its Per-frame Functional Groups item, then the Shared
Functional Groups item (PS3.3 C.7.6.16.2.9, C.7.6.16.2.10), then the top level; the Modality LUT
is applied (C.11.1.1.2) and then the LINEAR VOI function (C.11.2.1.2.1) to 0..255.
"""
import copy
import os
import sys
import warnings

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

warnings.simplefilter("ignore")


def item(**kw):
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def fixture(src, out, variant):
    ds = pydicom.dcmread(src)
    shared = ds.SharedFunctionalGroupsSequence[0]
    frames = ds.PerFrameFunctionalGroupsSequence
    if variant == "per-frame":
        del shared.FrameVOILUTSequence
        frames[0].PixelValueTransformationSequence = Sequence([item(RescaleIntercept="-2048", RescaleSlope="2", RescaleType="HU")])
        frames[0].FrameVOILUTSequence = Sequence([item(WindowCenter="40", WindowWidth="400")])
        frames[1].FrameVOILUTSequence = Sequence([item(WindowCenter="300", WindowWidth="1500")])
    elif variant == "top-level":
        pvt = shared.PixelValueTransformationSequence[0]
        del shared.PixelValueTransformationSequence
        del shared.FrameVOILUTSequence
        ds.RescaleIntercept, ds.RescaleSlope = pvt.RescaleIntercept, pvt.RescaleSlope
        ds.WindowCenter, ds.WindowWidth = "100", "700"
    else:
        sys.exit(f"unknown variant {variant}")
    # A new SOP Instance UID, so the variants and the original can be stored side by side.
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID + (".1" if variant == "per-frame" else ".2")
    ds.save_as(out, enforce_file_format=True)


def lookup(ds, n, sequence, keywords):
    """The frame's values: per-frame item, then shared item, then the top level."""
    places = []
    if "PerFrameFunctionalGroupsSequence" in ds and n < len(ds.PerFrameFunctionalGroupsSequence):
        places.append(ds.PerFrameFunctionalGroupsSequence[n])
    if "SharedFunctionalGroupsSequence" in ds:
        places.append(ds.SharedFunctionalGroupsSequence[0])
    for p in places:
        if sequence in p and len(p[sequence].value) > 0:
            it = p[sequence].value[0]
            return [it.get(k) for k in keywords]
    return [ds.get(k) for k in keywords]


def first(v):
    if v is None:
        return None
    return float(v[0]) if isinstance(v, (list, pydicom.multival.MultiValue)) else float(v)


def render(src, outdir):
    ds = pydicom.dcmread(src)
    pixels = ds.pixel_array
    if int(getattr(ds, "NumberOfFrames", 1)) == 1:
        pixels = pixels[np.newaxis]
    for n, frame in enumerate(pixels):
        slope, intercept = (first(v) for v in lookup(ds, n, "PixelValueTransformationSequence", ["RescaleSlope", "RescaleIntercept"]))
        center, width = (first(v) for v in lookup(ds, n, "FrameVOILUTSequence", ["WindowCenter", "WindowWidth"]))
        x = frame.astype(np.float64) * (slope if slope is not None else 1.0) + (intercept or 0.0)
        c, w = center - 0.5, width - 1
        y = np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 255.0, ((x - c) / w + 0.5) * 255.0))
        np.clip(np.rint(y), 0, 255).astype(np.uint8).tofile(os.path.join(outdir, f"{n}.raw"))
    print(len(pixels))


if __name__ == "__main__":
    if sys.argv[1] == "fixture":
        fixture(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "render":
        render(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
