import DICOMCore
import DICOMParser
import Foundation
@testable import PixelData
import TestSupport
import XCTest

/// Every frame of every corpus file with Pixel Data, decoded by Tessera and by pydicom with the
/// reference decoders (Tools/oracles/pydicom_pixels.py), must be byte-identical.
final class PixelCorpusTests: XCTestCase {
    /// Files pydicom decodes that Tessera refuses on purpose, with the reason (Docs/conformance.md).
    static let expectedRefusals: [String: String] = [:]
    /// Lossy files whose reference decoder rounds differently from Tessera's library: 16-bit samples
    /// within ±1 of pydicom's, and identical to DCMTK's in the test named.
    static let withinOne: [String: String] = [
        "JPGExtended.dcm": "12-bit JPEG: pylibjpeg-libjpeg's IDCT is not IJG 6b's (libijg12); JPEG12Tests matches dcmdjpeg exactly",
    ]

    func testEveryFrameMatchesPydicom() throws {
        let files = try Corpus.files()
        var candidates: [String] = []
        var unreadable = 0
        for path in files {
            guard let file = try? DICOMFile.read(path: path, options: .headerOnly) else { unreadable += 1; continue }
            // Header-only reads stop at Pixel Data, so look for the image attributes instead.
            if file.dataSet.contains(.rows) { candidates.append(path) }
        }
        XCTAssertGreaterThan(candidates.count, 100)

        let outDir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-pixels-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: outDir) }
        let stdin = Data(candidates.joined(separator: "\n").utf8)
        let json = try Corpus.oracle("pydicom_pixels.py", [outDir.path], stdin: stdin)
        let oracle = try XCTUnwrap(JSONSerialization.jsonObject(with: json) as? [String: [String: Any]])

        var matched = 0, framesCompared = 0
        var failures: [String] = []
        for path in candidates {
            let name = URL(fileURLWithPath: path).lastPathComponent
            guard let expected = oracle[path] else { failures.append("\(name): no oracle answer"); continue }
            let ours: [DecodedFrame]
            do {
                let file = try DICOMFile.read(path: path)
                let table = try FrameTable(file: file)
                ours = try table.frames.indices.map { i throws(DICOMError) in try table.decodeFrame(i) }
            } catch {
                if expected["error"] == nil && Self.expectedRefusals[name] == nil {
                    failures.append("\(name): pydicom decodes it, Tessera: \(error)")
                }
                continue
            }
            guard let raw = expected["raw"] as? String else { continue } // pydicom refuses, Tessera decodes
            let reference = try Data(contentsOf: URL(fileURLWithPath: raw))
            let frames = expected["frames"] as? Int ?? 0
            guard frames == ours.count else {
                failures.append("\(name): \(ours.count) frames, pydicom \(frames)")
                continue
            }
            let mine = ours.reduce(into: [UInt8]()) { $0 += $1.bytes }
            if mine.count != reference.count {
                failures.append("\(name): \(mine.count) bytes decoded, pydicom \(reference.count) (itemsize \(expected["itemsize"] ?? "?"))")
            } else if Self.withinOne[name] != nil {
                let off = (0..<mine.count / 2).filter { i in
                    let a = Int(mine[2 * i]) | Int(mine[2 * i + 1]) << 8
                    let b = Int(reference[reference.startIndex + 2 * i]) | Int(reference[reference.startIndex + 2 * i + 1]) << 8
                    return abs(a - b) > 1
                }
                if off.isEmpty { matched += 1; framesCompared += ours.count } else { failures.append("\(name): \(off.count) samples differ by more than 1") }
            } else if let i = mine.indices.first(where: { mine[$0] != reference[reference.startIndex + $0] }) {
                let diffs = mine.indices.filter { mine[$0] != reference[reference.startIndex + $0] }.count
                failures.append("\(name): differs at byte \(i) of \(mine.count) (\(diffs) bytes differ)")
            } else {
                matched += 1
                framesCompared += ours.count
            }
        }
        XCTAssertEqual(failures, [], "\(failures.count) files differ:\n" + failures.joined(separator: "\n"))
        XCTAssertGreaterThan(matched, 100)
        print("pixel corpus: \(matched) files, \(framesCompared) frames identical to pydicom; \(unreadable) unreadable files skipped")
    }
}
