import DICOMCore
import DICOMParser
@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import NIOCore
import PixelData
import TestSupport
import XCTest

/// Retrieval that transcodes (PS3.18 §8.7.3.5.2: Explicit VR Little Endian when Accept names no
/// transfer syntax) decodes instances, and the frames of a multi-frame instance, in parallel on
/// the work pool while the response streams in order (issue 15 §4): the bytes are those of the
/// serial path, the order is the index's, a failure ends the body where the serial path did, and
/// no more than the window is ever in flight.
final class ParallelRetrieveTests: DICOMwebTestCase, @unchecked Sendable {
    static let j2k = "1.2.840.10008.1.2.4.90"
    static let accept: HTTPFields = [.accept: "multipart/related; type=\"application/dicom\""]

    /// `bytes` (Part 10) re-encoded as J2K lossless, with SOP Instance UID `sop`.
    static func j2kInstance(_ bytes: [UInt8], sop: String) throws -> [UInt8] {
        let file = try DICOMFile.read(bytes: bytes)
        let (transcoded, syntax) = try Transcoder.transcode(file, to: j2k)
        var ds = transcoded
        ds.set(text(0x0008_0018, .UI, sop))
        ds.set(text(0x0020_000D, .UI, study))
        ds.set(text(0x0020_000E, .UI, series))
        var meta = file.meta
        meta.set(text(0x0002_0003, .UI, sop))
        return try DICOMWriter.part10(ds, transferSyntax: syntax, meta: meta)
    }

    /// What the serial path sends for a stored instance: transcoded to Explicit VR LE, then written.
    static func serial(_ stored: [UInt8]) throws -> [UInt8] {
        let file = try DICOMFile.read(bytes: stored)
        let (ds, syntax) = try Transcoder.transcode(file, to: TransferSyntax.explicitVRLittleEndian.uid)
        return try DICOMWriter.part10(ds, transferSyntax: syntax, meta: file.meta)
    }

    /// The series' instances as stored (`transfer-syntax=*`), the bytes the parallel path must match once decoded.
    static func asStored(_ client: any TestClientProtocol, _ uri: String) async throws -> [[UInt8]] {
        try await client.execute(uri: uri, method: .get, headers: [.accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=*"]) { r in
            try Self.parts(r.body, contentType: r.headers[.contentType] ?? "").map(\.body)
        }
    }

    func sopUID(_ part: [UInt8]) throws -> String {
        try XCTUnwrap(try DICOMFile.read(bytes: part).dataSet.string(.sopInstanceUID)).trimmingCharacters(in: "\0 ")
    }

    func testASeriesTranscodedInParallelIsTheSerialBytesInOrderWithinTheWindow() async throws {
        let instances = try (1...12).map { try Self.j2kInstance(try Self.instance(sop: "1.2.3.15.4.\($0)"), sop: "1.2.3.15.4.\($0)") }
        try await withApp { client in
            let (status, _) = try await self.stow(client, instances)
            XCTAssertEqual(status, .ok)
            let uri = "/dicomweb/studies/\(Self.study)/series/\(Self.series)"
            let stored = try await Self.asStored(client, uri)
            XCTAssertEqual(stored.count, 12)
            OrderedPrefetch<ByteBuffer>.resetPeak()
            try await client.execute(uri: uri, method: .get, headers: Self.accept) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(parts.count, 12)
                for (k, part) in parts.enumerated() {
                    XCTAssertTrue(part.headers.contains("transfer-syntax=1.2.840.10008.1.2.1"), part.headers)
                    XCTAssertEqual(try self.sopUID(part.body), try self.sopUID(stored[k]), "part \(k) in the index's order")
                    XCTAssertEqual(part.body, try Self.serial(stored[k]), "part \(k): the serial path's bytes")
                }
            }
            let window = 2 * ProcessInfo.processInfo.activeProcessorCount
            XCTAssertGreaterThan(OrderedPrefetch<ByteBuffer>.peakInFlight, 1, "instances were made ahead")
            XCTAssertLessThanOrEqual(OrderedPrefetch<ByteBuffer>.peakInFlight, window, "never more than 2 × cores instances in flight")
        }
    }

    func testAMultiFrameInstanceIsTranscodedFrameByFrameInParallel() async throws {
        // pydicom-data's 10-frame MR, as J2K: its frames are decoded on the pool, written in order.
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/emri_small.dcm") })
        let bytes = try Self.j2kInstance([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), sop: "1.2.3.15.4.100")
        XCTAssertEqual(try FrameTable(file: try DICOMFile.read(bytes: bytes)).frames.count, 10)
        try await withApp { client in
            let (status, _) = try await self.stow(client, [bytes])
            XCTAssertEqual(status, .ok)
            let uri = "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/1.2.3.15.4.100"
            let stored = try await client.execute(uri: uri, method: .get, headers: [.accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=*"]) { r in
                try XCTUnwrap(try Self.parts(r.body, contentType: r.headers[.contentType] ?? "").first).body
            }
            OrderedPrefetch<(bytes: [UInt8], description: PixelDescription)>.resetPeak()
            try await client.execute(uri: uri, method: .get, headers: Self.accept) { r in
                XCTAssertEqual(r.status, .ok)
                let part = try XCTUnwrap(try Self.parts(r.body, contentType: r.headers[.contentType] ?? "").first)
                XCTAssertEqual(part.body, try Self.serial(stored), "the serial transcoder's bytes")
                let original = try FrameTable(file: try DICOMFile.read(bytes: stored))
                let sent = try FrameTable(file: try DICOMFile.read(bytes: part.body))
                for f in 0..<10 { XCTAssertEqual(try sent.encodedFrame(f), try original.decodeFrame(f).bytes, "frame \(f + 1) in its place") }
            }
            let peak = OrderedPrefetch<(bytes: [UInt8], description: PixelDescription)>.peakInFlight
            XCTAssertGreaterThan(peak, 1, "frames were decoded ahead")
            XCTAssertLessThanOrEqual(peak, 2 * ProcessInfo.processInfo.activeProcessorCount)
        }
    }

    /// A frame that cannot be decoded in the middle of a series: the instances before it are sent
    /// whole, then the body ends without its closing delimiter, as the serial path ended it;
    /// nothing after the failure is sent even though it was decoded ahead.
    func testADecodeErrorMidSeriesEndsTheBodyWhereTheSerialPathDid() async throws {
        var instances = try (1...8).map { try Self.j2kInstance(try Self.instance(sop: "1.2.3.15.5.\($0)"), sop: "1.2.3.15.5.\($0)") }
        // Instance 4's codestream loses its SOC marker: it parses, and its frame does not decode.
        let broken = try DICOMFile.read(bytes: instances[3])
        var ds = broken.dataSet
        guard case .fragments(let f)? = ds[.pixelData]?.value else { return XCTFail("no fragments") }
        var storage = Array(f.storage.bytes)
        for i in f.fragments[0].prefix(64) { storage[i] = 0x11 }
        ds.set(DataElement(tag: .pixelData, vr: .OB, value: .fragments(EncapsulatedFragments(storage: ByteStorage(copying: storage),
                                                                                             basicOffsetTable: f.basicOffsetTable, fragments: f.fragments))))
        instances[3] = try DICOMWriter.part10(ds, transferSyntax: broken.transferSyntax, meta: broken.meta)
        XCTAssertThrowsError(try Self.serial(instances[3]), "the serial path fails on it")
        let all = instances
        try await withApp { client in
            let (status, _) = try await self.stow(client, all)
            XCTAssertEqual(status, .ok)
            let uri = "/dicomweb/studies/\(Self.study)/series/\(Self.series)"
            let stored = try await Self.asStored(client, uri)
            let bad = try XCTUnwrap(stored.firstIndex { (try? Self.serial($0)) == nil })
            XCTAssertEqual(bad, 3)
            var body = ByteBuffer(), contentType = ""
            do {
                try await client.execute(uri: uri, method: .get, headers: Self.accept) { r in
                    XCTAssertEqual(r.status, .ok, "the failure comes after the response started")
                    (body, contentType) = (r.body, r.headers[.contentType] ?? "")
                }
            } catch {
                // The in-process client reports a body that failed as an error, with nothing of it.
                return
            }
            let parts = try Self.parts(body, contentType: contentType)
            XCTAssertEqual(parts.count, bad, "every instance before the broken one, and none after")
            for (k, part) in parts.enumerated() { XCTAssertEqual(part.body, try Self.serial(stored[k]), "part \(k)") }
            XCTAssertFalse(String(decoding: body.readableBytesView, as: UTF8.self).hasSuffix("--\r\n"), "the body does not end as if complete")
        }
    }

    /// Large instances shrink the series window (decoded bytes held ahead stay within the budget);
    /// small ones keep the pool's window; a huge one goes alone, as the serial path would.
    func testTheSeriesWindowShrinksForLargeInstances() throws {
        let pool = WorkPool(concurrency: 8, queue: 8)
        func record(rows: Int, columns: Int, bits: Int, frames: Int?) -> InstanceRecord {
            var a = InstanceAttributes()
            a.rows = rows; a.columns = columns; a.bitsAllocated = bits; a.numberOfFrames = frames
            let blob = BlobID(hex: String(repeating: "ab", count: 32))!
            return InstanceRecord(id: 1, imageSetID: "s", studyInstanceUID: "1.2", seriesInstanceUID: "1.2.3", sopInstanceUID: "1.2.3.4",
                                  sopClassUID: "1.2.840.10008.5.1.4.1.1.2", transferSyntaxUID: "1.2.840.10008.1.2.4.90", blob: blob, blobSize: 1,
                                  attributes: a, framesInPlace: false, addedInVersion: 1, framesBlob: blob, framesTransferSyntaxUID: "")
        }
        let ct = record(rows: 512, columns: 512, bits: 16, frames: nil)  // 1.5 MiB at 3 samples
        XCTAssertEqual(DICOMwebService.seriesPrefetchWindow([ct, ct], pool: pool), pool.prefetchWindow)
        let mr = record(rows: 256, columns: 256, bits: 16, frames: 300)  // 112.5 MiB
        XCTAssertEqual(DICOMwebService.seriesPrefetchWindow([ct, mr], pool: pool), 2, "256 MiB / 112.5 MiB")
        let huge = record(rows: 4096, columns: 4096, bits: 16, frames: 100)
        XCTAssertEqual(DICOMwebService.seriesPrefetchWindow([huge, ct], pool: pool), 1)
    }

    /// The prefetch itself: results in order, at most `window` started and not taken, a failure
    /// raised at its own index after every earlier result, and what was started beyond it cancelled.
    func testOrderedPrefetchKeepsOrderTheWindowAndTheFailuresPlace() async throws {
        final class Log: @unchecked Sendable {
            let lock = NSLock()
            var started: [Int] = [], cancelled: [Int] = []
            func add(_ i: Int, cancelled c: Bool = false) { lock.lock(); if c { cancelled.append(i) } else { started.append(i) }; lock.unlock() }
        }
        let log = Log()
        OrderedPrefetch<Int>.resetPeak()
        var ahead: OrderedPrefetch<Int>? = OrderedPrefetch(count: 20, window: 3) { i in
            log.add(i)
            // Later indices finish first: order must come from the prefetch, not from completion.
            // Those past the failure would take long: they are only ever cancelled.
            do { try await Task.sleep(nanoseconds: i > 9 ? 5_000_000_000 : UInt64(20 - i) * 2_000_000) } catch {
                log.add(i, cancelled: true)
                throw error
            }
            if i == 9 { throw DICOMwebError(.notAcceptable, "frame 9") }
            return i * i
        }
        for i in 0..<9 { let v = try await ahead!.value(i); XCTAssertEqual(v, i * i) }
        do {
            _ = try await ahead!.value(9)
            XCTFail("index 9 fails")
        } catch let e as DICOMwebError {
            XCTAssertEqual(e.message, "frame 9")
        }
        XCTAssertLessThanOrEqual(OrderedPrefetch<Int>.peakInFlight, 3, "never more than the window")
        XCTAssertEqual(Set(log.started), Set(0..<12), "started only up to the window past the failure")
        ahead = nil  // the body is dropped: what was started beyond the failure is cancelled
        try await Task.sleep(nanoseconds: 100_000_000)
        XCTAssertEqual(Set(log.cancelled), [10, 11], "indices 10 and 11 were cancelled")
    }
}
