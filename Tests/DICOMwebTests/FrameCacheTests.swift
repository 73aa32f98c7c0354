import DICOMCore
import DICOMParser
@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import NIOConcurrencyHelpers
import NIOCore
import StoreTestSupport
import TestSupport
import XCTest

/// Issue 15 §1: stored frames come from the frame location cache and the one-buffer single-part
/// body, and nothing moves: frames byte-identical to what pydicom finds in the file, part headers
/// as before, a deleted or replaced instance never served from the cache (also through another
/// replica on the same PostgreSQL index). WADO-RS frames: PS3.18 §10.4.1.1.2 (retrieve frames),
/// §8.7.3.5.3 (frame media types), multipart/related framing RFC 2387 / PS3.18 §8.6.1.2.
class FrameCacheTests: DICOMwebTestCase, @unchecked Sendable {
    static let asStored = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*"

    func framesURI(_ study: String, _ series: String, _ sop: String, _ list: String) -> String {
        "/dicomweb/studies/\(study)/series/\(series)/instances/\(sop)/frames/\(list)"
    }

    static func uid(_ file: DICOMFile, _ tag: Tag) throws -> String {
        try XCTUnwrap(file.dataSet.string(tag)).trimmingCharacters(in: "\0 ")
    }

    /// Every frame of native, JPEG 2000 and RLE multi-frame files, asked one at a time (the cached,
    /// one-buffer path) twice and all at once (the streamed path): the bytes pydicom finds for the
    /// frame (Tools/oracles/pydicom_frames.py), in exactly `--boundary CRLF Content-Type: type;
    /// transfer-syntax=uid CRLF CRLF frame CRLF --boundary-- CRLF`.
    func testEveryStoredFrameIsTheFilesBytesWithTheSamePartHeaders() async throws {
        let names = ["emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm", "emri_small_RLE.dcm"]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-frames-oracle-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // The three are one image encoded three ways, under one SOP Instance UID: each gets its own
        // (rewritten in its own transfer syntax), so that each is stored, and pydicom reads what was sent.
        let paths = try names.enumerated().map { k, name in
            let source = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/" + name) }, name)
            let file = try DICOMFile.read(path: source)
            var ds = file.dataSet
            ds.set(Self.text(0x0008_0018, .UI, "1.2.826.0.1.3680043.9.7433.2.15.\(k + 1)"))
            let path = dir.appendingPathComponent(name).path
            try Data(try DICOMWriter.part10(ds, transferSyntax: file.transferSyntax)).write(to: URL(fileURLWithPath: path))
            return path
        }
        let json = try Corpus.oracle("pydicom_frames.py", [dir.path], stdin: Data(paths.joined(separator: "\n").utf8))
        let found = try XCTUnwrap(try JSONSerialization.jsonObject(with: json) as? [String: [String: Any]])
        var oracle: [String: (syntax: String, frames: [[UInt8]])] = [:]
        for (path, entry) in found {
            let frames = try XCTUnwrap(entry["frames"] as? [String]).map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) }
            oracle[path] = (try XCTUnwrap(entry["syntax"] as? String), frames)
        }
        let expectedFrames = oracle
        let types = ["1.2.840.10008.1.2.1": "application/octet-stream", "1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.5": "image/dicom-rle"]
        try await withApp { client in
            for path in paths {
                let file = try DICOMFile.read(path: path)
                let (study, series, sop) = (try Self.uid(file, .studyInstanceUID), try Self.uid(file, .seriesInstanceUID), try Self.uid(file, .sopInstanceUID))
                let (status, _) = try await self.stow(client, [[UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))])
                XCTAssertEqual(status, .ok, path)
                let (syntax, frames) = try XCTUnwrap(expectedFrames[path], path)
                XCTAssertEqual(frames.count, 10, path)
                let type = try XCTUnwrap(types[syntax], syntax)
                for (n, frame) in frames.enumerated() {
                    for round in 0..<2 {
                        try await client.execute(uri: self.framesURI(study, series, sop, "\(n + 1)"), method: .get, headers: [.accept: Self.asStored]) { r in
                            XCTAssertEqual(r.status, .ok, "\(path) frame \(n + 1)")
                            let contentType = r.headers[.contentType] ?? ""
                            XCTAssertTrue(contentType.hasPrefix("multipart/related; type=\"\(type)\"; boundary="), contentType)
                            let boundary = String(contentType.split(separator: "=").last ?? "")
                            var expected = Array("--\(boundary)\r\nContent-Type: \(type); transfer-syntax=\(syntax)\r\n\r\n".utf8)
                            expected += frame + Array("\r\n--\(boundary)--\r\n".utf8)
                            XCTAssertEqual(Array(r.body.readableBytesView), expected, "\(path) frame \(n + 1), request \(round + 1): framing and bytes")
                            XCTAssertEqual(r.headers[.contentLength], "\(expected.count)")
                        }
                    }
                }
                // Several frames stream part by part, as before: the same bytes.
                try await client.execute(uri: self.framesURI(study, series, sop, "3,1,10"), method: .get, headers: [.accept: Self.asStored]) { r in
                    XCTAssertEqual(r.status, .ok)
                    let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                    XCTAssertEqual(parts.map(\.body), [frames[2], frames[0], frames[9]], path)
                    XCTAssertEqual(parts.map(\.headers), Array(repeating: "Content-Type: \(type); transfer-syntax=\(syntax)", count: 3))
                }
            }
        }
    }

    /// The demo CT's pixel bytes, and a different frame of the same size (for a replacement).
    static func pixels() throws -> (original: [UInt8], other: [UInt8]) {
        let path = Corpus.packageRoot.appendingPathComponent("TestImages/demo/ct-1.dcm").path
        let original = try XCTUnwrap(try DICOMFile.read(path: path).dataSet[.pixelData]?.valueBytes)
        return (original, original.map { $0 ^ 0x5A })
    }

    func frameOne(_ client: any TestClientProtocol, sop: String) async throws -> (HTTPResponse.Status, [UInt8]?) {
        try await client.execute(uri: framesURI(Self.study, Self.series, sop, "1"), method: .get, headers: [.accept: Self.asStored]) { r in
            (r.status, r.status == .ok ? try Self.parts(r.body, contentType: r.headers[.contentType] ?? "").first?.body : nil)
        }
    }

    /// A replacement (a new row, new frames) is what the next frame request gets, although the
    /// replaced instance's location was cached; on SQLite the index's generation moved.
    func testAReplacedInstanceIsNeverServedFromTheCache() async throws {
        try await store.setPolicy(.replace)
        let (original, other) = try Self.pixels()
        let sop = "1.2.826.0.1.3680043.9.7433.2.1.1501"
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: sop)])
            for _ in 0..<3 { await XCTAssertEqualAsync(try await self.frameOne(client, sop: sop).1, original) }
            let before = self.store.index.localChangeGeneration
            let (status, _) = try await self.stow(client, [try Self.instance(sop: sop, extra: [DataElement(tag: .pixelData, vr: .OW, value: .bytes(other))])])
            XCTAssertEqual(status, .ok)
            if !TestBackends.indexIsPostgres { XCTAssertNotEqual(self.store.index.localChangeGeneration, before) }
            let (after, bytes) = try await self.frameOne(client, sop: sop)
            XCTAssertEqual(after, .ok)
            XCTAssertEqual(bytes, other, "the replacement's frame, not the cached original")
        }
    }

    /// DELETE (PS3.18 §10.7) of the instance, its series or its study: the next frame request is a
    /// 404 although the location was cached; stored again, it is served again (a new row).
    func testADeletedInstanceIsNeverServedFromTheCache() async throws {
        let (original, _) = try Self.pixels()
        let sop = "1.2.826.0.1.3680043.9.7433.2.1.1502"
        let levels = ["/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/\(sop)",
                      "/dicomweb/studies/\(Self.study)/series/\(Self.series)", "/dicomweb/studies/\(Self.study)"]
        try await withApp { client in
            for level in levels {
                _ = try await self.stow(client, [try Self.instance(sop: sop)])
                for _ in 0..<2 { await XCTAssertEqualAsync(try await self.frameOne(client, sop: sop).1, original, level) }
                try await client.execute(uri: level, method: .delete) { XCTAssertEqual($0.status, .ok, level) }
                await XCTAssertEqualAsync(try await self.frameOne(client, sop: sop).0, .notFound, "deleted at \(level)")
            }
        }
    }

    /// The index's generation moves with changes to what frame requests read, and not with the
    /// audit records every read appends (else the cache would be emptied by its own reads).
    func testReadsAuditRecordsLeaveTheGenerationWhereItIs() async throws {
        try XCTSkipIf(TestBackends.indexIsPostgres, "PostgreSQL has no local generation: replicas write it too")
        let sop = "1.2.826.0.1.3680043.9.7433.2.1.1503"
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: sop)])
            _ = try await self.frameOne(client, sop: sop)
            await self.store.flushAudit()
            let before = try XCTUnwrap(self.store.index.localChangeGeneration)
            for _ in 0..<5 { await XCTAssertEqualAsync(try await self.frameOne(client, sop: sop).0, .ok) }
            await self.store.flushAudit()
            XCTAssertEqual(self.store.index.localChangeGeneration, before, "five audited reads changed nothing")
            // And every one of them was audited, cached or not.
            try await client.execute(uri: "/audit", method: .get) { r in
                let records = (try Self.json(r.body) as? [String: Any])?["records"] as? [[String: Any]] ?? []
                XCTAssertEqual(records.filter { $0["action"] as? String == "frames" }.count, 6)
            }
        }
    }

    /// Two replicas on one PostgreSQL index and one blob folder: B deletes or replaces what A has
    /// served (and cached); A's next request answers from the index, never from its cache.
    func testAReplicaNeverServesWhatAnotherDeletedOrReplaced() async throws {
        try XCTSkipUnless(TestBackends.indexIsPostgres, "replicas share a PostgreSQL index (TESSERA_TEST_INDEX=postgresql)")
        let url = try await TestBackends.freshPostgresDatabase()
        let blobs = folder + "/shared-blobs"
        let a = try await TestBackends.replicaDatastore(folder: folder + "/a", url: url, blobs: blobs)
        let b = try await TestBackends.replicaDatastore(folder: folder + "/b", url: url, blobs: blobs)
        XCTAssertNil(a.index.localChangeGeneration, "another process writes this index")
        let appA = Application(router: buildRouter(store: a, configuration: DICOMwebConfiguration()))
        let appB = Application(router: buildRouter(store: b, configuration: DICOMwebConfiguration()))
        let (original, other) = try Self.pixels()
        let sop = "1.2.826.0.1.3680043.9.7433.2.1.1504"
        try await appA.test(.router) { clientA in
            try await appB.test(.router) { clientB in
                try await b.setPolicy(.replace)
                _ = try await self.stow(clientB, [try Self.instance(sop: sop)])
                for _ in 0..<2 { await XCTAssertEqualAsync(try await self.frameOne(clientA, sop: sop).1, original) }
                _ = try await self.stow(clientB, [try Self.instance(sop: sop, extra: [DataElement(tag: .pixelData, vr: .OW, value: .bytes(other))])])
                await XCTAssertEqualAsync(try await self.frameOne(clientA, sop: sop).1, other, "B's replacement through A")
                try await clientB.execute(uri: "/dicomweb/studies/\(Self.study)", method: .delete) { XCTAssertEqual($0.status, .ok) }
                await XCTAssertEqualAsync(try await self.frameOne(clientA, sop: sop).0, .notFound, "B's delete through A")
            }
        }
    }
}
