import Foundation
@testable import ImageSetStore
import PostgresIndex
import StoreTestSupport
import Synchronization
import XCTest

/// The change feed with several replicas writing one PostgreSQL index (Docs/events.md,
/// "Ordering"). Needs TESSERA_TEST_POSTGRES, like PostgresIndexTests; without it it fails.
final class ChangeFeedReplicaTests: XCTestCase {
    /// Two clients (two connection pools, as two replicas) commit at once, into the same study and
    /// into their own, while a third reads the feed after its cursor as fast as it can: every page it
    /// reads starts right after the cursor and has no hole, so it never sees a number whose
    /// predecessor arrives later; in the end it has read every event once, numbered 1…N.
    func testTwoReplicasCommittingAtOnceLeaveNoGapAReaderCouldSee() async throws {
        let url = try await TestBackends.freshPostgresDatabase()
        let writers = [try await TestBackends.postgresIndex(url: url), try await TestBackends.postgresIndex(url: url)]
        let reader = try await TestBackends.postgresIndex(url: url)
        let shared = "1.2.826.0.1.3680043.9.7433.88"
        let done = Atomic<Bool>(false)
        let readTask = Task { () -> (seen: [Int64], problems: [String]) in
            var cursor: Int64 = 0, seen: [Int64] = [], problems: [String] = []
            while true {
                let finished = done.load(ordering: .acquiring)
                let page = try await reader.changes(after: cursor, limit: 50)
                for (k, e) in page.enumerated() where e.sequence != cursor + 1 + Int64(k) {
                    problems.append("after \(cursor) read \(page.map(\.sequence))")
                    break
                }
                seen += page.map(\.sequence)
                cursor = page.last?.sequence ?? cursor
                if finished && page.isEmpty { return (seen, problems) }
            }
        }
        let outcomes = try await withThrowingTaskGroup(of: [IngestOutcome].self) { group in
            for w in 0..<2 {
                group.addTask {
                    var out: [IngestOutcome] = []
                    for i in 0..<30 {
                        // Alternately the shared study (its lock orders the two) and one of this writer's own (no lock in common).
                        let study = i % 2 == 0 ? shared : "\(shared).\(w).\(i)"
                        let p = PostgresIndexTests.prepared(study: study, series: "\(study).1", sop: "\(shared).\(w).\(i).1")
                        out += try await writers[w].commit([p], policy: .reject, reason: "stored", audit: nil)
                    }
                    return out
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        done.store(true, ordering: .releasing)
        let (seen, problems) = try await readTask.value
        XCTAssertEqual(outcomes.filter { $0.status == .stored }.count, 60)
        XCTAssertEqual(problems, [], "a reader saw a number before its predecessor")
        let latest = try await reader.latestChangeSequence()
        XCTAssertEqual(seen, Array(1...latest), "every event once, in order")
        let all = try await reader.changes(after: 0, limit: 1000)
        XCTAssertEqual(all.filter { $0.type == .instanceStored }.count, 60)
        // Sets created: the shared study's once, and each of the 30 own studies.
        XCTAssertEqual(all.filter { $0.type == .imageSetCreated }.count, 31)
        for r in writers + [reader] { await r.close() }
    }
}
