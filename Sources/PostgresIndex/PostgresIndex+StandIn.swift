import Foundation
import ImageSetStore
import Logging
import PostgresNIO

// TEMPORARY (pgquery): a minimal stand-in for pgcore's `PostgresIndex` (PostgresIndex.swift,
// PostgresIndex+Schema.swift), the same names and a copy of its migration 1 as it stood in pgcore's
// worktree, so that the search, audit and key halves build and are tested before pgcore's struct is on
// main. Delete this file when merging pgcore's. A trial merge of pgcore at 6a5bef0 built and passed
// PostgresQueryTests with: this file deleted, this branch's PostgresIndex+Audit.swift over pgcore's
// placeholder, pgcore's ImageSetSummary.init (the same as this branch's) plus this branch's `public var sql`
// of ImageSetSort, both store.md sections; pgcore's testMigrationsApplyOnceWhenTwoReplicasStartTogether then
// expects versions [1, 2] (migration 2 is no longer empty).
public final class PostgresIndex: Sendable {
    let client: PostgresClient
    let logger: Logger
    let runner: Task<Void, Never>

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
        runner = Task { await client.run() }
    }

    public static func connect(url: String, password: String? = nil, logger: Logger) async throws -> PostgresIndex {
        guard let c = URLComponents(string: url), let host = c.host, let user = c.user else { throw PostgresIndexError("bad URL \(url)") }
        let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        let config = PostgresClient.Configuration(host: host, port: c.port ?? 5432, username: user, password: password,
                                                  database: path.isEmpty ? user : path, tls: .disable)
        let index = PostgresIndex(client: PostgresClient(configuration: config, backgroundLogger: logger), logger: logger)
        try await index.migrate()
        return index
    }

    public func close() async {
        runner.cancel()
        await runner.value
    }

    deinit { runner.cancel() }

    static func rows(_ query: PostgresQuery, on conn: PostgresConnection, logger: Logger) async throws -> [PostgresRandomAccessRow] {
        var out: [PostgresRandomAccessRow] = []
        for try await row in try await conn.query(query, logger: logger) { out.append(row.makeRandomAccess()) }
        return out
    }

    func rows(_ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        try await client.withConnection { try await Self.rows(query, on: $0, logger: logger) }
    }

    func write<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withTransaction(logger: logger) { try await body($0) }
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.commitError ?? error.beginError ?? error
        }
    }

    /// An image set row with its current counts (SQLiteIndex.summary).
    func summary(_ row: PostgresRandomAccessRow, on conn: PostgresConnection) async throws -> ImageSetSummary {
        let id: String = try row.get("id")
        let counts = try await Self.rows("""
            SELECT COUNT(DISTINCT series_instance_uid) AS series, COUNT(*) AS instances,
                   COALESCE(SUM(COALESCE(number_of_frames, CASE WHEN rows IS NULL THEN 0 ELSE 1 END)), 0)::bigint AS frames
            FROM instance WHERE image_set_id = \(id) AND removed_version IS NULL
            """, on: conn, logger: logger).first
        let conflicts = (try? JSONDecoder().decode([AttributeConflict].self, from: Data((try row.get("conflicts", as: String.self)).utf8))) ?? []
        return ImageSetSummary(
            id: id, studyInstanceUID: try row.get("study_instance_uid"), isPrimary: try row.get("is_primary"), state: try row.get("state"),
            version: try row.get("latest_version"), createdAt: Date(timeIntervalSince1970: try row.get("created_at")),
            updatedAt: Date(timeIntervalSince1970: try row.get("updated_at")), attributes: try Self.attributes(row),
            seriesCount: try counts?.get("series") ?? 0, instanceCount: try counts?.get("instances") ?? 0,
            frameCount: try counts?.get("frames") ?? 0, conflicts: conflicts)
    }

    static func attributes(_ row: PostgresRandomAccessRow) throws -> InstanceAttributes {
        var a = InstanceAttributes()
        a.patientID = try row.get("patient_id"); a.patientName = try row.get("patient_name"); a.patientBirthDate = try row.get("patient_birth_date")
        a.patientSex = try row.get("patient_sex"); a.studyDate = try row.get("study_date"); a.studyTime = try row.get("study_time")
        a.accessionNumber = try row.get("accession_number"); a.studyID = try row.get("study_id")
        a.studyDescription = try row.get("study_description")
        a.referringPhysicianName = try row.get("referring_physician_name"); a.institutionName = try row.get("institution_name")
        return a
    }

    func migrate() async throws {
        try await write { conn in
            try await conn.query("SELECT pg_advisory_xact_lock(1, 0)", logger: logger)
            let exists = try await Self.rows("SELECT to_regclass('image_set') IS NOT NULL AS e", on: conn, logger: logger)[0].get("e", as: Bool.self)
            if exists { return }
            for sql in Self.coreSchema + Self.accessAndAuditStatements { try await conn.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
        }
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

public struct PostgresIndexError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension PostgresRandomAccessRow {
    func get<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        try self[column].decode(T.self)
    }
}
