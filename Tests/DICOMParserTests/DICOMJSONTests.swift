import XCTest
import DICOMCore
@testable import DICOMParser
import TestSupport

final class DICOMJSONTests: XCTestCase {
    private func object(_ ds: DataSet, _ options: DICOMJSONOptions = .init()) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(DICOMJSON.encode(ds, options: options))) as? [String: Any])
    }

    private func sample() throws -> DataSet {
        var w = FixtureWriter()
        w.element(0x0008_0005, .CS, "ISO_IR 192")
        w.element(0x0010_0010, .PN, "Yamada^Tarou=山田^太郎=やまだ^たろう")
        w.element(0x0020_0013, .IS, "7")
        w.element(0x0028_0030, .DS, "0.5\\-1.25e2")
        w.element(0x0020_5000, .AT, [0x10, 0x00, 0x20, 0x00])
        w.us(0x0028_0010, 512, 3)
        w.element(0x0018_0088, .FD, withUnsafeBytes(of: (2.5).bitPattern.littleEndian) { Array($0) })
        w.element(0x0008_0050, .SH, "  ")
        w.sequenceStart(0x0008_1140)
        w.itemStart()
        w.element(0x0008_1155, .UI, "1.2.3")
        w.itemEnd()
        w.sequenceEnd()
        w.element(0x0009_0010, .LO, "ACME")
        w.element(0x0009_1001, .OB, [1, 2, 3, 4])
        w.element(0x7FE0_0010, .OW, [UInt8](repeating: 9, count: 2048))
        return try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes)).dataSet
    }

    func testValueForms() throws {
        var options = DICOMJSONOptions()
        options.bulkDataURI = { path, _ in "https://x/bulk/\(path.map(\.hexString).joined(separator: "/"))" }
        let json = try object(try sample(), options)
        let pn = try XCTUnwrap((json["00100010"] as? [String: Any])?["Value"] as? [[String: String]])
        XCTAssertEqual(pn.first?["Alphabetic"], "Yamada^Tarou")
        XCTAssertEqual(pn.first?["Ideographic"], "山田^太郎")
        XCTAssertEqual(pn.first?["Phonetic"], "やまだ^たろう")
        XCTAssertEqual((json["00200013"] as? [String: Any])?["Value"] as? [Int], [7])
        XCTAssertEqual((json["00280030"] as? [String: Any])?["Value"] as? [Double], [0.5, -125])
        XCTAssertEqual((json["00205000"] as? [String: Any])?["Value"] as? [String], ["00100020"])
        XCTAssertEqual((json["00280010"] as? [String: Any])?["Value"] as? [Int], [512, 3])
        XCTAssertEqual((json["00180088"] as? [String: Any])?["Value"] as? [Double], [2.5])
        XCTAssertNil((json["00080050"] as? [String: Any])?["Value"], "padding only: empty value")
        XCTAssertEqual((json["00080050"] as? [String: Any])?["vr"] as? String, "SH")
        let items = try XCTUnwrap((json["00081140"] as? [String: Any])?["Value"] as? [[String: Any]])
        XCTAssertEqual(((items.first?["00081155"] as? [String: Any])?["Value"] as? [String]), ["1.2.3"])
        XCTAssertEqual((json["00091001"] as? [String: Any])?["InlineBinary"] as? String, "AQIDBA==")
        XCTAssertEqual((json["7FE00010"] as? [String: Any])?["BulkDataURI"] as? String, "https://x/bulk/7FE00010")
        XCTAssertEqual(Array(json.keys).sorted(), Array(json.keys).sorted { $0 < $1 })
    }

    /// ASCII string values are written from their bytes; each must come out as the decoding path
    /// (`DataElement.strings`, then one JSON string per value) would write it.
    func testASCIIStringValuesMatchTheDecodingPath() throws {
        let samples: [String] = ["ABC", "ABC ", " A B ", "1.2.3\0", "1.2.3\0\0", "A\\B", "\\", "A\\", "  ",
                                 "O'Brien", "say \"hi\"", "a\\b\\c  ", "x\u{0}y", "tab\there", "caf\u{E9}", "~}|{"]
        let vrs: [VR] = [.AE, .AS, .CS, .DA, .DT, .TM, .UI, .LO, .LT, .SH, .ST, .UC, .UR, .UT]
        var checked = 0
        for vr in vrs {
            for text in samples {
                for charset in ["", "ISO_IR 100", "ISO_IR 192", "ISO 2022 IR 13\\ISO 2022 IR 87", "GB18030"] {
                    var bytes = Array(text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
                    if bytes.count % 2 == 1 { bytes.append(vr == .UI ? 0 : 0x20) }
                    let terms = charset.split(separator: "\\").map(String.init)
                    let element = DataElement(tag: Tag(0x0009_1001), vr: vr, value: .bytes(bytes))
                    let ds = DataSet(elements: [element], characterSet: SpecificCharacterSet(terms: terms))
                    var expected = JSONWriter()
                    var values = element.strings(characterSet: ds.characterSet) ?? []
                    if values == [""] { values = [] }
                    expected.raw("{\"vr\":\"\(vr.code)\"")
                    if !values.isEmpty {
                        expected.raw(",\"Value\":[")
                        for (n, v) in values.enumerated() {
                            if n > 0 { expected.raw(",") }
                            if v.isEmpty { expected.raw("null") } else { expected.string(v) }
                        }
                        expected.raw("]")
                    }
                    expected.raw("}")
                    let json = String(decoding: DICOMJSON.encode(ds), as: UTF8.self)
                    let field = try XCTUnwrap(json.range(of: "\"00091001\":").map { String(json[$0.upperBound...].dropLast()) })
                    XCTAssertEqual(field, String(decoding: expected.bytes, as: UTF8.self), "\(vr) \(charset) \(bytes)")
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, vrs.count * samples.count * 5)
    }

    func testKeysAreInTagOrder() throws {
        let text = String(decoding: DICOMJSON.encode(try sample()), as: UTF8.self)
        let positions = ["00080005", "00100010", "00200013", "00280010", "7FE00010"].map { text.range(of: "\"\($0)\"")?.lowerBound }
        XCTAssertFalse(positions.contains(nil))
        XCTAssertEqual(positions.compactMap { $0 }, positions.compactMap { $0 }.sorted())
    }

    func testDecodeRoundTrip() throws {
        let original = try sample()
        let first = DICOMJSON.encode(original)
        let decoded = try DICOMJSON.decode(first)
        XCTAssertEqual(decoded.string(Tag(0x0010_0010)), "Yamada^Tarou=山田^太郎=やまだ^たろう")
        XCTAssertEqual(decoded.integers(.rows), [512, 3])
        XCTAssertEqual(decoded[Tag(0x0009_1001)]?.valueBytes, [1, 2, 3, 4])
        XCTAssertEqual(decoded[.pixelData]?.valueLength, 2048)
        XCTAssertEqual(decoded[Tag(0x0008_1140)]?.items?.first?.string(Tag(0x0008_1155)), "1.2.3")
        XCTAssertEqual(String(decoding: DICOMJSON.encode(decoded), as: UTF8.self), String(decoding: first, as: UTF8.self))
    }

    func testCorpusEncodeDecodeEncodeIsStable() throws {
        var checked = 0
        var failures: [String] = []
        for path in try Corpus.files() {
            guard let file = try? DICOMFile.read(path: path) else { continue }
            let first = DICOMJSON.encode(file.dataSet)
            do {
                let again = DICOMJSON.encode(try DICOMJSON.decode(first))
                // Decoding re-encodes text as UTF-8, so only (0008,0005) may change.
                let a = Self.withoutCharacterSets(try JSONSerialization.jsonObject(with: Data(first)))
                let b = Self.withoutCharacterSets(try JSONSerialization.jsonObject(with: Data(again)))
                if !NSDictionary(dictionary: a as? [String: Any] ?? [:]).isEqual(to: b as? [String: Any] ?? ["": 0]) { failures.append(path) }
            } catch {
                failures.append("\(path): \(error)")
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 200)
        XCTAssertTrue(failures.isEmpty, "\(failures.count) not stable:\n" + failures.prefix(20).joined(separator: "\n"))
    }

    static func withoutCharacterSets(_ value: Any) -> Any {
        if let object = value as? [String: Any] {
            var out: [String: Any] = [:]
            for (k, v) in object where k != "00080005" { out[k] = withoutCharacterSets(v) }
            return out
        }
        if let array = value as? [Any] { return array.map(withoutCharacterSets) }
        return value
    }

    func testHostileJSONIsATypedError() {
        let deep = String(repeating: "[", count: 100_000)
        let cases = [deep, "{", "{\"0010001\":{\"vr\":\"PN\"}}", "{\"00100010\":{\"vr\":\"ZZ\"}}", "{\"00100010\":{\"vr\":\"US\",\"Value\":[\"x\"]}}",
                     "{\"00100010\":{\"vr\":\"OB\",\"InlineBinary\":\"@@@\"}}", "[1,2]", "{\"a\" 1}", "\"\\u12\"", ""]
        for text in cases {
            XCTAssertThrowsError(try DICOMJSON.decode(Array(text.utf8)), String(text.prefix(30))) { error in
                XCTAssertNotNil(error as? DICOMError)
            }
        }
        var nestedSequences = ""
        for _ in 0..<200 { nestedSequences += "{\"00081140\":{\"vr\":\"SQ\",\"Value\":[" }
        XCTAssertThrowsError(try DICOMJSON.decode(Array(nestedSequences.utf8)))
    }
}
