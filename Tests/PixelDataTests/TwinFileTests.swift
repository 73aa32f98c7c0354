import DICOMCore
import DICOMParser
import Foundation
@testable import PixelData
import TestSupport
import XCTest

/// Compressed corpus files against their uncompressed twins: lossless ones pixel-identical,
/// lossy ones within the codec's error.
final class TwinFileTests: XCTestCase {
    static let losslessTwins: [(String, String)] = [
        ("693_J2KR.dcm", "693_UNCR.dcm"), ("MR2_J2KR.dcm", "MR2_UNCR.dcm"), ("RG1_J2KR.dcm", "RG1_UNCR.dcm"),
        ("RG3_J2KR.dcm", "RG3_UNCR.dcm"), ("US1_J2KR.dcm", "US1_UNCR.dcm"), ("JPEG2000.dcm", "JPEG2000_UNC.dcm"),
        ("MR_small_RLE.dcm", "MR_small.dcm"), ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
        ("emri_small_RLE.dcm", "emri_small.dcm"), ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
        ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),
        ("SC_rgb_rle.dcm", "SC_rgb.dcm"), ("SC_rgb_rle_2frame.dcm", "SC_rgb_2frame.dcm"),
        ("SC_rgb_rle_16bit.dcm", "SC_rgb_16bit.dcm"), ("SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_16bit_2frame.dcm"),
        ("SC_rgb_rle_32bit.dcm", "SC_rgb_32bit.dcm"), ("SC_rgb_rle_32bit_2frame.dcm", "SC_rgb_32bit_2frame.dcm"),
        ("rtdose_rle.dcm", "rtdose.dcm"), ("rtdose_rle_1frame.dcm", "rtdose_1frame.dcm"),
        ("OBXXXX1A_rle.dcm", "OBXXXX1A.dcm"), ("OBXXXX1A_rle_2frame.dcm", "OBXXXX1A_2frame.dcm"),
    ]
    static let lossyTwins = ["693", "MR2", "RG1", "RG3", "US1"].map { ("\($0)_J2KI.dcm", "\($0)_UNCR.dcm") }

    static func corpusPaths() throws -> [String: String] {
        var byName: [String: String] = [:]
        for p in try Corpus.files() { byName[URL(fileURLWithPath: p).lastPathComponent] = p }
        return byName
    }

    static func frames(_ path: String) throws -> [DecodedFrame] {
        let table = try FrameTable(file: try DICOMFile.read(path: path))
        return try table.frames.indices.map { i throws(DICOMError) in try table.decodeFrame(i) }
    }

    func testLosslessFilesEqualTheirTwins() throws {
        let paths = try Self.corpusPaths()
        for (compressed, native) in Self.losslessTwins {
            let a = try Self.frames(try XCTUnwrap(paths[compressed], compressed))
            let b = try Self.frames(try XCTUnwrap(paths[native], native))
            XCTAssertEqual(a.count, b.count, compressed)
            for (i, (x, y)) in zip(a, b).enumerated() {
                XCTAssertEqual(x.bytes.count, y.bytes.count, "\(compressed) frame \(i + 1)")
                XCTAssertTrue(x.bytes == y.bytes, "\(compressed) frame \(i + 1) differs from \(native)")
            }
        }
    }

    func testLossyJPEG2000IsCloseToItsTwin() throws {
        let paths = try Self.corpusPaths()
        for (lossy, native) in Self.lossyTwins {
            let a = try Self.frames(try XCTUnwrap(paths[lossy], lossy))
            let b = try Self.frames(try XCTUnwrap(paths[native], native))
            XCTAssertEqual(a.count, b.count, lossy)
            for (x, y) in zip(a, b) {
                XCTAssertEqual(x.bytes.count, y.bytes.count, lossy)
                let d = x.description
                let xs = Self.samples(x.bytes, d), ys = Self.samples(y.bytes, d)
                let range = Double(1 << d.bitsStored)
                let mse = zip(xs, ys).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(max(xs.count, 1))
                let psnr = 10 * log10(range * range / max(mse, 1e-9))
                // Not identical (it is lossy), yet close: these files keep PSNR above 30 dB (US1 is the lowest at 36.6).
                XCTAssertGreaterThan(psnr, 30, "\(lossy): PSNR \(psnr) dB")
                XCTAssertFalse(x.bytes == y.bytes, "\(lossy) is identical to its twin: not lossy?")
            }
        }
    }

    static func samples(_ bytes: [UInt8], _ d: PixelDescription) -> [Int] {
        let w = d.bitsAllocated / 8
        return stride(from: 0, to: bytes.count - w + 1, by: w).map { i in
            var v = 0
            for b in 0..<w { v |= Int(bytes[i + b]) << (8 * b) }
            if d.pixelRepresentation == 1 && w < 8 && v >= 1 << (8 * w - 1) { v -= 1 << (8 * w) }
            return v
        }
    }
}
