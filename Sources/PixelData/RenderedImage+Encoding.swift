import CCodecs
import CompressNIO
import DICOMCore
import NIOCore

extension RenderedImage {
    /// Baseline JPEG through libjpeg; `quality` 1...100.
    public func jpeg(quality: Int) throws(DICOMError) -> [UInt8] {
        let output = try pixels.withUnsafeBufferPointer { (p) throws(DICOMError) -> CodecOutput in
            try CodecOutput.call { _, out, length, err, errLength in
                ccodecs_jpeg_encode(p.baseAddress, UInt32(width), UInt32(height), UInt32(components), Int32(quality), out, length, err, errLength)
            }
        }
        return output.bytes
    }

    /// PNG (8-bit gray or RGB, no interlace), every row with filter 0 and one zlib stream. No
    /// library in the chosen set writes PNG; the format is three chunks around zlib.
    public func png() throws(DICOMError) -> [UInt8] {
        let stride = width * components
        var raw = ByteBuffer()
        raw.reserveCapacity((stride + 1) * height)
        for y in 0..<height {
            raw.writeInteger(UInt8(0))
            raw.writeBytes(pixels[(y * stride)..<((y + 1) * stride)])
        }
        let compressed: ByteBuffer
        do { compressed = try raw.compress(with: .zlib()) } catch {
            throw DICOMError(.invalidValue, message: "PNG compression failed: \(error)")
        }
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header: [UInt8] = []
        header.appendBigEndian(UInt32(width))
        header.appendBigEndian(UInt32(height))
        header += [8, components == 3 ? 2 : 0, 0, 0, 0]  // bit depth, colour type, compression, filter, interlace
        Self.chunk("IHDR", header, into: &out)
        Self.chunk("IDAT", Array(compressed.readableBytesView), into: &out)
        Self.chunk("IEND", [], into: &out)
        return out
    }

    static func chunk(_ type: String, _ data: [UInt8], into out: inout [UInt8]) {
        out.appendBigEndian(UInt32(data.count))
        let typed = Array(type.utf8) + data
        out += typed
        out.appendBigEndian(CRC32.checksum(typed))
    }
}

/// CRC-32 (ISO 3309, as PNG uses it).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian(_ v: UInt32) {
        append(UInt8(v >> 24)); append(UInt8(v >> 16 & 0xFF)); append(UInt8(v >> 8 & 0xFF)); append(UInt8(v & 0xFF))
    }
}
