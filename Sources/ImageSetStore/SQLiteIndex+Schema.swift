import GRDB

extension SQLiteIndex {
    /// Migrations are append-only: a shipped migration is never edited, changes come as new ones.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE setting(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);

                CREATE TABLE image_set(
                    id TEXT PRIMARY KEY NOT NULL,
                    study_instance_uid TEXT NOT NULL,
                    is_primary INTEGER NOT NULL,
                    state TEXT NOT NULL DEFAULT 'ACTIVE',
                    latest_version INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    patient_id TEXT NOT NULL, patient_name TEXT NOT NULL, patient_birth_date TEXT NOT NULL,
                    patient_sex TEXT NOT NULL, study_date TEXT NOT NULL, study_time TEXT NOT NULL,
                    accession_number TEXT NOT NULL, study_id TEXT NOT NULL, study_description TEXT NOT NULL,
                    referring_physician_name TEXT NOT NULL, institution_name TEXT NOT NULL,
                    conflicts TEXT NOT NULL DEFAULT '[]'
                );
                CREATE INDEX image_set_study ON image_set(study_instance_uid);
                CREATE UNIQUE INDEX image_set_one_primary ON image_set(study_instance_uid) WHERE is_primary = 1;
                CREATE INDEX image_set_patient ON image_set(patient_id);
                CREATE INDEX image_set_accession ON image_set(accession_number);
                CREATE INDEX image_set_study_date ON image_set(study_date);
                CREATE INDEX image_set_updated ON image_set(updated_at);

                CREATE TABLE image_set_version(
                    image_set_id TEXT NOT NULL REFERENCES image_set(id) ON DELETE CASCADE,
                    version INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    reason TEXT NOT NULL,
                    instance_count INTEGER NOT NULL,
                    PRIMARY KEY(image_set_id, version)
                ) WITHOUT ROWID;

                CREATE TABLE series(
                    image_set_id TEXT NOT NULL REFERENCES image_set(id) ON DELETE CASCADE,
                    series_instance_uid TEXT NOT NULL,
                    modality TEXT NOT NULL, series_number INTEGER, series_description TEXT NOT NULL,
                    body_part_examined TEXT NOT NULL,
                    performed_start_date TEXT NOT NULL, performed_start_time TEXT NOT NULL,
                    PRIMARY KEY(image_set_id, series_instance_uid)
                ) WITHOUT ROWID;
                CREATE INDEX series_uid ON series(series_instance_uid);
                CREATE INDEX series_modality ON series(modality);

                -- An instance row belongs to the versions [added_version, removed_version).
                CREATE TABLE instance(
                    id INTEGER PRIMARY KEY,
                    image_set_id TEXT NOT NULL REFERENCES image_set(id) ON DELETE CASCADE,
                    study_instance_uid TEXT NOT NULL,
                    series_instance_uid TEXT NOT NULL,
                    sop_instance_uid TEXT NOT NULL,
                    sop_class_uid TEXT NOT NULL,
                    transfer_syntax_uid TEXT NOT NULL,
                    instance_number INTEGER, rows INTEGER, columns INTEGER, bits_allocated INTEGER,
                    number_of_frames INTEGER,
                    blob_id TEXT NOT NULL,
                    blob_size INTEGER NOT NULL,
                    frames_in_place INTEGER NOT NULL,
                    -- Set when frames are served from a copy transcoded at ingest (blob_id keeps the original).
                    frames_blob_id TEXT,
                    frames_blob_size INTEGER,
                    frames_transfer_syntax_uid TEXT,
                    metadata BLOB NOT NULL,
                    added_version INTEGER NOT NULL,
                    removed_version INTEGER,
                    stored_at REAL NOT NULL
                );
                CREATE UNIQUE INDEX instance_current_sop ON instance(sop_instance_uid) WHERE removed_version IS NULL;
                CREATE INDEX instance_set_series ON instance(image_set_id, series_instance_uid);
                CREATE INDEX instance_study ON instance(study_instance_uid);
                CREATE INDEX instance_series ON instance(series_instance_uid);
                CREATE INDEX instance_blob ON instance(blob_id);
                CREATE INDEX instance_frames_blob ON instance(frames_blob_id) WHERE frames_blob_id IS NOT NULL;

                -- WADO-RS series metadata (a JSON array of the instances' DICOM JSON), gzipped, for the
                -- latest version of each series; rewritten by every commit that touches the series.
                CREATE TABLE series_metadata(
                    image_set_id TEXT NOT NULL REFERENCES image_set(id) ON DELETE CASCADE,
                    series_instance_uid TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    gzip BLOB NOT NULL,
                    PRIMARY KEY(image_set_id, series_instance_uid)
                ) WITHOUT ROWID;

                CREATE TABLE frame(
                    instance_id INTEGER NOT NULL REFERENCES instance(id) ON DELETE CASCADE,
                    number INTEGER NOT NULL,
                    offset INTEGER NOT NULL,
                    length INTEGER NOT NULL,
                    fragments TEXT,
                    PRIMARY KEY(instance_id, number)
                ) WITHOUT ROWID;
                """)
        }
        // The DICOM JSON moves to its own table: behind a 4 KB BLOB, every column after it cost an
        // overflow-page read, so counting current instances read every instance's JSON.
        m.registerMigration("v2") { db in
            try db.execute(sql: """
                CREATE TABLE instance_metadata(
                    instance_id INTEGER PRIMARY KEY REFERENCES instance(id) ON DELETE CASCADE,
                    json BLOB NOT NULL
                );
                INSERT INTO instance_metadata(instance_id, json) SELECT id, metadata FROM instance;
                ALTER TABLE instance DROP COLUMN metadata;
                CREATE INDEX instance_current_study ON instance(study_instance_uid, series_instance_uid) WHERE removed_version IS NULL;
                """)
        }
        // Person names get folded keys (SearchQuery.personNameKey) to match on: SQLite's LIKE
        // folds ASCII letters only. A stored column rather than a registered SQL function, so
        // that a search never calls into Swift per row and `DOE*` is a range of the key's index
        // (GLOB on a BINARY column); existing rows are backfilled here.
        m.registerMigration("v3") { db in
            try db.execute(sql: """
                ALTER TABLE image_set ADD COLUMN patient_name_key TEXT NOT NULL DEFAULT '';
                ALTER TABLE image_set ADD COLUMN referring_physician_name_key TEXT NOT NULL DEFAULT '';
                """)
            let update = try db.makeStatement(sql: "UPDATE image_set SET patient_name_key = ?, referring_physician_name_key = ? WHERE rowid = ?")
            var last: Int64 = 0
            while true {
                // In pages, so a large index is not read into memory at once.
                let rows = try Row.fetchAll(db, sql: """
                    SELECT rowid, patient_name, referring_physician_name FROM image_set WHERE rowid > ? ORDER BY rowid LIMIT 10000
                    """, arguments: [last])
                guard let end = rows.last else { break }
                for r in rows {
                    try update.execute(arguments: [SearchQuery.personNameKey(r["patient_name"]),
                                                   SearchQuery.personNameKey(r["referring_physician_name"]), r["rowid"] as Int64])
                }
                last = end["rowid"]
            }
            try db.execute(sql: "CREATE INDEX image_set_patient_name_key ON image_set(patient_name_key)")
        }
        // Searches count and pick instances per image set (a study's primary set, not every set of
        // the study): a partial index of current instances by set covers those subqueries (removed_version
        // is in it so that SQLite need not read the row to test it), where instance_set_series made each
        // one read every instance row. A study search with 25 results: 3.5 ms of SQL before, 1.6 ms after.
        m.registerMigration("v4") { db in
            try db.execute(sql: """
                CREATE INDEX instance_current_set ON instance(image_set_id, series_instance_uid, removed_version) WHERE removed_version IS NULL
                """)
        }
        // API keys (only their SHA-256) and, per principal, the instances a gateway stored, which are
        // all it may read back (Docs/security.md). `principal_kind` keeps a key and a token subject of
        // the same name apart.
        m.registerMigration("v5") { db in
            try db.execute(sql: """
                CREATE TABLE api_key(
                    name TEXT PRIMARY KEY NOT NULL,
                    role TEXT NOT NULL,
                    key_sha256 BLOB NOT NULL UNIQUE,
                    created_at REAL NOT NULL,
                    revoked_at REAL
                );
                CREATE TABLE principal_stored_instance(
                    principal_kind TEXT NOT NULL,
                    principal_name TEXT NOT NULL,
                    sop_instance_uid TEXT NOT NULL,
                    stored_at REAL NOT NULL,
                    PRIMARY KEY(principal_kind, principal_name, sop_instance_uid)
                ) WITHOUT ROWID;
                """)
        }
        // The audit trail (SQLiteIndex+Audit.swift).
        m.registerMigration("v6", migrate: migrateAuditTrail)
        // The change feed (SQLiteIndex+ChangeFeed.swift).
        m.registerMigration("v7", migrate: migrateChangeFeed)
        // Webhook subscriptions and their delivery state (SQLiteIndex+Subscriptions.swift).
        m.registerMigration("v8", migrate: migrateSubscriptions)
        // Stored study summaries: a study search reads its counts and modalities off the image set row
        // (SQLiteIndex+StudySummary.swift).
        m.registerMigration("v9", migrate: migrateStudySummaries)
        return m
    }
}
