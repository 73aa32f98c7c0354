import Foundation
import GRDB

/// Webhook subscriptions (Subscriptions.swift) in the embedded index. One process writes a data
/// folder, so the lease is only a formality here, kept in the same columns PostgreSQL uses.
extension SQLiteIndex: SubscriptionIndex {
    static func migrateSubscriptions(_ db: Database) throws {
        // The secret is kept as given: HMAC needs the key itself (Docs/security.md, "Webhooks").
        try db.execute(sql: """
            CREATE TABLE subscription(
                id TEXT PRIMARY KEY NOT NULL,
                url TEXT NOT NULL,
                event_types TEXT NOT NULL,
                study_instance_uid TEXT,
                patient_id TEXT,
                secret TEXT NOT NULL,
                created_at REAL NOT NULL,
                cursor INTEGER NOT NULL,
                state TEXT NOT NULL,
                consecutive_failures INTEGER NOT NULL DEFAULT 0,
                last_error TEXT,
                last_attempt_at REAL,
                last_delivery_at REAL,
                lease_owner TEXT,
                lease_expires_at REAL
            );
            """)
    }

    public func createSubscription(_ s: Subscription) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO subscription(id, url, event_types, study_instance_uid, patient_id, secret, created_at, cursor, state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [s.id, s.url, Subscription.encodeTypes(s.eventTypes), s.studyInstanceUID, s.patientID, s.secret,
                                 s.created.timeIntervalSince1970, s.cursor, s.state.rawValue])
        }
    }

    public func subscriptions() throws -> [Subscription] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM subscription ORDER BY created_at, id").compactMap(Self.subscription) }
    }

    public func subscription(id: String) throws -> Subscription? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM subscription WHERE id = ?", arguments: [id]).flatMap(Self.subscription) }
    }

    public func deleteSubscription(id: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM subscription WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    public func setSubscriptionState(id: String, _ state: Subscription.State) throws -> Bool {
        try pool.write { db in
            if state == .active {
                try db.execute(sql: "UPDATE subscription SET state = ?, consecutive_failures = 0, last_error = NULL WHERE id = ?",
                               arguments: [state.rawValue, id])
            } else {
                try db.execute(sql: "UPDATE subscription SET state = ? WHERE id = ?", arguments: [state.rawValue, id])
            }
            return db.changesCount > 0
        }
    }

    public func acquireSubscriptionLease(id: String, owner: String, duration: TimeInterval) throws -> Bool {
        let now = Date().timeIntervalSince1970
        return try pool.write { db in
            try db.execute(sql: """
                UPDATE subscription SET lease_owner = ?, lease_expires_at = ?
                WHERE id = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)
                """, arguments: [owner, now + duration, id, owner, now])
            return db.changesCount > 0
        }
    }

    public func releaseSubscriptionLease(id: String, owner: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE subscription SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?",
                           arguments: [id, owner])
        }
    }

    public func recordSubscriptionProgress(id: String, owner: String, cursor: Int64, delivered: Date?) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE subscription SET cursor = max(cursor, ?), consecutive_failures = CASE WHEN ? THEN 0 ELSE consecutive_failures END,
                    last_error = CASE WHEN ? THEN NULL ELSE last_error END, last_delivery_at = coalesce(?, last_delivery_at)
                WHERE id = ? AND lease_owner = ?
                """, arguments: [cursor, delivered != nil, delivered != nil, delivered?.timeIntervalSince1970, id, owner])
            return db.changesCount > 0
        }
    }

    public func recordSubscriptionFailure(id: String, owner: String, error: String, at date: Date, failureLimit: Int) throws -> Subscription? {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE subscription SET consecutive_failures = consecutive_failures + 1, last_error = ?, last_attempt_at = ?,
                    state = CASE WHEN state = 'active' AND consecutive_failures + 1 >= ? THEN 'failing' ELSE state END
                WHERE id = ? AND lease_owner = ?
                """, arguments: [String(error.prefix(1000)), date.timeIntervalSince1970, failureLimit, id, owner])
            guard db.changesCount > 0 else { return nil }
            return try Row.fetchOne(db, sql: "SELECT * FROM subscription WHERE id = ?", arguments: [id]).flatMap(Self.subscription)
        }
    }

    static func subscription(_ row: Row) -> Subscription? {
        // A state this binary does not know (a newer one wrote it) is left alone: not delivered, not listed.
        guard let state = Subscription.State(rawValue: row["state"]) else { return nil }
        let attempt: Double? = row["last_attempt_at"], delivery: Double? = row["last_delivery_at"]
        return Subscription(id: row["id"], url: row["url"], eventTypes: Subscription.decodeTypes(row["event_types"]),
                            studyInstanceUID: row["study_instance_uid"], patientID: row["patient_id"], secret: row["secret"],
                            created: Date(timeIntervalSince1970: row["created_at"]), cursor: row["cursor"], state: state,
                            consecutiveFailures: row["consecutive_failures"], lastError: row["last_error"],
                            lastAttempt: attempt.map { Date(timeIntervalSince1970: $0) }, lastDelivery: delivery.map { Date(timeIntervalSince1970: $0) })
    }
}

extension Subscription {
    /// The event-type filter as the index stores it: a JSON array of strings.
    public static func encodeTypes(_ types: [String]) -> String {
        String(decoding: (try? JSONEncoder().encode(types)) ?? Data("[]".utf8), as: UTF8.self)
    }

    public static func decodeTypes(_ text: String) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data(text.utf8))) ?? []
    }
}
