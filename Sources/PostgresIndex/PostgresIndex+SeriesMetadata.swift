import CompressNIO
import Foundation
import ImageSetStore
import NIOCore
import PostgresNIO

/// Series-level WADO-RS metadata, kept as SQLite keeps it (ImageSetStore's SeriesMetadata.swift):
/// a commit marks the series pending (an empty gzip with the new version); a refresh builds and
/// compresses it; readers of a pending series build the array from the instance rows.
extension PostgresIndex {
    /// The current instances' JSON as one array, built from their rows in one statement (one snapshot).
    static func buildSeriesMetadata(_ conn: PostgresConnection, logger: Logger, imageSetID: String, seriesInstanceUID: String) async throws -> ByteBuffer {
        var json = ByteBuffer()
        json.writeInteger(UInt8(ascii: "["))
        var first = true
        for try await row in try await conn.query("""
            SELECT m.json FROM instance i JOIN instance_metadata m ON m.instance_id = i.id
            WHERE i.image_set_id = \(imageSetID) AND i.series_instance_uid = \(seriesInstanceUID) AND i.removed_version IS NULL
            ORDER BY i.instance_number NULLS FIRST, i.sop_instance_uid
            """, logger: logger) {
            if !first { json.writeInteger(UInt8(ascii: ",")) }
            first = false
            var part = try row.decode(ByteBuffer.self)
            json.writeBuffer(&part)
        }
        json.writeInteger(UInt8(ascii: "]"))
        return json
    }

    static func storedSeriesGzip(_ conn: PostgresConnection, logger: Logger, imageSetID: String, seriesInstanceUID: String) async throws -> ByteBuffer? {
        try await rows("""
            SELECT gzip FROM series_metadata WHERE image_set_id = \(imageSetID) AND series_instance_uid = \(seriesInstanceUID) AND length(gzip) > 0
            """, on: conn, logger: logger).first?.get("gzip")
    }

    public func seriesMetadataGzip(imageSetID: String, seriesInstanceUID: String) async throws -> [UInt8]? {
        try await read { conn in
            guard var gz = try await Self.storedSeriesGzip(conn, logger: logger, imageSetID: imageSetID, seriesInstanceUID: seriesInstanceUID) else { return nil }
            return gz.readBytes(length: gz.readableBytes)
        }
    }

    public func seriesMetadata(imageSetID: String, seriesInstanceUID: String) async throws -> ByteBuffer {
        let logger = self.logger
        // One repeatable-read transaction: the stored document and the rows it would be built from agree.
        let (gz, built): (ByteBuffer?, ByteBuffer?) = try await read { conn in
            try await conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            do {
                let result: (ByteBuffer?, ByteBuffer?)
                if let gz = try await Self.storedSeriesGzip(conn, logger: logger, imageSetID: imageSetID, seriesInstanceUID: seriesInstanceUID) {
                    result = (gz, nil)
                } else {
                    result = (nil, try await Self.buildSeriesMetadata(conn, logger: logger, imageSetID: imageSetID, seriesInstanceUID: seriesInstanceUID))
                }
                try await conn.query("COMMIT", logger: logger)
                return result
            } catch {
                _ = try? await conn.query("ROLLBACK", logger: logger)
                throw error
            }
        }
        if let built { return built }
        var compressed = gz ?? ByteBuffer()
        return try compressed.decompress(with: .gzip)
    }

    /// Compresses every pending series. Two replicas may refresh the same series at once: each
    /// builds from committed rows and writes only if the series is still pending at the version it
    /// read, so the loser's UPDATE matches nothing, and a series changed again meanwhile stays
    /// pending for the next pass.
    public func refreshPendingSeriesMetadata() async throws -> Int {
        let pending = try await rows("SELECT image_set_id, series_instance_uid, version FROM series_metadata WHERE length(gzip) = 0")
        var refreshed = 0
        for row in pending {
            let set: String = try row.get("image_set_id"), series: String = try row.get("series_instance_uid"), version: Int = try row.get("version")
            let logger = self.logger
            refreshed += try await read { conn in
                var json = try await Self.buildSeriesMetadata(conn, logger: logger, imageSetID: set, seriesInstanceUID: series)
                let gz = try json.compress(with: .gzip)
                return try await Self.rows("""
                    UPDATE series_metadata SET gzip = \(gz) WHERE image_set_id = \(set) AND series_instance_uid = \(series)
                        AND version = \(version) AND length(gzip) = 0
                    RETURNING 1 AS done
                    """, on: conn, logger: logger).count
            }
        }
        return refreshed
    }
}
