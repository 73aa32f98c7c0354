import DICOMCore
import DICOMParser
@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import NIOCore
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
import StoreTestSupport
#endif

/// A data folder on a 20 MiB tmpfs that the test fills (the tests run as root; mounting is part of
/// the test, never skipped). STOW-RS, DELETE, prune, /health and /ready through the router, on the
/// real store (Docs/security.md, "Limits").
final class DiskFullTests: DICOMwebTestCase, @unchecked Sendable {
    var mountPoint = ""
    var filler: String { mountPoint + "/filler" }

    override func setUpWithError() throws {
        mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-full-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = try Corpus.runCapturing("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=20m", "tmpfs", mountPoint])
        guard mount.status == 0 else {
            throw SetupError(description: "cannot mount a tmpfs at \(mountPoint) (the test needs root): \(String(decoding: mount.err, as: UTF8.self))")
        }
        folder = mountPoint + "/data"
        store = try Datastore(folder: folder, diskReserve: 2 << 20)
    }

    override func tearDownWithError() throws {
        store = nil
        _ = try? Corpus.runCapturing("/usr/bin/umount", [mountPoint])
        if (try? Corpus.runCapturing("/usr/bin/mountpoint", ["-q", mountPoint]))?.status == 0 {
            _ = try? Corpus.runCapturing("/usr/bin/umount", ["-l", mountPoint])
        }
        try? FileManager.default.removeItem(atPath: mountPoint)
    }

    var free: Int {
        var s = statvfs()
        statvfs(mountPoint, &s)
        return Int(s.f_bavail) * Int(s.f_frsize)
    }

    /// Appends zeros to the filler file until `leaving` bytes are free (0: until ENOSPC).
    func fill(leaving: Int) {
        let fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 64 << 10)
        while free > leaving {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min(chunk.count, max(free - leaving, 4096))) }
            if n <= 0 { break }
        }
    }

    /// An instance of about 1 MiB (a private OB value), in its own study when asked.
    static func big(_ sop: String, study: String = study) throws -> [UInt8] {
        return try instance(sop: sop, study: study, series: study + ".1",
                            extra: [text(0x0009_0010, .LO, "TESSERA TEST"), DataElement(tag: Tag(0x0009_1000), vr: .OB, value: .bytes(noise))])
    }

    /// 1 MiB that does not compress (one draw per 8 bytes: a byte per draw is slow in debug builds).
    static let noise: [UInt8] = {
        var g = SystemRandomNumberGenerator()
        return (0..<(1 << 17)).flatMap { _ in withUnsafeBytes(of: g.next() as UInt64) { Array($0) } }
    }()

    static func failureReasons(_ body: [String: Any]) -> [Int] {
        ((body["00081198"] as? [String: Any])?["Value"] as? [[String: Any]] ?? []).compactMap { ($0["00081197"] as? [String: Any])?["Value"] as? [Int] }.flatMap { $0 }
    }

    func status(_ client: any TestClientProtocol, _ path: String) async throws -> (HTTPResponse.Status, String) {
        try await client.execute(uri: path, method: .get) { ($0.status, String(buffer: $0.body)) }
    }

    /// PS3.18 §10.5.3 (Table 10.5.3-1) and Annex I (Table I.2-1): an instance that cannot be stored
    /// for want of space is a Failed SOP with Failure Reason 0xA700 (Out of Resources) in a normal
    /// STOW-RS response, 202 when others were stored, 409 when none; the instances stored before
    /// the disk filled stay; DELETE and prune work on the full disk; /health says degraded (200),
    /// /ready says 503 until space is back.
    func testFullDiskGetsA700PerInstanceAndStillDeletesAndPrunes() async throws {
        let studyA = "1.2.3.60", studyB = "1.2.3.61"
        let first = try [Self.big("1.2.3.60.1", study: studyA), Self.big("1.2.3.60.2", study: studyA)]
        let later = try (1...4).map { try Self.big("1.2.3.61.\($0)", study: studyB) }
        try await withApp { client in
            var (s, _) = try await self.stow(client, first)
            XCTAssertEqual(s, .ok)
            let probe1 = try await self.status(client, "/ready").0
            XCTAssertEqual(probe1, .ok)

            // Room for one more instance and a half: the first part fits, the second meets ENOSPC.
            self.fill(leaving: 3 << 19)
            let (status, body) = try await self.stow(client, later)
            XCTAssertEqual(status, .accepted, "\(body)")
            XCTAssertEqual(Self.failureReasons(body), [0xA700, 0xA700, 0xA700])
            XCTAssertEqual(((body["00081199"] as? [String: Any])?["Value"] as? [Any])?.count, 1)
            await XCTAssertNotNilAsync(try await self.store.index.instance(sopInstanceUID: "1.2.3.61.1"), "stored before the disk filled")
            try await client.execute(uri: "/dicomweb/studies/\(studyB)/series/\(studyB).1/instances/1.2.3.61.1", method: .get,
                                     headers: [.accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=*"]) { XCTAssertEqual($0.status, .ok) }
            var (ready, text) = try await self.status(client, "/ready")
            XCTAssertEqual(ready, .serviceUnavailable, text)
            (ready, text) = try await self.status(client, "/health")
            XCTAssertEqual(ready, .ok)
            XCTAssertEqual(text, #"{"disk":"full","status":"degraded"}"#)

            // 100 % full, the released reserve included: DELETE and prune still run.
            self.fill(leaving: 0)
            XCTAssertLessThan(self.free, 64 << 10)
            try await client.execute(uri: "/dicomweb/studies/\(studyA)", method: .delete) {
                XCTAssertEqual($0.status, .ok, String(buffer: $0.body))
                XCTAssertEqual(String(buffer: $0.body), #"{"removedInstances":2}"#)
            }
            let setA = try await XCTUnwrapAsync(try await self.store.index.imageSets(ImageSetFilter()).first { $0.studyInstanceUID == studyA })
            try await client.execute(uri: "/imagesets/\(setA.id)/versions?keep=1", method: .delete) {
                XCTAssertEqual($0.status, .ok, String(buffer: $0.body))
                let report = try XCTUnwrap(try Self.json($0.body) as? [String: Any])
                XCTAssertEqual(report["blobsRemoved"] as? Int, 2)
            }
            // Still full (the filler holds the space): a STOW is a 409 with 0xA700 for each instance.
            self.fill(leaving: 0)
            let (fullStatus, fullBody) = try await self.stow(client, [try Self.big("1.2.3.62.2", study: "1.2.3.62")])
            XCTAssertEqual(fullStatus, .conflict)
            XCTAssertEqual(Self.failureReasons(fullBody), [0xA700])
            let probe2 = try await self.status(client, "/ready").0
            XCTAssertEqual(probe2, .serviceUnavailable)

            // Space back: ready again, the reserve rewritten, STOW stores.
            unlink(self.filler)
            let probe3 = try await self.status(client, "/ready").0
            XCTAssertEqual(probe3, .ok)
            let probe4 = try await self.status(client, "/health").1
            XCTAssertEqual(probe4, #"{"status":"ok"}"#)
            (s, _) = try await self.stow(client, [try Self.big("1.2.3.62.3", study: "1.2.3.62")])
            XCTAssertEqual(s, .ok)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/blobs/tmp"), [], "no staged file is left")
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/reserve"))
    }
}

struct SetupError: Error, CustomStringConvertible {
    let description: String
}
