import DICOMCore

extension DICOMJSON {
    /// Reads DICOM JSON back into a data set (Explicit VR LE values). Text is stored as UTF-8, and
    /// (0008,0005) becomes ISO_IR 192 when any text is not ASCII. `bulkData` resolves BulkDataURIs;
    /// without it (or when it returns nil) such values are empty.
    public static func decode(_ json: some Collection<UInt8>,
                              bulkData: ((String) -> [UInt8]?)? = nil) throws(DICOMError) -> DataSet {
        var parser = JSONParser(bytes: Array(json))
        let value = try parser.parseDocument()
        guard case .object(let members) = value else {
            throw DICOMError(.invalidValue, offset: 0, message: "DICOM JSON must be an object of elements")
        }
        var nonASCII = false
        var ds = try dataSet(members, bulkData: bulkData, nonASCII: &nonASCII, depth: 0)
        if nonASCII {
            // Text is now UTF-8 everywhere: one ISO_IR 192 at the top, none in items.
            ds = withoutItemCharacterSets(ds)
            ds.set(DataElement(tag: .specificCharacterSet, vr: .CS, value: .bytes(Array("ISO_IR 192".utf8))))
        }
        return ds
    }

    private static func withoutItemCharacterSets(_ ds: DataSet) -> DataSet {
        var out = ds
        for e in ds.elements {
            guard case .sequence(let items) = e.value else { continue }
            var copy = e
            copy.value = .sequence(items.map { item in
                var stripped = withoutItemCharacterSets(item)
                stripped.remove(.specificCharacterSet)
                return stripped
            })
            out.set(copy)
        }
        return out
    }

    private static func dataSet(_ members: [(String, JSONValue)], bulkData: ((String) -> [UInt8]?)?,
                                nonASCII: inout Bool, depth: Int) throws(DICOMError) -> DataSet {
        guard depth < 128 else { throw DICOMError(.nestingTooDeep, message: "DICOM JSON nested deeper than 128 sequences") }
        // UTF-8 decodes ASCII identically, so every data set made from JSON reads its text as UTF-8.
        var ds = DataSet(characterSet: SpecificCharacterSet(terms: ["ISO_IR 192"]))
        for (key, value) in members {
            guard let tag = Tag(hexString: key) else {
                throw DICOMError(.invalidValue, message: "'\(key.prefix(20))' is not an 8-digit tag")
            }
            guard case .object(let fields) = value, case .string(let vrCode)? = fields.first(where: { $0.0 == "vr" })?.1,
                  let vr = VR(code: vrCode) else {
                throw DICOMError(.invalidValue, tag: tag, message: "element needs a valid \"vr\"")
            }
            let field = { (name: String) in fields.first(where: { $0.0 == name })?.1 }
            if vr == .SQ {
                var items: [DataSet] = []
                if case .array(let list)? = field("Value") {
                    for item in list {
                        guard case .object(let itemMembers) = item else {
                            throw DICOMError(.invalidValue, tag: tag, message: "sequence items must be objects")
                        }
                        items.append(try dataSet(itemMembers, bulkData: bulkData, nonASCII: &nonASCII, depth: depth + 1))
                    }
                }
                ds.set(DataElement(tag: tag, vr: .SQ, value: .sequence(items)))
                continue
            }
            var bytes: [UInt8] = []
            if case .string(let b64)? = field("InlineBinary") {
                guard let decoded = Base64.decode(b64.utf8) else {
                    throw DICOMError(.invalidValue, tag: tag, message: "InlineBinary is not base64")
                }
                bytes = decoded
            } else if case .string(let uri)? = field("BulkDataURI") {
                bytes = bulkData?(uri) ?? []
            } else if case .array(let list)? = field("Value") {
                bytes = try encodeValues(list, vr: vr, tag: tag, nonASCII: &nonASCII)
            }
            ds.set(DataElement(tag: tag, vr: vr, value: .bytes(bytes))) // the writer pads to even length
        }
        return ds
    }

    private static func encodeValues(_ list: [JSONValue], vr: VR, tag: Tag, nonASCII: inout Bool) throws(DICOMError) -> [UInt8] {
        func number(_ v: JSONValue) throws(DICOMError) -> Double {
            switch v {
            case .number(let d): return d
            case .string(let s): if let d = Double(s) { return d }
            default: break
            }
            throw DICOMError(.invalidValue, tag: tag, message: "\(vr) values must be numbers")
        }
        var out: [UInt8] = []
        func append<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        switch vr {
        case .US: for v in list { append(UInt16(clamping: Int64(try number(v)))) }
        case .SS: for v in list { append(Int16(clamping: Int64(try number(v)))) }
        case .UL: for v in list { append(UInt32(clamping: Int64(try number(v)))) }
        case .SL: for v in list { append(Int32(clamping: Int64(try number(v)))) }
        case .SV: for v in list { append(Int64(try number(v))) }
        case .UV:
            for v in list {
                if case .string(let s) = v, let n = UInt64(s) { append(n) } else { append(UInt64(max(0, try number(v)))) }
            }
        case .FL: for v in list { append(Float(try number(v)).bitPattern) }
        case .FD: for v in list { append(try number(v).bitPattern) }
        case .AT:
            for v in list {
                guard case .string(let s) = v, let t = Tag(hexString: s) else {
                    throw DICOMError(.invalidValue, tag: tag, message: "AT values must be 8-digit hex strings")
                }
                append(t.group); append(t.element)
            }
        default:
            var texts: [String] = []
            for v in list {
                switch v {
                case .null: texts.append("")
                case .string(let s): texts.append(s)
                case .number(let d):
                    texts.append(vr == .IS ? String(Int64(d)) : (d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)"))
                case .object(let groups) where vr == .PN:
                    let part = { (k: String) -> String in if case .string(let s)? = groups.first(where: { $0.0 == k })?.1 { return s }; return "" }
                    var name = [part("Alphabetic"), part("Ideographic"), part("Phonetic")].joined(separator: "=")
                    while name.hasSuffix("=") { name.removeLast() }
                    texts.append(name)
                default:
                    throw DICOMError(.invalidValue, tag: tag, message: "unexpected value for \(vr)")
                }
            }
            let joined = texts.joined(separator: "\\")
            if joined.utf8.contains(where: { $0 >= 0x80 }) { nonASCII = true }
            out = Array(joined.utf8)
        }
        return out
    }
}

/// A JSON value with object members in document order.
enum JSONValue {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
}

/// RFC 8259 parser with a nesting cap; errors carry the byte offset.
struct JSONParser {
    let bytes: [UInt8]
    var i = 0
    let maximumDepth = 512

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseDocument() throws(DICOMError) -> JSONValue {
        let v = try parseValue(depth: 0)
        skipSpace()
        guard i == bytes.count else { throw fail("trailing characters after the JSON value") }
        return v
    }

    private func fail(_ message: String) -> DICOMError { DICOMError(.invalidValue, offset: i, message: "JSON: \(message)") }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func expect(_ literal: String) throws(DICOMError) {
        for b in literal.utf8 {
            guard i < bytes.count, bytes[i] == b else { throw fail("expected \(literal)") }
            i += 1
        }
    }

    private mutating func parseValue(depth: Int) throws(DICOMError) -> JSONValue {
        guard depth < maximumDepth else { throw DICOMError(.nestingTooDeep, offset: i, message: "JSON nested deeper than \(maximumDepth)") }
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [(String, JSONValue)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                let key = try parseString()
                skipSpace()
                try expect(":")
                members.append((key, try parseValue(depth: depth + 1)))
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw fail("expected , or }")
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                items.append(try parseValue(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw fail("unterminated array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected , or ]")
            }
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return .number(try parseNumber())
        }
    }

    private mutating func parseNumber() throws(DICOMError) -> Double {
        let start = i
        while i < bytes.count, let c = Optional(bytes[i]),
              (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            i += 1
        }
        guard i > start, let d = Double(String(decoding: bytes[start..<i], as: UTF8.self)) else { throw fail("invalid number") }
        return d
    }

    private mutating func parseString() throws(DICOMError) -> String {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        i += 1
        var out: [UInt8] = []
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if c != UInt8(ascii: "\\") { out.append(c); continue }
            guard i < bytes.count else { break }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if scalar >= 0xD800 && scalar < 0xDC00, i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                    i += 2
                    let low = try hex4()
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low &- 0xDC00 & 0x3FF)
                }
                out += Array(String(Unicode.Scalar(scalar).map(Character.init) ?? "\u{FFFD}").utf8)
            default: out.append(e)
            }
        }
        throw fail("unterminated string")
    }

    private mutating func hex4() throws(DICOMError) -> UInt32 {
        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
            throw fail("invalid \\u escape")
        }
        i += 4
        return v
    }
}
