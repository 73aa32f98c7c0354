import CompressNIO
import Foundation
import GRDB
import NIOCore

/// Series-level WADO-RS metadata, built from the instances' stored DICOM JSON and kept gzipped
/// for the latest version, so a viewer's metadata request reads one row and decompresses nothing.
enum SeriesMetadata {
    static func refresh(_ db: Database, imageSetID: String, seriesInstanceUID: String, version: Int) throws {
        let rows = try Data.fetchAll(db, sql: """
            SELECT metadata FROM instance WHERE image_set_id = ? AND series_instance_uid = ? AND removed_version IS NULL
            ORDER BY instance_number, sop_instance_uid
            """, arguments: [imageSetID, seriesInstanceUID])
        guard !rows.isEmpty else {
            try db.execute(sql: "DELETE FROM series_metadata WHERE image_set_id = ? AND series_instance_uid = ?",
                           arguments: [imageSetID, seriesInstanceUID])
            return
        }
        var json = ByteBuffer()
        json.writeInteger(UInt8(ascii: "["))
        for (i, r) in rows.enumerated() {
            if i > 0 { json.writeInteger(UInt8(ascii: ",")) }
            json.writeBytes(r)
        }
        json.writeInteger(UInt8(ascii: "]"))
        let gz = try gzip(json)
        try db.execute(sql: """
            INSERT INTO series_metadata(image_set_id, series_instance_uid, version, gzip) VALUES (?, ?, ?, ?)
            ON CONFLICT(image_set_id, series_instance_uid) DO UPDATE SET version = excluded.version, gzip = excluded.gzip
            """, arguments: [imageSetID, seriesInstanceUID, version, Data(gz)])
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
