import XCTest
import TestSupport

/// The `tessera` command line as a user runs it: exit codes, stdout, and the one-line diagnostics.
final class CLITests: XCTestCase {
    private var demo: String { Corpus.packageRoot.appendingPathComponent("TestImages/demo/ct-1.dcm").path }

    private func tempFile(_ bytes: [UInt8]) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-cli-\(UUID().uuidString).dcm")
        try Data(bytes).write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func testDumpManyFiles() throws {
        let demo2 = Corpus.packageRoot.appendingPathComponent("TestImages/demo/ct-2.dcm").path
        let r = try Corpus.runCapturing(try Corpus.product("tessera"), ["dump", demo, demo2])
        XCTAssertEqual(r.status, 0)
        let text = String(decoding: r.out, as: UTF8.self)
        XCTAssertTrue(text.contains("# File: \(demo)"))
        XCTAssertTrue(text.contains("# File: \(demo2)"))
        XCTAssertTrue(text.contains("(0010,0010) PN [Demo^Patient]"))
        XCTAssertTrue(r.err.isEmpty)
    }

    func testDumpOfATruncatedFilePrintsWhatItCanAndOneErrorLine() throws {
        let whole = try Data(contentsOf: URL(fileURLWithPath: demo))
        let cut = try tempFile(Array(whole.prefix(whole.count - 100)))
        let r = try Corpus.runCapturing(try Corpus.product("tessera"), ["dump", cut])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(String(decoding: r.out, as: UTF8.self).contains("(0010,0010) PN [Demo^Patient]"), "prints what it could")
        let err = String(decoding: r.err, as: UTF8.self)
        XCTAssertEqual(err.split(separator: "\n").count, 1, err)
        XCTAssertTrue(err.hasPrefix("tessera: \(cut): "), err)
        XCTAssertTrue(err.contains("at byte "), err)
        XCTAssertTrue(err.contains("(7FE0,0010)"), err)
    }

    func testJSONOfDemoInstance() throws {
        let r = try Corpus.runCapturing(try Corpus.product("tessera"), ["json", demo])
        XCTAssertEqual(r.status, 0)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: r.out) as? [String: Any])
        let pixel = try XCTUnwrap(json["7FE00010"] as? [String: Any])
        let uri = try XCTUnwrap(pixel["BulkDataURI"] as? String)
        XCTAssertTrue(uri.hasPrefix("file://\(demo)?offset="), uri)
        XCTAssertTrue(uri.hasSuffix("&length=8192"), uri)
        XCTAssertNil(json["00020010"], "the file meta group is not part of the data set")
    }

    func testGarbageIsRefusedWithExitOne() throws {
        let garbage = try tempFile(Array(repeating: 0x5A, count: 300))
        for command in ["json", "dump"] {
            let r = try Corpus.runCapturing(try Corpus.product("tessera"), [command, garbage])
            XCTAssertEqual(r.status, 1, command)
            let err = String(decoding: r.err, as: UTF8.self)
            XCTAssertTrue(err.hasPrefix("tessera: \(garbage): notDICOM at byte 0"), err)
        }
        let missing = try Corpus.runCapturing(try Corpus.product("tessera"), ["dump", "/nonexistent/x.dcm"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(String(decoding: missing.err, as: UTF8.self).contains("cannot open"))
    }
}
