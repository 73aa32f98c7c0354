import XCTest
import DICOMCore
@testable import DICOMParser
import TestSupport

/// Malformed input must end in a `DICOMError` with bounded time and memory, never a trap.
final class HostileInputTests: XCTestCase {
    private func sampleFile() -> [UInt8] {
        var w = FixtureWriter()
        w.element(0x0008_0016, .UI, "1.2.840.10008.5.1.4.1.1.7")
        w.sequenceStart(0x0008_1140)
        w.itemStart()
        w.element(0x0008_1155, .UI, "1.2.3.4")
        w.itemEnd()
        w.sequenceEnd()
        w.element(0x0010_0010, .PN, "Doe^Jane")
        w.header(0x7FE0_0010, .OB, length: 0xFFFF_FFFF)
        w.itemStart(length: 0)
        w.itemStart(length: 4); w.raw([1, 2, 3, 4])
        w.sequenceEnd()
        return FixtureWriter.part10(syntax: "1.2.840.10008.1.2.4.50", dataSet: w.bytes)
    }

    func testEveryTruncationIsAnErrorOrAShorterDataSet() {
        let full = sampleFile()
        XCTAssertNoThrow(try DICOMFile.read(bytes: full))
        var errors = 0
        for n in 0..<full.count {
            do {
                _ = try DICOMFile.read(bytes: full[0..<n])
            } catch {
                XCTAssertNotNil(error.offset, "error without a byte offset at prefix \(n): \(error)")
                errors += 1
            }
        }
        // Every cut inside an element or sequence must be reported, not silently accepted.
        XCTAssertGreaterThan(errors, full.count - 20)
    }

    func testDeclaredLengthBeyondInput() {
        var w = FixtureWriter()
        w.header(0x0010_0010, .LO, length: 60_000)
        w.raw(Array("short".utf8))
        XCTAssertThrowsError(try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes))) { error in
            let e = error as? DICOMError
            XCTAssertEqual(e?.kind, .lengthOutOfBounds)
            XCTAssertEqual(e?.tag, Tag(0x0010_0010))
            XCTAssertEqual(e?.offset, 128 + 4 + 12 + 14 + 34 + 18 + 28) // header offset of (0010,0010)
        }
    }

    func testTenThousandNestedSequencesHitTheDepthCap() {
        var w = FixtureWriter()
        for _ in 0..<10_000 {
            w.sequenceStart(0x0040_A730)
            w.itemStart()
        }
        let bytes = FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes)
        XCTAssertThrowsError(try DICOMFile.read(bytes: bytes)) { error in
            XCTAssertEqual((error as? DICOMError)?.kind, .nestingTooDeep)
        }
    }

    func testNestedUNSequencesHitTheDepthCapToo() {
        // Defined-length UN values that are really sequences are parsed recursively; the depth
        // budget must cover that path as well.
        var value: [UInt8] = []
        for _ in 0..<500 {
            var w = FixtureWriter(explicitVR: false)
            w.itemStart(length: UInt32(value.count + 8))
            w.header(0x0040_A730, .SQ, length: UInt32(value.count))
            w.raw(value)
            value = w.bytes
        }
        var top = FixtureWriter()
        top.element(0x0040_A730, .UN, value)
        let bytes = FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: top.bytes)
        do {
            let file = try DICOMFile.read(bytes: bytes)
            // Reading is allowed to fall back to leaving the bytes as UN, but never to recurse unbounded.
            XCTAssertNotNil(file.dataSet[Tag(0x0040_A730)])
        } catch {
            XCTAssertEqual(error.kind, .nestingTooDeep)
        }
    }

    func testDeflateBombIsRefused() throws {
        let zeros = [UInt8](repeating: 0, count: 64 << 20)
        var body = FixtureWriter()
        body.element(0x0009_0010, .OB, zeros) // 64 MiB of zeros deflates ~1000:1
        let deflated = try DICOMWriter.deflate(body.bytes)
        XCTAssertLessThan(deflated.count, 1 << 20)
        let file = FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1.99", dataSet: deflated)
        XCTAssertThrowsError(try DICOMFile.read(bytes: file)) { error in
            XCTAssertEqual((error as? DICOMError)?.kind, .limitExceeded)
        }
        var lenient = ReadOptions()
        lenient.maximumInflationRatio = 2000
        XCTAssertNoThrow(try DICOMFile.read(bytes: file, options: lenient))
    }

    func testCorruptDeflateStream() {
        let file = FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1.99", dataSet: [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x12])
        XCTAssertThrowsError(try DICOMFile.read(bytes: file)) { error in
            XCTAssertNotNil(error as? DICOMError)
        }
    }

    func testInvalidVRBytes() {
        var w = FixtureWriter()
        w.element(0x0008_0060, .CS, "CT")
        w.raw([0x10, 0x00, 0x10, 0x00, 0x7A, 0x7A, 0x02, 0x00, 0x41, 0x42])
        XCTAssertThrowsError(try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes))) { error in
            XCTAssertEqual((error as? DICOMError)?.kind, .malformed)
        }
    }

    func testRandomGarbageNeverTraps() {
        var rng = SplitMix(seed: 0x7E55E7A)
        let base = sampleFile()
        for round in 0..<3000 {
            var bytes = round % 2 == 0 ? base : [UInt8](repeating: 0, count: Int(rng.next() % 600))
            // Flip a few bytes (or fill with noise) and make sure reading returns or throws.
            let flips = round % 2 == 0 ? 1 + Int(rng.next() % 6) : bytes.count
            for _ in 0..<flips where !bytes.isEmpty {
                bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            do { _ = try DICOMFile.read(bytes: bytes) } catch { XCTAssertNotNil(error.offset, "\(error)") }
        }
    }

    func testEmptyAndTinyInputs() {
        for bytes in [[], [0x44], Array("DICM".utf8), [UInt8](repeating: 0, count: 132)] as [[UInt8]] {
            XCTAssertThrowsError(try DICOMFile.read(bytes: bytes))
        }
    }
}

