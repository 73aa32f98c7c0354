import Foundation
import ImageSetStore
import PostgresNIO

extension PostgresIndex {
    // MARK: Writing

    public func commit(_ instances: [PreparedInstance], policy: DuplicatePolicy, reason: String,
                       audit: (@Sendable ([IngestOutcome]) -> [AuditEvent])?) async throws -> [IngestOutcome] {
        do {
            return try await commit(instances, policy: policy, reason: reason, audit: audit, together: true)
        } catch let retry as InstanceByInstance {
            // The batch's transaction rolled back whole; one savepoint per instance says which one failed.
            logger.debug("PostgreSQL index: a batch of \(instances.count) instance(s) commits one by one (\(retry.reason))")
            return try await commit(instances, policy: policy, reason: reason, audit: audit, together: false)
        }
    }

    /// `together`: the batch is read in a few statements and written in a few more (`Batch.Deferred`),
    /// where a savepoint per instance costs about five round trips an instance. It applies when every
    /// SOP Instance UID is in the batch once; what it cannot place, or a write that fails, throws
    /// `InstanceByInstance` for the caller to commit the batch again one savepoint per instance.
    func commit(_ instances: [PreparedInstance], policy: DuplicatePolicy, reason: String,
                audit: (@Sendable ([IngestOutcome]) -> [AuditEvent])?, together: Bool) async throws -> [IngestOutcome] {
        let logger = self.logger
        let together = together && Self.committableTogether(instances)
        return try await write(onConnectionsLoop: true) { conn in
            try await Self.lockStudies(instances.map(\.studyInstanceUID), on: conn, logger: logger)
            var batch = Batch(conn: conn, logger: logger, now: Date().timeIntervalSince1970)
            if together { try await batch.readTogether(instances, policy: policy) }
            var outcomes: [IngestOutcome] = []
            for instance in instances {
                // A savepoint per instance: one that fails (a constraint, say) leaves the others in.
                let before = batch
                if !together { try await conn.query("SAVEPOINT instance", logger: logger) }
                var outcome: IngestOutcome
                do {
                    outcome = try await batch.place(instance, policy: policy)
                } catch {
                    if together { throw InstanceByInstance(reason: Self.describe(error)) }
                    let code = Self.sqlState(error) == "53100" ? FailureReason.outOfResources : FailureReason.processingFailure
                    outcome = .failure(code, "index: \(Self.describe(error))", sop: instance.sopInstanceUID,
                                       sopClass: instance.sopClassUID, study: instance.studyInstanceUID)
                }
                if outcome.status == .failed {
                    if !together { try await conn.query("ROLLBACK TO SAVEPOINT instance", logger: logger) }
                    // What the rolled-back instance registered in the batch goes with it.
                    batch = before
                } else if !together {
                    try await conn.query("RELEASE SAVEPOINT instance", logger: logger)
                }
                outcomes.append(outcome)
            }
            // The rows and versions in one statement, which also takes the audit lock and reads its head.
            let head: (Int64, String)?
            if together {
                do { head = try await batch.writeTogether(reason: reason, auditHead: audit != nil) } catch {
                    throw InstanceByInstance(reason: Self.describe(error))
                }
            } else {
                head = try await batch.finish(reason: reason, auditHead: audit != nil)
            }
            var records: [AuditRecord] = []
            if let audit {
                records = Self.chained(audit(outcomes), after: try await Self.lockedHead(unlessRead: head, on: conn, logger: logger))
            }
            // Last: the feed's head row is locked from here to the commit, the one moment writers queue for.
            try await Self.appendTrails(records, batch.changes, on: conn, logger: logger)
            return outcomes
        }
    }

    /// A batch committed together met what only the per-instance path handles (a promotion), or one
    /// of its writes failed: its transaction is rolled back and it is committed again instance by instance.
    struct InstanceByInstance: Error {
        var reason: String
    }

    public func removeInstances(study: String, series: String?, sop: String?, scope: ImageSetScope, reason: String,
                                audit: AuditContext?) async throws -> [String: Int] {
        let logger = self.logger
        return try await write(onConnectionsLoop: true) { conn in
            try await Self.lockStudies([study], on: conn, logger: logger)
            var binds = PostgresBindings()
            binds.append(study)
            var sql = """
                SELECT i.id, i.image_set_id, i.series_instance_uid, i.sop_instance_uid, i.transfer_syntax_uid, i.blob_size, s.patient_id
                FROM instance i JOIN image_set s ON s.id = i.image_set_id
                WHERE i.study_instance_uid = $1 AND i.removed_version IS NULL AND \(Self.scopeClause(scope, imageSet: "s", binds: &binds))
                """
            if let series { binds.append(series); sql += " AND i.series_instance_uid = $\(binds.count)" }
            if let sop { binds.append(sop); sql += " AND i.sop_instance_uid = $\(binds.count)" }
            // The rows locked before their sets, as commits lock them: a STOW-RS into another study that
            // replaces one of them holds it without this study's lock, and once it commits the row is
            // no longer current (READ COMMITTED re-checks the condition), so it is not removed twice.
            sql += " ORDER BY i.id FOR UPDATE OF i"
            let rows = try await Self.rows(PostgresQuery(unsafeSQL: sql, binds: binds), on: conn, logger: logger)
            var batch = Batch(conn: conn, logger: logger, now: Date().timeIntervalSince1970)
            var subjects = AuditSubjects()
            for row in rows {
                let set: String = try row.get("image_set_id"), seriesUID: String = try row.get("series_instance_uid")
                subjects.add(study: study, series: seriesUID, instance: try row.get("sop_instance_uid"), patient: try row.get("patient_id"))
                let v = try await batch.version(for: set)
                let removed = try await Self.rows(
                    "UPDATE instance SET removed_version = \(v) WHERE id = \(try row.get("id", as: Int64.self)) AND removed_version IS NULL RETURNING id",
                    on: conn, logger: logger)
                guard removed.count == 1 else { throw PostgresIndexError("an instance being deleted changed meanwhile; retry") }
                batch.changes.add(.instanceDeleted, set: set, version: v, study: study, patient: try row.get("patient_id"), series: seriesUID,
                                  sop: try row.get("sop_instance_uid"), transferSyntax: try row.get("transfer_syntax_uid"),
                                  size: try row.get("blob_size"), isPrimary: batch.sets[set]?.isPrimary)
                batch.removed[set, default: 0] += 1
                batch.touchedSeries.insert(SeriesKey(imageSet: set, series: seriesUID))
                batch.counted(imageSet: set, series: seriesUID, by: -1)
            }
            let head = try await batch.finish(reason: reason, auditHead: audit != nil)
            var records: [AuditRecord] = []
            if let audit {
                records = Self.chained([AuditEvent(audit, action: .delete, subjects: subjects, success: true, status: 200,
                                                   detail: "\(rows.count) instance(s) removed")],
                                       after: try await Self.lockedHead(unlessRead: head, on: conn, logger: logger))
            }
            try await Self.appendTrails(records, batch.changes, on: conn, logger: logger)
            return batch.removed
        }
    }

    /// The SQL condition selecting the image sets `scope` sees, on the image_set table aliased
    /// `imageSet`; its argument, if any, is appended to `binds`.
    static func scopeClause(_ scope: ImageSetScope, imageSet: String, binds: inout PostgresBindings) -> String {
        switch scope {
        case .primary: return "\(imageSet).is_primary"
        case .imageSet(let id):
            binds.append(id)
            return "\(imageSet).id = $\(binds.count)"
        }
    }

    public func setSetting(_ key: String, _ value: String) async throws {
        let logger = self.logger
        try await write { conn in
            try await conn.query("""
                INSERT INTO setting(key, value) VALUES (\(key), \(value)) ON CONFLICT(key) DO UPDATE SET value = excluded.value
                """, logger: logger)
        }
    }

    struct SeriesKey: Hashable {
        var imageSet: String
        var series: String
    }

    /// The image sets one transaction touches: each gets one new version, written at the end
    /// (SQLiteIndex.Batch's rules; its writes batched, PostgresIndex+CommitTogether.swift).
    struct Batch {
        let conn: PostgresConnection
        let logger: Logger
        let now: Double
        var newVersion: [String: Int] = [:]
        var added: [String: Int] = [:]
        var replaced: [String: Int] = [:]
        var removed: [String: Int] = [:]
        var touchedSeries: Set<SeriesKey> = []
        /// Per series: current instances gained less those lost (PostgresIndex+StudySummary.swift).
        var seriesDelta: [SeriesKey: Int] = [:]
        /// Per image set: the lowest instance row id the batch added (known once the rows are written).
        var firstAdded: [String: Int64] = [:]
        /// The change feed's events, appended at the end of the transaction.
        var changes: ChangeDrafts
        /// What the events name of each image set given a version, as the set was before this batch.
        var sets: [String: ChangeSubject] = [:]
        /// Set when the batch commits together: what it read up front, and the writes it holds back.
        var deferred: Deferred?

        init(conn: PostgresConnection, logger: Logger, now: Double) {
            self.conn = conn
            self.logger = logger
            self.now = now
            changes = ChangeDrafts(now: now)
        }

        func rows(_ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
            try await PostgresIndex.rows(query, on: conn, logger: logger)
        }

        func execute(_ query: PostgresQuery) async throws {
            try await conn.query(query, logger: logger)
        }

        mutating func version(for imageSet: String) async throws -> Int {
            if let v = newVersion[imageSet] { return v }
            let row: SetRow?
            if let deferred {
                // Read and locked, FOR UPDATE, by `readTogether`.
                guard let known = deferred.sets[imageSet] else { throw InstanceByInstance(reason: "image set \(imageSet) was not read") }
                row = known
            } else {
                // FOR UPDATE: a writer of another study (a replacement moving an instance across studies)
                // holds no lock of this set's study; the row lock orders the two versions all the same.
                row = try await rows("SELECT * FROM image_set WHERE id = \(imageSet) FOR UPDATE").first.map(SetRow.init)
            }
            let latest = row?.latestVersion ?? 0
            if let row { sets[imageSet] = ChangeSubject(study: row.study, patient: row.patientID, state: row.state, isPrimary: row.isPrimary) }
            newVersion[imageSet] = latest + 1
            return latest + 1
        }

        mutating func place(_ p: PreparedInstance, policy: DuplicatePolicy) async throws -> IngestOutcome {
            var outcome = IngestOutcome(status: .stored, sopInstanceUID: p.sopInstanceUID, sopClassUID: p.sopClassUID,
                                        studyInstanceUID: p.studyInstanceUID, seriesInstanceUID: p.seriesInstanceUID)
            var previous: ChangeLocation?
            if let copy = try await storedCopy(p.sopInstanceUID) {
                if copy.blob == p.blob.hex {
                    outcome.status = .duplicate
                    outcome.imageSetID = copy.imageSet
                    outcome.isPrimary = copy.isPrimary
                    return outcome
                }
                guard policy == .replace else { return .duplicate(p, storedTransferSyntaxUID: copy.transferSyntax) }
                let v = try await version(for: copy.imageSet)
                if deferred != nil {
                    deferred?.removals.append((copy.id, v))
                } else {
                    // The row may sit in a study this transaction has not locked: removed only if still current.
                    let removed = try await rows("""
                        UPDATE instance SET removed_version = \(v) WHERE id = \(copy.id) AND removed_version IS NULL RETURNING id
                        """)
                    guard !removed.isEmpty else { throw PostgresIndexError("the stored copy of \(p.sopInstanceUID) changed during the replacement; retry") }
                }
                touchedSeries.insert(SeriesKey(imageSet: copy.imageSet, series: copy.series))
                counted(imageSet: copy.imageSet, series: copy.series, by: -1)
                replaced[copy.imageSet, default: 0] += 1
                outcome.status = .replaced
                outcome.replacedInImageSetID = copy.imageSet
                previous = ChangeLocation(imageSet: copy.imageSet, version: v, study: copy.study, patient: copy.patientID, series: copy.series,
                                          transferSyntax: copy.transferSyntax, size: copy.size, isPrimary: copy.isPrimary)
            }
            let (setID, isPrimary, conflicts) = try await imageSet(for: p)
            let v = try await version(for: setID)
            let a = p.attributes
            changes.replaced(from: previous, toImageSet: setID, series: p.seriesInstanceUID, patient: a.patientID, sop: p.sopInstanceUID)
            changes.add(outcome.status == .replaced ? .instanceReplaced : .instanceStored, set: setID, version: v, study: p.studyInstanceUID,
                        patient: a.patientID, series: p.seriesInstanceUID, sop: p.sopInstanceUID, transferSyntax: p.transferSyntaxUID,
                        size: p.blobSize, isPrimary: isPrimary)
            var id: Int64?
            if deferred != nil {
                deferred?.inserts.append(Placed(instance: p, imageSet: setID, version: v))
            } else {
                id = try await insert(p, imageSet: setID, version: v)
            }
            counted(imageSet: setID, series: p.seriesInstanceUID, by: 1, id: id)
            added[setID, default: 0] += 1
            touchedSeries.insert(SeriesKey(imageSet: setID, series: p.seriesInstanceUID))
            outcome.imageSetID = setID
            outcome.isPrimary = isPrimary
            outcome.conflicts = conflicts
            return outcome
        }

        /// The current row of a SOP Instance UID, locked.
        func storedCopy(_ sop: String) async throws -> StoredCopy? {
            if let deferred { return deferred.copies[sop] }
            return try await rows("""
                SELECT \(unescaped: StoredCopy.columns)
                FROM instance i JOIN image_set s ON s.id = i.image_set_id
                WHERE i.sop_instance_uid = \(sop) AND i.removed_version IS NULL
                FOR UPDATE OF i
                """).first.map(StoredCopy.init)
        }

        /// Returns the new row's id.
        func insert(_ p: PreparedInstance, imageSet setID: String, version v: Int) async throws -> Int64 {
            let a = p.attributes
            let framesBlobSize: Int? = p.framesBlob == nil ? nil : p.framesBlobSize
            let numbers = p.frames.map { Int64($0.number) }, offsets = p.frames.map { Int64($0.offset) }
            let lengths = p.frames.map { Int64($0.length) }
            let fragments = p.frames.map(Self.fragmentList)
            // Arrays bind no NULL element from Swift: a flag says which frames have a fragment list.
            let hasFragments = p.frames.map { $0.fragments != nil }
            // One statement (one round trip) for the instance, its metadata, its frames (a multi-frame
            // instance has thousands) and its series: per-statement round trips were most of a commit's time.
            let inserted = try await rows("""
                WITH ins AS (
                    INSERT INTO instance(image_set_id, study_instance_uid, series_instance_uid, sop_instance_uid, sop_class_uid,
                        transfer_syntax_uid, instance_number, rows, columns, bits_allocated, number_of_frames, blob_id, blob_size,
                        frames_in_place, frames_blob_id, frames_blob_size, frames_transfer_syntax_uid, added_version, stored_at)
                    VALUES (\(setID), \(p.studyInstanceUID), \(p.seriesInstanceUID), \(p.sopInstanceUID), \(p.sopClassUID),
                        \(p.transferSyntaxUID), \(a.instanceNumber), \(a.rows), \(a.columns), \(a.bitsAllocated), \(a.numberOfFrames),
                        \(p.blob.hex), \(p.blobSize), \(p.framesInPlace), \(p.framesBlob?.hex), \(framesBlobSize),
                        \(p.framesTransferSyntaxUID), \(v), \(now))
                    RETURNING id
                ), metadata AS (
                    INSERT INTO instance_metadata(instance_id, json) SELECT id, \(ByteBuffer(bytes: p.metadataJSON)) FROM ins
                ), frames AS (
                    INSERT INTO frame(instance_id, number, "offset", length, fragments)
                    SELECT ins.id, n, o, l, CASE WHEN h THEN f END
                    FROM ins, unnest(\(numbers)::bigint[], \(offsets)::bigint[], \(lengths)::bigint[], \(fragments)::text[],
                                     \(hasFragments)::boolean[]) AS t(n, o, l, f, h)
                ), series AS (
                    INSERT INTO series(image_set_id, series_instance_uid, modality, series_number, series_description,
                        body_part_examined, performed_start_date, performed_start_time)
                    VALUES (\(setID), \(p.seriesInstanceUID), \(a.modality), \(a.seriesNumber), \(a.seriesDescription),
                        \(a.bodyPartExamined), \(a.performedProcedureStepStartDate), \(a.performedProcedureStepStartTime))
                    ON CONFLICT DO NOTHING
                )
                SELECT id FROM ins
                """)
            guard let id = try inserted.first?.get("id", as: Int64.self) else { throw PostgresIndexError("INSERT returned no id") }
            return id
        }

        /// A frame's fragment list as the `fragments` column keeps it ("start+count,…"; "" for none).
        static func fragmentList(_ f: FrameRecord) -> String {
            f.fragments.map { $0.map { "\($0.lowerBound)+\($0.count)" }.joined(separator: ",") } ?? ""
        }

        /// The primary image set of the study when the patient/study attributes agree with it;
        /// otherwise the non-primary set holding the same disagreement, created when needed.
        mutating func imageSet(for p: PreparedInstance) async throws -> (String, Bool, [AttributeConflict]) {
            let study = p.studyInstanceUID
            // Committing together, the study's sets are those read up front and those the batch created.
            let studySets = deferred.map { d in d.sets.values.filter { $0.study == study } }
            let primaryRow: SetRow?
            if let studySets {
                primaryRow = studySets.first(where: \.isPrimary)
            } else {
                primaryRow = try await rows("SELECT * FROM image_set WHERE study_instance_uid = \(study) AND is_primary").first.map(SetRow.init)
            }
            guard let primary = primaryRow else {
                return (try await create(p, primary: true, conflicts: []), true, [])
            }
            let conflicts = p.attributes.conflicts(with: primary.attributes)
            if conflicts.isEmpty { return (primary.id, true, []) }
            let candidates: [SetRow]
            if let studySets {
                candidates = studySets.filter { !$0.isPrimary }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
            } else {
                candidates = try await rows("SELECT * FROM image_set WHERE study_instance_uid = \(study) AND NOT is_primary ORDER BY created_at, id")
                    .map(SetRow.init)
            }
            let matching = candidates.first { $0.attributes.conflicts(with: p.attributes).isEmpty }?.id
            // A primary set that holds nothing no longer speaks for the study (SQLiteIndex.Batch.imageSet):
            // the arriving instance's set becomes primary.
            if try await !holdsAny(primary.id) {
                if deferred != nil { throw InstanceByInstance(reason: "a primary image set holding nothing gives way") }
                let id: String
                if let matching { id = matching } else { id = try await create(p, primary: false, conflicts: []) }
                try await promote(id, study: study, attributes: p.attributes)
                return (id, true, [])
            }
            if let matching { return (matching, false, conflicts) }
            return (try await create(p, primary: false, conflicts: conflicts), false, conflicts)
        }

        /// Whether the set has a current instance, as of this point of the batch.
        mutating func holdsAny(_ setID: String) async throws -> Bool {
            if deferred != nil {
                // Nothing is written yet: what the batch placed so far is in its counts.
                if added[setID] != nil { return true }
                if replaced[setID] != nil { throw InstanceByInstance(reason: "a replacement emptied image set \(setID) perhaps") }
                if let known = deferred?.holdsAny[setID] { return known }
            }
            let any = try await rows("""
                SELECT EXISTS (SELECT 1 FROM instance WHERE image_set_id = \(setID) AND removed_version IS NULL) AS any
                """).first?.get("any", as: Bool.self) ?? false
            deferred?.holdsAny[setID] = any
            return any
        }

        /// Makes `id` the study's primary image set; every other set of the study becomes non-primary,
        /// its conflicts recomputed against the new primary's attributes.
        mutating func promote(_ id: String, study: String, attributes: InstanceAttributes) async throws {
            // Read before the demotion: the feed says which set moved from primary.
            let studySets = try await rows("SELECT * FROM image_set WHERE study_instance_uid = \(study) ORDER BY created_at, id")
            // Demote first: at most one primary per study (the unique index image_set_one_primary).
            try await execute("UPDATE image_set SET is_primary = false WHERE study_instance_uid = \(study)")
            for row in studySets {
                let other: String = try row.get("id")
                let conflicts = other == id ? [] : try PostgresIndex.attributes(row).conflicts(with: attributes)
                let json = String(decoding: try JSONEncoder().encode(conflicts), as: UTF8.self)
                try await execute("UPDATE image_set SET conflicts = \(json) WHERE id = \(other)")
                let version = other == id ? try await self.version(for: id) : try row.get("latest_version", as: Int.self)
                changes.promoted(other, to: id, wasPrimary: try row.get("is_primary"), version: version, study: study,
                                 patient: try row.get("patient_id"), conflicts: conflicts)
            }
            try await execute("UPDATE image_set SET is_primary = true WHERE id = \(id)")
        }

        mutating func create(_ p: PreparedInstance, primary: Bool, conflicts: [AttributeConflict]) async throws -> String {
            let id = PostgresIndex.newImageSetID()
            if deferred != nil {
                deferred?.newSets.append(NewSet(id: id, instance: p, primary: primary, conflicts: conflicts))
                deferred?.sets[id] = SetRow(id: id, study: p.studyInstanceUID, isPrimary: primary, state: "ACTIVE", latestVersion: 0,
                                            createdAt: now, patientID: p.attributes.patientID, attributes: p.attributes)
            } else {
                try await insertImageSet(NewSet(id: id, instance: p, primary: primary, conflicts: conflicts))
            }
            changes.created(id, study: p.studyInstanceUID, patient: p.attributes.patientID, primary: primary, conflicts: conflicts)
            return id
        }

        func insertImageSet(_ set: NewSet) async throws {
            let p = set.instance, a = p.attributes
            let conflictJSON = String(decoding: try JSONEncoder().encode(set.conflicts), as: UTF8.self)
            try await execute("""
                INSERT INTO image_set(id, study_instance_uid, is_primary, latest_version, created_at, updated_at,
                    patient_id, patient_name, patient_birth_date, patient_sex, study_date, study_time, accession_number,
                    study_id, study_description, referring_physician_name, institution_name, conflicts,
                    patient_name_key, referring_physician_name_key)
                VALUES (\(set.id), \(p.studyInstanceUID), \(set.primary), 0, \(now), \(now), \(a.patientID), \(a.patientName), \(a.patientBirthDate),
                    \(a.patientSex), \(a.studyDate), \(a.studyTime), \(a.accessionNumber), \(a.studyID), \(a.studyDescription),
                    \(a.referringPhysicianName), \(a.institutionName), \(conflictJSON),
                    \(SearchQuery.personNameKey(a.patientName)), \(SearchQuery.personNameKey(a.referringPhysicianName)))
                """)
        }
    }

    static func attributes(_ row: PostgresRandomAccessRow) throws -> InstanceAttributes {
        var a = InstanceAttributes()
        a.patientID = try row.get("patient_id"); a.patientName = try row.get("patient_name"); a.patientBirthDate = try row.get("patient_birth_date")
        a.patientSex = try row.get("patient_sex"); a.studyDate = try row.get("study_date"); a.studyTime = try row.get("study_time")
        a.accessionNumber = try row.get("accession_number"); a.studyID = try row.get("study_id")
        a.studyDescription = try row.get("study_description")
        a.referringPhysicianName = try row.get("referring_physician_name"); a.institutionName = try row.get("institution_name")
        return a
    }
}
