import DICOMCore

/// RLE Lossless (PS3.5 Annex G): a 64-byte header of up to 15 segment offsets, then one
/// PackBits-coded segment per byte plane, most significant byte first, sample by sample.
public struct RLECodec: PixelDecoder, PixelEncoder {
    public init() {}
    public var transferSyntaxUIDs: [String] { ["1.2.840.10008.1.2.5"] }
    public var transferSyntaxUID: String { "1.2.840.10008.1.2.5" }

    public func decode(_ encoded: [UInt8], description d: PixelDescription) throws(DICOMError) -> DecodedFrame {
        guard d.bitsAllocated % 8 == 0, d.bitsAllocated <= 64 else {
            throw DICOMError(.invalidValue, tag: .bitsAllocated, message: "RLE needs whole-byte samples, not \(d.bitsAllocated) bits")
        }
        let width = d.bytesPerSample
        let segmentsNeeded = width * d.samplesPerPixel
        guard encoded.count >= 64 else { throw DICOMError(.truncated, message: "RLE header needs 64 bytes, frame has \(encoded.count)") }
        let header: [Int] = (0..<16).map { (i: Int) -> Int in
            let low = Int(encoded[4 * i]) | Int(encoded[4 * i + 1]) << 8
            return low | Int(encoded[4 * i + 2]) << 16 | Int(encoded[4 * i + 3]) << 24
        }
        let count = header[0]
        guard count == segmentsNeeded, count <= 15 else {
            throw DICOMError(.invalidValue, message: "RLE header has \(count) segments, \(segmentsNeeded) needed")
        }
        var offsets = Array(header[1...count])
        offsets.append(encoded.count)
        for i in 0..<count where !(offsets[i] >= 64 && offsets[i] <= offsets[i + 1]) {
            throw DICOMError(.invalidValue, offset: 4 + 4 * i, message: "RLE segment \(i + 1) offset \(offsets[i]) is out of order or in the header")
        }
        let pixels = d.rows * d.columns
        var out = [UInt8](repeating: 0, count: pixels * segmentsNeeded)
        try encoded.withUnsafeBufferPointer { (src: UnsafeBufferPointer<UInt8>) throws(DICOMError) in
            try out.withUnsafeMutableBufferPointer { (dst: inout UnsafeMutableBufferPointer<UInt8>) throws(DICOMError) in
                for seg in 0..<count {
                    // Segment order: sample 0's most significant byte … least; then sample 1 …
                    let sample = seg / width
                    let byteInSample = width - 1 - seg % width
                    let start = sample * width + byteInSample
                    try Self.unpack(src, offsets[seg]..<offsets[seg + 1], into: dst, start: start,
                                    stride: segmentsNeeded, count: pixels, segment: seg + 1)
                }
            }
        }
        SampleLayout.correctUnusedBits(&out, bitsAllocated: d.bitsAllocated, bitsStored: d.bitsStored, signed: d.isSigned)
        var desc = d
        desc.numberOfFrames = 1
        desc.planarConfiguration = 0
        return DecodedFrame(bytes: out, description: desc)
    }

    /// PackBits: n in 0...127 copies n+1 literal bytes, n in -127...-1 repeats the next byte 1-n
    /// times, -128 is a no-op. Output beyond `count` bytes is dropped; less is an error.
    private static func unpack(_ src: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into dst: UnsafeMutableBufferPointer<UInt8>,
                               start: Int, stride: Int, count: Int, segment: Int) throws(DICOMError) {
        var i = range.lowerBound
        var produced = 0
        var o = start
        while i < range.upperBound && produced < count {
            let n = Int(Int8(bitPattern: src[i]))
            i += 1
            if n >= 0 {
                let len = min(n + 1, range.upperBound - i, count - produced)
                for k in 0..<len { dst[o] = src[i + k]; o += stride }
                i += n + 1
                produced += len
            } else if n != -128 {
                guard i < range.upperBound else { break }
                let len = min(1 - n, count - produced)
                let v = src[i]
                for _ in 0..<len { dst[o] = v; o += stride }
                i += 1
                produced += len
            }
        }
        guard produced == count else {
            throw DICOMError(.truncated, offset: range.lowerBound,
                             message: "RLE segment \(segment) decodes to \(produced) bytes, \(count) expected")
        }
    }

    public func encode(_ frame: [UInt8], description d: PixelDescription) throws(DICOMError) -> (bytes: [UInt8], description: PixelDescription) {
        guard d.bitsAllocated % 8 == 0 else {
            throw DICOMError(.invalidValue, tag: .bitsAllocated, message: "RLE needs whole-byte samples, not \(d.bitsAllocated) bits")
        }
        let width = d.bytesPerSample
        let segments = width * d.samplesPerPixel
        guard segments <= 15 else {
            throw DICOMError(.invalidValue, message: "RLE holds at most 15 byte planes, \(segments) needed")
        }
        let pixels = d.rows * d.columns
        guard frame.count >= pixels * segments else { throw NativeCodec.short(frame.count, pixels * segments) }
        var out = [UInt8](repeating: 0, count: 64)
        out[0] = UInt8(segments)
        var plane = [UInt8](repeating: 0, count: d.columns)
        for seg in 0..<segments {
            let offset = out.count
            for b in 0..<4 { out[4 + 4 * seg + b] = UInt8(truncatingIfNeeded: offset >> (8 * b)) }
            let byteIndex = (seg / width) * width + (width - 1 - seg % width)
            // Each row is coded on its own (PS3.5 §G.3.1): runs never cross a row boundary.
            for row in 0..<d.rows {
                for c in 0..<d.columns { plane[c] = frame[(row * d.columns + c) * segments + byteIndex] }
                Self.pack(plane, into: &out)
            }
            if out.count % 2 == 1 { out.append(0) }
        }
        var desc = d
        desc.planarConfiguration = 0
        return (out, desc)
    }

    private static func pack(_ row: [UInt8], into out: inout [UInt8]) {
        var i = 0
        let n = row.count
        while i < n {
            var run = 1
            while i + run < n && run < 128 && row[i + run] == row[i] { run += 1 }
            if run >= 2 {
                out.append(UInt8(bitPattern: Int8(1 - run)))
                out.append(row[i])
                i += run
                continue
            }
            var lit = 1
            while i + lit < n && lit < 128 && !(i + lit + 1 < n && row[i + lit] == row[i + lit + 1]) { lit += 1 }
            out.append(UInt8(lit - 1))
            out.append(contentsOf: row[i..<i + lit])
            i += lit
        }
    }
}
