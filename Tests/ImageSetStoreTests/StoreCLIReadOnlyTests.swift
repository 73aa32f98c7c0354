import Foundation
import GRDB
@testable import ImageSetStore
import TestSupport
import XCTest
import StoreTestSupport

/// The reading commands (`imagesets`, `imageset`, `verify`) open a data folder read-only: they
/// create, lock, migrate and sweep nothing, so they run beside `tessera serve`.
final class StoreCLIReadOnlyTests: XCTestCase {
    private func folderWithOneImageSet(_ name: String) async throws -> (data: String, imageSet: String) {
        let data = try StoreFixtures.temporaryFolder(name)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: data) }
        let store = try Datastore(folder: data)
        let outcome = await store.ingest(staged: [try store.blobs.stage(bytes: try StoreFixtures.instance(sop: "1.2.3.9.1"))], reason: "t")[0]
        return (data, try XCTUnwrap(outcome.imageSetID))
    }

    func testReadingCommandsCreateNoDataFolder() throws {
        let tessera = try Corpus.product("tessera")
        let base = try StoreFixtures.temporaryFolder("cli-absent")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let data = base + "/data"
        for arguments in [["imagesets", "--data", data], ["imagesets", "--data", data, "--json"], ["imageset", "x", "--data", data],
                          ["imageset", "x", "--data", data, "--json"], ["verify", "--data", data]] {
            let r = try Corpus.runCapturing(tessera, arguments)
            XCTAssertEqual(r.status, 1, arguments.joined(separator: " "))
            XCTAssertEqual(String(decoding: r.err, as: UTF8.self),
                           "tessera: no data folder at \(data); create one with `tessera import` or `tessera serve`\n")
            XCTAssertTrue(r.out.isEmpty)
            XCTAssertFalse(FileManager.default.fileExists(atPath: data), arguments.joined(separator: " "))
        }
        // A folder that is not a data folder stays as it was.
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let r = try Corpus.runCapturing(tessera, ["imagesets", "--data", data])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(String(decoding: r.err, as: UTF8.self).contains("is not a Tessera data folder"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: data), [])
    }

    /// verify reports what the start-up sweep would remove, and removes it only with --repair.
    func testVerifyOnlyReadsUnlessAskedToRepair() async throws {
        let tessera = try Corpus.product("tessera")
        let (data, _) = try await folderWithOneImageSet("cli-verify")
        let orphan = "abcd" + String(repeating: "0", count: 60)
        let orphanPath = "\(data)/blobs/ab/cd/\(orphan)"
        try FileManager.default.createDirectory(atPath: "\(data)/blobs/ab/cd", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: orphanPath, contents: Data("left by a crash".utf8))
        FileManager.default.createFile(atPath: "\(data)/blobs/tmp/staged", contents: Data("half".utf8))

        let check = try Corpus.runCapturing(tessera, ["verify", "--data", data])
        let text = String(decoding: check.out, as: UTF8.self)
        XCTAssertEqual(check.status, 1, text)
        XCTAssertTrue(text.contains("unreferenced: \(orphan)"), text)
        XCTAssertTrue(text.contains("verify --repair"), text)
        XCTAssertTrue(FileManager.default.fileExists(atPath: orphanPath), "verify without --repair removes nothing")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(data)/blobs/tmp/staged"))

        let repair = try Corpus.runCapturing(tessera, ["verify", "--repair", "--data", data])
        let repaired = String(decoding: repair.out, as: UTF8.self)
        XCTAssertEqual(repair.status, 0, repaired)
        XCTAssertTrue(repaired.contains("removed 1 unreferenced blob(s) and 1 staged file(s)"), repaired)
        XCTAssertTrue(repaired.hasSuffix("ok\n"), repaired)
        XCTAssertFalse(FileManager.default.fileExists(atPath: orphanPath))
    }

    /// SQLite in WAL mode lets readers share the index with the one writer; only writers need the lock.
    func testReadingCommandsWorkWhileServeHoldsTheFolder() async throws {
        let tessera = try Corpus.product("tessera")
        let (data, imageSet) = try await folderWithOneImageSet("cli-beside-serve")
        let log = data + ".serve.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: log) }
        let server = Process()
        server.executableURL = URL(fileURLWithPath: tessera)
        server.arguments = ["serve", "--data", data, "--port", String(Int.random(in: 20000..<40000)), "--no-demo"]
        server.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(30)
        while !(try String(contentsOfFile: log, encoding: .utf8)).contains("serving") {
            guard server.isRunning, Date() < deadline else {
                return XCTFail("the server did not start: " + ((try? String(contentsOfFile: log, encoding: .utf8)) ?? ""))
            }
            usleep(50_000)
        }

        let list = try Corpus.runCapturing(tessera, ["imagesets", "--data", data, "--json"])
        XCTAssertEqual(list.status, 0, String(decoding: list.err, as: UTF8.self))
        let sets = try XCTUnwrap(JSONSerialization.jsonObject(with: list.out) as? [[String: Any]])
        XCTAssertEqual(sets.map { $0["id"] as? String }, [imageSet])
        let show = try Corpus.runCapturing(tessera, ["imageset", imageSet, "--data", data])
        XCTAssertEqual(show.status, 0, String(decoding: show.err, as: UTF8.self))
        XCTAssertTrue(String(decoding: show.out, as: UTF8.self).contains("1.2.3.9.1"))
        let verify = try Corpus.runCapturing(tessera, ["verify", "--data", data])
        XCTAssertEqual(verify.status, 0, String(decoding: verify.out, as: UTF8.self) + String(decoding: verify.err, as: UTF8.self))

        for writer in [["import", StoreFixtures.demoPath, "--data", data], ["verify", "--repair", "--data", data]] {
            let r = try Corpus.runCapturing(tessera, writer)
            let err = String(decoding: r.err, as: UTF8.self)
            XCTAssertEqual(r.status, 1, err)
            XCTAssertEqual(err.split(separator: "\n").count, 1, err)
            XCTAssertTrue(err.hasPrefix("tessera: the data folder \(data) is in use by process \(server.processIdentifier) "), err)
            XCTAssertTrue(err.contains("HTTP API (STOW-RS: POST /dicomweb/studies) or stop it first"), err)
        }
        XCTAssertTrue(server.isRunning)
    }

    /// A read-only open never migrates: a schema this binary does not know is named, newer or older.
    func testReadOnlyOpenNamesAnUnknownSchema() async throws {
        let tessera = try Corpus.product("tessera")
        let (data, _) = try await folderWithOneImageSet("cli-schema")
        let db = try DatabaseQueue(path: data + "/index.sqlite")
        try await db.write { try $0.execute(sql: "INSERT INTO grdb_migrations(identifier) VALUES ('v999-from-the-future')") }
        for arguments in [["imagesets", "--data", data], ["import", StoreFixtures.demoPath, "--data", data]] {
            let r = try Corpus.runCapturing(tessera, arguments)
            let err = String(decoding: r.err, as: UTF8.self)
            XCTAssertEqual(r.status, 1, err)
            XCTAssertTrue(err.hasPrefix("tessera: the data folder \(data) was written by a newer Tessera"), err)
        }
        let applied = try await db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM grdb_migrations") } ?? 0
        try await db.write { db in
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v999-from-the-future'")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE rowid = (SELECT max(rowid) FROM grdb_migrations)")
        }
        let older = try Corpus.runCapturing(tessera, ["imagesets", "--data", data])
        let err = String(decoding: older.err, as: UTF8.self)
        XCTAssertEqual(older.status, 1, err)
        XCTAssertTrue(err.hasPrefix("tessera: the data folder \(data) has an older index schema"), err)
        await XCTAssertEqualAsync(try await db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM grdb_migrations") }, applied - 2, "nothing migrated it")
    }
}
