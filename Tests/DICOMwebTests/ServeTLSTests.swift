import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `tessera serve --tls-cert --tls-key` with a test CA made by openssl: curl and dicomweb-client
/// verify the chain against the CA, plain HTTP on the TLS port gets no answer, SIGHUP swaps the
/// certificate for new connections while open ones carry on (Tools/oracles/dicomweb_tls.py).
final class ServeTLSTests: XCTestCase {
    var pki: TestPKI!

    override func setUpWithError() throws { pki = try TestPKI() }
    override func tearDown() { pki.remove() }

    func testHTTPSWithCurlAndDicomwebClient() throws {
        let (chain, key) = try pki.server("server", serial: "0x1001")
        let server = try ServedTessera(["--tls-cert", chain, "--tls-key", key], ca: pki.ca)
        defer { server.stop() }
        let base = "https://127.0.0.1:\(server.port)/dicomweb"
        // QIDO over HTTPS: the leaf and the intermediate from the chain file verify against the root alone.
        let studies = try curl(["-sf", "--cacert", pki.ca, "\(base)/studies"])
        XCTAssertEqual(studies.status, 0, studies.err)
        let found = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(studies.out.utf8)) as? [[String: Any]])
        let retrieve = try XCTUnwrap(((found.first?["00081190"] as? [String: Any])?["Value"] as? [String])?.first)
        XCTAssertTrue(retrieve.hasPrefix(base + "/studies/"), "links say https when TLS is on: \(retrieve)")
        // A frame (PS3.18 §9.5.1.2.3, the frame as stored).
        let study = try XCTUnwrap(((found.first?["0020000D"] as? [String: Any])?["Value"] as? [String])?.first)
        let instances = try curl(["-sf", "--cacert", pki.ca, "\(base)/studies/\(study)/instances"])
        let first = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(instances.out.utf8)) as? [[String: Any]])?.first)
        func value(_ tag: String) -> String { ((first[tag] as? [String: Any])?["Value"] as? [String])?.first ?? "" }
        let frame = try curl(["-s", "--cacert", pki.ca, "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{ssl_verify_result}",
                              "-H", "Accept: multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
                              "\(base)/studies/\(study)/series/\(value("0020000E"))/instances/\(value("00080018"))/frames/1"])
        let fields = frame.out.split(separator: " ")
        XCTAssertEqual(fields.first, "200", frame.err)
        XCTAssertGreaterThan(Int(fields[1]) ?? 0, 1000)
        XCTAssertEqual(fields.last, "0", "certificate verified")
        // Again: the router's answer first (the first request fills the frame location cache), then
        // the stored-frame fast path's, which under TLS reads the frame into the response instead of
        // sendfile: the same bytes (the boundary aside), and counted as its own.
        var bodies: [[UInt8]] = []
        for k in 0..<3 {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("tls-frame-\(k)-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            // HTTP/1.1: curl would take HTTP/2 by ALPN, whose streams go through the router.
            let again = try curl(["-s", "--http1.1", "--cacert", pki.ca, "-o", out, "-D", "-",
                                  "-H", "Accept: multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
                                  "\(base)/studies/\(study)/series/\(value("0020000E"))/instances/\(value("00080018"))/frames/1"])
            let boundary = Array((again.out.components(separatedBy: "boundary=").last?.components(separatedBy: "\r\n").first ?? "?").utf8)
            bodies.append(FrameFastPathTests.replacing(boundary, with: Array("B".utf8), in: [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))))
        }
        XCTAssertEqual(bodies[1], bodies[0], "the fast path's bytes are the router's")
        XCTAssertEqual(bodies[2], bodies[0])
        XCTAssertGreaterThan(bodies[0].count, 1000)
        let metrics = try curl(["-sf", "--cacert", pki.ca, "https://127.0.0.1:\(server.port)/metrics"])
        let served = metrics.out.split(separator: "\n").first { $0.hasPrefix("tessera_frames_fast_path_total{outcome=\"served\"}") }
        // At least one: a background commit (the demo's metadata documents) may send one more to the router.
        XCTAssertGreaterThanOrEqual(served.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0, 1, metrics.out)
        // Without the CA the chain does not verify.
        XCTAssertNotEqual(try curl(["-sf", "\(base)/studies"]).status, 0)
        // Plain HTTP on the TLS port: the handshake fails, no HTTP answer comes back.
        let plain = try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://127.0.0.1:\(server.port)/health"])
        XCTAssertNotEqual(plain.status, 0)
        XCTAssertEqual(plain.out, "000")

        let out = try Corpus.oracle("dicomweb_tls.py", ["client", base, pki.ca])
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: out) as? [String: Any])
        XCTAssertGreaterThanOrEqual(report["studies"] as? Int ?? 0, 1)
        XCTAssertTrue((report["retrieve_url"] as? String ?? "").hasPrefix("https://"), "\(report)")
        XCTAssertNotNil(report["metadata_sop"] as? String)
        XCTAssertEqual(report["metadata_sop"] as? String, report["instance_sop"] as? String)
        XCTAssertGreaterThan(report["frame_bytes"] as? Int ?? 0, 1000)
        XCTAssertEqual(report["unverified_refused"] as? Bool, true)
    }

    /// RFC 8996 deprecates TLS 1.0 and 1.1: a client offering at most 1.1 gets no session, 1.2 and 1.3 do.
    func testTLSBelow12IsRefused() throws {
        let (chain, key) = try pki.server("server", serial: "0x1002")
        let server = try ServedTessera(["--tls-cert", chain, "--tls-key", key, "--no-demo"], ca: pki.ca)
        defer { server.stop() }
        func handshake(_ version: String) throws -> Int32 {
            // SECLEVEL=0: the client's own policy would refuse 1.1 before the server is asked.
            try Corpus.runCapturing(try Corpus.tool("openssl"), ["s_client", "-connect", "127.0.0.1:\(server.port)", "-CAfile", pki.ca,
                                                                 version, "-cipher", "DEFAULT@SECLEVEL=0", "-brief"]).status
        }
        XCTAssertNotEqual(try handshake("-tls1_1"), 0)
        XCTAssertNotEqual(try handshake("-tls1"), 0)
        XCTAssertEqual(try handshake("-tls1_2"), 0)
        XCTAssertEqual(try handshake("-tls1_3"), 0)
    }

    func testSIGHUPServesTheNewCertificateToNewConnectionsOnly() throws {
        let first = try pki.server("first", serial: "0x1111")
        let second = try pki.server("second", serial: "0x2222")
        // The served files are copies, overwritten in place as a certificate renewal would.
        let cert = pki.folder + "/served.pem", key = pki.folder + "/served.key"
        try FileManager.default.copyItem(atPath: first.chain, toPath: cert)
        try FileManager.default.copyItem(atPath: first.key, toPath: key)
        let server = try ServedTessera(["--tls-cert", cert, "--tls-key", key, "--no-demo"], ca: pki.ca)
        defer { server.stop() }
        let out = try Corpus.oracle("dicomweb_tls.py", ["reload", "127.0.0.1", String(server.port), pki.ca, String(server.pid),
                                                        cert, key, second.chain, second.key])
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: out) as? [String: Any])
        XCTAssertEqual(report["before"] as? String, "1111", "\(report)")
        XCTAssertEqual(report["after"] as? String, "2222", "new connections get the new certificate: \(report)")
        XCTAssertEqual(report["old_connection_status"] as? Int, 200)
        XCTAssertEqual(report["old_connection_same_socket"] as? Bool, true, "the open connection was not dropped")
        XCTAssertEqual(report["old_connection_serial"] as? String, "1111")
        XCTAssertEqual(report["after_bad_reload"] as? String, "2222", "a file that does not load leaves the last good pair")
        XCTAssertEqual(report["after_bad_reload_status"] as? Int, 200)
        XCTAssertTrue(server.stderr.contains("TLS certificate reloaded"), server.stderr)
        XCTAssertTrue(server.stderr.contains("TLS certificate not reloaded"), server.stderr)
        // openssl's view of a new connection: the serial of the certificate presented.
        let shown = try Corpus.runCapturing("/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:\(server.port) -CAfile \(pki.ca) </dev/null 2>/dev/null | openssl x509 -noout -serial"])
        XCTAssertEqual(String(decoding: shown.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), "serial=2222")
        XCTAssertTrue(server.process.isRunning)
    }

    /// A certificate or key that cannot serve: exit 1 with one line saying which and why.
    func testBadCertificateOrKeyAtStartExitsWithOneLine() throws {
        let (chain, key) = try pki.server("server", serial: "0x1003")
        let other = try pki.server("other", serial: "0x1004")
        try pki.write("garbage.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        let cases: [([String], String)] = [
            (["--tls-cert", pki.folder + "/missing.pem", "--tls-key", key], "cannot read the TLS certificate file"),
            (["--tls-cert", pki.folder + "/garbage.pem", "--tls-key", key], "holds no PEM certificate"),
            (["--tls-cert", chain, "--tls-key", pki.folder + "/garbage.pem"], "holds no PEM private key"),
            (["--tls-cert", chain, "--tls-key", other.key], "does not match the certificate"),
            (["--tls-cert", chain], "--tls-cert and --tls-key go together"),
        ]
        for (arguments, expected) in cases {
            let r = try serveFailing(arguments)
            XCTAssertEqual(r.status, 1, "\(arguments)")
            XCTAssertTrue(r.err.hasPrefix("tessera: ") && r.err.contains(expected), "\(arguments): \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        }
    }
}
