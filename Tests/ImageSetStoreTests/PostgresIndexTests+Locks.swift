import Foundation
@testable import ImageSetStore
@testable import PostgresIndex
import Logging
import PostgresNIO
import StoreTestSupport
import XCTest

/// The writer locks a commit takes in one statement (`PostgresIndex.lockStudies`): the shared
/// "writers" lock first, then its studies' locks. A commit that took a study lock while waiting for
/// "writers" (held exclusively by pruning every image set) could wait in a cycle with a writer of
/// that study.
final class PostgresIndexLockTests: XCTestCase {
    let logger = Logger(label: "test")

    /// Waits until a backend waits for an advisory lock; then counts the study locks (the bigint key
    /// space, objsubid 1) granted to backends other than `side`'s.
    func studyLocksHeldWhileACommitWaits(_ side: PostgresConnection) async throws -> Int {
        for _ in 0..<200 {
            let waiting = try await side.query("SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                                               logger: logger).collect().first?.decode(Int.self) ?? 0
            if waiting > 0 {
                return try await side.query("""
                    SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND pid <> pg_backend_pid()
                    """, logger: logger).collect().first?.decode(Int.self) ?? -1
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("the commit never waited for the lock held")
        return -1
    }

    func testACommitTakesTheWritersLockBeforeItsStudyLocks() async throws {
        let url = try await TestBackends.freshPostgresDatabase()
        let index = try await TestBackends.postgresIndex(url: url)
        let study = "1.2.826.0.1.3680043.9.7433.61"
        try await TestBackends.withConnection(url: url) { side in
            try await side.query("BEGIN", logger: logger)
            try await side.query("SELECT pg_advisory_xact_lock(\(PostgresIndex.lockClass), \(PostgresIndex.LockRole.writers.rawValue))", logger: logger)
            let commit = Task {
                try await index.commit([PostgresIndexTests.prepared(study: study, series: study + ".1", sop: study + ".1")],
                                       policy: .reject, reason: "stored", audit: nil)
            }
            let held = try await studyLocksHeldWhileACommitWaits(side)
            XCTAssertEqual(held, 0, "the commit took a study lock before the writers lock")
            try await side.query("COMMIT", logger: logger)
            let outcomes = try await commit.value
            XCTAssertEqual(outcomes.map(\.status), [.stored])
        }
        await index.close()
    }

    func testACommitWaitsForItsStudysLock() async throws {
        let url = try await TestBackends.freshPostgresDatabase()
        let index = try await TestBackends.postgresIndex(url: url)
        let study = "1.2.826.0.1.3680043.9.7433.62", other = "1.2.826.0.1.3680043.9.7433.63"
        try await TestBackends.withConnection(url: url) { side in
            try await side.query("BEGIN", logger: logger)
            try await side.query("SELECT pg_advisory_xact_lock(hashtextextended(\(study), 0))", logger: logger)
            let commit = Task {
                try await index.commit([PostgresIndexTests.prepared(study: other, series: other + ".1", sop: other + ".1"),
                                        PostgresIndexTests.prepared(study: study, series: study + ".1", sop: study + ".1")],
                                       policy: .reject, reason: "stored", audit: nil)
            }
            // The study held is the only lock it waits for; nothing is stored meanwhile.
            _ = try await studyLocksHeldWhileACommitWaits(side)
            let stored = try await index.instance(sopInstanceUID: other + ".1")
            XCTAssertNil(stored, "the commit went on without its study's lock")
            try await side.query("COMMIT", logger: logger)
            let outcomes = try await commit.value
            XCTAssertEqual(outcomes.map(\.status), [.stored, .stored])
        }
        await index.close()
    }
}
