import DICOMCore
import DICOMParser

/// A decoder that can reconstruct a frame at a lower resolution: JPEG 2000 and HTJ2K keep each
/// decomposition level's coefficients apart (T.800 Annex B), so dropping the `reduce` finest
/// levels skips their code-blocks and inverse transforms and yields the image halved `reduce`
/// times, each side rounded up.
public protocol ReducedResolutionDecoder: PixelDecoder {
    /// The frame with up to `reduce` finest levels discarded (fewer when the codestream has fewer);
    /// the returned description has the reduced Rows and Columns.
    func decode(_ encoded: [UInt8], description: PixelDescription, reduce: Int) throws(DICOMError) -> DecodedFrame
}

extension PixelDescription {
    /// This description for the image halved `levels` times: ceil(side / 2^levels).
    public func reduced(by levels: Int) -> PixelDescription {
        guard levels > 0 else { return self }
        var d = self
        d.rows = (rows + (1 << levels) - 1) >> levels
        d.columns = (columns + (1 << levels) - 1) >> levels
        return d
    }
}

extension PixelCodecs {
    /// One stored frame decoded at reduced resolution when its syntax allows (`reduce` levels at
    /// most), else in full: the frame's description says which.
    public static func decode(_ encoded: [UInt8], transferSyntax uid: String, description: PixelDescription,
                              reduce: Int) throws(DICOMError) -> DecodedFrame {
        if reduce > 0, let decoder = decoders[uid] as? any ReducedResolutionDecoder {
            return try decoder.decode(encoded, description: description, reduce: reduce)
        }
        return try decode(encoded, transferSyntax: uid, description: description)
    }
}

extension Renderer {
    /// How many resolution levels a render with `options` can do without: the largest r whose
    /// image, ceil(side / 2^r), is still at least the viewport's output in both dimensions. 0 when
    /// there is no viewport, when it names a source region (kept in full-resolution coordinates),
    /// for PALETTE COLOR, whose samples are indices that cannot be averaged, and for samples the
    /// wavelet does not halve (`halves`: few-bit or 32-bit).
    public static func reduceFactor(_ options: RenderingOptions, description d: PixelDescription) -> Int {
        guard let v = options.viewport, v.source == nil, d.photometricInterpretation != "PALETTE COLOR",
              halves(d), d.columns > 0, d.rows > 0 else { return 0 }
        let (ow, oh) = v.outputSize(sourceWidth: d.columns, sourceHeight: d.rows)
        var r = 0
        while r < 16 {
            let next = d.reduced(by: r + 1)
            guard next.columns >= ow, next.rows >= oh, next.columns < d.reduced(by: r).columns || next.rows < d.reduced(by: r).rows else { break }
            r += 1
        }
        return r
    }

    /// A stored frame rendered as `options` ask, decoding only the resolution levels the viewport
    /// needs (`reduceFactor`) where the transfer syntax allows. A codestream with fewer levels than
    /// that is halved the rest of the way by the same wavelet (`waveletLowBand`), so the result is
    /// what the full decode renders to. A reduced decode that fails falls back to the full one,
    /// which reports.
    public static func render(encoded: [UInt8], transferSyntax uid: String, description d: PixelDescription,
                              display: DisplayAttributes, options: RenderingOptions) throws(DICOMError) -> RenderedImage {
        let reduce = reduceFactor(options, description: d)
        if reduce > 0, let frame = try? PixelCodecs.decode(encoded, transferSyntax: uid, description: d, reduce: reduce),
           // The codestream may have had fewer levels than asked for: its size says how many went.
           let done = (0...reduce).first(where: {
               d.reduced(by: $0).columns == frame.description.columns && d.reduced(by: $0).rows == frame.description.rows
           }),
           let low = waveletLowBand(frame, levels: reduce - done) {
            return try render(low, display: display, options: options, reducedFrom: (d.columns, d.rows, reduce))
        }
        return try render(try PixelCodecs.decode(encoded, transferSyntax: uid, description: d), display: display, options: options)
    }
}

extension Renderer {
    /// Scales a reduced-resolution image to the size the full one fits the viewport at, each output
    /// pixel averaging what it covers of the original. A sample of resolution level r stands at
    /// 2^r·m in the original (the wavelet's low band is centred on the even samples, T.800 F.3.8),
    /// not at the centre of the 2^r block it summarises; the spans are mapped with that offset and
    /// weighted by overlap, so a thumbnail lines up with one from the full decode instead of
    /// lying (2^r - 1) / 2 original pixels off.
    static func resampleReduced(_ image: RenderedImage, viewport v: RenderingOptions.Viewport,
                                full: (width: Int, height: Int, levels: Int)) -> RenderedImage {
        let (ow, oh) = v.outputSize(sourceWidth: full.width, sourceHeight: full.height)
        let scale = Double(1 << full.levels)
        // For each output index, the reduced samples it covers and their overlap weights.
        func taps(_ n: Int, _ original: Int, _ reduced: Int) -> [[(Int, Double)]] {
            (0..<n).map { i in
                let a = max((Double(i) * Double(original) / Double(n) - 0.5) / scale, -0.5)
                let b = min((Double(i + 1) * Double(original) / Double(n) - 0.5) / scale, Double(reduced) - 0.5)
                var out: [(Int, Double)] = []
                var m = max(Int((a + 0.5).rounded(.down)), 0)
                while m < reduced, Double(m) - 0.5 < b {
                    let w = min(b, Double(m) + 0.5) - max(a, Double(m) - 0.5)
                    if w > 0 { out.append((m, w)) }
                    m += 1
                }
                return out.isEmpty ? [(min(max(Int(a.rounded()), 0), reduced - 1), 1)] : out
            }
        }
        let xs = taps(ow, full.width, image.width), ys = taps(oh, full.height, image.height)
        let c = image.components
        var out = [UInt8](repeating: 0, count: ow * oh * c)
        var sums = [Double](repeating: 0, count: c)
        for oy in 0..<oh {
            for ox in 0..<ow {
                for k in 0..<c { sums[k] = 0 }
                var total = 0.0
                for (y, wy) in ys[oy] {
                    for (x, wx) in xs[ox] {
                        let w = wy * wx, base = (y * image.width + x) * c
                        total += w
                        for k in 0..<c { sums[k] += w * Double(image.pixels[base + k]) }
                    }
                }
                let base = (oy * ow + ox) * c
                for k in 0..<c { out[base + k] = UInt8(clamping: Int((sums[k] / total).rounded())) }
            }
        }
        return RenderedImage(width: ow, height: oh, components: c, pixels: out)
    }
}
