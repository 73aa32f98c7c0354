import DICOMCore
import DICOMParser
@testable import DICOMweb
import Foundation
import HTTPTypes
import HummingbirdTesting
import PixelData
import TestSupport
import XCTest

/// WADO-RS frames of a 12-bit JPEG Extended instance (1.2.840.10008.1.2.4.51) asked for as
/// application/octet-stream (PS3.18 §8.7.3.5.3: with no transfer-syntax, Explicit VR Little
/// Endian) are decoded through libijg12: the bytes equal dcmdjpeg's native frames.
final class WADOJPEG12Tests: DICOMwebTestCase {
    func testTwelveBitJPEGFramesDecodeToDCMTKSamples() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-wado12-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/emri_small.dcm") })
        let encoded = dir.appendingPathComponent("emri_small_12bit_jpeg.dcm").path
        let decoded = dir.appendingPathComponent("decoded.dcm").path
        try Corpus.run(try Corpus.tool("dcmcjpeg"), ["+ee", source, encoded])
        try Corpus.run(try Corpus.tool("dcmdjpeg"), [encoded, decoded])
        let native = try XCTUnwrap(try DICOMFile.read(path: decoded).dataSet[.pixelData]?.valueBytes)
        let file = try DICOMFile.read(path: encoded)
        XCTAssertEqual(file.transferSyntax.uid, "1.2.840.10008.1.2.4.51")
        let frameLength = try FrameTable(file: file).description.nativeFrameLength
        let uid = { (tag: Tag) in try XCTUnwrap(file.dataSet.string(tag)).trimmingCharacters(in: "\0 ") }
        let uri = "/dicomweb/studies/\(try uid(.studyInstanceUID))/series/\(try uid(.seriesInstanceUID))/instances/\(try uid(.sopInstanceUID))/frames/1,3,10"
        try await withApp { client in
            _ = try await self.stow(client, [[UInt8](try Data(contentsOf: URL(fileURLWithPath: encoded)))])
            try await client.execute(uri: uri, method: .get, headers: [.accept: "multipart/related; type=\"application/octet-stream\""]) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(parts.count, 3)
                for (part, frame) in zip(parts, [0, 2, 9]) {
                    XCTAssertTrue(part.headers.contains("transfer-syntax=1.2.840.10008.1.2.1"), part.headers)
                    XCTAssertEqual(part.body, Array(native[frame * frameLength..<(frame + 1) * frameLength]), "frame \(frame + 1)")
                }
            }
        }
    }
}
