import DICOMCore

/// Options for writing DICOM JSON (PS3.18 Annex F).
public struct DICOMJSONOptions: Sendable {
    /// Binary values (OB, OD, OF, OL, OV, OW, UN) longer than this become BulkDataURI when
    /// `bulkDataURI` gives one; shorter ones, and all when it gives none, are InlineBinary.
    public var bulkDataThreshold = 1024
    /// The URI for a value left out: `path` is the tags from the top level down to the element.
    public var bulkDataURI: (@Sendable (_ path: [Tag], _ element: DataElement) -> String?)?

    public init() {}
}

/// DICOM JSON Model (PS3.18 Annex F), written by hand into bytes: keys in ascending tag order,
/// PN as component-group objects, IS/DS and binary numbers as JSON numbers, AT as hex strings.
public enum DICOMJSON {
    public static func encode(_ dataSet: DataSet, options: DICOMJSONOptions = .init()) -> [UInt8] {
        var w = JSONWriter()
        encode(dataSet, path: [], options: options, into: &w)
        return w.bytes
    }

    static func encode(_ ds: DataSet, path: [Tag], options: DICOMJSONOptions, into w: inout JSONWriter) {
        w.byte(UInt8(ascii: "{"))
        var first = true
        for e in ds.elements {
            if !first { w.byte(UInt8(ascii: ",")) }
            first = false
            w.tag(e.tag)
            w.raw(":{\"vr\":\"")
            w.byte(UInt8(e.vr.rawValue >> 8))
            w.byte(UInt8(e.vr.rawValue & 0xFF))
            w.byte(UInt8(ascii: "\""))
            encodeValue(e, in: ds, parent: path, options: options, into: &w)
            w.byte(UInt8(ascii: "}"))
        }
        w.byte(UInt8(ascii: "}"))
    }

    /// `parent` is the path to the data set holding `e`; the element's own path is built only where
    /// it is needed (items, bulk data URIs), not for every element.
    private static func encodeValue(_ e: DataElement, in ds: DataSet, parent: [Tag], options: DICOMJSONOptions,
                                    into w: inout JSONWriter) {
        var path: [Tag] { parent + [e.tag] }
        switch e.value {
        case .sequence(let items):
            let path = path
            w.raw(",\"Value\":[")
            for (n, item) in items.enumerated() {
                if n > 0 { w.byte(UInt8(ascii: ",")) }
                encode(item, path: path, options: options, into: &w)
            }
            w.byte(UInt8(ascii: "]"))
            return
        case .fragments(let f):
            let start = max(0, f.basicOffsetTable.lowerBound - 8)
            let end = f.fragments.last?.upperBound ?? f.basicOffsetTable.upperBound
            binary(e, length: end - start, bytes: { f.storage.copy(start..<end) ?? [] }, path: path, options: options, into: &w)
            return
        case .bytes, .bulk:
            break
        }
        guard let length = e.valueLength, length > 0 else { return }
        if e.vr.isBinaryBulk {
            binary(e, length: length, bytes: { littleEndian(e, bigEndian: ds.isBigEndian) }, path: path, options: options, into: &w)
            return
        }
        switch e.vr {
        case .PN:
            guard let values = e.strings(characterSet: ds.characterSet), !values.isEmpty, values != [""] else { return }
            w.raw(",\"Value\":[")
            for (n, v) in values.enumerated() {
                if n > 0 { w.byte(UInt8(ascii: ",")) }
                if v.isEmpty { w.raw("null"); continue }
                let groups = v.split(separator: "=", maxSplits: 2, omittingEmptySubsequences: false)
                w.raw("{\"Alphabetic\":")
                w.string(String(groups[0]))
                if groups.count > 1 { w.raw(",\"Ideographic\":"); w.string(String(groups[1])) }
                if groups.count > 2 { w.raw(",\"Phonetic\":"); w.string(String(groups[2])) }
                w.byte(UInt8(ascii: "}"))
            }
            w.byte(UInt8(ascii: "]"))
        case .AT:
            values(e.attributeTags(bigEndian: ds.isBigEndian) ?? [], into: &w) { w, t in w.tag(t) }
        case .IS, .DS:
            // Numbers where they parse; a value that is not a number is kept as a string so nothing is lost.
            var strings = e.strings() ?? []
            if strings == [""] { strings = [] }
            values(strings, into: &w) { w, s in
                if s.isEmpty { w.raw("null") }
                else if e.vr == .IS, let n = Int64(s) { w.integer(n) }
                else if let d = Double(s), d.isFinite { w.raw(formatDouble(d, integral: e.vr == .IS)) }
                else { w.string(s) }
            }
        case .FL, .OF:
            values(e.floats(bigEndian: ds.isBigEndian) ?? [], into: &w) { w, f in w.raw(formatDouble(Double(f), integral: false)) }
        case .FD, .OD:
            values(e.doubles(bigEndian: ds.isBigEndian) ?? [], into: &w) { w, d in w.raw(formatDouble(d, integral: false)) }
        case .UV:
            values(e.unsigned64(bigEndian: ds.isBigEndian) ?? [], into: &w) { w, n in w.unsigned(n) }
        case .US, .SS, .UL, .SL, .SV:
            values(e.integers(bigEndian: ds.isBigEndian) ?? [], into: &w) { w, n in w.integer(n) }
        default:
            if writeASCIIStrings(e, into: &w) { return }
            var strings = e.strings(characterSet: ds.characterSet) ?? []
            if strings == [""] { strings = [] } // only padding: an empty value
            guard !strings.isEmpty else { return }
            w.raw(",\"Value\":[")
            for (n, v) in strings.enumerated() {
                if n > 0 { w.byte(UInt8(ascii: ",")) }
                if v.isEmpty { w.raw("null") } else { w.string(v) }
            }
            w.byte(UInt8(ascii: "]"))
        }
    }

    /// The usual string value, wholly printable ASCII, written straight from its bytes. Every
    /// Specific Character Set maps these bytes to themselves (PS3.3 C.12.1.1.2; ISO 2022 needs an
    /// ESC to leave them) and none needs JSON escaping, so the output equals the decoding path's
    /// without a String per value. Returns false, having written nothing, for any other value.
    private static func writeASCIIStrings(_ e: DataElement, into w: inout JSONWriter) -> Bool {
        let trimsLeading: Bool
        switch e.vr {
        case .AE, .AS, .CS, .DA, .DT, .TM, .UI: trimsLeading = true
        case .LO, .LT, .SH, .ST, .UC, .UR, .UT: trimsLeading = false
        default: return false
        }
        let splits = !e.vr.isSingleValuedText
        return e.withValueBytes { raw -> Bool in
            // NUL only as padding at the very end (UI); quotes, controls, DEL and 8-bit bytes, and a
            // backslash where it is not a delimiter, take the decoding path.
            var end = raw.count
            while end > 0 && raw[end - 1] == 0 { end -= 1 }
            for i in 0..<end {
                let b = raw[i]
                if b < 0x20 || b > 0x7E || b == 0x22 || (b == 0x5C && !splits) { return false }
            }
            var start = 0
            for i in 0...end where i == end || raw[i] == 0x5C {
                var lo = start, hi = i
                while hi > lo && raw[hi - 1] == 0x20 { hi -= 1 }
                if trimsLeading { while lo < hi && raw[lo] == 0x20 { lo += 1 } }
                if start == 0 {
                    if i == end && lo == hi { return true }  // one value, only padding: no Value
                    w.raw(",\"Value\":[")
                } else {
                    w.byte(UInt8(ascii: ","))
                }
                if lo == hi {
                    w.raw("null")
                } else {
                    w.byte(UInt8(ascii: "\""))
                    w.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[lo..<hi]))
                    w.byte(UInt8(ascii: "\""))
                }
                start = i + 1
            }
            w.byte(UInt8(ascii: "]"))
            return true
        } ?? false
    }

    /// `,"Value":[…]` with each item written by `write`; nothing for no items.
    private static func values<T>(_ items: [T], into w: inout JSONWriter, _ write: (inout JSONWriter, T) -> Void) {
        guard !items.isEmpty else { return }
        w.raw(",\"Value\":[")
        for (n, item) in items.enumerated() {
            if n > 0 { w.byte(UInt8(ascii: ",")) }
            write(&w, item)
        }
        w.byte(UInt8(ascii: "]"))
    }

    /// Finite doubles as JSON numbers; non-finite ones (which JSON cannot carry) as strings.
    static func formatDouble(_ d: Double, integral: Bool) -> String {
        guard d.isFinite else { return d.isNaN ? "\"NaN\"" : (d > 0 ? "\"Infinity\"" : "\"-Infinity\"") }
        if d == d.rounded(), abs(d) < 1e15 { return integral ? String(Int64(d)) : String(Int64(d)) + ".0" }
        return "\(d)"
    }

    private static func binary(_ e: DataElement, length: Int, bytes: () -> [UInt8], path: @autoclosure () -> [Tag],
                               options: DICOMJSONOptions, into w: inout JSONWriter) {
        guard length > 0 else { return }
        if length > options.bulkDataThreshold, let uri = options.bulkDataURI?(path(), e) {
            w.raw(",\"BulkDataURI\":")
            w.string(uri)
        } else {
            w.raw(",\"InlineBinary\":\"")
            w.raw(Base64.encode(bytes()))
            w.byte(UInt8(ascii: "\""))
        }
    }

    /// Binary values in little-endian order, as DICOM JSON carries them (PS3.18 F.2.7).
    private static func littleEndian(_ e: DataElement, bigEndian: Bool) -> [UInt8] {
        let bytes = e.valueBytes ?? []
        return bigEndian ? BinaryValues.swapped(bytes, width: DICOMWriter.swapWidth(e.vr)) : bytes
    }
}

/// Appends JSON text to a byte buffer; also what the DICOMweb layer writes its other JSON with.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8] = []

    public init() {}

    public mutating func byte(_ b: UInt8) { bytes.append(b) }
    public mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    /// A JSON string literal (RFC 8259 §7), written as bytes: UTF-8 passes through, only quotes,
    /// backslashes and control characters are escaped.
    public mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        let utf8 = s.utf8
        if !utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            bytes.append(contentsOf: utf8)
        } else {
            let hex = Array("0123456789abcdef".utf8)
            for b in utf8 {
                switch b {
                case 0x22: bytes += [0x5C, 0x22]
                case 0x5C: bytes += [0x5C, 0x5C]
                case 0x0A: bytes += [0x5C, UInt8(ascii: "n")]
                case 0x0D: bytes += [0x5C, UInt8(ascii: "r")]
                case 0x09: bytes += [0x5C, UInt8(ascii: "t")]
                case ..<0x20: bytes += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]]
                default: bytes.append(b)
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A decimal integer, without making a String.
    public mutating func integer(_ n: Int64) {
        if n < 0 { bytes.append(UInt8(ascii: "-")) }
        unsigned(n.magnitude)
    }

    public mutating func unsigned(_ n: UInt64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for 20 digits, on the stack
        var count = 0
        var rest = n
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[23 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(24 - count)...]))
        }
    }

    /// `"GGGGEEEE"`, without making a String.
    mutating func tag(_ tag: Tag) {
        let digits: StaticString = "0123456789ABCDEF"
        bytes.append(UInt8(ascii: "\""))
        digits.withUTF8Buffer { d in
            for shift in stride(from: 28, through: 0, by: -4) { bytes.append(d[Int((tag.rawValue >> UInt32(shift)) & 0xF)]) }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// RFC 4648 base64, for InlineBinary.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ data: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((data.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < data.count {
            let n = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2])
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = data.count - i
        if rest == 1 {
            let n = UInt32(data[i]) << 16
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
        } else if rest == 2 {
            let n = UInt32(data[i]) << 16 | UInt32(data[i + 1]) << 8
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], UInt8(ascii: "=")]
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        var table = [Int8](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = Int8(i) }
        var out: [UInt8] = []
        var acc: UInt32 = 0, bits = 0
        for c in text {
            if c == UInt8(ascii: "=") { break }
            if c == 0x0A || c == 0x0D || c == 0x20 { continue }
            let v = table[Int(c)]
            guard v >= 0 else { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }
}
