import CCodecs
import DICOMCore
import DICOMParser
import Foundation
@testable import PixelData
import TestSupport
import XCTest

/// 12-bit JPEG Extended (1.2.840.10008.1.2.4.51, processes 2 and 4; PS3.5 §A.4.1 and Table A-3)
/// through DCMTK's libijg12, against DCMTK's dcmdjpeg: every frame's samples must be identical, on
/// the corpus's 12-bit files and on files dcmcjpeg encodes at test time (multi-frame, split
/// fragments, MONOCHROME1, 12-bit colour with YCbCr 4:2:2 and 4:4:4 and untransformed RGB, odd
/// sizes). 8-bit .51 streams keep going through libjpeg-turbo. Hostile 12-bit streams throw.
final class JPEG12Tests: XCTestCase {
    static let extended = "1.2.840.10008.1.2.4.51"

    func testCorpus12BitFilesMatchDCMTK() throws {
        var covered: [String] = []
        for path in try Corpus.files() {
            guard let file = try? DICOMFile.read(path: path, options: .headerOnly), file.transferSyntax.uid == Self.extended,
                  (file.dataSet.integer(.bitsStored) ?? 0) > 8 else { continue }
            try assertMatchesDCMTK(path)
            covered.append(URL(fileURLWithPath: path).lastPathComponent)
        }
        // JPEG-lossy.dcm's scan header breaks T.81 B.2.3 for sequential JPEG; pylibjpeg refuses it,
        // libijg12 and dcmdjpeg warn and decode it.
        XCTAssertEqual(Set(covered), ["JPEG-lossy.dcm", "JPGExtended.dcm"])
    }

    func testDCMTKEncoded12BitFilesMatchDCMTK() throws {
        let variants: [(source: String, options: [String])] = [
            ("emri_small.dcm", ["+ee"]),                  // 10 frames, MONOCHROME2, 12 of 16 bits
            ("emri_small.dcm", ["+ee", "+fs", "1"]),      // frames split into 1 KB fragments
            ("emri_small.dcm", ["+ee", "+q", "40"]),      // coarse quantisation: large coefficients
            ("MR2_UNCR.dcm", ["+ee"]),
            ("6154", ["+ee"]),                            // CR, MONOCHROME1
            ("SC_rgb.dcm", ["+ee", "+bt"]),               // 12-bit YBR_FULL_422 (4:2:2 upsampled)
            ("SC_rgb_2frame.dcm", ["+ee", "+bt", "+s4"]), // 12-bit YBR_FULL, 2 frames
            ("SC_rgb.dcm", ["+ee", "+bt", "+cr"]),        // 12-bit RGB, no colour transform
            ("SC_rgb_small_odd.dcm", ["+ee", "+bt"]),     // 3×3: partial MCUs
        ]
        let dcmcjpeg = try Corpus.tool("dcmcjpeg")
        let corpus = try Corpus.files()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (index, (name, options)) in variants.enumerated() {
            let source = try XCTUnwrap(corpus.first { $0.hasSuffix("/" + name) }, "the corpus has no \(name)")
            let encoded = dir.appendingPathComponent("\(index).dcm").path
            try Corpus.run(dcmcjpeg, options + [source, encoded])
            let table = try FrameTable(file: try DICOMFile.read(path: encoded))
            let label = "\(name) \(options.joined(separator: " "))"
            XCTAssertEqual(table.transferSyntax.uid, Self.extended, label)
            XCTAssertEqual(precision(try table.encodedFrame(0)), 12, "\(label): dcmcjpeg wrote a 12-bit stream")
            try assertMatchesDCMTK(encoded, label: label)
        }
    }

    func test8BitExtendedStillDecodesThroughLibjpeg() throws {
        // dcmcjpeg +ee on 8-bit data writes 8-bit process 1 streams under .51. libjpeg-turbo's
        // islow IDCT and colour conversion are IJG 6b's, so dcmdjpeg's samples are the reference.
        let dcmcjpeg = try Corpus.tool("dcmcjpeg")
        let corpus = try Corpus.files()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["SC_rgb.dcm", "OBXXXX1A.dcm"] {
            let source = try XCTUnwrap(corpus.first { $0.hasSuffix("/" + name) }, name)
            let encoded = dir.appendingPathComponent(name).path
            try Corpus.run(dcmcjpeg, ["+ee", source, encoded])
            let table = try FrameTable(file: try DICOMFile.read(path: encoded))
            XCTAssertEqual(table.transferSyntax.uid, Self.extended, name)
            XCTAssertEqual(precision(try table.encodedFrame(0)), 8, name)
            try assertMatchesDCMTK(encoded, label: "\(name) +ee (8-bit)")
        }
    }

    func testCLIFrameMatchesDCMTK() throws {
        let tessera = try Corpus.product("tessera")
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/JPGExtended.dcm") })
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-frame12-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try Corpus.runCapturing(tessera, ["frame", path, "1", "-o", out])
        XCTAssertEqual(r.status, 0, String(decoding: r.err, as: UTF8.self))
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))), try dcmdjpeg(path).pixels)
    }

    func testHostile12BitStreamsThrowNeverTrap() throws {
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/JPGExtended.dcm") })
        let table = try FrameTable(file: try DICOMFile.read(path: path))
        let d = table.description
        var stream = try table.encodedFrame(0)
        let eoi = try XCTUnwrap((0..<stream.count - 1).last { stream[$0] == 0xFF && stream[$0 + 1] == 0xD9 }, "EOI")
        stream.removeLast(stream.count - eoi - 2)  // the fragment's padding after EOI
        let codec = LibJPEGCodec()

        // Cut anywhere, inside the tables, the frame header or the scan: a thrown error, never
        // grey padding (libjpeg reports a premature end only as a warning).
        for cut in [3, 20, 200, 400, 700, stream.count / 4, stream.count / 2, stream.count - 100, stream.count - 2] {
            XCTAssertThrowsError(try codec.decode(Array(stream.prefix(cut)), description: d), "cut at \(cut) of \(stream.count)")
        }
        // A frame header that claims more than the data set's frame holds is refused before decoding.
        let sof = try XCTUnwrap(marker(0xC1, in: stream), "SOF1")
        var huge = stream
        huge.replaceSubrange(sof + 5..<sof + 9, with: [0xFF, 0xDC, 0xFF, 0xDC])
        XCTAssertThrowsError(try codec.decode(huge, description: d)) { XCTAssertTrue("\($0)".contains("exceeds"), "\($0)") }
        // 12-bit samples cannot go into 8-bit containers.
        var narrow = d
        (narrow.bitsAllocated, narrow.bitsStored, narrow.highBit) = (8, 8, 7)
        XCTAssertThrowsError(try codec.decode(stream, description: narrow))

        // Garbled bytes, in the tables and header (where IJG 6b's parser works) and in the scan:
        // each stream decodes to a frame of the right size or throws; none traps or exits.
        var seed: UInt64 = 12
        func next() -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: seed >> 33)
        }
        let header = try XCTUnwrap(marker(0xDA, in: stream), "SOS") + 14
        var thrown = 0
        for round in 0..<400 {
            var garbled = stream
            let region = round % 2 == 0 ? header : stream.count
            for _ in 0..<(1 + next() % 4) { garbled[2 + next() % (region - 2)] = UInt8(truncatingIfNeeded: next()) }
            do {
                let frame = try codec.decode(garbled, description: d)
                XCTAssertEqual(frame.bytes.count, d.rows * d.columns * 2, "round \(round)")
            } catch {
                thrown += 1
            }
        }
        XCTAssertGreaterThan(thrown, 0)
    }

    // MARK: - Helpers

    func marker(_ code: UInt8, in stream: [UInt8]) -> Int? {
        (0..<stream.count - 1).first { stream[$0] == 0xFF && stream[$0 + 1] == code }
    }

    /// P from the stream's frame header, as the codec reads it to choose the library.
    func precision(_ stream: [UInt8]) -> Int {
        stream.withUnsafeBufferPointer { Int(ccodecs_jpeg_sof_precision($0.baseAddress, $0.count)) }
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-jpeg12-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// dcmdjpeg's native Pixel Data of `path` (YCbCr converted to RGB, colour by pixel, as Tessera's
    /// frames are) and its frame count.
    func dcmdjpeg(_ path: String) throws -> (pixels: [UInt8], frames: Int) {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("decoded.dcm").path
        try Corpus.run(try Corpus.tool("dcmdjpeg"), ["+px", path, out])
        let reference = try DICOMFile.read(path: out).dataSet
        guard let pixels = reference[.pixelData]?.valueBytes else { throw Failure(description: "\(path): dcmdjpeg wrote no native Pixel Data") }
        return (pixels, Int(reference.integer(.numberOfFrames) ?? 1))
    }

    /// Every frame of `path` decoded by Tessera equals dcmdjpeg's, byte for byte.
    func assertMatchesDCMTK(_ path: String, label: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let label = label ?? URL(fileURLWithPath: path).lastPathComponent
        let table = try FrameTable(file: try DICOMFile.read(path: path))
        let reference = try dcmdjpeg(path)
        XCTAssertEqual(table.frames.count, reference.frames, "\(label): frames", file: file, line: line)
        let frameLength = table.description.nativeFrameLength
        for index in table.frames.indices {
            let frame: DecodedFrame
            do { frame = try table.decodeFrame(index) } catch { throw Failure(description: "\(label) frame \(index): \(error)") }
            let expected = Array(reference.pixels.dropFirst(index * frameLength).prefix(frameLength))
            XCTAssertEqual(frame.bytes.count, frameLength, "\(label) frame \(index): length", file: file, line: line)
            if let i = frame.bytes.indices.first(where: { $0 >= expected.count || frame.bytes[$0] != expected[$0] }) {
                XCTFail("\(label) frame \(index): byte \(i) of \(frameLength) differs from dcmdjpeg's", file: file, line: line)
            }
            if table.description.samplesPerPixel == 3 {
                XCTAssertEqual(frame.description.photometricInterpretation, "RGB", label, file: file, line: line)
            }
        }
    }
}
