import DICOMCore

/// Specific Character Set (0008,0005): how text of the VRs that use it (SH, LO, ST, LT, UT, UC, PN)
/// is decoded (PS3.3 C.12.1.1.2, PS3.5 §6.1). Legacy encodings go through glibc's iconv; ASCII,
/// Latin-1 and UTF-8 take fast paths.
public struct SpecificCharacterSet: Sendable, Hashable {
    public static let `default` = SpecificCharacterSet(terms: [])

    /// The (0008,0005) values as given.
    public let terms: [String]
    /// Terms this decoder does not know; they are decoded as the default repertoire.
    public let unknownTerms: [String]
    /// The repertoire of the first value: what text starts in and returns to at delimiters.
    let initial: Repertoire
    /// Code extensions (ISO 2022) are in use: escape sequences may switch G0 and G1.
    let usesCodeExtensions: Bool

    public var isUTF8: Bool { initial == .utf8 }

    public init(terms rawTerms: [String]) {
        let terms = rawTerms.map { $0.trimmingSpacesAndNULs() }
        self.terms = terms
        var unknown: [String] = []
        var repertoires: [Repertoire] = []
        for (n, term) in terms.enumerated() {
            if term.isEmpty && n == 0 { repertoires.append(.ascii); continue }
            if let r = Repertoire(term: term) { repertoires.append(r) } else { unknown.append(term) }
        }
        self.unknownTerms = unknown
        self.initial = repertoires.first ?? .ascii
        self.usesCodeExtensions = terms.count > 1 || terms.contains { $0.hasPrefix("ISO 2022") }
    }

    /// Decodes a whole value field (all values, delimiters included). Never fails: bytes that do not
    /// decode become U+FFFD.
    public func decode(_ bytes: some Collection<UInt8>, vr: VR) -> String {
        let array = Array(bytes)
        if usesCodeExtensions { return ISO2022Decoder(initial: initial, vr: vr).decode(array) }
        return initial.decode(array[...])
    }

    /// Decodes and splits into values on `\`, only where `\` is a delimiter and not the trailing byte
    /// of a multi-byte character (GBK, GB18030, ISO 2022 two-byte sets).
    public func decodeValues(_ bytes: some Collection<UInt8>, vr: VR) -> [String] {
        let array = Array(bytes)
        if usesCodeExtensions {
            return ISO2022Decoder(initial: initial, vr: vr).decodeValues(array)
        }
        return splitValues(array).map { initial.decode($0) }
    }

    /// Value fields split at delimiter backslashes, aware of the initial repertoire's multi-byte forms.
    func splitValues(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var start = 0, i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x5C {
                out.append(bytes[start..<i])
                start = i + 1
                i += 1
                continue
            }
            i += initial.characterLength(bytes, at: i)
        }
        out.append(bytes[start..<min(bytes.count, max(start, bytes.count))])
        return out
    }

    /// Encodes text for this character set; nil when it cannot represent the text (only the
    /// single-repertoire sets ASCII, Latin-1 and UTF-8 are encoded).
    public func encode(_ string: String, vr: VR) -> [UInt8]? {
        switch initial {
        case .utf8: return Array(string.utf8)
        case .ascii:
            let u = Array(string.utf8)
            return u.allSatisfy { $0 < 0x80 } ? u : nil
        case .iconv(let name, _) where name == "ISO-8859-1":
            var out: [UInt8] = []
            for scalar in string.unicodeScalars {
                guard scalar.value < 0x100 else { return nil }
                out.append(UInt8(scalar.value))
            }
            return out
        default:
            return Iconv.encode(string, to: initial.iconvName ?? "ASCII")
        }
    }
}

/// One character repertoire and how its bytes decode.
enum Repertoire: Hashable, Sendable {
    case ascii
    case utf8
    /// JIS X 0201: romaji in G0, half-width katakana in G1.
    case jisX0201
    /// A single-byte ISO 8859 / TIS 620 set (G1 high half) decoded with iconv.
    case iconv(String, escape: [UInt8])
    /// Two-byte ISO 2022 sets, with the iconv name of the EUC form used to decode them.
    case jisX0208, jisX0212, ksX1001, gb2312
    /// Multi-byte sets without code extensions.
    case gb18030, gbk

    init?(term: String) {
        // The defined terms as the standard spells them, found without normalizing (upper-casing and
        // replacing through Foundation cost 5% of a header parse of the corpus).
        if let known = Repertoire.definedTerms[term] {
            self = known
            return
        }
        self.init(normalizing: term)
    }

    private init?(normalizing term: String) {
        let t = term.uppercased().replacingDashesAndUnderscores()
        switch t {
        case "ISO IR 6", "ISO 2022 IR 6", "ISO 646": self = .ascii
        case "ISO IR 192": self = .utf8
        case "GB18030": self = .gb18030
        case "GBK": self = .gbk
        case "ISO IR 13", "ISO 2022 IR 13": self = .jisX0201
        case "ISO 2022 IR 87": self = .jisX0208
        case "ISO 2022 IR 159": self = .jisX0212
        case "ISO 2022 IR 149": self = .ksX1001
        case "ISO 2022 IR 58": self = .gb2312
        default:
            let number = t.replacingOccurrences(of: "ISO 2022 IR ", with: "").replacingOccurrences(of: "ISO IR ", with: "")
            guard let (name, final) = Repertoire.singleByteSets[number] else { return nil }
            self = .iconv(name, escape: [0x1B, 0x2D, final])
        }
    }

    static let definedTerms: [String: Repertoire] = {
        var out: [String: Repertoire] = [:]
        for term in ["ISO_IR 6", "ISO 2022 IR 6", "ISO_IR 192", "GB18030", "GBK", "ISO_IR 13", "ISO 2022 IR 13",
                     "ISO 2022 IR 87", "ISO 2022 IR 159", "ISO 2022 IR 149", "ISO 2022 IR 58"]
            + singleByteSets.keys.flatMap({ ["ISO_IR \($0)", "ISO 2022 IR \($0)"] }) {
            out[term] = Repertoire(normalizing: term)
        }
        return out
    }()

    /// ISO-IR number → iconv name and the final byte of its G1 designation `ESC - F`.
    static let singleByteSets: [String: (String, UInt8)] = [
        "100": ("ISO-8859-1", 0x41), "101": ("ISO-8859-2", 0x42), "109": ("ISO-8859-3", 0x43),
        "110": ("ISO-8859-4", 0x44), "144": ("ISO-8859-5", 0x4C), "127": ("ISO-8859-6", 0x47),
        "126": ("ISO-8859-7", 0x46), "138": ("ISO-8859-8", 0x48), "148": ("ISO-8859-9", 0x4D),
        "203": ("ISO-8859-15", 0x62), "166": ("TIS-620", 0x54),
    ]

    var iconvName: String? {
        switch self {
        case .iconv(let name, _): return name
        case .gb18030: return "GB18030"
        case .gbk: return "GBK"
        case .jisX0208, .jisX0212: return "EUC-JP"
        case .ksX1001: return "EUC-KR"
        case .gb2312: return "EUC-CN"
        case .ascii, .utf8, .jisX0201: return nil
        }
    }

    var isMultiByte: Bool {
        switch self {
        case .jisX0208, .jisX0212, .ksX1001, .gb2312, .gb18030, .gbk: return true
        default: return false
        }
    }

    /// Bytes of the character starting at `i` (for delimiter-aware splitting).
    func characterLength(_ bytes: [UInt8], at i: Int) -> Int {
        let b = bytes[i]
        switch self {
        case .gbk:
            return b >= 0x81 && b <= 0xFE && i + 1 < bytes.count ? 2 : 1
        case .gb18030:
            guard b >= 0x81 && b <= 0xFE, i + 1 < bytes.count else { return 1 }
            let b1 = bytes[i + 1]
            return (b1 >= 0x30 && b1 <= 0x39) && i + 3 < bytes.count ? 4 : 2
        default:
            return 1
        }
    }

    /// Decodes bytes wholly in this repertoire (no escape sequences).
    func decode(_ bytes: ArraySlice<UInt8>) -> String {
        if bytes.isEmpty { return "" }
        switch self {
        case .ascii:
            // Bytes above 0x7F in a default-repertoire value: read as Latin-1, as pydicom does.
            if bytes.allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
            return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        case .utf8:
            return String(decoding: bytes, as: UTF8.self)
        case .iconv(let name, _) where name == "ISO-8859-1":
            return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        case .jisX0201:
            var scalars = String.UnicodeScalarView()
            for b in bytes {
                if b >= 0xA1 && b <= 0xDF {
                    scalars.append(Unicode.Scalar(0xFF61 + UInt32(b - 0xA1)) ?? "\u{FFFD}")
                } else if b < 0x80 {
                    scalars.append(Unicode.Scalar(b))
                } else {
                    scalars.append("\u{FFFD}")
                }
            }
            return String(scalars)
        case .jisX0208, .ksX1001, .gb2312:
            // G0 (7-bit) or G1 (8-bit) two-byte codes: with the high bit set they are EUC.
            return Iconv.decode(bytes.map { $0 | 0x80 }, from: iconvName ?? "EUC-JP")
        case .jisX0212:
            var euc: [UInt8] = []
            var i = bytes.startIndex
            while i + 1 < bytes.endIndex {
                euc += [0x8F, bytes[i] | 0x80, bytes[i + 1] | 0x80]
                i += 2
            }
            return Iconv.decode(euc, from: "EUC-JP")
        case .iconv, .gb18030, .gbk:
            return Iconv.decode(Array(bytes), from: iconvName ?? "ASCII")
        }
    }
}

extension String {
    func replacingDashesAndUnderscores() -> String {
        String(map { $0 == "_" || $0 == "-" ? " " : $0 })
    }

    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Substring.Index>? {
        guard let first = target.first else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i] == first, self[i...].hasPrefix(target) {
                return i..<(index(i, offsetBy: target.count))
            }
            i = index(after: i)
        }
        return nil
    }
}

extension SpecificCharacterSet {
    /// Bytes below 0x80 decode to the same ASCII text, `\` included: true of ASCII, UTF-8, the
    /// ISO 8859 / TIS 620 sets and GB18030/GBK without code extensions; not of JIS X 0201 (its
    /// 0x5C is the yen sign) nor of anything that switches sets by escape sequences.
    var readsASCIIAsASCII: Bool {
        guard !usesCodeExtensions else { return false }
        switch initial {
        case .ascii, .utf8, .iconv, .gb18030, .gbk: return true
        case .jisX0201, .jisX0208, .jisX0212, .ksX1001, .gb2312: return false
        }
    }
}
