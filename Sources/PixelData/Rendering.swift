import DICOMCore
import DICOMParser
import Foundation

/// An 8-bit image for display: gray (1 component) or interleaved RGB (3), row by row.
public struct RenderedImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var components: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, components: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.components = components
        self.pixels = pixels
    }
}

/// What the client asked for (PS3.18 §8.3.5.1): a VOI window, a viewport, a JPEG quality.
public struct RenderingOptions: Sendable, Equatable {
    /// VOI LUT Function (PS3.3 C.11.2.1.3).
    public enum WindowFunction: String, Sendable, CaseIterable {
        case linear = "LINEAR", linearExact = "LINEAR_EXACT", sigmoid = "SIGMOID"
    }

    public struct Window: Sendable, Equatable {
        public var center: Double
        public var width: Double
        public var function: WindowFunction
        public init(center: Double, width: Double, function: WindowFunction = .linear) {
            self.center = center
            self.width = width
            self.function = function
        }
    }

    /// The output size (`vw,vh`) and optionally the source region (`sx,sy,sw,sh`); a negative
    /// `sw` or `sh` flips the image (PS3.18 §8.3.5.1.3).
    public struct Viewport: Sendable, Equatable {
        public var width: Int
        public var height: Int
        public var source: (x: Int, y: Int, width: Int, height: Int)?
        public init(width: Int, height: Int, source: (x: Int, y: Int, width: Int, height: Int)? = nil) {
            self.width = width
            self.height = height
            self.source = source
        }
        /// What is wrong with this viewport for an image of the given size, or nil.
        public func problem(imageWidth: Int, imageHeight: Int) -> String? {
            guard (1...RenderingOptions.maximumSide).contains(width), (1...RenderingOptions.maximumSide).contains(height) else {
                return "viewport \(width)×\(height) is outside 1...\(RenderingOptions.maximumSide)"
            }
            let s = source ?? (0, 0, imageWidth, imageHeight)
            let limit = 1 << 20  // far above any image (Rows and Columns ≤ 65535); keeps the sums below from overflowing
            guard [s.x, s.y, s.width, s.height].allSatisfy({ (-limit...limit).contains($0) }) else {
                return "source region \(s.x),\(s.y),\(s.width),\(s.height) is not inside the \(imageWidth)×\(imageHeight) image"
            }
            let sw = abs(s.width), sh = abs(s.height)
            guard sw > 0, sh > 0, s.x >= 0, s.y >= 0, s.x + sw <= imageWidth, s.y + sh <= imageHeight else {
                return "source region \(s.x),\(s.y),\(s.width),\(s.height) is not inside the \(imageWidth)×\(imageHeight) image"
            }
            let size = outputSize(sourceWidth: sw, sourceHeight: sh)
            guard size.width * size.height <= RenderingOptions.maximumPixels else {
                return "viewport \(width)×\(height) would render \(size.width)×\(size.height) pixels, more than \(RenderingOptions.maximumPixels)"
            }
            return nil
        }

        /// The rendered size: the source region scaled to fit, aspect ratio kept.
        public func outputSize(sourceWidth sw: Int, sourceHeight sh: Int) -> (width: Int, height: Int) {
            let scale = min(Double(width) / Double(sw), Double(height) / Double(sh))
            return (max(1, min(width, Int((Double(sw) * scale).rounded()))), max(1, min(height, Int((Double(sh) * scale).rounded()))))
        }

        public static func == (a: Viewport, b: Viewport) -> Bool {
            a.width == b.width && a.height == b.height && a.source.map { [$0.x, $0.y, $0.width, $0.height] } == b.source.map { [$0.x, $0.y, $0.width, $0.height] }
        }
    }

    public var window: Window?
    public var viewport: Viewport?
    public var quality = 90
    public init() {}

    /// Largest side of a rendered image, and most pixels in one; bigger viewports are refused before
    /// anything is allocated.
    public static let maximumSide = 8192
    public static let maximumPixels = 1 << 24
}

/// The attributes of the data set that turn stored values into displayed ones: the Modality LUT
/// (rescale), the VOI windows, the palette. Read once per instance from its header.
public struct DisplayAttributes: Sendable {
    public var rescaleSlope = 1.0
    public var rescaleIntercept = 0.0
    public var windows: [RenderingOptions.Window] = []
    /// PALETTE COLOR lookup tables: first mapped value and 8-bit red, green, blue entries.
    public var palette: (first: Int, red: [UInt8], green: [UInt8], blue: [UInt8])?

    public init() {}

    public init(dataSet ds: DataSet) {
        if let s = ds.doubles(Tag(0x0028_1053))?.first, s.isFinite, s != 0 { rescaleSlope = s }
        if let i = ds.doubles(Tag(0x0028_1052))?.first, i.isFinite { rescaleIntercept = i }
        windows = Self.windows(ds)
        palette = Self.palette(ds)
    }

    /// These attributes for frame `index` (from 0) of an enhanced multi-frame object: the Pixel Value
    /// Transformation (PS3.3 C.7.6.16.2.9) and Frame VOI LUT (C.7.6.16.2.10) functional groups of
    /// that frame's Per-frame Functional Groups item, else of the Shared Functional Groups item, replace
    /// the top-level Rescale and Window attributes; a group in neither leaves them as they are.
    public func frame(_ index: Int, of ds: DataSet) -> DisplayAttributes {
        var out = self
        if let pvt = Self.functionalGroup(Tag(0x0028_9145), frame: index, of: ds) {
            out.rescaleSlope = 1
            out.rescaleIntercept = 0
            if let s = pvt.doubles(Tag(0x0028_1053))?.first, s.isFinite, s != 0 { out.rescaleSlope = s }
            if let i = pvt.doubles(Tag(0x0028_1052))?.first, i.isFinite { out.rescaleIntercept = i }
        }
        if let voi = Self.functionalGroup(Tag(0x0028_9132), frame: index, of: ds) {
            out.windows = Self.windows(voi)
        }
        return out
    }

    /// The first item of the functional group sequence `group` for frame `index`: from the frame's
    /// Per-frame Functional Groups item, else the Shared one (a group is in one or the other, PS3.3 C.7.6.16).
    static func functionalGroup(_ group: Tag, frame index: Int, of ds: DataSet) -> DataSet? {
        if let perFrame = ds[Tag(0x5200_9230)]?.items, perFrame.indices.contains(index),
           let item = perFrame[index][group]?.items?.first {
            return item
        }
        return ds[Tag(0x5200_9229)]?.items?.first?[group]?.items?.first
    }

    /// Window Center/Width pairs with their VOI LUT Function (PS3.3 C.11.2.1.2).
    static func windows(_ ds: DataSet) -> [RenderingOptions.Window] {
        let centers = ds.doubles(Tag(0x0028_1050)) ?? [], widths = ds.doubles(Tag(0x0028_1051)) ?? []
        let function = ds.string(Tag(0x0028_1056)).flatMap { RenderingOptions.WindowFunction(rawValue: $0.uppercased()) } ?? .linear
        return zip(centers, widths).compactMap { c, w in
            c.isFinite && w.isFinite && w >= 1 ? RenderingOptions.Window(center: c, width: w, function: function) : nil
        }
    }

    /// Reads the Red/Green/Blue Palette Color LUTs (PS3.3 C.7.6.3.1.5): descriptor (entries, first
    /// mapped value, bits per entry) and 16-bit (or 8-bit) data, scaled to 8 bits.
    static func palette(_ ds: DataSet) -> (first: Int, red: [UInt8], green: [UInt8], blue: [UInt8])? {
        var tables: [[UInt8]] = []
        var first = 0
        for (descriptor, data) in [(0x0028_1101, 0x0028_1201), (0x0028_1102, 0x0028_1202), (0x0028_1103, 0x0028_1203)] {
            guard let d = ds.integers(Tag(UInt32(descriptor))), d.count == 3,
                  let element = ds[Tag(UInt32(data))], let bytes = element.valueBytes else { return nil }
            let entries = d[0] == 0 ? 65536 : Int(clamping: d[0])
            // The three tables must agree: pixels index all of them alike.
            if !tables.isEmpty && (entries != tables[0].count || Int(clamping: d[1]) != first) { return nil }
            first = Int(clamping: d[1])
            let bits = d[2]
            // A descriptor from the file sizes an allocation: only what the standard allows.
            guard (1...65536).contains(entries), (1...16).contains(bits) else { return nil }
            var table = [UInt8](repeating: 0, count: entries)
            if bits == 8 && bytes.count >= entries && bytes.count < entries * 2 {
                for i in 0..<entries { table[i] = bytes[i] }
            } else {
                guard bytes.count >= entries * 2 else { return nil }
                let shift = bits > 8 ? Int(bits) - 8 : 0
                for i in 0..<entries {
                    let v = ds.isBigEndian ? Int(bytes[2 * i]) << 8 | Int(bytes[2 * i + 1]) : Int(bytes[2 * i]) | Int(bytes[2 * i + 1]) << 8
                    table[i] = UInt8(clamping: v >> shift)
                }
            }
            tables.append(table)
        }
        return (first, tables[0], tables[1], tables[2])
    }
}

/// Turns a decoded frame into a display image: Modality LUT, VOI window (or the frame's own value
/// range when neither the request nor the data set gives one), MONOCHROME1 inversion, palette or
/// YBR→RGB colour, then the viewport's crop, flip and scale.
public enum Renderer {
    public static func render(_ frame: DecodedFrame, display: DisplayAttributes, options: RenderingOptions) throws(DICOMError) -> RenderedImage {
        // A viewport at most half the frame: halve the stored values first (Renderer+WaveletScaling).
        let d = frame.description, levels = reduceFactor(options, description: d)
        if levels > 0, let low = waveletLowBand(frame, levels: levels) {
            return try render(low, display: display, options: options, reducedFrom: (d.columns, d.rows, levels))
        }
        return try render(frame, display: display, options: options, reducedFrom: nil)
    }

    /// `reducedFrom`: the frame was decoded `levels` resolution levels below a `width` × `height`
    /// original, and is scaled to what the original would give (`resampleReduced`).
    static func render(_ frame: DecodedFrame, display: DisplayAttributes, options: RenderingOptions,
                       reducedFrom full: (width: Int, height: Int, levels: Int)?) throws(DICOMError) -> RenderedImage {
        let d = frame.description
        let pixels = d.rows * d.columns
        let width = (d.bitsAllocated + 7) / 8
        guard [1, 2, 4].contains(width), frame.bytes.count >= pixels * d.samplesPerPixel * width else {
            throw DICOMError(.invalidValue, tag: .pixelData, message: "cannot render \(d.bitsAllocated)-bit samples")
        }
        let image: RenderedImage
        switch (d.samplesPerPixel, d.photometricInterpretation) {
        case (1, "PALETTE COLOR"):
            guard let palette = display.palette else {
                throw DICOMError(.invalidValue, tag: Tag(0x0028_1201), message: "PALETTE COLOR without usable lookup tables")
            }
            var out = [UInt8](repeating: 0, count: pixels * 3)
            let last = palette.red.count - 1
            for i in 0..<pixels {
                let index = min(max(sample(frame.bytes, i, width, d.isSigned) - palette.first, 0), last)
                out[3 * i] = palette.red[index]; out[3 * i + 1] = palette.green[index]; out[3 * i + 2] = palette.blue[index]
            }
            image = RenderedImage(width: d.columns, height: d.rows, components: 3, pixels: out)
        case (1, _):
            image = RenderedImage(width: d.columns, height: d.rows, components: 1, pixels: grayscale(frame, display: display, options: options))
        case (3, _):
            image = RenderedImage(width: d.columns, height: d.rows, components: 3, pixels: color(frame))
        default:
            throw DICOMError(.invalidValue, tag: .samplesPerPixel, message: "cannot render \(d.samplesPerPixel) samples per pixel")
        }
        guard let viewport = options.viewport else { return image }
        if let full {
            if let problem = viewport.problem(imageWidth: full.width, imageHeight: full.height) {
                throw DICOMError(.invalidValue, message: problem)
            }
            return resampleReduced(image, viewport: viewport, full: full)
        }
        return try resample(image, viewport: viewport)
    }

    @inline(__always)
    static func sample(_ bytes: [UInt8], _ i: Int, _ width: Int, _ signed: Bool) -> Int {
        switch width {
        case 1: return signed ? Int(Int8(bitPattern: bytes[i])) : Int(bytes[i])
        case 2:
            let v = UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8
            return signed ? Int(Int16(bitPattern: v)) : Int(v)
        default:
            let v = UInt32(bytes[4 * i]) | UInt32(bytes[4 * i + 1]) << 8 | UInt32(bytes[4 * i + 2]) << 16 | UInt32(bytes[4 * i + 3]) << 24
            return signed ? Int(Int32(bitPattern: v)) : Int(v)
        }
    }

    /// The VOI LUT functions of PS3.3 C.11.2.1.2, to 0...255.
    static func voi(_ x: Double, _ w: RenderingOptions.Window) -> Double {
        switch w.function {
        case .linear:
            let c = w.center - 0.5, half = (w.width - 1) / 2
            if x <= c - half { return 0 }
            if x > c + half { return 255 }
            return ((x - c) / max(w.width - 1, 1) + 0.5) * 255
        case .linearExact:
            if x <= w.center - w.width / 2 { return 0 }
            if x > w.center + w.width / 2 { return 255 }
            return ((x - w.center) / w.width + 0.5) * 255
        case .sigmoid:
            return 255 / (1 + exp(-4 * (x - w.center) / w.width))
        }
    }

    static func grayscale(_ frame: DecodedFrame, display: DisplayAttributes, options: RenderingOptions) -> [UInt8] {
        let d = frame.description
        let pixels = d.rows * d.columns
        let width = (d.bitsAllocated + 7) / 8
        let signed = d.isSigned
        var lo = Int.max, hi = Int.min
        for i in 0..<pixels {
            let v = sample(frame.bytes, i, width, signed)
            lo = min(lo, v); hi = max(hi, v)
        }
        let slope = display.rescaleSlope, intercept = display.rescaleIntercept
        // With no window anywhere, the frame's own range fills 0...255 (what viewers show first).
        let window = options.window ?? display.windows.first ?? {
            let a = Double(lo) * slope + intercept, b = Double(hi) * slope + intercept
            return RenderingOptions.Window(center: (min(a, b) + max(a, b)) / 2, width: max(abs(b - a), 1), function: .linearExact)
        }()
        let invert = d.photometricInterpretation == "MONOCHROME1"
        func toByte(_ v: Int) -> UInt8 {
            let x = Double(v) * slope + intercept
            var y = voi(x, window).rounded()
            // A hostile Rescale Slope can make the window infinite and the result NaN.
            if !y.isFinite { y = x > window.center ? 255 : 0 }
            let byte = UInt8(clamping: Int(y))
            return invert ? 255 - byte : byte
        }
        var out = [UInt8](repeating: 0, count: pixels)
        // Up to 2^16 distinct stored values: one table lookup per pixel instead of the arithmetic.
        if hi - lo < 1 << 17 {
            let table = (lo...hi).map(toByte)
            for i in 0..<pixels { out[i] = table[sample(frame.bytes, i, width, signed) - lo] }
        } else {
            for i in 0..<pixels { out[i] = toByte(sample(frame.bytes, i, width, signed)) }
        }
        return out
    }

    static func color(_ frame: DecodedFrame) -> [UInt8] {
        let d = frame.description
        let count = d.rows * d.columns * 3
        let width = (d.bitsAllocated + 7) / 8
        var out = [UInt8](repeating: 0, count: count)
        let shift = max(d.bitsStored - 8, 0)
        for i in 0..<count { out[i] = UInt8(clamping: sample(frame.bytes, i, width, false) >> shift) }
        if d.photometricInterpretation == "YBR_FULL" || d.photometricInterpretation == "YBR_FULL_422" {
            // PS3.3 C.7.6.3.1.2, inverted.
            for p in stride(from: 0, to: count, by: 3) {
                let y = Double(out[p]), cb = Double(out[p + 1]) - 128, cr = Double(out[p + 2]) - 128
                out[p] = UInt8(clamping: Int((y + 1.402 * cr).rounded()))
                out[p + 1] = UInt8(clamping: Int((y - 0.344136 * cb - 0.714136 * cr).rounded()))
                out[p + 2] = UInt8(clamping: Int((y + 1.772 * cb).rounded()))
            }
        }
        return out
    }

    /// Crops to the source region, flips when its width or height is negative, and scales to fit
    /// the viewport keeping the aspect ratio; each output pixel averages the source pixels it covers.
    static func resample(_ image: RenderedImage, viewport v: RenderingOptions.Viewport) throws(DICOMError) -> RenderedImage {
        if let problem = v.problem(imageWidth: image.width, imageHeight: image.height) {
            throw DICOMError(.invalidValue, message: problem)
        }
        let src = v.source ?? (0, 0, image.width, image.height)
        let flipX = src.width < 0, flipY = src.height < 0
        let sw = abs(src.width), sh = abs(src.height)
        let (ow, oh) = v.outputSize(sourceWidth: sw, sourceHeight: sh)
        let c = image.components
        var out = [UInt8](repeating: 0, count: ow * oh * c)
        // Source span of each output column and row: [start, end), at least one pixel. A flip reads
        // the spans from the far end.
        func spans(_ n: Int, _ source: Int) -> [(Int, Int)] {
            (0..<n).map { i in
                let a = Int((Double(i) * Double(source) / Double(n)).rounded(.down))
                let b = Int((Double(i + 1) * Double(source) / Double(n)).rounded(.up))
                return (min(a, source - 1), max(min(b, source), min(a, source - 1) + 1))
            }
        }
        let xs = spans(ow, sw), ys = spans(oh, sh)
        var sums = [Int](repeating: 0, count: c)
        for oy in 0..<oh {
            let (y0, y1) = ys[flipY ? oh - 1 - oy : oy]
            for ox in 0..<ow {
                let (x0, x1) = xs[flipX ? ow - 1 - ox : ox]
                for k in 0..<c { sums[k] = 0 }
                for y in y0..<y1 {
                    let sy = src.y + y
                    for x in x0..<x1 {
                        let sx = src.x + x
                        let base = (sy * image.width + sx) * c
                        for k in 0..<c { sums[k] += Int(image.pixels[base + k]) }
                    }
                }
                let n = (y1 - y0) * (x1 - x0)
                let base = (oy * ow + ox) * c
                for k in 0..<c { out[base + k] = UInt8((sums[k] + n / 2) / n) }
            }
        }
        return RenderedImage(width: ow, height: oh, components: c, pixels: out)
    }
}
