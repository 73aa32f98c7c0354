@testable import DICOMweb
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import XCTest

/// The body deadline measures the client, not the server (Docs/security.md, "Limits"): on a
/// virtual clock, a reader that stops asking for data (backpressure while STOW-RS parses a large
/// part) never closes a healthy upload, and a client that drips bytes just inside each deadline is
/// closed once its average rate falls below the minimum.
final class ConnectionTimeoutsHandlerTests: XCTestCase {
    let timeouts = ConnectionTimeoutsHandler.Timeouts(idle: .seconds(60), header: .seconds(10), body: .seconds(30))

    func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ConnectionTimeoutsHandler(timeouts))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/dicomweb/studies")))
        return channel
    }

    func body(_ n: Int) -> HTTPRequestPart { .body(ByteBuffer(repeating: 1, count: n)) }

    func testTheServerNotReadingDoesNotCountAgainstTheClient() throws {
        let channel = try channel()
        try channel.writeInbound(body(256 << 10))
        // The reader is busy with what it has and asks for nothing for two minutes.
        channel.embeddedEventLoop.advanceTime(by: .seconds(120))
        XCTAssertTrue(channel.isActive, "no read outstanding: the client owes nothing")
        channel.read()
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        XCTAssertFalse(channel.isActive, "a read outstanding for longer than the body deadline closes")
    }

    func testADrippedBodyIsClosedAndASteadyOneIsNot() throws {
        let dripped = try channel()
        dripped.embeddedEventLoop.advanceTime(by: .seconds(29))
        try dripped.writeInbound(body(1))
        dripped.read()
        dripped.embeddedEventLoop.advanceTime(by: .seconds(29))
        XCTAssertTrue(dripped.isActive, "each piece came inside the deadline")
        try? dripped.writeInbound(body(1))
        XCTAssertFalse(dripped.isActive, "2 bytes in 58 s of waiting is below the minimum rate")

        let steady = try channel()
        for _ in 0..<4 {
            steady.embeddedEventLoop.advanceTime(by: .seconds(20))
            try steady.writeInbound(body(64 << 10))
            steady.read()
        }
        XCTAssertTrue(steady.isActive, "64 KiB every 20 s is slow but well above the minimum")
    }
}
