import DICOMCore
import DICOMParser
import Foundation
@testable import PixelData
import TestSupport
import XCTest

/// Reduced-resolution decoding for thumbnails and small viewports (issue 15 §3): JPEG 2000 and
/// HTJ2K frames decoded without their finest resolution levels (T.800 Annex B, "resolution
/// reduction"), checked against OpenJPEG's own `opj_decompress -r`, and rendered like full decodes.
final class ReducedResolutionTests: XCTestCase {
    static let jpeg2000Lossless = "1.2.840.10008.1.2.4.90"
    static let htj2kLossless = "1.2.840.10008.1.2.4.201"

    func corpusFile(_ name: String) throws -> String {
        try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/" + name) }, "\(name) is not in the corpus")
    }

    func thumbnail(_ side: Int = 128) -> RenderingOptions {
        var o = RenderingOptions()
        o.viewport = .init(width: side, height: side)
        return o
    }

    func testReduceFactorIsTheLargestWhoseImageStillCoversTheViewport() {
        func d(_ columns: Int, _ rows: Int, _ photometric: String = "MONOCHROME2") -> PixelDescription {
            PixelDescription(rows: rows, columns: columns, samplesPerPixel: 1, bitsAllocated: 16, bitsStored: 16, highBit: 15,
                             pixelRepresentation: 1, planarConfiguration: 0, photometricInterpretation: photometric, numberOfFrames: 1)
        }
        XCTAssertEqual(Renderer.reduceFactor(thumbnail(128), description: d(512, 512)), 2, "512 → 128: two levels")
        XCTAssertEqual(Renderer.reduceFactor(thumbnail(100), description: d(512, 512)), 2, "128 ≥ 100 > 64")
        XCTAssertEqual(Renderer.reduceFactor(thumbnail(129), description: d(512, 512)), 1)
        XCTAssertEqual(Renderer.reduceFactor(thumbnail(128), description: d(513, 513)), 2, "ceil(513 / 4) = 129 ≥ 128; ceil(513 / 8) = 65")
        XCTAssertEqual(Renderer.reduceFactor(thumbnail(128), description: d(1760, 1760)), 3, "ceil(1760 / 8) = 220; / 16 = 110 < 128")
        // A wide image: the viewport fits its width, so the height bounds nothing beyond the fit.
        XCTAssertEqual(Renderer.reduceFactor(thumbnail(128), description: d(1024, 256)), 3, "1024×256 fits as 128×32: 1024 / 8 = 128")
        XCTAssertEqual(Renderer.reduceFactor(thumbnail(600), description: d(512, 512)), 0, "an upscale decodes in full")
        XCTAssertEqual(Renderer.reduceFactor(RenderingOptions(), description: d(512, 512)), 0, "no viewport")
        XCTAssertEqual(Renderer.reduceFactor(thumbnail(128), description: d(512, 512, "PALETTE COLOR")), 0, "palette indices cannot be averaged")
        var cropped = thumbnail(128)
        cropped.viewport?.source = (0, 0, 256, 256)
        XCTAssertEqual(Renderer.reduceFactor(cropped, description: d(512, 512)), 0, "a source region stays in full-resolution coordinates")
    }

    /// Odd sizes round up at each level: ceil(w / 2^r) (T.800 B.5), for both decoders, and a
    /// request beyond the codestream's decomposition levels stops at them.
    func testOddSizesRoundUpAndReductionStopsAtTheDecompositionLevels() throws {
        let d = PixelDescription(rows: 301, columns: 509, samplesPerPixel: 1, bitsAllocated: 16, bitsStored: 12, highBit: 11,
                                 pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: "MONOCHROME2", numberOfFrames: 1)
        var native = [UInt8](repeating: 0, count: d.rows * d.columns * 2)
        for y in 0..<d.rows { for x in 0..<d.columns {
            let v = (x * 7 + y * 3) % 4096
            native[2 * (y * d.columns + x)] = UInt8(v & 0xFF); native[2 * (y * d.columns + x) + 1] = UInt8(v >> 8)
        } }
        for uid in [Self.jpeg2000Lossless, Self.htj2kLossless] {
            let encoded = try XCTUnwrap(PixelCodecs.encoder(for: uid)).encode(native, description: d).bytes
            for r in 1...3 {
                let frame = try PixelCodecs.decode(encoded, transferSyntax: uid, description: d, reduce: r)
                let side = 1 << r
                XCTAssertEqual([frame.description.columns, frame.description.rows], [(509 + side - 1) / side, (301 + side - 1) / side], "\(uid) reduce \(r)")
                XCTAssertEqual(frame.bytes.count, frame.description.rows * frame.description.columns * 2)
            }
            // Tessera encodes min(5, log2(301)) = 5 levels: asking for 9 decodes at 5.
            let deepest = try PixelCodecs.decode(encoded, transferSyntax: uid, description: d, reduce: 9)
            XCTAssertEqual([deepest.description.columns, deepest.description.rows], [16, 10], uid)
        }
    }

    /// OpenJPEG's reference decoder, `opj_decompress -r 2`, writes the same reduced samples (PGX,
    /// signed big-endian): the J2K lossless CT of pydicom-data, and the same CT as HTJ2K (OpenJPH's
    /// reduced reconstruction against OpenJPEG's).
    func testReducedSamplesMatchOpjDecompress() throws {
        let file = try DICOMFile.read(path: try corpusFile("693_J2KR.dcm"))
        let table = try FrameTable(file: file)
        let j2k = try table.encodedFrame(0)
        let native = try table.decodeFrame(0)
        let htj2k = try HTJ2KCodec().encode(native.bytes, description: native.description).bytes
        for (name, uid, codestream) in [("J2K", Self.jpeg2000Lossless, j2k), ("HTJ2K", Self.htj2kLossless, htj2k)] {
            let ours = try PixelCodecs.decode(codestream, transferSyntax: uid, description: table.description, reduce: 2)
            XCTAssertEqual([ours.description.columns, ours.description.rows], [128, 128], name)
            let reference = try opjDecompress(codestream, reduce: 2)
            XCTAssertEqual([reference.width, reference.height], [128, 128], name)
            let samples = (0..<(128 * 128)).map { Int(Int16(bitPattern: UInt16(ours.bytes[2 * $0]) | UInt16(ours.bytes[2 * $0 + 1]) << 8)) }
            XCTAssertEqual(samples, reference.samples, "\(name): reduced samples as opj_decompress -r 2 writes them")
        }
    }

    /// Samples of `opj_decompress -r reduce` on one codestream (PGX output: "PG ML ±depth w h\n", big endian).
    func opjDecompress(_ codestream: [UInt8], reduce: Int, component: Int = 0) throws -> (width: Int, height: Int, samples: [Int]) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-opj-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.j2k")
        var bytes = codestream
        while bytes.last == 0 { bytes.removeLast() }  // the DICOM fragment's even-length pad
        try Data(bytes).write(to: input)
        try Corpus.run(try Corpus.tool("opj_decompress"), ["-i", input.path, "-o", dir.appendingPathComponent("out.pgx").path, "-r", String(reduce)])
        let pgx = [UInt8](try Data(contentsOf: dir.appendingPathComponent("out_\(component).pgx")))
        let newline = try XCTUnwrap(pgx.firstIndex(of: 0x0A))
        let fields = String(decoding: pgx[..<newline], as: UTF8.self).split(separator: " ")
        let signed = fields.contains("-")
        let numbers = fields.compactMap { Int($0) }
        let (depth, width, height) = (numbers[0], numbers[1], numbers[2])
        let width2 = depth > 8 ? 2 : 1
        let data = pgx[(newline + 1)...].map { $0 }
        let samples = (0..<(width * height)).map { i -> Int in
            var v = 0
            for b in 0..<width2 { v = v << 8 | Int(data[i * width2 + b]) }
            return signed && v >= 1 << (8 * width2 - 1) ? v - (1 << (8 * width2)) : v
        }
        return (width, height, samples)
    }

    /// A thumbnail from the reduced decode against one rendered from the full decode, per pixel
    /// in grey levels after the same window, rescale and inversion.
    func difference(_ encoded: [UInt8], _ uid: String, _ d: PixelDescription, _ display: DisplayAttributes,
                    _ options: RenderingOptions) throws -> (max: Int, mean: Double, reduced: Bool) {
        let full = try Renderer.render(try PixelCodecs.decode(encoded, transferSyntax: uid, description: d), display: display, options: options)
        let reduced = try Renderer.render(encoded: encoded, transferSyntax: uid, description: d, display: display, options: options)
        XCTAssertEqual([reduced.width, reduced.height, reduced.components], [full.width, full.height, full.components])
        let diffs = zip(full.pixels, reduced.pixels).map { abs(Int($0) - Int($1)) }
        let levels = Renderer.reduceFactor(options, description: d)
        let decoded = try PixelCodecs.decode(encoded, transferSyntax: uid, description: d, reduce: levels)
        return (diffs.max() ?? 0, Double(diffs.reduce(0, +)) / Double(max(diffs.count, 1)), decoded.description.columns < d.columns)
    }

    /// Where the image is smooth at the scale of the discarded levels, the reduced thumbnail is
    /// within one grey level of the full one; this holds for the window of the data set, a
    /// requested one and MONOCHROME1, at an odd size, J2K and HTJ2K alike.
    func testSmoothImagesRenderWithinOneGreyLevelOfTheFullDecode() throws {
        for (columns, rows, photometric) in [(512, 512, "MONOCHROME2"), (509, 301, "MONOCHROME1")] {
            let d = PixelDescription(rows: rows, columns: columns, samplesPerPixel: 1, bitsAllocated: 16, bitsStored: 16, highBit: 15,
                                     pixelRepresentation: 1, planarConfiguration: 0, photometricInterpretation: photometric, numberOfFrames: 1)
            var native = [UInt8](repeating: 0, count: rows * columns * 2)
            for y in 0..<rows { for x in 0..<columns {
                // A smooth CT-like field: -1000 HU at the corner rising by 800 (a gradient and a gentle bump).
                let v = Int16(-1000 + (x + y) * 800 / (columns + rows) + Int(100 * sin(Double(x) / 100) * cos(Double(y) / 110)))
                let u = UInt16(bitPattern: v)
                native[2 * (y * columns + x)] = UInt8(u & 0xFF); native[2 * (y * columns + x) + 1] = UInt8(u >> 8)
            } }
            var display = DisplayAttributes()
            display.rescaleIntercept = 0
            display.windows = [.init(center: 0, width: 2000)]
            for uid in [Self.jpeg2000Lossless, Self.htj2kLossless] {
                let encoded = try XCTUnwrap(PixelCodecs.encoder(for: uid)).encode(native, description: d).bytes
                for (label, window) in [("data set window", nil), ("requested 40/400", RenderingOptions.Window(center: 40, width: 400)) as (String, RenderingOptions.Window?)] {
                    var options = thumbnail(128)
                    options.window = window
                    let diff = try difference(encoded, uid, d, display, options)
                    XCTAssertTrue(diff.reduced, "\(uid) \(columns)×\(rows): decoded at reduced resolution")
                    XCTAssertLessThanOrEqual(diff.max, 1, "\(uid) \(columns)×\(rows) \(photometric) \(label): max difference in grey levels")
                }
            }
        }
    }

    /// Real CTs (pydicom-data's J2K lossless and lossy CT, and the lossless one as HTJ2K): the
    /// thumbnail is decoded at a quarter of the resolution and renders as the full decode does,
    /// for the data set's window and narrow requested ones that magnify the sharp edges (the -2000
    /// outside the scanned circle, bone). The full path halves stored values with the same 5/3
    /// low band the codestream holds (Renderer+WaveletScaling), so a lossless codestream gives the
    /// same pixels. So does 693_J2KI: lossy by its rate, but its codestream uses the reversible
    /// 5/3 transform (COD).
    func testRealCTThumbnailsDecodeAtReducedResolutionWithinOneGreyLevelOfTheFullDecode() throws {
        let lossless = try DICOMFile.read(path: try corpusFile("693_J2KR.dcm"))
        let table = try FrameTable(file: lossless)
        let native = try table.decodeFrame(0)
        var cases: [(String, [UInt8], String, PixelDescription, DisplayAttributes)] = [
            ("693_J2KR", try table.encodedFrame(0), table.transferSyntax.uid, table.description, DisplayAttributes(dataSet: lossless.dataSet)),
            ("693_J2KR as HTJ2K", try HTJ2KCodec().encode(native.bytes, description: native.description).bytes, Self.htj2kLossless,
             table.description, DisplayAttributes(dataSet: lossless.dataSet)),
        ]
        for name in ["693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm"] {
            let file = try DICOMFile.read(path: try corpusFile(name))
            let t = try FrameTable(file: file)
            cases.append((name, try t.encodedFrame(0), t.transferSyntax.uid, t.description, DisplayAttributes(dataSet: file.dataSet)))
        }
        for (name, encoded, uid, d, display) in cases {
            for window in [nil, RenderingOptions.Window(center: 40, width: 400), RenderingOptions.Window(center: 300, width: 1500)] {
                var options = thumbnail(128)
                options.window = window
                let diff = try difference(encoded, uid, d, display, options)
                // J2K_pixelrep_mismatch's codestream is unsigned, its Pixel Representation signed:
                // reduced samples would be averages across the wrap, so it decodes in full.
                XCTAssertEqual(diff.reduced, name != "J2K_pixelrep_mismatch.dcm", name)
                XCTAssertLessThanOrEqual(diff.max, 1, "\(name) window \(String(describing: window)): max difference in grey levels")
                print("reduced thumbnail \(name) window \(window.map { "\($0.center)/\($0.width)" } ?? "file"): max \(diff.max), mean \(diff.mean)")
            }
        }
    }

    /// The full path's halving is the 5/3 low band of T.800 F.4.8.2: OpenJPEG's reference decoder
    /// (`opj_decompress -r`) reconstructs the same samples from a lossless codestream of the image,
    /// for pydicom-data's uncompressed CT (signed, 128²), the J2K CT's pixels (512²), and an odd-sized
    /// unsigned 12-bit image of steps and noise reaching the range's ends, halved up to the encoder's 5 levels.
    func testWaveletHalvingMatchesOpenJPEGReducedReconstruction() throws {
        let ct = try FrameTable(file: try DICOMFile.read(path: try corpusFile("CT_small.dcm")))
        let j2k = try FrameTable(file: try DICOMFile.read(path: try corpusFile("693_J2KR.dcm")))
        let odd = PixelDescription(rows: 301, columns: 509, samplesPerPixel: 1, bitsAllocated: 16, bitsStored: 12, highBit: 11,
                                   pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: "MONOCHROME2", numberOfFrames: 1)
        var oddPixels = [UInt8](repeating: 0, count: 301 * 509 * 2)
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<(301 * 509) {
            // Edges as sharp as they come: noise over steps, to the 12-bit range's ends.
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let v = min(max((i % 509 < 250 ? 4000 : 30) + Int(seed >> 58) - 32, 0), 4095)
            oddPixels[2 * i] = UInt8(v & 0xFF); oddPixels[2 * i + 1] = UInt8(v >> 8)
        }
        let frames = [("CT_small", try ct.decodeFrame(0), [1, 2, 3]), ("693_J2KR", try j2k.decodeFrame(0), [2]),
                      ("509×301 12-bit", DecodedFrame(bytes: oddPixels, description: odd), [1, 3, 5])]
        for (name, frame, levels) in frames {
            let codestream = try XCTUnwrap(PixelCodecs.encoder(for: Self.jpeg2000Lossless)).encode(frame.bytes, description: frame.description).bytes
            for r in levels {
                let ours = try XCTUnwrap(Renderer.waveletLowBand(frame, levels: r), name)
                let reference = try opjDecompress(codestream, reduce: r)
                XCTAssertEqual([ours.description.columns, ours.description.rows], [reference.width, reference.height], "\(name) r \(r)")
                let signed = frame.description.isSigned
                let samples = (0..<(ours.description.rows * ours.description.columns)).map {
                    Renderer.sample(ours.bytes, $0, 2, signed)
                }
                XCTAssertEqual(samples, reference.samples, "\(name): halved \(r) times as opj_decompress -r \(r) reconstructs")
            }
        }
    }

    /// The lifting step by hand at the lengths where the symmetric extension does all the work
    /// (T.800 F.4.8.1-2): one sample is its own low band; [10, 20] has d(1) = 10 mirrored to
    /// d(-1), so s(0) = 10 + ⌊(10 + 10 + 2) / 4⌋ = 15; [10, 20, 40] has d(1) = 20 - ⌊50 / 2⌋ = -5,
    /// s(0) = 10 + ⌊(-5 - 5 + 2) / 4⌋ = 8 and s(1) = 40 + ⌊(-5 - 5 + 2) / 4⌋ = 38 (d(3) = d(1)).
    func testTheLowBandAtLengthsOneTwoAndThree() {
        var low: [Int32] = []
        Renderer.lowBand([7], into: &low)
        XCTAssertEqual(low, [7])
        Renderer.lowBand([10, 20], into: &low)
        XCTAssertEqual(low, [15])
        Renderer.lowBand([10, 20, 40], into: &low)
        XCTAssertEqual(low, [8, 38])
        // A 1 × 3 column halves vertically the same way; a 2 × 1 row horizontally.
        XCTAssertEqual(Renderer.halve([10, 20, 40], width: 1, height: 3), [8, 38])
        XCTAssertEqual(Renderer.halve([10, 20], width: 2, height: 1), [15])
    }

    /// Three components are halved each on its own (interleaved samples, 8 bits): against
    /// `opj_decompress -r` on a codestream without a colour transform (YBR_FULL is not RGB, so no
    /// RCT), component by component.
    func testThreeComponentsAreHalvedEachOnItsOwn() throws {
        let d = PixelDescription(rows: 97, columns: 131, samplesPerPixel: 3, bitsAllocated: 8, bitsStored: 8, highBit: 7,
                                 pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: "YBR_FULL", numberOfFrames: 1)
        var pixels = [UInt8](repeating: 0, count: 97 * 131 * 3)
        for i in 0..<(97 * 131) {
            let (x, y) = (i % 131, i / 131)
            pixels[3 * i] = UInt8((x * 2) & 0xFF); pixels[3 * i + 1] = x > 60 ? 250 : 5; pixels[3 * i + 2] = UInt8((x ^ y) & 0xFF)
        }
        let codestream = try XCTUnwrap(PixelCodecs.encoder(for: Self.jpeg2000Lossless)).encode(pixels, description: d).bytes
        let ours = try XCTUnwrap(Renderer.waveletLowBand(DecodedFrame(bytes: pixels, description: d), levels: 2))
        XCTAssertEqual([ours.description.columns, ours.description.rows], [33, 25])
        for k in 0..<3 {
            let reference = try opjDecompress(codestream, reduce: 2, component: k)
            let component = (0..<(33 * 25)).map { Int(ours.bytes[3 * $0 + k]) }
            XCTAssertEqual(component, reference.samples, "component \(k)")
        }
    }

    /// A binary image (1 bit stored, unpacked to 8-bit) is not halved by the wavelet: its low band
    /// rounded back to 0 or 1 would drop a 1-pixel line on an odd column. The box average of the
    /// windowed pixels keeps it as grey in the thumbnail.
    func testABinaryImageKeepsAThinLineInItsThumbnail() throws {
        let d = PixelDescription(rows: 64, columns: 64, samplesPerPixel: 1, bitsAllocated: 8, bitsStored: 1, highBit: 0,
                                 pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: "MONOCHROME2", numberOfFrames: 1)
        var pixels = [UInt8](repeating: 0, count: 64 * 64)
        for y in 0..<64 { pixels[y * 64 + 33] = 1 }
        XCTAssertEqual(Renderer.reduceFactor(thumbnail(16), description: d), 0)
        var display = DisplayAttributes()
        display.windows = [.init(center: 0.5, width: 1, function: .linearExact)]
        let image = try Renderer.render(DecodedFrame(bytes: pixels, description: d), display: display, options: thumbnail(16))
        XCTAssertEqual([image.width, image.height], [16, 16])
        // Column 33 falls in output column 8 (source columns 32-35): a quarter lit.
        XCTAssertGreaterThan(image.pixels[8], 0, "the line is still there")
        XCTAssertEqual(image.pixels[7], 0)
    }

    /// A viewport the image cannot give is refused by the library as well, halved or not.
    func testAnImpossibleViewportIsRefusedOnTheHalvedPath() throws {
        let d = PixelDescription(rows: 512, columns: 512, samplesPerPixel: 1, bitsAllocated: 16, bitsStored: 16, highBit: 15,
                                 pixelRepresentation: 1, planarConfiguration: 0, photometricInterpretation: "MONOCHROME2", numberOfFrames: 1)
        let frame = DecodedFrame(bytes: [UInt8](repeating: 0, count: 512 * 512 * 2), description: d)
        var options = RenderingOptions()
        options.viewport = .init(width: 0, height: 64)
        XCTAssertThrowsError(try Renderer.render(frame, display: DisplayAttributes(), options: options))
    }

    /// Where the codestream's low band is not the 5/3 low band of the decoded image, the reduced
    /// thumbnail is close to the full one but not the same: an irreversible 9/7 transform
    /// (JPEG2000.dcm), tiles transformed each on its own plus a colour transform
    /// (GDCMJ2K_TextGBR.dcm), the reversible colour transform alone (examples_jpeg2k.dcm), whose
    /// rounding does not commute with the low band. Measured (64-px thumbnails, grey levels):
    /// 9/7 mean 4.7 / max 22, tiles + colour mean 0.09 / max 11, colour mean 0.09 / max 3. They
    /// keep the reduced decode, which is what makes a series' thumbnails cheap.
    func testOtherCodestreamsRenderCloseToTheFullDecode() throws {
        for (name, bound) in [("JPEG2000.dcm", 6.0), ("GDCMJ2K_TextGBR.dcm", 0.5), ("examples_jpeg2k.dcm", 0.5)] {
            let file = try DICOMFile.read(path: try corpusFile(name))
            let t = try FrameTable(file: file)
            let diff = try difference(try t.encodedFrame(0), t.transferSyntax.uid, t.description, DisplayAttributes(dataSet: file.dataSet), thumbnail(64))
            print("reduced thumbnail \(name): max \(diff.max), mean \(diff.mean), reduced \(diff.reduced)")
            XCTAssertTrue(diff.reduced, name)
            XCTAssertLessThanOrEqual(diff.mean, bound, name)
        }
    }
}
