/// A data element tag: (group, element) packed as `group << 16 | element`.
///
/// Stored as one `UInt32` so that ordering, hashing and dictionary lookups are integer operations;
/// tags are never represented as hex strings inside Tessera.
public struct Tag: RawRepresentable, Hashable, Comparable, Sendable {
    public let rawValue: UInt32

    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(group: UInt16, element: UInt16) {
        self.rawValue = UInt32(group) << 16 | UInt32(element)
    }

    @inlinable public var group: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 16) }
    @inlinable public var element: UInt16 { UInt16(truncatingIfNeeded: rawValue) }

    /// Odd groups other than 0001, 0003, 0005, 0007 and FFFF are private (PS3.5 §7.8).
    @inlinable public var isPrivate: Bool {
        group & 1 == 1 && group > 0x0007 && group != 0xFFFF
    }
    /// (gggg,0010)–(gggg,00FF) in a private group reserve a block of elements for a creator.
    @inlinable public var isPrivateCreator: Bool {
        isPrivate && element >= 0x0010 && element <= 0x00FF
    }
    /// The private creator element that reserves this private tag's block, e.g. (0029,1010) → (0029,0010).
    @inlinable public var privateCreatorTag: Tag? {
        guard isPrivate, element > 0x00FF else { return nil }
        return Tag(group: group, element: element >> 8)
    }
    /// Group length elements (gggg,0000): deprecated but still found in files.
    @inlinable public var isGroupLength: Bool { element == 0 }

    @inlinable public static func < (lhs: Tag, rhs: Tag) -> Bool { lhs.rawValue < rhs.rawValue }

    /// `GGGGEEEE`, upper-case hex: the form DICOM JSON uses for its keys.
    public var hexString: String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out = [UInt8](repeating: 0, count: 8)
        var v = rawValue
        for i in (0..<8).reversed() {
            out[i] = digits[Int(v & 0xF)]
            v >>= 4
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses `GGGGEEEE` (as in DICOM JSON and QIDO query keys); nil if not exactly eight hex digits.
    public init?(hexString: some StringProtocol) {
        guard hexString.utf8.count == 8, let v = UInt32(hexString, radix: 16) else { return nil }
        self.rawValue = v
    }
}

extension Tag: CustomStringConvertible {
    /// `(GGGG,EEEE)` as dcmdump prints it.
    public var description: String {
        let h = hexString
        return "(\(h.prefix(4)),\(h.suffix(4)))"
    }
}

/// Tags that the parser and writer need by name. The full dictionary lives in DICOMDictionary.
extension Tag {
    public static let fileMetaInformationGroupLength = Tag(0x0002_0000)
    public static let fileMetaInformationVersion = Tag(0x0002_0001)
    public static let mediaStorageSOPClassUID = Tag(0x0002_0002)
    public static let mediaStorageSOPInstanceUID = Tag(0x0002_0003)
    public static let transferSyntaxUID = Tag(0x0002_0010)
    public static let implementationClassUID = Tag(0x0002_0012)
    public static let implementationVersionName = Tag(0x0002_0013)
    public static let sourceApplicationEntityTitle = Tag(0x0002_0016)
    public static let specificCharacterSet = Tag(0x0008_0005)
    public static let sopClassUID = Tag(0x0008_0016)
    public static let sopInstanceUID = Tag(0x0008_0018)
    public static let studyInstanceUID = Tag(0x0020_000D)
    public static let seriesInstanceUID = Tag(0x0020_000E)
    public static let samplesPerPixel = Tag(0x0028_0002)
    public static let photometricInterpretation = Tag(0x0028_0004)
    public static let planarConfiguration = Tag(0x0028_0006)
    public static let numberOfFrames = Tag(0x0028_0008)
    public static let rows = Tag(0x0028_0010)
    public static let columns = Tag(0x0028_0011)
    public static let bitsAllocated = Tag(0x0028_0100)
    public static let bitsStored = Tag(0x0028_0101)
    public static let highBit = Tag(0x0028_0102)
    public static let pixelRepresentation = Tag(0x0028_0103)
    public static let extendedOffsetTable = Tag(0x7FE0_0001)
    public static let extendedOffsetTableLengths = Tag(0x7FE0_0002)
    public static let floatPixelData = Tag(0x7FE0_0008)
    public static let doubleFloatPixelData = Tag(0x7FE0_0009)
    public static let pixelData = Tag(0x7FE0_0010)
    public static let item = Tag(0xFFFE_E000)
    public static let itemDelimitationItem = Tag(0xFFFE_E00D)
    public static let sequenceDelimitationItem = Tag(0xFFFE_E0DD)
}
