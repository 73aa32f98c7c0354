import Foundation
import TestSupport
import XCTest

/// `tessera serve --config FILE`: JSON keys are serve's long options; the command line wins;
/// unknown keys and bad values end the command with one line naming the key.
final class ServeConfigTests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func config(_ text: String) throws -> String {
        let path = folder + "/tessera-\(UUID().uuidString).json"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The study's RetrieveURL, and the Access-Control-Allow-Origin given to `origin`.
    func probe(_ port: Int, origin: String, host: String? = nil) throws -> (retrieve: String, allowOrigin: String?) {
        let r = try curl(["-s", "-D", "-", "-H", "Origin: \(origin)"] + (host.map { ["-H", "Host: \($0)"] } ?? []) + ["http://127.0.0.1:\(port)/dicomweb/studies"])
        XCTAssertEqual(r.status, 0, r.err)
        let parts = r.out.components(separatedBy: "\r\n\r\n")
        let allow = parts[0].split(separator: "\r\n").first { $0.lowercased().hasPrefix("access-control-allow-origin:") }
            .map { $0.dropFirst("access-control-allow-origin:".count).trimmingCharacters(in: .whitespaces) }
        let studies = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(parts.dropFirst().joined().utf8)) as? [[String: Any]])
        let retrieve = try XCTUnwrap(((studies.first?["00081190"] as? [String: Any])?["Value"] as? [String])?.first)
        return (retrieve, allow)
    }

    func testTheFileSetsOptionsAndTheCommandLineWins() throws {
        let filePort = ServedTessera.freePort(), port = ServedTessera.freePort()
        let file = try config("""
            {"host": "127.0.0.1", "port": \(filePort), "public-url": "https://pacs.example.org/tessera",
             "cors-origin": ["https://a.example", "https://b.example"], "trusted-proxy": ["192.0.2.1"], "no-demo": false,
             "retain-versions": null}
            """)
        // The file alone: its port, public URL and origins.
        do {
            let server = try ServedTessera(["--config", file], port: filePort, addPort: false)
            defer { server.stop() }
            let r = try probe(filePort, origin: "https://b.example")
            XCTAssertTrue(r.retrieve.hasPrefix("https://pacs.example.org/tessera/dicomweb/studies/"), r.retrieve)
            XCTAssertEqual(r.allowOrigin, "https://b.example")
        }
        // --port and --cors-origin on the command line replace the file's (the whole list).
        let server = try ServedTessera(["--config", file, "--cors-origin", "https://c.example"], port: port)
        defer { server.stop() }
        XCTAssertEqual(try probe(port, origin: "https://c.example").allowOrigin, "https://c.example")
        XCTAssertNil(try probe(port, origin: "https://a.example").allowOrigin)
        XCTAssertNotEqual(try curl(["-sf", "http://127.0.0.1:\(filePort)/health"]).status, 0, "the file's port is not used")
    }

    /// TESSERA_<OPTION> variables (Docs/configuration.md): flags over the environment over the file.
    func testTheEnvironmentSitsBetweenTheFileAndTheFlags() throws {
        let port = ServedTessera.freePort(), environmentPort = ServedTessera.freePort()
        let file = try config(#"{"public-url": "https://file.example", "cors-origin": ["https://a.example"]}"#)
        let server = try ServedTessera(["--config", file, "--cors-origin", "https://c.example"], port: port, environment: [
            "TESSERA_PORT": String(environmentPort), "TESSERA_PUBLIC_URL": "https://env.example/pacs",
            "TESSERA_CORS_ORIGIN": #"["https://b.example", "https://d.example"]"#, "TESSERA_IDLE_TIMEOUT": "30"])
        defer { server.stop() }
        let r = try probe(port, origin: "https://c.example")
        XCTAssertTrue(r.retrieve.hasPrefix("https://env.example/pacs/dicomweb/studies/"), "the environment over the file: \(r.retrieve)")
        XCTAssertEqual(r.allowOrigin, "https://c.example", "the flag over the environment")
        XCTAssertNil(try probe(port, origin: "https://b.example").allowOrigin, "the flag's list replaces the environment's")
        XCTAssertNotEqual(try curl(["-sf", "http://127.0.0.1:\(environmentPort)/health"]).status, 0, "--port over TESSERA_PORT")
        // The environment's list, when no flag names the option.
        let second = try ServedTessera([], port: ServedTessera.freePort(), environment: ["TESSERA_CORS_ORIGIN": #"["https://b.example", "https://d.example"]"#])
        defer { second.stop() }
        XCTAssertEqual(try probe(second.port, origin: "https://d.example").allowOrigin, "https://d.example")
    }

    func testBadVariablesAreOneLineNamingTheVariable() throws {
        let cases: [([String: String], String)] = [
            (["TESSERA_PORT": "eighty"], "TESSERA_PORT: "),
            (["TESSERA_IDLE_TIMEOUT": "0"], "TESSERA_IDLE_TIMEOUT: "),
            (["TESSERA_NO_DEMO": "maybe"], "TESSERA_NO_DEMO is a flag"),
            (["TESSERA_CORS_ORIGIN": "[\"a\""], "TESSERA_CORS_ORIGIN starts with [ but is not a JSON array"),
            (["TESSERA_CONFIG": folder + "/missing.json"], "cannot read the config file"),
        ]
        for (environment, expected) in cases {
            let r = try serveFailing([], environment: environment)
            XCTAssertEqual(r.status, 1, "\(environment)")
            XCTAssertTrue(r.err.hasPrefix("tessera: ") && r.err.contains(expected), "\(environment): \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, "\(environment): \(r.err)")
        }
        // A variable that is no option is a warning (other tools share the prefix), the rest still applies.
        let r = try serveFailing([], environment: ["TESSERA_CORS_ORIGINS": "https://a.example", "TESSERA_PORT": "eighty"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.err.contains("warning: TESSERA_CORS_ORIGINS is not a serve option"), r.err)
        XCTAssertTrue(r.err.contains("TESSERA_PORT: "), r.err)
    }

    /// Without a public URL, an untrusted client's Host does not make the links (PS3.18 §10.6.3
    /// RetrieveURL): loopback is not trusted here (`trusted-proxy` names another address).
    func testAnUntrustedHostHeaderDoesNotMakeTheLinks() throws {
        let port = ServedTessera.freePort()
        let server = try ServedTessera(["--trusted-proxy", "192.0.2.1"], port: port)
        defer { server.stop() }
        let r = try probe(port, origin: "https://x.example", host: "evil.example")
        XCTAssertTrue(r.retrieve.hasPrefix("http://127.0.0.1:\(port)/dicomweb/studies/"), r.retrieve)
        // Trusted (the default, loopback), the same Host is a proxy's and believed.
        let trusted = try ServedTessera([])
        defer { trusted.stop() }
        XCTAssertTrue(try probe(trusted.port, origin: "https://x.example", host: "pacs.example:8443").retrieve.hasPrefix("http://pacs.example:8443/dicomweb/"))
    }

    func testBadFilesAreOneLineNamingTheKey() throws {
        let cases: [(String, String)] = [
            (#"{"tls-certificate": "x.pem"}"#, #"unknown key "tls-certificate""#),
            (#"{"port": "eighty"}"#, #""port": "#),
            (#"{"port": true}"#, #""port": "#),
            (#"{"help": true}"#, #"unknown key "help""#),
            (#"{"config": "other.json"}"#, #"unknown key "config""#),
            (#"{"nodemo": false}"#, #"unknown key "nodemo""#),
            (#"["port", 80]"#, "is not a JSON object"),
            (#"{"port": 80"#, "is not a JSON object"),
            (#"{"cors-origin": [["a"]]}"#, "a list of lists"),
            (#"{"public-url": "ftp://x"}"#, "--public-url ftp://x is not"),
            (#"{"idle-timeout": 0}"#, #""idle-timeout": "#),
        ]
        for (text, expected) in cases {
            let r = try serveFailing(["--config", try config(text)])
            XCTAssertEqual(r.status, 1, text)
            XCTAssertTrue(r.err.hasPrefix("tessera: ") && r.err.contains(expected), "\(text): \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, "\(text): \(r.err)")
        }
        // Deadlines that would close every connection or overflow the timer are refused at start.
        for bad in [["--body-timeout", "1e10"], ["--header-timeout", "nan"], ["--idle-timeout", "-1"], ["--max-connections", "0"]] {
            let r = try serveFailing(bad)
            XCTAssertNotEqual(r.status, 0, "\(bad)")
            XCTAssertTrue(r.err.contains(bad[0]), "\(bad): \(r.err)")
        }
        let missing = try serveFailing(["--config", folder + "/missing.json"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.err.contains("cannot read the config file"), missing.err)
    }

    /// Docs/configuration.md's table names every option of `tessera serve --help`, so that the
    /// reference of the file's keys cannot fall behind the command line.
    func testTheDocsTableNamesEveryOption() throws {
        let help = String(decoding: try Corpus.runCapturing(try Corpus.product("tessera"), ["serve", "--help"]).out, as: UTF8.self)
        let options = Set(help.matches(of: /--([a-z][a-z0-9-]*)/).map { String($0.1) }).subtracting(["help", "config", "version"])
        let docs = try String(contentsOf: Corpus.packageRoot.appendingPathComponent("Docs/configuration.md"), encoding: .utf8)
        XCTAssertGreaterThan(options.count, 25, help)
        for option in options.sorted() { XCTAssertTrue(docs.contains("`\(option)`"), "Docs/configuration.md lacks \(option)") }
    }

}
