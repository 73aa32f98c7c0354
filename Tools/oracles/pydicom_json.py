#!/usr/bin/env python3
"""Oracle: pydicom's DICOM JSON for each file path on stdin.

Prints {path: to_json_dict(...)} with binary values over 1024 bytes as BulkDataURI "bulk", or
{path: {"__error__": "<exception class>"}} when pydicom cannot read or convert the file.
"""
import json
import sys
import warnings

import pydicom

warnings.simplefilter("ignore")
result = {}
for line in sys.stdin:
    path = line.strip()
    if not path:
        continue
    try:
        ds = pydicom.dcmread(path, force=True)
        result[path] = ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=lambda e: "bulk")
    except Exception as e:  # the oracle reports, the test decides
        result[path] = {"__error__": type(e).__name__}
json.dump(result, sys.stdout, ensure_ascii=False, allow_nan=True)
