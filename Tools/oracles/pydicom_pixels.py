#!/usr/bin/env python3
"""Oracle: pydicom's decoded pixels for each file named on stdin.

Usage: pydicom_pixels.py OUTDIR < paths
For file number i (0-based, in stdin order) writes OUTDIR/i.raw: every frame of `ds.pixel_array`,
little endian, C order (frames, rows, columns, samples). Prints one JSON object
{path: {"frames": n, "itemsize": b, "raw": "OUTDIR/i.raw"} or {"error": "<message>"}}.

Decoders are pinned per transfer syntax so the oracle is the reference library Tessera is
measured against: OpenJPEG (pylibjpeg-openjpeg) for JPEG 2000 and HTJ2K, libjpeg-turbo (Pillow)
for 8-bit JPEG, pylibjpeg-libjpeg for JPEG lossless, 12-bit JPEG and JPEG-LS, pydicom's own for
RLE. Native and RLE YBR data stay YBR (as_rgb=False): Tessera returns the native frame as DICOM
defines it; compressed YBR data are returned as RGB, as their codecs produce them.
"""
import json
import os
import sys
import warnings

import numpy as np
import pydicom
from pydicom.uid import UID

warnings.simplefilter("ignore")

J2K = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
       "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
JPEG8 = {"1.2.840.10008.1.2.4.50"}
LIBJPEG = {"1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
           "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
RLE = {"1.2.840.10008.1.2.5"}


def decode(path):
    ds = pydicom.dcmread(path)
    tsuid = str(ds.file_meta.TransferSyntaxUID) if "TransferSyntaxUID" in ds.file_meta else "1.2.840.10008.1.2"
    opts = {}
    if tsuid in J2K or tsuid in LIBJPEG:
        opts["decoding_plugin"] = "pylibjpeg"
    elif tsuid in JPEG8:
        opts["decoding_plugin"] = "pillow"
    elif tsuid in RLE:
        opts["decoding_plugin"] = "pydicom"
        opts["as_rgb"] = False
    else:
        opts["as_rgb"] = False
    ds.pixel_array_options(**opts)
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1:
        arr = arr[np.newaxis, ...]
    arr = arr[: frames]
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False), arr.shape[0]


def main():
    outdir = sys.argv[1]
    result = {}
    for i, line in enumerate(sys.stdin.read().splitlines()):
        path = line.strip()
        if not path:
            continue
        try:
            arr, frames = decode(path)
            raw = os.path.join(outdir, f"{i}.raw")
            with open(raw, "wb") as f:
                f.write(np.ascontiguousarray(arr).tobytes())
            result[path] = {"frames": int(frames), "itemsize": int(arr.dtype.itemsize), "raw": raw}
        except Exception as e:  # noqa: BLE001 - the oracle reports every refusal
            result[path] = {"error": f"{type(e).__name__}: {e}"[:300]}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
