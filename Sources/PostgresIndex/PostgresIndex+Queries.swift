import Foundation
import ImageSetStore
import NIOCore
import PostgresNIO

extension PostgresIndex {
    public func imageSet(_ id: String) async throws -> ImageSetSummary? {
        try await read { conn in
            guard let row = try await Self.rows("SELECT * FROM image_set WHERE id = \(id)", on: conn, logger: logger).first else { return nil }
            return try await summary(row, on: conn)
        }
    }

    /// An image set row with its current counts (SQLiteIndex.summary).
    func summary(_ row: PostgresRandomAccessRow, on conn: PostgresConnection) async throws -> ImageSetSummary {
        let id: String = try row.get("id")
        let counts = try await Self.rows("""
            SELECT COUNT(DISTINCT series_instance_uid) AS series, COUNT(*) AS instances,
                   COALESCE(SUM(COALESCE(number_of_frames, CASE WHEN rows IS NULL THEN 0 ELSE 1 END)), 0)::bigint AS frames
            FROM instance WHERE image_set_id = \(id) AND removed_version IS NULL
            """, on: conn, logger: logger).first
        let conflicts = (try? JSONDecoder().decode([AttributeConflict].self, from: Data((try row.get("conflicts", as: String.self)).utf8))) ?? []
        return ImageSetSummary(
            id: id, studyInstanceUID: try row.get("study_instance_uid"), isPrimary: try row.get("is_primary"), state: try row.get("state"),
            version: try row.get("latest_version"), createdAt: Date(timeIntervalSince1970: try row.get("created_at")),
            updatedAt: Date(timeIntervalSince1970: try row.get("updated_at")), attributes: try Self.attributes(row),
            seriesCount: try counts?.get("series") ?? 0, instanceCount: try counts?.get("instances") ?? 0,
            frameCount: try counts?.get("frames") ?? 0, conflicts: conflicts)
    }

    public func versions(of imageSetID: String) async throws -> [VersionRecord] {
        try await rows("SELECT * FROM image_set_version WHERE image_set_id = \(imageSetID) ORDER BY version").map {
            VersionRecord(version: try $0.get("version"), createdAt: Date(timeIntervalSince1970: try $0.get("created_at")),
                          reason: try $0.get("reason"), instanceCount: try $0.get("instance_count"))
        }
    }

    /// SQLite sorts NULL first; PostgreSQL, last unless told.
    static let instanceOrder = "series_instance_uid, instance_number NULLS FIRST, sop_instance_uid"

    public func instances(of imageSetID: String, version: Int?) async throws -> [InstanceRecord] {
        let rows: [PostgresRandomAccessRow]
        if let v = version {
            rows = try await self.rows("""
                SELECT * FROM instance WHERE image_set_id = \(imageSetID) AND added_version <= \(v) AND (removed_version IS NULL OR removed_version > \(v))
                ORDER BY \(unescaped: Self.instanceOrder)
                """)
        } else {
            rows = try await self.rows("""
                SELECT * FROM instance WHERE image_set_id = \(imageSetID) AND removed_version IS NULL ORDER BY \(unescaped: Self.instanceOrder)
                """)
        }
        return try rows.compactMap(Self.instance)
    }

    static func instance(_ row: PostgresRandomAccessRow) throws -> InstanceRecord? {
        guard let blob = BlobID(hex: try row.get("blob_id")) else { return nil }
        let framesBlob = (try row.get("frames_blob_id", as: String?.self)).flatMap(BlobID.init(hex:)) ?? blob
        var a = InstanceAttributes()
        a.instanceNumber = try row.get("instance_number"); a.rows = try row.get("rows"); a.columns = try row.get("columns")
        a.bitsAllocated = try row.get("bits_allocated"); a.numberOfFrames = try row.get("number_of_frames")
        if row.contains("patient_id") { a.patientID = try row.get("patient_id") }
        let syntax: String = try row.get("transfer_syntax_uid")
        return InstanceRecord(id: try row.get("id"), imageSetID: try row.get("image_set_id"), studyInstanceUID: try row.get("study_instance_uid"),
                              seriesInstanceUID: try row.get("series_instance_uid"), sopInstanceUID: try row.get("sop_instance_uid"),
                              sopClassUID: try row.get("sop_class_uid"), transferSyntaxUID: syntax, blob: blob,
                              blobSize: try row.get("blob_size"), attributes: a, framesInPlace: try row.get("frames_in_place"),
                              addedInVersion: try row.get("added_version"), framesBlob: framesBlob,
                              framesTransferSyntaxUID: try row.get("frames_transfer_syntax_uid", as: String?.self) ?? syntax)
    }

    public func currentInstances(study: String, series: String?, sop: String?, scope: ImageSetScope) async throws -> [InstanceRecord] {
        var binds = PostgresBindings()
        binds.append(study)
        // The set's Patient ID comes along for the request's audit record.
        var sql = """
            SELECT i.*, s.patient_id FROM instance i JOIN image_set s ON s.id = i.image_set_id
            WHERE i.study_instance_uid = $1 AND i.removed_version IS NULL AND s.state = 'ACTIVE'
            """
        sql += " AND " + Self.scopeClause(scope, imageSet: "s", binds: &binds)
        if let series { binds.append(series); sql += " AND i.series_instance_uid = $\(binds.count)" }
        if let sop { binds.append(sop); sql += " AND i.sop_instance_uid = $\(binds.count)" }
        sql += " ORDER BY i.series_instance_uid, i.instance_number NULLS FIRST, i.sop_instance_uid"
        return try await rows(PostgresQuery(unsafeSQL: sql, binds: binds)).compactMap(Self.instance)
    }

    public func instance(sopInstanceUID: String) async throws -> InstanceRecord? {
        try await rows("SELECT * FROM instance WHERE sop_instance_uid = \(sopInstanceUID) AND removed_version IS NULL").first.flatMap(Self.instance)
    }

    public func currentInstance(rowID: Int64) async throws -> InstanceRecord? {
        try await rows("SELECT * FROM instance WHERE id = \(rowID) AND removed_version IS NULL").first.flatMap(Self.instance)
    }

    public func frames(of instanceID: Int64) async throws -> [FrameRecord] {
        try await rows(#"SELECT number, "offset", length, fragments FROM frame WHERE instance_id = \#(instanceID) ORDER BY number"#).map { row in
            let fragments = (try row.get("fragments", as: String?.self)).map { text in
                text.split(separator: ",").compactMap { part -> Range<Int>? in
                    let p = part.split(separator: "+")
                    guard p.count == 2, let o = Int(p[0]), let n = Int(p[1]) else { return nil }
                    return o..<(o + n)
                }
            }
            return FrameRecord(number: try row.get("number"), offset: try row.get("offset"), length: try row.get("length"), fragments: fragments)
        }
    }

    public func metadata(of instanceID: Int64) async throws -> [UInt8]? {
        try await rows("SELECT json FROM instance_metadata WHERE instance_id = \(instanceID)").first.map {
            var b = try $0.get("json", as: ByteBuffer.self)
            return b.readBytes(length: b.readableBytes) ?? []
        }
    }

    public func referencedBlobs() async throws -> [BlobID: Int] {
        var out: [BlobID: Int] = [:]
        for row in try await rows("""
            SELECT blob_id AS id, MAX(blob_size) AS size FROM instance GROUP BY blob_id
            UNION ALL
            SELECT frames_blob_id AS id, MAX(frames_blob_size) AS size FROM instance WHERE frames_blob_id IS NOT NULL GROUP BY frames_blob_id
            """) {
            if let id = BlobID(hex: try row.get("id")) { out[id] = try row.get("size", as: Int?.self) }
        }
        return out
    }

    public func isReferenced(_ blob: BlobID) async throws -> Bool {
        try await rows("SELECT EXISTS (SELECT 1 FROM instance WHERE blob_id = \(blob.hex) OR frames_blob_id = \(blob.hex)) AS found")
            .first?.get("found") ?? false
    }

    public func setting(_ key: String) async throws -> String? {
        try await rows("SELECT value FROM setting WHERE key = \(key)").first?.get("value")
    }
}
