#!/usr/bin/env python3
"""Oracle: Tessera's Native DICOM Model XML (PS3.19 Annex A) against DCMTK's dcm2xml --native-format.

Usage: dcmtk_xml_compare.py DICOMFILE TESSERA_XML
Prints one JSON object: {"differences": [text, ...], "bulk": [{"uri": u, "base64": b}, ...],
"attributes": n}. `differences` is empty when the two documents agree as parsed XML trees after
the normalisation below; `bulk` lists each value Tessera replaced by a <BulkData uri> with the
value dcm2xml wrote inline, for the caller to fetch and compare; `attributes` counts the
DicomAttribute elements compared (so a test can see the comparison was not vacuous).

dcm2xml runs with +U8 (values converted to UTF-8, as Tessera writes them), +Eb (binary values as
InlineBinary base64 rather than UUID references to nothing) and +M (long values loaded, so they
are inline too). Normalised, with the reason:
- the namespace: Tessera declares PS3.19's; dcm2xml declares none without +Xn;
- the value of Specific Character Set (0008,0005): +U8 rewrites it to ISO_IR 192, Tessera keeps
  the stored value (the DICOM JSON writer does the same);
- FL/OF and FD/OD values are compared as numbers of their width: dcm2xml prints nine or
  seventeen significant digits, Tessera the shortest text that reads back to the same number;
- Specific Character Set where the file has none: +U8 adds one (ISO_IR 192);
- a keyword dcm2xml leaves out: DCMTK names retired attributes RETIRED_… and omits them; Tessera
  writes PS3.6's keyword (PS3.19 makes it optional);
- OW binary values: dcm2xml 3.6.7 writes their base64 as big-endian words; PS3.19 A.1.5 (like
  PS3.18 F.2.7 for JSON, and the bulk data resource) has them little endian, so dcm2xml's are
  swapped before comparing;
- a Phonetic group that is a copy of the Ideographic one, where Tessera has none: dcm2xml 3.6.7
  writes an empty last component group (`Wang^XiaoDong=王^小東=` in chrX1) as a copy of the one
  before it;
- a private element dcm2xml calls UN in an Implicit VR file (DCMTK has no entry for its creator;
  Tessera's private dictionary, pydicom's, has): its VR is not compared, and its value is compared
  as the bytes dcm2xml has inline decoded by the VR Tessera gives (text split on backslashes, or
  little-endian binary numbers);
- a value Tessera gives as <BulkData uri>: dcm2xml has it inline; it is listed in `bulk` and the
  attribute compares equal when Tessera's is a BulkData element. dcm2xml writes encapsulated Pixel
  Data as an empty InlineBinary (it does not encode fragments), so its listed base64 is empty.
Everything else (tags, VRs, keywords, private creators, Value and Item numbers, person name
components, text) must be identical.
"""
import base64
import json
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET


def strip(tree):
    for e in tree.iter():
        if "}" in e.tag:
            e.tag = e.tag.split("}", 1)[1]
    return tree


def compare(ours, theirs, path, out, bulk, counter):
    a = [e for e in ours if e.tag == "DicomAttribute"]
    b = [e for e in theirs if e.tag == "DicomAttribute"]
    if not any(e.get("tag") == "00080005" for e in a):
        b = [e for e in b if e.get("tag") != "00080005"]
    keys_a = [(e.get("tag"), e.get("privateCreator")) for e in a]
    keys_b = [(e.get("tag"), e.get("privateCreator")) for e in b]
    if keys_a != keys_b:
        out.append(f"{path}: attributes differ: only Tessera {sorted(set(keys_a) - set(keys_b), key=str)}, only dcm2xml {sorted(set(keys_b) - set(keys_a), key=str)}")
        return
    for x, y in zip(a, b):
        counter[0] += 1
        here = f"{path}/{x.get('tag')}"
        vr = x.get("vr")
        kids_x, kids_y = list(x), list(y)
        if y.get("vr") == "UN" and vr != "UN" and x.get("privateCreator") is not None:
            if canonical(kids_x, vr) != decoded_un(kids_y, vr):
                out.append(f"{here} ({vr}, UN in dcm2xml): {canonical(kids_x, vr)!r} vs {decoded_un(kids_y, vr)!r}")
            continue
        for attribute in ("vr", "keyword", "privateCreator"):
            if attribute == "keyword" and y.get(attribute) is None:
                continue
            if x.get(attribute) != y.get(attribute):
                out.append(f"{here}: {attribute} {x.get(attribute)!r} vs {y.get(attribute)!r}")
        if len(kids_x) == 1 and kids_x[0].tag == "BulkData":
            inline = [k for k in kids_y if k.tag == "InlineBinary"]
            bulk.append({"uri": kids_x[0].get("uri"), "base64": little_endian(inline[0].text or "", vr) if inline else ""})
            if not inline:
                out.append(f"{here}: Tessera has BulkData, dcm2xml {[k.tag for k in kids_y]}")
            continue
        if x.get("tag") == "00080005":
            continue
        if vr == "SQ":
            items_x = [k for k in kids_x if k.tag == "Item"]
            items_y = [k for k in kids_y if k.tag == "Item"]
            if [i.get("number") for i in items_x] != [i.get("number") for i in items_y]:
                out.append(f"{here}: items {[i.get('number') for i in items_x]} vs {[i.get('number') for i in items_y]}")
                continue
            for i, j in zip(items_x, items_y):
                compare(i, j, f"{here}[{i.get('number')}]", out, bulk, counter)
            continue
        if vr == "PN":
            drop_copied_phonetic(kids_x, kids_y)
        if canonical(kids_x, vr) != canonical(kids_y, vr):
            out.append(f"{here} ({vr}): {canonical(kids_x, vr)!r} vs {canonical(kids_y, vr)!r}")


def little_endian(text, vr):
    if vr != "OW" or not text:
        return text
    raw = bytearray(base64.b64decode(text))
    raw[0::2], raw[1::2] = raw[1::2], raw[0::2]
    return base64.b64encode(bytes(raw)).decode()


BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}


def decoded_un(children, vr):
    """dcm2xml's inline UN bytes as the Value elements of `vr`."""
    inline = [c for c in children if c.tag == "InlineBinary"]
    raw = base64.b64decode(inline[0].text or "") if inline else b""
    if vr in BINARY:
        width = struct.calcsize(BINARY[vr])
        values = [str(v) for v in struct.unpack(f"<{len(raw) // width}{BINARY[vr]}", raw[: len(raw) // width * width])]
    else:
        text = raw.decode("utf-8", "replace").rstrip(" \0")
        values = [text] if vr in ("LT", "ST", "UT", "UR") else text.split("\\")
        values = [v.strip(" ") for v in values]
    elements = []
    for n, v in enumerate(values):
        if v:
            e = ET.Element("Value", number=str(n + 1))
            e.text = v
            elements.append(e)
    return canonical(elements, vr)


def number(text, vr):
    v = float(text)
    if vr in ("FL", "OF"):
        return struct.unpack("<f", struct.pack("<f", v))[0]
    return v


def drop_copied_phonetic(ours, theirs):
    for x, y in zip(ours, theirs):
        groups = {g.tag: [(p.tag, p.text) for p in g] for g in y}
        if "Phonetic" in groups and groups["Phonetic"] == groups.get("Ideographic") and x.find("Phonetic") is None:
            y.remove(y.find("Phonetic"))


def canonical(children, vr):
    out = []
    for c in children:
        if c.tag == "Value" and vr in ("FL", "FD", "OF", "OD"):
            out.append(("Value", c.get("number"), number(c.text or "", vr)))
        elif c.tag == "PersonName":
            groups = [(g.tag, [(p.tag, p.text or "") for p in g]) for g in c]
            out.append(("PersonName", c.get("number"), groups))
        elif c.tag == "InlineBinary":
            out.append((c.tag, None, little_endian(c.text or "", vr)))
        else:
            out.append((c.tag, c.get("number"), c.text or ""))
    return out


def main():
    dicom, ours_path = sys.argv[1], sys.argv[2]
    xml = subprocess.run(["dcm2xml", "-nat", "+U8", "+Eb", "+M", dicom], check=True, capture_output=True).stdout
    theirs = strip(ET.fromstring(xml))
    ours = strip(ET.parse(ours_path).getroot())
    out, bulk, counter = [], [], [0]
    if ours.tag != "NativeDicomModel":
        out.append(f"root is {ours.tag}")
    compare(ours, theirs, "", out, bulk, counter)
    print(json.dumps({"differences": out, "bulk": bulk, "attributes": counter[0]}))


if __name__ == "__main__":
    main()
