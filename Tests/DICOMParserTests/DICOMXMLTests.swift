import DICOMCore
@testable import DICOMParser
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// The Native DICOM Model writer (PS3.19 Annex A) on what the corpus comparison with dcm2xml
/// (DICOMwebTests.MetadataXMLTests) may not reach: markup characters in values, empty values in a
/// multi-valued element, empty person name groups, inline and bulk binary, nested items.
final class DICOMXMLTests: XCTestCase {
    static func text(_ tag: UInt32, _ vr: VR, _ value: String) -> DataElement {
        var bytes = Array(value.utf8)
        if bytes.count % 2 == 1 { bytes.append(0x20) }
        return DataElement(tag: Tag(tag), vr: vr, value: .bytes(bytes))
    }

    /// (path of element names with attributes, text) for every element with text, in document order.
    func flatten(_ bytes: [UInt8]) throws -> [String] {
        final class Collector: NSObject, XMLParserDelegate {
            var stack: [String] = [], text = "", out: [String] = []
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
                let a = attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                stack.append(a.isEmpty || stack.isEmpty ? name : "\(name)[\(a)]")  // the root's xml:space is not of interest
                text = ""
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
                if !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || stack.last?.hasPrefix("BulkData") == true {
                    out.append(stack.joined(separator: "/") + " = " + text)
                }
                text = ""
                stack.removeLast()
            }
        }
        let parser = XMLParser(data: Data(bytes))
        parser.shouldProcessNamespaces = true
        let c = Collector()
        parser.delegate = c
        XCTAssertTrue(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
        return c.out
    }

    func testValuesEscapesEmptiesAndBinary() throws {
        let item = DataSet(elements: [Self.text(0x0008_0100, .SH, "T-1")])
        let ds = DataSet(elements: [
            Self.text(0x0008_0005, .CS, "ISO_IR 192"),
            Self.text(0x0008_0008, .CS, "ORIGINAL\\\\AXIAL"),
            Self.text(0x0008_1030, .LO, "a&b <c> \"d\""),
            DataElement(tag: Tag(0x0008_1032), vr: .SQ, value: .sequence([item, DataSet()])),
            Self.text(0x0008_0090, .PN, "^^^^"),
            Self.text(0x0010_0010, .PN, "Yamada^Tarou=山田^太郎"),
            DataElement(tag: Tag(0x0028_0009), vr: .AT, value: .bytes([0x54, 0x00, 0x10, 0x00])),
            DataElement(tag: Tag(0x0028_0010), vr: .US, value: .bytes([0x00, 0x02])),
            DataElement(tag: Tag(0x0009_0010), vr: .LO, value: .bytes(Array("ACME 1".utf8))),
            DataElement(tag: Tag(0x0009_1001), vr: .OB, value: .bytes([1, 2, 3, 4])),
            DataElement(tag: Tag(0x7FE0_0000), vr: .UL, value: .bytes([8, 0, 0, 0])),
            DataElement(tag: Tag(0x7FE0_0010), vr: .OW, value: .bytes([UInt8](repeating: 7, count: 2048))),
        ], characterSet: SpecificCharacterSet(terms: ["ISO_IR 192"]))
        var options = DICOMJSONOptions()
        options.bulkDataURI = { path, _ in "http://x/bulkdata/" + path.map(\.hexString).joined(separator: "/") }
        let lines = try flatten(DICOMXML.encode(ds, options: options))
        let attribute = { (tag: String, vr: String, keyword: String) in "NativeDicomModel/DicomAttribute[keyword=\(keyword),tag=\(tag),vr=\(vr)]" }
        XCTAssertEqual(lines, [
            attribute("00080005", "CS", "SpecificCharacterSet") + "/Value[number=1] = ISO_IR 192",
            // The empty second value is left out; the third keeps its number (PS3.19 A.1.3).
            attribute("00080008", "CS", "ImageType") + "/Value[number=1] = ORIGINAL",
            attribute("00080008", "CS", "ImageType") + "/Value[number=3] = AXIAL",
            attribute("00081030", "LO", "StudyDescription") + "/Value[number=1] = a&b <c> \"d\"",
            attribute("00081032", "SQ", "ProcedureCodeSequence") + "/Item[number=1]/DicomAttribute[keyword=CodeValue,tag=00080100,vr=SH]/Value[number=1] = T-1",
            "NativeDicomModel/DicomAttribute[tag=00090010,vr=LO]/Value[number=1] = ACME 1",
            // A private element is named by its block-relative tag and its creator (PS3.19 A.1.1).
            "NativeDicomModel/DicomAttribute[privateCreator=ACME 1,tag=00090001,vr=OB]/InlineBinary = AQIDBA==",
            // "^^^^" has no components: no PersonName at all.
            attribute("00100010", "PN", "PatientName") + "/PersonName[number=1]/Alphabetic/FamilyName = Yamada",
            attribute("00100010", "PN", "PatientName") + "/PersonName[number=1]/Alphabetic/GivenName = Tarou",
            attribute("00100010", "PN", "PatientName") + "/PersonName[number=1]/Ideographic/FamilyName = 山田",
            attribute("00100010", "PN", "PatientName") + "/PersonName[number=1]/Ideographic/GivenName = 太郎",
            attribute("00280009", "AT", "FrameIncrementPointer") + "/Value[number=1] = 00540010",
            attribute("00280010", "US", "Rows") + "/Value[number=1] = 512",
            // No group length; long binary is bulk data.
            attribute("7FE00010", "OW", "PixelData") + "/BulkData[uri=http://x/bulkdata/7FE00010] = ",
        ])
        // A sequence's empty item is still an item.
        XCTAssertTrue(String(decoding: DICOMXML.encode(ds), as: UTF8.self).contains("<Item number=\"2\">\n</Item>"))
    }
}
