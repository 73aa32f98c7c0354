import ImageSetStore

extension PostgresIndex {
    /// Migration 2 of the PostgreSQL schema (PostgresIndex+Schema.swift): the audit trail, API keys and the instances each principal
    /// stored (SQLite's v5 and v6), and the indexes searches need at scale (`searchIndexes`). Shipped
    /// migrations are never edited; changes come as new ones.
    static var accessAndAuditStatements: [String] { auditSchema + accessSchema + searchIndexes }

    /// The audit trail (Docs/security.md, "Audit trail"): the same fields and hash chain as SQLite's
    /// (`AuditRecord.canonicalBytes`), so `verify` means the same on both. Lists are arrays, and the
    /// /audit filters by patient and study are GIN lookups on them. A trigger refuses UPDATE, DELETE and
    /// TRUNCATE; `audit_head` keeps the newest record's sequence and hash (written with every append), so
    /// that a tail cut off by hand shows as a head that is missing.
    static let auditSchema: [String] = [
        """
        CREATE TABLE audit(
            sequence bigint PRIMARY KEY,
            time_us bigint NOT NULL,
            principal text, principal_kind text, roles text[] NOT NULL,
            client_address text, request_id text,
            action text NOT NULL,
            studies text[] NOT NULL, study_count integer NOT NULL,
            series text[] NOT NULL, series_count integer NOT NULL,
            instances text[] NOT NULL, instance_count integer NOT NULL,
            patients text[] NOT NULL, patient_count integer NOT NULL,
            success boolean NOT NULL, status integer, detail text,
            previous_hash text NOT NULL, hash text NOT NULL)
        """,
        "CREATE INDEX audit_time ON audit(time_us)",
        "CREATE INDEX audit_principal ON audit(principal, sequence)",
        "CREATE INDEX audit_patients ON audit USING gin(patients)",
        "CREATE INDEX audit_studies ON audit USING gin(studies)",
        """
        CREATE TABLE audit_head(
            id integer PRIMARY KEY CHECK (id = 1),
            sequence bigint NOT NULL, hash text NOT NULL)
        """,
        """
        CREATE FUNCTION tessera_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$
        """,
        """
        CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
            FOR EACH ROW EXECUTE FUNCTION tessera_audit_append_only()
        """,
        """
        CREATE TRIGGER audit_append_only_truncate BEFORE TRUNCATE ON audit
            FOR EACH STATEMENT EXECUTE FUNCTION tessera_audit_append_only()
        """,
    ]

    /// API keys (only their SHA-256) and, per principal, the instances a gateway stored (SQLite v5).
    static let accessSchema: [String] = [
        """
        CREATE TABLE api_key(
            name text PRIMARY KEY, role text NOT NULL, key_sha256 bytea NOT NULL UNIQUE,
            created_at double precision NOT NULL, revoked_at double precision)
        """,
        """
        CREATE TABLE principal_stored_instance(
            principal_kind text NOT NULL, principal_name text NOT NULL, sop_instance_uid text NOT NULL,
            stored_at double precision NOT NULL,
            PRIMARY KEY(principal_kind, principal_name, sop_instance_uid))
        """,
    ]
}
