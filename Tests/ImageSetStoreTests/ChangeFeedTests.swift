import DICOMCore
import DICOMParser
import Foundation
import GRDB
@testable import ImageSetStore
import PostgresIndex
import StoreTestSupport
import XCTest

/// The change feed at the store (Docs/events.md), on the index the run asks for
/// (TESSERA_TEST_INDEX=postgresql: PostgreSQL): every change appends its events in its own
/// transaction, numbered without gaps; no event without the change, no change without its events.
final class ChangeFeedTests: XCTestCase {
    let study = "1.2.826.0.1.3680043.9.7433.1"
    let series = "1.2.826.0.1.3680043.9.7433.1.1"

    /// A store whose index a test can reach under (`tamper`), on either backend.
    func openStore() async throws -> (Datastore, tamper: (String) async throws -> Void) {
        let folder = try StoreFixtures.temporaryFolder("feed")
        guard TestBackends.indexIsPostgres else {
            let store = try Datastore(folder: folder)
            return (store, { sql in try DatabaseQueue(path: folder + "/index.sqlite").write { try $0.execute(sql: sql) } })
        }
        let url = try await TestBackends.freshPostgresDatabase()
        let index = try await TestBackends.postgresIndex(url: url)
        let store = try await Datastore.open(folder: folder, index: index, blobs: try FileBlobStore(root: folder + "/blobs"), shared: false)
        return (store, { sql in try await TestBackends.execute(sql, url: url) })
    }

    /// Image set ids are random: named A, B, C… in the order the feed first mentions them.
    struct Names {
        var names: [String: String] = [:]
        mutating func line(_ e: ChangeEvent) -> String {
            var parts = [e.type.rawValue]
            if let id = e.imageSetId {
                if names[id] == nil { names[id] = String(UnicodeScalar(UInt8(65 + names.count))) }
                parts.append(names[id]!)
            }
            if let v = e.version { parts.append("v\(v)") }
            if let sop = e.sopInstanceUID { parts.append(String(sop.split(separator: ".").last!)) }
            if let p = e.isPrimary { parts.append(p ? "primary" : "non-primary") }
            if let s = e.state { parts.append(s) }
            if let c = e.conflicts { parts.append(c.map(\.keyword).joined(separator: ",")) }
            if let n = e.versionsRemoved { parts.append("-\(n)") }
            return parts.joined(separator: " ")
        }
    }

    /// A replacement that moves the instance to another patient (a study re-sent with a corrected
    /// Patient ID) says in the same transaction that it left the old image set and patient, then
    /// where it went; consumers filing by patient drop it from the old one (a replacement in place is
    /// only `instance.replaced`, as the scripted history shows).
    func testAReplacementThatMovesTheInstanceSaysWhereItLeft() async throws {
        let (store, _) = try await openStore()
        let sop = "\(study).1.7"
        await XCTAssertEqualAsync(await store.ingest(bytes: try StoreFixtures.instance(sop: sop, patientID: "P-1")).status, .stored)
        try await store.setPolicy(.replace)
        let before = try await store.latestChangeSequence()
        await XCTAssertEqualAsync(await store.ingest(bytes: try StoreFixtures.instance(sop: sop, patientID: "P-9")).status, .replaced)
        let events = try await store.changes(after: before, limit: 100)
        let original = try await store.changes(after: 0, limit: 1).first?.imageSetId
        let left = try XCTUnwrap(events.first { $0.type == .instanceDeleted }, "\(events.map(\.type))")
        XCTAssertEqual(left.imageSetId, original)
        XCTAssertEqual(left.patientID, "P-1")
        XCTAssertEqual(left.sopInstanceUID, sop)
        XCTAssertEqual(left.seriesInstanceUID, series)
        let arrived = try XCTUnwrap(events.first { $0.type == .instanceReplaced })
        XCTAssertEqual(arrived.patientID, "P-9")
        XCTAssertNotEqual(arrived.imageSetId, original)
        XCTAssertLessThan(left.sequence, arrived.sequence, "where it left, then where it went")
        XCTAssertEqual(events.filter { $0.type == .instanceDeleted }.count, 1)
    }

    /// A scripted history (store, a conflicting patient, replace, delete a series, prune, the
    /// study re-sent under another patient, a duplicate): each change's events, once each, in order,
    /// with their fields; numbered 1…N.
    func testEveryChangeAppendsItsEventsOnceInOrder() async throws {
        let (store, _) = try await openStore()
        let sop = { (n: Int) in "\(self.study).1.\(n)" }
        let first = try StoreFixtures.instance(sop: sop(1))
        await XCTAssertEqualAsync(await store.ingest(bytes: first).status, .stored)
        await XCTAssertEqualAsync(await store.ingest(bytes: try StoreFixtures.instance(sop: sop(2), patientID: "P-2")).status, .stored)
        try await store.setPolicy(.replace)
        let replacement = try StoreFixtures.instance(sop: sop(1), extra: [StoreFixtures.text(Tag(0x0008_103E), .LO, "REPLACED")])
        await XCTAssertEqualAsync(await store.ingest(bytes: replacement).status, .replaced)
        let removed = try await store.remove(study: study, series: series)
        XCTAssertEqual(removed, 1)
        let pruned = try await store.prune(imageSetID: try await XCTUnwrapAsync(await store.index.changes(after: 0, limit: 1).first?.imageSetId), keep: 1)
        XCTAssertEqual(pruned.versionsRemoved, 2)
        let third = try StoreFixtures.instance(sop: sop(3), patientID: "P-3")
        await XCTAssertEqualAsync(await store.ingest(bytes: third).status, .stored)
        await XCTAssertEqualAsync(await store.ingest(bytes: third).status, .duplicate)

        let events = try await store.changes(after: 0, limit: 1000)
        var names = Names()
        XCTAssertEqual(events.map { names.line($0) }, [
            "imageset.created A v1 primary", "instance.stored A v1 1 primary", "imageset.version A v1",
            "imageset.created B v1 non-primary", "imageset.conflict B v1 non-primary PatientID", "instance.stored B v1 2 non-primary",
            "imageset.version B v1",
            "instance.replaced A v2 1 primary", "imageset.version A v2",
            "instance.deleted A v3 1 primary", "imageset.version A v3", "imageset.state A v3 DELETED",
            "versions.pruned A v3 -2",
            // The primary set holds nothing: the re-sent study's new set becomes primary.
            "imageset.created C v1 non-primary", "imageset.primary A v3 non-primary", "imageset.conflict A v3 non-primary PatientID",
            "imageset.conflict B v1 non-primary PatientID", "imageset.primary C v1 primary", "instance.stored C v1 3 primary",
            "imageset.version C v1",
        ])
        XCTAssertEqual(events.map(\.sequence), Array(1...Int64(events.count)), "numbered 1…N without gaps")
        let latest = try await store.latestChangeSequence()
        XCTAssertEqual(latest, Int64(events.count))
        for e in events {
            XCTAssertEqual(e.studyInstanceUID, study, "\(e.type)")
            XCTAssertNotNil(e.patientID, "\(e.type)")
            XCTAssertLessThan(abs(e.time.timeIntervalSinceNow), 60)
        }
        let stored = try XCTUnwrap(events.first { $0.type == .instanceStored })
        XCTAssertEqual(stored.seriesInstanceUID, series)
        XCTAssertEqual(stored.transferSyntaxUID, TransferSyntax.explicitVRLittleEndian.uid)
        XCTAssertEqual(stored.size, first.count)
        let replaced = try XCTUnwrap(events.first { $0.type == .instanceReplaced })
        XCTAssertEqual(replaced.size, replacement.count)
        let deleted = try XCTUnwrap(events.first { $0.type == .instanceDeleted })
        XCTAssertEqual(deleted.size, replacement.count, "the deleted copy is the replacement")
        XCTAssertEqual(deleted.transferSyntaxUID, TransferSyntax.explicitVRLittleEndian.uid)
        let conflict = try XCTUnwrap(events.first { $0.type == .imageSetConflict }?.conflicts?.first)
        XCTAssertEqual(conflict, AttributeConflict(keyword: "PatientID", imageSetValue: "P-1", instanceValue: "P-2"))
        XCTAssertEqual(events.first { $0.type == .imageSetVersion }?.reason, "test: 1 instance(s) added")
        // The one JSON encoding, read back the same.
        let json = ChangeEvent.json(events)
        XCTAssertEqual(ChangeEvent.json(try ChangeEvent.makeDecoder().decode([ChangeEvent].self, from: json)), json)
        // Pages follow the cursor.
        let page = try await store.changes(after: 3, limit: 2)
        XCTAssertEqual(page.map(\.sequence), [4, 5])
    }

    /// No event without the change and no change without its events: an instance whose insert fails
    /// leaves no event (its savepoint takes them back), and a commit whose feed append fails stores nothing.
    func testAFailedChangeLeavesNoEventAndAFailedAppendNoChange() async throws {
        let (store, tamper) = try await openStore()
        if TestBackends.indexIsPostgres {
            try await tamper("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$")
            try await tamper("CREATE TRIGGER refuse_sop BEFORE INSERT ON instance FOR EACH ROW WHEN (NEW.sop_instance_uid = '\(study).9.2') EXECUTE FUNCTION refuse()")
        } else {
            try await tamper("CREATE TRIGGER refuse_sop BEFORE INSERT ON instance WHEN NEW.sop_instance_uid = '\(study).9.2' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        }
        var staged: [StagedBlob] = []
        for n in 1...2 {
            staged.append(try await store.blobs.stage(StoreFixtures.chunks(try StoreFixtures.instance(sop: "\(study).9.\(n)")), limit: 1 << 30))
        }
        let outcomes = await store.ingest(staged: staged, reason: "test")
        XCTAssertEqual(outcomes.map(\.status), [.stored, .failed])
        var names = Names()
        let events = try await store.changes(after: 0, limit: 100)
        XCTAssertEqual(events.map { names.line($0) }, ["imageset.created A v1 primary", "instance.stored A v1 1 primary", "imageset.version A v1"])

        if TestBackends.indexIsPostgres {
            try await tamper("CREATE TRIGGER refuse_feed BEFORE INSERT ON change_event FOR EACH ROW EXECUTE FUNCTION refuse()")
        } else {
            try await tamper("CREATE TRIGGER refuse_feed BEFORE INSERT ON change_event BEGIN SELECT RAISE(ABORT, 'refused'); END")
        }
        await XCTAssertEqualAsync(await store.ingest(bytes: try StoreFixtures.instance(sop: "\(study).9.3")).status, .failed)
        await XCTAssertThrowsErrorAsync(try await store.remove(study: study))
        let latest = try await store.latestChangeSequence()
        XCTAssertEqual(latest, 3)
        let current = try await store.index.currentInstances(study: study, series: nil, sop: nil, scope: .primary)
        XCTAssertEqual(current.map(\.sopInstanceUID), ["\(study).9.1"], "neither the store nor the delete happened")
    }

    /// Retention removes a prefix of the feed; a cursor inside it gets an error naming the oldest
    /// sequence still held, and numbering goes on after it.
    func testRetentionPrunesAPrefixAndACursorInsideItIsAClearError() async throws {
        let (store, _) = try await openStore()
        await XCTAssertEqualAsync(await store.ingest(bytes: try StoreFixtures.instance(sop: "\(study).8.1")).status, .stored)
        let removedWithoutSetting = try await store.pruneChangeFeed(now: Date(timeIntervalSinceNow: 10 * 86_400))
        XCTAssertEqual(removedWithoutSetting, 0, "unset, the feed keeps everything")
        try await store.setChangeFeedRetention(days: 1)
        XCTAssertEqual(store.changeFeedRetentionDays, 1)
        let kept = try await store.pruneChangeFeed()
        XCTAssertEqual(kept, 0, "today's events are within a day")
        let removed = try await store.pruneChangeFeed(now: Date(timeIntervalSinceNow: 2 * 86_400))
        XCTAssertEqual(removed, 3)
        do {
            _ = try await store.changes(after: 1, limit: 10)
            XCTFail("a pruned range is an error")
        } catch let e as ChangeFeedPrunedError {
            XCTAssertEqual(e.oldestHeld, 4)
            XCTAssertTrue(e.description.contains("the oldest sequence still held is 4"), e.description)
        }
        let afterPruned = try await store.changes(after: 3, limit: 10)
        XCTAssertEqual(afterPruned, [])
        let oldest = try await store.oldestChangeSequence()
        XCTAssertEqual(oldest, 4)
        await XCTAssertEqualAsync(await store.ingest(bytes: try StoreFixtures.instance(sop: "\(study).8.2")).status, .stored)
        let next = try await store.changes(after: 3, limit: 10)
        XCTAssertEqual(next.map(\.sequence), [4, 5])
    }

    /// SQLite's prune deletes in chunks (one writer: a long first prune must not hold STOW up), and the
    /// chunks together remove exactly the old prefix.
    func testSQLitePrunesInChunks() async throws {
        let folder = try StoreFixtures.temporaryFolder("feed-chunks")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try Datastore(folder: folder)
        for n in 1...4 { await XCTAssertEqualAsync(await store.ingest(bytes: try StoreFixtures.instance(sop: "\(study).9.\(n)")).status, .stored) }
        let latest = try await store.latestChangeSequence()
        XCTAssertGreaterThan(latest, 5)
        let index = try XCTUnwrap(store.index as? SQLiteIndex)
        let removed = try index.pruneChanges(before: Date(timeIntervalSinceNow: 86_400), chunk: 2)
        XCTAssertEqual(Int64(removed), latest)
        XCTAssertEqual(try index.changeFeedPrunedThrough(), latest)
        let left = try await store.changes(after: latest, limit: 10)
        XCTAssertEqual(left, [])
    }

    /// A waiter wakes at once when this process commits, and returns at its timeout otherwise.
    func testWaitForChangesWakesOnACommit() async throws {
        let (store, _) = try await openStore()
        let clock = ContinuousClock()
        let start = clock.now
        let idle = try await store.waitForChanges(after: 0, timeout: .milliseconds(200))
        XCTAssertEqual(idle, 0)
        XCTAssertGreaterThanOrEqual(clock.now - start, .milliseconds(200))
        let waiter = Task { try await store.waitForChanges(after: 0, timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(100))
        let committed = clock.now
        await XCTAssertEqualAsync(await store.ingest(bytes: try StoreFixtures.instance(sop: "\(study).7.1")).status, .stored)
        let woke = try await waiter.value
        XCTAssertEqual(woke, 3)
        XCTAssertLessThan(clock.now - committed, .seconds(5), "woken by the commit, not the timeout")
        // Cancelled (a stream whose client left): returns without waiting out its timeout.
        let cancelled = Task { try await store.waitForChanges(after: 3, timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(100))
        cancelled.cancel()
        let value = try await cancelled.value
        XCTAssertEqual(value, 3)
    }
}
