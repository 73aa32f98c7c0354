import Foundation
import ImageSetStore
import PostgresNIO

/// Blob reservations: how replicas sharing a bucket keep a sweeper from removing a blob that
/// another replica is committing (ImageSetIndex.reserveBlobs, removeOrphanBlob). Content addressing
/// makes the race real: an instance deleted and pruned leaves its blob unreferenced; the same bytes
/// stored again by another replica land on the same key. Both sides take the blob's advisory lock:
/// a commit records its reservation under it before uploading, and the sweeper checks for references
/// and fresh reservations and removes the object under it too, holding it across the removal. So a
/// commit either reserves first (and the blob stays) or waits for the removal to finish and then
/// uploads the bytes again.
extension PostgresIndex {
    static let blobSchema = [
        """
        CREATE TABLE blob_reservation(
            blob_id text COLLATE "C" PRIMARY KEY, reserved_at double precision NOT NULL)
        """,
        "CREATE INDEX blob_reservation_time ON blob_reservation(reserved_at)",
    ]

    /// Reservations older than this are forgotten: a commit takes seconds, not a day.
    static let reservationLifetime: Double = 86_400

    public func reserveBlobs(_ ids: [BlobID]) async throws {
        guard !ids.isEmpty else { return }
        let hexes = Array(Set(ids.map(\.hex))).sorted()
        // Times are the database's, never a replica's clock: replicas' clocks may disagree.
        // One statement, its own transaction: the blobs' locks (the CTE the insert reads from, so
        // all taken before the first row), the reservations, and the forgetting of day-old ones
        // (never a row this statement reserves: no row is changed twice in one statement).
        _ = try await rows("""
            WITH locked AS MATERIALIZED (
                SELECT count(*) AS n FROM (
                    SELECT pg_advisory_xact_lock(k) FROM (
                        SELECT DISTINCT hashtextextended('blob:' || b, 0) AS k FROM unnest(\(hexes)::text[]) AS b ORDER BY k) AS keys
                ) AS l
            ), reserved AS (
                INSERT INTO blob_reservation(blob_id, reserved_at)
                SELECT b, extract(epoch from clock_timestamp()) FROM locked, unnest(\(hexes)::text[]) AS b
                ON CONFLICT (blob_id) DO UPDATE SET reserved_at = excluded.reserved_at
                RETURNING 1
            ), forgotten AS (
                DELETE FROM blob_reservation
                WHERE reserved_at < extract(epoch from clock_timestamp()) - \(Self.reservationLifetime) AND blob_id <> ALL(\(hexes)::text[])
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM reserved) AS reserved, (SELECT count(*) FROM forgotten) AS forgotten
            """)
    }

    /// A reservation protects its blob for a day whatever `grace` is (a commit's upload and index
    /// transaction take seconds): a short grace cannot let a sweep take a blob on its way to the index.
    public func removeOrphanBlob(_ id: BlobID, grace: TimeInterval, remove: @Sendable () async throws -> Void) async throws -> Bool {
        let window = max(grace, Self.reservationLifetime)
        return try await write { conn in
            try await Self.lockBlobs([id.hex], on: conn, logger: logger)
            let rows = try await Self.rows("""
                SELECT EXISTS (SELECT 1 FROM instance WHERE blob_id = \(id.hex) OR frames_blob_id = \(id.hex))
                    OR EXISTS (SELECT 1 FROM blob_reservation WHERE blob_id = \(id.hex) AND reserved_at >= extract(epoch from clock_timestamp()) - \(window)) AS kept
                """, on: conn, logger: logger)
            if try rows.first?.get("kept", as: Bool.self) ?? true { return false }
            try await remove()  // under the blob's lock, which a commit of the same bytes waits for
            try await conn.query("DELETE FROM blob_reservation WHERE blob_id = \(id.hex)", logger: logger)
            return true
        }
    }

    /// The blobs' transaction locks, in key order (no cycles between two transactions).
    static func lockBlobs(_ hexes: [String], on conn: PostgresConnection, logger: Logger) async throws {
        try await conn.query("""
            SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended('blob:' || b, 0) AS k FROM unnest(\(hexes)::text[]) AS b ORDER BY k) AS keys
            """, logger: logger)
    }
}

extension PostgresIndex: ImageSetIndex, AccessKeyIndex, SubscriptionIndex {}
