import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// HTTP/2 from `tessera serve` (issue 15): over TLS by ALPN (RFC 9113 §3.2), and h2c with prior
/// knowledge beside HTTP/1.1 on one port (`--http2-cleartext`, RFC 9113 §3.3). curl, and httpx/h2
/// (Tools/oracles/http2_client.py) fetching every frame concurrently on ONE connection, the bytes
/// compared with HTTP/1.1's and with pydicom's reading of the instances retrieved over HTTP/2.
final class ServeHTTP2Tests: XCTestCase {
    var pki: TestPKI!

    override func setUpWithError() throws { pki = try TestPKI() }
    override func tearDown() { pki.remove() }

    /// `curl -w` of one request: the HTTP version, the status and what else is asked for.
    func fetch(_ options: [String], _ url: String, write: String = "%{http_version} %{http_code}") throws -> String {
        let r = try curl(["-s", "-o", "/dev/null", "--max-time", "20", "-w", write] + options + [url])
        return r.out
    }

    func seriesReport(_ base: String, ca: String) throws -> [String: Any] {
        let out = try Corpus.oracle("http2_client.py", ["series", base, ca])
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: out) as? [String: Any])
    }

    /// The whole-series fetch: all frames and instances over HTTP/2 on one connection, each a
    /// stream of its own, byte for byte what HTTP/1.1 returns and what pydicom reads in the
    /// instances (PS3.18 §9.5.1.2.3 frames, §9.5.1.2.1 instances, multipart/related per §8.7.3.1).
    func assertSeries(_ report: [String: Any], file: StaticString = #filePath, line: UInt = #line) {
        let frames = report["frames"] as? Int ?? 0, instances = report["instances"] as? Int ?? 0
        XCTAssertGreaterThanOrEqual(frames, 3, "\(report)", file: file, line: line)
        XCTAssertEqual(report["versions"] as? [String], ["HTTP/2"], "\(report)", file: file, line: line)
        XCTAssertEqual(report["statuses"] as? [Int], [200], "\(report)", file: file, line: line)
        XCTAssertEqual(report["connections"] as? Int, 1, "one connection carried them all: \(report)", file: file, line: line)
        XCTAssertEqual(report["streams"] as? Int, frames + instances, "a stream each: \(report)", file: file, line: line)
        XCTAssertEqual(report["differ_from_http1"] as? [String], [], "\(report)", file: file, line: line)
        XCTAssertEqual(report["differ_from_pydicom"] as? [String], [], "\(report)", file: file, line: line)
        XCTAssertEqual(report["part_types"] as? [String], ["application/dicom", "application/octet-stream"], "\(report)", file: file, line: line)
        XCTAssertGreaterThan(report["bytes"] as? Int ?? 0, 1000, file: file, line: line)
    }

    func testHTTP2OverTLSByALPNAndHTTP11StillServed() throws {
        let (chain, key) = try pki.server("server", serial: "0x3001")
        let second = try pki.server("second", serial: "0x3002")
        let cert = pki.folder + "/served.pem", servedKey = pki.folder + "/served.key"
        try FileManager.default.copyItem(atPath: chain, toPath: cert)
        try FileManager.default.copyItem(atPath: key, toPath: servedKey)
        let server = try ServedTessera(["--tls-cert", cert, "--tls-key", servedKey], ca: pki.ca)
        defer { server.kill() }
        let base = "https://127.0.0.1:\(server.port)/dicomweb"
        // ALPN offers h2 first: curl --http2 gets it; --http1.1 (and a client without ALPN) gets HTTP/1.1.
        XCTAssertEqual(try fetch(["--http2", "--cacert", pki.ca], "\(base)/studies"), "2 200")
        XCTAssertEqual(try fetch(["--http1.1", "--cacert", pki.ca], "\(base)/studies"), "1.1 200")
        XCTAssertEqual(try fetch(["--http1.1", "--no-alpn", "--cacert", pki.ca], "\(base)/studies"), "1.1 200")
        // CORS on an HTTP/2 stream: loopback without authentication allows any origin (Docs/security.md).
        let cors = try curl(["-s", "-D", "-", "-o", "/dev/null", "--http2", "--cacert", pki.ca, "-H", "Origin: https://viewer.example", "\(base)/studies"])
        XCTAssertTrue(cors.out.lowercased().contains("access-control-allow-origin: *"), cors.out)
        XCTAssertTrue(cors.out.hasPrefix("HTTP/2 200"), cors.out)
        assertSeries(try seriesReport(base, ca: pki.ca))

        // SIGHUP: the new certificate for new connections, still offering h2.
        try FileManager.default.removeItem(atPath: cert)
        try FileManager.default.removeItem(atPath: servedKey)
        try FileManager.default.copyItem(atPath: second.chain, toPath: cert)
        try FileManager.default.copyItem(atPath: second.key, toPath: servedKey)
        kill(server.pid, SIGHUP)
        var shown = ""
        for _ in 0..<50 where !shown.contains("serial=3002") {
            usleep(100_000)
            let r = try Corpus.runCapturing("/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:\(server.port) -alpn h2,http/1.1 -CAfile \(pki.ca) </dev/null 2>/dev/null | tee /dev/stderr | openssl x509 -noout -serial"])
            shown = String(decoding: r.out, as: UTF8.self) + String(decoding: r.err, as: UTF8.self)
        }
        XCTAssertTrue(shown.contains("serial=3002"), shown)
        XCTAssertTrue(shown.contains("ALPN protocol: h2"), shown)
        XCTAssertEqual(try fetch(["--http2", "--cacert", pki.ca], "\(base)/studies"), "2 200")
    }

    func testH2CWithPriorKnowledgeBesideHTTP11OnOnePort() throws {
        let server = try ServedTessera(["--http2-cleartext", "--maximum-request-size", "1000", "--body-timeout", "1", "--idle-timeout", "3", "--header-timeout", "2"])
        defer { server.kill() }
        let base = "http://127.0.0.1:\(server.port)/dicomweb"
        XCTAssertEqual(try fetch(["--http2-prior-knowledge"], "\(base)/studies"), "2 200")
        XCTAssertEqual(try fetch([], "\(base)/studies"), "1.1 200")
        // A request starting with P (POST) is HTTP/1.1 too, told from the preface's PRI after two bytes.
        let big = pki.folder + "/big.bin"
        try Data(count: 5000).write(to: URL(fileURLWithPath: big))
        for version in ["--http1.1", "--http2-prior-knowledge"] {
            XCTAssertEqual(try fetch([version, "-X", "POST", "-H", "Content-Type: application/dicom", "--data-binary", "@" + big], "\(base)/studies"),
                           (version == "--http1.1" ? "1.1" : "2") + " 413", "the request size cap on \(version)")
        }
        assertSeries(try seriesReport(base, ca: "-"))
        // SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2), and a stream whose announced body never
        // comes: reset by the 1 s body deadline, the connection still serving the next stream.
        let out = try Corpus.oracle("http2_client.py", ["limits", "127.0.0.1", String(server.port), "20"])
        let limits = try XCTUnwrap(try JSONSerialization.jsonObject(with: out) as? [String: Any])
        XCTAssertEqual(limits["max_concurrent_streams"] as? Int, 100, "\(limits)")
        XCTAssertEqual(limits["reset_stream"] as? Int, limits["stalled_stream"] as? Int, "\(limits)")
        XCTAssertLessThan(limits["reset_after"] as? Double ?? 99, 5, "\(limits)")
        XCTAssertEqual(limits["health_status"] as? String, "200", "\(limits)")
        XCTAssertNil(limits["connection_closed"], "\(limits)")
        // --idle-timeout: with no stream open the connection ends (GOAWAY, RFC 9113 §6.8), not before;
        // the oracle never acknowledges the server's PING, which alone would keep it open for ever
        // (IdleStreamsBackstop closes it idle + header timeout after its last stream).
        XCTAssertEqual(limits["goaway"] as? Bool, true, "\(limits)")
        let idle = try XCTUnwrap(limits["idle_closed_after"] as? Double, "\(limits)")
        XCTAssertGreaterThan(idle, 2)
        XCTAssertLessThan(idle, 12)
    }

    /// Without `--http2-cleartext` a cleartext port is HTTP/1.1 only, as before: prior knowledge gets
    /// no HTTP/2. The option is a config key like the others: TESSERA_HTTP2_CLEARTEXT turns it on.
    func testCleartextWithoutTheOptionIsHTTP11Only() throws {
        let server = try ServedTessera(["--no-demo"])
        defer { server.kill() }
        XCTAssertEqual(try fetch([], "http://127.0.0.1:\(server.port)/health"), "1.1 200")
        XCTAssertNotEqual(try fetch(["--http2-prior-knowledge"], "http://127.0.0.1:\(server.port)/health"), "2 200")
        let fromEnvironment = try ServedTessera(["--no-demo"], environment: ["TESSERA_HTTP2_CLEARTEXT": "true"])
        defer { fromEnvironment.kill() }
        XCTAssertEqual(try fetch(["--http2-prior-knowledge"], "http://127.0.0.1:\(fromEnvironment.port)/health"), "2 200")
    }

    /// Authentication on an HTTP/2 stream: no credentials, 401 with the challenge (RFC 6750 §3.1);
    /// the key, 200; both in the audit trail with the peer's address.
    func testAuthenticationAndAuditOverHTTP2() throws {
        let (chain, key) = try pki.server("server", serial: "0x3003")
        let server = try ServedTessera(["--tls-cert", chain, "--tls-key", key], ca: pki.ca)
        defer { server.kill() }
        let created = try Corpus.runCapturing(try Corpus.product("tessera"), ["keys", "create", "--role", "viewer", "--name", "h2-viewer", "--data", server.data])
        XCTAssertEqual(created.status, 0, String(decoding: created.err, as: UTF8.self))
        let apiKey = String(decoding: created.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let studies = "https://127.0.0.1:\(server.port)/dicomweb/studies"
        var refused = ""
        for _ in 0..<100 where refused != "2 401" {
            refused = try fetch(["--http2", "--cacert", pki.ca], studies)
            if refused != "2 401" { usleep(100_000) }
        }
        XCTAssertEqual(refused, "2 401", "the key's creation turns authentication on")
        let challenge = try curl(["-s", "-D", "-", "-o", "/dev/null", "--http2", "--cacert", pki.ca, studies])
        XCTAssertTrue(challenge.out.lowercased().contains("www-authenticate: bearer realm=\"tessera\""), challenge.out)
        XCTAssertEqual(try fetch(["--http2", "--cacert", pki.ca, "-H", "Authorization: Bearer \(apiKey)"], studies), "2 200")
        var trail = ""
        for _ in 0..<50 where !trail.contains("\"name\":\"h2-viewer\"") {
            usleep(100_000)
            trail = String(decoding: try Corpus.runCapturing(try Corpus.product("tessera"), ["audit", "--data", server.data, "--format", "json"]).out, as: UTF8.self)
        }
        let lines = trail.split(separator: "\n").filter { $0.contains("\"name\":\"h2-viewer\"") || $0.contains("no-credentials") }
        XCTAssertGreaterThanOrEqual(lines.count, 2, trail)
        XCTAssertTrue(lines.allSatisfy { $0.contains("127.0.0.1") }, trail)
    }
}
