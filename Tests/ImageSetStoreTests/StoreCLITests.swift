import Foundation
@testable import ImageSetStore
import TestSupport
import XCTest
import StoreTestSupport

/// `tessera import`, `imagesets`, `imageset` and `verify` as a user runs them.
final class StoreCLITests: XCTestCase {
    func testPruneCommandAndRetentionSetting() async throws {
        let tessera = try Corpus.product("tessera")
        let data = try StoreFixtures.temporaryFolder("cli-prune")
        defer { try? FileManager.default.removeItem(atPath: data) }
        do {
            let store = try Datastore(folder: data)
            for n in 1...3 { _ = try await store.ingest(staged: [try store.blobs.stage(bytes: try StoreFixtures.instance(sop: "1.2.3.8.\(n)"))], reason: "t") }
            await XCTAssertEqualAsync(try await store.remove(study: "1.2.826.0.1.3680043.9.7433.1", sop: "1.2.3.8.1"), 1)
        }
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["prune", "--data", data, "--keep", "0"]).status, 64, "usage error")
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["prune", "--data", data, "--image-set", "nope"]).status, 1)
        let run = try Corpus.runCapturing(tessera, ["prune", "--data", data, "--keep", "1", "--retain", "2", "--json"])
        XCTAssertEqual(run.status, 0, String(decoding: run.err, as: UTF8.self))
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: run.out) as? [String: Any])
        XCTAssertEqual(report["instanceRowsRemoved"] as? Int, 1)
        XCTAssertEqual(report["blobsRemoved"] as? Int, 1)
        let store = try Datastore(folder: data)
        XCTAssertEqual(store.retainVersions, 2)
        await XCTAssertEqualAsync(try await store.blobs.list().count, 2)
        await XCTAssertTrueAsync(try await store.verify().isClean)
    }

    func testImportListShowAndVerify() throws {
        let tessera = try Corpus.product("tessera")
        let data = try StoreFixtures.temporaryFolder("cli")
        let source = try StoreFixtures.temporaryFolder("cli-source")
        defer { try? FileManager.default.removeItem(atPath: data); try? FileManager.default.removeItem(atPath: source) }
        try FileManager.default.createDirectory(atPath: source + "/nested", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: source + "/a.dcm", contents: Data(try StoreFixtures.instance(sop: "1.2.3.7.1")))
        FileManager.default.createFile(atPath: source + "/nested/b.dcm", contents: Data(try StoreFixtures.instance(sop: "1.2.3.7.2")))
        FileManager.default.createFile(atPath: source + "/nested/c.dcm",
                                       contents: Data(try StoreFixtures.instance(sop: "1.2.3.7.3", patientID: "OTHER")))

        let first = try Corpus.runCapturing(tessera, ["import", source, "--data", data])
        let summary = String(decoding: first.err, as: UTF8.self)
        XCTAssertEqual(first.status, 0, summary)
        XCTAssertTrue(summary.contains("stored: 3"), summary)
        XCTAssertTrue(summary.contains("non-primary (conflicts): 1"), summary)
        XCTAssertTrue(summary.contains("failed: 0"), summary)
        // The import is a store on the audit trail (issue 12 §2), under the local user, naming what it stored.
        let trail = try SQLiteIndex(path: data + "/index.sqlite", folder: data).auditRecords(AuditFilter()).filter { $0.action == "store" }
        XCTAssertEqual(trail.count, 1)
        XCTAssertEqual(trail.first?.principalKind, "local")
        XCTAssertEqual(trail.first?.subjects.instances.sorted(), ["1.2.3.7.1", "1.2.3.7.2", "1.2.3.7.3"])

        // Again, plus a file that is not DICOM: duplicates are fine, the text file is skipped.
        FileManager.default.createFile(atPath: source + "/notes.txt", contents: Data("not dicom".utf8))
        let second = try Corpus.runCapturing(tessera, ["import", source, "--data", data])
        let summary2 = String(decoding: second.err, as: UTF8.self)
        XCTAssertEqual(second.status, 0, summary2)
        XCTAssertTrue(summary2.contains("duplicates: 3"), summary2)
        XCTAssertTrue(summary2.contains("skipped: 1 not DICOM"), summary2)

        // A DICOM file that cannot be read whole fails the run.
        let whole = try StoreFixtures.instance(sop: "1.2.3.7.4")
        FileManager.default.createFile(atPath: source + "/cut.dcm", contents: Data(whole.prefix(whole.count - 100)))
        let third = try Corpus.runCapturing(tessera, ["import", source, "--data", data])
        let summary3 = String(decoding: third.err, as: UTF8.self)
        XCTAssertEqual(third.status, 1, summary3)
        XCTAssertTrue(summary3.contains("cut.dcm: 0xC000"), summary3)
        try FileManager.default.removeItem(atPath: source + "/cut.dcm")

        let list = try Corpus.runCapturing(tessera, ["imagesets", "--data", data, "--json"])
        XCTAssertEqual(list.status, 0)
        let sets = try XCTUnwrap(JSONSerialization.jsonObject(with: list.out) as? [[String: Any]])
        XCTAssertEqual(sets.count, 2)
        let primary = try XCTUnwrap(sets.first { $0["isPrimary"] as? Bool == true })
        XCTAssertEqual(primary["instanceCount"] as? Int, 2)
        let id = try XCTUnwrap(primary["id"] as? String)

        let filtered = try Corpus.runCapturing(tessera, ["imagesets", "--data", data, "--patient-id", "OTHER", "--json"])
        XCTAssertEqual((try JSONSerialization.jsonObject(with: filtered.out) as? [[String: Any]])?.count, 1)

        let show = try Corpus.runCapturing(tessera, ["imageset", id, "--data", data])
        let text = String(decoding: show.out, as: UTF8.self)
        XCTAssertEqual(show.status, 0)
        XCTAssertTrue(text.contains("1.2.3.7.1") && text.contains("1.2.3.7.2"), text)
        XCTAssertTrue(text.contains("versions:"), text)
        XCTAssertEqual(try Corpus.runCapturing(tessera, ["imageset", "nope", "--data", data]).status, 1)

        let verify = try Corpus.runCapturing(tessera, ["verify", "--data", data])
        XCTAssertEqual(verify.status, 0, String(decoding: verify.out, as: UTF8.self))
    }

    /// A path that does not exist, or holds nothing importable, is an error, and creates no data folder.
    func testImportOfNothingFails() throws {
        let tessera = try Corpus.product("tessera")
        let base = try StoreFixtures.temporaryFolder("cli-nothing")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let data = base + "/data"

        let missing = try Corpus.runCapturing(tessera, ["import", base + "/no-such", "--data", data])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(String(decoding: missing.err, as: UTF8.self), "tessera: cannot read \(base)/no-such: No such file or directory\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: data), "a typo creates no data folder")

        try FileManager.default.createDirectory(atPath: base + "/empty", withIntermediateDirectories: true)
        let empty = try Corpus.runCapturing(tessera, ["import", base + "/empty", "--data", data])
        XCTAssertEqual(empty.status, 1)
        XCTAssertEqual(String(decoding: empty.err, as: UTF8.self), "tessera: nothing to import: no files in \(base)/empty\n")

        try FileManager.default.createDirectory(atPath: base + "/text", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: base + "/text/README", contents: Data("Patient CD\n".utf8))
        let text = try Corpus.runCapturing(tessera, ["import", base + "/text", "--data", data])
        let err = String(decoding: text.err, as: UTF8.self)
        XCTAssertEqual(text.status, 1, err)
        XCTAssertTrue(err.hasSuffix("tessera: nothing imported: no DICOM instances in \(base)/text\n"), err)
    }

    /// A patient CD as it arrives: a DICOMDIR (PS3.10 §8.6, made by DCMTK's dcmmkdir), a README, an
    /// autorun.inf, a picture, the instances, and a copy of a stored instance in another transfer syntax.
    func testImportOfAMediaFolder() async throws {
        let tessera = try Corpus.product("tessera")
        let dcmmkdir = try Corpus.tool("dcmmkdir")
        let data = try StoreFixtures.temporaryFolder("cli-media-data")
        let media = try StoreFixtures.temporaryFolder("cli-media")
        defer { try? FileManager.default.removeItem(atPath: data); try? FileManager.default.removeItem(atPath: media) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: media + "/IMAGES", withIntermediateDirectories: true)
        let demo = Corpus.packageRoot.appendingPathComponent("TestImages/demo").path
        for n in 1...3 { try fm.copyItem(atPath: "\(demo)/ct-\(n).dcm", toPath: "\(media)/IMAGES/IM\(n)") }
        let made = try Corpus.runCapturing(dcmmkdir, ["--input-directory", media, "--output-file", media + "/DICOMDIR",
                                                      "--recurse", "+I", "IMAGES"])
        XCTAssertEqual(made.status, 0, String(decoding: made.err, as: UTF8.self))
        // Detected by its Media Storage SOP Class, not its name.
        try fm.copyItem(atPath: media + "/DICOMDIR", toPath: media + "/IMAGES/INDEX")
        fm.createFile(atPath: media + "/README.TXT", contents: Data("Open the viewer to see the images.\r\n".utf8))
        fm.createFile(atPath: media + "/autorun.inf", contents: Data("[autorun]\r\nopen=viewer.exe\r\nicon=viewer.ico\r\n".utf8))
        fm.createFile(atPath: media + "/cover.jpg", contents: Data([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10] + Array("JFIF".utf8) + [UInt8](repeating: 0x11, count: 300)))

        // ct-1 is stored first; the media then holds it again, RLE-encoded (tessera transcode --to rle).
        let first = try Corpus.runCapturing(tessera, ["import", "\(demo)/ct-1.dcm", "--data", data])
        XCTAssertEqual(first.status, 0, String(decoding: first.err, as: UTF8.self))
        try fm.createDirectory(atPath: media + "/RLE", withIntermediateDirectories: true)
        let rle = try Corpus.runCapturing(tessera, ["transcode", "\(demo)/ct-1.dcm", media + "/RLE/IM1", "--to", "rle"])
        XCTAssertEqual(rle.status, 0, String(decoding: rle.err, as: UTF8.self))

        let run = try Corpus.runCapturing(tessera, ["import", media, "--data", data, "--print-outcomes"])
        let summary = String(decoding: run.err, as: UTF8.self)
        let lines = String(decoding: run.out, as: UTF8.self)
        XCTAssertEqual(run.status, 0, summary)
        XCTAssertTrue(summary.contains("stored: 2\n"), summary)
        XCTAssertTrue(summary.contains("duplicates: 1\n"), summary)
        XCTAssertTrue(summary.contains("duplicates of the same instance, different encoding (stored copy kept): 1\n"), summary)
        XCTAssertTrue(summary.contains("skipped: 5 not DICOM (2 DICOMDIR)\n"), summary)
        XCTAssertTrue(summary.contains("failed: 0\n"), summary)
        XCTAssertTrue(lines.contains("skipped-dicomdir - \(media)/IMAGES/INDEX"), lines)
        XCTAssertTrue(lines.contains("skipped-not-dicom - \(media)/autorun.inf"), lines)
        XCTAssertTrue(lines.contains("duplicate-other-encoding "), lines)

        // The stored copy is still the Explicit VR Little Endian one.
        let store = try Datastore(folder: data, access: .readOnly)
        let set = try await XCTUnwrapAsync(try await store.index.imageSets(ImageSetFilter()).first)
        let instances = try await store.index.instances(of: set.id, version: nil)
        XCTAssertEqual(instances.count, 3)
        XCTAssertEqual(Set(instances.map(\.transferSyntaxUID)), ["1.2.840.10008.1.2.1"])
    }

    /// Data folder paths that cannot be one say why, without Foundation's error dumps.
    func testDataFolderErrorsNameTheCause() throws {
        let tessera = try Corpus.product("tessera")
        let base = try StoreFixtures.temporaryFolder("cli-folder-errors")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let file = base + "/file"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let cases: [([String], String)] = [
            (["imagesets", "--data", file], "tessera: \(file) is a file, not a data folder\n"),
            (["verify", "--data", file + "/sub"], "tessera: cannot read the data folder \(file)/sub: Not a directory\n"),
            (["import", StoreFixtures.demoPath, "--data", file + "/sub"], "tessera: cannot create the data folder \(file)/sub: Not a directory\n"),
            (["prune", "--data", file], "tessera: \(file) is a file, not a data folder\n"),
        ]
        for (arguments, expected) in cases {
            let r = try Corpus.runCapturing(tessera, arguments)
            XCTAssertEqual(r.status, 1, arguments.joined(separator: " "))
            XCTAssertEqual(String(decoding: r.err, as: UTF8.self), expected)
        }
    }
}
