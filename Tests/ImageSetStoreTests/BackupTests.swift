import DICOMCore
import Foundation
@testable import ImageSetStore
import NIOConcurrencyHelpers
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
import StoreTestSupport
#endif

/// `tessera backup` beside a running `tessera serve` that is being written to, then `tessera
/// restore` and `tessera verify` (Docs/operations.md, "Backup and restore").
final class BackupTests: XCTestCase {
    var root = ""
    override func setUpWithError() throws { root = try StoreFixtures.temporaryFolder("backup") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: root) }

    func tessera(_ arguments: [String]) async throws -> (status: Int32, out: String, err: String) {
        let r = try Corpus.runCapturing(try Corpus.product("tessera"), arguments)
        return (r.status, String(decoding: r.out, as: UTF8.self), String(decoding: r.err, as: UTF8.self))
    }

    /// STOW-RS of one instance with curl: the HTTP status.
    static func stow(_ file: String, port: Int) async throws -> String {
        let r = try Corpus.runCapturing(try Corpus.tool("curl"), ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/dicom",
                                                                  "--data-binary", "@" + file, "http://127.0.0.1:\(port)/dicomweb/studies"])
        return String(decoding: r.out, as: UTF8.self)
    }

    func testBackupBesideAWritingServerRestoresBitIdentical() async throws {
        let data = root + "/data", backup = root + "/backup", restored = root + "/restored"
        let port = Self.freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: try Corpus.product("tessera"))
        server.arguments = ["serve", "--data", data, "--port", String(port), "--no-demo"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { if server.isRunning { server.terminate(); server.waitUntilExit() } }
        var up = false
        for _ in 0..<300 where !up {
            up = try Corpus.runCapturing(try Corpus.tool("curl"), ["-sf", "http://127.0.0.1:\(port)/health"]).status == 0
            if !up { usleep(100_000) }
        }
        XCTAssertTrue(up, "tessera serve did not start")

        // Instances with their own UIDs, written as files for curl; the bytes are kept to compare.
        let sent = NIOLockedValueBox<[String: [UInt8]]>([:])
        let stopped = NIOLockedValueBox(false)
        let folder = root
        let done = DispatchSemaphore(value: 0)
        let failure = NIOLockedValueBox<(any Error)?>(nil)
        Task.detached {
            do { _ = try await BackupTests.stowUntilStopped(stopped, sent: sent, folder: folder, port: port) } catch { failure.withLockedValue { $0 = error } }
            done.signal()
        }
        while sent.withLockedValue({ $0.count }) < 5 && failure.withLockedValue({ $0 == nil }) { usleep(50_000) }
        let b = try await tessera(["backup", "--data", data, "--to", backup])
        XCTAssertEqual(b.status, 0, b.err)
        XCTAssertTrue(b.out.contains("backed up the index"), b.out)
        // Writes went on during the backup and after it.
        let atBackup = sent.withLockedValue { $0.count }
        while sent.withLockedValue({ $0.count }) < atBackup + 3 && failure.withLockedValue({ $0 == nil }) { usleep(50_000) }
        stopped.withLockedValue { $0 = true }
        done.wait()
        if let error = failure.withLockedValue({ $0 }) { throw error }
        server.terminate()
        server.waitUntilExit()

        let refused = try await tessera(["restore", "--from", backup, "--data", data])
        XCTAssertEqual(refused.status, 1, "a non-empty data folder is refused")
        XCTAssertTrue(refused.err.contains("is not empty"), refused.err)
        let r = try await tessera(["restore", "--from", backup, "--data", restored])
        XCTAssertEqual(r.status, 0, r.err)
        let v = try await tessera(["verify", "--data", restored])
        XCTAssertEqual(v.status, 0, v.out + v.err)
        XCTAssertTrue(v.out.hasSuffix("ok\n"), v.out)
        let a = try await tessera(["audit", "verify", "--data", restored])
        XCTAssertEqual(a.status, 0, a.out + a.err)

        // Every instance the backup's index lists, bit-identical from the restored folder.
        let store = try Datastore(folder: restored, access: .readOnly)
        let listed = try Datastore(folder: backup, access: .readOnly)
        var checked = 0
        let stored = sent.withLockedValue { $0 }
        for set in try await listed.index.imageSets(ImageSetFilter()) {
            for instance in try await listed.index.instances(of: set.id, version: nil) {
                let restoredRecord = try await XCTUnwrapAsync(try store.index.instance(sopInstanceUID: instance.sopInstanceUID))
                let bytes = try await store.blobs.read(restoredRecord.blob)
                XCTAssertEqual(bytes, stored[instance.sopInstanceUID], instance.sopInstanceUID)
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 5)
        XCTAssertLessThan(checked, stored.count, "instances stored after the snapshot are not in it")
    }

    func testRestoreRefusesACorruptBlobAndAnUnfinishedBackup() async throws {
        let data = root + "/data", backup = root + "/backup"
        do {
            let store = try Datastore(folder: data)
            _ = await store.ingest(staged: [try store.blobs.stage(bytes: try StoreFixtures.instance(sop: "1.2.826.0.1.3680043.9.7433.8.1"))], reason: "test")
        }
        await XCTAssertEqualAsync(try await tessera(["backup", "--data", data, "--to", backup, "--copy"]).status, 0)
        let blob = try XCTUnwrap(FileManager.default.subpathsOfDirectory(atPath: backup + "/blobs").first { $0.count > 64 })
        // One flipped byte: restore fails naming the blob and leaves nothing behind.
        let path = backup + "/blobs/" + blob
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[200] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let r = try await tessera(["restore", "--from", backup, "--data", root + "/restored"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.err.contains("is corrupt"), r.err)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/restored"), [])
        try FileManager.default.removeItem(atPath: backup + "/backup.json")
        let unfinished = try await tessera(["restore", "--from", backup, "--data", root + "/restored"])
        XCTAssertEqual(unfinished.status, 1)
        XCTAssertTrue(unfinished.err.contains("not a complete Tessera backup"), unfinished.err)
    }

    /// STOW-RS of new instances one after another until `stopped`; the ones stored go in `sent`.
    static func stowUntilStopped(_ stopped: NIOLockedValueBox<Bool>, sent: NIOLockedValueBox<[String: [UInt8]]>, folder: String, port: Int) async throws -> Int {
        var n = 0
        while !stopped.withLockedValue({ $0 }) {
            let sop = "1.2.826.0.1.3680043.9.7433.9.\(n)"
            let bytes = try StoreFixtures.instance(study: "1.2.826.0.1.3680043.9.7433.9", series: "1.2.826.0.1.3680043.9.7433.9.1", sop: sop)
            let file = folder + "/stow-\(n).dcm"
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            if try await stow(file, port: port) == "200" { sent.withLockedValue { $0[sop] = bytes } }
            n += 1
        }
        return n
    }

    /// A loopback port nothing listens on now.
    static func freePort() -> Int { Corpus.freeLoopbackPort() }
}
