import DICOMCore
import Foundation
@testable import ImageSetStore
import PostgresNIO
@testable import PostgresIndex
import XCTest

/// QIDO statements of a shape whose plan does not depend on its values run prepared by name
/// (PostgresIndex+SearchPrepared.swift); the others stay unnamed. Either way the rows are those of the
/// unnamed statement, also past the five executions after which PostgreSQL may plan a prepared one
/// generically.
extension PostgresQueryTests {
    func testExactSearchesRunPreparedWithTheUnnamedStatementsRows() async throws {
        let (index, _) = try await freshIndex("qido_prepared")
        try await generate(index, instances: 2_000)
        var inSeries = study([:], level: .instance)
        inSeries.studyInstanceUID = "2.25.77.1000012"
        inSeries.seriesInstanceUID = "2.25.77.1000012.2"
        var seriesOfStudy = study([:], level: .series)
        seriesOfStudy.studyInstanceUID = "2.25.77.1000012"
        let cases: [(String, SearchQuery, prepared: Bool)] = [
            ("PatientID", study([0x0010_0020: .equals("P00012", wildcard: false)]), true),
            ("AccessionNumber", study([0x0008_0050: .equals("A1000007", wildcard: false)]), true),
            ("series of a study", seriesOfStudy, true),
            ("instances of a series", inSeries, true),
            ("all studies, first page", study([:], limit: 25), true),
            ("all instances, first page", study([:], level: .instance, limit: 25), true),
            // A LIKE pattern, a range and a list need their values to be planned well.
            ("PatientName prefix", study([0x0010_0010: .equals("smith*", wildcard: true)]), false),
            ("PatientName exact (LIKE too)", study([0x0010_0010: .equals("smith^given^p00012", wildcard: false)]), false),
            ("StudyDate range", study([0x0008_0020: .range("20000101", nil)]), false),
            ("StudyInstanceUID list", study([0x0020_000D: .anyOf(["2.25.77.1000012"])]), false),
            ("CT studies", study([0x0008_0061: .anyOf(["CT"])], limit: 25), false),
        ]
        func shown(_ rows: [SearchRow]) -> [String] {
            rows.map { r in
                r.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "|")
                    + "#\(r.numberOfStudyRelatedSeries ?? -1)/\(r.numberOfStudyRelatedInstances ?? -1)/\(r.numberOfSeriesRelatedInstances ?? -1)"
                    + "/\(r.modalitiesInStudy)/\(r.representativeInstanceID)"
            }
        }
        // A later page of a prepared shape runs unnamed: deep OFFSETs (costly custom plans) could tip
        // the connection's plan cache for the shape to the generic plan, 40× slower for first pages.
        var later = study([:], limit: 5)
        later.offset = 5
        XCTAssertFalse(PostgresIndex.preparable(later))
        XCTAssertTrue(PostgresIndex.preparable(study([:], limit: 5)))
        for (name, q, prepared) in cases {
            XCTAssertEqual(PostgresIndex.preparable(q), prepared, name)
            let (sql, binds) = PostgresIndex.searchSQL(q)
            let unnamed = try await index.rows(PostgresQuery(unsafeSQL: sql, binds: binds)).map { try PostgresIndex.searchRow($0, level: q.level) }
            if !name.contains("exact") { XCTAssertFalse(unnamed.isEmpty, name) }
            try await index.client.withConnection { conn in
                for run in 0..<8 {
                    let rows = try await PostgresIndex.searchRows(q, on: conn, logger: self.logger).map { try PostgresIndex.searchRow($0, level: q.level) }
                    XCTAssertEqual(shown(rows), shown(unnamed), "\(name), run \(run)")
                }
                // The statement is on this connection under its slot's name, or not at all.
                let slot = PostgresIndex.searchSlotOfText.withLock { $0[sql] }
                XCTAssertEqual(slot != nil, prepared, name)
                var names: [String] = []
                for try await row in try await conn.query("SELECT name FROM pg_prepared_statements", logger: self.logger) {
                    names.append(try row.decode(String.self))
                }
                if let slot { XCTAssertTrue(names.contains("tessera_search_\(slot)"), "\(name): \(names)") }
            }
        }
        // The search route's own path: the same rows.
        let viaSearch = try await index.search(seriesOfStudy)
        XCTAssertEqual(viaSearch.map(\.numberOfSeriesRelatedInstances), [50, 50])
    }
}
