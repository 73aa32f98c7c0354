@testable import DICOMweb
import Foundation
import HTTPTypes
import HummingbirdTesting
import XCTest

/// One Accept header, the same treatment on every WADO-RS route: the route's default type, or 406
/// with the JSON error body (PS3.18 §8.7.3 media types, §8.7.3.5 per resource; RFC 9110 §12.5.1
/// Accept with q-values). The rules: Docs/api.md, "Accept".
final class NegotiationTests: DICOMwebTestCase, @unchecked Sendable {
    static let sop = "1.2.3.15.1"
    static var base: String { "/dicomweb/studies/\(study)/series/\(series)/instances/\(sop)" }
    static let routes = ["instance": base, "metadata": base + "/metadata", "frames": base + "/frames/1", "bulkdata": base + "/bulkdata/7FE00010"]
    /// What a 200 of each route is, in its Content-Type.
    static let produced = ["instance": "type=\"application/dicom\"", "metadata": "application/dicom+json",
                           "frames": "type=\"application/octet-stream\"", "bulkdata": "type=\"application/octet-stream\""]

    func testTheSameAcceptGetsTheSameTreatmentOnEveryRoute() async throws {
        // Accept → the routes that answer 200; every other route answers 406.
        let all: Set<String> = ["instance", "metadata", "frames", "bulkdata"]
        let table: [(String?, Set<String>)] = [
            (nil, all),
            ("", all),
            ("*/*", all),
            ("multipart/related", all),
            ("multipart/*", all),
            ("application/*", all),
            ("application/json", ["metadata"]),
            ("application/dicom+json", ["metadata"]),
            ("multipart/related; type=\"application/dicom+xml\"", ["metadata"]),  // Native DICOM Model (PS3.18 Table 10.4.4-1)
            ("multipart/related; type=\"application/dicom\"", ["instance"]),
            ("application/dicom", ["instance"]),
            ("multipart/related; type=\"application/octet-stream\"", ["frames", "bulkdata"]),
            ("multipart/related; type=application/octet-stream; transfer-syntax=*", ["frames", "bulkdata"]),
            ("application/octet-stream", ["frames", "bulkdata"]),
            ("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.2", []),  // Big Endian: §8.7.3
            ("image/png", []),
            ("text/html, */*;q=0.1", all),
            ("*/*;q=0", []),
            ("image/png, application/dicom+json;q=0.5, multipart/related; type=\"application/dicom\"", ["instance", "metadata"]),
            ("application/dicom+json;q=0, */*", all),  // q=0 drops its range; */* still takes the default
        ]
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: Self.sop)])
            for (accept, ok) in table {
                for (name, uri) in Self.routes.sorted(by: { $0.key < $1.key }) {
                    let headers: HTTPFields = accept.map { [.accept: $0] } ?? [:]
                    try await client.execute(uri: uri, method: .get, headers: headers) { r in
                        let label = "\(name) with Accept: \(accept ?? "(none)")"
                        XCTAssertEqual(r.status, ok.contains(name) ? .ok : .notAcceptable, label)
                        if r.status == .ok {
                            let expected = accept?.contains("dicom+xml") == true ? "type=\"application/dicom+xml\"" : Self.produced[name]!
                            XCTAssertTrue(r.headers[.contentType]?.contains(expected) ?? false, "\(label): \(r.headers[.contentType] ?? "")")
                        } else {
                            XCTAssertEqual(r.headers[.contentType], "application/json", label)
                            XCTAssertNotNil((try? Self.json(r.body) as? [String: Any])?["error"], label)
                        }
                    }
                }
            }
        }
    }

    func testRequestedTypeRule() {
        func t(_ text: String, _ routeTypes: [String]) -> String { MediaType(Substring(text))!.requestedType(routeTypes: routeTypes) }
        XCTAssertEqual(t("*/*", ["image/jp2", "application/octet-stream"]), "image/jp2")
        XCTAssertEqual(t("multipart/related; type=\"application/*\"", ["image/jp2", "application/octet-stream"]), "application/octet-stream")
        XCTAssertEqual(t("image/*", ["application/dicom"]), "image/*")
        XCTAssertEqual(t("multipart/related; type=\"Image/JP2\"", ["application/octet-stream"]), "image/jp2")
    }
}
