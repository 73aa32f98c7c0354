import CompressNIO
import Foundation
import GRDB
import NIOCore

/// Series-level WADO-RS metadata: a JSON array of the instances' stored DICOM JSON, kept gzipped
/// per series for its latest version.
///
/// A commit only marks the touched series pending (an empty `gzip` with the new version): rebuilding
/// and compressing a whole series inside every commit made ingest quadratic in the series size.
/// `Datastore` refreshes pending series off the ingest path, coalescing bursts (at most a few times
/// a second), and readers of a pending series build the array from the instance rows, so a reader
/// never sees an older version.
enum SeriesMetadata {
    /// Called in the commit's transaction for each series it touched.
    static func markPending(_ db: Database, imageSetID: String, seriesInstanceUID: String, version: Int) throws {
        let any = try Bool.fetchOne(db.cachedStatement(sql: """
            SELECT EXISTS (SELECT 1 FROM instance WHERE image_set_id = ? AND series_instance_uid = ? AND removed_version IS NULL)
            """), arguments: [imageSetID, seriesInstanceUID]) ?? false
        guard any else {
            try db.cachedStatement(sql: "DELETE FROM series_metadata WHERE image_set_id = ? AND series_instance_uid = ?").execute(
                           arguments: [imageSetID, seriesInstanceUID])
            return
        }
        try db.cachedStatement(sql: """
            INSERT INTO series_metadata(image_set_id, series_instance_uid, version, gzip) VALUES (?, ?, ?, X'')
            ON CONFLICT(image_set_id, series_instance_uid) DO UPDATE SET version = excluded.version, gzip = X''
            """).execute(arguments: [imageSetID, seriesInstanceUID, version])
    }

    /// The current instances' JSON as one array, built from their rows.
    static func build(_ db: Database, imageSetID: String, seriesInstanceUID: String) throws -> ByteBuffer {
        let rows = try Data.fetchAll(db, sql: """
            SELECT m.json FROM instance i JOIN instance_metadata m ON m.instance_id = i.id
            WHERE i.image_set_id = ? AND i.series_instance_uid = ? AND i.removed_version IS NULL
            ORDER BY i.instance_number, i.sop_instance_uid
            """, arguments: [imageSetID, seriesInstanceUID])
        var json = ByteBuffer()
        json.reserveCapacity(rows.reduce(2) { $0 + $1.count + 1 })
        json.writeInteger(UInt8(ascii: "["))
        for (i, r) in rows.enumerated() {
            if i > 0 { json.writeInteger(UInt8(ascii: ",")) }
            json.writeBytes(r)
        }
        json.writeInteger(UInt8(ascii: "]"))
        return json
    }

    /// Compresses every pending series; a series changed again meanwhile stays pending for the next pass.
    static func refreshPending(_ pool: DatabasePool) throws -> Int {
        let pending = try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT image_set_id, series_instance_uid, version FROM series_metadata WHERE length(gzip) = 0")
        }
        var refreshed = 0
        for row in pending {
            let set: String = row["image_set_id"], series: String = row["series_instance_uid"], version: Int = row["version"]
            let json = try pool.read { db in try build(db, imageSetID: set, seriesInstanceUID: series) }
            let gz = try gzip(json)
            try pool.write { db in
                try db.execute(sql: """
                    UPDATE series_metadata SET gzip = ? WHERE image_set_id = ? AND series_instance_uid = ? AND version = ? AND length(gzip) = 0
                    """, arguments: [Data(gz), set, series, version])
                refreshed += db.changesCount
            }
        }
        return refreshed
    }

    static func gzip(_ buffer: ByteBuffer) throws -> [UInt8] {
        var input = buffer
        var out = try input.compress(with: .gzip)
        return out.readBytes(length: out.readableBytes) ?? []
    }

    static func gunzip(_ bytes: [UInt8]) throws -> [UInt8] {
        var input = ByteBuffer(bytes: bytes)
        var out = try input.decompress(with: .gzip)
        return out.readBytes(length: out.readableBytes) ?? []
    }
}
