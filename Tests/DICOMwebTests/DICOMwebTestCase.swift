import DICOMCore
import DICOMParser
@testable import DICOMweb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ImageSetStore
import Logging
import NIOCore
import TestSupport
import StoreTestSupport
import XCTest

/// In-process route tests: each test gets an empty data folder and the router over it.
class DICOMwebTestCase: XCTestCase, @unchecked Sendable {
    var folder = ""
    var store: Datastore!

    override func setUp() async throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-web-\(UUID().uuidString)").path
        store = try await TestBackends.datastore(folder: folder)
    }

    override func tearDownWithError() throws {
        store = nil
        try? FileManager.default.removeItem(atPath: folder)
    }

    func withApp(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let app = Application(router: buildRouter(store: store, configuration: DICOMwebConfiguration()))
        try await app.test(.router, body)
    }

    static let study = "1.2.826.0.1.3680043.9.7433.2"
    static let series = "1.2.826.0.1.3680043.9.7433.2.1"

    static func text(_ tag: UInt32, _ vr: VR, _ value: String) -> DataElement {
        var bytes = Array(value.utf8)
        if bytes.count % 2 == 1 { bytes.append(vr == .UI ? 0 : 0x20) }
        return DataElement(tag: Tag(tag), vr: vr, value: .bytes(bytes))
    }

    /// The demo CT with new identifiers, as Part 10 bytes.
    static func instance(sop: String, study: String = study, series: String = series, patientName: String = "DOE^JANE",
                         modality: String = "CT", studyDate: String = "20240115", extra: [DataElement] = []) throws -> [UInt8] {
        let path = Corpus.packageRoot.appendingPathComponent("TestImages/demo/ct-1.dcm").path
        var ds = try DICOMFile.read(path: path).dataSet
        ds.set(text(0x0020_000D, .UI, study))
        ds.set(text(0x0020_000E, .UI, series))
        ds.set(text(0x0008_0018, .UI, sop))
        ds.set(text(0x0010_0010, .PN, patientName))
        ds.set(text(0x0008_0060, .CS, modality))
        ds.set(text(0x0008_0020, .DA, studyDate))
        for e in extra { ds.set(e) }
        return try DICOMWriter.part10(ds, transferSyntax: .explicitVRLittleEndian)
    }

    static func multipart(_ parts: [[UInt8]], boundary: String = "XyZ-boundary", type: String = "application/dicom") -> ByteBuffer {
        var b = ByteBuffer()
        for p in parts {
            b.writeString("--\(boundary)\r\nContent-Type: \(type)\r\n\r\n")
            b.writeBytes(p)
            b.writeString("\r\n")
        }
        b.writeString("--\(boundary)--\r\n")
        return b
    }

    /// Splits a multipart/related response into its parts' headers and bodies.
    static func parts(_ body: ByteBuffer, contentType: String) throws -> [(headers: String, body: [UInt8])] {
        guard let range = contentType.range(of: "boundary=") else { throw DICOMwebError(.badRequest, "no boundary") }
        let boundary = contentType[range.upperBound...].split(separator: ";")[0].trimmingCharacters(in: "\" ")
        let bytes = Array(body.readableBytesView)
        let delimiter = Array("--\(boundary)".utf8)
        var starts: [Int] = []
        var i = 0
        while i + delimiter.count <= bytes.count {
            if bytes[i] == delimiter[0] && Array(bytes[i..<i + delimiter.count]) == delimiter { starts.append(i); i += delimiter.count } else { i += 1 }
        }
        var out: [(String, [UInt8])] = []
        for (n, s) in starts.enumerated().dropLast() {
            let partStart = s + delimiter.count + 2
            let end = starts[n + 1] - 2
            guard let headerEnd = (partStart..<end).first(where: { Array(bytes[$0..<min($0 + 4, bytes.count)]) == [13, 10, 13, 10] }) else { continue }
            out.append((String(decoding: bytes[partStart..<headerEnd], as: UTF8.self), Array(bytes[(headerEnd + 4)..<end])))
        }
        return out
    }

    static func json(_ body: ByteBuffer) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(body.readableBytesView))
    }

    func stow(_ client: any TestClientProtocol, _ parts: [[UInt8]], path: String = "/dicomweb/studies") async throws -> (HTTPResponse.Status, [String: Any]) {
        try await client.execute(uri: path, method: .post,
                                 headers: [.contentType: "multipart/related; type=\"application/dicom\"; boundary=XyZ-boundary"],
                                 body: Self.multipart(parts)) { r in
            (r.status, (try? Self.json(r.body)) as? [String: Any] ?? [:])
        }
    }
}
