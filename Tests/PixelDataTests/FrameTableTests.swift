import DICOMCore
import DICOMParser
import Foundation
@testable import PixelData
import TestSupport
import XCTest

/// Frame location on synthetic files: every way frames can be laid out.
final class FrameTableTests: XCTestCase {
    func image(_ w: inout FixtureWriter, rows: UInt16, columns: UInt16, bits: UInt16, frames: Int, samples: UInt16 = 1) {
        w.us(0x0028_0002, samples)
        w.element(0x0028_0004, .CS, samples == 3 ? "RGB " : "MONOCHROME2 ")
        if frames > 1 { w.element(0x0028_0008, .IS, String(frames) + (String(frames).count % 2 == 1 ? " " : "")) }
        w.us(0x0028_0010, rows)
        w.us(0x0028_0011, columns)
        w.us(0x0028_0100, bits)
        w.us(0x0028_0101, bits)
        w.us(0x0028_0102, bits - 1)
        w.us(0x0028_0103, 0)
    }

    func encapsulated(frames: Int, fragments: [[UInt8]], bot: [UInt32], eot: [UInt64]? = nil) throws -> FrameTable {
        var w = FixtureWriter()
        image(&w, rows: 2, columns: 2, bits: 8, frames: frames)
        if let eot {
            var offsets = [UInt8]()
            for o in eot { withUnsafeBytes(of: o.littleEndian) { offsets += $0 } }
            w.element(0x7FE0_0001, .OV, offsets)
        }
        w.header(0x7FE0_0010, .OB, length: 0xFFFF_FFFF)
        w.itemStart(length: UInt32(4 * bot.count))
        for o in bot { w.u32(o) }
        for f in fragments { w.itemStart(length: UInt32(f.count)); w.raw(f) }
        w.sequenceEnd()
        return try FrameTable(file: try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.4.90", dataSet: w.bytes)))
    }

    static let soc: [UInt8] = [0xFF, 0x4F, 0xFF, 0x51]

    func testOneFragmentPerFrame() throws {
        let t = try encapsulated(frames: 3, fragments: [[1, 2], [3, 4], [5, 6]], bot: [])
        XCTAssertEqual(try (0..<3).map { try t.encodedFrame($0) }, [[1, 2], [3, 4], [5, 6]])
    }

    func testBasicOffsetTableGroupsFragments() throws {
        // Frame 1 = fragments 1+2 (8+2, 8+2 bytes), frame 2 = fragment 3: offsets 0 and 20.
        let t = try encapsulated(frames: 2, fragments: [[1, 2], [3, 4], [5, 6]], bot: [0, 20])
        XCTAssertEqual(t.frames.map(\.ranges.count), [2, 1])
        XCTAssertEqual(try t.encodedFrame(0), [1, 2, 3, 4])
        XCTAssertEqual(try t.encodedFrame(1), [5, 6])
    }

    func testExtendedOffsetTableWinsOverAnEmptyBasicTable() throws {
        let t = try encapsulated(frames: 2, fragments: [[1, 2], [3, 4], [5, 6], [7, 8]], bot: [], eot: [0, 30])
        XCTAssertEqual(try t.encodedFrame(0), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try t.encodedFrame(1), [7, 8])
    }

    func testWithoutTablesFramesStartAtCodestreamMarkers() throws {
        let t = try encapsulated(frames: 2, fragments: [Self.soc + [1, 1], [2, 2], Self.soc + [3, 3], [4, 4]], bot: [])
        XCTAssertEqual(try t.encodedFrame(0), Self.soc + [1, 1, 2, 2])
        XCTAssertEqual(try t.encodedFrame(1), Self.soc + [3, 3, 4, 4])
    }

    func testFragmentsThatCannotHoldTheFramesAreAnError() {
        XCTAssertThrowsError(try encapsulated(frames: 3, fragments: [[1, 2], [3, 4]], bot: []))
        XCTAssertThrowsError(try encapsulated(frames: 2, fragments: [[1, 2], [3, 4], [5, 6]], bot: [])) // no markers, no table
    }

    func testOneBitFramesThatDoNotStartOnAByteBoundary() throws {
        // 3×3 1-bit frames: 9 bits each, so frame 2 starts at bit 9 (bit 1 of byte 1).
        var w = FixtureWriter()
        image(&w, rows: 3, columns: 3, bits: 1, frames: 2)
        // Frame 1 = 101010101, frame 2 = 111000111 (least significant bit first).
        let bits: [UInt8] = [1, 0, 1, 0, 1, 0, 1, 0, 1] + [1, 1, 1, 0, 0, 0, 1, 1, 1]
        var packed = [UInt8](repeating: 0, count: 4)
        for (i, b) in bits.enumerated() where b == 1 { packed[i / 8] |= 1 << UInt8(i % 8) }
        w.element(0x7FE0_0010, .OB, packed)
        let table = try FrameTable(file: try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes)))
        XCTAssertEqual(table.frames[1].bitOffset, 1)
        XCTAssertEqual(try table.decodeFrame(0).bytes, Array(bits[0..<9]))
        XCTAssertEqual(try table.decodeFrame(1).bytes, Array(bits[9..<18]))
    }

    func testPlanarConfigurationOneIsInterleaved() throws {
        var w = FixtureWriter()
        image(&w, rows: 1, columns: 2, bits: 8, frames: 1, samples: 3)
        w.us(0x0028_0006, 1)
        w.element(0x7FE0_0010, .OB, [10, 11, 20, 21, 30, 31])  // R R G G B B
        let table = try FrameTable(file: try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes)))
        XCTAssertEqual(try table.decodeFrame(0).bytes, [10, 20, 30, 11, 21, 31])
    }

    func testFrameOutOfRangeAndMissingPixelDataAreErrors() throws {
        let t = try encapsulated(frames: 1, fragments: [[1, 2]], bot: [])
        XCTAssertThrowsError(try t.encodedFrame(1))
        var w = FixtureWriter()
        image(&w, rows: 2, columns: 2, bits: 8, frames: 1)
        XCTAssertThrowsError(try FrameTable(file: try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes))))
    }

    /// Every decoder on truncated and corrupted real codestreams: a typed error or a frame, never a trap.
    func testCorruptAndTruncatedCodestreamsThrow() throws {
        let names = ["SC_rgb_jpeg_dcmtk.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_rle.dcm",
                     "SC_rgb_jpeg_gdcm.dcm", "emri_small_jpeg_2k_lossless.dcm"]
        let byName = Dictionary(try Corpus.files().map { (URL(fileURLWithPath: $0).lastPathComponent, $0) }, uniquingKeysWith: { a, _ in a })
        var failures = 0
        for name in names {
            let table = try FrameTable(file: try DICOMFile.read(path: try XCTUnwrap(byName[name], name)))
            let stream = try table.encodedFrame(0)
            let decoder = try XCTUnwrap(PixelCodecs.decoder(for: table.transferSyntax.uid))
            for cut in stride(from: 0, to: stream.count, by: max(1, stream.count / 30)) {
                do { _ = try decoder.decode(Array(stream.prefix(cut)), description: table.description) } catch { failures += 1 }
            }
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<25 {
                var broken = stream
                for _ in 0..<8 { broken[Int.random(in: 0..<broken.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                _ = try? decoder.decode(broken, description: table.description)
            }
        }
        XCTAssertGreaterThan(failures, 100, "truncated streams are refused")
    }
}
