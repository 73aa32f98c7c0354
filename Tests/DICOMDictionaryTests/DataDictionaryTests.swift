import DICOMCore
import Foundation
import XCTest

@testable import DICOMDictionary

final class DataDictionaryTests: XCTestCase {
    func testPatientName() throws {
        let e = try XCTUnwrap(DataDictionary.entry(for: Tag(0x0010_0010)))
        XCTAssertEqual(e.tag, Tag(group: 0x0010, element: 0x0010))
        XCTAssertEqual(e.vrs, [.PN])
        XCTAssertEqual(e.vr, .PN)
        XCTAssertEqual(e.vm, "1")
        XCTAssertEqual(e.keyword, "PatientName")
        XCTAssertEqual(e.name, "Patient's Name")
        XCTAssertFalse(e.isRetired)
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x0010_0010)), .PN)
    }

    func testPixelDataHasTwoVRs() throws {
        let e = try XCTUnwrap(DataDictionary.entry(for: .pixelData))
        XCTAssertEqual(e.vrs, [.OB, .OW])
        XCTAssertEqual(e.vr, .OB)
        XCTAssertEqual(e.keyword, "PixelData")
        XCTAssertEqual(DataDictionary.vr(for: .pixelData), .OB)
    }

    func testMultipleVRs() throws {
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x0028_0106))?.vrs, [.US, .SS])  // SmallestImagePixelValue
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x0028_3006))?.vrs, [.US, .OW])  // LUTData
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x0028_1200))?.vrs, [.US, .SS, .OW])  // GrayLookupTableData
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x0028_3002))?.vm, "3")  // LUTDescriptor
    }

    func testRetiredTag() throws {
        let e = try XCTUnwrap(DataDictionary.entry(for: Tag(0x0008_0010)))
        XCTAssertEqual(e.keyword, "RecognitionCode")
        XCTAssertEqual(e.vr, .SH)
        XCTAssertTrue(e.isRetired)
    }

    func testItemTagsHaveNoVR() throws {
        for tag in [Tag.item, .itemDelimitationItem, .sequenceDelimitationItem] {
            let e = try XCTUnwrap(DataDictionary.entry(for: tag))
            XCTAssertEqual(e.vrs, [], "\(tag)")
            XCTAssertEqual(e.vr, .UN)
        }
        XCTAssertEqual(DataDictionary.entry(for: .item)?.keyword, "Item")
    }

    func testOverlayRepeatingGroup() throws {
        let e = try XCTUnwrap(DataDictionary.entry(for: Tag(0x6002_3000)))
        XCTAssertEqual(e.tag, Tag(0x6002_3000))
        XCTAssertEqual(e.keyword, "OverlayData")
        XCTAssertEqual(e.vrs, [.OB, .OW])
        XCTAssertFalse(e.isRetired)
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x6000_0010))?.keyword, "OverlayRows")
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x601E_0011))?.keyword, "OverlayColumns")
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x6000_0050)), .SS)  // OverlayOrigin
    }

    func testCurveRepeatingGroup() throws {
        let points = try XCTUnwrap(DataDictionary.entry(for: Tag(0x5010_0010)))
        XCTAssertEqual(points.keyword, "NumberOfPoints")
        XCTAssertEqual(points.vr, .US)
        XCTAssertTrue(points.isRetired)
        let data = try XCTUnwrap(DataDictionary.entry(for: Tag(0x5010_3000)))
        XCTAssertEqual(data.keyword, "CurveData")
        XCTAssertEqual(data.vrs, [.OB, .OW])
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x5010_2600))?.vr, .SQ)
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x5000_0005))?.keyword, "CurveDimensions")
    }

    func testOtherRepeatingMasks() {
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x0020_3105))?.keyword, "SourceImageIDs")  // 002031xx
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x0028_0410))?.keyword, "RowsForNthOrderCoefficients")  // 002804x0
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x1000_0011))?.keyword, "RunLengthTriplet")  // 1000xxx1
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x1010_0004))?.keyword, "ZonalMap")  // 1010xxxx
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x7F00_0010))?.keyword, "VariablePixelData")  // 7Fxx0010
        XCTAssertEqual(DataDictionary.entry(for: .pixelData)?.keyword, "PixelData")  // exact wins over 7Fxx0010
    }

    func testRepeatingGroupsDoNotMatchPrivateGroups() {
        // As pydicom: repeating-group masks only apply to non-private (even) groups.
        XCTAssertNil(DataDictionary.entry(for: Tag(0x6001_3000)))
        XCTAssertNil(DataDictionary.entry(for: Tag(0x5011_1100)))
    }

    func testKeywordLookup() {
        XCTAssertEqual(DataDictionary.tag(forKeyword: "PatientName"), Tag(0x0010_0010))
        XCTAssertEqual(DataDictionary.tag(forKeyword: "PixelData"), .pixelData)
        XCTAssertEqual(DataDictionary.tag(forKeyword: "TransferSyntaxUID"), .transferSyntaxUID)
        XCTAssertEqual(DataDictionary.tag(forKeyword: "RecognitionCode"), Tag(0x0008_0010))
        XCTAssertEqual(DataDictionary.entry(forKeyword: "StudyInstanceUID")?.vr, .UI)
        XCTAssertNil(DataDictionary.tag(forKeyword: "OverlayData"))  // repeating: names many tags
        XCTAssertNil(DataDictionary.tag(forKeyword: "NoSuchKeyword"))
        XCTAssertNil(DataDictionary.tag(forKeyword: ""))
        XCTAssertNil(DataDictionary.tag(forKeyword: "patientname"))
    }

    func testEveryKeywordRoundTrips() {
        for row in 0..<generatedPublicTable.count {
            let tag = Tag(generatedPublicTable.value(row))
            let keyword = generatedPublicTable.keyword(row)
            guard !keyword.isEmpty else { continue }
            XCTAssertEqual(DataDictionary.tag(forKeyword: keyword), tag, keyword)
            XCTAssertEqual(DataDictionary.entry(for: tag)?.keyword, keyword)
        }
    }

    func testUnknownTag() {
        let unknown = Tag(0x0010_FFFF)
        XCTAssertNil(DataDictionary.entry(for: unknown))
        XCTAssertEqual(DataDictionary.vr(for: unknown), .UN)
        XCTAssertNil(DataDictionary.entry(for: Tag(0x0012_0FFF)))
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x0012_0FFF)), .UN)
    }

    func testGroupLength() throws {
        XCTAssertEqual(DataDictionary.entry(for: .fileMetaInformationGroupLength)?.keyword, "FileMetaInformationGroupLength")
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x0000_0000))?.keyword, "CommandGroupLength")
        for tag in [Tag(0x0010_0000), Tag(0x0008_0000), Tag(0x0009_0000), Tag(0x6000_0000)] {
            let e = try XCTUnwrap(DataDictionary.entry(for: tag), "\(tag)")
            XCTAssertEqual(e.tag, tag)
            XCTAssertEqual(e.vrs, [.UL])
            XCTAssertEqual(e.keyword, "GenericGroupLength")
        }
        // A repeating-group entry that covers element 0000 wins, as in pydicom.
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x1010_0000))?.keyword, "ZonalMap")
    }

    func testPrivateCreatorElement() throws {
        let e = try XCTUnwrap(DataDictionary.entry(for: Tag(0x0009_0010)))
        XCTAssertEqual(e.vrs, [.LO])
        XCTAssertEqual(e.keyword, "PrivateCreator")
        XCTAssertEqual(e.name, "Private Creator")
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x0029_00FF)), .LO)
        XCTAssertEqual(DataDictionary.privateEntry(creator: "GEMS_IDEN_01", tag: Tag(0x0009_0010))?.vr, .LO)
        // Not a creator element: private data without a creator is unknown.
        XCTAssertNil(DataDictionary.entry(for: Tag(0x0009_1001)))
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x0009_1001)), .UN)
        XCTAssertNil(DataDictionary.entry(for: Tag(0x0009_0100)))
    }

    func testPrivateEntry() throws {
        let e = try XCTUnwrap(DataDictionary.privateEntry(creator: "GEMS_IDEN_01", tag: Tag(0x0009_1001)))
        XCTAssertEqual(e.tag, Tag(0x0009_1001))
        XCTAssertEqual(e.vr, .LO)
        XCTAssertEqual(e.vm, "1")
        XCTAssertEqual(e.name, "Full fidelity")
        XCTAssertEqual(e.keyword, "")
        XCTAssertFalse(e.isRetired)
        // Any block: (0009,xx01).
        XCTAssertEqual(DataDictionary.privateEntry(creator: "GEMS_IDEN_01", tag: Tag(0x0009_1201))?.name, "Full fidelity")
        // Creator padding is insignificant; case is not.
        XCTAssertEqual(DataDictionary.privateEntry(creator: "GEMS_IDEN_01 ", tag: Tag(0x0009_1001))?.name, "Full fidelity")
        XCTAssertEqual(DataDictionary.privateEntry(creator: " GEMS_IDEN_01\0", tag: Tag(0x0009_1001))?.name, "Full fidelity")
        XCTAssertNil(DataDictionary.privateEntry(creator: "gems_iden_01", tag: Tag(0x0009_1001)))
        XCTAssertNil(DataDictionary.privateEntry(creator: "NO SUCH CREATOR", tag: Tag(0x0009_1001)))
        XCTAssertNil(DataDictionary.privateEntry(creator: "GEMS_IDEN_01", tag: Tag(0x0009_10FF)))
        XCTAssertNil(DataDictionary.privateEntry(creator: "GEMS_IDEN_01", tag: Tag(0x0010_0010)))  // not private

        let csa = try XCTUnwrap(DataDictionary.privateEntry(creator: "SIEMENS CSA HEADER", tag: Tag(0x0029_1010)))
        XCTAssertEqual(csa.name, "CSA Image Header Info")
        XCTAssertEqual(csa.vr, .OB)
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x0029_1010), privateCreator: "SIEMENS CSA HEADER"), .OB)
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x0029_1010), privateCreator: nil), .UN)
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x0029_1099), privateCreator: "SIEMENS CSA HEADER"), .UN)
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x0029_0000), privateCreator: "SIEMENS CSA HEADER"), .UL)
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x0029_0010), privateCreator: "SIEMENS CSA HEADER"), .LO)
        XCTAssertEqual(DataDictionary.vr(for: Tag(0x0010_0010), privateCreator: "SIEMENS CSA HEADER"), .PN)
        XCTAssertTrue(DataDictionary.isKnownPrivateCreator("SIEMENS CSA HEADER  "))
        XCTAssertFalse(DataDictionary.isKnownPrivateCreator("SIEMENS"))
    }

    func testPrivateKeyShapes() {
        // Exact key "00290001".
        XCTAssertEqual(DataDictionary.privateEntry(creator: "CANON_MEC_MR3", tag: Tag(0x0029_0001))?.name, "Other Private Data")
        // Repeating private group "60xxxx10".
        XCTAssertEqual(DataDictionary.privateEntry(creator: "PAPYRUS 3.0", tag: Tag(0x6001_1010))?.name, "Overlay Rows")
        XCTAssertEqual(DataDictionary.privateEntry(creator: "PAPYRUS 3.0", tag: Tag(0x6003_1110))?.vr, .US)
        // "001110xx" keys are never matched by pydicom's lookup, so not here either.
        XCTAssertNil(DataDictionary.privateEntry(creator: "BioPri3D", tag: Tag(0x0011_1001)))
        // "OB_OW" and "US or SS" spellings in the private dictionary.
        XCTAssertEqual(DataDictionary.privateEntry(creator: "TOSHIBA_MEC_OT3", tag: Tag(0x7019_1080))?.vrs, [.OB, .OW])
        XCTAssertEqual(DataDictionary.privateEntry(creator: "FDMS 1.0", tag: Tag(0x0027_10A3))?.vrs, [.US, .SS])
    }

    func testConcurrentLookups() {
        // The hash maps are `static let`s: built once, thread-safely, by whichever thread comes first.
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            XCTAssertEqual(DataDictionary.vr(for: Tag(0x0010_0010)), .PN)
            XCTAssertEqual(DataDictionary.tag(forKeyword: "Rows"), .rows)
            XCTAssertEqual(DataDictionary.entry(for: Tag(0x6000_3000 + UInt32(i) << 17))?.keyword, "OverlayData")
            XCTAssertEqual(DataDictionary.privateEntry(creator: "GEMS_IDEN_01", tag: Tag(0x0009_1001))?.vr, .LO)
            XCTAssertNotNil(UIDRegistry.entry(for: "1.2.840.10008.1.2.1"))
        }
    }

    func testCounts() {
        XCTAssertEqual(DataDictionary.publicEntryCount, 5091)
        XCTAssertEqual(DataDictionary.repeatingGroupEntryCount, 88)
        XCTAssertEqual(DataDictionary.privateEntryCount, 10545)
        XCTAssertEqual(UIDRegistry.allEntries.count, 482)
    }

    func testEscapedNames() {
        // Names are stored as UTF-8 in a static blob: check non-ASCII and backslash survive.
        XCTAssertEqual(DataDictionary.privateEntry(creator: "FDMS 1.0", tag: Tag(0x0025_1034))?.name, "tan \u{3B8}")
        XCTAssertEqual(DataDictionary.privateEntry(creator: "FDMS 1.0", tag: Tag(0x0027_1010))?.name, "\u{3B3} Raw Data Table Sequence")
        XCTAssertEqual(
            DataDictionary.privateEntry(creator: "GEMS_IDEN_01", tag: Tag(0x0009_10E2))?.name,
            #"Image Type (ORIGINAL\PROSPECTIVE ...)"#)
        XCTAssertEqual(DataDictionary.entry(for: Tag(0x0010_0010))?.name, "Patient's Name")
    }

    /// The generated columns must agree in length and offsets (a malformed blob would shift every name).
    func testGeneratedTablesAreConsistent() {
        func check(_ s: GeneratedStrings, count: Int, _ what: String) {
            XCTAssertEqual(s.count, count, what)
            XCTAssertEqual(s.ends.last.map(Int.init) ?? 0, s.blob.utf8CodeUnitCount, what)
            XCTAssertEqual(s.ends, s.ends.sorted(), what)
        }
        var tables: [(String, GeneratedTagTable)] = [("public", generatedPublicTable), ("repeaters", generatedRepeaterTable)]
        tables += generatedPrivateTables.enumerated().map { ("private\($0.offset)", $0.element) }
        for (what, table) in tables {
            if !table.keywords.isEmpty { check(table.keywords, count: table.count, what + " keywords") }
            check(table.names, count: table.count, what + " names")
            for row in 0..<table.count {
                XCTAssertEqual(table.value(row) & table.mask(row), table.value(row), "\(what) row \(row)")
            }
        }
        let values = (0..<generatedPublicTable.count).map(generatedPublicTable.value)
        XCTAssertEqual(values, values.sorted())
        XCTAssertEqual(Set(values).count, values.count)
        check(generatedPrivateCreators, count: generatedPrivateCreators.count, "creators")
        let uidCount = generatedUIDValues.count
        for (s, what) in [
            (generatedUIDNames, "uid names"), (generatedUIDTypes, "uid types"), (generatedUIDInfos, "uid infos"),
            (generatedUIDKeywords, "uid keywords"), (generatedUIDValues, "uids"),
        ] {
            check(s, count: uidCount, what)
        }
        XCTAssertEqual(generatedUIDRetired.count, uidCount)
    }
}

final class UIDRegistryTests: XCTestCase {
    func testJPEG2000Lossless() throws {
        let e = try XCTUnwrap(UIDRegistry.entry(for: "1.2.840.10008.1.2.4.90"))
        XCTAssertEqual(e.uid, "1.2.840.10008.1.2.4.90")
        XCTAssertEqual(e.name, "JPEG 2000 Image Compression (Lossless Only)")
        XCTAssertEqual(e.type, "Transfer Syntax")
        XCTAssertEqual(e.keyword, "JPEG2000Lossless")
        XCTAssertFalse(e.isRetired)
        XCTAssertEqual(UIDRegistry.entry(forKeyword: "JPEG2000Lossless"), e)
    }

    func testOtherUIDs() throws {
        let implicit = try XCTUnwrap(UIDRegistry.entry(for: "1.2.840.10008.1.2"))
        XCTAssertEqual(implicit.keyword, "ImplicitVRLittleEndian")
        XCTAssertEqual(implicit.info, "Default Transfer Syntax for DICOM")
        XCTAssertEqual(UIDRegistry.entry(for: "1.2.840.10008.1.1")?.type, "SOP Class")
        XCTAssertEqual(UIDRegistry.entry(for: "1.2.840.10008.1.2.2")?.isRetired, true)  // Explicit VR Big Endian
        XCTAssertNil(UIDRegistry.entry(for: "1.2.3.4"))
        XCTAssertNil(UIDRegistry.entry(for: ""))
        XCTAssertNil(UIDRegistry.entry(forKeyword: "NoSuchUID"))
    }

    func testAllTransferSyntaxes() {
        let all = UIDRegistry.allTransferSyntaxes
        XCTAssertEqual(all.count, 59)
        XCTAssertTrue(all.allSatisfy { $0.type == "Transfer Syntax" })
        XCTAssertEqual(all.first?.uid, "1.2.840.10008.1.2")
        XCTAssertTrue(all.contains { $0.uid == "1.2.840.10008.1.2.4.90" })
        XCTAssertTrue(all.contains { $0.uid == "1.2.840.10008.1.2.1" && $0.keyword == "ExplicitVRLittleEndian" })
    }
}
