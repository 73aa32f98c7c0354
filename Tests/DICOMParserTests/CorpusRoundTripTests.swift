import XCTest
import DICOMCore
import DICOMParser
import TestSupport

/// Every corpus file: read, write, read again, and the two data sets are the same.
final class CorpusRoundTripTests: XCTestCase {
    func testReadWriteReadIsIdentical() throws {
        let files = try Corpus.files()
        var checked = 0
        var failures: [String] = []
        for path in files {
            guard let file = try? DICOMFile.read(path: path) else { continue }
            guard file.dataSet.string(.sopClassUID) != nil, file.dataSet.string(.sopInstanceUID) != nil else { continue }
            var targets = [file.transferSyntax]
            if !file.transferSyntax.isEncapsulated && file.transferSyntax != .explicitVRLittleEndian {
                targets.append(.explicitVRLittleEndian)
            }
            if !file.transferSyntax.isEncapsulated { targets.append(.deflatedExplicitVRLittleEndian) }
            for syntax in targets {
                do {
                    // Implicit VR cannot carry VRs that the dictionary does not give back; compare
                    // those against an Explicit VR LE read of the same file's elements instead.
                    let bytes = try DICOMWriter.part10(file.dataSet, transferSyntax: syntax, meta: file.meta)
                    let again = try DICOMFile.read(bytes: bytes)
                    XCTAssertEqual(again.transferSyntax.uid, syntax.uid, path)
                    if !syntax.isExplicitVR { continue }
                    if let d = file.dataSet.firstDifference(from: again.dataSet) {
                        failures.append("\(path) → \(syntax): \(d)")
                    }
                    XCTAssertEqual(again.meta.string(.mediaStorageSOPInstanceUID), file.dataSet.string(.sopInstanceUID))
                } catch {
                    failures.append("\(path) → \(syntax): \(error)")
                }
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 120)
        XCTAssertTrue(failures.isEmpty, "\(failures.count) round trips differ:\n" + failures.prefix(30).joined(separator: "\n"))
    }

    func testImplicitRoundTripOfPublicElements() throws {
        var w = FixtureWriter()
        w.element(0x0008_0016, .UI, "1.2.840.10008.5.1.4.1.1.7")
        w.element(0x0008_0018, .UI, "1.2.3.4.5.6")
        w.element(0x0010_0010, .PN, "Doe^Jane")
        w.us(0x0028_0010, 4)
        w.sequenceStart(0x0008_1140)
        w.itemStart()
        w.element(0x0008_1155, .UI, "1.2.3")
        w.itemEnd()
        w.sequenceEnd()
        let source = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes))
        for syntax in [TransferSyntax.implicitVRLittleEndian, .explicitVRBigEndian, .deflatedExplicitVRLittleEndian] {
            let bytes = try DICOMWriter.part10(source.dataSet, transferSyntax: syntax)
            let again = try DICOMFile.read(bytes: bytes)
            XCTAssertEqual(again.transferSyntax, syntax)
            XCTAssertNil(source.dataSet.firstDifference(from: again.dataSet), "\(syntax)")
            XCTAssertEqual(again.dataSet.integer(.rows), 4)
        }
    }

    func testFileMetaGroupIsCorrect() throws {
        var w = FixtureWriter()
        w.element(0x0008_0016, .UI, "1.2.840.10008.5.1.4.1.1.7")
        w.element(0x0008_0018, .UI, "1.2.3.4.5.6")
        let source = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes))
        let bytes = try DICOMWriter.part10(source.dataSet, transferSyntax: .explicitVRLittleEndian)
        XCTAssertEqual(Array(bytes[128..<132]), Array("DICM".utf8))
        let file = try DICOMFile.read(bytes: bytes)
        let meta = file.meta
        let groupLength = try XCTUnwrap(meta.integer(.fileMetaInformationGroupLength))
        // Group length counts the bytes after the group length element up to the data set.
        XCTAssertEqual(Int(groupLength), file.dataSetOffset - (132 + 12))
        XCTAssertEqual(meta[.fileMetaInformationVersion]?.valueBytes, [0, 1])
        XCTAssertEqual(meta.string(.mediaStorageSOPClassUID), "1.2.840.10008.5.1.4.1.1.7")
        XCTAssertEqual(meta.string(.mediaStorageSOPInstanceUID), "1.2.3.4.5.6")
        XCTAssertEqual(meta.string(.implementationClassUID), DICOMWriter.implementationClassUID)
        XCTAssertTrue(UID.isValid(DICOMWriter.implementationClassUID))
    }
}
