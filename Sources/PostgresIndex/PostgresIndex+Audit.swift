import Foundation
import ImageSetStore
import Logging
import PostgresNIO

/// The audit trail on PostgreSQL: SQLiteIndex+Audit.swift's records, numbered and chained alike. Several
/// replicas append to one trail, so appends are serialised by a transaction-scoped advisory lock: the
/// second replica waits for the first one's commit, then reads the head it wrote.
extension PostgresIndex {
    enum AuditLock: PreparedTag { static let name = "audit_lock" }
    enum AuditHead: PreparedTag { static let name = "audit_head" }
    enum AuditLockedHead: PreparedTag { static let name = "audit_locked_head" }

    /// The advisory lock key of audit appends ("tessaudi").
    static let auditLockKey: Int64 = 0x7465_7373_6175_6469

    /// Appends `events` in order inside the caller's transaction (the change they describe commits or
    /// rolls back with them). The transaction must be READ COMMITTED (PostgreSQL's default), so that the
    /// head is read after the lock is held.
    public static func appendAudit(_ events: [AuditEvent], on connection: PostgresConnection) async throws {
        _ = try await appendAuditRecords(events, on: connection, logger: connection.logger)
    }

    @discardableResult
    static func appendAuditRecords(_ events: [AuditEvent], on connection: PostgresConnection, logger: Logger) async throws -> [AuditRecord] {
        guard !events.isEmpty else { return [] }
        let records = chained(events, after: try await lockedHead(on: connection, logger: logger))
        // One statement for the records and the head: a 512-record drain of the read buffer is one round trip.
        try await appendTrails(records, ChangeDrafts(now: 0), on: connection, logger: logger)
        return records
    }

    /// Takes the audit lock and reads the head, in one round trip when `audit_head` has its row (every
    /// trail after its first append): the row is locked FOR UPDATE above the join that takes the
    /// advisory lock, so it is locked after the advisory lock and read at its latest committed
    /// version. A READ COMMITTED statement reads from the snapshot it started with, taken before it
    /// waited for the lock, but a row locked FOR UPDATE that another transaction updated meanwhile is
    /// re-read at its newest version (PostgreSQL, "Transaction Isolation", §13.2.1). Without the row
    /// (an empty trail), the lock and a read of the trail's last record, as two statements.
    static func lockedHead(on connection: PostgresConnection, logger: Logger) async throws -> (Int64, String)? {
        func head(_ row: PostgresRandomAccessRow) throws -> (Int64, String) {
            (try row.get("sequence", as: Int64.self), try row.get("hash", as: String.self))
        }
        let locked = try await rows("""
            SELECT h.sequence, h.hash FROM (SELECT pg_advisory_xact_lock(\(auditLockKey))) AS l, audit_head h WHERE h.id = 1 FOR UPDATE OF h
            """, prepared: AuditLockedHead.self, on: connection, logger: logger)
        if let row = locked.first { return try head(row) }
        _ = try await rows("SELECT pg_advisory_xact_lock(\(auditLockKey))", prepared: AuditLock.self, on: connection, logger: logger)
        return try await rows("SELECT sequence, hash FROM audit ORDER BY sequence DESC LIMIT 1", prepared: AuditHead.self,
                              on: connection, logger: logger).first.map(head)
    }

    /// Appends audit records in one transaction of their own (reads, key changes).
    public func appendAudit(_ events: [AuditEvent]) async throws {
        guard !events.isEmpty else { return }
        // At most 1,000 records a transaction: a bounded JSON document per statement, and a bounded wait for the lock.
        for chunk in stride(from: 0, to: events.count, by: 1000).map({ Array(events[$0..<min($0 + 1000, events.count)]) }) {
            try await write(onConnectionsLoop: true) { connection in _ = try await Self.appendAuditRecords(chunk, on: connection, logger: logger) }
        }
    }

    public func auditHeadSequence() async throws -> Int64 {
        try await client.withConnection { connection in
            try await connection.query("SELECT COALESCE(MAX(sequence), 0)::bigint FROM audit", logger: logger)
                .collect().first?.decode(Int64.self) ?? 0
        }
    }

    public func auditRecords(_ filter: AuditFilter) async throws -> [AuditRecord] {
        var binds = PostgresBindings()
        binds.append(filter.after)
        var clauses = ["sequence > $1"]
        func add(_ sql: String, _ value: some PostgresDynamicTypeEncodable) {
            binds.append(value)
            clauses.append(sql.replacingOccurrences(of: "?", with: "$\(binds.count)"))
        }
        if let p = filter.patientID { add("patients @> ARRAY[?]::text[]", p) }
        if let s = filter.studyInstanceUID { add("studies @> ARRAY[?]::text[]", s) }
        if let i = filter.identity { add("principal = ?", i) }
        if let a = filter.action { add("action = ?", a) }
        if let f = filter.from { add("time_us >= ?", Int64(f.timeIntervalSince1970 * 1e6)) }
        if let t = filter.to { add("time_us <= ?", Int64(t.timeIntervalSince1970 * 1e6)) }
        binds.append(min(max(filter.limit, 1), AuditFilter.maximumLimit))
        let sql = "SELECT * FROM audit WHERE \(clauses.joined(separator: " AND ")) ORDER BY sequence LIMIT $\(binds.count)"
        return try await client.withConnection { connection in
            try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).collect().map(Self.auditRecord)
        }
    }

    /// Walks the whole trail in sequence order with `SQLiteIndex.verifyAuditTrail`'s checks and messages
    /// (AuditVerification.check): no gap, each record chained to the one before, each hash its content's,
    /// the last record the head `audit_head` keeps, and `anchor` still in the trail.
    public func verifyAuditTrail(anchor: (Int64, String)?) async throws -> AuditVerification {
        try await write { connection in
            // One snapshot for the walk and the head, however many replicas append meanwhile.
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            var v = AuditVerification()
            for try await row in try await connection.query("SELECT * FROM audit ORDER BY sequence", logger: logger) {
                guard v.check(try Self.auditRecord(row), anchor: anchor) else { return v }
            }
            let head = try await Self.rows("SELECT sequence, hash FROM audit_head WHERE id = 1", on: connection, logger: logger).first
            v.finish(head: try head.map { (String(try $0.get("sequence", as: Int64.self)), try $0.get("hash")) }, anchor: anchor)
            return v
        }
    }

    static func auditRecord(_ row: PostgresRow) throws -> AuditRecord {
        let r = row.makeRandomAccess()
        func get<T: PostgresDecodable>(_ column: String, _: T.Type = T.self) throws -> T { try r[column].decode(T.self) }
        let subjects = try AuditSubjects(
            studies: get("studies"), series: get("series"), instances: get("instances"), patients: get("patients"),
            counts: [get("study_count", Int.self), get("series_count"), get("instance_count"), get("patient_count")])
        return try AuditRecord(
            sequence: get("sequence"), timeMicroseconds: get("time_us"), principalName: get("principal"),
            principalKind: get("principal_kind"), roles: get("roles"), clientAddress: get("client_address"),
            requestID: get("request_id"), action: get("action"), subjects: subjects, success: get("success"),
            status: get("status"), detail: get("detail"), previousHash: get("previous_hash"), hash: get("hash"))
    }
}
