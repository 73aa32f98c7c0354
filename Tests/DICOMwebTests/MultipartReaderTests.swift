@testable import DICOMweb
import XCTest

final class MultipartReaderTests: XCTestCase {
    struct Part: Equatable {
        var headers: [String]
        var body: [UInt8]
    }

    /// Feeds `body` in pieces of the given sizes (cycled) and collects the parts.
    private func read(_ body: [UInt8], boundary: String, pieces: [Int]) throws -> (parts: [Part], insidePart: Bool) {
        var reader = MultipartReader(boundary: boundary)
        var parts: [Part] = []
        var open: Part?
        var offset = 0, n = 0
        while offset < body.count {
            let size = max(1, pieces[n % pieces.count])
            n += 1
            let piece = Array(body[offset..<min(body.count, offset + size)])
            offset += piece.count
            try piece.withUnsafeBytes { raw in
                try reader.read(raw) { event in
                    switch event {
                    case .headers(let fields):
                        XCTAssertNil(open, "headers while a part is open")
                        open = Part(headers: fields.map { "\($0.name)=\($0.value)" }, body: [])
                    case .body(let bytes):
                        XCTAssertNotNil(open, "body bytes outside a part")
                        open?.body.append(contentsOf: bytes)
                    case .partEnd:
                        parts.append(try XCTUnwrap(open))
                        open = nil
                    }
                }
            }
        }
        return (parts, reader.isInsidePart)
    }

    private func body(_ parts: [Part], boundary: String, preamble: String = "", padding: String = "", epilogue: String = "") -> [UInt8] {
        var out = Array(preamble.utf8)
        for (i, p) in parts.enumerated() {
            out += Array(((i == 0 && preamble.isEmpty ? "" : "\r\n") + "--\(boundary)\(padding)\r\n").utf8)
            for h in p.headers {
                let kv = h.split(separator: "=", maxSplits: 1)
                out += Array("\(kv[0]): \(kv.count > 1 ? kv[1] : "")\r\n".utf8)
            }
            out += Array("\r\n".utf8)
            out += p.body
        }
        out += Array("\r\n--\(boundary)--\(epilogue)".utf8)
        return out
    }

    func testPartsSurviveEveryWayOfSplittingTheBody() throws {
        let boundary = "XyZ-b"
        // Bodies full of what a delimiter starts with: CR, CRLF, CRLF--, every proper prefix of it.
        let delimiter = Array("\r\n--\(boundary)".utf8)
        var tricky: [UInt8] = []
        for k in 1..<delimiter.count { tricky += delimiter[..<k]; tricky.append(0x41) }
        let parts = [Part(headers: ["Content-Type=application/dicom"], body: tricky),
                     Part(headers: [], body: []),
                     Part(headers: ["Content-Type=application/dicom", "X-Extra=1"], body: Array(delimiter.dropLast()) + [0x0D])]
        let bytes = body(parts, boundary: boundary, preamble: "ignored preamble", padding: " \t", epilogue: "\r\nignored epilogue")
        var checked = 0
        for size in 1...bytes.count {
            let result = try read(bytes, boundary: boundary, pieces: [size])
            XCTAssertEqual(result.parts, parts, "pieces of \(size)")
            XCTAssertFalse(result.insidePart)
            checked += 1
        }
        // Uneven pieces too.
        XCTAssertEqual(try read(bytes, boundary: boundary, pieces: [1, 7, 2, 30, 3]).parts, parts)
        XCTAssertEqual(checked, bytes.count)
    }

    func testRandomBodiesMatchTheirParts() throws {
        var g = SystemRandomNumberGenerator()
        for round in 0..<200 {
            let boundary = "b\(round)-" + String(g.next() as UInt32, radix: 36)
            let alphabet: [UInt8] = [0x0D, 0x0A, 0x2D, 0x41] + Array(boundary.utf8)
            var parts: [Part] = []
            for _ in 0..<Int.random(in: 1...4, using: &g) {
                var bytes: [UInt8] = []
                for _ in 0..<Int.random(in: 0...300, using: &g) { bytes.append(alphabet[Int.random(in: 0..<alphabet.count, using: &g)]) }
                parts.append(Part(headers: ["Content-Type=application/dicom"], body: bytes))
            }
            var bytes = body(parts, boundary: boundary)
            // A body may by chance hold the whole delimiter; such parts are not what was meant to be sent.
            let delimiter = Array("\r\n--\(boundary)".utf8)
            let holdsDelimiter = parts.contains { p in
                let text: [UInt8] = p.body + [0x0D, 0x0A]
                return text.windows(delimiter.count).contains { $0.elementsEqual(delimiter) }
            }
            if holdsDelimiter { continue }
            let pieces = (0..<5).map { _ in Int.random(in: 1...64, using: &g) }
            XCTAssertEqual(try read(bytes, boundary: boundary, pieces: pieces).parts, parts, "round \(round)")
            bytes.removeLast(Int.random(in: 1...bytes.count, using: &g))
            _ = try? read(bytes, boundary: boundary, pieces: pieces)  // truncated: no crash, no hang
        }
    }

    func testFirstDelimiterMayComeWithoutItsCRLF() throws {
        let bytes = Array("--b\r\nContent-Type: application/dicom\r\n\r\nABC\r\n--b--".utf8)
        let result = try read(bytes, boundary: "b", pieces: [4096])
        XCTAssertEqual(result.parts, [Part(headers: ["Content-Type=application/dicom"], body: Array("ABC".utf8))])
    }

    func testFoldedHeaderLinesAreJoined() throws {
        let bytes = Array("--b\r\nContent-Type: multipart/related;\r\n type=\"application/dicom\"\r\n\r\nA\r\n--b--".utf8)
        let result = try read(bytes, boundary: "b", pieces: [3])
        XCTAssertEqual(result.parts.first?.headers, ["Content-Type=multipart/related; type=\"application/dicom\""])
    }

    func testACutBodyLeavesThePartOpen() throws {
        let bytes = Array("--b\r\n\r\nAB\r\n--b\r\n\r\nCD".utf8)
        let result = try read(bytes, boundary: "b", pieces: [5])
        XCTAssertEqual(result.parts, [Part(headers: [], body: Array("AB".utf8))])
        XCTAssertTrue(result.insidePart)
        XCTAssertFalse(try read(Array("no delimiter at all".utf8), boundary: "b", pieces: [4]).insidePart)
    }

    func testMalformedBodiesAreErrors() {
        XCTAssertThrowsError(try read(Array("--b\r\n\r\nA\r\n--bX\r\n".utf8), boundary: "b", pieces: [100]), "delimiter then junk")
        XCTAssertThrowsError(try read(Array("--b\r\nno colon here\r\n\r\nA\r\n--b--".utf8), boundary: "b", pieces: [100]))
        let longHeader = "--b\r\nX: " + String(repeating: "y", count: MultipartReader.maximumHeaderSize) + "\r\n\r\n"
        XCTAssertThrowsError(try read(Array(longHeader.utf8), boundary: "b", pieces: [1000]), "header block over the cap")
        let padding = "--b" + String(repeating: " ", count: 2000) + "\r\n\r\n"
        XCTAssertThrowsError(try read(Array(padding.utf8), boundary: "b", pieces: [1000]), "endless transport padding")
    }
}

private extension Array where Element == UInt8 {
    func windows(_ n: Int) -> [ArraySlice<UInt8>] {
        count < n ? [] : (0...(count - n)).map { self[$0..<($0 + n)] }
    }
}
