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

/// What the feed adds to a commit, measured in one run (Docs/performance.md, "Change feed").
final class ChangeFeedCostTests: XCTestCase {
    /// SQLite: 100-instance batches, each committing its ~200 events (created, stored, version), against
    /// the same number of events appended alone in a transaction of their own.
    func testAppendingABatchsEventsIsASmallShareOfItsCommit() throws {
        let folder = try StoreFixtures.temporaryFolder("feed-cost")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let index = try SQLiteIndex(path: folder + "/index.sqlite")
        let clock = ContinuousClock()
        var commits: [Duration] = [], appends: [Duration] = [], empties: [Duration] = [], events = 0
        for round in 0..<5 {
            let batch = (0..<100).map { i in
                PostgresIndexTests.prepared(study: "1.2.826.0.1.3680043.9.7433.99.\(round).\(i % 10)", series: "1.2.826.0.1.3680043.9.7433.99.\(round).\(i % 10).1",
                                            sop: "1.2.826.0.1.3680043.9.7433.99.\(round).\(i)")
            }
            let before = try index.latestChangeSequence()
            commits.append(try clock.measure { _ = try index.commit(batch, policy: .reject, reason: "stored", audit: nil) })
            let made = try index.changes(after: before, limit: 10_000)
            events = made.count
            var drafts = ChangeDrafts(now: Date().timeIntervalSince1970)
            for e in made { drafts.add(e.type, set: e.imageSetId, version: e.version, study: e.studyInstanceUID, patient: e.patientID,
                                       series: e.seriesInstanceUID, sop: e.sopInstanceUID, transferSyntax: e.transferSyntaxUID, size: e.size,
                                       isPrimary: e.isPrimary, reason: e.reason) }
            appends.append(try clock.measure { try index.pool.write { try SQLiteIndex.appendChanges(drafts, in: $0) } })
            // A transaction's own cost (its WAL sync), to take out of the append's.
            empties.append(try clock.measure { try index.pool.write { try $0.execute(sql: "UPDATE change_feed_head SET sequence = sequence") } })
        }
        let commit = commits.sorted()[2], append = appends.sorted()[2], empty = empties.sorted()[2]
        print("change feed cost: a 100-instance commit with its \(events) events, median \(commit); the events appended alone, median \(append); an empty write transaction, median \(empty)")
        XCTAssertLessThan(append, commit, "the events are a part of the commit")
    }
}
