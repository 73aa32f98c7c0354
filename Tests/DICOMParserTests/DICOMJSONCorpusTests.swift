import XCTest
import DICOMCore
import DICOMParser
import TestSupport

/// `DICOMJSON.encode` equals pydicom's `Dataset.to_json_dict()` for every corpus file, after the
/// normalisations listed in Docs/conformance.md ("DICOM JSON: differences from pydicom").
final class DICOMJSONCorpusTests: XCTestCase {
    func testEveryCorpusFileMatchesPydicom() throws {
        let files = try Corpus.files()
        let oracle = try Corpus.oracle("pydicom_json.py", [], stdin: Data(files.joined(separator: "\n").utf8))
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: oracle) as? [String: [String: Any]])
        var matched = 0
        var failures: [String] = []
        for path in files {
            let theirs = try XCTUnwrap(expected[path], path)
            let file: DICOMFile
            do {
                var options = ReadOptions()
                options.bulkDataThreshold = 1024
                file = try DICOMFile.read(path: path, options: options)
            } catch {
                // We refuse it: pydicom must have refused it too, or it is a documented case.
                if theirs["__error__"] == nil && !Self.refusedDeliberately.contains(where: { path.hasSuffix($0) }) {
                    failures.append("\(path): we refuse (\(error)) but pydicom reads it")
                }
                continue
            }
            if let error = theirs["__error__"] {
                // pydicom fails to convert some readable files to JSON; nothing to compare against.
                _ = error
                continue
            }
            var options = DICOMJSONOptions()
            options.bulkDataThreshold = 1024
            options.bulkDataURI = { _, _ in "bulk" }
            let ours = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(DICOMJSON.encode(file.dataSet, options: options))) as? [String: Any])
            if let difference = JSONComparison.firstDifference(ours, theirs, path: "", bigEndian: file.transferSyntax.isBigEndian) {
                failures.append("\((path as NSString).lastPathComponent): \(difference)")
            } else {
                matched += 1
            }
        }
        XCTAssertGreaterThan(matched, 200)
        XCTAssertTrue(failures.isEmpty, "\(failures.count) files differ from pydicom (\(matched) match):\n" + failures.joined(separator: "\n"))
    }

    /// Files pydicom reads only by guessing (with force=True) and that we refuse; see Docs/conformance.md.
    static let refusedDeliberately = [
        "test_files/no_meta.dcm",                                   // no DICM, first bytes are no element
        "test_files/MR_truncated.dcm", "test_files/rtplan_truncated.dcm", // values cut short
        "data_store/data/emri_small_jpeg_2k_lossless_too_short.dcm", // Pixel Data cut short
        "dicomdirtests/DICOMDIR-nooffset",                          // an item longer than its sequence
    ]
}

enum JSONComparison {
    /// The first difference between our JSON and pydicom's, or nil.
    static func firstDifference(_ ours: Any, _ theirs: Any, path: String, bigEndian: Bool) -> String? {
        switch (ours, theirs) {
        case (let a as [String: Any], let b as [String: Any]):
            // An element pydicom writes with no value and one we omit nothing from are the same.
            var keysA = Set(a.keys), keysB = Set(b.keys)
            // pydicom applies its 1024 threshold to the base64 text, we to the bytes: values of
            // 769–1024 bytes are inline in ours and bulk in pydicom's.
            if keysA.contains("InlineBinary"), keysB.contains("BulkDataURI"), let text = a["InlineBinary"] as? String,
               text.utf8.count > 1024, text.utf8.count <= 1368 {
                keysA.remove("InlineBinary"); keysB.remove("BulkDataURI")
            }
            if keysA != keysB {
                return "\(path): keys differ: ours only \(keysA.subtracting(keysB).sorted().prefix(6)), pydicom only \(keysB.subtracting(keysA).sorted().prefix(6))"
            }
            for key in keysA.sorted() {
                if key == "BulkDataURI" { continue } // URIs name different places by design
                if key == "InlineBinary" && bigEndian { continue } // pydicom keeps big-endian bytes; we write little endian (PS3.18 F.2.7)
                if let d = firstDifference(a[key]!, b[key]!, path: path + "/" + key, bigEndian: bigEndian) { return d }
            }
            return nil
        case (let a as [Any], let b as [Any]):
            guard a.count == b.count else { return "\(path): \(a.count) vs \(b.count) values: ours \(a.prefix(4)) pydicom \(b.prefix(4))" }
            for (n, (x, y)) in zip(a, b).enumerated() {
                if let d = firstDifference(x, y, path: "\(path)[\(n)]", bigEndian: bigEndian) { return d }
            }
            return nil
        case (let a as NSNumber, let b as NSNumber):
            let x = a.doubleValue, y = b.doubleValue
            if x == y || abs(x - y) <= 1e-12 * max(abs(x), abs(y)) { return nil }
            return "\(path): \(a) vs \(b)"
        case (is NSNull, is NSNull):
            return nil
        case (is NSNull, let b as String) where b.allSatisfy({ $0 == " " }):
            return nil // we write empty values as null (PS3.18 F.2.5); pydicom as ""
        case (let a as [String: Any], let b as String) where a.count == 1:
            // pydicom writes private PN values as plain strings; we always use the PN object form.
            return (a["Alphabetic"] as? String) == b ? nil : "\(path): \(a) vs \(b)"
        case (let a as String, let b as String):
            // pydicom keeps spaces around values inside multi-valued strings; PS3.5 calls them padding.
            let x = a.trimmingCharacters(in: .whitespaces), y = b.trimmingCharacters(in: .whitespaces)
            return x == y ? nil : "\(path): \"\(a.prefix(80))\" vs \"\(b.prefix(80))\""
        default:
            return "\(path): \(type(of: ours)) \(String(describing: ours).prefix(60)) vs \(type(of: theirs)) \(String(describing: theirs).prefix(60))"
        }
    }
}
