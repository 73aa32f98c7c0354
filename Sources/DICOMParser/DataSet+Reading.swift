import DICOMCore
import DICOMDictionary

/// How much of a data set to read and how much to copy.
public struct ReadOptions: Sendable {
    /// End the parse at (7FE0,0010): the returned data set has no Pixel Data and pixel bytes are never read.
    public var stopBeforePixelData = false
    /// Primitive values longer than this stay in the source as `.bulk` references, read when asked
    /// for; shorter ones are copied out during the parse. The default leaves every non-empty value
    /// in place: a copy per element (an allocation and a free) was the largest cost of a header parse.
    public var bulkDataThreshold = 0
    public var maximumDepth = 128
    /// Inflated size of a deflated data set may not exceed this many times the compressed size…
    public var maximumInflationRatio = 256
    /// …nor this many bytes, whichever is larger than the ratio allows is refused.
    public var maximumInflatedSize = 1 << 31
    /// Read Implicit VR private elements of defined length that a dictionary (or UN of a known public
    /// tag) says are sequences as sequences, as pydicom and DCMTK do.
    public var convertUNSequences = true

    public init() {}

    public static let `default` = ReadOptions()
    public static let headerOnly: ReadOptions = {
        var o = ReadOptions()
        o.stopBeforePixelData = true
        return o
    }()
}

extension DataSet {
    /// Builds a data set from a token stream, iteratively (no recursion per nesting level).
    /// With `enclosingSequence`, the reader stands inside that sequence's value (see
    /// `DICOMTokenReader(sequenceContentOf:)`) and the result holds just that one element.
    /// On an error, `partial` receives what was read before it (open sequences and items closed).
    static func read(_ reader: inout DICOMTokenReader, options: ReadOptions,
                     characterSet: SpecificCharacterSet = .default, depthBudget: Int? = nil,
                     enclosingSequence: ElementHeader? = nil) throws(DICOMError) -> DataSet {
        var ignored: DataSet? = nil
        return try read(&reader, options: options, characterSet: characterSet, depthBudget: depthBudget,
                        enclosingSequence: enclosingSequence, partial: &ignored)
    }

    static func read(_ reader: inout DICOMTokenReader, options: ReadOptions,
                     characterSet: SpecificCharacterSet = .default, depthBudget: Int? = nil,
                     enclosingSequence: ElementHeader? = nil, partial: inout DataSet?) throws(DICOMError) -> DataSet {
        var builder = Builder(storage: reader.storage, bigEndian: reader.bigEndian, characterSet: characterSet)
        if let enclosingSequence { builder.open(.sequence(enclosingSequence, [])) }
        let budget = depthBudget ?? options.maximumDepth
        do throws(DICOMError) {
            while let token = try reader.next() {
                switch token {
                case .element(let h):
                    var element = builder.element(for: h, options: options)
                    if h.vrFromDictionary, let vrs = DataDictionary.entry(for: h.tag)?.vrs, vrs.count > 1 {
                        element.vr = builder.resolveAmbiguousVR(h.tag, choices: vrs)
                    }
                    if options.convertUNSequences, h.vr == .UN {
                        element = try resolveUnknown(element, header: h, in: builder.currentDataSet, storage: reader.storage,
                                                     options: options, depthBudget: budget - reader.depth)
                    }
                    builder.append(consume element)
                case .sequenceStart(let h): builder.open(.sequence(h, []))
                case .itemStart: try builder.startItem(at: reader.position)
                case .itemEnd: try builder.close(expecting: .dataSet, at: reader.position)
                case .sequenceEnd: try builder.close(expecting: .sequence, at: reader.position)
                case .fragmentsStart(let h): builder.open(.fragments(h, []))
                case .fragment(let offset, let length): try builder.addFragment(offset..<(offset + length))
                case .fragmentsEnd: try builder.close(expecting: .fragments, at: reader.position)
                }
            }
            guard let result = builder.result else {
                throw DICOMError(.truncated, offset: reader.position, message: "data set ended inside a sequence")
            }
            return result
        } catch {
            partial = builder.unwound()
            throw error
        }
    }

    /// Assembles the token stream into nested data sets. The data set receiving elements is held in
    /// `current`, outside the frame stack, so appending mutates it in place: taking it out of an enum
    /// payload and putting it back cost a copy, a retain and a release per element (a third of the
    /// parse in `perf`). `stack` holds the enclosing frames: parents' data sets, open sequences (with
    /// the items closed so far) and open fragment lists.
    struct Builder {
        enum Frame {
            case dataSet(DataSet)
            case sequence(ElementHeader, [DataSet])
            case fragments(ElementHeader, [Range<Int>])
        }
        enum Kind { case dataSet, sequence, fragments }

        let storage: ByteStorage
        let bigEndian: Bool
        /// The innermost open data set (the root, or an item); nil while a sequence or fragment list
        /// is the innermost open frame.
        var current: DataSet?
        var stack: [Frame] = []

        init(storage: ByteStorage, bigEndian: Bool, characterSet: SpecificCharacterSet) {
            self.storage = storage
            self.bigEndian = bigEndian
            var root = DataSet(isBigEndian: bigEndian, characterSet: characterSet)
            // A header has dozens of elements: growing the array 1, 2, 4… cost a few percent of a parse.
            root.reserveCapacity(64)
            self.current = root
        }

        var currentDataSet: DataSet? { current }

        /// Opens a sequence (or fragment list) inside the current data set, which waits on the stack.
        mutating func open(_ frame: Frame) {
            if let parent = current.take() { stack.append(.dataSet(parent)) }
            stack.append(frame)
        }

        func element(for h: ElementHeader, options: ReadOptions) -> DataElement {
            let length = Int(h.length)
            let value: DataValue
            if length > options.bulkDataThreshold || h.tag == .pixelData {
                value = .bulk(BulkReference(storage: storage, offset: h.valueOffset, length: length))
            } else {
                value = .bytes(storage.copy(h.valueRange) ?? [])
            }
            return DataElement(tag: h.tag, vr: h.vr, value: value, offset: h.offset, declaredLength: h.length)
        }

        /// Data sets from the innermost outwards.
        var ancestors: [DataSet] {
            var out: [DataSet] = current.map { [$0] } ?? []
            for frame in stack.reversed() { if case .dataSet(let ds) = frame { out.append(ds) } }
            return out
        }

        /// Picks the VR of an Implicit VR element whose dictionary entry allows several (PS3.5 Annex A,
        /// PS3.3 C.7.6.3.1.4 and C.11.1.1.1): OB/OW is OW in Implicit VR; US/SS follows Pixel
        /// Representation of the nearest enclosing data set that has one; LUT Data is US only when
        /// the LUT has a single entry.
        func resolveAmbiguousVR(_ tag: Tag, choices: [VR]) -> VR {
            if choices.contains(.US) && choices.contains(.SS) {
                let rep = ancestors.lazy.compactMap { $0.integer(.pixelRepresentation) }.first ?? 0
                return rep == 0 ? .US : .SS
            }
            if choices.contains(.US) && choices.contains(.OW) {
                let entries = current?.integers(Tag(0x0028_3002))?.first
                return entries == 1 ? .US : .OW
            }
            if choices.contains(.OW) { return .OW }
            return choices[0]
        }

        mutating func append(_ element: consuming DataElement) {
            // An element can only arrive inside a data set: the token reader puts sequence content in items.
            guard current != nil else { return }
            if element.tag == .specificCharacterSet, let bytes = element.valueBytes {
                let terms = String(decoding: bytes, as: UTF8.self)
                    .split(separator: "\\", omittingEmptySubsequences: false)
                    .map { $0.trimmingSpacesAndNULs() }
                current?.characterSet = SpecificCharacterSet(terms: terms)
            }
            current?.set(consume element)
        }

        mutating func startItem(at position: Int) throws(DICOMError) {
            guard current == nil, case .sequence? = stack.last else {
                throw DICOMError(.malformed, offset: position, message: "item outside a sequence")
            }
            // Items inherit the character set of the data set holding their sequence.
            var inherited = SpecificCharacterSet.default
            if stack.count >= 2, case .dataSet(let parent) = stack[stack.count - 2] { inherited = parent.characterSet }
            current = DataSet(isBigEndian: bigEndian, characterSet: inherited)
        }

        mutating func addFragment(_ range: Range<Int>) throws(DICOMError) {
            guard current == nil, case .fragments(let h, var ranges)? = stack.popLast() else {
                throw DICOMError(.malformed, offset: range.lowerBound, message: "fragment outside encapsulated data")
            }
            ranges.append(range)
            stack.append(.fragments(h, ranges))
        }

        var innermost: Kind? {
            if current != nil { return stack.isEmpty ? nil : .dataSet }
            switch stack.last {
            case .sequence?: return .sequence
            case .fragments?: return .fragments
            case .dataSet?, nil: return nil
            }
        }

        /// Closes the innermost frame, which must be of `kind`, and attaches it to its parent.
        mutating func close(expecting kind: Kind, at position: Int) throws(DICOMError) {
            guard let open = innermost, open == kind else {
                throw DICOMError(.malformed, offset: position, message: "delimiter does not match the open \(innermost.map { "\($0)" } ?? "data set")")
            }
            closeTop()
        }

        private mutating func closeTop() {
            if let item = current {
                // An item: it joins its sequence.
                guard case .sequence(let h, var items)? = stack.popLast() else { return }
                current = nil
                items.append(item)
                stack.append(.sequence(h, items))
                return
            }
            guard let top = stack.popLast(), case .dataSet(let parent)? = stack.popLast() else { return }
            current = parent
            switch top {
            case .sequence(let h, let items):
                append(DataElement(tag: h.tag, vr: .SQ, value: .sequence(items), offset: h.offset, declaredLength: h.length))
            case .fragments(let h, let ranges):
                let value = EncapsulatedFragments(storage: storage, basicOffsetTable: ranges.first ?? h.valueOffset..<h.valueOffset,
                                                  fragments: Array(ranges.dropFirst()))
                append(DataElement(tag: h.tag, vr: h.vr == .UN ? .OB : h.vr, value: .fragments(value),
                                   offset: h.offset, declaredLength: h.length))
            case .dataSet:
                break
            }
        }

        /// The finished root data set, or nil while anything is still open.
        var result: DataSet? { stack.isEmpty ? current : nil }

        /// What has been read so far, with every open item and sequence closed.
        func unwound() -> DataSet {
            var copy = self
            while !copy.stack.isEmpty {
                let before = (copy.stack.count, copy.current == nil)
                copy.closeTop()
                if before == (copy.stack.count, copy.current == nil) { break }  // nothing closable left
            }
            return copy.current ?? DataSet()
        }
    }

    /// UN elements of a public tag take the dictionary VR (PS3.5 §6.2.2 allows UN for any VR, and
    /// both pydicom and DCMTK re-type them); private elements take the private dictionary's VR when
    /// their creator is known. Values that are really sequences are parsed as Implicit VR LE ones.
    private static func resolveUnknown(_ element: DataElement, header h: ElementHeader, in dataSet: DataSet?,
                                       storage: ByteStorage, options: ReadOptions,
                                       depthBudget: Int) throws(DICOMError) -> DataElement {
        var element = element
        var known: VR? = nil
        if h.tag.isPrivateCreator {
            known = .LO
        } else if h.tag.isPrivate {
            if let creatorTag = h.tag.privateCreatorTag, let ds = dataSet,
               let creatorBytes = ds[creatorTag]?.valueBytes {
                let creator = String(decoding: creatorBytes, as: UTF8.self).trimmingSpacesAndNULs()
                known = DataDictionary.privateEntry(creator: creator, tag: h.tag)?.vr
            }
        } else if let entry = DataDictionary.entry(for: h.tag), !entry.vrs.isEmpty {
            known = entry.vr
        }
        guard let vr = known, vr != .UN else { return element }
        if vr == .SQ {
            guard depthBudget > 0 else {
                throw DICOMError(.nestingTooDeep, tag: h.tag, offset: h.offset, message: "sequences nested too deep")
            }
            var inner = DICOMTokenReader(sequenceContentOf: storage, range: h.valueOffset..<(h.valueOffset + Int(h.length)),
                                         maximumDepth: depthBudget)
            let items: [DataSet]
            do {
                let wrapper = try read(&inner, options: options, characterSet: dataSet?.characterSet ?? .default,
                                       depthBudget: depthBudget - 1, enclosingSequence: h)
                items = wrapper[h.tag]?.items ?? []
            } catch where error.kind == .nestingTooDeep {
                throw error
            } catch {
                return element // not a sequence after all: keep the bytes as they are
            }
            element.vr = .SQ
            element.value = .sequence(items)
            return element
        }
        element.vr = vr
        return element
    }
}

extension StringProtocol {
    /// Drops leading/trailing spaces and trailing NULs: the padding DICOM allows around text values.
    func trimmingSpacesAndNULs() -> String {
        var s = Substring(self)
        while let c = s.utf8.last, c == 0x20 || c == 0 { s = s.dropLast() }
        while let c = s.utf8.first, c == 0x20 { s = s.dropFirst() }
        return String(s)
    }
}
