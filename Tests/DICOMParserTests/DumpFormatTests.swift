import DICOMCore
import DICOMDictionary
import DICOMParser
import TestSupport
import XCTest

/// The byte-built listing (issue 15 §5) keeps dcmdump's layout: values padded to column 52 counted
/// in characters, long values cut at 64 with "...", control characters escaped, numbers and hex
/// as before, and private tags named after the creator of their own data set.
final class DumpFormatTests: XCTestCase {
    func listing(_ build: (inout FixtureWriter) -> Void) throws -> [String] {
        var w = FixtureWriter()
        build(&w)
        return DICOMDump.lines(try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes)))
    }

    func line(_ lines: [String], _ tag: String) throws -> String {
        try XCTUnwrap(lines.first { $0.drop { $0 == " " }.hasPrefix(tag) }, "\(tag) in \(lines)")
    }

    func testValuesAreCutEscapedAndPaddedAsBefore() throws {
        let long = String(repeating: "A", count: 70)
        let lines = try listing { w in
            w.element(0x0008_0005, .CS, "ISO_IR 192")
            w.element(0x0008_0020, .DA, "20240115")
            w.element(0x0010_0010, .PN, "Müller^Jörg")  // two non-ASCII characters, four bytes
            w.element(0x0010_4000, .LT, "line one\r\nline\ttwo\u{1}")
            w.element(0x0020_4000, .LT, long)
            w.us(0x0028_0010, 512)
            w.element(0x0028_0030, .DS, " 0.5\\0.5 ")
        }
        // dcmdump's layout: "(GGGG,EEEE) VR value" padded to 52 characters, " # ", the length in 3 columns.
        func expected(_ head: String, _ length: Int, _ vm: Int, _ keyword: String) -> String {
            let padded = head.count < 52 ? head + String(repeating: " ", count: 52 - head.count) : head
            let len = String(length)
            return padded + " # " + String(repeating: " ", count: max(0, 3 - len.count)) + len + ", \(vm) " + keyword
        }
        XCTAssertEqual(try line(lines, "(0008,0020)"), expected("(0008,0020) DA [20240115]", 8, 1, "StudyDate"))
        // Padding counts characters, not bytes: "Müller^Jörg" is 11 characters in 13 bytes (14 padded).
        let name = try line(lines, "(0010,0010)")
        XCTAssertEqual(name, expected("(0010,0010) PN [Müller^Jörg]", 14, 1, "PatientName"))
        XCTAssertEqual(name.firstRange(of: " # ")?.lowerBound.utf16Offset(in: name), 52)
        XCTAssertEqual(try line(lines, "(0010,4000)"), expected("(0010,4000) LT [line one\\r\\nline\\ttwo.]", 20, 1, "PatientComments"))
        XCTAssertEqual(try line(lines, "(0020,4000)"), expected("(0020,4000) LT [\(String(repeating: "A", count: 61))...]", 70, 1, "ImageComments"))
        XCTAssertEqual(try line(lines, "(0028,0010)"), expected("(0028,0010) US 512", 2, 1, "Rows"))
        XCTAssertEqual(try line(lines, "(0028,0030)"), expected("(0028,0030) DS [0.5\\0.5]", 10, 2, "PixelSpacing"))
    }

    /// A private tag is named from the creator of the data set it is in (PS3.5 §7.8.1): the same
    /// element number in a nested item with another creator gets that creator's name.
    func testPrivateTagsAreNamedAfterTheirOwnDataSetsCreator() throws {
        let creators = ["GEMS_IDEN_01", "SIEMENS CSA HEADER"]
        let expected = creators.map { c in
            DataDictionary.privateEntry(creator: c, tag: Tag(0x0009_1001)).map { $0.name.isEmpty ? "PrivateTag" : $0.name } ?? "PrivateTag"
        }
        let lines = try listing { w in
            w.element(0x0009_0010, .LO, creators[0])
            w.element(0x0009_1001, .LO, "outer")
            w.sequenceStart(0x0008_1140)
            w.itemStart()
            w.element(0x0009_0010, .LO, creators[1])
            w.element(0x0009_1001, .LO, "inner")
            w.itemEnd()
            w.sequenceEnd()
        }
        let outer = try XCTUnwrap(lines.first { $0.hasPrefix("(0009,1001)") })
        let inner = try XCTUnwrap(lines.first { $0.hasPrefix("    (0009,1001)") })
        XCTAssertTrue(outer.hasSuffix(" " + expected[0]), outer)
        XCTAssertTrue(inner.hasSuffix(" " + expected[1]), inner)
        XCTAssertTrue(lines.contains { $0.hasPrefix("(0009,0010)") && $0.hasSuffix("PrivateCreator") })
    }

    func testWriteIsTheLinesEachEndedByANewline() throws {
        var w = FixtureWriter()
        w.element(0x0010_0010, .PN, "Doe^Jane")
        let file = try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes))
        var bytes: [UInt8] = []
        DICOMDump.write(file, to: &bytes)
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self), DICOMDump.lines(file).map { $0 + "\n" }.joined())
    }

    /// One `KeywordCache` serves every file of a `tessera dump` listing: a file whose private block
    /// has another creator still gets its own creator's names, and each file lists exactly as it
    /// does alone.
    func testAKeywordCacheSharedAcrossFilesListsEachAsAlone() throws {
        let files = try ["GEMS_IDEN_01", "SIEMENS CSA HEADER", "GEMS_IDEN_01"].map { creator in
            var w = FixtureWriter()
            w.element(0x0009_0010, .LO, creator)
            w.element(0x0009_1001, .LO, "value")
            w.element(0x0010_0010, .PN, "Doe^Jane")
            return try DICOMFile.read(bytes: FixtureWriter.part10(syntax: "1.2.840.10008.1.2.1", dataSet: w.bytes))
        }
        let cache = DICOMDump.KeywordCache()
        let alone = files.map { DICOMDump.lines($0).map { $0 + "\n" }.joined() }
        let shared = files.map { file -> String in
            var bytes: [UInt8] = []
            DICOMDump.write(file, to: &bytes, cache: cache)
            return String(decoding: bytes, as: UTF8.self)
        }
        XCTAssertEqual(shared, alone)
        func privateLine(_ listing: String) -> Substring? { listing.split(separator: "\n").first { $0.hasPrefix("(0009,1001)") } }
        XCTAssertNotEqual(privateLine(alone[0])?.split(separator: " ").last, privateLine(alone[1])?.split(separator: " ").last,
                          "the two creators name (0009,1001) differently")
    }
}
