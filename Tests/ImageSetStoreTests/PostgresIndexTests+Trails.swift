import Foundation
@testable import ImageSetStore
@testable import PostgresIndex
import StoreTestSupport
import XCTest

/// A commit's audit records and change events, appended by one statement at its end
/// (PostgresIndex+Appends.swift), with the audit head read in the statement that writes its rows
/// (PostgresIndex+CommitWrites.swift): under several writers the trail stays one chain and the
/// feed gap-free, and every field reads back as it was hashed.
final class PostgresIndexTrailsTests: XCTestCase {
    /// Two replicas commit at once into two studies, one instance or three per commit, each commit with
    /// its request's record, while reads' records are appended beside them; one of the commits stores
    /// nothing new (a duplicate: no version, so its head is read on its own). The first commits
    /// meet an empty trail (no head row yet).
    func testCommitsFromTwoReplicasWithTheirRecordsKeepOneChainAndAGapFreeFeed() async throws {
        let url = try await TestBackends.freshPostgresDatabase()
        let replicas = [try await TestBackends.postgresIndex(url: url), try await TestBackends.postgresIndex(url: url)]
        let studies = ["1.2.826.0.1.3680043.9.7433.81", "1.2.826.0.1.3680043.9.7433.82"]
        let gateway = AuditContext(principal: Principal(name: "edge \"7\" é", roles: [.gateway, .viewer], kind: .apiKey),
                                   clientAddress: "2001:db8::7", requestID: nil)
        @Sendable func events(_ outcomes: [IngestOutcome]) -> [AuditEvent] {
            var s = AuditSubjects()
            for o in outcomes { s.add(study: o.studyInstanceUID, series: o.seriesInstanceUID, instance: o.sopInstanceUID, patient: "P-1") }
            s.add(study: "1.2.3.zzz-second-study")
            return [AuditEvent(gateway, action: .store, subjects: s, success: true, status: nil, detail: nil)]
        }
        let commits = try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<4 {
                group.addTask {
                    var n = 0
                    for i in 0..<8 {
                        let study = studies[task % 2]
                        let batch = (0..<(i % 2 == 0 ? 1 : 3)).map {
                            PostgresIndexTests.prepared(study: study, series: "\(study).\(task)", sop: "\(study).\(task).\(i).\($0)")
                        }
                        let outcomes = try await replicas[(task + i) % 2].commit(batch, policy: .reject, reason: "stored", audit: events)
                        XCTAssertEqual(outcomes.map(\.status), batch.map { _ in .stored }, outcomes.compactMap(\.message).joined(separator: "; "))
                        try await replicas[i % 2].appendAudit([AuditEvent(action: .retrieve, principal: nil, success: false, status: 401)])
                        n += 2
                    }
                    return n
                }
            }
            return try await group.reduce(0, +)
        }
        let again = PostgresIndexTests.prepared(study: studies[0], series: "\(studies[0]).0", sop: "\(studies[0]).0.0.0")
        let duplicate = try await replicas[1].commit([again], policy: .reject, reason: "stored", audit: events)
        XCTAssertEqual(duplicate.map(\.status), [.duplicate])

        let verification = try await replicas[0].verifyAuditTrail(anchor: nil)
        XCTAssertNil(verification.problem, "every field reads back as hashed, each record chained to the one before")
        XCTAssertEqual(verification.records, commits + 1)
        let records = try await replicas[1].auditRecords({ var f = AuditFilter(); f.limit = 1000; return f }())
        XCTAssertEqual(records.map(\.sequence), Array(1...Int64(commits + 1)))
        let stored = try XCTUnwrap(records.last { $0.action == "store" && $0.subjects.instanceCount == 3 })
        XCTAssertEqual(stored.principalName, "edge \"7\" é")
        XCTAssertEqual(stored.roles, ["gateway", "viewer"])
        XCTAssertEqual(stored.subjects.studies.last, "1.2.3.zzz-second-study", "lists keep their order")
        XCTAssertEqual(stored.subjects.instances.count, 3)
        XCTAssertNil(stored.status)
        XCTAssertNil(stored.requestID)
        XCTAssertNil(stored.detail)
        let refused = try XCTUnwrap(records.first { $0.action == "retrieve" })
        XCTAssertNil(refused.principalName)
        XCTAssertEqual(refused.roles, [])
        XCTAssertEqual(refused.status, 401)
        XCTAssertEqual(records.last?.subjects.instances, [again.sopInstanceUID], "the duplicate's commit has its record too")

        let feed = try await replicas[0].changes(after: 0, limit: 10_000)
        XCTAssertEqual(feed.map(\.sequence), Array(1...Int64(feed.count)), "gap-free")
        XCTAssertEqual(feed.filter { $0.type == .instanceStored }.count, 4 * 4 * 1 + 4 * 4 * 3)
        for r in replicas { await r.close() }
    }
}
