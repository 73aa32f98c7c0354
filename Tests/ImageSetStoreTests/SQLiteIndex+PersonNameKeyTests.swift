import DICOMCore
import Foundation
import GRDB
@testable import ImageSetStore
import XCTest

/// The folded person-name keys QIDO-RS matches on (migration v3).
final class PersonNameKeyTests: XCTestCase {
    // PS3.5 §6.2.1.1: trailing empty components and groups are insignificant; case folds in every
    // script (Docs/api.md), including the Greek final sigma and ß.
    func testKeyDropsTrailingEmptiesAndFoldsCase() {
        XCTAssertEqual(SearchQuery.personNameKey("Family^Given^^^"), "family^given")
        XCTAssertEqual(SearchQuery.personNameKey("A^B^=C^^="), "a^b=c")
        XCTAssertEqual(SearchQuery.personNameKey("=Kim"), "=kim")
        XCTAssertEqual(SearchQuery.personNameKey("ДОЕ^ИВАН"), SearchQuery.personNameKey("Дое^Иван"))
        XCTAssertEqual(SearchQuery.personNameKey("ΠΑΠΑΔΌΠΟΥΛΟΣ"), SearchQuery.personNameKey("Παπαδόπουλος"))
        XCTAssertEqual(SearchQuery.personNameKey("STRASSE"), SearchQuery.personNameKey("Straße"))
        XCTAssertEqual(SearchQuery.personNameKey("MU\u{0308}LLER"), "müller", "NFC")
        XCTAssertEqual(SearchQuery.personNameKey("A^^\\B^"), "a\\b", "each value of a multi-valued name")
    }

    // An index written before v3 gets its keys backfilled when it is opened.
    func testMigrationBackfillsKeysOfExistingImageSets() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-v2-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        do {
            let pool = try DatabasePool(path: path)
            try SQLiteIndex.migrator.migrate(pool, upTo: "v2")
            try pool.write { db in
                for (n, name) in ["MÜLLER^HANS^^", "Доевский^Иван", ""].enumerated() {
                    try db.execute(sql: """
                        INSERT INTO image_set(id, study_instance_uid, is_primary, latest_version, created_at, updated_at,
                            patient_id, patient_name, patient_birth_date, patient_sex, study_date, study_time, accession_number,
                            study_id, study_description, referring_physician_name, institution_name)
                        VALUES (?, ?, 1, 1, 0, 0, 'P', ?, '', '', '', '', '', '', '', ?, '')
                        """, arguments: ["set\(n)", "1.2.3.\(n)", name, "REF^ÉLODIE"])
                }
            }
        }
        let index = try SQLiteIndex(path: path)
        let keys = try index.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT patient_name_key, referring_physician_name_key FROM image_set ORDER BY id")
                .map { [$0["patient_name_key"] as String, $0["referring_physician_name_key"] as String] }
        }
        XCTAssertEqual(keys, [["müller^hans", "ref^élodie"], ["доевский^иван", "ref^élodie"], ["", "ref^élodie"]])
        var query = SearchQuery(level: .study)
        query.conditions[Tag(0x0010_0010)] = .equals("müller*", wildcard: true)
        XCTAssertEqual(try index.search(query).map(\.studyInstanceUID), ["1.2.3.0"])
        // A literal prefix is a range of the key's index, not a scan of every image set.
        let plan = try index.pool.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN SELECT id FROM image_set s WHERE s.patient_name_key GLOB ?", arguments: ["müller*"])
                .map { $0["detail"] as String }
        }
        XCTAssertTrue(plan.joined().contains("image_set_patient_name_key"), "\(plan)")
    }
}
