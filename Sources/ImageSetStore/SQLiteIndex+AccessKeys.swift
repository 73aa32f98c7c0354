import Foundation
import GRDB

extension SQLiteIndex: AccessKeyIndex {
    public func createAPIKey(_ record: APIKeyRecord, audit: AuditContext?) throws {
        try APIKey.validateName(record.name)
        try pool.write { db in
            guard try !Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM api_key WHERE name = ?)", arguments: [record.name])! else {
                throw AccessKeyError("a key named \(record.name) exists already (names are never reused, revoked keys' included)")
            }
            try db.execute(sql: "INSERT INTO api_key(name, role, key_sha256, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [record.name, record.role.rawValue, Data(record.keyHash), record.created.timeIntervalSince1970,
                                       record.revoked?.timeIntervalSince1970])
            if let audit {
                try Self.appendAudit([AuditEvent(audit, action: .keyCreate, success: true, detail: "\(record.role.rawValue) key \(record.name)")], in: db)
            }
        }
    }

    public func apiKeys() throws -> [APIKeyRecord] {
        try pool.read { db in try Self.keys(db, "SELECT * FROM api_key ORDER BY name") }
    }

    public func activeAPIKeys() throws -> [APIKeyRecord] {
        try pool.read { db in try Self.keys(db, "SELECT * FROM api_key WHERE revoked_at IS NULL") }
    }

    public func revokeAPIKey(name: String, at date: Date, audit: AuditContext?) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE api_key SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                           arguments: [date.timeIntervalSince1970, name])
            let revoked = db.changesCount > 0
            if let audit {
                try Self.appendAudit([AuditEvent(audit, action: .keyRevoke, success: revoked, detail: "key \(name)")], in: db)
            }
            return revoked
        }
    }

    public func recordStoredInstances(by principal: Principal, sopInstanceUIDs: [String]) throws {
        guard !sopInstanceUIDs.isEmpty else { return }
        let now = Date().timeIntervalSince1970
        try pool.write { db in
            let insert = try db.cachedStatement(sql: """
                INSERT INTO principal_stored_instance(principal_kind, principal_name, sop_instance_uid, stored_at) VALUES (?, ?, ?, ?)
                ON CONFLICT DO NOTHING
                """)
            for sop in sopInstanceUIDs { try insert.execute(arguments: [principal.kind.rawValue, principal.name, sop, now]) }
        }
    }

    public func hasStored(_ principal: Principal, sopInstanceUID: String) throws -> Bool {
        try pool.read { db in
            try Bool.fetchOne(db, sql: """
                SELECT EXISTS (SELECT 1 FROM principal_stored_instance WHERE principal_kind = ? AND principal_name = ? AND sop_instance_uid = ?)
                """, arguments: [principal.kind.rawValue, principal.name, sopInstanceUID]) ?? false
        }
    }

    static func keys(_ db: Database, _ sql: String) throws -> [APIKeyRecord] {
        try Row.fetchAll(db, sql: sql).compactMap { row in
            // A role this binary does not know (written by a newer one) authenticates no one.
            guard let role = Role(rawValue: row["role"]) else { return nil }
            let revoked: Double? = row["revoked_at"]
            return APIKeyRecord(name: row["name"], role: role, keyHash: Array(row["key_sha256"] as Data),
                                created: Date(timeIntervalSince1970: row["created_at"]), revoked: revoked.map { Date(timeIntervalSince1970: $0) })
        }
    }
}
