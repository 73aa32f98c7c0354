import Foundation
@testable import ImageSetStore
import NIOCore
import PostgresIndex
import PostgresNIO
import StoreTestSupport
import NIOConcurrencyHelpers
import XCTest

/// What is PostgreSQL's own: migrations, URLs, several replicas writing at once, and parity with
/// the SQLite index operation for operation. These need TESSERA_TEST_POSTGRES (Tools/test starts
/// a scratch cluster); without it they fail, never skip.
final class PostgresIndexTests: XCTestCase {
    func testMigrationsApplyOnceWhenTwoReplicasStartTogether() async throws {
        let url = try await TestBackends.freshPostgresDatabase()
        // Both migrate under the advisory lock; the second finds the work done.
        async let a = TestBackends.postgresIndex(url: url)
        async let b = TestBackends.postgresIndex(url: url)
        let (first, second) = try await (a, b)
        let versions = try await first.schemaVersions()
        XCTAssertEqual(versions, [1, 2, 3, 4, 5, 6])
        let again = try await second.schemaVersions()
        XCTAssertEqual(again, [1, 2, 3, 4, 5, 6])
        await first.close()
        await second.close()
        // A third start applies nothing.
        let third = try await TestBackends.postgresIndex(url: url)
        let afterRestart = try await third.schemaVersions()
        XCTAssertEqual(afterRestart, [1, 2, 3, 4, 5, 6])
        await third.close()
    }

    /// A blob reserved by a replica about to commit it is never swept, whatever the grace (even 0),
    /// while an unreserved, unreferenced one is; and a sweep waits for nothing it need not.
    func testAReservedBlobIsNotSweptEvenWithNoGrace() async throws {
        let index = try await TestBackends.postgresIndex(url: try await TestBackends.freshPostgresDatabase())
        let reserved = BlobID(hex: String(repeating: "a", count: 64))!, loose = BlobID(hex: String(repeating: "b", count: 64))!
        try await index.reserveBlobs([reserved])
        let removed = NIOLockedValueBox<[BlobID]>([])
        let keptReserved = try await index.removeOrphanBlob(reserved, grace: 0) { removed.withLockedValue { $0.append(reserved) } }
        let tookLoose = try await index.removeOrphanBlob(loose, grace: 0) { removed.withLockedValue { $0.append(loose) } }
        XCTAssertFalse(keptReserved)
        XCTAssertTrue(tookLoose)
        XCTAssertEqual(removed.withLockedValue { $0 }, [loose])
        await index.close()
    }

    func testAReplicaRefusesASchemaNewerThanItKnows() async throws {
        let url = try await TestBackends.freshPostgresDatabase()
        let first = try await TestBackends.postgresIndex(url: url)
        await first.close()
        // What a later Tessera would have recorded.
        try await TestBackends.execute("INSERT INTO schema_migration(version, name, applied_at) VALUES (99, 'from the future', 0)", url: url)
        do {
            let index = try await TestBackends.postgresIndex(url: url)
            await index.close()
            XCTFail("a schema newer than this binary's was accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("schema version 99, newer than this Tessera knows"), "\(error)")
        }
    }

    /// A replica of a Tessera before migration 6, already running when another applied it, would write
    /// instance rows without the stored study summaries: its writes are refused (it says no schema in
    /// its lock statement), while this binary's go through.
    func testAWriterThatDoesNotKeepTheStudySummariesIsRefused() async throws {
        let url = try await TestBackends.freshPostgresDatabase()
        let index = try await TestBackends.postgresIndex(url: url)
        let study = "1.2.826.0.1.3680043.9.7433.77"
        let stored = try await index.commit([Self.prepared(study: study, series: "\(study).1", sop: "\(study).1")], policy: .reject,
                                            reason: "stored", audit: nil)
        XCTAssertEqual(stored.map(\.status), [.stored])
        do {
            // An older binary's delete: no schema said, a statement on the instance rows.
            try await TestBackends.execute("UPDATE instance SET removed_version = latest_version FROM image_set WHERE false", url: url)
            XCTFail("a write without the writer's schema was accepted")
        } catch let error as PSQLError {
            XCTAssertEqual(error.serverInfo?[.sqlState], "55000")
            XCTAssertEqual(error.serverInfo?[.message],
                           "this Tessera is older than the PostgreSQL index's schema (6, stored study summaries): upgrade this replica")
        }
        let removed = try await index.removeInstances(study: study, series: nil, sop: nil, scope: .primary, reason: "deleted", audit: nil)
        XCTAssertEqual(removed.values.reduce(0, +), 1)
        await index.close()
    }

    func testBadURLsAreClearErrors() async throws {
        for (url, expected) in [("mysql://u@localhost/db", "is not a PostgreSQL URL"), ("postgresql:///db", "names no host"),
                                ("postgresql://localhost/db", "names no user"), ("not a url", "is not a PostgreSQL URL"),
                                ("postgresql://u@localhost/db?sslmode=sometimes", "sslmode sometimes")] {
            do {
                let index = try await PostgresIndex.connect(url: url, logger: TestBackends.logger)
                await index.close()
                XCTFail("\(url) was accepted")
            } catch {
                XCTAssertTrue("\(error)".contains(expected), "\(url): \(error)")
            }
        }
        // Nothing listens there: a clear error at once, not a pool retrying for ever. PostgreSQL's
        // port is taken from the test cluster's URL, with a database that does not exist.
        let start = Date()
        do {
            _ = try await PostgresIndex.connect(url: "postgresql://u@127.0.0.1:1/db?sslmode=disable", logger: TestBackends.logger)
            XCTFail("a closed port was accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("cannot open the PostgreSQL index at postgresql://u@127.0.0.1:1/db"), "\(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 15)
        var missing = try XCTUnwrap(URLComponents(string: try TestBackends.postgresURL()))
        missing.path = "/no_such_database"
        do {
            _ = try await PostgresIndex.connect(url: missing.string!, logger: TestBackends.logger)
            XCTFail("a missing database was accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("does not exist"), "\(error)")
        }
        // The password never shows in an error.
        do {
            _ = try await PostgresIndex.connect(url: "mysql://u:secret@localhost/db", logger: TestBackends.logger)
        } catch {
            XCTAssertFalse("\(error)".contains("secret"), "\(error)")
        }
    }

    /// Two replicas (two PostgresIndex clients, two connection pools) commit into one study at once:
    /// one primary image set, exact counts and a version history without gaps or repeats.
    func testConcurrentCommitsFromTwoReplicasKeepOnePrimaryAndGapFreeVersions() async throws {
        let url = try await TestBackends.freshPostgresDatabase()
        let replicas = [try await TestBackends.postgresIndex(url: url), try await TestBackends.postgresIndex(url: url)]
        let study = "1.2.826.0.1.3680043.9.7433.77"
        // Task 3's instances disagree with the others on Patient Name: a non-primary set, grown concurrently too.
        let outcomes = try await withThrowingTaskGroup(of: [IngestOutcome].self) { group in
            for task in 0..<4 {
                group.addTask {
                    var out: [IngestOutcome] = []
                    for i in 0..<25 {
                        let p = Self.prepared(study: study, series: "\(study).\(task)", sop: "\(study).\(task).\(i)",
                                              patientName: task == 3 ? "DOE^JOHN" : "DOE^JANE")
                        out += try await replicas[(task + i) % 2].commit([p], policy: .reject, reason: "stored", audit: nil)
                    }
                    return out
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        XCTAssertEqual(outcomes.count, 100)
        XCTAssertEqual(outcomes.filter { $0.status == .stored }.count, 100, outcomes.compactMap(\.message).joined(separator: "; "))
        let sets = Set(outcomes.compactMap(\.imageSetID))
        XCTAssertEqual(sets.count, 2)
        var primaries = 0
        for id in sets {
            let summary = try await XCTUnwrapAsync(try await replicas[0].imageSet(id))
            let expected = summary.isPrimary ? 75 : 25
            if summary.isPrimary { primaries += 1 }
            XCTAssertEqual(summary.instanceCount, expected)
            XCTAssertEqual(summary.version, expected, "one version per commit")
            let versions = try await replicas[1].versions(of: id)
            XCTAssertEqual(versions.map(\.version), Array(1...expected), "versions without gaps or repeats")
            XCTAssertEqual(versions.map(\.instanceCount), Array(1...expected), "each version counts one more instance")
            let current = try await replicas[1].instances(of: id, version: nil)
            XCTAssertEqual(current.count, expected)
        }
        XCTAssertEqual(primaries, 1, "one primary image set for the study")
        for r in replicas { await r.close() }
    }

    /// Two replicas refreshing the same pending series documents at once: each document is written
    /// once, and it is the one built from the rows.
    func testTwoReplicasRefreshingTheSameSeriesWriteEachDocumentOnce() async throws {
        let url = try await TestBackends.freshPostgresDatabase()
        let a = try await TestBackends.postgresIndex(url: url), b = try await TestBackends.postgresIndex(url: url)
        let study = "1.2.826.0.1.3680043.9.7433.66"
        let batch = (0..<30).map { Self.prepared(study: study, series: "\(study).\($0 % 6)", sop: "\(study).\($0)", instanceNumber: $0) }
        let outcomes = try await a.commit(batch, policy: .reject, reason: "stored", audit: nil)
        let set = try XCTUnwrap(outcomes.first?.imageSetID)
        async let refreshedA = a.refreshPendingSeriesMetadata()
        async let refreshedB = b.refreshPendingSeriesMetadata()
        let total = try await refreshedA + refreshedB
        XCTAssertEqual(total, 6, "each of the six pending documents is written by one replica")
        for series in 0..<6 {
            let uid = "\(study).\(series)"
            let gz = try await XCTUnwrapAsync(try await b.seriesMetadataGzip(imageSetID: set, seriesInstanceUID: uid))
            let expected = "[" + batch.filter { $0.seriesInstanceUID == uid }.map { String(decoding: $0.metadataJSON, as: UTF8.self) }.joined(separator: ",") + "]"
            XCTAssertEqual(String(decoding: try SeriesMetadata.gunzip(gz), as: UTF8.self), expected)
        }
        let again = try await b.refreshPendingSeriesMetadata()
        XCTAssertEqual(again, 0)
        await a.close()
        await b.close()
    }

    /// The same operations on SQLite and on PostgreSQL give the same outcomes, versions, rows,
    /// frames, metadata documents, removals and prunes (image set ids aside, which are random).
    func testPostgresIndexMatchesSQLiteIndex() async throws {
        let folder = try StoreFixtures.temporaryFolder("pg-parity")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let sqlite = try SQLiteIndex(path: folder + "/index.sqlite")
        let pg = try await TestBackends.postgresIndex(url: try await TestBackends.freshPostgresDatabase())
        let study = "1.2.826.0.1.3680043.9.7433.88"
        var batch = (1...6).map { Self.prepared(study: study, series: "\(study).\($0 % 2)", sop: "\(study).\($0)", instanceNumber: $0 == 3 ? nil : 7 - $0) }
        batch[1].frames = [FrameRecord(number: 1, offset: 10, length: 5, fragments: [10..<12, 20..<23]),
                           FrameRecord(number: 2, offset: 30, length: 4, fragments: nil)]
        batch.append(Self.prepared(study: study, series: "\(study).9", sop: "\(study).50", patientName: "DOE^JOHN"))
        batch.append(batch[0])  // a duplicate
        var changed = batch[2]
        changed.blob = Self.blob("changed")
        batch.append(changed)   // refused under .reject
        let a = try sqlite.commit(batch, policy: .reject, reason: "stored", audit: nil)
        let b = try await pg.commit(batch, policy: .reject, reason: "stored", audit: nil)
        var names = Names()
        XCTAssertEqual(a.map { names.sqlite($0) }, b.map { names.postgres($0) })
        // Replacements, one of them moving an instance into the non-primary set.
        var moved = batch[3]
        moved.attributes.patientName = "DOE^JOHN"
        moved.blob = Self.blob("moved")
        let c = try sqlite.commit([changed, moved], policy: .replace, reason: "replaced", audit: nil)
        let d = try await pg.commit([changed, moved], policy: .replace, reason: "replaced", audit: nil)
        XCTAssertEqual(c.map { names.sqlite($0) }, d.map { names.postgres($0) })
        let removedA = try sqlite.removeInstances(study: study, series: "\(study).1", sop: nil, scope: .primary, reason: "deleted", audit: nil)
        let removedB = try await pg.removeInstances(study: study, series: "\(study).1", sop: nil, scope: .primary, reason: "deleted", audit: nil)
        XCTAssertEqual(removedA.mapKeys { names.bySQLite[$0] }, removedB.mapKeys { names.byPostgres[$0] })
        // Study searches read the stored summaries: the same counts and modalities on both.
        func studies(_ rows: [SearchRow]) -> [String] {
            rows.map { "\($0.studyInstanceUID) \($0.numberOfStudyRelatedSeries ?? -1) \($0.numberOfStudyRelatedInstances ?? -1) \($0.modalitiesInStudy)" }
        }
        let studiesA = try sqlite.search(SearchQuery(level: .study)), studiesB = try await pg.search(SearchQuery(level: .study))
        XCTAssertEqual(studies(studiesA), studies(studiesB))
        XCTAssertEqual(studies(studiesA), ["\(study) 1 2 [\"CT\"]"], "the primary set: series 0 without the moved instance")

        for (label, idA) in names.bySQLite.sorted(by: { $0.value < $1.value }).map({ ($0.value, $0.key) }) {
            let idB = try XCTUnwrap(names.byPostgres.first { $0.value == label }?.key)
            let sa = try XCTUnwrap(try sqlite.imageSet(idA)), sb = try await XCTUnwrapAsync(try await pg.imageSet(idB))
            XCTAssertEqual([sa.isPrimary, sa.state, sa.version, sa.seriesCount, sa.instanceCount, sa.frameCount, sa.conflicts, sa.attributes] as [AnyHashable],
                           [sb.isPrimary, sb.state, sb.version, sb.seriesCount, sb.instanceCount, sb.frameCount, sb.conflicts, sb.attributes], label)
            let va = try sqlite.versions(of: idA), vb = try await pg.versions(of: idB)
            XCTAssertEqual(va.map { "\($0.version) \($0.instanceCount) \($0.reason)" }, vb.map { "\($0.version) \($0.instanceCount) \($0.reason)" }, label)
            for v in [nil] + va.map(\.version) {
                let ia = try sqlite.instances(of: idA, version: v), ib = try await pg.instances(of: idB, version: v)
                XCTAssertEqual(ia.map(Self.comparable), ib.map(Self.comparable), "\(label) v\(v ?? 0)")
            }
            for series in Set(try sqlite.instances(of: idA, version: 1).map(\.seriesInstanceUID)).sorted() {
                let ma = try sqlite.seriesMetadata(imageSetID: idA, seriesInstanceUID: series)
                let mb = try await pg.seriesMetadata(imageSetID: idB, seriesInstanceUID: series)
                XCTAssertEqual(ma, mb, "\(label) \(series), built from rows")
                let pending = try await pg.seriesMetadataGzip(imageSetID: idB, seriesInstanceUID: series)
                XCTAssertNil(pending, "a pending document is not served")
            }
        }
        let refreshedA = try sqlite.refreshPendingSeriesMetadata()
        let refreshedB = try await pg.refreshPendingSeriesMetadata()
        XCTAssertEqual(refreshedA, refreshedB)
        for (idB, label) in names.byPostgres {
            let idA = try XCTUnwrap(names.bySQLite.first { $0.value == label }?.key)
            for series in Set(try await pg.instances(of: idB, version: nil).map(\.seriesInstanceUID)) {
                let gzA = try XCTUnwrap(try sqlite.seriesMetadataGzip(imageSetID: idA, seriesInstanceUID: series))
                let gzB = try await XCTUnwrapAsync(try await pg.seriesMetadataGzip(imageSetID: idB, seriesInstanceUID: series))
                XCTAssertEqual(try SeriesMetadata.gunzip(gzA), try SeriesMetadata.gunzip(gzB), "\(label) \(series), stored")
            }
        }
        // Per instance: current lookups, frames (fragment lists included) and metadata.
        for p in batch {
            let ra = try sqlite.instance(sopInstanceUID: p.sopInstanceUID), rb = try await pg.instance(sopInstanceUID: p.sopInstanceUID)
            XCTAssertEqual(ra.map(Self.comparable), rb.map(Self.comparable), p.sopInstanceUID)
            guard let ra, let rb else { continue }
            let fa = try sqlite.frames(of: ra.id), fb = try await pg.frames(of: rb.id)
            XCTAssertEqual(fa, fb)
            let ma = try sqlite.metadata(of: ra.id), mb = try await pg.metadata(of: rb.id)
            XCTAssertEqual(ma, mb)
            let ca = try sqlite.currentInstance(rowID: ra.id), cb = try await pg.currentInstance(rowID: rb.id)
            XCTAssertEqual(ca.map(Self.comparable), cb.map(Self.comparable))
        }
        XCTAssertEqual(try XCTUnwrap(batch[1].frames.first).fragments, [10..<12, 20..<23])
        let ca = try sqlite.currentInstances(study: study, series: nil, sop: nil, scope: .primary)
        let cb = try await pg.currentInstances(study: study, series: nil, sop: nil, scope: .primary)
        XCTAssertEqual(ca.map(Self.comparable), cb.map(Self.comparable))
        let referencedB = try await pg.referencedBlobs()
        XCTAssertEqual(try sqlite.referencedBlobs(), referencedB)
        for blob in [batch[0].blob, Self.blob("never stored")] {
            let ra = try sqlite.isReferenced(blob), rb = try await pg.isReferenced(blob)
            XCTAssertEqual(ra, rb)
        }
        let pa = try sqlite.pruneVersions(imageSetID: nil, keep: 1, audit: nil)
        let pb = try await pg.pruneVersions(imageSetID: nil, keep: 1, audit: nil)
        XCTAssertEqual([pa.versionsRemoved, pa.instanceRowsRemoved], [pb.versionsRemoved, pb.instanceRowsRemoved])
        XCTAssertEqual(pa.blobs, pb.blobs)
        let afterPrune = try await pg.referencedBlobs()
        XCTAssertEqual(try sqlite.referencedBlobs(), afterPrune)
        try sqlite.setSetting("duplicatePolicy", "replace")
        try await pg.setSetting("duplicatePolicy", "replace")
        try await pg.setSetting("duplicatePolicy", "reject")
        let setting = try await pg.setting("duplicatePolicy")
        XCTAssertEqual(setting, "reject")
        let missing = try await pg.setting("nothing")
        XCTAssertNil(missing)
        await pg.close()
    }

    /// A STOW-like batch of 100 instances commits whole on each index. The times it prints are a
    /// figure for Docs/store.md, not an assertion: TESSERA_BENCH_ROUNDS=5 for a median (one round in the suite).
    func testABatchOfAHundredInstancesCommitsOnBothIndexes() async throws {
        let folder = try StoreFixtures.temporaryFolder("pg-timing")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let sqlite = try SQLiteIndex(path: folder + "/index.sqlite")
        let pg = try await TestBackends.postgresIndex(url: try await TestBackends.freshPostgresDatabase())
        func batch(_ n: Int) -> [PreparedInstance] {
            let study = "1.2.826.0.1.3680043.9.7433.9\(n)"
            return (0..<100).map { Self.prepared(study: study, series: "\(study).1", sop: "\(study).1.\($0)") }
        }
        _ = try sqlite.commit(batch(0), policy: .reject, reason: "warm-up", audit: nil)
        _ = try await pg.commit(batch(0), policy: .reject, reason: "warm-up", audit: nil)
        var times: [String: [Double]] = [:]
        for n in 1...max(Int(ProcessInfo.processInfo.environment["TESSERA_BENCH_ROUNDS"] ?? "") ?? 1, 1) {
            let instances = batch(n)
            var start = Date()
            XCTAssertEqual(try sqlite.commit(instances, policy: .reject, reason: "stored", audit: nil).filter { $0.status == .stored }.count, 100)
            times["sqlite", default: []].append(Date().timeIntervalSince(start) * 1000)
            start = Date()
            let outcomes = try await pg.commit(instances, policy: .reject, reason: "stored", audit: nil)
            times["postgresql", default: []].append(Date().timeIntervalSince(start) * 1000)
            XCTAssertEqual(outcomes.filter { $0.status == .stored }.count, 100)
        }
        for (name, t) in times.sorted(by: { $0.key < $1.key }) {
            print("commit of 100 instances, \(name): median \(String(format: "%.1f", t.sorted()[t.count / 2])) ms (\(t.map { String(format: "%.1f", $0) }.joined(separator: ", ")))")
        }
        await pg.close()
    }

    // MARK: Fixtures

    /// A blob id derived from `seed` (FNV-1a in four lanes: distinct, not cryptographic).
    static func blob(_ seed: String) -> BlobID {
        BlobID(hex: (0..<4).map { lane -> String in
            var h: UInt64 = 0xcbf2_9ce4_8422_2325 &+ UInt64(lane)
            for b in seed.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            let hex = String(h, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined())!
    }

    static func prepared(study: String, series: String, sop: String, patientName: String = "DOE^JANE", instanceNumber: Int? = 1) -> PreparedInstance {
        var a = InstanceAttributes()
        a.patientID = "P-1"; a.patientName = patientName; a.studyDate = "20240102"; a.modality = "CT"
        a.instanceNumber = instanceNumber; a.rows = 2; a.columns = 2; a.bitsAllocated = 16
        let json = #"{"00080018":{"vr":"UI","Value":["\#(sop)"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"\#(patientName)"}]}}"#
        return PreparedInstance(studyInstanceUID: study, seriesInstanceUID: series, sopInstanceUID: sop, sopClassUID: "1.2.840.10008.5.1.4.1.1.2",
                                transferSyntaxUID: "1.2.840.10008.1.2.1", blob: blob(sop), blobSize: 1000 + sop.count, attributes: a,
                                metadataJSON: Array(json.utf8), frames: [FrameRecord(number: 1, offset: 500, length: 8, fragments: nil)],
                                framesInPlace: true)
    }

    /// An instance record without what differs between the indexes (row and image set ids).
    static func comparable(_ r: InstanceRecord) -> String {
        "\(r.sopInstanceUID) \(r.seriesInstanceUID) \(r.blob.hex.prefix(8)) \(r.blobSize) v\(r.addedInVersion) \(r.attributes) \(r.framesInPlace) \(r.framesTransferSyntaxUID)"
    }

    /// Image set ids are random: each index's are named in the order they first appear.
    struct Names {
        var bySQLite: [String: String] = [:], byPostgres: [String: String] = [:]
        mutating func sqlite(_ o: IngestOutcome) -> String { describe(o, &bySQLite) }
        mutating func postgres(_ o: IngestOutcome) -> String { describe(o, &byPostgres) }
        func name(_ id: String?, _ names: inout [String: String]) -> String {
            guard let id else { return "-" }
            if let n = names[id] { return n }
            names[id] = "set\(names.count + 1)"
            return names[id]!
        }
        func describe(_ o: IngestOutcome, _ names: inout [String: String]) -> String {
            "\(o.status) \(o.sopInstanceUID ?? "") \(name(o.imageSetID, &names)) \(name(o.replacedInImageSetID, &names)) "
                + "\(o.isPrimary.map { "\($0)" } ?? "-") \(o.conflicts) \(o.reasonCode ?? 0) \(o.message ?? "") \(o.storedTransferSyntaxUID ?? "")"
        }
    }
}

func XCTUnwrapAsync<T>(_ value: T?, file: StaticString = #filePath, line: UInt = #line) async throws -> T {
    try XCTUnwrap(value, file: file, line: line)
}

extension Dictionary {
    func mapKeys<K: Hashable>(_ f: (Key) -> K?) -> [K: Value] {
        Dictionary<K, Value>(uniqueKeysWithValues: compactMap { k, v in f(k).map { ($0, v) } })
    }
}
