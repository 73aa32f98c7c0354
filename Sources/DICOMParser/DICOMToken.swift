import DICOMCore

/// The header of one data element as it stands in the stream.
public struct ElementHeader: Sendable, Hashable {
    public static let undefinedLength: UInt32 = 0xFFFF_FFFF

    public let tag: Tag
    /// The VR written in the stream (explicit VR) or taken from the dictionary (implicit VR).
    public let vr: VR
    public let length: UInt32
    /// Byte offset of the first byte of the tag.
    public let offset: Int
    /// Byte offset of the first value byte.
    public let valueOffset: Int
    /// True when the stream carried no VR (Implicit VR) and `vr` is the dictionary's first choice.
    public var vrFromDictionary: Bool = false

    public var isUndefinedLength: Bool { length == Self.undefinedLength }
    public var valueRange: Range<Int> { valueOffset..<(valueOffset + (isUndefinedLength ? 0 : Int(length))) }
}

/// One step of a data set stream, after dicom-rs: the reader never builds a tree itself, so callers
/// that only need offsets (frame location, dump) pay for nothing else.
public enum DICOMToken: Sendable, Hashable {
    /// A primitive element; its value is `header.valueRange` of the input.
    case element(ElementHeader)
    /// A sequence (SQ, or UN/private of undefined length read as implicit-VR sequence).
    case sequenceStart(ElementHeader)
    case itemStart(offset: Int, length: UInt32)
    case itemEnd
    case sequenceEnd
    /// Encapsulated Pixel Data: followed by `fragment` tokens (the first is the Basic Offset Table).
    case fragmentsStart(ElementHeader)
    /// An item of encapsulated data; `offset` is the first value byte.
    case fragment(offset: Int, length: Int)
    case fragmentsEnd
}
