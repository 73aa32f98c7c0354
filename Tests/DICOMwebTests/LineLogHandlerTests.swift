@testable import DICOMweb
import Logging
import Synchronization
import XCTest

/// The server's log handler writes the lines swift-log's StreamLogHandler wrote, byte for byte, so
/// that whatever parses Tessera's log (Docs/operations.md) reads it as before.
final class LineLogHandlerTests: XCTestCase {
    /// StreamLogHandler's output, captured.
    final class Captured: TextOutputStream, @unchecked Sendable {
        private let text = Mutex("")
        func write(_ string: String) { text.withLock { $0 += string } }
        func take() -> String { text.withLock { t in defer { t = "" }; return t } }
    }

    struct Stream: TextOutputStream, Sendable {
        let captured: Captured
        mutating func write(_ string: String) { captured.write(string) }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String { "the disk is full" }
    }

    func testEveryLineIsStreamLogHandlersLine() throws {
        let lines = Mutex<[UInt8]>([])
        let captured = Captured()
        let provider = Logger.MetadataProvider { ["trace.id": "abc"] }
        var cases: [(label: String, base: Logger.Metadata, provider: Logger.MetadataProvider?, event: LogEvent)] = []
        let fields: Logger.Metadata = [
            "path": "/dicomweb/studies/1.2/series", "status": "200", "bytes": .stringConvertible(105_374),
            "list": ["a", "b"], "map": ["k": "v"], "empty": "", "unicode": "Müller^Jürgen",
        ]
        for label in ["tessera", ""] {
            cases.append((label, [:], nil, LogEvent(level: .info, message: "request", metadata: fields, source: nil, file: #fileID, function: #function, line: #line)))
            cases.append((label, ["hb.request.id": "42", "status": "overridden"], nil,
                          LogEvent(level: .warning, message: "slow \("request")", metadata: fields, source: "DICOMweb", file: #fileID, function: #function, line: #line)))
            cases.append((label, ["hb.request.id": "42"], nil, LogEvent(level: .error, message: "no fields", metadata: nil, source: nil, file: #fileID, function: #function, line: #line)))
            cases.append((label, [:], nil, LogEvent(level: .critical, message: "none at all", metadata: [:], source: nil, file: "tessera/ServeCommand.swift", function: #function, line: 1)))
            cases.append((label, [:], provider, LogEvent(level: .notice, message: "provided", metadata: ["a": "1"], source: nil, file: #fileID, function: #function, line: #line)))
            cases.append((label, ["a": "0"], nil, LogEvent(level: .info, message: "failed", error: Failure(), metadata: ["a": "1"], source: nil, file: #fileID, function: #function, line: #line)))
        }
        for (label, base, provider, event) in cases {
            // The time is the one field that may differ, when a second ends between the two calls.
            for attempt in 0..<3 {
                var line = LineLogHandler(label: label, metadataProvider: provider) { bytes in lines.withLock { $0 += bytes } }
                var stream = StreamLogHandler(label: label, stream: Stream(captured: captured), metadataProvider: provider)
                line.metadata = base
                stream.metadata = base
                stream.log(event: event)
                line.log(event: event)
                let expected = captured.take()
                let got = lines.withLock { l in defer { l = [] }; return String(decoding: l, as: UTF8.self) }
                if got == expected { break }
                XCTAssertLessThan(attempt, 2, "\(got) is not\n\(expected)")
                XCTAssertEqual(got.split(separator: " ").dropFirst(), expected.split(separator: " ").dropFirst(), "beyond the time")
            }
        }
    }

    func testTheTimeIsTheLocalTimeWithItsOffset() throws {
        let lines = Mutex<[UInt8]>([])
        let handler = LineLogHandler(label: "t") { bytes in lines.withLock { $0 += bytes } }
        handler.log(event: LogEvent(level: .info, message: "m", metadata: nil, source: "S", file: #fileID, function: #function, line: #line))
        let text = lines.withLock { String(decoding: $0, as: UTF8.self) }
        let stamp = String(text.prefix { $0 != " " })
        // 2026-12-02T05:51:25+0000
        XCTAssertNotNil(stamp.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}/), stamp)
        XCTAssertEqual(String(text.dropFirst(stamp.count)), " info t: [S] m\n")
    }

    /// The fast path's request line, written from fields it already holds in order, is the line
    /// the same fields make through `log(event:)`; a handler with fields of its own declines it.
    func testSortedFieldsMakeTheSameLineAsTheirMetadata() {
        let lines = Mutex<[UInt8]>([])
        var handler = LineLogHandler(label: "tessera") { bytes in lines.withLock { $0 += bytes } }
        let fields = [("bytes", "105374"), ("client", "127.0.0.1"), ("hb.request.id", "9f"), ("headersMs", "0.05"), ("identity", "-"),
                      ("method", "GET"), ("ms", "0.12"), ("path", "/dicomweb/studies/1/series/2/instances/3/frames/1"), ("status", "200")]
        XCTAssertEqual(fields.map(\.0), fields.map(\.0).sorted(), "given in the order the handler sorts them")
        func take() -> String { lines.withLock { l in defer { l = [] }; return String(decoding: l, as: UTF8.self) } }
        XCTAssertTrue(handler.logSorted(level: .info, message: "request", source: "DICOMweb", fields: fields))
        let direct = take()
        handler.log(event: LogEvent(level: .info, message: "request", metadata: Dictionary(uniqueKeysWithValues: fields.map { ($0.0, .string($0.1)) }),
                                    source: "DICOMweb", file: #fileID, function: #function, line: #line))
        // The time (first field) may have moved on a second between the two.
        XCTAssertEqual(direct.split(separator: " ").dropFirst(), take().split(separator: " ").dropFirst())
        XCTAssertTrue(direct.hasSuffix(" info tessera: bytes=105374 client=127.0.0.1 hb.request.id=9f headersMs=0.05 identity=- method=GET ms=0.12 "
                                       + "path=/dicomweb/studies/1/series/2/instances/3/frames/1 status=200 [DICOMweb] request\n"), direct)
        handler.metadata["hb.request.id"] = "1"
        XCTAssertFalse(handler.logSorted(level: .info, message: "request", source: "DICOMweb", fields: fields))
        XCTAssertEqual(take(), "", "nothing written when declined")
    }
}
