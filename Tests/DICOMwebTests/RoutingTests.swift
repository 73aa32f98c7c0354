@testable import DICOMweb
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import XCTest

/// What the server answers outside its routes' handlers: unknown paths, wrong methods, OPTIONS,
/// HEAD, and the one JSON error body every error has.
final class RoutingTests: DICOMwebTestCase, @unchecked Sendable {
    static let allow = HTTPField.Name("Allow")!
    static let instance = "/dicomweb/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5"

    /// The error body: JSON `{"error": "..."}` with Content-Type application/json.
    static func errorMessage(_ r: TestResponse, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        XCTAssertEqual(r.headers[.contentType], "application/json", file: file, line: line)
        let object = try XCTUnwrap(try Self.json(r.body) as? [String: Any], file: file, line: line)
        XCTAssertEqual(object.count, 1, file: file, line: line)
        return try XCTUnwrap(object["error"] as? String, file: file, line: line)
    }

    // RFC 9110 §15.5.6 (405 with Allow), §10.2.1 (Allow), §15.5.5 (404).
    func testWrongMethodIs405WithAllowAndUnknownPathIs404() async throws {
        let cases: [(String, HTTPRequest.Method, String?)] = [
            ("/dicomweb/studies", .put, "GET, HEAD, POST, OPTIONS"),
            ("/dicomweb/studies/1.2.3", .patch, "GET, HEAD, POST, DELETE, OPTIONS"),
            ("/dicomweb/studies/1.2.3/metadata", .post, "GET, HEAD, OPTIONS"),
            ("\(Self.instance)/frames/1", .delete, "GET, HEAD, OPTIONS"),
            ("\(Self.instance)/bulkdata/7FE00010", .post, "GET, HEAD, OPTIONS"),
            ("\(Self.instance)/bulkdata/00540016/00181072", .delete, "GET, HEAD, OPTIONS"),
            ("/health", .delete, "GET, HEAD, OPTIONS"),
            ("/dicomweb/nothing", .get, nil),
            ("/dicomweb/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5/bulkdata", .get, nil),
            ("/elsewhere", .post, nil),
            ("/", .get, nil),
        ]
        try await withApp { client in
            for (uri, method, allow) in cases {
                try await client.execute(uri: uri, method: method) { r in
                    XCTAssertEqual(r.status, allow == nil ? .notFound : .methodNotAllowed, "\(method) \(uri)")
                    XCTAssertEqual(r.headers[Self.allow], allow, "\(method) \(uri)")
                    XCTAssertFalse(try Self.errorMessage(r).isEmpty)
                }
            }
        }
    }

    // RFC 9110 §9.3.7: OPTIONS names the methods; a CORS preflight (Fetch standard) still gets its
    // Access-Control headers from CORSMiddleware, and errors keep the CORS origin header.
    func testOptionsPreflightAndCORSOnErrors() async throws {
        try await withApp { client in
            try await client.execute(uri: "/dicomweb/studies/1.2.3/metadata", method: .options) { r in
                XCTAssertEqual(r.status, .noContent)
                XCTAssertEqual(r.headers[Self.allow], "GET, HEAD, OPTIONS")
            }
            try await client.execute(uri: "/dicomweb/nothing", method: .options) { XCTAssertEqual($0.status, .notFound) }
            try await client.execute(uri: "/dicomweb/studies/1.2.3", method: .options,
                                     headers: [.origin: "https://viewer.example", .accessControlRequestMethod: "DELETE"]) { r in
                XCTAssertEqual(r.status, .noContent)
                XCTAssertNotNil(r.headers[.accessControlAllowOrigin])
                XCTAssertTrue(r.headers[.accessControlAllowMethods]?.contains("DELETE") ?? false)
            }
            try await client.execute(uri: "/dicomweb/studies", method: .put, headers: [.origin: "https://viewer.example"]) { r in
                XCTAssertEqual(r.status, .methodNotAllowed)
                XCTAssertNotNil(r.headers[.accessControlAllowOrigin])
                XCTAssertNotNil(r.headers[Self.allow])
                _ = try Self.errorMessage(r)
            }
        }
    }

    // RFC 9110 §9.3.2: HEAD is GET without the body.
    func testHeadAnswersLikeGet() async throws {
        try await withApp { client in
            try await client.execute(uri: "/health", method: .head) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.body.readableBytes, 0)
            }
            try await client.execute(uri: "/dicomweb/studies/1.2.3/metadata", method: .head) { XCTAssertEqual($0.status, .notFound) }
        }
    }

    func testErrorBodiesAreValidJSONWhateverTheMessage() async throws {
        // Messages quote client input: quotes, backslashes and control characters stay JSON.
        let message = "'a\"b\\c\nd\u{1}é' is not a valid UID"
        XCTAssertEqual((try Self.json(DICOMwebError(.badRequest, message).body) as? [String: String])?["error"], message)
        try await withApp { client in
            try await client.execute(uri: "/dicomweb/studies/a%22b%5Cc%0Ad/metadata", method: .get) { r in
                XCTAssertEqual(r.status, .badRequest)
                XCTAssertTrue(try Self.errorMessage(r).contains("is not a valid UID"))
            }
            try await client.execute(uri: "/dicomweb/studies?limit=x", method: .get) { r in
                XCTAssertEqual(r.status, .badRequest)
                XCTAssertTrue(try Self.errorMessage(r).contains("limit"))
            }
        }
    }

    func testRouteTableRanksLiteralsOverCaptures() throws {
        XCTAssertEqual(RouteTable.rank("studies/:study/series", ["studies", "1", "series"]), [0, 1, 0])
        XCTAssertNil(RouteTable.rank("studies/:study/series", ["studies", "1"]))
        XCTAssertEqual(RouteTable.rank("a/**", ["a", "b", "c"]), [0, 2])
        XCTAssertNil(RouteTable.rank("a/**", ["a"]), "** takes one segment or more")
        XCTAssertEqual(RouteTable.allow([.delete, .get, .head]), "GET, HEAD, DELETE, OPTIONS")
    }
}
