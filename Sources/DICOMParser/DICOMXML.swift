import DICOMCore
import DICOMDictionary

/// The Native DICOM Model (PS3.19 Annex A): the XML form of a data set that PS3.18 serves as
/// application/dicom+xml. Values are written as the data set holds them, after the same decoding the
/// DICOM JSON writer does: text through the Specific Character Set into UTF-8 (the document's
/// encoding; (0008,0005) is kept as it was, as in DICOM JSON), DS and IS as their stored strings,
/// binary numbers in decimal, AT as `GGGGEEEE`, PN split into its component groups and components.
/// Binary VRs longer than `bulkDataThreshold` become `<BulkData uri=…>` when `bulkDataURI` gives one;
/// the others are `<InlineBinary>` base64, little endian (PS3.19 A.1.5).
public enum DICOMXML {
    public static let namespace = "http://dicom.nema.org/PS3.19/models/NativeDICOM"

    public static func encode(_ dataSet: DataSet, options: DICOMJSONOptions = .init()) -> [UInt8] {
        var w = XMLWriter()
        w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<NativeDicomModel xmlns=\"\(namespace)\" xml:space=\"preserve\">\n")
        encode(dataSet, path: [], options: options, into: &w)
        w.raw("</NativeDicomModel>\n")
        return w.bytes
    }

    static func encode(_ ds: DataSet, path: [Tag], options: DICOMJSONOptions, into w: inout XMLWriter) {
        // Group lengths (retired) describe a byte stream, which the document is not.
        for e in ds.elements where !e.tag.isGroupLength {
            // Encapsulated Pixel Data is OB whatever its header says (PS3.5 A.4).
            let vr: String
            if case .fragments = e.value { vr = "OB" } else { vr = e.vr.code }
            w.raw("<DicomAttribute tag=\"")
            // A private element is named by its block-relative tag gggg00ee and its creator (PS3.19 A.1.1).
            if let creatorTag = e.tag.privateCreatorTag {
                w.raw(Tag(group: e.tag.group, element: e.tag.element & 0xFF).hexString)
                w.raw("\" vr=\"\(vr)\" privateCreator=\"")
                w.text(ds.string(creatorTag) ?? "")
                w.raw("\">\n")
            } else {
                w.raw("\(e.tag.hexString)\" vr=\"\(vr)\"")
                if !e.tag.isPrivate, let keyword = DataDictionary.entry(for: e.tag)?.keyword, !keyword.isEmpty,
                   keyword != DataDictionary.genericGroupLengthKeyword {
                    w.raw(" keyword=\"\(keyword)\"")
                }
                w.raw(">\n")
            }
            value(e, in: ds, parent: path, options: options, into: &w)
            w.raw("</DicomAttribute>\n")
        }
    }

    private static func value(_ e: DataElement, in ds: DataSet, parent: [Tag], options: DICOMJSONOptions, into w: inout XMLWriter) {
        switch e.value {
        case .sequence(let items):
            for (n, item) in items.enumerated() {
                w.raw("<Item number=\"\(n + 1)\">\n")
                encode(item, path: parent + [e.tag], options: options, into: &w)
                w.raw("</Item>\n")
            }
            return
        case .fragments(let f):
            let start = max(0, f.basicOffsetTable.lowerBound - 8)
            let end = f.fragments.last?.upperBound ?? f.basicOffsetTable.upperBound
            binary(e, length: end - start, bytes: { f.storage.copy(start..<end) ?? [] }, path: parent + [e.tag], options: options, into: &w)
            return
        case .bytes, .bulk:
            break
        }
        guard let length = e.valueLength, length > 0 else { return }
        if e.vr.isBinaryBulk {
            binary(e, length: length, bytes: {
                let bytes = e.valueBytes ?? []
                return ds.isBigEndian ? BinaryValues.swapped(bytes, width: DICOMWriter.swapWidth(e.vr)) : bytes
            }, path: parent + [e.tag], options: options, into: &w)
            return
        }
        let big = ds.isBigEndian
        switch e.vr {
        case .PN:
            for (n, v) in (e.strings(characterSet: ds.characterSet) ?? []).enumerated() where !v.isEmpty {
                personName(v, number: n + 1, into: &w)
            }
        case .AT: values((e.attributeTags(bigEndian: big) ?? []).map(\.hexString), into: &w)
        case .FL, .OF: values((e.floats(bigEndian: big) ?? []).map { "\($0)" }, into: &w)
        case .FD, .OD: values((e.doubles(bigEndian: big) ?? []).map { "\($0)" }, into: &w)
        case .UV: values((e.unsigned64(bigEndian: big) ?? []).map { "\($0)" }, into: &w)
        case .US, .SS, .UL, .SL, .SV: values((e.integers(bigEndian: big) ?? []).map { "\($0)" }, into: &w)
        default: values(e.strings(characterSet: ds.characterSet) ?? [], into: &w)
        }
    }

    /// `<Value number="n">` for each value; an empty value is left out but keeps its number.
    private static func values(_ items: [String], into w: inout XMLWriter) {
        for (n, v) in items.enumerated() where !v.isEmpty {
            w.raw("<Value number=\"\(n + 1)\">")
            w.text(v)
            w.raw("</Value>\n")
        }
    }

    /// PS3.19 A.1.4: Alphabetic, Ideographic and Phonetic groups, each with the components it has.
    /// Groups with no components (`^^^^`) are left out, and a name with none at all.
    private static func personName(_ value: String, number: Int, into w: inout XMLWriter) {
        let groups = value.split(separator: "=", maxSplits: 2, omittingEmptySubsequences: false).map { PersonName.components(of: String($0)) }
        guard groups.contains(where: { $0.contains { !$0.isEmpty } }) else { return }
        w.raw("<PersonName number=\"\(number)\">\n")
        for (parts, name) in zip(groups, ["Alphabetic", "Ideographic", "Phonetic"]) where parts.contains(where: { !$0.isEmpty }) {
            w.raw("<\(name)>\n")
            for (part, element) in zip(parts, ["FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix"]) where !part.isEmpty {
                w.raw("<\(element)>")
                w.text(part)
                w.raw("</\(element)>\n")
            }
            w.raw("</\(name)>\n")
        }
        w.raw("</PersonName>\n")
    }

    private static func binary(_ e: DataElement, length: Int, bytes: () -> [UInt8], path: [Tag], options: DICOMJSONOptions, into w: inout XMLWriter) {
        guard length > 0 else { return }
        if length > options.bulkDataThreshold, let uri = options.bulkDataURI?(path, e) {
            w.raw("<BulkData uri=\"")
            w.text(uri)
            w.raw("\"/>\n")
        } else {
            w.raw("<InlineBinary>\(Base64.encode(bytes()))</InlineBinary>\n")
        }
    }
}

/// Appends XML text to a byte buffer (also the audit trail's DICOM audit messages, DICOMweb).
public struct XMLWriter {
    public var bytes: [UInt8] = []

    public init() {}

    public mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// Character data or an attribute value: markup characters escaped; the C0 controls XML 1.0
    /// cannot carry at all (all but tab, line feed, carriage return) become U+FFFD.
    public mutating func text(_ s: String) {
        let utf8 = s.utf8
        guard utf8.contains(where: { $0 < 0x20 || $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 }) else {
            return bytes.append(contentsOf: utf8)
        }
        for b in utf8 {
            switch b {
            case 0x26: raw("&amp;")
            case 0x3C: raw("&lt;")
            case 0x3E: raw("&gt;")
            case 0x22: raw("&quot;")
            case 0x09, 0x0A: bytes.append(b)
            case 0x0D: raw("&#13;")  // a literal CR would be normalised away by the parser
            case ..<0x20: bytes += [0xEF, 0xBF, 0xBD]
            default: bytes.append(b)
            }
        }
    }
}
