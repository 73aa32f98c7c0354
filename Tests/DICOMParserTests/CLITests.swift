import DICOMCore
import DICOMParser
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
        XCTAssertEqual(String(decoding: missing.err, as: UTF8.self), "tessera: cannot read /nonexistent/x.dcm: No such file or directory\n")
    }

    /// Every file command, given a path that is missing, a folder, or not DICOM, or an output path it
    /// cannot write, says so in one line with the cause in words: no NSError dump, no bare errno.
    func testFileErrorsNameTheCause() throws {
        let tessera = try Corpus.product("tessera")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-cli-dir-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = try tempFile(Array("just some text, not DICOM\n".utf8))
        let missing = dir + "/missing.dcm"
        let out = dir + "/out.bin"
        var cases: [([String], String)] = []
        for (input, cause) in [(missing, "cannot read \(missing): No such file or directory"), (dir, "cannot read \(dir): Is a directory"),
                               (text, "\(text): notDICOM at byte 0")] {
            for command in [["dump", input], ["json", input], ["frame", input, "1", "-o", out], ["transcode", input, out, "--to", "rle"]] {
                cases.append((command, "tessera: " + cause))
            }
        }
        cases.append((["frame", demo, "1", "-o", dir], "tessera: cannot write \(dir): Is a directory"))
        cases.append((["transcode", demo, dir + "/no/such/x.dcm", "--to", "rle"], "tessera: cannot create \(dir)/no/such/x.dcm: No such file or directory"))
        for (arguments, expected) in cases {
            let r = try Corpus.runCapturing(tessera, arguments)
            let err = String(decoding: r.err, as: UTF8.self)
            XCTAssertEqual(r.status, 1, arguments.joined(separator: " "))
            XCTAssertEqual(err.split(separator: "\n").count, 1, err)
            XCTAssertTrue(err.hasPrefix(expected), "\(arguments): \(err)")
            XCTAssertFalse(err.contains("Error Domain") || err.contains("errno"), err)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output from a failed run")
    }

    func testVersion() throws {
        let r = try Corpus.runCapturing(try Corpus.product("tessera"), ["--version"])
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(String(decoding: r.out, as: UTF8.self), TesseraVersion.string + "\n")
        XCTAssertEqual(DICOMWriter.implementationVersionName, "TESSERA_0_1", "derived from the same version")
    }

    /// `transcode --to` takes a name or a UID; `--help` lists both.
    func testTranscodeTargetsByName() throws {
        let tessera = try Corpus.product("tessera")
        let targets = ["explicit-le": "1.2.840.10008.1.2.1", "rle": "1.2.840.10008.1.2.5", "j2k": "1.2.840.10008.1.2.4.90",
                       "htj2k": "1.2.840.10008.1.2.4.201", "HTJ2K": "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5": "1.2.840.10008.1.2.5"]
        for (name, uid) in targets {
            let out = try tempFile([])
            let r = try Corpus.runCapturing(tessera, ["transcode", demo, out, "--to", name])
            XCTAssertEqual(r.status, 0, name + ": " + String(decoding: r.err, as: UTF8.self))
            XCTAssertEqual(try DICOMFile.read(path: out).transferSyntax.uid, uid, name)
        }
        let bad = try Corpus.runCapturing(tessera, ["transcode", demo, try tempFile([]), "--to", "jpeg-xl"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(String(decoding: bad.err, as: UTF8.self).contains("unknown transfer syntax 'jpeg-xl'; targets are explicit-le (1.2.840.10008.1.2.1)"))
        // Help wraps lines: compare with whitespace runs made single spaces.
        let help = String(decoding: try Corpus.runCapturing(tessera, ["transcode", "--help"]).out, as: UTF8.self)
            .split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for (name, uid) in targets where name == name.lowercased() && !name.hasPrefix("1.") {
            XCTAssertTrue(help.contains("\(name) (\(uid))"), help)
        }
    }

    /// Every subcommand, option, flag and argument has help text (from swift-argument-parser's
    /// description of the command tree, `--experimental-dump-help`).
    func testEveryOptionHasHelp() throws {
        let r = try Corpus.runCapturing(try Corpus.product("tessera"), ["--experimental-dump-help"])
        XCTAssertEqual(r.status, 0)
        let root = try XCTUnwrap((try JSONSerialization.jsonObject(with: r.out) as? [String: Any])?["command"] as? [String: Any])
        var missing: [String] = []
        var commands = 0
        func walk(_ command: [String: Any], _ path: String) {
            commands += 1
            if (command["abstract"] as? String ?? "").isEmpty { missing.append(path) }
            for argument in command["arguments"] as? [[String: Any]] ?? [] where argument["shouldDisplay"] as? Bool != false {
                let name = (argument["preferredName"] as? [String: Any])?["name"] as? String ?? argument["valueName"] as? String ?? "?"
                if (argument["abstract"] as? String ?? "").trimmingCharacters(in: .whitespaces).isEmpty { missing.append("\(path) \(name)") }
            }
            // `help` is swift-argument-parser's own.
            for sub in command["subcommands"] as? [[String: Any]] ?? [] where sub["commandName"] as? String != "help" {
                walk(sub, path + " " + (sub["commandName"] as? String ?? "?"))
            }
        }
        walk(root, "tessera")
        XCTAssertGreaterThan(commands, 10)
        XCTAssertEqual(missing, [], "no help text")
    }
}
