import Foundation
import ImageSetStore
import PostgresNIO

/// API keys and the instances each gateway stored, on PostgreSQL (SQLiteIndex+AccessKeys.swift). A key
/// change and its audit record commit in one transaction.
extension PostgresIndex {
    public func createAPIKey(_ record: APIKeyRecord, audit: AuditContext?) async throws {
        try APIKey.validateName(record.name)
        try await write { connection in
            // ON CONFLICT rather than a check first: two replicas creating one name at once get one key.
            let inserted = try await connection.query("""
                INSERT INTO api_key(name, role, key_sha256, created_at, revoked_at)
                VALUES (\(record.name), \(record.role.rawValue), \(Data(record.keyHash)), \(record.created.timeIntervalSince1970),
                        \(record.revoked?.timeIntervalSince1970))
                ON CONFLICT (name) DO NOTHING RETURNING name
                """, logger: logger).collect()
            guard !inserted.isEmpty else {
                throw AccessKeyError("a key named \(record.name) exists already (names are never reused, revoked keys' included)")
            }
            if let audit {
                try await Self.appendAudit([AuditEvent(audit, action: .keyCreate, success: true,
                                                       detail: "\(record.role.rawValue) key \(record.name)")], on: connection)
            }
        }
    }

    public func apiKeys() async throws -> [APIKeyRecord] {
        try await keys("SELECT name, role, key_sha256, created_at, revoked_at FROM api_key ORDER BY name COLLATE \"C\"")
    }

    public func activeAPIKeys() async throws -> [APIKeyRecord] {
        try await keys("SELECT name, role, key_sha256, created_at, revoked_at FROM api_key WHERE revoked_at IS NULL")
    }

    public func revokeAPIKey(name: String, at date: Date, audit: AuditContext?) async throws -> Bool {
        try await write { connection in
            let revoked = try await !connection.query("""
                UPDATE api_key SET revoked_at = \(date.timeIntervalSince1970) WHERE name = \(name) AND revoked_at IS NULL RETURNING name
                """, logger: logger).collect().isEmpty
            if let audit {
                try await Self.appendAudit([AuditEvent(audit, action: .keyRevoke, success: revoked, detail: "key \(name)")], on: connection)
            }
            return revoked
        }
    }

    public func recordStoredInstances(by principal: Principal, sopInstanceUIDs: [String]) async throws {
        guard !sopInstanceUIDs.isEmpty else { return }
        let now = Date().timeIntervalSince1970
        // One statement however many instances: the UIDs go as one array.
        try await client.withConnection { connection in
            try await connection.query("""
                INSERT INTO principal_stored_instance(principal_kind, principal_name, sop_instance_uid, stored_at)
                SELECT \(principal.kind.rawValue), \(principal.name), u, \(now) FROM unnest(\(sopInstanceUIDs)::text[]) AS u
                ON CONFLICT DO NOTHING
                """, logger: logger)
        }
    }

    public func hasStored(_ principal: Principal, sopInstanceUID: String) async throws -> Bool {
        try await client.withConnection { connection in
            try await connection.query("""
                SELECT EXISTS (SELECT 1 FROM principal_stored_instance
                               WHERE principal_kind = \(principal.kind.rawValue) AND principal_name = \(principal.name)
                                 AND sop_instance_uid = \(sopInstanceUID))
                """, logger: logger).collect().first?.decode(Bool.self) ?? false
        }
    }

    func keys(_ sql: String) async throws -> [APIKeyRecord] {
        try await client.withConnection { connection in
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect().compactMap { row in
                let (name, roleName, hash, created, revoked) = try row.decode((String, String, Data, Double, Double?).self)
                // A role this binary does not know (written by a newer one) authenticates no one.
                guard let role = Role(rawValue: roleName) else { return nil }
                return APIKeyRecord(name: name, role: role, keyHash: Array(hash), created: Date(timeIntervalSince1970: created),
                                    revoked: revoked.map { Date(timeIntervalSince1970: $0) })
            }
        }
    }
}
