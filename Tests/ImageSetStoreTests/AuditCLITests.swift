import Foundation
import GRDB
@testable import ImageSetStore
import TestSupport
import XCTest

/// `tessera audit` and `tessera audit verify` as an administrator runs them.
final class AuditCLITests: XCTestCase {
    func testListFormatsAndVerifyExitStatus() async throws {
        let tessera = try Corpus.product("tessera")
        let data = try StoreFixtures.temporaryFolder("cli-audit")
        defer { try? FileManager.default.removeItem(atPath: data) }
        do {
            let store = try Datastore(folder: data)
            let who = Principal(name: "ops", roles: [.admin], kind: .apiKey)
            try await store.recordAudit((1...4).map { n in
                var s = AuditSubjects()
                s.add(study: "1.2.3", patient: n == 2 ? "PAT-2" : "PAT-1")
                return AuditEvent(action: .retrieve, principal: who, clientAddress: "192.0.2.1", subjects: s, success: true, status: 200)
            })
        }
        let list = try Corpus.runCapturing(tessera, ["audit", "--data", data, "--patient-id", "PAT-2"])
        XCTAssertEqual(list.status, 0, String(decoding: list.err, as: UTF8.self))
        let text = String(decoding: list.out, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("#2 "), text)
        XCTAssertTrue(text.contains("retrieve success 200 ops (api-key admin) 192.0.2.1 patients=PAT-2"), text)
        let json = try Corpus.runCapturing(tessera, ["audit", "list", "--data", data, "--format", "json", "--after", "2"])
        let lines = String(decoding: json.out, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let first = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        XCTAssertEqual(first["sequence"] as? Int, 3)
        XCTAssertEqual((first["identity"] as? [String: Any])?["name"] as? String, "ops")
        let dicom = try Corpus.runCapturing(tessera, ["audit", "--data", data, "--format", "dicom", "--limit", "1"])
        XCTAssertTrue(String(decoding: dicom.out, as: UTF8.self).contains(#"<EventID csd-code="110102""#))

        let ok = try Corpus.runCapturing(tessera, ["audit", "verify", "--data", data])
        XCTAssertEqual(ok.status, 0)
        let okText = String(decoding: ok.out, as: UTF8.self)
        XCTAssertTrue(okText.contains("checked 4 audit record(s)"), okText)
        let head = try XCTUnwrap(okText.split(separator: "\n").first { $0.hasPrefix("head ") }).dropFirst(5)

        let q = try DatabaseQueue(path: data + "/index.sqlite")
        try await q.write { db in
            try db.execute(sql: "DROP TRIGGER audit_append_only_update")
            try db.execute(sql: "UPDATE audit SET client_address = '198.51.100.9' WHERE sequence = 2")
        }
        let broken = try Corpus.runCapturing(tessera, ["audit", "verify", "--data", data])
        XCTAssertEqual(broken.status, 1)
        XCTAssertEqual(String(decoding: broken.out, as: UTF8.self),
                       "audit trail broken: record 2 was changed after it was written (its hash does not match its content)\n")
        let anchored = try Corpus.runCapturing(tessera, ["audit", "verify", "--data", data, "--anchor", String(head)])
        XCTAssertEqual(anchored.status, 1)
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["audit", "verify", "--data", data, "--anchor", "x"]).status, 64, "usage error")
    }
}
