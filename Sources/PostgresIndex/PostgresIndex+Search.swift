import DICOMCore
import Foundation
import ImageSetStore
import PostgresNIO

/// QIDO-RS on PostgreSQL: the SQL of SQLiteIndex+Search.swift, answering alike (PS3.18 §8.3.4). Where the
/// two dialects differ: DICOM's `*` and `?` become LIKE's `%` and `_` (LIKE is case-sensitive like GLOB,
/// and matches the folded name keys, so names match case-insensitively); NULLs sort first as in SQLite.
/// Text compares and sorts byte-wise as SQLite's BINARY does, because migration 1 makes the columns COLLATE "C"
/// (whatever the database's own collation), which also lets `LIKE 'smith%'` range over a plain index.
extension PostgresIndex {
    public func search(_ q: SearchQuery) async throws -> [SearchRow] {
        try await client.withConnection { connection in
            try await Self.searchRows(q, on: connection, logger: logger).map { try Self.searchRow($0, level: q.level) }
        }
    }

    /// The statement and its binds, apart from running it (the tests EXPLAIN it).
    static func searchSQL(_ q: SearchQuery) -> (String, PostgresBindings) {
        var b = SQLBinds()
        // Only active image sets, and of those the ones the scope sees (primary sets unless one is named):
        // a study is matched and shown by its primary set's attributes alone.
        var clauses = ["s.state = 'ACTIVE'", scopeClause(q.scope, imageSet: "s", &b)]
        for (tag, condition) in q.conditions.sorted(by: { $0.key < $1.key }) {
            guard let (column, kind) = SearchQuery.matchable[tag] else { continue }
            clauses.append(clause(column: column, kind: kind, condition: condition, fuzzy: q.fuzzyMatching, &b))
        }
        let select: String
        // Each level selects its page first, on the table holding the level's rows, then counts for that page only.
        switch q.level {
        case .study:
            // A study's counts, modalities and representative instance are its image set's stored summary
            // (PostgresIndex+StudySummary.swift): counting each result's ~100 current instances and their series'
            // modalities took 5-7 ms of a 100-study page at 1M instances.
            if let study = q.studyInstanceUID { clauses.append("s.study_instance_uid = \(b.add(study))") }
            select = """
                SELECT s.id, \(studyColumns), s.representative_instance_id AS rep, s.current_series AS n_series,
                  s.current_instances AS n_instances, s.current_modalities AS modalities
                FROM image_set s WHERE \(clauses.joined(separator: " AND "))
                ORDER BY s.study_date DESC, s.study_instance_uid, s.id LIMIT \(b.add(q.limit)) OFFSET \(b.add(q.offset))
                """
        case .series:
            clauses.append("""
                EXISTS (SELECT 1 FROM instance i WHERE i.image_set_id = se.image_set_id
                        AND i.series_instance_uid = se.series_instance_uid AND i.removed_version IS NULL)
                """)
            if let study = q.studyInstanceUID { clauses.append("s.study_instance_uid = \(b.add(study))") }
            if let series = q.seriesInstanceUID { clauses.append("se.series_instance_uid = \(b.add(series))") }
            select = """
                WITH page AS (
                  SELECT \(studyColumns), \(seriesColumns) FROM series se JOIN image_set s ON s.id = se.image_set_id
                  WHERE \(clauses.joined(separator: " AND "))
                  ORDER BY s.study_instance_uid, se.series_number NULLS FIRST, se.series_instance_uid,
                    se.image_set_id
                  LIMIT \(b.add(q.limit)) OFFSET \(b.add(q.offset)))
                SELECT page.*, c.rep, c.n_series_instances
                FROM page CROSS JOIN LATERAL (
                  SELECT MIN(id) AS rep, COUNT(*)::bigint AS n_series_instances FROM instance
                  WHERE image_set_id = page.image_set_id AND series_instance_uid = page.series_instance_uid AND removed_version IS NULL) c
                ORDER BY page.study_instance_uid, page.series_number NULLS FIRST, page.series_instance_uid,
                  page.image_set_id
                """
        case .instance:
            clauses.append("i.removed_version IS NULL")
            if let study = q.studyInstanceUID { clauses.append("i.study_instance_uid = \(b.add(study))") }
            if let series = q.seriesInstanceUID { clauses.append("i.series_instance_uid = \(b.add(series))") }
            // The page comes off instance_current_order, joined to its image set; the series row joins after
            // unless a condition needs it: joined on two columns inside the page, it made the planner guess a
            // hundred matches in a million and sort them all (31 ms instead of 1 for the first page at 1M instances).
            let needsSeries = q.conditions.keys.contains { SearchQuery.matchable[$0]?.column.hasPrefix("se.") == true }
            func order(_ t: String) -> String {
                "\(t).study_instance_uid, \(t).series_instance_uid, \(t).instance_number NULLS FIRST, \(t).sop_instance_uid"
            }
            select = """
                WITH page AS (
                  SELECT i.id, i.image_set_id, i.study_instance_uid, i.series_instance_uid, i.sop_instance_uid, i.sop_class_uid,
                    i.instance_number, i.rows, i.columns, i.bits_allocated, i.number_of_frames
                  FROM instance i JOIN image_set s ON s.id = i.image_set_id
                  \(needsSeries ? "JOIN series se ON se.image_set_id = i.image_set_id AND se.series_instance_uid = i.series_instance_uid" : "")
                  WHERE \(clauses.joined(separator: " AND "))
                  ORDER BY \(order("i"))
                  LIMIT \(b.add(q.limit)) OFFSET \(b.add(q.offset)))
                SELECT \(studyColumns), \(seriesColumns), page.sop_instance_uid, page.sop_class_uid, page.instance_number, page.rows,
                  page.columns, page.bits_allocated, page.number_of_frames, page.id AS rep
                FROM page JOIN image_set s ON s.id = page.image_set_id
                JOIN series se ON se.image_set_id = page.image_set_id AND se.series_instance_uid = page.series_instance_uid
                ORDER BY \(order("page"))
                """
        }
        return (select, b.bindings)
    }

    static let studyColumns = """
        s.study_instance_uid, s.patient_name, s.patient_id, s.patient_birth_date, s.patient_sex, s.study_date, s.study_time,
        s.accession_number, s.study_id, s.study_description, s.referring_physician_name, s.institution_name
        """
    static let seriesColumns = """
        se.image_set_id, se.series_instance_uid, se.modality, se.series_description, se.body_part_examined,
        se.performed_start_date, se.performed_start_time, se.series_number
        """

    /// The condition (binds added to `b`) selecting the image sets `scope` sees, on the image_set table aliased `imageSet`.
    static func scopeClause(_ scope: ImageSetScope, imageSet: String, _ b: inout SQLBinds) -> String {
        switch scope {
        case .primary: "\(imageSet).is_primary"
        case .imageSet(let id): "\(imageSet).id = \(b.add(id))"
        }
    }

    static func clause(column: String, kind: SearchQuery.ColumnKind, condition: SearchQuery.Condition, fuzzy: Bool,
                       _ b: inout SQLBinds) -> String {
        if kind == .modalitiesInStudy {
            let values = SearchQuery.modalities(condition)
            // Uncorrelated, so it runs once; the image set's own series (a conflicting set's modality is not the study's).
            return "s.id IN (SELECT m.image_set_id FROM series m WHERE m.modality = ANY(\(b.add(values))::text[]) AND m.current_instances > 0)"
        }
        switch condition {
        case .anyOf(let values):
            return "\(column) = ANY(\(b.add(values))::text[])"
        case .range(let lo, let hi):
            // Empty values never fall in a range.
            var parts = ["\(column) <> ''"]
            if let lo { parts.append("\(column) >= \(b.add(lo))") }
            if let hi { parts.append("\(column) <= \(b.add(hi + "\u{FFFF}"))") }
            return "(" + parts.joined(separator: " AND ") + ")"
        case .equals(let value, let wildcard):
            switch kind {
            case .integer:
                return "\(column) = \(b.add(Int(value) ?? Int.min))"
            case .personName:
                // The column is the folded key and the value is folded alike, so case-sensitive LIKE matches
                // case-insensitively in every script (SearchQuery.personNameKey).
                let key = SearchQuery.personNameKey(value)
                guard fuzzy else { return "\(column) LIKE \(b.add(likePattern(key)))" }
                // Fuzzy: every word of the value (split at ^, =, \ and spaces) begins some word of the name, in any order.
                let words = key.split(whereSeparator: { "^=\\ ".contains($0) }).map { "% " + likePattern(String($0)) + "%" }
                guard !words.isEmpty else { return "true" }
                let spaced = "(' ' || translate(\(column), '^=\\', '   '))"
                return "(" + words.map { "\(spaced) LIKE \(b.add($0))" }.joined(separator: " AND ") + ")"
            default:
                return wildcard ? "\(column) LIKE \(b.add(likePattern(value)))" : "\(column) = \(b.add(value))"
            }
        }
    }

    /// DICOM wildcards (PS3.4 C.2.2.2.4: `*` any run, `?` one character) as a LIKE pattern; LIKE's own
    /// `%`, `_` and escape `\` in the value are literal.
    static func likePattern(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\", "%", "_": out.append("\\"); out.append(c)
            case "*": out.append("%")
            case "?": out.append("_")
            default: out.append(c)
            }
        }
        return out
    }

    static func searchRow(_ row: PostgresRandomAccessRow, level: SearchQuery.Level) throws -> SearchRow {
        func text(_ column: String) throws -> String { try row[column].decode(String?.self) ?? "" }
        func int(_ column: String) throws -> Int? { try row[column].decode(Int?.self) }
        var r = SearchRow()
        r.studyInstanceUID = try text("study_instance_uid")
        r.representativeInstanceID = try row["rep"].decode(Int64?.self) ?? 0
        let studyColumns: [(UInt32, String)] = [
            (0x0010_0010, "patient_name"), (0x0010_0020, "patient_id"), (0x0010_0030, "patient_birth_date"),
            (0x0010_0040, "patient_sex"), (0x0008_0020, "study_date"), (0x0008_0030, "study_time"),
            (0x0008_0050, "accession_number"), (0x0020_0010, "study_id"), (0x0008_1030, "study_description"),
            (0x0008_0090, "referring_physician_name"), (0x0008_0080, "institution_name"),
        ]
        for (tag, column) in studyColumns { r.values[Tag(tag)] = try text(column) }
        r.values[Tag(0x0020_000D)] = r.studyInstanceUID
        switch level {
        case .study:
            r.numberOfStudyRelatedSeries = try int("n_series")
            r.numberOfStudyRelatedInstances = try int("n_instances")
            r.modalitiesInStudy = (try row["modalities"].decode([String]?.self) ?? []).sorted()
        case .series, .instance:
            r.seriesInstanceUID = try text("series_instance_uid")
            r.values[Tag(0x0020_000E)] = r.seriesInstanceUID
            for (tag, column) in [(UInt32(0x0008_0060), "modality"), (0x0008_103E, "series_description"), (0x0018_0015, "body_part_examined"),
                                  (0x0040_0244, "performed_start_date"), (0x0040_0245, "performed_start_time")] {
                r.values[Tag(tag)] = try text(column)
            }
            if let n = try int("series_number") { r.values[Tag(0x0020_0011)] = String(n) }
            if level == .series {
                r.numberOfSeriesRelatedInstances = try int("n_series_instances")
            } else {
                r.sopInstanceUID = try text("sop_instance_uid")
                r.values[Tag(0x0008_0018)] = r.sopInstanceUID
                r.values[Tag(0x0008_0016)] = try text("sop_class_uid")
                for (tag, column) in [(UInt32(0x0020_0013), "instance_number"), (0x0028_0010, "rows"), (0x0028_0011, "columns"),
                                      (0x0028_0100, "bits_allocated"), (0x0028_0008, "number_of_frames")] {
                    if let n = try int(column) { r.values[Tag(tag)] = String(n) }
                }
            }
        }
        return r
    }
}

/// Binds for a statement built piece by piece: `add` appends a value and returns its placeholder.
struct SQLBinds {
    var bindings = PostgresBindings()
    mutating func add(_ value: some PostgresDynamicTypeEncodable) -> String {
        bindings.append(value)
        return "$\(bindings.count)"
    }
}

extension PostgresIndex {
    /// Indexes for searches at scale, beyond those SQLite's schema has (migration 2). An instance search
    /// pages in its ORDER BY's order straight off `instance_current_order` (no sort of every current instance);
    /// a study search of the whole index reads its page off `image_set_primary_order`. (`instance_current_set_id`
    /// covers migration 1's `instance_current_set`, which could take its INCLUDE instead while migration 1 is unshipped.)
    static let searchIndexes: [String] = [
        """
        CREATE INDEX instance_current_order ON instance(study_instance_uid, series_instance_uid, instance_number NULLS FIRST,
            sop_instance_uid) WHERE removed_version IS NULL
        """,
        "CREATE INDEX image_set_primary_order ON image_set(study_date DESC, study_instance_uid, id) WHERE is_primary AND state = 'ACTIVE'",
        // The per-result counts and modalities of a study or series search, index-only: with the heap read
        // for `id`, a 100-study page at 1M instances took 16 ms; 9.5 ms with these.
        "CREATE INDEX instance_current_set_id ON instance(image_set_id, series_instance_uid) INCLUDE (id) WHERE removed_version IS NULL",
        "CREATE INDEX series_set_modality ON series(image_set_id, series_instance_uid) INCLUDE (modality)",
    ]
}
