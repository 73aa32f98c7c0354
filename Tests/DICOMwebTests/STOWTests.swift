import DICOMCore
import DICOMParser
@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import NIOCore
import XCTest
import StoreTestSupport

final class STOWTests: DICOMwebTestCase {
    func testMultipartStoreReturnsReferencedSOPsWithRetrieveURLs() async throws {
        let a = try Self.instance(sop: "1.2.3.10.1"), b = try Self.instance(sop: "1.2.3.10.2")
        try await withApp { client in
            let (status, body) = try await self.stow(client, [a, b])
            XCTAssertEqual(status, .ok)
            let referenced = try XCTUnwrap((body["00081199"] as? [String: Any])?["Value"] as? [[String: Any]])
            XCTAssertEqual(referenced.count, 2)
            let url = try XCTUnwrap(((referenced[0]["00081190"] as? [String: Any])?["Value"] as? [String])?.first)
            XCTAssertTrue(url.hasSuffix("/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/1.2.3.10.1"), url)
            XCTAssertNil(body["00081198"])
        }
        await XCTAssertEqualAsync(try await store.index.search(SearchQuery(level: .instance)).count, 2)
    }

    func testSingleApplicationDicomBodyAndUnquotedParameters() async throws {
        let a = try Self.instance(sop: "1.2.3.10.3")
        try await withApp { client in
            try await client.execute(uri: "/dicomweb/studies", method: .post, headers: [.contentType: "application/dicom"],
                                     body: ByteBuffer(bytes: a)) { r in XCTAssertEqual(r.status, .ok) }
            let b = try Self.instance(sop: "1.2.3.10.4")
            try await client.execute(uri: "/dicomweb/studies", method: .post,
                                     headers: [.contentType: "multipart/related; type=application/dicom; boundary=XyZ-boundary"],
                                     body: Self.multipart([b])) { r in XCTAssertEqual(r.status, .ok) }
        }
    }

    func testOneBadPartNeverLosesTheGoodOnes() async throws {
        let good = try Self.instance(sop: "1.2.3.10.5")
        let bad: [UInt8] = Array("this is not DICOM".utf8)
        try await withApp { client in
            let (status, body) = try await self.stow(client, [good, bad])
            XCTAssertEqual(status, .accepted)
            let failed = try XCTUnwrap((body["00081198"] as? [String: Any])?["Value"] as? [[String: Any]])
            XCTAssertEqual(((failed[0]["00081197"] as? [String: Any])?["Value"] as? [Int])?.first, 0xC000)
        }
        await XCTAssertNotNilAsync(try await store.index.instance(sopInstanceUID: "1.2.3.10.5"))
    }

    func testNothingStoredIs409AndStudyMismatchIsA900() async throws {
        let other = try Self.instance(sop: "1.2.3.10.6", study: "1.2.3.999")
        try await withApp { client in
            let (status, body) = try await self.stow(client, [other], path: "/dicomweb/studies/\(Self.study)")
            XCTAssertEqual(status, .conflict)
            let failed = try XCTUnwrap((body["00081198"] as? [String: Any])?["Value"] as? [[String: Any]])
            XCTAssertEqual(((failed[0]["00081197"] as? [String: Any])?["Value"] as? [Int])?.first, 0xA900)
        }
        await XCTAssertNilAsync(try await store.index.instance(sopInstanceUID: "1.2.3.10.6"))
    }

    func testMalformedRequestsAreRefused() async throws {
        try await withApp { client in
            try await client.execute(uri: "/dicomweb/studies", method: .post, headers: [.contentType: "text/plain"], body: ByteBuffer(string: "x")) {
                XCTAssertEqual($0.status, .unsupportedMediaType)
            }
            try await client.execute(uri: "/dicomweb/studies", method: .post, headers: [.contentType: "multipart/related; type=\"application/dicom\""],
                                     body: ByteBuffer(string: "x")) { XCTAssertEqual($0.status, .badRequest) }
            try await client.execute(uri: "/dicomweb/studies", method: .post,
                                     headers: [.contentType: "multipart/related; type=\"image/jpeg\"; boundary=b"], body: ByteBuffer(string: "x")) {
                XCTAssertEqual($0.status, .unsupportedMediaType)
            }
            try await client.execute(uri: "/dicomweb/studies/not..a.uid", method: .post, headers: [.contentType: "application/dicom"],
                                     body: ByteBuffer(string: "x")) { XCTAssertEqual($0.status, .badRequest) }
        }
    }

    /// A body cut inside its last part keeps the complete parts and reports the cut one; a binary
    /// part full of CRs and near-delimiters arrives byte for byte.
    func testACutBodyKeepsItsCompletePartsAndReportsTheRest() async throws {
        let whole = try Self.instance(sop: "1.2.3.10.8", extra: [Self.nearDelimiters])
        var full = Self.multipart([whole, try Self.instance(sop: "1.2.3.10.9")])
        full.moveWriterIndex(to: full.writerIndex - 200)
        let body = full
        try await withApp { client in
            try await client.execute(uri: "/dicomweb/studies", method: .post,
                                     headers: [.contentType: "multipart/related; type=\"application/dicom\"; boundary=XyZ-boundary"],
                                     body: body) { r in
                XCTAssertEqual(r.status, .accepted)
                let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                let failed = try XCTUnwrap((json["00081198"] as? [String: Any])?["Value"] as? [[String: Any]])
                XCTAssertEqual(((failed[0]["00081197"] as? [String: Any])?["Value"] as? [Int])?.first, 0xC000)
            }
            try await client.execute(uri: "/dicomweb/studies", method: .post,
                                     headers: [.contentType: "multipart/related; boundary=" + String(repeating: "b", count: 71)],
                                     body: ByteBuffer(string: "x")) { XCTAssertEqual($0.status, .badRequest) }
        }
        let record = try await XCTUnwrapAsync(try await store.index.instance(sopInstanceUID: "1.2.3.10.8"))
        await XCTAssertEqualAsync(try await store.blobs.read(record.blob), whole)
        await XCTAssertNilAsync(try await store.index.instance(sopInstanceUID: "1.2.3.10.9"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/blobs/tmp"), [])
    }

    /// A private OB value of CRs, CRLFs and every proper prefix of the test boundary's delimiter.
    static var nearDelimiters: DataElement {
        let delimiter = Array("\r\n--XyZ-boundary".utf8)
        var value: [UInt8] = []
        for k in 1..<delimiter.count { value += delimiter[..<k]; value += [0x0D, 0x0D, 0x0A] }
        if value.count % 2 == 1 { value.append(0) }
        return DataElement(tag: Tag(0x0009_1010), vr: .OB, value: .bytes(value))
    }

    func testOversizedBodiesGet413() async throws {
        var config = DICOMwebConfiguration()
        config.maximumRequestSize = 1000
        let app = Application(router: buildRouter(store: store, configuration: config))
        let big = try Self.instance(sop: "1.2.3.10.7")
        try await app.test(.router) { client in
            try await client.execute(uri: "/dicomweb/studies", method: .post, headers: [.contentType: "application/dicom"],
                                     body: ByteBuffer(bytes: big)) { XCTAssertEqual($0.status, .contentTooLarge) }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/blobs/tmp"), [])
    }
}
