@testable import DICOMweb
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import XCTest

final class QIDOTests: DICOMwebTestCase {
    func seed(_ client: any TestClientProtocol) async throws {
        _ = try await stow(client, [
            try Self.instance(sop: "1.2.3.11.1"), try Self.instance(sop: "1.2.3.11.2"),
            try Self.instance(sop: "1.2.3.11.3", study: "1.2.3.12", series: "1.2.3.12.1", patientName: "Smith^John", modality: "MR", studyDate: "20230601"),
        ])
    }

    func get(_ client: any TestClientProtocol, _ uri: String) async throws -> (HTTPResponse.Status, [[String: Any]]) {
        try await client.execute(uri: uri, method: .get) { r in
            (r.status, (try? Self.json(r.body)) as? [[String: Any]] ?? [])
        }
    }

    static func value(_ row: [String: Any], _ tag: String) -> Any? { ((row[tag] as? [String: Any])?["Value"] as? [Any])?.first }

    func testStudySearchReturnsRequiredAttributesAndCounts() async throws {
        try await withApp { client in
            try await self.seed(client)
            let (status, rows) = try await self.get(client, "/dicomweb/studies")
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(rows.count, 2)
            let ct = try XCTUnwrap(rows.first { Self.value($0, "0020000D") as? String == Self.study })
            XCTAssertEqual(Self.value(ct, "00201206") as? Int, 1)
            XCTAssertEqual(Self.value(ct, "00201208") as? Int, 2)
            XCTAssertEqual(Self.value(ct, "00080061") as? String, "CT")
            XCTAssertEqual((Self.value(ct, "00100010") as? [String: Any])?["Alphabetic"] as? String, "DOE^JANE")
            XCTAssertTrue((Self.value(ct, "00081190") as? String)?.hasSuffix("/dicomweb/studies/\(Self.study)") ?? false)
        }
    }

    func testMatchingByKeywordTagWildcardRangeAndPersonName() async throws {
        try await withApp { client in
            try await self.seed(client)
            func count(_ query: String) async throws -> Int { try await self.get(client, "/dicomweb/studies?\(query)").1.count }
            let a = try await count("PatientName=smith*")
            XCTAssertEqual(a, 1, "case-insensitive PN with wildcard")
            let b = try await count("00100010=DOE%5EJANE")
            XCTAssertEqual(b, 1, "by tag")
            let c = try await count("StudyDate=20230101-20231231")
            XCTAssertEqual(c, 1, "date range")
            let d = try await count("StudyDate=-20250101")
            XCTAssertEqual(d, 2, "open range")
            let e = try await count("StudyInstanceUID=\(Self.study),1.2.3.12")
            XCTAssertEqual(e, 2, "UID list")
            let f = try await count("ModalitiesInStudy=MR")
            XCTAssertEqual(f, 1)
            let g = try await count("PatientName=john&fuzzymatching=true")
            XCTAssertEqual(g, 1, "fuzzy matches a later name component")
            let h = try await count("PatientName=john")
            XCTAssertEqual(h, 0)
            let i = try await count("PatientID=NOBODY")
            XCTAssertEqual(i, 0)
        }
    }

    func testSeriesAndInstanceLevelsLimitOffsetAndIncludefield() async throws {
        try await withApp { client in
            try await self.seed(client)
            let (_, series) = try await self.get(client, "/dicomweb/studies/\(Self.study)/series")
            XCTAssertEqual(series.count, 1)
            XCTAssertEqual(Self.value(series[0], "00201209") as? Int, 2)
            let (_, instances) = try await self.get(client, "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances?limit=1&offset=1")
            XCTAssertEqual(instances.count, 1)
            XCTAssertEqual(Self.value(instances[0], "00080018") as? String, "1.2.3.11.2")
            let (_, all) = try await self.get(client, "/dicomweb/instances?SOPInstanceUID=1.2.3.11.1&includefield=00180050,ImageType")
            XCTAssertEqual(all.count, 1)
            XCTAssertNotNil(all[0]["00080008"], "includefield by keyword")
            let (_, everything) = try await self.get(client, "/dicomweb/instances?SOPInstanceUID=1.2.3.11.1&includefield=all")
            XCTAssertGreaterThan(everything[0].count, 20)
            XCTAssertNil(everything[0]["7FE00010"])
        }
    }

    func testEmptyResultsAndBadQueries() async throws {
        try await withApp { client in
            let (status, rows) = try await self.get(client, "/dicomweb/studies?PatientID=none")
            XCTAssertEqual(status, .ok)
            XCTAssertEqual(rows.count, 0)
            for bad in ["limit=-1", "NotAKeyword=1", "StudyDate=2020-abc", "StudyInstanceUID=../x", "fuzzymatching=maybe", "includefield=Nope"] {
                try await client.execute(uri: "/dicomweb/studies?\(bad)", method: .get) { r in
                    XCTAssertEqual(r.status, .badRequest, bad)
                    XCTAssertTrue(String(buffer: r.body).contains("error"), bad)
                }
            }
        }
    }
}
