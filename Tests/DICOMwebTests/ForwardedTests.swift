@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import XCTest

/// URLs in responses behind a proxy: `Forwarded` (RFC 7239) and `X-Forwarded-*`, believed only
/// from trusted proxies (`DICOMwebConfiguration.trustedProxies`).
final class ForwardedTests: DICOMwebTestCase, @unchecked Sendable {
    static let sop = "1.2.3.14.1"
    var metadataURI: String { "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/\(Self.sop)/metadata" }

    /// The BulkDataURI of Pixel Data in the instance's metadata: where the URL root shows.
    func bulkDataURI(_ client: any TestClientProtocol, _ headers: HTTPFields) async throws -> String {
        try await client.execute(uri: metadataURI, method: .get, headers: headers) { r in
            XCTAssertEqual(r.status, .ok)
            let items = try XCTUnwrap(try Self.json(r.body) as? [[String: Any]])
            let pixel = try XCTUnwrap(items.first?["7FE00010"] as? [String: Any])
            return try XCTUnwrap(pixel["BulkDataURI"] as? String)
        }
    }

    static let path = "/dicomweb/studies/\(study)/series/\(series)/instances/\(sop)/bulkdata/7FE00010"
    static func name(_ n: String) -> HTTPField.Name { HTTPField.Name(n)! }

    /// The app over a real loopback socket, so the handler sees a peer address (127.0.0.1 or ::1).
    func withLiveApp(trusted: [CIDR], _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var configuration = DICOMwebConfiguration()
        configuration.port = 0
        configuration.trustedProxies = trusted
        let app = buildApplication(store: store, configuration: configuration, logger: Logger(label: "test"))
        try await app.test(.live, body)
    }

    // RFC 7239 §4 (syntax), §5 (parameters), §6 (node names, IPv6 in brackets, quoted values).
    func testForwardedHeaderParsing() {
        let elements = ForwardedElement.parse(#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711";HOST="a.example:8443", for=unknown"#)
        XCTAssertEqual(elements.count, 3)
        XCTAssertEqual(elements[0]["for"], "192.0.2.60")
        XCTAssertEqual(elements[0]["proto"], "http")
        XCTAssertEqual(elements[1]["for"], "[2001:db8:cafe::17]:4711")
        XCTAssertEqual(elements[1]["host"], "a.example:8443", "names are case-insensitive, quotes removed")
        XCTAssertEqual(ForwardedElement.parse(#"for="a\"b,c";proto=https"#).first?["for"], #"a"b,c"#, "a quoted comma does not split")
        XCTAssertEqual(ForwardedElement.nodeAddress("[2001:db8:cafe::17]:4711"), "2001:db8:cafe::17")
        XCTAssertEqual(ForwardedElement.nodeAddress("192.0.2.43:47011"), "192.0.2.43")
        XCTAssertEqual(ForwardedElement.nodeAddress("2001:db8::1"), "2001:db8::1")
        XCTAssertEqual(ForwardedElement.nodeAddress("_hidden"), "_hidden")
        XCTAssertEqual(ForwardedElement.parse(" , ;"), [])
    }

    func testCIDRMatching() throws {
        let net = try XCTUnwrap(CIDR("10.1.0.0/16"))
        XCTAssertTrue(CIDR.contains([net], address: "10.1.255.3"))
        XCTAssertFalse(CIDR.contains([net], address: "10.2.0.1"))
        XCTAssertTrue(CIDR.contains(CIDR.loopback, address: "127.8.9.10"))
        XCTAssertTrue(CIDR.contains(CIDR.loopback, address: "::1"))
        XCTAssertTrue(CIDR.contains(CIDR.loopback, address: "::ffff:127.0.0.1"), "IPv4-mapped, as a dual-stack socket reports IPv4 peers")
        XCTAssertFalse(CIDR.contains(CIDR.loopback, address: "::2"))
        XCTAssertFalse(CIDR.contains(CIDR.loopback, address: nil))
        XCTAssertFalse(CIDR.contains(CIDR.loopback, address: "unknown"))
        XCTAssertTrue(CIDR.contains([try XCTUnwrap(CIDR("2001:db8::/33"))], address: "2001:db8:7fff::1"))
        XCTAssertFalse(CIDR.contains([try XCTUnwrap(CIDR("2001:db8::/33"))], address: "2001:db8:8000::1"))
        XCTAssertTrue(CIDR.contains([try XCTUnwrap(CIDR("0.0.0.0/0"))], address: "203.0.113.9"))
        for bad in ["10.0.0.0/33", "::1/129", "10.0.0.0/-1", "10.0.0/8", "host", "", "10.0.0.0/"] { XCTAssertNil(CIDR(bad), bad) }
        XCTAssertEqual(CIDR("10.1.2.3/8")?.description, "10.0.0.0/8")
    }

    // RFC 7239 §8.1: only the elements added by trusted proxies are believed; walking back from
    // the last (the peer's), an element whose for= is not a trusted proxy is the client-facing one.
    func testChainIsWalkedFromTheTrustedEnd() throws {
        let trusted = [try XCTUnwrap(CIDR("10.0.0.0/8"))]
        let chain = ForwardedElement.parse("host=forged.example;proto=https, for=198.51.100.7;host=pacs.example;proto=https, for=10.0.0.5;host=inner:8080;proto=http")
        XCTAssertEqual(ForwardedElement.clientFacing(chain, trusted: trusted)?["host"], "pacs.example",
                       "10.0.0.5 is a trusted proxy, 198.51.100.7 the client: what the client put before it is not believed")
        XCTAssertEqual(ForwardedElement.clientFacing(Array(chain.suffix(1)), trusted: trusted)?["host"], "inner:8080")
        XCTAssertNil(ForwardedElement.clientFacing([], trusted: trusted))
    }

    /// In-process requests have no peer address: untrusted, so forwarding headers are ignored.
    func testForwardingHeadersFromAnUntrustedPeerAreIgnored() async throws {
        let bytes = try Self.instance(sop: Self.sop)
        try await withApp { client in
            _ = try await self.stow(client, [bytes])
            for headers: HTTPFields in [[Self.name("Forwarded"): "proto=https;host=evil.example"],
                                        [Self.name("X-Forwarded-Proto"): "https", Self.name("X-Forwarded-Host"): "evil.example"]] {
                let uri = try await self.bulkDataURI(client, headers)
                XCTAssertTrue(uri.hasPrefix("http://") && !uri.contains("evil.example"), uri)
            }
        }
    }

    func testForwardingHeadersFromATrustedProxyMakeTheURLs() async throws {
        let bytes = try Self.instance(sop: Self.sop)
        try await withLiveApp(trusted: CIDR.loopback) { client in
            _ = try await self.stow(client, [bytes])
            let cases: [(HTTPFields, String)] = [
                ([Self.name("Forwarded"): "for=192.0.2.60;proto=https;host=pacs.example.org"], "https://pacs.example.org"),
                ([Self.name("Forwarded"): #"for="[2001:db8::7]:4711";Proto=HTTPS;Host="[2001:db8::1]:8443""#], "https://[2001:db8::1]:8443"),
                // Forwarded wins over X-Forwarded-*; a parameter it lacks falls back to them.
                ([Self.name("Forwarded"): "for=192.0.2.60;host=a.example", Self.name("X-Forwarded-Proto"): "https",
                  Self.name("X-Forwarded-Host"): "b.example"], "https://a.example"),
                // Several elements: the last was added by the loopback peer; its for= is loopback, a
                // trusted proxy too, so the element before it (for= a client) is the client-facing one.
                ([Self.name("Forwarded"): "for=192.0.2.60;proto=https;host=outer.example, for=127.0.0.1;proto=http;host=inner:8080"], "https://outer.example"),
                ([Self.name("X-Forwarded-Proto"): "https", Self.name("X-Forwarded-Host"): "xf.example, other"], "https://xf.example"),
                // A host that would break the JSON it is written into is not used.
                ([Self.name("Forwarded"): #"host="a\"b.example""#], "http://localhost"),
            ]
            for (headers, root) in cases {
                let uri = try await self.bulkDataURI(client, headers)
                XCTAssertTrue(uri.hasPrefix(root + Self.path) || uri.hasPrefix(root + ":") , "\(headers): \(uri)")
            }
        }
    }

    func testALiveButUntrustedPeerIsIgnored() async throws {
        let bytes = try Self.instance(sop: Self.sop)
        try await withLiveApp(trusted: [try XCTUnwrap(CIDR("192.0.2.0/24"))]) { client in
            _ = try await self.stow(client, [bytes])
            let uri = try await self.bulkDataURI(client, [Self.name("Forwarded"): "proto=https;host=pacs.example.org",
                                                          Self.name("X-Forwarded-Host"): "pacs.example.org"])
            // Nor its Host (the test client's "localhost"): the address the connection reached stands in.
            XCTAssertTrue(uri.hasPrefix("http://127.0.0.1:") || uri.hasPrefix("http://[::1]:"), uri)
        }
    }
}
