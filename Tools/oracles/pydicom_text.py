#!/usr/bin/env python3
"""Oracle: for each file named on stdin, pydicom's decoded text values.

Prints one JSON object: {path: {"GGGGEEEE": [value, ...], ...}} for top-level and first-level
sequence-item elements whose VR uses the Specific Character Set (SH LO ST LT UT UC PN).
Paths pydicom cannot read map to {"error": "<exception class>"}.
"""
import json
import sys
import warnings

import pydicom

warnings.simplefilter("ignore")
TEXT_VRS = {"SH", "LO", "ST", "LT", "UT", "UC", "PN"}


def values(elem):
    v = elem.value
    if v is None or v == "":
        return []
    if isinstance(v, (list, pydicom.multival.MultiValue)):
        return [str(x) for x in v]
    return [str(v)]


def collect(ds, prefix, out):
    for elem in ds:
        key = prefix + f"{elem.tag:08X}"
        if elem.VR == "SQ":
            if not prefix:
                for n, item in enumerate(elem.value):
                    collect(item, f"{key}[{n}].", out)
        elif elem.VR in TEXT_VRS:
            out[key] = values(elem)


result = {}
for line in sys.stdin:
    path = line.strip()
    if not path:
        continue
    try:
        ds = pydicom.dcmread(path, force=True)
        out = {}
        collect(ds, "", out)
        result[path] = out
    except Exception as e:  # the oracle reports, the test decides
        result[path] = {"error": type(e).__name__}
json.dump(result, sys.stdout, ensure_ascii=False)
