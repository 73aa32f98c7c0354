import DICOMCore
import DICOMParser
import Foundation
import NIOCore
import GRDB
@testable import ImageSetStore
import PixelData
import TestSupport
import XCTest
import StoreTestSupport

final class DatastoreTests: XCTestCase {
    var folder = ""
    override func setUpWithError() throws { folder = try StoreFixtures.temporaryFolder() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

    func testStoredInstancesAreFoundAgainWithTheirBytes() async throws {
        let store = try await TestBackends.datastore(folder: folder)
        let bytes = try StoreFixtures.instance(sop: "1.2.3.4.1")
        let outcome = await store.ingest(bytes: bytes)
        XCTAssertEqual(outcome.status, .stored, outcome.message ?? "")
        XCTAssertEqual(outcome.isPrimary, true)
        let record = try await XCTUnwrapAsync(try await store.index.instance(sopInstanceUID: "1.2.3.4.1"))
        await XCTAssertEqualAsync(try await store.blobs.read(record.blob), bytes)
        XCTAssertEqual(record.studyInstanceUID, "1.2.826.0.1.3680043.9.7433.1")
        // The frame index points at the pixel bytes inside the blob.
        let frames = try await store.index.frames(of: record.id)
        XCTAssertEqual(frames.count, 1)
        let table = try FrameTable(file: try DICOMFile.read(bytes: bytes))
        await XCTAssertEqualAsync(try await store.blobs.read(record.blob, range: frames[0].offset..<(frames[0].offset + frames[0].length)),
                       try table.encodedFrame(0))
        let metadata = String(decoding: try await XCTUnwrapAsync(try await store.index.metadata(of: record.id)), as: UTF8.self)
        XCTAssertTrue(metadata.contains("\"BulkDataURI\":\"tessera-bulk:/studies/1.2.826.0.1.3680043.9.7433.1/series/1.2.826.0.1.3680043.9.7433.1.1/instances/1.2.3.4.1/bulkdata/7FE00010\""), metadata)
    }

    func testDuplicatesAreIdempotent() async throws {
        let store = try await TestBackends.datastore(folder: folder)
        let bytes = try StoreFixtures.instance(sop: "1.2.3.4.1")
        _ = await store.ingest(bytes: bytes)
        let again = await store.ingest(bytes: bytes)
        XCTAssertEqual(again.status, .duplicate)
        let sets = try await store.index.imageSets(ImageSetFilter())
        XCTAssertEqual(sets.count, 1)
        XCTAssertEqual(sets[0].version, 1, "a duplicate makes no new version")
        XCTAssertEqual(sets[0].instanceCount, 1)
    }

    func testConflictingInstancesGoToANonPrimarySetWithTheDifferences() async throws {
        let store = try await TestBackends.datastore(folder: folder)
        _ = await store.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.4.1"))
        let other = await store.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.4.2", patientName: "DOE^JOHN"))
        XCTAssertEqual(other.status, .stored)
        XCTAssertEqual(other.isPrimary, false)
        XCTAssertEqual(other.conflicts, [AttributeConflict(keyword: "PatientName", imageSetValue: "DOE^JANE", instanceValue: "DOE^JOHN")])
        // A second instance with the same disagreement joins the same non-primary set.
        let third = await store.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.4.3", patientName: "DOE^JOHN"))
        XCTAssertEqual(third.imageSetID, other.imageSetID)
        // One that agrees with the primary joins it.
        let fourth = await store.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.4.4"))
        XCTAssertEqual(fourth.isPrimary, true)
        let sets = try await store.index.imageSets(ImageSetFilter())
        XCTAssertEqual(sets.count, 2)
        let nonPrimary = try XCTUnwrap(sets.first { !$0.isPrimary })
        XCTAssertEqual(nonPrimary.instanceCount, 2)
        XCTAssertEqual(nonPrimary.conflicts.map(\.keyword), ["PatientName"])
        XCTAssertEqual(try XCTUnwrap(sets.first { $0.isPrimary }).instanceCount, 2)
    }

    func testRejectPolicyRefusesDifferentBytesForAStoredSOPInstance() async throws {
        let store = try await TestBackends.datastore(folder: folder)
        _ = await store.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.4.1"))
        let changed = try StoreFixtures.instance(sop: "1.2.3.4.1", extra: [StoreFixtures.text(Tag(0x0008_103E), .LO, "CHANGED")])
        let outcome = await store.ingest(bytes: changed)
        XCTAssertEqual(outcome.status, .failed)
        XCTAssertEqual(outcome.reasonCode, FailureReason.duplicateSOPInstance)
        await XCTAssertEqualAsync(try await store.blobs.list().count, 1, "the refused blob is removed")
        await XCTAssertEqualAsync(try await store.index.imageSets(ImageSetFilter())[0].version, 1)
    }

    func testReplacePolicyMakesANewVersionAndKeepsTheOldOne() async throws {
        let store = try await TestBackends.datastore(folder: folder)
        try await store.setPolicy(.replace)
        let original = try StoreFixtures.instance(sop: "1.2.3.4.1")
        _ = await store.ingest(bytes: original)
        let changed = try StoreFixtures.instance(sop: "1.2.3.4.1", extra: [StoreFixtures.text(Tag(0x0008_103E), .LO, "CHANGED")])
        let outcome = await store.ingest(bytes: changed)
        XCTAssertEqual(outcome.status, .replaced)
        let set = try await XCTUnwrapAsync(try await store.index.imageSets(ImageSetFilter()).first)
        XCTAssertEqual(set.version, 2)
        XCTAssertEqual(set.instanceCount, 1)
        let v1 = try await store.index.instances(of: set.id, version: 1)
        let v2 = try await store.index.instances(of: set.id, version: 2)
        await XCTAssertEqualAsync(try await store.blobs.read(XCTUnwrap(v1.first).blob), original)
        await XCTAssertEqualAsync(try await store.blobs.read(XCTUnwrap(v2.first).blob), changed)
        await XCTAssertEqualAsync(try await store.index.versions(of: set.id).map(\.version), [1, 2])
    }

    func testHostileInputIsRejectedWithReasonsAndLosesNothing() async throws {
        let store = try await TestBackends.datastore(folder: folder)
        let good = try StoreFixtures.instance(sop: "1.2.3.4.1")
        _ = await store.ingest(bytes: good)
        let cases: [(String, [UInt8], UInt16)] = [
            ("path traversal UID", try StoreFixtures.instance(sop: "../../x"), FailureReason.dataSetDoesNotMatchSOPClass),
            ("65-character UID", try StoreFixtures.instance(sop: "1." + String(repeating: "2", count: 63)), FailureReason.dataSetDoesNotMatchSOPClass),
            ("leading zero", try StoreFixtures.instance(sop: "1.02.3"), FailureReason.dataSetDoesNotMatchSOPClass),
            ("study traversal", try StoreFixtures.instance(study: "/etc/passwd", sop: "1.2.3.9"), FailureReason.dataSetDoesNotMatchSOPClass),
            ("garbage", Array(repeating: 0x41, count: 4000), FailureReason.cannotUnderstand),
            ("empty", [], FailureReason.cannotUnderstand),
            ("truncated", Array(good.prefix(good.count - 100)), FailureReason.cannotUnderstand),
        ]
        for (name, bytes, code) in cases {
            let outcome = await store.ingest(bytes: bytes)
            XCTAssertEqual(outcome.status, .failed, name)
            XCTAssertEqual(outcome.reasonCode, code, "\(name): \(outcome.message ?? "")")
            XCTAssertFalse((outcome.message ?? "").isEmpty, name)
        }
        var missingStudy = try DICOMFile.read(bytes: good).dataSet
        _ = missingStudy.remove(.studyInstanceUID)
        let outcome = await store.ingest(bytes: try DICOMWriter.part10(missingStudy, transferSyntax: .explicitVRLittleEndian))
        XCTAssertEqual(outcome.reasonCode, FailureReason.dataSetDoesNotMatchSOPClass)
        XCTAssertTrue(outcome.message?.contains("Study Instance UID") ?? false)

        await XCTAssertEqualAsync(try await store.blobs.list().count, 1)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/blobs/tmp"), [])
        await XCTAssertTrueAsync(try await store.verify().isClean)
        let record = try await XCTUnwrapAsync(try await store.index.instance(sopInstanceUID: "1.2.3.4.1"))
        await XCTAssertEqualAsync(try await store.blobs.read(record.blob), good)
    }

    func testOversizedObjectsFailWithOutOfResources() async throws {
        let store = try Datastore(folder: folder, maximumInstanceSize: 1000)
        let outcome = await store.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.4.1"))
        XCTAssertEqual(outcome.reasonCode, FailureReason.outOfResources)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/blobs/tmp"), [])
    }

    func testStartupSweepsOrphansAndReportsMissingBlobs() async throws {
        var store: Datastore? = try await TestBackends.datastore(folder: folder)
        _ = await store!.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.4.1"))
        let kept = try await XCTUnwrapAsync(try await store!.index.instance(sopInstanceUID: "1.2.3.4.1")).blob
        _ = await store!.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.4.2"))
        let lost = try await XCTUnwrapAsync(try await store!.index.instance(sopInstanceUID: "1.2.3.4.2")).blob
        store = nil
        // An orphan (blob without index row), a leftover staged file, and a lost blob.
        let orphan = BlobID(digest: Array(repeating: UInt8(7), count: 32))
        let orphanPath = FileBlobStore(folderForTests: folder).path(orphan)
        try FileManager.default.createDirectory(atPath: (orphanPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: orphanPath, contents: Data([1, 2, 3]))
        FileManager.default.createFile(atPath: folder + "/blobs/tmp/x.part", contents: Data([1]))
        try FileManager.default.removeItem(atPath: FileBlobStore(folderForTests: folder).path(lost))

        let reopened = try await TestBackends.datastore(folder: folder)
        XCTAssertEqual(reopened.startup.orphanBlobsRemoved, 1)
        XCTAssertEqual(reopened.startup.stagedFilesRemoved, 1)
        XCTAssertEqual(reopened.startup.missingBlobs, [lost])
        XCTAssertFalse(FileManager.default.fileExists(atPath: orphanPath))
        await XCTAssertTrueAsync(try await reopened.blobs.contains(kept))
        await XCTAssertEqualAsync(try await reopened.verify().missing, [lost])
    }

    func testVerifyFindsCorruptBlobs() async throws {
        let store = try await TestBackends.datastore(folder: folder)
        _ = await store.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.4.1"))
        await XCTAssertTrueAsync(try await store.verify().isClean)
        let id = try await XCTUnwrapAsync(try await store.index.instance(sopInstanceUID: "1.2.3.4.1")).blob
        let path = try XCTUnwrap(store.blobs.localPath(id))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 1] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        await XCTAssertEqualAsync(try await store.verify().corrupt, [id])
    }

    func testASecondProcessCannotOpenTheSameFolder() async throws {
        let store = try await TestBackends.datastore(folder: folder)
        // A writer (readers share the folder: StoreCLIReadOnlyTests).
        let result = try Corpus.runCapturing(try Corpus.product("tessera"), ["prune", "--data", folder])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(String(decoding: result.err, as: UTF8.self).contains("is in use by process \(getpid())"))
        _ = store
    }

    /// A blob staged in one piece keeps its bytes for the parse; one staged in several does not. Either
    /// way the prepared instance is the same as when parsed from the staged file.
    func testStagedBytesAreParsedLikeTheStagedFile() async throws {
        let store = try await TestBackends.datastore(folder: folder)
        let bytes = try StoreFixtures.instance(sop: "1.2.3.4.9")
        let whole = try await store.blobs.stage(StoreFixtures.chunks(bytes, size: bytes.count), limit: 1 << 30)
        XCTAssertEqual(whole.bytes, bytes)
        let pieces = try await store.blobs.stage(StoreFixtures.chunks(bytes, size: 1000), limit: 1 << 30)
        XCTAssertNil(pieces.bytes)
        let writer = try store.blobs.makeWriter(limit: 1 << 30)
        try bytes.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[..<100])); try writer.write(UnsafeRawBufferPointer(rebasing: $0[100...])) }
        let written = try writer.finish()
        XCTAssertEqual(written.bytes, bytes)
        XCTAssertEqual(written.id, whole.id)

        let fromMemory = try InstancePreparation.prepare(whole, expectedStudy: nil).get()
        let fromFile = try InstancePreparation.prepare(whole.withoutBytes, expectedStudy: nil).get()
        XCTAssertEqual(fromMemory.metadataJSON, fromFile.metadataJSON)
        XCTAssertEqual(fromMemory.frames.map(\.offset), fromFile.frames.map(\.offset))
        XCTAssertEqual(fromMemory.frames.map(\.length), fromFile.frames.map(\.length))
        XCTAssertEqual(fromMemory.sopInstanceUID, "1.2.3.4.9")
        // What waits for the commit holds no copy of the bytes.
        XCTAssertNil(store.prepare(whole).staged.bytes)
        for s in [whole, pieces, written] { store.blobs.discard(s) }
    }

    func testMultiFrameFramesAreIndexedInPlace() async throws {
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/emri_small_jpeg_2k_lossless.dcm") })
        let store = try await TestBackends.datastore(folder: folder)
        let outcome = await store.ingest(file: path)
        XCTAssertEqual(outcome.status, .stored, outcome.message ?? "")
        let record = try await XCTUnwrapAsync(try await store.index.instance(sopInstanceUID: XCTUnwrap(outcome.sopInstanceUID)))
        let frames = try await store.index.frames(of: record.id)
        let table = try FrameTable(file: try DICOMFile.read(path: path))
        XCTAssertEqual(frames.count, 10)
        for f in frames {
            let ranges = f.ranges
            var bytes: [UInt8] = []
            for r in ranges { bytes += try await store.blobs.read(record.blob, range: r) }
            XCTAssertEqual(bytes, try table.encodedFrame(f.number - 1))
        }
    }
}

extension FileBlobStore {
    init(folderForTests folder: String) { try! self.init(root: folder + "/blobs") }
}

/// The file store's ranged reads, into an array and into a response buffer: the bytes of the
/// ranges asked, and an I/O error, not short data, when the file ends before a range does.
final class FileBlobStoreReadTests: XCTestCase {
    func testRangedReadsGiveTheBytesAndRefuseAShortFile() throws {
        let folder = try StoreFixtures.temporaryFolder("blob-reads")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let blobs = FileBlobStore(folderForTests: folder)
        let bytes = (0..<100).map { UInt8($0) }
        let staged = try blobs.stage(bytes: bytes)
        _ = try blobs.commit(staged)
        XCTAssertEqual(try blobs.read(staged.id, range: 10..<20), Array(bytes[10..<20]))
        var buffer = ByteBuffer()
        try blobs.read(staged.id, ranges: [5..<8, 8..<8, 90..<100], into: &buffer)
        XCTAssertEqual(Array(buffer.readableBytesView), Array(bytes[5..<8] + bytes[90..<100]))
        for read in [{ _ = try blobs.read(staged.id, range: 95..<120) },
                     { var b = ByteBuffer(); try blobs.read(staged.id, ranges: [0..<4, 95..<120], into: &b) }] as [() throws -> Void] {
            XCTAssertThrowsError(try read()) { XCTAssertEqual(($0 as? BlobStoreError)?.kind, .io) }
        }
    }
}

final class DatastoreIngestOptionsTests: XCTestCase {
    func testTranscodeOnIngestServesHTJ2KFramesAndKeepsTheOriginal() async throws {
        let folder = try StoreFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/emri_small.dcm") })
        let store = try await TestBackends.datastore(folder: folder)
        try await store.setTranscodeOnIngest("1.2.840.10008.1.2.4.201")
        let outcome = await store.ingest(file: path)
        XCTAssertEqual(outcome.status, .stored, outcome.message ?? "")
        let record = try await XCTUnwrapAsync(try await store.index.instance(sopInstanceUID: XCTUnwrap(outcome.sopInstanceUID)))
        await XCTAssertEqualAsync(try await store.blobs.read(record.blob), [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), "original kept")
        XCTAssertNotEqual(record.framesBlob, record.blob)
        XCTAssertEqual(record.framesTransferSyntaxUID, "1.2.840.10008.1.2.4.201")
        let original = try FrameTable(file: try DICOMFile.read(path: path))
        let frames = try await store.index.frames(of: record.id)
        XCTAssertEqual(frames.count, original.frames.count)
        for f in frames {
            var stream: [UInt8] = []
            for r in f.ranges { stream += try await store.blobs.read(record.framesBlob, range: r) }
            XCTAssertEqual(Array(stream.prefix(2)), [0xFF, 0x4F], "an HTJ2K codestream")
            let decoded = try HTJ2KCodec().decode(stream, description: original.description)
            XCTAssertEqual(decoded.bytes, try original.decodeFrame(f.number - 1).bytes)
        }
        await XCTAssertTrueAsync(try await store.verify().isClean)
    }

    func testSeriesMetadataIsPrecomputedPerVersion() async throws {
        let folder = try StoreFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try await TestBackends.datastore(folder: folder)
        _ = await store.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.8.1"))
        let set = try await XCTUnwrapAsync(try await store.index.imageSets(ImageSetFilter()).first)
        let series = "1.2.826.0.1.3680043.9.7433.1.1"
        func instancesInMetadata() async throws -> [String] {
            let gz = try await XCTUnwrapAsync(try await store.index.seriesMetadataGzip(imageSetID: set.id, seriesInstanceUID: series))
            let json = try JSONSerialization.jsonObject(with: Data(try SeriesMetadata.gunzip(gz))) as? [[String: Any]]
            return (json ?? []).compactMap { (($0["00080018"] as? [String: Any])?["Value"] as? [String])?.first }
        }
        func readerSees() async throws -> [String] {
            let json = try await JSONSerialization.jsonObject(with: Data(try store.index.seriesMetadata(imageSetID: set.id, seriesInstanceUID: series).readableBytesView))
            return ((json as? [[String: Any]]) ?? []).compactMap { (($0["00080018"] as? [String: Any])?["Value"] as? [String])?.first }
        }
        await XCTAssertEqualAsync(try await readerSees(), ["1.2.3.8.1"], "a pending series is built from its rows")
        try await store.flushMetadata()
        await XCTAssertEqualAsync(try await instancesInMetadata(), ["1.2.3.8.1"])
        _ = await store.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.8.2"))
        await XCTAssertEqualAsync(await Set(try readerSees()), ["1.2.3.8.1", "1.2.3.8.2"], "the new version, before any refresh")
        try await store.flushMetadata()
        await XCTAssertEqualAsync(await Set(try instancesInMetadata()), ["1.2.3.8.1", "1.2.3.8.2"])
        await XCTAssertEqualAsync(await Set(try readerSees()), ["1.2.3.8.1", "1.2.3.8.2"])
        // Without a flush, the store refreshes on its own shortly after the commit.
        _ = await store.ingest(bytes: try StoreFixtures.instance(sop: "1.2.3.8.3"))
        for _ in 0..<50 where await (try? store.index.seriesMetadataGzip(imageSetID: set.id, seriesInstanceUID: series)) == nil {
            try await Task.sleep(for: .milliseconds(100))
        }
        await XCTAssertEqualAsync(await Set(try instancesInMetadata()), ["1.2.3.8.1", "1.2.3.8.2", "1.2.3.8.3"])
        _ = try await store.remove(study: "1.2.826.0.1.3680043.9.7433.1", sop: "1.2.3.8.2")
        await XCTAssertEqualAsync(await Set(try readerSees()), ["1.2.3.8.1", "1.2.3.8.3"])
    }

    /// A data folder written before migration v2 keeps every instance's JSON when v2 moves it.
    func testMigrationV2KeepsInstanceMetadata() throws {
        let folder = try StoreFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/index.sqlite"
        do {
            let pool = try DatabasePool(path: path)
            try SQLiteIndex.migrator.migrate(pool, upTo: "v1")
            try pool.write { db in
                try db.execute(sql: """
                    INSERT INTO image_set(id, study_instance_uid, is_primary, latest_version, created_at, updated_at, patient_id, patient_name,
                        patient_birth_date, patient_sex, study_date, study_time, accession_number, study_id, study_description,
                        referring_physician_name, institution_name) VALUES ('s', '1.2.3', 1, 1, 0, 0, '', '', '', '', '', '', '', '', '', '', '');
                    INSERT INTO instance(id, image_set_id, study_instance_uid, series_instance_uid, sop_instance_uid, sop_class_uid,
                        transfer_syntax_uid, blob_id, blob_size, frames_in_place, metadata, added_version, stored_at)
                    VALUES (7, 's', '1.2.3', '1.2.3.1', '1.2.3.1.1', '1.2.840.10008.5.1.4.1.1.7', '1.2.840.10008.1.2.1', 'x', 1, 1, X'7B7D', 1, 0);
                    """)
            }
        }
        let index = try SQLiteIndex(path: path)
        XCTAssertEqual(try index.metadata(of: 7), Array("{}".utf8))
        XCTAssertEqual(String(buffer: try index.seriesMetadata(imageSetID: "s", seriesInstanceUID: "1.2.3.1")), "[{}]")
    }
}
