import ImageSetStore
import PostgresNIO

/// Stored study summaries (SQLiteIndex+StudySummary.swift, Docs/store.md "Study summaries"): each
/// series row counts its set's current instances of the series, and each image set row holds its
/// NumberOfStudyRelatedSeries, NumberOfStudyRelatedInstances, ModalitiesInStudy and representative
/// instance (the lowest current row id), which a study search reads instead of walking every
/// result's instances: 5–7 ms of a 100-study page at 1,000,000 instances. `Batch.writeAndVersion` keeps them in
/// the transaction that changes which instances are current, under the image set row locks every
/// writer of the set takes first (`version(for:)`, `readTogether`).
extension PostgresIndex {
    /// Migration 6: the columns, and the summaries of an existing index.
    static let studySummarySchema = [
        "ALTER TABLE series ADD COLUMN current_instances bigint NOT NULL DEFAULT 0",
        """
        ALTER TABLE image_set ADD COLUMN current_series bigint NOT NULL DEFAULT 0,
            ADD COLUMN current_instances bigint NOT NULL DEFAULT 0,
            ADD COLUMN current_modalities text[] NOT NULL DEFAULT '{}',
            ADD COLUMN representative_instance_id bigint
        """,
        """
        UPDATE series x SET current_instances = c.n
        FROM (SELECT image_set_id, series_instance_uid, count(*) AS n FROM instance WHERE removed_version IS NULL
              GROUP BY image_set_id, series_instance_uid) c
        WHERE x.image_set_id = c.image_set_id AND x.series_instance_uid = c.series_instance_uid
        """,
        writerSchemaCheck,
        "CREATE TRIGGER instance_writer_schema BEFORE INSERT OR UPDATE ON instance FOR EACH STATEMENT EXECUTE FUNCTION tessera_writer_schema()",
        // Sets with no series row keep the defaults, which are right for them (no current instance).
        """
        UPDATE image_set s SET current_series = a.n_series, current_instances = a.n_instances, current_modalities = a.modalities,
            representative_instance_id = (SELECT min(i.id) FROM instance i WHERE i.image_set_id = s.id AND i.removed_version IS NULL)
        FROM (\(seriesTotals) FROM series x GROUP BY x.image_set_id) a
        WHERE s.id = a.image_set_id
        """,
    ]

    /// Refuses a change of instance rows from a writer that does not keep the summaries: a replica of an
    /// older Tessera that was already running when another one applied this migration (a starting one
    /// refuses the newer schema). Writers of this version say so in their lock statement (`lockStudies`).
    /// Once per statement, not per row.
    static let writerSchemaCheck = """
        CREATE FUNCTION tessera_writer_schema() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF COALESCE(NULLIF(current_setting('tessera.writer_schema', true), ''), '0')::int < 6 THEN
                RAISE EXCEPTION 'this Tessera is older than the PostgreSQL index''s schema (6, stored study summaries): upgrade this replica'
                    USING ERRCODE = '55000';
            END IF;
            RETURN NULL;
        END $$
        """

    /// A set's summary from its series rows (`x`, with the count as `x.current_instances`), grouped by `x.image_set_id`.
    static let seriesTotals = """
        SELECT x.image_set_id, count(*) FILTER (WHERE x.current_instances > 0) AS n_series,
            COALESCE(sum(x.current_instances), 0)::bigint AS n_instances,
            COALESCE(array_agg(DISTINCT x.modality) FILTER (WHERE x.current_instances > 0 AND x.modality <> ''), '{}') AS modalities
        """
}

extension PostgresIndex.Batch {
    /// Notes an instance row becoming current (`id`, once known) or leaving the current ones.
    mutating func counted(imageSet: String, series: String, by delta: Int, id: Int64? = nil) {
        seriesDelta[PostgresIndex.SeriesKey(imageSet: imageSet, series: series), default: 0] += delta
        if let id { noteAdded(imageSet: imageSet, id: id) }
    }

    mutating func noteAdded(imageSet: String, id: Int64) {
        firstAdded[imageSet] = min(firstAdded[imageSet] ?? id, id)
    }

    /// The arrays `finish` sends: each changed series' delta, and per versioned set (in `ids`' order)
    /// the lowest row id the batch added to it (`absentNumber` for none).
    func summaryBinds(ids: [String]) -> (sets: [String], series: [String], deltas: [Int64], firstAdded: [Int64]) {
        let changed = seriesDelta.filter { $0.value != 0 }.sorted { ($0.key.imageSet, $0.key.series) < ($1.key.imageSet, $1.key.series) }
        return (changed.map(\.key.imageSet), changed.map(\.key.series), changed.map { Int64($0.value) },
                ids.map { firstAdded[$0] ?? PostgresIndex.absentNumber })
    }
}
