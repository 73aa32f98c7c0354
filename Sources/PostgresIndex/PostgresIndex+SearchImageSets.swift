import Foundation
import ImageSetStore
import PostgresNIO

/// The image-set listing (GET /image-sets) on PostgreSQL, as `SQLiteIndex.imageSets(_:)` answers it.
extension PostgresIndex {
    public func imageSets(_ filter: ImageSetFilter) async throws -> [ImageSetSummary] {
        var b = SQLBinds()
        var clauses: [String] = []
        if let v = filter.patientID { clauses.append("s.patient_id = \(b.add(v))") }
        if let v = filter.studyInstanceUID { clauses.append("s.study_instance_uid = \(b.add(v))") }
        if let v = filter.accessionNumber { clauses.append("s.accession_number = \(b.add(v))") }
        if let v = filter.isPrimary { clauses.append("s.is_primary = \(b.add(v))") }
        if let v = filter.seriesInstanceUID {
            clauses.append("EXISTS (SELECT 1 FROM instance i WHERE i.image_set_id = s.id AND i.series_instance_uid = \(b.add(v)) AND i.removed_version IS NULL)")
        }
        // An absent Study Date is stored as '' and matches no range.
        if let v = filter.studyDateFrom { clauses.append("s.study_date <> '' AND s.study_date >= \(b.add(v))") }
        if let v = filter.studyDateTo { clauses.append("s.study_date <> '' AND s.study_date <= \(b.add(v))") }
        if let v = filter.updatedFrom { clauses.append("s.updated_at >= \(b.add(v.timeIntervalSince1970))") }
        if let v = filter.updatedTo { clauses.append("s.updated_at <= \(b.add(v.timeIntervalSince1970))") }
        let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        let sql = "SELECT s.* FROM image_set s \(whereSQL) ORDER BY \(filter.sort.sql) LIMIT \(b.add(filter.limit)) OFFSET \(b.add(filter.offset))"
        return try await client.withConnection { connection in
            var out: [ImageSetSummary] = []
            for row in try await Self.rows(PostgresQuery(unsafeSQL: sql, binds: b.bindings), on: connection, logger: logger) {
                out.append(try await summary(row, on: connection))
            }
            return out
        }
    }
}
