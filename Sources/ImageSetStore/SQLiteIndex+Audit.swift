import DICOMParser
import Foundation
import GRDB

/// The audit trail in the index database (Docs/security.md, "Audit trail"). Records are numbered
/// 1, 2, 3… and chained: each one's hash covers its fields and the previous record's hash. Triggers
/// refuse UPDATE and DELETE, so only a hand that bypasses Tessera can change a record, and then
/// `verifyAuditTrail` finds the broken link. The newest record's sequence and hash are also kept in
/// `setting` (key `audit.head`), written in the same transaction, so a tail cut off by a plain
/// DELETE shows as a head that is missing.
extension SQLiteIndex {
    static func migrateAuditTrail(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE audit(
                sequence INTEGER PRIMARY KEY,
                time_us INTEGER NOT NULL,
                principal TEXT, principal_kind TEXT, roles TEXT NOT NULL,
                client_address TEXT, request_id TEXT,
                action TEXT NOT NULL,
                studies TEXT NOT NULL, study_count INTEGER NOT NULL,
                series TEXT NOT NULL, series_count INTEGER NOT NULL,
                instances TEXT NOT NULL, instance_count INTEGER NOT NULL,
                patients TEXT NOT NULL, patient_count INTEGER NOT NULL,
                success INTEGER NOT NULL, status INTEGER, detail TEXT,
                previous_hash TEXT NOT NULL, hash TEXT NOT NULL
            );
            CREATE INDEX audit_time ON audit(time_us);
            CREATE INDEX audit_principal ON audit(principal, sequence);
            -- The patients and studies a record names, for the /audit filters.
            CREATE TABLE audit_subject(
                kind TEXT NOT NULL, value TEXT NOT NULL, sequence INTEGER NOT NULL,
                PRIMARY KEY(kind, value, sequence)
            ) WITHOUT ROWID;
            CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
                BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
            CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
                BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
            CREATE TRIGGER audit_subject_append_only_update BEFORE UPDATE ON audit_subject
                BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
            CREATE TRIGGER audit_subject_append_only_delete BEFORE DELETE ON audit_subject
                BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
            """)
    }

    static let auditHeadKey = "audit.head"

    /// Appends `events` in order inside the caller's transaction (the change they describe commits
    /// or rolls back with them). Returns the records written.
    @discardableResult
    static func appendAudit(_ events: [AuditEvent], in db: Database) throws -> [AuditRecord] {
        guard !events.isEmpty else { return [] }
        let head = try Row.fetchOne(db.cachedStatement(sql: "SELECT sequence, hash FROM audit ORDER BY sequence DESC LIMIT 1"))
        var sequence: Int64 = head?["sequence"] ?? 0
        var previous: String = head?["hash"] ?? AuditRecord.genesis
        var written: [AuditRecord] = []
        let insert = try db.cachedStatement(sql: """
            INSERT INTO audit(sequence, time_us, principal, principal_kind, roles, client_address, request_id, action,
                studies, study_count, series, series_count, instances, instance_count, patients, patient_count,
                success, status, detail, previous_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let subject = try db.cachedStatement(sql: "INSERT OR IGNORE INTO audit_subject(kind, value, sequence) VALUES (?, ?, ?)")
        for event in events {
            sequence += 1
            let r = AuditRecord(event, sequence: sequence, previousHash: previous)
            let s = r.subjects
            try insert.execute(arguments: [r.sequence, r.timeMicroseconds, r.principalName, r.principalKind, r.roles.joined(separator: ","),
                                           r.clientAddress, r.requestID, r.action, json(s.studies), s.studyCount, json(s.series), s.seriesCount,
                                           json(s.instances), s.instanceCount, json(s.patients), s.patientCount,
                                           r.success, r.status, r.detail, r.previousHash, r.hash])
            for p in s.patients { try subject.execute(arguments: ["patient", p, sequence]) }
            for st in s.studies { try subject.execute(arguments: ["study", st, sequence]) }
            previous = r.hash
            written.append(r)
        }
        try db.cachedStatement(sql: "INSERT INTO setting(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .execute(arguments: [auditHeadKey, "\(sequence):\(previous)"])
        return written
    }

    public func appendAudit(_ events: [AuditEvent]) throws {
        try pool.write { db in _ = try Self.appendAudit(events, in: db) }
    }

    public func auditHeadSequence() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(sequence) FROM audit") ?? 0 }
    }

    public func auditRecords(_ filter: AuditFilter) throws -> [AuditRecord] {
        var clauses = ["a.sequence > ?"]
        var args: [any DatabaseValueConvertible] = [filter.after]
        if let p = filter.patientID {
            clauses.append("a.sequence IN (SELECT sequence FROM audit_subject WHERE kind = 'patient' AND value = ?)"); args.append(p)
        }
        if let s = filter.studyInstanceUID {
            clauses.append("a.sequence IN (SELECT sequence FROM audit_subject WHERE kind = 'study' AND value = ?)"); args.append(s)
        }
        if let i = filter.identity { clauses.append("a.principal = ?"); args.append(i) }
        if let a = filter.action { clauses.append("a.action = ?"); args.append(a) }
        if let f = filter.from { clauses.append("a.time_us >= ?"); args.append(Int64(f.timeIntervalSince1970 * 1e6)) }
        if let t = filter.to { clauses.append("a.time_us <= ?"); args.append(Int64(t.timeIntervalSince1970 * 1e6)) }
        args.append(min(max(filter.limit, 1), AuditFilter.maximumLimit))
        return try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit a WHERE \(clauses.joined(separator: " AND ")) ORDER BY a.sequence LIMIT ?",
                             arguments: StatementArguments(args)).map(Self.auditRecord)
        }
    }

    /// Walks the whole trail in sequence order: every record's stored hash must be its recomputed
    /// one, every `previous_hash` the hash before it, the sequence 1, 2, 3… without a gap, and the
    /// last record the head `setting` names. `anchor` (a sequence and hash printed by an earlier
    /// verify, or sent to syslog) must still be in the trail: that catches a cut-off tail even when
    /// whoever cut it also rewrote the head.
    public func verifyAuditTrail(anchor: (Int64, String)? = nil) throws -> AuditVerification {
        try pool.read { db in
            var v = AuditVerification()
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM audit ORDER BY sequence")
            while let row = try cursor.next() {
                guard v.check(Self.auditRecord(row), anchor: anchor) else { return v }
            }
            let head = try String.fetchOne(db, sql: "SELECT value FROM setting WHERE key = ?", arguments: [Self.auditHeadKey])
            v.finish(head: head.map { head in
                let parts = head.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }, anchor: anchor)
            return v
        }
    }

    static func auditRecord(_ row: Row) -> AuditRecord {
        func list(_ column: String) -> [String] {
            (try? JSONDecoder().decode([String].self, from: Data((row[column] as String? ?? "[]").utf8))) ?? []
        }
        let roles: String = row["roles"]
        return AuditRecord(
            sequence: row["sequence"], timeMicroseconds: row["time_us"], principalName: row["principal"], principalKind: row["principal_kind"],
            roles: roles.isEmpty ? [] : roles.split(separator: ",").map(String.init), clientAddress: row["client_address"],
            requestID: row["request_id"], action: row["action"],
            subjects: AuditSubjects(studies: list("studies"), series: list("series"), instances: list("instances"), patients: list("patients"),
                                    counts: [row["study_count"], row["series_count"], row["instance_count"], row["patient_count"]]),
            success: row["success"], status: row["status"], detail: row["detail"], previousHash: row["previous_hash"], hash: row["hash"])
    }

    /// A JSON array of strings (Foundation's encoder cost a third of a record's append).
    static func json(_ values: [String]) -> String {
        var w = JSONWriter()
        w.byte(UInt8(ascii: "["))
        for (k, v) in values.enumerated() {
            if k > 0 { w.byte(UInt8(ascii: ",")) }
            w.string(v)
        }
        w.byte(UInt8(ascii: "]"))
        return String(decoding: w.bytes, as: UTF8.self)
    }
}
