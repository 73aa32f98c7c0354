import DICOMCore
import DICOMParser

/// Where one frame's stored bytes are.
public struct FrameLocation: Sendable, Hashable {
    /// Byte ranges in `FrameTable.storage`, in order: the frame's fragments when encapsulated
    /// (item headers excluded), one range when native.
    public var ranges: [Range<Int>]
    /// Native frames of 1-bit data need not start on a byte boundary (PS3.5 §8.1.1): the frame's
    /// first bit is bit `bitOffset` (0 = least significant) of the first byte of `ranges[0]`.
    public var bitOffset: Int
    /// Bits in the frame when `bitOffset` applies; otherwise the byte count × 8.
    public var bitLength: Int

    public init(ranges: [Range<Int>], bitOffset: Int = 0, bitLength: Int? = nil) {
        self.ranges = ranges
        self.bitOffset = bitOffset
        self.bitLength = bitLength ?? ranges.reduce(0) { $0 + $1.count } * 8
    }

    /// Stored bytes of the frame (sum of the ranges).
    public var length: Int { ranges.reduce(0) { $0 + $1.count } }
}

/// Every frame of an instance located in its bytes, so frames can be served by range reads
/// without parsing again. Built from the header alone: Pixel Data's bytes are not touched, except
/// the first bytes of fragments when an encapsulated multi-frame image has no offset table.
public struct FrameTable: Sendable {
    public var description: PixelDescription
    public var transferSyntax: TransferSyntax
    public var frames: [FrameLocation]
    /// The bytes the ranges point into: the file, or the inflated data set of a deflated file.
    public let storage: ByteStorage
    /// 8-bit samples in an OW value of a big-endian data set were byte-swapped as 16-bit words
    /// when written (PS3.5 §A.3); reading a frame swaps them back. Pixel Data starts at `wordBase`.
    public private(set) var swapsWords = false
    private var wordBase = 0

    public init(file: DICOMFile) throws(DICOMError) {
        try self.init(dataSet: file.dataSet, transferSyntax: file.transferSyntax, storage: file.dataSetStorage)
    }

    public init(dataSet: DataSet, transferSyntax: TransferSyntax, storage: ByteStorage) throws(DICOMError) {
        let pixelTag = [Tag.pixelData, .floatPixelData, .doubleFloatPixelData].first { dataSet.contains($0) }
        guard let pixelTag, let element = dataSet[pixelTag] else {
            throw DICOMError(.invalidValue, tag: .pixelData, message: "the data set has no Pixel Data")
        }
        var desc = try PixelDescription(dataSet: dataSet)
        self.transferSyntax = transferSyntax
        switch element.value {
        case .fragments(let enc):
            self.storage = enc.storage
            self.frames = try Self.encapsulatedFrames(enc, dataSet: dataSet, frames: desc.numberOfFrames, syntax: transferSyntax)
        case .bulk(let ref):
            self.storage = ref.storage
            self.frames = try Self.nativeFrames(start: ref.offset, length: ref.length, desc: &desc)
            self.wordBase = ref.offset
        case .bytes(let bytes):
            // Small Pixel Data is copied by the reader; give it storage of its own.
            self.storage = ByteStorage(copying: bytes)
            self.frames = try Self.nativeFrames(start: 0, length: bytes.count, desc: &desc)
        case .sequence:
            throw DICOMError(.invalidValue, tag: pixelTag, message: "Pixel Data is a sequence")
        }
        self.swapsWords = transferSyntax.isBigEndian && element.vr == .OW && desc.bitsAllocated <= 8
        self.description = desc
    }

    /// A frame's stored bytes, fragments concatenated; a 1-bit frame off a byte boundary is
    /// shifted so its first bit is bit 0 of the first byte.
    public func encodedFrame(_ index: Int) throws(DICOMError) -> [UInt8] {
        guard frames.indices.contains(index) else {
            throw DICOMError(.invalidValue, message: "frame \(index + 1) is out of range 1...\(frames.count)")
        }
        var frame = frames[index]
        var trim = 0..<0
        if swapsWords, let r = frame.ranges.first {
            // Read whole words from Pixel Data's start, swap, then cut the frame back out.
            let lower = r.lowerBound - (r.lowerBound - wordBase) % 2
            let upper = min(r.upperBound + (r.upperBound - wordBase) % 2, storage.count)
            trim = (r.lowerBound - lower)..<(r.lowerBound - lower + r.count)
            frame.ranges = [lower..<upper]
        }
        var out = [UInt8]()
        out.reserveCapacity(frame.length)
        for r in frame.ranges {
            guard r.lowerBound >= 0, r.upperBound <= storage.count else {
                throw DICOMError(.truncated, offset: r.lowerBound, message: "frame \(index + 1) lies beyond the end of the data")
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: storage.bytes[r]))
        }
        if swapsWords {
            SampleLayout.swapBytes(&out, width: 2)
            out = Array(out[trim.clamped(to: 0..<out.count)])
        }
        if frame.bitOffset != 0 { out = Self.shiftBits(out, by: frame.bitOffset, bitCount: frame.bitLength) }
        return out
    }

    // MARK: Native

    private static func nativeFrames(start: Int, length: Int, desc: inout PixelDescription) throws(DICOMError) -> [FrameLocation] {
        var frameBits = desc.rows * desc.columns * desc.samplesPerPixel * desc.bitsAllocated
        // YBR_FULL_422 native frames hold two luminance and two chroma samples per pixel pair (PS3.3 C.7.6.3.1.2).
        if desc.photometricInterpretation == "YBR_FULL_422" && desc.samplesPerPixel == 3 {
            frameBits = desc.rows * desc.columns * 2 * desc.bitsAllocated
        }
        let available = length * 8
        let needed = frameBits * desc.numberOfFrames
        if needed > available {
            // pydicom decodes as many whole frames as are present; do the same, but refuse when none is.
            let whole = available / max(frameBits, 1)
            guard whole > 0 else {
                throw DICOMError(.truncated, tag: .pixelData, offset: start,
                                 message: "Pixel Data holds \(length) bytes, a frame needs \((frameBits + 7) / 8)")
            }
            desc.numberOfFrames = whole
        }
        return (0..<desc.numberOfFrames).map { i in
            let firstBit = i * frameBits
            let firstByte = start + firstBit / 8
            let lastByte = start + (firstBit + frameBits + 7) / 8
            return FrameLocation(ranges: [firstByte..<lastByte], bitOffset: firstBit % 8, bitLength: frameBits)
        }
    }

    static func shiftBits(_ bytes: [UInt8], by shift: Int, bitCount: Int) -> [UInt8] {
        let n = (bitCount + 7) / 8
        var out = [UInt8](repeating: 0, count: n)
        for i in 0..<n {
            let lo = i < bytes.count ? bytes[i] >> UInt8(shift) : 0
            let hi = i + 1 < bytes.count ? bytes[i + 1] << UInt8(8 - shift) : 0
            out[i] = lo | hi
        }
        if bitCount % 8 != 0 { out[n - 1] &= UInt8((1 << (bitCount % 8)) - 1) }
        return out
    }

    // MARK: Encapsulated

    private static func encapsulatedFrames(_ enc: EncapsulatedFragments, dataSet: DataSet, frames: Int,
                                           syntax: TransferSyntax) throws(DICOMError) -> [FrameLocation] {
        let fragments = enc.fragments
        guard !fragments.isEmpty else {
            throw DICOMError(.invalidValue, tag: .pixelData, message: "encapsulated Pixel Data has no fragments")
        }
        // Offsets in both tables count from the first byte of the first fragment's item tag.
        let base = fragments[0].lowerBound - 8
        let itemOffsets = fragments.map { $0.lowerBound - 8 - base }

        func group(startingAt starts: [Int]) -> [FrameLocation] {
            starts.indices.map { i in
                let end = i + 1 < starts.count ? starts[i + 1] : fragments.count
                return FrameLocation(ranges: Array(fragments[starts[i]..<end]))
            }
        }
        /// Fragment indices where the table's offsets fall; nil when any offset is not a fragment start.
        func starts(forOffsets offsets: [Int]) -> [Int]? {
            var result = [Int]()
            result.reserveCapacity(offsets.count)
            var k = 0
            for o in offsets {
                while k < itemOffsets.count && itemOffsets[k] < o { k += 1 }
                guard k < itemOffsets.count, itemOffsets[k] == o, result.last.map({ $0 < k }) ?? true else { return nil }
                result.append(k)
            }
            return result.first == 0 ? result : nil
        }

        if let eot = extendedOffsets(dataSet), eot.count == frames, let s = starts(forOffsets: eot) {
            return group(startingAt: s)
        }
        let bot = enc.basicOffsets.map { Int($0) }
        if bot.count == frames, let s = starts(forOffsets: bot) {
            return group(startingAt: s)
        }
        if frames == 1 { return group(startingAt: [0]) }
        if fragments.count == frames { return group(startingAt: Array(0..<frames)) }
        // No usable table: a frame starts at each fragment that opens a codestream.
        let s = fragments.indices.filter { startsCodestream(enc.storage, fragments[$0]) }
        if s.first == 0 && s.count == frames { return group(startingAt: s) }
        if fragments.count < frames {
            throw DICOMError(.invalidValue, tag: .pixelData,
                             message: "\(fragments.count) fragments cannot hold \(frames) frames and there is no offset table")
        }
        throw DICOMError(.invalidValue, tag: .pixelData,
                         message: "cannot tell where \(frames) frames start in \(fragments.count) fragments: no offset table and \(s.count) codestream starts")
    }

    private static func extendedOffsets(_ ds: DataSet) -> [Int]? {
        guard let element = ds[.extendedOffsetTable] else { return nil }
        let bytes: [UInt8]
        switch element.value {
        case .bytes(let b): bytes = b
        case .bulk(let r): bytes = r.load()
        default: return nil
        }
        guard bytes.count % 8 == 0 else { return nil }
        return stride(from: 0, to: bytes.count, by: 8).compactMap { i in
            let v = bytes[i..<i + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return v <= UInt64(Int.max) ? Int(v) : nil
        }
    }

    /// JPEG family SOI (FFD8), a J2K codestream's SOC+SIZ (FF4F FF51), or a JP2 signature box.
    static func startsCodestream(_ storage: ByteStorage, _ r: Range<Int>) -> Bool {
        guard r.count >= 4, r.upperBound <= storage.count else { return false }
        let b = storage.bytes
        let s = r.lowerBound
        if b[s] == 0xFF && b[s + 1] == 0xD8 { return true }
        if b[s] == 0xFF && b[s + 1] == 0x4F && b[s + 2] == 0xFF && b[s + 3] == 0x51 { return true }
        if r.count >= 8 && b[s] == 0 && b[s + 1] == 0 && b[s + 2] == 0 && b[s + 3] == 0x0C
            && b[s + 4] == 0x6A && b[s + 5] == 0x50 { return true }
        return false
    }
}
