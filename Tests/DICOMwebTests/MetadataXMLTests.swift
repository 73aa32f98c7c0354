import DICOMCore
import DICOMParser
@testable import DICOMweb
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import HTTPTypes
import HummingbirdTesting
import NIOCore
import TestSupport
import XCTest

/// Metadata as multipart/related; type="application/dicom+xml" (PS3.18 Table 10.4.4-1, §8.7.3.5.1):
/// one PS3.19 Annex A Native DICOM Model document per instance.
final class MetadataXMLTests: DICOMwebTestCase {
    static let xml = "multipart/related; type=\"application/dicom+xml\""

    /// Each instance's XML against DCMTK's `dcm2xml --native-format` of the same file, compared as
    /// parsed XML trees by Tools/oracles/dcmtk_xml_compare.py. What it normalises, and why: the
    /// namespace (dcm2xml declares none), the Specific Character Set value (dcm2xml +U8 rewrites it to
    /// ISO_IR 192; Tessera, like its DICOM JSON, keeps the stored one while writing UTF-8), FL/FD
    /// digits (compared as numbers of their width), and values Tessera gives as a BulkData URI
    /// (dcm2xml has them inline): each such URI is fetched here and must return dcm2xml's bytes.
    /// The files cover private creators and sequences (CT_small), AT and encapsulated Pixel Data
    /// (JPEG-lossy), big endian (MR_small_bigendian), FD (693_J2KI), and Specific Character Sets
    /// with multi-group person names, single-byte and ISO 2022 (chrX1, chrX2, chrRuss, chrFrenMulti,
    /// chrI2, chrKoreanMulti).
    func testInstanceXMLMatchesDCMTK() async throws {
        let names = ["CT_small.dcm", "JPEG-lossy.dcm", "MR_small_bigendian.dcm", "693_J2KI.dcm",
                     "chrX1.dcm", "chrX2.dcm", "chrRuss.dcm", "chrFrenMulti.dcm", "chrI2.dcm", "chrKoreanMulti.dcm"]
        let corpus = try Corpus.files()
        let paths = try names.map { name in try XCTUnwrap(corpus.first { $0.hasSuffix("/" + name) }, name) }
        let files = try paths.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-xml-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try await withApp { client in
            let (status, _) = try await self.stow(client, files)
            XCTAssertEqual(status, .ok)
            for (k, bytes) in files.enumerated() {
                let ds = try DICOMFile.read(bytes: bytes).dataSet
                let ids = [Tag.studyInstanceUID, .seriesInstanceUID, .sopInstanceUID].map { ds.string($0)?.trimmingCharacters(in: "\0 ") ?? "" }
                let uri = "/dicomweb/studies/\(ids[0])/series/\(ids[1])/instances/\(ids[2])/metadata"
                let body: [UInt8] = try await client.execute(uri: uri, method: .get, headers: [.accept: Self.xml]) { r in
                    XCTAssertEqual(r.status, .ok, names[k])
                    XCTAssertTrue(r.headers[.contentType]?.hasPrefix(Self.xml) == true, r.headers[.contentType] ?? "")
                    let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                    XCTAssertEqual(parts.count, 1, names[k])
                    XCTAssertTrue(parts.first?.headers.contains("Content-Type: application/dicom+xml") == true)
                    return parts.first?.body ?? []
                }
                let ours = dir.appendingPathComponent("\(k).xml")
                try Data(body).write(to: ours)
                let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: try Corpus.oracle("dcmtk_xml_compare.py", [paths[k], ours.path])) as? [String: Any])
                XCTAssertEqual(report["differences"] as? [String], [], names[k])
                XCTAssertGreaterThan(report["attributes"] as? Int ?? 0, 20, names[k])
                for entry in report["bulk"] as? [[String: String]] ?? [] {
                    let link = try XCTUnwrap(entry["uri"])
                    let path = try XCTUnwrap(link.range(of: "/dicomweb/").map { String(link[$0.lowerBound...]) }, link)
                    try await client.execute(uri: path, method: .get) { r in
                        XCTAssertEqual(r.status, .ok, link)
                        guard let expected = entry["base64"], !expected.isEmpty else { return }  // encapsulated: dcm2xml has no bytes
                        let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                        XCTAssertEqual(parts.first?.body, [UInt8](Data(base64Encoded: expected) ?? Data()), link)
                    }
                }
            }
        }
    }

    /// A study or series gives one document per instance; DICOM JSON stays the default and what
    /// application/dicom+json asks for.
    func testStudyAndSeriesXMLHaveOnePartPerInstance() async throws {
        let other = Self.series + ".9"
        let sops = ["1.2.3.40.1", "1.2.3.40.2", "1.2.3.40.3"]
        let files = try [Self.instance(sop: sops[0]), Self.instance(sop: sops[1]), Self.instance(sop: sops[2], series: other)]
        let study = "/dicomweb/studies/\(Self.study)"
        try await withApp { client in
            _ = try await self.stow(client, files)
            for (uri, expected) in [(study, sops), ("\(study)/series/\(Self.series)", Array(sops.prefix(2))), ("\(study)/series/\(other)", [sops[2]])] {
                try await client.execute(uri: uri + "/metadata", method: .get, headers: [.accept: "\(Self.xml), application/dicom+json;q=0.5"]) { r in
                    XCTAssertEqual(r.status, .ok, uri)
                    let parts = try Self.parts(r.body, contentType: r.headers[.contentType] ?? "")
                    let found = try parts.map { part -> String in
                        let document = try XMLDocumentTree(part.body)
                        XCTAssertEqual(document.root, "NativeDicomModel")
                        return document.value(of: "00080018") ?? ""
                    }
                    XCTAssertEqual(found.sorted(), expected.sorted(), uri)
                }
            }
            try await client.execute(uri: "\(study)/metadata?accept=\(Self.xml.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")", method: .get) {
                XCTAssertTrue($0.headers[.contentType]?.hasPrefix(Self.xml) == true, "the accept query parameter asks for XML too")
            }
            for accept in ["application/dicom+json", "application/dicom+json, \(Self.xml);q=0.5", ""] {
                try await client.execute(uri: study + "/metadata", method: .get, headers: accept.isEmpty ? [:] : [.accept: accept]) {
                    XCTAssertEqual($0.headers[.contentType], "application/dicom+json", accept)
                }
            }
            try await client.execute(uri: "/dicomweb/studies/1.2.3.404/metadata", method: .get, headers: [.accept: Self.xml]) {
                XCTAssertEqual($0.status, .notFound)
            }
        }
    }
}

/// Just enough of an XML parse for the tests: the root's name and top-level attribute values.
struct XMLDocumentTree {
    let root: String
    private let values: [String: String]

    init(_ bytes: [UInt8]) throws {
        final class Collector: NSObject, XMLParserDelegate {
            var root = "", depth = 0, tag: String?, inValue = false, text = "", values: [String: String] = [:]
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                depth += 1
                if depth == 1 { root = name }
                if depth == 2 && name == "DicomAttribute" { tag = attributes["tag"] }
                if depth == 3 && name == "Value" && attributes["number"] == "1" { inValue = true; text = "" }
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { if inValue { text += string } }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
                if inValue && depth == 3, let tag { values[tag] = text; inValue = false }
                depth -= 1
            }
        }
        let parser = XMLParser(data: Data(bytes))
        let collector = Collector()
        parser.delegate = collector
        guard parser.parse() else { throw DICOMwebError(.badRequest, "not XML: \(parser.parserError.map { "\($0)" } ?? "")") }
        root = collector.root
        values = collector.values
    }

    func value(of tag: String) -> String? { values[tag] }
}
