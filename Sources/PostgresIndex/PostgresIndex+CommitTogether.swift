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

        init(_ row: PostgresRandomAccessRow) throws {
            self.init(id: try row.get("id"), study: try row.get("study_instance_uid"), isPrimary: try row.get("is_primary"),
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
    enum CurrentCopies: PreparedTag { static let name = "current_copies" }
    enum StudySets: PreparedTag { static let name = "study_sets" }
    enum InsertInstances: PreparedTag { static let name = "insert_instances" }
    enum NewVersions: PreparedTag { static let name = "new_versions" }

    func rows<Tag: PreparedTag>(prepared tag: Tag.Type, _ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        try await PostgresIndex.rows(query, prepared: tag, on: conn, logger: logger)
    }

    /// The two reads of a batch committed together: the current copies of all its SOP Instance
    /// UIDs, then the image sets placing may version, both locked as the per-instance path locks them.
    mutating func readTogether(_ instances: [PreparedInstance], policy: DuplicatePolicy) async throws {
        let sops = instances.map(\.sopInstanceUID)
        var copies: [String: PostgresIndex.StoredCopy] = [:]
        for row in try await rows(prepared: CurrentCopies.self, """
            SELECT \(unescaped: PostgresIndex.StoredCopy.columns)
            FROM instance i JOIN image_set s ON s.id = i.image_set_id
            WHERE i.sop_instance_uid = ANY(\(sops)::text[]) AND i.removed_version IS NULL
            FOR UPDATE OF i
            """) {
            let copy = try PostgresIndex.StoredCopy(row)
            copies[copy.sop] = copy
        }
        // A replaced copy may sit in a study this transaction holds no lock of: its set is locked by row.
        let replacing = Array(Set(instances.compactMap { p in
            copies[p.sopInstanceUID].flatMap { policy == .replace && $0.blob != p.blob.hex ? $0.imageSet : nil }
        }))
        let studies = Array(Set(instances.map(\.studyInstanceUID)))
        var sets: [String: PostgresIndex.SetRow] = [:]
        for row in try await rows(prepared: StudySets.self, """
            SELECT \(unescaped: PostgresIndex.SetRow.columns) FROM image_set WHERE study_instance_uid = ANY(\(studies)::text[]) OR id = ANY(\(replacing)::text[])
            ORDER BY id FOR UPDATE
            """) {
            let set = try PostgresIndex.SetRow(row)
            sets[set.id] = set
        }
        deferred = PostgresIndex.Deferred(copies: copies, sets: sets)
    }

    /// The held-back writes: new image sets, replaced rows, then every instance with its metadata,
    /// frames and series in one statement.
    mutating func writeTogether() async throws {
        guard let d = deferred else { return }
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
        if !d.inserts.isEmpty {
            for (set, id) in try await insertAll(d.inserts) { noteAdded(imageSet: set, id: id) }
        }
    }

    /// Returns the lowest new row id of each image set written to.
    func insertAll(_ placed: [PostgresIndex.Placed]) async throws -> [String: Int64] {
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
        let seriesSets = firsts.map(\.imageSet), seriesUIDs = firsts.map(\.instance.seriesInstanceUID)
        let modalities = fa.map(\.modality), seriesNumbers = fa.map { number($0.seriesNumber) }
        let descriptions = fa.map(\.seriesDescription), bodyParts = fa.map(\.bodyPartExamined)
        let startDates = fa.map(\.performedProcedureStepStartDate), startTimes = fa.map(\.performedProcedureStepStartTime)
        let absent = PostgresIndex.absentNumber
        let inserted = try await rows(prepared: InsertInstances.self, """
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
            ), metadata AS (
                INSERT INTO instance_metadata(instance_id, json) SELECT ins.id, input.json FROM ins JOIN input ON input.sop = ins.sop_instance_uid
            ), frames AS (
                INSERT INTO frame(instance_id, number, "offset", length, fragments)
                SELECT ins.id, f.n, f.o, f.l, CASE WHEN f.h THEN f.f END
                FROM unnest(\(frameOf)::bigint[], \(numbers)::bigint[], \(offsets)::bigint[], \(lengths)::bigint[], \(fragments)::text[],
                            \(hasFragments)::boolean[]) AS f(k, n, o, l, f, h)
                JOIN input ON input.ord = f.k JOIN ins ON ins.sop_instance_uid = input.sop
            ), series AS (
                INSERT INTO series(image_set_id, series_instance_uid, modality, series_number, series_description,
                    body_part_examined, performed_start_date, performed_start_time)
                SELECT s, se, m, NULLIF(n, \(absent)), d, b, pd, pt
                FROM unnest(\(seriesSets)::text[], \(seriesUIDs)::text[], \(modalities)::text[], \(seriesNumbers)::bigint[],
                            \(descriptions)::text[], \(bodyParts)::text[], \(startDates)::text[], \(startTimes)::text[]) AS t(s, se, m, n, d, b, pd, pt)
                ON CONFLICT DO NOTHING
            )
            SELECT image_set_id, min(id) AS first, count(*) AS inserted FROM ins GROUP BY image_set_id
            """)
        var first: [String: Int64] = [:], count = 0
        for row in inserted {
            first[try row.get("image_set_id")] = try row.get("first")
            count += try row.get("inserted", as: Int.self)
        }
        guard count == placed.count else { throw PostgresIndexError("INSERT returned fewer ids") }
        return first
    }

    /// One new version of each image set touched, with its count, state and summary, and the touched
    /// series counted and marked pending (SeriesMetadata), in one statement. The count is the previous
    /// version's plus this batch's changes: no scan of the set's rows. The summary comes from the set's
    /// series rows with this batch's changes (`counted`: the statement's reads of `series` see the rows as
    /// they were before it); its representative instance is looked up only when it left the current ones.
    mutating func finish(reason: String) async throws {
        let versioned = newVersion.sorted { $0.key < $1.key }
        guard !versioned.isEmpty else { return }
        var ids: [String] = [], versions: [Int64] = [], reasons: [String] = [], deltas: [Int64] = [], adds: [Bool] = []
        for (setID, v) in versioned {
            var why = reason
            if let n = added[setID] { why += (why.isEmpty ? "" : ": ") + "\(n) instance(s) added" }
            if let n = replaced[setID] { why += ", \(n) replaced" }
            if let n = removed[setID] { why += (why.isEmpty ? "" : ": ") + "\(n) instance(s) removed" }
            ids.append(setID); versions.append(Int64(v)); reasons.append(why); adds.append(added[setID] != nil)
            deltas.append(Int64((added[setID] ?? 0) - (replaced[setID] ?? 0) - (removed[setID] ?? 0)))
        }
        let series = touchedSeries.compactMap { key in newVersion[key.imageSet].map { (key, Int64($0)) } }
        let seriesSets = series.map(\.0.imageSet), seriesUIDs = series.map(\.0.series), seriesVersions = series.map(\.1)
        let summary = summaryBinds(ids: ids)
        let absent = PostgresIndex.absentNumber
        // A series left with no current instance loses its document; the others are pending at the new version.
        let written = try await rows(prepared: NewVersions.self, """
            WITH t AS (
                SELECT * FROM unnest(\(ids)::text[], \(versions)::bigint[], \(reasons)::text[], \(deltas)::bigint[], \(adds)::boolean[],
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
                      WHERE x.image_set_id = ANY(\(ids)::text[])) x
                GROUP BY x.image_set_id
            ), ins AS (
                INSERT INTO image_set_version(image_set_id, version, created_at, reason, instance_count)
                SELECT t.id, t.v, \(now), t.reason,
                    COALESCE((SELECT instance_count FROM image_set_version p WHERE p.image_set_id = t.id ORDER BY p.version DESC LIMIT 1), 0) + t.delta
                FROM t
                RETURNING image_set_id, instance_count
            ), sets AS (
                UPDATE image_set s SET latest_version = t.v, updated_at = \(now),
                    state = CASE WHEN ins.instance_count = 0 THEN 'DELETED' WHEN t.added THEN 'ACTIVE' ELSE s.state END,
                    current_series = COALESCE(a.n_series, 0), current_instances = COALESCE(a.n_instances, 0),
                    current_modalities = COALESCE(a.modalities, '{}'),
                    representative_instance_id = CASE
                        WHEN EXISTS (SELECT 1 FROM instance i WHERE i.id = s.representative_instance_id AND i.removed_version IS NULL)
                        THEN LEAST(s.representative_instance_id, NULLIF(t.first_added, \(absent)))
                        ELSE (SELECT min(i.id) FROM instance i WHERE i.image_set_id = t.id AND i.removed_version IS NULL) END
                FROM t JOIN ins ON ins.image_set_id = t.id LEFT JOIN totals a ON a.image_set_id = t.id WHERE s.id = t.id
            ), touched AS (
                SELECT u.s, u.se, u.v, EXISTS (SELECT 1 FROM instance i WHERE i.image_set_id = u.s AND i.series_instance_uid = u.se
                                                                   AND i.removed_version IS NULL) AS live
                FROM unnest(\(seriesSets)::text[], \(seriesUIDs)::text[], \(seriesVersions)::bigint[]) AS u(s, se, v)
            ), cleared AS (
                DELETE FROM series_metadata m USING touched WHERE NOT touched.live AND m.image_set_id = touched.s AND m.series_instance_uid = touched.se
            ), pending AS (
                INSERT INTO series_metadata(image_set_id, series_instance_uid, version, gzip) SELECT s, se, v, '\\x' FROM touched WHERE live
                ON CONFLICT(image_set_id, series_instance_uid) DO UPDATE SET version = excluded.version, gzip = '\\x'
            )
            SELECT image_set_id, instance_count FROM ins
            """)
        var counts: [String: Int] = [:]
        for row in written { counts[try row.get("image_set_id")] = try row.get("instance_count") }
        for (k, (setID, v)) in versioned.enumerated() {
            guard let count = counts[setID] else { throw PostgresIndexError("no version was written for image set \(setID)") }
            changes.versioned(setID, version: v, reason: reasons[k], count: count, added: adds[k], before: sets[setID])
        }
    }
}
