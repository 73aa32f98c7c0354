import DICOMCore
import DICOMParser
import Foundation
@testable import PixelData
import TestSupport
import XCTest

/// Every lossless encoder: encode → decode gives the input back, for the image kinds DICOM holds.
final class CodecRoundTripTests: XCTestCase {
    struct Kind {
        var bitsAllocated: Int, bitsStored: Int, signed: Bool, samples: Int, rows: Int, columns: Int
    }
    static let kinds: [Kind] = [
        Kind(bitsAllocated: 8, bitsStored: 8, signed: false, samples: 1, rows: 37, columns: 51),
        Kind(bitsAllocated: 8, bitsStored: 8, signed: true, samples: 1, rows: 16, columns: 16),
        Kind(bitsAllocated: 8, bitsStored: 8, signed: false, samples: 3, rows: 33, columns: 20),
        Kind(bitsAllocated: 16, bitsStored: 12, signed: false, samples: 1, rows: 64, columns: 48),
        Kind(bitsAllocated: 16, bitsStored: 12, signed: true, samples: 1, rows: 31, columns: 17),
        Kind(bitsAllocated: 16, bitsStored: 16, signed: false, samples: 1, rows: 20, columns: 30),
        Kind(bitsAllocated: 16, bitsStored: 16, signed: true, samples: 1, rows: 9, columns: 65),
        Kind(bitsAllocated: 16, bitsStored: 16, signed: false, samples: 3, rows: 12, columns: 10),
        Kind(bitsAllocated: 8, bitsStored: 8, signed: false, samples: 1, rows: 1, columns: 1),
    ]

    /// Gradients, noise and the extremes of the range, as native little-endian samples.
    static func image(_ k: Kind, seed: UInt64) -> (bytes: [UInt8], description: PixelDescription) {
        var rng = seed
        func next() -> UInt64 { rng = rng &* 6364136223846793005 &+ 1442695040888963407; return rng >> 33 }
        let lo = k.signed ? -(1 << (k.bitsStored - 1)) : 0
        let hi = k.signed ? (1 << (k.bitsStored - 1)) - 1 : (1 << k.bitsStored) - 1
        let w = k.bitsAllocated / 8
        var bytes: [UInt8] = []
        for i in 0..<(k.rows * k.columns * k.samples) {
            let v: Int
            switch i % 7 {
            case 0: v = lo
            case 1: v = hi
            case 2, 3: v = lo + (i * 37) % (hi - lo + 1)
            default: v = lo + Int(next() % UInt64(hi - lo + 1))
            }
            for b in 0..<w { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * b))) }
        }
        let d = PixelDescription(rows: k.rows, columns: k.columns, samplesPerPixel: k.samples, bitsAllocated: k.bitsAllocated,
                                 bitsStored: k.bitsStored, highBit: k.bitsStored - 1, pixelRepresentation: k.signed ? 1 : 0,
                                 planarConfiguration: 0, photometricInterpretation: k.samples == 3 ? "RGB" : "MONOCHROME2",
                                 numberOfFrames: 1)
        return (bytes, d)
    }

    func roundTrip(_ codec: some PixelEncoder & PixelDecoder) throws {
        for (n, k) in Self.kinds.enumerated() {
            let (input, d) = Self.image(k, seed: UInt64(n + 1))
            let (encoded, encodedDesc) = try codec.encode(input, description: d)
            XCTAssertFalse(encoded.isEmpty)
            let decoded = try codec.decode(encoded, description: encodedDesc)
            XCTAssertTrue(decoded.bytes == input, "\(type(of: codec)) \(k) does not round-trip")
            XCTAssertEqual(decoded.description.photometricInterpretation, d.photometricInterpretation)
        }
    }

    func testRLERoundTrips() throws { try roundTrip(RLECodec()) }
    func testJPEG2000RoundTrips() throws { try roundTrip(OpenJPEGCodec()) }
    func testHTJ2KRoundTrips() throws { try roundTrip(HTJ2KCodec()) }

    func testHTJ2KStreamsAreRPCLAndReadableByOpenJPEG() throws {
        let (input, d) = Self.image(Self.kinds[3], seed: 9)
        let (encoded, desc) = try HTJ2KCodec().encode(input, description: d)
        // COD marker (FF52): Lcod(2) Scod(1) then SGcod's progression order byte; 2 = RPCL.
        let cod = try XCTUnwrap((0..<encoded.count - 1).first { encoded[$0] == 0xFF && encoded[$0 + 1] == 0x52 })
        XCTAssertEqual(encoded[cod + 5], 2)
        // CAP marker (FF50) announces HT code blocks.
        XCTAssertNotNil((0..<encoded.count - 1).first { encoded[$0] == 0xFF && encoded[$0 + 1] == 0x50 })
        let viaOpenJPEG = try OpenJPEGCodec().decode(encoded, description: desc)
        XCTAssertTrue(viaOpenJPEG.bytes == input)
    }

    /// A real multi-frame file through every target and back to Explicit VR LE, via Part 10 bytes.
    func testTranscodingMultiFrameFilesIsLossless() throws {
        let paths = try TwinFileTests.corpusPaths()
        for name in ["emri_small.dcm", "SC_rgb_2frame.dcm", "SC_rgb_16bit_2frame.dcm", "MR_small.dcm"] {
            let path = try XCTUnwrap(paths[name], name)
            let original = try TwinFileTests.frames(path)
            for target in ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5"] {
                let (ds, syntax) = try Transcoder.transcode(try DICOMFile.read(path: path), to: target)
                let bytes = try DICOMWriter.part10(ds, transferSyntax: syntax)
                let reread = try DICOMFile.read(bytes: bytes)
                XCTAssertEqual(reread.transferSyntax.uid, target)
                let table = try FrameTable(file: reread)
                XCTAssertEqual(table.frames.count, original.count, "\(name) → \(target)")
                for i in table.frames.indices {
                    XCTAssertTrue(try table.decodeFrame(i).bytes == original[i].bytes, "\(name) → \(target) frame \(i + 1)")
                }
                let (back, backSyntax) = try Transcoder.transcode(reread, to: "1.2.840.10008.1.2.1")
                let native = try DICOMFile.read(bytes: try DICOMWriter.part10(back, transferSyntax: backSyntax))
                let nativeTable = try FrameTable(file: native)
                XCTAssertTrue(try nativeTable.decodeFrame(0).bytes == original[0].bytes, "\(name) → \(target) → native")
            }
        }
    }
}
