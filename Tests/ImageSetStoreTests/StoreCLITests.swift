import Foundation
@testable import ImageSetStore
import TestSupport
import XCTest

/// `tessera import`, `imagesets`, `imageset` and `verify` as a user runs them.
final class StoreCLITests: XCTestCase {
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
