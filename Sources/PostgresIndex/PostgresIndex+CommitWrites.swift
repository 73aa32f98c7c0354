import Foundation
import ImageSetStore
import PostgresNIO

/// A batch's writes (PostgresIndex+CommitTogether.swift holds its reads). Every instance with its
/// metadata, frames and series, then one new version of each image set touched with its count,
/// state and series marks, and the audit lock and head, all in one statement: a group commit of a
/// few STOW-RS requests used to send them as three (each a round trip and about 200 µs of the
/// client's CPU). The one-savepoint-per-instance path and removals run the same statement with no
/// instances (their rows are written by then).
extension PostgresIndex.Batch {
    enum WriteAndVersion: PreparedTag { static let name = "write_and_version" }

    /// The held-back writes of a batch committed together: new image sets and replaced rows (rare:
    /// a study's first commit, replacements), then `writeAndVersion`. With `auditHead`, the audit
    /// lock is taken and its head returned (nil: the caller reads it, `PostgresIndex.lockedHead`).
    mutating func writeTogether(reason: String, auditHead: Bool) async throws -> (Int64, String)? {
        guard let d = deferred else { return nil }
        for set in d.newSets { try await insertImageSet(set) }
        if !d.removals.isEmpty {
            let ids = d.removals.map(\.id), versions = d.removals.map { Int64($0.version) }
            // Only rows still current: the copies were locked, so all of them are.
            let removed = try await rows("""
                UPDATE instance SET removed_version = t.v FROM unnest(\(ids)::bigint[], \(versions)::bigint[]) AS t(id, v)
                WHERE instance.id = t.id AND instance.removed_version IS NULL RETURNING instance.id
                """)
            guard removed.count == ids.count else { throw PostgresIndexError("a stored copy changed during the replacement; retry") }
        }
        return try await writeAndVersion(d.inserts, reason: reason, auditHead: auditHead)
    }

    /// One new version of each image set touched, for a batch whose rows are written already (one
    /// savepoint per instance, removals). Returns the audit head as `writeTogether` does.
    mutating func finish(reason: String, auditHead: Bool = false) async throws -> (Int64, String)? {
        try await writeAndVersion([], reason: reason, auditHead: auditHead)
    }

    /// `placed`'s rows, then the versions with each set's stored summary (PostgresIndex+StudySummary.swift). The count of a version is the previous version's plus this
    /// batch's changes: no scan of the set's rows. A series left with no current instance loses its
    /// document; the others are pending at the new version. The statement's snapshot predates its own
    /// inserts, so a series is live when this statement inserts into it or a current row was there.
    /// The audit lock is taken after the instance rows are in (`locked_head` reads `ins`): an insert
    /// that waits for another transaction's copy of the same SOP Instance UID (the unique index) never
    /// waits holding the lock that transaction needs to finish, as when the lock was a later statement.
    /// The summaries: every statement of the WITH reads the tables as they were before it, so a series
    /// row it inserts (`new_series`) starts at its count of `input`, `counted` adds the batch's changes
    /// to the rows that were there, and a set's totals and lowest new instance take both into account.
    mutating func writeAndVersion(_ placed: [PostgresIndex.Placed], reason: String, auditHead: Bool) async throws -> (Int64, String)? {
        let versioned = newVersion.sorted { $0.key < $1.key }
        guard !versioned.isEmpty else {
            if placed.isEmpty { return nil }
            throw PostgresIndexError("instances placed without a version")
        }
        func number(_ v: Int?) -> Int64 { v.map(Int64.init) ?? PostgresIndex.absentNumber }
        let p = placed.map(\.instance), a = p.map(\.attributes)
        let sets = placed.map(\.imageSet), versions = placed.map { Int64($0.version) }
        let studies = p.map(\.studyInstanceUID), series = p.map(\.seriesInstanceUID), sops = p.map(\.sopInstanceUID)
        let classes = p.map(\.sopClassUID), syntaxes = p.map(\.transferSyntaxUID)
        // The same numbers as `PostgresIndex.batchedNumbers` lists (a new one goes in both).
        let instanceNumbers = a.map { number($0.instanceNumber) }, rowCounts = a.map { number($0.rows) }
        let columnCounts = a.map { number($0.columns) }, bits = a.map { number($0.bitsAllocated) }
        let frameCounts = a.map { number($0.numberOfFrames) }
        let blobs = p.map(\.blob.hex), blobSizes = p.map { Int64($0.blobSize) }, inPlace = p.map(\.framesInPlace)
        // "" for none: no blob id or UID is empty.
        let framesBlobs = p.map { $0.framesBlob?.hex ?? "" }
        let framesBlobSizes = p.map { $0.framesBlob == nil ? PostgresIndex.absentNumber : Int64($0.framesBlobSize) }
        let framesSyntaxes = p.map { $0.framesTransferSyntaxUID ?? "" }
        let metadata = p.map { ByteBuffer(bytes: $0.metadataJSON) }
        // Frames name their instance by its place in the batch (1-based, as WITH ORDINALITY counts).
        var frameOf: [Int64] = [], numbers: [Int64] = [], offsets: [Int64] = [], lengths: [Int64] = []
        var fragments: [String] = [], hasFragments: [Bool] = []
        for (k, instance) in p.enumerated() {
            for f in instance.frames {
                frameOf.append(Int64(k + 1)); numbers.append(Int64(f.number)); offsets.append(Int64(f.offset))
                lengths.append(Int64(f.length)); fragments.append(Self.fragmentList(f)); hasFragments.append(f.fragments != nil)
            }
        }
        // A series row comes from the first instance placed in it (the per-instance path's ON CONFLICT DO NOTHING).
        var seen: Set<PostgresIndex.SeriesKey> = []
        let firsts = placed.filter { seen.insert(PostgresIndex.SeriesKey(imageSet: $0.imageSet, series: $0.instance.seriesInstanceUID)).inserted }
        let fa = firsts.map(\.instance.attributes)
        let firstSets = firsts.map(\.imageSet), firstUIDs = firsts.map(\.instance.seriesInstanceUID)
        let modalities = fa.map(\.modality), seriesNumbers = fa.map { number($0.seriesNumber) }
        let descriptions = fa.map(\.seriesDescription), bodyParts = fa.map(\.bodyPartExamined)
        let startDates = fa.map(\.performedProcedureStepStartDate), startTimes = fa.map(\.performedProcedureStepStartTime)
        // The versions.
        var ids: [String] = [], setVersions: [Int64] = [], reasons: [String] = [], deltas: [Int64] = [], adds: [Bool] = []
        for (setID, v) in versioned {
            var why = reason
            if let n = added[setID] { why += (why.isEmpty ? "" : ": ") + "\(n) instance(s) added" }
            if let n = replaced[setID] { why += ", \(n) replaced" }
            if let n = removed[setID] { why += (why.isEmpty ? "" : ": ") + "\(n) instance(s) removed" }
            ids.append(setID); setVersions.append(Int64(v)); reasons.append(why); adds.append(added[setID] != nil)
            deltas.append(Int64((added[setID] ?? 0) - (replaced[setID] ?? 0) - (removed[setID] ?? 0)))
        }
        let touched = touchedSeries.compactMap { key in newVersion[key.imageSet].map { (key, Int64($0)) } }
        let touchedSets = touched.map(\.0.imageSet), touchedUIDs = touched.map(\.0.series), touchedVersions = touched.map(\.1)
        let absent = PostgresIndex.absentNumber
        let summary = summaryBinds(ids: ids)
        let written = try await rows(prepared: WriteAndVersion.self, """
            WITH input AS (
                SELECT * FROM unnest(\(sets)::text[], \(studies)::text[], \(series)::text[], \(sops)::text[], \(classes)::text[],
                    \(syntaxes)::text[], \(instanceNumbers)::bigint[], \(rowCounts)::bigint[], \(columnCounts)::bigint[], \(bits)::bigint[],
                    \(frameCounts)::bigint[], \(blobs)::text[], \(blobSizes)::bigint[], \(inPlace)::boolean[], \(framesBlobs)::text[],
                    \(framesBlobSizes)::bigint[], \(framesSyntaxes)::text[], \(versions)::bigint[], \(metadata)::bytea[])
                    WITH ORDINALITY AS t(set_id, study, series, sop, sop_class, syntax, number, r, c, bits, frames, blob, blob_size,
                                         in_place, frames_blob, frames_blob_size, frames_syntax, version, json, ord)
            ), ins AS (
                INSERT INTO instance(image_set_id, study_instance_uid, series_instance_uid, sop_instance_uid, sop_class_uid,
                    transfer_syntax_uid, instance_number, rows, columns, bits_allocated, number_of_frames, blob_id, blob_size,
                    frames_in_place, frames_blob_id, frames_blob_size, frames_transfer_syntax_uid, added_version, stored_at)
                SELECT set_id, study, series, sop, sop_class, syntax, NULLIF(number, \(absent)), NULLIF(r, \(absent)),
                    NULLIF(c, \(absent)), NULLIF(bits, \(absent)), NULLIF(frames, \(absent)), blob, blob_size, in_place,
                    NULLIF(frames_blob, ''), NULLIF(frames_blob_size, \(absent)), NULLIF(frames_syntax, ''), version, \(now)
                FROM input ORDER BY ord
                RETURNING id, sop_instance_uid, image_set_id
            ), firsts AS (
                SELECT image_set_id, min(id) AS first FROM ins GROUP BY image_set_id
            ), metadata AS (
                INSERT INTO instance_metadata(instance_id, json) SELECT ins.id, input.json FROM ins JOIN input ON input.sop = ins.sop_instance_uid
            ), frames AS (
                INSERT INTO frame(instance_id, number, "offset", length, fragments)
                SELECT ins.id, f.n, f.o, f.l, CASE WHEN f.h THEN f.f END
                FROM unnest(\(frameOf)::bigint[], \(numbers)::bigint[], \(offsets)::bigint[], \(lengths)::bigint[], \(fragments)::text[],
                            \(hasFragments)::boolean[]) AS f(k, n, o, l, f, h)
                JOIN input ON input.ord = f.k JOIN ins ON ins.sop_instance_uid = input.sop
            ), new_series AS (
                INSERT INTO series(image_set_id, series_instance_uid, modality, series_number, series_description,
                    body_part_examined, performed_start_date, performed_start_time, current_instances)
                SELECT s, se, m, NULLIF(n, \(absent)), d, b, pd, pt,
                    (SELECT count(*) FROM input WHERE input.set_id = t.s AND input.series = t.se)
                FROM unnest(\(firstSets)::text[], \(firstUIDs)::text[], \(modalities)::text[], \(seriesNumbers)::bigint[],
                            \(descriptions)::text[], \(bodyParts)::text[], \(startDates)::text[], \(startTimes)::text[]) AS t(s, se, m, n, d, b, pd, pt)
                ON CONFLICT DO NOTHING
                RETURNING image_set_id, series_instance_uid, modality, current_instances
            ), t AS (
                SELECT * FROM unnest(\(ids)::text[], \(setVersions)::bigint[], \(reasons)::text[], \(deltas)::bigint[], \(adds)::boolean[],
                                     \(summary.firstAdded)::bigint[])
                    AS t(id, v, reason, delta, added, first_added)
            ), counted AS (
                UPDATE series x SET current_instances = x.current_instances + d.n
                FROM unnest(\(summary.sets)::text[], \(summary.series)::text[], \(summary.deltas)::bigint[]) AS d(s, se, n)
                WHERE x.image_set_id = d.s AND x.series_instance_uid = d.se
                RETURNING x.image_set_id, x.series_instance_uid, x.current_instances
            ), totals AS (
                \(unescaped: PostgresIndex.seriesTotals)
                FROM (SELECT x.image_set_id, x.modality, COALESCE(c.current_instances, x.current_instances) AS current_instances
                      FROM series x LEFT JOIN counted c ON c.image_set_id = x.image_set_id AND c.series_instance_uid = x.series_instance_uid
                      WHERE x.image_set_id = ANY(\(ids)::text[])
                      UNION ALL
                      SELECT n.image_set_id, n.modality, n.current_instances FROM new_series n) x
                GROUP BY x.image_set_id
            ), versions AS (
                INSERT INTO image_set_version(image_set_id, version, created_at, reason, instance_count)
                SELECT t.id, t.v, \(now), t.reason,
                    COALESCE((SELECT instance_count FROM image_set_version p WHERE p.image_set_id = t.id ORDER BY p.version DESC LIMIT 1), 0) + t.delta
                FROM t
                RETURNING image_set_id, instance_count
            ), sets AS (
                UPDATE image_set s SET latest_version = t.v, updated_at = \(now),
                    state = CASE WHEN versions.instance_count = 0 THEN 'DELETED' WHEN t.added THEN 'ACTIVE' ELSE s.state END,
                    current_series = COALESCE(a.n_series, 0), current_instances = COALESCE(a.n_instances, 0),
                    current_modalities = COALESCE(a.modalities, '{}'),
                    representative_instance_id = CASE
                        WHEN EXISTS (SELECT 1 FROM instance i WHERE i.id = s.representative_instance_id AND i.removed_version IS NULL)
                        THEN LEAST(s.representative_instance_id, NULLIF(t.first_added, \(absent)), f.first)
                        ELSE LEAST((SELECT min(i.id) FROM instance i WHERE i.image_set_id = t.id AND i.removed_version IS NULL),
                                   NULLIF(t.first_added, \(absent)), f.first) END
                FROM t JOIN versions ON versions.image_set_id = t.id LEFT JOIN totals a ON a.image_set_id = t.id
                    LEFT JOIN firsts f ON f.image_set_id = t.id
                WHERE s.id = t.id
            ), touched AS (
                SELECT u.s, u.se, u.v,
                    EXISTS (SELECT 1 FROM input WHERE input.set_id = u.s AND input.series = u.se)
                    OR EXISTS (SELECT 1 FROM instance i WHERE i.image_set_id = u.s AND i.series_instance_uid = u.se AND i.removed_version IS NULL) AS live
                FROM unnest(\(touchedSets)::text[], \(touchedUIDs)::text[], \(touchedVersions)::bigint[]) AS u(s, se, v)
            ), cleared AS (
                DELETE FROM series_metadata m USING touched WHERE NOT touched.live AND m.image_set_id = touched.s AND m.series_instance_uid = touched.se
            ), pending AS (
                INSERT INTO series_metadata(image_set_id, series_instance_uid, version, gzip) SELECT s, se, v, '\\x' FROM touched WHERE live
                ON CONFLICT(image_set_id, series_instance_uid) DO UPDATE SET version = excluded.version, gzip = '\\x'
            ), locked_head AS (
                SELECT h.sequence, h.hash
                FROM (SELECT pg_advisory_xact_lock(\(PostgresIndex.auditLockKey)) WHERE \(auditHead) AND (SELECT count(*) FROM ins) >= 0) AS l,
                    audit_head h
                WHERE h.id = 1 FOR UPDATE OF h
            )
            SELECT versions.image_set_id, versions.instance_count, (SELECT count(*) FROM ins) AS inserted,
                (SELECT sequence FROM locked_head) AS audit_sequence, (SELECT hash FROM locked_head) AS audit_hash
            FROM versions
            """)
        var counts: [String: Int] = [:]
        var head: (Int64, String)?
        for row in written {
            counts[try row.get("image_set_id")] = try row.get("instance_count")
            guard try row.get("inserted", as: Int.self) == placed.count else { throw PostgresIndexError("INSERT returned fewer ids") }
            if let sequence = try row.get("audit_sequence", as: Int64?.self), let hash = try row.get("audit_hash", as: String?.self) {
                head = (sequence, hash)
            }
        }
        for (k, (setID, v)) in versioned.enumerated() {
            guard let count = counts[setID] else { throw PostgresIndexError("no version was written for image set \(setID)") }
            changes.versioned(setID, version: v, reason: reasons[k], count: count, added: adds[k], before: self.sets[setID])
        }
        return auditHead ? head : nil
    }
}
