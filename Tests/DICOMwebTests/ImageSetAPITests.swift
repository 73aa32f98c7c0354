import CompressNIO
import DICOMParser
@testable import DICOMweb
import Foundation
import HTTPTypes
import HummingbirdTesting
import ImageSetStore
import NIOCore
import PixelData
import TestSupport
import XCTest
import StoreTestSupport

/// The image-set API's filters, sort and paging, and version pruning over HTTP.
final class ImageSetAPITests: DICOMwebTestCase {
    func ids(_ client: any TestClientProtocol, _ query: String) async throws -> (HTTPResponse.Status, [String], String?) {
        try await client.execute(uri: "/imagesets?\(query)", method: .get) { r in
            let body = (try? Self.json(r.body)) as? [String: Any] ?? [:]
            let sets = body["imageSets"] as? [[String: Any]] ?? []
            return (r.status, sets.compactMap { $0["studyInstanceUID"] as? String }, body["nextCursor"] as? String)
        }
    }

    func testStudyDateAndUpdatedRangesSortAndCursor() async throws {
        try await withApp { client in
            // Three studies, stored one after another so their updatedAt order is known.
            for (n, date) in ["20230105", "20240115", "20250220"].enumerated() {
                let study = "1.2.3.20.\(n)"
                _ = try await self.stow(client, [try Self.instance(sop: "1.2.3.20.\(n).1", study: study, series: study + ".1", studyDate: date)])
                try await Task.sleep(for: .milliseconds(20))
            }
            var (status, found, _) = try await self.ids(client, "studyDate=20240101-20241231")
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(found, ["1.2.3.20.1"])
            (_, found, _) = try await self.ids(client, "studyDate=20240115-&sort=studyDate")
            XCTAssertEqual(found, ["1.2.3.20.1", "1.2.3.20.2"])
            (_, found, _) = try await self.ids(client, "studyDate=-20240115&sort=-studyDate")
            XCTAssertEqual(found, ["1.2.3.20.1", "1.2.3.20.0"])
            (_, found, _) = try await self.ids(client, "studyDate=20230105")
            XCTAssertEqual(found, ["1.2.3.20.0"])
            (_, found, _) = try await self.ids(client, "sort=updatedAt")
            XCTAssertEqual(found, ["1.2.3.20.0", "1.2.3.20.1", "1.2.3.20.2"])
            (_, found, _) = try await self.ids(client, "")
            XCTAssertEqual(found, ["1.2.3.20.2", "1.2.3.20.1", "1.2.3.20.0"], "newest change first by default")

            // updatedAt bounds taken from the sets themselves.
            let sets = try await self.store.index.imageSets({ var f = ImageSetFilter(); f.sort = .updatedAscending; return f }())
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            func between(_ a: Int, _ b: Int) -> String {
                formatter.string(from: Date(timeIntervalSince1970: (sets[a].updatedAt.timeIntervalSince1970 + sets[b].updatedAt.timeIntervalSince1970) / 2))
            }
            (_, found, _) = try await self.ids(client, "updatedAfter=\(between(0, 1))&sort=updatedAt")
            XCTAssertEqual(found, ["1.2.3.20.1", "1.2.3.20.2"])
            (_, found, _) = try await self.ids(client, "updatedBefore=\(between(1, 2))&sort=updatedAt")
            XCTAssertEqual(found, ["1.2.3.20.0", "1.2.3.20.1"])
            (_, found, _) = try await self.ids(client, "updatedAfter=\(between(0, 1))&updatedBefore=\(between(1, 2))")
            XCTAssertEqual(found, ["1.2.3.20.1"])

            // Paging: limit + cursor walk the whole list without overlap.
            var cursor: String?
            var (_, page, next) = try await self.ids(client, "sort=studyDate&limit=2")
            XCTAssertEqual(page, ["1.2.3.20.0", "1.2.3.20.1"])
            cursor = next
            (_, page, next) = try await self.ids(client, "sort=studyDate&limit=2&cursor=\(try XCTUnwrap(cursor))")
            XCTAssertEqual(page, ["1.2.3.20.2"])
            XCTAssertNil(next)

            for bad in ["studyDate=2024", "studyDate=20240101-20241231-1", "studyDate=-", "updatedAfter=yesterday",
                        "sort=size", "isPrimary=maybe", "limit=0", "cursor=-3"] {
                let (status, _, _) = try await self.ids(client, bad)
                XCTAssertEqual(status, .badRequest, bad)
            }
        }
    }

    func testPruningDropsOldVersionsAndFreesOnlyUnreferencedBlobs() async throws {
        let store = self.store!
        let a = try Self.instance(sop: "1.2.3.21.1"), b = try Self.instance(sop: "1.2.3.21.2")
        try await withApp { client in
            _ = try await self.stow(client, [a, b])
            let base = "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/"
            try await client.execute(uri: base + "1.2.3.21.1", method: .delete) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: base + "1.2.3.21.2", method: .delete) { XCTAssertEqual($0.status, .ok) }
            // b comes back with the same bytes: a new row naming the blob an old version also names.
            _ = try await self.stow(client, [b])
            let set = try await XCTUnwrapAsync(try await store.index.imageSets(ImageSetFilter()).first)
            await XCTAssertEqualAsync(try await store.index.versions(of: set.id).map(\.instanceCount), [2, 1, 0, 1])
            await XCTAssertEqualAsync(try await store.blobs.list().count, 2)

            try await client.execute(uri: "/imagesets/\(set.id)/versions?keep=0", method: .delete) { XCTAssertEqual($0.status, .badRequest) }
            try await client.execute(uri: "/imagesets/nope/versions", method: .delete) { XCTAssertEqual($0.status, .notFound) }
            try await client.execute(uri: "/imagesets/\(set.id)/versions?keep=2", method: .delete) { r in
                XCTAssertEqual(r.status, .ok)
                let report = try XCTUnwrap(try Self.json(r.body) as? [String: Any])
                XCTAssertEqual(report["versionsRemoved"] as? Int, 2)
                // Version 3 (empty) is the oldest kept: the rows removed by versions 2 and 3 go.
                XCTAssertEqual(report["instanceRowsRemoved"] as? Int, 2)
                XCTAssertEqual(report["blobsRemoved"] as? Int, 1, "a's blob goes; b's is still named by the re-stored row")
                XCTAssertEqual(report["bytesFreed"] as? Int, a.count)
            }
            await XCTAssertEqualAsync(try await store.index.versions(of: set.id).map(\.version), [3, 4])
            await XCTAssertEqualAsync(try await store.blobs.list().count, 1)
            try await client.execute(uri: "/imagesets/\(set.id)/metadata?version=1", method: .get) { XCTAssertEqual($0.status, .notFound) }
            try await client.execute(uri: base + "1.2.3.21.2", method: .get,
                                     headers: [.accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=*"]) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(try Self.parts(r.body, contentType: r.headers[.contentType] ?? "").first?.body, b, "bit-identical after pruning")
            }
            try await client.execute(uri: "/imagesets/\(set.id)/versions", method: .delete) { r in
                let report = try XCTUnwrap(try Self.json(r.body) as? [String: Any])
                XCTAssertEqual(report["versionsRemoved"] as? Int, 1)
                XCTAssertEqual(report["blobsRemoved"] as? Int, 0)
            }
            await XCTAssertTrueAsync(try await store.verify().isClean)
        }
    }

    func testRetentionRuleFreesBlobsOnDeleteAndReplace() async throws {
        let store = self.store!
        try await store.setRetainVersions(1)
        try await store.setPolicy(.replace)
        let original = try Self.instance(sop: "1.2.3.22.1"), replacement = try Self.instance(sop: "1.2.3.22.1", modality: "MR")
        try await withApp { client in
            _ = try await self.stow(client, [original, try Self.instance(sop: "1.2.3.22.2")])
            _ = try await self.stow(client, [replacement])
            await XCTAssertEqualAsync(try await store.blobs.list().count, 2, "the replaced bytes are freed at once")
            let set = try await XCTUnwrapAsync(try await store.index.imageSets(ImageSetFilter()).first)
            await XCTAssertEqualAsync(try await store.index.versions(of: set.id).map(\.version), [2])
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)", method: .delete) { XCTAssertEqual($0.status, .ok) }
            await XCTAssertEqualAsync(try await store.blobs.list().count, 0, "nothing retained references them")
            await XCTAssertEqualAsync(try await store.index.imageSet(set.id)?.state, "DELETED")
            await XCTAssertTrueAsync(try await store.verify().isClean)
        }
    }

    /// A replacement that carries other patient attributes moves the instance to another set: the
    /// set it left is empty, so it is DELETED and no longer primary (the new set is: nothing of the old
    /// one can mix into it), and searches stop finding the old name; with retention, the old bytes are freed.
    func testReplacementThatMovesSetsEmptiesAndPrunesTheOldSet() async throws {
        let store = self.store!
        try await store.setPolicy(.replace)
        try await store.setRetainVersions(1)
        let original = try Self.instance(sop: "1.2.3.23.1"), renamed = try Self.instance(sop: "1.2.3.23.1", patientName: "ROE^JOHN")
        try await withApp { client in
            _ = try await self.stow(client, [original])
            _ = try await self.stow(client, [renamed])
            let sets = try await store.index.imageSets(ImageSetFilter())
            XCTAssertEqual(sets.count, 2)
            XCTAssertEqual(sets.first { !$0.isPrimary }?.state, "DELETED")
            XCTAssertEqual(sets.first { $0.isPrimary }?.instanceCount, 1)
            XCTAssertEqual(sets.first { $0.isPrimary }?.attributes.patientName, "ROE^JOHN")
            XCTAssertEqual(sets.first { !$0.isPrimary }?.conflicts.map(\.keyword), ["PatientName"])
            for (name, count) in [("DOE*", 0), ("ROE*", 1)] {
                try await client.execute(uri: "/dicomweb/studies?PatientName=\(name)", method: .get) { r in
                    XCTAssertEqual((try Self.json(r.body) as? [Any])?.count, count, name)
                }
            }
            await XCTAssertEqualAsync(try await store.blobs.list().count, 1, "the replaced bytes are freed from the set they left")
            await XCTAssertTrueAsync(try await store.verify().isClean)
        }
    }

    /// Frames by the ids the metadata document lists: the stored bytes, typed by their syntax.
    func testImageSetFramesByIdFromTheMetadataDocument() async throws {
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/emri_small_jpeg_2k_lossless.dcm") })
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let table = try FrameTable(file: try DICOMFile.read(bytes: bytes))
        let store = self.store!
        try await withApp { client in
            _ = try await self.stow(client, [bytes, try Self.instance(sop: "1.2.3.24.1")])
            let sets = try await store.index.imageSets(ImageSetFilter())
            let set = try XCTUnwrap(sets.first { $0.frameCount == table.frames.count })
            let other = try XCTUnwrap(sets.first { $0.id != set.id })
            var ids: [String] = []
            try await client.execute(uri: "/imagesets/\(set.id)/metadata", method: .get) { r in
                var body = r.body
                let json = try JSONSerialization.jsonObject(with: Data(try body.decompress(with: .gzip).readableBytesView)) as? [String: Any]
                let series = ((json?["study"] as? [String: Any])?["series"] as? [[String: Any]]) ?? []
                let frames = ((series.first?["instances"] as? [[String: Any]])?.first?["frames"] as? [[String: Any]]) ?? []
                ids = frames.compactMap { $0["id"] as? String }
            }
            XCTAssertEqual(ids.count, table.frames.count)
            try await client.execute(uri: "/imagesets/\(set.id)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let body = try XCTUnwrap(try Self.json(r.body) as? [String: Any])
                XCTAssertEqual(body["id"] as? String, set.id)
                XCTAssertEqual(body["state"] as? String, "ACTIVE")
                XCTAssertEqual(body["frameCount"] as? Int, table.frames.count)
            }
            let third = ids[2]
            try await client.execute(uri: "/imagesets/\(set.id)/frames/\(third)", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.headers[.contentType], "image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90")
                XCTAssertEqual(Array(r.body.readableBytesView), try table.encodedFrame(2))
            }
            try await client.execute(uri: "/imagesets/\(other.id)/frames/\(third)", method: .get) { XCTAssertEqual($0.status, .notFound, "another set's frame") }
            try await client.execute(uri: "/imagesets/\(set.id)/frames/999999.1", method: .get) { XCTAssertEqual($0.status, .notFound) }
            try await client.execute(uri: "/imagesets/\(set.id)/frames/abc", method: .get) { XCTAssertEqual($0.status, .badRequest) }
        }
    }
}
