import DICOMCore
import Foundation
import GRDB
@testable import ImageSetStore
@testable import PostgresIndex
import PostgresNIO
import StoreTestSupport
import TestSupport
import XCTest

/// The stored study summaries (Docs/store.md, "Study summaries"): after any sequence of writes, each
/// image set's stored NumberOfStudyRelatedSeries, NumberOfStudyRelatedInstances, ModalitiesInStudy and
/// representative instance, and each series row's count, equal what its current instance rows give;
/// and the migration that introduced them fills them in for an index written before it. On the index
/// the run asks for (TESSERA_TEST_INDEX=postgresql for PostgreSQL).
final class StudySummaryTests: XCTestCase {
    /// A randomized run of stores, replacements (within a set, into a conflicting set, into another study),
    /// duplicates, failing instances, deletes at every level and scope, prunes and concurrent commits,
    /// checked after every step. The run uses a fixed seed so that CI is repeatable; TESSERA_TEST_SEED
    /// replays another one, and TESSERA_TEST_SEED=random draws one (the seed is printed either way).
    func testStoredSummariesEqualTheInstancesAfterRandomWrites() async throws {
        let backend = try await Backend.make("summary-random")
        defer { backend.cleanUp() }
        let asked = ProcessInfo.processInfo.environment["TESSERA_TEST_SEED"]
        let seed = asked == "random" ? UInt64.random(in: 1...UInt64.max) : asked.flatMap(UInt64.init) ?? 20_261_202
        print("StudySummaryTests seed \(seed)")
        var rng = SplitMix(seed: seed)
        let studies = (1...3).map { "1.2.826.0.1.3680043.9.7433.6\($0)" }
        // A series' modality is the first instance's (ModalitiesInStudy leaves out an empty one).
        let modalities = ["CT", "MR", "", "CT"]
        var nextSOP = 0
        var current: [String: (study: String, series: Int)] = [:]   // what this test believes is stored, by SOP
        func instance(_ sop: String, study: String, series: Int, conflicting: Bool) -> PreparedInstance {
            var p = PostgresIndexTests.prepared(study: study, series: "\(study).\(series)", sop: sop,
                                                patientName: conflicting ? "OTHER^NAME" : "DOE^JANE")
            p.attributes.modality = modalities[series]
            p.blob = PostgresIndexTests.blob("\(sop) \(rng.next())")
            return p
        }
        func newBatch() -> [PreparedInstance] {
            (0..<Int.random(in: 1...8, using: &rng)).map { _ in
                nextSOP += 1
                let study = studies.randomElement(using: &rng)!
                return instance("\(study).9.\(nextSOP)", study: study, series: Int.random(in: 0..<4, using: &rng),
                                conflicting: Int.random(in: 0..<6, using: &rng) == 0)
            }
        }
        func record(_ outcomes: [IngestOutcome], _ batch: [PreparedInstance]) {
            for (o, p) in zip(outcomes, batch) where o.status == .stored || o.status == .replaced {
                current[p.sopInstanceUID] = (p.studyInstanceUID, Int(p.seriesInstanceUID.split(separator: ".").last!)!)
            }
        }
        var mostSets = 0, mostSeriesCounts = 0
        for step in 0..<60 {
            let what: String
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<35:
                var batch = newBatch()
                // Now and then an instance the database refuses (two frames numbered 1), or one stored twice.
                if Int.random(in: 0..<5, using: &rng) == 0 {
                    batch[0].frames = [FrameRecord(number: 1, offset: 0, length: 4, fragments: nil),
                                       FrameRecord(number: 1, offset: 4, length: 4, fragments: nil)]
                }
                if Int.random(in: 0..<5, using: &rng) == 0, let again = batch.last { batch.append(again) }
                let outcomes = try await backend.index.commit(batch, policy: .reject, reason: "stored", audit: nil)
                record(outcomes, batch)
                what = "store \(batch.count): \(outcomes.map(\.status))"
            case 35..<55:
                // Replacements: the same place, a conflicting set, or another study and series.
                guard !current.isEmpty else { continue }
                let sops = current.keys.sorted().shuffled(using: &rng).prefix(Int.random(in: 1...5, using: &rng))
                let batch = sops.map { sop -> PreparedInstance in
                    let (study, series) = current[sop]!
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: return instance(sop, study: study, series: series, conflicting: false)
                    case 1: return instance(sop, study: study, series: series, conflicting: true)
                    default: return instance(sop, study: studies.randomElement(using: &rng)!, series: Int.random(in: 0..<4, using: &rng),
                                             conflicting: false)
                    }
                }
                let outcomes = try await backend.index.commit(batch, policy: .replace, reason: "replaced", audit: nil)
                record(outcomes, batch)
                what = "replace \(batch.count): \(outcomes.map(\.status))"
            case 55..<65:
                // Two writers at once (on PostgreSQL, two transactions; SQLite takes them in turn).
                let a = newBatch(), b = newBatch()
                async let first = backend.index.commit(a, policy: .reject, reason: "stored", audit: nil)
                async let second = backend.index.commit(b, policy: .replace, reason: "stored", audit: nil)
                let (oa, ob) = try await (first, second)
                record(oa, a)
                record(ob, b)
                what = "concurrent \(a.count) + \(b.count)"
            case 65..<95:
                guard let sop = current.keys.sorted().randomElement(using: &rng) else { continue }
                let (study, series) = current[sop]!
                let level = Int.random(in: 0..<10, using: &rng)
                // Mostly the primary sets; sometimes one set named, whichever holds the instance.
                let scope: ImageSetScope
                if Int.random(in: 0..<4, using: &rng) == 0, let held = try await backend.index.instance(sopInstanceUID: sop) {
                    scope = .imageSet(held.imageSetID)
                } else {
                    scope = .primary
                }
                let removed = try await backend.index.removeInstances(
                    study: study, series: level < 8 ? "\(study).\(series)" : nil, sop: level < 5 ? sop : nil, scope: scope,
                    reason: "deleted", audit: nil)
                what = "delete \(level < 5 ? "instance" : level < 8 ? "series" : "study") \(scope): \(removed.values.reduce(0, +))"
            default:
                let result = try await backend.index.pruneVersions(imageSetID: nil, keep: 1, audit: nil)
                what = "prune: \(result.instanceRowsRemoved) rows"
            }
            // What is current is the index's to say (a delete by scope, a refused instance): read it back.
            for sop in current.keys.sorted() {
                if try await backend.index.instance(sopInstanceUID: sop) == nil { current[sop] = nil }
            }
            try await backend.assertSummariesMatchInstances("step \(step) (seed \(seed)), \(what)")
            let sets = try await backend.index.imageSets(ImageSetFilter())
            mostSets = max(mostSets, sets.count)
            mostSeriesCounts = max(mostSeriesCounts, Set(sets.map(\.seriesCount)).count)
        }
        // The run reached what it is for: at some step several sets, with different numbers of series.
        // (Judged over the run, not at its end: deletes and prunes can leave the last step uniform.)
        XCTAssertGreaterThan(mostSets, 3, "seed \(seed)")
        XCTAssertGreaterThan(mostSeriesCounts, 1, "seed \(seed)")
    }

    /// An index written at the previous schema (SQLite v8, PostgreSQL 5) gets its summaries when the
    /// binary that knows them opens it: each set's from its current instances, whatever its history.
    /// ModalitiesInStudy matches the modalities of the study's current instances (PS3.4 C.6.2.1.2's
    /// attribute is "all modalities in the study"): a series whose instances were all deleted no
    /// longer makes its study match, as its modality has left the study's ModalitiesInStudy.
    func testModalitiesInStudyMatchesOnlySeriesWithCurrentInstances() async throws {
        let backend = try await Backend.make("summary-modalities")
        defer { backend.cleanUp() }
        var ct = PostgresIndexTests.prepared(study: "1.2.3.7", series: "1.2.3.7.1", sop: "1.2.3.7.1.1")
        ct.attributes.modality = "CT"
        var mr = PostgresIndexTests.prepared(study: "1.2.3.7", series: "1.2.3.7.2", sop: "1.2.3.7.2.1")
        mr.attributes.modality = "MR"
        let stored = try await backend.index.commit([ct, mr], policy: .reject, reason: "stored", audit: nil)
        XCTAssertEqual(stored.map(\.status), [.stored, .stored])
        func studies(_ modality: String) async throws -> [String] {
            var q = SearchQuery(level: .study)
            q.conditions[Tag(0x0008_0061)] = .anyOf([modality])
            return try await backend.index.search(q).map { "\($0.studyInstanceUID) \($0.modalitiesInStudy)" }
        }
        let before = try await studies("CT")
        XCTAssertEqual(before, ["1.2.3.7 [\"CT\", \"MR\"]"])
        _ = try await backend.index.removeInstances(study: "1.2.3.7", series: "1.2.3.7.1", sop: nil, scope: .primary, reason: "deleted", audit: nil)
        let afterCT = try await studies("CT"), afterMR = try await studies("MR")
        XCTAssertEqual(afterCT, [], "the CT series has no current instance")
        XCTAssertEqual(afterMR, ["1.2.3.7 [\"MR\"]"])
    }

    func testTheMigrationFillsInTheSummariesOfAnExistingIndex() async throws {
        var backend = try await Backend.make("summary-migration", previousSchema: true)
        defer { backend.cleanUp() }
        // Set a: two series (CT, and one without a Modality) with a removed instance; set b: a conflicting
        // set of the same study whose only series was emptied; set c: DELETED, every instance removed.
        let sets: [(id: String, study: String, primary: Bool, state: String)] = [
            ("a", "1.2.3.1", true, "ACTIVE"), ("b", "1.2.3.1", false, "ACTIVE"), ("c", "1.2.3.2", true, "DELETED"),
        ]
        var sql: [String] = []
        for s in sets {
            sql.append("""
                INSERT INTO image_set(id, study_instance_uid, is_primary, state, latest_version, created_at, updated_at, patient_id, patient_name,
                    patient_birth_date, patient_sex, study_date, study_time, accession_number, study_id, study_description,
                    referring_physician_name, institution_name)
                VALUES ('\(s.id)', '\(s.study)', \(s.primary), '\(s.state)', 2, 0, 0, 'P-1', 'DOE^JANE', '', '', '20240102', '', '', '', '', '', '')
                """)
        }
        for (set, series, modality) in [("a", "1.2.3.1.1", "CT"), ("a", "1.2.3.1.2", ""), ("b", "1.2.3.1.3", "MR"), ("c", "1.2.3.2.1", "US")] {
            sql.append("""
                INSERT INTO series(image_set_id, series_instance_uid, modality, series_description, body_part_examined,
                    performed_start_date, performed_start_time) VALUES ('\(set)', '\(series)', '\(modality)', '', '', '', '')
                """)
        }
        // (id, set, series, removed_version): a holds 12, 13 (CT) and 14, 17 (no Modality).
        let rows: [(Int, String, String, Int?)] = [
            (11, "a", "1.2.3.1.1", 2), (12, "a", "1.2.3.1.1", nil), (13, "a", "1.2.3.1.1", nil), (14, "a", "1.2.3.1.2", nil),
            (15, "b", "1.2.3.1.3", 2), (16, "c", "1.2.3.2.1", 2), (17, "a", "1.2.3.1.2", nil),
        ]
        for (id, set, series, removed) in rows {
            let study = set == "c" ? "1.2.3.2" : "1.2.3.1"
            sql.append("""
                INSERT INTO instance(id, image_set_id, study_instance_uid, series_instance_uid, sop_instance_uid, sop_class_uid,
                    transfer_syntax_uid, blob_id, blob_size, frames_in_place, added_version, removed_version, stored_at)
                VALUES (\(id), '\(set)', '\(study)', '\(series)', '\(series).\(id)', '1.2.840.10008.5.1.4.1.1.7', '1.2.840.10008.1.2.1',
                    '\(String(repeating: "0", count: 63))\(id % 10)', 1, true, 1, \(removed.map(String.init) ?? "NULL"), 0)
                """)
        }
        try await backend.executeAtPreviousSchema(sql)
        try await backend.migrate()
        try await backend.assertSummariesMatchInstances("after the migration")
        let stored = try await backend.storedSummaries()
        XCTAssertEqual(stored["a"], Summary(series: 2, instances: 4, modalities: ["CT"], representative: 12))
        XCTAssertEqual(stored["b"], Summary(series: 0, instances: 0, modalities: [], representative: nil))
        XCTAssertEqual(stored["c"], Summary(series: 0, instances: 0, modalities: [], representative: nil))
        let found = try await backend.index.search(SearchQuery(level: .study))
        XCTAssertEqual(found.map { "\($0.studyInstanceUID) \($0.numberOfStudyRelatedSeries ?? -1) \($0.numberOfStudyRelatedInstances ?? -1) \($0.modalitiesInStudy) \($0.representativeInstanceID)" },
                       ["1.2.3.1 2 4 [\"CT\"] 12"])
        // Later writes keep them from there: a removal of the representative, and a new series (its row id
        // is the sequence's on PostgreSQL, which the rows above did not advance, so the representative may be it).
        _ = try await backend.index.removeInstances(study: "1.2.3.1", series: nil, sop: "1.2.3.1.1.12", scope: .primary, reason: "deleted", audit: nil)
        let added = try await backend.index.commit([PostgresIndexTests.prepared(study: "1.2.3.1", series: "1.2.3.1.4", sop: "1.2.3.1.4.1")],
                                                   policy: .reject, reason: "stored", audit: nil)
        XCTAssertEqual(added.map(\.status), [.stored])
        try await backend.assertSummariesMatchInstances("after later writes")
        let later = try await backend.storedSummaries()
        XCTAssertEqual(later["a"].map { [$0.series, $0.instances] }, [3, 4])
        XCTAssertNotEqual(later["a"]?.representative, 12)
    }
}

/// One image set's summary as stored, or as its current instances give it.
struct Summary: Equatable, CustomStringConvertible {
    var series: Int
    var instances: Int
    var modalities: [String]
    var representative: Int64?
    var description: String { "\(series) series, \(instances) instances, \(modalities), first \(representative.map(String.init) ?? "-")" }
}

/// The index under test and SQL on its tables, in its own dialect where needed.
struct Backend: Sendable {
    var sqlite: SQLiteIndex?
    var postgres: PostgresIndex?
    var url: String?
    var path: String
    var folder: String

    /// Opened, or with `migrate`.
    var index: any ImageSetIndex { sqlite ?? postgres! }

    /// `previousSchema`: the database at SQLite v8 or PostgreSQL 5, no index opened on it yet (`migrate` opens it).
    static func make(_ name: String, previousSchema: Bool = false) async throws -> Backend {
        let folder = try StoreFixtures.temporaryFolder(name)
        let path = folder + "/index.sqlite"
        var backend = Backend(path: path, folder: folder)
        if TestBackends.indexIsPostgres {
            let url = try await TestBackends.freshPostgresDatabase()
            backend.url = url
            if previousSchema {
                var sql = ["CREATE TABLE schema_migration(version bigint PRIMARY KEY, name text NOT NULL, applied_at double precision NOT NULL)"]
                for m in PostgresIndex.migrations where m.version <= 5 {
                    sql += m.statements + ["INSERT INTO schema_migration VALUES (\(m.version), '\(m.name)', 0)"]
                }
                for statement in sql { try await TestBackends.execute(statement, url: url) }
                return backend
            }
        } else if previousSchema {
            let queue = try DatabaseQueue(path: path)
            try SQLiteIndex.migrator.migrate(queue, upTo: "v8")
            return backend
        }
        try await backend.migrate()
        return backend
    }

    func cleanUp() {
        if let postgres { Task { await postgres.close() } }
        try? FileManager.default.removeItem(atPath: folder)
    }

    func executeAtPreviousSchema(_ statements: [String]) async throws {
        if let url {
            for s in statements { try await TestBackends.execute(s, url: url) }
        } else {
            let queue = try DatabaseQueue(path: path)
            try await queue.write { db in for s in statements { try db.execute(sql: s) } }
        }
    }

    /// Opens the index, which migrates it.
    mutating func migrate() async throws {
        if let url {
            postgres = try await TestBackends.postgresIndex(url: url)
        } else {
            sqlite = try SQLiteIndex(path: path)
        }
    }

    /// Rows of `sql`, every column cast to text by the query.
    func texts(_ sql: String) async throws -> [[String?]] {
        if let sqlite {
            return try await sqlite.pool.read { db in try Row.fetchAll(db, sql: sql).map { row in (0..<row.count).map { row[$0] as String? } } }
        }
        let rows = try await postgres!.rows(PostgresQuery(unsafeSQL: sql))
        return try rows.map { row in try (0..<row.count).map { try row[$0].decode(String?.self) } }
    }

    func storedSummaries() async throws -> [String: Summary] {
        let modalities = postgres == nil ? "current_modalities" : "array_to_string(current_modalities, ',')"
        var out: [String: Summary] = [:]
        for r in try await texts("""
            SELECT id, CAST(current_series AS TEXT), CAST(current_instances AS TEXT), \(modalities), CAST(representative_instance_id AS TEXT)
            FROM image_set
            """) {
            out[r[0]!] = Summary(series: Int(r[1]!)!, instances: Int(r[2]!)!,
                                 modalities: (r[3] ?? "").split(separator: ",").map(String.init).sorted(), representative: r[4].flatMap { Int64($0) })
        }
        return out
    }

    /// Each set's summary from its current instance rows, as the study search computed it before migration v9/6.
    func computedSummaries() async throws -> [String: Summary] {
        var out: [String: Summary] = [:]
        for r in try await texts("SELECT id FROM image_set") { out[r[0]!] = Summary(series: 0, instances: 0, modalities: [], representative: nil) }
        for r in try await texts("""
            SELECT i.image_set_id, COALESCE(x.modality, ''), CAST(COUNT(*) AS TEXT), CAST(MIN(i.id) AS TEXT)
            FROM instance i LEFT JOIN series x ON x.image_set_id = i.image_set_id AND x.series_instance_uid = i.series_instance_uid
            WHERE i.removed_version IS NULL GROUP BY i.image_set_id, i.series_instance_uid, x.modality
            """) {
            var s = out[r[0]!]!
            s.series += 1
            s.instances += Int(r[2]!)!
            if let m = r[1], !m.isEmpty, !s.modalities.contains(m) { s.modalities = (s.modalities + [m]).sorted() }
            let first = Int64(r[3]!)!
            s.representative = min(s.representative ?? first, first)
            out[r[0]!] = s
        }
        return out
    }

    func assertSummariesMatchInstances(_ label: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        let stored = try await storedSummaries(), computed = try await computedSummaries()
        for id in computed.keys.sorted() where stored[id] != computed[id] {
            XCTFail("\(label): image set \(id) stores \(stored[id].map(\.description) ?? "nothing"), its instances give \(computed[id]!)",
                    file: file, line: line)
        }
        let seriesCounts = try await texts("""
            SELECT x.image_set_id, x.series_instance_uid, CAST(x.current_instances AS TEXT),
                CAST((SELECT COUNT(*) FROM instance i WHERE i.image_set_id = x.image_set_id AND i.series_instance_uid = x.series_instance_uid
                      AND i.removed_version IS NULL) AS TEXT)
            FROM series x
            """)
        for r in seriesCounts where r[2] != r[3] {
            XCTFail("\(label): series \(r[1]!) of image set \(r[0]!) counts \(r[2]!) current instances, it has \(r[3]!)", file: file, line: line)
        }
    }
}

