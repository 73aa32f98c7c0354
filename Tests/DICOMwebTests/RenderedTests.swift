import CompressNIO
import DICOMCore
import DICOMParser
@testable import DICOMweb
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PixelData
import TestSupport
import XCTest

final class RenderedTests: DICOMwebTestCase {
    var base: String { "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/1.2.3.30.1" }

    /// Width, height, channels and pixels of a PNG written by Tessera (8-bit, filter 0 on every row).
    static func decodePNG(_ bytes: [UInt8]) throws -> RenderedImage {
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var i = 8, width = 0, height = 0, channels = 0
        var idat = ByteBuffer()
        func be(_ at: Int) -> Int { Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3]) }
        while i + 8 <= bytes.count {
            let length = be(i), type = String(decoding: bytes[(i + 4)..<(i + 8)], as: UTF8.self)
            let data = Array(bytes[(i + 8)..<(i + 8 + length)])
            if type == "IHDR" { width = be(i + 8); height = be(i + 12); channels = data[9] == 2 ? 3 : 1 }
            if type == "IDAT" { idat.writeBytes(data) }
            i += 12 + length
        }
        let raw = Array(try idat.decompress(with: .zlib()).readableBytesView)
        var pixels: [UInt8] = []
        let stride = width * channels
        for y in 0..<height {
            XCTAssertEqual(raw[y * (stride + 1)], 0, "filter type")
            pixels += raw[(y * (stride + 1) + 1)..<((y + 1) * (stride + 1))]
        }
        return RenderedImage(width: width, height: height, components: channels, pixels: pixels)
    }

    func testRenderedInstanceHonoursWindowViewportQualityAndMediaType() async throws {
        let bytes = try Self.instance(sop: "1.2.3.30.1")
        let file = try DICOMFile.read(bytes: bytes)
        let frame = try FrameTable(file: file).decodeFrame(0)
        let display = DisplayAttributes(dataSet: file.dataSet)
        let windowed = { var o = RenderingOptions(); o.window = .init(center: 40, width: 400); return o }()
        try await withApp { client in
            _ = try await self.stow(client, [bytes])
            try await client.execute(uri: self.base + "/rendered", method: .get, headers: [.accept: "image/png"]) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.headers[.contentType], "image/png")
                let image = try Self.decodePNG(Array(r.body.readableBytesView))
                XCTAssertEqual(image, try Renderer.render(frame, display: display, options: RenderingOptions()))
            }
            try await client.execute(uri: self.base + "/rendered?window=40,400&accept=image/png", method: .get) { r in
                XCTAssertEqual(try Self.decodePNG(Array(r.body.readableBytesView)), try Renderer.render(frame, display: display, options: windowed))
            }
            try await client.execute(uri: self.base + "/rendered?viewport=64,64", method: .get, headers: [.accept: "image/png"]) { r in
                let image = try Self.decodePNG(Array(r.body.readableBytesView))
                XCTAssertEqual([image.width, image.height], [64, 64])
            }
            var sizes: [Int] = []
            for q in [10, 95] {
                try await client.execute(uri: self.base + "/rendered?quality=\(q)", method: .get) { r in
                    XCTAssertEqual(r.status, .ok)
                    XCTAssertEqual(r.headers[.contentType], "image/jpeg")
                    XCTAssertEqual(Array(r.body.readableBytesView.prefix(2)), [0xFF, 0xD8])
                    sizes.append(r.body.readableBytes)
                }
            }
            XCTAssertLessThan(sizes[0], sizes[1], "lower quality, fewer bytes")
            for (query, status) in [("window=abc", HTTPResponse.Status.badRequest), ("window=40,0", .badRequest), ("viewport=0,10", .badRequest),
                                    ("viewport=10,10,500,500,100,100", .badRequest), ("viewport=8192,8192", .badRequest),
                                    ("viewport=10,10,9223372036854775807,0,1,1", .badRequest), ("viewport=10,10,0,0,-9223372036854775808,1", .badRequest), ("quality=101", .badRequest), ("viewport=1,2,3", .badRequest)] {
                try await client.execute(uri: self.base + "/rendered?\(query)", method: .get) { XCTAssertEqual($0.status, status, query) }
            }
            try await client.execute(uri: self.base + "/rendered", method: .get, headers: [.accept: "image/gif"]) { XCTAssertEqual($0.status, .notAcceptable) }
            try await client.execute(uri: self.base + "/frames/2/rendered", method: .get) { XCTAssertEqual($0.status, .notFound) }
            try await client.execute(uri: self.base + "/frames/x/rendered", method: .get) { XCTAssertEqual($0.status, .badRequest) }
            // Work per request is bounded: a frame listed twice is refused (and five frames of 4096²
            // would be more than 64 megapixels).
            try await client.execute(uri: self.base + "/frames/1,1,1,1,1/rendered?viewport=4096,4096", method: .get) {
                XCTAssertEqual($0.status, .badRequest)
            }
        }
    }

    func testMultiFrameRenderingAndThumbnails() async throws {
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/emri_small_jpeg_2k_lossless.dcm") })
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let file = try DICOMFile.read(bytes: bytes)
        let table = try FrameTable(file: file)
        let display = DisplayAttributes(dataSet: file.dataSet)
        let ids = [Tag.studyInstanceUID, .seriesInstanceUID, .sopInstanceUID].map { file.dataSet.string($0)?.trimmingCharacters(in: "\0 ") ?? "" }
        let instance = "/dicomweb/studies/\(ids[0])/series/\(ids[1])/instances/\(ids[2])"
        try await withApp { client in
            _ = try await self.stow(client, [bytes, try Self.instance(sop: "1.2.3.30.1")])
            try await client.execute(uri: instance + "/frames/2,7/rendered", method: .get, headers: [.accept: "image/png"]) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(parts.count, 2)
                XCTAssertTrue(parts[1].headers.contains("image/png"))
                XCTAssertEqual(try Self.decodePNG(parts[1].body), try Renderer.render(try table.decodeFrame(6), display: display, options: RenderingOptions()))
            }
            // The thumbnail of a multi-frame instance is its middle frame in a 128-pixel box.
            let middle = (table.frames.count + 1) / 2
            let box = { var o = RenderingOptions(); o.viewport = .init(width: 128, height: 128); return o }()
            try await client.execute(uri: instance + "/thumbnail", method: .get, headers: [.accept: "image/png"]) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(try Self.decodePNG(Array(r.body.readableBytesView)),
                               try Renderer.render(try table.decodeFrame(middle - 1), display: display, options: box))
            }
            for uri in ["/dicomweb/studies/\(ids[0])/thumbnail", "/dicomweb/studies/\(ids[0])/series/\(ids[1])/thumbnail",
                        instance + "/frames/1/thumbnail?viewport=32,32"] {
                try await client.execute(uri: uri, method: .get, headers: [.accept: "image/png"]) { r in
                    XCTAssertEqual(r.status, .ok, uri)
                    let image = try Self.decodePNG(Array(r.body.readableBytesView))
                    XCTAssertEqual(max(image.width, image.height), uri.contains("32,32") ? 32 : 128, uri)
                }
            }
            try await client.execute(uri: "/dicomweb/studies/1.2.3.404/thumbnail", method: .get) { XCTAssertEqual($0.status, .notFound) }
        }
    }

    /// The instance's study, series and SOP Instance UIDs and its WADO-RS path.
    static func path(of bytes: [UInt8]) throws -> (study: String, series: String, instance: String) {
        let ds = try DICOMFile.read(bytes: bytes).dataSet
        let ids = [Tag.studyInstanceUID, .seriesInstanceUID, .sopInstanceUID].map { ds.string($0)?.trimmingCharacters(in: "\0 ") ?? "" }
        return ("/dicomweb/studies/\(ids[0])", "/dicomweb/studies/\(ids[0])/series/\(ids[1])",
                "/dicomweb/studies/\(ids[0])/series/\(ids[1])/instances/\(ids[2])")
    }

    /// PS3.18 §8.3.5.1 renders through the Modality and VOI LUTs; in an enhanced multi-frame image
    /// each frame has its own, in the Pixel Value Transformation (PS3.3 C.7.6.16.2.9) and Frame VOI
    /// LUT (C.7.6.16.2.10) functional groups: per-frame, else shared, else the top-level attributes.
    /// The real Enhanced CT keeps both groups shared; a variant gives each frame its own rescale and
    /// window, another has only top-level ones. pydicom + numpy render them independently
    /// (Tools/oracles/pydicom_frame_voi.py); every pixel agrees within one grey level.
    func testEnhancedMultiFrameFramesUseTheirOwnRescaleAndWindow() async throws {
        let original = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/eCT_Supplemental.dcm") })
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-voi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var paths = [original]
        for variant in ["per-frame", "top-level"] {
            paths.append(dir.appendingPathComponent("\(variant).dcm").path)
            try Corpus.oracle("pydicom_frame_voi.py", ["fixture", original, paths.last!, variant])
        }
        var expected: [[[UInt8]]] = []
        for (k, path) in paths.enumerated() {
            let out = dir.appendingPathComponent("\(k)")
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            let count = try XCTUnwrap(Int(String(decoding: try Corpus.oracle("pydicom_frame_voi.py", ["render", path, out.path]), as: UTF8.self)
                .trimmingCharacters(in: "\n ")))
            expected.append(try (0..<count).map { [UInt8](try Data(contentsOf: out.appendingPathComponent("\($0).raw"))) })
        }
        XCTAssertEqual(expected.map(\.count), [2, 2, 2])
        // The per-frame variant's frames are windowed differently: most pixels differ between them.
        XCTAssertGreaterThan(zip(expected[1][0], expected[1][1]).filter { abs(Int($0) - Int($1)) > 8 }.count, expected[1][0].count / 10)
        let files = try paths.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) }
        let references = expected, names = paths
        try await withApp { client in
            let (status, _) = try await self.stow(client, files)
            XCTAssertEqual(status, .ok)
            for (k, bytes) in files.enumerated() {
                let uri = try Self.path(of: bytes).instance + "/frames/1,2/rendered"
                try await client.execute(uri: uri, method: .get, headers: [.accept: "image/png"]) { r in
                    XCTAssertEqual(r.status, .ok, uri)
                    let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                    XCTAssertEqual(parts.count, 2, uri)
                    for (f, part) in parts.enumerated() {
                        let image = try Self.decodePNG(part.body)
                        XCTAssertEqual([image.width, image.height, image.components], [512, 512, 1])
                        let worst = zip(image.pixels, references[k][f]).map { abs(Int($0) - Int($1)) }.max() ?? 99
                        XCTAssertLessThanOrEqual(worst, 1, "\(names[k]) frame \(f + 1)")
                    }
                }
            }
        }
    }

    /// Rendered studies and series (PS3.18 §10.4.1.1.3): every frame of every image instance, one
    /// image per part of a multipart/related response; only multipart types are acceptable for them
    /// (PS3.18 §10.4.4, note to Table 10.4.4-1), and the whole response fits the per-request bound.
    func testRenderedStudyAndSeries() async throws {
        let other = Self.series + ".9"
        let singles = try [Self.instance(sop: "1.2.3.31.1"), Self.instance(sop: "1.2.3.31.2"), Self.instance(sop: "1.2.3.31.3", series: other)]
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/emri_small_jpeg_2k_lossless.dcm") })
        let multi = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let frames = try FrameTable(file: try DICOMFile.read(bytes: multi)).frames.count
        let study = "/dicomweb/studies/\(Self.study)", series = "\(study)/series/\(Self.series)"
        let png = "multipart/related; type=\"image/png\""
        try await withApp { client in
            _ = try await self.stow(client, singles + [multi])
            // Each part is the instance's own rendering, as /rendered of the instance gives it.
            var single: [[UInt8]] = []
            for bytes in singles {
                try await client.execute(uri: try Self.path(of: bytes).instance + "/rendered", method: .get, headers: [.accept: "image/png"]) {
                    single.append(Array($0.body.readableBytesView))
                }
            }
            for (uri, expected) in [(study, single), (series, Array(single.prefix(2)))] {
                try await client.execute(uri: uri + "/rendered", method: .get, headers: [.accept: png]) { r in
                    XCTAssertEqual(r.status, .ok, uri)
                    XCTAssertTrue(r.headers[.contentType]?.hasPrefix(png) == true, r.headers[.contentType] ?? "")
                    let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                    XCTAssertTrue(parts.allSatisfy { $0.headers.contains("Content-Type: image/png") })
                    XCTAssertEqual(parts.map(\.body).sorted { $0.lexicographicallyPrecedes($1) }, expected.sorted { $0.lexicographicallyPrecedes($1) }, uri)
                }
            }
            // A multi-frame instance contributes each of its frames; no Accept means JPEG.
            let multiStudy = try Self.path(of: multi).study
            try await client.execute(uri: multiStudy + "/rendered?viewport=64,64", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertTrue(r.headers[.contentType]?.hasPrefix("multipart/related; type=\"image/jpeg\"") == true)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(parts.count, frames)
                XCTAssertTrue(parts.allSatisfy { $0.body.prefix(2) == [0xFF, 0xD8] })
            }
            try await client.execute(uri: "\(study)/rendered?accept=\(png.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")", method: .get) {
                XCTAssertEqual($0.status, .ok, "the accept query parameter names multipart types too")
            }
            // JPEG and PNG are single images: a study cannot be sent as one.
            try await client.execute(uri: study + "/rendered", method: .get, headers: [.accept: "image/png"]) { XCTAssertEqual($0.status, .notAcceptable) }
            try await client.execute(uri: series + "/rendered", method: .get, headers: [.accept: "image/jpeg"]) { XCTAssertEqual($0.status, .notAcceptable) }
            // Frames × output pixels over 64 megapixels is refused before anything is rendered.
            try await client.execute(uri: multiStudy + "/rendered?viewport=4096,4096", method: .get) { XCTAssertEqual($0.status, .badRequest) }
            try await client.execute(uri: study + "/rendered?viewport=10,10,500,500,100,100", method: .get) { XCTAssertEqual($0.status, .badRequest) }
            try await client.execute(uri: "/dicomweb/studies/1.2.3.404/rendered", method: .get) { XCTAssertEqual($0.status, .notFound) }
            try await client.execute(uri: "\(study)/series/1.2.3.404/rendered", method: .get) { XCTAssertEqual($0.status, .notFound) }
        }
    }
}
