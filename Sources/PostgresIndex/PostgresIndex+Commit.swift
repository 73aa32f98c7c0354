import Foundation
import ImageSetStore
import PostgresNIO

extension PostgresIndex {
    // MARK: Writing

    public func commit(_ instances: [PreparedInstance], policy: DuplicatePolicy, reason: String,
                       audit: (@Sendable ([IngestOutcome]) -> [AuditEvent])?) async throws -> [IngestOutcome] {
        let logger = self.logger
        return try await write { conn in
            try await Self.lockStudies(instances.map(\.studyInstanceUID), on: conn, logger: logger)
            var batch = Batch(conn: conn, logger: logger, now: Date().timeIntervalSince1970)
            var outcomes: [IngestOutcome] = []
            for instance in instances {
                // A savepoint per instance: one that fails (a constraint, say) leaves the others in.
                let before = batch
                try await conn.query("SAVEPOINT instance", logger: logger)
                var outcome: IngestOutcome
                do {
                    outcome = try await batch.place(instance, policy: policy)
                } catch {
                    let code = Self.sqlState(error) == "53100" ? FailureReason.outOfResources : FailureReason.processingFailure
                    outcome = .failure(code, "index: \(Self.describe(error))", sop: instance.sopInstanceUID,
                                       sopClass: instance.sopClassUID, study: instance.studyInstanceUID)
                }
                if outcome.status == .failed {
                    try await conn.query("ROLLBACK TO SAVEPOINT instance", logger: logger)
                    // What the rolled-back instance registered in the batch goes with it.
                    batch = before
                } else {
                    try await conn.query("RELEASE SAVEPOINT instance", logger: logger)
                }
                outcomes.append(outcome)
            }
            try await batch.finish(reason: reason)
            if let audit { try await Self.appendAudit(audit(outcomes), on: conn) }
            // Last: the feed's head row is locked from here to the commit, the one moment writers queue for.
            try await Self.appendChanges(batch.changes, on: conn, logger: logger)
            return outcomes
        }
    }

    public func removeInstances(study: String, series: String?, sop: String?, scope: ImageSetScope, reason: String,
                                audit: AuditContext?) async throws -> [String: Int] {
        let logger = self.logger
        return try await write { conn in
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
            let rows = try await Self.rows(PostgresQuery(unsafeSQL: sql, binds: binds), on: conn, logger: logger)
            var batch = Batch(conn: conn, logger: logger, now: Date().timeIntervalSince1970)
            var subjects = AuditSubjects()
            for row in rows {
                let set: String = try row.get("image_set_id"), seriesUID: String = try row.get("series_instance_uid")
                subjects.add(study: study, series: seriesUID, instance: try row.get("sop_instance_uid"), patient: try row.get("patient_id"))
                let v = try await batch.version(for: set)
                try await conn.query("UPDATE instance SET removed_version = \(v) WHERE id = \(try row.get("id", as: Int64.self))", logger: logger)
                batch.changes.add(.instanceDeleted, set: set, version: v, study: study, patient: try row.get("patient_id"), series: seriesUID,
                                  sop: try row.get("sop_instance_uid"), transferSyntax: try row.get("transfer_syntax_uid"),
                                  size: try row.get("blob_size"), isPrimary: batch.sets[set]?.isPrimary)
                batch.removed[set, default: 0] += 1
                batch.touchedSeries.insert(SeriesKey(imageSet: set, series: seriesUID))
            }
            try await batch.finish(reason: reason)
            if let audit {
                try await Self.appendAudit([AuditEvent(audit, action: .delete, subjects: subjects, success: true, status: 200,
                                                       detail: "\(rows.count) instance(s) removed")], on: conn)
            }
            try await Self.appendChanges(batch.changes, on: conn, logger: logger)
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
    /// (SQLiteIndex.Batch, statement for statement).
    struct Batch {
        let conn: PostgresConnection
        let logger: Logger
        let now: Double
        var newVersion: [String: Int] = [:]
        var added: [String: Int] = [:]
        var replaced: [String: Int] = [:]
        var removed: [String: Int] = [:]
        var touchedSeries: Set<SeriesKey> = []
        /// The change feed's events, appended at the end of the transaction.
        var changes: ChangeDrafts
        /// What the events name of each image set given a version, as the set was before this batch.
        var sets: [String: ChangeSubject] = [:]

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
            // FOR UPDATE: a writer of another study (a replacement moving an instance across studies)
            // holds no lock of this set's study; the row lock orders the two versions all the same.
            let row = try await rows("""
                SELECT latest_version, state, study_instance_uid, patient_id, is_primary FROM image_set WHERE id = \(imageSet) FOR UPDATE
                """).first
            let latest = try row?.get("latest_version", as: Int.self) ?? 0
            if let row {
                sets[imageSet] = ChangeSubject(study: try row.get("study_instance_uid"), patient: try row.get("patient_id"),
                                               state: try row.get("state"), isPrimary: try row.get("is_primary"))
            }
            newVersion[imageSet] = latest + 1
            return latest + 1
        }

        mutating func place(_ p: PreparedInstance, policy: DuplicatePolicy) async throws -> IngestOutcome {
            var outcome = IngestOutcome(status: .stored, sopInstanceUID: p.sopInstanceUID, sopClassUID: p.sopClassUID,
                                        studyInstanceUID: p.studyInstanceUID, seriesInstanceUID: p.seriesInstanceUID)
            var previous: ChangeLocation?
            if let row = try await rows("""
                SELECT i.id, i.image_set_id, i.series_instance_uid, i.blob_id, i.transfer_syntax_uid, i.blob_size, i.study_instance_uid,
                    s.is_primary, s.patient_id
                FROM instance i JOIN image_set s ON s.id = i.image_set_id
                WHERE i.sop_instance_uid = \(p.sopInstanceUID) AND i.removed_version IS NULL
                FOR UPDATE OF i
                """).first {
                let existingSet: String = try row.get("image_set_id")
                if try row.get("blob_id", as: String.self) == p.blob.hex {
                    outcome.status = .duplicate
                    outcome.imageSetID = existingSet
                    outcome.isPrimary = try row.get("is_primary")
                    return outcome
                }
                guard policy == .replace else {
                    return .duplicate(p, storedTransferSyntaxUID: try row.get("transfer_syntax_uid"))
                }
                let v = try await version(for: existingSet)
                // The row may sit in a study this transaction has not locked: removed only if still current.
                let removed = try await rows("""
                    UPDATE instance SET removed_version = \(v) WHERE id = \(try row.get("id", as: Int64.self)) AND removed_version IS NULL RETURNING id
                    """)
                guard !removed.isEmpty else { throw PostgresIndexError("the stored copy of \(p.sopInstanceUID) changed during the replacement; retry") }
                touchedSeries.insert(SeriesKey(imageSet: existingSet, series: try row.get("series_instance_uid")))
                replaced[existingSet, default: 0] += 1
                outcome.status = .replaced
                outcome.replacedInImageSetID = existingSet
                previous = ChangeLocation(imageSet: existingSet, version: v, study: try row.get("study_instance_uid"),
                                          patient: try row.get("patient_id"), series: try row.get("series_instance_uid"),
                                          transferSyntax: try row.get("transfer_syntax_uid"), size: try row.get("blob_size"),
                                          isPrimary: try row.get("is_primary"))
            }
            let (setID, isPrimary, conflicts) = try await imageSet(for: p)
            let v = try await version(for: setID)
            let a = p.attributes
            changes.replaced(from: previous, toImageSet: setID, series: p.seriesInstanceUID, patient: a.patientID, sop: p.sopInstanceUID)
            changes.add(outcome.status == .replaced ? .instanceReplaced : .instanceStored, set: setID, version: v, study: p.studyInstanceUID,
                        patient: a.patientID, series: p.seriesInstanceUID, sop: p.sopInstanceUID, transferSyntax: p.transferSyntaxUID,
                        size: p.blobSize, isPrimary: isPrimary)
            let framesBlobSize: Int? = p.framesBlob == nil ? nil : p.framesBlobSize
            let numbers = p.frames.map { Int64($0.number) }, offsets = p.frames.map { Int64($0.offset) }
            let lengths = p.frames.map { Int64($0.length) }
            let fragments = p.frames.map { f in f.fragments.map { $0.map { "\($0.lowerBound)+\($0.count)" }.joined(separator: ",") } ?? "" }
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
            guard !inserted.isEmpty else { throw PostgresIndexError("INSERT returned no id") }
            added[setID, default: 0] += 1
            touchedSeries.insert(SeriesKey(imageSet: setID, series: p.seriesInstanceUID))
            outcome.imageSetID = setID
            outcome.isPrimary = isPrimary
            outcome.conflicts = conflicts
            return outcome
        }

        /// The primary image set of the study when the patient/study attributes agree with it;
        /// otherwise the non-primary set holding the same disagreement, created when needed.
        mutating func imageSet(for p: PreparedInstance) async throws -> (String, Bool, [AttributeConflict]) {
            guard let primary = try await rows("SELECT * FROM image_set WHERE study_instance_uid = \(p.studyInstanceUID) AND is_primary").first else {
                return (try await create(p, primary: true, conflicts: []), true, [])
            }
            let primaryID: String = try primary.get("id")
            let conflicts = p.attributes.conflicts(with: try PostgresIndex.attributes(primary))
            if conflicts.isEmpty { return (primaryID, true, []) }
            let candidates = try await rows("SELECT * FROM image_set WHERE study_instance_uid = \(p.studyInstanceUID) AND NOT is_primary ORDER BY created_at, id")
            var matching: String?
            for c in candidates where try PostgresIndex.attributes(c).conflicts(with: p.attributes).isEmpty {
                matching = try c.get("id")
                break
            }
            // A primary set that holds nothing no longer speaks for the study (SQLiteIndex.Batch.imageSet):
            // the arriving instance's set becomes primary.
            let holdsAny = try await rows("""
                SELECT EXISTS (SELECT 1 FROM instance WHERE image_set_id = \(primaryID) AND removed_version IS NULL) AS any
                """).first?.get("any", as: Bool.self) ?? false
            if !holdsAny {
                let id: String
                if let matching { id = matching } else { id = try await create(p, primary: false, conflicts: []) }
                try await promote(id, study: p.studyInstanceUID, attributes: p.attributes)
                return (id, true, [])
            }
            if let matching { return (matching, false, conflicts) }
            return (try await create(p, primary: false, conflicts: conflicts), false, conflicts)
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
            let a = p.attributes
            let conflictJSON = String(decoding: try JSONEncoder().encode(conflicts), as: UTF8.self)
            try await execute("""
                INSERT INTO image_set(id, study_instance_uid, is_primary, latest_version, created_at, updated_at,
                    patient_id, patient_name, patient_birth_date, patient_sex, study_date, study_time, accession_number,
                    study_id, study_description, referring_physician_name, institution_name, conflicts,
                    patient_name_key, referring_physician_name_key)
                VALUES (\(id), \(p.studyInstanceUID), \(primary), 0, \(now), \(now), \(a.patientID), \(a.patientName), \(a.patientBirthDate),
                    \(a.patientSex), \(a.studyDate), \(a.studyTime), \(a.accessionNumber), \(a.studyID), \(a.studyDescription),
                    \(a.referringPhysicianName), \(a.institutionName), \(conflictJSON),
                    \(SearchQuery.personNameKey(a.patientName)), \(SearchQuery.personNameKey(a.referringPhysicianName)))
                """)
            changes.created(id, study: p.studyInstanceUID, patient: a.patientID, primary: primary, conflicts: conflicts)
            return id
        }

        mutating func finish(reason: String) async throws {
            // Sorted, so that the row locks these updates take come in the same order in every writer.
            for (setID, v) in newVersion.sorted(by: { $0.key < $1.key }) {
                // The previous version's count plus this batch's changes: no scan of the set's rows.
                let previous = try await rows("""
                    SELECT instance_count FROM image_set_version WHERE image_set_id = \(setID) ORDER BY version DESC LIMIT 1
                    """).first?.get("instance_count", as: Int.self) ?? 0
                let count = previous + (added[setID] ?? 0) - (replaced[setID] ?? 0) - (removed[setID] ?? 0)
                var why = reason
                if let n = added[setID] { why += (why.isEmpty ? "" : ": ") + "\(n) instance(s) added" }
                if let n = replaced[setID] { why += ", \(n) replaced" }
                if let n = removed[setID] { why += (why.isEmpty ? "" : ": ") + "\(n) instance(s) removed" }
                try await execute("""
                    INSERT INTO image_set_version(image_set_id, version, created_at, reason, instance_count)
                    VALUES (\(setID), \(v), \(now), \(why), \(count))
                    """)
                // A set left with no instance is DELETED; storing into it again brings it back.
                let state = count == 0 ? ", state = 'DELETED'" : (added[setID] != nil ? ", state = 'ACTIVE'" : "")
                try await execute(PostgresQuery(unsafeSQL: "UPDATE image_set SET latest_version = $1, updated_at = $2\(state) WHERE id = $3",
                                                binds: Self.binds(v, now, setID)))
                changes.versioned(setID, version: v, reason: why, count: count, added: added[setID] != nil, before: sets[setID])
            }
            for key in touchedSeries {
                guard let v = newVersion[key.imageSet] else { continue }
                try await PostgresIndex.markSeriesPending(conn, logger: logger, imageSetID: key.imageSet, seriesInstanceUID: key.series, version: v)
            }
        }

        static func binds(_ v: Int, _ now: Double, _ id: String) -> PostgresBindings {
            var b = PostgresBindings()
            b.append(v); b.append(now); b.append(id)
            return b
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
