import Foundation
@testable import ImageSetStore
import TestSupport
import XCTest

/// `tessera import`, `imagesets`, `imageset` and `verify` as a user runs them.
final class StoreCLITests: XCTestCase {
    func testPruneCommandAndRetentionSetting() throws {
        let tessera = try Corpus.product("tessera")
        let data = try StoreFixtures.temporaryFolder("cli-prune")
        defer { try? FileManager.default.removeItem(atPath: data) }
        do {
            let store = try Datastore(folder: data)
            for n in 1...3 { _ = try store.ingest(staged: [try store.blobs.stage(bytes: try StoreFixtures.instance(sop: "1.2.3.8.\(n)"))], reason: "t") }
            XCTAssertEqual(try store.remove(study: "1.2.826.0.1.3680043.9.7433.1", sop: "1.2.3.8.1"), 1)
        }
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["prune", "--data", data, "--keep", "0"]).status, 64, "usage error")
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["prune", "--data", data, "--image-set", "nope"]).status, 1)
        let run = try Corpus.runCapturing(tessera, ["prune", "--data", data, "--keep", "1", "--retain", "2", "--json"])
        XCTAssertEqual(run.status, 0, String(decoding: run.err, as: UTF8.self))
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: run.out) as? [String: Any])
        XCTAssertEqual(report["instanceRowsRemoved"] as? Int, 1)
        XCTAssertEqual(report["blobsRemoved"] as? Int, 1)
        let store = try Datastore(folder: data)
        XCTAssertEqual(store.retainVersions, 2)
        XCTAssertEqual(try store.blobs.list().count, 2)
        XCTAssertTrue(try store.verify().isClean)
    }

    func testImportListShowAndVerify() throws {
        let tessera = try Corpus.product("tessera")
        let data = try StoreFixtures.temporaryFolder("cli")
        let source = try StoreFixtures.temporaryFolder("cli-source")
        defer { try? FileManager.default.removeItem(atPath: data); try? FileManager.default.removeItem(atPath: source) }
        try FileManager.default.createDirectory(atPath: source + "/nested", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: source + "/a.dcm", contents: Data(try StoreFixtures.instance(sop: "1.2.3.7.1")))
        FileManager.default.createFile(atPath: source + "/nested/b.dcm", contents: Data(try StoreFixtures.instance(sop: "1.2.3.7.2")))
        FileManager.default.createFile(atPath: source + "/nested/c.dcm",
                                       contents: Data(try StoreFixtures.instance(sop: "1.2.3.7.3", patientID: "OTHER")))

        let first = try Corpus.runCapturing(tessera, ["import", source, "--data", data])
        let summary = String(decoding: first.err, as: UTF8.self)
        XCTAssertEqual(first.status, 0, summary)
        XCTAssertTrue(summary.contains("stored: 3"), summary)
        XCTAssertTrue(summary.contains("non-primary (conflicts): 1"), summary)
        XCTAssertTrue(summary.contains("failed: 0"), summary)

        // Again, plus a file that is not DICOM: duplicates are fine, the bad file fails the run.
        FileManager.default.createFile(atPath: source + "/notes.txt", contents: Data("not dicom".utf8))
        let second = try Corpus.runCapturing(tessera, ["import", source, "--data", data])
        let summary2 = String(decoding: second.err, as: UTF8.self)
        XCTAssertEqual(second.status, 1)
        XCTAssertTrue(summary2.contains("duplicates: 3"), summary2)
        XCTAssertTrue(summary2.contains("notes.txt: 0xC000"), summary2)

        let list = try Corpus.runCapturing(tessera, ["imagesets", "--data", data, "--json"])
        XCTAssertEqual(list.status, 0)
        let sets = try XCTUnwrap(JSONSerialization.jsonObject(with: list.out) as? [[String: Any]])
        XCTAssertEqual(sets.count, 2)
        let primary = try XCTUnwrap(sets.first { $0["isPrimary"] as? Bool == true })
        XCTAssertEqual(primary["instanceCount"] as? Int, 2)
        let id = try XCTUnwrap(primary["id"] as? String)

        let filtered = try Corpus.runCapturing(tessera, ["imagesets", "--data", data, "--patient-id", "OTHER", "--json"])
        XCTAssertEqual((try JSONSerialization.jsonObject(with: filtered.out) as? [[String: Any]])?.count, 1)

        let show = try Corpus.runCapturing(tessera, ["imageset", id, "--data", data])
        let text = String(decoding: show.out, as: UTF8.self)
        XCTAssertEqual(show.status, 0)
        XCTAssertTrue(text.contains("1.2.3.7.1") && text.contains("1.2.3.7.2"), text)
        XCTAssertTrue(text.contains("versions:"), text)
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["imageset", "nope", "--data", data]).status, 1)

        let verify = try Corpus.runCapturing(tessera, ["verify", "--data", data])
        XCTAssertEqual(verify.status, 0, String(decoding: verify.out, as: UTF8.self))
    }
}
