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
import StoreTestSupport

/// Work and size limits per request (Docs/security.md, "Limits"): what the request head says is
/// refused before the body, frame lists are bounded, decoding and transcoding go through the work
/// pool, and a deflate bomb costs a small multiple of its size.
final class RequestLimitsTests: DICOMwebTestCase, @unchecked Sendable {
    func withApp(_ configure: (inout DICOMwebConfiguration) -> Void, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var config = DICOMwebConfiguration()
        configure(&config)
        try await Application(router: buildRouter(store: store, configuration: config)).test(.router, body)
    }

    var staged: [String] { (try? FileManager.default.contentsOfDirectory(atPath: folder + "/blobs/tmp")) ?? [] }

    /// RFC 9110 §15.5.14: a declared Content-Length above the cap is a 413 from the head alone (the
    /// message names the declared length; the streaming cap could not). That it comes before the
    /// body is sent is ConnectionLimitsTests' (a real socket).
    func testDeclaredLengthAboveTheCapIs413() async throws {
        try await withApp({ $0.maximumRequestSize = 1000 }) { client in
            try await client.execute(uri: "/dicomweb/studies", method: .post,
                                     headers: [.contentType: "application/dicom"], body: ByteBuffer(bytes: [UInt8](repeating: 0, count: 5000))) {
                XCTAssertEqual($0.status, .contentTooLarge)
                XCTAssertTrue(String(buffer: $0.body).contains("request body of 5000 bytes"), String(buffer: $0.body))
            }
        }
        XCTAssertEqual(staged, [], "nothing of the body was staged")
    }

    /// RFC 9110 §15.5.16: a content coding the server does not decode is a 415 naming what it takes
    /// (Accept-Encoding, §12.5.3). STOW-RS never decoded gzip or deflate bodies.
    func testUnsupportedContentEncodingIs415() async throws {
        let instance = try Self.instance(sop: "1.2.3.40.1")
        try await withApp { client in
            for coding in ["gzip", "deflate", "br"] {
                try await client.execute(uri: "/dicomweb/studies", method: .post,
                                         headers: [.contentType: "application/dicom", .contentEncoding: coding], body: ByteBuffer(bytes: instance)) {
                    XCTAssertEqual($0.status, .unsupportedMediaType, coding)
                    XCTAssertEqual($0.headers[.acceptEncoding], "identity")
                }
            }
            try await client.execute(uri: "/dicomweb/studies", method: .post,
                                     headers: [.contentType: "application/dicom", .contentEncoding: "identity"], body: ByteBuffer(bytes: instance)) {
                XCTAssertEqual($0.status, .ok)
            }
        }
    }

    /// A frame listed twice is a 400 (it was `1,1,1,…`: a 2 kB URL, a thousand decodes of one frame);
    /// so is a list of more than 1,000 frames. PS3.18 §10.4.1.1.5 (frame list).
    func testRepeatedFramesAndLongListsAreRefused() async throws {
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/emri_small_jpeg_2k_lossless.dcm") })
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let ds = try DICOMFile.read(bytes: bytes).dataSet
        let uri = "/dicomweb/studies/\(ds.string(.studyInstanceUID)!)/series/\(ds.string(.seriesInstanceUID)!)/instances/\(ds.string(.sopInstanceUID)!)"
        try await withApp { client in
            _ = try await self.stow(client, [bytes])
            try await client.execute(uri: uri + "/frames/1,2,3", method: .get) { XCTAssertEqual($0.status, .ok) }
            for list in ["1,2,1", Array(repeating: "1", count: 700).joined(separator: ",")] {
                try await client.execute(uri: uri + "/frames/\(list)", method: .get) {
                    XCTAssertEqual($0.status, .badRequest)
                    XCTAssertTrue(String(buffer: $0.body).contains("more than once"), String(buffer: $0.body))
                }
                try await client.execute(uri: uri + "/frames/\(list)/rendered", method: .get) { XCTAssertEqual($0.status, .badRequest) }
            }
            try await client.execute(uri: uri + "/frames/" + (1...1001).map(String.init).joined(separator: ","), method: .get) {
                XCTAssertEqual($0.status, .badRequest)
                XCTAssertTrue(String(buffer: $0.body).contains("at most 1000"), String(buffer: $0.body))
            }
        }
    }

    /// A CT of `frames` 512 × 512 frames of 16-bit noise, Explicit VR LE: costly to encode.
    static func heavyMultiFrame(sop: String, frames: Int) throws -> [UInt8] {
        func us(_ tag: UInt32, _ v: UInt16) -> DataElement { DataElement(tag: Tag(tag), vr: .US, value: .bytes([UInt8(v & 0xFF), UInt8(v >> 8)])) }
        // 10-bit noise, drawn 8 bytes at a time (a byte per draw is slow in debug builds).
        var g = SystemRandomNumberGenerator()
        var pixels: [UInt8] = []
        pixels.reserveCapacity(frames * 512 * 512 * 2)
        for _ in 0..<(frames * 512 * 512 / 4) {
            let draw: UInt64 = g.next() & 0x03FF_03FF_03FF_03FF
            withUnsafeBytes(of: draw) { pixels.append(contentsOf: $0) }
        }
        return try instance(sop: sop, extra: [us(0x0028_0010, 512), us(0x0028_0011, 512), text(0x0028_0008, .IS, String(frames)),
                                               DataElement(tag: Tag(0x7FE0_0010), vr: .OW, value: .bytes(pixels))])
    }

    /// Ten clients ask for 12 frames each transcoded to JPEG 2000 at once; with 2 threads and 2
    /// queued, 4 are admitted and the rest get 503 with Retry-After before any work. Meanwhile
    /// /health and a stored frame (a range read, no pool) answer within half a second.
    func testTranscodeFloodGets503WhileStoredFramesAndHealthAnswer() async throws {
        let bytes = try Self.heavyMultiFrame(sop: "1.2.3.40.2", frames: 12)
        let uri = "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/1.2.3.40.2/frames/"
        try await withApp({ $0.limits.workConcurrency = 2; $0.limits.workQueue = 2 }) { client in
            let (status, _) = try await self.stow(client, [bytes])
            XCTAssertEqual(status, .ok)
            let all = (1...12).map(String.init).joined(separator: ",")
            let started = ContinuousClock.now
            let (statuses, probes) = try await withThrowingTaskGroup(of: ([HTTPResponse.Status], [Duration]).self) { group in
                for _ in 0..<10 {
                    group.addTask {
                        try await client.execute(uri: uri + all, method: .get, headers: [.accept: "multipart/related; type=\"image/jp2\""]) { r in
                            if r.status == .serviceUnavailable { XCTAssertEqual(r.headers[.retryAfter], "1") }
                            return ([r.status], [])
                        }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(200))
                    var times: [Duration] = []
                    for k in 0..<6 {
                        for (path, accept) in [("/health", "*/*"), (uri + "\(k + 1)", "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*")] {
                            let t = ContinuousClock.now
                            try await client.execute(uri: path, method: .get, headers: [.accept: accept]) { XCTAssertEqual($0.status, .ok, path) }
                            times.append(ContinuousClock.now - t)
                        }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    return ([], times)
                }
                var statuses: [HTTPResponse.Status] = [], probes: [Duration] = []
                for try await (s, p) in group { statuses += s; probes += p }
                return (statuses, probes)
            }
            let elapsed = ContinuousClock.now - started
            print("transcode flood: \(statuses.filter { $0 == .ok }.count) × 200, \(statuses.filter { $0 == .serviceUnavailable }.count) × 503 in \(elapsed); slowest probe \(probes.max() ?? .zero)")
            XCTAssertEqual(statuses.filter { $0 == .ok }.count, 4)
            XCTAssertEqual(statuses.filter { $0 == .serviceUnavailable }.count, 6)
            XCTAssertEqual(probes.count, 12)
            XCTAssertLessThan(probes.max() ?? .seconds(99), .milliseconds(500))
        }
    }

    /// A deflated data set inflates to at most 16 times its size at ingest (the ratio cap; 1 MiB at
    /// least): a bomb is refused with 0xA700 (Out of Resources, PS3.18 Annex I) instead of taking
    /// hundreds of MB, and pydicom's deflated test file (61:1, under 1 MiB) is still stored.
    func testDeflateBombThroughSTOWIsRefused() async throws {
        // 24 MiB whose deflated form is about 60 times smaller: 8 random bytes per 808.
        var g = SystemRandomNumberGenerator()
        var value = [UInt8](repeating: 0, count: 24 << 20)
        for i in stride(from: 0, to: value.count - 8, by: 808) { for j in 0..<8 { value[i + j] = UInt8.random(in: 0...255, using: &g) } }
        var ds = try DICOMFile.read(bytes: try Self.instance(sop: "1.2.3.40.3")).dataSet
        ds.set(Self.text(0x0009_0010, .LO, "TESSERA TEST"))
        ds.set(DataElement(tag: Tag(0x0009_1000), vr: .OB, value: .bytes(value)))
        let bomb = try DICOMWriter.part10(ds, transferSyntax: .deflatedExplicitVRLittleEndian)
        XCTAssertLessThan(bomb.count * 20, value.count, "a ratio above 20")
        XCTAssertGreaterThan(bomb.count * 256, value.count, "a ratio the old cap (256) let through")
        let dfl = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/image_dfl.dcm") })
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dfl)))
        try await withApp { client in
            let (status, body) = try await self.stow(client, [bomb])
            XCTAssertEqual(status, .conflict)
            let failed = try XCTUnwrap((body["00081198"] as? [String: Any])?["Value"] as? [[String: Any]])
            XCTAssertEqual((failed.first?["00081197"] as? [String: Any])?["Value"] as? [Int], [0xA700])
            let (goodStatus, _) = try await self.stow(client, [good])
            XCTAssertEqual(goodStatus, .ok)
        }
        await XCTAssertNilAsync(try await store.index.instance(sopInstanceUID: "1.2.3.40.3"))
    }
}
