import DICOMCore
import DICOMParser
import Foundation
@testable import ImageSetStore
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
import StoreTestSupport
#endif

final class ConcurrencyAndCrashTests: XCTestCase {
    var folder = ""
    override func setUpWithError() throws { folder = try StoreFixtures.temporaryFolder("concurrency") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

    /// 8 clients send overlapping halves of one 24-instance study at the same time.
    func testConcurrentIngestsOfOneStudyGiveOnePrimarySetWithExactCounts() async throws {
        let store = try Datastore(folder: folder)
        let instances = try (1...24).map { try StoreFixtures.instance(sop: "1.2.3.5.\($0)") }
        let outcomes = await withTaskGroup(of: [IngestOutcome].self) { group in
            for client in 0..<8 {
                group.addTask {
                    var out: [IngestOutcome] = []
                    // Each client sends 12 instances, starting at a different place: every instance is sent 4 times.
                    for k in 0..<12 { out.append(await store.ingest(bytes: instances[(client * 3 + k) % 24])) }
                    return out
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        XCTAssertEqual(outcomes.count, 96)
        XCTAssertEqual(outcomes.filter { $0.status == .failed }, [])
        XCTAssertEqual(outcomes.filter { $0.status == .stored }.count, 24, "each instance stored exactly once")
        XCTAssertEqual(outcomes.filter { $0.status == .duplicate }.count, 72)
        let sets = try await store.index.imageSets(ImageSetFilter())
        XCTAssertEqual(sets.count, 1)
        XCTAssertTrue(sets[0].isPrimary)
        XCTAssertEqual(sets[0].instanceCount, 24)
        // Versions: contiguous from 1, counts never fall, the last one holds everything.
        let versions = try await store.index.versions(of: sets[0].id)
        XCTAssertEqual(versions.map(\.version), Array(1...versions.count))
        XCTAssertEqual(versions.last?.version, sets[0].version)
        XCTAssertEqual(versions.last?.instanceCount, 24)
        XCTAssertEqual(versions.map(\.instanceCount), versions.map(\.instanceCount).sorted())
        await XCTAssertEqualAsync(try await store.blobs.list().count, 24)
        await XCTAssertTrueAsync(try await store.verify().isClean)
    }

    /// 16 concurrent callers of the group commit, each with its own mix: every caller gets the
    /// outcomes of its own candidates, in order, whatever group they were committed in.
    func testGroupCommitReturnsEachCallerItsOwnOutcomes() async throws {
        let store = try Datastore(folder: folder)
        let results = await withTaskGroup(of: (Int, [IngestOutcome]).self) { group in
            for caller in 0..<16 {
                group.addTask {
                    var candidates: [Datastore.Candidate] = []
                    for k in 0..<3 {
                        let bytes = k == 2 ? Array("not dicom \(caller)".utf8) : (try? StoreFixtures.instance(sop: "1.2.3.9.\(caller).\(k)")) ?? []
                        if let staged = try? store.blobs.stage(bytes: bytes) { candidates.append(store.prepare(staged)) }
                    }
                    return (caller, await store.storeGrouped(candidates, reason: "test"))
                }
            }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        XCTAssertEqual(results.count, 16)
        for (caller, outcomes) in results {
            XCTAssertEqual(outcomes.map(\.status), [.stored, .stored, .failed], "caller \(caller)")
            XCTAssertEqual(outcomes.prefix(2).map(\.sopInstanceUID), ["1.2.3.9.\(caller).0", "1.2.3.9.\(caller).1"])
            XCTAssertEqual(outcomes[2].reasonCode, FailureReason.cannotUnderstand)
        }
        let set = try await XCTUnwrapAsync(try await store.index.imageSets(ImageSetFilter()).first)
        XCTAssertEqual(set.instanceCount, 32)
        let versions = try await store.index.versions(of: set.id)
        XCTAssertLessThanOrEqual(versions.count, 16, "at most one version per caller; fewer when grouped")
        XCTAssertEqual(versions.map(\.instanceCount), versions.map(\.instanceCount).sorted())
        await XCTAssertTrueAsync(try await store.verify().isClean)
    }

    /// Pruning races ingests of the same bytes: whichever wins, an instance the index holds always
    /// has its blob (the pending-blob lock orders a removal against a commit of the same content).
    func testPruningWhileTheSameBytesAreReStoredNeverLosesABlob() async throws {
        let store = try Datastore(folder: folder)
        let instances = try (1...6).map { try StoreFixtures.instance(sop: "1.2.3.7.\($0)") }
        for round in 0..<8 {
            for i in instances { _ = await store.ingest(bytes: i) }
            async let pruner: Void = {
                for _ in 0..<20 { _ = try? await store.prune(keep: 1) }
            }()
            // Delete and re-store while pruning runs: rows come and go naming the same blobs.
            _ = try await store.remove(study: "1.2.826.0.1.3680043.9.7433.1")
            for i in instances { _ = await store.ingest(bytes: i) }
            await pruner
            let report = try await store.verify()
            XCTAssertTrue(report.missing.isEmpty, "round \(round): \(report.missing)")
            await XCTAssertEqualAsync(try await store.index.currentInstances(study: "1.2.826.0.1.3680043.9.7433.1", series: nil, sop: nil, scope: .primary).count, 6)
        }
        try await store.prune(keep: 1)
        await XCTAssertTrueAsync(try await store.verify().isClean)
        await XCTAssertEqualAsync(try await store.blobs.list().count, 6)
    }

    /// SIGKILL an import at several points; after restart every instance it reported stored is
    /// there bit-identical, nothing half-stored is visible and orphans are swept.
    func testImportKilledMidwayLosesNothingAcknowledged() async throws {
        let tessera = try Corpus.product("tessera")
        let source = try StoreFixtures.temporaryFolder("crash-source")
        defer { try? FileManager.default.removeItem(atPath: source) }
        var originals: [String: [UInt8]] = [:]
        // Large enough that an import takes a while: 400 instances with 256 KiB of private padding each.
        let padding = DataElement(tag: Tag(0x0009_1010), vr: .OB, value: .bytes(Array(repeating: 0x5A, count: 256 * 1024)))
        let creator = StoreFixtures.text(Tag(0x0009_0010), .LO, "TESSERA TEST")
        for n in 1...400 {
            let sop = "1.2.3.6.\(n)"
            let bytes = try StoreFixtures.instance(sop: sop, extra: [creator, padding])
            originals[sop] = bytes
            FileManager.default.createFile(atPath: "\(source)/\(n).dcm", contents: Data(bytes))
        }
        for (round, killAfterLines) in [0, 1, 9, 40].enumerated() {
            let data = "\(folder)/round-\(round)"
            let acknowledged = try runAndKill(tessera, ["import", source, "--data", data, "--batch", "8", "--jobs", "2",
                                                         "--print-outcomes", "--quiet"], afterLines: killAfterLines,
                                          thenWait: UInt32(round) * 20_000)
            XCTAssertLessThan(acknowledged.count, originals.count, "round \(round): the import finished before the kill")
            let store = try Datastore(folder: data)
            print("crash round \(round): killed after \(acknowledged.count) acknowledged; start-up swept \(store.startup.orphanBlobsRemoved) orphan(s), \(store.startup.stagedFilesRemoved) staged file(s)")
            for sop in acknowledged {
                let record = try await XCTUnwrapAsync(try await store.index.instance(sopInstanceUID: sop), "round \(round): \(sop) acknowledged but not found")
                await XCTAssertEqualAsync(try await store.blobs.read(record.blob), originals[sop], "round \(round): \(sop) differs")
            }
            let report = try await store.verify()
            XCTAssertTrue(report.isClean, "round \(round): \(report)")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: data + "/blobs/tmp"), [])
            // Every indexed instance is whole: its blob is the original file.
            let sets = try await store.index.imageSets(ImageSetFilter())
            for set in sets {
                for i in try await store.index.instances(of: set.id, version: nil) {
                    await XCTAssertEqualAsync(try await store.blobs.read(i.blob), originals[i.sopInstanceUID], "round \(round): \(i.sopInstanceUID)")
                }
            }
            XCTAssertGreaterThanOrEqual(sets.first?.instanceCount ?? 0, acknowledged.count)
        }
    }

    /// Starts the command, reads outcome lines, and sends SIGKILL after `afterLines` of them
    /// (0: as soon as it starts). Returns the SOP Instance UIDs acknowledged as stored.
    func runAndKill(_ executable: String, _ arguments: [String], afterLines: Int, thenWait: UInt32) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var acknowledged: [String] = []
        var buffer = Data()
        var lines = 0
        if afterLines == 0 { usleep(150_000) }
        while lines < afterLines {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // finished before the kill point
            buffer += chunk
            while let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer = Data(buffer[(nl + 1)...])
                lines += 1
                let parts = line.split(separator: " ")
                if parts.count >= 2 && parts[0] == "stored" { acknowledged.append(String(parts[1])) }
            }
        }
        // A pause moves the kill into the next batch's copy, parse or commit.
        usleep(thenWait)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        // Lines already written before the kill were acknowledged too.
        buffer += out.fileHandleForReading.readDataToEndOfFile()
        for line in String(decoding: buffer, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count >= 2 && parts[0] == "stored" { acknowledged.append(String(parts[1])) }
        }
        return acknowledged
    }
}
