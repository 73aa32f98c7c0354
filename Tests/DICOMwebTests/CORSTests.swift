@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import XCTest

/// Which browser origins may read responses: the Fetch standard's CORS protocol
/// (https://fetch.spec.whatwg.org/#http-cors-protocol, §3.2), origins from the configuration.
final class CORSTests: DICOMwebTestCase, @unchecked Sendable {
    static let viewer = "https://viewer.example"

    func withApp(_ configure: (inout DICOMwebConfiguration) -> Void, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var configuration = DICOMwebConfiguration()
        configure(&configuration)
        try await Application(router: buildRouter(store: store, configuration: configuration)).test(.router, body)
    }

    /// Fetch §3.2.2: a CORS-preflight request, OPTIONS with Access-Control-Request-Method/-Headers.
    static func preflight(_ origin: String, headers: String = "authorization, accept") -> HTTPFields {
        [.origin: origin, .accessControlRequestMethod: "GET", .accessControlRequestHeaders: headers]
    }

    /// The Access-Control-Allow-Origin of a GET and of a preflight from `origin`.
    func allowOrigin(_ client: any TestClientProtocol, _ origin: String) async throws -> (get: String?, preflight: String?) {
        let get = try await client.execute(uri: "/dicomweb/studies", method: .get, headers: [.origin: origin]) { r in
            XCTAssertEqual(r.status, .ok)
            return r.headers[.accessControlAllowOrigin]
        }
        let preflight = try await client.execute(uri: "/dicomweb/studies", method: .options, headers: Self.preflight(origin)) {
            $0.headers[.accessControlAllowOrigin]
        }
        return (get, preflight)
    }

    // Default, authentication off, listening on loopback: development, any origin.
    func testDefaultOnLoopbackWithoutAuthenticationIsAnyOrigin() async throws {
        try await withApp({ _ in }) { client in
            let r = try await self.allowOrigin(client, Self.viewer)
            XCTAssertEqual(r.get, "*")
            XCTAssertEqual(r.preflight, "*")
        }
    }

    // Default with authentication on: no origin, not even on loopback; a preflight gets no CORS headers.
    func testDefaultWithAuthenticationIsNoOrigin() async throws {
        try await withApp({ $0.authenticationEnabled = true }) { client in
            let r = try await self.allowOrigin(client, Self.viewer)
            XCTAssertNil(r.get)
            XCTAssertNil(r.preflight)
            try await client.execute(uri: "/dicomweb/studies", method: .options, headers: Self.preflight(Self.viewer)) { r in
                XCTAssertNil(r.headers[.accessControlAllowHeaders])
                XCTAssertNil(r.headers[.accessControlAllowMethods])
            }
        }
    }

    // Default off loopback (authentication off, started with --insecure-no-auth): no origin either.
    func testDefaultOffLoopbackIsNoOrigin() async throws {
        try await withApp({ $0.host = "0.0.0.0" }) { client in
            let r = try await self.allowOrigin(client, Self.viewer)
            XCTAssertNil(r.get)
            XCTAssertNil(r.preflight)
        }
        for (host, origins) in [("::1", ["*"]), ("localhost", ["*"]), ("127.0.0.2", ["*"]), ("192.0.2.1", [])] {
            var c = DICOMwebConfiguration()
            c.host = host
            XCTAssertEqual(c.effectiveCORSOrigins, origins, host)
        }
    }

    // Configured origins: an allowed one is echoed (with Vary: Origin, Fetch §3.2 "CORS protocol and
    // HTTP caches"), any other gets no Access-Control-Allow-Origin; preflights list Authorization
    // by name (the `*` wildcard of Access-Control-Allow-Headers never covers it, Fetch §3.2.3).
    func testConfiguredOrigins() async throws {
        try await withApp({ $0.authenticationEnabled = true; $0.corsOrigins = [Self.viewer, "http://localhost:3000"] }) { client in
            let allowed = try await self.allowOrigin(client, Self.viewer)
            XCTAssertEqual(allowed.get, Self.viewer)
            XCTAssertEqual(allowed.preflight, Self.viewer)
            let local = try await self.allowOrigin(client, "http://localhost:3000")
            XCTAssertEqual(local.get, "http://localhost:3000")
            for other in ["https://evil.example", "https://viewer.example.evil.example", "http://viewer.example", "null"] {
                let refused = try await self.allowOrigin(client, other)
                XCTAssertNil(refused.get, other)
                XCTAssertNil(refused.preflight, other)
            }
            try await client.execute(uri: "/dicomweb/studies/1.2.3/metadata", method: .options, headers: Self.preflight(Self.viewer)) { r in
                XCTAssertEqual(r.status, .noContent)
                let headers = (r.headers[.accessControlAllowHeaders] ?? "").lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                for name in ["authorization", "accept", "content-type"] { XCTAssertTrue(headers.contains(name), "\(headers)") }
                XCTAssertTrue(r.headers[.accessControlAllowMethods]?.contains("GET") ?? false)
                XCTAssertEqual(r.headers[.vary], "Origin")
            }
            try await client.execute(uri: "/dicomweb/studies", method: .get, headers: [.origin: "https://evil.example"]) { r in
                XCTAssertEqual(r.headers[.vary], "Origin", "the refusal depends on Origin too")
                XCTAssertNil(r.headers[.accessControlExposeHeaders])
            }
            // Errors carry the headers for an allowed origin.
            try await client.execute(uri: "/dicomweb/studies?limit=x", method: .get, headers: [.origin: Self.viewer]) { r in
                XCTAssertEqual(r.status, .badRequest)
                XCTAssertEqual(r.headers[.accessControlAllowOrigin], Self.viewer)
            }
            // No Origin, no CORS headers.
            try await client.execute(uri: "/dicomweb/studies", method: .get) { XCTAssertNil($0.headers[.accessControlAllowOrigin]) }
        }
    }

    // `*` configured explicitly holds also with authentication on (the operator chose it).
    func testConfiguredAnyOrigin() async throws {
        try await withApp({ $0.authenticationEnabled = true; $0.corsOrigins = ["*"] }) { client in
            let r = try await self.allowOrigin(client, "https://anything.example")
            XCTAssertEqual(r.get, "*")
            XCTAssertEqual(r.preflight, "*")
        }
    }

    func testOriginSyntax() {
        XCTAssertEqual(DICOMwebConfiguration.corsOrigin("https://Viewer.Example:8443/"), "https://viewer.example:8443")
        XCTAssertEqual(DICOMwebConfiguration.corsOrigin("*"), "*")
        for bad in ["viewer.example", "https://viewer.example/path", "https://", "://x", "https://a\"b", "https://a b"] {
            XCTAssertNil(DICOMwebConfiguration.corsOrigin(bad), bad)
        }
    }
}
