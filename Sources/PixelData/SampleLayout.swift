/// Byte-level reshaping shared by the decoders: byte order, planar → interleaved, and the
/// Bits Stored correction DICOM requires (PS3.5 §8.1.1: bits above High Bit carry no meaning).
enum SampleLayout {
    /// Swaps each `width`-byte sample in place (big endian ↔ little endian).
    static func swapBytes(_ bytes: inout [UInt8], width: Int) {
        guard width > 1 else { return }
        bytes.withUnsafeMutableBufferPointer { p in
            var i = 0
            while i + width <= p.count {
                var lo = i, hi = i + width - 1
                while lo < hi { p.swapAt(lo, hi); lo += 1; hi -= 1 }
                i += width
            }
        }
    }

    /// Planar (R…G…B…) to interleaved (RGBRGB…), for `samples` planes of `pixels` samples of `width` bytes.
    static func interleave(_ bytes: [UInt8], pixels: Int, samples: Int, width: Int) -> [UInt8] {
        guard samples > 1 else { return bytes }
        var out = [UInt8](repeating: 0, count: pixels * samples * width)
        bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for s in 0..<samples {
                    for p in 0..<pixels {
                        let from = (s * pixels + p) * width
                        let to = (p * samples + s) * width
                        guard from + width <= src.count else { return }
                        for b in 0..<width { dst[to + b] = src[from + b] }
                    }
                }
            }
        }
        return out
    }

    /// Clears (unsigned) or sign-extends (signed) the bits above Bits Stored in little-endian
    /// samples of 8, 16 or 32 bits, as pydicom's `pixel_array` does.
    static func correctUnusedBits(_ bytes: inout [UInt8], bitsAllocated: Int, bitsStored: Int, signed: Bool) {
        guard bitsStored < bitsAllocated, [8, 16, 32].contains(bitsAllocated) else { return }
        if bitsAllocated == 16 {
            // The common case (12-bit CT/MR in 16-bit words), kept to a loop the compiler vectorises.
            let shift = UInt16(16 - bitsStored)
            bytes.withUnsafeMutableBytes { raw in
                let count = raw.count / 2
                if signed {
                    for i in 0..<count {
                        let v = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                        let corrected = UInt16(bitPattern: Int16(bitPattern: v << shift) >> Int16(shift))
                        raw.storeBytes(of: corrected.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                    }
                } else {
                    let mask = UInt16.max >> shift
                    for i in 0..<count {
                        let v = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                        raw.storeBytes(of: (v & mask).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                    }
                }
            }
            return
        }
        let width = bitsAllocated / 8
        let shift = UInt32(bitsAllocated - bitsStored)
        bytes.withUnsafeMutableBytes { p in
            var i = 0
            while i + width <= p.count {
                var v: UInt32 = 0
                for b in 0..<width { v |= UInt32(p[i + b]) << (8 * UInt32(b)) }
                v <<= shift + UInt32(32 - bitsAllocated)
                if signed { v = UInt32(bitPattern: Int32(bitPattern: v) >> Int32(shift + UInt32(32 - bitsAllocated))) }
                else { v >>= shift + UInt32(32 - bitsAllocated) }
                for b in 0..<width { p[i + b] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(b))) }
                i += width
            }
        }
    }

    /// Unpacks 1-bit samples (least significant bit first) to one byte per sample.
    static func unpackBits(_ bytes: [UInt8], count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        for i in 0..<count where i / 8 < bytes.count {
            out[i] = (bytes[i / 8] >> UInt8(i % 8)) & 1
        }
        return out
    }

    /// Expands YBR_FULL_422 (Y1 Y2 Cb Cr per pixel pair) to YBR_FULL, one Cb Cr per pixel.
    static func expand422(_ bytes: [UInt8], rows: Int, columns: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rows * columns * 3)
        var src = 0
        var dst = 0
        for _ in 0..<rows {
            var c = 0
            while c < columns {
                guard src + 4 <= bytes.count else { return out }
                let y1 = bytes[src], y2 = bytes[src + 1], cb = bytes[src + 2], cr = bytes[src + 3]
                out[dst] = y1; out[dst + 1] = cb; out[dst + 2] = cr
                dst += 3
                if c + 1 < columns { out[dst] = y2; out[dst + 1] = cb; out[dst + 2] = cr; dst += 3 }
                src += 4
                c += 2
            }
        }
        return out
    }
}
