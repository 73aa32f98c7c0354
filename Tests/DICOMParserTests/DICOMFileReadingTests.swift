import XCTest
import DICOMCore
@testable import DICOMParser
import TestSupport

final class DICOMFileReadingTests: XCTestCase {
    private let explicitLE = "1.2.840.10008.1.2.1"

    func testExplicitLittleEndianValuesAndOffsets() throws {
        var w = FixtureWriter()
        w.element(0x0008_0016, .UI, "1.2.840.10008.5.1.4.1.1.7")
        w.element(0x0010_0010, .PN, "Doe^Jane")
        w.us(0x0028_0010, 512)
        w.element(0x0028_0030, .DS, "0.5\\0.25")
        let bytes = FixtureWriter.part10(syntax: explicitLE, dataSet: w.bytes)
        let file = try DICOMFile.read(bytes: bytes)
        XCTAssertTrue(file.hasPreamble)
        XCTAssertEqual(file.transferSyntax, .explicitVRLittleEndian)
        XCTAssertFalse(file.syntaxWasDetected)
        XCTAssertEqual(file.meta.string(.transferSyntaxUID), explicitLE)
        XCTAssertEqual(file.dataSet.string(Tag(0x0010_0010)), "Doe^Jane")
        XCTAssertEqual(file.dataSet.personNames(Tag(0x0010_0010))?.first?.givenName, "Jane")
        XCTAssertEqual(file.dataSet.integer(.rows), 512)
        XCTAssertEqual(file.dataSet.doubles(Tag(0x0028_0030)), [0.5, 0.25])
        // The first data-set element starts right after the meta group.
        XCTAssertEqual(file.dataSet[.sopClassUID]?.offset, file.dataSetOffset)
        XCTAssertEqual(file.dataSet.count, 4)
    }

    func testImplicitVRTakesVRFromDictionary() throws {
        var w = FixtureWriter(explicitVR: false)
        w.element(0x0010_0020, .LO, "ID42")
        w.us(0x0028_0011, 256)
        let file = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2", dataSet: w.bytes))
        XCTAssertEqual(file.transferSyntax, .implicitVRLittleEndian)
        XCTAssertEqual(file.dataSet[Tag(0x0010_0020)]?.vr, .LO)
        XCTAssertEqual(file.dataSet[.columns]?.vr, .US)
        XCTAssertEqual(file.dataSet.integer(.columns), 256)
    }

    func testExplicitBigEndianNumbers() throws {
        var w = FixtureWriter(explicitVR: true, bigEndian: true)
        w.us(0x0028_0010, 0x0102)
        w.element(0x0028_1052, .DS, "-1024")
        w.header(0x0028_9001, .UL, length: 4); w.u32(0x0A0B_0C0D)
        let file = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.2", dataSet: w.bytes))
        XCTAssertTrue(file.transferSyntax.isBigEndian)
        XCTAssertEqual(file.dataSet.integer(.rows), 0x0102)
        XCTAssertEqual(file.dataSet.integer(Tag(0x0028_9001)), 0x0A0B_0C0D)
        XCTAssertEqual(file.dataSet.doubles(Tag(0x0028_1052)), [-1024])
    }

    func testNestedSequencesOfDefinedAndUndefinedLength() throws {
        var inner = FixtureWriter()
        inner.element(0x0008_1150, .UI, "1.2.3")
        var w = FixtureWriter()
        w.sequenceStart(0x0008_1140) // undefined length
        w.itemStart()
        w.element(0x0008_1155, .UI, "1.2.3.4")
        // defined-length sequence with a defined-length item inside an undefined-length item
        w.sequenceStart(0x0040_A730, length: UInt32(inner.bytes.count + 8))
        w.itemStart(length: UInt32(inner.bytes.count))
        w.raw(inner.bytes)
        w.itemEnd()
        w.itemStart()
        w.itemEnd()
        w.sequenceEnd()
        w.element(0x0010_0010, .PN, "After^Sequence")
        let file = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: explicitLE, dataSet: w.bytes))
        let items = try XCTUnwrap(file.dataSet[Tag(0x0008_1140)]?.items)
        XCTAssertEqual(items.count, 2)
        XCTAssertEqual(items[0].string(Tag(0x0008_1155)), "1.2.3.4")
        let nested = try XCTUnwrap(items[0][Tag(0x0040_A730)]?.items)
        XCTAssertEqual(nested.count, 1)
        XCTAssertEqual(nested[0].string(Tag(0x0008_1150)), "1.2.3")
        XCTAssertTrue(items[1].isEmpty)
        XCTAssertEqual(file.dataSet.string(Tag(0x0010_0010)), "After^Sequence")
    }

    func testEncapsulatedPixelDataReportsFragmentRanges() throws {
        var w = FixtureWriter()
        w.us(0x0028_0010, 2)
        w.header(0x7FE0_0010, .OB, length: 0xFFFF_FFFF)
        w.itemStart(length: 8); w.u32(0); w.u32(12)          // Basic Offset Table: 2 frames
        w.itemStart(length: 4); w.raw([1, 2, 3, 4])            // frame 1
        w.itemStart(length: 6); w.raw([5, 6, 7, 8, 9, 10])     // frame 2
        w.sequenceEnd()
        let bytes = FixtureWriter.part10(syntax: "1.2.840.10008.1.2.4.90", dataSet: w.bytes)
        let file = try DICOMFile.read(bytes: bytes)
        XCTAssertTrue(file.transferSyntax.isEncapsulated)
        guard case .fragments(let f)? = file.dataSet[.pixelData]?.value else { return XCTFail("no fragments") }
        XCTAssertEqual(f.basicOffsets, [0, 12])
        XCTAssertEqual(f.fragments.count, 2)
        XCTAssertEqual(f.fragments.map(\.count), [4, 6])
        XCTAssertEqual(Array(bytes[f.fragments[1]]), [5, 6, 7, 8, 9, 10])
    }

    func testStopBeforePixelDataNeverReadsPixelBytes() throws {
        var w = FixtureWriter()
        w.us(0x0028_0010, 2)
        w.header(0x7FE0_0010, .OW, length: 1000) // declares more than exists: only a full parse would see it
        w.raw([1, 2])
        let bytes = FixtureWriter.part10(syntax: explicitLE, dataSet: w.bytes)
        XCTAssertThrowsError(try DICOMFile.read(bytes: bytes))
        let file = try DICOMFile.read(bytes: bytes, options: .headerOnly)
        XCTAssertNil(file.dataSet[.pixelData])
        XCTAssertEqual(file.dataSet.integer(.rows), 2)
    }

    func testNativePixelDataStaysInPlace() throws {
        var w = FixtureWriter()
        w.element(0x7FE0_0010, .OW, [UInt8](repeating: 7, count: 4096))
        let bytes = FixtureWriter.part10(syntax: explicitLE, dataSet: w.bytes)
        let file = try DICOMFile.read(bytes: bytes)
        guard case .bulk(let ref)? = file.dataSet[.pixelData]?.value else { return XCTFail("pixel data was copied") }
        XCTAssertEqual(ref.length, 4096)
        XCTAssertEqual(ref.offset + 4096, bytes.count)
    }

    func testUNOfUndefinedLengthIsAnImplicitSequence() throws {
        var w = FixtureWriter()
        w.sequenceStart(0x0011_1010, vr: .UN)   // private, UN, undefined length
        w.itemStart()
        var implicitItem = FixtureWriter(explicitVR: false)
        implicitItem.element(0x0008_0100, .SH, "CODE")
        w.raw(implicitItem.bytes)
        w.itemEnd()
        w.sequenceEnd()
        let file = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: explicitLE, dataSet: w.bytes))
        let element = try XCTUnwrap(file.dataSet[Tag(0x0011_1010)])
        XCTAssertEqual(element.vr, .SQ)
        XCTAssertEqual(element.items?.first?.string(Tag(0x0008_0100)), "CODE")
    }

    func testUNOfKnownPublicTagTakesDictionaryVR() throws {
        var w = FixtureWriter()
        w.element(0x0010_0010, .UN, Array("Doe^John".utf8))
        let file = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: explicitLE, dataSet: w.bytes))
        XCTAssertEqual(file.dataSet[Tag(0x0010_0010)]?.vr, .PN)
        XCTAssertEqual(file.dataSet.string(Tag(0x0010_0010)), "Doe^John")
    }

    func testOddLengthValueIsRead() throws {
        var w = FixtureWriter()
        w.element(0x0010_0020, .LO, Array("ABC".utf8)) // odd length, no padding
        w.element(0x0010_0030, .DA, "20200101")
        let file = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: explicitLE, dataSet: w.bytes))
        XCTAssertEqual(file.dataSet.string(Tag(0x0010_0020)), "ABC")
        XCTAssertEqual(file.dataSet.date(Tag(0x0010_0030)), DICOMDate(year: 2020, month: 1, day: 1))
    }

    func testDataSetWithoutPreambleOrMetaIsDetected() throws {
        var w = FixtureWriter(explicitVR: false)
        w.element(0x0008_0060, .CS, "CT")
        w.element(0x0010_0020, .LO, "P1")
        let file = try DICOMFile.read(bytes: w.bytes)
        XCTAssertFalse(file.hasPreamble)
        XCTAssertTrue(file.syntaxWasDetected)
        XCTAssertFalse(file.transferSyntax.isExplicitVR)
        XCTAssertEqual(file.dataSet.string(Tag(0x0008_0060)), "CT")
    }

    func testMetaThatContradictsTheDataSetIsCorrected() throws {
        var w = FixtureWriter(explicitVR: false)
        w.element(0x0008_0060, .CS, "MR")
        let file = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: explicitLE, dataSet: w.bytes))
        XCTAssertTrue(file.syntaxWasDetected)
        XCTAssertEqual(file.dataSet.string(Tag(0x0008_0060)), "MR")
    }

    func testGroupLengthAndAttributeTagValues() throws {
        var w = FixtureWriter()
        w.element(0x0008_0000, .UL, [4, 0, 0, 0])
        w.element(0x0020_5000, .AT, [0x10, 0x00, 0x20, 0x00]) // (0010,0020)
        let file = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: explicitLE, dataSet: w.bytes))
        XCTAssertEqual(file.dataSet.attributeTags(Tag(0x0020_5000)), [Tag(0x0010_0020)])
        XCTAssertEqual(file.dataSet.integer(Tag(0x0008_0000)), 4)
    }

    func testUnknownTransferSyntaxOutsideDICOMRootIsRefused() {
        var w = FixtureWriter()
        w.element(0x0008_0060, .CS, "CT")
        let bytes = FixtureWriter.part10(syntax: "1.3.6.1.4.1.9999.1", dataSet: w.bytes)
        XCTAssertThrowsError(try DICOMFile.read(bytes: bytes)) { error in
            XCTAssertEqual((error as? DICOMError)?.kind, .unsupportedTransferSyntax)
        }
    }
}
