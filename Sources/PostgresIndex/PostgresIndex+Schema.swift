import Foundation
import ImageSetStore
import PostgresNIO

/// The schema: SQLiteIndex's final one (after its v6), table for table and column for column, with
/// types mapped (TEXT → text COLLATE "C", so that ordering and comparisons are bytewise like SQLite's
/// BINARY; INTEGER → bigint; REAL → double precision, seconds since 1970 as in SQLite; BLOB → bytea;
/// flags → boolean).
extension PostgresIndex {
    struct Migration: Sendable {
        var version: Int
        var name: String
        var statements: [String]
    }

    /// Append-only: a shipped migration is never edited, changes come as new ones. A migration with
    /// no statements is a placeholder, neither applied nor recorded.
    static var migrations: [Migration] { [
        Migration(version: 1, name: "core tables", statements: coreSchema),
        // Audit trail, API keys and the instances each principal stored (PostgresIndex+Audit.swift).
        Migration(version: 2, name: "access and audit", statements: accessAndAuditStatements),
        // Blob reservations for sweeping a shared bucket (PostgresIndex+Blobs.swift).
        Migration(version: 3, name: "blob reservations", statements: blobSchema),
        // The change feed (PostgresIndex+ChangeFeed.swift).
        Migration(version: 4, name: "change feed", statements: changeFeedSchema),
        // Webhook subscriptions and their delivery leases (PostgresIndex+Subscriptions.swift).
        Migration(version: 5, name: "webhook subscriptions", statements: subscriptionSchema),
        // Stored study summaries, which a study search reads (PostgresIndex+StudySummary.swift).
        Migration(version: 6, name: "study summaries", statements: studySummarySchema),
    ] }

    /// The newest schema version this binary knows.
    static var knownVersion: Int { migrations.filter { !$0.statements.isEmpty }.map(\.version).max() ?? 0 }

    /// Applies the missing migrations in one transaction, under an advisory lock: replicas starting
    /// together take turns, and the second finds the work done.
    func migrate() async throws {
        try await write { conn in
            try await conn.query("SELECT pg_advisory_xact_lock(\(Self.lockClass), \(LockRole.migration.rawValue))", logger: logger)
            try await conn.query("""
                CREATE TABLE IF NOT EXISTS schema_migration(
                    version bigint PRIMARY KEY, name text NOT NULL, applied_at double precision NOT NULL)
                """, logger: logger)
            let applied = Set(try await Self.rows("SELECT version FROM schema_migration", on: conn, logger: logger).map { try $0.get("version", as: Int.self) })
            // Migrating a schema this binary does not know could damage what a newer version wrote.
            if let newest = applied.max(), newest > Self.knownVersion {
                throw PostgresIndexError("the PostgreSQL index is at schema version \(newest), newer than this Tessera knows "
                                         + "(\(Self.knownVersion)); upgrade this replica to the version that wrote it or a later one")
            }
            for m in Self.migrations where !m.statements.isEmpty && !applied.contains(m.version) {
                for sql in m.statements { try await conn.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
                try await conn.query("INSERT INTO schema_migration(version, name, applied_at) VALUES (\(m.version), \(m.name), \(Date().timeIntervalSince1970))",
                                     logger: logger)
            }
        }
    }

    /// The schema versions applied to the database, oldest first.
    public func schemaVersions() async throws -> [Int] {
        try await rows("SELECT version FROM schema_migration ORDER BY version").map { try $0.get("version") }
    }

    static let coreSchema = [
        #"CREATE TABLE setting(key text COLLATE "C" PRIMARY KEY, value text NOT NULL)"#,
        #"""
        CREATE TABLE image_set(
            id text COLLATE "C" PRIMARY KEY,
            study_instance_uid text COLLATE "C" NOT NULL,
            is_primary boolean NOT NULL,
            state text COLLATE "C" NOT NULL DEFAULT 'ACTIVE',
            latest_version bigint NOT NULL,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            patient_id text COLLATE "C" NOT NULL, patient_name text COLLATE "C" NOT NULL, patient_birth_date text COLLATE "C" NOT NULL,
            patient_sex text COLLATE "C" NOT NULL, study_date text COLLATE "C" NOT NULL, study_time text COLLATE "C" NOT NULL,
            accession_number text COLLATE "C" NOT NULL, study_id text COLLATE "C" NOT NULL, study_description text COLLATE "C" NOT NULL,
            referring_physician_name text COLLATE "C" NOT NULL, institution_name text COLLATE "C" NOT NULL,
            conflicts text NOT NULL DEFAULT '[]',
            patient_name_key text COLLATE "C" NOT NULL DEFAULT '',
            referring_physician_name_key text COLLATE "C" NOT NULL DEFAULT ''
        )
        """#,
        "CREATE INDEX image_set_study ON image_set(study_instance_uid)",
        // At most one primary set per study, enforced by the database whatever the writers do.
        "CREATE UNIQUE INDEX image_set_one_primary ON image_set(study_instance_uid) WHERE is_primary",
        "CREATE INDEX image_set_patient ON image_set(patient_id)",
        "CREATE INDEX image_set_accession ON image_set(accession_number)",
        "CREATE INDEX image_set_study_date ON image_set(study_date)",
        "CREATE INDEX image_set_updated ON image_set(updated_at)",
        "CREATE INDEX image_set_patient_name_key ON image_set(patient_name_key)",
        #"""
        CREATE TABLE image_set_version(
            image_set_id text COLLATE "C" NOT NULL REFERENCES image_set(id) ON DELETE CASCADE,
            version bigint NOT NULL,
            created_at double precision NOT NULL,
            reason text NOT NULL,
            instance_count bigint NOT NULL,
            PRIMARY KEY(image_set_id, version)
        )
        """#,
        #"""
        CREATE TABLE series(
            image_set_id text COLLATE "C" NOT NULL REFERENCES image_set(id) ON DELETE CASCADE,
            series_instance_uid text COLLATE "C" NOT NULL,
            modality text COLLATE "C" NOT NULL, series_number bigint, series_description text COLLATE "C" NOT NULL,
            body_part_examined text COLLATE "C" NOT NULL,
            performed_start_date text COLLATE "C" NOT NULL, performed_start_time text COLLATE "C" NOT NULL,
            PRIMARY KEY(image_set_id, series_instance_uid)
        )
        """#,
        "CREATE INDEX series_uid ON series(series_instance_uid)",
        "CREATE INDEX series_modality ON series(modality)",
        // An instance row belongs to the versions [added_version, removed_version).
        #"""
        CREATE TABLE instance(
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            image_set_id text COLLATE "C" NOT NULL REFERENCES image_set(id) ON DELETE CASCADE,
            study_instance_uid text COLLATE "C" NOT NULL,
            series_instance_uid text COLLATE "C" NOT NULL,
            sop_instance_uid text COLLATE "C" NOT NULL,
            sop_class_uid text COLLATE "C" NOT NULL,
            transfer_syntax_uid text COLLATE "C" NOT NULL,
            instance_number bigint, rows bigint, columns bigint, bits_allocated bigint,
            number_of_frames bigint,
            blob_id text COLLATE "C" NOT NULL,
            blob_size bigint NOT NULL,
            frames_in_place boolean NOT NULL,
            frames_blob_id text COLLATE "C",
            frames_blob_size bigint,
            frames_transfer_syntax_uid text COLLATE "C",
            added_version bigint NOT NULL,
            removed_version bigint,
            stored_at double precision NOT NULL
        )
        """#,
        "CREATE UNIQUE INDEX instance_current_sop ON instance(sop_instance_uid) WHERE removed_version IS NULL",
        "CREATE INDEX instance_set_series ON instance(image_set_id, series_instance_uid)",
        "CREATE INDEX instance_study ON instance(study_instance_uid)",
        "CREATE INDEX instance_series ON instance(series_instance_uid)",
        "CREATE INDEX instance_blob ON instance(blob_id)",
        "CREATE INDEX instance_frames_blob ON instance(frames_blob_id) WHERE frames_blob_id IS NOT NULL",
        "CREATE INDEX instance_current_study ON instance(study_instance_uid, series_instance_uid) WHERE removed_version IS NULL",
        "CREATE INDEX instance_current_set ON instance(image_set_id, series_instance_uid) WHERE removed_version IS NULL",
        #"""
        CREATE TABLE instance_metadata(
            instance_id bigint PRIMARY KEY REFERENCES instance(id) ON DELETE CASCADE,
            json bytea NOT NULL
        )
        """#,
        // WADO-RS series metadata, gzipped, for the latest version of each series; an empty gzip marks
        // a series pending a refresh (SeriesMetadata.swift in ImageSetStore).
        #"""
        CREATE TABLE series_metadata(
            image_set_id text COLLATE "C" NOT NULL REFERENCES image_set(id) ON DELETE CASCADE,
            series_instance_uid text COLLATE "C" NOT NULL,
            version bigint NOT NULL,
            gzip bytea NOT NULL,
            PRIMARY KEY(image_set_id, series_instance_uid)
        )
        """#,
        #"CREATE INDEX series_metadata_pending ON series_metadata(image_set_id) WHERE length(gzip) = 0"#,
        #"""
        CREATE TABLE frame(
            instance_id bigint NOT NULL REFERENCES instance(id) ON DELETE CASCADE,
            number bigint NOT NULL,
            "offset" bigint NOT NULL,
            length bigint NOT NULL,
            fragments text,
            PRIMARY KEY(instance_id, number)
        )
        """#,
    ]
}
