import Foundation
import ImageSetStore
import PostgresNIO

/// Webhook subscriptions on PostgreSQL (SQLiteIndex+Subscriptions.swift). Several replicas run a
/// delivery loop each; a subscription is delivered by the replica holding its lease, a row lease
/// with an expiry in the database's clock (so replicas' clocks need not agree), renewed while it
/// delivers. Every write of delivery state is conditional on holding it.
extension PostgresIndex {
    static let subscriptionSchema = [
        #"""
        CREATE TABLE subscription(
            id text COLLATE "C" PRIMARY KEY,
            url text NOT NULL,
            event_types text NOT NULL,
            study_instance_uid text COLLATE "C",
            patient_id text COLLATE "C",
            secret text NOT NULL,
            created_at double precision NOT NULL,
            cursor bigint NOT NULL,
            state text COLLATE "C" NOT NULL,
            consecutive_failures bigint NOT NULL DEFAULT 0,
            last_error text,
            last_attempt_at double precision,
            last_delivery_at double precision,
            lease_owner text COLLATE "C",
            lease_expires_at double precision
        )
        """#,
    ]

    static let subscriptionColumns = """
        id, url, event_types, study_instance_uid, patient_id, secret, created_at, cursor, state, consecutive_failures,
        last_error, last_attempt_at, last_delivery_at
        """
    static let databaseNow = "extract(epoch FROM clock_timestamp())::double precision"

    public func createSubscription(_ s: Subscription) async throws {
        try await write { conn in
            try await conn.query("""
                INSERT INTO subscription(id, url, event_types, study_instance_uid, patient_id, secret, created_at, cursor, state)
                VALUES (\(s.id), \(s.url), \(Subscription.encodeTypes(s.eventTypes)), \(s.studyInstanceUID), \(s.patientID), \(s.secret),
                        \(s.created.timeIntervalSince1970), \(s.cursor), \(s.state.rawValue))
                """, logger: logger)
        }
    }

    public func subscriptions() async throws -> [Subscription] {
        try await rows(PostgresQuery(unsafeSQL: "SELECT \(Self.subscriptionColumns) FROM subscription ORDER BY created_at, id")).compactMap(Self.subscription)
    }

    public func subscription(id: String) async throws -> Subscription? {
        var q = PostgresQuery(unsafeSQL: "SELECT \(Self.subscriptionColumns) FROM subscription WHERE id = $1")
        q.binds.append(id)
        return try await rows(q).compactMap(Self.subscription).first
    }

    public func deleteSubscription(id: String) async throws -> Bool {
        try await write { conn in
            try await !conn.query("DELETE FROM subscription WHERE id = \(id) RETURNING id", logger: logger).collect().isEmpty
        }
    }

    public func setSubscriptionState(id: String, _ state: Subscription.State) async throws -> Bool {
        try await write { conn in
            let rows = state == .active
                ? try await conn.query("""
                    UPDATE subscription SET state = \(state.rawValue), consecutive_failures = 0, last_error = NULL WHERE id = \(id) RETURNING id
                    """, logger: logger).collect()
                : try await conn.query("UPDATE subscription SET state = \(state.rawValue) WHERE id = \(id) RETURNING id", logger: logger).collect()
            return !rows.isEmpty
        }
    }

    public func acquireSubscriptionLease(id: String, owner: String, duration: TimeInterval) async throws -> Bool {
        var q = PostgresQuery(unsafeSQL: """
            UPDATE subscription SET lease_owner = $1, lease_expires_at = \(Self.databaseNow) + $2
            WHERE id = $3 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at < \(Self.databaseNow)) RETURNING id
            """)
        q.binds.append(owner)
        q.binds.append(duration)
        q.binds.append(id)
        return try await !rows(q).isEmpty
    }

    public func releaseSubscriptionLease(id: String, owner: String) async throws {
        try await write { conn in
            try await conn.query("""
                UPDATE subscription SET lease_owner = NULL, lease_expires_at = NULL WHERE id = \(id) AND lease_owner = \(owner)
                """, logger: logger)
        }
    }

    public func recordSubscriptionProgress(id: String, owner: String, cursor: Int64, delivered: Date?) async throws -> Bool {
        let reset = delivered != nil
        return try await write { conn in
            try await !conn.query("""
                UPDATE subscription SET cursor = greatest(cursor, \(cursor)),
                    consecutive_failures = CASE WHEN \(reset) THEN 0 ELSE consecutive_failures END,
                    last_error = CASE WHEN \(reset) THEN NULL ELSE last_error END,
                    last_delivery_at = coalesce(\(delivered?.timeIntervalSince1970), last_delivery_at)
                WHERE id = \(id) AND lease_owner = \(owner) RETURNING id
                """, logger: logger).collect().isEmpty
        }
    }

    public func recordSubscriptionFailure(id: String, owner: String, error: String, at date: Date, failureLimit: Int) async throws -> Subscription? {
        var q = PostgresQuery(unsafeSQL: """
            UPDATE subscription SET consecutive_failures = consecutive_failures + 1, last_error = $1, last_attempt_at = $2,
                state = CASE WHEN state = 'active' AND consecutive_failures + 1 >= $3 THEN 'failing' ELSE state END
            WHERE id = $4 AND lease_owner = $5 RETURNING \(Self.subscriptionColumns)
            """)
        q.binds.append(String(error.prefix(1000)))
        q.binds.append(date.timeIntervalSince1970)
        q.binds.append(failureLimit)
        q.binds.append(id)
        q.binds.append(owner)
        return try await write { conn in try await Self.rows(q, on: conn, logger: logger).compactMap(Self.subscription).first }
    }

    static func subscription(_ row: PostgresRandomAccessRow) throws -> Subscription? {
        // A state this binary does not know (a newer one wrote it) is left alone: not delivered, not listed.
        guard let state = Subscription.State(rawValue: try row.get("state", as: String.self)) else { return nil }
        let attempt = try row.get("last_attempt_at", as: Double?.self), delivery = try row.get("last_delivery_at", as: Double?.self)
        return Subscription(id: try row.get("id"), url: try row.get("url"), eventTypes: Subscription.decodeTypes(try row.get("event_types")),
                            studyInstanceUID: try row.get("study_instance_uid"), patientID: try row.get("patient_id"),
                            secret: try row.get("secret"), created: Date(timeIntervalSince1970: try row.get("created_at")),
                            cursor: try row.get("cursor"), state: state, consecutiveFailures: try row.get("consecutive_failures", as: Int.self),
                            lastError: try row.get("last_error"), lastAttempt: attempt.map { Date(timeIntervalSince1970: $0) },
                            lastDelivery: delivery.map { Date(timeIntervalSince1970: $0) })
    }
}
