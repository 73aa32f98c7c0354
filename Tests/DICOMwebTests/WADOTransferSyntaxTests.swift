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

/// Transfer syntaxes of WADO-RS responses: Big Endian never sent, the stored syntax by its UID,
/// JPEG 2000 / HTJ2K frames from any decodable source. Real files from pydicom and pydicom-data.
final class WADOTransferSyntaxTests: DICOMwebTestCase, @unchecked Sendable {
    static let bigEndian = "1.2.840.10008.1.2.2", littleEndian = "1.2.840.10008.1.2.1"

    static func corpusFile(_ name: String) throws -> String {
        try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/" + name) }, name)
    }

    /// The instance URI of a Part 10 file's bytes.
    static func uri(_ bytes: [UInt8]) throws -> String {
        let ds = try DICOMFile.read(bytes: bytes).dataSet
        func uid(_ tag: Tag) throws -> String { try XCTUnwrap(ds.string(tag)).trimmingCharacters(in: "\0 ") }
        return "/dicomweb/studies/\(try uid(.studyInstanceUID))/series/\(try uid(.seriesInstanceUID))/instances/\(try uid(.sopInstanceUID))"
    }

    /// pydicom's pixel_array of each file, every frame, little endian (Tools/oracles/pydicom_pixels.py).
    static func pydicomPixels(_ paths: [String]) throws -> [String: [UInt8]] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-be-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = try Corpus.oracle("pydicom_pixels.py", [dir.path], stdin: Data(paths.joined(separator: "\n").utf8))
        let oracle = try XCTUnwrap(try JSONSerialization.jsonObject(with: json) as? [String: [String: Any]])
        var out: [String: [UInt8]] = [:]
        for p in paths {
            let raw = try XCTUnwrap(oracle[p]?["raw"] as? String, "pydicom cannot decode \(p): \(oracle[p]?["error"] ?? "")")
            out[p] = [UInt8](try Data(contentsOf: URL(fileURLWithPath: raw)))
        }
        return out
    }

    // PS3.18 §8.7.3: "The Big Endian transfer syntaxes shall not be used" with web services, so
    // frames, bulk data and instances stored Big Endian go as Explicit VR Little Endian, and say so.
    func testBigEndianInstancesAreSentLittleEndian() async throws {
        let paths = try ["MR_small_bigendian.dcm", "emri_small_big_endian.dcm"].map(Self.corpusFile)
        let pixels = try Self.pydicomPixels(paths)
        for path in paths {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            XCTAssertEqual(try DICOMFile.read(bytes: bytes).transferSyntax.uid, Self.bigEndian)
            let expected = try XCTUnwrap(pixels[path])
            let uri = try Self.uri(bytes)
            let frames = try FrameTable(file: try DICOMFile.read(bytes: bytes)).frames.count
            let frameSize = expected.count / frames
            try await withApp { client in
                _ = try await self.stow(client, [bytes])
                for accept in ["*/*", "multipart/related; type=\"application/octet-stream\"",
                               "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*"] {
                    // The first and the last frame (each at most once: a repeated frame is a 400).
                    let list = frames > 1 ? "1,\(frames)" : "1"
                    try await client.execute(uri: "\(uri)/frames/\(list)", method: .get, headers: [.accept: accept]) { r in
                        XCTAssertEqual(r.status, .ok, accept)
                        let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                        XCTAssertEqual(parts.count, frames > 1 ? 2 : 1)
                        XCTAssertTrue(parts[0].headers.contains("transfer-syntax=\(Self.littleEndian)"), parts[0].headers)
                        XCTAssertEqual(parts[0].body, Array(expected[0..<frameSize]), "\(path) frame 1, \(accept)")
                        XCTAssertEqual(parts.last?.body, Array(expected[(frames - 1) * frameSize..<frames * frameSize]), "\(path) last frame")
                    }
                }
                try await client.execute(uri: "\(uri)/frames/1", method: .get,
                                         headers: [.accept: "multipart/related; type=\"application/octet-stream\"; transfer-syntax=\(Self.bigEndian)"]) {
                    XCTAssertEqual($0.status, .notAcceptable)
                }
                try await client.execute(uri: "\(uri)/bulkdata/7FE00010", method: .get) { r in
                    XCTAssertEqual(r.status, .ok)
                    let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                    XCTAssertEqual(parts.first.map { Array($0.body.prefix(expected.count)) }, expected, "\(path) bulk data")
                }
                try await client.execute(uri: uri, method: .get, headers: [.accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=*"]) { r in
                    XCTAssertEqual(r.status, .ok)
                    let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                    XCTAssertTrue(parts[0].headers.contains("application/dicom; transfer-syntax=\(Self.littleEndian)"), parts[0].headers)
                    let file = try DICOMFile.read(bytes: parts[0].body)
                    XCTAssertEqual(file.transferSyntax.uid, Self.littleEndian)
                    let table = try FrameTable(file: file)
                    XCTAssertEqual(try (0..<frames).flatMap { try table.decodeFrame($0).bytes }, expected, "\(path) instance pixels")
                }
            }
        }
    }

    // PS3.18 §8.7.3.5.2 / §8.7.3.5.3: a transfer-syntax parameter naming the stored syntax gets the
    // stored bytes, like `*`, at every level and for frames.
    func testTheStoredSyntaxByItsUIDIsSentAsStored() async throws {
        let path = try Self.corpusFile("SC_rgb_jpeg_dcmtk.dcm")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let file = try DICOMFile.read(bytes: bytes)
        let ts = file.transferSyntax.uid
        XCTAssertEqual(ts, "1.2.840.10008.1.2.4.50")
        let uri = try Self.uri(bytes)
        let series = String(uri[..<uri.range(of: "/instances/")!.lowerBound])
        let study = String(series[..<series.range(of: "/series/")!.lowerBound])
        try await withApp { client in
            _ = try await self.stow(client, [bytes])
            for level in [uri, series, study] {
                try await client.execute(uri: level, method: .get, headers: [.accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=\(ts)"]) { r in
                    XCTAssertEqual(r.status, .ok, level)
                    let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                    XCTAssertEqual(parts.first?.body, bytes, "as stored, bit-identical: \(level)")
                    XCTAssertTrue(parts.first?.headers.contains("transfer-syntax=\(ts)") ?? false)
                }
            }
            try await client.execute(uri: "\(uri)/frames/1", method: .get, headers: [.accept: "multipart/related; type=\"image/jpeg\"; transfer-syntax=\(ts)"]) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(parts.first?.body, try FrameTable(file: file).encodedFrame(0))
            }
            // A syntax neither stored nor producible is still a 406.
            try await client.execute(uri: uri, method: .get, headers: [.accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.80"]) {
                XCTAssertEqual($0.status, .notAcceptable)
            }
        }
    }

    // PS3.18 §8.7.3.5.3, Table 8.7.3-2: image/jp2 and image/jphc frames are produced from any
    // decodable source, and decode back to the source's samples (lossless re-encoding).
    func testJPEG2000AndHTJ2KFramesFromEverySource() async throws {
        var sources = try [  // JPGExtended: 12-bit JPEG (.4.51), decoded through libijg12
                           "CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_jpeg_ls_lossless.dcm",
                           "emri_small_jpeg_2k_lossless.dcm", "JPGExtended.dcm"].map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: try Self.corpusFile($0)))) }
        // No HTJ2K file in the corpus: one transcoded from CT_small.
        let ct = try DICOMFile.read(bytes: sources[0])
        let (ds, syntax) = try Transcoder.transcode(ct, to: "1.2.840.10008.1.2.4.201")
        var meta = ct.meta
        meta.set(Self.text(0x0002_0003, .UI, "1.2.3.16.1"))
        var renamed = ds
        renamed.set(Self.text(0x0008_0018, .UI, "1.2.3.16.1"))
        sources.append(try DICOMWriter.part10(renamed, transferSyntax: syntax, meta: meta))
        let all = sources
        try await withApp { client in
            _ = try await self.stow(client, all)
            for bytes in all {
                let table = try FrameTable(file: try DICOMFile.read(bytes: bytes))
                let expected = try table.decodeFrame(0).bytes
                for (type, uid, decoder) in [("image/jp2", "1.2.840.10008.1.2.4.90", OpenJPEGCodec() as any PixelDecoder),
                                             ("image/jphc", "1.2.840.10008.1.2.4.201", HTJ2KCodec())] {
                    let label = "\(table.transferSyntax.uid) as \(type)"
                    try await client.execute(uri: "\(try Self.uri(bytes))/frames/1", method: .get, headers: [.accept: "multipart/related; type=\"\(type)\""]) { r in
                        XCTAssertEqual(r.status, .ok, label)
                        let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                        let part = try XCTUnwrap(parts.first, label)
                        XCTAssertTrue(part.headers.contains("\(type); transfer-syntax=\(uid)"), "\(label): \(part.headers)")
                        XCTAssertEqual(try decoder.decode(part.body, description: table.description).bytes, expected, label)
                    }
                }
            }
        }
    }
}
