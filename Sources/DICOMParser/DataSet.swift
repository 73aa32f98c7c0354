import DICOMCore

/// The value of one element. Values above the read threshold, Pixel Data and fragments are left
/// in the source storage and read only on demand.
public enum DataValue: Sendable {
    /// Raw value bytes in the data set's byte order, padding included.
    case bytes([UInt8])
    case bulk(BulkReference)
    case sequence([DataSet])
    case fragments(EncapsulatedFragments)
}

/// Encapsulated Pixel Data (PS3.5 §A.4): the Basic Offset Table item and the fragments after it,
/// as byte ranges of the source, so frames can be range-read later without parsing again.
public struct EncapsulatedFragments: Sendable {
    public let storage: ByteStorage
    /// Value range of the first item (empty when the table is empty).
    public var basicOffsetTable: Range<Int>
    /// Value ranges of the remaining items, in order.
    public var fragments: [Range<Int>]

    public init(storage: ByteStorage, basicOffsetTable: Range<Int>, fragments: [Range<Int>]) {
        self.storage = storage
        self.basicOffsetTable = basicOffsetTable
        self.fragments = fragments
    }

    /// The Basic Offset Table's entries (always little endian: encapsulation implies Explicit VR LE).
    public var basicOffsets: [UInt32] {
        let r = basicOffsetTable
        let n = r.count / 4
        guard n > 0, r.upperBound <= storage.count else { return [] }
        return (0..<n).map { storage.bytes.loadUnaligned(fromByteOffset: r.lowerBound + 4 * $0, as: UInt32.self).littleEndian }
    }
}

public struct DataElement: Sendable {
    public var tag: Tag
    public var vr: VR
    public var value: DataValue
    /// Offset of the element's header in its source, nil for elements made in memory.
    public var offset: Int?
    /// The length declared in the source (`ElementHeader.undefinedLength` for undefined), nil in memory.
    public var declaredLength: UInt32?

    public init(tag: Tag, vr: VR, value: DataValue, offset: Int? = nil, declaredLength: UInt32? = nil) {
        self.tag = tag
        self.vr = vr
        self.value = value
        self.offset = offset
        self.declaredLength = declaredLength
    }

    /// Value bytes for primitive values (loading bulk ones); nil for sequences and fragments.
    public var valueBytes: [UInt8]? {
        switch value {
        case .bytes(let b): return b
        case .bulk(let ref): return ref.load()
        case .sequence, .fragments: return nil
        }
    }

    /// Runs `body` over a primitive value's bytes where they lie, without copying them out of the
    /// source; nil for sequences, fragments and a reference outside its storage.
    public func withValueBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R? {
        switch value {
        case .bytes(let b): return b.withUnsafeBytes(body)
        case .bulk(let ref):
            guard ref.offset >= 0, ref.length >= 0, ref.offset <= ref.storage.count - ref.length else { return nil }
            return body(UnsafeRawBufferPointer(rebasing: ref.storage.bytes[ref.range]))
        case .sequence, .fragments: return nil
        }
    }

    /// Length of a primitive value in bytes, without loading it.
    public var valueLength: Int? {
        switch value {
        case .bytes(let b): return b.count
        case .bulk(let ref): return ref.length
        case .sequence, .fragments: return nil
        }
    }

    public var items: [DataSet]? {
        if case .sequence(let items) = value { return items }
        return nil
    }
}

/// An ordered set of elements (ascending tag) with the context needed to interpret their bytes.
public struct DataSet: Sendable {
    public private(set) var elements: [DataElement]
    /// Byte order of the binary values in `.bytes` and `.bulk`.
    public var isBigEndian: Bool
    /// Character set for text values: this data set's (0008,0005), or inherited from the parent.
    public var characterSet: SpecificCharacterSet

    public init(elements: [DataElement] = [], isBigEndian: Bool = false,
                characterSet: SpecificCharacterSet = .default) {
        self.elements = []
        self.isBigEndian = isBigEndian
        self.characterSet = characterSet
        self.elements.reserveCapacity(elements.count)
        for e in elements { set(e) }
    }

    public var count: Int { elements.count }

    /// Room for `n` elements without reallocating while they are appended.
    public mutating func reserveCapacity(_ n: Int) { elements.reserveCapacity(n) }
    public var isEmpty: Bool { elements.isEmpty }
    public var tags: [Tag] { elements.map(\.tag) }

    /// Index of `tag`, or where it would be inserted.
    private func index(of tag: Tag) -> (Int, found: Bool) {
        var lo = 0, hi = elements.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let t = elements[mid].tag
            if t == tag { return (mid, true) }
            if t < tag { lo = mid + 1 } else { hi = mid }
        }
        return (lo, false)
    }

    public subscript(tag: Tag) -> DataElement? {
        let (i, found) = index(of: tag)
        return found ? elements[i] : nil
    }

    public func contains(_ tag: Tag) -> Bool { index(of: tag).found }

    /// Inserts or replaces; appending in ascending order (the common case when reading) is O(1).
    public mutating func set(_ element: consuming DataElement) {
        // Compare through the subscript's borrow: `elements.last` would copy (and retain) the element.
        let n = elements.count
        if n == 0 || elements[n - 1].tag < element.tag {
            elements.append(consume element)
            return
        }
        let (i, found) = index(of: element.tag)
        if found { elements[i] = consume element } else { elements.insert(consume element, at: i) }
    }

    @discardableResult
    public mutating func remove(_ tag: Tag) -> DataElement? {
        let (i, found) = index(of: tag)
        return found ? elements.remove(at: i) : nil
    }

    /// Elements of `group` only (e.g. 0x0002 for the file meta group).
    public func filter(group: UInt16) -> DataSet {
        var out = DataSet(isBigEndian: isBigEndian, characterSet: characterSet)
        out.elements = elements.filter { $0.tag.group == group }
        return out
    }
}
