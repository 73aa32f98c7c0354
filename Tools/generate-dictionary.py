#!/usr/bin/env python3
"""Generate the DICOMDictionary target's data tables from pydicom's machine-readable dictionary.

Usage (with the oracle venv's python, which has pydicom installed):

    .oracles/venv/bin/python Tools/generate-dictionary.py [--out DIR]

Writes Generated*.swift into Sources/DICOMDictionary/ (or DIR) and removes Generated*.swift files
there that it no longer produces. Prints nothing on success.

Compile time drives the format. No Dictionary literals (Swift type-checks them slowly) and no large
[String] literals (the optimizer spends ~1 ms per element on them). Instead:
- every dictionary row is one UInt64 literal packing tag, mask, creator, VR set, VM and retired flag
  (layout documented on `GeneratedTagTable` in GeneratedTables.swift);
- every string column is one multi-line StaticString literal, one value a line, plus a [UInt32] of
  UTF-8 end offsets; a value is read by slicing, nothing is parsed at run time.
The hand-written DataDictionary.swift, PrivateDictionary.swift and UIDRegistry.swift build their
hash maps from these tables lazily, once.

Tables are sorted (tags numerically, repeater and private keys and creators by string, UIDs by their
numeric components) so that the output only depends on pydicom's data, not on dict ordering.
"""

import argparse
import os
import re
import sys

import pydicom
from pydicom import _dicom_dict, _private_dict, _uid_dict

SCRIPT = "Tools/generate-dictionary.py"
MAX_FILE_BYTES = 600_000  # split the private dictionary so that every file stays well below 1 MB

VR_CODES = {
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
    "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US",
    "UT", "UV",
}


class GenerationError(Exception):
    pass


def parse_vrs(text, where):
    """'US or SS' -> ('US', 'SS'); 'OB_OW' (private dictionary spelling) -> ('OB', 'OW');
    'NONE' or '' (item and delimitation tags) -> ()."""
    text = text.strip()
    if text in ("", "NONE"):
        return ()
    parts = tuple(p for p in re.split(r"\s+or\s+|_|/|,|\s+", text) if p)
    for p in parts:
        if p not in VR_CODES:
            raise GenerationError(f"unknown VR {text!r} for {where}")
    return parts


def parse_mask(key, where):
    """'60xx3000' -> (value, mask) where every 'x' digit is 0 in both; other digits must match."""
    if not re.fullmatch(r"[0-9A-Fa-fx]{8}", key):
        raise GenerationError(f"unexpected tag key {key!r} for {where}")
    value = int(key.replace("x", "0"), 16)
    mask = int("".join("0" if c == "x" else "F" for c in key), 16)
    return value, mask


def swift_escape(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif 0x20 <= o < 0x7F:
            out.append(ch)
        else:
            out.append("\\u{%X}" % o)
    return "".join(out)


def swift_string(s):
    return '"' + swift_escape(s) + '"'


def string_column_lines(name, strings, doc):
    """A column of strings as one StaticString (one value per source line, joined by line
    continuations) plus the UTF-8 end offset of every value. Swift's optimizer spends a long time
    on large [String] literals; a single literal and an integer array compile almost instantly."""
    ends = []
    total = 0
    for v in strings:
        total += len(v.encode("utf-8"))
        ends.append(total)
    lines = [f"/// {doc}", f"let {name}: GeneratedStrings = GeneratedStrings(", f"    ends: {name}Ends,"]
    if not strings:
        lines.append('    blob: ""')
    else:
        lines.append('    blob: """')
        for i, v in enumerate(strings):
            # Escape a leading or trailing space so that indentation stripping and editors keep it.
            text = swift_escape(v)
            if text.startswith(" "):
                text = "\\u{20}" + text[1:]
            if text.endswith(" "):
                text = text[:-1] + "\\u{20}"
            last = i == len(strings) - 1
            lines.append("        " + text + ("" if last else "\\"))
        lines.append('        """')
    lines += [")", ""]
    lines += array_lines(f"{name}Ends", "UInt32", [str(e) for e in ends], 12)
    return lines


def hex32(v):
    return "0x%04X_%04X" % (v >> 16, v & 0xFFFF)


def uid_sort_key(uid):
    return tuple(int(p) if p.isdigit() else -1 for p in uid.split(".")), uid


class Interner:
    """Small lookup tables (VR sets, VM strings, creators) referenced by index from the columns."""

    def __init__(self, initial=()):
        self.items = []
        self.index = {}
        for item in initial:
            self.add(item)

    def add(self, item):
        if item not in self.index:
            self.index[item] = len(self.items)
            self.items.append(item)
        return self.index[item]


def array_lines(name, swift_type, items, per_line, doc=None):
    lines = []
    if doc:
        lines.append(f"/// {doc}")
    lines.append(f"let {name}: [{swift_type}] = [")
    for i in range(0, len(items), per_line):
        lines.append("    " + ", ".join(items[i:i + per_line]) + ",")
    lines.append("]")
    lines.append("")
    return lines


def header(version):
    return [
        f"// Generated by {SCRIPT} from pydicom {version} \u2014 do not edit",
        f"// Regenerate with: .oracles/venv/bin/python {SCRIPT}",
        "",
    ]


def file_text(version, body, imports=("DICOMCore",)):
    lines = header(version)
    for module in imports:
        lines.append(f"import {module}")
    if imports:
        lines.append("")
    lines.extend(body)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def packed_row(r):
    """One table row as a UInt64 literal; see `GeneratedTagTable` for the layout."""
    flags = r["vrset"] | r["vm"] << 8 | (0x8000 if r["retired"] else 0)
    v = r["value"]
    return f"0x{v >> 16:04X}_{v & 0xFFFF:04X}_{r['creator']:03X}{r['mask']:X}_{flags:04X}"


def table_lines(name, rows, doc, with_keywords):
    """rows: dicts with value, mask (index), creator (index), vrset, vm, retired, keyword, name."""
    body = [
        f"/// {doc}",
        f"let {name}: GeneratedTagTable = GeneratedTagTable(",
        f"    rows: {name}Rows,",
        f"    keywords: {name + 'Keywords' if with_keywords else 'GeneratedStrings.empty'},",
        f"    names: {name}Names",
        ")",
        "",
    ]
    body += array_lines(f"{name}Rows", "UInt64", [packed_row(r) for r in rows], 6)
    if with_keywords:
        body += string_column_lines(f"{name}Keywords", [r["keyword"] for r in rows], "Keywords, one a line.")
    body += string_column_lines(f"{name}Names", [r["name"] for r in rows], "Names, one a line.")
    return body


def generate(version):
    vrsets = Interner([()])  # index 0: no VR (item / delimitation tags)
    vms = Interner()
    masks = Interner([0xFFFFFFFF])  # index 0: exact tag
    creators = Interner()

    # Public dictionary: exact tags.
    public_rows = []
    for tag in sorted(_dicom_dict.DicomDictionary):
        vr, vm, name, retired, keyword = _dicom_dict.DicomDictionary[tag]
        if not 0 <= tag <= 0xFFFFFFFF:
            raise GenerationError(f"tag out of range: {tag!r}")
        public_rows.append(dict(
            value=tag, mask=0, creator=0,
            vrset=vrsets.add(parse_vrs(vr, f"({tag:08X})")), vm=vms.add(vm),
            retired=retired == "Retired", keyword=keyword, name=name,
        ))

    # Repeating groups: keys like '60xx3000'.
    repeater_rows = []
    for key in sorted(_dicom_dict.RepeatersDictionary, key=lambda k: (k.upper(), k)):
        vr, vm, name, retired, keyword = _dicom_dict.RepeatersDictionary[key]
        value, mask = parse_mask(key, "RepeatersDictionary")
        repeater_rows.append(dict(
            value=value, mask=masks.add(mask), creator=0, mask_bits=mask,
            vrset=vrsets.add(parse_vrs(vr, key)), vm=vms.add(vm),
            retired=retired == "Retired", keyword=keyword, name=name,
        ))
    # The lookup tries one hash map per distinct mask; that only equals pydicom's first-match scan
    # if no tag can match two keys.
    for i, a in enumerate(repeater_rows):
        for b in repeater_rows[i + 1:]:
            if (a["value"] ^ b["value"]) & a["mask_bits"] & b["mask_bits"] == 0:
                raise GenerationError(f"overlapping repeater keys {a['keyword']} / {b['keyword']}")

    # Private dictionary: creator -> {'0019xx0c': (VR, VM, name, retired)}; keys of any shape.
    private_rows = []
    seen = set()
    for creator in sorted(_private_dict.private_dictionaries):
        entries = _private_dict.private_dictionaries[creator]
        for key in sorted(entries, key=lambda k: (k.upper(), k)):
            vr, vm, name, retired = entries[key]
            value, mask = parse_mask(key, f"private creator {creator!r}")
            if (creator, value, mask) in seen:
                raise GenerationError(f"duplicate private key {key!r} for {creator!r}")
            seen.add((creator, value, mask))
            private_rows.append(dict(
                value=value, mask=masks.add(mask), creator=creators.add(creator),
                vrset=vrsets.add(parse_vrs(vr, f"{creator} {key}")), vm=vms.add(vm),
                retired=retired == "Retired", keyword="", name=name,
            ))

    # UIDs.
    uid_rows = []
    for uid in sorted(_uid_dict.UID_dictionary, key=uid_sort_key):
        name, uid_type, info, retired, keyword = _uid_dict.UID_dictionary[uid]
        uid_rows.append((uid, name, uid_type, info, retired == "Retired", keyword))

    for table, limit in ((vrsets, 256), (vms, 128), (masks, 16), (creators, 4096)):
        if len(table.items) > limit:
            raise GenerationError(f"{len(table.items)} distinct values do not fit the packed row layout")

    files = {}

    # --- Public dictionary + repeating groups ---------------------------------------------------
    body = table_lines("generatedPublicTable", public_rows,
                       f"The {len(public_rows)} exact tags of pydicom's DicomDictionary, sorted by tag.", True)
    body += table_lines("generatedRepeaterTable", repeater_rows,
                        f"The {len(repeater_rows)} repeating-group keys of pydicom's RepeatersDictionary "
                        "('60xx3000', ...), sorted.", True)
    files["GeneratedPublicDictionary.swift"] = file_text(version, body)

    # --- UID registry ---------------------------------------------------------------------------
    body = [f"// The {len(uid_rows)} UIDs of pydicom's UID_dictionary, sorted by numeric components;",
            "// row i of every column belongs together.", ""]
    body += string_column_lines("generatedUIDValues", [r[0] for r in uid_rows], "UIDs, one a line.")
    body += string_column_lines("generatedUIDNames", [r[1] for r in uid_rows], "Names, one a line.")
    body += string_column_lines("generatedUIDTypes", [r[2] for r in uid_rows], "Types, one a line.")
    body += string_column_lines("generatedUIDInfos", [r[3] for r in uid_rows], "Info remarks, one a line.")
    body += string_column_lines("generatedUIDKeywords", [r[5] for r in uid_rows], "Keywords, one a line.")
    body += array_lines("generatedUIDRetired", "Bool", ["true" if r[4] else "false" for r in uid_rows], 12)
    files["GeneratedUIDRegistry.swift"] = file_text(version, body, imports=())

    # --- Private dictionary, split into files below MAX_FILE_BYTES -----------------------------
    def private_file(n, start, end):
        return file_text(version, table_lines(
            f"generatedPrivateTable{n}", private_rows[start:end],
            f"Private dictionary rows {start}..<{end} of {len(private_rows)}, sorted by creator, then key.",
            False))

    chunk_names = []
    start = 0
    while start < len(private_rows):
        n = len(chunk_names)
        end = len(private_rows)
        text = private_file(n, start, end)
        while len(text.encode("utf-8")) > MAX_FILE_BYTES and end - start > 1:
            end = start + max(1, (end - start) * MAX_FILE_BYTES * 9 // (len(text.encode("utf-8")) * 10))
            text = private_file(n, start, end)
        files[f"GeneratedPrivateDictionary{n}.swift"] = text
        chunk_names.append(f"generatedPrivateTable{n}")
        start = end

    # --- Shared tables and the row layout -------------------------------------------------------
    body = [
        "/// A generated dictionary table. Row `i` of `rows`, `keywords` and `names` belong together.",
        "///",
        "/// Each row packs one entry into a UInt64, written 0xGGGG_EEEE_CCCM_FFFF:",
        "/// - bits 63-32 GGGGEEEE: the tag; digits that are 'x' in pydicom's key ('60xx3000') are 0,",
        "/// - bits 31-20 CCC: index into `generatedPrivateCreators` (private tables only),",
        "/// - bits 19-16 M: index into `generatedMasks`, the bits of a tag that must equal GGGGEEEE,",
        "/// - bit 15: retired; bits 14-8: index into `generatedVMs`; bits 7-0: index into `generatedVRSets`.",
        "struct GeneratedTagTable: Sendable {",
        "    let rows: [UInt64]",
        "    let keywords: GeneratedStrings",
        "    let names: GeneratedStrings",
        "",
        "    var count: Int { rows.count }",
        "    func value(_ row: Int) -> UInt32 { UInt32(truncatingIfNeeded: rows[row] >> 32) }",
        "    func creatorIndex(_ row: Int) -> Int { Int(truncatingIfNeeded: rows[row] >> 20) & 0xFFF }",
        "    func mask(_ row: Int) -> UInt32 { generatedMasks[Int(truncatingIfNeeded: rows[row] >> 16) & 0xF] }",
        "    func isRetired(_ row: Int) -> Bool { rows[row] & 0x8000 != 0 }",
        "    func vm(_ row: Int) -> String { generatedVMs[Int(truncatingIfNeeded: rows[row] >> 8) & 0x7F] }",
        "    func vrs(_ row: Int) -> [VR] { generatedVRSets[Int(truncatingIfNeeded: rows[row]) & 0xFF] }",
        "    func keyword(_ row: Int) -> String { keywords.isEmpty ? \"\" : keywords[row] }",
        "    func name(_ row: Int) -> String { names[row] }",
        "}",
        "",
        "/// A column of strings stored as one static UTF-8 blob and the end offset of each value in it.",
        "struct GeneratedStrings: Sendable {",
        "    static let empty = GeneratedStrings(ends: [], blob: \"\")",
        "",
        "    let ends: [UInt32]",
        "    let blob: StaticString",
        "",
        "    var count: Int { ends.count }",
        "    var isEmpty: Bool { ends.isEmpty }",
        "",
        "    subscript(row: Int) -> String {",
        "        let start = row == 0 ? 0 : Int(ends[row - 1])",
        "        let end = Int(ends[row])",
        "        return blob.withUTF8Buffer {",
        "            String(decoding: UnsafeBufferPointer(rebasing: $0[start..<end]), as: UTF8.self)",
        "        }",
        "    }",
        "}",
        "",
        "/// VR alternatives as listed by the standard (\"US or SS\" -> [.US, .SS]); [] for item tags (VR \"NONE\").",
        "let generatedVRSets: [[VR]] = [",
    ]
    for vs in vrsets.items:
        body.append("    [" + ", ".join("." + v for v in vs) + "],")
    body += ["]", ""]
    body += array_lines("generatedVMs", "String", [swift_string(v) for v in vms.items], 8,
                        "Value multiplicities as written in the standard.")
    body += array_lines("generatedMasks", "UInt32", [hex32(m) for m in masks.items], 8,
                        "Tag masks: 0 bits where pydicom's key has an 'x' digit.")
    body += string_column_lines("generatedPrivateCreators", creators.items, "Private creators, sorted.")
    body += [
        f"/// pydicom's private_dictionaries ({len(private_rows)} rows, {len(creators.items)} creators) "
        "in file-sized parts.",
        "let generatedPrivateTables: [GeneratedTagTable] = [",
    ]
    body += [f"    {c}," for c in chunk_names]
    body += ["]", ""]
    files["GeneratedTables.swift"] = file_text(version, body)

    for name, text in files.items():
        if len(text.encode("utf-8")) > 1_000_000:
            raise GenerationError(f"{name} is larger than 1 MB")
    return files


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(here, os.pardir, "Sources", "DICOMDictionary"),
                        help="output directory (default: Sources/DICOMDictionary)")
    args = parser.parse_args(argv)
    version = pydicom.__version__
    try:
        files = generate(version)
    except GenerationError as e:
        print(f"generate-dictionary: {e}", file=sys.stderr)
        return 1
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)
    for name in sorted(files):
        path = os.path.join(out, name)
        data = files[name].encode("utf-8")
        try:
            with open(path, "rb") as f:
                if f.read() == data:
                    continue  # unchanged: keep the mtime so that SwiftPM does not recompile it
        except FileNotFoundError:
            pass
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    # Remove generated files from an earlier run that this run did not produce (e.g. one chunk fewer).
    marker = f"// Generated by {SCRIPT}".encode("utf-8")
    for name in sorted(os.listdir(out)):
        if name.startswith("Generated") and name.endswith(".swift") and name not in files:
            path = os.path.join(out, name)
            with open(path, "rb") as f:
                if f.read(len(marker)) == marker:
                    os.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
