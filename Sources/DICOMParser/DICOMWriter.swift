import DICOMCore
import CompressNIO
import NIOCore

/// Writes data sets and Part 10 files in any of the native transfer syntaxes (and encapsulated ones,
/// whose data set is Explicit VR LE). Sequences and items are written with undefined length, so a
/// writer never needs to measure a subtree before emitting it.
public enum DICOMWriter {
    /// Tessera's implementation identification in the file meta group (a UUID-derived 2.25 UID).
    public static let implementationClassUID = "2.25.188741369211948312452406381045226739317"
    /// `TESSERA_<major>_<minor>` (SH, at most 16 characters).
    public static let implementationVersionName = "TESSERA_" + TesseraVersion.string.split(separator: ".").prefix(2).joined(separator: "_")

    /// A complete Part 10 file: preamble, `DICM`, a file meta group made for `dataSet`, the data set.
    /// Meta elements in `meta` (e.g. Source AE Title) are kept; the UIDs and version are always rewritten.
    public static func part10(_ dataSet: DataSet, transferSyntax: TransferSyntax, meta: DataSet = DataSet()) throws(DICOMError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 128)
        out += Array("DICM".utf8)
        let metaSet = try fileMeta(for: dataSet, transferSyntax: transferSyntax, keeping: meta)
        try encode(metaSet, into: &out, explicitVR: true, bigEndian: false)
        if transferSyntax.isDeflated {
            var body: [UInt8] = []
            try encode(dataSet, into: &body, explicitVR: true, bigEndian: false)
            out += try deflate(body)
        } else {
            try encode(dataSet, into: &out, explicitVR: transferSyntax.isExplicitVR, bigEndian: transferSyntax.isBigEndian)
        }
        return out
    }

    /// The file meta group (PS3.10 §7.1) for `dataSet`, with a correct group length.
    public static func fileMeta(for dataSet: DataSet, transferSyntax: TransferSyntax, keeping meta: DataSet = DataSet()) throws(DICOMError) -> DataSet {
        guard let sopClass = dataSet.string(.sopClassUID), let sopInstance = dataSet.string(.sopInstanceUID) else {
            throw DICOMError(.invalidValue, tag: dataSet.contains(.sopClassUID) ? .sopInstanceUID : .sopClassUID,
                             message: "a Part 10 file needs SOP Class UID and SOP Instance UID")
        }
        var m = DataSet()
        for e in meta.elements where e.tag.group == 0x0002 { m.set(e) }
        m.set(DataElement(tag: .fileMetaInformationVersion, vr: .OB, value: .bytes([0x00, 0x01])))
        m.set(uid(.mediaStorageSOPClassUID, sopClass))
        m.set(uid(.mediaStorageSOPInstanceUID, sopInstance))
        m.set(uid(.transferSyntaxUID, transferSyntax.uid))
        m.set(uid(.implementationClassUID, implementationClassUID))
        m.set(DataElement(tag: .implementationVersionName, vr: .SH, value: .bytes(padded(Array(implementationVersionName.utf8), vr: .SH))))
        m.remove(.fileMetaInformationGroupLength)
        var body: [UInt8] = []
        try encode(m, into: &body, explicitVR: true, bigEndian: false)
        var length: [UInt8] = []
        append(UInt32(body.count), to: &length, bigEndian: false)
        m.set(DataElement(tag: .fileMetaInformationGroupLength, vr: .UL, value: .bytes(length)))
        return m
    }

    private static func uid(_ tag: Tag, _ value: String) -> DataElement {
        DataElement(tag: tag, vr: .UI, value: .bytes(padded(Array(value.utf8), vr: .UI)))
    }

    static func padded(_ bytes: [UInt8], vr: VR) -> [UInt8] {
        bytes.count % 2 == 0 ? bytes : bytes + [vr.paddingByte]
    }

    /// Encodes the elements of `dataSet` (no preamble, no meta) in the given encoding.
    public static func encode(_ dataSet: DataSet, into out: inout [UInt8], explicitVR: Bool, bigEndian: Bool) throws(DICOMError) {
        for element in dataSet.elements {
            try encode(element, sourceBigEndian: dataSet.isBigEndian, into: &out, explicitVR: explicitVR, bigEndian: bigEndian)
        }
    }

    static func encode(_ e: DataElement, sourceBigEndian: Bool, into out: inout [UInt8], explicitVR: Bool, bigEndian: Bool) throws(DICOMError) {
        switch e.value {
        case .sequence(let items):
            header(e.tag, .SQ, ElementHeader.undefinedLength, into: &out, explicitVR: explicitVR, bigEndian: bigEndian)
            for item in items {
                header(.item, nil, ElementHeader.undefinedLength, into: &out, explicitVR: false, bigEndian: bigEndian)
                try encode(item, into: &out, explicitVR: explicitVR, bigEndian: bigEndian)
                header(.itemDelimitationItem, nil, 0, into: &out, explicitVR: false, bigEndian: bigEndian)
            }
            header(.sequenceDelimitationItem, nil, 0, into: &out, explicitVR: false, bigEndian: bigEndian)
        case .fragments(let f):
            guard !bigEndian else {
                throw DICOMError(.unsupportedTransferSyntax, tag: e.tag, message: "encapsulated Pixel Data needs a little-endian syntax")
            }
            header(e.tag, e.vr == .OW ? .OW : .OB, ElementHeader.undefinedLength, into: &out, explicitVR: explicitVR, bigEndian: false)
            for range in [f.basicOffsetTable] + f.fragments {
                guard let bytes = f.storage.copy(range) else {
                    throw DICOMError(.lengthOutOfBounds, tag: e.tag, message: "fragment outside its storage")
                }
                let value = padded(bytes, vr: .OB)
                header(.item, nil, UInt32(value.count), into: &out, explicitVR: false, bigEndian: false)
                out += value
            }
            header(.sequenceDelimitationItem, nil, 0, into: &out, explicitVR: false, bigEndian: false)
        case .bytes, .bulk:
            var value = padded(e.valueBytes ?? [], vr: e.vr)
            if sourceBigEndian != bigEndian {
                value = BinaryValues.swapped(value, width: swapWidth(e.vr))
            }
            guard value.count < Int(ElementHeader.undefinedLength) else {
                throw DICOMError(.limitExceeded, tag: e.tag, message: "value of \(value.count) bytes is too long to encode")
            }
            if explicitVR && !e.vr.hasLongExplicitLength && value.count > 0xFFFF {
                throw DICOMError(.invalidValue, tag: e.tag, message: "\(e.vr) value of \(value.count) bytes exceeds the 16-bit length of explicit VR")
            }
            header(e.tag, e.vr, UInt32(value.count), into: &out, explicitVR: explicitVR, bigEndian: bigEndian)
            out += value
        }
    }

    /// Byte-swapping unit per VR: AT swaps its group and element separately; OB/UN/text not at all.
    static func swapWidth(_ vr: VR) -> Int {
        switch vr {
        case .AT: return 2
        default: return vr.numericWidth ?? 1
        }
    }

    /// `vr == nil` writes an item/delimiter header (tag + 32-bit length, no VR in any syntax).
    static func header(_ tag: Tag, _ vr: VR?, _ length: UInt32, into out: inout [UInt8], explicitVR: Bool, bigEndian: Bool) {
        append(tag.group, to: &out, bigEndian: bigEndian)
        append(tag.element, to: &out, bigEndian: bigEndian)
        guard let vr, explicitVR else {
            append(length, to: &out, bigEndian: bigEndian)
            return
        }
        out.append(UInt8(vr.rawValue >> 8))
        out.append(UInt8(vr.rawValue & 0xFF))
        if vr.hasLongExplicitLength {
            out += [0, 0]
            append(length, to: &out, bigEndian: bigEndian)
        } else {
            append(UInt16(truncatingIfNeeded: length), to: &out, bigEndian: bigEndian)
        }
    }

    static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8], bigEndian: Bool) {
        withUnsafeBytes(of: bigEndian ? v.bigEndian : v.littleEndian) { out += $0 }
    }

    static func deflate(_ bytes: [UInt8]) throws(DICOMError) -> [UInt8] {
        var input = ByteBuffer(bytes: bytes)
        do {
            let output = try input.compress(with: .deflate())
            return Array(output.readableBytesView)
        } catch {
            throw DICOMError(.deflate, message: "cannot deflate: \(error)")
        }
    }
}
