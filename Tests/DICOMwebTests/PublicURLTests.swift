@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import XCTest

/// The links Tessera hands out (STOW-RS RetrieveURL, QIDO-RS RetrieveURL, metadata BulkDataURI,
/// PS3.18 §10.5.3, §10.6.3, §F.2.6): from `--public-url` when configured, else from a trusted
/// proxy's headers, else the address the connection reached; never from what an untrusted client
/// wrote in `Host`.
final class PublicURLTests: DICOMwebTestCase, @unchecked Sendable {
    static let sop = "1.2.3.15.1"

    /// STOW's RetrieveURL, QIDO's RetrieveURL of the study and the metadata's BulkDataURI.
    func links(_ client: any TestClientProtocol, _ headers: HTTPFields = [:]) async throws -> [String] {
        let (status, stowed) = try await client.execute(uri: "/dicomweb/studies", method: .post,
                                                        headers: headers + [.contentType: "multipart/related; type=\"application/dicom\"; boundary=XyZ-boundary"],
                                                        body: Self.multipart([try Self.instance(sop: Self.sop)])) { r in
            (r.status, (try? Self.json(r.body)) as? [String: Any] ?? [:])
        }
        XCTAssertEqual(status, .ok)
        let stowURL = try XCTUnwrap(((stowed["00081190"] as? [String: Any])?["Value"] as? [String])?.first)
        let qidoURL = try await client.execute(uri: "/dicomweb/studies", method: .get, headers: headers) { r in
            let studies = try XCTUnwrap(try Self.json(r.body) as? [[String: Any]])
            return try XCTUnwrap(((studies.first?["00081190"] as? [String: Any])?["Value"] as? [String])?.first)
        }
        let bulk = try await client.execute(uri: "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/\(Self.sop)/metadata",
                                            method: .get, headers: headers) { r in
            let items = try XCTUnwrap(try Self.json(r.body) as? [[String: Any]])
            return try XCTUnwrap((items.first?["7FE00010"] as? [String: Any])?["BulkDataURI"] as? String)
        }
        return [stowURL, qidoURL, bulk]
    }

    func withLiveApp(_ configure: (inout DICOMwebConfiguration) -> Void, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var configuration = DICOMwebConfiguration()
        configuration.port = 0
        configure(&configuration)
        try await buildApplication(store: store, configuration: configuration, logger: Logger(label: "test")).test(.live, body)
    }

    static let forwarded: HTTPFields = [HTTPField.Name("X-Forwarded-Host")!: "proxy.example", HTTPField.Name("X-Forwarded-Proto")!: "https"]

    // The in-process client writes Host: localhost and has no peer address (untrusted): the
    // configured address stands in.
    func testAnUntrustedClientsHostIsNotUsed() async throws {
        try await withApp { client in
            for link in try await self.links(client) {
                XCTAssertTrue(link.hasPrefix("http://127.0.0.1:8080/dicomweb/studies/\(Self.study)"), link)
            }
        }
    }

    func testALiveUntrustedPeersHostGivesWayToTheAddressItReached() async throws {
        try await withLiveApp({ $0.trustedProxies = [CIDR("192.0.2.0/24")!] }) { client in
            let port = try XCTUnwrap(client.port)
            for link in try await self.links(client, Self.forwarded) {
                XCTAssertTrue(link.hasPrefix("http://127.0.0.1:\(port)/dicomweb/") || link.hasPrefix("http://[::1]:\(port)/dicomweb/"), link)
            }
        }
    }

    // A trusted proxy's Host and X-Forwarded-* still make the links (ForwardedTests has the rest).
    func testATrustedProxysHeadersStillWork() async throws {
        try await withLiveApp({ $0.trustedProxies = CIDR.loopback }) { client in
            for link in try await self.links(client, Self.forwarded) {
                XCTAssertTrue(link.hasPrefix("https://proxy.example/dicomweb/studies/\(Self.study)"), link)
            }
        }
        try await withLiveApp({ $0.trustedProxies = CIDR.loopback }) { client in
            for link in try await self.links(client) {
                // The client's Host has no port: the configured one (here 0) is added, as before.
                XCTAssertTrue(link.hasPrefix("http://localhost:0/dicomweb/"), "a trusted peer's Host: \(link)")
            }
        }
    }

    // The configured public URL wins over Host and over a trusted proxy's headers; its prefix is kept.
    func testThePublicURLWins() async throws {
        try await withLiveApp({ $0.trustedProxies = CIDR.loopback; $0.publicURL = PublicURL("https://pacs.example.org:8443/tessera/") }) { client in
            for link in try await self.links(client, Self.forwarded) {
                XCTAssertTrue(link.hasPrefix("https://pacs.example.org:8443/tessera/dicomweb/studies/\(Self.study)"), link)
            }
        }
    }

    func testPublicURLSyntax() {
        XCTAssertEqual(PublicURL("https://pacs.example.org")?.description, "https://pacs.example.org")
        XCTAssertEqual(PublicURL("HTTPS://pacs.example.org:8443/a/b//")?.description, "https://pacs.example.org:8443/a/b")
        XCTAssertEqual(PublicURL("http://[2001:db8::1]:8080")?.description, "http://[2001:db8::1]:8080")
        for bad in ["pacs.example.org", "ftp://pacs.example.org", "https://", "https://:8443", "https://u@pacs.example.org",
                    "https://pacs.example.org/?q=1", "https://pacs.example.org/#f", "https://pacs\"example.org", "https://a<b>"] {
            XCTAssertNil(PublicURL(bad), bad)
        }
    }
}
