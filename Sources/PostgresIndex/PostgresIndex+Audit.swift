import ImageSetStore
import PostgresNIO

// A placeholder the pgquery engineer replaces (this file is theirs): the audit trail, API keys and
// principals' stored instances, migration 2.
extension PostgresIndex {
    /// Migration 2's statements; none yet, so migration 2 is neither applied nor recorded.
    static let accessAndAuditStatements: [String] = []

    /// Appends `events` in order inside the caller's transaction (the change they describe commits
    /// or rolls back with them).
    static func appendAudit(_ events: [AuditEvent], on connection: PostgresConnection) async throws {}
}
