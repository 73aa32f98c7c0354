/// Every failure to read or write DICOM: what went wrong, at which element and byte offset.
public struct DICOMError: Error, Hashable, Sendable {
    public enum Kind: String, Sendable, Hashable {
        /// The input ended before a header or value it declared.
        case truncated
        /// A length points past the end of its container or of the input.
        case lengthOutOfBounds
        /// Structure that no transfer syntax allows: unknown VR code, stray delimiter, bad item tag.
        case malformed
        /// Sequences nested deeper than the reader's cap.
        case nestingTooDeep
        /// A size cap (inflation ratio, element count, total size) was reached.
        case limitExceeded
        /// Deflated data that does not inflate.
        case deflate
        case notDICOM
        case unsupportedTransferSyntax
        case invalidUID
        case invalidValue
        case io
    }

    public let kind: Kind
    public let tag: Tag?
    public let offset: Int?
    public let message: String

    public init(_ kind: Kind, tag: Tag? = nil, offset: Int? = nil, message: String) {
        self.kind = kind
        self.tag = tag
        self.offset = offset
        self.message = message
    }
}

extension DICOMError: CustomStringConvertible {
    public var description: String {
        var parts: [String] = []
        if let offset { parts.append("at byte \(offset)") }
        if let tag { parts.append("in \(tag)") }
        let location = parts.isEmpty ? "" : " " + parts.joined(separator: " ")
        return "\(kind.rawValue)\(location): \(message)"
    }
}
