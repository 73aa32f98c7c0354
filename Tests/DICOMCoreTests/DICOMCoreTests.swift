import XCTest
@testable import DICOMCore

final class UIDTests: XCTestCase {
    func testValidUIDs() {
        for uid in ["1.2.840.10008.1.2.1", "0", "2.25.188741369211948312452406381045226739317", "1.0.2",
                    String(repeating: "1", count: 64)] {
            XCTAssertTrue(UID.isValid(uid), uid)
        }
    }

    func testInvalidUIDs() {
        for uid in ["", ".", "1..2", "1.2.", ".1.2", "1.02", "01.2", "1.2.a", "../../x", "1.2/3", "1.2 3",
                    String(repeating: "1", count: 65), "1.2.840.10008.1.2\u{0}x"] {
            XCTAssertFalse(UID.isValid(uid), uid)
        }
    }

    func testTrimmingAndValidation() throws {
        XCTAssertEqual(UID.trimmed("1.2.3\u{0}"), "1.2.3")
        XCTAssertEqual(try UID.validate("1.2.3\u{0}", for: .sopInstanceUID), "1.2.3")
        XCTAssertThrowsError(try UID.validate("../../etc/passwd", for: .studyInstanceUID)) { error in
            XCTAssertEqual((error as? DICOMError)?.kind, .invalidUID)
            XCTAssertEqual((error as? DICOMError)?.tag, .studyInstanceUID)
        }
    }
}

final class TagTests: XCTestCase {
    func testComponentsAndFormatting() {
        let t = Tag(group: 0x7FE0, element: 0x0010)
        XCTAssertEqual(t, .pixelData)
        XCTAssertEqual(t.group, 0x7FE0)
        XCTAssertEqual(t.element, 0x0010)
        XCTAssertEqual(t.description, "(7FE0,0010)")
        XCTAssertEqual(t.hexString, "7FE00010")
        // Eight upper-case digits, zero-padded: DICOM JSON's keys (PS3.18 §F.2.1.1).
        for raw: UInt32 in [0, 0x0008_1190, 0xFFFF_FFFF, 0x0020_000D, 0xABCD_EF01, 0x0000_0A0F] {
            let expected = String(repeating: "0", count: 8 - String(raw, radix: 16).count) + String(raw, radix: 16, uppercase: true)
            XCTAssertEqual(Tag(raw).hexString, expected)
        }
        XCTAssertEqual(Tag(hexString: "00100010"), Tag(0x0010_0010))
        XCTAssertNil(Tag(hexString: "0010001"))
        XCTAssertNil(Tag(hexString: "0010001G"))
        XCTAssertLessThan(Tag(0x0008_0005), Tag(0x0010_0010))
    }

    func testPrivateTags() {
        XCTAssertTrue(Tag(0x0009_0010).isPrivateCreator)
        XCTAssertEqual(Tag(0x0029_1010).privateCreatorTag, Tag(0x0029_0010))
        XCTAssertNil(Tag(0x0029_0010).privateCreatorTag)
        XCTAssertFalse(Tag(0x0001_0001).isPrivate) // odd but reserved, not private
        XCTAssertFalse(Tag(0xFFFE_E000).isPrivate)
        XCTAssertFalse(Tag(0x0010_0010).isPrivate)
    }
}

final class VRTests: XCTestCase {
    func testCodesRoundTrip() {
        for vr in VR.allCases {
            XCTAssertEqual(VR(code: vr.code), vr)
        }
        XCTAssertNil(VR(code: "ZZ"))
        XCTAssertNil(VR(byte0: 0xFF, byte1: 0xFF))
    }

    func testLengthFieldAndPadding() {
        XCTAssertTrue(VR.OB.hasLongExplicitLength)
        XCTAssertTrue(VR.UC.hasLongExplicitLength)
        XCTAssertFalse(VR.US.hasLongExplicitLength)
        XCTAssertEqual(VR.UI.paddingByte, 0)
        XCTAssertEqual(VR.LO.paddingByte, 0x20)
        XCTAssertEqual(VR.OB.paddingByte, 0)
    }
}

final class TransferSyntaxTests: XCTestCase {
    func testKnownAndCompressedSyntaxes() {
        XCTAssertEqual(TransferSyntax(uid: "1.2.840.10008.1.2\u{0}"), .implicitVRLittleEndian)
        XCTAssertEqual(TransferSyntax(uid: "1.2.840.10008.1.2.2")?.isBigEndian, true)
        let j2k = TransferSyntax(uid: "1.2.840.10008.1.2.4.90")
        XCTAssertEqual(j2k?.isEncapsulated, true)
        XCTAssertEqual(j2k?.isExplicitVR, true)
        XCTAssertNil(TransferSyntax(uid: "1.3.6.1.4.1.1"))
        XCTAssertNil(TransferSyntax(uid: "1.2.840.10008.1.2.x"))
    }
}
