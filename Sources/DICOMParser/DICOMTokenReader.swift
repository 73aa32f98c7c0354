import DICOMCore
import DICOMDictionary

/// Reads a data set as a stream of `DICOMToken`s with an explicit stack instead of recursion, so
/// nesting depth is a checked counter, never the native stack; every length is checked against its
/// container before anything is read.
public struct DICOMTokenReader: Sendable {
    public struct Options: Sendable {
        /// Sequences (and items) deeper than this are refused.
        public var maximumDepth = 128
        /// Stop at the first top-level element whose tag is at or above this one (e.g. Pixel Data).
        public var stopAtTag: Tag? = nil
        /// Stop at the first top-level element outside this group (reading the file meta group).
        public var onlyGroup: UInt16? = nil
        public init() {}
    }

    private enum ContainerKind: Sendable { case dataSet, sequence, item, fragments }

    private struct Container: Sendable {
        let kind: ContainerKind
        /// End offset for defined-length containers; nil while waiting for a delimiter.
        let end: Int?
        let explicitVR: Bool
        let tag: Tag
    }

    public let storage: ByteStorage
    public let bigEndian: Bool
    public let options: Options
    public private(set) var position: Int
    private var stack: [Container]
    private var finished = false

    /// Reads `range` of `storage` (default: from `start` to the end) as a data set.
    public init(storage: ByteStorage, start: Int = 0, end: Int? = nil, explicitVR: Bool, bigEndian: Bool,
                options: Options = Options()) {
        self.storage = storage
        self.bigEndian = bigEndian
        self.options = options
        self.position = start
        let limit = min(end ?? storage.count, storage.count)
        self.stack = [Container(kind: .dataSet, end: limit, explicitVR: explicitVR, tag: Tag(0))]
    }

    /// Nesting depth of sequences (0 at top level).
    public var depth: Int { stack.count(where: { $0.kind == .sequence }) }

    /// The next token, nil at the end of the data set (or at `stopAtTag`); throws on malformed input.
    public mutating func next() throws(DICOMError) -> DICOMToken? {
        guard !finished, let top = stack.last else { return nil }
        let bytes = storage.bytes

        if let end = top.end, position >= end {
            if position > end {
                throw DICOMError(.lengthOutOfBounds, tag: top.tag, offset: position,
                                 message: "content overruns its container's declared length (ends at \(end))")
            }
            stack.removeLast()
            switch top.kind {
            case .dataSet: finished = true; return nil
            case .sequence: return .sequenceEnd
            case .item: return .itemEnd
            case .fragments: return .fragmentsEnd
            }
        }
        if top.end == nil && position >= bytes.count {
            throw DICOMError(.truncated, tag: top.tag, offset: position,
                             message: "input ended inside an undefined-length \(top.kind == .item ? "item" : "sequence")")
        }

        switch top.kind {
        case .sequence, .fragments:
            return try readItemLevel(top)
        case .dataSet, .item:
            return try readElement(top)
        }
    }

    private func u16(_ at: Int) -> UInt16 {
        let v = storage.bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)
        return bigEndian ? UInt16(bigEndian: v) : UInt16(littleEndian: v)
    }

    private func u32(_ at: Int) -> UInt32 {
        let v = storage.bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)
        return bigEndian ? UInt32(bigEndian: v) : UInt32(littleEndian: v)
    }

    private func limit(of container: Container) -> Int { container.end ?? storage.count }

    private mutating func push(_ container: Container) throws(DICOMError) {
        if container.kind == .sequence && depth >= options.maximumDepth {
            throw DICOMError(.nestingTooDeep, tag: container.tag, offset: position,
                             message: "sequences nested deeper than \(options.maximumDepth)")
        }
        stack.append(container)
    }

    /// Inside a sequence or encapsulated Pixel Data: an item or the sequence delimiter.
    private mutating func readItemLevel(_ top: Container) throws(DICOMError) -> DICOMToken? {
        let start = position
        let end = limit(of: top)
        guard start + 8 <= end else {
            throw DICOMError(.truncated, tag: top.tag, offset: start, message: "item header needs 8 bytes, \(max(0, end - start)) left")
        }
        let tag: Tag
        let length: UInt32
        if top.kind == .fragments {
            // Fragment headers are scattered through Pixel Data: read them without faulting pages in.
            let (raw, len) = storage.read8(at: start)
            let t = UInt32(littleEndian: raw)
            tag = Tag(group: UInt16(truncatingIfNeeded: t), element: UInt16(truncatingIfNeeded: t >> 16))
            length = UInt32(littleEndian: len)
        } else {
            tag = Tag(group: u16(start), element: u16(start + 2))
            length = u32(start + 4)
        }
        position = start + 8
        switch tag {
        case .item:
            if top.kind == .fragments {
                guard length != ElementHeader.undefinedLength, position + Int(length) <= end else {
                    throw DICOMError(.lengthOutOfBounds, tag: .pixelData, offset: start,
                                     message: "fragment length \(length) exceeds the \(end - position) bytes left")
                }
                position += Int(length)
                return .fragment(offset: start + 8, length: Int(length))
            }
            var itemEnd: Int? = nil
            if length != ElementHeader.undefinedLength {
                guard position + Int(length) <= end else {
                    throw DICOMError(.lengthOutOfBounds, tag: top.tag, offset: start,
                                     message: "item length \(length) exceeds the \(end - position) bytes left")
                }
                itemEnd = position + Int(length)
            }
            try push(Container(kind: .item, end: itemEnd, explicitVR: top.explicitVR, tag: top.tag))
            return .itemStart(offset: start, length: length)
        case .sequenceDelimitationItem:
            // Also accepted inside defined-length sequences, where some writers add one anyway.
            stack.removeLast()
            return top.kind == .fragments ? .fragmentsEnd : .sequenceEnd
        default:
            throw DICOMError(.malformed, tag: top.tag, offset: start,
                             message: "expected an item tag (FFFE,E000), found \(tag)")
        }
    }

    /// Inside a data set or item: one element header.
    private mutating func readElement(_ top: Container) throws(DICOMError) -> DICOMToken? {
        let start = position
        let end = limit(of: top)
        guard start + 8 <= end else {
            // A top-level data set may end in a few bytes of padding; nothing useful can follow.
            if top.kind == .dataSet && stack.count == 1 && start + 8 > end && allZero(start, end) {
                position = end
                finished = true
                return nil
            }
            throw DICOMError(.truncated, offset: start, message: "element header needs 8 bytes, \(max(0, end - start)) left")
        }
        let tag = Tag(group: u16(start), element: u16(start + 2))

        if stack.count == 1 {
            if let stop = options.stopAtTag, tag >= stop { finished = true; return nil }
            if let group = options.onlyGroup, tag.group != group { finished = true; return nil }
        }

        if tag.group == 0xFFFE {
            // Delimiters carry no VR in any transfer syntax.
            let length = u32(start + 4)
            position = start + 8
            if tag == .itemDelimitationItem && top.kind == .item {
                stack.removeLast()
                return .itemEnd
            }
            if tag == .itemDelimitationItem || tag == .sequenceDelimitationItem {
                // A stray delimiter at data-set level: PS3.5 forbids it; tolerate it as DCMTK does
                // if it has zero length, since such files exist in the wild.
                if length == 0 { return try next() }
            }
            throw DICOMError(.malformed, tag: tag, offset: start, message: "unexpected \(tag) in a data set")
        }

        let vr: VR
        let length: UInt32
        if top.explicitVR {
            let b0 = storage.bytes[start + 4], b1 = storage.bytes[start + 5]
            guard let parsed = VR(byte0: b0, byte1: b1) else {
                throw DICOMError(.malformed, tag: tag, offset: start + 4,
                                 message: "invalid VR bytes 0x\(hex(b0))\(hex(b1))")
            }
            vr = parsed
            if vr.hasLongExplicitLength {
                guard start + 12 <= end else {
                    throw DICOMError(.truncated, tag: tag, offset: start, message: "element header needs 12 bytes")
                }
                length = u32(start + 8)
                position = start + 12
            } else {
                length = UInt32(u16(start + 6))
                position = start + 8
            }
        } else {
            vr = tag.isPrivate && !tag.isPrivateCreator ? .UN : DataDictionary.vr(for: tag)
            length = u32(start + 4)
            position = start + 8
        }

        var header = ElementHeader(tag: tag, vr: vr, length: length, offset: start, valueOffset: position)
        header.vrFromDictionary = !top.explicitVR
        if length == ElementHeader.undefinedLength {
            if tag == .pixelData || (top.explicitVR && vr != .SQ && vr != .UN) {
                try push(Container(kind: .fragments, end: nil, explicitVR: top.explicitVR, tag: tag))
                return .fragmentsStart(header)
            }
            // SQ, or UN / implicit unknown of undefined length: a sequence whose items are
            // Implicit VR Little Endian when the VR was UN (PS3.5 §6.2.2).
            let explicitInside = top.explicitVR && vr == .SQ
            try push(Container(kind: .sequence, end: nil, explicitVR: explicitInside, tag: tag))
            return .sequenceStart(header)
        }
        guard position + Int(length) <= end else {
            throw DICOMError(.lengthOutOfBounds, tag: tag, offset: start,
                             message: "value length \(length) exceeds the \(end - position) bytes left")
        }
        if vr == .SQ {
            try push(Container(kind: .sequence, end: position + Int(length), explicitVR: top.explicitVR, tag: tag))
            return .sequenceStart(header)
        }
        position += Int(length)
        return .element(header)
    }

    private func allZero(_ from: Int, _ to: Int) -> Bool {
        var i = from
        while i < to { if storage.bytes[i] != 0 { return false }; i += 1 }
        return true
    }
}

@inline(__always) func hex(_ b: UInt8) -> String {
    let s = String(b, radix: 16, uppercase: true)
    return b < 16 ? "0" + s : s
}

extension DICOMTokenReader {
    /// A reader positioned inside a sequence whose value is `range`, encoded Implicit VR Little Endian:
    /// how a UN element that is really a sequence is read. Its first tokens are items; it ends with
    /// `sequenceEnd`.
    public init(sequenceContentOf storage: ByteStorage, range: Range<Int>, maximumDepth: Int) {
        var options = Options()
        options.maximumDepth = maximumDepth
        self.init(storage: storage, start: range.lowerBound, end: range.upperBound, explicitVR: false,
                  bigEndian: false, options: options)
        stack.append(Container(kind: .sequence, end: min(range.upperBound, storage.count), explicitVR: false, tag: Tag(0)))
    }
}
