import Foundation
import ImageSetStore
import PostgresNIO

/// The change feed on PostgreSQL (Docs/events.md): SQLiteIndex's tables. Several replicas write at
/// once, and the numbering is what keeps the feed gap-free in commit order: each write transaction
/// updates the one row of `change_feed_head` as its last statement, and holds that row lock until
/// it commits. The next writer gets its numbers only after that commit is visible, so a reader
/// that sees event N+1 sees N too, and no number is left unused by a transaction that rolled back.
extension PostgresIndex {
    static let changeFeedSchema = [
        #"""
        CREATE TABLE change_event(
            sequence bigint PRIMARY KEY,
            time double precision NOT NULL,
            type text COLLATE "C" NOT NULL,
            image_set_id text COLLATE "C", version bigint,
            study_instance_uid text COLLATE "C", series_instance_uid text COLLATE "C", sop_instance_uid text COLLATE "C",
            transfer_syntax_uid text COLLATE "C", size bigint, patient_id text COLLATE "C",
            is_primary boolean, state text COLLATE "C", conflicts text, reason text, versions_removed bigint
        )
        """#,
        """
        CREATE TABLE change_feed_head(
            id integer PRIMARY KEY CHECK (id = 1),
            sequence bigint NOT NULL,
            pruned_through bigint NOT NULL
        )
        """,
        "INSERT INTO change_feed_head(id, sequence, pruned_through) VALUES (1, 0, 0)",
    ]

    /// Numbers and appends a transaction's events inside it (`appendTrails`, which also writes the
    /// audit records of a transaction that has them in the same statement).
    static func appendChanges(_ drafts: ChangeDrafts, on conn: PostgresConnection, logger: Logger) async throws {
        try await appendTrails([], drafts, on: conn, logger: logger)
    }

    public func changes(after: Int64, limit: Int) async throws -> [ChangeEvent] {
        let logger = self.logger
        return try await read { conn in
            let events = try await Self.rows("SELECT * FROM change_event WHERE sequence > \(after) ORDER BY sequence LIMIT \(limit)",
                                             on: conn, logger: logger).map(Self.changeEvent)
            // Read after the events: retention only moves forward, so when it has not passed `after`
            // now, it had not when the events were read, and they are complete.
            let prunedThrough = try await Self.prunedThrough(on: conn, logger: logger)
            if after < prunedThrough { throw ChangeFeedPrunedError(after: after, oldestHeld: prunedThrough + 1) }
            return events
        }
    }

    public func latestChangeSequence() async throws -> Int64 {
        try await rows("SELECT sequence FROM change_feed_head WHERE id = 1").first?.get("sequence") ?? 0
    }

    public func changeFeedPrunedThrough() async throws -> Int64 {
        let logger = self.logger
        return try await read { try await Self.prunedThrough(on: $0, logger: logger) }
    }

    static func prunedThrough(on conn: PostgresConnection, logger: Logger) async throws -> Int64 {
        try await rows("SELECT pruned_through FROM change_feed_head WHERE id = 1", on: conn, logger: logger).first?.get("pruned_through") ?? 0
    }

    public func pruneChanges(before date: Date) async throws -> Int {
        let logger = self.logger
        return try await write { conn in
            guard let last = try await Self.rows("SELECT max(sequence) AS last FROM change_event WHERE time < \(date.timeIntervalSince1970)",
                                                 on: conn, logger: logger).first?.get("last", as: Int64?.self) else { return 0 }
            let removed = try await Self.rows("DELETE FROM change_event WHERE sequence <= \(last) RETURNING 1 AS gone", on: conn, logger: logger).count
            try await conn.query("UPDATE change_feed_head SET pruned_through = greatest(pruned_through, \(last)) WHERE id = 1", logger: logger)
            return removed
        }
    }

    static func changeEvent(_ row: PostgresRandomAccessRow) throws -> ChangeEvent {
        ChangeEvent(sequence: try row.get("sequence"), time: Date(timeIntervalSince1970: try row.get("time")),
                    type: ChangeEventType(rawValue: try row.get("type")) ?? .imageSetVersion,
                    imageSetId: try row.get("image_set_id"), version: try row.get("version"),
                    studyInstanceUID: try row.get("study_instance_uid"), seriesInstanceUID: try row.get("series_instance_uid"),
                    sopInstanceUID: try row.get("sop_instance_uid"), transferSyntaxUID: try row.get("transfer_syntax_uid"),
                    size: try row.get("size"), patientID: try row.get("patient_id"), isPrimary: try row.get("is_primary"),
                    state: try row.get("state"), conflicts: ChangeDrafts.conflicts(fromText: try row.get("conflicts")),
                    reason: try row.get("reason"), versionsRemoved: try row.get("versions_removed"))
    }
}
