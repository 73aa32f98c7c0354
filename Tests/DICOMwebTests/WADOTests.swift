import DICOMCore
import DICOMParser
@testable import DICOMweb
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PixelData
import TestSupport
import XCTest

final class WADOTests: DICOMwebTestCase {
    var base: String { "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/1.2.3.13.1" }

    func testInstanceRetrieveAsStoredAndNegotiated() async throws {
        let bytes = try Self.instance(sop: "1.2.3.13.1")
        try await withApp { client in
            _ = try await self.stow(client, [bytes])
            try await client.execute(uri: self.base, method: .get,
                                     headers: [.accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=*"]) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(parts.count, 1)
                XCTAssertEqual(parts[0].body, bytes, "as stored, bit-identical")
            }
            try await client.execute(uri: self.base, method: .get,
                                     headers: [.accept: "multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.4.201"]) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                let file = try DICOMFile.read(bytes: parts[0].body)
                XCTAssertEqual(file.transferSyntax.uid, "1.2.840.10008.1.2.4.201")
                let original = try FrameTable(file: try DICOMFile.read(bytes: bytes))
                XCTAssertEqual(try FrameTable(file: file).decodeFrame(0).bytes, try original.decodeFrame(0).bytes)
            }
            try await client.execute(uri: self.base, method: .get, headers: [.accept: "image/png"]) { r in
                XCTAssertEqual(r.status, .notAcceptable)
            }
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/1.2.3.99", method: .get) {
                XCTAssertEqual($0.status, .notFound)
            }
        }
    }

    func testFramesAreServedAsStoredOrDecoded() async throws {
        // A compressed multi-frame file: stored frames are J2K codestreams.
        let path = try XCTUnwrap(try Corpus.files().first { $0.hasSuffix("/emri_small_jpeg_2k_lossless.dcm") })
        let file = try DICOMFile.read(path: path)
        let table = try FrameTable(file: file)
        let study = try XCTUnwrap(file.dataSet.string(.studyInstanceUID)).trimmingCharacters(in: "\0 ")
        let series = try XCTUnwrap(file.dataSet.string(.seriesInstanceUID)).trimmingCharacters(in: "\0 ")
        let sop = try XCTUnwrap(file.dataSet.string(.sopInstanceUID)).trimmingCharacters(in: "\0 ")
        let uri = "/dicomweb/studies/\(study)/series/\(series)/instances/\(sop)/frames/1,3,10"
        try await withApp { client in
            _ = try await self.stow(client, [[UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))])
            try await client.execute(uri: uri, method: .get, headers: [.accept: "multipart/related; type=\"image/jp2\""]) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(parts.count, 3)
                XCTAssertTrue(parts[0].headers.contains("image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90"), parts[0].headers)
                XCTAssertEqual(parts[1].body, try table.encodedFrame(2))
            }
            try await client.execute(uri: uri, method: .get, headers: [.accept: "multipart/related; type=\"application/octet-stream\""]) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertTrue(parts[0].headers.contains("application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"))
                XCTAssertEqual(parts[2].body, try table.decodeFrame(9).bytes, "decoded to native")
            }
            try await client.execute(uri: uri, method: .get, headers: [.accept: "multipart/related; type=\"image/jphc\""]) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(try HTJ2KCodec().decode(parts[0].body, description: table.description).bytes, try table.decodeFrame(0).bytes)
            }
            try await client.execute(uri: uri, method: .get, headers: [.accept: "multipart/related; type=\"image/jpeg\""]) {
                XCTAssertEqual($0.status, .notAcceptable)
            }
            try await client.execute(uri: uri.replacingOccurrences(of: "1,3,10", with: "11"), method: .get, headers: [.accept: "*/*"]) {
                XCTAssertEqual($0.status, .notFound)
            }
            try await client.execute(uri: uri.replacingOccurrences(of: "1,3,10", with: "0,x"), method: .get) {
                XCTAssertEqual($0.status, .badRequest)
            }
        }
    }

    func testMetadataAtEveryLevelWithAbsoluteBulkDataURIs() async throws {
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: "1.2.3.13.1"), try Self.instance(sop: "1.2.3.13.2")])
            for (uri, count) in [("/dicomweb/studies/\(Self.study)/metadata", 2), ("/dicomweb/studies/\(Self.study)/series/\(Self.series)/metadata", 2),
                                 ("\(self.base)/metadata", 1)] {
                // Behind a proxy the root follows Forwarded / X-Forwarded-*: ForwardedTests.
                try await client.execute(uri: uri, method: .get) { r in
                    XCTAssertEqual(r.status, .ok, uri)
                    XCTAssertEqual(r.headers[.contentType], "application/dicom+json")
                    let items = try XCTUnwrap(try Self.json(r.body) as? [[String: Any]])
                    XCTAssertEqual(items.count, count, uri)
                    let pixel = try XCTUnwrap(items[0]["7FE00010"] as? [String: Any])
                    let bulk = try XCTUnwrap(pixel["BulkDataURI"] as? String)
                    XCTAssertTrue(bulk.hasPrefix("http://127.0.0.1:8080/dicomweb/studies/\(Self.study)/series/\(Self.series)/instances/"), bulk)
                }
            }
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)/metadata", method: .get, headers: [.acceptEncoding: "gzip"]) { r in
                XCTAssertEqual(r.headers[.contentEncoding], "gzip")
            }
        }
    }

    func testBulkDataReturnsTheValueBytes() async throws {
        let bytes = try Self.instance(sop: "1.2.3.13.1")
        let native = try DICOMFile.read(bytes: bytes).dataSet[.pixelData]?.valueBytes
        try await withApp { client in
            _ = try await self.stow(client, [bytes])
            try await client.execute(uri: "\(self.base)/bulkdata/7FE00010", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(parts.first?.body, native)
            }
            try await client.execute(uri: "\(self.base)/bulkdata/00191234", method: .get) { XCTAssertEqual($0.status, .notFound) }
            try await client.execute(uri: "\(self.base)/bulkdata/zz", method: .get) { XCTAssertEqual($0.status, .badRequest) }
        }
    }

    func testImageSetAPIHealthAndCORS() async throws {
        try await withApp { client in
            _ = try await self.stow(client, [try Self.instance(sop: "1.2.3.13.1")])
            try await client.execute(uri: "/health", method: .get) { XCTAssertEqual($0.status, .ok) }
            var id = ""
            try await client.execute(uri: "/imagesets?studyInstanceUID=\(Self.study)", method: .get) { r in
                let body = try XCTUnwrap(try Self.json(r.body) as? [String: Any])
                let sets = try XCTUnwrap(body["imageSets"] as? [[String: Any]])
                XCTAssertEqual(sets.count, 1)
                id = try XCTUnwrap(sets[0]["id"] as? String)
            }
            let setID = id
            try await client.execute(uri: "/imagesets/\(setID)/versions", method: .get) { r in
                let versions = (try Self.json(r.body) as? [String: Any])?["versions"] as? [[String: Any]]
                XCTAssertEqual(versions?.count, 1)
            }
            try await client.execute(uri: "/imagesets/\(setID)/metadata", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.headers[.contentEncoding], "gzip")
            }
            try await client.execute(uri: "/imagesets/nope", method: .get) { XCTAssertEqual($0.status, .notFound) }
            // Preflight allows Accept; errors carry CORS headers too.
            try await client.execute(uri: "/dicomweb/studies", method: .options,
                                     headers: [.origin: "https://viewer.example", .accessControlRequestMethod: "GET",
                                               .accessControlRequestHeaders: "accept"]) { r in
                XCTAssertNotNil(r.headers[.accessControlAllowOrigin])
                XCTAssertTrue(r.headers[.accessControlAllowHeaders]?.lowercased().contains("accept") ?? false)
            }
            try await client.execute(uri: "/dicomweb/studies?limit=x", method: .get, headers: [.origin: "https://viewer.example"]) { r in
                XCTAssertEqual(r.status, .badRequest)
                XCTAssertNotNil(r.headers[.accessControlAllowOrigin])
            }
        }
    }

    func testPlaceholderReplacementScansBytes() {
        func replaced(_ text: String) -> String { String(buffer: DICOMwebService.replacing("ab", with: "X-", in: ByteBuffer(string: text))) }
        XCTAssertEqual(replaced("aab ab a abab a"), "aX- X- a X-X- a")
        XCTAssertEqual(replaced("a"), "a")
        XCTAssertEqual(replaced(""), "")
        XCTAssertEqual(replaced("ab"), "X-")
        XCTAssertEqual(replaced("xxa"), "xxa", "a partial match at the end stays")
    }

    func testSeveralInstancesStreamOneAtATime() async throws {
        let a = try Self.instance(sop: "1.2.3.13.1"), b = try Self.instance(sop: "1.2.3.13.2")
        try await withApp { client in
            _ = try await self.stow(client, [a, b])
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)", method: .get,
                                     headers: [.accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=*"]) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(Set(parts.map(\.body)), [a, b])
            }
            try await client.execute(uri: "/dicomweb/studies/\(Self.study)", method: .get,
                                     headers: [.accept: "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.201"]) { r in
                XCTAssertEqual(r.status, .ok)
                let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                XCTAssertEqual(parts.count, 2)
                XCTAssertEqual(try parts.map { try DICOMFile.read(bytes: $0.body).transferSyntax.uid }, Array(repeating: "1.2.840.10008.1.2.4.201", count: 2))
            }
        }
    }
}
