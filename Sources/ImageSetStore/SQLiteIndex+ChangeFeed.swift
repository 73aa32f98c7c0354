import Foundation
import GRDB

/// The change feed on SQLite (Docs/events.md). One writer per folder, so commit order is the
/// order of the writes; the head counter keeps numbers from being reused after retention removed
/// the newest events, and records how far retention went.
extension SQLiteIndex {
    static func migrateChangeFeed(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE change_event(
                sequence INTEGER PRIMARY KEY,
                time REAL NOT NULL,
                type TEXT NOT NULL,
                image_set_id TEXT, version INTEGER,
                study_instance_uid TEXT, series_instance_uid TEXT, sop_instance_uid TEXT,
                transfer_syntax_uid TEXT, size INTEGER, patient_id TEXT,
                is_primary INTEGER, state TEXT, conflicts TEXT, reason TEXT, versions_removed INTEGER
            );
            -- One row: the newest sequence handed out, and the newest one retention removed.
            CREATE TABLE change_feed_head(
                id INTEGER PRIMARY KEY CHECK (id = 1),
                sequence INTEGER NOT NULL,
                pruned_through INTEGER NOT NULL
            );
            INSERT INTO change_feed_head(id, sequence, pruned_through) VALUES (1, 0, 0);
            """)
    }

    /// Numbers and appends a transaction's events inside it (they commit or roll back with the change).
    static func appendChanges(_ drafts: ChangeDrafts, in db: Database) throws {
        guard !drafts.isEmpty else { return }
        let n = Int64(drafts.events.count)
        guard let head = try Int64.fetchOne(db.cachedStatement(sql: "UPDATE change_feed_head SET sequence = sequence + ? WHERE id = 1 RETURNING sequence"),
                                            arguments: [n]) else {
            throw DataFolderError("the change feed's head row is missing from the index")
        }
        let insert = try db.cachedStatement(sql: """
            INSERT INTO change_event(sequence, time, type, image_set_id, version, study_instance_uid, series_instance_uid,
                sop_instance_uid, transfer_syntax_uid, size, patient_id, is_primary, state, conflicts, reason, versions_removed)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (k, e) in drafts.events.enumerated() {
            let values: [(any DatabaseValueConvertible)?] = [
                head - n + 1 + Int64(k), e.time.timeIntervalSince1970, e.type.rawValue, e.imageSetId, e.version,
                e.studyInstanceUID, e.seriesInstanceUID, e.sopInstanceUID, e.transferSyntaxUID, e.size, e.patientID,
                e.isPrimary, e.state, ChangeDrafts.conflictsText(e.conflicts), e.reason, e.versionsRemoved]
            try insert.execute(arguments: StatementArguments(values))
        }
    }

    public func changes(after: Int64, limit: Int) throws -> [ChangeEvent] {
        try pool.read { db in
            // One snapshot: what retention removed is known for exactly the rows read.
            let prunedThrough = try Int64.fetchOne(db, sql: "SELECT pruned_through FROM change_feed_head WHERE id = 1") ?? 0
            if after < prunedThrough { throw ChangeFeedPrunedError(after: after, oldestHeld: prunedThrough + 1) }
            return try Row.fetchAll(db.cachedStatement(sql: "SELECT * FROM change_event WHERE sequence > ? ORDER BY sequence LIMIT ?"),
                                    arguments: [after, limit]).map(Self.changeEvent)
        }
    }

    public func latestChangeSequence() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT sequence FROM change_feed_head WHERE id = 1") ?? 0 }
    }

    public func changeFeedPrunedThrough() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT pruned_through FROM change_feed_head WHERE id = 1") ?? 0 }
    }

    public func pruneChanges(before date: Date) throws -> Int { try pruneChanges(before: date, chunk: 10_000) }

    /// Removes the prefix of the feed older than `date`, at most `chunk` events per transaction: SQLite
    /// has one writer, and the first prune of a long feed must not hold STOW up while it deletes millions.
    func pruneChanges(before date: Date, chunk: Int64) throws -> Int {
        guard let last = try pool.read({ db in
            try Int64.fetchOne(db, sql: "SELECT max(sequence) FROM change_event WHERE time < ?", arguments: [date.timeIntervalSince1970])
        }) else { return 0 }
        var removed = 0
        while true {
            let (count, done) = try pool.write { db -> (Int, Bool) in
                guard let first = try Int64.fetchOne(db, sql: "SELECT min(sequence) FROM change_event"), first <= last else { return (0, true) }
                let through = min(last, first + chunk - 1)
                try db.execute(sql: "DELETE FROM change_event WHERE sequence <= ?", arguments: [through])
                let count = db.changesCount
                try db.execute(sql: "UPDATE change_feed_head SET pruned_through = max(pruned_through, ?) WHERE id = 1", arguments: [through])
                return (count, through == last)
            }
            removed += count
            if done { return removed }
        }
    }

    static func changeEvent(_ row: Row) -> ChangeEvent {
        ChangeEvent(sequence: row["sequence"], time: Date(timeIntervalSince1970: row["time"]),
                    type: ChangeEventType(rawValue: row["type"]) ?? .imageSetVersion,
                    imageSetId: row["image_set_id"], version: row["version"], studyInstanceUID: row["study_instance_uid"],
                    seriesInstanceUID: row["series_instance_uid"], sopInstanceUID: row["sop_instance_uid"],
                    transferSyntaxUID: row["transfer_syntax_uid"], size: row["size"], patientID: row["patient_id"],
                    isPrimary: row["is_primary"], state: row["state"], conflicts: ChangeDrafts.conflicts(fromText: row["conflicts"]),
                    reason: row["reason"], versionsRemoved: row["versions_removed"])
    }
}
