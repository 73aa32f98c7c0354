import XCTest
import DICOMCore
@testable import DICOMParser
import TestSupport

final class SpecificCharacterSetTests: XCTestCase {
    /// pydicom's charset test files: every text value decodes as pydicom decodes it.
    func testCharsetFilesMatchPydicom() throws {
        let dir = try Corpus.sitePackages().appendingPathComponent("pydicom/data/charset_files").path
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".dcm") }.sorted()
        XCTAssertGreaterThan(names.count, 15)
        let paths = names.map { "\(dir)/\($0)" }
        let oracle = try Corpus.oracle("pydicom_text.py", [], stdin: Data(paths.joined(separator: "\n").utf8))
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: oracle) as? [String: [String: Any]])
        var compared = 0
        var failures: [String] = []
        for path in paths {
            let theirs = try XCTUnwrap(expected[path])
            if theirs["error"] != nil { continue }
            let file = try DICOMFile.read(path: path)
            for (key, value) in theirs {
                guard let want = value as? [String] else { continue }
                let got = Self.values(at: key, in: file.dataSet)
                compared += 1
                if got != want {
                    failures.append("\((path as NSString).lastPathComponent) \(key): ours \(got ?? []) pydicom \(want)")
                }
            }
        }
        XCTAssertGreaterThan(compared, 100)
        XCTAssertTrue(failures.isEmpty, "\(failures.count) values differ:\n" + failures.joined(separator: "\n"))
    }

    /// `GGGGEEEE` or `GGGGEEEE[n].GGGGEEEE` (one level of items), as the oracle names them.
    static func values(at key: String, in ds: DataSet) -> [String]? {
        let parts = key.split(separator: ".")
        if parts.count == 2, let open = parts[0].firstIndex(of: "["),
           let seq = Tag(hexString: parts[0][..<open]),
           let n = Int(parts[0][parts[0].index(after: open)...].dropLast()),
           let items = ds[seq]?.items, n < items.count, let tag = Tag(hexString: parts[1]) {
            return items[n].strings(tag)
        }
        return Tag(hexString: key).flatMap { ds.strings($0) }
    }

    func testISO2022JapanesePersonName() {
        // "Yamada^Tarou=山田^太郎=やまだ^たろう" with JIS X 0208 escapes (PS3.5 Annex H).
        let bytes: [UInt8] = Array("Yamada^Tarou=".utf8)
            + [0x1B, 0x24, 0x42, 0x3B, 0x33, 0x45, 0x44, 0x1B, 0x28, 0x42, 0x5E,
               0x1B, 0x24, 0x42, 0x42, 0x40, 0x4F, 0x3A, 0x1B, 0x28, 0x42, 0x3D,
               0x1B, 0x24, 0x42, 0x24, 0x64, 0x24, 0x5E, 0x24, 0x40, 0x1B, 0x28, 0x42, 0x5E,
               0x1B, 0x24, 0x42, 0x24, 0x3F, 0x24, 0x6D, 0x24, 0x26, 0x1B, 0x28, 0x42]
        let cs = SpecificCharacterSet(terms: ["", "ISO 2022 IR 87"])
        XCTAssertEqual(cs.decode(bytes, vr: .PN), "Yamada^Tarou=山田^太郎=やまだ^たろう")
    }

    func testKoreanPersonName() {
        // "Hong^Gildong=洪^吉洞=홍^길동" (PS3.5 Annex I) with KS X 1001 in G1.
        let bytes: [UInt8] = Array("Hong^Gildong=".utf8)
            + [0x1B, 0x24, 0x29, 0x43, 0xFB, 0xF3, 0x5E, 0x1B, 0x24, 0x29, 0x43, 0xD1, 0xCE, 0xD4, 0xD7, 0x3D,
               0x1B, 0x24, 0x29, 0x43, 0xC8, 0xAB, 0x5E, 0x1B, 0x24, 0x29, 0x43, 0xB1, 0xE6, 0xB5, 0xBF]
        let cs = SpecificCharacterSet(terms: ["", "ISO 2022 IR 149"])
        XCTAssertEqual(cs.decode(bytes, vr: .PN), "Hong^Gildong=洪^吉洞=홍^길동")
    }

    func testGBKBackslashInsideCharacterIsNotADelimiter() throws {
        // U+5F20 张 ... pick a GBK character whose trailing byte is 0x5C: 0x81 0x5C is "乗"? Use iconv to find one.
        let encoded = try XCTUnwrap(Iconv.convert(Array("圽".utf8), from: "UTF-8", to: "GBK"))
        XCTAssertEqual(encoded.count, 2)
        XCTAssertEqual(encoded[1], 0x5C, "test character must end in 0x5C")
        let cs = SpecificCharacterSet(terms: ["GBK"])
        let values = cs.decodeValues(encoded + [0x5C] + Array("AB".utf8), vr: .LO)
        XCTAssertEqual(values, ["圽", "AB"])
    }

    func testSingleByteSetsAndUTF8() {
        XCTAssertEqual(SpecificCharacterSet(terms: ["ISO_IR 100"]).decode([0x42, 0xE9, 0x61], vr: .LO), "Béa")
        XCTAssertEqual(SpecificCharacterSet(terms: ["ISO_IR 144"]).decode([0xBB, 0xEE, 0xDA], vr: .LO), "Люк")
        XCTAssertEqual(SpecificCharacterSet(terms: ["ISO_IR 126"]).decode([0xC4, 0xE9, 0xEF], vr: .LO), "Διο")
        XCTAssertEqual(SpecificCharacterSet(terms: ["ISO_IR 192"]).decode(Array("Ünïcødé".utf8), vr: .LO), "Ünïcødé")
        XCTAssertEqual(SpecificCharacterSet(terms: ["GB18030"]).decode([0xCE, 0xC4, 0xBC, 0xFE], vr: .LO), "文件")
        XCTAssertTrue(SpecificCharacterSet(terms: ["ISO_IR 192"]).isUTF8)
    }

    func testUnknownTermFallsBackAndIsRecorded() {
        let cs = SpecificCharacterSet(terms: ["ISO_IR 999"])
        XCTAssertEqual(cs.unknownTerms, ["ISO_IR 999"])
        XCTAssertEqual(cs.decode(Array("ABC".utf8), vr: .LO), "ABC")
    }

    func testEncodeRoundTrips() throws {
        let latin = SpecificCharacterSet(terms: ["ISO_IR 100"])
        let bytes = try XCTUnwrap(latin.encode("Müller^Jörg", vr: .PN))
        XCTAssertEqual(latin.decode(bytes, vr: .PN), "Müller^Jörg")
        XCTAssertNil(SpecificCharacterSet.default.encode("Müller", vr: .PN))
        let utf8 = SpecificCharacterSet(terms: ["ISO_IR 192"])
        XCTAssertEqual(utf8.decode(try XCTUnwrap(utf8.encode("山田^太郎", vr: .PN)), vr: .PN), "山田^太郎")
    }
}
