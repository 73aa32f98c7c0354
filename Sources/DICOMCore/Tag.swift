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
    /// Written in place: eight bytes fit a small string, with no array on the way (QIDO-RS writes
    /// one per attribute of every result).
    public var hexString: String {
        let v = rawValue
        return String(unsafeUninitializedCapacity: 8) { out in
            for i in 0..<8 {
                let d = UInt8((v >> UInt32(28 - 4 * i)) & 0xF)
                out[i] = d < 10 ? UInt8(ascii: "0") + d : UInt8(ascii: "A") + d - 10
            }
            return 8
        }
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
/// Computed and inlinable rather than stored: a stored `static let` is reached through a lazy-init
/// accessor call, which the parser paid for every element it compared with one of these.
extension Tag {
    @inlinable public static var fileMetaInformationGroupLength: Tag { Tag(0x0002_0000) }
    @inlinable public static var fileMetaInformationVersion: Tag { Tag(0x0002_0001) }
    @inlinable public static var mediaStorageSOPClassUID: Tag { Tag(0x0002_0002) }
    @inlinable public static var mediaStorageSOPInstanceUID: Tag { Tag(0x0002_0003) }
    @inlinable public static var transferSyntaxUID: Tag { Tag(0x0002_0010) }
    @inlinable public static var implementationClassUID: Tag { Tag(0x0002_0012) }
    @inlinable public static var implementationVersionName: Tag { Tag(0x0002_0013) }
    @inlinable public static var sourceApplicationEntityTitle: Tag { Tag(0x0002_0016) }
    @inlinable public static var specificCharacterSet: Tag { Tag(0x0008_0005) }
    @inlinable public static var sopClassUID: Tag { Tag(0x0008_0016) }
    @inlinable public static var sopInstanceUID: Tag { Tag(0x0008_0018) }
    @inlinable public static var studyInstanceUID: Tag { Tag(0x0020_000D) }
    @inlinable public static var seriesInstanceUID: Tag { Tag(0x0020_000E) }
    @inlinable public static var samplesPerPixel: Tag { Tag(0x0028_0002) }
    @inlinable public static var photometricInterpretation: Tag { Tag(0x0028_0004) }
    @inlinable public static var planarConfiguration: Tag { Tag(0x0028_0006) }
    @inlinable public static var numberOfFrames: Tag { Tag(0x0028_0008) }
    @inlinable public static var rows: Tag { Tag(0x0028_0010) }
    @inlinable public static var columns: Tag { Tag(0x0028_0011) }
    @inlinable public static var bitsAllocated: Tag { Tag(0x0028_0100) }
    @inlinable public static var bitsStored: Tag { Tag(0x0028_0101) }
    @inlinable public static var highBit: Tag { Tag(0x0028_0102) }
    @inlinable public static var pixelRepresentation: Tag { Tag(0x0028_0103) }
    @inlinable public static var extendedOffsetTable: Tag { Tag(0x7FE0_0001) }
    @inlinable public static var extendedOffsetTableLengths: Tag { Tag(0x7FE0_0002) }
    @inlinable public static var floatPixelData: Tag { Tag(0x7FE0_0008) }
    @inlinable public static var doubleFloatPixelData: Tag { Tag(0x7FE0_0009) }
    @inlinable public static var pixelData: Tag { Tag(0x7FE0_0010) }
    @inlinable public static var item: Tag { Tag(0xFFFE_E000) }
    @inlinable public static var itemDelimitationItem: Tag { Tag(0xFFFE_E00D) }
    @inlinable public static var sequenceDelimitationItem: Tag { Tag(0xFFFE_E0DD) }
}
