import DICOMCore

/// Downscaling by powers of two the way JPEG 2000 does it. A render whose viewport is at most half
/// the image halves the stored values (before the Modality and VOI LUTs, as GPU viewers interpolate
/// values and window after) with the low band of the reversible 5/3 wavelet, T.800 F.4.8.2, then
/// windows and resamples the rest of the way. That low band is what a JPEG 2000 or HTJ2K decoder
/// reconstructs when it drops its finest resolution levels from a single-tile codestream with the
/// reversible transform and no colour transform (lossless CT, MR, CR as stored), so a thumbnail
/// decoded at reduced resolution (`Renderer+ReducedResolution`) and one decoded in full and scaled
/// here are the same pixels, whatever the image's edges. Tiles, the 9/7 transform and the colour
/// transforms make the two differ a little (ReducedResolutionTests). A filter with a real stop band
/// also aliases less than the box average it replaced.

extension Renderer {
    /// Whether frames of this description are halved by the wavelet (else a render decodes in full
    /// and box-averages windowed pixels, as before): 8- or 16-bit containers of at least 8 stored
    /// bits. A low band of 1-bit (or few-bit) samples rounded back to their range would drop a
    /// thin line on an odd row instead of greying it.
    static func halves(_ d: PixelDescription) -> Bool {
        [8, 16].contains(d.bitsAllocated) && d.bitsStored >= 8 && d.samplesPerPixel >= 1
    }

    /// `frame` halved `levels` times, each side to ceil(side / 2), by the 5/3 analysis low band
    /// (vertical pass, then horizontal, T.800 F.4.2), one component at a time. Samples are clamped
    /// to the Bits Stored range, as a decoder clamps its output to the codestream's precision; to
    /// the container's when the frame holds values beyond Bits Stored. Nil when `halves` says no or
    /// the data are short. Samples are held as Int32: the low band of 16-bit input stays within
    /// about 19 bits however many levels are taken.
    static func waveletLowBand(_ frame: DecodedFrame, levels: Int) -> DecodedFrame? {
        let d = frame.description
        guard levels > 0 else { return frame }
        let width = d.bitsAllocated / 8, c = d.samplesPerPixel, n = d.columns * d.rows, signed = d.isSigned
        guard halves(d), n > 0, frame.bytes.count >= n * c * width else { return nil }
        let reduced = d.reduced(by: levels)
        let m = reduced.columns * reduced.rows
        var bytes = [UInt8](repeating: 0, count: m * c * width)
        let bits = min(d.bitsStored, d.bitsAllocated)
        let stored = signed ? (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) : (0, (1 << bits) - 1)
        let container = signed ? (-(1 << (8 * width - 1)), (1 << (8 * width - 1)) - 1) : (0, (1 << (8 * width)) - 1)
        for k in 0..<c {
            var plane = [Int32](repeating: 0, count: n)
            var lo = Int32.max, hi = Int32.min
            frame.bytes.withUnsafeBytes { raw in
                plane.withUnsafeMutableBufferPointer { p in
                    switch (width, signed) {
                    case (1, false): for i in 0..<n { p[i] = Int32(raw[i * c + k]) }
                    case (1, true): for i in 0..<n { p[i] = Int32(Int8(bitPattern: raw[i * c + k])) }
                    case (_, false): for i in 0..<n { p[i] = Int32(UInt16(raw[2 * (i * c + k)]) | UInt16(raw[2 * (i * c + k) + 1]) << 8) }
                    case (_, true): for i in 0..<n { p[i] = Int32(Int16(bitPattern: UInt16(raw[2 * (i * c + k)]) | UInt16(raw[2 * (i * c + k) + 1]) << 8)) }
                    }
                    for i in 0..<n { lo = min(lo, p[i]); hi = max(hi, p[i]) }
                }
            }
            let range = Int(lo) >= stored.0 && Int(hi) <= stored.1 ? stored : container
            var (w, h) = (d.columns, d.rows)
            for _ in 0..<levels {
                plane = halve(plane, width: w, height: h)
                (w, h) = ((w + 1) / 2, (h + 1) / 2)
            }
            for i in 0..<m {
                let v = UInt32(truncatingIfNeeded: min(max(Int(plane[i]), range.0), range.1))
                let base = (i * c + k) * width
                for b in 0..<width { bytes[base + b] = UInt8(truncatingIfNeeded: v >> (8 * b)) }
            }
        }
        var description = reduced
        description.numberOfFrames = 1
        return DecodedFrame(bytes: bytes, description: description)
    }

    /// One level of the 2D low band of a `width` × `height` plane: the vertical lifting step on whole
    /// rows at a time (row-major, so the passes run along memory), then the horizontal one per row.
    static func halve(_ x: [Int32], width w: Int, height h: Int) -> [Int32] {
        let lh = (h + 1) / 2, lw = (w + 1) / 2
        var vertical = [Int32](repeating: 0, count: w * lh)
        x.withUnsafeBufferPointer { x in
            vertical.withUnsafeMutableBufferPointer { v in
                guard h > 1 else { for i in 0..<w { v[i] = x[i] }; return }
                // d(k) for the odd rows, each from its neighbours (the last from its upper one twice).
                var high = [Int32](repeating: 0, count: w * (h / 2))
                high.withUnsafeMutableBufferPointer { d in
                    for k in stride(from: 1, to: h, by: 2) {
                        let above = (k - 1) * w, below = (k + 1 < h ? k + 1 : k - 1) * w, row = k * w, out = (k / 2) * w
                        for i in 0..<w { d[out + i] = x[row + i] - ((x[above + i] + x[below + i]) >> 1) }
                    }
                    for m in 0..<lh {
                        // d(2m-1) and d(2m+1), mirrored at the ends: d(-1) = d(1), d(h) = d(h-2).
                        let left = (m > 0 ? m - 1 : 0) * w, right = (2 * m + 1 < h ? m : m - 1) * w, row = 2 * m * w, out = m * w
                        for i in 0..<w { v[out + i] = x[row + i] + ((d[left + i] + d[right + i] + 2) >> 2) }
                    }
                }
            }
        }
        var out = [Int32](repeating: 0, count: lw * lh)
        var line = [Int32](), low = [Int32]()
        line.reserveCapacity(w)
        for y in 0..<lh {
            line.removeAll(keepingCapacity: true)
            line.append(contentsOf: vertical[(y * w)..<(y * w + w)])
            lowBand(line, into: &low)
            out.withUnsafeMutableBufferPointer { o in for i in 0..<lw { o[y * lw + i] = low[i] } }
        }
        return out
    }

    /// The low band of one forward 5/3 lifting step over a signal starting at an even index (T.800
    /// F-9, F-10), with the whole-sample symmetric extension (F.4.8.2 via F.3.7): high samples
    /// d(2n+1) = x(2n+1) - ⌊(x(2n) + x(2n+2)) / 2⌋, low s(n) = x(2n) + ⌊(d(2n-1) + d(2n+1) + 2) / 4⌋.
    /// The extension makes d(-1) = d(1) and, at an odd length, d(len) = d(len-2). A single sample
    /// is its own low band (F.4.8.1).
    @inline(__always)
    static func lowBand(_ x: [Int32], into s: inout [Int32]) {
        let n = x.count
        s.removeAll(keepingCapacity: true)
        guard n > 1 else { s.append(contentsOf: x); return }
        func high(_ k: Int) -> Int32 {  // k odd, 1 ≤ k < n
            x[k] - ((x[k - 1] + (k + 1 < n ? x[k + 1] : x[k - 1])) >> 1)
        }
        var left = high(1)
        for m in 0..<((n + 1) / 2) {
            let k = 2 * m + 1
            let right = k < n ? high(k) : left
            s.append(x[2 * m] + ((left + right + 2) >> 2))
            left = right
        }
    }
}
