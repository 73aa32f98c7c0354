import DICOMParser
import Foundation
@testable import PixelData
import TestSupport
import XCTest

/// `tessera frame` and `tessera transcode` as users run them; transcoded files read by pydicom and dcmdump.
final class PixelCLITests: XCTestCase {
    func testFrameWritesDecodedOrEncodedBytesAndRefusesBadNumbers() throws {
        let tessera = try Corpus.product("tessera")
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/emri_small_jpeg_2k_lossless.dcm") })
        let table = try FrameTable(file: try DICOMFile.read(path: path))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-frame-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["frame", path, "3", "--out", out]).status, 0)
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))), try table.decodeFrame(2).bytes)
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["frame", path, "3", "--out", out, "--encoded"]).status, 0)
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))), try table.encodedFrame(2))
        let bad = try Corpus.runCapturing(tessera, ["frame", path, "11", "--out", out])
        XCTAssertEqual(bad.status, 1)
        let message = String(decoding: bad.err, as: UTF8.self)
        XCTAssertEqual(message.split(separator: "\n").count, 1, message)
        XCTAssertTrue(message.contains("out of range"), message)
    }

    func testTranscodedFilesAreReadByPydicomAndDcmdump() throws {
        let tessera = try Corpus.product("tessera")
        let dcmdump = try Corpus.tool("dcmdump")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-transcode-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let byName = Dictionary(try Corpus.files().map { (URL(fileURLWithPath: $0).lastPathComponent, $0) }, uniquingKeysWith: { a, _ in a })
        var outputs: [String] = []
        var expected: [String: [UInt8]] = [:]
        for name in ["emri_small.dcm", "SC_rgb_2frame.dcm", "US1_J2KR.dcm"] {
            let source = try XCTUnwrap(byName[name], name)
            let table = try FrameTable(file: try DICOMFile.read(path: source))
            let pixels = try table.frames.indices.flatMap { try table.decodeFrame($0).bytes }
            for target in ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5"] {
                let out = dir.appendingPathComponent("\(name)-\(target).dcm").path
                let r = try Corpus.runCapturing(tessera, ["transcode", source, out, "--to", target])
                XCTAssertEqual(r.status, 0, String(decoding: r.err, as: UTF8.self))
                XCTAssertEqual(try Corpus.runCapturing(dcmdump, ["-q", out]).status, 0, "dcmdump reads \(out)")
                outputs.append(out)
                expected[out] = pixels
            }
        }
        let json = try Corpus.oracle("pydicom_pixels.py", [dir.path], stdin: Data(outputs.joined(separator: "\n").utf8))
        let oracle = try XCTUnwrap(try JSONSerialization.jsonObject(with: json) as? [String: [String: Any]])
        for out in outputs {
            let entry = try XCTUnwrap(oracle[out])
            let raw = try XCTUnwrap(entry["raw"] as? String, "pydicom cannot decode \(out): \(entry["error"] ?? "")")
            XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: raw))), expected[out], "pydicom's pixels of \(out)")
        }
        let refused = try Corpus.runCapturing(tessera, ["transcode", try XCTUnwrap(byName["emri_small.dcm"]), dir.appendingPathComponent("x").path, "--to", "1.2.840.10008.1.2.4.50"])
        XCTAssertEqual(refused.status, 1)
    }
}
