import DICOMCore
import DICOMDictionary

/// How much of a data set to read and how much to copy.
public struct ReadOptions: Sendable {
    /// End the parse at (7FE0,0010): the returned data set has no Pixel Data and pixel bytes are never read.
    public var stopBeforePixelData = false
    /// Primitive values longer than this stay in the source as `.bulk` references.
    public var bulkDataThreshold = 64 * 1024
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
        if let enclosingSequence { builder.stack.append(.sequence(enclosingSequence, [])) }
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
                    builder.append(element)
                case .sequenceStart(let h): builder.stack.append(.sequence(h, []))
                case .itemStart: builder.startItem()
                case .itemEnd: try builder.close(expecting: .dataSet, at: reader.position)
                case .sequenceEnd: try builder.close(expecting: .sequence, at: reader.position)
                case .fragmentsStart(let h): builder.stack.append(.fragments(h, []))
                case .fragment(let offset, let length): try builder.addFragment(offset..<(offset + length))
                case .fragmentsEnd: try builder.close(expecting: .fragments, at: reader.position)
                }
            }
            guard builder.stack.count == 1, case .dataSet(let result) = builder.stack[0] else {
                throw DICOMError(.truncated, offset: reader.position, message: "data set ended inside a sequence")
            }
            return result
        } catch {
            partial = builder.unwound()
            throw error
        }
    }

    struct Builder {
        enum Frame {
            case dataSet(DataSet)
            case sequence(ElementHeader, [DataSet])
            case fragments(ElementHeader, [Range<Int>])

            var kind: Kind {
                switch self {
                case .dataSet: return .dataSet
                case .sequence: return .sequence
                case .fragments: return .fragments
                }
            }
        }
        enum Kind { case dataSet, sequence, fragments }

        let storage: ByteStorage
        let bigEndian: Bool
        var stack: [Frame]

        init(storage: ByteStorage, bigEndian: Bool, characterSet: SpecificCharacterSet) {
            self.storage = storage
            self.bigEndian = bigEndian
            self.stack = [.dataSet(DataSet(isBigEndian: bigEndian, characterSet: characterSet))]
        }

        var currentDataSet: DataSet? {
            if case .dataSet(let ds)? = stack.last { return ds }
            return nil
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

        /// Picks the VR of an Implicit VR element whose dictionary entry allows several (PS3.5 Annex A,
        /// PS3.3 C.7.6.3.1.4 and C.11.1.1.1): OB/OW is OW in Implicit VR; US/SS follows Pixel
        /// Representation of the nearest enclosing data set that has one; LUT Data is US only when
        /// the LUT has a single entry.
        func resolveAmbiguousVR(_ tag: Tag, choices: [VR]) -> VR {
            let ancestors: [DataSet] = stack.reversed().compactMap { if case .dataSet(let ds) = $0 { return ds } else { return nil } }
            if choices.contains(.US) && choices.contains(.SS) {
                let rep = ancestors.lazy.compactMap { $0.integer(.pixelRepresentation) }.first ?? 0
                return rep == 0 ? .US : .SS
            }
            if choices.contains(.US) && choices.contains(.OW) {
                let entries = ancestors.first?.integers(Tag(0x0028_3002))?.first
                return entries == 1 ? .US : .OW
            }
            if choices.contains(.OW) { return .OW }
            return choices[0]
        }

        mutating func append(_ element: DataElement) {
            guard case .dataSet(var ds)? = stack.popLast() else { return }
            if element.tag == .specificCharacterSet, let bytes = element.valueBytes {
                let terms = String(decoding: bytes, as: UTF8.self)
                    .split(separator: "\\", omittingEmptySubsequences: false)
                    .map { $0.trimmingSpacesAndNULs() }
                ds.characterSet = SpecificCharacterSet(terms: terms)
            }
            ds.set(element)
            stack.append(.dataSet(ds))
        }

        mutating func startItem() {
            // Items inherit the character set of the data set holding their sequence.
            var inherited = SpecificCharacterSet.default
            if case .dataSet(let parent)? = stack.dropLast().last { inherited = parent.characterSet }
            stack.append(.dataSet(DataSet(isBigEndian: bigEndian, characterSet: inherited)))
        }

        mutating func addFragment(_ range: Range<Int>) throws(DICOMError) {
            guard case .fragments(let h, var ranges)? = stack.popLast() else {
                throw DICOMError(.malformed, offset: range.lowerBound, message: "fragment outside encapsulated data")
            }
            ranges.append(range)
            stack.append(.fragments(h, ranges))
        }

        /// Closes the innermost frame, which must be of `kind`, and attaches it to its parent.
        mutating func close(expecting kind: Kind, at position: Int) throws(DICOMError) {
            guard stack.count > 1, let top = stack.last, top.kind == kind else {
                throw DICOMError(.malformed, offset: position, message: "delimiter does not match the open \(stack.last.map { "\($0.kind)" } ?? "data set")")
            }
            closeTop()
        }

        private mutating func closeTop() {
            guard let top = stack.popLast() else { return }
            switch top {
            case .dataSet(let item):
                if case .sequence(let h, let items)? = stack.popLast() { stack.append(.sequence(h, items + [item])) }
            case .sequence(let h, let items):
                append(DataElement(tag: h.tag, vr: .SQ, value: .sequence(items), offset: h.offset, declaredLength: h.length))
            case .fragments(let h, let ranges):
                let value = EncapsulatedFragments(storage: storage, basicOffsetTable: ranges.first ?? h.valueOffset..<h.valueOffset,
                                                  fragments: Array(ranges.dropFirst()))
                append(DataElement(tag: h.tag, vr: h.vr == .UN ? .OB : h.vr, value: .fragments(value),
                                   offset: h.offset, declaredLength: h.length))
            }
        }

        /// What has been read so far, with every open item and sequence closed.
        func unwound() -> DataSet {
            var copy = self
            while copy.stack.count > 1 { copy.closeTop() }
            return copy.currentDataSet ?? DataSet()
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
