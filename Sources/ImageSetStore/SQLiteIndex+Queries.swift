import DICOMCore
import Foundation
import GRDB
import NIOCore
import CompressNIO

extension SQLiteIndex {
    public func imageSets(_ filter: ImageSetFilter) throws -> [ImageSetSummary] {
        try pool.read { db in
            var clauses: [String] = []
            var args: [any DatabaseValueConvertible] = []
            if let v = filter.patientID { clauses.append("s.patient_id = ?"); args.append(v) }
            if let v = filter.studyInstanceUID { clauses.append("s.study_instance_uid = ?"); args.append(v) }
            if let v = filter.accessionNumber { clauses.append("s.accession_number = ?"); args.append(v) }
            if let v = filter.isPrimary { clauses.append("s.is_primary = ?"); args.append(v) }
            if let v = filter.seriesInstanceUID {
                clauses.append("EXISTS (SELECT 1 FROM instance i WHERE i.image_set_id = s.id AND i.series_instance_uid = ? AND i.removed_version IS NULL)")
                args.append(v)
            }
            // An absent Study Date is stored as '' and matches no range.
            if let v = filter.studyDateFrom { clauses.append("s.study_date <> '' AND s.study_date >= ?"); args.append(v) }
            if let v = filter.studyDateTo { clauses.append("s.study_date <> '' AND s.study_date <= ?"); args.append(v) }
            if let v = filter.updatedFrom { clauses.append("s.updated_at >= ?"); args.append(v.timeIntervalSince1970) }
            if let v = filter.updatedTo { clauses.append("s.updated_at <= ?"); args.append(v.timeIntervalSince1970) }
            let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            args.append(filter.limit)
            args.append(filter.offset)
            let rows = try Row.fetchAll(db, sql: "SELECT s.* FROM image_set s \(whereSQL) ORDER BY \(filter.sort.sql) LIMIT ? OFFSET ?",
                                        arguments: StatementArguments(args))
            return try rows.map { try summary($0, db: db) }
        }
    }

    public func imageSet(_ id: String) throws -> ImageSetSummary? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM image_set WHERE id = ?", arguments: [id]).map { try summary($0, db: db) }
        }
    }

    func summary(_ row: Row, db: Database) throws -> ImageSetSummary {
        let id: String = row["id"]
        let counts = try Row.fetchOne(db, sql: """
            SELECT COUNT(DISTINCT series_instance_uid) AS series, COUNT(*) AS instances,
                   COALESCE(SUM(COALESCE(number_of_frames, CASE WHEN rows IS NULL THEN 0 ELSE 1 END)), 0) AS frames
            FROM instance WHERE image_set_id = ? AND removed_version IS NULL
            """, arguments: [id])
        let conflicts = (try? JSONDecoder().decode([AttributeConflict].self, from: Data((row["conflicts"] as String).utf8))) ?? []
        return ImageSetSummary(
            id: id, studyInstanceUID: row["study_instance_uid"], isPrimary: row["is_primary"], state: row["state"],
            version: row["latest_version"], createdAt: Date(timeIntervalSince1970: row["created_at"]),
            updatedAt: Date(timeIntervalSince1970: row["updated_at"]), attributes: Self.attributes(row),
            seriesCount: counts?["series"] ?? 0, instanceCount: counts?["instances"] ?? 0, frameCount: counts?["frames"] ?? 0,
            conflicts: conflicts)
    }

    public func versions(of imageSetID: String) throws -> [VersionRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM image_set_version WHERE image_set_id = ? ORDER BY version", arguments: [imageSetID]).map {
                VersionRecord(version: $0["version"], createdAt: Date(timeIntervalSince1970: $0["created_at"]),
                              reason: $0["reason"], instanceCount: $0["instance_count"])
            }
        }
    }

    public func instances(of imageSetID: String, version: Int?) throws -> [InstanceRecord] {
        try pool.read { db in
            let rows: [Row]
            if let v = version {
                rows = try Row.fetchAll(db, sql: """
                    SELECT * FROM instance WHERE image_set_id = ? AND added_version <= ? AND (removed_version IS NULL OR removed_version > ?)
                    ORDER BY series_instance_uid, instance_number, sop_instance_uid
                    """, arguments: [imageSetID, v, v])
            } else {
                rows = try Row.fetchAll(db, sql: """
                    SELECT * FROM instance WHERE image_set_id = ? AND removed_version IS NULL
                    ORDER BY series_instance_uid, instance_number, sop_instance_uid
                    """, arguments: [imageSetID])
            }
            return rows.compactMap(Self.instance)
        }
    }

    static func instance(_ row: Row) -> InstanceRecord? {
        guard let blob = BlobID(hex: row["blob_id"]) else { return nil }
        let framesBlob = (row["frames_blob_id"] as String?).flatMap(BlobID.init(hex:)) ?? blob
        var a = InstanceAttributes()
        a.instanceNumber = row["instance_number"]; a.rows = row["rows"]; a.columns = row["columns"]
        a.bitsAllocated = row["bits_allocated"]; a.numberOfFrames = row["number_of_frames"]
        if row.hasColumn("patient_id") { a.patientID = row["patient_id"] }
        return InstanceRecord(id: row["id"], imageSetID: row["image_set_id"], studyInstanceUID: row["study_instance_uid"],
                              seriesInstanceUID: row["series_instance_uid"], sopInstanceUID: row["sop_instance_uid"],
                              sopClassUID: row["sop_class_uid"], transferSyntaxUID: row["transfer_syntax_uid"], blob: blob,
                              blobSize: row["blob_size"], attributes: a, framesInPlace: row["frames_in_place"],
                              addedInVersion: row["added_version"], framesBlob: framesBlob,
                              framesTransferSyntaxUID: row["frames_transfer_syntax_uid"] ?? row["transfer_syntax_uid"])
    }

    public func currentInstances(study: String, series: String?, sop: String?, scope: ImageSetScope) throws -> [InstanceRecord] {
        try pool.read { db in
            // The set's Patient ID comes along for the request's audit record.
            var sql = "SELECT i.*, s.patient_id FROM instance i JOIN image_set s ON s.id = i.image_set_id WHERE i.study_instance_uid = ? AND i.removed_version IS NULL AND s.state = 'ACTIVE'"
            var args: [any DatabaseValueConvertible] = [study]
            let (scopeSQL, scopeArgs) = Self.scopeClause(scope, imageSet: "s")
            sql += " AND " + scopeSQL
            args += scopeArgs
            if let series { sql += " AND i.series_instance_uid = ?"; args.append(series) }
            if let sop { sql += " AND i.sop_instance_uid = ?"; args.append(sop) }
            sql += " ORDER BY i.series_instance_uid, i.instance_number, i.sop_instance_uid"
            // Cached statements on the request paths: preparing (and GRDB's authorizer) cost more than the query.
            return try Row.fetchAll(db.cachedStatement(sql: sql), arguments: StatementArguments(args)).compactMap(Self.instance)
        }
    }

    /// The SQL condition (and its arguments) selecting the image sets `scope` sees, on the image_set
    /// table aliased `imageSet`.
    static func scopeClause(_ scope: ImageSetScope, imageSet: String) -> (String, [any DatabaseValueConvertible]) {
        switch scope {
        case .primary: ("\(imageSet).is_primary = 1", [])
        case .imageSet(let id): ("\(imageSet).id = ?", [id])
        }
    }

    public func instance(sopInstanceUID: String) throws -> InstanceRecord? {
        try pool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM instance WHERE sop_instance_uid = ? AND removed_version IS NULL"),
                             arguments: [sopInstanceUID]).flatMap(Self.instance)
        }
    }

    public func currentInstance(rowID: Int64) throws -> InstanceRecord? {
        try pool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM instance WHERE id = ? AND removed_version IS NULL"),
                             arguments: [rowID]).flatMap(Self.instance)
        }
    }

    public func frames(of instanceID: Int64) throws -> [FrameRecord] {
        try pool.read { db in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM frame WHERE instance_id = ? ORDER BY number"), arguments: [instanceID]).map { row in
                let fragments = (row["fragments"] as String?).map { text in
                    text.split(separator: ",").compactMap { part -> Range<Int>? in
                        let p = part.split(separator: "+")
                        guard p.count == 2, let o = Int(p[0]), let n = Int(p[1]) else { return nil }
                        return o..<(o + n)
                    }
                }
                return FrameRecord(number: row["number"], offset: row["offset"], length: row["length"], fragments: fragments)
            }
        }
    }

    public func metadata(of instanceID: Int64) throws -> [UInt8]? {
        try pool.read { db in
            (try Data.fetchOne(db.cachedStatement(sql: "SELECT json FROM instance_metadata WHERE instance_id = ?"), arguments: [instanceID])).map { [UInt8]($0) }
        }
    }

    /// The stored series document, when it is not pending (an empty `gzip` marks a pending one).
    static let storedSeriesGzipSQL = "SELECT gzip FROM series_metadata WHERE image_set_id = ? AND series_instance_uid = ? AND length(gzip) > 0"

    public func seriesMetadataGzip(imageSetID: String, seriesInstanceUID: String) throws -> [UInt8]? {
        try pool.read { db in
            (try Data.fetchOne(db.cachedStatement(sql: Self.storedSeriesGzipSQL), arguments: [imageSetID, seriesInstanceUID])).map { [UInt8]($0) }
        }
    }

    public func seriesMetadata(imageSetID: String, seriesInstanceUID: String) throws -> ByteBuffer {
        // One read transaction: the stored document and the rows it would be built from agree.
        let (gz, built) = try pool.read { db -> (Data?, ByteBuffer?) in
            if let gz = try Data.fetchOne(db.cachedStatement(sql: Self.storedSeriesGzipSQL), arguments: [imageSetID, seriesInstanceUID]) {
                return (gz, nil)
            }
            return (nil, try SeriesMetadata.build(db, imageSetID: imageSetID, seriesInstanceUID: seriesInstanceUID))
        }
        if let built { return built }
        var compressed = ByteBuffer(bytes: gz ?? Data())
        return try compressed.decompress(with: .gzip)
    }

    public func refreshPendingSeriesMetadata() throws -> Int { try SeriesMetadata.refreshPending(pool) }

    public func referencedBlobs() throws -> [BlobID: Int] {
        try pool.read { db in
            var out: [BlobID: Int] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT blob_id AS id, MAX(blob_size) AS size FROM instance GROUP BY blob_id
                UNION ALL
                SELECT frames_blob_id AS id, MAX(frames_blob_size) AS size FROM instance WHERE frames_blob_id IS NOT NULL GROUP BY frames_blob_id
                """) {
                if let id = BlobID(hex: row["id"]) { out[id] = row["size"] }
            }
            return out
        }
    }

    public func isReferenced(_ blob: BlobID) throws -> Bool {
        try pool.read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM instance WHERE blob_id = ?1 OR frames_blob_id = ?1)", arguments: [blob.hex]) ?? false }
    }

    /// One process writes an embedded index (the folder lock): its in-process bookkeeping
    /// (`PendingBlobs`) is all the ordering a removal needs.
    public func reserveBlobs(_ ids: [BlobID]) {}

    public func removeOrphanBlob(_ id: BlobID, grace: TimeInterval, remove: @Sendable () async throws -> Void) async throws -> Bool {
        guard try !isReferenced(id) else { return false }
        try await remove()
        return true
    }

    public func setting(_ key: String) throws -> String? {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM setting WHERE key = ?", arguments: [key]) }
    }

    public func setSetting(_ key: String, _ value: String) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO setting(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                           arguments: [key, value])
        }
    }
}
