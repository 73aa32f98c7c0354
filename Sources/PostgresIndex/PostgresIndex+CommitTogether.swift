import Foundation
import ImageSetStore
import PostgresNIO

/// Committing a batch together: the same placing as one savepoint per instance (`Batch.place`,
/// `imageSet(for:)`, the same events in the same order), with the reads made up front in two
/// statements and the writes held back until every instance is placed, then sent as a few
/// multi-row statements. A 100-instance commit went from 512 statements (one round trip each) to
/// about ten. What is not placed this way (a promotion), or a write that fails, rolls the
/// transaction back and the batch is committed again one savepoint per instance, so that one bad
/// instance still leaves the others in.
extension PostgresIndex {
    /// A current instance row as placing reads it, with its image set's primary flag and Patient ID.
    struct StoredCopy: Sendable {
        static let columns = """
            i.id, i.image_set_id, i.series_instance_uid, i.sop_instance_uid, i.blob_id, i.transfer_syntax_uid, i.blob_size,
            i.study_instance_uid, s.is_primary, s.patient_id
            """
        var id: Int64
        var imageSet, series, sop, blob, transferSyntax: String
        var size: Int
        var study: String
        var isPrimary: Bool
        var patientID: String

        init(_ row: PostgresRandomAccessRow) throws {
            id = try row.get("id"); imageSet = try row.get("image_set_id"); series = try row.get("series_instance_uid")
            sop = try row.get("sop_instance_uid"); blob = try row.get("blob_id"); transferSyntax = try row.get("transfer_syntax_uid")
            size = try row.get("blob_size"); study = try row.get("study_instance_uid"); isPrimary = try row.get("is_primary")
            patientID = try row.get("patient_id")
        }
    }

    /// An image set row as placing reads it.
    struct SetRow: Sendable {
        /// Named, not `*`: a prepared statement's result must keep its shape when a migration adds a column.
        static let columns = """
            id, study_instance_uid, is_primary, state, latest_version, created_at, patient_id, patient_name, patient_birth_date,
            patient_sex, study_date, study_time, accession_number, study_id, study_description, referring_physician_name, institution_name
            """
        /// Those of `columns` that a `StoredCopy` row does not have (`readTogether` reads both in one result).
        static let ownColumns = ["state", "latest_version", "created_at", "patient_name", "patient_birth_date", "patient_sex", "study_date",
                                 "study_time", "accession_number", "study_id", "study_description", "referring_physician_name", "institution_name"]
        var id, study: String
        var isPrimary: Bool
        var state: String
        var latestVersion: Int
        var createdAt: Double
        var patientID: String
        /// The patient- and study-level attributes it was created with (those conflicts compare).
        var attributes: InstanceAttributes

        init(id: String, study: String, isPrimary: Bool, state: String, latestVersion: Int, createdAt: Double, patientID: String,
             attributes: InstanceAttributes) {
            self.id = id; self.study = study; self.isPrimary = isPrimary; self.state = state
            self.latestVersion = latestVersion; self.createdAt = createdAt; self.patientID = patientID; self.attributes = attributes
        }

        init(_ row: PostgresRandomAccessRow) throws { try self.init(row, idColumn: "id") }

        init(_ row: PostgresRandomAccessRow, idColumn: String) throws {
            self.init(id: try row.get(idColumn), study: try row.get("study_instance_uid"), isPrimary: try row.get("is_primary"),
                      state: try row.get("state"), latestVersion: try row.get("latest_version"), createdAt: try row.get("created_at"),
                      patientID: try row.get("patient_id"), attributes: try PostgresIndex.attributes(row))
        }
    }

    /// An instance placed in an image set at a version, its rows not written yet.
    struct Placed: Sendable {
        var instance: PreparedInstance
        var imageSet: String
        var version: Int
    }

    struct NewSet: Sendable {
        var id: String
        var instance: PreparedInstance
        var primary: Bool
        var conflicts: [AttributeConflict]
    }

    /// What a batch committed together read up front, and the writes it holds back. Part of the
    /// `Batch` value, so an instance refused as a duplicate takes what it registered with it.
    struct Deferred: Sendable {
        /// The current rows of the batch's SOP Instance UIDs, locked (FOR UPDATE).
        var copies: [String: StoredCopy]
        /// Every image set of the batch's studies and those holding copies to be replaced, locked
        /// (FOR UPDATE, in id order), and the sets this batch creates.
        var sets: [String: SetRow]
        /// Whether a set had a current instance before the batch, read when a conflict asks.
        var holdsAny: [String: Bool] = [:]
        var newSets: [NewSet] = []
        /// Replaced rows and the version of their set that no longer holds them.
        var removals: [(id: Int64, version: Int)] = []
        var inserts: [Placed] = []
    }

    /// Arrays bind no NULL element from Swift: an absent number travels as this and comes back NULL
    /// (`NULLIF`). No DICOM IS or US value is this far out of range.
    static let absentNumber = Int64.min

    /// The numbers `Batch.insertAll` sends in arrays, which carry an absent one as `absentNumber`
    /// (a new one goes in both).
    static func batchedNumbers(_ a: InstanceAttributes) -> [Int?] {
        [a.instanceNumber, a.rows, a.columns, a.bitsAllocated, a.numberOfFrames]
    }

    /// Whether a batch can be committed together: every SOP Instance UID in it once, and no number
    /// clamped to exactly `absentNumber` (a hostile Instance Number), which would come back NULL;
    /// the per-instance path binds NULL itself.
    static func committableTogether(_ instances: [PreparedInstance]) -> Bool {
        !instances.isEmpty && Set(instances.map(\.sopInstanceUID)).count == instances.count
            && !instances.contains { batchedNumbers($0.attributes).contains { $0.map(Int64.init) == absentNumber } }
    }
}

extension PostgresIndex.Batch {
    enum CurrentCopiesAndSets: PreparedTag { static let name = "current_copies_and_sets" }

    func rows<Tag: PreparedTag>(prepared tag: Tag.Type, _ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        try await PostgresIndex.rows(query, prepared: tag, on: conn, logger: logger)
    }

    /// The reads of a batch committed together, in one statement: the current copies of all its SOP
    /// Instance UIDs, then the image sets placing may version (its studies', and those holding a copy
    /// to be replaced), both locked as the per-instance path locks them, instance rows first. The two
    /// kinds of row come back as one result, told apart by `kind`; a copy's columns are null in a
    /// set's row and the reverse, except those both have (an image set's id is `image_set_id`).
    mutating func readTogether(_ instances: [PreparedInstance], policy: DuplicatePolicy) async throws {
        let sops = instances.map(\.sopInstanceUID), incoming = instances.map(\.blob.hex)
        let studies = Array(Set(instances.map(\.studyInstanceUID)))
        var copies: [String: PostgresIndex.StoredCopy] = [:]
        var sets: [String: PostgresIndex.SetRow] = [:]
        // A replaced copy may sit in a study this transaction holds no lock of: its set is locked by row.
        // The copies are found by `= ANY` (an index scan of current SOP Instance UIDs): as a join on
        // `unnest`, the generic plan read far more of the table (33 ms a 200-instance batch, not 4).
        for row in try await rows(prepared: CurrentCopiesAndSets.self, """
            WITH copies AS MATERIALIZED (
                SELECT \(unescaped: PostgresIndex.StoredCopy.columns)
                FROM instance i JOIN image_set s ON s.id = i.image_set_id
                WHERE i.sop_instance_uid = ANY(\(sops)::text[]) AND i.removed_version IS NULL
                FOR UPDATE OF i
            ), sets AS MATERIALIZED (
                SELECT \(unescaped: PostgresIndex.SetRow.columns) FROM image_set
                WHERE study_instance_uid = ANY(\(studies)::text[])
                    OR (\(policy == .replace) AND id IN (
                        SELECT c.image_set_id FROM copies c JOIN unnest(\(sops)::text[], \(incoming)::text[]) AS t(sop, blob)
                        ON t.sop = c.sop_instance_uid WHERE c.blob_id <> t.blob))
                ORDER BY id FOR UPDATE
            )
            SELECT 'copy' AS kind, id, image_set_id, series_instance_uid, sop_instance_uid, blob_id, transfer_syntax_uid, blob_size,
                study_instance_uid, is_primary, patient_id, \(unescaped: PostgresIndex.SetRow.ownColumns.map { "NULL AS \($0)" }.joined(separator: ", "))
            FROM copies
            UNION ALL
            SELECT 'set', NULL, id, NULL, NULL, NULL, NULL, NULL, study_instance_uid, is_primary, patient_id,
                \(unescaped: PostgresIndex.SetRow.ownColumns.joined(separator: ", "))
            FROM sets
            """) {
            if try row.get("kind", as: String.self) == "copy" {
                let copy = try PostgresIndex.StoredCopy(row)
                copies[copy.sop] = copy
            } else {
                let set = try PostgresIndex.SetRow(row, idColumn: "image_set_id")
                sets[set.id] = set
            }
        }
        deferred = PostgresIndex.Deferred(copies: copies, sets: sets)
    }
}
