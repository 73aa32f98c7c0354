"""Writes a large JPEG 2000-syntax multi-frame file by streaming, never holding it in memory:
frames of filler bytes (only their layout matters to the benchmarks), with a Basic Offset Table."""
import os
import struct

import pydicom
from pydicom.dataset import FileMetaDataset


def write_big_encapsulated(path, sop_uid, frames=1024, frame_size=1 << 20, **attributes):
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 1024, 512, 1, 16
    ds.NumberOfFrames = frames
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    tmp = path + ".head"
    ds.save_as(tmp, enforce_file_format=True)
    with open(path, "wb") as f, open(tmp, "rb") as head:
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
