@testable import DICOMweb
import DICOMCore
import DICOMDictionary
import DICOMParser
import Foundation
import NIOCore
import XCTest

/// QIDO-RS results are written straight as DICOM JSON (PS3.18 §F.2) by `QIDOResult`. The reference is
/// what the route built before: a `[String: Any]` tree per result (below, `referenceElement` is that
/// code), serialized by `JSONOutput`. Both must give the same bytes for every value shape.
final class QIDOJSONTests: XCTestCase {
    /// The route's former per-attribute tree: PN component groups (PS3.18 §F.2.2), numbers for IS and
    /// the binary integer VRs, other values split at backslashes.
    static func referenceElement(_ tag: Tag, _ value: String) -> [String: Any] {
        let vr = DataDictionary.vr(for: tag).description
        guard !value.isEmpty else { return ["vr": vr] }
        switch vr {
        case "PN":
            return ["vr": vr, "Value": value.split(separator: "\\", omittingEmptySubsequences: false).map { name -> Any in
                var name = Substring(name)
                while name.hasSuffix("=") { name = name.dropLast() }
                guard !name.isEmpty else { return NSNull() }
                let groups = name.split(separator: "=", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
                return Dictionary(uniqueKeysWithValues: zip(["Alphabetic", "Ideographic", "Phonetic"], groups))
            }]
        case "IS", "US", "UL", "SS", "SL": return ["vr": vr, "Value": [Int(value) ?? 0]]
        default: return ["vr": vr, "Value": value.split(separator: "\\", omittingEmptySubsequences: false).map(String.init)]
        }
    }

    func bytes(_ results: [QIDOResult]) -> String { String(buffer: QIDOResult.serialize(results)) }
    func reference(_ trees: [[String: Any]]) -> String { String(buffer: JSONOutput.serialize(trees)) }

    func testEveryColumnShapeIsWrittenAsTheTreeWas() {
        let values: [(UInt32, String)] = [
            (0x0010_0010, "Doe^Jane"), (0x0010_0010, "Yamada^Tarou=山田^太郎=やまだ^たろう"), (0x0010_0010, "A^B==="),
            (0x0010_0010, "=Only^Ideographic"), (0x0010_0010, "One\\\\Two="), (0x0010_0010, "==="), (0x0010_0010, ""),
            (0x0010_0010, "a=b=c=d"), (0x0020_0011, "12"), (0x0020_0011, "-3"), (0x0020_0011, "x"), (0x0028_0010, "512"),
            (0x0028_0008, "9223372036854775807"), (0x0008_0060, "CT"), (0x0008_0060, "CT\\MR\\"), (0x0008_1030, "say \"hi\"\\back\\\\slash"),
            (0x0008_1030, "tab\tnew\nline \u{01} ünïcødé"), (0x0008_0020, "20200101"), (0x0020_000D, "1.2.3"), (0x0008_0050, ""),
        ]
        for (raw, value) in values {
            var r = QIDOResult()
            r.set(Tag(raw), .column(vr: DataDictionary.vr(for: Tag(raw)).description, text: value))
            XCTAssertEqual(bytes([r]), reference([[Tag(raw).hexString: Self.referenceElement(Tag(raw), value)]]), "\(Tag(raw)) \(value)")
        }
    }

    func testAStudyResultMatchesTheTreeInKeyOrderAndLaterKeysWin() {
        var tree: [String: Any] = [:]
        var r = QIDOResult()
        // Stored elements (includefield) first, then the typed columns over them, as the route assigns them.
        let stored: [String: Any] = ["00100010": ["vr": "PN", "Value": [["Alphabetic": "STORED"]]],
                                     "00181030": ["vr": "LO", "Value": ["protocol"]], "00280030": ["vr": "DS", "Value": [0.5, 2]]]
        for (key, value) in stored { tree[key] = value; r.set(key, .stored(value)) }
        let columns: [(UInt32, String)] = [(0x0010_0020, "P1"), (0x0010_0010, "DOE^JANE"), (0x0008_0020, "20230601"), (0x0020_000D, "1.2.3")]
        for (raw, value) in columns {
            tree[Tag(raw).hexString] = Self.referenceElement(Tag(raw), value)
            r.set(Tag(raw), .column(vr: DataDictionary.vr(for: Tag(raw)).description, text: value))
        }
        tree["00201206"] = ["vr": "IS", "Value": [2]]; r.set(Tag(0x0020_1206), .count(2))
        tree["00080061"] = ["vr": "CS", "Value": ["CT", "MR"]]; r.set(Tag(0x0008_0061), .codes(["CT", "MR"]))
        tree["00081190"] = ["vr": "UR", "Value": ["http://h/dicomweb/studies/1.2.3"]]; r.set(Tag(0x0008_1190), .url("http://h/dicomweb/studies/1.2.3"))
        var empty = QIDOResult()
        empty.set(Tag(0x0008_0061), .codes([]))
        XCTAssertEqual(bytes([r, empty, QIDOResult()]), reference([tree, ["00080061": ["vr": "CS"]], [:]]))
        XCTAssertTrue(bytes([r]).contains("DOE^JANE") && !bytes([r]).contains("STORED"), "the column replaces the stored value")
        XCTAssertEqual(bytes([]), "[]")
    }
}
