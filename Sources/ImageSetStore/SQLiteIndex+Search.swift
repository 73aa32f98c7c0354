import DICOMCore
import GRDB

extension SQLiteIndex {
    /// QIDO-RS from the index alone: typed columns, counts by SQL, never a blob.
    public func search(_ q: SearchQuery) throws -> [SearchRow] {
        // Only active image sets are searched, at every level, and of those only the ones the scope
        // sees (primary sets unless one is named): a study is matched and shown by its primary set's
        // attributes alone, so an instance of another patient never lends the study its Patient ID.
        let (scopeSQL, scopeArgs) = Self.scopeClause(q.scope, imageSet: "s")
        var clauses = ["s.state = 'ACTIVE'", scopeSQL]
        var args: [any DatabaseValueConvertible] = scopeArgs
        for (tag, condition) in q.conditions.sorted(by: { $0.key < $1.key }) {
            guard let (column, kind) = SearchQuery.matchable[tag] else { continue }
            let (sql, values) = Self.clause(column: column, kind: kind, condition: condition, fuzzy: q.fuzzyMatching)
            clauses.append(sql)
            args += values
        }
        let select: String
        // Each level selects its page first (matching on the table that holds the level's own rows,
        // so a search never walks every instance), then counts for that page only.
        switch q.level {
        case .study:
            // One row per image set in scope; its counts, modalities and representative instance are
            // the set's stored summary (SQLiteIndex+StudySummary.swift), not a walk of its instances.
            if let study = q.studyInstanceUID { clauses.append("s.study_instance_uid = ?"); args.append(study) }
            select = """
                SELECT s.*, s.representative_instance_id AS rep, s.current_series AS n_series, s.current_instances AS n_instances,
                  s.current_modalities AS modalities
                FROM image_set s WHERE \(clauses.joined(separator: " AND "))
                ORDER BY s.study_date DESC, s.study_instance_uid, s.id LIMIT ? OFFSET ?
                """
        case .series:
            clauses.append("""
                EXISTS (SELECT 1 FROM instance i WHERE i.image_set_id = se.image_set_id
                        AND i.series_instance_uid = se.series_instance_uid AND i.removed_version IS NULL)
                """)
            if let study = q.studyInstanceUID { clauses.append("s.study_instance_uid = ?"); args.append(study) }
            if let series = q.seriesInstanceUID { clauses.append("se.series_instance_uid = ?"); args.append(series) }
            select = """
                WITH page AS (
                  SELECT s.*, se.* FROM series se JOIN image_set s ON s.id = se.image_set_id
                  WHERE \(clauses.joined(separator: " AND "))
                  ORDER BY s.study_instance_uid, se.series_number, se.series_instance_uid, se.image_set_id LIMIT ? OFFSET ?)
                SELECT page.*,
                  (SELECT MIN(id) FROM instance WHERE image_set_id = page.image_set_id AND series_instance_uid = page.series_instance_uid AND removed_version IS NULL) AS rep,
                  (SELECT COUNT(*) FROM instance WHERE image_set_id = page.image_set_id AND series_instance_uid = page.series_instance_uid AND removed_version IS NULL) AS n_series_instances
                FROM page ORDER BY page.study_instance_uid, page.series_number, page.series_instance_uid, page.image_set_id
                """
        case .instance:
            clauses.append("i.removed_version IS NULL")
            if let study = q.studyInstanceUID { clauses.append("i.study_instance_uid = ?"); args.append(study) }
            if let series = q.seriesInstanceUID { clauses.append("i.series_instance_uid = ?"); args.append(series) }
            select = """
                SELECT s.*, se.*, i.*, i.id AS rep
                FROM instance i JOIN image_set s ON s.id = i.image_set_id
                JOIN series se ON se.image_set_id = i.image_set_id AND se.series_instance_uid = i.series_instance_uid
                WHERE \(clauses.joined(separator: " AND "))
                ORDER BY i.study_instance_uid, i.series_instance_uid, i.instance_number, i.sop_instance_uid LIMIT ? OFFSET ?
                """
        }
        args.append(q.limit)
        args.append(q.offset)
        return try pool.read { db in
            try Row.fetchAll(db, sql: select, arguments: StatementArguments(args)).map { Self.searchRow($0, level: q.level) }
        }
    }

    static func clause(column: String, kind: SearchQuery.ColumnKind, condition: SearchQuery.Condition, fuzzy: Bool) -> (String, [any DatabaseValueConvertible]) {
        if kind == .modalitiesInStudy {
            let values = SearchQuery.modalities(condition)
            let marks = values.map { _ in "?" }.joined(separator: ", ")
            // Uncorrelated, so it runs once: a correlated EXISTS made SQLite walk every series of the
            // modality for each image set (1,000,000 row visits on a 100,000-instance index).
            // The image set's own series: a modality of a conflicting set's series is not the study's.
            return ("s.id IN (SELECT m.image_set_id FROM series m WHERE m.modality IN (\(marks)) AND m.current_instances > 0)", values)
        }
        switch condition {
        case .anyOf(let values):
            return ("\(column) IN (\(values.map { _ in "?" }.joined(separator: ", ")))", values)
        case .range(let lo, let hi):
            var parts: [String] = []
            var args: [any DatabaseValueConvertible] = []
            // Empty values never fall in a range.
            parts.append("\(column) != ''")
            if let lo { parts.append("\(column) >= ?"); args.append(lo) }
            if let hi { parts.append("\(column) <= ?"); args.append(hi + "\u{FFFF}") }
            return ("(" + parts.joined(separator: " AND ") + ")", args)
        case .equals(let value, let wildcard):
            switch kind {
            case .integer:
                return ("\(column) = ?", [Int(value) ?? Int.min])
            case .personName:
                // The column is the folded key and the value is folded alike, so GLOB (case-sensitive,
                // `*` and `?` are DICOM's wildcards too, `[` escaped) matches case-insensitively in
                // every script, and a pattern with a literal prefix is a range of the key's index.
                let key = SearchQuery.personNameKey(value).replacingOccurrences(of: "[", with: "[[]")
                guard fuzzy else { return ("\(column) GLOB ?", [key]) }
                // Fuzzy: every word of the value (split at ^, =, \ and spaces) begins some word of the
                // name, in any order: `fam^giv` finds `Family^Given^^^`, `john` finds `Smith^John`.
                let words = key.split(whereSeparator: { "^=\\ ".contains($0) }).map { "* \($0)*" }
                guard !words.isEmpty else { return ("1", []) }
                let spaced = "(' ' || REPLACE(REPLACE(REPLACE(\(column), '^', ' '), '=', ' '), '\\', ' '))"
                return ("(" + words.map { _ in "\(spaced) GLOB ?" }.joined(separator: " AND ") + ")", words)
            default:
                if wildcard {
                    let glob = value.replacingOccurrences(of: "[", with: "[[]")
                    return ("\(column) GLOB ?", [glob])
                }
                return ("\(column) = ?", [value])
            }
        }
    }

    static func searchRow(_ row: Row, level: SearchQuery.Level) -> SearchRow {
        var r = SearchRow()
        r.studyInstanceUID = row["study_instance_uid"]
        r.representativeInstanceID = row["rep"] ?? 0
        let studyColumns: [(UInt32, String)] = [
            (0x0010_0010, "patient_name"), (0x0010_0020, "patient_id"), (0x0010_0030, "patient_birth_date"),
            (0x0010_0040, "patient_sex"), (0x0008_0020, "study_date"), (0x0008_0030, "study_time"),
            (0x0008_0050, "accession_number"), (0x0020_0010, "study_id"), (0x0008_1030, "study_description"),
            (0x0008_0090, "referring_physician_name"), (0x0008_0080, "institution_name"),
        ]
        for (tag, column) in studyColumns { r.values[Tag(tag)] = row[column] ?? "" }
        r.values[Tag(0x0020_000D)] = r.studyInstanceUID
        switch level {
        case .study:
            r.numberOfStudyRelatedSeries = row["n_series"]
            r.numberOfStudyRelatedInstances = row["n_instances"]
            r.modalitiesInStudy = ((row["modalities"] as String?) ?? "").split(separator: ",").map(String.init).sorted()
        case .series, .instance:
            r.seriesInstanceUID = row["series_instance_uid"]
            r.values[Tag(0x0020_000E)] = r.seriesInstanceUID
            r.values[Tag(0x0008_0060)] = row["modality"] ?? ""
            r.values[Tag(0x0008_103E)] = row["series_description"] ?? ""
            r.values[Tag(0x0018_0015)] = row["body_part_examined"] ?? ""
            r.values[Tag(0x0040_0244)] = row["performed_start_date"] ?? ""
            r.values[Tag(0x0040_0245)] = row["performed_start_time"] ?? ""
            if let n: Int = row["series_number"] { r.values[Tag(0x0020_0011)] = String(n) }
            if level == .series {
                r.numberOfSeriesRelatedInstances = row["n_series_instances"]
            } else {
                r.sopInstanceUID = row["sop_instance_uid"]
                r.values[Tag(0x0008_0018)] = r.sopInstanceUID
                r.values[Tag(0x0008_0016)] = row["sop_class_uid"] ?? ""
                for (tag, column) in [(UInt32(0x0020_0013), "instance_number"), (0x0028_0010, "rows"), (0x0028_0011, "columns"),
                                      (0x0028_0100, "bits_allocated"), (0x0028_0008, "number_of_frames")] {
                    if let n: Int = row[column] { r.values[Tag(tag)] = String(n) }
                }
            }
        }
        return r
    }
}
