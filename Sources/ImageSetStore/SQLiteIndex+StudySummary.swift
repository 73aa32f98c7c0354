import GRDB

/// What a study search returns per image set beyond its attributes — NumberOfStudyRelatedSeries,
/// NumberOfStudyRelatedInstances, ModalitiesInStudy and the representative instance (the lowest
/// current row id, whose JSON answers `includefield`) — stored on the image set row, so that a search
/// reads one row per result instead of walking each result's current instances (Docs/store.md,
/// "Study summaries"). Each series row counts its set's current instances of the series; a
/// transaction that changes which instances are current applies its per-series changes and then
/// rewrites the summary of each image set it versioned from those series rows, in the same transaction.
extension SQLiteIndex {
    /// Migration v9: the columns, and the summaries of an existing index.
    static func migrateStudySummaries(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE series ADD COLUMN current_instances INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE image_set ADD COLUMN current_series INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE image_set ADD COLUMN current_instances INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE image_set ADD COLUMN current_modalities TEXT NOT NULL DEFAULT '';
            ALTER TABLE image_set ADD COLUMN representative_instance_id INTEGER;
            UPDATE series SET current_instances = (
                SELECT COUNT(*) FROM instance i WHERE i.image_set_id = series.image_set_id
                AND i.series_instance_uid = series.series_instance_uid AND i.removed_version IS NULL);
            """)
        // No representative yet, so each set's is looked up (the statement's ELSE).
        try db.execute(sql: summarySQL(where: "1"), arguments: [DatabaseValue.null])
    }

    /// Rewrites the summary of the image sets `condition` selects from their series rows. The
    /// representative stays unless it left the current instances (then the lowest current id is
    /// looked up); the first argument, the lowest id the transaction added to the set, may lower it.
    static func summarySQL(where condition: String) -> String {
        """
        UPDATE image_set SET
            current_series = (SELECT COUNT(*) FROM series x WHERE x.image_set_id = image_set.id AND x.current_instances > 0),
            current_instances = (SELECT COALESCE(SUM(x.current_instances), 0) FROM series x WHERE x.image_set_id = image_set.id),
            current_modalities = (SELECT COALESCE(GROUP_CONCAT(DISTINCT x.modality), '') FROM series x
                                  WHERE x.image_set_id = image_set.id AND x.current_instances > 0 AND x.modality != ''),
            representative_instance_id = CASE
                WHEN EXISTS (SELECT 1 FROM instance i WHERE i.id = image_set.representative_instance_id AND i.removed_version IS NULL)
                THEN MIN(representative_instance_id, COALESCE(?1, representative_instance_id))
                ELSE (SELECT MIN(i.id) FROM instance i WHERE i.image_set_id = image_set.id AND i.removed_version IS NULL) END
        WHERE \(condition)
        """
    }
}

extension SQLiteIndex.Batch {
    /// Notes an instance row becoming current (`id`, when inserted) or leaving the current ones.
    mutating func counted(imageSet: String, series: String, by delta: Int, id: Int64? = nil) {
        seriesDelta[[imageSet, series], default: 0] += delta
        if let id { firstAdded[imageSet] = min(firstAdded[imageSet] ?? id, id) }
    }

    /// The per-series counts, then the summary of every image set the batch versioned.
    func writeSummaries() throws {
        for (key, delta) in seriesDelta.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) where delta != 0 {
            try db.cachedStatement(sql: """
                UPDATE series SET current_instances = current_instances + ? WHERE image_set_id = ? AND series_instance_uid = ?
                """).execute(arguments: [delta, key[0], key[1]])
        }
        let summary = try db.cachedStatement(sql: SQLiteIndex.summarySQL(where: "id = ?2"))
        for setID in newVersion.keys.sorted() {
            try summary.execute(arguments: [firstAdded[setID], setID])
        }
    }
}
