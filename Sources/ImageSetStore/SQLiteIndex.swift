import DICOMCore
import Foundation
import GRDB
import Synchronization

/// The embedded index: SQLite through GRDB, in WAL mode, one writer and concurrent readers.
public struct SQLiteIndex: ImageSetIndex {
    let pool: DatabasePool
    /// Counts the writer connection's commits that touched instance, image set or frame rows; nil
    /// for a read-only open (the writing process is another one).
    let changes: IndexChangeCounter?

    public var localChangeGeneration: UInt64? { changes?.generation }

    /// Opens the index. Read-write migrates it to this binary's schema; read-only never writes
    /// (no WAL set-up, no migration) and refuses a schema other than this binary's. `folder`
    /// names the data folder in errors.
    public init(path: String, readOnly: Bool = false, folder: String? = nil) throws {
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.readonly = readOnly
        if !readOnly {
            config.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")  // an acknowledged commit survives power loss
            }
        }
        pool = try DatabasePool(path: path, configuration: config)
        let migrator = Self.migrator
        let (newer, complete) = try pool.read { db in (try migrator.hasBeenSuperseded(db), try migrator.hasCompletedMigrations(db)) }
        let name = folder ?? path
        // Migrating a schema this binary does not know could damage what a newer version wrote.
        if newer {
            throw DataFolderError("the data folder \(name) was written by a newer Tessera (its index has migrations this binary "
                                  + "does not know); use that version or a later one")
        }
        if readOnly {
            if !complete {
                throw DataFolderError("the data folder \(name) has an older index schema; run `tessera import` or `tessera serve` "
                                      + "on it once (they upgrade it), then retry")
            }
        } else {
            try migrator.migrate(pool)
        }
        // The data folder's lock makes this process the only writer: its own commits are all the changes.
        changes = readOnly ? nil : IndexChangeCounter()
        if let changes { pool.add(transactionObserver: changes, extent: .databaseLifetime) }
    }

    // MARK: Writing

    public func commit(_ instances: [PreparedInstance], policy: DuplicatePolicy, reason: String,
                       audit: (@Sendable ([IngestOutcome]) -> [AuditEvent])?) throws -> [IngestOutcome] {
        try pool.write { db in
            var batch = Batch(db: db, now: Date().timeIntervalSince1970)
            var outcomes: [IngestOutcome] = []
            for instance in instances {
                // A savepoint per instance: one that fails (a constraint, say) leaves the others in.
                var outcome: IngestOutcome?
                let before = batch
                try db.inSavepoint {
                    do {
                        let placed = try batch.place(instance, policy: policy)
                        outcome = placed
                        return placed.status == .failed ? .rollback : .commit
                    } catch {
                        let code = DiskReserve.isNoSpace(error) ? FailureReason.outOfResources : FailureReason.processingFailure
                        outcome = .failure(code, "index: \(error)", sop: instance.sopInstanceUID,
                                           sopClass: instance.sopClassUID, study: instance.studyInstanceUID)
                        return .rollback
                    }
                }
                // What the rolled-back instance registered in the batch goes with it.
                if outcome?.status == .failed { batch = before }
                outcomes.append(outcome ?? .failure(FailureReason.processingFailure, "index: no outcome"))
            }
            try batch.finish(reason: reason)
            if let audit { try Self.appendAudit(audit(outcomes), in: db) }
            try Self.appendChanges(batch.changes, in: db)
            return outcomes
        }
    }

    public func removeInstances(study: String, series: String?, sop: String?, scope: ImageSetScope, reason: String,
                                audit: AuditContext?) throws -> [String: Int] {
        try pool.write { db in
            let (scopeSQL, scopeArgs) = Self.scopeClause(scope, imageSet: "s")
            var sql = """
                SELECT i.id, i.image_set_id, i.series_instance_uid, i.sop_instance_uid, i.transfer_syntax_uid, i.blob_size, s.patient_id
                FROM instance i JOIN image_set s ON s.id = i.image_set_id
                WHERE i.study_instance_uid = ? AND i.removed_version IS NULL AND \(scopeSQL)
                """
            var args: [any DatabaseValueConvertible] = [study] + scopeArgs
            if let series { sql += " AND i.series_instance_uid = ?"; args.append(series) }
            if let sop { sql += " AND i.sop_instance_uid = ?"; args.append(sop) }
            let rows = try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args))
            var batch = Batch(db: db, now: Date().timeIntervalSince1970)
            var subjects = AuditSubjects()
            for row in rows {
                subjects.add(study: study, series: row["series_instance_uid"], instance: row["sop_instance_uid"], patient: row["patient_id"])
                let set: String = row["image_set_id"]
                let v = try batch.version(for: set)
                try db.execute(sql: "UPDATE instance SET removed_version = ? WHERE id = ?", arguments: [v, row["id"] as Int64])
                batch.changes.add(.instanceDeleted, set: set, version: v, study: study, patient: row["patient_id"],
                                  series: row["series_instance_uid"], sop: row["sop_instance_uid"],
                                  transferSyntax: row["transfer_syntax_uid"], size: row["blob_size"], isPrimary: batch.sets[set]?.isPrimary)
                batch.removed[set, default: 0] += 1
                batch.touchedSeries.insert([set, row["series_instance_uid"]])
                batch.counted(imageSet: set, series: row["series_instance_uid"], by: -1)
            }
            try batch.finish(reason: reason)
            if let audit {
                try Self.appendAudit([AuditEvent(audit, action: .delete, subjects: subjects, success: true, status: 200,
                                                 detail: "\(rows.count) instance(s) removed")], in: db)
            }
            try Self.appendChanges(batch.changes, in: db)
            return batch.removed
        }
    }

    /// The image sets one transaction touches: each gets one new version, written at the end.
    struct Batch {
        let db: Database
        let now: Double
        var newVersion: [String: Int] = [:]
        var added: [String: Int] = [:]
        var replaced: [String: Int] = [:]
        var removed: [String: Int] = [:]
        var touchedSeries: Set<[String]> = []
        /// Per [image set, series]: current instances gained less those lost (SQLiteIndex+StudySummary.swift).
        var seriesDelta: [[String]: Int] = [:]
        /// Per image set: the lowest instance row id the batch added.
        var firstAdded: [String: Int64] = [:]
        /// The change feed's events, appended at the end of the transaction.
        var changes: ChangeDrafts
        /// What the events name of each image set given a version, as the set was before this batch.
        var sets: [String: ChangeSubject] = [:]

        init(db: Database, now: Double) {
            self.db = db
            self.now = now
            changes = ChangeDrafts(now: now)
        }

        mutating func version(for imageSet: String) throws -> Int {
            if let v = newVersion[imageSet] { return v }
            let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT latest_version, state, study_instance_uid, patient_id, is_primary FROM image_set WHERE id = ?
                """), arguments: [imageSet])
            let latest: Int = row?["latest_version"] ?? 0
            if let row {
                sets[imageSet] = ChangeSubject(study: row["study_instance_uid"], patient: row["patient_id"], state: row["state"], isPrimary: row["is_primary"])
            }
            newVersion[imageSet] = latest + 1
            return latest + 1
        }

        mutating func place(_ p: PreparedInstance, policy: DuplicatePolicy) throws -> IngestOutcome {
            var outcome = IngestOutcome(status: .stored, sopInstanceUID: p.sopInstanceUID, sopClassUID: p.sopClassUID,
                                        studyInstanceUID: p.studyInstanceUID, seriesInstanceUID: p.seriesInstanceUID)
            var previous: ChangeLocation?
            if let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT i.id, i.image_set_id, i.blob_id, i.transfer_syntax_uid, i.blob_size, i.study_instance_uid, i.series_instance_uid,
                    s.is_primary, s.patient_id
                FROM instance i JOIN image_set s ON s.id = i.image_set_id
                WHERE i.sop_instance_uid = ? AND i.removed_version IS NULL
                """), arguments: [p.sopInstanceUID]) {
                let existingSet: String = row["image_set_id"]
                if (row["blob_id"] as String) == p.blob.hex {
                    outcome.status = .duplicate
                    outcome.imageSetID = existingSet
                    outcome.isPrimary = row["is_primary"]
                    return outcome
                }
                guard policy == .replace else {
                    return .duplicate(p, storedTransferSyntaxUID: row["transfer_syntax_uid"])
                }
                let v = try version(for: existingSet)
                try db.cachedStatement(sql: "UPDATE instance SET removed_version = ? WHERE id = ?").execute(arguments: [v, row["id"] as Int64])
                touchedSeries.insert([existingSet, row["series_instance_uid"]])
                counted(imageSet: existingSet, series: row["series_instance_uid"], by: -1)
                replaced[existingSet, default: 0] += 1
                outcome.status = .replaced
                outcome.replacedInImageSetID = existingSet
                previous = ChangeLocation(imageSet: existingSet, version: v, study: row["study_instance_uid"], patient: row["patient_id"],
                                          series: row["series_instance_uid"], transferSyntax: row["transfer_syntax_uid"],
                                          size: row["blob_size"], isPrimary: row["is_primary"])
            }
            let (setID, isPrimary, conflicts) = try imageSet(for: p)
            let v = try version(for: setID)
            let a = p.attributes
            changes.replaced(from: previous, toImageSet: setID, series: p.seriesInstanceUID, patient: a.patientID, sop: p.sopInstanceUID)
            changes.add(outcome.status == .replaced ? .instanceReplaced : .instanceStored, set: setID, version: v, study: p.studyInstanceUID,
                        patient: a.patientID, series: p.seriesInstanceUID, sop: p.sopInstanceUID, transferSyntax: p.transferSyntaxUID,
                        size: p.blobSize, isPrimary: isPrimary)
            try db.cachedStatement(sql: """
                INSERT INTO instance(image_set_id, study_instance_uid, series_instance_uid, sop_instance_uid, sop_class_uid,
                    transfer_syntax_uid, instance_number, rows, columns, bits_allocated, number_of_frames, blob_id, blob_size,
                    frames_in_place, frames_blob_id, frames_blob_size, frames_transfer_syntax_uid, added_version, stored_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [setID, p.studyInstanceUID, p.seriesInstanceUID, p.sopInstanceUID, p.sopClassUID,
                                 p.transferSyntaxUID, a.instanceNumber, a.rows, a.columns, a.bitsAllocated, a.numberOfFrames,
                                 p.blob.hex, p.blobSize, p.framesInPlace, p.framesBlob?.hex, p.framesBlob == nil ? nil : p.framesBlobSize,
                                 p.framesTransferSyntaxUID, v, now])
            let instanceID = db.lastInsertedRowID
            try db.cachedStatement(sql: "INSERT INTO instance_metadata(instance_id, json) VALUES (?, ?)").execute(arguments: [instanceID, Data(p.metadataJSON)])
            for f in p.frames {
                let fragments = f.fragments.map { $0.map { "\($0.lowerBound)+\($0.count)" }.joined(separator: ",") }
                try db.cachedStatement(sql: "INSERT INTO frame(instance_id, number, offset, length, fragments) VALUES (?, ?, ?, ?, ?)").execute(
                               arguments: [instanceID, f.number, f.offset, f.length, fragments])
            }
            try db.cachedStatement(sql: """
                INSERT INTO series(image_set_id, series_instance_uid, modality, series_number, series_description,
                    body_part_examined, performed_start_date, performed_start_time)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
                """).execute(arguments: [setID, p.seriesInstanceUID, a.modality, a.seriesNumber, a.seriesDescription,
                                 a.bodyPartExamined, a.performedProcedureStepStartDate, a.performedProcedureStepStartTime])
            added[setID, default: 0] += 1
            touchedSeries.insert([setID, p.seriesInstanceUID])
            counted(imageSet: setID, series: p.seriesInstanceUID, by: 1, id: instanceID)
            outcome.imageSetID = setID
            outcome.isPrimary = isPrimary
            outcome.conflicts = conflicts
            return outcome
        }

        /// The primary image set of the study when the patient/study attributes agree with it;
        /// otherwise the non-primary set holding the same disagreement, created when needed.
        mutating func imageSet(for p: PreparedInstance) throws -> (String, Bool, [AttributeConflict]) {
            guard let primary = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM image_set WHERE study_instance_uid = ? AND is_primary = 1"),
                                                 arguments: [p.studyInstanceUID]) else {
                return (try create(p, primary: true, conflicts: []), true, [])
            }
            let reference = SQLiteIndex.attributes(primary)
            let conflicts = p.attributes.conflicts(with: reference)
            if conflicts.isEmpty { return (primary["id"], true, []) }
            let candidates = try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM image_set WHERE study_instance_uid = ? AND is_primary = 0"),
                                              arguments: [p.studyInstanceUID])
            let matching = candidates.first { SQLiteIndex.attributes($0).conflicts(with: p.attributes).isEmpty }
            // A primary set that holds nothing (all deleted, or replaced by instances that moved) no longer
            // speaks for the study: the study is re-sent with corrected patient data, say. The arriving
            // instance's set becomes primary, so the corrected study is what DICOMweb serves; nothing of
            // the old primary can be mixed into it, since it has no current instance.
            if try !Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM instance WHERE image_set_id = ? AND removed_version IS NULL)"),
                                  arguments: [primary["id"] as String])! {
                let id = try matching.map { $0["id"] as String } ?? create(p, primary: false, conflicts: [])
                try promote(id, study: p.studyInstanceUID, attributes: p.attributes)
                return (id, true, [])
            }
            if let matching { return (matching["id"], false, conflicts) }
            return (try create(p, primary: false, conflicts: conflicts), false, conflicts)
        }

        /// Makes `id` the study's primary image set; every other set of the study becomes non-primary,
        /// its conflicts recomputed against the new primary's attributes.
        mutating func promote(_ id: String, study: String, attributes: InstanceAttributes) throws {
            // Read before the demotion: the feed says which set moved from primary.
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM image_set WHERE study_instance_uid = ? ORDER BY created_at, id", arguments: [study])
            // Demote first: at most one primary per study (the unique index image_set_one_primary).
            try db.execute(sql: "UPDATE image_set SET is_primary = 0 WHERE study_instance_uid = ?", arguments: [study])
            for row in rows {
                let other: String = row["id"]
                let conflicts = other == id ? [] : SQLiteIndex.attributes(row).conflicts(with: attributes)
                try db.execute(sql: "UPDATE image_set SET conflicts = ? WHERE id = ?", arguments: [
                    String(decoding: try JSONEncoder().encode(conflicts), as: UTF8.self), other])
                let version = other == id ? try self.version(for: id) : row["latest_version"] as Int
                changes.promoted(other, to: id, wasPrimary: row["is_primary"], version: version, study: study,
                                 patient: row["patient_id"], conflicts: conflicts)
            }
            try db.execute(sql: "UPDATE image_set SET is_primary = 1 WHERE id = ?", arguments: [id])
        }

        mutating func create(_ p: PreparedInstance, primary: Bool, conflicts: [AttributeConflict]) throws -> String {
            let id = SQLiteIndex.newImageSetID()
            let a = p.attributes
            let conflictJSON = String(decoding: try JSONEncoder().encode(conflicts), as: UTF8.self)
            try db.cachedStatement(sql: """
                INSERT INTO image_set(id, study_instance_uid, is_primary, latest_version, created_at, updated_at,
                    patient_id, patient_name, patient_birth_date, patient_sex, study_date, study_time, accession_number,
                    study_id, study_description, referring_physician_name, institution_name, conflicts,
                    patient_name_key, referring_physician_name_key)
                VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [id, p.studyInstanceUID, primary, now, now, a.patientID, a.patientName, a.patientBirthDate,
                                 a.patientSex, a.studyDate, a.studyTime, a.accessionNumber, a.studyID, a.studyDescription,
                                 a.referringPhysicianName, a.institutionName, conflictJSON,
                                 SearchQuery.personNameKey(a.patientName), SearchQuery.personNameKey(a.referringPhysicianName)])
            changes.created(id, study: p.studyInstanceUID, patient: a.patientID, primary: primary, conflicts: conflicts)
            return id
        }

        mutating func finish(reason: String) throws {
            // In id order, so that the feed lists a transaction's versions the same way on both indexes.
            for (setID, v) in newVersion.sorted(by: { $0.key < $1.key }) {
                // The previous version's count plus this batch's changes: no scan of the set's rows.
                let previous = try Int.fetchOne(db.cachedStatement(sql: """
                    SELECT instance_count FROM image_set_version WHERE image_set_id = ? ORDER BY version DESC LIMIT 1
                    """), arguments: [setID]) ?? 0
                let count = previous + (added[setID] ?? 0) - (replaced[setID] ?? 0) - (removed[setID] ?? 0)
                var why = reason
                if let n = added[setID] { why += (why.isEmpty ? "" : ": ") + "\(n) instance(s) added" }
                if let n = replaced[setID] { why += ", \(n) replaced" }
                if let n = removed[setID] { why += (why.isEmpty ? "" : ": ") + "\(n) instance(s) removed" }
                try db.cachedStatement(sql: "INSERT INTO image_set_version(image_set_id, version, created_at, reason, instance_count) VALUES (?, ?, ?, ?, ?)").execute(
                               arguments: [setID, v, now, why, count])
                // A set left with no instance (by DELETE or by replacements that moved them to another
                // set) is DELETED: searches skip it, its versions stay readable. Storing into it again
                // brings it back.
                let state = count == 0 ? ", state = 'DELETED'" : (added[setID] != nil ? ", state = 'ACTIVE'" : "")
                try db.cachedStatement(sql: "UPDATE image_set SET latest_version = ?, updated_at = ?\(state) WHERE id = ?").execute(arguments: [v, now, setID])
                changes.versioned(setID, version: v, reason: why, count: count, added: added[setID] != nil, before: sets[setID])
            }
            try writeSummaries()
            for key in touchedSeries {
                guard let v = newVersion[key[0]] else { continue }
                try SeriesMetadata.markPending(db, imageSetID: key[0], seriesInstanceUID: key[1], version: v)
            }
        }
    }

    static func newImageSetID() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(g.next() as UInt64, radix: 16).leftPadded(16) }.joined().prefix(32).description
    }

    static func attributes(_ row: Row) -> InstanceAttributes {
        var a = InstanceAttributes()
        a.patientID = row["patient_id"]; a.patientName = row["patient_name"]; a.patientBirthDate = row["patient_birth_date"]
        a.patientSex = row["patient_sex"]; a.studyDate = row["study_date"]; a.studyTime = row["study_time"]
        a.accessionNumber = row["accession_number"]; a.studyID = row["study_id"]; a.studyDescription = row["study_description"]
        a.referringPhysicianName = row["referring_physician_name"]; a.institutionName = row["institution_name"]
        return a
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// Bumps a generation after each commit that changed rows deciding what a frame request reads
/// (which instance rows are current, their image set's state and primacy, their frame ranges), and
/// once more on rollback of such a change. Observes the writer connection, so every write path of
/// the index counts, whoever calls it. The audit trail and settings are not observed: reads'
/// audit records commit all the time and change nothing a cached lookup holds.
final class IndexChangeCounter: TransactionObserver, @unchecked Sendable {
    private let value = Mutex<UInt64>(0)
    // Touched only on the writer connection's queue (GRDB calls observers there).
    private var dirty = false
    static let tables: Set<String> = ["instance", "image_set", "frame", "image_set_version"]

    var generation: UInt64 { value.withLock { $0 } }

    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool { Self.tables.contains(eventKind.tableName) }

    func databaseDidChange(with event: DatabaseEvent) {
        dirty = true
        // Also before the commit: a reader that starts now and reads the old rows stores them under
        // a generation that the commit will have left behind.
        value.withLock { $0 &+= 1 }
    }

    func databaseDidCommit(_ db: Database) { bumpIfDirty() }
    func databaseDidRollback(_ db: Database) { bumpIfDirty() }

    private func bumpIfDirty() {
        guard dirty else { return }
        dirty = false
        value.withLock { $0 &+= 1 }
    }
}
