import DICOMCore
import DICOMParser
import Foundation
@testable import PixelData
import TestSupport
import XCTest

/// Rendered images against DCMTK's dcm2pnm, which implements the same PS3.3 pipeline (Modality
/// LUT, VOI window, MONOCHROME1 inversion, palette) and writes plain PGM/PPM.
final class RenderingTests: XCTestCase {
    func corpusFile(_ name: String) throws -> String {
        try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/" + name) }, "\(name) is not in the corpus")
    }

    /// dcm2pnm's rendering of `path` with `options`, as (width, height, components, pixels).
    func dcmtk(_ path: String, _ options: [String]) throws -> RenderedImage {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-pnm-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try Corpus.run(try Corpus.tool("dcm2pnm"), options + [path, out])
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
        // "P5\n<w> <h>\n255\n" then the samples; P6 is RGB.
        var fields: [String] = []
        var i = 0
        while fields.count < 4 {
            var token = ""
            while i < bytes.count, bytes[i] != 0x0A, bytes[i] != 0x20 { token.append(Character(UnicodeScalar(bytes[i]))); i += 1 }
            i += 1
            if !token.isEmpty { fields.append(token) }
        }
        let width = try XCTUnwrap(Int(fields[1])), height = try XCTUnwrap(Int(fields[2]))
        let components = fields[0] == "P6" ? 3 : 1
        return RenderedImage(width: width, height: height, components: components, pixels: Array(bytes[i...]))
    }

    func ours(_ path: String, window: RenderingOptions.Window? = nil, frame: Int = 0) throws -> RenderedImage {
        let file = try DICOMFile.read(path: path)
        var options = RenderingOptions()
        options.window = window
        return try Renderer.render(try FrameTable(file: file).decodeFrame(frame), display: DisplayAttributes(dataSet: file.dataSet), options: options)
    }

    /// Largest per-sample difference; rounding in the two pipelines may differ by one.
    func assertClose(_ a: RenderedImage, _ b: RenderedImage, tolerance: Int = 1, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual([a.width, a.height, a.components], [b.width, b.height, b.components], what, file: file, line: line)
        guard a.pixels.count == b.pixels.count else { return XCTFail("\(what): \(a.pixels.count) vs \(b.pixels.count) samples", file: file, line: line) }
        let worst = zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, what, file: file, line: line)
    }

    func testWindowsFromTheFileMatchDCMTK() throws {
        // MONOCHROME2 and MONOCHROME1 (inverted), native and JPEG 2000.
        for name in ["MR2_UNCR.dcm", "RG3_UNCR.dcm", "RG1_UNCR.dcm", "693_UNCR.dcm", "MR_small.dcm"] {
            let path = try corpusFile(name)
            assertClose(try ours(path), try dcmtk(path, ["+Wi", "1"]), name)
        }
        // DCMTK has no JPEG 2000 decoder: the lossless file renders like its uncompressed twin.
        for name in ["RG3_J2KR.dcm", "MR2_J2KR.dcm"] {
            let twin = try corpusFile(name.replacingOccurrences(of: "_J2KR", with: "_UNCR"))
            assertClose(try ours(try corpusFile(name)), try dcmtk(twin, ["+Wi", "1"]), name)
        }
    }

    func testRequestedWindowAndFunctionsMatchDCMTK() throws {
        let ct = try corpusFile("CT_small.dcm")  // signed, rescaled to HU
        assertClose(try ours(ct, window: .init(center: 40, width: 400)), try dcmtk(ct, ["+Ww", "40", "400"]), "CT 40/400")
        assertClose(try ours(ct, window: .init(center: 100, width: 600)), try dcmtk(ct, ["+Ww", "100", "600"]), "CT 100/600")
        assertClose(try ours(ct, window: .init(center: 40, width: 400, function: .sigmoid)),
                    try dcmtk(ct, ["+Ww", "40", "400", "+Wfs"]), "CT sigmoid")
        // No window anywhere: the frame's own range.
        assertClose(try ours(ct), try dcmtk(ct, ["+Wm"]), "CT min-max")
    }

    func testColourMatchesDCMTK() throws {
        for name in ["examples_palette.dcm", "SC_rgb.dcm", "US1_UNCR.dcm", "SC_ybr_full_422_uncompressed.dcm"] {
            let path = try corpusFile(name)
            assertClose(try ours(path), try dcmtk(path, []), tolerance: 2, name)
        }
        let palette = try ours(try corpusFile("examples_palette.dcm"))
        XCTAssertEqual(palette.components, 3)
        XCTAssertGreaterThan(Set(palette.pixels).count, 16, "a palette image renders in many colours")
    }

    func testViewportCropsFlipsAndScales() throws {
        // 4×2 gray: each output pixel of a 2×1 viewport averages a 2×2 block.
        let image = RenderedImage(width: 4, height: 2, components: 1, pixels: [0, 10, 100, 110, 20, 30, 120, 130])
        XCTAssertEqual(try Renderer.resample(image, viewport: .init(width: 2, height: 2)).pixels, [15, 115], "fits 2×1, aspect kept")
        XCTAssertEqual(try Renderer.resample(image, viewport: .init(width: 8, height: 8)).width, 8, "scaled up to fit")
        XCTAssertEqual(try Renderer.resample(image, viewport: .init(width: 2, height: 2, source: (2, 0, 2, 2))).pixels, [100, 110, 120, 130])
        XCTAssertEqual(try Renderer.resample(image, viewport: .init(width: 2, height: 1, source: (2, 0, 2, 2))).pixels, [115], "crop, then fit")
        XCTAssertEqual(try Renderer.resample(image, viewport: .init(width: 4, height: 2, source: (0, 0, -4, 2))).pixels,
                       [110, 100, 10, 0, 130, 120, 30, 20], "negative width flips")
        XCTAssertEqual(try Renderer.resample(image, viewport: .init(width: 4, height: 2, source: (0, 0, 4, -2))).pixels,
                       [20, 30, 120, 130, 0, 10, 100, 110], "negative height flips")
        XCTAssertThrowsError(try Renderer.resample(image, viewport: .init(width: 2, height: 2, source: (3, 0, 2, 2))))
        XCTAssertThrowsError(try Renderer.resample(image, viewport: .init(width: 0, height: 2)))
        XCTAssertThrowsError(try Renderer.resample(image, viewport: .init(width: 100_000, height: 2)))
        XCTAssertThrowsError(try Renderer.resample(image, viewport: .init(width: 8192, height: 8192)), "a 4×2 image blown up to 8192×4096 is refused")
    }

    func testPNGAndJPEGOutputsDecodeBack() throws {
        let image = try ours(try corpusFile("MR2_UNCR.dcm"))
        let png = try image.png()
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        // Pillow decodes the PNG to exactly our pixels and the JPEG to nearly them.
        let jpeg = try image.jpeg(quality: 95)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(png).write(to: dir.appendingPathComponent("a.png"))
        try Data(jpeg).write(to: dir.appendingPathComponent("a.jpg"))
        try Data(image.pixels).write(to: dir.appendingPathComponent("a.raw"))
        let script = """
            import sys, numpy as np
            from PIL import Image
            d = sys.argv[1]
            raw = np.fromfile(d + '/a.raw', dtype=np.uint8)
            png = np.asarray(Image.open(d + '/a.png'))
            jpg = np.asarray(Image.open(d + '/a.jpg'))
            print(png.shape[1], png.shape[0], int((png.reshape(-1) != raw).sum()), round(float(np.abs(jpg.reshape(-1).astype(int) - raw).mean()), 3))
            """
        let out = String(decoding: try Corpus.run(Corpus.python, ["-c", script, dir.path]), as: UTF8.self).split(separator: " ")
        XCTAssertEqual(out.count, 4)
        XCTAssertEqual(Int(out[0]), image.width)
        XCTAssertEqual(Int(out[1]), image.height)
        XCTAssertEqual(Int(out[2]), 0, "PNG is lossless")
        XCTAssertLessThan(Double(out[3].trimmingCharacters(in: .whitespacesAndNewlines)) ?? 99, 2.0, "JPEG at quality 95 stays close")
    }

    func testHostileDisplayAttributesNeitherTrapNorIndexOutOfRange() throws {
        let d = PixelDescription(rows: 2, columns: 2, samplesPerPixel: 1, bitsAllocated: 16, bitsStored: 16, highBit: 15,
                                 pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: "MONOCHROME2", numberOfFrames: 1)
        let frame = DecodedFrame(bytes: [0, 0, 1, 0, 2, 0, 0xFF, 0xFF], description: d)
        var display = DisplayAttributes()
        display.rescaleSlope = 1e308  // the fallback window becomes infinite
        let image = try Renderer.render(frame, display: display, options: RenderingOptions())
        XCTAssertEqual(image.pixels.count, 4)

        // Red, Green and Blue tables that disagree in size are refused, not indexed past the end.
        func us(_ tag: UInt32, _ values: [UInt16]) -> DataElement {
            DataElement(tag: Tag(tag), vr: .US, value: .bytes(values.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }))
        }
        func ow(_ tag: UInt32, _ count: Int) -> DataElement {
            DataElement(tag: Tag(tag), vr: .OW, value: .bytes([UInt8](repeating: 0x7F, count: 2 * count)))
        }
        let mismatched = DataSet(elements: [us(0x0028_1101, [256, 0, 16]), us(0x0028_1102, [16, 0, 16]), us(0x0028_1103, [256, 0, 16]),
                                            ow(0x0028_1201, 256), ow(0x0028_1202, 16), ow(0x0028_1203, 256)])
        XCTAssertNil(DisplayAttributes(dataSet: mismatched).palette)
        let matching = DataSet(elements: [us(0x0028_1101, [16, 0, 16]), us(0x0028_1102, [16, 0, 16]), us(0x0028_1103, [16, 0, 16]),
                                          ow(0x0028_1201, 16), ow(0x0028_1202, 16), ow(0x0028_1203, 16)])
        XCTAssertEqual(DisplayAttributes(dataSet: matching).palette?.green.count, 16)
    }

    /// PS3.3 C.7.6.16.2.9 / C.7.6.16.2.10: a frame's Pixel Value Transformation and Frame VOI LUT
    /// come from its Per-frame Functional Groups item, else the Shared one, else the top level.
    func testFrameDisplayAttributesComeFromPerFrameThenSharedThenTopLevel() throws {
        func ds(_ tag: UInt32, _ value: String) -> DataElement {
            DataElement(tag: Tag(tag), vr: .DS, value: .bytes(Array((value.count % 2 == 1 ? value + " " : value).utf8)))
        }
        func sequence(_ tag: UInt32, _ items: [DataSet]) -> DataElement { DataElement(tag: Tag(tag), vr: .SQ, value: .sequence(items)) }
        func rescale(_ slope: String, _ intercept: String) -> DataElement {
            sequence(0x0028_9145, [DataSet(elements: [ds(0x0028_1052, intercept), ds(0x0028_1053, slope)])])
        }
        func window(_ center: String, _ width: String) -> DataElement {
            sequence(0x0028_9132, [DataSet(elements: [ds(0x0028_1050, center), ds(0x0028_1051, width)])])
        }
        let top = [ds(0x0028_1050, "10"), ds(0x0028_1051, "20"), ds(0x0028_1052, "-5"), ds(0x0028_1053, "3")]
        let shared = sequence(0x5200_9229, [DataSet(elements: [rescale("2", "-1024")])])
        let perFrame = sequence(0x5200_9230, [DataSet(elements: [rescale("4", "-8"), window("40", "400")]), DataSet(elements: [window("300", "1500")])])
        let image = DataSet(elements: top + [shared, perFrame])
        let base = DisplayAttributes(dataSet: image)
        let first = base.frame(0, of: image), second = base.frame(1, of: image), beyond = base.frame(5, of: image)
        XCTAssertEqual([first.rescaleSlope, first.rescaleIntercept, first.windows[0].center, first.windows[0].width], [4, -8, 40, 400], "per-frame")
        XCTAssertEqual([second.rescaleSlope, second.rescaleIntercept, second.windows[0].center, second.windows[0].width], [2, -1024, 300, 1500],
                       "shared rescale, per-frame window")
        XCTAssertEqual([beyond.rescaleSlope, beyond.rescaleIntercept, beyond.windows[0].center, beyond.windows[0].width], [2, -1024, 10, 20],
                       "shared rescale, top-level window")
        let classic = DataSet(elements: top)
        let plain = DisplayAttributes(dataSet: classic).frame(0, of: classic)
        XCTAssertEqual([plain.rescaleSlope, plain.rescaleIntercept, plain.windows[0].center], [3, -5, 10], "top level")
    }
}
