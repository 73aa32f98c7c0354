import DICOMCore

/// Typed access to values. Binary numbers are read in the data set's byte order; text is decoded
/// with the data set's character set for the VRs that use it, and as ASCII otherwise.
extension DataElement {
    /// Text values, split on `\` for multi-valued VRs, with the padding PS3.5 §6.2 allows removed.
    public func strings(characterSet: SpecificCharacterSet = .default) -> [String]? {
        guard vr.isString || vr == .UN, let bytes = valueBytes else { return nil }
        if bytes.isEmpty { return [] }
        let raw: [String]
        if vr.isSingleValuedText {
            raw = [vr.usesSpecificCharacterSet ? characterSet.decode(bytes, vr: vr) : String(decoding: bytes, as: UTF8.self)]
        } else if vr.usesSpecificCharacterSet {
            raw = characterSet.decodeValues(bytes, vr: vr)
        } else {
            raw = bytes.split(separator: 0x5C, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        }
        return raw.map { trimmed($0) }
    }

    private func trimmed(_ value: String) -> String {
        var s = Substring(value)
        while let c = s.unicodeScalars.last, c == " " || c == "\0" { s = s.dropLast() }
        switch vr {
        case .AE, .AS, .CS, .DA, .DS, .DT, .IS, .TM, .UI:
            // Leading spaces are insignificant for these (PS3.5 Table 6.2-1).
            while let c = s.unicodeScalars.first, c == " " { s = s.dropFirst() }
        case .PN:
            // Trailing empty component groups may be omitted (PS3.5 §6.2.1.1): "A^B=" is "A^B".
            while let c = s.unicodeScalars.last, c == "=" { s = s.dropLast() }
        default: break
        }
        return String(s)
    }

    /// Signed or unsigned integers: binary VRs, and IS parsed; nil when the VR holds no integers or a value is not one.
    public func integers(bigEndian: Bool) -> [Int64]? {
        guard let bytes = valueBytes else { return nil }
        switch vr {
        case .IS:
            guard let values = strings() else { return nil }
            var out: [Int64] = []
            for v in values where !v.isEmpty {
                guard let n = Int64(v) ?? Double(v).flatMap({ $0.rounded() == $0 && abs($0) < 9.2e18 ? Int64($0) : nil }) else { return nil }
                out.append(n)
            }
            return out
        case .US: return BinaryValues.decode(bytes, as: UInt16.self, bigEndian: bigEndian).map(Int64.init)
        case .SS: return BinaryValues.decode(bytes, as: Int16.self, bigEndian: bigEndian).map(Int64.init)
        case .UL: return BinaryValues.decode(bytes, as: UInt32.self, bigEndian: bigEndian).map(Int64.init)
        case .SL: return BinaryValues.decode(bytes, as: Int32.self, bigEndian: bigEndian).map(Int64.init)
        case .SV: return BinaryValues.decode(bytes, as: Int64.self, bigEndian: bigEndian)
        case .UV: return BinaryValues.decode(bytes, as: UInt64.self, bigEndian: bigEndian).map { Int64(bitPattern: $0) }
        default: return nil
        }
    }

    /// UV values exactly (they may exceed Int64).
    public func unsigned64(bigEndian: Bool) -> [UInt64]? {
        guard vr == .UV, let bytes = valueBytes else { return nil }
        return BinaryValues.decode(bytes, as: UInt64.self, bigEndian: bigEndian)
    }

    /// Floating-point values: FL, FD, OF, OD, and DS parsed.
    public func doubles(bigEndian: Bool) -> [Double]? {
        guard let bytes = valueBytes else { return nil }
        switch vr {
        case .DS:
            guard let values = strings() else { return nil }
            var out: [Double] = []
            for v in values where !v.isEmpty {
                guard let d = Double(v) else { return nil }
                out.append(d)
            }
            return out
        case .FL, .OF: return BinaryValues.decode(bytes, as: UInt32.self, bigEndian: bigEndian).map { Double(Float(bitPattern: $0)) }
        case .FD, .OD: return BinaryValues.decode(bytes, as: UInt64.self, bigEndian: bigEndian).map { Double(bitPattern: $0) }
        default: return nil
        }
    }

    /// FL values as `Float` (no widening), for exact formatting.
    public func floats(bigEndian: Bool) -> [Float]? {
        guard vr == .FL || vr == .OF, let bytes = valueBytes else { return nil }
        return BinaryValues.decode(bytes, as: UInt32.self, bigEndian: bigEndian).map { Float(bitPattern: $0) }
    }

    /// AT values.
    public func attributeTags(bigEndian: Bool) -> [Tag]? {
        guard vr == .AT, let bytes = valueBytes else { return nil }
        let halves = BinaryValues.decode(bytes, as: UInt16.self, bigEndian: bigEndian)
        return stride(from: 0, to: halves.count - 1, by: 2).map { Tag(group: halves[$0], element: halves[$0 + 1]) }
    }
}

extension DataSet {
    public func strings(_ tag: Tag) -> [String]? { self[tag]?.strings(characterSet: characterSet) }
    public func string(_ tag: Tag) -> String? { strings(tag)?.first }
    public func integers(_ tag: Tag) -> [Int64]? { self[tag]?.integers(bigEndian: isBigEndian) }
    public func integer(_ tag: Tag) -> Int64? { integers(tag)?.first }
    public func doubles(_ tag: Tag) -> [Double]? { self[tag]?.doubles(bigEndian: isBigEndian) }
    public func attributeTags(_ tag: Tag) -> [Tag]? { self[tag]?.attributeTags(bigEndian: isBigEndian) }
    public func personNames(_ tag: Tag) -> [PersonName]? {
        guard self[tag]?.vr == .PN else { return nil }
        return strings(tag)?.map(PersonName.init(dicom:))
    }
    public func date(_ tag: Tag) -> DICOMDate? { string(tag).flatMap(DICOMDate.init(dicom:)) }
}

/// Fixed-width binary decoding that never traps: a trailing partial value is ignored.
enum BinaryValues {
    static func decode<T: FixedWidthInteger>(_ bytes: [UInt8], as: T.Type, bigEndian: Bool) -> [T] {
        let width = MemoryLayout<T>.size
        let n = bytes.count / width
        return bytes.withUnsafeBytes { raw in
            (0..<n).map { i in
                let v = raw.loadUnaligned(fromByteOffset: i * width, as: T.self)
                return bigEndian ? T(bigEndian: v) : T(littleEndian: v)
            }
        }
    }

    /// Reverses each `width`-byte word: converts binary values between byte orders.
    static func swapped(_ bytes: [UInt8], width: Int) -> [UInt8] {
        guard width > 1 else { return bytes }
        var out = bytes
        var i = 0
        while i + width <= out.count {
            out[i..<(i + width)].reverse()
            i += width
        }
        return out
    }
}

/// A Person Name value (PS3.5 §6.2.1): up to three component groups — alphabetic, ideographic,
/// phonetic — each of up to five components (family, given, middle, prefix, suffix).
public struct PersonName: Sendable, Hashable {
    public var alphabetic: String
    public var ideographic: String
    public var phonetic: String

    public init(alphabetic: String = "", ideographic: String = "", phonetic: String = "") {
        self.alphabetic = alphabetic
        self.ideographic = ideographic
        self.phonetic = phonetic
    }

    public init(dicom value: String) {
        let groups = value.split(separator: "=", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        alphabetic = groups.count > 0 ? groups[0] : ""
        ideographic = groups.count > 1 ? groups[1] : ""
        phonetic = groups.count > 2 ? groups[2] : ""
    }

    /// Components of a group: family, given, middle, prefix, suffix (missing ones empty).
    public static func components(of group: String) -> [String] {
        var parts = group.split(separator: "^", maxSplits: 4, omittingEmptySubsequences: false).map(String.init)
        while parts.count < 5 { parts.append("") }
        return parts
    }

    public var familyName: String { Self.components(of: alphabetic)[0] }
    public var givenName: String { Self.components(of: alphabetic)[1] }
}

/// A DA value: YYYYMMDD (and the pre-1993 YYYY.MM.DD some archives still hold).
public struct DICOMDate: Sendable, Hashable, Comparable {
    public var year: Int, month: Int, day: Int

    public init?(year: Int, month: Int, day: Int) {
        guard (1...9999).contains(year), (1...12).contains(month), (1...31).contains(day) else { return nil }
        self.year = year; self.month = month; self.day = day
    }

    public init?(dicom: String) {
        let digits = dicom.utf8.count == 10 ? String(dicom.filter { $0 != "." }) : dicom
        guard digits.utf8.count == 8, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let y = Int(digits.prefix(4)), let m = Int(digits.dropFirst(4).prefix(2)), let d = Int(digits.suffix(2))
        else { return nil }
        self.init(year: y, month: m, day: d)
    }

    public var dicomString: String {
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(year, 4) + pad(month, 2) + pad(day, 2)
    }

    public static func < (a: DICOMDate, b: DICOMDate) -> Bool {
        (a.year, a.month, a.day) < (b.year, b.month, b.day)
    }
}
